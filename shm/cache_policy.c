/*
 * cache_policy.c - RFC 9111 policy for a shared cache, as pure functions.
 *
 * What: parses the header fields that matter to a cache (Cache-Control,
 * the HTTP-date fields, Age, validators, Vary, Range) and answers the
 * questions of RFC 9111: may this response be stored (section 3), how
 * long is it fresh (4.2.1, 4.2.2), how old is it (4.2.3), may it answer
 * this request now (4.2, 5.2.1, RFC 5861), is a client conditional a 304
 * (RFC 9110 13.1), which single byte range to serve (RFC 9110 14).
 *
 * Assumes: header values come from the worker's parser, already trimmed
 * of OWS and free of CR, LF and NUL; nothing else about them is trusted.
 * A struct cache_meta may come back from shared memory, so every time
 * computation saturates instead of overflowing.
 *
 * Why this way: the cache's correctness lives here, so it is kept away
 * from I/O, clocks and allocation (STYLE 8, 10) and tested as a table of
 * cases.  Every parser is bounded by the length it is given and never
 * needs a NUL.  When the input is ambiguous the answer is the
 * conservative one (HOSTILE.md "cache poisoning"): malformed or
 * conflicting freshness makes a response stale, never fresher; a bad
 * date in Expires means "already expired"; a Range we do not like in
 * every detail is ignored (200), which is always a correct answer.
 *
 * Policy choices beyond the RFC text:
 *  - HTTP-dates are matched case-sensitively, as RFC 9110 5.6.7 writes
 *    them; the weekday is not checked against the date.  A valid date
 *    before 1970 is returned as 0 so that -1 keeps meaning "invalid".
 *  - RFC 850 two-digit years: yy < 70 is 20yy, else 19yy (RFC 9110 asks
 *    for "50 years from now", but nothing here reads the clock).
 *  - A malformed or conflicting numeric directive sets CC_INVALID and
 *    keeps the more conservative of the values.  A response with
 *    CC_INVALID has lifetime 0 and no stale-while-revalidate or
 *    stale-if-error; a request with CC_INVALID is revalidated.
 *  - no-cache also stops stale-if-error (RFC 9111 4.2.4).
 */
#include "config.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shm/cache_policy.h"

/* delta-seconds beyond this are taken as this (RFC 9111 1.2.2). */
#define DELTA_MAX	2147483648LL
/* Vary: names per response; more and the response is not stored. */
#define VARY_MAX	64
/* 9999-12-31T23:59:59Z, the last instant a 4-digit year can write. */
#define DATE_MAX	253402300799LL

/*
 * Where the stored lifetime came from, kept in cache_meta.flags so that
 * cache_meta_update() can apply RFC 9111 4.3.4 (a 304 replaces some
 * fields and keeps others).  Private: callers only test the META_* bits
 * of the header; these sit far above them.
 */
#define META_SRC_CC		(1u << 30)	/* s-maxage / max-age (or invalid CC) */
#define META_SRC_EXPIRES	(1u << 31)	/* Expires - Date */

/* ---- small helpers ------------------------------------------------ */

static int64_t
sat_add(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static int64_t
sat_sub(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return b < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static int64_t
nonneg(int64_t x)
{
	return x < 0 ? 0 : x;
}

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Case-insensitive equality of a slice and a lower-case literal. */
static bool
ieq(const char *s, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lit[i] == '\0' || lower((unsigned char)s[i]) != lit[i])
			return false;
	return lit[n] == '\0';
}

static bool
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9110 5.6.2 tchar. */
static bool
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static size_t
skip_ows(const char *v, size_t len, size_t i)
{
	while (i < len && is_ows(v[i]))
		i++;
	return i;
}

static size_t
skip_token(const char *v, size_t len, size_t i)
{
	while (i < len && is_tchar((unsigned char)v[i]))
		i++;
	return i;
}

/* v[i] is '"': index after the closing quote; *ok = false and len when
 * the string is not terminated.  An escape never reads past len. */
static size_t
skip_quoted(const char *v, size_t len, size_t i, bool *ok)
{
	for (i++; i < len; i++) {
		if (v[i] == '"')
			return i + 1;
		if (v[i] == '\\' && ++i >= len)
			break;
	}
	*ok = false;
	return len;
}

/* Skip to the next list comma that is not inside a quoted string. */
static size_t
skip_element(const char *v, size_t len, size_t i)
{
	bool ok = true;

	while (i < len && v[i] != ',') {
		if (v[i] == '"')
			i = skip_quoted(v, len, i, &ok);
		else
			i++;
	}
	return i;
}

/* Digits only, non-empty; saturates at DELTA_MAX.  -1 when malformed. */
static int64_t
parse_delta(const char *s, size_t n)
{
	int64_t v = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v < DELTA_MAX)
			v = v * 10 + (s[i] - '0');
	}
	return v > DELTA_MAX ? DELTA_MAX : v;
}

/*
 * Walk a comma-separated list, calling back with each non-empty element
 * trimmed of OWS.  Quoted strings are kept whole.  Returns false as soon
 * as the callback does.
 */
typedef bool list_cb(void *arg, const char *e, size_t n);

