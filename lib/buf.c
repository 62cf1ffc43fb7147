/*
 * buf.c - a bounded byte buffer with a read and a write position.
 *
 * What: the window a connection reads into and writes out of.  The
 * capacity is chosen once (buf_reserve, or by setting b->cap on an
 * empty struct) and storage is allocated on the first write; bytes are
 * consumed from the front and appended at the back.
 *
 * Assumes: one owner per buffer; a zeroed struct is a valid empty
 * buffer with no storage and no capacity.
 *
 * Why this way: a fixed window makes "buffer full" the backpressure
 * signal (stop reading the source until the sink drains), so a large
 * body never grows memory.  buf_release() frees the storage of an empty
 * buffer but keeps b->cap, so an idle keep-alive connection holds no
 * memory yet the next write knows what to allocate.  Rewinding both
 * positions when the buffer empties makes compaction (a memmove) rare.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/fault.h"

int
buf_reserve(struct buf *b, size_t cap)
{
	char *p;

	if (b->data != NULL && cap <= b->cap)
		return 0;
	if (cap == 0)
		return 0;	/* nothing to allocate; writes will fail */
	/* realloc(NULL, n) is malloc: one path for first use and growth. */
	if (fault_fail("buf_alloc") || (p = realloc(b->data, cap)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (b->data == NULL)
		b->rpos = b->wpos = 0;
	b->data = p;
	b->cap = cap;
	return 0;
}

/* Storage for a write: allocate b->cap bytes when released or new. */
static int
buf_ensure(struct buf *b)
{
	if (b->data != NULL)
		return 0;
	if (b->cap == 0) {
		errno = ENOBUFS;
		return -1;
	}
	return buf_reserve(b, b->cap);
}

void
buf_compact(struct buf *b)
{
	size_t len = buf_len(b);

	if (b->rpos == 0)
		return;
	if (len > 0)
		memmove(b->data, b->data + b->rpos, len);
	b->rpos = 0;
	b->wpos = len;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n > buf_len(b))
		n = buf_len(b);
	b->rpos += n;
	if (b->rpos == b->wpos)
		b->rpos = b->wpos = 0;
}

/* Make n bytes of room at the back if the window can hold them. */
static int
buf_make_room(struct buf *b, size_t n)
{
	if (buf_ensure(b) < 0)
		return -1;
	if (buf_room(b) >= n)
		return 0;
	if (n > b->cap - buf_len(b)) {
		errno = ENOBUFS;
		return -1;
	}
	buf_compact(b);
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_make_room(b, n) < 0)
		return -1;
	memcpy(b->data + b->wpos, p, n);
	b->wpos += n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t need;
	int n;

	if (buf_ensure(b) < 0)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(buf_wptr(b), buf_room(b), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	need = (size_t)n;
	if (need < buf_room(b)) {	/* fitted, with its NUL */
		b->wpos += need;
		return 0;
	}
	if (buf_make_room(b, need) < 0)
		return -1;
	if (need < buf_room(b)) {
		va_start(ap, fmt);
		vsnprintf(buf_wptr(b), buf_room(b), fmt, ap);
		va_end(ap);
	} else {
		/* Exactly room bytes: vsnprintf needs one more for the NUL,
		 * so format aside and copy. */
		char *tmp = malloc(need + 1);

		if (tmp == NULL)
			return -1;
		va_start(ap, fmt);
		vsnprintf(tmp, need + 1, fmt, ap);
		va_end(ap);
		memcpy(buf_wptr(b), tmp, need);
		free(tmp);
	}
	b->wpos += need;
	return 0;
}

void
buf_release(struct buf *b)
{
	if (b->data == NULL || buf_len(b) != 0)
		return;
	free(b->data);
	b->data = NULL;
	b->rpos = b->wpos = 0;	/* cap stays: the next write reallocates it */
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->cap = b->rpos = b->wpos = 0;
}

ssize_t
buf_read_fd(struct buf *b, int fd)
{
	ssize_t n;

	if (buf_ensure(b) < 0)
		return -1;
	if (buf_room(b) == 0 && b->rpos > 0)
		buf_compact(b);
	if (buf_room(b) == 0) {
		/* A full window must not look like EOF (a read of 0 bytes). */
		errno = ENOBUFS;
		return -1;
	}
	n = read(fd, buf_wptr(b), buf_room(b));
	if (n > 0)
		b->wpos += (size_t)n;
	return n;
}

ssize_t
buf_write_fd(struct buf *b, int fd)
{
	ssize_t n;

	if (buf_len(b) == 0)
		return 0;
	n = write(fd, buf_rptr(b), buf_len(b));
	if (n > 0)
		buf_consume(b, (size_t)n);
	return n;
}
