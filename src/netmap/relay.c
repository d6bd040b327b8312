/*
 * relay.c - TCP relay from host ports to VMs: one thread, one epoll loop.
 *
 * A relay owns mappings (a listening socket and a target address) and
 * sessions (one accepted client and the connection to the target made for
 * it).  Each session moves bytes in two flows, up (client -> target) and
 * down (target -> client); a flow is a pipe between two sockets:
 *
 *     client --splice--> [pipe up] --splice--> target
 *     client <--splice-- [pipe down] <--splice-- target
 *
 * splice() moves page references, not bytes: the payload never enters user
 * space.  A flow reads its source only while its pipe has room, so a slow
 * reader stops the relay reading the writer, whose kernel then stops the
 * writer (backpressure); nothing is buffered here beyond the pipe.
 *
 * Session states:
 *
 *   CONNECTING  client accepted, non-blocking connect() to the target in
 *               progress; the client is not read.  Connected -> OPEN;
 *               error or connect_timeout_ms -> closed (client reset).
 *   OPEN        both flows pump.  A flow whose source said EOF and whose
 *               pipe is empty sends shutdown(SHUT_WR) to its destination
 *               (half-close) and is done; when both flows are done the
 *               session is closed normally.  An error on either socket
 *               (reset, EPIPE, EPOLLERR) resets both sockets (SO_LINGER 0),
 *               so neither peer mistakes an abort for a clean end.
 *
 * Sockets are registered edge-triggered for IN|OUT|RDHUP once and never
 * modified: any event on either socket pumps both flows until neither can
 * move (EAGAIN on a read or write, pipe full or empty).  Each socket keeps
 * "may be readable / writable" bits, set by its events and cleared by
 * EAGAIN, so a pump does not knock on a socket that has nothing.  A
 * session that is still moving after SESSION_BUDGET bytes goes on the
 * ready list and is pumped again after the next epoll_wait(timeout 0), so
 * one fast transfer cannot starve thousands of others.  Empty pipes of
 * closed sessions are kept (up to PIPE_POOL) for new ones, and accepted
 * sockets inherit TCP_NODELAY and keepalive from the listener: fewer
 * system calls per connection.
 *
 * Listeners are level-triggered: at most ACCEPT_BATCH accepts per event.
 * When out of descriptors the listener is paused for ACCEPT_PAUSE_MS
 * instead of spinning.  Connect deadlines are a FIFO (the timeout is the
 * same for every session), so the next deadline is always its head.
 *
 * Other threads talk to the loop through commands: a caller queues one
 * under r->lock, writes the eventfd, and waits on r->done until the loop
 * has carried it out, so the loop alone ever touches mappings and sessions.
 * Objects closed while a batch of epoll events is being handled are only
 * marked dead and freed after the batch.
 *
 * Idle sessions: TCP keepalive finds peers that died, but not clients that
 * are alive and silent, each holding two descriptors for ever (a few
 * thousand such would stop every mapping).  So an open session that
 * delivers no byte either way for idle_timeout_s (10 min by default, as
 * proxies do; negative: never) is closed: with a FIN to both sides, or, if
 * bytes are stuck in its pipes (a reader that stopped reading), with a
 * reset, so that nobody takes the cut for a clean end.  Open sessions are
 * kept in order of their last delivery (a move to the tail per pump that
 * delivered), so the next to expire is always the head.
 *
 * Not done: UDP, PROXY protocol.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "netmap/netmap.h"

#define CONNECT_TIMEOUT_MS	5000
#define IDLE_TIMEOUT_S		600	/* an open session with no byte moved */
#define PIPE_SIZE		(256 * 1024)
#define SESSION_BUDGET		(1024 * 1024)	/* bytes per flow per turn */
#define ACCEPT_BATCH		64
#define ACCEPT_PAUSE_MS		100
#define MAX_EVENTS		256
#define PIPE_POOL		128	/* empty pipes kept for new sessions */
#define KEEPALIVE_IDLE_S	60
#define KEEPALIVE_INTVL_S	10
#define KEEPALIVE_CNT		6

enum relay_kind { KIND_WAKE, KIND_LISTEN, KIND_SIDE };

/* What an epoll event points at: the first member of each owner. */
struct relay_ev {
	enum relay_kind kind;
};

struct session;

struct side {
	struct relay_ev ev;		/* KIND_SIDE */
	struct session *s;
	int fd;
	bool rd, wr;			/* may be readable, writable: set by
					   an epoll event, cleared by EAGAIN */
};

struct flow {
	int pipe[2];
	size_t queued;			/* bytes in the pipe */
	bool eof;			/* the source said EOF */
	bool done;			/* EOF passed on: shutdown(SHUT_WR) */
};

