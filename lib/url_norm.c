/*
 * url_norm.c - canonical "host[:port]/path[?query]" for the URL filter.
 *
 * Every rule here closes a filter evasion: a pattern is written once,
 * against this form, and must still match whatever spelling a client
 * sends.  Host: lower case, one trailing dot dropped, IDN to punycode
 * (libidn2, UTS #46 non-transitional, transitional as a fallback),
 * IPv4 in every form inet_aton reads ("0x7f.1", "2130706433", octal)
 * to a dotted quad, IPv6 to inet_ntop's form in brackets.  Path:
 * percent-decode the unreserved characters only, upper-case every other
 * escape, percent-encode raw bytes that have no business in a path
 * (>= 0x80, '<', '|', ...), collapse '/' runs, remove dot segments
 * (RFC 3986 5.2.4).  Query: the same byte rules, nothing else.
 *
 * Assumes: the caller (http_url) already split the authority and
 * rejected userinfo and fragments; anything left is cut defensively
 * (last '@' wins, '#' ends the path).
 *
 * Why this way: the path is written straight into out, segment by
 * segment, so there is no scratch buffer to size and no malloc of our
 * own (libidn2 allocates its result; we free it at once).  Decoding is
 * done exactly once, so "%252e" stays "%252E" and is never turned into
 * a dot; a server that decodes twice is not something a filter can
 * follow safely.  Raw control bytes and spaces are errors, not
 * encodings: the request parser refuses them, and a normalizer that
 * quietly fixed them would let the filter see a different URL from the
 * one forwarded.
 */
#include "config.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include <idn2.h>

#include "lib/http_chars.h"
#include "lib/url_norm.h"

static const char hexup[] = "0123456789ABCDEF";

/* Bounded writer: always keeps room for the final NUL. */
struct wbuf {
	char *p;
	size_t len;
	size_t cap;
	bool full;
};

static void
w_putc(struct wbuf *w, char c)
{
	if (w->len + 1 >= w->cap) {
		w->full = true;
		return;
	}
	w->p[w->len++] = c;
}

static void
w_puts(struct wbuf *w, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && !w->full; i++)
		w_putc(w, s[i]);
}

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

/* RFC 3986 pchar minus pct-encoded; the query also allows '/' '?'. */
static bool
is_raw_ok(unsigned char c, bool query)
{
	if (is_unreserved(c))
		return true;
	if (strchr("!$&'()*+,;=:@", c) != NULL && c != '\0')
		return true;
	return query && (c == '/' || c == '?');
}

/* ---- host ----------------------------------------------------------- */

static bool
all_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* Does a label start with the ACE prefix (so libidn2 must check it)? */
static bool
has_ace_label(const char *s)
{
	const char *p = s;

	for (;;) {
		if (p[0] == 'x' && p[1] == 'n' && p[2] == '-' && p[3] == '-')
			return true;
		p = strchr(p, '.');
		if (p == NULL)
			return false;
		p++;
	}
}

/*
 * Replace buf (NUL-terminated, room for cap bytes) by its ASCII form.
 * UTS #46 maps case, full-width dots and digits, so the result still
 * goes through the IPv4 and label checks below.
 */
static int
host_idn(char *buf, size_t cap)
{
	char *ace = NULL;
	size_t n;
	int rc;

	rc = idn2_to_ascii_8z(buf, &ace, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK)
		rc = idn2_to_ascii_8z(buf, &ace,
		    IDN2_NFC_INPUT | IDN2_TRANSITIONAL);
	if (rc != IDN2_OK || ace == NULL) {
		idn2_free(ace);
		return URL_NORM_E_IDN;
	}
	n = strlen(ace);
	if (n >= cap) {
		idn2_free(ace);
		return URL_NORM_E_TOOLONG;
	}
	memcpy(buf, ace, n + 1);
	idn2_free(ace);
	for (; *buf != '\0'; buf++)
		if (*buf >= 'A' && *buf <= 'Z')
			*buf = (char)(*buf - 'A' + 'a');
	return URL_NORM_OK;
}

