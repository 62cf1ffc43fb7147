/*
 * filter.h - the compiled URL filter: ACLs, category lists and rules.
 *
 * The master compiles `filter { ... }` and the category folders once
 * per configuration (at start and on every reload) and forks workers
 * that share the result copy-on-write; nothing is compiled in a worker.
 * A worker asks filter_decide() about each request, before the cache,
 * with the request already reduced to its canonical form (url_norm.h):
 * the filter never sees a spelling the origin would read differently.
 *
 * Rules are ordered; the first rule whose conditions all hold decides.
 * When the configuration has rules and none holds, the request is
 * denied.  A configuration without rules has no filter (NULL).
 *
 * The compiled filter points into the sluice_conf it came from: that
 * conf must outlive it (the master frees them together).  A filter is
 * used by one thread at a time: it keeps per-decision scratch inside.
 */
#ifndef SLUICE_FILTER_H
#define SLUICE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf/conf.h"

struct filter;
struct filter_page;

/* One request as the filter sees it.  Strings need not be terminated. */
struct filter_req {
	const char *url; size_t url_len;	/* url_norm(): "host[:port]/path[?query]";
						 * CONNECT: "host:port" */
	const char *host; size_t host_len;	/* canonical host (no brackets) */
	int port;
	bool connect;				/* a CONNECT tunnel (no path) */
	const char *method; size_t method_len;
	const uint8_t *client;			/* 16-byte address (netaddr.h) */
	const char *user_agent; size_t ua_len;	/* NULL: no User-Agent field */
	int wday, minute;			/* local time: 0-6 from Sunday, 0-1439 */
};

enum filter_reason {
	FILTER_BY_RULE,		/* a rule matched and decided */
	FILTER_BY_DEFAULT,	/* rules exist and none matched: denied */
	FILTER_BY_LIMIT,	/* a pattern hit a PCRE2 limit: denied (fail closed) */
};

struct filter_verdict {
	bool allow;
	enum filter_reason reason;
	int rule;			/* index into the rules, -1 when none decided */
	int rule_line;			/* its line in the config file, 0 when none */
	const char *rule_name;		/* "name" or "rule#N"; "default" when none */
	const char *category;		/* category that matched in the deciding rule, or NULL */
	const char *what;		/* what matched in it, e.g. "domain example.com", or NULL */
	const char *limit_pattern;	/* FILTER_BY_LIMIT: the pattern */
	bool limit_first;		/* first limit hit of that pattern in this process */
};

/* Compile c->filter.  Returns 0 and *out (NULL when there are no rules:
 * no filtering), or -1 with one line "FILE:LINE: directive: what" in
 * err.  Relative list and page paths resolve against the config file's
 * folder. */
int filter_compile(const struct sluice_conf *c, struct filter **out,
    char *err, size_t errlen);

/* Decide one request.  f may be NULL (allow). */
void filter_decide(struct filter *f, const struct filter_req *q,
    struct filter_verdict *v);

/* Does CONNECT to an IP literal need the TLS server name to decide?
 * (Some rule looks at names: dst_domain, url_regex, category.) */
bool filter_needs_name(const struct filter *f);

/* The block page template compiled with the filter. */
const struct filter_page *filter_block_page(const struct filter *f);

/* For sluice -T: print every condition of the deciding rule and what
 * matched it (call right after filter_decide with the same request). */
void filter_explain(struct filter *f, const struct filter_verdict *v, FILE *out);

/* One line of figures: categories, entries, bytes, compile time. */
void filter_summary(const struct filter *f, char *buf, size_t len);

void filter_free(struct filter *f);

#endif /* SLUICE_FILTER_H */
