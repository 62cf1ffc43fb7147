/*
 * filter_domains.c - the URL filter's domain set: an open-addressing
 * hash table over one string arena, with label-suffix lookup.
 *
 * Assumes names and hosts are already canonical (the list loader lower-
 * cases and strips trailing dots) and that the set is built once per
 * configuration generation and then only read, possibly by several
 * workers after fork; nothing here is locked or mutated after build.
 *
 * Why this shape: lists carry about a million domains, and a regex or a
 * tree of per-label nodes costs too much memory and too many cache
 * misses.  Each slot holds the name's 64-bit XXH3 hash, its arena offset
 * and its length (16 bytes); the table is a power of two at load <= 0.7,
 * so a lookup is one hash, one or two slot reads, and one memcmp to
 * confirm.  A host "a.b.example.com" is checked as "a.b.example.com",
 * "b.example.com", "example.com" and "com": at most 127 probes for the
 * longest legal name, usually 2-4.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "conf/filter_domains.h"

#define FD_NAME_MAX	253
#define FD_LABEL_MAX	63
#define FD_EMPTY	UINT32_MAX	/* offset of a free slot */

struct fd_slot {
	uint64_t hash;
	uint32_t off;			/* into arena; FD_EMPTY if free */
	uint32_t len;			/* name length without NUL */
};

struct filter_domains {
	char *arena;			/* names, each NUL-terminated */
	size_t arena_len;
	size_t arena_cap;
	uint32_t *pend;			/* before build: offsets of added names */
	size_t npend;
	size_t pend_cap;
	struct fd_slot *tab;		/* after build */
	size_t mask;			/* table size - 1 */
	size_t count;			/* distinct names after build */
	bool built;
};

struct filter_domains *
filter_domains_new(void)
{
	return calloc(1, sizeof(struct filter_domains));
}

/* Strips one leading dot; returns false for a name the set refuses. */
static bool
fd_valid(const char **namep, size_t *lenp)
{
	const char *s = *namep;
	size_t len = *lenp, label = 0;

	if (len > 0 && s[0] == '.') {
		s++;
		len--;
	}
	if (len == 0 || len > FD_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0)
				return false;	/* ".." or leading dot */
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_'))
			return false;
		if (++label > FD_LABEL_MAX)
			return false;
	}
	if (label == 0)
		return false;		/* trailing dot */
	*namep = s;
	*lenp = len;
	return true;
}

/* Grows *p (element size sz) so that it holds at least need elements. */
static int
fd_grow(void **p, size_t *cap, size_t need, size_t sz)
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

int
filter_domains_add(struct filter_domains *d, const char *name, size_t len)
{
	if (d == NULL || name == NULL || d->built || !fd_valid(&name, &len)) {
		errno = EINVAL;
		return -1;
	}
	/* Offsets are 32-bit to keep slots at 16 bytes; FD_EMPTY is reserved. */
	if (d->arena_len + len + 1 >= FD_EMPTY) {
		errno = EOVERFLOW;
		return -1;
	}
	if (fd_grow((void **)&d->arena, &d->arena_cap, d->arena_len + len + 1,
	    1) == -1)
		return -1;
	if (fd_grow((void **)&d->pend, &d->pend_cap, d->npend + 1,
	    sizeof(uint32_t)) == -1)
		return -1;
	memcpy(d->arena + d->arena_len, name, len);
	d->arena[d->arena_len + len] = '\0';
	d->pend[d->npend++] = (uint32_t)d->arena_len;
	d->arena_len += len + 1;
	return 0;
}

/*
 * The slot holding name, or the free slot where it belongs.  Linear
 * probing: neighbours share a cache line, and load <= 0.7 keeps runs
 * short.
 */
static const struct fd_slot *
fd_find(const struct fd_slot *tab, size_t mask, const char *arena,
    uint64_t h, const char *name, size_t len)
{
	size_t i = (size_t)h & mask;

	for (;;) {
		const struct fd_slot *s = &tab[i];

		if (s->off == FD_EMPTY)
			return s;
		if (s->hash == h && s->len == len &&
		    memcmp(arena + s->off, name, len) == 0)
			return s;
		i = (i + 1) & mask;
	}
}

