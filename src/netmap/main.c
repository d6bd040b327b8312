/*
 * main.c - `fed-netmap`: run a relay in the foreground, look at leases.
 *
 *   fed-netmap relay --listen ADDR:PORT --to ADDR:PORT [-v]
 *   fed-netmap leases --state DIR [--json]
 *   fed-netmap lease alloc|free KEY --state DIR [--range CIDR] [--ports A-B]
 *
 * The relay is the library's relay with one mapping; it is what tests and
 * bench/netmap.sh measure.  It prints the address it listens on (one line
 * on stdout, useful with port 0) once it accepts, logs one line per
 * connection event at debug level (-v), and exits 0 on SIGTERM or SIGINT.
 * The vmrunner links the library itself; the lease commands are for people
 * and tests (they take the state lock, so not while a vmrunner runs).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "common/proc.h"
#include "common/timefmt.h"
#include "netmap/netmap.h"

/* One line on stderr; returns the exit status 1. */
static int netmap_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int
netmap_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fed-netmap: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static void
netmap_usage(FILE *f)
{
	fputs("usage: fed-netmap COMMAND [ARGS]   (fed-netmap COMMAND --help)\n\n"
	      "Private addresses and port mapping for fed's VMs.\n\n"
	      "  relay    relay TCP from --listen to --to, in the foreground\n"
	      "  leases   list the address and port leases of a state directory\n"
	      "  lease    alloc or free one lease (not while a vmrunner runs)\n",
	      f);
}

/* ---------------------------------------------------------------- relay */

static void
relay_usage(FILE *f)
{
	fputs("usage: fed-netmap relay --listen ADDR:PORT --to ADDR:PORT\n"
	      "                        [--connect-timeout MS] [--pipe-size BYTES]\n"
	      "                        [--idle-timeout S] [-v]\n\n"
	      "Relay every TCP connection accepted on --listen to --to (epoll,\n"
	      "splice, half-close).  Prints the listening address on stdout once\n"
	      "ready (PORT 0 picks a free one); SIGTERM or SIGINT stops it.\n"
	      "  --idle-timeout S  close a connection that moved no byte for S\n"
	      "                    seconds (default 600; 0: never)\n"
	      "  -v, --verbose   a log line per connection event (debug level)\n",
	      f);
}

/* "0".."86400000" into *out.  Returns 0, or -1 if it is not that. */
static int
netmap_seconds(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 86400000)
		return -1;
	*out = (int)v;
	return 0;
}

