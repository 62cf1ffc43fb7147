/*
 * conn_int.h - the client connection and request structs, shared by the
 * state machine (conn.c) and the message builders (proxy_head.c).
 * Private to worker/.
 */
#ifndef SLUICE_CONN_INT_H
#define SLUICE_CONN_INT_H

#include "worker/conn.h"
#include "worker/cache_serve.h"

enum cstate {
	C_IDLE,			/* keep-alive: waiting for a request, no buffers */
	C_HEAD,			/* reading the request header block */
	C_RESOLVE,		/* waiting for DNS */
	C_CONNECT,		/* waiting for the origin's connect */
	C_FORWARD,		/* request and response flowing */
	C_TUNNEL,		/* CONNECT / WebSocket: raw bytes both ways */
	C_CACHE,		/* serving an entry of the cache (cache_serve.c) */
	C_FILL,			/* origin body into an entry; client served from it */
	C_FLUSH,		/* writing a last answer, then close */
	C_LINGER,		/* write side shut: drain input briefly, then close */
	C_PEEK,			/* CONNECT: 200 sent, reading the TLS ClientHello */
	C_MC,			/* shm miss: waiting for memcached (mc_tier.c) */
	C_CLOSED,
};

enum rqstate { RQ_LENGTH, RQ_CHUNKED, RQ_DONE };

/*
 * Why a request ended: one row per reason, and the row decides the
 * access log code and the counter that moves (STYLE 7).  Every request
 * that got as far as a parsed head ends through exactly one of them, so
 * it is logged exactly once.
 *   name         log code            counter
 */
#define CONN_ENDS(X) \
	X(DONE,        "TCP_MISS",         STAT_responses) \
	X(TUNNEL,      "TCP_TUNNEL",       STAT_tunnels) \
	X(DENIED,      "TCP_DENIED",       STAT_denied) \
	X(REFUSED,     "NONE",             STAT_errors_4xx) \
	X(FAILED,      "NONE",             STAT_errors_5xx) \
	X(TIMEOUT,     "TCP_MISS_ABORTED", STAT_timeouts) \
	X(CLIENT_GONE, "TCP_MISS_ABORTED", STAT_client_aborts) \
	X(ORIGIN_GONE, "TCP_MISS_ABORTED", STAT_origin_aborts)

enum conn_end {
#define CONN_END_ENUM(n, code, stat) END_##n,
	CONN_ENDS(CONN_END_ENUM)
#undef CONN_END_ENUM
};
enum rsstate { RS_HEAD, RS_LENGTH, RS_CHUNKED, RS_CLOSE, RS_DONE };

struct req {
	char *hdr;			/* copy of the request header block */
	size_t hdr_len;
	struct http_msg msg;		/* offsets into hdr */
	struct http_url url;		/* target authority + path */
	char authority[URL_HOST_MAX + 10];	/* Host value to send */
	char key[URL_HOST_MAX + 8];	/* pool key "host:port" */
	int port;
	bool is_connect;
	bool origin_form;		/* reverse listener, target sent as is */
	int max_forwards;		/* OPTIONS: value to send, -1 = copy as is */
	bool retried;

	struct dns_query *dq;
	struct dns_result addrs;
	size_t addr_next;		/* next address to try */
	int last_connect_errno;

	/* request body */
	enum rqstate rq;
	uint64_t rq_left;
	uint64_t rq_total;		/* body bytes (decoded) forwarded to the origin */
	struct http_chunked rq_ch;

	/* response */
	struct http_msg rmsg;		/* offsets into the upstream in buffer */
	enum rsstate rs;
	uint64_t rs_left;
	struct http_chunked rs_ch;
	bool chunk_out;			/* we chunk-encode the body to the client */
	bool head_sent;			/* response head queued for the client */
	bool rs_seen;			/* some response byte arrived */
	int status;
	char ctype[64];

	bool close_after;		/* close the client after this response */
	bool early;			/* response began before the request body ended */
	bool up_eof, shut_up, shut_client;	/* tunnel half-close state */
	int pipe_cu[2], pipe_uc[2];	/* spliced tunnel pipes, -1 when unused */
	size_t in_cu, in_uc;		/* bytes parked in each pipe */
	uint64_t start_ms;		/* wall clock */
	uint64_t bytes_out_start;	/* conn bytes_out when the request began */
	bool logged;			/* conn_end() ran: the log line is written */

	struct creq cs;			/* the cache's view of this request */
	const char *f_rule, *f_cat;	/* URL filter denial: rule, category (logs) */
	char *path_buf;			/* the resolved path when url.path points here */
	bool peeked;			/* CONNECT: ClientHello read, our 200 already sent */
	struct sockaddr_storage up_sa;	/* the origin, kept for the log line */
	bool up_seen;			/* up_sa is set: the origin was contacted */

	struct http_field *fields;	/* request fields */
	struct http_field *rfields;	/* response fields */
	unsigned fields_cap;
};

struct conn {
	struct worker *w;
	struct worker_listener *l;
	struct conn *next, *prev;	/* w->conns */
	int fd;
	struct ev_io io;
	struct ev_timer timer;
	struct ev_timer kick;		/* re-run after yielding the loop */
	uint64_t deadline;		/* ev_now() ms; the timer fires at or before */
	enum cstate state;
	bool rd_ready, wr_ready;	/* edge-triggered readiness */
	bool hup;			/* the peer's FIN/RST was reported */
	bool eof;			/* client sent FIN */
	bool in_run;			/* conn_run is on the stack */
	bool allowed;			/* peer is in `clients` */
	bool linger;			/* C_FLUSH ends in C_LINGER, not a close */
	uint8_t peer[16];
	char peer_str[48];
	struct buf in;			/* client -> sluice */
	struct buf out;			/* sluice -> client */
	uint64_t bytes_out;
	unsigned nreq;			/* requests started on this connection */
	struct req *req;
	struct upstream *up;
	struct conn *cw_next, *cw_prev;	/* w->cwait: waiting on a cache fill */
	bool cw_on;
	bool bg;			/* a background revalidation, no real client */
};

