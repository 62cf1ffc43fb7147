/*
 * test_netaddr.c - unit tests of lib/netaddr.c: CIDR parsing (accepted
 * forms, every rejection with its reason), byte-wise matching across the
 * IPv4-mapped boundary, and the printable forms used in logs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "lib/netaddr.h"

/* The 16-byte form of a textual address (test helper). */
static void
addr16(const char *s, uint8_t out[16])
{
	struct cidr c;
	const char *why;

	if (netaddr_cidr_parse(s, &c, &why) != 0 || (c.prefix != 128))
		fail_msg("helper: bad address %s", s);
	memcpy(out, c.addr, 16);
}

static void
test_parse_ok(void **state)
{
	static const struct { const char *in, *net; int prefix; } cases[] = {
		{ "10.0.0.0/8", "10.0.0.0", 104 },
		{ "127.0.0.1", "127.0.0.1", 128 },
		{ "0.0.0.0/0", "0.0.0.0", 96 },
		{ "192.168.1.77/24", "192.168.1.0", 120 },	/* host bits cleared */
		{ "10.0.0.1/8", "10.0.0.0", 104 },
		{ "172.16.0.0/012", "172.16.0.0", 108 },	/* leading zero */
		{ "::1/128", "::1", 128 },
		{ "::1", "::1", 128 },
		{ "fc00::/7", "fc00::", 7 },
		{ "fe80::1:2/10", "fe80::", 10 },
		{ "::/0", "::", 0 },
		{ "::ffff:127.0.0.0/104", "127.0.0.0", 104 },
		{ "2001:db8::/33", "2001:db8::", 33 },
	};
	struct cidr c;
	const char *why;
	char buf[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (netaddr_cidr_parse(cases[i].in, &c, &why) != 0)
			fail_msg("%s rejected: %s", cases[i].in, why);
		assert_int_equal(c.prefix, cases[i].prefix);
		assert_string_equal(netaddr_ntop(c.addr, buf, sizeof buf),
		    cases[i].net);
	}
}

static void
test_parse_bad(void **state)
{
	static const struct { const char *in, *why; } cases[] = {
		{ "10.0.0.0/33", "prefix length over 32" },
		{ "::/129", "prefix length over 128" },
		{ "10.0.0.0/99999999999999999999", "prefix length over 32" },
		{ "10.0.0.0/", "missing prefix length after '/'" },
		{ "10.0.0.0/8x", "prefix length is not a number" },
		{ "10.0.0.0/-1", "prefix length is not a number" },
		{ "10.0.0.0/ 8", "prefix length is not a number" },
		{ "/8", "missing address" },
		{ "", "missing address" },
		{ "10.0.0/8", "not an IPv4 or IPv6 address" },
		{ "010.0.0.0/8", "not an IPv4 or IPv6 address" },
		{ "0x7f.1", "not an IPv4 or IPv6 address" },
		{ "2130706433", "not an IPv4 or IPv6 address" },
		{ "localhost", "not an IPv4 or IPv6 address" },
		{ "fe80::1%eth0/64", "not an IPv4 or IPv6 address" },
		{ "1.2.3.4.5", "not an IPv4 or IPv6 address" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/8",
		  "not an IPv4 or IPv6 address" },
	};
	struct cidr c;
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		why = NULL;
		if (netaddr_cidr_parse(cases[i].in, &c, &why) == 0)
			fail_msg("\"%s\" accepted", cases[i].in);
		assert_non_null(why);
		if (strcmp(why, cases[i].why) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"", cases[i].in,
			    why, cases[i].why);
	}
}

