/*
 * fs.c - the FUSE low-level operations of fedfs.
 *
 * One fs_* function per operation, each replying exactly once, after
 * libfuse's passthrough_ll.c.  Reads of objects go
 *
 *   read -> fetch (fetch.c: from peers, verified, into the store) ->
 *   reply from the chunk files (splice: no copy through this process)
 *
 * Objects are immutable and content-addressed, so the kernel may cache
 * their pages and attributes for long (keep_cache, long timeouts);
 * directories change with the catalogue and are cached for a second.
 *
 * Writes exist only in publish/ and commit/: a new file there is a
 * temporary file in STATE/incoming/ until its writer closes it, when
 * ingest.c checks it and the close fails if it is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "common/hex.h"
#include "common/io.h"
#include "common/log.h"
#include "fedfs/fedfs.h"
#include "fedfs/fs.h"

#define FS_OBJ_TIMEOUT 3600.0		/* immutable objects */
#define FS_DIR_TIMEOUT 1.0
#define FS_READ_AHEAD 16			/* chunks, for sequential readers */
#define FS_SEQUENTIAL (256u << 10)	/* bytes in a row that prove it */
#define FS_INCOMING_MAX (1ull << 40)	/* bytes one copied-in file may have */
/* The largest read or write one request carries.  libfuse splices a read's
 * reply from the chunk files only if the reply fits in its pipe with a
 * page to spare per buffer, and Linux's pipe-max-size is 1 MiB: with 1 MiB
 * reads every reply was copied through a buffer instead (256 MiB from
 * cached chunks: 0.20 s, against 0.12 s at 992 KiB). */
#define FS_MAX_IO (992u << 10)
#define FS_READAHEAD_KB 1024u		/* the kernel's, per mount */

/* Per open file. */
struct fs_fh {
	uint64_t next_off;		/* where a sequential reader reads next */
	uint64_t seq_bytes;		/* read sequentially so far */
	pthread_mutex_t lock;		/* guards the cached chunk fd */
	int fd;				/* the chunk last read, or -1 */
	uint32_t fd_chunk;
	uint32_t advised;		/* chunks below were fadvise()d */
	int refs;			/* the open, plus reads in progress */
	char *text;			/* .status: the JSON, made at open */
	size_t text_len;
};

static time_t fs_started;

/* A new per-open state, holding the open's reference. */
static struct fs_fh *
fs_fh_new(void)
{
	struct fs_fh *fh = calloc(1, sizeof(*fh));

	if (fh == NULL)
		return NULL;
	pthread_mutex_init(&fh->lock, NULL);
	fh->fd = -1;
	fh->refs = 1;
	return fh;
}

/* Take a reference for a read: the kernel may release a file while a
 * read of it is still being answered (a reader that exits early). */
static struct fs_fh *
fs_fh_get(struct fs_fh *fh)
{
	if (fh != NULL) {
		pthread_mutex_lock(&fh->lock);
		fh->refs++;
		pthread_mutex_unlock(&fh->lock);
	}
	return fh;
}

static void
fs_fh_put(struct fs_fh *fh)
{
	bool last;

	if (fh == NULL)
		return;
	pthread_mutex_lock(&fh->lock);
	last = --fh->refs == 0;
	pthread_mutex_unlock(&fh->lock);
	if (!last)
		return;
	if (fh->fd >= 0)
		close(fh->fd);
	pthread_mutex_destroy(&fh->lock);
	free(fh->text);
	free(fh);
}

