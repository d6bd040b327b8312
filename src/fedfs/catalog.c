/*
 * catalog.c - what the authority knows, as fedfs shows it.
 *
 * A refresh asks the authority for the trusted kernels and bases (with
 * their chunk indexes) and the snapshot list, fetches the manifest and
 * signature of every snapshot not seen before, checks each (canonical
 * manifest, owner's signature, id = its hash, base and kernel trusted and
 * not revoked), and applies the result to the object tables.  The last
 * good answer is kept in STATE/catalog.json, so a restart with the
 * authority down still shows the last known catalogue.
 *
 * Refreshes happen every CATALOG_PERIOD_S in a thread of their own, and on
 * demand when a catalogue directory is opened (rate-limited).  The same
 * thread registers this peer, and registers it again at a third of the
 * authority's peer ttl: a peer that stops is dropped from the sources.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fedsnap.h"
#include "common/hex.h"
#include "common/http.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "fedfs/fedfs.h"

#define CATALOG_PERIOD_S 15
/* registering again: at a third of the authority's peer ttl, or this often
 * when it did not say (an authority without one may restart with one) */
#define CATALOG_REGISTER_EVERY_S 60
#define CATALOG_REGISTER_RETRY_S 5	/* after a failed registration */
#define CATALOG_FILE "catalog.json"
/* a reader waits on GET /v1/sources: at most this, then it uses the
 * sources it knows (and the authority is down for a while: authlink.c) */
#define CATALOG_SOURCES_TIMEOUT_MS 1000L
#define CATALOG_ANNOUNCE_TIMEOUT_MS 5000L

/* --- nodes ---------------------------------------------------------------- */

struct node *
node_new(struct fedfs *fs, enum node_type type, uint64_t parent,
	 const char *name, struct fobj *obj)
{
	struct node *n = calloc(1, sizeof(*n)), **grown;

	if (n == NULL)
		return NULL;
	if (fs->nodes == NULL) {	/* fixed inodes have no node */
		if ((fs->nodes = calloc(INO_FIRST_DYNAMIC,
					sizeof(*fs->nodes))) == NULL) {
			free(n);
			return NULL;
		}
		fs->nnodes = INO_FIRST_DYNAMIC;
	}
	grown = realloc(fs->nodes, (fs->nnodes + 1) * sizeof(*grown));
	if (grown == NULL) {
		free(n);
		return NULL;
	}
	fs->nodes = grown;
	n->ino = fs->nnodes;
	n->type = type;
	n->parent = parent;
	snprintf(n->name, sizeof(n->name), "%s", name);
	n->obj = obj;
	n->live = true;
	n->fd = -1;
	fs->nodes[fs->nnodes++] = n;
	return n;
}

struct node *
node_get(struct fedfs *fs, uint64_t ino)
{
	return ino < fs->nnodes ? fs->nodes[ino] : NULL;
}

struct node *
node_lookup(struct fedfs *fs, uint64_t parent, const char *name)
{
	for (size_t i = INO_FIRST_DYNAMIC; i < fs->nnodes; i++) {
		struct node *n = fs->nodes[i];

		if (n != NULL && n->live && n->parent == parent &&
		    strcmp(n->name, name) == 0)
			return n;
	}
	return NULL;
}

/* --- objects -------------------------------------------------------------- */

struct fobj *
catalog_find(struct fedfs *fs, enum fobj_kind kind,
	     const uint8_t id[SHA256_LEN])
{
	for (size_t i = 0; i < fs->nobjs; i++)
		if (fs->objs[i]->kind == kind &&
		    memcmp(fs->objs[i]->id, id, SHA256_LEN) == 0)
			return fs->objs[i];
	return NULL;
}

void
catalog_describe_chunk(void *arg, const uint8_t hash[SHA256_LEN], char *buf,
		       size_t bufsz)
{
	struct fedfs *fs = arg;
	char hex[2 * SHA256_LEN + 1];
	struct timespec t;
	bool found = false;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += 1;
	/* never under the write lock of this thread: EDEADLK, not a hang */
	if (pthread_rwlock_timedrdlock(&fs->lock, &t) != 0)
		return;
	hex_encode(hash, SHA256_LEN, hex);
	for (size_t i = 0; i < fs->nobjs && !found; i++) {
		const struct fobj *o = fs->objs[i];

		for (uint32_t c = 0; c < o->index.nchunks && !found; c++) {
			if (memcmp(o->index.chunks[c], hash, SHA256_LEN) != 0)
				continue;
			snprintf(buf, bufsz, "chunk %u (%.16s..) of %s", c, hex,
				 o->fo.label);
			found = true;
		}
	}
	pthread_rwlock_unlock(&fs->lock);
}