enum session_state { S_CONNECTING, S_OPEN, S_DEAD };

struct mapping;

struct session {
	struct side client, target;
	struct flow up, down;		/* up: client -> target */
	struct mapping *map;
	enum session_state state;
	uint64_t id;
	int64_t deadline;		/* connect deadline, ms (CONNECTING) */
	int64_t active_at;		/* last byte delivered, ms (OPEN) */
	uint64_t gen;			/* its mapping's target when it began */
	bool on_ready;
	TAILQ_ENTRY(session) map_entry;	/* in map->sessions */
	TAILQ_ENTRY(session) wait_entry; /* in r->connecting or r->dead */
	TAILQ_ENTRY(session) ready_entry; /* in r->ready */
	TAILQ_ENTRY(session) open_entry; /* in r->open (OPEN) */
};
TAILQ_HEAD(session_list, session);

struct mapping {
	struct relay_ev ev;		/* KIND_LISTEN */
	char name[RELAY_NAME_MAX];
	int fd;
	bool dead;
	bool paused;			/* out of descriptors */
	int64_t resume_at;		/* ms, when paused */
	struct sockaddr_storage listen;
	struct sockaddr_storage target;
	socklen_t target_len;
	int netns_fd;			/* the target's network namespace; -1 */
	uint64_t gen;			/* switches of target so far */
	uint64_t conns_total, conns_active, connect_failed, idle_closed;
	uint64_t bytes_up, bytes_down;
	struct session_list sessions;
	TAILQ_ENTRY(mapping) entry;	/* in r->maps or r->dead_maps */
};
TAILQ_HEAD(mapping_list, mapping);

enum relay_op { OP_ADD, OP_SWITCH, OP_RESET_OLD, OP_REMOVE, OP_LIST,
		OP_STOP };

struct relay_cmd {
	enum relay_op op;
	const char *name;
	int fd;
	const struct sockaddr *target;
	socklen_t target_len;
	bool has_netns;			/* netns_fd is the target's namespace */
	int netns_fd;
	struct relay_map_info *list;	/* OP_LIST result */
	size_t nlist;
	int rc;
	bool done;
	struct err err;
	TAILQ_ENTRY(relay_cmd) entry;
};
TAILQ_HEAD(cmd_list, relay_cmd);

struct relay {
	struct relay_ev wake_ev;	/* KIND_WAKE */
	int epfd;
	int wakefd;			/* eventfd: commands are queued */
	int connect_timeout_ms;
	int64_t idle_ms;		/* <= 0: never */
	int pipe_size;
	bool log_conns;
	bool stopping;
	uint64_t next_id;
	struct mapping_list maps;
	struct mapping_list dead_maps;
	struct session_list connecting;	/* by deadline */
	struct session_list ready;	/* budget spent, more to move */
	struct session_list open;	/* by last delivery, oldest first */
	struct session_list dead;	/* freed after the batch */
	size_t nready;
	int pool[PIPE_POOL][2];		/* empty pipes, ready for reuse */
	size_t npool;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;		/* protects cmds, stopped */
	pthread_cond_t done;
	struct cmd_list cmds;
	bool stopped;			/* the loop has exited */
};

static int64_t
relay_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ sessions */

