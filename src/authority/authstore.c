/*
 * authstore.c - the store's front: picks the engine by the --db argument
 * and hands every call to it (see authstore_int.h).
 */
#include <stdlib.h>
#include <string.h>

#include "authority/authstore_int.h"

static _Thread_local bool authstore_down;	/* see authstore_unavailable */

static bool
authstore_is_uri(const char *db)
{
	return strncmp(db, "postgres://", 11) == 0 ||
	       strncmp(db, "postgresql://", 13) == 0;
}

struct authstore *
authstore_open(const char *db, struct err *e)
{
	const struct authstore_ops *ops = authstore_is_uri(db)
		? &authstore_pg_ops : &authstore_sqlite_ops;

	authstore_down = false;
	return ops->open(db, e);
}

const char *
authstore_engine(const struct authstore *st)
{
	return st->ops->name;
}

void
authstore_set_unavailable(bool yes)
{
	authstore_down = yes;
}

bool
authstore_unavailable(void)
{
	return authstore_down;
}

int
authstore_where(struct authstore *st, struct authstore_where *w,
		struct err *e)
{
	memset(w, 0, sizeof(*w));
	authstore_down = false;
	return st->ops->where(st, w, e);
}

int
authstore_watch(struct authstore *st, void (*changed)(void *arg), void *arg,
		struct err *e)
{
	if (st->ops->watch == NULL)
		return 0;
	return st->ops->watch(st, changed, arg, e);
}

void
authstore_trusted_free(struct authstore_trusted *t)
{
	free(t->index_json);
	t->index_json = NULL;
}

/* ---- the rest goes to the engine as it is (each call starts with no
 * error said: see authstore_unavailable) ---- */

void
authstore_close(struct authstore *st)
{
	if (st != NULL)
		st->ops->close(st);
}

int
authstore_begin(struct authstore *st, struct err *e)
{
	authstore_down = false;
	return st->ops->begin(st, e);
}

int
authstore_commit(struct authstore *st, struct err *e)
{
	authstore_down = false;
	return st->ops->commit(st, e);
}

/* says no error: it keeps what the failed call said */
void
authstore_rollback(struct authstore *st)
{
	st->ops->rollback(st);
}

int
authstore_sig_add(struct authstore *st, const char *sig_hex, int64_t expires,
		  struct err *e)
{
	authstore_down = false;
	return st->ops->sig_add(st, sig_hex, expires, e);
}

int
authstore_sig_prune(struct authstore *st, int64_t now, struct err *e)
{
	authstore_down = false;
	return st->ops->sig_prune(st, now, e);
}

int
authstore_sig_load(struct authstore *st, int64_t now, int (*cb)(void *arg,
		   const char *sig_hex, int64_t expires), void *arg,
		   struct err *e)
{
	authstore_down = false;
	return st->ops->sig_load(st, now, cb, arg, e);
}

int
authstore_peer_get(struct authstore *st, const char *key,
		   struct authstore_peer *p, struct err *e)
{
	authstore_down = false;
	return st->ops->peer_get(st, key, p, e);
}

int
authstore_peer_put(struct authstore *st, const char *key, const char *addr,
		   int64_t now, bool *created, struct err *e)
{
	authstore_down = false;
	return st->ops->peer_put(st, key, addr, now, created, e);
}

int
authstore_peer_contribution(struct authstore *st, const char *key,
			    int64_t now, struct authstore_contribution *c,
			    struct err *e)
{
	authstore_down = false;
	return st->ops->peer_contribution(st, key, now, c, e);
}

int
authstore_trusted_get(struct authstore *st, const char *sha256,
		      struct authstore_trusted *t, struct err *e)
{
	authstore_down = false;
	return st->ops->trusted_get(st, sha256, t, e);
}

int
authstore_trusted_add(struct authstore *st,
		      const struct authstore_trusted *t, struct err *e)
{
	authstore_down = false;
	return st->ops->trusted_add(st, t, e);
}

int
authstore_trusted_revoke(struct authstore *st, const char *sha256,
			 int64_t now, struct err *e)
{
	authstore_down = false;
	return st->ops->trusted_revoke(st, sha256, now, e);
}

int
authstore_trusted_list(struct authstore *st, int (*cb)(void *arg,
		       const struct authstore_trusted *t), void *arg,
		       struct err *e)
{
	authstore_down = false;
	return st->ops->trusted_list(st, cb, arg, e);
}

int
authstore_service_get(struct authstore *st, const char *host, uint16_t port,
		      struct authstore_service *s, struct err *e)
{
	authstore_down = false;
	return st->ops->service_get(st, host, port, s, e);
}

int
authstore_service_add(struct authstore *st, struct authstore_service *s,
		      struct err *e)
{
	authstore_down = false;
	return st->ops->service_add(st, s, e);
}

int
authstore_snapshot_get(struct authstore *st, const char *id,
		       struct authstore_snapshot *s, bool want_manifest,
		       struct err *e)
{
	authstore_down = false;
	return st->ops->snapshot_get(st, id, s, want_manifest, e);
}

int
authstore_snapshot_add(struct authstore *st,
		       const struct authstore_snapshot *s, struct err *e)
{
	authstore_down = false;
	return st->ops->snapshot_add(st, s, e);
}

int
authstore_snapshot_list(struct authstore *st, const char *host,
			uint16_t port, int (*cb)(void *arg, const struct authstore_snapshot *s),
			void *arg, struct err *e)
{
	authstore_down = false;
	return st->ops->snapshot_list(st, host, port, cb, arg, e);
}

