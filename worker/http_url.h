/*
 * http_url.h - request-target parsing for a forward proxy.
 *
 * The authority parsed here is the one that sluice connects to, logs,
 * filters and (later) caches under: one parse, used everywhere.
 * Strict: userinfo, fragments, whitespace, non-http schemes, bad ports
 * and hosts with characters outside the reg-name/IP-literal grammar are
 * errors (RFC 3986, RFC 9110 4.2, RFC 9112 3.2).
 */
#ifndef SLUICE_HTTP_URL_H
#define SLUICE_HTTP_URL_H

#include <stdbool.h>
#include <stddef.h>

enum http_url_err {
	URL_OK = 0,
	URL_E_SYNTAX = -1,	/* not a URL of the expected form */
	URL_E_SCHEME = -2,	/* a scheme other than http (https wants CONNECT) */
	URL_E_USERINFO = -3,	/* user:pass@ in the authority */
	URL_E_FRAGMENT = -4,	/* '#' in the target */
	URL_E_HOST = -5,	/* empty or invalid host */
	URL_E_PORT = -6,	/* missing (CONNECT), empty, non-digit, 0 or > 65535 */
};

#define URL_HOST_MAX 255

struct http_url {
	char host[URL_HOST_MAX + 1];	/* lower-cased, NUL-terminated, no brackets */
	bool host_is_ipv6;		/* was a [IPv6] literal */
	int port;			/* effective port (80 default for http) */
	bool port_given;
	const char *path;		/* path + query inside the input, or "/" */
	size_t path_len;
};

/* "http://host[:port][/path][?query]" (absolute-form). */
int http_url_parse_absolute(const char *s, size_t n, struct http_url *u);
/* "host:port" (authority-form, CONNECT only: the port is required). */
int http_url_parse_authority(const char *s, size_t n, struct http_url *u);
/* A Host header value "host[:port]" (reverse mode / validation). */
int http_url_parse_host(const char *s, size_t n, struct http_url *u);
/* Origin-form "/path?query" check (no whitespace/CTL/'#'). */
int http_url_check_origin_form(const char *s, size_t n);
const char *http_url_strerror(int err);

#endif
