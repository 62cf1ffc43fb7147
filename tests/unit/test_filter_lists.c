/*
 * test_filter_lists.c - unit tests for conf/filter_lists.c and
 * conf/filter_urls.c.
 *
 * Each case writes its list tree into a fresh mkdtemp folder (removed
 * afterwards) and loads it the way the config check does.  Covered:
 * the file format (comments, blanks, CRLF, BOM, no final newline, "*."
 * and "." prefixes), normalisation shared with requests (IDN, numeric
 * IPv4, %-escapes and dot segments), the URL-prefix boundary rules and
 * ports, every error message with its FILE:LINE, deterministic order,
 * and the issue 4 load benchmark (1,000,000 domains + 200,000 URLs),
 * whose figures are printed as TAP comments.  Bounds asserted in the
 * benchmark are loose so a sanitizer build passes; the -O2 figures are
 * what the issue's targets are checked against.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf/filter_domains.h"
#include "conf/filter_lists.h"
#include "conf/filter_urls.h"
#include "lib/url_norm.h"

struct fx {
	char root[64];
	char err[512];
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	snprintf(fx->root, sizeof(fx->root), "/tmp/sluice-lists-XXXXXX");
	if (mkdtemp(fx->root) == NULL) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *fx = *state;

	/* Unreadable fixtures must be removable. */
	nftw(fx->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* Writes root/rel (n bytes of s), creating the category folder. */
static void
put(struct fx *fx, const char *rel, const char *s, size_t n)
{
	char path[512];
	char *slash;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", fx->root, rel);
	slash = strrchr(path, '/');
	*slash = '\0';
	if (mkdir(path, 0755) == -1)
		assert_int_equal(errno, EEXIST);
	*slash = '/';
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(s, 1, n, fp), n);
	assert_int_equal(fclose(fp), 0);
}

#define PUT(fx, rel, lit)	put((fx), (rel), (lit), sizeof(lit) - 1)

static void
mkcat(struct fx *fx, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", fx->root, name);
	assert_int_equal(mkdir(path, 0755), 0);
}

static struct filter_lists *
load_ok(struct fx *fx)
{
	struct filter_lists *l = filter_lists_load(fx->root, fx->err,
	    sizeof(fx->err));

	if (l == NULL)
		print_error("unexpected load error: %s\n", fx->err);
	assert_non_null(l);
	assert_string_equal(fx->err, "");
	return l;
}

/* Loads expecting failure; the message with the root replaced by "R". */
static const char *
load_fail(struct fx *fx)
{
	static char msg[600];
	struct filter_lists *l;
	size_t rl = strlen(fx->root);

	l = filter_lists_load(fx->root, fx->err, sizeof(fx->err));
	assert_null(l);
	assert_memory_equal(fx->err, fx->root, rl);
	snprintf(msg, sizeof(msg), "R%s", fx->err + rl);
	return msg;
}

static const char *
dmatch(const struct filter_category *c, const char *host)
{
	return filter_domains_match(c->domains, host, strlen(host));
}

static const char *
umatch(const struct filter_category *c, const char *url)
{
	return filter_urls_match(c->urls, url, strlen(url));
}

/* ---- file format ------------------------------------------------------ */

static void
domains_format(void **state)
{
	struct fx *fx = *state;
	struct filter_lists *l;
	const struct filter_category *c;

	PUT(fx, "adult/domains",
	    "\xef\xbb\xbf" "first.com\r\n"
	    "# a comment\r\n"
	    "\r\n"
	    "   \t\n"
	    "  spaced.org\t \n"
	    ".dotted.net\n"
	    "*.star.net\n"
	    "commented.com  # trailing comment\n"
	    "UPPER.Example.\n"
	    "first.com\n"
	    "last.info");
	l = load_ok(fx);
	assert_int_equal(l->ncats, 1);
	c = &l->cats[0];
	assert_string_equal(c->name, "adult");
	assert_int_equal(c->ndomains, 7);	/* first.com once */
	assert_null(c->urls);
	assert_int_equal(c->nexprs, 0);
	/* The BOM is not part of the first name. */
	assert_string_equal(dmatch(c, "first.com"), "first.com");
	assert_string_equal(dmatch(c, "spaced.org"), "spaced.org");
	assert_string_equal(dmatch(c, "a.dotted.net"), "dotted.net");
	assert_string_equal(dmatch(c, "dotted.net"), "dotted.net");
	assert_string_equal(dmatch(c, "www.star.net"), "star.net");
	assert_string_equal(dmatch(c, "star.net"), "star.net");
	assert_string_equal(dmatch(c, "commented.com"), "commented.com");
	assert_string_equal(dmatch(c, "upper.example"), "upper.example");
	/* The last line had no newline and still counts. */
	assert_string_equal(dmatch(c, "last.info"), "last.info");
	assert_null(dmatch(c, "notfirst.com"));
	assert_null(dmatch(c, "net"));
	assert_true(l->bytes > filter_domains_bytes(c->domains));
	filter_lists_free(l);
}

