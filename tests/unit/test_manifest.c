/*
 * test_manifest.c - manifests: round trip, canonical form, every required
 * field missing in turn, wrong types, out-of-range values, oversized lines,
 * non-hex hashes, rollback.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/manifest.h"

#define H64(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
	       c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

/* A valid manifest with one 4 KiB chunk. */
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
	m->guest_port = 8080;
	memset(m->base, 0x11, sizeof(m->base));
	memset(m->kernel, 0x22, sizeof(m->kernel));
	strcpy(m->machine, "uml");
	strcpy(m->format, DELTA_FORMAT_FEDCOW1);
	m->delta.size = 5000;
	m->delta.chunk_size = 4096;
	m->delta.nchunks = 2;
	m->delta.chunks = calloc(2, SHA256_LEN);
	memset(m->delta.chunks[1], 0x33, SHA256_LEN);
}

static char *
sample_bytes(size_t *len)
{
	struct manifest m;
	struct err e;
	char *s;

	sample(&m);
	s = manifest_serialize(&m, len, &e);
	cr_assert_not_null(s, "%s", e.msg);
	manifest_free(&m);
	return s;
}

/* Parse text expecting failure with a message containing want. */
static void
expect_refused(const char *text, const char *want)
{
	struct manifest m;
	struct err e;

	cr_assert_eq(manifest_parse(text, strlen(text), &m, &e), -1,
		     "accepted: %s", text);
	cr_assert(strstr(e.msg, want) != NULL, "error '%s' lacks '%s'", e.msg,
		  want);
}

/* Parse the sample as a JSON object, apply edit, and re-serialise it
 * canonically (so only the edit can be the reason for a refusal). */
static char *
edited(void (*edit)(json_t *root, const char *arg), const char *arg)
{
	size_t len;
	char *s = sample_bytes(&len), *out;
	json_t *root = json_loadb(s, len, 0, NULL);

	cr_assert_not_null(root);
	edit(root, arg);
	out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(root);
	free(s);
	return out;
}

static json_t *
member(json_t *root, const char **key)
{
	const char *dot = strchr(*key, '.');
	static char head[32];

	if (dot == NULL)
		return root;
	memcpy(head, *key, (size_t)(dot - *key));
	head[dot - *key] = '\0';
	*key = dot + 1;
	return json_object_get(root, head);
}

static void
drop(json_t *root, const char *key)
{
	json_t *obj = member(root, &key);

	cr_assert_eq(json_object_del(obj, key), 0, "no %s", key);
}

Test(manifest, round_trip_is_byte_exact_and_id_stable)
{
	struct manifest m;
	struct err e;
	size_t len, len2;
	char *s = sample_bytes(&len), *again;
	uint8_t id1[32], id2[32];

	cr_assert_eq(manifest_parse(s, len, &m, &e), 0, "%s", e.msg);
	cr_assert_str_eq(m.name, "web");
	cr_assert_eq(m.version, 7);
	cr_assert_eq(m.port, 80);
	cr_assert_eq(m.guest_port, 8080);
	cr_assert_eq(m.delta.nchunks, 2);
	cr_assert_eq(m.delta.chunks[1][0], 0x33);
	again = manifest_serialize(&m, &len2, &e);
	cr_assert_eq(len, len2);
	cr_assert_arr_eq(s, again, len);
	manifest_id(s, len, id1);
	manifest_id(again, len2, id2);
	cr_assert_arr_eq(id1, id2, 32);
	cr_assert_eq(strchr(s, ' '), NULL, "canonical form has no spaces");
	manifest_free(&m);
	free(s);
	free(again);
}

Test(manifest, every_required_field_missing_in_turn)
{
	static const char *const fields[] = {
		"name", "owner", "created", "version", "service", "service.host",
		"service.port", "service.guest_port", "base", "kernel", "machine",
		"delta", "delta.format", "delta.size", "delta.chunk_size",
		"delta.chunks",
	};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *leaf = strrchr(fields[i], '.');
		char want[64], *text = edited(drop, fields[i]);

		snprintf(want, sizeof(want), "'%s' is missing",
			 strncmp(fields[i], "delta.", 6) == 0 && fields[i][6] != 'f'
			     ? leaf + 1 : fields[i]);
		expect_refused(text, want);
		free(text);
	}
}

