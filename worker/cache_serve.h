/*
 * cache_serve.h - the worker's use of the shared cache: lookup, filling
 * an entry from the origin, and serving an entry to a client.  Private
 * to worker/; conn.c calls these at the points of its state machine
 * named below.
 */
#ifndef SLUICE_CACHE_SERVE_H
#define SLUICE_CACHE_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/buf.h"
#include "shm/cache.h"
#include "shm/shm_stats.h"

struct conn;
struct worker;
struct mc_fetch;
struct mc_obj;
struct mc_tee;
struct mc_purge;

enum cs_mode {
	CS_NONE = 0,		/* not a cache request: plain forwarding */
	CS_FILL,		/* miss: we fetch and fill a new entry (leader) */
	CS_READ,		/* serve an entry (hit, or join a fill) */
	CS_REVAL,		/* stale entry: conditional request to the origin */
	CS_PASS,		/* cacheable method, but this one is not stored */
};

/* Per-request cache state (inside struct req). */
struct creq {
	enum cs_mode mode;
	struct cache_ref fill;		/* entry we write (idx 0: none) */
	struct cache_ref read;		/* entry we serve from (idx 0: none) */
	char *key;			/* the key in use (primary or variant) */
	size_t key_len, primary_len;	/* primary: the URL part of key */
	uint64_t off, end;		/* next object offset to send; end of it */
	uint64_t chunk_left;		/* body bytes left in the open chunk */
	uint64_t fill_len;		/* object bytes appended when the fill broke */
	bool chunked;			/* chunk-frame the body for the client */
	bool chunk_open;
	bool head_queued;		/* the client's head is in c->out */
	bool body_none;			/* HEAD, 304: no body */
	bool fill_done;			/* the origin side is finished */
	bool fill_broken;		/* the cache refused more: rest from cbuf */
	bool truncated;			/* the origin cut the body: close at the end */
	bool oversize;			/* over max_object: streamed, not stored */
	bool hfp;			/* passed because of a hit-for-pass marker */
	bool client_gone;		/* the leader's client left: only fill */
	bool collapsed;			/* joined another request's fetch */
	bool done;			/* everything for the client is queued */
	struct buf cbuf;		/* decoded origin body on its way in */
	struct cache_req q;		/* the request's cache fields (at lookup) */
	const char *code;		/* access log code ("TCP_HIT", ...) */
	char status[96];		/* Cache-Status parameters after "sluice" */
	int64_t req_time;		/* wall seconds when the request left */
	struct mc_fetch *mf;		/* memcached lookup in flight (mc_tier.c) */
	unsigned mc_tried;		/* memcached asked: 1 primary key, 2 variant */
	bool mc_hit;			/* the entry came from memcached */
	struct mc_obj *mobj;		/* served from memory (too large for shm) */
	struct mc_tee *tee;		/* forwarded body copied for memcached */
	struct mc_purge *pw;		/* PURGE waiting for memcached's delete */
};

/* After routing: decide hit, join, miss or pass.  Returns true when the
 * request is now served from the cache (state C_CACHE), false when it
 * goes to the origin (with r->cs.mode saying how). */
bool cache_serve_lookup(struct conn *c);
/* proxy_head_request(): leave out this client field when the request
 * fetches for the cache (conditionals and Range are answered by us). */
bool cache_serve_skip_field(const struct conn *c, int id);
/* proxy_head_request(): the conditional fields of a revalidation. */
int cache_serve_cond_fields(struct conn *c, struct buf *out);
/* response_head(): a final response head from the origin.  Returns true
 * when the cache took the response over (state C_FILL or C_CACHE). */
bool cache_serve_response(struct conn *c, const char *rbuf);
/* conn_error(): the origin failed before a head; true when a stale
 * entry is served instead (stale-if-error). */
bool cache_serve_origin_error(struct conn *c, int status);
/* mc_tier.c: a response too large for shm whose copy for memcached
 * was not stored: mark c's URL hit-for-pass (unless it has an entry). */
void cache_serve_pass_marker(struct conn *c);
/* cache_send.c, C_CACHE and C_FILL: move bytes; true on progress. */
bool cache_send_step(struct conn *c);
/* The response head to an unsafe method (rbuf: the origin's head):
 * when it is not an error, drop the URL's entries. */
void cache_serve_invalidate(struct conn *c, const char *rbuf);
/* PURGE: answer it (200 / 404 / 403).  True when it was a PURGE. */
bool cache_serve_purge(struct conn *c);
/* Extra response fields for a forwarded (non-cache) response. */
int cache_serve_status_fields(struct conn *c, struct buf *out);
/* Release every reference of the request. */
void cache_serve_free(struct conn *c);
/* cache_send.c: the worker's wakeup socket is readable: run the
 * connections waiting on fills. */
void cache_send_wake(struct worker *w);
/* cache_send.c: start serving the entry in r->cs.read (state C_CACHE,
 * or stay in C_FILL for the filling client); code is the log code. */
void cache_send_begin(struct conn *c, const char *code);

/* Field arrays hold every field a message may have (limits.header_fields
 * is at most 1000): a field past the array would be invisible to the
 * key and the rules (cache poisoning). */
#define CACHE_SERVE_FIELDS_MAX	1024

/* Shared by cache_serve.c and cache_send.c. */
int64_t cache_serve_now(const struct conn *c);
void cache_serve_stat(struct conn *c, enum shm_stat_id id, uint64_t n);
size_t cache_serve_fmt_u64(char *dst, uint64_t v);
void cache_serve_num_field(struct buf *b, const char *name, size_t nlen,
    uint64_t v);
size_t cache_serve_stored_fields(const char *h, size_t len,
    struct cache_field *out, size_t cap, int *status);
const struct cache_field *cache_serve_field_find(const struct cache_field *f,
    size_t n, const char *name);
void cache_serve_set_status(struct creq *cs, const char *s);
void cache_serve_req_fields(struct conn *c, struct cache_req *q);

#endif
