/* SPDX-License-Identifier: Apache-2.0 */
/* Reading the ISO with libarchive (ISO9660, Rock Ridge, Joliet). */
#pragma once

/* The ISO's shape (read with libarchive, before anything is mounted): rootfs.squashfs, boot/kernel,
 * boot/initrd. What the install reads inside rootfs.squashfs is os_image_check's.
 * Prints one line listing every missing one; 0 or -ENOENT (or -errno when unreadable). */
int iso_check_contents(const char *iso_path);
/* Extracts one member (e.g. "EFI/BOOT/BOOTX64.EFI") to dest (created 0644). 0 or -errno. */
int iso_extract_file(const char *iso_path, const char *member, const char *dest);

/* ---- The mounted OS image (the iso stage; issue 14 item 2) ---- */

#include <stdbool.h>

#include "cloudconfig.h"

/* The verified ISO and its rootfs.squashfs, mounted read-only from the iso stage until the end of
 * the install: one owner, released by os_image_close on every path. */
struct os_image {
        char *iso_dir;    /* the ISO's mount point, NULL when not mounted (a kernel without iso9660) */
        char *rootfs_dir; /* rootfs.squashfs's mount point, NULL when not mounted */
        char *extracted;  /* without iso9660: rootfs.squashfs copied out of the ISO (removed by close) */
        struct harvester_release release; /* the image's /etc/harvester-release.yaml */
};

/* Checks every file the install reads, in the mounted trees: rootfs.squashfs's boot/vmlinuz,
 * boot/initrd, etc/harvester-release.yaml, etc/cos/grub.cfg, etc/cos/bootargs.cfg (with its
 * console_params line), the EFI binaries and GRUB modules (install.h), and the ISO's image bundle
 * directories where they exist (directories). One error line naming every missing file;
 * 0 or -ENOENT. */
/* iso_dir may be NULL: no bundle directories to check. */
int os_image_check(const char *iso_dir, const char *rootfs_dir);
/* Mounts iso_path read-only at mnt_dir/iso and its rootfs.squashfs at mnt_dir/rootfs, checks them
 * (os_image_check) and reads the release file. On failure nothing stays mounted. A kernel that
 * cannot mount iso9660 (no isofs built in or as a module): rootfs.squashfs is extracted next to
 * iso_path (libarchive) and mounted from there, and an ISO with image bundles is refused (they are
 * read from the mounted ISO). 0 or -errno. */
int os_image_open(const char *iso_path, const char *mnt_dir, struct os_image *ret);
/* Whether the running kernel can mount iso9660: listed in /proc/filesystems, or its module isofs
 * is there to be loaded. */
bool iso9660_available(void);
/* Whether the ISO holds a member whose path starts with prefix ("bundle/"). 1, 0 or -errno. */
int iso_has_prefix(const char *iso_path, const char *prefix);
/* Unmounts (rootfs first) and frees. Safe on a zeroed struct and twice. */
void os_image_close(struct os_image *img);
