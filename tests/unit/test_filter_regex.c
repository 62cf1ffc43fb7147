/*
 * test_filter_regex.c - unit tests for conf/filter_regex.c.
 *
 * Compile errors with PCRE2's text and offset, case folding, first
 * match in add order, limit hits that are reported once and do not
 * stop later patterns, bounded time on catastrophic patterns (JIT and
 * interpreter), the literal extraction on hand-written cases, and the
 * property the prefilter rests on: over thousands of generated patterns
 * every subject a pattern matches contains one of its literals, and a
 * set answers the same with the prefilter on and off.  Last, the issue
 * 4 benchmark: 5,000 blocklist-like expressions against 10,000 URLs
 * (the bound asserted is loose for sanitizer builds; the figure printed
 * as a TAP comment is the one that matters).
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "conf/filter_regex.h"

#define SUBJ_BIG	65536

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: reproducible randomness without libc's rand() state. */
static uint64_t
rng(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * UINT64_C(2685821657736338717);
}

static size_t
rnd(uint64_t *st, size_t n)
{
	return (size_t)(rng(st) % n);
}

static int
add(struct filter_rx_set *s, const char *pat, uint32_t id, unsigned flags)
{
	char err[256];

	return filter_rx_add(s, pat, strlen(pat), id, flags, err, sizeof(err));
}

/* A built set of the NULL-terminated patterns, ids 100, 101, ... */
static struct filter_rx_set *
build_set(const char *const *pats, unsigned flags, bool prefilter)
{
	struct filter_rx_set *s = filter_rx_new();
	uint32_t id = 100;

	assert_non_null(s);
	filter_rx_set_prefilter(s, prefilter);
	for (; *pats != NULL; pats++)
		assert_int_equal(add(s, *pats, id++, flags), 0);
	assert_int_equal(filter_rx_build(s), 0);
	return s;
}

static int
match(const struct filter_rx_set *s, const char *subj, size_t *which)
{
	*which = SIZE_MAX;
	return filter_rx_match(s, subj, strlen(subj), which);
}

static void
compile_errors(void **state)
{
	static const struct {
		const char *pat, *msg;
	} cases[] = {
		{ "ab(cd", "missing closing parenthesis at offset 5" },
		{ "a)", "unmatched closing parenthesis at offset 1" },
		{ "[a", "missing terminating ] for character class at offset 2" },
		{ "*a", "quantifier does not follow a repeatable item at offset 0" },
		{ "a{2,1}", "numbers out of order in {} quantifier at offset 5" },
		{ "x\\", "\\ at end of pattern at offset 2" },
		/* URLs are bytes: UTF mode is refused. */
		{ "(*UTF)x", "using UTF is disabled by the application at offset 6" },
	};
	struct filter_rx_set *s = filter_rx_new();
	char err[256], tiny[8];
	size_t i;

	(void)state;
	assert_non_null(s);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(err, 0, sizeof(err));
		assert_int_equal(filter_rx_add(s, cases[i].pat,
		    strlen(cases[i].pat), 1, 0, err, sizeof(err)), -1);
		assert_string_equal(err, cases[i].msg);
	}
	/* A short buffer is truncated, still NUL-terminated. */
	assert_int_equal(filter_rx_add(s, "(", 1, 1, 0, tiny, sizeof(tiny)),
	    -1);
	assert_string_equal(tiny, "missing");
	/* Failed adds leave nothing behind. */
	assert_int_equal(filter_rx_count(s), 0);
	assert_int_equal(add(s, "ok", 7, 0), 0);
	assert_int_equal(filter_rx_count(s), 1);
	assert_int_equal(filter_rx_build(s), 0);
	/* Frozen. */
	assert_int_equal(filter_rx_add(s, "late", 4, 8, 0, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "set already built");
	assert_int_equal(filter_rx_build(s), -1);
	assert_int_equal(filter_rx_count(s), 1);
	filter_rx_free(s);
}

static void
caseless(void **state)
{
	const char *plain[] = { "casino", NULL };
	const char *inl[] = { "(?i)CaSiNo", NULL };
	struct filter_rx_set *s;
	size_t w;
	int pf;

	(void)state;
	for (pf = 0; pf < 2; pf++) {
		s = build_set(plain, 0, pf);
		assert_int_equal(match(s, "http://casino.test/", &w),
		    FILTER_RX_MATCH);
		assert_int_equal(match(s, "http://CASINO.test/", &w),
		    FILTER_RX_NOMATCH);
		filter_rx_free(s);

		s = build_set(plain, FILTER_RX_CASELESS, pf);
		assert_int_equal(match(s, "http://CASINO.test/", &w),
		    FILTER_RX_MATCH);
		assert_int_equal(match(s, "http://cAsInO.test/", &w),
		    FILTER_RX_MATCH);
		assert_int_equal(match(s, "http://casin0.test/", &w),
		    FILTER_RX_NOMATCH);
		filter_rx_free(s);

		s = build_set(inl, 0, pf);
		assert_int_equal(match(s, "http://www.CASINO.test/", &w),
		    FILTER_RX_MATCH);
		assert_int_equal(match(s, "http://www.casino.test/", &w),
		    FILTER_RX_MATCH);
		assert_int_equal(w, 0);
		filter_rx_free(s);

		/* Only ASCII folds (PCRE2's C-locale tables, no UTF): a
		 * byte >= 0x80 must match exactly, with or without the
		 * prefilter. */
		s = filter_rx_new();
		assert_non_null(s);
		filter_rx_set_prefilter(s, pf);
		assert_int_equal(filter_rx_add(s, "caf\xc9x", 5, 1,
		    FILTER_RX_CASELESS, NULL, 0), 0);
		assert_int_equal(filter_rx_build(s), 0);
		assert_int_equal(filter_rx_match(s, "/CAF\xc9X", 6, &w),
		    FILTER_RX_MATCH);
		assert_int_equal(filter_rx_match(s, "/CAF\xe9X", 6, &w),
		    FILTER_RX_NOMATCH);
		filter_rx_free(s);
	}
}

