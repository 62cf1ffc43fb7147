/*
 * mc_item.h - the byte format of sluice's items in memcached: names,
 * envelope, split of large objects, verification and reassembly.
 *
 * Pure code: no I/O, no libmemcached, no logging, no state (but the HMAC
 * algorithm, fetched once); it builds
 * and checks byte strings and is safe to call from any thread (the
 * memcached thread pool).  Errors are negative MC_ITEM_E_* codes.
 *
 * Why: memcached has no authentication and anyone on the LAN may write
 * to it (HOSTILE.md F9, invariant I4).  So every item sluice stores is an
 * envelope that names the full cache key and is authenticated with
 * HMAC-SHA256 keyed by memcached.secret; an item that does not verify is
 * a miss, never served.
 *
 * memcached keys (<= 250 bytes, no spaces or control characters):
 *
 *   object/manifest  "sluice:" HEX64(HMAC-SHA256(secret, "sluice key v1\n" || cache key))
 *   chunk            <object key> ":" HEX32(nonce) ":" HEX8(index)
 *
 * The name is an HMAC, not a plain hash, so that a client of the same
 * memcached that lacks the secret cannot even compute where sluice keeps
 * a URL: it cannot target one URL for deletion or overwriting, nor probe
 * whether (or read what) sluice cached for it.  Changing the secret also
 * moves every name, so old items are simply never looked at again.
 * Chunk names carry the object's random nonce: a chunk left over from an
 * older version of the object lives under another name and, should it
 * be found anyway, fails the nonce check.  Maximum name length is
 * 7 + 64 + 1 + 32 + 1 + 8 = 113 bytes.
 *
 * Item format, every integer big-endian, fixed offsets:
 *
 *   off len  field
 *    0   4   magic "SLMC"
 *    4   1   format version (1)
 *    5   1   kind: 1 object, 2 manifest, 3 chunk
 *    6   2   flags (none defined in version 1: must be 0)
 *    8   4   key_len: length of the full cache key
 *   12   8   body_len: length of the whole object body
 *   20   4   meta_len: length of the meta blob (chunk: 0)
 *   24   4   count: manifest: number of chunks; chunk: its index;
 *            object: 0
 *   28   4   chunk_size: body bytes per chunk (last one may be shorter);
 *            object: 0
 *   32  16   nonce: random per stored version (object: all zero)
 *   48   4   payload_len
 *   52   key_len      the full cache key
 *    .   payload_len  object: meta || body; manifest: meta; chunk: the
 *                     body bytes [index*chunk_size, +payload_len)
 *    .   32  HMAC-SHA256(secret, every byte above)
 *
 * "meta" is opaque here: the worker puts in it what its policy needs to
 * serve the entry (stored response head, request/response times...).
 *
 * A decoded item is OK only if: the length is exactly header + key +
 * payload + MAC, magic/version/kind/flags are known, the HMAC matches
 * (compared in constant time), the embedded key equals the expected key,
 * and the lengths agree with the kind.  No byte beyond the given length
 * is read, whatever the header says.
 */
#ifndef SLUICE_MC_ITEM_H
#define SLUICE_MC_ITEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define MC_ITEM_MAGIC		"SLMC"
#define MC_ITEM_VERSION		1
#define MC_ITEM_HDR_LEN		52	/* fixed header, before the key */
#define MC_ITEM_MAC_LEN		32	/* HMAC-SHA256 trailer */
#define MC_ITEM_NONCE_LEN	16
#define MC_ITEM_KEY_MAX		65536	/* longest full cache key accepted */
#define MC_ITEM_MCKEY_SIZE	128	/* buffer for a memcached key + NUL */

/*
 * memcached's default item size is 1 MiB, and that limit covers its own
 * item header and the key as well as the value; keep 1 KiB of room.
 */
#define MC_ITEM_VALUE_MAX_DEFAULT	(1024u * 1024u - 1024u)

enum mc_item_kind {
	MC_ITEM_NONE = 0,	/* an absent chunk in an assembly array */
	MC_ITEM_OBJECT = 1,	/* a whole object in one item */
	MC_ITEM_MANIFEST = 2,	/* meta + how the body is split */
	MC_ITEM_CHUNK = 3,	/* one piece of a split body */
};

