/*
 * commit.c - what appears in and leaves MOUNTPOINT/commit/.  A new file is
 * taken through one pipeline of named steps, each of which refuses it for
 * good (a check failed: one log line, not tried again while the file stays)
 * or for now (a passing reason: tried again after a backoff):
 *
 *   commit_admit    read its manifest; not a duplicate, not older than a
 *                   version running here; room in what the peer lends
 *   commit_check    can this host run its machine; payload hash; kernel
 *                   and base trusted; kernel cached (and probed)
 *   commit_unpack   the delta into STATE/vms/<id>/ over its base
 *   commit_net      a lease, the jail's uid, its own network namespace
 *   commit_spawn    the machine started in its jail
 *
 * A file that is gone is withdrawn: its VM stopped and everything it held
 * released.  runner_scan does both, once per scan of commit/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/delta.h"
#include "common/fedsnap.h"
#include "common/hex.h"
#include "common/log.h"

#include "vmrunner/runner.h"

struct runner_held *
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

struct vm *
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
unsigned long
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

/* One commit/ file on its way through the pipeline. */
struct commit {
	const char *name;		/* the entry in commit/ */
	char path[PATH_MAX];		/* MOUNTPOINT/commit/<name> */
	char hex[2 * SHA256_LEN + 1];	/* its snapshot's id */
	char svc[MANIFEST_HOST_MAX + 8];	/* its service, "host:port" */
	enum machine_kind kind;
	bool kept;			/* QEMU: unpacked by an earlier commit */
	struct fedsnap s;		/* open from commit_admit on */
	double t0;			/* monotonic: the pipeline began */
	struct vm *v;			/* commit_admit's; NULL once it runs */
};

/* Is there a reason in c's manifest alone not to run it here: the same
 * snapshot runs already, its service cannot be mapped, or a newer version
 * of it runs?  Refuses (or remembers) it and returns true if so. */
static bool
commit_pointless(struct runner *r, struct commit *c)
{
	for (size_t i = 0; i < r->nvms; i++)
		if (strcmp(r->vms[i]->id, c->hex) == 0) {
			runner_refuse(r, c->name, "snapshot %.8s.. already "
				      "runs as %s", c->hex, r->vms[i]->file);
			return true;
		}
	/* the relay names its mapping by the service: a longer "host:port"
	 * (a signed manifest may carry a 253-byte DNS name) could never be
	 * mapped, and the VM would boot, answer and never be up */
	if (strlen(c->svc) >= RELAY_NAME_MAX) {
		runner_refuse(r, c->name, "service %.40s.. is %zu bytes long; "
			      "the relay maps names of at most %d", c->svc,
			      strlen(c->svc), RELAY_NAME_MAX - 1);
		return true;
	}
	/* older than a version of its service here: it would boot only to be
	 * stopped once it answered (runner_vm_up).  Said once, not at every
	 * scan: not tried again while the file stays */
	for (size_t i = 0; i < r->nvms; i++) {
		const struct vm *o = r->vms[i];

		if (o->state != VM_STOPPED && o->version > c->s.m.version &&
		    strcmp(o->service, c->svc) == 0) {
			log_info("%s: not booted: %s runs version %" PRId64
				 " of %s, newer than its %" PRId64, c->name,
				 o->file, o->version, c->svc, c->s.m.version);
			runner_remember(r, c->name);
			return true;
		}
	}
	return false;
}

