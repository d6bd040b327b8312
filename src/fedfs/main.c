/*
 * main.c - fedfs: options, start-up, the FUSE session, shut-down.
 *
 *   fedfs MOUNTPOINT --state DIR --authority URL --key KEYFILE
 *         --serve ADDR:PORT [--public ADDR:PORT] [--cache-max BYTES] [-f]
 *   fedfs --fsck --state DIR [--json]
 *
 * Start-up order matters: everything that can fail for a reason worth
 * telling (key, state dir, object-server port, mount) happens before the
 * parent returns, so `fedfs ...` exits non-zero with one line when it
 * cannot serve; in the background the child reports "ready" through a
 * pipe only once the filesystem is mounted.
 *
 * In the background fedfs forks first: the object server's and the
 * fetcher's threads, started before the mount, would not survive a fork
 * (libfuse's fuse_daemonize forks after the mount, too late for them).
 * The child keeps the terminal's stderr until it has mounted, so a failure
 * is said there (and in DIR/fedfs.log); only then does the log become its
 * stderr and it leave the terminal's session.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fuse_log.h>
#include <fuse_lowlevel.h>

#include "common/authurls.h"
#include "common/config.h"
#include "common/hex.h"
#include "common/keyfile.h"
#include "common/log.h"
#include "common/proc.h"
#include "fedfs/fedfs.h"
#include "fedfs/fs.h"
#include "fedfs/mirror.h"
#include "fedfs/scrub.h"

/* --authority, parsed only to refuse a bad list before starting. */
static struct authurls fedfs_urls;

static const char usage[] =
	"usage: fedfs MOUNTPOINT --state DIR --authority URL[,URL...] --key KEYFILE\n"
	"             --serve ADDR:PORT [--public ADDR:PORT] [--cache-max BYTES]\n"
	"             [--scrub-rate BYTES] [--authority-key PUB [--allow-stale]]\n"
	"             [-f] [--json-logs] [--debug]\n"
	"       fedfs --fsck --state DIR [--json]\n"
	"\n"
	"Mount the federation's filesystem at MOUNTPOINT: trusted kernels and\n"
	"bases, published delta snapshots, the newest snapshot of each service,\n"
	"publish/ and commit/ to copy snapshots into, and .status.  Bytes are\n"
	"fetched lazily from the peers that hold them, verified chunk by chunk\n"
	"(SHA-256), cached under DIR and served on to other peers at\n"
	"http://ADDR:PORT/objects/<sha256>.\n"
	"\n"
	"  --config FILE      key = value options (default /etc/fed/fedfs.conf);\n"
	"                     the command line overrides them\n"
	"  --state DIR        chunk store, catalogue, commitments (kept across\n"
	"                     restarts)\n"
	"  --authority URL    the authority, e.g. http://10.0.0.1:8080; a list\n"
	"                     URL1,URL2,... (at most 8) is tried in turn, from\n"
	"                     the one that answered last\n"
	"  --key KEYFILE      this peer's key (fed keygen); an owner's fedfs runs\n"
	"                     with the owner's key to publish\n"
	"  --authority-key PUB  the authority's public key (64 hex digits or a\n"
	"                     file): sources answers must be signed by it,\n"
	"                     unexpired and not older than the last one, else\n"
	"                     they are not used (the sources known stay)\n"
	"  --allow-stale      with --authority-key: use an expired sources answer\n"
	"                     when no fresh one comes (logged).  With it, this\n"
	"                     peer also mirrors the authority's signed lookup\n"
	"                     answer of each service it hosts (refreshed every\n"
	"                     15 s) at http://ADDR:PORT/v1/lookup?host=H&port=P,\n"
	"                     for clients whose authorities are all down\n"
	"  --serve ADDR:PORT  where the object server listens\n"
	"  --public ADDR:PORT where other peers reach it (default: --serve)\n"
	"  --cache-max BYTES  chunk store quota (suffixes K, M, G; 0: none but\n"
	"                     the disk); default 80% of what the store's\n"
	"                     filesystem can hold (free + held) at start.  Chunks\n"
	"                     of committed or published snapshots are never\n"
	"                     evicted; a full disk evicts the others\n"
	"  --scrub-rate BYTES a background scrub re-hashes every stored chunk at\n"
	"                     this many bytes/s (default 8M; 0: off)\n"
	"  --no-verify-store  do not hash chunks read from the store (a benchmark\n"
	"                     knob: fedfs then serves whatever is on its disk)\n"
	"  --fsck             check every chunk under DIR (fedfs not running),\n"
	"                     drop bad ones, print a summary (--json: as JSON);\n"
	"                     exit status 1 if any was bad\n"
	"  -f                 stay in the foreground (logs on stderr; otherwise\n"
	"                     in DIR/fedfs.log, and a failure to start on\n"
	"                     stderr too)\n";

