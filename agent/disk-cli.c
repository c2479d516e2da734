/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `plan`: the layout `run` would write for the configured disks, without writing (the disks are
 * checked, and opened read-only).
 * `partition`: find, check, wipe, partition and format, alone; destructive, so it refuses unless
 * harvester.install.automatic=true is among the kernel arguments it read.
 */
#include <getopt.h>

#include "cli.h"
#include "config.h"
#include "disk.h"
#include "log.h"

static int parse_no_args(int argc, char **argv, const char *help) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("%s", help);
                        return EXIT_OK;
                default:
                        return EXIT_INVALID;
                }
        if (optind < argc) {
                log_error("\"%s\" takes no arguments (got \"%s\").", argv[0], argv[optind]);
                return EXIT_INVALID;
        }
        return -1;
}

static int load(const struct global_opts *g, struct config **ret) {
        struct config_source src = { .cmdline_file = g->cmdline_file, .config_file = g->config_file };
        struct config *c = NULL;
        int r = config_load(&src, &c);
        /* As the `config` command maps them. */
        if (r == -EINVAL)
                return EXIT_INVALID;
        if (r == -EREMOTEIO)
                return EXIT_CONFIG_URL;
        if (r == -ENOMEM)
                return EXIT_INTERNAL;
        if (r < 0) /* a file named on our command line could not be read: usage */
                return g->cmdline_file || g->config_file ? EXIT_INVALID : EXIT_INTERNAL;
        config_register_secrets(c);
        if (isempty(c->install.device)) {
                log_error("install.device is not set: name the disk to install to (harvester.install.device=/dev/sda, or install.device in the configuration file).");
                config_free(c);
                return EXIT_INVALID;
        }
        *ret = c;
        return EXIT_OK;
}

static int prepare_exit(int r) {
        return r == -ENOMEM ? EXIT_INTERNAL : EXIT_DISK;
}

int cmd_plan(const struct global_opts *g, int argc, char **argv) {
        _cleanup_config_ struct config *c = NULL;
        _cleanup_(disk_plan_freep) struct disk_plan *p = NULL;
        int r = parse_no_args(argc, argv,
                              "Usage: harvester-install-agent [--cmdline FILE] [--config FILE] plan\n"
                              "Checks the configured disks and prints the partition layout `run` would write.\n");
        if (r >= 0)
                return r;
        r = load(g, &c);
        if (r != EXIT_OK)
                return r;
        r = disks_prepare_flags(c, DISK_PREPARE_DRY_RUN, &p);
        if (r < 0)
                return prepare_exit(r);
        disk_plan_print(p);
        return EXIT_OK;
}

int cmd_partition(const struct global_opts *g, int argc, char **argv) {
        static const char *const names[_PART_MAX] = { "COS_GRUB", "COS_OEM", "COS_RECOVERY", "COS_STATE",
                                                      "COS_PERSISTENT", "HARV_LH_DEFAULT", "BIOS_GRUB" };
        _cleanup_config_ struct config *c = NULL;
        _cleanup_(disk_plan_freep) struct disk_plan *p = NULL;
        int r = parse_no_args(argc, argv,
                              "Usage: harvester-install-agent [--cmdline FILE] [--config FILE] partition\n"
                              "Finds, checks, wipes, partitions and formats the configured disks (destructive).\n"
                              "Refuses unless harvester.install.automatic=true is among the kernel arguments.\n");
        if (r >= 0)
                return r;
        r = load(g, &c);
        if (r != EXIT_OK)
                return r;
        if (!c->boot.automatic) {
                log_error("Refusing to partition: this destroys every byte on %s%s%s, and harvester.install.automatic=true is not among the kernel arguments read (%s).",
                          c->install.device, c->install.data_disk ? " and " : "", strempty(c->install.data_disk),
                          g->cmdline_file ? g->cmdline_file : "/proc/cmdline and cmdline.d");
                return EXIT_INVALID;
        }
        r = disks_prepare(c, &p);
        if (r < 0)
                return prepare_exit(r);
        r = disks_write(p);
        if (r < 0)
                return EXIT_DISK_WRITE;
        for (int i = 0; i < _PART_MAX; i++)
                if (disk_plan_node(p, (enum part_id)i))
                        printf("%s %s\n", names[i], disk_plan_node(p, (enum part_id)i));
        return EXIT_OK;
}
