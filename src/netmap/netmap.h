/*
 * netmap.h - private addresses for VMs, and the host ports that reach them.
 *
 * Three parts, used together by the vmrunner (docs/netmap.md has the design
 * and the numbers):
 *
 *   leases   Each VM gets its own point-to-point /30 out of a private range
 *            (default 10.77.0.0/16) on its own tap device: the host end of
 *            the tap is .1 of the /30, the guest .2.  A lease is keyed by an
 *            owner string (snapshot id + instance, say) and persisted in a
 *            state directory, so asking again after a restart gives the same
 *            address back, and no address is handed out twice while leased.
 *
 *   ports    lease_listen() gives a lease a random free host port from a
 *            range (default 20000-29999), checked by binding it, and returns
 *            the listening socket itself, so nobody can take the port between
 *            choosing and serving it.  The port is persisted with the lease;
 *            after a restart the same port is tried first.
 *
 *   relay    One thread, one epoll loop, many mappings: TCP from a host port
 *            to <VM address>:<guest port>.  Non-blocking sockets, payload
 *            moved with splice() through a pipe per direction (no copy into
 *            user space), half-close propagated, backpressure (a side is not
 *            read while the pipe to the other is full), connect timeout.  A
 *            mapping's target can be switched atomically: new connections go
 *            to the new target, existing ones finish where they are.
 *
 * Thread safety: a lease_db is not locked; use it from one thread.  Every
 * relay_* call is safe from any thread except the relay's own: the call is
 * queued to the loop thread (eventfd) and waits until the loop has done it.
 */
#ifndef FED_NETMAP_H
#define FED_NETMAP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"

#define NETMAP_DEFAULT_RANGE	"10.77.0.0/16"
#define NETMAP_DEFAULT_PORT_MIN	20000
#define NETMAP_DEFAULT_PORT_MAX	29999
#define NETMAP_SUBNET_PREFIX	30	/* one /30 per VM: .0 net, .1 host, .2 guest */

/* ---------------------------------------------------------------- leases */

#define LEASE_KEY_MAX	128	/* with the NUL; keys are printable ASCII, no spaces */
#define LEASE_IFNAME_MAX 16	/* IFNAMSIZ */

struct lease_config {
	const char *range;	/* CIDR, prefix 8..30; NULL: NETMAP_DEFAULT_RANGE */
	uint16_t port_min;	/* host port range; 0 and 0: the defaults */
	uint16_t port_max;
	const char *bind_addr;	/* numeric address ports are bound on; NULL: 0.0.0.0 */
	bool readonly;		/* only read the state: no lock, no changes */
};

struct lease {
	char key[LEASE_KEY_MAX];
	struct in_addr subnet;	/* network address of the /30 */
	struct in_addr host;	/* host end of the tap: subnet + 1 */
	struct in_addr guest;	/* the VM: subnet + 2 */
	unsigned prefix;	/* NETMAP_SUBNET_PREFIX */
	uint16_t port;		/* host port; 0 until lease_listen() */
	int64_t created;	/* unix time the lease was first taken */
};

struct lease_db;

/*
 * Open (creating if needed) the leases kept in state_dir/leases.json.  A
 * writer holds an exclusive lock (state_dir/leases.lock) until it closes:
 * a second writer on the same directory is refused; readonly openers take
 * no lock and see the last complete state.  cfg may be NULL (defaults).
 * Returns 0 and *out (free with lease_db_close), or -1.
 */
int lease_db_open(const char *state_dir, const struct lease_config *cfg,
		  struct lease_db **out, struct err *e);
void lease_db_close(struct lease_db *db);

/*
 * The lease for key: the existing one if key already has a lease, else the
 * lowest free /30 in the range, persisted (temp file, fsync, rename) before
 * returning.  Returns 0 and fills *out, or -1 (the range is exhausted, the
 * key is invalid, the state cannot be written).
 */
int lease_alloc(struct lease_db *db, const char *key, struct lease *out,
		struct err *e);

/* Returns 0 and fills *out if key holds a lease, -1 if not. */
int lease_get(struct lease_db *db, const char *key, struct lease *out);

/*
 * A listening TCP socket (non-blocking, close-on-exec) on the lease's host
 * port: the port recorded with the lease if it can be bound again, else a
 * random free port of the range that no other lease records, which is then
 * persisted.  The caller owns *fd (hand it to relay_map_add).  Fills *out
 * with the lease as updated.  Returns 0, or -1 (no lease for key, no free
 * port).
 */
int lease_listen(struct lease_db *db, const char *key, int *fd,
		 struct lease *out, struct err *e);

/* Release key's address and port, persisted.  Returns 0, or -1 (no such
 * lease, state not written). */
int lease_free(struct lease_db *db, const char *key, struct err *e);

/* Give key `to` the host port that key `from` records (`from` keeps its
 * address, and no port): a newer version of a service takes over the port
 * its older one listened on, and must find it again after a restart.
 * Persisted.  Returns 0, or -1 (no such lease, state not written). */
int lease_move_port(struct lease_db *db, const char *from, const char *to,
		    struct err *e);

/* All leases, ordered by address, in a malloc'd array the caller frees
 * (NULL when there are none).  Returns 0, or -1. */
int lease_list(struct lease_db *db, struct lease **out, size_t *n,
	       struct err *e);

