/*
 * server.c - the authority's HTTP side, on libmicrohttpd.
 *
 * MHD runs an internal epoll thread pool (one thread per core unless told
 * otherwise); every request is handled start to finish on the pool thread
 * that owns its connection, and handlers block only on the store (SQLite,
 * one connection per thread).  Limits: idle connections are closed after
 * cfg.conn_timeout seconds, each client address may hold per_ip_limit
 * connections, and a request body may not exceed body_max bytes (413 with a
 * JSON error: at once when Content-Length says so, else once the body has
 * been drained; a sender that keeps going far past the cap is cut off).
 *
 * A request's life:
 *
 *   server_uri_log     MHD read the request line: keep the target exactly
 *                      as sent (the signature covers it) and the start time
 *   server_access      called for the headers, for each piece of the body,
 *                      then once more at the end: route -> handler -> reply
 *   server_completed   MHD is done: one log line, metrics, free
 *
 * Routing: the path is matched against a table of resources; a path with a
 * '.' or '..' segment, an encoded NUL or a control character is refused
 * (400) before any handler sees it, an unknown path is 404 and a known path
 * with another method 405 (with Allow).  Every answer is JSON except
 * /metrics.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "authority/authority.h"
#include "common/log.h"
#include "common/sigreq.h"

#define SERVER_PATH_MAX 1024
#define SERVER_CUTOFF   16	/* drop senders past 16 x body_max */

struct request {
	char *target;		/* as sent, query included */
	char method[16];
	char allow[48];		/* for a 405 */
	char client[INET6_ADDRSTRLEN];
	struct timespec t0;
	int started;
	int too_big;
	char *body;
	size_t len, cap, seen;
	enum route_id route;
	unsigned status;
};

struct route {
	enum route_id id;
	const char *prefix;	/* exact path, or "…/" before the argument */
	int has_arg;
	const char *suffix;	/* after the argument, or NULL */
	handler_fn get, post, put, del;
};

static const struct route server_routes[] = {
	{ ROUTE_DASHBOARD, "/", 0, NULL, api_dashboard, NULL, NULL, NULL },
	{ ROUTE_HEALTHZ, "/healthz", 0, NULL, api_healthz, NULL, NULL, NULL },
	{ ROUTE_METRICS, "/metrics", 0, NULL, api_metrics, NULL, NULL, NULL },
	{ ROUTE_PEERS, "/v1/peers", 0, NULL, NULL, api_peers_post, NULL,
	  NULL },
	{ ROUTE_PEER, "/v1/peers/", 1, NULL, api_peer_get, NULL, NULL, NULL },
	{ ROUTE_TRUSTED, "/v1/trusted", 0, NULL, api_trusted_list,
	  api_trusted_post, NULL, NULL },
	{ ROUTE_TRUSTED_ONE, "/v1/trusted/", 1, NULL, api_trusted_get, NULL,
	  NULL, api_trusted_delete },
	{ ROUTE_SNAPSHOTS, "/v1/snapshots", 0, NULL, api_snapshots_list,
	  api_snapshots_post, NULL, NULL },
	{ ROUTE_SNAPSHOT, "/v1/snapshots/", 1, NULL, api_snapshot_get, NULL,
	  NULL, NULL },
	{ ROUTE_SOURCES, "/v1/sources/", 1, NULL, api_sources_get,
	  api_sources_post, NULL, api_sources_delete },
	{ ROUTE_COMMITMENTS, "/v1/commitments", 0, NULL, NULL,
	  api_commitments_post, NULL, NULL },
	{ ROUTE_COMMITMENT, "/v1/commitments/", 1, NULL, NULL, NULL,
	  api_commitment_put, api_commitment_delete },
	{ ROUTE_LOOKUP, "/v1/lookup", 0, NULL, api_lookup, NULL, NULL, NULL },
	{ ROUTE_SERVICE_PEERS, "/v1/services/", 1, "/peers",
	  api_service_peers, NULL, NULL, NULL },
	{ ROUTE_REPORTS, "/v1/reports", 0, NULL, NULL, api_reports_post,
	  NULL, NULL },
	{ ROUTE_KEYS, "/v1/keys", 0, NULL, NULL, api_keys_post, NULL, NULL },
	{ ROUTE_KEY, "/v1/keys/", 1, NULL, api_key_get, NULL, NULL, NULL },
};

