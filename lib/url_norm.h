/*
 * url_norm.h - canonical form of an http URL for the URL filter.
 *
 * The filter must match what the origin will understand, not what the
 * client happened to type: "0x7f.1", "%2e%2e", "BÜCHER.example." and
 * "//a/./b" are all spellings of something a pattern may name.  This
 * module turns the authority and path already parsed by http_url into
 * one canonical string, "host[:port]/path[?query]", so that a pattern
 * written against the canonical form catches every spelling.
 *
 * Pure: no I/O, no logging, no globals.  libidn2 is the only library.
 */
#ifndef SLUICE_URL_NORM_H
#define SLUICE_URL_NORM_H

#include <stdbool.h>
#include <stddef.h>

enum url_norm_err {
	URL_NORM_OK = 0,
	URL_NORM_E_HOST = -1,	/* empty host, bad character, bad IP literal */
	URL_NORM_E_IDN = -2,	/* libidn2 refused the name */
	URL_NORM_E_PORT = -3,	/* port outside 1..65535 */
	URL_NORM_E_PATH = -4,	/* NUL, control or space byte in the path */
	URL_NORM_E_TOOLONG = -5, /* input over a limit, or out too small */
};

/* Longest canonical host (RFC 1035 name; a bracketed IPv6 is shorter). */
#define URL_NORM_HOST_MAX 255
/* Longest host accepted as input (UTF-8 spellings are longer). */
#define URL_NORM_HOST_IN_MAX 1024

/*
 * Canonical form of an http URL for filtering: "host[:port]/path[?query]"
 * written into out (NUL-terminated).  Returns the length, or a negative
 * URL_NORM_E* code (bad input, too long).  The port is left out when it
 * is 80.  Anything from a '#' on in path is dropped.
 */
int url_norm(const char *host, size_t hlen, int port, const char *path,
    size_t plen, char *out, size_t outsz);

/* The host alone, canonical (into out); same returns. */
int url_norm_host(const char *host, size_t hlen, char *out, size_t outsz);

/*
 * The path and query as they should be forwarded when the target has
 * dot segments: unreserved escapes decoded, dot segments removed (RFC
 * 3986 5.2.4, ".;x" and "..;x" included), slashes kept as they are.
 * Same returns as url_norm.  proxy_route forwards this form whenever
 * url_norm_path_has_dots(): the origin then gets the path the filter
 * decided on, not one it might resolve differently.
 */
int url_norm_target(const char *path, size_t plen, char *out, size_t outsz);

/* Does the path (before any '?') have a segment starting with '.' or
 * "%2e"?  A cheap test for "url_norm_target would change it". */
bool url_norm_path_has_dots(const char *path, size_t plen);

/* A static, human-readable string for a URL_NORM_E* code. */
const char *url_norm_strerror(int err);

#endif /* SLUICE_URL_NORM_H */