static int
parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s)
		return -1;
	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'G': case 'g': v <<= 30; end++; break;
	default: break;
	}
	if (*end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
make_dir(const char *parent, const char *name)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s%s", parent, name ? "/" : "",
		 name ? name : "");
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		log_error("cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	/* a file in its place would fail later, less clearly, and twice */
	if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
		log_error("%s: %s", path, strerror(ENOTDIR));
		return -1;
	}
	return 0;
}

/* Remove what an interrupted copy into publish/ or commit/ left. */
static void
clean_incoming(const char *state)
{
	char cmd[4300];

	snprintf(cmd, sizeof(cmd), "%s/incoming", state);
	if (make_dir(cmd, NULL) < 0)
		return;
	snprintf(cmd, sizeof(cmd), "find '%s/incoming' -mindepth 1 -delete",
		 state);
	if (system(cmd) != 0)
		log_warn("could not clean %s/incoming", state);
}

/* Fork; the parent waits for the child's one-byte verdict and exits with
 * it.  Returns the write end of the pipe in the child, which is still in
 * the terminal's session, with its stdin, stdout and stderr. */
static int
daemon_start(void)
{
	int p[2];
	pid_t pid;
	char verdict = 1;

	if (pipe(p) < 0 || (pid = fork()) < 0) {
		perror("fedfs: cannot go to the background");
		exit(1);
	}
	if (pid > 0) {
		int st;

		close(p[1]);
		if (read(p[0], &verdict, 1) == 1)
			exit(verdict);
		/* no verdict: killed before it could give one, so the
		 * line saying why has to be this one */
		if (waitpid(pid, &st, 0) == pid && WIFSIGNALED(st))
			log_error("died while starting: %s",
				  strsignal(WTERMSIG(st)));
		else
			log_error("died while starting");
		exit(1);
	}
	close(p[0]);
	return p[1];
}

/* Opened before the fork, so that not being able to is said like any other
 * failure to start. */
static int
daemon_open_log(const char *state)
{
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/fedfs.log", state);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		log_error("cannot open %s: %s", path, strerror(errno));
	return fd;
}

/*
 * Started: the log becomes stderr, and fedfs leaves the terminal.  The
 * log's own descriptor stays open (log_set_copy), and lines logged between
 * the dup2 and the log_set_copy are in the log twice rather than missing.
 */
static void
daemon_detach(int logfd)
{
	int fd;

	dup2(logfd, STDERR_FILENO);
	log_set_copy(-1, LOG_DEBUG);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		close(fd);
	}
	setsid();
}

static void
daemon_ready(int fd, char verdict)
{
	if (fd < 0)
		return;
	if (write(fd, &verdict, 1) != 1) {
		/* the parent is gone: nothing to tell */
	}
	close(fd);
}

/*
 * libfuse's messages, as fedfs's log lines (not its own bare lines on
 * stderr).  While the main thread creates the session and mounts, the last
 * one is kept instead: if that fails, it says why on the one line that
 * says so.
 */
static pthread_t libfuse_starter;
static bool libfuse_starting;
static char libfuse_why[512];

static void
libfuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char msg[512], *m = msg;
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	if (strncmp(m, "fuse: ", 6) == 0)
		m += 6;
	if (pthread_equal(pthread_self(), libfuse_starter) &&
	    libfuse_starting)
		snprintf(libfuse_why, sizeof(libfuse_why), "%s", m);
	else
		log_msg(level <= FUSE_LOG_ERR ? LOG_ERROR :
			level == FUSE_LOG_WARNING ? LOG_WARN :
			level == FUSE_LOG_DEBUG ? LOG_DEBUG : LOG_INFO,
			"fuse: %s", m);
}