static void
first_match_order(void **state)
{
	/* Index 1 has no literal (always tried), the others do: the
	 * answer must still be the first in add order. */
	const char *pats[] = { "example\\.org", "\\d{3}", "ample", "exam",
	    "x", NULL };
	struct filter_rx_set *s;
	size_t w;
	int pf;

	(void)state;
	for (pf = 0; pf < 2; pf++) {
		s = build_set(pats, 0, pf);
		assert_int_equal(filter_rx_count(s), 5);
		assert_int_equal(match(s, "http://example.org/123", &w),
		    FILTER_RX_MATCH);
		assert_int_equal(w, 0);
		assert_int_equal(filter_rx_id(s, w), 100);
		assert_int_equal(match(s, "http://example.com/123", &w),
		    FILTER_RX_MATCH);
		assert_int_equal(w, 1);
		assert_int_equal(match(s, "http://example.com/", &w),
		    FILTER_RX_MATCH);
		assert_int_equal(w, 2);
		assert_string_equal(filter_rx_pattern(s, w), "ample");
		assert_int_equal(filter_rx_id(s, w), 102);
		assert_int_equal(match(s, "http://exam.com/", &w),
		    FILTER_RX_MATCH);
		assert_int_equal(w, 3);
		assert_int_equal(match(s, "http://a.x/", &w), FILTER_RX_MATCH);
		assert_int_equal(w, 4);
		assert_int_equal(match(s, "http://a.b/", &w),
		    FILTER_RX_NOMATCH);
		assert_int_equal(w, SIZE_MAX);	/* untouched */
		assert_null(filter_rx_pattern(s, 5));
		assert_int_equal(filter_rx_id(s, 5), 0);
		assert_int_equal(filter_rx_always_count(s), pf ? 2 : 5);
		filter_rx_free(s);
	}
}

static char *
big_subject(void)
{
	char *b = malloc(SUBJ_BIG);

	assert_non_null(b);
	memset(b, 'a', SUBJ_BIG);
	b[SUBJ_BIG - 1] = '!';
	return b;
}

static void
limit_then_continue(void **state)
{
	char *big = big_subject();
	struct filter_rx_set *s;
	size_t w;
	unsigned fl;

	(void)state;
	for (fl = 0; fl <= FILTER_RX_NO_JIT; fl += FILTER_RX_NO_JIT) {
		/* Catastrophic first, a plain match second. */
		s = filter_rx_new();
		assert_non_null(s);
		assert_int_equal(add(s, "zzz", 1, fl), 0);
		assert_int_equal(add(s, "(a+)+$", 2, fl), 0);
		assert_int_equal(add(s, "(a|aa)+$", 3, fl), 0);
		assert_int_equal(add(s, "aaaa", 4, fl), 0);
		assert_int_equal(filter_rx_build(s), 0);
		assert_int_equal(filter_rx_jit_count(s), fl ? 0 : 4);
		w = 99;
		assert_int_equal(filter_rx_match(s, big, SUBJ_BIG, &w),
		    FILTER_RX_MATCH);
		assert_int_equal(w, 3);
		filter_rx_free(s);

		/* Nothing else matches: LIMIT names the first one. */
		s = filter_rx_new();
		assert_non_null(s);
		assert_int_equal(add(s, "zzz", 1, fl), 0);
		assert_int_equal(add(s, "(a+)+$", 2, fl), 0);
		assert_int_equal(add(s, "(a|aa)+$", 3, fl), 0);
		assert_int_equal(add(s, "bbbb", 4, fl), 0);
		assert_int_equal(filter_rx_build(s), 0);
		assert_int_equal(filter_rx_match(s, big, SUBJ_BIG, &w),
		    FILTER_RX_LIMIT);
		assert_int_equal(w, 1);
		assert_int_equal(filter_rx_id(s, w), 2);
		/* Once per pattern, independently per index. */
		assert_true(filter_rx_first_limit(s, 1));
		assert_false(filter_rx_first_limit(s, 1));
		assert_int_equal(filter_rx_match(s, big, SUBJ_BIG, &w),
		    FILTER_RX_LIMIT);
		assert_false(filter_rx_first_limit(s, 1));
		assert_true(filter_rx_first_limit(s, 2));
		assert_false(filter_rx_first_limit(s, 2));
		assert_false(filter_rx_first_limit(s, 4));	/* range */
		assert_true(filter_rx_first_limit(s, 3));
		/* A short subject is decided normally. */
		assert_int_equal(match(s, "aaab", &w), FILTER_RX_NOMATCH);
		assert_int_equal(match(s, "aaa", &w), FILTER_RX_MATCH);
		assert_int_equal(w, 1);
		filter_rx_free(s);
	}
	free(big);
}

