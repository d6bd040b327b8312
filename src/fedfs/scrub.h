/*
 * scrub.h - checking every chunk of the store again: a background thread
 * in a running fedfs, at a bounded rate, and `fedfs --fsck`, offline, at
 * full speed.
 *
 * Both hash each held chunk's file (store_verify_chunk), which drops and
 * logs a bad one: a later read fetches it again from its sources.  What
 * the read path checks only when a chunk enters the page cache (store.h),
 * the scrubber checks on disk however long a chunk sits unread: bit rot,
 * a chunk file overwritten by hand, one cut short.
 */
#ifndef FED_FEDFS_SCRUB_H
#define FED_FEDFS_SCRUB_H

#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "fedfs/store.h"

#define SCRUB_RATE_DEFAULT (8ull << 20)	/* bytes/s */
#define SCRUB_PASS_PAUSE_S 60		/* between two passes */

/* What a pass found: totals, and one {"chunk", "why"} per bad one. */
struct scrub_report {
	uint64_t chunks, bytes, good, bad, unreadable;
	json_t *bad_list;		/* an array, owned (may be NULL) */
};

struct scrubber;

/* Start scrubbing s in the background at rate bytes/s (> 0), pass after
 * pass.  *out owned by the caller: scrub_stop(), before store_close(). */
int scrub_start(struct store *s, uint64_t rate, struct scrubber **out,
		struct err *e);
void scrub_stop(struct scrubber *sc);	/* NULL: nothing */

/* Figures for .status (a new JSON object); NULL sc: {"rate": 0}. */
json_t *scrub_status(struct scrubber *sc);

/* Check every chunk held now, at full speed, into r (its bad_list a new
 * array the caller frees with json_decref). */
void scrub_all(struct store *s, struct scrub_report *r);

#endif
