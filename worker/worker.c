/*
 * worker.c - one worker process: set up the loop, accept, stop.
 *
 * The worker gets everything it knows in struct worker_args (STYLE 2)
 * and builds its one state struct (struct worker, conn.h) from it.
 * Listening sockets are shared by all workers; each registers them with
 * EPOLLEXCLUSIVE so one worker wakes per new connection.  Signals arrive
 * through a signalfd, so handlers never run inside the state machine.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ifaddrs.h>
#ifdef HAVE_PRCTL
#include <sys/prctl.h>
#endif

#include "lib/log.h"
#include "worker/accesslog.h"
#include "worker/admin.h"
#include "worker/cache_serve.h"
#include "shm/cache.h"
#include "worker/conn.h"
#include "worker/mc_tier.h"
#include "worker/peer_count.h"
#include "worker/upstream.h"
#include "worker/worker.h"

#define ACCEPT_BATCH	64		/* accepts per wakeup, for fairness */
#define ACCEPT_PAUSE_MS	100		/* accept pause after EMFILE */
#define FLUSH_MS	1000		/* at most one dropped-lines warning per second */
#define POOL_MAX_IDLE	256		/* idle origin connections kept */

struct worker_rt {
	struct worker w;
	struct ev_io sig_io;
	struct ev_io master_io;
	struct ev_io cache_io;		/* a fill we wait on moved */
	struct ev_io mc_io;		/* memcached jobs completed */
	struct ev_timer beat_timer;	/* turns the loop at least once a second */
	struct ev_timer flush_timer;	/* rate-limits the dropped-lines warning */
	uint64_t dropped_unreported;
	struct ev_timer pool_timer;
	struct ev_timer accept_timer;	/* resumes accepting after EMFILE */
	struct ev_timer stop_timer;	/* graceful stop deadline */
	struct admin *admin;		/* the stats listener, NULL when none */
	int exit_code;
};

/* The heartbeat is stamped before every wait; this makes an idle loop
 * turn so the master's watchdog sees it alive. */
static void
on_beat(struct ev_loop *loop, struct ev_timer *t)
{
	struct worker_rt *rt = t->data;

	mc_tier_gauges(rt->w.mc);
	ev_timer_start(loop, t, 1000);
}

static void
on_mc_ready(struct ev_loop *loop, struct ev_io *io, uint32_t ev)
{
	struct worker_rt *rt = io->data;

	(void)loop;
	(void)ev;
	mc_tier_ready(rt->w.mc);
}

/* A cache fill this worker's connections wait on has moved. */
static void
on_cache_wake(struct ev_loop *loop, struct ev_io *io, uint32_t ev)
{
	struct worker_rt *rt = io->data;

	(void)loop;
	(void)ev;
	cache_send_wake(&rt->w);
}

static void
listeners_set(struct worker *w, bool on)
{
	for (size_t i = 0; i < w->nlisteners; i++) {
		struct worker_listener *l = &w->listeners[i];
		if (on && !l->io.events)
			(void)ev_io_set(w->loop, &l->io, EPOLLIN | EPOLLEXCLUSIVE);
		else if (!on && l->io.events)
			ev_io_stop(w->loop, &l->io);
	}
}

static void
accept_resume(struct ev_loop *loop, struct ev_timer *t)
{
	struct worker *w = t->data;

	(void)loop;
	if (!w->stopping)
		listeners_set(w, true);
}

static void
on_accept(struct ev_loop *loop, struct ev_io *io, uint32_t ev)
{
	struct worker_listener *l = io->data;
	struct worker *w = l->w;

	(void)ev;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_accept(w, l, fd, (struct sockaddr *)&ss, sl);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		shm_stats_add(w->stats, STAT_accept_errors, 1);
		if (errno == EMFILE || errno == ENFILE) {
			/* Out of fds: use the spare one to take the connection
			 * off the queue and close it, so the level-triggered
			 * listener does not spin; then pause accepting briefly. */
			if (w->spare_fd >= 0) {
				close(w->spare_fd);
				w->spare_fd = -1;
				fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0)
					close(fd);
				w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			}
			log_warn("accept: %s; pausing accept for %d ms", strerror(errno), ACCEPT_PAUSE_MS);
			listeners_set(w, false);
			struct worker_rt *r = (struct worker_rt *)w;
			ev_timer_start(loop, &r->accept_timer, ACCEPT_PAUSE_MS);
			return;
		}
		/* ENOBUFS, ENOMEM, EPERM...: the queued connection stays
		 * and the level-triggered listener would wake us at once;
		 * pause like for EMFILE instead of spinning. */
		log_warn("accept: %s; pausing accept for %d ms", strerror(errno),
		    ACCEPT_PAUSE_MS);
		listeners_set(w, false);
		ev_timer_start(loop, &((struct worker_rt *)w)->accept_timer, ACCEPT_PAUSE_MS);
		return;
	}
}

/* Graceful stop: no more accepts, idle connections closed after a short
 * grace (conn_stop_idle), busy ones finish; exit when none are left or
 * at the shutdown deadline. */