static struct fedfs *
fs_data(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static bool
fs_is_catalog_dir(uint64_t ino)
{
	return ino == INO_KERNELS || ino == INO_BASES || ino == INO_DELTAS ||
	       ino == INO_SERVICES;
}

static const char *const fs_dir_names[] = {
	[INO_KERNELS] = "kernels", [INO_BASES] = "bases",
	[INO_DELTAS] = "deltas", [INO_SERVICES] = "services",
	[INO_PUBLISH] = "publish", [INO_COMMIT] = "commit",
	[INO_STATUS] = ".status",
};

/* Is n shown now?  Lock held. */
static bool
fs_node_visible(const struct node *n)
{
	if (!n->live)
		return false;
	if (n->type == NODE_OBJ)
		return n->obj->listed;
	if (n->type == NODE_SERVICE)
		return n->obj->listed;
	return true;
}

/* Fill st for ino; returns 0 or -ENOENT.  Lock held. */
static int
fs_stat(struct fedfs *fs, uint64_t ino, struct stat *st, double *timeout)
{
	struct node *n;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = 0;
	st->st_gid = 0;
	st->st_nlink = 1;
	st->st_mtime = st->st_ctime = st->st_atime = fs_started;
	st->st_blksize = 1 << 20;
	*timeout = FS_DIR_TIMEOUT;
	if (ino == INO_ROOT || (ino >= INO_KERNELS && ino <= INO_COMMIT)) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (ino == INO_STATUS) {
		st->st_mode = S_IFREG | 0444;
		*timeout = 0;
		return 0;
	}
	if ((n = node_get(fs, ino)) == NULL)
		return -ENOENT;
	switch (n->type) {
	case NODE_OBJ:
	case NODE_COMMIT:
		st->st_mode = S_IFREG | 0444;
		st->st_size = (off_t)n->obj->size;
		st->st_blocks = (blkcnt_t)((n->obj->size + 511) / 512);
		st->st_mtime = st->st_ctime = st->st_atime = n->obj->mtime;
		*timeout = n->type == NODE_OBJ ? FS_OBJ_TIMEOUT : FS_DIR_TIMEOUT;
		return 0;
	case NODE_SERVICE:
		st->st_mode = S_IFLNK | 0777;
		st->st_size = (off_t)(strlen("../deltas/") +
				      strlen(n->obj->name));
		return 0;
	case NODE_INCOMING:
		st->st_mode = S_IFREG | 0644;
		st->st_size = (off_t)n->written;
		*timeout = 0;
		return 0;
	default:
		return -ENOENT;
	}
}

static void
fs_reply_entry(fuse_req_t req, struct fedfs *fs, uint64_t ino)
{
	struct fuse_entry_param ep;
	double t;
	int rc;

	memset(&ep, 0, sizeof(ep));
	rc = fs_stat(fs, ino, &ep.attr, &t);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	ep.ino = ino;
	ep.attr_timeout = t;
	ep.entry_timeout = t;
	fuse_reply_entry(req, &ep);
}

/*
 * On demand, a listing or a lookup of a name not (yet) in a catalogue
 * directory asks the authority for news: at most every 2 s, and not while
 * the authority is known to be unreachable.  Returns true if it refreshed.
 */
static bool
fs_refresh_on_demand(struct fedfs *fs)
{
	bool stale;

	pthread_rwlock_rdlock(&fs->lock);
	stale = time(NULL) - fs->refreshed >= 2 &&
		fs->authority_error[0] == '\0';
	pthread_rwlock_unlock(&fs->lock);
	if (stale)
		catalog_refresh(fs, 2000);
	return stale;
}

static void
fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fedfs *fs = fs_data(req);
	struct node *n;
	uint64_t ino = 0;

	if (parent == INO_ROOT) {
		for (uint64_t i = INO_KERNELS; i <= INO_STATUS; i++)
			if (strcmp(name, fs_dir_names[i]) == 0)
				ino = i;
		if (ino == 0) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		pthread_rwlock_rdlock(&fs->lock);
		fs_reply_entry(req, fs, ino);
		pthread_rwlock_unlock(&fs->lock);
		return;
	}
	for (int attempt = 0;; attempt++) {
		pthread_rwlock_rdlock(&fs->lock);
		/* newest first: a commit made from a file still being
		 * closed wins */
		for (size_t i = fs->nnodes; i-- > INO_FIRST_DYNAMIC;) {
			n = fs->nodes[i];
			if (n && n->parent == parent && fs_node_visible(n) &&
			    strcmp(n->name, name) == 0) {
				ino = n->ino;
				break;
			}
		}
		if (ino != 0) {
			fs_reply_entry(req, fs, ino);
			pthread_rwlock_unlock(&fs->lock);
			return;
		}
		pthread_rwlock_unlock(&fs->lock);
		/* a name just published elsewhere: ask once for news */
		if (attempt > 0 || !fs_is_catalog_dir(parent) ||
		    !fs_refresh_on_demand(fs))
			break;
	}
	fuse_reply_err(req, ENOENT);
}

