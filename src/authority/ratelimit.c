/*
 * ratelimit.c - signed requests per client address, a token bucket each.
 *
 * Every signed request costs an Ed25519 verification, a row in seen_sigs
 * and an entry in the replay set, which is bounded (REPLAY_MAX): anyone can
 * make keys, so without a limit one client could fill the set with
 * throwaway signed requests and have every peer's requests refused for the
 * ten minutes of the validity window.  So each client address (IPv4, or an
 * IPv6 /64, what one host is usually given) may send `rate` signed requests
 * a second on average, `burst` at once; past that, 429 until its bucket
 * refills.  Reads are not limited.
 *
 * An IPv6 client also takes from the bucket of its /48 (ten times the
 * rate and burst): a /64 is what one host is given, but whoever holds a
 * /48 holds 65536 of them, enough buckets to fill the replay set.
 *
 * The table is direct-mapped (RL_SLOTS, a keyed hash of the address, the
 * key random per process so nobody can aim at a slot).  A client finding
 * another in its slot takes the slot over, but with a full bucket only if
 * the other's had refilled (was idle): two addresses that share a slot
 * share its bucket, rather than take turns with fresh ones.  Striped
 * mutexes (a slot always maps to one), held for a few operations.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "authority/authority.h"

#define RL_SLOTS   16384u
#define RL_STRIPES 64u
#define RL_KEY_MAX 8		/* IPv4: 4 bytes; IPv6: its /64 or /48 */
#define RL_WIDE    10		/* a /48's rate and burst, times a host's */

_Static_assert(RL_SLOTS % RL_STRIPES == 0, "a slot maps to one stripe");

struct rl_slot {
	uint8_t key[RL_KEY_MAX];
	uint8_t len;		/* 0: empty */
	double tokens;
	double at;		/* when tokens was computed, s */
};

struct ratelimit {
	double rate, burst;
	uint64_t seed[2];
	pthread_mutex_t stripe[RL_STRIPES];
	struct rl_slot slot[RL_SLOTS];
};

struct ratelimit *
ratelimit_new(double rate, double burst)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));

	if (rl == NULL)
		return NULL;
	rl->rate = rate;
	rl->burst = burst >= 1 ? burst : 1;
	if (getrandom(rl->seed, sizeof(rl->seed), 0) != sizeof(rl->seed)) {
		free(rl);
		return NULL;
	}
	for (unsigned i = 0; i < RL_STRIPES; i++)
		pthread_mutex_init(&rl->stripe[i], NULL);
	return rl;
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	for (unsigned i = 0; i < RL_STRIPES; i++)
		pthread_mutex_destroy(&rl->stripe[i]);
	free(rl);
}

/* The part of sa that names a client (IPv4 address, IPv6 /64); 0 if
 * none (then no limit). */
static size_t
rl_key(const struct sockaddr *sa, uint8_t key[RL_KEY_MAX])
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					      0xff, 0xff };

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		memcpy(key, &in->sin_addr, 4);
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		const uint8_t *b = in6->sin6_addr.s6_addr;

		if (memcmp(b, v4mapped, sizeof(v4mapped)) == 0) {
			memcpy(key, b + 12, 4);
			return 4;
		}
		memcpy(key, b, 8);
		return 8;
	}
	return 0;
}

/* A keyed FNV-1a over the key: enough spread, and the seed keeps a
 * client from choosing which slot it lands in. */
static uint32_t
rl_hash(const struct ratelimit *rl, const uint8_t *key, size_t len)
{
	uint64_t h = 14695981039346656037ull ^ rl->seed[0];

	for (size_t i = 0; i < len; i++) {
		h ^= key[i];
		h *= 1099511628211ull;
	}
	h ^= rl->seed[1];
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (uint32_t)h;
}

/* Take a token from the bucket of key (len bytes), of rate and burst
 * times scale.  Returns whether there was one. */
static bool
rl_take_one(struct ratelimit *rl, const uint8_t *key, size_t len,
	    double scale, double now)
{
	uint32_t h = rl_hash(rl, key, len);
	struct rl_slot *s = &rl->slot[h % RL_SLOTS];
	double rate = rl->rate * scale, burst = rl->burst * scale;
	bool ok;

	pthread_mutex_lock(&rl->stripe[h % RL_STRIPES]);
	if (s->len != len || memcmp(s->key, key, len) != 0) {
		/* taken over; a fresh bucket only if the holder's was full */
		if (s->len == 0 || s->tokens + (now - s->at) * rate >= burst) {
			s->tokens = burst;
			s->at = now;
		}
		memcpy(s->key, key, len);
		s->len = (uint8_t)len;
	}
	s->tokens += (now - s->at) * rate;
	if (s->tokens > burst)
		s->tokens = burst;
	s->at = now;
	ok = s->tokens >= 1;
	if (ok)
		s->tokens -= 1;
	pthread_mutex_unlock(&rl->stripe[h % RL_STRIPES]);
	return ok;
}

/* Give back a token taken by rl_take_one (its wider bucket refused). */
static void
rl_refund(struct ratelimit *rl, const uint8_t *key, size_t len)
{
	uint32_t h = rl_hash(rl, key, len);
	struct rl_slot *s = &rl->slot[h % RL_SLOTS];

	pthread_mutex_lock(&rl->stripe[h % RL_STRIPES]);
	if (s->len == len && memcmp(s->key, key, len) == 0)
		s->tokens += 1;
	pthread_mutex_unlock(&rl->stripe[h % RL_STRIPES]);
}

bool
ratelimit_take(struct ratelimit *rl, const struct sockaddr *sa, double now)
{
	uint8_t key[RL_KEY_MAX];
	size_t len = rl_key(sa, key);

	if (rl == NULL || rl->rate <= 0 || len == 0)
		return true;
	if (!rl_take_one(rl, key, len, 1, now))
		return false;
	/* an IPv6 host's /48 too (6 bytes: a key of its own length, so
	 * never the same slot entry as a /64 or an IPv4 address) */
	if (len == 8 && !rl_take_one(rl, key, 6, RL_WIDE, now)) {
		rl_refund(rl, key, len);
		return false;
	}
	return true;
}