static void
limits_bound_time(void **state)
{
	static const char *const pats[] = {
		"(a+)+$", "(a|aa)+$", "(.*a){20}", "^(\\w+\\s?)*$",
		"(a*)*b", "(?:a+a+)+!x", "(a|a?)+$",
	};
	char *big = big_subject();
	size_t i, w;
	unsigned fl;

	(void)state;
	for (fl = 0; fl <= FILTER_RX_NO_JIT; fl += FILTER_RX_NO_JIT) {
		for (i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
			struct filter_rx_set *s = filter_rx_new();
			double t0, dt;
			int rc;

			assert_non_null(s);
			assert_int_equal(add(s, pats[i], 1, fl), 0);
			assert_int_equal(filter_rx_build(s), 0);
			t0 = now_s();
			rc = filter_rx_match(s, big, SUBJ_BIG, &w);
			dt = now_s() - t0;
			print_message("# %-14s %s: rc %d in %.2f ms\n",
			    pats[i], fl ? "interp" : "jit   ", rc, dt * 1e3);
			/* None of these can match "aaa...!". */
			assert_int_not_equal(rc, FILTER_RX_MATCH);
			assert_true(dt < 0.2);
			filter_rx_free(s);
		}
	}
	/* A lower match limit turns a moderate pattern into a limit hit. */
	{
		const char *p[] = { "(?:a|b)*(?:c|d)", NULL };
		struct filter_rx_set *s;

		for (fl = 0; fl <= FILTER_RX_NO_JIT; fl += FILTER_RX_NO_JIT) {
			s = filter_rx_new();
			assert_non_null(s);
			assert_int_equal(add(s, p[0], 1, fl), 0);
			filter_rx_set_limits(s, 50, 0, 0);
			assert_int_equal(filter_rx_build(s), 0);
			assert_int_equal(filter_rx_match(s, big, 1000, &w),
			    FILTER_RX_LIMIT);
			filter_rx_free(s);
			s = build_set(p, fl, true);
			assert_int_equal(filter_rx_match(s, big, 1000, &w),
			    FILTER_RX_NOMATCH);
			filter_rx_free(s);
		}
	}
	free(big);
}

static void
empty_set(void **state)
{
	struct filter_rx_set *s = filter_rx_new();
	size_t w = 7;

	(void)state;
	assert_non_null(s);
	/* Unbuilt: nothing matches. */
	assert_int_equal(add(s, "a", 1, 0), 0);
	assert_int_equal(match(s, "a", &w), FILTER_RX_NOMATCH);
	assert_false(filter_rx_first_limit(s, 0));
	filter_rx_free(s);

	s = filter_rx_new();
	assert_int_equal(filter_rx_build(s), 0);
	assert_int_equal(filter_rx_count(s), 0);
	assert_int_equal(match(s, "anything", &w), FILTER_RX_NOMATCH);
	w = 7;
	assert_int_equal(filter_rx_match(s, NULL, 0, &w), FILTER_RX_NOMATCH);
	assert_int_equal(w, 7);
	assert_true(filter_rx_bytes(s) > 0);
	filter_rx_free(s);
	filter_rx_free(NULL);

	/* Empty subject, and a pattern that matches it. */
	{
		const char *p[] = { "^$", NULL };

		s = build_set(p, 0, true);
		assert_int_equal(filter_rx_match(s, NULL, 0, &w),
		    FILTER_RX_MATCH);
		assert_int_equal(match(s, "x", &w), FILTER_RX_NOMATCH);
		filter_rx_free(s);
	}
}

static void
pattern_with_nul(void **state)
{
	/* Patterns are (pointer, length): a NUL byte is a literal byte,
	 * and the prefilter must not cut the pattern at it. */
	static const char pat[] = "abc\0|xyz";
	struct filter_rx_set *s;
	size_t w;
	int pf;

	(void)state;
	for (pf = 0; pf < 2; pf++) {
		s = filter_rx_new();
		assert_non_null(s);
		filter_rx_set_prefilter(s, pf);
		assert_int_equal(filter_rx_add(s, pat, sizeof(pat) - 1, 5, 0,
		    NULL, 0), 0);
		assert_int_equal(filter_rx_build(s), 0);
		assert_int_equal(filter_rx_match(s, "..xyz", 5, &w),
		    FILTER_RX_MATCH);
		assert_int_equal(filter_rx_match(s, "abc\0", 4, &w),
		    FILTER_RX_MATCH);
		assert_int_equal(filter_rx_match(s, "abcd", 4, &w),
		    FILTER_RX_NOMATCH);
		filter_rx_free(s);
	}
}

/* The literals of pat joined with '|', or "" for none. */
static const char *
lits_of(const char *pat, char *buf)
{
	char out[FILTER_RX_LITS_MAX * (FILTER_RX_LIT_MAX + 1)];
	size_t n = filter_rx_literals(pat, strlen(pat), out, sizeof(out));
	size_t k, o = 0, b = 0;

	buf[0] = '\0';
	for (k = 0; k < n; k++) {
		size_t l = strlen(out + o);

		if (k > 0)
			buf[b++] = '|';
		memcpy(buf + b, out + o, l);
		b += l;
		o += l + 1;
	}
	buf[b] = '\0';
	return buf;
}

