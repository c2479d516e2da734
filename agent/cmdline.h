/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel arguments, as Harvester and dracut read them: the harvester.* keys become a document tree
 * (ORIGIN_CMDLINE) that is merged over the config_url file; the dracut arguments the agent needs
 * (rd.noverifyssl, console=, rd.shell) fill struct boot_args.
 */
#pragma once

#include "config.h"
#include "node.h"
#include "schema.h"

/* Beyond these the command line is refused (hostile or broken cmdline.d files). */
#define CMDLINE_MAX_SIZE (256U * 1024U)
#define CMDLINE_MAX_DEPTH 32

/*
 * Splits a command line into arguments as the kernel and dracut do: white space separates
 * arguments; double quotes group (a whole argument "k=v w", or a value k="v w") and are removed.
 * *ret is a strv (NULL-terminated, possibly just {NULL}). 0 or -ENOMEM.
 */
int cmdline_split(const char *text, char ***ret);

/*
 * Parses a whole command line. harvester.* arguments: split at the first '='; a bare key means
 * "true"; the rest of the key, split on '.', is the path (known keys are stored under their
 * canonical names; below a map-valued key such as os.labels the rest of the key is one map key,
 * dots included); a key given several times becomes a list, in order. Each value of
 * install.management_interface.interfaces is one interface (cmdline_parse_interface). dracut
 * arguments fill *ret_boot. Problems (an empty key, a bad interface, a key that is both a value and
 * a map) go to d, naming the argument; the rest of the line is still parsed.
 * *ret_tree is always a map (empty when there is no harvester.* argument). 0 or -ENOMEM.
 */
int cmdline_parse(const char *text, struct node **ret_tree, struct boot_args *ret_boot, struct diags *d);

/*
 * One interface, in any of Harvester's forms: "ens3", a MAC address, "name:ens3",
 * "hwAddr:aa:bb:cc:dd:ee:ff" (also hw_addr:), or a comma list of those describing ONE interface
 * ("hwAddr:be:44:8c:b0:5d:f2,ens3"). Spaces are ignored. Builds a map node {name, hw_addr} (MAC
 * lowercased) with the given origin. 0, -ENOMEM, or -EINVAL with *ret_error (static text) saying
 * what is wrong.
 */
int cmdline_parse_interface(const char *value, enum node_origin origin, struct node **ret,
                            const char **ret_error);

/*
 * Reads the command line: only `file` when given; else what dracut's getcmdline reads under root
 * ("/" normally): <root>/etc/cmdline.d/\*.conf and <root>/run/initramfs/cmdline.d/\*.conf (each
 * directory sorted by name), <root>/etc/cmdline, then <root>/proc/cmdline last (so that it wins
 * for single-valued keys). Lines are joined with spaces; lines starting with '#' are skipped.
 * 0, -E2BIG (larger than CMDLINE_MAX_SIZE), or -errno of the file that could not be read
 * (a missing /proc/cmdline or cmdline.d is not an error; a missing `file` is).
 */
int cmdline_read(const char *file, const char *root, char **ret);

void boot_args_clear(struct boot_args *b);
