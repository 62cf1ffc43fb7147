/*
 * cache_send.c - serving an entry of the shared cache to a client, and
 * the origin side of a fill: the C_CACHE and C_FILL states of the
 * connection machine (conn.c dispatches here).
 *
 * What: the client's head is built from the stored head (a plain hit
 * copies it as it is), then the body goes out as iovecs that point into
 * the segment's blocks, chunk-framed while the length is unknown.  A
 * reader of a filling entry that has caught up parks the connection on
 * the worker's wait list; the writer's datagram wakes the worker
 * (cache_send_wake).  In C_FILL the origin's body is decoded and
 * appended at the origin's speed, and the client is served from the
 * entry like any other reader; when the cache refuses more (too large
 * with no one else reading, no room) the rest streams through cbuf.
 *
 * Assumes: the entry format [key][head][body] of shm/cache.c and the
 * stored head written by cache_serve.c (status line and fields, CRLF
 * each, no framing, no Age, no blank line).
 *
 * Why a file of its own: this is the byte movement of the cache, the
 * way conn_io.c is the byte movement of forwarding; cache_serve.c keeps
 * the policy (lookup, storing, invalidation).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "worker/cache_serve.h"
#include "worker/conn_int.h"
#include "worker/errpage.h"
#include "worker/mc_tier.h"
#include "worker/upstream.h"

#define SERVE_IOV	64
#define FIELDS_MAX	CACHE_SERVE_FIELDS_MAX

/* ---- serving an entry ------------------------------------------------------- */

static void
wait_add(struct conn *c)
{
	struct worker *w = c->w;

	if (c->cw_on)
		return;
	c->cw_on = true;
	c->cw_prev = NULL;
	c->cw_next = w->cwait;
	if (w->cwait)
		w->cwait->cw_prev = c;
	w->cwait = c;
}

void
conn_cache_wait_remove(struct conn *c)
{
	struct worker *w = c->w;

	if (!c->cw_on)
		return;
	if (c->cw_prev)
		c->cw_prev->cw_next = c->cw_next;
	else
		w->cwait = c->cw_next;
	if (c->cw_next)
		c->cw_next->cw_prev = c->cw_prev;
	c->cw_on = false;
	c->cw_next = c->cw_prev = NULL;
}

void
cache_send_wake(struct worker *w)
{
	struct conn *c, *next;

	cache_wake_drain(w->cache);
	/* Detach the list first: a run may park the connection again. */
	c = w->cwait;
	w->cwait = NULL;
	for (struct conn *p = c; p; p = p->cw_next)
		p->cw_on = false;
	for (; c; c = next) {
		next = c->cw_next;
		c->cw_next = c->cw_prev = NULL;
		conn_kick_now(c);
	}
}

void
cache_send_begin(struct conn *c, const char *code)
{
	struct creq *cs = &c->req->cs;

	cs->code = code;
	cs->head_queued = false;
	cs->done = false;
	c->state = c->state == C_FILL ? C_FILL : C_CACHE;
	conn_set_deadline(c, (uint64_t)c->w->conf->timeouts.idle * 1000);
}

/* Bytes of the object we serve: a shm entry, or an object from
 * memcached too large for shm (held in memory). */
static int
src_copy(struct conn *c, uint64_t off, void *dst, size_t n)
{
	struct creq *cs = &c->req->cs;

	if (cs->mobj != NULL)
		return mc_obj_copy(cs->mobj, off, dst, n);
	return cache_copy(c->w->cache, &cs->read, off, dst, n);
}

/* The head for this client from the stored head: status line (200, 206,
 * 304, 416), fields, Age, framing, and ours.  A plain hit copies the
 * stored head as it is and parses nothing; conditionals and ranges need
 * the stored fields (ETag) and a status line of their own. */
