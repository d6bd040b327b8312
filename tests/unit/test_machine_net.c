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
	cr_assert_eq(machine_net_setup(name, OWNER, OWNER, &e), 0, "%s", e.msg);
	cr_assert_eq(access(path, F_OK), 0, "pinned where ip netns looks");
	cr_assert_eq(inside(path), 0, "the namespace holds the machine's tap");
	snprintf(cmd, sizeof(cmd), "ip netns exec %s nft list table inet fed "
		 "| grep -q 'policy drop'", name);
	cr_assert_eq(system(cmd), 0, "the egress rules are in the namespace");
	/* made again (a crash's leftover): replaced, not an error */
	cr_assert_eq(machine_net_setup(name, OWNER, OWNER, &e), 0, "%s", e.msg);
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
	cr_assert_eq(machine_net_setup("../etc", 0, 0, &e), -1);
	cr_assert(strstr(e.msg, "bad namespace name") != NULL, "%s", e.msg);
	cr_assert_eq(machine_net_setup("a/b", 0, 0, &e), -1);
	cr_assert(strstr(e.msg, "bad namespace name") != NULL, "%s", e.msg);
	cr_assert_eq(machine_net_setup("", 0, 0, &e), -1);
	cr_assert_eq(machine_net_setup(".hidden", 0, 0, &e), -1);
}
