/*
 * qemu.c - the kernel object, the recorded command line, the resume check,
 * the machine's namespace and tap, and a blocking QMP client with
 * deadlines (qemu.h).
 *
 * QMP is line-oriented JSON over a stream socket: QEMU greets, we ask for
 * capabilities, then each command gets one reply ("return" or "error");
 * asynchronous "event" lines may come in between and are skipped.  The
 * socket is one end of a socketpair whose other end QEMU got at exec time
 * (-chardev socket,fd=N): no path, no race with QEMU creating a socket.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/proc.h"
#include "machine/qemu.h"
#include "common/timefmt.h"

#define QMP_LINE_MAX (1u << 20)

/* ------------------------------------------------------- kernel object */

static int
qkernel_copy(int in, uint64_t off, uint64_t len, const char *out,
	     struct err *e)
{
	char tmp[4096 + 16];
	char buf[65536];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		return err_sys(e, "%s", tmp);
	while (len > 0) {
		size_t want = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ssize_t n = pread(in, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || write(fd, buf, (size_t)n) != n) {
			err_set(e, "kernel object: cannot copy out %s", out);
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, out) < 0) {
		unlink(tmp);
		return err_sys(e, "%s", out);
	}
	return 0;
}

int
qkernel_split(const char *path, const char *kernel_out,
	      const char *initrd_out, struct err *e)
{
	uint8_t hdr[QKERNEL_HDR];
	uint64_t ks, is;
	struct stat sb;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return err_sys(e, "kernel object %s", path);
	if (fstat(fd, &sb) < 0 || pread(fd, hdr, sizeof(hdr), 0) !=
	    (ssize_t)sizeof(hdr) || memcmp(hdr, QKERNEL_MAGIC, 8) != 0) {
		err_set(e, "%s is not a QEMU kernel object (no %s header; "
			"scripts/mkqemukernel.sh makes one)", path,
			QKERNEL_MAGIC);
		goto done;
	}
	memcpy(&ks, hdr + 8, 8);
	memcpy(&is, hdr + 16, 8);
	ks = be64toh(ks);
	is = be64toh(is);
	if (ks == 0 || is == 0 || ks > QKERNEL_PART_MAX ||
	    is > QKERNEL_PART_MAX ||
	    (uint64_t)sb.st_size != QKERNEL_HDR + ks + is) {
		err_set(e, "kernel object %s: sizes %llu + %llu do not add up "
			"to its %lld bytes", path, (unsigned long long)ks,
			(unsigned long long)is, (long long)sb.st_size);
		goto done;
	}
	if (qkernel_copy(fd, QKERNEL_HDR, ks, kernel_out, e) < 0 ||
	    qkernel_copy(fd, QKERNEL_HDR + ks, is, initrd_out, e) < 0)
		goto done;
	rc = 0;
done:
	close(fd);
	return rc;
}

/* ------------------------------------------------------ version, argv */

int
qemu_local_version(char version[QEMU_VERSION_MAX], struct err *e)
{
	char *argv[] = { QEMU_BINARY, "--version", NULL };
	char buf[512];
	FILE *f = tmpfile();
	unsigned a, b, c;
	size_t n;

	if (f == NULL)
		return err_sys(e, "tmpfile");
	if (proc_run(argv, fileno(f), -1) != 0) {
		fclose(f);
		return err_set(e, "%s --version failed (is qemu-system-x86 "
			       "installed?)", QEMU_BINARY);
	}
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (sscanf(buf, "QEMU emulator version %u.%u.%u", &a, &b, &c) != 3)
		return err_set(e, "cannot read the version of %s", QEMU_BINARY);
	snprintf(version, QEMU_VERSION_MAX, "%u.%u.%u", a, b, c);
	return 0;
}

void
qemu_machine_for(const char *version, char machine[QEMU_VERSION_MAX])
{
	unsigned a = 0, b = 0;

	if (sscanf(version, "%u.%u", &a, &b) != 2)
		a = b = 0;
	snprintf(machine, QEMU_VERSION_MAX, "pc-q35-%u.%u", a, b);
}

json_t *
qemu_args(const char *machine, unsigned mem_mb)
{
	char mem[16], ram[128];

	snprintf(mem, sizeof(mem), "%u", mem_mb);
	snprintf(ram, sizeof(ram), "memory-backend-file,id=ram0,size=%uM,"
		 "mem-path=@ram,share=@share", mem_mb);
	/* q35, not microvm: microvm cold boots sometimes hung (NOTES.md).
	 * init_on_free=1: pages the guest frees are zeroed, and zero pages
	 * cost nothing in the saved state.  The memory is a file (struct
	 * qemu_paths): a resume maps it instead of loading it. */
	return json_pack("[s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,"
			 "s,s,s,s,s,s,s,s]",
			 "-M", machine, "-accel", "tcg", "-m", mem,
			 "-object", ram, "-machine", "memory-backend=ram0",
			 "-smp", "1",
			 "-nodefaults", "-no-user-config", "-display", "none",
			 "-kernel", "@kernel", "-initrd", "@initrd",
			 "-append", "console=ttyS0 quiet panic=-1 init_on_free=1 "
			 "fed.ip=" QEMU_GUEST_ADDR "/30 fed.gw=" QEMU_HOST_ADDR,
			 "-serial", "stdio",
			 "-drive", "file=@disk,format=raw,if=none,id=disk0",
			 "-device", "virtio-blk-pci,drive=disk0",
			 "-netdev", "tap,id=net0,ifname=" QEMU_TAP
			 ",script=no,downscript=no",
			 "-device", "virtio-net-pci,netdev=net0,mac="
			 QEMU_GUEST_MAC ",romfile=", "-no-reboot");
}

