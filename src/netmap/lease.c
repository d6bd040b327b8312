/*
 * lease.c - private addresses and host ports for VMs, kept across restarts.
 *
 * Addressing plan: the range (default 10.77.0.0/16) is cut into /30s, one
 * per VM, each on its own tap device: .0 network, .1 the host end of the
 * tap, .2 the guest, .3 broadcast.  A point-to-point subnet per tap needs
 * no bridge, no ARP between VMs and no firewall rule to keep one VM from
 * another, and it is what UML's vector transport (vec0:transport=tap) gives
 * most simply.  A /16 holds 16384 VMs; a new lease takes the lowest free
 * /30, so addresses stay dense and predictable.
 *
 * Persistence: the whole table is one small JSON file, state/leases.json:
 *
 *   {"version":1,"leases":[{"key":"<snapshot id>/0","subnet":"10.77.0.0/30",
 *     "host":"10.77.0.1","guest":"10.77.0.2","port":23817,
 *     "created":"2026-11-25T23:52:53Z"}, ...]}
 *
 * rewritten on every change as a temporary file, fsync'd, renamed over the
 * old one and the directory fsync'd: a reader (or a crash) sees the old
 * table or the new one, never half of one.  A table of a few hundred leases
 * is a few tens of KiB, so rewriting it whole costs less than SQLite's
 * journal would, and the file stays readable with cat and jq.  One writer
 * per state directory, enforced with flock on state/leases.lock; the table
 * in memory is the truth while the lock is held.  A file that does not
 * parse is an error, never an empty table: handing out addresses that are
 * still in use would be worse than not starting.
 *
 * Ports: a random port of the range that no other lease records (a lease's
 * port stays reserved for it while the VM is down or the runner restarts),
 * checked by binding it; the bound, listening socket is what the caller
 * gets, so the port cannot be taken between the check and its use.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "netmap/netmap.h"

#define LEASE_FILE	"leases.json"
#define LEASE_LOCK	"leases.lock"
#define LEASE_VERSION	1

struct lease_db {
	char *dir;
	char *path;			/* dir/leases.json */
	int lock_fd;			/* -1 when read-only */
	bool readonly;
	uint32_t range_base;		/* host order */
	unsigned range_prefix;
	char range[32];			/* as configured, for messages */
	uint16_t port_min, port_max;
	struct sockaddr_storage bind;	/* port 0; set per try */
	socklen_t bind_len;
	struct lease *v;		/* sorted by subnet */
	size_t n, cap;
};

/* ---------------------------------------------------------------- helpers */

static bool
lease_key_valid(const char *key)
{
	size_t len = strlen(key);

	if (len == 0 || len >= LEASE_KEY_MAX)
		return false;
	for (const char *p = key; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			return false;
	return true;
}

/* Parse "a.b.c.d/n" into a host-order base and prefix. */
static int
lease_parse_cidr(const char *s, uint32_t *base, unsigned *prefix,
		 unsigned min_prefix, unsigned max_prefix, struct err *e)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	struct in_addr in;
	char *end;
	unsigned long p;
	uint32_t mask;

	if (slash == NULL || (size_t)(slash - s) >= sizeof(addr))
		return err_set(e, "'%s': expected a.b.c.d/N", s);
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	if (inet_pton(AF_INET, addr, &in) != 1)
		return err_set(e, "'%s': expected a.b.c.d/N", s);
	errno = 0;
	p = strtoul(slash + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == slash + 1 || p < min_prefix ||
	    p > max_prefix)
		return err_set(e, "'%s': prefix must be /%u to /%u", s,
			       min_prefix, max_prefix);
	mask = p == 0 ? 0 : 0xffffffffu << (32 - p);
	if ((ntohl(in.s_addr) & ~mask) != 0)
		return err_set(e, "'%s': not a network address (host bits set)",
			       s);
	*base = ntohl(in.s_addr);
	*prefix = (unsigned)p;
	return 0;
}

/* Fill the addresses of l from its subnet (host order). */
static void
lease_set_subnet(struct lease *l, uint32_t subnet)
{
	l->subnet.s_addr = htonl(subnet);
	l->host.s_addr = htonl(subnet + 1);
	l->guest.s_addr = htonl(subnet + 2);
	l->prefix = NETMAP_SUBNET_PREFIX;
}

