/*
 * test_cache_policy.c - unit tests for shm/cache_policy.c.
 *
 * Each exported function of cache_policy.h gets named cases: the RFC
 * 9111 rules, the hostile inputs of HOSTILE.md (#38 Range abuse, #50
 * broken dates and Vary, F20 clock jumps) and the arithmetic edges
 * (saturation at 2^31, UINT64 ranges).  Parsers are fed exact-size heap
 * copies so that ASan sees any read past the given length; table-driven
 * cases fail with the case name.
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

#include "shm/cache_policy.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
/* Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date */
#define T1994		784111777LL

/* An exact-size heap copy (no NUL): reading past len trips ASan. */
static char *
dup_exact(const char *s, size_t *len)
{
	char *p;

	*len = strlen(s);
	p = malloc(*len ? *len : 1);
	assert_non_null(p);
	memcpy(p, s, *len);
	return p;
}

static int64_t
date_of(const char *s)
{
	size_t n;
	char *p = dup_exact(s, &n);
	int64_t t = cache_http_date(p, n);

	free(p);
	return t;
}

static void
cc_of(struct cache_cc *cc, const char *s)
{
	size_t n;
	char *p = dup_exact(s, &n);

	memset(cc, 0, sizeof(*cc));
	cache_cc_parse(cc, p, n);
	free(p);
}

/* Fields from "Name: value" strings (kept as literals: the struct only
 * points into them). */
struct hdrs {
	struct cache_field f[2048];
	size_t n;
};

static void
hdrs_set(struct hdrs *h, const char *const *lines)
{
	const char *c;
	size_t i;

	h->n = 0;
	for (i = 0; lines != NULL && lines[i] != NULL; i++) {
		c = strchr(lines[i], ':');
		assert_non_null(c);
		h->f[h->n].name = lines[i];
		h->f[h->n].nlen = (size_t)(c - lines[i]);
		c++;
		while (*c == ' ')
			c++;
		h->f[h->n].value = c;
		h->f[h->n].vlen = strlen(c);
		h->n++;
	}
}

static void
req_of(struct cache_req *q, const char *const *lines)
{
	static struct hdrs h;

	hdrs_set(&h, lines);
	cache_req_parse(q, h.f, h.n);
}

static void
resp_of(struct cache_resp *r, int status, const char *const *lines)
{
	static struct hdrs h;

	hdrs_set(&h, lines);
	cache_resp_parse(r, status, h.f, h.n);
}

#define L(...)	((const char *const []){ __VA_ARGS__, NULL })

/* ---- Cache-Control ------------------------------------------------ */

static void
cc_flags(void **state)
{
	struct cache_cc cc;

	(void)state;
	cc_of(&cc, "no-store, no-cache, private, public, must-revalidate, "
	    "proxy-revalidate, only-if-cached");
	assert_int_equal(cc.flags, CC_NO_STORE | CC_NO_CACHE | CC_PRIVATE |
	    CC_PUBLIC | CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE |
	    CC_ONLY_IF_CACHED);
	cc_of(&cc, "");
	assert_int_equal(cc.flags, 0);
	cc_of(&cc, " , ,,");
	assert_int_equal(cc.flags, 0);
}

static void
cc_case_and_values(void **state)
{
	struct cache_cc cc;

	(void)state;
	cc_of(&cc, "MAX-AGE=60,S-MaxAge=30 ,Min-Fresh=5,max-stale=7,"
	    "stale-while-revalidate=11, STALE-IF-ERROR=12");
	assert_int_equal(cc.flags, CC_MAX_AGE | CC_S_MAXAGE | CC_MIN_FRESH |
	    CC_MAX_STALE | CC_SWR | CC_SIE);
	assert_int_equal(cc.max_age, 60);
	assert_int_equal(cc.s_maxage, 30);
	assert_int_equal(cc.min_fresh, 5);
	assert_int_equal(cc.max_stale, 7);
	assert_int_equal(cc.swr, 11);
	assert_int_equal(cc.sie, 12);
	/* the quoted form is accepted too (RFC 9111 5.2) */
	cc_of(&cc, "max-age=\"7\"");
	assert_int_equal(cc.flags, CC_MAX_AGE);
	assert_int_equal(cc.max_age, 7);
}

static void
cc_quoted_strings(void **state)
{
	struct cache_cc cc;

	(void)state;
	/* commas and escaped quotes inside arguments do not split */
	cc_of(&cc, "private=\"set-cookie, max-age=9\", "
	    "no-cache=\"a\\\", b\", max-age=5, x=\"y,z\"");
	assert_int_equal(cc.flags, CC_PRIVATE | CC_NO_CACHE | CC_MAX_AGE);
	assert_int_equal(cc.max_age, 5);
	/* unterminated: nothing after it is a directive; no-cache holds */
	cc_of(&cc, "no-cache=\"abc, max-age=5");
	assert_int_equal(cc.flags, CC_NO_CACHE);
	/* a backslash as the last byte must not read further */
	cc_of(&cc, "x=\"ab\\");
	assert_int_equal(cc.flags, 0);
	cc_of(&cc, "max-age=\"5");
	assert_int_equal(cc.flags, CC_INVALID);
}

static void
cc_malformed_numbers(void **state)
{
	static const char *const bad[] = {
		"max-age=abc", "max-age=", "max-age", "max-age=-1",
		"max-age=5x", "max-age=5 6", "max-age=1.5", "max-age=\"\"",
		"max-age = 5", "s-maxage=+3", "min-fresh", "stale-if-error=x",
		"stale-while-revalidate=", "max-stale=abc",
	};
	struct cache_cc cc;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		cc_of(&cc, bad[i]);
		if (!(cc.flags & CC_INVALID) ||
		    (cc.flags & (CC_MAX_AGE | CC_S_MAXAGE | CC_MIN_FRESH |
		    CC_SIE | CC_SWR | CC_MAX_STALE)))
			fail_msg("%s: flags %#x", bad[i], cc.flags);
	}
}

static void
cc_huge_numbers(void **state)
{
	struct cache_cc cc;

	(void)state;
	cc_of(&cc, "max-age=99999999999999999999999999999999");
	assert_int_equal(cc.flags, CC_MAX_AGE);
	assert_int_equal(cc.max_age, 2147483648LL);
	cc_of(&cc, "max-age=2147483647");
	assert_int_equal(cc.max_age, 2147483647LL);
	cc_of(&cc, "max-age=2147483649");
	assert_int_equal(cc.max_age, 2147483648LL);
	cc_of(&cc, "s-maxage=0000000000000000000000000010");
	assert_int_equal(cc.s_maxage, 10);
}

static void
cc_duplicates(void **state)
{
	struct cache_cc cc;

	(void)state;
	cc_of(&cc, "max-age=5, max-age=10");
	assert_int_equal(cc.flags, CC_MAX_AGE | CC_INVALID);
	assert_int_equal(cc.max_age, 5);	/* the one granting less */
	cc_of(&cc, "max-age=10, max-age=5");
	assert_int_equal(cc.max_age, 5);
	cc_of(&cc, "max-age=5, MAX-AGE=5");
	assert_int_equal(cc.flags, CC_MAX_AGE);
	/* across two fields, merged */
	memset(&cc, 0, sizeof(cc));
	cache_cc_parse(&cc, "min-fresh=3", 11);
	cache_cc_parse(&cc, "min-fresh=9, public", 19);
	assert_int_equal(cc.flags, CC_MIN_FRESH | CC_PUBLIC | CC_INVALID);
	assert_int_equal(cc.min_fresh, 9);	/* min-fresh: more is safer */
	cc_of(&cc, "max-stale, max-stale=4");
	assert_int_equal(cc.flags, CC_MAX_STALE | CC_INVALID);
	assert_int_equal(cc.max_stale, 4);
}