static struct fobj *
catalog_insert(struct fedfs *fs, struct fobj *o)
{
	static const uint64_t dirs[] = { INO_KERNELS, INO_BASES, INO_DELTAS };
	static const char *const kinds[] = { "kernel", "base", "delta" };
	struct fobj **grown = realloc(fs->objs, (fs->nobjs + 1) * sizeof(*grown));
	char hex[2 * SHA256_LEN + 1];
	struct node *n;

	if (grown == NULL)
		return NULL;
	fs->objs = grown;
	hex_encode(o->id, SHA256_LEN, hex);
	snprintf(o->name, sizeof(o->name), "%s%s", hex,
		 o->kind == OBJ_DELTA ? ".fedsnap" : "");
	memcpy(o->fo.id, o->id, SHA256_LEN);
	o->fo.index = &o->index;
	snprintf(o->fo.label, sizeof(o->fo.label), "%s %.16s..", kinds[o->kind],
		 hex);
	o->size = o->header_len + o->index.size;
	if ((n = node_new(fs, NODE_OBJ, dirs[o->kind], o->name, o)) == NULL)
		return NULL;
	o->ino = n->ino;
	fs->objs[fs->nobjs++] = o;
	return o;
}

/* The trust entry of sha (of kind, or any kind if NULL), or NULL. */
const json_t *
catalog_trusted_entry(struct fedfs *fs, const uint8_t sha[SHA256_LEN],
		      const char *kind)
{
	char hex[2 * SHA256_LEN + 1];
	const json_t *t;
	size_t i;

	hex_encode(sha, SHA256_LEN, hex);
	json_array_foreach(fs->trusted, i, t) {
		const char *h = json_string_value(json_object_get(t, "sha256"));
		const char *k = json_string_value(json_object_get(t, "kind"));

		if (h && strcmp(h, hex) == 0 && (kind == NULL ||
		    (k && strcmp(k, kind) == 0)))
			return t;
	}
	return NULL;
}

static bool
catalog_is_trusted(struct fedfs *fs, const uint8_t sha[SHA256_LEN],
		   const char *kind)
{
	const json_t *t = catalog_trusted_entry(fs, sha, kind);

	return t != NULL && !json_is_true(json_object_get(t, "revoked"));
}

/* Apply the trusted list: make objects of new entries, list or unlist. */
static void
catalog_apply_trusted(struct fedfs *fs)
{
	const json_t *t;
	size_t i;

	for (i = 0; i < fs->nobjs; i++)
		if (fs->objs[i]->kind != OBJ_DELTA)
			fs->objs[i]->listed = false;
	json_array_foreach(fs->trusted, i, t) {
		const char *h = json_string_value(json_object_get(t, "sha256"));
		const char *k = json_string_value(json_object_get(t, "kind"));
		enum fobj_kind kind;
		uint8_t sha[SHA256_LEN];
		struct fobj *o;
		struct err e;

		if (h == NULL || k == NULL || !hex_is_sha256(h))
			continue;
		if (strcmp(k, "kernel") == 0)
			kind = OBJ_KERNEL;
		else if (strcmp(k, "base") == 0)
			kind = OBJ_BASE;
		else
			continue;
		hex_decode(h, sha, SHA256_LEN);
		if ((o = catalog_find(fs, kind, sha)) == NULL) {
			if ((o = calloc(1, sizeof(*o))) == NULL)
				continue;
			o->kind = kind;
			memcpy(o->id, sha, SHA256_LEN);
			if (chunkidx_from_json(json_object_get(t, "index"), true,
					       &o->index, &e) < 0 ||
			    memcmp(o->index.file_hash, sha, SHA256_LEN) != 0) {
				log_warn("catalogue: trusted %s %.16s..: bad "
					 "index: %s", k, h, e.msg);
				chunkidx_free(&o->index);
				free(o);
				continue;
			}
			/* the file's time is when it was trusted: stable
			 * on every peer */
			{
				const char *added = json_string_value(
				    json_object_get(t, "added"));
				time_t when;

				if (added && rfc3339_parse(added, &when) == 0)
					o->mtime = when;
			}
			if (catalog_insert(fs, o) == NULL) {
				chunkidx_free(&o->index);
				free(o);
				continue;
			}
		}
		o->listed = !json_is_true(json_object_get(t, "revoked"));
	}
}

