/*
 * proc.c - run a helper command and wait for it (proc.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proc.h"

void
proc_close_from(unsigned from)
{
	/* glibc's close_range is a plain system call, unlike a loop over
	 * /proc/self/fd (opendir allocates) */
	close_range(from, ~0U, 0);
}

int
proc_run(char *const argv[], int out_fd, int err_fd)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(out_fd >= 0 ? out_fd : nul, 1);
			dup2(err_fd >= 0 ? err_fd : nul, 2);
		}
		proc_close_from(3);
		execvp(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void
proc_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}
