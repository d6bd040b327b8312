/*
 * authfix.c - a real authority for tests (see authfix.h).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "authfix.h"
#include "common/chunkidx.h"
#include "common/fedsnap.h"
#include "common/http.h"
#include "common/log.h"
#include "common/manifest.h"
#include "common/sigreq.h"
#include "common/timefmt.h"
#include "pgfix.h"
#include "testutil.h"

void
tkey_new(struct tkey *k)
{
	struct err e;

	cr_assert_eq(ed25519_keygen(k->seed, k->pub, &e), 0, "%s", e.msg);
	hex_encode(k->pub, ED25519_PUB_LEN, k->hex);
}

static void
authfix_init(struct authfix *f)
{
	memset(f, 0, sizeof(*f));
	f->dir = tu_tmpdir();
	f->db = pgfix_wanted() ? pgfix_db_new()
			       : tu_path(f->dir, "authority.db");
	tkey_new(&f->admin);
}

void
authfix_start(struct authfix *f, const struct authority_config *cfg)
{
	struct authority_config c;
	struct err e;

	authfix_init(f);
	log_init("test-authority", false);
	if (cfg != NULL) {
		c = *cfg;
	} else {
		authority_config_defaults(&c);
		c.has_admin = true;
		memcpy(c.admin, f->admin.pub, ED25519_PUB_LEN);
	}
	c.listen = "127.0.0.1:0";
	c.db_path = f->db;
	f->a = authority_start(&c, &e);
	cr_assert_not_null(f->a, "authority_start: %s", e.msg);
	f->port = authority_port(f->a);
	cr_assert_neq(f->port, 0);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", f->port);
}

void
authfix_start_signed(struct authfix *f, const struct tkey *key,
		     int answer_ttl)
{
	struct authority_config c;
	struct tkey admin;

	tkey_new(&admin);	/* authfix_start makes f anew */
	authority_config_defaults(&c);
	c.has_admin = true;
	memcpy(c.admin, admin.pub, ED25519_PUB_LEN);
	if (key != NULL) {
		c.has_key = true;
		memcpy(c.key_seed, key->seed, ED25519_SEED_LEN);
		memcpy(c.key_pub, key->pub, ED25519_PUB_LEN);
		c.answer_ttl = answer_ttl;
	}
	authfix_start(f, &c);
	f->admin = admin;
}

/* Poll for the child's port file, up to a deadline. */
static void
authfix_wait_port(struct authfix *f, const char *port_file)
{
	struct timespec t0, now, nap = { 0, 10 * 1000 * 1000 };
	int status;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		FILE *p = fopen(port_file, "r");
		unsigned port = 0;

		if (p != NULL) {
			if (fscanf(p, "%u", &port) != 1)
				port = 0;
			fclose(p);
		}
		if (port != 0) {
			f->port = (uint16_t)port;
			break;
		}
		cr_assert_eq(waitpid(f->pid, &status, WNOHANG), 0,
			     "fed-authority exited at start (see %s)", f->dir);
		clock_gettime(CLOCK_MONOTONIC, &now);
		cr_assert_lt(now.tv_sec - t0.tv_sec, 20,
			     "fed-authority did not start in 20 s");
		nanosleep(&nap, NULL);
	}
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", f->port);
}

