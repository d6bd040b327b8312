/*
 * runner.c - the vmrunner's supervisor: one thread, one poll loop.
 *
 * The loop waits on inotify (MOUNTPOINT/commit/), a signalfd (SIGCHLD,
 * SIGTERM, SIGINT, SIGHUP) and the console pipes of the running VMs, and
 * wakes at least every second.  Each turn it:
 *
 *   rescans commit/ (on an inotify event, and every RUNNER_RESCAN_S anyway:
 *   inotify on FUSE only sees changes made through this kernel's VFS),
 *   starting a VM for each new file and tearing down each one that is gone;
 *   moves each VM along its states (vmrunner.h): probe the guest port of a
 *   starting VM, restart a VM whose backoff is over, give up on a boot that
 *   passed its deadline; hands a service over to a newer version once it is
 *   up; retries reports the authority did not take; rewrites status.json.
 *
 * The relay (netmap) runs in its own thread; everything else here is done
 * by this thread, so nothing is locked.  Verifying and unpacking a new
 * commit is done in the loop too (reads through fedfs, seconds at most for
 * a cold delta): other VMs are not supervised meanwhile, which is fine for
 * the tens of VMs a peer runs.
 *
 * A VM is a linux.uml process started in its own session (setsid), so it
 * and every helper process it forks share one process group: stopping a VM
 * is kill(-pid, SIGKILL).  Its pid is recorded in STATE/vms/<id>/pid, so a
 * vmrunner that died is cleaned up after by the next one (runner_adopt).
 *
 * A QEMU VM (a running-state snapshot) is a qemu-system-x86_64 process,
 * also in its own session, in the network namespace named like its tap;
 * it starts paused with its memory state as incoming migration, and the
 * loop drives it over QMP (a socketpair) until it runs: wait for the state
 * to be loaded, `cont` (vm_resume, blocking, about a second).  From then
 * on it is supervised exactly like a UML.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/delta.h"
#include "common/fedsnap.h"
#include "common/hex.h"
#include "common/http.h"
#include "common/keyfile.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/qemu.h"
#include "common/timefmt.h"
#include "machine/jail.h"
#include "machine/machine.h"
#include "vmrunner/vmrunner.h"

#define ARRAY_LEN(a)		(sizeof(a) / sizeof((a)[0]))
#define RUNNER_RESCAN_S		3.0
#define VM_KILL_WAIT_MS		2000	/* for a killed VM to exit, at most */
#define RUNNER_LATER_MAX_S	300.0	/* a file that failed for a passing reason */
#define RUNNER_REPORT_RETRY_S	5.0
#define RUNNER_UNREACHABLE_MAX_S 60.0	/* the longest pause in reports */
#define RUNNER_REFRESH_EVERY_S	60.0	/* when the authority said no ttl */
#define RUNNER_MAX_VMS		256
#define RUNNER_FOLLOW_RETRY_S	60.0	/* after a version we failed to follow */
#define RUNNER_QEMU_KEEP	3	/* unpacked withdrawn QEMU snapshots */
#define VM_PROBE_EVERY_S	0.01	/* starting: a connect this often, */
#define VM_PROBE_WAIT_S		0.25	/* an unanswered one given up after */
#define VM_UP_RETRY_S		5.0	/* answered, but no host port or mapping */
#define VM_CONSOLE_MAX		(8 << 20)	/* console.log moves to .old past this */
#define VM_CONSOLE_TURN		(64 << 10)	/* console bytes per loop turn */
#define VM_CONSOLE_LAST		(1 << 20)	/* ... and after the VM died */
#define VM_LAST_WORDS_READ	(16 << 10)	/* console.log's end, read at death */
#define RUNNER_PROBE_MEM_MB	32	/* the kernel probe's machine */
#define RUNNER_PROBE_TIMEOUT_S	30
#define RUNNER_PROBED_MAX	16	/* kernels whose probe is remembered */

extern char **environ;

struct runner {
	const struct runner_config *cfg;
	char public_addr[INET_ADDRSTRLEN];
	uint8_t seed[ED25519_SEED_LEN];
	struct lease_db *leases;
	struct relay *relay;
	struct vm *vms[RUNNER_MAX_VMS];
	size_t nvms;
	struct runner_held {		/* commit/ names not started */
		char *name;
		double retry_at;	/* monotonic; 0: refused, not retried */
		unsigned tries;
		bool seen;		/* at the current scan */
	} *held;
	size_t nheld;
	struct {			/* the last version we failed to follow */
		char id[2 * SHA256_LEN + 1];
		double retry_at;	/* monotonic */
	} follow_failed[16];
	int ino_fd, sig_fd;
	bool stop;
	char qemu_version[QEMU_VERSION_MAX];	/* "" until first needed */
	/* Why this host cannot run UML machines ("" if it can), from the
	 * probe of the start-up kernel: every UML snapshot is refused. */
	char uml_broken[ERR_MSG_MAX];
	/* The jails (docs/vmrunner.md, "The jail"): this runner's cgroups are
	 * under cg_root and its namespaces are named netns_prefix + tap, so
	 * that two vmrunners on one host (the test cluster's peers) never
	 * meet; uid slot i is uid_min + i, taken while a VM holds it. */
	char cg_root[32];		/* "fed/<8 hex of STATE's path>" */
	char netns_prefix[16];		/* "fed<8 hex>-" */
	bool uid_taken[RUNNER_MAX_VMS];
	struct machine_seccomp seccomp;
	uint64_t mem_lent;		/* MiB the VMs' limits take now */
	struct {			/* each kernel probed before its first boot */
		uint8_t sha[SHA256_LEN];
		bool ok;
		char why[ERR_MSG_MAX];
	} probed[RUNNER_PROBED_MAX];
	size_t nprobed;
	/* The authority did not answer: no report is tried before this
	 * (monotonic), so a black-holed authority costs the loop one
	 * connect timeout per pause, not one per VM every 5 s. */
	double authority_next;
	double authority_pause;		/* the current pause, doubling */
};

/* One report owed to the authority per VM, retried until taken.  A VM
 * reported up is reported up again at a third of the authority's peer ttl
 * (its reply says how long): a commitment not re-reported within it goes
 * down by itself, so a peer that vanishes leaves the lookups. */
struct vm_report {
	bool pending;
	bool up;
	bool refresh;		/* the pending report only repeats the last */
	double next_try;
	double taken_at;	/* the last one the authority took */
	int peer_ttl;		/* what it said with it; 0: never expires */
};
static struct vm_report reports[RUNNER_MAX_VMS];

/* ------------------------------------------------- the authority's view */

/*
 * Is sha listed as a trusted `kind` and not revoked?  Returns 0 and sets
 * *why to NULL if so, 0 with *why a static reason if not, -1 if the
 * authority could not be asked (e set).
 */
static int
runner_trusted(json_t *list, const uint8_t sha[SHA256_LEN], const char *kind,
	       const char **why)
{
	char hex[2 * SHA256_LEN + 1];
	size_t i;
	json_t *t;

	hex_encode(sha, SHA256_LEN, hex);
	*why = "is not trusted";
	json_array_foreach(list, i, t) {
		const char *h = json_string_value(json_object_get(t, "sha256"));
		const char *k = json_string_value(json_object_get(t, "kind"));

		if (h == NULL || k == NULL || strcmp(h, hex) != 0)
			continue;
		if (strcmp(k, kind) != 0) {
			*why = "is trusted as another kind";
			continue;
		}
		*why = json_is_true(json_object_get(t, "revoked")) ?
			"is revoked" : NULL;
		return 0;
	}
	return 0;
}

static int
runner_fetch_trusted(struct runner *r, json_t **list, struct err *e)
{
	json_t *reply = NULL;
	long status = 0;

	if (authority_call(r->cfg->authority, "GET", "/v1/trusted", NULL, NULL,
			   &status, &reply, e) < 0)
		return -1;
	if (status != 200 || !json_is_array(json_object_get(reply, "trusted"))) {
		authority_refused(status, reply, e);
		json_decref(reply);
		return -1;
	}
	*list = json_incref(json_object_get(reply, "trusted"));
	json_decref(reply);
	return 0;
}

