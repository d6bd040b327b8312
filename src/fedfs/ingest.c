/*
 * ingest.c - files copied into publish/ and commit/.
 *
 * When the writer closes the file (FUSE flush), it is checked in full
 * before anything else happens:
 *
 *   a .fedsnap   magic, canonical manifest, owner's signature, base and
 *                kernel trusted and not revoked, no rollback below a
 *                version already seen, every chunk's hash;
 *   then         publish/: this peer's key must be the owner's; announce
 *                          to the authority (which checks again);
 *                commit/:  register the commitment with the authority;
 *   then         store the chunks, pin them, show the delta.
 *
 *   a kernel or base (publish/ only): its SHA-256 must be trusted and not
 *   revoked, and every chunk must match the trusted index; then it is
 *   stored and this peer announces itself as a source.
 *
 * Anything else, or any failed check, refuses the close with EINVAL (bad
 * bytes) or EACCES (not allowed), logs why, and stores or announces
 * nothing.  So does (ENOSPC) a file whose chunks, pinned, would not fit in
 * the store: pinned chunks are never evicted, so what the store's disk
 * cannot hold besides them is refused here, not found missing at a read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fedsnap.h"
#include "common/hex.h"
#include "common/http.h"
#include "common/log.h"
#include "fedfs/fedfs.h"

/* Store every chunk of the payload at [off, off + ix->size) of fd, each on
 * disk for good when this returns.  The caller pins them all first
 * (pins_chunks) and unpins them once the object is pinned for good
 * (pins_object): under a quota, storing the last chunks of a large object
 * would evict its first ones. */
static int
ingest_store_chunks(struct fedfs *fs, int fd, uint64_t off,
		    const struct chunk_index *ix, struct err *e)
{
	uint8_t *buf = malloc(ix->chunk_size ? ix->chunk_size : 1);

	if (buf == NULL)
		return err_sys(e, "ingest");
	for (uint32_t i = 0; i < ix->nchunks; i++) {
		uint32_t len = chunkidx_chunk_len(ix, i);

		/* held, so verified: nothing to add once it is synced (a
		 * chunk fetched a moment ago may be waiting for that) */
		if (store_durable(fs->store, ix->chunks[i]))
			continue;
		if (pread(fd, buf, len, (off_t)(off + (uint64_t)i *
		    ix->chunk_size)) != (ssize_t)len) {
			free(buf);
			return err_set(e, "chunk %u: short read", i);
		}
		if (store_put(fs->store, ix->chunks[i], buf, len,
			      STORE_COPIED_IN, e) < 0) {
			free(buf);
			return err_wrap(e, "chunk %u", i);
		}
	}
	free(buf);
	return 0;
}

/* Pin a snapshot's payload chunks (until the caller unpins them, once
 * the snapshot itself is pinned) and store them, each for good. */
static int
ingest_store_delta(struct fedfs *fs, struct fedsnap *s, bool *pinned,
		   struct err *e)
{
	pins_chunks(fs, &s->m.delta, true);
	*pinned = true;
	return ingest_store_chunks(fs, s->fd, s->payload_offset, &s->m.delta,
				   e);
}

/* Would pinning ix (and, for a delta, its base and kernel, if known) fit
 * in the store?  Counts the chunks not held yet.  Returns 0, or -ENOSPC
 * with e saying how much is missing. */
static int
ingest_check_room(struct fedfs *fs, const struct chunk_index *ix,
		  const uint8_t *base, const uint8_t *kernel, struct err *e)
{
	uint64_t need = store_missing_bytes(fs->store, ix);
	const struct fobj *dep;

	pthread_rwlock_rdlock(&fs->lock);
	if (base && (dep = catalog_find(fs, OBJ_BASE, base)) != NULL)
		need += store_missing_bytes(fs->store, &dep->index);
	if (kernel && (dep = catalog_find(fs, OBJ_KERNEL, kernel)) != NULL)
		need += store_missing_bytes(fs->store, &dep->index);
	pthread_rwlock_unlock(&fs->lock);
	return store_room_for_pinned(fs->store, need, e) < 0 ? -ENOSPC : 0;
}

/* Is sha trusted as kind and not revoked?  Lock held (read). */
static bool
ingest_trusted(struct fedfs *fs, const uint8_t sha[SHA256_LEN],
	       const char *kind)
{
	const json_t *t = catalog_trusted_entry(fs, sha, kind);

	return t != NULL && !json_is_true(json_object_get(t, "revoked"));
}

