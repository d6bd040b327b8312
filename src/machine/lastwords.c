/*
 * lastwords.c - why a kernel died, from the end of its console
 * (machine.h).  A person reading "UML exit status 134" learns nothing; the
 * kernel said why just before, e.g.
 *
 *     userspace - ptrace set fp regs failed, errno = 14
 *     Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b
 */
#include <stdio.h>
#include <string.h>

#include "machine/machine.h"

#define LW_LINE_MAX 180		/* bytes quoted of one line */

/* The lines that name a cause, in the order a kernel prints them. */
static const char *const cause_marks[] = {
	"failed, errno",	/* a host call UML needs was refused */
	"errno = ",
	"Out of memory",
	"deadlocked on memory",
	"VFS: ",		/* no root filesystem */
	"No working init",
};

/* The start of the last console line that holds mark (its length in
 * *line_len), or NULL. */
static const char *
lw_find(const char *console, size_t len, const char *mark, size_t *line_len)
{
	const char *found = NULL, *p = console, *end = console + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		if (memmem(p, (size_t)(le - p), mark, strlen(mark)) != NULL) {
			found = p;
			*line_len = (size_t)(le - p);
		}
		p = le + 1;
	}
	return found;
}

/* Append line (trimmed, non-printable bytes as '?') to out after sep. */
static void
lw_append(char *out, size_t size, const char *sep, const char *line,
	  size_t n)
{
	size_t o = strlen(out);

	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
		n--;
	while (n > 0 && line[0] == ' ')
		line++, n--;
	if (n > LW_LINE_MAX)
		n = LW_LINE_MAX;
	if (o > 0 && o + 1 < size) {
		snprintf(out + o, size - o, "%s", sep);
		o = strlen(out);
	}
	for (size_t i = 0; i < n && o + 1 < size; i++) {
		unsigned char c = (unsigned char)line[i];

		out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[o] = '\0';
}

/* The last two non-empty lines, in order. */
static void
lw_tail(const char *console, size_t len, char *out, size_t size)
{
	const char *starts[2] = { NULL, NULL };
	size_t lens[2] = { 0, 0 };
	const char *p = console, *end = console + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t n = (size_t)(le - p);

		while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' '))
			n--;
		if (n > 0) {
			starts[0] = starts[1], lens[0] = lens[1];
			starts[1] = p, lens[1] = n;
		}
		p = le + 1;
	}
	for (int i = 0; i < 2; i++)
		if (starts[i] != NULL)
			lw_append(out, size, " / ", starts[i], lens[i]);
}

void
machine_last_words(const char *console, size_t len, char *out, size_t size)
{
	const char *cause = NULL, *panic;
	size_t cause_len = 0, panic_len = 0;

	if (size == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(cause_marks) / sizeof(*cause_marks); i++)
		if ((cause = lw_find(console, len, cause_marks[i], &cause_len)))
			break;
	panic = lw_find(console, len, "Kernel panic", &panic_len);
	if (cause == NULL && panic == NULL) {
		lw_tail(console, len, out, size);
		return;
	}
	if (cause != NULL)
		lw_append(out, size, " / ", cause, cause_len);
	if (panic != NULL && panic != cause)
		lw_append(out, size, " / ", panic, panic_len);
}
