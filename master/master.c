/*
 * master.c - the master process: startup sequence and the main loop.
 *
 * What: takes a validated configuration from main(), opens the error
 * log, locks the pidfile, binds the listeners, maps the stats region,
 * drops privileges, detaches, forks the workers, and then runs a small
 * loop over signal flags (STYLE 5):
 *   SIGCHLD        reap; respawn current-generation workers (backoff)
 *   SIGHUP         reload: new config object, new generation, old QUIT
 *   SIGTERM/INT    fast stop: TERM workers, KILL after 5 s
 *   SIGQUIT        graceful stop: QUIT workers, KILL after shutdown+1 s
 *   SIGUSR1        reopen the error log, forward to the workers
 *
 * Assumes: single-threaded.  The handled signals stay blocked except
 * inside ppoll(), which unblocks them atomically while sleeping, so a
 * signal arriving anywhere in the loop body is seen on the next turn
 * and never lost.  The handlers only set the sig_atomic_t flags below:
 * those flags are the only mutable globals of the master (a handler has
 * no other way to reach the state); everything else lives in the one
 * struct master on master_run()'s stack.
 *
 * Why a reload never half-applies: the new file is parsed into a new
 * object and validated, the non-reloadable directives are compared, the
 * new listeners are bound, and enough worker slots must be free, all
 * before anything changes.  Any failure logs one line and the current
 * generation keeps serving (STYLE 6, HOSTILE F17).  Listeners on a port
 * below 1024 cannot be added by a reload once privileges are dropped;
 * the log says a restart is needed.
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/filter.h"
#include "lib/log.h"
#include "master/master.h"
#include "shm/cache.h"

#define FAST_STOP_S	5	/* TERM, then KILL after this */

static volatile sig_atomic_t sig_hup, sig_term, sig_quit, sig_usr1, sig_chld;

static void
master_sig(int s)
{
	switch (s) {
	case SIGHUP: sig_hup = 1; break;
	case SIGTERM: case SIGINT: sig_term = 1; break;
	case SIGQUIT: sig_quit = 1; break;
	case SIGUSR1: sig_usr1 = 1; break;
	case SIGCHLD: sig_chld = 1; break;
	}
}

static const int master_sigs[] = {
	SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGCHLD,
};

/* Install the handlers with the signals blocked; *waitmask is the mask
 * to sleep with (the same, minus ours). */
static void
master_signals(sigset_t *waitmask)
{
	struct sigaction sa;
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(master_sigs) / sizeof(master_sigs[0]); i++)
		sigaddset(&set, master_sigs[i]);
	sigprocmask(SIG_BLOCK, &set, waitmask);
	for (size_t i = 0; i < sizeof(master_sigs) / sizeof(master_sigs[0]); i++)
		sigdelset(waitmask, master_sigs[i]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = master_sig;
	sa.sa_mask = set;
	sa.sa_flags = SA_NOCLDSTOP;
	for (size_t i = 0; i < sizeof(master_sigs) / sizeof(master_sigs[0]); i++)
		sigaction(master_sigs[i], &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

void
master_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

long
master_ms_until(const struct timespec *now, const struct timespec *t)
{
	long ms = (long)(t->tv_sec - now->tv_sec) * 1000 +
	    (t->tv_nsec - now->tv_nsec) / 1000000;

	return ms > 0 ? ms : 0;
}

void
master_die(struct master *m, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Before detaching, the operator is watching the terminal. */
	if (m->attached)
		fprintf(stderr, "sluice: %s\n", msg);
	if (!(m->attached && m->foreground))
		log_err("%s", msg);
	master_daemon_pidfile_remove(m);
	exit(1);
}

/* A proxy holds two descriptors per client; the usual soft limit of 1024
 * would cap it at a few hundred clients.  Raise the soft limit to the
 * hard one (as root, before the drop, the hard limit is what the admin
 * allowed); workers inherit it. */
static void
master_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_info("open file limit raised from %llu to %llu",
			    (unsigned long long)old, (unsigned long long)rl.rlim_max);
	}
}

static bool
is_log_file(const char *target)
{
	return strcmp(target, "syslog") != 0 && strcmp(target, "stderr") != 0;
}

static struct master_gen *
master_gen_new(struct sluice_conf *c)
{
	struct master_gen *g = calloc(1, sizeof(*g));

	if (g != NULL) {
		g->conf = c;
		g->nworkers = master_spawn_count(c);
	}
	return g;
}

