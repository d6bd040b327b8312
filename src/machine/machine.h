/*
 * machine.h - running a guest machine's kernel, the room shared by
 * `fed snapshot create` and the vmrunner:
 *
 *   uml_boot      boot a UML kernel to the end, its console captured and
 *                 bounded in time (the owner's import boot, the probe)
 *   last words    what a dead kernel's console says about why it died
 *   kernel probe  can this host run this kernel at all?  (A Debian UML
 *                 kernel dies at its first process on a CPU with AMX.)
 *   import disk   the ext2 image that carries an owner's files into the
 *                 import boot, with no hostfs (docs/base-image.md)
 *   network       a machine's own network namespace, one tap, no way out
 */
#ifndef FED_MACHINE_H
#define FED_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/types.h>

#include "common/egress.h"
#include "common/err.h"

#ifndef FED_LIBDIR
#define FED_LIBDIR "/usr/local/lib/fed"
#endif
/* fed's own UML kernel, as scripts/deps.sh installs it */
#define FED_UML_KERNEL		FED_LIBDIR "/linux.uml"
/* hostfs= a path that is not there: no host directory for the guest
 * (fed's kernel has no hostfs at all; a Debian one would) */
#define MACHINE_NOHOSTFS	"/nonexistent-fed-hostfs"
#define FED_BUSYBOX		"/bin/busybox"	/* busybox-static */

/* the uid and gid the owner's import boot runs as, when run by root: not
 * in the vmrunner's default range (2000000-2000999) */
#define FED_IMPORT_UID		2001000

#define UML_CONSOLE_MAX		(1u << 20)	/* console bytes kept */
#define LAST_WORDS_MAX		400	/* room for machine_last_words */

struct jail_plan;

/* What kind of machine a snapshot is (its manifest's "machine"): a UML
 * kernel booted over a disk, or a QEMU resumed from its running state. */
enum machine_kind { MACHINE_UML, MACHINE_QEMU };

/* "uml", "qemu" (static strings). */
const char *machine_kind_name(enum machine_kind k);

/* The kind a manifest's "machine" names.  Returns 0, or -1 for any other
 * word (not run here). */
int machine_kind_parse(const char *name, enum machine_kind *k);

struct uml_boot {
	char *const *argv;	/* argv[0]: the kernel, run as is */
	unsigned timeout_s;	/* killed after this */
	const struct jail_plan *jail;	/* NULL: run argv as we are; else
					   the plan's program, in its jail */
	/* results */
	char *console;		/* malloc'd, NUL-terminated, at most
				   UML_CONSOLE_MAX bytes; free it */
	size_t console_len;
	int status;		/* waitpid's */
	bool timed_out;
};

/*
 * Run b->argv in a session of its own, stdin /dev/null, stdout and stderr
 * on a pipe read into b->console, no other descriptor, until every writer
 * of the pipe is gone or b->timeout_s passed; then kill the whole process
 * group (UML's helpers too) whatever happened and reap it.  Returns 0 once
 * the kernel ran and ended (see b->status, b->timed_out), -1 with e set if
 * it could not be started.
 */
int uml_boot(struct uml_boot *b, struct err *e);

/*
 * Why a kernel died, from its console: the line that names the cause
 * (a failed host call such as "ptrace set fp regs failed, errno = 14", an
 * out-of-memory or a VFS error), then the "Kernel panic" line, joined by
 * " / "; else the last two non-empty lines.  Writes at most size bytes
 * (NUL included) of printable ASCII into out; "" for an empty console.
 */
void machine_last_words(const char *console, size_t len, char *out,
			size_t size);

/*
 * Boot kernel over a tiny root of its own (a static busybox /init that
 * says it runs and powers off, made in workdir) and check that it says so
 * within timeout_s.  Returns 0 if the host can run the kernel; -1 with e
 * saying why not, in one line with the kernel's last words.
 */
int machine_probe(const char *kernel, const char *workdir, unsigned mem_mb,
		  unsigned timeout_s, struct err *e);

/*
 * Make the ext2 image out holding the tree at root (owners, modes and
 * times kept), sized to fit it, nothing mounted (mke2fs -d).  The owner's
 * files go in root/files/: the base's /init, booted with
 * fed.import=/dev/ubdb, copies that directory over the guest's root
 * (docs/base-image.md).  Not thread-safe (nftw).  Returns 0/-1.
 */
int import_disk_make(const char *root, const char *out, struct err *e);

/*
 * A guest's way out, for a machine whose owner asked for egress
 * (common/egress.h) and whose peer granted some: a veth pair, host_if in
 * the caller's namespace holding host_addr/30 and MACHINE_UPLINK_IF in the
 * machine's holding ns_addr/30 and the default route.  The namespace's
 * rules then let the guest open new connections for the granted rules
 * only, to public IPv4 addresses only (never private, loopback,
 * link-local, shared, multicast or reserved ones), NATed out of the
 * uplink; the host's own table (machine_uplink_host_setup) keeps them off
 * the host itself and its networks.
 */
