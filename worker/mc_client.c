/*
 * mc_client.c - memcached calls off the event loop: a bounded job queue,
 * a few threads each holding its own libmemcached handle, completions
 * handed back through an eventfd, and a per-server circuit breaker.
 *
 * Assumes: created in a worker after fork() (threads do not survive
 * fork); submit/done/cancel/free are called from one thread, the
 * worker's event loop.  libmemcached is the only memcached code in the
 * tree (STYLE 4): this file is the one that includes it.
 *
 * Why this shape:
 * - libmemcached calls block, so they run on threads; each thread owns
 *   a memcached_st cloned from a root handle (a memcached_st is not
 *   thread-safe).  The root handle does no I/O: the event loop uses it
 *   read-only to hash keys to servers (memcached_generate_hash), so a
 *   request for a dead server completes at submit time, with no wait.
 * - The breaker is ours, not libmemcached's: libmemcached keeps its
 *   failure state per handle (per thread here), and its "remove failed
 *   servers" mode re-hashes keys onto the survivors, which moves the
 *   whole key space twice per outage.  One shared state per server,
 *   atomics only, is simpler to reason about: MC_CLIENT_FAIL_LIMIT
 *   consecutive failures open it for MC_CLIENT_RETRY_MS; then requests
 *   go through again (half-open) and one more failure re-opens it.
 * - One mutex guards the pending queue and the completion list; the
 *   critical sections are a few pointer moves, so the event loop never
 *   waits on a thread that is inside libmemcached.
 * - Jobs on one key run in the order they were submitted: each key has
 *   a lane (a hash of the key modulo the thread count) and one thread
 *   serves each lane, oldest job first.  Without it a PURGE's delete could
 *   overtake a slow set of the same object on another thread and the set
 *   would land last, bringing the purged object back.
 * - A job that waited in the queue longer than timeout_ms is completed
 *   as MC_TIMEOUT without I/O: the worker has already moved on, and it
 *   keeps every completion within about 2 x timeout_ms of its submit.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/mc_client.h"

#ifdef HAVE_MEMCACHED

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libmemcached/memcached.h>

#define MC_DEFAULT_PORT 11211
#define MC_KEY_MAX 250

struct mc_job {
	struct mc_job *prev, *next;	/* pending queue or done list */
	uint64_t id;
	void *cookie;
	enum mc_op op;
	enum mc_status status;
	bool cancelled;			/* set while in flight */
	uint32_t ttl;
	int64_t t_submit;		/* monotonic ms */
	char *key;
	size_t klen;
	unsigned lane;			/* the thread that runs it (per key) */
	void *val;			/* set: the value; get: the result */
	size_t vlen;
	uint64_t num;			/* incr: the new value */
};

struct mc_list {
	struct mc_job *head, *tail;
	size_t n;
};

struct mc_server {
	atomic_int fails;		/* consecutive failures */
	atomic_llong dead_until;	/* monotonic ms; 0 = up */
};

struct mc_thread {
	struct mc_client *mc;
	unsigned lane;			/* the jobs it runs: key hash % nthreads */
	pthread_t tid;
	memcached_st *memc;
	struct mc_job *busy;		/* in flight, under mc->lock */
	bool started;
};

struct mc_client {
	memcached_st *root;		/* hashing only, no I/O */
	int efd;
	int timeout_ms;
	unsigned nthreads;
	unsigned nservers;
	struct mc_server *servers;
	struct mc_thread *threads;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct mc_list pending, done;
	bool stop;
	uint64_t next_id;		/* event-loop thread only */
	atomic_ullong hits, misses, stores, errors, timeouts;
};

static int64_t
mc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
mc_list_push(struct mc_list *l, struct mc_job *j)
{
	j->next = NULL;
	j->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
	l->n++;
}

static void
mc_list_unlink(struct mc_list *l, struct mc_job *j)
{
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		l->head = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	else
		l->tail = j->prev;
	j->prev = j->next = NULL;
	l->n--;
}

static void
mc_job_free(struct mc_job *j)
{
	if (j == NULL)
		return;
	free(j->key);
	free(j->val);
	free(j);
}

