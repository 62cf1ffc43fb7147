/*
 * filter.c - compile the URL filter (master) and decide requests (worker).
 *
 * Compiling turns the config's ACLs and rules and the category folders
 * into flat tables: an ACL is the AND of its fields, each field an OR
 * over its items (CIDRs, a domain set, a PCRE2 set, ports, methods,
 * time windows); a rule is the AND of its conditions (ACLs, categories,
 * "all").  Deciding walks the rules in order and evaluates each ACL and
 * category at most once per request (a memo cleared per decision), the
 * cheap conditions of a rule first, so a request that a src or port
 * condition rules out never pays for a domain lookup or a regex.
 *
 * Fail closed: a pattern that hits a PCRE2 limit on this URL denies the
 * request (filter.regex_limit_action = "deny", the default) before any
 * later rule could allow it; with "ignore" the pattern does not match.
 *
 * What the regexes see (written in sluice.conf(5)): url_regex and the
 * categories' expressions get "http://" + the canonical URL, or
 * "host:port" for CONNECT; urlpath_regex gets the canonical path and
 * query (never for CONNECT); user_agent the User-Agent value as sent.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/filter.h"
#include "conf/filter_domains.h"
#include "conf/filter_lists.h"
#include "conf/filter_page.h"
#include "conf/filter_regex.h"
#include "conf/filter_time.h"
#include "conf/filter_urls.h"
#include "lib/netaddr.h"
#include <xxhash.h>
#include "lib/url_norm.h"

enum { M_UNKNOWN = 0, M_YES, M_NO, M_LIMIT };

struct facl {
	const struct conf_acl *ca;
	struct filter_domains *dom_sfx;		/* ".example.com": it and below */
	struct filter_domains *dom_exact;	/* "example.com": only itself */
	struct filter_rx_set *url_rx, *path_rx, *ua_rx;
	struct filter_time *win; size_t nwin;
	int cost;
};

struct fcat {
	const struct filter_category *lc;
	struct filter_rx_set *rx;		/* its expressions, or NULL */
	char *dir;				/* LISTS/NAME, for -T */
};

enum cond_kind { COND_ALL, COND_ACL, COND_CAT };

struct fcond {
	enum cond_kind kind;
	size_t idx;
	size_t when;			/* its index in the rule's `when` */
	int cost;
};

struct frule {
	const struct conf_rule *cr;
	char name[32];				/* "rule#N" when the rule has none */
	struct fcond *conds; size_t nconds;
};

struct memo {
	uint8_t state;				/* M_* */
	const char *kind, *item;		/* what matched (M_YES) or hit a limit */
	const struct filter_rx_set *rx;		/* M_LIMIT: the set and pattern */
	size_t which;
};

/*
 * One Bloom filter over every category's domain names and URL-entry
 * hosts.  Most requests name a host that no list holds; they are told
 * so by a few bit probes in a table of ~2 bytes per entry instead of a
 * hash probe per label per category (each a likely cache miss in a
 * table of megabytes).  4 probes, >= 12 bits per name: ~0.4% false
 * positives, which only cost the exact lookups.
 */
struct fbloom {
	uint64_t *bits;
	size_t mask;			/* bits - 1; 0 when empty (no pre-check) */
};

struct filter {
	const struct sluice_conf *conf;
	struct filter_lists *lists;
	struct fbloom bloom;
	struct fcat *cats; size_t ncats;
	struct facl *acls; size_t nacls;
	struct frule *rules; size_t nrules;
	struct filter_page *page;
	bool needs_name;
	double compile_s;

	/* per-decision scratch */
	int pre;			/* bloom pre-check: -1 unknown, 0 no list can hold the host, 1 maybe */
	struct memo *acl_memo, *cat_memo;
	char *subj; size_t subj_cap;		/* "http://" + url */
	size_t subj_len;
	const struct filter_req *q;
	char what[600];
};

/* ---- compiling ------------------------------------------------------------ */

static void __attribute__((format(printf, 3, 4)))
ferr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* path as given when absolute, else relative to the config's folder. */
static char *
resolve_path(const char *conf_path, const char *p)
{
	const char *slash;
	char *out;
	size_t dl;

	if (p[0] == '/' || (slash = strrchr(conf_path, '/')) == NULL)
		return strdup(p);
	dl = (size_t)(slash - conf_path);
	if ((out = malloc(dl + strlen(p) + 2)) == NULL)
		return NULL;
	memcpy(out, conf_path, dl);
	out[dl] = '/';
	strcpy(out + dl + 1, p);
	return out;
}

