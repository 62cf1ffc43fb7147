/*
 * conn.c - the client connection state machine (STYLE 7).
 *
 * Every event of a connection — client socket, origin socket, DNS answer,
 * timer — lands in conn_run(), which switches on c->state and loops while
 * progress is made.  The transitions are all here:
 *
 *   C_IDLE --bytes--> C_HEAD --parsed, allowed--> C_RESOLVE --addr-->
 *   C_CONNECT --connected--> C_FORWARD --response done--> C_IDLE | C_HEAD
 *                                  \--CONNECT / 101--> C_TUNNEL
 *   any error before the response head: C_FLUSH (error page) -> C_LINGER
 *   any error after it: close at once (the client sees truncation)
 *
 * Sockets are edge-triggered and registered once for both directions;
 * rd_ready/wr_ready remember an edge until read/write returns EAGAIN.
 * Bodies stream through fixed buffers: a full output buffer stops the
 * reads that fill it (backpressure), so memory does not grow with the
 * size of a transfer.  An idle keep-alive connection holds no buffers.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/fault.h"
#include "lib/log.h"
#include "worker/conn_int.h"
#include "worker/errpage.h"
#include "worker/mc_tier.h"
#include "worker/peer_count.h"
#include "worker/upstream.h"

#define HEAD_BUF	16384		/* first allocation for a request head */
#define BODY_BUF	32768		/* body and response buffers */
#define TUNNEL_BUF	65536		/* CONNECT relay buffers */
#define LINGER_MS	2000		/* drain time after our last answer */

#define STOP_IDLE_GRACE_MS 1000	/* idle keep-alive connections at a graceful stop */
#define STOP_HEAD_MS	3000	/* a request head begun during a graceful stop */

static void conn_run(struct conn *c);
static void conn_io(struct ev_loop *loop, struct ev_io *io, uint32_t ev);
static void conn_timer(struct ev_loop *loop, struct ev_timer *t);
static void conn_kick(struct ev_loop *loop, struct ev_timer *t);

static void
stat_add(struct conn *c, enum shm_stat_id id, uint64_t n)
{
	shm_stats_add(c->w->stats, id, n);
}

static const struct {
	const char *code;
	enum shm_stat_id stat;
} conn_ends[] = {
#define CONN_END_ROW(n, code, stat) { code, stat },
	CONN_ENDS(CONN_END_ROW)
#undef CONN_END_ROW
};

/* The request ends for `why`: one access log line, one counter.  raw is
 * what the request's offsets point into (see proxy_head_log); queued is
 * our answer not yet written.  Later calls for the same request do
 * nothing, so the first reason found is the one recorded. */
static void
req_end(struct conn *c, enum conn_end why, int status, const char *raw,
    uint64_t queued)
{
	struct req *r = c->req;

	if (!r || r->logged)
		return;
	r->logged = true;
	r->status = status;
	stat_add(c, conn_ends[why].stat, 1);
	proxy_head_log(c, status, why == END_DONE && r->cs.code ? r->cs.code :
	    conn_ends[why].code, raw, queued);
}

void
conn_req_end(struct conn *c, enum conn_end why, int status, const char *raw,
    uint64_t queued)
{
	req_end(c, why, status, raw, queued);
}

/* The connection must be closed by `ms` from now unless progress moves it. */
static void set_deadline(struct conn *c, uint64_t ms);

void
conn_set_deadline(struct conn *c, uint64_t ms)
{
	set_deadline(c, ms);
}

