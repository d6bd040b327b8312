/*
 * fedsnap_resign.c - test tool: re-sign a .fedsnap with an edited manifest.
 *
 *   fedsnap_resign IN OUT KEYFILE < MANIFEST.json
 *
 * Reads a manifest as JSON on stdin (any layout: it is made canonical),
 * signs it with KEYFILE (which must be the manifest's owner) and writes
 * OUT: the new manifest and signature over IN's payload, unchanged.  The
 * end-to-end tests use it to make snapshots an honest owner could have
 * signed but a peer must refuse (another QEMU command line, an untrusted
 * kernel) and to give the same saved machine a second service name.
 * Not installed; built by `make check` into build/tests/tools/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fedsnap.h"
#include "common/keyfile.h"

int
main(int argc, char **argv)
{
	uint8_t seed[ED25519_SEED_LEN], owner[ED25519_PUB_LEN];
	json_error_t jerr;
	struct fedsnap in;
	struct manifest m;
	struct err e;
	json_t *j;
	char *text;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: fedsnap_resign IN OUT KEYFILE < "
			"MANIFEST.json\n");
		return 2;
	}
	if (fedsnap_open(argv[1], &in, &e) < 0 ||
	    keyfile_load(argv[3], seed, owner, &e) < 0) {
		fprintf(stderr, "fedsnap_resign: %s\n", e.msg);
		return 1;
	}
	if ((j = json_loadf(stdin, 0, &jerr)) == NULL) {
		fprintf(stderr, "fedsnap_resign: stdin: %s\n", jerr.text);
		return 1;
	}
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(j);
	if (text == NULL || manifest_parse(text, strlen(text), &m, &e) < 0) {
		fprintf(stderr, "fedsnap_resign: %s\n", text ? e.msg : "json");
		return 1;
	}
	if ((fd = dup(in.fd)) < 0 ||
	    lseek(fd, (off_t)in.payload_offset, SEEK_SET) < 0) {
		perror("fedsnap_resign");
		return 1;
	}
	/* fedsnap_write copies from offset 0 of the fd: give it a view */
	{
		char tmpl[] = "/tmp/fedsnap_resign.XXXXXX";
		int tfd = mkstemp(tmpl);
		char buf[65536];
		ssize_t n;

		unlink(tmpl);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(tfd, buf, (size_t)n) != n)
				return 1;
		if (fedsnap_write(argv[2], &m, seed, tfd, NULL, &e) < 0) {
			fprintf(stderr, "fedsnap_resign: %s\n", e.msg);
			return 1;
		}
		close(tfd);
	}
	close(fd);
	manifest_free(&m);
	fedsnap_close(&in);
	free(text);
	return 0;
}
