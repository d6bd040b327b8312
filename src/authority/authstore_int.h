/*
 * authstore_int.h - what an engine of the authority's store provides.
 *
 * authstore.c is the front: authstore_open() picks the engine by the --db
 * argument (a postgres:// or postgresql:// URI: authstore_pg.c; anything
 * else, an SQLite path: authstore_sqlite.c) and every authstore_*() call
 * goes through the engine's table.  An engine's handle begins with a
 * struct authstore whose ops point at its table, as git's ref stores and
 * SQLite's VFSes do.  Each function keeps the meaning authstore.h gives it.
 */
#ifndef FED_AUTHORITY_AUTHSTORE_INT_H
#define FED_AUTHORITY_AUTHSTORE_INT_H

#include "authority/authstore.h"

struct authstore_ops {
	const char *name;		/* "sqlite", "postgresql" */
	struct authstore *(*open)(const char *db, struct err *e);
	void (*close)(struct authstore *st);
	int (*begin)(struct authstore *st, struct err *e);
	int (*commit)(struct authstore *st, struct err *e);
	void (*rollback)(struct authstore *st);
	int (*sig_add)(struct authstore *st, const char *sig_hex,
		int64_t expires, struct err *e);
	int (*sig_prune)(struct authstore *st, int64_t now, struct err *e);
	int (*sig_load)(struct authstore *st, int64_t now,
		int (*cb)(void *arg, const char *sig_hex, int64_t expires),
		void *arg, struct err *e);
	int (*peer_get)(struct authstore *st, const char *key,
		struct authstore_peer *p, struct err *e);
	int (*peer_put)(struct authstore *st, const char *key,
		const char *addr, int64_t now, bool *created, struct err *e);
	int (*peer_contribution)(struct authstore *st, const char *key,
		int64_t now, struct authstore_contribution *c, struct err *e);
	int (*trusted_get)(struct authstore *st, const char *sha256,
		struct authstore_trusted *t, struct err *e);
	int (*trusted_add)(struct authstore *st,
		const struct authstore_trusted *t, struct err *e);
	int (*trusted_revoke)(struct authstore *st, const char *sha256,
		int64_t now, struct err *e);
	int (*trusted_list)(struct authstore *st, int (*cb)(void *arg,
		const struct authstore_trusted *t), void *arg, struct err *e);
	int (*service_get)(struct authstore *st, const char *host,
		uint16_t port, struct authstore_service *s, struct err *e);
	int (*service_add)(struct authstore *st, struct authstore_service *s,
		struct err *e);
	int (*snapshot_get)(struct authstore *st, const char *id,
		struct authstore_snapshot *s, bool want_manifest,
		struct err *e);
	int (*snapshot_add)(struct authstore *st,
		const struct authstore_snapshot *s, struct err *e);
	int (*snapshot_list)(struct authstore *st, const char *host,
		uint16_t port, int (*cb)(void *arg,
		const struct authstore_snapshot *s), void *arg, struct err *e);
	int (*commitment_get)(struct authstore *st, const char *snapshot,
		const char *peer, struct authstore_commitment *c,
		struct err *e);
	int (*commitment_add)(struct authstore *st,
		const struct authstore_commitment *c, struct err *e);
	int (*commitment_set)(struct authstore *st, const char *snapshot,
		const char *peer, const struct authapi_serving *s,
		int64_t now, struct err *e);
	int (*commitment_delete)(struct authstore *st, const char *snapshot,
		const char *peer, int64_t now, struct err *e);
	int (*commitments_expire)(struct authstore *st, int64_t cutoff,
		struct err *e);
	int (*peers_forget)(struct authstore *st, int64_t cutoff,
		unsigned max, struct err *e);
	int (*commitment_list)(struct authstore *st, int64_t service,
		int (*cb)(void *arg, const struct authstore_commitment *c),
		void *arg, struct err *e);
	int (*reported)(struct authstore *st, int64_t service,
		const char *peer, struct err *e);
	int (*report_add)(struct authstore *st, int64_t service,
		const char *peer, const char *reporter, const char *reason,
		int64_t now, int64_t *id, struct err *e);
	int (*report_list)(struct authstore *st, int64_t service,
		int (*cb)(void *arg, const struct authstore_report *r),
		void *arg, struct err *e);
	int (*bad_source_add)(struct authstore *st,
		const struct authstore_bad_source *b, int64_t *id,
		bool *created, struct err *e);
	int (*peers_at)(struct authstore *st, const char *addr,
		int (*cb)(void *arg, const char *peer), void *arg,
		struct err *e);
	int (*holding_put)(struct authstore *st, const char *sha256,
		const char *peer, int64_t now, bool *created, struct err *e);
	int (*holding_delete)(struct authstore *st, const char *sha256,
		const char *peer, struct err *e);
	int (*sources)(struct authstore *st, const char *sha256,
		int64_t service, unsigned max, int64_t cutoff,
		int (*cb)(void *arg, const char *peer, const char *addr,
		enum authstore_role role), void *arg, struct err *e);
	int (*lookup)(struct authstore *st, const char *host, uint16_t port,
		int (*cb)(void *arg, const char *peer, const char *addr,
		uint16_t port), void *arg, struct err *e);
	int (*key_change_get)(struct authstore *st, const char *key,
		struct authstore_key_change *k, struct err *e);
	int (*key_change_to)(struct authstore *st, const char *key,
		struct authstore_key_change *k, struct err *e);
	int (*key_change_add)(struct authstore *st,
		const struct authstore_key_change *k, struct err *e);
	int (*key_confirm)(struct authstore *st, const char *key,
		const char *successor, const char *record,
		const char *signature, int64_t at, struct err *e);
	int (*services_transfer)(struct authstore *st, const char *from,
		const char *to, struct err *e);
	int (*counts)(struct authstore *st, struct authstore_counts *c,
		struct err *e);
	int64_t (*last_seen)(struct authstore *st, struct err *e);
	int (*where)(struct authstore *st, struct authstore_where *w,
		     struct err *e);
	/* may be NULL: the engine cannot be changed by anyone else */
	int (*watch)(struct authstore *st, void (*changed)(void *arg),
		     void *arg, struct err *e);
};

struct authstore {
	const struct authstore_ops *ops;
};

extern const struct authstore_ops authstore_sqlite_ops;
extern const struct authstore_ops authstore_pg_ops;

/* Engines say whether the error they are returning on this thread is that
 * no writable database could be reached (authstore_unavailable()). */
void authstore_set_unavailable(bool yes);

#endif