static void
relay_sock_tune(int fd)
{
	int one = 1, idle = KEEPALIVE_IDLE_S, intvl = KEEPALIVE_INTVL_S,
	    cnt = KEEPALIVE_CNT;

	/* best effort: a relay forwards what it has at once, and finds a
	 * peer that vanished (a VM killed with its tap) in about 2 minutes */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* A pipe for a new flow: an empty one from the pool, or a new one sized
 * to pipe_size (a refused resize only means EAGAIN sooner: the pump never
 * relies on the size).  Returns 0, or -1 with errno. */
static int
relay_pipe_get(struct relay *r, int p[2])
{
	if (r->npool > 0) {
		r->npool--;
		p[0] = r->pool[r->npool][0];
		p[1] = r->pool[r->npool][1];
		return 0;
	}
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	if (r->pipe_size != 65536)
		fcntl(p[1], F_SETPIPE_SZ, r->pipe_size);
	return 0;
}

/* Done with a flow's pipe: back to the pool if it is empty, else closed. */
static void
relay_flow_close(struct relay *r, struct flow *f)
{
	if (f->pipe[0] >= 0 && f->queued == 0 && r->npool < PIPE_POOL) {
		r->pool[r->npool][0] = f->pipe[0];
		r->pool[r->npool][1] = f->pipe[1];
		r->npool++;
		f->pipe[0] = f->pipe[1] = -1;
		return;
	}
	for (int i = 0; i < 2; i++)
		if (f->pipe[i] >= 0) {
			close(f->pipe[i]);
			f->pipe[i] = -1;
		}
}

/*
 * End a session: reset both peers if abort, close everything, unlink it
 * from every list; the memory is freed after the current batch.
 */
static void
relay_session_close(struct relay *r, struct session *s, bool abort,
		    const char *why)
{
	struct mapping *m = s->map;

	if (s->state == S_DEAD)
		return;
	if (r->log_conns)
		log_debug("relay %s: #%llu closed (%s), up %zu queued, "
			  "down %zu queued", m->name, (unsigned long long)s->id,
			  why, s->up.queued, s->down.queued);
	if (abort) {
		io_reset_on_close(s->client.fd);
		io_reset_on_close(s->target.fd);
	}
	/* out of the epoll set before the close: a child forked meanwhile
	 * (the vmrunner starts VMs) may hold a copy of the socket, which then
	 * stays open and registered, and its next event would name this
	 * session after it is freed */
	if (s->client.fd >= 0) {
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, s->client.fd, NULL);
		close(s->client.fd);
	}
	if (s->target.fd >= 0) {
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, s->target.fd, NULL);
		close(s->target.fd);
	}
	s->client.fd = s->target.fd = -1;
	relay_flow_close(r, &s->up);
	relay_flow_close(r, &s->down);
	if (s->state == S_CONNECTING)
		TAILQ_REMOVE(&r->connecting, s, wait_entry);
	else
		TAILQ_REMOVE(&r->open, s, open_entry);
	if (s->on_ready) {
		TAILQ_REMOVE(&r->ready, s, ready_entry);
		s->on_ready = false;
		r->nready--;
	}
	TAILQ_REMOVE(&m->sessions, s, map_entry);
	m->conns_active--;
	s->state = S_DEAD;
	TAILQ_INSERT_TAIL(&r->dead, s, wait_entry);
}

/*
 * Move what can be moved along one flow, at most budget bytes.  Returns
 * the bytes delivered, or -1 on an error that ends the session.
 * *more is set when the budget ran out with the flow still moving.  When
 * the source has said EOF and the pipe is empty, the destination gets
 * shutdown(SHUT_WR), unless the other flow is done too (last): then the
 * session is closed at once and close() sends the FIN.
 */
static ssize_t
relay_flow_pump(struct relay *r, struct flow *f, struct side *from,
		struct side *to, bool last, size_t budget, bool *more)
{
	size_t moved = 0;
	ssize_t n;
	bool progress;

	do {
		progress = false;
		if (!f->eof && from->rd && f->queued < (size_t)r->pipe_size) {
			n = splice(from->fd, NULL, f->pipe[1], NULL,
				   (size_t)r->pipe_size - f->queued,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				f->queued += (size_t)n;
				progress = true;
			} else if (n == 0) {
				f->eof = true;
			} else if (errno == EAGAIN) {
				/* with bytes queued, a pipe out of slots says
				 * EAGAIN too: then the socket may still have
				 * data, and no new edge would say so */
				if (f->queued == 0)
					from->rd = false;
			} else if (errno != EINTR) {
				return -1;
			}
		}
		if (f->queued > 0 && to->wr) {
			n = splice(f->pipe[0], NULL, to->fd, NULL, f->queued,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				f->queued -= (size_t)n;
				moved += (size_t)n;
				progress = true;
			} else if (n < 0 && errno == EAGAIN) {
				to->wr = false;	/* EPOLLOUT will say when */
			} else if (n < 0 && errno != EINTR) {
				return -1;
			}
		}
		if (progress && moved >= budget) {
			*more = true;
			break;
		}
	} while (progress);

	if (f->eof && f->queued == 0 && !f->done) {
		/* half-close: the destination reads EOF, may still reply */
		if (!last && shutdown(to->fd, SHUT_WR) < 0 && errno != ENOTCONN)
			return -1;
		f->done = true;
	}
	return (ssize_t)moved;
}

static void
relay_session_pump(struct relay *r, struct session *s)
{
	struct mapping *m = s->map;
	bool more = false;
	ssize_t up, down;
	int err = 0;

	up = relay_flow_pump(r, &s->up, &s->client, &s->target,
			     s->down.done, SESSION_BUDGET, &more);
	if (up > 0)
		m->bytes_up += (uint64_t)up;
	else if (up < 0)
		err = errno;
	down = relay_flow_pump(r, &s->down, &s->target, &s->client,
			       s->up.done, SESSION_BUDGET, &more);
	if (down > 0)
		m->bytes_down += (uint64_t)down;
	else if (down < 0)
		err = errno;
	if (up < 0 || down < 0) {
		relay_session_close(r, s, true, strerror(err));
		return;
	}
	if (up > 0 || down > 0) {	/* not idle: to the tail */
		s->active_at = relay_now_ms();
		TAILQ_REMOVE(&r->open, s, open_entry);
		TAILQ_INSERT_TAIL(&r->open, s, open_entry);
	}
	if (s->up.done && s->down.done) {
		relay_session_close(r, s, false, "both sides done");
		return;
	}
	if (more && !s->on_ready) {
		TAILQ_INSERT_TAIL(&r->ready, s, ready_entry);
		s->on_ready = true;
		r->nready++;
	}
}

