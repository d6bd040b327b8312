/*
 * netns.c - a machine's network: a namespace of its own holding one tap,
 * and the rules that keep the guest inside it (machine.h).
 *
 * The namespace has lo and the tap QEMU_TAP (QEMU_HOST_ADDR/30; the guest
 * is QEMU_GUEST_ADDR), and no route anywhere else: no veth, no forwarding.
 * Clients reach the guest through the relay, which makes its sockets in
 * the namespace (netmap's netns_socket).  On top, an nftables table
 * ("fed", machine_net_rules) refuses every connection the guest opens:
 * into the namespace's own addresses over IPv4 or IPv6 (link-local
 * included), and onwards should a route ever appear; only what the relay
 * opened comes back.  nft runs in the namespace (setns, then exec), so the
 * rules go with it.
 *
 * The one exception is a machine granted egress (machine.h, "A guest's
 * way out"): its namespace also gets an uplink, a veth pair to the host
 * (net_uplink, with iproute2), and rules that forward the granted ports
 * only, to public IPv4 only, NATed; uplink.c is the host's side.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/io.h"
#include "common/proc.h"
#include "machine/qemu.h"
#include "machine/machine.h"

/* Where `ip netns` keeps named namespaces: a bind mount of each. */
#define NETNS_RUN_DIR "/run/netns"

/* Set or clear flags of interface name through socket s. */
static int
net_if_flags(int s, const char *name, short set, struct err *e)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return err_sys(e, "%s: flags", name);
	ifr.ifr_flags |= set;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return err_sys(e, "%s: up", name);
	return 0;
}

/* An IPv4 address into a struct sockaddr of an ifreq. */
static void
net_if_addr(struct sockaddr *sa, const char *dotted)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	inet_pton(AF_INET, dotted, &sin.sin_addr);
	memcpy(sa, &sin, sizeof(sin));
}

/*
 * The machine's network in the calling thread's namespace, with ioctls as
 * `ip` would make them: lo up; a persistent tap QEMU_TAP (the machine
 * opens it by name) owned by owner:group, so a jailed machine can open it
 * with no privilege, with QEMU_TAP_MAC and QEMU_HOST_ADDR/30, up.  Five
 * `ip` processes took 20-30 ms of each resume; this takes well under one.
 */
static int
net_config(uid_t owner, gid_t group, struct err *e)
{
	unsigned int mac[6];
	struct ifreq ifr;
	int s, t = -1, rc = -1;

	if ((s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return err_sys(e, "socket");
	if (net_if_flags(s, "lo", IFF_UP, e) < 0)
		goto done;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", QEMU_TAP);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if ((t = open("/dev/net/tun", O_RDWR | O_CLOEXEC)) < 0 ||
	    ioctl(t, TUNSETIFF, &ifr) < 0 ||
	    ioctl(t, TUNSETOWNER, (unsigned long)owner) < 0 ||
	    ioctl(t, TUNSETGROUP, (unsigned long)group) < 0 ||
	    ioctl(t, TUNSETPERSIST, 1) < 0) {
		err_sys(e, "tap %s", QEMU_TAP);
		goto done;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", QEMU_TAP);
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	sscanf(QEMU_TAP_MAC, "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2],
	       &mac[3], &mac[4], &mac[5]);
	for (int i = 0; i < 6; i++)
		ifr.ifr_hwaddr.sa_data[i] = (char)mac[i];
	if (ioctl(s, SIOCSIFHWADDR, &ifr) < 0) {
		err_sys(e, "%s: address %s", QEMU_TAP, QEMU_TAP_MAC);
		goto done;
	}
	net_if_addr(&ifr.ifr_addr, QEMU_HOST_ADDR);
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0) {
		err_sys(e, "%s: address %s", QEMU_TAP, QEMU_HOST_ADDR);
		goto done;
	}
	net_if_addr(&ifr.ifr_netmask, "255.255.255.252");	/* /30 */
	if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0) {
		err_sys(e, "%s: netmask", QEMU_TAP);
		goto done;
	}
	rc = net_if_flags(s, QEMU_TAP, IFF_UP, e);
done:
	if (t >= 0)
		close(t);
	close(s);
	return rc;
}

struct net_job {
	const char *path;		/* NETNS_RUN_DIR/name, created empty */
	uid_t owner;
	gid_t group;
	struct err e;
	int rc;
};

/* Thread: a new namespace for this thread alone, pinned at job->path as
 * `ip netns add` pins it, then configured.  The thread then ends; the
 * namespace lives on in its bind mount. */