struct machine_uplink {
	struct egress grant;		/* what the guest may open; n > 0 */
	char host_if[16];		/* the host's end, e.g. "fx1a2b3c4d7" */
	struct in_addr host_addr;	/* .1 of the machine's /30 */
	struct in_addr ns_addr;		/* .2: the namespace's end */
};

#define MACHINE_UPLINK_IF	"up0"		/* its end in the namespace */
#define MACHINE_UPLINK_IF_ROOT	"fx"		/* every host end's name starts so */
#define MACHINE_UPLINK_POOL	"100.127.0.0"	/* the /30s of the uplinks: */
#define MACHINE_UPLINK_POOL_LEN	16		/* 100.127.0.0/16 */

/* The uplink of the machine in slot (0..16383) of the pool, its host end
 * named prefix + slot, granted grant.  Returns 0/-1. */
int machine_uplink_plan(const char *prefix, unsigned slot,
			const struct egress *grant, struct machine_uplink *up,
			struct err *e);

/*
 * The machine's network in namespace netns (NULL: the calling process's
 * own, as the owner's --running boot uses it): lo up, a tap QEMU_TAP owned
 * by owner:group with QEMU_TAP_MAC and QEMU_HOST_ADDR/30.  With a name, the
 * namespace is created first, pinned at /run/netns/NAME as `ip netns add`
 * does (one left by a crash is deleted first), and fenced: nftables drops
 * every connection the guest opens (netns.c), except what up grants
 * (NULL: nothing).  Returns 0/-1.
 */
int machine_net_setup(const char *netns, uid_t owner, gid_t group,
		      const struct machine_uplink *up, struct err *e);

/* The namespace's nftables rules for up (NULL: none) into out: pure, for
 * the tests.  Returns the length, or -1 if size is too small. */
int machine_net_rules(const struct machine_uplink *up, char *out,
		      size_t size);

/*
 * The host's side of the uplinks whose host ends are named ifprefix*: an
 * nftables table (ip) that drops what they send to the host itself, to
 * each other and to the host's own networks (hostnets: "A.B.C.D/N, ..."
 * or ""), and masquerades the rest out of the host's route; IPv4
 * forwarding turned on.  A table of that name left by a crash is
 * replaced.  Returns 0/-1.
 */
int machine_uplink_host_setup(const char *table, const char *ifprefix,
			      struct err *e);
/* Its rules into out (pure); returns the length or -1. */
int machine_uplink_host_rules(const char *table, const char *ifprefix,
			      const char *hostnets, char *out, size_t size);
/* Delete the table (quiet if there is none). */
void machine_uplink_host_delete(const char *table);

/* Run argv with input on its stdin, in the network namespace pinned at
 * nspath (NULL: this one), having turned IPv4 forwarding on there first if
 * forward; what it prints goes to our stderr.  Returns 0, or -1 with e
 * saying it could not do what ("nft could not load the egress rules"). */
int machine_run_input(const char *nspath, char *const argv[],
		      const char *input, bool forward, const char *what,
		      struct err *e);

/* Write text into the file at path, as into a sysctl (open, write,
 * close).  Returns 0/-1 (errno). */
int machine_write_file(const char *path, const char *text);

/* Delete the named namespace (and with it the tap and rules).  Quiet. */
void machine_net_delete(const char *netns);

/* A jailed machine's system-call filter, compiled (seccomp.c says what it
 * denies and why): load prog with prctl(PR_SET_SECCOMP) after
 * PR_SET_NO_NEW_PRIVS. */
struct machine_seccomp {
	struct sock_filter *filter;	/* malloc'd */
	struct sock_fprog prog;
};

int machine_seccomp_build(struct machine_seccomp *out, struct err *e);
void machine_seccomp_free(struct machine_seccomp *s);

/* ------------------------------------------- a UML machine's command line */

struct uml_params {
	const char *kernel, *cow, *base;
	unsigned mem_mb;
	const char *tap;		/* NULL: no network */
	const char *guest_addr;		/* "10.77.0.2" */
	unsigned prefix;		/* 30 */
	const char *gateway;		/* host end of the tap */
	const char *hostfs;		/* MACHINE_NOHOSTFS for untrusted guests */
	const char *uml_dir;		/* UML's own files (~/.uml); NULL: its
					   default */
};

/*
 * The argv of linux.uml for p: a NULL-terminated malloc'd array of malloc'd
 * strings (argv[0] is p->kernel); free with uml_argv_free.  Returns NULL
 * on a missing field or out of memory.
 */
char **uml_argv(const struct uml_params *p);
void uml_argv_free(char **argv);

#endif
