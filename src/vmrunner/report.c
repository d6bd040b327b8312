/*
 * report.c - the vmrunner and its authority: is a kernel or base trusted
 * (and not revoked), and the one report each VM owes it ("up" with where it
 * serves, or "down"), retried until taken and repeated within the
 * authority's peer ttl.  A black-holed authority pauses every report, with
 * a doubling pause, so it costs the loop one timeout per pause.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/http.h"
#include "common/log.h"

#include "vmrunner/runner.h"

/*
 * Is sha listed as a trusted `kind` and not revoked?  Returns 0 and sets
 * *why to NULL if so, 0 with *why a static reason if not, -1 if the
 * authority could not be asked (e set).
 */
int
runner_trusted(json_t *list, const uint8_t sha[SHA256_LEN], const char *kind,
	       const char **why)
{
	char hex[2 * SHA256_LEN + 1];
	size_t i;
	json_t *t;

	hex_encode(sha, SHA256_LEN, hex);
	*why = "is not trusted";
	json_array_foreach(list, i, t) {
		const char *h = json_string_value(json_object_get(t, "sha256"));
		const char *k = json_string_value(json_object_get(t, "kind"));

		if (h == NULL || k == NULL || strcmp(h, hex) != 0)
			continue;
		if (strcmp(k, kind) != 0) {
			*why = "is trusted as another kind";
			continue;
		}
		*why = json_is_true(json_object_get(t, "revoked")) ?
			"is revoked" : NULL;
		return 0;
	}
	return 0;
}

int
runner_fetch_trusted(struct runner *r, json_t **list, struct err *e)
{
	json_t *reply = NULL;
	long status = 0;

	if (authority_call(r->cfg->authority, "GET", "/v1/trusted", NULL, NULL,
			   &status, &reply, e) < 0)
		return -1;
	if (status != 200 || !json_is_array(json_object_get(reply, "trusted"))) {
		authority_refused(status, reply, e);
		json_decref(reply);
		return -1;
	}
	*list = json_incref(json_object_get(reply, "trusted"));
	json_decref(reply);
	return 0;
}

void
runner_report(struct runner *r, struct vm *v)
{
	struct vm_report *rep = &v->report;
	char path[128];
	json_t *body, *reply = NULL;
	long status = 0;
	struct err e;

	if (mono_now() < r->authority_next) {
		rep->next_try = r->authority_next;
		return;
	}
	snprintf(path, sizeof(path), "/v1/commitments/%s", v->id);
	if (rep->up)
		body = json_pack("{s:b,s:s,s:i}", "up", 1, "addr",
				 r->public_addr, "port", (int)v->host_port);
	else
		body = json_pack("{s:b}", "up", 0);
	if (authority_call(r->cfg->authority, "PUT", path, body, r->seed,
			   &status, &reply, &e) < 0) {
		r->authority_pause = r->authority_pause > 0 ?
			2 * r->authority_pause : RUNNER_REPORT_RETRY_S;
		if (r->authority_pause > RUNNER_UNREACHABLE_MAX_S)
			r->authority_pause = RUNNER_UNREACHABLE_MAX_S;
		r->authority_next = mono_now() + r->authority_pause;
		rep->next_try = r->authority_next;
		log_warn("%s: reporting %s: %s (no report for %.0f s)",
			 v->file, rep->up ? "up" : "down", e.msg,
			 r->authority_pause);
	} else if (status != 200) {
		r->authority_pause = 0;
		authority_refused(status, reply, &e);
		log_warn("%s: reporting %s: %s (retrying)", v->file,
			 rep->up ? "up" : "down", e.msg);
		rep->next_try = mono_now() + RUNNER_REPORT_RETRY_S;
	} else {
		json_t *ttl = json_object_get(reply, "peer_ttl");

		r->authority_pause = 0;
		if (rep->refresh)
			log_debug("%s: reported up again", v->file);
		else
			log_info("%s: reported %s to the authority", v->file,
				 rep->up ? "up" : "down");
		rep->pending = false;
		rep->taken_at = mono_now();
		rep->peer_ttl = json_is_integer(ttl) ?
				(int)json_integer_value(ttl) : 0;
	}
	json_decref(body);
	json_decref(reply);
}

void
runner_want_report(struct runner *r, struct vm *v, bool up)
{
	v->report.pending = true;
	v->report.up = up;
	v->report.refresh = false;
	v->report.next_try = 0;
	runner_report(r, v);
}

/* Is VM i's "up" due to be said again (see struct vm_report)? */
bool
runner_refresh_due(const struct vm *v, double now)
{
	const struct vm_report *rep = &v->report;
	/* no ttl said (an authority without one may restart with one):
	 * the default cadence */
	double every = rep->peer_ttl > 0 ? rep->peer_ttl / 3.0 :
					   RUNNER_REFRESH_EVERY_S;

	if (rep->pending || !rep->up)
		return false;
	return now - rep->taken_at >= (every >= 1 ? every : 1);
}