static void
runner_report(struct runner *r, size_t i)
{
	struct vm *v = r->vms[i];
	struct vm_report *rep = &reports[i];
	char path[128];
	json_t *body, *reply = NULL;
	long status = 0;
	struct err e;

	if (mono_now() < r->authority_next) {
		rep->next_try = r->authority_next;
		return;
	}
	snprintf(path, sizeof(path), "/v1/commitments/%s", v->id);
	if (rep->up)
		body = json_pack("{s:b,s:s,s:i}", "up", 1, "addr",
				 r->public_addr, "port", (int)v->host_port);
	else
		body = json_pack("{s:b}", "up", 0);
	if (authority_call(r->cfg->authority, "PUT", path, body, r->seed,
			   &status, &reply, &e) < 0) {
		r->authority_pause = r->authority_pause > 0 ?
			2 * r->authority_pause : RUNNER_REPORT_RETRY_S;
		if (r->authority_pause > RUNNER_UNREACHABLE_MAX_S)
			r->authority_pause = RUNNER_UNREACHABLE_MAX_S;
		r->authority_next = mono_now() + r->authority_pause;
		rep->next_try = r->authority_next;
		log_warn("%s: reporting %s: %s (no report for %.0f s)",
			 v->file, rep->up ? "up" : "down", e.msg,
			 r->authority_pause);
	} else if (status != 200) {
		r->authority_pause = 0;
		authority_refused(status, reply, &e);
		log_warn("%s: reporting %s: %s (retrying)", v->file,
			 rep->up ? "up" : "down", e.msg);
		rep->next_try = mono_now() + RUNNER_REPORT_RETRY_S;
	} else {
		json_t *ttl = json_object_get(reply, "peer_ttl");

		r->authority_pause = 0;
		if (rep->refresh)
			log_debug("%s: reported up again", v->file);
		else
			log_info("%s: reported %s to the authority", v->file,
				 rep->up ? "up" : "down");
		rep->pending = false;
		rep->taken_at = mono_now();
		rep->peer_ttl = json_is_integer(ttl) ?
				(int)json_integer_value(ttl) : 0;
	}
	json_decref(body);
	json_decref(reply);
}

static void
runner_want_report(struct runner *r, size_t i, bool up)
{
	reports[i].pending = true;
	reports[i].up = up;
	reports[i].refresh = false;
	reports[i].next_try = 0;
	runner_report(r, i);
}

/* Is VM i's "up" due to be said again (see struct vm_report)? */
static bool
runner_refresh_due(size_t i, double now)
{
	const struct vm_report *rep = &reports[i];
	/* no ttl said (an authority without one may restart with one):
	 * the default cadence */
	double every = rep->peer_ttl > 0 ? rep->peer_ttl / 3.0 :
					   RUNNER_REFRESH_EVERY_S;

	if (rep->pending || !rep->up)
		return false;
	return now - rep->taken_at >= (every >= 1 ? every : 1);
}

/* --no-jail: argv as root in v's network namespace, fds as 0.., nothing
 * else, TMPDIR the VM's directory; for measuring what the jail costs. */
static pid_t
vm_spawn_unjailed(struct vm *v, char *const *argv, const int *fds,
		  unsigned nfds, bool thp_off, struct err *e)
{
	char tmpdir[PATH_MAX + 8];
	char *envp[] = { "PATH=/usr/bin:/bin", tmpdir, NULL };
	int high[JAIL_FDS_MAX];
	pid_t pid;

	if (nfds > JAIL_FDS_MAX)
		return err_set(e, "at most %d descriptors", JAIL_FDS_MAX);
	snprintf(tmpdir, sizeof(tmpdir), "TMPDIR=%s", v->dir);
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

/* ------------------------------------------------------------- the jail */

/* Name this runner's cgroups and namespaces after its STATE directory,
 * and compile the machines' system-call filter.  Returns 0/-1. */
static int
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
static unsigned
vm_mem_limit_mb(const struct runner *r, const struct vm *v)
{
	return (v->qemu ? v->qemu_mem_mb : r->cfg->mem_mb) + VM_MEM_OVERHEAD_MB;
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
		.argv = argv, .thp_off = thp_off, .fixed_brk = !v->qemu,
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

/* ------------------------------------------------------------ the VM */

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
static void
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

/* Is the cached kernel at path still the one whose SHA-256 is sha?  Asked
 * before every boot: the cache is a file a root process could change.
 * Returns 0, or -1 with e saying it is not (and the copy removed). */
static int
vm_kernel_intact(const char *path, const uint8_t sha[SHA256_LEN],
		 struct err *e)
{
	uint8_t got[SHA256_LEN];
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return err_sys(e, "kernel %s", path);
	rc = sha256_fd(fd, got, e);
	close(fd);
	if (rc < 0)
		return -1;
	if (memcmp(got, sha, SHA256_LEN) != 0) {
		log_warn("kernel %s changed in the cache: removed", path);
		unlink(path);
		return err_set(e, "kernel %s is not the trusted one any more",
			       path);
	}
	return 0;
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
		.gateway = QEMU_HOST_ADDR, .hostfs = VM_NOHOSTFS,
		.uml_dir = host ? NULL : "/tmp",
	};

	snprintf(cow, sizeof(cow), "%s/disk.cow", v->dir);
	return uml_argv(&p);
}

/* Start linux.uml (or QEMU) for v.  Returns 0, or -1 (e set). */
static int
vm_spawn(struct runner *r, struct vm *v, struct err *e)
{
	char cow[PATH_MAX];
	const char *own[] = { cow };
	char **argv = NULL, **host_argv = NULL;
	int pfd[2] = { -1, -1 }, nul = -1, rc = -1;
	struct jail_bind binds[3];
	double t0 = mono_now();
	pid_t pid;

	if (v->qemu)
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
static void
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
static void
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

static void
vm_remove_files(struct vm *v)
{
	vm_remove_dir_files(v->dir, false);
}

/* The guest's address: the lease's, or for QEMU the one every QEMU guest
 * has in its own namespace. */
static struct in_addr
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
static void
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
static bool
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
static bool
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
static void
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
	if (v->qemu)
		vm_remove_files(v);
	v->state = VM_STOPPED;
}

/* ------------------------------------------------------- kernel probes */

/* Remember that the kernel sha can (ok) or cannot run here, and why. */
static void
runner_probed_add(struct runner *r, const uint8_t sha[SHA256_LEN], bool ok,
		  const char *why)
{
	size_t i = r->nprobed++ % RUNNER_PROBED_MAX;

	memcpy(r->probed[i].sha, sha, SHA256_LEN);
	r->probed[i].ok = ok;
	snprintf(r->probed[i].why, sizeof(r->probed[i].why), "%s", why);
}

/* Can this host run the UML kernel at path (SHA-256 sha)?  Probed before
 * its first boot, remembered after.  Returns 0, or -1 with e saying why. */
static int
runner_kernel_runs(struct runner *r, const uint8_t sha[SHA256_LEN],
		   const char *path, struct err *e)
{
	size_t n = r->nprobed < RUNNER_PROBED_MAX ? r->nprobed : RUNNER_PROBED_MAX;
	char dir[PATH_MAX];
	double t0 = mono_now();

	for (size_t i = 0; i < n; i++)
		if (memcmp(r->probed[i].sha, sha, SHA256_LEN) == 0)
			return r->probed[i].ok ? 0 :
			       err_set(e, "%s", r->probed[i].why);
	snprintf(dir, sizeof(dir), "%s/probe", r->cfg->state);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return err_sys(e, "%s", dir);
	if (machine_probe(path, dir, RUNNER_PROBE_MEM_MB,
			  RUNNER_PROBE_TIMEOUT_S, e) < 0) {
		runner_probed_add(r, sha, false, e->msg);
		return -1;
	}
	runner_probed_add(r, sha, true, "");
	log_info("kernel %s runs on this host (probed in %.2f s)", path,
		 mono_now() - t0);
	return 0;
}

/*
 * At start-up: can this host run UML machines at all?  Boot the
 * --kernel (default fed's) once.  If it cannot, say why in one line and
 * refuse every UML snapshot (r->uml_broken) rather than take one and
 * crash-loop it.  No kernel to check with (fed's not installed, none
 * given) is said too; each snapshot's kernel is still probed.
 */
static void
runner_probe_host(struct runner *r)
{
	const char *k = r->cfg->probe_kernel ? r->cfg->probe_kernel :
			FED_UML_KERNEL;
	uint8_t sha[SHA256_LEN];
	struct err e;
	int fd;

	if ((fd = open(k, O_RDONLY | O_CLOEXEC)) < 0 && !r->cfg->probe_kernel) {
		log_warn("no kernel to check this host with (%s: %m); each "
			 "snapshot's kernel is checked before its first boot", k);
		return;
	}
	if (fd < 0 || sha256_fd(fd, sha, &e) < 0) {
		if (fd < 0)
			err_sys(&e, "kernel %s", k);
		snprintf(r->uml_broken, sizeof(r->uml_broken), "%s", e.msg);
	} else if (runner_kernel_runs(r, sha, k, &e) < 0) {
		snprintf(r->uml_broken, sizeof(r->uml_broken), "%s", e.msg);
	}
	if (fd >= 0)
		close(fd);
	if (r->uml_broken[0] != '\0')
		log_error("this host cannot run UML machines: %s; refusing "
			  "every UML snapshot", r->uml_broken);
}

/* ------------------------------------------------------------- commits */

/* Copy MOUNTPOINT/kernels/<hex> into STATE/kernels/<hex> (0755), checking
 * its SHA-256 on the way, unless the cache has it.  Returns 0/-1. */
static int
runner_cache_kernel(struct runner *r, const uint8_t sha[SHA256_LEN],
		    char out[PATH_MAX], struct err *e)
{
	char hex[2 * SHA256_LEN + 1], src[PATH_MAX], tmp[PATH_MAX + 8];
	uint8_t got[SHA256_LEN];
	struct sha256_ctx c;
	char buf[65536];
	int in = -1, fd = -1;
	ssize_t n;

	hex_encode(sha, SHA256_LEN, hex);
	snprintf(out, PATH_MAX, "%s/kernels/%s", r->cfg->state, hex);
	if (access(out, X_OK) == 0 && vm_kernel_intact(out, sha, e) == 0)
		return 0;
	snprintf(src, sizeof(src), "%s/kernels/%s", r->cfg->fed, hex);
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0)
		return err_sys(e, "kernel %s", src);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755)) < 0) {
		close(in);
		return err_sys(e, "%s", tmp);
	}
	sha256_init(&c);
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		sha256_update(&c, buf, (size_t)n);
		if (write(fd, buf, (size_t)n) != n) {
			err_sys(e, "write %s", tmp);
			goto bad;
		}
	}
	if (n < 0) {
		err_sys(e, "read %s", src);
		goto bad;
	}
	sha256_final(&c, got);
	if (memcmp(got, sha, SHA256_LEN) != 0) {
		err_set(e, "kernel %.8s.. read through fedfs has another SHA-256",
			hex);
		goto bad_hashed;
	}
	if (fchmod(fd, 0755) < 0 || fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		err_sys(e, "%s", tmp);
		goto bad_hashed;
	}
	close(in);
	if (rename(tmp, out) < 0) {
		unlink(tmp);
		return err_sys(e, "rename %s", out);
	}
	return 0;