static void
cc_max_stale_and_unknown(void **state)
{
	struct cache_cc cc;

	(void)state;
	cc_of(&cc, "max-stale");
	assert_int_equal(cc.flags, CC_MAX_STALE);
	assert_int_equal(cc.max_stale, -1);
	cc_of(&cc, "foo, bar=\"x,y\", immutable, ext=tok, max-stale=30");
	assert_int_equal(cc.flags, CC_MAX_STALE);
	assert_int_equal(cc.max_stale, 30);
	/* junk after a directive: restrictive flags still count,
	 * permissive ones do not */
	cc_of(&cc, "no-store junk, public junk, must-revalidate\"x\"");
	assert_int_equal(cc.flags, CC_NO_STORE | CC_MUST_REVALIDATE);
	cc_of(&cc, "=5, \"q\", max-age=3");
	assert_int_equal(cc.flags, CC_MAX_AGE);
	assert_int_equal(cc.max_age, 3);
}

/* ---- HTTP-date ---------------------------------------------------- */

static void
date_three_formats(void **state)
{
	(void)state;
	assert_int_equal(date_of("Sun, 06 Nov 1994 08:49:37 GMT"), T1994);
	assert_int_equal(date_of("Sunday, 06-Nov-94 08:49:37 GMT"), T1994);
	assert_int_equal(date_of("Sun Nov  6 08:49:37 1994"), T1994);
	assert_int_equal(date_of("Sun Nov 06 08:49:37 1994"), T1994);
	assert_int_equal(date_of("Wednesday, 09-Nov-94 08:49:37 GMT"),
	    T1994 + 3 * 86400);
}

static void
date_calendar(void **state)
{
	(void)state;
	assert_int_equal(date_of("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
	assert_int_equal(date_of("Tue, 29 Feb 2000 00:00:00 GMT"),
	    951782400LL);
	assert_int_equal(date_of("Fri, 31 Dec 9999 23:59:59 GMT"),
	    253402300799LL);
	assert_int_equal(date_of("Sat, 01 Jan 2000 00:00:60 GMT"),
	    946684860LL);	/* leap second: the next minute */
	/* valid but before the epoch: "long ago", not invalid */
	assert_int_equal(date_of("Mon, 01 Jan 1900 00:00:00 GMT"), 0);
	/* RFC 850 century: < 70 is 20yy */
	assert_int_equal(date_of("Monday, 01-Jan-69 00:00:00 GMT"),
	    3124224000LL);
	assert_int_equal(date_of("Thursday, 01-Jan-70 00:00:00 GMT"), 0);
	assert_int_equal(date_of("Saturday, 01-Jan-00 00:00:00 GMT"),
	    946684800LL);
}

static void
date_malformed(void **state)
{
	static const char *const bad[] = {
		"Thu, 01 Ja", "-1", "", "0", "GMT",
		"Thu, 01 Jan 10000 00:00:00 GMT",
		"Thu, 32 Jan 1970 00:00:00 GMT",
		"Thu, 00 Jan 1970 00:00:00 GMT",
		"Thu, 29 Feb 1900 00:00:00 GMT",
		"Thu, 30 Feb 2000 00:00:00 GMT",
		"Thu, 31 Apr 2000 00:00:00 GMT",
		"Thu, 01 Jan 1970 24:00:00 GMT",
		"Thu, 01 Jan 1970 00:60:00 GMT",
		"Thu, 01 Jan 1970 00:00:61 GMT",
		"Thu, 01 Jan 1970 00:00:00 GMT ",
		" Thu, 01 Jan 1970 00:00:00 GMT",
		"Thu, 01 Jan 1970 00:00:00 gmt",
		"Thu, 01 Jan 1970 00:00:00 UTC",
		"Thu, 01 jan 1970 00:00:00 GMT",
		"Thu, 1 Jan 1970 00:00:00 GMTX",
		"Thu, 01 Foo 1970 00:00:00 GMT",
		"Xyz, 01 Jan 1970 00:00:00 GMT",
		"Thu, 01 Jan 1970 00-00-00 GMT",
		"Thu, 0x Jan 1970 00:00:00 GMT",
		"Thu, 01 Jan 19-0 00:00:00 GMT",
		"Thu, 01 Jan 1970 0:00:000 GMT",
		"Thu 01 Jan 1970 00:00:00 GMTT",
		"Sunday, 06-Nov-1994 08:49:37 GMT",
		"Sunday, 06 Nov 94 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMX",
		"Sonday, 06-Nov-94 08:49:37 GMT",
		"Sunday, 06-Nov-9x 08:49:37 GMT",
		"Sun Nov  6 08:49:37 94   ",
		"Sun Nov 6  08:49:37 1994",
		"Sun Nov    08:49:37 1994",
		"Sun Nov  6 08:49:37 19944",
		"Sun,Nov  6 08:49:37 1994",
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad); i++)
		if (date_of(bad[i]) != -1)
			fail_msg("\"%s\" accepted as %lld", bad[i],
			    (long long)date_of(bad[i]));
	assert_int_equal(cache_http_date(NULL, 0), -1);
}

static void
date_every_prefix(void **state)
{
	static const char *const good[] = {
		"Sun, 06 Nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994",
	};
	size_t i, k, n;
	char *p;

	(void)state;
	/* every truncation of a valid date is invalid, and read within
	 * its exact-size buffer */
	for (i = 0; i < NELEM(good); i++) {
		n = strlen(good[i]);
		for (k = 0; k < n; k++) {
			p = malloc(k ? k : 1);
			assert_non_null(p);
			memcpy(p, good[i], k);
			assert_int_equal(cache_http_date(p, k), -1);
			free(p);
		}
	}
}

static void
date_format(void **state)
{
	char out[30];
	int64_t t;

	(void)state;
	assert_int_equal(cache_http_date_format(T1994, out), 29);
	assert_string_equal(out, "Sun, 06 Nov 1994 08:49:37 GMT");
	cache_http_date_format(0, out);
	assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
	cache_http_date_format(-5, out);
	assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
	cache_http_date_format(INT64_MAX, out);
	assert_string_equal(out, "Fri, 31 Dec 9999 23:59:59 GMT");
	cache_http_date_format(951782400LL, out);
	assert_string_equal(out, "Tue, 29 Feb 2000 00:00:00 GMT");
	/* round trip, stepping through leap years and odd times */
	for (t = 0; t < 253402300799LL; t += 86400LL * 97 + 3607) {
		assert_int_equal(cache_http_date_format(t, out), 29);
		assert_int_equal(cache_http_date(out, 29), t);
	}
}

/* ---- request / response heads ------------------------------------- */

static void
req_parse_fields(void **state)
{
	struct cache_req q;

	(void)state;
	req_of(&q, L("cache-control: max-age=5", "Accept: */*",
	    "AUTHORIZATION: Basic eA==", "CACHE-CONTROL: no-cache",
	    "If-None-Match: \"a\", W/\"b\"", "if-modified-since: "
	    "Sun, 06 Nov 1994 08:49:37 GMT", "range: bytes=0-9",
	    "If-Range: \"a\"", "Pragma: no-cache"));
	assert_int_equal(q.cc.flags, CC_MAX_AGE | CC_NO_CACHE);
	assert_int_equal(q.cc.max_age, 5);
	assert_true(q.authorization);
	assert_false(q.pragma_no_cache);	/* Cache-Control present */
	assert_int_equal(q.inm_len, 10);
	assert_memory_equal(q.inm, "\"a\", W/\"b\"", 10);
	assert_int_equal(q.ims, T1994);
	assert_int_equal(q.range_len, 9);
	assert_memory_equal(q.range, "bytes=0-9", 9);
	assert_int_equal(q.if_range_len, 3);

	req_of(&q, NULL);
	assert_int_equal(q.cc.flags, 0);
	assert_false(q.authorization);
	assert_null(q.inm);
	assert_int_equal(q.ims, -1);
	assert_null(q.range);
	assert_null(q.if_range);
}

static void
req_pragma_and_repeats(void **state)
{
	struct cache_req q;

	(void)state;
	req_of(&q, L("Pragma: x=1, NO-CACHE"));
	assert_true(q.pragma_no_cache);
	req_of(&q, L("Pragma: no-cache-please"));
	assert_false(q.pragma_no_cache);
	/* repeated singletons: Range ignored, If-Range never matches,
	 * If-Modified-Since ignored */
	req_of(&q, L("Range: bytes=0-1", "Range: bytes=2-3",
	    "If-Range: \"a\"", "If-Range: \"a\"",
	    "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT",
	    "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT"));
	assert_null(q.range);
	assert_non_null(q.if_range);
	assert_int_equal(q.if_range_len, 0);
	assert_int_equal(q.ims, -1);
	req_of(&q, L("If-Modified-Since: Thu, 01 Ja"));
	assert_int_equal(q.ims, -1);
}

static void
resp_parse_fields(void **state)
{
	struct cache_resp r;

	(void)state;
	resp_of(&r, 200, L("Date: Sun, 06 Nov 1994 08:49:37 GMT",
	    "Expires: Sun, 06 Nov 1994 09:49:37 GMT",
	    "last-modified: Sunday, 06-Nov-94 07:49:37 GMT", "AGE: 12",
	    "ETag: W/\"x\"", "Vary: Accept", "vary: Accept-Language",
	    "Cache-Control: public", "Cache-Control: max-age=3",
	    "Set-Cookie: a=b", "Content-Range: bytes 0-1/2"));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.date, T1994);
	assert_int_equal(r.expires, T1994 + 3600);
	assert_int_equal(r.last_modified, T1994 - 3600);
	assert_int_equal(r.age, 12);
	assert_int_equal(r.etag_len, 5);
	assert_memory_equal(r.vary, "Accept", 6);
	assert_int_equal(r.vary_len, 6);
	assert_int_equal(r.nvary, 2);
	assert_false(r.vary_star);
	assert_int_equal(r.cc.flags, CC_PUBLIC | CC_MAX_AGE);
	assert_true(r.set_cookie);
	assert_true(r.content_range);

	resp_of(&r, 304, NULL);
	assert_int_equal(r.status, 304);
	assert_int_equal(r.date, -1);
	assert_int_equal(r.expires, -1);
	assert_int_equal(r.last_modified, -1);
	assert_int_equal(r.age, 0);
	assert_null(r.etag);
	assert_null(r.vary);
	assert_int_equal(r.nvary, 0);
}