static struct filter_rx_set *
rx_new(const struct sluice_conf *c)
{
	struct filter_rx_set *s = filter_rx_new();

	if (s)
		filter_rx_set_limits(s, (uint32_t)c->filter.regex_match_limit,
		    (uint32_t)c->filter.regex_depth_limit, 1024 * 1024);
	return s;
}

/* A set from the ACL's pattern list; errors name the ACL's line. */
static int
acl_rx(const struct sluice_conf *c, const struct conf_acl *a, const char *field,
    char **pats, size_t n, struct filter_rx_set **out, char *err, size_t errlen)
{
	char why[256];
	size_t i;

	if (n == 0)
		return 0;
	if ((*out = rx_new(c)) == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		if (filter_rx_add(*out, pats[i], strlen(pats[i]), (uint32_t)i, 0,
		    why, sizeof(why)) < 0) {
			ferr(err, errlen, "%s:%d: filter.acls.%s: ACL \"%s\": %s in \"%s\"",
			    c->path, a->line, field, a->name, why, pats[i]);
			return -1;
		}
	}
	if (filter_rx_build(*out) == 0)
		return 0;
nomem:
	ferr(err, errlen, "%s:%d: filter.acls: out of memory", c->path, a->line);
	return -1;
}

static int
acl_domains(const struct sluice_conf *c, struct facl *fa, char *err, size_t errlen)
{
	const struct conf_acl *a = fa->ca;
	char host[URL_NORM_HOST_MAX + 1];
	size_t i;
	int n;

	if (a->ndst_domain == 0)
		return 0;
	fa->dom_sfx = filter_domains_new();
	fa->dom_exact = filter_domains_new();
	if (!fa->dom_sfx || !fa->dom_exact)
		goto nomem;
	for (i = 0; i < a->ndst_domain; i++) {
		const char *d = a->dst_domain[i];
		bool sfx = d[0] == '.';

		n = url_norm_host(d + sfx, strlen(d + sfx), host, sizeof(host));
		if (n < 0 || filter_domains_add(sfx ? fa->dom_sfx : fa->dom_exact,
		    host, (size_t)n) < 0) {
			ferr(err, errlen, "%s:%d: filter.acls.dst_domain: ACL \"%s\": "
			    "\"%s\" is not a domain name (%s)", c->path, a->line,
			    a->name, d, n < 0 ? url_norm_strerror(n) : "bad label");
			return -1;
		}
	}
	if (filter_domains_build(fa->dom_sfx) == 0 &&
	    filter_domains_build(fa->dom_exact) == 0)
		return 0;
nomem:
	ferr(err, errlen, "%s:%d: filter.acls: out of memory", c->path, a->line);
	return -1;
}

/* "Mon-Fri 08:00-16:00; Sat 09:00-12:00": windows separated by ';'. */
static int
acl_time(const struct sluice_conf *c, struct facl *fa, char *err, size_t errlen)
{
	const struct conf_acl *a = fa->ca;
	const char *s = a->time, *why = NULL;
	char one[FILTER_TIME_MAX_LEN + 1];
	size_t n = 1, len;

	if (s == NULL)
		return 0;
	for (const char *p = s; *p; p++)
		n += *p == ';';
	if ((fa->win = calloc(n, sizeof(*fa->win))) == NULL) {
		ferr(err, errlen, "%s:%d: filter.acls: out of memory", c->path, a->line);
		return -1;
	}
	for (;;) {
		const char *semi = strchr(s, ';');

		len = semi ? (size_t)(semi - s) : strlen(s);
		if (len > FILTER_TIME_MAX_LEN)
			why = "window too long";
		else {
			memcpy(one, s, len);
			one[len] = '\0';
			if (filter_time_parse(one, &fa->win[fa->nwin], &why) == 0)
				fa->nwin++;
		}
		if (why) {
			ferr(err, errlen, "%s:%d: filter.acls.time: ACL \"%s\": %s in "
			    "\"%.*s\" (expected e.g. \"Mon-Fri 08:00-16:00\"; windows "
			    "separated by ';')", c->path, a->line, a->name, why,
			    (int)(len > 80 ? 80 : len), s);
			return -1;
		}
		if (!semi)
			return 0;
		s = semi + 1;
	}
}

