/*
 * egress.h - outbound access for a guest: what an owner asks for in the
 * signed manifest, and what a peer's policy grants.
 *
 * By default a guest opens no connection at all (docs/vmrunner.md, "Network
 * and egress").  An owner whose service needs to call out (a mail relay, an
 * API, DNS) lists the destination ports it needs, as "PROTO/PORT" words:
 *
 *   "egress":["tcp/443","udp/53"]
 *
 * sorted by protocol then port, without repeats, at most EGRESS_MAX.  A peer
 * lends outbound access with `fed-vmrunner --egress-allow tcp/443,...`; a
 * guest gets the words both name (egress_grant), and even then only towards
 * public IPv4 addresses: never the peer itself, its networks, other VMs,
 * private, loopback, link-local, multicast or reserved ranges.
 *
 * This file is pure: parsing, ordering and intersecting lists.
 */
#ifndef FED_EGRESS_H
#define FED_EGRESS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

#define EGRESS_MAX 16			/* words in one list */
#define EGRESS_WORD_MAX 9		/* "udp/65535" */
#define EGRESS_LIST_MAX (EGRESS_MAX * (EGRESS_WORD_MAX + 1))

enum egress_proto { EGRESS_TCP = 1, EGRESS_UDP = 2 };

struct egress_rule {
	enum egress_proto proto;
	uint16_t port;			/* 1..65535 */
};

/* A list in canonical order (egress_sort): tcp before udp, ports rising. */
struct egress {
	unsigned n;
	struct egress_rule r[EGRESS_MAX];
};

/* Parse one word, "tcp/443" or "udp/53".  Returns 0 or -1 (e says why). */
int egress_rule_parse(const char *s, struct egress_rule *r, struct err *e);

/* "tcp/443" into out (at least EGRESS_WORD_MAX + 1 bytes). */
void egress_rule_format(const struct egress_rule *r, char *out, size_t size);

/* Parse a comma-separated list ("tcp/80,tcp/443"; "" and "none" are the
 * empty list), sorted, repeats refused.  Returns 0 or -1. */
int egress_parse_list(const char *s, struct egress *out, struct err *e);

/* Add one rule, keeping the order; a repeat or a full list is an error. */
int egress_add(struct egress *g, const struct egress_rule *r, struct err *e);

/* The list as "tcp/80,tcp/443" ("none" when empty). */
void egress_format(const struct egress *g, char *out, size_t size);

/* From a manifest's "egress" member: an array of words, non-empty and
 * already in canonical order (one manifest, one byte string). */
int egress_from_json(const json_t *arr, struct egress *out, struct err *e);

/* The array of words (new reference), or NULL on allocation failure. */
json_t *egress_to_json(const struct egress *g);

/* What a guest may open: the rules both want and allow name. */
void egress_grant(const struct egress *want, const struct egress *allow,
		  struct egress *out);

#endif
