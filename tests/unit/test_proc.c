/*
 * test_proc.c - common/proc.c: exit statuses, where the child's output
 * goes, its stdin, and that it starts with no signal blocked.
 */
#include <criterion/criterion.h>
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