/* ---- replies ---- */

static enum MHD_Result
server_send(struct MHD_Connection *conn, struct request *q, struct reply *r)
{
	struct MHD_Response *resp;
	const char *ctype = r->content_type;
	enum MHD_Result ret;
	char *text;
	size_t len;

	if (r->json != NULL) {
		text = call_json_text(r->json, &len);
		ctype = "application/json";
	} else {
		text = r->text;
		len = r->text_len;
		r->text = NULL;
	}
	if (text == NULL)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(len, text,
					       MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	if (ctype != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					ctype);
	if (r->allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->retry_after != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
					r->retry_after);
	ret = MHD_queue_response(conn, r->status, resp);
	MHD_destroy_response(resp);
	q->status = r->status;
	return ret;
}

static void
server_reply_free(struct reply *r)
{
	json_decref(r->json);
	free(r->text);
}

/* Queue an error answer at once (outside the handler flow). */
static enum MHD_Result
server_refuse(struct MHD_Connection *conn, struct request *q,
	      unsigned status, const char *msg)
{
	struct reply r = { 0 };
	enum MHD_Result ret;

	call_error(&r, status, "%s", msg);
	ret = server_send(conn, q, &r);
	server_reply_free(&r);
	return ret;
}

/* ---- routing ---- */

/* Refuse paths no resource can have.  Returns NULL or why it is bad. */
static const char *
server_path_problem(const char *target, const char *path)
{
	const char *p, *seg;
	size_t n;

	/* the query too: libmicrohttpd decodes %00 in an argument and the
	 * value ends there ("host=a%00.evil" would look up "a") */
	for (p = target; *p != '\0'; p++)
		if (p[0] == '%' && p[1] == '0' && p[2] == '0')
			return "bad path: encoded NUL";
	if (path[0] != '/')
		return "bad path: must start with '/'";
	if (strlen(path) > SERVER_PATH_MAX)
		return "bad path: too long";
	for (p = path; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "bad path: control character";
	for (seg = path + 1;; seg += n + 1) {
		n = strcspn(seg, "/");
		if ((n == 1 && seg[0] == '.') ||
		    (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return "bad path: '.' and '..' segments are not allowed";
		if (seg[n] == '\0')
			break;
	}
	return NULL;
}

/* Match path against one route; the argument goes to arg. */
static int
server_route_match(const struct route *rt, const char *path, char *arg,
		   size_t argsize)
{
	size_t plen = strlen(rt->prefix), alen, slen;
	const char *a;

	if (!rt->has_arg)
		return strcmp(path, rt->prefix) == 0;
	if (strncmp(path, rt->prefix, plen) != 0)
		return 0;
	a = path + plen;
	alen = strlen(a);
	if (rt->suffix != NULL) {
		slen = strlen(rt->suffix);
		if (alen <= slen || strcmp(a + alen - slen, rt->suffix) != 0)
			return 0;
		alen -= slen;
	}
	if (alen == 0 || alen >= argsize || memchr(a, '/', alen) != NULL)
		return 0;
	memcpy(arg, a, alen);
	arg[alen] = '\0';
	return 1;
}

static void
server_dispatch(struct authority *a, struct MHD_Connection *conn,
		struct request *q, const char *url, struct reply *r)
{
	char arg[SERVER_PATH_MAX + 1];
	const struct route *rt = NULL;
	const char *problem;
	struct call c;
	handler_fn h;
	size_t i;

	if ((problem = server_path_problem(q->target, url)) != NULL) {
		call_error(r, 400, "%s", problem);
		return;
	}
	for (i = 0; i < sizeof(server_routes) / sizeof(server_routes[0]); i++)
		if (server_route_match(&server_routes[i], url, arg,
				       sizeof(arg))) {
			rt = &server_routes[i];
			break;
		}
	if (rt == NULL) {
		call_error(r, 404, "no such endpoint: %s", url);
		return;
	}
	q->route = rt->id;
	if (strcmp(q->method, "GET") == 0 || strcmp(q->method, "HEAD") == 0)
		h = rt->get;
	else if (strcmp(q->method, "POST") == 0)
		h = rt->post;
	else if (strcmp(q->method, "PUT") == 0)
		h = rt->put;
	else if (strcmp(q->method, "DELETE") == 0)
		h = rt->del;
	else
		h = NULL;
	if (h == NULL) {
		snprintf(q->allow, sizeof(q->allow), "%s%s%s%s",
			 rt->get ? "GET, HEAD, " : "", rt->post ? "POST, " : "",
			 rt->put ? "PUT, " : "", rt->del ? "DELETE, " : "");
		q->allow[strlen(q->allow) - 2] = '\0';
		call_error(r, 405, "method %s not allowed on %s (allowed: %s)",
			   q->method, route_name(rt->id), q->allow);
		r->allow = q->allow;
		return;
	}

	memset(&c, 0, sizeof(c));
	c.a = a;
	c.conn = conn;
	c.method = q->method;
	c.target = q->target;
	c.path = url;
	c.arg = rt->has_arg ? arg : NULL;
	c.body = q->body ? q->body : "";
	c.body_len = q->len;
	c.now = time(NULL);
	h(&c, r);
	json_decref(c.json);
	if (r->status == 0)
		call_error(r, 500, "internal error: no reply");
}

/* ---- MHD callbacks ---- */

static void *
server_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;
	struct request *q;

	(void)cls;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	if ((q->target = strdup(uri)) == NULL) {
		free(q);
		return NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &q->t0);
	q->route = ROUTE_UNKNOWN;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL) {
		const struct sockaddr *sa = ci->client_addr;

		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)
					     (const void *)sa)->sin_addr,
				  q->client, sizeof(q->client));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
					      (const void *)sa)->sin6_addr,
				  q->client, sizeof(q->client));
	}
	if (q->client[0] == '\0')
		strcpy(q->client, "-");
	return q;
}

