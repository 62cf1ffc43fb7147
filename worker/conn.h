/*
 * conn.h - the worker's process state and one client connection.
 *
 * struct worker is the one state struct of a worker process (STYLE 2);
 * worker.c owns it, conn.c drives connections with it.  A connection is
 * one explicit state machine (conn.c): read request -> check -> resolve
 * -> connect -> forward both ways -> keep-alive or close.
 */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "lib/buf.h"
#include "shm/shm_stats.h"
#include "worker/ev.h"
#include "worker/http_parse.h"
#include "worker/http_url.h"
#include "worker/dns.h"

struct upool;
struct cache;
struct peer_count;
struct upstream;
struct accesslog;
struct conn;

struct worker_listener {
	struct worker *w;
	int fd;
	struct ev_io io;
	const struct conf_listen *cl;
	struct sockaddr_storage sa;	/* bound address, for loop detection */
	socklen_t salen;
};

struct worker {
	const struct sluice_conf *conf;
	struct ev_loop *loop;
	struct dns *dns;
	struct upool *pool;
	struct accesslog *alog;
	struct peer_count *peers;	/* open connections per client address */
	uint64_t limit_logged_at;	/* ev_now() of the last client-limit warning */
	struct stats_slot_sh *stats;
	struct cache *cache;		/* the shared cache, NULL when off */
	struct mc_tier *mc;		/* the memcached tier, NULL when off */
	struct filter *filter;		/* the URL filter, NULL when no rules */
	struct buf fscratch;		/* the filter's canonical URL */
	int lt_wday, lt_min;		/* local time for time ACLs ... */
	uint64_t lt_at;			/* ... computed at this wall second */
	struct conn *cwait;		/* connections waiting on cache fills */
	struct worker_listener *listeners;
	size_t nlisteners;
	struct conn *conns;		/* every open client connection */
	unsigned nconns;
	bool stopping;			/* graceful stop: no keep-alive, no accept */
	int spare_fd;			/* released to accept() on EMFILE */
	struct http_limits limits;
	uint8_t (*local_addrs)[16];	/* this host's addresses, for loop detection */
	size_t nlocal_addrs;
	size_t via_len;			/* strlen of "1.1 HOST (sluice)" */
	char via[320];
};

/* Take a new client socket from listener l.  Owns fd from here on. */
void conn_accept(struct worker *w, struct worker_listener *l, int fd,
    const struct sockaddr *peer, socklen_t peerlen);
/* The io callback of every upstream socket (owned or pooled). */
void conn_upstream_io(struct ev_loop *loop, struct ev_io *io, uint32_t ev);
/* Graceful stop: close idle connections, let busy ones finish. */
void conn_stop_idle(struct worker *w);
/* Fast stop: close everything. */
void conn_close_all(struct worker *w);

#endif
