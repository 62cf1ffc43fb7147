/*
 * filter_urls.h - the URL-prefix set of the URL filter (the "urls" file
 * of a squidGuard-style category).
 *
 * A set of canonical entries "host[:port]/path", built once (add ...
 * add, build) and then only read.  An entry names a host (exactly: no
 * subdomains, that is what the domain set is for) and a path prefix
 * that ends on a path boundary.  Entries and URLs are canonical as
 * url_norm writes them; normalising entries is the list loader's job.
 * Pure library code: no logging, errors come back as -1 + errno.
 */
#ifndef SLUICE_FILTER_URLS_H
#define SLUICE_FILTER_URLS_H

#include <stddef.h>

/*
 * Boundaries of a URL that are looked up: the first 32 path boundaries
 * ('/' characters of the path), each probed as "before" and "after" the
 * slash, plus the '?' and the end.  An entry deeper than 32 path
 * segments can only match a URL it equals in its first 32 segments,
 * that is, it never matches; list entries are never that deep.
 */
#define FILTER_URLS_MAX_BOUNDARIES 32

/* Longest entry accepted by filter_urls_add. */
#define FILTER_URLS_ENTRY_MAX 8192

struct filter_urls;

/* An empty, unbuilt set, or NULL (errno ENOMEM). */
struct filter_urls *filter_urls_new(void);

/*
 * Add a canonical entry "host/path" or "host" (already normalised by
 * the caller: the loader uses url_norm; a leading "www." / "wwwN." /
 * "webN." label already stripped, see filter_urls_strip_www).  "host"
 * alone is stored as "host/".  Duplicates are fine.  Returns 0, or -1
 * with errno EINVAL (empty, starts with '/' or '?', a control, space or
 * NUL byte, longer than FILTER_URLS_ENTRY_MAX, or the set is already
 * built), ENOMEM, or EOVERFLOW (entries exceed 4 GiB).
 */
int filter_urls_add(struct filter_urls *u, const char *entry, size_t len);

/*
 * Freeze the set: drop duplicates, compact the arena, build the hash
 * table.  Returns 0, or -1 with errno ENOMEM (still unbuilt, may be
 * freed) or EINVAL (already built).
 */
int filter_urls_build(struct filter_urls *u);

/*
 * url: canonical "host[:port]/path[?query]" as produced by url_norm.
 * Returns the matching entry (the longest; NUL-terminated, owned by the
 * set) or NULL.  An entry "h/p" matches when host equals h (after
 * stripping a leading www./wwwN./webN. label from the URL's host, as
 * was done to the entry) and p is a prefix of the URL's path ending at
 * a path boundary: the URL's path continues with '/', '?', or ends.  An
 * entry "h/p/" (trailing slash) matches "h/p/" and anything below.  An
 * entry "h" alone behaves like "h/".  Ports: the port is part of h, so
 * an entry without a port matches only the default-port form (url_norm
 * omits :80), and "h:8080/p" only port 8080.  An entry with a query
 * matches only a URL equal to it.  An unbuilt set matches nothing.
 */
const char *filter_urls_match(const struct filter_urls *u, const char *url,
    size_t len);

/* Number of distinct entries (after build; before it, entries added). */
size_t filter_urls_count(const struct filter_urls *u);
/* Call fn with the host part ("host[:port]") of every entry of a built
 * set; a host with several entries comes once per entry. */
void filter_urls_each_host(const struct filter_urls *u,
    void (*fn)(void *arg, const char *host, size_t len), void *arg);

/* Bytes of heap held by the set. */
size_t filter_urls_bytes(const struct filter_urls *u);

void filter_urls_free(struct filter_urls *u);

/*
 * Bytes to skip at the start of s (a canonical host, or a URL/entry
 * starting with one) to drop a leading "www." / "www<digits>." /
 * "web<digits>." label; 0 when there is none.  The label is kept when
 * what follows it has no dot ("www.com" stays itself), so a TLD is
 * never what is left.  Used on both sides so they agree.
 */
size_t filter_urls_strip_www(const char *s, size_t len);

#endif /* SLUICE_FILTER_URLS_H */
