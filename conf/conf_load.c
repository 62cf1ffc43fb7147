/*
 * conf_load.c - read sluice.conf with libconfig and fill struct sluice_conf
 * from the schema table (conf_schema.c).
 *
 * The only file that includes libconfig.  It assumes the table is right
 * (tests/unit/test_conf.c checks it) and that nothing else fills the
 * struct.  The loader walks every setting in the file against the table,
 * so an unknown or misspelled name is an error rather than silently
 * ignored; values are checked for type and range from the same row.
 * Every error is one line "FILE:LINE: DIRECTIVE: what was expected", with
 * the line libconfig recorded for the setting, because the operator reads
 * it in a log after a failed reload (the old config keeps running).
 *
 * The result owns plain malloc'd copies of everything and never points
 * into libconfig's memory, so the config object is destroyed before
 * conf_load() returns and the struct can cross fork().  Defaults,
 * conf_free() and conf_reload_diff() are generic walks over the table in
 * conf_schema.c; conf_free() works on a half-filled struct, which is how
 * the error paths here clean up.
 *
 * libconfig reads an integer above INT_MAX without an L suffix as a
 * truncated int and gives no way to notice; sizes should be written as
 * strings with a unit ("5G"), as sluice.conf(5) says.
 */
#include <errno.h>
#include <libconfig.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/conf_internal.h"

struct loadctx {
	const char *path;
	char *err;
	size_t errlen;
	config_t *cfg;
};

/* ---- errors ----------------------------------------------------------- */

/* Write "FILE:LINE: DIRECTIVE: message" (parts omitted when unknown). */
static int __attribute__((format(printf, 4, 5)))
fail(struct loadctx *ctx, const config_setting_t *s, const char *dir,
    const char *fmt, ...)
{
	const char *file = NULL;
	unsigned line = 0;
	size_t n;
	va_list ap;

	if (s != NULL) {
		file = config_setting_source_file(s);
		line = config_setting_source_line(s);
	}
	if (file == NULL)
		file = ctx->path;
	if (line > 0)
		n = (size_t)snprintf(ctx->err, ctx->errlen, "%s:%u: ", file, line);
	else
		n = (size_t)snprintf(ctx->err, ctx->errlen, "%s: ", file);
	if (dir != NULL && n < ctx->errlen)
		n += (size_t)snprintf(ctx->err + n, ctx->errlen - n, "%s: ", dir);
	if (n < ctx->errlen) {
		va_start(ap, fmt);
		vsnprintf(ctx->err + n, ctx->errlen - n, fmt, ap);
		va_end(ap);
	}
	/* Values are quoted in the message: keep it one printable line. */
	for (char *p = ctx->err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -1;
}

/* "an integer", "a string": the type the user actually wrote. */
static const char *
got_type(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:		return "an integer";
	case CONFIG_TYPE_FLOAT:		return "a float";
	case CONFIG_TYPE_STRING:	return "a string";
	case CONFIG_TYPE_BOOL:		return "a boolean";
	case CONFIG_TYPE_ARRAY:		return "an array";
	case CONFIG_TYPE_LIST:		return "a list";
	}
	return "an unknown type";
}

