#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# dracut module "pxe-lab-lvm", in the TEST release's initrd only (qemu/build-release.sh): with
# pxe-lab.lvm.vg=NAME on the kernel line, activates the LVM volume group NAME once udev has probed
# the disks and before harvester-install-agent.service starts, as an old install's VG left active
# would be. The VM scenario lvm-holder uses it: the agent must stop that holder before it wipes.
# (dracut's own lvm module activates volume groups from the initqueue, which the agent's unit holds
# until the install is over: too late for this test.)

check() {
    return 255
}

depends() {
    echo dm
    return 0
}

install() {
    inst_multiple lvm udevadm
    inst_script "$moddir/pxe-lab-lvm.sh" /usr/lib/pxe-lab/lvm-activate.sh
    inst_simple "$moddir/pxe-lab-lvm.service" "$systemdsystemunitdir/pxe-lab-lvm.service"
    $SYSTEMCTL -q --root "$initdir" enable pxe-lab-lvm.service
}