static void
mc_list_free(struct mc_list *l)
{
	struct mc_job *j;

	while ((j = l->head) != NULL) {
		mc_list_unlink(l, j);
		mc_job_free(j);
	}
}

static void
mc_kick(struct mc_client *mc)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already huge: it is readable anyway. */
	if (write(mc->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		abort();
}

/* ---- circuit breaker --------------------------------------------------- */

/*
 * Which server key hashes to, with handle m: the root handle from the
 * event loop, a thread's clone from that thread (same continuum, and no
 * handle is ever read by two threads).
 */
static int
mc_server_index(const struct mc_client *mc, const memcached_st *m,
    const char *key, size_t klen)
{
	uint32_t i;

	if (mc->nservers == 1)
		return 0;
	i = memcached_generate_hash(m, key, klen);
	return i < mc->nservers ? (int)i : -1;
}

static bool
mc_server_dead(struct mc_client *mc, int si, int64_t now)
{
	long long until;

	if (si < 0)
		return false;
	until = atomic_load(&mc->servers[si].dead_until);
	return until != 0 && now < until;
}

static void
mc_server_ok(struct mc_client *mc, int si)
{
	if (si < 0)
		return;
	atomic_store(&mc->servers[si].fails, 0);
	atomic_store(&mc->servers[si].dead_until, 0);
}

static void
mc_server_failed(struct mc_client *mc, int si)
{
	if (si < 0)
		return;
	if (atomic_fetch_add(&mc->servers[si].fails, 1) + 1 >=
	    MC_CLIENT_FAIL_LIMIT)
		atomic_store(&mc->servers[si].dead_until,
		    mc_now_ms() + MC_CLIENT_RETRY_MS);
}

/*
 * What a libmemcached result means for the breaker: a failure of the
 * server (it counts), of the request (it does not), or success.
 */
static enum mc_status
mc_classify(memcached_return_t rc, bool *server_fault)
{
	*server_fault = false;
	switch (rc) {
	case MEMCACHED_SUCCESS:
	case MEMCACHED_STORED:
	case MEMCACHED_DELETED:
	case MEMCACHED_END:
		return MC_OK;
	case MEMCACHED_NOTFOUND:
		return MC_MISS;
	case MEMCACHED_TIMEOUT:
		*server_fault = true;
		return MC_TIMEOUT;
	case MEMCACHED_CONNECTION_FAILURE:
	case MEMCACHED_CONNECTION_SOCKET_CREATE_FAILURE:
	case MEMCACHED_HOST_LOOKUP_FAILURE:
	case MEMCACHED_WRITE_FAILURE:
	case MEMCACHED_READ_FAILURE:
	case MEMCACHED_UNKNOWN_READ_FAILURE:
	case MEMCACHED_ERRNO:
	case MEMCACHED_SERVER_ERROR:
	case MEMCACHED_PROTOCOL_ERROR:
	case MEMCACHED_SERVER_MARKED_DEAD:
	case MEMCACHED_SERVER_TEMPORARILY_DISABLED:
	case MEMCACHED_NO_SERVERS:
		*server_fault = true;
		return MC_ERROR;
	default:
		return MC_ERROR;
	}
}

/* ---- worker threads ---------------------------------------------------- */

static void
mc_run(struct mc_client *mc, memcached_st *memc, struct mc_job *j)
{
	memcached_return_t rc = MEMCACHED_SUCCESS;
	int si = mc_server_index(mc, memc, j->key, j->klen);
	int64_t now = mc_now_ms();
	bool fault;

	if (now - j->t_submit > mc->timeout_ms) {
		/* Stale: the worker's deadline for it has passed. */
		j->status = MC_TIMEOUT;
		atomic_fetch_add(&mc->timeouts, 1);
		return;
	}
	if (mc_server_dead(mc, si, now)) {
		j->status = MC_DOWN;
		atomic_fetch_add(&mc->errors, 1);
		return;
	}
	switch (j->op) {
	case MC_OP_GET: {
		uint32_t flags = 0;
		size_t vlen = 0;
		char *v = memcached_get(memc, j->key, j->klen, &vlen, &flags,
		    &rc);

		if (rc == MEMCACHED_SUCCESS && v == NULL) {
			/* A zero-length item: hand back a real pointer. */
			v = malloc(1);
			if (v == NULL)
				rc = MEMCACHED_MEMORY_ALLOCATION_FAILURE;
		}
		if (rc == MEMCACHED_SUCCESS) {
			j->val = v;
			j->vlen = vlen;
		} else {
			free(v);
		}
		break;
	}
	case MC_OP_SET:
		rc = memcached_set(memc, j->key, j->klen, j->val, j->vlen,
		    (time_t)j->ttl, 0);
		free(j->val);
		j->val = NULL;
		j->vlen = 0;
		break;
	case MC_OP_DELETE:
		rc = memcached_delete(memc, j->key, j->klen, 0);
		break;
	case MC_OP_INCR:
		/* Binary protocol: creates the counter at 1 when absent. */
		rc = memcached_increment_with_initial(memc, j->key, j->klen, 1,
		    j->num, 0, &j->num);	/* num: the initial value, then the result */
		break;
	}
	j->status = mc_classify(rc, &fault);
	if (fault)
		mc_server_failed(mc, si);
	else
		mc_server_ok(mc, si);
	switch (j->status) {
	case MC_OK:
		if (j->op == MC_OP_GET)
			atomic_fetch_add(&mc->hits, 1);
		else if (j->op == MC_OP_SET)
			atomic_fetch_add(&mc->stores, 1);
		break;
	case MC_MISS:
		atomic_fetch_add(&mc->misses, 1);
		break;
	case MC_TIMEOUT:
		atomic_fetch_add(&mc->timeouts, 1);
		break;
	default:
		atomic_fetch_add(&mc->errors, 1);
		break;
	}
}

static void *
mc_thread_main(void *arg)
{
	struct mc_thread *t = arg;
	struct mc_client *mc = t->mc;
	struct mc_job *j;

	pthread_mutex_lock(&mc->lock);
	for (;;) {
		/* The oldest job of our lane (the queue is at most
		 * MC_CLIENT_QUEUE_MAX long). */
		for (;;) {
			for (j = mc->pending.head; j != NULL && j->lane != t->lane;
			    j = j->next)
				;
			if (mc->stop || j != NULL)
				break;
			pthread_cond_wait(&mc->cond, &mc->lock);
		}
		if (mc->stop)
			break;
		mc_list_unlink(&mc->pending, j);
		t->busy = j;
		pthread_mutex_unlock(&mc->lock);

		mc_run(mc, t->memc, j);

		pthread_mutex_lock(&mc->lock);
		t->busy = NULL;
		if (j->cancelled) {
			mc_job_free(j);
		} else {
			mc_list_push(&mc->done, j);
			mc_kick(mc);
		}
	}
	pthread_mutex_unlock(&mc->lock);
	return NULL;
}

/* ---- setup ------------------------------------------------------------- */

/* "host:port", "host", "[v6]:port", "[v6]" into host and port. */
static int
mc_parse_server(const char *s, char *host, size_t hostlen, in_port_t *port)
{
	const char *h = s, *colon = NULL, *end;
	size_t len;

	*port = MC_DEFAULT_PORT;
	if (*s == '[') {
		h = s + 1;
		end = strchr(h, ']');
		if (end == NULL)
			return -1;
		if (end[1] == ':')
			colon = end + 1;
		else if (end[1] != '\0')
			return -1;
	} else {
		colon = strchr(s, ':');
		/* A bare IPv6 literal has more than one colon: no port. */
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			colon = NULL;
		end = colon != NULL ? colon : s + strlen(s);
	}
	len = (size_t)(end - h);
	if (len == 0 || len >= hostlen)
		return -1;
	memcpy(host, h, len);
	host[len] = '\0';
	if (colon != NULL) {
		char *ep;
		unsigned long p;

		errno = 0;
		p = strtoul(colon + 1, &ep, 10);
		if (errno != 0 || ep == colon + 1 || *ep != '\0' || p == 0 ||
		    p > 65535)
			return -1;
		*port = (in_port_t)p;
	}
	return 0;
}

static int
mc_behaviours(memcached_st *m, int timeout_ms)
{
	static const struct {
		memcached_behavior_t b;
		int scale;	/* 0: constant value below, else timeout x */
		uint64_t v;
	} tab[] = {
		{ MEMCACHED_BEHAVIOR_DISTRIBUTION, 0,
		  MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA },
		{ MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 0, 1 },
		{ MEMCACHED_BEHAVIOR_TCP_NODELAY, 0, 1 },
		{ MEMCACHED_BEHAVIOR_NO_BLOCK, 0, 1 },
		/* milliseconds */
		{ MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 1, 0 },
		{ MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 1, 0 },
		/* SO_SNDTIMEO / SO_RCVTIMEO: microseconds */
		{ MEMCACHED_BEHAVIOR_SND_TIMEOUT, 1000, 0 },
		{ MEMCACHED_BEHAVIOR_RCV_TIMEOUT, 1000, 0 },
		/*
		 * libmemcached's own back-off after a failure (seconds, per
		 * handle): short, so it never outlasts our breaker.
		 */
		{ MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 0, 1 },
	};
	size_t i;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		uint64_t v = tab[i].scale ?
		    (uint64_t)timeout_ms * (uint64_t)tab[i].scale : tab[i].v;

		if (memcached_behavior_set(m, tab[i].b, v) != MEMCACHED_SUCCESS)
			return -1;
	}
	return 0;
}

