#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# pxe-lab-lvm.service: activates each volume group named by pxe-lab.lvm.vg= on the kernel line.
# A VG that cannot be activated fails the unit and says so on the console; the agent starts anyway
# (the scenario then fails on the missing holder line).
set -u
udevadm settle --timeout=60
rc=0
for arg in $(cat /proc/cmdline); do
    case $arg in
        pxe-lab.lvm.vg=*)
            vg=${arg#pxe-lab.lvm.vg=}
            if lvm vgchange -ay "$vg"; then
                echo "[pxe-lab] activated the LVM volume group $vg" > /dev/console
            else
                echo "[pxe-lab] cannot activate the LVM volume group $vg" > /dev/console
                rc=1
            fi
            ;;
    esac
done
exit $rc
