/*
 * answer_verify.c - benchmark tool for bench/mirror.sh: what a client
 * pays to check one signed lookup answer (common/signed_answer.c), with
 * the parse alone as the baseline.
 *
 *   answer_verify ANSWER.json PUBHEX SUBJECT N
 *
 * Runs N rounds of each, on the bytes of ANSWER.json (a real answer, as
 * an authority or a mirror served it):
 *   parse   signed_answer_parse (JSON, duplicate keys refused)
 *   verify  signed_answer_parse + signed_answer_verify (canonical dump,
 *           Ed25519 verification, expiry and subject): the whole check a
 *           client makes of an answer from the authority or a mirror.
 * Prints "parse_us X" and "verify_us Y" (microseconds per answer, mean
 * over N).  Exit status 1 if the answer does not verify.  Built by
 * bench/mirror.sh, not by make.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hex.h"
#include "common/signed_answer.h"

static double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
bench_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = malloc(SIGNED_ANSWER_MAX + 1);

	if (f == NULL || buf == NULL) {
		perror(path);
		exit(1);
	}
	*len = fread(buf, 1, SIGNED_ANSWER_MAX, f);
	fclose(f);
	return buf;
}

int
main(int argc, char **argv)
{
	uint8_t key[ED25519_PUB_LEN];
	struct signed_meta m;
	struct err e;
	double t0, parse_s, verify_s;
	size_t len;
	long n;
	char *text;

	if (argc != 5 || (n = atol(argv[4])) < 1) {
		fprintf(stderr, "usage: answer_verify ANSWER PUBHEX SUBJECT N\n");
		return 1;
	}
	if (crypto_init(&e) == -1 || signed_trust_key(argv[2], key, &e) == -1) {
		fprintf(stderr, "answer_verify: %s\n", e.msg);
		return 1;
	}
	text = bench_read(argv[1], &len);
	t0 = bench_now();
	for (long i = 0; i < n; i++)
		json_decref(signed_answer_parse(text, len, &e));
	parse_s = bench_now() - t0;
	t0 = bench_now();
	for (long i = 0; i < n; i++) {
		json_t *j = signed_answer_parse(text, len, &e);

		if (j == NULL || signed_answer_verify(j, SIGNED_LOOKUP, argv[3],
			key, time(NULL), &m, &e) != SIGNED_OK) {
			fprintf(stderr, "answer_verify: %s\n", e.msg);
			return 1;
		}
		json_decref(j);
	}
	verify_s = bench_now() - t0;
	printf("parse_us %.1f\nverify_us %.1f\n", parse_s * 1e6 / (double)n,
	       verify_s * 1e6 / (double)n);
	free(text);
	return 0;
}
