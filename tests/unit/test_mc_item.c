/*
 * test_mc_item.c - the memcached item format (shm/mc_item.c): round
 * trips whole and split (empty, small, exactly the item limit, one byte
 * over, 10 MiB), and every way an item must be refused: truncated at
 * every length, any byte flipped, wrong secret, another key, lying but
 * authenticated lengths, stale/swapped/missing chunks, and a timed
 * random fuzz of decode.
 *
 * Every item under test sits in a malloc'ed buffer of exactly its
 * length, so that a read past the end is an ASan report, not luck.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "shm/mc_item.h"

#define KEY_A	"http://a.example/path?q=1"
#define KEY_B	"http://b.example/path?q=1"
#define SECRET	"change-me"
#define META	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"

static const struct mc_item_id id_a = {
	KEY_A, sizeof(KEY_A) - 1, SECRET, sizeof(SECRET) - 1, false };
static const struct mc_item_id id_b = {
	KEY_B, sizeof(KEY_B) - 1, SECRET, sizeof(SECRET) - 1, false };
static const struct mc_item_id id_a_other_secret = {
	KEY_A, sizeof(KEY_A) - 1, "another", 7, false };

static const uint8_t nonce1[MC_ITEM_NONCE_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8,
	9, 10, 11, 12, 13, 14, 15, 16 };
static const uint8_t nonce2[MC_ITEM_NONCE_LEN] = { 16, 15, 14, 13, 12, 11,
	10, 9, 8, 7, 6, 5, 4, 3, 2, 1 };

/* xorshift64: deterministic test data and fuzz input. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint8_t *
random_bytes(size_t n, uint64_t seed)
{
	uint8_t *p = malloc(n ? n : 1);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd(&seed);
	return p;
}

/* Encodes a whole object into an exact-size malloc'ed buffer. */
static uint8_t *
make_object(const struct mc_item_id *id, const void *meta, size_t mlen,
    const void *body, size_t blen, size_t *len)
{
	size_t n = mc_item_object_size(id->key_len, mlen, blen);
	uint8_t *p;

	assert_true(n > 0);
	p = malloc(n);
	assert_non_null(p);
	assert_int_equal(mc_item_encode_object(p, n, len, id, meta, mlen,
	    body, blen), MC_ITEM_OK);
	assert_int_equal(*len, n);
	return p;
}

/* Decodes a copy of item[0..len) held in a buffer of exactly len bytes. */
static int
decode_exact(const struct mc_item_id *id, const uint8_t *item, size_t len)
{
	struct mc_item_view v;
	uint8_t *c = malloc(len ? len : 1);
	int rc;

	assert_non_null(c);
	if (len > 0)
		memcpy(c, item, len);
	rc = mc_item_decode(&v, id, len ? c : NULL, len);
	free(c);
	return rc;
}

/* Recomputes the MAC of item (as someone holding the secret could). */
static void
resign(uint8_t *item, size_t len, const struct mc_item_id *id)
{
	assert_non_null(HMAC(EVP_sha256(), id->secret, (int)id->secret_len,
	    item, len - MC_ITEM_MAC_LEN, item + len - MC_ITEM_MAC_LEN, NULL));
}

/* A split object: all items, each in its own exact buffer. */
struct split {
	struct mc_item_plan plan;
	uint8_t *man;
	size_t man_len;
	uint8_t **chunk;
	size_t *chunk_len;
};

static void
make_split(struct split *s, const struct mc_item_id *id, size_t item_max,
    const uint8_t *nonce, const void *meta, size_t mlen, const uint8_t *body,
    size_t blen)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(mc_item_plan(&s->plan, item_max, id->key_len, mlen,
	    blen), MC_ITEM_OK);
	assert_true(s->plan.nchunks > 0);
	s->man = malloc(s->plan.item_size);
	assert_non_null(s->man);
	assert_int_equal(mc_item_encode_manifest(s->man, s->plan.item_size,
	    &s->man_len, id, &s->plan, nonce, meta, mlen), MC_ITEM_OK);
	assert_true(s->man_len <= item_max);
	s->chunk = calloc(s->plan.nchunks, sizeof(*s->chunk));
	s->chunk_len = calloc(s->plan.nchunks, sizeof(*s->chunk_len));
	assert_non_null(s->chunk);
	assert_non_null(s->chunk_len);
	for (uint32_t i = 0; i < s->plan.nchunks; i++) {
		uint64_t off;
		size_t plen, isz = mc_item_chunk_size(&s->plan, id->key_len, i);

		assert_int_equal(mc_item_plan_chunk(&s->plan, i, &off, &plen),
		    MC_ITEM_OK);
		assert_true(isz > 0 && isz <= item_max);
		s->chunk[i] = malloc(isz);
		assert_non_null(s->chunk[i]);
		assert_int_equal(mc_item_encode_chunk(s->chunk[i], isz,
		    &s->chunk_len[i], id, &s->plan, nonce, i, body + off,
		    plen), MC_ITEM_OK);
		assert_int_equal(s->chunk_len[i], isz);
	}
}

