/*
 * test_vmrunner.c - the vmrunner's pure logic: the restart backoff (1 s
 * doubling to a 5 min cap, reset after 10 min up), the linux.uml command
 * line (every word the base's /init and UML need, hostfs pointed nowhere,
 * no network words without a tap), and the status.json document.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "vmrunner/vmrunner.h"

TestSuite(vmrunner, .timeout = 10);

Test(vmrunner, backoff_doubles_from_one_second_to_five_minutes)
{
	static const unsigned want[] = { 0, 1, 2, 4, 8, 16, 32, 64, 128, 256,
					 300, 300, 300 };

	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_expect_eq(vm_backoff_delay(i), want[i], "failures %u: %u",
			     i, vm_backoff_delay(i));
	cr_expect_eq(vm_backoff_delay(1000), VM_BACKOFF_CAP);
	cr_expect_eq(vm_backoff_delay(UINT32_MAX), VM_BACKOFF_CAP);
}

Test(vmrunner, backoff_resets_after_ten_minutes_up)
{
	unsigned f = 0;

	/* crash loop: each death counts */
	for (int i = 0; i < 5; i++)
		f = vm_backoff_next(f, 3);
	cr_expect_eq(f, 5);
	cr_expect_eq(vm_backoff_delay(f), 16);
	/* just short of ten minutes up still counts */
	cr_expect_eq(vm_backoff_next(f, VM_BACKOFF_RESET - 1), 6);
	/* ten minutes up: the next death is a first one again (1 s) */
	f = vm_backoff_next(f, VM_BACKOFF_RESET);
	cr_expect_eq(f, 1);
	cr_expect_eq(vm_backoff_delay(f), 1);
	/* the count does not overflow */
	cr_expect_eq(vm_backoff_next(64, 0), 64);
}

static int
argv_has(char **argv, const char *word)
{
	for (char **a = argv; *a; a++)
		if (strcmp(*a, word) == 0)
			return 1;
	return 0;
}

static int
argv_count(char **argv)
{
	int n = 0;

	while (argv[n])
		n++;
	return n;
}

Test(vmrunner, uml_command_line_with_network)
{
	struct uml_params p = {
		.kernel = "/s/kernels/abc", .cow = "/s/vms/id/disk.cow",
		.base = "/fed/bases/def", .mem_mb = 96, .tap = "fed0a4d0002",
		.guest_addr = "10.77.0.2", .prefix = 30, .gateway = "10.77.0.1",
		.hostfs = VM_NOHOSTFS,
	};
	char **argv = uml_argv(&p);

	cr_assert_not_null(argv);
	cr_expect_str_eq(argv[0], "/s/kernels/abc");
	cr_expect_str_eq(argv[1], "ubd0=/s/vms/id/disk.cow,/fed/bases/def");
	cr_expect(argv_has(argv, "root=/dev/ubda"));
	cr_expect(argv_has(argv, "rw"));
	cr_expect(argv_has(argv, "init=/init"));
	cr_expect(argv_has(argv, "mem=96M"));
	cr_expect(argv_has(argv, "con=null"));
	cr_expect(argv_has(argv, "con0=null,fd:1"));
	cr_expect(argv_has(argv, "pty.legacy_count=0"));
	cr_expect(argv_has(argv, "vec0:transport=tap,ifname=fed0a4d0002"));
	cr_expect(argv_has(argv, "fed.ip=10.77.0.2/30"));
	cr_expect(argv_has(argv, "fed.gw=10.77.0.1"));
	cr_expect(argv_has(argv, "hostfs=/nonexistent-fed-hostfs"));
	cr_expect(!argv_has(argv, "fed.import=/"));
	cr_expect_eq(argv_count(argv), 15);
	uml_argv_free(argv);
}

Test(vmrunner, uml_command_line_without_network)
{
	struct uml_params p = {
		.kernel = "k", .cow = "c", .base = "b", .mem_mb = 64,
		.hostfs = VM_NOHOSTFS,
	};
	char **argv = uml_argv(&p);

	cr_assert_not_null(argv);
	for (char **a = argv; *a; a++) {
		cr_expect(strncmp(*a, "vec0", 4) != 0);
		cr_expect(strncmp(*a, "fed.ip", 6) != 0);
	}
	cr_expect_eq(argv_count(argv), 12);
	uml_argv_free(argv);
}