static void
resp_broken_values(void **state)
{
	struct cache_resp r;

	(void)state;
	/* HOSTILE #50: broken dates are "already expired" / absent */
	resp_of(&r, 200, L("Expires: Thu, 01 Ja", "Date: -1",
	    "Last-Modified: Thu, 01 Jan 10000 00:00:00 GMT", "Age: abc"));
	assert_int_equal(r.expires, 0);
	assert_int_equal(r.date, -1);
	assert_int_equal(r.last_modified, -1);
	assert_int_equal(r.age, 0);
	resp_of(&r, 200, L("Expires: 0", "Age: -5"));
	assert_int_equal(r.expires, 0);
	assert_int_equal(r.age, 0);
	/* several Expires: invalid, even when both are fine */
	resp_of(&r, 200, L("Expires: Sun, 06 Nov 1994 09:49:37 GMT",
	    "Expires: Sun, 06 Nov 1994 09:49:37 GMT"));
	assert_int_equal(r.expires, 0);
	/* Age: first member, first field; saturated */
	resp_of(&r, 200, L("Age: 5, 6", "Age: 7"));
	assert_int_equal(r.age, 5);
	resp_of(&r, 200, L("Age: 99999999999999999999999"));
	assert_int_equal(r.age, 2147483648LL);
	resp_of(&r, 200, L("Age: 5 6"));
	assert_int_equal(r.age, 0);
	/* Vary: * anywhere in any field */
	resp_of(&r, 200, L("Vary: Accept", "Vary: Accept-Language , *"));
	assert_true(r.vary_star);
	assert_int_equal(r.nvary, 2);
	resp_of(&r, 200, L("Vary: Accept*"));
	assert_false(r.vary_star);
}

/* ---- storing ------------------------------------------------------- */

struct store_case {
	const char *name;
	bool get;
	const char *const *req;
	int status;
	const char *const *resp;
	enum cache_nostore want;
};

static const struct store_case store_cases[] = {
	{ "200 max-age", true, NULL, 200, L("Cache-Control: max-age=60"),
	    NOSTORE_OK },
	{ "HEAD", false, NULL, 200, L("Cache-Control: max-age=60"),
	    NOSTORE_METHOD },
	{ "request no-store", true, L("Cache-Control: no-store"), 200,
	    L("Cache-Control: max-age=60"), NOSTORE_NO_STORE },
	{ "response no-store", true, NULL, 200,
	    L("Cache-Control: max-age=60, no-store"), NOSTORE_NO_STORE },
	{ "private", true, NULL, 200, L("Cache-Control: private=\"x\""),
	    NOSTORE_PRIVATE },
	{ "auth plain", true, L("Authorization: Basic eA=="), 200,
	    L("Cache-Control: max-age=60"), NOSTORE_AUTH },
	{ "auth public", true, L("Authorization: Basic eA=="), 200,
	    L("Cache-Control: public"), NOSTORE_OK },
	{ "auth s-maxage", true, L("Authorization: Basic eA=="), 200,
	    L("Cache-Control: s-maxage=5"), NOSTORE_OK },
	{ "auth must-revalidate", true, L("Authorization: Basic eA=="),
	    200, L("Cache-Control: must-revalidate", "ETag: \"a\""),
	    NOSTORE_OK },
	{ "set-cookie", true, NULL, 200,
	    L("Cache-Control: max-age=60", "Set-Cookie: a=b"),
	    NOSTORE_SET_COOKIE },
	{ "vary star", true, NULL, 200,
	    L("Cache-Control: max-age=60", "Vary: *"), NOSTORE_VARY_STAR },
	{ "206", true, NULL, 206, L("Cache-Control: max-age=60"),
	    NOSTORE_PARTIAL },
	{ "200 content-range", true, NULL, 200,
	    L("Cache-Control: max-age=60", "Content-Range: bytes 5-1/10"),
	    NOSTORE_PARTIAL },
	{ "304", true, NULL, 304, L("Cache-Control: max-age=60"),
	    NOSTORE_STATUS },
	{ "100", true, NULL, 100, L("Cache-Control: max-age=60"),
	    NOSTORE_STATUS },
	{ "599 unknown", true, NULL, 599, L("Cache-Control: max-age=60"),
	    NOSTORE_STATUS },
	{ "302 max-age", true, NULL, 302, L("Cache-Control: max-age=60"),
	    NOSTORE_OK },
	{ "302 expires", true, NULL, 302,
	    L("Expires: Sun, 06 Nov 1994 08:49:37 GMT"), NOSTORE_OK },
	{ "302 etag only", true, NULL, 302, L("ETag: \"a\""),
	    NOSTORE_NO_FRESHNESS },
	{ "500 bare", true, NULL, 500, NULL, NOSTORE_NO_FRESHNESS },
	{ "403 public", true, NULL, 403, L("Cache-Control: public"),
	    NOSTORE_OK },
	{ "200 bare", true, NULL, 200, NULL, NOSTORE_NO_FRESHNESS },
	{ "200 last-modified", true, NULL, 200,
	    L("Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT"), NOSTORE_OK },
	{ "200 etag", true, NULL, 200, L("ETag: \"a\""), NOSTORE_OK },
	{ "404 bad last-modified", true, NULL, 404,
	    L("Last-Modified: Thu, 01 Ja"), NOSTORE_NO_FRESHNESS },
	{ "410 s-maxage", true, NULL, 410, L("Cache-Control: s-maxage=1"),
	    NOSTORE_OK },
	{ "200 bad expires", true, NULL, 200, L("Expires: Thu, 01 Ja"),
	    NOSTORE_OK },	/* stored, already expired */
};

