/*
 * ev.c - the worker's event loop: epoll for file descriptors, a binary
 * min-heap for timers.
 *
 * Assumes one loop per process and one thread; nothing here locks.
 * Time is CLOCK_MONOTONIC in milliseconds, read once after every
 * epoll_wait() and cached (ev_now()), so every callback of an iteration
 * sees the same "now" and timeouts are computed without extra syscalls.
 *
 * Why it is built this way: a forward proxy has few watcher kinds
 * (listen sockets, client and origin sockets, a few helper fds) and one
 * timer per connection that is restarted constantly.  epoll with the
 * struct ev_io pointer in epoll_data gives O(1) dispatch; a heap whose
 * index lives in the timer (heap_idx) gives O(log n) start, stop and
 * restart without searching.
 *
 * Rules for users of this loop (callbacks may do almost anything):
 *   - An io watcher must be ev_io_stop()ed (or ev_io_set(.., 0)) before
 *     its memory is freed or its fd closed.  Stopping is what makes it
 *     safe: events already fetched by the current epoll_wait() for a
 *     stopped watcher are discarded (ev_io_stop scans the small ready
 *     array and nulls their pointer), so a callback may stop and free
 *     any watcher, including its own, and it will not be touched again.
 *   - A timer must be ev_timer_stop()ed before its memory is freed.  A
 *     timer callback may re-arm its own timer or stop/start others.
 *   - EPOLLEXCLUSIVE can only be given when the fd is first added (the
 *     kernel rejects it in EPOLL_CTL_MOD with EINVAL); it is meant for
 *     listening sockets shared by several workers, which never change
 *     their mask.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker/ev.h"

#define EV_MAX_EVENTS 256

struct ev_loop {
	int epfd;
	bool brk;			/* ev_break() called: leave ev_run */
	uint64_t now;			/* cached monotonic ms */
	struct ev_timer **heap;		/* min-heap on ->when */
	size_t nheap, capheap;
	/*
	 * The batch being dispatched.  ev_io_stop() nulls entries after
	 * 'cur' that point at the stopped watcher; nready is 0 outside
	 * dispatch so stops then cost nothing.
	 */
	struct epoll_event ready[EV_MAX_EVENTS];
	int nready;
	int cur;
	void (*before_wait)(void *);	/* runs before each epoll_wait */
	uint64_t wall;			/* CLOCK_REALTIME ms, read with now */
	void *before_wait_arg;
};

/* Read both clocks once: timers run on the monotonic one, and the wall
 * clock (log timestamps, HTTP dates) is read here so that a busy
 * iteration costs two clock reads, not two per request. */
static void
ev_clock_read(struct ev_loop *loop)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	loop->now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	clock_gettime(CLOCK_REALTIME, &ts);
	loop->wall = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Create a loop; NULL with errno set on failure. */
struct ev_loop *
ev_loop_new(void)
{
	struct ev_loop *loop = calloc(1, sizeof(*loop));

	if (loop == NULL)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int e = errno;
		free(loop);
		errno = e;
		return NULL;
	}
	ev_clock_read(loop);
	return loop;
}

/* Free the loop; watchers are the caller's and are not touched. */
void
ev_loop_free(struct ev_loop *loop)
{
	if (loop == NULL)
		return;
	close(loop->epfd);
	free(loop->heap);
	free(loop);
}

/* ---- io watchers ------------------------------------------------------- */

/* Prepare an io watcher; it is not registered until ev_io_set(). */
void
ev_io_init(struct ev_io *io, int fd, ev_io_cb cb, void *data)
{
	io->fd = fd;
	io->events = 0;
	io->cb = cb;
	io->data = data;
}

/* Forget events of this batch not yet dispatched for io. */
static void
ev_io_forget_pending(struct ev_loop *loop, struct ev_io *io)
{
	for (int i = loop->cur + 1; i < loop->nready; i++)
		if (loop->ready[i].data.ptr == io)
			loop->ready[i].data.ptr = NULL;
}

/* Register, modify or (events == 0) remove io; 0, or -1 with errno. */
int
ev_io_set(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
	struct epoll_event ee;
	int op;

	if (events == 0) {
		ev_io_stop(loop, io);
		return 0;
	}
	memset(&ee, 0, sizeof(ee));
	ee.events = events;
	ee.data.ptr = io;
	op = io->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	if (epoll_ctl(loop->epfd, op, io->fd, &ee) < 0)
		return -1;
	io->events = events;
	return 0;
}

/* Remove io from the loop; pending events of this batch are dropped. */
void
ev_io_stop(struct ev_loop *loop, struct ev_io *io)
{
	if (io->events != 0) {
		/*
		 * Failure (EBADF: the caller closed the fd first) is
		 * harmless: the kernel already dropped the registration.
		 */
		(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
		io->events = 0;
	}
	ev_io_forget_pending(loop, io);
}

/* ---- timers: a binary min-heap ordered by ->when ------------------------ */

static void
ev_heap_place(struct ev_loop *loop, size_t i, struct ev_timer *t)
{
	loop->heap[i] = t;
	t->heap_idx = (int)i;
}

static void
ev_heap_up(struct ev_loop *loop, size_t i)
{
	struct ev_timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (loop->heap[parent]->when <= t->when)
			break;
		ev_heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	ev_heap_place(loop, i, t);
}

static void
ev_heap_down(struct ev_loop *loop, size_t i)
{
	struct ev_timer *t = loop->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= loop->nheap)
			break;
		if (c + 1 < loop->nheap &&
		    loop->heap[c + 1]->when < loop->heap[c]->when)
			c++;
		if (t->when <= loop->heap[c]->when)
			break;
		ev_heap_place(loop, i, loop->heap[c]);
		i = c;
	}
	ev_heap_place(loop, i, t);
}

