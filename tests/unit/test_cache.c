/*
 * test_cache.c - unit tests for the shared-memory object store (shm/cache.c).
 *
 * Each case opens its own segment "/sluice-test-<pid>-<case>" and acts as
 * the master and as worker slot 0; forked children act as the other
 * workers, exactly as sluice's workers inherit the mapping.  Object bytes
 * are a function of the key (pat()), so any reader, in any process, can
 * check what it streams byte by byte without being told what was written.
 * Every case ends with cache_fsck() == 0; the last case checks that no
 * segment of this run is left in /dev/shm.
 *
 * Children never call cmocka: they report through their exit status
 * (0 = all checks passed, other values name the failed check) and leave
 * with _exit() so the parent's cmocka and atexit state is not run twice.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "shm/cache.h"

#define MIB		(1024u * 1024u)
#define BLK		4096u
#define NSLOTS		8u

/* ---- fixture ------------------------------------------------------------- */

struct tc {
	const char *tag;		/* case name: part of the segment name */
	char name[96];
	struct cache *c;
	struct cache_params p;
	char note[256];
};

static int
tc_open(struct tc *t, uint64_t size, uint64_t max_object, bool persist)
{
	memset(&t->p, 0, sizeof(t->p));
	t->p.name = t->name;
	t->p.size = size;
	t->p.max_object = max_object;
	t->p.persist = persist;
	t->p.nslots = NSLOTS;
	t->p.uid = -1;
	t->p.gid = -1;
	t->note[0] = 'x';	/* cache_open must always set it */
	t->note[1] = '\0';
	return cache_open(&t->c, &t->p, t->note, sizeof(t->note));
}

/* The test process becomes worker slot 0 of an open cache. */
static void
tc_worker0(struct tc *t)
{
	cache_slot_start(t->c, 0, (int)getpid());
	assert_true(cache_worker_init(t->c, 0) >= 0);
}

static int
setup_sized(void **state, uint64_t size, uint64_t max_object)
{
	struct tc *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	t->tag = *state;
	snprintf(t->name, sizeof(t->name), "/sluice-test-%d-%s", (int)getpid(),
	    t->tag);
	shm_unlink(t->name);
	if (tc_open(t, size, max_object, false) != 0) {
		free(t);
		return -1;
	}
	cache_slot_start(t->c, 0, (int)getpid());
	if (cache_worker_init(t->c, 0) < 0) {
		cache_close(t->c, true);
		shm_unlink(t->name);
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int
setup(void **state)
{
	return setup_sized(state, 4 * MIB, 2 * MIB);
}

static int
setup_small(void **state)
{
	return setup_sized(state, 1 * MIB, 256 * 1024);
}

/* A case that opens its own caches: only the name. */
static int
setup_bare(void **state)
{
	struct tc *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	t->tag = *state;
	snprintf(t->name, sizeof(t->name), "/sluice-test-%d-%s", (int)getpid(),
	    t->tag);
	shm_unlink(t->name);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tc *t = *state;

	if (t == NULL)
		return 0;
	/* cache_close() unlinks only from the master (slot -1); this process
	 * also acted as worker 0, so remove the segment by name as well. */
	if (t->c != NULL)
		cache_close(t->c, true);
	shm_unlink(t->name);
	free(t);
	return 0;
}

static void
fsck_ok(struct cache *c)
{
	const char *why = NULL;
	int r = cache_fsck(c, &why);

	if (r != 0)
		print_error("fsck: %d (%s)\n", r, why);
	assert_int_equal(r, 0);
	assert_string_equal(why, "ok");
}

static struct cache_gauges
gauges(struct cache *c)
{
	struct cache_gauges g;

	assert_int_equal(cache_gauges(c, &g), 0);
	return g;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- object bytes ---------------------------------------------------------- */

static uint32_t
key_seed(const char *key, size_t klen)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < klen; i++)
		h = (h ^ (uint8_t)key[i]) * 16777619u;
	return h;
}

/* Byte i of the [head][body] stream stored under a key of seed `seed`. */
static uint8_t
pat(uint32_t seed, uint64_t i)
{
	uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull + i * 0xff51afd7ed558ccdull;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	return (uint8_t)(x >> 32);
}

static void
pat_fill(uint32_t seed, uint64_t from, uint8_t *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = pat(seed, from + i);
}

/* Number of blocks an object of these sizes takes. */
static uint64_t
blocks_for(size_t klen, uint64_t hdr_len, uint64_t body_len)
{
	return (klen + hdr_len + body_len + BLK - 1) / BLK;
}

/* Append stream bytes [from, from + n) of key's pattern in pieces of
 * `chunk`; the first error is returned. */
static int
append_pat(struct cache *c, struct cache_ref *w, uint32_t seed, uint64_t from,
    uint64_t n, size_t chunk)
{
	uint8_t buf[8192];

	if (chunk > sizeof(buf))
		chunk = sizeof(buf);
	while (n > 0) {
		size_t k = n < chunk ? (size_t)n : chunk;
		int r;

		pat_fill(seed, from, buf, k);
		if ((r = cache_append(c, w, buf, k)) != 0)
			return r;
		from += k;
		n -= k;
	}
	return 0;
}

/*
 * Store key with a head of hdr_len and a body of body_len pattern bytes.
 * Returns 0 when committed; CACHE_FOUND when the key was there already;
 * else the first error (the entry is then released, hence abandoned).
 */
static int
fill(struct cache *c, const char *key, size_t klen, uint32_t hdr_len,
    uint64_t body_len, size_t chunk)
{
	struct cache_ref w;
	struct cache_meta m;
	uint32_t seed = key_seed(key, klen);
	int r = cache_get(c, key, klen, true, &w);

	if (r == CACHE_FOUND) {
		cache_release(c, &w);
		return CACHE_FOUND;
	}
	if (r != CACHE_CREATED)
		return r;
	memset(&m, 0, sizeof(m));
	m.lifetime = (int64_t)body_len;	/* read back to check meta travels */
	m.last_modified = -1;
	if ((r = append_pat(c, &w, seed, 0, hdr_len, chunk)) != 0)
		goto fail;
	cache_set_head(c, &w, hdr_len, &m, body_len, 0);
	if ((r = append_pat(c, &w, seed, hdr_len, body_len, chunk)) != 0)
		goto fail;
	if ((r = cache_commit(c, &w)) != 0)
		goto fail;
	cache_release(c, &w);
	return 0;
fail:
	cache_release(c, &w);
	return r;
}

/* Check published bytes [from, to) of a reference against the pattern,
 * through cache_iov in pieces of at most maxbytes; 0 or -1. */
static int
verify_range(struct cache *c, struct cache_ref *r, uint32_t seed,
    uint32_t key_len, uint64_t from, uint64_t to, size_t maxbytes)
{
	struct iovec iov[4];

	while (from < to) {
		size_t want = to - from < maxbytes ? (size_t)(to - from) : maxbytes;
		int n = cache_iov(c, r, from, want, iov, 4);

		if (n <= 0)
			return -1;
		for (int i = 0; i < n; i++) {
			const uint8_t *p = iov[i].iov_base;

			if (iov[i].iov_len == 0 || from + iov[i].iov_len > to)
				return -1;
			for (size_t j = 0; j < iov[i].iov_len; j++)
				if (p[j] != pat(seed, from - key_len + j))
					return -1;
			from += iov[i].iov_len;
		}
	}
	return 0;
}

/*
 * Look key up and check the whole object: complete, the lengths, meta,
 * the key bytes (cache_copy) and every head and body byte (cache_iov).
 * Returns 0, CACHE_ENOENT, or a positive number naming the failed check.
 */
static int
check(struct cache *c, const char *key, size_t klen, uint32_t hdr_len,
    uint64_t body_len)
{
	struct cache_ref r;
	struct cache_view v;
	uint32_t seed = key_seed(key, klen);
	char *kb;
	int g = cache_get(c, key, klen, false, &r), bad = 0;

	if (g != CACHE_FOUND)
		return g == CACHE_ENOENT ? CACHE_ENOENT : 100;
	cache_view(c, &r, &v);
	if (v.state != CE_COMPLETE)
		bad = 1;
	else if (v.flags & (CF_ABORTED | CF_DEAD | CF_PASS))
		bad = 2;
	else if (!(v.flags & CF_HEAD) || v.key_len != klen || v.hdr_len != hdr_len)
		bad = 3;
	else if (v.body_len != body_len || v.len != klen + hdr_len + body_len)
		bad = 4;
	else if (v.meta.lifetime != (int64_t)body_len)
		bad = 5;
	if (bad == 0) {
		kb = malloc(klen + 1);
		if (kb == NULL || cache_copy(c, &r, 0, kb, klen) != 0 ||
		    memcmp(kb, key, klen) != 0)
			bad = 6;
		free(kb);
	}
	if (bad == 0 && verify_range(c, &r, seed, (uint32_t)klen, klen, v.len,
	    10007) != 0)
		bad = 7;
	/* nothing is published past the end */
	if (bad == 0) {
		struct iovec iov[1];

		if (cache_iov(c, &r, v.len, 100, iov, 1) != 0)
			bad = 8;
	}
	cache_release(c, &r);
	return bad;
}

/* ---- children -------------------------------------------------------------- */

typedef int (*child_fn)(struct cache *c, unsigned slot, int efd, void *arg);

/*
 * Fork a worker for `slot` the way the master does: the child waits until
 * the parent has called cache_slot_start() (which clears the slot's
 * table), then becomes the slot and runs fn; fn's value is its status.
 */
static pid_t
spawn(struct cache *c, unsigned slot, child_fn fn, void *arg)
{
	int go[2];
	pid_t pid;
	char b = 0;

	if (pipe(go) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		int efd;

		close(go[1]);
		if (read(go[0], &b, 1) != 1)
			_exit(120);
		close(go[0]);
		if ((efd = cache_worker_init(c, slot)) < 0)
			_exit(121);
		_exit(fn(c, slot, efd, arg));
	}
	close(go[0]);
	if (pid > 0) {
		cache_slot_start(c, slot, (int)pid);
		if (write(go[1], "g", 1) != 1) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			pid = -1;
		}
	}
	close(go[1]);
	return pid;
}

static int
wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

/* Block until one byte arrives on fd (child/parent handshakes). */
static int
recv_byte(int fd)
{
	unsigned char b;
	ssize_t n;

	while ((n = read(fd, &b, 1)) < 0 && errno == EINTR)
		;
	return n == 1 ? b : -1;
}