/* SIGHUP: see the file comment. */
static void
master_reload(struct master *m)
{
	struct master_gen *old = m->gens, *g;
	struct sluice_conf *nc;
	char err[1024], diff[512];
	unsigned avail;

	log_notice("reloading configuration");
	if ((nc = conf_load(m->conf_path, err, sizeof(err))) == NULL) {
		log_err("reload failed, keeping the current configuration: %s",
		    err);
		return;
	}
	diff[0] = '\0';
	conf_reload_diff(old->conf, nc, diff, sizeof(diff));
	if (diff[0] != '\0') {
		log_err("reload failed, keeping the current configuration:"
		    " changing %s needs a restart", diff);
		conf_free(nc);
		return;
	}
	if ((g = master_gen_new(nc)) == NULL) {
		log_err("reload failed, keeping the current configuration:"
		    " out of memory");
		conf_free(nc);
		return;
	}
	/* The lists are read again even when the config did not change:
	 * HUP is how admins load new blocklists.  A bad list keeps the old
	 * generation (and its lists) serving. */
	if (filter_compile(nc, &g->filter, err, sizeof(err)) < 0) {
		log_err("reload failed, keeping the current configuration and "
		    "lists: %s", err);
		conf_free(nc);
		free(g);
		return;
	}
	if (g->filter) {
		char sum[512];
		filter_summary(g->filter, sum, sizeof(sum));
		log_notice("URL filter: %s", sum);
	}
	/* Slots the old generation only reserved for a respawn come back. */
	avail = master_spawn_free_slots(m);
	for (unsigned i = 0; i < SHM_STATS_SLOTS; i++)
		avail += m->w[i].gen == old && m->w[i].pid == 0;
	if (avail < g->nworkers) {
		log_err("reload failed, keeping the current configuration:"
		    " %u workers needed, %u worker slots free (older"
		    " generations are still draining)", g->nworkers, avail);
		filter_free(g->filter);
		conf_free(nc);
		free(g);
		return;
	}
	if (master_listen_attach(m, g, err, sizeof(err)) < 0) {
		log_err("reload failed, keeping the current configuration: %s",
		    err);
		filter_free(g->filter);
		conf_free(nc);
		free(g);
		return;
	}
	/* Committed from here on. */
	if (!m->foreground && strcmp(old->conf->error_log, nc->error_log) != 0 &&
	    log_open(nc->error_log, "sluice") < 0)
		log_err("cannot open error log %s: %m; still logging to %s",
		    nc->error_log, old->conf->error_log);
	for (unsigned i = 0; i < SHM_STATS_SLOTS; i++)
		if (m->w[i].gen == old && m->w[i].pid == 0)
			memset(&m->w[i], 0, sizeof(m->w[i]));
	g->id = ++m->last_gen;
	g->next = m->gens;
	m->gens = g;
	cache_set_max_object(m->cache, nc->cache.max_object_size);
	m->cache_persist = nc->cache.persist;
	master_spawn_gen(m, g);
	/* Old workers stop accepting and finish what they have; stragglers
	 * past their own shutdown timeout are killed. */
	master_now(&old->kill_at);
	old->kill_at.tv_sec += old->conf->timeouts.shutdown + 1;
	master_spawn_kill(m, old, SIGQUIT);
	master_spawn_gen_gc(m);
	log_notice("configuration reloaded, generation %u, %u workers", g->id,
	    g->nworkers);
}

/* Kill old-generation workers past their deadline; ms to the next one. */
static long
master_old_gens(struct master *m)
{
	struct timespec now;
	long next = -1;

	if (m->gens == NULL)
		return -1;
	master_now(&now);
	for (struct master_gen *g = m->gens->next; g != NULL; g = g->next) {
		long ms;

		if (g->killed || g->nlive == 0)
			continue;
		if ((ms = master_ms_until(&now, &g->kill_at)) == 0) {
			log_warn("%u workers of generation %u still running"
			    " after the shutdown timeout; killing them",
			    g->nlive, g->id);
			master_spawn_kill(m, g, SIGKILL);
			g->killed = true;
		} else if (next < 0 || ms < next) {
			next = ms;
		}
	}
	return next;
}