static void
free_split(struct split *s)
{
	for (uint32_t i = 0; i < s->plan.nchunks; i++)
		free(s->chunk[i]);
	free(s->chunk);
	free(s->chunk_len);
	free(s->man);
}

/* Decodes manifest and chunks of s into views (chunks: nchunks views). */
static void
decode_split(const struct split *s, const struct mc_item_id *id,
    struct mc_item_view *man, struct mc_item_view *chunks)
{
	assert_int_equal(mc_item_decode(man, id, s->man, s->man_len),
	    MC_ITEM_OK);
	assert_int_equal(man->kind, MC_ITEM_MANIFEST);
	for (uint32_t i = 0; i < s->plan.nchunks; i++) {
		assert_int_equal(mc_item_decode(&chunks[i], id, s->chunk[i],
		    s->chunk_len[i]), MC_ITEM_OK);
		assert_int_equal(chunks[i].kind, MC_ITEM_CHUNK);
		assert_int_equal(chunks[i].index, i);
	}
}

/* ---- round trips ----------------------------------------------------- */

static void
test_roundtrip_empty_body(void **state)
{
	struct mc_item_view v;
	uint8_t *it;
	size_t len;

	(void)state;
	it = make_object(&id_a, META, sizeof(META) - 1, NULL, 0, &len);
	assert_int_equal(len, MC_ITEM_HDR_LEN + id_a.key_len +
	    sizeof(META) - 1 + MC_ITEM_MAC_LEN);
	assert_memory_equal(it, MC_ITEM_MAGIC, 4);
	assert_int_equal(mc_item_decode(&v, &id_a, it, len), MC_ITEM_OK);
	assert_int_equal(v.kind, MC_ITEM_OBJECT);
	assert_int_equal(v.body_len, 0);
	assert_int_equal(v.data_len, 0);
	assert_int_equal(v.meta_len, sizeof(META) - 1);
	assert_memory_equal(v.meta, META, sizeof(META) - 1);
	assert_true(v.meta >= it && v.meta + v.meta_len <= it + len);
	free(it);

	/* Empty meta and empty body are fine too. */
	it = make_object(&id_a, NULL, 0, NULL, 0, &len);
	assert_int_equal(mc_item_decode(&v, &id_a, it, len), MC_ITEM_OK);
	assert_int_equal(v.meta_len, 0);
	assert_int_equal(v.data_len, 0);
	free(it);
}

/* Parts written in place (the cache copies straight into the item) seal
 * to the same bytes as parts passed from elsewhere. */
static void
test_in_place(void **state)
{
	static const char meta[] = "meta-in-place";
	uint8_t body[3000], *a, *b;
	size_t size, la, lb, po;
	struct mc_item_id id = id_a;
	struct mc_item_view v;

	(void)state;
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 7);
	size = mc_item_object_size(id.key_len, sizeof(meta), sizeof(body));
	a = malloc(size);
	b = malloc(size);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(mc_item_encode_object(a, size, &la, &id_a, meta,
	    sizeof(meta), body, sizeof(body)), MC_ITEM_OK);
	po = mc_item_payload_off(id.key_len);
	assert_int_equal(po, MC_ITEM_HDR_LEN + id.key_len);
	memcpy(b + MC_ITEM_HDR_LEN, id.key, id.key_len);
	memcpy(b + po, meta, sizeof(meta));
	memcpy(b + po + sizeof(meta), body, sizeof(body));
	id.key = b + MC_ITEM_HDR_LEN;
	assert_int_equal(mc_item_encode_object(b, size, &lb, &id, b + po,
	    sizeof(meta), b + po + sizeof(meta), sizeof(body)), MC_ITEM_OK);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	assert_int_equal(mc_item_decode(&v, &id_a, b, lb), MC_ITEM_OK);
	assert_int_equal(v.data_len, sizeof(body));
	free(a);
	free(b);
}

