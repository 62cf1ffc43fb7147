/*
 * test_shm_stats.c - the /stats (JSON) and /metrics (Prometheus)
 * documents made from a hand-filled stats region: exact sums over
 * slots, dead slots counted but not listed, the cache object present
 * only with gauges, string escaping, and documents that parse (a small
 * strict JSON checker below; the exposition lines by their grammar).
 *
 * The region comes from shm_stats_create() like in the master, so the
 * layout under test is the real one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "shm/cache.h"
#include "shm/shm_stats.h"

/* ---- a strict JSON syntax checker (RFC 8259 grammar, no values kept) */

static const char *json_value(const char *p, int depth);

static const char *
json_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
		p++;
	return p;
}

static const char *
json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (; *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL;	/* raw control characters are invalid */
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
	}
	return p + 1;
}

static const char *
json_number(const char *p)
{
	const char *s = p;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	return p > s ? p : NULL;
}

static const char *
json_container(const char *p, int depth, char close, bool obj)
{
	p = json_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (obj) {
			if (!(p = json_string(json_ws(p))))
				return NULL;
			p = json_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		if (!(p = json_value(p, depth + 1)))
			return NULL;
		p = json_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *
json_value(const char *p, int depth)
{
	if (depth > 16)
		return NULL;
	p = json_ws(p);
	switch (*p) {
	case '{': return json_container(p, depth, '}', true);
	case '[': return json_container(p, depth, ']', false);
	case '"': return json_string(p);
	default: return json_number(p);
	}
}

static bool
json_valid(const char *doc)
{
	const char *end = json_value(doc, 0);

	return end != NULL && *json_ws(end) == '\0';
}

/* The number after "key": inside the object that starts at obj. */
static long long
json_get(const char *obj, const char *key)
{
	char pat[96];
	const char *p, *end = strchr(obj, '}');

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(obj, pat);
	if (p == NULL || (end != NULL && p > end))
		return -1;
	return strtoll(p + strlen(pat), NULL, 10);
}

/* ---- the region */

static struct stats_sh *
region(void)
{
	struct stats_sh *s = shm_stats_create(SHM_STATS_SLOTS);

	assert_non_null(s);
	/* Two live workers and one slot whose worker died. */
	s->slot[0].pid = 1001;
	s->slot[1].pid = 1002;
	s->slot[2].pid = 0;
	for (unsigned i = 0; i < 3; i++) {
		for (int id = 0; id < STAT__COUNT; id++)
			s->slot[i].c[id] = (uint64_t)(i + 1) * 100 + (uint64_t)id;
		s->slot[i].active_connections = i + 5;	/* 5, 6, (7 stale) */
	}
	return s;
}

/* Sum over the three filled slots of one counter. */
static uint64_t
expected_total(int id)
{
	return 100 + 200 + 300 + 3 * (uint64_t)id;
}

static const struct cache_gauges gauges = {
	.size = 1 << 20, .block_size = 4096, .blocks_total = 256,
	.blocks_used = 56, .blocks_free = 200, .entries_total = 1024,
	.entries_used = 17, .objects = 15, .refs = 2, .evictions = 9,
};

static const struct shm_stats_info info = { "0.1.0", 4242 };

static void
test_json_valid_and_sums(void **state)
{
	struct stats_sh *s = region();
	char *out = NULL;
	size_t len = 0;
	const char *tot;

	(void)state;
	assert_int_equal(shm_stats_json(s, NULL, &info, &out, &len), 0);
	assert_int_equal(strlen(out), len);
	assert_true(json_valid(out));
	assert_true(out[len - 1] == '\n');
	assert_non_null(strstr(out, "\"version\": \"0.1.0\""));
	assert_non_null(strstr(out, "\"pid_master\": 4242"));
	/* No gauges: no cache object at all. */
	assert_null(strstr(out, "\"cache\""));

	tot = strstr(out, "\"totals\": {");
	assert_non_null(tot);
	for (int id = 0; id < STAT__COUNT; id++)
		assert_int_equal(json_get(tot, shm_stats_name((enum shm_stat_id)id)),
		    expected_total(id));
	/* Only live slots: two workers, gauge 5 + 6 (slot 2's 7 is stale). */
	assert_int_equal(json_get(tot, "workers"), 2);
	assert_int_equal(json_get(tot, "active_connections"), 11);
	free(out);
	shm_stats_destroy(s);
}

static void
test_json_workers_listed(void **state)
{
	struct stats_sh *s = region();
	char *out = NULL, *w;
	size_t len = 0;

	(void)state;
	assert_int_equal(shm_stats_json(s, NULL, &info, &out, &len), 0);
	w = strstr(out, "{\"slot\": 0,");
	assert_non_null(w);
	assert_int_equal(json_get(w, "pid"), 1001);
	assert_int_equal(json_get(w, "requests"), 100 + STAT_requests);
	assert_int_equal(json_get(w, "active_connections"), 5);
	w = strstr(out, "{\"slot\": 1,");
	assert_non_null(w);
	assert_int_equal(json_get(w, "pid"), 1002);
	assert_int_equal(json_get(w, "connections"), 200 + STAT_connections);
	/* The dead worker's slot is summed but not listed. */
	assert_null(strstr(out, "\"slot\": 2"));
	free(out);
	shm_stats_destroy(s);
}

static void
test_json_cache(void **state)
{
	struct stats_sh *s = region();
	char *out = NULL, *c;
	size_t len = 0;

	(void)state;
	assert_int_equal(shm_stats_json(s, &gauges, NULL, &out, &len), 0);
	assert_true(json_valid(out));
	/* info NULL: no version, no master pid. */
	assert_null(strstr(out, "\"version\""));
	assert_null(strstr(out, "\"pid_master\""));
	c = strstr(out, "\"cache\": {");
	assert_non_null(c);
	assert_int_equal(json_get(c, "size"), 1 << 20);
	assert_int_equal(json_get(c, "block_size"), 4096);
	assert_int_equal(json_get(c, "blocks_total"), 256);
	assert_int_equal(json_get(c, "blocks_used"), 56);
	assert_int_equal(json_get(c, "blocks_free"), 200);
	assert_int_equal(json_get(c, "entries_total"), 1024);
	assert_int_equal(json_get(c, "entries_used"), 17);
	assert_int_equal(json_get(c, "objects"), 15);
	assert_int_equal(json_get(c, "refs"), 2);
	assert_int_equal(json_get(c, "evictions"), 9);
	free(out);
	shm_stats_destroy(s);
}

static void
test_json_escaping(void **state)
{
	struct stats_sh *s = region();
	struct shm_stats_info odd = { "1.0\"x\\y\n\x01\xff", 0 };
	char *out = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(shm_stats_json(s, NULL, &odd, &out, &len), 0);
	assert_true(json_valid(out));
	assert_non_null(strstr(out,
	    "\"version\": \"1.0\\\"x\\\\y\\u000a\\u0001\\u00ff\""));
	assert_null(strstr(out, "\"pid_master\""));
	free(out);
	shm_stats_destroy(s);
}

static void
test_json_no_workers(void **state)
{
	struct stats_sh *s = shm_stats_create(SHM_STATS_SLOTS);
	char *out = NULL;
	size_t len = 0;

	(void)state;
	assert_non_null(s);
	assert_int_equal(shm_stats_json(s, NULL, &info, &out, &len), 0);
	assert_true(json_valid(out));
	assert_non_null(strstr(out, "\"workers\": [],"));
	assert_int_equal(json_get(strstr(out, "\"totals\""), "requests"), 0);
	free(out);
	shm_stats_destroy(s);
}

/* The checker must reject what is not JSON, or the tests above prove
 * nothing. */
static void
test_json_checker_rejects(void **state)
{
	(void)state;
	assert_true(json_valid("{\"a\": [1, 2, {\"b\": \"x\\u00ff\"}]}\n"));
	assert_false(json_valid("{\"a\": 1,}"));
	assert_false(json_valid("{\"a\": [1 2]}"));
	assert_false(json_valid("{\"a\": \"x\ny\"}"));
	assert_false(json_valid("{\"a\": \"\\x\"}"));
	assert_false(json_valid("{\"a\": 1} x"));
	assert_false(json_valid("{\"a\" 1}"));
}

static void
test_bad_region(void **state)
{
	struct stats_sh *s = region();
	char *out = NULL;
	size_t len = 0;

	(void)state;
	errno = 0;
	assert_int_equal(shm_stats_json(NULL, NULL, &info, &out, &len), -1);
	assert_int_equal(errno, EINVAL);
	s->magic = 0;
	assert_int_equal(shm_stats_json(s, NULL, &info, &out, &len), -1);
	assert_int_equal(shm_stats_prometheus(s, NULL, &out, &len), -1);
	assert_null(out);
	s->magic = SHM_STATS_MAGIC;
	/* A slot that fails its magic is skipped, not summed. */
	s->slot[1].magic = 0;
	assert_int_equal(shm_stats_json(s, NULL, &info, &out, &len), 0);
	assert_int_equal(json_get(strstr(out, "\"totals\""), "requests"),
	    100 + 300 + 2 * STAT_requests);
	assert_null(strstr(out, "\"slot\": 1,"));
	free(out);
	s->slot[1].magic = SHM_STATS_MAGIC;
	shm_stats_destroy(s);
}

/* ---- Prometheus */

/* The value of the sample line "name value", or -1. */
static long long
prom_get(const char *doc, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = doc; *p; p = strchr(p, '\n') + 1) {
		if (strncmp(p, name, n) == 0 && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
		if (!strchr(p, '\n'))
			break;
	}
	return -1;
}

/* Every line is "# HELP m text", "# TYPE m counter|gauge" or "m N",
 * and each sample follows the HELP and TYPE of the same metric. */
static void
prom_check_grammar(const char *doc)
{
	char help[128] = "", type[128] = "";
	const char *p = doc;
	int samples = 0;

	while (*p) {
		const char *nl = strchr(p, '\n');
		char line[512], m[128], t[32];
		unsigned long long v;
		char extra;

		assert_non_null(nl);	/* every line ends in \n */
		assert_true((size_t)(nl - p) < sizeof(line));
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = '\0';
		if (sscanf(line, "# HELP %127s", m) == 1) {
			snprintf(help, sizeof(help), "%s", m);
		} else if (sscanf(line, "# TYPE %127s %31s%c", m, t, &extra) == 2) {
			assert_string_equal(m, help);
			assert_true(strcmp(t, "counter") == 0 || strcmp(t, "gauge") == 0);
			/* A counter's name ends in _total. */
			if (strcmp(t, "counter") == 0)
				assert_string_equal(m + strlen(m) - 6, "_total");
			snprintf(type, sizeof(type), "%s", m);
		} else {
			assert_int_equal(sscanf(line, "%127[a-z0-9_] %llu%c", m, &v, &extra), 2);
			assert_string_equal(m, type);
			assert_string_equal(m, help);
			samples++;
		}
		p = nl + 1;
	}
	assert_true(samples > STAT__COUNT);
}

static void
test_prom_sums(void **state)
{
	struct stats_sh *s = region();
	char *out = NULL, name[96];
	size_t len = 0;

	(void)state;
	assert_int_equal(shm_stats_prometheus(s, NULL, &out, &len), 0);
	assert_int_equal(strlen(out), len);
	prom_check_grammar(out);
	for (int id = 0; id < STAT__COUNT; id++) {
		snprintf(name, sizeof(name), "sluice_%s_total",
		    shm_stats_name((enum shm_stat_id)id));
		assert_int_equal(prom_get(out, name), expected_total(id));
	}
	assert_non_null(strstr(out, "# HELP sluice_requests_total client requests parsed\n"
	    "# TYPE sluice_requests_total counter\n"));
	assert_int_equal(prom_get(out, "sluice_active_connections"), 11);
	assert_int_equal(prom_get(out, "sluice_workers"), 2);
	/* No gauges: none of the sluice_cache_<gauge> series (counters
	 * named cache_* are still there, as sluice_cache_*_total). */
	assert_null(strstr(out, "\nsluice_cache_objects "));
	assert_null(strstr(out, "\nsluice_cache_size "));
	assert_null(strstr(out, "\nsluice_cache_evictions_total "));
	free(out);
	shm_stats_destroy(s);
}

static void
test_prom_cache(void **state)
{
	struct stats_sh *s = region();
	char *out = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(shm_stats_prometheus(s, &gauges, &out, &len), 0);
	prom_check_grammar(out);
	assert_non_null(strstr(out, "# TYPE sluice_cache_objects gauge\n"));
	assert_int_equal(prom_get(out, "sluice_cache_objects"), 15);
	assert_int_equal(prom_get(out, "sluice_cache_size"), 1 << 20);
	assert_int_equal(prom_get(out, "sluice_cache_blocks_used"), 56);
	assert_int_equal(prom_get(out, "sluice_cache_refs"), 2);
	/* Evictions only grow: a counter, with the suffix of one. */
	assert_non_null(strstr(out, "# TYPE sluice_cache_evictions_total counter\n"));
	assert_int_equal(prom_get(out, "sluice_cache_evictions_total"), 9);
	free(out);
	shm_stats_destroy(s);
}

/* Both documents agree on every counter for one state of the region. */
static void
test_json_prom_agree(void **state)
{
	struct stats_sh *s = region();
	char *js = NULL, *pr = NULL, name[96];
	size_t jl, pl;

	(void)state;
	s->slot[7].pid = 77;
	s->slot[7].c[STAT_bytes_to_clients] = UINT64_MAX / 4;
	assert_int_equal(shm_stats_json(s, &gauges, &info, &js, &jl), 0);
	assert_int_equal(shm_stats_prometheus(s, &gauges, &pr, &pl), 0);
	for (int id = 0; id < STAT__COUNT; id++) {
		const char *n = shm_stats_name((enum shm_stat_id)id);

		snprintf(name, sizeof(name), "sluice_%s_total", n);
		assert_int_equal(json_get(strstr(js, "\"totals\""), n),
		    prom_get(pr, name));
		assert_int_equal(shm_stats_total(s, (enum shm_stat_id)id),
		    (uint64_t)prom_get(pr, name));
	}
	assert_int_equal(prom_get(pr, "sluice_workers"), 3);
	free(js);
	free(pr);
	shm_stats_destroy(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_valid_and_sums),
		cmocka_unit_test(test_json_workers_listed),
		cmocka_unit_test(test_json_cache),
		cmocka_unit_test(test_json_escaping),
		cmocka_unit_test(test_json_no_workers),
		cmocka_unit_test(test_json_checker_rejects),
		cmocka_unit_test(test_bad_region),
		cmocka_unit_test(test_prom_sums),
		cmocka_unit_test(test_prom_cache),
		cmocka_unit_test(test_json_prom_agree),
	};
	return cmocka_run_group_tests_name("shm_stats", tests, NULL, NULL);
}