int
authstore_commitment_get(struct authstore *st, const char *snapshot,
			 const char *peer, struct authstore_commitment *c,
			 struct err *e)
{
	authstore_down = false;
	return st->ops->commitment_get(st, snapshot, peer, c, e);
}

int
authstore_commitment_add(struct authstore *st,
			 const struct authstore_commitment *c, struct err *e)
{
	authstore_down = false;
	return st->ops->commitment_add(st, c, e);
}

int
authstore_commitment_set(struct authstore *st, const char *snapshot,
			 const char *peer, const struct authapi_serving *s, int64_t now,
			 struct err *e)
{
	authstore_down = false;
	return st->ops->commitment_set(st, snapshot, peer, s, now, e);
}

int
authstore_commitment_delete(struct authstore *st, const char *snapshot,
			    const char *peer, int64_t now, struct err *e)
{
	authstore_down = false;
	return st->ops->commitment_delete(st, snapshot, peer, now, e);
}

int
authstore_commitments_expire(struct authstore *st, int64_t cutoff,
			     struct err *e)
{
	authstore_down = false;
	return st->ops->commitments_expire(st, cutoff, e);
}

int
authstore_peers_forget(struct authstore *st, int64_t cutoff, unsigned max,
		       struct err *e)
{
	authstore_down = false;
	return st->ops->peers_forget(st, cutoff, max, e);
}

int
authstore_commitment_list(struct authstore *st, int64_t service,
			  int (*cb)(void *arg, const struct authstore_commitment *c), void *arg,
			  struct err *e)
{
	authstore_down = false;
	return st->ops->commitment_list(st, service, cb, arg, e);
}

int
authstore_reported(struct authstore *st, int64_t service, const char *peer,
		   struct err *e)
{
	authstore_down = false;
	return st->ops->reported(st, service, peer, e);
}

int
authstore_report_add(struct authstore *st, int64_t service, const char *peer,
		     const char *reporter, const char *reason, int64_t now, int64_t *id,
		     struct err *e)
{
	authstore_down = false;
	return st->ops->report_add(st, service, peer, reporter, reason, now, id,
			e);
}

int
authstore_report_list(struct authstore *st, int64_t service,
		      int (*cb)(void *arg, const struct authstore_report *r), void *arg,
		      struct err *e)
{
	authstore_down = false;
	return st->ops->report_list(st, service, cb, arg, e);
}

int
authstore_bad_source_add(struct authstore *st,
			 const struct authstore_bad_source *b, int64_t *id, bool *created,
			 struct err *e)
{
	authstore_down = false;
	return st->ops->bad_source_add(st, b, id, created, e);
}

int
authstore_peers_at(struct authstore *st, const char *addr,
		   int (*cb)(void *arg, const char *peer), void *arg,
		   struct err *e)
{
	authstore_down = false;
	return st->ops->peers_at(st, addr, cb, arg, e);
}

int
authstore_holding_put(struct authstore *st, const char *sha256,
		      const char *peer, int64_t now, bool *created,
		      struct err *e)
{
	authstore_down = false;
	return st->ops->holding_put(st, sha256, peer, now, created, e);
}

int
authstore_holding_delete(struct authstore *st, const char *sha256,
			 const char *peer, struct err *e)
{
	authstore_down = false;
	return st->ops->holding_delete(st, sha256, peer, e);
}

int
authstore_sources(struct authstore *st, const char *sha256, int64_t service,
		  unsigned max, int64_t cutoff, int (*cb)(void *arg, const char *peer,
		  const char *addr, enum authstore_role role), void *arg,
		  struct err *e)
{
	authstore_down = false;
	return st->ops->sources(st, sha256, service, max, cutoff, cb, arg, e);
}

int
authstore_lookup(struct authstore *st, const char *host, uint16_t port,
		 int (*cb)(void *arg, const char *peer, const char *addr, uint16_t port),
		 void *arg, struct err *e)
{
	authstore_down = false;
	return st->ops->lookup(st, host, port, cb, arg, e);
}

int
authstore_key_change_get(struct authstore *st, const char *key,
			 struct authstore_key_change *k, struct err *e)
{
	authstore_down = false;
	return st->ops->key_change_get(st, key, k, e);
}

int
authstore_key_change_to(struct authstore *st, const char *key,
			struct authstore_key_change *k, struct err *e)
{
	authstore_down = false;
	return st->ops->key_change_to(st, key, k, e);
}

int
authstore_key_change_add(struct authstore *st,
			 const struct authstore_key_change *k, struct err *e)
{
	authstore_down = false;
	return st->ops->key_change_add(st, k, e);
}

int
authstore_key_confirm(struct authstore *st, const char *key,
		      const char *successor, const char *record,
		      const char *signature, int64_t at, struct err *e)
{
	authstore_down = false;
	return st->ops->key_confirm(st, key, successor, record, signature, at,
				    e);
}

int
authstore_services_transfer(struct authstore *st, const char *from,
			    const char *to, struct err *e)
{
	authstore_down = false;
	return st->ops->services_transfer(st, from, to, e);
}

int
authstore_counts(struct authstore *st, struct authstore_counts *c,
		 struct err *e)
{
	authstore_down = false;
	return st->ops->counts(st, c, e);
}

int64_t
authstore_last_seen(struct authstore *st, struct err *e)
{
	authstore_down = false;
	return st->ops->last_seen(st, e);
}
