/*
 * admin.c - the admin (stats) listener in a worker: /stats and /metrics.
 *
 * What: accepts on the admin socket, reads one request head, answers
 * with a document made from the shared counters (shm_stats_json,
 * shm_stats_prometheus) and the cache gauges, and closes.  One small
 * state machine per connection: READ -> WRITE -> LINGER -> closed.
 *
 * Assumes: the admin socket is bound by the master to an explicit
 * (normally loopback) address; whoever reaches it may read the
 * counters, which hold no request data.  It is never reached through
 * the proxy listeners: those run conn.c, which knows nothing of these
 * paths, so there is no magic URL on the proxy port; and a request that
 * arrives here through a proxy (it carries Via) is refused with 403.
 *
 * Why this way: separate from conn.c because an admin connection needs
 * none of the proxy machinery (no filter, no upstream, no keep-alive)
 * and must not move the proxy's counters.  The head is parsed by the
 * same strict parser as proxy requests, so bad bytes get the same
 * answers.  Everything is bounded: 4 KiB of head, 5 s per connection,
 * a few connections per worker, and the answer is written in full then
 * the write side shut, so a client that never reads cannot pin memory
 * for longer than the deadline.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "shm/cache.h"
#include "shm/shm_stats.h"
#include "worker/admin.h"
#include "worker/errpage.h"
#include "worker/http_parse.h"

#define ADMIN_HEAD_MAX		4096	/* request head bytes */
#define ADMIN_URI_MAX		1024
#define ADMIN_FIELDS		64
#define ADMIN_TIMEOUT_MS	5000	/* whole connection, read and write */
#define ADMIN_LINGER_MS		1000	/* after the answer: wait for the FIN */
#define ADMIN_MAX_CONNS		32	/* per worker; more are closed at once */
#define ADMIN_ACCEPT_BATCH	16
#define ADMIN_PAUSE_MS		100	/* accept pause after EMFILE & co */

enum admin_state { AS_READ, AS_WRITE, AS_LINGER };

struct admin_conn {
	struct admin *a;
	struct admin_conn *prev, *next;
	enum admin_state state;
	struct ev_io io;
	struct ev_timer timer;
	size_t inlen;
	char *out;			/* the whole answer, head and body */
	size_t outlen, outoff;
	struct http_msg msg;
	struct http_field fields[ADMIN_FIELDS];
	char in[ADMIN_HEAD_MAX];
};

struct admin {
	struct ev_loop *loop;
	const struct stats_sh *stats;
	const struct cache *cache;
	int fd;
	struct ev_io lio;
	struct ev_timer pause;		/* resumes accepting after an error */
	struct admin_conn *conns;
	unsigned nconns;
};

static const struct http_limits admin_limits = {
	.header_size = ADMIN_HEAD_MAX,
	.uri_size = ADMIN_URI_MAX,
	.max_fields = ADMIN_FIELDS,
};

static void
admin_conn_close(struct admin_conn *c)
{
	struct admin *a = c->a;

	ev_io_stop(a->loop, &c->io);
	ev_timer_stop(a->loop, &c->timer);
	close(c->io.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		a->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	a->nconns--;
	free(c->out);
	free(c);
}

/* Build the whole answer into c->out; body is copied, never kept.
 * head_only: HEAD, the same head (Content-Length included) and no body. */
static void
admin_answer(struct admin_conn *c, int status, const char *ctype,
    const char *body, size_t blen, bool head_only)
{
	char head[512];
	int hl;

	hl = snprintf(head, sizeof(head),
	    "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s"
	    "Connection: close\r\n"
	    "\r\n", status, errpage_reason(status), ctype, blen,
	    status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (hl < 0 || (size_t)hl >= sizeof(head))
		hl = 0;		/* cannot happen: the fields are ours */
	if (head_only)
		blen = 0;
	free(c->out);
	c->outoff = 0;
	c->outlen = 0;
	if ((c->out = malloc((size_t)hl + blen)) == NULL)
		return;		/* nothing to send: the connection just closes */
	memcpy(c->out, head, (size_t)hl);
	if (blen)
		memcpy(c->out + hl, body, blen);
	c->outlen = (size_t)hl + blen;
}

static void
admin_error(struct admin_conn *c, int status)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status,
	    errpage_reason(status));

	admin_answer(c, status, "text/plain; charset=utf-8", body, (size_t)n,
	    false);
}

