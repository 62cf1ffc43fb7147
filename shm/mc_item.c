/*
 * mc_item.c - encode, verify and reassemble sluice's memcached items
 * (format and rationale in mc_item.h).
 *
 * Assumes: OpenSSL 3 (EVP_MAC "HMAC" with SHA-256, RAND_bytes,
 * CRYPTO_memcmp).  Callers own every buffer; nothing here allocates
 * except OpenSSL's MAC context.
 *
 * Why this shape: decode treats the bytes as hostile.  It first proves
 * that the header's lengths describe exactly the bytes it was given
 * (arithmetic in 64 bits, so no field can wrap a sum), only then
 * authenticates, and only then trusts any field.  Every pointer it hands
 * out lies inside [item, item + len).
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "lib/be.h"
#include "shm/mc_item.h"

/* Header field offsets (mc_item.h). */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 4,
	OFF_KIND = 5,
	OFF_FLAGS = 6,
	OFF_KEY_LEN = 8,
	OFF_BODY_LEN = 12,
	OFF_META_LEN = 20,
	OFF_COUNT = 24,
	OFF_CHUNK_SIZE = 28,
	OFF_NONCE = 32,
	OFF_PAYLOAD_LEN = 48,
};

_Static_assert(OFF_PAYLOAD_LEN + 4 == MC_ITEM_HDR_LEN, "header layout");

#define MCKEY_PREFIX	"sluice:"
#define MCKEY_LABEL	"sluice key v1\n"	/* domain separation from items */

static const char hexdig[] = "0123456789abcdef";

const char *
mc_item_strerror(int err)
{
	switch (err) {
	case MC_ITEM_OK:	return "ok";
	case MC_ITEM_E_SHORT:	return "item truncated";
	case MC_ITEM_E_MAGIC:	return "not a sluice item (bad magic)";
	case MC_ITEM_E_VERSION:	return "unknown item format version or flags";
	case MC_ITEM_E_KIND:	return "unexpected item kind";
	case MC_ITEM_E_KEY:	return "item belongs to another cache key";
	case MC_ITEM_E_LENGTH:	return "item lengths do not add up";
	case MC_ITEM_E_HMAC:	return "item HMAC mismatch";
	case MC_ITEM_E_STALE:	return "chunk of another object version";
	case MC_ITEM_E_ORDER:	return "chunk out of order";
	case MC_ITEM_E_MISSING:	return "chunk missing";
	case MC_ITEM_E_TOOBIG:	return "object too big for the item format";
	case MC_ITEM_E_ARG:	return "invalid argument";
	case MC_ITEM_E_CRYPTO:	return "OpenSSL failure";
	}
	return "unknown mc_item error";
}

/* ---- big-endian fields ---------------------------------------------- */

/* ---- HMAC-SHA256 over up to two pieces ------------------------------ */

static EVP_MAC *hmac_alg;		/* set once, then only read */
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void
hmac_fetch(void)
{
	hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static int
hmac2(uint8_t out[MC_ITEM_MAC_LEN], const void *secret, size_t secret_len,
    const void *a, size_t alen, const void *b, size_t blen)
{
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	size_t outl = 0;
	int ok = 0;

	/* Fetched once: a fetch takes the provider store's lock and a
	 * lookup, which would cost as much as hashing a small item. */
	pthread_once(&hmac_once, hmac_fetch);
	if ((mac = hmac_alg) == NULL)
		return MC_ITEM_E_CRYPTO;
	ctx = EVP_MAC_CTX_new(mac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx != NULL &&
	    EVP_MAC_init(ctx, secret, secret_len, params) == 1 &&
	    EVP_MAC_update(ctx, a, alen) == 1 &&
	    (blen == 0 || EVP_MAC_update(ctx, b, blen) == 1) &&
	    EVP_MAC_final(ctx, out, &outl, MC_ITEM_MAC_LEN) == 1 &&
	    outl == MC_ITEM_MAC_LEN)
		ok = 1;
	EVP_MAC_CTX_free(ctx);
	return ok ? MC_ITEM_OK : MC_ITEM_E_CRYPTO;
}

static int
id_valid(const struct mc_item_id *id)
{
	return id != NULL && id->key != NULL && id->key_len > 0 &&
	    id->key_len <= MC_ITEM_KEY_MAX && id->secret != NULL &&
	    id->secret_len > 0;
}

static char *
hex(char *o, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*o++ = hexdig[p[i] >> 4];
		*o++ = hexdig[p[i] & 15];
	}
	return o;
}