bad:
	sha256_abort(&c);
bad_hashed:
	if (fd >= 0)
		close(fd);
	close(in);
	unlink(tmp);
	return -1;
}

/* The QEMU kernel object in the cache (v->kernel_path, hash-checked) split
 * into STATE/kernels/<sha>.vmlinuz and .initrd, once.  Returns 0/-1. */
static int
runner_split_qkernel(struct runner *r, struct vm *v, struct err *e)
{
	char obj[PATH_MAX];

	(void)r;
	snprintf(obj, sizeof(obj), "%s", v->kernel_path);
	snprintf(v->kernel_path, sizeof(v->kernel_path), "%.4000s.vmlinuz", obj);
	snprintf(v->initrd_path, sizeof(v->initrd_path), "%.4000s.initrd", obj);
	if (access(v->kernel_path, R_OK) == 0 && access(v->initrd_path, R_OK) == 0)
		return 0;
	return qkernel_split(obj, v->kernel_path, v->initrd_path, e);
}

/* The VM's own network namespace (this runner's prefix and its tap's
 * name), with the tap its machine opens as its jail's uid, the address
 * every guest's gateway has, and the egress rules.  Returns 0/-1. */
static int
runner_vm_net(struct runner *r, struct vm *v, struct err *e)
{
	char path[PATH_MAX];

	if (vm_uid_take(r, v, e) < 0)
		return -1;
	snprintf(v->netns, sizeof(v->netns), "%s%s", r->netns_prefix, v->tap);
	if (machine_net_setup(v->netns, v->uid, v->uid, e) < 0)
		return -1;
	v->netns_made = true;
	snprintf(path, sizeof(path), "/run/netns/%s", v->netns);
	if ((v->netns_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return err_sys(e, "%s", path);
	return 0;
}

static struct runner_held *
runner_held_find(struct runner *r, const char *name)
{
	for (size_t i = 0; i < r->nheld; i++)
		if (strcmp(r->held[i].name, name) == 0)
			return &r->held[i];
	return NULL;
}

/* The entry for commit/<name> (a new one, zeroed), seen at this scan; NULL
 * when out of memory.  runner_scan forgets it once the file is gone. */
static struct runner_held *
runner_hold(struct runner *r, const char *name)
{
	struct runner_held *h = runner_held_find(r, name), *nh;

	if (h == NULL) {
		nh = realloc(r->held, (r->nheld + 1) * sizeof(*nh));
		if (nh == NULL)
			return NULL;
		r->held = nh;
		h = &nh[r->nheld];
		memset(h, 0, sizeof(*h));
		if ((h->name = strdup(name)) == NULL)
			return NULL;
		r->nheld++;
	}
	h->seen = true;
	return h;
}

static void
runner_held_drop(struct runner *r, const char *name)
{
	struct runner_held *h = runner_held_find(r, name);

	if (h == NULL)
		return;
	free(h->name);
	*h = r->held[--r->nheld];
}

/* Do not try commit/<name> again while it stays there. */
static void
runner_remember(struct runner *r, const char *name)
{
	struct runner_held *h = runner_hold(r, name);

	if (h != NULL)
		h->retry_at = 0;
}

/*
 * commit/<name> could not be started for a reason that may pass: reading a
 * kernel or base through fedfs (a network hiccup gives EIO), writing the
 * disk (ENOSPC).  Refused for good, it would never run while its file
 * stays, though nothing is wrong with it: it is tried again after
 * RUNNER_RESCAN_S, doubling up to RUNNER_LATER_MAX_S.
 */
static void
runner_later(struct runner *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
runner_later(struct runner *r, const char *name, const char *fmt, ...)
{
	struct runner_held *h = runner_hold(r, name);
	char why[ERR_MSG_MAX];
	double wait;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (h == NULL)
		return;
	wait = RUNNER_RESCAN_S * (double)(1u << (h->tries < 7 ? h->tries : 7));
	if (wait > RUNNER_LATER_MAX_S)
		wait = RUNNER_LATER_MAX_S;
	h->tries++;
	h->retry_at = mono_now() + wait;
	log_warn("%s: not started: %s; trying again in %.0f s", name, why,
		 wait);
}

static void
runner_refuse(struct runner *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
runner_refuse(struct runner *r, const char *name, const char *fmt, ...)
{
	char why[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_error("refusing %s: %s", name, why);
	runner_remember(r, name);
}

static struct vm *
runner_find_service_owner(struct runner *r, const char *service)
{
	for (size_t i = 0; i < r->nvms; i++)
		if (r->vms[i]->mapped && strcmp(r->vms[i]->service, service) == 0)
			return r->vms[i];
	return NULL;
}

/* Does STATE/vms/<hex> hold a complete unpacked copy (disk, device
 * state, memory and the marker written after them) of QEMU snapshot hex? */
static bool
runner_unpacked_kept(struct runner *r, const char *hex)
{
	static const char *const files[] = { VM_UNPACKED, "disk.raw",
					     "state.bin", "ram.img" };
	char path[PATH_MAX];

	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/vms/%s/%s", r->cfg->state, hex,
			 files[i]);
		if (access(path, R_OK) < 0)
			return false;
	}
	return true;
}

/* What the running VMs' limits take, MiB. */
static unsigned long
runner_mem_in_use(const struct runner *r)
{
	unsigned long sum = 0;

	for (size_t i = 0; i < r->nvms; i++)
		if (r->vms[i]->state != VM_STOPPED)
			sum += vm_mem_limit_mb(r, r->vms[i]);
	return sum;
}

/* Does what this peer lends (--max-vms, --lend-mem) leave room for a VM
 * whose limit is need_mb?  If not, commit/<name> waits (runner_later). */
static bool
runner_admit(struct runner *r, const char *name, unsigned need_mb)
{
	unsigned max = r->cfg->max_vms ? r->cfg->max_vms : RUNNER_MAX_VMS;
	unsigned long used = runner_mem_in_use(r);
	size_t n = 0;

	for (size_t i = 0; i < r->nvms; i++)
		if (r->vms[i]->state != VM_STOPPED)
			n++;
	if (n >= max) {
		runner_later(r, name, "%zu VMs run, as many as --max-vms %u", n,
			     max);
		return false;
	}
	if (r->cfg->lend_mem_mb && used + need_mb > r->cfg->lend_mem_mb) {
		runner_later(r, name, "it needs %u MiB, and %lu of the %u MiB "
			     "lent (--lend-mem) are taken", need_mb, used,
			     r->cfg->lend_mem_mb);
		return false;
	}
	return true;
}

/*
 * A new file in commit/: check it, unpack it, lease, tap, boot.  A file
 * that fails a check is refused for good (one log line); one that fails
 * for a passing reason is tried again: the authority unreachable, at the
 * next scan; a kernel or base that cannot be read or unpacked, after a
 * backoff (runner_later).
 */
static void
runner_commit(struct runner *r, const char *name)
{
	char path[PATH_MAX], hex[2 * SHA256_LEN + 1], cow[PATH_MAX],
	     ram[PATH_MAX], mark[PATH_MAX + 16], bhex[2 * SHA256_LEN + 1],
	     svc[MANIFEST_HOST_MAX + 8];
	struct delta_machine machine;
	const char *why;
	double t0;
	bool kept;
	struct fedsnap s;
	struct vm *v = NULL;
	json_t *trusted = NULL;
	struct err e;

	if (r->nvms >= RUNNER_MAX_VMS) {
		log_warn("%s: %d VMs already, not starting another", name,
			 RUNNER_MAX_VMS);
		return;
	}
	snprintf(path, sizeof(path), "%s/commit/%s", r->cfg->fed, name);
	t0 = mono_now();
	if (fedsnap_open(path, &s, &e) < 0) {
		runner_refuse(r, name, "%s", e.msg);
		return;
	}
	hex_encode(s.id, SHA256_LEN, hex);
	for (size_t i = 0; i < r->nvms; i++)
		if (strcmp(r->vms[i]->id, hex) == 0) {
			runner_refuse(r, name, "snapshot %.8s.. already "
				      "runs as %s", hex, r->vms[i]->file);
			goto done;
		}
	/* the relay names its mapping by the service: a longer "host:port"
	 * (a signed manifest may carry a 253-byte DNS name) could never be
	 * mapped, and the VM would boot, answer and never be up */
	snprintf(svc, sizeof(svc), "%s:%u", s.m.host, s.m.port);
	if (strlen(svc) >= RELAY_NAME_MAX) {
		runner_refuse(r, name, "service %.40s.. is %zu bytes long; the "
			      "relay maps names of at most %d", svc, strlen(svc),
			      RELAY_NAME_MAX - 1);
		goto done;
	}
	/* older than a version of its service here: it would boot only to be
	 * stopped once it answered (runner_vm_up).  Said once, not at every
	 * scan: not tried again while the file stays */
	for (size_t i = 0; i < r->nvms; i++) {
		const struct vm *o = r->vms[i];

		if (o->state != VM_STOPPED && o->version > s.m.version &&
		    strcmp(o->service, svc) == 0) {
			log_info("%s: not booted: %s runs version %" PRId64
				 " of %s, newer than its %" PRId64, name,
				 o->file, o->version, svc, s.m.version);
			runner_remember(r, name);
			goto done;
		}
	}
	if (strcmp(s.m.machine, "qemu") == 0) {
		/* before anything is read or run: can this peer resume it? */
		if (r->qemu_version[0] == '\0' &&
		    qemu_local_version(r->qemu_version, &e) < 0) {
			r->qemu_version[0] = '\0';
			runner_refuse(r, name, "a running-state snapshot, but %s",
				      e.msg);
			goto done;
		}
		if (qemu_check(&s.m.qemu, r->qemu_version, &e) < 0) {
			runner_refuse(r, name, "%s", e.msg);
			goto done;
		}
	} else if (strcmp(s.m.machine, "uml") != 0) {
		runner_refuse(r, name, "machine '%s' is not run here",
			      s.m.machine);
		goto done;
	} else if (r->uml_broken[0] != '\0') {
		runner_refuse(r, name, "this host cannot run UML machines: %s",
			      r->uml_broken);
		goto done;
	}
	/* the payload is hashed here, before anything else, so a damaged
	 * one is refused in one clear line; a QEMU snapshot unpacked by an
	 * earlier commit (from chunks each verified then) does not read its
	 * payload again, and skips this */
	kept = strcmp(s.m.machine, "qemu") == 0 && runner_unpacked_kept(r, hex);
	if (!kept && fedsnap_verify_payload(&s, &e) < 0) {
		if (strcmp(s.m.machine, "qemu") == 0)
			runner_refuse(r, name, "%s (payload of disk delta and "
				      "memory state)", e.msg);
		else
			runner_refuse(r, name, "%s", e.msg);
		goto done;
	}
	if (runner_fetch_trusted(r, &trusted, &e) < 0) {
		log_warn("%s: cannot check trust (%s); will retry", name, e.msg);
		goto done;
	}
	runner_trusted(trusted, s.m.kernel, "kernel", &why);
	if (why != NULL) {
		hex_encode(s.m.kernel, SHA256_LEN, path);
		runner_refuse(r, name, "kernel %.8s.. %s", path, why);
		goto done;
	}
	runner_trusted(trusted, s.m.base, "base", &why);
	if (why != NULL) {
		hex_encode(s.m.base, SHA256_LEN, path);
		runner_refuse(r, name, "base %.8s.. %s", path, why);
		goto done;
	}

	if (!runner_admit(r, name, (strcmp(s.m.machine, "qemu") == 0 ?
				    s.m.qemu.mem_mb : r->cfg->mem_mb) +
			  VM_MEM_OVERHEAD_MB))
		goto done;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		goto done;
	v->con_fd = v->log_fd = v->netns_fd = v->probe_fd = -1;
	v->qemu = strcmp(s.m.machine, "qemu") == 0;
	snprintf(v->file, sizeof(v->file), "%s", name);
	memcpy(v->id, hex, sizeof(v->id));
	snprintf(v->service, sizeof(v->service), "%s", svc);
	v->version = s.m.version;
	v->guest_port = s.m.guest_port;
	v->seen = true;
	snprintf(v->dir, sizeof(v->dir), "%s/vms/%s", r->cfg->state, hex);
	hex_encode(s.m.base, SHA256_LEN, bhex);
	snprintf(v->base_path, sizeof(v->base_path), "%s/bases/%.64s",
		 r->cfg->fed, bhex);
	memcpy(v->kernel_sha, s.m.kernel, SHA256_LEN);
	if (runner_cache_kernel(r, s.m.kernel, v->kernel_path, &e) < 0) {
		runner_later(r, name, "%s", e.msg);
		goto done;
	}
	if (!v->qemu && runner_kernel_runs(r, s.m.kernel, v->kernel_path,
					   &e) < 0) {
		runner_refuse(r, name, "%s", e.msg);
		goto done;
	}
	if (mkdir(v->dir, 0700) < 0 && errno != EEXIST) {
		log_error("%s: %s: %m", name, v->dir);
		goto done;
	}
	if (v->qemu) {
		if (runner_split_qkernel(r, v, &e) < 0) {
			runner_later(r, name, "%s", e.msg);
			goto done;
		}
		if ((v->qemu_args = json_incref(s.m.qemu.args)) == NULL)
			goto done;
		v->qemu_mem_mb = s.m.qemu.mem_mb;
		snprintf(cow, sizeof(cow), "%s/disk.raw", v->dir);
		snprintf(path, sizeof(path), "%s/state.bin", v->dir);
		snprintf(ram, sizeof(ram), "%s/ram.img", v->dir);
		snprintf(mark, sizeof(mark), "%s/%s", v->dir, VM_UNPACKED);
		machine.state_path = path;
		machine.state_size = s.m.qemu.state_size;
		machine.ram_path = ram;
		machine.ram_size = (uint64_t)s.m.qemu.mem_mb << 20;
		if (kept) {
			utimensat(AT_FDCWD, mark, NULL, 0);	/* used now */
			log_info("%s: disk and memory state unpacked by an "
				 "earlier commit of %.8s..", name, hex);
		} else if (delta_unpack_raw(s.fd, s.payload_offset,
					    &s.m.delta, v->base_path, cow,
					    &machine, NULL, &e) < 0) {
			runner_later(r, name, "unpack: %s", e.msg);
			goto done;
		} else {
			int fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC |
				      O_CLOEXEC, 0600);

			if (fd >= 0)
				close(fd);
		}
	} else {
		snprintf(cow, sizeof(cow), "%s/disk.cow", v->dir);
		if (delta_unpack(s.fd, s.payload_offset, &s.m.delta,
				 v->base_path, cow, NULL, &e) < 0) {
			runner_later(r, name, "unpack: %s", e.msg);
			goto done;
		}
	}
	if (lease_alloc(r->leases, v->id, &v->lease, &e) < 0) {
		log_error("%s: %s", name, e.msg);
		goto done;
	}
	v->leased = true;
	lease_ifname(&v->lease, v->tap);
	v->prep_s = mono_now() - t0;
	t0 = mono_now();
	if (runner_vm_net(r, v, &e) < 0) {
		log_error("%s: %s", name, e.msg);
		vm_release(r, v);
		goto done;
	}
	v->net_s = mono_now() - t0;
	if (vm_spawn(r, v, &e) < 0) {
		log_error("%s: %s", name, e.msg);
		vm_release(r, v);
		goto done;
	}
	memset(&reports[r->nvms], 0, sizeof(reports[r->nvms]));
	r->vms[r->nvms++] = v;
	v = NULL;
	runner_held_drop(r, name);
done:
	if (v != NULL) {
		if (v->leased)
			vm_release(r, v);
		else if (v->qemu)
			vm_remove_files(v);
		json_decref(v->qemu_args);
		free(v);
	}
	json_decref(trusted);
	fedsnap_close(&s);
}

/* Keep the unpacked copies of at most RUNNER_QEMU_KEEP withdrawn QEMU
 * snapshots (the most recently used, by their marker's mtime); remove the
 * others' directories. */
static void
runner_prune_unpacked(struct runner *r)
{
	char dir[PATH_MAX], path[PATH_MAX + 300];
	struct {
		char name[NAME_MAX + 1];
		time_t used;
	} c[64];
	size_t n = 0;
	struct dirent *d;
	struct stat sb;
	DIR *dp;

	memset(c, 0, sizeof(c));
	snprintf(dir, sizeof(dir), "%s/vms", r->cfg->state);
	if ((dp = opendir(dir)) == NULL)
		return;
	while ((d = readdir(dp)) != NULL && n < sizeof(c) / sizeof(c[0])) {
		bool live = false;

		if (d->d_name[0] == '.')
			continue;
		for (size_t i = 0; i < r->nvms; i++)
			if (strcmp(r->vms[i]->id, d->d_name) == 0)
				live = true;
		snprintf(path, sizeof(path), "%s/%s/%s", dir, d->d_name,
			 VM_UNPACKED);
		if (live || stat(path, &sb) < 0)
			continue;
		snprintf(c[n].name, sizeof(c[n].name), "%s", d->d_name);
		c[n++].used = sb.st_mtime;
	}
	closedir(dp);
	while (n > RUNNER_QEMU_KEEP) {
		size_t old = 0;

		for (size_t i = 1; i < n; i++)
			if (c[i].used < c[old].used)
				old = i;
		snprintf(path, sizeof(path), "%s/%.255s", dir, c[old].name);
		vm_remove_dir_files(path, true);
		rmdir(path);
		log_info("removed the unpacked copy of %.8s.. (kept: the %d "
			 "most recently used)", c[old].name, RUNNER_QEMU_KEEP);
		c[old] = c[--n];
	}
}

/* commit/<file> is gone: stop and release everything, forget the VM. */
static void
runner_withdraw(struct runner *r, size_t i)
{
	struct vm *v = r->vms[i];

	bool qemu = v->qemu;

	log_info("%s: withdrawn: stopping %s", v->file, v->service);
	vm_release(r, v);
	rmdir(v->dir);
	json_decref(v->qemu_args);
	free(v);
	r->vms[i] = r->vms[r->nvms - 1];
	reports[i] = reports[r->nvms - 1];
	r->nvms--;
	if (qemu)
		runner_prune_unpacked(r);
}


static void
runner_scan(struct runner *r)
{
	char dir[PATH_MAX];
	struct dirent *d;
	struct stat sb;
	DIR *dp;
	size_t i;
	int read_err;

	snprintf(dir, sizeof(dir), "%s/commit", r->cfg->fed);
	if ((dp = opendir(dir)) == NULL) {
		log_warn("%s: %m", dir);
		return;
	}
	for (i = 0; i < r->nvms; i++)
		r->vms[i]->seen = false;
	for (i = 0; i < r->nheld; i++)
		r->held[i].seen = false;
	for (;;) {
		bool known = false, unknown = false;

		errno = 0;	/* readdir's NULL is an error only with errno */
		if ((d = readdir(dp)) == NULL)
			break;
		if (d->d_name[0] == '.')
			continue;
		/* a file still being copied in is writable (fedfs shows it
		 * 0644 until it has checked it, then 0444): not yet.  One
		 * gone since it was listed is as if not listed; any other
		 * error (EIO, EINTR through FUSE) says nothing about the
		 * file: what runs for it goes on, and a new one waits for
		 * the next scan */
		if (fstatat(dirfd(dp), d->d_name, &sb, 0) < 0) {
			if (errno == ENOENT)
				continue;
			log_debug("%s/%s: %m (kept as it was)", dir, d->d_name);
			unknown = true;
		} else if (sb.st_mode & 0222) {
			continue;
		}
		for (i = 0; i < r->nvms; i++)
			if (strcmp(r->vms[i]->file, d->d_name) == 0) {
				r->vms[i]->seen = known = true;
				break;
			}
		if (!known) {	/* refused, or to be tried again later */
			struct runner_held *h = runner_held_find(r, d->d_name);

			if (h != NULL) {
				h->seen = true;
				known = h->retry_at == 0 ||
					mono_now() < h->retry_at;
			}
		}
		if (!known && !unknown)
			runner_commit(r, d->d_name);
	}
	read_err = errno;
	closedir(dp);
	if (read_err != 0) {
		/* a partial listing: what it did not reach is not gone */
		log_warn("%s: listing stopped early: %s (nothing withdrawn "
			 "until the next scan)", dir, strerror(read_err));
		return;
	}
	for (i = r->nvms; i-- > 0;)
		if (!r->vms[i]->seen)
			runner_withdraw(r, i);
	/* forget what was held back for a file that is gone (a new file
	 * may reuse the name) */
	for (i = r->nheld; i-- > 0;)
		if (!r->held[i].seen) {
			free(r->held[i].name);
			r->held[i] = r->held[--r->nheld];
		}
}

/* ------------------------------------------------------- new versions */

/*
 * Copy src (a delta in the mount's deltas/) into commit/ as <id>.fedsnap:
 * fedfs checks it on close and commits to it at the authority, and the next
 * scan boots it like any other.  Returns 0, or -1 with e set.
 */
static int
runner_copy_commit(struct runner *r, const char *src, const char *id,
		   struct err *e)
{
	char dst[PATH_MAX], buf[1 << 16];
	int in, out, rc = -1;
	ssize_t n;

	snprintf(dst, sizeof(dst), "%s/commit/%.64s.fedsnap", r->cfg->fed, id);
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0)
		return err_sys(e, "%s", src);
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0644)) < 0) {
		err_sys(e, "%s", dst);
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	if (n != 0)
		err_sys(e, "copying %s", src);
	else
		rc = 0;
	close(in);
	/* fedfs checks the snapshot when the file is closed */
	if (close(out) < 0 && rc == 0)
		rc = err_sys(e, "%s: refused by fedfs", dst);
	if (rc < 0)
		unlink(dst);
	return rc;
}

