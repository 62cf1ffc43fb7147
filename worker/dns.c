/*
 * dns.c - asynchronous name resolution for one worker, on c-ares.
 *
 * What it does: turns a host name into up to DNS_MAX_ADDRS addresses
 * without blocking the worker's ev_loop.  c-ares' sockets are watched by
 * ev_io watchers (its SOCK_STATE callback tells us which and for what),
 * its retransmissions run from one ev_timer set from ares_timeout().
 *
 * What it assumes: one thread (the worker's); c-ares 1.18 or later for
 * ares_getaddrinfo() with per-address TTLs.  This file is the only one
 * that includes ares.h (STYLE 4).  dns_free() must not be called from a
 * dns callback.
 *
 * Why it is built this way:
 *  - A forward proxy resolves whatever clients ask for, so replies are
 *    hostile input; c-ares parses them (we only copy sockaddrs of the
 *    families we asked for) and the fake server in tests/e2e/fakedns.py
 *    feeds it garbage, delays and failures.
 *  - Cache: a per-worker hash table keyed by the lowercased name keeps
 *    positive answers for min(TTL of the answers, 3600 s) (TTL 0: not
 *    cached) and NXDOMAIN/no-address answers for negative_ttl seconds.
 *    Timeouts and server failures are not cached: they are transient and
 *    caching them would stretch a short outage.  The table holds at most
 *    DNS_CACHE_MAX entries; when full, the oldest insertion is evicted
 *    (expired entries go on lookup).
 *  - Concurrent lookups of one name are coalesced: the first creates a
 *    "pending" lookup that runs the c-ares query, later ones wait on it.
 *    dns_cancel() only unlinks the waiter; the query finishes and still
 *    fills the cache.
 *  - Result order: IPv4 addresses first, then IPv6, each in the order of
 *    the answer (ARES_AI_NOSORT: RFC 6724 sorting would probe routes with
 *    extra sockets and we prefer v4 anyway, as most origins reach it).
 *  - With configured servers only DNS is used ("b"), no hosts file, so
 *    tests are hermetic; without, /etc/hosts then resolv.conf ("fb").
 *    The search list is always empty: a proxy resolves names as given.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "worker/dns.h"
#include "worker/ev.h"

#define DNS_TIMEOUT_MS	1500	/* first try; c-ares doubles it per retry */
#define DNS_TRIES	2	/* worst case ~4.5 s for one server */
#define DNS_TTL_MAX	3600
#define DNS_CACHE_MAX	4096
#define DNS_BUCKETS	1024	/* power of two */
#define DNS_NAME_MAX	253	/* RFC 1035 limit, text form without dot */

/* One c-ares socket watched by the loop. */
struct dns_sock {
	struct ev_io io;
	struct dns *d;
	struct dns_sock *next;
};

union dns_addr {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
};

struct dns_entry {
	struct dns_entry *hnext;		/* bucket chain */
	struct dns_entry *older, *newer;	/* insertion order */
	uint32_t hash;
	uint64_t expires;			/* ev_now() ms */
	enum dns_status status;			/* DNS_OK or DNS_NXDOMAIN */
	size_t naddrs;
	union dns_addr addrs[DNS_MAX_ADDRS];
	char name[];
};

/* A c-ares lookup in flight and the callers waiting for it. */
struct dns_pending {
	struct dns *d;
	struct dns_pending *hnext;
	struct dns_query *waiters;
	uint32_t hash;
	char name[];
};

/* What dns_resolve() hands out: one waiter. */
struct dns_query {
	struct dns_pending *p;
	struct dns_query *prev, *next;
	dns_cb cb;
	void *arg;
};

struct dns {
	struct ev_loop *loop;
	ares_channel ch;
	struct ev_timer timer;
	struct dns_sock *socks;
	int negative_ttl;
	bool destroying;		/* in ares_destroy: no user callbacks */
	/*
	 * Set around ares_getaddrinfo(): if that lookup completes before
	 * it returns, *resolved_sync is set so dns_resolve() returns NULL.
	 * Saved and restored, as a callback may itself call dns_resolve().
	 */
	struct dns_pending *resolving;
	bool *resolved_sync;
	struct dns_pending *pending[DNS_BUCKETS];
	struct dns_entry *cache[DNS_BUCKETS];
	struct dns_entry *oldest, *newest;
	size_t ncache;
};

