/*
 * cmd_doctor.c - `fed doctor`: is this host ready to be a peer (or an
 * authority's client)?  One run checks FUSE, /dev/net/tun, namespaces,
 * cgroups, that the trusted UML kernel boots here (machine_probe: the AMX
 * case), the authority reachable and the clock's skew against its Date
 * header, and the disk space for the store; one line each, saying what is
 * fine, or what is wrong and what to do.  --json for scripts.
 *
 * FED_DOCTOR_DEV (default /dev) moves the device paths, so that a test can
 * break one check on purpose.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <strings.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <linux/magic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli/cli.h"
#include "common/authurls.h"
#include "common/proc.h"
#include "common/sigreq.h"
#include "common/timefmt.h"
#include "machine/machine.h"

static const char doctor_help[] =
	"usage: fed doctor [--authority URL[,URL...]] [--state DIR]\n"
	"                  [--kernel FILE] [--json]\n"
	"\n"
	"Check this host's readiness, one line per check: FUSE (/dev/fuse,\n"
	"fusermount3), /dev/net/tun, namespaces, cgroup v2 controllers, that\n"
	"the UML kernel (default " FED_UML_KERNEL ") boots here, the\n"
	"authority (default $FED_AUTHORITY; each URL of a list) reachable and\n"
	"the clock's skew against it, and free space where the store lives\n"
	"(--state, default /var/lib/fed).  Each failing line says what to do.\n"
	"Exit status 0 if nothing failed, 1 otherwise.\n";

#define DOCTOR_DISK_MIN (2ull << 30)	/* bytes free for a store */
#define DOCTOR_SKEW_WARN 5		/* seconds */

enum verdict { V_OK, V_WARN, V_FAIL, V_SKIP };
static const char *const verdict_name[] = { "ok", "warn", "FAIL", "skip" };

struct check {
	const char *name;
	enum verdict v;
	char detail[256];
	char fix[256];
	double seconds;
};

struct doctor {
	const char *authority, *state, *kernel, *dev;
	struct check checks[10];
	int n;
};

static struct check *
add(struct doctor *d, const char *name)
{
	struct check *c = &d->checks[d->n++];

	memset(c, 0, sizeof(*c));
	c->name = name;
	return c;
}

