/*
 * test_client.c - the client side of fed (src/client/, fed get, fed proxy,
 * fed audit) against a real authority (authfix) and "peers" that are real
 * HTTP servers (libmicrohttpd on 127.0.0.1 ephemeral ports) announced as
 * serving the service.
 *
 * What is checked: peer selection as pure functions; lookups answered from
 * the cache within the ttl with the authority stopped, the stale answer
 * used when the authority is down, unknown names through DNS; fetching
 * with failover when a peer refuses, and the preference for the faster of
 * two peers; the proxy for plain HTTP (with a POST body), CONNECT, an
 * oversized head and no peer answering; the audit finding a peer that
 * serves another page, and --report removing it from lookups.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "cli/cli.h"
#include "client/client.h"
#include "common/crypto.h"
#include "common/log.h"
#include "lib/authfix.h"
#include "lib/testutil.h"

#define SVC_HOST "svc.fed.test"
#define SVC_PORT 80
#define PEERS_MAX 3

/* One peer: an HTTP server answering every GET with its page. */
struct tpeer {
	struct MHD_Daemon *d;
	uint16_t port;
	const char *page;
	unsigned delay_ms;
	atomic_int hits;
	char host_seen[128];		/* Host header of the last request */
	struct tkey key;
};

static struct authfix F;
static struct tpeer P[PEERS_MAX];
static char *cache;			/* the client's cache directory */
static struct tkey owner;
static char snap_id[65];

static void
setup(void)
{
	authfix_start(&F, NULL);
	cache = tu_tmpdir();
	memset(P, 0, sizeof(P));
}

static void
teardown(void)
{
	for (int i = 0; i < PEERS_MAX; i++)
		if (P[i].d != NULL)
			MHD_stop_daemon(P[i].d);
	authfix_stop(&F);
	if (cache != NULL)
		tu_rmtree(cache);
	free(cache);
	cache = NULL;
}

TestSuite(client, .init = setup, .fini = teardown, .timeout = 60);

struct upload {
	char buf[4096];
	size_t len;
};

static enum MHD_Result
tpeer_answer(void *cls, struct MHD_Connection *conn, const char *url,
	     const char *method, const char *version, const char *data,
	     size_t *data_len, void **state)
{
	struct tpeer *p = cls;
	struct MHD_Response *r;
	const char *host;
	char body[8192];
	enum MHD_Result ret;
	unsigned status = 200;

	(void)version;
	if (strcmp(method, "POST") == 0) {
		struct upload *u = *state;

		if (u == NULL) {
			*state = calloc(1, sizeof(*u));
			return *state ? MHD_YES : MHD_NO;
		}
		if (*data_len > 0) {
			size_t n = *data_len;

			if (n > sizeof(u->buf) - u->len)
				n = sizeof(u->buf) - u->len;
			memcpy(u->buf + u->len, data, n);
			u->len += n;
			*data_len = 0;
			return MHD_YES;
		}
		snprintf(body, sizeof(body), "posted %zu: %.*s", u->len,
			 (int)u->len, u->buf);
		free(u);
		*state = NULL;
	} else if (strcmp(url, "/missing") == 0) {
		status = 404;
		snprintf(body, sizeof(body), "not here");
	} else {
		snprintf(body, sizeof(body), "%s", p->page);
	}
	host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					   "Host");
	snprintf(p->host_seen, sizeof(p->host_seen), "%s", host ? host : "");
	if (p->delay_ms > 0) {
		struct timespec ts = { 0, (long)p->delay_ms * 1000000L };

		nanosleep(&ts, NULL);	/* the peer is slow: the scenario */
	}
	atomic_fetch_add(&p->hits, 1);
	r = MHD_create_response_from_buffer(strlen(body), body,
					    MHD_RESPMEM_MUST_COPY);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static void
tpeer_start(struct tpeer *p, const char *page, unsigned delay_ms)
{
	const union MHD_DaemonInfo *info;
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->page = page;
	p->delay_ms = delay_ms;
	p->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
				MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
				tpeer_answer, p, MHD_OPTION_SOCK_ADDR, &sa,
				MHD_OPTION_END);
	cr_assert_not_null(p->d, "peer server did not start");
	info = MHD_get_daemon_info(p->d, MHD_DAEMON_INFO_BIND_PORT);
	cr_assert_not_null(info);
	p->port = info->port;
}

