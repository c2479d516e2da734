/* SPDX-License-Identifier: Apache-2.0 */
/* Turning a verified ISO and a partitioned disk into an installed, bootable node. */
#pragma once

#include "config.h"
#include "disk.h"
#include "download.h"

/* Mounts the new filesystems, makes active/passive/recovery images from the ISO's rootfs.squashfs,
 * installs the UEFI loader and grub.cfg, writes the node's configuration to COS_OEM, unmounts.
 * Messages printed here. 0 or -errno. */
int install_system(const struct config *c, const struct disk_plan *p, const struct iso_image *iso);
/* Copies the install log (already redacted) to COS_OEM/install/console.log (0600). */
int install_save_log(const struct disk_plan *p, const char *log_path);