static void
relay_session_connected(struct relay *r, struct session *s)
{
	TAILQ_REMOVE(&r->connecting, s, wait_entry);
	s->state = S_OPEN;
	s->active_at = relay_now_ms();
	TAILQ_INSERT_TAIL(&r->open, s, open_entry);
	if (r->log_conns)
		log_debug("relay %s: #%llu connected", s->map->name,
			  (unsigned long long)s->id);
	relay_session_pump(r, s);
}

static void
relay_session_failed(struct relay *r, struct session *s, const char *why)
{
	char to[HOSTPORT_STRLEN];

	s->map->connect_failed++;
	if (r->log_conns)
		log_debug("relay %s: #%llu connect to %s: %s", s->map->name,
			  (unsigned long long)s->id,
			  hostport_format((struct sockaddr *)&s->map->target,
					  to), why);
	relay_session_close(r, s, true, why);
}

static void
relay_session_event(struct relay *r, struct side *side, uint32_t events)
{
	struct session *s = side->s;
	int err = 0;
	socklen_t len = sizeof(err);

	if (s->state == S_DEAD)
		return;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		side->rd = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		side->wr = true;
	if (s->state == S_CONNECTING) {
		if (side != &s->target) {
			if (events & EPOLLERR)
				relay_session_close(r, s, true,
						    "client reset");
			return;	/* the client is read once connected */
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (events & (EPOLLERR | EPOLLHUP)) {
			if (getsockopt(s->target.fd, SOL_SOCKET, SO_ERROR,
				       &err, &len) < 0)
				err = errno;
			relay_session_failed(r, s, err ? strerror(err) :
					     "connection closed");
		} else {
			relay_session_connected(r, s);
		}
		return;
	}
	if (events & EPOLLERR) {
		if (getsockopt(side->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		relay_session_close(r, s, true, err ? strerror(err) :
				    "socket error");
		return;
	}
	relay_session_pump(r, s);
}

static int
relay_epoll_add(struct relay *r, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	return epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Start a session for an accepted client.  Returns 0, or -1 with errno
 * (the client is closed either way on failure). */
static int
relay_session_start(struct relay *r, struct mapping *m, int cfd)
{
	const uint32_t evs = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	struct session *s;
	char from[HOSTPORT_STRLEN], to[HOSTPORT_STRLEN];
	int saved;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(cfd);
		errno = ENOMEM;
		return -1;
	}
	s->client.ev.kind = s->target.ev.kind = KIND_SIDE;
	s->client.s = s->target.s = s;
	s->client.fd = cfd;
	s->target.fd = -1;
	s->client.rd = s->client.wr = s->target.rd = s->target.wr = true;
	s->up.pipe[0] = s->up.pipe[1] = s->down.pipe[0] = s->down.pipe[1] = -1;
	s->map = m;
	s->gen = m->gen;
	s->id = ++r->next_id;
	s->state = S_CONNECTING;
	TAILQ_INSERT_TAIL(&m->sessions, s, map_entry);
	TAILQ_INSERT_TAIL(&r->connecting, s, wait_entry);
	m->conns_total++;
	m->conns_active++;

	if (r->log_conns) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);

		if (getpeername(cfd, (struct sockaddr *)&peer, &plen) < 0)
			peer.ss_family = AF_UNSPEC;
		log_debug("relay %s: #%llu from %s to %s", m->name,
			  (unsigned long long)s->id,
			  hostport_format((struct sockaddr *)&peer, from),
			  hostport_format((struct sockaddr *)&m->target, to));
	}
	if (relay_pipe_get(r, s->up.pipe) < 0 ||
	    relay_pipe_get(r, s->down.pipe) < 0)
		goto bad;
	s->target.fd = netns_socket(m->netns_fd, m->target.ss_family,
				    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
				    0);
	if (s->target.fd < 0)
		goto bad;
	relay_sock_tune(s->target.fd);	/* the client inherits the listener's */
	if (relay_epoll_add(r, cfd, evs, &s->client) < 0 ||
	    relay_epoll_add(r, s->target.fd, evs, &s->target) < 0)
		goto bad;
	s->deadline = relay_now_ms() + r->connect_timeout_ms;
	if (connect(s->target.fd, (struct sockaddr *)&m->target,
		    m->target_len) == 0) {
		relay_session_connected(r, s);
	} else if (errno != EINPROGRESS) {
		relay_session_failed(r, s, strerror(errno));
	}
	/* else: EPOLLOUT on the target says how the connect went */
	return 0;
bad:
	saved = errno;
	relay_session_close(r, s, true, strerror(saved));
	errno = saved;
	return -1;
}

/* ------------------------------------------------------------ mappings */

static void
relay_map_pause(struct relay *r, struct mapping *m)
{
	struct epoll_event ev = { .events = 0, .data.ptr = m };

	if (m->paused)
		return;
	epoll_ctl(r->epfd, EPOLL_CTL_MOD, m->fd, &ev);
	m->paused = true;
	m->resume_at = relay_now_ms() + ACCEPT_PAUSE_MS;
}

static void
relay_map_resume(struct relay *r, struct mapping *m)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = m };

	if (!m->paused)
		return;
	epoll_ctl(r->epfd, EPOLL_CTL_MOD, m->fd, &ev);
	m->paused = false;
}

