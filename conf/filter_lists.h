/*
 * filter_lists.h - loads squidGuard/ufdbGuard-style category lists.
 *
 * filter.lists names a folder of category folders (adult/, gambling/,
 * ...), each with optional files "domains" (a domain and its
 * subdomains), "urls" (host/path prefixes) and "expressions" (PCRE2
 * patterns, one a line).  The loader reads them all, normalises every
 * entry the way url_norm canonicalises requests, and builds one domain
 * set and one URL set per category.  Patterns are kept raw, with their
 * file and line: compiling them is the filter matcher's job (PCRE2
 * lives behind one file).  Pure library code: no logging; the first
 * error comes back as one "FILE:LINE: what is wrong" line.
 */
#ifndef SLUICE_FILTER_LISTS_H
#define SLUICE_FILTER_LISTS_H

#include <stddef.h>

struct filter_domains;
struct filter_urls;

/* Longest line accepted in a list file, CR and LF not counted. */
#define FILTER_LISTS_LINE_MAX 4096

/* Kept raw: the caller compiles them and reports errors as file:line. */
struct filter_expr {
	char *pattern;
	char *file;
	int line;
};

struct filter_category {
	char *name;			/* folder name */
	struct filter_domains *domains;	/* NULL when no domains file or empty */
	struct filter_urls *urls;	/* NULL when none */
	struct filter_expr *exprs;
	size_t nexprs;
	size_t ndomains, nurls;		/* entries loaded (after dedup) */
};

struct filter_lists {
	struct filter_category *cats;	/* sorted by name (strcmp) */
	size_t ncats;
	size_t bytes;			/* heap held */
};

/*
 * Load every category folder under dir, sorted by name (byte order, so
 * results never depend on the locale).  Dot-folders and plain files at
 * the top level are ignored; a folder whose name is not
 * [A-Za-z0-9_.-]+ is an error.  On error returns NULL and err gets ONE
 * line, e.g. "/l/adult/domains:17: invalid domain \"exa mple.com\":
 * space", "/l/adult/domains:3: line longer than 4096 bytes",
 * "/l/adult/domains:9: NUL byte (binary file?)", "/l/adult/domains:5:
 * invalid UTF-8", "/l/x: cannot open: Permission denied", "/l: no
 * category folders".  err may be NULL when errlen is 0.
 */
struct filter_lists *filter_lists_load(const char *dir, char *err,
    size_t errlen);

/* The category called name, or NULL. */
const struct filter_category *filter_lists_find(const struct filter_lists *l,
    const char *name);

void filter_lists_free(struct filter_lists *l);

#endif /* SLUICE_FILTER_LISTS_H */
