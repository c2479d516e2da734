/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writing the layout as a GPT or msdos table with libfdisk, reading a table back, and telling the kernel about
 * partitions: BLKRRPART, else BLKPG one partition at a time (kernels without a GPT parser).
 */
#pragma once

#include <stdint.h>

#include "layout.h"

/* A partition as found in a table (libfdisk) or in the kernel (sysfs). Bytes. */
struct part_info {
        unsigned partno;
        uint64_t start;
        uint64_t size;
        char name[73];      /* GPT name (UTF-8), "" when none */
        char type[40];      /* type GUID, upper case, or the msdos code in hex ("83"); "" when none */
        bool bootable;      /* msdos: the boot (active) flag */
};

/*
 * Writes a new table (l->table: GPT or msdos) holding l's partitions to fd, a whole disk or an image file (path is used in
 * messages); fsyncs. Whatever table was there is replaced. A whole disk must be locked by the
 * caller (flock(LOCK_EX) on it, see disk.c) so that udev keeps off.
 * The disk's size and sector size must be those l was computed for. 0 or -errno (logged).
 */
int partition_write_table(int fd, const char *path, const struct layout *l);

/* Reads the table on fd with libfdisk (*ret_label: "gpt" or "dos"). *ret is a malloc'ed array of *ret_n entries, by partno.
 * -ENOMEDIUM when there is no partition table. */
int partition_read_table(int fd, const char *path, char **ret_label, struct part_info **ret, size_t *ret_n);

/* Reads the table back and compares it with l: count, numbers, starts, sizes, names, types. */
int partition_verify(int fd, const char *path, const struct layout *l);

/* The partitions the kernel currently has for the whole disk "sysname" (e.g. "sda"), from
 * /sys/block/<sysname>/<part>/{partition,start,size}; names of their nodes in ret_names when not
 * NULL (a strv parallel to *ret). */
int partition_kernel_list(const char *sysname, struct part_info **ret, size_t *ret_n, char ***ret_names);

/*
 * Makes the kernel's view of disk fd match l (NULL: no partitions, after a wipe): BLKRRPART, and
 * when that fails (busy) or the kernel's view differs from l right after it (no parser for the
 * table), BLKPG: stale partitions deleted, missing ones added. With l, waits up to timeout_usec for every partition node in /dev and stores
 * "/dev/<name>" for l->parts[i] in ret_nodes[i] (malloc'ed; ret_nodes may be NULL).
 */
int partition_kernel_sync(int fd, const char *node, const char *sysname, const struct layout *l,
                          uint64_t timeout_usec, char *ret_nodes[_PART_MAX]);