/* ---- memcached keys ------------------------------------------------- */

int
mc_item_mckey(char out[MC_ITEM_MCKEY_SIZE], const struct mc_item_id *id)
{
	uint8_t d[MC_ITEM_MAC_LEN];
	char *o;
	int rc;

	if (out == NULL || !id_valid(id))
		return MC_ITEM_E_ARG;
	rc = hmac2(d, id->secret, id->secret_len, MCKEY_LABEL,
	    sizeof(MCKEY_LABEL) - 1, id->key, id->key_len);
	if (rc != MC_ITEM_OK)
		return rc;
	memcpy(out, MCKEY_PREFIX, sizeof(MCKEY_PREFIX) - 1);
	o = hex(out + sizeof(MCKEY_PREFIX) - 1, d, sizeof(d));
	*o = '\0';
	return (int)(o - out);
}

int
mc_item_chunk_mckey(char out[MC_ITEM_MCKEY_SIZE], const char *obj_mckey,
    const uint8_t nonce[MC_ITEM_NONCE_LEN], uint32_t index)
{
	uint8_t ib[4];
	size_t klen;
	char *o;

	if (out == NULL || obj_mckey == NULL || nonce == NULL)
		return MC_ITEM_E_ARG;
	klen = strnlen(obj_mckey, MC_ITEM_MCKEY_SIZE);
	/* ":" + 32 hex + ":" + 8 hex + NUL must fit after the object key. */
	if (klen == 0 || klen + 1 + 2 * MC_ITEM_NONCE_LEN + 1 + 8 + 1 >
	    MC_ITEM_MCKEY_SIZE)
		return MC_ITEM_E_ARG;
	memmove(out, obj_mckey, klen);
	o = out + klen;
	*o++ = ':';
	o = hex(o, nonce, MC_ITEM_NONCE_LEN);
	*o++ = ':';
	be_put32(ib, index);
	o = hex(o, ib, sizeof(ib));
	*o = '\0';
	return (int)(o - out);
}

int
mc_item_nonce(uint8_t nonce[MC_ITEM_NONCE_LEN])
{
	if (nonce == NULL)
		return MC_ITEM_E_ARG;
	return RAND_bytes(nonce, MC_ITEM_NONCE_LEN) == 1 ? MC_ITEM_OK :
	    MC_ITEM_E_CRYPTO;
}

/* ---- sizes and the split plan --------------------------------------- */

/*
 * Bytes of an item with this key and payload; 0 if the key or payload
 * exceeds what the 32-bit fields hold.
 */
static size_t
item_size(size_t key_len, uint64_t payload_len)
{
	if (key_len > MC_ITEM_KEY_MAX || payload_len > UINT32_MAX)
		return 0;
	/* At most 52 + 64 Ki + 4 Gi + 32: fits a 64-bit size_t. */
	if ((uint64_t)SIZE_MAX - MC_ITEM_HDR_LEN - MC_ITEM_MAC_LEN - key_len <
	    payload_len)
		return 0;
	return MC_ITEM_HDR_LEN + key_len + (size_t)payload_len +
	    MC_ITEM_MAC_LEN;
}

size_t
mc_item_object_size(size_t key_len, size_t meta_len, uint64_t body_len)
{
	if (meta_len > UINT32_MAX || body_len > UINT32_MAX)
		return 0;
	return item_size(key_len, (uint64_t)meta_len + body_len);
}

