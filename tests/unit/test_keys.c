/*
 * test_keys.c - key files (mode 0600, never overwritten, others-readable
 * refused), RFC 3339 times and signed requests.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/keyfile.h"
#include "common/sigreq.h"
#include "lib/testutil.h"

static char *dir;
static void setup(void) { dir = tu_tmpdir(); }
static void teardown(void) { tu_rmtree(dir); free(dir); }

TestSuite(keyfile, .init = setup, .fini = teardown);

Test(keyfile, create_is_0600_and_loads_back)
{
	char *path = tu_path(dir, "k");
	uint8_t seed[32], pub[32], seed2[32], pub2[32];
	struct stat st;
	struct err e;

	cr_assert_eq(keyfile_create(path, seed, pub, &e), 0, "%s", e.msg);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(st.st_size, 65);
	cr_assert_eq(keyfile_load(path, seed2, pub2, &e), 0, "%s", e.msg);
	cr_assert_arr_eq(seed, seed2, 32);
	cr_assert_arr_eq(pub, pub2, 32);
	free(path);
}

Test(keyfile, never_overwrites)
{
	char *path = tu_path(dir, "k");
	uint8_t seed[32], pub[32];
	struct err e;

	tu_write_file(path, "keep me", 7);
	cr_assert_eq(keyfile_create(path, seed, pub, &e), -1);
	cr_assert(strstr(e.msg, "File exists") != NULL, "%s", e.msg);
	free(path);
}

Test(keyfile, refuses_group_or_world_readable)
{
	char *path = tu_path(dir, "k");
	uint8_t seed[32], pub[32];
	struct err e;

	cr_assert_eq(keyfile_create(path, seed, pub, &e), 0, "%s", e.msg);
	chmod(path, 0640);
	cr_assert_eq(keyfile_load(path, seed, pub, &e), -1);
	cr_assert(strstr(e.msg, "lets others read") != NULL, "%s", e.msg);
	chmod(path, 0604);
	cr_assert_eq(keyfile_load(path, seed, pub, &e), -1);
	chmod(path, 0600);
	cr_assert_eq(keyfile_load(path, seed, pub, &e), 0, "%s", e.msg);
	free(path);
}

Test(keyfile, refuses_garbage_and_symlinks)
{
	char *path = tu_path(dir, "k"), *link = tu_path(dir, "l");
	uint8_t seed[32], pub[32];
	struct err e;

	tu_write_file(path, "not a key at all\n", 17);
	chmod(path, 0600);
	cr_assert_eq(keyfile_load(path, seed, pub, &e), -1);
	cr_assert(strstr(e.msg, "64 hex digits") != NULL, "%s", e.msg);
	cr_assert_eq(symlink(path, link), 0);
	cr_assert_eq(keyfile_load(link, seed, pub, &e), -1);
	free(path);
	free(link);
}

/* Whitespace around the digits, either end, is allowed (docs/formats.md);
 * a FIFO at the path is refused at once, not waited on. */
Test(keyfile, surrounding_whitespace_and_a_fifo)
{
	char *path = tu_path(dir, "k"), *fifo = tu_path(dir, "f");
	char text[80], hex[65];
	uint8_t seed[32], pub[32], seed2[32], pub2[32];
	struct err e;

	cr_assert_eq(keyfile_create(path, seed, pub, &e), 0, "%s", e.msg);
	hex_encode(seed, 32, hex);
	snprintf(text, sizeof(text), " \t%s\t \n", hex);
	unlink(path);
	tu_write_file(path, text, strlen(text));
	chmod(path, 0600);
	cr_assert_eq(keyfile_load(path, seed2, pub2, &e), 0, "%s", e.msg);
	cr_assert_arr_eq(seed2, seed, 32);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(keyfile_load(fifo, seed2, pub2, &e), -1);
	cr_assert(strstr(e.msg, "not a regular file") != NULL, "%s", e.msg);
	free(path);
	free(fifo);
}

