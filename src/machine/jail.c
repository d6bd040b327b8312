/*
 * jail.c - the plan of a machine's jail, and the child that carries it out
 * (jail.h says what the jail is).
 *
 * The child is made with a raw clone(2) into new mount, pid, ipc and uts
 * namespaces; it is pid 1 of its pid namespace, so when the machine's
 * process ends, every process it left there is killed by the kernel.  It
 * then: takes its descriptors, joins its cgroup and network namespace,
 * makes every mount private, lays out the root tmpfs as planned,
 * pivot_root()s into it and drops the old root, sets hostname and rlimits,
 * drops to its uid and gid, sets NO_NEW_PRIVS, loads the seccomp filter and
 * executes the program with a clean environment.  A step that fails writes
 * its number and errno on a close-on-exec pipe, so the parent can say
 * which and why; an exec that succeeds closes the pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "machine/jail.h"

/* ------------------------------------------------------------ the plan */

static bool
jail_simple_name(const char *s)
{
	if (s == NULL || s[0] == '\0' || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0 || strlen(s) > NAME_MAX)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && *s != '.' && *s != '_' &&
		    *s != '-')
			return false;
	return true;
}

/* Append an operation; false when the plan is full or a path too long. */
static bool
jail_op(struct jail_plan *pl, enum jail_op_kind k, const char *rel,
	const char *src, mode_t mode, dev_t dev)
{
	struct jail_op *o;
	size_t rl;

	if (pl->nops >= JAIL_OPS_MAX)
		return false;
	o = &pl->ops[pl->nops];
	rl = strlen(pl->root);
	if (src == NULL)
		src = "";
	if (rl + strlen(rel) >= sizeof(o->path) || strlen(src) >= sizeof(o->src))
		return false;
	memcpy(o->path, pl->root, rl);
	memcpy(o->path + rl, rel, strlen(rel) + 1);
	memcpy(o->src, src, strlen(src) + 1);
	o->kind = k;
	o->mode = mode;
	o->dev = dev;
	pl->nops++;
	return true;
}

/* The root tmpfs and /dev, /tmp, /vm in it. */
static bool
jail_plan_base(const struct jail_params *p, struct jail_plan *pl)
{
	char data[64];

	snprintf(data, sizeof(data), "size=%um,nr_inodes=1024,mode=0755",
		 p->tmp_mb ? p->tmp_mb : 16);
	return jail_op(pl, JOP_MOUNT_TMPFS, "", data, 0, 0) &&
	       jail_op(pl, JOP_MKDIR, "/dev", NULL, 0755, 0) &&
	       jail_op(pl, JOP_MKNOD, "/dev/null", NULL, S_IFCHR | 0666,
		       makedev(1, 3)) &&
	       jail_op(pl, JOP_MKNOD, "/dev/zero", NULL, S_IFCHR | 0666,
		       makedev(1, 5)) &&
	       jail_op(pl, JOP_MKNOD, "/dev/random", NULL, S_IFCHR | 0666,
		       makedev(1, 8)) &&
	       jail_op(pl, JOP_MKNOD, "/dev/urandom", NULL, S_IFCHR | 0666,
		       makedev(1, 9)) &&
	       (!p->tun ||
		(jail_op(pl, JOP_MKDIR, "/dev/net", NULL, 0755, 0) &&
		 jail_op(pl, JOP_MKNOD, "/dev/net/tun", NULL, S_IFCHR | 0666,
			 makedev(10, 200)))) &&
	       jail_op(pl, JOP_MKDIR, "/tmp", NULL, 01777, 0) &&
	       /* where programs that ignore TMPDIR put temporary files */
	       jail_op(pl, JOP_MKDIR, "/var", NULL, 0755, 0) &&
	       jail_op(pl, JOP_SYMLINK, "/var/tmp", "../tmp", 0, 0) &&
	       jail_op(pl, JOP_MKDIR, JAIL_VM_DIR, NULL, 0755, 0);
}

/* /usr read-only, and the merged-/usr links the dynamic loader expects. */
static bool
jail_plan_usr(struct jail_plan *pl)
{
	return jail_op(pl, JOP_MKDIR, "/usr", NULL, 0755, 0) &&
	       jail_op(pl, JOP_BIND_RO, "/usr", "/usr", 0, 0) &&
	       jail_op(pl, JOP_SYMLINK, "/lib", "usr/lib", 0, 0) &&
	       jail_op(pl, JOP_SYMLINK, "/lib64", "usr/lib64", 0, 0) &&
	       jail_op(pl, JOP_SYMLINK, "/bin", "usr/bin", 0, 0);
}

static int
jail_plan_args(const struct jail_params *p, struct jail_plan *pl,
	       struct err *e)
{
	size_t n;

