/*
 * errpage.h - the short HTML answers sluice generates itself.
 *
 * Every answer names the status, says in one sentence what went wrong
 * and, where it helps, which URL it was about (HTML-escaped).  Nothing
 * from the request's credentials (Authorization, Cookie) is ever shown.
 */
#ifndef SLUICE_ERRPAGE_H
#define SLUICE_ERRPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include "lib/buf.h"

/* Reason phrase of a status we generate ("Bad Request"). */
const char *errpage_reason(int status);

/* Append a complete response (status line, headers, HTML body) to out.
 * detail: one sentence (plain text, escaped here); url may be NULL.
 * close adds "Connection: close".  Returns the body length, or -1 when
 * out has no room. */
int errpage_build(struct buf *out, int status, const char *detail,
    const char *url, size_t url_len, const char *hostname, bool close);

/* HTML-escape src[0..n) into dst (NUL-terminated, truncated to dstlen). */
size_t errpage_escape(char *dst, size_t dstlen, const char *src, size_t n);

#endif
