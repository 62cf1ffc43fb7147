/*
 * test_url_norm.c - unit tests for lib/url_norm.c.
 *
 * One table of named cases, each one a spelling a client could use to
 * slip past a URL filter: every case becomes its own cmocka test (and
 * TAP line) under its name.  Each gives host, port and path with
 * explicit lengths (so NUL bytes can be embedded) and the expected
 * canonical string or error code.  Separate tests cover what a table
 * row cannot: 64 KiB inputs, every output size around the exact fit
 * (no byte written past outsz, error rather than truncation), and the
 * error strings.
 *
 * Assumes: libidn2 with UTS #46 tables (any 2.x).
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/url_norm.h"

/* Lengths of 0 mean strlen(); an explicit length lets a NUL through. */
struct norm_case {
	const char *name;
	const char *host;
	size_t hlen;
	int port;		/* 0: test url_norm_host() alone */
	const char *path;
	size_t plen;
	const char *want;	/* NULL when an error is expected */
	int err;
};

#define OK(n, h, port, p, w)	{ n, h, 0, port, p, 0, w, 0 }
#define ERR(n, h, port, p, e)	{ n, h, 0, port, p, 0, NULL, e }
#define HOST(n, h, w)		{ n, h, 0, 0, NULL, 0, w, 0 }
#define HOSTERR(n, h, e)	{ n, h, 0, 0, NULL, 0, NULL, e }

