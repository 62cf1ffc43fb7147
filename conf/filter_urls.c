/*
 * filter_urls.c - the URL filter's URL-prefix set: an open-addressing
 * hash table over one string arena, looked up once per path boundary.
 *
 * Assumes entries and URLs are canonical (url_norm's form, the leading
 * www label stripped from entries by the loader) and that the set is
 * built once per configuration generation and then only read, possibly
 * by several workers after fork; nothing is locked or mutated after
 * build.
 *
 * Why this shape: the same as filter_domains, for the same reasons
 * (hundreds of thousands of entries; a trie or a regex costs far more
 * memory and cache misses).  Each slot is 16 bytes: the entry's 64-bit
 * XXH3 hash, its arena offset and its length; the table is a power of
 * two at load <= 0.7.  An entry can only match a URL at a path
 * boundary, so a lookup hashes the URL's prefixes that end there --
 * "h/a", "h/a/", "h/a/b", ... -- longest first, and the first hit is
 * the longest match.  That is one hash and usually one slot read per
 * boundary, capped at FILTER_URLS_MAX_BOUNDARIES slashes (documented in
 * the header), so a hostile URL of a thousand slashes costs no more
 * than a 32-segment one.  In front of that sits a Bloom filter of the
 * entries' hosts (2 bytes per entry), because nearly every request
 * names a host with no entry and should cost no table probe at all.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "conf/filter_urls.h"

#define FU_EMPTY	UINT32_MAX	/* offset of a free slot */
/* Bloom bits per distinct entry for the host prefilter (2 bytes). */
#define FU_BLOOM_BITS	16
/* Prefix lengths probed: before and after each slash, '?', the end. */
#define FU_MAX_PROBES	(2 * FILTER_URLS_MAX_BOUNDARIES + 2)

struct fu_slot {
	uint64_t hash;
	uint32_t off;			/* into arena; FU_EMPTY if free */
	uint32_t len;			/* entry length without NUL */
};

struct filter_urls {
	char *arena;			/* entries, each NUL-terminated */
	size_t arena_len;
	size_t arena_cap;
	uint32_t *pend;			/* before build: offsets of entries */
	size_t npend;
	size_t pend_cap;
	struct fu_slot *tab;		/* after build */
	size_t mask;			/* table size - 1 */
	size_t count;			/* distinct entries after build */
	size_t maxlen;			/* longest entry: longer prefixes skip */
	uint64_t *hosts;		/* after build: Bloom bits of the hosts */
	size_t hmask;			/* bits in hosts - 1 */
	bool built;
};

struct filter_urls *
filter_urls_new(void)
{
	return calloc(1, sizeof(struct filter_urls));
}

size_t
filter_urls_strip_www(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len < 4)
		return 0;
	if (memcmp(s, "www", 3) == 0) {
		i = 3;			/* "www" then any number of digits */
	} else if (memcmp(s, "web", 3) == 0 && s[3] >= '0' && s[3] <= '9') {
		i = 4;			/* "web" then at least one digit */
	} else {
		return 0;
	}
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i >= len || s[i] != '.')
		return 0;
	i++;
	/* Keep it when no dot follows in the host: "www.com" is a name. */
	for (size_t j = i; j < len; j++) {
		if (s[j] == '.')
			return i;
		if (s[j] == ':' || s[j] == '/' || s[j] == '?')
			break;
	}
	return 0;
}

/* Grows *p (element size sz) so that it holds at least need elements. */
static int
fu_grow(void **p, size_t *cap, size_t need, size_t sz)
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

