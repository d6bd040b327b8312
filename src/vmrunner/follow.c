/*
 * follow.c - a peer follows its owner: when the mount's services/ names a
 * newer version of a service this peer runs, the vmrunner commits to it
 * too (a copy into commit/), boots it like any other commit, and hands it
 * the service once it is up (supervise.c).
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fedsnap.h"
#include "common/log.h"

#include "vmrunner/runner.h"

/*
 * Copy src (a delta in the mount's deltas/) into commit/ as <id>.fedsnap:
 * fedfs checks it on close and commits to it at the authority, and the next
 * scan boots it like any other.  Returns 0, or -1 with e set.
 */
static int
runner_copy_commit(struct runner *r, const char *src, const char *id,
		   struct err *e)
{
	char dst[PATH_MAX], buf[1 << 16];
	int in, out, rc = -1;
	ssize_t n;

	snprintf(dst, sizeof(dst), "%s/commit/%.64s.fedsnap", r->cfg->fed, id);
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0)
		return err_sys(e, "%s", src);
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0644)) < 0) {
		err_sys(e, "%s", dst);
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	if (n != 0)
		err_sys(e, "copying %s", src);
	else
		rc = 0;
	close(in);
	/* fedfs checks the snapshot when the file is closed */
	if (close(out) < 0 && rc == 0)
		rc = err_sys(e, "%s: refused by fedfs", dst);
	if (rc < 0)
		unlink(dst);
	return rc;
}

/* A version we failed to follow (the authority refused or was away) is
 * tried again a minute later, not at every scan. */
static bool
runner_follow_wait(struct runner *r, const char *id)
{
	for (size_t i = 0; i < ARRAY_LEN(r->follow_failed); i++)
		if (strncmp(r->follow_failed[i].id, id, 64) == 0)
			return mono_now() < r->follow_failed[i].retry_at;
	return false;
}

static void
runner_follow_failed(struct runner *r, const char *id)
{
	size_t slot = 0;

	for (size_t i = 0; i < ARRAY_LEN(r->follow_failed); i++)
		if (r->follow_failed[i].retry_at <
		    r->follow_failed[slot].retry_at)
			slot = i;	/* the oldest entry makes room */
	snprintf(r->follow_failed[slot].id, sizeof(r->follow_failed[slot].id),
		 "%.64s", id);
	r->follow_failed[slot].retry_at = mono_now() + RUNNER_FOLLOW_RETRY_S;
}

/*
 * A peer that committed to a service follows its owner: when the mount's
 * services/<host:port> names a newer version than the newest this peer
 * runs, commit to that one too.  The vmrunner boots it at the next scan
 * and, once it is up, hands it the service's host port and stops the old
 * version (runner_vm_up).  fedfs and the authority refuse anything older,
 * so this only ever moves forward.
 */
void
runner_follow(struct runner *r)
{
	char link[PATH_MAX], target[PATH_MAX], src[PATH_MAX];
	const char *base;
	struct fedsnap s;
	struct err e;
	ssize_t n;
	DIR *dp;

	if (r->cfg->no_follow)
		return;
	/* a listing makes fedfs ask the authority for news (at most every
	 * 2 s) */
	snprintf(link, sizeof(link), "%s/services", r->cfg->fed);
	if ((dp = opendir(link)) != NULL)
		closedir(dp);
	for (size_t i = 0; i < r->nvms; i++) {
		struct vm *v = r->vms[i];
		bool newest = true, known = false;

		/* once per service: from its newest version here */
		for (size_t k = 0; k < r->nvms; k++)
			if (k != i && strcmp(r->vms[k]->service, v->service) == 0 &&
			    r->vms[k]->version > v->version)
				newest = false;
		if (!newest)
			continue;
		snprintf(link, sizeof(link), "%s/services/%s", r->cfg->fed,
			 v->service);
		if ((n = readlink(link, target, sizeof(target) - 1)) < 0)
			continue;
		target[n] = '\0';
		base = strrchr(target, '/');
		base = base ? base + 1 : target;
		if (strlen(base) != 64 + strlen(".fedsnap") ||
		    strcmp(base + 64, ".fedsnap") != 0)
			continue;
		for (size_t k = 0; k < r->nvms; k++)
			if (strncmp(r->vms[k]->id, base, 64) == 0)
				known = true;
		if (known || runner_held_find(r, base) != NULL ||
		    runner_follow_wait(r, base))
			continue;
		snprintf(src, sizeof(src), "%s/deltas/%s", r->cfg->fed, base);
		if (fedsnap_open(src, &s, &e) < 0) {
			log_warn("%s: newer version %.8s..: %s", v->service, base,
				 e.msg);
			continue;
		}
		if (s.m.version > v->version) {
			log_info("%s: following the owner from version %" PRId64
				 " to %" PRId64 " (%.8s..)", v->service,
				 v->version, s.m.version, base);
			if (runner_copy_commit(r, src, base, &e) < 0) {
				log_warn("%s: cannot commit version %" PRId64
					 ": %s (trying again in %.0f s)",
					 v->service, s.m.version, e.msg,
					 RUNNER_FOLLOW_RETRY_S);
				runner_follow_failed(r, base);
			}
		}
		fedsnap_close(&s);
	}
}
