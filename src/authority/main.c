/*
 * main.c - fed-authority: options, signals, start and stop.
 *
 * Signals are blocked before any thread starts (so every MHD thread
 * inherits the mask) and taken synchronously with sigwait(): SIGTERM or
 * SIGINT stops accepting, lets requests in progress finish (each change is
 * already durable when its reply is sent) and closes the store.
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authority/authority.h"
#include "common/config.h"
#include "common/keyfile.h"
#include "common/log.h"
#include "common/proc.h"

static void
usage(FILE *f)
{
	fprintf(f,
"usage: fed-authority --listen ADDR:PORT --db FILE|URI [options]\n"
"\n"
"The fed authority: a REST service (JSON over HTTP) holding peers' keys,\n"
"trusted kernels and bases, the snapshot catalogue, commitments,\n"
"reports, and the chain of each owner's keys.  See docs/authority-api.md.\n"
"\n"
"  --config FILE      key = value options (default /etc/fed/fed-authority.conf);\n"
"                     the command line overrides them\n"
"  --listen ADDR:PORT       address to listen on (IPv4, or [IPv6]); port 0\n"
"                           picks a free one (see --port-file)\n"
"  --db FILE|URI            SQLite database file (created if missing), or\n"
"                           a postgresql:// URI, which may name several\n"
"                           hosts: the primary among them is written to\n"
"                           (docs/authority-ha.md)\n"
"  --admin-key PUBFILE      the admin's public key (or key file): only it\n"
"                           may trust and revoke kernels and bases, and\n"
"                           revoke owner keys and confirm their successors\n"
"  --key FILE               the authority's secret key file (fed keygen):\n"
"                           lookup and sources answers are signed with it\n"
"                           (clients pin its public key: --authority-key);\n"
"                           authorities over one database share one key.\n"
"                           Without it answers are unsigned\n"
"  --answer-ttl SECONDS     a signed answer is valid this long after it is\n"
"                           signed (default %d; 1 to 604800)\n"
"  --ttl SECONDS            how long a client may keep a lookup answer\n"
"                           (default %d; %d when no peer serves it)\n"
"  --peer-ttl SECONDS       a peer that has not refreshed its registration\n"
"                           for this long is no source; a commitment not\n"
"                           re-reported is out of lookups (default %d;\n"
"                           0: never; else at least 6).  Peers refresh at\n"
"                           a third of it\n"
"  --forget-after SECONDS   forget a peer not heard from for this long\n"
"                           (default %d, 30 days; 0: never; at least twice\n"
"                           --peer-ttl), unless it owns a service or holds\n"
"                           a commitment; none with --peer-ttl 0\n"
"  --signed-rate N          signed requests a client address may send a\n"
"                           second on average (default %d; 0: no limit)\n"
"  --signed-burst N         ... and at once (default %d)\n"
"  --publish-allowance N    services an owner may have before it must host\n"
"                           others' (default %d)\n"
"  --threads N              request threads (default: one per core)\n"
"  --per-ip-limit N         connections per client address (default %d)\n"
"  --timeout SECONDS        close idle connections after (default %d)\n"
"  --body-max BYTES         largest request body (default %u)\n"
"  --port-file FILE         write the port listened on to FILE\n"
"  --no-lookup-cache        compute every lookup from the store (for\n"
"                           benchmarks; answers are the same)\n"
"  --json-logs              log lines as JSON\n"
"  --quiet                  do not log each request (warnings only)\n"
"  -h, --help               this help\n",
		AUTHORITY_ANSWER_TTL_DEFAULT, AUTHORITY_TTL_DEFAULT,
		AUTHORITY_NEGATIVE_TTL, AUTHORITY_PEER_TTL_DEFAULT,
		AUTHORITY_FORGET_DEFAULT, AUTHORITY_SIGNED_RATE_DEFAULT, AUTHORITY_SIGNED_BURST_DEFAULT,
		AUTHORITY_ALLOWANCE_DEFAULT,
		AUTHORITY_PER_IP_DEFAULT, AUTHORITY_CONN_TIMEOUT,
		AUTHORITY_BODY_MAX_DEFAULT);
}

/* Parse a decimal in [min, max] for option name, or exit 2. */
static long long
main_number(const char *name, const char *s, long long min, long long max)
{
	long long v;
	char *end;

	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "fed-authority: --%s %s: expected a number "
			"from %lld to %lld\n", name, s, min, max);
		exit(2);
	}
	return v;
}

/* db as it may be logged: a URI's password (scheme://user:PASSWORD@...)
 * shown as "***". */
static void
main_masked(const char *db, char *out, size_t size)
{
	const char *auth = strstr(db, "://"), *at, *colon, *slash;

	snprintf(out, size, "%s", db);
	if (auth == NULL)
		return;
	auth += 3;
	at = strchr(auth, '@');
	colon = strchr(auth, ':');
	slash = strchr(auth, '/');
	if (at == NULL || colon == NULL || colon > at ||
	    (slash != NULL && slash < at))
		return;
	snprintf(out, size, "%.*s***%s", (int)(colon + 1 - db), db, at);
}

/* Write the port to path through a temporary file and rename, so a reader
 * polling for the file never sees it half written. */