	for (n = 0; p->argv[n] != NULL; n++) {
		if (n >= JAIL_ARGS_MAX)
			return err_set(e, "jail: more than %d arguments",
				       JAIL_ARGS_MAX);
		if ((size_t)snprintf(pl->args[n], sizeof(pl->args[n]), "%s",
				     p->argv[n]) >= sizeof(pl->args[n]))
			return err_set(e, "jail: argument %zu too long", n);
		pl->argv[n] = pl->args[n];
	}
	pl->argv[n] = NULL;
	pl->envp[0] = "PATH=/usr/bin";
	pl->envp[1] = "HOME=/tmp";
	pl->envp[2] = "TMPDIR=/tmp";
	pl->envp[3] = NULL;
	return 0;
}

int
jail_plan(const struct jail_params *p, struct jail_plan *pl, struct err *e)
{
	memset(pl, 0, sizeof(*pl));
	pl->netns_fd = -1;
	if (p->uid == 0 || p->gid == 0)
		return err_set(e, "jail: a machine never runs as uid or gid 0");
	if (p->root == NULL || p->root[0] != '/' || strstr(p->root, "/..") ||
	    strlen(p->root) > PATH_MAX / 2)
		return err_set(e, "jail: the root must be an absolute path");
	if (p->argv == NULL || p->argv[0] == NULL || p->argv[0][0] != '/')
		return err_set(e, "jail: the program must be an absolute path");
	snprintf(pl->root, sizeof(pl->root), "%s", p->root);
	pl->uid = p->uid;
	pl->gid = p->gid;
	pl->fsize = p->fsize;
	pl->nofile = p->nofile ? p->nofile : 1024;
	pl->thp_off = p->thp_off;
	pl->fixed_brk = p->fixed_brk;
	snprintf(pl->hostname, sizeof(pl->hostname), "%s",
		 p->hostname ? p->hostname : "fed-vm");
	if (!jail_plan_base(p, pl) || (p->usr && !jail_plan_usr(pl)))
		return err_set(e, "jail: the plan does not fit");
	for (size_t i = 0; i < p->nbinds; i++) {
		const struct jail_bind *b = &p->binds[i];
		char rel[NAME_MAX + 8];

		if (!jail_simple_name(b->name) || b->host == NULL ||
		    b->host[0] != '/')
			return err_set(e, "jail: bad file '%s' for %s",
				       b->name ? b->name : "", JAIL_VM_DIR);
		snprintf(rel, sizeof(rel), JAIL_VM_DIR "/%s", b->name);
		if (!jail_op(pl, JOP_TOUCH, rel, NULL, 0600, 0) ||
		    !jail_op(pl, b->writable ? JOP_BIND : JOP_BIND_RO, rel,
			     b->host, 0, 0))
			return err_set(e, "jail: the plan does not fit");
	}
	return jail_plan_args(p, pl, e);
}

/* ----------------------------------------------------------- the child */

/* What the child tells the parent when a step fails. */
struct jail_fail {
	int step;
	int err;
	int op;		/* JS_OP: which */
};

enum jail_step {
	JS_FDS = 1, JS_CGROUP, JS_NETNS, JS_PRIVATE, JS_OP, JS_PIVOT,
	JS_HOSTNAME, JS_RLIMIT, JS_IDS, JS_NNP, JS_SECCOMP, JS_EXEC,
};

static const char *const step_names[] = {
	"", "descriptors", "cgroup", "network namespace", "private mounts",
	"lay out the root", "pivot_root", "hostname", "rlimits",
	"uid and gid", "no_new_privs", "seccomp filter", "exec",
};

static void __attribute__((noreturn))
jail_die_op(int fd, int step, int op)
{
	struct jail_fail f = { step, errno, op };
	ssize_t n = write(fd, &f, sizeof(f));

	(void)n;
	_exit(126);
}

static void __attribute__((noreturn))
jail_die(int fd, int step)
{
	jail_die_op(fd, step, -1);
}

/* fds[i] onto i for every i, in two moves so that none is overwritten. */
static int
jail_fds(const int *fds, unsigned nfds)
{
	int high[JAIL_FDS_MAX];

	for (unsigned i = 0; i < nfds; i++)
		if ((high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64)) < 0)
			return -1;
	for (unsigned i = 0; i < nfds; i++)
		if (dup2(high[i], (int)i) < 0)
			return -1;
	return 0;
}

