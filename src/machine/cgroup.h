/*
 * cgroup.h - one cgroup per VM: memory, pids and CPU limits, on cgroup v1
 * (a hierarchy per controller) or v2 (one unified tree).
 *
 * Which one is found at run time, on every call that takes a name:
 *   v2  /sys/fs/cgroup is a cgroup2 mount whose cgroup.controllers lists
 *       memory and pids (cpu is used if listed too);
 *   v1  /sys/fs/cgroup/memory and /sys/fs/cgroup/pids are cgroup v1 mounts
 *       (/sys/fs/cgroup/cpu is used if it is one too);
 *   else the call fails saying so.  A hybrid host (v1 controllers, a
 *   /sys/fs/cgroup/unified with none of them) is v1.
 * Names are relative to each hierarchy's root.  No state is kept between
 * calls but the struct cgroup the caller holds.
 */
#ifndef FED_CGROUP_H
#define FED_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

enum cg_kind { CG_V1 = 1, CG_V2 = 2 };

#define CG_NAME_MAX	127	/* bytes of a name, NUL not counted */
#define CG_WEIGHT_MAX	10000

struct cg_limits {
	uint64_t mem_bytes;	/* memory.limit_in_bytes and
				   memory.memsw.limit_in_bytes (v1) /
				   memory.max and memory.swap.max = 0 (v2),
				   so swap does not lift it; 0: none */
	unsigned pids_max;	/* pids.max; 0: none */
	unsigned cpu_weight;	/* 1..10000 as v2's cpu.weight (100 = default);
				   v1 cpu.shares = weight * 1024 / 100;
				   0: leave default */
};

#define CG_DIRS_MAX 3
struct cgroup {
	enum cg_kind kind;
	char name[CG_NAME_MAX + 1];	/* relative, e.g. "fed/ab12cd34/0123abcd" */
	/* v1: dirs[0] memory, dirs[1] pids, dirs[2] cpu (if a
	   cpu_weight is set);
	   v2: dirs[0], the one directory */
	char dirs[CG_DIRS_MAX][PATH_MAX];
	int ndirs;
	char procs[CG_DIRS_MAX][PATH_MAX];	/* each dir's cgroup.procs, for
						   cgroup_join */
};

/*
 * Create the cgroup `name` under every controller and set the limits.  A
 * cgroup of that name left over (by a crashed run) is killed and removed
 * first, so that its counters start at zero.  name: components of
 * [A-Za-z0-9_-] separated by single '/', none empty, at most CG_NAME_MAX
 * bytes.  Missing ancestors are made; on v2, memory, pids (and cpu) are
 * enabled in the cgroup.subtree_control of the root and of every ancestor
 * that lacks them.  A cpu_weight with no cpu controller is an error.
 * Returns 0, or -1 with e saying what failed (path and errno) and nothing
 * of the leaf left behind.
 */
int cgroup_create(const char *name, const struct cg_limits *l,
		  struct cgroup *cg, struct err *e);

/*
 * Move the calling process into cg: writes "0" to each procs file.
 * Async-signal-safe (open/write/close only): it is called in a child
 * between fork/clone and exec of a multi-threaded program.  Returns 0, or
 * -1 with errno set.
 */
int cgroup_join(const struct cgroup *cg);

/*
 * How many times the kernel's OOM killer killed a process of cg (v1:
 * "oom_kill N" in memory.oom_control; v2: "oom_kill N" in memory.events);
 * 0 if it cannot tell.
 */
uint64_t cgroup_oom_kills(const struct cgroup *cg);

/*
 * Peak memory of cg in bytes (v1 memory.max_usage_in_bytes, v2
 * memory.peak if present else memory.current); 0 if unknown.  Used to
 * measure a VM's real footprint.
 */
uint64_t cgroup_mem_peak(const struct cgroup *cg);

/*
 * Kill every process still in cg (v2: cgroup.kill if present; then, and
 * on v1, SIGKILL each pid of each cgroup.procs, again until its directories
 * can be removed, for at most ~2 s) and remove its directories.  Refuses
 * to kill the calling process.  Returns 0, or -1 with e saying which
 * directory could not be removed and why.
 */
int cgroup_destroy(struct cgroup *cg, struct err *e);

/*
 * Remove the cgroup `name` and every cgroup below it, on every controller,
 * killing what is inside, as cgroup_destroy does (for clean-up after a
 * crash: "fed/<runner>" removes all VMs of one runner).  Missing is not an
 * error; a bad name is.  Returns 0/-1.
 */
int cgroup_destroy_tree(const char *name, struct err *e);

#endif