static bool
list_walk(const char *v, size_t len, list_cb *cb, void *arg)
{
	size_t i = 0, s, e;

	while (i < len) {
		s = skip_ows(v, len, i);
		e = skip_element(v, len, s);
		i = e + 1;
		while (e > s && is_ows(v[e - 1]))
			e--;
		if (e > s && !cb(arg, v + s, e - s))
			return false;
	}
	return true;
}

/* ---- Cache-Control (RFC 9111 5.2) -------------------------------- */

enum cc_kind { CC_K_FLAG, CC_K_NUM, CC_K_NUM_OPT };
/* How two different values of one numeric directive are reconciled. */
enum cc_keep { KEEP_MIN, KEEP_MAX };

static const struct cc_dir {
	const char *name;
	enum cc_kind kind;
	unsigned flag;
	size_t off;		/* offset of the value in struct cache_cc */
	enum cc_keep keep;
} cc_dirs[] = {
	{ "no-store", CC_K_FLAG, CC_NO_STORE, 0, KEEP_MIN },
	{ "no-cache", CC_K_FLAG, CC_NO_CACHE, 0, KEEP_MIN },
	{ "private", CC_K_FLAG, CC_PRIVATE, 0, KEEP_MIN },
	{ "public", CC_K_FLAG, CC_PUBLIC, 0, KEEP_MIN },
	{ "must-revalidate", CC_K_FLAG, CC_MUST_REVALIDATE, 0, KEEP_MIN },
	{ "proxy-revalidate", CC_K_FLAG, CC_PROXY_REVALIDATE, 0, KEEP_MIN },
	{ "only-if-cached", CC_K_FLAG, CC_ONLY_IF_CACHED, 0, KEEP_MIN },
	{ "max-age", CC_K_NUM, CC_MAX_AGE,
	    offsetof(struct cache_cc, max_age), KEEP_MIN },
	{ "s-maxage", CC_K_NUM, CC_S_MAXAGE,
	    offsetof(struct cache_cc, s_maxage), KEEP_MIN },
	{ "max-stale", CC_K_NUM_OPT, CC_MAX_STALE,
	    offsetof(struct cache_cc, max_stale), KEEP_MIN },
	{ "min-fresh", CC_K_NUM, CC_MIN_FRESH,
	    offsetof(struct cache_cc, min_fresh), KEEP_MAX },
	{ "stale-while-revalidate", CC_K_NUM, CC_SWR,
	    offsetof(struct cache_cc, swr), KEEP_MIN },
	{ "stale-if-error", CC_K_NUM, CC_SIE,
	    offsetof(struct cache_cc, sie), KEEP_MIN },
};

/* Flags we honour even when their element is malformed: they only make
 * the cache do less. */
#define CC_RESTRICTIVE	(CC_NO_STORE | CC_NO_CACHE | CC_PRIVATE | \
			 CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE)

/* One directive: ok is false when its syntax was broken. */
static void
cc_apply(struct cache_cc *cc, const char *name, size_t nlen, bool hasarg,
    const char *arg, size_t alen, bool ok)
{
	const struct cc_dir *d = NULL;
	int64_t *slot, val, a, b;
	size_t k;

	for (k = 0; k < sizeof(cc_dirs) / sizeof(cc_dirs[0]); k++)
		if (ieq(name, nlen, cc_dirs[k].name)) {
			d = &cc_dirs[k];
			break;
		}
	if (d == NULL)
		return;		/* unknown directives are ignored (5.2.3) */
	if (d->kind == CC_K_FLAG) {
		/* no-cache="f" and private="f" act as the bare directive */
		if (ok || (d->flag & CC_RESTRICTIVE))
			cc->flags |= d->flag;
		return;
	}
	if (!ok || (d->kind == CC_K_NUM && !hasarg)) {
		cc->flags |= CC_INVALID;
		return;
	}
	if (hasarg) {
		val = parse_delta(arg, alen);
		if (val < 0) {
			cc->flags |= CC_INVALID;
			return;
		}
	} else
		val = -1;	/* max-stale: any staleness */
	slot = (int64_t *)(void *)((char *)cc + d->off);
	if (!(cc->flags & d->flag)) {
		cc->flags |= d->flag;
		*slot = val;
		return;
	}
	if (*slot == val)
		return;
	/* the same directive twice, differently: RFC 9111 4.2.1 lets us
	 * call it stale; keep the value that grants less */
	cc->flags |= CC_INVALID;
	a = *slot < 0 ? INT64_MAX : *slot;	/* -1 = unbounded max-stale */
	b = val < 0 ? INT64_MAX : val;
	if (d->keep == KEEP_MIN ? b < a : b > a)
		*slot = val;
}

