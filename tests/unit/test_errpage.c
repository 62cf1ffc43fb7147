/*
 * test_errpage.c - unit tests for worker/errpage.c.
 *
 * errpage_escape() on the five HTML metacharacters, control bytes and
 * every truncation length; errpage_build() for every status sluice
 * generates: the status line and reason, Content-Length equal to the
 * body actually appended, text/html, Connection: close only when asked,
 * the detail, URL and hostname HTML-escaped, a 10 KB URL cut so the page
 * stays short, and -1 for a buffer too small to hold the page.
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

#include "lib/buf.h"
#include "worker/errpage.h"

/* ---- helpers -------------------------------------------------------- */

struct page {
	char head[4096];
	const char *body;
	size_t body_len;
	long clen;
	int status;
	char reason[64];
};

/* Split the response in b into head and body; parse the status line and
 * Content-Length.  The response must be complete and well framed. */
static void
parse_page(const struct buf *b, struct page *p)
{
	const char *s = buf_rptr(b), *end;
	size_t len = buf_len(b), hl;
	const char *cl;

	memset(p, 0, sizeof(*p));
	end = memmem(s, len, "\r\n\r\n", 4);
	assert_non_null(end);
	hl = (size_t)(end - s) + 4;
	assert_true(hl < sizeof(p->head));
	memcpy(p->head, s, hl);
	p->head[hl] = '\0';
	p->body = s + hl;
	p->body_len = len - hl;
	assert_int_equal(sscanf(p->head, "HTTP/1.1 %d %63[^\r]", &p->status,
	    p->reason), 2);
	cl = strstr(p->head, "\r\nContent-Length: ");
	assert_non_null(cl);
	p->clen = strtol(cl + 18, NULL, 10);
	/* exactly one Content-Length */
	assert_null(strstr(cl + 1, "\r\nContent-Length:"));
}

static bool
body_has(const struct page *p, const char *needle)
{
	return memmem(p->body, p->body_len, needle, strlen(needle)) != NULL;
}

/* ---- errpage_escape ------------------------------------------------- */

static void
escape_metachars(void **state)
{
	const char s[] = "<script>alert(\"x\" & 'y')</script>";
	char out[256];
	size_t n;

	(void)state;
	n = errpage_escape(out, sizeof(out), s, sizeof(s) - 1);
	assert_string_equal(out, "&lt;script&gt;alert(&quot;x&quot; &amp; "
	    "&#39;y&#39;)&lt;/script&gt;");
	assert_int_equal(n, strlen(out));
	/* plain text unchanged */
	n = errpage_escape(out, sizeof(out), "http://a.test/b?c=d", 19);
	assert_string_equal(out, "http://a.test/b?c=d");
	assert_int_equal(n, 19);
}

static void
escape_control_bytes(void **state)
{
	const char s[] = "a\r\nb\x01\x1b\x7f" "c\0d";
	char out[64];

	(void)state;
	assert_int_equal(errpage_escape(out, sizeof(out), s, sizeof(s) - 1),
	    10);
	assert_string_equal(out, "a??b???c?d");
	/* no control byte survives, whatever the input */
	for (int c = 0; c < 0x20; c++) {
		char in = (char)c;

		errpage_escape(out, sizeof(out), &in, 1);
		assert_string_equal(out, "?");
	}
}

static void
escape_truncation_safe(void **state)
{
	const char s[] = "a<b&c\"d'e>";
	static const size_t bounds[] = { 0, 1, 5, 6, 11, 12, 18, 19, 24, 25, 29 };
	char full[64], out[64];
	size_t fl;

	(void)state;
	fl = errpage_escape(full, sizeof(full), s, sizeof(s) - 1);
	assert_int_equal(fl, 29);
	for (size_t dl = 1; dl <= fl + 2; dl++) {
		size_t n, want = 0;

		memset(out, 'Z', sizeof(out));
		n = errpage_escape(out, dl, s, sizeof(s) - 1);
		assert_true(n < dl);
		assert_int_equal(out[n], '\0');
		assert_memory_equal(out, full, n);
		/* never a cut entity: the longest whole prefix that fits */
		for (size_t b = 0; b < sizeof(bounds) / sizeof(bounds[0]); b++)
			if (bounds[b] < dl)
				want = bounds[b];
		assert_int_equal(n, want);
		for (size_t k = dl; k < sizeof(out); k++)
			assert_int_equal(out[k], 'Z');
	}
	out[0] = 'Z';
	assert_int_equal(errpage_escape(out, 0, s, sizeof(s) - 1), 0);
	assert_int_equal(out[0], 'Z');
}