static void
worker_stop_graceful(struct worker_rt *rt)
{
	struct worker *w = &rt->w;

	if (w->stopping)
		return;
	w->stopping = true;
	listeners_set(w, false);
	for (size_t i = 0; i < w->nlisteners; i++) {
		close(w->listeners[i].fd);
		w->listeners[i].fd = -1;
	}
	admin_stop(rt->admin);
	upool_drain(w->pool);
	conn_stop_idle(w);
	ev_timer_start(w->loop, &rt->stop_timer, (uint64_t)w->conf->timeouts.shutdown * 1000);
	if (w->nconns == 0)
		ev_break(w->loop);
}

static void
on_stop_deadline(struct ev_loop *loop, struct ev_timer *t)
{
	struct worker_rt *rt = t->data;

	log_notice("worker %d: shutdown timeout, closing %u connections",
	    (int)getpid(), rt->w.nconns);
	conn_close_all(&rt->w);
	ev_break(loop);
}

static void
on_signal(struct ev_loop *loop, struct ev_io *io, uint32_t ev)
{
	struct worker_rt *rt = io->data;
	struct signalfd_siginfo si;

	(void)ev;
	while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			conn_close_all(&rt->w);
			ev_break(loop);
			return;
		case SIGQUIT:
			worker_stop_graceful(rt);
			break;
		case SIGUSR1:
			accesslog_reopen(rt->w.alog);
			log_reopen();
			break;
		default:
			break;
		}
	}
}

static void
on_master_gone(struct ev_loop *loop, struct ev_io *io, uint32_t ev)
{
	struct worker_rt *rt = io->data;
	char b[64];

	(void)loop;
	(void)ev;
	if (read(io->fd, b, sizeof(b)) == 0) {
		log_notice("worker %d: master went away; stopping", (int)getpid());
		ev_io_stop(rt->w.loop, io);
		worker_stop_graceful(rt);
	}
}

/* Before the loop sleeps: write the access log lines of this iteration
 * in one write(2).  Under load an iteration serves many requests, so
 * logging costs far less than a syscall per request; when idle, lines
 * appear at once.  Failed writes are counted and reported at most once
 * per FLUSH_MS. */
static void
on_before_wait(void *arg)
{
	struct worker_rt *rt = arg;
	struct worker *w = &rt->w;
	uint64_t dropped = accesslog_flush(w->alog);

	cache_heartbeat(w->cache, ev_now(w->loop));
	if (dropped) {
		shm_stats_add(w->stats, STAT_log_dropped, dropped);
		rt->dropped_unreported += dropped;
	}
	if (rt->dropped_unreported && !ev_timer_active(&rt->flush_timer))
		ev_timer_start(w->loop, &rt->flush_timer, FLUSH_MS);
}

static void
on_flush_report(struct ev_loop *loop, struct ev_timer *t)
{
	struct worker_rt *rt = t->data;

	(void)loop;
	log_warn("access log: %llu lines dropped (write failed)",
	    (unsigned long long)rt->dropped_unreported);
	rt->dropped_unreported = 0;
}

static void
on_pool_timer(struct ev_loop *loop, struct ev_timer *t)
{
	struct worker *w = t->data;
	uint64_t next = upool_expire(w->pool);

	ev_timer_start(loop, t, next ? next : 1000);
}

/* This host's interface addresses, so that a request to a wildcard
 * listener's port is recognised as a request to ourselves only when it
 * targets this host (refreshed per generation: a reload re-reads them). */
static void
worker_local_addrs(struct worker *w)
{
	struct ifaddrs *ifa, *i;
	size_t n = 0;

	if (getifaddrs(&ifa) < 0)
		return;
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET ||
		    i->ifa_addr->sa_family == AF_INET6))
			n++;
	if (n && (w->local_addrs = calloc(n, sizeof(*w->local_addrs))) != NULL)
		for (i = ifa; i; i = i->ifa_next)
			if (i->ifa_addr && netaddr_from_sockaddr(i->ifa_addr,
			    w->local_addrs[w->nlocal_addrs]) == 0)
				w->nlocal_addrs++;
	freeifaddrs(ifa);
}

