/*
 * cache.c - the shared-memory object store: segment, index, blocks,
 * references, eviction, and recovery from dead workers.
 *
 * The segment (one POSIX shm object, mode 0600, owned by the run user):
 *
 *   [hdr_sh][stripe_sh x nstripes][bucket u32 x nbuckets]
 *   [entry_sh x nentries][bnext u32 x nblocks][blocks, CACHE_BLOCK each]
 *
 * An object is the bytes [key][response head][body] in a chain of blocks
 * (bnext[] links them, a FAT).  Entries hang off hash buckets by the
 * 128-bit XXH3 hash of the key (seeded per segment); a lookup compares
 * the key bytes too, so two keys with one hash never alias.
 *
 * Locking (the choice the design asks to write down):
 *  - Process-shared robust mutexes, one per stripe of buckets, guard the
 *    chains and, for every entry in them, its links, flags, refs and
 *    writer pin.  One more robust mutex (the allocator lock) guards the
 *    free lists and every block chain.  Order: stripe, then allocator;
 *    eviction, which runs from the allocator's caller, takes a stripe
 *    only with no allocator lock held.
 *  - Locks are taken with a timeout on CLOCK_MONOTONIC; a worker that
 *    cannot get one in CACHE_LOCK_MS treats the cache as absent for that
 *    request (pass-through), so a stuck worker (F2) cannot stall others.
 *  - Before a change a stripe holder writes what it is doing (op, entry,
 *    slot, record, old refcount) into the stripe.  The next locker that
 *    gets EOWNERDEAD undoes or completes that one change, then marks the
 *    mutex consistent.  EOWNERDEAD on the allocator lock rebuilds both
 *    free lists from the entries (every block chain is only changed under
 *    that lock, so the chains are whole).
 *  - The `objects` gauge is kept per stripe (lock_sh.objects: the
 *    complete entries that stripe's chains hold), changed only under the
 *    stripe's lock, and the EOWNERDEAD repair recounts it from the
 *    chains: a holder killed between linking, unlinking or completing an
 *    entry and counting it leaves no count off by one (a single atomic
 *    in the header went below zero that way: F1).
 *  - Readers stream from a filling entry without locks: the writer fills
 *    block bytes, then publishes the length with a release store; a
 *    reader loads it with acquire and never reads past it.
 *
 * References: a reader's reference is counted in the entry and recorded
 * in its worker's slot table (an anonymous shared region, per run), so
 * the master can release what a dead worker held.  A writer pins its
 * entry with `writer` (slot + 1) instead; the master drops pins and
 * abandons the filling entries of a dead slot by scanning the entries,
 * and in that scan frees the orphans a worker killed mid-free left.
 * Blocks of an entry are freed only when it is out of the index, has no
 * references and no writer, so eviction never frees what is being read.
 *
 * Eviction is CLOCK over entries: a hit sets `hot`; the hand clears it
 * or evicts a complete, unreferenced, indexed entry.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "shm/cache_int.h"

static const char *const cache_errs[] = {
	"no error", "no such entry", "no room in the cache",
	"a cache lock is held too long", "object too large",
	"entry abandoned by its writer", "system error",
	"segment of another layout", "segment not owned by sluice",
	"segment in use by a running sluice", "too many cache references",
};

const char *
cache_strerror(int err)
{
	if (err > 0 || -err >= (int)(sizeof cache_errs / sizeof cache_errs[0]))
		return "unknown cache error";
	return cache_errs[-err];
}

/* ---- locks ----------------------------------------------------------- */

static void lock_repair_stripe(struct cache *c, struct lock_sh *s);

int
cache_lock_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int r;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	r = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return r;
}

