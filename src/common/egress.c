/*
 * egress.c - outbound-access lists: parse, order, intersect (egress.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/egress.h"

static int
egress_cmp(const struct egress_rule *a, const struct egress_rule *b)
{
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return a->port < b->port ? -1 : a->port > b->port;
}

int
egress_rule_parse(const char *s, struct egress_rule *r, struct err *e)
{
	const char *slash = strchr(s, '/');
	unsigned long port = 0;
	size_t plen;

	if (slash == NULL)
		return err_set(e, "egress '%.16s': want PROTO/PORT, e.g. tcp/443",
			       s);
	plen = (size_t)(slash - s);
	if (plen == 3 && strncmp(s, "tcp", 3) == 0)
		r->proto = EGRESS_TCP;
	else if (plen == 3 && strncmp(s, "udp", 3) == 0)
		r->proto = EGRESS_UDP;
	else
		return err_set(e, "egress '%.16s': the protocol must be tcp or "
			       "udp", s);
	/* digits only, no sign, no leading zero: one word, one rule */
	if (slash[1] == '\0' || slash[1] == '0' || strlen(slash + 1) > 5)
		return err_set(e, "egress '%.16s': the port must be 1..65535",
			       s);
	for (const char *p = slash + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return err_set(e, "egress '%.16s': the port must be "
				       "1..65535", s);
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port > 65535)
		return err_set(e, "egress '%.16s': the port must be 1..65535",
			       s);
	r->port = (uint16_t)port;
	return 0;
}

void
egress_rule_format(const struct egress_rule *r, char *out, size_t size)
{
	snprintf(out, size, "%s/%u", r->proto == EGRESS_TCP ? "tcp" : "udp",
		 (unsigned)r->port);
}

int
egress_add(struct egress *g, const struct egress_rule *r, struct err *e)
{
	char w[EGRESS_WORD_MAX + 1];
	unsigned i = 0;

	egress_rule_format(r, w, sizeof(w));
	while (i < g->n && egress_cmp(&g->r[i], r) < 0)
		i++;
	if (i < g->n && egress_cmp(&g->r[i], r) == 0)
		return err_set(e, "egress %s is listed twice", w);
	if (g->n == EGRESS_MAX)
		return err_set(e, "egress: at most %d rules", EGRESS_MAX);
	memmove(&g->r[i + 1], &g->r[i], (g->n - i) * sizeof(g->r[0]));
	g->r[i] = *r;
	g->n++;
	return 0;
}

int
egress_parse_list(const char *s, struct egress *out, struct err *e)
{
	char word[EGRESS_WORD_MAX + 2];
	struct egress_rule r;

	out->n = 0;
	if (strcmp(s, "") == 0 || strcmp(s, "none") == 0)
		return 0;
	if (strlen(s) > EGRESS_LIST_MAX)
		return err_set(e, "egress list: longer than %d bytes",
			       EGRESS_LIST_MAX);
	while (*s != '\0') {
		size_t n = strcspn(s, ",");

		if (n == 0 || n >= sizeof(word))
			return err_set(e, "egress list: '%.*s' is not "
				       "PROTO/PORT", (int)(n > 16 ? 16 : n), s);
		memcpy(word, s, n);
		word[n] = '\0';
		if (egress_rule_parse(word, &r, e) < 0 ||
		    egress_add(out, &r, e) < 0)
			return -1;
		s += n;
		if (*s == ',' && *++s == '\0')
			return err_set(e, "egress list: ends with a comma");
	}
	return 0;
}

void
egress_format(const struct egress *g, char *out, size_t size)
{
	size_t used = 0;

	snprintf(out, size, "none");
	for (unsigned i = 0; i < g->n && used < size; i++) {
		char w[EGRESS_WORD_MAX + 1];

		egress_rule_format(&g->r[i], w, sizeof(w));
		used += (size_t)snprintf(out + used, size - used, "%s%s",
					 i ? "," : "", w);
	}
}

int
egress_from_json(const json_t *arr, struct egress *out, struct err *e)
{
	struct egress_rule r;
	size_t i;
	json_t *v;

	out->n = 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > EGRESS_MAX)
		return err_set(e, "manifest: 'egress' must be an array of 1..%d "
			       "words such as \"tcp/443\"", EGRESS_MAX);
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v))
			return err_set(e, "manifest: 'egress[%zu]' must be a "
				       "string", i);
		if (egress_rule_parse(json_string_value(v), &r, e) < 0)
			return -1;
		if (out->n > 0 && egress_cmp(&out->r[out->n - 1], &r) >= 0)
			return err_set(e, "manifest: 'egress' must be sorted "
				       "(tcp before udp, ports rising), without "
				       "repeats");
		out->r[out->n++] = r;
	}
	return 0;
}

json_t *
egress_to_json(const struct egress *g)
{
	json_t *arr = json_array();

	for (unsigned i = 0; arr != NULL && i < g->n; i++) {
		char w[EGRESS_WORD_MAX + 1];

		egress_rule_format(&g->r[i], w, sizeof(w));
		if (json_array_append_new(arr, json_string(w)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

void
egress_grant(const struct egress *want, const struct egress *allow,
	     struct egress *out)
{
	out->n = 0;
	for (unsigned i = 0; i < want->n; i++)
		for (unsigned j = 0; j < allow->n; j++)
			if (egress_cmp(&want->r[i], &allow->r[j]) == 0)
				out->r[out->n++] = want->r[i];
}
