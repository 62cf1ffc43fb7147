/*
 * cache.h - the shared-memory object store: one POSIX shm segment holding
 * a hash index of entries and a pool of fixed-size blocks (shm/cache.c).
 *
 * The master creates (or, with persist, re-attaches) the segment before
 * it forks; every worker inherits the mapping.  An object is the bytes
 * [key][response head][body] in a chain of blocks; it is found by the
 * 128-bit hash of its key and served only when the key bytes match.
 *
 * A worker reaches an object through a handle (struct cache_ref): a
 * counted reference recorded in the worker's slot, so the master can
 * release what a dead worker held (cache_slot_reap).  Readers stream
 * straight out of the mapping (cache_read_iov); the single writer of a
 * filling entry appends and publishes its length, and readers of a
 * filling entry follow it (collapsed forwarding).
 *
 * Errors are negative CACHE_E* codes; nothing here logs (STYLE 13).
 */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "shm/cache_policy.h"

struct cache;			/* process-local view of the segment */

enum {
	CACHE_OK = 0,
	CACHE_ENOENT = -1,	/* no such entry */
	CACHE_ENOSPC = -2,	/* no room even after eviction */
	CACHE_EBUSY = -3,	/* a lock stayed held past its timeout */
	CACHE_ETOOBIG = -4,	/* object above the per-object limit */
	CACHE_EABORTED = -5,	/* the entry was abandoned by its writer */
	CACHE_ESYS = -6,	/* a system call failed; errno is set */
	CACHE_ELAYOUT = -7,	/* existing segment of another layout */
	CACHE_EOWNER = -8,	/* existing segment not ours (owner/mode) */
	CACHE_EINUSE = -9,	/* existing segment of a live sluice */
	CACHE_ENOREF = -10,	/* the slot's reference table is full */
};
const char *cache_strerror(int err);

/* Gauges of the segment (read without locks, approximate under load). */
struct cache_gauges {
	uint64_t size;			/* segment bytes */
	uint64_t block_size;
	uint64_t blocks_total, blocks_used, blocks_free;
	uint64_t entries_total, entries_used;	/* entries_used: in the index or draining */
	uint64_t objects;		/* complete entries in the index */
	uint64_t refs;			/* references held by workers */
	uint64_t evictions;		/* since the segment was created */
};
/* The layout a segment of `size` bytes would get (nothing is created):
 * 0, or CACHE_ETOOBIG when size is too small for any. */
int cache_plan(uint64_t size, struct cache_gauges *g);
/* Fill g; returns 0, or CACHE_ENOENT when c is NULL (no cache). */
int cache_gauges(const struct cache *c, struct cache_gauges *g);


/* ---- the master ------------------------------------------------------ */

struct cache_params {
	const char *name;		/* "/sluice" */
	uint64_t size;			/* segment bytes, metadata included */
	uint64_t max_object;		/* largest object stored */
	bool persist;			/* re-attach a valid segment of the same layout */
	unsigned nslots;		/* worker slots (reference tables, wakeups) */
	int uid, gid;			/* owner of the segment; -1: keep */
};
/* Create, or (persist) re-attach and check, the segment; map it and the
 * per-run slot region; create one eventfd per slot.  *note gets a line
 * worth logging ("re-attached 1234 objects", "recreated: ...") or "". */
int cache_open(struct cache **cp, const struct cache_params *p,
    char *note, size_t notelen);
/* Unmap; unlink the segment unless it is kept (persist). */
void cache_close(struct cache *c, bool unlink_segment);
/* The worker of `slot` is starting with pid; its table starts empty. */
void cache_slot_start(struct cache *c, unsigned slot, int pid);
/* The worker of `slot` is gone: release every reference it held and
 * abandon every entry it was filling.  Returns the number released. */
unsigned cache_slot_reap(struct cache *c, unsigned slot);
/* Check the whole segment (tests, -s stats debug): blocks free + used ==
 * total, no block in two chains, refs == the slot tables' records.
 * Returns 0 or a negative count of problems; *why names the first. */
int cache_fsck(struct cache *c, const char **why);
/* The calling process (the master, after it detached) owns the segment. */
void cache_claim(struct cache *c);
/* A reload changed cache.max_object_size. */
void cache_set_max_object(struct cache *c, uint64_t max_object);
/* Size of the segment for the parameters (the layout rounds it down). */
uint64_t cache_segment_size(const struct cache *c);

/* ---- a worker ------------------------------------------------------- */

/* Become slot `slot`: returns a descriptor that is readable when a filling
 * entry this worker waits on has grown (or -1 on failure). */
int cache_worker_init(struct cache *c, unsigned slot);
/* Drain the wakeup descriptor after it was readable. */
void cache_wake_drain(struct cache *c);
/*
 * The memcached tier's hook (spill mode): eviction by this worker hands
 * each complete object it evicts (len <= max_len bytes, not a
 * hit-for-pass marker) to fn before its blocks are freed.  ref is a
 * counted reference, valid only during the call; fn may read the entry
 * (cache_view, cache_iov, cache_copy) and must not call anything that
 * allocates in the cache.  It runs inside whatever call evicted
 * (cache_get, cache_append...), with no cache lock held.  fn NULL: off.
 */
struct cache_ref;
typedef void cache_spill_fn(void *arg, struct cache *c,
    struct cache_ref *ref);
void cache_set_spill(struct cache *c, cache_spill_fn *fn, void *arg,
    uint64_t max_len);
/* Publish a liveness heartbeat (monotonic ms) for the master. */
void cache_heartbeat(struct cache *c, uint64_t now_ms);
/* Monotonic ms of a slot's last heartbeat, 0 when none. */
uint64_t cache_slot_heartbeat(const struct cache *c, unsigned slot);