static void
test_roundtrip_small(void **state)
{
	struct mc_item_view v;
	uint8_t *body = random_bytes(1000, 7), *it;
	size_t len;

	(void)state;
	it = make_object(&id_a, META, sizeof(META) - 1, body, 1000, &len);
	assert_int_equal(mc_item_decode(&v, &id_a, it, len), MC_ITEM_OK);
	assert_int_equal(v.kind, MC_ITEM_OBJECT);
	assert_int_equal(v.body_len, 1000);
	assert_int_equal(v.data_len, 1000);
	assert_memory_equal(v.data, body, 1000);
	assert_memory_equal(v.meta, META, sizeof(META) - 1);
	/* An object is neither a manifest nor a chunk. */
	assert_int_equal(v.nchunks, 0);
	assert_int_equal(v.chunk_size, 0);
	free(it);
	free(body);
}

static void
test_exact_item_limit(void **state)
{
	const size_t max = 4096, mlen = 100;
	size_t blen = max - MC_ITEM_HDR_LEN - id_a.key_len - mlen -
	    MC_ITEM_MAC_LEN, len;
	uint8_t *body = random_bytes(blen, 11), *meta = random_bytes(mlen, 12);
	struct mc_item_plan plan;
	struct mc_item_view v;
	uint8_t *it;

	(void)state;
	assert_int_equal(mc_item_plan(&plan, max, id_a.key_len, mlen, blen),
	    MC_ITEM_OK);
	assert_int_equal(plan.nchunks, 0);
	assert_int_equal(plan.item_size, max);
	it = make_object(&id_a, meta, mlen, body, blen, &len);
	assert_int_equal(len, max);
	assert_int_equal(mc_item_decode(&v, &id_a, it, len), MC_ITEM_OK);
	assert_memory_equal(v.data, body, blen);
	assert_memory_equal(v.meta, meta, mlen);
	/* A buffer one byte short is refused, not overrun. */
	assert_int_equal(mc_item_encode_object(it, max - 1, &len, &id_a, meta,
	    mlen, body, blen), MC_ITEM_E_ARG);
	free(it);
	free(body);
	free(meta);
}

static void
test_one_byte_over_splits(void **state)
{
	const size_t max = 4096, mlen = 100;
	size_t blen = max - MC_ITEM_HDR_LEN - id_a.key_len - mlen -
	    MC_ITEM_MAC_LEN + 1;
	uint8_t *body = random_bytes(blen, 21), *meta = random_bytes(mlen, 22);
	uint8_t *out = malloc(blen);
	struct mc_item_view man, ch[4];
	struct split s;

	(void)state;
	assert_non_null(out);
	make_split(&s, &id_a, max, nonce1, meta, mlen, body, blen);
	assert_int_equal(s.plan.nchunks, 1);
	decode_split(&s, &id_a, &man, ch);
	assert_int_equal(man.body_len, blen);
	assert_int_equal(man.meta_len, mlen);
	assert_memory_equal(man.meta, meta, mlen);
	assert_null(man.data);
	assert_int_equal(mc_item_assemble_copy(&man, ch, 1, out, blen),
	    MC_ITEM_OK);
	assert_memory_equal(out, body, blen);
	/* Too small an output buffer is refused. */
	assert_int_equal(mc_item_assemble_copy(&man, ch, 1, out, blen - 1),
	    MC_ITEM_E_ARG);
	free_split(&s);
	free(out);
	free(body);
	free(meta);
}

