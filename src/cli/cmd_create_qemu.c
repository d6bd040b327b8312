/*
 * cmd_create_qemu.c - `fed snapshot create --running`: a snapshot of a
 * machine that is already running its service, resumed (not booted) by
 * the peers that commit it.
 *
 *   import  as for a UML snapshot (cmd_create.c): the owner's files and
 *           --run CMD go into a COW over the base with linux.uml
 *   disk    that COW becomes a raw image (base + changed blocks)
 *   boot    QEMU (TCG, the recorded command line of machine/qemu.c) boots
 *           the QEMU kernel object over the raw image, in a network
 *           namespace of this process's own with the tap every peer gives
 *           the machine, until the guest port accepts
 *   save    over QMP: stop, migrate to a file descriptor we pass (the
 *           device state; the memory is a file QEMU maps shared, left out
 *           of the stream), quit; QEMU has flushed the disk by then
 *   pack    raw image against the base + device state + memory, in one
 *           chunked zlib stream ("fedqemu2+zlib"); the manifest records
 *           QEMU's version, machine type, memory, command line and state
 *           size
 *
 * Needs root (a network namespace and a tap).  QEMU runs in its own
 * session and its process group is killed at the end whatever happened.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/create.h"
#include "common/delta.h"
#include "common/fedsnap.h"
#include "common/hex.h"
#include "common/io.h"
#include "common/proc.h"
#include "machine/qemu.h"
#include "machine/machine.h"
#include "common/timefmt.h"

#define RUNNING_LOG_MAX	(1u << 20)
#define QMP_TIMEOUT	30.0	/* s, for any one monitor command */
/* Connections the service sees through to their end before the save, and
 * how long each may take (see running_settle) */
#define SETTLE_ROUNDS	3
#define SETTLE_WAIT_MS	1000

/* The COW file of the import boot as a raw image at raw (through a
 * fedcow1 payload: the same code that packs and unpacks every delta). */
static int
running_cow_to_raw(const char *cow, const char *base, const char *raw,
		   const char *tmpdir, struct err *e)
{
	char path[PATH_MAX];
	struct chunk_index ix;
	struct delta_stats st;
	int cow_fd, base_fd, fd, rc = -1;

	snprintf(path, sizeof(path), "%s/import.payload", tmpdir);
	cow_fd = open(cow, O_RDONLY | O_CLOEXEC);
	base_fd = open(base, O_RDONLY | O_CLOEXEC);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (cow_fd < 0 || base_fd < 0 || fd < 0) {
		err_sys(e, "import COW");
		goto done;
	}
	if (delta_pack(cow_fd, base_fd, fd, CHUNK_SIZE_DEFAULT, &ix, &st, e) < 0)
		goto done;
	rc = delta_unpack_raw(fd, 0, &ix, base, raw, NULL, NULL, e);
	chunkidx_free(&ix);
done:
	if (fd >= 0)
		close(fd);
	if (cow_fd >= 0)
		close(cow_fd);
	if (base_fd >= 0)
		close(base_fd);
	unlink(path);
	return rc;
}

static bool
running_guest_accepts(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	struct pollfd p;
	int fd, err = 0;
	socklen_t len = sizeof(err);
	bool ok = false;

	inet_pton(AF_INET, QEMU_GUEST_ADDR, &sa.sin_addr);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			 0)) < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		ok = true;
	} else if (errno == EINPROGRESS) {
		p.fd = fd;
		p.events = POLLOUT;
		if (poll(&p, 1, 200) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
		    err == 0)
			ok = true;
	}
	close(fd);
	return ok;
}

/* Keep what the console says (bounded), without blocking. */
static void
running_drain(int fd, char *log, size_t *len)
{
	char chunk[4096];
	ssize_t n;

	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		size_t take = (size_t)n;

		if (*len + take > RUNNING_LOG_MAX)
			take = RUNNING_LOG_MAX - *len;
		memcpy(log + *len, chunk, take);
		*len += take;
		log[*len] = '\0';
	}
}

/* Save the running machine into state_fd over QMP: its device state;
 * its memory is already the file QEMU maps shared (x-ignore-shared leaves
 * it out of the stream), whole once QEMU has stopped. */