static struct lease *
lease_find(struct lease_db *db, const char *key)
{
	for (size_t i = 0; i < db->n; i++)
		if (strcmp(db->v[i].key, key) == 0)
			return &db->v[i];
	return NULL;
}

/* Insert l keeping db->v sorted by subnet.  Returns 0, or -1 (no memory). */
static int
lease_insert(struct lease_db *db, const struct lease *l, struct err *e)
{
	size_t i;

	if (db->n == db->cap) {
		size_t cap = db->cap ? db->cap * 2 : 16;
		struct lease *v = realloc(db->v, cap * sizeof(*v));

		if (v == NULL)
			return err_set(e, "out of memory");
		db->v = v;
		db->cap = cap;
	}
	for (i = db->n; i > 0 && ntohl(db->v[i - 1].subnet.s_addr) >
	     ntohl(l->subnet.s_addr); i--)
		;
	memmove(&db->v[i + 1], &db->v[i], (db->n - i) * sizeof(*db->v));
	db->v[i] = *l;
	db->n++;
	return 0;
}

static void
lease_remove_at(struct lease_db *db, size_t i)
{
	memmove(&db->v[i], &db->v[i + 1], (db->n - i - 1) * sizeof(*db->v));
	db->n--;
}

/* ------------------------------------------------------------ the file */

static int
lease_load_one(struct lease_db *db, json_t *j, size_t idx, struct err *e)
{
	const char *key, *subnet, *created;
	json_int_t port;
	struct lease l;
	uint32_t base;
	unsigned prefix;
	time_t t;

	memset(&l, 0, sizeof(l));
	if (json_unpack(j, "{s:s,s:s,s:I,s:s}", "key", &key, "subnet", &subnet,
			"port", &port, "created", &created) < 0)
		return err_set(e, "lease %zu: needs key, subnet, port, created",
			       idx);
	if (!lease_key_valid(key))
		return err_set(e, "lease %zu: bad key", idx);
	if (lease_parse_cidr(subnet, &base, &prefix, NETMAP_SUBNET_PREFIX,
			     NETMAP_SUBNET_PREFIX, e) < 0)
		return err_wrap(e, "lease %zu", idx);
	if (port < 0 || port > 65535)
		return err_set(e, "lease %zu: bad port %lld", idx,
			       (long long)port);
	if (rfc3339_parse(created, &t) < 0)
		return err_set(e, "lease %zu: bad time '%s'", idx, created);
	if (lease_find(db, key) != NULL)
		return err_set(e, "lease %zu: key '%s' leased twice", idx, key);
	for (size_t i = 0; i < db->n; i++)
		if (ntohl(db->v[i].subnet.s_addr) == base)
			return err_set(e, "lease %zu: %s leased twice", idx,
				       subnet);
	snprintf(l.key, sizeof(l.key), "%s", key);
	lease_set_subnet(&l, base);
	l.port = (uint16_t)port;
	l.created = (int64_t)t;
	return lease_insert(db, &l, e);
}

/* Read db->path into db->v.  A missing file is an empty table. */
static int
lease_load(struct lease_db *db, struct err *e)
{
	json_error_t jerr;
	json_t *root, *arr, *j;
	json_int_t version;
	size_t i;

	if (access(db->path, F_OK) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_sys(e, "%s", db->path);
	}
	root = json_load_file(db->path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return err_set(e, "%s: line %d: %s", db->path, jerr.line,
			       jerr.text);
	if (json_unpack(root, "{s:I,s:o}", "version", &version, "leases",
			&arr) < 0 || !json_is_array(arr)) {
		err_set(e, "%s: expected {\"version\":N,\"leases\":[...]}",
			db->path);
		goto bad;
	}
	if (version != LEASE_VERSION) {
		err_set(e, "%s: version %lld, this program reads %d", db->path,
			(long long)version, LEASE_VERSION);
		goto bad;
	}
	json_array_foreach(arr, i, j) {
		if (lease_load_one(db, j, i, e) < 0) {
			err_wrap(e, "%s", db->path);
			goto bad;
		}
	}
	json_decref(root);
	return 0;
bad:
	json_decref(root);
	return -1;
}

static json_t *
lease_to_json(const struct lease *l)
{
	char subnet[INET_ADDRSTRLEN + 4], host[INET_ADDRSTRLEN],
	     guest[INET_ADDRSTRLEN], created[RFC3339_LEN + 1];

	inet_ntop(AF_INET, &l->subnet, subnet, INET_ADDRSTRLEN);
	snprintf(subnet + strlen(subnet), 4, "/%u", l->prefix);
	inet_ntop(AF_INET, &l->host, host, sizeof(host));
	inet_ntop(AF_INET, &l->guest, guest, sizeof(guest));
	rfc3339_format((time_t)l->created, created);
	return json_pack("{s:s,s:s,s:s,s:s,s:i,s:s}", "key", l->key,
			 "subnet", subnet, "host", host, "guest", guest,
			 "port", (int)l->port, "created", created);
}

static void
lease_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (fsync(fd) < 0)
		log_warn("lease: fsync %s: %s", dir, strerror(errno));
	close(fd);
}

