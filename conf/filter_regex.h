/*
 * filter_regex.h - the regex set of the URL filter.
 *
 * A list of PCRE2 patterns (an "expressions" file of a category, or the
 * url_regex / urlpath_regex / user_agent patterns of an ACL), built
 * once (add ... add, set limits, build) and then only read.  A match
 * asks "does this subject match any pattern, and which one first in
 * add order".  Subjects are bytes (canonical URLs, User-Agent values):
 * no UTF mode.  Every match runs under a match limit, a depth limit and
 * a bounded JIT stack, so a catastrophic pattern is reported as a limit
 * hit instead of stalling a worker.  Pure library code: no logging;
 * compile errors come back as PCRE2's text with the offset.
 */
#ifndef SLUICE_FILTER_REGEX_H
#define SLUICE_FILTER_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FILTER_RX_CASELESS	0x1u	/* compile with PCRE2_CASELESS */
#define FILTER_RX_NO_JIT	0x2u	/* interpreter only (tests, JIT trouble) */

/* Defaults of filter_rx_set_limits(). */
#define FILTER_RX_MATCH_LIMIT	100000u
#define FILTER_RX_DEPTH_LIMIT	10000u
#define FILTER_RX_JIT_STACK_MAX	(256u * 1024u)
#define FILTER_RX_JIT_STACK_MIN	(32u * 1024u)

struct filter_rx_set;

/* An empty, unbuilt set, or NULL on ENOMEM. */
struct filter_rx_set *filter_rx_new(void);

/*
 * Compile one pattern (8-bit, never UTF).  id is the caller's number for
 * it.  Returns 0, or -1 and writes into err (if errlen > 0) a message
 * such as "missing closing parenthesis at offset 7".  Also -1 if the
 * set is already built ("set already built") or on ENOMEM.
 */
int filter_rx_add(struct filter_rx_set *s, const char *pat, size_t len,
    uint32_t id, unsigned flags, char *err, size_t errlen);

/*
 * Limits; call before build (ignored after).  A 0 keeps the current
 * value.  Defaults: match_limit 100000, depth_limit 10000 (interpreter
 * only: the JIT ignores it), JIT stack 256 KiB max (32 KiB start).
 */
void filter_rx_set_limits(struct filter_rx_set *s, uint32_t match_limit,
    uint32_t depth_limit, size_t jit_stack_max);

/*
 * Test and debugging knob, before build: false makes every pattern
 * always tried (no literal prefilter).  The answers must not change;
 * the unit tests compare both ways.  Default true.
 */
void filter_rx_set_prefilter(struct filter_rx_set *s, bool on);

/*
 * Freeze: JIT-compile every pattern (a JIT failure falls back to the
 * interpreter), build the literal prefilter, allocate match data, the
 * match context and the JIT stack.  Returns 0, or -1 (ENOMEM; the set
 * stays unbuilt and may be freed) or -1 if already built.
 */
int filter_rx_build(struct filter_rx_set *s);

enum { FILTER_RX_NOMATCH = 0, FILTER_RX_MATCH = 1, FILTER_RX_LIMIT = 2 };

/*
 * Match subj[0..len).  Patterns are tried in add order; the first that
 * matches wins: FILTER_RX_MATCH and *which = its index in add order
 * (0-based).  A pattern that hits a limit (match, depth, heap or JIT
 * stack; any other PCRE2 matching error is treated the same, since the
 * answer is unknown) is skipped and remembered, and matching goes on;
 * if nothing matched and some pattern hit a limit, FILTER_RX_LIMIT and
 * *which = the first such index.  Otherwise FILTER_RX_NOMATCH (which
 * untouched).  An unbuilt set matches nothing.  The scratch state lives
 * in the set: one thread at a time per set (after fork each process has
 * its own copy).
 */
int filter_rx_match(const struct filter_rx_set *s, const char *subj,
    size_t len, size_t *which);

/* Number of patterns added. */
size_t filter_rx_count(const struct filter_rx_set *s);

/* The caller's id of pattern which (0 if out of range). */
uint32_t filter_rx_id(const struct filter_rx_set *s, size_t which);

/* The source text of pattern which, NUL-terminated (NULL if out of range). */
const char *filter_rx_pattern(const struct filter_rx_set *s, size_t which);

/*
 * True exactly once per pattern index (the first call for it), so the
 * caller can log a limit hit once per pattern.  False if out of range
 * or the set is not built.
 */
bool filter_rx_first_limit(const struct filter_rx_set *s, size_t which);

/* Heap held, approximate, including PCRE2 compiled and JIT code sizes. */
size_t filter_rx_bytes(const struct filter_rx_set *s);

/* Number of patterns that have no literal and are always tried (after build). */
size_t filter_rx_always_count(const struct filter_rx_set *s);

/*
 * Number of patterns the JIT compiled (after build).  Less than
 * filter_rx_count means the interpreter runs the rest: the caller
 * should warn once, since only the JIT bounds quadratic patterns well.
 */
size_t filter_rx_jit_count(const struct filter_rx_set *s);

void filter_rx_free(struct filter_rx_set *s);

/*
 * The prefilter's literal extraction, exported for the unit tests.
 * Derives from pattern text a set of lower-cased literals such that
 * every subject the pattern matches contains at least one of them
 * (after ASCII lower-casing).  Writes them into out as consecutive
 * NUL-terminated strings (a literal holds no NUL byte) and returns how
 * many (at most FILTER_RX_LITS_MAX), or 0 when the pattern has no
 * usable literal and must always be tried (also when out is too small).
 */
#define FILTER_RX_LITS_MAX	8	/* literals per pattern */
#define FILTER_RX_LIT_MIN	3	/* shorter literals are not worth it */
#define FILTER_RX_LIT_MAX	32	/* longer required runs are cut */
size_t filter_rx_literals(const char *pat, size_t len, char *out,
    size_t outlen);

#endif /* SLUICE_FILTER_REGEX_H */
