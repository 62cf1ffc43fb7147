/*
 * test_conf.c - unit tests of the config loader and its schema table.
 *
 * Loads the fixture files in tests/unit/conf/ (SRCDIR is the absolute
 * source folder, set by the build): the DESIGN.md sample, the shipped
 * conf/sluice.conf, defaults, values in every accepted spelling, and one
 * file per error class whose expected message names the exact file:line
 * and directive, since that line is what an operator sees after a failed
 * reload.  The schema table itself is checked for what the dump, the man
 * page test and conf_reload_diff() rely on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/conf_internal.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif
#define FIXTURE(name) SRCDIR "/tests/unit/conf/" name

static struct sluice_conf *
load_ok(const char *path)
{
	char err[512];
	struct sluice_conf *c = conf_load(path, err, sizeof err);

	if (c == NULL)
		fail_msg("%s: %s", path, err);
	return c;
}

/* ---- accepted files -------------------------------------------------- */

static void
test_design_sample(void **state)
{
	struct sluice_conf *c = load_ok(FIXTURE("design.conf"));

	(void)state;
	assert_string_equal(c->user, "proxy");
	assert_int_equal(c->nlisten, 3);
	assert_string_equal(c->listen[1].address, "::");
	assert_int_equal(c->listen[2].mode, LISTEN_REVERSE);
	assert_string_equal(c->listen[2].origin_host, "127.0.0.1");
	assert_int_equal(c->listen[2].origin_port, 8000);
	assert_int_equal(c->listen[2].line, 11);
	assert_int_equal(c->nclients, 6);
	assert_int_equal(c->nblocked_destinations, 6);
	assert_true(c->memcached_set);
	assert_int_equal(c->memcached.nservers, 1);
	assert_string_equal(c->memcached.secret, "change-me");
	assert_int_equal(c->filter.nacls, 3);
	assert_string_equal(c->filter.acls[1].time, "Mon-Fri 08:00-16:00");
	assert_int_equal(c->filter.acls[2].nurl_regex, 2);
	assert_string_equal(c->filter.acls[2].url_regex[1], "\\bporn");
	assert_int_equal(c->filter.nrules, 4);
	assert_false(c->filter.rules[0].allow);
	assert_true(c->filter.rules[3].allow);
	assert_int_equal(c->filter.rules[1].nwhen, 3);
	assert_string_equal(c->filter.rules[1].when[2], "category:games");
	assert_string_equal(c->admin.address, "127.0.0.1");
	assert_int_equal(c->admin.port, 3129);
	conf_free(c);
}

static void
test_shipped_sample(void **state)
{
	struct sluice_conf *c = load_ok(SRCDIR "/conf/sluice.conf");
	uint8_t lan[16] = { [10] = 0xff, [11] = 0xff, 192, 168, 1, 5 };
	uint8_t pub[16] = { [10] = 0xff, [11] = 0xff, 8, 8, 8, 8 };
	size_t i;

	(void)state;
	/* Loopback only, forward mode, never an open proxy. */
	assert_int_equal(c->nlisten, 2);
	for (i = 0; i < c->nlisten; i++) {
		assert_int_equal(c->listen[i].mode, LISTEN_FORWARD);
		assert_int_equal(c->listen[i].port, 3128);
		assert_true(strcmp(c->listen[i].address, "127.0.0.1") == 0 ||
		    strcmp(c->listen[i].address, "::1") == 0);
	}
	assert_true(netaddr_cidr_match_any(c->clients, c->nclients, lan));
	assert_false(netaddr_cidr_match_any(c->clients, c->nclients, pub));
	assert_int_equal(c->workers, 0);
	assert_string_equal(c->error_log, "syslog");
	assert_string_equal(c->access_log_path, "/var/log/sluice/access.log");
	assert_string_equal(c->pidfile, "/run/sluice.pid");
	assert_false(c->memcached_set);
	assert_null(c->admin.address);
	conf_free(c);
}