/* A version we failed to follow (the authority refused or was away) is
 * tried again a minute later, not at every scan. */
static bool
runner_follow_wait(struct runner *r, const char *id)
{
	for (size_t i = 0; i < ARRAY_LEN(r->follow_failed); i++)
		if (strncmp(r->follow_failed[i].id, id, 64) == 0)
			return mono_now() < r->follow_failed[i].retry_at;
	return false;
}

static void
runner_follow_failed(struct runner *r, const char *id)
{
	size_t slot = 0;

	for (size_t i = 0; i < ARRAY_LEN(r->follow_failed); i++)
		if (r->follow_failed[i].retry_at <
		    r->follow_failed[slot].retry_at)
			slot = i;	/* the oldest entry makes room */
	snprintf(r->follow_failed[slot].id, sizeof(r->follow_failed[slot].id),
		 "%.64s", id);
	r->follow_failed[slot].retry_at = mono_now() + RUNNER_FOLLOW_RETRY_S;
}

/*
 * A peer that committed to a service follows its owner: when the mount's
 * services/<host:port> names a newer version than the newest this peer
 * runs, commit to that one too.  The vmrunner boots it at the next scan
 * and, once it is up, hands it the service's host port and stops the old
 * version (runner_vm_up).  fedfs and the authority refuse anything older,
 * so this only ever moves forward.
 */
