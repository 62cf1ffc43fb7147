/*
 * master_daemon.c - becoming a daemon: pidfile, detaching, privileges,
 * and `sluice -s` (signalling the running instance).
 *
 * What and why:
 * - The pidfile is locked with flock(2), not fcntl(2): a flock lock
 *   belongs to the open file description, so it survives the two
 *   daemonizing forks (the parents _exit, the grandchild keeps the fd)
 *   and is shared by the workers.  The lock, not the pid in the file,
 *   says whether an instance runs; a stale file never blocks a start.
 *   Workers inherit the locked fd on purpose: while orphan workers of a
 *   killed master still hold the listening sockets, a new master
 *   refuses to start (HOSTILE F4).
 * - The pidfile stays root-owned after the privilege drop, so at exit
 *   the master may not be allowed to unlink it (e.g. in /run); it then
 *   empties it, and an empty pidfile reads as "no running instance".
 * - Detaching: fork, setsid, fork; the first parent waits on a pipe
 *   until the daemon reports that startup finished (pidfile written,
 *   workers forked), so `sluice && cat pidfile` works and a late
 *   startup failure still gives a non-zero exit status.
 * - Privilege drop: setgroups, setgid, setuid in that order, then
 *   verified (getres[ug]id, and setuid(0) must fail), then
 *   PR_SET_NO_NEW_PRIVS (HOSTILE "privilege drop after binding").
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "master/master.h"

/* The pid written in an open pidfile, 0 when empty or garbage. */
static long
pidfile_read_fd(int fd)
{
	char b[32];
	ssize_t n = pread(fd, b, sizeof(b) - 1, 0);
	char *end;
	long pid;

	if (n <= 0)
		return 0;
	b[n] = '\0';
	pid = strtol(b, &end, 10);
	/* pid_t is 32 bits: 4294967295 must not become kill(-1, ...). */
	if (end == b || pid <= 0 || pid > INT_MAX ||
	    (*end != '\n' && *end != '\0'))
		return 0;
	return pid;
}

/* Is pid the master of this pidfile?  Only the master holds it open for
 * writing (workers hold the read-only lock descriptor): look for a
 * descriptor of pid on the same inode whose access mode is O_RDWR.  This
 * keeps -s from signalling a reused pid or a pid planted in the file. */
static bool
pidfile_is_master(long pid, int fd)
{
	struct stat want, st;
	char dir[64], path[512], line[128];
	DIR *d;
	struct dirent *e;
	bool found = false;

	if (fstat(fd, &want) < 0)
		return false;
	snprintf(dir, sizeof(dir), "/proc/%ld/fd", pid);
	if ((d = opendir(dir)) == NULL)
		return false;
	while (!found && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) < 0 || st.st_dev != want.st_dev ||
		    st.st_ino != want.st_ino)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fdinfo/%s", pid, e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "flags:", 6) == 0 &&
			    (strtol(line + 6, NULL, 8) & O_ACCMODE) == O_RDWR)
				found = true;
		fclose(f);
	}
	closedir(d);
	return found;
}

