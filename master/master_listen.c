/*
 * master_listen.c - the master's listening sockets.
 *
 * What: binds every `listen` entry of a configuration generation and
 * keeps a table of bound sockets shared between generations.  A reload
 * reuses the socket of an unchanged address:port (matched on the parsed
 * address, so "::0" and "::" are the same), binds new ones, and closes a
 * socket only when no generation still running workers names it.  The
 * admin (stats) listener is one more entry of the same table.
 *
 * Assumes: called in the master only, before and after the privilege
 * drop.  After the drop a port below 1024 cannot be bound any more: a
 * reload that adds such a listener fails with a message that says so,
 * and the old configuration keeps serving (a restart is needed).
 *
 * Why this way: reusing the fd means no window where the port is
 * closed during a reload (no refused connections), and old workers keep
 * draining on sockets the new generation still accepts on.  Workers
 * inherit the fds across fork(); they wait on them with EPOLLEXCLUSIVE,
 * so the sockets are nonblocking.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "master/master.h"

#define LISTEN_BACKLOG 4096	/* the kernel caps it at somaxconn */

/* Parse address:port into ss; 0, or -1 when the address is no literal. */
static int
listen_addr(const char *addr, int port, struct sockaddr_storage *ss,
    socklen_t *len, char *name, size_t namelen)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':') == NULL) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		snprintf(name, namelen, "%s:%d", addr, port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		snprintf(name, namelen, "[%s]:%d", addr, port);
	}
	return 0;
}

static int
listen_bind(struct master_listener *l, char *err, size_t errlen)
{
	int fd, on = 1;
	int fam = l->ss.ss_family;

	fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
		goto fail;
	/* "::" must not also take the IPv4 port: "0.0.0.0" may be listed too. */
	if (fam == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&l->ss, l->sslen) < 0)
		goto fail;
	if (listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	l->fd = fd;
	return 0;
fail:
	{
		int e = errno;
		const char *hint = "";

		if (fd >= 0)
			close(fd);
		if (e == EACCES && geteuid() != 0)
			hint = " (privileges are dropped: a new listener on a"
			    " port below 1024 needs a restart)";
		snprintf(err, errlen, "cannot listen on %s: %s%s", l->name,
		    strerror(e), hint);
		errno = e;
		return -1;
	}
}

/* Index of a live listener bound to ss, or -1. */
static long
listen_find(const struct master *m, const struct sockaddr_storage *ss,
    socklen_t len)
{
	for (size_t i = 0; i < m->nlst; i++)
		if (m->lst[i].refs > 0 && m->lst[i].sslen == len &&
		    memcmp(&m->lst[i].ss, ss, len) == 0)
			return (long)i;
	return -1;
}

/* A free table entry (refs == 0), growing the table if needed. */
static long
listen_new(struct master *m)
{
	struct master_listener *n;

	for (size_t i = 0; i < m->nlst; i++)
		if (m->lst[i].refs == 0)
			return (long)i;
	n = realloc(m->lst, (m->nlst + 1) * sizeof(*n));
	if (n == NULL)
		return -1;
	m->lst = n;
	memset(&m->lst[m->nlst], 0, sizeof(*n));
	m->lst[m->nlst].fd = -1;
	return (long)m->nlst++;
}

static void
listen_unref(struct master *m, size_t i)
{
	struct master_listener *l = &m->lst[i];

	if (l->refs == 0 || --l->refs > 0)
		return;
	log_debug("closing listener %s", l->name);
	close(l->fd);
	l->fd = -1;
}

/* Is ss 0.0.0.0 or ::? */
static bool
listen_wildcard(const struct sockaddr_storage *ss)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
		    htonl(INADDR_ANY);
	return memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, &any6,
	    sizeof(any6)) == 0;
}

/* The admin (stats) listener of g, after its proxy listeners: a socket
 * of the same table, so a reload that keeps the address keeps the fd.
 * It must name one address (the counters are for the operator, not for
 * every interface) and must not be one of g's proxy listeners. */