static void
test_defaults(void **state)
{
	struct sluice_conf *c = load_ok(FIXTURE("minimal.conf"));
	uint8_t lo[16] = { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 };

	(void)state;
	assert_string_equal(c->user, "proxy");
	assert_string_equal(c->group, "proxy");
	assert_int_equal(c->workers, 0);
	assert_string_equal(c->pidfile, "/run/sluice.pid");
	assert_string_equal(c->error_log, "syslog");
	assert_string_equal(c->access_log_path, "/var/log/sluice/access.log");
	assert_int_equal(c->access_log_format, LOGFMT_SQUID);
	assert_non_null(c->visible_hostname);
	assert_true(c->visible_hostname[0] != '\0');
	assert_int_equal(c->x_forwarded_for, XFF_ADD);
	assert_int_equal(c->nclients, 2);
	assert_int_equal(c->clients[0].prefix, 96 + 8);
	assert_int_equal(c->clients[1].prefix, 128);
	assert_true(netaddr_cidr_match_any(c->clients, c->nclients, lo));
	assert_int_equal(c->nconnect_ports, 1);
	assert_int_equal(c->connect_ports[0], 443);
	assert_int_equal(c->nblocked_destinations, 11);
	assert_true(netaddr_cidr_match_any(c->blocked_destinations,
	    c->nblocked_destinations, lo));
	{
		/* "::" reaches this host too (HOSTILE 5): blocked by default */
		static const uint8_t any6[16] = { 0 };
		assert_true(netaddr_cidr_match_any(c->blocked_destinations,
		    c->nblocked_destinations, any6));
	}
	assert_int_equal(c->ndns_servers, 0);
	assert_int_equal(c->dns_negative_ttl, 30);
	assert_int_equal(c->timeouts.client_header, 30);
	assert_int_equal(c->timeouts.keepalive, 60);
	assert_int_equal(c->timeouts.connect, 10);
	assert_int_equal(c->timeouts.upstream, 60);
	assert_int_equal(c->timeouts.idle, 300);
	assert_int_equal(c->timeouts.shutdown, 30);
	assert_int_equal(c->limits.header_size, 64 * 1024);
	assert_int_equal(c->limits.header_fields, 100);
	assert_int_equal(c->limits.uri_size, 16 * 1024);
	assert_int_equal(c->limits.request_body, 0);
	assert_int_equal(c->cache.size, 256ULL << 20);
	assert_int_equal(c->cache.max_object_size, 16ULL << 20);
	assert_string_equal(c->cache.shm_name, "/sluice");
	assert_false(c->cache.persist);
	assert_false(c->memcached_set);
	assert_int_equal(c->memcached.mode, MC_SPILL);
	assert_int_equal(c->memcached.timeout_ms, 50);
	assert_int_equal(c->memcached.max_object_size, 64ULL << 20);
	assert_int_equal(c->memcached.nservers, 0);
	assert_null(c->filter.lists);
	assert_int_equal(c->filter.nacls, 0);
	assert_int_equal(c->filter.nrules, 0);
	assert_null(c->admin.address);
	assert_int_equal(c->listen[0].mode, LISTEN_FORWARD);
	assert_null(c->listen[0].origin);
	assert_string_equal(c->path, FIXTURE("minimal.conf"));
	conf_free(c);
}

static void
test_values(void **state)
{
	struct sluice_conf *c = load_ok(FIXTURE("values.conf"));

	(void)state;
	assert_string_equal(c->listen[1].origin_host, "::1");
	assert_int_equal(c->listen[1].origin_port, 8000);
	assert_string_equal(c->listen[2].origin_host, "origin.example");
	assert_int_equal(c->listen[2].origin_port, 80);
	/* Host bits are cleared: 10.0.0.1/8 is the network 10.0.0.0/8. */
	assert_int_equal(c->clients[0].addr[12], 10);
	assert_int_equal(c->clients[0].addr[15], 0);
	/* A scalar where a list is expected is a list of one. */
	assert_int_equal(c->nconnect_ports, 1);
	assert_int_equal(c->connect_ports[0], 443);
	assert_int_equal(c->limits.header_size, 8192);
	assert_int_equal(c->limits.uri_size, 1024);
	assert_int_equal(c->limits.request_body, 10ULL << 20);
	assert_int_equal(c->cache.size, 2147483647ULL);
	assert_true(c->cache.persist);
	assert_true(c->memcached_set);
	assert_int_equal(c->memcached.mode, MC_SHARED);
	assert_int_equal(c->memcached.nservers, 2);
	assert_int_equal(c->ndns_servers, 3);
	assert_string_equal(c->dns_servers[2], "[2001:db8::1]:53");
	assert_int_equal(c->x_forwarded_for, XFF_DELETE);
	assert_string_equal(c->visible_hostname, "proxy.test");
	assert_int_equal(c->filter.acls[0].nport, 2);
	assert_int_equal(c->filter.acls[0].port[1], 8080);
	assert_true(c->filter.rules[0].allow);
	assert_false(c->filter.rules[1].allow);
	conf_free(c);
}

