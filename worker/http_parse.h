/*
 * http_parse.h - strict, resumable HTTP/1.1 message parser (RFC 9112).
 *
 * Pure: no I/O, no malloc, no logging.  The caller accumulates the header
 * block of one message in one contiguous buffer and calls the parser
 * again with the longer buffer each time more bytes arrive; the parser
 * resumes from m->pos (byte-at-a-time state machine, state in the
 * message), so the cost is linear in the header size however the bytes
 * are split.  Every field is kept as offsets into that buffer.
 *
 * Strictness is a security property (see HOSTILE.md): anything that is
 * not exactly the RFC grammar is an error, never guessed at.  Errors map
 * to a status with http_err_status().
 */
#ifndef SLUICE_HTTP_PARSE_H
#define SLUICE_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum http_err {
	HTTP_OK = 0,		/* header block complete */
	HTTP_MORE = 1,		/* need more bytes */
	HTTP_DATA = 2,		/* chunked: a data span is returned */
	HTTP_DONE = 3,		/* chunked: last-chunk and trailers consumed */

	HTTP_E_REQUEST_LINE = -1,	/* malformed request line (400) */
	HTTP_E_METHOD = -2,		/* method too long (501) */
	HTTP_E_URI_TOO_LONG = -3,	/* request-target too long (414) */
	HTTP_E_VERSION = -4,		/* malformed HTTP-version (400) */
	HTTP_E_VERSION_UNSUPPORTED = -5,/* HTTP/2.0, HTTP/3.x ... (505) */
	HTTP_E_FIELD = -6,		/* malformed field line (400) */
	HTTP_E_OBS_FOLD = -7,		/* obs-fold (400 / 502) */
	HTTP_E_BARE_CR_LF = -8,		/* bare CR or lone LF (400 / 502) */
	HTTP_E_HEADER_TOO_BIG = -9,	/* header block over the limit (431) */
	HTTP_E_TOO_MANY_FIELDS = -10,	/* field count over the limit (431) */
	HTTP_E_CONTENT_LENGTH = -11,	/* invalid/duplicate/overflowing CL (400) */
	HTTP_E_TE_UNKNOWN = -12,	/* a transfer coding we do not implement (501) */
	HTTP_E_TE_BAD = -13,		/* TE not ending in chunked, chunked twice,
					   params on chunked, TE with CL (400) */
	HTTP_E_HOST = -14,		/* missing (1.1), duplicate or invalid Host (400) */
	HTTP_E_EXPECT = -15,		/* Expect other than one 100-continue (417) */
	HTTP_E_STATUS_LINE = -16,	/* malformed status line (502) */
	HTTP_E_CHUNK = -17,		/* bad chunk size/ext/CRLF/trailer (400 / 502) */
	HTTP_E_CHUNK_EXT_TOO_LONG = -18,/* chunk extensions over the limit (400) */
	HTTP_E_CONNECTION = -19,	/* Connection names a framing/routing field (400) */
};

/* Status to answer a client with for a request error (400, 414, 417,
 * 431, 501, 505), or 502 when the error is in an origin's response. */
int http_err_status(int err, bool in_response);
/* A short human description ("duplicate Content-Length"). */
const char *http_err_str(int err);

/* Well-known field ids, set by the parser from the (case-insensitive)
 * field name so that later code never compares names again. */
enum http_hdr_id {
	H_OTHER = 0,
	H_HOST, H_CONTENT_LENGTH, H_TRANSFER_ENCODING, H_CONNECTION,
	H_KEEP_ALIVE, H_PROXY_CONNECTION, H_PROXY_AUTHORIZATION,
	H_PROXY_AUTHENTICATE, H_TE, H_TRAILER, H_UPGRADE, H_EXPECT, H_VIA,
	H_X_FORWARDED_FOR, H_MAX_FORWARDS, H_USER_AGENT, H_REFERER,
	H_DATE, H_SERVER, H_CONTENT_TYPE,
	/* what the cache reads (shm/cache_policy.h names them again) */
	H_CACHE_CONTROL, H_PRAGMA, H_AUTHORIZATION, H_IF_NONE_MATCH,
	H_IF_MODIFIED_SINCE, H_IF_RANGE, H_RANGE, H_IF_MATCH,
	H_IF_UNMODIFIED_SINCE, H_ETAG, H_LAST_MODIFIED, H_EXPIRES, H_AGE,
	H_VARY, H_SET_COOKIE, H_CONTENT_RANGE, H_LOCATION, H_CONTENT_LOCATION,
};

/* Field flags. */
#define HF_HOP		0x01	/* hop-by-hop: never forwarded */
#define HF_NOMINATED	0x02	/* named in Connection: never forwarded */