int
mc_item_plan(struct mc_item_plan *plan, size_t item_max, size_t key_len,
    size_t meta_len, uint64_t body_len)
{
	size_t whole, man, room;
	uint64_t n;

	if (plan == NULL || key_len == 0 || key_len > MC_ITEM_KEY_MAX)
		return MC_ITEM_E_ARG;
	memset(plan, 0, sizeof(*plan));
	plan->body_len = body_len;
	whole = mc_item_object_size(key_len, meta_len, body_len);
	if (whole != 0 && whole <= item_max) {
		plan->item_size = whole;
		return MC_ITEM_OK;
	}
	man = meta_len > UINT32_MAX ? 0 : item_size(key_len, meta_len);
	if (man == 0 || man > item_max)
		return MC_ITEM_E_TOOBIG;
	/* Every chunk item carries the header, the key and the MAC. */
	if (item_max < MC_ITEM_HDR_LEN + key_len + MC_ITEM_MAC_LEN + 1)
		return MC_ITEM_E_TOOBIG;
	room = item_max - MC_ITEM_HDR_LEN - key_len - MC_ITEM_MAC_LEN;
	if (room > UINT32_MAX)
		room = UINT32_MAX;
	n = body_len / room + (body_len % room != 0);
	if (n == 0 || n > UINT32_MAX)
		return MC_ITEM_E_TOOBIG;
	plan->nchunks = (uint32_t)n;
	plan->chunk_size = (uint32_t)room;
	plan->item_size = man;
	return MC_ITEM_OK;
}

/* Length of piece `index` for body_len split by cs; 0 if out of range. */
static uint64_t
piece_len(uint64_t body_len, uint32_t cs, uint32_t index)
{
	uint64_t off;

	if (cs == 0 || (uint64_t)index >= body_len / cs + (body_len % cs != 0))
		return 0;
	off = (uint64_t)index * cs;
	return body_len - off < cs ? body_len - off : cs;
}

int
mc_item_plan_chunk(const struct mc_item_plan *plan, uint32_t index,
    uint64_t *off, size_t *len)
{
	uint64_t l;

	if (plan == NULL || plan->nchunks == 0 || index >= plan->nchunks)
		return MC_ITEM_E_ARG;
	l = piece_len(plan->body_len, plan->chunk_size, index);
	if (l == 0)
		return MC_ITEM_E_ARG;
	if (off != NULL)
		*off = (uint64_t)index * plan->chunk_size;
	if (len != NULL)
		*len = (size_t)l;
	return MC_ITEM_OK;
}

size_t
mc_item_chunk_size(const struct mc_item_plan *plan, size_t key_len,
    uint32_t index)
{
	size_t len;

	if (mc_item_plan_chunk(plan, index, NULL, &len) != MC_ITEM_OK)
		return 0;
	return item_size(key_len, len);
}

/* ---- encoding ------------------------------------------------------- */

struct hdr {
	enum mc_item_kind kind;
	uint64_t body_len;
	uint32_t meta_len, count, chunk_size, payload_len;
	const uint8_t *nonce;		/* NULL: zeros */
};

/*
 * Writes header, key, payload pieces a and b, and the MAC.  The caller
 * has checked that the sizes fit the fields.
 */
static int
encode(void *out, size_t out_size, size_t *out_len,
    const struct mc_item_id *id, const struct hdr *h,
    const void *a, size_t alen, const void *b, size_t blen)
{
	uint8_t *p = out;
	size_t need, n;
	int rc;

	need = item_size(id->key_len, h->payload_len);
	if (need == 0)
		return MC_ITEM_E_TOOBIG;
	if (out == NULL || out_len == NULL || out_size < need)
		return MC_ITEM_E_ARG;
	memcpy(p + OFF_MAGIC, MC_ITEM_MAGIC, 4);
	p[OFF_VERSION] = MC_ITEM_VERSION;
	p[OFF_KIND] = (uint8_t)h->kind;
	be_put16(p + OFF_FLAGS, 0);
	be_put32(p + OFF_KEY_LEN, (uint32_t)id->key_len);
	be_put64(p + OFF_BODY_LEN, h->body_len);
	be_put32(p + OFF_META_LEN, h->meta_len);
	be_put32(p + OFF_COUNT, h->count);
	be_put32(p + OFF_CHUNK_SIZE, h->chunk_size);
	if (h->nonce != NULL)
		memcpy(p + OFF_NONCE, h->nonce, MC_ITEM_NONCE_LEN);
	else
		memset(p + OFF_NONCE, 0, MC_ITEM_NONCE_LEN);
	be_put32(p + OFF_PAYLOAD_LEN, h->payload_len);
	n = MC_ITEM_HDR_LEN;
	/* Parts the caller already wrote in place are not copied (nor
	 * may memcpy be given overlapping ranges). */
	if ((const uint8_t *)id->key != p + n)
		memmove(p + n, id->key, id->key_len);
	n += id->key_len;
	if (alen > 0 && (const uint8_t *)a != p + n)
		memmove(p + n, a, alen);
	n += alen;
	if (blen > 0 && (const uint8_t *)b != p + n)
		memmove(p + n, b, blen);
	n += blen;
	if (id->unsealed) {
		memset(p + n, 0, MC_ITEM_MAC_LEN);	/* mc_item_seal() */
		rc = MC_ITEM_OK;
	} else
		rc = hmac2(p + n, id->secret, id->secret_len, p, n, NULL, 0);
	if (rc != MC_ITEM_OK)
		return rc;
	*out_len = n + MC_ITEM_MAC_LEN;
	return MC_ITEM_OK;
}