static enum MHD_Result
server_access(void *cls, struct MHD_Connection *conn, const char *url,
	      const char *method, const char *version,
	      const char *upload_data, size_t *upload_data_size,
	      void **con_cls)
{
	struct authority *a = cls;
	struct request *q = *con_cls;
	struct reply r = { 0 };
	enum MHD_Result ret;
	const char *cl;
	size_t n;

	(void)version;
	if (q == NULL)
		return MHD_NO;
	if (!q->started) {
		q->started = 1;
		snprintf(q->method, sizeof(q->method), "%s", method);
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > a->cfg.body_max) {
			q->too_big = 1;
			return server_refuse(conn, q, 413,
					     "request body too large");
		}
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		n = *upload_data_size;
		*upload_data_size = 0;
		q->seen += n;
		if (q->seen > SERVER_CUTOFF * a->cfg.body_max)
			return MHD_NO;
		if (q->too_big)
			return MHD_YES;
		if (q->len + n > a->cfg.body_max) {
			q->too_big = 1;
			free(q->body);
			q->body = NULL;
			q->len = 0;
			return MHD_YES;
		}
		if (q->len + n + 1 > q->cap) {
			size_t cap = q->cap ? q->cap : 1024;
			char *b;

			while (cap < q->len + n + 1)
				cap *= 2;
			/* never past what a body may be: doubling a body of
			 * body_max would take twice that */
			if (cap > a->cfg.body_max + 1)
				cap = a->cfg.body_max + 1;
			if ((b = realloc(q->body, cap)) == NULL)
				return MHD_NO;
			q->body = b;
			q->cap = cap;
		}
		memcpy(q->body + q->len, upload_data, n);
		q->len += n;
		q->body[q->len] = '\0';
		return MHD_YES;
	}
	if (q->too_big)
		return server_refuse(conn, q, 413, "request body too large");

	server_dispatch(a, conn, q, url, &r);
	ret = server_send(conn, q, &r);
	server_reply_free(&r);
	return ret;
}

/* Copy s into out with anything unprintable escaped (log safety). */
static void
server_sanitize(const char *s, char *out, size_t size)
{
	static const char hexd[] = "0123456789abcdef";
	size_t o = 0;

	for (; *s != '\0' && o + 5 < size; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch >= 0x7f || ch == '\\' || ch == '"') {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hexd[ch >> 4];
			out[o++] = hexd[ch & 15];
		} else {
			out[o++] = (char)ch;
		}
	}
	if (*s != '\0' && o + 3 < size) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void