static void
domains_idn_and_ip(void **state)
{
	struct fx *fx = *state;
	struct filter_lists *l;
	const struct filter_category *c;

	PUT(fx, "x/domains",
	    "bücher.example\n"
	    "3232235777\n"
	    "0x7f.1\n"
	    "10.0.0.1\n");
	l = load_ok(fx);
	c = filter_lists_find(l, "x");
	assert_non_null(c);
	assert_int_equal(c->ndomains, 4);
	assert_string_equal(dmatch(c, "xn--bcher-kva.example"),
	    "xn--bcher-kva.example");
	assert_string_equal(dmatch(c, "shop.xn--bcher-kva.example"),
	    "xn--bcher-kva.example");
	/* "3232235777" is 192.168.1.1 to every resolver. */
	assert_string_equal(dmatch(c, "192.168.1.1"), "192.168.1.1");
	assert_string_equal(dmatch(c, "127.0.0.1"), "127.0.0.1");
	assert_string_equal(dmatch(c, "10.0.0.1"), "10.0.0.1");
	assert_null(dmatch(c, "10.0.0.2"));
	assert_null(dmatch(c, "buecher.example"));
	filter_lists_free(l);
}

/* ---- urls --------------------------------------------------------------- */

static void
urls_boundaries(void **state)
{
	struct fx *fx = *state;
	struct filter_lists *l;
	const struct filter_category *c;
	static const char *const hit[] = {
		"foo.com/bar", "foo.com/bar/x", "foo.com/bar?q",
		"www.foo.com/bar", "www2.foo.com/bar", "web3.foo.com/bar/y",
		"foo.com/bar/", "foo.com/bar?q=/x",
	};
	static const char *const miss[] = {
		"foo.com/barbaz", "sub.foo.com/bar", "foo.com/ba",
		"foo.com/", "foo.com/x/bar", "web.foo.com/bar",
		"foo.com:8080/bar", "foo.co/bar", "foo.com/Bar",
	};

	PUT(fx, "c/urls", "foo.com/bar\n");
	l = load_ok(fx);
	c = &l->cats[0];
	assert_int_equal(c->nurls, 1);
	assert_null(c->domains);
	for (size_t i = 0; i < sizeof(hit) / sizeof(hit[0]); i++) {
		const char *m = umatch(c, hit[i]);

		if (m == NULL)
			print_error("expected a hit: %s\n", hit[i]);
		assert_non_null(m);
		assert_string_equal(m, "foo.com/bar");
	}
	for (size_t i = 0; i < sizeof(miss) / sizeof(miss[0]); i++) {
		if (umatch(c, miss[i]) != NULL)
			print_error("expected a miss: %s\n", miss[i]);
		assert_null(umatch(c, miss[i]));
	}
	filter_lists_free(l);
}

