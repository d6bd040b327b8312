/*
 * mirror.h - the authority's signed lookup answers this peer keeps and
 * serves to clients when no authority answers them (issue 21, "Peers
 * mirror"; docs/fedfs.md "Mirrored lookup answers").
 *
 * A peer started with --authority-key asks the authority, at its catalogue
 * cadence, for the lookup answer of every service it has committed to, and
 * offers each answer here.  An answer is kept only if it verifies against
 * the pinned key (common/signed_answer.h), is about the service asked, has
 * not expired, and is not older than the one held (a rollback): the
 * freshest by version wins.  The object server serves what is held at
 * GET /v1/lookup?host=H&port=P, the authority's own path, so a client asks
 * a mirror exactly as it asks the authority; and, as the bytes are signed,
 * a client trusts a mirror no more than anyone in the path: it checks the
 * signature, the expiry and the version itself.
 *
 * What is kept is the answer as it verified, dumped compact with sorted
 * keys: the very bytes the signature covers (after the domain string),
 * plus the signature.  At most MIRROR_MAX services; when full, the entry
 * that expires first makes room.  Thread-safe: one mutex (mirror.c).
 */
#ifndef FED_FEDFS_MIRROR_H
#define FED_FEDFS_MIRROR_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/authapi.h"
#include "common/crypto.h"
#include "common/err.h"

#define MIRROR_MAX 256			/* services held */
#define MIRROR_SUBJECT_MAX (AUTHAPI_ADDR_MAX + 1)	/* "host:port", NUL */

struct mirror;

/* A store checking answers against key.  NULL: out of memory. */
struct mirror *mirror_new(const uint8_t key[ED25519_PUB_LEN]);
void mirror_free(struct mirror *mi);

/*
 * Offer text (len bytes: a lookup answer) for subject "host:port" at time
 * now.  Returns 1 when it is now the one held, 0 when the one held is kept
 * (it is as new: the same version, or says the same), or -1 with e saying
 * why it is refused (does not verify, another service, expired, older
 * than the one held).
 */
int mirror_offer(struct mirror *mi, const char *subject, const char *text,
		 size_t len, time_t now, struct err *e);

/* A malloc'd copy of the answer held for subject (*len bytes, NUL added),
 * or NULL if none (or out of memory). */
char *mirror_get(struct mirror *mi, const char *subject, size_t *len);

/* Forget every service not among subjects[0..n-1] (no longer hosted). */
void mirror_keep_only(struct mirror *mi, const char *const *subjects,
		      size_t n);

/* The number of services held. */
size_t mirror_count(struct mirror *mi);

#endif
