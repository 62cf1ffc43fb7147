/*
 * cache_seg.c - the cache segment as a whole: its layout, creating it
 * (O_EXCL, 0600, owner, posix_fallocate), re-attaching a kept one after a
 * full consistency check, unmapping it, the per-run slot region, the
 * consistency check itself (fsck), gauges, and a worker's attach.
 *
 * Runs in the master (everything but cache_worker_init and the
 * heartbeat) and in tests.  The index and the objects are cache.c's.
 *
 * Why a re-attach rebuilds instead of trusting: the segment outlived
 * every process that used it, perhaps by a crash in the middle of a
 * change; the only state worth keeping is a complete object whose
 * blocks and key still check out, and the index, free lists and locks
 * are rebuilt around those.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "shm/cache_int.h"

/* ---- layout ---------------------------------------------------------- */

static uint64_t
align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint32_t
pow2_at_least(uint64_t v)
{
	uint32_t p = 1;

	while (p < v && p < (1u << 31))
		p <<= 1;
	return p;
}

/* Fill the layout fields of h for a segment of `size` bytes.  Entries:
 * one per block (every object takes at least one).  -1 when too small. */
static int
layout(struct hdr_sh *h, uint64_t size)
{
	uint64_t fixed, per, nb;

	memset(h, 0, sizeof(*h));
	h->block_size = CACHE_BLOCK;
	h->entry_size = sizeof(struct entry_sh);
	/* Solve nb: fixed + nb * (entry + bnext + 2 buckets + block) <= size. */
	fixed = align_up(sizeof(struct hdr_sh), 64) +
	    (uint64_t)CACHE_STRIPES * sizeof(struct lock_sh) + 2 * 4096;
	per = sizeof(struct entry_sh) + 4 + 2 * 4 + CACHE_BLOCK;
	if (size <= fixed + 16 * per)
		return -1;
	nb = (size - fixed) / per;
	if (nb > UINT32_MAX - 2)
		nb = UINT32_MAX - 2;
	h->nblocks = (uint32_t)nb;
	h->nentries = (uint32_t)nb;
	h->nbuckets = pow2_at_least(nb);
	if (h->nbuckets > 2 * nb)	/* keep buckets within the 2-per budget */
		h->nbuckets >>= 1;
	h->nstripes = h->nbuckets < CACHE_STRIPES ? h->nbuckets : CACHE_STRIPES;
	h->off_stripes = align_up(sizeof(struct hdr_sh), 64);
	h->off_buckets = h->off_stripes + (uint64_t)h->nstripes * sizeof(struct lock_sh);
	h->off_entries = align_up(h->off_buckets + (uint64_t)h->nbuckets * 4, 64);
	h->off_bnext = h->off_entries + (uint64_t)h->nentries * sizeof(struct entry_sh);
	h->off_blocks = align_up(h->off_bnext + (uint64_t)h->nblocks * 4, 4096);
	if (h->off_blocks + (uint64_t)h->nblocks * CACHE_BLOCK > size)
		return -1;
	h->size = size;
	h->magic = CACHE_MAGIC;
	h->layout = CACHE_LAYOUT;
	return 0;
}

static void
map_regions(struct cache *c)
{
	uint8_t *base = (uint8_t *)c->h;

	c->stripes = (struct lock_sh *)(base + c->h->off_stripes);
	c->buckets = (uint32_t *)(base + c->h->off_buckets);
	c->e = (struct entry_sh *)(base + c->h->off_entries);
	c->bnext = (uint32_t *)(base + c->h->off_bnext);
	c->blocks = base + c->h->off_blocks;
}


/* ---- the master ----------------------------------------------------------- */

int
cache_plan(uint64_t size, struct cache_gauges *g)
{
	struct hdr_sh h;

	memset(g, 0, sizeof(*g));
	if (layout(&h, size) != 0)
		return CACHE_ETOOBIG;
	g->size = h.size;
	g->block_size = h.block_size;
	g->blocks_total = g->blocks_free = h.nblocks;
	g->entries_total = h.nentries;
	return 0;
}

static bool
pid_is_sluice(int pid)
{
	char path[64], comm[32] = "";
	FILE *f;

	if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	if (fgets(comm, sizeof(comm), f) == NULL)
		comm[0] = '\0';
	fclose(f);
	return strncmp(comm, "sluice", 6) == 0;
}

