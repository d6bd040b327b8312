/*
 * main.c - `fed-vmrunner`: boot the snapshots this peer committed to as
 * UML machines behind mapped host ports (runner.c does the work; this file
 * reads the command line).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/authurls.h"
#include "common/config.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/proc.h"
#include "machine/machine.h"
#include "vmrunner/vmrunner.h"

/* --authority, parsed only to refuse a bad list before starting. */
static struct authurls vmrunner_urls;

static const char vmrunner_help[] =
	"usage: fed-vmrunner --fed MOUNTPOINT --state DIR --authority URL[,URL...]\n"
	"           --key KEYFILE [--public-addr ADDR] [--mem MB]\n"
	"           [--lease-range CIDR] [--port-range A-B] [--no-follow]\n"
	"           [--idle-timeout S] [--kernel FILE] [--uids A-B]\n"
	"           [--lend-mem MB] [--max-vms N] [--cpu-weight N] [--no-jail]\n"
	"           [--egress-allow LIST] [-f|--foreground] [-v|--verbose]\n"
	"\n"
	"Watch MOUNTPOINT/commit/ (a fedfs mount).  For each committed snapshot:\n"
	"check its signature, payload and that its base and kernel are trusted\n"
	"and not revoked; unpack it into STATE/vms/<id>/disk.cow over\n"
	"MOUNTPOINT/bases/<sha>; give it a private /30 on its own tap and a host\n"
	"port; boot linux.uml (console in STATE/vms/<id>/console.log); once the\n"
	"guest port accepts, relay the host port to it and report it up to the\n"
	"authority.  A VM that dies is restarted with backoff (1 s doubling to\n"
	"5 min); rm commit/<file> stops it and releases everything.  What runs\n"
	"is in STATE/status.json (`fed status --state DIR`).  When the owner\n"
	"publishes a newer version of a service this peer runs, the vmrunner\n"
	"commits to it too, boots it, moves the host port over and stops the\n"
	"old one.\n"
	"\n"
	"  --config FILE      key = value options (default /etc/fed/fed-vmrunner.conf);\n"
	"                     the command line overrides them\n"
	"  --public-addr ADDR  the address clients reach this peer at (default:\n"
	"                      the first non-loopback IPv4 address)\n"
	"  --mem MB            memory per VM (default 64)\n"
	"  --lease-range CIDR  private addresses (default " NETMAP_DEFAULT_RANGE ")\n"
	"  --port-range A-B    host ports (default 20000-29999)\n"
	"  --no-follow         leave new versions to the operator (cp them into\n"
	"                      commit/ by hand)\n"
	"  --idle-timeout S    close a client connection that moved no byte\n"
	"                      for S seconds (default 600; 0: never, e.g. for\n"
	"                      services with long silent connections)\n"
	"  --kernel FILE       the UML kernel this host is checked with at\n"
	"                      start-up (default fed's, " FED_UML_KERNEL "):\n"
	"                      if it cannot run its first process here (the\n"
	"                      log line says why), no UML snapshot is taken.\n"
	"                      Each other kernel a snapshot names is checked\n"
	"                      the same way before its first boot.\n"
	"  --uids A-B          the jails' uids and gids, one per VM (default\n"
	"                      2000000-2000999; give no real user's)\n"
	"  --lend-mem MB       host memory all VMs may take together (each: its\n"
	"                      memory plus 24 MiB); a commit past it waits\n"
	"                      (default: no bound)\n"
	"  --max-vms N         VMs at most (default 256)\n"
	"  --cpu-weight N      each VM's CPU weight, 1-10000, against 100 for a\n"
	"                      host process (default 100)\n"
	"  --egress-allow LIST what guests may open to public IPv4 addresses\n"
	"                      when their owner asks for it in the signed\n"
	"                      manifest, e.g. tcp/443,udp/53 (default: none,\n"
	"                      no connection out at all).  Never the host, its\n"
	"                      networks, other VMs or private ranges; turns\n"
	"                      IPv4 forwarding on (docs/vmrunner.md)\n"
	"  --no-jail           run machines as root, unconfined: only to measure\n"
	"                      what the jail costs, never for strangers' VMs\n"
	"  -f                  stay in the foreground (default: detach)\n"
	"  -v                  debug logging\n";

