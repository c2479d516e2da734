/* SPDX-License-Identifier: Apache-2.0 */
/* The node's configuration files, as a Harvester v1.1 OS expects them (see HARVESTER-V1.1.md). */
#pragma once

#include "config.h"

/* Writes into oem_dir (the mounted COS_OEM): 90_custom.yaml (yip cloud-config with the
 * network, rancherd and rke2 files), harvester.config, grubenv. Secret-holding files 0600.
 * 0 or -errno. */
int cloudconfig_write_oem(const struct config *c, const char *oem_dir);

/* What the image to install says about itself: its /etc/harvester-release.yaml (keys harvester,
 * harvesterChart, kubernetes, rancher, monitoringChart, loggingChart) and the GRUB_ENTRY_NAME (else PRETTY_NAME) of its
 * /etc/os-release. Every field may be NULL (not in the image). */
struct harvester_release {
        char *harvester;       /* "v1.1.2" */
        char *harvester_chart; /* "1.1.2" */
        char *kubernetes;      /* "v1.24.11+rke2r1" */
        char *rancher;         /* "v2.6.11" */
        char *monitoring_chart; /* "100.1.0+up19.0.3": rancher-monitoring(-crd) of 11 and 13 */
        char *logging_chart;    /* "100.1.3+up3.17.7": rancher-logging(-crd) of 14 and 15 */
        char *os_name;         /* "Harvester v1.1.2" */
};

/* Defaults when neither the configuration nor the image says (Harvester v1.1.2's build values). */
#define CLOUDCONFIG_DEFAULT_KUBERNETES "v1.24.11+rke2r1"
#define CLOUDCONFIG_DEFAULT_RANCHER "v2.6.11"
#define CLOUDCONFIG_DEFAULT_HARVESTER_CHART "1.1.2"
/* The chart versions of a v1.1.2 release file, used only when no release is given (rel NULL). */
#define CLOUDCONFIG_DEFAULT_MONITORING_CHART "100.1.0+up19.0.3"
#define CLOUDCONFIG_DEFAULT_LOGGING_CHART "100.1.3+up3.17.7"

/* Reads rootfs_dir/etc/harvester-release.yaml and rootfs_dir/etc/os-release; missing files are not
 * an error (fields stay NULL), unreadable or malformed ones are. 0 or -errno. */
int harvester_release_read(const char *rootfs_dir, struct harvester_release *ret);
void harvester_release_done(struct harvester_release *r);

/* Fails with one message naming each key the node's configuration needs and the image's release
 * file lacks (monitoringChart, loggingChart: the bootstrap resources 11, 13, 14 and 15 of a create
 * node). Call it where the release is read, before anything is written to a disk. 0 or -EINVAL. */
int harvester_release_check(const struct harvester_release *r);

/* As cloudconfig_write_oem, with the versions the image declares (rel NULL: v1.1.2's, the
 * CLOUDCONFIG_DEFAULT_* values). With a rel, a create node needs rel's chart versions (-EINVAL,
 * logged, when missing: see harvester_release_check). */
int cloudconfig_write_oem_release(const struct config *c, const struct harvester_release *rel,
                                  const char *oem_dir);

/* The two documents, rendered in memory (what cloudconfig_write_oem_release writes). password_hash
 * is the crypt(3) hash to store for the rancher user (NULL: no password). 0 or -errno. */
int cloudconfig_render(const struct config *c, const struct harvester_release *rel,
                       const char *password_hash, char **ret_custom, char **ret_harvester_config);

/* The password as stored: kept verbatim when it is a well-formed crypt hash (valid_crypt_hash():
 * $6$, $5$, $y$, $2b$), else a SHA-512 crypt hash ("$6$<16 random salt characters>$...") of it, also
 * when it merely starts with '$'. 0 or -errno. */
int cloudconfig_hash_password(const char *password, char **ret);

/* Fails (with one message naming the key) for configuration this installer accepts but cannot
 * apply: os.after_install_chroot_commands, install.addons, install.harvester. Call it before the
 * disks are written. 0 or -EOPNOTSUPP. */
int cloudconfig_check(const struct config *c);

/* A GRUB environment block: 1024 bytes, "# GRUB Environment Block\n", then one "key=value\n" line
 * per entry of vars (NULL: none), padded with '#'. 0, or -E2BIG when it does not fit. */
#define GRUB_ENV_BLOCK_SIZE 1024
int grub_env_block(const struct kvmap *vars, char ret[static GRUB_ENV_BLOCK_SIZE]);
