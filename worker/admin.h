/*
 * admin.h - the admin (stats) listener of a worker (worker/admin.c).
 *
 * Every worker accepts on the admin socket the master bound (with
 * EPOLLEXCLUSIVE, like the proxy listeners).  A connection there is one
 * request head (at most 4 KiB, 5 s), one answer, then close:
 *   GET|HEAD /stats    200 application/json   (shm_stats_json)
 *   GET|HEAD /metrics  200 text/plain; version=0.0.4 (shm_stats_prometheus)
 *   other paths 404, other methods 405, a request carrying Via (it came
 *   through a proxy) 403, a malformed head 400 (or the parser's
 *   414/431/501/505); always Connection: close.
 * Admin connections are not client connections: they move no proxy
 * counter and are not limited by limits.client_connections.
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include "worker/ev.h"

struct admin;
struct stats_sh;
struct cache;

/* Start accepting on fd (the master's admin socket) in loop.  stats is
 * the whole region (every slot is summed); cache may be NULL (no cache
 * gauges).  NULL with errno set on failure. */
struct admin *admin_new(struct ev_loop *loop, int fd,
    const struct stats_sh *stats, const struct cache *cache);
/* Stop accepting and close the listening fd; connections already
 * accepted are still answered while the worker drains. */
void admin_stop(struct admin *a);
/* admin_stop(), close what is left, and free; a may be NULL. */
void admin_free(struct admin *a);

#endif