/*
 * Was n written only by copy_file_range from the delta named id, every
 * byte of it in order (fs.c)?  Then its header is that delta's, checked
 * when it entered the catalogue, and its payload came from chunks each
 * verified when stored: hashing the copy again would prove nothing new.
 * The signature, trust and version checks still run on what was copied.
 */
static bool
ingest_exact_copy(struct fedfs *fs, struct node *n, const uint8_t id[SHA256_LEN])
{
	const struct fobj *o;
	bool exact;

	pthread_rwlock_rdlock(&fs->lock);
	o = n->copy_of;
	exact = o != NULL && !n->copy_broken && o->kind == OBJ_DELTA &&
		memcmp(o->id, id, SHA256_LEN) == 0 && n->copy_end == o->size &&
		n->written == o->size;
	pthread_rwlock_unlock(&fs->lock);
	return exact;
}

static int
ingest_snapshot(struct fedfs *fs, struct node *n, int fd, struct err *e)
{
	bool commit = n->parent == INO_COMMIT;
	char idhex[2 * SHA256_LEN + 1], path[160], svc[MANIFEST_HOST_MAX + 8];
	char sighex[2 * ED25519_SIG_LEN + 1];
	struct fedsnap s;
	struct fobj *o;
	int64_t newest;
	json_t *body, *reply = NULL;
	long status = 0;
	int rc = -EINVAL;
	bool exact, pinned = false, added = false;

	if (fedsnap_fdopen(dup(fd), &s, e) < 0)
		return -EINVAL;
	hex_encode(s.id, SHA256_LEN, idhex);

	pthread_rwlock_rdlock(&fs->lock);
	if (!ingest_trusted(fs, s.m.base, "base")) {
		pthread_rwlock_unlock(&fs->lock);
		err_set(e, "its base is not trusted (or revoked)");
		rc = -EACCES;
		goto done;
	}
	if (!ingest_trusted(fs, s.m.kernel, "kernel")) {
		pthread_rwlock_unlock(&fs->lock);
		err_set(e, "its kernel is not trusted (or revoked)");
		rc = -EACCES;
		goto done;
	}
	snprintf(svc, sizeof(svc), "%s:%u", s.m.host, s.m.port);
	newest = catalog_newest_version(fs, svc);
	pthread_rwlock_unlock(&fs->lock);
	if (manifest_check_version(&s.m, newest, e) < 0) {
		rc = -EACCES;
		goto done;
	}
	exact = ingest_exact_copy(fs, n, s.id);
	if (!exact && fedsnap_verify_payload(&s, e) < 0)
		goto done;
	if ((rc = ingest_check_room(fs, &s.m.delta, s.m.base, s.m.kernel,
				    e)) < 0)
		goto done;
	rc = -EINVAL;

	if (commit) {
		/* stored before the authority hears of it: a commitment is a
		 * promise to host, which a full disk would break (a delta
		 * copied from deltas/ is stored already: nothing to do) */
		if (ingest_store_delta(fs, &s, &pinned, e) < 0) {
			rc = -EIO;
			goto done;
		}
		body = json_pack("{s:s}", "snapshot", idhex);
		if (authority_call(fs->authority, "POST", "/v1/commitments",
				   body, fs->seed, &status, &reply, e) < 0) {
			json_decref(body);
			rc = -EIO;
			goto done;
		}
	} else {
		if (memcmp(s.m.owner, fs->pub, ED25519_PUB_LEN) != 0) {
			err_set(e, "this peer's key is not the snapshot's owner");
			rc = -EACCES;
			goto done;
		}
		hex_encode(s.sig, ED25519_SIG_LEN, sighex);
		body = json_pack("{s:s%,s:s}", "manifest", s.manifest_bytes,
				 s.manifest_len, "signature", sighex);
		if (authority_call(fs->authority, "POST", "/v1/snapshots", body,
				   fs->seed, &status, &reply, e) < 0) {
			json_decref(body);
			rc = -EIO;
			goto done;
		}
	}
	json_decref(body);
	if (status != 200 && status != 201) {
		authority_refused(status, reply, e);
		/* over the authority's rate (429): try again later, not
		 * a refusal of the file */
		rc = status == 429 ? -EAGAIN : status >= 500 ? -EIO : -EACCES;
		goto done;
	}
	/* published: announced first, so that a snapshot the authority
	 * refuses (not this key's service, over its allowance, an old
	 * version) costs no disk; if storing fails now, the authority lists a
	 * snapshot this owner does not hold yet, and copying it in again
	 * (which the authority accepts again) stores it */
	if (!commit && ingest_store_delta(fs, &s, &pinned, e) < 0) {
		err_wrap(e, "announced but not stored (copy it in again)");
		rc = -EIO;
		goto done;
	}

	pthread_rwlock_wrlock(&fs->lock);
	if ((o = catalog_find(fs, OBJ_DELTA, s.id)) == NULL &&
	    (o = catalog_add_delta(fs, s.manifest_bytes, s.manifest_len,
				   s.sig, &s.m)) != NULL)
		added = true;
	if (o == NULL) {
		pthread_rwlock_unlock(&fs->lock);
		err_set(e, "out of memory");
		rc = -ENOMEM;
		goto done;
	}
	o->usable = true;
	o->listed = true;
	o->announced = true;
	if (commit) {
		struct node *old = node_lookup(fs, INO_COMMIT, n->name);

		if (old != NULL && old->type == NODE_COMMIT) {
			pins_object(fs, old->obj, false);
			old->live = false;
		}
		if (node_new(fs, NODE_COMMIT, INO_COMMIT, n->name, o) != NULL)
			pins_object(fs, o, true);
	} else if (!o->published) {
		o->published = true;
		pins_object(fs, o, true);
	}
	catalog_rebuild_services(fs);
	/* pins.json names it by id, and a restart finds it in catalog.json:
	 * not only at the next refresh, which a restart or an authority down
	 * may never reach (the commitment was dropped at restart) */
	if (added)
		catalog_save(fs);
	pins_save(fs);
	pthread_rwlock_unlock(&fs->lock);
	snprintf(path, sizeof(path), "%s %s", commit ? "committed to" :
		 "published", idhex);
	log_info("%s: %s:%u version %lld (%s%s)", n->name, s.m.host, s.m.port,
		 (long long)s.m.version, path, exact ? "; copied from fedfs's "
		 "own verified chunks, not hashed again" : "");
	rc = 0;
done:
	if (pinned)
		pins_chunks(fs, &s.m.delta, false);
	json_decref(reply);
	fedsnap_close(&s);
	return rc;
}