struct fobj *
catalog_add_delta(struct fedfs *fs, const char *manifest, size_t len,
		  const uint8_t sig[ED25519_SIG_LEN], const struct manifest *m)
{
	struct fobj *o = calloc(1, sizeof(*o));
	uint8_t id[SHA256_LEN];
	struct err e;
	time_t t = 0;
	int n;

	if (o == NULL)
		return NULL;
	manifest_id(manifest, len, id);
	if ((o->header = malloc(len + 200)) == NULL) {
		free(o);
		return NULL;
	}
	hex_encode(sig, ED25519_SIG_LEN, o->sig_hex);
	n = snprintf(o->header, len + 200, "%s%.*s\n%s%s\n", FEDSNAP_MAGIC,
		     (int)len, manifest, FEDSNAP_SIG_PREFIX, o->sig_hex);
	o->header_len = (size_t)n;
	o->manifest = o->header + strlen(FEDSNAP_MAGIC);
	o->manifest_len = len;
	o->kind = OBJ_DELTA;
	memcpy(o->id, id, SHA256_LEN);
	o->index = m->delta;		/* copy the chunk list */
	o->index.chunks = malloc((size_t)m->delta.nchunks * SHA256_LEN + 1);
	if (o->index.chunks == NULL) {
		free(o->header);
		free(o);
		return NULL;
	}
	memcpy(o->index.chunks, m->delta.chunks,
	       (size_t)m->delta.nchunks * SHA256_LEN);
	snprintf(o->service, sizeof(o->service), "%s:%u", m->host, m->port);
	o->version = m->version;
	memcpy(o->base, m->base, SHA256_LEN);
	memcpy(o->kernel, m->kernel, SHA256_LEN);
	if (rfc3339_parse(m->created, &t) == 0)
		o->mtime = t;
	o->usable = true;
	(void)e;
	if (catalog_insert(fs, o) == NULL) {
		chunkidx_free(&o->index);
		free(o->header);
		free(o);
		return NULL;
	}
	return o;
}

/* Check a manifest + signature the authority sent and make its object.
 * Lock held. */
static struct fobj *
catalog_take_snapshot(struct fedfs *fs, const char *idhex, const char *mtext,
		      size_t mlen, const char *sighex)
{
	uint8_t id[SHA256_LEN], sig[ED25519_SIG_LEN];
	struct manifest m;
	struct fobj *o;
	struct err e;

	if (!hex_is_sha256(idhex) || sighex == NULL ||
	    strlen(sighex) != 2 * ED25519_SIG_LEN ||
	    hex_decode(sighex, sig, ED25519_SIG_LEN) < 0) {
		log_warn("catalogue: snapshot %.16s..: malformed entry", idhex);
		return NULL;
	}
	hex_decode(idhex, id, SHA256_LEN);
	if ((o = catalog_find(fs, OBJ_DELTA, id)) != NULL)
		return o;
	if (fedsnap_check_signed_manifest(mtext, mlen, sig, &m, &e) < 0) {
		log_warn("catalogue: snapshot %.16s.. refused: %s", idhex, e.msg);
		return NULL;
	}
	{
		uint8_t got[SHA256_LEN];

		manifest_id(mtext, mlen, got);
		if (memcmp(got, id, SHA256_LEN) != 0) {
			log_warn("catalogue: snapshot %.16s.. refused: its "
				 "manifest hashes to another id", idhex);
			manifest_free(&m);
			return NULL;
		}
	}
	o = catalog_add_delta(fs, mtext, mlen, sig, &m);
	manifest_free(&m);
	return o;
}

int64_t
catalog_newest_version(struct fedfs *fs, const char *service)
{
	int64_t v = -1;

	for (size_t i = 0; i < fs->nobjs; i++) {
		struct fobj *o = fs->objs[i];

		if (o->kind == OBJ_DELTA && strcmp(o->service, service) == 0 &&
		    o->version > v)
			v = o->version;
	}
	return v;
}

/* A delta is listed iff the authority calls it usable and its base and
 * kernel are trusted and not revoked here too. */
static void
catalog_list_deltas(struct fedfs *fs)
{
	for (size_t i = 0; i < fs->nobjs; i++) {
		struct fobj *o = fs->objs[i];

		if (o->kind != OBJ_DELTA)
			continue;
		o->listed = o->usable && catalog_is_trusted(fs, o->base, "base") &&
			    catalog_is_trusted(fs, o->kernel, "kernel");
	}
}

