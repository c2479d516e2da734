#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# cmdline hook of the dracut module "harvester-install" (sourced by dracut-cmdline; POSIX sh).
#
# The seed's PXE kernel line carries root=live:http://.../rootfs.squashfs: the root of the system
# being installed, not a root for this boot. With harvester.install.automatic=true the installer
# claims it, so that dracut neither stops ("Don't know how to handle 'root=...'") nor tries to
# boot it. This hook runs before livenet (cmdline/29) and dmsquash-live (cmdline/30), which then
# see root= already claimed and leave it alone. Without harvester.install.automatic=true it does
# nothing.

type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh

[ "$(getarg harvester.install.automatic=)" = "true" ] || return 0

[ -z "$root" ] && root=$(getarg root=)

case "$root" in
    live:* | livenet | "")
        info "harvester-install: automatic install; root=${root:-(unset)} belongs to the system being installed, this boot does not mount it"
        root="harvester-install"
        rootok=1
        ;;
    *)
        info "harvester-install: automatic install; root=$root is left to dracut, the install runs first"
        ;;
esac
