/*
 * conf_schema.c - the one table of sluice's configuration directives.
 *
 * Every directive a user may write is one row here: its dotted name,
 * type, the struct sluice_conf field it fills, default, bounds, whether
 * a reload (SIGHUP) applies it, and a one-line doc.  conf_load.c applies
 * defaults, checks types and ranges and rejects unknown names from this
 * table alone; conf_schema_dump() prints it for `sluice --dump-directives`
 * and the man page test (tests/t_man.sh) fails if a row is missing from
 * sluice.conf(5).  Adding a directive means adding a row and a man page
 * entry, nothing else.
 *
 * Reloadability: the master re-binds listeners and re-forks workers on
 * reload, so almost everything is reloadable.  What is not: the run
 * user/group (privileges are already dropped), the pidfile (already
 * written), and the shm segment's size and name (workers of both
 * generations share the one segment).
 *
 * Defaults are written in config syntax (without quotes) and parsed by
 * the same value parsers as user input, so a default cannot disagree with
 * what the loader accepts; list defaults are comma-separated.
 *
 * Besides the table this file holds the walks over it that need no
 * libconfig: applying defaults, freeing (conf_free), comparing for reload
 * (conf_reload_diff) and the dump.  conf_load.c is the libconfig side.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_internal.h"

/* ---- extra checks on strings ------------------------------------------ */

static int
check_port_str(const char *p, const char **why)
{
	long v;
	char *end;

	if (*p < '0' || *p > '9') {
		*why = "has a port that is not a number";
		return -1;
	}
	v = strtol(p, &end, 10);
	if (*end != '\0' || v < 1 || v > 65535) {
		*why = "has a port outside 1..65535";
		return -1;
	}
	return 0;
}

/* An IPv4 or IPv6 literal (no brackets, no port). */
int
conf_schema_check_ip(const char *s, const char **why)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
		return 0;
	*why = "is not an IPv4 or IPv6 address";
	return -1;
}

/* Split "host:port" / "[v6]:port" / "host" into a host copy and the port
 * text (NULL when absent).  Returns -1 on a malformed bracket. */
static int
split_hostport(const char *s, char *host, size_t hlen, const char **port)
{
	const char *colon, *end;
	size_t n;

	*port = NULL;
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return -1;
		n = (size_t)(end - s - 1);
		if (end[1] == ':')
			*port = end + 2;
		s++;
	} else {
		colon = strrchr(s, ':');
		/* More than one colon without brackets: a bare IPv6. */
		if (colon != NULL && strchr(s, ':') == colon) {
			n = (size_t)(colon - s);
			*port = colon + 1;
		} else {
			n = strlen(s);
		}
	}
	if (n == 0 || n >= hlen)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	return 0;
}

/* dns.servers: "ip", "ip:port", "[ipv6]:port" or a bare IPv6. */
static int
check_dns_server(const char *s, const char **why)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port;

	if (split_hostport(s, host, sizeof host, &port) != 0 ||
	    conf_schema_check_ip(host, why) != 0) {
		*why = "is not \"ip\", \"ip:port\" or \"[ipv6]:port\"";
		return -1;
	}
	if (port != NULL && check_port_str(port, why) != 0)
		return -1;
	return 0;
}

/* memcached.servers: "host:port", "host", "[ipv6]:port". */
static int
check_mc_server(const char *s, const char **why)
{
	char host[256];
	const char *port, *p;

	if (split_hostport(s, host, sizeof host, &port) != 0) {
		*why = "is not \"host:port\" or \"[ipv6]:port\"";
		return -1;
	}
	if (conf_schema_check_ip(host, why) != 0) {
		for (p = host; *p != '\0'; p++) {
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.')) {
				*why = "is not a valid host name or address";
				return -1;
			}
		}
	}
	if (port != NULL && check_port_str(port, why) != 0)
		return -1;
	return 0;
}

/* cache.shm_name: POSIX shm names are "/name" with no other slash. */
static int
check_shm_name(const char *s, const char **why)
{
	if (s[0] != '/' || s[1] == '\0' || strchr(s + 1, '/') != NULL ||
	    strlen(s) > 255) {
		*why = "must be \"/name\": a leading '/' and no other '/'";
		return -1;
	}
	return 0;
}