/* The VM c will be, from its manifest: nothing held yet. */
static struct vm *
commit_vm_new(struct runner *r, const struct commit *c)
{
	const struct manifest *m = &c->s.m;
	char bhex[2 * SHA256_LEN + 1];
	struct vm *v = calloc(1, sizeof(*v));

	if (v == NULL)
		return NULL;
	v->con_fd = v->log_fd = v->netns_fd = v->probe_fd = -1;
	v->kind = c->kind;
	snprintf(v->file, sizeof(v->file), "%s", c->name);
	memcpy(v->id, c->hex, sizeof(v->id));
	snprintf(v->service, sizeof(v->service), "%s", c->svc);
	v->version = m->version;
	v->guest_port = m->guest_port;
	v->seen = true;
	snprintf(v->dir, sizeof(v->dir), "%s/vms/%s", r->cfg->state, c->hex);
	hex_encode(m->base, SHA256_LEN, bhex);
	snprintf(v->base_path, sizeof(v->base_path), "%s/bases/%.64s",
		 r->cfg->fed, bhex);
	memcpy(v->kernel_sha, m->kernel, SHA256_LEN);
	if (c->kind == MACHINE_QEMU) {
		v->qemu_mem_mb = m->qemu.mem_mb;
		v->qemu_args = json_incref(m->qemu.args);
	}
	return v;
}

/* What of the egress c's owner asks for this peer lends (v->egress); what
 * it does not is said, and the VM runs without it. */
static void
commit_egress(struct runner *r, const struct commit *c, struct vm *v)
{
	char want[EGRESS_LIST_MAX + 1], got[EGRESS_LIST_MAX + 1];

	egress_grant(&c->s.m.egress, &r->cfg->egress_allow, &v->egress);
	if (c->s.m.egress.n == 0)
		return;
	egress_format(&c->s.m.egress, want, sizeof(want));
	egress_format(&v->egress, got, sizeof(got));
	if (v->egress.n < c->s.m.egress.n)
		log_warn("%s: its owner asks for egress %s; this peer lends %s of "
			 "it (--egress-allow), so it runs with that", c->name,
			 want, got);
	else
		log_info("%s: egress %s granted", c->name, got);
}

/* Step 1: read c's manifest; is it worth running, of a kind run here, and
 * is there room for it in what the peer lends?  Returns 0/-1. */
static int
commit_admit(struct runner *r, struct commit *c)
{
	struct err e;

	if (fedsnap_open(c->path, &c->s, &e) < 0) {
		runner_refuse(r, c->name, "%s", e.msg);
		return -1;
	}
	hex_encode(c->s.id, SHA256_LEN, c->hex);
	snprintf(c->svc, sizeof(c->svc), "%s:%u", c->s.m.host, c->s.m.port);
	if (commit_pointless(r, c))
		return -1;
	if (machine_kind_parse(c->s.m.machine, &c->kind) < 0) {
		runner_refuse(r, c->name, "machine '%s' is not run here",
			      c->s.m.machine);
		return -1;
	}
	if (!runner_admit(r, c->name, (c->kind == MACHINE_QEMU ?
				       c->s.m.qemu.mem_mb : r->cfg->mem_mb) +
			  VM_MEM_OVERHEAD_MB))
		return -1;
	if ((c->v = commit_vm_new(r, c)) == NULL) {
		log_error("%s: out of memory", c->name);
		return -1;
	}
	commit_egress(r, c, c->v);
	return 0;
}

/* Can this host run c's machine at all?  Asked before anything is read or
 * run.  Returns 0, or -1 (refused). */
static int
commit_check_machine(struct runner *r, struct commit *c)
{
	struct err e;

	if (c->kind == MACHINE_UML) {
		if (r->uml_broken[0] == '\0')
			return 0;
		runner_refuse(r, c->name, "this host cannot run UML machines: "
			      "%s", r->uml_broken);
		return -1;
	}
	if (r->qemu_version[0] == '\0' &&
	    qemu_local_version(r->qemu_version, &e) < 0) {
		r->qemu_version[0] = '\0';
		runner_refuse(r, c->name, "a running-state snapshot, but %s",
			      e.msg);
		return -1;
	}
	if (qemu_check(&c->s.m.qemu, r->qemu_version, &e) < 0) {
		runner_refuse(r, c->name, "%s", e.msg);
		return -1;
	}
	return 0;
}

/* Is sha (c's kind `what`) in the authority's list trusted, and not
 * revoked?  Refuses c and returns false if not. */
