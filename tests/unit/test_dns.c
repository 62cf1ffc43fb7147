/*
 * test_dns.c - unit tests for the worker's resolver (worker/dns.c)
 * against the scripted server tests/e2e/fakedns.py.
 *
 * Assumes python3 on PATH and SRCDIR (the source tree, from -DSRCDIR)
 * holding tests/e2e/fakedns.py.  The server is started once for the
 * group on a free 127.0.0.1 port (it prints "PORT <n>" first) and
 * writes its per-name query counts to a JSON file after every query,
 * which is how these tests tell a cache hit from a miss.
 *
 * Why: resolution failures are what a forward proxy meets every day
 * (slow servers, NXDOMAIN, SERVFAIL, broken replies); each gets a case
 * with the real c-ares code path and a real socket.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/dns.h"
#include "worker/ev.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

/* The zone served for the whole group. */
static const char *const zone[] = {
	"a.test=A:127.0.0.1,A:10.1.2.3,AAAA:::1",
	"v6.test=AAAA:2001:db8::1",
	"empty.test=TTL:60",
	"cname.test=CNAME:a.test",
	"nx.test=NXDOMAIN",
	"fail.test=SERVFAIL",
	"refused.test=REFUSED",
	"slow.test=DELAY:30",
	"junk.test=JUNK",
	"bad.test=GARBAGE",
	"ttl.test=A:127.0.0.2,TTL:1",
	"zero.test=A:127.0.0.5,TTL:0",
	"cache.test=A:127.0.0.3,TTL:300",
	"coal.test=A:127.0.0.6",
	"cancel.test=A:127.0.0.4,DELAY:0.2",
	"many.test=MANYA:100",
};

struct server {
	pid_t pid;
	int port;
	char dir[64];
	char counts[128];
	char addr[32];
};

struct fx {
	struct server *srv;
	struct ev_loop *loop;
	struct dns *dns;
};

/* ---- the fake server ---------------------------------------------------- */