static void
relay_accept(struct relay *r, struct mapping *m)
{
	for (int i = 0; i < ACCEPT_BATCH && !m->dead; i++) {
		int fd = accept4(m->fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				log_warn("relay %s: accept: %s; pausing %d ms",
					 m->name, strerror(errno),
					 ACCEPT_PAUSE_MS);
				relay_map_pause(r, m);
				return;
			}
			log_warn("relay %s: accept: %s", m->name,
				 strerror(errno));
			return;
		}
		if (relay_session_start(r, m, fd) < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOMEM) {
				log_warn("relay %s: new connection: %s; "
					 "pausing %d ms", m->name,
					 strerror(errno), ACCEPT_PAUSE_MS);
				relay_map_pause(r, m);
				return;
			}
		}
	}
}

static struct mapping *
relay_map_find(struct relay *r, const char *name)
{
	struct mapping *m;

	TAILQ_FOREACH(m, &r->maps, entry)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

static int
relay_check_target(const struct sockaddr *sa, socklen_t len, struct err *e)
{
	if (len > sizeof(struct sockaddr_storage) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return err_set(e, "target is not an IPv4 or IPv6 address");
	if (hostport_port(sa) == 0)
		return err_set(e, "target port is 0");
	return 0;
}

static int
relay_do_add(struct relay *r, struct relay_cmd *c)
{
	struct mapping *m;
	socklen_t len;
	int on = 0, fl;

	if (c->name[0] == '\0' || strlen(c->name) >= RELAY_NAME_MAX)
		return err_set(&c->err, "mapping name must be 1-%d bytes",
			       RELAY_NAME_MAX - 1);
	if (relay_map_find(r, c->name) != NULL)
		return err_set(&c->err, "mapping '%s' exists", c->name);
	if (relay_check_target(c->target, c->target_len, &c->err) < 0)
		return -1;
	len = sizeof(on);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0 ||
	    !on)
		return err_set(&c->err, "mapping '%s': fd %d is not a "
			       "listening socket", c->name, c->fd);
	if ((fl = fcntl(c->fd, F_GETFL)) < 0 ||
	    fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return err_sys(&c->err, "mapping '%s': O_NONBLOCK", c->name);
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return err_set(&c->err, "out of memory");
	m->ev.kind = KIND_LISTEN;
	snprintf(m->name, sizeof(m->name), "%s", c->name);
	m->fd = c->fd;
	memcpy(&m->target, c->target, c->target_len);
	m->target_len = c->target_len;
	m->netns_fd = -1;
	if (c->has_netns &&
	    (m->netns_fd = fcntl(c->netns_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		err_sys(&c->err, "mapping '%s': namespace", c->name);
		free(m);
		return -1;
	}
	len = sizeof(m->listen);
	getsockname(m->fd, (struct sockaddr *)&m->listen, &len);
	relay_sock_tune(m->fd);	/* accepted sockets inherit these */
	TAILQ_INIT(&m->sessions);
	if (relay_epoll_add(r, m->fd, EPOLLIN, m) < 0) {
		err_sys(&c->err, "mapping '%s': epoll", c->name);
		if (m->netns_fd >= 0)
			close(m->netns_fd);
		free(m);
		return -1;
	}
	TAILQ_INSERT_TAIL(&r->maps, m, entry);
	return 0;
}

static int
relay_do_switch(struct relay *r, struct relay_cmd *c)
{
	struct mapping *m = relay_map_find(r, c->name);
	int ns = -1;

	if (m == NULL)
		return err_set(&c->err, "no mapping '%s'", c->name);
	if (relay_check_target(c->target, c->target_len, &c->err) < 0)
		return -1;
	if (c->has_netns) {
		if ((ns = fcntl(c->netns_fd, F_DUPFD_CLOEXEC, 0)) < 0)
			return err_sys(&c->err, "mapping '%s': namespace",
				       c->name);
	}
	if (m->netns_fd >= 0)
		close(m->netns_fd);
	m->netns_fd = ns;
	memset(&m->target, 0, sizeof(m->target));
	memcpy(&m->target, c->target, c->target_len);
	m->target_len = c->target_len;
	m->gen++;
	return 0;
}

/* Reset m's sessions to a target it was switched away from. */
static int
relay_do_reset_old(struct relay *r, struct relay_cmd *c)
{
	struct mapping *m = relay_map_find(r, c->name);
	struct session *s, *next;

	if (m == NULL)
		return err_set(&c->err, "no mapping '%s'", c->name);
	for (s = TAILQ_FIRST(&m->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, map_entry);
		if (s->gen != m->gen)
			relay_session_close(r, s, true, "its target was replaced");
	}
	return 0;
}

/* Close the listener and reset every session of m; free after the batch. */
static void
relay_map_close(struct relay *r, struct mapping *m)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&m->sessions)) != NULL)
		relay_session_close(r, s, true, "mapping removed");
	epoll_ctl(r->epfd, EPOLL_CTL_DEL, m->fd, NULL);	/* as above */
	close(m->fd);
	m->fd = -1;
	if (m->netns_fd >= 0)
		close(m->netns_fd);
	m->netns_fd = -1;
	m->dead = true;
	TAILQ_REMOVE(&r->maps, m, entry);
	TAILQ_INSERT_TAIL(&r->dead_maps, m, entry);
}