/* ACL names: short, lower case, usable in logs without quoting. */
static int
check_acl_name(const char *s, const char **why)
{
	const char *p;

	if (*s == '\0' || strlen(s) > 64) {
		*why = "must be 1 to 64 characters";
		return -1;
	}
	for (p = s; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '_' || *p == '-')) {
			*why = "may only contain a-z, 0-9, '_' and '-'";
			return -1;
		}
	}
	if (strcmp(s, "all") == 0) {
		*why = "is reserved (\"all\" always matches)";
		return -1;
	}
	return 0;
}

/* visible_hostname goes into Via headers and pages: a DNS-style name. */
static int
check_hostname(const char *s, const char **why)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255 || strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n) {
		*why = "must be a host name: 1 to 255 letters, digits, '.' and '-'";
		return -1;
	}
	return 0;
}

/* Files are reopened after the daemon's chdir("/"): absolute paths only. */
static int
check_abs_path(const char *s, const char **why)
{
	if (s[0] != '/') {
		*why = "must be an absolute path";
		return -1;
	}
	return 0;
}

/* error_log: "syslog", "stderr" or an absolute path. */
static int
check_log_target(const char *s, const char **why)
{
	if (strcmp(s, "syslog") == 0 || strcmp(s, "stderr") == 0)
		return 0;
	if (s[0] != '/') {
		*why = "must be \"syslog\", \"stderr\" or an absolute path";
		return -1;
	}
	return 0;
}

/* access_log.path: "" (no log) or an absolute path. */
static int
check_opt_abs_path(const char *s, const char **why)
{
	return s[0] == '\0' ? 0 : check_abs_path(s, why);
}

static int
check_nonempty(const char *s, const char **why)
{
	if (*s == '\0') {
		*why = "must not be empty";
		return -1;
	}
	return 0;
}

/* ---- the table -------------------------------------------------------- */

#define FLD(T, m) .off = offsetof(T, m), .size = sizeof(((T *)0)->m)
#define LST(T, p, n) FLD(T, p), .cnt_off = offsetof(T, n)
#define C(m) FLD(struct sluice_conf, m)
#define CL(p, n) LST(struct sluice_conf, p, n)
#define RANGE(a, b) .min = (a), .max = (b)
#define KB(x) ((int64_t)(x) << 10)
#define MB(x) ((int64_t)(x) << 20)
#define GB(x) ((int64_t)(x) << 30)
#define TB(x) ((int64_t)(x) << 40)
#define R CONF_F_RELOAD
#define REQ CONF_F_REQUIRED

static const char *const e_logfmt[] = { "squid", "combined", NULL };
static const char *const e_xff[] = { "add", "transparent", "delete", NULL };
static const char *const e_mode[] = { "forward", "reverse", NULL };
static const char *const e_mc[] = { "spill", "shared", NULL };
static const char *const e_action[] = { "deny", "allow", NULL };	/* bool */
static const char *const e_rxlimit[] = { "deny", "ignore", NULL };	/* bool */
static const char *const e_peek[] = { "auto", "always", "off", NULL };

static const struct conf_directive listen_fields[] = {
	{ .name = "listen.address", .type = CONF_T_ADDR,
	  FLD(struct conf_listen, address), .flags = R | REQ,
	  .doc = "IP address to listen on: \"0.0.0.0\", \"::\", \"127.0.0.1\"" },
	{ .name = "listen.port", .type = CONF_T_PORT,
	  FLD(struct conf_listen, port), RANGE(1, 65535), .flags = R | REQ,
	  .doc = "TCP port to listen on" },
	{ .name = "listen.mode", .type = CONF_T_ENUM,
	  FLD(struct conf_listen, mode), .def = "forward", .enums = e_mode,
	  .flags = R,
	  .doc = "\"forward\": a proxy for clients; \"reverse\": front one origin" },
	{ .name = "listen.origin", .type = CONF_T_STRING,
	  FLD(struct conf_listen, origin), .flags = R,
	  .doc = "reverse mode only (and required there): \"http://host[:port]\"" },
};

