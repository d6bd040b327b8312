/*
 * vm.c - one machine of the vmrunner: its jail (uid, cgroup, the files it
 * may open, machine/jail.h), its command line (UML or QEMU), starting it,
 * its console (copied into console.log, rotated), the probe of its guest
 * port, and killing and releasing everything it holds.
 *
 * A VM is a process started in its own session, so it and every helper it
 * forks share one process group: stopping a VM is kill(-pid, SIGKILL), and
 * a jailed VM is also every process of its cgroup.  A QEMU VM starts paused
 * with its memory state as incoming migration and is driven over QMP (a
 * socketpair) until it runs (vm_resume, blocking, about a second).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/proc.h"
#include "machine/jail.h"

#include "vmrunner/runner.h"

/* --no-jail: argv as root in v's network namespace, fds as 0.., nothing
 * else, TMPDIR and HOME the VM's directory (UML panics without a HOME);
 * for measuring what the jail costs. */
static pid_t
vm_spawn_unjailed(struct vm *v, char *const *argv, const int *fds,
		  unsigned nfds, bool thp_off, struct err *e)
{
	char tmpdir[PATH_MAX + 8], home[PATH_MAX + 8];
	char *envp[] = { "PATH=/usr/bin:/bin", tmpdir, home, NULL };
	int high[JAIL_FDS_MAX];
	pid_t pid;

	if (nfds > JAIL_FDS_MAX)
		return err_set(e, "at most %d descriptors", JAIL_FDS_MAX);
	snprintf(tmpdir, sizeof(tmpdir), "TMPDIR=%s", v->dir);
	snprintf(home, sizeof(home), "HOME=%s", v->dir);
	if ((pid = fork()) < 0)
		return err_sys(e, "fork");
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		if (setns(v->netns_fd, CLONE_NEWNET) < 0)
			_exit(126);
		if (thp_off)
			prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
		for (unsigned i = 0; i < nfds; i++)
			high[i] = fcntl(fds[i], F_DUPFD, 64);
		for (unsigned i = 0; i < nfds; i++)
			dup2(high[i], (int)i);
		proc_close_from(nfds);
		execvpe(argv[0], argv, envp);
		_exit(127);
	}
	return pid;
}

/* Name this runner's cgroups and namespaces after its STATE directory,
 * and compile the machines' system-call filter.  Returns 0/-1. */
/* The host's side of the uplinks, if this peer lends any egress (one left
 * by a crash is replaced, or deleted if it lends none now). */
static int
runner_uplinks_init(struct runner *r, struct err *e)
{
	char lent[EGRESS_LIST_MAX + 1];

	if (r->cfg->egress_allow.n == 0) {
		machine_uplink_host_delete(r->uplink_table);
		return 0;
	}
	if (machine_uplink_host_setup(r->uplink_table, r->uplink_prefix, e) < 0)
		return -1;
	egress_format(&r->cfg->egress_allow, lent, sizeof(lent));
	log_info("egress: guests whose owners ask may open %s to public IPv4 "
		 "addresses (nft table ip %s; IPv4 forwarding on)", lent,
		 r->uplink_table);
	return 0;
}

int
runner_jail_init(struct runner *r, struct err *e)
{
	char real[PATH_MAX], hex[2 * SHA256_LEN + 1];
	uint8_t sha[SHA256_LEN];

	if (realpath(r->cfg->state, real) == NULL)
		return err_sys(e, "%s", r->cfg->state);
	sha256(real, strlen(real), sha);
	hex_encode(sha, SHA256_LEN, hex);
	snprintf(r->cg_root, sizeof(r->cg_root), "fed/%.8s", hex);
	snprintf(r->netns_prefix, sizeof(r->netns_prefix), "fed%.8s-", hex);
	snprintf(r->uplink_prefix, sizeof(r->uplink_prefix), "%s%.8s",
		 MACHINE_UPLINK_IF_ROOT, hex);
	snprintf(r->uplink_table, sizeof(r->uplink_table), "fed_%.8s", hex);
	if (runner_uplinks_init(r, e) < 0)
		return -1;
	if (r->cfg->no_jail) {
		log_warn("--no-jail: machines run as root, unconfined; only "
			 "for measuring what the jail costs");
		return 0;
	}
	return machine_seccomp_build(&r->seccomp, e);
}

