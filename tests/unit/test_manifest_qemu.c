/*
 * test_manifest_qemu.c - the signed fields of a running-state (machine
 * "qemu") manifest: round trip, what must go together (machine, delta
 * format, the "qemu" object), and every bound with its message.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/manifest.h"

static void
sample(struct manifest *m)
{
	memset(m, 0, sizeof(*m));
	strcpy(m->name, "web");
	memset(m->owner, 0xab, sizeof(m->owner));
	strcpy(m->created, "2026-11-25T23:52:53Z");
	m->version = 7;
	strcpy(m->host, "www.example.org");
	m->port = 80;
	m->guest_port = 80;
	memset(m->base, 0x11, sizeof(m->base));
	memset(m->kernel, 0x22, sizeof(m->kernel));
	strcpy(m->machine, "qemu");
	strcpy(m->format, DELTA_FORMAT_FEDQEMU2);
	m->delta.size = 5000;
	m->delta.chunk_size = 4096;
	m->delta.nchunks = 2;
	m->delta.chunks = calloc(2, SHA256_LEN);
	strcpy(m->qemu.version, "7.2.22");
	strcpy(m->qemu.machine, "pc-q35-7.2");
	m->qemu.mem_mb = 128;
	m->qemu.state_size = 56936632;
	m->qemu.args = json_pack("[s,s,s,s]", "-M", "pc-q35-7.2", "-kernel",
				 "@kernel");
}

/* The sample, serialised, with one JSON edit applied (canonical again). */
static char *
edited(const char *path, json_t *value)
{
	struct manifest m;
	struct err e;
	size_t len;
	char *s, *out;
	json_t *root, *obj;
	char key[64], *dot;

	sample(&m);
	s = manifest_serialize(&m, &len, &e);
	cr_assert_not_null(s, "%s", e.msg);
	manifest_free(&m);
	root = json_loadb(s, len, 0, NULL);
	free(s);
	snprintf(key, sizeof(key), "%s", path);
	obj = root;
	if ((dot = strchr(key, '.')) != NULL) {
		*dot = '\0';
		obj = json_object_get(root, key);
		memmove(key, dot + 1, strlen(dot + 1) + 1);
	}
	if (value == NULL)
		json_object_del(obj, key);
	else
		json_object_set_new(obj, key, value);
	out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(root);
	return out;
}

static void
refused(const char *path, json_t *value, const char *want)
{
	struct manifest m;
	struct err e;
	char *text = edited(path, value);

	cr_assert_eq(manifest_parse(text, strlen(text), &m, &e), -1,
		     "accepted: %s", text);
	cr_assert(strstr(e.msg, want) != NULL, "error '%s' lacks '%s'", e.msg,
		  want);
	free(text);
}

Test(manifest_qemu, round_trip_keeps_every_field)
{
	struct manifest m, back;
	struct err e;
	size_t len, len2;
	char *s, *again;

	sample(&m);
	s = manifest_serialize(&m, &len, &e);
	cr_assert_not_null(s, "%s", e.msg);
	cr_assert(strstr(s, "\"qemu\":{\"args\":[\"-M\",\"pc-q35-7.2\","
			 "\"-kernel\",\"@kernel\"],\"machine\":\"pc-q35-7.2\","
			 "\"mem_mb\":128,\"state_size\":56936632,"
			 "\"version\":\"7.2.22\"}") != NULL, "%s", s);
	cr_assert_eq(manifest_parse(s, len, &back, &e), 0, "%s", e.msg);
	cr_assert_str_eq(back.machine, "qemu");
	cr_assert_str_eq(back.format, DELTA_FORMAT_FEDQEMU2);
	cr_assert_str_eq(back.qemu.version, "7.2.22");
	cr_assert_str_eq(back.qemu.machine, "pc-q35-7.2");
	cr_assert_eq(back.qemu.mem_mb, 128);
	cr_assert_eq(back.qemu.state_size, 56936632);
	cr_assert(json_equal(back.qemu.args, m.qemu.args));
	cr_assert_null(back.extra, "qemu is a known field, not an extra");
	again = manifest_serialize(&back, &len2, &e);
	cr_assert_eq(len, len2);
	cr_assert_arr_eq(s, again, len);
	manifest_free(&m);
	manifest_free(&back);
	free(s);
	free(again);
}

Test(manifest_qemu, machine_format_and_fields_go_together)
{
	refused("qemu", NULL, "machine \"qemu\" needs the field 'qemu'");
	refused("delta.format", json_string(DELTA_FORMAT_FEDCOW1),
		"machine \"qemu\" needs delta format 'fedqemu2+zlib'");
	refused("machine", json_string("uml"),
		"machine \"uml\" needs delta format 'fedcow1+zlib'");
}

Test(manifest_qemu, a_uml_manifest_may_not_carry_qemu_fields)
{
	struct manifest m;
	struct err e;
	size_t len;

	sample(&m);
	strcpy(m.machine, "uml");
	strcpy(m.format, DELTA_FORMAT_FEDCOW1);
	cr_assert_null(manifest_serialize(&m, &len, &e));
	cr_assert(strstr(e.msg, "'qemu' is only for machine \"uml\"") == NULL);
	cr_assert(strstr(e.msg, "only for machine \"qemu\"") != NULL, "%s",
		  e.msg);
	manifest_free(&m);
}

Test(manifest_qemu, bounds_and_types)
{
	refused("qemu.mem_mb", json_integer(8), "'qemu.mem_mb' is 8");
	refused("qemu.mem_mb", json_integer(70000), "'qemu.mem_mb' is 70000");
	refused("qemu.mem_mb", json_string("128"), "'qemu.mem_mb' must be an "
		"integer");
	refused("qemu.state_size", json_integer(0), "'qemu.state_size' is 0");
	refused("qemu.state_size", json_integer(1LL << 41), "'qemu.state_size'");
	refused("qemu.version", json_string("7.2-rc1"), "'qemu.version' must be");
	refused("qemu.version", json_string(""), "'qemu.version' must be");
	refused("qemu.version", json_string("1234567890.1234567890.1234567890."),
		"'qemu.version' is 33 bytes");
	refused("qemu.machine", json_string("pc q35"), "'qemu.machine' must be");
	refused("qemu.args", json_array(), "'qemu.args' must be an array of");
	refused("qemu.args", json_string("-M q35"), "'qemu.args' must be an "
		"array");
	refused("qemu.args", json_pack("[s,i]", "-M", 1), "'qemu.args[1]' "
		"must be a string");
	refused("qemu.args", json_pack("[s]", ""), "'qemu.args[0]' must be a "
		"string of 1..1024");
	refused("qemu.args", json_pack("[s]", "a\nb"), "'qemu.args[0]' must be "
		"printable ASCII");
	refused("qemu.args", NULL, "'qemu.args' is missing");
	refused("qemu.extra", json_true(), "unknown field 'qemu.extra'");
	refused("qemu", json_string("x"), "field 'qemu' must be an object");
}

Test(manifest_qemu, too_many_args)
{
	json_t *a = json_array();

	for (int i = 0; i < MANIFEST_QEMU_ARGS_MAX + 1; i++)
		json_array_append_new(a, json_string("-S"));
	refused("qemu.args", a, "'qemu.args' must be an array of 1..128");
}
