/*
 * filter_lists.c - loads a folder of squidGuard/ufdbGuard-style
 * category folders into per-category domain and URL sets.
 *
 * Layout read: DIR/<category>/{domains,urls,expressions}, each file
 * optional; other files in a category (domains.diff, usage, ...) are
 * ignored, because real blocklists ship them.  Folders are taken in
 * byte order of their names so two loads of one tree always agree.
 *
 * Assumes the lists are admin-supplied but not trusted to be clean:
 * downloaded blocklists carry BOMs, CRLF, comments, IDN names, numeric
 * IP entries and now and then binary junk.  Every line is checked (NUL,
 * length, UTF-8) before it is interpreted, and the first bad line stops
 * the load with "FILE:LINE: what is wrong", so a config check fails
 * loudly instead of a filter silently missing a category.
 *
 * Why this way: a million-line list must load in well under a second,
 * so each file is read with one read() into memory and split in place
 * (no stdio, no per-line allocation), and entries go straight into the
 * sets' arenas.  Entries are normalised with the very functions that
 * canonicalise requests (url_norm), so "BÜCHER.example.", "0x7f.1" or
 * "/a/./b%7e" in a list compare equal to what a client may send.  Pure
 * library code: no logging.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/filter_domains.h"
#include "conf/filter_lists.h"
#include "conf/filter_urls.h"
#include "lib/url_norm.h"

/* A list file larger than this is refused rather than read. */
#define FL_FILE_MAX	((size_t)1 << 30)
/* Quoted line text in messages is cut here (the message is one line). */
#define FL_QUOTE_MAX	200

/* Where errors go: the caller's buffer. */
struct fl_err {
	char *buf;
	size_t len;
};

/* A list file being read: its path (for messages) and its bytes. */
struct fl_file {
	const char *path;
	char *data;
	size_t len;
	size_t pos;
	int line;
};

__attribute__((format(printf, 2, 3)))
static void
fl_error(struct fl_err *e, const char *fmt, ...)
{
	va_list ap;

	if (e->buf == NULL || e->len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(e->buf, e->len, fmt, ap);
	va_end(ap);
}

/*
 * s[0..n) quoted for a one-line message: '"', '\\' and control bytes
 * escaped (a list line must not forge log lines), cut at FL_QUOTE_MAX.
 */
static void
fl_quote(const char *s, size_t n, char *out, size_t outsz)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 8 < outsz; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= FL_QUOTE_MAX) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

/* ---- reading -------------------------------------------------------- */

/*
 * Reads the file name (relative to dirfd) whole.  Returns 0, 1 when it
 * does not exist (a missing list file is fine), -1 on error (reported).
 */
static int
fl_read(int dirfd, const char *name, const char *path, struct fl_file *f,
    struct fl_err *e)
{
	struct stat st;
	size_t cap, len = 0;
	char *buf;
	int fd;

