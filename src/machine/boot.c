/*
 * boot.c - boot a UML kernel to the end with its console captured and its
 * time bounded (machine.h): the owner's import boot and the kernel probe.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proc.h"
#include "common/timefmt.h"
#include "machine/jail.h"
#include "machine/machine.h"

/* In the child: a session of its own (UML and its helpers are one process
 * group to kill), the console on the pipe, nothing else open. */
static void __attribute__((noreturn))
boot_child(char *const *argv, int wfd)
{
	int nul = open("/dev/null", O_RDONLY);
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (nul >= 0)
		dup2(nul, 0);
	dup2(wfd, 1);
	dup2(wfd, 2);
	proc_close_from(3);
	execv(argv[0], argv);
	_exit(127);
}

/* The jailed kernel: /dev/null, then the console pipe as 1 and 2. */
static pid_t
boot_jailed(const struct jail_plan *pl, int wfd, struct err *e)
{
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pid_t pid;

	if (nul < 0)
		return err_sys(e, "/dev/null");
	pid = jail_spawn(pl, (int[]){ nul, wfd, wfd }, 3, e);
	close(nul);
	return pid;
}

/* Append what the console pipe holds; false at EOF (every writer gone). */
static bool
boot_read(struct uml_boot *b, int fd)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	if (b->console_len + (size_t)n > UML_CONSOLE_MAX)
		n = (ssize_t)(UML_CONSOLE_MAX - b->console_len);
	memcpy(b->console + b->console_len, chunk, (size_t)n);
	b->console_len += (size_t)n;
	b->console[b->console_len] = '\0';
	return true;
}

int
uml_boot(struct uml_boot *b, struct err *e)
{
	double deadline = mono_now() + b->timeout_s;
	int pfd[2];
	pid_t pid;

	b->console_len = 0;
	b->timed_out = false;
	b->status = 0;
	if ((b->console = malloc(UML_CONSOLE_MAX + 1)) == NULL)
		return err_set(e, "out of memory");
	b->console[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return err_sys(e, "pipe");
	if (b->jail != NULL)
		pid = boot_jailed(b->jail, pfd[1], e);
	else if ((pid = fork()) == 0)
		boot_child(b->argv, pfd[1]);
	else if (pid < 0)
		err_sys(e, "fork");
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return -1;
	}
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		double left = deadline - mono_now();

		if (left <= 0) {
			b->timed_out = true;
			break;
		}
		if (poll(&p, 1, (int)(left * 1000) + 1) < 0 && errno != EINTR)
			break;
		if (p.revents && !boot_read(b, pfd[0]))
			break;
	}
	close(pfd[0]);
	kill(-pid, SIGKILL);	/* always: nothing of it may outlive us */
	while (waitpid(pid, &b->status, 0) < 0 && errno == EINTR)
		;
	return 0;
}
