/*
 * err.h - one human-readable error message carried out of a call.
 *
 * Functions that can fail for a reason worth telling a person take a
 * `struct err *` as their last argument, return -1 on failure and leave one
 * line in e->msg saying what is wrong ("manifest: field 'name' is missing").
 * Callers add context by prefixing with err_wrap().  A NULL err is allowed:
 * the message is then dropped.  The message is always one line of
 * printable ASCII: any other byte (from input it quotes) is shown as '?'.
 */
#ifndef FED_ERR_H
#define FED_ERR_H

#include <stddef.h>

#define ERR_MSG_MAX 512

struct err {
	char msg[ERR_MSG_MAX];
};

/* Format a message into e (if not NULL).  Always returns -1. */
int err_set(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Same, with ": strerror(errno)" appended.  Always returns -1. */
int err_sys(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prefix the message already in e with "prefix: ".  Always returns -1. */
int err_wrap(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
