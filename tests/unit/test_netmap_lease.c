/*
 * test_netmap_lease.c - address leases and host ports: the addressing plan
 * (/30 per VM, host .1, guest .2), persistence across a reopen, no address
 * or port handed out twice, exhaustion, freeing, one writer per state
 * directory, a damaged state file refused, ports checked by binding.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/testutil.h"
#include "netmap/netmap.h"

static char *dir;
static void setup(void) { dir = tu_tmpdir(); }
static void teardown(void) { tu_rmtree(dir); free(dir); }

TestSuite(lease, .init = setup, .fini = teardown, .timeout = 30);

static const char *
ip(struct in_addr a)
{
	static char buf[4][INET_ADDRSTRLEN];
	static int i;

	i = (i + 1) % 4;
	return inet_ntop(AF_INET, &a, buf[i], INET_ADDRSTRLEN);
}

static struct lease_db *
open_db(const char *range, uint16_t pmin, uint16_t pmax)
{
	struct lease_config cfg = { .range = range, .port_min = pmin,
				    .port_max = pmax, .bind_addr = "127.0.0.1" };
	struct lease_db *db = NULL;
	struct err e;

	cr_assert_eq(lease_db_open(dir, &cfg, &db, &e), 0, "%s", e.msg);
	return db;
}

/* Ten ports of our own per test process, below the ephemeral range. */
static uint16_t
port_base(void)
{
	return (uint16_t)(30000 + (getpid() % 270) * 10);
}

Test(lease, first_leases_are_consecutive_slash30s)
{
	struct lease_db *db = open_db(NULL, 0, 0);
	struct lease a, b, again;
	char ifa[LEASE_IFNAME_MAX], ifb[LEASE_IFNAME_MAX];
	struct err e;

	cr_assert_eq(lease_alloc(db, "snap-a/0", &a, &e), 0, "%s", e.msg);
	cr_assert_str_eq(ip(a.subnet), "10.77.0.0");
	cr_assert_str_eq(ip(a.host), "10.77.0.1");
	cr_assert_str_eq(ip(a.guest), "10.77.0.2");
	cr_assert_eq(a.prefix, 30);
	cr_assert_eq(a.port, 0);
	cr_assert_eq(lease_alloc(db, "snap-b/0", &b, &e), 0, "%s", e.msg);
	cr_assert_str_eq(ip(b.guest), "10.77.0.6");
	cr_assert_eq(lease_alloc(db, "snap-a/0", &again, &e), 0, "%s", e.msg);
	cr_assert_eq(again.guest.s_addr, a.guest.s_addr,
		     "asking again gives the same lease");
	lease_ifname(&a, ifa);
	lease_ifname(&b, ifb);
	cr_assert_str_eq(ifa, "fed0a4d0002");
	cr_assert_str_neq(ifa, ifb);
	cr_assert_lt(strlen(ifa), 16);
	lease_db_close(db);
}

Test(lease, survives_reopen_with_same_address_and_port)
{
	struct lease_db *db = open_db("10.77.0.0/24", port_base(),
				      (uint16_t)(port_base() + 9));
	struct lease a, b, c, got;
	struct err e;
	int fd;

	cr_assert_eq(lease_alloc(db, "a", &a, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_alloc(db, "b", &b, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_listen(db, "a", &fd, &a, &e), 0, "%s", e.msg);
	cr_assert_neq(a.port, 0);
	close(fd);
	lease_db_close(db);

	db = open_db("10.77.0.0/24", port_base(), (uint16_t)(port_base() + 9));
	cr_assert_eq(lease_get(db, "a", &got), 0);
	cr_assert_eq(got.guest.s_addr, a.guest.s_addr);
	cr_assert_eq(got.port, a.port, "the port is kept with the lease");
	cr_assert_eq(lease_get(db, "b", &got), 0);
	cr_assert_eq(got.guest.s_addr, b.guest.s_addr);
	cr_assert_eq(lease_alloc(db, "a", &got, &e), 0, "%s", e.msg);
	cr_assert_eq(got.guest.s_addr, a.guest.s_addr);
	cr_assert_eq(lease_alloc(db, "c", &c, &e), 0, "%s", e.msg);
	cr_assert_neq(c.subnet.s_addr, a.subnet.s_addr);
	cr_assert_neq(c.subnet.s_addr, b.subnet.s_addr);
	/* the same port again after the restart */
	cr_assert_eq(lease_listen(db, "a", &fd, &got, &e), 0, "%s", e.msg);
	cr_assert_eq(got.port, a.port);
	close(fd);
	lease_db_close(db);
}

Test(lease, never_hands_an_address_out_twice)
{
	/* a /22 holds 256 /30s; take them in two sittings */
	struct lease_db *db = open_db("10.77.4.0/22", 0, 0);
	static uint32_t seen[256];
	struct lease l;
	char key[32];
	struct err e;

	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "vm-%d", i);
		cr_assert_eq(lease_alloc(db, key, &l, &e), 0, "%s", e.msg);
		seen[i] = ntohl(l.subnet.s_addr);
	}
	lease_db_close(db);
	db = open_db("10.77.4.0/22", 0, 0);
	for (int i = 200; i < 256; i++) {
		snprintf(key, sizeof(key), "vm-%d", i);
		cr_assert_eq(lease_alloc(db, key, &l, &e), 0, "%s", e.msg);
		seen[i] = ntohl(l.subnet.s_addr);
	}
	for (int i = 0; i < 256; i++) {
		cr_assert_eq(seen[i] & 3, 0, "aligned /30");
		cr_assert_geq(seen[i], 0x0a4d0400u);
		cr_assert_lt(seen[i], 0x0a4d0800u);
		for (int j = 0; j < i; j++)
			cr_assert_neq(seen[i], seen[j], "lease %d == lease %d",
				      i, j);
	}
	cr_assert_eq(lease_alloc(db, "one-too-many", &l, &e), -1);
	lease_db_close(db);
}

