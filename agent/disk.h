/* SPDX-License-Identifier: Apache-2.0 */
/* Disks: find, check (no write), then wipe, partition and format; roll back on failure. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

enum part_id { PART_EFI, PART_OEM, PART_RECOVERY, PART_STATE, PART_PERSISTENT, PART_DATA, _PART_MAX };

struct disk_plan; /* opaque: owns the O_EXCL file descriptors of every disk involved */

/* Finds install.device, install.data_disk and the wipe list (waiting for late disks), checks every
 * one (whole disk, not mounted/swap/held/boot medium, O_EXCL, sizes) and computes the layout.
 * Writes nothing. Messages printed here. 0 or -errno (-ENODEV missing, -EBUSY in use, -ENOSPC too
 * small, -EINVAL a partition or device == data_disk). */
int disks_prepare(const struct config *c, struct disk_plan **ret);
/* Prints each disk's identity (the name given, by-id name, model, serial, size) and the layout
 * (sizes in bytes and human form) to stdout. */
void disk_plan_print(const struct disk_plan *p);
/* Wipes signatures, writes the GPT, waits for the partition nodes, formats. On failure it removes
 * the partition table it wrote and says so. 0 or -errno. */
int disks_write(struct disk_plan *p);
/* Removes the partition table written by disks_write (for failures in later stages). */
int disks_rollback(struct disk_plan *p);
/* The node of a partition after disks_write ("/dev/sda3"; the data disk itself for PART_DATA when a
 * data disk is used), or NULL when the layout has no such partition. */
const char *disk_plan_node(const struct disk_plan *p, enum part_id id);
void disk_plan_free(struct disk_plan *p);
static inline void disk_plan_freep(struct disk_plan **p) { disk_plan_free(*p); }

/* Additions (issue 5). */

enum {
        /* For `plan`: check and compute without side effects. Disks are opened read-only (still
         * O_EXCL), old LVM/MD holders are reported as "would be stopped" instead of stopped, and
         * disks_write() refuses such a plan. */
        DISK_PREPARE_DRY_RUN = 1 << 0,
};
int disks_prepare_flags(const struct config *c, unsigned flags, struct disk_plan **ret);

/* How long disks_prepare() waits for a named disk to appear, and disks_write() for partition
 * nodes. Default 60 s; the environment variable HARVESTER_INSTALL_DISK_WAIT (seconds) overrides
 * the default; this call overrides both (tests). */
void disks_set_wait_timeout(uint64_t usec);

/* Who a disk is, so that a swapped name shows: the whole-disk node, the /dev/disk/by-id name udev
 * made, the model, serial number and WWN the device reports, its size. Unknown fields are NULL. */
struct disk_identity {
        char *node;   /* "/dev/sda" */
        char *by_id;  /* "/dev/disk/by-id/ata-QEMU_HARDDISK_disk0" */
        char *model;
        char *serial;
        char *wwid;
        char *backing; /* a loop device's backing file, as "dev:inode" (compared, not shown) */
        uint64_t size; /* bytes */
};
/* The identity of the disk name (or the disk of a partition) denotes now, without waiting.
 * 0, -ENOENT, -ENOTBLK, -ENOMEM. */
int disk_identify(const char *name, struct disk_identity *ret);
void disk_identity_done(struct disk_identity *id);

/* The whole-disk nodes chosen ("/dev/sda"); NULL when there is no data disk. */
const char *disk_plan_install_disk(const struct disk_plan *p);
const char *disk_plan_data_disk(const struct disk_plan *p);

/* Additions (issue 13). install.device / install.data_disk given as selectors (diskselect.h)
 * become the disks the plan chose (the by-id name, else the node), so that the node's configuration,
 * the webhooks and the log name a disk. 0 or -ENOMEM. */
int disk_plan_name_disks(const struct disk_plan *p, struct config *c);

/* What sysfs and udev say about a disk, below root ("" for this machine,
 * a fake tree in tests), shared with diskselect.c. NULL / empty when unknown. */
char *disk_sysfs_attr(const char *root, const char *sysname, const char *attr);
/* The serial number the device reports (device/serial, serial, or SCSI VPD page 0x80). */
char *disk_sysfs_serial(const char *root, const char *sysname);
/* The names (without the directory) in <root>/dev/disk/<dir> that point at <root>/dev/<sysname>,
 * sorted. 0 or -ENOMEM. */
int disk_udev_links(const char *root, const char *dir, const char *sysname, char ***ret);
/* "/dev/disk/by-id/<name>" of the disk (a wwn- name only when there is no other), or NULL. */
char *disk_udev_by_id(const char *root, const char *sysname);
