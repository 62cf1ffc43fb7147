/*
 * test_tls_sni.c - unit tests for worker/tls_sni.c.
 *
 * ClientHellos are made by a small builder (server names, extensions,
 * GREASE values, an ECH extension, padding) and framed into records of
 * any size; a real ClientHello is captured from `openssl s_client`
 * connecting to a socket this test listens on.  Every input is copied
 * into a buffer of exactly its length, so under ASan a read past len
 * fails the test.  Cases check every prefix (NEED_MORE until the last
 * byte), reassembly across records, the size limits, mutation of every
 * length field of the real hello and a 2-second random fuzz.
 *
 * Assumes: /usr/bin/openssl (the cases that need it skip without it);
 * loopback networking; fork/exec.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "worker/tls_sni.h"

#define OPENSSL		"/usr/bin/openssl"
#define REAL_NAME	"www.example.test"
#define MSG_MAX		(TLS_SNI_MAX_HELLO * 2)
#define WIRE_MAX	(MSG_MAX * 6 + 64)

/* ---- parsing through an exact-size heap copy -------------------------- */

/* Parse a copy of p[0..n) so ASan sees any read past n. */
static enum tls_sni_result
parse(const unsigned char *p, size_t n, char *name)
{
	unsigned char *copy = malloc(n ? n : 1);
	enum tls_sni_result r;

	assert_non_null(copy);
	if (n > 0)
		memcpy(copy, p, n);
	r = tls_sni_parse(copy, n, name, TLS_SNI_NAME_MAX);
	free(copy);
	return r;
}

static enum tls_sni_result
parse_str(const char *s, char *name)
{
	return parse((const unsigned char *)s, strlen(s), name);
}

/* ---- a ClientHello builder ---------------------------------------------- */

/* A handshake message being built: header, body, then extensions. */
struct msg {
	unsigned char b[MSG_MAX];
	size_t n;
	size_t ext_at;		/* offset of the extensions length; 0 = none */
};

static void
put8(struct msg *m, unsigned v)
{
	assert_true(m->n < sizeof(m->b));
	m->b[m->n++] = (unsigned char)v;
}

static void
put16(struct msg *m, unsigned v)
{
	put8(m, v >> 8);
	put8(m, v & 0xff);
}

static void
put_bytes(struct msg *m, const void *p, size_t n)
{
	assert_true(m->n + n <= sizeof(m->b));
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void
set16(struct msg *m, size_t at, size_t v)
{
	m->b[at] = (unsigned char)(v >> 8);
	m->b[at + 1] = (unsigned char)v;
}

/* Start a hello: version, random, session id, GREASE'd suites, null
 * compression; extensions follow unless with_ext is false. */
static void
hello_begin(struct msg *m, int with_ext)
{
	static const unsigned suites[] = { 0x0a0a, 0x1301, 0x1302, 0xc02f };

	memset(m, 0, sizeof(*m));
	put8(m, 1);		/* client_hello */
	put8(m, 0);		/* length, filled in by hello_end */
	put16(m, 0);
	put16(m, 0x0303);
	for (int i = 0; i < 32; i++)
		put8(m, (unsigned)(i * 7 + 1));
	put8(m, 32);
	for (int i = 0; i < 32; i++)
		put8(m, (unsigned)(0xa0 + i));
	put16(m, sizeof(suites) / sizeof(suites[0]) * 2);
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		put16(m, suites[i]);
	put8(m, 1);
	put8(m, 0);
	if (with_ext) {
		m->ext_at = m->n;
		put16(m, 0);
	}
}

static void
ext_add(struct msg *m, unsigned type, const void *data, size_t n)
{
	put16(m, type);
	put16(m, (unsigned)n);
	put_bytes(m, data, n);
}

/* A server_name extension holding n (type, name) entries. */
static void
ext_sni_list(struct msg *m, const unsigned *types, const char *const *names,
    size_t n)
{
	size_t ext_len_at, list_at;

	put16(m, 0);
	ext_len_at = m->n;
	put16(m, 0);
	list_at = m->n;
	put16(m, 0);
	for (size_t i = 0; i < n; i++) {
		put8(m, types[i]);
		put16(m, (unsigned)strlen(names[i]));
		put_bytes(m, names[i], strlen(names[i]));
	}
	set16(m, list_at, m->n - list_at - 2);
	set16(m, ext_len_at, m->n - ext_len_at - 2);
}

static void
ext_sni(struct msg *m, const char *name)
{
	unsigned t = 0;

	ext_sni_list(m, &t, &name, 1);
}

/* Fill in the handshake and extensions lengths. */
static void
hello_end(struct msg *m)
{
	size_t body = m->n - 4;

	m->b[1] = (unsigned char)(body >> 16);
	m->b[2] = (unsigned char)(body >> 8);
	m->b[3] = (unsigned char)body;
	if (m->ext_at)
		set16(m, m->ext_at, m->n - m->ext_at - 2);
}

/* A whole hello with one SNI extension among a few common ones. */
static void
hello_with_name(struct msg *m, const char *name)
{
	static const unsigned char groups[] = { 0, 4, 0x0a, 0x0a, 0, 0x1d };

	hello_begin(m, 1);
	ext_add(m, 0x0a0a, "", 0);			/* GREASE */
	ext_sni(m, name);
	ext_add(m, 10, groups, sizeof(groups));		/* supported_groups */
	ext_add(m, 0x1a1a, "\0", 1);			/* GREASE */
	hello_end(m);
}

/* Cut the message into records of at most recsz bytes. */
static size_t
frame(const unsigned char *msg, size_t n, size_t recsz, unsigned char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += recsz) {
		size_t k = n - i < recsz ? n - i : recsz;

		out[o++] = 22;
		out[o++] = 3;
		out[o++] = 1;
		out[o++] = (unsigned char)(k >> 8);
		out[o++] = (unsigned char)k;
		memcpy(out + o, msg + i, k);
		o += k;
	}
	return o;
}