static void
set_deadline(struct conn *c, uint64_t ms)
{
	struct ev_loop *loop = c->w->loop;

	c->deadline = ev_now(loop) + ms;
	/* Lazy re-arming: only when the timer would fire too late. */
	if (!ev_timer_active(&c->timer) || c->timer.when > c->deadline)
		ev_timer_start(loop, &c->timer, ms);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void
req_free(struct conn *c)
{
	struct req *r = c->req;

	if (!r)
		return;
	if (r->dq)
		dns_cancel(c->w->dns, r->dq);
	cache_serve_free(c);
	conn_io_pipes_close(r->pipe_cu, r->pipe_uc);
	free(r->hdr);
	free(r->path_buf);
	free(r);
	c->req = NULL;
}

static void
up_drop(struct conn *c)
{
	if (c->up) {
		upstream_close(c->w->pool, c->up);
		c->up = NULL;
	}
}

static void
conn_free(struct conn *c)
{
	struct worker *w = c->w;

	if (c->req && c->req->hdr)
		req_end(c, END_CLIENT_GONE, c->req->status ? c->req->status : 499,
		    c->req->hdr, 0);
	req_free(c);
	up_drop(c);
	ev_timer_stop(w->loop, &c->timer);
	ev_timer_stop(w->loop, &c->kick);
	ev_io_stop(w->loop, &c->io);
	close(c->fd);
	peer_count_dec(w->peers, c->peer);
	buf_free(&c->in);
	buf_free(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	if (w->stats)
		__atomic_fetch_sub(&w->stats->active_connections, 1, __ATOMIC_RELAXED);
	free(c);
	if (w->stopping && w->nconns == 0)
		ev_break(w->loop);
}

/* Answer with an error page and close (or just close when a response
 * is already on its way: the client then sees truncation). */
void
conn_error(struct conn *c, int status, const char *detail)
{
	struct req *r = c->req;
	const char *url = NULL;
	size_t url_len = 0;

	/* A stale entry may answer instead (stale-if-error). */
	if (r && status >= 500 && cache_serve_origin_error(c, status))
		return;

	if (r && r->dq) {
		/* A late answer must not restart an answered request. */
		dns_cancel(c->w->dns, r->dq);
		r->dq = NULL;
	}
	if (r && r->head_sent) {
		/* Too late for a page: the client sees the transfer cut. */
		log_info("client %s: %s after the response head; closing", c->peer_str, detail);
		req_end(c, status >= 500 ? END_ORIGIN_GONE : END_CLIENT_GONE,
		    r->status, r->hdr, 0);
		up_drop(c);
		c->state = C_CLOSED;
		return;
	}
	up_drop(c);
	/* When the head did not parse, what the parser got of the request
	 * line is still in c->in: name it in the page and the log. */
	const char *raw = NULL;
	if (r && r->hdr)
		raw = r->hdr;
	else if (r && r->msg.target_len > 0 && buf_len(&c->in) >=
	    (size_t)r->msg.target_off + r->msg.target_len)
		raw = buf_rptr(&c->in);
	if (raw && r->msg.target_len > 0) {
		url = raw + r->msg.target_off;
		url_len = r->msg.target_len;
	}
	enum conn_end why = status == 403 ? END_DENIED :
	    status == 408 ? END_TIMEOUT : status >= 500 ? END_FAILED : END_REFUSED;
	/* c->out may hold complete interim (1xx) heads already relayed in
	 * part: the page goes after them, never in the middle of one.  With
	 * no memory even for the page, the request is still logged and
	 * counted for what it was, then the connection closes. */
	bool page = buf_reserve(&c->out, BODY_BUF) == 0 &&
	    errpage_build(&c->out, status, detail, url, url_len,
	    c->w->conf->visible_hostname, true) >= 0;
	uint64_t queued = page ? buf_len(&c->out) : 0;
	if (r)
		req_end(c, why, status, raw, queued);
	else {
		/* No request struct (it could not be allocated): log bare. */
		stat_add(c, conn_ends[why].stat, 1);
		proxy_head_log(c, status, conn_ends[why].code, NULL, queued);
	}
	if (!page) {
		c->state = C_CLOSED;
		return;
	}
	/* The rest of the input may be garbage: never parse it. */
	buf_consume(&c->in, buf_len(&c->in));
	c->state = C_FLUSH;
	c->linger = true;
	set_deadline(c, (uint64_t)c->w->conf->timeouts.idle * 1000);
}

/* ---- accepting ------------------------------------------------------------ */

static void conn_start(struct conn *c, const struct sockaddr *peer);

void
conn_accept(struct worker *w, struct worker_listener *l, int fd,
    const struct sockaddr *peer, socklen_t peerlen)
{
	struct conn *c = calloc(1, sizeof(*c));

	(void)peerlen;
	if (!c) {
		close(fd);
		return;
	}
	c->w = w;
	c->l = l;
	c->fd = fd;
	conn_start(c, peer);
}

int
conn_background(struct conn *o)
{
	struct conn *c;
	int sv[2];
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	/* The request goes in, then the "client" is gone: whatever the
	 * connection answers fails to write, and only the fill remains. */
	n = write(sv[1], o->req->hdr, o->req->hdr_len);
	close(sv[1]);
	if (n != (ssize_t)o->req->hdr_len || (c = calloc(1, sizeof(*c))) == NULL) {
		close(sv[0]);
		return -1;
	}
	c->w = o->w;
	c->l = o->l;
	c->fd = sv[0];
	c->bg = true;
	memcpy(c->peer, o->peer, sizeof(c->peer));
	snprintf(c->peer_str, sizeof(c->peer_str), "%s", o->peer_str);
	c->allowed = o->allowed;
	conn_start(c, NULL);
	return 0;
}

static void
conn_start(struct conn *c, const struct sockaddr *peer)
{
	struct worker *w = c->w;
	int fd = c->fd, one = 1;

	c->state = C_IDLE;
	c->rd_ready = c->wr_ready = true;
	if (peer == NULL)
		;	/* background: peer copied from the client it serves */
	else if (netaddr_from_sockaddr(peer, c->peer) == 0)
		netaddr_ntop(c->peer, c->peer_str, sizeof(c->peer_str));
	else
		snprintf(c->peer_str, sizeof(c->peer_str), "unknown");
	/* Access control is on the socket peer, never on X-Forwarded-For. */
	if (peer != NULL)
		c->allowed = netaddr_cidr_match_any(w->conf->clients,
		    w->conf->nclients, c->peer);
	/* One host may not hold every descriptor (HOSTILE F13): over the
	 * cap the connection is closed before it costs anything more. */
	unsigned n = peer_count_inc(w->peers, c->peer);
	if (n == 0 || (w->conf->limits.client_connections > 0 &&
	    n > (unsigned)w->conf->limits.client_connections)) {
		if (n)
			peer_count_dec(w->peers, c->peer);
		shm_stats_add(w->stats, STAT_client_limit, 1);
		if (ev_now(w->loop) - w->limit_logged_at >= 1000 || !w->limit_logged_at) {
			w->limit_logged_at = ev_now(w->loop);
			log_warn("client %s: over limits.client_connections (%d); closing",
			    c->peer_str, w->conf->limits.client_connections);
		}
		close(fd);
		free(c);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_init(&c->io, fd, conn_io, c);
	ev_timer_init(&c->timer, conn_timer, c);
	ev_timer_init(&c->kick, conn_kick, c);
	if (ev_io_set(w->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) < 0) {
		peer_count_dec(w->peers, c->peer);
		shm_stats_add(w->stats, STAT_accept_errors, 1);
		close(fd);
		free(c);
		return;
	}
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	stat_add(c, STAT_connections, 1);
	if (w->stats)
		__atomic_fetch_add(&w->stats->active_connections, 1, __ATOMIC_RELAXED);
	/* A new connection gets the header timeout for its first request. */
	set_deadline(c, (uint64_t)w->conf->timeouts.client_header * 1000);
	conn_run(c);
}

/* ---- the request head ---------------------------------------------------- */

static void start_upstream(struct conn *c);

/* The head is complete in c->in: validate and route it. */
static void
head_done(struct conn *c)
{
	struct req *r = c->req;
	struct http_msg *m = &r->msg;

	/* Keep a copy of the head: c->in goes on with the body. */
	r->hdr_len = m->header_len;
	r->hdr = malloc(r->hdr_len + 1);
	if (!r->hdr) {
		conn_error(c, 503, "Out of memory.");
		return;
	}
	memcpy(r->hdr, buf_rptr(&c->in), r->hdr_len);
	r->hdr[r->hdr_len] = '\0';
	buf_consume(&c->in, r->hdr_len);
	stat_add(c, STAT_requests, 1);

	if (m->flags & (MF_CONN_CLOSE | MF_MUST_CLOSE))
		r->close_after = true;
	const char *detail = NULL;
	int status = proxy_route(c, &detail);
	if (status == ROUTE_ANSWER_OPTIONS) {
		/* We are the final recipient (RFC 9110 7.6.2).  Any body was
		 * not read: close after the answer. */
		if (buf_reserve(&c->out, 1024) < 0 || buf_printf(&c->out,
		    "HTTP/1.1 200 OK\r\nAllow: GET, HEAD, POST, PUT, DELETE, "
		    "OPTIONS, PATCH, CONNECT\r\nContent-Length: 0\r\n"
		    "Via: %s\r\nConnection: close\r\n\r\n", c->w->via) < 0) {
			req_end(c, END_FAILED, 503, r->hdr, 0);
			c->state = C_CLOSED;
			return;
		}
		req_end(c, END_DONE, 200, r->hdr, buf_len(&c->out));
		buf_consume(&c->in, buf_len(&c->in));
		c->state = C_FLUSH;
		c->linger = true;
		return;
	}
	if (status) {
		conn_error(c, status, detail);
		return;
	}
	/* The filter before the cache: a denied client never gets a hit. */
	if (c->w->filter && conn_filter_request(c))
		return;
	if (cache_serve_purge(c) || cache_serve_lookup(c))
		return;
	start_upstream(c);
}

void
conn_start_upstream(struct conn *c)
{
	start_upstream(c);
}

/* ---- DNS and connect -------------------------------------------------------- */

static void try_connect(struct conn *c);

static void
dns_done(void *arg, const struct dns_result *res)
{
	struct conn *c = arg;
	struct req *r = c->req;

	r->dq = NULL;
	if (c->state != C_RESOLVE)
		return;		/* answered meanwhile (a timeout, an error) */
	if (res->status != DNS_OK || res->naddrs == 0) {
		char msg[400];
		if (res->status == DNS_TIMEOUT) {
			snprintf(msg, sizeof(msg), "DNS lookup for %s timed out.", r->url.host);
			conn_error(c, 504, msg);
		} else {
			snprintf(msg, sizeof(msg), "DNS lookup for %s failed: %s.",
			    r->url.host, dns_strstatus(res->status));
			conn_error(c, 502, msg);
		}
	} else {
		r->addrs = *res;
		r->addr_next = 0;
		try_connect(c);
	}
	if (!c->in_run)
		conn_run(c);
}

static void
start_upstream(struct conn *c)
{
	struct req *r = c->req;

	/* A pooled connection skips DNS (it was checked when opened). */
	if (!r->is_connect && !(r->msg.flags & MF_UPGRADE_WS)) {
		struct upstream *u = upool_get(c->w->pool, r->key);
		if (u) {
			c->up = u;
			u->owner = c;
			stat_add(c, STAT_upstream_reused, 1);
			c->state = C_CONNECT;
			try_connect(c);
			return;
		}
	}
	c->state = C_RESOLVE;
	set_deadline(c, (uint64_t)c->w->conf->timeouts.connect * 1000);
	stat_add(c, STAT_dns_queries, 1);
	r->dq = dns_resolve(c->w->dns, r->url.host, dns_done, c);
}

/* Connected (or reused): queue the request head, or answer CONNECT. */
static void
upstream_ready(struct conn *c)
{
	struct req *r = c->req;
	struct upstream *u = c->up;

	u->requests++;
	if (r->is_connect) {
		static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
		/* Zero-copy relay through pipes; buffers only as a fallback. */
		size_t bsz = conn_io_pipes(r->pipe_cu, r->pipe_uc) == 0 ? 512 : TUNNEL_BUF;
		if (buf_reserve(&c->out, 512) < 0 || buf_reserve(&u->in, bsz) < 0 ||
		    buf_reserve(&c->in, bsz) < 0) {
			conn_error(c, 503, "Out of memory.");
			return;
		}
		/* After a peek our 200 went out before the connect. */
		if (!r->peeked)
			buf_append(&c->out, ok, sizeof(ok) - 1);
		r->head_sent = true;
		r->status = 200;
		c->state = C_TUNNEL;
		set_deadline(c, (uint64_t)c->w->conf->timeouts.idle * 1000);
		return;
	}
	if (buf_reserve(&u->out, BODY_BUF) < 0 || buf_reserve(&u->in, BODY_BUF) < 0) {
		conn_error(c, 503, "Out of memory.");
		return;
	}
	if (proxy_head_request(c, &u->out) < 0) {
		conn_error(c, 431, "The request head is too large to forward.");
		return;
	}
	r->rs = RS_HEAD;
	http_msg_init(&r->rmsg, r->rfields, r->fields_cap);
	c->state = C_FORWARD;
	set_deadline(c, (uint64_t)c->w->conf->timeouts.upstream * 1000);
}

/* Try the next resolved address (or finish a pending connect). */
static void
try_connect(struct conn *c)
{
	struct req *r = c->req;
	bool any_blocked = false, any_self = false;

	if (c->up && c->up->connected) {
		upstream_ready(c);
		return;
	}
	if (c->up) {		/* a connect in progress finished */
		int err = upstream_connect_result(c->up);
		if (err == 0) {
			upstream_ready(c);
			return;
		}
		r->last_connect_errno = err;
		up_drop(c);
	}
	while (r->addr_next < r->addrs.naddrs) {
		struct sockaddr_storage ss = r->addrs.addrs[r->addr_next];
		socklen_t sl = r->addrs.addrlens[r->addr_next];
		r->addr_next++;
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)r->port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)r->port);
		/* SSRF: checked on the address we actually connect to. */
		int why = proxy_route_dest(c->w, (struct sockaddr *)&ss);
		if (why == ROUTE_BLOCKED) {
			any_blocked = true;
			continue;
		}
		if (why == ROUTE_SELF) {
			any_self = true;
			continue;
		}
		struct upstream *u = upstream_connect(c->w->pool, (struct sockaddr *)&ss, sl, r->key);
		if (!u) {
			r->last_connect_errno = errno;
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
				break;
			continue;
		}
		u->owner = c;
		c->up = u;
		stat_add(c, STAT_upstream_connects, 1);
		c->state = C_CONNECT;
		set_deadline(c, (uint64_t)c->w->conf->timeouts.connect * 1000);
		if (u->connected)
			upstream_ready(c);
		return;
	}
	if (any_self && r->last_connect_errno == 0) {
		conn_error(c, 403, "The destination is this proxy itself.");
		return;
	}
	if (any_blocked && r->last_connect_errno == 0) {
		conn_error(c, 403, "The destination address is not allowed.");
		return;
	}
	char msg[400];
	int e = r->last_connect_errno;
	if (e == ECONNREFUSED)
		snprintf(msg, sizeof(msg), "The connection to %s was refused.", r->authority);
	else if (e == ETIMEDOUT) {
		snprintf(msg, sizeof(msg), "The connection to %s timed out.", r->authority);
		conn_error(c, 504, msg);
		return;
	} else if (e == EMFILE || e == ENFILE) {
		conn_error(c, 503, "The proxy is out of file descriptors; try again.");
		return;
	} else
		snprintf(msg, sizeof(msg), "Cannot connect to %s: %s.", r->authority, strerror(e ? e : EHOSTUNREACH));
	conn_error(c, 502, msg);
}