/*
 * The WHATWG "ends in a number" test: a name whose last label is all
 * digits or 0x-hex is meant as an IPv4 address and must parse as one.
 * Otherwise "1.2.3.999" would be a name to us and an error (or worse, a
 * resolver's guess) elsewhere.
 */
static bool
ends_in_number(const char *s, size_t n)
{
	size_t i = n;
	size_t start;

	while (i > 0 && s[i - 1] != '.')
		i--;
	start = i;
	if (start == n)
		return false;
	if (n - start >= 2 && s[start] == '0' && s[start + 1] == 'x') {
		for (i = start + 2; i < n; i++)
			if (http_hexval((unsigned char)s[i]) < 0)
				return false;
		return true;
	}
	for (i = start; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Is s exactly four decimal octets 0-255 without leading zeros? */
static bool
ipv4_canonical(const char *s)
{
	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		int nd = 0;

		if (part > 0 && *s++ != '.')
			return false;
		while (*s >= '0' && *s <= '9' && nd < 4) {
			v = v * 10 + (unsigned)(*s++ - '0');
			nd++;
		}
		if (nd == 0 || nd > 3 || v > 255 || (nd > 1 && s[-nd] == '0'))
			return false;
	}
	return *s == '\0';
}

/* "a.b.c.d" of a (network order) into txt (16 bytes); the length.
 * By hand: inet_ntop formats through sprintf, a cost on every request. */
static size_t
ipv4_format(const struct in_addr *a, char *txt)
{
	const unsigned char *b = (const unsigned char *)&a->s_addr;
	size_t n = 0;

	for (int i = 0; i < 4; i++) {
		unsigned v = b[i];

		if (i > 0)
			txt[n++] = '.';
		if (v >= 100)
			txt[n++] = (char)('0' + v / 100);
		if (v >= 10)
			txt[n++] = (char)('0' + v / 10 % 10);
		txt[n++] = (char)('0' + v % 10);
	}
	txt[n] = '\0';
	return n;
}

/* Numeric IPv4 in any inet_aton form → dotted quad into w. */
static int
host_ipv4(const char *buf, struct wbuf *w)
{
	struct in_addr a;
	char txt[INET_ADDRSTRLEN];
	const char *s;

	/*
	 * glibc's inet_aton stops at the first space and accepts the rest as
	 * junk; only digits, hex letters, 'x' and dots may reach it.
	 */
	for (s = buf; *s != '\0'; s++)
		if (http_hexval((unsigned char)*s) < 0 && *s != 'x' && *s != '.')
			return URL_NORM_E_HOST;
	/* The common case, already a dotted quad, is copied as it is. */
	if (ipv4_canonical(buf)) {
		w_puts(w, buf, strlen(buf));
		return w->full ? URL_NORM_E_TOOLONG : URL_NORM_OK;
	}
	if (inet_aton(buf, &a) == 0)
		return URL_NORM_E_HOST;
	w_puts(w, txt, ipv4_format(&a, txt));
	return w->full ? URL_NORM_E_TOOLONG : URL_NORM_OK;
}

static int
host_ipv6(const char *s, struct wbuf *w)
{
	struct in6_addr a;
	char txt[INET6_ADDRSTRLEN];

	/* Zone ids ("%eth0") and anything else inet_pton refuses: error. */
	if (inet_pton(AF_INET6, s, &a) != 1)
		return URL_NORM_E_HOST;
	/* An IPv4-mapped address reaches the IPv4 host: one spelling,
	 * the dotted quad, so lists naming the IPv4 address match it. */
	if (IN6_IS_ADDR_V4MAPPED(&a)) {
		struct in_addr a4;

		memcpy(&a4, &a.s6_addr[12], 4);
		w_puts(w, txt, ipv4_format(&a4, txt));
		return w->full ? URL_NORM_E_TOOLONG : URL_NORM_OK;
	}
	if (inet_ntop(AF_INET6, &a, txt, sizeof(txt)) == NULL)
		return URL_NORM_E_HOST;
	w_putc(w, '[');
	w_puts(w, txt, strlen(txt));
	w_putc(w, ']');
	return w->full ? URL_NORM_E_TOOLONG : URL_NORM_OK;
}

/* Labels of 1..63 bytes from [a-z0-9-_], at most 255 bytes in all. */
static int
host_labels(const char *s, size_t n)
{
	size_t i, lab = 0;

	if (n > URL_NORM_HOST_MAX)
		return URL_NORM_E_TOOLONG;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (lab == 0)
				return URL_NORM_E_HOST;
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_'))
			return URL_NORM_E_HOST;
		if (++lab > 63)
			return URL_NORM_E_HOST;
	}
	return lab == 0 ? URL_NORM_E_HOST : URL_NORM_OK;
}