static const struct conf_directive acl_fields[] = {
	{ .name = "filter.acls.name", .type = CONF_T_STRING,
	  FLD(struct conf_acl, name), .check = check_acl_name,
	  .flags = R | REQ,
	  .doc = "unique ACL name (a-z, 0-9, _ and -) used in rules" },
	{ .name = "filter.acls.src", .type = CONF_T_CIDRLIST,
	  LST(struct conf_acl, src, nsrc), .flags = R,
	  .doc = "client networks (CIDR) the ACL matches" },
	{ .name = "filter.acls.dst_domain", .type = CONF_T_STRLIST,
	  LST(struct conf_acl, dst_domain, ndst_domain), .flags = R,
	  .doc = "destination domains; a domain also matches its subdomains" },
	{ .name = "filter.acls.url_regex", .type = CONF_T_STRLIST,
	  LST(struct conf_acl, url_regex, nurl_regex), .flags = R,
	  .doc = "PCRE2 patterns matched against the whole normalized URL" },
	{ .name = "filter.acls.urlpath_regex", .type = CONF_T_STRLIST,
	  LST(struct conf_acl, urlpath_regex, nurlpath_regex), .flags = R,
	  .doc = "PCRE2 patterns matched against the URL path and query" },
	{ .name = "filter.acls.port", .type = CONF_T_PORTLIST,
	  LST(struct conf_acl, port, nport), .flags = R,
	  .doc = "destination ports" },
	{ .name = "filter.acls.method", .type = CONF_T_STRLIST,
	  LST(struct conf_acl, method, nmethod), .flags = R,
	  .doc = "request methods, e.g. \"CONNECT\", \"POST\"" },
	{ .name = "filter.acls.time", .type = CONF_T_STRING,
	  FLD(struct conf_acl, time), .flags = R,
	  .doc = "local time window, e.g. \"Mon-Fri 08:00-16:00\"" },
	{ .name = "filter.acls.user_agent", .type = CONF_T_STRLIST,
	  LST(struct conf_acl, user_agent, nuser_agent), .flags = R,
	  .doc = "PCRE2 patterns matched against the User-Agent header" },
};

static const struct conf_directive rule_fields[] = {
	{ .name = "filter.rules.name", .type = CONF_T_STRING,
	  FLD(struct conf_rule, name), .flags = R,
	  .doc = "name of the rule in logs and sluice -T; default \"rule#N\"" },
	{ .name = "filter.rules.action", .type = CONF_T_ENUM,
	  FLD(struct conf_rule, allow), .enums = e_action, .flags = R | REQ,
	  .doc = "\"allow\" or \"deny\" the request when the rule matches" },
	{ .name = "filter.rules.when", .type = CONF_T_STRLIST,
	  LST(struct conf_rule, when, nwhen), .flags = R | REQ,
	  .doc = "conditions that must all hold: ACL names, \"all\", \"category:NAME\"" },
};

