/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration stage's dry run: everything the install writes from the configuration (the
 * node's 90_custom.yaml with its rancherd, rke2 and bootstrap files, harvester.config, the stored
 * password, the console and the grubenv with the kernel arguments), rendered in memory before anything is written.
 */
#pragma once

#include <stdbool.h>

#include "cloudconfig.h"
#include "config.h"

/*
 * The release the dry run renders with: the image's own file is read only in the install stage.
 * Every field is set (v1.1.2's values, '+' in the Kubernetes version), so that every branch that
 * takes a value from the image runs; the install renders again with the real release.
 */
extern const struct harvester_release dry_run_release;

/*
 * Renders everything into memory and throws it away. placeholder_names: an interface given only by
 * hw_addr gets a stand-in name for the run (the offline `config` command; on the node `run` resolves
 * it first with config_resolve_interfaces()). 0, or the renderer's -errno with its message logged.
 */
int dry_run_render(struct config *c, bool placeholder_names);
