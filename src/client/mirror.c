/*
 * mirror.c - a signed lookup answer from peers when every authority is
 * down (issue 21, "Peers mirror"; docs/client.md "When every authority is
 * down").
 *
 * A peer started with --authority-key mirrors the authority's signed
 * lookup answer of every service it hosts at GET /v1/lookup on its object
 * server (fedfs/mirror.h).  A client knows the mirrors it is told
 * (--mirror ADDR:PORT,...: the object-server addresses of peers, given as
 * an admin gives --authority) and those the answer it holds names (a
 * signed lookup answer names each peer's object server, "mirror"; learnt
 * only from an answer that verified).  It asks them only when no
 * authority could be reached, and only with the authority's key pinned,
 * since an answer from a peer is worth exactly its signature.
 *
 * Every mirror is asked, in turn (a dead one costs a refused connection,
 * a silent one CLIENT_MIRROR_TIMEOUT_MS), and the freshest valid answer
 * wins: the same check as for the authority's own (signature, subject,
 * expiry, not older than the answer held), so a lying peer can neither
 * forge an answer nor roll one back; it is skipped and named on stderr.
 *
 * Not done: mirrors are asked one after the other, not at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "common/http.h"
#include "common/log.h"

/* One "ADDR:PORT" of the list (len bytes at s) into out. */
static int
mirror_parse_one(const char *s, size_t len, char *out, size_t size,
		 struct err *e)
{
	char buf[AUTHAPI_ADDR_MAX + 1], *colon, *end;
	unsigned long port;

	if (len == 0)
		return err_set(e, "--mirror: empty element");
	if (len >= sizeof(buf))
		return err_set(e, "--mirror: '%.40s...' is too long", s);
	memcpy(buf, s, len);
	buf[len] = '\0';
	if ((colon = strrchr(buf, ':')) == NULL)
		return err_set(e, "--mirror: '%s': expected ADDR:PORT", buf);
	*colon = '\0';
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || port < 1 ||
	    port > 65535)
		return err_set(e, "--mirror: '%s:%s': bad port", buf,
			       colon + 1);
	if (authapi_host_check(buf, e) == -1)
		return err_wrap(e, "--mirror: '%s'", buf);
	if ((size_t)snprintf(out, size, "%s:%lu", buf, port) >= size)
		return err_set(e, "--mirror: '%s' is too long", buf);
	return 0;
}

int
client_mirrors_parse(const char *list, struct client_mirrors *m,
		     struct err *e)
{
	const char *p = list, *comma;
	size_t len;