	memset(f, 0, sizeof(*f));
	f->path = path;
	/* O_NONBLOCK: a FIFO planted as "domains" must not hang the load. */
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT)
			return 1;
		fl_error(e, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		fl_error(e, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((uintmax_t)st.st_size > FL_FILE_MAX) {
		fl_error(e, "%s: file larger than %zu bytes", path,
		    FL_FILE_MAX);
		close(fd);
		return -1;
	}
	/* One more byte than stat says, so a file that grew is noticed. */
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (buf == NULL) {
		fl_error(e, "%s: out of memory", path);
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *nb;

			if (cap > FL_FILE_MAX) {
				fl_error(e, "%s: file larger than %zu bytes",
				    path, FL_FILE_MAX);
				goto fail;
			}
			nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				fl_error(e, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n == 0)
			break;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fl_error(e, "%s: cannot read: %s", path,
			    strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	close(fd);
	f->data = buf;
	f->len = len;
	/* A UTF-8 byte-order mark at the very start is not content. */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		f->pos = 3;
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, <= U+10FFFF. */
static bool
fl_utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i - 1 < k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += k + 1;
	}
	return true;
}

static bool
fl_blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * The next content line of f, trimmed, into *lp and *np.  Returns 1 with a
 * line, 0 at the end, -1 on a bad line (reported).  Blank lines and
 * '#' lines are skipped here; inline comments are the caller's choice.
 */
static int
fl_next(struct fl_file *f, const char **lp, size_t *np, struct fl_err *e)
{
	while (f->pos < f->len) {
		char *s = f->data + f->pos;
		size_t rest = f->len - f->pos;
		char *nl = memchr(s, '\n', rest);
		size_t n = nl != NULL ? (size_t)(nl - s) : rest;
		bool ascii = true;

		f->pos += n + (nl != NULL ? 1 : 0);
		f->line++;
		if (memchr(s, '\0', n) != NULL) {
			fl_error(e, "%s:%d: NUL byte (binary file?)", f->path,
			    f->line);
			return -1;
		}
		if (n > 0 && s[n - 1] == '\r')
			n--;		/* CRLF */
		if (n > FILTER_LISTS_LINE_MAX) {
			fl_error(e, "%s:%d: line longer than %d bytes",
			    f->path, f->line, FILTER_LISTS_LINE_MAX);
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)s[i] >= 0x80) {
				ascii = false;
				break;
			}
		}
		if (!ascii && !fl_utf8_ok((const unsigned char *)s, n)) {
			fl_error(e, "%s:%d: invalid UTF-8", f->path, f->line);
			return -1;
		}
		while (n > 0 && fl_blank(s[n - 1]))
			n--;
		while (n > 0 && fl_blank(*s)) {
			s++;
			n--;
		}
		if (n == 0 || s[0] == '#')
			continue;
		*lp = s;
		*np = n;
		return 1;
	}
	return 0;
}

/* Drops a trailing "<blank># comment" (domains and urls lines). */
static size_t
fl_cut_comment(const char *s, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (s[i] == '#' && fl_blank(s[i - 1])) {
			n = i;
			while (n > 0 && fl_blank(s[n - 1]))
				n--;
			break;
		}
	}
	return n;
}

/*
 * Why an ASCII byte cannot be in a name (NULL when it can): the message
 * names the character, so an admin sees at once what to fix.
 */
static const char *
fl_bad_char(unsigned char c, char *tmp, size_t tmpsz)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
	    c >= 0x80)
		return NULL;
	switch (c) {
	case ' ':
		return "space";
	case '\t':
		return "tab";
	case '/':
		return "'/' not allowed (paths belong in the urls file)";
	case ':':
		return "':' not allowed (no ports or IPv6 addresses)";
	case '@':
		return "'@' not allowed";
	}
	if (c < 0x20 || c == 0x7f)
		snprintf(tmp, tmpsz, "control character 0x%02x", c);
	else
		snprintf(tmp, tmpsz, "'%c' not allowed", c);
	return tmp;
}

/* ---- one file of each kind ------------------------------------------ */

/* A domains line: [.|*.]name → canonical host → the set. */
static int
fl_domain_line(struct filter_domains *d, const struct fl_file *f,
    const char *s, size_t n, struct fl_err *e)
{
	char host[URL_NORM_HOST_MAX + 1], tmp[48], q[FL_QUOTE_MAX * 4 + 16];
	const char *why = NULL, *name = s;
	size_t len = n;
	int rc;

	if (len >= 2 && name[0] == '*' && name[1] == '.') {
		name += 2;
		len -= 2;
	} else if (len >= 1 && name[0] == '.') {
		name++;
		len--;
	}
	for (size_t i = 0; i < len && why == NULL; i++)
		why = fl_bad_char((unsigned char)name[i], tmp, sizeof(tmp));
	if (why == NULL && len == 0)
		why = "empty name";
	if (why == NULL && len > URL_NORM_HOST_IN_MAX)
		why = "name too long";
	if (why == NULL) {
		rc = url_norm_host(name, len, host, sizeof(host));
		if (rc < 0)
			why = url_norm_strerror(rc);
		else if (filter_domains_add(d, host, (size_t)rc) == -1)
			why = errno == EINVAL ? "not a valid domain name" :
			    errno == ENOMEM ? "out of memory" :
			    "lists too large";
	}
	if (why == NULL)
		return 0;
	fl_quote(s, n, q, sizeof(q));
	fl_error(e, "%s:%d: invalid domain \"%s\": %s", f->path, f->line, q,
	    why);
	return -1;
}