/* Write the table: temp file, fsync, rename, fsync the directory. */
static int
lease_save(struct lease_db *db, struct err *e)
{
	char *tmp = NULL, *text = NULL;
	json_t *root, *arr;
	size_t len, off = 0;
	ssize_t w;
	int fd = -1;

	if ((arr = json_array()) == NULL)
		return err_set(e, "out of memory");
	for (size_t i = 0; i < db->n; i++)
		json_array_append_new(arr, lease_to_json(&db->v[i]));
	root = json_pack("{s:i,s:o}", "version", LEASE_VERSION, "leases", arr);
	if (root == NULL)
		return err_set(e, "out of memory");
	text = json_dumps(root, JSON_INDENT(1));
	json_decref(root);
	if (text == NULL || asprintf(&tmp, "%s.tmp", db->path) < 0) {
		tmp = NULL;
		err_set(e, "out of memory");
		goto bad;
	}
	len = strlen(text);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		err_sys(e, "create %s", tmp);
		goto bad;
	}
	while (off < len) {
		if ((w = write(fd, text + off, len - off)) < 0) {
			if (errno == EINTR)
				continue;
			err_sys(e, "write %s", tmp);
			goto bad;
		}
		off += (size_t)w;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
		err_sys(e, "write %s", tmp);
		goto bad;
	}
	if (close(fd) < 0) {
		fd = -1;
		err_sys(e, "close %s", tmp);
		goto bad;
	}
	fd = -1;
	if (rename(tmp, db->path) < 0) {
		err_sys(e, "rename to %s", db->path);
		goto bad;
	}
	lease_fsync_dir(db->dir);
	free(tmp);
	free(text);
	return 0;
bad:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL)
		unlink(tmp);
	free(tmp);
	free(text);
	return -1;
}

/* ------------------------------------------------------------ the API */

int
lease_db_open(const char *state_dir, const struct lease_config *cfg,
	      struct lease_db **out, struct err *e)
{
	static const struct lease_config defaults;
	struct lease_db *db;
	const char *bind_addr;
	char bind_hp[HOSTPORT_STRLEN + 8];

	if (cfg == NULL)
		cfg = &defaults;
	if ((db = calloc(1, sizeof(*db))) == NULL)
		return err_set(e, "out of memory");
	db->lock_fd = -1;
	db->readonly = cfg->readonly;
	if ((db->dir = strdup(state_dir)) == NULL ||
	    asprintf(&db->path, "%s/%s", state_dir, LEASE_FILE) < 0) {
		db->path = NULL;
		err_set(e, "out of memory");
		goto bad;
	}

	snprintf(db->range, sizeof(db->range), "%s",
		 cfg->range ? cfg->range : NETMAP_DEFAULT_RANGE);
	if (lease_parse_cidr(db->range, &db->range_base, &db->range_prefix, 8,
			     NETMAP_SUBNET_PREFIX, e) < 0) {
		err_wrap(e, "address range");
		goto bad;
	}
	db->port_min = cfg->port_min;
	db->port_max = cfg->port_max;
	if (db->port_min == 0 && db->port_max == 0) {
		db->port_min = NETMAP_DEFAULT_PORT_MIN;
		db->port_max = NETMAP_DEFAULT_PORT_MAX;
	}
	if (db->port_min == 0 || db->port_min > db->port_max) {
		err_set(e, "port range %u-%u: expected 1 <= MIN <= MAX",
			db->port_min, db->port_max);
		goto bad;
	}
	bind_addr = cfg->bind_addr ? cfg->bind_addr : "0.0.0.0";
	snprintf(bind_hp, sizeof(bind_hp), strchr(bind_addr, ':') ?
		 "[%s]:0" : "%s:0", bind_addr);
	if (hostport_parse(bind_hp, &db->bind, &db->bind_len, e) < 0) {
		err_wrap(e, "bind address");
		goto bad;
	}

