/*
 * filter_regex.c - the URL filter's regex set: PCRE2 patterns behind a
 * literal prefilter (an Aho-Corasick automaton), matched in add order
 * under match, depth and JIT stack limits.
 *
 * Assumes the set is built once per configuration generation (in the
 * master, whose workers inherit it across fork) and that one thread at a
 * time matches against it: the scratch state (match data, JIT stack,
 * candidate bitmap) lives in the set behind pointers, so matching takes
 * a const set.  This file is the only one that sees PCRE2 for the filter.
 *
 * Why this shape: a category's "expressions" file may hold thousands of
 * patterns, and running each of them on every URL costs about 0.1-1 us
 * apiece even with the JIT.  Nearly every real blocklist expression
 * contains a plain word ("casino", "porn", "/proxy/") that any URL it
 * matches must contain.  So at build time a small conservative parser
 * (lx_*) derives, per pattern, a set of literals at least one of which
 * every match contains; patterns where it is unsure get none and are
 * always tried.  At match time one pass of a dense DFA over the
 * lower-cased subject (lower-casing is folded into the byte-class map,
 * so there is no scratch copy and no length limit) marks the candidate
 * patterns; then PCRE2 runs, in add order, on the always-tried patterns
 * and the candidates only, stopping at the first match.  A wrong literal
 * would let a blocked URL through, so the parser gives up on anything it
 * does not fully understand, and the unit tests compare answers with the
 * prefilter on and off over thousands of generated patterns.
 *
 * Limits: pcre2_set_match_limit bounds backtracking in the JIT and the
 * interpreter; pcre2_set_depth_limit bounds the interpreter's frames;
 * the JIT stack is capped.  Measured (-O2, 2 cores, PCRE2 10.42) on a
 * 65536-byte "aaa...!" subject: (a+)+$, (a|aa)+$, (.*a){20},
 * ^(\w+\s?)*$ hit the limit in 0.1-0.3 ms (JIT) and 1-2 ms (interpreter).
 * Caveat: the interpreter resets its match counter at each start
 * position, and single-character repeats backtrack without counting,
 * so a quadratic pattern such as \w*[0-9] takes ~29 s on that subject
 * without the JIT (0.2 ms with it).  The JIT is available on every
 * platform sluice targets; filter_rx_jit_count lets the caller warn
 * when it is not (e.g. no executable memory allowed).
 *
 * Measured (-O2, this 2-core host): 5,000 generated blocklist-like
 * expressions (50 of them without a literal, always tried) against
 * 10,000 generated URLs (~3% blocked): median 1.4 us, p99 2.7-3.1 us
 * per decision; the same set without the prefilter takes ~1 ms per
 * decision.  Build (JIT included) 0.04-0.06 s.  filter_rx_bytes: ~9 MB,
 * of which ~4 MB JIT code, ~3 MB the DFA (34k states x 22 classes x 4
 * bytes), ~0.8 MB compiled patterns.  See test_filter_regex.c.
 *
 * Case: literals and the scan fold ASCII only, like PCRE2's default
 * (C locale) tables in non-UTF mode; bytes >= 0x80 never fold in
 * either, so a caseless pattern's literal is still required.
 */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

#include "conf/filter_regex.h"

struct rx_pat {
	pcre2_code *code;
	char *src;			/* NUL-terminated copy of the text */
	size_t srclen;			/* may hold NUL bytes: the real length */
	uint32_t id;
	bool jit;			/* JIT compile succeeded */
	bool nojit;			/* FILTER_RX_NO_JIT */
};

struct filter_rx_set {
	struct rx_pat *pats;
	size_t n, cap;
	uint32_t match_limit, depth_limit;
	size_t jit_stack_max;
	bool prefilter;
	bool built;

	/* After build: matching machinery. */
	pcre2_match_context *mctx;
	pcre2_jit_stack *jstack;
	pcre2_match_data *md;
	size_t nwords;			/* 64-bit words in a pattern bitmap */
	uint64_t *always;		/* patterns with no literal */
	uint64_t *cand;			/* scratch: candidates of one match */
	uint8_t *logged;		/* filter_rx_first_limit() state */
	size_t nalways;