static void
mc_stop_threads(struct mc_client *mc)
{
	unsigned i;

	pthread_mutex_lock(&mc->lock);
	mc->stop = true;
	pthread_cond_broadcast(&mc->cond);
	pthread_mutex_unlock(&mc->lock);
	for (i = 0; i < mc->nthreads; i++)
		if (mc->threads[i].started)
			pthread_join(mc->threads[i].tid, NULL);
}

void
mc_client_free(struct mc_client *mc)
{
	unsigned i;

	if (mc == NULL)
		return;
	if (mc->threads != NULL) {
		mc_stop_threads(mc);
		/* Threads exit between jobs: nothing is in flight now. */
		for (i = 0; i < mc->nthreads; i++)
			if (mc->threads[i].memc != NULL)
				memcached_free(mc->threads[i].memc);
		free(mc->threads);
	}
	mc_list_free(&mc->pending);
	mc_list_free(&mc->done);
	if (mc->root != NULL)
		memcached_free(mc->root);
	if (mc->efd >= 0)
		close(mc->efd);
	pthread_cond_destroy(&mc->cond);
	pthread_mutex_destroy(&mc->lock);
	free(mc->servers);
	free(mc);
}

struct mc_client *
mc_client_new(const char *const *servers, size_t n, int timeout_ms,
    unsigned nthreads, char *err, size_t errlen)
{
	struct mc_client *mc;
	char host[256];
	in_port_t port;
	size_t i;

	if (n == 0 || n > 1024 || timeout_ms <= 0) {
		snprintf(err, errlen, "memcached: need 1..1024 servers and "
		    "timeout_ms > 0");
		return NULL;
	}
	if (nthreads == 0)
		nthreads = 2;
	mc = calloc(1, sizeof(*mc));
	if (mc == NULL) {
		snprintf(err, errlen, "memcached: out of memory");
		return NULL;
	}
	mc->efd = -1;
	mc->timeout_ms = timeout_ms;
	pthread_mutex_init(&mc->lock, NULL);
	pthread_cond_init(&mc->cond, NULL);
	mc->servers = calloc(n, sizeof(*mc->servers));
	mc->root = memcached_create(NULL);
	if (mc->servers == NULL || mc->root == NULL) {
		snprintf(err, errlen, "memcached: out of memory");
		goto fail;
	}
	mc->nservers = (unsigned)n;
	if (mc_behaviours(mc->root, timeout_ms) < 0) {
		snprintf(err, errlen, "memcached: cannot set behaviours");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if (mc_parse_server(servers[i], host, sizeof(host), &port) <
		    0) {
			snprintf(err, errlen, "memcached: bad server \"%s\"",
			    servers[i]);
			goto fail;
		}
		if (memcached_server_add(mc->root, host, port) !=
		    MEMCACHED_SUCCESS) {
			snprintf(err, errlen, "memcached: cannot add server "
			    "\"%s\"", servers[i]);
			goto fail;
		}
	}
	if (memcached_server_count(mc->root) != n) {
		snprintf(err, errlen, "memcached: server list mismatch");
		goto fail;
	}
	mc->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mc->efd < 0) {
		snprintf(err, errlen, "memcached: eventfd: %s",
		    strerror(errno));
		goto fail;
	}
	mc->threads = calloc(nthreads, sizeof(*mc->threads));
	if (mc->threads == NULL) {
		snprintf(err, errlen, "memcached: out of memory");
		goto fail;
	}
	mc->nthreads = nthreads;
	for (i = 0; i < nthreads; i++) {
		struct mc_thread *t = &mc->threads[i];

		t->mc = mc;
		t->lane = (unsigned)i;
		t->memc = memcached_clone(NULL, mc->root);
		if (t->memc == NULL) {
			snprintf(err, errlen, "memcached: clone failed");
			goto fail;
		}
	}
	for (i = 0; i < nthreads; i++) {
		struct mc_thread *t = &mc->threads[i];
		int rc = pthread_create(&t->tid, NULL, mc_thread_main, t);

		if (rc != 0) {
			snprintf(err, errlen, "memcached: pthread_create: %s",
			    strerror(rc));
			goto fail;
		}
		t->started = true;
	}
	return mc;
