/*
 * lookup.c - who serves host:port: the authority's answer, cached on disk.
 *
 * The cache is one file per service, <cache>/lookup/<host>:<port>.json:
 *
 *   {"fetched": <unix seconds>, "ttl": <seconds>, "answer": {lookup reply}}
 *
 * written to a temporary file and renamed over the old one, so a reader
 * (another `fed get`, the proxy's threads) sees the old answer or the new
 * one, never half of one.  The host was checked by authapi_host_check (a
 * DNS name or an IPv4 address), so it cannot hold a '/'.
 *
 * The decision, in order: a cached answer within its ttl is used as is;
 * else the authority is asked and its answer cached; if it cannot be
 * reached (or answers 5xx) a cached answer of any age is used, with one
 * warning (with --mirror, a peer's signed copy first: client/mirror.c);
 * a 404 "fallback":"dns" goes to the system resolver.  DNS answers
 * are not cached here: the system resolver has its own cache.
 *
 * With the authority's key pinned (--authority-key, client_lookup_trusted)
 * every answer is checked by common/signed_answer.c before it is used or
 * cached: the cached one when read (one that does not verify is ignored,
 * one that expired is not used while the authority answers), the
 * authority's when it comes (refused if it does not verify or is older
 * than the cached one; if it expired, the cached one is used while still
 * valid, else it is refused unless --allow-stale).  The order matters
 * (tough's CVE-2025-2888 cached before checking): only an answer that
 * verified, and has not expired, is written to the cache.  The 404 that
 * sends a name to DNS must verify too, or anyone in the path could send
 * every name there.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/http.h"
#include "common/log.h"
#include "common/signed_answer.h"
#include "common/timefmt.h"

/* mkdir -p with mode 0700 for what is created. */
static int
lookup_mkdirs(const char *path, struct err *e)
{
	char buf[4096];
	size_t i, len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return err_set(e, "cache: bad directory '%s'", path);
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) == -1 && errno != EEXIST)
			return err_sys(e, "cache: mkdir %s", buf);
		buf[i] = path[i];
	}
	return 0;
}

char *
client_cache_dir(const char *dir, struct err *e)
{
	const char *env;
	char *path = NULL;

	if (dir != NULL && dir[0] != '\0')
		path = strdup(dir);
	else if ((env = getenv("FED_CACHE")) != NULL && env[0] != '\0')
		path = strdup(env);
	else if ((env = getenv("XDG_CACHE_HOME")) != NULL && env[0] != '\0') {
		if (asprintf(&path, "%s/fed", env) == -1)
			path = NULL;
	} else if ((env = getenv("HOME")) != NULL && env[0] != '\0') {
		if (asprintf(&path, "%s/.cache/fed", env) == -1)
			path = NULL;
	} else {
		err_set(e, "cache: no --cache DIR, $FED_CACHE, "
			"$XDG_CACHE_HOME or $HOME");
		return NULL;
	}
	if (path == NULL) {
		err_set(e, "out of memory");
		return NULL;
	}
	if (lookup_mkdirs(path, e) == -1) {
		free(path);
		return NULL;
	}
	return path;
}

const char *
client_source_name(enum client_source s)
{
	switch (s) {
	case CLIENT_SRC_AUTHORITY: return "authority";
	case CLIENT_SRC_CACHE: return "cache";
	case CLIENT_SRC_STALE: return "stale cache";
	case CLIENT_SRC_DNS: return "dns";
	case CLIENT_SRC_MIRROR: return "mirror";
	}
	return "?";
}

void
client_lookup_free(struct client_lookup *l)
{
	free(l->peers);
	l->peers = NULL;
	l->npeers = 0;
}

int
client_lookup_dns(const char *host, uint16_t port, struct client_lookup *l,
		  struct err *e)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[8];
	size_t n = 0;
	int rc;

	memset(l, 0, sizeof(*l));
	snprintf(l->host, sizeof(l->host), "%s", host);
	l->port = port;
	l->source = CLIENT_SRC_DNS;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%u", port);
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0)
		return err_set(e, "%s:%u: DNS: %s", host, port,
			       gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next)
		n++;
	if ((l->peers = calloc(n ? n : 1, sizeof(*l->peers))) == NULL) {
		freeaddrinfo(res);
		return err_set(e, "out of memory");
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct client_peer *p = &l->peers[l->npeers];
		const void *a = ai->ai_family == AF_INET6 ?
		    (const void *)&((struct sockaddr_in6 *)(void *)
				    ai->ai_addr)->sin6_addr :
		    (const void *)&((struct sockaddr_in *)(void *)
				    ai->ai_addr)->sin_addr;

		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (inet_ntop(ai->ai_family, a, p->addr, sizeof(p->addr)) ==
		    NULL)
			continue;
		p->port = port;
		l->npeers++;
	}
	freeaddrinfo(res);
	return 0;
}