/* Is the request-target `path`, or `path?query`? */
static bool
admin_target_is(const char *t, size_t tlen, const char *path)
{
	size_t n = strlen(path);

	return tlen >= n && memcmp(t, path, n) == 0 &&
	    (tlen == n || t[n] == '?');
}

/* A complete, valid head: decide the answer. */
static void
admin_route(struct admin_conn *c)
{
	struct admin *a = c->a;
	const struct http_msg *m = &c->msg;
	const char *t = c->in + m->target_off;
	bool head = m->method == M_HEAD;
	bool json = admin_target_is(t, m->target_len, "/stats");
	struct cache_gauges g;
	const struct cache_gauges *gp;
	char *doc = NULL;
	size_t dlen = 0;
	int rc;

	if (m->method != M_GET && !head) {
		admin_error(c, 405);
		return;
	}
	/* Every proxy adds Via (RFC 9110 7.6.3), sluice too: a request
	 * that carries one came through a proxy, maybe through our own
	 * listeners when blocked_destinations lets 127.0.0.1 through.  The
	 * stats are for whoever reaches this address directly. */
	for (unsigned i = 0; i < m->nfields; i++)
		if (m->fields[i].id == H_VIA) {
			admin_error(c, 403);
			return;
		}
	if (!json && !admin_target_is(t, m->target_len, "/metrics")) {
		admin_error(c, 404);
		return;
	}
	/* No cache, or not yet up: the documents leave the gauges out. */
	gp = cache_gauges(a->cache, &g) == 0 ? &g : NULL;
	if (json) {
		struct shm_stats_info info = {
			.version = PACKAGE_VERSION,
			.pid_master = (long)getppid(),
		};

		rc = shm_stats_json(a->stats, gp, &info, &doc, &dlen);
	} else {
		rc = shm_stats_prometheus(a->stats, gp, &doc, &dlen);
	}
	if (rc < 0) {
		log_warn("admin: cannot build %s: %s", json ? "/stats" :
		    "/metrics", strerror(errno));
		admin_error(c, 500);
		return;
	}
	admin_answer(c, 200, json ? "application/json" :
	    "text/plain; version=0.0.4; charset=utf-8", doc, dlen, head);
	free(doc);
}

/* Send what is left of c->out; done: shut our side and linger. */
static void
admin_write(struct admin_conn *c)
{
	struct admin *a = c->a;

	while (c->outoff < c->outlen) {
		ssize_t n = send(c->io.fd, c->out + c->outoff,
		    c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n > 0) {
			c->outoff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->state != AS_WRITE) {
				c->state = AS_WRITE;
				if (ev_io_set(a->loop, &c->io, EPOLLOUT) < 0)
					admin_conn_close(c);
			}
			return;
		}
		admin_conn_close(c);	/* the client went away */
		return;
	}
	/* Closing with unread request bytes (a body we ignored) would
	 * send an RST that can destroy the answer in flight: shut the
	 * write side, then read and drop until the client closes. */
	if (c->out == NULL || shutdown(c->io.fd, SHUT_WR) < 0 ||
	    ev_io_set(a->loop, &c->io, EPOLLIN) < 0) {
		admin_conn_close(c);
		return;
	}
	c->state = AS_LINGER;
	ev_timer_start(a->loop, &c->timer, ADMIN_LINGER_MS);
}

