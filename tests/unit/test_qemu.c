/*
 * test_qemu.c - the pure parts of machine/qemu.c: QMP replies (return,
 * error, event, garbage), a QMP session over a socketpair with a fake QEMU,
 * the resume check's messages, argv placeholders, and the kernel object.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "machine/qemu.h"
#include "common/timefmt.h"
#include "lib/testutil.h"

Test(qemu, qmp_replies)
{
	json_t *ret;
	struct err e;
	const char *ok = "{\"return\": {\"status\": \"paused\", \"running\": false}}";
	const char *err = "{\"error\": {\"class\": \"GenericError\", \"desc\": "
			  "\"no migration\"}}";
	const char *ev = "{\"timestamp\": {\"seconds\": 1}, \"event\": \"RESUME\"}";

	cr_assert_eq(qmp_reply_parse(ok, strlen(ok), &ret, &e), 0);
	cr_assert_str_eq(json_string_value(json_object_get(ret, "status")),
			 "paused");
	json_decref(ret);
	cr_assert_eq(qmp_reply_parse(err, strlen(err), &ret, &e), -1);
	cr_assert_null(ret);
	cr_assert_str_eq(e.msg, "QMP error: GenericError: no migration");
	cr_assert_eq(qmp_reply_parse(ev, strlen(ev), &ret, &e), 1);
	cr_assert_eq(qmp_reply_parse("{\"QMP\":{}}", 10, &ret, &e), 1);
	cr_assert_eq(qmp_reply_parse("{\"return\"", 9, &ret, &e), -1);
	cr_assert(strstr(e.msg, "invalid JSON") != NULL, "%s", e.msg);
	cr_assert_eq(qmp_reply_parse("[1]", 3, &ret, &e), -1);
	cr_assert_eq(qmp_reply_parse("{\"x\":1}", 7, &ret, &e), -1);
	cr_assert(strstr(e.msg, "neither") != NULL, "%s", e.msg);
}

/* A fake QEMU on the other end: greeting, then scripted replies, split
 * across writes and with an event in between. */
Test(qemu, qmp_session_skips_events_and_reports_errors)
{
	int sv[2];
	pid_t pid;
	struct qmp q;
	struct err e;
	json_t *ret;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	if ((pid = fork()) == 0) {
		static const char *const out[] = {
			"{\"QMP\": {\"version\": {}}}\r\n",
			"{\"return\": {}}\r\n",				/* caps */
			"{\"event\": \"STOP\"}\r\n{\"ret", "urn\": {\"status\": "
			"\"running\"}}\r\n",				/* status */
			"{\"error\": {\"class\": \"CommandNotFound\", "
			"\"desc\": \"The command nope has not been found\"}}\r\n",
		};
		char buf[4096];

		close(sv[0]);
		for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++) {
			if (i == 2 || i == 4)	/* answer after a command */
				if (read(sv[1], buf, sizeof(buf)) <= 0)
					_exit(1);
			if (write(sv[1], out[i], strlen(out[i])) < 0)
				_exit(1);
			if (i == 0 && read(sv[1], buf, sizeof(buf)) <= 0)
				_exit(1);
		}
		_exit(0);
	}
	close(sv[1]);
	cr_assert_eq(qmp_start(&q, sv[0], 5, &e), 0, "%s", e.msg);
	cr_assert_eq(qmp_call(&q, "query-status", NULL, -1, &ret, 5, &e), 0,
		     "%s", e.msg);
	cr_assert_str_eq(json_string_value(json_object_get(ret, "status")),
			 "running");
	json_decref(ret);
	cr_assert_eq(qmp_call(&q, "nope", json_pack("{s:i}", "a", 1), -1, NULL,
			      5, &e), -1);
	cr_assert_str_eq(e.msg, "nope: QMP error: CommandNotFound: The command "
			 "nope has not been found");
	/* the fake is gone: the next call fails, does not hang */
	waitpid(pid, NULL, 0);
	cr_assert_eq(qmp_call(&q, "cont", NULL, -1, NULL, 2, &e), -1);
	qmp_close(&q);
}

/* The vmrunner's loop waits while QEMU resumes, counting on the timeout
 * it passes: a greeting that comes late leaves the negotiation only what
 * is left of it, not a whole timeout more. */