	if (!db->readonly) {
		char *lock;

		if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
			err_sys(e, "state directory %s", state_dir);
			goto bad;
		}
		if (asprintf(&lock, "%s/%s", state_dir, LEASE_LOCK) < 0) {
			err_set(e, "out of memory");
			goto bad;
		}
		db->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		free(lock);
		if (db->lock_fd < 0) {
			err_sys(e, "%s/%s", state_dir, LEASE_LOCK);
			goto bad;
		}
		if (flock(db->lock_fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno == EWOULDBLOCK)
				err_set(e, "state directory %s is in use by "
					"another process (%s is locked)",
					state_dir, LEASE_LOCK);
			else
				err_sys(e, "lock %s/%s", state_dir, LEASE_LOCK);
			goto bad;
		}
	} else {
		struct stat st;

		if (stat(state_dir, &st) < 0) {
			err_sys(e, "state directory %s", state_dir);
			goto bad;
		}
	}
	if (lease_load(db, e) < 0)
		goto bad;
	*out = db;
	return 0;
bad:
	lease_db_close(db);
	return -1;
}

void
lease_db_close(struct lease_db *db)
{
	if (db == NULL)
		return;
	if (db->lock_fd >= 0)
		close(db->lock_fd);	/* releases the flock */
	free(db->v);
	free(db->path);
	free(db->dir);
	free(db);
}

int
lease_get(struct lease_db *db, const char *key, struct lease *out)
{
	struct lease *l = lease_find(db, key);

	if (l == NULL)
		return -1;
	*out = *l;
	return 0;
}

int
lease_alloc(struct lease_db *db, const char *key, struct lease *out,
	    struct err *e)
{
	uint32_t count = 1u << (NETMAP_SUBNET_PREFIX - db->range_prefix);
	uint8_t *used = NULL;
	struct lease l, *have;
	uint32_t idx;

	if (!lease_key_valid(key))
		return err_set(e, "lease key must be 1-%d printable characters "
			       "without spaces", LEASE_KEY_MAX - 1);
	if ((have = lease_find(db, key)) != NULL) {
		*out = *have;
		return 0;
	}
	if (db->readonly)
		return err_set(e, "leases opened read-only");

	/* one bit per /30 of the range; leases outside it are ignored here
	 * and cannot collide (every lease is an aligned /30) */
	if ((used = calloc(count / 8 + 1, 1)) == NULL)
		return err_set(e, "out of memory");
	for (size_t i = 0; i < db->n; i++) {
		uint32_t s = ntohl(db->v[i].subnet.s_addr);

		if (s >= db->range_base && s - db->range_base < count * 4) {
			idx = (s - db->range_base) / 4;
			used[idx / 8] |= (uint8_t)(1u << (idx % 8));
		}
	}
	for (idx = 0; idx < count; idx++)
		if (!(used[idx / 8] & (1u << (idx % 8))))
			break;
	free(used);
	if (idx == count)
		return err_set(e, "no free address in %s: all %u /30 subnets "
			       "are leased", db->range, count);

	memset(&l, 0, sizeof(l));
	snprintf(l.key, sizeof(l.key), "%s", key);
	lease_set_subnet(&l, db->range_base + idx * 4);
	l.created = (int64_t)time(NULL);
	if (lease_insert(db, &l, e) < 0)
		return -1;
	if (lease_save(db, e) < 0) {
		for (size_t i = 0; i < db->n; i++)
			if (strcmp(db->v[i].key, key) == 0)
				lease_remove_at(db, i);
		return err_wrap(e, "lease %s", key);
	}
	*out = l;
	return 0;
}

/* Try to listen on port of the bind address.  Returns 0, or -1 with errno. */
static int
lease_try_port(struct lease_db *db, uint16_t port, int *fd, struct err *e)
{
	struct sockaddr_storage ss = db->bind;

	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	return hostport_listen((struct sockaddr *)&ss, db->bind_len, fd, e);
}

