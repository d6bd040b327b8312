/*
 * runner.h - the vmrunner's supervisor, shared by its files (not a public
 * interface: that is vmrunner.h's runner_run):
 *
 *   runner.c     the loop, start-up (what a previous run left) and shut-down
 *   commit.c     commit/ scanned: the commit pipeline, withdrawal
 *   vm.c         one machine: jail, command line, spawn, console, probe, kill
 *   kernels.c    the kernel cache and the kernel probes
 *   report.c     the authority: trust, and the reports owed to it
 *   follow.c     new versions of a service
 *   supervise.c  each VM's states, and status.json
 *
 * One thread does all of it (the relay has its own): nothing is locked.
 */
#ifndef FED_VMRUNNER_RUNNER_H
#define FED_VMRUNNER_RUNNER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "common/crypto.h"
#include "common/err.h"
#include "machine/machine.h"
#include "machine/qemu.h"
#include "netmap/netmap.h"
#include "vmrunner/vmrunner.h"

#define ARRAY_LEN(a)		(sizeof(a) / sizeof((a)[0]))
#define RUNNER_RESCAN_S		3.0
#define VM_KILL_WAIT_MS		2000	/* for a killed VM to exit, at most */
#define RUNNER_LATER_MAX_S	300.0	/* a file that failed for a passing reason */
#define RUNNER_REPORT_RETRY_S	5.0
#define RUNNER_UNREACHABLE_MAX_S 60.0	/* the longest pause in reports */
#define RUNNER_REFRESH_EVERY_S	60.0	/* when the authority said no ttl */
#define RUNNER_MAX_VMS		256
#define RUNNER_FOLLOW_RETRY_S	60.0	/* after a version we failed to follow */
#define RUNNER_QEMU_KEEP	3	/* unpacked withdrawn QEMU snapshots */
#define VM_PROBE_EVERY_S	0.01	/* starting: a connect this often, */
#define VM_PROBE_WAIT_S		0.25	/* an unanswered one given up after */
#define VM_UP_RETRY_S		5.0	/* answered, but no host port or mapping */
#define VM_CONSOLE_MAX		(8 << 20)	/* console.log moves to .old past this */
#define VM_CONSOLE_TURN		(64 << 10)	/* console bytes per loop turn */
#define VM_CONSOLE_LAST		(1 << 20)	/* ... and after the VM died */
#define VM_LAST_WORDS_READ	(16 << 10)	/* console.log's end, read at death */
#define RUNNER_PROBE_MEM_MB	32	/* the kernel probe's machine */
#define RUNNER_PROBE_TIMEOUT_S	30
#define RUNNER_PROBED_MAX	16	/* kernels whose probe is remembered */

struct runner {
	const struct runner_config *cfg;
	char public_addr[INET_ADDRSTRLEN];
	uint8_t seed[ED25519_SEED_LEN];
	struct lease_db *leases;
	struct relay *relay;
	struct vm *vms[RUNNER_MAX_VMS];
	size_t nvms;
	struct runner_held {		/* commit/ names not started */
		char *name;
		double retry_at;	/* monotonic; 0: refused, not retried */
		unsigned tries;
		bool seen;		/* at the current scan */
	} *held;
	size_t nheld;
	struct {			/* the last version we failed to follow */
		char id[2 * SHA256_LEN + 1];
		double retry_at;	/* monotonic */
	} follow_failed[16];
	int ino_fd, sig_fd;
	bool stop;
	char qemu_version[QEMU_VERSION_MAX];	/* "" until first needed */
	/* Why this host cannot run UML machines ("" if it can), from the
	 * probe of the start-up kernel: every UML snapshot is refused. */
	char uml_broken[ERR_MSG_MAX];
	/* The jails (docs/vmrunner.md, "The jail"): this runner's cgroups are
	 * under cg_root and its namespaces are named netns_prefix + tap, so
	 * that two vmrunners on one host (the test cluster's peers) never
	 * meet; uid slot i is uid_min + i, taken while a VM holds it. */
	char cg_root[32];		/* "fed/<8 hex of STATE's path>" */
	char netns_prefix[16];		/* "fed<8 hex>-" */
	char uplink_prefix[12];		/* "fx<8 hex>": its VMs' uplinks */
	char uplink_table[16];		/* "fed_<8 hex>": their host table */
	bool uid_taken[RUNNER_MAX_VMS];
	struct machine_seccomp seccomp;
	struct {			/* each kernel probed before its first boot */
		uint8_t sha[SHA256_LEN];
		bool ok;
		char why[ERR_MSG_MAX];
	} probed[RUNNER_PROBED_MAX];
	size_t nprobed;
	/* The authority did not answer: no report is tried before this
	 * (monotonic), so a black-holed authority costs the loop one
	 * connect timeout per pause, not one per VM every 5 s. */
	double authority_next;
	double authority_pause;		/* the current pause, doubling */
};

/* report.c */
int runner_trusted(json_t *list, const uint8_t sha[SHA256_LEN], const char *kind,
		   const char **why);
int runner_fetch_trusted(struct runner *r, json_t **list, struct err *e);
void runner_report(struct runner *r, struct vm *v);
void runner_want_report(struct runner *r, struct vm *v, bool up);
bool runner_refresh_due(const struct vm *v, double now);

/* vm.c */
int runner_jail_init(struct runner *r, struct err *e);
unsigned vm_mem_limit_mb(const struct runner *r, const struct vm *v);
void vm_drain_console(struct vm *v, size_t max);
int vm_spawn(struct runner *r, struct vm *v, struct err *e);
void vm_kill_group(pid_t pgid);
void vm_remove_dir_files(const char *dir, bool all);
void vm_remove_files(struct vm *v);
struct in_addr vm_guest_addr(const struct vm *v);
void vm_probe_stop(struct vm *v);
bool vm_probe_start(struct vm *v, double now);
bool vm_probe_done(struct vm *v);
void vm_release(struct runner *r, struct vm *v);
int runner_vm_net(struct runner *r, struct vm *v, struct err *e);
void vm_last_words(const struct vm *v, char *out, size_t size);

/* kernels.c */
int vm_kernel_intact(const char *path, const uint8_t sha[SHA256_LEN],
		 struct err *e);
int runner_kernel_runs(struct runner *r, const uint8_t sha[SHA256_LEN],
		   const char *path, struct err *e);
void runner_probe_host(struct runner *r);
int runner_cache_kernel(struct runner *r, const uint8_t sha[SHA256_LEN],
		    char out[PATH_MAX], struct err *e);
int runner_split_qkernel(struct runner *r, struct vm *v, struct err *e);
int runner_qkernel_fresh(const struct vm *v, struct err *e);

/* commit.c */
struct runner_held *runner_held_find(struct runner *r, const char *name);
struct vm *runner_find_service_owner(struct runner *r, const char *service);
unsigned long runner_mem_in_use(const struct runner *r);
void runner_scan(struct runner *r);

/* follow.c */
void runner_follow(struct runner *r);

/* supervise.c */
void runner_reap(struct runner *r);
void runner_tick(struct runner *r);
void runner_write_status(struct runner *r);

#endif
