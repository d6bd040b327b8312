/*
 * fuzz_fedsnap.c - libFuzzer target for the .fedsnap container.
 *
 * The input is a whole .fedsnap file, put in a memfd and opened with
 * fedsnap_fdopen() (header, manifest line, signature line, manifest parse,
 * Ed25519 verify).  When it opens, the payload is checked with
 * fedsnap_verify_payload() and unpacked with delta_unpack() over a 64 KiB
 * zero base into a scratch directory, which must afterwards hold the COW
 * file only if the unpack succeeded, and never a temporary file.
 *
 * Random bytes rarely carry a valid signature, so the custom mutator below
 * usually repairs what a mutation broke, with the published fuzz key
 * (fuzz_key.h; the seeds are signed with it): a quarter of the mutants are
 * left as they are (container parser, signature refusal), a quarter get
 * their manifest line re-signed as it is (mutated manifests reach
 * verify_payload and delta_unpack), and half get the manifest re-built
 * from the mutated payload -- owner set to the fuzz key, delta size and
 * chunk hashes recomputed with the manifest's chunk size -- and re-signed,
 * so mutated payloads pass verification and reach inflate and the record
 * parser through the container.  fuzz_delta fuzzes that parser directly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/delta.h"
#include "common/fedsnap.h"
#include "common/hex.h"
#include "fuzz_key.h"
#include "fuzz_util.h"

#define MAGIC_LEN (sizeof(FEDSNAP_MAGIC) - 1)
#define SIG_LINE_LEN (4 + 2 * ED25519_SIG_LEN + 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
			       unsigned int seed);

/* Give the manifest line of data a new index for payload (keeping its
 * chunk size) and the fuzz key as owner.  Returns the new line (malloc'd)
 * or NULL if the line does not parse as a manifest. */
static char *
fuzz_reindex(const uint8_t *line, size_t len, const uint8_t *payload,
	     size_t plen, size_t *out_len)
{
	struct manifest m;
	uint32_t cs;
	uint64_t n;
	char *out;

	if (manifest_parse((const char *)line, len, &m, NULL) < 0)
		return NULL;
	cs = m.delta.chunk_size;
	n = chunkidx_count(plen, cs);
	if (plen == 0 || n > CHUNKS_MAX) {
		manifest_free(&m);
		return NULL;
	}
	chunkidx_free(&m.delta);
	if ((m.delta.chunks = malloc((size_t)n * SHA256_LEN)) == NULL)
		fuzz_die("reindex");
	m.delta.size = plen;
	m.delta.nchunks = (uint32_t)n;
	for (uint32_t i = 0; i < n; i++)
		sha256(payload + (size_t)i * cs, chunkidx_chunk_len(&m.delta, i),
		       m.delta.chunks[i]);
	if (ed25519_public(fuzz_test_seed, m.owner, NULL) < 0)
		fuzz_die("fuzz key");
	out = manifest_serialize(&m, out_len, NULL);
	manifest_free(&m);
	return out;
}

size_t
LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
			unsigned int seed)
{
	const uint8_t *line, *nl, *payload;
	uint8_t sig[ED25519_SIG_LEN];
	char sighex[2 * ED25519_SIG_LEN + 1], *fixed = NULL;
	size_t len, plen, total, off;
	uint8_t *out;

	size = LLVMFuzzerMutate(data, size, max_size);
	if (seed % 4 == 0 || size < MAGIC_LEN ||
	    memcmp(data, FEDSNAP_MAGIC, MAGIC_LEN) != 0)
		return size;
	line = data + MAGIC_LEN;
	if ((nl = memchr(line, '\n', size - MAGIC_LEN)) == NULL)
		return size;
	len = (size_t)(nl - line);
	/* the payload: whatever follows the signature line (if any) */
	off = MAGIC_LEN + len + 1 + SIG_LINE_LEN;
	plen = off < size ? size - off : 0;
	payload = data + (off < size ? off : size);
	if (seed % 4 >= 2 &&
	    (fixed = fuzz_reindex(line, len, payload, plen, &len)) != NULL)
		line = (const uint8_t *)fixed;
	if (fedsnap_sign_manifest(fuzz_test_seed, (const char *)line, len, sig,
				  NULL) < 0)
		fuzz_die("sign");
	hex_encode(sig, ED25519_SIG_LEN, sighex);
	total = MAGIC_LEN + len + 1 + SIG_LINE_LEN + plen;
	if (total > max_size) {
		free(fixed);
		return size;
	}
	if ((out = malloc(total)) == NULL)
		fuzz_die("mutator");
	memcpy(out, FEDSNAP_MAGIC, MAGIC_LEN);
	memcpy(out + MAGIC_LEN, line, len);
	out[MAGIC_LEN + len] = '\n';
	memcpy(out + MAGIC_LEN + len + 1, FEDSNAP_SIG_PREFIX, 4);
	memcpy(out + MAGIC_LEN + len + 5, sighex, 2 * ED25519_SIG_LEN);
	out[MAGIC_LEN + len + SIG_LINE_LEN] = '\n';
	memcpy(out + MAGIC_LEN + len + 1 + SIG_LINE_LEN, payload, plen);
	memcpy(data, out, total);
	free(out);
	free(fixed);
	return total;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const made[] = { "out.cow", NULL };
	struct fedsnap s;
	struct delta_stats st;
	struct err e = { { 0 } };
	uint8_t id[SHA256_LEN];
	char cow[600];
	int fd, vrc, rc;

	fuzz_setup("fuzz_fedsnap");
	fd = fuzz_memfd("fuzz_fedsnap", data, size);
	if (fedsnap_fdopen(fd, &s, &e) < 0) {
		if (s.fd != -1 || s.manifest_bytes != NULL)
			fuzz_die("fedsnap_fdopen failed but left state behind");
		fuzz_check_msg("fedsnap_fdopen", e.msg);
		return 0;		/* fd closed by fedsnap_fdopen */
	}
	manifest_id(s.manifest_bytes, s.manifest_len, id);
	if (memcmp(id, s.id, SHA256_LEN) != 0 ||
	    s.payload_offset != sizeof(FEDSNAP_MAGIC) - 1 + s.manifest_len +
				1 + 4 + 2 * ED25519_SIG_LEN + 1)
		fuzz_die("fedsnap id or payload offset inconsistent");

	vrc = fedsnap_verify_payload(&s, &e);
	if (vrc < 0)
		fuzz_check_msg("fedsnap_verify_payload", e.msg);
	if (vrc == 0 && s.payload_offset + s.m.delta.size != size)
		fuzz_die("verified payload does not end the file");

	fuzz_path(cow, sizeof(cow), "out.cow");
	rc = delta_unpack(s.fd, s.payload_offset, &s.m.delta, fuzz_base, cow,
			  &st, &e);
#ifdef FUZZ_TRACE
	fprintf(stderr, "verify %d, unpack %d: %s\n", vrc, rc, e.msg);
#endif
	/* unpack checks every chunk of [payload_offset, +delta.size), so it
	 * cannot accept what verify refused -- except trailing bytes after
	 * that range, which verify rejects and unpack never reads.  (It may
	 * refuse a verified payload: that is the inflate and record layers.) */
	if (rc == 0 && vrc != 0 && s.payload_offset + s.m.delta.size >= size)
		fuzz_die("delta_unpack accepted a payload that failed verify");
	if (rc < 0)
		fuzz_check_msg("delta_unpack", e.msg);
	fuzz_check_dir(rc, made);
	fedsnap_close(&s);
	return 0;
}