/* ---- streaming bodies ------------------------------------------------------ */

static bool
method_idempotent(enum http_method m)
{
	return m == M_GET || m == M_HEAD || m == M_OPTIONS || m == M_PUT ||
	    m == M_DELETE;
}

/* A reused origin connection failed before answering: retry once on a
 * fresh one when that cannot repeat a side effect (RFC 9110 9.2.2). */
static bool
maybe_retry(struct conn *c)
{
	struct req *r = c->req;

	if (!c->up || !c->up->reused || r->retried || r->rs_seen ||
	    r->msg.body != BODY_NONE || !method_idempotent(r->msg.method))
		return false;
	r->retried = true;
	up_drop(c);
	c->state = C_RESOLVE;
	set_deadline(c, (uint64_t)c->w->conf->timeouts.connect * 1000);
	r->dq = dns_resolve(c->w->dns, r->url.host, dns_done, c);
	return true;
}

static void finish_request(struct conn *c);

/* The origin's head is parsed: decide framing and queue it for the client. */
static void
response_head(struct conn *c)
{
	struct req *r = c->req;
	struct upstream *u = c->up;
	struct http_msg *m = &r->rmsg;
	bool client11 = r->msg.version_minor >= 1;

	r->status = m->status;
	if (m->status == 101) {
		if (!(r->msg.flags & MF_UPGRADE_WS)) {
			conn_error(c, 502, "The origin switched protocols without being asked.");
			return;
		}
	} else if (m->status < 200) {
		/* Interim response: relay it (1.1 clients) and parse the next. */
		if (client11) {
			if (buf_reserve(&c->out, BODY_BUF) < 0) {
				conn_error(c, 503, "Out of memory.");
				return;
			}
			buf_compact(&c->out);
			if (proxy_head_response(c, buf_rptr(&u->in), &c->out) < 0) {
				conn_error(c, 502, "The origin's interim response is too large.");
				return;
			}
		}
		buf_consume(&u->in, m->header_len);
		http_msg_init(&r->rmsg, r->rfields, r->fields_cap);
		return;
	}
	switch (m->body) {
	case BODY_NONE:    r->rs = RS_DONE; break;
	case BODY_LENGTH:  r->rs = m->content_length ? RS_LENGTH : RS_DONE;
			   r->rs_left = m->content_length; break;
	case BODY_CHUNKED: r->rs = RS_CHUNKED; http_chunked_init(&r->rs_ch); break;
	case BODY_CLOSE:   r->rs = RS_CLOSE; break;
	}
	if (m->status == 101)
		r->rs = RS_DONE;
	r->chunk_out = client11 && (r->rs == RS_CHUNKED || r->rs == RS_CLOSE);
	if (!client11 && (r->rs == RS_CHUNKED || r->rs == RS_CLOSE))
		r->close_after = true;
	if (r->rq != RQ_DONE) {
		/* The origin answered before the request body ended: the rest
		 * of the body would be parsed as a request; close after, and
		 * never pool this origin connection (HOSTILE #51). */
		r->close_after = true;
		r->early = true;
	}
	if (c->w->stopping)
		r->close_after = true;
	for (unsigned i = 0; i < m->nfields; i++)
		if (r->rfields[i].id == H_CONTENT_TYPE) {
			snprintf(r->ctype, sizeof(r->ctype), "%.*s",
			    (int)r->rfields[i].value_len,
			    buf_rptr(&u->in) + r->rfields[i].value_off);
			break;
		}
	cache_serve_invalidate(c, buf_rptr(&u->in));
	if (m->status != 101 && cache_serve_response(c, buf_rptr(&u->in)))
		return;		/* stored or served from the cache */
	size_t need = m->header_len + 1024;
	if (buf_reserve(&c->out, need > BODY_BUF ? need : BODY_BUF) < 0) {
		conn_error(c, 503, "Out of memory.");
		return;
	}
	buf_compact(&c->out);
	if (proxy_head_response(c, buf_rptr(&u->in), &c->out) < 0) {
		conn_error(c, 502, "The origin's response head is too large.");
		return;
	}
	buf_consume(&u->in, m->header_len);
	r->head_sent = true;
	if (m->status == 101) {
		if (conn_io_pipes(r->pipe_cu, r->pipe_uc) < 0)
			buf_reserve(&c->in, TUNNEL_BUF);
		c->state = C_TUNNEL;
	}
}

