/*
 * test_http_parse.c - unit tests for worker/http_parse.c.
 *
 * Tables of named request, response and chunked-body cases, most of
 * them taken from HOSTILE.md (case numbers in the names).  Every case is
 * also parsed after splitting its input at every offset and fed one
 * byte at a time, each time from a fresh heap copy of exactly the bytes
 * offered (so ASan catches any read past len and any pointer kept
 * between calls), and must give the same result.  The Transfer-Encoding
 * obfuscation grid (13 bytes x 10 positions) is generated in a loop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http_parse.h"

#define CAP 128

static const struct http_limits lim_default = { 8192, 4096, 64 };

/* ------------------------------------------------------------------ */
/* helpers                                                            */

static char *
dup_bytes(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	assert_non_null(p);
	if (n)
		memcpy(p, s, n);
	return p;
}

struct pctx {
	bool req;
	enum http_method req_method;	/* responses */
	const struct http_limits *lim;
};

static int
do_parse(const struct pctx *px, struct http_msg *m, const char *b, size_t n)
{
	if (px->req)
		return http_parse_request(m, b, n, px->lim);
	return http_parse_response(m, b, n, px->lim, px->req_method);
}

/* Everything a caller may read from a parsed message. */
static bool
msg_same(const struct http_msg *a, const struct http_msg *b)
{
	return a->method == b->method && a->method_off == b->method_off &&
	    a->method_len == b->method_len && a->target_off == b->target_off &&
	    a->target_len == b->target_len && a->status == b->status &&
	    a->reason_off == b->reason_off && a->reason_len == b->reason_len &&
	    a->version_major == b->version_major &&
	    a->version_minor == b->version_minor &&
	    a->nfields == b->nfields &&
	    memcmp(a->fields, b->fields,
	    a->nfields * sizeof(*a->fields)) == 0 &&
	    a->header_len == b->header_len && a->flags == b->flags &&
	    a->body == b->body && a->content_length == b->content_length &&
	    a->host_idx == b->host_idx && a->pos == b->pos;
}

/*
 * Parse in[0..len) whole, then again after a split at every offset
 * (prefix, then everything), then one byte at a time.  The first parse
 * must return want; the others must agree with it exactly.  ref (if not
 * NULL) receives the whole-input result; its fields live in reff.
 * Returns the number of failures (reported).
 */
static unsigned
check_split(const struct pctx *px, const char *name, const char *in,
    size_t len, int want, struct http_msg *ref, struct http_field *reff)
{
	struct http_field f_ref[CAP], f_m[CAP];
	struct http_msg r, m;
	char *full = dup_bytes(in, len);
	unsigned bad = 0;
	size_t k, stop;
	int rc, r1, r2 = HTTP_MORE;

	if (reff == NULL)
		reff = f_ref;
	http_msg_init(&r, reff, CAP);
	rc = do_parse(px, &r, full, len);
	if (ref != NULL)
		*ref = r;
	if (rc != want) {
		print_error("case '%s': got %d (%s), want %d (%s)\n", name, rc,
		    http_err_str(rc), want, http_err_str(want));
		free(full);
		return 1;
	}
	stop = rc == HTTP_OK ? r.header_len : len;
	for (k = 0; k < stop && bad < 3; k++) {
		char *pre = dup_bytes(in, k);

		http_msg_init(&m, f_m, CAP);
		r1 = do_parse(px, &m, pre, k);
		free(pre);
		r2 = do_parse(px, &m, full, len);
		if ((r1 != HTTP_MORE && (r1 != rc || rc >= 0)) || r2 != rc ||
		    (rc == HTTP_OK && !msg_same(&r, &m))) {
			print_error("case '%s': split at %zu: %d then %d, "
			    "want %d\n", name, k, r1, r2, rc);
			bad++;
		}
	}
	http_msg_init(&m, f_m, CAP);
	for (k = 1; k <= len; k++) {
		char *pre = dup_bytes(in, k);

		r2 = do_parse(px, &m, pre, k);
		free(pre);
		if (r2 != HTTP_MORE)
			break;
	}
	if (r2 != rc || (rc == HTTP_OK && !msg_same(&r, &m))) {
		print_error("case '%s': byte at a time gave %d, want %d\n",
		    name, r2, rc);
		bad++;
	}
	/* errors are sticky; OK is idempotent */
	if (rc != HTTP_MORE && do_parse(px, &r, full, len) != rc) {
		print_error("case '%s': second call differs\n", name);
		bad++;
	}
	free(full);
	return bad;
}

/* ------------------------------------------------------------------ */
/* requests                                                           */

struct req_case {
	const char *name;
	const char *in;
	size_t len;
	int rc;
	enum http_body body;
	uint64_t cl;
	uint32_t flags;
	enum http_method method;
	unsigned nfields;
};

#define ROK(n, s, body, cl, fl, meth, nf) \
	{ n, s, sizeof(s) - 1, HTTP_OK, body, cl, fl, meth, nf }
#define RERR(n, s, rc) { n, s, sizeof(s) - 1, rc, BODY_NONE, 0, 0, M_OTHER, 0 }

#define GETL	"GET http://o.test/a HTTP/1.1\r\n"
#define POSTL	"POST http://o.test/a HTTP/1.1\r\nHost: o.test\r\n"
#define HOST	"Host: o.test\r\n"
#define TE	"Transfer-Encoding: "
#define CL	"Content-Length: "
#define CHUNKED_BODY "5\r\nhello\r\n0\r\n\r\n"