const struct conf_directive conf_schema[] = {
	{ .name = "user", .type = CONF_T_STRING, C(user), .def = "proxy",
	  .check = check_nonempty,
	  .doc = "user to switch to after binding, when started as root" },
	{ .name = "group", .type = CONF_T_STRING, C(group), .def = "proxy",
	  .check = check_nonempty,
	  .doc = "group to switch to after binding, when started as root" },
	{ .name = "workers", .type = CONF_T_INT, C(workers), .def = "0",
	  RANGE(0, 256), .flags = R,
	  .doc = "number of worker processes; 0 means one per CPU" },
	{ .name = "pidfile", .type = CONF_T_STRING, C(pidfile),
	  .def = "/run/sluice.pid", .check = check_abs_path,
	  .doc = "file the master writes its process id to" },
	{ .name = "error_log", .type = CONF_T_STRING, C(error_log),
	  .def = "syslog", .check = check_log_target, .flags = R,
	  .doc = "where errors go: \"syslog\", \"stderr\" or a file path" },
	{ .name = "access_log", .type = CONF_T_SECTION, .flags = R,
	  .doc = "the access log: one line per request" },
	{ .name = "access_log.path", .type = CONF_T_STRING, C(access_log_path),
	  .def = "/var/log/sluice/access.log", .check = check_opt_abs_path, .flags = R,
	  .doc = "access log file; \"\" disables the access log" },
	{ .name = "access_log.format", .type = CONF_T_ENUM,
	  C(access_log_format), .def = "squid", .enums = e_logfmt, .flags = R,
	  .doc = "line format: \"squid\" (native) or \"combined\"" },
	{ .name = "visible_hostname", .type = CONF_T_STRING,
	  C(visible_hostname), .check = check_hostname, .flags = R,
	  .doc = "name used in Via headers and error pages; default: the host name" },
	{ .name = "x_forwarded_for", .type = CONF_T_ENUM, C(x_forwarded_for),
	  .def = "add", .enums = e_xff, .flags = R,
	  .doc = "X-Forwarded-For: \"add\" the client, leave it \"transparent\", or \"delete\" it" },
	{ .name = "listen", .type = CONF_T_GROUPLIST, CL(listen, nlisten),
	  .flags = R | REQ, .fields = listen_fields,
	  .nfields = sizeof listen_fields / sizeof listen_fields[0],
	  .elem_size = sizeof(struct conf_listen),
	  .line_off = offsetof(struct conf_listen, line),
	  .doc = "listening sockets, at least one; the master re-binds them on reload" },
	{ .name = "clients", .type = CONF_T_CIDRLIST, CL(clients, nclients),
	  .def = "127.0.0.0/8,::1/128", .flags = R,
	  .doc = "client networks allowed to use the proxy; others get 403" },
	{ .name = "connect_ports", .type = CONF_T_PORTLIST,
	  CL(connect_ports, nconnect_ports), .def = "443", .flags = R,
	  .doc = "ports a CONNECT request may reach" },
	{ .name = "blocked_destinations", .type = CONF_T_CIDRLIST,
	  CL(blocked_destinations, nblocked_destinations),
	  .def = "127.0.0.0/8,::1/128,::/128,0.0.0.0/8,169.254.0.0/16,fe80::/10,"
	    "::ffff:127.0.0.0/104,64:ff9b::7f00:0/104,fd00:ec2::254/128,"
	    "100.100.100.200/32,192.0.0.192/32",
	  .flags = R,
	  .doc = "networks never connected to, checked on the resolved address" },
	{ .name = "dns", .type = CONF_T_SECTION, .flags = R,
	  .doc = "name resolution" },
	{ .name = "dns.servers", .type = CONF_T_STRLIST,
	  CL(dns_servers, ndns_servers), .check = check_dns_server, .flags = R,
	  .doc = "resolvers as \"ip\" or \"ip:port\"; empty: /etc/resolv.conf and /etc/hosts" },
	{ .name = "dns.negative_ttl", .type = CONF_T_DURATION,
	  C(dns_negative_ttl), .def = "30", RANGE(0, 86400), .flags = R,
	  .doc = "seconds a failed lookup is remembered" },
	{ .name = "timeouts", .type = CONF_T_SECTION, .flags = R,
	  .doc = "timeouts, in seconds" },
	{ .name = "timeouts.client_header", .type = CONF_T_DURATION,
	  C(timeouts.client_header), .def = "30", RANGE(1, 86400), .flags = R,
	  .doc = "time a client has to send the whole request header" },
	{ .name = "timeouts.keepalive", .type = CONF_T_DURATION,
	  C(timeouts.keepalive), .def = "60", RANGE(1, 86400), .flags = R,
	  .doc = "idle time allowed between requests on a client connection" },
	{ .name = "timeouts.connect", .type = CONF_T_DURATION,
	  C(timeouts.connect), .def = "10", RANGE(1, 86400), .flags = R,
	  .doc = "time to establish a connection to an origin" },
	{ .name = "timeouts.upstream", .type = CONF_T_DURATION,
	  C(timeouts.upstream), .def = "60", RANGE(1, 86400), .flags = R,
	  .doc = "time to wait for an origin's response header, and between its body bytes" },
	{ .name = "timeouts.idle", .type = CONF_T_DURATION,
	  C(timeouts.idle), .def = "300", RANGE(1, 86400), .flags = R,
	  .doc = "inactivity allowed on a CONNECT tunnel or a body transfer" },
	{ .name = "timeouts.shutdown", .type = CONF_T_DURATION,
	  C(timeouts.shutdown), .def = "30", RANGE(1, 86400), .flags = R,
	  .doc = "time old workers get to finish requests on reload or graceful stop" },
	{ .name = "limits", .type = CONF_T_SECTION, .flags = R,
	  .doc = "request size and connection limits" },
	{ .name = "limits.header_size", .type = CONF_T_SIZE,
	  C(limits.header_size), .def = "64K", RANGE(KB(1), MB(1)), .flags = R,
	  .doc = "largest request or response header block; larger gets 431 or 502" },
	{ .name = "limits.header_fields", .type = CONF_T_INT,
	  C(limits.header_fields), .def = "100", RANGE(8, 1000), .flags = R,
	  .doc = "most header fields in one request or response" },
	{ .name = "limits.uri_size", .type = CONF_T_SIZE,
	  C(limits.uri_size), .def = "16K", RANGE(256, MB(1)), .flags = R,
	  .doc = "longest request target; longer gets 414" },
	{ .name = "limits.request_body", .type = CONF_T_SIZE,
	  C(limits.request_body), .def = "0", RANGE(0, TB(1)), .flags = R,
	  .doc = "largest request body; larger gets 413; 0 means unlimited" },
	{ .name = "limits.client_connections", .type = CONF_T_INT,
	  C(limits.client_connections), .def = "1000", RANGE(0, 1000000), .flags = R,
	  .doc = "connections one client address may hold open in each worker; 0 means unlimited" },
	{ .name = "cache", .type = CONF_T_SECTION, .flags = R,
	  .doc = "the shared-memory cache" },
	{ .name = "cache.size", .type = CONF_T_SIZE, C(cache.size),
	  .def = "256M", RANGE(MB(1), TB(1)),
	  .doc = "size of the shared-memory segment" },
	{ .name = "cache.max_object_size", .type = CONF_T_SIZE,
	  C(cache.max_object_size), .def = "16M", RANGE(KB(1), TB(1)), .flags = R,
	  .doc = "largest response stored in shared memory" },
	{ .name = "cache.shm_name", .type = CONF_T_STRING, C(cache.shm_name),
	  .def = "/sluice", .check = check_shm_name,
	  .doc = "POSIX shared-memory name of the segment: \"/name\"" },
	{ .name = "cache.persist", .type = CONF_T_BOOL, C(cache.persist),
	  .def = "false", .flags = R,
	  .doc = "keep the segment (and the cache) across a full restart" },
	{ .name = "cache.enabled", .type = CONF_T_BOOL, C(cache.enabled),
	  .def = "true",
	  .doc = "false: no segment, every request is forwarded (restart to change)" },
	{ .name = "cache.purge_clients", .type = CONF_T_CIDRLIST,
	  CL(cache.purge, cache.npurge), .def = "127.0.0.0/8,::1/128", .flags = R,
	  .doc = "client networks allowed to send PURGE; others get 403" },
	{ .name = "memcached", .type = CONF_T_SECTION, .flags = R,
	  .doc = "the optional memcached tier; absent: no memcached" },
	{ .name = "memcached.servers", .type = CONF_T_STRLIST,
	  CL(memcached.servers, memcached.nservers),
	  .check = check_mc_server, .flags = R,
	  .doc = "memcached servers as \"host:port\", consistently hashed" },
	{ .name = "memcached.mode", .type = CONF_T_ENUM, C(memcached.mode),
	  .def = "spill", .enums = e_mc, .flags = R,
	  .doc = "\"spill\": store what shm evicts; \"shared\": store every object for peer nodes" },
	{ .name = "memcached.timeout_ms", .type = CONF_T_DURATION,
	  C(memcached.timeout_ms), .def = "50", RANGE(1, 10000), .flags = R,
	  .doc = "milliseconds allowed for one memcached operation" },
	{ .name = "memcached.secret", .type = CONF_T_STRING,
	  C(memcached.secret), .def = "", .flags = R,
	  .doc = "key authenticating stored items; required when servers are set" },
	{ .name = "memcached.max_object_size", .type = CONF_T_SIZE,
	  C(memcached.max_object_size), .def = "64M", RANGE(KB(1), TB(1)),
	  .flags = R,
	  .doc = "largest response stored in memcached" },
	{ .name = "filter", .type = CONF_T_SECTION, .flags = R,
	  .doc = "URL filtering: lists, ACLs and rules" },
	{ .name = "filter.lists", .type = CONF_T_STRING, C(filter.lists),
	  .flags = R,
	  .doc = "folder of category lists (CATEGORY/domains, urls, expressions)" },
	{ .name = "filter.block_page", .type = CONF_T_STRING,
	  C(filter.block_page), .flags = R,
	  .doc = "HTML template of the 403 block page; default: a built-in page" },
	{ .name = "filter.regex_match_limit", .type = CONF_T_INT,
	  C(filter.regex_match_limit), .def = "100000", RANGE(100, 100000000),
	  .flags = R,
	  .doc = "PCRE2 match limit: the work one pattern may do on one URL" },
	{ .name = "filter.regex_depth_limit", .type = CONF_T_INT,
	  C(filter.regex_depth_limit), .def = "10000", RANGE(100, 10000000),
	  .flags = R,
	  .doc = "PCRE2 depth (backtracking) limit of one match" },
	{ .name = "filter.regex_limit_action", .type = CONF_T_ENUM,
	  C(filter.regex_limit_allow), .def = "deny", .enums = e_rxlimit,
	  .flags = R,
	  .doc = "a pattern that hits a limit: \"deny\" the request, or "
	  "\"ignore\" the pattern (it does not match)" },
	{ .name = "filter.sni_peek", .type = CONF_T_ENUM, C(filter.sni_peek),
	  .def = "auto", .enums = e_peek, .flags = R,
	  .doc = "read the TLS server name of CONNECT tunnels: \"auto\" (when "
	  "the target is an IP address), \"always\", \"off\"" },
	{ .name = "filter.sni_default", .type = CONF_T_ENUM,
	  C(filter.sni_default_allow), .def = "deny", .enums = e_action,
	  .flags = R,
	  .doc = "a peeked tunnel that sends no TLS ClientHello with a name: "
	  "\"deny\" or \"allow\"" },
	{ .name = "filter.acls", .type = CONF_T_GROUPLIST,
	  LST(struct sluice_conf, filter.acls, filter.nacls), .flags = R,
	  .fields = acl_fields,
	  .nfields = sizeof acl_fields / sizeof acl_fields[0],
	  .elem_size = sizeof(struct conf_acl),
	  .line_off = offsetof(struct conf_acl, line),
	  .doc = "named conditions; an ACL matches when all its fields match" },
	{ .name = "filter.rules", .type = CONF_T_GROUPLIST,
	  LST(struct sluice_conf, filter.rules, filter.nrules), .flags = R,
	  .fields = rule_fields,
	  .nfields = sizeof rule_fields / sizeof rule_fields[0],
	  .elem_size = sizeof(struct conf_rule),
	  .line_off = offsetof(struct conf_rule, line),
	  .doc = "ordered rules, first match wins; when rules exist, no match denies" },
	{ .name = "admin", .type = CONF_T_SECTION, .flags = R,
	  .doc = "the stats listener; absent: none" },
	{ .name = "admin.address", .type = CONF_T_ADDR, C(admin.address),
	  .flags = R | REQ,
	  .doc = "IP address of the stats listener, normally \"127.0.0.1\"" },
	{ .name = "admin.port", .type = CONF_T_PORT, C(admin.port),
	  RANGE(1, 65535), .flags = R | REQ,
	  .doc = "TCP port of the stats listener (/stats, /metrics)" },
};

