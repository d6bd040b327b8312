/*
 * cgroup.c - one cgroup per VM (cgroup.h): make it, limit it, put a
 * process in it, read what it used, kill it and remove it.
 *
 * The layout of the host is found again on every call that takes a name
 * (cg_layout_find): v2 has one tree at /sys/fs/cgroup, v1 one tree per
 * controller (/sys/fs/cgroup/memory, .../pids, .../cpu), so a VM's cgroup
 * is one directory on v2 and two or three on v1, all kept in struct cgroup
 * with their cgroup.procs paths, so that cgroup_join, called between fork
 * and exec, only opens and writes.
 *
 * Removal is the same walk everywhere (cg_remove_tree): children first,
 * SIGKILL every pid listed in each cgroup.procs, then rmdir each
 * directory; again every 10 ms while processes die (a zombie no longer
 * holds a cgroup; a fork storm takes a few passes), for at most
 * CG_KILL_MS.  v2's cgroup.kill, when the kernel has it, kills the whole
 * subtree at once before the first pass.
 *
 * Limits: memory counts swap too (v1 memory.memsw.limit_in_bytes when the
 * kernel accounts swap, v2 memory.swap.max = 0), so a host with swap does
 * not let a VM grow past its limit.
 *
 * Not done: io and cpuset limits, the v2 memory.oom.group knob, cgroups
 * below the caller's own cgroup (names are from each hierarchy's root, as
 * root sees it), hosts where the hierarchies are mounted elsewhere.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "machine/cgroup.h"

#define CG_ROOT		"/sys/fs/cgroup"
#define CG_KILL_MS	2000	/* how long removal waits for processes to die */
#define CG_SMALL	1024	/* room for the small control files we read */

/* Where this host's hierarchies are. */
struct cg_layout {
	enum cg_kind kind;
	int n;
	const char *roots[CG_DIRS_MAX];	/* v1: memory, pids, cpu */
	bool cpu;			/* a cpu controller to use */
};

/* One removal pass over a tree, and the first thing that failed in it. */
struct cg_sweep {
	pid_t self;
	bool self_inside;
	int err;			/* errno of the first failure */
	char failed[PATH_MAX];		/* and the directory it was in */
};