/* v's uid (and gid): the lowest free slot.  Returns 0/-1. */
static int
vm_uid_take(struct runner *r, struct vm *v, struct err *e)
{
	unsigned n = r->cfg->uid_count < RUNNER_MAX_VMS ? r->cfg->uid_count :
		     RUNNER_MAX_VMS;

	if (v->uid != 0)
		return 0;
	for (unsigned i = 0; i < n; i++)
		if (!r->uid_taken[i]) {
			r->uid_taken[i] = true;
			v->uid = r->cfg->uid_min + i;
			return 0;
		}
	return err_set(e, "no free uid for a jail (%u in use)", n);
}

static void
vm_uid_give(struct runner *r, struct vm *v)
{
	if (v->uid != 0 && v->uid >= r->cfg->uid_min &&
	    v->uid - r->cfg->uid_min < RUNNER_MAX_VMS)
		r->uid_taken[v->uid - r->cfg->uid_min] = false;
	v->uid = 0;
}

/* The host memory a VM may take: its machine's memory and the jail's
 * measured overhead (docs/vmrunner.md). */
unsigned
vm_mem_limit_mb(const struct runner *r, const struct vm *v)
{
	return (v->kind == MACHINE_QEMU ? v->qemu_mem_mb : r->cfg->mem_mb) +
	       VM_MEM_OVERHEAD_MB;
}

/* v's cgroup, made afresh for each boot.  Returns 0/-1. */
static int
vm_cgroup(struct runner *r, struct vm *v, struct err *e)
{
	struct cg_limits l = {
		.mem_bytes = (uint64_t)vm_mem_limit_mb(r, v) << 20,
		.pids_max = VM_PIDS_MAX,
		.cpu_weight = r->cfg->cpu_weight ? r->cfg->cpu_weight : 100,
	};
	char name[CG_NAME_MAX + 1];

	if (v->cg_made && cgroup_destroy(&v->cg, e) < 0)
		log_warn("%s: %s", v->file, e->msg);
	v->cg_made = false;
	snprintf(name, sizeof(name), "%s/%.16s", r->cg_root, v->id);
	if (cgroup_create(name, &l, &v->cg, e) < 0)
		return -1;
	v->cg_made = true;
	return 0;
}

/* Give v's files to its uid: the machine opens its disks as that user. */
static int
vm_own_files(const struct vm *v, const char *const *paths, size_t n,
	     struct err *e)
{
	for (size_t i = 0; i < n; i++)
		if (chown(paths[i], v->uid, v->uid) < 0)
			return err_sys(e, "chown %s", paths[i]);
	return 0;
}

/*
 * Start argv (paths inside the jail) for v in its jail, with fds as its
 * descriptors 0.. and binds as its /vm.  Unjailed (--no-jail), the same
 * program runs as root in v's network namespace, with host paths in
 * host_argv.  Returns the pid, or -1 with e set.
 */
