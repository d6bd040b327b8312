/*
 * create.h - what `fed snapshot create` (cmd_create.c) hands to its
 * running-state half (cmd_create_qemu.c) after the import boot.
 */
#ifndef FED_CLI_CREATE_H
#define FED_CLI_CREATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/crypto.h"
#include "common/manifest.h"

struct create_running {
	const char *kernel;	/* the QEMU kernel object (--kernel) */
	const char *base;	/* absolute path of the base image */
	const char *cow;	/* the import boot's COW file over base */
	const char *tmpdir;	/* ours, removed by the caller */
	const char *out;
	const uint8_t *seed;	/* the owner's key */
	unsigned mem_mb;
	unsigned timeout_s;	/* for the boot to serve the guest port */
	uint32_t chunk_size;
	bool json;
};

/*
 * Boot the imported machine under QEMU until its guest port accepts, save
 * its memory, pack disk + memory into a signed running-state snapshot at
 * a->out and print what was written.  m arrives filled as for a UML
 * snapshot (name, owner, version, service, base and kernel hashes); its
 * machine, format and qemu fields are set here.  *log gets QEMU's console
 * (malloc'd, may stay NULL).  Returns the exit status (0 or 1, one line on
 * stderr).
 */
int create_running(const struct create_running *a, struct manifest *m,
		   char **log);

#endif