/* Fresh segment contents: free lists, empty index, new locks and seed. */
static int
segment_format(struct cache *c)
{
	struct hdr_sh *h = c->h;

	map_regions(c);
	if (RAND_bytes((unsigned char *)&h->seed, sizeof(h->seed)) != 1)
		h->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	for (uint32_t i = 0; i < h->nstripes; i++) {
		memset(&c->stripes[i], 0, sizeof(c->stripes[i]));
		if (cache_lock_init(&c->stripes[i].m) != 0)
			return CACHE_ESYS;
	}
	memset(&h->alloc, 0, sizeof(h->alloc));
	if (cache_lock_init(&h->alloc.m) != 0)
		return CACHE_ESYS;
	memset(c->buckets, 0, (size_t)h->nbuckets * 4);
	memset(c->e, 0, (size_t)h->nentries * sizeof(struct entry_sh));
	cache_alloc_rebuild(c);
	h->evictions = 0;	/* the stripes' object counts: 0 above */
	h->clock = 0;
	return 0;
}

/*
 * A kept segment from an earlier run: no process uses it now, so make it
 * whole again.  Every lock is re-initialised; an entry survives only if
 * it was complete and indexed, its chain is intact and long enough, and
 * its key bytes still hash to its stored hash.  The index and the free
 * lists are rebuilt from the survivors.  Returns the objects kept.
 */
static uint64_t
segment_recover(struct cache *c)
{
	struct hdr_sh *h = c->h;
	uint64_t kept = 0;
	char *kb = NULL;
	size_t kcap = 0;

	map_regions(c);
	for (uint32_t i = 0; i < h->nstripes; i++) {
		memset(&c->stripes[i], 0, sizeof(c->stripes[i]));
		cache_lock_init(&c->stripes[i].m);
	}
	memset(&h->alloc, 0, sizeof(h->alloc));
	cache_lock_init(&h->alloc.m);
	memset(c->buckets, 0, (size_t)h->nbuckets * 4);
	/* Chains first (cuts broken ones), then judge each entry. */
	cache_alloc_rebuild(c);
	for (uint32_t i = 0; i < h->nentries; i++) {
		struct entry_sh *e = &c->e[i];
		bool ok = e->state == E_COMPLETE &&
		    (e->flags & EF_LINKED) &&
		    !(e->flags & (CF_DEAD | CF_ABORTED | CF_PASS)) &&
		    (e->flags & CF_HEAD) &&
		    e->len <= (uint64_t)e->nblocks * CACHE_BLOCK &&
		    (uint64_t)e->key_len + e->hdr_len <= e->len &&
		    e->body_len == e->len - e->key_len - e->hdr_len;

		if (ok) {
			struct cache_ref r;
			uint64_t hh[2];

			if (kcap < e->key_len + 1u) {
				free(kb);
				kcap = e->key_len + 1u;
				kb = malloc(kcap);
			}
			memset(&r, 0, sizeof(r));
			r.idx = i + 1;
			r.cur_block = NONE;
			ok = kb != NULL && cache_copy(c, &r, 0, kb, e->key_len) == 0;
			if (ok) {
				cache_key_hash(c, kb, e->key_len, hh);
				ok = hh[0] == e->h[0] && hh[1] == e->h[1];
			}
		}
		e->refs = 0;
		e->writer = 0;
		e->waiters = 0;
		e->reval = 0;
		e->meta_seq = 0;
		if (ok) {
			uint32_t b = bucket_of(c, e);

			e->next = c->buckets[b];
			c->buckets[b] = i + 1;
			e->flags = EF_LINKED | CF_HEAD | (e->flags & (CF_VARY | CF_HFP));
			stripe_of_bucket(c, b)->objects++;
			kept++;
		} else if (e->state != E_FREE) {
			e->state = E_FREE;
			e->flags = 0;
		}
	}
	free(kb);
	cache_alloc_rebuild(c);	/* now without the dropped entries */
	return kept;
}

static void
cache_free(struct cache *c)
{
	if (c == NULL)
		return;
	if (c->h != NULL)
		munmap(c->h, c->maplen);
	if (c->slots != NULL)
		munmap(c->slots, c->slots_len);
	if (c->wake_rx >= 0)
		close(c->wake_rx);
	if (c->wake_tx >= 0)
		close(c->wake_tx);
	free(c->freerec);
	free(c);
}