static int
vmrunner_fail(const char *msg, const char *arg)
{
	fprintf(stderr, "fed-vmrunner: %s%s (see --help)\n", msg, arg);
	return 2;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "fed", required_argument, NULL, 'F' },
		{ "state", required_argument, NULL, 's' },
		{ "authority", required_argument, NULL, 'a' },
		{ "key", required_argument, NULL, 'k' },
		{ "public-addr", required_argument, NULL, 'p' },
		{ "mem", required_argument, NULL, 'm' },
		{ "lease-range", required_argument, NULL, 'l' },
		{ "port-range", required_argument, NULL, 'P' },
		{ "no-follow", no_argument, NULL, 'N' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "kernel", required_argument, NULL, 'K' },
		{ "uids", required_argument, NULL, 'U' },
		{ "lend-mem", required_argument, NULL, 'L' },
		{ "max-vms", required_argument, NULL, 'X' },
		{ "cpu-weight", required_argument, NULL, 'W' },
		{ "no-jail", no_argument, NULL, 'J' },
		{ "egress-allow", required_argument, NULL, 'E' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct runner_config c = { .mem_mb = 64, .uid_min = VM_UID_MIN,
				   .uid_count = VM_UID_COUNT };
	unsigned long u;
	bool fg = false;
	unsigned a, b;
	char *end;
	struct err e;
	int o;

	log_init("fed-vmrunner", false);
	if (config_apply("fed-vmrunner", opts, 1, &argc, &argv) < 0)
		return 2;
	while ((o = getopt_long(argc, argv, "fvh", opts, NULL)) != -1) {
		switch (o) {
		case 'F': c.fed = optarg; break;
		case 's': c.state = optarg; break;
		case 'a': c.authority = optarg; break;
		case 'k': c.key_path = optarg; break;
		case 'p': c.public_addr = optarg; break;
		case 'l': c.lease_range = optarg; break;
		case 'N': c.no_follow = true; break;
		case 'K': c.probe_kernel = optarg; break;
		case 'J': c.no_jail = true; break;
		case 'E':
			if (egress_parse_list(optarg, &c.egress_allow, &e) < 0)
				return vmrunner_fail("--egress-allow: ", e.msg);
			break;
		case 'U':
			if (sscanf(optarg, "%u-%u", &a, &b) != 2 || a == 0 ||
			    a > b || b - a >= 1000000)
				return vmrunner_fail("bad --uids (A-B, A > 0) ",
						     optarg);
			c.uid_min = a;
			c.uid_count = b - a + 1;
			break;
		case 'L':
		case 'X':
		case 'W':
			u = strtoul(optarg, &end, 10);
			if (*end != '\0' || end == optarg || u == 0 ||
			    (o == 'W' && u > 10000) || u > 16u << 20)
				return vmrunner_fail("bad number ", optarg);
			if (o == 'L')
				c.lend_mem_mb = (unsigned)u;
			else if (o == 'X')
				c.max_vms = (unsigned)u;
			else
				c.cpu_weight = (unsigned)u;
			break;
		case 'f': fg = true; break;
		case 'v': log_set_level(LOG_DEBUG); break;
		case 'm':
			c.mem_mb = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || c.mem_mb < 16 || c.mem_mb > 65536)
				return vmrunner_fail("--mem must be 16..65536 MB",
						     "");
			break;
		case 'i': {
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end != '\0' || end == optarg || v > 86400000)
				return vmrunner_fail("bad --idle-timeout ",
						     optarg);
			c.idle_timeout_s = v == 0 ? -1 : (int)v;
			break;
		}
		case 'P':
			if (sscanf(optarg, "%u-%u", &a, &b) != 2 || a == 0 ||
			    b > 65535 || a > b)
				return vmrunner_fail("bad --port-range ", optarg);
			c.port_min = (uint16_t)a;
			c.port_max = (uint16_t)b;
			break;
		case 'h': fputs(vmrunner_help, stdout); return 0;
		default: return vmrunner_fail("bad option", "");
		}
	}
	if (!c.fed || !c.state || !c.authority || !c.key_path || optind != argc)
		return vmrunner_fail("--fed, --state, --authority and --key are "
				     "required", "");
	if (authurls_parse(c.authority, &vmrunner_urls, &e) == -1)
		return vmrunner_fail("--authority: ", e.msg);
	if (crypto_init(&e) < 0) {
		fprintf(stderr, "fed-vmrunner: %s\n", e.msg);
		return 1;
	}
	if (!fg && daemon(1, 1) < 0) {
		perror("fed-vmrunner: daemon");
		return 1;
	}
	proc_raise_nofile();	/* the relay: four per session */
	if (runner_run(&c, &e) < 0) {
		fprintf(stderr, "fed-vmrunner: %s\n", e.msg);
		return 1;
	}
	return 0;
}