/* ---- errpage_build -------------------------------------------------- */

static void
build_every_status(void **state)
{
	static const struct { int status; const char *reason; } t[] = {
		{ 400, "Bad Request" },
		{ 403, "Forbidden" },
		{ 405, "Method Not Allowed" },
		{ 408, "Request Timeout" },
		{ 411, "Length Required" },
		{ 413, "Content Too Large" },
		{ 414, "URI Too Long" },
		{ 417, "Expectation Failed" },
		{ 431, "Request Header Fields Too Large" },
		{ 501, "Not Implemented" },
		{ 502, "Bad Gateway" },
		{ 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" },
		{ 505, "HTTP Version Not Supported" },
		{ 508, "Loop Detected" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct buf b = { 0 };
		struct page p;
		char want[128];
		int n;

		assert_string_equal(errpage_reason(t[i].status), t[i].reason);
		n = errpage_build(&b, t[i].status, NULL, NULL, 0, "proxy.test",
		    false);
		assert_true(n > 0);
		parse_page(&b, &p);
		assert_int_equal(p.status, t[i].status);
		assert_string_equal(p.reason, t[i].reason);
		assert_int_equal(p.clen, n);
		assert_int_equal(p.body_len, (size_t)n);
		assert_non_null(strstr(p.head,
		    "\r\nContent-Type: text/html"));
		assert_null(strstr(p.head, "Connection:"));
		/* the page names the status */
		snprintf(want, sizeof(want), "%d %s", t[i].status, t[i].reason);
		assert_true(body_has(&p, want));
		assert_true(body_has(&p, "proxy.test"));
		assert_true(body_has(&p, "</html>"));
		buf_free(&b);
	}
}

static void
build_connection_close_only_when_asked(void **state)
{
	struct buf b = { 0 };
	struct page p;
	int n;

	(void)state;
	n = errpage_build(&b, 400, "bad", NULL, 0, "h", true);
	assert_true(n > 0);
	parse_page(&b, &p);
	assert_non_null(strstr(p.head, "\r\nConnection: close\r\n"));
	assert_int_equal(p.clen, n);
	buf_free(&b);

	memset(&b, 0, sizeof(b));
	n = errpage_build(&b, 400, "bad", NULL, 0, "h", false);
	parse_page(&b, &p);
	assert_null(strstr(p.head, "Connection"));
	buf_free(&b);
}

static void
build_escapes_detail_url_host(void **state)
{
	static const char url[] = "http://a.test/<script>alert('x')</script>?q=\"1\"&r=2";
	struct buf b = { 0 };
	struct page p;
	int n;

	(void)state;
	n = errpage_build(&b, 403, "denied <script>x</script> & \"more\"",
	    url, sizeof(url) - 1, "h<script>", true);
	assert_true(n > 0);
	parse_page(&b, &p);
	assert_int_equal(p.clen, n);
	assert_int_equal(p.body_len, (size_t)n);
	assert_false(body_has(&p, "<script>"));
	assert_false(body_has(&p, "</script>"));
	assert_true(body_has(&p, "denied &lt;script&gt;x&lt;/script&gt; &amp; "
	    "&quot;more&quot;"));
	assert_true(body_has(&p, "http://a.test/&lt;script&gt;alert(&#39;x&#39;)"
	    "&lt;/script&gt;?q=&quot;1&quot;&amp;r=2"));
	assert_true(body_has(&p, "h&lt;script&gt;"));
	/* the head carries nothing of the URL */
	assert_null(strstr(p.head, "a.test"));
	buf_free(&b);
}

static void
build_url_with_crlf_stays_in_body(void **state)
{
	static const char url[] = "http://a.test/x\r\nSet-Cookie: s=1\r\n\r\n";
	struct buf b = { 0 };
	struct page p;
	int n;

	(void)state;
	n = errpage_build(&b, 400, NULL, url, sizeof(url) - 1, "h", true);
	assert_true(n > 0);
	parse_page(&b, &p);
	assert_null(strstr(p.head, "Set-Cookie"));
	assert_null(memchr(p.body, '\r', p.body_len));
	assert_true(body_has(&p, "http://a.test/x??Set-Cookie: s=1????"));
	buf_free(&b);
}

static void
build_long_url_is_cut(void **state)
{
	size_t ul = 10 * 1024;
	char *url = malloc(ul);
	struct buf b = { 0 };
	struct page p;
	int n;

	(void)state;
	assert_non_null(url);
	memcpy(url, "http://a.test/", 14);
	memset(url + 14, '<', ul - 14);	/* worst case: each grows x4 */
	n = errpage_build(&b, 414, "too long", url, ul, "h", true);
	assert_true(n > 0);
	parse_page(&b, &p);
	assert_int_equal(p.clen, n);
	assert_int_equal(p.body_len, (size_t)n);
	assert_true(n < 2048);
	assert_true(body_has(&p, "http://a.test/&lt;&lt;"));
	assert_true(body_has(&p, "</html>"));	/* cut, yet complete */
	buf_free(&b);
	free(url);
}

static void
build_appends_after_existing(void **state)
{
	struct buf b = { 0 };
	struct page p;
	int n;

	(void)state;
	/* bytes already queued stay in front; the page follows them */
	assert_int_equal(buf_reserve(&b, 8192), 0);
	assert_int_equal(buf_append(&b, "PREFIX", 6), 0);
	n = errpage_build(&b, 502, "upstream", NULL, 0, "h", true);
	assert_true(n > 0);
	assert_memory_equal(buf_rptr(&b), "PREFIX", 6);
	buf_consume(&b, 6);
	parse_page(&b, &p);
	assert_int_equal(p.status, 502);
	assert_int_equal(p.body_len, (size_t)n);
	buf_free(&b);
}

static void
build_too_small_buffer(void **state)
{
	struct buf big = { 0 };
	size_t full;
	int blen, n;

	(void)state;
	/* the exact size of this response, then buffers around it */
	blen = errpage_build(&big, 502, "upstream failed", "http://a.test/", 14,
	    "proxy.test", true);
	assert_true(blen > 0);
	full = buf_len(&big);
	buf_free(&big);
	const size_t caps[] = { 16, 64, full / 2, full - 1, full };
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		struct buf b = { 0 };
		int want = caps[i] >= full ? blen : -1;

		assert_int_equal(buf_reserve(&b, caps[i]), 0);
		n = errpage_build(&b, 502, "upstream failed",
		    "http://a.test/", 14, "proxy.test", true);
		buf_free(&b);
		assert_int_equal(n, want);
	}
}

/* A refused page must not leave half a response in the buffer: the
 * caller could otherwise send a head with no body. */
static void
build_too_small_writes_nothing(void **state)
{
	struct buf b = { 0 };
	size_t len;

	(void)state;
	/* room for the head, not for the body */
	assert_int_equal(buf_reserve(&b, 300), 0);
	assert_int_equal(errpage_build(&b, 502, "upstream failed",
	    "http://a.test/", 14, "proxy.test", true), -1);
	len = buf_len(&b);
	buf_free(&b);
	assert_int_equal(len, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(escape_metachars),
		cmocka_unit_test(escape_control_bytes),
		cmocka_unit_test(escape_truncation_safe),
		cmocka_unit_test(build_every_status),
		cmocka_unit_test(build_connection_close_only_when_asked),
		cmocka_unit_test(build_escapes_detail_url_host),
		cmocka_unit_test(build_url_with_crlf_stays_in_body),
		cmocka_unit_test(build_long_url_is_cut),
		cmocka_unit_test(build_appends_after_existing),
		cmocka_unit_test(build_too_small_buffer),
		cmocka_unit_test(build_too_small_writes_nothing),
	};

	return cmocka_run_group_tests_name("errpage", tests, NULL, NULL);
}
