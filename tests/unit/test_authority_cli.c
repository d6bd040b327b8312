/*
 * test_authority_cli.c - the `fed` subcommands that talk to the authority,
 * run as bin/fed against a real authority: register, trust add / list /
 * revoke, lookup (from the authority, and the fallback to the system
 * resolver), hosts, report; exit status 0 on success, non-zero with one
 * line on stderr on failure.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/authfix.h"
#include "lib/testutil.h"

extern char **environ;

static struct authfix F;

static void
setup(void)
{
	authfix_start(&F, NULL);
}

static void
teardown(void)
{
	authfix_stop(&F);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 60);

struct run {
	int status;
	char out[16384];
	char err[4096];
};

/* Read both pipes to EOF. */
static void
run_collect(int ofd, int efd, struct run *r)
{
	size_t on = 0, en = 0;
	struct pollfd p[2] = { { ofd, POLLIN, 0 }, { efd, POLLIN, 0 } };
	int open_fds = 2;

	while (open_fds > 0) {
		cr_assert_geq(poll(p, 2, 20000), 1, "fed did not finish");
		for (int i = 0; i < 2; i++) {
			char *buf = i == 0 ? r->out : r->err;
			size_t *n = i == 0 ? &on : &en;
			size_t cap = i == 0 ? sizeof(r->out) : sizeof(r->err);
			ssize_t got;

			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			got = read(p[i].fd, buf + *n, cap - 1 - *n);
			if (got <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_fds--;
			} else {
				*n += (size_t)got;
			}
		}
	}
	r->out[on] = '\0';
	r->err[en] = '\0';
}