/* ---- one case per error class -------------------------------------------- */

struct err_case {
	const char *name;
	const char *file;		/* fixture basename */
	const char *expect;		/* substring after SRCDIR/tests/unit/conf/ */
};

static const struct err_case err_cases[] = {
	{ "host name with CR LF (header injection)", "bad_hostname.conf",
	  "bad_hostname.conf:3: visible_hostname: \"h??X-Injected: yes\" must be "
	  "a host name" },
	{ "relative pidfile", "relative_pidfile.conf",
	  "relative_pidfile.conf:3: pidfile: \"sluice.pid\" must be an absolute path" },
	{ "relative error_log", "relative_log.conf",
	  "relative_log.conf:3: error_log: \"logs/error.log\" must be \"syslog\"" },
	{ "two listeners on one address and port", "dup_listen.conf",
	  "dup_listen.conf:4: listen: 127.0.0.1 port 3128 is already used by the "
	  "listener at line 3" },
	{ "unknown directive with suggestion", "unknown.conf",
	  "unknown.conf:3: unknown directive \"wokers\" (did you mean \"workers\"?)" },
	{ "nested unknown directive", "nested_unknown.conf",
	  "nested_unknown.conf:4: unknown directive \"timeouts.conect\" "
	  "(did you mean \"timeouts.connect\"?)" },
	{ "directive at the wrong level", "wrong_level.conf",
	  "wrong_level.conf:2: unknown directive \"connect\" "
	  "(did you mean \"timeouts.connect\"?)" },
	{ "wrong type", "wrong_type.conf",
	  "wrong_type.conf:3: user: expected a string, got an integer" },
	{ "float where an integer is expected", "float_int.conf",
	  "float_int.conf:2: workers: expected an integer, got a float" },
	{ "out of range", "range.conf",
	  "range.conf:3: timeouts.connect: expected an integer between 1 and "
	  "86400, got 0" },
	{ "bad CIDR", "bad_cidr.conf",
	  "bad_cidr.conf:3: clients: \"10.0.0.0/33\" is not a valid CIDR "
	  "(prefix length over 32)" },
	{ "bad port", "bad_port.conf",
	  "bad_port.conf:3: listen.port: expected a port number between 1 "
	  "and 65535, got 65536" },
	{ "bad enum", "bad_enum.conf",
	  "bad_enum.conf:2: access_log.format: expected \"squid\" or "
	  "\"combined\", got \"apache\"" },
	{ "size out of range", "bad_size.conf",
	  "bad_size.conf:2: cache.size: expected a size between 1M and 1T, "
	  "got \"2T\"" },
	{ "missing listen", "no_listen.conf",
	  "no_listen.conf: listen: at least one listener is required" },
	{ "reverse without origin", "reverse_no_origin.conf",
	  "reverse_no_origin.conf:3: listen.origin: required when mode is "
	  "\"reverse\"" },
	{ "forward with origin", "forward_origin.conf",
	  "forward_origin.conf:2: listen.origin: only allowed with mode = "
	  "\"reverse\"" },
	{ "rule naming an undefined acl", "undefined_acl.conf",
	  "undefined_acl.conf:5: filter.rules.when: \"teachers\" is not a "
	  "defined ACL" },
	{ "duplicate acl name", "dup_acl.conf",
	  "dup_acl.conf:4: filter.acls.name: \"students\" is already defined "
	  "at line 3" },
	{ "admin address not an IP literal", "admin_host.conf",
	  "admin_host.conf:2: admin.address: \"localhost\" is not an IPv4 or "
	  "IPv6 address" },
	{ "unknown field in a group-list element", "acl_unknown.conf",
	  "acl_unknown.conf:4: unknown directive \"filter.acls.scr\" "
	  "(did you mean \"filter.acls.src\"?)" },
	{ "category without filter.lists", "category_no_lists.conf",
	  "category_no_lists.conf:3: filter.rules.when: \"category:adult\" "
	  "needs filter.lists to be set" },
	{ "memcached servers without a secret", "memcached_no_secret.conf",
	  "memcached_no_secret.conf:3: memcached.secret: required when "
	  "memcached.servers is set" },
	{ "syntax error", "syntax.conf", "syntax.conf:3: syntax error" },
	{ "missing file", "does_not_exist.conf",
	  "does_not_exist.conf: cannot open: No such file or directory" },
};