void
catalog_rebuild_services(struct fedfs *fs)
{
	for (size_t i = INO_FIRST_DYNAMIC; i < fs->nnodes; i++)
		if (fs->nodes[i] && fs->nodes[i]->type == NODE_SERVICE)
			fs->nodes[i]->live = false;
	for (size_t i = 0; i < fs->nobjs; i++) {
		struct fobj *o = fs->objs[i];
		struct node *n = NULL;

		if (o->kind != OBJ_DELTA || !o->listed)
			continue;
		/* a host may be 253 bytes, a name here FEDFS_NAME_MAX: cut,
		 * it would match no node (a new one at every rebuild) and
		 * could match another service's; it stays under deltas/ */
		if (strlen(o->service) > FEDFS_NAME_MAX) {
			if (!o->unnamed_said)
				log_warn("services/: %.40s... (%zu bytes) is too "
					 "long a name to list; its snapshot is "
					 "deltas/%s", o->service,
					 strlen(o->service), o->name);
			o->unnamed_said = true;
			continue;
		}
		for (size_t k = INO_FIRST_DYNAMIC; k < fs->nnodes; k++) {
			struct node *x = fs->nodes[k];

			if (x && x->type == NODE_SERVICE &&
			    strcmp(x->name, o->service) == 0) {
				n = x;
				break;
			}
		}
		if (n == NULL) {
			n = node_new(fs, NODE_SERVICE, INO_SERVICES, o->service, o);
			if (n == NULL)
				continue;
		} else if (!n->live || n->obj->version < o->version ||
			   !n->obj->listed) {
			n->obj = o;
		}
		if (!n->live || n->obj->version <= o->version)
			n->obj = o;
		n->live = true;
	}
}

/* --- persistence ---------------------------------------------------------- */

void
catalog_save(struct fedfs *fs)
{
	json_t *snaps = json_array(), *root;
	char *path = NULL, *tmp = NULL;

	for (size_t i = 0; i < fs->nobjs; i++) {
		struct fobj *o = fs->objs[i];
		char hex[2 * SHA256_LEN + 1];

		if (o->kind != OBJ_DELTA)
			continue;
		hex_encode(o->id, SHA256_LEN, hex);
		json_array_append_new(snaps, json_pack("{s:s,s:s%,s:s,s:b}",
		    "id", hex, "manifest", o->manifest, o->manifest_len,
		    "signature", o->sig_hex, "usable", o->usable));
	}
	root = json_pack("{s:O,s:o,s:I}", "trusted", fs->trusted, "snapshots",
			 snaps, "refreshed", (json_int_t)fs->refreshed);
	if (root == NULL ||
	    asprintf(&path, "%s/%s", fs->state_dir, CATALOG_FILE) < 0 ||
	    asprintf(&tmp, "%s.tmp", path) < 0) {
		log_warn("catalogue: cannot save: out of memory");
		goto done;
	}
	if (json_dump_file(root, tmp, JSON_COMPACT) < 0 ||
	    rename(tmp, path) < 0)
		log_warn("catalogue: cannot save %s: %s", path, strerror(errno));
done:
	json_decref(root);
	free(path);
	free(tmp);
}

/* Apply a snapshot list whose entries carry their manifests.  Lock held. */
static void
catalog_apply_snapshots(struct fedfs *fs, const json_t *snaps)
{
	const json_t *s;
	size_t i;

	json_array_foreach(snaps, i, s) {
		const char *id = json_string_value(json_object_get(s, "id"));
		const json_t *mj = json_object_get(s, "manifest");
		struct fobj *o;

		if (id == NULL || !json_is_string(mj))
			continue;
		o = catalog_take_snapshot(fs, id, json_string_value(mj),
		    json_string_length(mj),
		    json_string_value(json_object_get(s, "signature")));
		if (o != NULL)
			o->usable = json_is_true(json_object_get(s, "usable"));
	}
}