int
filter_domains_build(struct filter_domains *d)
{
	size_t size = 8, used = 0;
	struct fd_slot *tab;
	char *arena;

	if (d == NULL || d->built) {
		errno = EINVAL;
		return -1;
	}
	/* Sized for every added name; duplicates only lower the load. */
	while ((double)d->npend > 0.7 * (double)size) {
		if (size > SIZE_MAX / 2 / sizeof(*tab)) {
			errno = ENOMEM;
			return -1;
		}
		size *= 2;
	}
	tab = malloc(size * sizeof(*tab));
	/* A fresh, exact-size arena: duplicates are dropped, slack freed. */
	arena = malloc(d->arena_len ? d->arena_len : 1);
	if (tab == NULL || arena == NULL) {
		free(tab);
		free(arena);
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < size; i++)
		tab[i].off = FD_EMPTY;

	d->count = 0;
	for (size_t i = 0; i < d->npend; i++) {
		const char *name = d->arena + d->pend[i];
		size_t len = strlen(name);
		uint64_t h = XXH3_64bits(name, len);
		struct fd_slot *s = (struct fd_slot *)fd_find(tab, size - 1,
		    arena, h, name, len);

		if (s->off != FD_EMPTY)
			continue;	/* duplicate */
		memcpy(arena + used, name, len + 1);
		s->hash = h;
		s->off = (uint32_t)used;
		s->len = (uint32_t)len;
		used += len + 1;
		d->count++;
	}
	/* Shrinking cannot fail in a way that matters: keep the old block. */
	if (used > 0 && used < d->arena_len) {
		char *shrunk = realloc(arena, used);

		if (shrunk != NULL)
			arena = shrunk;
	}
	free(d->arena);
	free(d->pend);
	d->pend = NULL;
	d->npend = d->pend_cap = 0;
	d->arena = arena;
	d->arena_len = d->arena_cap = used ? used : 1;
	d->tab = tab;
	d->mask = size - 1;
	d->built = true;
	return 0;
}

const char *
filter_domains_match(const struct filter_domains *d, const char *host,
    size_t len)
{
	if (d == NULL || !d->built || host == NULL || len == 0 ||
	    d->count == 0)
		return NULL;
	/* Longest suffix first, so the most specific entry is returned. */
	for (size_t i = 0; i < len;) {
		const char *sfx = host + i;
		size_t slen = len - i;
		uint64_t h = XXH3_64bits(sfx, slen);
		const struct fd_slot *s = fd_find(d->tab, d->mask, d->arena,
		    h, sfx, slen);
		const char *dot;

		if (s->off != FD_EMPTY)
			return d->arena + s->off;
		dot = memchr(sfx, '.', slen);
		if (dot == NULL)
			break;
		i = (size_t)(dot - host) + 1;
	}
	return NULL;
}

void
filter_domains_each_hash(const struct filter_domains *d,
    void (*fn)(void *arg, uint64_t hash), void *arg)
{
	if (d == NULL || !d->built)
		return;
	for (size_t i = 0; i <= d->mask; i++)
		if (d->tab[i].off != FD_EMPTY)
			fn(arg, d->tab[i].hash);
}

size_t
filter_domains_count(const struct filter_domains *d)
{
	if (d == NULL)
		return 0;
	return d->built ? d->count : d->npend;
}

size_t
filter_domains_bytes(const struct filter_domains *d)
{
	if (d == NULL)
		return 0;
	return sizeof(*d) + d->arena_cap + d->pend_cap * sizeof(uint32_t) +
	    (d->tab ? (d->mask + 1) * sizeof(struct fd_slot) : 0);
}

void
filter_domains_free(struct filter_domains *d)
{
	if (d == NULL)
		return;
	free(d->arena);
	free(d->pend);
	free(d->tab);
	free(d);
}
