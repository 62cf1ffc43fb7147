/*
 * tls_sni.c - peek the server name (SNI) out of a TLS ClientHello.
 *
 * What: the CONNECT filter's view into a tunnel.  The client's first
 * bytes are TLS records (RFC 8446 5.1) carrying one handshake message,
 * the ClientHello (RFC 8446 4.1.2, RFC 5246 7.4.1.2), whose
 * server_name extension (RFC 6066 3) names the host the client wants.
 *
 * Assumes: the caller hands us everything the client sent, from the
 * first byte, and calls again after each read while we answer
 * NEED_MORE.  Nothing is kept between calls.
 *
 * Why this way:
 * - Records are walked first and the handshake bytes they carry are
 *   copied into one buffer on the stack (at most TLS_SNI_MAX_HELLO), so
 *   a hello cut into many records -- a known way to slip past filters
 *   that only look at the first record -- reads like one cut into one.
 * - The hello is walked with a cursor that knows two limits: the end
 *   declared by the enclosing length field, and the bytes that have
 *   arrived.  A length that overruns its parent is MALFORMED at once,
 *   even before its bytes arrive; running out of arrived bytes is
 *   NEED_MORE.  So NEED_MORE always means "a valid prefix so far" and
 *   no length is trusted without a check against both limits.
 * - FOUND and NONE are only answered for a complete hello, so a second
 *   server_name extension or a second host_name later in the message
 *   is seen (RFC 6066 forbids both; a server might honour either).
 * - Names are checked strictly (LDH plus '_', label and name lengths)
 *   and IP literals are refused: RFC 6066 3 says "Literal IPv4 and IPv6
 *   addresses are not permitted in HostName".  A name whose last label
 *   is a number ("10.0.0.1", "2130706433", "0x7f.1") is what URL
 *   parsers and resolvers read as an IPv4 address, so it is refused too.
 * - Re-parsing the prefix on every call is O(bytes) per call; callers
 *   call once per read, not per byte, and the buffer is bounded by
 *   TLS_SNI_MAX_BUFFER, so the worst case stays small.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "worker/tls_sni.h"

#define REC_HDR			5	/* type, version (2), length (2) */
#define REC_MAX			16384	/* RFC 8446 5.1: plaintext <= 2^14 */
#define CT_HANDSHAKE		22
#define HS_HDR			4	/* type, length (3) */
#define HS_CLIENT_HELLO		1
#define RANDOM_LEN		32
#define SESSION_ID_MAX		32
#define EXT_SERVER_NAME		0
#define NAME_TYPE_HOST		0
#define HOST_MAX		253	/* without the trailing dot */
#define LABEL_MAX		63

/*
 * A cursor over the reassembled hello body.  end is the limit declared
 * by the innermost length field being walked; have is how many bytes
 * of the body have arrived.  pos <= have and pos <= end always hold.
 */
struct cur {
	const unsigned char *p;
	size_t pos, end, have;
	enum tls_sni_result res;	/* why the last step failed */
};

/* Are n more bytes inside the declared bound, and have they arrived? */
static bool
cur_need(struct cur *c, size_t n)
{
	if (n > c->end - c->pos) {
		c->res = TLS_SNI_MALFORMED;
		return false;
	}
	if (n > c->have - c->pos) {
		c->res = TLS_SNI_NEED_MORE;
		return false;
	}
	return true;
}

/* Read a big-endian integer of nbytes (1-3). */
static bool
cur_uint(struct cur *c, size_t nbytes, size_t *v)
{
	size_t x = 0;

	if (!cur_need(c, nbytes))
		return false;
	for (size_t i = 0; i < nbytes; i++)
		x = (x << 8) | c->p[c->pos + i];
	c->pos += nbytes;
	*v = x;
	return true;
}

static bool
cur_skip(struct cur *c, size_t n)
{
	if (!cur_need(c, n))
		return false;
	c->pos += n;
	return true;
}

static bool
cur_bad(struct cur *c)
{
	c->res = TLS_SNI_MALFORMED;
	return false;
}

/*
 * Enter a vector: read its nbytes-long length, check it against
 * [min, max] and against the enclosing bound, and make it the bound.
 * *saved receives the enclosing bound for cur_leave().
 */
static bool
cur_enter(struct cur *c, size_t nbytes, size_t min, size_t max,
    size_t *saved)
{
	size_t v;

	if (!cur_uint(c, nbytes, &v))
		return false;
	if (v < min || v > max || v > c->end - c->pos)
		return cur_bad(c);
	*saved = c->end;
	c->end = c->pos + v;
	return true;
}

/* Leave a vector: its content must have been used up exactly. */
static bool
cur_leave(struct cur *c, size_t saved)
{
	if (c->pos != c->end)
		return cur_bad(c);
	c->end = saved;
	return true;
}

/* Skip a whole vector with an nbytes length prefix. */
static bool
cur_skip_vec(struct cur *c, size_t nbytes, size_t min, size_t max)
{
	size_t saved;

	return cur_enter(c, nbytes, min, max, &saved) &&
	    cur_skip(c, c->end - c->pos) && cur_leave(c, saved);
}

