/*
 * test_machine.c - src/machine: a dead kernel's last words (the AMX panic,
 * an out-of-memory, a console with no cause, hostile bytes, bounds), a boot
 * whose console and time are bounded, and an import disk that holds its
 * tree (read back with e2fsprogs' debugfs), and the UML command line.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "lib/testutil.h"
#include "machine/machine.h"

static void
words_of(const char *console, char *out, size_t size)
{
	machine_last_words(console, strlen(console), out, size);
}

Test(last_words, amx_panic_names_the_ptrace_error_then_the_panic)
{
	const char *c =
		"Linux version 6.1.0 ...\n"
		"Run /init as init process\n"
		"userspace - ptrace set fp regs failed, errno = 14\n"
		"Kernel panic - not syncing: Attempted to kill init! "
		"exitcode=0x0000000b\n"
		"CPU: 0 PID: 1 Comm: init Not tainted\n"
		"Stack:\n";
	char w[LAST_WORDS_MAX];

	words_of(c, w, sizeof(w));
	cr_assert_str_eq(w, "userspace - ptrace set fp regs failed, errno = 14"
			 " / Kernel panic - not syncing: Attempted to kill "
			 "init! exitcode=0x0000000b");
}

Test(last_words, out_of_memory)
{
	const char *c = "Memory: 40448K/169300K available\n"
			"Kernel panic - not syncing: System is deadlocked on "
			"memory\n\n";
	char w[LAST_WORDS_MAX];

	words_of(c, w, sizeof(w));
	cr_assert_str_eq(w, "Kernel panic - not syncing: System is deadlocked "
			 "on memory");
}

Test(last_words, no_cause_gives_the_last_two_lines)
{
	char w[LAST_WORDS_MAX];

	words_of("one\ntwo\r\n\nthree  \n\n", w, sizeof(w));
	cr_assert_str_eq(w, "two / three");
	words_of("", w, sizeof(w));
	cr_assert_str_eq(w, "");
	words_of("only", w, sizeof(w));
	cr_assert_str_eq(w, "only");
}

Test(last_words, hostile_bytes_and_long_lines_are_tamed)
{
	char c[2048], w[LAST_WORDS_MAX];

	memset(c, 'x', sizeof(c) - 1);
	c[sizeof(c) - 1] = '\0';
	memcpy(c, "\x1b[31mKernel panic\x07", 18);
	words_of(c, w, sizeof(w));
	cr_assert(strlen(w) <= 180, "one line is quoted to 180 bytes");
	for (const char *p = w; *p; p++)
		cr_assert(*p >= 0x20 && *p < 0x7f, "byte %d", *p);
	cr_assert(strncmp(w, "?[31mKernel panic?", 18) == 0, "%s", w);
	words_of("a\nb\n", w, 3);
	cr_assert_str_eq(w, "a ");	/* cut to the room given */
}

Test(uml_boot, console_captured_and_exit_status)
{
	char *argv[] = { "/bin/sh", "-c", "echo hello; echo oops >&2; exit 3",
			 NULL };
	struct uml_boot b = { .argv = argv, .timeout_s = 10 };
	struct err e;

	cr_assert_eq(uml_boot(&b, &e), 0, "%s", e.msg);
	cr_assert_str_eq(b.console, "hello\noops\n");
	cr_assert(!b.timed_out);
	cr_assert(WIFEXITED(b.status) && WEXITSTATUS(b.status) == 3);
	free(b.console);
}

Test(uml_boot, a_hung_kernel_and_its_helpers_are_killed_at_the_deadline)
{
	/* the helper keeps the console open after its parent is killed:
	 * the whole process group must go */
	char *argv[] = { "/bin/sh", "-c", "sleep 3017 & echo started; wait",
			 NULL };
	struct uml_boot b = { .argv = argv, .timeout_s = 1 };
	struct err e;

	cr_assert_eq(uml_boot(&b, &e), 0, "%s", e.msg);
	cr_assert(b.timed_out);
	cr_assert_str_eq(b.console, "started\n");
	cr_assert(WIFSIGNALED(b.status));
	/* SIGKILL is sent, not yet delivered, when kill() returns: the
	 * helper is gone within moments, not at once */
	cr_assert_eq(system("for i in $(seq 200); do pgrep -f '^sleep 3017$' "
			    ">/dev/null || exit 0; sleep 0.01; done; exit 1"), 0,
		     "the helper outlived the boot by 2 s");
	free(b.console);
}

