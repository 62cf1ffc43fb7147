/*
 * test_proxy_route.c - the destination check done after DNS: blocked
 * networks, and requests that would come back to one of our own
 * listeners (a wildcard listener is "us" only on this host's addresses).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "config.h"
#include "worker/conn_int.h"

static struct sockaddr_storage
sa_of(const char *ip, int port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, ip, &s4->sin_addr);
	}
	return ss;
}

static int
dest(const struct worker *w, const char *ip, int port)
{
	struct sockaddr_storage ss = sa_of(ip, port);
	return proxy_route_dest(w, (struct sockaddr *)&ss);
}

static void
test_wildcard_listener(void **state)
{
	struct sluice_conf cf;
	struct conf_listen cl;
	struct worker_listener l;
	struct worker w;
	uint8_t local[1][16];
	const char *why;
	struct cidr blocked;

	(void)state;
	memset(&cf, 0, sizeof(cf));
	memset(&cl, 0, sizeof(cl));
	memset(&l, 0, sizeof(l));
	memset(&w, 0, sizeof(w));
	cl.port = 8080;
	l.cl = &cl;
	l.sa = sa_of("0.0.0.0", 8080);
	w.conf = &cf;
	w.listeners = &l;
	w.nlisteners = 1;
	struct sockaddr_storage me = sa_of("10.0.0.5", 0);
	netaddr_from_sockaddr((struct sockaddr *)&me, local[0]);
	w.local_addrs = local;
	w.nlocal_addrs = 1;

	/* Another host on the same port is not us (the bug: 403 for all). */
	assert_int_equal(dest(&w, "192.0.2.1", 8080), ROUTE_OK);
	/* This host, by loopback, unspecified or interface address, is. */
	assert_int_equal(dest(&w, "127.0.0.1", 8080), ROUTE_SELF);
	assert_int_equal(dest(&w, "127.9.9.9", 8080), ROUTE_SELF);
	assert_int_equal(dest(&w, "0.0.0.0", 8080), ROUTE_SELF);
	assert_int_equal(dest(&w, "10.0.0.5", 8080), ROUTE_SELF);
	/* Other ports are not. */
	assert_int_equal(dest(&w, "10.0.0.5", 9090), ROUTE_OK);
	/* An IPv4 wildcard is not reached over IPv6 (listeners are V6ONLY). */
	assert_int_equal(dest(&w, "::1", 8080), ROUTE_OK);

	/* An IPv6 wildcard is. */
	l.sa = sa_of("::", 8080);
	assert_int_equal(dest(&w, "::1", 8080), ROUTE_SELF);
	assert_int_equal(dest(&w, "2001:db8::1", 8080), ROUTE_OK);

	/* A specific listener address matches only itself. */
	l.sa = sa_of("127.0.0.1", 8080);
	assert_int_equal(dest(&w, "127.0.0.1", 8080), ROUTE_SELF);
	assert_int_equal(dest(&w, "10.0.0.5", 8080), ROUTE_OK);

	/* blocked_destinations wins, on the resolved address. */
	assert_int_equal(netaddr_cidr_parse("192.0.2.0/24", &blocked, &why), 0);
	cf.blocked_destinations = &blocked;
	cf.nblocked_destinations = 1;
	assert_int_equal(dest(&w, "192.0.2.1", 80), ROUTE_BLOCKED);
	assert_int_equal(dest(&w, "192.0.3.1", 80), ROUTE_OK);
	assert_int_equal(dest(&w, "::ffff:192.0.2.1", 80), ROUTE_BLOCKED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wildcard_listener),
	};
	return cmocka_run_group_tests_name("proxy_route", tests, NULL, NULL);
}
