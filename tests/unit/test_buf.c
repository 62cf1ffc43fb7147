/*
 * test_buf.c - unit tests for lib/buf.c.
 *
 * Every function of buf.h, with the edges that matter to a connection:
 * a full window refuses writes without writing part of them, an
 * emptied buffer rewinds, released storage comes back on the next
 * write, and a full buffer never reads as EOF.  Pipes stand in for
 * sockets in the fd helpers.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/buf.h"

static void
reserve_allocates_and_grows(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_reserve(&b, 8), 0);
	assert_non_null(b.data);
	assert_int_equal(b.cap, 8);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(buf_room(&b), 8);
	assert_int_equal(buf_append(&b, "abcdef", 6), 0);
	/* growing keeps the content; a smaller request never shrinks */
	assert_int_equal(buf_reserve(&b, 32), 0);
	assert_int_equal(b.cap, 32);
	assert_memory_equal(buf_rptr(&b), "abcdef", 6);
	assert_int_equal(buf_reserve(&b, 4), 0);
	assert_int_equal(b.cap, 32);
	assert_int_equal(buf_len(&b), 6);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
}

static void
reserve_zero_allocates_nothing(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_reserve(&b, 0), 0);
	assert_null(b.data);
	/* no capacity at all: a write is refused, not a crash */
	assert_int_equal(buf_append(&b, "x", 1), -1);
	assert_int_equal(buf_printf(&b, "x"), -1);
}

static void
append_allocates_on_first_write(void **state)
{
	struct buf b = { .cap = 16 };

	(void)state;
	assert_null(b.data);
	assert_int_equal(buf_append(&b, "hello", 5), 0);
	assert_non_null(b.data);
	assert_int_equal(buf_len(&b), 5);
	assert_memory_equal(buf_rptr(&b), "hello", 5);
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_int_equal(buf_len(&b), 5);
	buf_free(&b);
}

static void
append_full_writes_nothing(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_reserve(&b, 8), 0);
	assert_int_equal(buf_append(&b, "12345", 5), 0);
	assert_int_equal(buf_append(&b, "6789", 4), -1);
	assert_int_equal(buf_len(&b), 5);
	assert_int_equal(buf_append(&b, "678", 3), 0);
	assert_int_equal(buf_room(&b), 0);
	assert_int_equal(buf_append(&b, "9", 1), -1);
	assert_memory_equal(buf_rptr(&b), "12345678", 8);
	buf_free(&b);
}

static void
append_compacts_when_needed(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_reserve(&b, 8), 0);
	assert_int_equal(buf_append(&b, "abcdefgh", 8), 0);
	buf_consume(&b, 5);
	assert_int_equal(b.rpos, 5);
	assert_int_equal(buf_room(&b), 0);
	/* 3 unread + 5 new = 8: fits only after moving "fgh" to the front */
	assert_int_equal(buf_append(&b, "12345", 5), 0);
	assert_int_equal(b.rpos, 0);
	assert_int_equal(buf_len(&b), 8);
	assert_memory_equal(buf_rptr(&b), "fgh12345", 8);
	buf_free(&b);
}

static void
consume_rewinds_when_empty(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_reserve(&b, 8), 0);
	assert_int_equal(buf_append(&b, "abcd", 4), 0);
	buf_consume(&b, 1);
	assert_int_equal(b.rpos, 1);
	assert_int_equal(b.wpos, 4);
	assert_memory_equal(buf_rptr(&b), "bcd", 3);
	buf_consume(&b, 3);
	assert_int_equal(b.rpos, 0);
	assert_int_equal(b.wpos, 0);
	assert_int_equal(buf_room(&b), 8);
	/* more than buffered is clamped, and rewinds too */
	assert_int_equal(buf_append(&b, "xy", 2), 0);
	buf_consume(&b, 100);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(b.rpos, 0);
	buf_free(&b);
}

static void
compact_moves_unread(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_reserve(&b, 8), 0);
	assert_int_equal(buf_append(&b, "abcdef", 6), 0);
	buf_consume(&b, 2);
	buf_compact(&b);
	assert_int_equal(b.rpos, 0);
	assert_int_equal(b.wpos, 4);
	assert_memory_equal(b.data, "cdef", 4);
	assert_int_equal(buf_room(&b), 4);
	buf_compact(&b);	/* already at the front: a no-op */
	assert_memory_equal(b.data, "cdef", 4);
	buf_free(&b);
}

static void
printf_fits_and_refuses(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_reserve(&b, 16), 0);
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "ok"), 0);
	assert_int_equal(buf_len(&b), 5);
	assert_memory_equal(buf_rptr(&b), "42-ok", 5);
	/* 12 more bytes do not fit in 11 of room: nothing is appended */
	assert_int_equal(buf_printf(&b, "%s", "123456789012"), -1);
	assert_int_equal(buf_len(&b), 5);
	assert_memory_equal(buf_rptr(&b), "42-ok", 5);
	buf_free(&b);
}

