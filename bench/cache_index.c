/*
 * cache_index.c - microbenchmark of the shared-memory cache index: how
 * long one lookup of a stored object takes with 1,000 and with 1,000,000
 * objects in the segment.
 *
 * What it does: for each object count N it creates a cache segment of its
 * own (shm/cache.h: cache_open, one worker slot, this process as slot 0),
 * stores N small objects (key + 100-byte head + 200-byte body: one 4 KiB
 * block each) under URL-like keys, then times lookups of keys drawn at
 * random from the stored set: cache_get (must find it) + cache_release,
 * the work a worker does to find a hit before it streams the body.  It
 * prints the median and p99 time per lookup, lookups per second from an
 * untimed loop, and the ratio of the largest N to the smallest, which
 * stays near 1 when the index is O(1); then it removes the segment
 * (cache_close(c, true)).  Exit status 1 if a stored key was not found.
 *
 * What it assumes: Linux, a tmpfs /dev/shm with room for the segment
 * (~4.4 GB for 1,000,000 objects: one block plus its index share each;
 * it checks statvfs first), and an optimized build for figures worth
 * reading.  Run it as any user.
 *
 * Why it is built this way: keys are formatted before the clock starts
 * and picked by a fixed-seed generator, so what is timed is the index
 * (hash, bucket, stripe lock, key compare, reference record) and not
 * snprintf or rand().  Per-lookup times are taken with CLOCK_MONOTONIC
 * around each call, whose own cost is measured and reported (and
 * subtracted) beside them; lookups per second come from a separate loop
 * with no clock calls inside.  Random keys over a 4+ GB segment include
 * the cache and TLB misses a real hit pays, which is the point: a figure
 * from a hot loop on one key would flatter any index.
 */
#include "config.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "shm/cache.h"

#define KEY_MAX		48		/* bytes reserved per formatted key */
#define HEAD_LEN	100u		/* stored response head */
#define BODY_LEN	200u		/* stored body: key+head+body < 4 KiB */
/* Segment bytes per object: its block, its entry and index share
 * (about 4% per cache.size in sluice.conf(5)), rounded up generously. */
#define PER_OBJECT	4400u
#define FIXED_BYTES	(64ull << 20)	/* header, stripes, slack */

struct run {
	uint64_t n;			/* objects stored */
	double store_s;			/* wall time of the stores */
	double median_ns, p99_ns, mean_ns;	/* per lookup, timer cost removed */
	double lookups_per_s;		/* untimed loop */
	uint64_t not_found;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: a fixed, cheap sequence so runs pick the same keys. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static const char *
key_of(const char *keys, uint64_t i, size_t *len)
{
	const char *k = keys + i * KEY_MAX;

	*len = (size_t)(unsigned char)k[KEY_MAX - 1];
	return k;
}

/* Store one object under key; 0 or a CACHE_E* code. */
static int
store(struct cache *c, const char *key, size_t klen, const uint8_t *fill)
{
	struct cache_ref w;
	struct cache_meta m;
	int r = cache_get(c, key, klen, true, &w);

	if (r == CACHE_FOUND) {		/* duplicate key: a bug here */
		cache_release(c, &w);
		return CACHE_EINUSE;
	}
	if (r != CACHE_CREATED)
		return r;
	memset(&m, 0, sizeof(m));
	m.lifetime = 3600;
	m.last_modified = -1;
	m.swr = m.sie = -1;
	if ((r = cache_append(c, &w, fill, HEAD_LEN)) != 0)
		goto fail;
	cache_set_head(c, &w, HEAD_LEN, &m, BODY_LEN, 0);
	if ((r = cache_append(c, &w, fill + HEAD_LEN, BODY_LEN)) != 0 ||
	    (r = cache_commit(c, &w)) != 0)
		goto fail;
	cache_release(c, &w);
	return 0;
fail:
	cache_release(c, &w);
	return r;
}

/* Cost of one clock_gettime pair with nothing between: the floor of
 * every per-lookup sample, subtracted from them. */
static uint64_t
timer_floor(void)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 100000; i++) {
		uint64_t t0 = now_ns(), t1 = now_ns();

		if (t1 - t0 < best)
			best = t1 - t0;
	}
	return best;
}

