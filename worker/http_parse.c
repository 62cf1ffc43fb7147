/*
 * http_parse.c - strict, resumable HTTP/1.1 header and chunked parser.
 *
 * What: a byte-at-a-time state machine for the request line / status
 * line and the field lines (RFC 9112 2-5), the framing analysis that
 * decides how the body is delimited (RFC 9112 6.3), and the chunked
 * transfer-coding decoder (RFC 9112 7.1).
 *
 * Assumes: the caller keeps the whole header block of one message in
 * one buffer and calls again with the same, longer buffer; the state
 * and m->pos say where to resume, so no byte is examined twice.  Fields
 * are stored as offsets into that buffer, never copied.  No malloc, no
 * I/O, no logging: errors are HTTP_E_* codes, sticky once returned.
 *
 * Why so strict: a proxy sits between two parsers.  Any byte sequence
 * that we read one way and the next hop might read another (bare CR,
 * lone LF, obs-fold, whitespace before a colon, two framings, an
 * obfuscated Transfer-Encoding) is a request-smuggling or response-
 * splitting lever (RFC 9112 11.2, HOSTILE.md 1.2-1.4).  So nothing is
 * repaired or guessed: the grammar is matched exactly or the message is
 * refused.  The few leniencies are the ones RFC 9112 asks for: leading
 * empty lines before a request line are skipped (2.2, bounded by the
 * header size limit), an empty reason phrase is accepted (4), and a
 * response with unusable but recognisable framing is read until close
 * with MF_MUST_CLOSE instead of being refused (6.3 rule 4).
 *
 * Policy choices beyond the RFC's MUSTs (HOSTILE.md cases in brackets):
 * - requests: duplicate Content-Length is refused even when equal [2];
 *   Transfer-Encoding must be exactly one field "chunked" [6-8]; TE with
 *   CL, or TE in HTTP/1.0, is refused [5, 9]; a Connection nomination of
 *   Content-Length, Transfer-Encoding or Host is refused [36]; Expect
 *   must be exactly one "100-continue" [35]; only HTTP/1.0 and 1.1 [26].
 * - responses: equal duplicate Content-Length values are collapsed,
 *   differing ones refused [41]; TE chunked with CL uses chunked and
 *   sets MF_MUST_CLOSE [42]; "gzip, chunked" (a coding we would have to
 *   forward undeclared) is refused as TE_UNKNOWN.
 * - Host values follow http_url_parse_host(); an empty Host is refused
 *   (a forward proxy always has an authority to route on).
 */
#include <string.h>
#include <strings.h>

#include "worker/http_parse.h"
#include "lib/http_chars.h"
#include "worker/http_url.h"

#define METHOD_MAX	32

/* Method bytes.  The grammar allows any tchar, but every registered
 * method is upper case letters, digits, '-' and '_', methods are case-
 * sensitive, and a lower-case "get" is far likelier an evasion attempt
 * or a broken client than a real extension method (HOSTILE #26). */
static bool
is_mchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	    c == '_';
}

/* Header-block parser states; 0 is what http_msg_init leaves. */
enum {
	S_BEGIN = 0,
	S_RL_START, S_RL_EMPTY_LF, S_METHOD, S_TARGET_START, S_TARGET,
	S_VERSION, S_RL_LF,
	S_SL_VERSION, S_SL_CODE, S_SL_REASON, S_SL_LF,
	S_FIELD_START, S_NAME, S_VALUE_OWS, S_VALUE, S_VALUE_LF, S_END_LF,
	S_DONE,
};

/* Case-insensitive comparison of a field name/token with a C string. */
bool
http_token_eq(const char *a, size_t alen, const char *b)
{
	size_t i;

	for (i = 0; i < alen; i++)
		if (b[i] == '\0' || lower(a[i]) != lower(b[i]))
			return false;
	return b[alen] == '\0';
}