static const struct norm_case cases[] = {
	/* ---- host: case, dots, userinfo ---- */
	HOST("host_lowercase", "WWW.Example.COM", "www.example.com"),
	HOST("host_trailing_dot", "example.com.", "example.com"),
	HOSTERR("host_two_trailing_dots", "example.com..", URL_NORM_E_HOST),
	HOSTERR("host_only_dot", ".", URL_NORM_E_HOST),
	HOSTERR("host_empty", "", URL_NORM_E_HOST),
	HOSTERR("host_empty_label", "a..example", URL_NORM_E_HOST),
	HOSTERR("host_leading_dot", ".example.com", URL_NORM_E_HOST),
	HOST("host_at_last_wins", "allowed.test@evil.test", "evil.test"),
	HOST("host_two_ats", "a@b@Evil.Test", "evil.test"),
	HOSTERR("host_at_then_empty", "evil.test@", URL_NORM_E_HOST),
	HOST("host_underscore", "_dmarc.Example.com", "_dmarc.example.com"),
	HOSTERR("host_space", "a b.com", URL_NORM_E_HOST),
	HOSTERR("host_percent", "%65vil.com", URL_NORM_E_HOST),
	HOSTERR("host_slash", "a/b.com", URL_NORM_E_HOST),
	HOSTERR("host_backslash", "a\\b.com", URL_NORM_E_HOST),
	{ "host_embedded_nul", "evil.com\0.ok.com", 16, 0, NULL, 0, NULL,
	  URL_NORM_E_HOST },
	HOSTERR("host_label_64", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaa.com", URL_NORM_E_HOST),
	HOST("host_label_63", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaa.com", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaa.com"),

	/* ---- host: IPv4 in every form inet_aton reads ---- */
	HOST("v4_dotted", "127.0.0.1", "127.0.0.1"),
	HOST("v4_trailing_dot", "127.0.0.1.", "127.0.0.1"),
	HOST("v4_hex_short", "0x7f.1", "127.0.0.1"),
	HOST("v4_hex_upper", "0X7F.0X0.0X0.0X1", "127.0.0.1"),
	HOST("v4_decimal", "2130706433", "127.0.0.1"),
	HOST("v4_decimal_192", "3232235777", "192.168.1.1"),
	HOST("v4_octal_whole", "017700000001", "127.0.0.1"),
	HOST("v4_octal_dotted", "0300.0250.0.1", "192.168.0.1"),
	HOST("v4_octal_0177", "0177.0.0.1", "127.0.0.1"),
	HOST("v4_hex_whole", "0xc0a80001", "192.168.0.1"),
	HOST("v4_hex_whole_7f", "0x7f000001", "127.0.0.1"),
	HOST("v4_three_parts", "192.168.1", "192.168.0.1"),
	HOST("v4_two_parts", "127.1", "127.0.0.1"),
	HOST("v4_mixed", "0x7f.0.01", "127.0.0.1"),
	HOST("v4_zero", "0", "0.0.0.0"),
	HOST("v4_quad_max", "255.255.255.255", "255.255.255.255"),
	HOST("v4_quad_zeros", "0.0.0.0", "0.0.0.0"),
	HOST("v4_quad_leading_zero", "10.010.1.1", "10.8.1.1"),	/* octal, not copied */
	HOST("v4_quad_mixed_width", "1.22.133.4", "1.22.133.4"),
	HOSTERR("v4_quad_256", "1.2.256.4", URL_NORM_E_HOST),
	HOSTERR("v4_quad_four_digits", "1.2.3.1000", URL_NORM_E_HOST),
	HOST("v4_max", "4294967295", "255.255.255.255"),
	HOSTERR("v4_overflow", "4294967296", URL_NORM_E_HOST),
	HOSTERR("v4_part_overflow", "1.2.3.256", URL_NORM_E_HOST),
	HOSTERR("v4_five_parts", "1.2.3.4.5", URL_NORM_E_HOST),
	HOSTERR("v4_bad_octal", "09.1.1.1", URL_NORM_E_HOST),
	HOSTERR("v4_name_then_number", "example.123", URL_NORM_E_HOST),
	HOST("v4_hexish_name", "cafe.beef", "cafe.beef"),
	HOST("v4_number_inside_name", "1.2.3.4.example", "1.2.3.4.example"),

	/* ---- host: IPv6 ---- */
	HOST("v6_bracketed", "[::1]", "[::1]"),
	HOST("v6_bare", "::1", "[::1]"),
	HOST("v6_long_form", "0:0:0:0:0:0:0:1", "[::1]"),
	HOST("v6_upper", "[FE80::ABCD]", "[fe80::abcd]"),
	HOST("v6_mapped", "::ffff:127.0.0.1", "127.0.0.1"),
	HOST("v6_mapped_hex", "::FFFF:7F00:1", "127.0.0.1"),
	HOSTERR("v6_zone", "fe80::1%eth0", URL_NORM_E_HOST),
	HOSTERR("v6_unclosed", "[::1", URL_NORM_E_HOST),
	HOSTERR("v6_empty_brackets", "[]", URL_NORM_E_HOST),
	HOSTERR("v6_garbage", "[::g]", URL_NORM_E_HOST),

	/* ---- host: IDN ---- */
	HOST("idn_utf8", "b\xc3\xbc" "cher.example", "xn--bcher-kva.example"),
	HOST("idn_upper_utf8", "\xc3\x89XAMPLE.com", "xn--xample-9ua.com"),
	HOST("idn_ace_upper", "xn--BCHER-KVA.example", "xn--bcher-kva.example"),
	HOST("idn_utf8_trailing_dot", "b\xc3\xbc" "cher.example.",
	    "xn--bcher-kva.example"),
	/* U+3002 IDEOGRAPHIC FULL STOP is a label separator in UTS #46. */
	HOST("idn_ideographic_dot", "b\xc3\xbc" "cher\xe3\x80\x82" "example",
	    "xn--bcher-kva.example"),
	/* Full-width "１２７．０．０．１" maps to an IPv4 literal. */
	HOST("idn_fullwidth_ipv4", "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x97"
	    "\xef\xbc\x8e\xef\xbc\x90\xef\xbc\x8e\xef\xbc\x90\xef\xbc\x8e"
	    "\xef\xbc\x91", "127.0.0.1"),
	HOST("idn_fullwidth_latin", "\xef\xbd\x85\xef\xbd\x96\xef\xbd\x89"
	    "\xef\xbd\x8c.com", "evil.com"),
	HOSTERR("idn_invalid_utf8", "\xff\xfe.com", URL_NORM_E_IDN),

	/* ---- port ---- */
	OK("port_80_omitted", "example.com", 80, "/", "example.com/"),
	OK("port_8080_kept", "example.com", 8080, "/", "example.com:8080/"),
	OK("port_65535", "example.com", 65535, "/", "example.com:65535/"),
	OK("port_1", "example.com", 1, "/", "example.com:1/"),
	OK("port_v6", "::1", 3128, "/", "[::1]:3128/"),
	ERR("port_zero", "example.com", -1, "/", URL_NORM_E_PORT),
	ERR("port_too_big", "example.com", 65536, "/", URL_NORM_E_PORT),
	ERR("port_bad_host", "", 80, "/", URL_NORM_E_HOST),

	/* ---- path: escapes ---- */
	OK("path_decode_alpha", "h", 80, "/%41%62", "h/Ab"),
	OK("path_decode_dot", "h", 80, "/a%2eb", "h/a.b"),
	OK("path_decode_tilde_dash", "h", 80, "/%7e%2D%5f%30", "h/~-_0"),
	OK("path_upper_hex", "h", 80, "/a%2cb%3a", "h/a%2Cb%3A"),
	OK("path_2f_splits", "h", 80, "/a%2Fb", "h/a/b"),	/* origins that decode first */
	OK("path_5c_splits", "h", 80, "/a%5cb", "h/a/b"),
	OK("path_keep_3f", "h", 80, "/a%3fb", "h/a%3Fb"),
	OK("path_keep_23", "h", 80, "/a%23b", "h/a%23b"),
	OK("path_keep_25", "h", 80, "/a%25", "h/a%25"),
	OK("path_keep_controls", "h", 80, "/a%0d%0aX%00%7f", "h/a%0D%0AX%00%7F"),
	OK("path_keep_high", "h", 80, "/%c3%bc", "h/%C3%BC"),
	OK("path_double_encoded", "h", 80, "/%252e%252e/x", "h/%252e%252e/x"),
	OK("path_double_encoded_upper", "h", 80, "/a/%252E%252E/b",
	    "h/a/%252E%252E/b"),
	OK("path_invalid_escape_g", "h", 80, "/%G1", "h/%G1"),
	OK("path_invalid_escape_short", "h", 80, "/%4", "h/%4"),
	OK("path_invalid_escape_before_slash", "h", 80, "/a%4/b", "h/a%4/b"),
	OK("path_lone_percent", "h", 80, "/%", "h/%"),
	OK("path_raw_high_encoded", "h", 80, "/\xc3\xbc", "h/%C3%BC"),
	OK("path_raw_pipe_encoded", "h", 80, "/a|b<c>", "h/a%7Cb%3Cc%3E"),
	OK("path_raw_backslash_splits", "h", 80, "/a\\..\\b", "h/b"),
	OK("path_raw_backslash_segment", "h", 80, "/bad\\y", "h/bad/y"),
	OK("path_subdelims_kept", "h", 80, "/a=c,d!$&'()*+:@",
	    "h/a=c,d!$&'()*+:@"),
	OK("path_params_dropped", "h", 80, "/bad;jsessionid=1/y;x", "h/bad/y"),
	OK("path_params_query_kept", "h", 80, "/a;p?q=1;2", "h/a?q=1;2"),
	ERR("path_raw_space", "h", 80, "/a b", URL_NORM_E_PATH),
	ERR("path_raw_cr", "h", 80, "/a\rb", URL_NORM_E_PATH),
	ERR("path_raw_del", "h", 80, "/a\x7f", URL_NORM_E_PATH),
	{ "path_embedded_nul", "h", 0, 80, "/ok\0/evil", 9, NULL,
	  URL_NORM_E_PATH },
	{ "path_nul_after_fragment", "h", 0, 80, "/ok#\0", 5, NULL,
	  URL_NORM_E_PATH },

	/* ---- path: dot segments and slashes ---- */
	OK("path_empty", "h", 80, "", "h/"),
	OK("path_root", "h", 80, "/", "h/"),
	OK("path_dot", "h", 80, "/a/./b", "h/a/b"),
	OK("path_dotdot", "h", 80, "/a/b/../c", "h/a/c"),
	OK("path_dotdot_encoded", "h", 80, "/a/%2e%2e/b", "h/b"),
	OK("path_dotdot_mixed", "h", 80, "/a/.%2E/b", "h/b"),
	OK("path_dot_encoded", "h", 80, "/a/%2e/b", "h/a/b"),
	OK("path_dotdot_above_root", "h", 80, "/../a", "h/a"),
	OK("path_dotdot_many", "h", 80, "/a/b/../../../../etc", "h/etc"),
	OK("path_dotdot_trailing", "h", 80, "/a/b/..", "h/a/"),
	OK("path_dot_trailing", "h", 80, "/a/.", "h/a/"),
	OK("path_dotdot_to_root", "h", 80, "/a/..", "h/"),
	OK("path_rfc3986_example", "h", 80, "/a/b/c/./../../g", "h/a/g"),
	OK("path_four_dots", "h", 80, "....//", "h/..../"),
	OK("path_four_dots_abs", "h", 80, "/....//x", "h/..../x"),
	OK("path_three_dots", "h", 80, "/.../", "h/.../"),
	OK("path_dotfile", "h", 80, "/.htaccess", "h/.htaccess"),
	OK("path_slash_run", "h", 80, "//a///b//", "h/a/b/"),
	OK("path_slash_run_dotdot", "h", 80, "/a//../b", "h/a/b"),	/* RFC 3986 5.2.4 */
	OK("path_slash_run_dotdot2", "h", 80, "/a//b/../..", "h/a/"),
	OK("path_dotdot_param", "h", 80, "/secret/..;/x", "h/x"),
	OK("path_dot_param", "h", 80, "/a/.;jsessionid=1/b", "h/a/b"),
	OK("path_dotdot_param_enc", "h", 80, "/a/%2e%2e;x/b", "h/b"),
	OK("path_dots_not_segment", "h", 80, "/a/..b/.c", "h/a/..b/.c"),
	OK("path_trailing_slash_kept", "h", 80, "/a/", "h/a/"),
	OK("path_no_trailing_slash", "h", 80, "/a", "h/a"),
	OK("path_no_leading_slash", "h", 80, "a/b", "h/a/b"),
	OK("path_encoded_slash_segment", "h", 80, "/a%2F..%2Fb", "h/b"),
	OK("path_encoded_dotdot_slash", "h", 80, "/x/..%2Fbad/y", "h/bad/y"),

	/* ---- query and fragment ---- */
	OK("query_kept", "h", 80, "/a?x=1&y=/../z", "h/a?x=1&y=/../z"),
	OK("query_decoded_unreserved", "h", 80, "/a?%41=%2e%2e%2f",
	    "h/a?A=..%2F"),
	OK("query_question_kept", "h", 80, "/a?b?c", "h/a?b?c"),
	OK("query_empty_kept", "h", 80, "/a?", "h/a?"),
	OK("query_on_empty_path", "h", 80, "?q", "h/?q"),
	OK("query_slashes_not_collapsed", "h", 80, "/?//x", "h/?//x"),
	OK("query_raw_pipe_encoded", "h", 80, "/?a|b", "h/?a%7Cb"),
	ERR("query_raw_space", "h", 80, "/?a b", URL_NORM_E_PATH),
	OK("fragment_dropped", "h", 80, "/a#frag", "h/a"),
	OK("fragment_dropped_query", "h", 80, "/a?q#f?g", "h/a?q"),
	OK("fragment_at_dotdot", "h", 80, "/a/..#x", "h/"),

	/* ---- whole URLs, as a filter would see them ---- */
	OK("url_evasion_combo", "0x7F.1.", 80, "//ADMIN/./%2e%2E/%61dmin",
	    "127.0.0.1/admin"),
	OK("url_idn_port_path", "B\xc3\x9c" "CHER.example", 8080,
	    "/%7Euser/", "xn--bcher-kva.example:8080/~user/"),
	OK("url_v6", "[::FFFF:127.0.0.1]", 80, "/x", "127.0.0.1/x"),
	OK("url_v6_plain", "[2001:DB8::1]", 80, "/x", "[2001:db8::1]/x"),
};

#define NCASES	(sizeof(cases) / sizeof(cases[0]))

static void
test_case(void **state)
{
	const struct norm_case *c = *state;
	char out[1024];
	size_t hlen = c->hlen ? c->hlen : strlen(c->host);
	size_t plen = c->path == NULL ? 0 :
	    (c->plen ? c->plen : strlen(c->path));
	int rc;

	memset(out, 'Z', sizeof(out));
	if (c->port == 0)
		rc = url_norm_host(c->host, hlen, out, sizeof(out));
	else
		rc = url_norm(c->host, hlen, c->port, c->path, plen, out,
		    sizeof(out));
	if (c->want == NULL) {
		assert_int_equal(rc, c->err);
		assert_string_equal(out, "");
		return;
	}
	if (rc < 0)
		fail_msg("%s: got error %d (%s)", c->name, rc,
		    url_norm_strerror(rc));
	assert_string_equal(out, c->want);
	assert_int_equal(rc, (int)strlen(c->want));
}

/* Canonical output is a fixed point: normalizing it again changes nothing. */
static void
test_idempotent(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NCASES; i++) {
		const struct norm_case *c = &cases[i];
		char out2[1024];
		const char *slash;
		int rc;

		if (c->want == NULL || c->port == 0)
			continue;
		/* Split "host[:port]/rest" again; v6 hosts keep their ':'. */
		slash = strchr(c->want, '/');
		assert_non_null(slash);
		{
			char host[300];
			size_t hl = (size_t)(slash - c->want);
			const char *colon;
			int port = 80;

			memcpy(host, c->want, hl);
			host[hl] = '\0';
			colon = strrchr(host, ':');
			if (colon != NULL && (host[0] != '[' ||
			    colon > strchr(host, ']'))) {
				port = atoi(colon + 1);
				hl = (size_t)(colon - host);
			}
			rc = url_norm(host, hl, port, slash, strlen(slash),
			    out2, sizeof(out2));
		}
		if (rc < 0)
			fail_msg("%s: re-normalizing gave %d", c->name, rc);
		assert_string_equal(out2, c->want);
	}
}