enum {
	MC_ITEM_OK = 0,
	MC_ITEM_E_SHORT = -1,	/* truncated: fewer bytes than the header says */
	MC_ITEM_E_MAGIC = -2,	/* not a sluice item */
	MC_ITEM_E_VERSION = -3,	/* another format version, or unknown flags */
	MC_ITEM_E_KIND = -4,	/* unknown kind, or not the kind expected */
	MC_ITEM_E_KEY = -5,	/* authentic item for another cache key */
	MC_ITEM_E_LENGTH = -6,	/* lengths do not add up */
	MC_ITEM_E_HMAC = -7,	/* wrong secret, or forged/corrupted bytes */
	MC_ITEM_E_STALE = -8,	/* assembly: a chunk of another version (nonce) */
	MC_ITEM_E_ORDER = -9,	/* assembly: a chunk with the wrong index */
	MC_ITEM_E_MISSING = -10,/* assembly: a chunk absent or count differs */
	MC_ITEM_E_TOOBIG = -11,	/* encode/plan: does not fit the limits */
	MC_ITEM_E_ARG = -12,	/* bad argument (empty secret, small buffer) */
	MC_ITEM_E_CRYPTO = -13,	/* OpenSSL failed */
};

/* Text for an MC_ITEM_* code (static string, never NULL). */
const char *mc_item_strerror(int err);

/* Who an item belongs to: the full cache key and memcached.secret. */
struct mc_item_id {
	const void *key;
	size_t key_len;		/* 0 < key_len <= MC_ITEM_KEY_MAX */
	const void *secret;
	size_t secret_len;	/* > 0: an empty secret is refused */
	bool unsealed;		/* encoders: leave the HMAC zero, for
				   mc_item_seal() in another thread */
};

/* How an object is stored: whole (nchunks == 0) or split. */
struct mc_item_plan {
	uint64_t body_len;
	uint32_t nchunks;	/* 0: one MC_ITEM_OBJECT item */
	uint32_t chunk_size;	/* body bytes per chunk; last may be shorter */
	size_t item_size;	/* bytes of the object item, or of the manifest */
};

/* A verified item; pointers point into the decoded bytes. */
struct mc_item_view {
	enum mc_item_kind kind;
	uint64_t body_len;	/* whole object body length */
	uint32_t nchunks;	/* manifest */
	uint32_t index;		/* chunk */
	uint32_t chunk_size;	/* manifest, chunk */
	uint8_t nonce[MC_ITEM_NONCE_LEN];	/* manifest, chunk */
	const uint8_t *meta;	/* object, manifest */
	size_t meta_len;
	const uint8_t *data;	/* object: the body; chunk: its piece */
	size_t data_len;
};

/*
 * Writes the memcached key of the object (or manifest) for id->key into
 * out (NUL-terminated).  Returns its length (71) or a negative error.
 */
int mc_item_mckey(char out[MC_ITEM_MCKEY_SIZE], const struct mc_item_id *id);

/*
 * Writes the memcached key of chunk `index` of the object stored under
 * obj_mckey (from mc_item_mckey) with this nonce.  Returns its length or
 * a negative error.
 */
int mc_item_chunk_mckey(char out[MC_ITEM_MCKEY_SIZE], const char *obj_mckey,
    const uint8_t nonce[MC_ITEM_NONCE_LEN], uint32_t index);

/* Fills a fresh random nonce (OpenSSL RAND_bytes); 0 or E_CRYPTO. */
int mc_item_nonce(uint8_t nonce[MC_ITEM_NONCE_LEN]);

/* Size in bytes of a whole-object item; 0 when it cannot be encoded. */
size_t mc_item_object_size(size_t key_len, size_t meta_len, uint64_t body_len);

/*
 * Decides how to store an object under an item size limit item_max (the
 * value bytes memcached accepts, e.g. MC_ITEM_VALUE_MAX_DEFAULT): whole
 * if it fits, else a manifest (header, key, meta) plus chunks that each
 * fill an item.  E_TOOBIG if even the manifest does not fit.
 */
int mc_item_plan(struct mc_item_plan *plan, size_t item_max, size_t key_len,
    size_t meta_len, uint64_t body_len);

/* Offset and length in the body of chunk `index` of a split plan. */
int mc_item_plan_chunk(const struct mc_item_plan *plan, uint32_t index,
    uint64_t *off, size_t *len);