static void
send_byte(int fd, int v)
{
	unsigned char b = (unsigned char)v;

	if (write(fd, &b, 1) != 1)
		abort();
}

/* ---- 1. fill and read back ------------------------------------------------ */

static void
fill_read_back(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	static const struct { size_t klen; uint32_t hdr; uint64_t body; } cases[] = {
		{ 1, 1, 1 }, { 10, 17, 4095 }, { 10, 0, 4096 }, { 11, 100, 4097 },
		{ 20, 300, 1 * MIB }, { 5000, 2000, 4097 }, { 1, 4095 - 1, 0 },
		{ 4096, 0, 0 },
	};
	struct cache_gauges g0 = gauges(c), g;
	uint64_t blocks = 0;
	char *keys[sizeof(cases) / sizeof(cases[0])];
	struct cache_ref r;

	assert_int_equal(g0.objects, 0);
	assert_int_equal(g0.blocks_used, 0);
	assert_int_equal(g0.blocks_free, g0.blocks_total);
	assert_int_equal(g0.block_size, BLK);
	assert_true(g0.blocks_total > 900 && g0.size <= 4 * MIB);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		keys[i] = malloc(cases[i].klen);
		assert_non_null(keys[i]);
		/* distinct keys of each length: a prefix byte names the case */
		memset(keys[i], 'k', cases[i].klen);
		keys[i][0] = (char)('A' + i);
		assert_int_equal(check(c, keys[i], cases[i].klen, cases[i].hdr,
		    cases[i].body), CACHE_ENOENT);
		assert_int_equal(fill(c, keys[i], cases[i].klen, cases[i].hdr,
		    cases[i].body, 1000 + 777 * i), 0);
		blocks += blocks_for(cases[i].klen, cases[i].hdr, cases[i].body);
		g = gauges(c);
		assert_int_equal(g.objects, i + 1);
		assert_int_equal(g.entries_used, i + 1);
		assert_int_equal(g.blocks_used, blocks);
		assert_int_equal(g.blocks_used + g.blocks_free, g.blocks_total);
		assert_int_equal(g.refs, 0);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(check(c, keys[i], cases[i].klen, cases[i].hdr,
		    cases[i].body), 0);
	/* a second create of a stored key finds it */
	assert_int_equal(fill(c, keys[0], 1, 1, 1, 1), CACHE_FOUND);
	/* a held reference counts in the gauges */
	assert_int_equal(cache_get(c, keys[1], cases[1].klen, false, &r), CACHE_FOUND);
	assert_int_equal(gauges(c).refs, 1);
	fsck_ok(c);
	cache_release(c, &r);
	assert_int_equal(gauges(c).refs, 0);
	/* misses: absent keys, a prefix and an extension of a stored key */
	assert_int_equal(cache_get(c, "nope", 4, false, &r), CACHE_ENOENT);
	assert_int_equal(cache_get(c, keys[1], cases[1].klen - 1, false, &r),
	    CACHE_ENOENT);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		free(keys[i]);
	assert_int_equal(gauges(c).blocks_used, blocks);
	fsck_ok(c);
}

/* Keys that differ in one byte, in length, or by an embedded NUL never
 * find each other's object. */
static void
keys_never_alias(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	static const struct { const char *k; size_t n; } keys[] = {
		{ "ab", 2 }, { "ba", 2 }, { "x", 1 }, { "x\0", 2 }, { "\0x", 2 },
		{ "key", 3 }, { "key1", 4 }, { "GET http://a.test/", 18 },
		{ "GET http://a.test/\0", 19 },
	};
	const size_t n = sizeof(keys) / sizeof(keys[0]);

	/* each key gets a body of a distinct length and its own bytes */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(fill(c, keys[i].k, keys[i].n, 5, 100 + i, 64), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(check(c, keys[i].k, keys[i].n, 5, 100 + i), 0);
	assert_int_equal(gauges(c).objects, n);
	fsck_ok(c);
}

/* ---- 2. streaming a filling entry ---------------------------------------- */

static void
stream_same_process(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	const char *key = "stream";
	uint32_t seed = key_seed(key, 6);
	struct cache_ref w, r;
	struct cache_view v;
	struct cache_meta m = { .lifetime = 60 };
	uint64_t seen;

	assert_int_equal(cache_get(c, key, 6, true, &w), CACHE_CREATED);
	assert_int_equal(cache_get(c, key, 6, false, &r), CACHE_FOUND);
	cache_view(c, &r, &v);
	assert_int_equal(v.state, CE_FILLING);
	assert_int_equal(v.len, 6);	/* the key is published first */
	assert_int_equal(v.flags & CF_HEAD, 0);
	assert_int_equal(v.body_len, UINT64_MAX);
	seen = v.len;
	assert_false(cache_wait(c, &r, seen));
	/* a filling entry is not an object yet */
	assert_int_equal(gauges(c).objects, 0);
	for (int i = 1; i <= 5; i++) {
		assert_int_equal(append_pat(c, &w, seed, seen - 6, 3000, 3000), 0);
		assert_true(cache_wait(c, &r, seen));
		cache_view(c, &r, &v);
		assert_int_equal(v.len, seen + 3000);
		assert_int_equal(v.state, CE_FILLING);
		/* the newly published bytes are there, byte-exact */
		assert_int_equal(verify_range(c, &r, seed, 6, seen, v.len, 1500), 0);
		seen = v.len;
		assert_false(cache_wait(c, &r, seen));
	}
	cache_set_head(c, &w, 100, &m, 15000 - 100, 0);
	assert_true(cache_wait(c, &r, seen));
	cache_view(c, &r, &v);
	assert_true(v.flags & CF_HEAD);
	assert_int_equal(v.hdr_len, 100);
	assert_int_equal(v.meta.lifetime, 60);
	assert_int_equal(v.body_len, 15000 - 100);
	assert_int_equal(cache_commit(c, &w), 0);
	assert_true(cache_wait(c, &r, seen));
	cache_view(c, &r, &v);
	assert_int_equal(v.state, CE_COMPLETE);
	assert_int_equal(v.len, 6 + 15000);
	assert_int_equal(gauges(c).objects, 1);
	cache_release(c, &w);
	assert_int_equal(verify_range(c, &r, seed, 6, 6, v.len, 4096), 0);
	cache_release(c, &r);
	fsck_ok(c);
}

/*
 * cache_wait() after the head was seen: nothing changed, so it must say
 * "wait" (false); saying "look again" for ever would make a reader of a
 * slow fill spin until the body's next byte.
 */
static void
stream_wait_after_head(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct cache_ref w, r;
	struct cache_view v;
	struct cache_meta m = { .lifetime = 1 };

	assert_int_equal(cache_get(c, "h", 1, true, &w), CACHE_CREATED);
	assert_int_equal(append_pat(c, &w, key_seed("h", 1), 0, 50, 50), 0);
	cache_set_head(c, &w, 50, &m, UINT64_MAX, 0);
	assert_int_equal(cache_get(c, "h", 1, false, &r), CACHE_FOUND);
	cache_view(c, &r, &v);
	assert_true(v.flags & CF_HEAD);
	/* the first wait may report the head once; after that, quiet */
	(void)cache_wait(c, &r, v.len);
	assert_false(cache_wait(c, &r, v.len));
	assert_int_equal(append_pat(c, &w, key_seed("h", 1), 50, 10, 10), 0);
	assert_true(cache_wait(c, &r, v.len));
	cache_release(c, &r);
	cache_release(c, &w);
	fsck_ok(c);
}

static void
stream_abort_wakes(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct cache_ref w, r;
	struct cache_view v;

	assert_int_equal(cache_get(c, "ab", 2, true, &w), CACHE_CREATED);
	assert_int_equal(cache_get(c, "ab", 2, false, &r), CACHE_FOUND);
	cache_view(c, &r, &v);
	assert_false(cache_wait(c, &r, v.len));
	cache_abort(c, &w, CF_ABORTED);
	assert_true(cache_wait(c, &r, v.len));
	cache_view(c, &r, &v);
	assert_true(v.flags & CF_ABORTED);
	cache_release(c, &r);
	cache_release(c, &w);
	fsck_ok(c);
}

struct stream_arg {
	int ready[2];		/* child -> parent */
	const char *key;
	size_t klen;
	uint64_t total;		/* head + body the parent writes */
};

/* Reader in another worker: its wakeup descriptor (from cache_worker_init)
 * becomes readable as the fill grows. */
static int
stream_reader(struct cache *c, unsigned slot, int efd, void *arg)
{
	struct stream_arg *a = arg;
	struct pollfd pfd = { .fd = efd, .events = POLLIN };
	struct cache_ref r;
	struct cache_view v;
	uint32_t seed = key_seed(a->key, a->klen);
	uint64_t seen;
	int wakes = 0, spins = 0;

	(void)slot;
	if (cache_get(c, a->key, a->klen, false, &r) != CACHE_FOUND)
		return 1;
	cache_view(c, &r, &v);
	if (v.state != CE_FILLING || v.len != a->klen)
		return 2;
	seen = v.len;
	if (cache_wait(c, &r, seen))
		return 3;
	if (poll(&pfd, 1, 0) != 0)	/* nothing pending before the append */
		return 4;
	send_byte(a->ready[1], 'r');
	/* the parent appends once: the descriptor must become readable */
	if (poll(&pfd, 1, 5000) != 1 || !(pfd.revents & POLLIN))
		return 5;
	cache_wake_drain(c);
	if (poll(&pfd, 1, 0) != 0)	/* drained */
		return 6;
	cache_view(c, &r, &v);
	if (v.len <= seen)
		return 7;
	if (verify_range(c, &r, seed, (uint32_t)a->klen, seen, v.len, 999) != 0)
		return 8;
	seen = v.len;
	send_byte(a->ready[1], 'n');
	/* follow the rest of the fill until it completes */
	for (uint64_t until = now_ms() + 5000; now_ms() < until;) {
		cache_view(c, &r, &v);
		if (v.len > seen) {
			if (verify_range(c, &r, seed, (uint32_t)a->klen, seen,
			    v.len, 4096) != 0)
				return 9;
			seen = v.len;
		}
		if (v.flags & CF_ABORTED)
			return 10;
		if (v.state == CE_COMPLETE && seen == v.len)
			break;
		if (!cache_wait(c, &r, seen)) {
			if (poll(&pfd, 1, 1000) == 1) {
				wakes++;
				cache_wake_drain(c);
			}
		} else {
			struct cache_view v2;

			/* "look again": something must have changed */
			cache_view(c, &r, &v2);
			spins += v2.len == seen && v2.state == v.state &&
			    v2.flags == v.flags;
		}
	}
	if (v.state != CE_COMPLETE || seen != a->klen + a->total)
		return 11;
	/* the writer pauses between appends: the reader slept on its
	 * wakeup descriptor rather than being told to look again for nothing */
	if (wakes == 0)
		return 12;
	if (spins > 100)
		return 13;
	cache_release(c, &r);
	return 0;
}

static void
stream_wakes_other_worker(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct stream_arg a = { .key = "GET http://o.test/big", .klen = 21,
	    .total = 200000 };
	uint32_t seed = key_seed(a.key, a.klen);
	struct cache_meta m = { .lifetime = 200000 - 1000 };
	struct cache_ref w;
	pid_t pid;
	int st;

	assert_int_equal(pipe(a.ready), 0);
	assert_int_equal(cache_get(c, a.key, a.klen, true, &w), CACHE_CREATED);
	pid = spawn(c, 3, stream_reader, &a);
	assert_true(pid > 0);
	assert_int_equal(recv_byte(a.ready[0]), 'r');
	assert_int_equal(append_pat(c, &w, seed, 0, 1000, 1000), 0);
	assert_int_equal(recv_byte(a.ready[0]), 'n');
	cache_set_head(c, &w, 1000, &m, a.total - 1000, 0);
	/* the rest in pieces, with pauses so the reader has to wait */
	for (uint64_t off = 1000; off < a.total; off += 19900) {
		uint64_t k = a.total - off < 19900 ? a.total - off : 19900;

		assert_int_equal(append_pat(c, &w, seed, off, k, 4000), 0);
		sleep_ms(5);
	}
	assert_int_equal(cache_commit(c, &w), 0);
	cache_release(c, &w);
	st = wait_child(pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	cache_slot_reap(c, 3);
	assert_int_equal(check(c, a.key, a.klen, 1000, a.total - 1000), 0);
	close(a.ready[0]); close(a.ready[1]);
	assert_int_equal(gauges(c).refs, 0);
	fsck_ok(c);
}

/* ---- 3. concurrent create ------------------------------------------------- */

#define RACE_KEYS	64

struct race_arg {
	int go[2];		/* parent -> both children */
	int out[2];		/* child -> parent: one result byte per key */
};

static int
race_child(struct cache *c, unsigned slot, int efd, void *arg)
{
	struct race_arg *a = arg;

	(void)efd;
	if (recv_byte(a->go[0]) != 'g')
		return 1;
	for (unsigned k = 0; k < RACE_KEYS; k++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "race/%u", k), g;
		struct cache_ref r;

		g = cache_get(c, key, (size_t)n, true, &r);
		if (g == CACHE_CREATED) {
			/* give the loser time to find the filling entry */
			if (append_pat(c, &r, key_seed(key, (size_t)n), 0, 5000,
			    700) != 0)
				return 2;
			cache_set_head(c, &r, 0, &(struct cache_meta){
			    .lifetime = 5000 }, 5000, 0);
			if (cache_commit(c, &r) != 0)
				return 3;
		}
		if (g == CACHE_CREATED || g == CACHE_FOUND)
			cache_release(c, &r);
		send_byte(a->out[1], (int)(g + 10) | (int)(slot << 4));
	}
	return 0;
}

static void
concurrent_create_one_winner(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct race_arg a;
	int created[RACE_KEYS] = { 0 }, found[RACE_KEYS] = { 0 };
	unsigned next[2] = { 0, 0 };
	pid_t p1, p2;
	int st;

	assert_int_equal(pipe(a.go), 0);
	assert_int_equal(pipe(a.out), 0);
	p1 = spawn(c, 1, race_child, &a);
	p2 = spawn(c, 2, race_child, &a);
	assert_true(p1 > 0 && p2 > 0);
	send_byte(a.go[1], 'g');
	send_byte(a.go[1], 'g');
	for (int i = 0; i < 2 * RACE_KEYS; i++) {
		int b = recv_byte(a.out[0]), slot, g;
		unsigned k;

		assert_true(b >= 0);
		slot = b >> 4;
		g = (b & 15) - 10;
		assert_true(slot == 1 || slot == 2);
		k = next[slot - 1]++;	/* each child reports keys in order */
		assert_true(k < RACE_KEYS);
		if (g == CACHE_CREATED)
			created[k]++;
		else if (g == CACHE_FOUND)
			found[k]++;
		else
			fail_msg("key %u: cache_get returned %d", k, g);
	}
	st = wait_child(p1);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = wait_child(p2);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cache_slot_reap(c, 1);
	cache_slot_reap(c, 2);
	for (unsigned k = 0; k < RACE_KEYS; k++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "race/%u", k);

		assert_int_equal(created[k], 1);
		assert_int_equal(found[k], 1);
		assert_int_equal(check(c, key, (size_t)n, 0, 5000), 0);
	}
	assert_int_equal(gauges(c).objects, RACE_KEYS);
	assert_int_equal(gauges(c).entries_used, RACE_KEYS);
	close(a.go[0]); close(a.go[1]); close(a.out[0]); close(a.out[1]);
	fsck_ok(c);
}

