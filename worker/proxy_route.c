/*
 * proxy_route.c - where a parsed request may go: the routing policy.
 *
 * Given a request head that parsed, decide from the listener (forward or
 * reverse), the client ACL, the method, the target and the body framing
 * whether it is allowed, and fill in the one parsed authority that is
 * then connected to, sent as Host and logged (HOSTILE 1.3: one parse,
 * used everywhere).  Destinations are checked again on the resolved
 * address (proxy_route_dest), never on the name: that is what defeats
 * numeric host spellings and DNS rebinding.  No state transitions here:
 * conn.c acts on the answer.
 */
#include "config.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/conn_int.h"
#include "lib/url_norm.h"

static bool
method_needs_length(enum http_method m)
{
	return m == M_POST || m == M_PUT || m == M_PATCH;
}

/* The target of a request on a forward listener, or on a reverse one. */
static int
route_target(struct conn *c, const char **detail)
{
	struct req *r = c->req;
	const struct http_msg *m = &r->msg;
	const struct conf_listen *cl = c->l->cl;
	const char *target = r->hdr + m->target_off;
	int e;

	if (r->is_connect) {
		if (cl->mode == LISTEN_REVERSE) {
			*detail = "CONNECT is not allowed on this port.";
			return 405;
		}
		if (http_url_parse_authority(target, m->target_len, &r->url) != URL_OK) {
			*detail = "CONNECT needs a host:port target.";
			return 400;
		}
		if (m->flags & (MF_HAS_CL | MF_HAS_TE)) {
			*detail = "A CONNECT request has no content.";
			return 400;
		}
		for (size_t i = 0; i < c->w->conf->nconnect_ports; i++)
			if (c->w->conf->connect_ports[i] == r->url.port)
				return 0;
		*detail = "CONNECT to this port is not allowed.";
		return 403;
	}
	if (cl->mode == LISTEN_REVERSE) {
		if (target[0] == '/') {
			if (http_url_check_origin_form(target, m->target_len) != URL_OK) {
				*detail = "The request target is malformed.";
				return 400;
			}
			r->origin_form = true;
			/* The filter and the cache key read the path here. */
			r->url.path = target;
			r->url.path_len = m->target_len;
		} else if ((e = http_url_parse_absolute(target, m->target_len, &r->url)) != URL_OK) {
			*detail = http_url_strerror(e);
			return 400;
		}
		/* Every request of a reverse listener goes to its origin. */
		snprintf(r->url.host, sizeof(r->url.host), "%s", cl->origin_host);
		r->url.port = cl->origin_port;
		r->url.host_is_ipv6 = strchr(r->url.host, ':') != NULL;
		return 0;
	}
	if (target[0] == '/' || target[0] == '*') {
		*detail = "This is a proxy: the request needs an absolute URL (http://host/path).";
		return 400;
	}
	if ((e = http_url_parse_absolute(target, m->target_len, &r->url)) != URL_OK) {
		*detail = http_url_strerror(e);
		return 400;
	}
	return 0;
}

/* The Max-Forwards value of a request: -1 when absent, -2 when invalid
 * (not 1*DIGIT, or given twice).  Large values are capped: only the
 * count down matters. */
static int
route_max_forwards(const struct req *r)
{
	int found = -1;

	for (unsigned i = 0; i < r->msg.nfields; i++) {
		const struct http_field *f = &r->fields[i];
		const char *v = r->hdr + f->value_off;
		long n = 0;

		if (f->id != H_MAX_FORWARDS)
			continue;
		if (found != -1 || f->value_len == 0)
			return -2;
		for (uint32_t k = 0; k < f->value_len; k++) {
			if (v[k] < '0' || v[k] > '9')
				return -2;
			if (n < 1000000)
				n = n * 10 + (v[k] - '0');
		}
		found = (int)n;
	}
	return found;
}

static void route_hostport(char *dst, const char *host, bool brackets,
    int port, bool with_port);

/* Check a parsed request and fill in where it goes; see conn_int.h. */
/*
 * One spelling per host from here on: the filter, the cache key, the
 * pool key, the Host sent and the name resolved all use the canonical
 * host (url_norm.h: lower case, no trailing dot, IPv4 in any inet_aton
 * form as a dotted quad, IPv6 compressed), so no spelling can reach an
 * origin the filter did not see (HOSTILE: URL-filter integrity).
 */
