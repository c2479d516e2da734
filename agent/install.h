/* SPDX-License-Identifier: Apache-2.0 */
/* Turning a verified ISO and a partitioned disk into an installed, bootable node. */
#pragma once

#include "config.h"
#include "disk.h"
#include "download.h"

#include <stdint.h>
#include <sys/types.h>

/* Mounts the new filesystems, makes active/passive/recovery images from the ISO's rootfs.squashfs,
 * installs the UEFI loader and grub.cfg, writes the node's configuration to COS_OEM, unmounts.
 * Messages printed here. 0 or -errno. */
int install_system(const struct config *c, const struct disk_plan *p, const struct iso_image *iso);
/* Copies the install log (already redacted) to COS_OEM/install/console.log (0600). */
int install_save_log(const struct disk_plan *p, const char *log_path);

/*
 * The steps of install_system, each over directories, so that they can be tested without real
 * partitions. Each prints its own error message.
 */

/* Where install_system mounts things. */
#define INSTALL_RUN_DIR "/run/harvester-install"
#define INSTALL_MNT_DIR INSTALL_RUN_DIR "/mnt"
/* The size of active.img, passive.img and recovery.img (v1.1: 3072 MiB). */
#define INSTALL_IMAGE_MIB UINT64_C(3072)

/* Mounts source on target (created 0700 when missing) with libmount; options such as "ro" or
 * "loop,ro" (libmount sets up the loop device, freed again on unmount). 0 or -errno. */
int install_mount(const char *source, const char *target, const char *fstype, const char *options);
/* Unmounts target (and frees its loop device). 0 or -errno. */
int install_umount(const char *target);

/* Copies src to dst (created with mode, or truncated) inside the kernel: copy_file_range, else
 * sendfile between file systems; only the data extents of a sparse src (SEEK_DATA/SEEK_HOLE), dst
 * keeps the holes. fsyncs dst. 0 or -errno (message printed). */
int install_copy_file(const char *src, const char *dst, mode_t mode);

/* Makes state_dir/cOS/active.img: an ext2 file system of image_mib MiB labelled COS_ACTIVE holding
 * the tree src_dir (mke2fs -d, no copy through this process), then state_dir/cOS/passive.img
 * (a copy, relabelled COS_PASSIVE) and recovery_dir/cOS/recovery.img (a copy, relabelled
 * COS_SYSTEM). 0 or -errno. */
int install_make_images(const char *src_dir, const char *state_dir, const char *recovery_dir, uint64_t image_mib);

/* The grub.cfg on COS_STATE (grub2/grub.cfg): entries cos (active.img, default), fallback
 * (passive.img) and recovery (recovery.img on COS_RECOVERY), the console from install.tty (a serial
 * terminal when it is a ttyS), os.additional_kernel_arguments. 0 or -errno (-EINVAL for a tty or
 * kernel arguments GRUB cannot take). */
int install_render_grub_cfg(const struct config *c, char **ret);
/* Installs the loader: loader_path (the ISO's EFI/BOOT/BOOTX64.EFI) and the other files of its
 * directory (a shim's grub and MokManager) into efi_dir/EFI/BOOT/, with a grub.cfg there that
 * finds COS_STATE by label and loads its grub2/grub.cfg; writes state_dir/grub2/grub.cfg and
 * state_dir/grub_oem_env (default_menu_entry=entry_name, NULL: "Harvester"). 0 or -errno. */
int install_write_grub(const struct config *c, const char *efi_dir, const char *state_dir,
                       const char *loader_path, const char *entry_name);

/* The ISO's image bundles, as v1.1.2 preloads them (root: an empty directory where the new system
 * is assembled for the import): bundle/rancherd/images/ copied to
 * COS_PERSISTENT's agent/images/ (rancherd imports it at the first boot); bundle/harvester/images/,
 * when present, imported into containerd by a temporary rke2 in a chroot of the new system
 * (state_dir/cOS/active.img with persistent_dir on /usr/local; preload.c) and not kept: afterwards
 * COS_PERSISTENT's rke2/agent/images/ must be empty. 0 or -errno (logged). */
int install_preload_images(const char *iso_dir, const char *state_dir, const char *persistent_dir,
                           const char *root);

/* Copies log_path, redacted once more, to oem_dir/install/console.log (0600). 0 or -errno. */
int install_copy_log(const char *log_path, const char *oem_dir);
