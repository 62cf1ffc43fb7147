/*
 * test_ev.c - unit tests for the worker's event loop (worker/ev.c).
 *
 * Assumes a Linux kernel with epoll; uses pipes/socketpairs and short
 * real timers (a few ms), each test bounded by a guard timer so a bug
 * fails the test instead of hanging it.
 *
 * Why: every connection's lifetime hangs on this loop; the cases that
 * matter most are the ones callbacks make hard (watchers stopped or
 * freed while their events are pending in the same batch, timers that
 * re-arm themselves).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "worker/ev.h"

/* ---- helpers ------------------------------------------------------------ */

struct guard {
	struct ev_timer t;
	bool fired;
};

static void
guard_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct guard *g = t->data;

	g->fired = true;
	ev_break(loop);
}

static void
guard_start(struct ev_loop *loop, struct guard *g, uint64_t ms)
{
	g->fired = false;
	ev_timer_init(&g->t, guard_cb, g);
	ev_timer_start(loop, &g->t, ms);
}

static int
setup(void **state)
{
	*state = ev_loop_new();
	return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	ev_loop_free(*state);
	return 0;
}

/* ---- timers ------------------------------------------------------------- */

struct order {
	int seen[16];
	int n;
	int last;		/* break when this id fires */
};

struct otimer {
	struct ev_timer t;
	struct order *o;
	int id;
};

static void
order_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct otimer *ot = t->data;

	assert_false(ev_timer_active(t));
	ot->o->seen[ot->o->n++] = ot->id;
	if (ot->id == ot->o->last)
		ev_break(loop);
}

static void
test_timers_in_order(void **state)
{
	struct ev_loop *loop = *state;
	struct order o = { .n = 0, .last = 30 };
	struct otimer ts[4] = { { .id = 30 }, { .id = 10 }, { .id = 20 }, { .id = 5 } };
	uint64_t start = ev_now(loop);
	struct guard g;

	for (int i = 0; i < 4; i++) {
		ts[i].o = &o;
		ev_timer_init(&ts[i].t, order_cb, &ts[i]);
		ev_timer_start(loop, &ts[i].t, (uint64_t)ts[i].id);
		assert_true(ev_timer_active(&ts[i].t));
	}
	guard_start(loop, &g, 2000);
	assert_int_equal(ev_run(loop), 0);
	assert_false(g.fired);
	assert_int_equal(o.n, 4);
	assert_int_equal(o.seen[0], 5);
	assert_int_equal(o.seen[1], 10);
	assert_int_equal(o.seen[2], 20);
	assert_int_equal(o.seen[3], 30);
	assert_true(ev_now(loop) - start >= 30);
	ev_timer_stop(loop, &g.t);
}

static void
test_timer_stop_restart(void **state)
{
	struct ev_loop *loop = *state;
	struct order o = { .n = 0, .last = 1 };
	struct otimer a = { .o = &o, .id = 1 }, b = { .o = &o, .id = 2 },
	    c = { .o = &o, .id = 3 };
	struct guard g;

	ev_timer_init(&a.t, order_cb, &a);
	ev_timer_init(&b.t, order_cb, &b);
	ev_timer_init(&c.t, order_cb, &c);
	assert_false(ev_timer_active(&a.t));
	ev_timer_start(loop, &a.t, 5);
	ev_timer_start(loop, &b.t, 20);
	ev_timer_start(loop, &c.t, 10);
	/* c never fires; a is pushed behind b; stopping twice is harmless. */
	ev_timer_stop(loop, &c.t);
	ev_timer_stop(loop, &c.t);
	assert_false(ev_timer_active(&c.t));
	ev_timer_start(loop, &a.t, 40);
	guard_start(loop, &g, 2000);
	assert_int_equal(ev_run(loop), 0);
	assert_false(g.fired);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.seen[0], 2);
	assert_int_equal(o.seen[1], 1);
	ev_timer_stop(loop, &g.t);
}

struct rearm {
	struct ev_timer t;
	int count;
	int limit;
	uint64_t ms;
};

static void
rearm_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct rearm *r = t->data;

	if (++r->count < r->limit)
		ev_timer_start(loop, t, r->ms);
	else if (r->ms > 0)
		ev_break(loop);
}

static void
test_timer_rearms_itself(void **state)
{
	struct ev_loop *loop = *state;
	struct rearm r = { .count = 0, .limit = 5, .ms = 2 };
	uint64_t start = ev_now(loop);
	struct guard g;

	ev_timer_init(&r.t, rearm_cb, &r);
	ev_timer_start(loop, &r.t, 2);
	guard_start(loop, &g, 2000);
	ev_run(loop);
	assert_false(g.fired);
	assert_int_equal(r.count, 5);
	assert_false(ev_timer_active(&r.t));
	assert_true(ev_now(loop) - start >= 10);
	ev_timer_stop(loop, &g.t);
}