/*
 * Every output size from 0 to one past the exact fit: an error below,
 * the full string at and above, and never a byte written past outsz.
 */
static void
test_outsz_bound(void **state)
{
	const char *path = "/a/%7e/b/%2fc?x=%41";
	const char *want = "example.com:8080/a/~/b/c?x=A";
	size_t wl = strlen(want);
	char buf[64];
	size_t sz;

	(void)state;
	for (sz = 0; sz <= wl + 2; sz++) {
		int rc;

		memset(buf, 'Z', sizeof(buf));
		rc = url_norm("EXAMPLE.com", 11, 8080, path, strlen(path),
		    buf, sz);
		if (sz <= wl) {
			assert_int_equal(rc, URL_NORM_E_TOOLONG);
			if (sz > 0)
				assert_int_equal(buf[0], '\0');
		} else {
			assert_int_equal(rc, (int)wl);
			assert_string_equal(buf, want);
		}
		/* Nothing beyond the buffer we were given. */
		for (size_t k = sz; k < sizeof(buf); k++)
			assert_int_equal(buf[k], 'Z');
	}
	/* The same for a host alone: "[2001:db8::1234]" is 16 bytes. */
	for (sz = 0; sz <= 18; sz++) {
		int rc;

		memset(buf, 'Z', sizeof(buf));
		rc = url_norm_host("[2001:DB8::1234]", 16, buf, sz);
		if (sz <= 16) {
			assert_int_equal(rc, URL_NORM_E_TOOLONG);
		} else {
			assert_int_equal(rc, 16);
			assert_string_equal(buf, "[2001:db8::1234]");
		}
		for (size_t k = sz; k < sizeof(buf); k++)
			assert_int_equal(buf[k], 'Z');
	}
}

