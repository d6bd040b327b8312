/*
 * pins.c - what this peer has committed to or published, kept across
 * restarts in STATE/pins.json, and pinned in the chunk store so the quota
 * never evicts it (nor the base and kernel a committed delta needs).
 *
 *   {"commits":[{"name":"web.fedsnap","id":"<hex>"}],
 *    "published":[{"kind":"delta"|"base"|"kernel","id":"<hex>"}]}
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "fedfs/fedfs.h"

#define PINS_FILE "pins.json"

void
pins_chunks(struct fedfs *fs, const struct chunk_index *ix, bool pin)
{
	for (uint32_t i = 0; i < ix->nchunks; i++) {
		if (pin)
			store_pin(fs->store, ix->chunks[i]);
		else
			store_unpin(fs->store, ix->chunks[i]);
	}
}

/* Pin (or unpin) o and, for a delta, its base and kernel.  Lock held. */
void
pins_object(struct fedfs *fs, struct fobj *o, bool pin)
{
	struct fobj *dep;

	if (!pin && o->pins == 0)
		return;
	o->pins += pin ? 1 : -1;
	pins_chunks(fs, &o->index, pin);
	if (o->kind != OBJ_DELTA)
		return;
	if ((dep = catalog_find(fs, OBJ_BASE, o->base)) != NULL)
		pins_chunks(fs, &dep->index, pin);
	if ((dep = catalog_find(fs, OBJ_KERNEL, o->kernel)) != NULL)
		pins_chunks(fs, &dep->index, pin);
}

/* Write STATE/pins.json atomically.  Lock held. */
int
pins_save(struct fedfs *fs)
{
	static const char *const kinds[] = { "kernel", "base", "delta" };
	json_t *commits = json_array(), *published = json_array(), *root;
	char hex[2 * SHA256_LEN + 1], *path = NULL, *tmp = NULL;
	int rc = -1;

	for (size_t i = INO_FIRST_DYNAMIC; i < fs->nnodes; i++) {
		struct node *n = fs->nodes[i];

		if (n == NULL || n->type != NODE_COMMIT || !n->live)
			continue;
		hex_encode(n->obj->id, SHA256_LEN, hex);
		json_array_append_new(commits, json_pack("{s:s,s:s}", "name",
							 n->name, "id", hex));
	}
	for (size_t i = 0; i < fs->nobjs; i++) {
		if (!fs->objs[i]->published)
			continue;
		hex_encode(fs->objs[i]->id, SHA256_LEN, hex);
		json_array_append_new(published, json_pack("{s:s,s:s}", "kind",
		    kinds[fs->objs[i]->kind], "id", hex));
	}
	root = json_pack("{s:o,s:o}", "commits", commits, "published",
			 published);
	if (root != NULL &&
	    asprintf(&path, "%s/%s", fs->state_dir, PINS_FILE) >= 0 &&
	    asprintf(&tmp, "%s.tmp", path) >= 0 &&
	    json_dump_file(root, tmp, JSON_COMPACT) == 0 &&
	    rename(tmp, path) == 0)
		rc = 0;
	else
		log_error("cannot save %s/%s: %s", fs->state_dir, PINS_FILE,
			  strerror(errno));
	json_decref(root);
	free(path);
	free(tmp);
	return rc;
}

int
pins_load(struct fedfs *fs)
{
	json_error_t jerr;
	char *path = NULL;
	json_t *root, *x;
	size_t i;

	if (asprintf(&path, "%s/%s", fs->state_dir, PINS_FILE) < 0)
		return -1;
	if ((root = json_load_file(path, 0, &jerr)) == NULL) {
		free(path);
		return 0;
	}
	pthread_rwlock_wrlock(&fs->lock);
	json_array_foreach(json_object_get(root, "published"), i, x) {
		const char *id = json_string_value(json_object_get(x, "id"));
		const char *kind = json_string_value(json_object_get(x, "kind"));
		enum fobj_kind k;
		uint8_t bid[SHA256_LEN];
		struct fobj *o;

		if (id == NULL || kind == NULL || !hex_is_sha256(id))
			continue;
		k = strcmp(kind, "kernel") == 0 ? OBJ_KERNEL :
		    strcmp(kind, "base") == 0 ? OBJ_BASE : OBJ_DELTA;
		hex_decode(id, bid, SHA256_LEN);
		if ((o = catalog_find(fs, k, bid)) == NULL) {
			log_warn("published %s %.16s.. is not in the catalogue "
				 "any more", kind, id);
			continue;
		}
		o->published = true;
		pins_object(fs, o, true);
	}
	json_array_foreach(json_object_get(root, "commits"), i, x) {
		const char *id = json_string_value(json_object_get(x, "id"));
		const char *name = json_string_value(json_object_get(x, "name"));
		uint8_t bid[SHA256_LEN];
		struct fobj *o;

		if (id == NULL || name == NULL || !hex_is_sha256(id))
			continue;
		hex_decode(id, bid, SHA256_LEN);
		if ((o = catalog_find(fs, OBJ_DELTA, bid)) == NULL) {
			log_warn("commitment %s (%.16s..) names a snapshot not "
				 "in the catalogue; dropped", name, id);
			continue;
		}
		if (node_new(fs, NODE_COMMIT, INO_COMMIT, name, o) != NULL)
			pins_object(fs, o, true);
	}
	pthread_rwlock_unlock(&fs->lock);
	json_decref(root);
	free(path);
	return 0;
}
