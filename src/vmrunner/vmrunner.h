/*
 * vmrunner.h - the vmrunner's shared types: one struct vm per committed
 * snapshot, and the pure pieces (restart backoff, the UML command line,
 * status.json) that the supervisor in runner.c is built from.
 *
 * Data flow (docs/vmrunner.md): commit/<file> appears -> vm_check (signature,
 * payload, trusted and not revoked) -> kernel copied into the cache and
 * hashed, and probed once -> delta unpacked into STATE/vms/<id>/disk.cow
 * over bases/<sha> -> room in what the peer lends -> lease + host port
 * (netmap) -> jail uid, the VM's own network namespace with its tap ->
 * linux.uml in its jail (machine/jail.h) -> guest port accepts -> relay
 * mapping -> PUT /v1/commitments/<id> up.  A dead UML goes to backoff and
 * comes back; commit/<file> gone -> everything above undone in reverse.
 *
 * A running-state snapshot (machine "qemu") differs in two steps: the
 * resume check (QEMU version, machine type, memory, command line: qemu.h)
 * before anything else; disk.raw + state.bin unpacked instead of a COW,
 * and QEMU resumed from state.bin instead of linux.uml booted.
 */
#ifndef FED_VMRUNNER_H
#define FED_VMRUNNER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "common/crypto.h"
#include "common/err.h"
#include "common/manifest.h"
#include "machine/qemu.h"
#include "machine/cgroup.h"
#include "machine/machine.h"
#include "netmap/netmap.h"

#define VM_BACKOFF_FIRST	1	/* seconds before the first restart */
#define VM_BACKOFF_CAP		300	/* 5 min */
#define VM_BACKOFF_RESET	600	/* up this long: the next death is a first */
#define VM_BOOT_TIMEOUT		90	/* s from exec to the guest port accepting */
#define VM_RESUME_TIMEOUT	60	/* s for QEMU to load its memory state */
#define VM_DRAIN_S		10	/* s a superseded VM runs on for them */
#define VM_UID_MIN		2000000	/* the jails' uids and gids: */
#define VM_UID_COUNT		1000	/* 2000000-2000999 by default */
#define VM_MEM_OVERHEAD_MB	24	/* host memory of a VM beyond its mem= */
#define VM_PIDS_MAX		128	/* host processes of one VM (each guest
					   process is one: see docs/vmrunner.md) */
#define VM_UNPACKED		"unpacked"	/* QEMU: disk.raw + state.bin complete */

enum vm_state {
	VM_STARTING,		/* UML running, guest port not yet accepting */
	VM_UP,			/* serving through the host port */
	VM_BACKOFF,		/* dead, waiting to be restarted */
	VM_STOPPED,		/* superseded by a newer version, or shut down */
	VM_DRAINING,		/* superseded: finishing the connections it had */
};

/* The report a VM owes the authority, retried until taken.  A VM reported
 * up is reported up again at a third of the authority's peer ttl (its reply
 * says how long): a commitment not re-reported within it goes down by
 * itself, so a peer that vanishes leaves the lookups. */
struct vm_report {
	bool pending;
	bool up;
	bool refresh;		/* the pending report only repeats the last */
	double next_try;	/* monotonic */
	double taken_at;	/* the last one the authority took */
	int peer_ttl;		/* what it said with it; 0: never expires */
};