int
mc_item_seal(const void *secret, size_t secret_len, void *item, size_t len)
{
	uint8_t *p = item;

	if (secret == NULL || secret_len == 0 || item == NULL)
		return MC_ITEM_E_ARG;
	if (len < MC_ITEM_HDR_LEN + MC_ITEM_MAC_LEN)
		return MC_ITEM_E_SHORT;
	return hmac2(p + len - MC_ITEM_MAC_LEN, secret, secret_len, p,
	    len - MC_ITEM_MAC_LEN, NULL, 0);
}

size_t
mc_item_payload_off(size_t key_len)
{
	return MC_ITEM_HDR_LEN + key_len;
}

int
mc_item_encode_object(void *out, size_t out_size, size_t *out_len,
    const struct mc_item_id *id, const void *meta, size_t meta_len,
    const void *body, size_t body_len)
{
	struct hdr h = { .kind = MC_ITEM_OBJECT };

	if (!id_valid(id) || (meta == NULL && meta_len > 0) ||
	    (body == NULL && body_len > 0))
		return MC_ITEM_E_ARG;
	if (mc_item_object_size(id->key_len, meta_len, body_len) == 0)
		return MC_ITEM_E_TOOBIG;
	h.body_len = body_len;
	h.meta_len = (uint32_t)meta_len;
	h.payload_len = (uint32_t)(meta_len + body_len);
	return encode(out, out_size, out_len, id, &h, meta, meta_len, body,
	    body_len);
}

int
mc_item_encode_manifest(void *out, size_t out_size, size_t *out_len,
    const struct mc_item_id *id, const struct mc_item_plan *plan,
    const uint8_t nonce[MC_ITEM_NONCE_LEN], const void *meta, size_t meta_len)
{
	struct hdr h = { .kind = MC_ITEM_MANIFEST };

	if (!id_valid(id) || plan == NULL || plan->nchunks == 0 ||
	    plan->chunk_size == 0 || nonce == NULL ||
	    (meta == NULL && meta_len > 0))
		return MC_ITEM_E_ARG;
	if (meta_len > UINT32_MAX)
		return MC_ITEM_E_TOOBIG;
	h.body_len = plan->body_len;
	h.meta_len = (uint32_t)meta_len;
	h.count = plan->nchunks;
	h.chunk_size = plan->chunk_size;
	h.nonce = nonce;
	h.payload_len = (uint32_t)meta_len;
	return encode(out, out_size, out_len, id, &h, meta, meta_len, NULL, 0);
}

int
mc_item_encode_chunk(void *out, size_t out_size, size_t *out_len,
    const struct mc_item_id *id, const struct mc_item_plan *plan,
    const uint8_t nonce[MC_ITEM_NONCE_LEN], uint32_t index,
    const void *piece, size_t piece_len)
{
	struct hdr h = { .kind = MC_ITEM_CHUNK };
	size_t want;

	if (!id_valid(id) || nonce == NULL || piece == NULL)
		return MC_ITEM_E_ARG;
	if (mc_item_plan_chunk(plan, index, NULL, &want) != MC_ITEM_OK)
		return MC_ITEM_E_ARG;
	if (piece_len != want)
		return MC_ITEM_E_LENGTH;
	h.body_len = plan->body_len;
	h.count = index;
	h.chunk_size = plan->chunk_size;
	h.nonce = nonce;
	h.payload_len = (uint32_t)piece_len;
	return encode(out, out_size, out_len, id, &h, piece, piece_len, NULL, 0);
}

