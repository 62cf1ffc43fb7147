/*
 * ev.h - the worker's event loop: epoll plus a binary heap of timers.
 *
 * One loop per worker process, one thread.  File descriptors are
 * registered edge-triggered (EPOLLET) unless the caller asks otherwise,
 * so a handler must read/write until EAGAIN.  Time is CLOCK_MONOTONIC
 * in milliseconds, cached once per loop iteration (ev_now()).
 */
#ifndef SLUICE_EV_H
#define SLUICE_EV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct ev_loop;
struct ev_io;
struct ev_timer;

typedef void (*ev_io_cb)(struct ev_loop *loop, struct ev_io *io, uint32_t revents);
typedef void (*ev_timer_cb)(struct ev_loop *loop, struct ev_timer *t);

struct ev_io {
	int fd;
	uint32_t events;		/* registered EPOLL* mask, 0 = not registered */
	ev_io_cb cb;
	void *data;
};

struct ev_timer {
	uint64_t when;			/* absolute ev_now() ms */
	int heap_idx;			/* -1 when not armed */
	ev_timer_cb cb;
	void *data;
};

struct ev_loop *ev_loop_new(void);
void ev_loop_free(struct ev_loop *loop);

/* Initialise an io watcher (not yet registered). */
void ev_io_init(struct ev_io *io, int fd, ev_io_cb cb, void *data);
/* Register/modify/remove.  events: EPOLLIN|EPOLLOUT|EPOLLET|EPOLLEXCLUSIVE...
 * ev_io_set with events == 0 removes the fd from epoll. 0 or -1 (errno). */
int ev_io_set(struct ev_loop *loop, struct ev_io *io, uint32_t events);
void ev_io_stop(struct ev_loop *loop, struct ev_io *io);

void ev_timer_init(struct ev_timer *t, ev_timer_cb cb, void *data);
/* Arm (or re-arm) to fire ms milliseconds from ev_now(). */
void ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t ms);
void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t);
static inline bool ev_timer_active(const struct ev_timer *t) { return t->heap_idx >= 0; }

/* Cached monotonic time (ms) of this loop iteration. */
uint64_t ev_now(struct ev_loop *loop);
/* The wall clock (ms since the epoch), read with ev_now(). */
uint64_t ev_wall_ms(struct ev_loop *loop);
/* Refresh the cached time now. */
void ev_now_update(struct ev_loop *loop);

/* Call fn(arg) each time the loop is about to wait for events. */
void ev_set_before_wait(struct ev_loop *loop, void (*fn)(void *), void *arg);

/* Run until ev_break(); returns 0, or -1 on an epoll failure. */
int ev_run(struct ev_loop *loop);
void ev_break(struct ev_loop *loop);

#endif