int
qemu_check(const struct manifest_qemu *q, const char *local_version,
	   struct err *e)
{
	char machine[QEMU_VERSION_MAX];
	json_t *want;
	size_t i, n;

	if (strcmp(q->version, local_version) != 0)
		return err_set(e, "QEMU version differs: the snapshot was saved "
			       "by QEMU %s, this peer runs %s", q->version,
			       local_version);
	qemu_machine_for(local_version, machine);
	if (strcmp(q->machine, machine) != 0)
		return err_set(e, "QEMU machine type differs: the snapshot's is "
			       "%s, this peer runs %s", q->machine, machine);
	if (q->mem_mb < MANIFEST_QEMU_MEM_MIN || q->mem_mb > 4096)
		return err_set(e, "QEMU memory size %u MB is more than this "
			       "peer gives a machine (4096)", q->mem_mb);
	if ((want = qemu_args(machine, q->mem_mb)) == NULL)
		return err_set(e, "out of memory");
	n = json_array_size(want);
	for (i = 0; i < n || i < json_array_size(q->args); i++) {
		const char *r = json_string_value(json_array_get(q->args, i));
		const char *w = json_string_value(json_array_get(want, i));

		if (r == NULL || w == NULL || strcmp(r, w) != 0) {
			err_set(e, "QEMU command line differs from the recorded "
				"one at argument %zu: recorded '%.100s', this "
				"peer runs '%.100s'", i + 1, r ? r : "(end)",
				w ? w : "(end)");
			json_decref(want);
			return -1;
		}
	}
	json_decref(want);
	return 0;
}

