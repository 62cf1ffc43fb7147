/*
 * shm_stats.c - per-worker counters in one anonymous shared mapping.
 *
 * What: maps the region the master creates before its first fork,
 * hands a worker its slot, and sums the slots for readers.
 *
 * Assumes: the mapping is created once in the master and inherited by
 * every worker across fork(); no process maps it by name, so no other
 * local user can open it (HOSTILE "shm permissions").
 *
 * Why this way: each slot has a single writer (its worker) and sits on
 * its own cache lines, so counting is a relaxed atomic add with no lock
 * and no false sharing; readers tolerate slightly stale sums.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "shm/cache.h"
#include "shm/shm_stats.h"

static const char *const stat_names[STAT__COUNT] = {
#define SHM_STATS_NAME(n, h) #n,
	SHM_STATS_COUNTERS(SHM_STATS_NAME)
#undef SHM_STATS_NAME
};

static size_t
shm_stats_size(unsigned nslots)
{
	return sizeof(struct stats_sh) +
	    (size_t)nslots * sizeof(struct stats_slot_sh);
}

struct stats_sh *
shm_stats_create(unsigned nslots)
{
	struct stats_sh *s;

	if (nslots == 0)
		return NULL;
	/* Anonymous pages are zero-filled: every counter starts at 0. */
	s = mmap(NULL, shm_stats_size(nslots), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return NULL;
	s->nslots = nslots;
	for (unsigned i = 0; i < nslots; i++)
		s->slot[i].magic = SHM_STATS_MAGIC;
	s->magic = SHM_STATS_MAGIC;
	return s;
}

void
shm_stats_destroy(struct stats_sh *s)
{
	if (s != NULL)
		/* The header is writable by every worker: never trust its
		 * size for the unmap; the region is always SHM_STATS_SLOTS. */
		munmap(s, shm_stats_size(SHM_STATS_SLOTS));
}

struct stats_slot_sh *
shm_stats_slot(struct stats_sh *s, unsigned slot)
{
	if (s == NULL || s->magic != SHM_STATS_MAGIC || slot >= s->nslots || slot >= SHM_STATS_SLOTS ||
	    s->slot[slot].magic != SHM_STATS_MAGIC)
		return NULL;
	return &s->slot[slot];
}

uint64_t
shm_stats_total(const struct stats_sh *s, enum shm_stat_id id)
{
	uint64_t sum = 0;

	if (s == NULL || s->magic != SHM_STATS_MAGIC || (unsigned)id >= STAT__COUNT)
		return 0;
	for (unsigned i = 0; i < s->nslots && i < SHM_STATS_SLOTS; i++)
		sum += __atomic_load_n(&s->slot[i].c[id], __ATOMIC_RELAXED);
	return sum;
}

void
shm_stats_print(const struct stats_sh *s, FILE *f)
{
	for (int id = 0; id < STAT__COUNT; id++)
		fprintf(f, "%s %llu\n", stat_names[id],
		    (unsigned long long)shm_stats_total(s, (enum shm_stat_id)id));
}

const char *
shm_stats_name(enum shm_stat_id id)
{
	return (unsigned)id < STAT__COUNT ? stat_names[id] : "unknown";
}

/*
 * The /stats and /metrics documents.
 *
 * Both are written with stdio into a memory stream: the documents are a
 * few KiB, made on demand by an operator or a scraper, so clarity beats
 * speed here.  Each slot's counters are loaded once (relaxed atomic
 * loads) and added to the totals in the same pass, so in one document
 * the totals equal the sum of what the slots showed.  Slots with no
 * live worker (pid 0) still hold the counts of the workers that used
 * them: they count in the totals but are not listed, and their
 * active_connections gauge is stale and left out.
 */
static const char *const stat_help[STAT__COUNT] = {
#define SHM_STATS_HELP(n, h) h,
	SHM_STATS_COUNTERS(SHM_STATS_HELP)
#undef SHM_STATS_HELP
};

/* The fields of struct cache_gauges: name, Prometheus type, help. */
#define SHM_CACHE_GAUGES(X) \
	X(size,		"gauge",	"bytes of the cache segment") \
	X(block_size,	"gauge",	"bytes of one cache block") \
	X(blocks_total,	"gauge",	"cache blocks in the segment") \
	X(blocks_used,	"gauge",	"cache blocks holding data") \
	X(blocks_free,	"gauge",	"cache blocks free") \
	X(entries_total, "gauge",	"entries the cache index can hold") \
	X(entries_used,	"gauge",	"cache entries in the index or draining") \
	X(objects,	"gauge",	"complete objects in the cache") \
	X(refs,		"gauge",	"cache references held by workers") \
	X(evictions,	"counter",	"cache entries evicted since the segment was created")