/* Bytes as "12.3 MiB", for log lines. */
static const char *
fmt_mib(uint64_t n, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%.1f MiB", (double)n / 1048576);
	return buf;
}

/*
 * The store's quota: an explicit --cache-max (0: none), said if it is more
 * than the store's filesystem can hold; by default 80% of what it can hold
 * now (bytes free there plus bytes the store holds already), which leaves
 * the disk room for the rest of fedfs's state and for other programs.
 */
static void
quota_choose(struct fedfs *fs, bool given)
{
	uint64_t cap = store_capacity(fs->store);
	char a[32], b[32];

	if (!given) {
		fs->cache_max = cap / 10 * 8;
		log_info("chunk store quota %s: 80%% of the %s its filesystem "
			 "can hold (free + held; --cache-max to choose)",
			 fmt_mib(fs->cache_max, a, sizeof(a)),
			 fmt_mib(cap, b, sizeof(b)));
	} else if (fs->cache_max > cap && cap > 0) {
		log_warn("--cache-max %s is more than the %s the store's "
			 "filesystem can hold: the disk fills first, and then "
			 "fedfs evicts", fmt_mib(fs->cache_max, a, sizeof(a)),
			 fmt_mib(cap, b, sizeof(b)));
	}
	store_set_quota(fs->store, fs->cache_max);
}

/* fedfs --fsck: check every chunk of STATE's store, drop bad ones, say
 * what was found.  Returns the exit status: 0 all good, 1 some bad, 2
 * the store could not be opened. */
static int
fsck_main(const char *state, bool json)
{
	struct scrub_report r;
	struct store *s;
	struct err e;
	char a[32];

	if (store_open(state, 0, &s, &e) < 0) {
		log_error("chunk store: %s", e.msg);
		return 2;
	}
	scrub_all(s, &r);
	store_close(s);
	if (json) {
		json_t *j = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:o}",
		    "store", state, "chunks", (json_int_t)r.chunks,
		    "bytes", (json_int_t)r.bytes, "good", (json_int_t)r.good,
		    "bad", (json_int_t)r.bad,
		    "unreadable", (json_int_t)r.unreadable, "dropped",
		    r.bad_list ? r.bad_list : json_array());

		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
	} else {
		printf("fsck %s: %" PRIu64 " chunks (%s) checked: %" PRIu64
		       " good, %" PRIu64 " bad (dropped), %" PRIu64
		       " unreadable\n", state, r.chunks,
		       fmt_mib(r.bytes, a, sizeof(a)), r.good, r.bad,
		       r.unreadable);
		json_decref(r.bad_list);
	}
	return r.bad > 0 || r.unreadable > 0 ? 1 : 0;
}