/* ---- small helpers ------------------------------------------------------ */

/* FNV-1a over the already lowercased name. */
static uint32_t
dns_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static enum dns_status
dns_map_status(int st)
{
	switch (st) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
		return DNS_NXDOMAIN;
	case ARES_ETIMEOUT:
		return DNS_TIMEOUT;
	case ARES_ENOMEM:
		return DNS_NOMEM;
	default:
		return DNS_FAIL;
	}
}

/* Human-readable status for logs. */
const char *
dns_strstatus(enum dns_status s)
{
	switch (s) {
	case DNS_OK:		return "ok";
	case DNS_NXDOMAIN:	return "no such host";
	case DNS_TIMEOUT:	return "DNS timeout";
	case DNS_FAIL:		return "DNS failure";
	case DNS_NOMEM:		return "out of memory";
	}
	return "unknown DNS status";
}

static void
dns_result_add(struct dns_result *res, const struct sockaddr *sa)
{
	size_t i = res->naddrs;
	socklen_t len;

	if (i >= DNS_MAX_ADDRS)
		return;
	if (sa->sa_family == AF_INET)
		len = sizeof(struct sockaddr_in);
	else if (sa->sa_family == AF_INET6)
		len = sizeof(struct sockaddr_in6);
	else
		return;
	memset(&res->addrs[i], 0, sizeof(res->addrs[i]));
	memcpy(&res->addrs[i], sa, len);
	/* The contract says port 0; c-ares would copy a service port. */
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)&res->addrs[i])->sin_port = 0;
	else
		((struct sockaddr_in6 *)&res->addrs[i])->sin6_port = 0;
	res->addrlens[i] = len;
	res->naddrs++;
}

/* ---- the cache ---------------------------------------------------------- */

