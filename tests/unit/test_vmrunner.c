/*
 * test_vmrunner.c - the vmrunner's pure logic: the restart backoff (1 s
 * doubling to a 5 min cap, reset after 10 min up) and the status.json
 * document.  The UML command line is test_machine.c's.
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
