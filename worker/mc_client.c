/*
 * mc_client.c - memcached calls off the event loop: a bounded job queue,
 * a few threads each speaking the memcached binary protocol over its own
 * connections, completions handed back through an eventfd, and a
 * per-server circuit breaker.
 *
 * Assumes: created in a worker after fork() (threads do not survive
 * fork); submit/done/cancel/free are called from one thread, the
 * worker's event loop.  libmemcached is the only third-party memcached
 * code in the tree (STYLE 4) and this file is the one that includes it,
 * for one thing only: choosing a key's server (ketama).
 *
 * Why this shape:
 * - The memcached server is not trusted (HOSTILE F9, "memcached
 *   trust"): anyone who can answer on its address can send any bytes.
 *   libmemcached 1.1.4 believes the reply header (a GETK key length of
 *   1000 is copied into its 250-byte key buffer: a heap overflow in the
 *   worker; a 2 GiB body length is allocated; a truncated reply reads as
 *   a miss) and its poll timeout restarts on every byte, so a trickling
 *   server holds a thread forever.  So the I/O is ours, and small: four
 *   requests (GET, SET, DELETE, INCREMENT; never GETK, our replies carry
 *   no key), and every reply header is checked (magic, opcode, opaque, key, extras and body
 *   lengths, a value cap) before a byte is allocated or copied.  The
 *   value is read straight into one malloc of exactly its length.
 * - Batches: a thread takes up to MC_BATCH jobs of its lane for one
 *   server (at most MC_BATCH_BYTES of requests; a larger SET goes
 *   alone), writes them in one go and reads the replies in order, each
 *   matched by its opaque: one wait per batch instead of one per job,
 *   which is what keeps thread switches per lookup low on a busy worker.
 *   The requests always fit the socket's send buffer, so writing them
 *   never waits on a server that is busy sending us replies (both sides
 *   would wait for the other until the deadline).
 * - One deadline per batch, timeout_ms from when its thread starts it:
 *   connect, every write and every read poll() for what is left of it,
 *   so no server, however slow or trickling, holds a job longer.  A
 *   reply that fails fails the rest of the batch too.
 * - Server names are resolved once, when the client is made: a lookup
 *   has no deadline, and a DNS server that does not answer must not hold
 *   a lane.  A server that moves is picked up by a reload.
 * - A connection that timed out or carried a bad reply is closed, never
 *   reused: the late or remaining bytes would be read as the reply to
 *   the next request.  The next job on that server reconnects.
 * - Keys map to servers as before: the root memcached_st, with ketama,
 *   does no I/O and is read by the event loop only (at submit; the job
 *   carries the index to its thread), so every node, whatever its
 *   version, agrees on where a key lives, and a request for a dead
 *   server completes at submit time, with no wait.
 * - The breaker is one shared state per server, atomics only:
 *   MC_CLIENT_FAIL_LIMIT consecutive failures (a timeout, a connection
 *   or protocol error; not a well-formed "not stored") open it for
 *   MC_CLIENT_RETRY_MS; then requests go through again (half-open) and
 *   one more failure re-opens it.
 * - One mutex guards the pending queue and the completion list; the
 *   critical sections are a few pointer moves, so the event loop never
 *   waits on a thread that is doing I/O.
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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/mc_client.h"

#ifdef HAVE_MEMCACHED

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <libmemcached/memcached.h>

#define MC_DEFAULT_PORT 11211
#define MC_KEY_MAX 250

/* The binary protocol (memcached's protocol_binary.h), as much as we use. */
#define MC_HDR_LEN 24
#define MC_MAGIC_REQ 0x80
#define MC_MAGIC_RES 0x81
#define MC_CMD_GET 0x00
#define MC_CMD_SET 0x01
#define MC_CMD_DELETE 0x04
#define MC_CMD_INCR 0x05
#define MC_ST_OK 0x0000
#define MC_ST_NOTFOUND 0x0001
/*
 * Largest GET value we read: memcached's default item size is 1 MiB;
 * the slack covers our envelope.  A bigger claim is a protocol error,
 * refused before any allocation.
 */
#define MC_VALUE_CAP (1024 * 1024 + 64 * 1024)
/* Largest body we read and discard (an error message; memcached sends
 * "Not found" and the like). */