static void
test_10mib_chunks(void **state)
{
	const size_t blen = 10u * 1024 * 1024;
	uint8_t *body = random_bytes(blen, 31), *out = malloc(blen);
	struct mc_item_view man, *ch;
	struct iovec *iov;
	struct split s;
	size_t off = 0;

	(void)state;
	assert_non_null(out);
	make_split(&s, &id_a, MC_ITEM_VALUE_MAX_DEFAULT, nonce1, META,
	    sizeof(META) - 1, body, blen);
	assert_int_equal(s.plan.nchunks, 11);
	ch = calloc(s.plan.nchunks, sizeof(*ch));
	iov = calloc(s.plan.nchunks, sizeof(*iov));
	assert_non_null(ch);
	assert_non_null(iov);
	decode_split(&s, &id_a, &man, ch);
	assert_int_equal(man.nchunks, 11);

	assert_int_equal(mc_item_assemble_iov(&man, ch, s.plan.nchunks, iov,
	    s.plan.nchunks), MC_ITEM_OK);
	for (uint32_t i = 0; i < s.plan.nchunks; i++) {
		assert_memory_equal(iov[i].iov_base, body + off,
		    iov[i].iov_len);
		off += iov[i].iov_len;
	}
	assert_int_equal(off, blen);
	assert_int_equal(mc_item_assemble_iov(&man, ch, s.plan.nchunks, iov,
	    s.plan.nchunks - 1), MC_ITEM_E_ARG);

	assert_int_equal(mc_item_assemble_copy(&man, ch, s.plan.nchunks, out,
	    blen), MC_ITEM_OK);
	assert_memory_equal(out, body, blen);
	free(iov);
	free(ch);
	free_split(&s);
	free(out);
	free(body);
}

/* ---- refusals -------------------------------------------------------- */

static void
test_truncate_every_length(void **state)
{
	uint8_t *body = random_bytes(300, 41), *it;
	size_t len;
	int rc;

	(void)state;
	it = make_object(&id_a, META, sizeof(META) - 1, body, 300, &len);
	for (size_t n = 0; n < len; n++) {
		rc = decode_exact(&id_a, it, n);
		assert_int_not_equal(rc, MC_ITEM_OK);
		/* With the magic intact, a prefix is always "truncated". */
		if (n >= 4)
			assert_int_equal(rc, MC_ITEM_E_SHORT);
	}
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_OK);
	free(it);
	free(body);
}

static void
test_flip_every_byte(void **state)
{
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	uint8_t *body = random_bytes(200, 51), *it;
	size_t len;

	(void)state;
	it = make_object(&id_a, META, sizeof(META) - 1, body, 200, &len);
	for (size_t i = 0; i < len; i++) {
		for (size_t m = 0; m < sizeof(masks); m++) {
			it[i] ^= masks[m];
			assert_int_not_equal(decode_exact(&id_a, it, len),
			    MC_ITEM_OK);
			it[i] ^= masks[m];
		}
	}
	/* Flipping a payload or MAC byte is an HMAC failure precisely. */
	it[len - 1] ^= 1;
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_E_HMAC);
	it[len - 1] ^= 1;
	it[len - MC_ITEM_MAC_LEN - 1] ^= 1;
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_E_HMAC);
	free(it);
	free(body);
}

static void
test_wrong_secret(void **state)
{
	uint8_t *it;
	size_t len;

	(void)state;
	it = make_object(&id_a, META, sizeof(META) - 1, "body", 4, &len);
	assert_int_equal(decode_exact(&id_a_other_secret, it, len),
	    MC_ITEM_E_HMAC);
	free(it);
}

static void
test_other_key(void **state)
{
	uint8_t *it;
	size_t len;
	struct mc_item_id prefix = id_a;

	(void)state;
	it = make_object(&id_a, META, sizeof(META) - 1, "body", 4, &len);
	assert_int_equal(decode_exact(&id_b, it, len), MC_ITEM_E_KEY);
	/* A prefix of the key is another key too. */
	prefix.key_len--;
	assert_int_equal(decode_exact(&prefix, it, len), MC_ITEM_E_KEY);
	free(it);
}

static void
test_structural_errors(void **state)
{
	uint8_t *it, *big;
	size_t len;

	(void)state;
	it = make_object(&id_a, META, sizeof(META) - 1, "body", 4, &len);
	it[0] = 'X';
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_E_MAGIC);
	it[0] = 'S';
	it[4] = 2;
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_E_VERSION);
	it[4] = MC_ITEM_VERSION;
	it[7] = 1;		/* an unknown flag */
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_E_VERSION);
	it[7] = 0;
	it[5] = 9;
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_E_KIND);
	it[5] = 0;
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_E_KIND);
	it[5] = MC_ITEM_OBJECT;
	/* Trailing garbage: lengths do not add up. */
	big = malloc(len + 1);
	assert_non_null(big);
	memcpy(big, it, len);
	big[len] = 0;
	assert_int_equal(decode_exact(&id_a, big, len + 1), MC_ITEM_E_LENGTH);
	/* A payload length that claims the maximum: short, no overread. */
	memset(it + 48, 0xff, 4);
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_E_SHORT);
	memset(it + 8, 0xff, 4);
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_E_SHORT);
	free(big);
	free(it);
}

