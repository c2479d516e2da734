/* SPDX-License-Identifier: Apache-2.0 */
/* Reading the ISO with libarchive (ISO9660, Rock Ridge, Joliet). */
#pragma once

/* Files the install needs: rootfs.squashfs, boot/kernel, boot/initrd, EFI/BOOT/BOOTX64.EFI.
 * Prints one line listing every missing one; 0 or -ENOENT (or -errno when unreadable). */
int iso_check_contents(const char *iso_path);
/* Extracts one member (e.g. "EFI/BOOT/BOOTX64.EFI") to dest (created 0644). 0 or -errno. */
int iso_extract_file(const char *iso_path, const char *member, const char *dest);