/* Size in bytes of the item of chunk `index` (0 if out of range). */
size_t mc_item_chunk_size(const struct mc_item_plan *plan, size_t key_len,
    uint32_t index);

/*
 * Encoders.  Each writes one item into the caller's buffer out[out_size]
 * (no allocation: the memcached thread reuses one buffer for an object's
 * items) and sets *out_len.  E_ARG if the buffer is too small; the exact
 * sizes are mc_item_object_size(), plan->item_size (manifest) and
 * mc_item_chunk_size().
 */

/*
 * Where an item's key starts is MC_ITEM_HDR_LEN; its payload starts at
 * mc_item_payload_off(key_len).  A caller may write the key, meta, body
 * or piece into out at those places first and pass pointers to them:
 * the encoder then does not copy them again (one copy from the cache
 * into the item, not two).
 */
size_t mc_item_payload_off(size_t key_len);

/* A whole object: meta and body in one item. */
int mc_item_encode_object(void *out, size_t out_size, size_t *out_len,
    const struct mc_item_id *id, const void *meta, size_t meta_len,
    const void *body, size_t body_len);

/* The manifest of a split plan (plan->nchunks > 0). */
int mc_item_encode_manifest(void *out, size_t out_size, size_t *out_len,
    const struct mc_item_id *id, const struct mc_item_plan *plan,
    const uint8_t nonce[MC_ITEM_NONCE_LEN], const void *meta, size_t meta_len);

/*
 * Chunk `index` of a split plan; piece/piece_len are exactly the body
 * bytes mc_item_plan_chunk() names for that index (else E_LENGTH).
 */
int mc_item_encode_chunk(void *out, size_t out_size, size_t *out_len,
    const struct mc_item_id *id, const struct mc_item_plan *plan,
    const uint8_t nonce[MC_ITEM_NONCE_LEN], uint32_t index,
    const void *piece, size_t piece_len);

/*
 * Verifies item[0..len) against id and fills *v (pointers into item).
 * MC_ITEM_OK, or the first error found in this order: E_SHORT, E_MAGIC,
 * E_VERSION, E_KIND, E_LENGTH (total), E_HMAC, E_KEY, E_LENGTH (fields).
 * On error *v is zeroed.
 */
int mc_item_decode(struct mc_item_view *v, const struct mc_item_id *id,
    const void *item, size_t len);

/*
 * Writes the HMAC of an item encoded with id->unsealed (the costly part
 * of an encode, for another thread): item[0..len) as the encoder made
 * it.  MC_ITEM_OK, E_ARG or E_SHORT (not an item's length).
 */
int mc_item_seal(const void *secret, size_t secret_len, void *item,
    size_t len);

/*
 * The costly half of mc_item_decode, for another thread: the structure
 * and the HMAC under secret.  MC_ITEM_OK, or the first error decode
 * would return (E_SHORT, E_MAGIC, E_VERSION, E_KIND, E_LENGTH, E_HMAC).
 */
int mc_item_check_mac(const void *secret, size_t secret_len, const void *item,
    size_t len);

/*
 * mc_item_decode for bytes that mc_item_check_mac() passed under id's
 * secret, unchanged since: every check but the HMAC.  Never for bytes
 * that were not checked so.
 */
int mc_item_decode_checked(struct mc_item_view *v, const struct mc_item_id *id,
    const void *item, size_t len);

/*
 * Checks that chunks[0..n) (decoded views; kind MC_ITEM_NONE marks one
 * that memcached did not return) are exactly the chunks of manifest, in
 * order: same nonce (E_STALE), index i at position i (E_ORDER), n equals
 * the manifest's count and none absent (E_MISSING), same chunk size and
 * body length, and the pieces add up to the body (E_LENGTH).
 */
int mc_item_assemble_check(const struct mc_item_view *manifest,
    const struct mc_item_view *chunks, size_t n);

/* Checks as above, then points iov[0..n) at the pieces (iov_cap >= n). */
int mc_item_assemble_iov(const struct mc_item_view *manifest,
    const struct mc_item_view *chunks, size_t n, struct iovec *iov,
    size_t iov_cap);

/* Checks as above, then copies the body into out (out_size >= body_len). */
int mc_item_assemble_copy(const struct mc_item_view *manifest,
    const struct mc_item_view *chunks, size_t n, void *out, size_t out_size);

#endif /* SLUICE_MC_ITEM_H */