static const struct req_case req_cases[] = {
	/* valid */
	ROK("simple get", GETL HOST "\r\n", BODY_NONE, 0, 0, M_GET, 1),
	ROK("origin-form", "GET /a?b HTTP/1.1\r\n" HOST "User-Agent: t\r\n\r\n",
	    BODY_NONE, 0, 0, M_GET, 2),
	ROK("leading empty lines", "\r\n\r\n" GETL HOST "\r\n", BODY_NONE, 0,
	    0, M_GET, 1),
	ROK("http/1.0 no host", "GET http://o.test/ HTTP/1.0\r\n\r\n",
	    BODY_NONE, 0, MF_CONN_CLOSE, M_GET, 0),
	ROK("http/1.0 keep-alive", "GET http://o.test/ HTTP/1.0\r\n"
	    "Connection: Keep-Alive\r\n\r\n", BODY_NONE, 0, MF_KEEP_ALIVE,
	    M_GET, 1),
	ROK("post cl", POSTL CL "5\r\n\r\nhello", BODY_LENGTH, 5, MF_HAS_CL,
	    M_POST, 2),
	ROK("post cl 0", POSTL CL "0\r\n\r\n", BODY_LENGTH, 0, MF_HAS_CL,
	    M_POST, 2),
	ROK("cl max", POSTL CL "9223372036854775807\r\n\r\n", BODY_LENGTH,
	    INT64_MAX, MF_HAS_CL, M_POST, 2),
	ROK("cl leading zeros", POSTL CL "0005\r\n\r\n", BODY_LENGTH, 5,
	    MF_HAS_CL, M_POST, 2),
	ROK("te chunked", POSTL TE "chunked\r\n\r\n" CHUNKED_BODY,
	    BODY_CHUNKED, 0, MF_HAS_TE, M_POST, 2),
	ROK("#7 te CHUNKED", POSTL TE "CHUNKED\r\n\r\n", BODY_CHUNKED, 0,
	    MF_HAS_TE, M_POST, 2),
	ROK("te OWS", POSTL "Transfer-Encoding:\t chunked \t\r\n\r\n",
	    BODY_CHUNKED, 0, MF_HAS_TE, M_POST, 2),
	ROK("connection close", GETL HOST "Connection: close\r\n\r\n",
	    BODY_NONE, 0, MF_CONN_CLOSE, M_GET, 2),
	ROK("#36 nominated", GETL HOST "Connection: close, X-Secret\r\n"
	    "X-Secret: 1\r\n\r\n", BODY_NONE, 0, MF_CONN_CLOSE, M_GET, 3),
	ROK("connection empty elements", GETL HOST "Connection: ,close,,\r\n"
	    "\r\n", BODY_NONE, 0, MF_CONN_CLOSE, M_GET, 2),
	ROK("websocket", GETL HOST "Connection: keep-alive, Upgrade\r\n"
	    "Upgrade: WebSocket\r\n\r\n", BODY_NONE, 0,
	    MF_UPGRADE_WS | MF_KEEP_ALIVE, M_GET, 3),
	ROK("upgrade without connection", GETL HOST "Upgrade: websocket\r\n"
	    "\r\n", BODY_NONE, 0, 0, M_GET, 2),
	ROK("#35 expect 100", POSTL "Expect: 100-Continue\r\n" CL "3\r\n\r\n",
	    BODY_LENGTH, 3, MF_EXPECT_100 | MF_HAS_CL, M_POST, 3),
	ROK("#35 expect no body", GETL HOST "Expect: 100-continue\r\n\r\n",
	    BODY_NONE, 0, MF_EXPECT_100, M_GET, 2),
	RERR("#26 lowercase method", "get http://o.test/ HTTP/1.1\r\n" HOST
	    "\r\n", HTTP_E_REQUEST_LINE),
	RERR("#26 mixed-case method", "GeT http://o.test/ HTTP/1.1\r\n" HOST
	    "\r\n", HTTP_E_REQUEST_LINE),
	ROK("extension method", "M-SEARCH http://o.test/ HTTP/1.1\r\n" HOST
	    "\r\n", BODY_NONE, 0, 0, M_OTHER, 1),
	RERR("#36 Connection: Authorization", GETL HOST
	    "Connection: Authorization\r\nAuthorization: Basic eA==\r\n\r\n",
	    HTTP_E_CONNECTION),
	ROK("connect", "CONNECT o.test:443 HTTP/1.1\r\nHost: o.test:443\r\n"
	    "\r\n", BODY_NONE, 0, 0, M_CONNECT, 1),
	ROK("obs-text in target and value", "GET /\xc3\xa9 HTTP/1.1\r\n" HOST
	    "X-U: \xc3\xa9t\xe9\r\n\r\n", BODY_NONE, 0, 0, M_GET, 2),
	ROK("empty value", GETL HOST "X-Empty:\r\nX-E2: \t \r\n\r\n",
	    BODY_NONE, 0, 0, M_GET, 3),
	ROK("method 32 chars", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF / HTTP/1.1\r\n"
	    HOST "\r\n", BODY_NONE, 0, 0, M_OTHER, 1),
	ROK("host v6 port", GETL "Host: [::1]:8080\r\n\r\n", BODY_NONE, 0, 0,
	    M_GET, 1),
	ROK("other methods", "DELETE http://o.test/ HTTP/1.1\r\n" HOST "\r\n",
	    BODY_NONE, 0, 0, M_DELETE, 1),

	/* A. framing */
	RERR("#1 differing cl", POSTL CL "5\r\n" CL "6\r\n\r\nhello!",
	    HTTP_E_CONTENT_LENGTH),
	RERR("#2 equal cl twice", POSTL CL "5\r\n" CL "5\r\n\r\n",
	    HTTP_E_CONTENT_LENGTH),
	RERR("#2 cl list", POSTL CL "5, 5\r\n\r\n", HTTP_E_CONTENT_LENGTH),
	RERR("#3 cl +5", POSTL CL "+5\r\n\r\n", HTTP_E_CONTENT_LENGTH),
	RERR("#3 cl -1", POSTL CL "-1\r\n\r\n", HTTP_E_CONTENT_LENGTH),
	RERR("#3 cl 0x5", POSTL CL "0x5\r\n\r\n", HTTP_E_CONTENT_LENGTH),
	RERR("#3 cl 5x", POSTL CL "5x\r\n\r\n", HTTP_E_CONTENT_LENGTH),
	RERR("#3 cl 5 5", POSTL CL "5 5\r\n\r\n", HTTP_E_CONTENT_LENGTH),
	RERR("#3 cl 1_0", POSTL CL "1_0\r\n\r\n", HTTP_E_CONTENT_LENGTH),
	RERR("#3 cl empty", POSTL CL "\r\n\r\n", HTTP_E_CONTENT_LENGTH),
	RERR("#4 cl 2^64+5", POSTL CL "18446744073709551621\r\n\r\n",
	    HTTP_E_CONTENT_LENGTH),
	RERR("#4 cl 20 nines", POSTL CL "99999999999999999999\r\n\r\n",
	    HTTP_E_CONTENT_LENGTH),
	RERR("#4 cl 2^63", POSTL CL "9223372036854775808\r\n\r\n",
	    HTTP_E_CONTENT_LENGTH),
	RERR("#5 cl + te", POSTL CL "4\r\n" TE "chunked\r\n\r\n" CHUNKED_BODY,
	    HTTP_E_TE_BAD),
	RERR("#5 te + cl", POSTL TE "chunked\r\n" CL "4\r\n\r\n",
	    HTTP_E_TE_BAD),
	RERR("#6 chunked, identity", POSTL TE "chunked, identity\r\n\r\n",
	    HTTP_E_TE_BAD),
	RERR("#6 identity", POSTL TE "identity\r\n\r\n", HTTP_E_TE_UNKNOWN),
	RERR("#6 identity + cl", POSTL TE "identity\r\n" CL "5\r\n\r\n",
	    HTTP_E_TE_UNKNOWN),
	RERR("#6 gzip", POSTL TE "gzip\r\n\r\n", HTTP_E_TE_UNKNOWN),
	RERR("#6 gzip, chunked", POSTL TE "gzip, chunked\r\n\r\n",
	    HTTP_E_TE_UNKNOWN),
	RERR("#7 xchunked", POSTL TE "xchunked\r\n\r\n", HTTP_E_TE_UNKNOWN),
	RERR("#7 ,chunked", POSTL TE ",chunked\r\n\r\n", HTTP_E_TE_BAD),
	RERR("#7 chunked,", POSTL TE "chunked,\r\n\r\n", HTTP_E_TE_BAD),
	RERR("#7 space before colon", POSTL "Transfer-Encoding : chunked\r\n"
	    "\r\n", HTTP_E_FIELD),
	RERR("#7 VT before value", POSTL TE "\x0b" "chunked\r\n\r\n",
	    HTTP_E_FIELD),
	RERR("#7 FF after value", POSTL TE "chunked\x0c\r\n\r\n", HTTP_E_FIELD),
	RERR("#7 nbsp before value", POSTL TE "\xa0" "chunked\r\n\r\n",
	    HTTP_E_TE_BAD),
	RERR("#7 leading space first field", "POST http://o.test/ HTTP/1.1\r\n"
	    " Transfer-Encoding: chunked\r\n" HOST "\r\n", HTTP_E_FIELD),
	RERR("#7 chunked params", POSTL TE "chunked;q=1\r\n\r\n",
	    HTTP_E_TE_BAD),
	RERR("#7 bare LF in name", POSTL "Transfer-Encoding\n: chunked\r\n\r\n",
	    HTTP_E_BARE_CR_LF),
	RERR("#7 X then bare LF", POSTL "X: X\nTransfer-Encoding: chunked\r\n"
	    "\r\n", HTTP_E_BARE_CR_LF),
	RERR("#8 te twice", POSTL TE "chunked\r\n" TE "chunked\r\n\r\n",
	    HTTP_E_TE_BAD),
	RERR("#8 chunked, chunked", POSTL TE "chunked, chunked\r\n\r\n",
	    HTTP_E_TE_BAD),
	RERR("#8 two te fields", POSTL TE "gzip\r\n" TE "chunked\r\n\r\n",
	    HTTP_E_TE_BAD),
	RERR("#8 te chunked + junk", POSTL TE "chunked\r\n" TE "x\r\n\r\n",
	    HTTP_E_TE_BAD),
	RERR("#9 http/1.0 te", "POST http://o.test/a HTTP/1.0\r\n" TE
	    "chunked\r\n\r\n" CHUNKED_BODY, HTTP_E_TE_BAD),

	/* B. request line and fields */
	RERR("#19 obs-fold", GETL HOST "X-Foo: a\r\n b\r\n\r\n",
	    HTTP_E_OBS_FOLD),
	RERR("#19 obs-fold tab", GETL HOST "X-Foo: a\r\n\tb\r\n\r\n",
	    HTTP_E_OBS_FOLD),
	RERR("#19 obs-fold cl", POSTL CL "\r\n 5\r\n\r\n", HTTP_E_OBS_FOLD),
	RERR("#20 host space colon", GETL "Host : x\r\n\r\n", HTTP_E_FIELD),
	RERR("#20 cl space colon", POSTL "Content-Length : 5\r\n\r\n",
	    HTTP_E_FIELD),
	RERR("#20 tab before colon", GETL HOST "X\t: 5\r\n\r\n", HTTP_E_FIELD),
	RERR("#21 space-led first field", GETL " Host: evil\r\n" HOST "\r\n",
	    HTTP_E_FIELD),
	RERR("#21 tab-led first field", GETL "\tHost: evil\r\n\r\n",
	    HTTP_E_FIELD),
	RERR("#22 bare CR in value", GETL HOST "X-A: a\rb\r\n\r\n",
	    HTTP_E_BARE_CR_LF),
	RERR("#22 bare CR splits TE", GETL HOST "X: a\rTransfer-Encoding: "
	    "chunked\r\n\r\n", HTTP_E_BARE_CR_LF),
	RERR("#22 bare CR end of block", GETL HOST "\rX\r\n\r\n",
	    HTTP_E_BARE_CR_LF),
	RERR("#23 NUL in value", GETL HOST "X-A: a\0b\r\n\r\n", HTTP_E_FIELD),
	RERR("#23 NUL in host", GETL "Host: good.test\0.evil.test\r\n\r\n",
	    HTTP_E_FIELD),
	RERR("#23 NUL in name", GETL HOST "X-\0A: b\r\n\r\n", HTTP_E_FIELD),
	RERR("#24 bare LF section", "GET http://o.test/a HTTP/1.1\nHost: o\n"
	    "X: y\n\n", HTTP_E_BARE_CR_LF),
	RERR("#24 bare LF field", GETL "Host: o\nX: y\r\n\r\n",
	    HTTP_E_BARE_CR_LF),
	RERR("#24 bare LF end", GETL HOST "\n", HTTP_E_BARE_CR_LF),
	RERR("#24 CR CR LF", "GET http://o.test/a HTTP/1.1\r\r\n" HOST "\r\n",
	    HTTP_E_BARE_CR_LF),
	RERR("#24 leading bare LF", "\n" GETL HOST "\r\n", HTTP_E_BARE_CR_LF),
	RERR("#25 obs-text name", GETL HOST "Header\x85: v\r\n\r\n",
	    HTTP_E_FIELD),
	RERR("#25 DEL in name", GETL HOST "X\x7fY: v\r\n\r\n", HTTP_E_FIELD),
	RERR("#25 empty name", GETL HOST ": v\r\n\r\n", HTTP_E_FIELD),
	RERR("#25 no colon", GETL HOST "XA b\r\n\r\n", HTTP_E_FIELD),
	RERR("#25 no colon no space", GETL HOST "XAb\r\n\r\n", HTTP_E_FIELD),
	RERR("#26 two spaces", "GET  http://o.test/a HTTP/1.1\r\n" HOST "\r\n",
	    HTTP_E_REQUEST_LINE),
	RERR("#26 two spaces before version", "GET http://o.test/a  HTTP/1.1"
	    "\r\n" HOST "\r\n", HTTP_E_VERSION),
	RERR("#26 tab separator", "GET\thttp://o.test/a HTTP/1.1\r\n" HOST
	    "\r\n", HTTP_E_REQUEST_LINE),
	RERR("#26 tab before version", "GET http://o.test/a\tHTTP/1.1\r\n" HOST
	    "\r\n", HTTP_E_REQUEST_LINE),
	RERR("#26 VT separator", "GET\x0bhttp://o.test/a HTTP/1.1\r\n" HOST
	    "\r\n", HTTP_E_REQUEST_LINE),
	RERR("#26 lowercase version", "GET http://o.test/a http/1.1\r\n" HOST
	    "\r\n", HTTP_E_VERSION),
	RERR("#26 HTTP/1.32", "GET http://o.test/a HTTP/1.32\r\n" HOST "\r\n",
	    HTTP_E_VERSION),
	RERR("#26 HTTP/1.2", "GET http://o.test/a HTTP/1.2\r\n" HOST "\r\n",
	    HTTP_E_VERSION),
	RERR("#26 HTTP/2.0", "GET http://o.test/a HTTP/2.0\r\n" HOST "\r\n",
	    HTTP_E_VERSION_UNSUPPORTED),
	RERR("#26 HTTP/3.0", "GET http://o.test/a HTTP/3.0\r\n" HOST "\r\n",
	    HTTP_E_VERSION_UNSUPPORTED),
	RERR("#26 HTTP/0.9 explicit", "GET http://o.test/a HTTP/0.9\r\n\r\n",
	    HTTP_E_VERSION_UNSUPPORTED),
	RERR("#26 HTTP/1", "GET http://o.test/a HTTP/1\r\n" HOST "\r\n",
	    HTTP_E_VERSION),
	RERR("#26 trailing space", "GET http://o.test/a HTTP/1.1 \r\n" HOST
	    "\r\n", HTTP_E_VERSION),
	RERR("#26 G(T", "G(T http://o.test/a HTTP/1.1\r\n" HOST "\r\n",
	    HTTP_E_REQUEST_LINE),
	RERR("#26 http/0.9", "GET /\r\n\r\n", HTTP_E_VERSION),
	RERR("#26 no target", "GET\r\n\r\n", HTTP_E_REQUEST_LINE),
	RERR("#26 empty target", "GET  HTTP/1.1\r\n\r\n", HTTP_E_REQUEST_LINE),
	RERR("#26 leading space", " GET / HTTP/1.1\r\n\r\n",
	    HTTP_E_REQUEST_LINE),
	RERR("method 33 chars", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG / HTTP/1.1"
	    "\r\n" HOST "\r\n", HTTP_E_METHOD),
	RERR("#27 space in target", "GET http://o.test/a b HTTP/1.1\r\n" HOST
	    "\r\n", HTTP_E_VERSION),
	RERR("#27 DEL in target", "GET http://o.test/a\x7f HTTP/1.1\r\n" HOST
	    "\r\n", HTTP_E_REQUEST_LINE),
	RERR("#27 NUL in target", "GET http://o.test/a\0 HTTP/1.1\r\n" HOST
	    "\r\n", HTTP_E_REQUEST_LINE),
	RERR("#28 no host", GETL "\r\n", HTTP_E_HOST),
	RERR("#28 two hosts", GETL HOST HOST "\r\n", HTTP_E_HOST),
	RERR("#28 two hosts differ", GETL HOST "host: evil.test\r\n\r\n",
	    HTTP_E_HOST),
	RERR("#28 host a b", GETL "Host: a b\r\n\r\n", HTTP_E_HOST),
	RERR("#28 host userinfo", GETL "Host: x@y\r\n\r\n", HTTP_E_HOST),
	RERR("#28 host v6 unclosed", GETL "Host: [::1\r\n\r\n", HTTP_E_HOST),
	RERR("#28 host empty", GETL "Host:\r\n\r\n", HTTP_E_HOST),
	RERR("#28 host bad port", GETL "Host: o:99999\r\n\r\n", HTTP_E_HOST),
	RERR("#28 connect no host", "CONNECT o.test:443 HTTP/1.1\r\n\r\n",
	    HTTP_E_HOST),
	RERR("#35 expect twice", POSTL "Expect: 100-continue\r\n"
	    "Expect: 100-continue\r\n\r\n", HTTP_E_EXPECT),
	RERR("#35 expect junk", POSTL "Expect: y 100-continue\r\n\r\n",
	    HTTP_E_EXPECT),
	RERR("#35 expect other", POSTL "Expect: 100-continue, x\r\n\r\n",
	    HTTP_E_EXPECT),
	RERR("#36 connection cl", POSTL CL "5\r\nConnection: Content-Length"
	    "\r\n\r\n", HTTP_E_CONNECTION),
	RERR("#36 connection host", GETL HOST "Connection: close, HOST\r\n\r\n",
	    HTTP_E_CONNECTION),
	RERR("#36 connection te", POSTL TE "chunked\r\nConnection: "
	    "transfer-encoding\r\n\r\n", HTTP_E_CONNECTION),
	RERR("connection bad token", GETL HOST "Connection: a b\r\n\r\n",
	    HTTP_E_FIELD),
};

