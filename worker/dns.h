/*
 * dns.h - asynchronous name resolution for a worker (c-ares).
 *
 * Never blocks the loop: c-ares' sockets are watched by the worker's
 * ev_loop and its timeouts run on an ev_timer.  A per-worker cache keeps
 * answers for their TTL (bounded by a cap) and failures for
 * dns.negative_ttl seconds.  IP literals are answered without a query.
 */
#ifndef SLUICE_DNS_H
#define SLUICE_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

struct ev_loop;
struct dns;
struct dns_query;

#define DNS_MAX_ADDRS 8

enum dns_status {
	DNS_OK = 0,
	DNS_NXDOMAIN,		/* the name does not exist / has no address */
	DNS_TIMEOUT,		/* no answer in time */
	DNS_FAIL,		/* SERVFAIL, refused, garbage reply, ... */
	DNS_NOMEM,
};

struct dns_result {
	enum dns_status status;
	size_t naddrs;
	struct sockaddr_storage addrs[DNS_MAX_ADDRS];	/* port is 0 */
	socklen_t addrlens[DNS_MAX_ADDRS];
};

/* Called exactly once per dns_resolve() that returned a query, unless the
 * query was cancelled first.  res is only valid during the call. */
typedef void (*dns_cb)(void *arg, const struct dns_result *res);

/* servers: "ip" or "ip:port" strings, n == 0 means /etc/resolv.conf and
 * /etc/hosts.  Returns NULL and sets *why on failure. */
struct dns *dns_new(struct ev_loop *loop, char *const *servers, size_t n,
    int negative_ttl, const char **why);
void dns_free(struct dns *d);

/* Resolve host (a name or an IP literal without brackets).  When the
 * answer is known (literal, cached) cb runs before dns_resolve returns
 * and NULL is returned; otherwise the returned handle may be passed to
 * dns_cancel() until cb has run. */
struct dns_query *dns_resolve(struct dns *d, const char *host, dns_cb cb, void *arg);
/* The callback of q will not run.  q becomes invalid. */
void dns_cancel(struct dns *d, struct dns_query *q);

const char *dns_strstatus(enum dns_status s);

#endif