static void
dns_cache_unlink(struct dns *d, struct dns_entry *e)
{
	struct dns_entry **pp = &d->cache[e->hash & (DNS_BUCKETS - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->older)
		e->older->newer = e->newer;
	else
		d->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		d->newest = e->older;
	d->ncache--;
	free(e);
}

/* The live entry for name, dropping it if expired. */
static struct dns_entry *
dns_cache_find(struct dns *d, const char *name, uint32_t h)
{
	struct dns_entry *e;

	for (e = d->cache[h & (DNS_BUCKETS - 1)]; e != NULL; e = e->hnext) {
		if (e->hash != h || strcmp(e->name, name) != 0)
			continue;
		if (e->expires <= ev_now(d->loop)) {
			dns_cache_unlink(d, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

/* Remember res for ttl seconds; failures to allocate only lose caching. */
static void
dns_cache_put(struct dns *d, const char *name, uint32_t h,
    const struct dns_result *res, unsigned ttl)
{
	size_t len = strlen(name);
	struct dns_entry *e, *old;

	if (ttl == 0)
		return;
	if ((old = dns_cache_find(d, name, h)) != NULL)
		dns_cache_unlink(d, old);
	if (d->ncache >= DNS_CACHE_MAX)
		dns_cache_unlink(d, d->oldest);
	if ((e = calloc(1, sizeof(*e) + len + 1)) == NULL)
		return;
	memcpy(e->name, name, len + 1);
	e->hash = h;
	e->expires = ev_now(d->loop) + (uint64_t)ttl * 1000u;
	e->status = res->status;
	e->naddrs = res->naddrs;
	for (size_t i = 0; i < res->naddrs; i++)
		memcpy(&e->addrs[i], &res->addrs[i], res->addrlens[i]);
	e->hnext = d->cache[h & (DNS_BUCKETS - 1)];
	d->cache[h & (DNS_BUCKETS - 1)] = e;
	e->older = d->newest;
	e->newer = NULL;
	if (d->newest)
		d->newest->newer = e;
	else
		d->oldest = e;
	d->newest = e;
	d->ncache++;
}

static void
dns_cache_result(const struct dns_entry *e, struct dns_result *res)
{
	memset(res, 0, sizeof(*res));
	res->status = e->status;
	for (size_t i = 0; i < e->naddrs; i++)
		dns_result_add(res, &e->addrs[i].sa);
}

/* ---- wiring c-ares into the loop --------------------------------------- */

/* Re-arm the retransmission timer from c-ares' next deadline. */
static void
dns_timer_update(struct dns *d)
{
	struct timeval tvbuf, *tv;

	if (d->destroying)
		return;
	tv = ares_timeout(d->ch, NULL, &tvbuf);
	if (tv == NULL) {
		ev_timer_stop(d->loop, &d->timer);
		return;
	}
	/* Round up so we never wake just before the deadline. */
	ev_timer_start(d->loop, &d->timer,
	    (uint64_t)tv->tv_sec * 1000u + ((uint64_t)tv->tv_usec + 999u) / 1000u);
}

static void
dns_timer_cb(struct ev_loop *loop, struct ev_timer *t)
{
	struct dns *d = t->data;

	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_update(d);
}

/*
 * Readiness on a c-ares socket.  ares_process_fd() may close this very
 * socket (our sock_state callback then frees the watcher), so io is not
 * touched after it.
 */
static void
dns_io_cb(struct ev_loop *loop, struct ev_io *io, uint32_t revents)
{
	struct dns_sock *s = io->data;
	struct dns *d = s->d;
	int fd = io->fd;

	ares_process_fd(d->ch,
	    (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? fd : ARES_SOCKET_BAD,
	    (revents & EPOLLOUT) ? fd : ARES_SOCKET_BAD);
	dns_timer_update(d);
}

/*
 * c-ares tells us what to watch on fd; (0, 0) means it is about to close
 * it.  Level-triggered: c-ares reads one datagram per call, and edge
 * triggering would strand the rest.
 */
static void
dns_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock **pp, *s;
	uint32_t ev = (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u);

	for (pp = &d->socks; (s = *pp) != NULL; pp = &s->next)
		if (s->io.fd == fd)
			break;
	if (ev == 0) {
		if (s != NULL) {
			ev_io_stop(d->loop, &s->io);
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		/*
		 * Out of memory: this socket goes unwatched and its query
		 * ends by timeout through the timer, which still runs.
		 */
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return;
		ev_io_init(&s->io, fd, dns_io_cb, s);
		s->d = d;
		s->next = d->socks;
		d->socks = s;
	}
	if (s->io.events != ev)
		(void)ev_io_set(d->loop, &s->io, ev);
}

/* ---- lookups ------------------------------------------------------------ */

static void
dns_pending_unlink(struct dns *d, struct dns_pending *p)
{
	struct dns_pending **pp = &d->pending[p->hash & (DNS_BUCKETS - 1)];

	while (*pp != NULL && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp == p)
		*pp = p->hnext;
}

/* Build the result from a c-ares answer: v4 first, then v6. */
static unsigned
dns_collect(const struct ares_addrinfo *ai, struct dns_result *res)
{
	const struct ares_addrinfo_node *n;
	const struct ares_addrinfo_cname *c;
	int ttl = DNS_TTL_MAX;
	static const int fams[2] = { AF_INET, AF_INET6 };

	for (int f = 0; f < 2; f++)
		for (n = ai->nodes; n != NULL; n = n->ai_next) {
			if (n->ai_family != fams[f] || n->ai_addr == NULL)
				continue;
			dns_result_add(res, n->ai_addr);
			if (n->ai_ttl < ttl)
				ttl = n->ai_ttl;
		}
	/* A CNAME in the chain may expire before the addresses do. */
	for (c = ai->cnames; c != NULL; c = c->next)
		if (c->ttl < ttl)
			ttl = c->ttl;
	return ttl > 0 ? (unsigned)ttl : 0;
}

/* ares_getaddrinfo() completion: cache, then call every waiter. */
static void
dns_ares_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct dns_pending *p = arg;
	struct dns *d = p->d;
	struct dns_result res;
	struct dns_query *q;
	unsigned ttl = 0;

	dns_pending_unlink(d, p);
	if (d->destroying || status == ARES_EDESTRUCTION) {
		/* Channel going away: free silently, no user callbacks. */
		while ((q = p->waiters) != NULL) {
			p->waiters = q->next;
			free(q);
		}
		if (ai != NULL)
			ares_freeaddrinfo(ai);
		free(p);
		return;
	}
	if (d->resolving == p)
		*d->resolved_sync = true;

	memset(&res, 0, sizeof(res));
	res.status = dns_map_status(status);
	if (status == ARES_SUCCESS && ai != NULL)
		ttl = dns_collect(ai, &res);
	/* No IPv4 address: the A query may have failed transiently (c-ares
	 * reports only the overall status); keep it no longer than a failure. */
	if (res.naddrs > 0 && res.addrs[0].ss_family != AF_INET &&
	    ttl > (unsigned)(d->negative_ttl > 0 ? d->negative_ttl : 0))
		ttl = d->negative_ttl > 0 ? (unsigned)d->negative_ttl : 0;
	if (res.status == DNS_OK && res.naddrs == 0)
		res.status = DNS_NXDOMAIN;	/* answered, but no A/AAAA */
	if (ai != NULL)
		ares_freeaddrinfo(ai);

	if (res.status == DNS_OK)
		dns_cache_put(d, p->name, p->hash, &res, ttl);
	else if (status == ARES_ENOTFOUND && d->negative_ttl > 0)
		dns_cache_put(d, p->name, p->hash, &res, (unsigned)d->negative_ttl);

	/*
	 * Pop one waiter at a time: a callback may cancel another waiter
	 * of this lookup (it is then unlinked) or start a new lookup of the
	 * same name (p is no longer in the table, so that one is fresh).
	 */
	while ((q = p->waiters) != NULL) {
		dns_cb cb = q->cb;
		void *cbarg = q->arg;

		p->waiters = q->next;
		if (p->waiters)
			p->waiters->prev = NULL;
		free(q);
		cb(cbarg, &res);
	}
	free(p);
}

/* Answer an IP literal (without brackets); false if host is not one. */
static bool
dns_literal(const char *host, struct dns_result *res)
{
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;

	memset(res, 0, sizeof(*res));
	memset(&v4, 0, sizeof(v4));
	memset(&v6, 0, sizeof(v6));
	if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
		v4.sin_family = AF_INET;
		dns_result_add(res, (struct sockaddr *)&v4);
		return true;
	}
	if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
		v6.sin6_family = AF_INET6;
		dns_result_add(res, (struct sockaddr *)&v6);
		return true;
	}
	return false;
}

/* Resolve host; see dns.h for when cb runs and what is returned. */
struct dns_query *
dns_resolve(struct dns *d, const char *host, dns_cb cb, void *arg)
{
	struct dns_result res;
	struct dns_pending *p;
	struct dns_query *q;
	struct ares_addrinfo_hints hints;
	char name[DNS_NAME_MAX + 2];
	size_t len = strlen(host);
	uint32_t h;
	struct dns_entry *e;
	struct dns_pending *saved_p;
	bool *saved_flag, done = false;

	if (dns_literal(host, &res)) {
		cb(arg, &res);
		return NULL;
	}
	/* A name that cannot exist is answered without asking anyone. */
	if (len == 0 || len > DNS_NAME_MAX + 1) {
		memset(&res, 0, sizeof(res));
		res.status = DNS_NXDOMAIN;
		cb(arg, &res);
		return NULL;
	}
	for (size_t i = 0; i <= len; i++)
		name[i] = (char)tolower((unsigned char)host[i]);
	h = dns_hash(name);

	if ((e = dns_cache_find(d, name, h)) != NULL) {
		dns_cache_result(e, &res);
		cb(arg, &res);
		return NULL;
	}

	if ((q = calloc(1, sizeof(*q))) == NULL)
		goto nomem;
	q->cb = cb;
	q->arg = arg;

	/* Someone is already asking: wait for the same answer. */
	for (p = d->pending[h & (DNS_BUCKETS - 1)]; p != NULL; p = p->hnext)
		if (p->hash == h && strcmp(p->name, name) == 0)
			break;
	if (p != NULL) {
		q->p = p;
		q->next = p->waiters;
		if (p->waiters)
			p->waiters->prev = q;
		p->waiters = q;
		return q;
	}

	if ((p = calloc(1, sizeof(*p) + len + 1)) == NULL) {
		free(q);
		goto nomem;
	}
	memcpy(p->name, name, len + 1);
	p->hash = h;
	p->d = d;
	p->waiters = q;
	q->p = p;
	p->hnext = d->pending[h & (DNS_BUCKETS - 1)];
	d->pending[h & (DNS_BUCKETS - 1)] = p;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = ARES_AI_NOSORT;
	/* c-ares may complete at once (hosts file, bad name, no memory). */
	saved_p = d->resolving;
	saved_flag = d->resolved_sync;
	d->resolving = p;
	d->resolved_sync = &done;
	ares_getaddrinfo(d->ch, name, NULL, &hints, dns_ares_cb, p);
	d->resolving = saved_p;
	d->resolved_sync = saved_flag;
	dns_timer_update(d);
	if (done)
		return NULL;	/* cb already ran, q and p are gone */
	return q;

nomem:
	memset(&res, 0, sizeof(res));
	res.status = DNS_NOMEM;
	cb(arg, &res);
	return NULL;
}

/* Forget the waiter q; its callback will not run. */
void
dns_cancel(struct dns *d, struct dns_query *q)
{
	struct dns_pending *p;

	(void)d;
	if (q == NULL)
		return;
	p = q->p;
	if (q->prev)
		q->prev->next = q->next;
	else
		p->waiters = q->next;
	if (q->next)
		q->next->prev = q->prev;
	free(q);
}

/* ---- setup and teardown ------------------------------------------------- */

/* Join "a","b" into "a,b" for ares_set_servers_ports_csv(). */
static char *
dns_join(char *const *servers, size_t n)
{
	size_t len = 1;
	char *s, *p;

	for (size_t i = 0; i < n; i++)
		len += strlen(servers[i]) + 1;
	if ((s = malloc(len)) == NULL)
		return NULL;
	p = s;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(servers[i]);
		if (i > 0)
			*p++ = ',';
		memcpy(p, servers[i], l);
		p += l;
	}
	*p = '\0';
	return s;
}

/* Create a resolver on loop; NULL and *why on failure. */
struct dns *
dns_new(struct ev_loop *loop, char *const *servers, size_t n,
    int negative_ttl, const char **why)
{
	struct ares_options opts;
	struct dns *d;
	int st, mask;
	char *csv;

	if ((st = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		*why = ares_strerror(st);
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		ares_library_cleanup();
		*why = "out of memory";
		return NULL;
	}
	d->loop = loop;
	d->negative_ttl = negative_ttl;
	ev_timer_init(&d->timer, dns_timer_cb, d);

	memset(&opts, 0, sizeof(opts));
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS;
	opts.sock_state_cb = dns_sock_state_cb;
	opts.sock_state_cb_data = d;
	opts.timeout = DNS_TIMEOUT_MS;
	opts.tries = DNS_TRIES;
	opts.lookups = n > 0 ? (char *)"b" : (char *)"fb";
	opts.domains = NULL;
	opts.ndomains = 0;
	if ((st = ares_init_options(&d->ch, &opts, mask)) != ARES_SUCCESS) {
		*why = ares_strerror(st);
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	if (n > 0) {
		if ((csv = dns_join(servers, n)) == NULL) {
			*why = "out of memory";
			goto fail;
		}
		st = ares_set_servers_ports_csv(d->ch, csv);
		free(csv);
		if (st != ARES_SUCCESS) {
			*why = st == ARES_EBADSTR ?
			    "bad DNS server address (want ip, ip:port or [ipv6]:port)" :
			    ares_strerror(st);
			goto fail;
		}
	}
	return d;
fail:
	ares_destroy(d->ch);
	free(d);
	ares_library_cleanup();
	return NULL;
}

/* Destroy the resolver: outstanding callbacks never run. */
void
dns_free(struct dns *d)
{
	struct dns_sock *s;

	if (d == NULL)
		return;
	d->destroying = true;
	ares_destroy(d->ch);	/* closes sockets, ends lookups silently */
	while ((s = d->socks) != NULL) {
		ev_io_stop(d->loop, &s->io);
		d->socks = s->next;
		free(s);
	}
	ev_timer_stop(d->loop, &d->timer);
	while (d->oldest != NULL)
		dns_cache_unlink(d, d->oldest);
	free(d);
	ares_library_cleanup();
}