/* Start the background scrubber (rate 0: none), and say so. */
static int
scrub_begin(struct fedfs *fs, uint64_t rate, bool verify)
{
	struct err e;

	if (!verify) {
		log_warn("--no-verify-store: chunks read from the store are not "
			 "hashed, nor scrubbed (a benchmark knob)");
		return 0;
	}
	if (rate == 0)
		return 0;
	if (scrub_start(fs->store, rate, &fs->scrubber, &e) < 0) {
		log_error("%s", e.msg);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "authority", required_argument, NULL, 'a' },
		{ "key", required_argument, NULL, 'k' },
		{ "authority-key", required_argument, NULL, 'K' },
		{ "allow-stale", no_argument, NULL, 'A' },
		{ "serve", required_argument, NULL, 'S' },
		{ "public", required_argument, NULL, 'p' },
		{ "cache-max", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "json-logs", no_argument, NULL, 'j' },
		{ "debug", no_argument, NULL, 'd' },
		{ "scrub-rate", required_argument, NULL, 'r' },
		{ "no-verify-store", no_argument, NULL, 'V' },
		{ "fsck", no_argument, NULL, 'F' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct fedfs fs;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *loop;
	bool foreground = false, json = false, have_key = false;
	bool quota_given = false, verify = true, fsck = false, fsck_json = false;
	uint64_t scrub_rate = SCRUB_RATE_DEFAULT;
	char *argv0 = argv[0], self[FETCH_ADDR_MAX];
	int c, rc = 1, ready = -1, logfd = -1;
	struct err e;

	if (config_apply("fedfs", opts, 1, &argc, &argv) < 0)
		return 2;
	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 's': fs.state_dir = optarg; break;
		case 'a': fs.authority = optarg; break;
		case 'k':
			if (keyfile_load(optarg, fs.seed, fs.pub, &e) < 0) {
				fprintf(stderr, "fedfs: %s\n", e.msg);
				return 1;
			}
			have_key = true;
			break;
		case 'K':
			if (signed_trust_key(optarg, fs.trust.key, &e) < 0) {
				fprintf(stderr, "fedfs: %s\n", e.msg);
				return 1;
			}
			fs.trust.on = true;
			break;
		case 'A': fs.trust.allow_stale = true; break;
		case 'S': fs.serve = optarg; break;
		case 'p': fs.public_addr = optarg; break;
		case 'c':
			if (parse_bytes(optarg, &fs.cache_max) < 0) {
				fprintf(stderr, "fedfs: --cache-max %s: expected "
					"a number of bytes (K, M, G allowed)\n",
					optarg);
				return 2;
			}
			quota_given = true;
			break;
		case 'r':
			if (parse_bytes(optarg, &scrub_rate) < 0) {
				fprintf(stderr, "fedfs: --scrub-rate %s: expected "
					"bytes per second (K, M, G allowed)\n",
					optarg);
				return 2;
			}
			break;
		case 'V': verify = false; break;
		case 'F': fsck = true; break;
		case 'J': fsck_json = true; break;
		case 'f': foreground = true; break;
		case 'j': json = true; break;
		case 'd': log_set_level(LOG_DEBUG); break;
		case 'h': fputs(usage, stdout); return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (fsck) {
		if (optind != argc || !fs.state_dir) {
			fprintf(stderr, "fedfs: --fsck needs --state DIR and "
				"nothing else to do (see fedfs --help)\n");
			return 2;
		}
		log_init("fedfs", json);
		if (crypto_init(&e) < 0) {
			log_error("%s", e.msg);
			return 2;
		}
		return fsck_main(fs.state_dir, fsck_json);
	}
	if (optind != argc - 1 || !fs.state_dir || !fs.authority ||
	    !fs.serve || !have_key) {
		fprintf(stderr, "fedfs: need MOUNTPOINT, --state, --authority, "
			"--key and --serve (see fedfs --help)\n");
		return 2;
	}
	if (fs.trust.allow_stale && !fs.trust.on) {
		fprintf(stderr, "fedfs: --allow-stale needs --authority-key "
			"(only signed answers expire)\n");
		return 2;
	}
	pthread_mutex_init(&fs.sources_lock, NULL);
	if ((fs.sources_held = json_object()) == NULL) {
		fprintf(stderr, "fedfs: out of memory\n");
		return 1;
	}
	if (authurls_parse(fs.authority, &fedfs_urls, &e) == -1) {
		fprintf(stderr, "fedfs: --authority: %s\n", e.msg);
		return 2;
	}
	fs.mountpoint = argv[optind];
	if (fs.public_addr == NULL)
		fs.public_addr = fs.serve;
	hex_encode(fs.pub, ED25519_PUB_LEN, fs.peer_id);
	log_init("fedfs", json);
	if (crypto_init(&e) < 0) {
		log_error("%s", e.msg);
		return 1;
	}
	if (make_dir(fs.state_dir, NULL) < 0)
		return 1;
	if (!foreground) {
		if ((logfd = daemon_open_log(fs.state_dir)) < 0)
			return 1;
		/* stderr stays the terminal's until daemon_detach, for
		 * warnings and errors */
		log_set_copy(logfd, LOG_WARN);
		ready = daemon_start();	/* before any thread starts */
	}
	libfuse_starter = pthread_self();	/* in the child, if one */
	fuse_set_log_func(libfuse_log);
	signal(SIGPIPE, SIG_IGN);
	proc_raise_nofile();
	fs_set_start_time(time(NULL));
	pthread_rwlock_init(&fs.lock, NULL);
	pthread_mutex_init(&fs.refresh_lock, NULL);
	{	/* the catalogue thread's waits are intervals */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&fs.refresh_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	fs.trusted = json_array();
	clean_incoming(fs.state_dir);

	if (store_open(fs.state_dir, fs.cache_max, &fs.store, &e) < 0) {
		log_error("chunk store: %s", e.msg);
		goto out;
	}
	store_set_verify(fs.store, verify);
	store_set_describe(fs.store, catalog_describe_chunk, &fs);
	if (objsrv_start(fs.serve, fs.store, fedfs_metrics, &fs, &fs.objsrv,
			 &e) < 0) {
		log_error("%s", e.msg);
		goto out_store;
	}
	if (fs.trust.on) {	/* mirror signed answers: only with the key */
		if ((fs.mirror = mirror_new(fs.trust.key)) == NULL) {
			log_error("out of memory");
			goto out_objsrv;
		}
		objsrv_set_lookup(fs.objsrv, mirror_feed_serve);
	}
	snprintf(self, sizeof(self), "%s", fs.public_addr);
	if (authlink_start(&fs) < 0) {
		log_error("cannot start the thread that tells the authority");
		goto out_objsrv;
	}
	if (fetcher_start(fs.store, catalog_sources, &fs, self, &fs.fetcher,
			  &e) < 0) {
		log_error("%s", e.msg);
		goto out_link;
	}
	fetcher_on_liar(fs.fetcher, authlink_liar, &fs);
	catalog_load(&fs);
	pins_load(&fs);
	quota_choose(&fs, quota_given);
	store_enforce_quota(fs.store);	/* now that it knows what stays */
	if (scrub_begin(&fs, scrub_rate, verify) < 0)
		goto out_fetcher;

	fuse_opt_add_arg(&args, argv0);
	fuse_opt_add_arg(&args, "-o");
	fuse_opt_add_arg(&args, "fsname=fedfs,subtype=fed,allow_other,"
			 "default_permissions");
	libfuse_starting = true;
	fs.session = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &fs);
	if (fs.session == NULL) {
		libfuse_starting = false;
		log_error("cannot start the FUSE session%s%s",
			  libfuse_why[0] ? ": " : "", libfuse_why);
		goto out_fetcher;
	}
	if (fuse_set_signal_handlers(fs.session) != 0 ||
	    fuse_session_mount(fs.session, fs.mountpoint) != 0) {
		libfuse_starting = false;
		log_error("cannot mount on %s%s%s", fs.mountpoint,
			  libfuse_why[0] ? ": " : "", libfuse_why);
		goto out_session;
	}
	libfuse_starting = false;
	if (libfuse_why[0])	/* said, but mounted all the same */
		log_warn("fuse: %s", libfuse_why);
	fs_tune_readahead(fs.mountpoint);
	if (catalog_start(&fs) < 0) {
		log_error("cannot start the catalogue thread");
		goto out_unmount;
	}
	if (!foreground)
		daemon_detach(logfd);
	log_info("mounted on %s; state %s; objects served at %s (port %u); "
		 "authority %s", fs.mountpoint, fs.state_dir, fs.serve,
		 objsrv_port(fs.objsrv), fs.authority);
	objsrv_set_status(fs.objsrv, fedfs_status_text);	/* all is up now */
	daemon_ready(ready, 0);
	ready = -1;

	loop = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(loop, 0);
	fuse_loop_cfg_set_max_threads(loop, 32);
	fuse_loop_cfg_set_idle_threads(loop, 8);
	rc = fuse_session_loop_mt(fs.session, loop) != 0;
	fuse_loop_cfg_destroy(loop);
	log_info("unmounting %s", fs.mountpoint);
	catalog_stop(&fs);
out_unmount:
	fuse_session_unmount(fs.session);
	fuse_remove_signal_handlers(fs.session);
out_session:
	fuse_session_destroy(fs.session);
out_fetcher:
	scrub_stop(fs.scrubber);
	fetcher_stop(fs.fetcher);
out_link:
	authlink_stop(&fs);
out_objsrv:
	objsrv_stop(fs.objsrv);
	mirror_free(fs.mirror);
out_store:
	store_close(fs.store);
out:
	daemon_ready(ready, 1);
	fuse_opt_free_args(&args);
	explicit_bzero(fs.seed, sizeof(fs.seed));
	return rc;
}
