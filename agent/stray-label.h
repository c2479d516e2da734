/* SPDX-License-Identifier: Apache-2.0 */
/* Stray HARV_LH_DEFAULT labels: an old Harvester data disk left in the server (see stray-label.c). */
#pragma once

#include <stddef.h>

#define STRAY_LABEL "HARV_LH_DEFAULT"

/*
 * Clears the label (only the label: tune2fs -L "") of every ext2/3/4 file system labelled
 * HARV_LH_DEFAULT on a block device that is not one of keep_disks (whole disks, e.g. the install and
 * the data disk) or a partition of one, as Harvester v1.1.2's clear_disk_label does: the installed
 * OS mounts LABEL=HARV_LH_DEFAULT as its default disk and must find its own. Each one is logged and
 * read back. A HARV_LH_DEFAULT label on another file system type, or one that stays, is an error.
 * Loop, RAM and zram devices are not a server's disks and are left alone, unless only (a
 * NULL-terminated list of device nodes, or NULL for every device) names them: then only those are
 * looked at (tests use it to stay off other loop devices). The number cleared in *ret_cleared
 * (may be NULL). 0 or -errno (logged).
 */
int stray_labels_clear(const char *const *keep_disks, size_t n_keep, char *const *only, unsigned *ret_cleared);
