/*
 * status.c - /fed/.status (JSON) and the fedfs half of GET /metrics.
 *
 * .status "cache" also says what the store found wrong with itself:
 * bad_chunks dropped, disk_full events, write_errors, and the scrubber's
 * figures ("scrub").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/timefmt.h"
#include "fedfs/fedfs.h"
#include "fedfs/scrub.h"

/* The store's checks and faults, into the "cache" object c. */
static void
status_store(json_t *c, struct fedfs *fs, const struct store_stats *st)
{
	json_object_set_new(c, "verify", json_boolean(store_verifying(fs->store)));
	json_object_set_new(c, "bad_chunks", json_integer((json_int_t)st->bad_chunks));
	json_object_set_new(c, "verified_bytes",
			    json_integer((json_int_t)st->verified_bytes));
	json_object_set_new(c, "disk_full", json_integer((json_int_t)st->disk_full));
	json_object_set_new(c, "write_errors",
			    json_integer((json_int_t)st->write_errors));
	json_object_set_new(c, "scrub", scrub_status(fs->scrubber));
}

json_t *
fedfs_status(struct fedfs *fs)
{
	struct store_stats st;
	uint64_t served = 0, requests = 0, nf = 0;
	size_t kernels = 0, bases = 0, deltas = 0;
	json_t *j, *commits = json_array();
	char when[RFC3339_LEN + 1] = "", refreshed[RFC3339_LEN + 1] = "";

	store_get_stats(fs->store, &st);
	objsrv_counters(fs->objsrv, &served, &requests, &nf);
	pthread_rwlock_rdlock(&fs->lock);
	for (size_t i = 0; i < fs->nobjs; i++) {
		if (!fs->objs[i]->listed)
			continue;
		switch (fs->objs[i]->kind) {
		case OBJ_KERNEL: kernels++; break;
		case OBJ_BASE: bases++; break;
		case OBJ_DELTA: deltas++; break;
		}
	}
	for (size_t i = INO_FIRST_DYNAMIC; i < fs->nnodes; i++) {
		struct node *n = fs->nodes[i];
		char hex[2 * SHA256_LEN + 1];

		if (n == NULL || n->type != NODE_COMMIT || !n->live)
			continue;
		hex_encode(n->obj->id, SHA256_LEN, hex);
		json_array_append_new(commits, json_pack("{s:s,s:s,s:s,s:I}",
		    "name", n->name, "id", hex, "service", n->obj->service,
		    "version", (json_int_t)n->obj->version));
	}
	if (fs->authority_contact)
		rfc3339_format(fs->authority_contact, when);
	if (fs->refreshed)
		rfc3339_format(fs->refreshed, refreshed);
	j = json_pack("{s:s,s:s,s:{s:I,s:I,s:I,s:I,s:I,s:I},"
		      "s:{s:I,s:I,s:I},s:{s:s,s:s,s:s,s:b},"
		      "s:{s:i,s:i,s:i,s:s},s:o,s:{s:I,s:I}}",
	    "peer", fs->peer_id, "serve", fs->public_addr,
	    "cache", "bytes", (json_int_t)st.bytes,
		"max_bytes", (json_int_t)st.max_bytes,
		"chunks", (json_int_t)st.chunks,
		"pinned_chunks", (json_int_t)st.pinned_chunks,
		"evictions", (json_int_t)st.evictions,
		"unsynced_chunks", (json_int_t)st.unsynced_chunks,
	    "served", "bytes", (json_int_t)served,
		"requests", (json_int_t)requests, "not_found", (json_int_t)nf,
	    "authority", "url", fs->authority, "last_contact", when,
		"error", fs->authority_error, "registered", fs->registered,
	    "catalogue", "kernels", (int)kernels, "bases", (int)bases,
		"deltas", (int)deltas, "refreshed", refreshed,
	    "commits", commits,
	    "ingest", "accepted", (json_int_t)fs->ingest_ok,
		"refused", (json_int_t)fs->ingest_refused);
	pthread_rwlock_unlock(&fs->lock);
	if (j == NULL)
		return NULL;
	json_object_set_new(j, "fetch", fetcher_status(fs->fetcher));
	status_store(json_object_get(j, "cache"), fs, &st);
	return j;
}

void
fedfs_status_text(void *arg, char **buf, size_t *len)
{
	json_t *j = fedfs_status(arg);

	*buf = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;
	*len = *buf != NULL ? strlen(*buf) : 0;
	json_decref(j);
}

void
fedfs_metrics(void *arg, char **buf, size_t *len)
{
	struct fedfs *fs = arg;

	*buf = fetcher_metrics(fs->fetcher, len);
}