/* Run bin/fed with args (NULL-terminated). */
static void
fed(struct run *r, ...)
{
	const char *bindir = getenv("BINDIR");
	char *bin, *argv[32];
	posix_spawn_file_actions_t fa;
	int op[2], ep[2], n = 1;
	pid_t pid;
	va_list ap;

	bin = tu_path(bindir ? bindir : "bin", "fed");
	argv[0] = bin;
	va_start(ap, r);
	while (n < 31 && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	cr_assert_eq(pipe(op), 0);
	cr_assert_eq(pipe(ep), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, op[1], 1);
	posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
	posix_spawn_file_actions_addclose(&fa, op[0]);
	posix_spawn_file_actions_addclose(&fa, ep[0]);
	cr_assert_eq(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(op[1]);
	close(ep[1]);
	run_collect(op[0], ep[0], r);
	cr_assert_eq(waitpid(pid, &r->status, 0), pid);
	r->status = WIFEXITED(r->status) ? WEXITSTATUS(r->status) : 128;
	free(bin);
}

/* Write k's seed as a key file (0600); returns the path (malloc'd). */
static char *
keyfile(const struct tkey *k, const char *name)
{
	char hex[2 * ED25519_SEED_LEN + 2], *path = tu_path(F.dir, name);

	hex_encode(k->seed, ED25519_SEED_LEN, hex);
	strcat(hex, "\n");
	tu_write_file(path, hex, strlen(hex));
	cr_assert_eq(chmod(path, 0600), 0);
	return path;
}

/* One line on stderr, non-zero status. */
static void
expect_failure(const struct run *r, const char *words)
{
	cr_expect_neq(r->status, 0);
	cr_expect(strstr(r->err, words) != NULL, "stderr '%s' lacks '%s'",
		  r->err, words);
	cr_expect_eq(strchr(r->err, '\n'), r->err + strlen(r->err) - 1,
		     "stderr is not one line: '%s'", r->err);
}

Test(cli, register_trust_lookup_hosts_report_revoke)
{
	struct tkey owner, p1, p2;
	char base[65], kernel[65], id[65], *kowner, *kadmin, *kp1, *file;
	char sha[65];
	uint8_t data[9000];
	struct run r;

	tkey_new(&owner);
	tkey_new(&p1);
	tkey_new(&p2);
	kowner = keyfile(&owner, "owner.key");
	kp1 = keyfile(&p1, "p1.key");
	kadmin = keyfile(&F.admin, "admin.key");

	fed(&r, "register", "--authority", F.url, "--key", kowner, "--addr",
	    "10.0.0.1:7000", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "registered peer") != NULL, "%s", r.out);
	fed(&r, "register", "--authority", F.url, "--key", kowner, "--addr",
	    "10.0.0.1:7001", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "updated peer") != NULL, "%s", r.out);
	fed(&r, "register", "--authority", F.url, "--key", kp1, "--addr",
	    "10.0.0.2:7000", "--json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"created\":true") != NULL, "%s", r.out);
	af_register(&F, &p2, "10.0.0.3:7000");

	/* trust a file through the CLI; its hash is what sha256 says */
	tu_fill(data, sizeof(data), 42);
	file = tu_path(F.dir, "kernel.bin");
	tu_write_file(file, data, sizeof(data));
	{
		uint8_t h[SHA256_LEN];

		sha256(data, sizeof(data), h);
		hex_encode(h, SHA256_LEN, sha);
	}
	fed(&r, "trust", "add", file, "--kind", "kernel", "--chunk-size",
	    "4096", "--authority", F.url, "--key", kadmin, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, sha) != NULL, "%s", r.out);
	/* a non-admin may not */
	fed(&r, "trust", "add", file, "--kind", "base", "--authority", F.url,
	    "--key", kp1, NULL);
	expect_failure(&r, "only the admin key");
	fed(&r, "trust", "list", "--authority", F.url, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, sha) != NULL, "%s", r.out);

	memcpy(kernel, sha, sizeof(kernel));
	af_trust(&F, "base", base);
	cr_assert_eq(af_announce(&F, &owner, &owner, "www.example.org", 80, 1,
				 base, kernel, id, NULL), 201);
	af_commit_up(&F, &p1, id, "192.0.2.1", 40001);
	af_commit_up(&F, &p2, id, "192.0.2.2", 40002);

	fed(&r, "lookup", "www.example.org:80", "--authority", F.url, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strncmp(r.out, "source: authority", 17) == 0, "%s", r.out);
	cr_assert(strstr(r.out, "192.0.2.1 40001") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "192.0.2.2 40002") != NULL, "%s", r.out);
	fed(&r, "lookup", "www.example.org:80", "--authority", F.url, "--json",
	    NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"source\":\"authority\"") != NULL, "%s",
		  r.out);

	/* the owner reports p1 */
	fed(&r, "report", "www.example.org:80", p1.hex, "--reason",
	    "defaced page", "--authority", F.url, "--key", kowner, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "reported") != NULL, "%s", r.out);
	fed(&r, "report", "www.example.org:80", p2.hex, "--reason", "spite",
	    "--authority", F.url, "--key", kp1, NULL);
	expect_failure(&r, "only the owner");
	fed(&r, "lookup", "www.example.org:80", "--authority", F.url, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "192.0.2.1") == NULL, "%s", r.out);
	cr_assert(strstr(r.out, "192.0.2.2 40002") != NULL, "%s", r.out);

	fed(&r, "hosts", "www.example.org:80", "--authority", F.url, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, p2.hex) != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "reported") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "defaced page") != NULL, "%s", r.out);
	fed(&r, "hosts", "nope.example.org:80", "--authority", F.url, NULL);
	expect_failure(&r, "unknown service");

	/* revoke the kernel: nobody serves any more */
	fed(&r, "trust", "revoke", kernel, "--authority", F.url, "--key",
	    kadmin, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	fed(&r, "lookup", "www.example.org:80", "--authority", F.url, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "0 peers") != NULL, "%s", r.out);

	free(kowner);
	free(kp1);
	free(kadmin);
	free(file);
}

