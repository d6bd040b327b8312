/*
 * fedsnap.c - reading, checking and writing .fedsnap containers.
 *
 * Reading goes front to back with bounded reads: the magic line, then the
 * manifest line (searched for its newline in 64 KiB steps, never past
 * MANIFEST_MAX_BYTES), then the signature line, then the payload, which
 * only fedsnap_verify_payload() and delta_unpack() touch, one chunk at a
 * time.  Every failure names the part of the file that is wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fedsnap.h"
#include "common/hex.h"
#include "common/io.h"

#define FEDSNAP_MAGIC_LEN (sizeof(FEDSNAP_MAGIC) - 1)
#define FEDSNAP_SIG_LINE_LEN (4 + 2 * ED25519_SIG_LEN + 1)
#define FEDSNAP_STEP (64u << 10)

/* Read the manifest line starting at off; on success s->manifest_* set. */
static int
fedsnap_read_manifest(struct fedsnap *s, uint64_t off, struct err *e)
{
	size_t cap = 0, len = 0;
	char *buf = NULL, *nl = NULL;
	ssize_t n;

	while (nl == NULL) {
		if (len > MANIFEST_MAX_BYTES) {
			free(buf);
			return err_set(e, "manifest line is longer than the %u "
				       "bytes allowed", MANIFEST_MAX_BYTES);
		}
		if (cap - len < FEDSNAP_STEP) {
			char *p = realloc(buf, cap + FEDSNAP_STEP + 1);

			if (p == NULL) {
				free(buf);
				return err_sys(e, "manifest");
			}
			buf = p;
			cap += FEDSNAP_STEP;
		}
		n = pread_full(s->fd, buf + len, FEDSNAP_STEP, off + len);
		if (n < 0) {
			free(buf);
			return err_sys(e, "read manifest");
		}
		if (n == 0) {
			free(buf);
			return err_set(e, "truncated: the manifest line has no "
				       "end (file ends at byte %llu)",
				       (unsigned long long)(off + len));
		}
		nl = memchr(buf + len, '\n', (size_t)n);
		len += (size_t)n;
	}
	s->manifest_len = (size_t)(nl - buf);
	if (s->manifest_len > MANIFEST_MAX_BYTES) {
		free(buf);
		return err_set(e, "manifest line is longer than the %u bytes "
			       "allowed", MANIFEST_MAX_BYTES);
	}
	*nl = '\0';
	s->manifest_bytes = buf;
	return 0;
}

int
fedsnap_check_signed_manifest(const char *bytes, size_t len,
			      const uint8_t sig[ED25519_SIG_LEN],
			      struct manifest *m, struct err *e)
{
	char owner[2 * ED25519_PUB_LEN + 1];

	if (manifest_parse(bytes, len, m, e) < 0)
		return -1;
	if (ed25519_verify(m->owner, bytes, len, sig) < 0) {
		hex_encode(m->owner, ED25519_PUB_LEN, owner);
		manifest_free(m);
		return err_set(e, "signature does not verify for the manifest's "
			       "owner %.16s.. (tampered manifest or wrong "
			       "signer)", owner);
	}
	return 0;
}