static void *
net_thread(void *arg)
{
	struct net_job *job = arg;

	job->rc = -1;
	if (unshare(CLONE_NEWNET) < 0)
		err_sys(&job->e, "new network namespace");
	else if (mount("/proc/thread-self/ns/net", job->path, "none", MS_BIND,
		       NULL) < 0)
		err_sys(&job->e, "bind %s", job->path);
	else
		job->rc = net_config(job->owner, job->group, &job->e);
	return NULL;
}

/*
 * The egress rules.  A guest may answer what reaches it (the relay's
 * connections: established, related); any packet it starts a connection
 * with is dropped, whatever its address, and nothing is forwarded, except,
 * with an uplink, new connections for the granted rules to public IPv4
 * addresses, out of the uplink and NATed.  ICMP errors of established
 * flows pass as related.
 */
static const char net_rules_head[] =
	"table inet fed {\n"
	"	chain input {\n"
	"		type filter hook input priority filter; policy drop;\n"
	"		iif lo accept\n"
	"		ct state established,related accept\n"
	"	}\n"
	"	chain forward {\n"
	"		type filter hook forward priority filter; policy drop;\n";

/* Where no guest may go, however much egress it is granted: "this"
 * network, private (RFC 1918), shared (RFC 6598, holding the uplinks
 * themselves), loopback, link-local (the cloud metadata address among
 * them), IETF protocol assignments, benchmarking, multicast, reserved and
 * broadcast. */
static const char net_blocked[] =
	"0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, "
	"172.16.0.0/12, 192.0.0.0/24, 192.168.0.0/16, 198.18.0.0/15, "
	"224.0.0.0/3";

/* Append printf output to out[*used..size); false once it does not fit. */
static bool
net_put(char *out, size_t size, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static bool
net_put(char *out, size_t size, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= size)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(out + *used, size - *used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size - *used)
		return false;
	*used += (size_t)n;
	return true;
}

int
machine_net_rules(const struct machine_uplink *up, char *out, size_t size)
{
	size_t used = 0;
	bool ok = net_put(out, size, &used, "%s", net_rules_head);

	if (up != NULL) {
		ok = ok && net_put(out, size, &used,
				   "		ct state established,related accept\n"
				   "		ip daddr { %s } drop\n", net_blocked);
		for (unsigned i = 0; ok && i < up->grant.n; i++)
			ok = net_put(out, size, &used,
				     "		iifname \"%s\" oifname \"%s\" "
				     "ct state new %s dport %u accept\n",
				     QEMU_TAP, MACHINE_UPLINK_IF,
				     up->grant.r[i].proto == EGRESS_TCP ?
				     "tcp" : "udp", (unsigned)up->grant.r[i].port);
	}
	ok = ok && net_put(out, size, &used, "	}\n");
	if (up != NULL)
		ok = ok && net_put(out, size, &used,
				   "	chain postrouting {\n"
				   "		type nat hook postrouting priority "
				   "srcnat;\n"
				   "		oifname \"%s\" masquerade\n"
				   "	}\n", MACHINE_UPLINK_IF);
	ok = ok && net_put(out, size, &used, "}\n");
	return ok ? (int)used : -1;
}

int
machine_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = write_full(fd, text, strlen(text));
	close(fd);
	return rc;
}

/*
 * Run argv with input on its stdin, in the network namespace pinned at
 * nspath (NULL: this one), having turned IPv4 forwarding on there first if
 * forward.  What it prints goes to our stderr.  Returns 0, or -1 with e
 * naming what (as "nft could not load the egress rules").
 */
