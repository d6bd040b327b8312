/*
 * seccomp.c - the system calls a jailed machine's own process may not make
 * (machine.h, machine_seccomp).
 *
 * A deny-list, not an allow-list: UML is a kernel, and the host calls it
 * makes (ptrace of its guest processes, mmap of its memory file, clone,
 * signals, timers, the tap) are many and change between versions, while
 * the calls that would let it out of its jail are few and known: loading
 * kernel code, mounting, changing namespaces or root, new device nodes,
 * rebooting or re-timing the host, raw I/O ports, BPF and perf, the
 * keyring, file handles that skip path checks.  UML's guest processes are
 * stopped by ptrace (PTRACE_SYSEMU) before the host's seccomp sees their
 * system calls, so the filter binds the kernel process and its helpers.
 * Each denied call fails with EPERM, so a curious kernel gets an error,
 * not a crash; a call from another architecture (i386 through int 0x80)
 * kills the process.  clone with a namespace flag is refused by its flags;
 * clone3, whose flags the filter cannot read, gets ENOSYS so that glibc
 * falls back to clone.
 *
 * The filter is compiled with libseccomp in the parent and handed to the
 * child as a BPF program, which the child loads with one prctl: the
 * vmrunner has threads, and a child between fork and exec may make system
 * calls only.
 */
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "machine/machine.h"

static const char *const denied[] = {
	"init_module", "finit_module", "delete_module", "kexec_load",
	"kexec_file_load", "mount", "umount2", "pivot_root", "chroot",
	"unshare", "setns", "fsopen", "fsconfig", "fsmount", "fspick",
	"move_mount", "open_tree", "mount_setattr", "bpf", "perf_event_open",
	"keyctl", "add_key", "request_key", "mknod", "mknodat", "reboot",
	"iopl", "ioperm", "swapon", "swapoff", "open_by_handle_at",
	"name_to_handle_at", "userfaultfd", "acct", "settimeofday",
	"clock_settime", "clock_adjtime", "adjtimex", "sethostname",
	"setdomainname", "quotactl", "syslog", "vhangup", "lookup_dcookie",
};

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
		  CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)

/* Add the rules to ctx.  Returns 0, or a negative errno of libseccomp's. */
static int
seccomp_rules(scmp_filter_ctx ctx)
{
	int rc;

	for (size_t i = 0; i < sizeof(denied) / sizeof(*denied); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr == __NR_SCMP_ERROR)
			continue;	/* not on this architecture */
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) < 0)
			return rc;
	}
	/* a clone with any one namespace flag */
	for (unsigned long f = 1; f != 0; f <<= 1)
		if ((f & NS_FLAGS) &&
		    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM),
					   SCMP_SYS(clone), 1,
					   SCMP_A0(SCMP_CMP_MASKED_EQ, f, f))) < 0)
			return rc;
	return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
}

/* The BPF program ctx compiles to, read back from a memory file. */
static int
seccomp_export(scmp_filter_ctx ctx, struct machine_seccomp *out, struct err *e)
{
	int fd = memfd_create("fed-seccomp", MFD_CLOEXEC), rc;
	off_t len;

	if (fd < 0)
		return err_sys(e, "seccomp: memfd");
	if ((rc = seccomp_export_bpf(ctx, fd)) < 0) {
		close(fd);
		return err_set(e, "seccomp: export: %s", strerror(-rc));
	}
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(struct sock_filter) != 0 ||
	    (out->filter = malloc((size_t)len)) == NULL ||
	    pread(fd, out->filter, (size_t)len, 0) != len) {
		close(fd);
		free(out->filter);
		out->filter = NULL;
		return err_set(e, "seccomp: cannot read the compiled filter");
	}
	close(fd);
	out->prog.len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
	out->prog.filter = out->filter;
	return 0;
}

int
machine_seccomp_build(struct machine_seccomp *out, struct err *e)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc;

	memset(out, 0, sizeof(*out));
	if (ctx == NULL)
		return err_set(e, "seccomp: cannot start a filter");
	if ((rc = seccomp_rules(ctx)) < 0) {
		seccomp_release(ctx);
		return err_set(e, "seccomp: a rule: %s", strerror(-rc));
	}
	rc = seccomp_export(ctx, out, e);
	seccomp_release(ctx);
	return rc;
}

void
machine_seccomp_free(struct machine_seccomp *s)
{
	free(s->filter);
	s->filter = NULL;
	s->prog.filter = NULL;
	s->prog.len = 0;
}