static int
serve_head(struct conn *c, const struct cache_view *v)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	const struct cache_req *q = &cs->q;
	const struct sluice_conf *cf = c->w->conf;
	struct cache_field f[FIELDS_MAX];
	const struct cache_field *etag = NULL;
	char *h = NULL, sl[12];
	size_t nf = 0;
	int st;
	uint64_t body = v->body_len, first = 0, last = 0;
	bool complete = v->state == CE_COMPLETE;
	bool need = q->inm != NULL || q->ims >= 0 || q->range != NULL;
	int code = 0;			/* 0: the stored status */
	bool client11 = r->msg.version_minor >= 1;
	size_t hn = strlen(cf->visible_hostname);

	/* "HTTP/1.1 200 " */
	if (v->hdr_len < sizeof(sl) || src_copy(c, v->key_len, sl, sizeof(sl)) != 0)
		return -1;
	st = (sl[9] - '0') * 100 + (sl[10] - '0') * 10 + (sl[11] - '0');
	if (need && st == 200) {
		if ((h = malloc(v->hdr_len + 1)) == NULL ||
		    src_copy(c, v->key_len, h, v->hdr_len) != 0) {
			free(h);
			return -1;
		}
		h[v->hdr_len] = '\0';
		nf = cache_serve_stored_fields(h, v->hdr_len, f, FIELDS_MAX, &st);
		etag = cache_serve_field_find(f, nf, "etag");
		if ((q->inm != NULL || q->ims >= 0) && cache_not_modified(q,
		    etag ? etag->value : NULL, etag ? etag->vlen : 0,
		    v->meta.last_modified, v->meta.date)) {
			code = 304;
			cache_serve_stat(c, STAT_cache_not_modified, 1);
			if (cs->code && strcmp(cs->code, "TCP_HIT") == 0)
				cs->code = q->inm ? "TCP_INM_HIT" : "TCP_IMS_HIT";
		} else if (complete && q->range != NULL && r->msg.method == M_GET) {
			switch (cache_range(q, body, etag ? etag->value : NULL,
			    etag ? etag->vlen : 0, v->meta.last_modified, &first, &last)) {
			case RANGE_OK:
				code = 206;
				break;
			case RANGE_UNSATISFIABLE:
				code = 416;
				break;
			case RANGE_NONE:
				break;
			}
		}
	}
	buf_compact(&c->out);
	if (buf_reserve(&c->out, buf_len(&c->out) + v->hdr_len + 512 + 3 * hn +
	    c->w->via_len + sizeof(cs->status)) < 0)
		goto fail;
	if (code == 0) {
		/* The stored head as it is, straight from the segment. */
		if (src_copy(c, v->key_len, c->out.data + c->out.wpos,
		    v->hdr_len) != 0)
			goto fail;
		c->out.wpos += v->hdr_len;
	} else {
		if (buf_printf(&c->out, "HTTP/1.1 %d %s\r\n", code,
		    errpage_reason(code)) < 0)
			goto fail;
		for (size_t i = 0; i < nf; i++) {
			/* 304: only the fields RFC 9110 15.4.5 names. */
			if (code == 304 && !(
			    (f[i].nlen == 13 && !strncasecmp(f[i].name, "cache-control", 13)) ||
			    (f[i].nlen == 16 && !strncasecmp(f[i].name, "content-location", 16)) ||
			    (f[i].nlen == 4 && !strncasecmp(f[i].name, "date", 4)) ||
			    (f[i].nlen == 4 && !strncasecmp(f[i].name, "etag", 4)) ||
			    (f[i].nlen == 7 && !strncasecmp(f[i].name, "expires", 7)) ||
			    (f[i].nlen == 4 && !strncasecmp(f[i].name, "vary", 4)) ||
			    (f[i].nlen == 13 && !strncasecmp(f[i].name, "last-modified", 13))))
				continue;
			if (buf_reserve(&c->out, buf_len(&c->out) + f[i].nlen +
			    f[i].vlen + 512 + 3 * hn + c->w->via_len +
			    sizeof(cs->status)) < 0)
				goto fail;
			buf_append(&c->out, f[i].name, f[i].nlen);
			buf_append(&c->out, ": ", 2);
			buf_append(&c->out, f[i].value, f[i].vlen);
			buf_append(&c->out, "\r\n", 2);
		}
	}
	free(h);
	h = NULL;
	r->status = code ? code : st;
	/* A hit is answered in the second it was looked up in; a follower
	 * or the filling client may be later. */
	cache_serve_num_field(&c->out, "Age: ", 5, (uint64_t)cache_age(&v->meta,
	    cs->collapsed || c->state == C_FILL ? cache_serve_now(c) : cs->req_time));
	cs->off = v->key_len + v->hdr_len;
	cs->chunked = false;
	if (code == 304 || r->msg.method == M_HEAD || st == 204 || st == 304 ||
	    code == 416) {
		cs->body_none = true;
		if (code == 416) {
			buf_append(&c->out, "Content-Range: bytes */", 23);
			cache_serve_num_field(&c->out, "", 0, body);
			buf_append(&c->out, "Content-Length: 0\r\n", 19);
		} else if (code != 304 && st != 204 && body != UINT64_MAX)
			cache_serve_num_field(&c->out, "Content-Length: ", 16, body);
	} else if (code == 206) {
		char cr[96];
		int n = snprintf(cr, sizeof(cr), "Content-Range: bytes %llu-%llu/%llu\r\n",
		    (unsigned long long)first, (unsigned long long)last,
		    (unsigned long long)body);

		cs->off += first;
		cs->end = v->key_len + v->hdr_len + last + 1;
		buf_append(&c->out, cr, (size_t)n);
		cache_serve_num_field(&c->out, "Content-Length: ", 16, last - first + 1);
	} else if (body != UINT64_MAX) {
		cs->end = v->key_len + v->hdr_len + body;
		cache_serve_num_field(&c->out, "Content-Length: ", 16, body);
	} else {
		/* Still filling with no length: chunk it (1.0: until close). */
		cs->end = UINT64_MAX;
		if (client11) {
			cs->chunked = true;
			buf_append(&c->out, "Transfer-Encoding: chunked\r\n", 28);
		} else
			r->close_after = true;
	}
	if (c->w->stopping)
		r->close_after = true;
	if (r->close_after)
		buf_append(&c->out, "Connection: close\r\n", 19);
	else if (!client11)
		buf_append(&c->out, "Connection: keep-alive\r\n", 24);
	buf_append(&c->out, "Via: ", 5);
	buf_append(&c->out, c->w->via, c->w->via_len);
	buf_append(&c->out, "\r\nCache-Status: sluice; ", 24);
	buf_append(&c->out, cs->status, strlen(cs->status));
	if (strncmp(cs->status, "hit", 3) == 0)
		buf_append(&c->out, "\r\nX-Cache: HIT from ", 20);
	else
		buf_append(&c->out, "\r\nX-Cache: MISS from ", 21);
	buf_append(&c->out, cf->visible_hostname, hn);
	if (buf_append(&c->out, "\r\n\r\n", 4) < 0)
		goto fail;
	r->head_sent = true;
	cs->head_queued = true;
	return 0;