/* ---- decoding ------------------------------------------------------- */

/* Steps 1 and 2 of a decode: the structure (nothing later reads past
 * p + len) and, with mac, the HMAC in constant time. */
static int
frame_check(const void *secret, size_t secret_len, const uint8_t *p,
    size_t len, bool mac)
{
	uint8_t tag[MC_ITEM_MAC_LEN];
	uint64_t total;
	enum mc_item_kind kind;
	int rc;

	if (len < MC_ITEM_HDR_LEN)
		return MC_ITEM_E_SHORT;
	if (memcmp(p + OFF_MAGIC, MC_ITEM_MAGIC, 4) != 0)
		return MC_ITEM_E_MAGIC;
	if (p[OFF_VERSION] != MC_ITEM_VERSION || be_get16(p + OFF_FLAGS) != 0)
		return MC_ITEM_E_VERSION;
	kind = (enum mc_item_kind)p[OFF_KIND];
	if (kind != MC_ITEM_OBJECT && kind != MC_ITEM_MANIFEST &&
	    kind != MC_ITEM_CHUNK)
		return MC_ITEM_E_KIND;
	/* 32-bit fields summed in 64 bits cannot wrap. */
	total = MC_ITEM_HDR_LEN + (uint64_t)be_get32(p + OFF_KEY_LEN) +
	    be_get32(p + OFF_PAYLOAD_LEN) + MC_ITEM_MAC_LEN;
	if (total > len)
		return MC_ITEM_E_SHORT;
	if (total < len)
		return MC_ITEM_E_LENGTH;
	if (!mac)
		return MC_ITEM_OK;
	rc = hmac2(tag, secret, secret_len, p, len - MC_ITEM_MAC_LEN, NULL, 0);
	if (rc != MC_ITEM_OK)
		return rc;
	if (CRYPTO_memcmp(tag, p + len - MC_ITEM_MAC_LEN, MC_ITEM_MAC_LEN) != 0)
		return MC_ITEM_E_HMAC;
	return MC_ITEM_OK;
}

int
mc_item_check_mac(const void *secret, size_t secret_len, const void *item,
    size_t len)
{
	if (secret == NULL || secret_len == 0 || (item == NULL && len > 0))
		return MC_ITEM_E_ARG;
	return frame_check(secret, secret_len, item, len, true);
}

static int
decode(struct mc_item_view *v, const struct mc_item_id *id,
    const void *item, size_t len, bool mac)
{
	const uint8_t *p = item;
	uint64_t key_len, payload_len, body_len, plen;
	uint32_t meta_len, count, cs;
	enum mc_item_kind kind;
	int rc;

	if (v == NULL)
		return MC_ITEM_E_ARG;
	memset(v, 0, sizeof(*v));
	if (!id_valid(id) || (p == NULL && len > 0))
		return MC_ITEM_E_ARG;

	/* 1, 2. Structure and authenticity. */
	if ((rc = frame_check(id->secret, id->secret_len, p, len, mac)) !=
	    MC_ITEM_OK)
		return rc;
	kind = (enum mc_item_kind)p[OFF_KIND];
	key_len = be_get32(p + OFF_KEY_LEN);
	payload_len = be_get32(p + OFF_PAYLOAD_LEN);

	/* 3. Ours, but for this cache key?  (A name collision, or a bug.) */
	if (key_len != id->key_len ||
	    memcmp(p + MC_ITEM_HDR_LEN, id->key, id->key_len) != 0)
		return MC_ITEM_E_KEY;

	/* 4. The fields must agree with the kind and with each other. */
	body_len = be_get64(p + OFF_BODY_LEN);
	meta_len = be_get32(p + OFF_META_LEN);
	count = be_get32(p + OFF_COUNT);
	cs = be_get32(p + OFF_CHUNK_SIZE);
	switch (kind) {
	case MC_ITEM_OBJECT:
		if (count != 0 || cs != 0 || meta_len > payload_len ||
		    body_len != payload_len - meta_len)
			return MC_ITEM_E_LENGTH;
		break;
	case MC_ITEM_MANIFEST:
		if (cs == 0 || body_len == 0 || meta_len != payload_len ||
		    body_len / cs + (body_len % cs != 0) != count)
			return MC_ITEM_E_LENGTH;
		break;
	case MC_ITEM_CHUNK:
		plen = piece_len(body_len, cs, count);
		if (meta_len != 0 || plen == 0 || plen != payload_len)
			return MC_ITEM_E_LENGTH;
		break;
	default:
		return MC_ITEM_E_KIND;
	}

	v->kind = kind;
	v->body_len = body_len;
	v->chunk_size = cs;
	if (kind == MC_ITEM_MANIFEST)
		v->nchunks = count;
	else if (kind == MC_ITEM_CHUNK)
		v->index = count;
	memcpy(v->nonce, p + OFF_NONCE, MC_ITEM_NONCE_LEN);
	p += MC_ITEM_HDR_LEN + key_len;
	if (kind == MC_ITEM_CHUNK) {
		v->data = p;
		v->data_len = (size_t)payload_len;
	} else {
		v->meta = p;
		v->meta_len = meta_len;
		if (kind == MC_ITEM_OBJECT) {
			v->data = p + meta_len;
			v->data_len = (size_t)body_len;
		}
	}
	return MC_ITEM_OK;
}

