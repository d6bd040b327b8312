/*
 * util.c - what every `fed` subcommand shares: errors, numbers, sizes, the
 * authority key a client pins.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/client.h"
#include "common/signed_answer.h"

int
cli_trust(const char *cmd, const char *key, bool allow_stale,
	  const char *mirrors, struct signed_trust *t)
{
	struct client_mirrors ms;
	struct err e;

	memset(t, 0, sizeof(*t));
	if (key == NULL) {
		if (allow_stale)
			return cli_usage(cmd, "--allow-stale needs "
					 "--authority-key (only signed answers "
					 "expire)");
		if (mirrors != NULL)
			return cli_usage(cmd, "--mirror needs --authority-key "
					 "(a peer's answer is worth its "
					 "signature)");
		return 0;
	}
	if (signed_trust_key(key, t->key, &e) == -1)
		return cli_fail("%s", e.msg);
	if (mirrors != NULL && client_mirrors_parse(mirrors, &ms, &e) == -1)
		return cli_usage(cmd, "%s", e.msg);
	t->on = true;
	t->allow_stale = allow_stale;
	t->mirrors = mirrors;
	return 0;
}

int
cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fed: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fed %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see fed %s --help)\n", cmd);
	return 2;
}

int
cli_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

const char *
cli_bytes(uint64_t n, char buf[32])
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, 32, "%" PRIu64 " B", n);
	else
		snprintf(buf, 32, "%.1f %s", v, unit[u]);
	return buf;
}
