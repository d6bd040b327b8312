/*
 * policy.c - the vmrunner's pure decisions, kept apart so unit tests can
 * check them without a VM: the restart backoff (kubelet's: 1 s doubling to
 * a 5 min cap, reset after 10 min up) and the status.json document
 * `fed status` reads.  The machines' command lines are machine/'s.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmrunner/vmrunner.h"

unsigned
vm_backoff_delay(unsigned failures)
{
	unsigned d = VM_BACKOFF_FIRST;

	if (failures == 0)
		return 0;
	for (unsigned i = 1; i < failures && d < VM_BACKOFF_CAP; i++)
		d *= 2;
	return d < VM_BACKOFF_CAP ? d : VM_BACKOFF_CAP;
}

unsigned
vm_backoff_next(unsigned failures, double up_seconds)
{
	if (up_seconds >= VM_BACKOFF_RESET)
		return 1;
	return failures < 64 ? failures + 1 : failures;
}

const char *
vm_state_name(enum vm_state s)
{
	switch (s) {
	case VM_STARTING: return "starting";
	case VM_UP: return "up";
	case VM_BACKOFF: return "backoff";
	case VM_STOPPED: return "stopped";
	case VM_DRAINING: return "draining";
	}
	return "unknown";
}

json_t *
vm_status_json(struct vm *const *vms, size_t n, time_t now)
{
	json_t *arr = json_array(), *o;
	char addr[INET_ADDRSTRLEN], t[RFC3339_LEN + 1];

	for (size_t i = 0; i < n; i++) {
		const struct vm *v = vms[i];

		if (v->kind == MACHINE_QEMU && v->leased)
			snprintf(addr, sizeof(addr), "%s", QEMU_GUEST_ADDR);
		else if (v->leased)
			inet_ntop(AF_INET, &v->lease.guest, addr, sizeof(addr));
		else
			addr[0] = '\0';
		o = json_pack("{s:s,s:s,s:s,s:I,s:s,s:i,s:i,s:s,s:i,s:I,s:s,s:i,"
			      "s:s}",
			      "file", v->file, "service", v->service,
			      "snapshot", v->id, "version", (json_int_t)v->version,
			      "address", addr, "host_port", (int)v->host_port,
			      "guest_port", (int)v->guest_port,
			      "state", vm_state_name(v->state),
			      "restarts", (int)v->restarts,
			      "uptime", (json_int_t)(v->state == VM_UP &&
						      v->up_since ? now - v->up_since : 0),
			      "tap", v->leased ? v->tap : "",
			      "pid", (int)v->pid,
			      "machine", machine_kind_name(v->kind));
		if (o != NULL && v->egress.n > 0)
			json_object_set_new(o, "egress", egress_to_json(&v->egress));
		if (o != NULL)
			json_array_append_new(arr, o);
	}
	rfc3339_format(now, t);
	return json_pack("{s:s,s:o}", "updated", t, "vms", arr);
}