static int
acl_compile(const struct sluice_conf *c, struct facl *fa, char *err, size_t errlen)
{
	const struct conf_acl *a = fa->ca;
	size_t i;

	if (a->nsrc + a->nurl_regex + a->nurlpath_regex + a->ndst_domain +
	    a->nmethod + a->nport + a->nuser_agent == 0 && a->time == NULL) {
		ferr(err, errlen, "%s:%d: filter.acls: ACL \"%s\" has no condition "
		    "(src, dst_domain, url_regex, urlpath_regex, port, method, time "
		    "or user_agent)", c->path, a->line, a->name);
		return -1;
	}
	for (i = 0; i < a->nmethod; i++) {
		const char *m = a->method[i];
		if (*m == '\0' || strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_") != strlen(m)) {
			ferr(err, errlen, "%s:%d: filter.acls.method: ACL \"%s\": "
			    "\"%s\": expected an upper-case method such as \"POST\" "
			    "(methods are case-sensitive)", c->path, a->line, a->name, m);
			return -1;
		}
	}
	if (acl_domains(c, fa, err, errlen) < 0 || acl_time(c, fa, err, errlen) < 0 ||
	    acl_rx(c, a, "url_regex", a->url_regex, a->nurl_regex, &fa->url_rx,
	    err, errlen) < 0 ||
	    acl_rx(c, a, "urlpath_regex", a->urlpath_regex, a->nurlpath_regex,
	    &fa->path_rx, err, errlen) < 0 ||
	    acl_rx(c, a, "user_agent", a->user_agent, a->nuser_agent, &fa->ua_rx,
	    err, errlen) < 0)
		return -1;
	fa->cost = (fa->url_rx || fa->path_rx || fa->ua_rx) ? 3 : fa->dom_sfx ? 2 : 1;
	return 0;
}

static void
bloom_add(void *arg, uint64_t h)
{
	struct fbloom *b = arg;
	uint64_t h2 = (h >> 32) | (h << 32) | 1;

	for (int i = 0; i < 4; i++, h += h2)
		b->bits[(h & b->mask) >> 6] |= 1ull << (h & 63);
}

static bool
bloom_has(const struct fbloom *b, uint64_t h)
{
	uint64_t h2 = (h >> 32) | (h << 32) | 1;

	for (int i = 0; i < 4; i++, h += h2)
		if (!(b->bits[(h & b->mask) >> 6] & (1ull << (h & 63))))
			return false;
	return true;
}

static void
bloom_add_host(void *arg, const char *host, size_t len)
{
	bloom_add(arg, XXH3_64bits(host, len));
}

/* Size and fill the pre-check from every category's sets. */
static int
bloom_build(struct filter *f)
{
	size_t n = 0, bits = 1024;

	for (size_t i = 0; i < f->ncats; i++)
		n += f->cats[i].lc->ndomains + f->cats[i].lc->nurls;
	if (n == 0)
		return 0;
	while (bits < 12 * n)
		bits <<= 1;
	if ((f->bloom.bits = calloc(bits / 64, sizeof(uint64_t))) == NULL)
		return -1;
	f->bloom.mask = bits - 1;
	for (size_t i = 0; i < f->ncats; i++) {
		filter_domains_each_hash(f->cats[i].lc->domains, bloom_add, &f->bloom);
		filter_urls_each_host(f->cats[i].lc->urls, bloom_add_host, &f->bloom);
	}
	return 0;
}

