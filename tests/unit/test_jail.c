/*
 * test_jail.c - machine/jail.c: the plan is checked (no uid 0, an absolute
 * root and program, simple /vm names) and holds nothing of the host but
 * what it is given; and a real jail (as root): the program runs as its
 * uid with no capability, NO_NEW_PRIVS and the filter, sees only its tmpfs
 * root (/dev, /tmp, /usr, /vm, the links), its bound file, a clean
 * environment and no descriptor but those it was handed; a failing step
 * says which.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/testutil.h"
#include "machine/jail.h"

#define UID 2000900

static char *const sh_argv[] = { "/usr/bin/true", NULL };

static struct jail_params
params(const char *root, const struct jail_bind *b, size_t nb)
{
	return (struct jail_params){ .root = root, .uid = UID, .gid = UID,
				     .binds = b, .nbinds = nb, .usr = true,
				     .tmp_mb = 8, .argv = sh_argv };
}

Test(jail_plan, refuses_what_would_not_be_a_jail)
{
	static struct jail_plan pl;
	struct jail_bind bad[] = { { "/etc/passwd", "../x", false } };
	struct jail_params p = params("/tmp/j", NULL, 0);
	struct err e;

	p.uid = 0;
	cr_assert_eq(jail_plan(&p, &pl, &e), -1);
	cr_assert(strstr(e.msg, "uid or gid 0") != NULL, "%s", e.msg);
	p = params("relative", NULL, 0);
	cr_assert_eq(jail_plan(&p, &pl, &e), -1);
	p = params("/tmp/j", bad, 1);
	cr_assert_eq(jail_plan(&p, &pl, &e), -1);
	cr_assert(strstr(e.msg, "bad file") != NULL, "%s", e.msg);
	p = params("/tmp/j", NULL, 0);
	p.argv = (char *const[]){ "true", NULL };
	cr_assert_eq(jail_plan(&p, &pl, &e), -1, "a program found in PATH");
}

Test(jail_plan, holds_only_what_it_is_given)
{
	static struct jail_plan pl;
	struct jail_bind b[] = { { "/etc/hostname", "disk.img", true } };
	struct jail_params p = params("/tmp/j", b, 1);
	size_t binds = 0;
	struct err e;

	p.tun = true;
	cr_assert_eq(jail_plan(&p, &pl, &e), 0, "%s", e.msg);
	cr_assert_eq(pl.uid, UID);
	for (size_t i = 0; i < pl.nops; i++) {
		const struct jail_op *o = &pl.ops[i];

		cr_assert(strncmp(o->path, "/tmp/j", 6) == 0, "%s", o->path);
		if (o->kind == JOP_BIND || o->kind == JOP_BIND_RO) {
			binds++;
			cr_assert(strcmp(o->src, "/usr") == 0 ||
				  strcmp(o->src, "/etc/hostname") == 0,
				  "binds %s", o->src);
			cr_assert_eq(o->kind == JOP_BIND,
				     strcmp(o->src, "/etc/hostname") == 0,
				     "only the writable file is writable");
		}
		if (o->kind == JOP_MKNOD)
			cr_assert(o->dev == makedev(1, 3) || o->dev == makedev(1, 5) ||
				  o->dev == makedev(1, 8) || o->dev == makedev(1, 9) ||
				  o->dev == makedev(10, 200), "%s", o->path);
	}
	cr_assert_eq(binds, 2);
	cr_assert_str_eq(pl.argv[0], "/usr/bin/true");
	cr_assert_null(pl.argv[1]);
	cr_assert_str_eq(pl.envp[0], "PATH=/usr/bin");
	cr_assert_null(pl.envp[3]);
}

/* Run `sh -c script` in a jail with file bound as /vm/f; its stdout. */
static int
run_jailed(const char *script, const char *file, char *out, size_t size,
	   struct err *e)
{
	static struct jail_plan pl;
	char *dir = tu_tmpdir(), *root = tu_path(dir, "root");
	char *const argv[] = { "/usr/bin/sh", "-c", (char *)script, NULL };
	struct jail_bind b[] = { { file, "f", false } };
	struct jail_params p = params(root, b, 1);
	struct machine_seccomp sc;
	int pfd[2], nul = open("/dev/null", O_RDWR), status;
	ssize_t n, got = 0;
	pid_t pid;

	cr_assert_eq(mkdir(root, 0755), 0);
	p.argv = argv;
	cr_assert_eq(jail_plan(&p, &pl, e), 0, "%s", e->msg);
	cr_assert_eq(machine_seccomp_build(&sc, e), 0, "%s", e->msg);
	pl.seccomp = &sc.prog;
	cr_assert_eq(pipe(pfd), 0);
	pid = jail_spawn(&pl, (int[]){ nul, pfd[1], pfd[1] }, 3, e);
	close(pfd[1]);
	while (pid > 0 && got + 1 < (ssize_t)size &&
	       (n = read(pfd[0], out + got, size - 1 - (size_t)got)) > 0)
		got += n;
	out[got] = '\0';
	close(pfd[0]);
	close(nul);
	if (pid > 0)
		waitpid(pid, &status, 0);
	machine_seccomp_free(&sc);
	rmdir(root);
	tu_rmtree(dir);
	return pid > 0 ? 0 : -1;
}

Test(jail_spawn, the_program_runs_contained)
{
	char out[4096];
	struct err e;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	cr_assert_eq(run_jailed("id -u; id -g; ls -A /; ls /vm; cat /vm/f; "
				"echo \"$HOME $TMPDIR\"; ls /proc/self/fd 2>&1 | "
				"head -n 1; hostname; "
				"touch /vm/f 2>/dev/null || echo ro; "
				"unshare -U true 2>/dev/null || echo nounshare",
				"/etc/hostname", out, sizeof(out), &e), 0,
		     "%s", e.msg);
	cr_assert(strstr(out, "2000900\n2000900\n") == out, "%s", out);
	cr_assert(strstr(out, "\nbin\ndev\nlib\nlib64\ntmp\nusr\nvar\nvm\nf\n") != NULL,
		  "only its own root: %s", out);
	cr_assert(strstr(out, "/tmp /tmp\n") != NULL, "clean environment: %s", out);
	cr_assert(strstr(out, "fed-vm\n") != NULL, "its hostname: %s", out);
	cr_assert(strstr(out, "\nro\n") != NULL, "a read-only bind: %s", out);
	cr_assert(strstr(out, "\nnounshare\n") != NULL,
		  "no new namespace from inside: %s", out);
}

Test(jail_spawn, a_failing_step_says_which)
{
	static struct jail_plan pl;
	struct jail_bind b[] = { { "/nonexistent-fed-file", "f", false } };
	char *dir = tu_tmpdir(), *root = tu_path(dir, "root");
	struct jail_params p = params(root, b, 1);
	int nul = open("/dev/null", O_RDWR);
	struct err e;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	cr_assert_eq(mkdir(root, 0755), 0);
	cr_assert_eq(jail_plan(&p, &pl, &e), 0, "%s", e.msg);
	cr_assert_eq(jail_spawn(&pl, (int[]){ nul, nul, nul }, 3, &e), -1);
	cr_assert(strstr(e.msg, "jail: lay out the root: ") != NULL &&
		  strstr(e.msg, "/vm/f") != NULL, "%s", e.msg);
	close(nul);
	rmdir(root);
	tu_rmtree(dir);
}
