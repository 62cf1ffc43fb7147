/*
 * filter_page.c - load, check and render the block page template.
 *
 * What: filter.block_page is read whole (at most FILTER_PAGE_MAX
 * bytes), checked (no NUL bytes, every %{name} known) and compiled into
 * pieces: a literal span of the template, or a variable.  Rendering
 * measures the escaped values, makes room once and copies the pieces.
 *
 * Assumes: loading runs in the master while the config is read (it may
 * block on the file system); rendering runs in a worker per denial and
 * must be cheap and never fail halfway.  The loaded page is immutable,
 * so workers share it after fork without locks.
 *
 * Why this way: checking the template at load turns a typo in an
 * admin's page into a config error with file:line instead of a broken
 * page at 3 a.m.  Values come from the request (the URL, the Host) and
 * are hostile: every one is HTML-escaped, and a value is never scanned
 * for placeholders, so a URL containing "%{url}" stays text.  The
 * template itself is the admin's HTML and is copied verbatim.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/filter_page.h"

#define LITERAL		(-1)	/* piece kind: template text */
#define NAME_SHOWN	32	/* longest placeholder echoed in errors */

struct piece {
	int var;		/* LITERAL or an index into vars[] */
	size_t off, len;	/* the span of text, for a literal */
};

struct filter_page {
	char *text;		/* the template, NUL-terminated */
	size_t len;
	struct piece *pieces;
	size_t npieces;
};

/* Placeholder names and where their value lives in filter_page_vars. */
static const struct {
	const char *name;
	size_t off;
} vars[] = {
	{ "url",	offsetof(struct filter_page_vars, url) },
	{ "category",	offsetof(struct filter_page_vars, category) },
	{ "rule",	offsetof(struct filter_page_vars, rule) },
	{ "client",	offsetof(struct filter_page_vars, client) },
	{ "time",	offsetof(struct filter_page_vars, time) },
	{ "host",	offsetof(struct filter_page_vars, host) },
	{ "reason",	offsetof(struct filter_page_vars, reason) },
};
#define NVARS	(sizeof(vars) / sizeof(vars[0]))

/*
 * The page shown without filter.block_page: plain, readable, English,
 * no external resources (the client may be blocked from fetching any).
 */
static const char builtin_page[] =
"<!DOCTYPE html>\n"
"<html lang=\"en\">\n"
"<head>\n"
"<meta charset=\"utf-8\">\n"
"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
"<title>Access denied</title>\n"
"<style>\n"
"body { font-family: sans-serif; color: #222; background: #f6f6f6;"
" margin: 0; padding: 2em 1em; }\n"
"main { max-width: 40em; margin: 0 auto; background: #fff;"
" border-top: 4px solid #b00; padding: 1.5em 2em; }\n"
"h1 { font-size: 1.5em; margin-top: 0; }\n"
"table { border-collapse: collapse; width: 100%; }\n"
"th, td { text-align: left; vertical-align: top; padding: .3em .5em;"
" border-bottom: 1px solid #eee; }\n"
"th { width: 8em; color: #555; font-weight: normal; }\n"
"td { word-break: break-all; }\n"
"footer { color: #777; font-size: .85em; margin-top: 1.5em; }\n"
"</style>\n"
"</head>\n"
"<body>\n"
"<main>\n"
"<h1>Access denied</h1>\n"
"<p>The page you asked for was blocked by this proxy's web filter.</p>\n"
"<table>\n"
"<tr><th>URL</th><td>%{url}</td></tr>\n"
"<tr><th>Category</th><td>%{category}</td></tr>\n"
"<tr><th>Rule</th><td>%{rule}</td></tr>\n"
"<tr><th>Reason</th><td>%{reason}</td></tr>\n"
"<tr><th>Your address</th><td>%{client}</td></tr>\n"
"<tr><th>Time</th><td>%{time}</td></tr>\n"
"</table>\n"
"<p>If you believe this is a mistake, contact your administrator.</p>\n"
"<footer>sluice at %{host}</footer>\n"
"</main>\n"
"</body>\n"
"</html>\n";

/* 1-based line of text[off], for error messages. */
static unsigned
line_of(const char *text, size_t off)
{
	unsigned line = 1;

	for (size_t i = 0; i < off; i++)
		line += text[i] == '\n';
	return line;
}