server_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		 enum MHD_RequestTerminationCode toe)
{
	struct authority *a = cls;
	struct request *q = *con_cls;
	struct timespec t1;
	char target[512];
	uint64_t us;

	(void)conn;
	if (q == NULL)
		return;
	*con_cls = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = (uint64_t)(t1.tv_sec - q->t0.tv_sec) * 1000000u +
	    (uint64_t)((t1.tv_nsec - q->t0.tv_nsec) / 1000);
	if (q->status != 0)
		metrics_observe(&a->metrics, q->route, q->status, us);
	if (a->cfg.quiet)
		goto done;
	server_sanitize(q->target, target, sizeof(target));
	if (q->status != 0)
		log_info("%s %s %u %lluus %s%s", q->method[0] ? q->method : "-",
			 target, q->status, (unsigned long long)us, q->client,
			 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" :
			 " (connection closed early)");
	else
		log_info("%s %s - %lluus %s (no reply: connection %s)",
			 q->method[0] ? q->method : "-", target,
			 (unsigned long long)us, q->client,
			 toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ?
			 "timed out" : "closed");
done:
	free(q->target);
	free(q->body);
	free(q);
}

static void
server_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	log_warn("microhttpd: %s", msg);
}

/* ---- life cycle ---- */

void
authority_config_defaults(struct authority_config *c)
{
	memset(c, 0, sizeof(*c));
	c->ttl = AUTHORITY_TTL_DEFAULT;
	c->answer_ttl = AUTHORITY_ANSWER_TTL_DEFAULT;
	c->peer_ttl = AUTHORITY_PEER_TTL_DEFAULT;
	c->forget_after = AUTHORITY_FORGET_DEFAULT;
	c->signed_rate = AUTHORITY_SIGNED_RATE_DEFAULT;
	c->signed_burst = AUTHORITY_SIGNED_BURST_DEFAULT;
	c->publish_allowance = AUTHORITY_ALLOWANCE_DEFAULT;
	c->conn_timeout = AUTHORITY_CONN_TIMEOUT;
	c->per_ip_limit = AUTHORITY_PER_IP_DEFAULT;
	c->conn_limit = AUTHORITY_CONN_LIMIT_DEFAULT;
	c->body_max = AUTHORITY_BODY_MAX_DEFAULT;
}

/* "ADDR:PORT" (IPv4, or [IPv6]) into ss. */
static int
server_parse_listen(const char *s, struct sockaddr_storage *ss,
		    unsigned *flags, struct err *e)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;
	size_t hlen;

	memset(ss, 0, sizeof(*ss));
	if (colon == NULL || colon == s)
		return err_set(e, "--listen %s: expected ADDR:PORT", s);
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port > 65535)
		return err_set(e, "--listen %s: bad port", s);
	hlen = (size_t)(colon - s);
	if (s[0] == '[' && hlen >= 2 && s[hlen - 1] == ']') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (hlen - 2 >= sizeof(host))
			return err_set(e, "--listen %s: bad address", s);
		memcpy(host, s + 1, hlen - 2);
		host[hlen - 2] = '\0';
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return err_set(e, "--listen %s: bad IPv6 address", s);
		*flags |= MHD_USE_IPv6;
		return 0;
	}
	if (hlen >= sizeof(host))
		return err_set(e, "--listen %s: bad address", s);
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return err_set(e, "--listen %s: bad IPv4 address", s);
	return 0;
}

static int
server_load_sig(void *arg, const char *sig_hex, int64_t expires)
{
	struct authority *a = arg;
	uint8_t id[REPLAY_ID_LEN];

	/* a signature's bytes, kept by an older authority, are 128 digits:
	 * not an id, and not decoded */
	if (hex_decode(sig_hex, id, sizeof(id)) == 0)
		replay_check_add(a->replay, id, expires, (int64_t)time(NULL));
	return 0;
}

/* The store says another process may have changed it (authstore_watch). */
static void
server_changed(void *arg)
{
	struct authority *a = arg;

	atomic_fetch_add(&a->generation, 1);
}

