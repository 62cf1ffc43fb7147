/*
 * filter_urls.c - the URL filter's URL-prefix set: a strset of
 * entries, looked up once per path boundary, behind a host Bloom filter.
 *
 * Assumes entries and URLs are canonical (url_norm's form, the leading
 * www label stripped from entries by the loader) and that the set is
 * built once per configuration generation and then only read, possibly
 * by several workers after fork; nothing is locked or mutated after
 * build.
 *
 * Why this shape: the same as filter_domains, for the same reasons
 * (hundreds of thousands of entries; a trie or a regex costs far more
 * memory and cache misses), in the same strset: 16-byte slots {XXH3-64
 * hash, arena offset, length}, a power-of-two table at load <= 0.7.
 * This file adds validation, the "host" -> "host/" rewrite, the
 * boundary walk and the Bloom filter.  An entry can only match a URL
 * at a path boundary, so a lookup hashes the URL's prefixes that end
 * there -- "h/a", "h/a/", "h/a/b", ... -- longest first, and the first
 * hit is the longest match.  That is one hash and usually one slot read per
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

#include "conf/filter_urls.h"
#include "conf/strset.h"

/* Bloom bits per distinct entry for the host prefilter (2 bytes). */
#define FU_BLOOM_BITS	16
/* Prefix lengths probed: before and after each slash, '?', the end. */
#define FU_MAX_PROBES	(2 * FILTER_URLS_MAX_BOUNDARIES + 2)

struct filter_urls {
	struct strset entries;
	uint64_t *hosts;		/* after build: Bloom bits of the hosts */
	size_t hmask;			/* bits in hosts - 1 */
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
	const char *q;
	size_t hl;
	char *dst;

	if (u == NULL || entry == NULL || strset_built(&u->entries) ||
	    !fu_valid(entry, len)) {
		errno = EINVAL;
		return -1;
	}
	if (memchr(entry, '/', len) != NULL)
		return strset_add(&u->entries, entry, len);
	/*
	 * "host" alone is "host/": a path always starts with '/'.  And
	 * "host?q" (no path) becomes "host/?q", as url_norm writes it.
	 */
	if ((dst = strset_add_space(&u->entries, len + 1)) == NULL)
		return -1;
	q = memchr(entry, '?', len);
	hl = q != NULL ? (size_t)(q - entry) : len;
	memcpy(dst, entry, hl);
	dst[hl] = '/';
	memcpy(dst + hl + 1, entry + hl, len - hl);
	return 0;
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
	size_t hbits = 64, pos = 0;
	uint64_t *hosts;
	const char *e;

	if (u == NULL || strset_built(&u->entries)) {
		errno = EINVAL;
		return -1;
	}
	/* Allocated first, so that a failure leaves the set unbuilt. */
	while (hbits < strset_count(&u->entries) * FU_BLOOM_BITS &&
	    hbits < SIZE_MAX / 4)
		hbits *= 2;
	hosts = calloc(hbits / 64, sizeof(uint64_t));
	if (hosts == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (strset_build(&u->entries) == -1) {
		free(hosts);
		return -1;
	}
	while ((e = strset_next(&u->entries, &pos, NULL, NULL)) != NULL)
		fu_bloom_set(hosts, hbits - 1, XXH3_64bits(e, strcspn(e, "/")));
	u->hosts = hosts;
	u->hmask = hbits - 1;
	return 0;
}

const char *
filter_urls_match(const struct filter_urls *u, const char *url, size_t len)
{
	size_t cand[FU_MAX_PROBES];
	size_t nc = 0, slashes = 0, p0, q, skip;
	const char *s, *m;

	if (u == NULL || !strset_built(&u->entries) || url == NULL ||
	    len == 0 || strset_count(&u->entries) == 0)
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
		if (p0 < len &&
		    (m = strset_find(&u->entries, buf, len + 1)) != NULL)
			return m;
		return strset_find(&u->entries, buf, p0 + 1);
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
		m = strset_find(&u->entries, s, cand[--nc]);
		if (m != NULL)
			return m;
	}
	return NULL;
}

void
filter_urls_each_host(const struct filter_urls *u,
    void (*fn)(void *arg, const char *host, size_t len), void *arg)
{
	size_t pos = 0;
	const char *e;

	if (u == NULL)
		return;
	while ((e = strset_next(&u->entries, &pos, NULL, NULL)) != NULL)
		fn(arg, e, strcspn(e, "/"));
}

size_t
filter_urls_count(const struct filter_urls *u)
{
	return u != NULL ? strset_count(&u->entries) : 0;
}

size_t
filter_urls_bytes(const struct filter_urls *u)
{
	if (u == NULL)
		return 0;
	return sizeof(*u) + strset_bytes(&u->entries) +
	    (u->hosts ? (u->hmask + 1) / 8 : 0);
}

void
filter_urls_free(struct filter_urls *u)
{
	if (u == NULL)
		return;
	strset_fini(&u->entries);
	free(u->hosts);
	free(u);
}