static int
group_setup(void **state)
{
	struct server *srv = calloc(1, sizeof(*srv));
	const char *argv[64];
	size_t argc = 0;
	int p[2];
	char line[64];
	FILE *f;

	if (srv == NULL)
		return -1;
	strcpy(srv->dir, "/tmp/sluice-test-dns.XXXXXX");
	if (mkdtemp(srv->dir) == NULL)
		return -1;
	snprintf(srv->counts, sizeof(srv->counts), "%s/counts.json", srv->dir);

	argv[argc++] = "python3";
	argv[argc++] = SRCDIR "/tests/e2e/fakedns.py";
	argv[argc++] = "--port";
	argv[argc++] = "0";
	argv[argc++] = "--counts";
	argv[argc++] = srv->counts;
	for (size_t i = 0; i < sizeof(zone) / sizeof(zone[0]); i++) {
		argv[argc++] = "--record";
		argv[argc++] = zone[i];
	}
	argv[argc] = NULL;

	if (pipe(p) < 0)
		return -1;
	srv->pid = fork();
	if (srv->pid < 0)
		return -1;
	if (srv->pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execvp("python3", (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	if (f == NULL || fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "PORT %d", &srv->port) != 1) {
		fprintf(stderr, "# fakedns.py did not start\n");
		kill(srv->pid, SIGTERM);
		waitpid(srv->pid, NULL, 0);
		return -1;
	}
	fclose(f);
	snprintf(srv->addr, sizeof(srv->addr), "127.0.0.1:%d", srv->port);
	*state = srv;
	return 0;
}

static int
group_teardown(void **state)
{
	struct server *srv = *state;
	char tmp[160];

	kill(srv->pid, SIGTERM);
	waitpid(srv->pid, NULL, 0);
	unlink(srv->counts);
	snprintf(tmp, sizeof(tmp), "%s.tmp", srv->counts);
	unlink(tmp);
	rmdir(srv->dir);
	free(srv);
	return 0;
}

/* Queries the server has seen for name (A and AAAA both count). */
static int
queries(const struct server *srv, const char *name)
{
	char buf[8192], key[128], *hit;
	FILE *f = fopen(srv->counts, "r");
	size_t n;

	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	snprintf(key, sizeof(key), "\"%s\": ", name);
	hit = strstr(buf, key);
	return hit == NULL ? 0 : atoi(hit + strlen(key));
}

/* ---- fixtures and helpers ----------------------------------------------- */

static int
fx_setup_ttl(void **state, int negative_ttl)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char *servers[1];
	const char *why = NULL;

	if (fx == NULL)
		return -1;
	fx->srv = *state;
	servers[0] = fx->srv->addr;
	fx->loop = ev_loop_new();
	if (fx->loop == NULL)
		return -1;
	fx->dns = dns_new(fx->loop, servers, 1, negative_ttl, &why);
	if (fx->dns == NULL) {
		fprintf(stderr, "# dns_new: %s\n", why);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
fx_setup(void **state)
{
	return fx_setup_ttl(state, 30);
}

static int
fx_setup_noneg(void **state)
{
	return fx_setup_ttl(state, 0);
}

static int
fx_teardown(void **state)
{
	struct fx *fx = *state;

	dns_free(fx->dns);
	ev_loop_free(fx->loop);
	free(fx);
	return 0;
}

struct answer {
	struct ev_loop *loop;
	int calls;
	int want;		/* break the loop after this many answers */
	struct dns_result res;
};

static void
answer_cb(void *arg, const struct dns_result *res)
{
	struct answer *a = arg;

	a->calls++;
	a->res = *res;
	if (a->calls >= a->want)
		ev_break(a->loop);
}

static void
guard_cb(struct ev_loop *loop, struct ev_timer *t)
{
	*(bool *)t->data = true;
	ev_break(loop);
}

/* Run the loop for at most ms (or until a callback breaks it). */
static bool
run_for(struct fx *fx, uint64_t ms)
{
	struct ev_timer t;
	bool fired = false;

	ev_timer_init(&t, guard_cb, &fired);
	ev_timer_start(fx->loop, &t, ms);
	ev_run(fx->loop);
	ev_timer_stop(fx->loop, &t);
	return fired;
}

/*
 * Resolve host and wait for the answer; *sync tells whether it came
 * before dns_resolve() returned (a literal or a cache hit).
 */
static void
resolve(struct fx *fx, const char *host, struct answer *a, bool *sync)
{
	struct dns_query *q;

	memset(a, 0, sizeof(*a));
	a->loop = fx->loop;
	a->want = 1;
	q = dns_resolve(fx->dns, host, answer_cb, a);
	*sync = q == NULL;
	if (q == NULL) {
		/* The break set by the callback is still pending: clear it. */
		ev_run(fx->loop);
		assert_int_equal(a->calls, 1);
		return;
	}
	assert_int_equal(a->calls, 0);
	assert_false(run_for(fx, 15000));
	assert_int_equal(a->calls, 1);
}

static void
assert_addr(const struct dns_result *r, size_t i, const char *text)
{
	char buf[INET6_ADDRSTRLEN];
	const struct sockaddr_storage *ss = &r->addrs[i];

	assert_true(i < r->naddrs);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
		assert_int_equal(r->addrlens[i], sizeof(*v4));
		assert_int_equal(v4->sin_port, 0);
		inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof(buf));
	} else {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
		assert_int_equal(ss->ss_family, AF_INET6);
		assert_int_equal(r->addrlens[i], sizeof(*v6));
		assert_int_equal(v6->sin6_port, 0);
		inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof(buf));
	}
	assert_string_equal(buf, text);
}

/* ---- cases -------------------------------------------------------------- */

static void
test_a_and_aaaa(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;

	resolve(fx, "a.test", &a, &sync);
	assert_false(sync);
	assert_int_equal(a.res.status, DNS_OK);
	assert_int_equal(a.res.naddrs, 3);
	/* IPv4 first, in answer order, then IPv6. */
	assert_addr(&a.res, 0, "127.0.0.1");
	assert_addr(&a.res, 1, "10.1.2.3");
	assert_addr(&a.res, 2, "::1");
}

static void
test_aaaa_only(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;

	resolve(fx, "V6.Test", &a, &sync);	/* names are case-insensitive */
	assert_false(sync);
	assert_int_equal(a.res.status, DNS_OK);
	assert_int_equal(a.res.naddrs, 1);
	assert_addr(&a.res, 0, "2001:db8::1");
}

static void
test_cname(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;

	resolve(fx, "cname.test", &a, &sync);
	assert_int_equal(a.res.status, DNS_OK);
	assert_int_equal(a.res.naddrs, 3);
	assert_addr(&a.res, 0, "127.0.0.1");
}

static void
test_too_many_records_truncated(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;

	/* 100 A records: UDP reply truncated, full answer over TCP. */
	resolve(fx, "many.test", &a, &sync);
	assert_int_equal(a.res.status, DNS_OK);
	assert_int_equal(a.res.naddrs, DNS_MAX_ADDRS);
	assert_addr(&a.res, 0, "10.0.0.0");
	assert_addr(&a.res, DNS_MAX_ADDRS - 1, "10.0.0.7");
}

