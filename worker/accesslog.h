/*
 * accesslog.h - one line per request, Squid native or combined format.
 *
 * Lines are collected in a per-worker buffer and written with one
 * write(2) when it fills or when accesslog_flush() runs (the worker
 * calls it each time its loop is about to sleep, and at exit), so under
 * load logging costs far less than a syscall per request.  A failed write (disk full, /dev/full) drops the lines
 * and counts them; it never blocks or kills the worker.
 */
#ifndef SLUICE_ACCESSLOG_H
#define SLUICE_ACCESSLOG_H

#include <stdint.h>
#include <stddef.h>
#include "conf/conf.h"

struct accesslog;

struct accesslog_entry {
	int64_t start_ms;		/* wall clock, ms since the epoch */
	int64_t elapsed_ms;
	const char *client;		/* "127.0.0.1" */
	const char *code;		/* "TCP_MISS", "TCP_DENIED", "TCP_TUNNEL", "NONE" */
	int status;
	uint64_t bytes;			/* bytes sent to the client */
	const char *method; size_t method_len;
	const char *url; size_t url_len;
	int http_minor;			/* request version 1.x */
	const char *hier;		/* "HIER_DIRECT", "HIER_NONE" */
	const char *peer;		/* "127.0.0.1" or "-" */
	const char *ctype; size_t ctype_len;
	const char *referer; size_t referer_len;
	const char *ua; size_t ua_len;
	const char *rule;		/* URL filter: the deciding rule of a denial, or NULL */
	const char *category;		/* ... and its category, or NULL */
};

/* path NULL or "" gives a log that discards everything. */
struct accesslog *accesslog_open(const char *path, enum log_format fmt);
int accesslog_reopen(struct accesslog *l);
void accesslog_write(struct accesslog *l, const struct accesslog_entry *e);
/* Returns how many lines were dropped since the last call. */
uint64_t accesslog_flush(struct accesslog *l);
void accesslog_close(struct accesslog *l);

/* Escape for a log field: bytes < 0x20, 0x7f, >= 0x80, '"' and '\\'
 * become \xHH; at most max source bytes.  Returns the length written. */
size_t accesslog_escape(char *dst, size_t dstlen, const char *src, size_t n);

#endif