static int
running_save(struct qmp *q, int state_fd, struct err *e)
{
	double deadline = mono_now() + 120;
	json_t *ret = NULL;

	if (qmp_call(q, "migrate-set-capabilities", json_pack(
		     "{s:[{s:s,s:b}]}", "capabilities", "capability",
		     "x-ignore-shared", "state", 1), -1, NULL, QMP_TIMEOUT,
		     e) < 0 ||
	    qmp_call(q, "stop", NULL, -1, NULL, QMP_TIMEOUT, e) < 0 ||
	    qmp_call(q, "getfd", json_pack("{s:s}", "fdname", "state"),
		     state_fd, NULL, QMP_TIMEOUT, e) < 0 ||
	    qmp_call(q, "migrate", json_pack("{s:s}", "uri", "fd:state"), -1,
		     NULL, QMP_TIMEOUT, e) < 0)
		return -1;
	for (;;) {
		const char *status;

		if (qmp_call(q, "query-migrate", NULL, -1, &ret, QMP_TIMEOUT,
			     e) < 0)
			return -1;
		status = json_string_value(json_object_get(ret, "status"));
		if (status != NULL && strcmp(status, "completed") == 0)
			break;
		if (status != NULL && (strcmp(status, "failed") == 0 ||
				       strcmp(status, "cancelled") == 0)) {
			const char *why = json_string_value(
				json_object_get(ret, "error-desc"));

			err_set(e, "saving the memory state %s: %s", status,
				why ? why : "(no reason given)");
			json_decref(ret);
			return -1;
		}
		json_decref(ret);
		ret = NULL;
		if (mono_now() > deadline)
			return err_set(e, "saving the memory state did not "
				       "finish within 120 s");
		usleep(20000);
	}
	json_decref(ret);
	return 0;
}

/*
 * Let the service finish with connections before the save.  The guest port
 * first accepts a moment after the service starts, and a machine saved then
 * is still busy with that first connection (the service handling it, a
 * child exiting): the resumed copy would do that work before it answers
 * anyone, 0.03 s of it under TCG.  So open a few connections, say nothing
 * (shut our side), and wait for the service to close each.  Bounded: a
 * service that keeps a silent connection open gets a reset (so the saved
 * machine holds no connection of ours) and no more rounds.  The console is
 * drained meanwhile (con_fd: QEMU blocks on a full pipe).
 */
static void
running_settle(uint16_t port, int con_fd, char *log, size_t *loglen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };

	inet_pton(AF_INET, QEMU_GUEST_ADDR, &sa.sin_addr);
	for (int i = 0; i < SETTLE_ROUNDS; i++) {
		double deadline = mono_now() + SETTLE_WAIT_MS / 1000.0;
		struct pollfd p[2] = { { .events = POLLOUT },
				       { .fd = con_fd, .events = POLLIN } };
		bool connected = false, closed = false;
		char buf[4096];
		ssize_t n;

		p[0].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
				 SOCK_CLOEXEC, 0);
		if (p[0].fd < 0)
			return;
		if (connect(p[0].fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			connected = shutdown(p[0].fd, SHUT_WR) == 0;
		else if (errno != EINPROGRESS)
			closed = true;	/* refused: nothing to wait for */
		if (connected)
			p[0].events = POLLIN;
		while (!closed && mono_now() < deadline) {
			int ms = (int)((deadline - mono_now()) * 1000) + 1;

			if (poll(p, 2, ms) <= 0)
				continue;	/* EINTR, or the deadline */
			if (p[1].revents) {
				running_drain(con_fd, log, loglen);
				if (p[1].revents & (POLLHUP | POLLERR))
					p[1].fd = -1;	/* QEMU went */
			}
			if (!p[0].revents)
				continue;
			if (!connected) {	/* the connect finished */
				int err = 0;
				socklen_t len = sizeof(err);

				if (getsockopt(p[0].fd, SOL_SOCKET, SO_ERROR,
					       &err, &len) < 0 || err != 0 ||
				    shutdown(p[0].fd, SHUT_WR) < 0) {
					closed = true;
					break;
				}
				connected = true;
				p[0].events = POLLIN;
				continue;
			}
			n = read(p[0].fd, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EAGAIN &&
				       errno != EINTR))
				closed = true;	/* the service is done */
		}
		if (!closed) {
			fprintf(stderr, "fed: the service did not finish "
				"with a connection within %d ms; saving "
				"anyway\n", SETTLE_WAIT_MS);
			io_reset_on_close(p[0].fd);
			close(p[0].fd);
			return;
		}
		close(p[0].fd);
	}
}

/*
 * Boot QEMU over raw, wait for the guest port, save the memory into
 * state_fd and stop QEMU.  The console is kept in *log.  Returns 0/-1.
 */
