/*
 * filter_domains.h - the domain set of the URL filter.
 *
 * A set of domain names, built once (add ... add, build) and then only
 * read.  A name in the set matches itself and every subdomain of it,
 * on label boundaries: "example.com" matches "www.example.com" but not
 * "notexample.com".  Names and hosts are canonical (lower-case
 * ASCII/punycode, no trailing dot); normalising is the list loader's
 * job.  Pure library code: no logging, errors come back as -1 + errno.
 */
#ifndef SLUICE_FILTER_DOMAINS_H
#define SLUICE_FILTER_DOMAINS_H

#include <stddef.h>
#include <stdint.h>

struct filter_domains;

/* An empty, unbuilt set, or NULL (errno ENOMEM). */
struct filter_domains *filter_domains_new(void);

/*
 * Add one name.  A leading "." is accepted and means the same as
 * without it.  Valid: only [a-z0-9._-], no empty labels, labels of at
 * most 63 bytes, at most 253 bytes in all (leading dot not counted).
 * Duplicates are fine.  Returns 0, or -1 with errno ENOMEM, EINVAL (bad
 * name, or the set is already built) or EOVERFLOW (names exceed 4 GiB).
 */
int filter_domains_add(struct filter_domains *d, const char *name, size_t len);

/*
 * Freeze the set: drop duplicates, compact the names, build the hash
 * table.  Returns 0, or -1 with errno ENOMEM (the set is then still
 * unbuilt and may be freed) or EINVAL (already built).
 */
int filter_domains_build(struct filter_domains *d);

/*
 * Does host, or any parent domain of it, belong to the set?  Returns
 * the longest matching entry (NUL-terminated, owned by the set) or
 * NULL.  An unbuilt set matches nothing.
 */
const char *filter_domains_match(const struct filter_domains *d,
    const char *host, size_t len);

/* Call fn with the XXH3-64 hash of every name of a built set (the
 * filter builds one pre-check over all its sets from them). */
void filter_domains_each_hash(const struct filter_domains *d,
    void (*fn)(void *arg, uint64_t hash), void *arg);

/* Number of distinct names (after build; before it, names added). */
size_t filter_domains_count(const struct filter_domains *d);

/* Bytes of heap held by the set. */
size_t filter_domains_bytes(const struct filter_domains *d);

void filter_domains_free(struct filter_domains *d);

#endif /* SLUICE_FILTER_DOMAINS_H */