static void
urls_forms(void **state)
{
	struct fx *fx = *state;
	struct filter_lists *l;
	const struct filter_category *c;

	PUT(fx, "c/urls",
	    "# scheme, www, trailing slash, host only, longest match\n"
	    "HTTPS://WWW.Dir.example/Sub/\n"
	    "http://host.example\n"
	    "host.example/deep/er  # the longer entry wins\n"
	    "www.com/x\n"
	    "exact.example/p?id=1\n");
	l = load_ok(fx);
	c = &l->cats[0];
	assert_int_equal(c->nurls, 5);
	/* Trailing slash: "h/p/" and below, not "h/p" itself. */
	assert_string_equal(umatch(c, "dir.example/Sub/"), "dir.example/Sub/");
	assert_string_equal(umatch(c, "dir.example/Sub/a/b?c"),
	    "dir.example/Sub/");
	assert_string_equal(umatch(c, "www1.dir.example/Sub/a"),
	    "dir.example/Sub/");
	assert_null(umatch(c, "dir.example/Sub"));
	assert_null(umatch(c, "dir.example/Sub?x"));
	assert_null(umatch(c, "dir.example/sub/"));	/* path case kept */
	/* Host alone: the whole host, not its subdomains. */
	assert_string_equal(umatch(c, "host.example/"), "host.example/");
	assert_string_equal(umatch(c, "host.example/any/thing?q"),
	    "host.example/");
	assert_string_equal(umatch(c, "www.host.example/a"), "host.example/");
	assert_null(umatch(c, "x.host.example/"));
	assert_string_equal(umatch(c, "host.example/deep/er/x"),
	    "host.example/deep/er");
	assert_string_equal(umatch(c, "host.example/deep/err"),
	    "host.example/");
	/* "www.com" keeps its label: what is left would be a TLD. */
	assert_string_equal(umatch(c, "www.com/x/y"), "www.com/x");
	assert_null(umatch(c, "com/x"));
	/* An entry with a query matches that URL only. */
	assert_string_equal(umatch(c, "exact.example/p?id=1"),
	    "exact.example/p?id=1");
	assert_null(umatch(c, "exact.example/p?id=12"));
	assert_null(umatch(c, "exact.example/p"));
	filter_lists_free(l);
}

/* The request side, as the worker will produce it. */
static const char *
canon(const char *host, int port, const char *path)
{
	static char out[1024];
	int n = url_norm(host, strlen(host), port, path, strlen(path), out,
	    sizeof(out));

	assert_true(n > 0);
	return out;
}

static void
urls_normalised(void **state)
{
	struct fx *fx = *state;
	struct filter_lists *l;
	const struct filter_category *c;

	PUT(fx, "c/urls",
	    "Bücher.example/a/./b/../%7euser/\n"
	    "norm.example//x%2fy/%41\n"
	    "0x7f.1/admin\n");
	l = load_ok(fx);
	c = &l->cats[0];
	assert_string_equal(umatch(c, canon("xn--bcher-kva.example", 80,
	    "/a/~user/index.html")), "xn--bcher-kva.example/a/~user/");
	assert_string_equal(umatch(c, canon("BÜCHER.example.", 80,
	    "/a//%7Euser/x")), "xn--bcher-kva.example/a/~user/");
	/* An escaped slash separates segments on both sides (origins that
	 * decode before they split serve /x%2Fy/A as /x/y/A). */
	assert_string_equal(umatch(c, canon("norm.example", 80,
	    "/x%2Fy/A")), "norm.example/x/y/A");
	assert_string_equal(umatch(c, canon("norm.example", 80, "/x/y/A")),
	    "norm.example/x/y/A");
	assert_string_equal(umatch(c, canon("2130706433", 80,
	    "/admin/../admin/x")), "127.0.0.1/admin");
	filter_lists_free(l);
}

static void
urls_ports(void **state)
{
	struct fx *fx = *state;
	struct filter_lists *l;
	const struct filter_category *c;

	PUT(fx, "c/urls",
	    "alt.example:8080/p\n"
	    "plain.example/q\n"
	    "http://eighty.example:80/r\n"
	    "[::1]:3128/v6\n");
	l = load_ok(fx);
	c = &l->cats[0];
	assert_string_equal(umatch(c, "alt.example:8080/p/x"),
	    "alt.example:8080/p");
	assert_string_equal(umatch(c, "www.alt.example:8080/p"),
	    "alt.example:8080/p");
	assert_null(umatch(c, "alt.example/p"));
	assert_null(umatch(c, "alt.example:8081/p"));
	assert_string_equal(umatch(c, "plain.example/q"), "plain.example/q");
	assert_null(umatch(c, "plain.example:8080/q"));
	/* ":80" is the default port: url_norm drops it on both sides. */
	assert_string_equal(umatch(c, canon("eighty.example", 80, "/r")),
	    "eighty.example/r");
	assert_string_equal(umatch(c, canon("::1", 3128, "/v6/z")),
	    "[::1]:3128/v6");
	filter_lists_free(l);
}