#define MC_JUNK_CAP 1024
/* Jobs one thread sends in one write (pipelined) and waits for once,
 * and the request bytes a batch may hold: a larger SET goes alone.  A
 * batch must fit our socket's send buffer (see mc_connect). */
#define MC_BATCH MC_CLIENT_BATCH
#define MC_BATCH_BYTES (64 * 1024)

struct mc_job {
	struct mc_job *prev, *next;	/* pending queue or done list */
	uint64_t id;
	void *cookie;
	enum mc_op op;
	enum mc_status status;
	bool cancelled;			/* set while in flight */
	bool unsealed;			/* set: the seal failed, never sent */
	uint32_t ttl;
	int64_t t_submit;		/* monotonic ms */
	char *key;
	size_t klen;
	int si;				/* the key's server, or -1 */
	unsigned lane;			/* the thread that runs it (per key) */
	void *val;			/* set: the value; get: the result */
	size_t vlen;
	uint64_t num;			/* incr: the initial, then the new value */
	int check;			/* get: the check's result on val */
};

struct mc_list {
	struct mc_job *head, *tail;
	size_t n;
};

struct mc_server {
	atomic_int fails;		/* consecutive failures */
	atomic_llong dead_until;	/* monotonic ms; 0 = up */
	char host[256];			/* read-only once the threads run */
	in_port_t port;
	struct addrinfo *ai;		/* resolved once, at mc_client_new */
};

/* One thread's connection to one server. */
struct mc_conn {
	int fd;				/* -1: connect on the next job */
};

struct mc_thread {
	struct mc_client *mc;
	unsigned lane;			/* the jobs it runs: key hash % nthreads */
	pthread_t tid;
	struct mc_conn *conns;		/* one per server */
	uint32_t opaque;		/* the last request's */
	struct mc_job *busy[MC_BATCH];	/* in flight, under mc->lock */
	unsigned nbusy;
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
	mc_check_fn check;		/* set before the first job */
	void *check_arg;
	mc_seal_fn seal;		/* set before the first job */
	void *seal_arg;
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
 * Which server key hashes to, from the root handle: the event loop's
 * only (submit and mc_client_server_of), so no handle is shared.
 */
static int
mc_server_index(const struct mc_client *mc, const char *key, size_t klen)
{
	uint32_t i;

	if (mc->nservers == 1)
		return 0;
	i = memcached_generate_hash(mc->root, key, klen);
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

/* ---- the wire ---------------------------------------------------------- */

/* How one step of an exchange ended. */
enum mc_io {
	MC_IO_OK,	/* done; for an exchange: a well-formed reply */
	MC_IO_TIMEOUT,	/* the job's deadline passed */
	MC_IO_FAIL,	/* resolve, connect, send or receive failed; EOF */
	MC_IO_PROTO,	/* the reply broke the protocol */
	MC_IO_NOMEM,	/* no memory for a value the server may send */
};

static void
mc_put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void
mc_put32(unsigned char *p, uint32_t v)
{
	mc_put16(p, (uint16_t)(v >> 16));
	mc_put16(p + 2, (uint16_t)v);
}

static void
mc_put64(unsigned char *p, uint64_t v)
{
	mc_put32(p, (uint32_t)(v >> 32));
	mc_put32(p + 4, (uint32_t)v);
}

static uint16_t
mc_get16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
mc_get32(const unsigned char *p)
{
	return (uint32_t)mc_get16(p) << 16 | mc_get16(p + 2);
}

static uint64_t
mc_get64(const unsigned char *p)
{
	return (uint64_t)mc_get32(p) << 32 | mc_get32(p + 4);
}

/* Wait until fd is ready for events, or the deadline passes. */
static enum mc_io
mc_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - mc_now_ms();
		int r;

		if (left <= 0)
			return MC_IO_TIMEOUT;
		r = poll(&pfd, 1, (int)left);
		if (r > 0)
			return MC_IO_OK;	/* errors show in send/recv */
		if (r == 0)
			return MC_IO_TIMEOUT;
		if (errno != EINTR)
			return MC_IO_FAIL;
	}
}

