/*
 * importdisk.c - the disk that carries an owner's files into the import
 * boot (machine.h).  It replaces hostfs, which fed's kernel does not have:
 * a guest that can mount the host's files is a guest that is not
 * contained.  mke2fs -d copies the tree without mounting anything.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/proc.h"
#include "machine/machine.h"

#define IMPORT_BLOCK	4096u
#define IMPORT_SLACK	(16u << 20)	/* metadata, directories, lost+found */

/* What the tree under the walk takes: nftw gives no user pointer. */
static uint64_t walk_bytes, walk_inodes;

static int
import_count(const char *path, const struct stat *sb, int type,
	     struct FTW *ftw)
{
	(void)path;
	(void)type;
	(void)ftw;
	walk_inodes++;
	walk_bytes += ((uint64_t)sb->st_size + IMPORT_BLOCK - 1) /
		      IMPORT_BLOCK * IMPORT_BLOCK + IMPORT_BLOCK;
	return 0;
}

int
import_disk_make(const char *root, const char *out, struct err *e)
{
	char size[32], inodes[32];
	char *mk[] = { "mke2fs", "-q", "-F", "-t", "ext2", "-b", "4096",
		       "-m", "0", "-N", inodes, "-E", "root_owner=0:0",
		       "-d", (char *)root, (char *)out, size, NULL };
	uint64_t bytes;

	walk_bytes = walk_inodes = 0;
	if (nftw(root, import_count, 32, FTW_PHYS) != 0)
		return err_sys(e, "import disk: cannot walk %s", root);
	bytes = walk_bytes + walk_bytes / 4 + IMPORT_SLACK;
	snprintf(size, sizeof(size), "%" PRIu64 "k", bytes / 1024);
	snprintf(inodes, sizeof(inodes), "%" PRIu64, walk_inodes + 64);
	unlink(out);
	if (proc_run(mk, -1, STDERR_FILENO) != 0)
		return err_set(e, "import disk: mke2fs -d %s failed", root);
	return 0;
}
