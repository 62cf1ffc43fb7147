/*
 * cache_serve.c - the worker side of the shared cache (RFC 9111 for a
 * shared cache): keys, lookup, what to store, invalidation, PURGE.
 *
 * What: conn.c calls in at fixed points: after routing (lookup), while
 * building the origin request (conditionals), and at the origin's
 * response head (store or not).  Moving the bytes of the two cache
 * states of its machine, C_CACHE (a client served from an entry) and
 * C_FILL (the origin's body goes into an entry, and the client is served
 * from that entry like any reader), is cache_send.c's.
 *
 * Assumes: the entry format of shm/cache.c, [key][head][body], where the
 * head is what sluice generated from the origin's validated fields: the
 * status line and end-to-end fields, CRLF each, without framing, Age or
 * the final blank line.  Those are added per client when served.
 *
 * Why this way: one serving path for hits, collapsed followers and the
 * filling client, so they cannot disagree on bytes; the fill runs at the
 * origin's speed however slow the leader's own client is; and the
 * policy is the pure shm/cache_policy.c, fed with `now` here.
 *
 * Keys: "G http://host:port/path?query" for GET and HEAD.  A response
 * with Vary turns the URL's entry into a marker whose head is "nonce
 * names"; the variant key is the URL key, the marker's nonce and the
 * request's values for those names.  A new marker has a new nonce, so an
 * invalidated URL never finds its old variants again.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/rand.h>

#include "lib/log.h"
#include "lib/netaddr.h"
#include "worker/cache_serve.h"
#include "worker/conn_int.h"
#include "worker/errpage.h"
#include "worker/mc_tier.h"
#include "worker/upstream.h"

#define HEURISTIC_MAX	86400		/* cap of a Last-Modified heuristic */
#define HFP_TTL		120		/* seconds a hit-for-pass marker lives */
#define VARY_MAX	4096		/* canonical Vary values we key on */
#define SERVE_IOV	64
/* Field arrays hold every field a message may have (limits.header_fields
 * is at most 1000): a field past the array would be invisible to the
 * key and the rules (cache poisoning). */
#define FIELDS_MAX	CACHE_SERVE_FIELDS_MAX
#define FILL_BUF	65536

/* Wall-clock seconds of this loop iteration (read once per iteration). */
int64_t
cache_serve_now(const struct conn *c)
{
	return (int64_t)(ev_wall_ms(c->w->loop) / 1000);
}

void
cache_serve_stat(struct conn *c, enum shm_stat_id id, uint64_t n)
{
	shm_stats_add(c->w->stats, id, n);
}

/* Decimal digits of v into dst (no NUL); returns the count. */
size_t
cache_serve_fmt_u64(char *dst, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	for (size_t i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	return n;
}

/* Append "Name: <v>\r\n" (name includes ": "); the caller reserved room. */
void
cache_serve_num_field(struct buf *b, const char *name, size_t nlen, uint64_t v)
{
	char line[64];
	size_t n = nlen;

	memcpy(line, name, nlen);
	n += cache_serve_fmt_u64(line + n, v);
	line[n++] = '\r';
	line[n++] = '\n';
	buf_append(b, line, n);
}

/* The request's fields as cache_field slices (n <= cap). */
static size_t
fields_of(const char *base, const struct http_field *f, unsigned nf,
    struct cache_field *out, size_t cap)
{
	size_t n = 0;

	for (unsigned i = 0; i < nf && n < cap; i++) {
		if (f[i].flags & (HF_HOP | HF_NOMINATED))
			continue;
		out[n].name = base + f[i].name_off;
		out[n].nlen = f[i].name_len;
		out[n].value = base + f[i].value_off;
		out[n].vlen = f[i].value_len;
		n++;
	}
	return n;
}

/* The stored head's fields (lines "Name: value" we wrote ourselves). */
size_t
cache_serve_stored_fields(const char *h, size_t len, struct cache_field *out, size_t cap,
    int *status)
{
	const char *p = h, *end = h + len, *eol;
	size_t n = 0;

	*status = 0;
	if ((eol = memmem(p, len, "\r\n", 2)) == NULL)
		return 0;
	if (len > 12)
		*status = atoi(h + 9);
	p = eol + 2;
	while (p < end && n < cap && (eol = memmem(p, (size_t)(end - p), "\r\n", 2))) {
		const char *colon = memchr(p, ':', (size_t)(eol - p));

		if (colon != NULL) {
			const char *v = colon + 1;

			while (v < eol && *v == ' ')
				v++;
			out[n].name = p;
			out[n].nlen = (size_t)(colon - p);
			out[n].value = v;
			out[n].vlen = (size_t)(eol - v);
			n++;
		}
		p = eol + 2;
	}
	return n;
}

const struct cache_field *
cache_serve_field_find(const struct cache_field *f, size_t n, const char *name)
{
	size_t l = strlen(name);

	for (size_t i = 0; i < n; i++)
		if (f[i].nlen == l && strncasecmp(f[i].name, name, l) == 0)
			return &f[i];
	return NULL;
}

/* ---- keys ---------------------------------------------------------------- */

/* "G http://host:port/path": scheme and host are lower case already
 * (http_url.c); the port is always written, so :80 and none are one. */
static int
key_build(struct conn *c)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	const char *path = r->url.path;
	size_t plen = r->url.path_len, hlen = strlen(r->url.host), n = 0;
	char port[8], *k;
	size_t portlen;

	portlen = cache_serve_fmt_u64(port, (uint64_t)r->port);
	if ((k = cs->key = malloc(hlen + plen + portlen + 32)) == NULL)
		return -1;
	memcpy(k, "G http://", 9);
	n = 9;
	if (r->url.host_is_ipv6)
		k[n++] = '[';
	memcpy(k + n, r->url.host, hlen);
	n += hlen;
	if (r->url.host_is_ipv6)
		k[n++] = ']';
	k[n++] = ':';
	memcpy(k + n, port, portlen);
	n += portlen;
	if (plen == 0 || path[0] == '?')
		k[n++] = '/';
	memcpy(k + n, path, plen);
	n += plen;
	cs->key_len = cs->primary_len = n;
	return 0;
}