Test(keyfile, public_key_file)
{
	char *path = tu_path(dir, "k.pub");
	uint8_t pub[32];
	struct err e;
	static const char hex[] =
	    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\n";

	tu_write_file(path, hex, strlen(hex));
	cr_assert_eq(pubkey_load(path, pub, &e), 0, "%s", e.msg);
	cr_assert_eq(pub[0], 0xd7);
	tu_write_file(path, "d75a98", 6);
	cr_assert_eq(pubkey_load(path, pub, &e), -1);
	free(path);
}

Test(timefmt, strict_rfc3339)
{
	char buf[RFC3339_LEN + 1];
	time_t t;

	rfc3339_format(0, buf);
	cr_assert_str_eq(buf, "1970-01-01T00:00:00Z");
	cr_assert_eq(rfc3339_parse("2026-11-25T23:52:53Z", &t), 0);
	rfc3339_format(t, buf);
	cr_assert_str_eq(buf, "2026-11-25T23:52:53Z");
	cr_assert_eq(rfc3339_parse("2026-11-25 23:52:53Z", &t), -1);
	cr_assert_eq(rfc3339_parse("2026-11-25T23:52:53+01:00", &t), -1);
	cr_assert_eq(rfc3339_parse("2026-02-30T00:00:00Z", &t), -1);
	cr_assert_eq(rfc3339_parse("2026-11-25T23:52:53Zjunk", &t), -1);
	cr_assert_eq(rfc3339_parse("", &t), -1);
}

Test(sigreq, round_trip_and_every_refusal)
{
	uint8_t seed[32], pub[32], who[32];
	struct sigreq r;
	struct err e;
	time_t now = 1800000000;
	const char body[] = "{\"addr\":\"10.0.0.1:7000\"}";

	cr_assert_eq(ed25519_keygen(seed, pub, &e), 0);
	cr_assert_eq(sigreq_sign(seed, "POST", "/v1/peers", body, strlen(body),
				 now, &r, &e), 0, "%s", e.msg);
	cr_assert_eq(sigreq_verify(r.key, r.date, r.sig, "POST", "/v1/peers",
				   body, strlen(body), now + 10, who, &e),
		     SIGREQ_OK, "%s", e.msg);
	cr_assert_arr_eq(who, pub, 32);

	/* missing headers */
	cr_assert_eq(sigreq_verify(NULL, r.date, r.sig, "POST", "/v1/peers",
				   body, strlen(body), now, NULL, &e),
		     SIGREQ_MALFORMED);
	cr_assert(strstr(e.msg, "X-Fed-Key") != NULL, "%s", e.msg);
	cr_assert_eq(sigreq_verify(r.key, r.date, NULL, "POST", "/v1/peers",
				   body, strlen(body), now, NULL, &e),
		     SIGREQ_MALFORMED);
	/* stale either way */
	cr_assert_eq(sigreq_verify(r.key, r.date, r.sig, "POST", "/v1/peers",
				   body, strlen(body), now + 301, NULL, &e),
		     SIGREQ_STALE);
	cr_assert_eq(sigreq_verify(r.key, r.date, r.sig, "POST", "/v1/peers",
				   body, strlen(body), now - 301, NULL, &e),
		     SIGREQ_STALE);
	/* moved to another method, path or body */
	cr_assert_eq(sigreq_verify(r.key, r.date, r.sig, "PUT", "/v1/peers",
				   body, strlen(body), now, NULL, &e),
		     SIGREQ_BAD_SIGNATURE);
	cr_assert_eq(sigreq_verify(r.key, r.date, r.sig, "POST", "/v1/trusted",
				   body, strlen(body), now, NULL, &e),
		     SIGREQ_BAD_SIGNATURE);
	cr_assert_eq(sigreq_verify(r.key, r.date, r.sig, "POST", "/v1/peers",
				   "{}", 2, now, NULL, &e),
		     SIGREQ_BAD_SIGNATURE);
	/* not hex */
	r.sig[5] = 'z';
	cr_assert_eq(sigreq_verify(r.key, r.date, r.sig, "POST", "/v1/peers",
				   body, strlen(body), now, NULL, &e),
		     SIGREQ_MALFORMED);
}
