/*
 * peer_count.c - open connections per client address, in one worker.
 *
 * A fixed array of buckets, chained: the table is consulted twice per
 * connection (accept and close), never per request, so a simple FNV-1a
 * hash of the 16 address bytes is plenty.  Bucket count is fixed; chains
 * stay short for the thousands of distinct clients a school or office
 * proxy sees at once.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "worker/peer_count.h"

#define PC_BUCKETS 4096		/* power of two */

struct pc_node {
	struct pc_node *next;
	unsigned count;
	uint8_t addr[16];
};

struct peer_count {
	struct pc_node *b[PC_BUCKETS];
};

static unsigned
pc_hash(const uint8_t a[16])
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++) {
		h ^= a[i];
		h *= 16777619u;
	}
	return h & (PC_BUCKETS - 1);
}

struct peer_count *
peer_count_new(void)
{
	return calloc(1, sizeof(struct peer_count));
}

void
peer_count_free(struct peer_count *pc)
{
	if (!pc)
		return;
	for (unsigned i = 0; i < PC_BUCKETS; i++) {
		struct pc_node *n = pc->b[i], *next;
		for (; n; n = next) {
			next = n->next;
			free(n);
		}
	}
	free(pc);
}

/* One more connection from addr: the new count, or 0 when out of memory. */
unsigned
peer_count_inc(struct peer_count *pc, const uint8_t addr[16])
{
	unsigned h = pc_hash(addr);
	struct pc_node *n;

	for (n = pc->b[h]; n; n = n->next)
		if (memcmp(n->addr, addr, 16) == 0)
			return ++n->count;
	if (!(n = malloc(sizeof(*n))))
		return 0;
	memcpy(n->addr, addr, 16);
	n->count = 1;
	n->next = pc->b[h];
	pc->b[h] = n;
	return 1;
}

/* One connection from addr closed; the entry goes with the last one. */
void
peer_count_dec(struct peer_count *pc, const uint8_t addr[16])
{
	struct pc_node **pp = &pc->b[pc_hash(addr)], *n;

	for (; (n = *pp) != NULL; pp = &n->next) {
		if (memcmp(n->addr, addr, 16) != 0)
			continue;
		if (--n->count == 0) {
			*pp = n->next;
			free(n);
		}
		return;
	}
}

/* Connections open from addr. */
unsigned
peer_count_get(const struct peer_count *pc, const uint8_t addr[16])
{
	for (const struct pc_node *n = pc->b[pc_hash(addr)]; n; n = n->next)
		if (memcmp(n->addr, addr, 16) == 0)
			return n->count;
	return 0;
}