/* Build, frame in one record (or in recsz pieces) and parse. */
static enum tls_sni_result
parse_msg(const struct msg *m, size_t recsz, char *name)
{
	unsigned char *wire = malloc(WIRE_MAX);
	enum tls_sni_result r;
	size_t n;

	assert_non_null(wire);
	n = frame(m->b, m->n, recsz, wire);
	r = parse(wire, n, name);
	free(wire);
	return r;
}

static enum tls_sni_result
parse_name(const char *sni, char *name)
{
	struct msg *m = malloc(sizeof(*m));
	enum tls_sni_result r;

	assert_non_null(m);
	hello_with_name(m, sni);
	r = parse_msg(m, 16384, name);
	free(m);
	return r;
}

/* Every strict prefix answers NEED_MORE; the whole input answers want. */
static void
check_prefixes(const unsigned char *w, size_t n, enum tls_sni_result want,
    const char *want_name)
{
	char name[TLS_SNI_NAME_MAX];

	for (size_t k = 0; k < n; k++) {
		enum tls_sni_result r = parse(w, k, name);

		if (r != TLS_SNI_NEED_MORE)
			fail_msg("prefix %zu of %zu: %s", k, n,
			    tls_sni_strresult(r));
	}
	assert_int_equal(parse(w, n, name), want);
	if (want_name != NULL)
		assert_string_equal(name, want_name);
}

/* ---- the real hello from openssl s_client ----------------------------- */

struct real {
	int have;			/* 0: openssl missing or failed */
	unsigned char b[TLS_SNI_MAX_BUFFER];
	size_t n;
};

/* Listen on 127.0.0.1:0, run s_client against it, keep what it sends. */
static int
capture_real(void **state)
{
	struct real *rh = calloc(1, sizeof(*rh));
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sa);
	char target[64], name[TLS_SNI_NAME_MAX];
	int ls, cs, status;
	pid_t pid;

	if (rh == NULL)
		return -1;
	*state = rh;
	if (access(OPENSSL, X_OK) != 0)
		return 0;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(ls, 1) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &slen) < 0)
		return -1;
	snprintf(target, sizeof(target), "127.0.0.1:%u", ntohs(sa.sin_port));
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
		}
		execl(OPENSSL, "openssl", "s_client", "-connect", target,
		    "-servername", REAL_NAME, (char *)NULL);
		_exit(127);
	}
	/* Read until the parser answers, for at most 10 s. */
	struct pollfd pf = { .fd = ls, .events = POLLIN };
	if (poll(&pf, 1, 10000) == 1 && (cs = accept(ls, NULL, NULL)) >= 0) {
		pf.fd = cs;
		while (rh->n < sizeof(rh->b) && poll(&pf, 1, 10000) == 1) {
			ssize_t k = read(cs, rh->b + rh->n, sizeof(rh->b) - rh->n);

			if (k <= 0)
				break;
			rh->n += (size_t)k;
			if (tls_sni_parse(rh->b, rh->n, name, sizeof(name)) !=
			    TLS_SNI_NEED_MORE)
				break;
		}
		close(cs);
	}
	close(ls);
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	rh->have = rh->n > 0;
	return 0;
}

static int
free_real(void **state)
{
	free(*state);
	return 0;
}

static struct real *
need_real(void **state)
{
	struct real *rh = *state;

	if (access(OPENSSL, X_OK) != 0)
		skip();
	assert_true(rh->have);	/* openssl is there: it must have talked */
	return rh;
}

/*
 * The real hello is one record carrying one handshake message; return
 * the message (after the 5-byte record header) and its length.
 */
static const unsigned char *
real_msg(const struct real *rh, size_t *n)
{
	size_t rlen = (size_t)rh->b[3] << 8 | rh->b[4];

	assert_true(rh->n >= 5 + rlen);
	*n = (size_t)rh->b[6] << 16 | (size_t)rh->b[7] << 8 | rh->b[8];
	*n += 4;
	assert_int_equal(*n, rlen);	/* openssl sends it in one record */
	return rh->b + 5;
}

/* ---- cases: names --------------------------------------------------- */

static void
sni_found(void **state)
{
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_int_equal(parse_name("www.example.test", name), TLS_SNI_FOUND);
	assert_string_equal(name, "www.example.test");
}

static void
sni_upper_lowered(void **state)
{
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_int_equal(parse_name("WWW.Example.TEST", name), TLS_SNI_FOUND);
	assert_string_equal(name, "www.example.test");
}

static void
sni_trailing_dot_removed(void **state)
{
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_int_equal(parse_name("Example.test.", name), TLS_SNI_FOUND);
	assert_string_equal(name, "example.test");
}