static bool
fu_valid(const char *e, size_t len)
{
	if (len == 0 || len > FILTER_URLS_ENTRY_MAX || e[0] == '/' ||
	    e[0] == '?')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)e[i];

		if (c <= 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

int
filter_urls_add(struct filter_urls *u, const char *entry, size_t len)
{
	/* "host" alone is "host/": a path always starts with '/'. */
	bool slash;
	size_t need;

	if (u == NULL || entry == NULL || u->built || !fu_valid(entry, len)) {
		errno = EINVAL;
		return -1;
	}
	slash = memchr(entry, '/', len) == NULL;
	need = len + (slash ? 1 : 0) + 1;
	/* Offsets are 32-bit to keep slots at 16 bytes; FU_EMPTY is reserved. */
	if (u->arena_len + need >= FU_EMPTY) {
		errno = EOVERFLOW;
		return -1;
	}
	if (fu_grow((void **)&u->arena, &u->arena_cap, u->arena_len + need,
	    1) == -1)
		return -1;
	if (fu_grow((void **)&u->pend, &u->pend_cap, u->npend + 1,
	    sizeof(uint32_t)) == -1)
		return -1;
	if (slash) {
		/* "host?q" (no path) becomes "host/?q", as url_norm writes it. */
		const char *q = memchr(entry, '?', len);
		size_t hl = q != NULL ? (size_t)(q - entry) : len;
		char *dst = u->arena + u->arena_len;

		memcpy(dst, entry, hl);
		dst[hl] = '/';
		memcpy(dst + hl + 1, entry + hl, len - hl);
	} else {
		memcpy(u->arena + u->arena_len, entry, len);
	}
	u->arena[u->arena_len + need - 1] = '\0';
	u->pend[u->npend++] = (uint32_t)u->arena_len;
	u->arena_len += need;
	return 0;
}

/* The slot holding e, or the free slot where it belongs (linear probing). */
static const struct fu_slot *
fu_find(const struct fu_slot *tab, size_t mask, const char *arena,
    uint64_t h, const char *e, size_t len)
{
	size_t i = (size_t)h & mask;

	for (;;) {
		const struct fu_slot *s = &tab[i];

		if (s->off == FU_EMPTY)
			return s;
		if (s->hash == h && s->len == len &&
		    memcmp(arena + s->off, e, len) == 0)
			return s;
		i = (i + 1) & mask;
	}
}

/*
 * The host prefilter: most requests name a host that has no entry at
 * all, and for them one look at a small, cache-resident bitmap replaces
 * a cache miss in the big table per path boundary.  Two bits per host
 * (k = 2) at 16 bits per entry: about 1.4% false positives.
 */
static void
fu_bloom_set(uint64_t *bits, size_t mask, uint64_t h)
{
	size_t a = (size_t)h & mask, b = (size_t)(h >> 32 | h << 32) & mask;

	bits[a / 64] |= (uint64_t)1 << (a % 64);
	bits[b / 64] |= (uint64_t)1 << (b % 64);
}

static bool
fu_bloom_test(const uint64_t *bits, size_t mask, uint64_t h)
{
	size_t a = (size_t)h & mask, b = (size_t)(h >> 32 | h << 32) & mask;

	return (bits[a / 64] >> (a % 64) & 1) && (bits[b / 64] >> (b % 64) & 1);
}

int
filter_urls_build(struct filter_urls *u)
{
	size_t size = 8, used = 0, hbits;
	struct fu_slot *tab;
	uint64_t *hosts;
	char *arena;

	if (u == NULL || u->built) {
		errno = EINVAL;
		return -1;
	}
	while ((double)u->npend > 0.7 * (double)size) {
		if (size > SIZE_MAX / 2 / sizeof(*tab)) {
			errno = ENOMEM;
			return -1;
		}
		size *= 2;
	}
	tab = malloc(size * sizeof(*tab));
	/* A fresh, exact-size arena: duplicates are dropped, slack freed. */
	arena = malloc(u->arena_len ? u->arena_len : 1);
	if (tab == NULL || arena == NULL) {
		free(tab);
		free(arena);
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < size; i++)
		tab[i].off = FU_EMPTY;
	hbits = 64;
	while (hbits < u->npend * FU_BLOOM_BITS && hbits < SIZE_MAX / 4)
		hbits *= 2;
	hosts = calloc(hbits / 64, sizeof(uint64_t));
	if (hosts == NULL) {
		free(tab);
		free(arena);
		errno = ENOMEM;
		return -1;
	}

	u->count = 0;
	u->maxlen = 0;
	for (size_t i = 0; i < u->npend; i++) {
		const char *e = u->arena + u->pend[i];
		size_t len = strlen(e);
		uint64_t h = XXH3_64bits(e, len);
		struct fu_slot *s = (struct fu_slot *)fu_find(tab, size - 1,
		    arena, h, e, len);

		if (s->off != FU_EMPTY)
			continue;	/* duplicate */
		memcpy(arena + used, e, len + 1);
		s->hash = h;
		s->off = (uint32_t)used;
		s->len = (uint32_t)len;
		used += len + 1;
		if (len > u->maxlen)
			u->maxlen = len;
		u->count++;
		h = XXH3_64bits(e, strcspn(e, "/"));
		fu_bloom_set(hosts, hbits - 1, h);
	}
	if (used > 0 && used < u->arena_len) {
		char *shrunk = realloc(arena, used);

		if (shrunk != NULL)
			arena = shrunk;
	}
	free(u->arena);
	free(u->pend);
	u->pend = NULL;
	u->npend = u->pend_cap = 0;
	u->arena = arena;
	u->arena_len = u->arena_cap = used ? used : 1;
	u->tab = tab;
	u->mask = size - 1;
	u->hosts = hosts;
	u->hmask = hbits - 1;
	u->built = true;
	return 0;
}

/* Is the prefix s[0..n) an entry?  Returns it or NULL. */
static const char *
fu_probe(const struct filter_urls *u, const char *s, size_t n)
{
	const struct fu_slot *sl;

	if (n > u->maxlen)
		return NULL;
	sl = fu_find(u->tab, u->mask, u->arena, XXH3_64bits(s, n), s, n);
	return sl->off != FU_EMPTY ? u->arena + sl->off : NULL;
}

const char *
filter_urls_match(const struct filter_urls *u, const char *url, size_t len)
{
	size_t cand[FU_MAX_PROBES];
	size_t nc = 0, slashes = 0, p0, q, skip;
	const char *s, *m;

	if (u == NULL || !u->built || url == NULL || len == 0 ||
	    u->count == 0)
		return NULL;
	skip = filter_urls_strip_www(url, len);
	s = url + skip;
	len -= skip;

	/* Where the path starts: after host[:port]. */
	for (p0 = 0; p0 < len && s[p0] != '/' && s[p0] != '?'; p0++)
		;
	if (!fu_bloom_test(u->hosts, u->hmask, XXH3_64bits(s, p0)))
		return NULL;
	if (p0 == len || s[p0] == '?') {
		/*
		 * No path: not url_norm's form, but "host" or "host?q" means
		 * "host/" or "host/?q".  Rare, so a bounded copy is fine.
		 */
		char buf[FILTER_URLS_ENTRY_MAX + 2];

		if (len + 1 > FILTER_URLS_ENTRY_MAX)
			return NULL;
		memcpy(buf, s, p0);
		buf[p0] = '/';
		memcpy(buf + p0 + 1, s + p0, len - p0);
		if (p0 < len && (m = fu_probe(u, buf, len + 1)) != NULL)
			return m;
		return fu_probe(u, buf, p0 + 1);
	}
	q = p0;
	while (q < len && s[q] != '?')
		q++;

	/* Candidate prefix lengths, shortest first. */
	for (size_t i = p0; i < q; i++) {
		if (s[i] != '/')
			continue;
		if (++slashes > FILTER_URLS_MAX_BOUNDARIES)
			break;
		if (i > p0)
			cand[nc++] = i;		/* "h/p" before this '/' */
		cand[nc++] = i + 1;		/* "h/p/" including it */
	}
	if (slashes <= FILTER_URLS_MAX_BOUNDARIES) {
		/* The path's end (before '?', or the end), then the query. */
		if (cand[nc - 1] != q)
			cand[nc++] = q;
		if (q < len)
			cand[nc++] = len;
	}
	/* Longest first: the first hit is the most specific entry. */
	while (nc > 0) {
		m = fu_probe(u, s, cand[--nc]);
		if (m != NULL)
			return m;
	}
	return NULL;
}

void
filter_urls_each_host(const struct filter_urls *u,
    void (*fn)(void *arg, const char *host, size_t len), void *arg)
{
	if (u == NULL || !u->built)
		return;
	for (size_t i = 0; i <= u->mask; i++)
		if (u->tab[i].off != FU_EMPTY) {
			const char *e = u->arena + u->tab[i].off;
			fn(arg, e, strcspn(e, "/"));
		}
}

size_t
filter_urls_count(const struct filter_urls *u)
{
	if (u == NULL)
		return 0;
	return u->built ? u->count : u->npend;
}

size_t
filter_urls_bytes(const struct filter_urls *u)
{
	if (u == NULL)
		return 0;
	return sizeof(*u) + u->arena_cap + u->pend_cap * sizeof(uint32_t) +
	    (u->tab ? (u->mask + 1) * sizeof(struct fu_slot) : 0) +
	    (u->hosts ? (u->hmask + 1) / 8 : 0);
}

void
filter_urls_free(struct filter_urls *u)
{
	if (u == NULL)
		return;
	free(u->arena);
	free(u->pend);
	free(u->tab);
	free(u->hosts);
	free(u);
}