static void
runner_follow(struct runner *r)
{
	char link[PATH_MAX], target[PATH_MAX], src[PATH_MAX];
	const char *base;
	struct fedsnap s;
	struct err e;
	ssize_t n;
	DIR *dp;

	if (r->cfg->no_follow)
		return;
	/* a listing makes fedfs ask the authority for news (at most every
	 * 2 s) */
	snprintf(link, sizeof(link), "%s/services", r->cfg->fed);
	if ((dp = opendir(link)) != NULL)
		closedir(dp);
	for (size_t i = 0; i < r->nvms; i++) {
		struct vm *v = r->vms[i];
		bool newest = true, known = false;

		/* once per service: from its newest version here */
		for (size_t k = 0; k < r->nvms; k++)
			if (k != i && strcmp(r->vms[k]->service, v->service) == 0 &&
			    r->vms[k]->version > v->version)
				newest = false;
		if (!newest)
			continue;
		snprintf(link, sizeof(link), "%s/services/%s", r->cfg->fed,
			 v->service);
		if ((n = readlink(link, target, sizeof(target) - 1)) < 0)
			continue;
		target[n] = '\0';
		base = strrchr(target, '/');
		base = base ? base + 1 : target;
		if (strlen(base) != 64 + strlen(".fedsnap") ||
		    strcmp(base + 64, ".fedsnap") != 0)
			continue;
		for (size_t k = 0; k < r->nvms; k++)
			if (strncmp(r->vms[k]->id, base, 64) == 0)
				known = true;
		if (known || runner_held_find(r, base) != NULL ||
		    runner_follow_wait(r, base))
			continue;
		snprintf(src, sizeof(src), "%s/deltas/%s", r->cfg->fed, base);
		if (fedsnap_open(src, &s, &e) < 0) {
			log_warn("%s: newer version %.8s..: %s", v->service, base,
				 e.msg);
			continue;
		}
		if (s.m.version > v->version) {
			log_info("%s: following the owner from version %" PRId64
				 " to %" PRId64 " (%.8s..)", v->service,
				 v->version, s.m.version, base);
			if (runner_copy_commit(r, src, base, &e) < 0) {
				log_warn("%s: cannot commit version %" PRId64
					 ": %s (trying again in %.0f s)",
					 v->service, s.m.version, e.msg,
					 RUNNER_FOLLOW_RETRY_S);
				runner_follow_failed(r, base);
			}
		}
		fedsnap_close(&s);
	}
}