static int
relay_do_remove(struct relay *r, struct relay_cmd *c)
{
	struct mapping *m = relay_map_find(r, c->name);

	if (m == NULL)
		return err_set(&c->err, "no mapping '%s'", c->name);
	relay_map_close(r, m);
	return 0;
}

static int
relay_do_list(struct relay *r, struct relay_cmd *c)
{
	struct mapping *m;
	size_t n = 0, i = 0;

	TAILQ_FOREACH(m, &r->maps, entry)
		n++;
	c->list = NULL;
	c->nlist = 0;
	if (n == 0)
		return 0;
	if ((c->list = calloc(n, sizeof(*c->list))) == NULL)
		return err_set(&c->err, "out of memory");
	TAILQ_FOREACH(m, &r->maps, entry) {
		struct relay_map_info *info = &c->list[i++];

		snprintf(info->name, sizeof(info->name), "%s", m->name);
		info->listen = m->listen;
		info->target = m->target;
		info->conns_total = m->conns_total;
		info->conns_active = m->conns_active;
		info->connect_failed = m->connect_failed;
		info->idle_closed = m->idle_closed;
		info->bytes_up = m->bytes_up;
		info->bytes_down = m->bytes_down;
	}
	c->nlist = n;
	return 0;
}

/* ------------------------------------------------------------ the loop */

