/*
 * log.c - the error log of sluice: syslog, stderr or a file.
 *
 * What: formats one line per message and hands it to the current
 * target.  A file or stderr line reads
 *   "2026/11/27 05:40:01 [error] 1234: message"
 * syslog gets "message" (syslog adds time, ident and pid itself).
 *
 * Assumes: single-threaded callers (the master, and each worker's loop);
 * never called from a signal handler.  After fork() a child simply
 * inherits the target; the pid in each line is read per message.
 *
 * Why this way: the log is the one place every process writes to, so it
 * must never stop a process.  A line is written with a single write(2)
 * on an O_APPEND descriptor (whole lines from concurrent workers do not
 * interleave), its result is ignored (a full disk or /dev/full drops the
 * line: HOSTILE F14), and nothing is buffered or fsync'ed.  Control
 * bytes in a message become '?' so a peer-supplied string cannot forge
 * log lines.  The module state is the one static struct `lg` below; it
 * is the single mutable global allowed here (log.h has no handle so
 * every file can log without threading one through).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

enum log_kind { LOGK_STDERR, LOGK_SYSLOG, LOGK_FILE };

#define LOG_LINE_MAX 2048	/* longer messages are truncated */

static struct {
	enum log_kind kind;
	int fd;			/* stderr or the file; -1 for syslog */
	char *path;		/* file target, for log_reopen() */
	char ident[32];
	int max;		/* highest level written */
	bool max_set;		/* log_set_level() overrides SLUICE_DEBUG */
} lg = { .kind = LOGK_STDERR, .fd = STDERR_FILENO, .max = LOG_INFO };

static const char *const level_names[] = {
	"emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
};

static int
log_open_file(const char *path)
{
	/* O_NONBLOCK matters for a FIFO target; regular files ignore it.
	 * O_NOFOLLOW: the log is opened as root, in a folder the run user
	 * may own: a symlink planted there must not be followed. */
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOCTTY | O_NONBLOCK | O_NOFOLLOW, 0640);
}

/* Forget the current target (leaves stderr open: it is not ours). */
static void
log_drop_target(void)
{
	if (lg.kind == LOGK_SYSLOG)
		closelog();
	else if (lg.kind == LOGK_FILE && lg.fd >= 0)
		close(lg.fd);
	free(lg.path);
	lg.path = NULL;
	lg.kind = LOGK_STDERR;
	lg.fd = STDERR_FILENO;
}

int
log_open(const char *target, const char *ident)
{
	const char *dbg = getenv("SLUICE_DEBUG");
	char *path = NULL;
	int fd = -1;

	if (!lg.max_set)
		lg.max = (dbg && strcmp(dbg, "1") == 0) ? LOG_DEBUG : LOG_INFO;
	if (target == NULL)
		target = "stderr";
	/* Open the new target first: on failure the old one stays. */
	if (strcmp(target, "syslog") != 0 && strcmp(target, "stderr") != 0) {
		if ((path = strdup(target)) == NULL)
			return -1;
		if ((fd = log_open_file(path)) < 0) {
			int e = errno;
			free(path);
			errno = e;
			return -1;
		}
	}
	log_drop_target();
	snprintf(lg.ident, sizeof(lg.ident), "%s", ident ? ident : "sluice");
	if (path) {
		lg.kind = LOGK_FILE;
		lg.fd = fd;
		lg.path = path;
	} else if (strcmp(target, "syslog") == 0) {
		lg.kind = LOGK_SYSLOG;
		lg.fd = -1;
		openlog(lg.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
	return 0;
}

int
log_reopen(void)
{
	int fd;

	if (lg.kind != LOGK_FILE)
		return 0;
	if ((fd = log_open_file(lg.path)) < 0)
		return -1;	/* keep writing to the old file */
	close(lg.fd);
	lg.fd = fd;
	return 0;
}

void
log_close(void)
{
	log_drop_target();
}

void
log_set_level(int max)
{
	lg.max = max;
	lg.max_set = true;
}

void
log_vmsg(int level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t off = 0, start;
	int saved = errno, n;

	if (level > lg.max)
		return;
	if (level < LOG_EMERG || level > LOG_DEBUG)
		level = LOG_ERR;
	if (lg.kind != LOGK_SYSLOG) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		off = strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S ", &tm);
		n = snprintf(line + off, sizeof(line) - off, "[%s] %ld: ",
		    level_names[level], (long)getpid());
		if (n > 0)
			off += (size_t)n;
	}
	start = off;
	errno = saved;		/* so "%m" reports the caller's errno */
	n = vsnprintf(line + off, sizeof(line) - off - 1, fmt, ap);
	if (n > 0)
		off += (size_t)n < sizeof(line) - off - 1 ?
		    (size_t)n : sizeof(line) - off - 2;
	for (size_t i = start; i < off; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	if (lg.kind == LOGK_SYSLOG) {
		line[off] = '\0';
		syslog(level, "%s", line);
	} else {
		line[off++] = '\n';
		/* One write per line; a failed or short write drops the line. */
		ssize_t w = write(lg.fd, line, off);
		(void)w;
	}
	errno = saved;
}

void
log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}