static void
set_raw(json_t *root, const char *arg)
{
	/* arg: "key=json" */
	char key[64];
	const char *eq = strchr(arg, '='), *k = key;
	json_t *obj, *v;

	memcpy(key, arg, (size_t)(eq - arg));
	key[eq - arg] = '\0';
	v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
	cr_assert_not_null(v, "bad test json %s", eq + 1);
	obj = member(root, &k);
	json_object_set_new(obj, k, v);
}

static void
expect_edit_refused(const char *edit, const char *want)
{
	char *text = edited(set_raw, edit);

	expect_refused(text, want);
	free(text);
}

/* Replace text `from` in the canonical sample by `to` and expect refusal:
 * for inputs jansson itself would not produce. */
static void
expect_text_refused(const char *from, const char *to, const char *want)
{
	size_t len;
	char *s = sample_bytes(&len), *at = strstr(s, from), *out;

	cr_assert_not_null(at, "sample lacks %s", from);
	cr_assert(asprintf(&out, "%.*s%s%s", (int)(at - s), s, to,
			   at + strlen(from)) > 0);
	expect_refused(out, want);
	free(out);
	free(s);
}

Test(manifest, wrong_types)
{
	expect_edit_refused("name=5", "'name' must be a string");
	expect_edit_refused("version=\"7\"", "'version' must be an integer");
	expect_edit_refused("version=7.0", "'version' must be an integer");
	expect_edit_refused("service=[]", "'service' must be an object");
	expect_edit_refused("service.port=\"80\"", "'service.port' must be an integer");
	expect_edit_refused("delta=\"x\"", "'delta' must be an object");
	expect_edit_refused("delta.chunks={}", "'chunks' must be an array");
	expect_edit_refused("delta.chunks=[1,2]", "chunk 0 is not 64");
	expect_edit_refused("owner=null", "'owner' must be a string");
	expect_refused("[]", "not a JSON object");
	expect_refused("{\"name\":", "invalid JSON");
}

Test(manifest, out_of_range_values)
{
	expect_edit_refused("version=0", "'version' is 0");
	expect_edit_refused("version=-1", "'version' is -1");
	expect_edit_refused("version=9007199254740992", "'version' is");
	expect_text_refused("\"version\":7", "\"version\":99999999999999999999999",
			    "invalid JSON");
	expect_edit_refused("service.port=0", "'service.port' is 0");
	expect_edit_refused("service.port=65536", "'service.port' is 65536");
	expect_edit_refused("service.guest_port=70000", "'service.guest_port'");
	expect_edit_refused("delta.size=0", "'chunks' has 2 hashes but size 0");
	expect_edit_refused("delta.size=1000000000000000", "out of range");
	expect_edit_refused("delta.size=9000", "'chunks' has 2 hashes but size "
			    "9000 needs 3");
	expect_edit_refused("delta.chunk_size=5000", "power of two");
	expect_edit_refused("delta.chunk_size=1073741824", "power of two");
	expect_edit_refused("machine=\"kvm\"", "'machine' must be");
	expect_edit_refused("delta.format=\"raw\"", "unknown delta format");
	expect_edit_refused("created=\"yesterday\"", "'created' must be an RFC 3339");
	expect_edit_refused("name=\"../../etc\"", "'name' must be");
	expect_edit_refused("name=\"\"", "'name' must be");
	expect_edit_refused("service.host=\"WWW.example.org\"", "'service.host'");
	expect_edit_refused("service.host=\"a..b\"", "'service.host'");
	expect_edit_refused("service.host=\"-a.b\"", "'service.host'");
	expect_edit_refused("service.extra=1", "unknown field 'service.extra'");
}