void
cache_cc_parse(struct cache_cc *cc, const char *v, size_t len)
{
	size_t i = 0, ns, nlen, as;
	const char *arg;
	size_t alen;
	bool ok, hasarg;

	while (i < len) {
		while (i < len && (is_ows(v[i]) || v[i] == ','))
			i++;
		if (i >= len)
			break;
		ns = i;
		i = skip_token(v, len, i);
		nlen = i - ns;
		ok = nlen > 0;
		hasarg = false;
		arg = NULL;
		alen = 0;
		if (ok && i < len && v[i] == '=') {
			hasarg = true;
			as = ++i;
			if (i < len && v[i] == '"') {
				i = skip_quoted(v, len, i, &ok);
				arg = v + as + 1;
				alen = ok ? i - as - 2 : 0;
			} else {
				i = skip_token(v, len, i);
				arg = v + as;
				alen = i - as;
				ok = alen > 0;
			}
		}
		i = skip_ows(v, len, i);
		if (i < len && v[i] != ',') {
			/* junk after the directive: the element is broken */
			ok = false;
			i = skip_element(v, len, i);
		}
		if (nlen > 0)
			cc_apply(cc, v + ns, nlen, hasarg, arg, alen, ok);
	}
}

/* ---- HTTP-date (RFC 9110 5.6.7) ---------------------------------- */

