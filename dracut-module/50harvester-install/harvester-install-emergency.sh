#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# emergency hook of the dracut module "harvester-install", hook mode only: says why the install
# never started when the initqueue gave up before the network came up.

type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh

if [ "$(getarg harvester.install.automatic=)" = "true" ] && ! [ -e /run/harvester-install/started ]; then
    warn "harvester-install: the install never started: no network interface came up (check the cable, DHCP and ip=)."
fi