/* Open the existing segment of a previous run for re-attaching. */
static int
segment_attach(struct cache *c, const struct cache_params *p, int fd,
    char *note, size_t notelen)
{
	struct hdr_sh want, *h;
	struct stat st;
	void *m;

	if (fstat(fd, &st) != 0)
		return CACHE_ESYS;
	if ((p->uid >= 0 && st.st_uid != (uid_t)p->uid) ||
	    (st.st_mode & 07777) != 0600)
		return CACHE_EOWNER;
	if (layout(&want, p->size) != 0 || (uint64_t)st.st_size != want.size)
		return CACHE_ELAYOUT;
	m = mmap(NULL, want.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return CACHE_ESYS;
	h = m;
	if (h->magic != CACHE_MAGIC || h->layout != CACHE_LAYOUT ||
	    h->size != want.size || h->block_size != want.block_size ||
	    h->nblocks != want.nblocks || h->nentries != want.nentries ||
	    h->nbuckets != want.nbuckets || h->nstripes != want.nstripes ||
	    h->entry_size != want.entry_size ||
	    h->off_blocks != want.off_blocks) {
		munmap(m, want.size);
		return CACHE_ELAYOUT;
	}
	if (pid_is_sluice(h->creator_pid) && h->creator_pid != getpid()) {
		munmap(m, want.size);
		return CACHE_EINUSE;
	}
	c->h = h;
	c->maplen = want.size;
	snprintf(note, notelen, "re-attached cache segment %s: %llu objects kept",
	    p->name, (unsigned long long)segment_recover(c));
	return 0;
}

int
cache_open(struct cache **cp, const struct cache_params *p, char *note,
    size_t notelen)
{
	struct cache *c;
	struct hdr_sh want;
	int fd = -1, r;
	bool attached = false;

	*cp = NULL;
	if (note && notelen)
		note[0] = '\0';
	if (layout(&want, p->size) != 0)
		return CACHE_ETOOBIG;	/* too small: the config check bounds it */
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return CACHE_ESYS;
	c->me = -1;
	c->wake_rx = c->wake_tx = -1;
	snprintf(c->name, sizeof(c->name), "%s", p->name);

	fd = shm_open(p->name, O_RDWR, 0600);
	if (fd >= 0) {
		r = p->persist ? segment_attach(c, p, fd, note, notelen) :
		    CACHE_ELAYOUT;
		if (r == 0)
			attached = true;
		else if (r == CACHE_EOWNER || r == CACHE_EINUSE)
			goto fail;
		else {
			/* A leftover of a stopped or crashed run, or another
			 * layout: check it is not a live sluice's, then start
			 * over. */
			struct hdr_sh old;
			struct stat st;

			/* Only our own leftover: same owner, 0600.  A name
			 * someone else created is theirs, never removed. */
			if (fstat(fd, &st) != 0 || (st.st_mode & 07777) != 0600 ||
			    st.st_uid != (p->uid >= 0 ? (uid_t)p->uid : geteuid())) {
				r = CACHE_EOWNER;
				goto fail;
			}
			if (pread(fd, &old, sizeof(old), 0) == (ssize_t)sizeof(old) &&
			    old.magic == CACHE_MAGIC && old.creator_pid != getpid() &&
			    pid_is_sluice(old.creator_pid)) {
				r = CACHE_EINUSE;
				goto fail;
			}
			snprintf(note, notelen, "cache segment %s %s: recreated",
			    p->name, p->persist ? "of another size or layout" :
			    "left by an earlier run");
			close(fd);
			fd = -1;
			shm_unlink(p->name);
		}
	} else if (errno != ENOENT) {
		r = CACHE_ESYS;
		goto fail;
	}
	if (!attached) {
		/* O_EXCL: a name someone pre-created is never adopted. */
		fd = shm_open(p->name, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0) {
			r = errno == EEXIST ? CACHE_EOWNER : CACHE_ESYS;
			goto fail;
		}
		if ((p->uid >= 0 || p->gid >= 0) &&
		    fchown(fd, (uid_t)p->uid, (gid_t)p->gid) != 0)
			goto sysfail;
		if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)want.size) != 0)
			goto sysfail;
		/* Reserve the pages now: tmpfs is sparse, and a page it cannot
		 * supply later would be SIGBUS in a worker (HOSTILE F5). */
		if ((errno = posix_fallocate(fd, 0, (off_t)want.size)) != 0)
			goto sysfail_unlink;
		c->h = mmap(NULL, want.size, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, 0);
		if (c->h == MAP_FAILED) {
			c->h = NULL;
			goto sysfail_unlink;
		}
		c->maplen = want.size;
		*c->h = want;
		if ((r = segment_format(c)) != 0)
			goto fail_unlink;
	}
	close(fd);
	fd = -1;
	/* Huge pages where the admin allows them for shared memory
	 * (transparent_hugepage/shmem_enabled = advise): fewer TLB misses
	 * on a large index.  A no-op otherwise. */
	(void)madvise(c->h, c->maplen, MADV_HUGEPAGE);
	c->h->creator_pid = getpid();
	c->h->max_object = p->max_object;

	c->nslots = p->nslots;
	c->slots_len = (size_t)p->nslots * sizeof(struct slot_sh);
	c->slots = mmap(NULL, c->slots_len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c->slots == MAP_FAILED) {
		c->slots = NULL;
		goto sysfail;
	}
	*cp = c;
	return 0;