static void
literal_extraction(void **state)
{
	static const struct {
		const char *pat, *lits;
	} cases[] = {
		{ "porn", "porn" },
		{ "PoRn", "porn" },
		{ "(?i)free.?bet", "free" },
		{ "(^|[-.])casino[0-9]*\\.", "casino" },
		{ "\\bxxx\\b", "xxx" },
		{ "sex.*(video|cam)", "sex" },
		{ "sex.*(videos|cams)", "videos|cams" },
		{ "/proxy/", "/proxy/" },
		{ "www\\.example\\.com", "www.example.com" },
		/* Optional atoms leave the run; + keeps one copy. */
		{ "abcd?ef", "abc" },
		{ "abc*def", "def" },
		{ "ab+cdef", "cdef" },
		{ "x{0}abcd", "abcd" },
		{ "abcd{0,3}", "abc" },
		{ "abcd{2}", "abcd" },
		{ "abcd+?e", "abcd" },
		/* Alternatives need a literal each. */
		{ "foo|barx", "foo|barx" },
		{ "foo|ba", "" },
		{ "foo|b(ar)?", "" },
		{ "(casino|poker)s?\\.", "casino|poker" },
		{ "(?:casino|poker)+", "casino|poker" },
		{ "(casino|poker)?x", "" },
		{ "(casino|poker)*abc", "abc" },
		{ "ab(cdef)gh", "cdef" },
		{ "(?<n>betting)x", "betting" },
		{ "(?P<n>betting)x", "betting" },
		{ "(?'n'betting)x", "betting" },
		/* Look-arounds are skipped, not used. */
		{ "(?=abcd)ab", "" },
		{ "(?!porn)abc", "abc" },
		{ "abc(?<!xyz)", "abc" },
		/* Classes and escapes break runs. */
		{ "ab[cd]ef", "" },
		{ "abc[]x]def", "abc" },
		{ "a[[:alpha:]]bcde", "bcde" },
		{ "abc\\d+defg", "defg" },
		{ "abc\\.\\-\\/", "abc.-/" },
		{ "ab.cd", "" },
		{ "^abc$", "abc" },
		{ "abc}d", "abc}d" },
		{ "a]bc", "a]bc" },
		/* Runs are capped, not dropped. */
		{ "abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrstuvwxyz012345" },
		{ "abcdefghijklmnopqrstuvwxyz0123456789?", "abcdefghijklmnopqrstuvwxyz012345" },
		/* Things the parser does not trust: no literal at all. */
		{ "(?x)a b c d", "" },
		{ "(?s)abcd", "" },
		{ "abc(?i)def", "" },
		{ "\\Qa.b\\Eabcd", "" },
		{ "\\x41bcde", "" },
		{ "(abc)\\1", "" },
		{ "\\k<n>abcd", "" },
		{ "(*UCP)abcd", "" },
		{ "(?>abcd)", "" },
		{ "(?#c)abcd", "" },
		{ "(?(1)abc|def)", "" },
		{ "abc{,3}d", "" },
		{ "abc{x}", "" },
		{ "\\pLabcd", "" },
		{ "[\\Q]\\E]abcd", "" },
		{ "a|b|c|d|e|f|g|h|i", "" },
		{ "ab", "" },
	};
	char buf[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = lits_of(cases[i].pat, buf);

		if (strcmp(got, cases[i].lits) != 0)
			print_message("# %s: got \"%s\" want \"%s\"\n",
			    cases[i].pat, got, cases[i].lits);
		assert_string_equal(got, cases[i].lits);
	}
	/* Too small an output buffer means "no literal", never a cut. */
	assert_int_equal(filter_rx_literals("abcdef", 6, buf, 4), 0);
	assert_int_equal(filter_rx_literals("abcdef", 6, buf, 7), 1);
}

/*
 * The pattern generator: builds a random pattern from a small grammar
 * together with a string it is meant to match (meant: \b, look-aheads
 * and anchors are not honoured by the sample, which only makes some
 * samples miss).  Words come from a small vocabulary so literals of
 * different patterns and subjects collide.
 */
struct gen {
	uint64_t rs;
	char pat[512];
	size_t pl;
	char smp[1024];
	size_t sl;
	bool caseless;
	bool full;
};

static const char *const vocab[] = {
	"casino", "poker", "porn", "bet", "free", "video", "cam", "xxx",
	"proxy", "sex", "game", "chat", "abc", "aab", "abab", "www",
};

static void
gp(struct gen *g, const char *s)
{
	size_t l = strlen(s);

	if (g->pl + l >= sizeof(g->pat)) {
		g->full = true;
		return;
	}
	memcpy(g->pat + g->pl, s, l + 1);
	g->pl += l;
}

static void
gs(struct gen *g, char c)
{
	if (g->sl + 1 >= sizeof(g->smp)) {
		g->full = true;
		return;
	}
	g->smp[g->sl++] = c;
	g->smp[g->sl] = '\0';
}

