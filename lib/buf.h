/*
 * buf.h - a byte buffer with a read and a write position.
 *
 * Memory is allocated on first write and released by buf_release() when
 * the buffer is empty, so an idle connection holds no buffer at all.
 * The capacity is fixed at allocation: a buffer is a bounded window, and
 * a full buffer is the backpressure signal (stop reading the source).
 */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stddef.h>
#include <sys/types.h>

struct buf {
	char *data;
	size_t cap;
	size_t rpos;		/* first unread byte */
	size_t wpos;		/* one past the last written byte */
};

static inline size_t buf_len(const struct buf *b) { return b->wpos - b->rpos; }
static inline char *buf_rptr(const struct buf *b) { return b->data + b->rpos; }
static inline char *buf_wptr(const struct buf *b) { return b->data + b->wpos; }
static inline size_t buf_room(const struct buf *b) { return b->cap - b->wpos; }

/* Make sure the buffer has storage of cap bytes; 0 or -1 (ENOMEM). */
int buf_reserve(struct buf *b, size_t cap);
/* Move unread bytes to the front so buf_room() is as large as it gets. */
void buf_compact(struct buf *b);
/* Consume n bytes; an emptied buffer rewinds to the start. */
void buf_consume(struct buf *b, size_t n);
/* Append n bytes; -1 when they do not fit (nothing is written then). */
int buf_append(struct buf *b, const void *p, size_t n);
/* Append formatted text; -1 when it does not fit. */
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Free the storage if empty (idle connections keep no memory). */
void buf_release(struct buf *b);
/* Free the storage unconditionally. */
void buf_free(struct buf *b);
/* read(2)/write(2) helpers: return what read/write returned. */
ssize_t buf_read_fd(struct buf *b, int fd);
ssize_t buf_write_fd(struct buf *b, int fd);

#endif