static int
bench_one(uint64_t n, uint64_t lookups, uint64_t floor_ns, struct run *out)
{
	char name[64], note[256];
	struct cache_params p;
	struct cache *c = NULL;
	struct cache_gauges g;
	struct statvfs vfs;
	uint8_t fill[HEAD_LEN + BODY_LEN];
	char *keys;
	uint64_t *pick, *lat, seed = 0x9e3779b97f4a7c15ull, t0, sum = 0;
	int r, rc = -1;

	memset(out, 0, sizeof(*out));
	out->n = n;
	memset(&p, 0, sizeof(p));
	snprintf(name, sizeof(name), "/sluice-cache-index-%d-%" PRIu64,
	    (int)getpid(), n);
	p.name = name;
	p.size = n * PER_OBJECT + FIXED_BYTES;
	p.max_object = 1u << 20;
	p.persist = false;
	p.nslots = 1;
	p.uid = p.gid = -1;
	/* A segment larger than the tmpfs would die with SIGBUS on first
	 * touch rather than fail cleanly: check first. */
	if (statvfs("/dev/shm", &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < p.size) {
		fprintf(stderr, "cache_index: N=%" PRIu64 " needs %" PRIu64
		    " MiB in /dev/shm, %" PRIu64 " MiB free\n", n, p.size >> 20,
		    ((uint64_t)vfs.f_bavail * vfs.f_frsize) >> 20);
		return -1;
	}
	keys = malloc(n * KEY_MAX);
	pick = malloc(lookups * sizeof(*pick));
	lat = malloc(lookups * sizeof(*lat));
	if (keys == NULL || pick == NULL || lat == NULL) {
		fprintf(stderr, "cache_index: out of memory\n");
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		char *k = keys + i * KEY_MAX;
		int len = snprintf(k, KEY_MAX - 1,
		    "http://origin-%" PRIu64 ".example/obj/%" PRIu64,
		    i % 97, i);

		k[KEY_MAX - 1] = (char)len;	/* length in the last byte */
	}
	for (uint64_t i = 0; i < lookups; i++)
		pick[i] = rnd(&seed) % n;
	for (size_t i = 0; i < sizeof(fill); i++)
		fill[i] = (uint8_t)('a' + i % 26);

	shm_unlink(name);		/* a leftover of a killed run */
	if ((r = cache_open(&c, &p, note, sizeof(note))) != 0) {
		fprintf(stderr, "cache_index: cache_open %s (%" PRIu64
		    " MiB): %s\n", name, p.size >> 20, cache_strerror(r));
		c = NULL;
		goto out;
	}
	cache_slot_start(c, 0, (int)getpid());
	if (cache_worker_init(c, 0) < 0) {
		fprintf(stderr, "cache_index: cache_worker_init failed\n");
		goto out;
	}

	t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		size_t klen;
		const char *k = key_of(keys, i, &klen);

		if ((r = store(c, k, klen, fill)) != 0) {
			fprintf(stderr, "cache_index: store #%" PRIu64 ": %s\n",
			    i, cache_strerror(r));
			goto out;
		}
	}
	out->store_s = (double)(now_ns() - t0) / 1e9;
	/* Every object must still be there: an eviction would turn later
	 * lookups into misses and the figures into something else. */
	if (cache_gauges(c, &g) != 0 || g.objects != n || g.evictions != 0) {
		fprintf(stderr, "cache_index: %" PRIu64 " objects, %" PRIu64
		    " evictions after storing %" PRIu64 "\n", g.objects,
		    g.evictions, n);
		goto out;
	}

	/* Warm-up: one pass over the picks, untimed (page faults, branch
	 * predictors), then the per-lookup timed pass. */
	for (uint64_t i = 0; i < lookups; i++) {
		struct cache_ref ref;
		size_t klen;
		const char *k = key_of(keys, pick[i], &klen);

		if (cache_get(c, k, klen, false, &ref) == CACHE_FOUND)
			cache_release(c, &ref);
	}
	for (uint64_t i = 0; i < lookups; i++) {
		struct cache_ref ref;
		size_t klen;
		const char *k = key_of(keys, pick[(i * 7919) % lookups], &klen);
		uint64_t a = now_ns(), b;

		r = cache_get(c, k, klen, false, &ref);
		if (r == CACHE_FOUND)
			cache_release(c, &ref);
		b = now_ns();
		if (r != CACHE_FOUND)
			out->not_found++;
		lat[i] = b - a > floor_ns ? b - a - floor_ns : 0;
		sum += lat[i];
	}
	/* Throughput: the same lookups with no clock inside the loop. */
	t0 = now_ns();
	for (uint64_t i = 0; i < lookups; i++) {
		struct cache_ref ref;
		size_t klen;
		const char *k = key_of(keys, pick[i], &klen);

		if (cache_get(c, k, klen, false, &ref) == CACHE_FOUND)
			cache_release(c, &ref);
		else
			out->not_found++;
	}
	out->lookups_per_s = (double)lookups / ((double)(now_ns() - t0) / 1e9);
	qsort(lat, lookups, sizeof(*lat), cmp_u64);
	out->median_ns = (double)lat[lookups / 2];
	out->p99_ns = (double)lat[lookups * 99 / 100];
	out->mean_ns = (double)sum / (double)lookups;
	rc = 0;
out:
	if (c != NULL)
		cache_close(c, true);
	shm_unlink(name);		/* in case cache_open left it half made */
	free(keys);
	free(pick);
	free(lat);
	return rc;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: cache_index [-l LOOKUPS] [N ...]\n"
	    "  N        objects stored (default: 1000 1000000)\n"
	    "  -l       lookups timed per N (default 2000000)\n");
}