Test(lease, exhaustion_is_a_clear_error_and_free_makes_room)
{
	struct lease_db *db = open_db("10.77.9.0/28", 0, 0);	/* 4 x /30 */
	struct lease l, freed, got;
	struct err e;

	for (int i = 0; i < 4; i++) {
		char key[8];

		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(lease_alloc(db, key, &l, &e), 0, "%s", e.msg);
		if (i == 2)
			freed = l;
	}
	cr_assert_eq(lease_alloc(db, "k4", &l, &e), -1);
	cr_assert(strstr(e.msg, "no free address in 10.77.9.0/28") != NULL,
		  "%s", e.msg);
	cr_assert_eq(lease_free(db, "k2", &e), 0, "%s", e.msg);
	cr_assert_eq(lease_get(db, "k2", &got), -1);
	cr_assert_eq(lease_free(db, "k2", &e), -1, "freeing twice fails");
	cr_assert(strstr(e.msg, "no lease for 'k2'") != NULL, "%s", e.msg);
	lease_db_close(db);

	/* the free was persisted: after a reopen the freed /30 is taken again */
	db = open_db("10.77.9.0/28", 0, 0);
	cr_assert_eq(lease_get(db, "k2", &got), -1);
	cr_assert_eq(lease_alloc(db, "k4", &l, &e), 0, "%s", e.msg);
	cr_assert_eq(l.subnet.s_addr, freed.subnet.s_addr);
	cr_assert_eq(lease_alloc(db, "k5", &l, &e), -1);
	lease_db_close(db);
}

Test(lease, one_writer_per_state_dir_readers_welcome)
{
	struct lease_config ro = { .readonly = true };
	struct lease_db *db = open_db(NULL, 0, 0), *db2 = NULL, *rdb = NULL;
	struct lease l, *v;
	size_t n;
	struct err e;

	cr_assert_eq(lease_alloc(db, "x", &l, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_db_open(dir, NULL, &db2, &e), -1);
	cr_assert(strstr(e.msg, "in use by another process") != NULL, "%s",
		  e.msg);
	cr_assert_eq(lease_db_open(dir, &ro, &rdb, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_list(rdb, &v, &n, &e), 0, "%s", e.msg);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].key, "x");
	free(v);
	cr_assert_eq(lease_alloc(rdb, "y", &l, &e), -1, "read-only");
	lease_db_close(rdb);
	lease_db_close(db);
	cr_assert_eq(lease_db_open(dir, NULL, &db2, &e), 0, "%s", e.msg);
	lease_db_close(db2);
}

