#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Self-test of the test release's test OS and UEFI loader (test equipment):
#
#   qemu/release/test-os-selftest.sh RELEASE_DIR [WORKDIR]
#
# Makes a disk image shaped like an installed node (GPT: COS_GRUB vfat, COS_OEM ext4 with a
# 90_custom.yaml, COS_RECOVERY, COS_STATE with cOS/active.img and grub2/grub.cfg, COS_PERSISTENT,
# HARV_LH_DEFAULT) without root or loop devices (mkfs -d, mtools, sfdisk on a file), then boots it
# twice under TCG with a timeout:
#   1. -kernel/-initrd: the rootfs's /boot/vmlinuz and /boot/initrd, the disk on AHCI;
#   2. OVMF from the disk: the ISO's EFI/BOOT/BOOTX64.EFI reads EFI/BOOT/grub.cfg from its own
#      ESP, which finds COS_STATE by label and loopback-boots active.img (the contract with the
#      install stage).
# Each must print the test OS's lines with the values written. Exit 0 pass, 1 fail, 77 skip.
# Needs: qemu-system-x86 ovmf e2fsprogs dosfstools mtools fdisk squashfs-tools xorriso.

set -euo pipefail

REL=${1:?usage: test-os-selftest.sh RELEASE_DIR [WORKDIR]}
W=${2:-$(mktemp -d)}
V=${RELEASE_VERSION:-v1.1.2-test}
OVMF_CODE=
for f in /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_CODE.fd /usr/share/qemu/OVMF.fd; do
    [[ -f $f ]] && { OVMF_CODE=$f; break; }
done
OVMF_VARS=${OVMF_CODE/CODE/VARS}
for t in qemu-system-x86_64 mkfs.ext4 mkfs.ext2 mkfs.vfat mmd mcopy sfdisk unsquashfs xorriso; do
    command -v "$t" > /dev/null || { echo "SKIP: $t not found"; exit 77; }
done
[[ -n $OVMF_CODE && -f $OVMF_VARS ]] || { echo "SKIP: no OVMF"; exit 77; }
SQUASH="$REL/harvester-$V-rootfs-amd64.squashfs"
ISO="$REL/harvester-$V-amd64.iso"
[[ -f $SQUASH && -f $ISO ]] || { echo "FAIL: no release $V in $REL"; exit 1; }

