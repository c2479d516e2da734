/* SPDX-License-Identifier: Apache-2.0 */
/* The install disk's layout as arithmetic over the disk size and the firmware (see layout.h). */
#include <inttypes.h>

#include "firmware.h"
#include "layout.h"
#include "log.h"
#include "util.h"

#define GPT_ENTRIES_BYTES (128 * 128) /* 128 entries of 128 bytes, as every GPT tool writes */

static uint64_t align_down(uint64_t v, uint64_t a) {
        return v / a * a;
}

static uint64_t align_up(uint64_t v, uint64_t a) {
        return (v + a - 1) / a * a;
}

uint64_t layout_persistent_gib(uint64_t d) {
        if (d < 60)
                return 25;
        if (d < 140)
                return 25 + (d - 60) * 5 / 16; /* 0.3125 = 5/16, truncated */
        uint64_t g = 50 + (d - 100) / 100 * 10;
        return g > 100 ? 100 : g;
}

uint64_t layout_gpt_bytes(uint32_t sector_size) {
        /* primary: protective MBR + header + entries; backup: entries + header */
        return 2 * (uint64_t)sector_size + GPT_ENTRIES_BYTES + GPT_ENTRIES_BYTES + sector_size;
}

const struct layout_part *layout_get(const struct layout *l, enum part_id id) {
        for (size_t i = 0; i < l->n_parts; i++)
                if (l->parts[i].id == id)
                        return &l->parts[i];
        return NULL;
}

static void add_part(struct layout *l, enum part_id id, const char *name, const char *label,
                     const char *fstype, uint64_t *pos, uint64_t size) {
        bool msdos = streq(l->table, LAYOUT_TABLE_MSDOS);
        l->parts[l->n_parts] = (struct layout_part) {
                .id = id,
                .partno = (unsigned)l->n_parts + 1,
                .name = name,
                .label = label,
                .fstype = fstype,
                .type = msdos ? MBR_TYPE_LINUX :
                        id == PART_EFI ? GPT_TYPE_EFI_SYSTEM :
                        id == PART_BIOS ? GPT_TYPE_BIOS_BOOT : GPT_TYPE_LINUX_FS,
                .bootable = msdos && id == PART_STATE,
                .start = *pos,
                .size = size,
        };
        l->n_parts++;
        *pos += size;
}