static int
jail_do_op(const struct jail_op *o)
{
	int fd;

	switch (o->kind) {
	case JOP_MOUNT_TMPFS:
		return mount("fed-jail", o->path, "tmpfs", MS_NOSUID, o->src);
	case JOP_MKDIR:
		return mkdir(o->path, o->mode) < 0 && errno != EEXIST ? -1 :
		       chmod(o->path, o->mode);
	case JOP_MKNOD:
		return mknod(o->path, o->mode, o->dev) < 0 ? -1 :
		       chmod(o->path, o->mode & 07777);
	case JOP_TOUCH:
		if ((fd = open(o->path, O_WRONLY | O_CREAT | O_CLOEXEC,
			       o->mode)) < 0)
			return -1;
		return close(fd);
	case JOP_BIND:
		return mount(o->src, o->path, NULL, MS_BIND, NULL);
	case JOP_BIND_RO:
		if (mount(o->src, o->path, NULL, MS_BIND | MS_REC, NULL) < 0)
			return -1;
		return mount(NULL, o->path, NULL, MS_BIND | MS_REMOUNT |
			     MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
	case JOP_SYMLINK:
		return symlink(o->src, o->path);
	}
	errno = EINVAL;
	return -1;
}

/* Into the planned root: pivot_root(".", ".") stacks the old root on the
 * new one, and the lazy unmount drops it (and every host mount with it). */
static int
jail_pivot(const char *root)
{
	if (chdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0)
		return -1;
	return chdir("/");
}

static int
jail_limits(const struct jail_plan *pl)
{
	struct rlimit core = { 0, 0 }, nofile = { pl->nofile, pl->nofile },
		      fsize = { pl->fsize, pl->fsize };

	if (setrlimit(RLIMIT_CORE, &core) < 0 ||
	    setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return -1;
	return pl->fsize ? setrlimit(RLIMIT_FSIZE, &fsize) : 0;
}

static void __attribute__((noreturn))
jail_child(const struct jail_plan *pl, const int *fds, unsigned nfds, int efd)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (jail_fds(fds, nfds) < 0)
		jail_die(efd, JS_FDS);
	if (pl->cg != NULL && cgroup_join(pl->cg) < 0)
		jail_die(efd, JS_CGROUP);
	if ((pl->netns_fd >= 0 ? setns(pl->netns_fd, CLONE_NEWNET) :
	     unshare(CLONE_NEWNET)) < 0)
		jail_die(efd, JS_NETNS);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		jail_die(efd, JS_PRIVATE);
	for (size_t i = 0; i < pl->nops; i++)
		if (jail_do_op(&pl->ops[i]) < 0)
			jail_die_op(efd, JS_OP, (int)i);
	if (jail_pivot(pl->root) < 0)
		jail_die(efd, JS_PIVOT);
	if (sethostname(pl->hostname, strlen(pl->hostname)) < 0)
		jail_die(efd, JS_HOSTNAME);
	if (jail_limits(pl) < 0)
		jail_die(efd, JS_RLIMIT);
	if (pl->thp_off)
		prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	if (pl->fixed_brk && personality(ADDR_NO_RANDOMIZE) < 0)
		jail_die(efd, JS_RLIMIT);
	if (setgroups(0, NULL) < 0 ||
	    setresgid(pl->gid, pl->gid, pl->gid) < 0 ||
	    setresuid(pl->uid, pl->uid, pl->uid) < 0)
		jail_die(efd, JS_IDS);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		jail_die(efd, JS_NNP);
	if (pl->seccomp != NULL &&
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, pl->seccomp) < 0)
		jail_die(efd, JS_SECCOMP);
	/* the error pipe is close-on-exec already; so is everything past
	 * the handed descriptors from now on */
	syscall(SYS_close_range, nfds, ~0U, CLOSE_RANGE_CLOEXEC);
	execve(pl->argv[0], pl->argv, pl->envp);
	jail_die(efd, JS_EXEC);
}

pid_t
jail_spawn(const struct jail_plan *pl, const int *fds, unsigned nfds,
	   struct err *e)
{
	struct jail_fail f;
	int ep[2], status;
	ssize_t n;
	pid_t pid;

	if (nfds > JAIL_FDS_MAX)
		return err_set(e, "jail: at most %d descriptors", JAIL_FDS_MAX);
	if (pipe2(ep, O_CLOEXEC) < 0)
		return err_sys(e, "jail: pipe");
	pid = (pid_t)syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWPID |
			     CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		jail_child(pl, fds, nfds, ep[1]);
	close(ep[1]);
	if (pid < 0) {
		close(ep[0]);
		return err_sys(e, "jail: clone");
	}
	while ((n = read(ep[0], &f, sizeof(f))) < 0 && errno == EINTR)
		;
	close(ep[0]);
	if (n == 0)
		return pid;	/* executed: the pipe closed with the exec */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(f) || f.step <= 0 ||
	    f.step >= (int)(sizeof(step_names) / sizeof(*step_names)))
		return err_set(e, "jail: the child died while setting up");
	errno = f.err;
	if (f.step == JS_OP && f.op >= 0 && (size_t)f.op < pl->nops)
		return err_sys(e, "jail: %s: %s", step_names[f.step],
			       pl->ops[f.op].path);
	return err_sys(e, "jail: %s", step_names[f.step]);
}