/* ---------------------------------------------------------- supervision */

/* v's guest port accepts: map the service's host port to it and report.
 * Returns 0, or -1 if it got no host port or mapping (logged): v stays
 * starting. */
static int
runner_vm_up(struct runner *r, size_t i)
{
	struct vm *v = r->vms[i], *old = runner_find_service_owner(r, v->service);
	struct sockaddr_in ta = { .sin_family = AF_INET,
				  .sin_port = htons(v->guest_port),
				  .sin_addr = vm_guest_addr(v) };
	struct lease l;
	struct err e;
	double boot;
	int fd;

	if (old != NULL && old != v) {
		if (old->version > v->version) {
			log_info("%s: a newer version of %s runs (%s); stopping",
				 v->file, v->service, old->file);
			vm_release(r, v);
			return 0;
		}
		if (relay_map_switch_ns(r->relay, v->service,
					(struct sockaddr *)&ta, sizeof(ta),
					v->netns_fd, &e) < 0) {
			log_error("%s: %s", v->file, e.msg);
			return -1;
		}
		/* the port is the new version's now, after a restart too */
		if (lease_move_port(r->leases, old->id, v->id, &e) < 0)
			log_warn("%s: %s", v->file, e.msg);
		v->host_port = old->host_port;
		v->mapped = true;
		old->mapped = false;
		old->host_port = 0;
		log_info("%s: version %" PRId64 " replaces %s (version %" PRId64
			 ") on host port %u; the old one finishes its "
			 "connections for %d s", v->file, v->version, old->file,
			 old->version, v->host_port, VM_DRAIN_S);
		/* new connections go to the new version; those the relay
		 * holds to the old one go on until they end or it stops */
		for (size_t j = 0; j < r->nvms; j++)
			if (r->vms[j] == old) {
				old->state = VM_DRAINING;
				old->drain_until = mono_now() + VM_DRAIN_S;
				runner_want_report(r, j, false);
			}
	} else if (!v->mapped) {
		if (lease_listen(r->leases, v->id, &fd, &l, &e) < 0) {
			log_error("%s: no host port: %s", v->file, e.msg);
			return -1;
		}
		if (relay_map_add_ns(r->relay, v->service, fd,
				     (struct sockaddr *)&ta, sizeof(ta),
				     v->netns_fd, &e) < 0) {
			close(fd);
			log_error("%s: %s", v->file, e.msg);
			return -1;
		}
		v->host_port = l.port;
		v->mapped = true;
	}
	v->state = VM_UP;
	v->up_since = time(NULL);
	boot = mono_now() - v->boot_t0;
	if (v->qemu)
		log_info("%s: up: %s (version %" PRId64 ") on host port %u -> "
			 "guest port %u, %.2f s after the commit (check and "
			 "unpack %.2f s, namespace %.2f s, memory state load "
			 "%.2f s, then the service answered in %.2f s)",
			 v->file, v->service, v->version, v->host_port,
			 v->guest_port, v->prep_s + v->net_s + boot, v->prep_s,
			 v->net_s, v->resume_s, boot - v->resume_s);
	else
		log_info("%s: up: %s (version %" PRId64 ") on host port %u -> "
			 "guest port %u, %.2f s after the commit (check and "
			 "unpack %.2f s, tap %.2f s, boot %.2f s)", v->file,
			 v->service, v->version, v->host_port, v->guest_port,
			 v->prep_s + v->net_s + boot, v->prep_s, v->net_s, boot);
	/* a restart has no check, unpack or network of its own */
	v->prep_s = v->net_s = 0;
	runner_want_report(r, i, true);
	return 0;
}