/* Carry out the queued commands one by one, waking each caller. */
static void
relay_run_commands(struct relay *r)
{
	struct relay_cmd *c;
	uint64_t v;

	if (read(r->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("relay: eventfd: %s", strerror(errno));
	for (;;) {
		pthread_mutex_lock(&r->lock);
		if ((c = TAILQ_FIRST(&r->cmds)) != NULL)
			TAILQ_REMOVE(&r->cmds, c, entry);
		pthread_mutex_unlock(&r->lock);
		if (c == NULL)
			return;
		switch (c->op) {
		case OP_ADD:
			c->rc = relay_do_add(r, c);
			break;
		case OP_SWITCH:
			c->rc = relay_do_switch(r, c);
			break;
		case OP_RESET_OLD:
			c->rc = relay_do_reset_old(r, c);
			break;
		case OP_REMOVE:
			c->rc = relay_do_remove(r, c);
			break;
		case OP_LIST:
			c->rc = relay_do_list(r, c);
			break;
		case OP_STOP:
			r->stopping = true;
			c->rc = 0;
			break;
		}
		pthread_mutex_lock(&r->lock);
		c->done = true;
		pthread_cond_broadcast(&r->done);
		pthread_mutex_unlock(&r->lock);
	}
}

/* Milliseconds until the next deadline (connect or paused listener). */
static int
relay_next_timeout(struct relay *r, int64_t now)
{
	int64_t next = -1;
	struct session *s;
	struct mapping *m;

	if (r->nready > 0)
		return 0;
	if ((s = TAILQ_FIRST(&r->connecting)) != NULL)
		next = s->deadline;
	if (r->idle_ms > 0 && (s = TAILQ_FIRST(&r->open)) != NULL &&
	    (next < 0 || s->active_at + r->idle_ms < next))
		next = s->active_at + r->idle_ms;
	TAILQ_FOREACH(m, &r->maps, entry)
		if (m->paused && (next < 0 || m->resume_at < next))
			next = m->resume_at;
	if (next < 0)
		return -1;
	if (next <= now)
		return 0;
	return next - now < INT_MAX ? (int)(next - now) : INT_MAX;
}

static void
relay_expire(struct relay *r, int64_t now)
{
	struct session *s;
	struct mapping *m;

	while ((s = TAILQ_FIRST(&r->connecting)) != NULL && s->deadline <= now)
		relay_session_failed(r, s, "connect timed out");
	while (r->idle_ms > 0 && (s = TAILQ_FIRST(&r->open)) != NULL &&
	       s->active_at + r->idle_ms <= now) {
		s->map->idle_closed++;
		relay_session_close(r, s, s->up.queued > 0 ||
				    s->down.queued > 0, "idle");
	}
	TAILQ_FOREACH(m, &r->maps, entry)
		if (m->paused && m->resume_at <= now)
			relay_map_resume(r, m);
}

static void
relay_reap(struct relay *r)
{
	struct session *s;
	struct mapping *m;

	while ((s = TAILQ_FIRST(&r->dead)) != NULL) {
		TAILQ_REMOVE(&r->dead, s, wait_entry);
		free(s);
	}
	while ((m = TAILQ_FIRST(&r->dead_maps)) != NULL) {
		TAILQ_REMOVE(&r->dead_maps, m, entry);
		free(m);
	}
}

static void *
relay_loop(void *arg)
{
	struct relay *r = arg;
	struct epoll_event evs[MAX_EVENTS];
	int n;

	pthread_setname_np(pthread_self(), "fed-relay");
	while (!r->stopping) {
		n = epoll_wait(r->epfd, evs, MAX_EVENTS,
			       relay_next_timeout(r, relay_now_ms()));
		if (n < 0 && errno != EINTR) {
			log_error("relay: epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct relay_ev *ev = evs[i].data.ptr;

			switch (ev->kind) {
			case KIND_WAKE:
				relay_run_commands(r);
				break;
			case KIND_LISTEN:
				if (!((struct mapping *)ev)->dead)
					relay_accept(r, (struct mapping *)ev);
				break;
			case KIND_SIDE:
				relay_session_event(r, (struct side *)ev,
						    evs[i].events);
				break;
			}
		}
		/* sessions that spent their budget, in the order they did;
		 * the ones pumped now and still moving go to the back */
		for (size_t k = r->nready; k > 0 && !TAILQ_EMPTY(&r->ready); k--) {
			struct session *s = TAILQ_FIRST(&r->ready);

			TAILQ_REMOVE(&r->ready, s, ready_entry);
			s->on_ready = false;
			r->nready--;
			relay_session_pump(r, s);
		}
		relay_expire(r, relay_now_ms());
		relay_reap(r);
	}

	/* stopping: close everything, then let waiting callers go */
	while (!TAILQ_EMPTY(&r->maps))
		relay_map_close(r, TAILQ_FIRST(&r->maps));
	relay_reap(r);
	pthread_mutex_lock(&r->lock);
	r->stopped = true;
	pthread_cond_broadcast(&r->done);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* ------------------------------------------------------------ the API */

/* Queue c for the loop and wait until it is done.  Returns c->rc. */
static int
relay_call(struct relay *r, struct relay_cmd *c, struct err *e)
{
	uint64_t one = 1;

	c->done = false;
	c->rc = -1;
	c->err.msg[0] = '\0';
	pthread_mutex_lock(&r->lock);
	if (r->stopped) {
		pthread_mutex_unlock(&r->lock);
		return err_set(e, "relay is stopped");
	}
	TAILQ_INSERT_TAIL(&r->cmds, c, entry);
	pthread_mutex_unlock(&r->lock);
	if (write(r->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("relay: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&r->lock);
	while (!c->done && !r->stopped)
		pthread_cond_wait(&r->done, &r->lock);
	if (!c->done) {		/* the loop exited before getting to it */
		TAILQ_REMOVE(&r->cmds, c, entry);
		pthread_mutex_unlock(&r->lock);
		return err_set(e, "relay is stopped");
	}
	pthread_mutex_unlock(&r->lock);
	if (c->rc < 0 && e != NULL)
		*e = c->err;
	return c->rc;
}

int
relay_new(const struct relay_config *cfg, struct relay **out, struct err *e)
{
	struct relay *r;
	sigset_t all, old;
	int rc;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return err_set(e, "out of memory");
	r->wake_ev.kind = KIND_WAKE;
	r->epfd = r->wakefd = -1;
	r->connect_timeout_ms = cfg && cfg->connect_timeout_ms > 0 ?
				cfg->connect_timeout_ms : CONNECT_TIMEOUT_MS;
	r->pipe_size = cfg && cfg->pipe_size > 0 ? cfg->pipe_size : PIPE_SIZE;
	r->idle_ms = 1000 * (int64_t)(cfg && cfg->idle_timeout_s != 0 ?
				      cfg->idle_timeout_s : IDLE_TIMEOUT_S);
	r->log_conns = cfg && cfg->log_conns;
	TAILQ_INIT(&r->maps);
	TAILQ_INIT(&r->dead_maps);
	TAILQ_INIT(&r->connecting);
	TAILQ_INIT(&r->ready);
	TAILQ_INIT(&r->open);
	TAILQ_INIT(&r->dead);
	TAILQ_INIT(&r->cmds);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->done, NULL);

	if ((r->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		err_sys(e, "epoll_create1");
		goto bad;
	}
	if ((r->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		err_sys(e, "eventfd");
		goto bad;
	}
	if (relay_epoll_add(r, r->wakefd, EPOLLIN, &r->wake_ev) < 0) {
		err_sys(e, "epoll_ctl");
		goto bad;
	}
	/* the loop thread takes no signal: SIGPIPE from splice() into a dead
	 * socket stays pending there, and SIGTERM goes to the program */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&r->thread, NULL, relay_loop, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		err_sys(e, "pthread_create");
		goto bad;
	}
	r->thread_started = true;
	*out = r;
	return 0;
bad:
	relay_free(r);
	return -1;
}

void
relay_free(struct relay *r)
{
	struct relay_cmd c = { .op = OP_STOP };

	if (r == NULL)
		return;
	if (r->thread_started) {
		relay_call(r, &c, NULL);
		pthread_join(r->thread, NULL);
	}
	for (size_t i = 0; i < r->npool; i++) {
		close(r->pool[i][0]);
		close(r->pool[i][1]);
	}
	if (r->wakefd >= 0)
		close(r->wakefd);
	if (r->epfd >= 0)
		close(r->epfd);
	pthread_cond_destroy(&r->done);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int
relay_map_add(struct relay *r, const char *name, int listen_fd,
	      const struct sockaddr *target, socklen_t len, struct err *e)
{
	struct relay_cmd c = { .op = OP_ADD, .name = name, .fd = listen_fd,
			       .target = target, .target_len = len };

	return relay_call(r, &c, e);
}

int
relay_map_switch(struct relay *r, const char *name,
		 const struct sockaddr *target, socklen_t len, struct err *e)
{
	struct relay_cmd c = { .op = OP_SWITCH, .name = name,
			       .target = target, .target_len = len };

	return relay_call(r, &c, e);
}

int
relay_map_add_ns(struct relay *r, const char *name, int listen_fd,
		 const struct sockaddr *target, socklen_t len, int netns_fd,
		 struct err *e)
{
	struct relay_cmd c = { .op = OP_ADD, .name = name, .fd = listen_fd,
			       .target = target, .target_len = len,
			       .has_netns = netns_fd >= 0,
			       .netns_fd = netns_fd };

	return relay_call(r, &c, e);
}

int
relay_map_switch_ns(struct relay *r, const char *name,
		    const struct sockaddr *target, socklen_t len, int netns_fd,
		    struct err *e)
{
	struct relay_cmd c = { .op = OP_SWITCH, .name = name,
			       .target = target, .target_len = len,
			       .has_netns = netns_fd >= 0,
			       .netns_fd = netns_fd };

	return relay_call(r, &c, e);
}

int
relay_map_reset_old(struct relay *r, const char *name, struct err *e)
{
	struct relay_cmd c = { .op = OP_RESET_OLD, .name = name };

	return relay_call(r, &c, e);
}

int
relay_map_remove(struct relay *r, const char *name, struct err *e)
{
	struct relay_cmd c = { .op = OP_REMOVE, .name = name };

	return relay_call(r, &c, e);
}

int
relay_map_list(struct relay *r, struct relay_map_info **out, size_t *n,
	       struct err *e)
{
	struct relay_cmd c = { .op = OP_LIST };

	*out = NULL;
	*n = 0;
	if (relay_call(r, &c, e) < 0)
		return -1;
	*out = c.list;
	*n = c.nlist;
	return 0;
}
