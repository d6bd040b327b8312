/*
 * timefmt.c - strict RFC 3339 UTC timestamps ("2026-11-25T23:52:53Z").
 */
#include <stdio.h>
#include <string.h>

#include "common/timefmt.h"

void
rfc3339_format(time_t t, char out[RFC3339_LEN + 1])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, RFC3339_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
rfc3339_parse(const char *s, time_t *out)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	struct tm tm;
	char back[RFC3339_LEN + 1];
	size_t i;

	if (strlen(s) != RFC3339_LEN)
		return -1;
	for (i = 0; i < RFC3339_LEN; i++) {
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9')
				    : s[i] != shape[i])
			return -1;
	}
	memset(&tm, 0, sizeof(tm));
	if (strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) == NULL)
		return -1;
	*out = timegm(&tm);
	/* refuse dates that do not exist (Feb 30th normalises elsewhere) */
	rfc3339_format(*out, back);
	return strcmp(back, s) == 0 ? 0 : -1;
}

double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void
timespec_add(struct timespec *t, double secs)
{
	long long ns = (long long)(secs * 1e9) + t->tv_nsec;

	t->tv_sec += (time_t)(ns / 1000000000);
	t->tv_nsec = (long)(ns % 1000000000);
}
