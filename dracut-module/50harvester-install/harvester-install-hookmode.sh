#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# cmdline hook of the dracut module "harvester-install", hook mode only (no systemd in the initrd,
# or a network handler without network-online.target such as network-legacy): the agent runs from
# the initqueue/online hook, so the network must come up and the initqueue must wait for the
# install to end.

type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh

[ "$(getarg harvester.install.automatic=)" = "true" ] || return 0

# network-legacy brings interfaces up only for a netroot, /tmp/net.ifaces or rd.neednet=1.
getargbool 0 rd.neednet || echo "rd.neednet=1" > /etc/cmdline.d/50-harvester-install.conf

mkdir -p /run/harvester-install
# The initqueue is finished only when the agent has run (online hook) ...
echo '[ -e /run/harvester-install/done ]' > "$hookdir/initqueue/finished/harvester-install.sh"
