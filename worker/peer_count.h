/*
 * peer_count.h - open connections per client address, in one worker.
 *
 * Backs limits.client_connections: one host must not be able to hold
 * every descriptor of a worker (HOSTILE F13, slowloris).  A chained hash
 * of 16-byte addresses (IPv4 as v4-mapped); an entry lives only while
 * its address has a connection open, so memory follows the number of
 * distinct clients connected, not the number ever seen.
 */
#ifndef SLUICE_PEER_COUNT_H
#define SLUICE_PEER_COUNT_H

#include <stdint.h>

struct peer_count;

struct peer_count *peer_count_new(void);
void peer_count_free(struct peer_count *pc);
/* One more connection from addr: the new count, or 0 when out of memory. */
unsigned peer_count_inc(struct peer_count *pc, const uint8_t addr[16]);
/* One connection from addr closed. */
void peer_count_dec(struct peer_count *pc, const uint8_t addr[16]);
/* Connections open from addr. */
unsigned peer_count_get(const struct peer_count *pc, const uint8_t addr[16]);

#endif