static void
test_nxdomain(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;

	resolve(fx, "nx.test", &a, &sync);
	assert_int_equal(a.res.status, DNS_NXDOMAIN);
	assert_int_equal(a.res.naddrs, 0);
	resolve(fx, "unknown-name.test", &a, &sync);
	assert_int_equal(a.res.status, DNS_NXDOMAIN);
	/* NOERROR with no address is "no such host" to a proxy too. */
	resolve(fx, "empty.test", &a, &sync);
	assert_int_equal(a.res.status, DNS_NXDOMAIN);
}

static void
test_servfail_refused(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;
	int before;

	resolve(fx, "fail.test", &a, &sync);
	assert_int_equal(a.res.status, DNS_FAIL);
	resolve(fx, "refused.test", &a, &sync);
	assert_int_equal(a.res.status, DNS_FAIL);
	/* Failures are not cached: the next lookup asks again. */
	before = queries(fx->srv, "fail.test");
	resolve(fx, "fail.test", &a, &sync);
	assert_false(sync);
	assert_int_equal(a.res.status, DNS_FAIL);
	assert_true(queries(fx->srv, "fail.test") > before);
}

static void
test_garbage_reply(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;

	resolve(fx, "bad.test", &a, &sync);
	assert_int_equal(a.res.status, DNS_FAIL);
	assert_int_equal(a.res.naddrs, 0);
}

static void
test_timeouts(void **state)
{
	struct fx *fx = *state;
	struct answer slow = { .loop = fx->loop, .want = 2 };
	uint64_t start;

	/*
	 * A server that answers too late and one that answers junk with
	 * the wrong id (ignored) both end in DNS_TIMEOUT; run together so
	 * the case costs one timeout.  Both callbacks share 'slow'.
	 */
	ev_now_update(fx->loop);
	start = ev_now(fx->loop);
	assert_non_null(dns_resolve(fx->dns, "slow.test", answer_cb, &slow));
	assert_non_null(dns_resolve(fx->dns, "junk.test", answer_cb, &slow));
	assert_false(run_for(fx, 15000));
	assert_int_equal(slow.calls, 2);
	assert_int_equal(slow.res.status, DNS_TIMEOUT);
	/* 1.5 s then 3 s for the retry: bounded, not the 30 s delay. */
	assert_true(ev_now(fx->loop) - start >= 1400);
	assert_true(ev_now(fx->loop) - start < 8000);
}

static void
test_ip_literals(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;

	resolve(fx, "192.0.2.7", &a, &sync);
	assert_true(sync);
	assert_int_equal(a.res.status, DNS_OK);
	assert_int_equal(a.res.naddrs, 1);
	assert_addr(&a.res, 0, "192.0.2.7");
	resolve(fx, "2001:db8::42", &a, &sync);
	assert_true(sync);
	assert_addr(&a.res, 0, "2001:db8::42");
	resolve(fx, "::ffff:127.0.0.1", &a, &sync);
	assert_true(sync);
	assert_int_equal(a.res.addrs[0].ss_family, AF_INET6);
}

static void
test_bad_names(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;
	char longname[400];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	resolve(fx, longname, &a, &sync);
	assert_true(sync);
	assert_int_equal(a.res.status, DNS_NXDOMAIN);
	resolve(fx, "", &a, &sync);
	assert_true(sync);
	assert_int_equal(a.res.status, DNS_NXDOMAIN);
}

static void
test_cache_hit(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;
	int n;

	resolve(fx, "cache.test", &a, &sync);
	assert_false(sync);
	assert_int_equal(a.res.status, DNS_OK);
	n = queries(fx->srv, "cache.test");
	assert_true(n >= 2);		/* A and AAAA */
	resolve(fx, "CACHE.test", &a, &sync);
	assert_true(sync);
	assert_int_equal(a.res.status, DNS_OK);
	assert_addr(&a.res, 0, "127.0.0.3");
	assert_int_equal(queries(fx->srv, "cache.test"), n);
}

static void
test_ttl_expiry(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;
	int n;

	resolve(fx, "ttl.test", &a, &sync);
	assert_false(sync);
	n = queries(fx->srv, "ttl.test");
	resolve(fx, "ttl.test", &a, &sync);
	assert_true(sync);
	assert_int_equal(queries(fx->srv, "ttl.test"), n);
	/* TTL 1 s: after 1.2 s on the loop the entry is gone. */
	assert_true(run_for(fx, 1200));
	resolve(fx, "ttl.test", &a, &sync);
	assert_false(sync);
	assert_int_equal(a.res.status, DNS_OK);
	assert_addr(&a.res, 0, "127.0.0.2");
	assert_true(queries(fx->srv, "ttl.test") > n);

	/* TTL 0 means do not cache at all. */
	resolve(fx, "zero.test", &a, &sync);
	n = queries(fx->srv, "zero.test");
	resolve(fx, "zero.test", &a, &sync);
	assert_false(sync);
	assert_true(queries(fx->srv, "zero.test") > n);
}