static const struct {
	const char *name;
	enum http_hdr_id id;
	size_t len;
} hdr_names[] = {
	{ "host", H_HOST, 4 },
	{ "content-length", H_CONTENT_LENGTH, 14 },
	{ "transfer-encoding", H_TRANSFER_ENCODING, 17 },
	{ "connection", H_CONNECTION, 10 },
	{ "keep-alive", H_KEEP_ALIVE, 10 },
	{ "proxy-connection", H_PROXY_CONNECTION, 16 },
	{ "proxy-authorization", H_PROXY_AUTHORIZATION, 19 },
	{ "proxy-authenticate", H_PROXY_AUTHENTICATE, 18 },
	{ "te", H_TE, 2 },
	{ "trailer", H_TRAILER, 7 },
	{ "upgrade", H_UPGRADE, 7 },
	{ "expect", H_EXPECT, 6 },
	{ "via", H_VIA, 3 },
	{ "x-forwarded-for", H_X_FORWARDED_FOR, 15 },
	{ "max-forwards", H_MAX_FORWARDS, 12 },
	{ "user-agent", H_USER_AGENT, 10 },
	{ "referer", H_REFERER, 7 },
	{ "date", H_DATE, 4 },
	{ "server", H_SERVER, 6 },
	{ "content-type", H_CONTENT_TYPE, 12 },
	{ "cache-control", H_CACHE_CONTROL, 13 },
	{ "pragma", H_PRAGMA, 6 },
	{ "authorization", H_AUTHORIZATION, 13 },
	{ "if-none-match", H_IF_NONE_MATCH, 13 },
	{ "if-modified-since", H_IF_MODIFIED_SINCE, 17 },
	{ "if-range", H_IF_RANGE, 8 },
	{ "range", H_RANGE, 5 },
	{ "if-match", H_IF_MATCH, 8 },
	{ "if-unmodified-since", H_IF_UNMODIFIED_SINCE, 19 },
	{ "etag", H_ETAG, 4 },
	{ "last-modified", H_LAST_MODIFIED, 13 },
	{ "expires", H_EXPIRES, 7 },
	{ "age", H_AGE, 3 },
	{ "vary", H_VARY, 4 },
	{ "set-cookie", H_SET_COOKIE, 10 },
	{ "content-range", H_CONTENT_RANGE, 13 },
	{ "location", H_LOCATION, 8 },
	{ "content-location", H_CONTENT_LOCATION, 16 },
};

static enum http_hdr_id
hdr_lookup(const char *name, size_t len)
{
	size_t i;

	/* Compare lengths first: most names are rejected without a byte read. */
	for (i = 0; i < sizeof(hdr_names) / sizeof(hdr_names[0]); i++)
		if (hdr_names[i].len == len && http_token_eq(name, len, hdr_names[i].name))
			return hdr_names[i].id;
	return H_OTHER;
}

/* RFC 9110 7.6.1: these never travel past one hop. */
static bool
hdr_is_hop(enum http_hdr_id id)
{
	switch (id) {
	case H_CONNECTION: case H_KEEP_ALIVE: case H_PROXY_CONNECTION:
	case H_PROXY_AUTHORIZATION: case H_TE: case H_TRAILER:
	case H_TRANSFER_ENCODING: case H_UPGRADE:
		return true;
	default:
		return false;
	}
}