/* The forwarding form: dot segments resolved, slashes kept. */
static void
test_target(void **state)
{
	static const struct { const char *in, *want; bool dots; } t[] = {
		{ "/a//../b?x=/../y", "/a/b?x=/../y", true },
		{ "/a/b/..", "/a/", true },
		{ "?x", "/?x", false },
		{ "/a/%2e%2e/b", "/b", true },
		{ "/a/%2E/b", "/a/b", true },
		{ "//a/b", "//a/b", false },
		{ "/web/2020/http://x.example/", "/web/2020/http://x.example/", false },
		{ "/secret/..;/x", "/x", true },
		{ "/..", "/", true },
		{ "/a/.hidden", "/a/.hidden", false },
		{ "/a%7Eb", "/a%7Eb", false },
		{ "/.well-known/x?a=[1]&b=%7e", "/.well-known/x?a=[1]&b=%7e", false },
		{ "/a/./%c3%a9/%41?s=a%2fb", "/a/%c3%a9/%41?s=a%2fb", true },
		{ "/x/%%32%65%%32%65/y/./", "/x/%%32%65%%32%65/y/", true },
		{ "/a/%2E%2e;x/b", "/b", true },
		{ "/a/...", "/a/...", false },
	};
	char out[256];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = url_norm_target(t[i].in, strlen(t[i].in), out, sizeof(out));
		assert_int_equal(rc, (int)strlen(t[i].want));
		assert_string_equal(out, t[i].want);
		assert_int_equal(url_norm_path_has_dots(t[i].in, strlen(t[i].in)), t[i].dots);
	}
	assert_false(url_norm_path_has_dots("/a?/../b", 8));
	/* Bytes are copied, not judged (http_url refused controls already);
	 * only a NUL is refused, and the output must fit. */
	assert_int_equal(url_norm_target("/a\0b", 4, out, sizeof(out)), URL_NORM_E_PATH);
	assert_int_equal(url_norm_target("/a/./b", 6, out, 7), URL_NORM_E_TOOLONG);
	assert_int_equal(url_norm_target("/a/./b", 6, out, 8), 4);
}