mkdir -p "$W"
cd "$W"
rm -rf rootfs oem state esp ./*.img

# The OS tree and the loader from the release.
unsquashfs -q -n -d rootfs "$SQUASH" > /dev/null
xorriso -osirrox on -indev "$ISO" -extract /EFI/BOOT/BOOTX64.EFI BOOTX64.EFI > /dev/null 2>&1
[[ -s BOOTX64.EFI ]] || { echo "FAIL: the ISO has no EFI/BOOT/BOOTX64.EFI"; exit 1; }

# COS_OEM: 90_custom.yaml as the install writes it (file contents as literal block scalars).
mkdir -p oem
cat > oem/90_custom.yaml << 'EOF'
name: Harvester Configuration
stages:
  initramfs:
  - commands:
    - echo configured
    hostname: selftest-node
    files:
    - path: /etc/rancher/rancherd/config.yaml
      permissions: 384
      owner: 0
      group: 0
      content: |
        role: agent
        server: https://10.0.2.100:443
        token: not-a-real-token
    - path: /etc/rancher/rancherd/config.yaml.d/10-harvester.yaml
      permissions: 384
      content: |
        resources:
        - path: /etc/rancher/rancherd/config.yaml.d/not-a-file-entry.yaml
    - path: /etc/rancher/rancherd/config.yaml.d/13-monitoring.yaml
      permissions: 384
      content: |
        resources: []
EOF

# COS_STATE: cOS/active.img (ext2, COS_ACTIVE, the OS tree) and grub2/grub.cfg.
mkdir -p state/cOS state/grub2
mkfs.ext2 -q -F -L COS_ACTIVE -d rootfs state/cOS/active.img 48M > /dev/null
cat > state/grub2/grub.cfg << 'EOF'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
set default=0
menuentry "Harvester selftest" {
    search --no-floppy --label --set=root COS_STATE
    loopback loop0 /cOS/active.img
    set root=(loop0)
    linux /boot/vmlinuz console=tty1 console=ttyS0 root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img selftest=grub
    initrd /boot/initrd
}
EOF

# COS_GRUB: the loader and the small grub.cfg beside it that finds COS_STATE.
cat > esp-grub.cfg << 'EOF'
search --no-floppy --label --set=root COS_STATE
set prefix=($root)/grub2
configfile ($root)/grub2/grub.cfg
EOF
truncate -s 64M esp.img
mkfs.vfat -n COS_GRUB esp.img > /dev/null
mmd -i esp.img ::/EFI ::/EFI/BOOT
mcopy -i esp.img BOOTX64.EFI ::/EFI/BOOT/BOOTX64.EFI
mcopy -i esp.img esp-grub.cfg ::/EFI/BOOT/grub.cfg

mkfs.ext4 -q -F -L COS_OEM -d oem oem.img 16M > /dev/null
mkfs.ext4 -q -F -L COS_RECOVERY recovery.img 16M > /dev/null
mkfs.ext4 -q -F -L COS_STATE -d state state.img 64M > /dev/null
mkfs.ext4 -q -F -L COS_PERSISTENT persistent.img 16M > /dev/null
mkfs.ext4 -q -F -L HARV_LH_DEFAULT lh.img 16M > /dev/null

# The disk: GPT, 1 MiB aligned, each file system written at its partition's offset.
truncate -s 256M disk.img
sfdisk -q disk.img << 'EOF'
label: gpt
size=64MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=efi
size=16MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=oem
size=16MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=recovery
size=64MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=state
size=16MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=persistent
size=16MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=longhorn
EOF
n=1
for img in esp oem recovery state persistent lh; do
    start=$(sfdisk -q -l -o Start disk.img | awk -v n="$n" 'NR == n + 1 { print $1 }')
    dd if="$img.img" of=disk.img bs=512 seek="$start" conv=notrunc,sparse status=none
    n=$((n + 1))
done

want=(
    "[test-os] booted"
    "[test-os] hostname=selftest-node"
    "[test-os] role=agent"
    "[test-os] server=https://10.0.2.100:443"
    "[test-os] bootstrap=10-harvester.yaml 13-monitoring.yaml"
    "[test-os] labels=COS_GRUB COS_OEM COS_RECOVERY COS_STATE COS_PERSISTENT HARV_LH_DEFAULT"
    "[test-os] done"
)
fail=0
check() {
    local name=$1 log=$2 extra=$3 secs=$4 line
    for line in "${want[@]}" "$extra"; do
        if ! tr -d '\r' < "$log" | grep -q -F -x -- "$line"; then
            echo "FAIL $name: missing line '$line' (log: $W/$log)"
            fail=1
        fi
    done
    tr -d '\r' < "$log" | grep -q -F "[test-os] mounts=/dev/sda2:/oem:ext4:ro" \
        || { echo "FAIL $name: COS_OEM not mounted read-only from /dev/sda2 (log: $W/$log)"; fail=1; }
    echo "$name: $(tr -d '\r' < "$log" | grep -c '^\[test-os\]') test-os lines in ${secs}s"
}
QEMU=(qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 1024 -nographic -no-reboot
    -device ahci,id=ahci -drive if=none,id=d0,file=disk.img,format=raw,snapshot=on
    -device ide-hd,drive=d0,bus=ahci.0 -net none)

t0=$SECONDS
timeout -k 5 240 "${QEMU[@]}" -kernel rootfs/boot/vmlinuz -initrd rootfs/boot/initrd \
    -append "console=ttyS0 selftest=direct" < /dev/null > direct.log 2>&1 || true
check direct direct.log "[test-os] cmdline=console=ttyS0 selftest=direct" $((SECONDS - t0))

cp "$OVMF_VARS" vars.fd
t0=$SECONDS
timeout -k 5 300 "${QEMU[@]}" -drive if=pflash,format=raw,readonly=on,file="$OVMF_CODE" \
    -drive if=pflash,format=raw,file=vars.fd < /dev/null > uefi.log 2>&1 || true
check uefi uefi.log "[test-os] cmdline=BOOT_IMAGE=/boot/vmlinuz console=tty1 console=ttyS0 root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img selftest=grub" $((SECONDS - t0))

if [[ $fail -eq 0 ]]; then
    echo "PASS: test OS and UEFI loader ($W)"
else
    exit 1
fi