static int
route_canon_host(struct req *r, const char **detail)
{
	char h[URL_NORM_HOST_MAX + 3];
	size_t hl = strlen(r->url.host);
	int n;

	n = url_norm_host(r->url.host, hl, h, sizeof(h));
	if (n < 0) {
		*detail = n == URL_NORM_E_IDN ? "The host name is not a valid "
		    "internationalized domain name." : "The host name is not valid.";
		return 400;
	}
	/* An IPv4-mapped IPv6 literal comes back as its dotted quad. */
	r->url.host_is_ipv6 = h[0] == '[';
	if (r->url.host_is_ipv6 && n >= 2) {
		/* http_url keeps IPv6 without brackets. */
		memmove(h, h + 1, (size_t)n - 2);
		n -= 2;
		h[n] = '\0';
	}
	if ((size_t)n != hl || memcmp(h, r->url.host, hl) != 0) {
		if ((size_t)n >= sizeof(r->url.host)) {
			*detail = "The host name is too long.";
			return 400;
		}
		memcpy(r->url.host, h, (size_t)n + 1);
	}
	return 0;
}

/*
 * A path with dot segments ("/a/../b", "/a/%2e%2e/b", "/a//..",
 * "/a/..;/b") is forwarded resolved (RFC 3986 5.2.4; browsers never send
 * one): otherwise the filter would decide on one path and an origin that
 * resolves differently would serve another.  Other paths go as sent.
 */
static int
route_canon_path(struct req *r, const char **detail)
{
	int n;

	if (r->url.path == NULL || !url_norm_path_has_dots(r->url.path, r->url.path_len))
		return 0;
	free(r->path_buf);
	/* A raw byte outside the URI set becomes %XX: 3 times at most. */
	if ((r->path_buf = malloc(3 * r->url.path_len + 4)) == NULL) {
		*detail = "Out of memory.";
		return 503;
	}
	n = url_norm_target(r->url.path, r->url.path_len, r->path_buf,
	    3 * r->url.path_len + 4);
	if (n < 0) {
		*detail = "The request path is not valid.";
		return 400;
	}
	r->url.path = r->path_buf;
	r->url.path_len = (size_t)n;
	return 0;
}

int
proxy_route(struct conn *c, const char **detail)
{
	struct req *r = c->req;
	const struct sluice_conf *cf = c->w->conf;
	const struct http_msg *m = &r->msg;
	int status;

	/* Access control is on the socket peer, never on X-Forwarded-For. */
	if (!c->allowed) {
		*detail = "Your address is not allowed to use this proxy.";
		return 403;
	}
	r->is_connect = m->method == M_CONNECT;
	if ((status = route_target(c, detail)) != 0)
		return status;
	if ((status = route_canon_host(r, detail)) != 0)
		return status;
	if ((status = route_canon_path(r, detail)) != 0)
		return status;
	if (m->method == M_TRACE) {
		*detail = "TRACE is not allowed through this proxy.";
		return 405;
	}
	/* Max-Forwards (RFC 9110 7.6.2): on OPTIONS we must count it down,
	 * and answer ourselves when it reaches us at 0. */
	if (m->method == M_OPTIONS) {
		int mf = route_max_forwards(r);
		if (mf == -2) {
			*detail = "Max-Forwards must be a single decimal number.";
			return 400;
		}
		if (mf == 0)
			return ROUTE_ANSWER_OPTIONS;
		r->max_forwards = mf > 0 ? mf - 1 : -1;
	}
	if (proxy_head_via_loop(c)) {
		*detail = "This request has already passed through this proxy (forwarding loop).";
		return 508;
	}

	/* The request body's framing (RFC 9112 6.3). */
	if (m->body == BODY_CHUNKED) {
		r->rq = RQ_CHUNKED;
		http_chunked_init(&r->rq_ch);
	} else if (m->body == BODY_LENGTH && m->content_length > 0) {
		r->rq = RQ_LENGTH;
		r->rq_left = m->content_length;
		if (cf->limits.request_body && m->content_length > cf->limits.request_body) {
			*detail = "The request body is larger than this proxy allows.";
			return 413;
		}
	} else {
		r->rq = RQ_DONE;
		if (method_needs_length(m->method) && !(m->flags & MF_HAS_CL)) {
			*detail = "This request needs a Content-Length.";
			return 411;
		}
	}

	/* The authority sent as Host, and the key of the upstream pool
	 * (built by hand: this runs for every request). */
	r->port = r->url.port;
	if (c->l->cl->mode == LISTEN_REVERSE && m->host_idx >= 0) {
		const struct http_field *hf = &r->fields[m->host_idx];
		size_t n = hf->value_len < sizeof(r->authority) - 1 ?
		    hf->value_len : sizeof(r->authority) - 1;

		memcpy(r->authority, r->hdr + hf->value_off, n);
		r->authority[n] = '\0';
	} else
		route_hostport(r->authority, r->url.host, r->url.host_is_ipv6,
		    r->port, r->port != 80);
	route_hostport(r->key, r->url.host, false, r->port, true);
	return 0;
}

