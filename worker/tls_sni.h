/*
 * tls_sni.h - read the server name from a TLS ClientHello, unencrypted.
 *
 * A CONNECT tunnel is filtered on its target host and, once the proxy
 * has answered "200 Connection established", on the server_name (SNI)
 * of the ClientHello the client sends first.  The caller buffers what
 * the client sends and calls tls_sni_parse() after each read, from the
 * first byte, until the answer is not TLS_SNI_NEED_MORE.  The parser is
 * pure (no I/O, no malloc, no logging) and stateless: every call looks
 * at the whole prefix again, which is cheap at these sizes and leaves
 * nothing to resume or free.
 */
#ifndef SLUICE_TLS_SNI_H
#define SLUICE_TLS_SNI_H

#include <stddef.h>

enum tls_sni_result {
	TLS_SNI_FOUND = 0,	/* name written */
	TLS_SNI_NEED_MORE,	/* a valid prefix so far; read more */
	TLS_SNI_NONE,		/* a complete, well-formed ClientHello with
				 * no server_name (host_name) */
	TLS_SNI_NOT_TLS,	/* the first bytes are not a TLS handshake
				 * record (plain HTTP, an SSLv2 hello, ...) */
	TLS_SNI_MALFORMED,	/* TLS framing, but lengths or structure are
				 * wrong, two server names, a name with
				 * illegal bytes, an IP literal as SNI, ... */
	TLS_SNI_TOO_BIG,	/* the ClientHello is longer than
				 * TLS_SNI_MAX_HELLO, or its records do not
				 * fit in TLS_SNI_MAX_BUFFER */
};

/*
 * The largest handshake message (4-byte handshake header included) we
 * reassemble.  Real ClientHellos are 200 bytes to a few KiB (a post-
 * quantum key share adds about 1.2 KiB); 16 KiB is one full record.
 */
#define TLS_SNI_MAX_HELLO	16384

/*
 * The most bytes a caller ever has to buffer: with len >=
 * TLS_SNI_MAX_BUFFER the answer is never TLS_SNI_NEED_MORE, and bytes
 * past this offset are never looked at.  It is twice the hello: a
 * normally framed hello of TLS_SNI_MAX_HELLO bytes needs 2 record
 * headers (10 bytes), and the other 16 KiB leave room for a hello cut
 * into many small records (a known filter evasion): a 2 KiB hello still
 * parses when split into 1-byte records (6 bytes each on the wire).
 * Records costing more than that are answered TLS_SNI_TOO_BIG.
 */
#define TLS_SNI_MAX_BUFFER	(2 * TLS_SNI_MAX_HELLO)

/* Size of the name buffer a caller must pass: 253 bytes + NUL, rounded. */
#define TLS_SNI_NAME_MAX	256

/* Length of a record written by tls_sni_alert(). */
#define TLS_SNI_ALERT_LEN	7

/*
 * Parse buf[0..len), the bytes received from the client so far.  On
 * TLS_SNI_FOUND, name holds the host name, lower-cased, trailing dot
 * removed, NUL-terminated; namesz should be >= TLS_SNI_NAME_MAX (a
 * name that does not fit a smaller buffer answers TLS_SNI_TOO_BIG).
 * On any other answer name is the empty string (if namesz > 0).  A
 * FOUND or NONE answer is given only for a complete hello: a second
 * server_name later in the hello cannot slip past.
 */
enum tls_sni_result tls_sni_parse(const unsigned char *buf, size_t len,
    char *name, size_t namesz);

/* A short phrase for logs: "no TLS ClientHello", ... */
const char *tls_sni_strresult(enum tls_sni_result r);

/*
 * Write a fatal TLS alert record (level 2, the given description, e.g.
 * 49 access_denied or 112 unrecognized_name, record version 0x0303)
 * into out, which holds at least TLS_SNI_ALERT_LEN bytes; returns 7.
 * It ends a denied tunnel cleanly after the 200.
 */
size_t tls_sni_alert(unsigned char *out, unsigned char description);

#endif /* SLUICE_TLS_SNI_H */