/* Turn cs->key into the variant key for a marker's head "nonce names". */
static int
key_variant(struct conn *c, const char *marker, size_t mlen)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	struct cache_field f[FIELDS_MAX];
	const char *sp = memchr(marker, ' ', mlen);
	size_t nf = fields_of(r->hdr, r->fields, r->msg.nfields, f, FIELDS_MAX);
	char *p;
	int n;

	if (sp == NULL || (size_t)(sp - marker) > 32)
		return -1;
	/* Room for the variant part, once per request. */
	if ((p = realloc(cs->key, cs->primary_len + VARY_MAX + 64)) == NULL)
		return -1;
	cs->key = p;
	p = cs->key + cs->primary_len;
	*p++ = '\n';
	memcpy(p, marker, (size_t)(sp - marker));
	p += sp - marker;
	*p++ = '\n';
	n = cache_vary_key(sp + 1, mlen - (size_t)(sp - marker) - 1, f, nf, p,
	    VARY_MAX);
	if (n < 0)
		return -1;
	cs->key_len = (size_t)(p - cs->key) + (size_t)n;
	return 0;
}

/* ---- lookup --------------------------------------------------------------- */

void
cache_serve_set_status(struct creq *cs, const char *s)
{
	snprintf(cs->status, sizeof(cs->status), "%s", s);
}

void
cache_serve_req_fields(struct conn *c, struct cache_req *q)
{
	struct req *r = c->req;
	struct cache_field f[FIELDS_MAX];
	size_t nf = fields_of(r->hdr, r->fields, r->msg.nfields, f, FIELDS_MAX);

	cache_req_parse(q, f, nf);
}