/* A counted reference to an entry, with a read cursor. */
struct cache_ref {
	uint32_t idx;			/* entry index + 1; 0 = none */
	uint32_t rec;			/* record in this slot's table */
	uint32_t cur_block;		/* read cursor: block holding cur_off */
	uint64_t cur_base;		/* object offset of cur_block's first byte */
	bool writer;
	bool gen_check;			/* commit: not if inval_gen moved */
	uint32_t inval_gen;		/* the stripe's at cache_get (found) */
	uint32_t seen_flags;		/* CF_HEAD | CF_VARY at the last cache_wait */
	int64_t hfp_from, hfp_until;	/* CACHE_HFP: the marker's life (wall s) */
};

/* What a reference sees now. */
enum { CE_FILLING = 1, CE_COMPLETE = 2 };
enum {
	CF_ABORTED = 1u << 0,		/* writer gave up: never serve it */
	CF_PASS = 1u << 1,		/* uncacheable: waiters fetch themselves */
	CF_VARY = 1u << 2,		/* a Vary marker: head = the Vary names */
	CF_DEAD = 1u << 3,		/* out of the index; freed at refs 0 */
	CF_HEAD = 1u << 4,		/* head complete: hdr_len and meta valid */
	CF_HFP = 1u << 5,		/* hit-for-pass: the URL's answers are not
					   cacheable; fetch without joining */
};
struct cache_view {
	unsigned state, flags;
	uint32_t key_len, hdr_len;
	uint64_t len;			/* bytes of [key][head][body] published */
	uint64_t body_len;		/* final body length; UINT64_MAX while unknown */
	struct cache_meta meta;
};

/* Find the entry for key; with create, make a filling entry when there
 * is none, linked in the index so concurrent misses find it.  Returns
 * 1 found, 2 created (*ref is the writer), 3 a hit-for-pass marker (no
 * reference held), CACHE_ENOENT, or an error. */
#define CACHE_FOUND	1
#define CACHE_CREATED	2
#define CACHE_HFP	3	/* a hit-for-pass marker: no reference taken,
				   ref->hfp_from/until say when it lives */
int cache_get(struct cache *c, const char *key, size_t klen, bool create,
    struct cache_ref *ref);
/* A filling entry outside the index, linked (replacing any entry of the
 * same key) at commit: a refresh that keeps the old entry serving. */
int cache_create_detached(struct cache *c, const char *key, size_t klen,
    struct cache_ref *ref);
void cache_view(struct cache *c, const struct cache_ref *ref,
    struct cache_view *v);

/* Writer: append bytes of the head or body; publish them to readers. */
int cache_append(struct cache *c, struct cache_ref *ref, const void *p,
    size_t n);
/* Writer: the head is the hdr_len bytes after the key; meta is its
 * freshness; body_len UINT64_MAX when unknown. */
void cache_set_head(struct cache *c, struct cache_ref *ref, uint32_t hdr_len,
    const struct cache_meta *meta, uint64_t body_len, unsigned flags);
/* Writer: the object is complete; readers may serve all of it.  Returns
 * 0, CACHE_EABORTED, or CACHE_ENOENT when it was invalidated while it
 * filled (complete for its readers, but not in the index). */
int cache_commit(struct cache *c, struct cache_ref *ref);
/* Writer: the object outgrew the per-object limit.  When others are
 * streaming the entry, take it out of the index and lift the limit so
 * they get all of it (it is never stored): 1.  With no other reader: 0,
 * and the caller abandons it. */
int cache_oversize(struct cache *c, struct cache_ref *ref);
/* The invalidation count of key's stripe, which every cache_invalidate
 * of a key of that stripe moves (in any worker): a copy of key made
 * outside the cache is still current while it has not moved. */
uint32_t cache_inval_gen(struct cache *c, const char *key, size_t klen);
/* Writer: give up (flags CF_ABORTED or CF_PASS); waiters are told. */
void cache_abort(struct cache *c, struct cache_ref *ref, unsigned flags);
/* Drop a reference (reader or writer; a writer's unfinished entry is
 * aborted first). */
void cache_release(struct cache *c, struct cache_ref *ref);

/* Reader: iovecs over published bytes from object offset off (at most
 * maxbytes, at most niov).  Returns the count; 0 when nothing is
 * published past off yet.  Offsets must not go backwards. */
int cache_iov(struct cache *c, struct cache_ref *ref, uint64_t off,
    size_t maxbytes, struct iovec *iov, int niov);
/* Reader: copy n bytes from off (must be published); 0 or -1. */
int cache_copy(struct cache *c, struct cache_ref *ref, uint64_t off,
    void *dst, size_t n);
/* Reader of a filling entry: ask to be woken when it changes.  Returns
 * true when it already changed (len != seen_len or no longer filling):
 * look again instead of waiting. */
bool cache_wait(struct cache *c, struct cache_ref *ref, uint64_t seen_len);

/* stale-while-revalidate: true for the one caller that should start the
 * entry's background revalidation (until it is freshened). */
bool cache_mark_revalidating(struct cache *c, struct cache_ref *ref);
/* Freshen a complete entry's metadata (a 304). */
void cache_freshen(struct cache *c, struct cache_ref *ref,
    const struct cache_meta *meta);
/* Drop the entry of key from the index (invalidation, PURGE); 1 when
 * there was one. */
int cache_invalidate(struct cache *c, const char *key, size_t klen);

#ifdef SLUICE_FAULT_INJECTION
/* Test builds: SIGKILL this process at the named point inside a critical
 * section ("ref", "unref", "alloc", "link", "linked", "unlink"); NULL
 * disarms.  SLUICE_FAULTS="cache_crash_ref:N" does the same in workers. */
void cache_test_crash_at(struct cache *c, const char *point);
#endif

#endif
