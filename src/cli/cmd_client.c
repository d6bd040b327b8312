/*
 * cmd_client.c - the `fed` subcommands for a service's visitors and its
 * owner's checks: get, proxy, audit.  The work is in src/client/; this file
 * reads options, prints, and picks the exit status.
 *
 *   fed get URL                     fetch through the best peer
 *   fed proxy --listen ADDR:PORT    HTTP proxy for any program
 *   fed audit HOST:PORT --path P --expect SHA256   check every peer
 *
 * --authority URL defaults to $FED_AUTHORITY; --cache DIR to $FED_CACHE,
 * $XDG_CACHE_HOME/fed or ~/.cache/fed.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/authurls.h"
#include "client/client.h"
#include "common/config.h"
#include "common/keyfile.h"
#include "common/log.h"
#include "common/manifest.h"
#include "common/proc.h"

/* The authority list from the option or $FED_AUTHORITY; NULL if neither
 * or if it does not parse (after saying why on stderr). */
static const char *
client_authority(const char *opt)
{
	static struct authurls urls;	/* only checked; too big for a stack */
	struct err e;

	if (opt == NULL)
		opt = getenv("FED_AUTHORITY");
	if (opt == NULL || opt[0] == '\0')
		return NULL;
	if (authurls_parse(opt, &urls, &e) == -1) {
		fprintf(stderr, "fed: --authority: %s\n", e.msg);
		return NULL;
	}
	return opt;
}

/* Open the cache and its statistics; 0 or 1 after printing why. */
static int
client_open_cache(const char *opt, char **dir, struct client_stats **st)
{
	struct err e;
	char *path;

	if ((*dir = client_cache_dir(opt, &e)) == NULL)
		return cli_fail("%s", e.msg);
	if (asprintf(&path, "%s/peers.json", *dir) == -1) {
		free(*dir);
		return cli_fail("out of memory");
	}
	*st = client_stats_load(path, &e);
	free(path);
	if (*st == NULL) {
		free(*dir);
		return cli_fail("%s", e.msg);
	}
	return 0;
}

/* ---- fed get ---- */

static const char get_help[] =
	"usage: fed get URL [-o FILE] [--authority URL[,URL...]] [--cache DIR]\n"
	"               [--authority-key PUB [--allow-stale]\n"
	"               [--mirror ADDR:PORT[,ADDR:PORT...]]] [--json] [-v]\n"
	"\n"
	"Fetch URL (http:// or https://) like curl, but through the best peer\n"
	"serving its host and port: the connection goes to the peer, the\n"
	"request still names the service (Host header).  The first requests\n"
	"try every peer once; afterwards the fastest is preferred, with one\n"
	"request in 10 exploring another.  A peer that refuses or does not\n"
	"connect within 2 s is skipped for the next.  Names the authority does\n"
	"not know are fetched directly (DNS).\n"
	"\n"
	"  -o FILE        write the body to FILE (default: standard output)\n"
	"  --authority U  the authority (default $FED_AUTHORITY); U1,U2,... are\n"
	"                 tried in turn, from the one that answered last\n"
	"  --cache DIR    lookups and peer statistics (default $FED_CACHE,\n"
	"                 $XDG_CACHE_HOME/fed or ~/.cache/fed)\n"
	"  --authority-key PUB\n"
	"                 the authority's public key (64 hex digits or a file):\n"
	"                 its lookup answers must be signed by it, unexpired and\n"
	"                 not older than the one cached, else they are refused\n"
	"  --allow-stale  with --authority-key: when no fresh answer can be had,\n"
	"                 use an expired one (saying so on stderr)\n"
	"  --mirror ADDR:PORT,...\n"
	"                 with --authority-key: when no authority answers, ask\n"
	"                 these peers' object servers for the signed answer\n"
	"                 they mirror; the freshest valid one is used, one that\n"
	"                 does not verify is skipped (saying why on stderr).\n"
	"                 The peers the cached answer names are asked too\n"
	"  --json         print what happened as JSON on stderr\n"
	"  -v             say which peer answered, and why others did not\n"
	"\n"
	"Exit status 0 on a 2xx/3xx answer; 1 with one line on stderr on an\n"
	"HTTP status >= 400 or when no peer answers.\n";

/* Where -o OUT goes: a regular file (or a new one) is written whole or not
 * at all, through *tmp renamed over it at the end; anything else (a
 * device such as /dev/null, a FIFO) is written as it is: renaming over it
 * would replace it. */
static int
get_open_out(const char *out, char **tmp, FILE **f)
{
	struct stat sb;

	*tmp = NULL;
	if (stat(out, &sb) == 0 && !S_ISREG(sb.st_mode))
		return (*f = fopen(out, "w")) == NULL ? -1 : 0;
	if (asprintf(tmp, "%s.fed-get.%ld", out, (long)getpid()) == -1) {
		*tmp = NULL;
		return -1;
	}
	return (*f = fopen(*tmp, "w")) == NULL ? -1 : 0;
}

