/*
 * upstream.c - origin connections and the per-worker keep-alive pool.
 *
 * The pool is a list per worker, most recently used first; reuse takes
 * the newest idle connection of a key (the one least likely to have
 * been closed by the origin).  Lookups walk the list: the pool is small
 * (max_idle) and a walk of a few dozen entries costs less than keeping a
 * hash in sync.  Every socket is registered once, edge-triggered, for
 * both directions; conn.c owns the callback and hands pooled events back
 * here through upool_event().
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fault.h"
#include "worker/upstream.h"

struct upool {
	struct ev_loop *loop;
	ev_io_cb cb;
	struct upstream *head;		/* idle connections, newest first */
	unsigned nidle, max_idle;
	uint64_t idle_ms;
};

struct upool *
upool_new(struct ev_loop *loop, ev_io_cb cb, unsigned max_idle, uint64_t idle_ms)
{
	struct upool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->loop = loop;
	p->cb = cb;
	p->max_idle = max_idle;
	p->idle_ms = idle_ms;
	return p;
}

static void
pool_unlink(struct upool *p, struct upstream *u)
{
	if (u->prev)
		u->prev->next = u->next;
	else
		p->head = u->next;
	if (u->next)
		u->next->prev = u->prev;
	u->next = u->prev = NULL;
	p->nidle--;
}

void
upstream_close(struct upool *p, struct upstream *u)
{
	if (!u)
		return;
	ev_io_stop(p->loop, &u->io);
	if (u->fd >= 0)
		close(u->fd);
	buf_free(&u->in);
	buf_free(&u->out);
	free(u);
}

void
upool_free(struct upool *p)
{
	if (!p)
		return;
	upool_drain(p);
	free(p);
}

/* A pooled connection for key, detached from the pool, or NULL. */
struct upstream *
upool_get(struct upool *p, const char *key)
{
	for (struct upstream *u = p->head; u; u = u->next) {
		if (strcmp(u->key, key) != 0)
			continue;
		pool_unlink(p, u);
		u->reused = true;
		return u;
	}
	return NULL;
}

/* Put a connection back after a complete exchange. */
void
upool_put(struct upool *p, struct upstream *u)
{
	char b;
	ssize_t pk;

	u->owner = NULL;
	/* Unread bytes after a complete response, in our buffer or still in
	 * the socket (their edge may have been used while the connection
	 * was busy), or the origin's FIN: never reuse (HOSTILE #51, F22).
	 * Otherwise the next client would read them as its response. */
	pk = recv(u->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (buf_len(&u->in) > 0 || buf_len(&u->out) > 0 || p->max_idle == 0 ||
	    u->hup || pk >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
		upstream_close(p, u);
		return;
	}
	u->rd_ready = false;
	if (p->nidle >= p->max_idle) {
		/* Evict the oldest idle connection. */
		struct upstream *old = p->head;
		while (old && old->next)
			old = old->next;
		if (old) {
			pool_unlink(p, old);
			upstream_close(p, old);
		}
	}
	buf_free(&u->in);
	buf_free(&u->out);
	u->idle_until = ev_now(p->loop) + p->idle_ms;
	u->next = p->head;
	u->prev = NULL;
	if (p->head)
		p->head->prev = u;
	p->head = u;
	p->nidle++;
}

/* The pooled connection saw an event (data or EOF): it is unusable. */
void
upool_event(struct upool *p, struct upstream *u)
{
	pool_unlink(p, u);
	upstream_close(p, u);
}

/* Close idle connections whose time is up. */
uint64_t
upool_expire(struct upool *p)
{
	uint64_t now = ev_now(p->loop), next = 0;
	struct upstream *u = p->head, *n;

	for (; u; u = n) {
		n = u->next;
		if (u->idle_until <= now) {
			pool_unlink(p, u);
			upstream_close(p, u);
		} else if (next == 0 || u->idle_until - now < next)
			next = u->idle_until - now;
	}
	return next;
}

void
upool_drain(struct upool *p)
{
	while (p->head) {
		struct upstream *u = p->head;
		pool_unlink(p, u);
		upstream_close(p, u);
	}
}

/* Start a non-blocking connect to sa. */
struct upstream *
upstream_connect(struct upool *p, const struct sockaddr *sa, socklen_t salen,
    const char *key)
{
	struct upstream *u;
	int fd, one = 1, e;

	if (fault_fail("upstream_socket")) {
		errno = EMFILE;
		return NULL;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	/* Requests and response heads are small writes: do not delay them. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	u = calloc(1, sizeof(*u));
	if (!u) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	u->fd = fd;
	u->pool = p;
	memcpy(&u->sa, sa, salen);
	u->salen = salen;
	snprintf(u->key, sizeof(u->key), "%s", key);
	ev_io_init(&u->io, fd, p->cb, u);
	if (connect(fd, sa, salen) == 0)
		u->connected = true;
	else if (errno != EINPROGRESS) {
		e = errno;
		close(fd);
		free(u);
		errno = e;
		return NULL;
	}
	if (ev_io_set(p->loop, &u->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) < 0) {
		e = errno;
		close(fd);
		free(u);
		errno = e;
		return NULL;
	}
	return u;
}

/* After EPOLLOUT on a connecting socket: 0 when connected, else errno. */
int
upstream_connect_result(struct upstream *u)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	if (err == 0)
		u->connected = true;
	return err;
}