/* A superseded VM's drain is over (or it died): what the relay still has
 * open to it is reset, as nothing will come from its deleted tap or
 * namespace, and it is released. */
static void
runner_drain_end(struct runner *r, struct vm *v)
{
	struct err e;

	if (relay_map_reset_old(r->relay, v->service, &e) < 0)
		log_debug("%s: %s", v->file, e.msg);	/* withdrawn since */
	vm_release(r, v);
}

/* What the kernel of v said last before it died: the end of console.log
 * through machine_last_words; "" if it said nothing. */
static void
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

/* v's UML exited (status from waitpid): back off, report down. */
static void
runner_vm_died(struct runner *r, size_t i, int status)
{
	struct vm *v = r->vms[i];
	bool was_up = v->state == VM_UP;
	double up = was_up ? difftime(time(NULL), v->up_since) : 0;
	char words[LAST_WORDS_MAX];
	unsigned delay;

	/* UML's helper processes outlive a killed main process and keep the
	 * COW file locked (the next boot gets EAGAIN): end the whole group */
	vm_kill_group(v->pid);
	v->pid = 0;
	vm_probe_stop(v);	/* else its dead socket keeps poll awake */
	vm_drain_console(v, VM_CONSOLE_LAST);
	if (v->con_fd >= 0) {
		close(v->con_fd);
		v->con_fd = -1;
	}
	if (v->state == VM_STOPPED)
		return;
	if (v->state == VM_DRAINING) {	/* superseded: no restart */
		runner_drain_end(r, v);
		return;
	}
	v->failures = vm_backoff_next(v->failures, up);
	delay = vm_backoff_delay(v->failures);
	v->state = VM_BACKOFF;
	v->up_since = 0;
	v->next_start = mono_now() + delay;
	vm_last_words(v, words, sizeof(words));
	if (v->cg_made && cgroup_oom_kills(&v->cg) > 0)
		log_error("%s: stopped: over its memory limit of %u MiB (the "
			  "kernel's OOM killer ended it); other VMs go on",
			  v->file, vm_mem_limit_mb(r, v));
	log_warn("%s: %s %s %d; restarting in %u s; its last words: %s",
		 v->file, v->qemu ? "QEMU" : "UML",
		 WIFSIGNALED(status) ? "killed by signal" : "exited with",
		 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
		 delay, words[0] ? words : "(none)");
	if (was_up)
		runner_want_report(r, i, false);
}

static void
runner_reap(struct runner *r)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (size_t i = 0; i < r->nvms; i++)
			if (r->vms[i]->pid == pid)
				runner_vm_died(r, i, status);
}

static void
runner_tick(struct runner *r)
{
	double now = mono_now();
	struct err e;

	for (size_t i = 0; i < r->nvms; i++) {
		struct vm *v = r->vms[i];

		switch (v->state) {
		case VM_STARTING:
			if (vm_probe_done(v) || vm_probe_start(v, now)) {
				vm_probe_stop(v);
				/* no host port (the range used up) or no
				 * mapping: try again seconds later, not at
				 * the next probe 10 ms on; a boot that never
				 * gets one ends at its deadline, as a death
				 * (the restart backoff) */
				if (runner_vm_up(r, i) < 0)
					v->next_probe = now + VM_UP_RETRY_S;
			} else if (now > v->boot_deadline) {
				log_warn("%s: guest port %u did not accept within "
					 "%d s", v->file, v->guest_port,
					 VM_BOOT_TIMEOUT);
				vm_probe_stop(v);
				kill(-v->pid, SIGKILL);	/* reaped as a death */
				v->boot_deadline = now + VM_BOOT_TIMEOUT;
			}
			break;
		case VM_DRAINING:
			if (now >= v->drain_until) {
				log_info("%s: stopped, %d s after its newer "
					 "version took over", v->file,
					 VM_DRAIN_S);
				runner_drain_end(r, v);
			}
			break;
		case VM_BACKOFF:
			if (now >= v->next_start) {
				v->restarts++;
				if (vm_spawn(r, v, &e) < 0) {
					log_error("%s: %s", v->file, e.msg);
					v->failures = vm_backoff_next(v->failures, 0);
					v->next_start = now +
						vm_backoff_delay(v->failures);
				}
			}
			break;
		default:
			break;
		}
		if (runner_refresh_due(i, now)) {
			reports[i].pending = reports[i].refresh = true;
			reports[i].next_try = 0;
		}
		if (reports[i].pending && now >= reports[i].next_try)
			runner_report(r, i);
	}
}

static void
runner_write_status(struct runner *r)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	json_t *j = vm_status_json(r->vms, r->nvms, time(NULL));
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/status.json", r->cfg->state);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (j == NULL)
		return;
	for (size_t i = 0; i < r->nvms; i++)
		n += r->vms[i]->state != VM_STOPPED;
	/* what this peer lends, and what of it is taken */
	json_object_set_new(j, "lent", json_pack(
		"{s:i,s:I,s:i,s:i,s:i,s:b,s:s}",
		"mem_mb", (int)r->cfg->lend_mem_mb,
		"mem_used_mb", (json_int_t)runner_mem_in_use(r),
		"max_vms", (int)(r->cfg->max_vms ? r->cfg->max_vms : RUNNER_MAX_VMS),
		"vms", (int)n,
		"cpu_weight", (int)(r->cfg->cpu_weight ? r->cfg->cpu_weight : 100),
		"jailed", !r->cfg->no_jail,
		"uml", r->uml_broken[0] ? r->uml_broken : "ok"));
	if (json_dump_file(j, tmp, JSON_INDENT(1) | JSON_SORT_KEYS) == 0)
		rename(tmp, path);
	json_decref(j);
}

/* ------------------------------------------------- start and shut down */

/* Is /proc/PID/cmdline (len bytes, NUL-separated) a QEMU of ours: the
 * QEMU binary with a disk under our STATE/vms? */
static bool
runner_is_our_qemu(const char *cmd, size_t len, const char *vmdir)
{
	if (strcmp(cmd, QEMU_BINARY) != 0)
		return false;
	for (size_t i = 0; i < len; i += strlen(cmd + i) + 1)
		if (strncmp(cmd + i, "file=", 5) == 0 &&
		    strncmp(cmd + i + 5, vmdir, strlen(vmdir)) == 0)
			return true;
	return false;
}

/*
 * What a previous run left: UMLs recorded in STATE/vms/<id>/pid (killed if
 * the pid still runs a kernel of our cache), and every lease with its tap
 * (deleted and freed).  Everything still committed is then started afresh.
 */