Test(manifest, oversized_strings_and_lines)
{
	char *big = malloc(11u << 20), *text;
	size_t n = 11u << 20;
	char edit[400];

	/* a 10 MB line is refused before it is parsed */
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	{
		struct manifest m;
		struct err e;

		cr_assert_eq(manifest_parse(big, n, &m, &e), -1);
		cr_assert(strstr(e.msg, "more than the") != NULL, "%s", e.msg);
	}
	free(big);
	snprintf(edit, sizeof(edit), "name=\"%0100d\"", 0);
	expect_edit_refused(edit, "'name' is 100 bytes, at most 64");
	text = malloc(300);
	memset(text, 'a', 299);
	text[299] = '\0';
	snprintf(edit, sizeof(edit), "service.host=\"%s\"", text);
	expect_edit_refused(edit, "'service.host' is 299 bytes");
	free(text);
}

Test(manifest, non_hex_hashes)
{
	expect_edit_refused("base=\"" H64("g") "\"", "'base' must be 64 lower-case");
	expect_edit_refused("kernel=\"" H64("A") "\"", "'kernel' must be 64");
	expect_edit_refused("owner=\"abc\"", "'owner' must be 64");
	expect_edit_refused("delta.chunks=[\"" H64("0") "\",\"xyz\"]",
			    "chunk 1 is not 64");
}

Test(manifest, not_canonical_or_ambiguous)
{
	size_t len;
	char *s = sample_bytes(&len), *spaced, *p;
	json_t *root = json_loadb(s, len, 0, NULL);

	spaced = json_dumps(root, JSON_SORT_KEYS);	/* with spaces */
	expect_refused(spaced, "not in canonical form");
	free(spaced);
	spaced = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	/* sorted already?  then swap the first two keys by hand */
	if (strcmp(spaced, s) == 0) {
		free(spaced);
		spaced = NULL;
	} else {
		expect_refused(spaced, "not in canonical form");
		free(spaced);
	}
	/* duplicate keys, a newline, NUL inside a string */
	p = malloc(len + 32);
	snprintf(p, len + 32, "{\"name\":\"a\",%s", s + 1);
	expect_refused(p, "duplicate");
	free(p);
	expect_refused("{\"name\":\"a\"}\n", "one line");
	expect_text_refused("\"name\":\"web\"", "\"name\":\"a\\u0000b\"",
			    "invalid JSON");
	free(s);
}

Test(manifest, unknown_top_level_fields_are_kept)
{
	char *text = edited(set_raw, "zz_future={\"a\":[1,2]}");
	struct manifest m;
	struct err e;
	size_t len;
	char *again;

	cr_assert_eq(manifest_parse(text, strlen(text), &m, &e), 0, "%s", e.msg);
	again = manifest_serialize(&m, &len, &e);
	cr_assert_str_eq(again, text);
	manifest_free(&m);
	free(again);
	free(text);
}

Test(manifest, rollback_check)
{
	struct manifest m;
	struct err e;

	sample(&m);
	cr_assert_eq(manifest_check_version(&m, -1, &e), 0);
	cr_assert_eq(manifest_check_version(&m, 7, &e), 0);
	cr_assert_eq(manifest_check_version(&m, 3, &e), 0);
	cr_assert_eq(manifest_check_version(&m, 8, &e), -1);
	cr_assert(strstr(e.msg, "rollback") != NULL, "%s", e.msg);
	manifest_free(&m);
}

Test(manifest, service_parse)
{
	char host[MANIFEST_HOST_MAX + 1];
	uint16_t port;
	struct err e;

	cr_assert_eq(service_parse("www.example.org:80", host, &port, &e), 0);
	cr_assert_str_eq(host, "www.example.org");
	cr_assert_eq(port, 80);
	cr_assert_eq(service_parse("10.1.2.3:65535", host, &port, &e), 0);
	cr_assert_eq(service_parse("www.example.org", host, &port, &e), -1);
	cr_assert_eq(service_parse("www.example.org:0", host, &port, &e), -1);
	cr_assert_eq(service_parse("www.example.org:65536", host, &port, &e), -1);
	cr_assert_eq(service_parse("www.example.org:+80", host, &port, &e), -1);
	cr_assert_eq(service_parse(":80", host, &port, &e), -1);
	cr_assert_eq(service_parse("a/b:80", host, &port, &e), -1);
}