static void
fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fedfs *fs = fs_data(req);
	struct stat st;
	double t;
	int rc;

	(void)fi;
	pthread_rwlock_rdlock(&fs->lock);
	rc = fs_stat(fs, ino, &st, &t);
	pthread_rwlock_unlock(&fs->lock);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, t);
}

static void
fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fedfs *fs = fs_data(req);
	char target[FEDFS_NAME_MAX + 16];
	struct node *n;

	pthread_rwlock_rdlock(&fs->lock);
	n = node_get(fs, ino);
	if (n == NULL || n->type != NODE_SERVICE) {
		pthread_rwlock_unlock(&fs->lock);
		fuse_reply_err(req, EINVAL);
		return;
	}
	snprintf(target, sizeof(target), "../deltas/%s", n->obj->name);
	pthread_rwlock_unlock(&fs->lock);
	fuse_reply_readlink(req, target);
}

/* --- directories ------------------------------------------------------------ */

static void
fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fedfs *fs = fs_data(req);

	if (fs_is_catalog_dir(ino))
		fs_refresh_on_demand(fs);
	fuse_reply_open(req, fi);
}

static void
fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	   struct fuse_file_info *fi)
{
	struct fedfs *fs = fs_data(req);
	char *buf = calloc(1, size);
	size_t used = 0;
	off_t idx = 0;
	struct stat st;

	(void)fi;
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memset(&st, 0, sizeof(st));
#define FS_ADD(nm, i, mode)						\
	do {								\
		if (idx++ >= off) {					\
			size_t need;					\
			st.st_ino = (i);				\
			st.st_mode = (mode);				\
			need = fuse_add_direntry(req, buf + used,	\
			    size - used, (nm), &st, idx);		\
			if (need > size - used)				\
				goto full;				\
			used += need;					\
		}							\
	} while (0)

	pthread_rwlock_rdlock(&fs->lock);
	if (ino != INO_ROOT && !(ino >= INO_KERNELS && ino <= INO_COMMIT)) {
		pthread_rwlock_unlock(&fs->lock);
		free(buf);
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	FS_ADD(".", ino, S_IFDIR);
	FS_ADD("..", INO_ROOT, S_IFDIR);
	if (ino == INO_ROOT) {
		for (uint64_t i = INO_KERNELS; i <= INO_STATUS; i++)
			FS_ADD(fs_dir_names[i], i,
			       i == INO_STATUS ? S_IFREG : S_IFDIR);
	} else {
		for (size_t i = INO_FIRST_DYNAMIC; i < fs->nnodes; i++) {
			struct node *n = fs->nodes[i];

			if (n && n->parent == ino && fs_node_visible(n))
				FS_ADD(n->name, n->ino, n->type == NODE_SERVICE ?
				       S_IFLNK : S_IFREG);
		}
	}
full:
	pthread_rwlock_unlock(&fs->lock);
#undef FS_ADD
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/* --- files -------------------------------------------------------------------- */

static void
fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fedfs *fs = fs_data(req);
	struct fs_fh *fh;
	struct node *n;

	if (ino == INO_STATUS) {
		json_t *j;

		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			fuse_reply_err(req, EACCES);
			return;
		}
		if ((fh = fs_fh_new()) == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		j = fedfs_status(fs);
		fh->text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
		json_decref(j);
		if (fh->text == NULL) {
			fs_fh_put(fh);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fh->text_len = strlen(fh->text);
		fh->text[fh->text_len++] = '\n';	/* over the NUL */
		fi->fh = (uint64_t)(uintptr_t)fh;
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
		return;
	}
	pthread_rwlock_rdlock(&fs->lock);
	n = node_get(fs, ino);
	if (n == NULL || !fs_node_visible(n)) {
		pthread_rwlock_unlock(&fs->lock);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->type == NODE_INCOMING) {
		/* a file being copied in has one open, its writer's: any
		 * close of another would act for it (check it half written,
		 * close its fd under a write in flight) */
		pthread_rwlock_unlock(&fs->lock);
		fuse_reply_err(req, EBUSY);
		return;
	}
	pthread_rwlock_unlock(&fs->lock);
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if ((fh = fs_fh_new()) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)fh;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* Have the store read the next chunks of o from disk now (store_prefetch),
 * so a sequential reader finds them in the page cache. */
static void
fs_readahead_local(struct fedfs *fs, struct fobj *o, struct fs_fh *fh,
		   uint32_t c, uint32_t ahead)
{
	uint32_t from = c + 1, to = c + ahead;

	if (fh != NULL) {	/* each chunk once per open file */
		pthread_mutex_lock(&fh->lock);
		if (fh->advised > from && fh->advised <= to + 1)
			from = fh->advised;
		fh->advised = to + 1;
		pthread_mutex_unlock(&fh->lock);
	}
	for (uint32_t k = from; k <= to && k < o->index.nchunks; k++)
		store_prefetch(fs->store, o->index.chunks[k]);
}

/* Chunk c of o held, verified and open (fetched first if need be, with
 * the `ahead` next ones on their way): an fd the caller closes, or -1 when
 * no source could give it (fetch.c has logged why). */
static int
fs_chunk_fd(struct fedfs *fs, struct fobj *o, uint32_t c, uint32_t ahead)
{
	struct err e;

	return fetcher_open(fs->fetcher, &o->fo, c, ahead, &e);
}

/* Reply with bytes [off, off + size) of object o. */
static void
fs_read_object(fuse_req_t req, struct fedfs *fs, struct fobj *o, size_t size,
	       off_t off, struct fs_fh *fh)
{
	uint64_t pos = (uint64_t)off, end;
	const struct chunk_index *ix = &o->index;
	struct fuse_bufvec *bv;
	size_t nmax, k = 0;
	uint32_t ahead;
	int err = 0;

	if (pos >= o->size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	end = pos + size < o->size ? pos + size : o->size;
	/* read ahead once a reader proves sequential (256 KiB in a row),
	 * growing with what it read, up to FS_READ_AHEAD chunks: a random
	 * read fetches only what it touches */
	ahead = 0;
	if (fh != NULL) {
		pthread_mutex_lock(&fh->lock);
		fh->seq_bytes = fh->next_off == pos ? fh->seq_bytes + (end - pos)
						    : end - pos;
		fh->next_off = end;
		if (fh->seq_bytes >= FS_SEQUENTIAL && ix->chunk_size > 0)
			ahead = 1 + (uint32_t)(2 * fh->seq_bytes / ix->chunk_size);
		if (ahead > FS_READ_AHEAD)
			ahead = FS_READ_AHEAD;
		pthread_mutex_unlock(&fh->lock);
	}
	nmax = 2 + (ix->chunk_size ? size / ix->chunk_size + 1 : 0);
	bv = calloc(1, sizeof(*bv) + nmax * sizeof(struct fuse_buf));
	if (bv == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (pos < o->header_len) {
		size_t n = (end < o->header_len ? end : o->header_len) - pos;

		bv->buf[k].mem = o->header + pos;
		bv->buf[k].size = n;
		k++;
		pos += n;
	}
	while (pos < end && err == 0) {
		uint64_t p = pos - o->header_len;
		uint32_t c = (uint32_t)(p / ix->chunk_size);
		uint64_t within = p % ix->chunk_size;
		uint64_t n = chunkidx_chunk_len(ix, c) - within;
		int fd = -1;

		if (n > end - pos)
			n = end - pos;
		if (fh != NULL) {	/* the chunk this file last read */
			pthread_mutex_lock(&fh->lock);
			if (fh->fd >= 0 && fh->fd_chunk == c)
				fd = dup(fh->fd);
			pthread_mutex_unlock(&fh->lock);
		}
		/* chunk c is open already: only what comes after it (were c
		 * evicted meanwhile, asking for it would wait on a fetch of
		 * bytes this read already has) */
		if (fd >= 0)
			fetcher_ahead(fs->fetcher, &o->fo, c, ahead);
		if (fd < 0 && (fd = fs_chunk_fd(fs, o, c, ahead)) >= 0) {
			if (ahead > 0)
				fs_readahead_local(fs, o, fh, c, ahead);
			if (fh != NULL) {
				pthread_mutex_lock(&fh->lock);
				if (fh->fd >= 0)
					close(fh->fd);
				fh->fd = dup(fd);
				fh->fd_chunk = c;
				pthread_mutex_unlock(&fh->lock);
			}
		}
		if (fd < 0) {
			err = EIO;
			break;
		}
		bv->buf[k].fd = fd;
		bv->buf[k].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv->buf[k].pos = (off_t)within;
		bv->buf[k].size = n;
		k++;
		pos += n;
		ahead = 0;		/* asked once per read is enough */
	}
	bv->count = k;
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_data(req, bv, FUSE_BUF_SPLICE_MOVE);
	for (size_t i = 0; i < k; i++)
		if (bv->buf[i].flags & FUSE_BUF_IS_FD)
			close(bv->buf[i].fd);
	free(bv);
}

static void
fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	struct fuse_file_info *fi)
{
	struct fedfs *fs = fs_data(req);
	struct fs_fh *fh = fs_fh_get((struct fs_fh *)(uintptr_t)fi->fh);
	struct fobj *o = NULL;
	struct node *n;

	if (ino == INO_STATUS) {
		if ((size_t)off >= fh->text_len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, fh->text + off,
				       fh->text_len - (size_t)off < size ?
				       fh->text_len - (size_t)off : size);
		fs_fh_put(fh);
		return;
	}
	pthread_rwlock_rdlock(&fs->lock);
	n = node_get(fs, ino);
	if (n != NULL && (n->type == NODE_OBJ || n->type == NODE_COMMIT))
		o = n->obj;
	if (n != NULL && n->type == NODE_INCOMING) {
		char *buf = malloc(size);
		ssize_t got;

		pthread_rwlock_unlock(&fs->lock);
		if (buf == NULL) {
			fuse_reply_err(req, ENOMEM);
			fs_fh_put(fh);
			return;
		}
		got = pread(n->fd, buf, size, off);
		if (got < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_buf(req, buf, (size_t)got);
		free(buf);
		fs_fh_put(fh);
		return;
	}
	pthread_rwlock_unlock(&fs->lock);
	if (o == NULL)
		fuse_reply_err(req, ENOENT);
	else
		fs_read_object(req, fs, o, size, off, fh);
	fs_fh_put(fh);
}

static void
fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fedfs *fs = fs_data(req);
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
	struct node *n;

	fs_fh_put(fh);
	pthread_rwlock_wrlock(&fs->lock);
	n = node_get(fs, ino);
	if (n != NULL && n->type == NODE_INCOMING && n->fd >= 0) {
		close(n->fd);
		n->fd = -1;
		unlink(n->path);
		n->live = false;
	}
	pthread_rwlock_unlock(&fs->lock);
	fuse_reply_err(req, 0);
}

/* --- publish/ and commit/ -------------------------------------------------------- */

static int
fs_name_check(const char *name)
{
	size_t len = strlen(name);

	if (len > FEDFS_NAME_MAX)
		return ENAMETOOLONG;
	if (len == 0 || name[0] == '.' || strchr(name, '/') != NULL)
		return EINVAL;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			return EINVAL;
	return 0;
}

static void
fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	  struct fuse_file_info *fi)
{
	struct fedfs *fs = fs_data(req);
	struct node *n;
	char *path = NULL;
	int rc, fd;

	(void)mode;
	if (parent != INO_PUBLISH && parent != INO_COMMIT) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if ((rc = fs_name_check(name)) != 0) {
		pthread_rwlock_wrlock(&fs->lock);
		fs->ingest_refused++;
		pthread_rwlock_unlock(&fs->lock);
		log_warn("%s/%s refused: a name of 1..%d printable characters, "
			 "not starting with '.'", parent == INO_COMMIT ?
			 "commit" : "publish", name, FEDFS_NAME_MAX);
		fuse_reply_err(req, rc);
		return;
	}
	pthread_rwlock_wrlock(&fs->lock);
	if (node_lookup(fs, parent, name) != NULL) {
		pthread_rwlock_unlock(&fs->lock);
		fuse_reply_err(req, EEXIST);
		return;
	}
	n = node_new(fs, NODE_INCOMING, parent, name, NULL);
	if (n == NULL || asprintf(&path, "%s/incoming/%llu", fs->state_dir,
				  (unsigned long long)n->ino) < 0) {
		if (n)
			n->live = false;
		pthread_rwlock_unlock(&fs->lock);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = errno;
		n->live = false;
		pthread_rwlock_unlock(&fs->lock);
		free(path);
		fuse_reply_err(req, rc);
		return;
	}
	n->fd = fd;
	n->path = path;
	fi->direct_io = 1;
	fi->fh = 0;
	{
		struct fuse_entry_param ep;
		double t;

		memset(&ep, 0, sizeof(ep));
		fs_stat(fs, n->ino, &ep.attr, &t);
		ep.ino = n->ino;
		pthread_rwlock_unlock(&fs->lock);
		fuse_reply_create(req, &ep, fi);
	}
}

/* The fd of a file still being copied into publish/ or commit/ (and its
 * node in *n), or -1 if ino is not one that may still be written. */
static int
fs_incoming_fd(struct fedfs *fs, fuse_ino_t ino, struct node **n)
{
	int fd;

	pthread_rwlock_rdlock(&fs->lock);
	*n = node_get(fs, ino);
	fd = *n != NULL && (*n)->type == NODE_INCOMING && !(*n)->ingested ?
	     (*n)->fd : -1;
	pthread_rwlock_unlock(&fs->lock);
	return fd;
}

static void
fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	 off_t off, struct fuse_file_info *fi)
{
	struct fedfs *fs = fs_data(req);
	struct node *n;
	ssize_t done;
	int fd;

	(void)fi;
	fd = fs_incoming_fd(fs, ino, &n);
	if (fd < 0) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if ((uint64_t)off + size > FS_INCOMING_MAX) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	done = pwrite(fd, buf, size, off);
	if (done < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	pthread_rwlock_wrlock(&fs->lock);
	if ((uint64_t)off + (uint64_t)done > n->written)
		n->written = (uint64_t)off + (uint64_t)done;
	n->copy_broken = true;
	pthread_rwlock_unlock(&fs->lock);
	fuse_reply_write(req, (size_t)done);
}

/* Copy n bytes from in at *in_off to out at *out_off: in the kernel when
 * it can (both on the same local filesystem), else through a buffer. */
static int
fs_copy_fd(int in, off_t *in_off, int out, off_t *out_off, size_t n)
{
	char buf[64 << 10];

	while (n > 0) {
		ssize_t k = copy_file_range(in, in_off, out, out_off, n, 0);

		if (k < 0 && (errno == EXDEV || errno == EINVAL ||
			      errno == EOPNOTSUPP || errno == ENOSYS)) {
			k = pread(in, buf, n < sizeof(buf) ? n : sizeof(buf),
				  *in_off);
			if (k > 0 && pwrite_full(out, buf, (size_t)k,
						 *out_off) < 0)
				return -1;
			if (k > 0) {
				*in_off += k;
				*out_off += k;
			}
		}
		if (k < 0)
			return -1;
		if (k == 0) {
			errno = EIO;	/* a chunk file shorter than its entry */
			return -1;
		}
		n -= (size_t)k;
	}
	return 0;
}

/*
 * copy_file_range from an object of fedfs into a file being copied into
 * publish/ or commit/: what cp does for `cp deltas/X.fedsnap commit/`.
 * The bytes go from the chunk files to the incoming file in the kernel,
 * not through two FUSE round trips each, and the node remembers whether
 * it is, so far, an exact copy of the object from its first byte: then
 * ingest need not hash bytes the store already holds verified.  Anything
 * else is left to the kernel's own copy (EOPNOTSUPP: read, then write).
 */
static void
fs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
		   struct fuse_file_info *fi_in, fuse_ino_t ino_out,
		   off_t off_out, struct fuse_file_info *fi_out, size_t len,
		   int flags)
{
	struct fedfs *fs = fs_data(req);
	const struct chunk_index *ix;
	uint64_t pos, end, done = 0;
	struct fobj *o = NULL;
	struct node *n, *src;
	off_t out = off_out;
	int fd, err = 0;

	(void)fi_in;
	(void)fi_out;
	pthread_rwlock_rdlock(&fs->lock);
	src = node_get(fs, ino_in);
	if (src != NULL && (src->type == NODE_OBJ || src->type == NODE_COMMIT))
		o = src->obj;
	pthread_rwlock_unlock(&fs->lock);
	fd = fs_incoming_fd(fs, ino_out, &n);
	if (o == NULL || fd < 0 || flags != 0 || off_in < 0 || off_out < 0) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if ((uint64_t)off_out + len > FS_INCOMING_MAX) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	ix = &o->index;
	pos = (uint64_t)off_in;
	end = pos + len < o->size ? pos + len : o->size;
	if (pos < end && pos < o->header_len) {
		size_t k = (end < o->header_len ? end : o->header_len) - pos;

		if (pwrite_full(fd, o->header + pos, k, out) < 0)
			err = errno;
		else {
			out += (off_t)k;
			pos += k;
		}
	}
	while (pos < end && err == 0) {
		uint64_t p = pos - o->header_len;
		uint32_t c = (uint32_t)(p / ix->chunk_size);
		off_t within = (off_t)(p % ix->chunk_size);
		uint64_t k = chunkidx_chunk_len(ix, c) - (uint64_t)within;
		int cfd;

		if (k > end - pos)
			k = end - pos;
		/* a copy reads on: a chunk not held yet is fetched with the
		 * next ones on their way, as a sequential read would be */
		cfd = fs_chunk_fd(fs, o, c, store_has(fs->store, ix->chunks[c]) ?
				  0 : FS_READ_AHEAD);
		if (cfd < 0) {
			err = EIO;
			break;
		}
		if (fs_copy_fd(cfd, &within, fd, &out, (size_t)k) < 0)
			err = errno;
		else
			pos += k;
		close(cfd);
	}
	done = pos - (uint64_t)off_in;
	pthread_rwlock_wrlock(&fs->lock);
	if ((uint64_t)off_out + done > n->written)
		n->written = (uint64_t)off_out + done;
	if (n->copy_of == NULL && !n->copy_broken && off_out == 0)
		n->copy_of = o;
	if (n->copy_of == o && off_in == off_out &&
	    (uint64_t)off_out == n->copy_end)
		n->copy_end += done;
	else
		n->copy_broken = true;
	pthread_rwlock_unlock(&fs->lock);
	if (done == 0 && err != 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_write(req, (size_t)done);
}

static void
fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fedfs *fs = fs_data(req);
	struct node *n;
	bool first_close;
	int rc;

	(void)fi;
	pthread_rwlock_wrlock(&fs->lock);
	n = node_get(fs, ino);
	first_close = n != NULL && n->type == NODE_INCOMING && !n->ingested &&
	       n->fd >= 0;
	if (first_close)
		n->ingested = true;	/* one close does the work */
	pthread_rwlock_unlock(&fs->lock);
	if (!first_close) {
		rc = n != NULL && n->type == NODE_INCOMING ? n->ingest_rc : 0;
		fuse_reply_err(req, -rc);
		return;
	}
	rc = ingest_file(fs, n);
	pthread_rwlock_wrlock(&fs->lock);
	n->ingest_rc = rc;
	n->live = false;		/* a commit shows under its own node */
	pthread_rwlock_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

static void
fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
	   struct fuse_file_info *fi)
{
	struct fedfs *fs = fs_data(req);
	struct node *n;
	struct stat st;
	double t;
	int fd;

	(void)fi;
	fd = fs_incoming_fd(fs, ino, &n);
	if (fd < 0) {
		/* objects are immutable: only harmless requests pass */
		if (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE |
			      FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
			fuse_reply_err(req, EACCES);
			return;
		}
	} else if (to_set & FUSE_SET_ATTR_SIZE) {
		if ((uint64_t)attr->st_size > FS_INCOMING_MAX) {
			fuse_reply_err(req, EFBIG);
			return;
		}
		if (ftruncate(fd, attr->st_size) < 0) {
			fuse_reply_err(req, errno);	/* ENOSPC, EIO: as is */
			return;
		}
		pthread_rwlock_wrlock(&fs->lock);
		n->written = (uint64_t)attr->st_size;
		if (n->written != 0 || n->copy_end != 0)
			n->copy_broken = true;
		pthread_rwlock_unlock(&fs->lock);
	}
	pthread_rwlock_rdlock(&fs->lock);
	if (fs_stat(fs, ino, &st, &t) < 0) {
		pthread_rwlock_unlock(&fs->lock);
		fuse_reply_err(req, ENOENT);
		return;
	}
	pthread_rwlock_unlock(&fs->lock);
	fuse_reply_attr(req, &st, t);
}

static void
fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fedfs *fs = fs_data(req);
	struct node *n;
	int rc = 0;

	if (parent != INO_PUBLISH && parent != INO_COMMIT) {
		fuse_reply_err(req, EACCES);
		return;
	}
	pthread_rwlock_rdlock(&fs->lock);
	n = node_lookup(fs, parent, name);
	pthread_rwlock_unlock(&fs->lock);
	if (n == NULL)
		rc = ENOENT;
	else if (n->type == NODE_COMMIT)
		rc = -commit_withdraw(fs, n);
	else if (n->type == NODE_INCOMING) {
		pthread_rwlock_wrlock(&fs->lock);
		n->live = false;
		pthread_rwlock_unlock(&fs->lock);
	} else
		rc = EACCES;
	fuse_reply_err(req, rc);
}

static void
fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fedfs *fs = fs_data(req);
	struct store_stats st;
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	if (statvfs(fs->state_dir, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	store_get_stats(fs->store, &st);
	sv.f_namemax = FEDFS_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

static void
fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	conn->max_readahead = FS_READAHEAD_KB << 10;
	/* also sets max_pages, the largest read the kernel asks for */
	conn->max_write = FS_MAX_IO;
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
	.release = fs_release,
	.create = fs_create,
	.write = fs_write,
	.copy_file_range = fs_copy_file_range,
	.flush = fs_flush,
	.unlink = fs_unlink,
	.statfs = fs_statfs,
};

/* The kernel reads ahead on a FUSE mount no more than its backing device's
 * read_ahead_kb, 128 KiB by default, whatever INIT said: 256 KiB reads,
 * four times the requests of 1 MiB ones.  Raise it for this mount (root
 * only; without it reads are smaller, not wrong).  Found through
 * /proc/self/mountinfo, not stat(): the mount cannot answer yet. */
void
fs_tune_readahead(const char *mountpoint)
{
	char real[4096], esc[4096], path[128];
	unsigned maj = 0, min = 0;
	bool found = false;
	size_t cap = 0, k = 0;
	char *line = NULL;
	FILE *f;

	if (realpath(mountpoint, real) == NULL)
		return;
	for (const char *p = real; *p && k + 5 < sizeof(esc); p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\\')
			k += (size_t)snprintf(esc + k, 5, "\\%03o",
					      (unsigned char)*p);
		else
			esc[k++] = *p;
	}
	esc[k] = '\0';
	if ((f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return;
	while (getline(&line, &cap, f) > 0) {
		char point[4096];
		unsigned a, b;

		/* ID PARENT MAJ:MIN ROOT POINT ...; the last mount wins */
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b,
			   point) == 3 && strcmp(point, esc) == 0) {
			maj = a;
			min = b;
			found = true;
		}
	}
	free(line);
	fclose(f);
	if (!found)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 maj, min);
	if ((f = fopen(path, "we")) != NULL) {
		bool ok = fprintf(f, "%u\n", FS_READAHEAD_KB) > 0;

		if (fclose(f) != 0 || !ok)	/* the write happens at close */
			f = NULL;
	}
	if (f == NULL) {
		log_warn("cannot raise the read-ahead (%s: %s): sequential "
			 "reads go in 256 KiB requests, not 1 MiB", path,
			 strerror(errno));
		return;
	}
	log_debug("read-ahead of %u KiB on this mount (%s)", FS_READAHEAD_KB,
		  path);
}

void
fs_set_start_time(time_t t)
{
	fs_started = t;
}
