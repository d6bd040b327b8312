/*
 * cmd_status.c - `fed status`: what the vmrunner runs on this peer.
 *
 * Reads STATE/status.json, which fed-vmrunner rewrites atomically (temp
 * file + rename) about every second, and prints it as a table or, with
 * --json, as it is.  The vmrunner's docs (docs/vmrunner.md) list the
 * fields.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"

static const char status_help[] =
	"usage: fed status --state DIR [--json]\n"
	"\n"
	"What fed-vmrunner (run with --state DIR) runs on this peer: for each\n"
	"committed snapshot the service, snapshot id and version, the VM's\n"
	"private address, the host port mapped to its guest port, its state\n"
	"(starting, up, backoff, stopped), restarts and uptime.\n";

/* "3d 4h", "2h 5m", "4m 10s", "12s". */
static const char *
status_duration(json_int_t s, char buf[32])
{
	if (s >= 86400)
		snprintf(buf, 32, "%dd %dh", (int)(s / 86400), (int)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(buf, 32, "%dh %dm", (int)(s / 3600), (int)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(buf, 32, "%dm %ds", (int)(s / 60), (int)(s % 60));
	else
		snprintf(buf, 32, "%ds", (int)s);
	return buf;
}

/* What the peer lends (status.json's "lent"), in two lines. */
static void
status_lent(const json_t *l)
{
	json_int_t mem = json_integer_value(json_object_get(l, "mem_mb"));
	const char *uml = json_string_value(json_object_get(l, "uml"));

	if (!json_is_object(l))
		return;
	printf("lent: %" JSON_INTEGER_FORMAT " MiB of memory taken",
	       json_integer_value(json_object_get(l, "mem_used_mb")));
	if (mem > 0)
		printf(" of %" JSON_INTEGER_FORMAT, mem);
	printf(", %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " VMs, "
	       "CPU weight %" JSON_INTEGER_FORMAT " each, %s\n",
	       json_integer_value(json_object_get(l, "vms")),
	       json_integer_value(json_object_get(l, "max_vms")),
	       json_integer_value(json_object_get(l, "cpu_weight")),
	       json_is_true(json_object_get(l, "jailed")) ? "jailed" :
	       "NOT jailed (--no-jail)");
	if (uml != NULL && strcmp(uml, "ok") != 0)
		printf("this host cannot run UML machines: %s\n", uml);
}

int
cmd_status(int argc, char **argv)
{
	const char *state = NULL;
	char path[PATH_MAX], dur[32], port[8];
	json_error_t je;
	json_t *j, *vms, *v;
	bool json = false;
	size_t i;

	for (int a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
			fputs(status_help, stdout);
			return 0;
		} else if (strcmp(argv[a], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[a], "--state") == 0 && a + 1 < argc) {
			state = argv[++a];
		} else {
			return cli_usage("status", "unexpected '%s'", argv[a]);
		}
	}
	if (state == NULL)
		return cli_usage("status", "--state DIR is required");
	snprintf(path, sizeof(path), "%s/status.json", state);
	if ((j = json_load_file(path, 0, &je)) == NULL)
		return cli_fail("%s: %s (is fed-vmrunner running with --state "
				"%s?)", path, je.text, state);
	vms = json_object_get(j, "vms");
	if (!json_is_array(vms)) {
		json_decref(j);
		return cli_fail("%s: no 'vms' array", path);
	}
	if (json) {
		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
		return 0;
	}
	printf("%-28s %-12s %8s %-15s %5s %-8s %8s %8s %s\n", "SERVICE",
	       "SNAPSHOT", "VERSION", "ADDRESS", "PORT", "STATE", "RESTARTS",
	       "UPTIME", "MACHINE");
	json_array_foreach(vms, i, v) {
		const char *id = json_string_value(json_object_get(v, "snapshot"));
		const char *svc = json_string_value(json_object_get(v, "service"));
		const char *addr = json_string_value(json_object_get(v, "address"));
		const char *st = json_string_value(json_object_get(v, "state"));
		const char *mach = json_string_value(json_object_get(v,
								     "machine"));
		json_int_t hp = json_integer_value(json_object_get(v, "host_port"));

		snprintf(port, sizeof(port), "%d", (int)hp);
		printf("%-28s %-12.12s %8" JSON_INTEGER_FORMAT " %-15s %5s %-8s "
		       "%8" JSON_INTEGER_FORMAT " %8s %s\n",
		       svc ? svc : "?", id ? id : "?",
		       json_integer_value(json_object_get(v, "version")),
		       addr && *addr ? addr : "-", hp ? port : "-",
		       st ? st : "?",
		       json_integer_value(json_object_get(v, "restarts")),
		       status_duration(json_integer_value(json_object_get(v,
								"uptime")), dur),
		       mach ? mach : "uml");
	}
	if (json_array_size(vms) == 0)
		printf("(nothing committed runs here)\n");
	status_lent(json_object_get(j, "lent"));
	json_decref(j);
	return 0;
}
