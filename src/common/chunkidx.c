/*
 * chunkidx.c - chunk indexes: building one from a file, JSON in and out,
 * checking a chunk against it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/chunkidx.h"
#include "common/hex.h"
#include "common/io.h"

uint64_t
chunkidx_count(uint64_t size, uint32_t chunk_size)
{
	return (size + chunk_size - 1) / chunk_size;
}

uint32_t
chunkidx_chunk_len(const struct chunk_index *ix, uint32_t i)
{
	uint64_t start = (uint64_t)i * ix->chunk_size;
	uint64_t left = ix->size - start;

	return left < ix->chunk_size ? (uint32_t)left : ix->chunk_size;
}

bool
chunkidx_valid_chunk_size(uint64_t chunk_size)
{
	return chunk_size >= CHUNK_SIZE_MIN && chunk_size <= CHUNK_SIZE_MAX &&
	       (chunk_size & (chunk_size - 1)) == 0;
}

int
chunkidx_build_fd(int fd, uint32_t chunk_size, struct chunk_index *ix,
		  struct err *e)
{
	struct sha256_ctx whole;
	uint8_t *buf = NULL;
	size_t cap = 0;
	ssize_t n;

	memset(ix, 0, sizeof(*ix));
	if (!chunkidx_valid_chunk_size(chunk_size))
		return err_set(e, "chunk size %u is not a power of two in "
			       "[%u, %u]", chunk_size, CHUNK_SIZE_MIN,
			       CHUNK_SIZE_MAX);
	if ((buf = malloc(chunk_size)) == NULL)
		return err_sys(e, "index");
	ix->chunk_size = chunk_size;
	ix->has_file_hash = true;
	sha256_init(&whole);
	for (;;) {
		n = pread_full(fd, buf, chunk_size, ix->size);
		if (n < 0) {
			err_sys(e, "read at byte %llu",
				(unsigned long long)ix->size);
			goto bad;
		}
		if (n == 0)
			break;
		if (ix->nchunks == CHUNKS_MAX) {
			err_set(e, "file has more than %u chunks of %u bytes",
				CHUNKS_MAX, chunk_size);
			goto bad;
		}
		if (ix->nchunks == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			void *p = realloc(ix->chunks, ncap * SHA256_LEN);

			if (p == NULL) {
				err_sys(e, "index");
				goto bad;
			}
			ix->chunks = p;
			cap = ncap;
		}
		sha256(buf, (size_t)n, ix->chunks[ix->nchunks]);
		sha256_update(&whole, buf, (size_t)n);
		ix->nchunks++;
		ix->size += (uint64_t)n;
		if ((size_t)n < chunk_size)
			break;
	}
	sha256_final(&whole, ix->file_hash);
	free(buf);
	return 0;
bad:
	sha256_abort(&whole);
	free(buf);
	chunkidx_free(ix);
	return -1;
}

json_t *
chunkidx_to_json(const struct chunk_index *ix)
{
	char hex[2 * SHA256_LEN + 1];
	json_t *j, *chunks;
	uint32_t i;

	if ((j = json_object()) == NULL || (chunks = json_array()) == NULL) {
		json_decref(j);
		return NULL;
	}
	for (i = 0; i < ix->nchunks; i++) {
		hex_encode(ix->chunks[i], SHA256_LEN, hex);
		if (json_array_append_new(chunks, json_string(hex)) < 0)
			goto bad;
	}
	if (json_object_set_new(j, "chunks", chunks) < 0) {
		chunks = NULL;
		goto bad;
	}
	chunks = NULL;
	if (ix->has_file_hash) {
		hex_encode(ix->file_hash, SHA256_LEN, hex);
		if (json_object_set_new(j, "sha256", json_string(hex)) < 0)
			goto bad;
	}
	if (json_object_set_new(j, "size", json_integer((json_int_t)ix->size)) < 0 ||
	    json_object_set_new(j, "chunk_size",
				json_integer(ix->chunk_size)) < 0)
		goto bad;
	return j;
bad:
	json_decref(chunks);
	json_decref(j);
	return NULL;
}

int
chunkidx_from_json(const json_t *j, bool want_file_hash,
		   struct chunk_index *ix, struct err *e)
{
	const json_t *v, *chunks;
	const char *key;
	json_int_t size, chunk_size;
	uint64_t want;
	size_t i;

	memset(ix, 0, sizeof(*ix));
	if (!json_is_object(j))
		return err_set(e, "must be an object");
	json_object_foreach((json_t *)j, key, v) {
		if (strcmp(key, "size") && strcmp(key, "chunk_size") &&
		    strcmp(key, "chunks") && strcmp(key, "sha256") &&
		    strcmp(key, "format"))
			return err_set(e, "unknown field '%.64s'", key);
	}
	v = json_object_get(j, "sha256");
	if (want_file_hash) {
		if (v == NULL)
			return err_set(e, "field 'sha256' is missing");
		if (!json_is_string(v) || !hex_is_sha256(json_string_value(v)))
			return err_set(e, "'sha256' must be 64 lower-case hex "
				       "digits");
		hex_decode(json_string_value(v), ix->file_hash, SHA256_LEN);
		ix->has_file_hash = true;
	} else if (v != NULL) {
		return err_set(e, "unexpected field 'sha256'");
	}
	if ((v = json_object_get(j, "size")) == NULL)
		return err_set(e, "field 'size' is missing");
	if (!json_is_integer(v))
		return err_set(e, "'size' must be an integer");
	size = json_integer_value(v);
	if ((v = json_object_get(j, "chunk_size")) == NULL)
		return err_set(e, "field 'chunk_size' is missing");
	if (!json_is_integer(v))
		return err_set(e, "'chunk_size' must be an integer");
	chunk_size = json_integer_value(v);
	if (!chunkidx_valid_chunk_size((uint64_t)chunk_size) || chunk_size < 0)
		return err_set(e, "'chunk_size' %lld is not a power of two in "
			       "[%u, %u]", (long long)chunk_size,
			       CHUNK_SIZE_MIN, CHUNK_SIZE_MAX);
	if (size < 0 || (uint64_t)size > (uint64_t)chunk_size * CHUNKS_MAX)
		return err_set(e, "'size' %lld is out of range (at most %u "
			       "chunks)", (long long)size, CHUNKS_MAX);
	if ((chunks = json_object_get(j, "chunks")) == NULL)
		return err_set(e, "field 'chunks' is missing");
	if (!json_is_array(chunks))
		return err_set(e, "'chunks' must be an array");
	want = chunkidx_count((uint64_t)size, (uint32_t)chunk_size);
	if (json_array_size(chunks) != want)
		return err_set(e, "'chunks' has %zu hashes but size %lld needs "
			       "%llu", json_array_size(chunks), (long long)size,
			       (unsigned long long)want);
	ix->size = (uint64_t)size;
	ix->chunk_size = (uint32_t)chunk_size;
	ix->nchunks = (uint32_t)want;
	if (want > 0 && (ix->chunks = malloc(want * SHA256_LEN)) == NULL)
		return err_sys(e, "index");
	json_array_foreach(chunks, i, v) {
		if (!json_is_string(v) || !hex_is_sha256(json_string_value(v))) {
			chunkidx_free(ix);
			return err_set(e, "chunk %zu is not 64 lower-case hex "
				       "digits", i);
		}
		hex_decode(json_string_value(v), ix->chunks[i], SHA256_LEN);
	}
	return 0;
}

int
chunkidx_verify_chunk(const struct chunk_index *ix, uint32_t i,
		      const void *buf, size_t len, struct err *e)
{
	uint8_t got[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];

	if (i >= ix->nchunks)
		return err_set(e, "chunk %u: index has only %u chunks", i,
			       ix->nchunks);
	if (len != chunkidx_chunk_len(ix, i))
		return err_set(e, "chunk %u: %zu bytes, expected %u", i, len,
			       chunkidx_chunk_len(ix, i));
	sha256(buf, len, got);
	if (memcmp(got, ix->chunks[i], SHA256_LEN) != 0) {
		hex_encode(ix->chunks[i], SHA256_LEN, hex);
		return err_set(e, "chunk %u (%.16s..): hash mismatch", i, hex);
	}
	return 0;
}

void
chunkidx_free(struct chunk_index *ix)
{
	free(ix->chunks);
	ix->chunks = NULL;
	ix->nchunks = 0;
}
