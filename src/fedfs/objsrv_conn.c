/*
 * objsrv_conn.c - connection admission for the object server (see
 * objsrv_conn.h).
 *
 * Limits.  At most `limit` connections in all (OBJSRV_CONN_MAX, or less
 * when the fd limit is low: half of what is left of it after
 * OBJSRV_FD_RESERVE for the store, FUSE and the fetcher, as a connection
 * that sends a chunk holds its file too), and `per_addr` = limit / 8 from
 * one address: peers behind one NAT share an address, so a fixed small
 * number would lock out the fourth of them; an eighth lets any seven
 * others in beside the busiest.  libmicrohttpd enforces the same per
 * address, and a little more than `limit` in all (room for connections
 * being evicted, still open).
 *
 * Fairness.  With every slot taken, a newcomer from an address holding n
 * connections is let in if some address holds more than n + 1 and has one
 * idle (no request in progress): that one is shut down (shutdown(2); its
 * thread then closes it and says so, objsrv_conns_notify).  Shares so
 * converge on equal ones: a flood from any number of addresses leaves a
 * peer with few connections getting in.  Evicting only idle ones means a
 * chunk being sent is never cut; a flood of connections that all send
 * requests is bounded instead by the upload slots (objsrv.c) and the
 * idle timeout.
 *
 * Logs.  Refusals and evictions are counted and said in one line at most
 * every OBJSRV_CONN_LOG_S: a few seconds of hostile traffic used to write
 * thousands of lines.
 *
 * Locks: cs->lock, alone (never with objsrv.c's upload lock).  The fd of a
 * connection in the table stays open while it is there: libmicrohttpd
 * says it closed (NOTIFY_CLOSED, which takes the lock) before it closes it.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "fedfs/objsrv_conn.h"

#define OBJSRV_CONN_MAX 1024
#define OBJSRV_CONN_MIN 64
#define OBJSRV_FD_RESERVE 256
#define OBJSRV_CONN_LOG_S 10.0

/* One connection: libmicrohttpd's socket context for it. */
struct objsrv_conn {
	struct objsrv_conns *cs;
	uint8_t key[16];
	int fd;
	bool busy;			/* a request in progress; cs->lock */
	bool evicted;			/* shut down by us; cs->lock */
	struct objsrv_conn *prev, *next;	/* cs->head; cs->lock */
};

struct objsrv_addr_count {
	uint8_t key[16];
	unsigned n;
};

void
objsrv_conns_limits(unsigned long nofile, unsigned *limit, unsigned *per_addr)
{
	unsigned long l = nofile > OBJSRV_FD_RESERVE + 2 * OBJSRV_CONN_MIN ?
			  (nofile - OBJSRV_FD_RESERVE) / 2 : OBJSRV_CONN_MIN;

	*limit = l > OBJSRV_CONN_MAX ? OBJSRV_CONN_MAX : (unsigned)l;
	*per_addr = *limit / 8;
}

int
objsrv_conns_init(struct objsrv_conns *cs, unsigned limit, unsigned per_addr)
{
	memset(cs, 0, sizeof(*cs));
	cs->limit = limit;
	cs->per_addr = per_addr;
	return pthread_mutex_init(&cs->lock, NULL) == 0 ? 0 : -1;
}

void
objsrv_conns_destroy(struct objsrv_conns *cs)
{
	struct objsrv_conn *c, *next;

	for (c = cs->head; c != NULL; c = next) {	/* none: MHD stopped */
		next = c->next;
		free(c);
	}
	free(cs->addrs);
	pthread_mutex_destroy(&cs->lock);
}

void
objsrv_addr_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);		/* unknown: all such share one */
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;

		memcpy(key, a, IN6_IS_ADDR_V4MAPPED(a) ? 16 : 8);
	}
}

/* The count of key (made, at 0, if make), or NULL.  Lock held. */
static struct objsrv_addr_count *
objsrv_addr_find(struct objsrv_conns *cs, const uint8_t key[16], bool make)
{
	for (size_t i = 0; i < cs->naddrs; i++)
		if (memcmp(cs->addrs[i].key, key, 16) == 0)
			return &cs->addrs[i];
	if (!make)
		return NULL;
	if (cs->naddrs == cs->capaddrs) {
		size_t cap = cs->capaddrs ? 2 * cs->capaddrs : 64;
		void *p = realloc(cs->addrs, cap * sizeof(*cs->addrs));

		if (p == NULL)
			return NULL;
		cs->addrs = p;
		cs->capaddrs = cap;
	}
	memcpy(cs->addrs[cs->naddrs].key, key, 16);
	cs->addrs[cs->naddrs].n = 0;
	return &cs->addrs[cs->naddrs++];
}

/* Make room for an address holding n: shut down an idle connection of the
 * busiest address if it holds more than n + 1.  Returns whether it did.
 * Lock held. */