sysfail_unlink:
	r = CACHE_ESYS;
fail_unlink:
	{
		int e = errno;

		shm_unlink(p->name);
		errno = e;
	}
	goto fail;
sysfail:
	r = CACHE_ESYS;
fail:
	{
		int e = errno;

		if (fd >= 0)
			close(fd);
		cache_free(c);
		errno = e;
	}
	return r;
}

void
cache_close(struct cache *c, bool unlink_segment)
{
	if (c == NULL)
		return;
	if (unlink_segment && c->me < 0)
		shm_unlink(c->name);
	cache_free(c);
}

void
cache_claim(struct cache *c)
{
	if (c != NULL)
		c->h->creator_pid = getpid();
}

void
cache_set_max_object(struct cache *c, uint64_t max_object)
{
	if (c != NULL)
		__atomic_store_n(&c->h->max_object, max_object, __ATOMIC_RELAXED);
}

uint64_t
cache_segment_size(const struct cache *c)
{
	return c ? c->h->size : 0;
}

void
cache_slot_start(struct cache *c, unsigned slot, int pid)
{
	if (c == NULL || slot >= c->nslots)
		return;
	memset(c->slots[slot].rec, 0, sizeof(c->slots[slot].rec));
	c->slots[slot].heartbeat = 0;
	__atomic_store_n(&c->slots[slot].pid, pid, __ATOMIC_RELEASE);
}

int
cache_fsck(struct cache *c, const char **why)
{
	struct hdr_sh *h = c->h;
	uint8_t *mark = calloc(h->nblocks / 8 + 1, 1);
	uint8_t *indexed = calloc(h->nentries / 8 + 1, 1);
	uint32_t *objs = calloc(h->nstripes, sizeof(uint32_t));
	uint64_t used = 0, fb = 0, fe = 0, refsum = 0, recs = 0;
	int bad = 0;

	*why = "ok";
#define FSCK(cond, msg) do { if (!(cond)) { if (bad == 0) *why = (msg); bad--; } } while (0)
	FSCK(mark != NULL && indexed != NULL && objs != NULL, "out of memory");
	if (mark == NULL || indexed == NULL || objs == NULL) {
		free(mark);
		free(indexed);
		free(objs);
		return bad;
	}
	/* What the index reaches, walked from the buckets (not EF_LINKED). */
	for (uint32_t b = 0; b < h->nbuckets; b++)
		for (uint32_t i = c->buckets[b], n = 0; i != 0 && n <= h->nentries;
		    i = c->e[i - 1].next, n++) {
			FSCK(i <= h->nentries, "a bucket chain leaves the entries");
			if (i > h->nentries)
				break;
			indexed[(i - 1) / 8] |= (uint8_t)(1u << ((i - 1) % 8));
			objs[b & (h->nstripes - 1)] += c->e[i - 1].state == E_COMPLETE;
		}
	for (uint32_t i = 0; i < h->nentries; i++) {
		struct entry_sh *e = &c->e[i];
		uint32_t b = e->first, n = 0;
		bool in_index = indexed[i / 8] & (1u << (i % 8));

		if (e->state == E_FREE) {
			FSCK(!in_index, "a free entry is in the index");
			continue;
		}
		FSCK(in_index == !!(e->flags & EF_LINKED),
		    "an entry's linked flag differs from the index");
		/* In use, yet nothing can ever free it (see entry_reclaim). */
		FSCK(in_index || e->refs != 0 || e->writer != 0,
		    "an entry leaks: in use, not indexed, unreferenced, unpinned");
		while (b != NONE && n < e->nblocks && b < h->nblocks) {
			FSCK(!(mark[b / 8] & (1u << (b % 8))), "a block is in two chains");
			mark[b / 8] |= (uint8_t)(1u << (b % 8));
			b = c->bnext[b];
			n++;
		}
		FSCK(n == e->nblocks, "a chain is shorter than its count");
		FSCK(e->len <= (uint64_t)n * CACHE_BLOCK, "an entry is longer than its blocks");
		used += n;
		refsum += e->refs;
	}
	for (uint32_t b = h->free_block, n = 0; b != NONE && n <= h->nblocks;
	    b = c->bnext[b], n++) {
		FSCK(b < h->nblocks, "the free list leaves the pool");
		if (b >= h->nblocks)
			break;
		FSCK(!(mark[b / 8] & (1u << (b % 8))), "a free block is in use");
		mark[b / 8] |= (uint8_t)(1u << (b % 8));
		fb++;
	}
	for (uint32_t i = h->free_entry, n = 0; i != NONE && n <= h->nentries;
	    i = c->e[i].next, n++) {
		FSCK(i < h->nentries && c->e[i].state == E_FREE, "the free entry list is bad");
		if (i >= h->nentries)
			break;
		fe++;
	}
	FSCK(fb == h->nfree_blocks, "the free block count is wrong");
	FSCK(fb + used == h->nblocks, "blocks leak: free + used != total");
	FSCK(fe == h->nfree_entries, "the free entry count is wrong");
	for (unsigned s = 0; s < c->nslots; s++)
		for (uint32_t r = 0; r < SLOT_RECS; r++)
			recs += c->slots[s].rec[r] != 0;
	FSCK(recs == refsum, "entry refs differ from the slot records");
	/* Each stripe's object count against its chains; the gauge is
	 * their sum.  Last: a broken chain above says more. */
	for (uint32_t s = 0; s < h->nstripes; s++)
		FSCK(objs[s] == c->stripes[s].objects,
		    "a stripe's object count differs from its chains");
#undef FSCK
	free(mark);
	free(indexed);
	free(objs);
	return bad;
}

