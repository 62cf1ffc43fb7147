/*
 * filter_bench.c - how fast does sluice's URL filter decide?
 *
 *   bench/filter_bench -f sluice.conf -u urls.txt [-n DECISIONS] [-c CLIENT]
 *
 * Compiles the config's filter exactly as the master does (lists,
 * patterns, rules) and reports the compile time, the entries and the
 * heap the compiled filter holds (the growth of the process's resident
 * size), then decides the URLs of urls.txt (one "http://..." a line,
 * cycled until DECISIONS) the way a worker does: parse the target,
 * canonicalise host and URL (url_norm), decide.  Prints the median and
 * p99 of one decision (timed one by one) and decisions per second (one
 * timed batch, no per-call clock), with and without the normalisation.
 * Used by bench/filter.sh; not a test.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/filter.h"
#include "worker/http_url.h"
#include "lib/url_norm.h"

struct item {
	char *url;
	size_t len;
	char *canon;			/* kept for the decide-only pass */
	int clen;
	char *host;
	int port;
};

/* The worker's per-request scratch. */
static char scratch_canon[70000], scratch_host[URL_NORM_HOST_MAX + 1];

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long
rss_kb(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Canonicalise one URL as a worker does, into the scratch buffers;
 * the canonical length, or -1 when it is refused. */
static int
prepare(const struct item *it, int *port)
{
	struct http_url u;

	if (http_url_parse_absolute(it->url, it->len, &u) != 0)
		return -1;
	if (url_norm_host(u.host, strlen(u.host), scratch_host,
	    sizeof(scratch_host)) < 0)
		return -1;
	*port = u.port;
	return url_norm(u.host, strlen(u.host), u.port, u.path, u.path_len,
	    scratch_canon, sizeof(scratch_canon));
}

static void
request_of(const char *canon, int clen, const char *host, int port,
    const uint8_t *client, struct filter_req *q)
{
	memset(q, 0, sizeof(*q));
	q->url = canon;
	q->url_len = (size_t)clen;
	q->host = host;
	q->host_len = strlen(host);
	q->port = port;
	q->method = "GET";
	q->method_len = 3;
	q->client = client;
	q->wday = 3;
	q->minute = 600;
}

int
main(int argc, char **argv)
{
	const char *conf_path = NULL, *urls_path = NULL;
	long ndec = 200000;
	uint8_t client[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3 };
	char err[1024], sum[512], line[8192];
	struct item *items = NULL;
	size_t nitems = 0, cap = 0;
	int c;

	while ((c = getopt(argc, argv, "f:u:n:c:")) != -1) {
		switch (c) {
		case 'f': conf_path = optarg; break;
		case 'u': urls_path = optarg; break;
		case 'n': ndec = atol(optarg); break;
		case 'c': {
			unsigned a, b, cc, d;
			if (sscanf(optarg, "%u.%u.%u.%u", &a, &b, &cc, &d) == 4) {
				client[12] = (uint8_t)a; client[13] = (uint8_t)b;
				client[14] = (uint8_t)cc; client[15] = (uint8_t)d;
			}
			break;
		}
		default:
			fprintf(stderr, "usage: filter_bench -f CONF -u URLS [-n N] [-c IPv4]\n");
			return 1;
		}
	}
	if (!conf_path || !urls_path || ndec < 1) {
		fprintf(stderr, "usage: filter_bench -f CONF -u URLS [-n N] [-c IPv4]\n");
		return 1;
	}

	FILE *uf = fopen(urls_path, "r");
	if (!uf) {
		perror(urls_path);
		return 1;
	}
	while (fgets(line, sizeof(line), uf)) {
		size_t n = strcspn(line, "\r\n");
		if (n == 0)
			continue;
		if (nitems == cap) {
			cap = cap ? 2 * cap : 1024;
			items = realloc(items, cap * sizeof(*items));
			if (!items)
				return 1;
		}
		struct item *it = &items[nitems];
		it->url = strndup(line, n);
		it->len = n;
		if ((it->clen = prepare(it, &it->port)) >= 0) {
			it->canon = strndup(scratch_canon, (size_t)it->clen);
			it->host = strdup(scratch_host);
			nitems++;
		} else
			free(it->url);
	}
	fclose(uf);
	if (nitems == 0) {
		fprintf(stderr, "no usable URL in %s\n", urls_path);
		return 1;
	}

	struct sluice_conf *conf = conf_load(conf_path, err, sizeof(err));
	if (!conf) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct filter *f;
	long rss0 = rss_kb();
	double t0 = now_s();
	if (filter_compile(conf, &f, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	double tc = now_s() - t0;
	long rss1 = rss_kb();
	filter_summary(f, sum, sizeof(sum));
	printf("filter: %s\n", sum);
	printf("compile_s=%.3f rss_growth_mb=%.1f\n", tc, (double)(rss1 - rss0) / 1024.0);

	/* one by one, for the percentiles */
	double *lat = malloc((size_t)ndec * sizeof(double));
	long denied = 0;
	struct filter_req q;
	struct filter_verdict v;
	if (!lat)
		return 1;
	for (long i = 0; i < ndec; i++) {
		struct item *it = &items[(size_t)i % nitems];
		int port, n;
		double a = now_s();
		n = prepare(it, &port);
		request_of(scratch_canon, n, scratch_host, port, client, &q);
		filter_decide(f, &q, &v);
		lat[i] = now_s() - a;
		denied += !v.allow;
	}
	qsort(lat, (size_t)ndec, sizeof(double), cmp_d);
	double med = lat[ndec / 2] * 1e9, p99 = lat[ndec * 99 / 100] * 1e9;

	/* decide only (URLs canonical already), one by one */
	for (long i = 0; i < ndec; i++) {
		struct item *it = &items[(size_t)i % nitems];
		double a = now_s();
		request_of(it->canon, it->clen, it->host, it->port, client, &q);
		filter_decide(f, &q, &v);
		lat[i] = now_s() - a;
	}
	qsort(lat, (size_t)ndec, sizeof(double), cmp_d);
	double dmed = lat[ndec / 2] * 1e9, dp99 = lat[ndec * 99 / 100] * 1e9;

	/* throughput: one batch, normalisation included */
	t0 = now_s();
	for (long i = 0; i < ndec; i++) {
		struct item *it = &items[(size_t)i % nitems];
		int port, n = prepare(it, &port);
		request_of(scratch_canon, n, scratch_host, port, client, &q);
		filter_decide(f, &q, &v);
	}
	double tb = now_s() - t0;

	printf("urls=%zu decisions=%ld denied=%.1f%%\n", nitems, ndec,
	    100.0 * (double)denied / (double)ndec);
	printf("normalize+decide: median_ns=%.0f p99_ns=%.0f per_s=%.0f\n", med, p99,
	    (double)ndec / tb);
	printf("decide only:      median_ns=%.0f p99_ns=%.0f\n", dmed, dp99);
	filter_free(f);
	conf_free(conf);
	for (size_t i = 0; i < nitems; i++) {
		free(items[i].url);
		free(items[i].canon);
		free(items[i].host);
	}
	free(items);
	free(lat);
	return 0;
}
