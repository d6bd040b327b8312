/*
 * fuzz_util.h - helpers shared by the libFuzzer targets (header only: the
 * Makefile compiles each fuzz/fuzz_*.c alone with every src/common
 * source file).
 *
 * Each process gets one private scratch directory holding a synthetic base
 * image (FUZZ_BASE_LEN zero bytes) and, transiently, the COW files that
 * delta_unpack() writes.  After every run fuzz_check_dir() makes sure
 * nothing was left behind (delta_unpack promises that a failure leaves
 * nothing at cow_path and removes its temporary file) and removes what a
 * successful run made.  The directory is in $FUZZ_TMPDIR, else /dev/shm
 * (tmpfs: delta_unpack fsyncs, which on a disk would dominate each run),
 * else /tmp; it is removed at exit, or (after a crash) by the next run
 * of the same target.
 */
#ifndef FED_FUZZ_UTIL_H
#define FED_FUZZ_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_BASE_LEN (64u << 10)

static char fuzz_dir[256];
static char fuzz_base[300];

static inline _Noreturn void
fuzz_die(const char *what)
{
	fprintf(stderr, "fuzz: %s\n", what);
	abort();
}

/*
 * An error message must be one non-empty line of printable ASCII (err.h:
 * one line, for a person): input that reaches it must not add lines or
 * terminal escapes to logs and HTTP error bodies.
 */
static inline void
fuzz_check_msg(const char *where, const char *msg)
{
	const unsigned char *p = (const unsigned char *)msg;

	if (*p == '\0') {
		fprintf(stderr, "fuzz: %s failed with an empty message\n", where);
		abort();
	}
	for (; *p != '\0'; p++) {
		if (*p < 0x20 || *p > 0x7e) {
			fprintf(stderr, "fuzz: %s: byte 0x%02x in the error "
				"message: '%s'\n", where, *p, msg);
			abort();
		}
	}
}

static inline void
fuzz_write_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fuzz_die("write");
		done += (size_t)n;
	}
}

/* A memfd holding exactly data[0..size). */
static inline int
fuzz_memfd(const char *name, const uint8_t *data, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		fuzz_die("memfd_create");
	fuzz_write_all(fd, data, size);
	return fd;
}

static inline void
fuzz_cleanup(void)
{
	DIR *d;
	struct dirent *de;
	char p[600];

	if (fuzz_dir[0] == '\0' || (d = opendir(fuzz_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", fuzz_dir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(fuzz_dir);
	fuzz_dir[0] = '\0';
}

/* Remove scratch directories "<tag>.<pid>.*" in tmp left by processes that
 * died without running their atexit handler (a crash: libFuzzer _Exit()s). */
static inline void
fuzz_reap(const char *tmp, const char *tag)
{
	DIR *d = opendir(tmp);
	struct dirent *de;
	size_t tl = strlen(tag);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid;

		if (strncmp(de->d_name, tag, tl) != 0 || de->d_name[tl] != '.')
			continue;
		pid = strtol(de->d_name + tl + 1, &end, 10);
		if (end == de->d_name + tl + 1 || *end != '.' || pid <= 0 ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/%s", tmp, de->d_name);
		fuzz_cleanup();
	}
	closedir(d);
}

/* Create the scratch directory and its zero-filled base, once. */
static inline void
fuzz_setup(const char *tag)
{
	const char *tmp = getenv("FUZZ_TMPDIR");
	struct stat st;
	int fd;

	if (fuzz_dir[0] != '\0')
		return;
	if (tmp == NULL || tmp[0] != '/')
		tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ?
		      "/dev/shm" : "/tmp";
	fuzz_reap(tmp, tag);
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/%s.%ld.XXXXXX", tmp, tag,
		 (long)getpid());
	if (mkdtemp(fuzz_dir) == NULL)
		fuzz_die("mkdtemp");
	atexit(fuzz_cleanup);
	snprintf(fuzz_base, sizeof(fuzz_base), "%s/base.img", fuzz_dir);
	if ((fd = open(fuzz_base, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		       0644)) < 0 ||
	    ftruncate(fd, FUZZ_BASE_LEN) < 0 || close(fd) < 0)
		fuzz_die("create base");
}

/* A path for a COW output inside the scratch directory. */
static inline void
fuzz_path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", fuzz_dir, name);
}

/*
 * After a delta_unpack that returned rc: the directory must hold the base,
 * plus the files in `made` (NULL-terminated) if rc == 0 -- and nothing else
 * (no temporary file, no COW at cow_path after a failure).  Removes the
 * files in made.
 */
static inline void
fuzz_check_dir(int rc, const char *const *made)
{
	DIR *d = opendir(fuzz_dir);
	struct dirent *de;
	char p[600];

	if (d == NULL)
		fuzz_die("opendir");
	while ((de = readdir(d)) != NULL) {
		bool ok = strcmp(de->d_name, ".") == 0 ||
			  strcmp(de->d_name, "..") == 0 ||
			  strcmp(de->d_name, "base.img") == 0;

		for (int i = 0; !ok && rc == 0 && made[i] != NULL; i++)
			ok = strcmp(de->d_name, made[i]) == 0;
		if (!ok) {
			fprintf(stderr, "fuzz: '%s' left behind in %s after "
				"delta_unpack returned %d\n", de->d_name,
				fuzz_dir, rc);
			abort();
		}
	}
	closedir(d);
	for (int i = 0; made[i] != NULL; i++) {
		fuzz_path(p, sizeof(p), made[i]);
		if (unlink(p) < 0 && (rc == 0 || errno != ENOENT))
			fuzz_die("a successful delta_unpack left no COW file");
	}
}

#endif