int layout_compute(const struct layout_request *req, struct layout *ret) {
        const char *dev = req->device ?: "the install disk";
        uint32_t ss = req->sector_size ?: 512;
        char b1[32], b2[32], b3[32];

        if (ss < 512 || ss > 65536 || (ss & (ss - 1)) != 0)
                return log_error_errno(EINVAL, "%s reports a logical sector size of %u bytes, which is not a power of two between 512 and 65536.",
                                       dev, ss);

        /* The firmware decides the boot partition; force_efi and force_mbr must fit it. */
        if (req->force_efi && !req->efi)
                return log_error_errno(EINVAL, "install.force_efi is set, but this machine booted by %s (no /sys/firmware/efi): "
                                               "a UEFI layout would not boot it. Remove install.force_efi, or switch the "
                                               "machine's firmware to UEFI and PXE-boot it again.",
                                       firmware_name(false));
        if (req->force_mbr && req->efi)
                return log_error_errno(EINVAL, "install.force_mbr is set, but this machine booted by %s: an msdos table "
                                               "needs a legacy BIOS machine. Remove install.force_mbr (UEFI installs use "
                                               "GPT), or switch the machine's firmware to legacy BIOS.",
                                       firmware_name(true));
        if (req->force_mbr && req->disk_bytes > LAYOUT_MSDOS_MAX_BYTES)
                return log_error_errno(E2BIG, "install.force_mbr is set, but %s has %s (%" PRIu64 " bytes): an msdos table "
                                              "addresses at most %" PRIu64 " bytes (2 TiB). Remove install.force_mbr (GPT "
                                              "is used then), or install to a smaller disk.",
                                       dev, format_bytes(b1, sizeof b1, req->disk_bytes), req->disk_bytes,
                                       LAYOUT_MSDOS_MAX_BYTES);

        bool msdos = req->force_mbr;
        struct layout l = {
                .table = msdos ? LAYOUT_TABLE_MSDOS : LAYOUT_TABLE_GPT,
                .efi = req->efi,
                .disk_bytes = req->disk_bytes,
                .sector_size = ss,
                .first_usable = msdos ? ss : 2 * (uint64_t)ss + GPT_ENTRIES_BYTES,
                .has_data_disk = req->data_disk != NULL,
                .data_disk_bytes = req->data_disk ? req->data_disk_bytes : 0,
        };
        bool fatal = false;

        /* v1.1's floors, in whole GiB as Harvester computes them. */
        if ((req->disk_bytes >> 30) < LAYOUT_MIN_DISK_GIB) {
                if (req->skipchecks)
                        log_warning("%s has %s (%" PRIu64 " bytes), less than Harvester's minimum of %d GiB; going on because install.skipchecks is set.",
                                    dev, format_bytes(b1, sizeof b1, req->disk_bytes), req->disk_bytes, LAYOUT_MIN_DISK_GIB);
                else {
                        log_error("%s has %s (%" PRIu64 " bytes), less than Harvester's minimum of %d GiB for the install disk. Use a larger disk (install.device), or set install.skipchecks for a test machine.",
                                  dev, format_bytes(b1, sizeof b1, req->disk_bytes), req->disk_bytes, LAYOUT_MIN_DISK_GIB);
                        fatal = true;
                }
        }
        if (req->data_disk) {
                if (req->data_disk_bytes < LAYOUT_MIN_DATA) {
                        log_error("The data disk %s has %s; it needs at least %s even with install.skipchecks.",
                                  req->data_disk, format_bytes(b1, sizeof b1, req->data_disk_bytes),
                                  format_bytes(b2, sizeof b2, LAYOUT_MIN_DATA));
                        fatal = true;
                } else if ((req->data_disk_bytes >> 30) < LAYOUT_MIN_DISK_GIB) {
                        if (req->skipchecks)
                                log_warning("The data disk %s has %s (%" PRIu64 " bytes), less than Harvester's minimum of %d GiB; going on because install.skipchecks is set.",
                                            req->data_disk, format_bytes(b1, sizeof b1, req->data_disk_bytes), req->data_disk_bytes, LAYOUT_MIN_DISK_GIB);
                        else {
                                log_error("The data disk %s has %s (%" PRIu64 " bytes), less than Harvester's minimum of %d GiB. Use a larger disk (install.data_disk), or set install.skipchecks for a test machine.",
                                          req->data_disk, format_bytes(b1, sizeof b1, req->data_disk_bytes), req->data_disk_bytes, LAYOUT_MIN_DISK_GIB);
                                fatal = true;
                        }
                }
        }
        if (req->persistent_partition_bytes != 0 && req->persistent_partition_bytes < LAYOUT_MIN_PERSISTENT) {
                log_error("install.persistent_partition_size is %s; COS_PERSISTENT needs at least %s.",
                          format_bytes(b1, sizeof b1, req->persistent_partition_bytes),
                          format_bytes(b2, sizeof b2, LAYOUT_MIN_PERSISTENT));
                return -EINVAL;
        }
        if (fatal)
                return -ENOSPC;

        if (req->disk_bytes < layout_gpt_bytes(ss) + 2 * LAYOUT_ALIGN) {
                log_error("%s has only %s: no room for a partition table.", dev, format_bytes(b1, sizeof b1, req->disk_bytes));
                return -ENOSPC;
        }
        l.end_usable = align_down(req->disk_bytes, ss) - (msdos ? 0 : GPT_ENTRIES_BYTES + ss);
        uint64_t end = align_down(l.end_usable, LAYOUT_ALIGN); /* where "the rest" ends */

        /* v1.1: the data partition goes on the install disk unless there is a data disk or msdos. */
        bool data_part = !req->data_disk && !msdos;
        /* Partition 1 on GPT: COS_GRUB (UEFI) or the bios_grub partition; none on msdos. */
        uint64_t boot_part = msdos ? 0 : req->efi ? 64 * LAYOUT_MiB : LAYOUT_MiB;
        uint64_t fixed = LAYOUT_ALIGN + boot_part + (data_part ? 50 : 64) * LAYOUT_MiB +
                         8 * LAYOUT_GiB + 15 * LAYOUT_GiB;
        uint64_t need = fixed + LAYOUT_MIN_PERSISTENT + (data_part ? LAYOUT_MIN_DATA : 0);
        if (end < need) {
                log_error("%s has %s; the layout needs at least %s (partitions 1-4 take %s)%s.",
                          dev, format_bytes(b1, sizeof b1, req->disk_bytes),
                          format_bytes(b2, sizeof b2, need + GPT_ENTRIES_BYTES + ss),
                          format_bytes(b3, sizeof b3, fixed - LAYOUT_ALIGN),
                          req->skipchecks ? ", even with install.skipchecks" : "");
                return -ENOSPC;
        }

        uint64_t pos = LAYOUT_ALIGN, persistent;
        if (data_part) {
                uint64_t want = req->persistent_partition_bytes ?
                        align_up(req->persistent_partition_bytes, LAYOUT_ALIGN) :
                        layout_persistent_gib(req->disk_bytes >> 30) * LAYOUT_GiB;
                uint64_t most = end - fixed - LAYOUT_MIN_DATA;
                persistent = want;
                if (want > most) {
                        if (!req->skipchecks) {
                                /* Only persistent_partition_size can get here: the formula fits every disk >= 60 GiB. */
                                log_error("install.persistent_partition_size %s does not fit on %s (%s): at most %s leaves the %s minimum for HARV_LH_DEFAULT. Lower it, or use a data disk.",
                                          format_bytes(b1, sizeof b1, want), dev, format_bytes(b2, sizeof b2, req->disk_bytes),
                                          format_bytes(b3, sizeof b3, most), "1 GiB");
                                return -ENOSPC;
                        }
                        persistent = most;
                        l.persistent_shrunk = true;
                        log_warning("COS_PERSISTENT shrunk from %s to %s to fit on %s (install.skipchecks).",
                                    format_bytes(b1, sizeof b1, want), format_bytes(b2, sizeof b2, persistent), dev);
                }
        } else {
                if (req->persistent_partition_bytes)
                        log_warning("install.persistent_partition_size is ignored %s: COS_PERSISTENT takes the rest of %s.",
                                    req->data_disk ? "with a data disk" : "with install.force_mbr (no data partition)", dev);
                persistent = end - fixed;
        }

        if (!msdos) {
                if (req->efi)
                        add_part(&l, PART_EFI, "efi", "COS_GRUB", "vfat", &pos, boot_part);
                else
                        add_part(&l, PART_BIOS, "bios", NULL, NULL, &pos, boot_part);
        }
        add_part(&l, PART_OEM, "oem", "COS_OEM", "ext4", &pos, (data_part ? 50 : 64) * LAYOUT_MiB);
        add_part(&l, PART_RECOVERY, "recovery", "COS_RECOVERY", "ext4", &pos, 8 * LAYOUT_GiB);
        add_part(&l, PART_STATE, "state", "COS_STATE", "ext4", &pos, 15 * LAYOUT_GiB);
        add_part(&l, PART_PERSISTENT, "persistent", "COS_PERSISTENT", "ext4", &pos, persistent);
        if (data_part)
                add_part(&l, PART_DATA, "data", "HARV_LH_DEFAULT", "ext4", &pos, end - pos);

        *ret = l;
        return 0;
}