static void
set(struct check *c, enum verdict v, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
set(struct check *c, enum verdict v, const char *fix, const char *fmt, ...)
{
	va_list ap;

	c->v = v;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	snprintf(c->fix, sizeof(c->fix), "%s", fix != NULL ? fix : "");
}

/* The first PATH directory holding an executable name, in out. */
static int
in_path(const char *name, char out[PATH_MAX])
{
	const char *p = getenv("PATH");
	char dirs[4096], *save = NULL;

	snprintf(dirs, sizeof(dirs), "%s", p != NULL ? p : "/usr/bin:/bin");
	for (char *dir = strtok_r(dirs, ":", &save); dir != NULL;
	     dir = strtok_r(NULL, ":", &save)) {
		snprintf(out, PATH_MAX, "%s/%s", dir, name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

static void
check_fuse(struct doctor *d)
{
	struct check *c = add(d, "fuse");
	char dev[PATH_MAX], fm[PATH_MAX];
	int fd;

	snprintf(dev, sizeof(dev), "%s/fuse", d->dev);
	if ((fd = open(dev, O_RDWR | O_CLOEXEC)) < 0) {
		set(c, V_FAIL, "modprobe fuse; in a container, pass the device "
		    "(--device /dev/fuse)", "cannot open %s: %s", dev,
		    strerror(errno));
		return;
	}
	close(fd);
	if (in_path("fusermount3", fm) < 0) {
		set(c, V_FAIL, "apt-get install fuse3", "%s opens, but no "
		    "fusermount3 in PATH", dev);
		return;
	}
	set(c, V_OK, NULL, "%s opens; %s", dev, fm);
}

static void
check_tun(struct doctor *d)
{
	struct check *c = add(d, "tun");
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
	char dev[PATH_MAX];
	int fd;

	snprintf(dev, sizeof(dev), "%s/net/tun", d->dev);
	if ((fd = open(dev, O_RDWR | O_CLOEXEC)) < 0) {
		set(c, V_FAIL, "modprobe tun; in a container, pass the device "
		    "(--device /dev/net/tun) and CAP_NET_ADMIN",
		    "cannot open %s: %s", dev, strerror(errno));
		return;
	}
	/* a tap that goes away with the descriptor: the real thing */
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		set(c, V_FAIL, "run as root (CAP_NET_ADMIN) on a kernel with "
		    "CONFIG_TUN", "%s opens but makes no tap: %s", dev,
		    strerror(errno));
		close(fd);
		return;
	}
	close(fd);
	set(c, V_OK, NULL, "%s makes taps", dev);
}

static void
check_namespaces(struct doctor *d)
{
	static const int flags = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWUTS |
				 CLONE_NEWIPC | CLONE_NEWPID;
	struct check *c = add(d, "namespaces");
	int st = 0;
	pid_t pid = fork();

	if (pid == 0)
		_exit(unshare(flags) == 0 ? 0 : errno);
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st)) {
		set(c, V_FAIL, "see the system log", "cannot fork to try");
		return;
	}
	if (WEXITSTATUS(st) != 0) {
		set(c, V_FAIL, "run as root; in a container, allow unshare "
		    "(e.g. --privileged or a seccomp profile permitting it)",
		    "unshare(net, mount, uts, ipc, pid) fails: %s",
		    strerror(WEXITSTATUS(st)));
		return;
	}
	set(c, V_OK, NULL, "unshare of net, mount, uts, ipc, pid works");
}

static int
has_word(const char *list, const char *w)
{
	size_t n = strlen(w);

	for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') &&
		    (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

/* No v2 root: the vmrunner also runs on v1 memory and pids hierarchies. */
static void
check_cgroup_v1(struct check *c)
{
	struct statfs m, p;

	if (statfs("/sys/fs/cgroup/memory", &m) == 0 &&
	    statfs("/sys/fs/cgroup/pids", &p) == 0 &&
	    m.f_type == CGROUP_SUPER_MAGIC && p.f_type == CGROUP_SUPER_MAGIC) {
		set(c, V_OK, NULL, "cgroup v1 memory and pids hierarchies (v2 "
		    "preferred: systemd.unified_cgroup_hierarchy=1)");
		return;
	}
	set(c, V_FAIL, "boot with systemd.unified_cgroup_hierarchy=1 (cgroup "
	    "v2 with memory and pids at /sys/fs/cgroup)", "no cgroup v2 root "
	    "and no v1 memory and pids hierarchies");
}

static void
check_cgroups(struct doctor *d)
{
	struct check *c = add(d, "cgroups");
	char buf[512] = "";
	FILE *f = fopen("/sys/fs/cgroup/cgroup.controllers", "re");

	if (f == NULL) {
		check_cgroup_v1(c);
		return;
	}
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	if (!has_word(buf, "memory") || !has_word(buf, "pids"))
		set(c, V_FAIL, "enable the memory and pids controllers "
		    "(cgroup_enable=memory on the kernel command line)",
		    "cgroup v2 controllers '%s' lack memory or pids", buf);
	else if (!has_word(buf, "cpu"))
		set(c, V_WARN, "enable the cpu controller for --cpu-weight",
		    "controllers '%s': no cpu (VMs get no CPU weights)", buf);
	else
		set(c, V_OK, NULL, "cgroup v2 with %s", buf);
}

static void
rm_tree(char *dir)
{
	char *rm[] = { "rm", "-rf", dir, NULL };

	(void)proc_run(rm, -1, -1);
}

static void
check_kernel(struct doctor *d)
{
	struct check *c = add(d, "kernel");
	char dir[] = "/tmp/fed-doctor.XXXXXX";
	struct err e;

	if (access(d->kernel, X_OK) < 0) {
		set(c, V_FAIL, "build it: bash scripts/deps.sh (or "
		    "scripts/mkumlkernel.sh)", "no kernel %s: %s", d->kernel,
		    strerror(errno));
		return;
	}
	if (mkdtemp(dir) == NULL) {
		set(c, V_FAIL, "make /tmp writable", "mkdtemp: %s",
		    strerror(errno));
		return;
	}
	if (machine_probe(d->kernel, dir, 32, 30, &e) < 0)
		set(c, V_FAIL, "use fed's own kernel (scripts/mkumlkernel.sh), "
		    "which saves the host's FPU state (AMX) in its size",
		    "%s does not boot here: %s", d->kernel, e.msg);
	else
		set(c, V_OK, NULL, "%s boots here", d->kernel);
	rm_tree(dir);
}

/* libcurl header callback: keep the Date header's time. */
static size_t
date_header(char *buf, size_t size, size_t n, void *arg)
{
	time_t *t = arg;
	size_t len = size * n;
	char line[256];

	if (len > 5 && len < sizeof(line) && strncasecmp(buf, "Date:", 5) == 0) {
		memcpy(line, buf + 5, len - 5);
		line[len - 5] = '\0';
		*t = curl_getdate(line, NULL);
	}
	return len;
}

/* GET URL/healthz: 0 with the HTTP status and Date, or -1 with why. */
static int
healthz(const char *base, long *status, time_t *date, double *rtt,
	char err[CURL_ERROR_SIZE])
{
	char url[2048];
	CURL *h = curl_easy_init();
	CURLcode rc;

	if (h == NULL)
		return snprintf(err, CURL_ERROR_SIZE, "out of memory"), -1;
	snprintf(url, sizeof(url), "%.*s/healthz",
		 (int)strcspn(base, ","), base);	/* the first of a list */
	err[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, date_header);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &(time_t){ 0 });
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, date_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, date);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, rtt);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK && err[0] == '\0')
		snprintf(err, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
	return rc == CURLE_OK ? 0 : -1;
}