/* Take a lock; on EOWNERDEAD repair what the dead holder left half done. */
static int
lock_take(struct cache *c, struct lock_sh *l, bool is_alloc)
{
	struct timespec ts;
	int r;

	/* Uncontended (the common case): no clock read, no deadline. */
	if ((r = pthread_mutex_trylock(&l->m)) == 0)
		return 0;
	if (r == EOWNERDEAD)
		goto dead;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += CACHE_LOCK_MS / 1000;
	ts.tv_nsec += (long)(CACHE_LOCK_MS % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	r = pthread_mutex_clocklock(&l->m, CLOCK_MONOTONIC, &ts);
	if (r == 0)
		return 0;
	if (r == EOWNERDEAD) {
dead:
		if (is_alloc)
			cache_alloc_rebuild(c);
		else
			lock_repair_stripe(c, l);
		l->op = OP_NONE;
		pthread_mutex_consistent(&l->m);
		return 0;
	}
	return CACHE_EBUSY;
}

static void
lock_give(struct lock_sh *l)
{
	pthread_mutex_unlock(&l->m);
}

/* The master, after a worker died: repair now a lock it died holding,
 * instead of at the next worker's take, so fsck and the gauges are whole
 * again at once.  trylock: a lock a live worker holds is left alone. */
static void
lock_probe(struct cache *c, struct lock_sh *l, bool is_alloc)
{
	int r = pthread_mutex_trylock(&l->m);

	if (r == EOWNERDEAD) {
		if (is_alloc)
			cache_alloc_rebuild(c);
		else
			lock_repair_stripe(c, l);
		l->op = OP_NONE;
		pthread_mutex_consistent(&l->m);
		r = 0;
	}
	if (r == 0)
		lock_give(l);
}

/* Record the change about to be made under a stripe lock. */
static void
op_begin(struct lock_sh *l, uint32_t op, uint32_t idx, uint32_t slot,
    uint32_t rec, uint32_t refs)
{
	l->op_entry = idx;
	l->op_slot = slot;
	l->op_rec = rec;
	l->op_refs = refs;
	__atomic_store_n(&l->op, op, __ATOMIC_RELEASE);
}

static void
op_end(struct lock_sh *l)
{
	__atomic_store_n(&l->op, OP_NONE, __ATOMIC_RELEASE);
}

/* Count one complete entry into or out of stripe s's chains (s held).
 * A relaxed store: cache_gauges sums the stripes without locks. */
static void
stripe_objects(struct lock_sh *s, bool in)
{
	__atomic_store_n(&s->objects, in ? s->objects + 1 : s->objects - 1,
	    __ATOMIC_RELAXED);
}

/* Recount stripe s's objects from its chains (s held, the repair only:
 * it walks every chain of the stripe). */
static void
stripe_recount(struct cache *c, struct lock_sh *s)
{
	uint32_t n = 0;

	for (uint32_t b = (uint32_t)(s - c->stripes); b < c->h->nbuckets;
	    b += c->h->nstripes)
		for (uint32_t i = c->buckets[b], w = 0;
		    i != 0 && i <= c->h->nentries && w < WALK_MAX(c);
		    i = c->e[i - 1].next, w++)
			n += c->e[i - 1].state == E_COMPLETE;
	__atomic_store_n(&s->objects, n, __ATOMIC_RELAXED);
}

/* ---- the allocator (callers hold h->alloc) ---------------------------- */

/* Return an entry's blocks and the entry itself to the free lists. */
static void
entry_free_locked(struct cache *c, uint32_t idx)
{
	struct entry_sh *e = &c->e[idx];
	uint32_t b = e->first, n = 0;

	while (b != NONE && n < e->nblocks && b < c->h->nblocks) {
		uint32_t nx = c->bnext[b];

		c->bnext[b] = c->h->free_block;
		c->h->free_block = b;
		c->h->nfree_blocks++;
		b = nx;
		n++;
	}
	/* Never linked here (callers free only entries out of the index);
	 * were it, the count follows the chains, which still hold it.  Its
	 * stripe is held by every caller. */
	if (e->state == E_COMPLETE && (e->flags & EF_LINKED))
		stripe_objects(stripe_of_bucket(c, bucket_of(c, e)), false);
	e->first = e->last = NONE;
	e->nblocks = 0;
	e->state = E_FREE;
	e->flags = 0;
	e->writer = 0;
	e->refs = 0;
	e->next = c->h->free_entry;
	c->h->free_entry = idx;
	c->h->nfree_entries++;
}

/* Free an unlinked, unreferenced, unpinned entry (stripe lock held). */
static void
entry_free(struct cache *c, uint32_t idx)
{
	if (lock_take(c, &c->h->alloc, true) != 0)
		return;		/* an orphan until the next reap (entry_reclaim) */
	if (c->e[idx].state != E_FREE)
		entry_free_locked(c, idx);
	lock_give(&c->h->alloc);
}

/* Is e an orphan: in use, yet out of the index, unreferenced and
 * unpinned, so no one will ever free it?  (A detached entry is always
 * pinned by its writer until commit or release, so EF_DETACHED without a
 * pin is an orphan too.)  Stable only under e's stripe and the
 * allocator lock: entry_new sets `writer` and `state` under the latter. */
static bool
entry_orphan(const struct entry_sh *e)
{
	return e->state != E_FREE && !(e->flags & EF_LINKED) && e->refs == 0 &&
	    e->writer == 0;
}

/*
 * The master, after a worker died: free an orphan (stripe s held).
 * Every "drop the last hold, then free" step is two steps: entry_kill's
 * op_end() then entry_free(), cache_release's `writer = 0` or
 * ref_drop_locked() then entry_free(), entry_free() waiting for the
 * allocator lock or dying inside entry_free_locked().  A worker killed
 * between them leaves the stripe op log at OP_NONE, so the EOWNERDEAD
 * repair has nothing to finish, and the entry holds no record or pin of
 * its slot, so the reap's own scans pass it by: it stayed in use for good
 * (seen as an invalidated or evicted entry: E_COMPLETE, CF_DEAD, refs 0,
 * writer 0, in no chain).  Rechecked under the allocator lock, where
 * entry_new cannot be reusing it for another key (another stripe).
 */
static void
entry_reclaim(struct cache *c, struct lock_sh *s, uint32_t idx)
{
	struct entry_sh *e = &c->e[idx];

	if (lock_take(c, &c->h->alloc, true) != 0)
		return;
	if (entry_orphan(e) && stripe_of_bucket(c, bucket_of(c, e)) == s)
		entry_free_locked(c, idx);
	lock_give(&c->h->alloc);
}

/*
 * EOWNERDEAD on the allocator: a holder died between two stores of a
 * free-list or chain update.  Chains are whole (links are written before
 * counts), so rebuild both free lists from the entries: a block is free
 * when no live entry's chain holds it.  A chain that runs into a block
 * already claimed, or out of range, is cut there and its entry abandoned.
 * No entry changes state or index membership here, so the stripes'
 * object counts stand.  Flags are or-ed atomically: a stripe holder may
 * be changing the same word (a plain |= could bring EF_LINKED back on an
 * entry just unlinked).
 */
void
cache_alloc_rebuild(struct cache *c)
{
	struct hdr_sh *h = c->h;
	uint8_t *mark = calloc(h->nblocks / 8 + 1, 1);

	h->free_block = NONE;
	h->nfree_blocks = 0;
	h->free_entry = NONE;
	h->nfree_entries = 0;
	for (uint32_t i = 0; i < h->nentries; i++) {
		struct entry_sh *e = &c->e[i];
		uint32_t b = e->first, n = 0, prev = NONE;

		if (e->state == E_FREE)
			continue;
		while (b != NONE && n < e->nblocks) {
			if (b >= h->nblocks || mark == NULL ||
			    (mark[b / 8] & (1u << (b % 8)))) {
				__atomic_fetch_or(&e->flags, CF_ABORTED,
				    __ATOMIC_RELAXED);
				break;
			}
			mark[b / 8] |= (uint8_t)(1u << (b % 8));
			prev = b;
			b = c->bnext[b];
			n++;
		}
		e->nblocks = n;
		e->last = prev;
		if (n == 0)
			e->first = NONE;
		if (e->len > (uint64_t)n * CACHE_BLOCK) {
			e->len = (uint64_t)n * CACHE_BLOCK;
			__atomic_fetch_or(&e->flags, CF_ABORTED, __ATOMIC_RELAXED);
		}
	}
	/* Push in reverse so low indexes come out first. */
	for (uint32_t b = h->nblocks; b-- > 0;)
		if (mark == NULL || !(mark[b / 8] & (1u << (b % 8)))) {
			c->bnext[b] = h->free_block;
			h->free_block = b;
			h->nfree_blocks++;
		}
	for (uint32_t i = h->nentries; i-- > 0;)
		if (c->e[i].state == E_FREE) {
			c->e[i].next = h->free_entry;
			h->free_entry = i;
			h->nfree_entries++;
		}
	free(mark);
}

static int evict_one(struct cache *c);

/* Append one block to e's chain (the writer's entry). */
static int
block_add(struct cache *c, struct entry_sh *e)
{
	for (int tries = 0; tries < 64; tries++) {
		uint32_t b;

		if (lock_take(c, &c->h->alloc, true) != 0)
			return CACHE_EBUSY;
		if ((b = c->h->free_block) != NONE && !fault_fail("cache_block")) {
			c->h->free_block = c->bnext[b];
			c->h->nfree_blocks--;
			c->bnext[b] = NONE;
			CRASH_POINT(c, "alloc");
			if (e->last == NONE)
				e->first = b;
			else
				c->bnext[e->last] = b;
			e->last = b;
			e->nblocks++;
			lock_give(&c->h->alloc);
			return 0;
		}
		lock_give(&c->h->alloc);
		/* An object past max_object_size is never stored: it may use
		 * free blocks for its followers, never evict stored ones. */
		if ((__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & EF_UNLIMITED) ||
		    evict_one(c) != 0)
			return CACHE_ENOSPC;
	}
	return CACHE_ENOSPC;
}

/* Take a free entry, pinned by this worker as its writer. */
static int
entry_new(struct cache *c, const uint64_t h[2], uint32_t *idx)
{
	for (int tries = 0; tries < 64; tries++) {
		uint32_t i;

		if (lock_take(c, &c->h->alloc, true) != 0)
			return CACHE_EBUSY;
		if ((i = c->h->free_entry) != NONE) {
			struct entry_sh *e = &c->e[i];

			c->h->free_entry = e->next;
			c->h->nfree_entries--;
			e->h[0] = h[0];
			e->h[1] = h[1];
			e->next = 0;
			e->flags = 0;
			e->refs = 0;
			e->writer = (uint32_t)c->me + 1;
			e->first = e->last = NONE;
			e->nblocks = 0;
			e->key_len = e->hdr_len = 0;
			e->len = 0;
			e->body_len = UINT64_MAX;
			e->waiters = 0;
			e->hot = 0;
			e->reval = 0;
			memset(&e->meta, 0, sizeof(e->meta));
			e->state = E_FILLING;
			lock_give(&c->h->alloc);
			*idx = i;
			return 0;
		}
		lock_give(&c->h->alloc);
		if (evict_one(c) != 0)
			return CACHE_ENOSPC;
	}
	return CACHE_ENOSPC;
}

/* ---- chains (callers hold the stripe) --------------------------------- */

static bool
chain_unlink(struct cache *c, uint32_t idx)
{
	struct entry_sh *e = &c->e[idx];
	uint32_t *link = &c->buckets[bucket_of(c, e)];

	for (uint32_t n = 0; *link != 0 && n < WALK_MAX(c); n++) {
		if (*link == idx + 1) {
			*link = e->next;
			return true;
		}
		link = &c->e[*link - 1].next;
	}
	return false;
}

static bool
chain_has(struct cache *c, uint32_t bucket, uint32_t idx)
{
	uint32_t i = c->buckets[bucket];

	for (uint32_t n = 0; i != 0 && n < WALK_MAX(c); n++) {
		if (i == idx + 1)
			return true;
		i = c->e[i - 1].next;
	}
	return false;
}

static void wake_waiters(struct cache *c, struct entry_sh *e);

/* Take e out of the index for good (stripe held); free it when no one
 * holds it. */
static void
entry_kill(struct cache *c, struct lock_sh *s, uint32_t idx)
{
	struct entry_sh *e = &c->e[idx];

	op_begin(s, OP_UNLINK, idx, 0, 0, 0);
	if (e->flags & EF_LINKED) {
		/* Counted out only if the chains held it: the count is theirs. */
		bool was = chain_unlink(c, idx);

		CRASH_POINT(c, "unlink");
		if (was && e->state == E_COMPLETE)
			stripe_objects(s, false);
		CRASH_POINT(c, "unlinked");
	}
	e->flags = (e->flags & ~(uint32_t)(EF_LINKED | EF_DETACHED)) | CF_DEAD;
	op_end(s);
	if (e->refs == 0 && e->writer == 0)
		entry_free(c, idx);
}

/* Undo or finish the one change logged in stripe s. */
static void
lock_repair_op(struct cache *c, struct lock_sh *s)
{
	uint32_t idx = s->op_entry;
	struct entry_sh *e = &c->e[idx];

	switch (s->op) {
	case OP_REF:
	case OP_UNREF:
		/* The dead holder's own reference goes with it. */
		e->refs = s->op == OP_REF ? s->op_refs :
		    (s->op_refs > 0 ? s->op_refs - 1 : 0);
		if (s->op_slot < c->nslots && s->op_rec < SLOT_RECS &&
		    c->slots[s->op_slot].rec[s->op_rec] == idx + 1)
			c->slots[s->op_slot].rec[s->op_rec] = 0;
		break;
	case OP_LINK:
		if (chain_has(c, bucket_of(c, e), idx))
			e->flags |= EF_LINKED;
		else
			e->flags &= ~(uint32_t)EF_LINKED;
		break;
	case OP_UNLINK:
		/* Whether the holder counted it out or not, the recount
		 * that follows counts what the chains hold. */
		chain_unlink(c, idx);
		e->flags = (e->flags & ~(uint32_t)EF_LINKED) | CF_DEAD;
		break;
	}
	if (e->state != E_FREE && !(e->flags & EF_LINKED) &&
	    !(e->flags & EF_DETACHED) && e->refs == 0 && e->writer == 0)
		entry_free(c, idx);
}

/* Repair after a stripe holder died mid-change (see the file comment):
 * undo or finish the logged op, then recount the stripe's objects, which
 * the holder may have died before or after counting (any op, or none
 * logged: cache_commit counts outside the op log). */
static void
lock_repair_stripe(struct cache *c, struct lock_sh *s)
{
	if (s->op != OP_NONE && s->op_entry < c->h->nentries)
		lock_repair_op(c, s);
	stripe_recount(c, s);
}

/* ---- references -------------------------------------------------------- */

/* Count a reader reference to idx (stripe held).  ENOREF when the slot's
 * table is full. */
static int
ref_take_locked(struct cache *c, struct lock_sh *s, uint32_t idx,
    struct cache_ref *ref)
{
	struct entry_sh *e = &c->e[idx];
	uint32_t rec;

	if (c->me < 0 || c->nfreerec == 0 || fault_fail("cache_ref"))
		return CACHE_ENOREF;
	rec = c->freerec[--c->nfreerec];
	op_begin(s, OP_REF, idx, (uint32_t)c->me, rec, e->refs);
	c->slots[c->me].rec[rec] = idx + 1;
	CRASH_POINT(c, "ref");
	e->refs++;
	op_end(s);
	memset(ref, 0, sizeof(*ref));
	ref->idx = idx + 1;
	ref->rec = rec;
	ref->cur_block = NONE;
	return 0;
}

static void
ref_drop_locked(struct cache *c, struct lock_sh *s, uint32_t idx, uint32_t slot,
    uint32_t rec)
{
	struct entry_sh *e = &c->e[idx];

	op_begin(s, OP_UNREF, idx, slot, rec, e->refs);
	if (e->refs > 0)
		e->refs--;
	CRASH_POINT(c, "unref");
	c->slots[slot].rec[rec] = 0;
	op_end(s);
}

/* ---- wakeups ---------------------------------------------------------- */

/*
 * Wakeups travel as one-byte datagrams to a per-slot abstract unix
 * socket named from the segment's secret seed: one descriptor per worker
 * to receive and one to send, however many slots exist (an eventfd per
 * slot would cost every worker hundreds of descriptors).  A stray
 * datagram can only cause a spurious wakeup, which is harmless.
 */
socklen_t
cache_wake_addr(const struct cache *c, unsigned slot, struct sockaddr_un *a)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1,
	    "sluice-wake-%016llx-%u", (unsigned long long)c->h->seed, slot);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static void
