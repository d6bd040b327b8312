/*
 * config.c - read a daemon's key = value configuration file into argv
 * entries (see config.h).
 */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
			   end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

static const struct option *
find_opt(const struct option *opts, const char *key)
{
	for (; opts->name != NULL; opts++)
		if (strcmp(opts->name, key) == 0)
			return opts;
	return NULL;
}

static int
valid_key(const char *k)
{
	if (*k == '\0')
		return 0;
	for (; *k != '\0'; k++)
		if (!islower((unsigned char)*k) && !isdigit((unsigned char)*k) &&
		    *k != '-')
			return 0;
	return 1;
}

static int
push(char ***out, int *n, char *s, struct err *e)
{
	char **v;

	if (s == NULL)
		return err_set(e, "out of memory");
	v = realloc(*out, (size_t)(*n + 2) * sizeof(*v));
	if (v == NULL) {
		free(s);
		return err_set(e, "out of memory");
	}
	v[(*n)++] = s;
	v[*n] = NULL;
	*out = v;
	return 0;
}

/* One non-comment line (already trimmed) into one argv entry. */
static int
parse_line(char *line, const struct option *opts, char ***out, int *n,
	   struct err *e)
{
	char *eq = strchr(line, '='), *key = line, *val = NULL, *arg;
	const struct option *o;

	if (eq != NULL) {
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
	}
	if (key[0] == '-')
		return err_set(e, "'%s': write the option's name without "
			       "dashes", key);
	if (!valid_key(key))
		return err_set(e, "'%s' is not an option name (key = value)", key);
	if (strcmp(key, "config") == 0 || strcmp(key, "help") == 0)
		return err_set(e, "'%s' cannot be set in a file", key);
	if ((o = find_opt(opts, key)) == NULL)
		return err_set(e, "unknown option '%s'", key);
	if (o->has_arg == no_argument && val != NULL)
		return err_set(e, "'%s' takes no value (write the bare name)", key);
	if (o->has_arg == required_argument && (val == NULL || *val == '\0'))
		return err_set(e, "'%s' needs a value (%s = ...)", key, key);
	if (*n >= CONFIG_ARGS_MAX)
		return err_set(e, "more than %d options", CONFIG_ARGS_MAX);
	if (asprintf(&arg, val == NULL ? "--%s%s" : "--%s=%s", key,
		     val == NULL ? "" : val) < 0)
		arg = NULL;
	return push(out, n, arg, e);
}

/* The whole text (len bytes, NUL-terminated at len) line by line. */
static int
parse_text(char *text, size_t len, const char *path,
	   const struct option *opts, char ***out, int *n, struct err *e)
{
	char *p = text, *nl, *line;
	unsigned lineno = 0;

	if (memchr(text, '\0', len) != NULL)
		return err_set(e, "%s: NUL byte: not a text file", path);
	while (*p != '\0') {
		lineno++;
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (strlen(p) > CONFIG_LINE_MAX)
			return err_set(e, "%s:%u: line longer than %d bytes",
				       path, lineno, CONFIG_LINE_MAX);
		line = trim(p);
		if (*line != '\0' && *line != '#' &&
		    parse_line(line, opts, out, n, e) < 0)
			return err_wrap(e, "%s:%u", path, lineno);
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 0;
}

int
config_parse_file(const char *path, const struct option *opts, char ***out,
		  int *n, struct err *e)
{
	char buf[CONFIG_FILE_MAX + 1];
	struct stat st;
	size_t len;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return err_sys(e, "%s", path);
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return err_set(e, "%s: not a regular file", path);
	}
	len = fread(buf, 1, sizeof(buf), f);
	if (ferror(f)) {
		fclose(f);
		return err_sys(e, "%s: read", path);
	}
	fclose(f);
	if (len > CONFIG_FILE_MAX)
		return err_set(e, "%s: larger than %d bytes", path,
			       CONFIG_FILE_MAX);
	buf[len] = '\0';
	return parse_text(buf, len, path, opts, out, n, e);
}

/* Index of --config in argv[keep..], its value in *path; -1 if none. */
static int
find_config_arg(int argc, char **argv, int keep, const char **path,
		int *width)
{
	for (int i = keep; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return -1;
		if (strncmp(argv[i], "--config=", 9) == 0) {
			*path = argv[i] + 9, *width = 1;
			return i;
		}
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			*path = argv[i + 1], *width = 2;
			return i;
		}
	}
	return -1;
}

/* The vector config_apply made: reachable, so never a leak. */
static char **volatile config_argv_kept;	/* volatile: the store stays */

int
config_apply(const char *name, const struct option *opts, int keep,
	     int *argc, char ***argv)
{
	const char *path = NULL, *dir = getenv("FED_CONFIG_DIR");
	char defpath[4096], **v = NULL;
	int at, width = 0, n = 0;
	struct err e;

	at = find_config_arg(*argc, *argv, keep, &path, &width);
	if (at < 0) {
		snprintf(defpath, sizeof(defpath), "%s/%s.conf",
			 dir != NULL && *dir != '\0' ? dir : CONFIG_DIR, name);
		if (access(defpath, F_OK) < 0)
			return 0;
		path = defpath;
	}
	for (int i = 0; i < keep; i++)
		if (push(&v, &n, strdup((*argv)[i]), &e) < 0)
			goto fail;
	if (config_parse_file(path, opts, &v, &n, &e) < 0)
		goto fail;
	for (int i = keep; i < *argc; i++) {
		if (i == at) {
			i += width - 1;
			continue;
		}
		if (push(&v, &n, strdup((*argv)[i]), &e) < 0)
			goto fail;
	}
	*argc = n;
	*argv = config_argv_kept = v;	/* lives as long as the process */
	return 0;
fail:
	fprintf(stderr, "%s: configuration: %s\n", name, e.msg);
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return -1;
}
