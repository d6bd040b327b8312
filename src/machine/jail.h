/*
 * jail.h - a stranger's machine, contained: the jail every VM process (UML
 * or QEMU) and the owner's import boot run in, in the class of
 * Firecracker's jailer (docs/vmrunner.md, "The jail").
 *
 *   ids         a uid and gid of its own (never 0), no supplementary group,
 *               no capability, NO_NEW_PRIVS
 *   root        its own mount namespace, pivot_root'ed into a tmpfs holding
 *               /vm (its kernel and disk files, bind-mounted one by one),
 *               /dev (null, zero, random, urandom, and net/tun if it has a
 *               tap), /tmp, and /usr read-only for shared libraries and
 *               QEMU's firmware; nothing else of the host
 *   namespaces  new pid, ipc and uts ones; the network namespace it is
 *               given (machine_net_setup), or a new empty one
 *   limits      its cgroup (cgroup.h); rlimits nofile, fsize, core 0
 *   the rest    the seccomp filter (machine_seccomp), a clean environment,
 *               only the descriptors it is handed
 *
 * jail_plan() is pure: it turns the parameters into a plan (every mount,
 * node, id, limit, the argv and envp) in memory the caller owns, so it can
 * be unit-tested and read.  jail_spawn() clones the child into its new
 * namespaces and carries the plan out with system calls alone: the
 * vmrunner has threads, and between clone and exec nothing else is safe.
 */
#ifndef FED_JAIL_H
#define FED_JAIL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "machine/cgroup.h"
#include "machine/machine.h"

#define JAIL_BINDS_MAX	12
#define JAIL_OPS_MAX	40
#define JAIL_ARGS_MAX	64
#define JAIL_FDS_MAX	8
#define JAIL_VM_DIR	"/vm"		/* where the bound files are */

struct jail_bind {
	const char *host;	/* a regular file on the host */
	const char *name;	/* its name in /vm: [A-Za-z0-9._-], no ".." */
	bool writable;
};

struct jail_params {
	const char *root;		/* an empty host directory: the jail's
					   mount point (absolute) */
	uid_t uid;
	gid_t gid;
	const struct jail_bind *binds;
	size_t nbinds;
	bool usr;			/* /usr read-only (and /lib, /lib64, /bin
					   as links into it, merged-/usr) */
	bool tun;			/* /dev/net/tun, for the machine's tap */
	unsigned tmp_mb;		/* the root tmpfs's size: UML keeps its
					   memory file in /tmp */
	uint64_t fsize;			/* RLIMIT_FSIZE, bytes; 0: none */
	unsigned nofile;		/* RLIMIT_NOFILE */
	char *const *argv;		/* argv[0] absolute, in the jail */
	const char *hostname;		/* NULL: "fed-vm" */
	bool thp_off;			/* no transparent huge pages (QEMU's
					   resume stalled on compaction) */
	bool fixed_brk;			/* no address randomisation: UML adds
					   the random gap between its image and
					   its heap (up to ~1 GB) to its memory
					   file, which fsize would then cut */
};

enum jail_op_kind {
	JOP_MOUNT_TMPFS,	/* path, data = src */
	JOP_MKDIR,		/* path, mode */
	JOP_MKNOD,		/* path, mode (with S_IFCHR), dev */
	JOP_TOUCH,		/* path: an empty file to bind onto */
	JOP_BIND,		/* src onto path, read-write */
	JOP_BIND_RO,		/* src onto path, read-only, nosuid, nodev */
	JOP_SYMLINK,		/* path -> src */
};

struct jail_op {
	enum jail_op_kind kind;
	char path[PATH_MAX];	/* on the host, under the root */
	char src[PATH_MAX];
	mode_t mode;
	dev_t dev;
};

struct jail_plan {
	char root[PATH_MAX];
	struct jail_op ops[JAIL_OPS_MAX];
	size_t nops;
	uid_t uid;
	gid_t gid;
	uint64_t fsize;
	unsigned nofile;
	bool thp_off;
	bool fixed_brk;
	char hostname[64];
	char args[JAIL_ARGS_MAX][PATH_MAX + 64];
	char *argv[JAIL_ARGS_MAX + 1];
	char *envp[4];
	/* set by the caller after jail_plan, read by the child */
	int netns_fd;			/* -1: a new, empty network namespace */
	const struct cgroup *cg;	/* NULL: none */
	const struct sock_fprog *seccomp;	/* NULL: none */
};

/*
 * Fill pl from p, checking it: uid and gid not 0, the root absolute, every
 * bind a simple name, argv[0] absolute.  No system call.  Returns 0, or -1
 * with e saying what is wrong.
 */
int jail_plan(const struct jail_params *p, struct jail_plan *pl,
	      struct err *e);

/*
 * Start pl's program in its jail: the child gets fds[0..nfds) as its
 * descriptors 0..nfds-1 (nothing else), its own session and process group,
 * and no blocked signal.  Returns the child's pid once it has executed the
 * program, or -1 with e saying which step of the jail failed and why (the
 * child is reaped then).
 */
pid_t jail_spawn(const struct jail_plan *pl, const int *fds, unsigned nfds,
		 struct err *e);

#endif
