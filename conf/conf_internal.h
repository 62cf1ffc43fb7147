/*
 * conf_internal.h - the schema table shared by the conf/ loader, the
 * schema dump and the unit tests.  Private to conf/ (and tests/unit).
 *
 * One row per directive (STYLE 11).  A row names the field it fills by
 * offset and size, so the loader, the defaults, conf_free() and
 * conf_reload_diff() are generic loops over the table; nothing else
 * knows the list of directives.  Group lists (listen, filter.acls,
 * filter.rules) are one row whose `fields` point at a sub-table
 * describing one element; element rows' offsets are into the element
 * struct (struct conf_listen, conf_acl, conf_rule).
 */
#ifndef SLUICE_CONF_INTERNAL_H
#define SLUICE_CONF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

enum conf_type {
	CONF_T_STRING,		/* char * */
	CONF_T_INT,		/* int, bounded */
	CONF_T_BOOL,		/* bool */
	CONF_T_SIZE,		/* size_t or uint64_t; "256M" or plain bytes */
	CONF_T_DURATION,	/* int seconds (or ms when the name ends in _ms) */
	CONF_T_PORT,		/* int 1..65535 */
	CONF_T_ENUM,		/* int-sized enum, or bool (index 0/1) */
	CONF_T_ADDR,		/* char *, an IPv4 or IPv6 literal */
	CONF_T_STRLIST,		/* char **, count */
	CONF_T_CIDRLIST,	/* struct cidr *, count */
	CONF_T_PORTLIST,	/* int *, count */
	CONF_T_SECTION,		/* a group of further directives */
	CONF_T_GROUPLIST,	/* array of structs, count; see fields */
};

/* Row flags. */
#define CONF_F_RELOAD	0x1	/* takes effect on SIGHUP without restart */
#define CONF_F_REQUIRED	0x2	/* must be given when its parent is */

/* Extra validation of one string (or list element): 0, or -1 and a
 * static explanation in *why. */
typedef int (*conf_check_fn)(const char *s, const char **why);

struct conf_directive {
	const char *name;		/* dotted path, "timeouts.connect" */
	enum conf_type type;
	size_t off, size;		/* the field (pointer for lists) */
	size_t cnt_off;			/* lists: the size_t count field */
	const char *def;		/* default, in config syntax sans quotes;
					 * lists comma-separated; NULL = unset */
	int64_t min, max;		/* INT/DURATION/SIZE bounds */
	const char *const *enums;	/* ENUM: NULL-terminated names */
	conf_check_fn check;		/* STRING/STRLIST extra check */
	unsigned flags;
	const struct conf_directive *fields;	/* GROUPLIST element rows */
	size_t nfields, elem_size, line_off;	/* GROUPLIST element shape */
	const char *doc;		/* one line for dump and man page */
};

extern const struct conf_directive conf_schema[];
extern const size_t conf_schema_len;

/* A printable name of a row's type ("size", "enum: squid|combined"). */
const char *conf_schema_type_name(const struct conf_directive *d,
    char *buf, size_t len);
/* The row for a dotted name, searching group-list sub-tables too. */
const struct conf_directive *conf_schema_find(const char *name);

/* The field a row fills in base (sluice_conf or a group-list element),
 * and a list row's count. */
static inline void *
conf_field(void *base, const struct conf_directive *d)
{
	return (char *)base + d->off;
}

static inline size_t *
conf_count(void *base, const struct conf_directive *d)
{
	return (size_t *)(void *)((char *)base + d->cnt_off);
}

/* Table-driven helpers (conf_schema.c), used by the loader. */
void conf_schema_store_int(void *p, size_t size, int64_t v);
int conf_schema_set_str(void *p, const char *v);
int conf_schema_enum_index(const struct conf_directive *d, const char *v);
int conf_schema_defaults(const struct conf_directive *rows, size_t n,
    void *base);
void conf_schema_free_rows(const struct conf_directive *rows, size_t n,
    void *base);

/* Value checks shared by the loader and the tests. */
int conf_schema_parse_size(const char *s, uint64_t *out);
int conf_schema_check_ip(const char *s, const char **why);

#endif