/* One pass over the slots. */
struct stats_snap {
	uint64_t total[STAT__COUNT];
	uint64_t active;		/* live slots only */
	unsigned live;
	uint32_t mc_servers, mc_up;	/* most servers, fewest usable (live) */
};

/* The memcached gauges of a live slot into the snapshot: a server is
 * "up" for the instance when every worker can use it. */
static void
stats_mc(struct stats_snap *sn, const struct stats_slot_sh *sl, uint32_t *up)
{
	uint32_t n = __atomic_load_n(&sl->mc_servers, __ATOMIC_RELAXED);

	*up = __atomic_load_n(&sl->mc_servers_up, __ATOMIC_RELAXED);
	if (n == 0)
		return;
	if (sn->mc_servers == 0 || *up < sn->mc_up)
		sn->mc_up = *up;
	if (n > sn->mc_servers)
		sn->mc_servers = n;
}

static bool
stats_ok(const struct stats_sh *s)
{
	return s != NULL && s->magic == SHM_STATS_MAGIC;
}

static unsigned
stats_nslots(const struct stats_sh *s)
{
	/* The header is writable by every worker: bound it by the size
	 * the region was mapped with. */
	return s->nslots < SHM_STATS_SLOTS ? s->nslots : SHM_STATS_SLOTS;
}

/* Load one slot: counters into v, *pid and *active.  false when the
 * slot fails its magic (it is then skipped everywhere). */
static bool
stats_load_slot(const struct stats_slot_sh *sl, uint64_t v[STAT__COUNT],
    int32_t *pid, uint64_t *active)
{
	if (__atomic_load_n(&sl->magic, __ATOMIC_RELAXED) != SHM_STATS_MAGIC)
		return false;
	*pid = __atomic_load_n(&sl->pid, __ATOMIC_RELAXED);
	*active = __atomic_load_n(&sl->active_connections, __ATOMIC_RELAXED);
	for (int id = 0; id < STAT__COUNT; id++)
		v[id] = __atomic_load_n(&sl->c[id], __ATOMIC_RELAXED);
	return true;
}

/* A JSON string; bytes outside printable ASCII become \u00XX so the
 * document is valid (ASCII) JSON whatever the input. */