static int
running_boot_and_save(char **argv, uint16_t guest_port, unsigned timeout_s,
		      int state_fd, char **log, struct err *e)
{
	double t0 = mono_now(), deadline = t0 + timeout_s;
	size_t len = 0;
	int pfd[2] = { -1, -1 }, sv[2] = { -1, -1 }, status, rc = -1;
	struct qmp q = { .fd = -1 };
	bool up = false;
	pid_t pid = -1;

	if ((*log = malloc(RUNNING_LOG_MAX + 1)) == NULL)
		return err_sys(e, "console");
	(*log)[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		err_sys(e, "pipe");
		goto done;
	}
	if ((pid = fork()) < 0) {
		err_sys(e, "fork");
		goto done;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		setsid();
		if (nul >= 0)
			dup2(nul, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		/* the monitor: -chardev socket,fd=3.  Moved out of the way
		 * first: were sv[1] 3 already, dup2 would do nothing and leave
		 * it close-on-exec */
		dup2(fcntl(sv[1], F_DUPFD, 10), 3);
		proc_close_from(4);	/* and nothing else of ours */
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	close(sv[1]);
	pfd[1] = sv[1] = -1;
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	while (!up) {
		running_drain(pfd[0], *log, &len);
		if (waitpid(pid, &status, WNOHANG) == pid) {
			pid = -1;
			running_drain(pfd[0], *log, &len);
			err_set(e, "QEMU exited before the guest port %u "
				"accepted: %.300s", guest_port,
				len > 300 ? *log + len - 300 : *log);
			goto done;
		}
		if (mono_now() > deadline) {
			err_set(e, "the guest port %u did not accept within "
				"%u s", guest_port, timeout_s);
			goto done;
		}
		if (running_guest_accepts(guest_port))
			up = true;
		else
			usleep(100000);
	}
	running_settle(guest_port, pfd[0], *log, &len);
	fprintf(stderr, "fed: the machine serves port %u after %.1f s; "
		"saving its state\n", guest_port, mono_now() - t0);
	if (qmp_start(&q, sv[0], QMP_TIMEOUT, e) < 0)
		goto done;
	sv[0] = -1;	/* q owns it */
	if (running_save(&q, state_fd, e) < 0)
		goto done;
	qmp_call(&q, "quit", NULL, -1, NULL, QMP_TIMEOUT, e);
	rc = 0;
done:
	qmp_close(&q);
	if (pid > 0) {
		kill(-pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (pfd[0] >= 0) {
		running_drain(pfd[0], *log, &len);
		close(pfd[0]);
	}
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	return rc;
}

static void
running_print(const char *out, const struct manifest *m,
	      const struct delta_stats *st, const uint8_t id[SHA256_LEN],
	      bool json)
{
	char idhex[2 * SHA256_LEN + 1], b1[32], b2[32], b3[32], b4[32];

	hex_encode(id, SHA256_LEN, idhex);
	if (json) {
		json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:i,s:s,s:s,"
				      "s:I,s:I}", "id", idhex, "file", out,
				      "version", (json_int_t)m->version,
				      "image_size", (json_int_t)st->image_size,
				      "changed_bytes",
				      (json_int_t)st->changed_bytes,
				      "payload_bytes",
				      (json_int_t)st->payload_bytes,
				      "extents", (int)st->extents,
				      "name", m->name, "machine", "qemu",
				      "state_bytes", (json_int_t)st->state_bytes,
				      "ram_bytes", (json_int_t)st->ram_bytes);

		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
		return;
	}
	printf("%s: %s:%u version %" PRId64 ", running-state snapshot: %s "
	       "payload (disk: %u extents, %s changed; device state %s; "
	       "memory %s) for QEMU %s %s\nid %s\n", out, m->host, m->port,
	       m->version, cli_bytes(st->payload_bytes, b1), st->extents,
	       cli_bytes(st->changed_bytes, b2), cli_bytes(st->state_bytes, b3),
	       cli_bytes(st->ram_bytes, b4), m->qemu.version, m->qemu.machine,
	       idhex);
}

int
create_running(const struct create_running *a, struct manifest *m,
	       char **log)
{
	char raw[PATH_MAX], kern[PATH_MAX], initrd[PATH_MAX], state[PATH_MAX],
	     ram[PATH_MAX], payload[PATH_MAX], version[QEMU_VERSION_MAX],
	     machine[QEMU_VERSION_MAX];
	struct qemu_paths paths = { kern, initrd, raw, ram, true };
	static const char *const extra[] = {
		"-chardev", "socket,id=qmp,fd=3", "-mon",
		"chardev=qmp,mode=control", NULL };
	char **argv = NULL;
	uint8_t id[SHA256_LEN];
	struct delta_stats st;
	struct err e;
	int state_fd = -1, ram_fd = -1, raw_fd = -1, base_fd = -1, out_fd = -1;
	int rc = 1;

	snprintf(raw, sizeof(raw), "%s/disk.raw", a->tmpdir);
	snprintf(ram, sizeof(ram), "%s/ram.img", a->tmpdir);
	snprintf(kern, sizeof(kern), "%s/vmlinuz", a->tmpdir);
	snprintf(initrd, sizeof(initrd), "%s/initrd", a->tmpdir);
	snprintf(state, sizeof(state), "%s/state.bin", a->tmpdir);
	snprintf(payload, sizeof(payload), "%s/payload", a->tmpdir);
	if (qemu_local_version(version, &e) < 0 ||
	    qkernel_split(a->kernel, kern, initrd, &e) < 0 ||
	    running_cow_to_raw(a->cow, a->base, raw, a->tmpdir, &e) < 0) {
		cli_fail("%s", e.msg);
		goto done;
	}
	qemu_machine_for(version, machine);
	snprintf(m->machine, sizeof(m->machine), "qemu");
	snprintf(m->format, sizeof(m->format), "%s", DELTA_FORMAT_FEDQEMU2);
	snprintf(m->qemu.version, sizeof(m->qemu.version), "%s", version);
	snprintf(m->qemu.machine, sizeof(m->qemu.machine), "%s", machine);
	m->qemu.mem_mb = a->mem_mb;
	if ((m->qemu.args = qemu_args(machine, a->mem_mb)) == NULL ||
	    (argv = qemu_argv(m->qemu.args, &paths, extra)) == NULL) {
		cli_fail("cannot build the QEMU command line (a comma in %s?)",
			 a->tmpdir);
		goto done;
	}
	/* the namespace is this process's: it and the tap go when we exit */
	if (unshare(CLONE_NEWNET) < 0) {
		cli_fail("a network namespace for the machine: %m (run as root)");
		goto done;
	}
	if (machine_net_setup(NULL, 0, 0, NULL, &e) < 0) {
		cli_fail("%s", e.msg);
		goto done;
	}
	if ((state_fd = open(state, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
			     0600)) < 0) {
		cli_fail("%s: %m", state);
		goto done;
	}
	if (running_boot_and_save(argv, m->guest_port, a->timeout_s, state_fd,
				  log, &e) < 0) {
		cli_fail("running boot: %s", e.msg);
		goto done;
	}
	raw_fd = open(raw, O_RDONLY | O_CLOEXEC);
	ram_fd = open(ram, O_RDONLY | O_CLOEXEC);
	base_fd = open(a->base, O_RDONLY | O_CLOEXEC);
	out_fd = open(payload, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (raw_fd < 0 || ram_fd < 0 || base_fd < 0 || out_fd < 0 ||
	    lseek(state_fd, 0, SEEK_SET) < 0) {
		cli_fail("pack: %m");
		goto done;
	}
	if (delta_pack_raw(raw_fd, base_fd, state_fd, ram_fd, out_fd,
			   a->chunk_size, &m->delta, &st, &e) < 0) {
		cli_fail("pack: %s", e.msg);
		goto done;
	}
	if (st.ram_bytes != (uint64_t)a->mem_mb << 20) {
		cli_fail("pack: the machine's memory file has %llu bytes, not "
			 "%u MiB", (unsigned long long)st.ram_bytes, a->mem_mb);
		goto done;
	}
	m->qemu.state_size = st.state_bytes;
	if (fedsnap_write(a->out, m, a->seed, out_fd, id, &e) < 0) {
		cli_fail("write %s: %s", a->out, e.msg);
		goto done;
	}
	running_print(a->out, m, &st, id, a->json);
	rc = 0;
done:
	qemu_argv_free(argv);
	if (state_fd >= 0)
		close(state_fd);
	if (ram_fd >= 0)
		close(ram_fd);
	if (raw_fd >= 0)
		close(raw_fd);
	if (base_fd >= 0)
		close(base_fd);
	if (out_fd >= 0)
		close(out_fd);
	return rc;
}