fail:
	free(h);
	return -1;
}

/* Restart a follower whose leader gave up before the head: it fetches
 * the URL itself, uncached.  look: the leader passed (CF_PASS), which
 * is also what it does when it serves an object too large for shm from
 * memcached: ask memcached first, for such an object. */
static void
serve_refetch(struct conn *c, bool look)
{
	struct creq *cs = &c->req->cs;

	/* rec UINT32_MAX: the reference is the fill's (released with it). */
	if (cs->read.idx != 0 && cs->read.rec != UINT32_MAX)
		cache_release(c->w->cache, &cs->read);
	mc_tier_release(c);
	memset(&cs->read, 0, sizeof(cs->read));
	cs->mode = CS_PASS;
	cs->code = NULL;
	cache_serve_set_status(cs, "fwd=uri-miss");
	if (look && mc_tier_lookup_alone(c))
		return;
	conn_start_upstream(c);
}

/* Body bytes for the client from cs->off: the entry up to its limit,
 * then (a broken fill) the decoded bytes waiting in cbuf. */
static int
body_iov(struct conn *c, const struct cache_view *v, struct iovec *iov,
    int max, bool *from_cbuf)
{
	struct creq *cs = &c->req->cs;
	uint64_t limit = cs->fill_broken ? cs->fill_len : v->len;
	size_t want = (size_t)(cs->chunk_left < (1u << 20) ? cs->chunk_left : (1u << 20));

	*from_cbuf = false;
	if (cs->end != UINT64_MAX && limit > cs->end)
		limit = cs->end;
	if (cs->off < limit)
		return cs->mobj != NULL ?
		    mc_obj_iov(cs->mobj, cs->off, want, iov, max) :
		    cache_iov(c->w->cache, &cs->read, cs->off, want, iov, max);
	if (cs->fill_broken && buf_len(&cs->cbuf) > 0) {
		size_t k = buf_len(&cs->cbuf) < want ? buf_len(&cs->cbuf) : want;

		if (cs->end != UINT64_MAX && k > cs->end - cs->off)
			k = (size_t)(cs->end - cs->off);
		if (k == 0)
			return 0;
		*from_cbuf = true;
		iov[0].iov_base = (void *)buf_rptr(&cs->cbuf);
		iov[0].iov_len = k;
		return 1;
	}
	return 0;
}

