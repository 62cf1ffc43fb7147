/*
 * conn_filter.c - the URL filter in the request path.
 *
 * Runs after routing (so the authority is the one sluice will connect
 * to, its host already canonical: proxy_route.c) and before the cache
 * (so a cached object is never served to a client the rules deny).  The
 * URL is reduced with url_norm() and handed to filter_decide(); a
 * denial is answered with the block page and logged with its rule and
 * category.
 *
 * CONNECT: decided on host:port.  When the rules need a name and the
 * target is an IP literal (filter.sni_peek = "auto"), or always
 * ("always"), sluice answers 200 first, reads the client's TLS
 * ClientHello (C_PEEK), decides again on its server name, and only then
 * connects; the hello is then forwarded from c->in like any early
 * tunnel bytes.  A tunnel denied after the 200 ends with a TLS
 * access_denied alert, since no HTTP answer is possible any more.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/filter.h"
#include "conf/filter_page.h"
#include "lib/log.h"
#include "worker/conn.h"
#include "worker/conn_int.h"
#include "worker/ev.h"
#include "worker/tls_sni.h"
#include "lib/url_norm.h"

static void
stat_add(struct conn *c, enum shm_stat_id id, uint64_t n)
{
	if (c->w->stats)
		c->w->stats->c[id] += n;
}

/* Local weekday and minute, computed at most once a second. */
static void
local_time(struct worker *w, int *wday, int *minute)
{
	uint64_t s = ev_wall_ms(w->loop) / 1000;

	if (s != w->lt_at || w->lt_at == 0) {
		time_t t = (time_t)s;
		struct tm tm;

		localtime_r(&t, &tm);
		w->lt_wday = tm.tm_wday;
		w->lt_min = tm.tm_hour * 60 + tm.tm_min;
		w->lt_at = s;
	}
	*wday = w->lt_wday;
	*minute = w->lt_min;
}

static void
fill_common(struct conn *c, struct filter_req *q)
{
	struct req *r = c->req;

	q->method = r->hdr + r->msg.method_off;
	q->method_len = r->msg.method_len;
	q->client = c->peer;
	q->user_agent = proxy_head_field(r, H_USER_AGENT, &q->ua_len);
	local_time(c->w, &q->wday, &q->minute);
}

static void
log_limit(struct conn *c, const struct filter_verdict *v)
{
	stat_add(c, STAT_filter_regex_limits, 1);
	if (v->limit_first)
		log_warn("URL filter: pattern \"%.200s\" hit the PCRE2 match or "
		    "depth limit (rule %s); the request was denied (logged once "
		    "per pattern and worker)", v->limit_pattern ? v->limit_pattern :
		    "?", v->rule_name);
}

/* 403 with the block page; the connection closes after it. */
static void
block(struct conn *c, const struct filter_verdict *v)
{
	struct req *r = c->req;
	const struct sluice_conf *cf = c->w->conf;
	struct buf body = { 0 };
	char when[64], url[2048], reason[160];
	time_t now = (time_t)(ev_wall_ms(c->w->loop) / 1000);
	struct tm tm;
	size_t ul = r->msg.target_len < sizeof(url) - 1 ? r->msg.target_len :
	    sizeof(url) - 1;

	stat_add(c, STAT_filter_denied, 1);
	if (v->reason == FILTER_BY_LIMIT)
		log_limit(c, v);
	r->f_rule = v->rule_name;
	r->f_cat = v->category;
	memcpy(url, r->hdr + r->msg.target_off, ul);
	url[ul] = '\0';
	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", &tm);
	if (v->reason == FILTER_BY_DEFAULT)
		snprintf(reason, sizeof(reason), "no rule allows this request");
	else if (v->reason == FILTER_BY_LIMIT)
		snprintf(reason, sizeof(reason), "a filter pattern could not be "
		    "evaluated in time");
	else if (v->category)
		snprintf(reason, sizeof(reason), "the site is in the category %s",
		    v->category);
	else
		snprintf(reason, sizeof(reason), "rule %s", v->rule_name);
	struct filter_page_vars vars = {
		.url = url, .category = v->category, .rule = v->rule_name,
		.client = c->peer_str, .time = when, .host = cf->visible_hostname,
		.reason = reason,
	};
	if (filter_page_render(filter_block_page(c->w->filter), &vars, &body) < 0 ||
	    buf_reserve(&c->out, buf_len(&body) + 512) < 0 ||
	    buf_printf(&c->out, "HTTP/1.1 403 Forbidden\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nCache-Control: no-store\r\n"
	    "Via: %s\r\nConnection: close\r\n\r\n", buf_len(&body), c->w->via) < 0 ||
	    buf_append(&c->out, buf_rptr(&body), buf_len(&body)) < 0) {
		buf_free(&body);
		conn_req_end(c, END_DENIED, 403, r->hdr, 0);
		c->state = C_CLOSED;
		return;
	}
	buf_free(&body);
	conn_req_end(c, END_DENIED, 403, r->hdr, buf_len(&c->out));
	/* Any request body was not read: never parse it. */
	buf_consume(&c->in, buf_len(&c->in));
	c->state = C_FLUSH;
	c->linger = true;
	conn_set_deadline(c, (uint64_t)c->w->conf->timeouts.idle * 1000);
}