struct http_field {
	uint32_t name_off;
	uint16_t name_len;
	uint16_t id;		/* enum http_hdr_id */
	uint32_t value_off;	/* OWS trimmed on both sides */
	uint32_t value_len;
	uint32_t flags;		/* HF_* */
};

enum http_method {
	M_OTHER = 0, M_GET, M_HEAD, M_POST, M_PUT, M_DELETE, M_CONNECT,
	M_OPTIONS, M_TRACE, M_PATCH,
};

/* How the body of a message is delimited (RFC 9112 6.3). */
enum http_body {
	BODY_NONE = 0,		/* no body */
	BODY_LENGTH,		/* content_length bytes */
	BODY_CHUNKED,		/* chunked transfer coding */
	BODY_CLOSE,		/* response: until the origin closes */
};

/* Message-level flags set by http_parse_*(). */
#define MF_CONN_CLOSE	0x0001	/* Connection: close (or 1.0 without keep-alive) */
#define MF_KEEP_ALIVE	0x0002	/* Connection: keep-alive seen */
#define MF_EXPECT_100	0x0004	/* Expect: 100-continue */
#define MF_UPGRADE_WS	0x0008	/* Upgrade: websocket + Connection: upgrade */
#define MF_HAS_TE	0x0010	/* a Transfer-Encoding field was present */
#define MF_HAS_CL	0x0020	/* a Content-Length field was present */
#define MF_MUST_CLOSE	0x0040	/* framing was faulty but usable: close after */

struct http_limits {
	size_t header_size;	/* max whole header block, bytes */
	size_t uri_size;	/* max request-target, bytes */
	unsigned max_fields;	/* <= capacity of the fields array */
};

struct http_msg {
	/* parser state: zero the struct (http_msg_init) before the first call */
	int state;
	size_t pos;		/* bytes of the buffer already consumed */
	size_t line_start;	/* offset of the line being parsed */
	size_t mark;		/* scratch offset */

	/* request line */
	enum http_method method;
	uint32_t method_off, method_len;
	uint32_t target_off, target_len;
	/* status line */
	int status;
	uint32_t reason_off, reason_len;
	/* both */
	uint8_t version_major, version_minor;

	struct http_field *fields;	/* caller-provided array */
	unsigned nfields;
	unsigned fields_cap;

	/* results (valid when HTTP_OK is returned) */
	size_t header_len;		/* bytes of the whole header block */
	uint32_t flags;			/* MF_* */
	enum http_body body;
	uint64_t content_length;	/* when body == BODY_LENGTH */
	int host_idx;			/* index of the Host field or -1 */
};

void http_msg_init(struct http_msg *m, struct http_field *fields, unsigned cap);

/* Parse a request header block (request line + fields + CRLF) from
 * buf[0..len).  Returns HTTP_OK, HTTP_MORE or an HTTP_E_*.  On HTTP_OK the
 * framing has been checked: body says how to read the body. */
int http_parse_request(struct http_msg *m, const char *buf, size_t len,
    const struct http_limits *lim);

/* Parse a response header block.  req_method and the status decide
 * BODY_NONE (HEAD, 1xx, 204, 304); CONNECT 2xx is BODY_NONE too. */
int http_parse_response(struct http_msg *m, const char *buf, size_t len,
    const struct http_limits *lim, enum http_method req_method);

/* Case-insensitive comparison of a field name/token. */
bool http_token_eq(const char *a, size_t alen, const char *b);

/* The chunked transfer-coding decoder (RFC 9112 7.1), resumable. */
struct http_chunked {
	int state;
	uint64_t remaining;	/* data bytes left in the current chunk */
	size_t ext_len;		/* extension bytes seen on this size line */
	size_t trailer_len;	/* trailer bytes seen */
	size_t size_digits;
};

void http_chunked_init(struct http_chunked *c);
/* Feed in[0..n).  *consumed is how many bytes were used.  Returns
 *   HTTP_DATA: (*data, *data_len) is a span of chunk data inside in;
 *              *consumed ends right after it.
 *   HTTP_MORE: all n bytes consumed, no data; feed more.
 *   HTTP_DONE: the last-chunk and trailer section ended; *consumed ends
 *              right after the final CRLF (pipelined bytes follow).
 *   HTTP_E_CHUNK / HTTP_E_CHUNK_EXT_TOO_LONG: malformed.
 * Extensions are validated and discarded; trailers are validated with the
 * field rules and discarded (RFC 9112 7.1.2), never merged. */
int http_chunked_parse(struct http_chunked *c, const char *in, size_t n,
    size_t *consumed, const char **data, size_t *data_len);

#endif