static enum http_method
method_lookup(const char *s, size_t len)
{
	static const char *const names[] = {
		[M_GET] = "GET", [M_HEAD] = "HEAD", [M_POST] = "POST",
		[M_PUT] = "PUT", [M_DELETE] = "DELETE",
		[M_CONNECT] = "CONNECT", [M_OPTIONS] = "OPTIONS",
		[M_TRACE] = "TRACE", [M_PATCH] = "PATCH",
	};
	size_t i;

	/* methods are case-sensitive (RFC 9110 9.1): "get" is M_OTHER */
	for (i = 1; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
			return (enum http_method)i;
	return M_OTHER;
}

void
http_msg_init(struct http_msg *m, struct http_field *fields, unsigned cap)
{
	memset(m, 0, sizeof(*m));
	m->fields = fields;
	m->fields_cap = cap;
	m->host_idx = -1;
}

/*
 * Comma-separated list iteration (RFC 9110 5.6.1).  Yields every
 * element, empty ones included, trimmed of OWS; the callers decide
 * whether an empty element is tolerable.  Start with *i = 0.
 */
static bool
list_next(const char *v, size_t n, size_t *i, const char **e, size_t *elen)
{
	size_t a = *i, j = *i, b;

	if (*i > n)
		return false;
	while (j < n && v[j] != ',')
		j++;
	b = j;
	while (a < b && is_ows((unsigned char)v[a]))
		a++;
	while (b > a && is_ows((unsigned char)v[b - 1]))
		b--;
	*e = v + a;
	*elen = b - a;
	*i = j + 1;
	return true;
}

static bool
is_token(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return false;
	return true;
}

/* Content-Length = 1*DIGIT, at most 19 digits and <= 2^63-1. */
static bool
cl_parse(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 19)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');	/* < 10^19: no wrap */
	}
	if (v > (uint64_t)INT64_MAX)
		return false;
	*out = v;
	return true;
}

#define FVAL(buf, f)	((buf) + (f)->value_off), ((f)->value_len)

/* What the Transfer-Encoding fields (taken together as one list) say. */
struct te_info {
	unsigned nfields;
	unsigned ncodings;
	unsigned nchunked;
	bool chunked_last;
	bool chunked_params;
	bool bad_syntax;
};

static void
te_scan(const struct http_msg *m, const char *buf, struct te_info *t)
{
	unsigned k;

	memset(t, 0, sizeof(*t));
	for (k = 0; k < m->nfields; k++) {
		const struct http_field *f = &m->fields[k];
		const char *e;
		size_t i = 0, elen;

		if (f->id != H_TRANSFER_ENCODING)
			continue;
		t->nfields++;
		while (list_next(FVAL(buf, f), &i, &e, &elen)) {
			const char *semi = memchr(e, ';', elen);
			size_t nlen = semi ? (size_t)(semi - e) : elen;
			bool chunked;

			/* an empty element (",chunked") is legal list
			 * syntax but only ever seen as an obfuscation */
			while (nlen > 0 && is_ows((unsigned char)e[nlen - 1]))
				nlen--;
			if (!is_token(e, nlen)) {
				t->bad_syntax = true;
				continue;
			}
			chunked = http_token_eq(e, nlen, "chunked");
			t->ncodings++;
			t->chunked_last = chunked;
			if (chunked) {
				t->nchunked++;
				if (semi != NULL)
					t->chunked_params = true;
			}
		}
	}
}

/* Content-Length fields: *n fields, value in *cl.  allow_equal_list
 * collapses "5, 5" and equal duplicates (responses); a request must
 * carry exactly one plain value. */
static int
cl_scan(const struct http_msg *m, const char *buf, bool allow_equal_list,
    unsigned *n, uint64_t *cl)
{
	unsigned k;
	bool have = false;

	*n = 0;
	for (k = 0; k < m->nfields; k++) {
		const struct http_field *f = &m->fields[k];
		const char *e;
		size_t i = 0, elen;
		uint64_t v;

		if (f->id != H_CONTENT_LENGTH)
			continue;
		(*n)++;
		if (!allow_equal_list) {
			if (*n > 1 || !cl_parse(FVAL(buf, f), cl))
				return HTTP_E_CONTENT_LENGTH;
			continue;
		}
		while (list_next(FVAL(buf, f), &i, &e, &elen)) {
			if (!cl_parse(e, elen, &v))
				return HTTP_E_CONTENT_LENGTH;
			if (have && v != *cl)
				return HTTP_E_CONTENT_LENGTH;
			*cl = v;
			have = true;
		}
	}
	return HTTP_OK;
}

/* Mark every field called name[0..len) as nominated by Connection. */
static void
nominate(struct http_msg *m, const char *buf, const char *name, size_t len)
{
	unsigned k;

	for (k = 0; k < m->nfields; k++) {
		struct http_field *f = &m->fields[k];

		if (f->name_len == len && strncasecmp(buf + f->name_off, name,
		    len) == 0)
			f->flags |= HF_NOMINATED;
	}
}