static void
storable_table(void **state)
{
	struct cache_req q;
	struct cache_resp r;
	enum cache_nostore got;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(store_cases); i++) {
		const struct store_case *c = &store_cases[i];

		req_of(&q, c->req);
		resp_of(&r, c->status, c->resp);
		got = cache_storable(c->get, &q, &r);
		if (got != c->want)
			fail_msg("%s: got %s, want %s", c->name,
			    cache_nostore_name(got),
			    cache_nostore_name(c->want));
	}
}

static void
nostore_names(void **state)
{
	int e;

	(void)state;
	assert_string_equal(cache_nostore_name(NOSTORE_VARY_STAR),
	    "vary-star");
	/* every reason has its own name */
	for (e = NOSTORE_OK; e <= NOSTORE_PARTIAL; e++) {
		assert_string_not_equal(cache_nostore_name(e), "unknown");
		if (e > NOSTORE_OK)
			assert_string_not_equal(cache_nostore_name(e),
			    cache_nostore_name(e - 1));
	}
	assert_string_equal(cache_nostore_name((enum cache_nostore)99),
	    "unknown");
}

/* ---- freshness ----------------------------------------------------- */

#define DATE_HDR	"Date: Sun, 06 Nov 1994 08:49:37 GMT"

struct life_case {
	const char *name;
	int status;
	const char *const *resp;
	int64_t want;
};

static const struct life_case life_cases[] = {
	{ "s-maxage wins", 200, L(DATE_HDR,
	    "Cache-Control: max-age=60, s-maxage=30",
	    "Expires: Sun, 06 Nov 1994 09:49:37 GMT"), 30 },
	{ "max-age over expires", 200, L(DATE_HDR,
	    "Cache-Control: max-age=60",
	    "Expires: Sun, 06 Nov 1994 09:49:37 GMT"), 60 },
	{ "expires - date", 200, L(DATE_HDR,
	    "Expires: Sun, 06 Nov 1994 09:49:37 GMT"), 3600 },
	{ "expires before date", 200, L(DATE_HDR,
	    "Expires: Sun, 06 Nov 1994 07:49:37 GMT"), 0 },
	{ "expires invalid", 200, L(DATE_HDR, "Expires: Thu, 01 Ja",
	    "Last-Modified: Sat, 01 Jan 1994 00:00:00 GMT"), 0 },
	{ "expires, no date", 200,
	    L("Expires: Sun, 06 Nov 1994 09:49:37 GMT"), 0 },
	{ "invalid max-age", 200, L(DATE_HDR, "Cache-Control: max-age=abc",
	    "Expires: Sun, 06 Nov 1994 09:49:37 GMT"), 0 },
	{ "duplicate max-age", 200, L(DATE_HDR,
	    "Cache-Control: max-age=60", "Cache-Control: max-age=70"), 0 },
	{ "heuristic 10%", 200, L(DATE_HDR,
	    "Last-Modified: Sun, 06 Nov 1994 08:32:57 GMT"), 100 },
	{ "heuristic capped", 404, L(DATE_HDR,
	    "Last-Modified: Sat, 01 Jan 1994 00:00:00 GMT"), 86400 },
	{ "heuristic 302", 302, L(DATE_HDR,
	    "Last-Modified: Sun, 06 Nov 1994 08:32:57 GMT"), 0 },
	{ "heuristic 302 public", 302, L(DATE_HDR, "Cache-Control: public",
	    "Last-Modified: Sun, 06 Nov 1994 08:32:57 GMT"), 100 },
	{ "heuristic lm == date", 200, L(DATE_HDR,
	    "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT"), 0 },
	{ "heuristic lm future", 200, L(DATE_HDR,
	    "Last-Modified: Sun, 06 Nov 1994 09:49:37 GMT"), 0 },
	{ "heuristic no date", 200,
	    L("Last-Modified: Sun, 06 Nov 1994 08:32:57 GMT"), 0 },
	{ "nothing", 200, L(DATE_HDR), 0 },
	{ "huge max-age", 200, L("Cache-Control: max-age=1e99999"), 0 },
	{ "saturated max-age", 200,
	    L("Cache-Control: max-age=9999999999999"), 2147483648LL },
};

static void
lifetime_table(void **state)
{
	struct cache_resp r;
	int64_t got;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(life_cases); i++) {
		const struct life_case *c = &life_cases[i];

		resp_of(&r, c->status, c->resp);
		got = cache_lifetime(&r, 86400);
		if (got != c->want)
			fail_msg("%s: got %lld, want %lld", c->name,
			    (long long)got, (long long)c->want);
	}
}

static void
meta_init_fields(void **state)
{
	struct cache_resp r;
	struct cache_meta m;

	(void)state;
	resp_of(&r, 200, L(DATE_HDR, "Age: 4", "Cache-Control: max-age=60, "
	    "stale-while-revalidate=30, stale-if-error=600, no-cache",
	    "Last-Modified: Sun, 06 Nov 1994 08:00:00 GMT"));
	cache_meta_init(&m, &r, T1994 - 1, T1994 + 1, 86400);
	assert_int_equal(m.request_time, T1994 - 1);
	assert_int_equal(m.response_time, T1994 + 1);
	assert_int_equal(m.date, T1994);
	assert_int_equal(m.age_value, 4);
	assert_int_equal(m.lifetime, 60);
	assert_int_equal(m.last_modified, T1994 - 2977);
	assert_int_equal(m.swr, 30);
	assert_int_equal(m.sie, 600);
	assert_true(m.flags & META_NO_CACHE);
	assert_false(m.flags & (META_MUST_REVALIDATE | META_HEURISTIC));

	/* no Date: response_time stands in, Expires counts from it */
	resp_of(&r, 200, L("Expires: Sun, 06 Nov 1994 09:49:37 GMT"));
	cache_meta_init(&m, &r, T1994 - 2, T1994, 86400);
	assert_int_equal(m.date, T1994);
	assert_int_equal(m.lifetime, 3600);
	assert_int_equal(m.swr, -1);
	assert_int_equal(m.sie, -1);
	assert_int_equal(m.last_modified, -1);
	assert_false(m.flags & (META_NO_CACHE | META_MUST_REVALIDATE |
	    META_HEURISTIC));

	/* heuristic, with Date taken from response_time */
	resp_of(&r, 200, L("Last-Modified: Sun, 06 Nov 1994 08:32:57 GMT"));
	cache_meta_init(&m, &r, T1994, T1994, 86400);
	assert_int_equal(m.lifetime, 100);
	assert_true(m.flags & META_HEURISTIC);

	/* each of these means "no stale use" */
	resp_of(&r, 200, L("Cache-Control: must-revalidate"));
	cache_meta_init(&m, &r, 0, 0, 0);
	assert_true(m.flags & META_MUST_REVALIDATE);
	resp_of(&r, 200, L("Cache-Control: proxy-revalidate"));
	cache_meta_init(&m, &r, 0, 0, 0);
	assert_true(m.flags & META_MUST_REVALIDATE);
	resp_of(&r, 200, L("Cache-Control: s-maxage=5"));
	cache_meta_init(&m, &r, 0, 0, 0);
	assert_true(m.flags & META_MUST_REVALIDATE);
	assert_int_equal(m.lifetime, 5);

	/* conflicting directives: stale, and no stale-* grace either */
	resp_of(&r, 200, L("Cache-Control: max-age=60, max-age=61, "
	    "stale-while-revalidate=30, stale-if-error=30"));
	cache_meta_init(&m, &r, 0, 0, 0);
	assert_int_equal(m.lifetime, 0);
	assert_int_equal(m.swr, -1);
	assert_int_equal(m.sie, -1);
}

