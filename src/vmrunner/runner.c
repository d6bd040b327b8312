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
 * the tens of VMs a peer runs.  runner.h says which file does what.
 *
 * A VM's pid is recorded in STATE/vms/<id>/pid and every jailed process is
 * in a cgroup under this runner's, so a vmrunner that died is cleaned up
 * after by the next one (runner_adopt).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/keyfile.h"
#include "common/log.h"

#include "vmrunner/runner.h"

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
			runner_want_report(r, v, false);
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

/* The loop's poll set: the signalfd, inotify, and each VM's console pipe
 * and guest-port probe; vi[k - 2] is the VM of p[k].  Returns how many,
 * and sets *timeout_ms to when the next probe of a starting VM is due. */
static size_t
runner_poll_set(struct runner *r, struct pollfd *p, size_t *vi,
		int *timeout_ms)
{
	double now = mono_now();
	size_t np = 0;
	int ms;

	p[np].fd = r->sig_fd;
	p[np++].events = POLLIN;
	p[np].fd = r->ino_fd;
	p[np++].events = POLLIN;
	*timeout_ms = 1000;
	for (size_t i = 0; i < r->nvms; i++) {
		/* a starting VM: wake for its next probe, at most every
		 * VM_PROBE_EVERY_S (seconds apart after it failed to go up) */
		if (r->vms[i]->state == VM_STARTING) {
			ms = (int)((r->vms[i]->next_probe - now) * 1000);
			if (ms < (int)(VM_PROBE_EVERY_S * 1000))
				ms = (int)(VM_PROBE_EVERY_S * 1000);
			if (ms < *timeout_ms)
				*timeout_ms = ms;
		}
		if (r->vms[i]->con_fd >= 0) {
			vi[np - 2] = i;
			p[np].fd = r->vms[i]->con_fd;
			p[np++].events = POLLIN;
		}
		if (r->vms[i]->probe_fd >= 0) {	/* runner_tick reads it */
			vi[np - 2] = i;
			p[np].fd = r->vms[i]->probe_fd;
			p[np++].events = POLLOUT;
		}
	}
	return np;
}

/* One turn of the loop: scan (when due or told by inotify), move the VMs
 * along, write status.json, then wait for something to do.  Returns 0, or
 * -1 if poll failed (e set). */
static int
runner_turn(struct runner *r, double *next_scan, bool *dirty, struct err *e)
{
	struct signalfd_siginfo si;
	char buf[4096];
	struct pollfd p[2 + 2 * RUNNER_MAX_VMS];
	size_t np, vi[2 * RUNNER_MAX_VMS];
	int timeout;

	if (mono_now() >= *next_scan)
		runner_follow(r);
	if (*dirty || mono_now() >= *next_scan) {
		runner_scan(r);
		*next_scan = mono_now() + RUNNER_RESCAN_S;
		*dirty = false;
	}
	runner_tick(r);
	runner_write_status(r);
	np = runner_poll_set(r, p, vi, &timeout);
	if (poll(p, np, timeout) < 0 && errno != EINTR)
		return err_sys(e, "poll");
	for (size_t k = 2; k < np; k++)
		if (p[k].revents && p[k].events == POLLIN)
			vm_drain_console(r->vms[vi[k - 2]], VM_CONSOLE_TURN);
	if (p[1].revents & POLLIN) {
		while (read(r->ino_fd, buf, sizeof(buf)) > 0)
			;
		*dirty = true;
	}
	while (read(r->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			runner_reap(r);
		} else if (si.ssi_signo != SIGPIPE) {
			log_info("signal %u: shutting down", si.ssi_signo);
			r->stop = true;
		}
	}
	runner_reap(r);	/* SIGCHLDs coalesce */
	return 0;
}

/* What runner_run needs before its loop: the peer's key and address, the
 * STATE directories, the jails' names and filter, signals as a signalfd,
 * the lease database and the relay; then what a previous run left is
 * cleaned up, the kernel probed, and commit/ watched.  Returns 0/-1. */
static int
runner_start(struct runner *r, const struct runner_config *c, struct err *e)
{
	struct lease_config lc = { .range = c->lease_range,
				   .port_min = c->port_min,
				   .port_max = c->port_max };
	struct relay_config rcfg = { .idle_timeout_s = c->idle_timeout_s };
	static const int sigs_of_ours[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP,
					    SIGPIPE };
	char path[PATH_MAX];
	sigset_t sigs;

	r->cfg = c;
	r->ino_fd = r->sig_fd = -1;
	if (c->public_addr != NULL)
		snprintf(r->public_addr, sizeof(r->public_addr), "%s",
			 c->public_addr);
	else
		runner_default_addr(r->public_addr);
	if (keyfile_load(c->key_path, r->seed, NULL, e) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/vms", c->state);
	if ((mkdir(c->state, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST))
		return err_sys(e, "%s", path);
	snprintf(path, sizeof(path), "%s/kernels", c->state);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return err_sys(e, "%s", path);
	if (runner_jail_init(r, e) < 0)
		return -1;
	sigemptyset(&sigs);
	for (size_t i = 0; i < sizeof(sigs_of_ours) / sizeof(sigs_of_ours[0]); i++)
		sigaddset(&sigs, sigs_of_ours[i]);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 ||
	    (r->sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		return err_sys(e, "signalfd");
	if (lease_db_open(c->state, &lc, &r->leases, e) < 0 ||
	    relay_new(&rcfg, &r->relay, e) < 0)
		return -1;
	runner_adopt(r);
	runner_probe_host(r);
	snprintf(path, sizeof(path), "%s/commit", c->fed);
	if ((r->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(r->ino_fd, path, IN_CLOSE_WRITE | IN_MOVED_TO |
			      IN_MOVED_FROM | IN_DELETE | IN_CREATE) < 0)
		log_warn("inotify on %s: %m (rescanning every %.0f s only)",
			 path, RUNNER_RESCAN_S);
	log_info("watching %s (state %s, public address %s, %u MiB per VM)",
		 path, c->state, r->public_addr, c->mem_mb);
	return 0;
}

/* Everything runner_start took, given back. */
static void
runner_free(struct runner *r)
{
	if (r->cfg != NULL && r->cfg->egress_allow.n > 0 && r->uplink_table[0])
		machine_uplink_host_delete(r->uplink_table);
	machine_seccomp_free(&r->seccomp);
	relay_free(r->relay);
	lease_db_close(r->leases);
	if (r->ino_fd >= 0)
		close(r->ino_fd);
	if (r->sig_fd >= 0)
		close(r->sig_fd);
	explicit_bzero(r->seed, sizeof(r->seed));
}

int
runner_run(const struct runner_config *c, struct err *e)
{
	struct runner r;
	double next_scan = 0;
	bool dirty = true;
	int rc = -1;

	memset(&r, 0, sizeof(r));
	if (runner_start(&r, c, e) == 0) {
		while (!r.stop && runner_turn(&r, &next_scan, &dirty, e) == 0)
			;
		runner_shutdown(&r);
		rc = r.stop ? 0 : -1;
	}
	runner_free(&r);
	return rc;
}