int
cmd_get(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "authority", required_argument, NULL, 'A' },
		{ "cache", required_argument, NULL, 'c' },
		{ "authority-key", required_argument, NULL, 'k' },
		{ "allow-stale", no_argument, NULL, 'S' },
		{ "mirror", required_argument, NULL, 'M' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *authority = NULL, *cache = NULL, *out = NULL, *akey = NULL;
	const char *mirrors = NULL;
	struct client_get_opts o;
	struct signed_trust trust;
	struct client_get_result r;
	struct client_stats *st;
	bool json = false, verbose = false, allow_stale = false;
	char *dir, *tmp = NULL;
	struct err e;
	FILE *f = stdout;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "ho:v", opts, NULL)) != -1) {
		switch (ch) {
		case 'o': out = optarg; break;
		case 'A': authority = optarg; break;
		case 'c': cache = optarg; break;
		case 'k': akey = optarg; break;
		case 'S': allow_stale = true; break;
		case 'M': mirrors = optarg; break;
		case 'j': json = true; break;
		case 'v': verbose = true; break;
		case 'h': fputs(get_help, stdout); return 0;
		default: return cli_usage("get", "bad option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage("get", "need exactly one URL");
	if ((authority = client_authority(authority)) == NULL)
		return cli_usage("get", "a valid --authority URL[,URL...] is required (or set "
				 "FED_AUTHORITY)");
	if ((rc = cli_trust("get", akey, allow_stale, mirrors, &trust)) != 0)
		return rc;
	if (verbose)
		log_set_level(LOG_DEBUG);
	if ((rc = client_open_cache(cache, &dir, &st)) != 0)
		return rc;
	if (out != NULL && get_open_out(out, &tmp, &f) == -1) {
		rc = cli_fail("%s: %s", out, strerror(errno));
		goto done;
	}
	memset(&o, 0, sizeof(o));
	o.authority = authority;
	o.cache_dir = dir;
	o.trust = &trust;
	o.stats = st;
	o.out = f;
	o.progress = isatty(STDERR_FILENO) && !json && !verbose;
	rc = client_get(argv[optind], &o, &r, &e);
	if (f != stdout && fclose(f) != 0 && rc == 0) {
		e.msg[0] = '\0';
		rc = cli_fail("%s: %s", out, strerror(errno));
		goto done;
	}
	if (f == stdout)
		fflush(stdout);
	if (rc == -1) {
		rc = cli_fail("get %s", e.msg);
		goto done;
	}
	if (verbose) {
		if (r.tried[0] != '\0')
			log_info("skipped: %s", r.tried);
		log_info("%ld from %.8s %s:%u (%s), %llu bytes in %.3f s",
			 r.status, r.used.peer[0] ? r.used.peer : "dns",
			 r.used.addr, r.used.port,
			 client_source_name(r.source),
			 (unsigned long long)r.bytes, r.seconds);
	}
	if (json) {
		json_t *j = json_pack("{s:s, s:i, s:I, s:f, s:s, s:s, s:s, s:i,"
				      " s:s}", "url", argv[optind],
				      "status", (int)r.status,
				      "bytes", (json_int_t)r.bytes,
				      "seconds", r.seconds,
				      "source", client_source_name(r.source),
				      "peer", r.used.peer,
				      "addr", r.used.addr,
				      "port", (int)r.used.port,
				      "skipped", r.tried);

		if (j != NULL)
			json_dumpf(j, stderr, JSON_COMPACT);
		fputc('\n', stderr);
		json_decref(j);
	}
	if (r.status >= 400) {
		rc = cli_fail("get %s: HTTP %ld from peer %.8s at %s:%u",
			      argv[optind], r.status,
			      r.used.peer[0] ? r.used.peer : "(dns)",
			      r.used.addr, r.used.port);
		goto done;
	}
	if (tmp != NULL && rename(tmp, out) == -1) {
		rc = cli_fail("%s: %s", out, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	client_stats_free(st);
	free(dir);
	return rc;
}

/* ---- fed proxy ---- */

static const char proxy_help[] =
	"usage: fed proxy --listen ADDR:PORT [--authority URL[,URL...]] [--cache DIR]\n"
	"                 [--authority-key PUB [--allow-stale]\n"
	"                 [--mirror ADDR:PORT[,ADDR:PORT...]]]\n"
	"\n"
	"An HTTP proxy: point curl -x, a browser or any program at ADDR:PORT.\n"
	"Requests for services the authority knows go to their best peer\n"
	"(failing over when one refuses); every other name is reached\n"
	"directly.  Plain http:// requests are forwarded, https goes through\n"
	"CONNECT tunnels.  One connection carries one request; request heads\n"
	"over 16 KiB get 431; no peer answering gets 502 naming the peers\n"
	"tried.  One log line per request on stderr.  SIGTERM or SIGINT stop\n"
	"it.  --config FILE: key = value options (default\n"
	"/etc/fed/fed-proxy.conf); the command line overrides them.\n"
	"\n"
	"  --authority-key PUB  the authority's public key (64 hex digits or a\n"
	"                       file): lookup answers must be signed by it,\n"
	"                       unexpired and not older than the one cached\n"
	"                       (else 502 saying why)\n"
	"  --allow-stale        with --authority-key: when no fresh answer can\n"
	"                       be had, use an expired one (logged)\n"
	"  --mirror ADDR:PORT,...  with --authority-key: when no authority\n"
	"                       answers, ask these peers' object servers for\n"
	"                       the signed answer they mirror (the freshest\n"
	"                       valid one; others skipped, logged), and the\n"
	"                       peers the cached answer names\n";

static volatile sig_atomic_t proxy_signalled;

static void
proxy_on_signal(int sig)
{
	proxy_signalled = sig;
}

int
cmd_proxy(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "authority", required_argument, NULL, 'A' },
		{ "cache", required_argument, NULL, 'c' },
		{ "authority-key", required_argument, NULL, 'k' },
		{ "allow-stale", no_argument, NULL, 'S' },
		{ "mirror", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *authority = NULL, *cache = NULL, *listen_on = NULL;
	const char *akey = NULL, *mirrors = NULL;
	struct signed_trust trust;
	bool allow_stale = false;
	struct client_proxy_config cfg;
	struct client_proxy *px;
	struct client_stats *st;
	struct sigaction sa;
	sigset_t mask, old;
	struct err e;
	char *dir;
	int ch, rc;

	if (config_apply("fed-proxy", opts, 1, &argc, &argv) < 0)
		return 2;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': listen_on = optarg; break;
		case 'A': authority = optarg; break;
		case 'c': cache = optarg; break;
		case 'k': akey = optarg; break;
		case 'S': allow_stale = true; break;
		case 'M': mirrors = optarg; break;
		case 'h': fputs(proxy_help, stdout); return 0;
		default: return cli_usage("proxy", "bad option");
		}
	}
	if (optind != argc || listen_on == NULL)
		return cli_usage("proxy", "need --listen ADDR:PORT and no "
				 "other argument");
	if ((authority = client_authority(authority)) == NULL)
		return cli_usage("proxy", "a valid --authority URL[,URL...] is required (or set "
				 "FED_AUTHORITY)");
	if ((rc = cli_trust("proxy", akey, allow_stale, mirrors,
			    &trust)) != 0)
		return rc;
	if ((rc = client_open_cache(cache, &dir, &st)) != 0)
		return rc;

	/* Block the signals in every thread; the main thread waits for
	 * them with sigsuspend. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = proxy_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, &old);

	cfg.listen = listen_on;
	cfg.authority = authority;
	cfg.cache_dir = dir;
	cfg.trust = &trust;
	cfg.stats = st;
	proc_raise_nofile();
	if ((px = client_proxy_start(&cfg, &e)) == NULL) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		client_stats_free(st);
		free(dir);
		return cli_fail("proxy: %s", e.msg);
	}
	log_info("proxy listening on port %u (authority %s, cache %s)",
		 client_proxy_port(px), authority, dir);
	while (!proxy_signalled)
		sigsuspend(&old);
	log_info("signal %d: stopping", (int)proxy_signalled);
	client_proxy_stop(px);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	client_stats_free(st);
	free(dir);
	return 0;
}

/* ---- fed audit ---- */

static const char audit_help[] =
	"usage: fed audit HOST:PORT --path P --expect SHA256 --authority URL[,URL...]\n"
	"                 --key KEY [--report] [--json]\n"
	"\n"
	"As the owner of HOST:PORT, check what every peer hosting it serves:\n"
	"fetch P straight from each peer that is up (the owner's view of its\n"
	"hosts), with the service's Host header, and compare the SHA-256 of\n"
	"the body with SHA256.  Prints one line per peer: id, address,\n"
	"latency, verdict (ok, MISMATCH, unreachable, HTTP nnn).  With\n"
	"--report, every peer whose content does not match is reported to the\n"
	"authority (signed with KEY), which drops it from the service.\n"
	"\n"
	"Exit status 0 if every peer is ok, 1 if any is not.\n";

int
cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "path", required_argument, NULL, 'p' },
		{ "expect", required_argument, NULL, 'x' },
		{ "authority", required_argument, NULL, 'A' },
		{ "key", required_argument, NULL, 'K' },
		{ "report", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *authority = NULL, *key = NULL, *path = NULL, *expect = NULL;
	char host[MANIFEST_HOST_MAX + 1];
	uint8_t seed[ED25519_SEED_LEN];
	struct client_audit_row *rows = NULL;
	bool report = false, json = false;
	json_t *list = NULL;
	size_t n = 0, i, bad = 0;
	uint16_t port;
	struct err e;
	int ch, rc = 1;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'p': path = optarg; break;
		case 'x': expect = optarg; break;
		case 'A': authority = optarg; break;
		case 'K': key = optarg; break;
		case 'r': report = true; break;
		case 'j': json = true; break;
		case 'h': fputs(audit_help, stdout); return 0;
		default: return cli_usage("audit", "bad option");
		}
	}
	if (optind + 1 != argc || path == NULL || expect == NULL)
		return cli_usage("audit", "need HOST:PORT --path P --expect "
				 "SHA256");
	if ((authority = client_authority(authority)) == NULL)
		return cli_usage("audit", "a valid --authority URL[,URL...] is required (or set "
				 "FED_AUTHORITY)");
	if (key == NULL)
		return cli_usage("audit", "--key KEYFILE is required");
	if (service_parse(argv[optind], host, &port, &e) == -1)
		return cli_fail("%s: %s", argv[optind], e.msg);
	/* Load the key first: a bad key should not cost a round of
	 * fetches. */
	if (keyfile_load(key, seed, NULL, &e) == -1)
		return cli_fail("%s", e.msg);
	if (client_audit(authority, host, port, path, expect, &rows, &n,
			 &e) == -1) {
		explicit_bzero(seed, sizeof(seed));
		return cli_fail("audit %s:%u: %s", host, port, e.msg);
	}
	if (json && (list = json_array()) == NULL) {
		cli_fail("out of memory");
		goto done;
	}
	if (!json)
		printf("%-8s %-21s %9s  %s\n", "PEER", "ADDR", "LATENCY",
		       "VERDICT");
	for (i = 0; i < n; i++) {
		struct client_audit_row *w = &rows[i];
		char where[AUTHAPI_ADDR_MAX + 1], verdict[32];
		const char *reported = NULL;

		snprintf(where, sizeof(where), "%s:%u", w->p.addr, w->p.port);
		if (w->verdict == CLIENT_AUDIT_HTTP)
			snprintf(verdict, sizeof(verdict), "HTTP %ld",
				 w->status);
		else
			snprintf(verdict, sizeof(verdict), "%s",
				 client_verdict_name(w->verdict));
		if (w->verdict != CLIENT_AUDIT_OK)
			bad++;
		if (report && w->verdict == CLIENT_AUDIT_MISMATCH) {
			char reason[256];

			snprintf(reason, sizeof(reason), "audit: %s served "
				 "sha256 %s, expected %s", path, w->sha256,
				 expect);
			if (client_report(authority, seed, host, port,
					  w->p.peer, reason, NULL, &e) == -1)
				log_error("report %.8s: %s", w->p.peer, e.msg);
			else
				reported = "reported";
		}
		if (json) {
			json_array_append_new(list, json_pack(
			    "{s:s, s:s, s:i, s:f, s:s, s:i, s:s, s:s, s:b}",
			    "peer", w->p.peer, "addr", w->p.addr,
			    "port", (int)w->p.port, "latency_ms", w->latency_ms,
			    "verdict", client_verdict_name(w->verdict),
			    "status", (int)w->status, "sha256", w->sha256,
			    "error", w->why, "reported", reported != NULL));
			continue;
		}
		printf("%.8s %-21s %7.1fms  %s%s%s%s\n", w->p.peer, where,
		       w->latency_ms, verdict,
		       w->verdict == CLIENT_AUDIT_UNREACHABLE ? " (" : "",
		       w->verdict == CLIENT_AUDIT_UNREACHABLE ? w->why : "",
		       w->verdict == CLIENT_AUDIT_UNREACHABLE ? ")" : "");
		if (reported != NULL)
			printf("         reported %s to the authority: it no "
			       "longer serves %s:%u\n", w->p.peer, host, port);
	}
	if (json) {
		json_t *j = json_pack("{s:s, s:i, s:s, s:s, s:o}", "host", host,
				      "port", (int)port, "path", path,
				      "expect", expect, "peers", list);

		list = NULL;
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
	} else {
		printf("%zu peer%s audited, %zu not ok\n", n, n == 1 ? "" : "s",
		       bad);
	}
	fflush(stdout);
	rc = bad > 0 ? 1 : 0;
done:
	explicit_bzero(seed, sizeof(seed));
	json_decref(list);
	free(rows);
	return rc;
}