static void
runner_adopt(struct runner *r)
{
	char dir[PATH_MAX], path[PATH_MAX + 300], cmd[PATH_MAX], kdir[PATH_MAX];
	struct lease *ls = NULL;
	struct dirent *d;
	size_t n = 0;
	struct err e;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/vms", r->cfg->state);
	snprintf(kdir, sizeof(kdir), "%s/kernels/", r->cfg->state);
	if ((dp = opendir(dir)) != NULL) {
		while ((d = readdir(dp)) != NULL) {
			FILE *f;
			int pid = 0, fd;
			ssize_t len;

			if (d->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/pid", dir, d->d_name);
			if ((f = fopen(path, "r")) == NULL)
				continue;
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
			unlink(path);
			snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
			if (pid <= 1 || (fd = open(path, O_RDONLY)) < 0)
				continue;
			len = read(fd, cmd, sizeof(cmd) - 1);
			close(fd);
			if (len <= 0)
				continue;
			cmd[len] = '\0';
			if (strncmp(cmd, kdir, strlen(kdir)) != 0 &&
			    !runner_is_our_qemu(cmd, (size_t)len, dir))
				continue;
			log_info("killing VM pid %d left by a previous run", pid);
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			for (int t = 0; t < 50 && kill(pid, 0) == 0; t++)
				usleep(100000);
		}
		closedir(dp);
	}
	/* every jailed process of a previous run is in one of our cgroups:
	 * this kills them all, whatever their pid files say */
	if (cgroup_destroy_tree(r->cg_root, &e) < 0)
		log_warn("cgroups of a previous run: %s", e.msg);
	if (lease_list(r->leases, &ls, &n, &e) < 0) {
		log_warn("%s", e.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char tap[LEASE_IFNAME_MAX], ns[64];

		lease_ifname(&ls[i], tap);
		snprintf(ns, sizeof(ns), "%s%s", r->netns_prefix, tap);
		machine_net_delete(ns);
		if (lease_free(r->leases, ls[i].key, &e) < 0)
			log_warn("%s", e.msg);
	}
	if (n > 0)
		log_info("released %zu leases and namespaces of a previous "
			 "run", n);
	free(ls);
}

static void
runner_shutdown(struct runner *r)
{
	for (size_t i = 0; i < r->nvms; i++) {
		struct vm *v = r->vms[i];
		bool was_up = v->state == VM_UP;

		vm_release(r, v);
		if (was_up)
			runner_want_report(r, i, false);
		rmdir(v->dir);
	}
	runner_write_status(r);
	for (size_t i = 0; i < r->nvms; i++) {
		json_decref(r->vms[i]->qemu_args);
		free(r->vms[i]);
	}
	r->nvms = 0;
	for (size_t i = 0; i < r->nheld; i++)
		free(r->held[i].name);
	free(r->held);
	log_info("stopped: every VM, tap, port and lease released");
}

static void
runner_default_addr(char out[INET_ADDRSTRLEN])
{
	struct ifaddrs *ifa, *i;

	snprintf(out, INET_ADDRSTRLEN, "127.0.0.1");
	if (getifaddrs(&ifa) < 0)
		return;
	for (i = ifa; i != NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET ||
		    (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP) ||
		    strncmp(i->ifa_name, "fed", 3) == 0)
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr,
			  out, INET_ADDRSTRLEN);
		break;
	}
	freeifaddrs(ifa);
}

int
runner_run(const struct runner_config *c, struct err *e)
{
	struct lease_config lc = { .range = c->lease_range,
				   .port_min = c->port_min,
				   .port_max = c->port_max };
	struct relay_config rcfg = { .idle_timeout_s = c->idle_timeout_s };
	struct runner r;
	char path[PATH_MAX];
	sigset_t sigs;
	double next_scan = 0;
	bool dirty = true;

	memset(&r, 0, sizeof(r));
	r.cfg = c;
	r.ino_fd = r.sig_fd = -1;
	if (c->public_addr != NULL)
		snprintf(r.public_addr, sizeof(r.public_addr), "%s",
			 c->public_addr);
	else
		runner_default_addr(r.public_addr);
	if (keyfile_load(c->key_path, r.seed, NULL, e) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/vms", c->state);
	if ((mkdir(c->state, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST))
		return err_sys(e, "%s", path);
	snprintf(path, sizeof(path), "%s/kernels", c->state);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return err_sys(e, "%s", path);
	if (runner_jail_init(&r, e) < 0)
		return -1;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGCHLD);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 ||
	    (r.sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		return err_sys(e, "signalfd");
	if (lease_db_open(c->state, &lc, &r.leases, e) < 0)
		goto bad;
	if (relay_new(&rcfg, &r.relay, e) < 0)
		goto bad;
	runner_adopt(&r);
	runner_probe_host(&r);
	snprintf(path, sizeof(path), "%s/commit", c->fed);
	if ((r.ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(r.ino_fd, path, IN_CLOSE_WRITE | IN_MOVED_TO |
			      IN_MOVED_FROM | IN_DELETE | IN_CREATE) < 0)
		log_warn("inotify on %s: %m (rescanning every %.0f s only)",
			 path, RUNNER_RESCAN_S);
	log_info("watching %s (state %s, public address %s, %u MiB per VM)",
		 path, c->state, r.public_addr, c->mem_mb);

	while (!r.stop) {
		struct signalfd_siginfo si;
		char buf[4096];
		struct pollfd p[2 + 2 * RUNNER_MAX_VMS];
		size_t np = 0, vi[2 * RUNNER_MAX_VMS];
		int timeout = 1000;
		double now = mono_now();
		int ms;

		if (now >= next_scan)
			runner_follow(&r);
		if (dirty || now >= next_scan) {
			runner_scan(&r);
			next_scan = mono_now() + RUNNER_RESCAN_S;
			dirty = false;
		}
		runner_tick(&r);
		runner_write_status(&r);

		p[np].fd = r.sig_fd;
		p[np++].events = POLLIN;
		p[np].fd = r.ino_fd;
		p[np++].events = POLLIN;
		now = mono_now();
		for (size_t i = 0; i < r.nvms; i++) {
			/* a starting VM: wake for its next probe, at most
			 * every VM_PROBE_EVERY_S (seconds apart after it
			 * failed to go up) */
			if (r.vms[i]->state == VM_STARTING) {
				ms = (int)((r.vms[i]->next_probe - now) * 1000);
				if (ms < (int)(VM_PROBE_EVERY_S * 1000))
					ms = (int)(VM_PROBE_EVERY_S * 1000);
				if (ms < timeout)
					timeout = ms;
			}
			if (r.vms[i]->con_fd >= 0) {
				vi[np - 2] = i;
				p[np].fd = r.vms[i]->con_fd;
				p[np++].events = POLLIN;
			}
			if (r.vms[i]->probe_fd >= 0) {	/* runner_tick reads it */
				vi[np - 2] = i;
				p[np].fd = r.vms[i]->probe_fd;
				p[np++].events = POLLOUT;
			}
		}
		if (poll(p, np, timeout) < 0 && errno != EINTR) {
			err_sys(e, "poll");
			break;
		}
		for (size_t k = 2; k < np; k++)
			if (p[k].revents && p[k].events == POLLIN)
				vm_drain_console(r.vms[vi[k - 2]],
						 VM_CONSOLE_TURN);
		if (p[1].revents & POLLIN) {
			while (read(r.ino_fd, buf, sizeof(buf)) > 0)
				;
			dirty = true;
		}
		while (read(r.sig_fd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGCHLD)
				runner_reap(&r);
			else if (si.ssi_signo != SIGPIPE) {
				log_info("signal %u: shutting down", si.ssi_signo);
				r.stop = true;
			}
		}
		runner_reap(&r);	/* SIGCHLDs coalesce */
	}
	runner_shutdown(&r);
	machine_seccomp_free(&r.seccomp);
	relay_free(r.relay);
	lease_db_close(r.leases);
	close(r.ino_fd);
	close(r.sig_fd);
	explicit_bzero(r.seed, sizeof(r.seed));
	return r.stop ? 0 : -1;
bad:
	relay_free(r.relay);
	lease_db_close(r.leases);
	if (r.sig_fd >= 0)
		close(r.sig_fd);
	explicit_bzero(r.seed, sizeof(r.seed));
	return -1;
}
