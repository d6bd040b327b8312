/*
 * config.h - configuration files for the daemons: /etc/fed/<daemon>.conf
 * (or --config FILE) turned into command-line options.
 *
 * A file holds "key = value" lines, key being a long option's name
 * ("listen = 0.0.0.0:8080" is --listen=0.0.0.0:8080), or a bare "key" for
 * an option without argument ("foreground").  '#' starts a comment line;
 * blank lines are skipped; spaces around key and value are trimmed.  The
 * options from the file are inserted before the real command line's, so
 * the daemon's own getopt_long parsing reads both and the command line,
 * coming later, overrides the file.  A line that names no option of the
 * daemon, gives a value to a flag or none to an option that needs one is
 * refused as "FILE:LINE: what is wrong".
 */
#ifndef FED_CONFIG_H
#define FED_CONFIG_H

#include <getopt.h>

#include "common/err.h"

#define CONFIG_DIR      "/etc/fed"
#define CONFIG_LINE_MAX 1024		/* bytes, newline included */
#define CONFIG_FILE_MAX (64 * 1024)	/* bytes */
#define CONFIG_ARGS_MAX 256		/* options from one file */

/*
 * Parse the file at path against opts and append its options to *out
 * (a NULL-terminated vector grown with realloc, *n entries).  Returns 0 or
 * -1 with "path:line: ..." in e.
 */
int config_parse_file(const char *path, const struct option *opts,
		      char ***out, int *n, struct err *e);

/*
 * For main(): find --config FILE (or --config=FILE) among argv[keep..],
 * remove it, and rebuild *argc and *argv as argv[0..keep-1], the file's
 * options, the rest.  Without --config, CONFIG_DIR/<name>.conf is read if
 * it exists ($FED_CONFIG_DIR replaces CONFIG_DIR).  The new vector lives
 * as long as the process.  Returns 0, or -1 having printed the reason on
 * stderr (the caller exits 2).
 */
int config_apply(const char *name, const struct option *opts, int keep,
		 int *argc, char ***argv);

#endif
