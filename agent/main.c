/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harvester-install-agent: installs Harvester HCI on a PXE-booted machine, from the initrd.
 *
 *   run        the whole install (configuration, memory, ISO, disks, OS, node configuration, reboot)
 *   config     print the effective configuration, or every problem in it
 *   fetch      download and verify one file, as the install downloads the ISO
 *   plan       print the partition layout `run` would write
 *   partition  find, check, wipe, partition and format the configured disks (destructive)
 */
#include <getopt.h>

#include "agent-config.h"
#include "cli.h"
#include "log.h"

static const struct command {
        const char *name;
        int (*func)(const struct global_opts *g, int argc, char **argv);
        const char *help;
} commands[] = {
        { "run", cmd_run, "install Harvester as the configuration says (destructive)" },
        { "config", cmd_config, "print the effective configuration [--json] [--show-secrets]" },
        { "fetch", cmd_fetch, "URL DEST [--checksum sha512:HEX] [--checksum-url URL] [--insecure]: download and verify one file" },
        { "plan", cmd_plan, "print the partition layout `run` would write, without writing" },
        { "partition", cmd_partition, "find, check, wipe, partition and format the disks (destructive)" },
};

static void usage(FILE *f) {
        fprintf(f,
                "Usage: harvester-install-agent [OPTIONS] COMMAND [ARGS]\n"
                "\n"
                "Installs Harvester HCI on a PXE-booted machine, from the initrd.\n"
                "\n"
                "Options:\n"
                "  --cmdline FILE   read kernel arguments from FILE only (default: /proc/cmdline\n"
                "                   and /etc/cmdline.d/*.conf, as dracut does)\n"
                "  --config FILE    read the configuration YAML from FILE instead of fetching\n"
                "                   harvester.install.config_url\n"
                "  -v, --verbose    print debug messages\n"
                "  -h, --help       show this help\n"
                "      --version    show the version\n"
                "\n"
                "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
        fprintf(f, "\nExit codes: 0 ok, 1 internal error, 2 invalid configuration or usage, 3 config_url\n"
                   "unreachable, 4 machine not fit (memory), 5 ISO, 6 disk check, 7 disk write,\n"
                   "8 install. See README.md.\n");
}

int main(int argc, char **argv) {
        enum { OPT_CMDLINE = 0x100, OPT_CONFIG, OPT_VERSION };
        static const struct option options[] = {
                { "cmdline", required_argument, NULL, OPT_CMDLINE },
                { "config", required_argument, NULL, OPT_CONFIG },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        struct global_opts g = {};
        int c;

        /* '+': stop at the first non-option, the command; it parses its own arguments. */
        while ((c = getopt_long(argc, argv, "+vh", options, NULL)) >= 0)
                switch (c) {
                case OPT_CMDLINE:
                        g.cmdline_file = optarg;
                        break;
                case OPT_CONFIG:
                        g.config_file = optarg;
                        break;
                case 'v':
                        g.verbose++;
                        log_set_max_level(LOG_LEVEL_DEBUG);
                        break;
                case 'h':
                        usage(stdout);
                        return EXIT_OK;
                case OPT_VERSION:
                        printf("harvester-install-agent %s\n", AGENT_VERSION);
                        return EXIT_OK;
                default:
                        usage(stderr);
                        return EXIT_INVALID;
                }

        if (optind >= argc) {
                usage(stderr);
                return EXIT_INVALID;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(argv[optind], commands[i].name)) {
                        /* Each command runs getopt over its own argv. */
                        int cargc = argc - optind;
                        char **cargv = argv + optind;
                        optind = 0;
                        return commands[i].func(&g, cargc, cargv);
                }
        log_error("Unknown command \"%s\". Run \"harvester-install-agent --help\" for the list.", argv[optind]);
        return EXIT_INVALID;
}
