/* SPDX-License-Identifier: Apache-2.0 */
/* Making the filesystems with e2fsprogs and dosfstools, and running such tools safely. */
#pragma once

#include <stdbool.h>

/* Where tools are looked up, and the PATH they get: fixed, not the agent's $PATH. */
#define COMMAND_PATH "/usr/sbin:/usr/bin:/sbin:/bin"

/*
 * The one way the agent runs a program. argv[0] is looked up once (a name with a '/' is used as
 * it is; else the first executable file of that name in command_search_path()) and that file is
 * run with argv: no shell, stdin from /dev/null, stdout and stderr captured together into
 * *ret_output (malloc'ed, NUL-terminated; may be NULL when not wanted), every other inherited
 * descriptor closed, a fixed environment of two variables (PATH=command_search_path(),
 * LC_ALL=C; and MKE2FS_CONFIG when set, for tests), no blocked signal and default signal handling. Returns the exit status (>= 0;
 * 128 + signal when killed), or -errno when it could not be run (-ENOENT: not found).
 */
int run_command(char *const argv[], char **ret_output);
/* Starts argv as run_command() does (one lookup, the fixed environment, default signals, stdin
 * from /dev/null, no inherited descriptor) with stdout and stderr on out_fd, without waiting: the
 * caller reaps *ret_pid. 0 or -errno (-ENOENT: not found). */
int command_spawn(char *const argv[], int out_fd, pid_t *ret_pid);

/* COMMAND_PATH, or $HARVESTER_INSTALL_TOOL_PATH when set (tests put fake tools first with it). */
const char *command_search_path(void);
/* The file run_command() would run for name. 0 (*ret malloc'ed), -ENOENT or -errno. */
int command_find(const char *name, char **ret);

/*
 * The line of a failed tool's output that says what went wrong, for the error message (and so the
 * FAILED line): the last line that reads as an error (error, cannot, failed, invalid, denied, no
 * such, too small, no space ...), else the last line that is not a version banner such as
 * "mkfs.fat 4.2 (2021-01-31)" or "mke2fs 1.47.0 (5-Feb-2023)". Leading blanks skipped. NULL when
 * there is no such line. Points into output, whose line ends it replaces with NULs.
 */
const char *command_error_line(char *output);

/* Whether run_command() finds name (command_find()). */
bool command_exists(const char *name);

/* The ext4 features format_device() gives every ext4 file system, whatever the build host's
 * mke2fs.conf says: the ext4 defaults of e2fsprogs 1.46 (SLE Micro 5.3, the Harvester v1.1 OS),
 * all known to its fsck and to kernel 5.14. Not orphan_file or metadata_csum_seed (1.47). */
#define FORMAT_EXT4_FEATURES                                                                          \
        "has_journal,ext_attr,resize_inode,dir_index,filetype,extent,64bit,flex_bg,sparse_super,"      \
        "large_file,huge_file,dir_nlink,extra_isize,metadata_csum"

/*
 * Makes a filesystem: "vfat" (mkfs.vfat -F 32) or "ext4" (mkfs.ext4 with the FORMAT_EXT4_FEATURES, lazy inode-table and
 * journal initialisation and no discard, so that a 150 GiB filesystem takes seconds; the caller
 * has wiped every old signature first). Labelled label. Then probes it back with libblkid and
 * checks type and label. Prints the tool's output when it fails. 0 or -errno (logged).
 */
int format_device(const char *node, const char *fstype, const char *label);

/* Probes node with libblkid: 0 when it holds a filesystem of type fstype labelled label. */
int format_verify(const char *node, const char *fstype, const char *label);
