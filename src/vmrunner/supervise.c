/*
 * supervise.c - moving each VM along its states (vmrunner.h): a starting
 * VM goes up when its guest port accepts (the relay maps its host port,
 * the authority is told), a newer version takes over its service and the
 * old one drains, a dead one backs off and restarts, a boot that passes
 * its deadline is killed; and status.json, rewritten every turn.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

#include "vmrunner/runner.h"

/* v's guest port accepts: map the service's host port to it and report.
 * Returns 0, or -1 if it got no host port or mapping (logged): v stays
 * starting. */
static int
runner_vm_up(struct runner *r, size_t i)
{
	struct vm *v = r->vms[i], *old = runner_find_service_owner(r, v->service);
	struct sockaddr_in ta = { .sin_family = AF_INET,
				  .sin_port = htons(v->guest_port),
				  .sin_addr = vm_guest_addr(v) };
	struct lease l;
	struct err e;
	double boot;
	int fd;

	if (old != NULL && old != v) {
		if (old->version > v->version) {
			log_info("%s: a newer version of %s runs (%s); stopping",
				 v->file, v->service, old->file);
			vm_release(r, v);
			return 0;
		}
		if (relay_map_switch_ns(r->relay, v->service,
					(struct sockaddr *)&ta, sizeof(ta),
					v->netns_fd, &e) < 0) {
			log_error("%s: %s", v->file, e.msg);
			return -1;
		}
		/* the port is the new version's now, after a restart too */
		if (lease_move_port(r->leases, old->id, v->id, &e) < 0)
			log_warn("%s: %s", v->file, e.msg);
		v->host_port = old->host_port;
		v->mapped = true;
		old->mapped = false;
		old->host_port = 0;
		log_info("%s: version %" PRId64 " replaces %s (version %" PRId64
			 ") on host port %u; the old one finishes its "
			 "connections for %d s", v->file, v->version, old->file,
			 old->version, v->host_port, VM_DRAIN_S);
		/* new connections go to the new version; those the relay
		 * holds to the old one go on until they end or it stops */
		old->state = VM_DRAINING;
		old->drain_until = mono_now() + VM_DRAIN_S;
		runner_want_report(r, old, false);
	} else if (!v->mapped) {
		if (lease_listen(r->leases, v->id, &fd, &l, &e) < 0) {
			log_error("%s: no host port: %s", v->file, e.msg);
			return -1;
		}
		if (relay_map_add_ns(r->relay, v->service, fd,
				     (struct sockaddr *)&ta, sizeof(ta),
				     v->netns_fd, &e) < 0) {
			close(fd);
			log_error("%s: %s", v->file, e.msg);
			return -1;
		}
		v->host_port = l.port;
		v->mapped = true;
	}
	v->state = VM_UP;
	v->up_since = time(NULL);
	boot = mono_now() - v->boot_t0;
	if (v->kind == MACHINE_QEMU)
		log_info("%s: up: %s (version %" PRId64 ") on host port %u -> "
			 "guest port %u, %.2f s after the commit (check and "
			 "unpack %.2f s, namespace %.2f s, memory state load "
			 "%.2f s, then the service answered in %.2f s)",
			 v->file, v->service, v->version, v->host_port,
			 v->guest_port, v->prep_s + v->net_s + boot, v->prep_s,
			 v->net_s, v->resume_s, boot - v->resume_s);
	else
		log_info("%s: up: %s (version %" PRId64 ") on host port %u -> "
			 "guest port %u, %.2f s after the commit (check and "
			 "unpack %.2f s, namespace %.2f s, boot %.2f s)", v->file,
			 v->service, v->version, v->host_port, v->guest_port,
			 v->prep_s + v->net_s + boot, v->prep_s, v->net_s, boot);
	/* a restart has no check, unpack or network of its own */
	v->prep_s = v->net_s = 0;
	runner_want_report(r, v, true);
	return 0;
}

/* A superseded VM's drain is over (or it died): what the relay still has
 * open to it is reset, as nothing will come from its deleted tap or
 * namespace, and it is released. */
static void
runner_drain_end(struct runner *r, struct vm *v)
{
	struct err e;

	if (relay_map_reset_old(r->relay, v->service, &e) < 0)
		log_debug("%s: %s", v->file, e.msg);	/* withdrawn since */
	vm_release(r, v);
}

