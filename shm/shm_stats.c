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

#include <stddef.h>
#include <sys/mman.h>

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