Test(qemu, qmp_start_is_bounded_by_one_timeout)
{
	int sv[2];
	pid_t pid;
	struct qmp q;
	struct err e;
	double t0;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	if ((pid = fork()) == 0) {
		static const char greeting[] = "{\"QMP\": {\"version\": {}}}\r\n";
		char buf[4096];

		close(sv[0]);
		usleep(600 * 1000);
		if (write(sv[1], greeting, strlen(greeting)) < 0)
			_exit(1);
		/* qmp_capabilities is never answered */
		if (read(sv[1], buf, sizeof(buf)) <= 0)
			_exit(1);
		sleep(3);
		_exit(0);
	}
	close(sv[1]);
	t0 = mono_now();
	cr_assert_eq(qmp_start(&q, sv[0], 1.0, &e), -1);
	cr_assert_lt(mono_now() - t0, 1.3, "qmp_start took %.2f s",
		     mono_now() - t0);
	cr_assert(strstr(e.msg, "did not answer in time") != NULL, "%s", e.msg);
	qmp_close(&q);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static struct manifest_qemu
recorded(const char *version, unsigned mem)
{
	struct manifest_qemu q;
	char machine[QEMU_VERSION_MAX];

	memset(&q, 0, sizeof(q));
	snprintf(q.version, sizeof(q.version), "%s", version);
	qemu_machine_for(version, machine);
	snprintf(q.machine, sizeof(q.machine), "%s", machine);
	q.mem_mb = mem;
	q.state_size = 1;
	q.args = qemu_args(machine, mem);
	return q;
}

Test(qemu, resume_check_names_what_differs)
{
	struct manifest_qemu q = recorded("7.2.22", 128);
	struct err e;

	cr_assert_eq(qemu_check(&q, "7.2.22", &e), 0, "%s", e.msg);
	cr_assert_eq(qemu_check(&q, "7.2.21", &e), -1);
	cr_assert_str_eq(e.msg, "QEMU version differs: the snapshot was saved "
			 "by QEMU 7.2.22, this peer runs 7.2.21");
	strcpy(q.machine, "pc-q35-7.1");
	cr_assert_eq(qemu_check(&q, "7.2.22", &e), -1);
	cr_assert(strstr(e.msg, "QEMU machine type differs") != NULL, "%s",
		  e.msg);
	strcpy(q.machine, "pc-q35-7.2");
	json_array_set_new(q.args, 11, json_string("2"));	/* -smp 2 */
	cr_assert_eq(qemu_check(&q, "7.2.22", &e), -1);
	cr_assert_str_eq(e.msg, "QEMU command line differs from the recorded "
			 "one at argument 12: recorded '2', this peer runs '1'");
	json_array_set_new(q.args, 11, json_string("1"));
	json_array_append_new(q.args, json_string("-S"));
	cr_assert_eq(qemu_check(&q, "7.2.22", &e), -1);
	cr_assert(strstr(e.msg, "recorded '-S', this peer runs '(end)'") != NULL,
		  "%s", e.msg);
	json_decref(q.args);
	q = recorded("7.2.22", 8192);
	cr_assert_eq(qemu_check(&q, "7.2.22", &e), -1);
	cr_assert(strstr(e.msg, "memory size 8192 MB") != NULL, "%s", e.msg);
	json_decref(q.args);
}

Test(qemu, argv_fills_placeholders_and_refuses_commas)
{
	json_t *args = qemu_args("pc-q35-7.2", 128);
	const char *extra[] = { "-S", NULL };
	struct qemu_paths p = { "/k/vmlinuz", "/k/initrd", "/v/disk.raw",
				"/v/ram.img", false };
	char **argv = qemu_argv(args, &p, extra);
	size_t n = 0;
	bool disk = false, ram = false;

	cr_assert_not_null(argv);
	cr_assert_str_eq(argv[0], QEMU_BINARY);
	for (; argv[n] != NULL; n++) {
		cr_assert_null(strchr(argv[n], '@'), "%s", argv[n]);
		if (strcmp(argv[n], "file=/v/disk.raw,format=raw,if=none,"
			   "id=disk0") == 0)
			disk = true;
		if (strcmp(argv[n], "memory-backend-file,id=ram0,size=128M,"
			   "mem-path=/v/ram.img,share=off") == 0)
			ram = true;
	}
	cr_assert(disk);
	cr_assert(ram, "a resume maps the memory file privately");
	cr_assert_eq(n, json_array_size(args) + 2);
	cr_assert_str_eq(argv[n - 1], "-S");
	qemu_argv_free(argv);
	/* saving: the same line, the memory file shared */
	p.share = true;
	argv = qemu_argv(args, &p, NULL);
	cr_assert_not_null(argv);
	for (n = 0, ram = false; argv[n] != NULL; n++)
		if (strstr(argv[n], "mem-path=/v/ram.img,share=on") != NULL)
			ram = true;
	cr_assert(ram);
	qemu_argv_free(argv);
	p.kernel = "/k/a,b";
	cr_assert_null(qemu_argv(args, &p, NULL));
	p.kernel = "/k/vmlinuz";
	p.ram = "/v/r,am";
	cr_assert_null(qemu_argv(args, &p, NULL));
	json_decref(args);
}

Test(qemu, kernel_object_split_and_refusals)
{
	char *dir = tu_tmpdir(), *obj = tu_path(dir, "k.obj"),
	     *k = tu_path(dir, "vmlinuz"), *i = tu_path(dir, "initrd");
	uint8_t buf[24 + 5 + 3];
	uint64_t ks = htobe64(5), is = htobe64(3);
	struct err e;
	size_t len;
	uint8_t *got;

	memcpy(buf, QKERNEL_MAGIC, 8);
	memcpy(buf + 8, &ks, 8);
	memcpy(buf + 16, &is, 8);
	memcpy(buf + 24, "KERNLINI", 8);
	tu_write_file(obj, buf, sizeof(buf));
	cr_assert_eq(qkernel_split(obj, k, i, &e), 0, "%s", e.msg);
	got = tu_read_file(k, &len);
	cr_assert(len == 5 && memcmp(got, "KERNL", 5) == 0);
	free(got);
	got = tu_read_file(i, &len);
	cr_assert(len == 3 && memcmp(got, "INI", 3) == 0);
	free(got);
	tu_write_file(obj, buf, sizeof(buf) - 1);
	cr_assert_eq(qkernel_split(obj, k, i, &e), -1);
	cr_assert(strstr(e.msg, "do not add up") != NULL, "%s", e.msg);
	buf[0] = 'X';
	tu_write_file(obj, buf, sizeof(buf));
	cr_assert_eq(qkernel_split(obj, k, i, &e), -1);
	cr_assert(strstr(e.msg, "not a QEMU kernel object") != NULL, "%s",
		  e.msg);
	tu_rmtree(dir);
	free(dir);
	free(obj);
	free(k);
	free(i);
}