static void
sni_ip_literal_malformed(void **state)
{
	static const char *const ips[] = {
		"192.168.1.1", "127.0.0.1.", "10.1", "2130706433",
		"0x7f.1", "0X7F000001", "1.2.3.0x", "::1", "[::1]",
	};
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		if (parse_name(ips[i], name) != TLS_SNI_MALFORMED)
			fail_msg("%s accepted", ips[i]);
		assert_string_equal(name, "");
	}
}

static void
sni_name_syntax(void **state)
{
	char l63[64], l64[65], n253[254], n254[255], n253dot[255];
	const char *bad[] = { ".", "..", "a..b", ".a", "a b", "a:443",
	    "ex\x01mple.test", "caf\xc3\xa9.test", "a/b", "a\\b", "x.test..",
	    l64, n254 };
	struct { const char *in, *out; } good[] = {
		{ "localhost", "localhost" },
		{ "under_score.test", "under_score.test" },
		{ "xn--bcher-kva.test", "xn--bcher-kva.test" },
		{ "1.example", "1.example" },
		{ "host.123a", "host.123a" },
		{ "0xg.test", "0xg.test" },
		{ "a-b.c-d", "a-b.c-d" },
		{ l63, l63 },
		{ n253, n253 },
		{ n253dot, n253 },
	};
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	memset(l63, 'a', 63);
	l63[63] = '\0';
	memset(l64, 'b', 64);
	l64[64] = '\0';
	/* 253 = 4 labels of 62 + 3 dots + 2 */
	memset(n253, 'c', 253);
	for (int i = 62; i < 253; i += 63)
		n253[i] = '.';
	n253[253] = '\0';
	memcpy(n253dot, n253, 253);
	n253dot[253] = '.';
	n253dot[254] = '\0';
	memcpy(n254, n253, 253);
	n254[253] = 'c';
	n254[254] = '\0';
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_name(bad[i], name) != TLS_SNI_MALFORMED)
			fail_msg("bad name %zu \"%s\" accepted", i, bad[i]);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (parse_name(good[i].in, name) != TLS_SNI_FOUND)
			fail_msg("good name %zu \"%s\" refused", i, good[i].in);
		assert_string_equal(name, good[i].out);
	}
}

static void
sni_empty_host_name(void **state)
{
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	/* HostName<1..2^16-1>: zero length is a framing error */
	assert_int_equal(parse_name("", name), TLS_SNI_MALFORMED);
}

static void
sni_small_name_buffer(void **state)
{
	struct msg *m = malloc(sizeof(*m));
	unsigned char wire[600];
	char name[8];
	size_t n;

	(void)state;
	assert_non_null(m);
	hello_with_name(m, "www.example.test");
	n = frame(m->b, m->n, 16384, wire);
	assert_int_equal(tls_sni_parse(wire, n, name, sizeof(name)),
	    TLS_SNI_TOO_BIG);
	hello_with_name(m, "a.test");
	n = frame(m->b, m->n, 16384, wire);
	assert_int_equal(tls_sni_parse(wire, n, name, sizeof(name)),
	    TLS_SNI_FOUND);
	assert_string_equal(name, "a.test");
	free(m);
}

/* ---- cases: hello structure ------------------------------------------ */

static void
no_sni_extension(void **state)
{
	struct msg *m = malloc(sizeof(*m));
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_non_null(m);
	hello_begin(m, 1);
	ext_add(m, 10, "\0\2\0\x1d", 4);
	ext_add(m, 43, "\2\3\4", 3);
	hello_end(m);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_NONE);
	assert_string_equal(name, "");
	/* no extensions block at all (an old client) */
	hello_begin(m, 0);
	hello_end(m);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_NONE);
	/* an empty extensions block */
	hello_begin(m, 1);
	hello_end(m);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_NONE);
	free(m);
}

static void
unknown_name_type(void **state)
{
	static const unsigned t1[] = { 7 }, t2[] = { 7, 0 }, t3[] = { 0, 7 };
	static const char *const n1[] = { "opaque-thing" };
	static const char *const n2[] = { "opaque-thing", "Real.Test" };
	static const char *const n3[] = { "real.test", "opaque" };
	struct msg *m = malloc(sizeof(*m));
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_non_null(m);
	hello_begin(m, 1);
	ext_sni_list(m, t1, n1, 1);
	hello_end(m);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_NONE);
	hello_begin(m, 1);
	ext_sni_list(m, t2, n2, 2);
	hello_end(m);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_FOUND);
	assert_string_equal(name, "real.test");
	hello_begin(m, 1);
	ext_sni_list(m, t3, n3, 2);
	hello_end(m);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_FOUND);
	assert_string_equal(name, "real.test");
	free(m);
}

static void
two_host_names(void **state)
{
	static const unsigned t[] = { 0, 0 };
	static const char *const n[] = { "allowed.test", "blocked.test" };
	struct msg *m = malloc(sizeof(*m));
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_non_null(m);
	hello_begin(m, 1);
	ext_sni_list(m, t, n, 2);
	hello_end(m);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_MALFORMED);
	assert_string_equal(name, "");
	free(m);
}

static void
two_sni_extensions(void **state)
{
	struct msg *m = malloc(sizeof(*m));
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_non_null(m);
	hello_begin(m, 1);
	ext_sni(m, "allowed.test");
	ext_add(m, 10, "\0\2\0\x1d", 4);
	ext_sni(m, "blocked.test");
	hello_end(m);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_MALFORMED);
	free(m);
}