/* Parses a port of 1..65535; -1 if it is not one. */
static int
fl_port(const char *s, size_t n)
{
	int v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v >= 1 && v <= 65535 ? v : -1;
}

/* A urls line: [http[s]://]host[:port][/path] → canonical → the set. */
/* Slashes in the path of a canonical entry (before any '?'). */
static size_t
fl_slashes(const char *s, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n && s[i] != '?'; i++)
		k += s[i] == '/';
	return k;
}

static int
fl_url_line(struct filter_urls *u, const struct fl_file *f, const char *s,
    size_t n, struct fl_err *e)
{
	char out[3 * FILTER_LISTS_LINE_MAX + URL_NORM_HOST_MAX + 16];
	char tmp[48], q[FL_QUOTE_MAX * 4 + 16];
	const char *why = NULL, *p = s, *host, *colon = NULL;
	size_t len = n, alen, hlen, skip;
	int port = 80, rc;

	/* squidGuard ignores the scheme; an https entry names the same host. */
	if (len >= 7 && strncasecmp(p, "http://", 7) == 0) {
		p += 7;
		len -= 7;
	} else if (len >= 8 && strncasecmp(p, "https://", 8) == 0) {
		p += 8;
		len -= 8;
	}
	for (alen = 0; alen < len && p[alen] != '/' && p[alen] != '?' &&
	    p[alen] != '#'; alen++)
		;
	for (size_t i = 0; i < len && why == NULL; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c <= 0x20 || c == 0x7f)
			why = fl_bad_char(c, tmp, sizeof(tmp));
		else if (c == '@' && i < alen)
			why = "'@' not allowed (no user names)";
	}
	if (why == NULL && alen + 2 < len && p[alen] == '/' &&
	    p[alen + 1] == '/' && alen > 0 && p[alen - 1] == ':')
		why = "unsupported scheme (only http:// and https://)";
	host = p;
	hlen = alen;
	if (why == NULL && hlen > 0 && host[0] == '[') {
		const char *rb = memchr(host, ']', hlen);

		if (rb == NULL)
			why = "unterminated '['";
		else if (rb + 1 < host + hlen) {
			if (rb[1] != ':')
				why = "junk after ']'";
			else
				colon = rb + 1;
		}
	} else if (why == NULL) {
		colon = memchr(host, ':', hlen);
	}
	if (why == NULL && colon != NULL) {
		port = fl_port(colon + 1, (size_t)(host + hlen - colon - 1));
		hlen = (size_t)(colon - host);
		if (port < 0)
			why = "invalid port";
	}
	if (why == NULL && hlen == 0)
		why = "no host";
	if (why == NULL) {
		rc = url_norm(host, hlen, port, p + alen, len - alen, out,
		    sizeof(out));
		if (rc < 0) {
			why = url_norm_strerror(rc);
		} else if (fl_slashes(out, (size_t)rc) > FILTER_URLS_MAX_BOUNDARIES) {
			/* Lookups stop there: an entry deeper could never match. */
			why = "more than 32 path segments";
		} else {
			skip = filter_urls_strip_www(out, (size_t)rc);
			if (filter_urls_add(u, out + skip, (size_t)rc - skip)
			    == -1)
				why = errno == EINVAL ? "URL too long" :
				    errno == ENOMEM ? "out of memory" :
				    "lists too large";
		}
	}
	if (why == NULL)
		return 0;
	fl_quote(s, n, q, sizeof(q));
	fl_error(e, "%s:%d: invalid URL \"%s\": %s", f->path, f->line, q, why);
	return -1;
}

static int
fl_expr_line(struct filter_category *c, const struct fl_file *f,
    const char *s, size_t n, size_t *cap, struct fl_err *e)
{
	struct filter_expr *x;

	if (c->nexprs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;

		x = realloc(c->exprs, ncap * sizeof(*x));
		if (x == NULL)
			goto nomem;
		c->exprs = x;
		*cap = ncap;
	}
	x = &c->exprs[c->nexprs];
	x->pattern = strndup(s, n);
	x->file = strdup(f->path);
	x->line = f->line;
	if (x->pattern == NULL || x->file == NULL) {
		free(x->pattern);
		free(x->file);
		goto nomem;
	}
	c->nexprs++;
	return 0;
nomem:
	fl_error(e, "%s:%d: out of memory", f->path, f->line);
	return -1;
}