int
catalog_load(struct fedfs *fs)
{
	json_error_t jerr;
	char *path = NULL;
	json_t *root;

	if (asprintf(&path, "%s/%s", fs->state_dir, CATALOG_FILE) < 0)
		return -1;
	root = json_load_file(path, 0, &jerr);
	if (root == NULL) {
		if (access(path, F_OK) == 0)
			log_warn("catalogue: ignoring %s: %s", path, jerr.text);
		free(path);
		return 0;
	}
	pthread_rwlock_wrlock(&fs->lock);
	if (json_is_array(json_object_get(root, "trusted"))) {
		json_decref(fs->trusted);
		fs->trusted = json_incref(json_object_get(root, "trusted"));
	}
	catalog_apply_trusted(fs);
	catalog_apply_snapshots(fs, json_object_get(root, "snapshots"));
	catalog_list_deltas(fs);
	catalog_rebuild_services(fs);
	fs->refreshed = (time_t)json_integer_value(json_object_get(root,
							"refreshed"));
	pthread_rwlock_unlock(&fs->lock);
	log_info("catalogue: loaded %zu objects from %s", fs->nobjs, path);
	json_decref(root);
	free(path);
	return 0;
}

/* --- refresh --------------------------------------------------------------- */

static void
catalog_contact(struct fedfs *fs, const char *error)
{
	pthread_rwlock_wrlock(&fs->lock);
	if (error == NULL) {
		fs->authority_contact = time(NULL);
		fs->authority_error[0] = '\0';
	} else {
		snprintf(fs->authority_error, sizeof(fs->authority_error), "%s",
			 error);
	}
	pthread_rwlock_unlock(&fs->lock);
}

/* What is left of timeout_ms until deadline, for the next call (0: no
 * bound, the default; at least 1 when bounded). */
static long
catalog_left_ms(long deadline, long timeout_ms)
{
	long left;

	if (timeout_ms <= 0)
		return 0;
	left = deadline - (long)(mono_now() * 1000);
	return left > 1 ? left : 1;
}

int
catalog_refresh(struct fedfs *fs, long timeout_ms)
{
	json_t *trusted = NULL, *list = NULL, *full = json_array(), *s;
	long status, deadline;
	struct err e;
	size_t i;
	int rc = -1;

	/* a caller someone waits on (timeout_ms > 0: a listing) does not
	 * queue behind a refresh under way, which may be the periodic one's
	 * with no bound but the default: it answers from what is known (had
	 * each FUSE thread listing waited its turn, the last would have paid
	 * for all before it) */
	if (timeout_ms > 0) {
		if (pthread_mutex_trylock(&fs->refresh_lock) != 0) {
			json_decref(full);
			return 0;
		}
	} else {
		pthread_mutex_lock(&fs->refresh_lock);
	}
	deadline = (long)(mono_now() * 1000) + timeout_ms;
	if (authority_call_within(fs->authority, "GET", "/v1/trusted", NULL,
				  NULL, timeout_ms, &status, &trusted, &e) < 0 ||
	    (status != 200 && authority_refused(status, trusted, &e) < 0) ||
	    authority_call_within(fs->authority, "GET", "/v1/snapshots", NULL,
				  NULL, catalog_left_ms(deadline, timeout_ms),
				  &status, &list, &e) < 0 ||
	    (status != 200 && authority_refused(status, list, &e) < 0)) {
		catalog_contact(fs, e.msg);
		log_warn("catalogue: refresh failed: %s", e.msg);
		goto done;
	}
	if (!json_is_array(json_object_get(trusted, "trusted")) ||
	    !json_is_array(json_object_get(list, "snapshots"))) {
		catalog_contact(fs, "authority answered without lists");
		goto done;
	}
	/* fetch the manifests of snapshots not seen before, unlocked */
	json_array_foreach(json_object_get(list, "snapshots"), i, s) {
		const char *id = json_string_value(json_object_get(s, "id"));
		uint8_t bid[SHA256_LEN];
		json_t *one = NULL;
		char path[128];
		bool known;

		if (id == NULL || !hex_is_sha256(id))
			continue;
		hex_decode(id, bid, SHA256_LEN);
		pthread_rwlock_rdlock(&fs->lock);
		known = catalog_find(fs, OBJ_DELTA, bid) != NULL;
		pthread_rwlock_unlock(&fs->lock);
		if (known) {
			json_array_append(full, s);
			continue;
		}
		/* past a caller's time, the rest wait for the next refresh */
		if (timeout_ms > 0 && catalog_left_ms(deadline, timeout_ms) <= 1)
			break;
		snprintf(path, sizeof(path), "/v1/snapshots/%s", id);
		if (authority_call_within(fs->authority, "GET", path, NULL,
					  NULL, catalog_left_ms(deadline,
								timeout_ms),
					  &status, &one, &e) == 0 &&
		    status == 200) {
			json_object_set(one, "usable",
					json_object_get(s, "usable"));
			json_array_append(full, one);
		}
		json_decref(one);
	}

	pthread_rwlock_wrlock(&fs->lock);
	json_decref(fs->trusted);
	fs->trusted = json_incref(json_object_get(trusted, "trusted"));
	catalog_apply_trusted(fs);
	catalog_apply_snapshots(fs, full);
	/* usable flags of known snapshots, from the list */
	json_array_foreach(json_object_get(list, "snapshots"), i, s) {
		const char *id = json_string_value(json_object_get(s, "id"));
		uint8_t bid[SHA256_LEN];
		struct fobj *o;

		if (id == NULL || !hex_is_sha256(id))
			continue;
		hex_decode(id, bid, SHA256_LEN);
		if ((o = catalog_find(fs, OBJ_DELTA, bid)) != NULL)
			o->usable = json_is_true(json_object_get(s, "usable"));
	}
	/* a snapshot the authority no longer lists is not usable */
	for (i = 0; i < fs->nobjs; i++) {
		struct fobj *o = fs->objs[i];
		char hex[2 * SHA256_LEN + 1];
		bool present = false;
		size_t k;

		if (o->kind != OBJ_DELTA)
			continue;
		hex_encode(o->id, SHA256_LEN, hex);
		json_array_foreach(json_object_get(list, "snapshots"), k, s) {
			const char *id = json_string_value(json_object_get(s, "id"));

			if (id && strcmp(id, hex) == 0)
				present = true;
		}
		if (!present)
			o->usable = false;
	}
	catalog_list_deltas(fs);
	catalog_rebuild_services(fs);
	fs->refreshed = time(NULL);
	fs->authority_contact = fs->refreshed;
	fs->authority_error[0] = '\0';
	catalog_save(fs);
	pthread_rwlock_unlock(&fs->lock);
	rc = 0;
done:
	json_decref(trusted);
	json_decref(list);
	json_decref(full);
	pthread_mutex_unlock(&fs->refresh_lock);
	return rc;
}