/* Connection and Upgrade (RFC 9110 7.6.1, 7.8): both directions. */
static int
conn_scan(struct http_msg *m, const char *buf)
{
	bool conn_upgrade = false, ws = false;
	unsigned k;

	for (k = 0; k < m->nfields; k++) {
		const struct http_field *f = &m->fields[k];
		const char *e;
		size_t i = 0, elen;

		if (f->id == H_UPGRADE) {
			while (list_next(FVAL(buf, f), &i, &e, &elen)) {
				const char *sl = memchr(e, '/', elen);

				if (http_token_eq(e, sl ? (size_t)(sl - e) :
				    elen, "websocket"))
					ws = true;
			}
			continue;
		}
		if (f->id != H_CONNECTION)
			continue;
		while (list_next(FVAL(buf, f), &i, &e, &elen)) {
			if (elen == 0)
				continue;
			if (!is_token(e, elen))
				return HTTP_E_FIELD;
			if (http_token_eq(e, elen, "close")) {
				m->flags |= MF_CONN_CLOSE;
			} else if (http_token_eq(e, elen, "keep-alive")) {
				m->flags |= MF_KEEP_ALIVE;
			} else if (http_token_eq(e, elen, "upgrade")) {
				conn_upgrade = true;
			} else if (hdr_lookup(e, elen) == H_CONTENT_LENGTH ||
			    hdr_lookup(e, elen) == H_TRANSFER_ENCODING ||
			    hdr_lookup(e, elen) == H_HOST ||
			    http_token_eq(e, elen, "authorization")) {
				/* stripping these would change framing,
				 * routing or credentials at the next hop
				 * (HOSTILE #36) */
				return HTTP_E_CONNECTION;
			} else {
				nominate(m, buf, e, elen);
			}
		}
	}
	if (ws && conn_upgrade)
		m->flags |= MF_UPGRADE_WS;
	if (m->version_minor == 0 && !(m->flags & MF_KEEP_ALIVE))
		m->flags |= MF_CONN_CLOSE;
	return HTTP_OK;
}

/* Framing and routing checks of a complete request header block. */
static int
analyze_request(struct http_msg *m, const char *buf)
{
	struct te_info te;
	unsigned k, ncl, nhost = 0, nexpect = 0;
	uint64_t cl = 0;
	int rc;

	if ((rc = cl_scan(m, buf, false, &ncl, &cl)) != HTTP_OK)
		return rc;
	if (ncl > 0)
		m->flags |= MF_HAS_CL;
	te_scan(m, buf, &te);
	if (te.nfields > 0) {
		m->flags |= MF_HAS_TE;
		if (te.nfields > 1 || te.bad_syntax || te.nchunked > 1 ||
		    te.chunked_params || (te.nchunked == 1 && !te.chunked_last))
			return HTTP_E_TE_BAD;
		if (te.nchunked == 0 || te.ncodings > 1)
			return HTTP_E_TE_UNKNOWN;
		/* RFC 9112 6.1: TE with CL, or TE in 1.0, is faulty framing;
		 * a request is refused rather than half-trusted */
		if (ncl > 0 || m->version_minor == 0)
			return HTTP_E_TE_BAD;
		m->body = BODY_CHUNKED;
	} else if (ncl > 0) {
		m->body = BODY_LENGTH;
		m->content_length = cl;
	} else {
		m->body = BODY_NONE;
	}

	for (k = 0; k < m->nfields; k++) {
		const struct http_field *f = &m->fields[k];

		if (f->id == H_HOST) {
			struct http_url u;

			if (++nhost > 1)
				return HTTP_E_HOST;
			if (http_url_parse_host(FVAL(buf, f), &u) != URL_OK)
				return HTTP_E_HOST;
			m->host_idx = (int)k;
		} else if (f->id == H_EXPECT) {
			if (++nexpect > 1 ||
			    !http_token_eq(FVAL(buf, f), "100-continue"))
				return HTTP_E_EXPECT;
			m->flags |= MF_EXPECT_100;
		}
	}
	if (nhost == 0 && m->version_minor == 1)
		return HTTP_E_HOST;
	return conn_scan(m, buf);
}

