/*
 * strset.h - a set of byte strings, built once (add ... add, build) and
 * then only read: the hash table under the URL filter's domain and
 * URL-prefix sets.
 *
 * Assumes one writer until strset_build and only readers afterwards
 * (workers after fork); nothing is locked.  Strings are opaque bytes
 * without NUL; validating and canonicalising them is the caller's job.
 *
 * Why this shape: one arena holds every string NUL-terminated, so a
 * found entry can be handed out as a C string; a slot is 16 bytes
 * {XXH3-64 hash, u32 arena offset, u32 length}, so offsets cap the
 * arena at 4 GiB.  The struct is public and the lookup is static inline
 * only because callers probe it several times per request (once per
 * host suffix or path boundary): they embed a struct strset and touch
 * it only through the functions below.  Pure library code: no logging,
 * errors come back as -1 (or NULL) + errno.
 */
#ifndef SLUICE_STRSET_H
#define SLUICE_STRSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define STRSET_EMPTY	UINT32_MAX	/* offset of a free slot */

struct strset_slot {
	uint64_t hash;			/* XXH3-64 of the string */
	uint32_t off;			/* into arena; STRSET_EMPTY if free */
	uint32_t len;			/* string length without NUL */
};

struct strset {
	char *arena;			/* strings, each NUL-terminated */
	size_t arena_len;
	size_t arena_cap;
	uint32_t *pend;			/* before build: offsets of strings */
	size_t pend_cap;
	size_t count;			/* added, then distinct after build */
	struct strset_slot *tab;	/* after build */
	size_t mask;			/* table size - 1 */
	uint32_t maxlen;		/* longest string: longer keys skip */
	bool built;
};

/* An empty, unbuilt set in place (all zero, so calloc'ed memory is too). */
void strset_init(struct strset *s);

/*
 * Reserve room for one string of len bytes and return where to write
 * it (the NUL after it is already written), for callers that rewrite
 * while copying.  NULL with errno EINVAL (already built), EOVERFLOW
 * (strings exceed 4 GiB) or ENOMEM.
 */
char *strset_add_space(struct strset *s, size_t len);

/* Add one string; duplicates are fine.  0, or -1 with errno as above. */
int strset_add(struct strset *s, const char *str, size_t len);

/*
 * Freeze: drop duplicates into a fresh exact-size arena, build the
 * table at load <= 0.7, free the pending offsets.  0, or -1 with errno
 * ENOMEM (still unbuilt, may be freed) or EINVAL (already built).
 */
int strset_build(struct strset *s);

/*
 * Iterate over a built set in table order: start with *pos = 0; each
 * call returns the next string (NUL-terminated, owned by the set) and,
 * when lenp/hashp are not NULL, its length and XXH3-64 hash; NULL at
 * the end or on an unbuilt set.
 */
const char *strset_next(const struct strset *s, size_t *pos, size_t *lenp,
    uint64_t *hashp);

/* Bytes of heap held by the set (not counting the struct itself). */
size_t strset_bytes(const struct strset *s);

/* Release the memory; the set is left as strset_init leaves it. */
void strset_fini(struct strset *s);

/* Strings added (before build) or distinct strings (after). */
static inline size_t
strset_count(const struct strset *s)
{
	return s->count;
}

static inline bool
strset_built(const struct strset *s)
{
	return s->built;
}

/*
 * The slot holding str, or the free slot where it belongs.  Linear
 * probing: neighbours share a cache line, and load <= 0.7 keeps runs
 * short.  tab must exist; used by the lookups and by build.
 */
static inline const struct strset_slot *
strset_slot_find(const struct strset_slot *tab, size_t mask,
    const char *arena, uint64_t h, const char *str, size_t len)
{
	size_t i = (size_t)h & mask;

	for (;;) {
		const struct strset_slot *sl = &tab[i];

		if (sl->off == STRSET_EMPTY)
			return sl;
		if (sl->hash == h && sl->len == len &&
		    memcmp(arena + sl->off, str, len) == 0)
			return sl;
		i = (i + 1) & mask;
	}
}

/*
 * Is str (whose XXH3-64 hash is h) in the set?  Returns the stored
 * copy (NUL-terminated, owned by the set) or NULL; an unbuilt or empty
 * set holds nothing.  For callers that already have the hash.
 */
static inline const char *
strset_find_hash(const struct strset *s, uint64_t h, const char *str,
    size_t len)
{
	const struct strset_slot *sl;

	if (!s->built || s->count == 0)
		return NULL;
	sl = strset_slot_find(s->tab, s->mask, s->arena, h, str, len);
	return sl->off != STRSET_EMPTY ? s->arena + sl->off : NULL;
}

/* The same, hashing str; a key longer than every entry costs no hash. */
static inline const char *
strset_find(const struct strset *s, const char *str, size_t len)
{
	if (len > s->maxlen)
		return NULL;
	return strset_find_hash(s, XXH3_64bits(str, len), str, len);
}

#endif /* SLUICE_STRSET_H */
