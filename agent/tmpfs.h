/* SPDX-License-Identifier: Apache-2.0 */
/* A private tmpfs for the ISO (libmount). */
#pragma once

#include <stdint.h>

/* Where iso_fetch() mounts its tmpfs. */
#define TMPFS_ISO_DIR "/run/harvester-install/iso"

/* Creates dir (and missing parents, mode 0700) and mounts a tmpfs there with mode=0700, the given
 * size in bytes (rounded up to whole pages by the kernel), nosuid, nodev, noexec. Messages printed
 * here. 0 or -errno. */
int tmpfs_mount(const char *dir, uint64_t size_bytes);
/* Unmounts the tmpfs at dir (everything in it is gone) and removes the directory. Messages printed
 * here. 0 or -errno. */
int tmpfs_umount(const char *dir);