static void
sni_extension_framing(void **state)
{
	/* ext data: list length disagrees / empty list / empty ext */
	static const struct {
		const char *what;
		unsigned char d[16];
		size_t n;
	} cases[] = {
		{ "list longer than ext", { 0, 8, 0, 0, 3, 'a', '.', 'b' }, 8 },
		{ "list shorter than ext", { 0, 5, 0, 0, 3, 'a', '.', 'b' }, 8 },
		{ "empty list", { 0, 0 }, 2 },
		{ "empty extension", { 0 }, 0 },
		{ "name overruns list", { 0, 6, 0, 0, 4, 'a', '.', 'b' }, 8 },
		{ "truncated entry", { 0, 2, 0, 0 }, 4 },
	};
	struct msg *m = malloc(sizeof(*m));
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_non_null(m);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hello_begin(m, 1);
		ext_add(m, 0, cases[i].d, cases[i].n);
		hello_end(m);
		if (parse_msg(m, 16384, name) != TLS_SNI_MALFORMED)
			fail_msg("%s not MALFORMED", cases[i].what);
	}
	/* the well-formed version of the same bytes */
	hello_begin(m, 1);
	ext_add(m, 0, "\0\6\0\0\3a.b", 8);
	hello_end(m);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_FOUND);
	assert_string_equal(name, "a.b");
	free(m);
}

static void
ech_outer_sni(void **state)
{
	struct msg *m = malloc(sizeof(*m));
	unsigned char ech[200];
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_non_null(m);
	for (size_t i = 0; i < sizeof(ech); i++)
		ech[i] = (unsigned char)(i * 31 + 5);
	ech[0] = 0;		/* outer ClientHello */
	hello_begin(m, 1);
	ext_sni(m, "public.example.test");
	ext_add(m, 0xfe0d, ech, sizeof(ech));
	hello_end(m);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_FOUND);
	assert_string_equal(name, "public.example.test");
	free(m);
}

static void
grease_and_many_extensions(void **state)
{
	struct msg *m = malloc(sizeof(*m));
	unsigned char data[40];
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_non_null(m);
	memset(data, 0x5a, sizeof(data));
	hello_begin(m, 1);
	for (unsigned i = 0; i < 150; i++)
		ext_add(m, 0x0a0a + (i % 16) * 0x1010, data,
		    i % 41);
	ext_sni(m, "deep.example.test");
	for (unsigned i = 0; i < 150; i++)
		ext_add(m, 100 + i, data, (i * 7) % 41);
	hello_end(m);
	assert_true(m->n < TLS_SNI_MAX_HELLO);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_FOUND);
	assert_string_equal(name, "deep.example.test");
	free(m);
}

static void
hello_field_errors(void **state)
{
	struct msg *m = malloc(sizeof(*m));
	char name[TLS_SNI_NAME_MAX];
	/* offsets in the message: 4 version, 6 random, 38 sid len */
	const size_t sid = 38, suites = 38 + 1 + 32, comp = suites + 2 + 8;

	(void)state;
	assert_non_null(m);
	hello_with_name(m, "x.test");
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_FOUND);

	m->b[4] = 2;		/* legacy_version 2.x */
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_MALFORMED);
	hello_with_name(m, "x.test");
	m->b[sid] = 33;
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_MALFORMED);
	hello_with_name(m, "x.test");
	m->b[suites + 1] = 7;	/* odd */
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_MALFORMED);
	hello_with_name(m, "x.test");
	m->b[suites + 1] = 0;	/* none */
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_MALFORMED);
	hello_with_name(m, "x.test");
	assert_int_equal(m->b[comp], 1);
	m->b[comp] = 0;		/* no compression method */
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_MALFORMED);
	/* extensions length one off either way */
	hello_with_name(m, "x.test");
	m->b[m->ext_at + 1]++;
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_MALFORMED);
	hello_with_name(m, "x.test");
	m->b[m->ext_at + 1]--;
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_MALFORMED);
	/* not a client_hello */
	hello_with_name(m, "x.test");
	m->b[0] = 2;
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_MALFORMED);
	/* a body too short to hold anything */
	hello_begin(m, 0);
	m->n = 4;
	hello_end(m);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_MALFORMED);
	free(m);
}

/* A structural error is reported before the rest of the hello arrives. */
static void
malformed_prefix_is_early(void **state)
{
	struct msg *m = malloc(sizeof(*m));
	unsigned char wire[600];
	char name[TLS_SNI_NAME_MAX];
	size_t n;

	(void)state;
	assert_non_null(m);
	hello_with_name(m, "x.test");
	m->b[38] = 33;		/* session_id too long */
	n = frame(m->b, m->n, 16384, wire);
	/* 5 record + 38 up to and including the bad length byte */
	assert_int_equal(parse(wire, 5 + 38, name), TLS_SNI_NEED_MORE);
	assert_int_equal(parse(wire, 5 + 39, name), TLS_SNI_MALFORMED);
	assert_true(n > 5 + 39);
	/* a length overrunning the declared message, before its bytes */
	hello_with_name(m, "x.test");
	set16(m, m->ext_at, 0xff00);
	frame(m->b, m->n, 16384, wire);
	assert_int_equal(parse(wire, 5 + m->ext_at + 2, name),
	    TLS_SNI_MALFORMED);
	free(m);
}