/* C_FORWARD: move the request body up and the response down. */
static bool
step_forward(struct conn *c)
{
	struct req *r = c->req;
	struct upstream *u = c->up;
	const struct sluice_conf *cf = c->w->conf;
	bool progress = false;
	ssize_t n;

	/* client -> origin: the request body */
	if (r->rq != RQ_DONE) {
		int mode = r->rq == RQ_LENGTH ? RS_LENGTH : RS_CHUNKED;
		int e = conn_io_move_body(&c->in, &u->out, &mode, &r->rq_left, &r->rq_ch,
		    r->rq == RQ_CHUNKED, &progress, &r->rq_total);
		if (e < 0) {
			conn_error(c, 400, "The chunked request body is malformed.");
			return true;
		}
		/* A chunked body has no length up front: count it as it goes. */
		if (cf->limits.request_body && r->rq_total > cf->limits.request_body) {
			r->close_after = true;
			conn_error(c, 413, "The request body is larger than this proxy allows.");
			return true;
		}
		if (e == 1)
			r->rq = RQ_DONE;
		else if (buf_room(&c->in) > 0 || buf_len(&c->in) == 0) {
			if (buf_reserve(&c->in, BODY_BUF) < 0) {
				conn_error(c, 503, "Out of memory.");
				return true;
			}
			n = conn_io_read(c->fd, &c->in, &c->rd_ready, c->hup);
			if (n > 0) {
				progress = true;
				stat_add(c, STAT_bytes_from_clients, (uint64_t)n);
			} else if (n == 0 || n == -2) {
				/* The client went away in the middle of its body. */
				c->eof = true;
				conn_error(c, 400, "The request body ended early.");
				return true;
			}
		}
	}

	/* sluice -> origin */
	if (buf_len(&u->out) > 0) {
		n = conn_io_write(u->fd, &u->out, &u->wr_ready);
		if (n > 0)
			progress = true;
		else if (n == -2) {
			int e = errno;
			if (maybe_retry(c))
				return true;
			if (!r->rs_seen) {
				conn_error(c, 502, e == ECONNRESET || e == EPIPE ?
				    "The origin reset the connection." :
				    "Writing to the origin failed.");
				return true;
			}
			/* It answered already: stop sending, read the answer. */
			buf_consume(&u->out, buf_len(&u->out));
			r->rq = RQ_DONE;
			r->close_after = true;
		}
	}

	/* origin -> sluice */
	bool up_eof = false;
	int up_err = 0;
	if (r->rs != RS_DONE && buf_len(&c->out) < BODY_BUF / 2) {
		if (r->rs == RS_HEAD && buf_room(&u->in) == 0) {
			buf_compact(&u->in);
			if (buf_room(&u->in) == 0 && u->in.cap < cf->limits.header_size + 1024)
				buf_reserve(&u->in, cf->limits.header_size + 1024);
		}
		n = conn_io_read(u->fd, &u->in, &u->rd_ready, u->hup);
		if (n > 0) {
			progress = true;
			r->rs_seen = true;
			stat_add(c, STAT_bytes_from_origins, (uint64_t)n);
		} else if (n == 0)
			up_eof = true;
		else if (n == -2) {
			up_err = errno;
			up_eof = true;
		}
	}

	/* the response head */
	while (r->rs == RS_HEAD && buf_len(&u->in) > 0) {
		int e = http_parse_response(&r->rmsg, buf_rptr(&u->in), buf_len(&u->in),
		    &c->w->limits, r->msg.method);
		if (e == HTTP_MORE)
			break;
		if (e < 0) {
			char msg[200];
			snprintf(msg, sizeof(msg), "The origin sent an invalid response (%s).",
			    http_err_str(e));
			conn_error(c, 502, msg);
			return true;
		}
		response_head(c);
		progress = true;
		if (c->state != C_FORWARD)
			return true;
	}
	if (r->rs == RS_HEAD && up_eof) {
		if (maybe_retry(c))
			return true;
		conn_error(c, 502, up_err == ECONNRESET ? "The origin reset the connection." :
		    r->rs_seen ? "The origin closed the connection in the middle of its response head." :
		    "The origin closed the connection without answering.");
		return true;
	}

	/* the response body */
	if (r->rs != RS_HEAD && r->rs != RS_DONE) {
		int mode = (int)r->rs;
		uint64_t moved = 0;
		int e = conn_io_move_body(&u->in, &c->out, &mode, &r->rs_left, &r->rs_ch,
		    r->chunk_out, &progress, &moved);
		if (r->cs.tee != NULL && moved > 0 && mode == RS_LENGTH) {
			/* Copied for memcached: the run just appended. */
			mc_tier_tee_feed(c, c->out.data + c->out.wpos - moved,
			    (size_t)moved);
			if (e == 1)
				mc_tier_tee_end(c);
		}
		if (e < 0) {
			log_info("client %s: invalid chunked body from origin %s; truncating",
			    c->peer_str, r->authority);
			req_end(c, END_ORIGIN_GONE, r->status, r->hdr, buf_len(&c->out));
			r->close_after = true;
			up_drop(c);
			c->state = C_FLUSH;	/* send what we have, then close: truncation */
			return true;
		}
		if (e == 1)
			r->rs = RS_DONE;
		else if (up_eof && buf_len(&u->in) == 0) {
			if (r->rs == RS_CLOSE && up_err == 0) {
				if (conn_io_body_room(&c->out, false) < 5)
					return progress;	/* retry once out drains */
				if (r->chunk_out)
					buf_append(&c->out, "0\r\n\r\n", 5);
				r->rs = RS_DONE;
				r->close_after |= !r->chunk_out;
			} else {
				/* Truncated: the client must see it (no last-chunk). */
				log_info("client %s: origin %s closed mid-body; truncating",
				    c->peer_str, r->authority);
				req_end(c, END_ORIGIN_GONE, r->status, r->hdr, buf_len(&c->out));
				r->close_after = true;
				up_drop(c);
				c->state = C_FLUSH;
				return true;
			}
		}
	} else if (r->rs == RS_DONE && up_eof) {
		/* EOF after a complete response: nothing lost; do not pool it. */
		up_drop(c);
	}

	/* sluice -> client */
	if (buf_len(&c->out) > 0) {
		n = conn_io_write(c->fd, &c->out, &c->wr_ready);
		if (n > 0) {
			progress = true;
			c->bytes_out += (uint64_t)n;
			stat_add(c, STAT_bytes_to_clients, (uint64_t)n);
		} else if (n == -2) {
			req_end(c, END_CLIENT_GONE, r->status ? r->status : 499, r->hdr, 0);
			c->state = C_CLOSED;	/* the client went away */
			return true;
		}
	}

	if (r->rs == RS_DONE && buf_len(&c->out) == 0 &&
	    (r->rq == RQ_DONE || r->close_after)) {
		finish_request(c);
		return true;
	}
	if (progress)
		set_deadline(c, (uint64_t)(r->rs == RS_HEAD && r->rq == RQ_DONE ?
		    cf->timeouts.upstream : cf->timeouts.idle) * 1000);
	return progress;
}

