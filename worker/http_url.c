/*
 * http_url.c - request-target and authority parsing for a forward proxy.
 *
 * What: splits absolute-form ("http://host:port/path?q"), authority-form
 * ("host:port", CONNECT) and Host values into a lower-cased host, an
 * effective port and (absolute-form) the path+query span.
 *
 * Assumes: the input is raw bytes from the request line or a field value;
 * nothing has been decoded.  Nothing here resolves names or judges
 * addresses: SSRF checks happen on the resolved sockaddr (HOSTILE 5).
 *
 * Why this way: the same host string is used to connect, to filter, to
 * log and to key the cache, so it must come from exactly one strict
 * parse.  A host is either a reg-name made of unreserved characters
 * (RFC 3986 2.3: letters, digits, "-._~") or a bracketed IPv6 literal
 * checked with inet_pton.  Sub-delims and percent-encoding are legal in
 * a generic reg-name but never name a DNS host; accepting them would
 * only open room for confusion between what we filter and what the
 * resolver sees, so they are errors.  A trailing dot ("example.test.")
 * is kept as sent: the caller decides whether to canonicalise it.
 */
#include <arpa/inet.h>
#include <string.h>

#include "worker/http_url.h"
#include "lib/url_norm.h"

/* RFC 3986 unreserved, the only bytes allowed in a reg-name host. */
static bool
url_host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

static char
url_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Any byte that may never appear in a target: CTL, SP, DEL. */
static bool
url_bad_byte(unsigned char c)
{
	return c <= 0x20 || c == 0x7f;
}

/* Port: 1*5 DIGIT, 1..65535.  The caller has seen the ':'. */
static int
url_parse_port(const char *s, size_t n, int *port)
{
	size_t i;
	long v = 0;

	if (n == 0 || n > 5)
		return URL_E_PORT;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return URL_E_PORT;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return URL_E_PORT;
	*port = (int)v;
	return URL_OK;
}

/*
 * A reg-name must be a DNS name or an IPv4 address: no empty label
 * ("a..b", ".a", ".").  A name whose last label is numeric or hex
 * ("127.1", "0x7f.1", "0177.0.0.1", "2130706433") is an IPv4 address in
 * one of the inet_aton spellings; parsers read those differently (the
 * resolver takes "0177.0.0.1" as 177.0.0.1, inet_aton as 127.0.0.1), so
 * it is accepted only when url_norm can turn it into one dotted quad,
 * and proxy_route then replaces it by that quad before the filter, the
 * cache key and the connect see it.  Anything else numeric ("1.2.3.4.5",
 * "256.1.1.1", "a.0x1") is refused.
 */
static bool
url_reg_name_ok(const char *h, size_t n)
{
	char canon[URL_NORM_HOST_MAX + 1];
	size_t i, last, full = n;
	bool numeric = true;

	if (n > 0 && h[n - 1] == '.')
		n--;		/* one trailing dot: the root */
	if (n == 0 || h[0] == '.')
		return false;
	for (i = 1; i < n; i++)
		if (h[i] == '.' && h[i - 1] == '.')
			return false;
	for (last = n; last > 0 && h[last - 1] != '.'; last--)
		;
	if (n - last >= 2 && h[last] == '0' && (h[last + 1] == 'x' || h[last + 1] == 'X'))
		numeric = true;	/* hex label */
	else
		for (i = last; i < n; i++)
			if (h[i] < '0' || h[i] > '9')
				numeric = false;
	if (!numeric)
		return true;
	return url_norm_host(h, full, canon, sizeof(canon)) > 0 &&
	    strspn(canon, "0123456789.") == strlen(canon);
}

/*
 * host [":" port] with host = reg-name | "[" IPv6 "]".  Fills host,
 * host_is_ipv6, port (default 80) and port_given.  need_port makes a
 * missing port an error (CONNECT has no default port, RFC 9110 9.3.6).
 */
static int
url_parse_hostport(const char *s, size_t n, struct http_url *u,
    bool need_port)
{
	size_t i, hend, rest;
	int rc;

	if (n == 0)
		return URL_E_HOST;
	if (s[0] == '[') {
		char tmp[INET6_ADDRSTRLEN + 1];
		struct in6_addr a6;
		const char *rb = memchr(s, ']', n);

		if (rb == NULL)
			return URL_E_HOST;
		hend = (size_t)(rb - s);	/* index of ']' */
		if (hend - 1 == 0 || hend - 1 >= sizeof(tmp))
			return URL_E_HOST;
		/* inet_pton refuses zone ids ("%25eth0") and anything else
		 * that is not a plain IPv6 address. */
		memcpy(tmp, s + 1, hend - 1);
		tmp[hend - 1] = '\0';
		if (inet_pton(AF_INET6, tmp, &a6) != 1)
			return URL_E_HOST;
		for (i = 0; i < hend - 1; i++)
			u->host[i] = url_lower(tmp[i]);
		u->host[hend - 1] = '\0';
		u->host_is_ipv6 = true;
		i = hend + 1;
		if (i < n && s[i] != ':')
			return URL_E_HOST;
	} else {
		for (i = 0; i < n && s[i] != ':'; i++) {
			if (!url_host_char((unsigned char)s[i]))
				return URL_E_HOST;
			if (i >= URL_HOST_MAX)
				return URL_E_HOST;
			u->host[i] = url_lower(s[i]);
		}
		if (i == 0)
			return URL_E_HOST;
		u->host[i] = '\0';
		if (!url_reg_name_ok(u->host, i))
			return URL_E_HOST;
	}
	u->port = 80;
	u->port_given = false;
	if (i == n)
		return need_port ? URL_E_PORT : URL_OK;
	/* s[i] == ':' here */
	rest = n - i - 1;
	if ((rc = url_parse_port(s + i + 1, rest, &u->port)) != URL_OK)
		return rc;
	u->port_given = true;
	return URL_OK;
}

