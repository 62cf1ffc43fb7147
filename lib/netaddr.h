/*
 * netaddr.h - IPv4/IPv6 addresses and CIDR networks.
 *
 * Every address is kept as 16 bytes; IPv4 is stored as its IPv4-mapped
 * IPv6 form (::ffff:a.b.c.d), so an IPv4 CIDR such as 127.0.0.0/8 also
 * matches a peer that arrives as ::ffff:127.0.0.1 on a dual-stack socket
 * and vice versa.  Matching is on raw bytes: never on strings.
 */
#ifndef SLUICE_NETADDR_H
#define SLUICE_NETADDR_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct cidr {
	uint8_t addr[16];	/* network, host bits zeroed */
	uint8_t prefix;		/* 0..128, in the 16-byte space */
};

/* Parse "10.0.0.0/8", "::1/128", "fc00::/7" or a bare address (host
 * route).  Returns 0, or -1 with *why set to a static explanation. */
int netaddr_cidr_parse(const char *s, struct cidr *out, const char **why);
/* Does the address match the network? */
bool netaddr_cidr_match(const struct cidr *c, const uint8_t addr[16]);
/* Any of n networks. */
bool netaddr_cidr_match_any(const struct cidr *c, size_t n, const uint8_t addr[16]);
/* Convert a sockaddr (AF_INET or AF_INET6) to the 16-byte form; -1 else. */
int netaddr_from_sockaddr(const struct sockaddr *sa, uint8_t out[16]);
/* "1.2.3.4" or "::1" (an IPv4-mapped address prints as IPv4). */
const char *netaddr_ntop(const uint8_t addr[16], char *buf, size_t len);
/* "1.2.3.4:80" or "[::1]:80" of a sockaddr, for logs. */
const char *netaddr_sockaddr_str(const struct sockaddr *sa, char *buf, size_t len);

#endif