/* ---- cases: records ------------------------------------------------- */

static void
not_tls(void **state)
{
	static const unsigned char sslv2[] = { 0x80, 0x2e, 0x01, 0x00, 0x02 };
	static const unsigned char v2major[] = { 22, 2, 0, 0, 5 };
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_int_equal(parse_str("GET / HTTP/1.1\r\n", name),
	    TLS_SNI_NOT_TLS);
	assert_int_equal(parse_str("G", name), TLS_SNI_NOT_TLS);
	assert_int_equal(parse_str("CONNECT x:443 HTTP/1.1\r\n\r\n", name),
	    TLS_SNI_NOT_TLS);
	assert_int_equal(parse(sslv2, sizeof(sslv2), name), TLS_SNI_NOT_TLS);
	assert_int_equal(parse(sslv2, 1, name), TLS_SNI_NOT_TLS);
	assert_int_equal(parse(v2major, 2, name), TLS_SNI_NOT_TLS);
	assert_int_equal(parse(v2major, sizeof(v2major), name),
	    TLS_SNI_NOT_TLS);
	assert_int_equal(parse((const unsigned char *)"\x17\x03\x03", 3,
	    name), TLS_SNI_NOT_TLS);
	/* the empty and tiny prefixes of a real record are fine */
	assert_int_equal(parse((const unsigned char *)"", 0, name),
	    TLS_SNI_NEED_MORE);
	assert_int_equal(parse((const unsigned char *)"\x16", 1, name),
	    TLS_SNI_NEED_MORE);
	assert_int_equal(parse((const unsigned char *)"\x16\x03\x01\x02", 4,
	    name), TLS_SNI_NEED_MORE);
}

static void
record_length_limits(void **state)
{
	char name[TLS_SNI_NAME_MAX];

	(void)state;
	assert_int_equal(parse((const unsigned char *)"\x16\x03\x01\x00\x00",
	    5, name), TLS_SNI_MALFORMED);
	assert_int_equal(parse((const unsigned char *)"\x16\x03\x01\x40\x01",
	    5, name), TLS_SNI_MALFORMED);
	assert_int_equal(parse((const unsigned char *)"\x16\x03\x01\x41", 4,
	    name), TLS_SNI_MALFORMED);
	assert_int_equal(parse((const unsigned char *)"\x16\x03\x01\x40\x00",
	    5, name), TLS_SNI_NEED_MORE);
	assert_int_equal(parse((const unsigned char *)"\x16\x03\x01\x00\x01"
	    "\x02", 6, name), TLS_SNI_MALFORMED);	/* server_hello */
}

static void
built_every_prefix(void **state)
{
	struct msg *m = malloc(sizeof(*m));
	unsigned char *wire = malloc(WIRE_MAX);
	size_t n;

	(void)state;
	assert_non_null(m);
	assert_non_null(wire);
	hello_with_name(m, "Prefix.Example.Test.");
	n = frame(m->b, m->n, 16384, wire);
	check_prefixes(wire, n, TLS_SNI_FOUND, "prefix.example.test");
	n = frame(m->b, m->n, 7, wire);
	check_prefixes(wire, n, TLS_SNI_FOUND, "prefix.example.test");
	free(wire);
	free(m);
}

static void
other_record_type_midway(void **state)
{
	struct msg *m = malloc(sizeof(*m));
	unsigned char wire[700];
	char name[TLS_SNI_NAME_MAX];
	size_t n;

	(void)state;
	assert_non_null(m);
	hello_with_name(m, "x.test");
	n = frame(m->b, m->n, 40, wire);
	/* the second record becomes change_cipher_spec, alert, app data */
	for (unsigned t = 20; t <= 24; t++) {
		if (t == 22)
			continue;
		wire[5 + 40] = (unsigned char)t;
		assert_int_equal(parse(wire, n, name), TLS_SNI_MALFORMED);
		/* already when only its type byte has arrived */
		assert_int_equal(parse(wire, 5 + 40 + 1, name),
		    TLS_SNI_MALFORMED);
	}
	wire[5 + 40] = 22;
	wire[5 + 40 + 1] = 2;	/* a second record with major version 2 */
	assert_int_equal(parse(wire, n, name), TLS_SNI_MALFORMED);
	wire[5 + 40 + 1] = 3;
	assert_int_equal(parse(wire, n, name), TLS_SNI_FOUND);
	free(m);
}

static void
trailing_records_ignored(void **state)
{
	struct msg *m = malloc(sizeof(*m));
	unsigned char wire[700];
	char name[TLS_SNI_NAME_MAX];
	size_t n;

	(void)state;
	assert_non_null(m);
	hello_with_name(m, "x.test");
	n = frame(m->b, m->n, 16384, wire);
	/* a change_cipher_spec record after the hello (TLS 1.3 compat) */
	memcpy(wire + n, "\x14\x03\x03\x00\x01\x01", 6);
	assert_int_equal(parse(wire, n + 6, name), TLS_SNI_FOUND);
	assert_int_equal(parse(wire, n + 2, name), TLS_SNI_FOUND);
	free(m);
}