/* A timer re-arming with 0 ms must not starve the others. */
static void
test_timer_zero_rearm_no_starvation(void **state)
{
	struct ev_loop *loop = *state;
	struct rearm r = { .count = 0, .limit = 1000000, .ms = 0 };
	struct guard g;

	ev_timer_init(&r.t, rearm_cb, &r);
	ev_timer_start(loop, &r.t, 0);
	guard_start(loop, &g, 20);
	ev_run(loop);
	assert_true(g.fired);
	assert_true(r.count > 1);
	assert_true(r.count < r.limit);
	ev_timer_stop(loop, &r.t);
}

/* Many timers, random delays, random stops: the heap keeps its order. */
struct htimer {
	struct ev_timer t;
	uint64_t *lastwhen;
	int *fired;
	bool stopped;
};

static void
heap_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct htimer *h = t->data;

	assert_false(h->stopped);
	assert_true(t->when >= *h->lastwhen);
	assert_true(t->when <= ev_now(loop));
	*h->lastwhen = t->when;
	(*h->fired)++;
}

static void
test_timer_heap_stress(void **state)
{
	struct ev_loop *loop = *state;
	enum { N = 2000 };
	struct htimer *hs = calloc(N, sizeof(*hs));
	uint64_t lastwhen = 0;
	int fired = 0, expect = 0;
	struct guard g;

	assert_non_null(hs);
	srand(42);
	for (int i = 0; i < N; i++) {
		hs[i].lastwhen = &lastwhen;
		hs[i].fired = &fired;
		ev_timer_init(&hs[i].t, heap_cb, &hs[i]);
		ev_timer_start(loop, &hs[i].t, (uint64_t)(rand() % 40));
	}
	for (int i = 0; i < N; i++) {
		int k = rand() % 3;
		if (k == 0) {
			ev_timer_stop(loop, &hs[i].t);
			hs[i].stopped = true;
		} else if (k == 1) {
			ev_timer_start(loop, &hs[i].t, (uint64_t)(rand() % 40));
		}
		if (!hs[i].stopped)
			expect++;
	}
	guard_start(loop, &g, 100);
	ev_run(loop);
	assert_true(g.fired);
	assert_int_equal(fired, expect);
	for (int i = 0; i < N; i++)
		assert_false(ev_timer_active(&hs[i].t));
	free(hs);
}

/* ---- io ---------------------------------------------------------------- */

struct rd {
	struct ev_io io;
	int calls;
	uint32_t revents;
	char got;
	bool break_after;
};

static void
rd_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	struct rd *r = io->data;

	r->calls++;
	r->revents = revents;
	if (revents & EPOLLIN)
		assert_int_equal(read(io->fd, &r->got, 1), 1);
	if (r->break_after)
		ev_break(loop);
}

static void
test_io_pipe_readable(void **state)
{
	struct ev_loop *loop = *state;
	int p[2];
	struct rd r = { .calls = 0, .break_after = true };
	struct guard g;

	assert_int_equal(pipe(p), 0);
	ev_io_init(&r.io, p[0], rd_cb, &r);
	assert_int_equal(ev_io_set(loop, &r.io, EPOLLIN | EPOLLET), 0);
	assert_int_equal(r.io.events, EPOLLIN | EPOLLET);
	assert_int_equal(write(p[1], "x", 1), 1);
	guard_start(loop, &g, 2000);
	ev_run(loop);
	assert_false(g.fired);
	assert_int_equal(r.calls, 1);
	assert_true(r.revents & EPOLLIN);
	assert_int_equal(r.got, 'x');

	/* Nothing more to read: the next run only sees the guard. */
	r.break_after = false;
	ev_timer_start(loop, &g.t, 20);
	ev_run(loop);
	assert_true(g.fired);
	assert_int_equal(r.calls, 1);
	ev_io_stop(loop, &r.io);
	assert_int_equal(r.io.events, 0);
	close(p[0]);
	close(p[1]);
}