static void
test_negative_cache(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;
	int n;

	resolve(fx, "neg.test", &a, &sync);	/* unknown: NXDOMAIN */
	assert_false(sync);
	assert_int_equal(a.res.status, DNS_NXDOMAIN);
	n = queries(fx->srv, "neg.test");
	assert_true(n >= 1);
	resolve(fx, "neg.test", &a, &sync);
	assert_true(sync);
	assert_int_equal(a.res.status, DNS_NXDOMAIN);
	assert_int_equal(queries(fx->srv, "neg.test"), n);
}

/* With negative_ttl 0 NXDOMAIN is asked again every time. */
static void
test_negative_cache_off(void **state)
{
	struct fx *fx = *state;
	struct answer a;
	bool sync;
	int n;

	resolve(fx, "neg0.test", &a, &sync);
	assert_int_equal(a.res.status, DNS_NXDOMAIN);
	n = queries(fx->srv, "neg0.test");
	resolve(fx, "neg0.test", &a, &sync);
	assert_false(sync);
	assert_true(queries(fx->srv, "neg0.test") > n);
}

static void
test_coalesce(void **state)
{
	struct fx *fx = *state;
	struct answer a = { .loop = fx->loop, .want = 3 };

	/* Three lookups of one name in flight: one query per type. */
	assert_non_null(dns_resolve(fx->dns, "coal.test", answer_cb, &a));
	assert_non_null(dns_resolve(fx->dns, "coal.test", answer_cb, &a));
	assert_non_null(dns_resolve(fx->dns, "Coal.Test", answer_cb, &a));
	assert_false(run_for(fx, 15000));
	assert_int_equal(a.calls, 3);
	assert_int_equal(a.res.status, DNS_OK);
	assert_addr(&a.res, 0, "127.0.0.6");
	assert_int_equal(queries(fx->srv, "coal.test"), 2);
}

static void
never_cb(void *arg, const struct dns_result *res)
{
	(void)res;
	(*(int *)arg)++;
}

static void
test_cancel(void **state)
{
	struct fx *fx = *state;
	struct answer other = { .loop = fx->loop, .want = 1 };
	struct dns_query *q1, *q2;
	int never = 0;

	/* Cancel one of two waiters, then the only waiter of another. */
	q1 = dns_resolve(fx->dns, "cancel.test", never_cb, &never);
	assert_non_null(q1);
	assert_non_null(dns_resolve(fx->dns, "cancel.test", answer_cb, &other));
	dns_cancel(fx->dns, q1);
	q2 = dns_resolve(fx->dns, "slow.test", never_cb, &never);
	assert_non_null(q2);
	dns_cancel(fx->dns, q2);
	assert_false(run_for(fx, 15000));
	assert_int_equal(other.calls, 1);
	assert_int_equal(other.res.status, DNS_OK);
	/* Let the cancelled lookup's reply arrive too: still no call. */
	assert_true(run_for(fx, 300));
	assert_int_equal(never, 0);
	/* slow.test is still in flight: dns_free must end it silently. */
}

/* dns_free with lookups in flight: no callback, no leak (ASan). */
static void
test_free_in_flight(void **state)
{
	struct fx *fx = *state;
	int never = 0;

	assert_non_null(dns_resolve(fx->dns, "slow.test", never_cb, &never));
	assert_non_null(dns_resolve(fx->dns, "cancel.test", never_cb, &never));
	assert_true(run_for(fx, 50));
	dns_free(fx->dns);
	fx->dns = NULL;
	assert_int_equal(never, 0);
}

static void
test_bad_server(void **state)
{
	struct fx *fx = *state;
	char *bad[1] = { (char *)"not an address" };
	char *v6[2] = { (char *)"[::1]:5353", (char *)"127.0.0.1" };
	const char *why = NULL;
	struct dns *d;

	assert_null(dns_new(fx->loop, bad, 1, 30, &why));
	assert_non_null(why);
	d = dns_new(fx->loop, v6, 2, 30, &why);
	assert_non_null(d);
	dns_free(d);
	assert_string_equal(dns_strstatus(DNS_TIMEOUT), "DNS timeout");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_and_aaaa, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_aaaa_only, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cname, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_too_many_records_truncated, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_nxdomain, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_servfail_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_garbage_reply, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_timeouts, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_ip_literals, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cache_hit, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_ttl_expiry, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_negative_cache, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_negative_cache_off, fx_setup_noneg, fx_teardown),
		cmocka_unit_test_setup_teardown(test_coalesce, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cancel, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_free_in_flight, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_server, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("dns", tests, group_setup, group_teardown);
}