static bool
is_digit(unsigned char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool
is_hex(unsigned char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'f') ||
	    (ch >= 'A' && ch <= 'F');
}

static bool
is_name_byte(unsigned char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_';
}

/*
 * Check a HostName; returns its length without a trailing dot, or 0
 * when it is not acceptable.
 */
static size_t
host_check(const unsigned char *s, size_t n)
{
	size_t label = 0, last = 0;
	bool numeric;

	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > HOST_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (label == 0)
				return 0;	/* leading dot or ".." */
			label = 0;
			last = i + 1;
		} else if (is_name_byte(s[i])) {
			if (++label > LABEL_MAX)
				return 0;
		} else
			return 0;
	}
	if (label == 0)
		return 0;		/* "a.." lost one dot above */
	/* The last label a number (decimal, or 0x hex) means IPv4. */
	numeric = true;
	if (n - last >= 2 && s[last] == '0' &&
	    (s[last + 1] == 'x' || s[last + 1] == 'X')) {
		for (size_t i = last + 2; i < n; i++)
			numeric = numeric && is_hex(s[i]);
	} else {
		for (size_t i = last; i < n; i++)
			numeric = numeric && is_digit(s[i]);
	}
	return numeric ? 0 : n;
}

/*
 * The server_name extension's data (the cursor's bound is the
 * extension's end).  Sets *host and *hostlen when a host_name is present.
 */
static bool
walk_server_name(struct cur *c, const unsigned char **host, size_t *hostlen)
{
	size_t saved, inner, type;

	/* ServerName server_name_list<1..2^16-1>, filling the extension */
	if (!cur_enter(c, 2, 1, 0xffff, &saved))
		return false;
	if (c->end != saved)
		return cur_bad(c);
	while (c->pos < c->end) {
		if (!cur_uint(c, 1, &type))
			return false;
		/*
		 * Every name type is read as opaque<1..2^16-1>, the only
		 * shape ever defined, so unknown ones can be stepped over.
		 */
		if (!cur_enter(c, 2, 1, 0xffff, &inner))
			return false;
		if (type == NAME_TYPE_HOST) {
			size_t n = c->end - c->pos;

			/* RFC 6066: at most one name of each type. */
			if (*host != NULL)
				return cur_bad(c);
			if (!cur_need(c, n))
				return false;
			*hostlen = host_check(c->p + c->pos, n);
			if (*hostlen == 0)
				return cur_bad(c);
			*host = c->p + c->pos;
		}
		if (!cur_skip(c, c->end - c->pos) || !cur_leave(c, inner))
			return false;
	}
	return cur_leave(c, saved);
}

/*
 * Walk a ClientHello body of blen declared bytes, have of which have
 * arrived.  On FOUND, *host and *hostlen point into body.
 */
static enum tls_sni_result
walk_hello(const unsigned char *body, size_t have, size_t blen,
    const unsigned char **host, size_t *hostlen)
{
	struct cur c = { .p = body, .pos = 0, .end = blen, .have = have };
	size_t v, saved, type;
	bool seen_sni = false;

	*host = NULL;
	*hostlen = 0;
	/* legacy_version: SSL 3.0 and every TLS have major 3 */
	if (!cur_uint(&c, 2, &v))
		return c.res;
	if ((v >> 8) != 3)
		return TLS_SNI_MALFORMED;
	if (!cur_skip(&c, RANDOM_LEN) ||
	    !cur_skip_vec(&c, 1, 0, SESSION_ID_MAX))
		return c.res;
	/* cipher_suites<2..2^16-2>: two bytes each */
	if (!cur_uint(&c, 2, &v))
		return c.res;
	if (v < 2 || v % 2 != 0)
		return TLS_SNI_MALFORMED;
	if (!cur_skip(&c, v))
		return c.res;
	if (!cur_skip_vec(&c, 1, 1, 0xff))
		return c.res;
	/* Extensions are optional (RFC 5246 7.4.1.2) ... */
	if (c.pos == c.end)
		return TLS_SNI_NONE;
	/* ... but when present their length must fill the message. */
	if (!cur_enter(&c, 2, 0, 0xffff, &saved))
		return c.res;
	if (c.end != saved)
		return TLS_SNI_MALFORMED;
	while (c.pos < c.end) {
		size_t outer;

		if (!cur_uint(&c, 2, &type) ||
		    !cur_enter(&c, 2, 0, 0xffff, &outer))
			return c.res;
		if (type == EXT_SERVER_NAME) {
			if (seen_sni)
				return TLS_SNI_MALFORMED;
			seen_sni = true;
			if (!walk_server_name(&c, host, hostlen))
				return c.res;
		} else if (!cur_skip(&c, c.end - c.pos))
			return c.res;
		if (!cur_leave(&c, outer))
			return c.res;
	}
	if (!cur_leave(&c, saved))
		return c.res;
	return *host != NULL ? TLS_SNI_FOUND : TLS_SNI_NONE;
}