int
cache_gauges(const struct cache *c, struct cache_gauges *g)
{
	uint64_t refs = 0;

	memset(g, 0, sizeof(*g));
	if (c == NULL)
		return CACHE_ENOENT;
	g->size = c->h->size;
	g->block_size = CACHE_BLOCK;
	g->blocks_total = c->h->nblocks;
	g->blocks_free = __atomic_load_n(&c->h->nfree_blocks, __ATOMIC_RELAXED);
	g->blocks_used = g->blocks_total - g->blocks_free;
	g->entries_total = c->h->nentries;
	g->entries_used = g->entries_total -
	    __atomic_load_n(&c->h->nfree_entries, __ATOMIC_RELAXED);
	/* Without locks: approximate under load, exact at rest. */
	for (uint32_t s = 0; s < c->h->nstripes; s++)
		g->objects += __atomic_load_n(&c->stripes[s].objects,
		    __ATOMIC_RELAXED);
	g->evictions = __atomic_load_n(&c->h->evictions, __ATOMIC_RELAXED);
	for (unsigned s = 0; s < c->nslots; s++)
		if (c->slots[s].pid != 0)
			for (uint32_t r = 0; r < SLOT_RECS; r++)
				refs += c->slots[s].rec[r] != 0;
	g->refs = refs;
	return 0;
}

/* ---- a worker ------------------------------------------------------------ */

int
cache_worker_init(struct cache *c, unsigned slot)
{
	if (c == NULL || slot >= c->nslots)
		return -1;
	c->me = (int)slot;
	/* A handle that already was a worker (tests: a fork of one) drops
	 * its old table and wakeup socket instead of leaking them. */
	free(c->freerec);
	if (c->wake_rx >= 0)
		close(c->wake_rx);
	c->wake_rx = -1;
	if ((c->freerec = malloc(SLOT_RECS * sizeof(uint32_t))) == NULL)
		return -1;
	c->nfreerec = 0;
	for (uint32_t r = SLOT_RECS; r-- > 0;)
		if (c->slots[slot].rec[r] == 0)
			c->freerec[c->nfreerec++] = r;
	{
		struct sockaddr_un a;
		socklen_t alen = cache_wake_addr(c, slot, &a);

		c->wake_rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->wake_rx < 0 || bind(c->wake_rx, (struct sockaddr *)&a, alen) < 0) {
			if (c->wake_rx >= 0)
				close(c->wake_rx);
			c->wake_rx = -1;
			return -1;
		}
	}
	return c->wake_rx;
}

void
cache_heartbeat(struct cache *c, uint64_t now_ms)
{
	if (c != NULL && c->me >= 0)
		__atomic_store_n(&c->slots[c->me].heartbeat, now_ms, __ATOMIC_RELAXED);
}

uint64_t
cache_slot_heartbeat(const struct cache *c, unsigned slot)
{
	if (c == NULL || slot >= c->nslots)
		return 0;
	return __atomic_load_n(&c->slots[slot].heartbeat, __ATOMIC_RELAXED);
}

#ifdef SLUICE_FAULT_INJECTION
void
cache_test_crash_at(struct cache *c, const char *point)
{
	c->crash_at = point;
}
#endif
