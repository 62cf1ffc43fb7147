/*
 * upstream.h - origin connections and the per-worker keep-alive pool.
 *
 * An upstream is one TCP connection to an origin.  While a client
 * request uses it, it belongs to that connection (owner != NULL) and
 * conn.c drives it; between requests it waits in the pool, keyed by the
 * authority "host:port" it was opened for, until it is reused, the
 * origin closes it, or it idles out.  A pooled connection that becomes
 * readable is closed: an idle origin has nothing to say, so any byte or
 * EOF means it is unusable (RFC 9112 9.3, HOSTILE #51).
 */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/buf.h"
#include "worker/ev.h"
#include "worker/http_url.h"

struct conn;
struct upool;

struct upstream {
	int fd;
	struct ev_io io;
	struct buf in;			/* origin -> sluice */
	struct buf out;			/* sluice -> origin */
	struct conn *owner;		/* NULL while pooled */
	struct upool *pool;
	struct upstream *next, *prev;	/* pool list links */
	uint64_t idle_until;		/* pooled: ev_now() deadline */
	struct sockaddr_storage sa;
	socklen_t salen;
	bool rd_ready, wr_ready;	/* edge-triggered readiness not yet consumed */
	bool hup;			/* the origin's FIN/RST was reported */
	bool connected;
	bool reused;			/* taken from the pool */
	unsigned requests;		/* requests sent on this connection */
	char key[URL_HOST_MAX + 8];	/* "host:port" */
};

struct upool *upool_new(struct ev_loop *loop, ev_io_cb cb, unsigned max_idle,
    uint64_t idle_ms);
void upool_free(struct upool *p);

/* A pooled connection for key, detached from the pool, or NULL. */
struct upstream *upool_get(struct upool *p, const char *key);
/* Put a connection back after a complete exchange (or close it when the
 * pool is full or stopping). */
void upool_put(struct upool *p, struct upstream *u);
/* The pooled connection u saw an event: close it. */
void upool_event(struct upool *p, struct upstream *u);
/* Close idle connections whose time is up; returns the ms until the next
 * deadline (or 0 when none). */
uint64_t upool_expire(struct upool *p);
/* Close every idle connection (graceful stop). */
void upool_drain(struct upool *p);

/* Start a non-blocking connect to sa.  Returns the upstream (connected
 * may be false: wait for EPOLLOUT) or NULL with errno set. */
struct upstream *upstream_connect(struct upool *p, const struct sockaddr *sa,
    socklen_t salen, const char *key);
/* After EPOLLOUT on a connecting socket: 0 when connected, else errno. */
int upstream_connect_result(struct upstream *u);
void upstream_close(struct upool *p, struct upstream *u);

#endif