/* ---- 4. abort ---------------------------------------------------------------- */

static void
abort_frees_after_readers(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct cache_gauges g0 = gauges(c), g;
	struct cache_ref w, r1, r2, x;
	struct cache_view v;

	assert_int_equal(cache_get(c, "a", 1, true, &w), CACHE_CREATED);
	assert_int_equal(append_pat(c, &w, 7, 0, 3 * BLK, 1000), 0);
	assert_int_equal(cache_get(c, "a", 1, false, &r1), CACHE_FOUND);
	assert_int_equal(cache_get(c, "a", 1, false, &r2), CACHE_FOUND);
	g = gauges(c);
	assert_int_equal(g.blocks_used, g0.blocks_used + 4);
	assert_int_equal(g.refs, 2);
	cache_abort(c, &w, CF_ABORTED);
	cache_view(c, &r1, &v);
	assert_true(v.flags & CF_ABORTED);
	assert_int_not_equal(v.state, CE_COMPLETE);
	/* a new lookup misses; commit of an aborted entry is refused */
	assert_int_equal(cache_get(c, "a", 1, false, &x), CACHE_ENOENT);
	assert_int_equal(cache_commit(c, &w), CACHE_EABORTED);
	cache_release(c, &w);
	/* the readers still hold the blocks: what was published stays */
	g = gauges(c);
	assert_int_equal(g.blocks_used, g0.blocks_used + 4);
	assert_int_equal(g.objects, 0);
	assert_int_equal(cache_copy(c, &r2, 1, &(char[8]){ 0 }, 8), 0);
	cache_release(c, &r1);
	assert_int_equal(gauges(c).blocks_used, g0.blocks_used + 4);
	fsck_ok(c);
	cache_release(c, &r2);
	g = gauges(c);
	assert_int_equal(g.blocks_used, g0.blocks_used);
	assert_int_equal(g.entries_used, g0.entries_used);
	assert_int_equal(g.refs, 0);
	fsck_ok(c);
	/* the key can be filled again */
	assert_int_equal(fill(c, "a", 1, 10, 10, 5), 0);
	assert_int_equal(check(c, "a", 1, 10, 10), 0);
	fsck_ok(c);
}

/* A writer that releases without committing abandons the entry. */
static void
release_uncommitted_aborts(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct cache_gauges g0 = gauges(c);
	struct cache_ref w, r, x;
	struct cache_view v;

	assert_int_equal(cache_get(c, "u", 1, true, &w), CACHE_CREATED);
	assert_int_equal(cache_get(c, "u", 1, false, &r), CACHE_FOUND);
	assert_int_equal(append_pat(c, &w, 1, 0, 10000, 10000), 0);
	cache_set_head(c, &w, 10, &(struct cache_meta){ .lifetime = 1 },
	    UINT64_MAX, 0);
	cache_release(c, &w);
	cache_view(c, &r, &v);
	assert_true(v.flags & CF_ABORTED);
	assert_int_not_equal(v.state, CE_COMPLETE);
	assert_int_equal(cache_get(c, "u", 1, false, &x), CACHE_ENOENT);
	cache_release(c, &r);
	assert_int_equal(gauges(c).blocks_used, g0.blocks_used);
	assert_int_equal(gauges(c).entries_used, g0.entries_used);
	/* an aborted entry that nobody read is freed at once */
	assert_int_equal(cache_get(c, "u2", 2, true, &w), CACHE_CREATED);
	assert_int_equal(append_pat(c, &w, 1, 0, 5000, 5000), 0);
	cache_abort(c, &w, CF_PASS);
	cache_release(c, &w);
	assert_int_equal(gauges(c).blocks_used, g0.blocks_used);
	assert_int_equal(gauges(c).entries_used, g0.entries_used);
	fsck_ok(c);
}

/* ---- 5. eviction ------------------------------------------------------------ */