static int
main_write_port(const char *path, uint16_t port, struct err *e)
{
	char tmp[PATH_MAX];
	FILE *f;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return err_set(e, "--port-file: path too long");
	if ((f = fopen(tmp, "w")) == NULL)
		return err_sys(e, "%s", tmp);
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0) {
		unlink(tmp);
		return err_sys(e, "%s", tmp);
	}
	if (rename(tmp, path) == -1) {
		unlink(tmp);
		return err_sys(e, "%s", path);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "db", required_argument, NULL, 'd' },
		{ "admin-key", required_argument, NULL, 'a' },
		{ "key", required_argument, NULL, 'k' },
		{ "answer-ttl", required_argument, NULL, 'A' },
		{ "ttl", required_argument, NULL, 't' },
		{ "peer-ttl", required_argument, NULL, 'L' },
		{ "forget-after", required_argument, NULL, 'F' },
		{ "signed-rate", required_argument, NULL, 'R' },
		{ "signed-burst", required_argument, NULL, 'B' },
		{ "publish-allowance", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 'T' },
		{ "per-ip-limit", required_argument, NULL, 'I' },
		{ "timeout", required_argument, NULL, 'o' },
		{ "body-max", required_argument, NULL, 'b' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "no-lookup-cache", no_argument, NULL, 'N' },
		{ "json-logs", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char db[512];
	struct authority_config cfg;
	struct authority *a;
	const char *admin_path = NULL, *key_path = NULL, *port_file = NULL;
	bool json_logs = false, quiet = false;
	struct err e;
	sigset_t set;
	int ch, sig;

	authority_config_defaults(&cfg);
	if (config_apply("fed-authority", opts, 1, &argc, &argv) < 0)
		return 2;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': cfg.listen = optarg; break;
		case 'd': cfg.db_path = optarg; break;
		case 'a': admin_path = optarg; break;
		case 'k': key_path = optarg; break;
		case 'A':
			cfg.answer_ttl = (int)main_number("answer-ttl", optarg,
							   1, 7 * 86400);
			break;
		case 't':
			cfg.ttl = (int)main_number("ttl", optarg, 0, 86400);
			break;
		case 'L':
			cfg.peer_ttl = (int)main_number("peer-ttl", optarg, 0,
							 30 * 86400);
			/* peers refresh at a third, on loops that turn about
			 * once a second, and dates are to the second: below
			 * 6 s live peers would flap */
			if (cfg.peer_ttl > 0 && cfg.peer_ttl < 6) {
				fprintf(stderr, "fed-authority: --peer-ttl must "
					"be 0 (never) or at least 6 seconds\n");
				return 2;
			}
			break;
		case 'F':
			cfg.forget_after = (int)main_number("forget-after",
							     optarg, 0,
							     3650 * 86400);
			break;
		case 'R':
			cfg.signed_rate = (double)main_number("signed-rate",
							      optarg, 0, 1000000);
			break;
		case 'B':
			cfg.signed_burst = (unsigned)main_number(
			    "signed-burst", optarg, 1, 10000000);
			break;
		case 'p':
			cfg.publish_allowance = (int)main_number(
			    "publish-allowance", optarg, 0, 1000000);
			break;
		case 'T':
			cfg.threads = (unsigned)main_number("threads", optarg,
							    1, 256);
			break;
		case 'I':
			cfg.per_ip_limit = (unsigned)main_number(
			    "per-ip-limit", optarg, 1, 100000);
			break;
		case 'o':
			cfg.conn_timeout = (unsigned)main_number(
			    "timeout", optarg, 1, 3600);
			break;
		case 'b':
			cfg.body_max = (size_t)main_number("body-max", optarg,
							   1024, 64 << 20);
			break;
		case 'P': port_file = optarg; break;
		case 'N': cfg.no_lookup_cache = true; break;
		case 'j': json_logs = true; break;
		case 'q': quiet = cfg.quiet = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "fed-authority: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	/* a live peer refreshes at a third of the peer ttl: forgetting one
	 * between two refreshes would drop what it holds */
	if (cfg.forget_after > 0 && cfg.forget_after < 2 * cfg.peer_ttl) {
		fprintf(stderr, "fed-authority: --forget-after must be 0 "
			"(never) or at least twice --peer-ttl (%d s)\n",
			2 * cfg.peer_ttl);
		return 2;
	}
	if (cfg.listen == NULL || cfg.db_path == NULL) {
		fprintf(stderr, "fed-authority: --listen and --db are "
			"required (see --help)\n");
		return 2;
	}
	log_init("fed-authority", json_logs);
	if (admin_path != NULL) {
		if (pubkey_load(admin_path, cfg.admin, &e) == -1) {
			fprintf(stderr, "fed-authority: --admin-key: %s\n",
				e.msg);
			return 1;
		}
		cfg.has_admin = true;
	}
	if (key_path != NULL) {
		if (keyfile_load(key_path, cfg.key_seed, cfg.key_pub, &e) == -1) {
			fprintf(stderr, "fed-authority: --key: %s\n", e.msg);
			return 1;
		}
		cfg.has_key = true;
	}

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	proc_raise_nofile();	/* up to 4096 connections */

	a = authority_start(&cfg, &e);
	explicit_bzero(cfg.key_seed, sizeof(cfg.key_seed));	/* a has a copy */
	if (a == NULL) {
		fprintf(stderr, "fed-authority: %s\n", e.msg);
		return 1;
	}
	if (port_file != NULL &&
	    main_write_port(port_file, authority_port(a), &e) == -1) {
		fprintf(stderr, "fed-authority: %s\n", e.msg);
		authority_stop(a);
		return 1;
	}
	main_masked(cfg.db_path, db, sizeof(db));
	log_info("listening on %s (port %u), database %s%s%s", cfg.listen,
		 authority_port(a), db,
		 cfg.has_admin ? "" : ", no admin key: trust is read-only",
		 cfg.has_key ? ", answers signed" : ", answers unsigned");
	if (quiet)
		log_set_level(LOG_WARN);	/* and cfg.quiet: no request lines */

	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
	}
	log_warn("signal %d (%s): stopping", sig, strsignal(sig));
	authority_stop(a);
	return 0;
}