static void
test_request_table(void **state)
{
	const struct pctx px = { true, M_OTHER, &lim_default };
	unsigned i, bad = 0;

	(void)state;
	for (i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		const struct req_case *c = &req_cases[i];
		struct http_field f[CAP];
		struct http_msg m;
		unsigned b;

		b = check_split(&px, c->name, c->in, c->len, c->rc, &m, f);
		if (b == 0 && c->rc == HTTP_OK && (m.body != c->body ||
		    m.content_length != c->cl || m.flags != c->flags ||
		    m.method != c->method || m.nfields != c->nfields)) {
			print_error("case '%s': body %d cl %llu flags %#x "
			    "method %d nfields %u\n", c->name, m.body,
			    (unsigned long long)m.content_length, m.flags,
			    m.method, m.nfields);
			b++;
		}
		bad += b;
	}
	assert_int_equal(bad, 0);
}

/* Offsets, trimming, ids and flags of individual fields. */
static void
test_request_fields(void **state)
{
	static const char in[] =
	    "POST http://o.test/p HTTP/1.1\r\n"
	    "hOsT:o.test\r\n"
	    "X-A: \t a  b \t \r\n"
	    "Connection: close, X-Secret, keep-alive\r\n"
	    "x-secret: 1\r\n"
	    "Proxy-Authorization: Basic x\r\n"
	    "Keep-Alive: 5\r\n"
	    "Content-Length: 2\r\n"
	    "\r\nhi";
	struct http_field f[CAP];
	struct http_msg m;
	const struct pctx px = { true, M_OTHER, &lim_default };

	(void)state;
	assert_int_equal(check_split(&px, "fields", in, sizeof(in) - 1,
	    HTTP_OK, &m, f), 0);
	assert_int_equal(m.header_len, sizeof(in) - 3);
	assert_int_equal(m.pos, m.header_len);
	assert_memory_equal(in + m.method_off, "POST", 4);
	assert_int_equal(m.method_len, 4);
	assert_int_equal(m.target_len, strlen("http://o.test/p"));
	assert_memory_equal(in + m.target_off, "http://o.test/p", m.target_len);
	assert_int_equal(m.version_major, 1);
	assert_int_equal(m.version_minor, 1);
	assert_int_equal(m.nfields, 7);
	assert_int_equal(m.host_idx, 0);

	assert_int_equal(f[0].id, H_HOST);
	assert_int_equal(f[0].value_len, 6);
	assert_memory_equal(in + f[0].value_off, "o.test", 6);
	assert_int_equal(f[1].id, H_OTHER);
	assert_int_equal(f[1].name_len, 3);
	assert_memory_equal(in + f[1].name_off, "X-A", 3);
	assert_int_equal(f[1].value_len, 4);
	assert_memory_equal(in + f[1].value_off, "a  b", 4);
	assert_int_equal(f[1].flags, 0);
	assert_int_equal(f[2].id, H_CONNECTION);
	assert_int_equal(f[2].flags, HF_HOP);
	assert_int_equal(f[3].flags, HF_NOMINATED);
	assert_int_equal(f[4].id, H_PROXY_AUTHORIZATION);
	assert_int_equal(f[4].flags, HF_HOP);
	assert_int_equal(f[5].id, H_KEEP_ALIVE);
	assert_int_equal(f[5].flags, HF_HOP);
	assert_int_equal(f[6].id, H_CONTENT_LENGTH);
	assert_int_equal(f[6].flags, 0);
	assert_int_equal(m.flags, MF_CONN_CLOSE | MF_KEEP_ALIVE | MF_HAS_CL);
	assert_int_equal(m.body, BODY_LENGTH);
	assert_int_equal(m.content_length, 2);
}