int
machine_run_input(const char *nspath, char *const argv[], const char *input,
	 bool forward, const char *what, struct err *e)
{
	int in[2], ns = -1, status = 0;
	ssize_t w;
	pid_t pid;

	if (nspath != NULL && (ns = open(nspath, O_RDONLY | O_CLOEXEC)) < 0)
		return err_sys(e, "%s", nspath);
	if (pipe2(in, O_CLOEXEC) < 0) {
		if (ns >= 0)
			close(ns);
		return err_sys(e, "pipe");
	}
	if ((pid = fork()) == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (ns >= 0 && setns(ns, CLONE_NEWNET) < 0)
			_exit(126);
		/* /proc/sys/net is the namespace of whoever opens it */
		if (forward && machine_write_file("/proc/sys/net/ipv4/ip_forward",
					      "1\n") < 0)
			_exit(125);
		dup2(in[0], 0);
		proc_close_from(3);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (ns >= 0)
		close(ns);
	close(in[0]);
	if (pid < 0) {
		close(in[1]);
		return err_sys(e, "fork");
	}
	w = write(in[1], input, strlen(input));
	close(in[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (w < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return err_set(e, "%s could not %s (status %d%s)", argv[0],
			       what, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			       WIFEXITED(status) && WEXITSTATUS(status) == 127 ?
			       ": is it installed?" : "");
	return 0;
}

static int
net_fence(const char *path, const struct machine_uplink *up, struct err *e)
{
	char *argv[] = { "nft", "-f", "-", NULL };
	char rules[4096];

	if (machine_net_rules(up, rules, sizeof(rules)) < 0)
		return err_set(e, "egress rules: too many");
	return machine_run_input(path, argv, rules, up != NULL, "load the egress rules",
			e);
}

/* The veth pair of up, its host end here and MACHINE_UPLINK_IF in the
 * namespace netns (pinned at path), addressed, up, and the namespace's
 * default route through it (iproute2, in batch mode: two processes). */
static int
net_uplink(const char *netns, const char *path,
	   const struct machine_uplink *up, struct err *e)
{
	char host_cmds[512], ns_cmds[256], h[INET_ADDRSTRLEN], n[INET_ADDRSTRLEN];
	char *host_argv[] = { "ip", "-batch", "-", NULL };
	char *ns_argv[] = { "ip", "-batch", "-", NULL };

	/* one left by a crash (its namespace kept alive by a machine the
	 * restart has not killed yet) */
	if (if_nametoindex(up->host_if) != 0) {
		char *del[] = { "ip", "link", "del", (char *)up->host_if, NULL };

		machine_run_input(NULL, del, "", false, "delete a stale uplink", e);
	}
	inet_ntop(AF_INET, &up->host_addr, h, sizeof(h));
	inet_ntop(AF_INET, &up->ns_addr, n, sizeof(n));
	snprintf(host_cmds, sizeof(host_cmds),
		 "link add %s type veth peer name %s netns %s\n"
		 "addr add %s/30 dev %s\n"
		 "link set %s up\n",
		 up->host_if, MACHINE_UPLINK_IF, netns, h, up->host_if,
		 up->host_if);
	snprintf(ns_cmds, sizeof(ns_cmds),
		 "addr add %s/30 dev %s\n"
		 "link set %s up\n"
		 "route add default via %s dev %s\n",
		 n, MACHINE_UPLINK_IF, MACHINE_UPLINK_IF, h, MACHINE_UPLINK_IF);
	if (machine_run_input(NULL, host_argv, host_cmds, false, "make the uplink",
		     e) < 0)
		return -1;
	return machine_run_input(path, ns_argv, ns_cmds, false,
			"address the uplink", e);
}

int
machine_net_setup(const char *netns, uid_t owner, gid_t group,
		  const struct machine_uplink *up, struct err *e)
{
	struct net_job job;
	char path[PATH_MAX];
	pthread_t t;
	int fd;

	if (netns == NULL)
		return net_config(owner, group, e);
	if (netns[0] == '\0' || netns[0] == '.' || strchr(netns, '/') != NULL)
		return err_set(e, "bad namespace name '%s'", netns);
	machine_net_delete(netns);	/* a leftover of a crash */
	/* NETNS_RUN_DIR a shared mount point, as iproute2 makes it, so the
	 * bind mounts in it show in every mount namespace */
	if (mkdir(NETNS_RUN_DIR, 0755) < 0 && errno != EEXIST)
		return err_sys(e, "mkdir %s", NETNS_RUN_DIR);
	if (mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) < 0 &&
	    (errno != EINVAL ||
	     mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC,
		   NULL) < 0 ||
	     mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) < 0))
		return err_sys(e, "mount %s", NETNS_RUN_DIR);
	snprintf(path, sizeof(path), "%s/%s", NETNS_RUN_DIR, netns);
	if ((fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0)) < 0)
		return err_sys(e, "create %s", path);
	close(fd);
	memset(&job, 0, sizeof(job));
	job.path = path;
	job.owner = owner;
	job.group = group;
	if (pthread_create(&t, NULL, net_thread, &job) != 0) {
		unlink(path);
		return err_set(e, "namespace %s: cannot start a thread", netns);
	}
	pthread_join(t, NULL);
	if (job.rc == 0 && up != NULL)
		job.rc = net_uplink(netns, path, up, &job.e);
	if (job.rc == 0)
		job.rc = net_fence(path, up, &job.e);
	if (job.rc < 0) {
		machine_net_delete(netns);
		return err_set(e, "network for the machine in %s: %s", netns,
			       job.e.msg);
	}
	return 0;
}

void
machine_net_delete(const char *netns)
{
	char path[PATH_MAX];

	if (netns[0] == '\0' || netns[0] == '.' || strchr(netns, '/') != NULL)
		return;
	snprintf(path, sizeof(path), "%s/%s", NETNS_RUN_DIR, netns);
	umount2(path, MNT_DETACH);
	unlink(path);
}

