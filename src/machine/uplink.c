/*
 * uplink.c - the host's side of a guest's way out (machine.h, "A guest's
 * way out"): where each uplink's /30 comes from, and the host's nftables
 * table that keeps what comes out of the uplinks off the host itself, off
 * each other and off the host's own networks, and NATs the rest out of
 * the host's route.
 *
 * The namespace's own rules (netns.c) already decide what a guest may
 * open; this table is the second wall, on the host, for what the
 * namespace cannot know: the host's addresses and networks.  nft runs as
 * a program (nft -f -), as for the namespaces' rules.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "machine/machine.h"

#define UPLINK_SLOTS (1u << (32 - MACHINE_UPLINK_POOL_LEN - 2))	/* /30s */

int
machine_uplink_plan(const char *prefix, unsigned slot,
		    const struct egress *grant, struct machine_uplink *up,
		    struct err *e)
{
	struct in_addr pool;
	uint32_t base;
	int n;

	memset(up, 0, sizeof(*up));
	if (grant->n == 0)
		return err_set(e, "uplink: nothing granted");
	if (slot >= UPLINK_SLOTS)
		return err_set(e, "uplink: slot %u past the pool's %u", slot,
			       UPLINK_SLOTS);
	n = snprintf(up->host_if, sizeof(up->host_if), "%s%u", prefix, slot);
	if (n < 0 || (size_t)n >= sizeof(up->host_if))
		return err_set(e, "uplink: interface name %s%u is too long",
			       prefix, slot);
	inet_pton(AF_INET, MACHINE_UPLINK_POOL, &pool);
	base = ntohl(pool.s_addr) + 4 * slot;
	up->host_addr.s_addr = htonl(base + 1);
	up->ns_addr.s_addr = htonl(base + 2);
	up->grant = *grant;
	return 0;
}

int
machine_uplink_host_rules(const char *table, const char *ifprefix,
			  const char *hostnets, char *out, size_t size)
{
	char nets[1200] = "";
	int n;

	if (hostnets[0] != '\0')
		snprintf(nets, sizeof(nets),
			 "		iifname \"%s*\" ip daddr { %s } drop\n",
			 ifprefix, hostnets);
	n = snprintf(out, size,
		     "table ip %s {\n"
		     "	chain input {\n"
		     "		type filter hook input priority filter;\n"
		     "		iifname \"%s*\" drop\n"
		     "	}\n"
		     "	chain forward {\n"
		     "		type filter hook forward priority filter;\n"
		     "		iifname \"%s*\" oifname \"%s*\" drop\n"
		     "%s"
		     "	}\n"
		     "	chain postrouting {\n"
		     "		type nat hook postrouting priority srcnat;\n"
		     "		ip saddr %s/%d oifname != \"%s*\" masquerade\n"
		     "	}\n"
		     "}\n", table, ifprefix, ifprefix, MACHINE_UPLINK_IF_ROOT, nets,
		     MACHINE_UPLINK_POOL, MACHINE_UPLINK_POOL_LEN,
		     MACHINE_UPLINK_IF_ROOT);
	return n < 0 || (size_t)n >= size ? -1 : n;
}

/* The host's own IPv4 networks ("10.66.0.0/24, 127.0.0.0/8"), from its
 * interfaces' addresses and masks, leaving out the uplinks'. */
static void
uplink_host_nets(const char *ifprefix, char *out, size_t size)
{
	struct ifaddrs *all, *a;
	size_t used = 0;

	out[0] = '\0';
	if (getifaddrs(&all) < 0)
		return;
	for (a = all; a != NULL; a = a->ifa_next) {
		const struct sockaddr_in *in, *mask;
		char net[INET_ADDRSTRLEN];
		struct in_addr nw;
		int n;

		if (a->ifa_addr == NULL || a->ifa_addr->sa_family != AF_INET ||
		    a->ifa_netmask == NULL ||
		    strncmp(a->ifa_name, ifprefix, strlen(ifprefix)) == 0)
			continue;
		in = (const struct sockaddr_in *)(const void *)a->ifa_addr;
		mask = (const struct sockaddr_in *)(const void *)a->ifa_netmask;
		nw.s_addr = in->sin_addr.s_addr & mask->sin_addr.s_addr;
		inet_ntop(AF_INET, &nw, net, sizeof(net));
		n = snprintf(out + used, size - used, "%s%s/%d", used ? ", " : "",
			     net, __builtin_popcount(mask->sin_addr.s_addr));
		if (n < 0 || (size_t)n >= size - used) {
			out[used] = '\0';	/* what fits: the first ones */
			break;
		}
		used += (size_t)n;
	}
	freeifaddrs(all);
}

/* nft -f - with text on its stdin, here; 0 if it took it. */
static int
uplink_nft(const char *text, struct err *e)
{
	char *argv[] = { "nft", "-f", "-", NULL };

	return machine_run_input(NULL, argv, text, false,
				 "load the uplinks' host table", e);
}

int
machine_uplink_host_setup(const char *table, const char *ifprefix,
			  struct err *e)
{
	char nets[1024], rules[2048];

	machine_uplink_host_delete(table);	/* a crash's, or stale nets */
	uplink_host_nets(ifprefix, nets, sizeof(nets));
	if (machine_uplink_host_rules(table, ifprefix, nets, rules,
				      sizeof(rules)) < 0)
		return err_set(e, "uplinks' host table: too many networks");
	if (uplink_nft(rules, e) < 0)
		return -1;
	if (machine_write_file("/proc/sys/net/ipv4/ip_forward", "1\n") < 0)
		return err_sys(e, "turn IPv4 forwarding on for the uplinks");
	return 0;
}

void
machine_uplink_host_delete(const char *table)
{
	char text[128];
	struct err e;

	/* add, then delete: quiet whether it was there or not (bookworm's
	 * nft 1.0.6 has no "destroy") */
	snprintf(text, sizeof(text), "add table ip %s\ndelete table ip %s\n",
		 table, table);
	uplink_nft(text, &e);
}