static int
cats_compile(struct filter *f, char *err, size_t errlen)
{
	const struct sluice_conf *c = f->conf;
	char *dir, why[256];
	size_t i, j;

	if (c->filter.lists == NULL)
		return 0;
	if ((dir = resolve_path(c->path, c->filter.lists)) == NULL) {
		ferr(err, errlen, "%s: filter.lists: out of memory", c->path);
		return -1;
	}
	f->lists = filter_lists_load(dir, err, errlen);
	if (!f->lists) {
		free(dir);
		return -1;
	}
	f->ncats = f->lists->ncats;
	if ((f->cats = calloc(f->ncats ? f->ncats : 1, sizeof(*f->cats))) == NULL)
		goto nomem;
	for (i = 0; i < f->ncats; i++) {
		const struct filter_category *lc = &f->lists->cats[i];
		struct fcat *fc = &f->cats[i];

		fc->lc = lc;
		if ((fc->dir = malloc(strlen(dir) + strlen(lc->name) + 2)) == NULL)
			goto nomem;
		sprintf(fc->dir, "%s/%s", dir, lc->name);
		if (lc->nexprs == 0)
			continue;
		if ((fc->rx = rx_new(c)) == NULL)
			goto nomem;
		for (j = 0; j < lc->nexprs; j++) {
			const struct filter_expr *e = &lc->exprs[j];
			/* Category lists are case-insensitive, as they always were. */
			if (filter_rx_add(fc->rx, e->pattern, strlen(e->pattern),
			    (uint32_t)j, FILTER_RX_CASELESS, why, sizeof(why)) < 0) {
				ferr(err, errlen, "%s:%d: invalid expression: %s in \"%.200s\"",
				    e->file, e->line, why, e->pattern);
				free(dir);
				return -1;
			}
		}
		if (filter_rx_build(fc->rx) < 0)
			goto nomem;
	}
	if (bloom_build(f) < 0)
		goto nomem;
	free(dir);
	return 0;
nomem:
	free(dir);
	ferr(err, errlen, "%s: filter.lists: out of memory", c->path);
	return -1;
}

static int
cond_cmp(const void *a, const void *b)
{
	const struct fcond *x = a, *y = b;

	/* Equal costs keep the order the rule was written in. */
	if (x->cost != y->cost)
		return x->cost - y->cost;
	return x->when < y->when ? -1 : x->when > y->when;
}

static int
rules_compile(struct filter *f, char *err, size_t errlen)
{
	const struct sluice_conf *c = f->conf;
	size_t i, j, k;

	f->nrules = c->filter.nrules;
	if ((f->rules = calloc(f->nrules, sizeof(*f->rules))) == NULL)
		goto nomem;
	for (i = 0; i < f->nrules; i++) {
		const struct conf_rule *cr = &c->filter.rules[i];
		struct frule *fr = &f->rules[i];

		fr->cr = cr;
		snprintf(fr->name, sizeof(fr->name), "rule#%zu", i + 1);
		/* The name is one field of a log line and of sluice -T. */
		for (const char *p = cr->name; p && *p; p++)
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
			    *p == '"' || *p == '\\') {
				ferr(err, errlen, "%s:%d: filter.rules.name: \"%s\": use "
				    "printable ASCII without blanks, quotes or backslashes",
				    c->path, cr->line, cr->name);
				return -1;
			}
		if (cr->name && !*cr->name) {
			ferr(err, errlen, "%s:%d: filter.rules.name: empty name",
			    c->path, cr->line);
			return -1;
		}
		if ((fr->conds = calloc(cr->nwhen, sizeof(*fr->conds))) == NULL)
			goto nomem;
		for (j = 0; j < cr->nwhen; j++) {
			const char *w = cr->when[j];
			struct fcond *fc = &fr->conds[fr->nconds];

			fc->when = j;

			if (strcmp(w, "all") == 0) {
				fc->kind = COND_ALL;
				fc->cost = 0;
			} else if (strncmp(w, "category:", 9) == 0) {
				fc->kind = COND_CAT;
				for (k = 0; k < f->ncats; k++)
					if (strcmp(f->cats[k].lc->name, w + 9) == 0)
						break;
				if (k == f->ncats) {
					ferr(err, errlen, "%s:%d: filter.rules.when: category "
					    "\"%s\" has no folder in %s", c->path, cr->line,
					    w + 9, c->filter.lists ? c->filter.lists : "filter.lists");
					return -1;
				}
				fc->idx = k;
				fc->cost = f->cats[k].rx ? 3 : 2;
				f->needs_name = true;
			} else {
				fc->kind = COND_ACL;
				for (k = 0; k < f->nacls; k++)
					if (strcmp(f->acls[k].ca->name, w) == 0)
						break;
				if (k == f->nacls) {	/* conf_load checked this */
					ferr(err, errlen, "%s:%d: filter.rules.when: \"%s\" is "
					    "not a defined ACL", c->path, cr->line, w);
					return -1;
				}
				fc->idx = k;
				fc->cost = f->acls[k].cost;
				if (f->acls[k].dom_sfx || f->acls[k].url_rx)
					f->needs_name = true;
			}
			fr->nconds++;
		}
		qsort(fr->conds, fr->nconds, sizeof(*fr->conds), cond_cmp);
	}
	return 0;