/* s with every "@name" replaced by value (malloc'd). */
static char *
qemu_subst(const char *s, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value), len = 0;
	const char *p;
	char *out, *o;

	for (p = s; (p = strstr(p, name)) != NULL; p += nl)
		len += vl;
	if ((out = malloc(strlen(s) + len + 1)) == NULL)
		return NULL;
	for (o = out; *s;) {
		if (strncmp(s, name, nl) == 0) {
			memcpy(o, value, vl);
			o += vl;
			s += nl;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return out;
}

char **
qemu_argv(const json_t *args, const struct qemu_paths *p,
	  const char *const *extra)
{
	const char *names[] = { "@kernel", "@initrd", "@disk", "@ram", "@share" };
	const char *values[] = { p->kernel, p->initrd, p->disk, p->ram,
				 p->share ? "on" : "off" };
	size_t n = json_array_size(args), k = 0, i;
	char **argv;

	for (i = 0; i < 4; i++)
		if (strchr(values[i], ',') != NULL)
			return NULL;
	while (extra != NULL && extra[k] != NULL)
		k++;
	if ((argv = calloc(n + k + 2, sizeof(*argv))) == NULL)
		return NULL;
	if ((argv[0] = strdup(QEMU_BINARY)) == NULL)
		goto bad;
	for (i = 0; i < n; i++) {
		const char *a = json_string_value(json_array_get(args, i));
		char *t;

		if (a == NULL || (t = strdup(a)) == NULL)
			goto bad;
		for (size_t v = 0; v < 5 && t != NULL; v++) {
			char *next = qemu_subst(t, names[v], values[v]);

			free(t);
			t = next;
		}
		if ((argv[i + 1] = t) == NULL)
			goto bad;
	}
	for (i = 0; i < k; i++)
		if ((argv[n + 1 + i] = strdup(extra[i])) == NULL)
			goto bad;
	return argv;
bad:
	qemu_argv_free(argv);
	return NULL;
}

void
qemu_argv_free(char **argv)
{
	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

/* ------------------------------------------------------------------ QMP */

int
qmp_reply_parse(const char *line, size_t len, json_t **ret, struct err *e)
{
	json_error_t jerr;
	json_t *j = json_loadb(line, len, 0, &jerr), *v;
	int rc;

	if (ret != NULL)
		*ret = NULL;
	if (j == NULL)
		return err_set(e, "QMP: invalid JSON: %.80s", jerr.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(e, "QMP: a reply that is not a JSON object");
	}
	if ((v = json_object_get(j, "return")) != NULL) {
		if (ret != NULL)
			*ret = json_incref(v);
		rc = 0;
	} else if ((v = json_object_get(j, "error")) != NULL) {
		const char *cls = json_string_value(json_object_get(v, "class"));
		const char *desc = json_string_value(json_object_get(v, "desc"));

		rc = err_set(e, "QMP error: %.60s: %.200s", cls ? cls : "?",
			     desc ? desc : "?");
	} else if (json_object_get(j, "event") != NULL ||
		   json_object_get(j, "QMP") != NULL) {
		rc = 1;
	} else {
		rc = err_set(e, "QMP: a reply with neither return, error nor "
			     "event");
	}
	json_decref(j);
	return rc;
}

/* The next line from QEMU (without its end), NUL-terminated in q->buf;
 * *len set.  Consume it with qmp_consume.  Returns 0/-1. */
static int
qmp_read_line(struct qmp *q, double deadline, size_t *len, struct err *e)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		double left;
		ssize_t n;

		if (nl != NULL) {
			*len = (size_t)(nl - q->buf);
			*nl = '\0';
			return 0;
		}
		if (q->len + 4096 > q->cap) {
			size_t ncap = q->cap ? q->cap * 2 : 8192;
			char *nb;

			if (ncap > QMP_LINE_MAX)
				return err_set(e, "QMP: a reply longer than %u "
					       "bytes", QMP_LINE_MAX);
			if ((nb = realloc(q->buf, ncap)) == NULL)
				return err_sys(e, "QMP");
			q->buf = nb;
			q->cap = ncap;
		}
		if ((left = deadline - mono_now()) <= 0)
			return err_set(e, "QMP: QEMU did not answer in time");
		if (poll(&p, 1, (int)(left * 1000) + 1) < 0 && errno != EINTR)
			return err_sys(e, "QMP poll");
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(q->fd, q->buf + q->len, q->cap - q->len - 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return err_set(e, "QMP: QEMU closed the monitor (it "
				       "exited?)");
		q->len += (size_t)n;
	}
}

static void
qmp_consume(struct qmp *q, size_t len)
{
	memmove(q->buf, q->buf + len + 1, q->len - len - 1);
	q->len -= len + 1;
}

/* Wait for a reply (0) or the greeting (greeting true), skipping events. */
static int
qmp_wait(struct qmp *q, double deadline, bool greeting, json_t **ret,
	 struct err *e)
{
	for (;;) {
		size_t len = 0;
		int rc;

		if (qmp_read_line(q, deadline, &len, e) < 0)
			return -1;
		if (greeting && strstr(q->buf, "\"QMP\"") != NULL) {
			qmp_consume(q, len);
			return 0;
		}
		rc = qmp_reply_parse(q->buf, len, ret, e);
		qmp_consume(q, len);
		if (rc != 1)
			return rc;
	}
}

int
qmp_start(struct qmp *q, int fd, double timeout_s, struct err *e)
{
	double deadline = mono_now() + timeout_s, left;

	memset(q, 0, sizeof(*q));
	q->fd = fd;
	if (qmp_wait(q, deadline, true, NULL, e) < 0)
		return -1;
	/* one timeout for the greeting and the negotiation together: a
	 * caller that blocks meanwhile counts on timeout_s in all */
	left = deadline - mono_now();
	return qmp_call(q, "qmp_capabilities", NULL, -1, NULL,
			left > 0.001 ? left : 0.001, e);
}

int
qmp_call(struct qmp *q, const char *cmd, json_t *args, int pass_fd,
	 json_t **ret, double timeout_s, struct err *e)
{
	json_t *msg = json_pack("{s:s}", "execute", cmd);
	struct err sub;
	char *text;
	size_t len;
	ssize_t n;

	if (ret != NULL)
		*ret = NULL;
	if (msg == NULL) {
		json_decref(args);
		return err_set(e, "QMP: out of memory");
	}
	if (args != NULL && json_object_set_new(msg, "arguments", args) < 0) {
		json_decref(msg);	/* args went with the failed set */
		return err_set(e, "QMP: out of memory");
	}
	text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (text == NULL)
		return err_set(e, "QMP: out of memory");
	len = strlen(text);
	text[len++] = '\n';	/* json_dumps leaves room: replace the NUL */
	{
		struct iovec iov = { .iov_base = text, .iov_len = len };
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

		if (pass_fd >= 0) {
			struct cmsghdr *c;

			memset(&u, 0, sizeof(u));
			mh.msg_control = u.buf;
			mh.msg_controllen = sizeof(u.buf);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
		}
		n = sendmsg(q->fd, &mh, MSG_NOSIGNAL);
	}
	free(text);
	if (n != (ssize_t)len)
		return err_set(e, "QMP: cannot send %s (QEMU gone?)", cmd);
	if (qmp_wait(q, mono_now() + timeout_s, false, ret, &sub) < 0)
		return err_set(e, "%s: %s", cmd, sub.msg);
	return 0;
}

void
qmp_close(struct qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	free(q->buf);
	q->buf = NULL;
	q->len = q->cap = 0;
}
