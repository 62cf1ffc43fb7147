/*
 * netaddr.c - IPv4/IPv6 addresses and CIDR networks (see netaddr.h).
 *
 * Assumes nothing beyond inet_pton/inet_ntop.  Every address lives in a
 * 16-byte array; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so that one
 * byte-wise prefix match serves both families and a dual-stack socket's
 * mapped peers match IPv4 client lists.  An IPv4 prefix /n therefore
 * becomes 96+n.  Host bits below the prefix ("10.0.0.1/8") are accepted
 * and cleared, as long-standing proxy configs write them that way; the
 * network is what the operator meant.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lib/netaddr.h"

static const uint8_t v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static bool
is_v4mapped(const uint8_t a[16])
{
	return memcmp(a, v4mapped_prefix, sizeof v4mapped_prefix) == 0;
}

/* Parse "10.0.0.0/8", "::1/128", "fc00::/7" or a bare address. */
int
netaddr_cidr_parse(const char *s, struct cidr *out, const char **why)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash, *p;
	size_t hlen;
	unsigned plen, maxlen, base;
	struct in_addr a4;
	struct in6_addr a6;
	int i;

	*why = NULL;
	slash = strchr(s, '/');
	hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (hlen == 0) {
		*why = "missing address";
		return -1;
	}
	if (hlen >= sizeof host) {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';

	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, host, &a4) == 1) {
		memcpy(out->addr, v4mapped_prefix, sizeof v4mapped_prefix);
		memcpy(out->addr + 12, &a4, 4);
		maxlen = 32;
		base = 96;
	} else if (inet_pton(AF_INET6, host, &a6) == 1) {
		memcpy(out->addr, &a6, 16);
		maxlen = 128;
		base = 0;
	} else {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}

	plen = maxlen;
	if (slash != NULL) {
		p = slash + 1;
		if (*p == '\0') {
			*why = "missing prefix length after '/'";
			return -1;
		}
		/* Digits only (no sign, no spaces); stop counting at 1000
		 * so a long digit string cannot overflow. */
		plen = 0;
		for (; *p != '\0'; p++) {
			if (*p < '0' || *p > '9') {
				*why = "prefix length is not a number";
				return -1;
			}
			if (plen < 1000)
				plen = plen * 10 + (unsigned)(*p - '0');
		}
		if (plen > maxlen) {
			*why = maxlen == 32 ? "prefix length over 32" :
			    "prefix length over 128";
			return -1;
		}
	}
	out->prefix = (uint8_t)(base + plen);

	/* Clear host bits below the prefix. */
	for (i = 0; i < 16; i++) {
		int bits = (int)out->prefix - i * 8;
		if (bits >= 8)
			continue;
		if (bits <= 0)
			out->addr[i] = 0;
		else
			out->addr[i] &= (uint8_t)(0xff00 >> bits);
	}
	return 0;
}

/* Does the address match the network? */
bool
netaddr_cidr_match(const struct cidr *c, const uint8_t addr[16])
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;
	uint8_t mask;

	if (full > 16)
		return false;
	if (memcmp(c->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff00 >> rest);
	return (c->addr[full] & mask) == (addr[full] & mask);
}

/* Any of n networks. */
bool
netaddr_cidr_match_any(const struct cidr *c, size_t n, const uint8_t addr[16])
{
	size_t i;

	for (i = 0; i < n; i++)
		if (netaddr_cidr_match(&c[i], addr))
			return true;
	return false;
}

/* Convert a sockaddr (AF_INET or AF_INET6) to the 16-byte form. */
int
netaddr_from_sockaddr(const struct sockaddr *sa, uint8_t out[16])
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		memcpy(out, v4mapped_prefix, sizeof v4mapped_prefix);
		memcpy(out + 12, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		memcpy(out, &sin6->sin6_addr, 16);
		return 0;
	}
	return -1;
}

/* "1.2.3.4" or "::1"; an IPv4-mapped address prints as IPv4. */
const char *
netaddr_ntop(const uint8_t addr[16], char *buf, size_t len)
{
	const char *r;

	if (len == 0)
		return buf;
	if (is_v4mapped(addr))
		r = inet_ntop(AF_INET, addr + 12, buf, (socklen_t)len);
	else
		r = inet_ntop(AF_INET6, addr, buf, (socklen_t)len);
	if (r == NULL)
		snprintf(buf, len, "?");
	return buf;
}

/* "1.2.3.4:80" or "[::1]:80" of a sockaddr, for logs. */
const char *
netaddr_sockaddr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	uint8_t a[16];
	unsigned port;

	if (len == 0)
		return buf;
	if (netaddr_from_sockaddr(sa, a) != 0) {
		snprintf(buf, len, sa->sa_family == AF_UNIX ? "unix" : "?");
		return buf;
	}
	if (sa->sa_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	else
		port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	netaddr_ntop(a, host, sizeof host);
	if (is_v4mapped(a))
		snprintf(buf, len, "%s:%u", host, port);
	else
		snprintf(buf, len, "[%s]:%u", host, port);
	return buf;
}