nomem:
	ferr(err, errlen, "%s: filter.rules: out of memory", c->path);
	return -1;
}

int
filter_compile(const struct sluice_conf *c, struct filter **out, char *err,
    size_t errlen)
{
	struct filter *f;
	struct timespec t0, t1;
	size_t i;

	*out = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		ferr(err, errlen, "%s: filter: out of memory", c->path);
		return -1;
	}
	f->conf = c;
	/* ACLs and lists are checked even without rules: sluice -t must
	 * catch a bad list before the rule that uses it is switched on. */
	f->nacls = c->filter.nacls;
	if ((f->acls = calloc(f->nacls ? f->nacls : 1, sizeof(*f->acls))) == NULL) {
		ferr(err, errlen, "%s: filter: out of memory", c->path);
		goto fail;
	}
	for (i = 0; i < f->nacls; i++) {
		f->acls[i].ca = &c->filter.acls[i];
		if (acl_compile(c, &f->acls[i], err, errlen) < 0)
			goto fail;
	}
	if (cats_compile(f, err, errlen) < 0 || rules_compile(f, err, errlen) < 0)
		goto fail;
	if (c->filter.block_page) {
		char *p = resolve_path(c->path, c->filter.block_page);
		f->page = p ? filter_page_load(p, err, errlen) : NULL;
		if (!p)
			ferr(err, errlen, "%s: filter.block_page: out of memory", c->path);
		free(p);
	} else
		f->page = filter_page_load(NULL, err, errlen);
	if (!f->page)
		goto fail;
	f->acl_memo = calloc(f->nacls + 1, sizeof(*f->acl_memo));
	f->cat_memo = calloc(f->ncats + 1, sizeof(*f->cat_memo));
	f->subj_cap = 4096;
	f->subj = malloc(f->subj_cap);
	if (!f->acl_memo || !f->cat_memo || !f->subj) {
		ferr(err, errlen, "%s: filter: out of memory", c->path);
		goto fail;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	f->compile_s = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (f->nrules == 0) {
		filter_free(f);
		return 0;
	}
	*out = f;
	return 0;
fail:
	filter_free(f);
	return -1;
}

void
filter_free(struct filter *f)
{
	size_t i;

	if (!f)
		return;
	for (i = 0; i < f->nacls && f->acls; i++) {
		struct facl *a = &f->acls[i];
		filter_domains_free(a->dom_sfx);
		filter_domains_free(a->dom_exact);
		filter_rx_free(a->url_rx);
		filter_rx_free(a->path_rx);
		filter_rx_free(a->ua_rx);
		free(a->win);
	}
	free(f->acls);
	for (i = 0; i < f->ncats && f->cats; i++) {
		filter_rx_free(f->cats[i].rx);
		free(f->cats[i].dir);
	}
	free(f->cats);
	for (i = 0; i < f->nrules && f->rules; i++)
		free(f->rules[i].conds);
	free(f->rules);
	filter_lists_free(f->lists);
	filter_page_free(f->page);
	free(f->acl_memo);
	free(f->cat_memo);
	free(f->subj);
	free(f->bloom.bits);
	free(f);
}

bool
filter_needs_name(const struct filter *f)
{
	return f && f->needs_name;
}

const struct filter_page *
filter_block_page(const struct filter *f)
{
	return f ? f->page : NULL;
}

/* ---- deciding ------------------------------------------------------------- */

/* Run a set; MATCH / LIMIT are written into m. */
static int
rx_run(const struct filter_rx_set *s, const char *subj, size_t len,
    const char *kind, struct memo *m)
{
	size_t which = 0;
	int r = filter_rx_match(s, subj, len, &which);

	if (r == FILTER_RX_MATCH) {
		m->kind = kind;
		m->item = filter_rx_pattern(s, which);
		return M_YES;
	}
	if (r == FILTER_RX_LIMIT) {
		m->kind = kind;
		m->item = filter_rx_pattern(s, which);
		m->rx = s;
		m->which = which;
		return M_LIMIT;
	}
	return M_NO;
}

