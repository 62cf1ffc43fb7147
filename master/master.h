/*
 * master.h - the master process: its one state struct and the functions
 * its files share (master.c loop, master_listen.c sockets,
 * master_daemon.c pidfile/daemon/privileges, master_spawn.c workers).
 *
 * The master owns everything that outlives a worker: the listening
 * sockets, the stats mapping, the configuration generations and the
 * table of worker processes.  It never touches a client connection.
 * Nothing here runs in a worker except the few lines between fork()
 * and worker_run() in master_spawn.c.
 */
#ifndef SLUICE_MASTER_H
#define SLUICE_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "conf/conf.h"
#include "shm/shm_stats.h"

/* One bound listening socket, shared by every generation naming it. */
struct master_listener {
	struct sockaddr_storage ss;	/* identity: address + port */
	socklen_t sslen;
	char name[64];			/* "ADDR:PORT" for log lines */
	int fd;
	unsigned refs;			/* generations using it; 0 = closed */
};

/* One configuration and the workers started with it. */
struct master_gen {
	unsigned id;			/* 1, 2, ... bumped per reload */
	struct sluice_conf *conf;
	struct filter *filter;		/* compiled from conf; NULL: no rules */
	int *fds;			/* conf->nlisten fds, as worker_args wants */
	size_t *lidx;			/* listener table index per conf->listen[i] */
	int admin_fd;			/* the admin listener, -1 when none */
	long admin_lidx;		/* its listener table index, -1 when none */
	unsigned nworkers;		/* how many this generation runs */
	unsigned nlive;			/* its processes not yet reaped */
	struct timespec kill_at;	/* replaced: SIGKILL stragglers after this */
	bool killed;
	struct master_gen *next;	/* older generations */
};

/* One stats slot and the worker that owns it. */
struct master_worker {
	pid_t pid;			/* 0: no process (free or waiting to respawn) */
	struct master_gen *gen;		/* NULL: slot free */
	struct timespec started;	/* CLOCK_MONOTONIC, for the backoff */
	struct timespec respawn_at;	/* pid == 0 && gen: when to fork again */
	unsigned backoff;		/* seconds of the next respawn delay */
	bool hung;			/* killed by the watchdog */
};

enum master_state { MASTER_RUNNING, MASTER_STOP_FAST, MASTER_STOP_GRACEFUL };

struct master {
	const char *conf_path;
	bool foreground;		/* -d */
	bool attached;			/* stderr still reaches the terminal */
	pid_t pid;
	enum master_state state;
	struct timespec stop_deadline;
	bool stop_killed;		/* SIGKILL already sent */

	struct master_gen *gens;	/* newest (current) first */
	unsigned last_gen;

	struct master_listener *lst;
	size_t nlst;

	struct master_worker w[SHM_STATS_SLOTS];
	struct stats_sh *stats;
	struct cache *cache;		/* the shm cache, NULL when off */
	bool cache_persist;		/* keep the segment at exit */

	int pid_fd;			/* pidfile, writable, master only; -1 when none */
	int lock_fd;			/* read-only, flock'ed, inherited by workers */
	int ready_fd;			/* daemon start-up pipe until "started" is sent */
	char *pid_path;
	int death_rd, death_wr;		/* workers see EOF on death_rd when we die */
};

/* master.c: run the daemon with the loaded config; returns the exit code. */
int master_run(const char *conf_path, struct sluice_conf *conf, bool foreground);
/* Startup error: to the log and, while attached, to stderr; exit(1). */
void master_die(struct master *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* master_listen.c */
/* Bind (or reuse) every listener of g->conf and fill g->fds, and the
 * admin listener into g->admin_fd; 0 or -1 with a one-line reason in err. */
int master_listen_attach(struct master *m, struct master_gen *g,
    char *err, size_t errlen);
/* Drop g's references; listeners nobody uses any more are closed. */
void master_listen_detach(struct master *m, struct master_gen *g);
/* In a new worker: close the listeners g does not use. */
void master_listen_close_others(struct master *m, const struct master_gen *g);
void master_listen_fini(struct master *m);

/* master_daemon.c */
/* Open and lock the pidfile; 0, or -1 with the reason in err. */
int master_daemon_pidfile_lock(struct master *m, const char *path,
    char *err, size_t errlen);
int master_daemon_pidfile_write(struct master *m);
void master_daemon_pidfile_remove(struct master *m);
/* fork/setsid/fork; returns the fd to report readiness on. */
int master_daemon_detach(void);
/* Tell the waiting parent that startup is complete (closes fd). */
void master_daemon_ready(int fd);
/* stdin/out/err to /dev/null. */
void master_daemon_devnull(void);
/* Drop root to conf user/group; 0, or -1 with the reason in err.
 * logfile (may be NULL): an error log file handed to the new user so
 * that a reopen after rotation still works. */
int master_daemon_drop(const struct sluice_conf *c, const char *logfile,
    char *err, size_t errlen);
/* -s: signal the running instance named by the pidfile; exit code. */
int master_daemon_signal(const char *pidfile, const char *signame);

/* master_spawn.c */
/* Start g's workers in free slots; -1 when there are too few slots. */
int master_spawn_gen(struct master *m, struct master_gen *g);
/* waitpid() every exited worker, log it, schedule respawns. */
void master_spawn_reap(struct master *m);
/* Respawn due workers of the current generation; returns the ms until
 * the next one is due, or -1 when none is pending. */
long master_spawn_due(struct master *m);
/* Send sig to the workers of g (NULL: of every generation). */
void master_spawn_kill(struct master *m, const struct master_gen *g, int sig);
/* Kill workers whose loop stopped turning (a hang, perhaps holding a
 * cache lock: HOSTILE F2); ms until the next check, -1 when none. */
long master_spawn_watchdog(struct master *m);
unsigned master_spawn_live(const struct master *m);
unsigned master_spawn_free_slots(const struct master *m);
/* How many workers a config asks for (0: one per CPU). */
unsigned master_spawn_count(const struct sluice_conf *c);
/* Free a generation that is not current and has no live worker. */
void master_spawn_gen_gc(struct master *m);

/* master.c: monotonic time helpers shared by the loop and the spawner. */
void master_now(struct timespec *ts);
long master_ms_until(const struct timespec *now, const struct timespec *t);

/* filter_test.c: sluice -T URL [-c CLIENT] [-m METHOD]; the exit status. */
int filter_test_main(const struct sluice_conf *c, const char *url,
    const char *client, const char *method);

#endif
