/*
 * test_peer_count.c - the per-client connection counter behind
 * limits.client_connections: counts per address, entries freed at zero,
 * IPv4 and IPv6 kept apart, many addresses in one table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "worker/peer_count.h"

static void
addr4(uint8_t a[16], unsigned n)
{
	memset(a, 0, 16);
	a[10] = a[11] = 0xff;
	a[12] = 10;
	a[13] = (uint8_t)(n >> 16);
	a[14] = (uint8_t)(n >> 8);
	a[15] = (uint8_t)n;
}

static void
test_counts(void **state)
{
	struct peer_count *pc = peer_count_new();
	uint8_t a[16], b[16];

	(void)state;
	addr4(a, 1);
	addr4(b, 2);
	assert_int_equal(peer_count_get(pc, a), 0);
	assert_int_equal(peer_count_inc(pc, a), 1);
	assert_int_equal(peer_count_inc(pc, a), 2);
	assert_int_equal(peer_count_inc(pc, b), 1);
	assert_int_equal(peer_count_get(pc, a), 2);
	peer_count_dec(pc, a);
	assert_int_equal(peer_count_get(pc, a), 1);
	peer_count_dec(pc, a);
	assert_int_equal(peer_count_get(pc, a), 0);
	/* decrementing an unknown address is harmless */
	peer_count_dec(pc, a);
	assert_int_equal(peer_count_get(pc, a), 0);
	assert_int_equal(peer_count_get(pc, b), 1);
	peer_count_free(pc);
}

static void
test_v4_v6_apart(void **state)
{
	struct peer_count *pc = peer_count_new();
	uint8_t v4[16], v6[16];

	(void)state;
	addr4(v4, 1);
	memcpy(v6, v4, 16);
	v6[10] = v6[11] = 0;	/* ::10.0.0.1, not ::ffff:10.0.0.1 */
	assert_int_equal(peer_count_inc(pc, v4), 1);
	assert_int_equal(peer_count_inc(pc, v6), 1);
	assert_int_equal(peer_count_get(pc, v4), 1);
	peer_count_free(pc);
}

static void
test_many(void **state)
{
	struct peer_count *pc = peer_count_new();
	uint8_t a[16];

	(void)state;
	/* more addresses than buckets: chains must hold them all */
	for (unsigned i = 0; i < 20000; i++) {
		addr4(a, i);
		assert_int_equal(peer_count_inc(pc, a), 1);
	}
	for (unsigned i = 0; i < 20000; i += 2) {
		addr4(a, i);
		peer_count_dec(pc, a);
	}
	for (unsigned i = 0; i < 20000; i++) {
		addr4(a, i);
		assert_int_equal(peer_count_get(pc, a), i % 2);
	}
	peer_count_free(pc);	/* ASan: every node freed */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_v4_v6_apart),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests_name("peer_count", tests, NULL, NULL);
}
