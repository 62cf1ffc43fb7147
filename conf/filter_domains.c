/*
 * filter_domains.c - the URL filter's domain set: an open-addressing
 * strset of names, with label-suffix lookup.
 *
 * Assumes names and hosts are already canonical (the list loader lower-
 * cases and strips trailing dots) and that the set is built once per
 * configuration generation and then only read, possibly by several
 * workers after fork; nothing here is locked or mutated after build.
 *
 * Why this shape: lists carry about a million domains, and a regex or a
 * tree of per-label nodes costs too much memory and too many cache
 * misses.  The names live in a strset (16-byte slots {XXH3-64 hash,
 * arena offset, length}, a power-of-two table at load <= 0.7), so a
 * lookup is one hash, one or two slot reads, and one memcmp to
 * confirm; this file adds only name validation and the suffix walk.
 * A host "a.b.example.com" is checked as "a.b.example.com",
 * "b.example.com", "example.com" and "com": at most 127 probes for the
 * longest legal name, usually 2-4, and suffixes longer than the
 * longest name cost no hash.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/filter_domains.h"
#include "conf/strset.h"

#define FD_NAME_MAX	253
#define FD_LABEL_MAX	63

struct filter_domains {
	struct strset names;
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

int
filter_domains_add(struct filter_domains *d, const char *name, size_t len)
{
	if (d == NULL || name == NULL || strset_built(&d->names) ||
	    !fd_valid(&name, &len)) {
		errno = EINVAL;
		return -1;
	}
	return strset_add(&d->names, name, len);
}

int
filter_domains_build(struct filter_domains *d)
{
	if (d == NULL) {
		errno = EINVAL;
		return -1;
	}
	return strset_build(&d->names);
}

const char *
filter_domains_match(const struct filter_domains *d, const char *host,
    size_t len)
{
	if (d == NULL || !strset_built(&d->names) || host == NULL ||
	    len == 0 || strset_count(&d->names) == 0)
		return NULL;
	/* Longest suffix first, so the most specific entry is returned. */
	for (size_t i = 0; i < len;) {
		const char *sfx = host + i;
		size_t slen = len - i;
		const char *e = strset_find(&d->names, sfx, slen);
		const char *dot;

		if (e != NULL)
			return e;
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
	size_t pos = 0;
	uint64_t h;

	if (d == NULL)
		return;
	while (strset_next(&d->names, &pos, NULL, &h) != NULL)
		fn(arg, h);
}

size_t
filter_domains_count(const struct filter_domains *d)
{
	return d != NULL ? strset_count(&d->names) : 0;
}

size_t
filter_domains_bytes(const struct filter_domains *d)
{
	if (d == NULL)
		return 0;
	return sizeof(*d) + strset_bytes(&d->names);
}

void
filter_domains_free(struct filter_domains *d)
{
	if (d == NULL)
		return;
	strset_fini(&d->names);
	free(d);
}