/* Append a quantifier; returns how many copies the sample gets. */
static int
gen_quant(struct gen *g)
{
	static const struct {
		const char *q;
		int lo, hi;
	} qs[] = {
		{ "?", 0, 1 }, { "*", 0, 3 }, { "+", 1, 3 }, { "{0,2}", 0, 2 },
		{ "{2}", 2, 2 }, { "{1,3}", 1, 3 }, { "{0}", 0, 0 },
		{ "{2,}", 2, 4 }, { "??", 0, 1 }, { "+?", 1, 2 }, { "*+", 0, 2 },
	};
	size_t k;

	if (rnd(&g->rs, 3) != 0)
		return 1;
	k = rnd(&g->rs, sizeof(qs) / sizeof(qs[0]));
	gp(g, qs[k].q);
	return qs[k].lo + (int)rnd(&g->rs, (size_t)(qs[k].hi - qs[k].lo + 1));
}

static void gen_alts(struct gen *g, int depth);

static void
gen_atom(struct gen *g, int depth)
{
	size_t k = rnd(&g->rs, depth < 2 ? 12 : 10), mark;
	int n, j;
	char c, lit[3] = { 0 };

	switch (k) {
	case 0: case 1: case 2: {	/* a word */
		const char *w = vocab[rnd(&g->rs, sizeof(vocab) /
		    sizeof(vocab[0]))];

		for (; *w; w++) {
			c = *w;
			if (rnd(&g->rs, 8) == 0)
				c = (char)(c - 32);
			lit[0] = c;
			gp(g, lit);
			gs(g, g->caseless && rnd(&g->rs, 2) ? (char)(c ^ 32) : c);
		}
		return;
	}
	case 3: case 4:		/* one letter, quantified */
		c = (char)('a' + rnd(&g->rs, 4));
		lit[0] = c;
		gp(g, lit);
		n = gen_quant(g);
		for (j = 0; j < n; j++)
			gs(g, c);
		return;
	case 5:			/* escaped punctuation */
		c = ".-/?+*()"[rnd(&g->rs, 8)];
		lit[0] = '\\';
		lit[1] = c;
		gp(g, lit);
		n = gen_quant(g);
		for (j = 0; j < n; j++)
			gs(g, c);
		return;
	case 6: {			/* a class */
		static const struct {
			const char *cl, *members;
		} cls[] = {
			{ "[a-c]", "abc" }, { "[0-9]", "0123456789" },
			{ "[^/]", "abx.1" }, { "[-.]", "-." }, { "[]x]", "]x" },
			{ "[[:alpha:]]", "abcXY" }, { "[\\d.]", "1." },
		};
		size_t ci = rnd(&g->rs, sizeof(cls) / sizeof(cls[0]));

		gp(g, cls[ci].cl);
		n = gen_quant(g);
		for (j = 0; j < n; j++)
			gs(g, cls[ci].members[rnd(&g->rs,
			    strlen(cls[ci].members))]);
		return;
	}
	case 7:			/* any char */
		gp(g, ".");
		n = gen_quant(g);
		for (j = 0; j < n; j++)
			gs(g, "ab./x"[rnd(&g->rs, 5)]);
		return;
	case 8: {			/* an escape class or assertion */
		static const char *const esc[] = { "\\d", "\\w", "\\b", "\\s" };
		static const char smp[] = "7q\0 ";
		size_t e = rnd(&g->rs, 4);

		gp(g, esc[e]);
		if (e == 2)
			return;		/* \b takes no quantifier here */
		n = gen_quant(g);
		for (j = 0; j < n; j++)
			gs(g, smp[e]);
		return;
	}
	case 9:			/* a literal '{' or '}' is rare but legal */
		gp(g, rnd(&g->rs, 2) ? "}" : "]");
		gs(g, g->pat[g->pl - 1]);
		return;
	default: {			/* a group */
		static const char *const open[] = {
			"(", "(?:", "(?=", "(?!z", "(?<n>",
		};
		size_t o = rnd(&g->rs, 5);
		char body[1024];
		size_t bl;

		if (o == 4 && strstr(g->pat, "(?<n>") != NULL)
			o = 0;		/* names must be unique */
		gp(g, open[o]);
		mark = g->sl;
		gen_alts(g, depth + 1);
		gp(g, ")");
		if (o == 2 || o == 3) {
			/* A look-around consumes nothing in the sample
			 * of a look-ahead; keep the sample so the text
			 * that follows may satisfy it. */
			return;
		}
		bl = g->sl - mark;
		memcpy(body, g->smp + mark, bl);
		n = gen_quant(g);
		g->sl = mark;
		g->smp[g->sl] = '\0';
		for (j = 0; j < n; j++) {
			size_t b;

			for (b = 0; b < bl; b++)
				gs(g, body[b]);
		}
		return;
	}
	}
}

static void
gen_seq(struct gen *g, int depth)
{
	size_t n = 1 + rnd(&g->rs, 4), i;

	for (i = 0; i < n && !g->full; i++)
		gen_atom(g, depth);
}

static void
gen_alts(struct gen *g, int depth)
{
	size_t n = rnd(&g->rs, 3) == 0 ? 2 + rnd(&g->rs, 2) : 1, i;
	size_t pick = rnd(&g->rs, n);

	for (i = 0; i < n && !g->full; i++) {
		size_t before = g->sl;

		if (i > 0)
			gp(g, "|");
		gen_seq(g, depth);
		/* The sample takes one alternative only. */
		if (i != pick) {
			g->sl = before;
			g->smp[g->sl] = '\0';
		}
	}
}