/* filter_urls on its own: validation, dedup, unbuilt, the probe cap. */
static void
urls_set_api(void **state)
{
	struct filter_urls *u = filter_urls_new();
	char deep[256], url[512];
	size_t n = 0;

	(void)state;
	assert_non_null(u);
	assert_int_equal(filter_urls_add(u, "", 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(filter_urls_add(u, "/path", 5), -1);
	assert_int_equal(filter_urls_add(u, "a b/c", 5), -1);
	assert_int_equal(filter_urls_add(u, "a\0b", 3), -1);
	assert_int_equal(filter_urls_add(u, "h.example/a", 11), 0);
	assert_int_equal(filter_urls_add(u, "h.example/a", 11), 0);
	assert_int_equal(filter_urls_add(u, "h.example", 9), 0);
	assert_int_equal(filter_urls_add(u, "q.example?x", 11), 0);
	/* 31 segments deep: still inside the 32-boundary cap. */
	n = (size_t)snprintf(deep, sizeof(deep), "d.example");
	for (int i = 0; i < 31; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "/%c",
		    'a' + i % 26);
	assert_int_equal(filter_urls_add(u, deep, n), 0);
	assert_null(filter_urls_match(u, "h.example/a", 11));	/* unbuilt */
	assert_int_equal(filter_urls_count(u), 5);
	assert_int_equal(filter_urls_build(u), 0);
	assert_int_equal(filter_urls_build(u), -1);
	assert_int_equal(filter_urls_add(u, "x.example", 9), -1);
	assert_int_equal(filter_urls_count(u), 4);
	assert_string_equal(filter_urls_match(u, "h.example/a/b", 13),
	    "h.example/a");
	assert_string_equal(filter_urls_match(u, "h.example/b", 11),
	    "h.example/");
	/* Not url_norm's form, but "host" alone still means "host/". */
	assert_string_equal(filter_urls_match(u, "h.example", 9),
	    "h.example/");
	assert_string_equal(filter_urls_match(u, "q.example/?x", 12),
	    "q.example/?x");
	/* A length shorter than the string is honoured. */
	assert_null(filter_urls_match(u, "h.example/a", 5));
	snprintf(url, sizeof(url), "%s/z", deep);
	assert_string_equal(filter_urls_match(u, url, strlen(url)), deep);
	/* Past the cap nothing deeper is probed, but shallower entries are. */
	snprintf(url, sizeof(url), "h.example/a%s%s", deep + 9, deep + 9);
	assert_string_equal(filter_urls_match(u, url, strlen(url)),
	    "h.example/a");
	assert_true(filter_urls_bytes(u) > 4 * 16);
	filter_urls_free(u);

	assert_int_equal(filter_urls_strip_www("www.a.b/", 8), 4);
	assert_int_equal(filter_urls_strip_www("www12.a.b", 9), 6);
	assert_int_equal(filter_urls_strip_www("web7.a.b", 8), 5);
	assert_int_equal(filter_urls_strip_www("web.a.b", 7), 0);
	assert_int_equal(filter_urls_strip_www("wwwx.a.b", 8), 0);
	assert_int_equal(filter_urls_strip_www("www.com/a.b", 11), 0);
	assert_int_equal(filter_urls_strip_www("www.", 4), 0);
}

/* ---- expressions ---------------------------------------------------- */

static void
expressions_raw(void **state)
{
	struct fx *fx = *state;
	struct filter_lists *l;
	const struct filter_category *c;
	char file[128];

	PUT(fx, "c/expressions",
	    "\xef\xbb\xbf# patterns, after a BOM\r\n"
	    "(^|\\.)casino[0-9]*\\.\r\n"
	    "\r\n"
	    "  /ads?/[^#]+#x  \n"
	    "poker  #  not a comment");
	l = load_ok(fx);
	c = &l->cats[0];
	assert_int_equal(c->nexprs, 3);
	snprintf(file, sizeof(file), "%s/c/expressions", fx->root);
	assert_string_equal(c->exprs[0].pattern, "(^|\\.)casino[0-9]*\\.");
	assert_int_equal(c->exprs[0].line, 2);
	assert_string_equal(c->exprs[0].file, file);
	/* '#' inside a pattern is kept: only a leading '#' is a comment. */
	assert_string_equal(c->exprs[1].pattern, "/ads?/[^#]+#x");
	assert_int_equal(c->exprs[1].line, 4);
	assert_string_equal(c->exprs[2].pattern, "poker  #  not a comment");
	assert_int_equal(c->exprs[2].line, 5);
	assert_null(c->domains);
	assert_null(c->urls);
	filter_lists_free(l);
}

/* ---- folders -------------------------------------------------------- */

static void
folders_order_and_find(void **state)
{
	struct fx *fx = *state;
	struct filter_lists *l;
	static const char *const want[] = { "Alpha", "a.b", "beta", "empty",
	    "zeta" };

	PUT(fx, "zeta/domains", "z.example\n");
	PUT(fx, "beta/domains", "b.example\n");
	PUT(fx, "Alpha/urls", "a.example/x\n");
	PUT(fx, "a.b/domains", "ab.example\n");
	mkcat(fx, "empty");
	/* Ignored: dot-folders, top-level files, other files in a category. */
	PUT(fx, ".git/domains", "bad name\n");
	PUT(fx, "README", "not a category\n");
	PUT(fx, "beta/domains.diff", "+exa mple\n");
	PUT(fx, "beta/usage", "\0\0\0");
	l = load_ok(fx);
	assert_int_equal(l->ncats, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(l->cats[i].name, want[i]);
	for (size_t i = 0; i < 5; i++)
		assert_ptr_equal(filter_lists_find(l, want[i]), &l->cats[i]);
	assert_null(filter_lists_find(l, "alpha"));
	assert_null(filter_lists_find(l, "gamma"));
	assert_null(filter_lists_find(l, ".git"));
	assert_null(filter_lists_find(l, "README"));
	assert_null(filter_lists_find(NULL, "beta"));
	assert_int_equal(filter_lists_find(l, "beta")->ndomains, 1);
	assert_null(filter_lists_find(l, "empty")->domains);
	assert_int_equal(filter_lists_find(l, "empty")->ndomains, 0);
	assert_int_equal(filter_lists_find(l, "Alpha")->nurls, 1);
	filter_lists_free(l);

	/* A trailing slash on the folder gives the same result. */
	strcat(fx->root, "/");
	l = load_ok(fx);
	assert_int_equal(l->ncats, 5);
	filter_lists_free(l);
	fx->root[strlen(fx->root) - 1] = '\0';
}

/* ---- errors --------------------------------------------------------- */

static void
errors_domains(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char *text;
		size_t len;
		const char *msg;
	} cases[] = {
#define C(lit, msg)	{ lit, sizeof(lit) - 1, msg }
		C("ok.com\n# c\n\nexa mple.com\n",
		    "R/a/domains:4: invalid domain \"exa mple.com\": space"),
		C("\xef\xbb\xbfok.com\r\nexample.com/path\r\n",
		    "R/a/domains:2: invalid domain \"example.com/path\": '/' "
		    "not allowed (paths belong in the urls file)"),
		C("example.com:8080\n",
		    "R/a/domains:1: invalid domain \"example.com:8080\": ':' "
		    "not allowed (no ports or IPv6 addresses)"),
		C("user@example.com\n",
		    "R/a/domains:1: invalid domain \"user@example.com\": '@' "
		    "not allowed"),
		C("a\tb.com\n",
		    "R/a/domains:1: invalid domain \"a\\x09b.com\": tab"),
		C("ex*ample.com\n",
		    "R/a/domains:1: invalid domain \"ex*ample.com\": '*' "
		    "not allowed"),
		C("quo\"te.com\n",
		    "R/a/domains:1: invalid domain \"quo\\\"te.com\": '\"' "
		    "not allowed"),
		C("a..b.com\n",
		    "R/a/domains:1: invalid domain \"a..b.com\": invalid host"),
		C("ok.com\nok2.com\nok3.com\nbin\0ary\n",
		    "R/a/domains:4: NUL byte (binary file?)"),
		C("ok.com\n\n\n\n\xff\xfe.com\n",
		    "R/a/domains:5: invalid UTF-8"),
		C("caf\xc3.com\n", "R/a/domains:1: invalid UTF-8"),
		C("\xc0\xaf.com\n", "R/a/domains:1: invalid UTF-8"),
		C("\xed\xa0\x80.com\n", "R/a/domains:1: invalid UTF-8"),
		C("ok.com\r\nx\ry.com\r\n",
		    "R/a/domains:2: invalid domain \"x\\x0dy.com\": control "
		    "character 0x0d"),
		C(".\n", "R/a/domains:1: invalid domain \".\": empty name"),
#undef C
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got;

		put(fx, "a/domains", cases[i].text, cases[i].len);
		got = load_fail(fx);
		if (strcmp(got, cases[i].msg) != 0)
			print_error("case %zu: got '%s'\n", i, got);
		assert_string_equal(got, cases[i].msg);
	}
}

static void
errors_overlong(void **state)
{
	struct fx *fx = *state;
	size_t n = 3 * 7 + FILTER_LISTS_LINE_MAX + 2;
	static char buf[3 * 7 + FILTER_LISTS_LINE_MAX + 2];

	memcpy(buf, "ok.com\nok.org\nok.net\n", 21);
	memset(buf + 21, 'a', FILTER_LISTS_LINE_MAX + 1);
	buf[n - 1] = '\n';
	put(fx, "a/domains", buf, n);
	assert_string_equal(load_fail(fx),
	    "R/a/domains:4: line longer than 4096 bytes");
	/* Exactly 4096 bytes (CRLF not counted) is a line, not an error. */
	memcpy(buf, "# ", 2);
	memset(buf + 2, 'a', FILTER_LISTS_LINE_MAX - 2);
	memcpy(buf + FILTER_LISTS_LINE_MAX, "\r\n", 2);
	put(fx, "a/domains", buf, FILTER_LISTS_LINE_MAX + 2);
	filter_lists_free(load_ok(fx));
}

static void
errors_urls_and_exprs(void **state)
{
	struct fx *fx = *state;

	PUT(fx, "a/urls", "ok.com/x\nftp://files.example/x\n");
	assert_string_equal(load_fail(fx), "R/a/urls:2: invalid URL "
	    "\"ftp://files.example/x\": unsupported scheme (only http:// "
	    "and https://)");
	PUT(fx, "a/urls", "ok.com:99999/x\n");
	assert_string_equal(load_fail(fx),
	    "R/a/urls:1: invalid URL \"ok.com:99999/x\": invalid port");
	PUT(fx, "a/urls", "u:p@ok.com/x\n");
	assert_string_equal(load_fail(fx), "R/a/urls:1: invalid URL "
	    "\"u:p@ok.com/x\": '@' not allowed (no user names)");
	PUT(fx, "a/urls", "ok.com/a b\n");
	assert_string_equal(load_fail(fx),
	    "R/a/urls:1: invalid URL \"ok.com/a b\": space");
	PUT(fx, "a/urls", "/just/a/path\n");
	assert_string_equal(load_fail(fx),
	    "R/a/urls:1: invalid URL \"/just/a/path\": no host");
	PUT(fx, "a/urls", "ok.com\n");
	PUT(fx, "a/expressions", "fine\n\xef\xbb\xbf\n");
	/* A BOM later in a file is plain (valid) UTF-8 text. */
	filter_lists_free(load_ok(fx));
	PUT(fx, "a/expressions", "fine\nbad\x80\n");
	assert_string_equal(load_fail(fx),
	    "R/a/expressions:2: invalid UTF-8");
}

static void
errors_folders(void **state)
{
	struct fx *fx = *state;
	char path[256], msg[512];

	assert_string_equal(load_fail(fx), "R: no category folders");
	PUT(fx, "README", "only a file\n");
	assert_string_equal(load_fail(fx), "R: no category folders");
	PUT(fx, "good/domains", "ok.com\n");
	mkcat(fx, "bad name");
	assert_string_equal(load_fail(fx), "R/bad name: invalid category "
	    "name (allowed: A-Z a-z 0-9 _ . -)");
	snprintf(path, sizeof(path), "%s/bad name", fx->root);
	assert_int_equal(rmdir(path), 0);
	/* A "domains" that is not a file (a folder here). */
	mkcat(fx, "odd");
	mkcat(fx, "odd/domains");
	assert_string_equal(load_fail(fx), "R/odd/domains: not a regular "
	    "file");
	snprintf(path, sizeof(path), "%s/odd/domains", fx->root);
	assert_int_equal(rmdir(path), 0);
	filter_lists_free(load_ok(fx));

	snprintf(path, sizeof(path), "%s/missing", fx->root);
	assert_null(filter_lists_load(path, fx->err, sizeof(fx->err)));
	snprintf(msg, sizeof(msg), "%s: cannot open: No such file or "
	    "directory", path);
	assert_string_equal(fx->err, msg);
	/* A NULL error buffer is allowed. */
	assert_null(filter_lists_load(path, NULL, 0));
}

/*
 * Loads fx->root as an unprivileged user: root reads anything, so a
 * permission test run as root drops to nobody in a child process.
 */
static const char *
load_fail_unprivileged(struct fx *fx)
{
	static char msg[600];
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	if (geteuid() != 0)
		return load_fail(fx);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[512] = "";
		struct filter_lists *l;

		close(fds[0]);
		if (setgid(65534) == -1 || setuid(65534) == -1)
			_exit(2);
		l = filter_lists_load(fx->root, err, sizeof(err));
		if (l != NULL)
			_exit(3);
		if (write(fds[1], err, strlen(err)) < 0)
			_exit(4);
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], fx->err, sizeof(fx->err) - 1);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(n > 0);
	fx->err[n] = '\0';
	assert_memory_equal(fx->err, fx->root, strlen(fx->root));
	snprintf(msg, sizeof(msg), "R%s", fx->err + strlen(fx->root));
	return msg;
}