Test(lease, state_file_is_json_written_atomically)
{
	struct lease_db *db = open_db(NULL, 0, 0);
	char *path = tu_path(dir, "leases.json"), *tmp = tu_path(dir, "leases.json.tmp");
	struct lease l;
	struct stat st;
	uint8_t *text;
	size_t len;
	struct err e;

	cr_assert_eq(lease_alloc(db, "web/0", &l, &e), 0, "%s", e.msg);
	text = tu_read_file(path, &len);
	text[len] = '\0';	/* tu_read_file leaves room for it */
	cr_assert(strstr((char *)text, "\"key\": \"web/0\"") != NULL, "%s", text);
	cr_assert(strstr((char *)text, "\"guest\": \"10.77.0.2\"") != NULL);
	cr_assert(strstr((char *)text, "\"subnet\": \"10.77.0.0/30\"") != NULL);
	cr_assert_eq(stat(tmp, &st), -1, "no temporary file left behind");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 077, 0, "state is private");
	free(text);
	free(path);
	free(tmp);
	lease_db_close(db);
}

Test(lease, damaged_state_is_refused_not_reset)
{
	char *path = tu_path(dir, "leases.json");
	struct lease_db *db = NULL;
	struct err e;
	const char *dup = "{\"version\":1,\"leases\":["
		"{\"key\":\"a\",\"subnet\":\"10.77.0.0/30\",\"port\":0,"
		"\"created\":\"2026-01-01T00:00:00Z\"},"
		"{\"key\":\"b\",\"subnet\":\"10.77.0.0/30\",\"port\":0,"
		"\"created\":\"2026-01-01T00:00:00Z\"}]}";

	tu_write_file(path, "{\"version\":1,\"leases\":[", 23);
	cr_assert_eq(lease_db_open(dir, NULL, &db, &e), -1);
	cr_assert(strstr(e.msg, "leases.json") != NULL, "%s", e.msg);
	tu_write_file(path, dup, strlen(dup));
	cr_assert_eq(lease_db_open(dir, NULL, &db, &e), -1);
	cr_assert(strstr(e.msg, "leased twice") != NULL, "%s", e.msg);
	free(path);
}

Test(lease, bad_ranges_and_keys_are_refused)
{
	struct lease_config cfg = { 0 };
	struct lease_db *db = NULL;
	struct lease l;
	struct err e;

	cfg.range = "10.77.0.0/31";
	cr_assert_eq(lease_db_open(dir, &cfg, &db, &e), -1);
	cr_assert(strstr(e.msg, "prefix") != NULL, "%s", e.msg);
	cfg.range = "10.77.0.1/24";
	cr_assert_eq(lease_db_open(dir, &cfg, &db, &e), -1);
	cr_assert(strstr(e.msg, "host bits") != NULL, "%s", e.msg);
	cfg.range = "ten.77/16";
	cr_assert_eq(lease_db_open(dir, &cfg, &db, &e), -1);
	cfg.range = NULL;
	cfg.port_min = 300;
	cfg.port_max = 200;
	cr_assert_eq(lease_db_open(dir, &cfg, &db, &e), -1);

	db = open_db(NULL, 0, 0);
	cr_assert_eq(lease_alloc(db, "", &l, &e), -1);
	cr_assert_eq(lease_alloc(db, "has space", &l, &e), -1);
	cr_assert(strstr(e.msg, "printable") != NULL, "%s", e.msg);
	lease_db_close(db);
}

Test(lease, port_is_bound_listening_and_in_range)
{
	uint16_t lo = port_base(), hi = (uint16_t)(port_base() + 9);
	struct lease_db *db = open_db(NULL, lo, hi);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct lease l;
	int fd, on = 0;
	socklen_t olen = sizeof(on);
	struct err e;

	cr_assert_eq(lease_listen(db, "nobody", &fd, &l, &e), -1);
	cr_assert_eq(lease_alloc(db, "a", &l, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_listen(db, "a", &fd, &l, &e), 0, "%s", e.msg);
	cr_assert_geq(l.port, lo);
	cr_assert_leq(l.port, hi);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	cr_assert_eq(hostport_port((struct sockaddr *)&ss), l.port);
	cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen), 0);
	cr_assert(on, "the socket is listening");
	close(fd);
	lease_db_close(db);
}