/* Monotonic seconds. */
static time_t
catalog_mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

/* Seconds between registrations: a third of the authority's peer ttl
 * (a peer that did not register again within it is no longer a source). */
static time_t
catalog_register_every(const struct fedfs *fs)
{
	if (fs->peer_ttl <= 0)
		return CATALOG_REGISTER_EVERY_S;
	return fs->peer_ttl / 3 > 0 ? fs->peer_ttl / 3 : 1;
}

/* Tell the authority this peer holds (part of) object id (POST
 * /v1/sources/<id>).  If it could not be told, the object is marked not
 * announced, so its next fetch tries again.  Returns whether it was.
 * Called by the catalogue and authlink threads, never a reader. */
bool
catalog_announce(struct fedfs *fs, const uint8_t id[SHA256_LEN])
{
	char hex[2 * SHA256_LEN + 1], path[128];
	long status = 0;
	struct err e;
	int rc;

	hex_encode(id, SHA256_LEN, hex);
	snprintf(path, sizeof(path), "/v1/sources/%s", hex);
	rc = authority_call_within(fs->authority, "POST", path, NULL, fs->seed,
				   CATALOG_ANNOUNCE_TIMEOUT_MS, &status, NULL,
				   &e);
	authlink_result(fs, rc == 0, rc == 0 ? NULL : e.msg);
	if (rc == 0 && (status == 200 || status == 201))
		return true;
	log_warn("could not announce holding %.16s..: %s (again at its next "
		 "fetch)", hex, status ? "refused" : e.msg);
	pthread_rwlock_wrlock(&fs->lock);
	for (size_t k = 0; k < fs->nobjs; k++)
		if (memcmp(fs->objs[k]->id, id, SHA256_LEN) == 0)
			fs->objs[k]->announced = false;
	pthread_rwlock_unlock(&fs->lock);
	return false;
}

/* Announce again every object this peer had announced holding: the
 * authority forgot this peer, and with it what it said it holds. */
static void
catalog_reannounce(struct fedfs *fs)
{
	uint8_t (*ids)[SHA256_LEN] = NULL;
	size_t n = 0, told = 0;

	pthread_rwlock_rdlock(&fs->lock);
	if (fs->nobjs > 0)
		ids = malloc(fs->nobjs * sizeof(*ids));
	for (size_t k = 0; ids != NULL && k < fs->nobjs; k++)
		if (fs->objs[k]->announced)
			memcpy(ids[n++], fs->objs[k]->id, SHA256_LEN);
	pthread_rwlock_unlock(&fs->lock);
	for (size_t i = 0; i < n; i++)
		told += catalog_announce(fs, ids[i]);
	if (n > 0)
		log_info("announced again that this peer holds %zu of %zu "
			 "object%s", told, n, n == 1 ? "" : "s");
	free(ids);
}