/* out = dir + "/" + file.  Returns 0, or -1 (ENAMETOOLONG). */
static int
cg_path(char out[PATH_MAX], const char *dir, const char *file)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, file);

	if (n < 0 || n >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Read at most size - 1 bytes of path into buf, NUL-terminated.  Returns
 * the length, or -1 with errno set. */
static ssize_t
cg_read(const char *path, char *buf, size_t size)
{
	ssize_t n, len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((size_t)len < size - 1 &&
	       (n = read(fd, buf + len, size - 1 - (size_t)len)) != 0) {
		if (n < 0) {
			int saved = errno;

			close(fd);
			errno = saved;
			return -1;
		}
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	return len;
}

/* Write val to dir/file in one write(2), as the kernel wants it. */
static int
cg_write(const char *dir, const char *file, const char *val, struct err *e)
{
	char path[PATH_MAX];
	size_t len = strlen(val);
	ssize_t n;
	int fd;

	if (cg_path(path, dir, file) < 0)
		return err_sys(e, "cgroup: %s/%s", dir, file);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return err_sys(e, "cgroup: open %s", path);
	n = write(fd, val, len);
	if (n != (ssize_t)len) {
		int saved = n < 0 ? errno : EIO;

		close(fd);
		errno = saved;
		return err_sys(e, "cgroup: write '%s' to %s", val, path);
	}
	if (close(fd) < 0)
		return err_sys(e, "cgroup: write '%s' to %s", val, path);
	return 0;
}

static bool
cg_has_file(const char *dir, const char *file)
{
	char path[PATH_MAX];

	return cg_path(path, dir, file) == 0 && access(path, F_OK) == 0;
}

/* Whether word is one of the space-separated words of list. */
static bool
cg_has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') &&
		    (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

/* The number in dir/file, or 0 if it cannot be read. */
static uint64_t
cg_read_u64(const char *dir, const char *file)
{
	char path[PATH_MAX], buf[64];

	if (cg_path(path, dir, file) < 0 || cg_read(path, buf, sizeof(buf)) < 0)
		return 0;
	return strtoull(buf, NULL, 10);
}

/* The N of the line "key N" in dir/file (memory.events, ...); 0 if none. */
static uint64_t
cg_read_key(const char *dir, const char *file, const char *key)
{
	char path[PATH_MAX], buf[CG_SMALL * 4];
	size_t n = strlen(key);

	if (cg_path(path, dir, file) < 0 || cg_read(path, buf, sizeof(buf)) < 0)
		return 0;
	for (const char *p = buf; p != NULL && *p != '\0'; ) {
		if (strncmp(p, key, n) == 0 && p[n] == ' ')
			return strtoull(p + n + 1, NULL, 10);
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return 0;
}

static bool
cg_fs_is(const char *path, long magic)
{
	struct statfs s;

	return statfs(path, &s) == 0 && (long)s.f_type == magic;
}

/* Find v2, else v1, else say there is neither.  Returns 0/-1. */
static int
cg_layout_find(struct cg_layout *lo, struct err *e)
{
	char ctl[CG_SMALL];

	memset(lo, 0, sizeof(*lo));
	if (cg_fs_is(CG_ROOT, CGROUP2_SUPER_MAGIC) &&
	    cg_read(CG_ROOT "/cgroup.controllers", ctl, sizeof(ctl)) >= 0 &&
	    cg_has_word(ctl, "memory") && cg_has_word(ctl, "pids")) {
		lo->kind = CG_V2;
		lo->roots[lo->n++] = CG_ROOT;
		lo->cpu = cg_has_word(ctl, "cpu");
		return 0;
	}
	if (cg_fs_is(CG_ROOT "/memory", CGROUP_SUPER_MAGIC) &&
	    cg_fs_is(CG_ROOT "/pids", CGROUP_SUPER_MAGIC)) {
		lo->kind = CG_V1;
		lo->roots[lo->n++] = CG_ROOT "/memory";
		lo->roots[lo->n++] = CG_ROOT "/pids";
		if (cg_fs_is(CG_ROOT "/cpu", CGROUP_SUPER_MAGIC) &&
		    cg_has_file(CG_ROOT "/cpu", "cpu.shares")) {
			lo->roots[lo->n++] = CG_ROOT "/cpu";
			lo->cpu = true;
		}
		return 0;
	}
	return err_set(e, "cgroup: no usable cgroups: " CG_ROOT " is not a "
		       "cgroup2 mount with memory and pids controllers, and "
		       CG_ROOT "/memory and " CG_ROOT "/pids are not both "
		       "cgroup v1 mounts");
}

static bool
cg_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Refuse a name that could leave the hierarchy or is not ours to make. */
static int
cg_name_check(const char *name, struct err *e)
{
	size_t n = name == NULL ? 0 : strlen(name);

	if (n == 0 || n > CG_NAME_MAX)
		return err_set(e, "cgroup: a name of %zu bytes: it must have "
			       "1 to %d", n, CG_NAME_MAX);
	if (name[0] == '/' || name[n - 1] == '/' || strstr(name, "//"))
		return err_set(e, "cgroup: bad name '%s': it must not start "
			       "or end with '/' nor hold an empty component",
			       name);
	for (size_t i = 0; i < n; i++)
		if (name[i] != '/' && !cg_name_char(name[i]))
			return err_set(e, "cgroup: bad name '%s': byte %zu is "
				       "not one of A-Z a-z 0-9 _ - /", name, i);
	return 0;
}

static long
cg_ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 +
	       (now.tv_nsec - t0->tv_nsec) / 1000000;
}

static void
cg_sweep_fail(struct cg_sweep *s, const char *dir)
{
	if (s->err != 0)
		return;
	s->err = errno;
	snprintf(s->failed, sizeof(s->failed), "%s", dir);
}

/* SIGKILL every process listed in dir/cgroup.procs but the caller. */
static void
cg_kill_dir(const char *dir, struct cg_sweep *s)
{
	char path[PATH_MAX];
	FILE *f;
	int pid;

	if (cg_path(path, dir, "cgroup.procs") < 0 ||
	    (f = fopen(path, "re")) == NULL) {
		if (errno != ENOENT)
			cg_sweep_fail(s, dir);
		return;
	}
	while (fscanf(f, "%d", &pid) == 1) {
		if (pid == s->self)
			s->self_inside = true;
		else if (pid > 0)
			kill(pid, SIGKILL);
	}
	fclose(f);
}

static void
cg_rmdir(const char *dir, struct cg_sweep *s)
{
	if (rmdir(dir) < 0 && errno != ENOENT)
		cg_sweep_fail(s, dir);
}

/* Call visit on every directory of the tree at path (len bytes, in a
 * PATH_MAX buffer it extends and restores), children first.  A missing
 * tree is an empty one. */
static void
cg_walk(char *path, size_t len, void (*visit)(const char *, struct cg_sweep *),
	struct cg_sweep *s)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (d == NULL) {
		if (errno != ENOENT)
			cg_sweep_fail(s, path);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (len + 1 + n >= PATH_MAX) {
			errno = ENAMETOOLONG;
			cg_sweep_fail(s, path);
			continue;
		}
		path[len] = '/';
		memcpy(path + len + 1, de->d_name, n + 1);
		cg_walk(path, len + 1 + n, visit, s);
		path[len] = '\0';
	}
	closedir(d);
	visit(path, s);
}

/* Kill everything in the tree at top and remove it, passes repeated while
 * processes die, for at most CG_KILL_MS.  Missing is done.  Returns 0/-1. */
static int
cg_remove_tree(const char *top, enum cg_kind kind, struct err *e)
{
	const struct timespec nap = { 0, 10 * 1000000 };
	char path[PATH_MAX];
	struct cg_sweep s;
	struct timespec t0;
	size_t len = strlen(top);

	if (len >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return err_sys(e, "cgroup: %s", top);
	}
	if (kind == CG_V2 && cg_has_file(top, "cgroup.kill"))
		cg_write(top, "cgroup.kill", "1", NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		memset(&s, 0, sizeof(s));
		s.self = getpid();
		memcpy(path, top, len + 1);
		cg_walk(path, len, cg_kill_dir, &s);
		if (s.self_inside)
			return err_set(e, "cgroup: %s holds the calling process "
				       "(%d): not killing it", top, (int)s.self);
		if (s.err == 0)
			cg_walk(path, len, cg_rmdir, &s);
		if (s.err == 0)
			return 0;
		if (cg_ms_since(&t0) >= CG_KILL_MS)
			break;
		nanosleep(&nap, NULL);
	}
	errno = s.err;
	return err_sys(e, "cgroup: cannot remove %s (still so after %d ms)",
		       s.failed, CG_KILL_MS);
}

/* cg_remove_tree of root/name on every hierarchy. */
static int
cg_remove_everywhere(const struct cg_layout *lo, const char *name,
		     struct err *e)
{
	char path[PATH_MAX];

	for (int i = 0; i < lo->n; i++)
		if (cg_path(path, lo->roots[i], name) < 0 ||
		    cg_remove_tree(path, lo->kind, e) < 0)
			return -1;
	return 0;
}

/* v2: enable memory, pids (and cpu) for dir's children, those missing. */
static int
cg2_enable(const char *dir, bool cpu, struct err *e)
{
	static const char *const want[] = { "memory", "pids", "cpu" };
	char path[PATH_MAX], have[CG_SMALL], tok[16];

	if (cg_path(path, dir, "cgroup.subtree_control") < 0 ||
	    cg_read(path, have, sizeof(have)) < 0)
		return err_sys(e, "cgroup: read %s/cgroup.subtree_control",
			       dir);
	for (int i = 0; i < (cpu ? 3 : 2); i++) {
		if (cg_has_word(have, want[i]))
			continue;
		snprintf(tok, sizeof(tok), "+%s", want[i]);
		if (cg_write(dir, "cgroup.subtree_control", tok, e) < 0)
			return -1;
	}
	return 0;
}

/* Make root/name (into out) and its missing ancestors; on v2 enable the
 * controllers in root and in each ancestor.  Returns 0/-1. */
static int
cg_mkdirs(const char *root, const char *name, const struct cg_layout *lo,
	  bool cpu, char out[PATH_MAX], struct err *e)
{
	bool v2 = lo->kind == CG_V2;

	if (cg_path(out, root, name) < 0)
		return err_sys(e, "cgroup: %s/%s", root, name);
	if (v2 && cg2_enable(root, cpu, e) < 0)
		return -1;
	for (char *p = out + strlen(root) + 1; (p = strchr(p, '/')) != NULL;
	     *p++ = '/') {
		*p = '\0';
		if (mkdir(out, 0755) < 0 && errno != EEXIST)
			return err_sys(e, "cgroup: mkdir %s", out);
		if (v2 && cg2_enable(out, cpu, e) < 0)
			return -1;
	}
	if (mkdir(out, 0755) < 0)
		return err_sys(e, "cgroup: mkdir %s", out);
	return 0;
}

static int
cg_set_memory(const struct cgroup *cg, uint64_t bytes, struct err *e)
{
	const char *dir = cg->dirs[0];
	char v[32];

	snprintf(v, sizeof(v), "%" PRIu64, bytes);
	if (cg->kind == CG_V1)
		return cg_write(dir, "memory.limit_in_bytes", v, e) < 0 ||
		       (cg_has_file(dir, "memory.memsw.limit_in_bytes") &&
			cg_write(dir, "memory.memsw.limit_in_bytes", v, e) < 0)
		       ? -1 : 0;
	return cg_write(dir, "memory.max", v, e) < 0 ||
	       (cg_has_file(dir, "memory.swap.max") &&
		cg_write(dir, "memory.swap.max", "0", e) < 0) ? -1 : 0;
}

static int
cg_set_limits(const struct cgroup *cg, const struct cg_limits *l,
	      struct err *e)
{
	bool v1 = cg->kind == CG_V1;
	char v[32];

	if (l->mem_bytes != 0 && cg_set_memory(cg, l->mem_bytes, e) < 0)
		return -1;
	if (l->pids_max != 0) {
		snprintf(v, sizeof(v), "%u", l->pids_max);
		if (cg_write(cg->dirs[v1 ? 1 : 0], "pids.max", v, e) < 0)
			return -1;
	}
	if (l->cpu_weight != 0) {
		snprintf(v, sizeof(v), "%u",
			 v1 ? l->cpu_weight * 1024 / 100 : l->cpu_weight);
		if (cg_write(cg->dirs[v1 ? 2 : 0],
			     v1 ? "cpu.shares" : "cpu.weight", v, e) < 0)
			return -1;
	}
	return 0;
}

static int
cg_limits_check(const char *name, const struct cg_limits *l,
		const struct cg_layout *lo, struct err *e)
{
	if (l->cpu_weight > CG_WEIGHT_MAX)
		return err_set(e, "cgroup %s: cpu weight %u is not in 1..%d",
			       name, l->cpu_weight, CG_WEIGHT_MAX);
	if (l->cpu_weight != 0 && !lo->cpu)
		return err_set(e, "cgroup %s: a cpu weight is asked for but "
			       "this host has no cpu controller (%s)", name,
			       lo->kind == CG_V1 ?
			       "no cgroup v1 mount at " CG_ROOT "/cpu" :
			       "not in " CG_ROOT "/cgroup.controllers");
	return 0;
}

int
cgroup_create(const char *name, const struct cg_limits *l,
	      struct cgroup *cg, struct err *e)
{
	struct cg_layout lo;
	bool cpu = l->cpu_weight != 0;
	int n;

	memset(cg, 0, sizeof(*cg));
	if (cg_name_check(name, e) < 0 || cg_layout_find(&lo, e) < 0 ||
	    cg_limits_check(name, l, &lo, e) < 0)
		return -1;
	if (cg_remove_everywhere(&lo, name, e) < 0)
		return err_wrap(e, "cgroup %s: a leftover", name);
	cg->kind = lo.kind;
	memcpy(cg->name, name, strlen(name) + 1);
	n = lo.kind == CG_V2 ? 1 : (cpu ? 3 : 2);
	for (int i = 0; i < n; i++) {
		if (cg_mkdirs(lo.roots[i], name, &lo, cpu, cg->dirs[i], e) < 0)
			goto bad;
		cg->ndirs++;
		if (cg_path(cg->procs[i], cg->dirs[i], "cgroup.procs") < 0) {
			err_sys(e, "cgroup: %s/cgroup.procs", cg->dirs[i]);
			goto bad;
		}
	}
	if (cg_set_limits(cg, l, e) < 0)
		goto bad;
	return 0;
bad:
	cgroup_destroy(cg, NULL);
	cg->ndirs = 0;
	return -1;
}

int
cgroup_join(const struct cgroup *cg)
{
	if (cg->ndirs == 0) {
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; i < cg->ndirs; i++) {
		int fd = open(cg->procs[i], O_WRONLY | O_CLOEXEC);

		if (fd < 0)
			return -1;
		if (write(fd, "0", 1) != 1) {
			int saved = errno;

			close(fd);
			errno = saved;
			return -1;
		}
		close(fd);
	}
	return 0;
}

uint64_t
cgroup_oom_kills(const struct cgroup *cg)
{
	if (cg->ndirs == 0)
		return 0;
	return cg_read_key(cg->dirs[0], cg->kind == CG_V1 ?
			   "memory.oom_control" : "memory.events", "oom_kill");
}

uint64_t
cgroup_mem_peak(const struct cgroup *cg)
{
	const char *dir = cg->dirs[0];

	if (cg->ndirs == 0)
		return 0;
	if (cg->kind == CG_V1)
		return cg_read_u64(dir, "memory.max_usage_in_bytes");
	if (cg_has_file(dir, "memory.peak"))
		return cg_read_u64(dir, "memory.peak");
	return cg_read_u64(dir, "memory.current");
}

int
cgroup_destroy(struct cgroup *cg, struct err *e)
{
	int rc = 0;

	/* every directory is tried; e keeps the first failure */
	for (int i = 0; i < cg->ndirs; i++)
		if (cg_remove_tree(cg->dirs[i], cg->kind,
				   rc == 0 ? e : NULL) < 0)
			rc = -1;
	return rc;
}

int
cgroup_destroy_tree(const char *name, struct err *e)
{
	struct cg_layout lo;

	if (cg_name_check(name, e) < 0 || cg_layout_find(&lo, e) < 0)
		return -1;
	return cg_remove_everywhere(&lo, name, e);
}
