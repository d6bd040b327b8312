/*
 * timefmt.h - RFC 3339 UTC timestamps, the only time format on the wire:
 * "2026-11-25T23:52:53Z" (exactly this form: UTC, 'Z', no fraction);
 * and the monotonic clock every duration is measured on.
 */
#ifndef FED_TIMEFMT_H
#define FED_TIMEFMT_H

#include <time.h>

#define RFC3339_LEN 20		/* without the NUL */

void rfc3339_format(time_t t, char out[RFC3339_LEN + 1]);

/* Parse the strict form above.  Returns 0, or -1 on anything else. */
int rfc3339_parse(const char *s, time_t *out);

/* Seconds on the monotonic clock: for durations and deadlines, which a
 * change of the wall clock must not move. */
double mono_now(void);

/* t advanced by secs (>= 0), nanoseconds kept below a second: deadlines
 * for pthread_cond_timedwait on a CLOCK_MONOTONIC condition. */
void timespec_add(struct timespec *t, double secs);

#endif