/* Does this tunnel need its TLS server name? */
static bool
want_peek(struct conn *c)
{
	const struct sluice_conf *cf = c->w->conf;
	struct req *r = c->req;
	bool ip;

	if (cf->filter.sni_peek == SNI_PEEK_OFF)
		return false;
	if (cf->filter.sni_peek == SNI_PEEK_ALWAYS)
		return true;
	ip = r->url.host_is_ipv6 ||
	    strspn(r->url.host, "0123456789.") == strlen(r->url.host);
	return ip && filter_needs_name(c->w->filter);
}

bool
conn_filter_request(struct conn *c)
{
	struct worker *w = c->w;
	struct req *r = c->req;
	struct filter_req q;
	struct filter_verdict v;
	char host[URL_NORM_HOST_MAX + 16];	/* "[" host "]:" port */
	int n;

	memset(&q, 0, sizeof(q));
	fill_common(c, &q);
	q.port = r->url.port;
	q.host = r->url.host;
	q.host_len = strlen(r->url.host);
	if (r->is_connect) {
		n = snprintf(host, sizeof(host), "%s%s%s:%d", r->url.host_is_ipv6 ?
		    "[" : "", r->url.host, r->url.host_is_ipv6 ? "]" : "", r->port);
		if (n < 0 || (size_t)n >= sizeof(host)) {
			conn_error(c, 400, "The CONNECT target is too long.");
			return true;
		}
		q.url = host;
		q.url_len = (size_t)n;
		q.connect = true;
	} else {
		/* The canonical URL can be longer than the target (raw bytes
		 * are %-encoded): 3 bytes per byte at most. */
		size_t need = strlen(r->url.host) + 16 + 3 * r->url.path_len;
		if (buf_reserve(&w->fscratch, need) < 0) {
			conn_error(c, 503, "Out of memory.");
			return true;
		}
		n = url_norm(r->url.host, strlen(r->url.host), r->url.port,
		    r->url.path, r->url.path_len, w->fscratch.data, w->fscratch.cap);
		if (n < 0) {
			char msg[200];
			snprintf(msg, sizeof(msg), "The URL cannot be checked by the "
			    "filter: %s.", url_norm_strerror(n));
			conn_error(c, 400, msg);
			return true;
		}
		q.url = w->fscratch.data;
		q.url_len = (size_t)n;
	}
	filter_decide(w->filter, &q, &v);
	if (!v.allow) {
		block(c, &v);
		return true;
	}
	if (r->is_connect && want_peek(c)) {
		static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";

		if (buf_reserve(&c->out, 512) < 0 ||
		    buf_reserve(&c->in, TLS_SNI_MAX_BUFFER) < 0) {
			conn_error(c, 503, "Out of memory.");
			return true;
		}
		buf_append(&c->out, ok, sizeof(ok) - 1);
		r->head_sent = true;
		r->status = 200;
		stat_add(c, STAT_filter_sni_peeks, 1);
		c->state = C_PEEK;
		conn_set_deadline(c, (uint64_t)w->conf->timeouts.client_header * 1000);
		return true;	/* counted after the second decision */
	}
	stat_add(c, STAT_filter_allowed, 1);
	return false;
}

