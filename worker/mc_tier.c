/*
 * mc_tier.c - the memcached tier in a worker: lookup after a shm miss,
 * promotion into shm, stores (spill and shared), deletes.
 *
 * What: a request that misses shm holds a new filling entry (so
 * concurrent misses, in any worker, wait on it: collapsed forwarding).
 * Before it goes to the origin it asks memcached (state C_MC, deadline
 * memcached.timeout_ms per round trip).  A verified item is written into
 * that entry and committed, and the lookup runs again: the entry is now
 * in shm and the usual rules (freshness, Vary, revalidation) decide, so
 * an object from memcached is treated exactly as one that never left
 * shm.  Anything else (miss, timeout, error, server down, an item that
 * does not verify, a missing chunk) sends the request to the origin.
 *
 * An item's meta (mc_item.h leaves it to us), big-endian:
 *
 *   off len
 *    0   4   meta format (1)
 *    4   4   entry flags: 0, or CF_VARY for a Vary marker
 *    8   4   hdr_len: length of the stored head
 *   12   4   cache_meta.flags
 *   16  64   cache_meta times: request_time, response_time, date,
 *            age_value, lifetime, last_modified, swr, sie (signed)
 *   80   hdr_len  the stored head (status line and fields, CRLF each)
 *
 * The times travel as they are, so Age and freshness in another node
 * count from when the origin answered, not from when the item was read.
 *
 * Stores: spill mode hands the tier every object shm evicts (the
 * cache's spill hook, called inside the allocation that evicted);
 * shared mode stores each object when its fill commits.  Either way
 * the object is copied once from shm into the item buffer and handed to
 * the client threads, which seal it (its HMAC: mc_client_set_seal) and
 * own it from there; they check the HMAC of every item got, too, so no
 * HMAC runs on the event loop.
 * Bytes queued for memcached are bounded (STORE_QUEUE_MAX): past that a
 * store is dropped, never waited for.
 *
 * Purges across a farm: each node has its own shm, so deleting the item
 * in memcached is not enough.  A PURGE or an invalidating method also
 * appends to a purge log in memcached: `incr` of a counter, then the
 * purged key as record number N (an item sealed like any other, under
 * the name of "P N", so a record cannot be forged or replayed under
 * another number).  Every server has a log of its own (counter and
 * records placed on it, not hashed); a purge goes to the log of the
 * server its key hashes to, or the next one whose `incr` answers.
 * Every worker reads every counter every second and drops the keys of
 * the new records from the node's shm (a drop is idempotent, so no
 * worker needs to be the one).  A record not there yet is looked for
 * again on the next two polls, then skipped; a counter that went back
 * or jumped (its server restarted or was flushed, and a purge created
 * it again at a random base) has its last batch replayed.  A purge no
 * server takes waits in a bounded queue and is logged when one is back;
 * until then other nodes keep their copies.
 *
 * A purged key is remembered for a minute with the time of the purge:
 * a copy of it fetched before that time is neither stored nor promoted.
 * That closes the window in which a node that has not read the purge
 * yet spills (or a late set lands) the old object back into memcached;
 * a node that reads a purge record also deletes the key in memcached
 * again, after its own queued sets of that key (one lane per key).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <openssl/rand.h>

#include "lib/be.h"
#include "lib/log.h"
#include "shm/cache.h"
#include "shm/cache_policy.h"
#include "shm/mc_item.h"
#include "shm/shm_stats.h"
#include "worker/cache_serve.h"
#include "worker/conn_int.h"
#include "worker/mc_client.h"
#include "worker/mc_tier.h"

#define META_VERSION	1
#define META_FIXED	80
#define MC_THREADS	2
#define STORE_QUEUE_MAX	(64u * 1024 * 1024)	/* bytes queued for sets */
#define DEADLINE_SLACK	20			/* ms over timeout_ms per round */
#define PLOG_BATCH	256		/* purge records read per poll */
#define PLOG_RETRIES	2		/* polls a missing record is waited for */
#define PLOG_SEQ_KEY	"P seq"		/* the counter's "cache key" */
#define PLOG_PENDING_MAX 1024		/* purges waiting to be logged */
#define PLOG_JUMP	(1u << 20)	/* a counter further ahead is a new one */
#define REDELETE_MS	2000		/* a purge deletes the item again after */
#define REDELETE_MAX	1024		/* purges waiting for that */
#define RECENT_SLOTS	4096		/* purged keys remembered, by hash */
#define RECENT_TTL	60		/* seconds a purge is remembered */
#define BIG_MIN		(64u * 1024 * 1024)	/* least memory for big objects */

/* A key purged lately (the table is direct-mapped: a collision forgets
 * the older purge, which only reopens the window it closes). */
struct recent {
	uint64_t h;			/* key hash; 0 free */
	int64_t at;			/* when it was purged, wall seconds */
};

/* One purge-log read in flight. */
struct plog_get {
	uint64_t job, seq;
};

/* One server's purge log as this worker reads it: the counter and the
 * records of that server (placed there, not hashed). */
struct plog {
	bool synced;			/* seen is the counter's value */
	uint64_t seen;			/* records applied up to here */
	uint64_t job;			/* counter read in flight, 0 none */
	struct plog_get recs[PLOG_BATCH];
	unsigned n, left;		/* records asked for, not answered */
	uint64_t first_missing;		/* 0 none (absent: the writer may be late) */
	uint64_t first_failed;		/* 0 none (a read that failed: again) */
	unsigned tries;
	uint64_t target;		/* the counter's last value read */
};

struct mc_tier {
	struct worker *w;
	struct mc_client *mc;
	const char *secret;
	size_t secret_len;
	size_t item_max;		/* value bytes per memcached item */
	uint64_t max_object;		/* memcached.max_object_size */
	uint64_t queued;		/* bytes of sets not completed */
	bool shared;
	/* the purge logs, one per server (read by the polling worker) */
	bool plog_poll;
	struct plog *logs;
	unsigned nlogs;
	struct plog_add *plog_pending;	/* purges not logged yet (FIFO) */
	unsigned plog_npending;
	struct plog_add *redel, *redel_tail;	/* purges to delete again (FIFO) */
	unsigned nredel;
	char plog_seq_mckey[MC_ITEM_MCKEY_SIZE];
	struct recent recent[RECENT_SLOTS];
	uint64_t lookup_bytes;		/* bodies read from memcached, in memory */
	uint64_t tee_bytes;		/* bodies being copied for a store */
	struct mc_tee *tees;		/* those tees */
	struct mc_obj *objs;		/* objects served from memory, shared */
	uint64_t big_max;		/* limit of each of those two */
};

/* A purge waiting for its record number (the incr's answer). */
struct plog_add {
	struct plog_add *next;		/* plog_pending or redel */
	unsigned si, tried;		/* the log (server) tried, and how many */
	int64_t at;			/* wall seconds of the purge */
	uint64_t due;			/* redel: ev_now() ms of the second delete */
	size_t klen;
	char key[];
};

/* A PURGE waiting for memcached's delete (creq's pw): answered when it
 * completes, so the purging client's next request, in any worker, can
 * no longer read the item.  c is NULL once the request ended or was
 * answered (the delete's completion frees it then). */
struct mc_purge {
	struct conn *c;
	int status;
};

/* What a set is, so its completion can be counted and its bytes freed
 * from the queue budget. */
struct mc_set {
	size_t bytes;
	bool whole;			/* object or manifest (not a chunk) */
	struct plog_add *purge;		/* a purge record: logged elsewhere if
					   this set fails */
};

/* A lookup in flight (struct creq's mf). */
struct mc_fetch {
	uint64_t job;			/* object/manifest get; 0 when done */
	void *man;			/* the manifest item (mv points in) */
	struct mc_item_view mv;
	uint32_t n, left;		/* chunks, chunks not arrived */
	uint64_t charged;		/* bytes counted in lookup_bytes */
	uint64_t *jobs;			/* chunk gets (0: arrived) */
	void **items;			/* chunk items */
	size_t *lens;
	int *checks;			/* the client thread's HMAC check */
	uint32_t gen;			/* cache_inval_gen() when it began */
	char mckey[MC_ITEM_MCKEY_SIZE];
};

