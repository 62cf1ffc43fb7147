/*
 * conf.h - the parsed configuration of sluice.
 *
 * One schema table (conf_schema.c) names every directive with its type,
 * default, bounds, reloadability and a one-line doc; conf_load.c drives
 * libconfig with it.  The result is one plain struct that the master
 * keeps and hands to its workers across fork(); nothing in it points
 * into libconfig's memory.  A reload parses into a new struct, and the
 * old one is freed only after the swap (STYLE 6).
 */
#ifndef SLUICE_CONF_H
#define SLUICE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "lib/netaddr.h"

enum listen_mode { LISTEN_FORWARD = 0, LISTEN_REVERSE = 1 };
enum log_format { LOGFMT_SQUID = 0, LOGFMT_COMBINED = 1 };
enum xff_mode { XFF_ADD = 0, XFF_TRANSPARENT = 1, XFF_DELETE = 2 };
enum mc_mode { MC_SPILL = 0, MC_SHARED = 1 };
enum sni_peek { SNI_PEEK_AUTO = 0, SNI_PEEK_ALWAYS = 1, SNI_PEEK_OFF = 2 };

struct conf_listen {
	char *address;			/* "0.0.0.0", "::", "127.0.0.1" */
	int port;			/* 1..65535 */
	enum listen_mode mode;
	char *origin;			/* reverse mode: "http://host:port" as written */
	char *origin_host;		/* parsed from origin: host (no brackets) */
	int origin_port;		/* parsed from origin: port (80 when absent) */
	int line;			/* config line, for error messages */
};

struct conf_acl {
	char *name;
	int line;
	/* Filter ACLs are accepted and kept as written; the filter (a later
	 * stage) compiles them.  src is parsed here since it is a CIDR list. */
	struct cidr *src; size_t nsrc;
	char **url_regex; size_t nurl_regex;
	char **urlpath_regex; size_t nurlpath_regex;
	char **dst_domain; size_t ndst_domain;
	char **method; size_t nmethod;
	int *port; size_t nport;
	char *time;
	char **user_agent; size_t nuser_agent;
};

struct conf_rule {
	char *name;			/* optional; logs and sluice -T name it */
	bool allow;			/* action = "allow" | "deny" */
	char **when; size_t nwhen;	/* ACL names, "all", "category:NAME" */
	int line;
};

struct sluice_conf {
	char *path;			/* the file this was loaded from */

	char *user, *group;		/* drop to these when started as root */
	int workers;			/* 0: one per CPU (resolved by the master) */
	char *pidfile;
	char *error_log;		/* "syslog" or a path */
	char *access_log_path;		/* NULL or "" = no access log */
	enum log_format access_log_format;
	char *visible_hostname;		/* Via token and error pages; default gethostname() */
	enum xff_mode x_forwarded_for;

	struct conf_listen *listen; size_t nlisten;

	struct cidr *clients; size_t nclients;
	int *connect_ports; size_t nconnect_ports;
	struct cidr *blocked_destinations; size_t nblocked_destinations;

	char **dns_servers; size_t ndns_servers;	/* "ip" or "ip:port" */
	int dns_negative_ttl;		/* seconds */

	struct {
		int client_header, keepalive, connect, upstream, idle, shutdown;
	} timeouts;			/* seconds */

	struct {
		size_t header_size;		/* whole request/response header block */
		int header_fields;		/* max number of header fields */
		size_t uri_size;		/* max request-target length */
		uint64_t request_body;		/* max request body; 0 = unlimited */
		int client_connections;		/* per client address and worker; 0 = off */
	} limits;

	struct {
		uint64_t size, max_object_size;
		char *shm_name;
		bool persist;
		bool enabled;
		struct cidr *purge; size_t npurge;	/* PURGE allowed from */
	} cache;

	struct {
		char **servers; size_t nservers;
		enum mc_mode mode;
		int timeout_ms;
		char *secret;
		uint64_t max_object_size;
	} memcached;
	bool memcached_set;		/* a memcached section was given */

	struct {
		char *lists, *block_page;
		int regex_match_limit, regex_depth_limit;
		bool regex_limit_allow;	/* regex_limit_action = "ignore" */
		enum sni_peek sni_peek;
		bool sni_default_allow;	/* sni_default = "allow" */
		struct conf_acl *acls; size_t nacls;
		struct conf_rule *rules; size_t nrules;
	} filter;

	struct {
		char *address;		/* NULL: no admin listener */
		int port;
	} admin;
};

/* Parse and fully validate path.  On error returns NULL and writes one
 * line "FILE:LINE: DIRECTIVE: what was expected" into err. */
struct sluice_conf *conf_load(const char *path, char *err, size_t errlen);
void conf_free(struct sluice_conf *c);

/* Directives that cannot change on reload and differ between a and b:
 * writes their names, comma-separated, to out ("" when none). */
void conf_reload_diff(const struct sluice_conf *a, const struct sluice_conf *b,
    char *out, size_t outlen);

/* Print the schema as the DIRECTIVES section of sluice.conf(5) body
 * (used by the man page test) or as a plain table. */
void conf_schema_dump(FILE *f);

#endif