enum fl_kind { FL_DOMAINS, FL_URLS, FL_EXPRS };

/* Reads one list file of a category.  0 (also when missing) or -1. */
static int
fl_load_file(struct filter_category *c, int dirfd, const char *catpath,
    enum fl_kind kind, struct fl_err *e)
{
	static const char *const names[] = { "domains", "urls",
	    "expressions" };
	char path[PATH_MAX];
	struct fl_file f;
	const char *s;
	size_t n, cap = 0;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", catpath,
	    names[kind]) >= sizeof(path)) {
		fl_error(e, "%s: path too long", catpath);
		return -1;
	}
	rc = fl_read(dirfd, names[kind], path, &f, e);
	if (rc != 0)
		return rc == 1 ? 0 : -1;
	if (kind == FL_DOMAINS && (c->domains = filter_domains_new()) == NULL)
		goto nomem;
	if (kind == FL_URLS && (c->urls = filter_urls_new()) == NULL)
		goto nomem;
	while ((rc = fl_next(&f, &s, &n, e)) == 1) {
		if (kind != FL_EXPRS) {
			n = fl_cut_comment(s, n);
			if (n == 0)
				continue;
		}
		if (kind == FL_DOMAINS)
			rc = fl_domain_line(c->domains, &f, s, n, e);
		else if (kind == FL_URLS)
			rc = fl_url_line(c->urls, &f, s, n, e);
		else
			rc = fl_expr_line(c, &f, s, n, &cap, e);
		if (rc == -1)
			break;
	}
	free(f.data);
	f.data = NULL;
	if (rc == -1)
		return -1;
	/* The file's set is built now; an empty one is dropped (NULL). */
	if (kind == FL_DOMAINS) {
		if (filter_domains_count(c->domains) == 0) {
			filter_domains_free(c->domains);
			c->domains = NULL;
		} else if (filter_domains_build(c->domains) == -1) {
			goto nomem;
		} else {
			c->ndomains = filter_domains_count(c->domains);
		}
	}
	if (kind == FL_URLS) {
		if (filter_urls_count(c->urls) == 0) {
			filter_urls_free(c->urls);
			c->urls = NULL;
		} else if (filter_urls_build(c->urls) == -1) {
			goto nomem;
		} else {
			c->nurls = filter_urls_count(c->urls);
		}
	}
	/* Trim the pattern array to size (the sum in ->bytes is exact). */
	if (kind == FL_EXPRS && c->nexprs > 0 && c->nexprs < cap) {
		struct filter_expr *x = realloc(c->exprs,
		    c->nexprs * sizeof(*x));

		if (x != NULL)
			c->exprs = x;
	}
	return 0;
nomem:
	free(f.data);
	fl_error(e, "%s: out of memory", path);
	return -1;
}

/* ---- the folder of categories --------------------------------------- */

static bool
fl_valid_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		    c == '-'))
			return false;
	}
	return true;
}

static int
fl_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The category folder names under dir, sorted.  Returns the count (>=
 * 1) or -1 (reported); *out is a malloc'd array of malloc'd names.
 */