static void
check_skew(struct check *c, time_t date, double rtt)
{
	long skew;

	if (date <= 0) {
		set(c, V_WARN, "put the authority behind nothing that strips "
		    "Date", "the authority's reply has no Date header");
		return;
	}
	skew = (long)(time(NULL) - date);
	if (labs(skew) > SIGREQ_MAX_SKEW)
		set(c, V_FAIL, "run an NTP client (systemd-timesyncd, chrony)",
		    "this clock is %+lds off the authority's: signed requests "
		    "are refused beyond %ds", skew, SIGREQ_MAX_SKEW);
	else if (labs(skew) > DOCTOR_SKEW_WARN + (long)rtt)
		set(c, V_WARN, "run an NTP client (systemd-timesyncd, chrony)",
		    "this clock is %+lds off the authority's (refused beyond "
		    "%ds)", skew, SIGREQ_MAX_SKEW);
	else
		set(c, V_OK, NULL, "within %lds of the authority's clock "
		    "(1 s resolution)", labs(skew) + 1);
}

/* Every URL of the authority list asked for /healthz: OK if all answer,
 * WARN naming those that do not while one does, FAIL if none does; the
 * clock against the first that answered. */
static void
check_authority(struct doctor *d)
{
	struct check *c = add(d, "authority"), *k = add(d, "clock");
	char err[CURL_ERROR_SIZE], down[1024] = "";
	struct authurls urls;
	size_t up = 0, first = 0;
	time_t date = 0, first_date = 0;
	double rtt = 0, first_rtt = 0;
	long status = 0;
	struct err e;

	if (d->authority == NULL) {
		set(c, V_SKIP, "give --authority URL or set FED_AUTHORITY",
		    "no authority named");
		set(k, V_SKIP, "give --authority URL or set FED_AUTHORITY",
		    "no authority to compare the clock with");
		return;
	}
	if (authurls_parse(d->authority, &urls, &e) < 0) {
		set(c, V_FAIL, "give --authority URL1,URL2,...", "%s", e.msg);
		set(k, V_SKIP, "name the authority first", "no authority");
		return;
	}
	for (size_t i = 0; i < urls.n; i++) {
		size_t n = strlen(down);

		err[0] = '\0';
		if (healthz(urls.url[i], &status, &date, &rtt, err) == 0 &&
		    status == 200) {
			if (up++ == 0) {
				first = i;
				first_date = date;
				first_rtt = rtt;
			}
			continue;
		}
		snprintf(down + n, sizeof(down) - n, "%s%s/healthz: %.120s",
			 n ? "; " : "", urls.url[i],
			 err[0] != '\0' ? err : "not 200");
	}
	if (up == 0) {
		set(c, V_FAIL, "check the URL, that fed-authority runs there "
		    "and that no firewall is in the way", "%s", down);
		set(k, V_SKIP, "reach the authority first",
		    "no reply to compare the clock with");
		return;
	}
	if (up < urls.n)
		set(c, V_WARN, "check the ones that do not answer: clients go "
		    "on to the next URL, at the cost of a timeout", "%zu of %zu "
		    "answer; %s", up, urls.n, down);
	else
		set(c, V_OK, NULL, "%s answers /healthz in %.0f ms%s",
		    urls.url[first], first_rtt * 1000,
		    urls.n > 1 ? " (and every other URL listed)" : "");
	check_skew(k, first_date, first_rtt);
}

