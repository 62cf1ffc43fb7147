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

struct conn;
struct worker;
struct cache;
struct cache_ref;
struct mc_tier;

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
/* C_MC's deadline passed: give the lookup up, go to the origin. */
void mc_tier_timeout(struct conn *c);
/* The request ends: forget its lookup (nothing comes back for it). */
void mc_tier_cancel(struct conn *c);

/* Shared mode: the complete entry of ref was just stored in shm. */
void mc_tier_stored(struct conn *c, const struct cache_ref *ref);
/* The cache key's entry was dropped: delete it in memcached too; farm
 * (PURGE, unsafe method): and tell every node (the purge log). */
void mc_tier_invalidate(struct conn *c, const char *key, size_t klen,
    bool farm);

#endif
