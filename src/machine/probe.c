/*
 * probe.c - can this host run this kernel (machine.h)?  A UML kernel that
 * cannot save its processes' FPU state on this CPU (Debian's on AMX), or a
 * damaged kernel file, dies at the first process it starts; the vmrunner
 * asks before it takes a machine to run, and says why in one line.
 *
 * The probe's root is an ext2 image of three entries made with mke2fs -d:
 * /bin/busybox (static), /init, a script that prints PROBE_OK and powers
 * off, and /dev for the console.  Booted read-only, it writes nothing.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proc.h"
#include "machine/machine.h"

#define PROBE_OK "fed-probe: the first process runs"

static const char probe_init[] =
	"#!/bin/busybox sh\n"
	"echo '" PROBE_OK "'\n"
	"/bin/busybox poweroff -f\n";

/* Write the probe's tree under dir/root.  Returns 0/-1. */
static int
probe_stage(const char *dir, char root[PATH_MAX], struct err *e)
{
	char path[PATH_MAX + 16];
	char *cp[] = { "cp", FED_BUSYBOX, path, NULL };
	FILE *f;

	snprintf(root, PATH_MAX, "%s/root", dir);
	snprintf(path, sizeof(path), "%s/bin", root);
	if ((mkdir(root, 0755) < 0 && errno != EEXIST) ||
	    (mkdir(path, 0755) < 0 && errno != EEXIST))
		return err_sys(e, "%s", path);
	snprintf(path, sizeof(path), "%s/dev", root);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return err_sys(e, "%s", path);
	snprintf(path, sizeof(path), "%s/bin/busybox", root);
	if (access(FED_BUSYBOX, X_OK) < 0)
		return err_sys(e, "%s (busybox-static)", FED_BUSYBOX);
	if (proc_run(cp, -1, -1) != 0)
		return err_set(e, "cannot copy %s into %s", FED_BUSYBOX, path);
	snprintf(path, sizeof(path), "%s/init", root);
	if ((f = fopen(path, "w")) == NULL)
		return err_sys(e, "%s", path);
	fputs(probe_init, f);
	if (fclose(f) != 0 || chmod(path, 0755) < 0)
		return err_sys(e, "%s", path);
	return 0;
}

/* The probe's image at dir/probe.img, made once.  Returns 0/-1. */
static int
probe_image(const char *dir, char img[PATH_MAX], struct err *e)
{
	char root[PATH_MAX], tmp[PATH_MAX + 16];
	char *mk[] = { "mke2fs", "-q", "-F", "-t", "ext2", "-d", root, tmp,
		       "8M", NULL };

	snprintf(img, PATH_MAX, "%s/probe.img", dir);
	if (access(img, R_OK) == 0)
		return 0;
	if (probe_stage(dir, root, e) < 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp", img);
	if (proc_run(mk, -1, -1) != 0) {
		unlink(tmp);
		return err_set(e, "mke2fs of the probe's root failed");
	}
	if (rename(tmp, img) < 0)
		return err_sys(e, "rename %s", img);
	return 0;
}

int
machine_probe(const char *kernel, const char *workdir, unsigned mem_mb,
	      unsigned timeout_s, struct err *e)
{
	char img[PATH_MAX], ubd[PATH_MAX + 8], mem[32], words[LAST_WORDS_MAX];
	char *argv[] = { (char *)kernel, ubd, "root=/dev/ubda", "ro",
			 "init=/init", mem, "con=null", "con0=null,fd:1",
			 "ssl=null", "pty.legacy_count=0", "quiet", NULL };
	struct uml_boot b = { .argv = argv, .timeout_s = timeout_s };
	int rc = -1;

	if (probe_image(workdir, img, e) < 0)
		return err_wrap(e, "cannot make the kernel probe");
	/* ubd0r: the image read-only, the probe writes nothing */
	snprintf(ubd, sizeof(ubd), "ubd0r=%s", img);
	snprintf(mem, sizeof(mem), "mem=%uM", mem_mb);
	if (access(kernel, X_OK) < 0)
		return err_sys(e, "kernel %s", kernel);
	if (uml_boot(&b, e) < 0)
		return err_wrap(e, "kernel %s", kernel);
	machine_last_words(b.console, b.console_len, words, sizeof(words));
	if (strstr(b.console, PROBE_OK) != NULL)
		rc = 0;
	else if (b.timed_out)
		err_set(e, "kernel %s did not start its first process within "
			"%u s; its last words: %s", kernel, timeout_s,
			words[0] ? words : "(none)");
	else if (WIFEXITED(b.status) && WEXITSTATUS(b.status) == 127 &&
		 b.console_len == 0)
		err_set(e, "kernel %s could not be run (not an executable "
			"for this host?)", kernel);
	else
		err_set(e, "kernel %s died before its first process ran (%s %d)"
			"; its last words: %s", kernel,
			WIFEXITED(b.status) ? "exit status" : "signal",
			WIFEXITED(b.status) ? WEXITSTATUS(b.status) :
			WTERMSIG(b.status), words[0] ? words : "(none)");
	free(b.console);
	return rc;
}
