/*
 * test_machine_net.c - machine/netns.c: machine_net_setup makes a named
 * network namespace, pinned where `ip netns` looks, holding lo up and the
 * tap every machine expects (its MAC, address, netmask, up), owned by the
 * machine's uid (which can then open it with no privilege) and fenced by
 * the egress rules; making it again replaces a leftover;
 * machine_net_delete removes it; names that could leave /run/netns are
 * refused.  Looked at from inside the namespace by a child process.
 * Needs root; skipped otherwise.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <stdlib.h>

#include "machine/qemu.h"
#include "machine/machine.h"

#define OWNER 2000123	/* a uid no one has */

/* In the child, inside the namespace: 0 when everything is as the
 * machine expects, else the number of the first thing that is not. */
static int
check_inside(const char *path)
{
	struct ifreq ifr;
	char addr[INET_ADDRSTRLEN], mac[32];
	const unsigned char *m;
	int fd = open(path, O_RDONLY), s;

	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		return 1;
	if ((s = socket(AF_INET, SOCK_DGRAM, 0)) < 0)
		return 2;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 || !(ifr.ifr_flags & IFF_UP))
		return 3;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", QEMU_TAP);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 || !(ifr.ifr_flags & IFF_UP))
		return 4;
	if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0)
		return 5;
	m = (const unsigned char *)ifr.ifr_hwaddr.sa_data;
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1],
		 m[2], m[3], m[4], m[5]);
	if (strcmp(mac, QEMU_TAP_MAC) != 0)
		return 6;
	if (ioctl(s, SIOCGIFADDR, &ifr) < 0)
		return 7;
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr,
		  addr, sizeof(addr));
	if (strcmp(addr, QEMU_HOST_ADDR) != 0)
		return 8;
	if (ioctl(s, SIOCGIFNETMASK, &ifr) < 0)
		return 9;
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ifr.ifr_netmask)->sin_addr,
		  addr, sizeof(addr));
	if (strcmp(addr, "255.255.255.252") != 0)
		return 10;
	/* the machine's uid opens its tap, with no capability */
	if (setresgid(OWNER, OWNER, OWNER) < 0 || setresuid(OWNER, OWNER, OWNER) < 0)
		return 11;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", QEMU_TAP);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if ((fd = open("/dev/net/tun", O_RDWR)) < 0)
		return 0;	/* a 0600 node: the jail gives it a node of its own */
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return 12;
	return 0;
}