bool
cache_serve_lookup(struct conn *c)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	struct cache *cache = c->w->cache;
	struct cache_req q;
	bool get = r->msg.method == M_GET, head = r->msg.method == M_HEAD;
	int rv;

	if (cache == NULL)
		return false;
	if (!get && !head) {
		if (r->msg.method != M_CONNECT && !(r->msg.flags & MF_UPGRADE_WS))
			cache_serve_set_status(cs, "fwd=method");
		return false;
	}
	if (r->is_connect || (r->msg.flags & MF_UPGRADE_WS))
		return false;
	if (r->msg.body != BODY_NONE) {
		/* A GET with a body is not cached (HOSTILE cache poisoning). */
		cache_serve_set_status(cs, "fwd=request");
		cs->mode = CS_PASS;
		return false;
	}
	if (key_build(c) < 0) {
		cs->mode = CS_PASS;
		return false;
	}
	cache_serve_req_fields(c, &cs->q);
	q = cs->q;
	cs->req_time = cache_serve_now(c);
	for (int hop = 0; hop < 3; hop++) {
		struct cache_view v;
		bool create = get && !(q.cc.flags & (CC_NO_STORE | CC_ONLY_IF_CACHED));

		rv = cache_get(cache, cs->key, cs->key_len, create, &cs->read);
		if (rv == CACHE_HFP) {
			/* Recently uncacheable: go straight to the origin, no
			 * fill and no waiting behind another request. */
			if ((cs->req_time >= cs->read.hfp_from &&
			    cs->req_time < cs->read.hfp_until) || hop == 2) {
				memset(&cs->read, 0, sizeof(cs->read));
				cs->mode = CS_PASS;
				if (q.cc.flags & CC_ONLY_IF_CACHED) {
					/* RFC 9111 5.2.1.7: a marker stores nothing. */
					cache_serve_set_status(cs, "fwd=miss; detail=only-if-cached");
					conn_error(c, 504, "The response is not in the cache (only-if-cached).");
					return true;
				}
				cs->hfp = true;
				cache_serve_set_status(cs, "fwd=uri-miss; detail=hit-for-pass");
				cache_serve_stat(c, STAT_cache_misses, 1);
				return false;
			}
			memset(&cs->read, 0, sizeof(cs->read));
			cache_invalidate(cache, cs->key, cs->key_len);
			continue;
		}
		if (rv == CACHE_CREATED) {
			cs->fill = cs->read;
			memset(&cs->read, 0, sizeof(cs->read));
			cs->mode = CS_FILL;
			cache_serve_set_status(cs, hop ? "fwd=vary-miss" : "fwd=uri-miss");
			cs->code = "TCP_MISS";
			/* Not in shm: memcached next (the miss is counted
			 * when it goes to the origin after all). */
			if (mc_tier_lookup(c))
				return true;
			cache_serve_stat(c, STAT_cache_misses, 1);
			return false;
		}
		if (rv != CACHE_FOUND && (q.cc.flags & CC_ONLY_IF_CACHED)) {
			/* RFC 9111 5.2.1.7: nothing stored, so 504. */
			cs->mode = CS_PASS;
			cache_serve_set_status(cs, "fwd=miss; detail=only-if-cached");
			conn_error(c, 504, "The response is not in the cache (only-if-cached).");
			return true;
		}
		if (rv != CACHE_FOUND) {
			/* No entry and none made (HEAD, no-store, no room). */
			cs->mode = CS_PASS;
			cache_serve_set_status(cs, hop ? "fwd=vary-miss" : "fwd=uri-miss");
			cache_serve_stat(c, STAT_cache_misses, 1);
			return false;
		}
		cache_view(cache, &cs->read, &v);
		if ((v.flags & CF_VARY) && v.state == CE_COMPLETE) {
			char m[VARY_MAX];

			if (v.hdr_len >= sizeof(m) ||
			    cache_copy(cache, &cs->read, v.key_len, m, v.hdr_len) != 0 ||
			    (cs->key_len = cs->primary_len,
			    key_variant(c, m, v.hdr_len)) < 0) {
				cache_release(cache, &cs->read);
				cs->key_len = cs->primary_len;
				cs->mode = CS_PASS;
				cache_serve_set_status(cs, "fwd=vary-miss");
				return false;
			}
			cache_release(cache, &cs->read);
			continue;
		}
		if (v.state == CE_FILLING) {
			/* Join the fill: stream it as it grows. */
			cs->mode = CS_READ;
			cs->collapsed = true;
			cache_serve_set_status(cs, "fwd=uri-miss; collapsed");
			cache_serve_stat(c, STAT_cache_collapsed, 1);
			cache_send_begin(c, "TCP_CF_MISS");
			return true;
		}
		switch (cache_usable(&v.meta, &q, cs->req_time)) {
		case USE_FRESH:
			cs->mode = CS_READ;
			{
				int64_t ttl = v.meta.lifetime - cache_age(&v.meta, cs->req_time);

				memcpy(cs->status, "hit; ttl=", 9);
				cs->status[9 + cache_serve_fmt_u64(cs->status + 9,
				    (uint64_t)(ttl > 0 ? ttl : 0))] = '\0';
				if (cs->mc_hit)
					strcat(cs->status, "; detail=memcached");
			}
			cache_serve_stat(c, STAT_cache_hits, 1);
			cache_send_begin(c, cs->mc_hit ? "TCP_MC_HIT" : "TCP_HIT");
			return true;
		case USE_STALE_SWR:
			/* Serve it stale; one background request refreshes it. */
			if (!c->bg && !head && cache_mark_revalidating(cache, &cs->read) &&
			    conn_background(c) == 0) {
				cs->mode = CS_READ;
				cache_serve_set_status(cs, "hit; detail=stale-while-revalidate");
				cache_serve_stat(c, STAT_cache_stale_served, 1);
				cache_send_begin(c, "TCP_STALE_HIT");
				return true;
			}
			if (!c->bg) {
				/* Someone else refreshes it (or a HEAD, which
				 * refreshes nothing): still serve it stale. */
				cs->mode = CS_READ;
				cache_serve_set_status(cs, "hit; detail=stale-while-revalidate");
				cache_serve_stat(c, STAT_cache_stale_served, 1);
				cache_send_begin(c, "TCP_STALE_HIT");
				return true;
			}
			/* The background request itself revalidates. */
			__attribute__((fallthrough));
		case USE_REVALIDATE:
			if ((q.cc.flags & CC_ONLY_IF_CACHED) &&
			    !(v.meta.flags & (META_MUST_REVALIDATE | META_NO_CACHE))) {
				/* The client wants no fetch and the entry allows
				 * being served stale. */
				cs->mode = CS_READ;
				cache_serve_set_status(cs, "hit; detail=stale");
				cache_serve_stat(c, STAT_cache_stale_served, 1);
				cache_send_begin(c, "TCP_STALE_HIT");
				return true;
			}
			if (q.cc.flags & CC_ONLY_IF_CACHED) {
				cache_release(cache, &cs->read);
				cs->mode = CS_PASS;
				cache_serve_set_status(cs, "fwd=stale; detail=only-if-cached");
				conn_error(c, 504, "The cached response is stale (only-if-cached).");
				return true;
			}
			if (head) {
				/* A HEAD cannot refresh the entry: forward it. */
				cache_release(cache, &cs->read);
				cs->mode = CS_PASS;
				cache_serve_set_status(cs, "fwd=stale");
				return false;
			}
			cs->mode = CS_REVAL;
			cache_serve_set_status(cs, "fwd=stale");
			return false;
		}
	}
	cs->mode = CS_PASS;
	return false;
}

/* ---- the origin request ------------------------------------------------------ */

bool
cache_serve_skip_field(const struct conn *c, int id)
{
	const struct creq *cs = &c->req->cs;

	if (cs->mode != CS_FILL && cs->mode != CS_REVAL)
		return false;
	/* We fetch the whole object and answer these ourselves. */
	return id == H_IF_NONE_MATCH || id == H_IF_MODIFIED_SINCE ||
	    id == H_RANGE || id == H_IF_RANGE;
}