static int
add_piece(struct filter_page *p, size_t *cap, int var, size_t off,
    size_t len)
{
	if (var == LITERAL && len == 0)
		return 0;
	if (p->npieces == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct piece *np = realloc(p->pieces, ncap * sizeof(*np));

		if (np == NULL)
			return -1;
		p->pieces = np;
		*cap = ncap;
	}
	p->pieces[p->npieces++] = (struct piece){ var, off, len };
	return 0;
}

/*
 * Split p->text into pieces.  Returns 0; -1 with err filled in for a
 * template error; -2 when out of memory.
 */
static int
compile(struct filter_page *p, const char *path, char *err, size_t errlen)
{
	const char *t = p->text;
	size_t cap = 0, start = 0, i = 0;

	while (i < p->len) {
		if (t[i] == '\0') {
			snprintf(err, errlen, "%s:%u: block_page: NUL byte",
			    path, line_of(t, i));
			return -1;
		}
		if (t[i] != '%' || i + 1 >= p->len) {
			i++;
			continue;
		}
		if (t[i + 1] == '%') {
			/* keep the first '%' in the span, drop the second */
			if (add_piece(p, &cap, LITERAL, start, i + 1 - start))
				return -2;
			start = i += 2;
			continue;
		}
		if (t[i + 1] != '{') {
			i++;		/* "100%" and friends: plain text */
			continue;
		}
		/* %{name}: the name runs to '}' on the same line */
		size_t n = i + 2, k;
		while (n < p->len && t[n] != '}' && t[n] != '\n' &&
		    t[n] != '\0' && n - (i + 2) < NAME_SHOWN)
			n++;
		if (n >= p->len || t[n] != '}') {
			snprintf(err, errlen,
			    "%s:%u: block_page: unterminated placeholder",
			    path, line_of(t, i));
			return -1;
		}
		for (k = 0; k < NVARS; k++)
			if (strlen(vars[k].name) == n - (i + 2) &&
			    memcmp(vars[k].name, t + i + 2, n - (i + 2)) == 0)
				break;
		if (k == NVARS) {
			char shown[NAME_SHOWN + 1];
			size_t m = n - (i + 2);

			/* the name goes to a log: printable bytes only */
			for (size_t j = 0; j < m; j++) {
				unsigned char ch = (unsigned char)t[i + 2 + j];

				shown[j] = ch > 0x20 && ch < 0x7f ? (char)ch : '?';
			}
			shown[m] = '\0';
			snprintf(err, errlen,
			    "%s:%u: block_page: unknown placeholder %%{%s}",
			    path, line_of(t, i), shown);
			return -1;
		}
		if (add_piece(p, &cap, LITERAL, start, i - start) ||
		    add_piece(p, &cap, (int)k, 0, 0))
			return -2;
		start = i = n + 1;
	}
	if (add_piece(p, &cap, LITERAL, start, p->len - start))
		return -2;
	return 0;
}

/*
 * Read the whole file into *out (NUL-terminated).  Returns 0, or -1
 * with err filled in.
 */
static int
read_template(const char *path, char **out, size_t *outlen, char *err,
    size_t errlen)
{
	struct stat st;
	char *text;
	size_t len = 0;
	int fd;

	/* O_NONBLOCK: a FIFO given by mistake must not hang the load. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: block_page: cannot read: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: block_page: not a regular file",
		    path);
		close(fd);
		return -1;
	}
	/* One byte more than allowed tells "too large" from "just fits". */
	text = malloc(FILTER_PAGE_MAX + 2);
	if (text == NULL) {
		snprintf(err, errlen, "%s: block_page: out of memory", path);
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t k = read(fd, text + len, FILTER_PAGE_MAX + 1 - len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			snprintf(err, errlen, "%s: block_page: cannot read: %s",
			    path, strerror(errno));
			free(text);
			close(fd);
			return -1;
		}
		if (k == 0)
			break;
		len += (size_t)k;
		if (len > FILTER_PAGE_MAX) {
			snprintf(err, errlen,
			    "%s: block_page: larger than %d KiB", path,
			    FILTER_PAGE_MAX / 1024);
			free(text);
			close(fd);
			return -1;
		}
	}
	close(fd);
	text[len] = '\0';
	*out = text;
	*outlen = len;
	return 0;
}