/* Prepare a timer (not armed). */
void
ev_timer_init(struct ev_timer *t, ev_timer_cb cb, void *data)
{
	t->when = 0;
	t->heap_idx = -1;
	t->cb = cb;
	t->data = data;
}

/*
 * Arm or re-arm t to fire ms after ev_now().  The heap only grows by
 * doubling; should that allocation fail we have no way to report it
 * through this void contract, and a silently lost timer would hang a
 * connection forever, so we abort (the master respawns the worker).
 */
void
ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t ms)
{
	t->when = loop->now + ms;
	if (t->heap_idx >= 0) {
		size_t i = (size_t)t->heap_idx;
		ev_heap_up(loop, i);
		ev_heap_down(loop, (size_t)t->heap_idx);
		return;
	}
	if (loop->nheap == loop->capheap) {
		size_t ncap = loop->capheap ? loop->capheap * 2 : 64;
		struct ev_timer **nh = realloc(loop->heap, ncap * sizeof(*nh));
		if (nh == NULL)
			abort();
		loop->heap = nh;
		loop->capheap = ncap;
	}
	ev_heap_place(loop, loop->nheap++, t);
	ev_heap_up(loop, (size_t)t->heap_idx);
}

/* Disarm t; harmless if it is not armed. */
void
ev_timer_stop(struct ev_loop *loop, struct ev_timer *t)
{
	size_t i;
	struct ev_timer *last;

	if (t->heap_idx < 0)
		return;
	i = (size_t)t->heap_idx;
	t->heap_idx = -1;
	last = loop->heap[--loop->nheap];
	if (last == t)
		return;
	/* Fill the hole with the last element and restore the order. */
	ev_heap_place(loop, i, last);
	ev_heap_up(loop, i);
	ev_heap_down(loop, (size_t)last->heap_idx);
}

/* ---- time and the loop itself ------------------------------------------ */

/* The cached monotonic time of this iteration, in ms. */
uint64_t
ev_now(struct ev_loop *loop)
{
	return loop->now;
}

uint64_t
ev_wall_ms(struct ev_loop *loop)
{
	return loop->wall;
}

/* Re-read the clock (for callbacks that ran long). */
void
ev_now_update(struct ev_loop *loop)
{
	ev_clock_read(loop);
}

static int
ev_wait_timeout(const struct ev_loop *loop)
{
	uint64_t when;

	if (loop->nheap == 0)
		return -1;
	when = loop->heap[0]->when;
	if (when <= loop->now)
		return 0;
	if (when - loop->now > INT_MAX)
		return INT_MAX;
	return (int)(when - loop->now);
}

/*
 * Run the timers due at loop->now.  At most as many callbacks as there
 * were armed timers when the phase began: a timer that re-arms itself
 * with 0 ms then fires once per iteration instead of starving the loop.
 */
static void
ev_run_timers(struct ev_loop *loop)
{
	size_t budget = loop->nheap;

	while (budget-- > 0 && loop->nheap > 0 &&
	    loop->heap[0]->when <= loop->now) {
		struct ev_timer *t = loop->heap[0];
		ev_timer_stop(loop, t);
		t->cb(loop, t);
	}
}

/*
 * Run until ev_break().  A break requested before ev_run() (e.g. by a
 * callback that ran synchronously) makes it return at once; the flag is
 * cleared on return so the loop can be run again.
 */
/* Call fn(arg) each time the loop is about to sleep (batch work such as
 * flushing a log buffer once per iteration, not once per event). */
void
ev_set_before_wait(struct ev_loop *loop, void (*fn)(void *), void *arg)
{
	loop->before_wait = fn;
	loop->before_wait_arg = arg;
}

int
ev_run(struct ev_loop *loop)
{
	int rc = 0;

	while (!loop->brk) {
		if (loop->before_wait)
			loop->before_wait(loop->before_wait_arg);
		int n = epoll_wait(loop->epfd, loop->ready, EV_MAX_EVENTS,
		    ev_wait_timeout(loop));
		ev_clock_read(loop);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -1;
			break;
		}
		loop->nready = n;
		for (loop->cur = 0; loop->cur < loop->nready; loop->cur++) {
			struct epoll_event *e = &loop->ready[loop->cur];
			struct ev_io *io = e->data.ptr;
			/* NULL: stopped by an earlier callback of this batch. */
			if (io != NULL)
				io->cb(loop, io, e->events);
		}
		loop->nready = 0;
		loop->cur = 0;
		ev_run_timers(loop);
	}
	loop->brk = false;
	return rc;
}

/* Make ev_run() return once the current iteration is done. */
void
ev_break(struct ev_loop *loop)
{
	loop->brk = true;
}