int
cache_serve_cond_fields(struct conn *c, struct buf *out)
{
	struct creq *cs = &c->req->cs;
	struct cache_view v;
	struct cache_field f[64];
	const struct cache_field *etag, *lm;
	char *h;
	size_t n;
	int st, rv = 0;

	if (cs->mode != CS_REVAL || cs->read.idx == 0)
		return 0;
	cache_view(c->w->cache, &cs->read, &v);
	if ((h = malloc(v.hdr_len + 1)) == NULL)
		return 0;
	if (cache_copy(c->w->cache, &cs->read, v.key_len, h, v.hdr_len) == 0) {
		n = cache_serve_stored_fields(h, v.hdr_len, f, 64, &st);
		if ((etag = cache_serve_field_find(f, n, "etag")) != NULL &&
		    buf_printf(out, "If-None-Match: %.*s\r\n", (int)etag->vlen,
		    etag->value) < 0)
			rv = -1;
		if ((lm = cache_serve_field_find(f, n, "last-modified")) != NULL &&
		    buf_printf(out, "If-Modified-Since: %.*s\r\n", (int)lm->vlen,
		    lm->value) < 0)
			rv = -1;
	}
	free(h);
	return rv;
}

/* ---- the origin's response ------------------------------------------------ */

/* The head we store: status line and end-to-end fields, no framing. */
static int
stored_head(struct conn *c, const char *rbuf, struct buf *out)
{
	struct req *r = c->req;
	const struct http_msg *m = &r->rmsg;

	if (buf_printf(out, "HTTP/1.1 %d %.*s\r\n", m->status,
	    (int)m->reason_len, rbuf + m->reason_off) < 0)
		return -1;
	for (unsigned i = 0; i < m->nfields; i++) {
		const struct http_field *f = &r->rfields[i];

		if (f->flags & (HF_HOP | HF_NOMINATED))
			continue;
		if (f->id == H_CONTENT_LENGTH || f->id == H_TRANSFER_ENCODING ||
		    f->id == H_AGE)
			continue;
		if (buf_printf(out, "%.*s: %.*s\r\n", (int)f->name_len,
		    rbuf + f->name_off, (int)f->value_len, rbuf + f->value_off) < 0)
			return -1;
	}
	return 0;
}

/* Give up the fill before anything of the body went in. */
static void
fill_drop(struct conn *c, unsigned flags)
{
	struct creq *cs = &c->req->cs;

	if (cs->fill.idx != 0) {
		cache_abort(c->w->cache, &cs->fill, flags);
		cache_release(c->w->cache, &cs->fill);
	}
}

/* Turn our fill into a hit-for-pass marker (no head, no body). */
static void
fill_hfp(struct conn *c, int64_t now)
{
	struct creq *cs = &c->req->cs;
	struct cache *cache = c->w->cache;
	struct cache_meta meta;

	if (cs->fill.idx == 0)
		return;
	memset(&meta, 0, sizeof(meta));
	meta.response_time = meta.request_time = meta.date = now;
	meta.lifetime = HFP_TTL;
	meta.swr = meta.sie = meta.last_modified = -1;
	cache_set_head(cache, &cs->fill, 0, &meta, 0, CF_HFP);
	if (cache_commit(cache, &cs->fill) != 0)
		cache_abort(cache, &cs->fill, CF_PASS);
	cache_release(cache, &cs->fill);
}

/*
 * A cacheable response too large for shm, with its length known: when
 * the memcached tier takes a copy of the body as it is forwarded, give
 * the fill up (no hit-for-pass marker: the next miss asks memcached)
 * and pass the response on.  Not for a response with Vary: its variant
 * keys need a marker in shm.
 */
static bool
tee_big(struct conn *c, const char *rbuf, const struct cache_resp *rp,
    int64_t now)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	struct cache_meta meta;
	struct buf hb;
	bool ok;

	if (c->w->mc == NULL || rp->vary != NULL || cs->key_len != cs->primary_len)
		return false;
	memset(&hb, 0, sizeof(hb));
	cache_meta_init(&meta, rp, cs->req_time, now, HEURISTIC_MAX);
	ok = buf_reserve(&hb, r->rmsg.header_len + 256) == 0 &&
	    stored_head(c, rbuf, &hb) == 0 &&
	    mc_tier_tee_begin(c, buf_rptr(&hb), buf_len(&hb), &meta,
	    r->rmsg.content_length);
	buf_free(&hb);
	if (!ok)
		return false;
	fill_drop(c, CF_PASS);
	cs->mode = CS_PASS;
	cache_serve_set_status(cs, "fwd=uri-miss; detail=memcached-store");
	cache_serve_stat(c, STAT_cache_uncacheable, 1);
	return true;
}

void
cache_serve_pass_marker(struct conn *c)
{
	struct creq *cs = &c->req->cs;
	struct cache *cache = c->w->cache;
	struct cache_ref ref;
	int rv;

	if (cache == NULL || cs->key == NULL || cs->fill.idx != 0)
		return;
	rv = cache_get(cache, cs->key, cs->primary_len, true, &ref);
	if (rv == CACHE_FOUND)
		cache_release(cache, &ref);	/* someone's newer entry: keep it */
	else if (rv == CACHE_CREATED) {
		cs->fill = ref;
		fill_hfp(c, cache_serve_now(c));	/* releases cs->fill */
	}
}

