/*
 * test_accesslog.c - unit tests for worker/accesslog.c.
 *
 * accesslog_escape() on every byte class it must escape, on plain text,
 * on every truncation length (an escape is never split, the result is
 * always NUL-terminated, nothing is written past dstlen) and at the
 * field cap.  The log itself is written into a file in a private temp
 * dir and read back: a Squid native and a combined line are split into
 * their fields, hostile bytes stay on one line, /dev/full drops lines
 * and counts them, a log without a path accepts writes and writes
 * nothing.
 *
 * Assumes: Linux (/dev/full); TMPDIR or /tmp is writable.
 */
#include "config.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>

#include "worker/accesslog.h"

/* accesslog.c keeps at most this many source bytes of one field. */
#define FIELD_CAP	2048

/* 2023-11-14 22:13:20.123 UTC */
#define T_MS		1700000000123LL

/* ---- helpers -------------------------------------------------------- */

struct tmplog {
	char dir[64];
	char path[96];
};

static void
tmplog_init(struct tmplog *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/test_accesslog.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/access.log", t->dir);
}

static void
tmplog_fini(struct tmplog *t)
{
	unlink(t->path);
	rmdir(t->dir);
}

/* Whole file as a NUL-terminated malloc'd string. */
static char *
slurp(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	if (lenp)
		*lenp = (size_t)n;
	return s;
}

static size_t
count_char(const char *s, size_t n, char c)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += s[i] == c;
	return k;
}

/* Split on runs of spaces (the squid format pads elapsed). */
static int
split_ws(char *s, char **f, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *t = strtok_r(s, " \n", &save); t && n < max;
	    t = strtok_r(NULL, " \n", &save))
		f[n++] = t;
	return n;
}

static struct accesslog_entry
entry(void)
{
	struct accesslog_entry e;

	memset(&e, 0, sizeof(e));
	e.start_ms = T_MS;
	e.elapsed_ms = 45;
	e.client = "127.0.0.1";
	e.code = "TCP_MISS";
	e.status = 200;
	e.bytes = 1234;
	e.method = "GET";
	e.method_len = 3;
	e.url = "http://example.test/a?b=c";
	e.url_len = strlen(e.url);
	e.http_minor = 1;
	e.hier = "HIER_DIRECT";
	e.peer = "127.0.0.2";
	e.ctype = "text/html";
	e.ctype_len = 9;
	e.referer = "http://ref.test/";
	e.referer_len = strlen(e.referer);
	e.ua = "curl/8.0";
	e.ua_len = 8;
	return e;
}

/* Write entries into a fresh file; return its contents. */
static char *
log_lines(enum log_format fmt, const struct accesslog_entry *e, int n,
    size_t *lenp)
{
	struct tmplog t;
	struct accesslog *l;
	char *s;

	tmplog_init(&t);
	l = accesslog_open(t.path, fmt);
	assert_non_null(l);
	for (int i = 0; i < n; i++)
		accesslog_write(l, &e[i]);
	assert_int_equal(accesslog_flush(l), 0);
	accesslog_close(l);
	s = slurp(t.path, lenp);
	tmplog_fini(&t);
	return s;
}

/* ---- accesslog_escape ----------------------------------------------- */

static void
escape_plain_unchanged(void **state)
{
	const char *s = "http://example.test/a-b_c.d~e?f=g&h=i%20j#k";
	char out[128];

	(void)state;
	assert_int_equal(accesslog_escape(out, sizeof(out), s, strlen(s)),
	    strlen(s));
	assert_string_equal(out, s);
	/* every printable byte except '"' and '\\' passes */
	for (int c = 0x20; c < 0x7f; c++) {
		char in = (char)c;

		if (c == '"' || c == '\\')
			continue;
		assert_int_equal(accesslog_escape(out, sizeof(out), &in, 1), 1);
		assert_int_equal(out[0], c);
		assert_int_equal(out[1], '\0');
	}
}

