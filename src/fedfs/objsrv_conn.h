/*
 * objsrv_conn.h - which connections the object server takes (the object
 * server's own; not for the rest of fedfs).
 *
 * libmicrohttpd counts connections per address and in all, but when every
 * slot is taken it can only refuse newcomers: 16 addresses holding 64 idle
 * connections each locked every peer out.  This keeps its own table (its
 * accept policy and connection notifications) and, when full, makes room
 * for an address that holds fewer connections than the busiest one by
 * closing one of that one's idle connections (no request in progress):
 * addresses converge on equal shares, and no set of them can starve the
 * rest; a request in progress is never cut.  See objsrv_conn.c.
 */
#ifndef FED_FEDFS_OBJSRV_CONN_H
#define FED_FEDFS_OBJSRV_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <microhttpd.h>

struct objsrv_conn;
struct objsrv_addr_count;

struct objsrv_conns {
	unsigned limit;			/* connections in all, fixed */
	unsigned per_addr;		/* from one address, fixed */
	pthread_mutex_t lock;		/* guards all below */
	unsigned total;			/* open connections */
	unsigned evicting;		/* of those, shut down, not yet closed */
	struct objsrv_conn *head;	/* every open connection */
	struct objsrv_addr_count *addrs;	/* connections per address */
	size_t naddrs, capaddrs;
	/* since the last warning line, and ever */
	uint64_t refused_addr, refused_full, evicted;
	uint64_t refused_total, evicted_total;
	double logged;			/* mono_now() of the last line */
};

/* The limits for a process whose soft fd limit is nofile: the total well
 * under it (a connection sending a chunk holds its file open too), the
 * per-address share a fraction of the total. */
void objsrv_conns_limits(unsigned long nofile, unsigned *limit,
			 unsigned *per_addr);
int objsrv_conns_init(struct objsrv_conns *cs, unsigned limit,
		      unsigned per_addr);
void objsrv_conns_destroy(struct objsrv_conns *cs);

/* MHD's accept policy (cls: the objsrv_conns). */
enum MHD_Result objsrv_conns_accept(void *cls, const struct sockaddr *sa,
				    socklen_t len);
/* MHD_OPTION_NOTIFY_CONNECTION (cls: the objsrv_conns). */
void objsrv_conns_notify(void *cls, struct MHD_Connection *c,
			 void **socket_context,
			 enum MHD_ConnectionNotificationCode code);
/* A request on c starts (busy) or is done: a busy one is never evicted. */
void objsrv_conns_busy(struct MHD_Connection *c, bool busy);

/* The client a connection counts against: its IPv4 address, or the /64
 * of its IPv6 one, as 16 bytes (IPv4 as ::ffff:a.b.c.d). */
void objsrv_addr_key(const struct sockaddr *sa, uint8_t key[16]);

/* Figures for /metrics. */
void objsrv_conns_counts(struct objsrv_conns *cs, unsigned *open,
			 uint64_t *refused, uint64_t *evicted);

#endif
