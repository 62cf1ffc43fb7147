/*
 * filter_test.c - sluice -T URL: what would the filter do, and why?
 *
 * Runs the same compile and the same decision a worker runs, on one URL,
 * without a server: loads the config and the lists, reduces the URL to
 * the canonical form a worker would (url_norm), decides, and prints the
 * rule, the category and the list entry or pattern that matched.  This
 * is the answer to "why is this site blocked?".
 *
 * An https:// URL is decided as the tunnel a browser would open: CONNECT
 * host:443.  sluice never sees the path of an HTTPS request.
 *
 * Exit status: 0 allowed, 2 denied, 1 the URL or config is unusable.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/filter.h"
#include "lib/netaddr.h"
#include "master/master.h"
#include "worker/http_url.h"
#include "lib/url_norm.h"

static int
client_addr(const char *s, uint8_t out[16])
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, s, &a4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a4, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6) == 1) {
		memcpy(out, &a6, 16);
		return 0;
	}
	return -1;
}

int
filter_test_main(const struct sluice_conf *c, const char *url,
    const char *client, const char *method)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	struct filter *f = NULL;
	struct filter_req q;
	struct filter_verdict v;
	struct http_url u;
	char err[1024], canon[70000], host[URL_NORM_HOST_MAX + 1], *full = NULL;
	uint8_t caddr[16];
	bool tunnel;
	int n, rc;

	memset(&q, 0, sizeof(q));
	if (!method)
		method = "GET";
	tunnel = strcmp(method, "CONNECT") == 0;
	if (strncasecmp(url, "https://", 8) == 0) {
		/* The browser's tunnel: host and port only. */
		const char *h = url + 8, *end = h + strcspn(h, "/?#");
		full = malloc((size_t)(end - h) + 8);
		if (!full)
			return 1;
		memcpy(full, h, (size_t)(end - h));
		full[end - h] = '\0';
		if (!strchr(full, ':') || (full[0] == '[' && !strstr(full, "]:")))
			strcat(full, ":443");
		tunnel = true;
		method = "CONNECT";
		printf("note:      HTTPS: sluice sees only the tunnel, deciding "
		    "CONNECT %s\n", full);
	} else if (!tunnel && strncasecmp(url, "http://", 7) != 0) {
		full = malloc(strlen(url) + 8);
		if (!full)
			return 1;
		sprintf(full, "http://%s", url);
	}
	const char *in = full ? full : url;
	rc = tunnel ? http_url_parse_authority(in, strlen(in), &u) :
	    http_url_parse_absolute(in, strlen(in), &u);
	if (rc != 0) {
		fprintf(stderr, "sluice: %s: %s\n", url, http_url_strerror(rc));
		free(full);
		return 1;
	}
	if ((n = url_norm_host(u.host, strlen(u.host), host, sizeof(host))) < 0) {
		fprintf(stderr, "sluice: %s: %s\n", url, url_norm_strerror(n));
		free(full);
		return 1;
	}
	if (tunnel)
		/* url_norm_host already brackets an IPv6 literal. */
		n = snprintf(canon, sizeof(canon), "%s:%d", host, u.port);
	else {
		/* As proxy_route does: a path with dot segments is decided
		 * (and forwarded) resolved. */
		const char *path = u.path;
		size_t plen = u.path_len;
		char *rp = NULL;

		if (path && url_norm_path_has_dots(path, plen)) {
			if ((rp = malloc(plen + 2)) == NULL ||
			    (n = url_norm_target(path, plen, rp, plen + 2)) < 0) {
				fprintf(stderr, "sluice: %s: invalid path\n", url);
				free(rp);
				free(full);
				return 1;
			}
			path = rp;
			plen = (size_t)n;
		}
		n = url_norm(u.host, strlen(u.host), u.port, path, plen,
		    canon, sizeof(canon));
		free(rp);
	}
	if (n < 0) {
		fprintf(stderr, "sluice: %s: %s\n", url, url_norm_strerror(n));
		free(full);
		return 1;
	}
	if (client && client_addr(client, caddr) < 0) {
		fprintf(stderr, "sluice: -c %s: not an IPv4 or IPv6 address\n", client);
		free(full);
		return 1;
	}
	if (filter_compile(c, &f, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice: %s\n", err);
		free(full);
		return 1;
	}

	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	q.url = canon;
	q.url_len = (size_t)n;
	/* The worker's host has no brackets (http_url keeps IPv6 bare). */
	if (host[0] == '[') {
		size_t hl = strlen(host);
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	q.host = host;
	q.host_len = strlen(host);
	q.port = u.port;
	q.connect = tunnel;
	q.method = method;
	q.method_len = strlen(method);
	q.client = client ? caddr : NULL;
	q.wday = tm.tm_wday;
	q.minute = tm.tm_hour * 60 + tm.tm_min;
	filter_decide(f, &q, &v);

	printf("URL:       %s\n", url);
	printf("canonical: %s%s\n", tunnel ? "" : "http://", canon);
	printf("method:    %s\n", method);
	printf("client:    %s\n", client ? client :
	    "(none given: src ACLs do not match; use -c ADDRESS)");
	printf("time:      %s %02d:%02d (local)\n", days[tm.tm_wday], tm.tm_hour,
	    tm.tm_min);
	if (!f) {
		printf("decision:  ALLOW (the configuration has no filter rules)\n");
		free(full);
		return 0;
	}
	printf("decision:  %s\n", v.allow ? "ALLOW" : "DENY");
	if (v.reason == FILTER_BY_DEFAULT)
		printf("rule:      none matched (requests no rule allows are denied)\n");
	else
		printf("rule:      %s (%s:%d)%s\n", v.rule_name, c->path, v.rule_line,
		    v.reason == FILTER_BY_LIMIT ? ", stopped by a regex limit" : "");
	if (v.category)
		printf("category:  %s\n", v.category);
	if (v.what)
		printf("matched:   %s\n", v.what);
	filter_explain(f, &v, stdout);
	filter_free(f);
	free(full);
	return v.allow ? 0 : 2;
}