int
lease_listen(struct lease_db *db, const char *key, int *fd,
	     struct lease *out, struct err *e)
{
	uint32_t span = (uint32_t)db->port_max - db->port_min + 1, start;
	uint32_t taken = 0, reserved = 0;
	uint8_t *mine = NULL;
	struct lease *l = lease_find(db, key);
	uint16_t old, port = 0;
	int s = -1;

	if (l == NULL)
		return err_set(e, "no lease for '%s'", key);
	if (db->readonly)
		return err_set(e, "leases opened read-only");
	old = l->port;
	if (old != 0) {
		if (lease_try_port(db, old, &s, e) == 0) {
			*fd = s;
			*out = *l;
			return 0;
		}
		if (errno != EADDRINUSE)
			return err_wrap(e, "lease %s: port %u", key, old);
		log_info("lease %s: port %u is taken by another socket; "
			 "choosing another", key, old);
	}

	/* ports other leases record are theirs, bound or not */
	if ((mine = calloc(65536 / 8, 1)) == NULL)
		return err_set(e, "out of memory");
	for (size_t i = 0; i < db->n; i++)
		if (&db->v[i] != l && db->v[i].port != 0)
			mine[db->v[i].port / 8] |=
				(uint8_t)(1u << (db->v[i].port % 8));
	if (getrandom(&start, sizeof(start), 0) != sizeof(start))
		start = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	for (uint32_t i = 0; i < span; i++) {
		uint16_t p = (uint16_t)(db->port_min + (start + i) % span);

		if (mine[p / 8] & (1u << (p % 8))) {
			reserved++;
			continue;
		}
		if (p == old) {
			taken++;
			continue;
		}
		if (lease_try_port(db, p, &s, e) == 0) {
			port = p;
			break;
		}
		if (errno != EADDRINUSE && errno != EACCES) {
			free(mine);
			return err_wrap(e, "lease %s", key);
		}
		taken++;
	}
	free(mine);
	if (port == 0)
		return err_set(e, "no free host port in %u-%u: %u leased to "
			       "others, %u in use by other sockets",
			       db->port_min, db->port_max, reserved, taken);
	l->port = port;
	if (lease_save(db, e) < 0) {
		l->port = old;
		close(s);
		return err_wrap(e, "lease %s", key);
	}
	*fd = s;
	*out = *l;
	return 0;
}

int
lease_free(struct lease_db *db, const char *key, struct err *e)
{
	struct lease saved;

	if (db->readonly)
		return err_set(e, "leases opened read-only");
	for (size_t i = 0; i < db->n; i++) {
		if (strcmp(db->v[i].key, key) != 0)
			continue;
		saved = db->v[i];
		lease_remove_at(db, i);
		if (lease_save(db, e) < 0) {
			lease_insert(db, &saved, NULL);
			return err_wrap(e, "free lease %s", key);
		}
		return 0;
	}
	return err_set(e, "no lease for '%s'", key);
}

int
lease_move_port(struct lease_db *db, const char *from, const char *to,
		struct err *e)
{
	struct lease *f = lease_find(db, from), *t = lease_find(db, to);
	uint16_t fport, tport;

	if (db->readonly)
		return err_set(e, "leases opened read-only");
	if (f == NULL || t == NULL)
		return err_set(e, "no lease for '%s'", f == NULL ? from : to);
	fport = f->port;
	tport = t->port;
	t->port = fport;
	f->port = 0;
	if (lease_save(db, e) < 0) {
		f->port = fport;
		t->port = tport;
		return err_wrap(e, "move port %u from lease %s to %s", fport,
				from, to);
	}
	return 0;
}

int
lease_list(struct lease_db *db, struct lease **out, size_t *n, struct err *e)
{
	*out = NULL;
	*n = 0;
	if (db->n == 0)
		return 0;
	if ((*out = malloc(db->n * sizeof(**out))) == NULL)
		return err_set(e, "out of memory");
	memcpy(*out, db->v, db->n * sizeof(**out));
	*n = db->n;
	return 0;
}

void
lease_ifname(const struct lease *l, char name[LEASE_IFNAME_MAX])
{
	snprintf(name, LEASE_IFNAME_MAX, "fed%08x",
		 (unsigned)ntohl(l->guest.s_addr));
}