static pid_t
vm_jail_spawn(struct runner *r, struct vm *v, char *const *argv,
	      char *const *host_argv, const struct jail_bind *binds,
	      size_t nbinds, const int *fds, unsigned nfds, unsigned tmp_mb,
	      bool thp_off, struct err *e)
{
	struct jail_params p = {
		.uid = v->uid, .gid = v->uid, .binds = binds, .nbinds = nbinds,
		.usr = true, .tun = true, .tmp_mb = tmp_mb, .nofile = 1024,
		.argv = argv, .thp_off = thp_off, .fixed_brk = v->kind != MACHINE_QEMU,
	};
	char root[PATH_MAX];
	struct jail_plan *pl;
	pid_t pid;

	if (r->cfg->no_jail)
		return vm_spawn_unjailed(v, host_argv, fds, nfds, thp_off, e);
	snprintf(root, sizeof(root), "%s/jail", v->dir);
	if (mkdir(root, 0755) < 0 && errno != EEXIST)
		return err_sys(e, "%s", root);
	p.root = root;
	/* no file it writes grows past its largest disk */
	for (size_t i = 0; i < nbinds; i++) {
		struct stat sb;

		if (stat(binds[i].host, &sb) == 0 && (uint64_t)sb.st_size > p.fsize)
			p.fsize = (uint64_t)sb.st_size;
	}
	p.fsize += (uint64_t)tmp_mb << 20;
	if ((pl = malloc(sizeof(*pl))) == NULL)
		return err_set(e, "out of memory");
	if (jail_plan(&p, pl, e) < 0 || vm_cgroup(r, v, e) < 0) {
		free(pl);
		return -1;
	}
	pl->netns_fd = v->netns_fd;
	pl->cg = &v->cg;
	pl->seccomp = &r->seccomp.prog;
	pid = jail_spawn(pl, fds, nfds, e);
	free(pl);
	return pid;
}

static void
vm_pidfile(const struct vm *v, char path[PATH_MAX])
{
	snprintf(path, PATH_MAX, "%s/pid", v->dir);
}

/* Open STATE/vms/<id>/console.log for appending, unless open: it is kept
 * across restarts (and, for QEMU, withdrawals). */
static void
vm_open_log(struct vm *v)
{
	char log[PATH_MAX];
	struct stat sb;

	if (v->log_fd >= 0)
		return;
	snprintf(log, sizeof(log), "%s/console.log", v->dir);
	v->log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	v->log_bytes = v->log_fd >= 0 && fstat(v->log_fd, &sb) == 0 ?
		       sb.st_size : 0;
}

/* The guest writes as much as it likes: past VM_CONSOLE_MAX, console.log
 * becomes console.log.old (replacing the one before) and a new one starts,
 * so a VM's console takes at most twice that on disk and keeps its latest
 * output. */
static void
vm_rotate_log(struct vm *v)
{
	char log[PATH_MAX], old[PATH_MAX + 8];
	int n;

	snprintf(log, sizeof(log), "%s/console.log", v->dir);
	snprintf(old, sizeof(old), "%s.old", log);
	close(v->log_fd);
	v->log_fd = -1;
	if (rename(log, old) < 0)
		log_debug("%s: %s: %m", v->file, old);
	vm_open_log(v);
	if (v->log_fd >= 0 && (n = dprintf(v->log_fd, "fed-vmrunner: "
		"console.log passed %d MiB; the output before is in "
		"console.log.old\n", VM_CONSOLE_MAX >> 20)) > 0)
		v->log_bytes += n;
}

/* Copy what the guest wrote on its console into console.log: at most max
 * bytes, so a guest that writes without a pause does not hold the loop
 * (poll finds the rest at once, in the next turn). */