/* Tell the authority where this peer serves objects (POST /v1/peers,
 * signed: registration proves possession of the key), and again now and
 * then, to say it is still there. */
static void
catalog_register(struct fedfs *fs)
{
	json_t *body = json_pack("{s:s}", "addr", fs->public_addr), *reply = NULL;
	bool again = fs->registered;
	long status = 0;
	struct err e;

	fs->register_next = catalog_mono() + CATALOG_REGISTER_RETRY_S;
	if (authority_call(fs->authority, "POST", "/v1/peers", body, fs->seed,
			   &status, &reply, &e) < 0) {
		log_warn("cannot register with %s: %s (again in %d s)",
			 fs->authority, e.msg, CATALOG_REGISTER_RETRY_S);
	} else if (status != 200 && status != 201) {
		authority_refused(status, reply, &e);
		log_error("registration refused: %s (again in %d s)", e.msg,
			  CATALOG_REGISTER_RETRY_S);
	} else {
		json_t *ttl = json_object_get(reply, "peer_ttl");

		pthread_rwlock_wrlock(&fs->lock);
		fs->registered = true;
		fs->peer_ttl = json_is_integer(ttl) ?
			       (int)json_integer_value(ttl) : 0;
		pthread_rwlock_unlock(&fs->lock);
		fs->register_next = catalog_mono() +
				    catalog_register_every(fs);
		if (again && json_is_true(json_object_get(reply, "created"))) {
			log_info("the authority had forgotten this peer (silent "
				 "too long): registered again");
			catalog_reannounce(fs);
		} else if (again) {
			log_debug("registration refreshed (the authority's "
				  "peer ttl: %d s)", fs->peer_ttl);
		}
		else
			log_info("registered with %s as %.16s.., serving "
				 "objects at %s", fs->authority, fs->peer_id,
				 fs->public_addr);
	}
	json_decref(body);
	json_decref(reply);
}

static void *
catalog_loop(void *arg)
{
	struct fedfs *fs = arg;
	time_t next_refresh = 0, wait;
	struct timespec until;

	pthread_setname_np(pthread_self(), "fed-catalog");
	for (;;) {
		/* two schedules: registration first (a long refresh must
		 * not make it late), then the catalogue */
		if (catalog_mono() >= fs->register_next)
			catalog_register(fs);
		if (catalog_mono() >= next_refresh) {
			catalog_refresh(fs, 0);
			mirror_feed_refresh(fs);
			next_refresh = catalog_mono() + CATALOG_PERIOD_S;
		}
		wait = (fs->register_next < next_refresh ? fs->register_next
							  : next_refresh) -
		       catalog_mono();
		if (wait < 1)
			wait = 1;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += wait;
		pthread_mutex_lock(&fs->refresh_lock);
		while (!fs->stopping &&
		       pthread_cond_timedwait(&fs->refresh_cond,
					      &fs->refresh_lock, &until) == 0)
			;
		if (fs->stopping) {
			pthread_mutex_unlock(&fs->refresh_lock);
			break;
		}
		pthread_mutex_unlock(&fs->refresh_lock);
	}
	return NULL;
}

int
catalog_start(struct fedfs *fs)
{
	return pthread_create(&fs->refresher, NULL, catalog_loop, fs) == 0 ? 0
									  : -1;
}

void
catalog_stop(struct fedfs *fs)
{
	pthread_mutex_lock(&fs->refresh_lock);
	fs->stopping = true;
	pthread_cond_broadcast(&fs->refresh_cond);
	pthread_mutex_unlock(&fs->refresh_lock);
	pthread_join(fs->refresher, NULL);
}

/* --- sources --------------------------------------------------------------- */

/* Keep answer (version v) as the one held for hex, if newer.  Under
 * sources_lock. */
static void
catalog_sources_keep(struct fedfs *fs, const char *hex, json_t *answer,
		     int64_t v, const json_t *held)
{
	json_t *k;

	if (held != NULL && json_integer_value(json_object_get(held, "v")) >= v)
		return;
	k = json_pack("{s:I, s:O}", "v", (json_int_t)v, "a", answer);
	if (k != NULL)
		json_object_set_new(fs->sources_held, hex, k);
}