/* A loopback port nobody listens on (connections are refused). */
static uint16_t
dead_port(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* The owner announces SVC_HOST:SVC_PORT with a trusted base and kernel. */
static void
world_make(void)
{
	char base[65], kernel[65];
	json_t *reply;
	long st;

	tkey_new(&owner);
	af_register(&F, &owner, "127.0.0.1:7000");
	af_trust(&F, "base", base);
	af_trust(&F, "kernel", kernel);
	st = af_announce(&F, &owner, &owner, SVC_HOST, SVC_PORT, 1, base,
			 kernel, snap_id, &reply);
	cr_assert_eq(st, 201, "announce: %ld %s", st, af_error(reply));
	json_decref(reply);
}

/* Peer p (its server running, or port given) commits and reports up. */
static void
world_serve(struct tpeer *p, uint16_t port)
{
	char addr[64];

	tkey_new(&p->key);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", 7100 + (port % 800));
	af_register(&F, &p->key, addr);
	af_commit_up(&F, &p->key, snap_id, "127.0.0.1", port);
}

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

/* ---- selection, pure ---- */

Test(client, select_first_round_then_cheapest_then_explore)
{
	struct client_stat a = { .key = "a" }, b = { .key = "b" },
			   c = { .key = "c" };
	const struct client_stat *ss[3] = { NULL, NULL, NULL };
	size_t order[3];

	/* nobody measured: round-robin by the request counter */
	client_select_order(ss, 3, 0, order);
	cr_expect_eq(order[0], 0);
	client_select_order(ss, 3, 1, order);
	cr_expect_eq(order[0], 1);
	client_select_order(ss, 3, 5, order);
	cr_expect_eq(order[0], 2);

	/* a measured, b and c not: an untried one first */
	client_stat_success(&a, 0.010, 100, 0.0, 1000);
	ss[0] = &a;
	client_select_order(ss, 3, 0, order);
	cr_expect_neq(order[0], 0, "a measured peer went before untried ones");
	cr_expect_eq(order[2], 0);

	/* all measured: the cheapest first */
	client_stat_success(&b, 0.100, 100, 0.0, 2000);
	client_stat_success(&c, 0.050, 100, 0.0, 3000);
	ss[1] = &b;
	ss[2] = &c;
	client_select_order(ss, 3, 0, order);
	cr_expect_eq(order[0], 0);
	cr_expect_eq(order[1], 2);
	cr_expect_eq(order[2], 1);

	/* exploration: every CLIENT_EXPLORE_EVERY-th request, the peer
	 * tried longest ago (a, at 1000) first even if not cheapest */
	a.latency_s = 0.5;
	client_select_order(ss, 3, CLIENT_EXPLORE_EVERY - 1, order);
	cr_expect_eq(order[0], 0, "exploration did not pick the stalest");
	client_select_order(ss, 3, CLIENT_EXPLORE_EVERY, order);
	cr_expect_eq(order[0], 2);

	/* a failure puts a peer behind every working one */
	client_stat_failure(&c, 4000);
	client_select_order(ss, 3, 0, order);
	cr_expect_eq(order[2], 2, "a failed peer was not last");
	/* and one success brings it back */
	client_stat_success(&c, 0.001, 100, 0.0, 5000);
	client_select_order(ss, 3, 0, order);
	cr_expect_eq(order[0], 2);
}

Test(client, select_ewma_and_bandwidth)
{
	struct client_stat s = { .key = "s" };

	client_stat_success(&s, 0.100, 1 << 20, 1.0, 1);
	cr_expect_float_eq(s.latency_s, 0.100, 1e-9);
	cr_expect_float_eq(s.bw_Bps, 1048576.0, 1e-3);
	client_stat_success(&s, 0.200, 100, 0.0, 2);	/* too small for bw */
	cr_expect_float_eq(s.latency_s, 0.3 * 0.2 + 0.7 * 0.1, 1e-9);
	cr_expect_float_eq(s.bw_Bps, 1048576.0, 1e-3);
	cr_expect_float_eq(client_stat_cost(&s, 1048576.0), s.latency_s + 1.0,
			   1e-9);
}

Test(client, stats_persist_across_loads)
{
	char *path = tu_path(cache, "peers.json");
	struct client_peer p = { .addr = "127.0.0.1", .port = 9 };
	struct client_stats *st;
	struct err e;
	char key[256];

	memset(p.peer, 'a', 64);
	st = client_stats_load(path, &e);
	cr_assert_not_null(st, "%s", e.msg);
	client_stats_record(st, &p, true, 0.25, 10, 0.0);
	client_stats_record(st, &p, false, 0, 0, 0);
	client_stats_free(st);
	st = client_stats_load(path, &e);
	cr_assert_not_null(st);
	cr_assert_eq(st->n, 1);
	client_stat_key(&p, key, sizeof(key));
	cr_expect_str_eq(st->s[0].key, key);
	cr_expect_eq(st->s[0].samples, 1);
	cr_expect_eq(st->s[0].fails, 1);
	cr_expect_float_eq(st->s[0].latency_s, 0.25, 1e-9);
	client_stats_free(st);
	free(path);
}

/* ---- lookup ---- */

Test(client, lookup_cached_within_ttl_answers_without_authority)
{
	struct client_lookup l;
	struct err e;

	world_make();
	tpeer_start(&P[0], "page", 0);
	world_serve(&P[0], P[0].port);
	cr_assert_eq(client_lookup(F.url, cache, SVC_HOST, SVC_PORT, now_s(),
				   &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.source, CLIENT_SRC_AUTHORITY);
	cr_assert_eq(l.npeers, 1);
	cr_expect_eq(l.peers[0].port, P[0].port);
	cr_expect_gt(l.ttl, 1);
	client_lookup_free(&l);

	authority_stop(F.a);	/* nobody to ask now */
	F.a = NULL;
	cr_assert_eq(client_lookup(F.url, cache, SVC_HOST, SVC_PORT, now_s(),
				   &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.source, CLIENT_SRC_CACHE);
	cr_assert_eq(l.npeers, 1);
	cr_expect_str_eq(l.peers[0].peer, P[0].key.hex);
	client_lookup_free(&l);
}

Test(client, lookup_stale_answer_when_authority_down)
{
	struct client_lookup l;
	struct err e;
	int64_t t = now_s();

	world_make();
	tpeer_start(&P[0], "page", 0);
	world_serve(&P[0], P[0].port);
	cr_assert_eq(client_lookup(F.url, cache, SVC_HOST, SVC_PORT, t, &l,
				   &e), 0, "%s", e.msg);
	client_lookup_free(&l);
	authority_stop(F.a);
	F.a = NULL;
	/* an hour later the ttl is long gone: the authority is asked,
	 * cannot be reached, and the old answer is used */
	cr_assert_eq(client_lookup(F.url, cache, SVC_HOST, SVC_PORT, t + 3600,
				   &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.source, CLIENT_SRC_STALE);
	cr_assert_eq(l.npeers, 1);
	cr_expect_eq(l.peers[0].port, P[0].port);
	client_lookup_free(&l);
}

Test(client, lookup_after_ttl_asks_again)
{
	struct client_lookup l;
	struct err e;
	int64_t t = now_s();

	world_make();
	tpeer_start(&P[0], "page", 0);
	tpeer_start(&P[1], "page", 0);
	world_serve(&P[0], P[0].port);
	cr_assert_eq(client_lookup(F.url, cache, SVC_HOST, SVC_PORT, t, &l,
				   &e), 0, "%s", e.msg);
	cr_expect_eq(l.npeers, 1);
	client_lookup_free(&l);
	world_serve(&P[1], P[1].port);
	/* within the ttl: still the cached answer, one peer */
	cr_assert_eq(client_lookup(F.url, cache, SVC_HOST, SVC_PORT, t + 1,
				   &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.source, CLIENT_SRC_CACHE);
	cr_expect_eq(l.npeers, 1);
	client_lookup_free(&l);
	cr_assert_eq(client_lookup(F.url, cache, SVC_HOST, SVC_PORT, t + 3600,
				   &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.source, CLIENT_SRC_AUTHORITY);
	cr_expect_eq(l.npeers, 2);
	client_lookup_free(&l);
}

Test(client, lookup_unknown_name_goes_to_dns)
{
	struct client_lookup l;
	struct err e;
	bool loopback = false;

	cr_assert_eq(client_lookup(F.url, cache, "localhost", 8080, now_s(),
				   &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.source, CLIENT_SRC_DNS);
	cr_assert_geq(l.npeers, 1);
	for (size_t i = 0; i < l.npeers; i++)
		loopback |= strcmp(l.peers[i].addr, "127.0.0.1") == 0 ||
		    strcmp(l.peers[i].addr, "::1") == 0;
	cr_expect(loopback, "localhost did not resolve to loopback");
	cr_expect_eq(l.peers[0].port, 8080);
	client_lookup_free(&l);
}

/* ---- get ---- */

/* GET path of the service into a memory buffer (*body malloc'd). */
static int
get(struct client_stats *st, const char *path, struct client_get_result *r,
    char **body, struct err *e)
{
	char url[256];
	size_t len = 0;
	FILE *f;
	struct client_get_opts o;
	int rc;

	*body = NULL;
	f = open_memstream(body, &len);
	cr_assert_not_null(f);
	memset(&o, 0, sizeof(o));
	o.authority = F.url;
	o.cache_dir = cache;
	o.stats = st;
	o.out = f;
	o.timeout_ms = 10000;
	snprintf(url, sizeof(url), "http://%s%s", SVC_HOST, path);
	rc = client_get(url, &o, r, e);
	fclose(f);
	return rc;
}

static struct client_stats *
stats_open(void)
{
	char *path = tu_path(cache, "peers.json");
	struct client_stats *st;
	struct err e;

	st = client_stats_load(path, &e);
	cr_assert_not_null(st, "%s", e.msg);
	free(path);
	return st;
}

Test(client, get_fails_over_when_a_peer_refuses)
{
	struct client_get_result r;
	struct client_stats *st;
	struct tpeer dead;
	struct err e;
	char *body;
	bool skipped = false;

	world_make();
	memset(&dead, 0, sizeof(dead));
	tpeer_start(&P[0], "hello from the live peer", 0);
	world_serve(&dead, dead_port());
	world_serve(&P[0], P[0].port);
	st = stats_open();
	/* the first round tries both, so one of the two requests meets the
	 * dead peer first; every request must still succeed */
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(get(st, "/", &r, &body, &e), 0, "get: %s", e.msg);
		cr_expect_eq(r.status, 200);
		cr_expect_str_eq(body, "hello from the live peer");
		cr_expect_str_eq(r.used.peer, P[0].key.hex);
		skipped |= strstr(r.tried, "127.0.0.1") != NULL;
		free(body);
	}
	cr_expect(skipped, "the dead peer was never tried");
	cr_expect_str_eq(P[0].host_seen, SVC_HOST);
	cr_expect_eq(atomic_load(&P[0].hits), 3);
	client_stats_free(st);
}

Test(client, get_no_peer_answers_names_them)
{
	struct client_get_result r;
	struct tpeer dead;
	struct err e;
	char *body;
	uint16_t port = dead_port();
	char want[32];

	world_make();
	memset(&dead, 0, sizeof(dead));
	world_serve(&dead, port);
	cr_assert_eq(get(NULL, "/", &r, &body, &e), -1);
	free(body);
	snprintf(want, sizeof(want), "127.0.0.1:%u", port);
	cr_expect(strstr(e.msg, "no peer answered") != NULL, "%s", e.msg);
	cr_expect(strstr(e.msg, want) != NULL, "%s", e.msg);
	cr_expect(strstr(e.msg, "refused") != NULL, "%s", e.msg);
}

Test(client, get_prefers_the_faster_peer)
{
	struct client_get_result r;
	struct client_stats *st;
	struct err e;
	char *body;
	int fast = 0;

	struct tpeer *slow;
	json_t *reply;

	world_make();
	tpeer_start(&P[0], "A", 0);
	tpeer_start(&P[1], "B", 0);
	world_serve(&P[0], P[0].port);
	world_serve(&P[1], P[1].port);
	/* the peer the authority lists first is the slow one, so listing
	 * order alone cannot pass this test */
	cr_assert_eq(af_lookup(&F, SVC_HOST, SVC_PORT, &reply), 200);
	slow = strcmp(json_string_value(json_object_get(json_array_get(
	    json_object_get(reply, "peers"), 0), "peer")), P[0].key.hex) == 0 ?
	    &P[0] : &P[1];
	json_decref(reply);
	slow->delay_ms = 100;
	for (int i = 0; i < 20; i++) {
		/* a new process each time: statistics come from the file */
		st = stats_open();
		cr_assert_eq(get(st, "/", &r, &body, &e), 0, "%s", e.msg);
		fast += strcmp(body, slow->page) != 0;
		free(body);
		client_stats_free(st);
	}
	cr_expect_geq(fast, 16, "only %d of 20 went to the fast peer", fast);
	cr_expect_geq(atomic_load(&slow->hits), 1, "the slow peer was never "
		      "measured");
}

Test(client, get_http_error_and_cli)
{
	struct client_get_result r;
	struct err e;
	char *body, *out, url[256], *args[8];
	size_t len;
	uint8_t *got;

	world_make();
	tpeer_start(&P[0], "the page", 0);
	world_serve(&P[0], P[0].port);
	cr_assert_eq(get(NULL, "/missing", &r, &body, &e), 0, "%s", e.msg);
	cr_expect_eq(r.status, 404);
	cr_expect_str_eq(body, "", "an error body was written out");
	free(body);

	/* fed get URL -o FILE --authority URL --cache DIR */
	out = tu_path(cache, "out.html");
	snprintf(url, sizeof(url), "http://%s/", SVC_HOST);
	args[0] = "get";
	args[1] = url;
	args[2] = "-o";
	args[3] = out;
	args[4] = "--authority";
	args[5] = F.url;
	args[6] = "--cache";
	args[7] = cache;
	optind = 0;
	cr_expect_eq(cmd_get(8, args), 0);
	got = tu_read_file(out, &len);
	cr_expect_eq(len, strlen("the page"));
	cr_expect(memcmp(got, "the page", len) == 0);
	free(got);
	snprintf(url, sizeof(url), "http://%s/missing", SVC_HOST);
	unlink(out);
	optind = 0;
	cr_expect_eq(cmd_get(8, args), 1, "a 404 did not fail");
	cr_expect_neq(access(out, F_OK), 0, "a 404 left a file behind");
	free(out);
}

Test(client, get_unknown_name_through_dns)
{
	struct client_get_result r;
	struct client_get_opts o;
	char url[128], *body = NULL;
	size_t len;
	struct err e;
	FILE *f;

	tpeer_start(&P[0], "direct", 0);
	snprintf(url, sizeof(url), "http://localhost:%u/", P[0].port);
	f = open_memstream(&body, &len);
	memset(&o, 0, sizeof(o));
	o.authority = F.url;
	o.cache_dir = cache;
	o.out = f;
	cr_assert_eq(client_get(url, &o, &r, &e), 0, "%s", e.msg);
	fclose(f);
	cr_expect_eq(r.source, CLIENT_SRC_DNS);
	cr_expect_str_eq(body, "direct");
	free(body);
}

/* ---- proxy ---- */

static struct client_proxy *
proxy_start(struct client_stats *st)
{
	struct client_proxy_config c = { .listen = "127.0.0.1:0", .authority = F.url,
					  .cache_dir = cache, .stats = st };
	struct client_proxy *px;
	struct err e;

	px = client_proxy_start(&c, &e);
	cr_assert_not_null(px, "%s", e.msg);
	return px;
}

struct cbuf {
	char data[8192];
	size_t len;
};

static size_t
cbuf_write(char *p, size_t size, size_t n, void *arg)
{
	struct cbuf *b = arg;
	size_t len = size * n;

	if (len > sizeof(b->data) - 1 - b->len)
		return 0;
	memcpy(b->data + b->len, p, len);
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

/* Fetch url through the proxy with libcurl; returns the status. */
static long
via_proxy(struct client_proxy *px, const char *url, bool tunnel,
	  const char *post, struct cbuf *b)
{
	char proxy[64];
	long status = 0;
	CURLcode rc;
	CURL *h = curl_easy_init();

	cr_assert_not_null(h);
	memset(b, 0, sizeof(*b));
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%u",
		 client_proxy_port(px));
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROXY, proxy);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "");
	curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, tunnel ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cbuf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	if (post != NULL)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
	rc = curl_easy_perform(h);
	cr_assert_eq(rc, CURLE_OK, "curl via proxy: %s",
		     curl_easy_strerror(rc));
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	return status;
}

Test(client, proxy_plain_http_post_and_connect)
{
	struct client_proxy *px;
	struct cbuf b;
	char url[128];

	world_make();
	tpeer_start(&P[0], "served by a peer", 0);
	world_serve(&P[0], P[0].port);
	px = proxy_start(NULL);

	cr_expect_eq(via_proxy(px, "http://" SVC_HOST "/index.html", false,
			       NULL, &b), 200);
	cr_expect_str_eq(b.data, "served by a peer");
	cr_expect_str_eq(P[0].host_seen, SVC_HOST);

	cr_expect_eq(via_proxy(px, "http://" SVC_HOST "/form", false,
			       "name=fed&x=1", &b), 200);
	cr_expect_str_eq(b.data, "posted 12: name=fed&x=1");

	cr_expect_eq(via_proxy(px, "http://" SVC_HOST "/tunnel", true, NULL,
			       &b), 200);
	cr_expect_str_eq(b.data, "served by a peer");

	/* a name the authority does not know: reached directly */
	tpeer_start(&P[1], "not federated", 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", P[1].port);
	cr_expect_eq(via_proxy(px, url, false, NULL, &b), 200);
	cr_expect_str_eq(b.data, "not federated");
	cr_expect_eq(atomic_load(&P[0].hits), 3);
	client_proxy_stop(px);
}

/* Send raw bytes to the proxy, read its whole answer. */
static void
raw_exchange(struct client_proxy *px, const char *req, size_t len,
	     char *out, size_t cap)
{
	struct sockaddr_in sa;
	size_t n = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(client_proxy_port(px));
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* the proxy may answer (and close) before taking it all */
	(void)!send(fd, req, len, MSG_NOSIGNAL);
	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };
		ssize_t r;

		cr_assert_eq(poll(&pf, 1, 10000), 1, "proxy did not answer");
		r = recv(fd, out + n, cap - 1 - n, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	out[n] = '\0';
	close(fd);
}

Test(client, proxy_refuses_oversized_head_and_bad_requests)
{
	struct client_proxy *px;
	char *req, answer[2048];
	size_t len = 20000;

	px = proxy_start(NULL);
	req = malloc(len);
	cr_assert_not_null(req);
	memset(req, 'a', len);
	memcpy(req, "GET http://x.test/ HTTP/1.1\r\nX-Big: ", 36);
	raw_exchange(px, req, len, answer, sizeof(answer));
	cr_expect(strncmp(answer, "HTTP/1.1 431 ", 13) == 0, "%s", answer);
	cr_expect(strstr(answer, "larger than 16384 bytes") != NULL, "%s",
		  answer);
	free(req);

	raw_exchange(px, "GET /relative HTTP/1.1\r\nHost: a\r\n\r\n", 35,
		     answer, sizeof(answer));
	cr_expect(strncmp(answer, "HTTP/1.1 400 ", 13) == 0, "%s", answer);
	cr_expect(strstr(answer, "absolute http://") != NULL, "%s", answer);

	raw_exchange(px, "GET http://x.test/ HTTP/1.1\r\nA: b\nHost: c\r\n\r\n",
		     45, answer, sizeof(answer));
	cr_expect(strstr(answer, "bare CR or LF") != NULL, "%s", answer);

	raw_exchange(px, "garbage\r\n\r\n", 11, answer, sizeof(answer));
	cr_expect(strncmp(answer, "HTTP/1.1 400 ", 13) == 0, "%s", answer);
	client_proxy_stop(px);
}

Test(client, proxy_no_peer_answers_502_and_failover)
{
	struct client_proxy *px;
	struct tpeer dead;
	char answer[4096], want[32];
	static const char req[] = "GET http://" SVC_HOST "/ HTTP/1.1\r\n"
		"Host: " SVC_HOST "\r\n\r\n";
	uint16_t port = dead_port();
	struct cbuf b;

	struct client_stats *st = stats_open();
	struct client_peer dp, lp;
	char key[256];

	world_make();
	memset(&dead, 0, sizeof(dead));
	world_serve(&dead, port);
	px = proxy_start(st);
	raw_exchange(px, req, sizeof(req) - 1, answer, sizeof(answer));
	cr_expect(strncmp(answer, "HTTP/1.1 502 ", 13) == 0, "%s", answer);
	snprintf(want, sizeof(want), "127.0.0.1:%u", port);
	cr_expect(strstr(answer, want) != NULL, "%s", answer);
	cr_expect(strstr(answer, "no peer answered") != NULL, "%s", answer);

	/* a live peer joins (the cached lookup is dropped so the proxy
	 * sees it).  The statistics are made to rank the dead peer first,
	 * so the proxy must fail over to the live one. */
	tpeer_start(&P[0], "live", 0);
	world_serve(&P[0], P[0].port);
	{
		char *lk = tu_path(cache, "lookup");

		tu_rmtree(lk);
		free(lk);
	}
	memset(&dp, 0, sizeof(dp));
	memset(&lp, 0, sizeof(lp));
	strcpy(dp.peer, dead.key.hex);
	strcpy(dp.addr, "127.0.0.1");
	dp.port = port;
	strcpy(lp.peer, P[0].key.hex);
	strcpy(lp.addr, "127.0.0.1");
	lp.port = P[0].port;
	client_stats_record(st, &dp, true, 0.0001, 10, 0);
	client_stats_record(st, &lp, false, 0, 0, 0);
	st->requests = 0;	/* not an exploring request */
	for (int i = 0; i < 2; i++) {
		cr_expect_eq(via_proxy(px, "http://" SVC_HOST "/", false, NULL,
				       &b), 200);
		cr_expect_str_eq(b.data, "live");
	}
	client_stat_key(&dp, key, sizeof(key));
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->s[i].key, key) == 0)
			cr_expect_geq(st->s[i].fails, 1, "the dead peer was "
				      "not tried first");
	client_proxy_stop(px);
	client_stats_free(st);
}

/* The request line names the host the peer serves: a Host header that
 * names another (or hides behind "Host :") is not passed on. */
Test(client, proxy_sends_the_request_lines_host)
{
	static const char req[] = "GET http://" SVC_HOST "/ HTTP/1.1\r\n"
		"Host: other.example\r\nHost : third.example\r\n\r\n";
	struct client_proxy *px;
	char answer[4096];

	world_make();
	tpeer_start(&P[0], "served by a peer", 0);
	world_serve(&P[0], P[0].port);
	px = proxy_start(NULL);
	raw_exchange(px, req, sizeof(req) - 1, answer, sizeof(answer));
	cr_expect(strstr(answer, "served by a peer") != NULL, "%s", answer);
	cr_expect_str_eq(P[0].host_seen, SVC_HOST);
	client_proxy_stop(px);
}

/* A peer that takes one request and then misbehaves: closes without a
 * word, or sends part of an answer and resets the connection. */
struct rude_peer {
	int lfd;
	uint16_t port;
	bool reset;		/* else: close without answering */
	pthread_t t;
};

static void *
rude_peer_main(void *arg)
{
	struct rude_peer *r = arg;
	char buf[4096];
	size_t got = 0;
	int fd = accept(r->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	while (got < sizeof(buf) - 1) {	/* the request head */
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL)
			break;
	}
	if (r->reset) {
		static const char part[] = "HTTP/1.1 200 OK\r\n"
			"Connection: close\r\n\r\nthe first part of";
		struct linger l = { 1, 0 };

		(void)!send(fd, part, sizeof(part) - 1, MSG_NOSIGNAL);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	close(fd);
	return NULL;
}

static void
rude_peer_start(struct rude_peer *r, bool reset)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->reset = reset;
	r->lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(r->lfd, 4), 0);
	cr_assert_eq(getsockname(r->lfd, (struct sockaddr *)&sa, &sl), 0);
	r->port = ntohs(sa.sin_port);
	cr_assert_eq(pthread_create(&r->t, NULL, rude_peer_main, r), 0);
}

static void
rude_peer_stop(struct rude_peer *r)
{
	pthread_join(r->t, NULL);
	close(r->lfd);
}

/* A peer that closes without answering: the client gets the proxy's 502
 * saying so (it got an empty end of stream: the proxy had shut the
 * client's side before writing it). */
Test(client, proxy_peer_closing_without_answer_is_a_502)
{
	static const char req[] = "GET http://" SVC_HOST "/ HTTP/1.1\r\n"
		"Host: " SVC_HOST "\r\n\r\n";
	struct client_proxy *px;
	struct rude_peer rude;
	struct tpeer p;
	char answer[4096];

	world_make();
	rude_peer_start(&rude, false);
	memset(&p, 0, sizeof(p));
	world_serve(&p, rude.port);
	px = proxy_start(NULL);
	raw_exchange(px, req, sizeof(req) - 1, answer, sizeof(answer));
	cr_expect(strncmp(answer, "HTTP/1.1 502 ", 13) == 0, "got '%s'",
		  answer);
	cr_expect(strstr(answer, "closed without answering") != NULL, "%s",
		  answer);
	client_proxy_stop(px);
	rude_peer_stop(&rude);
}

/* A peer that resets the connection halfway through its answer: the
 * client sees a reset, not an end of stream that would pass a cut answer
 * for a whole one. */
Test(client, proxy_passes_a_reset_on_as_a_reset)
{
	static const char req[] = "GET http://" SVC_HOST "/ HTTP/1.1\r\n"
		"Host: " SVC_HOST "\r\n\r\n";
	struct client_proxy *px;
	struct rude_peer rude;
	struct sockaddr_in sa;
	struct tpeer p;
	char buf[4096];
	ssize_t r;
	int fd, err = 0;

	world_make();
	rude_peer_start(&rude, true);
	memset(&p, 0, sizeof(p));
	world_serve(&p, rude.port);
	px = proxy_start(NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(client_proxy_port(px));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL),
		     (ssize_t)sizeof(req) - 1);
	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };

		cr_assert_eq(poll(&pf, 1, 10000), 1, "proxy went quiet");
		r = recv(fd, buf, sizeof(buf), 0);
		if (r <= 0) {
			err = r < 0 ? errno : 0;
			break;
		}
	}
	cr_expect_eq(err, ECONNRESET, "the cut answer ended %s",
		     err ? strerror(err) : "as if whole");
	close(fd);
	client_proxy_stop(px);
	rude_peer_stop(&rude);
}

