/*
 * test_authority_ratelimit.c - the per-client buckets of signed requests
 * (ratelimit.c), directly: burst then rate, per address; IPv4-mapped IPv6
 * is the IPv4 client; an IPv6 /48 has a bucket of its own over its /64s;
 * and two addresses sharing a slot share its bucket instead of taking
 * turns with fresh ones.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "authority/authority.h"

static struct sockaddr_in
v4(uint32_t host_order)
{
	struct sockaddr_in a = { .sin_family = AF_INET };

	a.sin_addr.s_addr = htonl(host_order);
	return a;
}

static struct sockaddr_in6
v6(const char *text)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };

	cr_assert_eq(inet_pton(AF_INET6, text, &a.sin6_addr), 1, "%s", text);
	return a;
}

/* How many of n requests at time now are taken. */
static int
takes(struct ratelimit *rl, const void *sa, int n, double now)
{
	int ok = 0;

	for (int i = 0; i < n; i++)
		ok += ratelimit_take(rl, sa, now);
	return ok;
}

Test(ratelimit, burst_then_rate_per_address)
{
	struct ratelimit *rl = ratelimit_new(2, 5);
	struct sockaddr_in a = v4(0x0a000001), b = v4(0x0a000002);

	cr_assert_eq(takes(rl, &a, 10, 100.0), 5, "the burst");
	cr_assert_eq(takes(rl, &b, 10, 100.0), 5, "another address: its own");
	cr_assert_eq(takes(rl, &a, 10, 101.0), 2, "a second later: the rate");
	cr_assert_eq(takes(rl, &a, 10, 200.0), 5, "refilled up to the burst");
	ratelimit_free(rl);
}

Test(ratelimit, no_rate_no_limit)
{
	struct ratelimit *rl = ratelimit_new(0, 5);
	struct sockaddr_in a = v4(0x0a000001);

	cr_assert_eq(takes(rl, &a, 1000, 1.0), 1000);
	cr_assert(ratelimit_take(rl, NULL, 1.0), "no address: no limit");
	ratelimit_free(rl);
}

Test(ratelimit, ipv4_mapped_is_the_ipv4_client)
{
	struct ratelimit *rl = ratelimit_new(1, 4);
	struct sockaddr_in a = v4(0xc0000201);	/* 192.0.2.1 */
	struct sockaddr_in6 m = v6("::ffff:192.0.2.1");

	cr_assert_eq(takes(rl, &a, 3, 10.0), 3);
	cr_assert_eq(takes(rl, &m, 3, 10.0), 1, "one bucket for both forms");
	ratelimit_free(rl);
}

Test(ratelimit, an_ipv6_48_is_limited_over_its_64s)
{
	struct ratelimit *rl = ratelimit_new(1, 5);
	char text[64];
	int ok = 0;

	/* 40 /64s of one /48, 5 each: the /48's 50 (10 x 5) cap them */
	for (int i = 0; i < 40; i++) {
		struct sockaddr_in6 a;

		snprintf(text, sizeof(text), "2001:db8:1:%x::1", i);
		a = v6(text);
		ok += takes(rl, &a, 5, 10.0);
	}
	cr_assert_eq(ok, 50, "%d taken from one /48", ok);
	/* another /48 is another client */
	struct sockaddr_in6 other = v6("2001:db8:2::1");

	cr_assert_eq(takes(rl, &other, 5, 10.0), 5);
	ratelimit_free(rl);
}

Test(ratelimit, addresses_sharing_a_slot_share_its_bucket)
{
	/* a rate too low to refill during the test */
	struct ratelimit *rl = ratelimit_new(1e-6, 5);
	struct sockaddr_in a = v4(0x0a000001);
	uint32_t found = 0;

	cr_assert_eq(takes(rl, &a, 10, 1.0), 5);
	/* find an address whose very first request is refused: one that
	 * landed in a slot whose bucket others emptied (a's, or one drained
	 * by earlier newcomers: 200000 tries over 16384 slots of 5 tokens).
	 * Were a newcomer given a fresh bucket, none ever would be. */
	for (uint32_t i = 2; i < 200000 && found == 0; i++) {
		struct sockaddr_in b = v4(0x0b000000 + i);

		if (!ratelimit_take(rl, (struct sockaddr *)&b, 1.0))
			found = i;
	}
	cr_assert_neq(found, 0, "no address shared a's drained bucket: "
		      "addresses in one slot take turns with fresh buckets");
	/* and a, back, is still refused */
	cr_assert_not(ratelimit_take(rl, (struct sockaddr *)&a, 1.0));
	ratelimit_free(rl);
}