static void
escape_bytes_become_hex(void **state)
{
	static const struct { unsigned char in; const char *out; } t[] = {
		{ 0x00, "\\x00" }, { 0x01, "\\x01" }, { '\t', "\\x09" },
		{ '\n', "\\x0a" }, { '\r', "\\x0d" }, { 0x1b, "\\x1b" },
		{ 0x1f, "\\x1f" }, { 0x7f, "\\x7f" }, { 0x80, "\\x80" },
		{ 0xc3, "\\xc3" }, { 0xff, "\\xff" }, { '"', "\\x22" },
		{ '\\', "\\x5c" },
	};
	char out[16];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char in = (char)t[i].in;

		assert_int_equal(accesslog_escape(out, sizeof(out), &in, 1), 4);
		assert_string_equal(out, t[i].out);
	}
}

static void
escape_mixed(void **state)
{
	const char s[] = "a\r\nb\"c\\d\x1b[0m\xe2\x82\xac";
	char out[128];
	size_t n;

	(void)state;
	n = accesslog_escape(out, sizeof(out), s, sizeof(s) - 1);
	assert_string_equal(out,
	    "a\\x0d\\x0ab\\x22c\\x5cd\\x1b[0m\\xe2\\x82\\xac");
	assert_int_equal(n, strlen(out));
	/* a NUL inside the field is data, not the end */
	n = accesslog_escape(out, sizeof(out), "x\0y", 3);
	assert_string_equal(out, "x\\x00y");
	assert_int_equal(n, 6);
}

/* For every dstlen: NUL-terminated within dstlen, a prefix of the full
 * escape that ends on an escape boundary, and nothing written past. */