static int
inside(const char *path)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(check_inside(path));
	cr_assert(pid > 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

Test(machine_net, a_machine_namespace_is_made_checked_and_removed)
{
	char name[32], path[64], cmd[128];
	struct err e;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	snprintf(name, sizeof(name), "fedut%d", (int)getpid());
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	cr_assert_eq(machine_net_setup(name, OWNER, OWNER, NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(access(path, F_OK), 0, "pinned where ip netns looks");
	cr_assert_eq(inside(path), 0, "the namespace holds the machine's tap");
	snprintf(cmd, sizeof(cmd), "ip netns exec %s nft list table inet fed "
		 "| grep -q 'policy drop'", name);
	cr_assert_eq(system(cmd), 0, "the egress rules are in the namespace");
	/* made again (a crash's leftover): replaced, not an error */
	cr_assert_eq(machine_net_setup(name, OWNER, OWNER, NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(inside(path), 0);
	machine_net_delete(name);
	cr_assert_neq(access(path, F_OK), 0, "deleted");
	machine_net_delete(name);	/* twice: quiet */
}

Test(machine_net, names_that_leave_the_directory_are_refused)
{
	struct err e;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	cr_assert_eq(machine_net_setup("../etc", 0, 0, NULL, &e), -1);
	cr_assert(strstr(e.msg, "bad namespace name") != NULL, "%s", e.msg);
	cr_assert_eq(machine_net_setup("a/b", 0, 0, NULL, &e), -1);
	cr_assert(strstr(e.msg, "bad namespace name") != NULL, "%s", e.msg);
	cr_assert_eq(machine_net_setup("", 0, 0, NULL, &e), -1);
	cr_assert_eq(machine_net_setup(".hidden", 0, 0, NULL, &e), -1);
}

/* The namespace's rules with an uplink: everything refused stays refused,
 * and only the granted words open, out of the uplink, to public IPv4. */
Test(machine_net, uplink_rules_open_only_what_is_granted)
{
	struct machine_uplink up;
	struct egress g;
	char rules[4096];
	struct err e;

	cr_assert_eq(egress_parse_list("udp/53,tcp/443", &g, &e), 0, "%s",
		     e.msg);
	cr_assert_eq(machine_uplink_plan("fx12345678", 7, &g, &up, &e), 0, "%s",
		     e.msg);
	cr_assert_str_eq(up.host_if, "fx123456787");
	cr_assert_str_eq(inet_ntoa(up.host_addr), "100.127.0.29");
	cr_assert_str_eq(inet_ntoa(up.ns_addr), "100.127.0.30");
	cr_assert_gt(machine_net_rules(&up, rules, sizeof(rules)), 0);
	cr_assert(strstr(rules, "policy drop") != NULL);
	cr_assert(strstr(rules, "oifname \"up0\" ct state new tcp dport 443 "
			 "accept") != NULL, "%s", rules);
	cr_assert(strstr(rules, "ct state new udp dport 53 accept") != NULL);
	cr_assert(strstr(rules, "169.254.0.0/16") != NULL, "link-local refused");
	cr_assert(strstr(rules, "10.0.0.0/8") != NULL, "private refused");
	cr_assert(strstr(rules, "100.64.0.0/10") != NULL, "the uplinks refused");
	cr_assert(strstr(rules, "masquerade") != NULL);
	/* the refused-address rule comes before any accept */
	cr_assert_lt(strstr(rules, "ip daddr"), strstr(rules, "dport"));
	/* without an uplink: nothing opens, nothing is NATed */
	cr_assert_gt(machine_net_rules(NULL, rules, sizeof(rules)), 0);
	cr_assert_null(strstr(rules, "accept\n\t}\n\tchain postrouting"));
	cr_assert_null(strstr(rules, "dport"));
	cr_assert_null(strstr(rules, "masquerade"));
	cr_assert_eq(machine_net_rules(&up, rules, 64), -1, "too small: -1");
}

Test(machine_net, uplink_plan_bounds)
{
	struct machine_uplink up;
	struct egress g = { 0 };
	struct err e;

	cr_assert_eq(machine_uplink_plan("fx12345678", 0, &g, &up, &e), -1,
		     "nothing granted: no uplink");
	cr_assert_eq(egress_parse_list("tcp/443", &g, &e), 0);
	cr_assert_eq(machine_uplink_plan("fx12345678", 16384, &g, &up, &e), -1);
	cr_assert(strstr(e.msg, "pool") != NULL, "%s", e.msg);
	cr_assert_eq(machine_uplink_plan("fx1234567890123", 1, &g, &up, &e), -1,
		     "a name past IFNAMSIZ");
	cr_assert_eq(machine_uplink_plan("fx12345678", 16383, &g, &up, &e), 0);
	cr_assert_str_eq(inet_ntoa(up.ns_addr), "100.127.255.254");
}

/* The host's table: nothing from the uplinks to the host, to each other or
 * to its networks; the pool NATed out of anything but an uplink. */
Test(machine_net, uplink_host_rules)
{
	char rules[2048];

	cr_assert_gt(machine_uplink_host_rules("fed_12345678", "fx12345678",
					       "10.66.0.0/24, 127.0.0.0/8",
					       rules, sizeof(rules)), 0);
	cr_assert(strstr(rules, "hook input priority filter;\n\t\tiifname "
			 "\"fx12345678*\" drop") != NULL, "%s", rules);
	cr_assert(strstr(rules, "iifname \"fx12345678*\" oifname \"fx*\" drop")
		  != NULL, "%s", rules);
	cr_assert(strstr(rules, "ip daddr { 10.66.0.0/24, 127.0.0.0/8 } drop")
		  != NULL);
	cr_assert(strstr(rules, "ip saddr 100.127.0.0/16 oifname != \"fx*\" "
			 "masquerade") != NULL, "%s", rules);
	cr_assert_gt(machine_uplink_host_rules("t", "fx1", "", rules,
					       sizeof(rules)), 0);
	cr_assert_null(strstr(rules, "ip daddr"), "no networks: no such rule");
}