/* Fill l from a lookup reply (source, fetched left to the caller). */
static int
lookup_from_json(const json_t *answer, struct client_lookup *l,
		 struct err *e)
{
	struct authapi_lookup al;
	size_t i;

	if (authapi_lookup_parse(answer, &al, e) == -1)
		return -1;
	snprintf(l->host, sizeof(l->host), "%s", al.host);
	l->port = al.port;
	l->ttl = al.ttl;
	l->npeers = 0;
	l->peers = calloc(al.npeers ? al.npeers : 1, sizeof(*l->peers));
	if (l->peers == NULL) {
		authapi_lookup_free(&al);
		return err_set(e, "out of memory");
	}
	for (i = 0; i < al.npeers; i++) {
		memcpy(l->peers[i].peer, al.peers[i].peer,
		       sizeof(l->peers[i].peer));
		memcpy(l->peers[i].addr, al.peers[i].addr,
		       sizeof(l->peers[i].addr));
		l->peers[i].port = al.peers[i].port;
	}
	l->npeers = al.npeers;
	authapi_lookup_free(&al);
	return 0;
}

static char *
lookup_cache_path(const char *cache_dir, const char *host, uint16_t port)
{
	char *p;

	if (asprintf(&p, "%s/lookup/%s:%u.json", cache_dir, host, port) == -1)
		return NULL;
	return p;
}

/* The cached answer of one service, as read from its file. */
struct lookup_held {
	bool have;
	json_t *answer;		/* owned */
	int64_t fetched;
	int ttl;
	/* with a pinned key: the answer verified; its signed fields, and
	 * whether (why) it has expired */
	struct signed_meta m;
	bool expired;
	struct err why;
};

static void
lookup_held_free(struct lookup_held *h)
{
	json_decref(h->answer);
	h->answer = NULL;
	h->have = false;
}

/* The cached entry for host:port into h (h->have false if none usable).
 * With trust on, an entry that does not verify is ignored: only verified
 * answers count as held. */
static void
lookup_cache_read(const char *path, const char *host, uint16_t port,
		  const struct signed_trust *trust, int64_t now,
		  struct lookup_held *h)
{
	struct client_lookup l;
	json_error_t je;
	json_t *j, *fetched;
	char subject[AUTHAPI_ADDR_MAX + 1];
	struct err e;
	enum signed_verdict v;