/* Fields that lie although the MAC is right (a buggy or rogue writer). */
static void
test_authentic_but_inconsistent(void **state)
{
	uint8_t *it, *body = random_bytes(5000, 61);
	size_t len;
	struct split s;

	(void)state;
	/* Object: meta_len beyond the payload. */
	it = make_object(&id_a, META, sizeof(META) - 1, body, 100, &len);
	it[20] = 0x7f;
	resign(it, len, &id_a);
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_E_LENGTH);
	free(it);
	/* Object: body_len not payload - meta. */
	it = make_object(&id_a, META, sizeof(META) - 1, body, 100, &len);
	it[19] ^= 1;
	resign(it, len, &id_a);
	assert_int_equal(decode_exact(&id_a, it, len), MC_ITEM_E_LENGTH);
	free(it);

	make_split(&s, &id_a, 2048, nonce1, META, sizeof(META) - 1, body,
	    5000);
	assert_true(s.plan.nchunks >= 3);
	/* Manifest: a chunk count that the sizes contradict. */
	s.man[27] ^= 1;
	resign(s.man, s.man_len, &id_a);
	assert_int_equal(decode_exact(&id_a, s.man, s.man_len),
	    MC_ITEM_E_LENGTH);
	/* Chunk: an index past the end. */
	s.chunk[0][27] = 0x40;
	resign(s.chunk[0], s.chunk_len[0], &id_a);
	assert_int_equal(decode_exact(&id_a, s.chunk[0], s.chunk_len[0]),
	    MC_ITEM_E_LENGTH);
	/* Chunk: the last index for a full-size piece (the last is short). */
	s.chunk[1][27] = (uint8_t)(s.plan.nchunks - 1);
	resign(s.chunk[1], s.chunk_len[1], &id_a);
	assert_int_equal(decode_exact(&id_a, s.chunk[1], s.chunk_len[1]),
	    MC_ITEM_E_LENGTH);
	free_split(&s);
	free(body);
}

static void
test_stale_chunk(void **state)
{
	const size_t blen = 10000;
	uint8_t *v1 = random_bytes(blen, 71), *v2 = random_bytes(blen, 72);
	struct mc_item_view man, ch[8], old_man, old[8];
	struct split s1, s2;

	(void)state;
	make_split(&s1, &id_a, 4096, nonce1, META, sizeof(META) - 1, v1, blen);
	make_split(&s2, &id_a, 4096, nonce2, META, sizeof(META) - 1, v2, blen);
	assert_int_equal(s1.plan.nchunks, s2.plan.nchunks);
	assert_true(s1.plan.nchunks <= 8);
	decode_split(&s1, &id_a, &old_man, old);
	decode_split(&s2, &id_a, &man, ch);
	assert_int_equal(mc_item_assemble_check(&man, ch, s2.plan.nchunks),
	    MC_ITEM_OK);
	/* The old chunk is authentic on its own, but not of this version. */
	ch[1] = old[1];
	assert_int_equal(mc_item_assemble_check(&man, ch, s2.plan.nchunks),
	    MC_ITEM_E_STALE);
	assert_int_equal(mc_item_assemble_check(&old_man, old,
	    s1.plan.nchunks), MC_ITEM_OK);
	free_split(&s1);
	free_split(&s2);
	free(v1);
	free(v2);
}

static void
test_chunk_order_swapped(void **state)
{
	const size_t blen = 10000;
	uint8_t *body = random_bytes(blen, 81), *out = malloc(blen);
	struct mc_item_view man, ch[8], t;
	struct iovec iov[8];
	struct split s;

	(void)state;
	assert_non_null(out);
	make_split(&s, &id_a, 4096, nonce1, META, sizeof(META) - 1, body,
	    blen);
	decode_split(&s, &id_a, &man, ch);
	t = ch[0];
	ch[0] = ch[1];
	ch[1] = t;
	assert_int_equal(mc_item_assemble_check(&man, ch, s.plan.nchunks),
	    MC_ITEM_E_ORDER);
	assert_int_equal(mc_item_assemble_iov(&man, ch, s.plan.nchunks, iov,
	    8), MC_ITEM_E_ORDER);
	assert_int_equal(mc_item_assemble_copy(&man, ch, s.plan.nchunks, out,
	    blen), MC_ITEM_E_ORDER);
	free_split(&s);
	free(out);
	free(body);
}