/* A tap name unique to the lease, derived from its address: "fed" + 8 hex
 * digits of the guest address ("fed0a4d0002"). */
void lease_ifname(const struct lease *l, char name[LEASE_IFNAME_MAX]);

/* ------------------------------------------------- addresses and sockets */

#define HOSTPORT_STRLEN	64	/* "[v6 address]:65535" and the NUL */

/*
 * Parse "ADDR:PORT" ("[ADDR]:PORT" for IPv6; ADDR may be a host name) into
 * *ss and *len.  Returns 0, or -1.
 */
int hostport_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
		   struct err *e);

/* "10.77.0.2:80" or "[::1]:80" into buf; returns buf. */
char *hostport_format(const struct sockaddr *sa, char buf[HOSTPORT_STRLEN]);

/* The port of an AF_INET or AF_INET6 address, host order. */
uint16_t hostport_port(const struct sockaddr *sa);

/*
 * A TCP socket bound to sa (SO_REUSEADDR) and listening, non-blocking and
 * close-on-exec.  Returns 0 and *fd (the caller's), or -1 with errno kept
 * (EADDRINUSE when the port is taken).
 */
int hostport_listen(const struct sockaddr *sa, socklen_t len, int *fd,
		    struct err *e);

/*
 * A socket created in the network namespace netns_fd (an open
 * /run/netns/NAME; -1: the calling thread's own), as socket(2) returns:
 * the calling thread enters the namespace, creates it and comes back.
 * A socket stays in the namespace it was created in, so connecting it
 * reaches addresses there (e.g. a QEMU machine's guest, docs/vmrunner.md).
 */
int netns_socket(int netns_fd, int domain, int type, int protocol);

/* ----------------------------------------------------------------- relay */

#define RELAY_NAME_MAX	LEASE_KEY_MAX

struct relay_config {
	int connect_timeout_ms;	/* to the target; 0: 5000 */
	int pipe_size;		/* bytes per direction per connection;
				   0: 256 KiB (F_SETPIPE_SZ; kernel default if refused) */
	bool log_conns;		/* a debug line per connection event */
	int idle_timeout_s;	/* an open connection that moves no byte
				   for this long is closed; 0: 600;
				   negative: never */
};

struct relay_map_info {
	char name[RELAY_NAME_MAX];
	struct sockaddr_storage listen;	/* where clients connect */
	struct sockaddr_storage target;	/* where new connections go */
	uint64_t conns_total;	/* accepted since the mapping was added */
	uint64_t conns_active;	/* open now (any target) */
	uint64_t connect_failed; /* refused, unreachable or timed out */
	uint64_t idle_closed;	/* closed after idle_timeout_s of silence */
	uint64_t bytes_up;	/* client -> target, delivered */
	uint64_t bytes_down;	/* target -> client, delivered */
};

struct relay;

/*
 * A relay with no mappings and its loop thread running (the thread blocks
 * every signal; SIGPIPE from a dead peer stays there).  cfg may be NULL.
 * Returns 0 and *out (stop and free with relay_free), or -1.
 */
int relay_new(const struct relay_config *cfg, struct relay **out,
	      struct err *e);

/* Stop the loop, close every listener and connection, free r.  NULL is ok. */
void relay_free(struct relay *r);

/*
 * Relay connections accepted on listen_fd (a listening TCP socket, e.g. from
 * lease_listen) to target, under a name unique in this relay.  On success
 * the relay owns listen_fd; on failure the caller still does.
 * Returns 0, or -1 (name taken, not a listening socket).
 */
int relay_map_add(struct relay *r, const char *name, int listen_fd,
		  const struct sockaddr *target, socklen_t len, struct err *e);

/*
 * Point the mapping at a new target, atomically: every connection accepted
 * after this returns goes to the new target; open ones stay where they are
 * and finish.  Returns 0, or -1 (no such mapping).
 */
int relay_map_switch(struct relay *r, const char *name,
		     const struct sockaddr *target, socklen_t len,
		     struct err *e);

/*
 * The same, with the target in the network namespace netns_fd (-1: the
 * relay's own): each connection to it is made from a socket created there
 * (netns_socket).  The relay keeps its own duplicate of netns_fd.
 */
int relay_map_add_ns(struct relay *r, const char *name, int listen_fd,
		     const struct sockaddr *target, socklen_t len, int netns_fd,
		     struct err *e);
int relay_map_switch_ns(struct relay *r, const char *name,
			const struct sockaddr *target, socklen_t len,
			int netns_fd, struct err *e);

/*
 * Close the mapping's listener (the port stops accepting) and reset all of
 * its open connections.  Returns 0, or -1 (no such mapping).
 */
/*
 * Reset the connections of mapping name still open to a target it was
 * switched away from (relay_map_switch): for when that target goes away,
 * so their clients see a reset at once rather than wait on a machine that
 * is gone (no reset comes from a deleted tap or namespace).  Returns 0, or
 * -1 (no such mapping).
 */
int relay_map_reset_old(struct relay *r, const char *name, struct err *e);

int relay_map_remove(struct relay *r, const char *name, struct err *e);

/* Every mapping with its counters, in a malloc'd array the caller frees
 * (NULL when there are none).  Returns 0, or -1. */
int relay_map_list(struct relay *r, struct relay_map_info **out, size_t *n,
		   struct err *e);

#endif