/* Framing checks of a complete response header block (RFC 9112 6.3). */
static int
analyze_response(struct http_msg *m, const char *buf,
    enum http_method req_method)
{
	struct te_info te;
	unsigned ncl;
	uint64_t cl = 0;
	int rc;

	if ((rc = cl_scan(m, buf, true, &ncl, &cl)) != HTTP_OK)
		return rc;
	if (ncl > 0)
		m->flags |= MF_HAS_CL;
	te_scan(m, buf, &te);
	if (te.nfields > 0) {
		m->flags |= MF_HAS_TE;
		if (te.bad_syntax || te.nchunked > 1 || te.chunked_params)
			return HTTP_E_TE_BAD;
		/* Any coding but a lone chunked: a proxy strips
		 * Transfer-Encoding, so forwarding such a body would hand
		 * the client coded bytes under no label.  502 (HOSTILE #44)
		 * rather than rule 4's read-until-close. */
		if (!te.chunked_last || te.ncodings > 1)
			return HTTP_E_TE_UNKNOWN;
		if (m->version_minor == 1) {
			m->body = BODY_CHUNKED;
			/* rule 3: TE wins, but the origin is confused */
			if (ncl > 0)
				m->flags |= MF_MUST_CLOSE;
		} else {
			/* 6.1: HTTP/1.0 with TE is faulty: read until close */
			m->body = BODY_CLOSE;
		}
	} else if (ncl > 0) {
		m->body = BODY_LENGTH;
		m->content_length = cl;
	} else {
		m->body = BODY_CLOSE;
	}
	if ((rc = conn_scan(m, buf)) != HTTP_OK)
		return rc;
	/* rule 1 and 2: these never have a body, whatever they say */
	if (req_method == M_HEAD || m->status < 200 || m->status == 204 ||
	    m->status == 304 || (req_method == M_CONNECT &&
	    m->status / 100 == 2)) {
		m->body = BODY_NONE;
		m->content_length = 0;
	}
	if (m->body == BODY_CLOSE)
		m->flags |= MF_MUST_CLOSE;
	return HTTP_OK;
}

/* Validate the version digits seen on a request line. */
static int
check_req_version(const struct http_msg *m)
{
	if (m->version_major != 1)
		return HTTP_E_VERSION_UNSUPPORTED;
	if (m->version_minor > 1)
		return HTTP_E_VERSION;
	return HTTP_OK;
}

/*
 * The shared state machine.  One byte per iteration; every state says
 * exactly which bytes it accepts.  Returns HTTP_MORE with m->pos == len,
 * HTTP_OK at the end of the block, or a sticky error.
 */