Test(lease, taken_port_is_replaced_and_the_new_one_persisted)
{
	uint16_t lo = port_base(), hi = (uint16_t)(port_base() + 9);
	struct lease_db *db = open_db(NULL, lo, hi);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct lease l, got;
	int fd, squatter;
	uint16_t first;
	struct err e;

	cr_assert_eq(lease_alloc(db, "a", &l, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_listen(db, "a", &fd, &l, &e), 0, "%s", e.msg);
	first = l.port;
	close(fd);
	/* someone else takes the port while the VM is down */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(first);
	cr_assert_eq(hostport_listen((struct sockaddr *)&sin, sizeof(sin),
				     &squatter, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_listen(db, "a", &fd, &l, &e), 0, "%s", e.msg);
	cr_assert_neq(l.port, first);
	close(fd);
	lease_db_close(db);
	db = open_db(NULL, lo, hi);
	cr_assert_eq(lease_get(db, "a", &got), 0);
	cr_assert_eq(got.port, l.port, "the new port is what is persisted");
	close(squatter);
	lease_db_close(db);
}

Test(lease, ports_are_not_shared_and_run_out_clearly)
{
	/* three ports, one of them busy: two leases fit, the third does not */
	uint16_t lo = port_base(), hi = (uint16_t)(port_base() + 2);
	struct lease_db *db = open_db(NULL, lo, hi);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct lease a, b, c;
	int fa, fb, fc, busy;
	struct err e;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(lo);
	cr_assert_eq(hostport_listen((struct sockaddr *)&sin, sizeof(sin),
				     &busy, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_alloc(db, "a", &a, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_alloc(db, "b", &b, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_alloc(db, "c", &c, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_listen(db, "a", &fa, &a, &e), 0, "%s", e.msg);
	close(fa);	/* a's port stays reserved for a though unbound */
	cr_assert_eq(lease_listen(db, "b", &fb, &b, &e), 0, "%s", e.msg);
	cr_assert_neq(a.port, b.port);
	cr_assert_neq(a.port, lo);
	cr_assert_neq(b.port, lo);
	cr_assert_eq(lease_listen(db, "c", &fc, &c, &e), -1);
	cr_assert(strstr(e.msg, "no free host port") != NULL, "%s", e.msg);
	/* freeing a releases its port for c */
	cr_assert_eq(lease_free(db, "a", &e), 0, "%s", e.msg);
	cr_assert_eq(lease_listen(db, "c", &fc, &c, &e), 0, "%s", e.msg);
	cr_assert_eq(c.port, a.port);
	close(fb);
	close(fc);
	close(busy);
	lease_db_close(db);
}

Test(lease, hostport_parse_and_format)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[HOSTPORT_STRLEN];
	struct err e;

	cr_assert_eq(hostport_parse("127.0.0.1:8080", &ss, &len, &e), 0, "%s",
		     e.msg);
	cr_assert_str_eq(hostport_format((struct sockaddr *)&ss, buf),
			 "127.0.0.1:8080");
	cr_assert_eq(hostport_parse("[::1]:80", &ss, &len, &e), 0, "%s", e.msg);
	cr_assert_str_eq(hostport_format((struct sockaddr *)&ss, buf),
			 "[::1]:80");
	cr_assert_eq(hostport_parse("127.0.0.1", &ss, &len, &e), -1);
	cr_assert_eq(hostport_parse("127.0.0.1:99999", &ss, &len, &e), -1);
	cr_assert_eq(hostport_parse(":80", &ss, &len, &e), -1);
}

/* A newer version takes over its older one's host port: the move is on
 * disk, so after a restart the new key listens on that port again and
 * the old key (its address still leased) has none. */
Test(lease, a_port_moves_to_the_newer_version_and_stays_there)
{
	struct lease_db *db = open_db("10.77.0.0/24", port_base(),
				      (uint16_t)(port_base() + 9));
	struct lease a, b, got;
	struct err e;
	int fd;

	cr_assert_eq(lease_alloc(db, "v1", &a, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_listen(db, "v1", &fd, &a, &e), 0, "%s", e.msg);
	close(fd);
	cr_assert_eq(lease_alloc(db, "v2", &b, &e), 0, "%s", e.msg);
	cr_assert_eq(lease_move_port(db, "v1", "v2", &e), 0, "%s", e.msg);
	cr_assert_eq(lease_move_port(db, "v1", "nobody", &e), -1);
	lease_db_close(db);

	db = open_db("10.77.0.0/24", port_base(), (uint16_t)(port_base() + 9));
	cr_assert_eq(lease_get(db, "v2", &got), 0);
	cr_assert_eq(got.port, a.port, "the port did not move");
	cr_assert_eq(lease_get(db, "v1", &got), 0);
	cr_assert_eq(got.port, 0);
	cr_assert_eq(got.guest.s_addr, a.guest.s_addr);
	cr_assert_eq(lease_listen(db, "v2", &fd, &got, &e), 0, "%s", e.msg);
	cr_assert_eq(got.port, a.port);
	close(fd);
	lease_db_close(db);
}