static void
check_disk(struct doctor *d)
{
	struct check *c = add(d, "disk");
	char path[PATH_MAX], *slash, fix[256], nb[32];
	struct statvfs sv;
	unsigned long long avail;

	/* the state dir, or the nearest directory above it that exists */
	snprintf(path, sizeof(path), "%s", d->state);
	while (statvfs(path, &sv) < 0) {
		if ((slash = strrchr(path, '/')) == NULL || slash == path) {
			snprintf(path, sizeof(path), "/");
			if (statvfs(path, &sv) < 0) {
				set(c, V_FAIL, "see the system log", "statvfs "
				    "/: %s", strerror(errno));
				return;
			}
			break;
		}
		*slash = '\0';
	}
	avail = (unsigned long long)sv.f_bavail * sv.f_frsize;
	cli_bytes(avail, nb);
	snprintf(fix, sizeof(fix), "free space under %.150s, or give fedfs "
		 "--state on a larger filesystem", path);
	if (avail < DOCTOR_DISK_MIN)
		set(c, V_FAIL, fix, "%s free for the store at %s (want 2 GiB)",
		    nb, path);
	else
		set(c, V_OK, NULL, "%s free for the store at %s", nb, path);
}

static void
run_checks(struct doctor *d)
{
	static void (*const checks[])(struct doctor *) = {
		check_fuse, check_tun, check_namespaces, check_cgroups,
		check_kernel, check_authority, check_disk,
	};

	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		int first = d->n;
		double t0 = mono_now();

		checks[i](d);
		for (int j = first; j < d->n; j++)
			d->checks[j].seconds = (mono_now() - t0) / (d->n - first);
	}
}

static int
report(const struct doctor *d, int json)
{
	json_t *arr = json_array(), *o;
	int failed = 0;

	for (int i = 0; i < d->n; i++) {
		const struct check *c = &d->checks[i];

		failed |= c->v == V_FAIL;
		if (!json) {
			printf("%-4s  %-10s  %s%s%s\n", verdict_name[c->v],
			       c->name, c->detail, c->fix[0] ? "; to do: " : "",
			       c->fix);
			continue;
		}
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:f}",
			"check", c->name, "status", verdict_name[c->v],
			"detail", c->detail, "fix", c->fix, "seconds",
			c->seconds));
	}
	if (json) {
		o = json_pack("{s:b,s:o}", "ok", !failed, "checks", arr);
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
	} else {
		json_decref(arr);
	}
	return failed ? 1 : 0;
}

int
cmd_doctor(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "authority", required_argument, NULL, 'a' },
		{ "state", required_argument, NULL, 's' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct doctor d = { .authority = getenv("FED_AUTHORITY"),
			    .state = "/var/lib/fed", .kernel = FED_UML_KERNEL,
			    .dev = getenv("FED_DOCTOR_DEV") };
	int ch, json = 0;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': d.authority = optarg; break;
		case 's': d.state = optarg; break;
		case 'k': d.kernel = optarg; break;
		case 'j': json = 1; break;
		case 'h': fputs(doctor_help, stdout); return 0;
		default: return cli_usage("doctor", "bad option");
		}
	}
	if (optind != argc)
		return cli_usage("doctor", "no arguments besides the options");
	if (d.dev == NULL || *d.dev == '\0')
		d.dev = "/dev";
	if (d.authority != NULL && *d.authority == '\0')
		d.authority = NULL;
	run_checks(&d);
	return report(&d, json);
}
