/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The layout Harvester v1.1 (elemental) writes on the install disk, as pure arithmetic over the
 * disk's size and the firmware: REFERENCE.md section 3, HARVESTER-V1.1.md section 5. No I/O here,
 * so every case is unit-testable.
 *
 * GPT (the default, UEFI or legacy BIOS):
 *   # GPT name    label            fs    size
 *   1 efi         COS_GRUB         vfat  64 MiB, EFI System type, starts at 1 MiB (UEFI)
 *   1 bios        -                none  1 MiB, BIOS boot type (bios_grub), starts at 1 MiB (BIOS):
 *                                        GRUB's core.img goes there; wiped, never formatted
 *   2 oem         COS_OEM          ext4  50 MiB with partition 6, else 64 MiB
 *   3 recovery    COS_RECOVERY     ext4  8 GiB
 *   4 state       COS_STATE        ext4  15 GiB
 *   5 persistent  COS_PERSISTENT   ext4  v1.1 formula or persistent_partition_size; the rest with a data disk
 *   6 data        HARV_LH_DEFAULT  ext4  the rest, only without a data disk
 *
 * msdos (install.force_mbr, legacy BIOS only, disks up to LAYOUT_MSDOS_MAX_BYTES): four primary
 * partitions of type 83, no data partition on the install disk (a data disk still gets one):
 *   1 oem 64 MiB, 2 recovery 8 GiB, 3 state 15 GiB with the boot (active) flag, 4 persistent the rest.
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
#define GPT_TYPE_BIOS_BOOT "21686148-6449-6E6F-744E-656564454649" /* parted's bios_grub flag */
#define MBR_TYPE_LINUX "83"
/* The largest disk an msdos table takes with install.force_mbr: 2^32 - 1 sectors of 512 bytes
 * (v1.1.2's rule; a bigger disk needs GPT). */
#define LAYOUT_MSDOS_MAX_BYTES UINT64_C(2199023255040)

/* libfdisk's names of the two tables. */
#define LAYOUT_TABLE_GPT "gpt"
#define LAYOUT_TABLE_MSDOS "dos"

struct layout_part {
        enum part_id id;
        unsigned partno;        /* 1..6, the table's entry number */
        const char *name;       /* GPT partition name (also the name in messages on msdos) */
        const char *label;      /* filesystem label; NULL for the BIOS boot partition */
        const char *fstype;     /* "vfat" or "ext4"; NULL: not formatted (the BIOS boot partition) */
        const char *type;       /* GPT type GUID, or the msdos type code ("83") */
        bool bootable;          /* msdos: the boot (active) flag */
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
        bool efi;                      /* the machine booted by UEFI (firmware.h) */
        bool force_mbr;                /* install.force_mbr: msdos, legacy BIOS only */
        bool force_efi;                /* install.force_efi: refused on a legacy BIOS machine */
};

struct layout {
        const char *table;      /* LAYOUT_TABLE_GPT or LAYOUT_TABLE_MSDOS */
        bool efi;               /* UEFI (COS_GRUB); else legacy BIOS (GRUB's boot code on the disk) */
        uint64_t disk_bytes;
        uint32_t sector_size;
        uint64_t first_usable;  /* bytes: the first byte after the primary GPT (msdos: the MBR) */
        uint64_t end_usable;    /* bytes: one past the last byte before the backup GPT (msdos: the disk's end) */
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
 * Computes the layout: GPT with COS_GRUB on UEFI, GPT with the bios_grub partition on legacy BIOS,
 * msdos with force_mbr. Refuses (-EINVAL) force_efi on a BIOS machine and force_mbr on a UEFI
 * one, and (-E2BIG) force_mbr on a disk above LAYOUT_MSDOS_MAX_BYTES. Checks v1.1's floors (install disk and data disk >= 60 GiB, whole GiB):
 * an error (-ENOSPC) unless skipchecks, which makes them warnings and shrinks COS_PERSISTENT to
 * fit; a layout that cannot fit at all is -ENOSPC even with skipchecks. Messages are logged here.
 */
int layout_compute(const struct layout_request *req, struct layout *ret);

/* The entry for a partition id, or NULL when the layout has none. */
const struct layout_part *layout_get(const struct layout *l, enum part_id id);