	memset(h, 0, sizeof(*h));
	if ((j = json_load_file(path, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		if (access(path, F_OK) == 0)
			log_warn("cache %s: unreadable, ignored: %s", path,
				 je.text);
		return;
	}
	fetched = json_object_get(j, "fetched");
	if (!json_is_integer(fetched) ||
	    lookup_from_json(json_object_get(j, "answer"), &l, &e) == -1) {
		log_warn("cache %s: not a cached lookup, ignored", path);
		json_decref(j);
		return;
	}
	h->ttl = l.ttl;
	if (strcmp(l.host, host) != 0 || l.port != port) {
		log_warn("cache %s: holds another service, ignored", path);
		client_lookup_free(&l);
		json_decref(j);
		return;
	}
	client_lookup_free(&l);
	h->answer = json_incref(json_object_get(j, "answer"));
	h->fetched = json_integer_value(fetched);
	json_decref(j);
	h->have = true;
	if (trust == NULL || !trust->on)
		return;
	snprintf(subject, sizeof(subject), "%s:%u", host, port);
	v = signed_answer_verify(h->answer, SIGNED_LOOKUP, subject, trust->key,
				 (time_t)now, &h->m, &h->why);
	if (v == SIGNED_BAD) {
		log_warn("cache %s: ignored: %s", path, h->why.msg);
		lookup_held_free(h);
		return;
	}
	h->expired = v == SIGNED_EXPIRED;
}

/* h as l (from source src).  Returns 0 or -1 with e set. */
static int
lookup_use_held(const struct lookup_held *h, enum client_source src,
		struct client_lookup *l, struct err *e)
{
	if (lookup_from_json(h->answer, l, e) == -1)
		return -1;
	l->fetched = h->fetched;
	l->source = src;
	return 0;
}

/* Keep answer for host:port, fetched at now: tmp + rename. */
static void
lookup_cache_write(const char *cache_dir, const char *path,
		   const json_t *answer, int ttl, int64_t now)
{
	char *dir = NULL, *tmp = NULL;
	json_t *j;
	struct err e;

	if (asprintf(&dir, "%s/lookup", cache_dir) == -1)
		return;
	if (lookup_mkdirs(dir, &e) == -1) {
		log_warn("%s", e.msg);
		free(dir);
		return;
	}
	free(dir);
	if (asprintf(&tmp, "%s.%ld.%lx.tmp", path, (long)getpid(),
		     (unsigned long)pthread_self()) == -1)
		return;
	j = json_pack("{s:I, s:i, s:O}", "fetched", (json_int_t)now,
		      "ttl", ttl, "answer", answer);
	if (j == NULL || json_dump_file(j, tmp, JSON_COMPACT) == -1 ||
	    rename(tmp, path) == -1) {
		log_warn("cache %s: cannot write: %s", path, strerror(errno));
		unlink(tmp);
	}
	json_decref(j);
	free(tmp);
}

/* The authority's (checked) reply: a 404 "fallback":"dns" goes to the
 * system resolver, a 200 is used and, if fresh, cached.  Returns 0 or -1
 * with e set. */
static int
lookup_answer(json_t *reply, long status, bool fresh, const char *cache_dir,
	      const char *cpath, const char *host, uint16_t port, int64_t now,
	      struct client_lookup *l, struct err *e)
{
	const char *fb;

	if (status == 404) {
		fb = json_string_value(json_object_get(reply, "fallback"));
		if (fb != NULL && strcmp(fb, "dns") == 0)
			return client_lookup_dns(host, port, l, e);
		return authority_refused(status, reply, e);
	}
	if (lookup_from_json(reply, l, e) == -1)
		return err_wrap(e, "authority");
	l->source = CLIENT_SRC_AUTHORITY;
	l->fetched = now;
	if (fresh)	/* only what verified (or all, with no pinned key) */
		lookup_cache_write(cache_dir, cpath, reply, l->ttl, now);
	return 0;
}

int
client_lookup(const char *authority, const char *cache_dir,
	      const char *host, uint16_t port, int64_t now,
	      struct client_lookup *l, struct err *e)
{
	return client_lookup_trusted(authority, cache_dir, NULL, host, port,
				     now, l, e);
}

/* Is the mirror's answer (meta m, expired or not) worse than what is
 * held, so that the held one is used instead? */
static bool
lookup_held_better(const struct lookup_held *h, const struct signed_meta *m,
		   bool expired)
{
	if (!h->have || h->expired)
		return false;
	return expired || h->m.version > m->version;
}

/* Every authority is down (why in ae): ask the mirrors (--mirror) for a
 * signed answer.  Returns 0 (l filled from a mirror; cached if fresh), 1
 * (none better than what is held: go on with it), or -1 with e set. */
static int
lookup_mirrored(const struct signed_trust *trust, struct lookup_held *h,
		const char *host, uint16_t port, const struct err *ae,
		const char *cache_dir, const char *cpath, int64_t now,
		struct client_lookup *l, struct err *e)
{
	struct client_mirror_reply from;
	char when[RFC3339_LEN + 1];
	struct client_mirrors ms;
	struct err me;
	json_t *a;

	memset(&ms, 0, sizeof(ms));
	if (trust->mirrors != NULL &&
	    client_mirrors_parse(trust->mirrors, &ms, e) == -1)
		return -1;
	if (h->have)	/* verified: the mirrors it names are the authority's */
		client_mirrors_learn(&ms, h->answer);
	if (ms.n == 0)
		return 1;
	if (client_mirror_ask(trust, &ms, host, port, h->have ? h->answer :
			      NULL, &h->m, (time_t)now, &a, &from, &me) == -1) {
		log_warn("authority unreachable (%s); %s", ae->msg, me.msg);
		return 1;
	}
	if (lookup_held_better(h, &from.m, from.expired)) {
		json_decref(a);
		return 1;
	}
	if (lookup_from_json(a, l, e) == -1) {
		json_decref(a);
		return err_wrap(e, "mirror %s", from.name);
	}
	l->source = CLIENT_SRC_MIRROR;
	l->fetched = now;
	rfc3339_format(from.m.expires, when);
	log_warn("authority unreachable (%s); using the signed answer "
		 "mirrored by %s (version %lld, %s %s%s)", ae->msg, from.name,
		 (long long)from.m.version, from.expired ? "expired" :
		 "expires", when, from.expired ? ", --allow-stale" : "");
	if (!from.expired)	/* only what verified and is fresh */
		lookup_cache_write(cache_dir, cpath, a, l->ttl, now);
	json_decref(a);
	return 0;
}

/* The authority could not be asked (why in ae): a mirror's fresher
 * answer (--mirror); else the held answer if it is still valid, or
 * expired under --allow-stale; else DNS when nothing is held.  Returns 0
 * or -1 with e set. */
static int
lookup_unreachable(const struct signed_trust *trust, struct lookup_held *h,
		   const char *host, uint16_t port, const struct err *ae,
		   const char *cache_dir, const char *cpath, int64_t now,
		   struct client_lookup *l, struct err *e)
{
	char when[RFC3339_LEN + 1];
	int rc;

	if (trust->on && (rc = lookup_mirrored(trust, h, host, port, ae, cache_dir, cpath,
				  now, l, e)) != 1)
		return rc;

	if (!h->have) {
		log_warn("authority unreachable (%s); nothing cached for "
			 "%s:%u, asking DNS", ae->msg, host, port);
		return client_lookup_dns(host, port, l, e);
	}
	rfc3339_format((time_t)h->fetched, when);
	if (h->expired && !trust->allow_stale)
		return err_set(e, "authority unreachable (%s); cached %s",
			       ae->msg, h->why.msg);
	if (h->expired)
		log_warn("authority unreachable (%s); no fresh answer: using "
			 "the expired one cached at %s (--allow-stale): %s",
			 ae->msg, when, h->why.msg);
	else
		log_warn("authority unreachable (%s); using the answer "
			 "cached at %s", ae->msg, when);
	return lookup_use_held(h, CLIENT_SRC_STALE, l, e);
}

/*
 * With a pinned key: check reply against it and against what is held.
 * Returns 0 (use it), 1 (it expired and the held answer, still valid, is
 * used instead: *l filled), 2 (expired, taken under --allow-stale), or -1
 * with e set (refused).
 */
static int
lookup_check(const struct signed_trust *trust, const json_t *reply,
	     struct lookup_held *h, const char *host, uint16_t port,
	     int64_t now, struct client_lookup *l, struct err *e)
{
	char subject[AUTHAPI_ADDR_MAX + 1], when[RFC3339_LEN + 1];
	struct signed_meta m;
	enum signed_verdict v;

	if (trust == NULL || !trust->on)
		return 0;
	snprintf(subject, sizeof(subject), "%s:%u", host, port);
	v = signed_answer_verify(reply, SIGNED_LOOKUP, subject, trust->key,
				 (time_t)now, &m, e);
	if (v == SIGNED_BAD)
		return err_wrap(e, "authority");
	if (signed_answer_not_older(reply, &m, h->have ? h->answer : NULL,
				    &h->m, SIGNED_LOOKUP, subject, e) == -1)
		return err_wrap(e, "authority");
	if (v == SIGNED_OK)
		return 0;
	if (h->have && !h->expired) {
		rfc3339_format((time_t)h->fetched, when);
		log_warn("authority: %s; using the answer cached at %s, still "
			 "valid", e->msg, when);
		return lookup_use_held(h, CLIENT_SRC_STALE, l, e) == 0 ? 1 : -1;
	}
	if (!trust->allow_stale)
		return err_wrap(e, "authority");
	log_warn("authority: no fresh answer: using an expired one "
		 "(--allow-stale): %s", e->msg);
	return 2;
}

int
client_lookup_trusted(const char *authority, const char *cache_dir,
		      const struct signed_trust *trust, const char *host,
		      uint16_t port, int64_t now, struct client_lookup *l,
		      struct err *e)
{
	static const struct signed_trust none;
	char qpath[AUTHAPI_HOST_MAX + 64];
	struct lookup_held held;
	json_t *reply = NULL;
	struct err ae;
	char *cpath;
	long status;
	int rc;

	memset(l, 0, sizeof(*l));
	if (trust == NULL)
		trust = &none;
	if (authapi_host_check(host, e) == -1)
		return err_wrap(e, "%s", host);
	if ((cpath = lookup_cache_path(cache_dir, host, port)) == NULL)
		return err_set(e, "out of memory");
	lookup_cache_read(cpath, host, port, trust, now, &held);
	if (held.have && !held.expired && now >= held.fetched &&
	    now - held.fetched < held.ttl) {
		rc = lookup_use_held(&held, CLIENT_SRC_CACHE, l, e);
		goto done;
	}

	snprintf(qpath, sizeof(qpath), "/v1/lookup?host=%s&port=%u", host,
		 port);
	rc = authority_call(authority, "GET", qpath, NULL, NULL, &status,
			    &reply, &ae);
	if (rc == 0 && status >= 500) {
		authority_refused(status, reply, &ae);
		rc = -1;
	}
	if (rc == -1) {
		rc = lookup_unreachable(trust, &held, host, port, &ae,
					cache_dir, cpath, now, l, e);
		goto done;
	}
	if (status != 200 && status != 404) {
		rc = authority_refused(status, reply, e);
		goto done;
	}
	if ((rc = lookup_check(trust, reply, &held, host, port, now, l,
			       e)) == -1 || rc == 1) {
		rc = rc == 1 ? 0 : -1;
		goto done;
	}
	rc = lookup_answer(reply, status, rc == 0, cache_dir, cpath, host,
			   port, now, l, e);
done:
	lookup_held_free(&held);
	json_decref(reply);
	free(cpath);
	return rc;
}