/* Make the URL's entry a Vary marker and point cs->fill at the variant. */
static int
fill_vary(struct conn *c, const struct cache_resp *rp)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	struct cache *cache = c->w->cache;
	char m[VARY_MAX];
	uint64_t nonce;
	struct cache_meta meta;
	int n;

	if (cs->key_len != cs->primary_len || rp->nvary != 1)
		return -1;	/* a variant that varies again, or split Vary */
	if (RAND_bytes((unsigned char *)&nonce, sizeof(nonce)) != 1)
		return -1;
	n = snprintf(m, sizeof(m), "%016llx %.*s", (unsigned long long)nonce,
	    (int)rp->vary_len, rp->vary);
	if (n < 0 || (size_t)n >= sizeof(m) || key_variant(c, m, (size_t)n) < 0)
		return -1;
	memset(&meta, 0, sizeof(meta));
	meta.response_time = meta.date = cache_serve_now(c);
	meta.lifetime = INT32_MAX;
	meta.swr = meta.sie = -1;
	meta.last_modified = -1;
	if (cache_append(cache, &cs->fill, m, (size_t)n) != 0)
		return -1;
	cache_set_head(cache, &cs->fill, (uint32_t)n, &meta, 0, CF_VARY);
	if (cache_commit(cache, &cs->fill) != 0)
		return -1;
	mc_tier_stored(c, &cs->fill);
	cache_release(cache, &cs->fill);
	/* The variant: replace whatever an older marker left under its key. */
	if (cache_create_detached(cache, cs->key, cs->key_len, &cs->fill) != 0)
		return -1;
	return 0;
}

/* Does a variant's response vary on exactly the names its key was made
 * from (the marker's)?  The key's lines after the nonce are "name:value". */
static bool
vary_names_match(const struct creq *cs, const struct cache_resp *rp)
{
	char canon[VARY_MAX];
	const char *p = cs->key + cs->primary_len + 1, *end = cs->key + cs->key_len;
	const char *q = canon, *qe;
	int n;

	if (rp->nvary != 1 ||
	    (n = cache_vary_key(rp->vary, rp->vary_len, NULL, 0, canon, sizeof(canon))) < 0)
		return false;
	qe = canon + n;
	if ((p = memchr(p, '\n', (size_t)(end - p))) == NULL)
		return false;
	p++;
	while (p < end) {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len;

		if (colon == NULL || nl == NULL || colon > nl)
			return false;
		len = (size_t)(colon - p) + 1;
		if ((size_t)(qe - q) < len + 1 || memcmp(q, p, len) != 0 || q[len] != '\n')
			return false;
		q += len + 1;
		p = nl + 1;
	}
	return q == qe;
}

/* Is the stored field name one the 304 replaces?  (Content-Length and
 * framing never are: they describe the stored body.) */
static bool
in_304(const struct http_msg *m, const struct http_field *rf,
    const char *rbuf, const char *name, size_t nlen)
{
	for (unsigned i = 0; i < m->nfields; i++) {
		const struct http_field *f = &rf[i];

		if ((f->flags & (HF_HOP | HF_NOMINATED)) || f->id == H_CONTENT_LENGTH ||
		    f->id == H_TRANSFER_ENCODING || f->id == H_AGE)
			continue;
		if (f->name_len == nlen && strncasecmp(rbuf + f->name_off, name, nlen) == 0)
			return true;
	}
	return false;
}

/*
 * A 304 for a stale entry: write a new entry whose head is the stored
 * one with the 304's fields in place of their stored namesakes, and whose
 * body is the stored body, and let it replace the old one.  The client
 * is then served from the new entry.  Nonzero when that could not be
 * done (no room, say): the caller freshens the metadata only.
 */