static void
too_big(void **state)
{
	struct msg *m = malloc(sizeof(*m));
	unsigned char *wire = malloc(WIRE_MAX), *pad = calloc(1, MSG_MAX);
	char name[TLS_SNI_NAME_MAX];
	size_t n, base;

	(void)state;
	assert_non_null(m);
	assert_non_null(wire);
	assert_non_null(pad);
	/* exactly TLS_SNI_MAX_HELLO: fine, in one record or in two */
	hello_with_name(m, "big.test");
	base = m->n;
	ext_add(m, 21, pad, TLS_SNI_MAX_HELLO - base - 4);
	hello_end(m);
	assert_int_equal(m->n, TLS_SNI_MAX_HELLO);
	assert_int_equal(parse_msg(m, 16384, name), TLS_SNI_FOUND);
	assert_int_equal(parse_msg(m, 10000, name), TLS_SNI_FOUND);
	assert_string_equal(name, "big.test");
	/* one byte more, split into records of legal size */
	hello_with_name(m, "big.test");
	ext_add(m, 21, pad, TLS_SNI_MAX_HELLO - base - 3);
	hello_end(m);
	n = frame(m->b, m->n, 10000, wire);
	assert_int_equal(parse(wire, n, name), TLS_SNI_TOO_BIG);
	/* known as soon as the handshake header is in */
	assert_int_equal(parse(wire, 9, name), TLS_SNI_TOO_BIG);
	assert_int_equal(parse(wire, 8, name), TLS_SNI_NEED_MORE);
	/* a 6000-byte hello in 1-byte records: 36000 wire bytes */
	hello_with_name(m, "big.test");
	ext_add(m, 21, pad, 6000 - base - 4);
	hello_end(m);
	n = frame(m->b, m->n, 1, wire);
	assert_true(n > TLS_SNI_MAX_BUFFER);
	assert_int_equal(parse(wire, n, name), TLS_SNI_TOO_BIG);
	assert_int_equal(parse(wire, TLS_SNI_MAX_BUFFER, name),
	    TLS_SNI_TOO_BIG);
	assert_int_equal(parse(wire, TLS_SNI_MAX_BUFFER - 1, name),
	    TLS_SNI_NEED_MORE);
	/* ... but in 2-byte records (18000 bytes) it is reassembled */
	n = frame(m->b, m->n, 2, wire);
	assert_true(n < TLS_SNI_MAX_BUFFER);
	assert_int_equal(parse(wire, n, name), TLS_SNI_FOUND);
	free(pad);
	free(wire);
	free(m);
}

/* ---- cases: the real hello --------------------------------------------- */

static void
real_hello_found(void **state)
{
	struct real *rh = need_real(state);
	char name[TLS_SNI_NAME_MAX];

	assert_int_equal(parse(rh->b, rh->n, name), TLS_SNI_FOUND);
	assert_string_equal(name, REAL_NAME);
}

static void
real_hello_byte_by_byte(void **state)
{
	struct real *rh = need_real(state);
	size_t n;

	real_msg(rh, &n);
	check_prefixes(rh->b, 5 + n, TLS_SNI_FOUND, REAL_NAME);
}

static void
real_hello_reframed(void **state)
{
	struct real *rh = need_real(state);
	unsigned char *wire = malloc(WIRE_MAX);
	static const size_t sizes[] = { 1, 2, 3, 50, 100, 511 };
	char name[TLS_SNI_NAME_MAX];
	const unsigned char *msg;
	size_t n, w;

	assert_non_null(wire);
	msg = real_msg(rh, &n);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		w = frame(msg, n, sizes[i], wire);
		if (parse(wire, w, name) != TLS_SNI_FOUND)
			fail_msg("records of %zu: not found", sizes[i]);
		assert_string_equal(name, REAL_NAME);
	}
	w = frame(msg, n, 50, wire);
	check_prefixes(wire, w, TLS_SNI_FOUND, REAL_NAME);
	free(wire);
}

/* The real hello grown past TLS_SNI_MAX_HELLO by a padding extension. */
static void
real_hello_too_big(void **state)
{
	struct real *rh = need_real(state);
	struct msg *m = malloc(sizeof(*m));
	unsigned char *wire = malloc(WIRE_MAX), *pad = calloc(1, MSG_MAX);
	char name[TLS_SNI_NAME_MAX];
	const unsigned char *msg;
	size_t n, w, extlen, padlen;

	assert_non_null(m);
	assert_non_null(wire);
	assert_non_null(pad);
	msg = real_msg(rh, &n);
	padlen = TLS_SNI_MAX_HELLO + 100 - n;
	memset(m, 0, sizeof(*m));
	put_bytes(m, msg, n);
	/* the extensions block ends the message: add one and fix lengths */
	ext_add(m, 0xfe02, pad, padlen);
	/* find the extensions length: walk version..compression */
	{
		size_t p = 4 + 2 + 32;

		p += 1 + m->b[p];
		p += 2 + ((size_t)m->b[p] << 8 | m->b[p + 1]);
		p += 1 + m->b[p];
		m->ext_at = p;
	}
	extlen = (size_t)m->b[m->ext_at] << 8 | m->b[m->ext_at + 1];
	assert_int_equal(m->ext_at + 2 + extlen, n);	/* walk is right */
	hello_end(m);
	w = frame(m->b, m->n, 16384, wire);
	assert_int_equal(parse(wire, w, name), TLS_SNI_TOO_BIG);
	w = frame(m->b, m->n, 50, wire);
	assert_int_equal(parse(wire, w, name), TLS_SNI_TOO_BIG);
	/* smaller padding: the same construction parses */
	m->n = n;
	ext_add(m, 0xfe02, pad, 1000);
	hello_end(m);
	w = frame(m->b, m->n, 50, wire);
	assert_int_equal(parse(wire, w, name), TLS_SNI_FOUND);
	assert_string_equal(name, REAL_NAME);
	free(pad);
	free(wire);
	free(m);
}

