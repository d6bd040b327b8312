/*
 * proc.h - running a helper command (ip, qemu-system-x86_64 --version) and
 * waiting for it: the one fork/exec/wait of the owner's tools and the
 * vmrunner.
 */
#ifndef FED_PROC_H
#define FED_PROC_H

/*
 * Run argv (argv[0] searched in PATH) and wait for it.  The child reads
 * /dev/null, writes its output to out_fd and its errors to err_fd (-1:
 * /dev/null) and starts with no signal blocked: a daemon's signalfd mask
 * is not for its helpers.  Returns the exit status (127: could not be
 * run), or -1 if it could not be started or was killed by a signal.
 */
int proc_run(char *const argv[], int out_fd, int err_fd);

/*
 * In a child between fork and exec: close every descriptor from `from` up.
 * A helper gets only what it is handed: descriptors opened without
 * close-on-exec (libcurl's kept-alive sockets, a dup2'd or dup'd fd) would
 * otherwise stay open in it.  Async-signal-safe (one system call).
 */
void proc_close_from(unsigned from);

/*
 * Raise this process's soft limit of open descriptors to its hard limit.
 * The daemons hold several per connection (a relayed session: two sockets
 * and two pipes), and the usual soft limit of 1024 let ~170 idle clients
 * take every relayed port offline.  Quietly does nothing if it cannot.
 */
void proc_raise_nofile(void);

#endif