static int
reval_rewrite(struct conn *c, const char *rbuf, const struct cache_view *v,
    const struct cache_meta *meta)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	struct cache *cache = c->w->cache;
	const struct http_msg *m = &r->rmsg;
	struct cache_field f[FIELDS_MAX];
	struct cache_ref nw;
	struct buf hb;
	char *h, *eol;
	size_t nf;
	int st;
	uint64_t off, end;

	if (v->state != CE_COMPLETE || (h = malloc(v->hdr_len + 1)) == NULL)
		return -1;
	memset(&hb, 0, sizeof(hb));
	if (cache_copy(cache, &cs->read, v->key_len, h, v->hdr_len) != 0 ||
	    buf_reserve(&hb, v->hdr_len + m->header_len + 64) < 0) {
		free(h);
		buf_free(&hb);
		return -1;
	}
	nf = cache_serve_stored_fields(h, v->hdr_len, f, FIELDS_MAX, &st);
	if ((eol = memmem(h, v->hdr_len, "\r\n", 2)) == NULL)
		goto fail;
	/* the stored status line, then the fields the 304 does not replace */
	buf_append(&hb, h, (size_t)(eol - h) + 2);
	for (size_t i = 0; i < nf; i++) {
		if (in_304(m, r->rfields, rbuf, f[i].name, f[i].nlen))
			continue;
		buf_append(&hb, f[i].name, f[i].nlen);
		buf_append(&hb, ": ", 2);
		buf_append(&hb, f[i].value, f[i].vlen);
		buf_append(&hb, "\r\n", 2);
	}
	for (unsigned i = 0; i < m->nfields; i++) {
		const struct http_field *rf = &r->rfields[i];

		if ((rf->flags & (HF_HOP | HF_NOMINATED)) || rf->id == H_CONTENT_LENGTH ||
		    rf->id == H_TRANSFER_ENCODING || rf->id == H_AGE)
			continue;
		buf_append(&hb, rbuf + rf->name_off, rf->name_len);
		buf_append(&hb, ": ", 2);
		buf_append(&hb, rbuf + rf->value_off, rf->value_len);
		if (buf_append(&hb, "\r\n", 2) < 0)
			goto fail;
	}
	free(h);
	h = NULL;
	if (cache_create_detached(cache, cs->key, cs->key_len, &nw) != 0)
		goto fail;
	nw.inval_gen = cs->read.inval_gen;
	nw.gen_check = true;
	if (cache_append(cache, &nw, buf_rptr(&hb), buf_len(&hb)) != 0)
		goto fail_entry;
	cache_set_head(cache, &nw, (uint32_t)buf_len(&hb), meta, v->body_len, 0);
	/* the body, block by block from the old entry into the new one */
	for (off = v->key_len + v->hdr_len, end = v->len; off < end;) {
		struct iovec iov[16];
		int k = cache_iov(cache, &cs->read, off, 1u << 20, iov, 16);

		if (k <= 0)
			goto fail_entry;
		for (int i = 0; i < k; i++) {
			if (cache_append(cache, &nw, iov[i].iov_base, iov[i].iov_len) != 0)
				goto fail_entry;
			off += iov[i].iov_len;
		}
	}
	if (cache_commit(cache, &nw) != 0)
		goto fail_entry;
	mc_tier_stored(c, &nw);
	/* Serve the new entry; the writer pin keeps it for us. */
	cache_release(cache, &cs->read);
	cs->fill = nw;
	cs->read = nw;
	cs->read.writer = false;
	cs->read.rec = UINT32_MAX;
	buf_free(&hb);
	return 0;
fail_entry:
	cache_abort(cache, &nw, CF_ABORTED);
	cache_release(cache, &nw);
fail:
	free(h);
	buf_free(&hb);
	return -1;
}