static bool
commit_trusted(struct runner *r, const struct commit *c, json_t *trusted,
	       const char *what, const uint8_t sha[SHA256_LEN])
{
	char hex[2 * SHA256_LEN + 1];
	const char *why;

	runner_trusted(trusted, sha, what, &why);
	if (why == NULL)
		return true;
	hex_encode(sha, SHA256_LEN, hex);
	runner_refuse(r, c->name, "%s %.8s.. %s", what, hex, why);
	return false;
}

/* Are c's kernel and base trusted, and not revoked?  Returns 0, or -1
 * (refused, or the authority away: tried at the next scan). */
static int
commit_check_trust(struct runner *r, struct commit *c)
{
	json_t *trusted = NULL;
	struct err e;
	int rc;

	if (runner_fetch_trusted(r, &trusted, &e) < 0) {
		log_warn("%s: cannot check trust (%s); will retry", c->name,
			 e.msg);
		return -1;
	}
	rc = commit_trusted(r, c, trusted, "kernel", c->s.m.kernel) &&
	     commit_trusted(r, c, trusted, "base", c->s.m.base) ? 0 : -1;
	json_decref(trusted);
	return rc;
}

/* Step 2: the machine, the payload's hash, trust, and the kernel (cached,
 * hashed, probed; a QEMU kernel object split).  Returns 0/-1. */
static int
commit_check(struct runner *r, struct commit *c)
{
	struct vm *v = c->v;
	struct err e;

	if (commit_check_machine(r, c) < 0)
		return -1;
	/* the payload is hashed here, before anything else, so a damaged
	 * one is refused in one clear line; a QEMU snapshot unpacked by an
	 * earlier commit (from chunks each verified then) does not read its
	 * payload again, and skips this */
	c->kept = c->kind == MACHINE_QEMU && runner_unpacked_kept(r, c->hex);
	if (!c->kept && fedsnap_verify_payload(&c->s, &e) < 0) {
		runner_refuse(r, c->name, "%s%s", e.msg, c->kind == MACHINE_QEMU ?
			      " (payload of disk delta and memory state)" : "");
		return -1;
	}
	if (commit_check_trust(r, c) < 0)
		return -1;
	if (runner_cache_kernel(r, v->kernel_sha, v->kernel_path, &e) < 0) {
		runner_later(r, c->name, "%s", e.msg);
		return -1;
	}
	if (c->kind == MACHINE_UML &&
	    runner_kernel_runs(r, v->kernel_sha, v->kernel_path, &e) < 0) {
		runner_refuse(r, c->name, "%s", e.msg);
		return -1;
	}
	if (c->kind == MACHINE_QEMU && runner_split_qkernel(r, v, &e) < 0) {
		runner_later(r, c->name, "%s", e.msg);
		return -1;
	}
	return 0;
}

/* A QEMU snapshot's disk, device state and memory into v->dir, unless an
 * earlier commit left them complete there.  Returns 0/-1 (e set). */
static int
commit_unpack_qemu(struct commit *c, struct err *e)
{
	struct vm *v = c->v;
	char disk[PATH_MAX], state[PATH_MAX], ram[PATH_MAX],
	     mark[PATH_MAX + 16];
	struct delta_machine machine = {
		.state_path = state, .state_size = c->s.m.qemu.state_size,
		.ram_path = ram, .ram_size = (uint64_t)c->s.m.qemu.mem_mb << 20,
	};
	int fd;

	snprintf(disk, sizeof(disk), "%s/disk.raw", v->dir);
	snprintf(state, sizeof(state), "%s/state.bin", v->dir);
	snprintf(ram, sizeof(ram), "%s/ram.img", v->dir);
	snprintf(mark, sizeof(mark), "%s/%s", v->dir, VM_UNPACKED);
	if (c->kept) {
		utimensat(AT_FDCWD, mark, NULL, 0);	/* used now */
		log_info("%s: disk and memory state unpacked by an earlier "
			 "commit of %.8s..", c->name, c->hex);
		return 0;
	}
	if (delta_unpack_raw(c->s.fd, c->s.payload_offset, &c->s.m.delta,
			     v->base_path, disk, &machine, NULL, e) < 0)
		return -1;
	if ((fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		       0600)) >= 0)
		close(fd);
	return 0;
}

