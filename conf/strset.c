/*
 * strset.c - building a set of byte strings: the growable arena of
 * added strings, the one-shot build of its hash table, iteration, size.
 *
 * Assumes the build-once, read-many life described in strset.h; the
 * lookups are static inline there.
 *
 * Why this shape: lists carry about a million names, so adding must be
 * cheap (an append to one arena and one 32-bit offset, no per-string
 * allocation) and the built set must be compact: build sizes the table
 * once for every added string, copies each distinct string into a
 * fresh arena of exactly the bytes needed and frees the pending
 * offsets, leaving 16 bytes of slot per ~1.4 entries plus the strings.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/strset.h"

void
strset_init(struct strset *s)
{
	memset(s, 0, sizeof(*s));
}

/* Grows *p (element size sz) so that it holds at least need elements. */
static int
strset_grow(void **p, size_t *cap, size_t need, size_t sz)
{
	size_t ncap = *cap ? *cap : 64;
	void *np;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / sz) {
			errno = ENOMEM;
			return -1;
		}
		ncap *= 2;
	}
	np = realloc(*p, ncap * sz);
	if (np == NULL)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}

char *
strset_add_space(struct strset *s, size_t len)
{
	char *dst;

	if (s->built) {
		errno = EINVAL;
		return NULL;
	}
	/*
	 * Offsets are 32-bit to keep slots at 16 bytes, and STRSET_EMPTY is
	 * reserved: arena_len + len + 1 must stay below it (written so that
	 * a huge len cannot wrap; arena_len < STRSET_EMPTY always holds).
	 */
	if (len >= STRSET_EMPTY - 1 - s->arena_len) {
		errno = EOVERFLOW;
		return NULL;
	}
	if (strset_grow((void **)&s->arena, &s->arena_cap,
	    s->arena_len + len + 1, 1) == -1)
		return NULL;
	if (strset_grow((void **)&s->pend, &s->pend_cap, s->count + 1,
	    sizeof(uint32_t)) == -1)
		return NULL;
	dst = s->arena + s->arena_len;
	dst[len] = '\0';
	s->pend[s->count++] = (uint32_t)s->arena_len;
	s->arena_len += len + 1;
	return dst;
}

int
strset_add(struct strset *s, const char *str, size_t len)
{
	char *dst = strset_add_space(s, len);

	if (dst == NULL)
		return -1;
	memcpy(dst, str, len);
	return 0;
}

int
strset_build(struct strset *s)
{
	size_t size = 8, used = 0, n = 0;
	struct strset_slot *tab;
	uint32_t maxlen = 0;
	char *arena;

	if (s->built) {
		errno = EINVAL;
		return -1;
	}
	/* Sized for every added string; duplicates only lower the load. */
	while ((double)s->count > 0.7 * (double)size) {
		if (size > SIZE_MAX / 2 / sizeof(*tab)) {
			errno = ENOMEM;
			return -1;
		}
		size *= 2;
	}
	tab = malloc(size * sizeof(*tab));
	/* A fresh, exact-size arena: duplicates are dropped, slack freed. */
	arena = malloc(s->arena_len ? s->arena_len : 1);
	if (tab == NULL || arena == NULL) {
		free(tab);
		free(arena);
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < size; i++)
		tab[i].off = STRSET_EMPTY;

	for (size_t i = 0; i < s->count; i++) {
		const char *str = s->arena + s->pend[i];
		/* Strings may hold NUL: the length is up to the next offset. */
		size_t end = i + 1 < s->count ? s->pend[i + 1] : s->arena_len;
		size_t len = end - s->pend[i] - 1;
		uint64_t h = XXH3_64bits(str, len);
		struct strset_slot *sl = (struct strset_slot *)
		    strset_slot_find(tab, size - 1, arena, h, str, len);

		if (sl->off != STRSET_EMPTY)
			continue;	/* duplicate */
		memcpy(arena + used, str, len + 1);
		sl->hash = h;
		sl->off = (uint32_t)used;
		sl->len = (uint32_t)len;
		used += len + 1;
		if (len > maxlen)
			maxlen = (uint32_t)len;
		n++;
	}
	/* Shrinking cannot fail in a way that matters: keep the old block. */
	if (used > 0 && used < s->arena_len) {
		char *shrunk = realloc(arena, used);

		if (shrunk != NULL)
			arena = shrunk;
	}
	free(s->arena);
	free(s->pend);
	s->pend = NULL;
	s->pend_cap = 0;
	s->count = n;
	s->arena = arena;
	s->arena_len = s->arena_cap = used ? used : 1;
	s->tab = tab;
	s->mask = size - 1;
	s->maxlen = maxlen;
	s->built = true;
	return 0;
}

const char *
strset_next(const struct strset *s, size_t *pos, size_t *lenp,
    uint64_t *hashp)
{
	if (!s->built)
		return NULL;
	for (size_t i = *pos; i <= s->mask; i++) {
		const struct strset_slot *sl = &s->tab[i];

		if (sl->off == STRSET_EMPTY)
			continue;
		*pos = i + 1;
		if (lenp != NULL)
			*lenp = sl->len;
		if (hashp != NULL)
			*hashp = sl->hash;
		return s->arena + sl->off;
	}
	*pos = s->mask + 1;
	return NULL;
}

size_t
strset_bytes(const struct strset *s)
{
	return s->arena_cap + s->pend_cap * sizeof(uint32_t) +
	    (s->tab != NULL ? (s->mask + 1) * sizeof(struct strset_slot) : 0);
}

void
strset_fini(struct strset *s)
{
	free(s->arena);
	free(s->pend);
	free(s->tab);
	strset_init(s);
}