/* 64 KiB paths: fits into a big buffer, errors into a small one. */
static void
test_64k(void **state)
{
	size_t n = 64 * 1024;
	char *path = malloc(n);
	char *out = malloc(3 * n + 64);
	char small[4096];
	size_t i;
	int rc;

	(void)state;
	assert_non_null(path);
	assert_non_null(out);

	/* "/aaaa..." : copied as is. */
	path[0] = '/';
	memset(path + 1, 'a', n - 1);
	rc = url_norm("h", 1, 80, path, n, out, 3 * n + 64);
	assert_int_equal(rc, (int)(n + 1));
	assert_int_equal(out[0], 'h');
	assert_int_equal(out[n], 'a');
	assert_int_equal(out[n + 1], '\0');
	rc = url_norm("h", 1, 80, path, n, small, sizeof(small));
	assert_int_equal(rc, URL_NORM_E_TOOLONG);
	assert_int_equal(small[0], '\0');

	/* Raw high bytes triple in size: still bounded by outsz. */
	memset(path + 1, '\xff', n - 1);
	rc = url_norm("h", 1, 80, path, n, small, sizeof(small));
	assert_int_equal(rc, URL_NORM_E_TOOLONG);
	rc = url_norm("h", 1, 80, path, n, out, 3 * n + 64);
	assert_int_equal(rc, (int)(1 + 1 + 3 * (n - 1)));

	/* "/../../.." 64 KiB of it collapses to the root. */
	for (i = 0; i + 3 <= n; i += 3)
		memcpy(path + i, "/..", 3);
	rc = url_norm("h", 1, 80, path, i, small, sizeof(small));
	assert_int_equal(rc, 2);
	assert_string_equal(small, "h/");

	/* "////..." collapses to one slash (the runs are resolved before
	 * they are collapsed, so the buffer must hold them). */
	memset(path, '/', n);
	rc = url_norm("h", 1, 80, path, n, out, 3 * n + 64);
	assert_string_equal(out, "h/");
	assert_int_equal(rc, 2);

	/* 64 KiB of "%41" decodes to a third of it. */
	for (i = 0; i + 3 <= n; i += 3)
		memcpy(path + i, "%41", 3);
	rc = url_norm("h", 1, 80, path, i, out, 3 * n + 64);
	assert_int_equal(rc, (int)(1 + 1 + i / 3));
	assert_int_equal(out[2], 'A');

	/* A 64 KiB host: refused, not copied. */
	memset(path, 'a', n);
	rc = url_norm_host(path, n, small, sizeof(small));
	assert_int_equal(rc, URL_NORM_E_TOOLONG);
	/* 256 bytes of valid labels is one too many. */
	for (i = 0; i < 256; i++)
		path[i] = (i % 10 == 9) ? '.' : 'a';
	rc = url_norm_host(path, 256, small, sizeof(small));
	assert_int_equal(rc, URL_NORM_E_TOOLONG);
	rc = url_norm_host(path, 255, small, sizeof(small));
	assert_int_equal(rc, 255);

	free(path);
	free(out);
}