/* ---- age (RFC 9111 4.2.3) ------------------------------------------ */

static struct cache_meta
meta_times(int64_t req, int64_t resp, int64_t date, int64_t age)
{
	struct cache_meta m;

	memset(&m, 0, sizeof(m));
	m.request_time = req;
	m.response_time = resp;
	m.date = date;
	m.age_value = age;
	m.last_modified = -1;
	m.swr = m.sie = -1;
	return m;
}

static void
age_rfc_arithmetic(void **state)
{
	struct cache_meta m;

	(void)state;
	/* apparent_age = 1002 - 995 = 7; response_delay = 2;
	 * corrected_age_value = 3 + 2 = 5; corrected_initial_age = 7;
	 * resident_time = 1012 - 1002 = 10; current_age = 17 */
	m = meta_times(1000, 1002, 995, 3);
	assert_int_equal(cache_age(&m, 1012), 17);
	/* an upstream cache's Age dominates: 100 + 2 > 7 */
	m = meta_times(1000, 1002, 995, 100);
	assert_int_equal(cache_age(&m, 1012), 112);
	/* straight out of the origin, no clock skew */
	m = meta_times(1000, 1000, 1000, 0);
	assert_int_equal(cache_age(&m, 1000), 0);
	assert_int_equal(cache_age(&m, 1060), 60);
}

static void
age_clock_moved_back(void **state)
{
	struct cache_meta m;

	(void)state;
	/* F20: now before response_time: resident time 0, not negative */
	m = meta_times(1000, 1002, 1002, 0);
	assert_int_equal(cache_age(&m, 500), 2);
	/* Date in the future: apparent age 0 */
	m = meta_times(1000, 1000, 90000, 0);
	assert_int_equal(cache_age(&m, 1010), 10);
	/* response_time before request_time: delay 0 */
	m = meta_times(2000, 1000, 1000, 5);
	assert_int_equal(cache_age(&m, 1000), 5);
	/* garbage from shm: no overflow, no negative */
	m = meta_times(INT64_MIN, INT64_MAX, INT64_MIN, INT64_MAX);
	assert_true(cache_age(&m, INT64_MAX) == INT64_MAX);
	m = meta_times(INT64_MAX, INT64_MIN, INT64_MAX, -7);
	assert_int_equal(cache_age(&m, INT64_MIN), 0);
}

/* ---- using a stored response ---------------------------------------- */

static struct cache_meta
meta_fresh(int64_t lifetime, uint32_t flags, int64_t swr, int64_t sie)
{
	struct cache_meta m = meta_times(1000, 1000, 1000, 0);

	m.lifetime = lifetime;
	m.flags = flags;
	m.swr = swr;
	m.sie = sie;
	return m;
}

struct use_case {
	const char *name;
	int64_t lifetime;
	uint32_t flags;
	int64_t swr;
	const char *const *req;
	int64_t now;		/* age = now - 1000 */
	enum cache_use want;
};

static const struct use_case use_cases[] = {
	{ "fresh", 100, 0, -1, NULL, 1050, USE_FRESH },
	{ "age == lifetime is stale", 100, 0, -1, NULL, 1100,
	    USE_REVALIDATE },
	{ "stale", 100, 0, -1, NULL, 1200, USE_REVALIDATE },
	{ "no-cache response", 100, META_NO_CACHE, -1, NULL, 1000,
	    USE_REVALIDATE },
	{ "no-cache request", 100, 0, -1, L("Cache-Control: no-cache"),
	    1000, USE_REVALIDATE },
	{ "pragma request", 100, 0, -1, L("Pragma: no-cache"), 1000,
	    USE_REVALIDATE },
	{ "pragma ignored with cc", 100, 0, -1,
	    L("Pragma: no-cache", "Cache-Control: max-stale"), 1000,
	    USE_FRESH },
	{ "invalid request cc", 100, 0, -1, L("Cache-Control: max-age=x"),
	    1000, USE_REVALIDATE },
	{ "request max-age ok", 100, 0, -1, L("Cache-Control: max-age=10"),
	    1010, USE_FRESH },
	{ "request max-age over", 100, 0, -1,
	    L("Cache-Control: max-age=10"), 1011, USE_REVALIDATE },
	{ "min-fresh ok", 100, 0, -1, L("Cache-Control: min-fresh=20"),
	    1080, USE_FRESH },
	{ "min-fresh short", 100, 0, -1, L("Cache-Control: min-fresh=20"),
	    1081, USE_REVALIDATE },
	{ "max-stale any", 100, 0, -1, L("Cache-Control: max-stale"),
	    999999, USE_FRESH },
	{ "max-stale within", 100, 0, -1, L("Cache-Control: max-stale=50"),
	    1150, USE_FRESH },
	{ "max-stale beyond", 100, 0, -1, L("Cache-Control: max-stale=50"),
	    1151, USE_REVALIDATE },
	{ "max-stale vs must-revalidate", 100, META_MUST_REVALIDATE, -1,
	    L("Cache-Control: max-stale"), 1101, USE_REVALIDATE },
	{ "max-stale with max-age", 100, 0, -1,
	    L("Cache-Control: max-stale, max-age=120"), 1121,
	    USE_REVALIDATE },
	{ "swr within", 100, 0, 30, NULL, 1130, USE_STALE_SWR },
	{ "swr at staleness 0", 100, 0, 30, NULL, 1100, USE_STALE_SWR },
	{ "swr beyond", 100, 0, 30, NULL, 1131, USE_REVALIDATE },
	{ "swr vs must-revalidate", 100, META_MUST_REVALIDATE, 30, NULL,
	    1110, USE_REVALIDATE },
	{ "swr fresh is fresh", 100, 0, 30, NULL, 1050, USE_FRESH },
	{ "lifetime 0", 0, 0, -1, NULL, 1000, USE_REVALIDATE },
	{ "clock back", 100, 0, -1, NULL, 0, USE_FRESH },
};

static void
usable_table(void **state)
{
	struct cache_req q;
	struct cache_meta m;
	enum cache_use got;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(use_cases); i++) {
		const struct use_case *c = &use_cases[i];

		m = meta_fresh(c->lifetime, c->flags, c->swr, -1);
		req_of(&q, c->req);
		got = cache_usable(&m, &q, c->now);
		if (got != c->want)
			fail_msg("%s: got %d, want %d", c->name, got, c->want);
	}
}