static void
test_error_case(void **state)
{
	const struct err_case *ec = *state;
	char path[1024], err[512], want[1024];
	struct sluice_conf *c;

	snprintf(path, sizeof path, "%s/tests/unit/conf/%s", SRCDIR, ec->file);
	snprintf(want, sizeof want, "%s/tests/unit/conf/%s", SRCDIR, ec->expect);
	c = conf_load(path, err, sizeof err);
	if (c != NULL) {
		conf_free(c);
		fail_msg("%s was accepted", path);
	}
	/* One line, and it starts with the file name. */
	assert_null(strchr(err, '\n'));
	if (strncmp(err, want, strlen(want)) != 0) {
		print_message("# got  \"%s\"\n# want \"%s\"\n", err, want);
		fail();
	}
}

static void
test_error_truncated(void **state)
{
	char err[8];

	(void)state;
	assert_null(conf_load(FIXTURE("unknown.conf"), err, sizeof err));
	assert_int_equal(strlen(err), sizeof err - 1);
}

/* ---- reload ------------------------------------------------------------- */

static void
test_reload_diff(void **state)
{
	struct sluice_conf *a = load_ok(FIXTURE("reload_a.conf"));
	struct sluice_conf *b = load_ok(FIXTURE("reload_b.conf"));
	struct sluice_conf *a2 = load_ok(FIXTURE("reload_a.conf"));
	char out[256];

	(void)state;
	/* listen and workers differ too, but they are reloadable. */
	conf_reload_diff(a, b, out, sizeof out);
	assert_string_equal(out, "user, cache.size");
	conf_reload_diff(a, a2, out, sizeof out);
	assert_string_equal(out, "");
	conf_free(a);
	conf_free(b);
	conf_free(a2);
	conf_free(NULL);
}

/* ---- the schema table ---------------------------------------------------- */

static void
check_row(const struct conf_directive *d, const char *parent)
{
	size_t pl;

	assert_non_null(d->name);
	assert_non_null(d->doc);
	if (d->name[0] == '\0' || d->doc[0] == '\0')
		fail_msg("row \"%s\" has an empty name or doc", d->name);
	if (parent != NULL) {
		pl = strlen(parent);
		if (strncmp(d->name, parent, pl) != 0 || d->name[pl] != '.')
			fail_msg("field %s is not under %s", d->name, parent);
	}
	if (d->type == CONF_T_ENUM)
		assert_non_null(d->enums);
	/* conf_reload_diff() compares scalars only. */
	if (!(d->flags & CONF_F_RELOAD))
		assert_true(d->type != CONF_T_STRLIST &&
		    d->type != CONF_T_CIDRLIST && d->type != CONF_T_PORTLIST &&
		    d->type != CONF_T_GROUPLIST && d->type != CONF_T_SECTION);
	assert_ptr_equal(conf_schema_find(d->name), d);
}