static void
master_stop(struct master *m, bool fast)
{
	unsigned s;

	if (fast) {
		if (m->state == MASTER_STOP_FAST)
			return;
		log_notice("shutting down");
		m->state = MASTER_STOP_FAST;
		s = FAST_STOP_S;
	} else {
		if (m->state != MASTER_RUNNING)
			return;		/* a fast stop stays fast */
		log_notice("shutting down gracefully");
		m->state = MASTER_STOP_GRACEFUL;
		s = (unsigned)m->gens->conf->timeouts.shutdown + 1;
	}
	master_now(&m->stop_deadline);
	m->stop_deadline.tv_sec += s;
	master_spawn_kill(m, NULL, fast ? SIGTERM : SIGQUIT);
}

static void
master_reopen(struct master *m)
{
	log_notice("reopening logs");
	if (log_reopen() < 0)
		log_err("cannot reopen the error log: %m; keeping the old file");
	master_spawn_kill(m, NULL, SIGUSR1);
}

/* One turn per wakeup; returns false when the master may exit. */
static bool
master_turn(struct master *m, const sigset_t *waitmask)
{
	struct timespec now, ts;
	long timeout = -1, t;

	if (sig_chld) {
		sig_chld = 0;
		master_spawn_reap(m);
	}
	if (sig_term) {
		sig_term = 0;
		master_stop(m, true);
	}
	if (sig_quit) {
		sig_quit = 0;
		master_stop(m, false);
	}
	if (sig_hup) {
		sig_hup = 0;
		if (m->state == MASTER_RUNNING)
			master_reload(m);
		else
			log_notice("stopping: reload ignored");
	}
	if (sig_usr1) {
		sig_usr1 = 0;
		master_reopen(m);
	}
	if (m->state == MASTER_RUNNING) {
		timeout = master_spawn_due(m);
		t = master_old_gens(m);
		if (t >= 0 && (timeout < 0 || t < timeout))
			timeout = t;
		t = master_spawn_watchdog(m);
		if (t >= 0 && (timeout < 0 || t < timeout))
			timeout = t;
	} else {
		if (master_spawn_live(m) == 0)
			return false;
		master_now(&now);
		timeout = master_ms_until(&now, &m->stop_deadline);
		if (timeout == 0) {
			if (!m->stop_killed) {
				log_warn("%u workers still running; killing them",
				    master_spawn_live(m));
				master_spawn_kill(m, NULL, SIGKILL);
				m->stop_killed = true;
			}
			timeout = -1;	/* SIGCHLD wakes us */
		}
	}
	ts.tv_sec = timeout / 1000;
	ts.tv_nsec = (timeout % 1000) * 1000000;
	if (ppoll(NULL, 0, timeout < 0 ? NULL : &ts, waitmask) < 0 &&
	    errno != EINTR)
		log_err("ppoll: %m");
	return true;
}

static void
master_fini(struct master *m)
{
	while (m->gens != NULL) {
		struct master_gen *g = m->gens;

		m->gens = g->next;
		master_listen_detach(m, g);
		filter_free(g->filter);
		conf_free(g->conf);
		free(g);
	}
	master_listen_fini(m);
	shm_stats_destroy(m->stats);
	/* A kept segment (persist) outlives us; otherwise no /dev/shm leak. */
	cache_close(m->cache, !m->cache_persist);
	m->cache = NULL;
	if (m->death_rd >= 0)
		close(m->death_rd);
	if (m->death_wr >= 0)
		close(m->death_wr);
}

/* Create or re-attach the cache segment, owned by the run user. */
static int
master_cache_open(struct master *m, const struct sluice_conf *conf, char *err,
    size_t errlen)
{
	struct cache_params p;
	char note[256];
	int r;

	if (!conf->cache.enabled) {
		log_info("cache disabled (cache.enabled = false)");
		return 0;
	}
	memset(&p, 0, sizeof(p));
	p.name = conf->cache.shm_name;
	p.size = conf->cache.size;
	p.max_object = conf->cache.max_object_size;
	p.persist = conf->cache.persist;
	p.nslots = SHM_STATS_SLOTS;
	p.uid = p.gid = -1;
	if ((getuid() == 0 || geteuid() == 0) && conf->user != NULL) {
		struct passwd *pw = getpwnam(conf->user);

		if (pw != NULL) {
			p.uid = (int)pw->pw_uid;
			p.gid = (int)pw->pw_gid;
		}
	}
	if ((r = cache_open(&m->cache, &p, note, sizeof(note))) != 0) {
		int e = errno;

		snprintf(err, errlen, "cache: cannot set up shared memory %s (%s, "
		    "%llu bytes): %s%s%s%s", p.name,
		    p.persist ? "kept" : "new", (unsigned long long)p.size,
		    cache_strerror(r), r == CACHE_ESYS ? " (" : "",
		    r == CACHE_ESYS ? strerror(e) : "",
		    r == CACHE_ESYS && e == ENOSPC ?
		    "; /dev/shm is too small for cache.size)" :
		    r == CACHE_ESYS ? ")" : "");
		return -1;
	}
	m->cache_persist = p.persist;
	if (note[0] != '\0')
		log_notice("%s", note);
	log_info("cache: %s, %llu bytes", p.name,
	    (unsigned long long)cache_segment_size(m->cache));
	return 0;
}

