/*
 * test_config.c - common/config.c: key = value files become long options
 * inserted before the command line (which therefore wins), and every bad
 * line is refused naming file:line and what is wrong.
 */
#include <criterion/criterion.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "lib/testutil.h"

static const struct option opts[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "db", required_argument, NULL, 'd' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static char *dir;

static void setup(void) { dir = tu_tmpdir(); }
static void teardown(void) { tu_rmtree(dir); free(dir); }

static char *
conf(const char *text)
{
	char *p = tu_path(dir, "d.conf");

	tu_write_file(p, text, strlen(text));
	return p;
}

static void
free_vec(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* Parse text; returns -1 or the count, error message in *e. */
static int
parse(const char *text, char ***v, struct err *e)
{
	char *p = conf(text);
	int n = 0, rc;

	*v = NULL;
	rc = config_parse_file(p, opts, v, &n, e);
	free(p);
	return rc < 0 ? -1 : n;
}

TestSuite(config, .init = setup, .fini = teardown);

Test(config, lines_become_long_options)
{
	char **v;
	struct err e;
	int n = parse("# the authority\n\n  listen =  0.0.0.0:8080  \n"
		      "db=/var/lib/fed/a.db\r\nquiet\n   # indented comment\n"
		      "db = a = b", &v, &e);

	cr_assert_eq(n, 4, "%s", e.msg);
	cr_assert_str_eq(v[0], "--listen=0.0.0.0:8080");
	cr_assert_str_eq(v[1], "--db=/var/lib/fed/a.db");
	cr_assert_str_eq(v[2], "--quiet");
	cr_assert_str_eq(v[3], "--db=a = b");	/* first '=' splits */
	cr_assert_null(v[4]);
	free_vec(v);
}

static void
refused(const char *text, const char *want)
{
	char **v;
	struct err e;

	cr_assert_eq(parse(text, &v, &e), -1, "accepted: %s", text);
	free_vec(v);
	cr_assert(strstr(e.msg, want) != NULL, "'%s' lacks '%s'", e.msg, want);
	cr_assert(strstr(e.msg, "d.conf:") != NULL, "no file: %s", e.msg);
}

Test(config, bad_lines_name_file_line_and_why)
{
	refused("listen = a\nlisen = b\n", "d.conf:2: unknown option 'lisen'");
	refused("quiet = yes\n", ":1: 'quiet' takes no value");
	refused("\n\nlisten\n", ":3: 'listen' needs a value");
	refused("listen =\n", ":1: 'listen' needs a value");
	refused("= x\n", ":1: '' is not an option name");
	refused("Listen = x\n", "is not an option name");
	refused("--listen = x\n", "without dashes");
	refused("config = /x\n", "cannot be set in a file");
	refused("help\n", "cannot be set in a file");
}

Test(config, oversized_input_refused)
{
	char *big = malloc(CONFIG_FILE_MAX + 10), **v;
	struct err e;

	cr_assert_not_null(big);
	memset(big, '#', CONFIG_FILE_MAX + 9);
	big[CONFIG_FILE_MAX + 9] = '\0';
	cr_assert_eq(parse(big, &v, &e), -1);
	cr_assert(strstr(e.msg, "larger than") != NULL, "%s", e.msg);
	memset(big, 'x', CONFIG_LINE_MAX + 1);
	strcpy(big + CONFIG_LINE_MAX + 1, "\n");
	cr_assert_eq(parse(big, &v, &e), -1);
	cr_assert(strstr(e.msg, ":1: line longer than") != NULL, "%s", e.msg);
	free(big);
}

Test(config, nul_byte_refused)
{
	char *p = tu_path(dir, "n.conf"), **v = NULL;
	struct err e;
	int n = 0;

	tu_write_file(p, "quiet\n\0\n", 8);
	cr_assert_eq(config_parse_file(p, opts, &v, &n, &e), -1);
	cr_assert(strstr(e.msg, "NUL") != NULL, "%s", e.msg);
	free(p);
}

Test(config, missing_file_named)
{
	char **v = NULL;
	struct err e;
	int n = 0;

	cr_assert_eq(config_parse_file("/nonexistent23.conf", opts, &v, &n,
				       &e), -1);
	cr_assert(strstr(e.msg, "/nonexistent23.conf") != NULL, "%s", e.msg);
}

Test(config, apply_inserts_before_command_line_which_wins)
{
	char *p = conf("listen = 1.2.3.4:1\ndb = file.db\n");
	char *args[] = { "prog", "--listen", "5.6.7.8:2", "--config", p,
			 "mnt", NULL };
	char **argv = args, *listen = NULL, *db = NULL;
	int argc = 6, c;

	cr_assert_eq(config_apply("prog", opts, 1, &argc, &argv), 0);
	cr_assert_eq(argc, 6);	/* prog, 2 from the file, 2 + mnt */
	cr_assert_str_eq(argv[0], "prog");
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'l')
			listen = optarg;
		if (c == 'd')
			db = optarg;
	}
	cr_assert_str_eq(listen, "5.6.7.8:2");
	cr_assert_str_eq(db, "file.db");
	cr_assert_eq(optind, argc - 1);
	cr_assert_str_eq(argv[optind], "mnt");
	free_vec(argv);
	free(p);
}

Test(config, apply_default_dir_and_absent_file)
{
	char *p = tu_path(dir, "prog23.conf");
	char *args[] = { "prog", NULL }, **argv = args;
	int argc = 1;

	setenv("FED_CONFIG_DIR", dir, 1);
	cr_assert_eq(config_apply("prog23", opts, 1, &argc, &argv), 0);
	cr_assert_eq(argc, 1);	/* no file: nothing changes */
	tu_write_file(p, "quiet\n", 6);
	cr_assert_eq(config_apply("prog23", opts, 1, &argc, &argv), 0);
	cr_assert_eq(argc, 2);
	cr_assert_str_eq(argv[1], "--quiet");
	free_vec(argv);	/* made by config_apply, kept for the process */
	tu_write_file(p, "bogus\n", 6);
	argv = args, argc = 1;
	cr_assert_eq(config_apply("prog23", opts, 1, &argc, &argv), -1);
	unsetenv("FED_CONFIG_DIR");
	free(p);
}