static void
url_reset(struct http_url *u)
{
	memset(u, 0, sizeof(*u));
	u->port = 80;
}

/* Absolute-form: "http://" authority [ path-abempty ] [ "?" query ].
 * u->path is "/" when the target has neither; when the target goes
 * straight from the authority to a query ("http://h?q"), u->path starts
 * with '?' and the caller must put "/" in front when forwarding. */
int
http_url_parse_absolute(const char *s, size_t n, struct http_url *u)
{
	size_t i, a, aend;

	url_reset(u);
	for (i = 0; i < n; i++) {
		if (url_bad_byte((unsigned char)s[i]))
			return URL_E_SYNTAX;
		if (s[i] == '#')
			return URL_E_FRAGMENT;
	}
	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
	for (i = 0; i < n && s[i] != ':'; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

		if (!alpha && (i == 0 || !((c >= '0' && c <= '9') ||
		    c == '+' || c == '-' || c == '.')))
			return URL_E_SYNTAX;
	}
	if (i == n || i == 0)
		return URL_E_SYNTAX;
	if (i != 4 || url_lower(s[0]) != 'h' || url_lower(s[1]) != 't' ||
	    url_lower(s[2]) != 't' || url_lower(s[3]) != 'p')
		return URL_E_SCHEME;
	if (n - i < 3 || s[i + 1] != '/' || s[i + 2] != '/')
		return URL_E_SYNTAX;
	a = i + 3;
	for (aend = a; aend < n && s[aend] != '/' && s[aend] != '?'; aend++)
		if (s[aend] == '@')
			return URL_E_USERINFO;
	if (aend == a)
		return URL_E_HOST;
	{
		int rc = url_parse_hostport(s + a, aend - a, u, false);

		if (rc != URL_OK)
			return rc;
	}
	if (aend == n) {
		u->path = "/";
		u->path_len = 1;
	} else {
		u->path = s + aend;
		u->path_len = n - aend;
	}
	return URL_OK;
}

/* Authority-form for CONNECT: "host:port", port required, nothing else.
 * u->path is NULL (a tunnel has no path). */
int
http_url_parse_authority(const char *s, size_t n, struct http_url *u)
{
	size_t i;

	url_reset(u);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (url_bad_byte(c) || c == '/' || c == '?')
			return URL_E_SYNTAX;
		if (c == '#')
			return URL_E_FRAGMENT;
		if (c == '@')
			return URL_E_USERINFO;
	}
	if (n == 0)
		return URL_E_SYNTAX;
	return url_parse_hostport(s, n, u, true);
}

/* A Host field value "host[:port]"; the port defaults to 80. */
int
http_url_parse_host(const char *s, size_t n, struct http_url *u)
{
	size_t i;

	url_reset(u);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (url_bad_byte(c) || c == '/' || c == '?')
			return URL_E_SYNTAX;
		if (c == '#')
			return URL_E_FRAGMENT;
		if (c == '@')
			return URL_E_USERINFO;
	}
	return url_parse_hostport(s, n, u, false);
}

/* Origin-form: "/" path [ "?" query ], no CTL, SP or '#'. */
int
http_url_check_origin_form(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || s[0] != '/')
		return URL_E_SYNTAX;
	for (i = 0; i < n; i++) {
		if (url_bad_byte((unsigned char)s[i]))
			return URL_E_SYNTAX;
		if (s[i] == '#')
			return URL_E_FRAGMENT;
	}
	return URL_OK;
}

/* A short description of a URL_E_* code, for logs and error pages. */
const char *
http_url_strerror(int err)
{
	switch (err) {
	case URL_OK:		return "ok";
	case URL_E_SYNTAX:	return "malformed request-target";
	case URL_E_SCHEME:	return "unsupported URL scheme";
	case URL_E_USERINFO:	return "userinfo in URL";
	case URL_E_FRAGMENT:	return "fragment in request-target";
	case URL_E_HOST:	return "invalid host";
	case URL_E_PORT:	return "invalid port";
	default:		return "unknown URL error";
	}
}