static void
test_missing_chunk(void **state)
{
	const size_t blen = 10000;
	uint8_t *body = random_bytes(blen, 91);
	struct mc_item_view man, ch[8];
	struct split s;
	uint32_t n;

	(void)state;
	make_split(&s, &id_a, 4096, nonce1, META, sizeof(META) - 1, body,
	    blen);
	n = s.plan.nchunks;
	decode_split(&s, &id_a, &man, ch);
	/* memcached returned nothing for the last one. */
	assert_int_equal(mc_item_assemble_check(&man, ch, n - 1),
	    MC_ITEM_E_MISSING);
	/* One in the middle absent (a zeroed view). */
	memset(&ch[1], 0, sizeof(ch[1]));
	assert_int_equal(mc_item_assemble_check(&man, ch, n),
	    MC_ITEM_E_MISSING);
	/* Not a manifest. */
	assert_int_equal(mc_item_assemble_check(&ch[0], ch, n),
	    MC_ITEM_E_KIND);
	free_split(&s);
	free(body);
}

/* ---- names, plan, arguments ------------------------------------------ */

static void
check_mckey(const char *k, int len)
{
	assert_true(len > 0 && len <= 250);
	assert_int_equal(strlen(k), (size_t)len);
	for (int i = 0; i < len; i++)
		assert_true(k[i] > 0x20 && k[i] < 0x7f);
}

static void
test_mckeys(void **state)
{
	char ka[MC_ITEM_MCKEY_SIZE], kb[MC_ITEM_MCKEY_SIZE];
	char ks[MC_ITEM_MCKEY_SIZE], c0[MC_ITEM_MCKEY_SIZE];
	char c1[MC_ITEM_MCKEY_SIZE], cn[MC_ITEM_MCKEY_SIZE];
	char cmax[MC_ITEM_MCKEY_SIZE], again[MC_ITEM_MCKEY_SIZE];
	char *longkey = malloc(MC_ITEM_KEY_MAX);
	struct mc_item_id idl = { longkey, MC_ITEM_KEY_MAX, SECRET, 9, false };
	struct mc_item_id empty_secret = { KEY_A, 5, "", 0, false };

	(void)state;
	assert_non_null(longkey);
	memset(longkey, ' ', MC_ITEM_KEY_MAX);	/* spaces must not leak */
	check_mckey(ka, mc_item_mckey(ka, &id_a));
	check_mckey(kb, mc_item_mckey(kb, &id_b));
	check_mckey(ks, mc_item_mckey(ks, &id_a_other_secret));
	check_mckey(again, mc_item_mckey(again, &idl));
	assert_int_equal(strncmp(ka, "sluice:", 7), 0);
	assert_string_not_equal(ka, kb);
	assert_string_not_equal(ka, ks);
	assert_int_equal(mc_item_mckey(again, &id_a), 71);
	assert_string_equal(ka, again);	/* deterministic */

	check_mckey(c0, mc_item_chunk_mckey(c0, ka, nonce1, 0));
	check_mckey(c1, mc_item_chunk_mckey(c1, ka, nonce1, 1));
	check_mckey(cn, mc_item_chunk_mckey(cn, ka, nonce2, 0));
	check_mckey(cmax, mc_item_chunk_mckey(cmax, ka, nonce1, UINT32_MAX));
	assert_int_equal(strlen(cmax), 113);
	assert_string_not_equal(c0, c1);
	assert_string_not_equal(c0, cn);
	assert_string_not_equal(c0, ka);
	assert_int_equal(strncmp(c0, ka, 71), 0);

	assert_int_equal(mc_item_mckey(ka, &empty_secret), MC_ITEM_E_ARG);
	idl.key_len++;
	assert_int_equal(mc_item_mckey(ka, &idl), MC_ITEM_E_ARG);
	free(longkey);
}