static void
test_null_args(void **state)
{
	char out[32];

	(void)state;
	assert_int_equal(url_norm_host(NULL, 0, out, sizeof(out)),
	    URL_NORM_E_HOST);
	assert_int_equal(url_norm_host("h", 1, NULL, 0), URL_NORM_E_TOOLONG);
	assert_int_equal(url_norm("h", 1, 80, NULL, 0, out, sizeof(out)), 2);
	assert_string_equal(out, "h/");
}

static void
test_strerror(void **state)
{
	static const int codes[] = {
		URL_NORM_OK, URL_NORM_E_HOST, URL_NORM_E_IDN,
		URL_NORM_E_PORT, URL_NORM_E_PATH, URL_NORM_E_TOOLONG,
	};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_non_null(url_norm_strerror(codes[i]));
		for (j = 0; j < i; j++)
			assert_string_not_equal(url_norm_strerror(codes[i]),
			    url_norm_strerror(codes[j]));
	}
	assert_string_equal(url_norm_strerror(-99),
	    "unknown url_norm error");
}

int
main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_outsz_bound),
		cmocka_unit_test(test_target),
		cmocka_unit_test(test_64k),
		cmocka_unit_test(test_null_args),
		cmocka_unit_test(test_strerror),
	};
	size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
	struct CMUnitTest *tests;
	size_t i;
	int rc;

	/* One named test per table row, so TAP names the failing spelling. */
	tests = calloc(NCASES + nfixed, sizeof(*tests));
	if (tests == NULL)
		return 1;
	for (i = 0; i < NCASES; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = test_case;
		tests[i].initial_state = (void *)(uintptr_t)&cases[i];
	}
	memcpy(tests + NCASES, fixed, sizeof(fixed));
	rc = _cmocka_run_group_tests("url_norm", tests, NCASES + nfixed,
	    NULL, NULL);
	free(tests);
	return rc;
}
