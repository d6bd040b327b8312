/*
 * testutil.h - small helpers shared by the unit tests.
 */
#ifndef FED_TESTUTIL_H
#define FED_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A fresh directory under $TMPDIR (or /tmp), removed by tu_rmtree. */
char *tu_tmpdir(void);
void tu_rmtree(const char *path);

/* path = dir + "/" + name, malloc'd. */
char *tu_path(const char *dir, const char *name);

void tu_write_file(const char *path, const void *data, size_t len);
/* Whole file, malloc'd; *len set. */
uint8_t *tu_read_file(const char *path, size_t *len);

/* Deterministic pseudo-random bytes (not for keys). */
void tu_fill(uint8_t *buf, size_t len, uint32_t seed);

/* Add the Ed25519 group order L to a signature's S half (little-endian,
 * in place): a second encoding of the same signature, which RFC 8032
 * verifiers must refuse and libgcrypt alone accepts. */
void tu_ed25519_s_plus_l(uint8_t sig[64]);

/* Decode hex into a malloc'd buffer; *len set. */
uint8_t *tu_unhex(const char *hex, size_t *len);

/* Ask cond(arg) every millisecond until it is true or ms milliseconds
 * have passed: whether it came true.  Tests wait by polling, never by
 * sleeping a fixed time. */
bool tu_poll(int ms, bool (*cond)(void *), void *arg);

#endif