struct filter_page *
filter_page_load(const char *path, char *err, size_t errlen)
{
	struct filter_page *p = calloc(1, sizeof(*p));
	const char *shown = path ? path : "(built-in)";
	int r;

	if (errlen > 0)
		err[0] = '\0';
	if (p == NULL) {
		snprintf(err, errlen, "%s: block_page: out of memory", shown);
		return NULL;
	}
	if (path == NULL) {
		p->len = sizeof(builtin_page) - 1;
		p->text = malloc(p->len + 1);
		if (p->text == NULL) {
			snprintf(err, errlen, "%s: block_page: out of memory",
			    shown);
			free(p);
			return NULL;
		}
		memcpy(p->text, builtin_page, p->len + 1);
	} else if (read_template(path, &p->text, &p->len, err, errlen) < 0) {
		free(p);
		return NULL;
	}
	r = compile(p, shown, err, errlen);
	if (r < 0) {
		if (r == -2)
			snprintf(err, errlen, "%s: block_page: out of memory",
			    shown);
		filter_page_free(p);
		return NULL;
	}
	return p;
}

/* The escaped form of one byte, or NULL when it stands for itself. */
static const char *
escape_of(unsigned char ch)
{
	switch (ch) {
	case '&':	return "&amp;";
	case '<':	return "&lt;";
	case '>':	return "&gt;";
	case '"':	return "&quot;";
	case '\'':	return "&#39;";
	}
	/* Control bytes have no business on the page (and no safe form). */
	if (ch < 0x20 || ch == 0x7f)
		return "?";
	return NULL;
}

static const char *
value_of(const struct filter_page_vars *v, int var)
{
	const char *s = NULL;

	if (v != NULL)
		memcpy(&s, (const char *)v + vars[var].off, sizeof(s));
	return s != NULL ? s : "-";
}

static size_t
escaped_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++) {
		const char *e = escape_of((unsigned char)*s);

		n += e ? strlen(e) : 1;
	}
	return n;
}

size_t
filter_page_length(const struct filter_page *p,
    const struct filter_page_vars *v)
{
	size_t n = 0;

	for (size_t i = 0; i < p->npieces; i++) {
		const struct piece *pc = &p->pieces[i];
		size_t add = pc->var == LITERAL ? pc->len :
		    escaped_len(value_of(v, pc->var));

		if (add > SIZE_MAX - n)
			return SIZE_MAX;	/* cannot be allocated anyway */
		n += add;
	}
	return n;
}

int
filter_page_render(const struct filter_page *p,
    const struct filter_page_vars *v, struct buf *out)
{
	size_t need = filter_page_length(p, v), want;
	char *d;

	if (need == 0)
		return 0;
	if (need == SIZE_MAX) {
		errno = ENOMEM;
		return -1;
	}
	if (out->data != NULL)
		buf_compact(out);
	/* Room for everything up front: nothing can fail halfway. */
	if (need > SIZE_MAX - out->wpos) {
		errno = ENOMEM;
		return -1;
	}
	want = out->wpos + need;
	if (want < out->cap)
		want = out->cap;	/* a released buffer keeps its size */
	if (buf_reserve(out, want) < 0) {
		errno = ENOMEM;
		return -1;
	}
	d = buf_wptr(out);
	for (size_t i = 0; i < p->npieces; i++) {
		const struct piece *pc = &p->pieces[i];

		if (pc->var == LITERAL) {
			memcpy(d, p->text + pc->off, pc->len);
			d += pc->len;
			continue;
		}
		for (const char *s = value_of(v, pc->var); *s; s++) {
			const char *e = escape_of((unsigned char)*s);

			if (e == NULL)
				*d++ = *s;
			else {
				size_t el = strlen(e);

				memcpy(d, e, el);
				d += el;
			}
		}
	}
	out->wpos += need;
	return 0;
}

void
filter_page_free(struct filter_page *p)
{
	if (p == NULL)
		return;
	free(p->pieces);
	free(p->text);
	free(p);
}