bool
cache_serve_response(struct conn *c, const char *rbuf)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	struct cache *cache = c->w->cache;
	const struct http_msg *m = &r->rmsg;
	struct cache_field f[FIELDS_MAX];
	struct cache_req q;
	struct cache_resp rp;
	struct cache_meta meta;
	enum cache_nostore why;
	struct buf hb;
	size_t nf;
	int64_t now = cache_serve_now(c);

	if (cs->hfp && m->status >= 200) {
		/* Passed on a hit-for-pass marker: if this answer could be
		 * stored after all, drop the marker so the next miss fills. */
		nf = fields_of(rbuf, r->rfields, m->nfields, f, FIELDS_MAX);
		cache_resp_parse(&rp, m->status, f, nf);
		why = cache_storable(r->msg.method == M_GET, &cs->q, &rp);
		if (why == NOSTORE_OK)
			cache_invalidate(cache, cs->key, cs->key_len);
		else {
			snprintf(cs->status, sizeof(cs->status),
			    "fwd=uri-miss; detail=%s", cache_nostore_name(why));
			cache_serve_stat(c, STAT_cache_uncacheable, 1);
		}
		return false;
	}
	if (cs->mode != CS_FILL && cs->mode != CS_REVAL)
		return false;
	memset(&hb, 0, sizeof(hb));
	nf = fields_of(rbuf, r->rfields, m->nfields, f, FIELDS_MAX);
	cache_resp_parse(&rp, m->status, f, nf);
	cache_serve_req_fields(c, &q);

	if (cs->mode == CS_REVAL && m->status == 304 && cs->read.idx != 0) {
		struct cache_view v;

		/* The origin confirmed the stored entry: its head takes the
		 * 304's fields (RFC 9111 3.2, 4.3.4), and it is served. */
		cache_view(cache, &cs->read, &v);
		meta = v.meta;
		cache_meta_update(&meta, &rp, cs->req_time, now, HEURISTIC_MAX);
		if (reval_rewrite(c, rbuf, &v, &meta) != 0)
			cache_freshen(cache, &cs->read, &meta);	/* fields kept */
		cache_serve_stat(c, STAT_cache_revalidated, 1);
		buf_consume(&c->up->in, m->header_len);
		conn_up_done(c, true);
		cache_serve_set_status(cs, "fwd=stale; fwd-status=304");
		cs->mode = CS_READ;
		cache_send_begin(c, "TCP_REFRESH_UNMODIFIED");
		return true;
	}
	if (cs->mode == CS_REVAL && m->status >= 500 &&
	    cache_serve_origin_error(c, m->status))
		return true;

	why = cache_storable(r->msg.method == M_GET, &q, &rp);
	if (why == NOSTORE_OK && m->body == BODY_LENGTH &&
	    m->content_length > c->w->conf->cache.max_object_size) {
		if (cs->mode == CS_FILL && tee_big(c, rbuf, &rp, now))
			return false;
		why = NOSTORE_NO_FRESHNESS, cache_serve_set_status(cs, "fwd=uri-miss; detail=too-large");
	}
	if (why != NOSTORE_OK) {
		if (cs->status[0] == '\0' || strncmp(cs->status, "fwd=uri-miss; detail", 20) != 0)
			snprintf(cs->status, sizeof(cs->status), "fwd=%s; detail=%s",
			    cs->mode == CS_REVAL ? "stale" : "uri-miss",
			    cache_nostore_name(why));
		/* Waiters fetch for themselves; later requests pass straight
		 * through on a hit-for-pass marker when the reason is the
		 * response's own (not this request's Authorization). */
		if (cs->mode == CS_FILL && why != NOSTORE_AUTH && why != NOSTORE_METHOD)
			fill_hfp(c, now);
		else
			fill_drop(c, CF_PASS);
		if (cs->mode == CS_REVAL && cs->read.idx != 0) {
			/* The new answer must not be shadowed by the old one. */
			cache_release(cache, &cs->read);
			cache_invalidate(cache, cs->key, cs->key_len);
			/* ... nor by a copy in memcached. */
			mc_tier_invalidate(c, cs->key, cs->key_len, false);
		}
		cs->mode = CS_PASS;
		cache_serve_stat(c, STAT_cache_uncacheable, 1);
		return false;
	}
	if (cs->mode == CS_REVAL) {
		/* A new object replaces the stale one when it is complete,
		 * unless the key is invalidated meanwhile. */
		uint32_t gen = cs->read.inval_gen;

		cache_release(cache, &cs->read);
		if (cache_create_detached(cache, cs->key, cs->key_len, &cs->fill) != 0) {
			cs->mode = CS_PASS;
			return false;
		}
		cs->fill.inval_gen = gen;
		cs->fill.gen_check = true;
		cs->code = "TCP_REFRESH_MODIFIED";
	}
	if (rp.vary != NULL && cs->key_len != cs->primary_len &&
	    !vary_names_match(cs, &rp)) {
		/* A variant answered with other Vary names than its key was
		 * made from: its key would not tell its variants apart. */
		fill_drop(c, CF_PASS);
		cache_invalidate(cache, cs->key, cs->primary_len);
		mc_tier_invalidate(c, cs->key, cs->primary_len, false);
		cs->mode = CS_PASS;
		cache_serve_set_status(cs, "fwd=uri-miss; detail=vary");
		cache_serve_stat(c, STAT_cache_uncacheable, 1);
		return false;
	}
	if (rp.vary != NULL && cs->key_len == cs->primary_len &&
	    fill_vary(c, &rp) != 0) {
		fill_drop(c, CF_PASS);
		cs->mode = CS_PASS;
		cache_serve_set_status(cs, "fwd=uri-miss; detail=vary");
		cache_serve_stat(c, STAT_cache_uncacheable, 1);
		return false;
	}

	cache_meta_init(&meta, &rp, cs->req_time, now, HEURISTIC_MAX);
	if (buf_reserve(&hb, m->header_len + 256) < 0 ||
	    stored_head(c, rbuf, &hb) < 0 ||
	    cache_append(cache, &cs->fill, buf_rptr(&hb), buf_len(&hb)) != 0) {
		buf_free(&hb);
		fill_drop(c, CF_PASS);
		cs->mode = CS_PASS;
		cache_serve_stat(c, STAT_cache_uncacheable, 1);
		return false;
	}
	cache_set_head(cache, &cs->fill, (uint32_t)buf_len(&hb), &meta,
	    m->body == BODY_LENGTH ? m->content_length :
	    m->body == BODY_NONE ? 0 : UINT64_MAX, 0);
	buf_free(&hb);
	buf_consume(&c->up->in, m->header_len);
	if (buf_reserve(&cs->cbuf, FILL_BUF) < 0) {
		fill_drop(c, CF_ABORTED);
		cs->mode = CS_PASS;
		conn_error(c, 503, "Out of memory.");
		return true;
	}
	/* We serve our own client from the entry we fill. */
	cs->read = cs->fill;
	cs->read.writer = false;
	cs->read.rec = UINT32_MAX;
	/* "stored" only when the length is known now: a body of unknown
	 * length may yet outgrow max_object_size. */
	snprintf(cs->status, sizeof(cs->status), "fwd=%s%s",
	    cs->key_len != cs->primary_len ? "vary-miss" :
	    cs->code && strcmp(cs->code, "TCP_REFRESH_MODIFIED") == 0 ? "stale" :
	    "uri-miss", m->body == BODY_LENGTH || m->body == BODY_NONE ?
	    "; stored" : "");
	if (cs->code == NULL)
		cs->code = "TCP_MISS";
	cache_send_begin(c, cs->code);
	c->state = C_FILL;
	if (r->rs == RS_DONE)
		cs->fill_done = false;	/* committed in the first fill step */
	return true;
}

bool
cache_serve_origin_error(struct conn *c, int status)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	struct cache_view v;
	struct cache_req q;

	if (cs->mode != CS_REVAL || cs->read.idx == 0 || r->head_sent)
		return false;
	cache_view(c->w->cache, &cs->read, &v);
	cache_serve_req_fields(c, &q);
	if (!cache_stale_if_error(&v.meta, &q, cache_serve_now(c)))
		return false;
	snprintf(cs->status, sizeof(cs->status), "hit; detail=stale-if-error; fwd-status=%d",
	    status);
	cache_serve_stat(c, STAT_cache_stale_served, 1);
	cs->mode = CS_READ;
	conn_up_done(c, false);
	cache_send_begin(c, "TCP_REFRESH_FAIL_OLD");
	return true;
}