static void
test_io_modify_and_remove(void **state)
{
	struct ev_loop *loop = *state;
	int sv[2];
	struct rd r = { .calls = 0, .break_after = true };
	struct guard g;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ev_io_init(&r.io, sv[0], rd_cb, &r);
	/* Level-triggered read interest, then switch to write (MOD). */
	assert_int_equal(ev_io_set(loop, &r.io, EPOLLIN), 0);
	assert_int_equal(ev_io_set(loop, &r.io, EPOLLOUT), 0);
	guard_start(loop, &g, 2000);
	ev_run(loop);
	assert_false(g.fired);
	assert_int_equal(r.calls, 1);
	assert_true(r.revents & EPOLLOUT);

	/* EPOLLEXCLUSIVE is refused once registered (MOD): documented. */
	assert_int_equal(ev_io_set(loop, &r.io, EPOLLIN | EPOLLEXCLUSIVE), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(r.io.events, EPOLLOUT);

	/* events == 0 removes it: writable, yet no more calls. */
	assert_int_equal(ev_io_set(loop, &r.io, 0), 0);
	assert_int_equal(r.io.events, 0);
	ev_timer_start(loop, &g.t, 20);
	ev_run(loop);
	assert_true(g.fired);
	assert_int_equal(r.calls, 1);

	/* And it can be added again, with EPOLLEXCLUSIVE this time. */
	assert_int_equal(ev_io_set(loop, &r.io, EPOLLOUT | EPOLLEXCLUSIVE), 0);
	guard_start(loop, &g, 2000);
	ev_run(loop);
	assert_false(g.fired);
	assert_int_equal(r.calls, 2);
	ev_io_stop(loop, &r.io);
	ev_timer_stop(loop, &g.t);
	close(sv[0]);
	close(sv[1]);
}

/*
 * Two readable watchers in one batch; whichever runs first stops and
 * frees the other.  The other's fetched event must be skipped (ASan
 * would report the use after free if it were not).
 */
struct peer {
	struct ev_io io;
	struct peer **other;	/* slot holding the other watcher */
	struct peer **self;
	int *calls;
};

static void
peer_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	struct peer *me = io->data;

	(*me->calls)++;
	if (*me->other != NULL) {
		ev_io_stop(loop, &(*me->other)->io);
		free(*me->other);
		*me->other = NULL;
	}
	/* And stop and free itself too: nothing may touch it afterwards. */
	*me->self = NULL;
	ev_io_stop(loop, io);
	free(me);
}

static void
test_io_stop_pending_in_batch(void **state)
{
	struct ev_loop *loop = *state;
	int a[2], b[2], calls = 0;
	struct peer *slot[2];
	struct guard g;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	assert_int_equal(write(a[1], "1", 1), 1);
	assert_int_equal(write(b[1], "2", 1), 1);
	for (int i = 0; i < 2; i++) {
		slot[i] = calloc(1, sizeof(*slot[i]));
		assert_non_null(slot[i]);
		slot[i]->self = &slot[i];
		slot[i]->other = &slot[1 - i];
		slot[i]->calls = &calls;
		ev_io_init(&slot[i]->io, i == 0 ? a[0] : b[0], peer_cb, slot[i]);
		assert_int_equal(ev_io_set(loop, &slot[i]->io, EPOLLIN), 0);
	}
	guard_start(loop, &g, 30);
	ev_run(loop);
	assert_true(g.fired);
	assert_int_equal(calls, 1);
	assert_null(slot[0]);
	assert_null(slot[1]);
	close(a[0]); close(a[1]); close(b[0]); close(b[1]);
}

/* ---- ev_break ------------------------------------------------------------ */

static void
break_cb(struct ev_loop *loop, struct ev_timer *t)
{
	int *n = t->data;

	(*n)++;
	ev_break(loop);
}

static void
test_break(void **state)
{
	struct ev_loop *loop = *state;
	struct ev_timer t1, t2;
	int n1 = 0, n2 = 0;

	/* Both due in the same iteration: the break lets the iteration end. */
	ev_timer_init(&t1, break_cb, &n1);
	ev_timer_init(&t2, break_cb, &n2);
	ev_timer_start(loop, &t1, 1);
	ev_timer_start(loop, &t2, 1);
	assert_int_equal(ev_run(loop), 0);
	assert_int_equal(n1, 1);
	assert_int_equal(n2, 1);

	/* A break requested before ev_run() returns at once. */
	ev_timer_start(loop, &t1, 10000);
	ev_break(loop);
	assert_int_equal(ev_run(loop), 0);
	assert_int_equal(n1, 1);
	assert_true(ev_timer_active(&t1));

	/* The flag was consumed: the loop runs again until the next break. */
	ev_timer_start(loop, &t1, 5);
	assert_int_equal(ev_run(loop), 0);
	assert_int_equal(n1, 2);
}

static void
test_now_update(void **state)
{
	struct ev_loop *loop = *state;
	uint64_t before = ev_now(loop);

	usleep(5000);
	assert_int_equal(ev_now(loop), before);	/* cached */
	ev_now_update(loop);
	assert_true(ev_now(loop) >= before + 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_timers_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_stop_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_rearms_itself, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_zero_rearm_no_starvation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_heap_stress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_pipe_readable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_modify_and_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_stop_pending_in_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_break, setup, teardown),
		cmocka_unit_test_setup_teardown(test_now_update, setup, teardown),
	};

	return cmocka_run_group_tests_name("ev", tests, NULL, NULL);
}
