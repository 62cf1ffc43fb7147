/*
 * cache_int.h - the shared-memory cache's own types, private to shm/cache.c
 * (index, blocks, references, locks) and shm/cache_seg.c (creating,
 * re-attaching and checking the segment).  Types that live in the
 * segment end in _sh and hold indexes, never pointers (STYLE 9).
 */
#ifndef SLUICE_CACHE_INT_H
#define SLUICE_CACHE_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lib/fault.h"
#include "shm/cache.h"

#define CACHE_MAGIC	0x534c4348u	/* "SLCH" */
#define CACHE_LAYOUT	3u		/* bump on any change of the _sh types */
#define CACHE_BLOCK	4096u
#define CACHE_STRIPES	1024u
#define CACHE_LOCK_MS	1000		/* longest wait for a lock */
#define SLOT_RECS	8192u		/* reader references per worker */
#define NONE		UINT32_MAX
#define WALK_MAX(c)	((c)->h->nentries + 1u)	/* bound on any chain walk */

/* Test builds: die inside a critical section, to prove the recovery.
 * Workers only (me >= 0): the master runs some of these sections when it
 * reaps a dead worker (entry_kill, ref_drop_locked), it has SLUICE_FAULTS
 * in its environment too, and it must never die.  crash_at "stop:<name>"
 * stops there instead (a race window held open; the test sends SIGCONT). */
#ifdef SLUICE_FAULT_INJECTION
#define CRASH_POINT(c, name) do { \
	if ((c)->me < 0) \
		break; \
	if (((c)->crash_at != NULL && strcmp((c)->crash_at, name) == 0) || \
	    fault_fail("cache_crash_" name)) \
		raise(SIGKILL); \
	if (((c)->crash_at != NULL && strncmp((c)->crash_at, "stop:", 5) == 0 && \
	    strcmp((c)->crash_at + 5, name) == 0) || \
	    fault_fail("cache_stop_" name)) \
		raise(SIGSTOP);		/* hang holding the lock (F2) */ \
} while (0)
#else
#define CRASH_POINT(c, name) do { } while (0)
#endif

enum { E_FREE = 0, E_FILLING = CE_FILLING, E_COMPLETE = CE_COMPLETE };
/* Entry flags beyond the public CF_* ones. */
enum { EF_LINKED = 1u << 8, EF_DETACHED = 1u << 9, EF_UNLIMITED = 1u << 10 };

enum { OP_NONE, OP_REF, OP_UNREF, OP_LINK, OP_UNLINK };

/*
 * A lock and its op log.  A stripe also keeps the count of complete
 * entries its chains hold (the `objects` gauge is the sum over stripes):
 * changed only under the stripe's lock, and recounted from the chains by
 * the EOWNERDEAD repair, so a holder killed between a change of the
 * index and the change of the count leaves nothing off by one.  (One
 * segment-wide atomic could not be repaired: no one knows which of its
 * updates a dead worker made.)
 */
struct lock_sh {
	pthread_mutex_t m;
	uint32_t op, op_entry, op_slot, op_rec, op_refs;
	uint32_t inval_gen;		/* stripes: bumped by cache_invalidate */
	uint32_t objects;		/* stripes: complete entries in its chains */
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct lock_sh) == 128, "lock_sh layout");

struct entry_sh {
	uint64_t h[2];			/* XXH3-128 of the key */
	uint32_t next;			/* bucket chain: entry index + 1 */
	uint32_t state;			/* E_* */
	uint32_t flags;			/* CF_* | EF_* */
	uint32_t refs;			/* reader references */
	uint32_t writer;		/* filling slot + 1, 0 = none */
	uint32_t first, last, nblocks;	/* block chain */
	uint32_t key_len, hdr_len;
	uint32_t meta_seq;		/* seqlock over meta (odd: being written) */
	uint8_t hot;			/* CLOCK reference bit */
	uint8_t reval;			/* a background revalidation was started */
	uint64_t len;			/* published bytes */
	uint64_t body_len;
	uint64_t waiters;		/* bit (slot % 64): wake that slot */
	struct cache_meta meta;
};

struct hdr_sh {
	uint32_t magic, layout;
	uint64_t size;
	uint32_t block_size, nblocks, nentries, nbuckets, nstripes;
	uint32_t entry_size;
	uint64_t off_stripes, off_buckets, off_entries, off_bnext, off_blocks;
	uint64_t seed;
	int32_t creator_pid;
	uint64_t max_object;
	/* under `alloc` */
	struct lock_sh alloc;
	uint32_t free_block, nfree_blocks;
	uint32_t free_entry, nfree_entries;
	/* atomics */
	uint32_t clock;
	uint64_t evictions;
};

struct slot_sh {
	int32_t pid;
	uint32_t pad;
	uint64_t heartbeat;
	uint32_t rec[SLOT_RECS];	/* entry index + 1 of a reference, 0 free */
} __attribute__((aligned(64)));

struct cache {
	struct hdr_sh *h;
	size_t maplen;
	struct lock_sh *stripes;
	uint32_t *buckets;
	struct entry_sh *e;
	uint32_t *bnext;
	uint8_t *blocks;
	struct slot_sh *slots;		/* anonymous, per run */
	size_t slots_len;
	unsigned nslots;
	int wake_rx, wake_tx;		/* wakeup datagram sockets, -1 if none */
	char name[256];
	/* a worker */
	int me;				/* slot, -1 in the master */
	uint32_t *freerec;		/* stack of free records in slots[me] */
	unsigned nfreerec;
	const char *crash_at;		/* test builds: CRASH_POINT to die at */
	cache_spill_fn *spill;		/* the memcached tier's eviction hook */
	void *spill_arg;
	uint64_t spill_max;		/* largest object (len) handed to it */
	bool in_spill;			/* spill is on the stack: no nesting */
};

static inline uint8_t *
block_ptr(const struct cache *c, uint32_t b)
{
	return c->blocks + (uint64_t)b * CACHE_BLOCK;
}

static inline uint32_t
bucket_of(const struct cache *c, const struct entry_sh *e)
{
	return (uint32_t)(e->h[0] & (c->h->nbuckets - 1));
}

static inline struct lock_sh *
stripe_of_bucket(const struct cache *c, uint32_t b)
{
	return &c->stripes[b & (c->h->nstripes - 1)];
}


/* cache.c, for cache_seg.c */
int cache_lock_init(pthread_mutex_t *m);
/* Rebuild both free lists from the entries (allocator lock held, or no
 * other user of the segment). */
void cache_alloc_rebuild(struct cache *c);
void cache_key_hash(const struct cache *c, const char *key, size_t klen,
    uint64_t h[2]);
/* The abstract unix address that wakes slot `slot`. */
socklen_t cache_wake_addr(const struct cache *c, unsigned slot,
    struct sockaddr_un *a);

#endif
