/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPT layout Harvester v1.1 (elemental) writes on the install disk, as pure arithmetic over the
 * disk's size: REFERENCE.md section 3. No I/O here, so every case is unit-testable.
 *
 *   # GPT name    label            fs    size
 *   1 efi         COS_GRUB         vfat  64 MiB, EFI System type, starts at 1 MiB
 *   2 oem         COS_OEM          ext4  50 MiB with partition 6, else 64 MiB
 *   3 recovery    COS_RECOVERY     ext4  8 GiB
 *   4 state       COS_STATE        ext4  15 GiB
 *   5 persistent  COS_PERSISTENT   ext4  v1.1 formula or persistent_partition_size; the rest with a data disk
 *   6 data        HARV_LH_DEFAULT  ext4  the rest, only without a data disk
 *
 * Partition 6's GPT name: elemental writes "part6"; nothing reads it (the OS mounts by filesystem
 * label), so we name it "data", which says what it holds. Every start and every size is a multiple
 * of 1 MiB; a partition that takes "the rest" ends at the last whole MiB before the backup GPT.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "disk.h"

#define LAYOUT_MiB (UINT64_C(1) << 20)
#define LAYOUT_GiB (UINT64_C(1) << 30)
#define LAYOUT_ALIGN LAYOUT_MiB

/* Harvester v1.1's floor for the install disk and the data disk, in whole GiB (size >> 30). */
#define LAYOUT_MIN_DISK_GIB 60
/* Even with skipchecks: the smallest COS_PERSISTENT, HARV_LH_DEFAULT partition and data disk. */
#define LAYOUT_MIN_PERSISTENT LAYOUT_GiB
#define LAYOUT_MIN_DATA LAYOUT_GiB

#define GPT_TYPE_EFI_SYSTEM "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define GPT_TYPE_LINUX_FS "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

struct layout_part {
        enum part_id id;
        unsigned partno;        /* 1..6, the GPT entry number */
        const char *name;       /* GPT partition name */
        const char *label;      /* filesystem label */
        const char *fstype;     /* "vfat" or "ext4" */
        const char *type_guid;  /* GPT partition type */
        uint64_t start;         /* bytes from the start of the disk */
        uint64_t size;          /* bytes */
};

struct layout_request {
        const char *device;            /* for messages only; may be NULL */
        uint64_t disk_bytes;           /* size of the install disk */
        uint32_t sector_size;          /* logical sector size; 0 means 512 */
        const char *data_disk;         /* for messages; NULL when there is no data disk */
        uint64_t data_disk_bytes;      /* size of the data disk (when data_disk != NULL) */
        uint64_t persistent_partition_bytes; /* install.persistent_partition_bytes, 0 = unset */
        bool skipchecks;
};

struct layout {
        uint64_t disk_bytes;
        uint32_t sector_size;
        uint64_t first_usable;  /* bytes: the first byte after the primary GPT */
        uint64_t end_usable;    /* bytes: one past the last byte before the backup GPT */
        bool has_data_disk;
        uint64_t data_disk_bytes;
        bool persistent_shrunk; /* skipchecks made COS_PERSISTENT smaller than asked */
        size_t n_parts;
        struct layout_part parts[_PART_MAX]; /* parts[i].partno == i + 1 */
};

/* v1.1's COS_PERSISTENT size in whole GiB for a disk of disk_gib whole GiB (d < 60: 25). */
uint64_t layout_persistent_gib(uint64_t disk_gib);

/* The bytes the primary and the backup GPT take (the 1 MiB alignment aside). */
uint64_t layout_gpt_bytes(uint32_t sector_size);

/*
 * Computes the layout. Checks v1.1's floors (install disk and data disk >= 60 GiB, whole GiB):
 * an error (-ENOSPC) unless skipchecks, which makes them warnings and shrinks COS_PERSISTENT to
 * fit; a layout that cannot fit at all is -ENOSPC even with skipchecks. Messages are logged here.
 */
int layout_compute(const struct layout_request *req, struct layout *ret);

/* The entry for a partition id, or NULL when the layout has none. */
const struct layout_part *layout_get(const struct layout *l, enum part_id id);
