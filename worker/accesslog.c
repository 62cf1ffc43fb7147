/*
 * accesslog.c - one line per request, Squid native or combined format.
 *
 * Squid native: "time.ms elapsed client code/status bytes method URL
 * user hierarchy/peer type", the format log analysers for Squid read.
 * Combined: the NCSA combined format.  Fields that come from the client
 * or the origin are escaped (log injection), and bounded in length.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker/accesslog.h"

#define AL_BUFSZ	65536
#define AL_FIELD_MAX	2048	/* source bytes kept of one URL / UA field */

struct accesslog {
	char *path;
	enum log_format fmt;
	int fd;
	size_t len;
	uint64_t dropped;
	char buf[AL_BUFSZ];
};

static int
al_open_fd(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
}

/* path NULL or "" gives a log that discards everything. */
struct accesslog *
accesslog_open(const char *path, enum log_format fmt)
{
	struct accesslog *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->fmt = fmt;
	l->fd = -1;
	if (path && *path) {
		l->path = strdup(path);
		if (!l->path || (l->fd = al_open_fd(path)) < 0) {
			int e = errno;
			free(l->path);
			free(l);
			errno = e;
			return NULL;
		}
	}
	return l;
}

/* Reopen after rotation; keeps the old fd when the open fails. */
int
accesslog_reopen(struct accesslog *l)
{
	int fd;

	if (!l || !l->path)
		return 0;
	accesslog_flush(l);
	if ((fd = al_open_fd(l->path)) < 0)
		return -1;
	close(l->fd);
	l->fd = fd;
	return 0;
}

/* Escape a field; see accesslog.h. */
size_t
accesslog_escape(char *dst, size_t dstlen, const char *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (dstlen == 0)
		return 0;
	if (n > AL_FIELD_MAX)
		n = AL_FIELD_MAX;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)src[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
			if (o + 4 >= dstlen)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[ch >> 4];
			dst[o++] = hex[ch & 15];
		} else {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = (char)ch;
		}
	}
	dst[o] = '\0';
	return o;
}

static const char *
al_field(char *tmp, size_t tmplen, const char *s, size_t n, const char *empty)
{
	if (!s || n == 0)
		return empty;
	accesslog_escape(tmp, tmplen, s, n);
	return tmp;
}

/* Append one line for e; flushes when the buffer is nearly full. */
void
accesslog_write(struct accesslog *l, const struct accesslog_entry *e)
{
	char url[AL_FIELD_MAX * 4 + 1], meth[160], ua[1024], ref[1024], ct[160];
	char line[AL_FIELD_MAX * 4 + 2048], filt[300] = "";
	int n;

	if (!l || l->fd < 0)
		return;
	al_field(url, sizeof(url), e->url, e->url_len, "-");
	al_field(meth, sizeof(meth), e->method, e->method_len, "-");
	if (e->rule) {
		/* Two more fields, after the format's own: rule= and category=. */
		char rb[120] = "-", cb[120] = "-";
		if (e->rule[0])
			accesslog_escape(rb, sizeof(rb), e->rule, strlen(e->rule));
		if (e->category && e->category[0])
			accesslog_escape(cb, sizeof(cb), e->category, strlen(e->category));
		for (char *p = rb; *p; p++)
			if (*p == ' ')
				*p = '_';
		snprintf(filt, sizeof(filt), l->fmt == LOGFMT_COMBINED ?
		    " rule=\"%s\" category=\"%s\"" : " rule=%s category=%s", rb, cb);
	}
	if (l->fmt == LOGFMT_COMBINED) {
		char date[64];
		time_t t = (time_t)(e->start_ms / 1000);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(date, sizeof(date), "%d/%b/%Y:%H:%M:%S +0000", &tm);
		n = snprintf(line, sizeof(line),
		    "%s - - [%s] \"%s %s HTTP/1.%d\" %d %llu \"%s\" \"%s\"%s\n",
		    e->client, date, meth, url, e->http_minor, e->status,
		    (unsigned long long)e->bytes,
		    al_field(ref, sizeof(ref), e->referer, e->referer_len, "-"),
		    al_field(ua, sizeof(ua), e->ua, e->ua_len, "-"), filt);
	} else {
		n = snprintf(line, sizeof(line),
		    "%lld.%03d %6lld %s %s/%03d %llu %s %s - %s/%s %s%s\n",
		    (long long)(e->start_ms / 1000), (int)(e->start_ms % 1000),
		    (long long)e->elapsed_ms, e->client, e->code, e->status,
		    (unsigned long long)e->bytes, meth, url, e->hier, e->peer,
		    al_field(ct, sizeof(ct), e->ctype, e->ctype_len, "-"), filt);
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (l->len + (size_t)n > sizeof(l->buf))
		accesslog_flush(l);
	memcpy(l->buf + l->len, line, (size_t)n);
	l->len += (size_t)n;
	if (l->len > sizeof(l->buf) / 2)
		accesslog_flush(l);
}

/* Write what is buffered; returns the lines dropped since the last call. */
uint64_t
accesslog_flush(struct accesslog *l)
{
	uint64_t d;

	if (!l)
		return 0;
	if (l->fd >= 0 && l->len > 0) {
		size_t off = 0;
		while (off < l->len) {
			ssize_t w = write(l->fd, l->buf + off, l->len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				/* Disk full or a broken file: drop whole lines. */
				for (size_t i = off; i < l->len; i++)
					if (l->buf[i] == '\n')
						l->dropped++;
				break;
			}
			off += (size_t)w;
		}
		l->len = 0;
	}
	d = l->dropped;
	l->dropped = 0;
	return d;
}

void
accesslog_close(struct accesslog *l)
{
	if (!l)
		return;
	accesslog_flush(l);
	if (l->fd >= 0)
		close(l->fd);
	free(l->path);
	free(l);
}
