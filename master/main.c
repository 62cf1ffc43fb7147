/*
 * main.c - the sluice command line.
 *
 *   sluice [-f FILE] [-d] [-t] [-V] [-h]
 *          [-s reload|stop|quit|reopen|stats] [--dump-directives]
 *
 * What: parses the options, loads and validates the configuration, and
 * either answers a one-shot request (-t, -V, -s, --dump-directives) or
 * hands the configuration to master_run().
 *
 * Assumes: nothing has been set up yet; the error log is opened by the
 * master, so everything here reports to stderr as "sluice: ...".
 *
 * `-s stats` is a plain HTTP client of the admin listener (GET /stats):
 * the counters live in the daemon's anonymous shared mapping, which no
 * other process can open, so asking a worker is the only way in.
 *
 * Why -V prints run-time library versions: a proxy is often run against
 * distribution libraries updated after it was built; the version the
 * loader actually linked (not the header it was compiled with) is what
 * matters in a bug report.  libconfig has no run-time version call, so
 * its header macros are printed.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <libconfig.h>
#include <openssl/crypto.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <idn2.h>
#include <xxhash.h>
#ifdef HAVE_MEMCACHED
#include <libmemcached/memcached.h>
#endif

#include "conf/conf.h"
#include "conf/filter.h"
#include "master/master.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/usr/local/etc"
#endif
#define DEFAULT_CONF SYSCONFDIR "/sluice/sluice.conf"

#define STATS_TIMEOUT_MS	2000		/* connect, and each wait after */
#define STATS_MAX		(16 << 20)	/* answer bytes we accept */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: sluice [-dhtV] [-f file] [-s reload|stop|quit|reopen|stats]"
	    " [--dump-directives]\n"
	    "       sluice -T url [-c client-ip] [-m method] [-f file]\n"
	    "  -f file   configuration file (default " DEFAULT_CONF ")\n"
	    "  -d        stay in the foreground, log to stderr\n"
	    "  -t        test the configuration and exit\n"
	    "  -s sig    signal the running instance: reload, stop (fast),"
	    " quit (graceful), reopen (logs);\n"
	    "            stats prints the counters (JSON) from the admin"
	    " listener\n"
	    "  -T url    print the URL filter's decision on url, the rule and"
	    " the list\n"
	    "            entry or pattern that matched (exit 0 allowed, 2"
	    " denied)\n"
	    "  -c addr   with -T: the client address (src ACLs)\n"
	    "  -m method with -T: the request method (default GET)\n"
	    "  -V        print the version and the libraries in use\n"
	    "  -h        this help\n"
	    "  --dump-directives  print the configuration schema\n");
}

static void
version(void)
{
	char pcre[64] = "unknown";

	printf("sluice %s\n", PACKAGE_VERSION);
	printf("libconfig: %d.%d.%d\n", LIBCONFIG_VER_MAJOR,
	    LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
	pcre2_config(PCRE2_CONFIG_VERSION, pcre);
	printf("PCRE2: %s\n", pcre);
	printf("OpenSSL: %s\n", OpenSSL_version(OPENSSL_VERSION));
	printf("c-ares: %s\n", ares_version(NULL));
	printf("xxHash: %u.%u.%u\n", XXH_versionNumber() / 10000,
	    XXH_versionNumber() / 100 % 100, XXH_versionNumber() % 100);
	printf("libidn2: %s\n", idn2_check_version(NULL));
#ifdef HAVE_MEMCACHED
	printf("libmemcached: %s\n", memcached_lib_version());
#else
	printf("libmemcached: not built\n");
#endif
	printf("configure: memcached=%s sanitizers=%s fault-injection=%s\n",
#ifdef HAVE_MEMCACHED
	    "yes",
#else
	    "no",
#endif
#ifdef SLUICE_SANITIZERS
	    "yes",
#else
	    "no",
#endif
#ifdef SLUICE_FAULT_INJECTION
	    "yes"
#else
	    "no"
#endif
	    );
}

/* Wait for ev on fd; 1 ready, 0 timed out, -1 error. */
static int
stats_wait(int fd, short ev)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int n;

	while ((n = poll(&p, 1, STATS_TIMEOUT_MS)) < 0 && errno == EINTR)
		;
	return n;
}