fail:
	mc_client_free(mc);
	return NULL;
}

int
mc_client_fd(const struct mc_client *mc)
{
	return mc != NULL ? mc->efd : -1;
}

int
mc_client_server_of(const struct mc_client *mc, const char *key,
    size_t klen)
{
	if (mc == NULL || key == NULL || klen == 0)
		return -1;
	return mc_server_index(mc, mc->root, key, klen);
}

/* ---- submit / complete ------------------------------------------------- */

/* FNV-1a of the key: which thread runs its jobs. */
static unsigned
mc_lane(const struct mc_client *mc, const char *key, size_t klen)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < klen; i++)
		h = (h ^ (unsigned char)key[i]) * 16777619u;
	return h % mc->nthreads;
}

/* own: val is a malloc'ed buffer this call takes over (freed on failure). */
static uint64_t
mc_submit(struct mc_client *mc, enum mc_op op, const char *key, size_t klen,
    const void *val, size_t vlen, uint32_t ttl, void *cookie, void *own,
    uint64_t num)
{
	struct mc_job *j;
	int64_t now;
	uint64_t id;
	bool down;

	if (mc == NULL || key == NULL || klen == 0 || klen > MC_KEY_MAX) {
		free(own);
		return MC_NOJOB;
	}
	now = mc_now_ms();
	down = mc_server_dead(mc, mc_server_index(mc, mc->root, key, klen),
	    now);
	/*
	 * Reading n without the lock would race with the threads; the
	 * section is short, and the event loop holds it only here.
	 */
	pthread_mutex_lock(&mc->lock);
	if (!down && mc->pending.n >= MC_CLIENT_QUEUE_MAX) {
		pthread_mutex_unlock(&mc->lock);
		free(own);
		return MC_NOJOB;
	}
	pthread_mutex_unlock(&mc->lock);

	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		free(own);
		return MC_NOJOB;
	}
	j->key = malloc(klen);
	if (j->key == NULL)
		goto oom;
	memcpy(j->key, key, klen);
	j->klen = klen;
	j->lane = mc_lane(mc, key, klen);
	j->num = num;
	if (op == MC_OP_SET && own != NULL) {
		j->val = own;		/* freed with the job, even when down */
		own = NULL;
		j->vlen = vlen;
	} else if (op == MC_OP_SET && !down) {
		j->val = malloc(vlen != 0 ? vlen : 1);
		if (j->val == NULL)
			goto oom;
		if (vlen != 0)
			memcpy(j->val, val, vlen);
		j->vlen = vlen;
	}
	id = ++mc->next_id;
	j->id = id;
	j->op = op;
	j->ttl = ttl;
	j->cookie = cookie;
	j->t_submit = now;

	pthread_mutex_lock(&mc->lock);
	if (down) {
		/* Breaker open: complete now, no thread, no wait. */
		j->status = MC_DOWN;
		atomic_fetch_add(&mc->errors, 1);
		mc_list_push(&mc->done, j);
		mc_kick(mc);
	} else {
		mc_list_push(&mc->pending, j);
		/* Every thread looks: only the job's lane takes it. */
		pthread_cond_broadcast(&mc->cond);
	}
	pthread_mutex_unlock(&mc->lock);
	return id;