/* Every delimiter byte of RFC 9110 5.6.2 is refused inside a name. */
static void
test_request_name_delimiters(void **state)
{
	static const char delims[] = "(),/;<=>?@[\\]{}\" ";
	const struct pctx px = { true, M_OTHER, &lim_default };
	unsigned i, bad = 0;

	(void)state;
	for (i = 0; i < sizeof(delims) - 1; i++) {
		char in[128], name[32];
		int n = snprintf(in, sizeof(in), GETL HOST "X%cY: v\r\n\r\n",
		    delims[i]);

		snprintf(name, sizeof(name), "#25 name with 0x%02x",
		    (unsigned char)delims[i]);
		bad += check_split(&px, name, in, (size_t)n, HTTP_E_FIELD,
		    NULL, NULL);
	}
	assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------ */
/* the Transfer-Encoding obfuscation grid (HOSTILE 1.2)               */

/*
 * A grid result is acceptable when it is an error, or when the message
 * carries exactly one framing that the next hop cannot read otherwise:
 * chunked from exactly one TE field whose trimmed value is "chunked"
 * and no CL, or CL from exactly one CL field and no TE field at all.
 */
static bool
framing_canonical(const struct http_msg *m, const char *buf)
{
	unsigned k, nte = 0, ncl = 0;

	for (k = 0; k < m->nfields; k++) {
		const struct http_field *f = &m->fields[k];

		if (http_token_eq(buf + f->name_off, f->name_len,
		    "transfer-encoding")) {
			nte++;
			if (f->id != H_TRANSFER_ENCODING ||
			    !http_token_eq(buf + f->value_off, f->value_len,
			    "chunked"))
				return false;
		}
		if (http_token_eq(buf + f->name_off, f->name_len,
		    "content-length"))
			ncl++;
	}
	switch (m->body) {
	case BODY_CHUNKED:
		return nte == 1 && (ncl == 0 || (m->flags & MF_MUST_CLOSE));
	case BODY_LENGTH:
		return nte == 0 && ncl == 1;
	case BODY_NONE:
		return nte == 0 && ncl == 0;
	case BODY_CLOSE:
		return nte == 0 && ncl == 0 && (m->flags & MF_MUST_CLOSE);
	}
	return false;
}

static const unsigned char grid_bytes[] = {
	0x01, 0x04, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1f, 0x20, 0x7f,
	0xa0, 0xff,
};

/* %c is the probe byte; every template is one or two field lines. */
static const char *const grid_pos[] = {
	"Transfer-Encoding:%cchunked",		/* mid */
	"Transfer-Encoding%c: chunked",		/* post-name */
	"%cTransfer-Encoding: chunked",		/* pre-name */
	"Transfer-Encoding: chunked%c",		/* end */
	"X: X%cTransfer-Encoding: chunked",	/* x-pre */
	"Transfer-Encoding: chunked%cX: X",	/* end-x */
	"X: X\r%cTransfer-Encoding: chunked",	/* CR-x */
	"X: X%c\nTransfer-Encoding: chunked",	/* x-LF */
	"Transfer-Encoding: chunked\r%cX: X",	/* end-CR */
	"Transfer-Encoding: chunked%c\nX: X",	/* end-LF */
};

/* Expand the one "%c" of a template by hand (no non-literal format). */
static void
grid_line(char *out, size_t cap, const char *tmpl, unsigned char probe)
{
	const char *pc = strstr(tmpl, "%c");
	size_t pre = (size_t)(pc - tmpl);

	assert_true(strlen(tmpl) < cap);
	memcpy(out, tmpl, pre);
	out[pre] = (char)probe;
	strcpy(out + pre + 1, pc + 2);
}

static unsigned
grid_run(bool req, bool with_cl, unsigned *nok)
{
	const struct pctx px = { req, M_GET, &lim_default };
	unsigned p, b, bad = 0;

	for (p = 0; p < sizeof(grid_pos) / sizeof(grid_pos[0]); p++) {
		for (b = 0; b < sizeof(grid_bytes); b++) {
			char line[64], in[512], name[96];
			struct http_field f[CAP];
			struct http_msg m;
			size_t n;
			int rc;

			grid_line(line, sizeof(line), grid_pos[p],
			    grid_bytes[b]);
			n = (size_t)snprintf(in, sizeof(in),
			    "%s%s%s\r\n%s\r\n\r\n%s", req ?
			    "POST http://o.test/ HTTP/1.1\r\nHost: o.test\r\n"
			    : "HTTP/1.1 200 OK\r\n",
			    with_cl ? "Content-Length: 5\r\n" : "", line,
			    "Y: y", CHUNKED_BODY);
			snprintf(name, sizeof(name), "grid %s%s pos %u byte "
			    "0x%02x", req ? "req" : "resp", with_cl ? "+cl" :
			    "", p, grid_bytes[b]);
			http_msg_init(&m, f, CAP);
			rc = do_parse(&px, &m, in, n);
			if (rc == HTTP_MORE) {
				print_error("%s: incomplete\n", name);
				bad++;
				continue;
			}
			if (rc == HTTP_OK) {
				(*nok)++;
				if (!framing_canonical(&m, in)) {
					print_error("%s: accepted with "
					    "ambiguous framing (body %d)\n",
					    name, m.body);
					bad++;
				}
			}
			bad += check_split(&px, name, in, n, rc, NULL, NULL);
		}
	}
	return bad;
}

static void
test_te_grid(void **state)
{
	unsigned bad = 0, nok = 0, nok_cl = 0;

	(void)state;
	bad += grid_run(true, false, &nok);
	/* legal OWS: mid 0x09/0x20 and end 0x09/0x20 parse as chunked, and
	 * "X: X<SP>Transfer-Encoding..." is just an X value */
	assert_true(nok >= 4);
	bad += grid_run(true, true, &nok_cl);
	bad += grid_run(false, false, &nok);
	bad += grid_run(false, true, &nok);
	assert_int_equal(bad, 0);
}

/* Pin down a few grid cells exactly. */
static void
test_te_grid_cells(void **state)
{
	static const struct {
		const char *line;
		int rc;
		enum http_body body;
	} cells[] = {
		{ "Transfer-Encoding:\tchunked", HTTP_OK, BODY_CHUNKED },
		{ "Transfer-Encoding: chunked ", HTTP_OK, BODY_CHUNKED },
		{ "Transfer-Encoding: chunked\t", HTTP_OK, BODY_CHUNKED },
		{ "X: X Transfer-Encoding: chunked", HTTP_OK, BODY_NONE },
		{ "X: X\tTransfer-Encoding: chunked", HTTP_OK, BODY_NONE },
		{ "Transfer-Encoding: chunked X: X", HTTP_E_TE_BAD, 0 },
		{ "Transfer-Encoding:\x01" "chunked", HTTP_E_FIELD, 0 },
		{ "Transfer-Encoding\x20: chunked", HTTP_E_FIELD, 0 },
		{ "\x20Transfer-Encoding: chunked", HTTP_E_OBS_FOLD, 0 },
		{ "Transfer-Encoding: chunked\r\x20X: X", HTTP_E_BARE_CR_LF,
		  0 },
		{ "X: X\r\x0bTransfer-Encoding: chunked", HTTP_E_BARE_CR_LF,
		  0 },
		{ "Transfer-Encoding: chunked\xff", HTTP_E_TE_BAD, 0 },
		{ "Transfer-Encoding:\xff" "chunked", HTTP_E_TE_BAD, 0 },
	};
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(cells) / sizeof(cells[0]); i++) {
		char in[256];
		struct http_field f[CAP];
		struct http_msg m;
		int n = snprintf(in, sizeof(in), "POST http://o.test/ "
		    "HTTP/1.1\r\nHost: o\r\nA: b\r\n%s\r\n\r\n", cells[i].line);
		int rc;

		http_msg_init(&m, f, CAP);
		rc = http_parse_request(&m, in, (size_t)n, &lim_default);
		if (rc != cells[i].rc)
			fail_msg("cell '%s': %d, want %d", cells[i].line, rc,
			    cells[i].rc);
		if (rc == HTTP_OK)
			assert_int_equal(m.body, cells[i].body);
	}
}