static void
test_schema_table(void **state)
{
	size_t i, j, k;
	const struct conf_directive *d;
	const char *nonreload[] = { "user", "group", "pidfile", "cache.size",
	    "cache.shm_name" };

	(void)state;
	assert_true(conf_schema_len > 40);
	for (i = 0; i < conf_schema_len; i++) {
		d = &conf_schema[i];
		check_row(d, NULL);
		for (k = 0; k < i; k++)
			assert_string_not_equal(conf_schema[k].name, d->name);
		if (d->type == CONF_T_GROUPLIST) {
			assert_non_null(d->fields);
			assert_true(d->nfields > 0);
			for (j = 0; j < d->nfields; j++)
				check_row(&d->fields[j], d->name);
		}
	}
	for (i = 0; i < sizeof nonreload / sizeof nonreload[0]; i++) {
		d = conf_schema_find(nonreload[i]);
		assert_non_null(d);
		assert_false(d->flags & CONF_F_RELOAD);
	}
	assert_true(conf_schema_find("listen")->flags & CONF_F_RELOAD);
	assert_non_null(conf_schema_find("filter.rules.when"));
	assert_non_null(conf_schema_find("listen.origin"));
	assert_null(conf_schema_find("wokers"));
}

static void
test_schema_dump(void **state)
{
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0, rows = 0, want = 0, i;
	FILE *f = open_memstream(&buf, &len);
	int tabs;

	(void)state;
	assert_non_null(f);
	conf_schema_dump(f);
	fclose(f);
	for (i = 0; i < conf_schema_len; i++)
		want += 1 + conf_schema[i].nfields;
	/* Before strtok_r cuts the buffer into lines. */
	assert_non_null(strstr(buf, "timeouts.connect\tseconds\t10\tyes\t"));
	assert_non_null(strstr(buf, "cache.size\tsize\t256M\tno\t"));
	assert_non_null(strstr(buf, "filter.acls.src\tCIDR list\t"));
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		const char *p;
		for (tabs = 0, p = line; *p != '\0'; p++)
			tabs += *p == '\t';
		assert_int_equal(tabs, 4);
		rows++;
	}
	assert_int_equal(rows, want);
	free(buf);
}

static void
test_parse_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(conf_schema_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(conf_schema_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(conf_schema_parse_size("16m", &v), 0);
	assert_int_equal(v, 16ULL << 20);
	assert_int_equal(conf_schema_parse_size("1T", &v), 0);
	assert_int_equal(v, 1ULL << 40);
	assert_int_equal(conf_schema_parse_size("12345", &v), 0);
	assert_int_equal(v, 12345);
	assert_int_equal(conf_schema_parse_size("", &v), -1);
	assert_int_equal(conf_schema_parse_size("K", &v), -1);
	assert_int_equal(conf_schema_parse_size("12Q", &v), -1);
	assert_int_equal(conf_schema_parse_size("12KB", &v), -1);
	assert_int_equal(conf_schema_parse_size("-1", &v), -1);
	assert_int_equal(conf_schema_parse_size(" 1", &v), -1);
	assert_int_equal(conf_schema_parse_size("99999999999999999999", &v), -1);
	assert_int_equal(conf_schema_parse_size("17179869184G", &v), -1);
}

int
main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_design_sample),
		cmocka_unit_test(test_shipped_sample),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_error_truncated),
		cmocka_unit_test(test_reload_diff),
		cmocka_unit_test(test_schema_table),
		cmocka_unit_test(test_schema_dump),
		cmocka_unit_test(test_parse_size),
	};
	enum { NFIXED = sizeof fixed / sizeof fixed[0],
	    NERR = sizeof err_cases / sizeof err_cases[0] };
	struct CMUnitTest tests[NFIXED + NERR];
	size_t i;

	memcpy(tests, fixed, sizeof fixed);
	/* The error table becomes one named test per row. */
	for (i = 0; i < NERR; i++) {
		memset(&tests[NFIXED + i], 0, sizeof tests[0]);
		tests[NFIXED + i].name = err_cases[i].name;
		tests[NFIXED + i].test_func = test_error_case;
		tests[NFIXED + i].initial_state = (void *)&err_cases[i];
	}
	return _cmocka_run_group_tests("conf", tests, NFIXED + NERR, NULL, NULL);
}