static const char wkday[7][4] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};
static const char *const weekday[7] = {
	"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
	"Saturday"
};
static const char month_name[12][4] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* n decimal digits, or -1. */
static int
dnum(const char *p, size_t n)
{
	int v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

static bool
is_wkday(const char *p)
{
	int k;

	for (k = 0; k < 7; k++)
		if (memcmp(p, wkday[k], 3) == 0)
			return true;
	return false;
}

/* 1..12, or -1. */
static int
month_of(const char *p)
{
	int k;

	for (k = 0; k < 12; k++)
		if (memcmp(p, month_name[k], 3) == 0)
			return k + 1;
	return -1;
}

/* "HH:MM:SS" with the ranges of RFC 9110 (second 60 is a leap second). */
static int64_t
time_of(const char *p)
{
	int h, m, s;

	if (p[2] != ':' || p[5] != ':')
		return -1;
	h = dnum(p, 2);
	m = dnum(p + 3, 2);
	s = dnum(p + 6, 2);
	if (h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 60)
		return -1;
	return h * 3600 + m * 60 + s;
}

static bool
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (the classic
 * days-from-civil; no timegm, which depends on the TZ environment). */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t
date_value(int64_t y, int m, int d, int64_t tod)
{
	static const int mdays[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};
	int64_t t;

	if (y < 0 || m < 1 || d < 1 || tod < 0)
		return -1;
	if (d > mdays[m - 1] + (m == 2 && is_leap(y)))
		return -1;
	t = days_from_civil(y, m, d) * 86400 + tod;
	return t < 0 ? 0 : t;	/* before 1970: "long ago", not invalid */
}

int64_t
cache_http_date(const char *v, size_t len)
{
	int k, d, yy;
	size_t L;

	if (v == NULL)
		return -1;
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	if (len == 29 && v[3] == ',') {
		if (!is_wkday(v) || v[4] != ' ' || v[7] != ' ' ||
		    v[11] != ' ' || v[16] != ' ' || v[25] != ' ' ||
		    memcmp(v + 26, "GMT", 3) != 0)
			return -1;
		return date_value(dnum(v + 12, 4), month_of(v + 8),
		    dnum(v + 5, 2), time_of(v + 17));
	}
	/* asctime: "Sun Nov  6 08:49:37 1994" */
	if (len == 24 && v[3] == ' ') {
		if (!is_wkday(v) || v[7] != ' ' || v[10] != ' ' ||
		    v[19] != ' ')
			return -1;
		d = v[8] == ' ' ? dnum(v + 9, 1) : dnum(v + 8, 2);
		return date_value(dnum(v + 20, 4), month_of(v + 4), d,
		    time_of(v + 11));
	}
	/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
	for (k = 0; k < 7; k++) {
		L = strlen(weekday[k]);
		if (len != L + 24 || memcmp(v, weekday[k], L) != 0)
			continue;
		v += L;
		if (v[0] != ',' || v[1] != ' ' || v[4] != '-' ||
		    v[8] != '-' || v[11] != ' ' || v[20] != ' ' ||
		    memcmp(v + 21, "GMT", 3) != 0)
			return -1;
		yy = dnum(v + 9, 2);
		if (yy < 0)
			return -1;
		return date_value(yy < 70 ? 2000 + yy : 1900 + yy,
		    month_of(v + 5), dnum(v + 2, 2), time_of(v + 12));
	}
	return -1;
}

static void
put2(char *p, int v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

int
cache_http_date_format(int64_t t, char out[30])
{
	int64_t days, secs, y;
	int m, d;

	if (t < 0)
		t = 0;
	if (t > DATE_MAX)
		t = DATE_MAX;
	days = t / 86400;
	secs = t % 86400;
	civil_from_days(days, &y, &m, &d);
	memcpy(out, wkday[(days + 4) % 7], 3);	/* 1970-01-01 was a Thursday */
	memcpy(out + 3, ", ", 2);
	put2(out + 5, d);
	out[7] = ' ';
	memcpy(out + 8, month_name[m - 1], 3);
	out[11] = ' ';
	put2(out + 12, (int)(y / 100));
	put2(out + 14, (int)(y % 100));
	out[16] = ' ';
	put2(out + 17, (int)(secs / 3600));
	out[19] = ':';
	put2(out + 20, (int)(secs / 60 % 60));
	out[22] = ':';
	put2(out + 23, (int)(secs % 60));
	memcpy(out + 25, " GMT", 5);	/* with the NUL */
	return 29;
}

/* ---- request and response heads ---------------------------------- */

/* An empty, non-NULL slice: "present but unusable" (never matches). */
static const char empty_value[] = "";

static bool
pragma_cb(void *arg, const char *e, size_t n)
{
	if (ieq(e, n, "no-cache"))
		*(bool *)arg = true;
	return true;
}

void
cache_req_parse(struct cache_req *q, const struct cache_field *f, size_t n)
{
	bool have_cc = false, pragma = false;
	unsigned nims = 0, nrange = 0, nifr = 0;
	size_t i;

	memset(q, 0, sizeof(*q));
	q->ims = -1;
	for (i = 0; i < n; i++) {
		const char *nm = f[i].name, *v = f[i].value;
		size_t nl = f[i].nlen, vl = f[i].vlen;

		if (ieq(nm, nl, "cache-control")) {
			cache_cc_parse(&q->cc, v, vl);
			have_cc = true;
		} else if (ieq(nm, nl, "pragma")) {
			list_walk(v, vl, pragma_cb, &pragma);
		} else if (ieq(nm, nl, "authorization")) {
			q->authorization = true;
		} else if (ieq(nm, nl, "if-none-match")) {
			/* the first field only: missing a tag only costs a 200 */
			if (q->inm == NULL) {
				q->inm = v;
				q->inm_len = vl;
			}
		} else if (ieq(nm, nl, "if-modified-since")) {
			/* a repeated singleton is ignored (RFC 9110 13.1.3) */
			q->ims = ++nims == 1 ? cache_http_date(v, vl) : -1;
		} else if (ieq(nm, nl, "range")) {
			if (++nrange == 1) {
				q->range = v;
				q->range_len = vl;
			} else {
				q->range = NULL;	/* ambiguous: serve 200 */
				q->range_len = 0;
			}
		} else if (ieq(nm, nl, "if-range")) {
			q->if_range = ++nifr == 1 ? v : empty_value;
			q->if_range_len = nifr == 1 ? vl : 0;
		}
	}
	/* RFC 9111 5.4: Pragma is ignored when Cache-Control is present */
	q->pragma_no_cache = pragma && !have_cc;
}

static bool
star_cb(void *arg, const char *e, size_t n)
{
	if (n == 1 && e[0] == '*') {
		*(bool *)arg = true;
		return false;
	}
	return true;
}

/* Age (RFC 9111 5.1): digits; a list keeps its first member; anything
 * else is ignored (0). */
static int64_t
parse_age(const char *v, size_t len)
{
	size_t i = 0;

	while (i < len && v[i] >= '0' && v[i] <= '9')
		i++;
	if (i == 0)
		return 0;
	if (skip_ows(v, len, i) < len && v[skip_ows(v, len, i)] != ',')
		return 0;
	return parse_delta(v, i);
}

void
cache_resp_parse(struct cache_resp *r, int status,
    const struct cache_field *f, size_t n)
{
	unsigned ndate = 0, nexp = 0, nlm = 0, nage = 0;
	size_t i;

	memset(r, 0, sizeof(*r));
	r->status = status;
	r->date = r->expires = r->last_modified = -1;
	for (i = 0; i < n; i++) {
		const char *nm = f[i].name, *v = f[i].value;
		size_t nl = f[i].nlen, vl = f[i].vlen;

		if (ieq(nm, nl, "cache-control")) {
			cache_cc_parse(&r->cc, v, vl);
		} else if (ieq(nm, nl, "date")) {
			r->date = ++ndate == 1 ? cache_http_date(v, vl) : -1;
		} else if (ieq(nm, nl, "expires")) {
			/* invalid or repeated: in the past (RFC 9111 5.3) */
			r->expires = ++nexp == 1 ? cache_http_date(v, vl) : 0;
			if (r->expires < 0)
				r->expires = 0;
		} else if (ieq(nm, nl, "last-modified")) {
			r->last_modified = ++nlm == 1 ?
			    cache_http_date(v, vl) : -1;
		} else if (ieq(nm, nl, "age")) {
			if (++nage == 1)
				r->age = parse_age(v, vl);
		} else if (ieq(nm, nl, "etag")) {
			if (r->etag == NULL) {
				r->etag = v;
				r->etag_len = vl;
			}
		} else if (ieq(nm, nl, "vary")) {
			if (r->nvary++ == 0) {
				r->vary = v;
				r->vary_len = vl;
			}
			if (!r->vary_star)
				list_walk(v, vl, star_cb, &r->vary_star);
		} else if (ieq(nm, nl, "set-cookie")) {
			r->set_cookie = true;
		} else if (ieq(nm, nl, "content-range")) {
			r->content_range = true;
		}
	}
}

/* ---- storing (RFC 9111 3) ----------------------------------------- */

/* Heuristically cacheable (RFC 9110 15.1), 206 aside: we never store
 * partial content. */
static bool
status_heuristic(int s)
{
	switch (s) {
	case 200: case 203: case 204: case 300: case 301: case 308:
	case 404: case 405: case 410: case 414: case 501:
		return true;
	}
	return false;
}

/* Final status codes of RFC 9110 we understand well enough to store
 * with explicit freshness.  1xx, 304, 206 and unknown codes are not. */
static bool
status_understood(int s)
{
	if (status_heuristic(s))
		return true;
	switch (s) {
	case 201: case 202: case 205:
	case 302: case 303: case 307:
	case 400: case 401: case 402: case 403: case 406: case 407:
	case 408: case 409: case 411: case 412: case 413: case 415:
	case 416: case 417: case 421: case 422: case 426:
	case 500: case 502: case 503: case 504: case 505:
		return true;
	}
	return false;
}

static bool
explicit_freshness(const struct cache_resp *r)
{
	return (r->cc.flags & (CC_MAX_AGE | CC_S_MAXAGE | CC_PUBLIC)) ||
	    r->expires != -1;
}

enum cache_nostore
cache_storable(bool is_get, const struct cache_req *q,
    const struct cache_resp *r)
{
	if (!is_get)
		return NOSTORE_METHOD;
	if ((q->cc.flags | r->cc.flags) & CC_NO_STORE)
		return NOSTORE_NO_STORE;
	if (r->cc.flags & CC_PRIVATE)
		return NOSTORE_PRIVATE;
	/* RFC 9111 3.5 */
	if (q->authorization && !(r->cc.flags &
	    (CC_PUBLIC | CC_S_MAXAGE | CC_MUST_REVALIDATE)))
		return NOSTORE_AUTH;
	if (r->set_cookie)
		return NOSTORE_SET_COOKIE;
	if (r->vary_star)
		return NOSTORE_VARY_STAR;
	if (r->status == 206 || r->content_range)
		return NOSTORE_PARTIAL;
	if (!status_understood(r->status))
		return NOSTORE_STATUS;
	if (explicit_freshness(r))
		return NOSTORE_OK;
	/* heuristic freshness needs Last-Modified; a validator at least
	 * lets a stale copy be revalidated cheaply */
	if (status_heuristic(r->status) &&
	    (r->last_modified >= 0 || r->etag != NULL))
		return NOSTORE_OK;
	return NOSTORE_NO_FRESHNESS;
}

const char *
cache_nostore_name(enum cache_nostore why)
{
	switch (why) {
	case NOSTORE_OK:		return "ok";
	case NOSTORE_METHOD:		return "method";
	case NOSTORE_STATUS:		return "status";
	case NOSTORE_NO_STORE:		return "no-store";
	case NOSTORE_PRIVATE:		return "private";
	case NOSTORE_AUTH:		return "authorization";
	case NOSTORE_SET_COOKIE:	return "set-cookie";
	case NOSTORE_VARY_STAR:		return "vary-star";
	case NOSTORE_NO_FRESHNESS:	return "no-freshness";
	case NOSTORE_PARTIAL:		return "partial";
	}
	return "unknown";
}

/* ---- freshness (RFC 9111 4.2) ------------------------------------ */

static int64_t
heuristic(int64_t date, int64_t lm, int64_t hmax)
{
	int64_t h;

	if (lm < 0 || date < 0 || lm >= date)
		return -1;
	/* 10% of the time since the last change (4.2.2) */
	h = sat_sub(date, lm) / 10;
	return h > nonneg(hmax) ? nonneg(hmax) : h;
}

/* Lifetime against an effective Date; *src gets META_SRC_* or
 * META_HEURISTIC (0 when there was nothing to go by). */
static int64_t
lifetime_at(const struct cache_resp *r, int64_t date, int64_t hmax,
    uint32_t *src)
{
	int64_t h;

	*src = 0;
	if (r->cc.flags & (CC_INVALID | CC_S_MAXAGE | CC_MAX_AGE))
		*src = META_SRC_CC;
	if (r->cc.flags & CC_INVALID)
		return 0;
	if (r->cc.flags & CC_S_MAXAGE)
		return nonneg(r->cc.s_maxage);
	if (r->cc.flags & CC_MAX_AGE)
		return nonneg(r->cc.max_age);
	if (r->expires != -1) {
		*src = META_SRC_EXPIRES;
		if (r->expires <= 0 || date < 0)
			return 0;
		return nonneg(sat_sub(r->expires, date));
	}
	if (status_heuristic(r->status) || (r->cc.flags & CC_PUBLIC)) {
		h = heuristic(date, r->last_modified, hmax);
		if (h >= 0) {
			*src = META_HEURISTIC;
			return h;
		}
	}
	return 0;
}

int64_t
cache_lifetime(const struct cache_resp *r, int64_t heuristic_max)
{
	uint32_t src;

	/* without Date, Expires and the heuristic have no base here;
	 * cache_meta_init() uses the response time instead */
	return lifetime_at(r, r->date, heuristic_max, &src);
}

/* The Cache-Control part of the meta flags. */
static void
meta_cc(struct cache_meta *m, const struct cache_resp *r)
{
	unsigned cc = r->cc.flags;

	m->flags &= ~(uint32_t)(META_MUST_REVALIDATE | META_NO_CACHE);
	if (cc & (CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE | CC_S_MAXAGE))
		m->flags |= META_MUST_REVALIDATE;
	if (cc & CC_NO_CACHE)
		m->flags |= META_NO_CACHE;
	/* broken freshness data grants no stale use either */
	m->swr = (cc & CC_SWR) && !(cc & CC_INVALID) ? r->cc.swr : -1;
	m->sie = (cc & CC_SIE) && !(cc & CC_INVALID) ? r->cc.sie : -1;
}

void
cache_meta_init(struct cache_meta *m, const struct cache_resp *r,
    int64_t request_time, int64_t response_time, int64_t heuristic_max)
{
	uint32_t src;

	memset(m, 0, sizeof(*m));
	m->request_time = request_time;
	m->response_time = response_time;
	m->date = r->date >= 0 ? r->date : response_time;
	m->age_value = nonneg(r->age);
	m->last_modified = r->last_modified;
	m->lifetime = lifetime_at(r, m->date, heuristic_max, &src);
	m->flags = src;
	meta_cc(m, r);
}

/*
 * RFC 9111 4.3.4: the 304's fields replace the stored ones, the others
 * stay.  Age is computed afresh from the 304's times.  What the stored
 * lifetime becomes depends on where it came from: a max-age stays
 * (relative); an Expires is absolute, so it is re-based on the new Date;
 * a heuristic is recomputed from the new Date.
 */
void
cache_meta_update(struct cache_meta *m, const struct cache_resp *r304,
    int64_t request_time, int64_t response_time, int64_t heuristic_max)
{
	int64_t old_date = m->date, old_life = m->lifetime, expires_abs;
	uint32_t old_src = m->flags & (META_SRC_CC | META_SRC_EXPIRES |
	    META_HEURISTIC), src;
	bool cc_rules;

	m->request_time = request_time;
	m->response_time = response_time;
	m->date = r304->date >= 0 ? r304->date : response_time;
	m->age_value = nonneg(r304->age);
	if (r304->last_modified >= 0)
		m->last_modified = r304->last_modified;

	/* A Cache-Control field in the 304 replaces the stored one (a
	 * field holding only unknown directives is not noticed). */
	if (r304->cc.flags != 0) {
		meta_cc(m, r304);
		cc_rules = r304->cc.flags &
		    (CC_INVALID | CC_S_MAXAGE | CC_MAX_AGE);
	} else
		cc_rules = old_src == META_SRC_CC;
	m->flags &= ~(uint32_t)(META_SRC_CC | META_SRC_EXPIRES |
	    META_HEURISTIC);

	if (cc_rules) {
		if (r304->cc.flags != 0) {
			m->lifetime = lifetime_at(r304, m->date,
			    heuristic_max, &src);
		} else
			m->lifetime = old_life;
		m->flags |= META_SRC_CC;
	} else if (r304->expires != -1) {
		m->lifetime = r304->expires <= 0 ? 0 :
		    nonneg(sat_sub(r304->expires, m->date));
		m->flags |= META_SRC_EXPIRES;
	} else if (old_src == META_SRC_EXPIRES) {
		expires_abs = sat_add(old_date, nonneg(old_life));
		m->lifetime = old_life <= 0 ? 0 :
		    nonneg(sat_sub(expires_abs, m->date));
		m->flags |= META_SRC_EXPIRES;
	} else if (old_src == META_HEURISTIC) {
		m->lifetime = nonneg(heuristic(m->date, m->last_modified,
		    heuristic_max));
		m->flags |= META_HEURISTIC;
	} else
		m->lifetime = 0;
}

int64_t
cache_age(const struct cache_meta *m, int64_t now)
{
	int64_t apparent_age, response_delay, corrected_age_value;
	int64_t corrected_initial_age, resident_time;

	/* RFC 9111 4.2.3, each difference clamped at 0 so that a clock
	 * that went back, or a Date in the future, cannot give a negative
	 * (or, saturated, a wrapped) age */
	apparent_age = nonneg(sat_sub(m->response_time, m->date));
	response_delay = nonneg(sat_sub(m->response_time, m->request_time));
	corrected_age_value = sat_add(nonneg(m->age_value), response_delay);
	corrected_initial_age = apparent_age > corrected_age_value ?
	    apparent_age : corrected_age_value;
	resident_time = nonneg(sat_sub(now, m->response_time));
	return sat_add(corrected_initial_age, resident_time);
}

enum cache_use
cache_usable(const struct cache_meta *m, const struct cache_req *q,
    int64_t now)
{
	unsigned qc = q->cc.flags;
	int64_t age, life, staleness;

	if ((m->flags & META_NO_CACHE) || (qc & (CC_NO_CACHE | CC_INVALID)) ||
	    q->pragma_no_cache)
		return USE_REVALIDATE;
	age = cache_age(m, now);
	life = nonneg(m->lifetime);
	if ((qc & CC_MAX_AGE) && age > q->cc.max_age)
		return USE_REVALIDATE;
	if ((qc & CC_MIN_FRESH) && sat_sub(life, age) < q->cc.min_fresh)
		return USE_REVALIDATE;
	if (age < life)
		return USE_FRESH;
	staleness = sat_sub(age, life);
	/* must-revalidate forbids any stale use (RFC 9111 5.2.2.2) */
	if (m->flags & META_MUST_REVALIDATE)
		return USE_REVALIDATE;
	if ((qc & CC_MAX_STALE) &&
	    (q->cc.max_stale < 0 || staleness <= q->cc.max_stale))
		return USE_FRESH;
	if (m->swr >= 0 && staleness <= m->swr)
		return USE_STALE_SWR;
	return USE_REVALIDATE;
}

bool
cache_stale_if_error(const struct cache_meta *m, const struct cache_req *q,
    int64_t now)
{
	int64_t age, life, staleness;

	if (m->flags & (META_MUST_REVALIDATE | META_NO_CACHE))
		return false;
	age = cache_age(m, now);
	life = nonneg(m->lifetime);
	if (age < life)
		return true;
	staleness = sat_sub(age, life);
	if (m->sie >= 0 && staleness <= m->sie)
		return true;
	return (q->cc.flags & CC_SIE) && !(q->cc.flags & CC_INVALID) &&
	    staleness <= q->cc.sie;
}

/* ---- conditionals (RFC 9110 13.1, 8.8.3.2) ------------------------ */

/*
 * entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, the whole slice.  Gives
 * the opaque-tag (with its quotes) and whether it is weak.
 */
static bool
etag_parse(const char *s, size_t n, const char **op, size_t *oplen,
    bool *weak)
{
	size_t i;

	*weak = n >= 2 && s[0] == 'W' && s[1] == '/';
	if (*weak) {
		s += 2;
		n -= 2;
	}
	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return false;
	for (i = 1; i + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];

		/* etagc = %x21 / %x23-7E / obs-text */
		if (c < 0x21 || c == '"' || c == 0x7f)
			return false;
	}
	*op = s;
	*oplen = n;
	return true;
}

struct inm_ctx {
	const char *op;		/* stored opaque-tag, NULL if none */
	size_t oplen;
	bool match, bad;
};

static bool
inm_cb(void *arg, const char *e, size_t n)
{
	struct inm_ctx *c = arg;
	const char *op;
	size_t oplen;
	bool weak;

	if (!etag_parse(e, n, &op, &oplen, &weak)) {
		c->bad = true;
		return false;
	}
	/* weak comparison: W/ ignored, opaque-tags byte for byte */
	if (c->op != NULL && oplen == c->oplen &&
	    memcmp(op, c->op, oplen) == 0)
		c->match = true;
	return true;
}

bool
cache_not_modified(const struct cache_req *q, const char *etag,
    size_t etag_len, int64_t last_modified, int64_t date)
{
	struct inm_ctx c = { NULL, 0, false, false };
	int64_t t;
	bool weak;

	if (q->inm != NULL) {
		/* If-None-Match decides alone; IMS is then ignored
		 * (RFC 9110 13.1.3).  "*": we hold a representation. */
		if (q->inm_len == 1 && q->inm[0] == '*')
			return true;
		if (etag == NULL ||
		    !etag_parse(etag, etag_len, &c.op, &c.oplen, &weak))
			c.op = NULL;
		/* a malformed list is no match: a 200 is always right */
		list_walk(q->inm, q->inm_len, inm_cb, &c);
		return c.match && !c.bad;
	}
	if (q->ims < 0)
		return false;
	t = last_modified >= 0 ? last_modified : date;
	return t >= 0 && t <= q->ims;
}

/* ---- Range (RFC 9110 14) ------------------------------------------ */

/* Digits at v[*i..], saturating at UINT64_MAX; false when there are
 * none.  However many digits come, nothing overflows. */
static bool
range_num(const char *v, size_t len, size_t *i, uint64_t *out)
{
	size_t s = *i;
	uint64_t x = 0;
	unsigned d;

	for (; *i < len && v[*i] >= '0' && v[*i] <= '9'; (*i)++) {
		d = (unsigned)(v[*i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			x = UINT64_MAX;
		else
			x = x * 10 + d;
	}
	*out = x;
	return *i > s;
}

/* If-Range (RFC 9110 13.1.5): a strong etag equal to ours, or a date
 * equal to Last-Modified; anything else fails. */
static bool
if_range_ok(const struct cache_req *q, const char *etag, size_t etag_len,
    int64_t last_modified)
{
	const char *a, *b;
	size_t alen, blen;
	bool aweak, bweak;
	int64_t t;

	if (q->if_range_len == 0)
		return false;
	/* an entity-tag starts with a quote or W/; a date never does */
	if (q->if_range[0] == '"' || (q->if_range_len >= 2 &&
	    q->if_range[0] == 'W' && q->if_range[1] == '/')) {
		if (etag == NULL ||
		    !etag_parse(q->if_range, q->if_range_len, &a, &alen,
		    &aweak) ||
		    !etag_parse(etag, etag_len, &b, &blen, &bweak))
			return false;
		/* strong comparison */
		return !aweak && !bweak && alen == blen &&
		    memcmp(a, b, alen) == 0;
	}
	t = cache_http_date(q->if_range, q->if_range_len);
	return t >= 0 && last_modified >= 0 && t == last_modified;
}

enum cache_range
cache_range(const struct cache_req *q, uint64_t size, const char *etag,
    size_t etag_len, int64_t last_modified, uint64_t *first, uint64_t *last)
{
	const char *v = q->range;
	size_t len = q->range_len, i;
	uint64_t a = 0, b = UINT64_MAX;
	bool has_a, has_b;

	*first = *last = 0;
	if (v == NULL)
		return RANGE_NONE;
	if (q->if_range != NULL &&
	    !if_range_ok(q, etag, etag_len, last_modified))
		return RANGE_NONE;
	/* range-unit is case-insensitive (RFC 9110 14.1) */
	if (len < 6 || !ieq(v, 5, "bytes") || v[5] != '=')
		return RANGE_NONE;
	i = 6;
	has_a = range_num(v, len, &i, &a);
	if (i >= len || v[i] != '-')
		return RANGE_NONE;
	i++;
	has_b = range_num(v, len, &i, &b);
	if (!has_a && !has_b)
		return RANGE_NONE;
	/* exactly one range-spec: after it only OWS and empty list
	 * elements; the first other byte ends the look (2000 ranges cost
	 * one) */
	while (i < len && (is_ows(v[i]) || v[i] == ','))
		i++;
	if (i < len)
		return RANGE_NONE;

	if (!has_a) {			/* suffix-range: the last b bytes */
		if (b == 0 || size == 0)
			return RANGE_UNSATISFIABLE;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return RANGE_OK;
	}
	if (has_b && a > b)
		return RANGE_NONE;	/* invalid range-spec: ignored */
	if (size == 0 || a >= size)
		return RANGE_UNSATISFIABLE;
	*first = a;
	*last = !has_b || b >= size ? size - 1 : b;
	return RANGE_OK;
}

/* ---- Vary (RFC 9111 4.1) ------------------------------------------ */

struct vary_ctx {
	const char *name[VARY_MAX];
	size_t len[VARY_MAX];
	size_t n;
	bool bad;
};

/* Order of lower-cased names; a prefix sorts first. */
static int
name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;
	int d;

	for (i = 0; i < alen && i < blen; i++) {
		d = lower((unsigned char)a[i]) - lower((unsigned char)b[i]);
		if (d != 0)
			return d;
	}
	return alen < blen ? -1 : alen > blen;
}

/* Insert one name into the sorted, de-duplicated set. */
static bool
vary_cb(void *arg, const char *e, size_t n)
{
	struct vary_ctx *c = arg;
	size_t lo = 0, hi = c->n, mid, k;
	int d;

	if (skip_token(e, n, 0) != n) {		/* "*" is a tchar: catch it */
		c->bad = true;
		return false;
	}
	if (n == 1 && e[0] == '*') {
		c->bad = true;
		return false;
	}
	while (lo < hi) {
		mid = (lo + hi) / 2;
		d = name_cmp(c->name[mid], c->len[mid], e, n);
		if (d == 0)
			return true;
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (c->n == VARY_MAX) {
		c->bad = true;
		return false;
	}
	for (k = c->n; k > lo; k--) {
		c->name[k] = c->name[k - 1];
		c->len[k] = c->len[k - 1];
	}
	c->name[lo] = e;
	c->len[lo] = n;
	c->n++;
	return true;
}

int
cache_vary_key(const char *vary, size_t vary_len,
    const struct cache_field *f, size_t n, char *out, size_t outsz)
{
	struct vary_ctx c;
	size_t k, i, o = 0, s, e, need, j;
	bool firstval;

	c.n = 0;
	c.bad = false;
	if (vary == NULL)
		vary_len = 0;
	list_walk(vary, vary_len, vary_cb, &c);
	if (c.bad)
		return -1;
	if (outsz > INT_MAX)
		outsz = INT_MAX;	/* the length must fit the return type */

	/* Writes go through the bound check first; one byte is kept for
	 * the terminating NUL. */
	for (k = 0; k < c.n; k++) {
		need = c.len[k] + 2;
		if (need >= outsz - o)
			return -1;
		for (j = 0; j < c.len[k]; j++)
			out[o++] = (char)lower((unsigned char)c.name[k][j]);
		out[o++] = ':';
		firstval = true;
		for (i = 0; i < n; i++) {
			if (name_cmp(f[i].name, f[i].nlen, c.name[k],
			    c.len[k]) != 0)
				continue;
			s = skip_ows(f[i].value, f[i].vlen, 0);
			e = f[i].vlen;
			while (e > s && is_ows(f[i].value[e - 1]))
				e--;
			need = (e - s) + (firstval ? 0 : 1) + 1;
			if (need >= outsz - o)
				return -1;
			if (!firstval)
				out[o++] = ',';
			memcpy(out + o, f[i].value + s, e - s);
			o += e - s;
			firstval = false;
		}
		out[o++] = '\n';
	}
	if (outsz == 0)
		return -1;
	out[o] = '\0';
	return (int)o;
}
