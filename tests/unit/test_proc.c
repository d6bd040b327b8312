/*
 * test_proc.c - common/proc.c: exit statuses, where the child's output
 * goes, its stdin, that it starts with no signal blocked and that it
 * inherits no descriptor but 0-2.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/proc.h"

/* Run `sh -c script` with stdout and stderr into temporary files; their
 * first line into out and err. */
static int
run_sh(const char *script, char out[64], char err[64])
{
	char *argv[] = { "sh", "-c", (char *)script, NULL };
	FILE *o = tmpfile(), *e = tmpfile();
	int rc;

	cr_assert(o != NULL && e != NULL);
	rc = proc_run(argv, fileno(o), fileno(e));
	rewind(o);
	rewind(e);
	if (fgets(out, 64, o) == NULL)
		out[0] = '\0';
	if (fgets(err, 64, e) == NULL)
		err[0] = '\0';
	fclose(o);
	fclose(e);
	return rc;
}

Test(proc, exit_status_and_output)
{
	char out[64], err[64];

	cr_assert_eq(run_sh("echo hi; echo oops >&2; exit 3", out, err), 3);
	cr_assert_str_eq(out, "hi\n");
	cr_assert_str_eq(err, "oops\n");
}

Test(proc, quiet_by_default)
{
	char *argv[] = { "sh", "-c", "echo not seen; echo nor this >&2", NULL };

	cr_assert_eq(proc_run(argv, -1, -1), 0);
}

Test(proc, stdin_is_dev_null)
{
	char out[64], err[64];

	cr_assert_eq(run_sh("if read x; then echo data; else echo eof; fi",
			    out, err), 0);
	cr_assert_str_eq(out, "eof\n");
}

Test(proc, not_found_is_127)
{
	char *argv[] = { "fed-no-such-command", NULL };

	cr_assert_eq(proc_run(argv, -1, -1), 127);
}

Test(proc, killed_is_minus_one)
{
	char out[64], err[64];

	cr_assert_eq(run_sh("kill -KILL $$", out, err), -1);
}

/* A daemon blocks signals for its signalfd; its helpers must not. */
Test(proc, no_signal_blocked)
{
	char out[64], err[64];
	sigset_t term, old;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	cr_assert_eq(sigprocmask(SIG_BLOCK, &term, &old), 0);
	cr_assert_eq(run_sh("kill -TERM $$; echo survived", out, err), -1);
	sigprocmask(SIG_SETMASK, &old, NULL);
	cr_assert_str_eq(out, "");
}

/* A daemon's descriptors opened without close-on-exec (libcurl's kept-alive
 * sockets) are not its helpers': the child has 0, 1 and 2, nothing else
 * (run_sh's own output files, not close-on-exec either, included). */
Test(proc, only_stdio_inherited)
{
	char out[64], err[64];
	int fd = open("/dev/null", O_RDONLY), high;

	cr_assert(fd >= 3);
	cr_assert((high = fcntl(fd, F_DUPFD, 200)) >= 200);
	/* the shell's own descriptors, listed by ls (a child of it) */
	cr_assert_eq(run_sh("ls -C /proc/$$/fd; true", out, err), 0, "%s", err);
	cr_assert_str_eq(out, "0  1  2\n");
	close(fd);
	close(high);
}