struct authority *
authority_start(const struct authority_config *cfg, struct err *e)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *di;
	struct authority *a;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
	    MHD_USE_TURBO;
	unsigned threads = cfg->threads;

	if (cfg->listen == NULL || cfg->db_path == NULL) {
		err_set(e, "authority: --listen and --db are required");
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		err_set(e, "authority: out of memory");
		return NULL;
	}
	a->cfg = *cfg;
	if ((a->listen = strdup(cfg->listen)) == NULL) {
		err_set(e, "authority: out of memory");
		goto bad;
	}
	a->cfg.listen = a->listen;
	a->cfg.db_path = NULL;		/* not kept: the store has it */
	if (cfg->has_admin)
		hex_encode(cfg->admin, ED25519_PUB_LEN, a->admin_hex);
	if (a->cfg.body_max == 0)
		a->cfg.body_max = AUTHORITY_BODY_MAX_DEFAULT;
	if (a->cfg.answer_ttl <= 0)
		a->cfg.answer_ttl = AUTHORITY_ANSWER_TTL_DEFAULT;
	if (server_parse_listen(cfg->listen, &ss, &flags, e) == -1)
		goto bad;
	if (crypto_init(e) == -1)
		goto bad;
	pthread_mutex_init(&a->where_lock, NULL);
	pthread_mutex_init(&a->version_lock, NULL);
	if ((a->store = authstore_open(cfg->db_path, e)) == NULL)
		goto bad;
	/* another authority's change moves the generation on, as our own
	 * do: lookups cached here are not served past it (lookup_cache.c) */
	if (authstore_watch(a->store, server_changed, a, e) == -1)
		goto bad;
	if ((a->replay = replay_new()) == NULL ||
	    (a->limits = ratelimit_new(a->cfg.signed_rate,
				       a->cfg.signed_burst)) == NULL ||
	    (a->lookups = lookup_cache_new()) == NULL) {
		err_set(e, "authority: out of memory");
		goto bad;
	}
	if (authstore_sig_load(a->store, (int64_t)time(NULL), server_load_sig, a,
			   e) == -1)
		goto bad;
	a->started = time(NULL);
	if (sweep_start(a, e) == -1)	/* after the store: it reads it */
		goto bad;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 ? (unsigned)n : 1;
	}
	/* The pool option only when there is a pool: MHD warns otherwise. */
	struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_SOCK_ADDR, 0, &ss },
		{ MHD_OPTION_CONNECTION_TIMEOUT, a->cfg.conn_timeout, NULL },
		{ MHD_OPTION_PER_IP_CONNECTION_LIMIT, a->cfg.per_ip_limit,
		  NULL },
		{ MHD_OPTION_CONNECTION_LIMIT, a->cfg.conn_limit, NULL },
		{ MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)server_uri_log, a },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)server_completed, a },
		{ threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
		  threads, NULL },
		{ MHD_OPTION_END, 0, NULL },
	};
	a->mhd = MHD_start_daemon(flags, 0, NULL, NULL, server_access, a,
		MHD_OPTION_EXTERNAL_LOGGER, server_mhd_log, a,
		MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (a->mhd == NULL) {
		err_set(e, "authority: cannot listen on %s (in use, or not an "
			"address of this host?)", cfg->listen);
		goto bad;
	}
	di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
	a->port = di ? di->port : 0;
	return a;
bad:
	sweep_stop(a);
	lookup_cache_free(a->lookups);
	ratelimit_free(a->limits);
	replay_free(a->replay);
	authstore_close(a->store);
	pthread_mutex_destroy(&a->where_lock);
	pthread_mutex_destroy(&a->version_lock);
	explicit_bzero(a->cfg.key_seed, sizeof(a->cfg.key_seed));
	free(a->listen);
	free(a);
	return NULL;
}

uint16_t
authority_port(const struct authority *a)
{
	return a->port;
}

void
authority_stop(struct authority *a)
{
	if (a == NULL)
		return;
	if (a->mhd != NULL)
		MHD_stop_daemon(a->mhd);
	sweep_stop(a);
	authstore_close(a->store);
	replay_free(a->replay);
	ratelimit_free(a->limits);
	lookup_cache_free(a->lookups);
	pthread_mutex_destroy(&a->where_lock);
	pthread_mutex_destroy(&a->version_lock);
	explicit_bzero(a->cfg.key_seed, sizeof(a->cfg.key_seed));
	free(a->listen);
	free(a);
}
