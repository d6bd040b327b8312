/*
 * keyfile.c - reading and writing Ed25519 key files.
 *
 * A secret key file is 64 hex digits (the seed) and a newline, mode 0600,
 * created with O_EXCL so an existing key is never overwritten.  Loading
 * refuses a file that group or others can read, or that is not a regular
 * file, before reading a byte of it.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/keyfile.h"

#define KEYFILE_MAX 256		/* a key file is 65 bytes; refuse more */

/* Read a small file whole into buf (NUL-terminated, trailing whitespace
 * removed).  If secret, refuse a file group or others may read. */
static int
keyfile_read_text(const char *path, bool secret, char *buf, size_t bufsz,
		  struct err *e)
{
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd;

	/* O_NONBLOCK: a FIFO put at the path must not hang the open before
	 * the check below refuses anything but a regular file */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
		       O_NONBLOCK)) < 0)
		return err_sys(e, "key file %s", path);
	if (fstat(fd, &st) < 0) {
		close(fd);
		return err_sys(e, "key file %s", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, "key file %s: not a regular file", path);
	}
	if (secret && (st.st_mode & 077) != 0) {
		close(fd);
		return err_set(e, "key file %s: mode %03o lets others read the "
			       "secret key; run chmod 600 %s", path,
			       (unsigned)(st.st_mode & 0777), path);
	}
	while (len < bufsz - 1 &&
	       (n = read(fd, buf + len, bufsz - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return err_sys(e, "key file %s", path);
		}
		len += (size_t)n;
	}
	close(fd);
	if (len == bufsz - 1)
		return err_set(e, "key file %s: too long to be a key", path);
	/* surrounding whitespace allowed (docs/formats.md), either end */
	while (len > 0 && isspace((unsigned char)buf[len - 1]))
		len--;
	buf[len] = '\0';
	{
		size_t lead = strspn(buf, " \t\r\n\v\f");

		memmove(buf, buf + lead, len - lead + 1);
	}
	return 0;
}

int
keyfile_create(const char *path, uint8_t seed[ED25519_SEED_LEN],
	       uint8_t pub[ED25519_PUB_LEN], struct err *e)
{
	char text[2 * ED25519_SEED_LEN + 2];
	size_t len;
	int fd;

	if (ed25519_keygen(seed, pub, e) < 0)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, "cannot create key file %s", path);
	hex_encode(seed, ED25519_SEED_LEN, text);
	len = strlen(text);
	text[len++] = '\n';
	if (fchmod(fd, 0600) < 0 || write(fd, text, len) != (ssize_t)len ||
	    fsync(fd) < 0) {
		err_sys(e, "cannot write key file %s", path);
		explicit_bzero(text, sizeof(text));
		close(fd);
		unlink(path);
		return -1;
	}
	explicit_bzero(text, sizeof(text));
	if (close(fd) < 0) {
		unlink(path);
		return err_sys(e, "cannot write key file %s", path);
	}
	return 0;
}

int
keyfile_load(const char *path, uint8_t seed[ED25519_SEED_LEN],
	     uint8_t pub[ED25519_PUB_LEN], struct err *e)
{
	char text[KEYFILE_MAX];
	uint8_t tmp[ED25519_PUB_LEN];
	int rc;

	if (keyfile_read_text(path, true, text, sizeof(text), e) < 0)
		return -1;
	rc = hex_decode(text, seed, ED25519_SEED_LEN);
	explicit_bzero(text, sizeof(text));
	if (rc < 0)
		return err_set(e, "key file %s: expected 64 hex digits "
			       "(a secret key made by `fed keygen`)", path);
	return ed25519_public(seed, pub ? pub : tmp, e);
}

int
pubkey_load(const char *path, uint8_t pub[ED25519_PUB_LEN], struct err *e)
{
	char text[KEYFILE_MAX];

	if (keyfile_read_text(path, false, text, sizeof(text), e) < 0)
		return -1;
	if (hex_decode(text, pub, ED25519_PUB_LEN) < 0)
		return err_set(e, "public key file %s: expected 64 hex digits "
			       "(as printed by `fed pubkey`)", path);
	return 0;
}