const size_t conf_schema_len = sizeof conf_schema / sizeof conf_schema[0];

/* ---- storing values ---------------------------------------------------- */

/* Integer-like fields come in several widths (bool, int, size_t, u64). */
void
conf_schema_store_int(void *p, size_t size, int64_t v)
{
	if (size == sizeof(bool)) {
		*(bool *)p = v != 0;
	} else if (size == sizeof(int)) {
		int i = (int)v;
		memcpy(p, &i, sizeof i);
	} else {
		uint64_t u = (uint64_t)v;
		memcpy(p, &u, sizeof u);
	}
}

int
conf_schema_set_str(void *p, const char *v)
{
	char *copy = NULL;

	if (v != NULL && (copy = strdup(v)) == NULL)
		return -1;
	free(*(char **)p);
	*(char **)p = copy;
	return 0;
}

/* "256M", "64k", "1048576": bytes.  K/M/G/T are powers of 1024. */
int
conf_schema_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case '\0':			break;
	case 'k': case 'K':	shift = 10; p++; break;
	case 'm': case 'M':	shift = 20; p++; break;
	case 'g': case 'G':	shift = 30; p++; break;
	case 't': case 'T':	shift = 40; p++; break;
	default:		return -1;
	}
	if (*p != '\0' || (shift > 0 && v > (UINT64_MAX >> shift)))
		return -1;
	*out = v << shift;
	return 0;
}