int
fedsnap_fdopen(int fd, struct fedsnap *s, struct err *e)
{
	char magic[FEDSNAP_MAGIC_LEN], line[FEDSNAP_SIG_LINE_LEN + 1];
	uint64_t off;
	ssize_t n;

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	n = pread_full(fd, magic, sizeof(magic), 0);
	if (n < 0) {
		err_sys(e, "read");
		goto bad;
	}
	if ((size_t)n < sizeof(magic) ||
	    memcmp(magic, FEDSNAP_MAGIC, sizeof(magic)) != 0) {
		err_set(e, "not a .fedsnap file (it must start with "
			"\"FEDSNAP 1\")");
		goto bad;
	}
	off = FEDSNAP_MAGIC_LEN;
	if (fedsnap_read_manifest(s, off, e) < 0)
		goto bad;
	off += s->manifest_len + 1;

	n = pread_full(fd, line, FEDSNAP_SIG_LINE_LEN, off);
	if (n < 0) {
		err_sys(e, "read signature");
		goto bad;
	}
	if ((size_t)n < FEDSNAP_SIG_LINE_LEN) {
		err_set(e, "truncated: the signature line is incomplete");
		goto bad;
	}
	if (line[FEDSNAP_SIG_LINE_LEN - 1] != '\n') {
		err_set(e, "malformed signature line (no newline after 128 hex "
			"digits)");
		goto bad;
	}
	line[FEDSNAP_SIG_LINE_LEN - 1] = '\0';
	/* lower case only (docs/formats.md): with upper case allowed, one
	 * snapshot would have several files, all with its id */
	if (memcmp(line, FEDSNAP_SIG_PREFIX, 4) != 0 ||
	    line[4 + strspn(line + 4, "0123456789abcdef")] != '\0' ||
	    hex_decode(line + 4, s->sig, ED25519_SIG_LEN) < 0) {
		err_set(e, "malformed signature line (expected \"sig \" and 128 "
			"lower-case hex digits)");
		goto bad;
	}
	s->payload_offset = off + FEDSNAP_SIG_LINE_LEN;

	if (fedsnap_check_signed_manifest(s->manifest_bytes, s->manifest_len,
					  s->sig, &s->m, e) < 0)
		goto bad;
	manifest_id(s->manifest_bytes, s->manifest_len, s->id);
	return 0;
bad:
	free(s->manifest_bytes);
	s->manifest_bytes = NULL;
	close(s->fd);
	s->fd = -1;
	return -1;
}

int
fedsnap_open(const char *path, struct fedsnap *s, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		memset(s, 0, sizeof(*s));
		s->fd = -1;
		return err_sys(e, "%s", path);
	}
	return fedsnap_fdopen(fd, s, e);
}

int
fedsnap_verify_payload(struct fedsnap *s, struct err *e)
{
	const struct chunk_index *ix = &s->m.delta;
	uint8_t *buf, extra;
	ssize_t n;
	uint32_t i;

	if ((buf = malloc(ix->chunk_size)) == NULL)
		return err_sys(e, "verify");
	for (i = 0; i < ix->nchunks; i++) {
		uint32_t len = chunkidx_chunk_len(ix, i);
		uint64_t at = s->payload_offset + (uint64_t)i * ix->chunk_size;

		n = pread_full(s->fd, buf, len, at);
		if (n < 0) {
			free(buf);
			return err_sys(e, "read chunk %u", i);
		}
		if ((size_t)n < len) {
			free(buf);
			return err_set(e, "truncated: payload ends in chunk %u of "
				       "%u (%llu of %llu payload bytes present)",
				       i, ix->nchunks,
				       (unsigned long long)((uint64_t)i *
				       ix->chunk_size + (uint64_t)n),
				       (unsigned long long)ix->size);
		}
		if (chunkidx_verify_chunk(ix, i, buf, len, e) < 0) {
			free(buf);
			return err_wrap(e, "payload tampered or corrupt");
		}
	}
	free(buf);
	n = pread_full(s->fd, &extra, 1, s->payload_offset + ix->size);
	if (n != 0)
		return n < 0 ? err_sys(e, "read") :
			err_set(e, "trailing data after the %llu-byte payload",
				(unsigned long long)ix->size);
	return 0;
}

int
fedsnap_check_length(struct fedsnap *s, struct err *e)
{
	struct stat st;
	uint64_t want = s->payload_offset + s->m.delta.size;

	if (fstat(s->fd, &st) < 0)
		return err_sys(e, "stat");
	if ((uint64_t)st.st_size < want)
		return err_set(e, "truncated: the file has %llu bytes, its "
			       "payload needs %llu",
			       (unsigned long long)st.st_size,
			       (unsigned long long)want);
	if ((uint64_t)st.st_size > want)
		return err_set(e, "trailing data after the %llu-byte payload",
			       (unsigned long long)s->m.delta.size);
	return 0;
}