void
authfix_spawn(struct authfix *f, const char *const *extra)
{
	const char *bindir = getenv("BINDIR");
	char *bin, *port_file, *admin_file, *log_file, hexnl[80];
	const char *argv[32];
	int n = 0, fd;

	if (f->dir == NULL)
		authfix_init(f);
	if (bindir == NULL)
		bindir = "bin";
	bin = tu_path(bindir, "fed-authority");
	port_file = tu_path(f->dir, "port");
	admin_file = tu_path(f->dir, "admin.pub");
	log_file = tu_path(f->dir, "authority.log");
	snprintf(hexnl, sizeof(hexnl), "%s\n", f->admin.hex);
	tu_write_file(admin_file, hexnl, strlen(hexnl));
	unlink(port_file);

	argv[n++] = bin;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--db";
	argv[n++] = f->db;
	argv[n++] = "--admin-key";
	argv[n++] = admin_file;
	argv[n++] = "--port-file";
	argv[n++] = port_file;
	for (; extra != NULL && *extra != NULL && n < 30; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;

	f->pid = fork();
	cr_assert_neq(f->pid, -1);
	if (f->pid == 0) {
		fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	authfix_wait_port(f, port_file);
	free(bin);
	free(port_file);
	free(admin_file);
	free(log_file);
}

void
authfix_kill9(struct authfix *f)
{
	int status;

	if (f->pid <= 0)
		return;
	kill(f->pid, SIGKILL);
	while (waitpid(f->pid, &status, 0) == -1 && errno == EINTR)
		;
	f->pid = 0;
}

void
authfix_stop(struct authfix *f)
{
	int status;

	if (f->a != NULL)
		authority_stop(f->a);
	f->a = NULL;
	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		while (waitpid(f->pid, &status, 0) == -1 && errno == EINTR)
			;
		f->pid = 0;
	}
	if (f->dir != NULL)
		tu_rmtree(f->dir);
	if (f->db != NULL && pgfix_wanted())
		pgfix_db_drop(f->db);
	free(f->dir);
	free(f->db);
	f->dir = f->db = NULL;
}

bool
authfix_alive(struct authfix *f)
{
	long status;

	return af_call(f, "GET", "/healthz", NULL, NULL, NULL) == 200 &&
	    (status = af_raw(f, "GET", "/healthz", NULL, 0, NULL, NULL)) ==
	    200;
}

long
af_call(struct authfix *f, const char *method, const char *path,
	json_t *body, const struct tkey *k, json_t **reply)
{
	json_t *r = NULL;
	long status = 0;
	struct err e;
	int rc;

	rc = authority_call(f->url, method, path, body, k ? k->seed : NULL,
			    &status, &r, &e);
	json_decref(body);
	cr_assert_eq(rc, 0, "%s %s: %s", method, path, e.msg);
	if (reply != NULL)
		*reply = r;
	else
		json_decref(r);
	return status;
}

long
af_raw(struct authfix *f, const char *method, const char *target,
       const char *body, size_t len, const char *const *headers, char **text)
{
	struct http_reply r;
	char url[4096];
	struct err e;

	snprintf(url, sizeof(url), "%s%s", f->url, target);
	cr_assert_eq(http_request(method, url, headers, body, len, 10000, 0,
				  &r, &e), 0, "%s %s: %s", method, target,
		     e.msg);
	if (text != NULL)
		*text = r.body;
	else
		http_reply_free(&r);
	return r.status;
}

long
af_signed_raw(struct authfix *f, const struct tkey *k, time_t when,
	      const char *method, const char *target, const char *body,
	      char **text)
{
	struct sigreq sr;
	struct err e;

	if (body == NULL)
		body = "";
	cr_assert_eq(sigreq_sign(k->seed, method, target, body, strlen(body),
				 when, &sr, &e), 0, "%s", e.msg);
	return af_send_signed(f, &sr, method, target, body, text);
}

long
af_send_signed(struct authfix *f, const struct sigreq *sr, const char *method,
	       const char *target, const char *body, char **text)
{
	char hk[128], hd[64], hs[200];
	const char *headers[5];

	snprintf(hk, sizeof(hk), "X-Fed-Key: %s", sr->key);
	snprintf(hd, sizeof(hd), "X-Fed-Date: %s", sr->date);
	snprintf(hs, sizeof(hs), "X-Fed-Signature: %s", sr->sig);
	headers[0] = hk;
	headers[1] = hd;
	headers[2] = hs;
	headers[3] = "Content-Type: application/json";
	headers[4] = NULL;
	return af_raw(f, method, target, body, strlen(body), headers, text);
}

const char *
af_error(const json_t *reply)
{
	const char *s = json_string_value(json_object_get(reply, "error"));

	return s ? s : "";
}

void
af_expect(long status, json_t *reply, long want_status, const char *want)
{
	char *dump = reply ? json_dumps(reply, JSON_COMPACT) : NULL;

	cr_expect_eq(status, want_status, "status %ld, wanted %ld: %s", status,
		     want_status, dump ? dump : "(no body)");
	if (want != NULL)
		cr_expect(strstr(af_error(reply), want) != NULL,
			  "error '%s' does not say '%s'", af_error(reply), want);
	free(dump);
	json_decref(reply);
}

void
af_register(struct authfix *f, const struct tkey *k, const char *addr)
{
	json_t *reply;
	long st;

	st = af_call(f, "POST", "/v1/peers", json_pack("{s:s}", "addr", addr),
		     k, &reply);
	cr_assert(st == 200 || st == 201, "register: %ld %s", st,
		  af_error(reply));
	json_decref(reply);
}

void
af_trust(struct authfix *f, const char *kind, char sha[65])
{
	static uint32_t salt;
	struct chunk_index ix;
	uint8_t buf[10000];
	json_t *body, *reply;
	struct err e;
	long st;
	int fd;

	tu_fill(buf, sizeof(buf), (uint32_t)getpid() * 7919u + ++salt +
		(uint32_t)time(NULL));
	fd = memfd_create("trust", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_assert_eq(chunkidx_build_fd(fd, CHUNK_SIZE_MIN, &ix, &e), 0, "%s",
		     e.msg);
	close(fd);
	hex_encode(ix.file_hash, SHA256_LEN, sha);
	body = json_pack("{s:s, s:o, s:s}", "kind", kind, "index",
			 chunkidx_to_json(&ix), "name", kind);
	chunkidx_free(&ix);
	st = af_call(f, "POST", "/v1/trusted", body, &f->admin, &reply);
	cr_assert_eq(st, 201, "trust %s: %ld %s", kind, st, af_error(reply));
	json_decref(reply);
}

void
af_manifest(const struct tkey *owner, const char *host, uint16_t port,
	    int64_t version, const char *base, const char *kernel,
	    char **bytes, size_t *len, char sig[129])
{
	static uint32_t salt;
	uint8_t s[ED25519_SIG_LEN];
	struct manifest m;
	struct err e;

	memset(&m, 0, sizeof(m));
	strcpy(m.name, "web");
	memcpy(m.owner, owner->pub, ED25519_PUB_LEN);
	rfc3339_format(time(NULL), m.created);
	m.version = version;
	snprintf(m.host, sizeof(m.host), "%s", host);
	m.port = port;
	m.guest_port = 80;
	cr_assert_eq(hex_decode(base, m.base, SHA256_LEN), 0);
	cr_assert_eq(hex_decode(kernel, m.kernel, SHA256_LEN), 0);
	strcpy(m.machine, "uml");
	strcpy(m.format, DELTA_FORMAT_FEDCOW1);
	m.delta.size = 5000;
	m.delta.chunk_size = 4096;
	m.delta.nchunks = 2;
	m.delta.chunks = calloc(2, SHA256_LEN);
	cr_assert_not_null(m.delta.chunks);
	/* every manifest differs, even with the same version */
	tu_fill((uint8_t *)m.delta.chunks, 2 * SHA256_LEN,
		(uint32_t)getpid() * 7919u + ++salt);
	*bytes = manifest_serialize(&m, len, &e);
	cr_assert_not_null(*bytes, "%s", e.msg);
	manifest_free(&m);
	cr_assert_eq(fedsnap_sign_manifest(owner->seed, *bytes, *len, s, &e),
		     0, "%s", e.msg);
	hex_encode(s, ED25519_SIG_LEN, sig);
}

long
af_announce(struct authfix *f, const struct tkey *signer,
	    const struct tkey *owner, const char *host, uint16_t port,
	    int64_t version, const char *base, const char *kernel,
	    char id[65], json_t **reply)
{
	char *bytes, sig[129];
	uint8_t raw[SHA256_LEN];
	size_t len;
	long st;

	af_manifest(owner, host, port, version, base, kernel, &bytes, &len,
		    sig);
	if (id != NULL) {
		manifest_id(bytes, len, raw);
		hex_encode(raw, SHA256_LEN, id);
	}
	st = af_call(f, "POST", "/v1/snapshots",
		     json_pack("{s:s%, s:s}", "manifest", bytes, len,
			       "signature", sig), signer, reply);
	free(bytes);
	return st;
}

void
af_commit_up(struct authfix *f, const struct tkey *k, const char *id,
	     const char *addr, uint16_t port)
{
	char path[128];
	json_t *reply;
	long st;

	st = af_call(f, "POST", "/v1/commitments",
		     json_pack("{s:s}", "snapshot", id), k, &reply);
	cr_assert(st == 201 || st == 200, "commit: %ld %s", st,
		  af_error(reply));
	json_decref(reply);
	snprintf(path, sizeof(path), "/v1/commitments/%s", id);
	st = af_call(f, "PUT", path, json_pack("{s:b, s:s, s:i}", "up", 1,
					       "addr", addr, "port", port),
		     k, &reply);
	cr_assert_eq(st, 200, "commitment up: %ld %s", st, af_error(reply));
	json_decref(reply);
}

long
af_lookup(struct authfix *f, const char *host, uint16_t port,
	  json_t **reply)
{
	char path[512];

	snprintf(path, sizeof(path), "/v1/lookup?host=%s&port=%u", host,
		 port);
	return af_call(f, "GET", path, NULL, NULL, reply);
}

bool
af_lookup_has(const json_t *reply, const char *hex)
{
	const json_t *p;
	size_t i;

	json_array_foreach(json_object_get(reply, "peers"), i, p)
		if (strcmp(json_string_value(json_object_get(p, "peer")),
			   hex) == 0)
			return true;
	return false;
}

void
af_world_make(struct authfix *f, struct af_world *w, int64_t version)
{
	json_t *reply;
	long st;

	tkey_new(&w->owner);
	tkey_new(&w->p1);
	tkey_new(&w->p2);
	af_register(f, &w->owner, "10.0.0.1:7000");
	af_register(f, &w->p1, "10.0.0.2:7000");
	af_register(f, &w->p2, "10.0.0.3:7000");
	af_trust(f, "base", w->base);
	af_trust(f, "kernel", w->kernel);
	st = af_announce(f, &w->owner, &w->owner, "www.example.org", 80,
			 version, w->base, w->kernel, w->id, &reply);
	cr_assert_eq(st, 201, "announce: %ld %s", st, af_error(reply));
	cr_assert_str_eq(json_string_value(json_object_get(reply, "id")),
			 w->id);
	json_decref(reply);
}