static void
stale_if_error_windows(void **state)
{
	struct cache_req q, qs;
	struct cache_meta m;

	(void)state;
	req_of(&q, NULL);
	req_of(&qs, L("Cache-Control: stale-if-error=100"));
	/* response stale-if-error=60, lifetime 100 */
	m = meta_fresh(100, 0, -1, 60);
	assert_true(cache_stale_if_error(&m, &q, 1050));	/* fresh */
	assert_true(cache_stale_if_error(&m, &q, 1160));
	assert_false(cache_stale_if_error(&m, &q, 1161));
	/* the request may widen it (RFC 5861 4) */
	assert_true(cache_stale_if_error(&m, &qs, 1200));
	assert_false(cache_stale_if_error(&m, &qs, 1201));
	/* nothing from either side */
	m = meta_fresh(100, 0, -1, -1);
	assert_false(cache_stale_if_error(&m, &q, 1101));
	assert_true(cache_stale_if_error(&m, &qs, 1101));
	/* must-revalidate and no-cache forbid it */
	m = meta_fresh(100, META_MUST_REVALIDATE, -1, 600);
	assert_false(cache_stale_if_error(&m, &qs, 1101));
	m = meta_fresh(100, META_NO_CACHE, -1, 600);
	assert_false(cache_stale_if_error(&m, &qs, 1101));
	/* a broken request Cache-Control grants nothing */
	m = meta_fresh(100, 0, -1, -1);
	req_of(&qs, L("Cache-Control: stale-if-error=100, max-age=x"));
	assert_false(cache_stale_if_error(&m, &qs, 1101));
}

/* ---- 304 merging (RFC 9111 4.3.4) ----------------------------------- */

static void
meta_update_keeps_max_age(void **state)
{
	struct cache_resp r;
	struct cache_meta m;
	struct cache_req q;

	(void)state;
	req_of(&q, NULL);
	resp_of(&r, 200, L("Date: Thu, 01 Jan 1970 00:16:40 GMT",
	    "Cache-Control: max-age=100, stale-if-error=9", "ETag: \"a\""));
	cache_meta_init(&m, &r, 1000, 1000, 86400);
	assert_int_equal(cache_usable(&m, &q, 1200), USE_REVALIDATE);
	/* a bare 304 at 2000: the clock for age restarts */
	resp_of(&r, 304, L("Date: Thu, 01 Jan 1970 00:33:20 GMT",
	    "Age: 3"));
	cache_meta_update(&m, &r, 1999, 2000, 86400);
	assert_int_equal(m.date, 2000);
	assert_int_equal(m.age_value, 3);
	assert_int_equal(m.lifetime, 100);
	assert_int_equal(m.sie, 9);		/* stored CC still rules */
	assert_int_equal(cache_age(&m, 2050), 54);
	assert_int_equal(cache_usable(&m, &q, 2050), USE_FRESH);
	/* the 304's Expires does not beat the stored max-age */
	resp_of(&r, 304, L("Expires: Thu, 01 Jan 1970 00:00:01 GMT"));
	cache_meta_update(&m, &r, 3000, 3000, 86400);
	assert_int_equal(m.lifetime, 100);
}

static void
meta_update_rebases_expires(void **state)
{
	struct cache_resp r;
	struct cache_meta m;

	(void)state;
	/* Expires at 1100 with Date 1000; 304 at 1050 without Expires:
	 * the stored Expires stays, so 50 s are left */
	resp_of(&r, 200, L("Date: Thu, 01 Jan 1970 00:16:40 GMT",
	    "Expires: Thu, 01 Jan 1970 00:18:20 GMT"));
	cache_meta_init(&m, &r, 1000, 1000, 86400);
	assert_int_equal(m.lifetime, 100);
	resp_of(&r, 304, L("Date: Thu, 01 Jan 1970 00:17:30 GMT"));
	cache_meta_update(&m, &r, 1050, 1050, 86400);
	assert_int_equal(m.lifetime, 50);
	/* a new Expires in the 304 replaces it */
	resp_of(&r, 304, L("Date: Thu, 01 Jan 1970 00:17:30 GMT",
	    "Expires: Thu, 01 Jan 1970 00:27:30 GMT"));
	cache_meta_update(&m, &r, 1050, 1050, 86400);
	assert_int_equal(m.lifetime, 600);
}

static void
meta_update_new_cc(void **state)
{
	struct cache_resp r;
	struct cache_meta m;

	(void)state;
	resp_of(&r, 200, L("Cache-Control: max-age=100, no-cache, "
	    "stale-while-revalidate=5"));
	cache_meta_init(&m, &r, 1000, 1000, 86400);
	assert_true(m.flags & META_NO_CACHE);
	resp_of(&r, 304, L("Cache-Control: s-maxage=10"));
	cache_meta_update(&m, &r, 2000, 2000, 86400);
	assert_int_equal(m.lifetime, 10);
	assert_int_equal(m.date, 2000);		/* no Date: response_time */
	assert_false(m.flags & META_NO_CACHE);
	assert_true(m.flags & META_MUST_REVALIDATE);
	assert_int_equal(m.swr, -1);
	/* a broken CC in the 304 makes it stale */
	resp_of(&r, 304, L("Cache-Control: max-age=1, max-age=2"));
	cache_meta_update(&m, &r, 2000, 2000, 86400);
	assert_int_equal(m.lifetime, 0);
}

static void
meta_update_heuristic(void **state)
{
	struct cache_resp r;
	struct cache_meta m;

	(void)state;
	/* Last-Modified 0, Date 1000: heuristic 100 */
	resp_of(&r, 200, L("Date: Thu, 01 Jan 1970 00:16:40 GMT",
	    "Last-Modified: Thu, 01 Jan 1970 00:00:00 GMT"));
	cache_meta_init(&m, &r, 1000, 1000, 86400);
	assert_int_equal(m.lifetime, 100);
	assert_true(m.flags & META_HEURISTIC);
	/* confirmed unchanged at 2000: 10% of 2000 */
	resp_of(&r, 304, L("Date: Thu, 01 Jan 1970 00:33:20 GMT"));
	cache_meta_update(&m, &r, 2000, 2000, 86400);
	assert_int_equal(m.lifetime, 200);
	assert_true(m.flags & META_HEURISTIC);
	/* capped */
	cache_meta_update(&m, &r, 2000, 2000, 150);
	assert_int_equal(m.lifetime, 150);
}

/* ---- conditionals --------------------------------------------------- */

struct cond_case {
	const char *name;
	const char *const *req;
	const char *etag;	/* stored; NULL: none */
	int64_t lm, date;
	bool want;
};

#define IMS(d)	"If-Modified-Since: " d

static const struct cond_case cond_cases[] = {
	{ "inm equal", L("If-None-Match: \"a\""), "\"a\"", -1, -1, true },
	{ "inm weak stored", L("If-None-Match: \"a\""), "W/\"a\"", -1, -1,
	    true },
	{ "inm weak request", L("If-None-Match: W/\"a\""), "\"a\"", -1, -1,
	    true },
	{ "inm list", L("If-None-Match: \"x\" , W/\"y\",\"a\""), "\"a\"",
	    -1, -1, true },
	{ "inm other", L("If-None-Match: \"b\""), "\"a\"", -1, -1, false },
	{ "inm case", L("If-None-Match: \"A\""), "\"a\"", -1, -1, false },
	{ "inm prefix", L("If-None-Match: \"ab\""), "\"a\"", -1, -1, false },
	{ "inm star", L("If-None-Match: *"), "\"a\"", -1, -1, true },
	{ "inm star no etag", L("If-None-Match: *"), NULL, -1, -1, true },
	{ "inm no stored etag", L("If-None-Match: \"a\""), NULL, 5, 5,
	    false },
	{ "inm unquoted", L("If-None-Match: a"), "a", -1, -1, false },
	{ "inm malformed element", L("If-None-Match: \"a\", b"), "\"a\"",
	    -1, -1, false },
	{ "inm unterminated", L("If-None-Match: \"a"), "\"a\"", -1, -1,
	    false },
	{ "inm beats ims", L("If-None-Match: \"b\"",
	    IMS("Sun, 06 Nov 1994 08:49:37 GMT")), "\"a\"", 0, 0, false },
	{ "ims newer", L(IMS("Sun, 06 Nov 1994 08:49:37 GMT")), NULL,
	    T1994 - 1, -1, true },
	{ "ims equal", L(IMS("Sun, 06 Nov 1994 08:49:37 GMT")), NULL,
	    T1994, -1, true },
	{ "ims older", L(IMS("Sun, 06 Nov 1994 08:49:37 GMT")), NULL,
	    T1994 + 1, -1, false },
	{ "ims date fallback", L(IMS("Sun, 06 Nov 1994 08:49:37 GMT")),
	    NULL, -1, T1994, true },
	{ "ims date fallback newer", L(IMS("Sun, 06 Nov 1994 08:49:37 GMT")),
	    NULL, -1, T1994 + 1, false },
	{ "ims nothing stored", L(IMS("Sun, 06 Nov 1994 08:49:37 GMT")),
	    NULL, -1, -1, false },
	{ "ims invalid", L(IMS("Thu, 01 Ja")), NULL, 0, 0, false },
	{ "no conditional", NULL, "\"a\"", 0, 0, false },
};