static int
ingest_image(struct fedfs *fs, struct node *n, int fd, struct err *e)
{
	uint8_t sha[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1], path[128];
	struct chunk_index ix, want;
	const json_t *entry;
	char kind[16];			/* a copy: the catalogue is refreshed */
	const char *k;
	struct fobj *o;
	json_t *reply = NULL;
	long status = 0;
	int rc = -EACCES;
	bool pinned = false;

	if (lseek(fd, 0, SEEK_SET) < 0 || sha256_fd(fd, sha, e) < 0)
		return -EIO;
	hex_encode(sha, SHA256_LEN, hex);
	pthread_rwlock_rdlock(&fs->lock);
	entry = catalog_trusted_entry(fs, sha, NULL);
	if (entry == NULL || json_is_true(json_object_get(entry, "revoked"))) {
		pthread_rwlock_unlock(&fs->lock);
		return err_set(e, "not a valid .fedsnap, nor a kernel or base "
			       "whose SHA-256 (%.16s..) is trusted", hex), -EACCES;
	}
	/* entry lives in the trusted list, which a refresh frees and
	 * replaces while this hashes and stores for seconds unlocked */
	k = json_string_value(json_object_get(entry, "kind"));
	snprintf(kind, sizeof(kind), "%s", k ? k : "image");
	if (chunkidx_from_json(json_object_get(entry, "index"), true, &want,
			       e) < 0) {
		pthread_rwlock_unlock(&fs->lock);
		return -EIO;
	}
	pthread_rwlock_unlock(&fs->lock);
	if (chunkidx_build_fd(fd, want.chunk_size, &ix, e) < 0) {
		chunkidx_free(&want);
		return -EIO;
	}
	if (ix.nchunks != want.nchunks || ix.size != want.size ||
	    memcmp(ix.chunks, want.chunks, (size_t)ix.nchunks * SHA256_LEN)) {
		err_set(e, "its chunks do not match the trusted index");
		rc = -EINVAL;
		goto done;
	}
	if ((rc = ingest_check_room(fs, &ix, NULL, NULL, e)) < 0)
		goto done;
	pins_chunks(fs, &ix, true);
	pinned = true;
	if (ingest_store_chunks(fs, fd, 0, &ix, e) < 0) {
		rc = -EIO;
		goto done;
	}
	snprintf(path, sizeof(path), "/v1/sources/%s", hex);
	if (authority_call(fs->authority, "POST", path, NULL, fs->seed, &status,
			   &reply, e) < 0 ||
	    (status != 200 && status != 201 &&
	     authority_refused(status, reply, e) < 0)) {
		rc = -EIO;
		goto done;
	}
	pthread_rwlock_wrlock(&fs->lock);
	o = catalog_find(fs, strcmp(kind, "kernel") == 0 ? OBJ_KERNEL :
			 OBJ_BASE, sha);
	if (o != NULL) {
		o->announced = true;
		if (!o->published) {
			o->published = true;
			pins_object(fs, o, true);
		}
		pins_save(fs);
	}
	pthread_rwlock_unlock(&fs->lock);
	log_info("%s: %s %s stored; this peer is now a source for it",
		 n->name, kind, hex);
	rc = 0;
done:
	if (pinned)
		pins_chunks(fs, &ix, false);
	json_decref(reply);
	chunkidx_free(&ix);
	chunkidx_free(&want);
	return rc;
}

