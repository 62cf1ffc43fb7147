/*
 * mc_client.h - the memcached client of the memcached tier: a small pool
 * of threads per worker does blocking memcached calls (sluice's own
 * strict binary-protocol I/O; libmemcached only maps keys to servers)
 * and reports completions through one eventfd that the worker's epoll
 * loop watches.
 *
 * Assumes: created in a worker after fork(), never in the master (the
 * threads and their connections must not cross fork).  Every
 * mc_client_* call except the threads' own work is made from the one
 * event-loop thread of that worker.  Keys are at most 250 bytes (the
 * memcached limit; the tier hashes long cache keys, mc_item.h).
 *
 * Why: the event loop must never block on memcached (HOSTILE F6-F8).
 * Submission never blocks (a bounded queue: full means "treat as a
 * miss"); a job that waited longer than timeout_ms in the queue is
 * completed as MC_TIMEOUT without touching the network; a server that
 * fails twice in a row is skipped for MC_CLIENT_RETRY_MS (circuit
 * breaker), and requests hashed to it complete at once with MC_DOWN.
 *
 * Built without libmemcached (configure --without-memcached):
 * mc_client_new() returns NULL with "tier off" in err, and every other
 * call accepts NULL and does nothing (submit returns MC_NOJOB).
 */
#ifndef SLUICE_MC_CLIENT_H
#define SLUICE_MC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* Submit failed: queue full, bad key or tier off.  Treat as a miss. */
#define MC_NOJOB UINT64_MAX
/* Jobs waiting for a thread, at most. */
#define MC_CLIENT_QUEUE_MAX 1024
/* Jobs of one key lane and server a thread sends at once (pipelined). */
#define MC_CLIENT_BATCH 32
/* Consecutive failures that open a server's circuit. */
#define MC_CLIENT_FAIL_LIMIT 2
/* How long an open circuit stays open before a request is let through. */
#define MC_CLIENT_RETRY_MS 2000

enum mc_op { MC_OP_GET, MC_OP_SET, MC_OP_DELETE, MC_OP_INCR };

enum mc_status {
	MC_OK,		/* get hit, set stored, delete done */
	MC_MISS,	/* get or delete: no such key */
	MC_TIMEOUT,	/* the server or the queue took longer than timeout_ms */
	MC_ERROR,	/* any other failure (connection, protocol, too big) */
	MC_DOWN,	/* the key's server is marked dead: not tried */
};

struct mc_done {
	void *cookie;		/* as given at submit */
	uint64_t id;		/* as returned by submit */
	enum mc_op op;
	enum mc_status status;
	void *value;		/* get + MC_OK: malloc'ed, the caller frees */
	size_t vlen;
	uint64_t num;		/* incr + MC_OK: the counter's new value */
	int check;		/* get + MC_OK: the check function's result
				   (0 when none is set) */
};

struct mc_client_stats {
	uint64_t hits, misses, stores, errors, timeouts;
	unsigned servers, servers_up;
};

struct mc_client;

/* Run by a client thread on each value a get returns, before the event
 * loop sees it (mc_done.check): the costly checks stay off the loop. */
typedef int (*mc_check_fn)(void *arg, const void *value, size_t len);
/* Run by a client thread on each value before it is set (in place; not
 * 0: the set fails with MC_ERROR, nothing is sent). */
typedef int (*mc_seal_fn)(void *arg, void *value, size_t len);

/*
 * servers: "host:port", "host" (port 11211) or "[v6]:port", as in
 * memcached.servers.  timeout_ms bounds connect, poll, send and receive;
 * nthreads 0 means 2.  NULL with a message in err on failure.
 */
struct mc_client *mc_client_new(const char *const *servers, size_t n,
    int timeout_ms, unsigned nthreads, char *err, size_t errlen);
/* The eventfd to watch for readability; -1 for NULL. */
int mc_client_fd(const struct mc_client *mc);
/* Set the check run on every value got (before the first job). */
void mc_client_set_check(struct mc_client *mc, mc_check_fn fn, void *arg);
/* Set the seal run on every value set (before the first job). */
void mc_client_set_seal(struct mc_client *mc, mc_seal_fn fn, void *arg);

/*
 * Submit: a job id > 0, or MC_NOJOB.  Never blocks.  The key and, for
 * set, the value are copied; the caller keeps its buffers.
 */
uint64_t mc_client_get(struct mc_client *mc, const char *key, size_t klen,
    void *cookie);
uint64_t mc_client_set(struct mc_client *mc, const char *key, size_t klen,
    const void *val, size_t vlen, uint32_t ttl_s, void *cookie);
/* As mc_client_set, but takes over val (malloc'ed; freed by the client
 * whatever happens, MC_NOJOB included): no copy. */
uint64_t mc_client_set_take(struct mc_client *mc, const char *key,
    size_t klen, void *val, size_t vlen, uint32_t ttl_s, void *cookie);
/* Add 1 to a counter item, creating it at `initial` when absent (num in
 * the completion: the new value). */
uint64_t mc_client_incr(struct mc_client *mc, const char *key, size_t klen,
    uint64_t initial, void *cookie);
uint64_t mc_client_delete(struct mc_client *mc, const char *key,
    size_t klen, void *cookie);
/* A job on server number `server` (as listed at mc_client_new), not on
 * the key's: op MC_OP_GET, MC_OP_SET (takes over val, as set_take; no
 * expiry), MC_OP_INCR (num: initial) or MC_OP_DELETE. */
uint64_t mc_client_on(struct mc_client *mc, unsigned server, enum mc_op op,
    const char *key, size_t klen, void *val, size_t vlen, uint64_t num,
    void *cookie);
unsigned mc_client_nservers(const struct mc_client *mc);

/*
 * Completions, at most max into out[]; call when the eventfd is readable
 * (it is drained here, and re-armed when more than max are waiting).
 */
size_t mc_client_done(struct mc_client *mc, struct mc_done *out,
    size_t max);
/* The caller gave up on job id: its completion is freed, never returned. */
void mc_client_cancel(struct mc_client *mc, uint64_t id);
void mc_client_stats(const struct mc_client *mc, struct mc_client_stats *st);
/*
 * The index (in the order given to mc_client_new) of the server key
 * hashes to, or -1.  For counters and tests.
 */
int mc_client_server_of(const struct mc_client *mc, const char *key,
    size_t klen);
/* Stops and joins the threads; pending jobs and completions are dropped. */
void mc_client_free(struct mc_client *mc);

#endif