/*
 * Offsets of every length field of the real hello (in the wire bytes),
 * found by an independent walk of its structure.  strict[i] is set for
 * the fields whose change can never leave a well-formed hello: the
 * handshake length and the extensions length must fill the message
 * exactly, and the server_name lengths must fill their extension.  A
 * change to the others may, by coincidence, still walk (a shorter
 * extension whose tail reads as a plausible next extension header).
 */
struct lenfield {
	size_t at;
	int strict;
};

static size_t
real_length_fields(const unsigned char *w, size_t n, struct lenfield *f,
    size_t max)
{
	size_t k = 0, p, end, ext_end;

#define ADD(off, nbytes, st) do {					\
		for (size_t j_ = 0; j_ < (nbytes) && k < max; j_++) {	\
			f[k].at = (off) + j_;				\
			f[k++].strict = (st);				\
		}							\
	} while (0)
	ADD(3, 2, 0);				/* record length */
	ADD(6, 3, 1);				/* handshake length */
	p = 5 + 4 + 2 + 32;
	ADD(p, 1, 0);				/* session_id */
	p += 1 + w[p];
	ADD(p, 2, 0);				/* cipher_suites */
	p += 2 + ((size_t)w[p] << 8 | w[p + 1]);
	ADD(p, 1, 0);				/* compression */
	p += 1 + w[p];
	ADD(p, 2, 1);				/* extensions */
	ext_end = p + 2 + ((size_t)w[p] << 8 | w[p + 1]);
	assert_int_equal(ext_end, n);
	p += 2;
	while (p < ext_end) {
		unsigned type = (unsigned)w[p] << 8 | w[p + 1];
		size_t len = (size_t)w[p + 2] << 8 | w[p + 3];

		ADD(p + 2, 2, type == 0);	/* extension length */
		end = p + 4 + len;
		if (type == 0) {
			ADD(p + 4, 2, 1);	/* server_name_list */
			ADD(p + 7, 2, 1);	/* host_name */
		}
		p = end;
	}
#undef ADD
	return k;
}

static void
real_hello_mutate_lengths(void **state)
{
	struct real *rh = need_real(state);
	unsigned char *w = malloc(WIRE_MAX);
	struct lenfield f[256];
	size_t nf, n, strict = 0;
	char name[TLS_SNI_NAME_MAX];

	assert_non_null(w);
	real_msg(rh, &n);
	n += 5;
	nf = real_length_fields(rh->b, n, f, 256);
	assert_true(nf >= 17);
	for (size_t i = 0; i < nf; i++) {
		unsigned char orig = rh->b[f[i].at];
		const unsigned vals[] = { 0, 1, 2, 0x3f, 0x40, 0x7f, 0x80,
		    0xfe, 0xff, (orig + 1) & 0xff, (orig - 1) & 0xff };

		strict += (size_t)f[i].strict;
		for (size_t v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
			enum tls_sni_result r;

			if (vals[v] == orig)
				continue;
			memcpy(w, rh->b, n);
			w[f[i].at] = (unsigned char)vals[v];
			r = parse(w, n, name);
			if (r == TLS_SNI_FOUND || r == TLS_SNI_NONE) {
				if (f[i].strict)
					fail_msg("offset %zu = %#x: %s",
					    f[i].at, vals[v],
					    tls_sni_strresult(r));
				if (r == TLS_SNI_FOUND)
					assert_string_equal(name, REAL_NAME);
			} else if (r != TLS_SNI_MALFORMED &&
			    r != TLS_SNI_NEED_MORE && r != TLS_SNI_TOO_BIG)
				fail_msg("offset %zu = %#x: %s", f[i].at,
				    vals[v], tls_sni_strresult(r));
			/* a longer record leaves the hello intact */
			if (f[i].at == 4 && vals[v] > orig)
				assert_int_equal(r, TLS_SNI_FOUND);
			/* and every prefix of the mutated bytes is safe too */
			for (size_t k = 0; k < n; k += 37)
				(void)parse(w, k, name);
		}
	}
	assert_true(strict >= 11);
	free(w);
}

/* Every byte of the real hello flipped: never a crash or overread. */
static void
real_hello_mutate_every_byte(void **state)
{
	struct real *rh = need_real(state);
	unsigned char *w = malloc(WIRE_MAX);
	char name[TLS_SNI_NAME_MAX];
	size_t n;

	assert_non_null(w);
	real_msg(rh, &n);
	n += 5;
	for (size_t i = 0; i < n; i++) {
		static const unsigned char x[] = { 0x01, 0x80, 0xff };

		for (size_t v = 0; v < sizeof(x); v++) {
			enum tls_sni_result r;

			memcpy(w, rh->b, n);
			w[i] ^= x[v];
			r = parse(w, n, name);
			assert_true(r <= TLS_SNI_TOO_BIG);
			if (r == TLS_SNI_FOUND)
				assert_true(strlen(name) > 0);
		}
	}
	free(w);
}