int
master_run(const char *conf_path, struct sluice_conf *conf, bool foreground)
{
	struct master mm, *m = &mm;
	struct master_gen *g;
	sigset_t waitmask;
	char err[1024];
	int ready = -1, p[2];

	memset(m, 0, sizeof(*m));
	m->conf_path = conf_path;
	m->foreground = foreground;
	m->attached = true;
	m->pid_fd = m->lock_fd = m->ready_fd = m->death_rd = m->death_wr = -1;

	if (log_open(foreground ? "stderr" : conf->error_log, "sluice") < 0) {
		fprintf(stderr, "sluice: cannot open error log %s: %s\n",
		    conf->error_log, strerror(errno));
		conf_free(conf);
		return 1;
	}
	if ((g = master_gen_new(conf)) == NULL)
		master_die(m, "out of memory");
	g->id = ++m->last_gen;
	m->gens = g;
	if (master_daemon_pidfile_lock(m, conf->pidfile, err, sizeof(err)) < 0)
		master_die(m, "%s", err);
	if (master_listen_attach(m, g, err, sizeof(err)) < 0)
		master_die(m, "%s", err);
	if ((m->stats = shm_stats_create(SHM_STATS_SLOTS)) == NULL)
		master_die(m, "cannot map the stats region: %s", strerror(errno));
	if (master_cache_open(m, conf, err, sizeof(err)) < 0)
		master_die(m, "%s", err);
	master_raise_nofile();
	/* Real or effective root (a setuid binary too): always drop. */
	if (getuid() == 0 || geteuid() == 0) {
		const char *lf = !foreground && is_log_file(conf->error_log) ?
		    conf->error_log : NULL;

		if (master_daemon_drop(conf, lf, err, sizeof(err)) < 0)
			master_die(m, "%s", err);
	} else if (conf->user != NULL) {
		log_notice("not started as root: keeping uid %ld (user \"%s\""
		    " not used)", (long)getuid(), conf->user);
	}
	/* After the drop, so a reload (which runs as the same user) reads
	 * the same lists the start did. */
	if (filter_compile(conf, &g->filter, err, sizeof(err)) < 0)
		master_die(m, "%s", err);
	if (g->filter) {
		char sum[512];
		filter_summary(g->filter, sum, sizeof(sum));
		log_notice("URL filter: %s", sum);
	}
	if (!foreground) {
		ready = master_daemon_detach();
		/* Workers must not inherit the terminal. */
		master_daemon_devnull();
		m->attached = false;
	}
	m->pid = getpid();
	m->ready_fd = ready;
	cache_claim(m->cache);		/* the segment names the running master */
	/* Handlers first: once the pid is in the file, `-s reopen` may come. */
	master_signals(&waitmask);
	if (master_daemon_pidfile_write(m) < 0)
		master_die(m, "cannot write pidfile %s: %s", m->pid_path,
		    strerror(errno));
	if (pipe2(p, O_CLOEXEC) < 0)
		master_die(m, "pipe: %s", strerror(errno));
	m->death_rd = p[0];
	m->death_wr = p[1];
	master_spawn_gen(m, g);
	log_notice("sluice %s started, %u workers, generation %u",
	    PACKAGE_VERSION, g->nworkers, g->id);
	if (ready >= 0)
		master_daemon_ready(ready);
	m->ready_fd = -1;

	while (master_turn(m, &waitmask))
		;
	/* Reap anything left so no zombie outlives us (all are gone). */
	master_spawn_reap(m);
	log_notice("exiting");
	master_daemon_pidfile_remove(m);
	master_fini(m);
	log_close();
	return 0;
}
