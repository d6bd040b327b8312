/*
 * log.c - one line per event on stderr (and, while a daemon starts, in its
 * log file too: see log_set_copy).
 *
 * Text:  "2026-11-25T23:52:53Z prog[pid] level: message"
 * JSON:  {"time":"..","prog":"..","pid":N,"level":"..","msg":".."}
 *
 * Each line is formatted into a local buffer and written with one write(2)
 * (stderr is unbuffered and shared by threads), so lines never interleave.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "common/timefmt.h"

static const char *log_prog = "fed";
static bool log_json;
static enum log_level log_min = LOG_INFO;
/* set while threads log (see log_set_copy) */
static _Atomic int log_copy_fd = -1;
static _Atomic enum log_level log_stderr_min = LOG_DEBUG;

static const char *const log_names[] = { "debug", "info", "warn", "error" };

void
log_init(const char *prog, bool json)
{
	const char *slash = strrchr(prog, '/');

	log_prog = slash ? slash + 1 : prog;
	log_json = json;
}

void
log_set_level(enum log_level min)
{
	log_min = min;
}

void
log_set_copy(int fd, enum log_level stderr_min)
{
	log_copy_fd = fd;
	log_stderr_min = stderr_min;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	char msg[2048], line[4096], now[RFC3339_LEN + 1];
	va_list ap;
	int n, fd;

	if (lvl < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* one event, one line: fold any newline a message carries */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	rfc3339_format(time(NULL), now);

	if (log_json) {
		json_t *j = json_pack("{s:s,s:s,s:i,s:s,s:s}", "time", now,
				      "prog", log_prog, "pid", (int)getpid(),
				      "level", log_names[lvl], "msg", msg);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

		n = snprintf(line, sizeof(line), "%s\n", s ? s : "{}");
		free(s);
		json_decref(j);
	} else {
		n = snprintf(line, sizeof(line), "%s %s[%d] %s: %s\n", now,
			     log_prog, (int)getpid(), log_names[lvl], msg);
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (lvl >= log_stderr_min &&
	    write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	if ((fd = log_copy_fd) >= 0 && write(fd, line, (size_t)n) < 0) {
		/* nor there */
	}
}