/* An object too large for shm, served from the items read (creq's
 * mobj).  Offsets count from the stored head, as in a view with
 * key_len 0. */
struct mc_obj {
	struct mc_obj *prev, *next;	/* the tier's shared objects */
	unsigned refs;			/* requests serving it */
	bool dead;			/* purged: off the list, not shared */
	uint64_t hash;			/* key_hash() of key */
	char *key;
	size_t klen;
	uint32_t gen;			/* cache_inval_gen() when its read began */
	uint8_t nonce[MC_ITEM_NONCE_LEN];	/* its manifest's */
	struct mc_fetch *mf;		/* owns the items and the budget charge */
	const uint8_t *head;		/* inside an item */
	uint32_t hdr_len;
	struct cache_meta meta;
	struct iovec *body;		/* inside the items */
	size_t nbody;
	uint64_t body_len;
};

/* A forwarded body copied for memcached (creq's tee), on the tier's
 * list of tees in flight so that a purge of its key can stop it. */
struct mc_tee {
	struct mc_tee *prev, *next;
	uint64_t hash;			/* key_hash() of its key */
	bool dead;			/* purged meanwhile: never stored */
	uint8_t *buf;			/* [key][head][body], as a shm entry */
	uint32_t key_len, hdr_len;
	struct cache_meta meta;
	uint64_t body_len, got;
	uint64_t charged;		/* bytes counted in tee_bytes */
};

static void
stat(struct mc_tier *t, enum shm_stat_id id, uint64_t n)
{
	shm_stats_add(t->w->stats, id, n);
}

/* ---- meta --------------------------------------------------------------- */

static void
put64s(uint8_t *p, int64_t v)
{
	be_put64(p, (uint64_t)v);
}

static int64_t
get64s(const uint8_t *p)
{
	return (int64_t)be_get64(p);
}

/* The fixed part of the meta (the head follows it). */
static void
meta_put(uint8_t *p, unsigned eflags, uint32_t hdr_len,
    const struct cache_meta *m)
{
	be_put32(p, META_VERSION);
	be_put32(p + 4, eflags & CF_VARY);
	be_put32(p + 8, hdr_len);
	be_put32(p + 12, m->flags);
	put64s(p + 16, m->request_time);
	put64s(p + 24, m->response_time);
	put64s(p + 32, m->date);
	put64s(p + 40, m->age_value);
	put64s(p + 48, m->lifetime);
	put64s(p + 56, m->last_modified);
	put64s(p + 64, m->swr);
	put64s(p + 72, m->sie);
}

/* Parse a verified item's meta; -1 when it is not one we write (an
 * item of a newer sluice under the same secret, say). */
static int
meta_get(const uint8_t *p, size_t len, uint64_t body_len, unsigned *eflags,
    struct cache_meta *m, const uint8_t **head, uint32_t *hdr_len)
{
	if (len < META_FIXED || be_get32(p) != META_VERSION)
		return -1;
	*eflags = be_get32(p + 4);
	*hdr_len = be_get32(p + 8);
	if ((*eflags & ~(unsigned)CF_VARY) != 0 ||
	    (size_t)*hdr_len != len - META_FIXED || *hdr_len == 0)
		return -1;
	if ((*eflags & CF_VARY) && body_len != 0)
		return -1;
	memset(m, 0, sizeof(*m));
	m->flags = be_get32(p + 12);
	m->request_time = get64s(p + 16);
	m->response_time = get64s(p + 24);
	m->date = get64s(p + 32);
	m->age_value = get64s(p + 40);
	m->lifetime = get64s(p + 48);
	m->last_modified = get64s(p + 56);
	m->swr = get64s(p + 64);
	m->sie = get64s(p + 72);
	*head = p + META_FIXED;
	/* A stored head is a status line and fields, CRLF each. */
	if (!(*eflags & CF_VARY) && (*hdr_len < 14 ||
	    memcmp(*head, "HTTP/1.1 ", 9) != 0 ||
	    memcmp(*head + *hdr_len - 2, "\r\n", 2) != 0))
		return -1;
	return 0;
}

/* ---- verifying items -------------------------------------------------- */

/* The client threads' check of every value got: the HMAC (the costly
 * part of a decode, 12 us for 16 KiB here) runs off the event loop. */
static int
check_item(void *arg, const void *value, size_t len)
{
	const struct mc_tier *t = arg;

	return mc_item_check_mac(t->secret, t->secret_len, value, len);
}

/* The client threads' seal of every value set: items are encoded
 * unsealed on the loop (id.unsealed) and their HMAC written here. */
static int
seal_item(void *arg, void *value, size_t len)
{
	const struct mc_tier *t = arg;

	return mc_item_seal(t->secret, t->secret_len, value, len);
}

/* Decode a value got, whose HMAC the client thread checked (check). */
static int
decode_got(struct mc_item_view *v, const struct mc_item_id *id,
    const void *item, size_t len, int check)
{
	if (check != MC_ITEM_OK) {
		memset(v, 0, sizeof(*v));
		return check;
	}
	return mc_item_decode_checked(v, id, item, len);
}

/* ---- the tier ------------------------------------------------------------ */

static void spill(void *arg, struct cache *c, struct cache_ref *ref);
static void plog_poll(struct mc_tier *t);
static void redelete_later(struct mc_tier *t, struct plog_add *a);
static bool recent_purged(const struct mc_tier *t, const char *key, size_t klen,
    int64_t response_time);