oom:
	free(own);
	mc_job_free(j);
	return MC_NOJOB;
}

uint64_t
mc_client_get(struct mc_client *mc, const char *key, size_t klen,
    void *cookie)
{
	return mc_submit(mc, MC_OP_GET, key, klen, NULL, 0, 0, cookie, NULL, 0);
}

uint64_t
mc_client_set(struct mc_client *mc, const char *key, size_t klen,
    const void *val, size_t vlen, uint32_t ttl_s, void *cookie)
{
	if (val == NULL && vlen != 0)
		return MC_NOJOB;
	return mc_submit(mc, MC_OP_SET, key, klen, val, vlen, ttl_s, cookie,
	    NULL, 0);
}

uint64_t
mc_client_set_take(struct mc_client *mc, const char *key, size_t klen,
    void *val, size_t vlen, uint32_t ttl_s, void *cookie)
{
	if (val == NULL)
		return MC_NOJOB;
	return mc_submit(mc, MC_OP_SET, key, klen, val, vlen, ttl_s, cookie,
	    val, 0);
}

uint64_t
mc_client_delete(struct mc_client *mc, const char *key, size_t klen,
    void *cookie)
{
	return mc_submit(mc, MC_OP_DELETE, key, klen, NULL, 0, 0, cookie, NULL, 0);
}