/* An owner's egress request: signed with the rest, one byte string per
 * request, and every malformed word refused with what is wrong. */
Test(manifest, egress_request)
{
	char *text = edited(set_raw, "egress=[\"tcp/443\",\"udp/53\"]");
	struct manifest m;
	struct err e;
	size_t len;
	char *again;

	cr_assert_eq(manifest_parse(text, strlen(text), &m, &e), 0, "%s", e.msg);
	cr_assert_eq(m.egress.n, 2);
	cr_assert_eq(m.egress.r[0].proto, EGRESS_TCP);
	cr_assert_eq(m.egress.r[0].port, 443);
	cr_assert_eq(m.egress.r[1].proto, EGRESS_UDP);
	again = manifest_serialize(&m, &len, &e);
	cr_assert_str_eq(again, text, "round trip is byte exact");
	cr_assert_null(m.extra, "a known field, not kept as extra");
	manifest_free(&m);
	free(again);
	free(text);
	expect_edit_refused("egress=[\"udp/53\",\"tcp/443\"]", "sorted");
	expect_edit_refused("egress=[\"tcp/443\",\"tcp/443\"]", "sorted");
	expect_edit_refused("egress=[]", "array of 1..");
	expect_edit_refused("egress=\"tcp/443\"", "array of 1..");
	expect_edit_refused("egress=[443]", "must be a string");
	expect_edit_refused("egress=[\"icmp/1\"]", "tcp or udp");
	expect_edit_refused("egress=[\"tcp/0\"]", "1..65535");
	expect_edit_refused("egress=[\"tcp/65536\"]", "1..65535");
	expect_edit_refused("egress=[\"tcp/0443\"]", "1..65535");
	expect_edit_refused("egress=[\"tcp/+443\"]", "1..65535");
	expect_edit_refused("egress=[\"tcp443\"]", "PROTO/PORT");
}

/* A peer's --egress-allow list, and what a guest is granted. */
Test(manifest, egress_lists_and_grant)
{
	struct egress want, allow, got;
	char s[EGRESS_LIST_MAX + 1];
	struct err e;

	cr_assert_eq(egress_parse_list("udp/53,tcp/8443,tcp/443", &allow, &e), 0,
		     "%s", e.msg);
	egress_format(&allow, s, sizeof(s));
	cr_assert_str_eq(s, "tcp/443,tcp/8443,udp/53", "kept in order");
	cr_assert_eq(egress_parse_list("none", &want, &e), 0);
	cr_assert_eq(want.n, 0);
	egress_format(&want, s, sizeof(s));
	cr_assert_str_eq(s, "none");
	cr_assert_eq(egress_parse_list("tcp/443,", &want, &e), -1);
	cr_assert(strstr(e.msg, "comma") != NULL, "%s", e.msg);
	cr_assert_eq(egress_parse_list("tcp/443,,udp/53", &want, &e), -1);
	cr_assert_eq(egress_parse_list("tcp/1,tcp/1", &want, &e), -1);
	cr_assert(strstr(e.msg, "twice") != NULL, "%s", e.msg);
	cr_assert_eq(egress_parse_list("tcp/1,tcp/2,tcp/3,tcp/4,tcp/5,tcp/6,"
				       "tcp/7,tcp/8,tcp/9,tcp/10,tcp/11,tcp/12,"
				       "tcp/13,tcp/14,tcp/15,tcp/16,tcp/17",
				       &want, &e), -1, "at most 16");
	cr_assert_eq(egress_parse_list("tcp/443,tcp/25", &want, &e), 0);
	egress_grant(&want, &allow, &got);
	cr_assert_eq(got.n, 1, "only what both name");
	cr_assert_eq(got.r[0].port, 443);
	egress_grant(&allow, &(struct egress){ 0 }, &got);
	cr_assert_eq(got.n, 0, "a peer that lends nothing grants nothing");
}