/* The regex subject: "http://" + url, or "host:port" for CONNECT. */
static bool
subject(struct filter *f)
{
	const struct filter_req *q = f->q;

	if (f->subj_len)
		return true;
	if (q->url_len + 8 > f->subj_cap) {
		char *n = realloc(f->subj, q->url_len + 8);
		if (!n)
			return false;
		f->subj = n;
		f->subj_cap = q->url_len + 8;
	}
	if (q->connect) {
		memcpy(f->subj, q->url, q->url_len);
		f->subj_len = q->url_len;
	} else {
		memcpy(f->subj, "http://", 7);
		memcpy(f->subj + 7, q->url, q->url_len);
		f->subj_len = q->url_len + 7;
	}
	return true;
}

/* An IP literal matches list entries exactly, never by label suffix. */
static bool
host_is_ip(const struct filter_req *q)
{
	return q->host_len > 0 && (q->host[0] == '[' || memchr(q->host, ':', q->host_len) ||
	    strspn(q->host, "0123456789.") >= q->host_len);
}

static int
eval_acl(struct filter *f, size_t i)
{
	const struct filter_req *q = f->q;
	struct facl *a = &f->acls[i];
	const struct conf_acl *ca = a->ca;
	struct memo *m = &f->acl_memo[i];
	size_t k;
	int r;

	if (ca->nsrc) {
		if (!q->client || !netaddr_cidr_match_any(ca->src, ca->nsrc, q->client))
			return M_NO;
		m->kind = "src";
	}
	if (ca->nport) {
		for (k = 0; k < ca->nport && ca->port[k] != q->port; k++)
			;
		if (k == ca->nport)
			return M_NO;
		m->kind = "port";
	}
	if (ca->nmethod) {
		for (k = 0; k < ca->nmethod; k++)
			if (strlen(ca->method[k]) == q->method_len &&
			    memcmp(ca->method[k], q->method, q->method_len) == 0)
				break;
		if (k == ca->nmethod)
			return M_NO;
		m->kind = "method";
		m->item = ca->method[k];
	}
	if (a->nwin) {
		if (!filter_time_match_any(a->win, a->nwin, q->wday, q->minute))
			return M_NO;
		m->kind = "time";
		m->item = ca->time;
	}
	if (a->dom_sfx) {
		const char *e = filter_domains_match(a->dom_sfx, q->host, q->host_len);
		if (e && host_is_ip(q) && strlen(e) != q->host_len)
			e = NULL;	/* an address matches only itself */
		if (!e) {
			e = filter_domains_match(a->dom_exact, q->host, q->host_len);
			if (e && strlen(e) != q->host_len)
				e = NULL;
		}
		if (!e)
			return M_NO;
		m->kind = "dst_domain";
		m->item = e;
	}
	if (a->ua_rx) {
		if (!q->user_agent)
			return M_NO;
		if ((r = rx_run(a->ua_rx, q->user_agent, q->ua_len, "user_agent", m)) != M_YES)
			return r;
	}
	if (a->path_rx) {
		const char *p = q->connect ? NULL : memchr(q->url, '/', q->url_len);
		if (!p)
			return M_NO;
		if ((r = rx_run(a->path_rx, p, q->url_len - (size_t)(p - q->url),
		    "urlpath_regex", m)) != M_YES)
			return r;
	}
	if (a->url_rx) {
		if (!subject(f))
			return M_LIMIT;
		if ((r = rx_run(a->url_rx, f->subj, f->subj_len, "url_regex", m)) != M_YES)
			return r;
	}
	return M_YES;
}

