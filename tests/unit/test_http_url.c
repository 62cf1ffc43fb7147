/*
 * test_http_url.c - unit tests for worker/http_url.c.
 *
 * A table of named cases per entry point: the input, the expected code
 * and, for accepted inputs, the host/port/path that sluice would connect
 * to, filter on and cache under.  Covers HOSTILE.md #28, #30, #31, #33
 * and #54 at the parser level.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "worker/http_url.h"

enum kind { K_ABS, K_AUTH, K_HOST, K_ORIGIN };

struct url_case {
	const char *name;
	enum kind kind;
	const char *in;
	int rc;
	const char *host;	/* expected when rc == URL_OK */
	int port;
	bool port_given;
	bool v6;
	const char *path;	/* NULL: not checked / expected NULL */
};

static const struct url_case cases[] = {
	/* absolute-form: accepted */
	{ "abs plain", K_ABS, "http://example.test/a?b=c", URL_OK,
	  "example.test", 80, false, false, "/a?b=c" },
	{ "abs no path", K_ABS, "http://example.test", URL_OK,
	  "example.test", 80, false, false, "/" },
	{ "abs query only", K_ABS, "http://h.test?q=1", URL_OK,
	  "h.test", 80, false, false, "?q=1" },
	{ "abs port", K_ABS, "http://h.test:8080/x", URL_OK,
	  "h.test", 8080, true, false, "/x" },
	{ "abs port 80 given", K_ABS, "http://h.test:80/", URL_OK,
	  "h.test", 80, true, false, "/" },
	{ "abs scheme and host case folded", K_ABS, "HtTp://ExAmPlE.TeSt/P",
	  URL_OK, "example.test", 80, false, false, "/P" },
	{ "abs ipv6", K_ABS, "http://[2001:DB8::1]:81/", URL_OK,
	  "2001:db8::1", 81, true, true, "/" },
	{ "abs ipv6 no port", K_ABS, "http://[::1]/", URL_OK,
	  "::1", 80, false, true, "/" },
	{ "abs v4-mapped v6", K_ABS, "http://[::ffff:127.0.0.1]/", URL_OK,
	  "::ffff:127.0.0.1", 80, false, true, "/" },
	{ "abs ipv4", K_ABS, "http://127.0.0.1:18090/a", URL_OK,
	  "127.0.0.1", 18090, true, false, "/a" },
	{ "abs trailing dot kept", K_ABS, "http://h.test./", URL_OK,
	  "h.test.", 80, false, false, "/" },
	{ "abs underscore tilde", K_ABS, "http://a_b~c.test/", URL_OK,
	  "a_b~c.test", 80, false, false, "/" },
	{ "abs port 65535", K_ABS, "http://h:65535/", URL_OK,
	  "h", 65535, true, false, "/" },
	{ "abs encoded CRLF stays in path", K_ABS, "http://h/a%0d%0aX",
	  URL_OK, "h", 80, false, false, "/a%0d%0aX" },

	/* absolute-form: refused (HOSTILE #30, #31, #33) */
	{ "abs userinfo", K_ABS, "http://user:pw@h.test/",
	  URL_E_USERINFO, NULL, 0, false, false, NULL },
	{ "abs at confusion", K_ABS, "http://allowed.test@evil.test/",
	  URL_E_USERINFO, NULL, 0, false, false, NULL },
	{ "abs fragment at", K_ABS, "http://evil.test#@allowed.test/",
	  URL_E_FRAGMENT, NULL, 0, false, false, NULL },
	{ "abs fragment", K_ABS, "http://h/a#frag",
	  URL_E_FRAGMENT, NULL, 0, false, false, NULL },
	{ "abs https", K_ABS, "https://h/",
	  URL_E_SCHEME, NULL, 0, false, false, NULL },
	{ "abs ftp", K_ABS, "ftp://h/",
	  URL_E_SCHEME, NULL, 0, false, false, NULL },
	{ "abs gopher", K_ABS, "gopher://h/",
	  URL_E_SCHEME, NULL, 0, false, false, NULL },
	{ "abs urn", K_ABS, "urn:isbn:1",
	  URL_E_SCHEME, NULL, 0, false, false, NULL },
	{ "abs cache_object", K_ABS, "cache_object://h/",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "abs httpx", K_ABS, "httpx://h/",
	  URL_E_SCHEME, NULL, 0, false, false, NULL },
	{ "abs no slashes", K_ABS, "http:h/",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "abs one slash", K_ABS, "http:/h/",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "abs no scheme", K_ABS, "/a",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "abs empty", K_ABS, "", URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "abs empty host", K_ABS, "http:///a",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs empty host port", K_ABS, "http://:80/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs empty port", K_ABS, "http://h:/",
	  URL_E_PORT, NULL, 0, false, false, NULL },
	{ "abs port 0", K_ABS, "http://h:0/",
	  URL_E_PORT, NULL, 0, false, false, NULL },
	{ "abs port 65536", K_ABS, "http://h:65536/",
	  URL_E_PORT, NULL, 0, false, false, NULL },
	{ "abs port 6 digits", K_ABS, "http://h:000080/",
	  URL_E_PORT, NULL, 0, false, false, NULL },
	{ "abs port sign", K_ABS, "http://h:+80/",
	  URL_E_PORT, NULL, 0, false, false, NULL },
	{ "abs port alpha", K_ABS, "http://h:8a/",
	  URL_E_PORT, NULL, 0, false, false, NULL },
	/* inet_aton spellings parse; proxy_route makes them one dotted quad */
	{ "abs host octal dotted quad", K_ABS, "http://0177.0.0.1/",
	  URL_OK, "0177.0.0.1", 80, false, false, "/" },
	{ "abs host leading zero quad", K_ABS, "http://010.0.0.1/",
	  URL_OK, "010.0.0.1", 80, false, false, "/" },
	{ "abs host short quad", K_ABS, "http://127.1/",
	  URL_OK, "127.1", 80, false, false, "/" },
	{ "abs host decimal address", K_ABS, "http://2130706433/",
	  URL_OK, "2130706433", 80, false, false, "/" },
	{ "abs host hex label", K_ABS, "http://0x7f.0.0.1/",
	  URL_OK, "0x7f.0.0.1", 80, false, false, "/" },
	{ "abs host quad with trailing dot", K_ABS, "http://1.2.3.4./",
	  URL_OK, "1.2.3.4.", 80, false, false, "/" },
	{ "abs host five labels numeric", K_ABS, "http://1.2.3.4.5/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs host octet over 255", K_ABS, "http://256.1.1.1/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs host name ending in hex", K_ABS, "http://a.0x1/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs host decimal too large", K_ABS, "http://4294967296/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs host empty label", K_ABS, "http://a..b/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs host leading dot", K_ABS, "http://.a/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs host only a dot", K_ABS, "http://./",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs percent in host", K_ABS, "http://h%2etest/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs sub-delim in host", K_ABS, "http://h!x/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs space", K_ABS, "http://h/a b",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "abs tab", K_ABS, "http://h/a\tb",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "abs DEL", K_ABS, "http://h/a\x7f",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "abs CR", K_ABS, "http://h/a\r",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "abs v6 unclosed", K_ABS, "http://[::1/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs v6 zone", K_ABS, "http://[fe80::1%25eth0]/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs v6 garbage", K_ABS, "http://[not:v6:zz]/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs v6 empty", K_ABS, "http://[]/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs v6 junk after", K_ABS, "http://[::1]x/",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "abs v6 empty port", K_ABS, "http://[::1]:/",
	  URL_E_PORT, NULL, 0, false, false, NULL },
	{ "abs host too long", K_ABS, "http://"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/",
	  URL_E_HOST, NULL, 0, false, false, NULL },

	/* authority-form (CONNECT, HOSTILE #54) */
	{ "auth ok", K_AUTH, "o.test:443",
	  URL_OK, "o.test", 443, true, false, NULL },
	{ "auth v6", K_AUTH, "[::1]:443",
	  URL_OK, "::1", 443, true, true, NULL },
	{ "auth case", K_AUTH, "O.Test:443",
	  URL_OK, "o.test", 443, true, false, NULL },
	{ "auth no port", K_AUTH, "o.test",
	  URL_E_PORT, NULL, 0, false, false, NULL },
	{ "auth empty port", K_AUTH, "o.test:",
	  URL_E_PORT, NULL, 0, false, false, NULL },
	{ "auth scheme", K_AUTH, "http://o:443",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "auth slash", K_AUTH, "/",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "auth path", K_AUTH, "o.test:443/x",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "auth userinfo", K_AUTH, "u@o.test:443",
	  URL_E_USERINFO, NULL, 0, false, false, NULL },
	{ "auth empty", K_AUTH, "", URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "auth empty host", K_AUTH, ":443",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "auth port range", K_AUTH, "o:70000",
	  URL_E_PORT, NULL, 0, false, false, NULL },

	/* Host values (HOSTILE #28) */
	{ "host plain", K_HOST, "o.test",
	  URL_OK, "o.test", 80, false, false, NULL },
	{ "host port", K_HOST, "o.test:8080",
	  URL_OK, "o.test", 8080, true, false, NULL },
	{ "host v6", K_HOST, "[::1]:81", URL_OK, "::1", 81, true, true, NULL },
	{ "host space", K_HOST, "a b",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "host userinfo", K_HOST, "x@y",
	  URL_E_USERINFO, NULL, 0, false, false, NULL },
	{ "host v6 unclosed", K_HOST, "[::1",
	  URL_E_HOST, NULL, 0, false, false, NULL },
	{ "host empty", K_HOST, "", URL_E_HOST, NULL, 0, false, false, NULL },
	{ "host slash", K_HOST, "a/b",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "host NUL", K_HOST, "good.test\0.evil",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "host two colons", K_HOST, "a:1:2",
	  URL_E_PORT, NULL, 0, false, false, NULL },

	/* origin-form */
	{ "origin ok", K_ORIGIN, "/a/b?c=d",
	  URL_OK, NULL, 0, false, false, NULL },
	{ "origin root", K_ORIGIN, "/", URL_OK, NULL, 0, false, false, NULL },
	{ "origin no slash", K_ORIGIN, "a",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "origin empty", K_ORIGIN, "",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "origin fragment", K_ORIGIN, "/a#b",
	  URL_E_FRAGMENT, NULL, 0, false, false, NULL },
	{ "origin space", K_ORIGIN, "/a b",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
	{ "origin absolute", K_ORIGIN, "http://h/",
	  URL_E_SYNTAX, NULL, 0, false, false, NULL },
};

/* Inputs with an embedded NUL need an explicit length. */
static size_t
case_len(const struct url_case *c)
{
	if (strcmp(c->name, "host NUL") == 0)
		return sizeof("good.test\0.evil") - 1;
	return strlen(c->in);
}

static int
run_one(const struct url_case *c, struct http_url *u)
{
	size_t n = case_len(c);

	switch (c->kind) {
	case K_ABS:	return http_url_parse_absolute(c->in, n, u);
	case K_AUTH:	return http_url_parse_authority(c->in, n, u);
	case K_HOST:	return http_url_parse_host(c->in, n, u);
	default:	return http_url_check_origin_form(c->in, n);
	}
}

static void
test_url_table(void **state)
{
	unsigned i, bad = 0;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct url_case *c = &cases[i];
		struct http_url u;
		int rc = run_one(c, &u);
		bool ok = rc == c->rc;

		if (ok && rc == URL_OK && c->kind != K_ORIGIN) {
			ok = strcmp(u.host, c->host) == 0 &&
			    u.port == c->port &&
			    u.port_given == c->port_given &&
			    u.host_is_ipv6 == c->v6;
			if (c->kind == K_ABS)
				ok = ok && u.path != NULL &&
				    u.path_len == strlen(c->path) &&
				    memcmp(u.path, c->path, u.path_len) == 0;
		}
		if (!ok) {
			print_error("case '%s': rc %d (want %d) host '%s' "
			    "port %d\n", c->name, rc, c->rc,
			    rc == URL_OK ? u.host : "", u.port);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* The parsed path points into the caller's buffer, never a copy. */
static void
test_url_path_zero_copy(void **state)
{
	static const char in[] = "http://h:1/p?q";
	struct http_url u;

	(void)state;
	assert_int_equal(http_url_parse_absolute(in, sizeof(in) - 1, &u),
	    URL_OK);
	assert_ptr_equal(u.path, in + 10);
	assert_int_equal(u.path_len, 4);
}

/* The input need not be NUL-terminated: only n bytes are read. */
static void
test_url_length_bound(void **state)
{
	static const char in[] = "http://h.test/abc#frag";
	struct http_url u;

	(void)state;
	assert_int_equal(http_url_parse_absolute(in, 17, &u), URL_OK);
	assert_int_equal(u.path_len, 4);
	assert_int_equal(http_url_parse_absolute(in, sizeof(in) - 1, &u),
	    URL_E_FRAGMENT);
	assert_int_equal(http_url_parse_authority("o:443xyz", 5, &u), URL_OK);
	assert_int_equal(u.port, 443);
}

static void
test_url_strerror(void **state)
{
	int e;

	(void)state;
	for (e = URL_OK; e >= URL_E_PORT; e--)
		assert_string_not_equal(http_url_strerror(e),
		    "unknown URL error");
	assert_string_equal(http_url_strerror(-99), "unknown URL error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_table),
		cmocka_unit_test(test_url_path_zero_copy),
		cmocka_unit_test(test_url_length_bound),
		cmocka_unit_test(test_url_strerror),
	};

	return cmocka_run_group_tests_name("http_url", tests, NULL, NULL);
}
