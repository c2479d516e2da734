/* SPDX-License-Identifier: Apache-2.0 */
/* The ISO's Harvester image bundle imported into the new system's containerd at install time,
 * as Harvester v1.1.2's harv-install (preload_rke2_images) does (see preload.c). */
#pragma once

#include <stdint.h>

/* Where the ISO keeps the bundles (v1.1.2's layout). */
#define PRELOAD_BUNDLE "bundle/harvester/images"
#define PRELOAD_LISTS "bundle/harvester/images-lists"
#define PRELOAD_RANCHERD_BUNDLE "bundle/rancherd/images"

/* Inside the new system: where the bundle is bound (rke2 imports what it finds there when its
 * containerd starts), where the lists are bound, and the programs run there. */
#define PRELOAD_IMAGES_DIR "/var/lib/rancher/rke2/agent/images"
#define PRELOAD_LISTS_DIR "/tmp/images-lists"
#define PRELOAD_RANCHERD_DIR "/var/lib/rancher/agent/images/"
#define PRELOAD_RKE2_INSTALLER "docker.io/rancher/system-agent-installer-rke2:"
#define PRELOAD_CONTAINERD_ADDRESS "/run/k3s/containerd/containerd.sock"

/* The programs of the image the import runs (v1.1.2's: wharfie from the os Dockerfile,
 * ctr-check-images.sh from harvester-installer's package), relative to its root. */
#define PRELOAD_WHARFIE "usr/bin/wharfie"
#define PRELOAD_CHECK_IMAGES "usr/sbin/ctr-check-images.sh"

/* How long the whole import may take before it is stopped and the install fails. */
#define PRELOAD_TIMEOUT_USEC (UINT64_C(45) * 60 * 1000000)

/* 1 when the ISO at iso_dir carries a Harvester image bundle (a file in PRELOAD_BUNDLE), 0 when
 * not, -errno when it cannot be read. */
int preload_wanted(const char *iso_dir);

/*
 * Before anything is written: when the ISO carries a bundle, everything the import needs is there:
 * the image lists (PRELOAD_LISTS), the rancherd bundle with its rancherd-bootstrap-images-*.txt
 * naming the rke2 installer image, and in the image (rootfs_dir) wharfie, ctr-check-images.sh, tar
 * and env. 0 (also: no bundle) or -ENOENT (logged, naming what is missing).
 */
int preload_check(const char *iso_dir, const char *rootfs_dir);

/*
 * Runs the import in root, the new system assembled as v1.1.2 does it: active.img with
 * COS_PERSISTENT on /usr/local, its .state/var-lib-rancher.bind on /var/lib/rancher (holding the
 * rancherd bundle in agent/images/), the ISO's bundle bound on PRELOAD_IMAGES_DIR and its lists on
 * PRELOAD_LISTS_DIR, /dev and /proc bound. Each step is `chroot root ...`:
 *   wharfie --images-dir /var/lib/rancher/agent/images/ <rke2 installer image> <tmp>
 *   tar -xzf <tmp>/rke2.linux-amd64.tar.gz -C <tmp>/rke2   (v1.1.2: xf, GNU tar sees the gzip itself)
 *   <tmp>/rke2/bin/rke2 server                       (in the background, output to /rke2.log)
 *   ctr --connect-timeout 1s version                 (until containerd answers)
 *   ctr-check-images.sh /tmp/images-lists/<each>.txt (until every listed image is in containerd)
 * with only HOME=/root, PATH=/var/lib/rancher/rke2/bin:... and CONTAINERD_ADDRESS in the environment; then every process whose root
 * is root is stopped (TERM, then KILL), every mount below root but keep_mounts (the caller's,
 * NULL-terminated) is detached (a real rke2's container file systems), and /rke2.log, /etc/rancher/rke2/rke2.yaml,
 * /var/lib/rancher/rke2/server, the pod manifests and <tmp> are removed. Gives up after
 * timeout_usec. 0 or -errno (logged).
 */
int preload_import(const char *root, const char *const *keep_mounts, uint64_t timeout_usec);
