/*
 * test_cgroup.c - src/machine/cgroup.c on this host's real cgroups (run as
 * root): limits read back from the kernel's own files, a fork storm
 * stopped by pids.max, a memory hog OOM-killed at its limit and counted,
 * destroy and destroy_tree killing what is left and removing the
 * directories, a leftover emptied and made afresh, bad names and weights
 * refused.
 *
 * Each test's cgroups live under "fedtest-<pid>" (Criterion runs each test
 * in a process of its own), removed by the suite's fini even when an
 * assertion fails.  Every child put in a cgroup has a memory limit, so no
 * test process runs unbounded outside the cgroup it came from.  A host
 * with no usable cgroups fails every test with cgroup_create's message.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/testutil.h"
#include "machine/cgroup.h"

#define MiB (1024 * 1024ull)

/* This test process's tree, "fedtest-<pid>"; set by cg_setup. */
static char top[32];
/* Children spawn_in made, killed by cg_teardown should cgroup.c fail to. */
#define SPAWNED_MAX 8
static pid_t spawned[SPAWNED_MAX];
static int nspawned;

static void
cg_setup(void)
{
	snprintf(top, sizeof(top), "fedtest-%d", (int)getpid());
}

static void
cg_teardown(void)
{
	struct err e;

	for (int i = 0; i < nspawned; i++)
		kill(spawned[i], SIGKILL);
	if (cgroup_destroy_tree(top, &e) < 0)
		cr_log_error("clean-up of %s: %s", top, e.msg);
}

TestSuite(cgroup, .init = cg_setup, .fini = cg_teardown, .timeout = 60);

/* cgroup_create of top/leaf, asserted. */
static void
make(const char *leaf, const struct cg_limits *l, struct cgroup *cg)
{
	char name[CG_NAME_MAX + 1];
	struct err e = { "" };

	snprintf(name, sizeof(name), "%s/%s", top, leaf);
	cr_assert_eq(cgroup_create(name, l, cg, &e), 0, "cgroup_create %s: %s",
		     name, e.msg);
}