static bool
is_int(const config_setting_t *s)
{
	int t = config_setting_type(s);
	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* ---- suggestions for misspelled names --------------------------------- */

/* Optimal-string-alignment (restricted Damerau-Levenshtein) distance. */
static int
edit_distance(const char *a, const char *b)
{
	int d[65][65];
	int la = (int)strlen(a), lb = (int)strlen(b), i, j, c, v;

	if (la > 64 || lb > 64)
		return 99;
	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			c = a[i - 1] != b[j - 1];
			v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + c < v)
				v = d[i - 1][j - 1] + c;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

static const char *
leaf_of(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot != NULL ? dot + 1 : name;
}

/* Is name's parent exactly prefix (NULL = top level)? */
static bool
parent_is(const char *name, const char *prefix)
{
	const char *dot = strrchr(name, '.');

	if (prefix == NULL)
		return dot == NULL;
	return dot != NULL && (size_t)(dot - name) == strlen(prefix) &&
	    strncmp(name, prefix, strlen(prefix)) == 0;
}

/* The closest row name to a misspelled full name: by the whole dotted
 * name, or by its last part when the user put it at the wrong level
 * ("connect" at top level suggests "timeouts.connect"). */
static const char *
suggest(const char *full, const struct conf_directive *rows, size_t n)
{
	const char *best = NULL, *leaf = leaf_of(full);
	int bestd = 99, limit, dd;
	size_t i, ll = strlen(leaf);

	limit = ll <= 3 ? 1 : 2;
	for (i = 0; i < n; i++) {
		dd = edit_distance(full, rows[i].name);
		if (strcmp(leaf, leaf_of(rows[i].name)) == 0 ||
		    edit_distance(leaf, leaf_of(rows[i].name)) + 1 < dd)
			dd = edit_distance(leaf, leaf_of(rows[i].name)) + 1;
		if (dd < bestd) {
			bestd = dd;
			best = rows[i].name;
		}
	}
	return bestd <= limit ? best : NULL;
}

/* ---- formatting expectations ------------------------------------------ */

/* The friendliest spelling of a size bound: "64K" rather than 65536. */
static const char *
fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char sfx[] = "TGMK";
	int i;

	for (i = 0; i < 4 && v != 0; i++) {
		unsigned shift = (unsigned)(40 - 10 * i);
		if (v % ((uint64_t)1 << shift) == 0) {
			snprintf(buf, len, "%llu%c",
			    (unsigned long long)(v >> shift), sfx[i]);
			return buf;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

/* `expected one of "a", "b" or "c"`, for enum errors. */
static void
enum_choices(const struct conf_directive *d, char *buf, size_t len)
{
	size_t n = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; d->enums[i] != NULL && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s\"%s\"",
		    i == 0 ? "" : d->enums[i + 1] == NULL ? " or " : ", ",
		    d->enums[i]);
}

/* ---- setting values from the file ------------------------------------- */

static int
set_scalar(struct loadctx *ctx, const struct conf_directive *d, void *base,
    const config_setting_t *s)
{
	void *p = conf_field(base, d);
	const char *v, *why;
	char b1[32], b2[32], b3[32], choices[128];
	int64_t iv;
	uint64_t u;
	int t = config_setting_type(s);

	switch (d->type) {
	case CONF_T_STRING:
	case CONF_T_ADDR:
		if (t != CONFIG_TYPE_STRING)
			return fail(ctx, s, d->name, "expected a string, got %s",
			    got_type(s));
		v = config_setting_get_string(s);
		if (d->type == CONF_T_ADDR && conf_schema_check_ip(v, &why) != 0)
			return fail(ctx, s, d->name, "\"%s\" %s", v, why);
		if (d->check != NULL && d->check(v, &why) != 0)
			return fail(ctx, s, d->name, "\"%s\" %s", v, why);
		if (conf_schema_set_str(p, v) != 0)
			return fail(ctx, s, d->name, "out of memory");
		return 0;
	case CONF_T_INT:
	case CONF_T_DURATION:
	case CONF_T_PORT:
		if (!is_int(s))
			return fail(ctx, s, d->name, "expected %s, got %s",
			    d->type == CONF_T_PORT ? "a port number" :
			    "an integer", got_type(s));
		iv = config_setting_get_int64(s);
		if (iv < d->min || iv > d->max)
			return fail(ctx, s, d->name,
			    "expected %s between %lld and %lld, got %lld",
			    d->type == CONF_T_PORT ? "a port number" :
			    "an integer", (long long)d->min, (long long)d->max,
			    (long long)iv);
		conf_schema_store_int(p, d->size, iv);
		return 0;
	case CONF_T_BOOL:
		if (t != CONFIG_TYPE_BOOL)
			return fail(ctx, s, d->name,
			    "expected true or false, got %s", got_type(s));
		conf_schema_store_int(p, d->size, config_setting_get_bool(s));
		return 0;
	case CONF_T_SIZE:
		if (t == CONFIG_TYPE_STRING) {
			v = config_setting_get_string(s);
			if (conf_schema_parse_size(v, &u) != 0)
				return fail(ctx, s, d->name,
				    "expected a size such as \"64K\" (suffix K, "
				    "M, G or T, or none for bytes), got \"%s\"", v);
		} else if (is_int(s)) {
			iv = config_setting_get_int64(s);
			if (iv < 0)
				return fail(ctx, s, d->name,
				    "expected a size, got %lld", (long long)iv);
			u = (uint64_t)iv;
		} else {
			return fail(ctx, s, d->name,
			    "expected a size such as \"64K\", got %s",
			    got_type(s));
		}
		if (u < (uint64_t)d->min || u > (uint64_t)d->max)
			return fail(ctx, s, d->name,
			    "expected a size between %s and %s, got %s%s%s",
			    fmt_size((uint64_t)d->min, b1, sizeof b1),
			    fmt_size((uint64_t)d->max, b2, sizeof b2),
			    t == CONFIG_TYPE_STRING ? "\"" : "",
			    t == CONFIG_TYPE_STRING ?
			    config_setting_get_string(s) :
			    fmt_size(u, b3, sizeof b3),
			    t == CONFIG_TYPE_STRING ? "\"" : "");
		conf_schema_store_int(p, d->size, (int64_t)u);
		return 0;
	case CONF_T_ENUM:
		enum_choices(d, choices, sizeof choices);
		if (t != CONFIG_TYPE_STRING)
			return fail(ctx, s, d->name, "expected %s, got %s",
			    choices, got_type(s));
		v = config_setting_get_string(s);
		if (conf_schema_enum_index(d, v) < 0)
			return fail(ctx, s, d->name, "expected %s, got \"%s\"",
			    choices, v);
		conf_schema_store_int(p, d->size, conf_schema_enum_index(d, v));
		return 0;
	default:
		break;
	}
	return fail(ctx, s, d->name, "internal error: not a scalar");
}

/* String, CIDR and port lists.  A single scalar counts as a one-element
 * list, so `connect_ports = 443;` means what it says. */
static int
set_list(struct loadctx *ctx, const struct conf_directive *d, void *base,
    const config_setting_t *s)
{
	void *p = conf_field(base, d);
	size_t n, i, esz;
	const config_setting_t *e;
	const char *v, *why;
	struct cidr cidr;
	int64_t iv;
	int t = config_setting_type(s);
	bool aggregate = t == CONFIG_TYPE_ARRAY || t == CONFIG_TYPE_LIST;

	if (t == CONFIG_TYPE_GROUP)
		return fail(ctx, s, d->name, "expected a list [ ... ], got a group");
	n = aggregate ? (size_t)config_setting_length(s) : 1;

	/* Replace the default. */
	conf_schema_free_rows(d, 1, base);
	esz = d->type == CONF_T_STRLIST ? sizeof(char *) :
	    d->type == CONF_T_CIDRLIST ? sizeof(struct cidr) : sizeof(int);
	if ((*(void **)p = calloc(n > 0 ? n : 1, esz)) == NULL)
		return fail(ctx, s, d->name, "out of memory");
	*conf_count(base, d) = n;

	for (i = 0; i < n; i++) {
		e = aggregate ? config_setting_get_elem(s, (unsigned)i) : s;
		if (d->type == CONF_T_PORTLIST) {
			if (!is_int(e))
				return fail(ctx, e, d->name,
				    "expected a port number, got %s", got_type(e));
			iv = config_setting_get_int64(e);
			if (iv < 1 || iv > 65535)
				return fail(ctx, e, d->name, "expected a port "
				    "number between 1 and 65535, got %lld",
				    (long long)iv);
			(*(int **)p)[i] = (int)iv;
			continue;
		}
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return fail(ctx, e, d->name, "expected a string, got %s",
			    got_type(e));
		v = config_setting_get_string(e);
		if (d->type == CONF_T_CIDRLIST) {
			if (netaddr_cidr_parse(v, &cidr, &why) != 0)
				return fail(ctx, e, d->name,
				    "\"%s\" is not a valid CIDR (%s)", v, why);
			(*(struct cidr **)p)[i] = cidr;
			continue;
		}
		if (d->check != NULL && d->check(v, &why) != 0)
			return fail(ctx, e, d->name, "\"%s\" %s", v, why);
		if (((*(char ***)p)[i] = strdup(v)) == NULL)
			return fail(ctx, e, d->name, "out of memory");
	}
	return 0;
}

static int walk_group(struct loadctx *ctx, const config_setting_t *grp,
    const char *prefix, const struct conf_directive *rows, size_t nrows,
    void *base);

/* listen = ( { ... } ): mode and origin agree, origin parses. */
static int
check_listen(struct loadctx *ctx, const config_setting_t *e,
    struct conf_listen *l)
{
	const config_setting_t *os = config_setting_get_member(e, "origin");
	const char *o = l->origin, *h, *end, *rest;
	char host[256];
	long port = 80;
	size_t n;

	if (l->mode == LISTEN_FORWARD) {
		if (o != NULL)
			return fail(ctx, os, "listen.origin",
			    "only allowed with mode = \"reverse\"");
		return 0;
	}
	if (o == NULL)
		return fail(ctx, e, "listen.origin",
		    "required when mode is \"reverse\"");
	if (strncmp(o, "http://", 7) != 0)
		goto bad;
	h = o + 7;
	if (*h == '[') {
		end = strchr(h, ']');
		if (end == NULL)
			goto bad;
		n = (size_t)(end - h - 1);
		h++;
		rest = end + 1;
	} else {
		n = strcspn(h, ":/");
		rest = h + n;
	}
	if (n == 0 || n >= sizeof host)
		goto bad;
	memcpy(host, h, n);
	host[n] = '\0';
	if (h[-1] == '[') {
		const char *why;
		if (conf_schema_check_ip(host, &why) != 0 || strchr(host, ':') == NULL)
			goto bad;
	} else if (strspn(host, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n) {
		goto bad;
	}
	if (*rest == ':') {
		char *pend;
		if (rest[1] < '0' || rest[1] > '9')
			goto bad;
		port = strtol(rest + 1, &pend, 10);
		if (port < 1 || port > 65535)
			goto bad;
		rest = pend;
	}
	if (*rest != '\0' && strcmp(rest, "/") != 0)
		goto bad;
	if ((l->origin_host = strdup(host)) == NULL)
		return fail(ctx, os, "listen.origin", "out of memory");
	l->origin_port = (int)port;
	return 0;
bad:
	return fail(ctx, os, "listen.origin",
	    "expected \"http://host[:port]\", got \"%s\"", o);
}

/* One group-list element was filled: checks across its fields. */
static int
check_element(struct loadctx *ctx, const struct conf_directive *d,
    const config_setting_t *e, void *arr, size_t idx)
{
	size_t j;

	if (strcmp(d->name, "listen") == 0)
		return check_listen(ctx, e, (struct conf_listen *)arr + idx);
	if (strcmp(d->name, "filter.acls") == 0) {
		struct conf_acl *a = arr;
		for (j = 0; j < idx; j++)
			if (strcmp(a[j].name, a[idx].name) == 0)
				return fail(ctx,
				    config_setting_get_member(e, "name"),
				    "filter.acls.name", "\"%s\" is already "
				    "defined at line %d", a[idx].name, a[j].line);
	}
	return 0;
}

/* listen, filter.acls, filter.rules: a list of groups.  A single group
 * is accepted as a list of one. */
static int
set_grouplist(struct loadctx *ctx, const struct conf_directive *d,
    void *base, const config_setting_t *s)
{
	void **p = conf_field(base, d);
	const config_setting_t *e;
	size_t n, i;
	char *elem;
	int t = config_setting_type(s);

	if (t == CONFIG_TYPE_GROUP)
		n = 1;
	else if (t == CONFIG_TYPE_LIST ||
	    (t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0))
		n = (size_t)config_setting_length(s);
	else
		return fail(ctx, s, d->name,
		    "expected a list of groups ( { ... }, ... ), got %s",
		    got_type(s));

	conf_schema_free_rows(d, 1, base);
	if ((*p = calloc(n > 0 ? n : 1, d->elem_size)) == NULL)
		return fail(ctx, s, d->name, "out of memory");
	for (i = 0; i < n; i++) {
		e = t == CONFIG_TYPE_GROUP ? s :
		    config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP)
			return fail(ctx, e, d->name,
			    "expected a group { ... }, got %s", got_type(e));
		elem = (char *)*p + i * d->elem_size;
		/* Counted before filling so conf_free() sees it on error. */
		*conf_count(base, d) = i + 1;
		if (conf_schema_defaults(d->fields, d->nfields, elem) != 0)
			return fail(ctx, e, d->name, "out of memory");
		*(int *)(void *)(elem + d->line_off) =
		    (int)config_setting_source_line(e);
		if (walk_group(ctx, e, d->name, d->fields, d->nfields, elem) != 0)
			return -1;
		if (check_element(ctx, d, e, *p, i) != 0)
			return -1;
	}
	return 0;
}

/* Every setting in grp must be a row named prefix.NAME; required rows of
 * this level must be present. */
static int
walk_group(struct loadctx *ctx, const config_setting_t *grp,
    const char *prefix, const struct conf_directive *rows, size_t nrows,
    void *base)
{
	const config_setting_t *s;
	const struct conf_directive *d;
	const char *sug;
	char full[256];
	unsigned i, n = (unsigned)config_setting_length(grp);
	size_t r;
	int rc;

	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(grp, i);
		if (prefix != NULL)
			snprintf(full, sizeof full, "%s.%s", prefix,
			    config_setting_name(s));
		else
			snprintf(full, sizeof full, "%s", config_setting_name(s));
		for (d = NULL, r = 0; r < nrows && d == NULL; r++)
			if (strcmp(rows[r].name, full) == 0)
				d = &rows[r];
		if (d == NULL) {
			sug = suggest(full, rows, nrows);
			if (sug != NULL)
				return fail(ctx, s, NULL, "unknown directive "
				    "\"%s\" (did you mean \"%s\"?)", full, sug);
			return fail(ctx, s, NULL, "unknown directive \"%s\"",
			    full);
		}
		switch (d->type) {
		case CONF_T_SECTION:
			if (config_setting_type(s) != CONFIG_TYPE_GROUP)
				return fail(ctx, s, d->name,
				    "expected a group { ... }, got %s",
				    got_type(s));
			rc = walk_group(ctx, s, d->name, rows, nrows, base);
			break;
		case CONF_T_GROUPLIST:
			rc = set_grouplist(ctx, d, base, s);
			break;
		case CONF_T_STRLIST:
		case CONF_T_CIDRLIST:
		case CONF_T_PORTLIST:
			rc = set_list(ctx, d, base, s);
			break;
		default:
			rc = set_scalar(ctx, d, base, s);
			break;
		}
		if (rc != 0)
			return rc;
	}

	for (r = 0; r < nrows; r++) {
		d = &rows[r];
		if (!(d->flags & CONF_F_REQUIRED) || !parent_is(d->name, prefix))
			continue;
		if (config_setting_get_member(grp, leaf_of(d->name)) != NULL)
			continue;
		if (d->type == CONF_T_GROUPLIST)
			continue;	/* reported by the caller with its own words */
		return fail(ctx, grp, d->name, "missing (it is required here)");
	}
	return 0;
}

/* ---- checks across directives ----------------------------------------- */

static bool
valid_category(const char *c)
{
	return *c != '\0' && strspn(c, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(c);
}

/* Every name in a rule's `when` is "all", "category:NAME" or an ACL.
 * Rules may come before the ACLs in the file, hence after the walk. */
static int
check_rules(struct loadctx *ctx, struct sluice_conf *c)
{
	const config_setting_t *rs, *rule, *when, *e;
	size_t i, j, k;
	const char *w;
	bool found;

	rs = config_lookup(ctx->cfg, "filter.rules");
	for (i = 0; i < c->filter.nrules; i++) {
		rule = config_setting_type(rs) == CONFIG_TYPE_GROUP ? rs :
		    config_setting_get_elem(rs, (unsigned)i);
		when = config_setting_get_member(rule, "when");
		if (c->filter.rules[i].nwhen == 0)
			return fail(ctx, when, "filter.rules.when",
			    "expected at least one condition, e.g. [ \"all\" ]");
		for (j = 0; j < c->filter.rules[i].nwhen; j++) {
			w = c->filter.rules[i].when[j];
			e = config_setting_is_aggregate(when) ?
			    config_setting_get_elem(when, (unsigned)j) : when;
			if (strcmp(w, "all") == 0)
				continue;
			if (strncmp(w, "category:", 9) == 0) {
				if (!valid_category(w + 9))
					return fail(ctx, e, "filter.rules.when",
					    "\"%s\": expected \"category:NAME\"", w);
				if (c->filter.lists == NULL)
					return fail(ctx, e, "filter.rules.when",
					    "\"%s\" needs filter.lists to be set", w);
				continue;
			}
			for (found = false, k = 0; k < c->filter.nacls && !found; k++)
				found = strcmp(c->filter.acls[k].name, w) == 0;
			if (!found)
				return fail(ctx, e, "filter.rules.when",
				    "\"%s\" is not a defined ACL, \"all\" or "
				    "\"category:NAME\"", w);
		}
	}
	return 0;
}

static int
check_conf(struct loadctx *ctx, struct sluice_conf *c)
{
	const config_setting_t *s;
	char host[256];

	if (c->nlisten == 0)
		return fail(ctx, config_lookup(ctx->cfg, "listen"), "listen",
		    "at least one listener is required");

	/* Two listeners on one address and port would share one socket and
	 * one of them would never apply (e.g. a reverse and a forward). */
	for (size_t j = 1; j < c->nlisten; j++) {
		struct cidr a, b;
		const char *why;

		if (netaddr_cidr_parse(c->listen[j].address, &a, &why) != 0)
			continue;
		for (size_t i = 0; i < j; i++) {
			if (c->listen[i].port != c->listen[j].port ||
			    netaddr_cidr_parse(c->listen[i].address, &b, &why) != 0 ||
			    memcmp(a.addr, b.addr, 16) != 0)
				continue;
			return fail(ctx, config_setting_get_elem(
			    config_lookup(ctx->cfg, "listen"), (unsigned)j),
			    "listen", "%s port %d is already used by the listener "
			    "at line %d", c->listen[j].address, c->listen[j].port,
			    c->listen[i].line);
		}
	}

	c->memcached_set = config_lookup(ctx->cfg, "memcached") != NULL;
	if (c->memcached.nservers > 0 && c->memcached.secret[0] == '\0') {
		s = config_lookup(ctx->cfg, "memcached.secret");
		return fail(ctx, s != NULL ? s :
		    config_lookup(ctx->cfg, "memcached.servers"),
		    "memcached.secret", "required when memcached.servers is "
		    "set (stored items are authenticated with it)");
	}
	if (c->cache.max_object_size > c->cache.size) {
		s = config_lookup(ctx->cfg, "cache.max_object_size");
		return fail(ctx, s != NULL ? s :
		    config_lookup(ctx->cfg, "cache.size"),
		    "cache.max_object_size", "must not exceed cache.size");
	}
	if (check_rules(ctx, c) != 0)
		return -1;

	if (c->visible_hostname == NULL) {
		if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = '\0';
		if (conf_schema_set_str(&c->visible_hostname, host) != 0)
			return fail(ctx, NULL, "visible_hostname", "out of memory");
	}
	return 0;
}

/* ---- entry points ----------------------------------------------------- */

/* Parse and fully validate path; NULL and one line in err on error. */
struct sluice_conf *
conf_load(const char *path, char *err, size_t errlen)
{
	struct loadctx ctx = { .path = path, .err = err, .errlen = errlen };
	struct sluice_conf *c;
	config_t cfg;
	struct stat st;
	FILE *fp;
	char *dir;
	const char *efile;

	if (errlen > 0)
		err[0] = '\0';
	/* libconfig's own message for a missing file is only "file I/O
	 * error"; say what errno says instead. */
	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(fp);
		snprintf(err, errlen, "%s: cannot open: %s", path,
		    strerror(EISDIR));
		return NULL;
	}
	fclose(fp);

	c = calloc(1, sizeof *c);
	dir = strdup(path);
	if (c != NULL)
		c->path = strdup(path);
	if (c == NULL || c->path == NULL || dir == NULL) {
		snprintf(err, errlen, "%s: out of memory", ctx.path);
		conf_free(c);
		free(dir);
		return NULL;
	}
	config_init(&cfg);
	ctx.cfg = &cfg;
	/* @include paths are relative to the including file's folder. */
	config_set_include_dir(&cfg, dirname(dir));
	if (config_read_file(&cfg, path) != CONFIG_TRUE) {
		efile = config_error_file(&cfg);
		snprintf(err, errlen, "%s:%d: %s", efile != NULL ? efile : path,
		    config_error_line(&cfg), config_error_text(&cfg));
		goto fail;
	}
	if (conf_schema_defaults(conf_schema, conf_schema_len, c) != 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if (walk_group(&ctx, config_root_setting(&cfg), NULL, conf_schema,
	    conf_schema_len, c) != 0 || check_conf(&ctx, c) != 0)
		goto fail;
	config_destroy(&cfg);
	free(dir);
	return c;
fail:
	config_destroy(&cfg);
	free(dir);
	conf_free(c);
	return NULL;
}