/* v's UML exited (status from waitpid): back off, report down. */
static void
runner_vm_died(struct runner *r, size_t i, int status)
{
	struct vm *v = r->vms[i];
	bool was_up = v->state == VM_UP;
	double up = was_up ? difftime(time(NULL), v->up_since) : 0;
	char words[LAST_WORDS_MAX];
	unsigned delay;

	/* UML's helper processes outlive a killed main process and keep the
	 * COW file locked (the next boot gets EAGAIN): end the whole group */
	vm_kill_group(v->pid);
	v->pid = 0;
	vm_probe_stop(v);	/* else its dead socket keeps poll awake */
	vm_drain_console(v, VM_CONSOLE_LAST);
	if (v->con_fd >= 0) {
		close(v->con_fd);
		v->con_fd = -1;
	}
	if (v->state == VM_STOPPED)
		return;
	if (v->state == VM_DRAINING) {	/* superseded: no restart */
		runner_drain_end(r, v);
		return;
	}
	v->failures = vm_backoff_next(v->failures, up);
	delay = vm_backoff_delay(v->failures);
	v->state = VM_BACKOFF;
	v->up_since = 0;
	v->next_start = mono_now() + delay;
	vm_last_words(v, words, sizeof(words));
	if (v->cg_made && cgroup_oom_kills(&v->cg) > 0)
		log_error("%s: stopped: over its memory limit of %u MiB (the "
			  "kernel's OOM killer ended it); other VMs go on",
			  v->file, vm_mem_limit_mb(r, v));
	log_warn("%s: %s %s %d; restarting in %u s; its last words: %s",
		 v->file, v->kind == MACHINE_QEMU ? "QEMU" : "UML",
		 WIFSIGNALED(status) ? "killed by signal" : "exited with",
		 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
		 delay, words[0] ? words : "(none)");
	if (was_up)
		runner_want_report(r, v, false);
}

void
runner_reap(struct runner *r)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (size_t i = 0; i < r->nvms; i++)
			if (r->vms[i]->pid == pid)
				runner_vm_died(r, i, status);
}

void
runner_tick(struct runner *r)
{
	double now = mono_now();
	struct err e;

	for (size_t i = 0; i < r->nvms; i++) {
		struct vm *v = r->vms[i];

		switch (v->state) {
		case VM_STARTING:
			if (vm_probe_done(v) || vm_probe_start(v, now)) {
				vm_probe_stop(v);
				/* no host port (the range used up) or no
				 * mapping: try again seconds later, not at
				 * the next probe 10 ms on; a boot that never
				 * gets one ends at its deadline, as a death
				 * (the restart backoff) */
				if (runner_vm_up(r, i) < 0)
					v->next_probe = now + VM_UP_RETRY_S;
			} else if (now > v->boot_deadline) {
				log_warn("%s: guest port %u did not accept within "
					 "%d s", v->file, v->guest_port,
					 VM_BOOT_TIMEOUT);
				vm_probe_stop(v);
				kill(-v->pid, SIGKILL);	/* reaped as a death */
				v->boot_deadline = now + VM_BOOT_TIMEOUT;
			}
			break;
		case VM_DRAINING:
			if (now >= v->drain_until) {
				log_info("%s: stopped, %d s after its newer "
					 "version took over", v->file,
					 VM_DRAIN_S);
				runner_drain_end(r, v);
			}
			break;
		case VM_BACKOFF:
			if (now >= v->next_start) {
				v->restarts++;
				if (vm_spawn(r, v, &e) < 0) {
					log_error("%s: %s", v->file, e.msg);
					v->failures = vm_backoff_next(v->failures, 0);
					v->next_start = now +
						vm_backoff_delay(v->failures);
				}
			}
			break;
		default:
			break;
		}
		if (runner_refresh_due(v, now)) {
			v->report.pending = v->report.refresh = true;
			v->report.next_try = 0;
		}
		if (v->report.pending && now >= v->report.next_try)
			runner_report(r, v);
	}
}

void
runner_write_status(struct runner *r)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	json_t *j = vm_status_json(r->vms, r->nvms, time(NULL));
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/status.json", r->cfg->state);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (j == NULL)
		return;
	for (size_t i = 0; i < r->nvms; i++)
		n += r->vms[i]->state != VM_STOPPED;
	/* what this peer lends, and what of it is taken */
	json_object_set_new(j, "lent", json_pack(
		"{s:i,s:I,s:i,s:i,s:i,s:b,s:s}",
		"mem_mb", (int)r->cfg->lend_mem_mb,
		"mem_used_mb", (json_int_t)runner_mem_in_use(r),
		"max_vms", (int)(r->cfg->max_vms ? r->cfg->max_vms : RUNNER_MAX_VMS),
		"vms", (int)n,
		"cpu_weight", (int)(r->cfg->cpu_weight ? r->cfg->cpu_weight : 100),
		"jailed", !r->cfg->no_jail,
		"uml", r->uml_broken[0] ? r->uml_broken : "ok"));
	if (json_dump_file(j, tmp, JSON_INDENT(1) | JSON_SORT_KEYS) == 0)
		rename(tmp, path);
	json_decref(j);
}
