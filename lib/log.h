/*
 * log.h - the one logging facility of sluice (master and workers).
 *
 * Level policy (STYLE 14):
 *   LOG_ERR     something failed that an operator must act on (cannot bind,
 *               config rejected on reload, worker died on a signal).
 *   LOG_WARNING a request or peer misbehaved in a way worth noticing, or
 *               a resource ran short (EMFILE, log write dropped).
 *   LOG_NOTICE  lifecycle: started, reloading, generation N up, stopping.
 *   LOG_INFO    per-connection detail that is not an error (off by default
 *               in syslog filters; always shown with -d).
 *   LOG_DEBUG   developer tracing; compiled in, enabled with SLUICE_DEBUG=1.
 *
 * fatal() is for the environment (cannot bind, cannot open the pidfile):
 * log once, exit(1).  Bugs are assert()/abort(): the master respawns the
 * worker.  Library-like code (lib/, conf/, shm/, parsers) never logs; it
 * returns an error and the caller that gives up logs once.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>
#include <syslog.h>

/* Where error-level messages go: "syslog", "stderr" or a file path. */
int log_open(const char *target, const char *ident);
/* Reopen a file target (SIGUSR1); keeps the old fd when reopen fails. */
int log_reopen(void);
void log_close(void);
/* Messages whose level is above max are dropped (default LOG_INFO). */
void log_set_level(int max);

void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);

#define log_err(...)    log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  log_msg(LOG_DEBUG, __VA_ARGS__)

/* Log at LOG_ERR and exit(1).  For the environment, not for bugs. */
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
