/* SPDX-License-Identifier: Apache-2.0 */
/* The node's configuration files, as a Harvester v1.1 OS expects them (see HARVESTER-V1.1.md). */
#pragma once

#include "config.h"

/* Writes into oem_dir (the mounted COS_OEM): 90_custom.yaml (yip cloud-config with the
 * network, rancherd and rke2 files), harvester.config, grubenv. Secret-holding files 0600.
 * 0 or -errno. */
int cloudconfig_write_oem(const struct config *c, const char *oem_dir);