/* All of iov[0..n) (consumed as it goes), by the deadline. */
static enum mc_io
mc_send(int fd, struct iovec *iov, size_t n, int64_t deadline)
{
	struct msghdr msg;
	enum mc_io rc;

	while (n > 0) {
		ssize_t w;
		size_t done;

		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		msg.msg_iovlen = n;
		/* MSG_NOSIGNAL: a closed peer is an error, not a SIGPIPE. */
		w = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return MC_IO_FAIL;
			if ((rc = mc_wait(fd, POLLOUT, deadline)) != MC_IO_OK)
				return rc;
			continue;
		}
		done = (size_t)w;
		while (n > 0 && done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
	return MC_IO_OK;
}

/* Exactly len bytes into buf, by the deadline; EOF is a failure. */
static enum mc_io
mc_recv(int fd, void *buf, size_t len, int64_t deadline)
{
	char *p = buf;
	enum mc_io rc;

	while (len > 0) {
		ssize_t r = recv(fd, p, len, 0);

		if (r > 0) {
			p += r;
			len -= (size_t)r;
			continue;
		}
		if (r == 0)
			return MC_IO_FAIL;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return MC_IO_FAIL;
		if ((rc = mc_wait(fd, POLLIN, deadline)) != MC_IO_OK)
			return rc;
	}
	return MC_IO_OK;
}

static void
mc_conn_close(struct mc_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/*
 * A pooled connection is usable if nothing is waiting on it: between
 * replies the server sends nothing, so EOF (it closed or restarted) or
 * stray bytes mean "reconnect", without failing the job for it.
 */
static bool
mc_conn_idle(const struct mc_conn *c)
{
	char b;
	ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/*
 * Connect to server s, by the deadline.  Its addresses were resolved
 * once when the client was made (mc_client_new): getaddrinfo() has no
 * deadline, and a DNS server that does not answer would hold the lane
 * (and every key on it) for its whole retry schedule.  A server that
 * moved is picked up by a reload, which makes new workers.
 */
static enum mc_io
mc_connect(const struct mc_server *s, struct mc_conn *c, int64_t deadline)
{
	const struct addrinfo *ai;
	enum mc_io rc = MC_IO_FAIL;

	for (ai = s->ai; ai != NULL && rc != MC_IO_TIMEOUT; ai = ai->ai_next) {
		int one = 1, e = 0, sndbuf = 4 * MC_BATCH_BYTES;
		socklen_t elen = sizeof(e);
		int fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);

		if (fd < 0)
			continue;
		/* Requests are written as soon as they are made: no Nagle
		 * delay.  The send buffer holds a whole batch (MC_BATCH_BYTES,
		 * and the kernel's overhead), so a batch is written without
		 * waiting for the server to read: it may be busy writing us
		 * replies that we read only after the batch is sent. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
		    sizeof(sndbuf));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			c->fd = fd;
			return MC_IO_OK;
		}
		rc = MC_IO_FAIL;
		if (errno == EINPROGRESS) {
			rc = mc_wait(fd, POLLOUT, deadline);
			if (rc == MC_IO_OK && getsockopt(fd, SOL_SOCKET,
			    SO_ERROR, &e, &elen) == 0 && e == 0) {
				c->fd = fd;
				return MC_IO_OK;
			}
			if (rc == MC_IO_OK)
				rc = MC_IO_FAIL;
		}
		close(fd);
	}
	return rc;
}

/* One request's bytes: header, extras, key, value (iovecs into req and
 * the job).  MC_IO_PROTO when the value cannot be framed. */
struct mc_req {
	unsigned char hdr[MC_HDR_LEN], ext[20];
	unsigned char op;
	uint32_t opaque;
};

static enum mc_io
mc_request(struct mc_req *q, uint32_t opaque, const struct mc_job *j,
    struct iovec *iov, size_t *niov)
{
	size_t elen = 0, vlen;

	switch (j->op) {
	case MC_OP_GET:
		q->op = MC_CMD_GET;
		break;
	case MC_OP_SET:
		q->op = MC_CMD_SET;
		mc_put32(q->ext, 0);		/* flags */
		mc_put32(q->ext + 4, j->ttl);	/* expiry */
		elen = 8;
		break;
	case MC_OP_DELETE:
		q->op = MC_CMD_DELETE;
		break;
	case MC_OP_INCR:
	default:
		q->op = MC_CMD_INCR;
		mc_put64(q->ext, 1);		/* delta */
		mc_put64(q->ext + 8, j->num);	/* initial, when absent */
		mc_put32(q->ext + 16, 0);	/* expiry: never; create */
		elen = 20;
		break;
	}
	vlen = j->op == MC_OP_SET ? j->vlen : 0;
	/* Submit bounds keys to 250 bytes; values fit the 32-bit body. */
	if (vlen > UINT32_MAX - MC_KEY_MAX - elen)
		return MC_IO_PROTO;
	q->opaque = opaque;
	memset(q->hdr, 0, sizeof(q->hdr));
	q->hdr[0] = MC_MAGIC_REQ;
	q->hdr[1] = q->op;
	mc_put16(q->hdr + 2, (uint16_t)j->klen);
	q->hdr[4] = (unsigned char)elen;
	mc_put32(q->hdr + 8, (uint32_t)(elen + j->klen + vlen));
	mc_put32(q->hdr + 12, opaque);
	iov[(*niov)++] = (struct iovec){ q->hdr, sizeof(q->hdr) };
	if (elen > 0)
		iov[(*niov)++] = (struct iovec){ q->ext, elen };
	iov[(*niov)++] = (struct iovec){ j->key, j->klen };
	if (vlen > 0)
		iov[(*niov)++] = (struct iovec){ j->val, vlen };
	return MC_IO_OK;
}

/*
 * Read the reply to request q (job j): MC_IO_OK when it was well-formed,
 * *status holds its status, and for a GET hit j->val holds the value,
 * for an INCR success j->num the counter.  Any other result leaves the
 * connection out of step: the caller closes it.
 */
static enum mc_io
mc_reply(int fd, const struct mc_req *q, struct mc_job *j, int64_t deadline,
    uint16_t *status)
{
	unsigned char hdr[MC_HDR_LEN], junk[MC_JUNK_CAP];
	size_t want_ext, vlen;
	uint32_t blen;
	uint16_t klen;
	enum mc_io rc;
	void *v;

	/* The header is checked in full before anything else is read. */
	if ((rc = mc_recv(fd, hdr, sizeof(hdr), deadline)) != MC_IO_OK)
		return rc;
	klen = mc_get16(hdr + 2);
	*status = mc_get16(hdr + 6);
	blen = mc_get32(hdr + 8);
	/* Only a GET hit carries extras (the 4-byte flags). */
	want_ext = q->op == MC_CMD_GET && *status == MC_ST_OK ? 4 : 0;
	if (hdr[0] != MC_MAGIC_RES || hdr[1] != q->op ||
	    mc_get32(hdr + 12) != q->opaque || klen > MC_KEY_MAX ||
	    hdr[4] != want_ext || blen < want_ext + klen)
		return MC_IO_PROTO;
	vlen = blen - want_ext - klen;
	if (q->op == MC_CMD_GET && *status == MC_ST_OK) {
		if (vlen > MC_VALUE_CAP)
			return MC_IO_PROTO;
	} else if (q->op == MC_CMD_INCR && *status == MC_ST_OK) {
		if (vlen != 8)
			return MC_IO_PROTO;
	} else if (vlen > sizeof(junk)) {
		return MC_IO_PROTO;
	}
	/* Flags and any key: not used (we sent the key; flags are 0). */
	if ((rc = mc_recv(fd, junk, want_ext + klen, deadline)) != MC_IO_OK)
		return rc;
	if (q->op != MC_CMD_GET || *status != MC_ST_OK) {
		/* An error message, a SET's empty body, or the counter. */
		if ((rc = mc_recv(fd, junk, vlen, deadline)) != MC_IO_OK)
			return rc;
		if (q->op == MC_CMD_INCR && *status == MC_ST_OK)
			j->num = mc_get64(junk);
		return MC_IO_OK;
	}
	/* A zero-length item still gets a real pointer. */
	v = malloc(vlen != 0 ? vlen : 1);
	if (v == NULL)
		return MC_IO_NOMEM;
	if ((rc = mc_recv(fd, v, vlen, deadline)) != MC_IO_OK) {
		free(v);
		return rc;
	}
	j->val = v;
	j->vlen = vlen;
	return MC_IO_OK;
}

/* What a well-formed reply's status means for op. */
static enum mc_status
mc_status_of(enum mc_op op, uint16_t status)
{
	if (status == MC_ST_OK)
		return MC_OK;
	if (status == MC_ST_NOTFOUND &&
	    (op == MC_OP_GET || op == MC_OP_DELETE))
		return MC_MISS;
	/* SET: exists / not stored; anything else: the server said no. */
	return MC_ERROR;
}

/* ---- worker threads ---------------------------------------------------- */

/* The counters of a finished job. */
static void
mc_count(struct mc_client *mc, const struct mc_job *j)
{
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

/*
 * Run a batch of jobs of one lane and one server, pipelined: every
 * request in one write, then the replies in order (memcached answers a
 * connection's requests in order; each reply's opaque is checked).  One
 * wait for the whole batch instead of one per job: on a busy worker
 * this is what keeps the thread switches per lookup low.  All jobs of a
 * batch share the deadline: timeout_ms from now.  A reply that fails
 * fails it and every later job of the batch (the connection is closed).
 */
static void
mc_run_batch(struct mc_thread *t, struct mc_job **jobs, unsigned n)
{
	struct mc_client *mc = t->mc;
	int si = jobs[0]->si;
	int64_t now = mc_now_ms(), deadline = now + mc->timeout_ms;
	struct mc_req q[MC_BATCH];
	struct iovec iov[4 * MC_BATCH];
	struct mc_job *live[MC_BATCH];
	size_t niov = 0;
	unsigned nlive = 0, k;
	enum mc_io rc = MC_IO_OK;
	uint16_t status = 0;
	struct mc_conn *c;

	for (k = 0; k < n; k++) {
		struct mc_job *j = jobs[k];

		if (now - j->t_submit > mc->timeout_ms)
			j->status = MC_TIMEOUT;	/* stale: the worker moved on */
		else if (j->unsealed)
			j->status = MC_ERROR;	/* not an item we may send */
		else if (si < 0)
			j->status = MC_ERROR;	/* the hash named no server */
		else if (mc_server_dead(mc, si, now))
			j->status = MC_DOWN;
		else if (mc_request(&q[nlive], ++t->opaque, j, iov, &niov) !=
		    MC_IO_OK)
			j->status = MC_ERROR;
		else {
			live[nlive++] = j;
			continue;
		}
		mc_count(mc, j);
	}
	if (nlive == 0)
		goto out;
	c = &t->conns[si];
	if (c->fd >= 0 && !mc_conn_idle(c))
		mc_conn_close(c);
	if (c->fd < 0)
		rc = mc_connect(&mc->servers[si], c, deadline);
	if (rc == MC_IO_OK)
		rc = mc_send(c->fd, iov, niov, deadline);
	for (k = 0; k < nlive; k++) {
		struct mc_job *j = live[k];

		if (rc == MC_IO_OK)
			rc = mc_reply(c->fd, &q[k], j, deadline, &status);
		switch (rc) {
		case MC_IO_OK:
			j->status = mc_status_of(j->op, status);
			break;
		case MC_IO_TIMEOUT:
			j->status = MC_TIMEOUT;
			break;
		default:
			j->status = MC_ERROR;
			break;
		}
		mc_count(mc, j);
	}
	switch (rc) {
	case MC_IO_OK:
		mc_server_ok(mc, si);
		break;
	case MC_IO_NOMEM:
		/* Our shortage, not the server's fault. */
		mc_conn_close(c);
		mc_server_ok(mc, si);
		break;
	default:
		/* A late reply must not answer the next request. */
		mc_conn_close(c);
		mc_server_failed(mc, si);
		break;
	}
out:
	for (k = 0; k < n; k++)
		if (jobs[k]->op == MC_OP_SET) {
			free(jobs[k]->val);
			jobs[k]->val = NULL;
			jobs[k]->vlen = 0;
		}
}

static void *
mc_thread_main(void *arg)
{
	struct mc_thread *t = arg;
	struct mc_client *mc = t->mc;
	struct mc_job *j, *next;
	size_t bytes;
	unsigned n;

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
		/* And the later ones of our lane for the same server, in
		 * order: a key's jobs keep their order (one lane, one
		 * server), other keys' jobs are independent. */
		t->nbusy = 0;
		bytes = 0;
		for (; j != NULL && t->nbusy < MC_BATCH; j = next) {
			size_t need = MC_HDR_LEN + 20 + j->klen +
			    (j->op == MC_OP_SET ? j->vlen : 0);

			next = j->next;
			if (j->lane != t->lane || (t->nbusy > 0 && j->si != t->busy[0]->si))
				continue;
			/* Full: stop here (a later job of this key must not
			 * pass an earlier one left in the queue). */
			if (t->nbusy > 0 && bytes + need > MC_BATCH_BYTES)
				break;
			bytes += need;
			mc_list_unlink(&mc->pending, j);
			t->busy[t->nbusy++] = j;
		}
		n = t->nbusy;
		pthread_mutex_unlock(&mc->lock);

		for (unsigned k = 0; k < n; k++) {
			j = t->busy[k];
			if (mc->seal != NULL && j->op == MC_OP_SET &&
			    mc->seal(mc->seal_arg, j->val, j->vlen) != 0)
				j->unsealed = true;
		}
		mc_run_batch(t, t->busy, n);
		for (unsigned k = 0; k < n; k++) {
			j = t->busy[k];
			if (mc->check != NULL && j->op == MC_OP_GET &&
			    j->status == MC_OK)
				j->check = mc->check(mc->check_arg, j->val, j->vlen);
		}

		pthread_mutex_lock(&mc->lock);
		for (unsigned k = 0; k < n; k++) {
			j = t->busy[k];
			if (j->cancelled)
				mc_job_free(j);
			else
				mc_list_push(&mc->done, j);
		}
		t->nbusy = 0;
		mc_kick(mc);
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

/*
 * The root handle only hashes: ketama is what places keys, and it must
 * stay as every sluice node (and any older one) has it.  No I/O
 * behaviour is set: the handle never opens a connection.
 */
static int
mc_behaviours(memcached_st *m)
{
	return memcached_behavior_set(m, MEMCACHED_BEHAVIOR_DISTRIBUTION,
	    MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA) == MEMCACHED_SUCCESS ?
	    0 : -1;
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
	unsigned i, k;

	if (mc == NULL)
		return;
	if (mc->threads != NULL) {
		mc_stop_threads(mc);
		/* Threads exit between jobs: nothing is in flight now. */
		for (i = 0; i < mc->nthreads; i++) {
			struct mc_conn *c = mc->threads[i].conns;

			for (k = 0; c != NULL && k < mc->nservers; k++)
				mc_conn_close(&c[k]);
			free(c);
		}
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
	for (i = 0; mc->servers != NULL && i < mc->nservers; i++)
		if (mc->servers[i].ai != NULL)
			freeaddrinfo(mc->servers[i].ai);
	free(mc->servers);
	free(mc);
}

struct mc_client *
mc_client_new(const char *const *servers, size_t n, int timeout_ms,
    unsigned nthreads, char *err, size_t errlen)
{
	struct mc_client *mc;
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
	if (mc_behaviours(mc->root) < 0) {
		snprintf(err, errlen, "memcached: cannot set behaviours");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if (mc_parse_server(servers[i], mc->servers[i].host,
		    sizeof(mc->servers[i].host), &port) < 0) {
			snprintf(err, errlen, "memcached: bad server \"%s\"",
			    servers[i]);
			goto fail;
		}
		mc->servers[i].port = port;
		{
			struct addrinfo hints;
			char ps[8];
			int g;

			memset(&hints, 0, sizeof(hints));
			hints.ai_socktype = SOCK_STREAM;
			hints.ai_flags = AI_NUMERICSERV;
			snprintf(ps, sizeof(ps), "%u", (unsigned)port);
			if ((g = getaddrinfo(mc->servers[i].host, ps, &hints,
			    &mc->servers[i].ai)) != 0) {
				mc->servers[i].ai = NULL;
				snprintf(err, errlen, "memcached: cannot resolve "
				    "server \"%s\": %s", servers[i], gai_strerror(g));
				goto fail;
			}
		}
		if (memcached_server_add(mc->root, mc->servers[i].host, port) !=
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
		t->conns = calloc(n, sizeof(*t->conns));
		if (t->conns == NULL) {
			snprintf(err, errlen, "memcached: out of memory");
			goto fail;
		}
		for (size_t k = 0; k < n; k++)
			t->conns[k].fd = -1;
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

void
mc_client_set_check(struct mc_client *mc, mc_check_fn fn, void *arg)
{
	if (mc == NULL)
		return;
	mc->check = fn;
	mc->check_arg = arg;
}

void
mc_client_set_seal(struct mc_client *mc, mc_seal_fn fn, void *arg)
{
	if (mc == NULL)
		return;
	mc->seal = fn;
	mc->seal_arg = arg;
}

int
mc_client_server_of(const struct mc_client *mc, const char *key,
    size_t klen)
{
	if (mc == NULL || key == NULL || klen == 0)
		return -1;
	return mc_server_index(mc, key, klen);
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
    uint64_t num, int on)
{
	struct mc_job *j;
	int64_t now;
	uint64_t id;
	int si;
	bool down;

	if (mc == NULL || key == NULL || klen == 0 || klen > MC_KEY_MAX) {
		free(own);
		return MC_NOJOB;
	}
	now = mc_now_ms();
	if (on >= 0 && (unsigned)on >= mc->nservers) {
		free(own);
		return MC_NOJOB;
	}
	si = on >= 0 ? on : mc_server_index(mc, key, klen);
	down = mc_server_dead(mc, si, now);
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
	j->si = si;
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
	return mc_submit(mc, MC_OP_GET, key, klen, NULL, 0, 0, cookie, NULL, 0, -1);
}

uint64_t
mc_client_set(struct mc_client *mc, const char *key, size_t klen,
    const void *val, size_t vlen, uint32_t ttl_s, void *cookie)
{
	if (val == NULL && vlen != 0)
		return MC_NOJOB;
	return mc_submit(mc, MC_OP_SET, key, klen, val, vlen, ttl_s, cookie,
	    NULL, 0, -1);
}

uint64_t
mc_client_set_take(struct mc_client *mc, const char *key, size_t klen,
    void *val, size_t vlen, uint32_t ttl_s, void *cookie)
{
	if (val == NULL)
		return MC_NOJOB;
	return mc_submit(mc, MC_OP_SET, key, klen, val, vlen, ttl_s, cookie,
	    val, 0, -1);
}

uint64_t
mc_client_delete(struct mc_client *mc, const char *key, size_t klen,
    void *cookie)
{
	return mc_submit(mc, MC_OP_DELETE, key, klen, NULL, 0, 0, cookie, NULL, 0, -1);
}

uint64_t
mc_client_incr(struct mc_client *mc, const char *key, size_t klen,
    uint64_t initial, void *cookie)
{
	return mc_submit(mc, MC_OP_INCR, key, klen, NULL, 0, 0, cookie, NULL,
	    initial, -1);
}

uint64_t
mc_client_on(struct mc_client *mc, unsigned server, enum mc_op op,
    const char *key, size_t klen, void *val, size_t vlen, uint64_t num,
    void *cookie)
{
	if (op == MC_OP_SET && val == NULL)
		return MC_NOJOB;
	if (mc == NULL || server > INT_MAX) {
		free(val);
		return MC_NOJOB;
	}
	return mc_submit(mc, op, key, klen, val, vlen, 0, cookie,
	    op == MC_OP_SET ? val : NULL, num, (int)server);
}

unsigned
mc_client_nservers(const struct mc_client *mc)
{
	return mc != NULL ? mc->nservers : 0;
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
		out[k].check = j->check;
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
		for (unsigned k = 0; k < mc->threads[i].nbusy; k++)
			if (mc->threads[i].busy[k]->id == id) {
				/* Its thread frees it when the call returns. */
				mc->threads[i].busy[k]->cancelled = true;
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

void
mc_client_set_check(struct mc_client *mc, mc_check_fn fn, void *arg)
{
	(void)mc;
	(void)fn;
	(void)arg;
}

void
mc_client_set_seal(struct mc_client *mc, mc_seal_fn fn, void *arg)
{
	(void)mc;
	(void)fn;
	(void)arg;
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

uint64_t
mc_client_on(struct mc_client *mc, unsigned server, enum mc_op op,
    const char *key, size_t klen, void *val, size_t vlen, uint64_t num,
    void *cookie)
{
	(void)mc;
	(void)server;
	(void)op;
	(void)key;
	(void)klen;
	(void)vlen;
	(void)num;
	(void)cookie;
	free(val);
	return MC_NOJOB;
}

unsigned
mc_client_nservers(const struct mc_client *mc)
{
	(void)mc;
	return 0;
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