int
main(int argc, char **argv)
{
	uint64_t ns[16], lookups = 2000000, floor_ns;
	struct run runs[16];
	int nn = 0, opt, bad = 0;

	while ((opt = getopt(argc, argv, "l:h")) != -1) {
		switch (opt) {
		case 'l':
			lookups = strtoull(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	for (int i = optind; i < argc && nn < 16; i++)
		ns[nn++] = strtoull(argv[i], NULL, 10);
	if (nn == 0) {
		ns[nn++] = 1000;
		ns[nn++] = 1000000;
	}
	if (lookups < 100) {
		usage(stderr);
		return 2;
	}
	for (int i = 0; i < nn; i++) {
		if (ns[i] < 1 || ns[i] > 100000000) {
			usage(stderr);
			return 2;
		}
	}
	floor_ns = timer_floor();
	printf("cache index lookups (cache_get found + cache_release), "
	    "%" PRIu64 " random keys per N;\n"
	    "per-lookup times exclude the clock's own %" PRIu64 " ns\n\n",
	    lookups, floor_ns);
	printf("%10s %10s %10s %10s %12s %10s\n", "objects", "median ns",
	    "p99 ns", "mean ns", "lookups/s", "store s");
	for (int i = 0; i < nn; i++) {
		struct run *r = &runs[i];

		if (bench_one(ns[i], lookups, floor_ns, r) != 0)
			return 1;
		printf("%10" PRIu64 " %10.0f %10.0f %10.1f %12.0f %10.2f\n",
		    r->n, r->median_ns, r->p99_ns, r->mean_ns,
		    r->lookups_per_s, r->store_s);
		if (r->not_found != 0) {
			printf("  ERROR: %" PRIu64 " stored keys not found\n",
			    r->not_found);
			bad = 1;
		}
		fflush(stdout);
	}
	for (int i = 0; i < nn; i++) {
		printf("CACHE_INDEX n=%" PRIu64 " median_ns=%.0f p99_ns=%.0f "
		    "mean_ns=%.1f lookups_per_s=%.0f store_s=%.3f "
		    "not_found=%" PRIu64 "\n", runs[i].n, runs[i].median_ns,
		    runs[i].p99_ns, runs[i].mean_ns, runs[i].lookups_per_s,
		    runs[i].store_s, runs[i].not_found);
	}
	if (nn > 1 && runs[0].median_ns > 0)
		printf("median(N=%" PRIu64 ") / median(N=%" PRIu64 ") = %.2f\n",
		    runs[nn - 1].n, runs[0].n,
		    runs[nn - 1].median_ns / runs[0].median_ns);
	return bad;
}