struct vm {
	char file[NAME_MAX + 1];	/* the entry in commit/ */
	char id[2 * SHA256_LEN + 1];	/* snapshot id */
	char service[MANIFEST_HOST_MAX + 8];	/* "host:port" */
	int64_t version;
	uint16_t guest_port;
	char kernel_path[PATH_MAX];	/* the executable copy in the cache */
	uint8_t kernel_sha[SHA256_LEN];	/* what it must hash to */
	char base_path[PATH_MAX];	/* MOUNTPOINT/bases/<sha> */
	char dir[PATH_MAX - 64];	/* STATE/vms/<id> */
	struct lease lease;
	bool leased;
	char tap[LEASE_IFNAME_MAX];	/* the lease's name; the namespace's
					   is netns (the tap inside: fedq0) */
	char netns[64];			/* its network namespace's name */
	uid_t uid;			/* its jail's uid and gid; 0: none yet */
	struct cgroup cg;		/* its limits */
	bool cg_made;
	uint16_t host_port;		/* 0 until mapped */
	bool mapped;			/* owns the relay mapping "service" */
	enum vm_state state;
	pid_t pid;			/* session leader of the UML, 0 if none */
	int con_fd;			/* console pipe, read end; -1 */
	int log_fd;			/* STATE/vms/<id>/console.log; -1 */
	off_t log_bytes;		/* its size */
	unsigned failures;		/* deaths since the last reset */
	unsigned restarts;		/* times restarted, for status */
	time_t started;			/* wall clock of the current boot */
	time_t up_since;		/* wall clock it became up, 0 if not up */
	double next_start;		/* monotonic: when to boot in backoff */
	double drain_until;		/* monotonic: when draining ends */
	double boot_deadline;		/* monotonic: give up on this boot */
	double boot_t0;			/* monotonic: this boot's exec */
	double prep_s;			/* check + unpack, seconds */
	double net_s;			/* tap or namespace, seconds */
	int probe_fd;			/* a connect to the guest port; -1 */
	double probe_t;			/* monotonic: that connect began */
	double next_probe;		/* monotonic: the next one, at most */
	bool seen;			/* still in commit/ at the last scan */
	struct vm_report report;	/* owed to the authority */
	enum machine_kind kind;
	/* MACHINE_QEMU only */
	json_t *qemu_args;		/* the recorded command line, owned */
	unsigned qemu_mem_mb;		/* its machine's memory */
	char initrd_path[PATH_MAX];	/* STATE/kernels/<sha>.initrd */
	char qobj_path[PATH_MAX];	/* the kernel object both come from */
	double resume_s;		/* exec to QMP cont, seconds */
	/* every machine: its network namespace */
	int netns_fd;			/* /run/netns/<netns>; -1 */
	struct egress egress;		/* granted: its manifest's and the peer's */
	bool netns_made;		/* namespace <netns> exists */
};

/* Seconds to wait before restart number `failures` (1, 2, 4 ... capped at
 * VM_BACKOFF_CAP); failures 0 is 0. */
unsigned vm_backoff_delay(unsigned failures);

/* The failure count after a VM that was up for up_seconds died: a VM up at
 * least VM_BACKOFF_RESET seconds starts again at 1, else failures + 1. */
unsigned vm_backoff_next(unsigned failures, double up_seconds);

/* "starting", "up", "backoff", "stopped" (static strings). */
const char *vm_state_name(enum vm_state s);

/* status.json's object for vms[0..n) at wall time now (new reference). */
json_t *vm_status_json(struct vm *const *vms, size_t n, time_t now);

struct runner_config {
	const char *fed;		/* the fedfs mount point */
	const char *state;		/* STATE dir */
	const char *authority;		/* URL */
	const char *key_path;		/* the peer's key file */
	const char *public_addr;	/* NULL: first non-loopback IPv4 */
	const char *lease_range;	/* NULL: netmap's default */
	uint16_t port_min, port_max;	/* 0, 0: netmap's default */
	unsigned mem_mb;		/* per VM */
	uid_t uid_min;			/* the jails' uids: uid_min .. */
	unsigned uid_count;		/* .. uid_min + uid_count - 1 */
	unsigned lend_mem_mb;		/* what VMs may take in all; 0: no bound */
	unsigned max_vms;		/* VMs at most; 0: RUNNER_MAX_VMS */
	unsigned cpu_weight;		/* each VM's, 1..10000 (100: a host
					   process's); 0: 100 */
	bool no_jail;			/* run machines unjailed (measuring) */
	bool no_follow;			/* do not follow new versions */
	int idle_timeout_s;		/* the relay's (netmap.h); 0: its
					   default, negative: never */
	const char *probe_kernel;	/* checked at start-up; NULL: fed's */
	struct egress egress_allow;	/* what guests may be granted (egress.h) */
};

/*
 * Run the vmrunner until SIGTERM or SIGINT: clean up what a previous run
 * left in STATE, then watch commit/ and supervise.  Returns 0 after a clean
 * shutdown (every VM stopped, every tap, port and lease released), -1 with
 * e set if it could not start.
 */
int runner_run(const struct runner_config *c, struct err *e);

#endif