/* Body bytes available to send now (for opening a chunk). */
static uint64_t
body_avail(struct conn *c, const struct cache_view *v)
{
	struct creq *cs = &c->req->cs;
	uint64_t limit = cs->fill_broken ? cs->fill_len : v->len;

	if (cs->end != UINT64_MAX && limit > cs->end)
		limit = cs->end;
	if (cs->off < limit)
		return limit - cs->off;
	if (!cs->fill_broken)
		return 0;
	if (cs->end != UINT64_MAX)
		return cs->off < cs->end ? (buf_len(&cs->cbuf) < cs->end - cs->off ?
		    buf_len(&cs->cbuf) : cs->end - cs->off) : 0;
	return buf_len(&cs->cbuf);
}

/* Is every body byte the client should get already sent? */
static bool
body_complete(struct conn *c, const struct cache_view *v)
{
	struct creq *cs = &c->req->cs;

	if (cs->body_none)
		return true;
	if (cs->end != UINT64_MAX)
		return cs->off >= cs->end;
	if (cs->fill_broken)
		return cs->fill_done && !cs->truncated && buf_len(&cs->cbuf) == 0 &&
		    cs->off >= cs->fill_len;
	return v->state == CE_COMPLETE && !(v->flags & CF_ABORTED) &&
	    cs->off >= v->len;
}

/* Write c->out and then body bytes (chunk-framed when asked) to the
 * client, in one sendmsg where possible.  *finished: all of it is out. */
static bool
serve_write(struct conn *c, const struct cache_view *v, bool *finished)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	bool progress = false;

	*finished = false;
	for (;;) {
		struct iovec iov[SERVE_IOV + 1];
		struct msghdr mh;
		int n = 0, k;
		size_t outlen, body = 0;
		bool from_cbuf = false;
		ssize_t w;

		if (!cs->body_none && cs->chunk_left == 0) {
			uint64_t a = body_avail(c, v);

			if (a > 0) {
				/* Open the next chunk (or just a run of bytes). */
				if (cs->chunked) {
					if (buf_reserve(&c->out, 64) < 0)
						return progress;
					buf_compact(&c->out);
					buf_printf(&c->out, "%s%llx\r\n",
					    cs->chunk_open ? "\r\n" : "",
					    (unsigned long long)a);
					cs->chunk_open = true;
				}
				cs->chunk_left = a;
			} else if (body_complete(c, v) && cs->chunked && !cs->done) {
				if (buf_reserve(&c->out, 16) < 0)
					return progress;
				buf_compact(&c->out);
				buf_printf(&c->out, "%s0\r\n\r\n",
				    cs->chunk_open ? "\r\n" : "");
				cs->done = true;
			}
		}
		outlen = buf_len(&c->out);
		if (outlen > 0) {
			iov[0].iov_base = (void *)buf_rptr(&c->out);
			iov[0].iov_len = outlen;
			n = 1;
		}
		if (cs->chunk_left > 0) {
			k = body_iov(c, v, iov + n, SERVE_IOV, &from_cbuf);
			for (int i = 0; i < k; i++)
				body += iov[n + i].iov_len;
			n += k;
		}
		if (n == 0)
			break;
		if (!c->wr_ready)
			return progress;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)n;
		w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				c->wr_ready = false;
				return progress;
			}
			conn_cache_client_gone(c);
			return true;
		}
		progress = true;
		c->bytes_out += (uint64_t)w;
		cache_serve_stat(c, STAT_bytes_to_clients, (uint64_t)w);
		if ((size_t)w <= outlen)
			buf_consume(&c->out, (size_t)w);
		else {
			size_t b = (size_t)w - outlen;

			buf_consume(&c->out, outlen);
			cs->off += b;
			cs->chunk_left -= b;
			if (from_cbuf) {
				buf_consume(&cs->cbuf, b);
				cs->fill_len += b;
			} else
				cache_serve_stat(c, STAT_cache_bytes_out, b);
		}
		if ((size_t)w < outlen + body) {
			c->wr_ready = false;
			return progress;
		}
	}
	*finished = buf_len(&c->out) == 0 && body_complete(c, v) &&
	    (!cs->chunked || cs->done || cs->body_none);
	return progress;
}