int
master_daemon_pidfile_lock(struct master *m, const char *path, char *err,
    size_t errlen)
{
	int fd;

	/* O_NOFOLLOW: root must not be tricked into truncating a symlink's target. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
	    0644);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open pidfile %s: %s", path,
		    strerror(errno));
		return -1;
	}
	/* The lock is held on a second, read-only description of the same
	 * file: workers inherit that one (a new master must not start beside
	 * orphan workers, F4) but cannot write a pid into the file; the
	 * writable descriptor stays in the master alone. */
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	int lfd = open(self, O_RDONLY | O_CLOEXEC);
	if (lfd < 0) {
		snprintf(err, errlen, "cannot reopen pidfile %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		long pid = pidfile_read_fd(fd);

		close(lfd);
		close(fd);
		if (e == EWOULDBLOCK)
			snprintf(err, errlen, "another instance is running"
			    " (pid %ld, pidfile %s)", pid, path);
		else
			snprintf(err, errlen, "cannot lock pidfile %s: %s",
			    path, strerror(e));
		return -1;
	}
	m->pid_fd = fd;
	m->lock_fd = lfd;
	if ((m->pid_path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int
master_daemon_pidfile_write(struct master *m)
{
	char b[32];
	int n = snprintf(b, sizeof(b), "%ld\n", (long)getpid());

	if (ftruncate(m->pid_fd, 0) < 0 ||
	    pwrite(m->pid_fd, b, (size_t)n, 0) != n)
		return -1;
	return 0;
}

void
master_daemon_pidfile_remove(struct master *m)
{
	if (m->pid_fd < 0)
		return;
	/* Unlink while still holding the lock, so a starting instance
	 * never locks the file we are about to remove. */
	if (unlink(m->pid_path) < 0) {
		log_debug("cannot remove pidfile %s: %m; emptying it",
		    m->pid_path);
		if (ftruncate(m->pid_fd, 0) < 0)
			log_warn("cannot empty pidfile %s: %m", m->pid_path);
	}
	close(m->pid_fd);
	m->pid_fd = -1;
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	m->lock_fd = -1;
	free(m->pid_path);
	m->pid_path = NULL;
}

int
master_daemon_detach(void)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		fatal("cannot daemonize: pipe: %m");
	if ((pid = fork()) < 0)
		fatal("cannot daemonize: fork: %m");
	if (pid > 0) {
		/* The command the user ran: wait for "started" or EOF. */
		ssize_t n;

		close(p[1]);
		/* Reap the intermediate child: it exits right after forking. */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1 && c == 'R')
			_exit(0);
		fprintf(stderr, "sluice: startup failed; see the error log\n");
		_exit(1);
	}
	close(p[0]);
	if (setsid() < 0)
		fatal("cannot daemonize: setsid: %m");
	/* Fork again so the daemon is no session leader and can never
	 * acquire a controlling terminal. */
	if ((pid = fork()) < 0)
		fatal("cannot daemonize: fork: %m");
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		fatal("cannot daemonize: chdir /: %m");
	return p[1];
}

void
master_daemon_ready(int fd)
{
	ssize_t n = write(fd, "R", 1);

	(void)n;	/* if the parent is gone, nobody waits for it */
	close(fd);
}

void
master_daemon_devnull(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

int
master_daemon_drop(const struct sluice_conf *c, const char *logfile,
    char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;
	uid_t uid, ru, eu, su;
	gid_t gid, rg, eg, sg;

	errno = 0;
	if ((pw = getpwnam(c->user)) == NULL) {
		snprintf(err, errlen, "user: unknown user \"%s\"%s%s", c->user,
		    errno ? ": " : "", errno ? strerror(errno) : "");
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (c->group != NULL && c->group[0] != '\0') {
		errno = 0;
		if ((gr = getgrnam(c->group)) == NULL) {
			snprintf(err, errlen, "group: unknown group \"%s\"%s%s",
			    c->group, errno ? ": " : "",
			    errno ? strerror(errno) : "");
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (logfile != NULL) {
		/* O_NOFOLLOW + fchown: never hand over a symlink's target. */
		int fd = open(logfile, O_WRONLY | O_APPEND | O_NOFOLLOW |
		    O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		struct stat st;

		/* Only a plain file with one name: never a device such as
		 * /dev/null, nor a hard link to somebody else's file. */
		if (fd >= 0 && fstat(fd, &st) == 0 &&
		    (!S_ISREG(st.st_mode) || st.st_nlink != 1))
			log_notice("error log %s is not a plain file; not giving"
			    " it to user %s", logfile, c->user);
		else if (fd < 0 || fchown(fd, uid, gid) < 0)
			log_warn("cannot give error log %s to user %s: %m",
			    logfile, c->user);
		if (fd >= 0)
			close(fd);
	}
	if (uid == 0)
		log_warn("user \"%s\" is root: running without dropping"
		    " privileges", c->user);
	/* Order matters: groups and gid can only change while still root. */
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		snprintf(err, errlen, "cannot switch to user \"%s\": %s",
		    c->user, strerror(errno));
		return -1;
	}
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != uid || eu != uid || su != uid ||
	    rg != gid || eg != gid || sg != gid ||
	    (uid != 0 && setuid(0) == 0)) {
		snprintf(err, errlen, "privilege drop to \"%s\" did not take"
		    " effect", c->user);
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s",
		    strerror(errno));
		return -1;
	}
	log_info("running as user %s (uid %ld, gid %ld)", c->user, (long)uid,
	    (long)gid);
	return 0;
}

static const struct {
	const char *name;
	int sig;
} signames[] = {
	{ "reload", SIGHUP }, { "stop", SIGTERM }, { "quit", SIGQUIT },
	{ "reopen", SIGUSR1 },
};

int
master_daemon_signal(const char *pidfile, const char *signame)
{
	int sig = 0, fd;
	long pid;

	for (size_t i = 0; i < sizeof(signames) / sizeof(signames[0]); i++)
		if (strcmp(signame, signames[i].name) == 0)
			sig = signames[i].sig;
	if (sig == 0) {
		fprintf(stderr, "sluice: unknown signal \"%s\" (reload, stop,"
		    " quit or reopen)\n", signame);
		return 1;
	}
	if ((fd = open(pidfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		fprintf(stderr, "sluice: no running instance (pidfile %s: %s)\n",
		    pidfile, strerror(errno));
		return 1;
	}
	pid = pidfile_read_fd(fd);
	/* Nobody holds the lock: whatever pid the file names is stale
	 * (possibly reused by an unrelated process: do not signal it). */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		if (pid > 0)
			fprintf(stderr, "sluice: no running instance (pidfile"
			    " %s: stale, pid %ld is not sluice)\n", pidfile, pid);
		else
			fprintf(stderr, "sluice: no running instance (pidfile"
			    " %s: empty)\n", pidfile);
		return 1;
	}
	if (pid > 0 && !pidfile_is_master(pid, fd)) {
		close(fd);
		fprintf(stderr, "sluice: pid %ld in pidfile %s is not the sluice"
		    " master holding it; not signalling it\n", pid, pidfile);
		return 1;
	}
	close(fd);
	if (pid <= 0) {
		/* Locked but empty: an instance is starting up right now. */
		fprintf(stderr, "sluice: pidfile %s holds no pid yet; is sluice"
		    " starting?\n", pidfile);
		return 1;
	}
	if (kill((pid_t)pid, sig) < 0) {
		fprintf(stderr, "sluice: cannot signal pid %ld (pidfile %s): %s\n",
		    pid, pidfile, strerror(errno));
		return 1;
	}
	return 0;
}