static void
errors_unreadable(void **state)
{
	struct fx *fx = *state;
	char path[256];

	/* The fixture folder must be traversable by the dropped user. */
	assert_int_equal(chmod(fx->root, 0755), 0);
	PUT(fx, "a/domains", "ok.com\n");
	PUT(fx, "b/urls", "ok.com/x\n");
	snprintf(path, sizeof(path), "%s/b/urls", fx->root);
	assert_int_equal(chmod(path, 0), 0);
	assert_string_equal(load_fail_unprivileged(fx),
	    "R/b/urls: cannot open: Permission denied");
	assert_int_equal(chmod(path, 0644), 0);
	snprintf(path, sizeof(path), "%s/a", fx->root);
	assert_int_equal(chmod(path, 0), 0);
	assert_string_equal(load_fail_unprivileged(fx),
	    "R/a: cannot open: Permission denied");
	assert_int_equal(chmod(path, 0755), 0);
}

/* ---- the issue 4 benchmark ------------------------------------------ */

#define BENCH_DOMAINS	1000000
#define BENCH_URLS	200000
#define BENCH_CATS	5
#define BENCH_LOOKUPS	100000

static uint64_t
rng(uint64_t *s)
{
	/* xorshift64*: deterministic, fast, good enough for names. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* A label of 4..13 letters/digits into p; returns its length. */
static size_t
rnd_label(uint64_t *s, char *p)
{
	static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	uint64_t r = rng(s);
	size_t n = 4 + r % 10;

	r = rng(s);
	for (size_t i = 0; i < n; i++) {
		if (i % 10 == 9)
			r = rng(s);
		/* Mostly letters, like real names. */
		p[i] = al[(r & 63) % (i == 0 ? 26 : 36)];
		r >>= 6;
	}
	return n;
}

static size_t
rnd_host(uint64_t *s, char *p)
{
	static const char *const tld[] = { "com", "net", "org", "de", "fr",
	    "info", "ru", "co.uk", "io", "nl" };
	size_t n = rnd_label(s, p);
	const char *t;

	if (rng(s) % 3 == 0) {
		p[n++] = '.';
		n += rnd_label(s, p + n);
	}
	t = tld[rng(s) % 10];
	p[n++] = '.';
	memcpy(p + n, t, strlen(t));
	return n + strlen(t);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
bench_load(void **state)
{
	struct fx *fx = *state;
	char (*urls)[160] = malloc(BENCH_LOOKUPS * sizeof(*urls));
	uint64_t *ns = malloc(BENCH_LOOKUPS * sizeof(*ns));
	size_t cap = 64 << 20, n, entries = 0, hits = 0, planted = 0;
	char *buf = malloc(cap), host[128];
	uint64_t s = 0x5eed5eedULL;
	struct filter_lists *l;
	double t0, t1, tn = 0;

	assert_non_null(urls);
	assert_non_null(ns);
	assert_non_null(buf);
	/* Every tenth request names a listed domain or URL. */
	for (int c = 0; c < BENCH_CATS; c++) {
		char rel[32];

		n = 0;
		for (int i = 0; i < BENCH_DOMAINS / BENCH_CATS; i++) {
			size_t k = n;

			if (i % 8 == 0)
				buf[n++] = '.';
			n += rnd_host(&s, buf + n);
			buf[n++] = '\n';
			if (i % 200 == 0) {
				/* A subdomain of it: hits on a suffix. */
				snprintf(urls[planted++], 160,
				    "www.%.*s/index.html",
				    (int)(n - k - 1 - (buf[k] == '.')),
				    buf + k + (buf[k] == '.'));
			}
		}
		snprintf(rel, sizeof(rel), "cat%d/domains", c);
		put(fx, rel, buf, n);
		n = 0;
		for (int i = 0; i < BENCH_URLS / BENCH_CATS; i++) {
			size_t k = n, h;

			h = rnd_host(&s, buf + n);
			n += h;
			for (int j = 0; j < 1 + (int)(rng(&s) % 3); j++) {
				buf[n++] = '/';
				n += rnd_label(&s, buf + n);
			}
			buf[n++] = '\n';
			if (i % 40 == 0) {
				snprintf(urls[planted++], 160, "%.*s/page?id=1",
				    (int)(n - k - 1), buf + k);
			}
		}
		snprintf(rel, sizeof(rel), "cat%d/urls", c);
		put(fx, rel, buf, n);
	}
	free(buf);
	/* The rest: hosts and paths drawn afresh (misses, barring luck). */
	for (size_t i = planted; i < BENCH_LOOKUPS; i++) {
		n = rnd_host(&s, host);
		host[n] = '\0';
		snprintf(urls[i], 160, "%s/%s/page.html?q=%zu", host,
		    host + n / 2, i);
	}

	t0 = now_s();
	l = load_ok(fx);
	t1 = now_s();
	assert_int_equal(l->ncats, BENCH_CATS);
	for (size_t c = 0; c < l->ncats; c++)
		entries += l->cats[c].ndomains + l->cats[c].nurls;
	assert_true(entries > (BENCH_DOMAINS + BENCH_URLS) * 99 / 100);

	for (size_t i = 0; i < BENCH_LOOKUPS; i++) {
		const char *u = urls[i];
		size_t ul = strlen(u), hl = strcspn(u, ":/");
		bool hit = false;
		double a = now_s();

		for (size_t c = 0; c < l->ncats; c++) {
			const struct filter_category *cat = &l->cats[c];

			/* No early exit: every category is consulted. */
			if (filter_domains_match(cat->domains, u, hl) != NULL)
				hit = true;
			if (filter_urls_match(cat->urls, u, ul) != NULL)
				hit = true;
		}
		ns[i] = (uint64_t)((now_s() - a) * 1e9);
		hits += hit;
	}
	/* Each planted URL must hit: the lookups are not just fast. */
	assert_true(hits >= planted);
	qsort(ns, BENCH_LOOKUPS, sizeof(*ns), cmp_u64);
	/* The cost of url_norm on the request, for the whole picture. */
	for (size_t i = 0; i < 10000; i++) {
		char out[512];
		const char *u = urls[i];
		size_t hl = strcspn(u, "/");
		double a = now_s();

		assert_true(url_norm(u, hl, 80, u + hl, strlen(u + hl), out,
		    sizeof(out)) > 0);
		tn += now_s() - a;
	}
	printf("# load: %zu entries (%zu planted hits of %d URLs, %zu hit) "
	    "in %.3f s\n", entries, planted, BENCH_LOOKUPS, hits, t1 - t0);
	printf("# memory: %zu bytes, %.1f bytes/entry\n", l->bytes,
	    (double)l->bytes / (double)entries);
	printf("# lookup (all %d categories, domains + urls): median %llu ns, "
	    "p99 %llu ns; url_norm mean %.0f ns\n", BENCH_CATS,
	    (unsigned long long)ns[BENCH_LOOKUPS / 2],
	    (unsigned long long)ns[BENCH_LOOKUPS * 99 / 100], tn / 10000 * 1e9);
	assert_true(t1 - t0 < 20.0);
	assert_true(l->bytes / entries < 200);
	assert_true(ns[BENCH_LOOKUPS / 2] < 20000);
	filter_lists_free(l);
	free(urls);
	free(ns);
}

int
main(void)
{
#define T(f)	cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(domains_format),
		T(domains_idn_and_ip),
		T(urls_boundaries),
		T(urls_forms),
		T(urls_normalised),
		T(urls_ports),
		cmocka_unit_test(urls_set_api),
		T(expressions_raw),
		T(folders_order_and_find),
		T(errors_domains),
		T(errors_overlong),
		T(errors_urls_and_exprs),
		T(errors_folders),
		T(errors_unreadable),
		T(bench_load),
	};
#undef T

	return cmocka_run_group_tests_name("filter_lists", tests, NULL, NULL);
}