/*
 * With --authority-key: may the sources answer reply for hex be used?  It
 * must verify, be about hex, not be older than the one held for it (a
 * rollback), and not have expired, unless --allow-stale (said in the log).
 * Returns 0 (it is then the one held), or -1 after a warning: the fetcher
 * keeps the sources it learnt last, from an answer that verified.
 */
static int
catalog_sources_check(struct fedfs *fs, const char *hex, json_t *reply)
{
	struct signed_meta m, hm;
	enum signed_verdict v;
	json_t *held;
	struct err e;
	int rc = 0;

	if (!fs->trust.on)
		return 0;
	v = signed_answer_verify(reply, SIGNED_SOURCES, hex, fs->trust.key,
				 time(NULL), &m, &e);
	if (v == SIGNED_BAD) {
		log_warn("authority: %s", e.msg);
		return -1;
	}
	pthread_mutex_lock(&fs->sources_lock);
	held = json_object_get(fs->sources_held, hex);
	hm.version = json_integer_value(json_object_get(held, "v"));
	if (signed_answer_not_older(reply, &m, json_object_get(held, "a"), &hm,
				    SIGNED_SOURCES, hex, &e) == -1) {
		log_warn("authority: %s", e.msg);
		rc = -1;
	} else if (v == SIGNED_EXPIRED && !fs->trust.allow_stale) {
		log_warn("authority: %s", e.msg);
		rc = -1;
	} else {
		if (v == SIGNED_EXPIRED)
			log_warn("authority: no fresh answer: using an expired "
				 "one (--allow-stale): %s", e.msg);
		catalog_sources_keep(fs, hex, reply, m.version, held);
	}
	pthread_mutex_unlock(&fs->sources_lock);
	return rc;
}

/*
 * The fetcher's sources callback, on a reader's thread: GET
 * /v1/sources/<id>, bounded by CATALOG_SOURCES_TIMEOUT_MS, and not asked
 * at all while the authority is known down (the fetcher keeps what it
 * learnt last).  With --authority-key the answer must pass
 * catalog_sources_check first.  The first time an object is fetched, this
 * peer's holding it is announced, in the background (authlink.c).
 */
int
catalog_sources(void *arg, const uint8_t id[SHA256_LEN],
		char addrs[][FETCH_ADDR_MAX], int max)
{
	struct fedfs *fs = arg;
	char path[128], hex[2 * SHA256_LEN + 1];
	json_t *reply = NULL, *s;
	struct fobj *o = NULL;
	bool announce = false;
	long status = 0;
	struct err e;
	size_t i;
	int n = 0;

	if (authlink_down(fs, NULL))
		return -1;
	hex_encode(id, SHA256_LEN, hex);
	/* the first time we fetch an object, tell the authority we hold
	 * (part of) it, so other peers can fetch from us early */
	pthread_rwlock_wrlock(&fs->lock);
	for (size_t k = 0; k < fs->nobjs; k++)
		if (memcmp(fs->objs[k]->id, id, SHA256_LEN) == 0)
			o = fs->objs[k];
	if (o != NULL && !o->announced) {
		o->announced = true;
		announce = true;
	}
	pthread_rwlock_unlock(&fs->lock);
	if (announce)
		authlink_announce(fs, id);
	snprintf(path, sizeof(path), "/v1/sources/%s", hex);
	if (authority_call_within(fs->authority, "GET", path, NULL, NULL,
				  CATALOG_SOURCES_TIMEOUT_MS, &status, &reply,
				  &e) < 0) {
		authlink_result(fs, false, e.msg);
		catalog_contact(fs, e.msg);
		log_debug("sources of %.16s..: %s", hex, e.msg);
		return -1;
	}
	authlink_result(fs, true, NULL);
	catalog_contact(fs, NULL);
	if (status != 200 || catalog_sources_check(fs, hex, reply) == -1) {
		json_decref(reply);
		return -1;
	}
	json_array_foreach(json_object_get(reply, "sources"), i, s) {
		const char *addr = json_string_value(json_object_get(s, "addr"));

		if (addr == NULL || strlen(addr) >= FETCH_ADDR_MAX || n >= max)
			continue;
		snprintf(addrs[n++], FETCH_ADDR_MAX, "%s", addr);
	}
	json_decref(reply);
	return n;
}
