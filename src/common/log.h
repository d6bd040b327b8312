/*
 * log.h - one line per event on stderr, for humans (or JSON for scripts).
 *
 *   2026-11-25T23:52:53Z fedfs[1234] warn: chunk 3f2a.. from 10.0.0.2:7000: hash mismatch
 *
 * log_init() sets the program name and format once, before threads start.
 * Every line is written with a single write(2), so lines from threads and
 * processes sharing stderr do not interleave.
 *
 * A daemon that keeps its terminal's stderr until it has started, so that a
 * failure to start is said there, calls log_set_copy(logfd, LOG_WARN):
 * every line goes to its log file as well, and only warnings and errors to
 * the terminal.  log_set_copy(-1, LOG_DEBUG) once stderr is the log file.
 */
#ifndef FED_LOG_H
#define FED_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_init(const char *prog, bool json);
void log_set_level(enum log_level min);
/* fd stays open after it is replaced: a thread may still be writing to it */
void log_set_copy(int fd, enum log_level stderr_min);

void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