/* ------------------------------------------------------------------ */
/* responses                                                          */

struct resp_case {
	const char *name;
	const char *in;
	size_t len;
	enum http_method req_method;
	int rc;
	int status;
	enum http_body body;
	uint64_t cl;
	uint32_t flags;
};

#define SOK(n, s, meth, st, body, cl, fl) \
	{ n, s, sizeof(s) - 1, meth, HTTP_OK, st, body, cl, fl }
#define SERR(n, s, rc) { n, s, sizeof(s) - 1, M_GET, rc, 0, BODY_NONE, 0, 0 }
#define OK200 "HTTP/1.1 200 OK\r\n"

static const struct resp_case resp_cases[] = {
	SOK("200 cl", OK200 CL "5\r\n\r\nhello", M_GET, 200, BODY_LENGTH, 5,
	    MF_HAS_CL),
	SOK("200 chunked", OK200 TE "chunked\r\n\r\n" CHUNKED_BODY, M_GET, 200,
	    BODY_CHUNKED, 0, MF_HAS_TE),
	SOK("200 close-delimited", OK200 "Server: x\r\n\r\nabc", M_GET, 200,
	    BODY_CLOSE, 0, MF_MUST_CLOSE),
	SOK("connection close", OK200 CL "0\r\nConnection: close\r\n\r\n",
	    M_GET, 200, BODY_LENGTH, 0, MF_HAS_CL | MF_CONN_CLOSE),
	SOK("1.0 no keep-alive", "HTTP/1.0 200 OK\r\n" CL "1\r\n\r\nx", M_GET,
	    200, BODY_LENGTH, 1, MF_HAS_CL | MF_CONN_CLOSE),
	SOK("1.0 keep-alive", "HTTP/1.0 200 OK\r\n" CL "1\r\nConnection: "
	    "keep-alive\r\n\r\nx", M_GET, 200, BODY_LENGTH, 1,
	    MF_HAS_CL | MF_KEEP_ALIVE),
	SOK("#41 equal duplicate cl", OK200 CL "5\r\n" CL "5\r\n\r\nhello",
	    M_GET, 200, BODY_LENGTH, 5, MF_HAS_CL),
	SOK("#41 equal cl list", OK200 CL "5, 5\r\n\r\nhello", M_GET, 200,
	    BODY_LENGTH, 5, MF_HAS_CL),
	SOK("#42 te + cl", OK200 TE "chunked\r\n" CL "30\r\n\r\n0\r\n\r\n"
	    "Response splitting attach", M_GET, 200, BODY_CHUNKED, 0,
	    MF_HAS_TE | MF_HAS_CL | MF_MUST_CLOSE),
	SOK("#43 1.0 chunked", "HTTP/1.0 200 OK\r\n" TE "chunked\r\n\r\n",
	    M_GET, 200, BODY_CLOSE, 0,
	    MF_HAS_TE | MF_MUST_CLOSE | MF_CONN_CLOSE),
	SERR("#44 gzip", OK200 TE "gzip\r\n\r\n", HTTP_E_TE_UNKNOWN),
	SERR("#44 identity", OK200 TE "identity\r\n\r\n", HTTP_E_TE_UNKNOWN),
	SERR("#44 chunked, gzip", OK200 TE "chunked, gzip\r\n\r\n",
	    HTTP_E_TE_UNKNOWN),
	SOK("#48 100 continue", "HTTP/1.1 100 Continue\r\n\r\n", M_POST, 100,
	    BODY_NONE, 0, 0),
	SOK("#48 101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
	    "websocket\r\nConnection: Upgrade\r\n\r\n", M_GET, 101, BODY_NONE,
	    0, MF_UPGRADE_WS),
	SOK("#48 1xx with te", "HTTP/1.1 103 Early\r\n" TE "chunked\r\n\r\n",
	    M_GET, 103, BODY_NONE, 0, MF_HAS_TE),
	SOK("#48 204 with cl", "HTTP/1.1 204 No Content\r\n" CL "10\r\n\r\n"
	    "0123456789", M_GET, 204, BODY_NONE, 0, MF_HAS_CL),
	SOK("#48 304 with cl", "HTTP/1.1 304 Not Modified\r\n" CL "10\r\n\r\n",
	    M_GET, 304, BODY_NONE, 0, MF_HAS_CL),
	SOK("#48 head with cl", OK200 CL "10\r\n\r\n", M_HEAD, 200, BODY_NONE,
	    0, MF_HAS_CL),
	SOK("connect 200", "HTTP/1.1 200 Connection established\r\n\r\n",
	    M_CONNECT, 200, BODY_NONE, 0, 0),
	SOK("connect 407 has body", "HTTP/1.1 407 Auth\r\n" CL "2\r\n\r\nno",
	    M_CONNECT, 407, BODY_LENGTH, 2, MF_HAS_CL),
	SOK("#49 no reason", "HTTP/1.1 200\r\n" CL "0\r\n\r\n", M_GET, 200,
	    BODY_LENGTH, 0, MF_HAS_CL),
	SOK("#49 empty reason", "HTTP/1.1 200 \r\n" CL "0\r\n\r\n", M_GET, 200,
	    BODY_LENGTH, 0, MF_HAS_CL),
	SOK("reason obs-text tab", "HTTP/1.1 404 N\xe9\tpas\r\n" CL "0\r\n\r\n",
	    M_GET, 404, BODY_LENGTH, 0, MF_HAS_CL),
	SOK("599", "HTTP/1.1 599 x\r\n\r\n", M_GET, 599, BODY_CLOSE, 0,
	    MF_MUST_CLOSE),

	SERR("#41 differing cl", OK200 CL "5\r\n" CL "6\r\n\r\n",
	    HTTP_E_CONTENT_LENGTH),
	SERR("#41 differing cl list", OK200 CL "5, 6\r\n\r\n",
	    HTTP_E_CONTENT_LENGTH),
	SERR("bad cl", OK200 CL "5x\r\n\r\n", HTTP_E_CONTENT_LENGTH),
	SERR("cl overflow", OK200 CL "18446744073709551621\r\n\r\n",
	    HTTP_E_CONTENT_LENGTH),
	SERR("#44 chunked, chunked", OK200 TE "chunked, chunked\r\n\r\n",
	    HTTP_E_TE_BAD),
	SERR("#44 chunked twice", OK200 TE "chunked\r\n" TE "chunked\r\n\r\n",
	    HTTP_E_TE_BAD),
	SERR("#44 chunked, gzip, chunked", OK200 TE "chunked, gzip, chunked"
	    "\r\n\r\n", HTTP_E_TE_BAD),
	SERR("gzip, chunked", OK200 TE "gzip, chunked\r\n\r\n",
	    HTTP_E_TE_UNKNOWN),
	SERR("chunked params", OK200 TE "chunked;x=1\r\n\r\n", HTTP_E_TE_BAD),
	SERR("#47 obs-fold", OK200 "X: a\r\n b\r\n\r\n", HTTP_E_OBS_FOLD),
	SERR("#47 space before colon", OK200 "X : a\r\n\r\n", HTTP_E_FIELD),
	SERR("#47 bare CR", OK200 "Set-Cookie: a\rLocation: //evil\r\n\r\n",
	    HTTP_E_BARE_CR_LF),
	SERR("#47 NUL", OK200 "X: a\0b\r\n\r\n", HTTP_E_FIELD),
	SERR("#47 lone LF", OK200 "X: a\nY: b\r\n\r\n", HTTP_E_BARE_CR_LF),
	SERR("#47 lone LF status", "HTTP/1.1 200 OK\nX: a\r\n\r\n",
	    HTTP_E_BARE_CR_LF),
	SERR("#49 2000", "HTTP/1.1 2000 OK\r\n\r\n", HTTP_E_STATUS_LINE),
	SERR("#49 20", "HTTP/1.1 20 OK\r\n\r\n", HTTP_E_STATUS_LINE),
	SERR("#49 099", "HTTP/1.1 099 OK\r\n\r\n", HTTP_E_STATUS_LINE),
	SERR("#49 600", "HTTP/1.1 600 OK\r\n\r\n", HTTP_E_STATUS_LINE),
	SERR("#49 reason CTL", "HTTP/1.1 200 O\x01K\r\n\r\n",
	    HTTP_E_STATUS_LINE),
	SERR("#49 reason DEL", "HTTP/1.1 200 O\x7fK\r\n\r\n",
	    HTTP_E_STATUS_LINE),
	SERR("#49 reason bare CR", "HTTP/1.1 200 O\rK\r\n\r\n",
	    HTTP_E_BARE_CR_LF),
	SERR("#49 ICY", "ICY 200 OK\r\n\r\n", HTTP_E_STATUS_LINE),
	SERR("HTTP/2 status", "HTTP/2 200 OK\r\n\r\n", HTTP_E_STATUS_LINE),
	SERR("HTTP/1.2 status", "HTTP/1.2 200 OK\r\n\r\n", HTTP_E_STATUS_LINE),
	SERR("lowercase status", "http/1.1 200 OK\r\n\r\n", HTTP_E_STATUS_LINE),
	SERR("two spaces status", "HTTP/1.1  200 OK\r\n\r\n",
	    HTTP_E_STATUS_LINE),
	SERR("leading CRLF status", "\r\nHTTP/1.1 200 OK\r\n\r\n",
	    HTTP_E_STATUS_LINE),
	SERR("status tab", "HTTP/1.1\t200 OK\r\n\r\n", HTTP_E_STATUS_LINE),
	SERR("connection cl", OK200 CL "1\r\nConnection: content-length\r\n"
	    "\r\n", HTTP_E_CONNECTION),
};

