/*
 * conn_io.c - moving bytes for the connection state machine: socket
 * reads and writes that remember edge-triggered readiness, and body
 * transfer between buffers with (de)chunking.  No state transitions
 * happen here: the functions report, conn.c decides.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/fault.h"
#include "worker/conn_int.h"

/* Read from fd into b.  >0 bytes, 0 EOF, -1 would block, -2 error (errno).
 * A short read drains the socket, so readiness is cleared without a
 * second read that would only say EAGAIN; that saves a syscall per
 * message.  Not when the peer's FIN was already reported (hup): the EOF
 * behind the data would otherwise never produce another edge. */
ssize_t
conn_io_read(int fd, struct buf *b, bool *ready, bool hup)
{
	size_t room;
	ssize_t n;

	if (!*ready)
		return -1;
	if (buf_room(b) == 0)
		buf_compact(b);
	if (buf_room(b) == 0)
		return -1;
	room = buf_room(b);
	do
		n = read(fd, buf_wptr(b), room);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		b->wpos += (size_t)n;
		if ((size_t)n < room && !hup)
			*ready = false;
		return n;
	}
	if (n == 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		*ready = false;
		return -1;
	}
	return -2;
}

/* Write from b to fd.  >=0 bytes written, -1 would block, -2 error. */
ssize_t
conn_io_write(int fd, struct buf *b, bool *ready)
{
	ssize_t n;

	if (!*ready || buf_len(b) == 0)
		return buf_len(b) == 0 ? 0 : -1;
	do
		n = send(fd, buf_rptr(b), buf_len(b), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n >= 0) {
		buf_consume(b, (size_t)n);
		if (buf_len(b) > 0)
			*ready = false;	/* short write: the socket buffer is full */
		return n;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		*ready = false;
		return -1;
	}
	return -2;
}

/* Append n bytes of body to out, chunk-framed when chunk is set. */
void
conn_io_emit(struct buf *out, const char *p, size_t n, bool chunk)
{
	if (chunk) {
		char hx[24];
		int l = snprintf(hx, sizeof(hx), "%zx\r\n", n);
		buf_append(out, hx, (size_t)l);
		buf_append(out, p, n);
		buf_append(out, "\r\n", 2);
	} else
		buf_append(out, p, n);
}

/* Room in out for body data, leaving space for chunk framing. */
size_t
conn_io_body_room(struct buf *out, bool chunk)
{
	size_t room;

	if (buf_room(out) < CHUNK_HDR_MAX + 1)
		buf_compact(out);
	room = buf_room(out);
	if (chunk)
		return room > CHUNK_HDR_MAX + 5 ? room - CHUNK_HDR_MAX - 5 : 0;
	return room;
}

/* Move framed body bytes from in to out.  rs-style state machine shared
 * by both directions: returns 1 when the body ended, 0 when more is
 * needed or out is full, -1 on a framing error. */
int
conn_io_move_body(struct buf *in, struct buf *out, int *mode, uint64_t *left,
    struct http_chunked *ch, bool chunk_out, bool *progress, uint64_t *moved)
{
	while (buf_len(in) > 0) {
		size_t room = conn_io_body_room(out, chunk_out), n;
		if (room == 0)
			return 0;
		if (*mode == RS_LENGTH) {
			n = buf_len(in);
			if (n > *left)
				n = (size_t)*left;
			if (n > room)
				n = room;
			conn_io_emit(out, buf_rptr(in), n, chunk_out);
			buf_consume(in, n);
			*left -= n;
			*moved += n;
			*progress = true;
			if (*left == 0)
				return 1;
		} else if (*mode == RS_CLOSE) {
			n = buf_len(in) < room ? buf_len(in) : room;
			conn_io_emit(out, buf_rptr(in), n, chunk_out);
			buf_consume(in, n);
			*moved += n;
			*progress = true;
		} else {	/* RS_CHUNKED */
			const char *data;
			size_t dlen, used, feed = buf_len(in) < room ? buf_len(in) : room;
			int e = http_chunked_parse(ch, buf_rptr(in), feed, &used, &data, &dlen);
			if (e < 0)
				return -1;
			if (e == HTTP_DATA) {
				conn_io_emit(out, data, dlen, chunk_out);
				*moved += dlen;
			}
			buf_consume(in, used);
			*progress = true;
			if (e == HTTP_DONE) {
				if (chunk_out)
					buf_append(out, "0\r\n\r\n", 5);
				return 1;
			}
			if (e == HTTP_MORE && used == 0)
				return 0;
		}
	}
	return 0;
}