/* Could any category's domains or URL entries hold this host? */
static int
precheck(struct filter *f)
{
	const struct filter_req *q = f->q;
	size_t hl, skip;

	if (f->bloom.mask == 0)
		return 0;	/* no domain or URL entry at all */
	for (size_t i = 0; i < q->host_len;) {
		const char *dot;

		if (bloom_has(&f->bloom, XXH3_64bits(q->host + i, q->host_len - i)))
			return 1;
		if (host_is_ip(q))
			break;
		if ((dot = memchr(q->host + i, '.', q->host_len - i)) == NULL)
			break;
		i = (size_t)(dot - q->host) + 1;
	}
	/* URL entries are keyed by "host[:port]" without www./wwwN./webN. */
	if (q->connect)
		hl = q->host_len;
	else {
		const char *sl = memchr(q->url, '/', q->url_len);
		hl = sl ? (size_t)(sl - q->url) : q->url_len;
	}
	const char *h = q->connect ? q->host : q->url;
	skip = filter_urls_strip_www(h, hl);
	return bloom_has(&f->bloom, XXH3_64bits(h + skip, hl - skip));
}

static int
eval_cat(struct filter *f, size_t i)
{
	const struct filter_req *q = f->q;
	const struct filter_category *lc = f->cats[i].lc;
	struct memo *m = &f->cat_memo[i];
	const char *e;

	if (f->pre < 0)
		f->pre = precheck(f);
	if (f->pre && lc->domains && (e = filter_domains_match(lc->domains, q->host,
	    q->host_len)) != NULL && (!host_is_ip(q) || strlen(e) == q->host_len)) {
		m->kind = "domain";
		m->item = e;
		return M_YES;
	}
	if (f->pre && lc->urls) {
		/* A tunnel has no path: its host-only entries still apply. */
		char hb[URL_NORM_HOST_MAX + 2];
		const char *u = q->url;
		size_t ul = q->url_len;

		if (q->connect && q->host_len <= URL_NORM_HOST_MAX) {
			memcpy(hb, q->host, q->host_len);
			hb[q->host_len] = '/';
			u = hb;
			ul = q->host_len + 1;
		}
		if ((e = filter_urls_match(lc->urls, u, ul)) != NULL) {
			m->kind = "url";
			m->item = e;
			return M_YES;
		}
	}
	if (f->cats[i].rx) {
		if (!subject(f))
			return M_LIMIT;
		return rx_run(f->cats[i].rx, f->subj, f->subj_len, "expression", m);
	}
	return M_NO;
}

static int
eval_cond(struct filter *f, const struct fcond *c)
{
	struct memo *m;

	switch (c->kind) {
	case COND_ALL:
		return M_YES;
	case COND_ACL:
		m = &f->acl_memo[c->idx];
		if (m->state == M_UNKNOWN)
			m->state = (uint8_t)eval_acl(f, c->idx);
		return m->state;
	case COND_CAT:
		m = &f->cat_memo[c->idx];
		if (m->state == M_UNKNOWN)
			m->state = (uint8_t)eval_cat(f, c->idx);
		return m->state;
	}
	return M_NO;
}

static const struct memo *
cond_memo(const struct filter *f, const struct fcond *c)
{
	return c->kind == COND_ACL ? &f->acl_memo[c->idx] :
	    c->kind == COND_CAT ? &f->cat_memo[c->idx] : NULL;
}

void
filter_decide(struct filter *f, const struct filter_req *q,
    struct filter_verdict *v)
{
	size_t i, j;

