/*
 * master_spawn.c - forking, reaping and respawning workers.
 *
 * What: the table m->w[] has one row per stats slot.  A row is free
 * (gen == NULL), running (pid > 0), or reserved for a respawn of the
 * current generation (pid == 0, respawn_at set).  Keeping the slot
 * across a respawn means the new worker continues its predecessor's
 * counters.  Workers of an older generation are never respawned; their
 * slot is freed when they are reaped, and a generation with no worker
 * left is freed (its config and its listener references).
 *
 * Backoff (HOSTILE F3, crash loops): a worker that dies within 1 s of
 * its start is respawned after 1, 2, 4 ... 30 s; one that ran 10 s or
 * more resets its slot's delay.  A poison request thus cannot turn the
 * master into a fork bomb.
 *
 * The child side: between fork() and worker_run() the child arms
 * PR_SET_PDEATHSIG, checks that its parent is still the master (it may
 * have died before the prctl), restores default signal handling (the
 * worker installs its own), drops the master's end of the death pipe
 * and the listeners of other generations, and hands over the one
 * struct worker_args (STYLE 2).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf/filter.h"
#include "lib/log.h"
#include "master/master.h"
#include "shm/cache.h"
#include "worker/worker.h"

#define BACKOFF_FAST_MS		1000	/* died sooner: a crash loop */
#define BACKOFF_RESET_MS	10000	/* ran longer: healthy again */
#define BACKOFF_MAX_S		30

static void
ts_add_s(struct timespec *t, const struct timespec *from, unsigned s)
{
	*t = *from;
	t->tv_sec += s;
}

unsigned
master_spawn_count(const struct sluice_conf *c)
{
	long n = c->workers;

	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > 256)
		n = 256;
	return (unsigned)n;
}

static void __attribute__((noreturn))
spawn_child(struct master *m, unsigned slot)
{
	struct master_gen *g = m->w[slot].gen;
	struct worker_args a;
	sigset_t wset;
	int fl;

	/* The master dying must stop us even if the pipe EOF is missed. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != m->pid)
		_exit(1);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);	/* EINVAL for libc's own: fine */
	close(m->death_wr);
	if ((fl = fcntl(m->death_rd, F_GETFD)) >= 0)
		fcntl(m->death_rd, F_SETFD, fl & ~FD_CLOEXEC);
	master_listen_close_others(m, g);
	/* Workers keep only the read-only lock on the pidfile: never the
	 * writable descriptor, nor the daemon's start-up pipe. */
	if (m->pid_fd >= 0)
		close(m->pid_fd);
	if (m->ready_fd >= 0)
		close(m->ready_fd);
	memset(&a, 0, sizeof(a));
	a.conf = g->conf;
	a.listen_fds = g->fds;
	a.slot = slot;
	a.generation = g->id;
	a.master_fd = m->death_rd;
	a.stats = m->stats;
	a.cache = m->cache;
	a.filter = g->filter;
	a.admin_fd = g->admin_fd;
	/* Keep the signals the worker reads from its signalfd blocked across
	 * the hand-over, so one that arrives before worker_run() has set up
	 * its loop is queued, not acted on with the default disposition. */
	sigemptyset(&wset);
	sigaddset(&wset, SIGTERM);
	sigaddset(&wset, SIGINT);
	sigaddset(&wset, SIGQUIT);
	sigaddset(&wset, SIGUSR1);
	sigaddset(&wset, SIGHUP);
	sigprocmask(SIG_SETMASK, &wset, NULL);
	worker_run(&a);
}

/* Fork the worker of one reserved slot; on failure schedule a retry. */
static int
spawn_one(struct master *m, unsigned slot)
{
	struct master_worker *w = &m->w[slot];
	struct stats_slot_sh *sl;
	struct timespec now;
	pid_t pid;

	master_now(&now);
	/* An empty reference table before the child can use it. */
	cache_slot_start(m->cache, slot, (int)getpid());
	if ((pid = fork()) < 0) {
		w->backoff = w->backoff ? w->backoff * 2 : 1;
		if (w->backoff > BACKOFF_MAX_S)
			w->backoff = BACKOFF_MAX_S;
		ts_add_s(&w->respawn_at, &now, w->backoff);
		log_err("cannot fork a worker (slot %u): %m; retrying in %u s",
		    slot, w->backoff);
		return -1;
	}
	if (pid == 0)
		spawn_child(m, slot);
	w->pid = pid;
	w->hung = false;
	w->started = now;
	w->gen->nlive++;
	if ((sl = shm_stats_slot(m->stats, slot)) != NULL) {
		__atomic_store_n(&sl->active_connections, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&sl->mc_servers, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&sl->mc_servers_up, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&sl->pid, (int32_t)pid, __ATOMIC_RELAXED);
	}
	log_debug("worker %ld started (generation %u, slot %u)", (long)pid,
	    w->gen->id, slot);
	return 0;
}

unsigned
master_spawn_free_slots(const struct master *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < SHM_STATS_SLOTS; i++)
		n += m->w[i].gen == NULL;
	return n;
}

unsigned
master_spawn_live(const struct master *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < SHM_STATS_SLOTS; i++)
		n += m->w[i].pid > 0;
	return n;
}

int
master_spawn_gen(struct master *m, struct master_gen *g)
{
	unsigned left = g->nworkers;

	if (master_spawn_free_slots(m) < g->nworkers)
		return -1;
	for (unsigned i = 0; i < SHM_STATS_SLOTS && left > 0; i++) {
		struct master_worker *w = &m->w[i];

		if (w->gen != NULL)
			continue;
		memset(w, 0, sizeof(*w));
		w->gen = g;
		left--;
		/* A failed fork leaves the slot reserved; master_spawn_due()
		 * retries it. */
		spawn_one(m, i);
	}
	return 0;
}

