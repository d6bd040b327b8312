/*
 * manifest.h - what an owner signs: the description of a delta snapshot.
 *
 * The manifest is one line of canonical JSON (keys sorted, no spaces, ASCII
 * only, integers only), so the same manifest always has the same bytes and
 * the snapshot id, SHA-256 of those bytes, is stable.  A parsed manifest is
 * accepted only if it is already in canonical form: there is exactly one
 * byte string per manifest, so nobody can make a second id for the same
 * content.  Members this version does not know are kept (as JSON) and
 * re-emitted, so newer writers can add fields.
 *
 *   {"base":"<sha256>","created":"2026-11-25T23:52:53Z",
 *    "delta":{"chunk_size":1048576,"chunks":["<sha256>",..],
 *             "format":"fedcow1+zlib","size":N},
 *    "kernel":"<sha256>","machine":"uml","name":"web",
 *    "owner":"<hex key>","service":{"guest_port":80,"host":"www.example.org","port":80},
 *    "version":1}
 *
 * An owner whose guest must open connections lists what it asks for
 * (common/egress.h; the peer decides what it grants), signed like the rest:
 *
 *   "egress":["tcp/443","udp/53"]
 *
 * A running-state snapshot (machine "qemu", delta format "fedqemu2+zlib")
 * adds what its resume depends on:
 *
 *   "qemu":{"args":["-M","pc-q35-7.2",..],"machine":"pc-q35-7.2",
 *           "mem_mb":128,"state_size":N,"version":"7.2.22"}
 *
 * args is QEMU's device-model command line with @kernel, @initrd, @disk and
 * @ram where local paths go (and @share, on when saving, off when
 * resuming); state_size the uncompressed bytes of the device state that
 * follows the disk delta in the payload, before mem_mb MiB of memory
 * (docs/formats.md).
 */
#ifndef FED_MANIFEST_H
#define FED_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "common/chunkidx.h"
#include "common/crypto.h"
#include "common/egress.h"
#include "common/err.h"
#include "common/timefmt.h"

#define MANIFEST_MAX_BYTES   (8u << 20)	/* the whole line */
#define MANIFEST_NAME_MAX    64
#define MANIFEST_HOST_MAX    253
#define MANIFEST_VERSION_MAX 9007199254740991LL	/* 2^53-1: exact in JSON */

#define DELTA_FORMAT_FEDCOW1 "fedcow1+zlib"
#define DELTA_FORMAT_FEDQEMU2 "fedqemu2+zlib"	/* disk delta + device state + memory */

#define MANIFEST_QEMU_VERSION_MAX 31	/* "7.2.22" */
#define MANIFEST_QEMU_MACHINE_MAX 31	/* "pc-q35-7.2" */
#define MANIFEST_QEMU_MEM_MIN     16	/* MB */
#define MANIFEST_QEMU_MEM_MAX     65536
#define MANIFEST_QEMU_ARGS_MAX    128	/* arguments */
#define MANIFEST_QEMU_ARG_MAX     1024	/* bytes per argument */
#define MANIFEST_QEMU_STATE_MAX   (1ull << 40)	/* 1 TiB */

/* What a QEMU running-state snapshot's resume depends on. */
struct manifest_qemu {
	char version[MANIFEST_QEMU_VERSION_MAX + 1];	/* major.minor.micro */
	char machine[MANIFEST_QEMU_MACHINE_MAX + 1];	/* versioned type */
	uint32_t mem_mb;
	json_t *args;			/* array of strings, owned */
	uint64_t state_size;		/* memory state, uncompressed bytes */
};

struct manifest {
	char name[MANIFEST_NAME_MAX + 1];
	uint8_t owner[ED25519_PUB_LEN];
	char created[RFC3339_LEN + 1];
	int64_t version;
	char host[MANIFEST_HOST_MAX + 1];
	uint16_t port;
	uint16_t guest_port;
	uint8_t base[SHA256_LEN];
	uint8_t kernel[SHA256_LEN];
	char machine[16];		/* "uml" or "qemu" */
	char format[32];		/* delta payload format */
	struct chunk_index delta;	/* payload index, no file hash */
	struct manifest_qemu qemu;	/* machine "qemu" only (args != NULL) */
	struct egress egress;		/* outbound access asked for (egress.h) */
	json_t *extra;			/* members not listed above; may be NULL */
};

/* Parse and validate one manifest line (no trailing newline).  On success m
 * owns memory: release with manifest_free(). */
int manifest_parse(const char *buf, size_t len, struct manifest *m,
		   struct err *e);

/* Check every field's bounds and format (used by parse and before writing). */
int manifest_validate(const struct manifest *m, struct err *e);

/* Canonical bytes of m (malloc'd, NUL-terminated, no newline); *len set.
 * Returns NULL with e set if m is invalid. */
char *manifest_serialize(const struct manifest *m, size_t *len,
			 struct err *e);

/* JSON object for m (new reference), as serialised. */
json_t *manifest_to_json(const struct manifest *m);

/* The snapshot id: SHA-256 of the canonical bytes. */
void manifest_id(const char *bytes, size_t len, uint8_t id[SHA256_LEN]);

/*
 * Rollback check: refuse a manifest whose version is lower than one already
 * seen for the same service.  newest_seen < 0 means none seen.  Returns 0
 * if m->version >= newest_seen.
 */
int manifest_check_version(const struct manifest *m, int64_t newest_seen,
			   struct err *e);

/* Parse "host:port" (port 1..65535, host a DNS name or IPv4). */
int service_parse(const char *s, char host[MANIFEST_HOST_MAX + 1],
		  uint16_t *port, struct err *e);

void manifest_free(struct manifest *m);

#endif