int
mc_item_decode(struct mc_item_view *v, const struct mc_item_id *id,
    const void *item, size_t len)
{
	return decode(v, id, item, len, true);
}

int
mc_item_decode_checked(struct mc_item_view *v, const struct mc_item_id *id,
    const void *item, size_t len)
{
	return decode(v, id, item, len, false);
}

/* ---- reassembly ----------------------------------------------------- */

int
mc_item_assemble_check(const struct mc_item_view *manifest,
    const struct mc_item_view *chunks, size_t n)
{
	uint64_t sum = 0;

	if (manifest == NULL || (chunks == NULL && n > 0))
		return MC_ITEM_E_ARG;
	if (manifest->kind != MC_ITEM_MANIFEST)
		return MC_ITEM_E_KIND;
	if (n != manifest->nchunks)
		return MC_ITEM_E_MISSING;
	for (size_t i = 0; i < n; i++) {
		const struct mc_item_view *c = &chunks[i];

		if (c->kind == MC_ITEM_NONE)
			return MC_ITEM_E_MISSING;
		if (c->kind != MC_ITEM_CHUNK)
			return MC_ITEM_E_KIND;
		/* The nonce is not secret: a plain compare is fine. */
		if (memcmp(c->nonce, manifest->nonce, MC_ITEM_NONCE_LEN) != 0)
			return MC_ITEM_E_STALE;
		if (c->index != i)
			return MC_ITEM_E_ORDER;
		if (c->chunk_size != manifest->chunk_size ||
		    c->body_len != manifest->body_len || c->data == NULL ||
		    c->data_len != piece_len(manifest->body_len,
		    manifest->chunk_size, (uint32_t)i))
			return MC_ITEM_E_LENGTH;
		sum += c->data_len;
	}
	return sum == manifest->body_len ? MC_ITEM_OK : MC_ITEM_E_LENGTH;
}

int
mc_item_assemble_iov(const struct mc_item_view *manifest,
    const struct mc_item_view *chunks, size_t n, struct iovec *iov,
    size_t iov_cap)
{
	int rc;

	rc = mc_item_assemble_check(manifest, chunks, n);
	if (rc != MC_ITEM_OK)
		return rc;
	if (iov == NULL || iov_cap < n)
		return MC_ITEM_E_ARG;
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = (void *)chunks[i].data;
		iov[i].iov_len = chunks[i].data_len;
	}
	return MC_ITEM_OK;
}

int
mc_item_assemble_copy(const struct mc_item_view *manifest,
    const struct mc_item_view *chunks, size_t n, void *out, size_t out_size)
{
	uint8_t *o = out;
	int rc;

	rc = mc_item_assemble_check(manifest, chunks, n);
	if (rc != MC_ITEM_OK)
		return rc;
	if (out == NULL || out_size < manifest->body_len)
		return MC_ITEM_E_ARG;
	for (size_t i = 0; i < n; i++) {
		memcpy(o, chunks[i].data, chunks[i].data_len);
		o += chunks[i].data_len;
	}
	return MC_ITEM_OK;
}