/* The first line of file in whichever of cg's directories has it. */
static void
read_ctl(const struct cgroup *cg, const char *file, char *buf, size_t size)
{
	char path[PATH_MAX + 64];
	FILE *f = NULL;

	for (int i = 0; i < cg->ndirs && f == NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s", cg->dirs[i], file);
		f = fopen(path, "r");
	}
	cr_assert(f != NULL, "%s in none of %s's directories", file, cg->name);
	cr_assert(fgets(buf, (int)size, f) != NULL, "%s is empty", path);
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

static void
expect_ctl(const struct cgroup *cg, const char *file, const char *want)
{
	char got[64];

	read_ctl(cg, file, got, sizeof(got));
	cr_expect_str_eq(got, want, "%s of %s: %s, want %s", file, cg->name,
			 got, want);
}

static bool
dir_gone(const char *dir)
{
	struct stat st;

	return stat(dir, &st) < 0 && errno == ENOENT;
}

struct member {
	const struct cgroup *cg;
	pid_t pid;
};

/* Whether m->pid is listed in every cgroup.procs of m->cg, or has ended
 * (it is left to be reaped). */
static bool
joined_or_gone(void *arg)
{
	const struct member *m = arg;
	siginfo_t si = { 0 };

	if (waitid(P_PID, (id_t)m->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	    si.si_pid == m->pid)
		return true;

	for (int i = 0; i < m->cg->ndirs; i++) {
		FILE *f = fopen(m->cg->procs[i], "r");
		bool found = false;
		int pid;

		if (f == NULL)
			return false;
		while (!found && fscanf(f, "%d", &pid) == 1)
			found = pid == m->pid;
		fclose(f);
		if (!found)
			return false;
	}
	return true;
}

/* Fork a child that joins cg and runs body (which must _exit), or exits
 * 100 if it cannot join; wait until the kernel lists it in cg (or it has
 * already ended). */
static pid_t
spawn_in(const struct cgroup *cg, void (*body)(void))
{
	struct member m = { cg, fork() };

	cr_assert(m.pid >= 0, "fork: %s", strerror(errno));
	if (m.pid > 0 && nspawned < SPAWNED_MAX)
		spawned[nspawned++] = m.pid;
	if (m.pid == 0) {
		if (cgroup_join(cg) < 0)
			_exit(100);
		body();
		_exit(0);
	}
	cr_assert(tu_poll(5000, joined_or_gone, &m),
		  "child %d not in %s after 5 s", (int)m.pid, cg->name);
	return m.pid;
}

struct reaping {
	pid_t pid;
	int status;
};

static bool
reaped(void *arg)
{
	struct reaping *r = arg;

	return waitpid(r->pid, &r->status, WNOHANG) == r->pid;
}

/* Reap child pid within ms milliseconds; its wait status. */
static int
reap(pid_t pid, int ms)
{
	struct reaping r = { pid, 0 };

	cr_assert(tu_poll(ms, reaped, &r), "child %d still running after %d ms",
		  (int)pid, ms);
	return r.status;
}

static void
expect_sigkill(int status, const char *what)
{
	cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		  "%s: wait status %#x, want killed by SIGKILL "
		  "(exit %d, signal %d)", what, (unsigned)status,
		  WIFEXITED(status) ? WEXITSTATUS(status) : -1,
		  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void
sleeper(void)
{
	for (;;)
		pause();
}

/* Fork STORM_FORKS children that wait to be killed; exit with how many
 * forks succeeded (255 if one failed for another reason than EAGAIN),
 * after killing and reaping them. */
#define STORM_FORKS 200
static void
fork_storm(void)
{
	pid_t kids[STORM_FORKS];
	int n = 0, odd = 0;

	for (int i = 0; i < STORM_FORKS; i++) {
		pid_t p = fork();

		if (p == 0)
			sleeper();
		if (p > 0)
			kids[n++] = p;
		else if (errno != EAGAIN)
			odd = 1;
	}
	for (int i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	for (int i = 0; i < n; i++)
		waitpid(kids[i], NULL, 0);
	_exit(odd ? 255 : n);
}

/* Touch HOG_BYTES of anonymous memory, a byte a page; exit 0 if allowed. */
#define HOG_BYTES (128 * MiB)
static void
memory_hog(void)
{
	volatile char *p = mmap(NULL, HOG_BYTES, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(101);
	for (size_t off = 0; off < HOG_BYTES; off += 4096)
		p[off] = 1;
	_exit(0);
}

Test(cgroup, create_sets_the_limits)
{
	struct cg_limits l = { .mem_bytes = 64 * MiB, .pids_max = 37,
			       .cpu_weight = 250 };
	struct cgroup cg;
	bool v1;

	make("limits", &l, &cg);
	v1 = cg.kind == CG_V1;
	cr_log_info("cgroup v%d, %d directories, first %s", (int)cg.kind,
		    cg.ndirs, cg.dirs[0]);
	cr_expect_eq(cg.ndirs, v1 ? 3 : 1);
	expect_ctl(&cg, v1 ? "memory.limit_in_bytes" : "memory.max",
		   "67108864");
	expect_ctl(&cg, "pids.max", "37");
	/* 250 * 1024 / 100 */
	expect_ctl(&cg, v1 ? "cpu.shares" : "cpu.weight", v1 ? "2560" : "250");
	cr_expect_eq(cgroup_oom_kills(&cg), 0);
}

Test(cgroup, zero_limits_leave_the_defaults)
{
	struct cg_limits none = { 0 };
	struct cgroup cg;
	bool v1;

	make("none", &none, &cg);
	v1 = cg.kind == CG_V1;
	cr_expect_eq(cg.ndirs, v1 ? 2 : 1, "no cpu directory without a weight");
	expect_ctl(&cg, "pids.max", "max");
	expect_ctl(&cg, v1 ? "memory.limit_in_bytes" : "memory.max",
		   v1 ? "9223372036854771712" : "max");
}

Test(cgroup, pids_max_stops_a_fork_storm)
{
	struct cg_limits l = { .mem_bytes = 64 * MiB, .pids_max = 20 };
	struct cgroup cg;
	struct err e = { "" };
	pid_t kids[30];
	int status, forks;

	make("storm", &l, &cg);
	status = reap(spawn_in(&cg, fork_storm), 20000);
	cr_assert(WIFEXITED(status), "the storm's child: wait status %#x",
		  (unsigned)status);
	forks = WEXITSTATUS(status);
	cr_assert_neq(forks, 100, "the child could not join %s", cg.name);
	cr_assert_neq(forks, 255, "a fork failed with another errno than "
		      "EAGAIN");
	cr_log_info("pids.max 20: %d of %d forks succeeded", forks,
		    STORM_FORKS);
	cr_expect(forks >= 1 && forks < 20, "%d forks of %d succeeded under "
		  "pids.max 20", forks, STORM_FORKS);
	/* the host is unharmed: more processes than the limit, outside it */
	for (int i = 0; i < 30; i++) {
		kids[i] = fork();
		cr_assert(kids[i] >= 0, "fork %d outside the cgroup: %s", i,
			  strerror(errno));
		if (kids[i] == 0)
			_exit(0);
	}
	for (int i = 0; i < 30; i++)
		cr_expect(WIFEXITED(reap(kids[i], 5000)));
	cr_assert_eq(cgroup_destroy(&cg, &e), 0, "%s", e.msg);
}

Test(cgroup, memory_hog_is_oom_killed_and_counted)
{
	struct cg_limits l = { .mem_bytes = 32 * MiB, .pids_max = 20 };
	struct cgroup cg;
	struct err e = { "" };
	uint64_t peak;
	int status;

	make("hog", &l, &cg);
	cr_expect_eq(cgroup_oom_kills(&cg), 0, "a fresh cgroup has no kills");
	status = reap(spawn_in(&cg, memory_hog), 30000);
	cr_assert(!WIFEXITED(status) || WEXITSTATUS(status) != 100,
		  "the child could not join %s", cg.name);
	expect_sigkill(status, "128 MiB touched under a 32 MiB limit");
	cr_expect_geq(cgroup_oom_kills(&cg), 1);
	peak = cgroup_mem_peak(&cg);
	cr_log_info("OOM kills %llu, peak %llu bytes (%.1f MiB)",
		    (unsigned long long)cgroup_oom_kills(&cg),
		    (unsigned long long)peak, (double)peak / MiB);
	cr_expect(peak > 16 * MiB && peak <= 32 * MiB,
		  "peak %llu bytes under a 32 MiB limit",
		  (unsigned long long)peak);
	cr_assert_eq(cgroup_destroy(&cg, &e), 0, "%s", e.msg);
}

Test(cgroup, destroy_kills_what_is_left_and_removes_the_dirs)
{
	struct cg_limits l = { .mem_bytes = 64 * MiB, .pids_max = 20,
			       .cpu_weight = 100 };
	struct cgroup cg;
	struct err e = { "" };
	pid_t pid;

	make("vm", &l, &cg);
	pid = spawn_in(&cg, sleeper);
	cr_assert_eq(cgroup_destroy(&cg, &e), 0, "%s", e.msg);
	expect_sigkill(reap(pid, 5000), "a sleeper in a destroyed cgroup");
	for (int i = 0; i < cg.ndirs; i++)
		cr_expect(dir_gone(cg.dirs[i]), "%s is still there",
			  cg.dirs[i]);
	cr_expect_eq(cgroup_destroy(&cg, &e), 0, "twice: %s", e.msg);
}

Test(cgroup, destroy_tree_removes_nested_cgroups)
{
	struct cg_limits l = { .mem_bytes = 64 * MiB, .pids_max = 20 };
	struct cgroup a, c, b;
	struct err e = { "" };
	char tree[64], parent[PATH_MAX];
	pid_t in_c, in_b;

	make("runner/a", &l, &a);
	make("runner/a/c", &l, &c);
	make("runner/b", &l, &b);
	in_c = spawn_in(&c, sleeper);
	in_b = spawn_in(&b, sleeper);
	snprintf(tree, sizeof(tree), "%s/runner", top);
	cr_assert_eq(cgroup_destroy_tree(tree, &e), 0, "%s", e.msg);
	expect_sigkill(reap(in_c, 5000), "a sleeper in runner/a/c");
	expect_sigkill(reap(in_b, 5000), "a sleeper in runner/b");
	for (int i = 0; i < a.ndirs; i++) {
		cr_expect(dir_gone(a.dirs[i]), "%s is still there", a.dirs[i]);
		cr_expect(dir_gone(b.dirs[i]), "%s is still there", b.dirs[i]);
		snprintf(parent, sizeof(parent), "%s", a.dirs[i]);
		*strrchr(parent, '/') = '\0';
		*strrchr(parent, '/') = '\0';
		cr_expect(!dir_gone(parent), "%s went too", parent);
	}
	snprintf(tree, sizeof(tree), "%s/never-made", top);
	cr_expect_eq(cgroup_destroy_tree(tree, &e), 0, "missing: %s", e.msg);
}

Test(cgroup, a_leftover_is_emptied_and_made_afresh)
{
	struct cg_limits first = { .mem_bytes = 64 * MiB, .pids_max = 10 };
	struct cg_limits second = { .mem_bytes = 48 * MiB, .pids_max = 30 };
	struct cgroup old, cg;
	pid_t pid;

	make("again", &first, &old);
	pid = spawn_in(&old, sleeper);
	make("again", &second, &cg);
	expect_sigkill(reap(pid, 5000), "a process left in the old cgroup");
	expect_ctl(&cg, "pids.max", "30");
	expect_ctl(&cg, cg.kind == CG_V1 ? "memory.limit_in_bytes" :
		   "memory.max", "50331648");
}

Test(cgroup, bad_names_and_weights_are_refused)
{
	static const char *const bad[] = {
		"", "..", "/abs", "a//b", "a/", "fed/../etc", "a b", "a.b",
		"x\ny", "caf\xc3\xa9",
	};
	struct cg_limits l = { .mem_bytes = 64 * MiB };
	struct cgroup cg;
	struct err e;
	char longest[CG_NAME_MAX + 2];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = '\0';
		cr_expect_eq(cgroup_create(bad[i], &l, &cg, &e), -1,
			     "'%s' accepted", bad[i]);
		cr_expect(strncmp(e.msg, "cgroup: ", 8) == 0 &&
			  strstr(e.msg, "name") != NULL,
			  "'%s' refused saying '%s'", bad[i], e.msg);
		e.msg[0] = '\0';
		cr_expect_eq(cgroup_destroy_tree(bad[i], &e), -1,
			     "destroy_tree '%s' accepted", bad[i]);
		cr_expect_neq(e.msg[0], '\0');
	}
	/* CG_NAME_MAX bytes is the longest name; one more is refused */
	memset(longest, 'a', sizeof(longest));
	memcpy(longest, top, strlen(top));
	longest[strlen(top)] = '/';
	longest[CG_NAME_MAX] = '\0';
	cr_expect_eq(cgroup_create(longest, &l, &cg, &e), 0, "%s", e.msg);
	longest[CG_NAME_MAX] = 'a';
	longest[CG_NAME_MAX + 1] = '\0';
	cr_expect_eq(cgroup_create(longest, &l, &cg, &e), -1);
	cr_log_info("too long: %s", e.msg);
	l.cpu_weight = CG_WEIGHT_MAX + 1;
	snprintf(longest, sizeof(longest), "%s/heavy", top);
	cr_expect_eq(cgroup_create(longest, &l, &cg, &e), -1);
	cr_expect(strstr(e.msg, "cpu weight") != NULL, "%s", e.msg);
}
