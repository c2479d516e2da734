#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# initqueue/online hook of the dracut module "harvester-install", hook mode only: sourced by ifup
# once an interface is up. Runs the install once, inside the initqueue, which therefore waits (no
# root-wait timeout fires while the agent runs).

type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh

[ "$(getarg harvester.install.automatic=)" = "true" ] || return 0
[ -e /run/harvester-install/started ] && return 0
mkdir -p /run/harvester-install
: > /run/harvester-install/started

if [ -n "$DRACUT_SYSTEMD" ]; then
    # systemd in the initrd: the unit runs the agent (journal, OnFailure=emergency.target); this
    # blocks until it has ended.
    info "harvester-install: network is up, starting harvester-install-agent.service"
    systemctl start harvester-install-agent.service
    : > /run/harvester-install/done
else
    info "harvester-install: network is up, running harvester-install-agent"
    # The UEFI boot entry: libefivar picks its variable backend once, when the agent starts, so
    # efivarfs must be mounted before (systemd mounts it in unit mode; here nobody has, and the
    # agent's own later mount is not seen by libefivar: no boot entry would be made).
    if [ -d /sys/firmware/efi ] && ! ismounted /sys/firmware/efi/efivars; then
        modprobe -q efivarfs 2> /dev/null
        mount -t efivarfs efivarfs /sys/firmware/efi/efivars \
            || warn "harvester-install: cannot mount efivarfs on /sys/firmware/efi/efivars: the install makes no UEFI boot entry"
    fi
    # The agent writes every line to every console itself; its stderr (a copy) goes to a file
    # so that the console does not show each line twice.
    /usr/sbin/harvester-install-agent run 2>> /run/initramfs/harvester-install-agent.log
    _hi_rc=$?
    : > /run/harvester-install/done
    if [ "$_hi_rc" -ne 0 ]; then
        # The agent printed its error on every console. The emergency shell, or with rd.shell=0
        # a halt: this initrd has no init daemon to halt through (dracut's "halt" would fail and
        # init would die in a kernel panic), so stop here with the error on screen.
        if getargbool 1 rd.shell -d -y rdshell; then
            emergency_shell -n harvester-install "harvester-install-agent failed (exit status $_hi_rc; log: /run/initramfs/harvester-install-agent.log)"
        else
            warn "harvester-install-agent failed (exit status $_hi_rc; log: /run/initramfs/harvester-install-agent.log); halted (rd.shell=0). Power-cycle the machine to retry."
            while :; do sleep 3600; done
        fi
    fi
    unset _hi_rc
fi
