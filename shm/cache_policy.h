/*
 * cache_policy.h - RFC 9111 policy for a shared cache, as pure functions.
 *
 * Nothing here reads the clock, allocates, logs or does I/O (STYLE 8, 10):
 * callers pass `now` (seconds since the epoch, wall clock) and the header
 * fields of a message as an array of name/value slices.  The worker turns
 * its parsed messages into cache_field arrays, asks these functions what
 * to do, and keeps the answer (struct cache_meta) next to the stored
 * object in shared memory.
 *
 * Policy choices (HOSTILE.md, "cache poisoning"):
 *  - invalid or conflicting freshness information makes a response stale
 *    (lifetime 0), never fresher: a broken Expires is "already expired";
 *  - responses with Set-Cookie, Vary: *, or a request with Authorization
 *    (unless public / s-maxage / must-revalidate) are not stored;
 *  - several ranges, or a range that cannot be parsed, are ignored (the
 *    whole object is served, 200), so Range can never cost more than one
 *    copy of the object.
 */
#ifndef SLUICE_CACHE_POLICY_H
#define SLUICE_CACHE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One header field; name without the colon, value trimmed of OWS. */
struct cache_field {
	const char *name;
	size_t nlen;
	const char *value;
	size_t vlen;
};

/* Cache-Control directives (request or response), all fields merged. */
enum {
	CC_NO_STORE		= 1u << 0,
	CC_NO_CACHE		= 1u << 1,	/* also no-cache="field" */
	CC_PRIVATE		= 1u << 2,	/* also private="field" */
	CC_PUBLIC		= 1u << 3,
	CC_MUST_REVALIDATE	= 1u << 4,
	CC_PROXY_REVALIDATE	= 1u << 5,
	CC_ONLY_IF_CACHED	= 1u << 6,
	CC_MAX_AGE		= 1u << 7,	/* the value fields are valid when set */
	CC_S_MAXAGE		= 1u << 8,
	CC_MAX_STALE		= 1u << 9,	/* max_stale < 0: any staleness */
	CC_MIN_FRESH		= 1u << 10,
	CC_SWR			= 1u << 11,	/* stale-while-revalidate */
	CC_SIE			= 1u << 12,	/* stale-if-error */
	CC_INVALID		= 1u << 13,	/* a freshness directive was malformed
						   or repeated with another value */
};

struct cache_cc {
	unsigned flags;
	int64_t max_age, s_maxage, max_stale, min_fresh, swr, sie;	/* seconds */
};

/* Merge one Cache-Control field value into cc (call once per field). */
void cache_cc_parse(struct cache_cc *cc, const char *v, size_t len);

/* HTTP-date (IMF-fixdate, RFC 850, asctime): seconds since the epoch, or
 * -1 when the value is not a valid date (reads at most len bytes). */
int64_t cache_http_date(const char *v, size_t len);
/* IMF-fixdate of t into out (30 bytes incl. NUL); returns 29. */
int cache_http_date_format(int64_t t, char out[30]);

/* What the cache needs from a request head. */
struct cache_req {
	struct cache_cc cc;
	bool pragma_no_cache;		/* Pragma: no-cache and no Cache-Control */
	bool authorization;
	const char *inm; size_t inm_len;	/* If-None-Match, NULL if absent */
	int64_t ims;			/* If-Modified-Since, -1 absent/invalid */
	const char *range; size_t range_len;	/* Range, NULL if absent */
	const char *if_range; size_t if_range_len;
};
void cache_req_parse(struct cache_req *q, const struct cache_field *f, size_t n);

/* What the cache needs from a response head. */
struct cache_resp {
	int status;
	struct cache_cc cc;
	int64_t date;			/* -1 absent or invalid */
	int64_t expires;		/* -1 absent; 0 invalid (already expired) */
	int64_t last_modified;		/* -1 absent or invalid */
	int64_t age;			/* Age value, 0 when absent or invalid */
	const char *etag; size_t etag_len;	/* NULL if absent */
	const char *vary; size_t vary_len;	/* first Vary value, NULL if absent */
	unsigned nvary;			/* number of Vary fields */
	bool vary_star;
	bool set_cookie;
	bool content_range;		/* has Content-Range */
};
void cache_resp_parse(struct cache_resp *r, int status,
    const struct cache_field *f, size_t n);

/* Why a response is not stored (0 = store it).  Names for logs and the
 * Cache-Status "detail" parameter come from cache_nostore_name(). */