static int
cmd_relay(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "to", required_argument, NULL, 't' },
		{ "connect-timeout", required_argument, NULL, 'c' },
		{ "pipe-size", required_argument, NULL, 'p' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct relay_config cfg = { 0 };
	struct sockaddr_storage lss, tss, bound;
	socklen_t llen, tlen, blen = sizeof(bound);
	const char *listen_s = NULL, *to_s = NULL;
	char lbuf[HOSTPORT_STRLEN], tbuf[HOSTPORT_STRLEN];
	struct relay_map_info *info = NULL;
	struct relay *r = NULL;
	sigset_t sigs;
	size_t n;
	struct err e;
	int c, fd = -1, sig;

	while ((c = getopt_long(argc, argv, "l:t:c:p:i:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen_s = optarg; break;
		case 't': to_s = optarg; break;
		case 'c': cfg.connect_timeout_ms = atoi(optarg); break;
		case 'p': cfg.pipe_size = atoi(optarg); break;
		case 'i':
			if (netmap_seconds(optarg, &cfg.idle_timeout_s) < 0)
				return netmap_fail("bad --idle-timeout %s: "
						   "seconds, 0 for never", optarg);
			if (cfg.idle_timeout_s == 0)
				cfg.idle_timeout_s = -1;
			break;
		case 'v':
			cfg.log_conns = true;
			log_set_level(LOG_DEBUG);
			break;
		case 'h': relay_usage(stdout); return 0;
		default: relay_usage(stderr); return 2;
		}
	}
	if (listen_s == NULL || to_s == NULL || optind != argc) {
		relay_usage(stderr);
		return 2;
	}
	if (hostport_parse(listen_s, &lss, &llen, &e) < 0 ||
	    hostport_parse(to_s, &tss, &tlen, &e) < 0)
		return netmap_fail("%s", e.msg);

	/* signals are taken by sigwait() below, in this thread only */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	proc_raise_nofile();

	if (hostport_listen((struct sockaddr *)&lss, llen, &fd, &e) < 0)
		return netmap_fail("%s", e.msg);
	getsockname(fd, (struct sockaddr *)&bound, &blen);
	if (relay_new(&cfg, &r, &e) < 0 ||
	    relay_map_add(r, "relay", fd, (struct sockaddr *)&tss, tlen,
			  &e) < 0) {
		close(fd);
		relay_free(r);
		return netmap_fail("%s", e.msg);
	}
	hostport_format((struct sockaddr *)&bound, lbuf);
	printf("%s\n", lbuf);
	fflush(stdout);
	log_info("relaying %s to %s", lbuf,
		 hostport_format((struct sockaddr *)&tss, tbuf));

	if (sigwait(&sigs, &sig) != 0)
		sig = 0;
	if (relay_map_list(r, &info, &n, &e) == 0 && n == 1)
		log_info("signal %d: stopping after %" PRIu64 " connections "
			 "(%" PRIu64 " failed to connect, %" PRIu64 " closed "
			 "idle), %" PRIu64 " bytes up, %" PRIu64 " down", sig,
			 info[0].conns_total, info[0].connect_failed,
			 info[0].idle_closed, info[0].bytes_up,
			 info[0].bytes_down);
	free(info);
	relay_free(r);
	return 0;
}

/* ---------------------------------------------------------------- leases */

static json_t *
lease_json(const struct lease *l)
{
	char subnet[INET_ADDRSTRLEN], host[INET_ADDRSTRLEN],
	     guest[INET_ADDRSTRLEN], created[RFC3339_LEN + 1],
	     ifname[LEASE_IFNAME_MAX];

	inet_ntop(AF_INET, &l->subnet, subnet, sizeof(subnet));
	inet_ntop(AF_INET, &l->host, host, sizeof(host));
	inet_ntop(AF_INET, &l->guest, guest, sizeof(guest));
	rfc3339_format((time_t)l->created, created);
	lease_ifname(l, ifname);
	return json_pack("{s:s,s:s,s:i,s:s,s:s,s:i,s:s,s:s}", "key", l->key,
			 "subnet", subnet, "prefix", (int)l->prefix,
			 "host", host, "guest", guest, "port", (int)l->port,
			 "tap", ifname, "created", created);
}

static void
lease_print(const struct lease *l, size_t n, bool json)
{
	if (json) {
		json_t *arr = json_array();
		char *s;

		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, lease_json(&l[i]));
		s = json_dumps(arr, JSON_COMPACT);
		printf("%s\n", s ? s : "[]");
		free(s);
		json_decref(arr);
		return;
	}
	printf("%-18s %-15s %-15s %-5s %-11s %s\n", "SUBNET", "HOST", "GUEST",
	       "PORT", "TAP", "KEY");
	for (size_t i = 0; i < n; i++) {
		char subnet[INET_ADDRSTRLEN + 4], host[INET_ADDRSTRLEN],
		     guest[INET_ADDRSTRLEN], ifname[LEASE_IFNAME_MAX];

		inet_ntop(AF_INET, &l[i].subnet, subnet, INET_ADDRSTRLEN);
		snprintf(subnet + strlen(subnet), 4, "/%u", l[i].prefix);
		inet_ntop(AF_INET, &l[i].host, host, sizeof(host));
		inet_ntop(AF_INET, &l[i].guest, guest, sizeof(guest));
		lease_ifname(&l[i], ifname);
		printf("%-18s %-15s %-15s %-5u %-11s %s\n", subnet, host, guest,
		       l[i].port, ifname, l[i].key);
	}
}

static void
leases_usage(FILE *f)
{
	fputs("usage: fed-netmap leases --state DIR [--json]\n\n"
	      "List the leases kept in DIR/leases.json: subnet, host and guest\n"
	      "address, host port, tap name, key.  Reads only; safe while a\n"
	      "vmrunner runs.\n", f);
}