static void
eviction_flood(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct cache_gauges g0 = gauges(c), g;
	struct cache_ref held, w;
	uint64_t written = 0, ok = 0, nospc = 0;
	const uint64_t held_body = 30000;
	unsigned n = 0;

	assert_int_equal(g0.size <= 1 * MIB, true);
	/* the held object: a reader keeps it while everything else churns */
	assert_int_equal(fill(c, "held", 4, 200, held_body, 3000), 0);
	assert_int_equal(cache_get(c, "held", 4, false, &held), CACHE_FOUND);
	srand(1);
	while (written < 10 * MIB) {
		char key[32];
		int kl = snprintf(key, sizeof(key), "flood/%u", n++);
		uint64_t body = 1 + (uint64_t)rand() % (64 * 1024);
		int r = fill(c, key, (size_t)kl, 100, body, 8192);

		if (r == 0)
			ok++;
		else if (r == CACHE_ENOSPC)
			nospc++;
		else
			fail_msg("fill %s: %d (%s)", key, r, cache_strerror(r));
		written += body;
		g = gauges(c);
		assert_true(g.blocks_used <= g.blocks_total);
		assert_int_equal(g.blocks_used + g.blocks_free, g.blocks_total);
	}
	g = gauges(c);
	assert_true(ok > 100);
	assert_true(g.evictions > 0);
	assert_true(g.objects < n);
	print_message("# flood: %u fills, %llu stored, %llu no space, "
	    "%llu evictions\n", n, (unsigned long long)ok,
	    (unsigned long long)nospc, (unsigned long long)g.evictions);
	fsck_ok(c);
	/* the held object was never evicted and is intact */
	{
		struct cache_view v;

		cache_view(c, &held, &v);
		assert_int_equal(v.state, CE_COMPLETE);
		assert_int_equal(v.flags & (CF_DEAD | CF_ABORTED), 0);
		assert_int_equal(verify_range(c, &held, key_seed("held", 4), 4, 4,
		    v.len, 5000), 0);
	}
	cache_release(c, &held);
	assert_int_equal(check(c, "held", 4, 200, held_body), 0);
	/* the latest fill is there too */
	{
		char key[32];
		int kl = snprintf(key, sizeof(key), "flood/%u", n - 1);
		struct cache_ref r;

		assert_int_equal(cache_get(c, key, (size_t)kl, false, &r), CACHE_FOUND);
		cache_release(c, &r);
	}
	/* a body above max_object is refused by cache_append */
	assert_int_equal(cache_get(c, "big", 3, true, &w), CACHE_CREATED);
	assert_int_equal(append_pat(c, &w, 3, 0, 10, 10), 0);
	cache_set_head(c, &w, 10, &(struct cache_meta){ .lifetime = 1 },
	    UINT64_MAX, 0);
	assert_int_equal(append_pat(c, &w, 3, 10, t->p.max_object, 8192), 0);
	{
		char one = 'x';

		assert_int_equal(cache_append(c, &w, &one, 1), CACHE_ETOOBIG);
	}
	cache_release(c, &w);
	assert_int_equal(cache_get(c, "big", 3, false, &w), CACHE_ENOENT);
	/* a key above max_object cannot even start */
	{
		char *k = malloc(t->p.max_object + 1);

		assert_non_null(k);
		memset(k, 'K', t->p.max_object + 1);
		assert_int_equal(cache_get(c, k, t->p.max_object + 1, true, &w),
		    CACHE_ETOOBIG);
		free(k);
	}
	assert_int_equal(gauges(c).refs, 0);
	fsck_ok(c);
}

/* An object as large as max_object fits by evicting others; one past
 * the limit, before its head is known, is refused at the 64 KiB head
 * allowance and leaves nothing behind. */
static void
eviction_max_object_fits(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct cache_gauges g0, g;
	struct cache_ref w;

	for (unsigned i = 0; i < 50; i++) {
		char key[16];
		int kl = snprintf(key, sizeof(key), "s%u", i);

		assert_int_equal(fill(c, key, (size_t)kl, 0, 20000, 4096), 0);
	}
	assert_int_equal(fill(c, "max", 3, 0, t->p.max_object, 8192), 0);
	assert_int_equal(check(c, "max", 3, 0, t->p.max_object), 0);
	assert_true(gauges(c).evictions > 0);
	g0 = gauges(c);
	assert_int_equal(cache_get(c, "huge", 4, true, &w), CACHE_CREATED);
	assert_int_equal(append_pat(c, &w, 9, 0, t->p.max_object + 65536, 8192),
	    0);
	assert_int_equal(cache_append(c, &w, "x", 1), CACHE_ETOOBIG);
	cache_release(c, &w);
	assert_int_equal(cache_get(c, "huge", 4, false, &w), CACHE_ENOENT);
	g = gauges(c);
	assert_int_equal(g.refs, 0);
	assert_int_equal(g.blocks_used + g.blocks_free, g.blocks_total);
	assert_true(g.entries_used <= g0.entries_used);
	fsck_ok(c);
}

/* When every block is held by a reader, a fill gets CACHE_ENOSPC and
 * gives back what it took; nothing held is evicted. */
static void
eviction_nospc_when_all_held(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct cache_ref held[400];
	struct cache_gauges g;
	unsigned n = 0;
	int r = 0;

	assert_true(gauges(c).blocks_total < 8 * 400);
	while (n < 400) {
		char key[16];
		int kl = snprintf(key, sizeof(key), "h%u", n);

		/* 8 blocks each: key + head + body = 8 * 4096 */
		r = fill(c, key, (size_t)kl, 100, 8 * BLK - 100 - (uint64_t)kl, 8192);
		if (r != 0)
			break;
		assert_int_equal(cache_get(c, key, (size_t)kl, false, &held[n]),
		    CACHE_FOUND);
		n++;
	}
	assert_int_equal(r, CACHE_ENOSPC);
	g = gauges(c);
	assert_int_equal(g.evictions, 0);
	assert_int_equal(g.objects, n);
	assert_int_equal(g.entries_used, n);	/* the failed fill is gone */
	assert_int_equal(g.blocks_used, 8 * n);
	assert_true(g.blocks_free < 8);
	assert_int_equal(g.refs, n);
	fsck_ok(c);
	for (unsigned i = 0; i < n; i++) {
		char key[16];
		int kl = snprintf(key, sizeof(key), "h%u", i);

		cache_release(c, &held[i]);
		assert_int_equal(check(c, key, (size_t)kl, 100,
		    8 * BLK - 100 - (uint64_t)kl), 0);
	}
	/* released, they are evictable again */
	assert_int_equal(fill(c, "after", 5, 0, 8 * BLK, 8192), 0);
	assert_true(gauges(c).evictions > 0);
	fsck_ok(c);
}

/* The spill hook (the memcached tier's): every complete object eviction
 * drops is handed over first, readable in full through the reference;
 * its blocks are free once the hook returns; objects over max_len and
 * held objects are not handed over. */
struct spill_seen {
	unsigned calls, bad, big;
	uint64_t bytes;
};

static void
spill_hook(void *arg, struct cache *c, struct cache_ref *ref)
{
	struct spill_seen *s = arg;
	struct cache_view v;
	char key[32];

	s->calls++;
	cache_view(c, ref, &v);
	if (v.state != CE_COMPLETE || v.key_len >= sizeof(key) ||
	    cache_copy(c, ref, 0, key, v.key_len) != 0) {
		s->bad++;
		return;
	}
	/* the whole object, key and pattern, as fill() wrote it */
	if (verify_range(c, ref, key_seed(key, v.key_len), v.key_len,
	    v.key_len, v.len, 4096) != 0)
		s->bad++;
	if (v.len > 40000)
		s->big++;
	s->bytes += v.len;
}

static void
eviction_spill_hook(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct spill_seen seen = { 0, 0, 0, 0 };
	struct cache_ref held;
	struct cache_gauges g;

	cache_set_spill(c, spill_hook, &seen, 40000);
	assert_int_equal(fill(c, "held", 4, 100, 20000, 4096), 0);
	assert_int_equal(cache_get(c, "held", 4, false, &held), CACHE_FOUND);
	for (unsigned i = 0; i < 300; i++) {
		char key[16];
		int kl = snprintf(key, sizeof(key), "sp%u", i);

		/* every tenth object is above the hook's limit */
		assert_int_equal(fill(c, key, (size_t)kl, 100,
		    i % 10 == 0 ? 60000 : 20000, 4096), 0);
	}
	g = gauges(c);
	assert_true(g.evictions > 100);
	assert_true(seen.calls > 80);
	assert_true(seen.calls < g.evictions);	/* the big ones were not */
	assert_int_equal(seen.bad, 0);
	assert_int_equal(seen.big, 0);
	assert_int_equal(g.refs, 1);		/* only ours: the hook's went */
	assert_int_equal(g.blocks_used + g.blocks_free, g.blocks_total);
	assert_int_equal(check(c, "held", 4, 100, 20000), 0);
	cache_release(c, &held);
	cache_set_spill(c, NULL, NULL, 0);
	{
		unsigned before = seen.calls;

		for (unsigned i = 0; i < 50; i++) {
			char key[16];
			int kl = snprintf(key, sizeof(key), "off%u", i);

			assert_int_equal(fill(c, key, (size_t)kl, 100, 20000, 4096), 0);
		}
		assert_int_equal(seen.calls, before);	/* off: not called */
	}
	print_message("# spill hook: %u objects, %llu bytes, %llu evictions\n",
	    seen.calls, (unsigned long long)seen.bytes,
	    (unsigned long long)gauges(c).evictions);
	fsck_ok(c);
}

/* ---- 6. detached refresh ------------------------------------------------------ */