/* ---- audit ---- */

static char *
keyfile(const struct tkey *k, const char *name)
{
	char hex[2 * ED25519_SEED_LEN + 2], *path = tu_path(cache, name);

	hex_encode(k->seed, ED25519_SEED_LEN, hex);
	strcat(hex, "\n");
	tu_write_file(path, hex, strlen(hex));
	cr_assert_eq(chmod(path, 0600), 0);
	return path;
}

/* fed audit SERVICE --path / --expect H --authority U --key K [--report],
 * in this process (getopt permutes argv: a fresh one each call). */
static int
audit_cli(char *service, char *expect, char *key, bool report)
{
	char *args[] = { "audit", service, "--path", "/", "--expect", expect,
			 "--authority", F.url, "--key", key, "--report", NULL };

	optind = 0;
	return cmd_audit(report ? 11 : 10, args);
}

Test(client, audit_finds_mismatch_and_report_drops_it)
{
	static const char good[] = "<h1>the owner's page</h1>";
	struct client_audit_row *rows;
	uint8_t digest[SHA256_LEN];
	char expect[65], service[64], *key;
	struct tpeer dead;
	json_t *reply;
	size_t n, i;
	struct err e;

	world_make();
	memset(&dead, 0, sizeof(dead));
	tpeer_start(&P[0], good, 0);
	tpeer_start(&P[1], "<h1>buy cheap pills</h1>", 0);
	world_serve(&P[0], P[0].port);
	world_serve(&P[1], P[1].port);
	sha256(good, strlen(good), digest);
	hex_encode(digest, SHA256_LEN, expect);

	cr_assert_eq(client_audit(F.url, SVC_HOST, SVC_PORT, "/", expect,
				  &rows, &n, &e), 0, "%s", e.msg);
	cr_assert_eq(n, 2);
	for (i = 0; i < n; i++) {
		bool bad = strcmp(rows[i].p.peer, P[1].key.hex) == 0;

		cr_expect_eq(rows[i].verdict, bad ? CLIENT_AUDIT_MISMATCH :
			     CLIENT_AUDIT_OK, "peer %zu: %s", i,
			     client_verdict_name(rows[i].verdict));
	}
	free(rows);
	cr_expect_str_eq(P[1].host_seen, SVC_HOST ":80");

	/* fed audit HOST:PORT --path / --expect H --authority U --key K
	 * --report: exit 1, and the cheat disappears from lookups */
	key = keyfile(&owner, "owner.key");
	snprintf(service, sizeof(service), "%s:%u", SVC_HOST, SVC_PORT);
	cr_expect_eq(audit_cli(service, expect, key, true), 1);
	cr_assert_eq(af_lookup(&F, SVC_HOST, SVC_PORT, &reply), 200);
	cr_expect(af_lookup_has(reply, P[0].key.hex));
	cr_expect(!af_lookup_has(reply, P[1].key.hex),
		  "the reported peer is still looked up");
	json_decref(reply);

	/* the reported peer is no longer audited; the rest is fine */
	cr_expect_eq(audit_cli(service, expect, key, false), 0);

	/* a peer that went away is unreachable: exit 1 */
	world_serve(&dead, dead_port());
	cr_expect_eq(audit_cli(service, expect, key, false), 1);
	free(key);
}