static int
parse_block(struct http_msg *m, const char *buf, size_t len,
    const struct http_limits *lim, bool req, enum http_method req_method)
{
	size_t p = m->pos, hmax = lim->header_size;
	unsigned cap = lim->max_fields < m->fields_cap ?
	    lim->max_fields : m->fields_cap;
	struct http_field *f = NULL;
	int rc = HTTP_OK;

	if (m->state < 0)
		return m->state;
	if (m->state == S_DONE)
		return HTTP_OK;
	if (m->state == S_BEGIN)
		m->state = req ? S_RL_START : S_SL_VERSION;
	/* offsets are 32-bit: never let a block get near that */
	if (hmax > UINT32_MAX - 1)
		hmax = UINT32_MAX - 1;
	if (m->nfields < m->fields_cap)
		f = &m->fields[m->nfields];

	for (; p < len; p++) {
		unsigned char c = (unsigned char)buf[p];

		if (p >= hmax) {
			rc = HTTP_E_HEADER_TOO_BIG;
			goto fail;
		}
		switch (m->state) {
		case S_RL_START:
			if (c == CR) {
				m->state = S_RL_EMPTY_LF;
			} else if (is_mchar(c)) {
				m->line_start = p;
				m->method_off = (uint32_t)p;
				m->state = S_METHOD;
			} else {
				rc = c == LF ? HTTP_E_BARE_CR_LF :
				    HTTP_E_REQUEST_LINE;
				goto fail;
			}
			break;
		case S_RL_EMPTY_LF:
			if (c != LF) {
				rc = HTTP_E_BARE_CR_LF;
				goto fail;
			}
			m->state = S_RL_START;
			break;
		case S_METHOD:
			if (is_mchar(c)) {
				if (p - m->method_off + 1 > METHOD_MAX) {
					rc = HTTP_E_METHOD;
					goto fail;
				}
			} else if (c == ' ') {
				m->method_len = (uint32_t)(p - m->method_off);
				m->method = method_lookup(buf + m->method_off,
				    m->method_len);
				m->state = S_TARGET_START;
			} else {
				rc = c == LF ? HTTP_E_BARE_CR_LF :
				    HTTP_E_REQUEST_LINE;
				goto fail;
			}
			break;
		case S_TARGET_START:
		case S_TARGET:
			if (c > 0x20 && c != 0x7f) {
				if (m->state == S_TARGET_START) {
					m->target_off = (uint32_t)p;
					m->state = S_TARGET;
				}
				/* Fast path over the rest of the target, bounded
				 * by the URI and header limits. */
				size_t end = len < hmax ? len : hmax;
				size_t tmax = m->target_off + lim->uri_size;
				if (end > tmax)
					end = tmax;
				while (p + 1 < end) {
					unsigned char d = (unsigned char)buf[p + 1];
					if (d <= 0x20 || d == 0x7f)
						break;
					p++;
				}
				if (p - m->target_off + 1 > lim->uri_size) {
					rc = HTTP_E_URI_TOO_LONG;
					goto fail;
				}
			} else if (c == ' ' && m->state == S_TARGET) {
				m->target_len = (uint32_t)(p - m->target_off);
				m->mark = p + 1;
				m->state = S_VERSION;
			} else if (c == CR && m->state == S_TARGET) {
				/* "GET /" alone is HTTP/0.9: refused */
				rc = HTTP_E_VERSION;
				goto fail;
			} else {
				rc = c == LF ? HTTP_E_BARE_CR_LF :
				    HTTP_E_REQUEST_LINE;
				goto fail;
			}
			break;
		case S_VERSION: {
			size_t idx = p - m->mark;

			if (idx < 5) {
				if (c != (unsigned char)"HTTP/"[idx])
					rc = HTTP_E_VERSION;
			} else if (idx == 5 || idx == 7) {
				if (c < '0' || c > '9')
					rc = HTTP_E_VERSION;
				else if (idx == 5)
					m->version_major = (uint8_t)(c - '0');
				else
					m->version_minor = (uint8_t)(c - '0');
			} else if (idx == 6) {
				if (c != '.')
					rc = HTTP_E_VERSION;
			} else if (c == CR) {
				rc = check_req_version(m);
				m->state = S_RL_LF;
			} else {
				rc = c == LF ? HTTP_E_BARE_CR_LF :
				    HTTP_E_VERSION;
			}
			if (rc != HTTP_OK)
				goto fail;
			break;
		}
		case S_RL_LF:
		case S_SL_LF:
			if (c != LF) {
				rc = HTTP_E_BARE_CR_LF;
				goto fail;
			}
			m->line_start = p + 1;
			m->state = S_FIELD_START;
			break;

		case S_SL_VERSION:
			/* "HTTP/1." DIGIT SP, only 1.0 and 1.1 */
			if (p < 7) {
				if (c != (unsigned char)"HTTP/1."[p])
					rc = HTTP_E_STATUS_LINE;
			} else if (p == 7) {
				if (c != '0' && c != '1')
					rc = HTTP_E_STATUS_LINE;
				m->version_major = 1;
				m->version_minor = (uint8_t)(c - '0');
			} else if (c == ' ') {
				m->mark = p + 1;
				m->status = 0;
				m->state = S_SL_CODE;
			} else {
				rc = HTTP_E_STATUS_LINE;
			}
			if (rc != HTTP_OK)
				goto fail;
			break;
		case S_SL_CODE:
			if (p - m->mark < 3) {
				if (c < '0' || c > '9') {
					rc = HTTP_E_STATUS_LINE;
					goto fail;
				}
				m->status = m->status * 10 + (c - '0');
				break;
			}
			if (m->status < 100 || m->status > 599 ||
			    (c != ' ' && c != CR)) {
				rc = c == LF ? HTTP_E_BARE_CR_LF :
				    HTTP_E_STATUS_LINE;
				goto fail;
			}
			/* "HTTP/1.1 200" with no reason at all is valid */
			m->reason_off = (uint32_t)(c == ' ' ? p + 1 : p);
			m->reason_len = 0;
			m->state = c == ' ' ? S_SL_REASON : S_SL_LF;
			break;
		case S_SL_REASON:
			if (c == CR) {
				m->reason_len = (uint32_t)(p - m->reason_off);
				m->state = S_SL_LF;
			} else if (c != '\t' && !is_fvchar(c) && c != ' ') {
				rc = c == LF ? HTTP_E_BARE_CR_LF :
				    HTTP_E_STATUS_LINE;
				goto fail;
			}
			break;

		case S_FIELD_START:
			if (c == CR) {
				m->state = S_END_LF;
			} else if (is_tchar(c)) {
				if (m->nfields >= cap || f == NULL) {
					rc = HTTP_E_TOO_MANY_FIELDS;
					goto fail;
				}
				m->line_start = p;
				memset(f, 0, sizeof(*f));
				f->name_off = (uint32_t)p;
				m->state = S_NAME;
			} else {
				/* SP/HTAB: obs-fold, or whitespace before the
				 * first field (RFC 9112 2.2, 5.2) */
				if (c == LF)
					rc = HTTP_E_BARE_CR_LF;
				else if (is_ows(c) && m->nfields > 0)
					rc = HTTP_E_OBS_FOLD;
				else
					rc = HTTP_E_FIELD;
				goto fail;
			}
			break;
		case S_NAME:
			if (c == ':') {
				f->name_len = (uint16_t)(p - f->name_off);
				m->state = S_VALUE_OWS;
			} else if (!is_tchar(c) || p - f->name_off >= 0xffff) {
				/* incl. SP before the colon (RFC 9112 5.1) */
				rc = c == LF ? HTTP_E_BARE_CR_LF :
				    HTTP_E_FIELD;
				goto fail;
			}
			break;
		case S_VALUE_OWS:
		case S_VALUE:
			if (is_fvchar(c)) {
				if (m->state == S_VALUE_OWS) {
					f->value_off = (uint32_t)p;
					m->state = S_VALUE;
				}
				m->mark = p + 1;	/* end of value */
				/* Fast path: most of a value is plain bytes; take
				 * them without a trip through the switch. */
				size_t end = len < hmax ? len : hmax;
				while (p + 1 < end) {
					unsigned char d = (unsigned char)buf[p + 1];
					if (is_fvchar(d))
						m->mark = p + 2;
					else if (!is_ows(d))
						break;
					p++;
				}
			} else if (c == CR) {
				if (m->state == S_VALUE_OWS) {
					f->value_off = (uint32_t)p;
					m->mark = p;
				}
				m->state = S_VALUE_LF;
			} else if (!is_ows(c)) {
				/* NUL, other CTL, lone LF: RFC 9110 5.5 */
				rc = c == LF ? HTTP_E_BARE_CR_LF :
				    HTTP_E_FIELD;
				goto fail;
			}
			break;
		case S_VALUE_LF:
			if (c != LF) {
				/* a CR inside a value ("a\rb") */
				rc = HTTP_E_BARE_CR_LF;
				goto fail;
			}
			f->value_len = (uint32_t)(m->mark - f->value_off);
			f->id = (uint16_t)hdr_lookup(buf + f->name_off,
			    f->name_len);
			f->flags = hdr_is_hop(f->id) ? HF_HOP : 0;
			m->nfields++;
			f = m->nfields < m->fields_cap ?
			    &m->fields[m->nfields] : NULL;
			m->line_start = p + 1;
			m->state = S_FIELD_START;
			break;
		case S_END_LF:
			if (c != LF) {
				rc = HTTP_E_BARE_CR_LF;
				goto fail;
			}
			m->pos = p + 1;
			m->header_len = p + 1;
			rc = req ? analyze_request(m, buf) :
			    analyze_response(m, buf, req_method);
			if (rc != HTTP_OK) {
				m->state = rc;
				return rc;
			}
			m->state = S_DONE;
			return HTTP_OK;
		default:
			rc = HTTP_E_FIELD;	/* unreachable */
			goto fail;
		}
	}
	m->pos = p;
	return HTTP_MORE;
fail:
	m->pos = p;
	m->state = rc;
	return rc;
}