static void
detached_refresh(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	const char *key = "GET http://o.test/r";
	const size_t kl = strlen(key);
	uint32_t seed = key_seed(key, kl);
	struct cache_ref old, w, cur;
	struct cache_view v;
	struct cache_gauges g;
	uint8_t newbytes[9000];

	assert_int_equal(fill(c, key, kl, 50, 20000, 4096), 0);
	g = gauges(c);
	assert_int_equal(g.blocks_used, blocks_for(kl, 50, 20000));
	assert_int_equal(cache_get(c, key, kl, false, &old), CACHE_FOUND);
	/* the refresh: a new entry outside the index, new bytes */
	assert_int_equal(cache_create_detached(c, key, kl, &w), 0);
	for (size_t i = 0; i < sizeof(newbytes); i++)
		newbytes[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(cache_append(c, &w, newbytes, 30), 0);
	cache_set_head(c, &w, 30, &(struct cache_meta){ .lifetime = 99 },
	    sizeof(newbytes) - 30, 0);
	assert_int_equal(cache_append(c, &w, newbytes + 30, sizeof(newbytes) - 30),
	    0);
	/* until commit, lookups still get the old object */
	assert_int_equal(check(c, key, kl, 50, 20000), 0);
	assert_int_equal(gauges(c).objects, 1);
	assert_int_equal(cache_commit(c, &w), 0);
	cache_release(c, &w);
	g = gauges(c);
	assert_int_equal(g.objects, 1);
	assert_int_equal(g.entries_used, 2);	/* the old one drains */
	assert_int_equal(g.blocks_used, blocks_for(kl, 50, 20000) +
	    blocks_for(kl, 0, sizeof(newbytes)));
	/* a new lookup gets the new bytes */
	assert_int_equal(cache_get(c, key, kl, false, &cur), CACHE_FOUND);
	cache_view(c, &cur, &v);
	assert_int_equal(v.state, CE_COMPLETE);
	assert_int_equal(v.hdr_len, 30);
	assert_int_equal(v.meta.lifetime, 99);
	assert_int_equal(v.len, kl + sizeof(newbytes));
	{
		uint8_t got[sizeof(newbytes)];

		assert_int_equal(cache_copy(c, &cur, kl, got, sizeof(got)), 0);
		assert_memory_equal(got, newbytes, sizeof(got));
	}
	cache_release(c, &cur);
	/* the old reference still reads the old bytes */
	cache_view(c, &old, &v);
	assert_int_equal(v.state, CE_COMPLETE);
	assert_true(v.flags & CF_DEAD);
	assert_int_equal(v.len, kl + 50 + 20000);
	assert_int_equal(verify_range(c, &old, seed, (uint32_t)kl, kl, v.len, 3000),
	    0);
	fsck_ok(c);
	cache_release(c, &old);
	g = gauges(c);
	assert_int_equal(g.entries_used, 1);
	assert_int_equal(g.blocks_used, blocks_for(kl, 0, sizeof(newbytes)));
	assert_int_equal(g.objects, 1);
	/* an abandoned refresh leaves the current object alone */
	assert_int_equal(cache_create_detached(c, key, kl, &w), 0);
	assert_int_equal(cache_append(c, &w, "zz", 2), 0);
	cache_release(c, &w);
	g = gauges(c);
	assert_int_equal(g.entries_used, 1);
	assert_int_equal(g.blocks_used, blocks_for(kl, 0, sizeof(newbytes)));
	assert_int_equal(cache_get(c, key, kl, false, &cur), CACHE_FOUND);
	cache_view(c, &cur, &v);
	assert_int_equal(v.hdr_len, 30);
	cache_release(c, &cur);
	fsck_ok(c);
}

/* ---- 7. invalidate -------------------------------------------------------------- */

static void
invalidate_entry(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct cache_gauges g0 = gauges(c), g;
	struct cache_ref w, r;

	assert_int_equal(cache_invalidate(c, "i", 1), 0);
	assert_int_equal(fill(c, "i", 1, 10, 9000, 4096), 0);
	assert_int_equal(fill(c, "j", 1, 10, 9000, 4096), 0);
	assert_int_equal(cache_invalidate(c, "i", 1), 1);
	assert_int_equal(cache_get(c, "i", 1, false, &r), CACHE_ENOENT);
	assert_int_equal(cache_invalidate(c, "i", 1), 0);
	g = gauges(c);
	assert_int_equal(g.objects, 1);
	assert_int_equal(g.blocks_used, g0.blocks_used + blocks_for(1, 10, 9000));
	/* the neighbour is untouched */
	assert_int_equal(check(c, "j", 1, 10, 9000), 0);
	/* invalidating a filling entry: it never returns to the index, but a
	 * reader that joined the fill still sees it complete (it must not
	 * wait for ever) */
	assert_int_equal(cache_get(c, "f", 1, true, &w), CACHE_CREATED);
	assert_int_equal(append_pat(c, &w, 3, 0, 100, 100), 0);
	assert_int_equal(cache_get(c, "f", 1, false, &r), CACHE_FOUND);
	assert_int_equal(cache_invalidate(c, "f", 1), 1);
	assert_int_equal(cache_commit(c, &w), CACHE_ENOENT);
	{
		struct cache_view v;

		cache_view(c, &r, &v);
		assert_int_equal(v.state, CE_COMPLETE);
		assert_true(v.flags & CF_DEAD);
		assert_false(v.flags & CF_ABORTED);
	}
	cache_release(c, &r);
	cache_release(c, &w);
	assert_int_equal(cache_get(c, "f", 1, false, &r), CACHE_ENOENT);
	g = gauges(c);
	assert_int_equal(g.objects, 1);
	assert_int_equal(g.blocks_used, g0.blocks_used + blocks_for(1, 10, 9000));
	fsck_ok(c);
}

/* ---- 8. persistence ------------------------------------------------------------ */

static void
persist_reattach(void **state)
{
	struct tc *t = *state;
	struct cache_ref w, r;
	struct cache_gauges g;

	assert_int_equal(tc_open(t, 4 * MIB, 2 * MIB, true), 0);
	assert_string_equal(t->note, "");	/* nothing there before */
	tc_worker0(t);
	assert_int_equal(fill(t->c, "p1", 2, 10, 1, 100), 0);
	assert_int_equal(fill(t->c, "p2", 2, 100, 1 * MIB, 8192), 0);
	assert_int_equal(fill(t->c, "p3", 2, 0, 4096, 4096), 0);
	/* a half-filled entry and a held reference at "shutdown" */
	assert_int_equal(cache_get(t->c, "half", 4, true, &w), CACHE_CREATED);
	assert_int_equal(append_pat(t->c, &w, 1, 0, 5000, 5000), 0);
	assert_int_equal(cache_get(t->c, "p3", 2, false, &r), CACHE_FOUND);
	cache_close(t->c, false);
	t->c = NULL;

	assert_int_equal(tc_open(t, 4 * MIB, 2 * MIB, true), 0);
	assert_non_null(strstr(t->note, "re-attached"));
	assert_non_null(strstr(t->note, " 3 objects"));
	tc_worker0(t);
	g = gauges(t->c);
	assert_int_equal(g.objects, 3);
	assert_int_equal(g.entries_used, 3);
	assert_int_equal(g.refs, 0);
	assert_int_equal(g.blocks_used, blocks_for(2, 10, 1) +
	    blocks_for(2, 100, 1 * MIB) + blocks_for(2, 0, 4096));
	fsck_ok(t->c);
	assert_int_equal(check(t->c, "p1", 2, 10, 1), 0);
	assert_int_equal(check(t->c, "p2", 2, 100, 1 * MIB), 0);
	assert_int_equal(check(t->c, "p3", 2, 0, 4096), 0);
	assert_int_equal(cache_get(t->c, "half", 4, false, &r), CACHE_ENOENT);
	/* the re-attached segment works as usual */
	assert_int_equal(fill(t->c, "half", 4, 1, 1, 1), 0);
	assert_int_equal(check(t->c, "half", 4, 1, 1), 0);
	fsck_ok(t->c);
	cache_close(t->c, false);
	t->c = NULL;

	/* another size: the segment is recreated, empty */
	assert_int_equal(tc_open(t, 2 * MIB, 1 * MIB, true), 0);
	assert_non_null(strstr(t->note, "recreated"));
	tc_worker0(t);
	g = gauges(t->c);
	assert_int_equal(g.objects, 0);
	assert_int_equal(g.blocks_used, 0);
	assert_true(g.size <= 2 * MIB);
	assert_int_equal(check(t->c, "p1", 2, 10, 1), CACHE_ENOENT);
	fsck_ok(t->c);
	cache_close(t->c, false);
	t->c = NULL;

	/* without persist a leftover is recreated too */
	assert_int_equal(tc_open(t, 2 * MIB, 1 * MIB, false), 0);
	assert_non_null(strstr(t->note, "recreated"));
	tc_worker0(t);
	assert_int_equal(gauges(t->c).objects, 0);
	fsck_ok(t->c);
}

/* A kept segment of an older layout (layout 2 kept the object count in
 * its header; 3 keeps it per stripe, in bigger stripe locks) is
 * recreated, never misread. */
static void
persist_old_layout(void **state)
{
	struct tc *t = *state;
	uint32_t *hw;
	int fd;

	assert_int_equal(tc_open(t, 4 * MIB, 2 * MIB, true), 0);
	tc_worker0(t);
	assert_int_equal(fill(t->c, "p1", 2, 10, 1, 100), 0);
	cache_close(t->c, false);
	t->c = NULL;
	/* the header opens with { magic, layout } */
	fd = shm_open(t->name, O_RDWR, 0600);
	assert_true(fd >= 0);
	hw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(hw != MAP_FAILED);
	close(fd);
	assert_int_equal(hw[1], 3);
	hw[1] = 2;
	munmap(hw, 4096);

	assert_int_equal(tc_open(t, 4 * MIB, 2 * MIB, true), 0);
	assert_non_null(strstr(t->note, "recreated"));
	tc_worker0(t);
	assert_int_equal(gauges(t->c).objects, 0);
	assert_int_equal(check(t->c, "p1", 2, 10, 1), CACHE_ENOENT);
	fsck_ok(t->c);
}

/* A segment whose name someone else created (mode 0644) is never adopted. */
static void
persist_foreign_segment(void **state)
{
	struct tc *t = *state;
	struct stat st;
	int fd;

	fd = shm_open(t->name, O_RDWR | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0644), 0);
	assert_int_equal(ftruncate(fd, 4 * MIB), 0);
	for (int persist = 0; persist < 2; persist++) {
		assert_int_equal(tc_open(t, 4 * MIB, 2 * MIB, persist != 0),
		    CACHE_EOWNER);
		assert_null(t->c);
		/* still there, untouched */
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0644);
		assert_int_equal(st.st_size, 4 * MIB);
	}
	close(fd);
	assert_int_equal(shm_unlink(t->name), 0);
	/* once it is gone, the name is ours */
	assert_int_equal(tc_open(t, 4 * MIB, 2 * MIB, true), 0);
	tc_worker0(t);
	fsck_ok(t->c);
}

/* ---- 9. crash recovery ----------------------------------------------------------- */

#ifdef SLUICE_FAULT_INJECTION

struct crash_arg {
	const char *point;
	int sync[2];		/* child -> parent */
	int cont[2];		/* parent -> child */
};

static const char KEY_C[] = "GET http://o.test/complete";
static const char KEY_F[] = "GET http://o.test/filling";

/* Worker that dies (SIGKILL) inside the critical section `point`. */
static int
crash_child(struct cache *c, unsigned slot, int efd, void *arg)
{
	struct crash_arg *a = arg;
	struct cache_ref r;
	const char *p = a->point;

	(void)slot;
	(void)efd;
	if (strcmp(p, "ref") == 0) {
		cache_test_crash_at(c, p);
		cache_get(c, KEY_C, sizeof(KEY_C) - 1, false, &r);
	} else if (strcmp(p, "unref") == 0) {
		if (cache_get(c, KEY_C, sizeof(KEY_C) - 1, false, &r) != CACHE_FOUND)
			return 2;
		cache_test_crash_at(c, p);
		cache_release(c, &r);
	} else if (strcmp(p, "alloc") == 0) {
		/* a linked filling entry; the parent reads it, then the
		 * writer dies taking its next block */
		if (cache_get(c, KEY_F, sizeof(KEY_F) - 1, true, &r) != CACHE_CREATED)
			return 3;
		if (append_pat(c, &r, key_seed(KEY_F, sizeof(KEY_F) - 1), 0,
		    BLK - sizeof(KEY_F) + 1, 1000) != 0)
			return 4;
		send_byte(a->sync[1], 's');
		if (recv_byte(a->cont[0]) != 'c')
			return 5;
		cache_test_crash_at(c, p);
		append_pat(c, &r, key_seed(KEY_F, sizeof(KEY_F) - 1),
		    BLK - sizeof(KEY_F) + 1, 100, 100);
	} else if (strcmp(p, "link") == 0 || strcmp(p, "linked") == 0) {
		cache_test_crash_at(c, p);
		cache_get(c, KEY_F, sizeof(KEY_F) - 1, true, &r);
	} else if (strcmp(p, "unlink") == 0 || strcmp(p, "unlinked") == 0) {
		cache_test_crash_at(c, p);
		cache_invalidate(c, KEY_C, sizeof(KEY_C) - 1);
	} else
		return 6;
	return 7;	/* should have died */
}