static void
test_match(void **state)
{
	struct cidr lo, lan, v6, all4, mapped, any;
	uint8_t a[16];
	const char *why;

	(void)state;
	assert_int_equal(netaddr_cidr_parse("127.0.0.0/8", &lo, &why), 0);
	assert_int_equal(netaddr_cidr_parse("172.16.0.0/12", &lan, &why), 0);
	assert_int_equal(netaddr_cidr_parse("fc00::/7", &v6, &why), 0);
	assert_int_equal(netaddr_cidr_parse("0.0.0.0/0", &all4, &why), 0);
	assert_int_equal(netaddr_cidr_parse("::ffff:127.0.0.0/104", &mapped,
	    &why), 0);
	assert_int_equal(netaddr_cidr_parse("::/0", &any, &why), 0);

	addr16("127.1.2.3", a);
	assert_true(netaddr_cidr_match(&lo, a));
	assert_true(netaddr_cidr_match(&mapped, a));
	addr16("::ffff:127.0.0.1", a);		/* dual-stack peer */
	assert_true(netaddr_cidr_match(&lo, a));
	addr16("128.0.0.1", a);
	assert_false(netaddr_cidr_match(&lo, a));
	addr16("172.31.255.255", a);
	assert_true(netaddr_cidr_match(&lan, a));
	addr16("172.32.0.0", a);
	assert_false(netaddr_cidr_match(&lan, a));
	addr16("fdff::1", a);
	assert_true(netaddr_cidr_match(&v6, a));
	assert_false(netaddr_cidr_match(&all4, a));	/* IPv4 /0 is IPv4 only */
	assert_true(netaddr_cidr_match(&any, a));
	addr16("fe00::1", a);
	assert_false(netaddr_cidr_match(&v6, a));
	addr16("8.8.8.8", a);
	assert_true(netaddr_cidr_match(&all4, a));
	addr16("::1", a);
	assert_false(netaddr_cidr_match(&all4, a));
	/* ::7f00:1 (IPv4-compatible, not mapped) is not 127.0.0.1. */
	addr16("::127.0.0.1", a);
	assert_false(netaddr_cidr_match(&lo, a));

	{
		struct cidr set[2] = { lo, v6 };
		addr16("fc00::5", a);
		assert_true(netaddr_cidr_match_any(set, 2, a));
		addr16("10.0.0.1", a);
		assert_false(netaddr_cidr_match_any(set, 2, a));
		assert_false(netaddr_cidr_match_any(set, 0, a));
	}
}

static void
test_sockaddr(void **state)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	uint8_t a[16];
	char buf[64];

	(void)state;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(3128);
	inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
	assert_int_equal(netaddr_from_sockaddr((struct sockaddr *)&sin, a), 0);
	assert_string_equal(netaddr_ntop(a, buf, sizeof buf), "10.1.2.3");
	assert_string_equal(netaddr_sockaddr_str((struct sockaddr *)&sin, buf,
	    sizeof buf), "10.1.2.3:3128");

	memset(&sin6, 0, sizeof sin6);
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(80);
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	assert_int_equal(netaddr_from_sockaddr((struct sockaddr *)&sin6, a), 0);
	assert_string_equal(netaddr_ntop(a, buf, sizeof buf), "2001:db8::1");
	assert_string_equal(netaddr_sockaddr_str((struct sockaddr *)&sin6, buf,
	    sizeof buf), "[2001:db8::1]:80");
	inet_pton(AF_INET6, "::ffff:192.0.2.9", &sin6.sin6_addr);
	assert_string_equal(netaddr_sockaddr_str((struct sockaddr *)&sin6, buf,
	    sizeof buf), "192.0.2.9:80");

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	assert_int_equal(netaddr_from_sockaddr((struct sockaddr *)&sun, a), -1);
	assert_string_equal(netaddr_sockaddr_str((struct sockaddr *)&sun, buf,
	    sizeof buf), "unix");
	/* Truncation never overruns. */
	assert_string_equal(netaddr_sockaddr_str((struct sockaddr *)&sin, buf,
	    5), "10.1");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_sockaddr),
	};
	return cmocka_run_group_tests_name("netaddr", tests, NULL, NULL);
}