Test(cli, lookup_falls_back_to_the_system_resolver)
{
	struct run r;

	/* "localhost" resolves through /etc/hosts everywhere */
	fed(&r, "lookup", "localhost:8080", "--authority", F.url, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strncmp(r.out, "source: dns", 11) == 0, "%s", r.out);
	cr_assert(strstr(r.out, " 8080") != NULL, "%s", r.out);
	fed(&r, "lookup", "localhost:8080", "--authority", F.url, "--json",
	    NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"source\":\"dns\"") != NULL, "%s", r.out);
	fed(&r, "lookup", "no-such-host.invalid:80", "--authority", F.url,
	    NULL);
	expect_failure(&r, "unknown to the authority, and DNS");
}

Test(cli, usage_and_transport_errors)
{
	struct run r;

	fed(&r, "lookup", "www.example.org:80", NULL);
	cr_expect_eq(r.status, 2);
	fed(&r, "register", "--authority", F.url, NULL);
	cr_expect_eq(r.status, 2);
	fed(&r, "lookup", "www.example.org:80", "--authority",
	    "http://127.0.0.1:1", NULL);
	expect_failure(&r, "127.0.0.1:1");
	fed(&r, "lookup", "WWW.Example.org:80", "--authority", F.url, NULL);
	cr_expect_neq(r.status, 0);
	fed(&r, "trust", "--help", NULL);
	cr_expect_eq(r.status, 0);
	cr_expect(strstr(r.out, "usage: fed trust") != NULL);
}

Test(cli, key_rotate_revoke_confirm_show)
{
	struct af_world w;
	struct tkey next, mine;
	char *kold, *knext, *kadmin;
	json_t *reply;
	struct run r;
	long st;

	af_world_make(&F, &w, 1);
	tkey_new(&next);
	tkey_new(&mine);
	af_register(&F, &mine, "10.0.0.1:7000");
	kold = keyfile(&w.owner, "old.key");
	knext = keyfile(&next, "next.key");
	kadmin = keyfile(&F.admin, "admin.key");

	fed(&r, "key", "rotate", "--authority", F.url, "--key", kold, NULL);
	expect_failure(&r, "rotate needs --new");
	fed(&r, "key", "rotate", "--authority", F.url, "--key", kold, "--new",
	    knext, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "rotated") != NULL, "%s", r.out);
	cr_expect(strstr(r.out, next.hex) != NULL, "%s", r.out);
	sleep(1);	/* another record (issued_at), not a retry of this one */
	fed(&r, "key", "rotate", "--authority", F.url, "--key", kold, "--new",
	    knext, NULL);
	expect_failure(&r, "a key changes only once");
	st = af_announce(&F, &w.owner, &w.owner, "www.example.org", 80, 2,
			 w.base, w.kernel, NULL, &reply);
	af_expect(st, reply, 403, "was rotated to");

	/* the admin: next is stolen; mine takes over */
	fed(&r, "key", "revoke", next.hex, "--authority", F.url, "--key",
	    knext, NULL);
	expect_failure(&r, "only the admin key");
	fed(&r, "key", "revoke", next.hex, "--authority", F.url, "--key",
	    kadmin, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "frozen") != NULL, "%s", r.out);
	fed(&r, "key", "confirm", next.hex, "--authority", F.url, "--key",
	    kadmin, NULL);
	expect_failure(&r, "--successor");
	fed(&r, "key", "confirm", next.hex, "--successor", mine.hex,
	    "--authority", F.url, "--key", kadmin, "--json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "\"current\":\"") != NULL, "%s", r.out);
	fed(&r, "key", "show", w.owner.hex, "--authority", F.url, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, mine.hex) != NULL, "%s", r.out);
	fed(&r, "key", "show", "nothex", "--authority", F.url, NULL);
	expect_failure(&r, "nothex");
	st = af_announce(&F, &mine, &mine, "www.example.org", 80, 2, w.base,
			 w.kernel, NULL, &reply);
	af_expect(st, reply, 201, NULL);
	free(kold);
	free(knext);
	free(kadmin);
}