void
vm_drain_console(struct vm *v, size_t max)
{
	char buf[8192];
	size_t done = 0;
	ssize_t n;

	while (v->con_fd >= 0 && done < max) {
		n = read(v->con_fd, buf, sizeof(buf));
		if (n > 0) {
			done += (size_t)n;
			if (v->log_fd >= 0 && v->log_bytes >= VM_CONSOLE_MAX)
				vm_rotate_log(v);
			if (v->log_fd >= 0 && write(v->log_fd, buf, (size_t)n) < 0)
				log_debug("%s: console.log: %m", v->file);
			else
				v->log_bytes += n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		close(v->con_fd);	/* EOF or error */
		v->con_fd = -1;
	}
}

/* Seconds left until deadline, for a QMP wait: at least a millisecond, so
 * a command sent after the deadline still fails as a timeout. */
static double
vm_resume_left(double deadline)
{
	double left = deadline - mono_now();

	return left > 0.001 ? left : 0.001;
}

/* Drive a QEMU started paused with -incoming defer until it runs: load
 * its device state from fd 4 (its memory is the file it maps, which the
 * stream leaves out: x-ignore-shared, as when it was saved), then `cont`.
 * The loop waits meanwhile, so the whole of it, every QMP wait included,
 * is bounded by one VM_RESUME_TIMEOUT.  Returns 0/-1. */
static int
vm_resume(struct vm *v, int qmp_fd, struct err *e)
{
	double deadline = mono_now() + VM_RESUME_TIMEOUT;
	const char *st;
	struct qmp q;
	json_t *ret = NULL;
	int rc = -1;

	if (qmp_start(&q, qmp_fd, VM_RESUME_TIMEOUT, e) < 0)
		goto done;
	if (qmp_call(&q, "migrate-set-capabilities", json_pack(
		     "{s:[{s:s,s:b}]}", "capabilities", "capability",
		     "x-ignore-shared", "state", 1), -1, NULL,
		     vm_resume_left(deadline), e) < 0 ||
	    qmp_call(&q, "migrate-incoming", json_pack("{s:s}", "uri", "fd:4"),
		     -1, NULL, vm_resume_left(deadline), e) < 0)
		goto done;
	for (;;) {
		if (qmp_call(&q, "query-status", NULL, -1, &ret,
			     vm_resume_left(deadline), e) < 0)
			goto done;
		st = json_string_value(json_object_get(ret, "status"));
		if (st == NULL || strcmp(st, "inmigrate") != 0)
			break;
		json_decref(ret);
		ret = NULL;
		if (mono_now() > deadline) {
			err_set(e, "the memory state did not load within %d s",
				VM_RESUME_TIMEOUT);
			goto done;
		}
		usleep(5000);
	}
	st = json_string_value(json_object_get(ret, "status"));
	if (st == NULL || strcmp(st, "paused") != 0) {
		err_set(e, "after loading its memory the machine is '%.40s', "
			"not paused", st ? st : "(no status)");
		goto done;
	}
	if (qmp_call(&q, "cont", NULL, -1, NULL, vm_resume_left(deadline),
		     e) < 0)
		goto done;
	rc = 0;
done:
	(void)v;
	json_decref(ret);
	qmp_close(&q);
	return rc;
}

/* Record v's boot: its console, pid, state and deadline. */
static void
vm_started(struct vm *v, pid_t pid, int con_fd, double t0)
{
	char pidf[PATH_MAX];
	FILE *f;

	fcntl(con_fd, F_SETFL, O_NONBLOCK);
	v->con_fd = con_fd;
	v->pid = pid;
	v->state = VM_STARTING;
	v->next_probe = 0;	/* not a failed up's wait from the last boot */
	v->started = time(NULL);
	v->up_since = 0;
	v->boot_t0 = t0;
	v->boot_deadline = v->boot_t0 + VM_BOOT_TIMEOUT;
	vm_pidfile(v, pidf);
	if ((f = fopen(pidf, "w")) != NULL) {
		fprintf(f, "%d\n", (int)pid);
		fclose(f);
	}
}

/* The QEMU command line for v: paths in its jail, or the host's. */
static char **
vm_qemu_argv(struct vm *v, bool host)
{
	static const char *const extra[] = {
		"-S", "-snapshot", "-incoming", "defer",
		"-chardev", "socket,id=qmp,fd=3",
		"-mon", "chardev=qmp,mode=control",
		/* QEMU's own filter on top of the jail's: it drops to no
		 * privilege itself and spawns nothing */
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,"
		"spawn=deny,resourcecontrol=deny", NULL };
	char disk[PATH_MAX], ram[PATH_MAX];
	struct qemu_paths paths = { v->kernel_path, v->initrd_path, disk, ram,
				    false };
	char **argv;

	snprintf(disk, sizeof(disk), "%s/disk.raw", v->dir);
	snprintf(ram, sizeof(ram), "%s/ram.img", v->dir);
	if (!host) {
		paths.kernel = JAIL_VM_DIR "/vmlinuz";
		paths.initrd = JAIL_VM_DIR "/initrd";
		paths.disk = JAIL_VM_DIR "/disk.raw";
		paths.ram = JAIL_VM_DIR "/ram.img";
	}
	if ((argv = qemu_argv(v->qemu_args, &paths, extra)) == NULL)
		return NULL;
	if (!host) {	/* the jail runs a path, not a name in PATH */
		char *abs = NULL;

		if (asprintf(&abs, "/usr/bin/%s", argv[0]) < 0) {
			qemu_argv_free(argv);
			return NULL;
		}
		free(argv[0]);
		argv[0] = abs;
	}
	return argv;
}

/* Start QEMU for v, resumed from its memory state.  Returns 0/-1. */
static int
vm_spawn_qemu(struct runner *r, struct vm *v, struct err *e)
{
	char disk[PATH_MAX], state[PATH_MAX], ram[PATH_MAX];
	const char *own[] = { disk, ram };
	struct jail_bind binds[4];
	char **argv = NULL, **host_argv = NULL;
	int pfd[2] = { -1, -1 }, sv[2] = { -1, -1 }, state_fd = -1, nul = -1;
	double t0;
	pid_t pid;

	snprintf(disk, sizeof(disk), "%s/disk.raw", v->dir);
	snprintf(state, sizeof(state), "%s/state.bin", v->dir);
	snprintf(ram, sizeof(ram), "%s/ram.img", v->dir);
	if (runner_qkernel_fresh(v, e) < 0)
		return -1;
	binds[0] = (struct jail_bind){ v->kernel_path, "vmlinuz", false };
	binds[1] = (struct jail_bind){ v->initrd_path, "initrd", false };
	binds[2] = (struct jail_bind){ disk, "disk.raw", false };
	binds[3] = (struct jail_bind){ ram, "ram.img", true };
	if ((argv = vm_qemu_argv(v, false)) == NULL ||
	    (host_argv = vm_qemu_argv(v, true)) == NULL) {
		err_set(e, "cannot build the QEMU command line (a comma in "
			"%s?)", v->dir);
		goto bad;
	}
	if (!r->cfg->no_jail && vm_own_files(v, own, 2, e) < 0)
		goto bad;
	if ((state_fd = open(state, O_RDONLY | O_CLOEXEC)) < 0 ||
	    (nul = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
	    pipe2(pfd, O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		err_sys(e, "%s", state);
		goto bad;
	}
	vm_open_log(v);
	t0 = mono_now();
	/* fd 3 is QMP (-chardev socket,fd=3), 4 the memory state; /tmp takes
	 * -snapshot's overlay of the disk */
	pid = vm_jail_spawn(r, v, argv, host_argv, binds, 4,
			    (int[]){ nul, pfd[1], pfd[1], sv[1], state_fd }, 5,
			    128, true, e);
	if (pid < 0)
		goto bad;
	close(pfd[1]);
	close(sv[1]);
	close(state_fd);
	close(nul);
	qemu_argv_free(argv);
	qemu_argv_free(host_argv);
	vm_started(v, pid, pfd[0], t0);
	if (vm_resume(v, sv[0], e) < 0) {
		/* reaped as a death: backoff and another try */
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);	/* if it died before setsid */
		log_warn("%s: resuming QEMU (pid %d) failed: %s", v->file,
			 (int)pid, e->msg);
		return 0;
	}
	v->resume_s = mono_now() - v->boot_t0;
	log_info("%s: resumed %s from its memory state in %.2f s (uid %u, "
		 "namespace %s, guest %s, pid %d)", v->file, v->service,
		 v->resume_s, (unsigned)v->uid, v->netns, QEMU_GUEST_ADDR,
		 (int)pid);
	return 0;
bad:
	qemu_argv_free(argv);
	qemu_argv_free(host_argv);
	if (state_fd >= 0)
		close(state_fd);
	if (nul >= 0)
		close(nul);
	for (int i = 0; i < 2; i++) {
		if (pfd[i] >= 0)
			close(pfd[i]);
		if (sv[i] >= 0)
			close(sv[i]);
	}
	return -1;
}

/*
 * The UML command line for v, in its jail (host: false) or with the
 * host's paths (--no-jail): the same machine on the same tap of its own
 * network namespace either way.
 */
static char **
vm_uml_argv(struct runner *r, struct vm *v, bool host)
{
	char cow[PATH_MAX];
	struct uml_params p = {
		.kernel = host ? v->kernel_path : JAIL_VM_DIR "/kernel",
		.cow = host ? cow : JAIL_VM_DIR "/disk.cow",
		.base = host ? v->base_path : JAIL_VM_DIR "/base.img",
		.mem_mb = r->cfg->mem_mb, .tap = QEMU_TAP,
		.guest_addr = QEMU_GUEST_ADDR, .prefix = QEMU_PREFIX,
		.gateway = QEMU_HOST_ADDR, .hostfs = MACHINE_NOHOSTFS,
		/* UML's own files (~/.uml): in the jail's /tmp, or the VM's
		 * directory; never the vmrunner's home */
		.uml_dir = host ? v->dir : "/tmp",
	};

	snprintf(cow, sizeof(cow), "%s/disk.cow", v->dir);
	return uml_argv(&p);
}

/* Start linux.uml (or QEMU) for v.  Returns 0, or -1 (e set). */
int
vm_spawn(struct runner *r, struct vm *v, struct err *e)
{
	char cow[PATH_MAX];
	const char *own[] = { cow };
	char **argv = NULL, **host_argv = NULL;
	int pfd[2] = { -1, -1 }, nul = -1, rc = -1;
	struct jail_bind binds[3];
	double t0 = mono_now();
	pid_t pid;

	if (v->kind == MACHINE_QEMU)
		return vm_spawn_qemu(r, v, e);
	if (vm_kernel_intact(v->kernel_path, v->kernel_sha, e) < 0)
		return -1;
	snprintf(cow, sizeof(cow), "%s/disk.cow", v->dir);
	binds[0] = (struct jail_bind){ v->kernel_path, "kernel", false };
	binds[1] = (struct jail_bind){ cow, "disk.cow", true };
	binds[2] = (struct jail_bind){ v->base_path, "base.img", false };
	if ((argv = vm_uml_argv(r, v, false)) == NULL ||
	    (host_argv = vm_uml_argv(r, v, true)) == NULL) {
		err_set(e, "cannot build the UML command line");
		goto done;
	}
	if (!r->cfg->no_jail && vm_own_files(v, own, 1, e) < 0)
		goto done;
	if (pipe2(pfd, O_CLOEXEC) < 0 ||
	    (nul = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		err_sys(e, "pipe");
		goto done;
	}
	vm_open_log(v);
	/* the kernel's memory file (mem=) lives in the jail's /tmp */
	pid = vm_jail_spawn(r, v, argv, host_argv, binds, 3,
			    (int[]){ nul, pfd[1], pfd[1] }, 3,
			    r->cfg->mem_mb + 16, false, e);
	if (pid < 0)
		goto done;
	vm_started(v, pid, pfd[0], t0);
	pfd[0] = -1;
	log_info("%s: booting %s (uid %u, namespace %s, pid %d)", v->file,
		 v->service, (unsigned)v->uid, v->netns, (int)pid);
	rc = 0;
done:
	uml_argv_free(argv);
	uml_argv_free(host_argv);
	for (int i = 0; i < 2; i++)
		if (pfd[i] >= 0)
			close(pfd[i]);
	if (nul >= 0)
		close(nul);
	return rc;
}

/* SIGKILL every process of the group pgid and wait (bounded, 5 s) until
 * none is left. */
void
vm_kill_group(pid_t pgid)
{
	if (pgid <= 1)
		return;
	for (int i = 0; i < 500 && kill(-pgid, SIGKILL) == 0; i++)
		usleep(10000);
}

/* Kill v's UML (its whole process group) and reap it. */
static void
vm_kill(struct vm *v)
{
	char pidf[PATH_MAX];

	if (v->pid > 0) {
		int i = 0;

		kill(-v->pid, SIGKILL);
		kill(v->pid, SIGKILL);
		/* not waitpid(pid, 0): a UML blocked in a read fedfs has not
		 * answered yet dies only once fedfs answers (a FUSE request
		 * taken is waited for uninterruptibly), and the loop would
		 * stop supervising every other VM meanwhile.  runner_reap
		 * reaps it whenever it ends */
		while (waitpid(v->pid, NULL, WNOHANG) == 0 &&
		       i++ < VM_KILL_WAIT_MS / 10)
			usleep(10000);
		if (i > VM_KILL_WAIT_MS / 10)
			log_warn("%s: pid %d still there %d ms after SIGKILL "
				 "(blocked in the kernel: on fedfs?); reaped "
				 "when it ends", v->file, (int)v->pid,
				 VM_KILL_WAIT_MS);
		else
			vm_kill_group(v->pid);
		v->pid = 0;
	}
	vm_drain_console(v, VM_CONSOLE_LAST);
	if (v->con_fd >= 0) {
		close(v->con_fd);
		v->con_fd = -1;
	}
	vm_pidfile(v, pidf);
	unlink(pidf);
}

/* What a QEMU VM's directory keeps across withdrawals: the unpacked disk,
 * device state and memory, and the marker saying all are complete.  The content
 * is the snapshot's, named by its id and never written (QEMU runs with
 * -snapshot), so committing the same snapshot again skips the unpack. */
static bool
vm_is_kept_file(const char *name)
{
	return strcmp(name, "disk.raw") == 0 || strcmp(name, "state.bin") == 0 ||
	       strcmp(name, "ram.img") == 0 || strcmp(name, VM_UNPACKED) == 0 ||
	       strcmp(name, "console.log") == 0 ||
	       strcmp(name, "console.log.old") == 0;
}

/* Remove the files of a QEMU VM's directory dir: all of them (all true),
 * or all but the kept ones (the overlay -snapshot wrote into TMPDIR, the
 * pid file). */
void
vm_remove_dir_files(const char *dir, bool all)
{
	struct dirent *d;
	DIR *dp = opendir(dir);

	if (dp == NULL)
		return;
	while ((d = readdir(dp)) != NULL)
		if (d->d_name[0] != '.' && (all || !vm_is_kept_file(d->d_name)))
			unlinkat(dirfd(dp), d->d_name, 0);
	closedir(dp);
}

void
vm_remove_files(struct vm *v)
{
	vm_remove_dir_files(v->dir, false);
}

/* The guest's address: the lease's, or for QEMU the one every QEMU guest
 * has in its own namespace. */
struct in_addr
vm_guest_addr(const struct vm *v)
{
	struct in_addr a;

	(void)v;	/* every machine is at the same address in its own
			   namespace */
	inet_pton(AF_INET, QEMU_GUEST_ADDR, &a);
	return a;
}

/*
 * Is a starting VM's service listening yet?  One non-blocking connect to
 * the guest port at a time, its socket in the main loop's poll set: the VM
 * is up within milliseconds of its service's listen(), without the loop
 * ever blocking on a guest that has not answered.
 */
void
vm_probe_stop(struct vm *v)
{
	if (v->probe_fd >= 0) {
		close(v->probe_fd);
		v->probe_fd = -1;
	}
}

/* Start a probe unless one is in flight or the last was too recent; an
 * unanswered one (the guest's network not up yet) is dropped after
 * VM_PROBE_WAIT_S.  Returns true if the guest accepted at once. */
bool
vm_probe_start(struct vm *v, double now)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(v->guest_port),
				  .sin_addr = vm_guest_addr(v) };
	int fd;

	if (v->probe_fd >= 0) {
		if (now - v->probe_t < VM_PROBE_WAIT_S)
			return false;
		vm_probe_stop(v);
	}
	if (now < v->next_probe)
		return false;
	v->next_probe = now + VM_PROBE_EVERY_S;
	if ((fd = netns_socket(v->netns_fd, AF_INET, SOCK_STREAM |
			       SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return true;
	}
	if (errno == EINPROGRESS) {
		v->probe_fd = fd;
		v->probe_t = now;
	} else {
		close(fd);	/* refused, unreachable: try again later */
	}
	return false;
}

/* Has the probe's connect finished, and did it connect? */
bool
vm_probe_done(struct vm *v)
{
	struct pollfd p = { .fd = v->probe_fd, .events = POLLOUT };
	socklen_t len;
	int err;

	if (v->probe_fd < 0 || poll(&p, 1, 0) != 1)
		return false;
	len = sizeof(err);
	if (getsockopt(v->probe_fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	vm_probe_stop(v);
	return err == 0;
}

/* Release everything v holds (UML, mapping, port, lease, tap). */
void
vm_release(struct runner *r, struct vm *v)
{
	char cow[PATH_MAX];
	struct err e;

	vm_kill(v);
	vm_probe_stop(v);
	if (v->mapped && relay_map_remove(r->relay, v->service, &e) < 0)
		log_warn("%s: %s", v->file, e.msg);
	v->mapped = false;
	v->host_port = 0;
	if (v->netns_fd >= 0) {
		close(v->netns_fd);
		v->netns_fd = -1;
	}
	if (v->netns_made) {
		machine_net_delete(v->netns);
		v->netns_made = false;
	}
	if (v->cg_made && cgroup_destroy(&v->cg, &e) < 0)
		log_warn("%s: %s", v->file, e.msg);
	v->cg_made = false;
	vm_uid_give(r, v);
	if (v->leased) {
		if (lease_free(r->leases, v->id, &e) < 0)
			log_warn("%s: %s", v->file, e.msg);
		v->leased = false;
	}
	if (v->log_fd >= 0) {
		close(v->log_fd);
		v->log_fd = -1;
	}
	snprintf(cow, sizeof(cow), "%s/disk.cow", v->dir);
	unlink(cow);
	snprintf(cow, sizeof(cow), "%s/jail", v->dir);
	rmdir(cow);	/* the jail's mount point; its mounts went with it */
	if (v->kind == MACHINE_QEMU)
		vm_remove_files(v);
	v->state = VM_STOPPED;
}

/* The VM's own network namespace (this runner's prefix and its tap's
 * name), with the tap its machine opens as its jail's uid, the address
 * every guest's gateway has, the egress rules, and an uplink if it was
 * granted egress.  Returns 0/-1. */
int
runner_vm_net(struct runner *r, struct vm *v, struct err *e)
{
	struct machine_uplink up;
	char path[PATH_MAX];

	if (vm_uid_take(r, v, e) < 0)
		return -1;
	snprintf(v->netns, sizeof(v->netns), "%s%s", r->netns_prefix, v->tap);
	if (v->egress.n > 0 &&
	    machine_uplink_plan(r->uplink_prefix, v->uid - r->cfg->uid_min,
				&v->egress, &up, e) < 0)
		return -1;
	if (machine_net_setup(v->netns, v->uid, v->uid,
			      v->egress.n > 0 ? &up : NULL, e) < 0)
		return -1;
	v->netns_made = true;
	snprintf(path, sizeof(path), "/run/netns/%s", v->netns);
	if ((v->netns_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return err_sys(e, "%s", path);
	return 0;
}

/* What the kernel of v said last before it died: the end of console.log
 * through machine_last_words; "" if it said nothing. */
void
vm_last_words(const struct vm *v, char *out, size_t size)
{
	char path[PATH_MAX], buf[VM_LAST_WORDS_READ];
	off_t end;
	ssize_t n;
	int fd;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/console.log", v->dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, sizeof(buf), end > (off_t)sizeof(buf) ?
		  end - (off_t)sizeof(buf) : 0);
	close(fd);
	if (n > 0)
		machine_last_words(buf, (size_t)n, out, size);
}