/* The origin side of C_FILL: read, decode, append; commit at the end. */
static bool
fill_step(struct conn *c)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	struct upstream *u = c->up;
	struct cache *cache = c->w->cache;
	bool progress = false;

	if (cs->fill_done || u == NULL)
		return false;
	for (int rounds = 0; rounds < 16; rounds++) {
		bool up_eof = false;
		int up_err = 0;
		ssize_t n = 0;

		if (r->rs != RS_DONE && buf_room(&cs->cbuf) > 0) {
			if (buf_room(&u->in) == 0)
				buf_compact(&u->in);
			n = conn_io_read(u->fd, &u->in, &u->rd_ready, u->hup);
			if (n > 0) {
				progress = true;
				cache_serve_stat(c, STAT_bytes_from_origins, (uint64_t)n);
			} else if (n == 0)
				up_eof = true;
			else if (n == -2) {
				up_err = errno;
				up_eof = true;
			}
		}
		if (r->rs != RS_DONE) {
			int mode = (int)r->rs;
			uint64_t moved = 0;
			int e = conn_io_move_body(&u->in, &cs->cbuf, &mode, &r->rs_left,
			    &r->rs_ch, false, &progress, &moved);

			if (e == 1 || (up_eof && r->rs == RS_CLOSE && up_err == 0 &&
			    buf_len(&u->in) == 0))
				r->rs = RS_DONE;
			else if (e < 0 || (up_eof && buf_len(&u->in) == 0)) {
				struct cache_view fv;

				/* Cut or broken: never cached; the client gets
				 * what arrived, then a close. */
				log_info("client %s: origin %s %s; not cached", c->peer_str,
				    r->authority, e < 0 ? "sent a bad chunked body" :
				    "closed mid-body");
				cache_serve_stat(c, STAT_cache_fill_aborted, 1);
				if (!cs->fill_broken) {
					cache_view(cache, &cs->fill, &fv);
					cs->fill_len = fv.len;
					cs->fill_broken = true;
				}
				cache_abort(cache, &cs->fill, CF_ABORTED);
				cs->truncated = true;
				cs->fill_done = true;
				r->close_after = true;
				conn_up_done(c, false);
				return true;
			}
		}
		if (!cs->fill_broken && buf_len(&cs->cbuf) > 0) {
			int e = cache_append(cache, &cs->fill, buf_rptr(&cs->cbuf),
			    buf_len(&cs->cbuf));

			if (e == CACHE_ETOOBIG && !cs->oversize &&
			    cache_oversize(cache, &cs->fill) == 1) {
				/* Followers stream it: keep feeding them, store
				 * nothing (the commit finds it out of the index). */
				cs->oversize = true;
				cache_serve_stat(c, STAT_cache_uncacheable, 1);
				e = cache_append(cache, &cs->fill, buf_rptr(&cs->cbuf),
				    buf_len(&cs->cbuf));
			}
			if (e == 0)
				buf_consume(&cs->cbuf, buf_len(&cs->cbuf));
			else {
				struct cache_view fv;

				/* Too large or no room: the rest streams through
				 * cbuf; followers see an abandoned entry. */
				cache_view(cache, &cs->fill, &fv);
				cs->fill_len = fv.len;
				cs->fill_broken = true;
				cache_abort(cache, &cs->fill, CF_ABORTED);
				cache_serve_stat(c, STAT_cache_fill_aborted, 1);
				cache_serve_stat(c, STAT_cache_uncacheable, 1);
			}
		}
		if (r->rs == RS_DONE) {
			if (!cs->fill_broken && cache_commit(cache, &cs->fill) == 0 &&
			    !cs->oversize) {
				cache_serve_stat(c, STAT_cache_stored, 1);
				mc_tier_stored(c, &cs->fill);
			}
			cs->fill_done = true;
			conn_up_done(c, true);
			return true;
		}
		if (n <= 0 && !up_eof)
			break;
		if (buf_room(&cs->cbuf) == 0)
			break;
	}
	return progress;
}