static void
admin_read(struct admin_conn *c)
{
	ssize_t n;
	int rc;

	if (c->state == AS_LINGER) {
		char sink[4096];

		n = recv(c->io.fd, sink, sizeof(sink), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			admin_conn_close(c);
		return;
	}
	n = recv(c->io.fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* EOF or an error before a whole head: nobody to answer. */
		admin_conn_close(c);
		return;
	}
	c->inlen += (size_t)n;
	rc = http_parse_request(&c->msg, c->in, c->inlen, &admin_limits);
	if (rc == HTTP_MORE && c->inlen < sizeof(c->in))
		return;
	if (rc == HTTP_MORE)
		admin_error(c, 431);
	else if (rc != HTTP_OK)
		admin_error(c, http_err_status(rc, false));
	else
		admin_route(c);
	admin_write(c);
}

static void
admin_conn_io(struct ev_loop *loop, struct ev_io *io, uint32_t ev)
{
	struct admin_conn *c = io->data;

	(void)loop;
	if (c->state == AS_WRITE) {
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			admin_write(c);
		return;
	}
	admin_read(c);
}

static void
admin_conn_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct admin_conn *c = t->data;

	(void)loop;
	if (c->state == AS_READ && c->inlen > 0) {
		/* A partial head that never completed: say so, briefly. */
		admin_error(c, 408);
		/* One try, no second deadline: what does not fit the
		 * socket buffer now is dropped with the connection. */
		(void)send(c->io.fd, c->out ? c->out : "", c->out ? c->outlen : 0,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	admin_conn_close(c);
}

static void
admin_pause_end(struct ev_loop *loop, struct ev_timer *t)
{
	struct admin *a = t->data;

	if (a->fd >= 0 && !a->lio.events)
		(void)ev_io_set(loop, &a->lio, EPOLLIN | EPOLLEXCLUSIVE);
}

static void
admin_accept(struct ev_loop *loop, struct ev_io *io, uint32_t ev)
{
	struct admin *a = io->data;

	(void)ev;
	for (int i = 0; i < ADMIN_ACCEPT_BATCH; i++) {
		struct admin_conn *c;
		int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* EMFILE, ENOBUFS...: the connection stays queued and
			 * the level-triggered socket would wake us at once;
			 * pause instead of spinning. */
			log_warn("admin: accept: %s; pausing for %d ms",
			    strerror(errno), ADMIN_PAUSE_MS);
			ev_io_stop(loop, &a->lio);
			ev_timer_start(loop, &a->pause, ADMIN_PAUSE_MS);
			return;
		}
		if (a->nconns >= ADMIN_MAX_CONNS ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->a = a;
		c->state = AS_READ;
		http_msg_init(&c->msg, c->fields, ADMIN_FIELDS);
		ev_io_init(&c->io, fd, admin_conn_io, c);
		ev_timer_init(&c->timer, admin_conn_timeout, c);
		if (ev_io_set(loop, &c->io, EPOLLIN) < 0) {
			close(fd);
			free(c);
			continue;
		}
		ev_timer_start(loop, &c->timer, ADMIN_TIMEOUT_MS);
		c->next = a->conns;
		if (a->conns)
			a->conns->prev = c;
		a->conns = c;
		a->nconns++;
	}
}

struct admin *
admin_new(struct ev_loop *loop, int fd, const struct stats_sh *stats,
    const struct cache *cache)
{
	struct admin *a;

	if (fd < 0 || stats == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->loop = loop;
	a->fd = fd;
	a->stats = stats;
	a->cache = cache;
	ev_io_init(&a->lio, fd, admin_accept, a);
	ev_timer_init(&a->pause, admin_pause_end, a);
	/* Shared by every worker: one wakes per connection. */
	if (ev_io_set(loop, &a->lio, EPOLLIN | EPOLLEXCLUSIVE) < 0) {
		int e = errno;

		free(a);
		errno = e;
		return NULL;
	}
	return a;
}

void
admin_stop(struct admin *a)
{
	if (a == NULL)
		return;
	ev_timer_stop(a->loop, &a->pause);
	if (a->fd >= 0) {
		ev_io_stop(a->loop, &a->lio);
		close(a->fd);
		a->fd = -1;
	}
	/* Connections already accepted are answered while the worker
	 * drains (they are one request each); admin_free closes the rest. */
}

void
admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	admin_stop(a);
	while (a->conns)
		admin_conn_close(a->conns);
	free(a);
}
