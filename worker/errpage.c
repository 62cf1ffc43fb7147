/*
 * errpage.c - the short HTML answers sluice generates itself.
 *
 * The page is built straight into the connection's output buffer: no
 * template files, no allocation.  The URL is HTML-escaped and cut to a
 * bounded length; the hostname comes from the validated config.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "worker/errpage.h"

/* Reason phrase of a status we generate ("Bad Request"). */
const char *
errpage_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 206: return "Partial Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 508: return "Loop Detected";
	default:  return "Error";
	}
}

/* HTML-escape src[0..n) into dst; control bytes become '?'. */
size_t
errpage_escape(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t o = 0;

	if (dstlen == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;
		char one[2] = { src[i], 0 };
		unsigned char ch = (unsigned char)src[i];

		switch (ch) {
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '&': rep = "&amp;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default:
			if (ch < 0x20 || ch == 0x7f)
				one[0] = '?';
			rep = one;
		}
		size_t l = strlen(rep);
		if (o + l + 1 > dstlen)
			break;
		memcpy(dst + o, rep, l);
		o += l;
	}
	dst[o] = '\0';
	return o;
}

/* Append a complete error response to out; see errpage.h. */
int
errpage_build(struct buf *out, int status, const char *detail,
    const char *url, size_t url_len, const char *hostname, bool close)
{
	char body[3072], eurl[1200], edetail[600], ehost[300];
	const char *reason = errpage_reason(status);
	int blen;

	errpage_escape(edetail, sizeof(edetail), detail ? detail : reason,
	    detail ? strlen(detail) : strlen(reason));
	errpage_escape(ehost, sizeof(ehost), hostname, strlen(hostname));
	if (url && url_len > 0) {
		/* A long URL is cut: the page must stay short. */
		errpage_escape(eurl, sizeof(eurl), url, url_len > 256 ? 256 : url_len);
	} else
		eurl[0] = '\0';

	blen = snprintf(body, sizeof(body),
	    "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n"
	    "<body><h1>%d %s</h1>\n<p>%s</p>\n%s%s%s"
	    "<hr><address>sluice at %s</address>\n</body></html>\n",
	    status, reason, status, reason, edetail,
	    eurl[0] ? "<p>URL: <code>" : "", eurl, eurl[0] ? "</code></p>\n" : "",
	    ehost);
	if (blen < 0 || (size_t)blen >= sizeof(body))
		return -1;
	if (buf_reserve(out, out->cap ? out->cap : 16384) < 0)
		return -1;
	buf_compact(out);
	size_t mark = out->wpos;	/* on failure, leave nothing behind */
	if (buf_printf(out,
	    "HTTP/1.1 %d %s\r\n"
	    "Server: sluice\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Length: %d\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s"
	    "\r\n", status, reason, blen,
	    close ? "Connection: close\r\n" : "") < 0 ||
	    buf_append(out, body, (size_t)blen) < 0) {
		out->wpos = mark;
		return -1;
	}
	return blen;
}