static void
test_response_table(void **state)
{
	unsigned i, bad = 0;

	(void)state;
	for (i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
		const struct resp_case *c = &resp_cases[i];
		const struct pctx px = { false, c->req_method, &lim_default };
		struct http_field f[CAP];
		struct http_msg m;
		unsigned b;

		b = check_split(&px, c->name, c->in, c->len, c->rc, &m, f);
		if (b == 0 && c->rc == HTTP_OK && (m.body != c->body ||
		    m.content_length != c->cl || m.flags != c->flags ||
		    m.status != c->status)) {
			print_error("case '%s': status %d body %d cl %llu "
			    "flags %#x\n", c->name, m.status, m.body,
			    (unsigned long long)m.content_length, m.flags);
			b++;
		}
		bad += b;
	}
	assert_int_equal(bad, 0);
}

static void
test_response_reason(void **state)
{
	static const char a[] = "HTTP/1.1 404 Not Found\r\n\r\n";
	static const char b[] = "HTTP/1.1 200\r\n\r\n";
	struct http_field f[CAP];
	struct http_msg m;

	(void)state;
	http_msg_init(&m, f, CAP);
	assert_int_equal(http_parse_response(&m, a, sizeof(a) - 1,
	    &lim_default, M_GET), HTTP_OK);
	assert_int_equal(m.reason_len, 9);
	assert_memory_equal(a + m.reason_off, "Not Found", 9);
	assert_int_equal(m.version_minor, 1);
	assert_int_equal(m.host_idx, -1);
	http_msg_init(&m, f, CAP);
	assert_int_equal(http_parse_response(&m, b, sizeof(b) - 1,
	    &lim_default, M_GET), HTTP_OK);
	assert_int_equal(m.reason_len, 0);
	assert_int_equal(m.status, 200);
}

/* ------------------------------------------------------------------ */
/* limits (HOSTILE #34, #49)                                          */

static int
parse_generated(const char *in, size_t n, const struct http_limits *lim,
    bool req)
{
	struct http_field f[CAP];
	struct http_msg m;
	char *copy = dup_bytes(in, n);
	int rc;

	http_msg_init(&m, f, CAP);
	rc = req ? http_parse_request(&m, copy, n, lim) :
	    http_parse_response(&m, copy, n, lim, M_GET);
	free(copy);
	return rc;
}

/* "GET /aaa...a HTTP/1.1\r\nHost: o\r\n\r\n" with a target of tlen. */
static size_t
make_uri_req(char *buf, size_t tlen, bool complete)
{
	size_t n = 0;

	memcpy(buf, "GET /", 5);
	n = 5;
	memset(buf + n, 'a', tlen - 1);
	n += tlen - 1;
	if (complete) {
		memcpy(buf + n, " HTTP/1.1\r\nHost: o\r\n\r\n", 23);
		n += 23;
	}
	return n;
}

static void
test_limit_uri(void **state)
{
	const struct http_limits lim = { 65536, 1024, 64 };
	char *buf = malloc(32768);
	size_t n;

	(void)state;
	assert_non_null(buf);
	n = make_uri_req(buf, 1024, true);
	assert_int_equal(parse_generated(buf, n, &lim, true), HTTP_OK);
	n = make_uri_req(buf, 1025, true);
	assert_int_equal(parse_generated(buf, n, &lim, true),
	    HTTP_E_URI_TOO_LONG);
	/* detected while the line is still incomplete */
	n = make_uri_req(buf, 1025, false);
	assert_int_equal(parse_generated(buf, n, &lim, true),
	    HTTP_E_URI_TOO_LONG);
	n = make_uri_req(buf, 1024, false);
	assert_int_equal(parse_generated(buf, n, &lim, true), HTTP_MORE);
	/* #34: a 20 KB URI under the default limits */
	n = make_uri_req(buf, 20000, true);
	assert_int_equal(parse_generated(buf, n, &lim_default, true),
	    HTTP_E_URI_TOO_LONG);
	assert_int_equal(http_err_status(HTTP_E_URI_TOO_LONG, false), 414);
	free(buf);
}

static void
test_limit_header_size(void **state)
{
	const struct http_limits lim = { 256, 128, 64 };
	static const char head[] = "GET / HTTP/1.1\r\nHost: o\r\nX: ";
	char *buf = malloc(300000);
	size_t n, vlen;

	(void)state;
	assert_non_null(buf);
	/* a block of exactly 256 bytes passes, 257 does not */
	vlen = 256 - (sizeof(head) - 1) - 4;
	memcpy(buf, head, sizeof(head) - 1);
	memset(buf + sizeof(head) - 1, 'v', vlen);
	n = sizeof(head) - 1 + vlen;
	memcpy(buf + n, "\r\n\r\n", 4);
	assert_int_equal(parse_generated(buf, n + 4, &lim, true), HTTP_OK);
	memset(buf + sizeof(head) - 1, 'v', vlen + 1);
	memcpy(buf + n + 1, "\r\n\r\n", 4);
	assert_int_equal(parse_generated(buf, n + 5, &lim, true),
	    HTTP_E_HEADER_TOO_BIG);
	/* detected before the block ends: 256 bytes of an unfinished
	 * field are still MORE, 257 are too many */
	memset(buf + sizeof(head) - 1, 'v', 280);
	assert_int_equal(parse_generated(buf, 256, &lim, true), HTTP_MORE);
	assert_int_equal(parse_generated(buf, 257, &lim, true),
	    HTTP_E_HEADER_TOO_BIG);
	/* #34: one 200 KB field under the default limits */
	memcpy(buf, head, sizeof(head) - 1);
	memset(buf + sizeof(head) - 1, 'v', 200000);
	n = sizeof(head) - 1 + 200000;
	memcpy(buf + n, "\r\n\r\n", 4);
	assert_int_equal(parse_generated(buf, n + 4, &lim_default, true),
	    HTTP_E_HEADER_TOO_BIG);
	/* many empty lines before the request line count too */
	for (n = 0; n < 400; n += 2)
		memcpy(buf + n, "\r\n", 2);
	assert_int_equal(parse_generated(buf, n, &lim, true),
	    HTTP_E_HEADER_TOO_BIG);
	/* #49: a 64 KB reason phrase */
	memcpy(buf, "HTTP/1.1 200 ", 13);
	memset(buf + 13, 'r', 65536);
	memcpy(buf + 13 + 65536, "\r\n\r\n", 4);
	assert_int_equal(parse_generated(buf, 13 + 65536 + 4, &lim_default,
	    false), HTTP_E_HEADER_TOO_BIG);
	assert_int_equal(http_err_status(HTTP_E_HEADER_TOO_BIG, false), 431);
	free(buf);
}

static size_t
make_many_fields(char *buf, unsigned nf)
{
	size_t n;
	unsigned i;

	n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: o\r\n");
	for (i = 1; i < nf; i++)
		n += (size_t)sprintf(buf + n, "X-%u: v\r\n", i);
	memcpy(buf + n, "\r\n", 2);
	return n + 2;
}

