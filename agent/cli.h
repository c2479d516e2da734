/* SPDX-License-Identifier: Apache-2.0 */
/* The command-line interface: global options, the commands and the exit codes (see README.md). */
#pragma once

/* Exit codes. 0 and 2 are fixed; later stages extend the table (keep README.md in step). */
enum {
        EXIT_OK = 0,
        EXIT_INTERNAL = 1,    /* unexpected error: out of memory, a bug */
        EXIT_INVALID = 2,     /* invalid configuration or usage */
        EXIT_CONFIG_URL = 3,  /* config_url could not be fetched */
        EXIT_PREFLIGHT = 4,   /* the machine is not fit: memory, tmpfs room */
        EXIT_ISO = 5,         /* ISO download, verification or contents */
        EXIT_DISK = 6,        /* a disk is missing, too small or in use (nothing written) */
        EXIT_DISK_WRITE = 7,  /* wiping, partitioning or formatting failed (table removed) */
        EXIT_INSTALL = 8,     /* OS images, bootloader or node configuration failed */
};

struct global_opts {
        const char *cmdline_file; /* --cmdline FILE: read only FILE instead of /proc/cmdline + cmdline.d */
        const char *config_file;  /* --config FILE: read this YAML instead of fetching config_url */
        int verbose;
};

/* Each command parses its own arguments (argv[0] is the command name) and returns an exit code. */
int cmd_config(const struct global_opts *g, int argc, char **argv);
int cmd_run(const struct global_opts *g, int argc, char **argv);
int cmd_fetch(const struct global_opts *g, int argc, char **argv);
int cmd_plan(const struct global_opts *g, int argc, char **argv);
int cmd_partition(const struct global_opts *g, int argc, char **argv);