/* Does pat (as a set of one) match subj? */
static bool
matches(const char *pat, size_t len, unsigned flags, const char *subj)
{
	struct filter_rx_set *s = filter_rx_new();
	size_t w;
	bool r;

	assert_non_null(s);
	assert_int_equal(filter_rx_add(s, pat, len, 0, flags, NULL, 0), 0);
	assert_int_equal(filter_rx_build(s), 0);
	r = match(s, subj, &w) == FILTER_RX_MATCH;
	filter_rx_free(s);
	return r;
}

/*
 * A random pattern and sample.  Patterns that match the empty string
 * or the noise around samples would match every subject of a set first and hide
 * the answers of the others, so they are drawn again.
 */
static void
gen_pattern(struct gen *g)
{
	do {
		g->pl = g->sl = 0;
		g->pat[0] = g->smp[0] = '\0';
		g->full = false;
		g->caseless = rnd(&g->rs, 4) == 0;
		if (g->caseless && rnd(&g->rs, 2))
			gp(g, "(?i)");
		if (rnd(&g->rs, 8) == 0)
			gp(g, "^");
		gen_alts(g, 0);
		if (rnd(&g->rs, 8) == 0)
			gp(g, "$");
	} while (g->full || matches(g->pat, g->pl, 0, "") ||
	    matches(g->pat, g->pl, 0, "~") ||
	    matches(g->pat, g->pl, 0, "abcdxyz./-?=&0123456789ABC"));
}

/* A subject from a sample: random URL-ish text around it, or a mutant. */
static void
gen_subject(uint64_t *rs, const char *smp, char *out, size_t cap)
{
	static const char alpha[] = "abcdxyz./-?=&0123456789ABC";
	size_t o = 0, i, n, sl = strlen(smp);

	if (rnd(rs, 3) != 0) {
		n = rnd(rs, 6);
		for (i = 0; i < n; i++)
			out[o++] = alpha[rnd(rs, sizeof(alpha) - 1)];
	}
	if (sl + o + 16 >= cap)
		sl = cap - o - 16;
	memcpy(out + o, smp, sl);
	if (sl > 0 && rnd(rs, 4) == 0)	/* mutate one byte */
		out[o + rnd(rs, sl)] = alpha[rnd(rs, sizeof(alpha) - 1)];
	o += sl;
	if (rnd(rs, 3) != 0) {
		n = rnd(rs, 6);
		for (i = 0; i < n; i++)
			out[o++] = alpha[rnd(rs, sizeof(alpha) - 1)];
	}
	out[o] = '\0';
}

static bool
has_literal(const char *subj, const char *lits, size_t nlit)
{
	char low[2048];
	size_t i, k;

	for (i = 0; subj[i] && i < sizeof(low) - 1; i++)
		low[i] = (subj[i] >= 'A' && subj[i] <= 'Z') ? (char)(subj[i] + 32)
		    : subj[i];
	low[i] = '\0';
	for (k = 0; k < nlit; k++) {
		if (strstr(low, lits) != NULL)
			return true;
		lits += strlen(lits) + 1;
	}
	return false;
}

#define EQ_SETS		40
#define EQ_PER_SET	100
#define EQ_SUBJ		4

