/*
 * qemu.h - running-state machines under QEMU, the parts both the owner's
 * `fed snapshot create --running` and the peer's vmrunner need: the one-file
 * kernel object, the device-model command line recorded in the manifest,
 * the check that this peer can resume a snapshot, the machine's private
 * network, and a small QMP client (QEMU's JSON monitor).
 *
 * Every machine runs in a network namespace of its own, with a tap
 * QEMU_TAP holding QEMU_HOST_ADDR and the guest at QEMU_GUEST_ADDR: the
 * same addresses in every namespace, so a guest resumed from memory keeps
 * the address it had when it was saved (machine/netns.c,
 * docs/vmrunner.md).
 */
#ifndef FED_QEMU_H
#define FED_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "common/manifest.h"

#define QEMU_BINARY	"qemu-system-x86_64"
#define QEMU_GUEST_ADDR	"10.255.255.2"
#define QEMU_HOST_ADDR	"10.255.255.1"
#define QEMU_PREFIX	30
#define QEMU_TAP	"fedq0"
#define QEMU_TAP_MAC	"02:fe:d0:00:00:01"	/* the guest's ARP cache keeps it */
#define QEMU_GUEST_MAC	"52:54:00:fe:d0:02"
#define QEMU_MEM_DEFAULT 128			/* MB */
#define QEMU_VERSION_MAX 32

/* The kernel object: "FEDQKRN1", u64 kernel size, u64 initrd size
 * (big-endian), the kernel (bzImage), the initrd (docs/formats.md). */
#define QKERNEL_MAGIC	"FEDQKRN1"
#define QKERNEL_HDR	24
#define QKERNEL_PART_MAX (512ull << 20)

/*
 * Split the kernel object at path into kernel_out and initrd_out (each
 * written to a temporary name, then renamed).  Returns 0, or -1 with e
 * saying what is wrong with the object.
 */
int qkernel_split(const char *path, const char *kernel_out,
		  const char *initrd_out, struct err *e);

/* This machine's QEMU version, "7.2.22", from `qemu-system-x86_64
 * --version`.  Returns 0, or -1 (not installed, not understood). */
int qemu_local_version(char version[QEMU_VERSION_MAX], struct err *e);

/* The versioned machine type for a QEMU version: "pc-q35-7.2". */
void qemu_machine_for(const char *version, char machine[QEMU_VERSION_MAX]);

/*
 * The device-model command line this code runs a machine type with
 * mem_mb of memory (new reference; "@kernel", "@initrd" and "@disk" stand
 * for local paths).  It is what the manifest records, and what a peer
 * compares the recorded one with.
 */
json_t *qemu_args(const char *machine, unsigned mem_mb);

/*
 * Can this peer (QEMU local_version) resume a snapshot recorded as q?
 * Checks, in this order, the QEMU version, the machine type, the memory
 * size and the whole command line.  Returns 0, or -1 with e naming what
 * differs ("QEMU version differs: ...").
 */
int qemu_check(const struct manifest_qemu *q, const char *local_version,
	       struct err *e);

/*
 * What the placeholders of a recorded command line stand for on this
 * peer.  The guest's memory is the file ram: shared while the owner's
 * machine runs to be saved (the file is its memory, and the saved stream
 * leaves it out), private when a peer resumes (mapped copy-on-write: the
 * guest reads its pages from the page cache as it touches them, and the
 * file stays as it was for the next resume).
 */
struct qemu_paths {
	const char *kernel, *initrd, *disk, *ram;
	bool share;
};

/*
 * argv for QEMU: QEMU_BINARY, then args with the placeholders replaced,
 * then extra (NULL-terminated; may be NULL).  A NULL-terminated malloc'd
 * array of malloc'd strings; free with qemu_argv_free.  NULL if a path
 * holds a comma (QEMU's option syntax) or out of memory.
 */
char **qemu_argv(const json_t *args, const struct qemu_paths *p,
		 const char *const *extra);
void qemu_argv_free(char **argv);

/* ------------------------------------------------------------------ QMP */

struct qmp {
	int fd;
	char *buf;		/* bytes read, not yet a whole line */
	size_t len, cap;
};

/*
 * Classify one line QEMU sent: 0 a command's return (*ret set to a new
 * reference of its "return" member), 1 something to skip (the greeting or
 * an event), -1 an error reply or not QMP (e says which: "QMP error:
 * <class>: <desc>").
 */
int qmp_reply_parse(const char *line, size_t len, json_t **ret, struct err *e);

/* Start a session on fd (a connected stream socket; q owns it): read the
 * greeting, negotiate capabilities, both within timeout_s.  Returns 0/-1. */
int qmp_start(struct qmp *q, int fd, double timeout_s, struct err *e);

/*
 * Execute cmd with args (may be NULL; the reference is stolen), passing
 * pass_fd along with it (SCM_RIGHTS) if it is >= 0, and wait up to
 * timeout_s for its reply, skipping events.  *ret (may be NULL) gets the
 * return value.  Returns 0/-1.
 */
int qmp_call(struct qmp *q, const char *cmd, json_t *args, int pass_fd,
	     json_t **ret, double timeout_s, struct err *e);

void qmp_close(struct qmp *q);

#endif
