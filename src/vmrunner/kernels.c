/*
 * kernels.c - the vmrunner's kernel cache and probes: a snapshot's kernel
 * is copied out of fedfs into STATE/kernels/<sha256> (hashed on the way,
 * and again before every boot: the cache is a file a root process could
 * change), a QEMU kernel object is split once into its kernel and initrd,
 * and a UML kernel is probed before its first boot (can this host run it?
 * a Debian UML kernel dies at its first process on a CPU with AMX).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/log.h"

#include "vmrunner/runner.h"

/* Is the cached kernel at path still the one whose SHA-256 is sha?  Asked
 * before every boot: the cache is a file a root process could change.
 * Returns 0, or -1 with e saying it is not (and the copy removed). */
int
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

/* Boot kernel path once on the probe's root in dir; a failure is asked
 * once more.  The verdict is kept for the vmrunner's life (for its start-up
 * kernel: every UML snapshot refused): a broken kernel fails again at once,
 * and a boot that failed for a passing reason (seen once on a loaded host:
 * "Unable to mount root fs" from the probe's own image) does not refuse
 * them all.  Returns 0/-1 (e set). */
static int
kernel_probe(const char *path, const char *dir, struct err *e)
{
	if (machine_probe(path, dir, RUNNER_PROBE_MEM_MB,
			  RUNNER_PROBE_TIMEOUT_S, e) == 0)
		return 0;
	log_warn("probing kernel %s: %s; probing it once more", path, e->msg);
	return machine_probe(path, dir, RUNNER_PROBE_MEM_MB,
			     RUNNER_PROBE_TIMEOUT_S, e);
}

/* Can this host run the UML kernel at path (SHA-256 sha)?  Probed before
 * its first boot, remembered after.  Returns 0, or -1 with e saying why. */
int
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
	if (kernel_probe(path, dir, e) < 0) {
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
void
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

/* Copy MOUNTPOINT/kernels/<hex> into STATE/kernels/<hex> (0755), checking
 * its SHA-256 on the way, unless the cache has it.  Returns 0/-1. */
int
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

/* The QEMU kernel object in the cache (v->kernel_path, hash-checked when
 * copied in) becomes v->qobj_path, and the files QEMU boots are named
 * STATE/kernels/<sha>.vmlinuz and .initrd: made from it by
 * runner_qkernel_fresh before each boot.  Returns 0/-1. */
int
runner_split_qkernel(struct runner *r, struct vm *v, struct err *e)
{
	(void)r;
	(void)e;
	snprintf(v->qobj_path, sizeof(v->qobj_path), "%s", v->kernel_path);
	snprintf(v->kernel_path, sizeof(v->kernel_path), "%.4000s.vmlinuz",
		 v->qobj_path);
	snprintf(v->initrd_path, sizeof(v->initrd_path), "%.4000s.initrd",
		 v->qobj_path);
	return 0;
}

/* Before each QEMU boot, as vm_kernel_intact before each UML one: the
 * object hashed again, and its kernel and initrd split out of it afresh,
 * so what QEMU boots is the trusted object's bytes, whatever became of
 * the files split at an earlier boot.  Returns 0/-1. */
int
runner_qkernel_fresh(const struct vm *v, struct err *e)
{
	if (vm_kernel_intact(v->qobj_path, v->kernel_sha, e) < 0)
		return -1;
	return qkernel_split(v->qobj_path, v->kernel_path, v->initrd_path, e);
}
