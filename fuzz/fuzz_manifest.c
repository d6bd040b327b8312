/*
 * fuzz_manifest.c - libFuzzer target for manifest_parse().
 *
 * The input is one candidate manifest line.  A manifest that parses must
 * be canonical: serialising it again gives back exactly the input bytes,
 * validates, and its id (SHA-256 of the bytes) is the same either way.
 * A refusal carries one line of printable ASCII.  Everything is freed, so
 * ASan's leak check covers the error paths.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/manifest.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest m;
	struct err e = { { 0 } };
	uint8_t id1[SHA256_LEN], id2[SHA256_LEN];
	char *again;
	size_t len = 0;
	json_t *j;

	if (manifest_parse((const char *)data, size, &m, &e) < 0) {
		fuzz_check_msg("manifest_parse", e.msg);
		return 0;
	}
	if (manifest_validate(&m, &e) < 0) {
		fprintf(stderr, "parsed manifest does not validate: %s\n", e.msg);
		abort();
	}
	if ((again = manifest_serialize(&m, &len, &e)) == NULL) {
		fprintf(stderr, "parsed manifest does not serialise: %s\n",
			e.msg);
		abort();
	}
	if (len != size || memcmp(again, data, size) != 0) {
		fprintf(stderr, "round trip changed the bytes:\n in:  %.*s\n "
			"out: %s\n", (int)size, (const char *)data, again);
		abort();
	}
	manifest_id((const char *)data, size, id1);
	manifest_id(again, len, id2);
	if (memcmp(id1, id2, SHA256_LEN) != 0)
		abort();
	if ((j = manifest_to_json(&m)) == NULL)
		abort();
	json_decref(j);
	if (manifest_check_version(&m, m.version, &e) < 0 ||
	    manifest_check_version(&m, -1, &e) < 0)
		abort();
	free(again);
	manifest_free(&m);
	return 0;
}