static void
json_str(FILE *f, const char *p)
{
	fputc('"', f);
	for (; *p; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* Close the memory stream and hand its buffer over; -1 on a write error. */
static int
stats_finish(FILE *f, char **buf, size_t *blen, char **out, size_t *len)
{
	bool bad = ferror(f) != 0;

	if (fclose(f) != 0 || bad) {
		free(*buf);
		*buf = NULL;
		errno = ENOMEM;
		return -1;
	}
	*out = *buf;
	*len = *blen;
	return 0;
}

int
shm_stats_json(const struct stats_sh *s, const struct cache_gauges *g,
    const struct shm_stats_info *info, char **out, size_t *len)
{
	struct stats_snap sn = { { 0 }, 0, 0, 0, 0 };
	uint64_t v[STAT__COUNT], active;
	uint32_t up;
	char *buf = NULL;
	size_t blen = 0;
	int32_t pid;
	FILE *f;

	if (!stats_ok(s) || out == NULL || len == NULL) {
		errno = EINVAL;
		return -1;
	}
	if ((f = open_memstream(&buf, &blen)) == NULL)
		return -1;
	fputs("{\n", f);
	if (info != NULL && info->version != NULL) {
		fputs("  \"version\": ", f);
		json_str(f, info->version);
		fputs(",\n", f);
	}
	if (info != NULL && info->pid_master > 0)
		fprintf(f, "  \"pid_master\": %ld,\n", info->pid_master);
	fputs("  \"workers\": [", f);
	for (unsigned i = 0; i < stats_nslots(s); i++) {
		if (!stats_load_slot(&s->slot[i], v, &pid, &active))
			continue;
		for (int id = 0; id < STAT__COUNT; id++)
			sn.total[id] += v[id];
		if (pid <= 0)
			continue;
		sn.active += active;
		stats_mc(&sn, &s->slot[i], &up);
		fprintf(f, "%s\n    {\"slot\": %u, \"pid\": %ld, "
		    "\"active_connections\": %llu, \"memcached_servers_up\": %u",
		    sn.live ? "," : "", i, (long)pid, (unsigned long long)active,
		    (unsigned)up);
		for (int id = 0; id < STAT__COUNT; id++)
			fprintf(f, ", \"%s\": %llu", stat_names[id],
			    (unsigned long long)v[id]);
		fputc('}', f);
		sn.live++;
	}
	fputs(sn.live ? "\n  ],\n" : "],\n", f);
	fprintf(f, "  \"totals\": {\n    \"workers\": %u,\n"
	    "    \"active_connections\": %llu", sn.live,
	    (unsigned long long)sn.active);
	for (int id = 0; id < STAT__COUNT; id++)
		fprintf(f, ",\n    \"%s\": %llu", stat_names[id],
		    (unsigned long long)sn.total[id]);
	fputs("\n  }", f);
	/* The memcached tier as the instance sees it: a server is up when
	 * every worker can use it (its circuit is closed). */
	fprintf(f, ",\n  \"memcached\": {\"servers\": %u, \"servers_up\": %u}",
	    (unsigned)sn.mc_servers, (unsigned)sn.mc_up);
	if (g != NULL) {
		const char *sep = "";

		fputs(",\n  \"cache\": {", f);
#define SHM_CACHE_JSON(n, t, h) \
		fprintf(f, "%s\n    \"" #n "\": %llu", sep, \
		    (unsigned long long)g->n); \
		sep = ",";
		SHM_CACHE_GAUGES(SHM_CACHE_JSON)
#undef SHM_CACHE_JSON
		fputs("\n  }", f);
	}
	fputs("\n}\n", f);
	return stats_finish(f, &buf, &blen, out, len);
}

/* A HELP text: the exposition format escapes backslash and newline. */
static void
prom_help(FILE *f, const char *metric, const char *help, const char *type)
{
	fprintf(f, "# HELP %s ", metric);
	for (; *help; help++) {
		if (*help == '\\')
			fputs("\\\\", f);
		else if (*help == '\n')
			fputs("\\n", f);
		else
			fputc(*help, f);
	}
	fprintf(f, "\n# TYPE %s %s\n", metric, type);
}

int
shm_stats_prometheus(const struct stats_sh *s, const struct cache_gauges *g,
    char **out, size_t *len)
{
	struct stats_snap sn = { { 0 }, 0, 0, 0, 0 };
	uint64_t v[STAT__COUNT], active;
	uint32_t up;
	char *buf = NULL, name[96];
	size_t blen = 0;
	int32_t pid;
	FILE *f;

	if (!stats_ok(s) || out == NULL || len == NULL) {
		errno = EINVAL;
		return -1;
	}
	for (unsigned i = 0; i < stats_nslots(s); i++) {
		if (!stats_load_slot(&s->slot[i], v, &pid, &active))
			continue;
		for (int id = 0; id < STAT__COUNT; id++)
			sn.total[id] += v[id];
		if (pid > 0) {
			sn.active += active;
			sn.live++;
			stats_mc(&sn, &s->slot[i], &up);
		}
	}
	if ((f = open_memstream(&buf, &blen)) == NULL)
		return -1;
	for (int id = 0; id < STAT__COUNT; id++) {
		snprintf(name, sizeof(name), "sluice_%s_total", stat_names[id]);
		prom_help(f, name, stat_help[id], "counter");
		fprintf(f, "%s %llu\n", name, (unsigned long long)sn.total[id]);
	}
	prom_help(f, "sluice_active_connections",
	    "client connections open now", "gauge");
	fprintf(f, "sluice_active_connections %llu\n",
	    (unsigned long long)sn.active);
	prom_help(f, "sluice_memcached_servers", "memcached servers configured",
	    "gauge");
	fprintf(f, "sluice_memcached_servers %u\n", (unsigned)sn.mc_servers);
	prom_help(f, "sluice_memcached_servers_up",
	    "memcached servers every worker can use (circuit closed)", "gauge");
	fprintf(f, "sluice_memcached_servers_up %u\n", (unsigned)sn.mc_up);
	prom_help(f, "sluice_workers", "worker processes running", "gauge");
	fprintf(f, "sluice_workers %u\n", sn.live);
	if (g != NULL) {
		/* Counters among the gauges get the _total suffix the
		 * exposition format expects of a counter. */
#define SHM_CACHE_PROM(n, t, h) \
		snprintf(name, sizeof(name), "sluice_cache_" #n "%s", \
		    t[0] == 'c' ? "_total" : ""); \
		prom_help(f, name, h, t); \
		fprintf(f, "%s %llu\n", name, (unsigned long long)g->n);
		SHM_CACHE_GAUGES(SHM_CACHE_PROM)
#undef SHM_CACHE_PROM
	}
	return stats_finish(f, &buf, &blen, out, len);
}