static ssize_t
fl_scan(const char *dir, char ***out, struct fl_err *e)
{
	char **names = NULL, q[FL_QUOTE_MAX * 4 + 16];
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *dp;

	*out = NULL;
	dp = opendir(dir);
	if (dp == NULL) {
		fl_error(e, "%s: cannot open: %s", dir, strerror(errno));
		return -1;
	}
	while ((errno = 0, de = readdir(dp)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;	/* ".", "..", hidden folders */
		/* stat, not lstat: a symlinked category folder is common. */
		if (fstatat(dirfd(dp), de->d_name, &st, 0) == -1) {
			fl_quote(de->d_name, strlen(de->d_name), q, sizeof(q));
			fl_error(e, "%s/%s: cannot open: %s", dir, q,
			    strerror(errno));
			goto fail;
		}
		if (!S_ISDIR(st.st_mode))
			continue;	/* README, global_usage, ... */
		if (!fl_valid_name(de->d_name)) {
			fl_quote(de->d_name, strlen(de->d_name), q, sizeof(q));
			fl_error(e, "%s/%s: invalid category name (allowed: "
			    "A-Z a-z 0-9 _ . -)", dir, q);
			goto fail;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nn = realloc(names, ncap * sizeof(*nn));

			if (nn == NULL)
				goto nomem;
			names = nn;
			cap = ncap;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto nomem;
		n++;
	}
	if (errno != 0) {
		fl_error(e, "%s: cannot read: %s", dir, strerror(errno));
		goto fail;
	}
	closedir(dp);
	if (n == 0) {
		fl_error(e, "%s: no category folders", dir);
		free(names);
		return -1;
	}
	qsort(names, n, sizeof(*names), fl_cmp);
	*out = names;
	return (ssize_t)n;
nomem:
	fl_error(e, "%s: out of memory", dir);
fail:
	closedir(dp);
	while (n > 0)
		free(names[--n]);
	free(names);
	return -1;
}

static size_t
fl_cat_bytes(const struct filter_category *c)
{
	size_t b = strlen(c->name) + 1;

	b += filter_domains_bytes(c->domains) + filter_urls_bytes(c->urls);
	b += c->nexprs * sizeof(*c->exprs);
	for (size_t i = 0; i < c->nexprs; i++)
		b += strlen(c->exprs[i].pattern) + 1 +
		    strlen(c->exprs[i].file) + 1;
	return b;
}

struct filter_lists *
filter_lists_load(const char *dir, char *err, size_t errlen)
{
	struct fl_err e = { err, errlen };
	struct filter_lists *l = NULL;
	char base[PATH_MAX], path[PATH_MAX];
	char **names = NULL;
	ssize_t n;
	size_t blen;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (dir == NULL || *dir == '\0') {
		fl_error(&e, "(empty path): no category folders");
		return NULL;
	}
	/* "/l/" and "/l" give the same messages: no "//" in paths. */
	blen = strlen(dir);
	while (blen > 1 && dir[blen - 1] == '/')
		blen--;
	if (blen >= sizeof(base)) {
		fl_error(&e, "%s: path too long", dir);
		return NULL;
	}
	memcpy(base, dir, blen);
	base[blen] = '\0';

	n = fl_scan(base, &names, &e);
	if (n < 0)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (l == NULL || (l->cats = calloc((size_t)n, sizeof(*l->cats))) ==
	    NULL) {
		fl_error(&e, "%s: out of memory", base);
		goto fail;
	}
	l->bytes = sizeof(*l) + (size_t)n * sizeof(*l->cats);
	for (ssize_t i = 0; i < n; i++) {
		struct filter_category *c = &l->cats[l->ncats++];
		int dfd;

		c->name = names[i];
		names[i] = NULL;
		if ((size_t)snprintf(path, sizeof(path), "%s%s%s", base,
		    strcmp(base, "/") == 0 ? "" : "/", c->name) >=
		    sizeof(path)) {
			fl_error(&e, "%s/%s: path too long", base, c->name);
			goto fail;
		}
		dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd == -1) {
			fl_error(&e, "%s: cannot open: %s", path,
			    strerror(errno));
			goto fail;
		}
		if (fl_load_file(c, dfd, path, FL_DOMAINS, &e) == -1 ||
		    fl_load_file(c, dfd, path, FL_URLS, &e) == -1 ||
		    fl_load_file(c, dfd, path, FL_EXPRS, &e) == -1) {
			close(dfd);
			goto fail;
		}
		close(dfd);
		l->bytes += fl_cat_bytes(c);
	}
	free(names);
	return l;
fail:
	if (names != NULL) {
		for (ssize_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	filter_lists_free(l);
	return NULL;
}

const struct filter_category *
filter_lists_find(const struct filter_lists *l, const char *name)
{
	size_t lo = 0, hi;

	if (l == NULL || name == NULL)
		return NULL;
	/* The categories are sorted by strcmp: binary search. */
	hi = l->ncats;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, l->cats[mid].name);

		if (c == 0)
			return &l->cats[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void
filter_lists_free(struct filter_lists *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->ncats; i++) {
		struct filter_category *c = &l->cats[i];

		free(c->name);
		filter_domains_free(c->domains);
		filter_urls_free(c->urls);
		for (size_t j = 0; j < c->nexprs; j++) {
			free(c->exprs[j].pattern);
			free(c->exprs[j].file);
		}
		free(c->exprs);
	}
	free(l->cats);
	free(l);
}