/* ---- invalidation, PURGE, fields on forwarded responses -------------------- */

/* Drop the primary key of url (absolute "http://host[:port]/path"). */
static int
invalidate_url(struct conn *c, const char *url, size_t len)
{
	struct http_url u;
	char *key;
	size_t need;
	int n, rv;

	if (http_url_parse_absolute(url, len, &u) != URL_OK)
		return 0;
	need = strlen(u.host) + u.path_len + 32;
	if ((key = malloc(need)) == NULL)
		return 0;
	n = snprintf(key, need, "G http://%s%s%s:%d%s%.*s",
	    u.host_is_ipv6 ? "[" : "", u.host, u.host_is_ipv6 ? "]" : "", u.port,
	    u.path[0] == '?' ? "/" : "", (int)u.path_len, u.path);
	rv = n > 0 && (size_t)n < need ?
	    cache_invalidate(c->w->cache, key, (size_t)n) : 0;
	if (n > 0 && (size_t)n < need)
		mc_tier_invalidate(c, key, (size_t)n, true);
	free(key);
	return rv;
}

void
cache_serve_invalidate(struct conn *c, const char *rbuf)
{
	struct req *r = c->req;
	struct cache *cache = c->w->cache;
	enum http_method m = r->msg.method;
	const struct http_msg *rm = &r->rmsg;

	if (cache == NULL || r->is_connect || rm->status < 200 || rm->status >= 400)
		return;
	if (m != M_POST && m != M_PUT && m != M_DELETE && m != M_PATCH)
		return;
	if (r->cs.key == NULL && key_build(c) < 0)
		return;
	if (cache_invalidate(cache, r->cs.key, r->cs.primary_len))
		cache_serve_stat(c, STAT_cache_invalidated, 1);
	mc_tier_invalidate(c, r->cs.key, r->cs.primary_len, true);
	/* Location and Content-Location of the same origin (RFC 9111 4.4):
	 * the absolute forms only, and only for this request's host:port. */
	for (unsigned i = 0; i < rm->nfields; i++) {
		const struct http_field *f = &r->rfields[i];
		const char *v = rbuf + f->value_off;
		struct http_url u;

		if (f->id != H_LOCATION && f->id != H_CONTENT_LOCATION)
			continue;
		if (http_url_parse_absolute(v, f->value_len, &u) != URL_OK ||
		    strcmp(u.host, r->url.host) != 0 || u.port != r->port)
			continue;
		if (invalidate_url(c, v, f->value_len))
			cache_serve_stat(c, STAT_cache_invalidated, 1);
	}
}

bool
cache_serve_purge(struct conn *c)
{
	struct req *r = c->req;
	const struct http_msg *m = &r->msg;
	const struct sluice_conf *cf = c->w->conf;
	bool allowed = false;
	int found;

	if (m->method != M_OTHER || m->method_len != 5 ||
	    memcmp(r->hdr + m->method_off, "PURGE", 5) != 0)
		return false;
	allowed = netaddr_cidr_match_any(cf->cache.purge, cf->cache.npurge, c->peer);
	if (!allowed) {
		conn_error(c, 403, "PURGE is not allowed from this address.");
		return true;
	}
	if (c->w->cache == NULL || key_build(c) < 0) {
		conn_error(c, 404, "There is no cache.");
		return true;
	}
	found = cache_invalidate(c->w->cache, r->cs.key, r->cs.primary_len);
	if (found)
		cache_serve_stat(c, STAT_cache_invalidated, 1);
	/* With memcached, answered once its copy is deleted too. */
	if (mc_tier_purge(c, r->cs.key, r->cs.primary_len, found ? 200 : 404))
		return true;
	conn_answer(c, found ? 200 : 404, found ? "Purged." : "Not in the cache.");
	return true;
}

int
cache_serve_status_fields(struct conn *c, struct buf *out)
{
	struct creq *cs = &c->req->cs;

	const char *host = c->w->conf->visible_hostname;

	if (c->w->cache == NULL || cs->status[0] == '\0')
		return 0;
	if (buf_append(out, "Cache-Status: sluice; ", 22) < 0 ||
	    buf_append(out, cs->status, strlen(cs->status)) < 0 ||
	    buf_append(out, "\r\nX-Cache: MISS from ", 21) < 0 ||
	    buf_append(out, host, strlen(host)) < 0 ||
	    buf_append(out, "\r\n", 2) < 0)
		return -1;
	return 0;
}

void
cache_serve_free(struct conn *c)
{
	struct creq *cs = &c->req->cs;
	struct cache *cache = c->w->cache;

	conn_cache_wait_remove(c);
	mc_tier_cancel(c);
	mc_tier_release(c);
	cs->mc_tried = 0;
	cs->mc_hit = false;
	if (cache != NULL) {
		if (cs->read.idx != 0 && cs->read.rec != UINT32_MAX)
			cache_release(cache, &cs->read);
		if (cs->fill.idx != 0)
			cache_release(cache, &cs->fill);
	}
	free(cs->key);
	cs->key = NULL;
	buf_free(&cs->cbuf);
}