int
http_parse_request(struct http_msg *m, const char *buf, size_t len,
    const struct http_limits *lim)
{
	return parse_block(m, buf, len, lim, true, M_OTHER);
}

int
http_parse_response(struct http_msg *m, const char *buf, size_t len,
    const struct http_limits *lim, enum http_method req_method)
{
	return parse_block(m, buf, len, lim, false, req_method);
}

/* Status for an error: the client's fault (4xx/5xx per RFC 9112 3 and
 * RFC 6585) or, in an origin's response, always 502. */
int
http_err_status(int err, bool in_response)
{
	if (in_response)
		return 502;
	switch (err) {
	case HTTP_E_METHOD:
	case HTTP_E_TE_UNKNOWN:		return 501;
	case HTTP_E_URI_TOO_LONG:	return 414;
	case HTTP_E_HEADER_TOO_BIG:
	case HTTP_E_TOO_MANY_FIELDS:	return 431;
	case HTTP_E_VERSION_UNSUPPORTED: return 505;
	case HTTP_E_EXPECT:		return 417;
	default:			return 400;
	}
}

const char *
http_err_str(int err)
{
	switch (err) {
	case HTTP_OK:			return "ok";
	case HTTP_MORE:			return "incomplete";
	case HTTP_DATA:			return "chunk data";
	case HTTP_DONE:			return "chunked body complete";
	case HTTP_E_REQUEST_LINE:	return "malformed request line";
	case HTTP_E_METHOD:		return "method too long";
	case HTTP_E_URI_TOO_LONG:	return "request-target too long";
	case HTTP_E_VERSION:		return "malformed HTTP version";
	case HTTP_E_VERSION_UNSUPPORTED: return "unsupported HTTP version";
	case HTTP_E_FIELD:		return "malformed field line";
	case HTTP_E_OBS_FOLD:		return "obsolete line folding";
	case HTTP_E_BARE_CR_LF:		return "bare CR or LF";
	case HTTP_E_HEADER_TOO_BIG:	return "header section too large";
	case HTTP_E_TOO_MANY_FIELDS:	return "too many header fields";
	case HTTP_E_CONTENT_LENGTH:	return "bad or repeated Content-Length";
	case HTTP_E_TE_UNKNOWN:		return "unsupported transfer coding";
	case HTTP_E_TE_BAD:		return "bad Transfer-Encoding framing";
	case HTTP_E_HOST:		return "missing, duplicate or bad Host";
	case HTTP_E_EXPECT:		return "unsupported Expect";
	case HTTP_E_STATUS_LINE:	return "malformed status line";
	case HTTP_E_CHUNK:		return "malformed chunked body";
	case HTTP_E_CHUNK_EXT_TOO_LONG:	return "chunk extensions too long";
	case HTTP_E_CONNECTION:		return "Connection names framing";
	default:			return "unknown parse error";
	}
}