long
master_spawn_due(struct master *m)
{
	struct timespec now;
	long next = -1;

	if (m->state != MASTER_RUNNING || m->gens == NULL)
		return -1;
	master_now(&now);
	for (unsigned i = 0; i < SHM_STATS_SLOTS; i++) {
		struct master_worker *w = &m->w[i];
		long ms;

		if (w->gen != m->gens || w->pid != 0)
			continue;
		if ((ms = master_ms_until(&now, &w->respawn_at)) == 0 &&
		    spawn_one(m, i) == 0)
			continue;
		ms = master_ms_until(&now, &w->respawn_at);
		if (next < 0 || ms < next)
			next = ms;
	}
	return next;
}

void
master_spawn_kill(struct master *m, const struct master_gen *g, int sig)
{
	for (unsigned i = 0; i < SHM_STATS_SLOTS; i++)
		if (m->w[i].pid > 0 && (g == NULL || m->w[i].gen == g))
			kill(m->w[i].pid, sig);
}

/* "exited with status N" / "killed by signal S (core dumped)" */
static void
spawn_describe(int st, char *out, size_t len)
{
	if (WIFEXITED(st))
		snprintf(out, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(out, len, "killed by signal %d%s", WTERMSIG(st),
		    WCOREDUMP(st) ? " (core dumped)" : "");
	else
		snprintf(out, len, "ended with wait status %#x", st);
}

/* The slot's next respawn delay, from how long its worker ran. */
static unsigned
spawn_backoff(struct master_worker *w, long ran_ms)
{
	if (ran_ms >= BACKOFF_RESET_MS)
		w->backoff = 0;
	if (ran_ms >= BACKOFF_FAST_MS)
		return 0;
	w->backoff = w->backoff ? w->backoff * 2 : 1;
	if (w->backoff > BACKOFF_MAX_S)
		w->backoff = BACKOFF_MAX_S;
	return w->backoff;
}

void
master_spawn_reap(struct master *m)
{
	struct timespec now;
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct master_worker *w = NULL;
		struct stats_slot_sh *sl;
		unsigned slot;
		char how[64];
		long ran;

		for (slot = 0; slot < SHM_STATS_SLOTS; slot++)
			if (m->w[slot].pid == pid) {
				w = &m->w[slot];
				break;
			}
		if (w == NULL)
			continue;	/* not a worker of ours */
		master_now(&now);
		ran = master_ms_until(&w->started, &now);
		spawn_describe(st, how, sizeof(how));
		w->pid = 0;
		w->gen->nlive--;
		/* What it held in the cache is released; its fills abandoned. */
		if (m->cache != NULL) {
			unsigned n = cache_slot_reap(m->cache, slot);

			if (n > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
				log_notice("worker %ld: released %u cache references"
				    " and fills", (long)pid, n);
		}
		if ((sl = shm_stats_slot(m->stats, slot)) != NULL)
			__atomic_store_n(&sl->pid, 0, __ATOMIC_RELAXED);
		if (w->gen == m->gens && m->state == MASTER_RUNNING) {
			/* The current generation lost a worker: replace it. */
			unsigned delay = spawn_backoff(w, ran);

			ts_add_s(&w->respawn_at, &now, delay);
			log_msg(WIFSIGNALED(st) ? LOG_ERR : LOG_WARNING,
			    "worker %ld (generation %u, slot %u) %s after %ld ms;"
			    " respawning in %u s", (long)pid, w->gen->id, slot,
			    how, ran, delay);
		} else {
			log_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 ?
			    LOG_INFO : LOG_WARNING,
			    "worker %ld (generation %u, slot %u) %s", (long)pid,
			    w->gen->id, slot, how);
			memset(w, 0, sizeof(*w));	/* slot free */
		}
	}
	master_spawn_gen_gc(m);
}

void
master_spawn_gen_gc(struct master *m)
{
	struct master_gen **pp = &m->gens;

	if (*pp == NULL)
		return;
	pp = &(*pp)->next;	/* the current generation stays */
	while (*pp != NULL) {
		struct master_gen *g = *pp;
		bool used = g->nlive > 0;

		for (unsigned i = 0; i < SHM_STATS_SLOTS && !used; i++)
			used = m->w[i].gen == g;
		if (used) {
			pp = &g->next;
			continue;
		}
		*pp = g->next;
		log_info("generation %u finished", g->id);
		master_listen_detach(m, g);
		filter_free(g->filter);
		conf_free(g->conf);
		free(g);
	}
}

/*
 * The watchdog (HOSTILE F2): every worker stamps a heartbeat in the cache
 * slot region each turn of its loop, and a timer makes it turn at least
 * once a second.  A worker whose stamp is older than WATCHDOG_MS is
 * stuck - an endless loop, SIGSTOP, or blocked holding a cache lock that
 * the others are waiting on - so it is killed; the reap then releases
 * its cache references and the respawn replaces it.
 */
#define WATCHDOG_MS	10000

long
master_spawn_watchdog(struct master *m)
{
	struct timespec now;
	uint64_t now_ms;

	if (m->cache == NULL)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
	for (unsigned i = 0; i < SHM_STATS_SLOTS; i++) {
		struct master_worker *w = &m->w[i];
		uint64_t hb;

		if (w->pid <= 0 || w->hung)
			continue;
		hb = cache_slot_heartbeat(m->cache, i);
		if (hb == 0 || hb > now_ms || now_ms - hb < WATCHDOG_MS)
			continue;
		log_err("worker %ld (slot %u) has not run for %llu ms; killing it",
		    (long)w->pid, i, (unsigned long long)(now_ms - hb));
		kill(w->pid, SIGKILL);
		w->hung = true;
	}
	return 1000;
}