/* ---- fuzz --------------------------------------------------------------- */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A name we answered FOUND with must pass the rules we promise. */
static void
check_found_name(const char *name)
{
	size_t n = strlen(name);

	assert_true(n >= 1 && n <= 253);
	assert_true(name[n - 1] != '.' && name[0] != '.');
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		assert_true((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.');
	}
	assert_null(strstr(name, ".."));
}

static void
random_fuzz(void **state)
{
	struct real *rh = *state;
	struct msg *m = malloc(sizeof(*m));
	unsigned char *w = malloc(WIRE_MAX);
	char name[TLS_SNI_NAME_MAX];
	unsigned long iters = 0, found = 0;
	double end = now_s() + 2.0;
	unsigned seed = (unsigned)time(NULL);

	assert_non_null(m);
	assert_non_null(w);
	print_message("# fuzz seed %u\n", seed);
	srandom(seed);
	hello_with_name(m, "fuzz.example.test");
	while (now_s() < end) {
		size_t n;
		int kind = (int)(random() % 4);

		if (kind == 0 || (kind == 3 && !rh->have)) {
			/* pure noise after a plausible record header */
			n = (size_t)random() % 600;
			for (size_t i = 0; i < n; i++)
				w[i] = (unsigned char)random();
			if (n >= 3 && random() % 2) {
				w[0] = 22;
				w[1] = 3;
			}
		} else {
			/* a valid hello (built or real), a few bytes changed */
			size_t recsz = 1 + (size_t)random() % 300;

			if (kind == 3)
				n = frame(rh->b + 5, rh->n - 5 < MSG_MAX ?
				    rh->n - 5 : MSG_MAX, recsz, w);
			else
				n = frame(m->b, m->n, recsz, w);
			for (int k = (int)(random() % 4); k >= 0; k--)
				w[(size_t)random() % n] = (unsigned char)random();
			if (random() % 4 == 0)
				n = (size_t)random() % (n + 1);
		}
		enum tls_sni_result r = parse(w, n, name);

		assert_true(r <= TLS_SNI_TOO_BIG);
		if (r == TLS_SNI_FOUND) {
			check_found_name(name);
			found++;
		} else
			assert_string_equal(name, "");
		iters++;
	}
	print_message("# %lu inputs, %lu FOUND\n", iters, found);
	assert_true(iters > 1000);
	free(w);
	free(m);
}

/* ---- the small helpers ------------------------------------------------- */

static void
alert_record(void **state)
{
	unsigned char out[TLS_SNI_ALERT_LEN + 1];

	(void)state;
	out[TLS_SNI_ALERT_LEN] = 0xee;
	assert_int_equal(tls_sni_alert(out, 49), 7);
	assert_memory_equal(out, "\x15\x03\x03\x00\x02\x02\x31", 7);
	assert_int_equal(out[TLS_SNI_ALERT_LEN], 0xee);
	assert_int_equal(tls_sni_alert(out, 112), 7);
	assert_int_equal(out[6], 112);
}

static void
strresult_names(void **state)
{
	(void)state;
	assert_string_equal(tls_sni_strresult(TLS_SNI_NOT_TLS),
	    "no TLS ClientHello");
	for (int a = TLS_SNI_FOUND; a <= TLS_SNI_TOO_BIG; a++) {
		assert_non_null(tls_sni_strresult(a));
		for (int b = a + 1; b <= TLS_SNI_TOO_BIG; b++)
			assert_string_not_equal(tls_sni_strresult(a),
			    tls_sni_strresult(b));
	}
	assert_string_equal(tls_sni_strresult((enum tls_sni_result)99),
	    "unknown result");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sni_found),
		cmocka_unit_test(sni_upper_lowered),
		cmocka_unit_test(sni_trailing_dot_removed),
		cmocka_unit_test(sni_ip_literal_malformed),
		cmocka_unit_test(sni_name_syntax),
		cmocka_unit_test(sni_empty_host_name),
		cmocka_unit_test(sni_small_name_buffer),
		cmocka_unit_test(no_sni_extension),
		cmocka_unit_test(unknown_name_type),
		cmocka_unit_test(two_host_names),
		cmocka_unit_test(two_sni_extensions),
		cmocka_unit_test(sni_extension_framing),
		cmocka_unit_test(ech_outer_sni),
		cmocka_unit_test(grease_and_many_extensions),
		cmocka_unit_test(hello_field_errors),
		cmocka_unit_test(malformed_prefix_is_early),
		cmocka_unit_test(not_tls),
		cmocka_unit_test(record_length_limits),
		cmocka_unit_test(built_every_prefix),
		cmocka_unit_test(other_record_type_midway),
		cmocka_unit_test(trailing_records_ignored),
		cmocka_unit_test(too_big),
		cmocka_unit_test(real_hello_found),
		cmocka_unit_test(real_hello_byte_by_byte),
		cmocka_unit_test(real_hello_reframed),
		cmocka_unit_test(real_hello_too_big),
		cmocka_unit_test(real_hello_mutate_lengths),
		cmocka_unit_test(real_hello_mutate_every_byte),
		cmocka_unit_test(random_fuzz),
		cmocka_unit_test(alert_record),
		cmocka_unit_test(strresult_names),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("tls_sni", tests, capture_real,
	    free_real);
}