static int
host_write(const char *host, size_t hlen, struct wbuf *w)
{
	char buf[URL_NORM_HOST_IN_MAX + 1];
	size_t i, n;
	bool dot_done = false;
	int rc;

	if (host == NULL || hlen == 0)
		return URL_NORM_E_HOST;
	if (memchr(host, '\0', hlen) != NULL)
		return URL_NORM_E_HOST;
	/* Userinfo should never get here; if it does, the host follows it. */
	for (i = hlen; i > 0; i--)
		if (host[i - 1] == '@')
			break;
	host += i;
	hlen -= i;
	if (hlen == 0)
		return URL_NORM_E_HOST;
	if (hlen > URL_NORM_HOST_IN_MAX)
		return URL_NORM_E_TOOLONG;
	for (i = 0; i < hlen; i++) {
		char c = host[i];

		buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	buf[hlen] = '\0';
	n = hlen;

	/* IPv6, bracketed or bare (http_url stores it without brackets). */
	if (buf[0] == '[') {
		if (n < 3 || buf[n - 1] != ']')
			return URL_NORM_E_HOST;
		buf[n - 1] = '\0';
		return host_ipv6(buf + 1, w);
	}
	if (strchr(buf, ':') != NULL)
		return host_ipv6(buf, w);

	/* One trailing dot: "example.com." is the same name. */
	if (buf[n - 1] == '.') {
		buf[--n] = '\0';
		dot_done = true;
		if (n == 0)
			return URL_NORM_E_HOST;
	}
	if (!all_ascii(buf) || has_ace_label(buf)) {
		rc = host_idn(buf, sizeof(buf));
		if (rc != URL_NORM_OK)
			return rc;
		n = strlen(buf);
		if (n == 0)
			return URL_NORM_E_HOST;
		/* A mapped full stop (U+3002...) may now be the trailing dot. */
		if (!dot_done && buf[n - 1] == '.')
			buf[--n] = '\0';
	}
	if (ends_in_number(buf, n))
		return host_ipv4(buf, w);
	rc = host_labels(buf, n);
	if (rc != URL_NORM_OK)
		return rc;
	w_puts(w, buf, n);
	return w->full ? URL_NORM_E_TOOLONG : URL_NORM_OK;
}

/* ---- path ----------------------------------------------------------- */

/*
 * Normalize s[*i] (one byte, or one %XX escape) into w.  An escape must
 * end before `end`, so it never spans a '/' or the '?'.
 */
static int
path_byte(const char *s, size_t *i, size_t end, bool query, struct wbuf *w)
{
	unsigned char c = (unsigned char)s[*i];
	int hi, lo;

	if (c == '%') {
		if (*i + 2 < end &&
		    (hi = http_hexval((unsigned char)s[*i + 1])) >= 0 &&
		    (lo = http_hexval((unsigned char)s[*i + 2])) >= 0) {
			unsigned char v = (unsigned char)(hi << 4 | lo);

			if (is_unreserved(v)) {
				w_putc(w, (char)v);
			} else {
				w_putc(w, '%');
				w_putc(w, hexup[hi]);
				w_putc(w, hexup[lo]);
			}
			*i += 3;
			return URL_NORM_OK;
		}
		/* Not an escape ("%G1", "%4"): kept literally, as given. */
		w_putc(w, '%');
		*i += 1;
		return URL_NORM_OK;
	}
	if (c <= 0x20 || c == 0x7f)
		return URL_NORM_E_PATH;
	if (is_raw_ok(c, query)) {
		w_putc(w, (char)c);
	} else {
		w_putc(w, '%');
		w_putc(w, hexup[c >> 4]);
		w_putc(w, hexup[c & 15]);
	}
	*i += 1;
	return URL_NORM_OK;
}

/* Is seg[0..n) (decoded) a dot segment?  1 ".", 2 "..", 0 no.  A
 * segment with a path parameter, ".;x" or "..;x", counts too: some
 * origins (servlet containers) read it as the dot segment. */
static int
dot_segment(const char *seg, size_t n)
{
	if (n >= 1 && seg[0] == '.' && (n == 1 || seg[1] == ';'))
		return 1;
	if (n >= 2 && seg[0] == '.' && seg[1] == '.' && (n == 2 || seg[2] == ';'))
		return 2;
	return 0;
}

/*
 * Length of the segment separator at s[j] (j < n), or 0.  The filter
 * reads a path the broadest way an origin might: besides '/', a '\'
 * (Windows and WHATWG-style parsers) and an escaped "%2F" or "%5C"
 * (origins that decode before they split, nginx among them) end a
 * segment.  At worst a path is blocked that one origin would not read
 * so; never the other way round.
 */
static size_t
sep_len(const char *s, size_t j, size_t n, bool broad)
{
	if (s[j] == '/')
		return 1;
	if (!broad)
		return 0;
	if (s[j] == '\\')
		return 1;
	if (s[j] == '%' && j + 2 < n && (s[j + 1] == '2' || s[j + 1] == '5') &&
	    ((s[j + 1] == '2' && (s[j + 2] == 'f' || s[j + 2] == 'F')) ||
	    (s[j + 1] == '5' && (s[j + 2] == 'c' || s[j + 2] == 'C'))))
		return 3;
	return 0;
}

/*
 * Path part s[0..n): segment by segment into w, unreserved escapes
 * decoded, dot segments removed as RFC 3986 5.2.4 does: an empty
 * segment is a segment, so "/a//../b" is "/a/b".  broad (the filter's
 * form) also splits at the separators of sep_len, drops a segment's
 * ";parameters" (servlet containers serve "/a;jsessionid=1/b" as
 * "/a/b") and folds runs of '/' after the dot segments are gone
 * (folding first would let "/a//.." remove "a" where the origin
 * removes "").
 */
static int
path_write(const char *s, size_t n, struct wbuf *w, bool broad)
{
	size_t base = w->len;
	size_t i = 0, j, mark, sl = 0;
	bool trailing = false;
	int rc, dots;

	if (n > 0 && (sl = sep_len(s, 0, n, broad)) > 0)
		i = sl;		/* the leading '/' opens the first segment */
	while (i <= n) {
		bool last;

		for (j = i; j < n && (sl = sep_len(s, j, n, broad)) == 0; j++)
			;
		last = (j == n);
		if (j == i && last) {
			/* The path ends in '/' (or is empty). */
			trailing = true;
			break;
		}
		mark = w->len;
		w_putc(w, '/');
		while (i < j && !w->full) {
			rc = path_byte(s, &i, j, false, w);
			if (rc != URL_NORM_OK)
				return rc;
		}
		if (w->full)
			return URL_NORM_E_TOOLONG;
		dots = dot_segment(w->p + mark + 1, w->len - mark - 1);
		if (broad && dots == 0) {
			char *semi = memchr(w->p + mark + 1, ';', w->len - mark - 1);
			if (semi != NULL)
				w->len = (size_t)(semi - w->p);
		}
		if (dots == 1) {
			w->len = mark;
			trailing = last;
		} else if (dots == 2) {
			/* Drop ".." and the segment before it, if any. */
			w->len = mark;
			while (w->len > base && w->p[w->len - 1] != '/')
				w->len--;
			if (w->len > base)
				w->len--;
			trailing = last;
		} else {
			trailing = false;
		}
		i = j + (last ? 1 : sl);
	}
	if (w->len == base || trailing)
		w_putc(w, '/');
	if (broad && !w->full) {
		size_t r, o = base;

		for (r = base; r < w->len; r++)
			if (!(w->p[r] == '/' && o > base && w->p[o - 1] == '/'))
				w->p[o++] = w->p[r];
		w->len = o;
	}
	return w->full ? URL_NORM_E_TOOLONG : URL_NORM_OK;
}

static int
query_write(const char *s, size_t n, struct wbuf *w)
{
	size_t i = 0;
	int rc;

	w_putc(w, '?');
	while (i < n && !w->full) {
		rc = path_byte(s, &i, n, true, w);
		if (rc != URL_NORM_OK)
			return rc;
	}
	return w->full ? URL_NORM_E_TOOLONG : URL_NORM_OK;
}

/* Path and query of path[0..plen) into w; a fragment is not part of
 * what is requested and is dropped. */
static int
target_write(const char *path, size_t plen, struct wbuf *w, bool collapse)
{
	const char *q;
	size_t pathlen;
	int rc;

	q = plen > 0 ? memchr(path, '#', plen) : NULL;
	if (q != NULL)
		plen = (size_t)(q - path);
	q = plen > 0 ? memchr(path, '?', plen) : NULL;
	pathlen = q != NULL ? (size_t)(q - path) : plen;
	rc = path_write(path, pathlen, w, collapse);
	if (rc == URL_NORM_OK && q != NULL)
		rc = query_write(q + 1, plen - pathlen - 1, w);
	return rc;
}

/* ---- API ------------------------------------------------------------ */

static void
w_init(struct wbuf *w, char *out, size_t outsz)
{
	w->p = out;
	w->len = 0;
	/* The length is returned as an int. */
	w->cap = outsz > (size_t)INT_MAX ? (size_t)INT_MAX : outsz;
	w->full = false;
}

int
url_norm_host(const char *host, size_t hlen, char *out, size_t outsz)
{
	struct wbuf w;
	int rc;

	if (out == NULL || outsz == 0)
		return URL_NORM_E_TOOLONG;
	out[0] = '\0';
	w_init(&w, out, outsz);
	rc = host_write(host, hlen, &w);
	if (rc != URL_NORM_OK) {
		out[0] = '\0';
		return rc;
	}
	out[w.len] = '\0';
	return (int)w.len;
}

int
url_norm(const char *host, size_t hlen, int port, const char *path,
    size_t plen, char *out, size_t outsz)
{
	struct wbuf w;
	int rc;

	if (out == NULL || outsz == 0)
		return URL_NORM_E_TOOLONG;
	out[0] = '\0';
	if (port < 1 || port > 65535)
		return URL_NORM_E_PORT;
	if (path == NULL)
		plen = 0;
	/* Checked over the whole input, fragment included: never cut at a NUL. */
	if (plen > 0 && memchr(path, '\0', plen) != NULL)
		return URL_NORM_E_PATH;
	w_init(&w, out, outsz);
	rc = host_write(host, hlen, &w);
	if (rc == URL_NORM_OK && port != 80) {
		char pbuf[8];
		int k = 0, v = port;

		/* Digits backwards; port is 1..65535, so at most 5. */
		do {
			pbuf[k++] = (char)('0' + v % 10);
			v /= 10;
		} while (v > 0);
		w_putc(&w, ':');
		while (k > 0)
			w_putc(&w, pbuf[--k]);
		if (w.full)
			rc = URL_NORM_E_TOOLONG;
	}
	if (rc == URL_NORM_OK)
		rc = target_write(path, plen, &w, true);
	if (rc != URL_NORM_OK) {
		out[0] = '\0';
		return rc;
	}
	out[w.len] = '\0';
	return (int)w.len;
}

/* Is raw[0..n) a dot segment once "%2e" is read as '.'?  Same answers
 * as dot_segment; only the dots may be escaped. */
static int
raw_dot_segment(const char *raw, size_t n)
{
	char seg[3];
	size_t k = 0, i = 0;

	while (i < n && k < 3) {
		if (raw[i] == '.') {
			seg[k++] = '.';
			i++;
		} else if (raw[i] == '%' && i + 2 < n && raw[i + 1] == '2' &&
		    (raw[i + 2] == 'e' || raw[i + 2] == 'E')) {
			seg[k++] = '.';
			i += 3;
		} else if (raw[i] == ';') {
			seg[k++] = ';';
			break;
		} else
			return 0;
	}
	if (i < n && raw[i] != ';')
		return 0;	/* "...x": not a dot segment */
	return dot_segment(seg, k);
}

bool
url_norm_path_has_dots(const char *path, size_t plen)
{
	const char *q = memchr(path, '?', plen);
	size_t n = q ? (size_t)(q - path) : plen, i = 0, j;

	while (i < n) {
		for (j = i; j < n && path[j] != '/'; j++)
			;
		if (raw_dot_segment(path + i, j - i))
			return true;
		i = j + 1;
	}
	return false;
}

int
url_norm_target(const char *path, size_t plen, char *out, size_t outsz)
{
	const char *q;
	size_t n, i = 0, j, o = 0;
	bool trailing = false;

	if (out == NULL || outsz == 0)
		return URL_NORM_E_TOOLONG;
	out[0] = '\0';
	if (path == NULL)
		plen = 0;
	if (plen > 0 && memchr(path, '\0', plen) != NULL)
		return URL_NORM_E_PATH;
	if ((q = memchr(path, '#', plen)) != NULL)
		plen = (size_t)(q - path);
	q = memchr(path, '?', plen);
	n = q ? (size_t)(q - path) : plen;
	/* Every output byte is an input byte, plus a leading '/'. */
	if (plen + 2 > outsz || plen + 2 > (size_t)INT_MAX)
		return URL_NORM_E_TOOLONG;
	if (n > 0 && path[0] == '/')
		i = 1;
	while (i <= n) {
		int dots;

		for (j = i; j < n && path[j] != '/'; j++)
			;
		if (j == i && j == n) {
			trailing = true;
			break;
		}
		dots = raw_dot_segment(path + i, j - i);
		if (dots == 2) {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else if (dots == 0) {
			/* Everything else goes as the client wrote it. */
			out[o++] = '/';
			memcpy(out + o, path + i, j - i);
			o += j - i;
		}
		trailing = dots != 0 && j == n;
		i = j + 1;
	}
	if (o == 0 || trailing)
		out[o++] = '/';
	if (q != NULL) {
		memcpy(out + o, q, plen - n);
		o += plen - n;
	}
	out[o] = '\0';
	return (int)o;
}

const char *
url_norm_strerror(int err)
{
	switch (err) {
	case URL_NORM_OK:
		return "ok";
	case URL_NORM_E_HOST:
		return "invalid host";
	case URL_NORM_E_IDN:
		return "host is not a valid internationalized name";
	case URL_NORM_E_PORT:
		return "port out of range";
	case URL_NORM_E_PATH:
		return "control, space or NUL byte in path";
	case URL_NORM_E_TOOLONG:
		return "URL too long";
	}
	return "unknown url_norm error";
}
