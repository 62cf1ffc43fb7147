/*
 * http_chunked.c - the chunked transfer-coding decoder (RFC 9112 7.1).
 *
 * Resumable, byte-at-a-time, no allocation: data spans are returned as
 * pointers into the caller's input (zero copy), so a proxy can re-frame
 * them without buffering.  Strict like the message parser: any byte
 * outside the grammar is an error, never guessed at (HOSTILE #10-#15).
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "worker/http_parse.h"
#include "lib/http_chars.h"

#define CHUNK_EXT_MAX	4096		/* extension bytes per size line */
#define TRAILER_MAX	(16 * 1024)	/* trailer section bytes */

/*
 * Chunked decoder.  Grammar (RFC 9112 7.1):
 *   chunk-size [ chunk-ext ] CRLF chunk-data CRLF ... "0" [ext] CRLF
 *   *( field-line CRLF ) CRLF
 *   chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / qstring ) ] )
 * Sizes are limited to 16 hex digits and 2^63-1 (no wrap-around, HOSTILE
 * #10); extensions and trailers are validated, counted and dropped.
 */
enum {
	C_SIZE_START = 0, C_SIZE, C_BWS_SEMI, C_EXT_PRE_NAME, C_EXT_NAME,
	C_EXT_POST_NAME, C_EXT_PRE_VAL, C_EXT_VAL, C_EXT_POST_VAL, C_EXT_QS,
	C_EXT_QS_ESC, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF,
	C_TR_START, C_TR_NAME, C_TR_VALUE, C_TR_LF, C_TR_END_LF, C_DONE,
};

void
http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

/* One byte of a size line after the digits; returns the next state or
 * -1 for a syntax error. */
static int
chunk_ext_byte(int st, unsigned char b)
{
	bool ws = is_ows(b), tok = is_tchar(b);

	switch (st) {
	case C_BWS_SEMI:	/* "5 " must go on with ';' */
		return ws ? st : b == ';' ? C_EXT_PRE_NAME : -1;
	case C_EXT_PRE_NAME:
		return ws ? st : tok ? C_EXT_NAME : -1;
	case C_EXT_NAME:
	case C_EXT_POST_NAME:
		if (tok && st == C_EXT_NAME)
			return st;
		return ws ? C_EXT_POST_NAME : b == '=' ? C_EXT_PRE_VAL :
		    b == ';' ? C_EXT_PRE_NAME : b == CR ? C_SIZE_LF : -1;
	case C_EXT_PRE_VAL:
		return ws ? st : b == '"' ? C_EXT_QS : tok ? C_EXT_VAL : -1;
	case C_EXT_VAL:
	case C_EXT_POST_VAL:
		if (tok && st == C_EXT_VAL)
			return st;
		return ws ? C_EXT_POST_VAL : b == ';' ? C_EXT_PRE_NAME :
		    b == CR ? C_SIZE_LF : -1;
	case C_EXT_QS:		/* qdtext: no CTL but HTAB, no bare CR/LF */
		if (b == '"')
			return C_EXT_POST_VAL;
		if (b == '\\')
			return C_EXT_QS_ESC;
		return (b == '\t' || b == ' ' || is_fvchar(b)) ? st : -1;
	case C_EXT_QS_ESC:
		return (b == '\t' || b == ' ' || is_fvchar(b)) ? C_EXT_QS : -1;
	default:
		return -1;
	}
}

int
http_chunked_parse(struct http_chunked *c, const char *in, size_t n,
    size_t *consumed, const char **data, size_t *data_len)
{
	size_t i = 0;
	int rc = HTTP_E_CHUNK;

	*consumed = 0;
	*data = NULL;
	*data_len = 0;
	if (c->state < 0)
		return c->state;
	if (c->state == C_DONE)
		return HTTP_DONE;

	while (i < n) {
		unsigned char b = (unsigned char)in[i];
		int v, next;

		switch (c->state) {
		case C_SIZE_START:
		case C_SIZE:
			if ((v = http_hexval(b)) >= 0) {
				/* 16 digits max, and the value must stay
				 * below 2^63 (no wrap to a small size) */
				if (++c->size_digits > 16 ||
				    c->remaining > ((uint64_t)INT64_MAX >> 4))
					goto fail;
				c->remaining = c->remaining << 4 |
				    (uint64_t)v;
				c->state = C_SIZE;
				break;
			}
			if (c->state == C_SIZE_START)
				goto fail;
			if (b == CR) {
				c->state = C_SIZE_LF;
				break;
			}
			c->state = C_BWS_SEMI;
			/* FALLTHROUGH: the byte starts the extensions */
			/* FALLTHROUGH */
		case C_BWS_SEMI: case C_EXT_PRE_NAME: case C_EXT_NAME:
		case C_EXT_POST_NAME: case C_EXT_PRE_VAL: case C_EXT_VAL:
		case C_EXT_POST_VAL: case C_EXT_QS: case C_EXT_QS_ESC:
			if ((next = chunk_ext_byte(c->state, b)) < 0)
				goto fail;
			if (next != C_SIZE_LF &&
			    ++c->ext_len > CHUNK_EXT_MAX) {
				rc = HTTP_E_CHUNK_EXT_TOO_LONG;
				goto fail;
			}
			c->state = next;
			break;
		case C_SIZE_LF:
			if (b != LF)
				goto fail;
			c->state = c->remaining ? C_DATA : C_TR_START;
			c->size_digits = 0;
			c->ext_len = 0;
			break;
		case C_DATA: {
			size_t take = n - i;

			if (take > c->remaining)
				take = (size_t)c->remaining;
			c->remaining -= take;
			if (c->remaining == 0)
				c->state = C_DATA_CR;
			*data = in + i;
			*data_len = take;
			*consumed = i + take;
			return HTTP_DATA;
		}
		case C_DATA_CR:
			if (b != CR)
				goto fail;
			c->state = C_DATA_LF;
			break;
		case C_DATA_LF:
			if (b != LF)
				goto fail;
			c->state = C_SIZE_START;
			break;

		case C_TR_START:
			/* trailers use the field-line rules; no obs-fold */
			if (b == CR)
				c->state = C_TR_END_LF;
			else if (is_tchar(b))
				c->state = C_TR_NAME;
			else
				goto fail;
			break;
		case C_TR_NAME:
			if (b == ':')
				c->state = C_TR_VALUE;
			else if (!is_tchar(b))
				goto fail;
			break;
		case C_TR_VALUE:
			if (b == CR)
				c->state = C_TR_LF;
			else if (!is_fvchar(b) && !is_ows(b))
				goto fail;
			break;
		case C_TR_LF:
			if (b != LF)
				goto fail;
			c->state = C_TR_START;
			break;
		case C_TR_END_LF:
			if (b != LF)
				goto fail;
			c->state = C_DONE;
			*consumed = i + 1;
			return HTTP_DONE;
		default:
			goto fail;
		}
		if (c->state >= C_TR_START && c->state <= C_TR_END_LF &&
		    ++c->trailer_len > TRAILER_MAX)
			goto fail;
		i++;
	}
	*consumed = n;
	return HTTP_MORE;
fail:
	*consumed = i;
	c->state = rc;
	return rc;
}