static void
test_limit_fields(void **state)
{
	const struct http_limits lim = { 1 << 20, 1024, 64 };
	char *buf = malloc(1 << 20);
	struct http_field f[10];
	struct http_msg m;
	size_t n;

	(void)state;
	assert_non_null(buf);
	n = make_many_fields(buf, 64);
	assert_int_equal(parse_generated(buf, n, &lim, true), HTTP_OK);
	n = make_many_fields(buf, 65);
	assert_int_equal(parse_generated(buf, n, &lim, true),
	    HTTP_E_TOO_MANY_FIELDS);
	/* #34: 5000 fields */
	n = make_many_fields(buf, 5000);
	assert_int_equal(parse_generated(buf, n, &lim, true),
	    HTTP_E_TOO_MANY_FIELDS);
	/* the array capacity is a limit too, whatever max_fields says */
	n = make_many_fields(buf, 10);
	http_msg_init(&m, f, 10);
	assert_int_equal(http_parse_request(&m, buf, n, &lim), HTTP_OK);
	n = make_many_fields(buf, 11);
	http_msg_init(&m, f, 10);
	assert_int_equal(http_parse_request(&m, buf, n, &lim),
	    HTTP_E_TOO_MANY_FIELDS);
	assert_int_equal(http_err_status(HTTP_E_TOO_MANY_FIELDS, false), 431);
	free(buf);
}

static void
test_err_status(void **state)
{
	static const struct { int err, st; } map[] = {
		{ HTTP_E_REQUEST_LINE, 400 }, { HTTP_E_METHOD, 501 },
		{ HTTP_E_URI_TOO_LONG, 414 }, { HTTP_E_VERSION, 400 },
		{ HTTP_E_VERSION_UNSUPPORTED, 505 }, { HTTP_E_FIELD, 400 },
		{ HTTP_E_OBS_FOLD, 400 }, { HTTP_E_BARE_CR_LF, 400 },
		{ HTTP_E_HEADER_TOO_BIG, 431 }, { HTTP_E_TOO_MANY_FIELDS, 431 },
		{ HTTP_E_CONTENT_LENGTH, 400 }, { HTTP_E_TE_UNKNOWN, 501 },
		{ HTTP_E_TE_BAD, 400 }, { HTTP_E_HOST, 400 },
		{ HTTP_E_EXPECT, 417 }, { HTTP_E_STATUS_LINE, 400 },
		{ HTTP_E_CHUNK, 400 }, { HTTP_E_CHUNK_EXT_TOO_LONG, 400 },
		{ HTTP_E_CONNECTION, 400 },
	};
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		assert_int_equal(http_err_status(map[i].err, false), map[i].st);
		assert_int_equal(http_err_status(map[i].err, true), 502);
		assert_string_not_equal(http_err_str(map[i].err),
		    "unknown parse error");
	}
	assert_true(http_token_eq("Chunked", 7, "chunked"));
	assert_false(http_token_eq("chunke", 6, "chunked"));
	assert_false(http_token_eq("chunkedx", 8, "chunked"));
}

/* ------------------------------------------------------------------ */
/* chunked decoder (HOSTILE #10-#15)                                  */

struct chunk_case {
	const char *name;
	const char *in;
	size_t len;
	int rc;			/* HTTP_DONE, HTTP_MORE or an error */
	const char *data;	/* decoded bytes expected */
	size_t consumed;	/* for HTTP_DONE: bytes up to the final LF */
};

#define CDONE(n, s, d) { n, s, sizeof(s) - 1, HTTP_DONE, d, sizeof(s) - 1 }
#define CDONE_AT(n, s, d, at) { n, s, sizeof(s) - 1, HTTP_DONE, d, at }
#define CMORE(n, s, d) { n, s, sizeof(s) - 1, HTTP_MORE, d, 0 }
#define CERR(n, s, rc) { n, s, sizeof(s) - 1, rc, "", 0 }
/* an error after some data was already returned */
#define CERRD(n, s, rc, d) { n, s, sizeof(s) - 1, rc, d, 0 }