int
conf_schema_enum_index(const struct conf_directive *d, const char *v)
{
	int i;

	for (i = 0; d->enums[i] != NULL; i++)
		if (strcmp(d->enums[i], v) == 0)
			return i;
	return -1;
}

/* ---- defaults --------------------------------------------------------- */

/* Apply one row's default.  Defaults are ours, so a parse failure is a
 * bug in the table: abort (the unit test loads every default). */
static int
apply_default(const struct conf_directive *d, void *base)
{
	void *p = conf_field(base, d);
	uint64_t u;
	const char *why, *s, *comma;
	char item[128];
	size_t n, i, len;

	if (d->def == NULL)
		return 0;
	switch (d->type) {
	case CONF_T_STRING:
	case CONF_T_ADDR:
		return conf_schema_set_str(p, d->def);
	case CONF_T_INT:
	case CONF_T_DURATION:
	case CONF_T_PORT:
		conf_schema_store_int(p, d->size, strtoll(d->def, NULL, 10));
		return 0;
	case CONF_T_BOOL:
		conf_schema_store_int(p, d->size, strcmp(d->def, "true") == 0);
		return 0;
	case CONF_T_SIZE:
		if (conf_schema_parse_size(d->def, &u) != 0)
			abort();
		conf_schema_store_int(p, d->size, (int64_t)u);
		return 0;
	case CONF_T_ENUM:
		if (conf_schema_enum_index(d, d->def) < 0)
			abort();
		conf_schema_store_int(p, d->size, conf_schema_enum_index(d, d->def));
		return 0;
	case CONF_T_STRLIST:
	case CONF_T_CIDRLIST:
	case CONF_T_PORTLIST:
		for (n = 1, s = d->def; *s != '\0'; s++)
			n += *s == ',';
		if (d->type == CONF_T_STRLIST)
			*(char ***)p = calloc(n, sizeof(char *));
		else if (d->type == CONF_T_CIDRLIST)
			*(struct cidr **)p = calloc(n, sizeof(struct cidr));
		else
			*(int **)p = calloc(n, sizeof(int));
		if (*(void **)p == NULL)
			return -1;
		*conf_count(base, d) = n;
		for (i = 0, s = d->def; i < n; i++, s = comma + 1) {
			comma = strchr(s, ',');
			if (comma == NULL)
				comma = s + strlen(s);
			len = (size_t)(comma - s);
			if (len >= sizeof item)
				abort();
			memcpy(item, s, len);
			item[len] = '\0';
			if (d->type == CONF_T_STRLIST) {
				if (((*(char ***)p)[i] = strdup(item)) == NULL)
					return -1;
			} else if (d->type == CONF_T_CIDRLIST) {
				if (netaddr_cidr_parse(item,
				    &(*(struct cidr **)p)[i], &why) != 0)
					abort();
			} else {
				(*(int **)p)[i] = atoi(item);
			}
		}
		return 0;
	case CONF_T_SECTION:
	case CONF_T_GROUPLIST:
		break;
	}
	return 0;
}