/* The response is out: log, pool the origin connection, next request. */
static void
finish_request(struct conn *c)
{
	struct req *r = c->req;
	struct upstream *u = c->up;

	req_end(c, r->rmsg.status == 101 ? END_TUNNEL : END_DONE, r->status, r->hdr, 0);
	if (u) {
		bool reuse = r->rq == RQ_DONE && !r->early && r->rmsg.body != BODY_CLOSE &&
		    !(r->rmsg.flags & (MF_CONN_CLOSE | MF_MUST_CLOSE)) &&
		    !c->w->stopping;
		c->up = NULL;
		if (reuse)
			upool_put(c->w->pool, u);
		else
			upstream_close(c->w->pool, u);
	}
	/* A head that promised keep-alive is kept, even when a graceful
	 * stop began meanwhile: the client may be sending its next request
	 * already.  That one is answered with Connection: close; a
	 * connection that stays idle goes after the stop grace. */
	bool close_after = r->close_after;
	req_free(c);
	if (close_after) {
		c->state = C_FLUSH;
		c->linger = true;
		return;
	}
	c->state = C_IDLE;
	buf_release(&c->in);
	buf_release(&c->out);
	set_deadline(c, c->w->stopping ? STOP_IDLE_GRACE_MS :
	    (uint64_t)c->w->conf->timeouts.keepalive * 1000);
}