static void
printf_exact_fit_and_compaction(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_reserve(&b, 8), 0);
	/* exactly cap bytes: no room for vsnprintf's NUL, still accepted */
	assert_int_equal(buf_printf(&b, "%s", "abcdefgh"), 0);
	assert_int_equal(buf_len(&b), 8);
	assert_memory_equal(buf_rptr(&b), "abcdefgh", 8);
	buf_consume(&b, 6);
	/* needs the 6 consumed bytes back: compaction, then format */
	assert_int_equal(buf_printf(&b, "%05d", 7), 0);
	assert_int_equal(b.rpos, 0);
	assert_memory_equal(buf_rptr(&b), "gh00007", 7);
	assert_int_equal(buf_printf(&b, "z"), 0);
	assert_memory_equal(buf_rptr(&b), "gh00007z", 8);
	buf_free(&b);
}

static void
release_only_when_empty(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_reserve(&b, 16), 0);
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	buf_release(&b);
	assert_non_null(b.data);	/* holds data: kept */
	assert_int_equal(buf_len(&b), 3);
	buf_consume(&b, 3);
	buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 16);	/* remembered for the next write */
	assert_int_equal(buf_append(&b, "again", 5), 0);
	assert_non_null(b.data);
	assert_int_equal(b.cap, 16);
	assert_memory_equal(buf_rptr(&b), "again", 5);
	buf_free(&b);
	buf_release(&b);	/* released twice / freed: harmless */
	assert_null(b.data);
}

static void
free_drops_content(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_reserve(&b, 16), 0);
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(b.cap, 0);
}

static void
read_fd_reads_and_signals_full(void **state)
{
	struct buf b = { .cap = 8 };
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "0123456789", 10), 10);
	/* allocates on first read, reads only what fits */
	assert_int_equal(buf_read_fd(&b, p[0]), 8);
	assert_memory_equal(buf_rptr(&b), "01234567", 8);
	/* full: -1/ENOBUFS, never 0 (which would mean EOF) */
	errno = 0;
	assert_int_equal(buf_read_fd(&b, p[0]), -1);
	assert_int_equal(errno, ENOBUFS);
	/* full at the back but consumed at the front: compacts, then reads */
	buf_consume(&b, 4);
	assert_int_equal(buf_read_fd(&b, p[0]), 2);
	assert_int_equal(b.rpos, 0);
	assert_memory_equal(buf_rptr(&b), "456789", 6);
	/* EOF is passed through as 0 */
	close(p[1]);
	assert_int_equal(buf_read_fd(&b, p[0]), 0);
	assert_int_equal(buf_len(&b), 6);
	close(p[0]);
	buf_free(&b);
}

static void
read_fd_passes_errors(void **state)
{
	struct buf b = { .cap = 8 };
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	errno = 0;
	assert_int_equal(buf_read_fd(&b, p[0]), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(buf_len(&b), 0);
	close(p[0]);
	close(p[1]);
	buf_free(&b);
}

static void
write_fd_writes_and_consumes(void **state)
{
	struct buf b = { 0 };
	char out[16];
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(buf_reserve(&b, 16), 0);
	assert_int_equal(buf_write_fd(&b, p[1]), 0);	/* nothing to write */
	assert_int_equal(buf_append(&b, "response", 8), 0);
	assert_int_equal(buf_write_fd(&b, p[1]), 8);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(b.rpos, 0);
	assert_int_equal(read(p[0], out, sizeof(out)), 8);
	assert_memory_equal(out, "response", 8);
	close(p[0]);
	close(p[1]);
	buf_free(&b);
}

static void
write_fd_partial_keeps_rest(void **state)
{
	struct buf b = { 0 };
	static char big[256 * 1024];
	int p[2];
	ssize_t n;

	(void)state;
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = 'E';
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	assert_int_equal(buf_reserve(&b, sizeof(big)), 0);
	assert_int_equal(buf_append(&b, big, sizeof(big)), 0);
	/* a pipe holds far less than 256 KiB: a short write */
	n = buf_write_fd(&b, p[1]);
	assert_true(n > 0 && (size_t)n < sizeof(big));
	assert_int_equal(buf_len(&b), sizeof(big) - (size_t)n);
	assert_int_equal(buf_rptr(&b)[buf_len(&b) - 1], 'E');
	/* a full pipe: the error is passed through, nothing consumed */
	errno = 0;
	assert_int_equal(buf_write_fd(&b, p[1]), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(buf_len(&b), sizeof(big) - (size_t)n);
	close(p[0]);
	close(p[1]);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reserve_allocates_and_grows),
		cmocka_unit_test(reserve_zero_allocates_nothing),
		cmocka_unit_test(append_allocates_on_first_write),
		cmocka_unit_test(append_full_writes_nothing),
		cmocka_unit_test(append_compacts_when_needed),
		cmocka_unit_test(consume_rewinds_when_empty),
		cmocka_unit_test(compact_moves_unread),
		cmocka_unit_test(printf_fits_and_refuses),
		cmocka_unit_test(printf_exact_fit_and_compaction),
		cmocka_unit_test(release_only_when_empty),
		cmocka_unit_test(free_drops_content),
		cmocka_unit_test(read_fd_reads_and_signals_full),
		cmocka_unit_test(read_fd_passes_errors),
		cmocka_unit_test(write_fd_writes_and_consumes),
		cmocka_unit_test(write_fd_partial_keeps_rest),
	};

	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