uint64_t
mc_client_incr(struct mc_client *mc, const char *key, size_t klen,
    uint64_t initial, void *cookie)
{
	return mc_submit(mc, MC_OP_INCR, key, klen, NULL, 0, 0, cookie, NULL,
	    initial);
}

size_t
mc_client_done(struct mc_client *mc, struct mc_done *out, size_t max)
{
	uint64_t cnt;
	struct mc_job *j;
	size_t k = 0;

	if (mc == NULL || max == 0)
		return 0;
	/* Drain first: a completion pushed after this re-arms the fd. */
	(void)!read(mc->efd, &cnt, sizeof(cnt));
	pthread_mutex_lock(&mc->lock);
	while (k < max && (j = mc->done.head) != NULL) {
		mc_list_unlink(&mc->done, j);
		out[k].cookie = j->cookie;
		out[k].id = j->id;
		out[k].op = j->op;
		out[k].status = j->status;
		out[k].value = NULL;
		out[k].vlen = 0;
		out[k].num = j->num;
		if (j->op == MC_OP_GET && j->status == MC_OK) {
			out[k].value = j->val;
			out[k].vlen = j->vlen;
			j->val = NULL;
		}
		mc_job_free(j);
		k++;
	}
	if (mc->done.head != NULL)
		mc_kick(mc);	/* more than max waiting: stay readable */
	pthread_mutex_unlock(&mc->lock);
	return k;
}