/* The ClientHello gave no usable name: apply filter.sni_default. */
static void
peek_default(struct conn *c, const char *why)
{
	struct req *r = c->req;

	stat_add(c, STAT_filter_sni_default, 1);
	if (c->w->conf->filter.sni_default_allow) {
		stat_add(c, STAT_filter_allowed, 1);
		r->peeked = true;
		conn_start_upstream(c);
		return;
	}
	log_info("client %s: CONNECT %s:%d closed: %s (filter.sni_default "
	    "is deny)", c->peer_str, r->url.host, r->port, why);
	r->f_rule = "sni_default";
	stat_add(c, STAT_filter_denied, 1);
	conn_req_end(c, END_DENIED, 403, r->hdr, 0);
	c->state = C_FLUSH;	/* the 200 may still be on its way */
	c->linger = false;
}

/* C_PEEK: send our 200, read until the ClientHello answers. */
bool
conn_filter_peek_step(struct conn *c)
{
	struct req *r = c->req;
	bool progress = false;
	ssize_t n;

	if (buf_len(&c->out) > 0) {
		n = conn_io_write(c->fd, &c->out, &c->wr_ready);
		if (n > 0) {
			c->bytes_out += (uint64_t)n;
			progress = true;
		} else if (n == -2) {
			conn_req_end(c, END_CLIENT_GONE, 200, r->hdr, 0);
			c->state = C_CLOSED;
			return true;
		}
	}
	if (c->rd_ready && buf_room(&c->in) > 0) {
		n = conn_io_read(c->fd, &c->in, &c->rd_ready, c->hup);
		if (n > 0)
			progress = true;
		else if (n == 0 || n == -2) {
			conn_req_end(c, END_CLIENT_GONE, 200, r->hdr, 0);
			c->state = C_CLOSED;
			return true;
		}
	}
	if (buf_len(&c->in) == 0)
		return progress;

	char name[256];
	enum tls_sni_result res = tls_sni_parse((const unsigned char *)buf_rptr(&c->in),
	    buf_len(&c->in), name, sizeof(name));
	if (res == TLS_SNI_NEED_MORE) {
		if (buf_room(&c->in) == 0) {
			buf_compact(&c->in);
			if (buf_room(&c->in) == 0) {
				peek_default(c, tls_sni_strresult(TLS_SNI_TOO_BIG));
				return true;
			}
		}
		return progress;
	}
	if (res != TLS_SNI_FOUND) {
		peek_default(c, tls_sni_strresult(res));
		return true;
	}

	/* Decide again, on the name the client will talk to. */
	struct filter_req q;
	struct filter_verdict v;
	char url[URL_NORM_HOST_MAX + 16];
	int k = snprintf(url, sizeof(url), "%s:%d", name, r->port);

	memset(&q, 0, sizeof(q));
	fill_common(c, &q);
	q.host = name;
	q.host_len = strlen(name);
	q.port = r->port;
	q.connect = true;
	q.url = url;
	q.url_len = (size_t)k;
	filter_decide(c->w->filter, &q, &v);
	if (!v.allow) {
		unsigned char alert[8];
		size_t an = tls_sni_alert(alert, 49 /* access_denied */);

		if (v.reason == FILTER_BY_LIMIT)
			log_limit(c, &v);
		stat_add(c, STAT_filter_denied, 1);
		r->f_rule = v.rule_name;
		r->f_cat = v.category;
		log_info("client %s: CONNECT %s:%d denied on its TLS server name "
		    "%s by rule %s", c->peer_str, r->url.host, r->port, name,
		    v.rule_name);
		buf_consume(&c->in, buf_len(&c->in));
		buf_append(&c->out, alert, an);
		conn_req_end(c, END_DENIED, 403, r->hdr, an);
		c->state = C_FLUSH;
		c->linger = false;
		return true;
	}
	stat_add(c, STAT_filter_allowed, 1);
	r->peeked = true;
	conn_start_upstream(c);
	return true;
}

void
conn_filter_peek_timeout(struct conn *c)
{
	peek_default(c, "no TLS ClientHello in time");
}