static void
escape_truncation_never_splits(void **state)
{
	const char s[] = "ab\x01" "c\"\xff" "dd\\";
	char full[64], out[80];
	size_t fl = 0, bounds[32], nb = 0;

	(void)state;
	/* boundaries in the full escaped string */
	bounds[nb++] = 0;
	for (size_t i = 0; i < sizeof(s) - 1; i++) {
		unsigned char c = (unsigned char)s[i];

		fl += (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? 4 : 1;
		bounds[nb++] = fl;
	}
	assert_int_equal(accesslog_escape(full, sizeof(full), s, sizeof(s) - 1),
	    fl);
	for (size_t dl = 1; dl <= fl + 2; dl++) {
		size_t n, want = 0;
		bool at_bound = false;

		memset(out, 'Z', sizeof(out));
		n = accesslog_escape(out, dl, s, sizeof(s) - 1);
		assert_true(n < dl);
		assert_int_equal(out[n], '\0');
		assert_int_equal(strlen(out), n);
		assert_memory_equal(out, full, n);
		for (size_t b = 0; b < nb; b++) {
			at_bound |= bounds[b] == n;
			if (bounds[b] < dl)
				want = bounds[b];	/* the longest that fits */
		}
		assert_true(at_bound);
		assert_int_equal(n, want);
		for (size_t k = dl; k < sizeof(out); k++)
			assert_int_equal(out[k], 'Z');
	}
	/* dstlen 0 writes nothing at all */
	out[0] = 'Z';
	assert_int_equal(accesslog_escape(out, 0, s, sizeof(s) - 1), 0);
	assert_int_equal(out[0], 'Z');
}

static void
escape_field_cap(void **state)
{
	size_t n = 3 * FIELD_CAP;
	char *src = malloc(n), *out = malloc(4 * n + 1);

	(void)state;
	assert_non_null(src);
	assert_non_null(out);
	memset(src, 'a', n);
	assert_int_equal(accesslog_escape(out, 4 * n + 1, src, n), FIELD_CAP);
	assert_int_equal(strlen(out), FIELD_CAP);
	/* the cap counts source bytes: escaped ones expand after it */
	memset(src, '\n', n);
	assert_int_equal(accesslog_escape(out, 4 * n + 1, src, n),
	    4 * FIELD_CAP);
	free(src);
	free(out);
}

/* ---- the log file --------------------------------------------------- */

static void
squid_line_fields(void **state)
{
	struct accesslog_entry e[2] = { entry(), entry() };
	char *s, *f[16];
	size_t len;
	int n;

	(void)state;
	e[1].start_ms = 1700000001007LL;	/* ms below 100: zero-padded */
	e[1].elapsed_ms = 1234567;
	e[1].code = "TCP_DENIED";
	e[1].status = 403;
	e[1].bytes = 0;
	e[1].method = "CONNECT";
	e[1].method_len = 7;
	e[1].url = "example.test:443";
	e[1].url_len = strlen(e[1].url);
	e[1].hier = "HIER_NONE";
	e[1].peer = "-";
	e[1].ctype = NULL;
	e[1].ctype_len = 0;
	s = log_lines(LOGFMT_SQUID, e, 2, &len);
	assert_int_equal(count_char(s, len, '\n'), 2);
	assert_int_equal(s[len - 1], '\n');

	/* elapsed is right-aligned in 6 columns, as Squid writes it */
	assert_non_null(strstr(s, ".123     45 "));
	char *l2 = strchr(s, '\n') + 1;
	l2[-1] = '\0';
	n = split_ws(s, f, 16);
	assert_int_equal(n, 10);
	assert_string_equal(f[0], "1700000000.123");
	assert_string_equal(f[1], "45");
	assert_string_equal(f[2], "127.0.0.1");
	assert_string_equal(f[3], "TCP_MISS/200");
	assert_string_equal(f[4], "1234");
	assert_string_equal(f[5], "GET");
	assert_string_equal(f[6], "http://example.test/a?b=c");
	assert_string_equal(f[7], "-");
	assert_string_equal(f[8], "HIER_DIRECT/127.0.0.2");
	assert_string_equal(f[9], "text/html");

	n = split_ws(l2, f, 16);
	assert_int_equal(n, 10);
	assert_string_equal(f[0], "1700000001.007");
	assert_string_equal(f[1], "1234567");
	assert_string_equal(f[3], "TCP_DENIED/403");
	assert_string_equal(f[4], "0");
	assert_string_equal(f[5], "CONNECT");
	assert_string_equal(f[6], "example.test:443");
	assert_string_equal(f[8], "HIER_NONE/-");
	assert_string_equal(f[9], "-");		/* no content type */
	free(s);
}

static void
combined_line_fields(void **state)
{
	struct accesslog_entry e = entry();
	char *s;
	size_t len;

	(void)state;
	e.http_minor = 0;
	s = log_lines(LOGFMT_COMBINED, &e, 1, &len);
	assert_string_equal(s,
	    "127.0.0.1 - - [14/Nov/2023:22:13:20 +0000] "
	    "\"GET http://example.test/a?b=c HTTP/1.0\" 200 1234 "
	    "\"http://ref.test/\" \"curl/8.0\"\n");
	free(s);

	/* absent referer and user agent are "-" */
	e = entry();
	e.referer = NULL;
	e.referer_len = 0;
	e.ua = NULL;
	e.ua_len = 0;
	s = log_lines(LOGFMT_COMBINED, &e, 1, &len);
	assert_non_null(strstr(s, "\" 200 1234 \"-\" \"-\"\n"));
	free(s);
}

static void
injection_stays_on_one_line(void **state)
{
	struct accesslog_entry e = entry();
	static const char url[] =
	    "http://x.test/a\r\n1.0\x01TCP_HIT/200";
	static const char ua[] = "ua\x1b[2J\" \"injected";
	char *s, *f[16];
	size_t len;

	(void)state;
	e.url = url;
	e.url_len = sizeof(url) - 1;
	e.ua = ua;
	e.ua_len = sizeof(ua) - 1;
	e.method = "G\"T";
	e.method_len = 3;

	s = log_lines(LOGFMT_COMBINED, &e, 1, &len);
	assert_int_equal(count_char(s, len, '\n'), 1);
	assert_null(memchr(s, '\r', len));
	assert_null(memchr(s, 0x1b, len));
	assert_non_null(strstr(s, "http://x.test/a\\x0d\\x0a1.0\\x01TCP_HIT/200 "));
	assert_non_null(strstr(s, "\"ua\\x1b[2J\\x22 \\x22injected\"\n"));
	assert_non_null(strstr(s, "\"G\\x22T "));
	/* exactly the 6 quotes of the format survive */
	assert_int_equal(count_char(s, len, '"'), 6);
	free(s);

	s = log_lines(LOGFMT_SQUID, &e, 1, &len);
	assert_int_equal(count_char(s, len, '\n'), 1);
	assert_null(memchr(s, '\r', len));
	assert_int_equal(split_ws(s, f, 16), 10);
	assert_string_equal(f[6],
	    "http://x.test/a\\x0d\\x0a1.0\\x01TCP_HIT/200");
	free(s);
}

static void
long_url_is_capped(void **state)
{
	struct accesslog_entry e = entry();
	size_t n = 10 * 1024, len;
	char *url = malloc(n), *s, *f[16];

	(void)state;
	assert_non_null(url);
	memset(url, 'u', n);
	e.url = url;
	e.url_len = n;
	s = log_lines(LOGFMT_SQUID, &e, 1, &len);
	assert_int_equal(count_char(s, len, '\n'), 1);
	assert_int_equal(split_ws(s, f, 16), 10);
	assert_int_equal(strlen(f[6]), FIELD_CAP);
	assert_string_equal(f[9], "text/html");	/* the line goes on */
	free(s);
	free(url);
}

static void
many_lines_all_written(void **state)
{
	/* more than the 64 KiB buffer: every line arrives, in order */
	enum { N = 2000 };
	struct accesslog_entry *e = calloc(N, sizeof(*e));
	char *s, *p;
	size_t len;

	(void)state;
	assert_non_null(e);
	for (int i = 0; i < N; i++) {
		e[i] = entry();
		e[i].bytes = (uint64_t)i;
	}
	s = log_lines(LOGFMT_SQUID, e, N, &len);
	assert_int_equal(count_char(s, len, '\n'), N);
	p = s;
	for (int i = 0; i < N; i++) {
		char *f[16], *nl = strchr(p, '\n');
		char want[32];

		assert_non_null(nl);
		*nl = '\0';
		assert_int_equal(split_ws(p, f, 16), 10);
		snprintf(want, sizeof(want), "%d", i);
		assert_string_equal(f[4], want);
		p = nl + 1;
	}
	free(s);
	free(e);
}

static void
dev_full_drops_and_counts(void **state)
{
	struct accesslog_entry e = entry();
	struct accesslog *l = accesslog_open("/dev/full", LOGFMT_SQUID);

	(void)state;
	assert_non_null(l);
	for (int i = 0; i < 3; i++)
		accesslog_write(l, &e);
	assert_int_equal(accesslog_flush(l), 3);
	/* the count is since the last call */
	assert_int_equal(accesslog_flush(l), 0);
	accesslog_write(l, &e);
	assert_int_equal(accesslog_flush(l), 1);
	accesslog_close(l);
}

static void
no_path_discards(void **state)
{
	struct accesslog_entry e = entry();
	char dir[64], cwd[4096];
	struct accesslog *l;
	struct dirent *de;
	DIR *d;
	int files = 0;

	(void)state;
	/* run in an empty dir: "" must not create a file anywhere */
	snprintf(dir, sizeof(dir), "/tmp/test_accesslog.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	for (int k = 0; k < 2; k++) {
		l = accesslog_open(k ? "" : NULL, k ? LOGFMT_COMBINED : LOGFMT_SQUID);
		assert_non_null(l);
		for (int i = 0; i < 10; i++)
			accesslog_write(l, &e);
		assert_int_equal(accesslog_flush(l), 0);
		assert_int_equal(accesslog_reopen(l), 0);
		accesslog_close(l);
	}
	assert_int_equal(chdir(cwd), 0);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		files += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	rmdir(dir);
	assert_int_equal(files, 0);
	/* NULL everywhere is harmless */
	accesslog_write(NULL, &e);
	assert_int_equal(accesslog_flush(NULL), 0);
	accesslog_close(NULL);
}

static void
open_failure_returns_null(void **state)
{
	(void)state;
	assert_null(accesslog_open("/nonexistent-dir/x/access.log",
	    LOGFMT_SQUID));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(escape_plain_unchanged),
		cmocka_unit_test(escape_bytes_become_hex),
		cmocka_unit_test(escape_mixed),
		cmocka_unit_test(escape_truncation_never_splits),
		cmocka_unit_test(escape_field_cap),
		cmocka_unit_test(squid_line_fields),
		cmocka_unit_test(combined_line_fields),
		cmocka_unit_test(injection_stays_on_one_line),
		cmocka_unit_test(long_url_is_capped),
		cmocka_unit_test(many_lines_all_written),
		cmocka_unit_test(dev_full_drops_and_counts),
		cmocka_unit_test(no_path_discards),
		cmocka_unit_test(open_failure_returns_null),
	};

	return cmocka_run_group_tests_name("accesslog", tests, NULL, NULL);
}