bool
cache_send_step(struct conn *c)
{
	struct req *r = c->req;
	struct creq *cs = &r->cs;
	struct cache *cache = c->w->cache;
	struct cache_view v;
	bool progress = false, finished = false;

	if (c->state == C_FILL)
		progress = fill_step(c);
	if (c->state != C_FILL && c->state != C_CACHE)
		return true;
	if (cs->client_gone) {
		if (cs->fill_done) {
			c->state = C_CLOSED;
			return true;
		}
		if (cs->fill_broken && !cs->truncated) {
			/* Nobody drains cbuf any more: give the origin up. */
			cs->fill_done = true;
			conn_up_done(c, false);
			c->state = C_CLOSED;
			return true;
		}
		if (progress)	/* the fill moves: others may stream it */
			conn_set_deadline(c, (uint64_t)c->w->conf->timeouts.idle * 1000);
		return progress;
	}
	if (cs->mobj != NULL)
		mc_obj_view(cs->mobj, &v);
	else
		cache_view(cache, &cs->read, &v);
	if (!cs->head_queued) {
		if (c->state == C_CACHE &&
		    (!(v.flags & CF_HEAD) || (v.flags & (CF_VARY | CF_ABORTED | CF_HFP)))) {
			if (v.flags & (CF_ABORTED | CF_PASS | CF_DEAD | CF_HFP)) {
				serve_refetch(c, (v.flags & CF_PASS) != 0);
				return true;
			}
			if (v.flags & CF_VARY) {
				/* The fill we joined turned out to vary: look again
				 * under our own variant key. */
				cache_release(cache, &cs->read);
				free(cs->key);
				cs->key = NULL;
				cs->collapsed = false;
				if (!cache_serve_lookup(c))
					conn_start_upstream(c);
				return true;
			}
			if (!cache_wait(cache, &cs->read, v.len)) {
				wait_add(c);
				return progress;
			}
			return true;
		}
		if (serve_head(c, &v) < 0) {
			if (c->state == C_CACHE) {
				serve_refetch(c, false);
				return true;
			}
			conn_error(c, 502, "The cached response head is too large.");
			return true;
		}
		progress = true;
	}
	progress |= serve_write(c, &v, &finished);
	if (c->state != C_FILL && c->state != C_CACHE)
		return true;
	if (finished) {
		if (c->state == C_FILL && !cs->fill_done)
			return progress;
		conn_cache_finish(c);
		return true;
	}
	if (buf_len(&c->out) == 0 && cs->chunk_left == 0) {
		if (cs->truncated || (c->state == C_CACHE && (v.flags & CF_ABORTED))) {
			/* The fill we stream was cut: so is our response. */
			if (c->state == C_CACHE)
				conn_req_end(c, END_ORIGIN_GONE, r->status, r->hdr, 0);
			c->state = C_CLOSED;
			return true;
		}
		if (c->state == C_CACHE && v.state == CE_FILLING &&
		    !cache_wait(cache, &cs->read, v.len)) {
			wait_add(c);
			if (progress)
				conn_set_deadline(c, (uint64_t)c->w->conf->timeouts.idle * 1000);
			return progress;
		}
		if (c->state == C_CACHE && v.state == CE_FILLING)
			return true;	/* it moved meanwhile: look again */
	}
	if (progress)
		conn_set_deadline(c, (uint64_t)c->w->conf->timeouts.idle * 1000);
	return progress;
}