int
conf_schema_defaults(const struct conf_directive *rows, size_t n, void *base)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (apply_default(&rows[i], base) != 0)
			return -1;
	return 0;
}

/* ---- freeing ---------------------------------------------------------- */

void
conf_schema_free_rows(const struct conf_directive *rows, size_t nrows,
    void *base)
{
	size_t i, j;

	for (i = 0; i < nrows; i++) {
		const struct conf_directive *d = &rows[i];
		void *p = conf_field(base, d);

		switch (d->type) {
		case CONF_T_STRING:
		case CONF_T_ADDR:
			free(*(char **)p);
			*(char **)p = NULL;
			break;
		case CONF_T_STRLIST:
			for (j = 0; j < *conf_count(base, d); j++)
				free((*(char ***)p)[j]);
			/* FALLTHROUGH */
		case CONF_T_CIDRLIST:
		case CONF_T_PORTLIST:
			free(*(void **)p);
			*(void **)p = NULL;
			*conf_count(base, d) = 0;
			break;
		case CONF_T_GROUPLIST:
			for (j = 0; j < *conf_count(base, d); j++)
				conf_schema_free_rows(d->fields, d->nfields,
				    *(char **)p + j * d->elem_size);
			free(*(void **)p);
			*(void **)p = NULL;
			*conf_count(base, d) = 0;
			break;
		default:
			break;
		}
	}
}