static void
not_modified_table(void **state)
{
	struct cache_req q;
	size_t i;
	bool got;

	(void)state;
	for (i = 0; i < NELEM(cond_cases); i++) {
		const struct cond_case *c = &cond_cases[i];

		req_of(&q, c->req);
		got = cache_not_modified(&q, c->etag,
		    c->etag ? strlen(c->etag) : 0, c->lm, c->date);
		if (got != c->want)
			fail_msg("%s: got %d", c->name, got);
	}
}

/* ---- Range ---------------------------------------------------------- */

struct range_case {
	const char *name;
	const char *const *req;
	uint64_t size;
	enum cache_range want;
	uint64_t first, last;
};

#define RG(v)	L("Range: " v)

static const struct range_case range_cases[] = {
	{ "absent", NULL, 100, RANGE_NONE, 0, 0 },
	{ "first-last", RG("bytes=10-19"), 100, RANGE_OK, 10, 19 },
	{ "unit case", RG("Bytes=10-19"), 100, RANGE_OK, 10, 19 },
	{ "first-", RG("bytes=90-"), 100, RANGE_OK, 90, 99 },
	{ "suffix", RG("bytes=-10"), 100, RANGE_OK, 90, 99 },
	{ "suffix larger", RG("bytes=-500"), 100, RANGE_OK, 0, 99 },
	{ "suffix 0", RG("bytes=-0"), 100, RANGE_UNSATISFIABLE, 0, 0 },
	{ "last clamps", RG("bytes=50-500"), 100, RANGE_OK, 50, 99 },
	{ "first beyond", RG("bytes=100-"), 100, RANGE_UNSATISFIABLE, 0, 0 },
	{ "first beyond with last", RG("bytes=100-200"), 100,
	    RANGE_UNSATISFIABLE, 0, 0 },
	{ "first > last", RG("bytes=20-10"), 100, RANGE_NONE, 0, 0 },
	{ "single byte", RG("bytes=0-0"), 100, RANGE_OK, 0, 0 },
	{ "size 0", RG("bytes=0-0"), 0, RANGE_UNSATISFIABLE, 0, 0 },
	{ "size 0 suffix", RG("bytes=-5"), 0, RANGE_UNSATISFIABLE, 0, 0 },
	{ "trailing OWS", RG("bytes=1-2 "), 100, RANGE_OK, 1, 2 },
	{ "trailing empty element", RG("bytes=1-2 , "), 100, RANGE_OK, 1,
	    2 },
	{ "two ranges", RG("bytes=1-2, 5-6"), 100, RANGE_NONE, 0, 0 },
	{ "-1,-1", RG("bytes=-1,-1"), 100, RANGE_NONE, 0, 0 },
	{ "uint64 last", RG("bytes=0-18446744073709551615"), 100, RANGE_OK,
	    0, 99 },
	{ "uint64 overflow last", RG("bytes=0-99999999999999999999999"),
	    100, RANGE_OK, 0, 99 },
	{ "overflow first", RG("bytes=99999999999999999999-"), 100,
	    RANGE_UNSATISFIABLE, 0, 0 },
	{ "overflow suffix", RG("bytes=-99999999999999999999"), 100,
	    RANGE_OK, 0, 99 },
	{ "overflow first > last", RG("bytes=99999999999999999999-5"), 100,
	    RANGE_NONE, 0, 0 },
	{ "other unit", RG("items=0-5"), 100, RANGE_NONE, 0, 0 },
	{ "no equals", RG("bytes 0-5"), 100, RANGE_NONE, 0, 0 },
	{ "space after equals", RG("bytes= 0-5"), 100, RANGE_NONE, 0, 0 },
	{ "space in spec", RG("bytes=0 -5"), 100, RANGE_NONE, 0, 0 },
	{ "dash only", RG("bytes=-"), 100, RANGE_NONE, 0, 0 },
	{ "empty set", RG("bytes="), 100, RANGE_NONE, 0, 0 },
	{ "negative", RG("bytes=--5"), 100, RANGE_NONE, 0, 0 },
	{ "junk", RG("bytes=0-5x"), 100, RANGE_NONE, 0, 0 },
	{ "leading comma", RG("bytes=,0-5"), 100, RANGE_NONE, 0, 0 },
	{ "strong if-range", L("Range: bytes=0-4", "If-Range: \"v1\""), 100,
	    RANGE_OK, 0, 4 },
	{ "weak if-range", L("Range: bytes=0-4", "If-Range: W/\"v1\""), 100,
	    RANGE_NONE, 0, 0 },
	{ "if-range other", L("Range: bytes=0-4", "If-Range: \"v2\""), 100,
	    RANGE_NONE, 0, 0 },
	{ "if-range date", L("Range: bytes=0-4",
	    "If-Range: Wed, 09 Nov 1994 08:49:37 GMT"), 100, RANGE_OK, 0, 4 },
	{ "if-range date differs", L("Range: bytes=0-4",
	    "If-Range: Thu, 10 Nov 1994 08:49:37 GMT"), 100, RANGE_NONE, 0,
	    0 },
	{ "if-range junk", L("Range: bytes=0-4", "If-Range: v1"), 100,
	    RANGE_NONE, 0, 0 },
	{ "if-range twice", L("Range: bytes=0-4", "If-Range: \"v1\"",
	    "If-Range: \"v1\""), 100, RANGE_NONE, 0, 0 },
};

static void
range_table(void **state)
{
	struct cache_req q;
	enum cache_range got;
	uint64_t a, b;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(range_cases); i++) {
		const struct range_case *c = &range_cases[i];

		req_of(&q, c->req);
		/* the stored object: strong etag "v1", Last-Modified =
		 * Wed, 09 Nov 1994 08:49:37 GMT */
		got = cache_range(&q, c->size, "\"v1\"", 4,
		    T1994 + 3 * 86400, &a, &b);
		if (got != c->want || (got == RANGE_OK &&
		    (a != c->first || b != c->last)))
			fail_msg("%s: got %d %llu-%llu", c->name, got,
			    (unsigned long long)a, (unsigned long long)b);
	}
}