static const struct chunk_case chunk_cases[] = {
	CDONE("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"),
	CDONE("two chunks", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "abcde"),
	CDONE("empty body", "0\r\n\r\n", ""),
	CDONE("hex upper", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
	CDONE("hex lower", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
	CDONE("leading zeros", "0005\r\nhello\r\n0000\r\n\r\n", "hello"),
	CDONE("16 digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", "hello"),
	CDONE("ext", "5;a=b\r\nhello\r\n0;x\r\n\r\n", "hello"),
	CDONE("ext BWS", "5 ;\ta = b ; c\r\nhello\r\n0\r\n\r\n", "hello"),
	CDONE("ext quoted", "5;a=\"x y\\\"z;\"\r\nhello\r\n0\r\n\r\n",
	    "hello"),
	CDONE("ext many", "5;a;b;c=d\r\nhello\r\n0\r\n\r\n", "hello"),
	CDONE("trailer", "5\r\nhello\r\n0\r\nX-T: 1\r\nY:\r\n\r\n", "hello"),
	CDONE("#15 trailer cl dropped", "5\r\nhello\r\n0\r\nContent-Length: "
	    "50\r\n\r\n", "hello"),
	CDONE("#15 trailer te dropped", "0\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n", ""),
	CDONE_AT("pipelined after", "1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
	    "x", 11),
	CDONE("data with CRLF inside", "4\r\n\r\n\r\n\r\n0\r\n\r\n",
	    "\r\n\r\n"),
	CMORE("truncated data", "5\r\nhel", "hel"),
	CMORE("truncated size", "5", ""),
	CMORE("truncated trailer", "0\r\nX: y\r\n", ""),
	CMORE("max size", "7fffffffffffffff\r\nab", "ab"),

	CERR("#10 17 digits wraps to 5", "10000000000000005\r\nhello\r\n0\r\n"
	    "\r\n", HTTP_E_CHUNK),
	CERR("#10 FFFFFFFFFFFFFFED", "FFFFFFFFFFFFFFED\r\nhello\r\n",
	    HTTP_E_CHUNK),
	CERR("#10 2^63", "8000000000000000\r\n", HTTP_E_CHUNK),
	CERR("#10 17 zeros", "00000000000000000\r\n\r\n", HTTP_E_CHUNK),
	CERR("#11 0x5", "0x5\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK),
	CERR("#11 +5", "+5\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK),
	CERR("#11 -5", "-5\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK),
	CERR("#11 leading space", " 5\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK),
	CERR("#11 trailing space", "5 \r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK),
	CERR("#11 empty size", "\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK),
	CERR("#11 z", "z\r\n", HTTP_E_CHUNK),
	CERR("#11 5z", "5z\r\nhello\r\n", HTTP_E_CHUNK),
	CERR("#12 LF in ext", "5;a\nb\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK),
	CERR("#12 CR CR", "2\r\r;a\r\nab\r\n0\r\n\r\n", HTTP_E_CHUNK),
	CERR("#12 NUL in ext", "5;\0x\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK),
	CERR("#12 NUL in ext name", "5;a\0\r\nhello\r\n0\r\n\r\n",
	    HTTP_E_CHUNK),
	CERR("#12 bare semicolon", "5;\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK),
	CERR("#12 semicolon then space", "5; \r\nhello\r\n0\r\n\r\n",
	    HTTP_E_CHUNK),
	CERR("#12 quoted CRLF", "5;a=\"x\r\ny\"\r\nhello\r\n0\r\n\r\n",
	    HTTP_E_CHUNK),
	CERR("#12 unterminated quote", "5;a=\"x\r\nhello\r\n", HTTP_E_CHUNK),
	CERR("#12 ext value space junk", "5;a=b c\r\nhello\r\n", HTTP_E_CHUNK),
	CERR("#12 ext empty value", "5;a=\r\nhello\r\n", HTTP_E_CHUNK),
	CERR("#12 CTL in quoted", "5;a=\"\x01\"\r\nhello\r\n", HTTP_E_CHUNK),
	CERRD("#13 data not followed by CRLF", "5\r\nhelloXX0\r\n\r\n",
	    HTTP_E_CHUNK, "hello"),
	CERRD("#13 data followed by LF", "5\r\nhello\n0\r\n\r\n",
	    HTTP_E_CHUNK, "hello"),
	CERRD("#13 data followed by CR only", "5\r\nhello\r0\r\n\r\n",
	    HTTP_E_CHUNK, "hello"),
	CERR("#14 bare LF lines", "5\nhello\n0\n\n", HTTP_E_CHUNK),
	CERRD("#14 bare LF last chunk", "5\r\nhello\r\n0\n\r\n",
	    HTTP_E_CHUNK, "hello"),
	CERRD("#14 bare LF end", "5\r\nhello\r\n0\r\n\n", HTTP_E_CHUNK,
	    "hello"),
	CERR("#15 trailer bare LF", "0\r\nX: y\n\r\n", HTTP_E_CHUNK),
	CERR("#15 trailer obs-fold", "0\r\nX: y\r\n z\r\n\r\n", HTTP_E_CHUNK),
	CERR("#15 trailer space colon", "0\r\nX : y\r\n\r\n", HTTP_E_CHUNK),
	CERR("#15 trailer NUL", "0\r\nX: \0\r\n\r\n", HTTP_E_CHUNK),
	CERR("#15 trailer no colon", "0\r\nXY\r\n\r\n", HTTP_E_CHUNK),
	CERR("#15 trailer empty name", "0\r\n: y\r\n\r\n", HTTP_E_CHUNK),
	CERR("#15 trailer bare CR", "0\r\nX: a\rb\r\n\r\n", HTTP_E_CHUNK),
};

struct chunk_out {
	int rc;
	char data[256];
	size_t dlen;
	size_t consumed;	/* total bytes consumed by the decoder */
	bool overflow;
	bool stray;		/* a data span outside the input */
};

/* Feed one buffer completely (or until DONE/error), collecting data. */
static bool
chunk_feed(struct http_chunked *c, const char *in, size_t n,
    struct chunk_out *o)
{
	size_t off = 0;

	while (off < n) {
		const char *d;
		size_t used, dl;
		int rc = http_chunked_parse(c, in + off, n - off, &used, &d,
		    &dl);

		o->consumed += used;
		off += used;
		o->rc = rc;
		if (rc == HTTP_DATA) {
			if (d < in || d + dl > in + n || dl == 0)
				o->stray = true;
			if (o->dlen + dl > sizeof(o->data)) {
				o->overflow = true;
				return false;
			}
			memcpy(o->data + o->dlen, d, dl);
			o->dlen += dl;
			o->rc = HTTP_MORE;
			continue;
		}
		if (rc != HTTP_MORE)
			return false;
		if (off != n) {
			o->stray = true;	/* MORE must eat everything */
			return false;
		}
	}
	return true;
}

static bool
chunk_out_same(const struct chunk_out *a, const struct chunk_out *b)
{
	return a->rc == b->rc && a->dlen == b->dlen &&
	    memcmp(a->data, b->data, a->dlen) == 0 &&
	    a->consumed == b->consumed && !a->stray && !b->stray &&
	    !a->overflow && !b->overflow;
}

static void
chunk_run_split(const char *in, size_t len, size_t k, struct chunk_out *o)
{
	struct http_chunked c;
	char *p1 = dup_bytes(in, k), *p2 = dup_bytes(in + k, len - k);

	memset(o, 0, sizeof(*o));
	o->rc = HTTP_MORE;
	http_chunked_init(&c);
	if (chunk_feed(&c, p1, k, o))
		chunk_feed(&c, p2, len - k, o);
	free(p1);
	free(p2);
}

static void
test_chunked_table(void **state)
{
	unsigned i, bad = 0;

	(void)state;
	for (i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
		const struct chunk_case *c = &chunk_cases[i];
		struct chunk_out ref, o;
		struct http_chunked ch;
		size_t k;

		chunk_run_split(c->in, c->len, c->len, &ref);
		if (ref.rc != c->rc || ref.dlen != strlen(c->data) ||
		    memcmp(ref.data, c->data, ref.dlen) != 0 || ref.stray ||
		    (c->rc == HTTP_DONE && ref.consumed != c->consumed)) {
			print_error("chunk case '%s': rc %d (want %d) data "
			    "'%.*s' consumed %zu\n", c->name, ref.rc, c->rc,
			    (int)ref.dlen, ref.data, ref.consumed);
			bad++;
			continue;
		}
		for (k = 0; k < c->len; k++) {
			chunk_run_split(c->in, c->len, k, &o);
			if (!chunk_out_same(&ref, &o)) {
				print_error("chunk case '%s': split at %zu "
				    "gave rc %d data '%.*s'\n", c->name, k,
				    o.rc, (int)o.dlen, o.data);
				bad++;
				break;
			}
		}
		/* one byte per call */
		memset(&o, 0, sizeof(o));
		o.rc = HTTP_MORE;
		http_chunked_init(&ch);
		for (k = 0; k < c->len; k++) {
			char *b = dup_bytes(c->in + k, 1);
			bool go = chunk_feed(&ch, b, 1, &o);

			free(b);
			if (!go)
				break;
		}
		if (!chunk_out_same(&ref, &o)) {
			print_error("chunk case '%s': byte at a time gave rc "
			    "%d\n", c->name, o.rc);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* Extension and trailer size limits; sticky errors and DONE. */
static void
test_chunked_limits(void **state)
{
	char *buf = malloc(70000);
	struct http_chunked c;
	const char *d;
	size_t used, dl, n;

	(void)state;
	assert_non_null(buf);
	/* 4096 ext bytes (";" + 4095-byte name) pass, 4097 do not */
	buf[0] = '1';
	buf[1] = ';';
	memset(buf + 2, 'e', 4095);
	memcpy(buf + 4097, "\r\nx\r\n0\r\n\r\n", 10);
	http_chunked_init(&c);
	assert_int_equal(http_chunked_parse(&c, buf, 4107, &used, &d, &dl),
	    HTTP_DATA);
	assert_int_equal(dl, 1);
	assert_int_equal(*d, 'x');
	assert_int_equal(http_chunked_parse(&c, buf + used, 4107 - used,
	    &used, &d, &dl), HTTP_DONE);
	memset(buf + 2, 'e', 4096);
	memcpy(buf + 4098, "\r\nx\r\n0\r\n\r\n", 10);
	http_chunked_init(&c);
	assert_int_equal(http_chunked_parse(&c, buf, 4108, &used, &d, &dl),
	    HTTP_E_CHUNK_EXT_TOO_LONG);
	/* #12: 64 KiB of extension, detected before the line ends */
	memset(buf + 2, 'e', 65536);
	http_chunked_init(&c);
	assert_int_equal(http_chunked_parse(&c, buf, 65538, &used, &d, &dl),
	    HTTP_E_CHUNK_EXT_TOO_LONG);
	/* sticky */
	assert_int_equal(http_chunked_parse(&c, "0\r\n\r\n", 5, &used, &d,
	    &dl), HTTP_E_CHUNK_EXT_TOO_LONG);
	assert_int_equal(http_err_status(HTTP_E_CHUNK_EXT_TOO_LONG, true),
	    502);

	/* trailers over 16 KiB */
	memcpy(buf, "0\r\n", 3);
	n = 3;
	while (n < 17000) {
		memcpy(buf + n, "X-Trailer: 0123456789012345678901234567\r\n",
		    41);
		n += 41;
	}
	memcpy(buf + n, "\r\n", 2);
	http_chunked_init(&c);
	assert_int_equal(http_chunked_parse(&c, buf, n + 2, &used, &d, &dl),
	    HTTP_E_CHUNK);

	/* DONE is stable and consumes nothing more */
	http_chunked_init(&c);
	assert_int_equal(http_chunked_parse(&c, "0\r\n\r\nX", 6, &used, &d,
	    &dl), HTTP_DONE);
	assert_int_equal(used, 5);
	assert_int_equal(http_chunked_parse(&c, "X", 1, &used, &d, &dl),
	    HTTP_DONE);
	assert_int_equal(used, 0);
	free(buf);
}

/* A DATA span never runs past the chunk, even when more is buffered. */
static void
test_chunked_spans(void **state)
{
	static const char in[] = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
	struct http_chunked c;
	const char *d;
	size_t used, dl, off = 0;

	(void)state;
	http_chunked_init(&c);
	assert_int_equal(http_chunked_parse(&c, in, sizeof(in) - 1, &used, &d,
	    &dl), HTTP_DATA);
	assert_ptr_equal(d, in + 3);
	assert_int_equal(dl, 3);
	assert_int_equal(used, 6);
	off += used;
	assert_int_equal(http_chunked_parse(&c, in + off, sizeof(in) - 1 - off,
	    &used, &d, &dl), HTTP_DATA);
	assert_ptr_equal(d, in + 11);
	assert_int_equal(dl, 2);
	off += used;
	assert_int_equal(http_chunked_parse(&c, in + off, sizeof(in) - 1 - off,
	    &used, &d, &dl), HTTP_DONE);
	assert_int_equal(off + used, sizeof(in) - 1);
	assert_int_equal(c.remaining, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_table),
		cmocka_unit_test(test_request_fields),
		cmocka_unit_test(test_request_name_delimiters),
		cmocka_unit_test(test_te_grid),
		cmocka_unit_test(test_te_grid_cells),
		cmocka_unit_test(test_response_table),
		cmocka_unit_test(test_response_reason),
		cmocka_unit_test(test_limit_uri),
		cmocka_unit_test(test_limit_header_size),
		cmocka_unit_test(test_limit_fields),
		cmocka_unit_test(test_err_status),
		cmocka_unit_test(test_chunked_table),
		cmocka_unit_test(test_chunked_limits),
		cmocka_unit_test(test_chunked_spans),
	};

	return cmocka_run_group_tests_name("http_parse", tests, NULL, NULL);
}