/* Free a config and everything it owns; NULL is fine.  Works on a
 * half-filled struct, which is how the loader's error paths clean up. */
void
conf_free(struct sluice_conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	/* origin_host is derived from listen.origin, not a schema row. */
	for (i = 0; i < c->nlisten; i++)
		free(c->listen[i].origin_host);
	conf_schema_free_rows(conf_schema, conf_schema_len, c);
	free(c->path);
	free(c);
}

/* Non-reloadable directives that differ between a and b, comma-separated. */
void
conf_reload_diff(const struct sluice_conf *a, const struct sluice_conf *b,
    char *out, size_t outlen)
{
	size_t i, n = 0;
	bool differ;

	if (outlen == 0)
		return;
	out[0] = '\0';
	for (i = 0; i < conf_schema_len; i++) {
		const struct conf_directive *d = &conf_schema[i];
		const void *pa = (const char *)a + d->off;
		const void *pb = (const char *)b + d->off;

		if ((d->flags & CONF_F_RELOAD) || d->type == CONF_T_SECTION)
			continue;
		if (d->type == CONF_T_STRING || d->type == CONF_T_ADDR) {
			const char *sa = *(char *const *)pa;
			const char *sb = *(char *const *)pb;
			differ = (sa == NULL) != (sb == NULL) ||
			    (sa != NULL && strcmp(sa, sb) != 0);
		} else {
			/* Scalars only: lists are all reloadable (the unit
			 * test checks the table keeps it that way). */
			differ = memcmp(pa, pb, d->size) != 0;
		}
		if (differ && n < outlen)
			n += (size_t)snprintf(out + n, outlen - n, "%s%s",
			    n > 0 ? ", " : "", d->name);
	}
}

/* ---- lookups and the dump --------------------------------------------- */

/* The row for a dotted name, searching group-list sub-tables too. */
const struct conf_directive *
conf_schema_find(const char *name)
{
	size_t i, j;

	for (i = 0; i < conf_schema_len; i++) {
		const struct conf_directive *d = &conf_schema[i];
		if (strcmp(d->name, name) == 0)
			return d;
		for (j = 0; j < d->nfields; j++)
			if (strcmp(d->fields[j].name, name) == 0)
				return &d->fields[j];
	}
	return NULL;
}

/* A printable name of a row's type. */
const char *
conf_schema_type_name(const struct conf_directive *d, char *buf, size_t len)
{
	const char *const *e;
	size_t n;

	switch (d->type) {
	case CONF_T_STRING:	return "string";
	case CONF_T_INT:	return "integer";
	case CONF_T_BOOL:	return "boolean";
	case CONF_T_SIZE:	return "size";
	case CONF_T_DURATION:
		n = strlen(d->name);
		return n > 3 && strcmp(d->name + n - 3, "_ms") == 0 ?
		    "milliseconds" : "seconds";
	case CONF_T_PORT:	return "port";
	case CONF_T_ADDR:	return "address";
	case CONF_T_STRLIST:	return "string list";
	case CONF_T_CIDRLIST:	return "CIDR list";
	case CONF_T_PORTLIST:	return "port list";
	case CONF_T_SECTION:	return "section";
	case CONF_T_GROUPLIST:	return "group list";
	case CONF_T_ENUM:
		n = (size_t)snprintf(buf, len, "enum:");
		for (e = d->enums; *e != NULL && n < len; e++)
			n += (size_t)snprintf(buf + n, len - n, "%s%s",
			    e == d->enums ? " " : "|", *e);
		return buf;
	}
	return "?";
}

static void
dump_row(FILE *f, const struct conf_directive *d)
{
	char tbuf[128];

	fprintf(f, "%s\t%s\t%s\t%s\t%s\n", d->name,
	    conf_schema_type_name(d, tbuf, sizeof tbuf),
	    d->def == NULL ? "-" : d->def[0] == '\0' ? "\"\"" : d->def,
	    (d->flags & CONF_F_RELOAD) ? "yes" : "no", d->doc);
}

/* One directive per line: name, type, default, reloadable, doc (tabs). */
void
conf_schema_dump(FILE *f)
{
	size_t i, j;

	for (i = 0; i < conf_schema_len; i++) {
		dump_row(f, &conf_schema[i]);
		for (j = 0; j < conf_schema[i].nfields; j++)
			dump_row(f, &conf_schema[i].fields[j]);
	}
}