static int
listen_admin(struct master *m, struct master_gen *g, char *err,
    size_t errlen)
{
	const struct sluice_conf *c = g->conf;
	struct sockaddr_storage ss;
	socklen_t len;
	char name[64];
	long k;

	if (listen_addr(c->admin.address, c->admin.port, &ss, &len, name,
	    sizeof(name)) < 0) {
		snprintf(err, errlen, "cannot listen on %s:%d (admin): not an"
		    " IP address", c->admin.address, c->admin.port);
		return -1;
	}
	if (listen_wildcard(&ss)) {
		snprintf(err, errlen, "admin listener %s: a wildcard address"
		    " would serve the stats on every interface; name one"
		    " address, normally 127.0.0.1", name);
		return -1;
	}
	for (size_t i = 0; i < c->nlisten; i++) {
		const struct master_listener *l = &m->lst[g->lidx[i]];

		if (l->sslen == len && memcmp(&l->ss, &ss, len) == 0) {
			snprintf(err, errlen, "admin listener %s is also a"
			    " proxy listener", name);
			return -1;
		}
	}
	if ((k = listen_find(m, &ss, len)) < 0) {
		if ((k = listen_new(m)) < 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		m->lst[k].ss = ss;
		m->lst[k].sslen = len;
		snprintf(m->lst[k].name, sizeof(m->lst[k].name), "%s", name);
		if (listen_bind(&m->lst[k], err, errlen) < 0)
			return -1;
		log_info("listening on %s (admin)", name);
	}
	m->lst[k].refs++;
	g->admin_lidx = k;
	g->admin_fd = m->lst[k].fd;
	return 0;
}

int
master_listen_attach(struct master *m, struct master_gen *g, char *err,
    size_t errlen)
{
	const struct sluice_conf *c = g->conf;
	size_t i = 0;

	g->admin_fd = -1;
	g->admin_lidx = -1;
	g->fds = calloc(c->nlisten ? c->nlisten : 1, sizeof(*g->fds));
	g->lidx = calloc(c->nlisten ? c->nlisten : 1, sizeof(*g->lidx));
	if (g->fds == NULL || g->lidx == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; i < c->nlisten; i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		char name[64];
		long k;

		if (listen_addr(c->listen[i].address, c->listen[i].port, &ss,
		    &len, name, sizeof(name)) < 0) {
			snprintf(err, errlen, "cannot listen on %s:%d: not an"
			    " IP address", c->listen[i].address,
			    c->listen[i].port);
			goto fail;
		}
		if ((k = listen_find(m, &ss, len)) < 0) {
			if ((k = listen_new(m)) < 0) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			m->lst[k].ss = ss;
			m->lst[k].sslen = len;
			snprintf(m->lst[k].name, sizeof(m->lst[k].name), "%s",
			    name);
			if (listen_bind(&m->lst[k], err, errlen) < 0)
				goto fail;
			log_info("listening on %s", name);
		}
		m->lst[k].refs++;
		g->lidx[i] = (size_t)k;
		g->fds[i] = m->lst[k].fd;
	}
	/* Last, so that on failure only the proxy references are undone. */
	if (c->admin.address != NULL && listen_admin(m, g, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	/* Undo the references taken so far: new sockets close again. */
	while (i-- > 0)
		listen_unref(m, g->lidx[i]);
	free(g->fds);
	free(g->lidx);
	g->fds = NULL;
	g->lidx = NULL;
	return -1;
}

void
master_listen_detach(struct master *m, struct master_gen *g)
{
	if (g->lidx != NULL) {
		for (size_t i = 0; i < g->conf->nlisten; i++)
			listen_unref(m, g->lidx[i]);
		/* lidx set: attach succeeded, so admin_lidx is meaningful. */
		if (g->admin_lidx >= 0)
			listen_unref(m, (size_t)g->admin_lidx);
	}
	g->admin_fd = -1;
	g->admin_lidx = -1;
	free(g->fds);
	free(g->lidx);
	g->fds = NULL;
	g->lidx = NULL;
}

void
master_listen_close_others(struct master *m, const struct master_gen *g)
{
	for (size_t k = 0; k < m->nlst; k++) {
		bool used = g->admin_lidx == (long)k;

		if (m->lst[k].refs == 0)
			continue;
		for (size_t i = 0; i < g->conf->nlisten && !used; i++)
			used = g->lidx[i] == k;
		if (!used)
			close(m->lst[k].fd);
	}
}

void
master_listen_fini(struct master *m)
{
	for (size_t k = 0; k < m->nlst; k++)
		if (m->lst[k].refs > 0)
			close(m->lst[k].fd);
	free(m->lst);
	m->lst = NULL;
	m->nlst = 0;
}
