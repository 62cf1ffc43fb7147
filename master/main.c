/*
 * main.c - the sluice command line.
 *
 *   sluice [-f FILE] [-d] [-t] [-V] [-h] [-s reload|stop|quit|reopen]
 *          [--dump-directives]
 *
 * What: parses the options, loads and validates the configuration, and
 * either answers a one-shot request (-t, -V, -s, --dump-directives) or
 * hands the configuration to master_run().
 *
 * Assumes: nothing has been set up yet; the error log is opened by the
 * master, so everything here reports to stderr as "sluice: ...".
 *
 * Why -V prints run-time library versions: a proxy is often run against
 * distribution libraries updated after it was built; the version the
 * loader actually linked (not the header it was compiled with) is what
 * matters in a bug report.  libconfig has no run-time version call, so
 * its header macros are printed.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <libconfig.h>
#include <openssl/crypto.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#ifdef HAVE_MEMCACHED
#include <libmemcached/memcached.h>
#endif

#include "conf/conf.h"
#include "master/master.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/usr/local/etc"
#endif
#define DEFAULT_CONF SYSCONFDIR "/sluice/sluice.conf"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: sluice [-dhtV] [-f file] [-s reload|stop|quit|reopen]"
	    " [--dump-directives]\n"
	    "  -f file   configuration file (default " DEFAULT_CONF ")\n"
	    "  -d        stay in the foreground, log to stderr\n"
	    "  -t        test the configuration and exit\n"
	    "  -s sig    signal the running instance: reload, stop (fast),"
	    " quit (graceful), reopen (logs)\n"
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
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DEFAULT_CONF, *sig = NULL;
	bool foreground = false, test = false;
	struct sluice_conf *conf;
	char err[1024], *abspath;
	int c, rc;

	while ((c = getopt_long(argc, argv, "f:dts:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': path = optarg; break;
		case 'd': foreground = true; break;
		case 't': test = true; break;
		case 's': sig = optarg; break;
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
	if (test) {
		fprintf(stderr, "sluice: the configuration file %s syntax is"
		    " ok\n", path);
		fprintf(stderr, "sluice: configuration file %s test is"
		    " successful\n", path);
		conf_free(conf);
		return 0;
	}
	if (sig != NULL) {
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