/* -s stats: GET /stats from the admin listener, print the JSON body. */
static int
stats_print(const struct sluice_conf *c, const char *path)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl;
	char name[80], req[256], *buf = NULL, *body, *cl;
	size_t len = 0, cap = 0, blen;
	int fd = -1, e = 0, n;
	socklen_t el = sizeof(e);

	if (c->admin.address == NULL) {
		fprintf(stderr, "sluice: -s stats needs an admin listener (admin"
		    " { address = ...; port = ...; }) in %s\n", path);
		return 1;
	}
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, c->admin.address, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)c->admin.port);
		sl = sizeof(*sin);
		snprintf(name, sizeof(name), "%s:%d", c->admin.address,
		    c->admin.port);
	} else if (inet_pton(AF_INET6, c->admin.address, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)c->admin.port);
		sl = sizeof(*sin6);
		snprintf(name, sizeof(name), "[%s]:%d", c->admin.address,
		    c->admin.port);
	} else {
		fprintf(stderr, "sluice: admin address %s is not an IP"
		    " address\n", c->admin.address);
		return 1;
	}
	/* Non-blocking connect, so a filtered port fails in 2 s. */
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&ss, sl) < 0 &&
	    errno != EINPROGRESS))
		goto fail;
	if ((n = stats_wait(fd, POLLOUT)) <= 0) {
		errno = n == 0 ? ETIMEDOUT : errno;
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e != 0) {
		errno = e ? e : errno;
		goto fail;
	}
	n = snprintf(req, sizeof(req), "GET /stats HTTP/1.1\r\nHost: %s\r\n"
	    "Connection: close\r\n\r\n", name);
	/* A few dozen bytes into an empty socket buffer: one send. */
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
		goto fail;
	for (;;) {
		ssize_t r;

		if (cap - len < 4096) {
			char *nb;

			if (cap >= STATS_MAX || (nb = realloc(buf, cap * 2 + 8192)) == NULL) {
				errno = EFBIG;
				goto fail;
			}
			buf = nb;
			cap = cap * 2 + 8192;
		}
		if ((n = stats_wait(fd, POLLIN)) <= 0) {
			errno = n == 0 ? ETIMEDOUT : errno;
			goto fail;
		}
		r = recv(fd, buf + len, cap - len - 1, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	if (len < 13 || strncmp(buf, "HTTP/1.1 200 ", 13) != 0 ||
	    (body = strstr(buf, "\r\n\r\n")) == NULL) {
		fprintf(stderr, "sluice: admin listener %s answered: %.*s\n",
		    name, (int)strcspn(buf, "\r\n"), buf);
		free(buf);
		return 1;
	}
	body += 4;
	blen = len - (size_t)(body - buf);
	/* A body cut short (the worker stopped mid-answer) is an error,
	 * not a document to print. */
	if ((cl = strstr(buf, "\r\nContent-Length: ")) != NULL && cl < body &&
	    strtoull(cl + 18, NULL, 10) != blen) {
		fprintf(stderr, "sluice: admin listener %s: truncated answer\n",
		    name);
		free(buf);
		return 1;
	}
	fwrite(body, 1, blen, stdout);
	free(buf);
	return fflush(stdout) == 0 ? 0 : 1;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	free(buf);
	fprintf(stderr, "sluice: cannot get stats from the admin listener %s:"
	    " %s\n", name, strerror(e));
	return 1;
}

int
main(int argc, char **argv)
{
	enum { OPT_DUMP = 256 };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'f' },
		{ "foreground", no_argument, NULL, 'd' },
		{ "test", no_argument, NULL, 't' },
		{ "signal", required_argument, NULL, 's' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "dump-directives", no_argument, NULL, OPT_DUMP },
		{ "test-url", required_argument, NULL, 'T' },
		{ "client", required_argument, NULL, 'c' },
		{ "method", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DEFAULT_CONF, *sig = NULL, *turl = NULL, *tclient = NULL,
	    *tmethod = NULL;
	bool foreground = false, test = false;
	struct sluice_conf *conf;
	char err[1024], *abspath;
	int c, rc;

	while ((c = getopt_long(argc, argv, "f:dts:VhT:c:m:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': path = optarg; break;
		case 'd': foreground = true; break;
		case 't': test = true; break;
		case 's': sig = optarg; break;
		case 'T': turl = optarg; break;
		case 'c': tclient = optarg; break;
		case 'm': tmethod = optarg; break;
		case 'V': version(); return 0;
		case 'h': usage(stdout); return 0;
		case OPT_DUMP: conf_schema_dump(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "sluice: unexpected argument \"%s\"\n",
		    argv[optind]);
		usage(stderr);
		return 1;
	}

	if ((conf = conf_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "sluice: %s\n", err);
		if (test)
			fprintf(stderr, "sluice: configuration file %s test"
			    " failed\n", path);
		return 1;
	}
	if ((tclient || tmethod) && !turl) {
		fprintf(stderr, "sluice: -c and -m go with -T URL\n");
		conf_free(conf);
		return 1;
	}
	if (turl) {
		rc = filter_test_main(conf, turl, tclient, tmethod);
		conf_free(conf);
		return rc;
	}
	if (test) {
		/* The lists and patterns too: a bad line fails the test. */
		struct filter *f;
		if (filter_compile(conf, &f, err, sizeof(err)) < 0) {
			fprintf(stderr, "sluice: %s\n", err);
			fprintf(stderr, "sluice: configuration file %s test"
			    " failed\n", path);
			conf_free(conf);
			return 1;
		}
		if (f) {
			char sum[512];
			filter_summary(f, sum, sizeof(sum));
			fprintf(stderr, "sluice: URL filter: %s\n", sum);
		}
		filter_free(f);
		fprintf(stderr, "sluice: the configuration file %s syntax is"
		    " ok\n", path);
		fprintf(stderr, "sluice: configuration file %s test is"
		    " successful\n", path);
		conf_free(conf);
		return 0;
	}
	if (sig != NULL) {
		if (strcmp(sig, "stats") == 0)
			rc = stats_print(conf, path);
		else
			rc = master_daemon_signal(conf->pidfile, sig);
		conf_free(conf);
		return rc;
	}
	/* The daemon chdirs to "/": a reload must find a relative -f path. */
	if ((abspath = realpath(path, NULL)) == NULL) {
		fprintf(stderr, "sluice: %s: %s\n", path, strerror(errno));
		conf_free(conf);
		return 1;
	}
	/* master_run() owns conf from here (it becomes generation 1). */
	rc = master_run(abspath, conf, foreground);
	free(abspath);
	return rc;
}