/* Run one worker; never returns. */
void
worker_run(const struct worker_args *a)
{
	static struct worker_rt rt;	/* lives for the whole process */
	struct worker *w = &rt.w;
	const struct sluice_conf *cf = a->conf;
	const char *why = NULL;
	sigset_t set;
	int sfd;

#ifdef HAVE_PRCTL
	(void)prctl(PR_SET_NAME, "sluice-worker");
#endif
	/* Connection buffers come and go with every request.  Without this
	 * the heap top is trimmed and regrown (brk + page faults) every few
	 * requests; a worker keeps up to 16 MiB of freed heap for reuse
	 * instead.  Idle connections still hold no buffers. */
	mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
	mallopt(M_TOP_PAD, 1024 * 1024);
	w->conf = cf;
	if (!(w->loop = ev_loop_new()))
		fatal("worker: cannot create the event loop: %s", strerror(errno));
	w->stats = a->stats ? shm_stats_slot(a->stats, a->slot) : NULL;
	w->cache = a->cache;
	w->filter = a->filter;
	w->limits.header_size = cf->limits.header_size;
	w->limits.uri_size = cf->limits.uri_size;
	w->limits.max_fields = (unsigned)cf->limits.header_fields;
	worker_local_addrs(w);
	w->via_len = (size_t)snprintf(w->via, sizeof(w->via), "1.1 %s (sluice)",
	    cf->visible_hostname);
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* Signals through a signalfd: handled in the loop, between events. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		fatal("worker: signalfd: %s", strerror(errno));
	ev_io_init(&rt.sig_io, sfd, on_signal, &rt);
	ev_io_set(w->loop, &rt.sig_io, EPOLLIN);
	if (a->master_fd >= 0) {
		ev_io_init(&rt.master_io, a->master_fd, on_master_gone, &rt);
		ev_io_set(w->loop, &rt.master_io, EPOLLIN);
	}
	if (w->cache != NULL) {
		int cfd = cache_worker_init(w->cache, a->slot);

		if (cfd < 0) {
			log_err("worker %d: cannot use the cache: %s", (int)getpid(),
			    strerror(errno));
			w->cache = NULL;
		} else {
			ev_io_init(&rt.cache_io, cfd, on_cache_wake, &rt);
			ev_io_set(w->loop, &rt.cache_io, EPOLLIN);
			ev_timer_init(&rt.beat_timer, on_beat, &rt);
			ev_timer_start(w->loop, &rt.beat_timer, 1000);
		}
	}
	if (w->cache != NULL && cf->memcached.nservers > 0) {
		char err[256];

		if ((w->mc = mc_tier_new(w, true, err, sizeof(err))) == NULL)
			log_err("worker %d: no memcached tier: %s", (int)getpid(), err);
		else {
			ev_io_init(&rt.mc_io, mc_tier_fd(w->mc), on_mc_ready, &rt);
			ev_io_set(w->loop, &rt.mc_io, EPOLLIN);
		}
	}

	if (!(w->dns = dns_new(w->loop, cf->dns_servers, cf->ndns_servers,
	    cf->dns_negative_ttl, &why)))
		fatal("worker: cannot start the resolver: %s", why ? why : "unknown error");
	if (!(w->peers = peer_count_new()))
		fatal("worker: out of memory");
	w->pool = upool_new(w->loop, conn_upstream_io, POOL_MAX_IDLE,
	    (uint64_t)cf->timeouts.keepalive * 1000);
	if (!w->pool)
		fatal("worker: out of memory");
	if (cf->access_log_path && *cf->access_log_path) {
		w->alog = accesslog_open(cf->access_log_path, cf->access_log_format);
		if (!w->alog)
			log_err("cannot open access log %s: %s", cf->access_log_path, strerror(errno));
	}

	w->nlisteners = cf->nlisten;
	w->listeners = calloc(cf->nlisten ? cf->nlisten : 1, sizeof(*w->listeners));
	if (!w->listeners)
		fatal("worker: out of memory");
	for (size_t i = 0; i < cf->nlisten; i++) {
		struct worker_listener *l = &w->listeners[i];
		l->w = w;
		l->fd = a->listen_fds[i];
		l->cl = &cf->listen[i];
		l->salen = sizeof(l->sa);
		getsockname(l->fd, (struct sockaddr *)&l->sa, &l->salen);
		ev_io_init(&l->io, l->fd, on_accept, l);
	}
	listeners_set(w, true);
	if (a->admin_fd >= 0) {
		const struct cache *cache = w->cache;

		if (!(rt.admin = admin_new(w->loop, a->admin_fd, a->stats, cache)))
			log_err("worker %d: no admin listener: %s", (int)getpid(), strerror(errno));
	}

	ev_timer_init(&rt.flush_timer, on_flush_report, &rt);
	ev_set_before_wait(w->loop, on_before_wait, &rt);
	ev_timer_init(&rt.pool_timer, on_pool_timer, w);
	ev_timer_start(w->loop, &rt.pool_timer, 1000);
	ev_timer_init(&rt.accept_timer, accept_resume, w);
	ev_timer_init(&rt.stop_timer, on_stop_deadline, &rt);

	log_debug("worker %d up (slot %u, generation %u)", (int)getpid(), a->slot, a->generation);
	if (ev_run(w->loop) < 0)
		log_err("worker %d: event loop failed: %s", (int)getpid(), strerror(errno));

	conn_close_all(w);
	mc_tier_free(w->mc);
	admin_free(rt.admin);
	accesslog_close(w->alog);
	upool_free(w->pool);
	peer_count_free(w->peers);
	dns_free(w->dns);
	ev_loop_free(w->loop);
	free(w->listeners);
	free(w->local_addrs);
	exit(rt.exit_code);
}