	memset(v, 0, sizeof(*v));
	v->rule = -1;
	if (!f) {
		v->allow = true;
		v->rule_name = "none";
		return;
	}
	memset(f->acl_memo, 0, f->nacls * sizeof(*f->acl_memo));
	memset(f->cat_memo, 0, f->ncats * sizeof(*f->cat_memo));
	f->q = q;
	f->subj_len = 0;
	f->pre = -1;
	f->what[0] = '\0';
	for (i = 0; i < f->nrules; i++) {
		const struct frule *r = &f->rules[i];
		int st = M_YES;

		for (j = 0; j < r->nconds && st == M_YES; j++) {
			st = eval_cond(f, &r->conds[j]);
			if (st == M_LIMIT) {
				const struct memo *m = cond_memo(f, &r->conds[j]);
				if (!f->conf->filter.regex_limit_allow) {
					v->allow = false;
					v->reason = FILTER_BY_LIMIT;
					v->rule = (int)i;
					v->rule_line = r->cr->line;
					v->rule_name = r->cr->name ? r->cr->name : r->name;
					v->limit_pattern = m->item;
					v->limit_first = m->rx ?
					    filter_rx_first_limit(m->rx, m->which) : false;
					if (r->conds[j].kind == COND_CAT)
						v->category = f->cats[r->conds[j].idx].lc->name;
					snprintf(f->what, sizeof(f->what), "%s %s hit the "
					    "regex limit", m->kind ? m->kind : "pattern",
					    m->item ? m->item : "?");
					v->what = f->what;
					return;
				}
				/* "ignore": the pattern does not match. */
				st = M_NO;
			}
		}
		if (st != M_YES)
			continue;
		v->allow = r->cr->allow;
		v->reason = FILTER_BY_RULE;
		v->rule = (int)i;
		v->rule_line = r->cr->line;
		v->rule_name = r->cr->name ? r->cr->name : r->name;
		/* Name the most telling condition: a category, else the most
		 * specific (costliest) ACL. */
		const struct fcond *best = NULL;
		for (j = 0; j < r->nconds; j++) {
			const struct fcond *c = &r->conds[j];
			if (c->kind == COND_CAT) {
				best = c;
				break;
			}
			if (c->kind == COND_ACL)
				best = c;
		}
		if (best) {
			const struct memo *m = cond_memo(f, best);
			if (best->kind == COND_CAT)
				v->category = f->cats[best->idx].lc->name;
			if (m->kind) {
				snprintf(f->what, sizeof(f->what), "%s%s%s", m->kind,
				    m->item ? " " : "", m->item ? m->item : "");
				v->what = f->what;
			}
		}
		return;
	}
	v->allow = false;
	v->reason = FILTER_BY_DEFAULT;
	v->rule_name = "default";
}

void
filter_explain(struct filter *f, const struct filter_verdict *v, FILE *out)
{
	size_t j;

	if (!f || v->rule < 0)
		return;
	const struct frule *r = &f->rules[v->rule];
	for (j = 0; j < r->cr->nwhen; j++) {
		const char *w = r->cr->when[j];
		const struct memo *m = NULL;
		const struct fcond *c = NULL;

		for (size_t k = 0; k < r->nconds; k++)
			if (r->conds[k].when == j)
				c = &r->conds[k];
		if (!c)
			continue;
		m = cond_memo(f, c);
		fprintf(out, "  %-24s ", w);
		if (c->kind == COND_ALL)
			fprintf(out, "matches every request\n");
		else if (m->state == M_YES || m->state == M_LIMIT) {
			fprintf(out, "%s", m->state == M_LIMIT ? "regex limit: " : "matched");
			if (m->kind)
				fprintf(out, " by %s%s%s", m->kind, m->item ? " " : "",
				    m->item ? m->item : "");
			if (c->kind == COND_CAT)
				fprintf(out, " (list %s)", f->cats[c->idx].dir);
			fputc('\n', out);
		} else
			fprintf(out, "not evaluated\n");
	}
}

void
filter_summary(const struct filter *f, char *buf, size_t len)
{
	size_t nd = 0, nu = 0, ne = 0, bytes = 0, nojit = 0;

	if (!f) {
		snprintf(buf, len, "no filter rules");
		return;
	}
	for (size_t i = 0; i < f->ncats; i++) {
		nd += f->cats[i].lc->ndomains;
		nu += f->cats[i].lc->nurls;
		ne += f->cats[i].lc->nexprs;
		if (f->cats[i].rx) {
			bytes += filter_rx_bytes(f->cats[i].rx);
			nojit += filter_rx_count(f->cats[i].rx) -
			    filter_rx_jit_count(f->cats[i].rx);
		}
	}
	for (size_t i = 0; i < f->nacls; i++) {
		const struct filter_rx_set *sets[3] = { f->acls[i].url_rx,
		    f->acls[i].path_rx, f->acls[i].ua_rx };
		for (int k = 0; k < 3; k++)
			if (sets[k])
				nojit += filter_rx_count(sets[k]) - filter_rx_jit_count(sets[k]);
	}
	if (f->lists)
		bytes += f->lists->bytes;
	snprintf(buf, len, "%zu rules, %zu ACLs, %zu categories (%zu domains, "
	    "%zu URLs, %zu expressions), %.1f MB, compiled in %.2f s%s",
	    f->nrules, f->nacls, f->ncats, nd, nu, ne, (double)bytes / 1e6,
	    f->compile_s, nojit ? "; WARNING: some patterns could not be "
	    "JIT-compiled and run in the slower interpreter" : "");
}