/*
 * Check the first n (< REC_HDR) bytes of a record header.  Returns
 * NEED_MORE when they are a valid start.
 */
static enum tls_sni_result
partial_header(const unsigned char *h, size_t n, bool first)
{
	enum tls_sni_result bad = first ? TLS_SNI_NOT_TLS : TLS_SNI_MALFORMED;

	if (n >= 1 && h[0] != CT_HANDSHAKE)
		return bad;
	if (n >= 2 && h[1] != 3)
		return bad;
	/* The length's high byte alone can already exceed 2^14. */
	if (n >= 4 && h[3] > (REC_MAX >> 8))
		return TLS_SNI_MALFORMED;
	return TLS_SNI_NEED_MORE;
}

enum tls_sni_result
tls_sni_parse(const unsigned char *buf, size_t len, char *name,
    size_t namesz)
{
	unsigned char hs[TLS_SNI_MAX_HELLO];	/* reassembled message */
	size_t lim = len < TLS_SNI_MAX_BUFFER ? len : TLS_SNI_MAX_BUFFER;
	size_t pos = 0, have = 0, total = 0;	/* total 0: not known yet */
	const unsigned char *host;
	size_t hostlen;
	enum tls_sni_result r;
	bool first = true;

	if (name != NULL && namesz > 0)
		name[0] = '\0';
	/* Gather the handshake message out of consecutive records. */
	while (total == 0 || have < total) {
		size_t avail = lim - pos, rlen, got, off = 0;
		const unsigned char *frag;

		if (avail < REC_HDR) {
			r = partial_header(buf + pos, avail, first);
			if (r != TLS_SNI_NEED_MORE)
				return r;
			goto incomplete;
		}
		r = partial_header(buf + pos, REC_HDR - 1, first);
		if (r != TLS_SNI_NEED_MORE)
			return r;
		rlen = (size_t)buf[pos + 3] << 8 | buf[pos + 4];
		if (rlen == 0 || rlen > REC_MAX)
			return TLS_SNI_MALFORMED;
		frag = buf + pos + REC_HDR;
		got = rlen < avail - REC_HDR ? rlen : avail - REC_HDR;
		while (off < got && (total == 0 || have < total)) {
			size_t want = (total ? total : HS_HDR) - have;
			size_t n = want < got - off ? want : got - off;

			memcpy(hs + have, frag + off, n);
			have += n;
			off += n;
			if (hs[0] != HS_CLIENT_HELLO)
				return TLS_SNI_MALFORMED;
			if (total == 0 && have == HS_HDR) {
				total = HS_HDR + ((size_t)hs[1] << 16 |
				    (size_t)hs[2] << 8 | hs[3]);
				if (total > TLS_SNI_MAX_HELLO)
					return TLS_SNI_TOO_BIG;
			}
		}
		if (total != 0 && have >= total)
			break;		/* the rest of this record is not ours */
		if (got < rlen)
			goto incomplete;
		pos += REC_HDR + rlen;
		first = false;
	}

	r = walk_hello(hs + HS_HDR, have - HS_HDR, total - HS_HDR, &host,
	    &hostlen);
	if (r != TLS_SNI_FOUND)
		return r;
	if (name == NULL || hostlen >= namesz)
		return TLS_SNI_TOO_BIG;
	for (size_t i = 0; i < hostlen; i++) {
		unsigned char ch = host[i];

		name[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	name[hostlen] = '\0';
	return TLS_SNI_FOUND;

incomplete:
	/* Out of bytes: is what arrived of the hello sound so far? */
	if (total != 0) {
		r = walk_hello(hs + HS_HDR, have - HS_HDR, total - HS_HDR,
		    &host, &hostlen);
		if (r == TLS_SNI_MALFORMED)
			return r;
	}
	return len >= TLS_SNI_MAX_BUFFER ? TLS_SNI_TOO_BIG : TLS_SNI_NEED_MORE;
}

const char *
tls_sni_strresult(enum tls_sni_result r)
{
	switch (r) {
	case TLS_SNI_FOUND:	return "server name found";
	case TLS_SNI_NEED_MORE:	return "incomplete ClientHello";
	case TLS_SNI_NONE:	return "ClientHello without server name";
	case TLS_SNI_NOT_TLS:	return "no TLS ClientHello";
	case TLS_SNI_MALFORMED:	return "malformed ClientHello";
	case TLS_SNI_TOO_BIG:	return "ClientHello too big";
	}
	return "unknown result";
}

size_t
tls_sni_alert(unsigned char *out, unsigned char description)
{
	out[0] = 21;		/* content type: alert */
	out[1] = 3;		/* record version 0x0303 */
	out[2] = 3;
	out[3] = 0;		/* length: 2 */
	out[4] = 2;
	out[5] = 2;		/* level: fatal */
	out[6] = description;
	return TLS_SNI_ALERT_LEN;
}