/* Step 3: the delta into STATE/vms/<id>/: a COW over the base (UML), or
 * a raw disk with its running state (QEMU).  Returns 0/-1. */
static int
commit_unpack(struct runner *r, struct commit *c)
{
	struct vm *v = c->v;
	char cow[PATH_MAX];
	struct err e;
	int rc;

	if (mkdir(v->dir, 0700) < 0 && errno != EEXIST) {
		log_error("%s: %s: %m", c->name, v->dir);
		return -1;
	}
	if (c->kind == MACHINE_QEMU) {
		rc = commit_unpack_qemu(c, &e);
	} else {
		snprintf(cow, sizeof(cow), "%s/disk.cow", v->dir);
		rc = delta_unpack(c->s.fd, c->s.payload_offset, &c->s.m.delta,
				  v->base_path, cow, NULL, &e);
	}
	if (rc < 0)
		runner_later(r, c->name, "unpack: %s", e.msg);
	return rc;
}

/* Step 4: a lease (the host port's record), then the jail's uid and the
 * VM's own network namespace.  Returns 0/-1. */
static int
commit_net(struct runner *r, struct commit *c)
{
	struct vm *v = c->v;
	double t0;
	struct err e;

	if (lease_alloc(r->leases, v->id, &v->lease, &e) < 0) {
		log_error("%s: %s", c->name, e.msg);
		return -1;
	}
	v->leased = true;
	lease_ifname(&v->lease, v->tap);
	v->prep_s = mono_now() - c->t0;
	t0 = mono_now();
	if (runner_vm_net(r, v, &e) < 0) {
		log_error("%s: %s", c->name, e.msg);
		return -1;
	}
	v->net_s = mono_now() - t0;
	return 0;
}

/* Step 5: the machine started in its jail, and the VM supervised from
 * now on.  Returns 0/-1. */
static int
commit_spawn(struct runner *r, struct commit *c)
{
	struct err e;

	if (vm_spawn(r, c->v, &e) < 0) {
		log_error("%s: %s", c->name, e.msg);
		return -1;
	}
	r->vms[r->nvms++] = c->v;
	c->v = NULL;
	runner_held_drop(r, c->name);
	return 0;
}

/* Whatever the pipeline took and did not hand to a running VM, given
 * back. */
static void
commit_end(struct runner *r, struct commit *c)
{
	struct vm *v = c->v;

	if (v != NULL) {
		if (v->leased)
			vm_release(r, v);
		else if (v->kind == MACHINE_QEMU)
			vm_remove_files(v);
		json_decref(v->qemu_args);
		free(v);
	}
	fedsnap_close(&c->s);
}

/*
 * A new file in commit/, through the pipeline above.  A file that fails a
 * check is refused for good (one log line); one that fails for a passing
 * reason is tried again: the authority unreachable, at the next scan; a
 * kernel or base that cannot be read or unpacked, after a backoff
 * (runner_later).
 */
static void
runner_commit(struct runner *r, const char *name)
{
	struct commit c = { .name = name, .t0 = mono_now() };

	if (r->nvms >= RUNNER_MAX_VMS) {
		log_warn("%s: %d VMs already, not starting another", name,
			 RUNNER_MAX_VMS);
		return;
	}
	c.s.fd = -1;
	snprintf(c.path, sizeof(c.path), "%s/commit/%s", r->cfg->fed, name);
	if (commit_admit(r, &c) == 0 && commit_check(r, &c) == 0 &&
	    commit_unpack(r, &c) == 0 && commit_net(r, &c) == 0)
		commit_spawn(r, &c);
	commit_end(r, &c);
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

	bool qemu = v->kind == MACHINE_QEMU;

	log_info("%s: withdrawn: stopping %s", v->file, v->service);
	vm_release(r, v);
	rmdir(v->dir);
	json_decref(v->qemu_args);
	free(v);
	r->vms[i] = r->vms[r->nvms - 1];
	r->nvms--;
	if (qemu)
		runner_prune_unpacked(r);
}

void
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