/* ---- tunnels ------------------------------------------------------------- */

/* C_TUNNEL: bytes both ways until both sides closed (half-close kept).
 * Bytes that arrived with the head (a pipelined ClientHello, WebSocket
 * frames after the 101) are written from the buffers first; after that a
 * tunnel with pipes moves data with splice(2), one without through the
 * buffers. */
static bool
step_tunnel(struct conn *c)
{
	struct upstream *u = c->up;
	struct req *r = c->req;
	bool progress = false, err = false, spliced = r->pipe_cu[0] >= 0;
	ssize_t n;

	/* Our own 200 (or 101) goes to the client first. */
	if (buf_len(&c->out) > 0) {
		n = conn_io_write(c->fd, &c->out, &c->wr_ready);
		if (n > 0) {
			c->bytes_out += (uint64_t)n;
			progress = true;
		} else if (n == -2)
			err = true;
	}
	/* client -> origin */
	if (!err && spliced && buf_len(&c->in) == 0)
		progress |= conn_io_splice(c->fd, r->pipe_cu, &r->in_cu, &c->rd_ready,
		    u->fd, &u->wr_ready, &c->eof, &err, NULL);
	else if (!err && spliced) {
		if ((n = conn_io_write(u->fd, &c->in, &u->wr_ready)) > 0)
			progress = true;
		else if (n == -2)
			err = true;
	} else if (!err)
		progress |= conn_io_relay(c->fd, &c->in, &c->rd_ready, c->hup, u->fd,
		    &u->wr_ready, &c->eof, &err, NULL);
	/* origin -> client, once our own answer is out */
	if (!err && buf_len(&c->out) == 0) {
		if (spliced && buf_len(&u->in) == 0)
			progress |= conn_io_splice(u->fd, r->pipe_uc, &r->in_uc, &u->rd_ready,
			    c->fd, &c->wr_ready, &r->up_eof, &err, &c->bytes_out);
		else if (spliced) {
			if ((n = conn_io_write(c->fd, &u->in, &c->wr_ready)) > 0) {
				c->bytes_out += (uint64_t)n;
				progress = true;
			} else if (n == -2)
				err = true;
		} else
			progress |= conn_io_relay(u->fd, &u->in, &u->rd_ready, u->hup,
			    c->fd, &c->wr_ready, &r->up_eof, &err, &c->bytes_out);
	}
	/* Propagate half-close once the other side has everything. */
	if (!err && c->eof && buf_len(&c->in) == 0 && r->in_cu == 0 && !r->shut_up) {
		shutdown(u->fd, SHUT_WR);
		r->shut_up = true;
	}
	if (!err && r->up_eof && buf_len(&u->in) == 0 && r->in_uc == 0 &&
	    buf_len(&c->out) == 0 && !r->shut_client) {
		shutdown(c->fd, SHUT_WR);
		r->shut_client = true;
	}
	if (err || (r->shut_up && r->shut_client)) {
		req_end(c, END_TUNNEL, r->status, r->hdr, 0);
		c->state = C_CLOSED;
		return true;
	}
	if (progress)
		set_deadline(c, (uint64_t)c->w->conf->timeouts.idle * 1000);
	return progress;
}

/* ---- the head, flushing, lingering ---------------------------------------- */

static struct req *
req_new(struct conn *c)
{
	unsigned cap = (unsigned)c->w->conf->limits.header_fields;
	struct req *r = fault_fail("req_alloc") ? NULL :
	    calloc(1, sizeof(*r) + 2 * cap * sizeof(struct http_field));

	if (!r)
		return NULL;
	r->fields = (struct http_field *)(r + 1);
	r->rfields = r->fields + cap;
	r->fields_cap = cap;
	r->pipe_cu[0] = r->pipe_cu[1] = r->pipe_uc[0] = r->pipe_uc[1] = -1;
	r->max_forwards = -1;
	http_msg_init(&r->msg, r->fields, cap);
	r->start_ms = ev_wall_ms(c->w->loop);
	c->nreq++;
	r->bytes_out_start = c->bytes_out;
	return r;
}