Test(import_disk, holds_the_tree)
{
	char *dir = tu_tmpdir(), *root = tu_path(dir, "root"),
	     *files = tu_path(root, "files"), *etc = tu_path(files, "etc"),
	     *motd = tu_path(etc, "motd"), *img = tu_path(dir, "import.img"),
	     cmd[1024], out[64] = "";
	struct err e;
	FILE *p;

	cr_assert_eq(mkdir(root, 0755), 0);
	cr_assert_eq(mkdir(files, 0700), 0);
	cr_assert_eq(mkdir(etc, 0755), 0);
	tu_write_file(motd, "imported\n", 9);
	cr_assert_eq(chmod(motd, 0600), 0);
	cr_assert_eq(import_disk_make(root, img, &e), 0, "%s", e.msg);
	snprintf(cmd, sizeof(cmd), "debugfs -R 'cat /files/etc/motd' %s "
		 "2>/dev/null", img);
	cr_assert((p = popen(cmd, "r")) != NULL);
	cr_assert(fgets(out, sizeof(out), p) != NULL);
	pclose(p);
	cr_assert_str_eq(out, "imported\n");
	snprintf(cmd, sizeof(cmd), "debugfs -R 'stat /files/etc/motd' %s "
		 "2>/dev/null | grep -q 'Mode:  0600'", img);
	cr_assert_eq(system(cmd), 0, "the file's mode is kept");
	tu_rmtree(dir);
}

Test(import_disk, refuses_a_tree_that_is_not_there)
{
	struct err e;

	cr_assert_eq(import_disk_make("/nonexistent-fed-tree", "/tmp/x.img",
				      &e), -1);
	cr_assert(strstr(e.msg, "/nonexistent-fed-tree") != NULL, "%s", e.msg);
}

/* ------------------------------------------------ the UML command line */

static int
argv_has(char **argv, const char *word)
{
	for (char **a = argv; *a; a++)
		if (strcmp(*a, word) == 0)
			return 1;
	return 0;
}

static int
argv_count(char **argv)
{
	int n = 0;

	while (argv[n])
		n++;
	return n;
}

Test(machine, uml_command_line_with_network)
{
	struct uml_params p = {
		.kernel = "/s/kernels/abc", .cow = "/s/vms/id/disk.cow",
		.base = "/fed/bases/def", .mem_mb = 96, .tap = "fed0a4d0002",
		.guest_addr = "10.77.0.2", .prefix = 30, .gateway = "10.77.0.1",
		.hostfs = MACHINE_NOHOSTFS,
	};
	char **argv = uml_argv(&p);

	cr_assert_not_null(argv);
	cr_expect_str_eq(argv[0], "/s/kernels/abc");
	cr_expect_str_eq(argv[1], "ubd0=/s/vms/id/disk.cow,/fed/bases/def");
	cr_expect(argv_has(argv, "root=/dev/ubda"));
	cr_expect(argv_has(argv, "rw"));
	cr_expect(argv_has(argv, "init=/init"));
	cr_expect(argv_has(argv, "mem=96M"));
	cr_expect(argv_has(argv, "con=null"));
	cr_expect(argv_has(argv, "con0=null,fd:1"));
	cr_expect(argv_has(argv, "pty.legacy_count=0"));
	cr_expect(argv_has(argv, "vec0:transport=tap,ifname=fed0a4d0002"));
	cr_expect(argv_has(argv, "fed.ip=10.77.0.2/30"));
	cr_expect(argv_has(argv, "fed.gw=10.77.0.1"));
	cr_expect(argv_has(argv, "hostfs=/nonexistent-fed-hostfs"));
	cr_expect(!argv_has(argv, "fed.import=/"));
	cr_expect_eq(argv_count(argv), 15);
	uml_argv_free(argv);
}

Test(machine, uml_command_line_without_network)
{
	struct uml_params p = {
		.kernel = "k", .cow = "c", .base = "b", .mem_mb = 64,
		.hostfs = MACHINE_NOHOSTFS,
	};
	char **argv = uml_argv(&p);

	cr_assert_not_null(argv);
	for (char **a = argv; *a; a++) {
		cr_expect(strncmp(*a, "vec0", 4) != 0);
		cr_expect(strncmp(*a, "fed.ip", 6) != 0);
	}
	cr_expect_eq(argv_count(argv), 12);
	uml_argv_free(argv);
}

Test(machine, uml_command_line_refuses_missing_fields)
{
	struct uml_params p = {
		.kernel = "k", .cow = "c", .base = "b", .mem_mb = 64,
		.hostfs = MACHINE_NOHOSTFS,
	};

	p.hostfs = NULL;	/* never boot a guest with the host's files */
	cr_expect_null(uml_argv(&p));
	p.hostfs = MACHINE_NOHOSTFS;
	p.mem_mb = 0;
	cr_expect_null(uml_argv(&p));
	p.mem_mb = 64;
	p.tap = "fed0";		/* a tap without an address */
	cr_expect_null(uml_argv(&p));
	uml_argv_free(NULL);
}