	/* The Aho-Corasick DFA over literal bytes. */
	uint8_t cls[256];		/* byte -> class (lower-cased); 0 = none */
	size_t ncls;
	size_t nstates;
	uint32_t *delta;		/* nstates * ncls next states */
	uint32_t *dict;			/* nearest suffix state with output, or 0 */
	uint32_t *out_off;		/* nstates + 1 offsets into out */
	uint32_t *out;			/* pattern indexes per state */
	uint8_t *seen;			/* scratch: state outputs taken */
	uint32_t *touched;		/* scratch: states to clear in seen */
	size_t nout;
};

static void
rx_err(char *err, size_t errlen, const char *msg)
{
	if (errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

struct filter_rx_set *
filter_rx_new(void)
{
	struct filter_rx_set *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->match_limit = FILTER_RX_MATCH_LIMIT;
	s->depth_limit = FILTER_RX_DEPTH_LIMIT;
	s->jit_stack_max = FILTER_RX_JIT_STACK_MAX;
	s->prefilter = true;
	return s;
}

int
filter_rx_add(struct filter_rx_set *s, const char *pat, size_t len,
    uint32_t id, unsigned flags, char *err, size_t errlen)
{
	uint32_t opts = PCRE2_NEVER_UTF;
	PCRE2_SIZE eoff;
	int ecode;
	pcre2_code *code;
	char *src;

	if (s->built) {
		rx_err(err, errlen, "set already built");
		return -1;
	}
	if (flags & FILTER_RX_CASELESS)
		opts |= PCRE2_CASELESS;
	code = pcre2_compile((PCRE2_SPTR)pat, len, opts, &ecode, &eoff, NULL);
	if (code == NULL) {
		PCRE2_UCHAR msg[256];

		if (pcre2_get_error_message(ecode, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", ecode);
		if (errlen > 0)
			snprintf(err, errlen, "%s at offset %zu", (char *)msg,
			    (size_t)eoff);
		return -1;
	}
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 16;
		struct rx_pat *np = realloc(s->pats, ncap * sizeof(*np));

		if (np == NULL)
			goto nomem;
		s->pats = np;
		s->cap = ncap;
	}
	if ((src = malloc(len + 1)) == NULL)
		goto nomem;
	memcpy(src, pat, len);
	src[len] = '\0';
	s->pats[s->n++] = (struct rx_pat){ .code = code, .src = src,
	    .srclen = len, .id = id,
	    .nojit = (flags & FILTER_RX_NO_JIT) != 0 };
	return 0;
nomem:
	pcre2_code_free(code);
	rx_err(err, errlen, "out of memory");
	errno = ENOMEM;
	return -1;
}

void
filter_rx_set_limits(struct filter_rx_set *s, uint32_t match_limit,
    uint32_t depth_limit, size_t jit_stack_max)
{
	if (s->built)
		return;
	if (match_limit)
		s->match_limit = match_limit;
	if (depth_limit)
		s->depth_limit = depth_limit;
	if (jit_stack_max)
		s->jit_stack_max = jit_stack_max;
}

void
filter_rx_set_prefilter(struct filter_rx_set *s, bool on)
{
	if (!s->built)
		s->prefilter = on;
}

/*
 * Literal extraction.  The parser walks the pattern text once with
 * recursive descent over alternatives, sequences and groups.  For a
 * sequence it tracks the current run of plain literal bytes; anything
 * that is not one plain byte (a class, '.', an escape like \d, an
 * anchor, a group) ends the run; a quantifier that allows zero copies
 * removes its byte from the run, one that allows several keeps one copy
 * and ends the run.  Every finished run is a required substring; so is
 * the literal set of a group that must occur (not optional, and every
 * alternative of it has a literal).  The sequence keeps the best of
 * these: the set whose shortest literal is longest, then the smaller
 * set.  Alternatives need one literal each.  Anything unknown sets bad,
 * and the pattern gets no literal at all.
 */
struct lx_lit {
	size_t len;
	char b[FILTER_RX_LIT_MAX];
};

struct lx_set {
	size_t n;			/* 0: no literal */
	struct lx_lit l[FILTER_RX_LITS_MAX];
};

struct lx {
	const unsigned char *p;
	size_t i, len;
	bool bad;
};

static size_t
lx_minlen(const struct lx_set *set)
{
	size_t i, m = SIZE_MAX;

	if (set->n == 0)
		return 0;
	for (i = 0; i < set->n; i++)
		if (set->l[i].len < m)
			m = set->l[i].len;
	return m;
}

/* Keep cand in best if it is better (see above). */
static void
lx_offer(struct lx_set *best, const struct lx_set *cand)
{
	size_t cm = lx_minlen(cand), bm = lx_minlen(best);

	if (cand->n == 0 || cm < FILTER_RX_LIT_MIN)
		return;
	if (cm > bm || (cm == bm && cand->n < best->n))
		*best = *cand;
}

/* Offer the current run (only its first LIT_MAX bytes are stored). */
static void
lx_offer_run(struct lx_set *best, const char *run, size_t runlen)
{
	struct lx_set one;

	if (runlen < FILTER_RX_LIT_MIN)
		return;
	one.n = 1;
	one.l[0].len = runlen < FILTER_RX_LIT_MAX ? runlen : FILTER_RX_LIT_MAX;
	memcpy(one.l[0].b, run, one.l[0].len);
	lx_offer(best, &one);
}

static bool
lx_isdigit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
lx_isalnum(unsigned char c)
{
	return lx_isdigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static unsigned char
lx_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/*
 * Parse a quantifier at x->i if there is one: returns -1 for none, else
 * its minimum (0 or 1, capped) after consuming it and a lazy '?' or
 * possessive '+'.  Only the strict forms {n} {n,} {n,m} are known; a
 * '{' in any other shape is left for the caller (which gives up).
 */
static int
lx_quant(struct lx *x)
{
	const unsigned char *p = x->p;
	size_t i = x->i;
	unsigned long min = 0;
	int r;

	if (i >= x->len)
		return -1;
	if (p[i] == '?' || p[i] == '*') {
		r = 0;
		i++;
	} else if (p[i] == '+') {
		r = 1;
		i++;
	} else if (p[i] == '{') {
		size_t j = i + 1, d0 = j;

		while (j < x->len && lx_isdigit(p[j])) {
			if (min < 100000)
				min = min * 10 + (p[j] - '0');
			j++;
		}
		if (j == d0)
			return -1;
		if (j < x->len && p[j] == ',') {
			j++;
			while (j < x->len && lx_isdigit(p[j]))
				j++;
		}
		if (j >= x->len || p[j] != '}')
			return -1;
		i = j + 1;
		r = min > 0 ? 1 : 0;
	} else
		return -1;
	if (i < x->len && (p[i] == '?' || p[i] == '+'))
		i++;
	x->i = i;
	return r;
}

/* Skip a character class starting at '['; false if not understood. */
static bool
lx_class(struct lx *x)
{
	const unsigned char *p = x->p;
	size_t i = x->i + 1;

	if (i < x->len && p[i] == '^')
		i++;
	if (i < x->len && p[i] == ']')	/* a leading ']' is a member */
		i++;
	while (i < x->len) {
		if (p[i] == ']') {
			x->i = i + 1;
			return true;
		}
		if (p[i] == '\\') {
			if (i + 1 >= x->len || p[i + 1] == 'Q' || p[i + 1] == 'E')
				return false;
			i += 2;
			continue;
		}
		if (p[i] == '[' && i + 1 < x->len && (p[i + 1] == ':' ||
		    p[i + 1] == '.' || p[i + 1] == '=')) {
			const unsigned char *e;

			if (p[i + 1] != ':')
				return false;
			e = memmem(p + i + 2, x->len - i - 2, ":]", 2);
			if (e == NULL)
				return false;
			i = (size_t)(e - p) + 2;
			continue;
		}
		i++;
	}
	return false;
}

static void lx_alts(struct lx *x, int depth, struct lx_set *out);

/*
 * A group at '(': parse its body and offer its literals to best unless
 * it is optional or a look-around.  Returns false if not understood.
 */
static bool
lx_group(struct lx *x, int depth, struct lx_set *best)
{
	const unsigned char *p = x->p;
	size_t i = x->i + 1;
	bool take = true;
	struct lx_set g;

	if (depth > 50)
		return false;
	if (i < x->len && p[i] == '*')
		return false;		/* (*VERB), (*UTF) ... */
	if (i < x->len && p[i] == '?') {
		unsigned char c = i + 1 < x->len ? p[i + 1] : 0;
		unsigned char c2 = i + 2 < x->len ? p[i + 2] : 0;

		if (c == ':') {
			i += 2;
		} else if (c == '=' || c == '!') {
			take = false;	/* look-ahead: skip over it */
			i += 2;
		} else if (c == '<' && (c2 == '=' || c2 == '!')) {
			take = false;	/* look-behind */
			i += 3;
		} else if (c == '<' || c == '\'' || (c == 'P' && c2 == '<')) {
			unsigned char close = c == '\'' ? '\'' : '>';

			/* Named capture: skip the name (word chars only). */
			i += c == 'P' ? 3 : 2;
			while (i < x->len && (lx_isalnum(p[i]) || p[i] == '_'))
				i++;
			if (i >= x->len || p[i] != close)
				return false;
			i++;
		} else
			return false;	/* options, comments, conditions ... */
	}
	x->i = i;
	lx_alts(x, depth + 1, &g);
	if (x->bad || x->i >= x->len || p[x->i] != ')')
		return false;
	x->i++;
	if (lx_quant(x) == 0)
		take = false;		/* optional group */
	if (take)
		lx_offer(best, &g);
	return true;
}

/* One alternative: a sequence up to '|', ')' or the end. */
static void
lx_seq(struct lx *x, int depth, struct lx_set *best)
{
	const unsigned char *p = x->p;
	char run[FILTER_RX_LIT_MAX];
	size_t runlen = 0;
	int q;

	best->n = 0;
	while (x->i < x->len && !x->bad) {
		unsigned char c = p[x->i];

		if (c == '|' || c == ')')
			break;
		if (c == '(') {
			lx_offer_run(best, run, runlen);
			runlen = 0;
			if (!lx_group(x, depth, best))
				x->bad = true;
			continue;
		}
		if (c == '?' || c == '*' || c == '+' || c == '{' || c == '\0') {
			/* A quantifier we did not attribute, or a brace
			 * that is not a plain quantifier: give up. */
			x->bad = true;
			break;
		}
		if (c == '[' || c == '.' || c == '^' || c == '$' || c == '\\') {
			bool lit = false;

			if (c == '[') {
				if (!lx_class(x)) {
					x->bad = true;
					break;
				}
			} else if (c == '\\') {
				unsigned char d;

				if (x->i + 1 >= x->len) {
					x->bad = true;
					break;
				}
				d = p[x->i + 1];
				if (d != '\0' && !lx_isalnum(d) && d < 0x80) {
					c = d;	/* escaped punctuation */
					lit = true;
				} else if (d == '\0' ||
				    strchr("dDwWsShHvVRXCntrfeabBAzZGK",
				    d) == NULL) {
					/* \Q \E \x \o \c \g \k \p \N,
					 * back-references ...: unsure */
					x->bad = true;
					break;
				}
				x->i += 2;
			} else
				x->i++;
			if (!lit) {
				/* One non-literal atom: ends the run. */
				lx_offer_run(best, run, runlen);
				runlen = 0;
				(void)lx_quant(x);
				continue;
			}
		} else
			x->i++;
		/* A plain literal byte c. */
		if (runlen < FILTER_RX_LIT_MAX)
			run[runlen] = (char)lx_lower(c);
		runlen++;
		q = lx_quant(x);
		if (q >= 0) {
			if (q == 0)
				runlen--;	/* zero copies allowed */
			lx_offer_run(best, run, runlen);
			runlen = 0;
		}
	}
	lx_offer_run(best, run, runlen);
}

/* Alternatives up to ')' or the end: one literal set per alternative. */
static void
lx_alts(struct lx *x, int depth, struct lx_set *out)
{
	struct lx_set a;
	bool none = false;
	size_t k;

	out->n = 0;
	for (;;) {
		lx_seq(x, depth, &a);
		if (x->bad)
			break;
		if (a.n == 0 || out->n + a.n > FILTER_RX_LITS_MAX)
			none = true;
		else if (!none) {
			for (k = 0; k < a.n; k++)
				out->l[out->n++] = a.l[k];
		}
		if (x->i < x->len && x->p[x->i] == '|') {
			x->i++;
			continue;
		}
		break;
	}
	if (none || x->bad)
		out->n = 0;
}

size_t
filter_rx_literals(const char *pat, size_t len, char *out, size_t outlen)
{
	struct lx x = { .p = (const unsigned char *)pat, .len = len };
	struct lx_set set;
	size_t k, used = 0;

	/* A leading (?i) is harmless: literals are folded anyway. */
	if (len >= 4 && memcmp(pat, "(?i)", 4) == 0)
		x.i = 4;
	lx_alts(&x, 0, &set);
	if (x.bad || x.i != len)	/* stray ')' or unknown syntax */
		return 0;
	for (k = 0; k < set.n; k++) {
		if (used + set.l[k].len + 1 > outlen)
			return 0;
		memcpy(out + used, set.l[k].b, set.l[k].len);
		used += set.l[k].len;
		out[used++] = '\0';
	}
	return set.n;
}

/*
 * The automaton.  States are numbered in trie insertion order, 0 the
 * root; delta is dense over byte classes (only bytes that occur in some
 * literal get a class of their own, the rest share class 0), which
 * keeps 5,000 literals in about a megabyte.  dict[] links each state to
 * the nearest proper suffix state that ends a literal, so every literal
 * ending at a position is found.
 */
static int
rx_build_ac(struct filter_rx_set *s, char **lits, size_t *nlit)
{
	size_t i, k, total = 1, st, ns;
	uint32_t *fail = NULL, *queue = NULL, *cnt = NULL;
	uint8_t used[256] = { 0 };
	size_t qh, qt;

	/* Classes: every byte value found in a literal. */
	for (i = 0; i < s->n; i++) {
		const char *l = lits[i];

		for (k = 0; k < nlit[i]; k++) {
			size_t ll = strlen(l);

			total += ll;
			while (*l)
				used[(unsigned char)*l++] = 1;
			l++;
		}
	}
	s->ncls = 1;
	for (i = 0; i < 256; i++)
		if (used[i])
			used[i] = (uint8_t)s->ncls++;
	for (i = 0; i < 256; i++)
		s->cls[i] = used[lx_lower((unsigned char)i)];

	s->delta = calloc(total * s->ncls, sizeof(uint32_t));
	s->dict = calloc(total, sizeof(uint32_t));
	s->out_off = calloc(total + 1, sizeof(uint32_t));
	s->seen = calloc(total, 1);
	s->touched = calloc(total, sizeof(uint32_t));
	fail = calloc(total, sizeof(uint32_t));
	queue = calloc(total, sizeof(uint32_t));
	cnt = calloc(total, sizeof(uint32_t));
	if (!s->delta || !s->dict || !s->out_off || !s->seen || !s->touched ||
	    !fail || !queue || !cnt)
		goto nomem;

	/* Trie: a 0 transition from a non-root state means "none yet". */
	ns = 1;
	for (i = 0; i < s->n; i++) {
		const char *l = lits[i];

		for (k = 0; k < nlit[i]; k++) {
			for (st = 0; *l; l++) {
				uint32_t *t = &s->delta[st * s->ncls +
				    s->cls[(unsigned char)*l]];

				if (*t == 0)
					*t = (uint32_t)ns++;
				st = *t;
			}
			l++;
			cnt[st]++;
			s->nout++;
		}
	}
	s->nstates = ns;
	s->out = calloc(s->nout ? s->nout : 1, sizeof(uint32_t));
	if (s->out == NULL)
		goto nomem;
	for (st = 0; st < ns; st++)
		s->out_off[st + 1] = s->out_off[st] + cnt[st];
	memset(cnt, 0, total * sizeof(uint32_t));
	for (i = 0; i < s->n; i++) {
		const char *l = lits[i];

		for (k = 0; k < nlit[i]; k++) {
			for (st = 0; *l; l++)
				st = s->delta[st * s->ncls +
				    s->cls[(unsigned char)*l]];
			l++;
			/* Literals of one pattern may share a state; the
			 * bitmap makes the duplicate harmless. */
			s->out[s->out_off[st] + cnt[st]++] = (uint32_t)i;
		}
	}

	/* BFS: failure links, dictionary links, and complete delta. */
	qh = qt = 0;
	for (k = 0; k < s->ncls; k++)
		if (s->delta[k] != 0)
			queue[qt++] = s->delta[k];	/* fail = root */
	while (qh < qt) {
		uint32_t u = queue[qh++];
		uint32_t f = fail[u];

		s->dict[u] = s->out_off[f + 1] > s->out_off[f] ? f : s->dict[f];
		for (k = 0; k < s->ncls; k++) {
			uint32_t *t = &s->delta[u * s->ncls + k];
			uint32_t via = s->delta[f * s->ncls + k];

			if (*t != 0) {
				fail[*t] = via;
				queue[qt++] = *t;
			} else
				*t = via;
		}
	}
	free(fail);
	free(queue);
	free(cnt);
	return 0;
nomem:
	free(fail);
	free(queue);
	free(cnt);
	return -1;
}

int
filter_rx_build(struct filter_rx_set *s)
{
	char **lits = NULL;
	size_t *nlit = NULL;
	size_t i;
	int rc = -1;

	if (s->built)
		return -1;
	s->nwords = (s->n + 63) / 64;
	if (s->nwords == 0)
		s->nwords = 1;
	s->always = calloc(s->nwords, sizeof(uint64_t));
	s->cand = calloc(s->nwords, sizeof(uint64_t));
	s->logged = calloc(s->n ? s->n : 1, 1);
	lits = calloc(s->n ? s->n : 1, sizeof(char *));
	nlit = calloc(s->n ? s->n : 1, sizeof(size_t));
	s->mctx = pcre2_match_context_create(NULL);
	s->md = pcre2_match_data_create(1, NULL);
	s->jstack = pcre2_jit_stack_create(FILTER_RX_JIT_STACK_MIN <
	    s->jit_stack_max ? FILTER_RX_JIT_STACK_MIN : s->jit_stack_max,
	    s->jit_stack_max, NULL);
	if (!s->always || !s->cand || !s->logged || !lits || !nlit ||
	    !s->mctx || !s->md)
		goto out;
	pcre2_set_match_limit(s->mctx, s->match_limit);
	pcre2_set_depth_limit(s->mctx, s->depth_limit);
	/* Without a stack of our own the JIT would use 32 KiB on the
	 * machine stack; a NULL jstack (no JIT support) is fine too. */
	if (s->jstack != NULL)
		pcre2_jit_stack_assign(s->mctx, NULL, s->jstack);

	for (i = 0; i < s->n; i++) {
		char buf[FILTER_RX_LITS_MAX * (FILTER_RX_LIT_MAX + 1)];

		if (!s->pats[i].nojit)
			s->pats[i].jit = pcre2_jit_compile(s->pats[i].code,
			    PCRE2_JIT_COMPLETE) == 0;
		/* PCRE2_CASELESS only widens what a pattern matches, and
		 * the literals and the scan are case-folded anyway. */
		if (s->prefilter)
			nlit[i] = filter_rx_literals(s->pats[i].src,
			    s->pats[i].srclen, buf, sizeof(buf));
		if (nlit[i] == 0) {
			s->always[i / 64] |= UINT64_C(1) << (i % 64);
			s->nalways++;
			continue;
		}
		{
			size_t k, l = 0;

			for (k = 0; k < nlit[i]; k++)
				l += strlen(buf + l) + 1;
			if ((lits[i] = malloc(l)) == NULL)
				goto out;
			memcpy(lits[i], buf, l);
		}
	}
	if (rx_build_ac(s, lits, nlit) < 0)
		goto out;
	s->built = true;
	rc = 0;
out:
	for (i = 0; i < s->n; i++)
		free(lits[i]);
	free(lits);
	free(nlit);
	if (rc < 0) {
		/* Back to the unbuilt state; the patterns stay. */
		free(s->always); free(s->cand); free(s->logged);
		free(s->delta); free(s->dict); free(s->out_off); free(s->out);
		free(s->seen); free(s->touched);
		pcre2_match_context_free(s->mctx);
		pcre2_match_data_free(s->md);
		pcre2_jit_stack_free(s->jstack);
		s->always = s->cand = NULL;
		s->logged = s->seen = NULL;
		s->delta = s->dict = s->out_off = s->out = s->touched = NULL;
		s->mctx = NULL; s->md = NULL; s->jstack = NULL;
		s->nalways = s->nout = s->nstates = 0;
		errno = ENOMEM;
	}
	return rc;
}

/* Scan subj once and OR the patterns of every literal found into cand. */
static void
rx_scan(const struct filter_rx_set *s, const unsigned char *subj,
    size_t len)
{
	const uint32_t *delta = s->delta;
	size_t ncls = s->ncls, ntouched = 0, i;
	uint32_t st = 0;

	for (i = 0; i < len; i++) {
		uint32_t t;

		st = delta[st * ncls + s->cls[subj[i]]];
		/* Most states end no literal: one test each. */
		for (t = (s->out_off[st + 1] > s->out_off[st]) ? st :
		    s->dict[st]; t != 0 && !s->seen[t]; t = s->dict[t]) {
			uint32_t k;

			s->seen[t] = 1;
			s->touched[ntouched++] = t;
			for (k = s->out_off[t]; k < s->out_off[t + 1]; k++)
				s->cand[s->out[k] / 64] |=
				    UINT64_C(1) << (s->out[k] % 64);
		}
	}
	/* A seen state's dict chain was taken whole, so stopping at a
	 * seen state above loses nothing. */
	for (i = 0; i < ntouched; i++)
		s->seen[s->touched[i]] = 0;
}

int
filter_rx_match(const struct filter_rx_set *s, const char *subj,
    size_t len, size_t *which)
{
	size_t w, limit_at = SIZE_MAX;

	if (!s->built || s->n == 0)
		return FILTER_RX_NOMATCH;
	if (subj == NULL)
		subj = "";		/* PCRE2 10.42 rejects NULL even at 0 */
	memcpy(s->cand, s->always, s->nwords * sizeof(uint64_t));
	if (s->nout > 0)
		rx_scan(s, (const unsigned char *)subj, len);
	for (w = 0; w < s->nwords; w++) {
		uint64_t bits = s->cand[w];

		while (bits) {
			size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
			const struct rx_pat *p = &s->pats[i];
			int rc;

			bits &= bits - 1;
			if (p->jit)
				rc = pcre2_jit_match(p->code, (PCRE2_SPTR)subj,
				    len, 0, 0, s->md, s->mctx);
			else
				rc = pcre2_match(p->code, (PCRE2_SPTR)subj,
				    len, 0, 0, s->md, s->mctx);
			if (rc >= 0) {
				*which = i;
				return FILTER_RX_MATCH;
			}
			/* Limits and any other failure: unknown answer. */
			if (rc != PCRE2_ERROR_NOMATCH && limit_at == SIZE_MAX)
				limit_at = i;
		}
	}
	if (limit_at != SIZE_MAX) {
		*which = limit_at;
		return FILTER_RX_LIMIT;
	}
	return FILTER_RX_NOMATCH;
}

size_t
filter_rx_count(const struct filter_rx_set *s)
{
	return s->n;
}

size_t
filter_rx_jit_count(const struct filter_rx_set *s)
{
	size_t i, n = 0;

	for (i = 0; i < s->n; i++)
		n += s->pats[i].jit;
	return n;
}

size_t
filter_rx_always_count(const struct filter_rx_set *s)
{
	return s->nalways;
}

uint32_t
filter_rx_id(const struct filter_rx_set *s, size_t which)
{
	return which < s->n ? s->pats[which].id : 0;
}

const char *
filter_rx_pattern(const struct filter_rx_set *s, size_t which)
{
	return which < s->n ? s->pats[which].src : NULL;
}

bool
filter_rx_first_limit(const struct filter_rx_set *s, size_t which)
{
	if (!s->built || which >= s->n || s->logged[which])
		return false;
	s->logged[which] = 1;
	return true;
}

size_t
filter_rx_bytes(const struct filter_rx_set *s)
{
	size_t b = sizeof(*s) + s->cap * sizeof(struct rx_pat), i;

	for (i = 0; i < s->n; i++) {
		size_t sz = 0;

		b += s->pats[i].srclen + 1;
		if (pcre2_pattern_info(s->pats[i].code, PCRE2_INFO_SIZE,
		    &sz) == 0)
			b += sz;
		sz = 0;
		if (s->pats[i].jit && pcre2_pattern_info(s->pats[i].code,
		    PCRE2_INFO_JITSIZE, &sz) == 0)
			b += sz;
	}
	if (s->built) {
		b += 3 * s->nwords * sizeof(uint64_t) + s->n;
		b += s->nstates * s->ncls * sizeof(uint32_t);
		b += s->nstates * (2 * sizeof(uint32_t) + 1 +
		    sizeof(uint32_t)) + sizeof(uint32_t);
		b += s->nout * sizeof(uint32_t);
		b += s->jit_stack_max;	/* worst case; starts smaller */
	}
	return b;
}

void
filter_rx_free(struct filter_rx_set *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++) {
		pcre2_code_free(s->pats[i].code);
		free(s->pats[i].src);
	}
	free(s->pats);
	free(s->always);
	free(s->cand);
	free(s->logged);
	free(s->delta);
	free(s->dict);
	free(s->out_off);
	free(s->out);
	free(s->seen);
	free(s->touched);
	pcre2_match_context_free(s->mctx);
	pcre2_match_data_free(s->md);
	pcre2_jit_stack_free(s->jstack);
	free(s);
}