#define CHUNK_HDR_MAX	20		/* "%zx\r\n" + "\r\n" */

/* conn_io.c: read from fd into b: >0 bytes, 0 EOF, -1 would block, -2 error. */
ssize_t conn_io_read(int fd, struct buf *b, bool *ready, bool hup);
/* conn_io.c: write b to fd: >=0 bytes, -1 would block, -2 error. */
ssize_t conn_io_write(int fd, struct buf *b, bool *ready);
/* conn_io.c: append body bytes, chunk-framed when chunk is set. */
void conn_io_emit(struct buf *out, const char *p, size_t n, bool chunk);
/* conn_io.c: room in out for body data, leaving space for framing. */
size_t conn_io_body_room(struct buf *out, bool chunk);
/* conn_io.c: move framed body bytes (mode RS_LENGTH/RS_CHUNKED/RS_CLOSE)
 * from in to out: 1 at the end of the body, 0 for more, -1 bad framing. */
int conn_io_move_body(struct buf *in, struct buf *out, int *mode, uint64_t *left,
    struct http_chunked *ch, bool chunk_out, bool *progress, uint64_t *moved);
/* conn_io.c: one relay step of a tunnel direction. */
bool conn_io_relay(int from, struct buf *b, bool *rready, bool hup, int to,
    bool *wready, bool *eof, bool *err, uint64_t *count);

#define SPLICE_PIPE_SZ	(256 * 1024)	/* pipe size asked for a tunnel */
#define SPLICE_CHUNK	(256 * 1024)	/* bytes moved per splice call */
/* conn_io.c: the pipes of a spliced tunnel (client->upstream, back). */
int conn_io_pipes(int cu[2], int uc[2]);
void conn_io_pipes_close(int cu[2], int uc[2]);
/* conn_io.c: one zero-copy step of a tunnel direction. */
bool conn_io_splice(int from, const int p[2], size_t *inpipe, bool *rready,
    int to, bool *wready, bool *eof, bool *err, uint64_t *count);

/* conn.c, for cache_serve.c: the transitions it needs. */
void conn_error(struct conn *c, int status, const char *detail);
void conn_req_end(struct conn *c, enum conn_end why, int status,
    const char *raw, uint64_t queued);
void conn_set_deadline(struct conn *c, uint64_t ms);
void conn_start_upstream(struct conn *c);
/* The origin side is finished: pool the connection (when reuse and it
 * is clean) or close it. */
void conn_up_done(struct conn *c, bool reuse);
/* Run c again on the next loop iteration. */
void conn_kick_now(struct conn *c);
/* Writing to the client failed while serving from the cache. */
void conn_cache_client_gone(struct conn *c);
/* The cache-served response is out: log it, keep-alive or close. */
void conn_cache_finish(struct conn *c);
/* A short local answer (PURGE): status, one line of text, then close. */
void conn_answer(struct conn *c, int status, const char *text);
/* Start a background revalidation of c's request (stale-while-
 * revalidate): a connection of its own whose "client" is a socket pair
 * that carries the request and then goes away.  0 or -1. */
int conn_background(struct conn *c);
/* cache_serve.c: take c off the worker's list of fill waiters. */
void conn_cache_wait_remove(struct conn *c);

/* proxy_route.c: check a parsed request (listener, client ACL, method,
 * target, body framing) and fill in r->url, authority, key and rq.
 * Returns 0, or the status to answer with and a one-sentence *detail. */
int proxy_route(struct conn *c, const char **detail);
enum { ROUTE_OK = 0, ROUTE_BLOCKED, ROUTE_SELF };
/* proxy_route() result: OPTIONS with Max-Forwards 0, sluice answers. */
#define ROUTE_ANSWER_OPTIONS 200
/* proxy_route.c: may sluice connect to sa (checked after DNS)? */
int proxy_route_dest(const struct worker *w, const struct sockaddr *sa);

/* proxy_head.c: serialize the request for the origin into out. */
int proxy_head_request(struct conn *c, struct buf *out);
/* proxy_head.c: serialize the response head for the client into out. */
int proxy_head_response(struct conn *c, const char *rbuf, struct buf *out);
/* proxy_head.c: does a Via field of the request name us? */
bool proxy_head_via_loop(const struct conn *c);
/* proxy_head.c: value of the first request field with id, or NULL. */
const char *proxy_head_field(const struct req *r, int id, size_t *len);
/* proxy_head.c: the access log line of the finished request.  raw is the
 * buffer the request's offsets point into (r->hdr, or the unparsed input
 * for a head that failed; NULL when nothing of it is known); queued
 * counts bytes of our answer not yet written. */
void proxy_head_log(struct conn *c, int status, const char *code,
    const char *raw, uint64_t queued);

/* conn_filter.c: decide c's routed request; true when it was answered
 * (denied) or moved on to C_PEEK. */
bool conn_filter_request(struct conn *c);
/* conn_filter.c: one step of C_PEEK; the peek timed out. */
bool conn_filter_peek_step(struct conn *c);
void conn_filter_peek_timeout(struct conn *c);

#endif
