/*
 * test_filter.c - unit tests of the compiled URL filter (conf/filter.c).
 *
 * Each case writes a config (and category folders) into a fresh temp
 * folder, loads it with conf_load, compiles it and asks filter_decide()
 * about requests.  Every ACL type is covered, the rule order, the deny
 * when no rule matches, the fail-closed regex limit, the compile errors
 * with their file:line, and the evasion matrix: many spellings of a
 * blocked URL, each reduced by url_norm exactly as a worker does, must
 * all be denied.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/filter.h"
#include "worker/http_url.h"
#include "lib/url_norm.h"

static char tmpdir[256];

static void
put(const char *rel, const char *text)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", tmpdir, rel);
	/* make the parent folders */
	for (char *s = p + strlen(tmpdir) + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static const char *conf_head =
    "listen = ( { address = \"127.0.0.1\"; port = 3128; } );\n"
    "clients = [ \"127.0.0.0/8\" ];\n";

/* Load a config whose filter section is body; NULL + err on failure. */
static struct sluice_conf *
load(const char *body, struct filter **f, char *err, size_t errlen)
{
	char p[512], *text;
	struct sluice_conf *c;

	if (asprintf(&text, "%sfilter = {\n%s\n};\n", conf_head, body) < 0)
		fail();
	put("sluice.conf", text);
	free(text);
	snprintf(p, sizeof(p), "%s/sluice.conf", tmpdir);
	c = conf_load(p, err, errlen);
	if (!c)
		return NULL;
	if (filter_compile(c, f, err, errlen) < 0) {
		conf_free(c);
		return NULL;
	}
	return c;
}

static struct sluice_conf *
load_ok(const char *body, struct filter **f)
{
	char err[1024];
	struct sluice_conf *c = load(body, f, err, sizeof(err));

	if (!c)
		fail_msg("config did not compile: %s", err);
	return c;
}

/* Expect an error containing each of the NULL-terminated fragments. */
static void
load_err(const char *body, ...)
{
	char err[1024];
	struct filter *f = NULL;
	struct sluice_conf *c = load(body, &f, err, sizeof(err));
	va_list ap;
	const char *frag;

	if (c) {
		filter_free(f);
		conf_free(c);
		fail_msg("config compiled but should not have");
	}
	va_start(ap, body);
	while ((frag = va_arg(ap, const char *)) != NULL)
		if (!strstr(err, frag))
			fail_msg("error \"%s\" lacks \"%s\"", err, frag);
	va_end(ap);
}

struct rq {
	const char *url;		/* "http://..." or "host:port" for CONNECT */
	const char *method;		/* default GET */
	const char *client;		/* default 10.1.2.3 */
	const char *ua;
	int wday, minute;		/* default Wednesday 10:00 */
};

/* Canonicalise like a worker and decide. */
static void
decide(struct filter *f, const struct rq *in, struct filter_verdict *v)
{
	static char canon[70000], host[300];
	struct http_url u;
	struct filter_req q;
	const char *m = in->method ? in->method : "GET";
	bool tunnel = strcmp(m, "CONNECT") == 0;
	int n, rc;
	uint8_t addr[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3 };

	rc = tunnel ? http_url_parse_authority(in->url, strlen(in->url), &u) :
	    http_url_parse_absolute(in->url, strlen(in->url), &u);
	if (rc != 0)
		fail_msg("%s: %s", in->url, http_url_strerror(rc));
	n = url_norm_host(u.host, strlen(u.host), host, sizeof(host));
	if (n < 0)
		fail_msg("%s: host: %s", in->url, url_norm_strerror(n));
	if (tunnel)
		n = snprintf(canon, sizeof(canon), "%s:%d", host, u.port);
	else
		n = url_norm(u.host, strlen(u.host), u.port, u.path, u.path_len,
		    canon, sizeof(canon));
	if (n < 0)
		fail_msg("%s: %s", in->url, url_norm_strerror(n));
	if (in->client) {
		unsigned a, b, c2, d;
		assert_int_equal(sscanf(in->client, "%u.%u.%u.%u", &a, &b, &c2, &d), 4);
		addr[12] = (uint8_t)a; addr[13] = (uint8_t)b;
		addr[14] = (uint8_t)c2; addr[15] = (uint8_t)d;
	}
	memset(&q, 0, sizeof(q));
	q.url = canon;
	q.url_len = (size_t)n;
	q.host = host;
	q.host_len = strlen(host);
	q.port = u.port;
	q.connect = tunnel;
	q.method = m;
	q.method_len = strlen(m);
	q.client = addr;
	q.user_agent = in->ua;
	q.ua_len = in->ua ? strlen(in->ua) : 0;
	q.wday = in->wday ? in->wday : 3;
	q.minute = in->minute ? in->minute : 600;
	filter_decide(f, &q, v);
}

static bool
allowed(struct filter *f, const char *url)
{
	struct filter_verdict v;
	struct rq r = { .url = url };

	decide(f, &r, &v);
	return v.allow;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sluice-test-filter-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[600];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* ---- cases ---------------------------------------------------------------- */

static void
test_no_rules_no_filter(void **state)
{
	struct filter *f = (void *)1;
	struct sluice_conf *c;

	(void)state;
	c = load_ok("acls = ( { name = \"x\"; port = [ 80 ]; } );", &f);
	assert_null(f);
	conf_free(c);
}

static void
test_first_match_and_default_deny(void **state)
{
	struct filter *f;
	struct filter_verdict v;
	struct rq r = { .url = "http://a.example/" };
	struct sluice_conf *c;

	(void)state;
	c = load_ok(
	    "acls = ( { name = \"a\"; dst_domain = [ \".a.example\" ]; },\n"
	    "         { name = \"b\"; dst_domain = [ \".b.example\" ]; } );\n"
	    "rules = ( { name = \"deny-a\"; action = \"deny\"; when = [ \"a\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"a\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"b\" ]; } );", &f);
	decide(f, &r, &v);
	assert_false(v.allow);
	assert_int_equal(v.reason, FILTER_BY_RULE);
	assert_string_equal(v.rule_name, "deny-a");
	assert_int_equal(v.rule, 0);
	assert_int_equal(v.rule_line, 6);
	assert_string_equal(v.what, "dst_domain a.example");
	r.url = "http://www.b.example/x";
	decide(f, &r, &v);
	assert_true(v.allow);
	assert_string_equal(v.rule_name, "rule#3");
	r.url = "http://c.example/";
	decide(f, &r, &v);
	assert_false(v.allow);
	assert_int_equal(v.reason, FILTER_BY_DEFAULT);
	assert_int_equal(v.rule, -1);
	filter_free(f);
	conf_free(c);
}

static void
test_acl_src(void **state)
{
	struct filter *f;
	struct filter_verdict v;
	struct rq r = { .url = "http://x.example/", .client = "10.1.9.9" };
	struct sluice_conf *c;

	(void)state;
	c = load_ok("acls = ( { name = \"students\"; src = [ \"10.1.0.0/16\", \"192.168.5.0/24\" ]; } );\n"
	    "rules = ( { action = \"deny\"; when = [ \"students\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	decide(f, &r, &v);
	assert_false(v.allow);
	r.client = "192.168.5.200";
	decide(f, &r, &v);
	assert_false(v.allow);
	r.client = "10.2.0.1";
	decide(f, &r, &v);
	assert_true(v.allow);
	filter_free(f);
	conf_free(c);
}

static void
test_acl_dst_domain_exact_and_suffix(void **state)
{
	struct filter *f;
	struct sluice_conf *c;

	(void)state;
	c = load_ok("acls = ( { name = \"d\"; dst_domain = [ \"exact.example\", "
	    "\".suffix.example\", \"B\xc3\xbc" "cher.example\" ]; } );\n"
	    "rules = ( { action = \"deny\"; when = [ \"d\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	assert_false(allowed(f, "http://exact.example/"));
	assert_true(allowed(f, "http://www.exact.example/"));
	assert_false(allowed(f, "http://suffix.example/"));
	assert_false(allowed(f, "http://a.b.suffix.example/"));
	assert_true(allowed(f, "http://notsuffix.example/"));
	assert_false(allowed(f, "http://xn--bcher-kva.example/"));
	assert_false(allowed(f, "http://EXACT.example./"));
	filter_free(f);
	conf_free(c);
}

static void
test_acl_url_regex(void **state)
{
	struct filter *f;
	struct filter_verdict v;
	struct rq r = { .url = "http://x.example/Casino/1" };
	struct sluice_conf *c;

	(void)state;
	c = load_ok("acls = ( { name = \"cs\"; url_regex = [ \"/casino/\" ]; },\n"
	    "         { name = \"ci\"; url_regex = [ \"(?i)^http://poker\\\\.\" ]; } );\n"
	    "rules = ( { action = \"deny\"; when = [ \"cs\" ]; },\n"
	    "          { action = \"deny\"; when = [ \"ci\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	/* case-sensitive without (?i) */
	assert_true(allowed(f, "http://x.example/Casino/1"));
	assert_false(allowed(f, "http://x.example/casino/1"));
	assert_false(allowed(f, "http://POKER.example/"));
	decide(f, &r, &v);
	r.url = "http://poker.example/";
	decide(f, &r, &v);
	assert_string_equal(v.what, "url_regex (?i)^http://poker\\.");
	/* the pattern sees the canonical URL: %63 is 'c' */
	assert_false(allowed(f, "http://x.example/%63asino/"));
	assert_false(allowed(f, "http://x.example/a/../casino/"));
	filter_free(f);
	conf_free(c);
}

static void
test_acl_urlpath_regex(void **state)
{
	struct filter *f;
	struct filter_verdict v;
	struct rq r = { .url = "x.example:443", .method = "CONNECT" };
	struct sluice_conf *c;

	(void)state;
	c = load_ok("acls = ( { name = \"exe\"; urlpath_regex = [ \"\\\\.exe($|\\\\?)\" ]; } );\n"
	    "rules = ( { action = \"deny\"; when = [ \"exe\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	assert_false(allowed(f, "http://x.example/setup.exe"));
	assert_false(allowed(f, "http://x.example/setup.exe?x=1"));
	assert_true(allowed(f, "http://setup.exe.example/"));
	assert_true(allowed(f, "http://x.example/setup.exe.txt"));
	decide(f, &r, &v);
	assert_true(v.allow);		/* a tunnel has no path */
	filter_free(f);
	conf_free(c);
}

static void
test_acl_port_method(void **state)
{
	struct filter *f;
	struct filter_verdict v;
	struct rq r = { .url = "x.example:443", .method = "CONNECT" };
	struct sluice_conf *c;

	(void)state;
	c = load_ok("acls = ( { name = \"ssl\"; port = [ 443, 8443 ]; method = [ \"CONNECT\" ]; },\n"
	    "         { name = \"post\"; method = [ \"POST\", \"PUT\" ]; } );\n"
	    "rules = ( { action = \"allow\"; when = [ \"ssl\" ]; },\n"
	    "          { action = \"deny\"; when = [ \"post\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	decide(f, &r, &v);
	assert_true(v.allow);
	assert_int_equal(v.rule, 0);
	r.url = "x.example:22";
	decide(f, &r, &v);
	assert_int_equal(v.rule, 2);
	r.url = "http://x.example/form";
	r.method = "POST";
	decide(f, &r, &v);
	assert_false(v.allow);
	r.method = "post";		/* methods are case-sensitive */
	decide(f, &r, &v);
	assert_true(v.allow);
	filter_free(f);
	conf_free(c);
}

static void
test_acl_time(void **state)
{
	struct filter *f;
	struct filter_verdict v;
	struct rq r = { .url = "http://game.example/" };
	struct sluice_conf *c;

	(void)state;
	c = load_ok("acls = ( { name = \"school\"; time = \"Mon-Fri 08:00-16:00; Sat 09:00-12:00\"; },\n"
	    "         { name = \"night\"; time = \"Sun-Sat 22:00-06:00\"; } );\n"
	    "rules = ( { action = \"deny\"; when = [ \"school\" ]; },\n"
	    "          { action = \"deny\"; when = [ \"night\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	r.wday = 1; r.minute = 8 * 60;		/* Mon 08:00 */
	decide(f, &r, &v);
	assert_int_equal(v.rule, 0);
	r.minute = 16 * 60;			/* Mon 16:00: the window has ended */
	decide(f, &r, &v);
	assert_true(v.allow);
	r.wday = 6; r.minute = 11 * 60;		/* Sat 11:00 */
	decide(f, &r, &v);
	assert_int_equal(v.rule, 0);
	r.wday = 6; r.minute = 13 * 60;
	decide(f, &r, &v);
	assert_true(v.allow);
	r.wday = 2; r.minute = 23 * 60 + 30;	/* Tue 23:30 */
	decide(f, &r, &v);
	assert_int_equal(v.rule, 1);
	r.wday = 3; r.minute = 5 * 60 + 59;	/* Wed 05:59, from Tue's window */
	decide(f, &r, &v);
	assert_int_equal(v.rule, 1);
	filter_free(f);
	conf_free(c);
}

static void
test_acl_user_agent_and_and(void **state)
{
	struct filter *f;
	struct filter_verdict v;
	struct rq r = { .url = "http://x.example/", .ua = "Mozilla/5.0 SteamClient" };
	struct sluice_conf *c;

	(void)state;
	/* all fields of one ACL must hold */
	c = load_ok("acls = ( { name = \"steam\"; user_agent = [ \"Steam\" ]; src = [ \"10.1.0.0/16\" ]; } );\n"
	    "rules = ( { action = \"deny\"; when = [ \"steam\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	decide(f, &r, &v);
	assert_false(v.allow);
	r.client = "10.9.0.1";
	decide(f, &r, &v);
	assert_true(v.allow);
	r.client = NULL;
	r.ua = NULL;			/* no User-Agent: no match */
	decide(f, &r, &v);
	assert_true(v.allow);
	filter_free(f);
	conf_free(c);
}

static void
test_category(void **state)
{
	struct filter *f;
	struct filter_verdict v;
	struct rq r = { .url = "http://www.adult.example/" };
	struct sluice_conf *c;

	(void)state;
	put("lists/adult/domains", "\xef\xbb\xbf# comment\r\nadult.example\r\n\r\n.other.example\n");
	put("lists/adult/urls", "good.example/bad/\n");
	put("lists/adult/expressions", "(^|[-.])sex(cam|chat)\n");
	put("lists/news/domains", "news.example\n");
	c = load_ok("lists = \"lists\";\n"
	    "acls = ( { name = \"students\"; src = [ \"10.1.0.0/16\" ]; } );\n"
	    "rules = ( { name = \"no-adult\"; action = \"deny\"; when = [ \"students\", \"category:adult\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	assert_true(filter_needs_name(f));
	decide(f, &r, &v);
	assert_false(v.allow);
	assert_string_equal(v.category, "adult");
	assert_string_equal(v.rule_name, "no-adult");
	assert_string_equal(v.what, "domain adult.example");
	r.url = "http://good.example/bad/page.html";
	decide(f, &r, &v);
	assert_false(v.allow);
	assert_string_equal(v.what, "url good.example/bad/");
	assert_true(allowed(f, "http://good.example/badger"));
	r.url = "http://x.example/the-sexcam-site";
	decide(f, &r, &v);
	assert_false(v.allow);
	assert_string_equal(v.what, "expression (^|[-.])sex(cam|chat)");
	assert_false(allowed(f, "http://x.example/a-SexChat"));	/* case-insensitive */
	assert_true(allowed(f, "http://news.example/"));
	/* another client is not a student */
	r.url = "http://adult.example/";
	r.client = "10.200.0.1";
	decide(f, &r, &v);
	assert_true(v.allow);
	/* CONNECT is decided on the host */
	r.client = NULL;
	r.url = "adult.example:443";
	r.method = "CONNECT";
	decide(f, &r, &v);
	assert_false(v.allow);
	filter_free(f);
	conf_free(c);
}

/* Every spelling of a blocked URL, as a worker reduces it, is blocked. */
static void
test_evasion_matrix(void **state)
{
	static const char *const blocked[] = {
		"http://blocked.example/",
		"http://BLOCKED.EXAMPLE/",
		"http://BlOcKeD.eXaMpLe/",
		"http://blocked.example./",
		"http://www.blocked.example/",
		"http://blocked.example:80/",
		"http://10.9.8.7/",			/* listed as an IP */
		"http://168364039/",			/* decimal */
		"http://0x0a.0x09.0x08.0x07/",		/* hex */
		"http://012.011.010.07/",		/* octal */
		"http://10.9.2055/",			/* short dotted */
		"http://0xa090807/",
		"http://x.example/%62ad/word",		/* %62 = b */
		"http://x.example/BAD/word",		/* regex is (?i) */
		"http://x.example/ok/../bad/word",
		"http://x.example/ok/%2e%2e/bad/word",
		"http://x.example//bad//word",
		"http://x.example/./bad/./word",
		"http://xn--bcher-kva.example/",
		"http://[::ffff:10.9.8.7]/",
	};
	struct filter *f;
	struct sluice_conf *c;

	(void)state;
	put("lists/bad/domains", "blocked.example\n10.9.8.7\nxn--bcher-kva.example\n");
	put("lists/bad/expressions", "/bad/word\n");
	c = load_ok("lists = \"lists\";\n"
	    "rules = ( { action = \"deny\"; when = [ \"category:bad\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++)
		if (allowed(f, blocked[i]))
			fail_msg("evasion: %s was allowed", blocked[i]);
	assert_true(allowed(f, "http://unblocked.example/"));
	assert_true(allowed(f, "http://x.example/bad/wordy/x") == false);
	assert_true(allowed(f, "http://x.example/good/word"));
	filter_free(f);
	conf_free(c);
}

static void
test_regex_limit_fail_closed(void **state)
{
	struct filter *f;
	struct filter_verdict v;
	struct sluice_conf *c;
	struct rq r;
	char *url = malloc(70000);
	struct timespec t0, t1;

	(void)state;
	strcpy(url, "http://x.example/");
	memset(url + 17, 'a', 65536);
	strcpy(url + 17 + 65536, "!");
	r = (struct rq){ .url = url };
	c = load_ok("regex_match_limit = 10000;\n"
	    "acls = ( { name = \"evil\"; url_regex = [ \"(a+)+$\" ]; } );\n"
	    "rules = ( { action = \"allow\"; when = [ \"evil\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	decide(f, &r, &v);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("# (a+)+$ on a 64 KiB URL decided in %.2f ms\n", ms);
	assert_true(ms < 1000);
	assert_false(v.allow);
	assert_int_equal(v.reason, FILTER_BY_LIMIT);
	assert_string_equal(v.limit_pattern, "(a+)+$");
	assert_true(v.limit_first);
	decide(f, &r, &v);
	assert_false(v.limit_first);	/* logged once per pattern */
	filter_free(f);
	conf_free(c);

	/* "ignore": the pattern does not match, the next rule decides */
	c = load_ok("regex_match_limit = 10000; regex_limit_action = \"ignore\";\n"
	    "acls = ( { name = \"evil\"; url_regex = [ \"(a+)+$\" ]; } );\n"
	    "rules = ( { action = \"deny\"; when = [ \"evil\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	decide(f, &r, &v);
	assert_true(v.allow);
	assert_int_equal(v.rule, 1);
	filter_free(f);
	conf_free(c);
	free(url);
}

static void
test_compile_errors(void **state)
{
	(void)state;
	load_err("acls = ( { name = \"r\";\n url_regex = [ \"(unclosed\" ]; } );\n"
	    "rules = ( { action = \"allow\"; when = [ \"r\" ]; } );",
	    "sluice.conf:4: filter.acls.url_regex", "\"r\"", "offset", "(unclosed", NULL);
	load_err("acls = ( { name = \"t\"; time = \"Mon-Fri 08:00-25:00\"; } );\n"
	    "rules = ( { action = \"allow\"; when = [ \"t\" ]; } );",
	    "sluice.conf:4: filter.acls.time", NULL);
	load_err("acls = ( { name = \"m\"; method = [ \"get\" ]; } );\n"
	    "rules = ( { action = \"allow\"; when = [ \"m\" ]; } );",
	    "sluice.conf:4: filter.acls.method", "upper-case", NULL);
	load_err("acls = ( { name = \"d\"; dst_domain = [ \"bad domain\" ]; } );\n"
	    "rules = ( { action = \"allow\"; when = [ \"d\" ]; } );",
	    "sluice.conf:4: filter.acls.dst_domain", "bad domain", NULL);
	load_err("acls = ( { name = \"e\"; } );\n",
	    "sluice.conf:4: filter.acls", "no condition", NULL);
	put("lists/adult/domains", "adult.example\n");
	load_err("lists = \"lists\";\nrules = ( { action = \"deny\"; when = [ \"category:gambling\" ]; } );",
	    "sluice.conf:5: filter.rules.when", "gambling", NULL);
	put("lists/adult/expressions", "ok\n# fine\n[unclosed\n");
	load_err("lists = \"lists\";\nrules = ( { action = \"deny\"; when = [ \"category:adult\" ]; } );",
	    "lists/adult/expressions:3: invalid expression", "offset", NULL);
	put("lists/adult/expressions", "ok\n");
	put("lists/adult/domains", "adult.example\nbad domain.example\n");
	load_err("lists = \"lists\";\nrules = ( { action = \"deny\"; when = [ \"category:adult\" ]; } );",
	    "lists/adult/domains:2", NULL);
	put("lists/adult/domains", "adult.example\n");
	load_err("lists = \"missing-folder\";\nrules = ( { action = \"deny\"; when = [ \"category:adult\" ]; } );",
	    "missing-folder", NULL);
	load_err("block_page = \"nopage.html\";\nrules = ( { action = \"deny\"; when = [ \"all\" ]; } );",
	    "nopage.html", NULL);
}

static void
test_needs_name(void **state)
{
	struct filter *f;
	struct sluice_conf *c;

	(void)state;
	c = load_ok("acls = ( { name = \"s\"; src = [ \"10.0.0.0/8\" ]; } );\n"
	    "rules = ( { action = \"deny\"; when = [ \"s\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	assert_false(filter_needs_name(f));
	filter_free(f);
	conf_free(c);
	c = load_ok("acls = ( { name = \"d\"; dst_domain = [ \".x.example\" ]; } );\n"
	    "rules = ( { action = \"deny\"; when = [ \"d\" ]; },\n"
	    "          { action = \"allow\"; when = [ \"all\" ]; } );", &f);
	assert_true(filter_needs_name(f));
	filter_free(f);
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_rules_no_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_match_and_default_deny, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_src, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_dst_domain_exact_and_suffix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_url_regex, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_urlpath_regex, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_port_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_user_agent_and_and, setup, teardown),
		cmocka_unit_test_setup_teardown(test_category, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evasion_matrix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_regex_limit_fail_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compile_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_needs_name, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
