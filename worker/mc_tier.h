/*
 * mc_tier.h - the worker's use of the memcached tier: look an object up
 * in memcached after a shm miss and promote it into shm, write objects
 * to memcached (spill on eviction, or every stored object in shared
 * mode), delete them on PURGE and invalidation.
 *
 * Assumes: one per worker, made after fork (it owns an mc_client and
 * its threads); called from the worker's event loop only.  The bytes
 * in memcached are mc_item.h envelopes; the meta of an item is the shm
 * entry's stored head and freshness data (the format is in mc_tier.c).
 *
 * Why: the tier must never make a request fail or wait longer than
 * memcached.timeout_ms (HOSTILE F6-F9): every lookup has a deadline and
 * falls through to the origin on any miss, error, timeout or item that
 * does not verify.
 */
#ifndef SLUICE_MC_TIER_H
#define SLUICE_MC_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct worker;
struct cache;
struct cache_ref;
struct cache_meta;
struct cache_view;
struct iovec;
struct mc_tier;
struct mc_obj;

/* NULL with a reason in err when the tier cannot start (or is off).
 * poll_purges: this worker reads the farm's purge log. */
struct mc_tier *mc_tier_new(struct worker *w, bool poll_purges, char *err,
    size_t errlen);
void mc_tier_free(struct mc_tier *t);
/* The descriptor the loop watches; call mc_tier_ready when readable. */
int mc_tier_fd(const struct mc_tier *t);
void mc_tier_ready(struct mc_tier *t);
/* Once a second: refresh the servers-up gauge, poll the purge log. */
void mc_tier_gauges(struct mc_tier *t);

/*
 * cache_serve_lookup: c's request created a filling entry (a shm miss).
 * True when a memcached lookup started: c waits in C_MC, and later goes
 * on with the entry promoted (a hit: the lookup runs again) or to the
 * origin.  False: go to the origin now.
 */
bool mc_tier_lookup(struct conn *c);
/* The same without an entry (a request that joined a fill its leader
 * gave up with CF_PASS, as it does when it serves an object too large
 * for shm from memory): only such an object is served; anything else
 * goes to the origin, uncached.  False: go to the origin now. */
bool mc_tier_lookup_alone(struct conn *c);
/* C_MC's deadline passed: give the lookup up, go to the origin. */
void mc_tier_timeout(struct conn *c);
/* The request ends: forget its lookup (nothing comes back for it). */
void mc_tier_cancel(struct conn *c);

/*
 * Objects too large for shm (over cache.max_object_size, within
 * memcached.max_object_size) live in memcached alone.
 *
 * A hit on one is served from memory: cache_serve's creq holds it as
 * `mobj`, and cache_send.c reads it through these as it would a shm
 * entry (a view with key_len 0: offsets count from the stored head;
 * mc_obj_copy copies from the head only).
 */
void mc_obj_view(const struct mc_obj *o, struct cache_view *v);
int mc_obj_copy(const struct mc_obj *o, uint64_t off, void *dst, size_t n);
int mc_obj_iov(const struct mc_obj *o, uint64_t off, size_t want,
    struct iovec *iov, int max);
/*
 * Storing one: cache_serve_response found a cacheable response with a
 * Content-Length too large for shm; true when the tier takes a copy of
 * its body as it is forwarded (c's creq holds the tee).  conn.c feeds
 * each forwarded body run, then says when the body is complete; the
 * object is stored then.  A request that ends before drops the copy.
 */
bool mc_tier_tee_begin(struct conn *c, const void *head, size_t hdr_len,
    const struct cache_meta *meta, uint64_t body_len);
void mc_tier_tee_feed(struct conn *c, const void *p, size_t n);
void mc_tier_tee_end(struct conn *c);
/* The request ends: drop its memory object and tee, if any. */
void mc_tier_release(struct conn *c);

/* Shared mode: the complete entry of ref was just stored in shm. */
void mc_tier_stored(struct conn *c, const struct cache_ref *ref);
/* PURGE of key (its shm entries already dropped): delete it in memcached
 * and log the purge for the farm; true when c now waits (C_MC) for the
 * delete, to be answered `status` when it completed (or after
 * memcached.timeout_ms).  False: answer now (no tier, or the delete
 * could not be waited for). */
bool mc_tier_purge(struct conn *c, const char *key, size_t klen, int status);
/* The cache key's entry was dropped: delete it in memcached too; farm
 * (PURGE, unsafe method): and tell every node (the purge log). */
void mc_tier_invalidate(struct conn *c, const char *key, size_t klen,
    bool farm);

#endif