/* "host" or "[host]", then ":port" when with_port, into dst, which has
 * room for URL_HOST_MAX + 10 bytes (host is at most URL_HOST_MAX). */
static void
route_hostport(char *dst, const char *host, bool brackets, int port,
    bool with_port)
{
	size_t h = strlen(host), n = 0;
	char d[8];
	int k = 0;

	if (brackets)
		dst[n++] = '[';
	memcpy(dst + n, host, h);
	n += h;
	if (brackets)
		dst[n++] = ']';
	if (with_port) {
		unsigned v = (unsigned)port;

		dst[n++] = ':';
		do
			d[k++] = (char)('0' + v % 10);
		while ((v /= 10) != 0 && k < 7);
		while (k > 0)
			dst[n++] = d[--k];
	}
	dst[n] = '\0';
}

/* Is a (16-byte form) an address of this host?  Loopback and the
 * unspecified addresses always are; the rest come from getifaddrs() at
 * worker start. */
static bool
route_is_local(const struct worker *w, const uint8_t a[16])
{
	static const uint8_t lo6[16] = { [15] = 1 };
	static const uint8_t any4[16] = { [10] = 0xff, [11] = 0xff };
	static const uint8_t any6[16] = { 0 };

	if (memcmp(a, any4, 12) == 0 && (a[12] == 127 || a[12] == 0))
		return true;	/* 127.0.0.0/8, 0.0.0.0/8 */
	if (memcmp(a, lo6, 16) == 0 || memcmp(a, any6, 16) == 0)
		return true;
	for (size_t i = 0; i < w->nlocal_addrs; i++)
		if (memcmp(a, w->local_addrs[i], 16) == 0)
			return true;
	return false;
}

/* Is sa one of our own listening sockets (a request to ourselves)? */
static bool
route_is_self(const struct worker *w, const struct sockaddr *sa)
{
	static const uint8_t any4[16] = { [10] = 0xff, [11] = 0xff };
	static const uint8_t any6[16] = { 0 };
	uint8_t a[16], la[16];
	int port = sa->sa_family == AF_INET ?
	    ntohs(((const struct sockaddr_in *)sa)->sin_port) :
	    ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);

	if (netaddr_from_sockaddr(sa, a) < 0)
		return false;
	bool v4 = memcmp(a, any4, 12) == 0;
	for (size_t i = 0; i < w->nlisteners; i++) {
		const struct worker_listener *l = &w->listeners[i];
		if (l->cl->port != port ||
		    netaddr_from_sockaddr((const struct sockaddr *)&l->sa, la) < 0)
			continue;
		if (memcmp(a, la, 16) == 0)
			return true;
		/* A wildcard listener is reached through any address of this
		 * host (of its family: IPv6 listeners are V6ONLY). */
		if (((v4 && memcmp(la, any4, 16) == 0) ||
		    (!v4 && memcmp(la, any6, 16) == 0)) && route_is_local(w, a))
			return true;
	}
	return false;
}

/* May sluice connect to sa?  ROUTE_OK, ROUTE_BLOCKED (in
 * blocked_destinations) or ROUTE_SELF (one of our own listeners). */
int
proxy_route_dest(const struct worker *w, const struct sockaddr *sa)
{
	uint8_t a[16];
	const struct sluice_conf *cf = w->conf;

	if (netaddr_from_sockaddr(sa, a) < 0)
		return ROUTE_BLOCKED;
	if (netaddr_cidr_match_any(cf->blocked_destinations,
	    cf->nblocked_destinations, a))
		return ROUTE_BLOCKED;
	if (route_is_self(w, sa))
		return ROUTE_SELF;
	return ROUTE_OK;
}