/*
 * Kill a worker at `point`; then, with lookup_first, let a worker (this
 * process, slot 0) meet the dead owner's lock before the master reaps
 * (the EOWNERDEAD repair in lock_take), else reap first (the master's
 * repair).  Either way the segment must end whole.
 */
static void
crash_at_point(struct tc *t, const char *point, bool lookup_first)
{
	struct cache *c = t->c;
	struct crash_arg a = { .point = point };
	struct cache_ref reader = { 0 }, r;
	struct cache_view v;
	struct cache_gauges g;
	bool unlinks = strncmp(point, "unlink", 6) == 0;	/* and "unlinked" */
	bool stripe_c = strcmp(point, "ref") == 0 ||
	    strcmp(point, "unref") == 0 || unlinks;
	pid_t pid;
	int st;

	assert_int_equal(pipe(a.sync), 0);
	assert_int_equal(pipe(a.cont), 0);
	assert_int_equal(fill(c, KEY_C, sizeof(KEY_C) - 1, 40, 9000, 4096), 0);
	pid = spawn(c, 5, crash_child, &a);
	assert_true(pid > 0);
	if (strcmp(point, "alloc") == 0) {
		assert_int_equal(recv_byte(a.sync[0]), 's');
		assert_int_equal(cache_get(c, KEY_F, sizeof(KEY_F) - 1, false,
		    &reader), CACHE_FOUND);
		send_byte(a.cont[1], 'c');
	}
	st = wait_child(pid);
	if (!WIFSIGNALED(st))
		fail_msg("%s: child exited with %d instead of dying",
		    point, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	assert_int_equal(WTERMSIG(st), SIGKILL);
	if (lookup_first) {
		const char *k = stripe_c ? KEY_C : KEY_F;
		size_t kl = stripe_c ? sizeof(KEY_C) - 1 : sizeof(KEY_F) - 1;
		int gr = cache_get(c, k, kl, false, &r);

		if (gr == CACHE_FOUND) {
			/* a dead writer's entry may still look filling until
			 * the master reaps; never complete */
			cache_view(c, &r, &v);
			if (!stripe_c)
				assert_int_not_equal(v.state, CE_COMPLETE);
			cache_release(c, &r);
		} else
			assert_int_equal(gr, CACHE_ENOENT);
		/* an allocation meets a dead allocator owner */
		assert_int_equal(fill(c, "other", 5, 0, 100, 100), 0);
	}
	cache_slot_reap(c, 5);
	fsck_ok(c);
	if (reader.idx != 0) {
		/* the dead writer's entry is never complete to its readers */
		cache_view(c, &reader, &v);
		assert_true(v.flags & CF_ABORTED);
		assert_int_not_equal(v.state, CE_COMPLETE);
	}
	/* the same stripe is usable: this takes the dead owner's mutex when
	 * it still holds it (the EOWNERDEAD repair) */
	if (stripe_c) {
		int want = unlinks ? CACHE_ENOENT : 0;

		assert_int_equal(check(c, KEY_C, sizeof(KEY_C) - 1, 40, 9000), want);
		if (want != 0)
			assert_int_equal(fill(c, KEY_C, sizeof(KEY_C) - 1, 40,
			    9000, 4096), 0);
		assert_int_equal(check(c, KEY_C, sizeof(KEY_C) - 1, 40, 9000), 0);
	} else {
		assert_int_equal(cache_get(c, KEY_F, sizeof(KEY_F) - 1, false, &r),
		    CACHE_ENOENT);
		assert_int_equal(fill(c, KEY_F, sizeof(KEY_F) - 1, 1, 5000, 999), 0);
		assert_int_equal(check(c, KEY_F, sizeof(KEY_F) - 1, 1, 5000), 0);
	}
	fsck_ok(c);
	if (reader.idx != 0)
		cache_release(c, &reader);
	g = gauges(c);
	assert_int_equal(g.refs, 0);
	/* what is left: KEY_C, KEY_F where it was refilled, "other" */
	assert_int_equal(g.entries_used, 1u + !stripe_c + lookup_first);
	assert_int_equal(g.objects, 1u + !stripe_c + lookup_first);
	assert_int_equal(g.blocks_used, blocks_for(sizeof(KEY_C) - 1, 40, 9000) +
	    (stripe_c ? 0 : blocks_for(sizeof(KEY_F) - 1, 1, 5000)) +
	    (lookup_first ? 1 : 0));
	/* and nothing stays referenced: a reader's count goes back to 0 */
	assert_int_equal(cache_get(c, KEY_C, sizeof(KEY_C) - 1, false, &r),
	    CACHE_FOUND);
	cache_release(c, &r);
	assert_int_equal(cache_invalidate(c, KEY_C, sizeof(KEY_C) - 1), 1);
	assert_int_equal(gauges(c).blocks_used, (stripe_c ? 0 :
	    blocks_for(sizeof(KEY_F) - 1, 1, 5000)) + (lookup_first ? 1 : 0));
	fsck_ok(c);
	close(a.sync[0]); close(a.sync[1]); close(a.cont[0]); close(a.cont[1]);
}

static void crash_ref(void **state) { crash_at_point(*state, "ref", false); }
static void crash_ref_lookup_first(void **state)
{
	crash_at_point(*state, "ref", true);
}
static void crash_unref(void **state) { crash_at_point(*state, "unref", false); }
static void crash_unref_lookup_first(void **state)
{
	crash_at_point(*state, "unref", true);
}
static void crash_alloc(void **state) { crash_at_point(*state, "alloc", false); }
static void crash_alloc_lookup_first(void **state)
{
	crash_at_point(*state, "alloc", true);
}
static void crash_link(void **state) { crash_at_point(*state, "link", false); }
static void crash_link_lookup_first(void **state)
{
	crash_at_point(*state, "link", true);
}
static void crash_linked(void **state) { crash_at_point(*state, "linked", false); }
static void crash_linked_lookup_first(void **state)
{
	crash_at_point(*state, "linked", true);
}
static void crash_unlink(void **state) { crash_at_point(*state, "unlink", false); }
static void crash_unlink_lookup_first(void **state)
{
	crash_at_point(*state, "unlink", true);
}
/* Between counting the object out and clearing its linked flag: the
 * repair must not count it out a second time (the count went below 0). */
static void crash_unlinked(void **state) { crash_at_point(*state, "unlinked", false); }
static void crash_unlinked_lookup_first(void **state)
{
	crash_at_point(*state, "unlinked", true);
}

static int
commit_child(struct cache *c, unsigned slot, int efd, void *arg)
{
	(void)slot;
	(void)efd;
	(void)arg;
	cache_test_crash_at(c, "commit");
	fill(c, KEY_F, sizeof(KEY_F) - 1, 1, 5000, 999);
	return 7;	/* should have died */
}

/*
 * A writer dies in cache_commit after the entry is complete and before
 * it is counted: the object is whole, so it stays, and the count must
 * hold it (else the count goes below 0 when it is invalidated).
 */
static void
crash_commit_point(struct tc *t, bool lookup_first)
{
	struct cache *c = t->c;
	struct cache_gauges g;
	pid_t pid;
	int st;

	assert_int_equal(fill(c, KEY_C, sizeof(KEY_C) - 1, 40, 9000, 4096), 0);
	pid = spawn(c, 5, commit_child, NULL);
	assert_true(pid > 0);
	st = wait_child(pid);
	if (!WIFSIGNALED(st))
		fail_msg("commit: child exited with %d instead of dying",
		    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	assert_int_equal(WTERMSIG(st), SIGKILL);
	/* a worker meets the dead owner's stripe first, or the master */
	if (lookup_first)
		assert_int_equal(check(c, KEY_F, sizeof(KEY_F) - 1, 1, 5000), 0);
	cache_slot_reap(c, 5);
	fsck_ok(c);
	assert_int_equal(check(c, KEY_F, sizeof(KEY_F) - 1, 1, 5000), 0);
	assert_int_equal(check(c, KEY_C, sizeof(KEY_C) - 1, 40, 9000), 0);
	g = gauges(c);
	assert_int_equal(g.refs, 0);
	assert_int_equal(g.entries_used, 2);
	assert_int_equal(g.objects, 2);
	assert_int_equal(cache_invalidate(c, KEY_F, sizeof(KEY_F) - 1), 1);
	assert_int_equal(cache_invalidate(c, KEY_C, sizeof(KEY_C) - 1), 1);
	g = gauges(c);
	assert_int_equal(g.objects, 0);
	assert_int_equal(g.entries_used, 0);
	assert_int_equal(g.blocks_used, 0);
	fsck_ok(c);
}

static void crash_commit(void **state) { crash_commit_point(*state, false); }
static void crash_commit_lookup_first(void **state)
{
	crash_commit_point(*state, true);
}

static int
evict_child(struct cache *c, unsigned slot, int efd, void *arg)
{
	(void)slot;
	(void)efd;
	(void)arg;
	cache_test_crash_at(c, "stop:evict_pick");
	switch (fill(c, "y", 1, 10, 100, 100)) {
	case 0:
		return 0;
	case CACHE_ENOSPC:	/* its two sweeps ran out past the pick */
		return 2;
	default:
		return 1;
	}
}

/*
 * Eviction picks its victim without a lock, then takes the victim's
 * stripe.  Meanwhile the victim may be invalidated, freed and reused for
 * a key of another stripe: the evictor must not unlink it under the
 * wrong lock (a race on that chain, and a count taken from the wrong
 * stripe).  The child stops between the pick and the lock while this
 * process reuses the entry.  (One time in 256 the new key shares the
 * old stripe and the window is harmless.)
 */
static void
evict_victim_reused(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct cache_ref held[400];
	struct cache_gauges g;
	unsigned n = 0;
	pid_t pid;
	int st, r = 0;

	assert_true(gauges(c).blocks_total < 400);
	/* one block each, held: every block and entry in use */
	while (n < 400) {
		char key[16];
		int kl = snprintf(key, sizeof(key), "h%u", n);

		if ((r = fill(c, key, (size_t)kl, 10, 100, 100)) != 0)
			break;
		assert_int_equal(cache_get(c, key, (size_t)kl, false, &held[n]),
		    CACHE_FOUND);
		n++;
	}
	assert_int_equal(r, CACHE_ENOSPC);
	/* the last one is the only evictable entry */
	cache_release(c, &held[--n]);
	pid = spawn(c, 5, evict_child, NULL);
	assert_true(pid > 0);
	while (waitpid(pid, &st, WUNTRACED) < 0)
		assert_int_equal(errno, EINTR);
	assert_true(WIFSTOPPED(st));
	/* the child has picked it: it goes, and its entry comes back for
	 * another key */
	{
		char key[16];
		int kl = snprintf(key, sizeof(key), "h%u", n);

		assert_int_equal(cache_invalidate(c, key, (size_t)kl), 1);
	}
	assert_int_equal(fill(c, "reused", 6, 10, 100, 100), 0);
	fsck_ok(c);
	assert_int_equal(kill(pid, SIGCONT), 0);
	st = wait_child(pid);
	assert_true(WIFEXITED(st));
	assert_true(WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 2);
	cache_slot_reap(c, 5);
	fsck_ok(c);
	g = gauges(c);
	/* at rest every used entry is a complete, indexed object */
	assert_int_equal(g.objects, g.entries_used);
	if (WEXITSTATUS(st) == 0)
		assert_int_equal(check(c, "y", 1, 10, 100), 0);
	for (unsigned i = 0; i < n; i++)
		cache_release(c, &held[i]);
	assert_int_equal(gauges(c).refs, 0);
	fsck_ok(c);
}

#endif /* SLUICE_FAULT_INJECTION */

/* A worker that dies holding references and a filling entry: reaping its
 * slot gives everything back (no fault injection needed). */
static int
die_holding(struct cache *c, unsigned slot, int efd, void *arg)
{
	struct cache_ref r[3], w;
	int *sync = arg;

	(void)slot;
	(void)efd;
	for (int i = 0; i < 3; i++)
		if (cache_get(c, "held", 4, false, &r[i]) != CACHE_FOUND)
			return 1;
	if (cache_get(c, "wip", 3, true, &w) != CACHE_CREATED)
		return 2;
	if (append_pat(c, &w, 1, 0, 10000, 4096) != 0)
		return 3;
	send_byte(sync[1], 'h');
	pause();
	return 4;
}

static void
reap_dead_worker(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct cache_ref r;
	struct cache_view v;
	int sync[2], st;
	pid_t pid;

	assert_int_equal(pipe(sync), 0);
	assert_int_equal(fill(c, "held", 4, 1, 100, 100), 0);
	pid = spawn(c, 4, die_holding, sync);
	assert_true(pid > 0);
	assert_int_equal(recv_byte(sync[0]), 'h');
	assert_int_equal(gauges(c).refs, 3);
	assert_int_equal(cache_get(c, "wip", 3, false, &r), CACHE_FOUND);
	assert_int_equal(kill(pid, SIGKILL), 0);
	st = wait_child(pid);
	assert_true(WIFSIGNALED(st));
	/* three references, one writer pin */
	assert_int_equal(cache_slot_reap(c, 4), 4);
	assert_int_equal(cache_slot_reap(c, 4), 0);
	assert_int_equal(gauges(c).refs, 1);	/* ours */
	cache_view(c, &r, &v);
	assert_true(v.flags & CF_ABORTED);
	assert_int_equal(cache_get(c, "wip", 3, false, &(struct cache_ref){ 0 }),
	    CACHE_ENOENT);
	cache_release(c, &r);
	assert_int_equal(gauges(c).refs, 0);
	assert_int_equal(gauges(c).blocks_used, blocks_for(4, 1, 100));
	assert_int_equal(gauges(c).entries_used, 1);
	close(sync[0]);
	close(sync[1]);
	fsck_ok(c);
}

/* ---- 10. stress --------------------------------------------------------------- */

#define STRESS_KEYS	200
#define STRESS_WORKERS	4

struct stress_sh {
	int stop;
	int pause;		/* the parent wants to fsck: park at the loop top */
	int parked;		/* workers parked */
	uint64_t commits, reads_ok, partial_ok, aborted_seen, errors;
	int bad;		/* first failed check, for the report */
};

static void
stress_key(unsigned k, char *key, size_t *klen, uint32_t *hdr, uint64_t *body)
{
	*klen = (size_t)snprintf(key, 48, "GET http://stress.test/%u", k);
	*hdr = 20 + k % 50;
	*body = (uint64_t)(key_seed(key, *klen) % 30000) + (k % 7 == 0 ? 70000 : 0);
}

static void
stress_fail(struct stress_sh *st, int why)
{
	__atomic_compare_exchange_n(&st->bad, &(int){ 0 }, why, false,
	    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&st->errors, 1, __ATOMIC_RELAXED);
}

/* Write one object (create or detached), committing or giving up at random. */
static void
stress_write(struct cache *c, struct stress_sh *st, struct cache_ref *w,
    const char *key, size_t klen, uint32_t hdr, uint64_t body)
{
	uint32_t seed = key_seed(key, klen);
	uint64_t total = hdr + body, off = 0;
	int fate = rand() % 100, r;

	while (off < total) {
		uint64_t k = 1 + (uint64_t)rand() % 9000;

		if (k > total - off)
			k = total - off;
		if (off < hdr && off + k > hdr)
			k = hdr - off;
		if ((r = append_pat(c, w, seed, off, k, 8192)) != 0) {
			if (r != CACHE_ENOSPC && r != CACHE_EBUSY)
				stress_fail(st, 1000 - r);
			cache_release(c, w);
			return;
		}
		off += k;
		if (off == hdr)
			cache_set_head(c, w, hdr, &(struct cache_meta){
			    .lifetime = (int64_t)body }, body, 0);
		if (fate < 3 && off > total / 2) {
			cache_abort(c, w, CF_ABORTED);
			cache_release(c, w);
			return;
		}
		if (fate < 6 && off > total / 2) {
			cache_release(c, w);	/* implicit abort */
			return;
		}
	}
	if (hdr == 0 && total == 0)
		cache_set_head(c, w, hdr, &(struct cache_meta){ .lifetime = 0 }, 0, 0);
	r = cache_commit(c, w);
	if (r == 0)
		__atomic_fetch_add(&st->commits, 1, __ATOMIC_RELAXED);
	else if (r != CACHE_EABORTED && r != CACHE_EBUSY && r != CACHE_ENOENT)
		stress_fail(st, 2000 - r);	/* ENOENT: invalidated meanwhile */
	cache_release(c, w);
}

/* Read what is published, following a fill for a while. */
static void
stress_read(struct cache *c, struct stress_sh *st, struct cache_ref *r, int efd,
    const char *key, size_t klen, uint32_t hdr, uint64_t body)
{
	struct pollfd pfd = { .fd = efd, .events = POLLIN };
	struct cache_view v;
	uint32_t seed = key_seed(key, klen);
	uint64_t seen = klen;
	char kb[48];

	if (cache_copy(c, r, 0, kb, klen) != 0 || memcmp(kb, key, klen) != 0) {
		stress_fail(st, 3);
		goto out;
	}
	for (int round = 0; round < 50; round++) {
		cache_view(c, r, &v);
		if (v.key_len != klen || v.len > klen + hdr + body) {
			stress_fail(st, 4);
			goto out;
		}
		if (v.len > seen) {
			if (verify_range(c, r, seed, (uint32_t)klen, seen, v.len,
			    6000) != 0) {
				stress_fail(st, 5);
				goto out;
			}
			seen = v.len;
		}
		if (v.flags & CF_ABORTED) {
			__atomic_fetch_add(&st->aborted_seen, 1, __ATOMIC_RELAXED);
			goto out;
		}
		if (v.state == CE_COMPLETE) {
			if (v.len != klen + hdr + body || v.hdr_len != hdr ||
			    v.body_len != body || !(v.flags & CF_HEAD) ||
			    v.meta.lifetime != (int64_t)body)
				stress_fail(st, 6);
			else if (seen == v.len)
				__atomic_fetch_add(&st->reads_ok, 1,
				    __ATOMIC_RELAXED);
			goto out;
		}
		if (!cache_wait(c, r, seen) && poll(&pfd, 1, 20) == 1)
			cache_wake_drain(c);
	}
	__atomic_fetch_add(&st->partial_ok, 1, __ATOMIC_RELAXED);
out:
	cache_release(c, r);
}

static int
stress_worker(struct cache *c, unsigned slot, int efd, void *arg)
{
	struct stress_sh *st = arg;

	srand((unsigned)getpid() ^ (slot << 16));
	while (!__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
		char key[48];
		size_t klen;
		uint32_t hdr;
		uint64_t body;
		struct cache_ref r;
		int op, g;

		if (__atomic_load_n(&st->pause, __ATOMIC_ACQUIRE)) {
			/* Holding nothing here: the parent checks the segment. */
			__atomic_fetch_add(&st->parked, 1, __ATOMIC_ACQ_REL);
			while (__atomic_load_n(&st->pause, __ATOMIC_ACQUIRE))
				sleep_ms(1);
			__atomic_fetch_sub(&st->parked, 1, __ATOMIC_ACQ_REL);
			continue;
		}
		op = rand() % 100;
		stress_key((unsigned)rand() % STRESS_KEYS, key, &klen, &hdr, &body);
		if (op < 4) {
			cache_invalidate(c, key, klen);
			continue;
		}
		if (op < 10) {
			if (cache_create_detached(c, key, klen, &r) == 0)
				stress_write(c, st, &r, key, klen, hdr, body);
			continue;
		}
		g = cache_get(c, key, klen, op < 55, &r);
		if (g == CACHE_CREATED)
			stress_write(c, st, &r, key, klen, hdr, body);
		else if (g == CACHE_FOUND)
			stress_read(c, st, &r, efd, key, klen, hdr, body);
		else if (g != CACHE_ENOENT && g != CACHE_ENOSPC && g != CACHE_EBUSY)
			stress_fail(st, 3000 - g);
	}
	return 0;
}

static void
stress_kill_and_reap(void **state)
{
	struct tc *t = *state;
	struct cache *c = t->c;
	struct stress_sh *st;
	pid_t pids[STRESS_WORKERS + 1];
	unsigned kills = 0, bad_exits = 0, found = 0, parked_checks = 0;
	uint64_t end;
	struct cache_gauges g;

	st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(st != MAP_FAILED);
	memset(st, 0, sizeof(*st));
	srand(42);
	for (unsigned s = 1; s <= STRESS_WORKERS; s++) {
		pids[s] = spawn(c, s, stress_worker, st);
		assert_true(pids[s] > 0);
	}
	end = now_ms() + 2000;
	/* 2 s, and at least 10 kills however slow a loaded machine is. */
	while (now_ms() < end || kills < 10) {
		unsigned s = 1 + (unsigned)rand() % STRESS_WORKERS;
		int status;

		sleep_ms(60 + (unsigned)rand() % 80);
		kill(pids[s], SIGKILL);
		status = wait_child(pids[s]);
		if (!WIFSIGNALED(status))
			bad_exits++;
		cache_slot_reap(c, s);
		/* Right after the reap, with the others parked between
		 * operations, nothing may be left half done: a worker killed
		 * anywhere must leave a segment fsck accepts (it names an
		 * entry the reap failed to free). */
		__atomic_store_n(&st->pause, 1, __ATOMIC_RELEASE);
		for (uint64_t wait = now_ms() + 5000; __atomic_load_n(&st->parked,
		    __ATOMIC_ACQUIRE) < STRESS_WORKERS - 1 && now_ms() < wait;)
			sleep_ms(1);
		if (__atomic_load_n(&st->parked, __ATOMIC_ACQUIRE) ==
		    STRESS_WORKERS - 1) {
			const char *why = NULL;

			if (cache_fsck(c, &why) != 0) {
				/* No parked worker outlives the failure. */
				for (unsigned o = 1; o <= STRESS_WORKERS; o++)
					if (o != s) {
						kill(pids[o], SIGKILL);
						wait_child(pids[o]);
					}
				munmap(st, sizeof(*st));
				fail_msg("fsck after kill %u: %s", kills + 1, why);
			}
			parked_checks++;
		}
		__atomic_store_n(&st->pause, 0, __ATOMIC_RELEASE);
		while (__atomic_load_n(&st->parked, __ATOMIC_ACQUIRE) != 0)
			sleep_ms(1);
		kills++;
		pids[s] = spawn(c, s, stress_worker, st);
		assert_true(pids[s] > 0);
	}
	__atomic_store_n(&st->stop, 1, __ATOMIC_RELEASE);
	for (unsigned s = 1; s <= STRESS_WORKERS; s++) {
		int status = wait_child(pids[s]);

		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad_exits++;
		cache_slot_reap(c, s);
	}
	print_message("# stress: %u kills (%u checked parked), %llu commits, "
	    "%llu full reads, %llu partial, %llu aborted seen, %llu evictions\n",
	    kills, parked_checks,
	    (unsigned long long)st->commits, (unsigned long long)st->reads_ok,
	    (unsigned long long)st->partial_ok,
	    (unsigned long long)st->aborted_seen,
	    (unsigned long long)gauges(c).evictions);
	if (st->errors != 0)
		fail_msg("stress: %llu failed checks, first %d",
		    (unsigned long long)st->errors, st->bad);
	assert_int_equal(bad_exits, 0);
	assert_true(kills >= 10);
	assert_true(parked_checks >= kills / 2);
	assert_true(st->commits > 50);
	assert_true(st->reads_ok > 50);
	fsck_ok(c);
	g = gauges(c);
	assert_int_equal(g.refs, 0);
	/* every object left is whole and byte-exact */
	for (unsigned k = 0; k < STRESS_KEYS; k++) {
		char key[48];
		size_t klen;
		uint32_t hdr;
		uint64_t body;
		int r;

		stress_key(k, key, &klen, &hdr, &body);
		r = check(c, key, klen, hdr, body);
		if (r != 0 && r != CACHE_ENOENT)
			fail_msg("stress key %u: check %d", k, r);
		found += r == 0;
	}
	assert_true(found > 0);
	/* no stuck entries: after invalidating every key nothing is used */
	for (unsigned k = 0; k < STRESS_KEYS; k++) {
		char key[48];
		size_t klen;
		uint32_t hdr;
		uint64_t body;

		stress_key(k, key, &klen, &hdr, &body);
		cache_invalidate(c, key, klen);
	}
	g = gauges(c);
	assert_int_equal(g.refs, 0);
	assert_int_equal(g.objects, 0);
	assert_int_equal(g.entries_used, 0);
	assert_int_equal(g.blocks_used, 0);
	fsck_ok(c);
	munmap(st, sizeof(*st));
}

/* ---- misc ------------------------------------------------------------------- */

static void
errors_and_no_cache(void **state)
{
	struct tc *t = *state;
	struct cache_gauges g;
	struct cache_ref r;
	struct cache *c = NULL;
	struct cache_params p = { .name = t->name, .size = 4096,
	    .max_object = 1, .nslots = 1, .uid = -1, .gid = -1 };
	char note[64];

	/* every code has its own message */
	for (int e = CACHE_OK; e >= CACHE_ENOREF; e--) {
		assert_non_null(cache_strerror(e));
		for (int f = e - 1; f >= CACHE_ENOREF; f--)
			assert_string_not_equal(cache_strerror(e), cache_strerror(f));
	}
	assert_string_equal(cache_strerror(-99), "unknown cache error");
	assert_string_equal(cache_strerror(5), "unknown cache error");
	/* no cache: the calls a worker makes are harmless */
	assert_int_equal(cache_gauges(NULL, &g), CACHE_ENOENT);
	assert_int_equal(cache_get(NULL, "k", 1, true, &r), CACHE_ENOENT);
	assert_int_equal(cache_invalidate(NULL, "k", 1), 0);
	assert_int_equal(cache_segment_size(NULL), 0);
	/* a segment too small for the layout is refused, nothing is left */
	assert_int_not_equal(cache_open(&c, &p, note, sizeof(note)), 0);
	assert_null(c);
	assert_int_equal(shm_unlink(p.name), -1);
}

/* The master (no slot) cannot look up: it only manages slots. */
static void
master_has_no_refs(void **state)
{
	struct tc *t = *state;
	struct cache_ref r;

	assert_int_equal(tc_open(t, 2 * MIB, 1 * MIB, false), 0);
	assert_int_equal(cache_get(t->c, "k", 1, true, &r), CACHE_ENOENT);
	assert_true(cache_segment_size(t->c) <= 2 * MIB);
	assert_true(cache_segment_size(t->c) > 1 * MIB);
	cache_heartbeat(t->c, 5);	/* ignored in the master */
	assert_int_equal(cache_slot_heartbeat(t->c, 0), 0);
	tc_worker0(t);
	cache_heartbeat(t->c, 12345);
	assert_int_equal(cache_slot_heartbeat(t->c, 0), 12345);
	assert_int_equal(cache_slot_heartbeat(t->c, NSLOTS), 0);
	assert_int_equal(cache_worker_init(t->c, NSLOTS), -1);
	fsck_ok(t->c);
}

/* Runs last: every case removed its segment. */
static void
no_segments_left(void **state)
{
	char prefix[64];
	DIR *d = opendir("/dev/shm");
	struct dirent *de;
	int left = 0;

	(void)state;
	assert_non_null(d);
	snprintf(prefix, sizeof(prefix), "sluice-test-%d-", (int)getpid());
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
			print_error("left behind: /dev/shm/%s\n", de->d_name);
			left++;
		}
	closedir(d);
	assert_int_equal(left, 0);
}

#define CASE(f, s)	cmocka_unit_test_prestate_setup_teardown(f, s, teardown, #f)

/* The layout from 1 MiB to 64 GiB and 1 TiB: counts fit their 32-bit
 * indexes, every region fits the size, the overhead stays small, and one
 * entry per block (every object takes a block) so entries never run out
 * before blocks do. */
static void
plan_sizes(void **state)
{
	static const uint64_t sizes[] = { 1ull << 20, 4ull << 20, 256ull << 20,
	    1ull << 30, 64ull << 30, 1ull << 40 };
	struct cache_gauges g;

	(void)state;
	assert_int_equal(cache_plan(64 << 10, &g), CACHE_ETOOBIG);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		assert_int_equal(cache_plan(sizes[i], &g), 0);
		assert_true(g.size == sizes[i]);
		assert_int_equal(g.block_size, 4096);
		assert_true(g.blocks_total > 0 && g.blocks_total < UINT32_MAX);
		assert_int_equal(g.entries_total, g.blocks_total);
		/* data blocks take at least 95% of a large segment (the index
		 * costs ~4% per block); small ones pay for the 1024 stripe
		 * locks too */
		assert_true(g.blocks_total * 4096 >= sizes[i] / 100 *
		    (sizes[i] >= (256ull << 20) ? 95 : 80));
		assert_true(g.blocks_total * 4096 <= sizes[i]);
	}
	assert_int_equal(cache_plan(64ull << 30, &g), 0);
	assert_true(g.blocks_total >= 15800000);	/* ~16M blocks of 4 KiB */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plan_sizes),
		CASE(fill_read_back, setup),
		CASE(keys_never_alias, setup),
		CASE(stream_same_process, setup),
		CASE(stream_wait_after_head, setup),
		CASE(stream_abort_wakes, setup),
		CASE(stream_wakes_other_worker, setup),
		CASE(concurrent_create_one_winner, setup),
		CASE(abort_frees_after_readers, setup),
		CASE(release_uncommitted_aborts, setup),
		CASE(eviction_flood, setup_small),
		CASE(eviction_max_object_fits, setup_small),
		CASE(eviction_nospc_when_all_held, setup_small),
		CASE(eviction_spill_hook, setup_small),
		CASE(detached_refresh, setup),
		CASE(invalidate_entry, setup),
		CASE(persist_reattach, setup_bare),
		CASE(persist_old_layout, setup_bare),
		CASE(persist_foreign_segment, setup_bare),
#ifdef SLUICE_FAULT_INJECTION
		CASE(crash_ref, setup),
		CASE(crash_ref_lookup_first, setup),
		CASE(crash_unref, setup),
		CASE(crash_unref_lookup_first, setup),
		CASE(crash_alloc, setup),
		CASE(crash_alloc_lookup_first, setup),
		CASE(crash_link, setup),
		CASE(crash_link_lookup_first, setup),
		CASE(crash_linked, setup),
		CASE(crash_linked_lookup_first, setup),
		CASE(crash_unlink, setup),
		CASE(crash_unlink_lookup_first, setup),
		CASE(crash_unlinked, setup),
		CASE(crash_unlinked_lookup_first, setup),
		CASE(crash_commit, setup),
		CASE(crash_commit_lookup_first, setup),
		CASE(evict_victim_reused, setup_small),
#endif
		CASE(reap_dead_worker, setup),
		CASE(stress_kill_and_reap, setup),
		CASE(errors_and_no_cache, setup_bare),
		CASE(master_has_no_refs, setup_bare),
		CASE(no_segments_left, setup_bare),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
