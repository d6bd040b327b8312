/*
 * fs.h - the FUSE operations of fedfs (fs.c).
 */
#ifndef FED_FEDFS_FS_H
#define FED_FEDFS_FS_H

#include <time.h>

#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops fs_ops;

/* Raise the kernel's read-ahead on the mount at mountpoint (after
 * fuse_session_mount, before the session loop answers anything). */
void fs_tune_readahead(const char *mountpoint);

/* The time shown on directories. */
void fs_set_start_time(time_t t);

#endif