static void
prefilter_equivalence(void **state)
{
	struct gen g = { .rs = UINT64_C(0x9e3779b97f4a7c15) };
	static char pats[EQ_PER_SET][512];
	static char subj[EQ_PER_SET * EQ_SUBJ][1100];
	static unsigned flags[EQ_PER_SET];
	size_t set, i, k, w1, w2;
	size_t npat = 0, nlitpat = 0, nsubj = 0, nmatch = 0, nlimit = 0;
	size_t nprop = 0, nfast = 0, nwin = 0;

	(void)state;
	for (set = 0; set < EQ_SETS; set++) {
		struct filter_rx_set *on = filter_rx_new(), *off = filter_rx_new();
		char err[256];
		bool won[EQ_PER_SET] = { false };

		assert_non_null(on);
		assert_non_null(off);
		filter_rx_set_prefilter(off, false);
		for (i = 0; i < EQ_PER_SET; i++) {
			char lits[FILTER_RX_LITS_MAX * (FILTER_RX_LIT_MAX + 1)];
			size_t nlit;
			struct filter_rx_set *one;

			gen_pattern(&g);
			memcpy(pats[i], g.pat, g.pl + 1);
			flags[i] = g.caseless ? FILTER_RX_CASELESS : 0;
			if (filter_rx_add(on, g.pat, g.pl, (uint32_t)i,
			    flags[i], err, sizeof(err)) != 0) {
				print_message("# %s: %s\n", g.pat, err);
				fail();
			}
			assert_int_equal(filter_rx_add(off, g.pat, g.pl,
			    (uint32_t)i, flags[i], err, sizeof(err)), 0);
			npat++;

			/* The property itself, pattern by pattern: every
			 * subject it matches holds one of its literals. */
			nlit = filter_rx_literals(g.pat, g.pl, lits,
			    sizeof(lits));
			nlitpat += nlit > 0;
			one = filter_rx_new();
			assert_non_null(one);
			filter_rx_set_prefilter(one, false);
			assert_int_equal(filter_rx_add(one, g.pat, g.pl, 0,
			    flags[i], err, sizeof(err)), 0);
			assert_int_equal(filter_rx_build(one), 0);
			for (k = 0; k < EQ_SUBJ; k++) {
				char *sj = subj[i * EQ_SUBJ + k];

				gen_subject(&g.rs, g.smp, sj, sizeof(subj[0]));
				if (match(one, sj, &w1) != FILTER_RX_MATCH)
					continue;
				nprop++;
				if (nlit > 0 && !has_literal(sj, lits, nlit)) {
					print_message("# pattern %s subject %s "
					    "lacks literal %s\n", g.pat, sj,
					    lits);
					fail();
				}
			}
			filter_rx_free(one);
		}
		assert_int_equal(filter_rx_build(on), 0);
		assert_int_equal(filter_rx_build(off), 0);
		nfast += EQ_PER_SET - filter_rx_always_count(on);
		assert_int_equal(filter_rx_always_count(off), EQ_PER_SET);

		/* The whole set: same answer, same index, both ways. */
		for (k = 0; k < EQ_PER_SET * EQ_SUBJ + 50; k++) {
			char rs[64];
			const char *sj;
			int r1, r2;

			if (k < EQ_PER_SET * EQ_SUBJ) {
				sj = subj[k];
			} else {	/* vocabulary soup */
				size_t j;

				rs[0] = '\0';
				for (j = 0; j < 4; j++)
					strcat(rs, vocab[rnd(&g.rs, 16)]);
				sj = rs;
			}
			r1 = match(on, sj, &w1);
			r2 = match(off, sj, &w2);
			if (r1 != r2 || w1 != w2)
				print_message("# subject %s: on %d/%zu off "
				    "%d/%zu (%s)\n", sj, r1, w1, r2, w2,
				    r2 == FILTER_RX_MATCH ? pats[w2] : "-");
			assert_int_equal(r1, r2);
			assert_int_equal(w1, w2);
			nsubj++;
			nmatch += r1 == FILTER_RX_MATCH;
			if (r1 == FILTER_RX_MATCH && !won[w1]) {
				won[w1] = true;
				nwin++;	/* distinct winning patterns */
			}
			nlimit += r1 == FILTER_RX_LIMIT;
		}
		filter_rx_free(on);
		filter_rx_free(off);
	}
	print_message("# %zu patterns (%zu with literals, %zu prefiltered "
	    "in sets), %zu pattern matches checked for literals; %zu set "
	    "subjects, %zu matched (%zu distinct winners), %zu limit\n",
	    npat, nlitpat, nfast, nprop, nsubj, nmatch, nwin, nlimit);
	/* The test has teeth only if many patterns carry literals and
	 * many subjects match. */
	assert_true(nlitpat > npat / 3);
	assert_true(nprop > npat);
	assert_true(nmatch > nsubj / 4);
	assert_true(nwin > npat / 2);
}

/*
 * The benchmark: blocklist-like expressions with random words, and
 * URLs that mostly pass.
 */
#define BENCH_PATS	5000
#define BENCH_URLS	10000
#define BENCH_CHECK	1000	/* URLs re-checked without the prefilter */

static void
rand_word(uint64_t *rs, char *w, size_t minsyl)
{
	static const char cons[] = "bcdfghklmnprstvz", vow[] = "aeiou";
	size_t n = minsyl + rnd(rs, 3), i, o = 0;

	for (i = 0; i < n; i++) {
		w[o++] = cons[rnd(rs, sizeof(cons) - 1)];
		w[o++] = vow[rnd(rs, sizeof(vow) - 1)];
	}
	w[o] = '\0';
}

/* tmpl with each "%s" replaced by the next word (no printf: the
 * template is not a literal format). */