wake_waiters(struct cache *c, struct entry_sh *e)
{
	uint64_t w;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&e->waiters, __ATOMIC_SEQ_CST) == 0)
		return;
	w = __atomic_exchange_n(&e->waiters, 0, __ATOMIC_SEQ_CST);
	if (c->wake_tx < 0 &&
	    (c->wake_tx = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return;
	for (unsigned s = 0; s < c->nslots && w != 0; s++) {
		struct sockaddr_un a;
		socklen_t alen;

		if (!(w & (1ull << (s % 64))) || c->slots[s].pid == 0)
			continue;
		alen = cache_wake_addr(c, s, &a);
		/* EAGAIN: its queue is full, so a wakeup is pending anyway. */
		(void)!sendto(c->wake_tx, "w", 1, MSG_DONTWAIT, (struct sockaddr *)&a,
		    alen);
	}
}

bool
cache_wait(struct cache *c, struct cache_ref *ref, uint64_t seen_len)
{
	struct entry_sh *e = &c->e[ref->idx - 1];
	uint32_t f, seen;

	if (c->me < 0)
		return true;
	__atomic_fetch_or(&e->waiters, 1ull << (c->me % 64), __ATOMIC_SEQ_CST);
	f = __atomic_load_n(&e->flags, __ATOMIC_SEQ_CST);
	/* The head (or a Vary marker) is news once per reference: it may
	 * have been set between the caller's view and the waiter bit, but
	 * once reported it is no reason to look again (a slow body would
	 * make the reader spin). */
	seen = ref->seen_flags;
	ref->seen_flags = f & (CF_HEAD | CF_VARY);
	return __atomic_load_n(&e->len, __ATOMIC_SEQ_CST) != seen_len ||
	    __atomic_load_n(&e->state, __ATOMIC_SEQ_CST) != E_FILLING ||
	    (f & (CF_ABORTED | CF_PASS)) != 0 ||
	    (f & (CF_HEAD | CF_VARY)) != seen;
}

void
cache_wake_drain(struct cache *c)
{
	char b[64];

	if (c->wake_rx < 0)
		return;
	while (recv(c->wake_rx, b, sizeof(b), MSG_DONTWAIT) > 0)
		;
}

/* ---- lookup and fill ---------------------------------------------------- */

/* Do the key bytes of entry e equal key? (published bytes only) */
static bool
key_equal(struct cache *c, const struct entry_sh *e, const char *key,
    size_t klen)
{
	uint32_t b = e->first;
	size_t off = 0;

	if (e->key_len != klen ||
	    __atomic_load_n(&e->len, __ATOMIC_ACQUIRE) < klen)
		return false;
	for (uint32_t n = 0; off < klen && b != NONE && n < e->nblocks; n++) {
		size_t k = klen - off < CACHE_BLOCK ? klen - off : CACHE_BLOCK;

		if (memcmp(block_ptr(c, b), key + off, k) != 0)
			return false;
		off += k;
		b = c->bnext[b];
	}
	return off == klen;
}

/* Find the live entry of key in its chain (stripe held); NONE if none. */
static uint32_t
chain_find(struct cache *c, uint32_t bucket, const uint64_t h[2],
    const char *key, size_t klen)
{
	uint32_t i = c->buckets[bucket];

	for (uint32_t n = 0; i != 0 && n < WALK_MAX(c); n++) {
		struct entry_sh *e = &c->e[i - 1];

		if (e->h[0] == h[0] && e->h[1] == h[1] &&
		    !(e->flags & (CF_DEAD | CF_ABORTED | CF_PASS)) &&
		    key_equal(c, e, key, klen))
			return i - 1;
		i = e->next;
	}
	return NONE;
}

/* Writer: append without publishing (the caller publishes). */
static int
append_raw(struct cache *c, struct entry_sh *e, uint64_t *len, const void *p,
    size_t n)
{
	const uint8_t *src = p;

	while (n > 0) {
		size_t off = (size_t)(*len % CACHE_BLOCK), k;
		int r;

		if (*len == (uint64_t)e->nblocks * CACHE_BLOCK &&
		    (r = block_add(c, e)) != 0)
			return r;
		k = CACHE_BLOCK - off < n ? CACHE_BLOCK - off : n;
		memcpy(block_ptr(c, e->last) + off, src, k);
		src += k;
		*len += k;
		n -= k;
	}
	return 0;
}

/* A new pinned entry holding the key bytes; not linked. */
static int
fill_start(struct cache *c, const uint64_t h[2], const char *key, size_t klen,
    uint32_t *idx)
{
	uint64_t len = 0;
	int r;

	if (klen > UINT32_MAX || klen > c->h->max_object)
		return CACHE_ETOOBIG;
	if ((r = entry_new(c, h, idx)) != 0)
		return r;
	c->e[*idx].key_len = (uint32_t)klen;
	if ((r = append_raw(c, &c->e[*idx], &len, key, klen)) != 0) {
		/* Not linked, no readers: drop the pin and free it. */
		struct lock_sh *s = stripe_of_bucket(c, bucket_of(c, &c->e[*idx]));

		if (lock_take(c, s, false) == 0) {
			c->e[*idx].writer = 0;
			entry_free(c, *idx);
			lock_give(s);
		}
		return r;
	}
	__atomic_store_n(&c->e[*idx].len, len, __ATOMIC_RELEASE);
	return 0;
}

static void
writer_ref(struct cache_ref *ref, uint32_t idx)
{
	memset(ref, 0, sizeof(*ref));
	ref->idx = idx + 1;
	ref->rec = NONE;
	ref->cur_block = NONE;
	ref->writer = true;
}

int
cache_get(struct cache *c, const char *key, size_t klen, bool create,
    struct cache_ref *ref)
{
	uint64_t h[2];
	uint32_t bucket, idx, mine = NONE;
	struct lock_sh *s;
	int r;

	if (c == NULL || c->me < 0)
		return CACHE_ENOENT;
	cache_key_hash(c, key, klen, h);
	bucket = (uint32_t)(h[0] & (c->h->nbuckets - 1));
	s = stripe_of_bucket(c, bucket);
	for (;;) {
		if ((r = lock_take(c, s, false)) != 0)
			goto out;
		if ((idx = chain_find(c, bucket, h, key, klen)) != NONE) {
			struct entry_sh *e = &c->e[idx];

			if ((e->flags & CF_HFP) && e->state == E_COMPLETE) {
				/* Read under the stripe: meta is stable here. */
				memset(ref, 0, sizeof(*ref));
				ref->hfp_from = e->meta.response_time;
				ref->hfp_until = e->meta.response_time + e->meta.lifetime;
				lock_give(s);
				r = CACHE_HFP;
				goto out;
			}
			if ((r = ref_take_locked(c, s, idx, ref)) == 0) {
				c->e[idx].hot = 1;
				ref->inval_gen = s->inval_gen;
				r = CACHE_FOUND;
			}
			lock_give(s);
			goto out;
		}
		if (!create) {
			lock_give(s);
			r = CACHE_ENOENT;
			goto out;
		}
		if (mine != NONE) {
			/* Link ours: concurrent misses now find it. */
			struct entry_sh *e = &c->e[mine];

			op_begin(s, OP_LINK, mine, 0, 0, 0);
			e->next = c->buckets[bucket];
			CRASH_POINT(c, "link");
			c->buckets[bucket] = mine + 1;
			CRASH_POINT(c, "linked");
			e->flags |= EF_LINKED;
			op_end(s);
			lock_give(s);
			writer_ref(ref, mine);
			return CACHE_CREATED;
		}
		lock_give(s);
		/* Fill the key outside the lock (it may evict), then look again:
		 * another worker may have linked the same key meanwhile. */
		if ((r = fill_start(c, h, key, klen, &mine)) != 0)
			return r;
	}
out:
	if (mine != NONE) {
		/* Someone else's entry won; ours was never visible. */
		if (lock_take(c, s, false) == 0) {
			c->e[mine].writer = 0;
			entry_free(c, mine);
			lock_give(s);
		}
	}
	return r;
}

int
cache_create_detached(struct cache *c, const char *key, size_t klen,
    struct cache_ref *ref)
{
	uint64_t h[2];
	uint32_t idx;
	int r;

	if (c == NULL || c->me < 0)
		return CACHE_ENOENT;
	cache_key_hash(c, key, klen, h);
	if ((r = fill_start(c, h, key, klen, &idx)) != 0)
		return r;
	c->e[idx].flags |= EF_DETACHED;
	writer_ref(ref, idx);
	return 0;
}

void
cache_view(struct cache *c, const struct cache_ref *ref, struct cache_view *v)
{
	struct entry_sh *e = &c->e[ref->idx - 1];
	uint32_t seq;

	v->flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) &
	    (CF_ABORTED | CF_PASS | CF_VARY | CF_DEAD | CF_HEAD | CF_HFP);
	v->state = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
	v->len = __atomic_load_n(&e->len, __ATOMIC_ACQUIRE);
	v->key_len = e->key_len;
	v->hdr_len = e->hdr_len;
	v->body_len = e->body_len;
	do {
		seq = __atomic_load_n(&e->meta_seq, __ATOMIC_ACQUIRE);
		memcpy(&v->meta, &e->meta, sizeof(v->meta));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((seq & 1) || seq != __atomic_load_n(&e->meta_seq, __ATOMIC_ACQUIRE));
}

int
cache_append(struct cache *c, struct cache_ref *ref, const void *p, size_t n)
{
	struct entry_sh *e = &c->e[ref->idx - 1];
	uint64_t len = e->len;
	int r;

	if (!(e->flags & EF_UNLIMITED) &&
	    len + n > c->h->max_object + e->key_len + (uint64_t)e->hdr_len +
	    (e->flags & CF_HEAD ? 0 : 65536))
		return CACHE_ETOOBIG;
	/* All or nothing: a failed append publishes no part of itself (the
	 * caller then abandons the entry). */
	if ((r = append_raw(c, e, &len, p, n)) != 0)
		return r;
	__atomic_store_n(&e->len, len, __ATOMIC_RELEASE);
	wake_waiters(c, e);
	return 0;
}

void
cache_set_head(struct cache *c, struct cache_ref *ref, uint32_t hdr_len,
    const struct cache_meta *meta, uint64_t body_len, unsigned flags)
{
	struct entry_sh *e = &c->e[ref->idx - 1];

	e->hdr_len = hdr_len;
	e->body_len = body_len;
	__atomic_store_n(&e->meta_seq, e->meta_seq + 1, __ATOMIC_RELEASE);
	e->meta = *meta;
	__atomic_store_n(&e->meta_seq, e->meta_seq + 1, __ATOMIC_RELEASE);
	__atomic_fetch_or(&e->flags, CF_HEAD | (flags & (CF_VARY | CF_HFP)),
	    __ATOMIC_RELEASE);
	wake_waiters(c, e);
}

int
cache_commit(struct cache *c, struct cache_ref *ref)
{
	uint32_t idx = ref->idx - 1;
	struct entry_sh *e = &c->e[idx];
	uint32_t bucket = bucket_of(c, e);
	struct lock_sh *s = stripe_of_bucket(c, bucket);
	int r;

	if ((r = lock_take(c, s, false)) != 0)
		return r;
	if (e->flags & CF_ABORTED) {
		lock_give(s);
		return CACHE_EABORTED;
	}
	if (e->flags & CF_DEAD) {
		/* Invalidated while it filled: complete for those reading it,
		 * but never back in the index. */
		e->body_len = e->len - e->key_len - e->hdr_len;
		__atomic_store_n(&e->state, E_COMPLETE, __ATOMIC_RELEASE);
		lock_give(s);
		wake_waiters(c, e);
		return CACHE_ENOENT;
	}
	if ((e->flags & EF_DETACHED) && ref->gen_check &&
	    ref->inval_gen != s->inval_gen) {
		/* The key was invalidated since the entry this one refreshes
		 * was looked up: complete for its readers, never linked. */
		e->flags = (e->flags & ~(uint32_t)EF_DETACHED) | CF_DEAD;
		e->body_len = e->len - e->key_len - e->hdr_len;
		__atomic_store_n(&e->state, E_COMPLETE, __ATOMIC_RELEASE);
		lock_give(s);
		wake_waiters(c, e);
		return CACHE_ENOENT;
	}
	e->body_len = e->len - e->key_len - e->hdr_len;
	if (e->flags & EF_DETACHED) {
		/* A refresh: replace whatever the index holds for this key. */
		uint32_t i = c->buckets[bucket];

		for (uint32_t n = 0; i != 0 && n < WALK_MAX(c); n++) {
			struct entry_sh *o = &c->e[i - 1];
			uint32_t nx = o->next;

			if (o->h[0] == e->h[0] && o->h[1] == e->h[1] &&
			    i - 1 != idx && !(o->flags & CF_DEAD))
				entry_kill(c, s, i - 1);
			i = nx;
		}
		op_begin(s, OP_LINK, idx, 0, 0, 0);
		e->next = c->buckets[bucket];
		c->buckets[bucket] = idx + 1;
		e->flags = (e->flags & ~(uint32_t)EF_DETACHED) | EF_LINKED;
		op_end(s);
	}
	__atomic_store_n(&e->state, E_COMPLETE, __ATOMIC_RELEASE);
	CRASH_POINT(c, "commit");	/* complete, not counted: the repair's */
	if (e->flags & EF_LINKED)
		stripe_objects(s, true);
	lock_give(s);
	wake_waiters(c, e);
	return 0;
}

int
cache_oversize(struct cache *c, struct cache_ref *ref)
{
	uint32_t idx = ref->idx - 1;
	struct entry_sh *e = &c->e[idx];
	struct lock_sh *s = stripe_of_bucket(c, bucket_of(c, e));
	int r = 0;

	if (lock_take(c, s, false) != 0)
		return 0;
	if (e->refs > 0 && !(e->flags & CF_ABORTED)) {
		/* Out of the index (no one new joins), never stored, but
		 * complete for those already streaming it. */
		if (!(e->flags & CF_DEAD))
			entry_kill(c, s, idx);
		__atomic_fetch_or(&e->flags, EF_UNLIMITED, __ATOMIC_RELEASE);
		r = 1;
	}
	lock_give(s);
	return r;
}

void
cache_abort(struct cache *c, struct cache_ref *ref, unsigned flags)
{
	uint32_t idx = ref->idx - 1;
	struct entry_sh *e = &c->e[idx];
	struct lock_sh *s = stripe_of_bucket(c, bucket_of(c, e));

	if (lock_take(c, s, false) != 0) {
		/* Still mark it: readers must never take it for complete. */
		__atomic_fetch_or(&e->flags, CF_ABORTED, __ATOMIC_RELEASE);
		wake_waiters(c, e);
		return;
	}
	__atomic_fetch_or(&e->flags, (flags & (CF_ABORTED | CF_PASS)) | CF_ABORTED,
	    __ATOMIC_RELEASE);
	if (!(e->flags & CF_DEAD)) {
		/* The writer's pin keeps the blocks: its own client may still
		 * be draining what was published. */
		entry_kill(c, s, idx);
	}
	lock_give(s);
	wake_waiters(c, e);
}

void
cache_release(struct cache *c, struct cache_ref *ref)
{
	uint32_t idx;
	struct entry_sh *e;
	struct lock_sh *s;

	if (c == NULL || ref->idx == 0)
		return;
	if (!ref->writer && ref->rec >= SLOT_RECS) {
		/* Not a counted reference (a borrowed copy): nothing to drop,
		 * and never an index outside the slot's table. */
		ref->idx = 0;
		return;
	}
	idx = ref->idx - 1;
	e = &c->e[idx];
	if (ref->writer && e->state == E_FILLING && !(e->flags & CF_ABORTED))
		cache_abort(c, ref, CF_ABORTED);
	s = stripe_of_bucket(c, bucket_of(c, e));
	if (lock_take(c, s, false) != 0) {
		/* Left for the master: the record stays, reaped at exit. */
		ref->idx = 0;
		return;
	}
	if (ref->writer)
		e->writer = 0;
	else {
		ref_drop_locked(c, s, idx, (uint32_t)c->me, ref->rec);
		c->freerec[c->nfreerec++] = ref->rec;
	}
	if (!(e->flags & (EF_LINKED | EF_DETACHED)) && e->refs == 0 &&
	    e->writer == 0)
		entry_free(c, idx);
	else if ((e->flags & EF_DETACHED) && e->writer == 0 &&
	    e->state != E_COMPLETE)
		entry_free(c, idx);
	lock_give(s);
	ref->idx = 0;
}

int
cache_iov(struct cache *c, struct cache_ref *ref, uint64_t off, size_t maxbytes,
    struct iovec *iov, int niov)
{
	struct entry_sh *e = &c->e[ref->idx - 1];
	uint64_t len = __atomic_load_n(&e->len, __ATOMIC_ACQUIRE);
	uint32_t b;
	int n = 0;

	if (off >= len)
		return 0;
	if (ref->cur_block == NONE || off < ref->cur_base) {
		ref->cur_block = e->first;
		ref->cur_base = 0;
	}
	while (ref->cur_block != NONE && off >= ref->cur_base + CACHE_BLOCK) {
		ref->cur_block = c->bnext[ref->cur_block];
		ref->cur_base += CACHE_BLOCK;
	}
	b = ref->cur_block;
	for (uint64_t base = ref->cur_base; b != NONE && n < niov && off < len &&
	    maxbytes > 0; base += CACHE_BLOCK) {
		uint64_t end = base + CACHE_BLOCK < len ? base + CACHE_BLOCK : len;
		size_t k = (size_t)(end - off);

		if (k > maxbytes)
			k = maxbytes;
		iov[n].iov_base = block_ptr(c, b) + (off - base);
		iov[n].iov_len = k;
		n++;
		off += k;
		maxbytes -= k;
		if (off < base + CACHE_BLOCK)
			break;
		b = c->bnext[b];
	}
	return n;
}

int
cache_copy(struct cache *c, struct cache_ref *ref, uint64_t off, void *dst,
    size_t n)
{
	struct iovec iov[16];
	uint8_t *d = dst;

	while (n > 0) {
		int k = cache_iov(c, ref, off, n, iov, 16);

		if (k <= 0)
			return -1;
		for (int i = 0; i < k; i++) {
			memcpy(d, iov[i].iov_base, iov[i].iov_len);
			d += iov[i].iov_len;
			off += iov[i].iov_len;
			n -= iov[i].iov_len;
		}
	}
	return 0;
}

void
cache_freshen(struct cache *c, struct cache_ref *ref,
    const struct cache_meta *meta)
{
	struct entry_sh *e = &c->e[ref->idx - 1];
	struct lock_sh *s = stripe_of_bucket(c, bucket_of(c, e));

	if (lock_take(c, s, false) != 0)
		return;
	__atomic_store_n(&e->meta_seq, e->meta_seq + 1, __ATOMIC_RELEASE);
	e->meta = *meta;
	__atomic_store_n(&e->meta_seq, e->meta_seq + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&e->reval, 0, __ATOMIC_RELEASE);
	lock_give(s);
}

bool
cache_mark_revalidating(struct cache *c, struct cache_ref *ref)
{
	uint8_t zero = 0;

	return __atomic_compare_exchange_n(&c->e[ref->idx - 1].reval, &zero, 1,
	    false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

int
cache_invalidate(struct cache *c, const char *key, size_t klen)
{
	uint64_t h[2];
	uint32_t bucket, idx;
	struct lock_sh *s;
	int n = 0;

	if (c == NULL || c->me < 0)
		return 0;
	cache_key_hash(c, key, klen, h);
	bucket = (uint32_t)(h[0] & (c->h->nbuckets - 1));
	s = stripe_of_bucket(c, bucket);
	if (lock_take(c, s, false) != 0)
		return 0;
	s->inval_gen++;		/* refreshes looked up before now are not linked */
	while ((idx = chain_find(c, bucket, h, key, klen)) != NONE && n < 16) {
		entry_kill(c, s, idx);
		n++;
	}
	lock_give(s);
	return n > 0;
}

uint32_t
cache_inval_gen(struct cache *c, const char *key, size_t klen)
{
	uint64_t h[2];

	if (c == NULL)
		return 0;
	cache_key_hash(c, key, klen, h);
	return __atomic_load_n(&stripe_of_bucket(c, (uint32_t)(h[0] &
	    (c->h->nbuckets - 1)))->inval_gen, __ATOMIC_ACQUIRE);
}

/* ---- eviction ----------------------------------------------------------- */

/* CLOCK: evict one complete, unreferenced entry; 0, or ENOSPC after two
 * sweeps found nothing evictable. */
static int
evict_one(struct cache *c)
{
	uint32_t n = c->h->nentries;

	for (uint64_t step = 0; step < 2ull * n + 2; step++) {
		uint32_t i = __atomic_fetch_add(&c->h->clock, 1, __ATOMIC_RELAXED) % n;
		struct entry_sh *e = &c->e[i];
		struct lock_sh *s;

		/* Unlocked pre-check; rechecked under the stripe. */
		if (e->state != E_COMPLETE || e->refs != 0 || e->writer != 0 ||
		    !(e->flags & EF_LINKED))
			continue;
		if (e->hot) {
			e->hot = 0;
			continue;
		}
		s = stripe_of_bucket(c, bucket_of(c, e));
		CRASH_POINT(c, "evict_pick");
		if (lock_take(c, s, false) != 0)
			continue;
		/* Still of this stripe: since the pre-check it may have been
		 * evicted, freed and reused for a key of another stripe, whose
		 * chain and count are not ours to change. */
		if (e->state == E_COMPLETE && e->refs == 0 && e->writer == 0 &&
		    (e->flags & EF_LINKED) &&
		    stripe_of_bucket(c, bucket_of(c, e)) == s) {
			struct cache_ref sref;
			/* The tier gets the object before the blocks go: our
			 * counted reference keeps them past entry_kill, and the
			 * release frees them (or the reap, should we die). */
			bool spill = c->spill != NULL && !c->in_spill &&
			    !(e->flags & CF_HFP) && e->len <= c->spill_max &&
			    ref_take_locked(c, s, i, &sref) == 0;

			entry_kill(c, s, i);
			lock_give(s);
			__atomic_fetch_add(&c->h->evictions, 1, __ATOMIC_RELAXED);
			if (spill) {
				c->in_spill = true;
				c->spill(c->spill_arg, c, &sref);
				c->in_spill = false;
				cache_release(c, &sref);
			}
			return 0;
		}
		lock_give(s);
	}
	return CACHE_ENOSPC;
}

void
cache_set_spill(struct cache *c, cache_spill_fn *fn, void *arg,
    uint64_t max_len)
{
	if (c == NULL)
		return;
	c->spill = fn;
	c->spill_arg = arg;
	c->spill_max = max_len;
}

void
cache_key_hash(const struct cache *c, const char *key, size_t klen, uint64_t h[2])
{
	XXH128_hash_t x = XXH3_128bits_withSeed(key, klen, c->h->seed);

	h[0] = x.low64;
	h[1] = x.high64;
}

/* ---- a dead worker ------------------------------------------------------ */

unsigned
cache_slot_reap(struct cache *c, unsigned slot)
{
	unsigned n = 0;

	if (c == NULL || slot >= c->nslots)
		return 0;
	/* Locks it died holding first: a repair may drop its records. */
	lock_probe(c, &c->h->alloc, true);
	for (uint32_t i = 0; i < c->h->nstripes; i++)
		lock_probe(c, &c->stripes[i], false);
	for (uint32_t r = 0; r < SLOT_RECS; r++) {
		uint32_t v = c->slots[slot].rec[r];
		struct lock_sh *s;

		if (v == 0 || v > c->h->nentries)
			continue;
		s = stripe_of_bucket(c, bucket_of(c, &c->e[v - 1]));
		if (lock_take(c, s, false) != 0)
			continue;
		/* The repair inside lock_take may have dropped it already. */
		if (c->slots[slot].rec[r] == v) {
			struct entry_sh *e = &c->e[v - 1];

			ref_drop_locked(c, s, v - 1, slot, r);
			if (!(e->flags & (EF_LINKED | EF_DETACHED)) &&
			    e->refs == 0 && e->writer == 0 && e->state != E_FREE)
				entry_free(c, v - 1);
			n++;
		}
		lock_give(s);
	}
	/* Entries the dead worker was filling: abandon them.  Orphans it
	 * left (entry_reclaim) go in the same pass. */
	for (uint32_t i = 0; i < c->h->nentries; i++) {
		struct entry_sh *e = &c->e[i];
		struct lock_sh *s;

		if (__atomic_load_n(&e->writer, __ATOMIC_ACQUIRE) != slot + 1) {
			/* Unlocked pre-check; entry_reclaim rechecks. */
			if (!entry_orphan(e))
				continue;
			s = stripe_of_bucket(c, bucket_of(c, e));
			if (lock_take(c, s, false) != 0)
				continue;
			entry_reclaim(c, s, i);
			lock_give(s);
			continue;
		}
		s = stripe_of_bucket(c, bucket_of(c, e));
		if (lock_take(c, s, false) != 0)
			continue;
		if (e->writer == slot + 1 && e->state != E_FREE) {
			if (e->state == E_FILLING) {
				e->flags |= CF_ABORTED;
				if (!(e->flags & CF_DEAD))
					entry_kill(c, s, i);
			}
			e->writer = 0;
			if (!(e->flags & (EF_LINKED)) && e->refs == 0)
				entry_free(c, i);
			wake_waiters(c, e);
			n++;
		}
		lock_give(s);
	}
	__atomic_store_n(&c->slots[slot].pid, 0, __ATOMIC_RELEASE);
	return n;
}
