/* SPDX-License-Identifier: Apache-2.0 */
/* Old signatures and old holders: what must go before a disk is partitioned (see wipe.c). */
#pragma once

#include <stdbool.h>

/*
 * Wipes every signature libblkid finds on the disk open as fd: first inside each partition of its
 * partition table (as `wipefs -a` on each partition would), then on the whole disk: filesystems,
 * RAID and LVM labels, both GPT headers (the backup at the end too), the protective or DOS MBR.
 * Checks that nothing is left. Adds 1 to *count per signature wiped (count may be NULL).
 * 0 or -errno (logged).
 */
int wipe_signatures(int fd, const char *node, unsigned *count);

/* Whether the disk open as fd carries an old install: a COS_* or HARV_LH_DEFAULT filesystem
 * label on the whole disk or in one of its partitions. The first label found in *ret_label
 * (malloc'ed). 1 found, 0 not, -errno. */
int wipe_find_old_install(int fd, const char *node, char **ret_label);

/* A device that holds the disk or one of its partitions (/sys/block/X[/P]/holders). */
struct holder {
        char *name;    /* "dm-0", "md127" */
        char *what;    /* "LVM volume group \"vg0\"", "MD RAID /dev/md127", "device-mapper crypt" ... */
        char *vg;      /* the LVM volume group, when an LVM logical volume */
        bool lvm, md;
        bool stoppable; /* LVM or MD, and the tool to stop it is installed */
};

/* The holders of the whole disk sysname and of its partitions. */
int holders_list(const char *sysname, struct holder **ret, size_t *ret_n);
void holders_free(struct holder *h, size_t n);
/* Stops one holder: `lvm vgchange -an VG` (or vgchange) / `mdadm --stop /dev/mdN`. 0 or -errno (logged). */
int holder_stop(const struct holder *h, const char *disk);