int
ingest_file(struct fedfs *fs, struct node *n)
{
	char magic[sizeof(FEDSNAP_MAGIC) - 1];
	struct err e;
	int rc;

	e.msg[0] = '\0';
	if (pread(n->fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
	    memcmp(magic, FEDSNAP_MAGIC, sizeof(magic)) == 0)
		rc = ingest_snapshot(fs, n, n->fd, &e);
	else if (n->parent == INO_PUBLISH)
		rc = ingest_image(fs, n, n->fd, &e);
	else {
		err_set(&e, "not a .fedsnap file");
		rc = -EINVAL;
	}
	pthread_rwlock_wrlock(&fs->lock);
	if (rc == 0)
		fs->ingest_ok++;
	else
		fs->ingest_refused++;
	pthread_rwlock_unlock(&fs->lock);
	if (rc < 0)
		log_warn("%s/%s refused: %s", n->parent == INO_COMMIT ? "commit" :
			 "publish", n->name, e.msg);
	return rc;
}

/* If another commit/ entry stands for n's snapshot (cp to two names: the
 * authority holds one commitment for both), take n away but not the
 * commitment, and say so.  Lock held (write): two names removed at once
 * must not each leave the commitment to the other. */
static bool
commit_forget_locked(struct fedfs *fs, struct node *n)
{
	for (size_t i = 0; i < fs->nnodes; i++) {
		const struct node *x = fs->nodes[i];

		if (x == NULL || x == n || x->type != NODE_COMMIT ||
		    !x->live || x->obj != n->obj)
			continue;
		n->live = false;
		pins_object(fs, n->obj, false);
		pins_save(fs);
		log_info("%s removed; the commitment stays, for %s", n->name,
			 x->name);
		return true;
	}
	return false;
}

int
commit_withdraw(struct fedfs *fs, struct node *n)
{
	char hex[2 * SHA256_LEN + 1], path[128];
	json_t *reply = NULL;
	long status = 0;
	struct err e;

	pthread_rwlock_wrlock(&fs->lock);
	if (commit_forget_locked(fs, n)) {
		pthread_rwlock_unlock(&fs->lock);
		return 0;
	}
	pthread_rwlock_unlock(&fs->lock);
	hex_encode(n->obj->id, SHA256_LEN, hex);
	snprintf(path, sizeof(path), "/v1/commitments/%s", hex);
	if (authority_call(fs->authority, "DELETE", path, NULL, fs->seed,
			   &status, &reply, &e) < 0) {
		log_warn("withdraw %s: %s", n->name, e.msg);
		return -EIO;
	}
	if (status != 200 && status != 404) {
		authority_refused(status, reply, &e);
		log_warn("withdraw %s: %s", n->name, e.msg);
		json_decref(reply);
		return status == 429 ? -EAGAIN : -EACCES;
	}
	json_decref(reply);
	pthread_rwlock_wrlock(&fs->lock);
	n->live = false;
	pins_object(fs, n->obj, false);
	pins_save(fs);
	pthread_rwlock_unlock(&fs->lock);
	log_info("withdrew from %s (%.16s..)", n->name, hex);
	return 0;
}