static void
test_plan(void **state)
{
	struct mc_item_plan p;
	uint64_t off, next = 0;
	size_t len;

	(void)state;
	/* Meta that cannot fit even a manifest. */
	assert_int_equal(mc_item_plan(&p, 1024, 10, 1024, 10),
	    MC_ITEM_E_TOOBIG);
	/* Chunks tile the body exactly, the last one short. */
	assert_int_equal(mc_item_plan(&p, 1000, 10, 20, 5000), MC_ITEM_OK);
	assert_int_equal(p.chunk_size, 1000 - MC_ITEM_HDR_LEN - 10 -
	    MC_ITEM_MAC_LEN);
	assert_int_equal(p.nchunks, (5000 + p.chunk_size - 1) / p.chunk_size);
	for (uint32_t i = 0; i < p.nchunks; i++) {
		assert_int_equal(mc_item_plan_chunk(&p, i, &off, &len),
		    MC_ITEM_OK);
		assert_int_equal(off, next);
		assert_true(len > 0 && len <= p.chunk_size);
		assert_true(mc_item_chunk_size(&p, 10, i) <= 1000);
		next += len;
	}
	assert_int_equal(next, 5000);
	assert_int_equal(mc_item_plan_chunk(&p, p.nchunks, &off, &len),
	    MC_ITEM_E_ARG);
	assert_int_equal(mc_item_chunk_size(&p, 10, p.nchunks), 0);
	/* A body beyond 4 GiB splits rather than overflowing a field. */
	assert_int_equal(mc_item_plan(&p, MC_ITEM_VALUE_MAX_DEFAULT, 10, 20,
	    (uint64_t)5 << 30), MC_ITEM_OK);
	assert_true(p.nchunks > 5000);
	assert_int_equal(mc_item_object_size(10, 0, (uint64_t)5 << 30), 0);
}

static void
test_args(void **state)
{
	struct mc_item_id bad = id_a;
	struct mc_item_plan p;
	struct mc_item_view v;
	uint8_t buf[512], piece[8] = { 0 };
	size_t len;

	(void)state;
	bad.secret_len = 0;
	assert_int_equal(mc_item_encode_object(buf, sizeof(buf), &len, &bad,
	    NULL, 0, "x", 1), MC_ITEM_E_ARG);
	assert_int_equal(mc_item_encode_object(buf, 10, &len, &id_a, NULL, 0,
	    "x", 1), MC_ITEM_E_ARG);
	assert_int_equal(mc_item_encode_object(buf, sizeof(buf), &len, &id_a,
	    NULL, 0, "x", 1), MC_ITEM_OK);
	assert_int_equal(mc_item_decode(&v, &bad, buf, len), MC_ITEM_E_ARG);
	/* A chunk piece of the wrong length. */
	assert_int_equal(mc_item_plan(&p, 200, id_a.key_len, 0, 300),
	    MC_ITEM_OK);
	assert_true(p.nchunks > 1);
	assert_int_equal(mc_item_encode_chunk(buf, sizeof(buf), &len, &id_a,
	    &p, nonce1, 0, piece, sizeof(piece)), MC_ITEM_E_LENGTH);
	assert_int_equal(mc_item_encode_chunk(buf, sizeof(buf), &len, &id_a,
	    &p, nonce1, p.nchunks, piece, sizeof(piece)), MC_ITEM_E_ARG);
	/* Every code has its own text. */
	for (int a = MC_ITEM_E_CRYPTO; a <= MC_ITEM_OK; a++)
		for (int b = a + 1; b <= MC_ITEM_OK; b++)
			assert_string_not_equal(mc_item_strerror(a),
			    mc_item_strerror(b));
}

/* ---- fuzz ------------------------------------------------------------ */