	memset(m, 0, sizeof(*m));
	if (list == NULL || list[0] == '\0')
		return err_set(e, "--mirror: empty list");
	for (;;) {
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (m->n == CLIENT_MIRRORS_MAX)
			return err_set(e, "--mirror: more than %d mirrors",
				       CLIENT_MIRRORS_MAX);
		if (mirror_parse_one(p, len, m->addr[m->n],
				     sizeof(m->addr[m->n]), e) == -1)
			return -1;
		m->n++;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

void
client_mirrors_learn(struct client_mirrors *m, const json_t *answer)
{
	char addr[AUTHAPI_ADDR_MAX + 1];
	const char *s;
	struct err e;
	size_t i, j;
	json_t *p;

	json_array_foreach(json_object_get(answer, "peers"), i, p) {
		s = json_string_value(json_object_get(p, "mirror"));
		if (s == NULL || m->n == CLIENT_MIRRORS_MAX ||
		    mirror_parse_one(s, strlen(s), addr, sizeof(addr), &e) == -1)
			continue;
		for (j = 0; j < m->n && strcmp(m->addr[j], addr) != 0; j++)
			;
		if (j == m->n)
			memcpy(m->addr[m->n++], addr, sizeof(addr));
	}
}

/* Judge reply x: 0 valid (x->m, x->expired set), -1 skipped (x->why). */
static int
mirror_judge(struct client_mirror_reply *x, const char *subject,
	     const struct signed_trust *t, const json_t *held,
	     const struct signed_meta *hm, time_t now)
{
	enum signed_verdict v;
	struct err e;

	if (x->answer == NULL)
		return -1;	/* why says */
	v = signed_answer_verify(x->answer, SIGNED_LOOKUP, subject, t->key,
				 now, &x->m, &e);
	if (v == SIGNED_BAD ||
	    signed_answer_not_older(x->answer, &x->m, held, hm, SIGNED_LOOKUP,
				    subject, &e) == -1 ||
	    (v == SIGNED_EXPIRED && !t->allow_stale)) {
		snprintf(x->why, sizeof(x->why), "%s", e.msg);
		return -1;
	}
	x->expired = v == SIGNED_EXPIRED;
	return 0;
}

/* Is a (valid) better than b (valid, or NULL)? */
static bool
mirror_better(const struct client_mirror_reply *a,
	      const struct client_mirror_reply *b)
{
	if (b == NULL)
		return true;
	if (a->expired != b->expired)
		return !a->expired;
	return a->m.version > b->m.version;
}

int
client_mirror_choose(struct client_mirror_reply *r, size_t n,
		     const char *subject, const struct signed_trust *t,
		     const json_t *held, const struct signed_meta *hm,
		     time_t now)
{
	int best = -1;

	for (size_t i = 0; i < n; i++) {
		if (mirror_judge(&r[i], subject, t, held, hm, now) == -1)
			continue;
		if (mirror_better(&r[i], best >= 0 ? &r[best] : NULL))
			best = (int)i;
	}
	return best;
}

/* GET the answer for host:port from mirror addr into x. */
static void
mirror_fetch(const char *addr, const char *host, uint16_t port,
	     struct client_mirror_reply *x)
{
	struct http_reply hr = { 0 };
	char url[2 * AUTHAPI_ADDR_MAX + 64];
	struct err e;

	memset(x, 0, sizeof(*x));
	snprintf(x->name, sizeof(x->name), "%s", addr);
	snprintf(url, sizeof(url), "http://%s/v1/lookup?host=%s&port=%u",
		 addr, host, port);
	if (http_request("GET", url, NULL, NULL, 0, CLIENT_MIRROR_TIMEOUT_MS,
			 SIGNED_ANSWER_MAX, &hr, &e) == -1) {
		snprintf(x->why, sizeof(x->why), "not reached: %.400s",
			 e.msg);
		return;
	}
	if (hr.status != 200)
		snprintf(x->why, sizeof(x->why), "answered %ld%s", hr.status,
			 hr.status == 404 ? " (holds no answer for it)" : "");
	else if ((x->answer = signed_answer_parse(hr.body, hr.len, &e)) ==
		 NULL)
		snprintf(x->why, sizeof(x->why), "%s", e.msg);
	http_reply_free(&hr);
}

int
client_mirror_ask(const struct signed_trust *t,
		  const struct client_mirrors *ms, const char *host,
		  uint16_t port, const json_t *held,
		  const struct signed_meta *hm, time_t now, json_t **answer,
		  struct client_mirror_reply *from, struct err *e)
{
	struct client_mirror_reply r[CLIENT_MIRRORS_MAX];
	char subject[AUTHAPI_ADDR_MAX + 1];
	int best;

	if (!t->on || ms->n == 0)
		return err_set(e, "no mirror known");
	snprintf(subject, sizeof(subject), "%s:%u", host, port);
	for (size_t i = 0; i < ms->n; i++)
		mirror_fetch(ms->addr[i], host, port, &r[i]);
	best = client_mirror_choose(r, ms->n, subject, t, held, hm, now);
	for (size_t i = 0; i < ms->n; i++) {
		if ((int)i != best && r[i].why[0] != '\0')
			log_warn("mirror %s skipped: %s", r[i].name, r[i].why);
		if ((int)i != best)
			json_decref(r[i].answer);
	}
	if (best < 0)
		return err_set(e, "no mirror of %zu gave a valid answer for %s",
			       ms->n, subject);
	*answer = r[best].answer;
	*from = r[best];
	from->answer = NULL;	/* the reference is *answer */
	return 0;
}