bool
conn_io_relay(int from, struct buf *b, bool *rready, bool hup, int to, bool *wready,
    bool *eof, bool *err, uint64_t *count)
{
	bool progress = false;
	ssize_t n;

	if (!*eof && buf_room(b) > 0) {
		n = conn_io_read(from, b, rready, hup);
		if (n > 0)
			progress = true;
		else if (n == 0)
			*eof = progress = true;
		else if (n == -2)
			*err = true;
	}
	if (buf_len(b) > 0) {
		n = conn_io_write(to, b, wready);
		if (n > 0) {
			progress = true;
			if (count)
				*count += (uint64_t)n;
		} else if (n == -2)
			*err = true;
	}
	return progress;
}


/* Open the two pipes of a spliced tunnel; -1 (fds left at -1) when the
 * process is short of descriptors: the tunnel then relays via buffers. */
int
conn_io_pipes(int cu[2], int uc[2])
{
	if (fault_fail("pipe") || pipe2(cu, O_NONBLOCK | O_CLOEXEC) < 0) {
		cu[0] = cu[1] = -1;
		return -1;
	}
	if (pipe2(uc, O_NONBLOCK | O_CLOEXEC) < 0) {
		close(cu[0]);
		close(cu[1]);
		cu[0] = cu[1] = uc[0] = uc[1] = -1;
		return -1;
	}
	/* Larger pipes mean fewer splice calls per byte.  Best effort: the
	 * kernel caps pipe memory per user (pipe-user-pages-soft), and a
	 * pipe that stays at the default size still works. */
	(void)fcntl(cu[1], F_SETPIPE_SZ, SPLICE_PIPE_SZ);
	(void)fcntl(uc[1], F_SETPIPE_SZ, SPLICE_PIPE_SZ);
	return 0;
}

void
conn_io_pipes_close(int cu[2], int uc[2])
{
	for (int i = 0; i < 2; i++) {
		if (cu[i] >= 0)
			close(cu[i]);
		if (uc[i] >= 0)
			close(uc[i]);
		cu[i] = uc[i] = -1;
	}
}

/*
 * One step of a spliced tunnel direction: socket -> pipe -> socket, the
 * bytes never enter user space (a CONNECT tunnel carries TLS we do not
 * look at).  *inpipe counts bytes parked in the pipe.  An EAGAIN from
 * the filling splice means "socket drained" only when the pipe was
 * empty; with bytes parked it may mean "pipe full", and readiness must
 * be kept or the edge would be lost.
 */
bool
conn_io_splice(int from, const int p[2], size_t *inpipe, bool *rready, int to,
    bool *wready, bool *eof, bool *err, uint64_t *count)
{
	bool progress = false;
	ssize_t n;

	if (!*eof && *rready && *inpipe < SPLICE_CHUNK) {
		n = splice(from, NULL, p[1], NULL, SPLICE_CHUNK,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			*inpipe += (size_t)n;
			progress = true;
		} else if (n == 0) {
			*eof = progress = true;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (*inpipe == 0)
				*rready = false;
		} else if (errno != EINTR)
			*err = true;
	}
	if (*inpipe > 0 && *wready) {
		n = splice(p[0], NULL, to, NULL, *inpipe,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			*inpipe -= (size_t)n;
			progress = true;
			if (count)
				*count += (uint64_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			*wready = false;
		else if (n < 0 && errno != EINTR)
			*err = true;
	}
	return progress;
}
