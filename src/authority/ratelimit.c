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
 * The table is direct-mapped (RL_SLOTS, a keyed hash of the address, the
 * key random per process so nobody can aim at a slot): a client whose slot
 * another holds takes it over with a full bucket.  Two busy clients sharing
 * a slot by chance would reset each other's bucket to full, never starve
 * each other.  Striped mutexes, held for a few arithmetic operations.
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
#define RL_KEY_MAX 8		/* IPv4: 4 bytes; IPv6: its /64 */

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

/* The part of sa that names a client; 0 if none (then no limit). */
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

bool
ratelimit_take(struct ratelimit *rl, const struct sockaddr *sa, double now)
{
	uint8_t key[RL_KEY_MAX];
	size_t len = rl_key(sa, key);
	struct rl_slot *s;
	uint32_t h;
	bool ok;

	if (rl == NULL || rl->rate <= 0 || len == 0)
		return true;
	h = rl_hash(rl, key, len);
	s = &rl->slot[h % RL_SLOTS];
	pthread_mutex_lock(&rl->stripe[h % RL_STRIPES]);
	if (s->len != len || memcmp(s->key, key, len) != 0) {
		memcpy(s->key, key, len);
		s->len = (uint8_t)len;
		s->tokens = rl->burst;
		s->at = now;
	}
	s->tokens += (now - s->at) * rl->rate;
	if (s->tokens > rl->burst)
		s->tokens = rl->burst;
	s->at = now;
	ok = s->tokens >= 1;
	if (ok)
		s->tokens -= 1;
	pthread_mutex_unlock(&rl->stripe[h % RL_STRIPES]);
	return ok;
}