/* Linear in the queue length: cancels are rare (a worker deadline). */
void
mc_client_cancel(struct mc_client *mc, uint64_t id)
{
	struct mc_job *j;
	unsigned i;

	if (mc == NULL || id == 0 || id == MC_NOJOB)
		return;
	pthread_mutex_lock(&mc->lock);
	for (j = mc->pending.head; j != NULL; j = j->next)
		if (j->id == id) {
			mc_list_unlink(&mc->pending, j);
			mc_job_free(j);
			goto out;
		}
	for (i = 0; i < mc->nthreads; i++)
		if (mc->threads[i].busy != NULL &&
		    mc->threads[i].busy->id == id) {
			/* Its thread frees it when the call returns. */
			mc->threads[i].busy->cancelled = true;
			goto out;
		}
	for (j = mc->done.head; j != NULL; j = j->next)
		if (j->id == id) {
			mc_list_unlink(&mc->done, j);
			mc_job_free(j);
			goto out;
		}
out:
	pthread_mutex_unlock(&mc->lock);
}

void
mc_client_stats(const struct mc_client *mc, struct mc_client_stats *st)
{
	int64_t now = mc_now_ms();
	unsigned i;

	memset(st, 0, sizeof(*st));
	if (mc == NULL)
		return;
	st->hits = atomic_load(&mc->hits);
	st->misses = atomic_load(&mc->misses);
	st->stores = atomic_load(&mc->stores);
	st->errors = atomic_load(&mc->errors);
	st->timeouts = atomic_load(&mc->timeouts);
	st->servers = mc->nservers;
	for (i = 0; i < mc->nservers; i++) {
		long long until = atomic_load(&mc->servers[i].dead_until);

		if (until == 0 || now >= until)
			st->servers_up++;
	}
}

#else /* !HAVE_MEMCACHED: the tier is off, every call says so. */

struct mc_client *
mc_client_new(const char *const *servers, size_t n, int timeout_ms,
    unsigned nthreads, char *err, size_t errlen)
{
	(void)servers;
	(void)n;
	(void)timeout_ms;
	(void)nthreads;
	snprintf(err, errlen, "memcached: tier off (built without "
	    "libmemcached)");
	return NULL;
}

int
mc_client_fd(const struct mc_client *mc)
{
	(void)mc;
	return -1;
}

uint64_t
mc_client_get(struct mc_client *mc, const char *key, size_t klen,
    void *cookie)
{
	(void)mc;
	(void)key;
	(void)klen;
	(void)cookie;
	return MC_NOJOB;
}

uint64_t
mc_client_set(struct mc_client *mc, const char *key, size_t klen,
    const void *val, size_t vlen, uint32_t ttl_s, void *cookie)
{
	(void)mc;
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	(void)ttl_s;
	(void)cookie;
	return MC_NOJOB;
}

uint64_t
mc_client_set_take(struct mc_client *mc, const char *key, size_t klen,
    void *val, size_t vlen, uint32_t ttl_s, void *cookie)
{
	(void)mc;
	(void)key;
	(void)klen;
	(void)vlen;
	(void)ttl_s;
	(void)cookie;
	free(val);
	return MC_NOJOB;
}

uint64_t
mc_client_incr(struct mc_client *mc, const char *key, size_t klen,
    uint64_t initial, void *cookie)
{
	(void)initial;
	(void)mc;
	(void)key;
	(void)klen;
	(void)cookie;
	return MC_NOJOB;
}

uint64_t
mc_client_delete(struct mc_client *mc, const char *key, size_t klen,
    void *cookie)
{
	(void)mc;
	(void)key;
	(void)klen;
	(void)cookie;
	return MC_NOJOB;
}

size_t
mc_client_done(struct mc_client *mc, struct mc_done *out, size_t max)
{
	(void)mc;
	(void)out;
	(void)max;
	return 0;
}

void
mc_client_cancel(struct mc_client *mc, uint64_t id)
{
	(void)mc;
	(void)id;
}

void
mc_client_stats(const struct mc_client *mc, struct mc_client_stats *st)
{
	(void)mc;
	memset(st, 0, sizeof(*st));
}

int
mc_client_server_of(const struct mc_client *mc, const char *key,
    size_t klen)
{
	(void)mc;
	(void)key;
	(void)klen;
	return -1;
}

void
mc_client_free(struct mc_client *mc)
{
	(void)mc;
}

#endif /* HAVE_MEMCACHED */