enum cache_nostore {
	NOSTORE_OK = 0,
	NOSTORE_METHOD,		/* not a GET */
	NOSTORE_STATUS,		/* status not understood / not cacheable */
	NOSTORE_NO_STORE,	/* no-store in request or response */
	NOSTORE_PRIVATE,
	NOSTORE_AUTH,		/* request had Authorization, no public etc. */
	NOSTORE_SET_COOKIE,
	NOSTORE_VARY_STAR,
	NOSTORE_NO_FRESHNESS,	/* no explicit or heuristic freshness and no validator */
	NOSTORE_PARTIAL,	/* 206 or Content-Range */
};
enum cache_nostore cache_storable(bool is_get, const struct cache_req *q,
    const struct cache_resp *r);
const char *cache_nostore_name(enum cache_nostore why);

/* Freshness data kept with a stored response (RFC 9111 4.2). */
enum {
	META_MUST_REVALIDATE	= 1u << 0,	/* must-/proxy-revalidate, s-maxage */
	META_NO_CACHE		= 1u << 1,	/* validate before every use */
	META_HEURISTIC		= 1u << 2,	/* lifetime is heuristic */
};
struct cache_meta {
	int64_t request_time, response_time;	/* when we sent / got the head */
	int64_t date;			/* Date value (response_time if absent) */
	int64_t age_value;		/* Age value received */
	int64_t lifetime;		/* freshness lifetime, seconds */
	int64_t last_modified;		/* -1 absent */
	int64_t swr, sie;		/* stale-while-revalidate / -if-error, -1 none */
	uint32_t flags;
};

/* Freshness lifetime for a shared cache: s-maxage, max-age, Expires -
 * Date, else 10% of (Date - Last-Modified) capped at heuristic_max for
 * heuristically cacheable statuses; 0 when invalid. */
int64_t cache_lifetime(const struct cache_resp *r, int64_t heuristic_max);
/* Fill m from a response received at response_time for a request sent
 * at request_time. */
void cache_meta_init(struct cache_meta *m, const struct cache_resp *r,
    int64_t request_time, int64_t response_time, int64_t heuristic_max);
/* Merge a 304's freshness data into m (RFC 9111 4.3.4). */
void cache_meta_update(struct cache_meta *m, const struct cache_resp *r304,
    int64_t request_time, int64_t response_time, int64_t heuristic_max);
/* current_age (RFC 9111 4.2.3); never negative, even when the clock went
 * back (F20). */
int64_t cache_age(const struct cache_meta *m, int64_t now);

/* May a stored response answer this request now? */
enum cache_use {
	USE_FRESH,		/* serve it */
	USE_STALE_SWR,		/* serve it stale, revalidate in the background */
	USE_REVALIDATE,		/* send a conditional request first */
};
enum cache_use cache_usable(const struct cache_meta *m,
    const struct cache_req *q, int64_t now);
/* After an origin error (5xx or no answer): may the stale entry be
 * served instead (stale-if-error, from the response or the request)? */
bool cache_stale_if_error(const struct cache_meta *m,
    const struct cache_req *q, int64_t now);

/* A client conditional against a stored response: true when the answer
 * is 304 (If-None-Match weak comparison with etag; else
 * If-Modified-Since against last_modified, or date when absent). */
bool cache_not_modified(const struct cache_req *q, const char *etag,
    size_t etag_len, int64_t last_modified, int64_t date);

/* Range for a stored object of `size` bytes (single byte range only). */
enum cache_range {
	RANGE_NONE,		/* absent, ignored (several ranges, bad syntax,
				   If-Range mismatch): serve 200 */
	RANGE_OK,		/* serve 206 with *first..*last */
	RANGE_UNSATISFIABLE,	/* 416 */
};
enum cache_range cache_range(const struct cache_req *q, uint64_t size,
    const char *etag, size_t etag_len, int64_t last_modified,
    uint64_t *first, uint64_t *last);

/* Vary: the canonical form of the request's values for the names listed
 * in the Vary value(s) `vary`: writes "name:value\n" per name (names
 * lower-cased and sorted, values of repeated fields joined with ","
 * and OWS trimmed) into out.  Returns the length, or -1 when out is too
 * small, the list is malformed, or it holds "*". */
int cache_vary_key(const char *vary, size_t vary_len,
    const struct cache_field *f, size_t n, char *out, size_t outsz);

#endif