static int
cmd_leases(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct lease_config cfg = { .readonly = true };
	struct lease_db *db = NULL;
	struct lease *v = NULL;
	const char *state = NULL;
	bool json = false;
	size_t n;
	struct err e;
	int c;

	while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's': state = optarg; break;
		case 'j': json = true; break;
		case 'h': leases_usage(stdout); return 0;
		default: leases_usage(stderr); return 2;
		}
	}
	if (state == NULL || optind != argc) {
		leases_usage(stderr);
		return 2;
	}
	if (lease_db_open(state, &cfg, &db, &e) < 0 ||
	    lease_list(db, &v, &n, &e) < 0) {
		lease_db_close(db);
		return netmap_fail("%s", e.msg);
	}
	lease_print(v, n, json);
	free(v);
	lease_db_close(db);
	return 0;
}

static void
lease_usage(FILE *f)
{
	fputs("usage: fed-netmap lease alloc KEY --state DIR [--range CIDR]\n"
	      "                  [--ports MIN-MAX] [--bind ADDR] [--json]\n"
	      "       fed-netmap lease free KEY --state DIR\n\n"
	      "alloc: the lease for KEY (the same one again if KEY has one): a\n"
	      "/30 of CIDR (default " NETMAP_DEFAULT_RANGE ") and a host port\n"
	      "checked free by binding it.  free: release KEY's lease.  Takes\n"
	      "the state lock: refused while a vmrunner uses DIR.\n", f);
}

static int
cmd_lease(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "range", required_argument, NULL, 'r' },
		{ "ports", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct lease_config cfg = { 0 };
	struct lease_db *db = NULL;
	struct lease l;
	const char *state = NULL, *op, *key;
	unsigned a, b;
	bool json = false;
	struct err e;
	int c, fd, rc;

	while ((c = getopt_long(argc, argv, "s:r:p:b:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's': state = optarg; break;
		case 'r': cfg.range = optarg; break;
		case 'p':
			if (sscanf(optarg, "%u-%u", &a, &b) != 2 || a > 65535 ||
			    b > 65535)
				return netmap_fail("--ports %s: expected MIN-MAX",
						   optarg);
			cfg.port_min = (uint16_t)a;
			cfg.port_max = (uint16_t)b;
			break;
		case 'b': cfg.bind_addr = optarg; break;
		case 'j': json = true; break;
		case 'h': lease_usage(stdout); return 0;
		default: lease_usage(stderr); return 2;
		}
	}
	if (state == NULL || argc - optind != 2) {
		lease_usage(stderr);
		return 2;
	}
	op = argv[optind];
	key = argv[optind + 1];
	if (strcmp(op, "alloc") != 0 && strcmp(op, "free") != 0) {
		lease_usage(stderr);
		return 2;
	}
	if (lease_db_open(state, &cfg, &db, &e) < 0)
		return netmap_fail("%s", e.msg);
	if (strcmp(op, "free") == 0) {
		rc = lease_free(db, key, &e);
	} else {
		rc = lease_alloc(db, key, &l, &e);
		if (rc == 0 && (rc = lease_listen(db, key, &fd, &l, &e)) == 0) {
			close(fd);	/* the port stays recorded for key */
			lease_print(&l, 1, json);
		}
	}
	lease_db_close(db);
	if (rc < 0)
		return netmap_fail("%s", e.msg);
	return 0;
}

int
main(int argc, char **argv)
{
	log_init("fed-netmap", false);
	if (argc < 2) {
		netmap_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		netmap_usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "relay") == 0)
		return cmd_relay(argc - 1, argv + 1);
	if (strcmp(argv[1], "leases") == 0)
		return cmd_leases(argc - 1, argv + 1);
	if (strcmp(argv[1], "lease") == 0)
		return cmd_lease(argc - 1, argv + 1);
	fprintf(stderr, "fed-netmap: unknown command '%s' (see fed-netmap "
		"--help)\n", argv[1]);
	return 2;
}
