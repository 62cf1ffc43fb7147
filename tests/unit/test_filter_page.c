/*
 * test_filter_page.c - unit tests for conf/filter_page.c.
 *
 * Templates are written into a private temp dir and loaded like the
 * admin's file: each placeholder, escaping of hostile values, no
 * expansion inside values, "%%" and a lone '%', the load errors with
 * their exact text and line, the built-in page, NULL values, and
 * rendering into a buffer that already holds data or was released.
 *
 * Assumes: TMPDIR or /tmp is writable.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf/filter_page.h"

struct tmp {
	char dir[256];
	char path[300];
};

static int
tmp_setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));
	const char *base = getenv("TMPDIR");

	if (t == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "%s/test_filter_page.XXXXXX",
	    base ? base : "/tmp");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	snprintf(t->path, sizeof(t->path), "%s/block.html", t->dir);
	*state = t;
	return 0;
}

static int
tmp_teardown(void **state)
{
	struct tmp *t = *state;

	unlink(t->path);
	rmdir(t->dir);
	free(t);
	return 0;
}

/* Write n bytes of s as the template file; return its path. */
static const char *
write_tpl(void **state, const char *s, size_t n)
{
	struct tmp *t = *state;
	FILE *f = fopen(t->path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(s, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	return t->path;
}

/* Load a template from a string; fail the test on a load error. */
static struct filter_page *
load_str(void **state, const char *s)
{
	char err[512];
	struct filter_page *p = filter_page_load(write_tpl(state, s,
	    strlen(s)), err, sizeof(err));

	if (p == NULL)
		fail_msg("load failed: %s", err);
	return p;
}

/* Render into a fresh buffer and return a NUL-terminated copy. */
static char *
render(const struct filter_page *p, const struct filter_page_vars *v)
{
	struct buf b = { 0 };
	char *s;

	assert_int_equal(filter_page_render(p, v, &b), 0);
	assert_int_equal(buf_len(&b), filter_page_length(p, v));
	s = calloc(1, buf_len(&b) + 1);
	assert_non_null(s);
	if (buf_len(&b) > 0)
		memcpy(s, buf_rptr(&b), buf_len(&b));
	buf_free(&b);
	return s;
}

/* Expect a load error with exactly the text want (PATH replaced). */
static void
expect_error(void **state, const char *tpl, size_t n, const char *want)
{
	struct tmp *t = *state;
	char err[512], full[700];

	assert_null(filter_page_load(write_tpl(state, tpl, n), err,
	    sizeof(err)));
	snprintf(full, sizeof(full), "%s%s", t->path, want);
	assert_string_equal(err, full);
}

static const struct filter_page_vars plain = {
	.url = "http://blocked.test/x", .category = "games",
	.rule = "3", .client = "10.1.2.3", .time = "2025-01-02 03:04:05",
	.host = "proxy.school.test", .reason = "category games",
};

/* ---- cases ------------------------------------------------------------ */

static void
each_placeholder(void **state)
{
	static const struct { const char *tpl, *want; } cases[] = {
		{ "[%{url}]", "[http://blocked.test/x]" },
		{ "[%{category}]", "[games]" },
		{ "[%{rule}]", "[3]" },
		{ "[%{client}]", "[10.1.2.3]" },
		{ "[%{time}]", "[2025-01-02 03:04:05]" },
		{ "[%{host}]", "[proxy.school.test]" },
		{ "[%{reason}]", "[category games]" },
		{ "%{url}%{url}", "http://blocked.test/xhttp://blocked.test/x" },
		{ "no placeholders\n", "no placeholders\n" },
		{ "%{rule}", "3" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct filter_page *p = load_str(state, cases[i].tpl);
		char *s = render(p, &plain);

		assert_string_equal(s, cases[i].want);
		free(s);
		filter_page_free(p);
	}
}

static void
values_are_escaped(void **state)
{
	struct filter_page *p = load_str(state,
	    "<p title=\"%{url}\">%{reason}</p><i>%{client}</i>");
	struct filter_page_vars v = {
		.url = "http://x.test/<script>alert(\"x\")</script>?a=1&b='2'",
		.reason = "tab\there\r\nnew\x1b[31m\x7f",
		.client = "caf\xc3\xa9",
	};
	char *s = render(p, &v);

	assert_string_equal(s,
	    "<p title=\"http://x.test/&lt;script&gt;alert(&quot;x&quot;)"
	    "&lt;/script&gt;?a=1&amp;b=&#39;2&#39;\">"
	    "tab?here??new?[31m?</p><i>caf\xc3\xa9</i>");
	assert_null(strstr(s, "<script"));
	free(s);
	filter_page_free(p);
}

static void
no_recursive_expansion(void **state)
{
	struct filter_page *p = load_str(state, "%{url}|%{rule}");
	struct filter_page_vars v = {
		.url = "http://x.test/%{rule}/%{url}%%", .rule = "R",
	};
	char *s = render(p, &v);

	assert_string_equal(s, "http://x.test/%{rule}/%{url}%%|R");
	free(s);
	filter_page_free(p);
}

static void
percent_handling(void **state)
{
	static const struct { const char *tpl, *want; } cases[] = {
		{ "100%%", "100%" },
		{ "%%{url}", "%{url}" },
		{ "%%%{rule}", "%3" },
		{ "width: 100%; }", "width: 100%; }" },
		{ "%", "%" },
		{ "a%", "a%" },
		{ "%d %s %x", "%d %s %x" },
		{ "%%%%", "%%" },
		{ "%%%", "%%" },
		{ "50% of %{rule}%", "50% of 3%" },
		{ "%}{", "%}{" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct filter_page *p = load_str(state, cases[i].tpl);
		char *s = render(p, &plain);

		if (strcmp(s, cases[i].want) != 0)
			fail_msg("\"%s\" gave \"%s\"", cases[i].tpl, s);
		free(s);
		filter_page_free(p);
	}
}

static void
unknown_placeholder(void **state)
{
	static const char tpl[] =
	    "<html>\n<body>\n<p>%{url}</p>\n\n<p>%{foo}</p>\n";

	expect_error(state, tpl, strlen(tpl),
	    ":5: block_page: unknown placeholder %{foo}");
	expect_error(state, "%{URL}", 6,
	    ":1: block_page: unknown placeholder %{URL}");
	expect_error(state, "a\n%{}", 5,
	    ":2: block_page: unknown placeholder %{}");
	expect_error(state, "x\ny\n%{url", 9,
	    ":3: block_page: unterminated placeholder");
	expect_error(state, "%{url\n}", 7,
	    ":1: block_page: unterminated placeholder");
	/* a name too long to be one of ours */
	expect_error(state, "%{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}", 43,
	    ":1: block_page: unterminated placeholder");
	expect_error(state, "%{a\x01" "b}", 6,
	    ":1: block_page: unknown placeholder %{a?b}");
}

static void
missing_file(void **state)
{
	struct tmp *t = *state;
	char path[400], err[512], want[600];

	snprintf(path, sizeof(path), "%s/nope.html", t->dir);
	assert_null(filter_page_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want),
	    "%s: block_page: cannot read: No such file or directory", path);
	assert_string_equal(err, want);
	/* a directory is not a template */
	assert_null(filter_page_load(t->dir, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: block_page: not a regular file",
	    t->dir);
	assert_string_equal(err, want);
}

static void
size_limit(void **state)
{
	char *big = malloc(FILTER_PAGE_MAX + 1);
	char err[512];
	struct filter_page *p;
	char *s;

	assert_non_null(big);
	memset(big, 'x', FILTER_PAGE_MAX + 1);
	memcpy(big, "%{rule}", 7);
	/* exactly 64 KiB is fine */
	p = filter_page_load(write_tpl(state, big, FILTER_PAGE_MAX), err,
	    sizeof(err));
	if (p == NULL)
		fail_msg("%s", err);
	s = render(p, &plain);
	assert_int_equal(strlen(s), FILTER_PAGE_MAX - 7 + 1);
	assert_int_equal(s[0], '3');
	free(s);
	filter_page_free(p);
	/* one byte more is not */
	expect_error(state, big, FILTER_PAGE_MAX + 1,
	    ": block_page: larger than 64 KiB");
	free(big);
}

static void
nul_byte(void **state)
{
	static const char tpl[] = "line one\nline two\nthree\0four\n";

	expect_error(state, tpl, sizeof(tpl) - 1,
	    ":3: block_page: NUL byte");
	expect_error(state, "\0", 1, ":1: block_page: NUL byte");
}

static void
builtin_page(void **state)
{
	char err[512];
	struct filter_page *p = filter_page_load(NULL, err, sizeof(err));
	struct filter_page_vars v = plain;
	char *s;

	(void)state;
	assert_non_null(p);
	v.url = "http://blocked.test/<b>";
	s = render(p, &v);
	assert_non_null(strstr(s, "<!DOCTYPE html>"));
	assert_non_null(strstr(s, "<title>Access denied</title>"));
	assert_non_null(strstr(s, "http://blocked.test/&lt;b&gt;"));
	assert_non_null(strstr(s, ">games<"));
	assert_non_null(strstr(s, ">3<"));
	assert_non_null(strstr(s, "10.1.2.3"));
	assert_non_null(strstr(s, "2025-01-02 03:04:05"));
	assert_non_null(strstr(s, "proxy.school.test"));
	assert_non_null(strstr(s, "category games"));
	assert_non_null(strstr(s, "If you believe this is a mistake, "
	    "contact your administrator"));
	assert_non_null(strstr(s, "width: 100%;"));	/* CSS untouched */
	/* no external resources and no placeholders left */
	assert_null(strstr(s, "http://blocked.test/<b>"));
	assert_null(strstr(s, "src="));
	assert_null(strstr(s, "href="));
	assert_null(strstr(s, "%{"));
	free(s);
	filter_page_free(p);
}

static void
null_values_dash(void **state)
{
	struct filter_page *p = load_str(state,
	    "%{url}|%{category}|%{rule}|%{client}|%{time}|%{host}|%{reason}");
	struct filter_page_vars v = { .rule = "7" };
	char *s = render(p, &v);

	assert_string_equal(s, "-|-|7|-|-|-|-");
	free(s);
	s = render(p, NULL);
	assert_string_equal(s, "-|-|-|-|-|-|-");
	free(s);
	filter_page_free(p);
	/* the built-in page with nothing known */
	p = filter_page_load(NULL, NULL, 0);
	assert_non_null(p);
	s = render(p, NULL);
	assert_non_null(strstr(s, "<td>-</td>"));
	assert_null(strstr(s, "%{"));
	free(s);
	filter_page_free(p);
}

static void
render_appends(void **state)
{
	struct filter_page *p = load_str(state, "<%{rule}>");
	struct buf b = { 0 };

	/* existing unread data stays in front; the buffer grows */
	assert_int_equal(buf_reserve(&b, 8), 0);
	assert_int_equal(buf_append(&b, "HTTP/1.1", 8), 0);
	buf_consume(&b, 5);
	assert_int_equal(filter_page_render(p, &plain, &b), 0);
	assert_int_equal(buf_len(&b), 6);
	assert_memory_equal(buf_rptr(&b), "1.1<3>", 6);
	/* a released buffer keeps its nominal size */
	buf_free(&b);
	memset(&b, 0, sizeof(b));
	b.cap = 4096;
	assert_int_equal(filter_page_render(p, &plain, &b), 0);
	assert_int_equal(b.cap, 4096);
	assert_memory_equal(buf_rptr(&b), "<3>", 3);
	buf_free(&b);
	filter_page_free(p);
}

static void
empty_template(void **state)
{
	struct filter_page *p = load_str(state, "");
	struct buf b = { 0 };

	assert_int_equal(filter_page_render(p, &plain, &b), 0);
	assert_int_equal(buf_len(&b), 0);
	assert_null(b.data);
	filter_page_free(p);
	filter_page_free(NULL);
}

int
main(void)
{
#define CASE(f) cmocka_unit_test_setup_teardown(f, tmp_setup, tmp_teardown)
	const struct CMUnitTest tests[] = {
		CASE(each_placeholder),
		CASE(values_are_escaped),
		CASE(no_recursive_expansion),
		CASE(percent_handling),
		CASE(unknown_placeholder),
		CASE(missing_file),
		CASE(size_limit),
		CASE(nul_byte),
		CASE(builtin_page),
		CASE(null_values_dash),
		CASE(render_appends),
		CASE(empty_template),
	};
#undef CASE

	return cmocka_run_group_tests_name("filter_page", tests, NULL, NULL);
}
