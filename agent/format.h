/* SPDX-License-Identifier: Apache-2.0 */
/* Making the filesystems with e2fsprogs and dosfstools, and running such tools safely. */
#pragma once

#include <stdbool.h>

/*
 * Runs argv[0], searched in PATH, with argv: no shell, stdin from /dev/null, stdout and stderr
 * captured together into *ret_output (malloc'ed, NUL-terminated; may be NULL when not wanted).
 * Returns the exit status (>= 0; 128 + signal when killed), or -errno when it could not be run
 * (-ENOENT: not found).
 */
int run_command(char *const argv[], char **ret_output);

/* Whether an executable of that name is in PATH. */
bool command_exists(const char *name);

/*
 * Makes a filesystem: "vfat" (mkfs.vfat -F 32) or "ext4" (mkfs.ext4 with lazy inode-table and
 * journal initialisation and no discard, so that a 150 GiB filesystem takes seconds; the caller
 * has wiped every old signature first). Labelled label. Then probes it back with libblkid and
 * checks type and label. Prints the tool's output when it fails. 0 or -errno (logged).
 */
int format_device(const char *node, const char *fstype, const char *label);

/* Probes node with libblkid: 0 when it holds a filesystem of type fstype labelled label. */
int format_verify(const char *node, const char *fstype, const char *label);