/* C_IDLE / C_HEAD: read and parse a request head. */
static bool
step_head(struct conn *c)
{
	struct worker *w = c->w;
	ssize_t n;

	if (buf_len(&c->in) == 0) {
		if (c->rd_ready && buf_reserve(&c->in, HEAD_BUF) < 0) {
			c->state = C_CLOSED;
			return true;
		}
		n = conn_io_read(c->fd, &c->in, &c->rd_ready, c->hup);
		if (n == -1) {
			if (c->state == C_IDLE) {
				buf_release(&c->in);
				/* Stopping: an idle connection waits out the
				 * stop grace (conn_stop_idle) for a request
				 * already on its way, which is served and then
				 * closed. */
			}
			return false;
		}
		if (n <= 0) {		/* EOF or error between requests: a quiet close */
			c->state = C_CLOSED;
			return true;
		}
		stat_add(c, STAT_bytes_from_clients, (uint64_t)n);
	}
	if (!c->req) {
		if (!(c->req = req_new(c))) {
			/* Out of memory: refuse this request, keep the worker. */
			conn_error(c, 503, "The proxy is short of memory; try again.");
			return true;
		}
		c->state = C_HEAD;
		/* Stopping: a head gets a short while, so a slow client cannot
		 * hold an old generation (and its lists) for the whole
		 * timeouts.shutdown. */
		set_deadline(c, w->stopping ? STOP_HEAD_MS :
		    (uint64_t)w->conf->timeouts.client_header * 1000);
	}
	int e = http_parse_request(&c->req->msg, buf_rptr(&c->in), buf_len(&c->in), &w->limits);
	if (e == HTTP_OK) {
		head_done(c);
		return true;
	}
	if (e < 0) {
		conn_error(c, http_err_status(e, false), http_err_str(e));
		return true;
	}
	/* HTTP_MORE: make room (up to the header limit; the parser enforces it). */
	buf_compact(&c->in);
	if (buf_room(&c->in) == 0) {
		size_t want = c->in.cap * 2;
		if (want > w->conf->limits.header_size + 1024)
			want = w->conf->limits.header_size + 1024;
		if (want <= c->in.cap || buf_reserve(&c->in, want) < 0) {
			conn_error(c, 431, "The request head is too large.");
			return true;
		}
	}
	n = conn_io_read(c->fd, &c->in, &c->rd_ready, c->hup);
	if (n > 0) {
		stat_add(c, STAT_bytes_from_clients, (uint64_t)n);
		return true;
	}
	if (n == 0 || n == -2) {	/* gave up in the middle of a head */
		c->state = C_CLOSED;
		return true;
	}
	return false;
}

/* C_FLUSH: write what is queued, then linger or close. */
static bool
step_flush(struct conn *c)
{
	ssize_t n = conn_io_write(c->fd, &c->out, &c->wr_ready);

	if (n > 0)
		c->bytes_out += (uint64_t)n;
	if (n == -2) {
		c->state = C_CLOSED;
		return true;
	}
	if (buf_len(&c->out) > 0)
		return n > 0;
	if (!c->linger) {
		c->state = C_CLOSED;
		return true;
	}
	/* Half-close and read what the client still sends, so our answer is
	 * not destroyed by a reset (the client may be mid-body). */
	shutdown(c->fd, SHUT_WR);
	up_drop(c);
	req_free(c);
	buf_free(&c->out);
	c->state = C_LINGER;
	set_deadline(c, LINGER_MS);
	return true;
}

static bool
step_linger(struct conn *c)
{
	char junk[4096];
	ssize_t n;

	/* Bounded: a client that keeps sending must not hold the loop; the
	 * linger deadline ends it, and conn_run's kick brings us back. */
	for (int i = 0; c->rd_ready && i < 16; i++) {
		n = read(c->fd, junk, sizeof(junk));
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->rd_ready = false;
			return false;
		}
		c->state = C_CLOSED;
		return true;
	}
	return c->rd_ready;	/* budget spent: run again */
}

/* ---- the machine ---------------------------------------------------------- */

#define RUN_BUDGET 64	/* steps before yielding to other connections */

static void
conn_run(struct conn *c)
{
	bool progress = true;
	int budget = RUN_BUDGET;

	if (c->in_run)
		return;
	c->in_run = true;
	while (progress && budget-- > 0) {
		switch (c->state) {
		case C_IDLE:
		case C_HEAD:
			progress = step_head(c);
			break;
		case C_RESOLVE:
		case C_MC:
			progress = false;
			break;
		case C_CONNECT:
			progress = false;
			if (c->up && (c->up->wr_ready || c->up->rd_ready)) {
				try_connect(c);
				progress = true;
			}
			break;
		case C_FORWARD:
			progress = step_forward(c);
			break;
		case C_TUNNEL:
			progress = step_tunnel(c);
			break;
		case C_PEEK:
			progress = conn_filter_peek_step(c);
			break;
		case C_CACHE:
		case C_FILL:
			progress = cache_send_step(c);
			break;
		case C_FLUSH:
			progress = step_flush(c);
			break;
		case C_LINGER:
			progress = step_linger(c);
			break;
		case C_CLOSED:
			c->in_run = false;
			conn_free(c);
			return;
		}
	}
	c->in_run = false;
	if (progress) {
		/* Out of budget with work left: edges will not come again, so
		 * come back on the next loop iteration. */
		ev_timer_start(c->w->loop, &c->kick, 0);
	}
}

static void
conn_kick(struct ev_loop *loop, struct ev_timer *t)
{
	(void)loop;
	conn_run(t->data);
}

static void
conn_io(struct ev_loop *loop, struct ev_io *io, uint32_t ev)
{
	struct conn *c = io->data;

	(void)loop;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->rd_ready = true;
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->hup = true;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->wr_ready = true;
	conn_run(c);
}

/* The io callback of every upstream socket (owned or pooled). */
void
conn_upstream_io(struct ev_loop *loop, struct ev_io *io, uint32_t ev)
{
	struct upstream *u = io->data;

	(void)loop;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		u->rd_ready = true;
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		u->hup = true;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		u->wr_ready = true;
	if (!u->owner) {
		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			upool_event(u->pool, u);
		return;
	}
	conn_run(u->owner);
}

