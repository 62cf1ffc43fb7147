/*
 * worker.h - what the master hands a worker across fork() (STYLE 2).
 *
 * The worker gets exactly this struct: the validated config, the
 * listening sockets (index i belongs to conf->listen[i]), its slot and
 * generation.  Nothing else crosses fork.
 *
 * Signals a worker honours (the master sends them):
 *   SIGTERM, SIGINT  fast stop: close everything, exit now.
 *   SIGQUIT          graceful stop: stop accepting, finish in-flight
 *                    requests; a keep-alive connection gets one second
 *                    for a request already on its way (answered with
 *                    Connection: close) and is closed after it; exit
 *                    when none are left or after conf->timeouts.shutdown
 *                    seconds.
 *   SIGUSR1          reopen the access log and a file error log.
 * A worker also exits (gracefully) when the master dies: it watches the
 * read end of a pipe whose write end only the master holds.
 */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <stddef.h>
#include "conf/conf.h"

struct stats_sh;
struct cache;
struct filter;

struct worker_args {
	const struct sluice_conf *conf;
	const int *listen_fds;		/* conf->nlisten entries */
	unsigned slot;			/* 0 .. workers-1 */
	unsigned generation;		/* bumped on every successful reload */
	int master_fd;			/* read end: EOF means the master died */
	struct stats_sh *stats;		/* shared counters; this worker writes slot `slot` */
	struct cache *cache;		/* the shared cache (mapped); NULL when off */
	int admin_fd;			/* admin (stats) listener, -1 when none */
	struct filter *filter;		/* compiled URL filter; NULL: none */
};

/* Run one worker; never returns (exit status 0 on a clean stop). */
void worker_run(const struct worker_args *a) __attribute__((noreturn));

#endif