static bool
objsrv_conns_evict(struct objsrv_conns *cs, unsigned n)
{
	struct objsrv_addr_count *top = NULL;
	struct objsrv_conn *c;

	for (size_t i = 0; i < cs->naddrs; i++)
		if (top == NULL || cs->addrs[i].n > top->n)
			top = &cs->addrs[i];
	if (top == NULL || top->n <= n + 1)
		return false;
	for (c = cs->head; c != NULL; c = c->next) {
		if (c->busy || c->evicted || memcmp(c->key, top->key, 16) != 0)
			continue;
		shutdown(c->fd, SHUT_RDWR);
		c->evicted = true;
		cs->evicting++;
		top->n--;		/* counted as gone: shares converge */
		cs->evicted++;
		cs->evicted_total++;
		return true;
	}
	return false;
}

/* One line, at most every OBJSRV_CONN_LOG_S, of what was refused.  Lock
 * held. */
static void
objsrv_conns_log(struct objsrv_conns *cs)
{
	double now = mono_now();

	if (cs->refused_addr + cs->refused_full + cs->evicted == 0 ||
	    (cs->logged > 0 && now - cs->logged < OBJSRV_CONN_LOG_S))
		return;
	log_warn("object server: refused %llu connection%s over the %u per "
		 "address and %llu with all %u taken, evicted %llu idle one%s "
		 "of the busiest addresses (in the last %.0f s at most; %u "
		 "open from %zu addresses)",
		 (unsigned long long)cs->refused_addr,
		 cs->refused_addr == 1 ? "" : "s", cs->per_addr,
		 (unsigned long long)cs->refused_full, cs->limit,
		 (unsigned long long)cs->evicted, cs->evicted == 1 ? "" : "s",
		 OBJSRV_CONN_LOG_S, cs->total, cs->naddrs);
	cs->refused_addr = cs->refused_full = cs->evicted = 0;
	cs->logged = now;
}

enum MHD_Result
objsrv_conns_accept(void *cls, const struct sockaddr *sa, socklen_t len)
{
	struct objsrv_conns *cs = cls;
	const struct objsrv_addr_count *a;
	uint8_t key[16];
	bool ok = true;
	unsigned n;

	(void)len;
	objsrv_addr_key(sa, key);
	pthread_mutex_lock(&cs->lock);
	a = objsrv_addr_find(cs, key, false);
	n = a != NULL ? a->n : 0;
	if (n >= cs->per_addr) {
		cs->refused_addr++;
		cs->refused_total++;
		ok = false;
	} else if (cs->total - cs->evicting >= cs->limit &&
		   !objsrv_conns_evict(cs, n)) {
		cs->refused_full++;
		cs->refused_total++;
		ok = false;
	}
	objsrv_conns_log(cs);
	pthread_mutex_unlock(&cs->lock);
	return ok ? MHD_YES : MHD_NO;
}

static void
objsrv_conns_started(struct objsrv_conns *cs, struct MHD_Connection *mc,
		     void **socket_context)
{
	const union MHD_ConnectionInfo *ci;
	struct objsrv_conn *c = calloc(1, sizeof(*c));
	struct objsrv_addr_count *a;

	if (c == NULL)
		return;			/* not counted: nothing to evict */
	c->cs = cs;
	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	objsrv_addr_key(ci != NULL ? ci->client_addr : NULL, c->key);
	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	c->fd = ci != NULL ? ci->connect_fd : -1;
	pthread_mutex_lock(&cs->lock);
	if (c->fd < 0 || (a = objsrv_addr_find(cs, c->key, true)) == NULL) {
		pthread_mutex_unlock(&cs->lock);
		free(c);
		return;
	}
	a->n++;
	cs->total++;
	c->next = cs->head;
	if (cs->head != NULL)
		cs->head->prev = c;
	cs->head = c;
	*socket_context = c;
	pthread_mutex_unlock(&cs->lock);
}

static void
objsrv_conns_closed(struct objsrv_conns *cs, struct objsrv_conn *c)
{
	struct objsrv_addr_count *a;

	pthread_mutex_lock(&cs->lock);
	if ((a = objsrv_addr_find(cs, c->key, false)) != NULL) {
		if (!c->evicted)
			a->n--;		/* an evicted one was, at once */
		if (a->n == 0)		/* keep the table to who is here */
			*a = cs->addrs[--cs->naddrs];
	}
	if (c->evicted)
		cs->evicting--;
	cs->total--;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		cs->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&cs->lock);
	free(c);
}

void
objsrv_conns_notify(void *cls, struct MHD_Connection *mc,
		    void **socket_context,
		    enum MHD_ConnectionNotificationCode code)
{
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		objsrv_conns_started(cls, mc, socket_context);
	else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL)
		objsrv_conns_closed(cls, *socket_context);
	if (code == MHD_CONNECTION_NOTIFY_CLOSED)
		*socket_context = NULL;
}

void
objsrv_conns_busy(struct MHD_Connection *mc, bool busy)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct objsrv_conn *c = ci != NULL ? ci->socket_context : NULL;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->cs->lock);
	c->busy = busy;
	pthread_mutex_unlock(&c->cs->lock);
}

void
objsrv_conns_counts(struct objsrv_conns *cs, unsigned *open,
		    uint64_t *refused, uint64_t *evicted)
{
	pthread_mutex_lock(&cs->lock);
	*open = cs->total;
	*refused = cs->refused_total;
	*evicted = cs->evicted_total;
	pthread_mutex_unlock(&cs->lock);
}