Test(vmrunner, uml_command_line_refuses_missing_fields)
{
	struct uml_params p = {
		.kernel = "k", .cow = "c", .base = "b", .mem_mb = 64,
		.hostfs = VM_NOHOSTFS,
	};

	p.hostfs = NULL;	/* never boot a guest with the host's files */
	cr_expect_null(uml_argv(&p));
	p.hostfs = VM_NOHOSTFS;
	p.mem_mb = 0;
	cr_expect_null(uml_argv(&p));
	p.mem_mb = 64;
	p.tap = "fed0";		/* a tap without an address */
	cr_expect_null(uml_argv(&p));
	uml_argv_free(NULL);
}

Test(vmrunner, state_names)
{
	cr_expect_str_eq(vm_state_name(VM_STARTING), "starting");
	cr_expect_str_eq(vm_state_name(VM_UP), "up");
	cr_expect_str_eq(vm_state_name(VM_BACKOFF), "backoff");
	cr_expect_str_eq(vm_state_name(VM_STOPPED), "stopped");
}

Test(vmrunner, status_json_lists_each_vm)
{
	struct vm a, b;
	struct vm *vms[2] = { &a, &b };
	json_t *j, *v;
	char *s;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	strcpy(a.file, "web.fedsnap");
	strcpy(a.service, "www.example.org:80");
	memset(a.id, 'a', 64);
	a.version = 3;
	a.guest_port = 80;
	a.host_port = 23817;
	a.leased = true;
	inet_pton(AF_INET, "10.77.0.2", &a.lease.guest);
	strcpy(a.tap, "fed0a4d0002");
	a.state = VM_UP;
	a.restarts = 2;
	a.up_since = 1000;
	a.pid = 1234;
	strcpy(b.file, "blog.fedsnap");
	strcpy(b.service, "blog.example.org:80");
	memset(b.id, 'b', 64);
	b.state = VM_BACKOFF;
	b.up_since = 0;

	j = vm_status_json(vms, 2, 1100);
	cr_assert_not_null(j);
	cr_expect_str_eq(json_string_value(json_object_get(j, "updated")),
			 "1970-01-01T00:18:20Z");
	cr_assert_eq(json_array_size(json_object_get(j, "vms")), 2);
	v = json_array_get(json_object_get(j, "vms"), 0);
	cr_expect_str_eq(json_string_value(json_object_get(v, "service")),
			 "www.example.org:80");
	cr_expect_eq(strlen(json_string_value(json_object_get(v, "snapshot"))), 64);
	cr_expect_eq(json_integer_value(json_object_get(v, "version")), 3);
	cr_expect_str_eq(json_string_value(json_object_get(v, "address")),
			 "10.77.0.2");
	cr_expect_eq(json_integer_value(json_object_get(v, "host_port")), 23817);
	cr_expect_eq(json_integer_value(json_object_get(v, "guest_port")), 80);
	cr_expect_str_eq(json_string_value(json_object_get(v, "state")), "up");
	cr_expect_eq(json_integer_value(json_object_get(v, "restarts")), 2);
	cr_expect_eq(json_integer_value(json_object_get(v, "uptime")), 100);
	cr_expect_str_eq(json_string_value(json_object_get(v, "tap")),
			 "fed0a4d0002");
	v = json_array_get(json_object_get(j, "vms"), 1);
	cr_expect_str_eq(json_string_value(json_object_get(v, "state")),
			 "backoff");
	cr_expect_str_eq(json_string_value(json_object_get(v, "address")), "");
	cr_expect_eq(json_integer_value(json_object_get(v, "uptime")), 0);
	cr_expect_eq(json_integer_value(json_object_get(v, "host_port")), 0);
	s = json_dumps(j, JSON_COMPACT);
	cr_expect_not_null(s);
	free(s);
	json_decref(j);

	j = vm_status_json(NULL, 0, 0);
	cr_expect_eq(json_array_size(json_object_get(j, "vms")), 0);
	json_decref(j);
}