static void
fill(char *out, size_t cap, const char *tmpl, const char *w1, const char *w2)
{
	const char *w = w1;
	size_t o = 0;

	while (*tmpl && o + 1 < cap) {
		if (tmpl[0] == '%' && tmpl[1] == 's') {
			size_t l = strlen(w);

			assert_true(o + l < cap);
			memcpy(out + o, w, l);
			o += l;
			tmpl += 2;
			w = w2;
		} else
			out[o++] = *tmpl++;
	}
	out[o] = '\0';
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static const char *const bench_tmpl[] = {
	"(^|[-.])%s[0-9]*\\.", "%s", "\\b%s\\b", "%s.*(video|cam)",
	"/%s/", "(?i)free.?%s", "%s(s|z)?\\.(com|net)",
	"^https?://[^/]*%s", "[?&]%s=", "%s-?tube", "(%s|%s)[0-9]+",
};

/* The benchmark's expressions, the same for a given seed. */
static struct filter_rx_set *
bench_set(char (*words)[16], bool prefilter)
{
	struct filter_rx_set *s = filter_rx_new();
	uint64_t rs = 42;
	char pat[128], w2[16];
	size_t i;

	assert_non_null(s);
	filter_rx_set_prefilter(s, prefilter);
	for (i = 0; i < BENCH_PATS; i++) {
		size_t k = rnd(&rs, sizeof(bench_tmpl) / sizeof(bench_tmpl[0]));

		rand_word(&rs, words[i], 3);
		rand_word(&rs, w2, 3);
		if (i % 100 == 99)	/* ~1% with no literal at all */
			snprintf(pat, sizeof(pat), "\\d{%zu}\\.[a-z]{2}/%s",
			    4 + rnd(&rs, 4), i % 200 == 199 ? "x" : "");
		else
			fill(pat, sizeof(pat), bench_tmpl[k], words[i], w2);
		assert_int_equal(add(s, pat, (uint32_t)i,
		    rnd(&rs, 4) == 0 ? FILTER_RX_CASELESS : 0), 0);
	}
	assert_int_equal(filter_rx_build(s), 0);
	return s;
}

/* A URL; about one in ten carries a listed word where templates look. */
static void
bench_url(uint64_t *rs, char (*words)[16], char *url, size_t cap,
    size_t *nins)
{
	char h1[16], h2[16], p1[16], p2[16];

	rand_word(rs, h1, 2);
	rand_word(rs, h2, 2);
	rand_word(rs, p1, 2);
	rand_word(rs, p2, 3);
	if (rnd(rs, 10) == 0) {
		const char *lw = words[rnd(rs, BENCH_PATS)];

		(*nins)++;
		switch (rnd(rs, 7)) {
		case 0:
			snprintf(h1, sizeof(h1), "%s", lw);
			break;
		case 1:
			snprintf(p1, sizeof(p1), "%s", lw);
			break;
		case 2:
			snprintf(p2, sizeof(p2), "%s42", lw);
			break;
		case 3:
			snprintf(p2, sizeof(p2), "%s-tube", lw);
			break;
		case 4:
			snprintf(h2, sizeof(h2), "%s", lw);
			break;
		case 5:
			snprintf(p2, sizeof(p2), "free%s", lw);
			break;
		default:
			snprintf(p2, sizeof(p2), "%svideo", lw);
			break;
		}
	}
	snprintf(url, cap, "http://www.%s.%s.com/%s/%s/index.html?id=%zu"
	    "&lang=en", h1, h2, p1, p2, (size_t)rnd(rs, 100000));
}

static void
bench_5000(void **state)
{
	static char words[BENCH_PATS][16];
	static char urls[BENCH_URLS][160];
	static double t[BENCH_URLS];
	static int ans[BENCH_URLS];
	static size_t answ[BENCH_URLS];
	uint64_t rs = 7;
	struct filter_rx_set *s;
	size_t i, nmatch = 0, nlimit = 0, nins = 0;
	double t0, build_s, med, p99;

	(void)state;
	t0 = now_s();
	s = bench_set(words, true);
	build_s = now_s() - t0;
	for (i = 0; i < BENCH_URLS; i++)
		bench_url(&rs, words, urls[i], sizeof(urls[i]), &nins);
	for (i = 0; i < BENCH_URLS; i++) {
		t0 = now_s();
		ans[i] = filter_rx_match(s, urls[i], strlen(urls[i]), &answ[i]);
		t[i] = now_s() - t0;
		nmatch += ans[i] == FILTER_RX_MATCH;
		nlimit += ans[i] == FILTER_RX_LIMIT;
	}
	qsort(t, BENCH_URLS, sizeof(t[0]), cmp_double);
	med = t[BENCH_URLS / 2];
	p99 = t[BENCH_URLS * 99 / 100];
	print_message("# %d expressions: build %.3f s, %zu always tried, "
	    "%.1f MB; %d URLs (%zu with a listed word): %zu matched, "
	    "%zu limit; median %.2f us, p99 %.2f us per decision\n",
	    BENCH_PATS, build_s, filter_rx_always_count(s),
	    (double)filter_rx_bytes(s) / 1e6, BENCH_URLS, nins, nmatch,
	    nlimit, med * 1e6, p99 * 1e6);
	assert_true(nmatch > BENCH_URLS / 50);
	assert_true(nmatch < BENCH_URLS / 2);
	assert_int_equal(nlimit, 0);
	assert_true(filter_rx_always_count(s) < BENCH_PATS / 20);
	assert_true(med < 500e-6);
	filter_rx_free(s);

	/* The same answers without the prefilter, on a sample. */
	s = bench_set(words, false);
	t0 = now_s();
	for (i = 0; i < BENCH_CHECK; i++) {
		size_t w = SIZE_MAX;
		int rc = filter_rx_match(s, urls[i], strlen(urls[i]), &w);

		assert_int_equal(rc, ans[i]);
		if (rc != FILTER_RX_NOMATCH)
			assert_int_equal(w, answ[i]);
	}
	print_message("# without the prefilter: %.1f us per decision\n",
	    (now_s() - t0) / BENCH_CHECK * 1e6);
	filter_rx_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(compile_errors),
		cmocka_unit_test(caseless),
		cmocka_unit_test(first_match_order),
		cmocka_unit_test(limit_then_continue),
		cmocka_unit_test(limits_bound_time),
		cmocka_unit_test(empty_set),
		cmocka_unit_test(pattern_with_nul),
		cmocka_unit_test(literal_extraction),
		cmocka_unit_test(prefilter_equivalence),
		cmocka_unit_test(bench_5000),
	};

	return cmocka_run_group_tests_name("filter_regex", tests, NULL,
	    NULL);
}