struct mc_tier *
mc_tier_new(struct worker *w, bool poll_purges, char *err, size_t errlen)
{
	const struct sluice_conf *cf = w->conf;
	struct mc_tier *t;

	if (cf->memcached.nservers == 0 || w->cache == NULL) {
		snprintf(err, errlen, "no servers or no cache");
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	t->w = w;
	t->secret = cf->memcached.secret;
	t->secret_len = strlen(t->secret);
	t->item_max = MC_ITEM_VALUE_MAX_DEFAULT;
	t->max_object = cf->memcached.max_object_size;
	t->shared = cf->memcached.mode == MC_SHARED;
	/* Chunked lookups, objects served from memory and tees each get
	 * BIG_MIN, or room for one largest object. */
	t->big_max = t->max_object + (1u << 20) > BIG_MIN ?
	    t->max_object + (1u << 20) : BIG_MIN;
	t->mc = mc_client_new((const char *const *)cf->memcached.servers,
	    cf->memcached.nservers, cf->memcached.timeout_ms, MC_THREADS, err,
	    errlen);
	if (t->mc == NULL) {
		free(t);
		return NULL;
	}
	mc_client_set_check(t->mc, check_item, t);
	mc_client_set_seal(t->mc, seal_item, t);
	t->nlogs = mc_client_nservers(t->mc);
	if (t->nlogs > 0 &&
	    (t->logs = calloc(t->nlogs, sizeof(*t->logs))) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		mc_client_free(t->mc);
		free(t);
		return NULL;
	}
	/* Spill mode keeps what eviction drops; shared mode stored every
	 * object already when it was filled. */
	if (!t->shared)
		cache_set_spill(w->cache, spill, t, t->max_object + 65536);
	{
		struct mc_item_id id = { PLOG_SEQ_KEY, sizeof(PLOG_SEQ_KEY) - 1,
		    t->secret, t->secret_len, false };

		t->plog_poll = mc_item_mckey(t->plog_seq_mckey, &id) > 0 &&
		    poll_purges;
	}
	mc_tier_gauges(t);
	return t;
}

void
mc_tier_free(struct mc_tier *t)
{
	if (t == NULL)
		return;
	cache_set_spill(t->w->cache, NULL, NULL, 0);
	mc_client_free(t->mc);
	while (t->plog_pending != NULL) {
		struct plog_add *a = t->plog_pending;

		t->plog_pending = a->next;
		free(a);
	}
	while (t->redel != NULL) {
		struct plog_add *a = t->redel;

		t->redel = a->next;
		free(a);
	}
	free(t->logs);
	free(t);
}

int
mc_tier_fd(const struct mc_tier *t)
{
	return t ? mc_client_fd(t->mc) : -1;
}

void
mc_tier_gauges(struct mc_tier *t)
{
	struct mc_client_stats st;

	if (t == NULL)
		return;
	plog_poll(t);
	if (t->w->stats == NULL)
		return;
	mc_client_stats(t->mc, &st);
	__atomic_store_n(&t->w->stats->mc_servers, st.servers, __ATOMIC_RELAXED);
	__atomic_store_n(&t->w->stats->mc_servers_up, st.servers_up,
	    __ATOMIC_RELAXED);
}

/* ---- stores ---------------------------------------------------------------- */

/* Hand one sealed item to the threads (takes buf). */
static void plog_next(struct mc_tier *t, struct plog_add *a);

static void
set_item_on(struct mc_tier *t, int on, const char *mckey, void *buf,
    size_t len, bool whole, struct plog_add *purge)
{
	struct mc_set *s = malloc(sizeof(*s));
	uint64_t job;

	if (s == NULL) {
		free(buf);
		free(purge);
		return;
	}
	s->bytes = len;
	s->whole = whole;
	s->purge = purge;
	job = on < 0 ?
	    mc_client_set_take(t->mc, mckey, strlen(mckey), buf, len, 0, s) :
	    mc_client_on(t->mc, (unsigned)on, MC_OP_SET, mckey, strlen(mckey),
	    buf, len, 0, s);
	if (job == MC_NOJOB) {
		free(s);
		stat(t, STAT_memcached_errors, 1);
		if (purge != NULL)
			plog_next(t, purge);
		return;
	}
	t->queued += len;
}

static void
set_item(struct mc_tier *t, const char *mckey, void *buf, size_t len,
    bool whole)
{
	set_item_on(t, -1, mckey, buf, len, whole, NULL);
}

/* Where a stored object's bytes come from: a shm entry, or memory
 * laid out the same way ([key][head][body], a tee). */
struct src {
	struct cache *cache;
	struct cache_ref ref;
	const uint8_t *mem;
};

static int
src_copy(struct src *s, uint64_t off, void *dst, size_t n)
{
	if (s->mem != NULL) {
		memcpy(dst, s->mem + off, n);
		return 0;
	}
	return cache_copy(s->cache, &s->ref, off, dst, n);
}

/*
 * Write one object to memcached: one item, or chunks and then their
 * manifest.  Copies from the source once; nothing here waits.
 */
static bool
store_object(struct mc_tier *t, struct src *sr, uint32_t key_len,
    uint32_t hdr_len, unsigned eflags, const struct cache_meta *meta,
    uint64_t body_len)
{
	struct mc_item_plan plan;
	struct mc_item_id id;
	uint8_t nonce[MC_ITEM_NONCE_LEN];
	char mckey[MC_ITEM_MCKEY_SIZE], ckey[MC_ITEM_MCKEY_SIZE];
	char *key = NULL;
	uint8_t *buf = NULL;
	uint64_t body_off = (uint64_t)key_len + hdr_len;
	size_t meta_len, po, len;

	if (key_len == 0 || key_len > MC_ITEM_KEY_MAX || body_len > t->max_object)
		return false;
	if (t->queued > STORE_QUEUE_MAX) {
		stat(t, STAT_memcached_dropped, 1);
		return false;
	}
	meta_len = META_FIXED + hdr_len;
	if (mc_item_plan(&plan, t->item_max, key_len, meta_len, body_len) != 0 ||
	    (key = malloc(key_len)) == NULL ||
	    src_copy(sr, 0, key, key_len) != 0)
		goto fail;
	if (recent_purged(t, key, key_len, meta->response_time)) {
		free(key);		/* the purged copy: let it go */
		return false;
	}
	id.key = key;
	id.key_len = key_len;
	id.secret = t->secret;
	id.secret_len = t->secret_len;
	id.unsealed = true;		/* sealed by the client threads */
	if (mc_item_mckey(mckey, &id) < 0)
		goto fail;
	po = mc_item_payload_off(key_len);
	if (plan.nchunks == 0) {
		if ((buf = malloc(plan.item_size)) == NULL)
			goto fail;
		meta_put(buf + po, eflags, hdr_len, meta);
		if (src_copy(sr, key_len, buf + po + META_FIXED, hdr_len) != 0 ||
		    (body_len > 0 && src_copy(sr, body_off, buf + po + meta_len,
		    (size_t)body_len) != 0) ||
		    mc_item_encode_object(buf, plan.item_size, &len, &id,
		    buf + po, meta_len, buf + po + meta_len, (size_t)body_len) != 0)
			goto fail;
		set_item(t, mckey, buf, len, true);
		free(key);
		return true;
	}
	/* Chunks first, the manifest last: a reader that finds the
	 * manifest early finds a chunk missing, which is a miss. */
	if (mc_item_nonce(nonce) != 0)
		goto fail;
	for (uint32_t i = 0; i < plan.nchunks; i++) {
		uint64_t off;
		size_t plen, size = mc_item_chunk_size(&plan, key_len, i);

		if (size == 0 || mc_item_plan_chunk(&plan, i, &off, &plen) != 0 ||
		    mc_item_chunk_mckey(ckey, mckey, nonce, i) < 0 ||
		    (buf = malloc(size)) == NULL)
			goto fail;
		if (src_copy(sr, body_off + off, buf + po, plen) != 0 ||
		    mc_item_encode_chunk(buf, size, &len, &id, &plan, nonce, i,
		    buf + po, plen) != 0)
			goto fail;
		set_item(t, ckey, buf, len, false);
		buf = NULL;
	}
	if ((buf = malloc(plan.item_size)) == NULL)
		goto fail;
	meta_put(buf + po, eflags, hdr_len, meta);
	if (src_copy(sr, key_len, buf + po + META_FIXED, hdr_len) != 0 ||
	    mc_item_encode_manifest(buf, plan.item_size, &len, &id, &plan, nonce,
	    buf + po, meta_len) != 0)
		goto fail;
	set_item(t, mckey, buf, len, true);
	free(key);
	return true;
fail:
	stat(t, STAT_memcached_errors, 1);
	free(buf);
	free(key);
	return false;
}

/* Write the complete entry of ref to memcached. */
static void
store(struct mc_tier *t, struct cache *cache, const struct cache_ref *ref0)
{
	struct src sr = { cache, *ref0, NULL };
	struct cache_view v;

	sr.ref.cur_base = UINT64_MAX;	/* our own cursor, from the start */
	cache_view(cache, &sr.ref, &v);
	if (v.state != CE_COMPLETE || !(v.flags & CF_HEAD) ||
	    (v.flags & (CF_ABORTED | CF_PASS | CF_HFP)) ||
	    v.len < (uint64_t)v.key_len + v.hdr_len)
		return;
	(void)store_object(t, &sr, v.key_len, v.hdr_len, v.flags, &v.meta,
	    v.len - v.key_len - v.hdr_len);
}

/* The cache's eviction hook (spill mode). */
static void
spill(void *arg, struct cache *c, struct cache_ref *ref)
{
	struct mc_tier *t = arg;
	uint64_t before = t->queued;

	store(t, c, ref);
	if (t->queued != before)
		stat(t, STAT_memcached_spilled, 1);
}

void
mc_tier_stored(struct conn *c, const struct cache_ref *ref)
{
	struct mc_tier *t = c->w->mc;

	if (t != NULL && t->shared)
		store(t, c->w->cache, ref);
}

/* ---- objects too large for shm: the tee ---------------------------------- */

static uint64_t key_hash(const char *key, size_t klen);
static void objs_purged(struct mc_tier *t, const char *key, size_t klen,
    uint64_t h);

bool
mc_tier_tee_begin(struct conn *c, const void *head, size_t hdr_len,
    const struct cache_meta *meta, uint64_t body_len)
{
	struct mc_tier *t = c->w->mc;
	struct creq *cs = &c->req->cs;
	struct mc_client_stats st;
	struct mc_tee *e;
	uint64_t need;

	if (t == NULL || cs->tee != NULL || cs->key == NULL ||
	    cs->key_len == 0 || cs->key_len > MC_ITEM_KEY_MAX ||
	    hdr_len > UINT32_MAX || body_len > t->max_object)
		return false;
	mc_client_stats(t->mc, &st);
	if (st.servers_up == 0)
		return false;		/* nowhere to store it */
	need = cs->key_len + hdr_len + body_len;
	if (t->tee_bytes + need > t->big_max) {
		/* Enough big bodies in flight here: forward it uncopied. */
		stat(t, STAT_memcached_dropped, 1);
		return false;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (e->buf = malloc(need)) == NULL) {
		free(e);
		return false;
	}
	memcpy(e->buf, cs->key, cs->key_len);
	memcpy(e->buf + cs->key_len, head, hdr_len);
	e->hash = key_hash(cs->key, cs->key_len);
	e->key_len = (uint32_t)cs->key_len;
	e->hdr_len = (uint32_t)hdr_len;
	e->meta = *meta;
	e->body_len = body_len;
	e->charged = need;
	t->tee_bytes += need;
	e->next = t->tees;
	if (t->tees != NULL)
		t->tees->prev = e;
	t->tees = e;
	cs->tee = e;
	return true;
}

/* Drop c's tee.  One for a Range or conditional request that was
 * neither stored nor purged (the client left early, say: a player
 * seeking) leaves a hit-for-pass marker behind, as the response would
 * have without a tee: else each such request would fetch the whole
 * body again, its Range and conditionals never passed to the origin. */
static void
tee_free(struct mc_tier *t, struct conn *c, bool stored)
{
	struct creq *cs = &c->req->cs;
	struct mc_tee *e = cs->tee;

	if (e == NULL)
		return;
	if (!stored && !e->dead &&
	    (cs->q.range != NULL || cs->q.inm != NULL || cs->q.ims >= 0))
		cache_serve_pass_marker(c);
	t->tee_bytes -= e->charged < t->tee_bytes ? e->charged : t->tee_bytes;
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		t->tees = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	free(e->buf);
	free(e);
	cs->tee = NULL;
}

/* key was purged: no tee of it in flight is stored (its body may be the
 * purged one, and the tee may end long after the purge is forgotten). */
static void
tees_purged(struct mc_tier *t, const char *key, size_t klen, uint64_t h)
{
	for (struct mc_tee *e = t->tees; e != NULL; e = e->next)
		if (e->hash == h && e->key_len == klen &&
		    memcmp(e->buf, key, klen) == 0)
			e->dead = true;
}

void
mc_tier_tee_feed(struct conn *c, const void *p, size_t n)
{
	struct mc_tee *e = c->req->cs.tee;

	if (e == NULL)
		return;
	if (n > e->body_len - e->got) {
		/* More than the length it announced: not this object. */
		tee_free(c->w->mc, c, false);
		return;
	}
	memcpy(e->buf + e->key_len + e->hdr_len + e->got, p, n);
	e->got += n;
}

void
mc_tier_tee_end(struct conn *c)
{
	struct mc_tier *t = c->w->mc;
	struct mc_tee *e = c->req->cs.tee;
	bool stored = false;

	if (e == NULL)
		return;
	if (e->got == e->body_len && !e->dead) {
		struct src sr = { .mem = e->buf };

		stored = store_object(t, &sr, e->key_len, e->hdr_len, 0,
		    &e->meta, e->body_len);
	}
	tee_free(t, c, stored);
}

/* ---- the purge log ----------------------------------------------------------- */

static uint64_t
key_hash(const char *key, size_t klen)
{
	uint64_t h = 14695981039346656037ull;	/* FNV-1a */

	for (size_t i = 0; i < klen; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
	return h | 1;				/* 0 marks a free slot */
}

/* Remember that key was purged at `at` (wall seconds). */
static void
recent_add(struct mc_tier *t, const char *key, size_t klen, int64_t at)
{
	uint64_t h = key_hash(key, klen);
	struct recent *r = &t->recent[h % RECENT_SLOTS];

	if (r->h != h || r->at < at) {
		r->h = h;
		r->at = at;
	}
	tees_purged(t, key, klen, h);
	objs_purged(t, key, klen, h);
}

/*
 * Was key purged after (or in the second when) an object stored at
 * response_time was fetched?  Such a copy is the purged one, on its way
 * back: a spill by a node that had not read the purge yet, or a set that
 * landed late.  It is neither stored nor promoted.
 */
static bool
recent_purged(const struct mc_tier *t, const char *key, size_t klen,
    int64_t response_time)
{
	uint64_t h = key_hash(key, klen);
	const struct recent *r = &t->recent[h % RECENT_SLOTS];

	return r->h == h && response_time <= r->at &&
	    (int64_t)(ev_wall_ms(t->w->loop) / 1000) - r->at < RECENT_TTL;
}

static int
plog_mckey(const struct mc_tier *t, uint64_t seq, char out[MC_ITEM_MCKEY_SIZE],
    char name[32])
{
	int n = snprintf(name, 32, "P %llu", (unsigned long long)seq);
	struct mc_item_id id = { name, (size_t)n, t->secret, t->secret_len,
	    false };

	return mc_item_mckey(out, &id);
}

/* Take a record number for a purge (the record is written when the
 * number comes); false when the incr could not be queued. */
static bool
plog_incr(struct mc_tier *t, struct plog_add *a)
{
	uint64_t base = 1;

	/* A counter created anew starts at a random number: a reader can
	 * tell a restarted log from one that did not move (PLOG_JUMP). */
	(void)RAND_bytes((unsigned char *)&base, sizeof(base));
	/* Its low 20 bits zero: a reader that finds a new counter knows
	 * where its records begin (PLOG_JUMP). */
	base = ((base & ((1ull << 20) - 1)) | 1) * PLOG_JUMP;
	return mc_client_on(t->mc, a->si, MC_OP_INCR, t->plog_seq_mckey,
	    strlen(t->plog_seq_mckey), NULL, 0, base, a) != MC_NOJOB;
}

/* A purge that could not be logged yet: retried every second, up to
 * PLOG_PENDING_MAX of them; past that the oldest is lost (counted). */
static void
plog_defer(struct mc_tier *t, struct plog_add *a)
{
	if (t->plog_npending >= PLOG_PENDING_MAX) {
		struct plog_add *old = t->plog_pending;

		t->plog_pending = old->next;
		t->plog_npending--;
		free(old);
		stat(t, STAT_memcached_purges_lost, 1);
	}
	a->next = NULL;
	if (t->plog_pending == NULL)
		t->plog_pending = a;
	else {
		struct plog_add *p = t->plog_pending;

		while (p->next != NULL)
			p = p->next;
		p->next = a;
	}
	t->plog_npending++;
}

/* The incr on log a->si failed (its server is down, say): the next
 * server's log now; when every one failed, all again in a second. */
static void
plog_next(struct mc_tier *t, struct plog_add *a)
{
	while (++a->tried < t->nlogs) {
		a->si = (a->si + 1) % t->nlogs;
		if (plog_incr(t, a))
			return;
	}
	a->tried = 0;
	plog_defer(t, a);
}

/* A purge through this node: remember it, and log it for the farm (in
 * the log of the server the key names, or of the next one up). */
static void
plog_append(struct mc_tier *t, const char *key, size_t klen)
{
	int64_t now = (int64_t)(ev_wall_ms(t->w->loop) / 1000);
	struct plog_add *a;

	recent_add(t, key, klen, now);
	if (klen > MC_ITEM_KEY_MAX || (a = malloc(sizeof(*a) + klen)) == NULL)
		return;
	a->next = NULL;
	a->at = now;
	a->klen = klen;
	memcpy(a->key, key, klen);
	a->si = t->nlogs > 0 ? (unsigned)(key_hash(key, klen) % t->nlogs) : 0;
	a->tried = 0;
	if (!plog_incr(t, a))
		plog_next(t, a);
}

/* Once a second: the purges that could not be logged, again. */
static void
plog_retry(struct mc_tier *t)
{
	unsigned n = t->plog_npending;

	while (n-- > 0 && t->plog_pending != NULL) {
		struct plog_add *a = t->plog_pending;

		t->plog_pending = a->next;
		t->plog_npending--;
		if (!plog_incr(t, a))
			plog_next(t, a);
	}
}

/* The incr answered: write record `seq`: when, then the purged key. */
static void
plog_write(struct mc_tier *t, struct plog_add *a, uint64_t seq)
{
	char name[32], mckey[MC_ITEM_MCKEY_SIZE];
	struct mc_item_id id = { name, 0, t->secret, t->secret_len, true };
	size_t size, len, po;
	uint8_t *buf;
	struct plog_add *again;

	if (plog_mckey(t, seq, mckey, name) < 0)
		return;
	id.key_len = strlen(name);
	size = mc_item_object_size(id.key_len, 0, 8 + a->klen);
	if (size == 0 || (buf = malloc(size)) == NULL)
		return;
	po = mc_item_payload_off(id.key_len);
	be_put64(buf + po, (uint64_t)a->at);
	memcpy(buf + po + 8, a->key, a->klen);
	if (mc_item_encode_object(buf, size, &len, &id, NULL, 0, buf + po,
	    8 + a->klen) != 0 ||
	    (again = malloc(sizeof(*again) + a->klen)) == NULL) {
		free(buf);
		return;
	}
	/* By its counter.  If the record cannot be stored there, the purge
	 * goes to the next server's log (its number here stays empty). */
	memcpy(again, a, sizeof(*again) + a->klen);
	again->next = NULL;
	set_item_on(t, (int)a->si, mckey, buf, len, false, again);
}

/* Delete the purged key's item once more: a set of it that timed out
 * on our side may still have been applied by the server after our
 * delete (a set and a delete of one key share a lane, but a timed-out
 * set is only given up, not undone).  Takes a. */
static void
redelete(struct mc_tier *t, struct plog_add *a)
{
	struct mc_item_id id = { a->key, a->klen, t->secret, t->secret_len,
	    false };
	char mckey[MC_ITEM_MCKEY_SIZE];

	if (mc_item_mckey(mckey, &id) > 0)
		mc_client_delete(t->mc, mckey, strlen(mckey), NULL);
	free(a);
}

static void
redelete_later(struct mc_tier *t, struct plog_add *a)
{
	a->next = NULL;
	a->due = ev_now(t->w->loop) + REDELETE_MS;
	if (t->nredel >= REDELETE_MAX) {
		struct plog_add *old = t->redel;	/* now, then */

		t->redel = old->next;
		t->nredel--;
		redelete(t, old);
	}
	if (t->redel == NULL)
		t->redel = a;
	else
		t->redel_tail->next = a;
	t->redel_tail = a;
	t->nredel++;
}

static void
redelete_due(struct mc_tier *t)
{
	uint64_t now = ev_now(t->w->loop);

	while (t->redel != NULL && t->redel->due <= now) {
		struct plog_add *a = t->redel;

		t->redel = a->next;
		t->nredel--;
		redelete(t, a);
	}
}

/* Once a second: read each log's counter (unless a read is under way). */
static void
plog_poll(struct mc_tier *t)
{
	plog_retry(t);
	redelete_due(t);
	if (!t->plog_poll)
		return;
	for (unsigned si = 0; si < t->nlogs; si++) {
		struct plog *l = &t->logs[si];

		if (l->job != 0 || l->left > 0)
			continue;
		l->job = mc_client_on(t->mc, si, MC_OP_GET, t->plog_seq_mckey,
		    strlen(t->plog_seq_mckey), NULL, 0, 0, NULL);
		if (l->job == MC_NOJOB)
			l->job = 0;
	}
}

/* Ask log si for the records after l->seen, up to l->target. */
static void
plog_fetch(struct mc_tier *t, unsigned si)
{
	struct plog *l = &t->logs[si];

	l->n = l->left = 0;
	l->first_missing = l->first_failed = 0;
	for (uint64_t s = l->seen + 1; s <= l->target && l->n < PLOG_BATCH;
	    s++) {
		char name[32], mckey[MC_ITEM_MCKEY_SIZE];
		uint64_t job;

		if (plog_mckey(t, s, mckey, name) < 0 ||
		    (job = mc_client_on(t->mc, si, MC_OP_GET, mckey,
		    strlen(mckey), NULL, 0, 0, NULL)) == MC_NOJOB)
			break;
		l->recs[l->n].job = job;
		l->recs[l->n].seq = s;
		l->n++;
		l->left++;
	}
}

/* Log si's counter: ask for the records past what we applied. */
static void
plog_counter(struct mc_tier *t, unsigned si, const struct mc_done *d)
{
	struct plog *l = &t->logs[si];
	uint64_t n = 0;

	l->job = 0;
	if (d->status == MC_OK) {
		char num[24];
		size_t k = d->vlen < sizeof(num) - 1 ? d->vlen : sizeof(num) - 1;

		memcpy(num, d->value, k);
		num[k] = '\0';
		n = strtoull(num, NULL, 10);	/* memcached pads with spaces */
	} else if (d->status != MC_MISS)
		return;
	if (!l->synced) {
		/* First read: older records are not ours to replay. */
		l->seen = n;
		l->synced = true;
		return;
	}
	if (n < l->seen || n - l->seen >= PLOG_JUMP) {
		/* Another counter: new, or its server restarted (or was
		 * flushed) and a purge created it again, at a random base
		 * whose low bits are zero.  Its records are all newer than
		 * our last read: read them from that base. */
		l->seen = n >= PLOG_JUMP ? (n & ~(uint64_t)(PLOG_JUMP - 1)) - 1 : 0;
	}
	l->target = n;
	plog_fetch(t, si);
}

/* A record of log si (or its absence) arrived; the last one moves
 * l->seen. */
static void
plog_record(struct mc_tier *t, unsigned si, struct plog_get *g,
    const struct mc_done *d)
{
	struct plog *l = &t->logs[si];
	char name[32], mckey[MC_ITEM_MCKEY_SIZE];
	struct mc_item_id id = { name, 0, t->secret, t->secret_len, false };
	struct mc_item_view v;

	g->job = 0;
	if (d->status == MC_OK && plog_mckey(t, g->seq, mckey, name) > 0) {
		id.key_len = strlen(name);
		if (decode_got(&v, &id, d->value, d->vlen, d->check) == 0 &&
		    v.kind == MC_ITEM_OBJECT && v.meta_len == 0 && v.data_len > 8) {
			const char *key = (const char *)v.data + 8;
			size_t klen = v.data_len - 8;
			struct mc_item_id kid = { key, klen, t->secret,
			    t->secret_len, false };

			recent_add(t, key, klen, (int64_t)be_get64(v.data));
			cache_invalidate(t->w->cache, key, klen);
			/* And again in memcached: a node that had not read the
			 * purge yet may have spilled the object back. */
			if (mc_item_mckey(mckey, &kid) > 0)
				mc_client_delete(t->mc, mckey, strlen(mckey), NULL);
			stat(t, STAT_memcached_purges, 1);
		} else
			stat(t, STAT_memcached_rejected, 1);
	} else if (d->status == MC_MISS) {
		if (l->first_missing == 0 || g->seq < l->first_missing)
			l->first_missing = g->seq;
	} else if (l->first_failed == 0 || g->seq < l->first_failed)
		l->first_failed = g->seq;
	if (--l->left > 0)
		return;
	{
		uint64_t stop = 0;
		bool wait = false;

		if (l->first_missing != 0 && l->tries < PLOG_RETRIES) {
			/* Its writer may not have stored it yet. */
			stop = l->first_missing;
			wait = true;
		}
		if (l->first_failed != 0 && (stop == 0 || l->first_failed < stop)) {
			/* Not read (a timeout, the server down): read again,
			 * never skipped for it. */
			stop = l->first_failed;
			wait = false;
		}
		if (stop != 0) {
			l->seen = stop - 1;	/* the records before it are done */
			l->tries += wait;
			l->n = 0;
			return;
		}
	}
	l->seen = l->recs[l->n - 1].seq;
	l->tries = 0;
	l->n = 0;
	/* More than a batch behind: the next one now, not in a second. */
	if (l->seen < l->target)
		plog_fetch(t, si);
}

/* Is d the answer to a purge-log read?  Then it is handled here. */
static bool
plog_done(struct mc_tier *t, const struct mc_done *d)
{
	if (d->op != MC_OP_GET || d->cookie != NULL || d->id == 0)
		return false;
	for (unsigned si = 0; si < t->nlogs; si++) {
		struct plog *l = &t->logs[si];

		if (l->job == d->id) {
			plog_counter(t, si, d);
			return true;
		}
		for (unsigned i = 0; i < l->n; i++)
			if (l->recs[i].job == d->id) {
				plog_record(t, si, &l->recs[i], d);
				return true;
			}
	}
	return false;
}

/* Delete key's item in memcached (cookie: for its completion) and, farm,
 * log the purge for every node.  False when the delete is not queued.
 * The primary key names an object, a manifest (its chunks become
 * unreachable) or a Vary marker (so do its variants). */
static bool
drop_key(struct mc_tier *t, const char *key, size_t klen, bool farm,
    void *cookie)
{
	struct mc_item_id id = { key, klen, t->secret, t->secret_len, false };
	char mckey[MC_ITEM_MCKEY_SIZE];
	bool queued = mc_item_mckey(mckey, &id) > 0 &&
	    mc_client_delete(t->mc, mckey, strlen(mckey), cookie) != MC_NOJOB;

	if (!queued)
		stat(t, STAT_memcached_errors, 1);
	if (farm)
		plog_append(t, key, klen);
	return queued;
}

void
mc_tier_invalidate(struct conn *c, const char *key, size_t klen, bool farm)
{
	if (c->w->mc != NULL)
		(void)drop_key(c->w->mc, key, klen, farm, NULL);
}

/* ---- lookups ----------------------------------------------------------------- */

static void
fetch_free(struct mc_tier *t, struct mc_fetch *mf)
{
	if (mf == NULL)
		return;
	t->lookup_bytes -= mf->charged < t->lookup_bytes ? mf->charged :
	    t->lookup_bytes;
	if (mf->job != 0)
		mc_client_cancel(t->mc, mf->job);
	for (uint32_t i = 0; i < mf->n; i++) {
		if (mf->jobs != NULL && mf->jobs[i] != 0)
			mc_client_cancel(t->mc, mf->jobs[i]);
		if (mf->items != NULL)
			free(mf->items[i]);
	}
	free(mf->jobs);
	free(mf->items);
	free(mf->lens);
	free(mf->checks);
	free(mf->man);
	free(mf);
}

static struct mc_item_id
id_of(const struct mc_tier *t, const struct creq *cs)
{
	struct mc_item_id id = { cs->key, cs->key_len, t->secret,
	    t->secret_len, false };

	return id;
}

static void
obj_unlink(struct mc_tier *t, struct mc_obj *o)
{
	if (o->dead)
		return;
	if (o->prev != NULL)
		o->prev->next = o->next;
	else
		t->objs = o->next;
	if (o->next != NULL)
		o->next->prev = o->prev;
	o->prev = o->next = NULL;
	o->dead = true;
}

static void
obj_put(struct mc_tier *t, struct mc_obj *o)
{
	if (--o->refs > 0)
		return;
	obj_unlink(t, o);
	fetch_free(t, o->mf);
	free(o->body);
	free(o->key);
	free(o);
}

/* key was purged: its objects in memory are not shared any more (the
 * requests serving them finish). */
static void
objs_purged(struct mc_tier *t, const char *key, size_t klen, uint64_t h)
{
	struct mc_obj *o, *next;

	for (o = t->objs; o != NULL; o = next) {
		next = o->next;
		if (o->hash == h && o->klen == klen &&
		    memcmp(o->key, key, klen) == 0)
			obj_unlink(t, o);
	}
}

/* Serve o (one more reference) to c: a hit, from memory. */
static void
serve_obj(struct conn *c, struct mc_obj *o)
{
	struct mc_tier *t = c->w->mc;
	struct creq *cs = &c->req->cs;
	int64_t ttl;

	o->refs++;
	if (cs->fill.idx != 0) {
		/* Those who joined our entry look for themselves. */
		cache_abort(c->w->cache, &cs->fill, CF_PASS);
		cache_release(c->w->cache, &cs->fill);
	}
	stat(t, STAT_memcached_hits, 1);
	cs->mobj = o;
	cs->mc_hit = true;
	cs->mode = CS_READ;
	ttl = o->meta.lifetime - cache_age(&o->meta, cs->req_time);
	snprintf(cs->status, sizeof(cs->status), "hit; ttl=%lld; detail=memcached",
	    (long long)(ttl > 0 ? ttl : 0));
	cache_serve_stat(c, STAT_cache_hits, 1);
	cache_send_begin(c, "TCP_MC_HIT");
}

/*
 * One of this worker's objects in memory that is the very version the
 * manifest just read names (nonce), not invalidated in this node since
 * its read began nor since this lookup began (gen: a purge through any
 * worker moves it), and that c may be served as it is; or NULL.  Then
 * the chunks need not be read again.
 */
static struct mc_obj *
obj_match(struct mc_tier *t, struct conn *c, const uint8_t *nonce,
    uint32_t gen)
{
	struct creq *cs = &c->req->cs;
	uint64_t h = key_hash(cs->key, cs->key_len);

	if (cache_inval_gen(c->w->cache, cs->key, cs->key_len) != gen)
		return NULL;
	for (struct mc_obj *o = t->objs; o != NULL; o = o->next)
		if (o->hash == h && o->klen == cs->key_len &&
		    memcmp(o->key, cs->key, cs->key_len) == 0 &&
		    o->gen == gen &&
		    memcmp(o->nonce, nonce, MC_ITEM_NONCE_LEN) == 0)
			return cache_usable(&o->meta, &cs->q, cs->req_time) ==
			    USE_FRESH ? o : NULL;
	return NULL;
}

static bool
lookup(struct conn *c, bool alone)
{
	struct mc_tier *t = c->w->mc;
	struct creq *cs = &c->req->cs;
	struct mc_item_id id;
	struct mc_fetch *mf;
	unsigned bit = cs->key_len == cs->primary_len ? 1u : 2u;

	if (t == NULL || (cs->fill.idx == 0) != alone || cs->key == NULL ||
	    (cs->mc_tried & bit) || cs->key_len > MC_ITEM_KEY_MAX)
		return false;
	cs->mc_tried |= bit;
	if ((mf = calloc(1, sizeof(*mf))) == NULL)
		return false;
	mf->gen = cache_inval_gen(c->w->cache, cs->key, cs->key_len);
	id = id_of(t, cs);
	if (mc_item_mckey(mf->mckey, &id) < 0 ||
	    (mf->job = mc_client_get(t->mc, mf->mckey, strlen(mf->mckey), c)) ==
	    MC_NOJOB) {
		mf->job = 0;
		fetch_free(t, mf);
		stat(t, STAT_memcached_errors, 1);
		return false;
	}
	cs->mf = mf;
	c->state = C_MC;
	conn_set_deadline(c, (uint64_t)c->w->conf->memcached.timeout_ms +
	    DEADLINE_SLACK);
	return true;
}

bool
mc_tier_lookup(struct conn *c)
{
	return lookup(c, false);
}

bool
mc_tier_lookup_alone(struct conn *c)
{
	return lookup(c, true);
}

void
mc_tier_cancel(struct conn *c)
{
	struct creq *cs = &c->req->cs;

	if (cs->mf != NULL) {
		fetch_free(c->w->mc, cs->mf);
		cs->mf = NULL;
	}
}

/* Not from memcached after all: on to the origin with our fill. */
static void
to_origin(struct conn *c)
{
	struct creq *cs = &c->req->cs;

	mc_tier_cancel(c);
	cache_serve_stat(c, STAT_cache_misses, 1);
	if (cs->fill.idx == 0)
		cs->mode = CS_PASS;
	conn_start_upstream(c);
}

static void
purge_answer(struct conn *c)
{
	struct creq *cs = &c->req->cs;
	int status = cs->pw->status;

	cs->pw->c = NULL;		/* the completion frees it */
	cs->pw = NULL;
	conn_answer(c, status, status == 200 ? "Purged." : "Not in the cache.");
}

void
mc_tier_timeout(struct conn *c)
{
	stat(c->w->mc, STAT_memcached_errors, 1);
	if (c->req->cs.pw != NULL) {
		purge_answer(c);	/* waited long enough */
		return;
	}
	to_origin(c);
}

bool
mc_tier_purge(struct conn *c, const char *key, size_t klen, int status)
{
	struct mc_tier *t = c->w->mc;
	struct creq *cs = &c->req->cs;
	struct mc_purge *pw;

	if (t == NULL || cs->pw != NULL)
		return false;
	if ((pw = calloc(1, sizeof(*pw))) == NULL) {
		(void)drop_key(t, key, klen, true, NULL);
		return false;		/* deleted all the same, not waited for */
	}
	pw->c = c;
	pw->status = status;
	if (!drop_key(t, key, klen, true, pw)) {
		free(pw);
		return false;
	}
	cs->pw = pw;
	c->state = C_MC;
	conn_set_deadline(c, (uint64_t)c->w->conf->memcached.timeout_ms +
	    DEADLINE_SLACK);
	return true;
}

/* An item failed verification: count it and remove it, so no other
 * request trips on it.  (Its name is an HMAC of the key: whoever wrote
 * it could write there anyway.) */
static void
reject(struct conn *c, const char *mckey, int err)
{
	struct mc_tier *t = c->w->mc;

	stat(t, STAT_memcached_rejected, 1);
	log_info("memcached item %.24s... rejected: %s", mckey,
	    mc_item_strerror(err));
	mc_client_delete(t->mc, mckey, strlen(mckey), NULL);
}

/* ---- objects too large for shm: served from memory ------------------------ */

void
mc_obj_view(const struct mc_obj *o, struct cache_view *v)
{
	memset(v, 0, sizeof(*v));
	v->state = CE_COMPLETE;
	v->flags = CF_HEAD;
	v->key_len = 0;
	v->hdr_len = o->hdr_len;
	v->body_len = o->body_len;
	v->len = o->hdr_len + o->body_len;
	v->meta = o->meta;
}

int
mc_obj_iov(const struct mc_obj *o, uint64_t off, size_t want,
    struct iovec *iov, int max)
{
	uint64_t at = o->hdr_len;
	int n = 0;

	for (size_t i = 0; i < o->nbody && n < max && want > 0; i++) {
		uint64_t len = o->body[i].iov_len;

		if (off < at + len) {
			uint64_t skip = off > at ? off - at : 0;
			size_t k = (size_t)(len - skip) < want ?
			    (size_t)(len - skip) : want;

			iov[n].iov_base = (uint8_t *)o->body[i].iov_base + skip;
			iov[n].iov_len = k;
			n++;
			off += k;
			want -= k;
		}
		at += len;
	}
	return n;
}

int
mc_obj_copy(const struct mc_obj *o, uint64_t off, void *dst, size_t n)
{
	/* Only the head is ever copied (the body goes out as iovecs). */
	if (off > o->hdr_len || n > o->hdr_len - off)
		return -1;
	memcpy(dst, o->head + off, n);
	return 0;
}

void
mc_tier_release(struct conn *c)
{
	struct creq *cs = &c->req->cs;
	struct mc_tier *t = c->w->mc;

	if (cs->mobj != NULL) {
		obj_put(t, cs->mobj);
		cs->mobj = NULL;
	}
	if (cs->pw != NULL) {
		cs->pw->c = NULL;	/* the delete's completion frees it */
		cs->pw = NULL;
	}
	if (t != NULL)
		tee_free(t, c, false);
}

/* May this request be served the big object of manifest v as it is?
 * (True when its meta does not parse: promote() rejects it then.) */
static bool
big_usable(struct conn *c, const struct mc_item_view *v)
{
	struct creq *cs = &c->req->cs;
	struct cache_meta meta;
	const uint8_t *head;
	uint32_t hdr_len;
	unsigned eflags;

	if (meta_get(v->meta, v->meta_len, v->body_len, &eflags, &meta, &head,
	    &hdr_len) != 0)
		return true;
	return cache_usable(&meta, &cs->q, cs->req_time) == USE_FRESH;
}

/*
 * A verified object too large for shm: serve it from the items we
 * hold, when it is fresh for this request (a stale one is fetched
 * again, and the origin's answer stored again).  Our filling entry is
 * given up: requests that joined it fetch for themselves.
 */
static void
serve_memory(struct conn *c, struct mc_fetch *mf, const struct mc_item_view *v,
    const struct cache_meta *meta, const uint8_t *head, uint32_t hdr_len,
    const struct iovec *body, size_t nbody)
{
	struct mc_tier *t = c->w->mc;
	struct creq *cs = &c->req->cs;
	struct mc_obj *o;

	if (cache_usable(meta, &cs->q, cs->req_time) != USE_FRESH ||
	    cache_inval_gen(c->w->cache, cs->key, cs->key_len) != mf->gen) {
		/* Stale, or purged (here) while we read it. */
		stat(t, STAT_memcached_misses, 1);
		to_origin(c);
		return;
	}
	if (mf->charged == 0) {
		/* One item: count it in the lookup budget while it is sent. */
		if (t->lookup_bytes + v->body_len > t->big_max) {
			stat(t, STAT_memcached_dropped, 1);
			to_origin(c);
			return;
		}
		t->lookup_bytes += v->body_len;
		mf->charged = v->body_len;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL ||
	    (o->body = calloc(nbody ? nbody : 1, sizeof(*o->body))) == NULL ||
	    (o->key = malloc(cs->key_len)) == NULL) {
		if (o != NULL)
			free(o->body);
		free(o);
		to_origin(c);
		return;
	}
	memcpy(o->body, body, nbody * sizeof(*body));
	o->nbody = nbody;
	o->head = head;
	o->hdr_len = hdr_len;
	o->meta = *meta;
	o->body_len = v->body_len;
	o->mf = mf;
	memcpy(o->key, cs->key, cs->key_len);
	o->klen = cs->key_len;
	o->hash = key_hash(cs->key, cs->key_len);
	o->gen = mf->gen;
	if (v->kind == MC_ITEM_MANIFEST) {
		/* Shared with later requests that find the same manifest;
		 * an older version of the key is not any more. */
		memcpy(o->nonce, v->nonce, MC_ITEM_NONCE_LEN);
		objs_purged(t, o->key, o->klen, o->hash);
		o->next = t->objs;
		if (t->objs != NULL)
			t->objs->prev = o;
		t->objs = o;
	} else
		o->dead = true;		/* one item: read again each time */
	cs->mf = NULL;
	serve_obj(c, o);
}

/*
 * Write a verified object into our filling entry and commit it, then
 * run the lookup again (the entry is in shm now).  On failure the fill
 * is given up and the request goes to the origin uncached.  An object
 * too large for shm is served from memory instead.
 */
static void
promote(struct conn *c, struct mc_fetch *mf, const struct mc_item_view *v,
    const struct iovec *body, size_t nbody)
{
	struct creq *cs = &c->req->cs;
	struct cache *cache = c->w->cache;
	struct cache_meta meta;
	const uint8_t *head;
	uint32_t hdr_len;
	unsigned eflags;

	if (meta_get(v->meta, v->meta_len, v->body_len, &eflags, &meta, &head,
	    &hdr_len) != 0) {
		reject(c, mf->mckey, MC_ITEM_E_VERSION);
		to_origin(c);
		return;
	}
	if (recent_purged(c->w->mc, cs->key, cs->key_len, meta.response_time)) {
		/* Purged since it was fetched: a copy that came back. */
		mc_client_delete(c->w->mc->mc, mf->mckey, strlen(mf->mckey), NULL);
		stat(c->w->mc, STAT_memcached_misses, 1);
		to_origin(c);
		return;
	}
	if (v->body_len > c->w->conf->cache.max_object_size && eflags == 0) {
		serve_memory(c, mf, v, &meta, head, hdr_len, body, nbody);
		return;
	}
	if (cs->fill.idx == 0) {
		/* A lookup without an entry is for big objects only. */
		stat(c->w->mc, STAT_memcached_misses, 1);
		to_origin(c);
		return;
	}
	if (cache_append(cache, &cs->fill, head, hdr_len) != 0)
		goto fail;
	cache_set_head(cache, &cs->fill, hdr_len, &meta, v->body_len,
	    eflags & CF_VARY);
	for (size_t i = 0; i < nbody; i++)
		if (body[i].iov_len > 0 && cache_append(cache, &cs->fill,
		    body[i].iov_base, body[i].iov_len) != 0)
			goto fail;
	if (cache_commit(cache, &cs->fill) != 0)
		goto fail;
	cache_release(cache, &cs->fill);
	mc_tier_cancel(c);
	stat(c->w->mc, STAT_memcached_hits, 1);
	cs->mc_hit = true;
	free(cs->key);
	cs->key = NULL;
	cs->mode = CS_NONE;
	if (!cache_serve_lookup(c))
		conn_start_upstream(c);
	return;
fail:
	/* No room in shm: fetch it, uncached. */
	cache_abort(cache, &cs->fill, CF_PASS);
	cache_release(cache, &cs->fill);
	to_origin(c);
}

/* All chunks are in: verify them against the manifest, then promote. */
static void
chunks_done(struct conn *c, struct mc_fetch *mf)
{
	struct mc_tier *t = c->w->mc;
	struct creq *cs = &c->req->cs;
	struct mc_item_id id = id_of(t, cs);
	struct mc_item_view *cv;
	struct iovec *iov;
	int rc = MC_ITEM_E_ARG;

	cv = calloc(mf->n, sizeof(*cv));
	iov = calloc(mf->n, sizeof(*iov));
	if (cv == NULL || iov == NULL) {
		free(cv);
		free(iov);
		to_origin(c);
		return;
	}
	for (uint32_t i = 0; i < mf->n; i++)
		if ((rc = decode_got(&cv[i], &id, mf->items[i], mf->lens[i],
		    mf->checks[i])) != 0 ||
		    cv[i].kind != MC_ITEM_CHUNK)
			break;
	if (rc == 0)
		rc = mc_item_assemble_iov(&mf->mv, cv, mf->n, iov, mf->n);
	if (rc != 0) {
		/* A chunk of another version, or forged: the manifest is
		 * what leads here, so it goes. */
		reject(c, mf->mckey, rc);
		to_origin(c);
	} else
		promote(c, mf, &mf->mv, iov, mf->n);
	free(cv);
	free(iov);
}

/* The object's (or manifest's) item arrived. */
static void
got_item(struct conn *c, struct mc_fetch *mf, void *item, size_t len,
    int check)
{
	struct mc_tier *t = c->w->mc;
	struct creq *cs = &c->req->cs;
	struct mc_item_id id = id_of(t, cs);
	struct mc_item_view v;
	struct mc_obj *o;
	struct iovec iov;
	int rc;

	if ((rc = decode_got(&v, &id, item, len, check)) != 0 ||
	    (v.kind != MC_ITEM_OBJECT && v.kind != MC_ITEM_MANIFEST) ||
	    v.body_len > t->max_object) {
		free(item);
		reject(c, mf->mckey, rc ? rc : MC_ITEM_E_KIND);
		to_origin(c);
		return;
	}
	if (v.kind == MC_ITEM_OBJECT) {
		iov.iov_base = (void *)v.data;
		iov.iov_len = v.data_len;
		mf->man = item;		/* freed with mf, or kept by mobj */
		promote(c, mf, &v, &iov, 1);
		return;
	}
	/* A manifest: fetch every chunk, all at once, if the worker's
	 * budget for chunked lookups allows (else the origin it is).  An
	 * object too large for shm that this request cannot use as it is
	 * (stale, or no-cache asked) is not read at all: only a fresh one
	 * is ever served from memory. */
	if ((v.body_len > c->w->conf->cache.max_object_size &&
	    !big_usable(c, &v)) || (cs->fill.idx == 0 &&
	    v.body_len <= c->w->conf->cache.max_object_size)) {
		/* (A lookup without an entry serves big objects only.) */
		free(item);
		stat(t, STAT_memcached_misses, 1);
		to_origin(c);
		return;
	}
	if (v.body_len > c->w->conf->cache.max_object_size &&
	    (o = obj_match(t, c, v.nonce, mf->gen)) != NULL) {
		/* This version is in memory here already. */
		free(item);
		mc_tier_cancel(c);
		serve_obj(c, o);
		return;
	}
	if (t->lookup_bytes + v.body_len > t->big_max) {
		free(item);
		stat(t, STAT_memcached_dropped, 1);
		to_origin(c);
		return;
	}
	t->lookup_bytes += v.body_len;
	mf->charged = v.body_len;
	mf->man = item;
	mf->mv = v;
	mf->n = mf->left = v.nchunks;
	mf->jobs = calloc(mf->n, sizeof(*mf->jobs));
	mf->items = calloc(mf->n, sizeof(*mf->items));
	mf->lens = calloc(mf->n, sizeof(*mf->lens));
	mf->checks = calloc(mf->n, sizeof(*mf->checks));
	if (mf->jobs == NULL || mf->items == NULL || mf->lens == NULL ||
	    mf->checks == NULL) {
		to_origin(c);
		return;
	}
	for (uint32_t i = 0; i < mf->n; i++) {
		char ckey[MC_ITEM_MCKEY_SIZE];

		if (mc_item_chunk_mckey(ckey, mf->mckey, v.nonce, i) < 0 ||
		    (mf->jobs[i] = mc_client_get(t->mc, ckey, strlen(ckey), c)) ==
		    MC_NOJOB) {
			mf->jobs[i] = 0;
			stat(t, STAT_memcached_errors, 1);
			to_origin(c);
			return;
		}
	}
	conn_set_deadline(c, (uint64_t)c->w->conf->memcached.timeout_ms +
	    DEADLINE_SLACK);
}

/* A get of c's lookup completed. */
static void
got(struct conn *c, struct mc_done *d)
{
	struct mc_tier *t = c->w->mc;
	struct mc_fetch *mf = c->req ? c->req->cs.mf : NULL;
	uint32_t i;

	if (mf == NULL || c->state != C_MC) {
		free(d->value);
		return;
	}
	if (d->status != MC_OK) {
		free(d->value);
		if (d->status == MC_MISS)
			stat(t, STAT_memcached_misses, 1);
		else
			stat(t, STAT_memcached_errors, 1);
		if (d->id == mf->job)
			mf->job = 0;
		to_origin(c);
		return;
	}
	if (d->id == mf->job) {
		mf->job = 0;
		got_item(c, mf, d->value, d->vlen, d->check);
		return;
	}
	for (i = 0; i < mf->n && mf->jobs[i] != d->id; i++)
		;
	if (i == mf->n) {
		free(d->value);
		return;
	}
	mf->jobs[i] = 0;
	mf->items[i] = d->value;
	mf->lens[i] = d->vlen;
	mf->checks[i] = d->check;
	if (--mf->left == 0)
		chunks_done(c, mf);
}

void
mc_tier_ready(struct mc_tier *t)
{
	struct mc_done d;

	/* One at a time: running a connection may end its request, whose
	 * other jobs are then cancelled before they are read here. */
	for (int n = 0; n < 256 && mc_client_done(t->mc, &d, 1) == 1; n++) {
		if (plog_done(t, &d)) {
			free(d.value);
			continue;
		}
		if (d.op == MC_OP_INCR) {
			if (d.status == MC_OK) {
				plog_write(t, d.cookie, d.num);
				redelete_later(t, d.cookie);
			} else {
				stat(t, STAT_memcached_errors, 1);
				plog_next(t, d.cookie);	/* the next log */
			}
			continue;
		}
		if (d.op == MC_OP_GET && d.cookie != NULL) {
			struct conn *c = d.cookie;

			got(c, &d);
			if (!c->in_run)
				conn_kick_now(c);
			continue;
		}
		if (d.op == MC_OP_SET && d.cookie != NULL) {
			struct mc_set *s = d.cookie;

			t->queued -= s->bytes < t->queued ? s->bytes : t->queued;
			if (d.status != MC_OK)
				stat(t, STAT_memcached_errors, 1);
			else if (s->whole)
				stat(t, STAT_memcached_stores, 1);
			if (s->purge != NULL && d.status != MC_OK)
				plog_next(t, s->purge);
			else
				free(s->purge);
			free(s);
		} else if (d.op == MC_OP_DELETE) {
			struct mc_purge *pw = d.cookie;

			if (d.status != MC_OK && d.status != MC_MISS)
				stat(t, STAT_memcached_errors, 1);
			if (pw != NULL && pw->c != NULL) {
				struct conn *c = pw->c;

				if (d.status == MC_OK)
					pw->status = 200;	/* memcached had it */
				purge_answer(c);
				if (!c->in_run)
					conn_kick_now(c);
			}
			free(pw);
		}
		free(d.value);
	}
}