int
fedsnap_sign_manifest(const uint8_t seed[ED25519_SEED_LEN],
		      const char *bytes, size_t len,
		      uint8_t sig[ED25519_SIG_LEN], struct err *e)
{
	return ed25519_sign(seed, bytes, len, sig, e);
}

static int
fedsnap_copy(int in, int out, uint64_t len, struct err *e)
{
	static const size_t bufsz = 1 << 20;
	uint64_t done = 0;
	char *buf;
	ssize_t n;

	/* the kernel copies (or reflinks) without a trip through us */
	while (done < len) {
		n = copy_file_range(in, &(off_t){ (off_t)done }, out, NULL,
				    (size_t)(len - done), 0);
		if (n <= 0)
			break;
		done += (uint64_t)n;
	}
	if (done == len)
		return 0;
	if ((buf = malloc(bufsz)) == NULL)
		return err_sys(e, "copy payload");
	while (done < len) {
		size_t want = len - done < bufsz ? (size_t)(len - done) : bufsz;

		n = pread_full(in, buf, want, done);
		if (n <= 0) {
			free(buf);
			return n < 0 ? err_sys(e, "read payload") :
				err_set(e, "payload is shorter than the %llu "
					"bytes its index says",
					(unsigned long long)len);
		}
		if (write_full(out, buf, (size_t)n) < 0) {
			free(buf);
			return err_sys(e, "write payload");
		}
		done += (uint64_t)n;
	}
	free(buf);
	return 0;
}

int
fedsnap_write(const char *path, const struct manifest *m,
	      const uint8_t seed[ED25519_SEED_LEN], int payload_fd,
	      uint8_t id[SHA256_LEN], struct err *e)
{
	uint8_t pub[ED25519_PUB_LEN], sig[ED25519_SIG_LEN];
	char sighex[2 * ED25519_SIG_LEN + 1];
	char *bytes = NULL, *tmp = NULL, *dir = NULL;
	size_t len;
	FILE *f = NULL;
	int fd = -1, rc = -1;

	if (ed25519_public(seed, pub, e) < 0)
		return -1;
	if (memcmp(pub, m->owner, ED25519_PUB_LEN) != 0)
		return err_set(e, "the signing key is not the manifest's owner");
	if ((bytes = manifest_serialize(m, &len, e)) == NULL)
		return -1;
	if (ed25519_sign(seed, bytes, len, sig, e) < 0)
		goto bad;
	hex_encode(sig, ED25519_SIG_LEN, sighex);
	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
		tmp = NULL;
		err_sys(e, "write");
		goto bad;
	}
	if ((fd = mkstemp(tmp)) < 0) {
		err_sys(e, "create %s", tmp);
		goto bad;
	}
	if (fchmod(fd, 0644) < 0 || (f = fdopen(dup(fd), "w")) == NULL) {
		err_sys(e, "write %s", tmp);
		goto bad;
	}
	if (fprintf(f, "%s%s\n%s%s\n", FEDSNAP_MAGIC, bytes,
		    FEDSNAP_SIG_PREFIX, sighex) < 0 || fclose(f) != 0) {
		f = NULL;
		err_sys(e, "write %s", tmp);
		goto bad;
	}
	f = NULL;
	if (lseek(fd, 0, SEEK_END) < 0 ||
	    fedsnap_copy(payload_fd, fd, m->delta.size, e) < 0)
		goto bad;
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		err_sys(e, "write %s", tmp);
		goto bad;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		err_sys(e, "rename to %s", path);
		goto bad;
	}
	if ((dir = strdup(path)) != NULL) {
		int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	if (id != NULL)
		manifest_id(bytes, len, id);
	rc = 0;
bad:
	if (f != NULL)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (rc < 0 && tmp != NULL)
		unlink(tmp);
	free(dir);
	free(tmp);
	free(bytes);
	return rc;
}

void
fedsnap_close(struct fedsnap *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->manifest_bytes);
	s->manifest_bytes = NULL;
	manifest_free(&s->m);
}