static void
conn_timer(struct ev_loop *loop, struct ev_timer *t)
{
	struct conn *c = t->data;
	struct req *r = c->req;
	uint64_t now = ev_now(loop);

	if (now < c->deadline) {
		ev_timer_start(loop, t, c->deadline - now);
		return;
	}
	switch (c->state) {
	case C_IDLE:
		c->state = C_CLOSED;
		break;
	case C_HEAD:
		conn_error(c, 408, "The request head did not arrive in time.");
		break;
	case C_RESOLVE:
		conn_error(c, 504, "The origin's name could not be resolved in time.");
		break;
	case C_CONNECT:
		conn_error(c, 504, "The connection to the origin timed out.");
		break;
	case C_FORWARD:
		if (r && r->rq != RQ_DONE && !r->head_sent)
			conn_error(c, 408, "The request body did not arrive in time.");
		else if (r && !r->head_sent)
			conn_error(c, 504, "The origin did not answer in time.");
		else {
			if (r)
				req_end(c, END_TIMEOUT, r->status, r->hdr, 0);
			c->state = C_CLOSED;
		}
		break;
	case C_CACHE:
	case C_FILL:
		/* Nothing moved for `idle`: a stalled client or origin. */
		if (r && r->cs.client_gone)
			;
		else if (r && !r->head_sent)
			conn_error(c, 504, "The cached response did not arrive in time.");
		else if (r)
			req_end(c, END_TIMEOUT, r->status, r->hdr, 0);
		c->state = c->state == C_FLUSH ? C_FLUSH : C_CLOSED;
		break;
	case C_PEEK:
		conn_filter_peek_timeout(c);
		break;
	case C_MC:
		mc_tier_timeout(c);
		break;
	case C_TUNNEL:
		/* An idle tunnel ends normally: nothing moved for `idle`. */
		if (r)
			req_end(c, END_TUNNEL, r->status, r->hdr, 0);
		c->state = C_CLOSED;
		break;
	default:
		c->state = C_CLOSED;
		break;
	}
	conn_run(c);
}

/* Graceful stop: idle connections get a short grace, busy ones finish. */
void
conn_stop_idle(struct worker *w)
{
	struct conn *c = w->conns, *n;

	for (; c; c = n) {
		char b;
		n = c->next;
		/* A connection that has not sent its first request yet was
		 * accepted a moment ago: its request is on the way, but it
		 * gets only the head's short while to send it. */
		if (c->state == C_IDLE && c->nreq == 0 && !c->in_run &&
		    c->deadline > ev_now(w->loop) + STOP_HEAD_MS) {
			set_deadline(c, STOP_HEAD_MS);
			continue;
		}
		/* A head begun before the stop gets the same short while,
		 * not the rest of timeouts.client_header: a client that
		 * trickles it must not hold the old generation. */
		if (c->state == C_HEAD && !c->in_run &&
		    c->deadline > ev_now(w->loop) + STOP_HEAD_MS) {
			set_deadline(c, STOP_HEAD_MS);
			continue;
		}
		if (c->state != C_IDLE || buf_len(&c->in) > 0 || c->in_run ||
		    c->nreq == 0)
			continue;
		/* A request may be waiting in the socket (a client that just
		 * connected, or reused its keep-alive connection) with its
		 * event not dispatched yet: serve it rather than drop it. */
		if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
			c->rd_ready = true;
			ev_timer_start(w->loop, &c->kick, 0);
		} else if (c->deadline > ev_now(w->loop) + STOP_IDLE_GRACE_MS) {
			/* Not closed at once: a busy client's next request is
			 * often already on the wire, and closing under it loses
			 * it.  One that arrives within the grace is served (with
			 * Connection: close); an idle one is closed after it. */
			set_deadline(c, STOP_IDLE_GRACE_MS);
		}
	}
}

/* Fast stop: close everything. */
void
conn_close_all(struct worker *w)
{
	while (w->conns)
		conn_free(w->conns);
}

/* ---- for cache_serve.c ------------------------------------------------------- */

void
conn_up_done(struct conn *c, bool reuse)
{
	struct req *r = c->req;
	struct upstream *u = c->up;

	if (u == NULL)
		return;
	memcpy(&r->up_sa, &u->sa, sizeof(r->up_sa) < sizeof(u->sa) ?
	    sizeof(r->up_sa) : sizeof(u->sa));
	r->up_seen = true;
	reuse = reuse && r->rq == RQ_DONE && !r->early &&
	    r->rmsg.body != BODY_CLOSE &&
	    !(r->rmsg.flags & (MF_CONN_CLOSE | MF_MUST_CLOSE)) &&
	    !c->w->stopping && buf_len(&u->in) == 0;
	c->up = NULL;
	if (reuse)
		upool_put(c->w->pool, u);
	else
		upstream_close(c->w->pool, u);
}

void
conn_kick_now(struct conn *c)
{
	ev_timer_start(c->w->loop, &c->kick, 0);
}

void
conn_cache_client_gone(struct conn *c)
{
	struct req *r = c->req;

	/* A background revalidation has no client: its work is done. */
	req_end(c, c->bg ? END_DONE : END_CLIENT_GONE,
	    r->status ? r->status : 499, r->hdr, 0);
	if (c->state == C_FILL && !r->cs.fill_done) {
		/* Others may be streaming this fill: finish it without us. */
		r->cs.client_gone = true;
		return;
	}
	c->state = C_CLOSED;
}

void
conn_cache_finish(struct conn *c)
{
	finish_request(c);
}

void
conn_answer(struct conn *c, int status, const char *text)
{
	struct req *r = c->req;
	size_t n = strlen(text);

	if (buf_reserve(&c->out, n + 512) < 0 || buf_printf(&c->out,
	    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
	    "Via: %s\r\nConnection: close\r\n\r\n%s\n", status,
	    errpage_reason(status), n + 1, c->w->via, text) < 0) {
		req_end(c, END_FAILED, 503, r->hdr, 0);
		c->state = C_CLOSED;
		return;
	}
	req_end(c, END_DONE, status, r->hdr, buf_len(&c->out));
	buf_consume(&c->in, buf_len(&c->in));
	c->state = C_FLUSH;
	c->linger = true;
}