static void
range_weak_stored_etag(void **state)
{
	struct cache_req q;
	uint64_t a, b;

	(void)state;
	/* a weak stored etag never satisfies If-Range */
	req_of(&q, L("Range: bytes=0-4", "If-Range: \"v1\""));
	assert_int_equal(cache_range(&q, 100, "W/\"v1\"", 6, -1, &a, &b),
	    RANGE_NONE);
	assert_int_equal(cache_range(&q, 100, NULL, 0, -1, &a, &b),
	    RANGE_NONE);
	/* a date If-Range without a stored Last-Modified */
	req_of(&q, L("Range: bytes=0-4",
	    "If-Range: Sun, 06 Nov 1994 08:49:37 GMT"));
	assert_int_equal(cache_range(&q, 100, "\"v1\"", 4, -1, &a, &b),
	    RANGE_NONE);
}

static void
range_abuse_2000(void **state)
{
	static char big[8 + 4 * 2000];
	struct cache_req q;
	struct cache_field f;
	uint64_t a, b;
	size_t i, n = 0;
	char *p;

	(void)state;
	/* HOSTILE #38: bytes=0-0,0-0,... 2000 times: ignored (200) */
	n += (size_t)sprintf(big, "bytes=0-0");
	for (i = 1; i < 2000; i++)
		n += (size_t)sprintf(big + n, ",0-0");
	p = malloc(n);
	assert_non_null(p);
	memcpy(p, big, n);
	f.name = "Range";
	f.nlen = 5;
	f.value = p;
	f.vlen = n;
	cache_req_parse(&q, &f, 1);
	assert_int_equal(cache_range(&q, 1000, NULL, 0, -1, &a, &b),
	    RANGE_NONE);
	/* the exact-size copy, cut anywhere, is read within bounds */
	for (i = 0; i < 40; i++) {
		q.range_len = i;
		(void)cache_range(&q, 1000, NULL, 0, -1, &a, &b);
	}
	free(p);
}

/* ---- Vary ----------------------------------------------------------- */

static int
vary_of(const char *vary, const char *const *lines, char *out, size_t outsz)
{
	static struct hdrs h;
	size_t n;
	char *p = dup_exact(vary, &n);
	int rc;

	hdrs_set(&h, lines);
	rc = cache_vary_key(p, n, h.f, h.n, out, outsz);
	free(p);
	return rc;
}

static void
vary_key_canonical(void **state)
{
	static const char *const want =
	    "accept-encoding:gzip,br\naccept-language:fr\n";
	char out[256];

	(void)state;
	assert_int_equal(vary_of("Accept-Language , ACCEPT-ENCODING",
	    L("Accept-Encoding: gzip", "Host: x", "accept-language:  fr ",
	    "ACCEPT-ENCODING: br"), out, sizeof(out)), (int)strlen(want));
	assert_string_equal(out, want);
	/* the field order of the request decides the join order, the
	 * order and case of the Vary list do not */
	assert_int_equal(vary_of("accept-encoding,,accept-language,",
	    L("accept-language: fr", "Accept-Encoding: gzip",
	    "accept-encoding: br"), out, sizeof(out)), (int)strlen(want));
	assert_string_equal(out, want);
}

static void
vary_key_dedupe_absent(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(vary_of("B, a, A, b, a", L("A: 1"), out,
	    sizeof(out)), 7);
	assert_string_equal(out, "a:1\nb:\n");
	/* a name that is a prefix of another sorts first */
	assert_int_equal(vary_of("ab, a", NULL, out, sizeof(out)), 7);
	assert_string_equal(out, "a:\nab:\n");
	assert_int_equal(vary_of("", NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(vary_of(" , ,", NULL, out, sizeof(out)), 0);
	assert_int_equal(cache_vary_key(NULL, 0, NULL, 0, out, sizeof(out)),
	    0);
}

static void
vary_key_rejects(void **state)
{
	static const char *const bad[] = {
		"*", "Accept, *", "*, Accept", "a b", "a;b", "a:b", "\"a\"",
		"a/b", "a,\tb c",
	};
	char out[64];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad); i++)
		if (vary_of(bad[i], NULL, out, sizeof(out)) != -1)
			fail_msg("\"%s\" accepted", bad[i]);
}

static void
vary_key_many_names(void **state)
{
	static char list[16 * 1000];
	static char out[65536];
	size_t n = 0;
	int i;

	(void)state;
	/* HOSTILE #50: Vary with 1000 names: refused */
	for (i = 0; i < 1000; i++)
		n += (size_t)sprintf(list + n, "%sh%d", i ? "," : "", i);
	assert_int_equal(vary_of(list, NULL, out, sizeof(out)), -1);
	/* 64 distinct names fit; 65 do not */
	n = 0;
	for (i = 0; i < 64; i++)
		n += (size_t)sprintf(list + n, "%sh%d", i ? "," : "", i);
	assert_true(vary_of(list, NULL, out, sizeof(out)) > 0);
	n += (size_t)sprintf(list + n, ",h0,H63");	/* duplicates: fine */
	assert_true(vary_of(list, NULL, out, sizeof(out)) > 0);
	sprintf(list + n, ",h64");
	assert_int_equal(vary_of(list, NULL, out, sizeof(out)), -1);
}

static void
vary_key_buffer_bounds(void **state)
{
	/* "a:xy\nb:1,2\n" = 11 bytes, plus the NUL */
	static const char *const want = "a:xy\nb:1,2\n";
	char out[32];
	size_t sz;
	int rc;

	(void)state;
	for (sz = 0; sz <= 13; sz++) {
		memset(out, '#', sizeof(out));
		rc = vary_of("a, b", L("B: 1", "A: xy", "b: 2"), out, sz);
		if (sz < 12) {
			assert_int_equal(rc, -1);
		} else {
			assert_int_equal(rc, 11);
			assert_string_equal(out, want);
		}
		/* never a byte beyond outsz */
		assert_int_equal(out[sz], '#');
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cc_flags),
		cmocka_unit_test(cc_case_and_values),
		cmocka_unit_test(cc_quoted_strings),
		cmocka_unit_test(cc_malformed_numbers),
		cmocka_unit_test(cc_huge_numbers),
		cmocka_unit_test(cc_duplicates),
		cmocka_unit_test(cc_max_stale_and_unknown),
		cmocka_unit_test(date_three_formats),
		cmocka_unit_test(date_calendar),
		cmocka_unit_test(date_malformed),
		cmocka_unit_test(date_every_prefix),
		cmocka_unit_test(date_format),
		cmocka_unit_test(req_parse_fields),
		cmocka_unit_test(req_pragma_and_repeats),
		cmocka_unit_test(resp_parse_fields),
		cmocka_unit_test(resp_broken_values),
		cmocka_unit_test(storable_table),
		cmocka_unit_test(nostore_names),
		cmocka_unit_test(lifetime_table),
		cmocka_unit_test(meta_init_fields),
		cmocka_unit_test(age_rfc_arithmetic),
		cmocka_unit_test(age_clock_moved_back),
		cmocka_unit_test(usable_table),
		cmocka_unit_test(stale_if_error_windows),
		cmocka_unit_test(meta_update_keeps_max_age),
		cmocka_unit_test(meta_update_rebases_expires),
		cmocka_unit_test(meta_update_new_cc),
		cmocka_unit_test(meta_update_heuristic),
		cmocka_unit_test(not_modified_table),
		cmocka_unit_test(range_table),
		cmocka_unit_test(range_weak_stored_etag),
		cmocka_unit_test(range_abuse_2000),
		cmocka_unit_test(vary_key_canonical),
		cmocka_unit_test(vary_key_dedupe_absent),
		cmocka_unit_test(vary_key_rejects),
		cmocka_unit_test(vary_key_many_names),
		cmocka_unit_test(vary_key_buffer_bounds),
	};

	return cmocka_run_group_tests_name("cache_policy", tests, NULL, NULL);
}