static void
test_fuzz_decode(void **state)
{
	uint8_t *body = random_bytes(3000, 101), *obj;
	const uint8_t *orig[3];
	size_t olen[3], objlen;
	struct split s;
	uint64_t seed = (uint64_t)time(NULL) * 2654435761u | 1;
	struct timespec t0, t;
	unsigned long iters = 0, oks = 0;

	(void)state;
	print_message("# fuzz seed %llu\n", (unsigned long long)seed);
	obj = make_object(&id_a, META, sizeof(META) - 1, body, 300, &objlen);
	make_split(&s, &id_a, 1024, nonce1, META, sizeof(META) - 1, body,
	    3000);
	orig[0] = obj;
	olen[0] = objlen;
	orig[1] = s.man;
	olen[1] = s.man_len;
	orig[2] = s.chunk[1];
	olen[2] = s.chunk_len[1];
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		size_t which = rnd(&seed) % 3, n, muts;
		uint8_t *b;
		struct mc_item_view v;
		int rc;

		/* Length: mostly near the original, sometimes anything. */
		n = olen[which] + (size_t)(rnd(&seed) % 17) - 8;
		if (rnd(&seed) % 8 == 0)
			n = (size_t)(rnd(&seed) % (olen[which] + 64));
		b = malloc(n ? n : 1);
		assert_non_null(b);
		for (size_t i = 0; i < n; i++)
			b[i] = i < olen[which] ? orig[which][i] :
			    (uint8_t)rnd(&seed);
		muts = rnd(&seed) % 4;
		for (size_t m = 0; m < muts && n > 0; m++) {
			size_t at = (size_t)(rnd(&seed) % (rnd(&seed) % 2 ?
			    n : (n < 60 ? n : 60)));	/* favour the header */

			b[at] = (uint8_t)rnd(&seed);
		}
		rc = mc_item_decode(&v, &id_a, n ? b : NULL, n);
		{
			/* The split decode (HMAC in a client thread, the
			 * rest on the loop) answers exactly the same. */
			struct mc_item_view v2;
			int split = mc_item_check_mac(id_a.secret,
			    id_a.secret_len, n ? b : NULL, n);

			if (split == MC_ITEM_OK)
				split = mc_item_decode_checked(&v2, &id_a,
				    n ? b : NULL, n);
			assert_int_equal(split, rc);
			if (rc == MC_ITEM_OK)
				assert_memory_equal(&v2, &v, sizeof(v));
		}
		if (rc == MC_ITEM_OK) {
			/* Only the untouched item itself may pass. */
			assert_int_equal(n, olen[which]);
			assert_memory_equal(b, orig[which], n);
			oks++;
		}
		free(b);
		iters++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L +
	    (t.tv_nsec - t0.tv_nsec) < 2000000000L);
	print_message("# fuzz: %lu inputs, %lu unmodified ok\n", iters, oks);
	assert_true(iters > 1000);
	free_split(&s);
	free(obj);
	free(body);
}

/* An item encoded unsealed and sealed afterwards (the client threads'
 * part) is the item a sealed encode makes, byte for byte, and decodes;
 * unsealed it does not. */
static void
test_seal_later(void **state)
{
	struct mc_item_id un = id_a;
	uint8_t *body = random_bytes(5000, 7);
	uint8_t *a, *b;
	size_t la, lb;
	struct mc_item_view v;

	(void)state;
	un.unsealed = true;
	a = make_object(&id_a, META, sizeof(META) - 1, body, 5000, &la);
	b = make_object(&un, META, sizeof(META) - 1, body, 5000, &lb);
	assert_int_equal(la, lb);
	assert_int_equal(mc_item_decode(&v, &id_a, b, lb), MC_ITEM_E_HMAC);
	assert_int_equal(mc_item_seal(SECRET, sizeof(SECRET) - 1, b, lb),
	    MC_ITEM_OK);
	assert_memory_equal(a, b, la);
	assert_int_equal(mc_item_decode(&v, &id_a, b, lb), MC_ITEM_OK);
	assert_int_equal(mc_item_seal(NULL, 0, b, lb), MC_ITEM_E_ARG);
	assert_int_equal(mc_item_seal(SECRET, sizeof(SECRET) - 1, b, 10),
	    MC_ITEM_E_SHORT);
	free(a);
	free(b);
	free(body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_empty_body),
		cmocka_unit_test(test_roundtrip_small),
		cmocka_unit_test(test_in_place),
		cmocka_unit_test(test_exact_item_limit),
		cmocka_unit_test(test_one_byte_over_splits),
		cmocka_unit_test(test_10mib_chunks),
		cmocka_unit_test(test_truncate_every_length),
		cmocka_unit_test(test_flip_every_byte),
		cmocka_unit_test(test_wrong_secret),
		cmocka_unit_test(test_other_key),
		cmocka_unit_test(test_structural_errors),
		cmocka_unit_test(test_authentic_but_inconsistent),
		cmocka_unit_test(test_stale_chunk),
		cmocka_unit_test(test_chunk_order_swapped),
		cmocka_unit_test(test_missing_chunk),
		cmocka_unit_test(test_mckeys),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_fuzz_decode),
		cmocka_unit_test(test_seal_later),
	};

	return cmocka_run_group_tests_name("mc_item", tests, NULL, NULL);
}
