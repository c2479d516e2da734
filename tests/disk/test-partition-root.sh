#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# `harvester-install-agent partition` on loop devices (root; exit 77 without root or loop devices):
#   1. a 300 GiB sparse disk pre-filled with an old install (COS_* filesystems, an LVM physical
#      volume, a DOS MBR over it, only the backup GPT left, stale kernel partitions) and a 60 GiB
#      data disk with an old table: afterwards `sfdisk --json` and `blkid`/`wipefs` show the new
#      layout and nothing else;
#   2. `plan` prints that layout without writing;
#   3. refusals (not automatic, disk too small, missing, a partition named, a mounted disk,
#      device == data_disk) each exit with their code and message, every image unchanged;
#   4. disk selectors in `plan` and `partition`, matched on a fake sysfs tree leading to the loop
#      devices: the choice, the listing, no match and several matches refused;
#   5. without a data disk: partition 6 HARV_LH_DEFAULT on the install disk.
# Needs: util-linux (losetup, partx, wipefs, blkid), fdisk (sfdisk), e2fsprogs, dosfstools;
# lvm2 optional (pvcreate; otherwise an LVM label is written by hand).
set -u

: "${AGENT:?AGENT must name the built harvester-install-agent}"
SPARSE_SUM=${SPARSE_SUM:-$(dirname "$AGENT")/../tests/disk/sparse-sum}

if [ "$(id -u)" != 0 ]; then
        echo "not root: skipped"
        exit 77
fi
for tool in losetup partx wipefs blkid sfdisk mkfs.ext4 mkfs.vfat; do
        if ! command -v "$tool" >/dev/null; then
                echo "$tool is not installed: skipped"
                exit 77
        fi
done
if [ ! -e /dev/loop-control ] || ! [ -x "$SPARSE_SUM" ]; then
        echo "no loop devices (or no sparse-sum helper at $SPARSE_SUM): skipped"
        exit 77
fi

T=$(mktemp -d "${TMPDIR:-/var/tmp}/test-partition-root.XXXXXX")
LOOPS=()
ALIAS=
cleanup() {
        [ -n "$ALIAS" ] && rm -f "$ALIAS"
        rm -f "/dev/harvester-test-late-$$"
        mountpoint -q "$T/mnt" 2>/dev/null && umount "$T/mnt"
        for l in "${LOOPS[@]}"; do
                partx -d "$l" 2>/dev/null
                losetup -d "$l" 2>/dev/null
        done
        rm -rf "$T"
}
trap cleanup EXIT

fail() {
        echo "FAIL: $*" >&2
        exit 1
}

# attach NAME SIZE: a sparse image attached to a free loop device, in $DEV (and $IMG).
attach() {
        IMG=$T/$1
        truncate -s "$2" "$IMG" || fail "truncate $IMG"
        DEV=$(losetup -f --show "$IMG") || fail "losetup $IMG"
        LOOPS+=("$DEV")
}

MiB=1048576
export HARVESTER_INSTALL_DISK_WAIT=2

# config DEVICE [DATA_DISK]: a configuration file, with the disks named in it.
config() {
        cat > "$T/config.yaml" <<EOF
scheme_version: 1
token: token-for-tests
os:
  hostname: node1
  password: rancher
install:
  mode: create
  management_interface:
    interfaces:
      - name: eth0
    method: dhcp
  vip: 10.0.0.10
  vip_mode: static
  iso_url: http://127.0.0.1/harvester.iso
  iso_checksum_url: http://127.0.0.1/harvester.sha512
  device: $1
EOF
        if [ -n "${2:-}" ]; then
                echo "  data_disk: $2" >> "$T/config.yaml"
        fi
}
echo "harvester.install.automatic=true ip=dhcp" > "$T/cmdline"
echo "ip=dhcp" > "$T/cmdline-manual"

agent() {
        "$AGENT" --cmdline "$T/cmdline" --config "$T/config.yaml" "$@"
}

sums() {
        "$SPARSE_SUM" "$@" || fail "sparse-sum $*"
}

# sfdisk --json flattened: "node start size type name" per partition.
table() {
        sfdisk --json "$1" | awk -F': ' '
                function v(s) { gsub(/[",]/, "", s); return s }
                /"label":/ { print "label " v($2) }
                /"sectorsize":/ { print "sectorsize " v($2) }
                /"node":/ { n = v($2) } /"start":/ { s = v($2) } /"size":/ { z = v($2) } /"type":/ { t = v($2) }
                /"name":/ { print n, s, z, t, v($2) }'
}

# The signature types on a device, one a line.
types() {
        wipefs --noheadings -O TYPE "$1" | awk '{ print $1 }'
}

# The filesystem signatures of a device: "TYPE LABEL" lines, sorted, unique.
signatures() {
        wipefs --noheadings -O TYPE,LABEL "$1" | awk '{ print $1, $2 }' | sort -u
}

EFI=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
LINUX=0FC63DAF-8483-4772-8E79-3D69D8477DE4

### 1. An old install, then `partition` with a data disk.
attach disk.img 300G; D=$DEV; DIMG=$IMG
attach data.img 60G; E=$DEV; EIMG=$IMG

# The old install at offsets the new layout does not use (2, 202, 502, 2550 and 23030 MiB).
sfdisk -q --no-reread --no-tell-kernel "$D" <<EOF >/dev/null || fail "sfdisk (old install)"
label: gpt
start=4096, size=200MiB, type=uefi, name=efi
size=300MiB, name=oem
size=2GiB, name=old-lvm
size=20GiB, name=state
size=40GiB, name=persistent
EOF
partx -a "$D" || fail "partx -a $D"
FAST="-E lazy_itable_init=1,lazy_journal_init=1,nodiscard"
mkfs.vfat -F 32 -n COS_GRUB "${D}p1" >/dev/null || fail "mkfs.vfat (old)"
mkfs.ext4 -q -F -L COS_OEM $FAST "${D}p2" || fail "mkfs.ext4 (old)"
if command -v pvcreate >/dev/null && pvcreate -ff -y "${D}p3" >/dev/null 2>&1; then
        echo "old LVM physical volume made with pvcreate"
else
        # An LVM2 label by hand: "LABELONE" in sector 1, sector number 1, type "LVM2 001".
        printf 'LABELONE\001\000\000\000\000\000\000\000\000\000\000\000\040\000\000\000LVM2 001' |
                dd of="${D}p3" bs=512 seek=1 conv=notrunc status=none || fail "LVM label"
        echo "old LVM label written by hand"
fi
mkfs.ext4 -q -F -L COS_STATE $FAST "${D}p4" || fail "mkfs.ext4 (old)"
mkfs.ext4 -q -F -L COS_PERSISTENT $FAST "${D}p5" || fail "mkfs.ext4 (old)"
# A DOS MBR over the protective one, and the primary GPT header gone: only the backup is left.
# The kernel keeps the old partitions (stale).
printf 'start=2048, size=409600, type=83\n' |
        sfdisk -q --label dos --wipe never --no-reread --no-tell-kernel "$D" >/dev/null 2>&1 || fail "sfdisk (dos)"
dd if=/dev/zero of="$D" bs=512 seek=1 count=1 conv=notrunc status=none || fail "dd"
sync
types "$D" | grep -qx dos || fail "the pre-filled disk has no DOS MBR"
wipefs --noheadings -O TYPE,OFFSET "$D" | grep -q '^gpt' || fail "the pre-filled disk has no backup GPT"
types "${D}p3" | grep -qx LVM2_member || fail "the pre-filled disk has no LVM label"
for off in 2 202 502 2550 23030; do
        blkid -p -O $((off * MiB)) "$D" >/dev/null || fail "no old signature at $off MiB before the run"
done
# The old data disk: a GPT with a HARV_LH_DEFAULT partition.
printf 'label: gpt\nstart=2048, size=1GiB, name=part6\n' |
        sfdisk -q --no-reread --no-tell-kernel "$E" >/dev/null || fail "sfdisk (old data disk)"
mkfs.ext4 -q -F -L HARV_LH_DEFAULT -E offset=$MiB "$E" 1G || fail "mkfs.ext4 (old data disk)"
ls /sys/block/"${D#/dev/}" | grep -q "${D#/dev/}p5" || fail "no stale kernel partitions"

config "$D" "$E"

# plan: the layout, nothing written.
before=$(sums "$DIMG" "$EIMG")
agent plan > "$T/plan.out" 2> "$T/plan.err" || { cat "$T/plan.err"; fail "plan failed"; }
[ "$(sums "$DIMG" "$EIMG")" = "$before" ] || fail "plan wrote to a disk"
grep -q "^Install disk: $D .* 300 GiB (322122547200 bytes)" "$T/plan.out" || fail "plan: install disk"
grep -q "^  by-id - (no /dev/disk/by-id name), model -, serial -$" "$T/plan.out" || fail "plan: install disk identity"
grep -Eq '^  1 +efi +COS_GRUB +vfat +1048576 +67108864  64 MiB \(EFI System\)$' "$T/plan.out" || fail "plan: partition 1"
grep -Eq '^  5 +persistent +COS_PERSISTENT +ext4 +24831328256 +297290170368  276.9 GiB$' "$T/plan.out" || fail "plan: partition 5"
grep -q "^Data disk: $E .*60 GiB (64424509440 bytes)" "$T/plan.out" || fail "plan: data disk"
echo "plan: ok"

agent partition > "$T/part.out" 2> "$T/part.err"
rc=$?
cat "$T/part.err"
[ $rc = 0 ] || fail "partition exited $rc"

cat > "$T/want" <<EOF
label gpt
sectorsize 512
${D}p1 2048 131072 $EFI efi
${D}p2 133120 131072 $LINUX oem
${D}p3 264192 16777216 $LINUX recovery
${D}p4 17041408 31457280 $LINUX state
${D}p5 48498688 580644864 $LINUX persistent
EOF
table "$D" > "$T/got"
diff -u "$T/want" "$T/got" || fail "sfdisk --json: not the layout"

# Only the new table on the disk, and only the new filesystems at its partitions.
[ "$(types "$D" | sort | tr '\n' ' ')" = "PMBR gpt gpt " ] ||
        fail "the install disk carries more than a GPT: $(wipefs --noheadings "$D")"
n=1
for want in "vfat COS_GRUB" "ext4 COS_OEM" "ext4 COS_RECOVERY" "ext4 COS_STATE" "ext4 COS_PERSISTENT"; do
        [ "$(signatures "${D}p$n")" = "$want" ] || fail "${D}p$n: $(signatures "${D}p$n"), not $want"
        eval "$(blkid -p -o export "${D}p$n" | grep -E '^(TYPE|LABEL|PART_ENTRY_NAME)=')"
        [ "$TYPE $LABEL" = "$want" ] || fail "blkid ${D}p$n: $TYPE $LABEL"
        n=$((n + 1))
done
for off in 2 202 502 2550 23030; do
        if blkid -p -O $((off * MiB)) "$D" >/dev/null; then
                fail "an old signature is left at $off MiB: $(blkid -p -O $((off * MiB)) "$D")"
        fi
done
[ "$(ls /sys/block/"${D#/dev/}" | grep -c "^${D#/dev/}p")" = 5 ] || fail "the kernel has stale partitions: $(ls /sys/block/"${D#/dev/}")"
[ "$(cat /sys/block/"${D#/dev/}"/"${D#/dev/}"p5/start)" = 48498688 ] || fail "the kernel's partition 5 is not the new one"
[ "$(signatures "$E")" = "ext4 HARV_LH_DEFAULT" ] || fail "data disk: $(wipefs --noheadings "$E")"
grep -qx "COS_PERSISTENT ${D}p5" "$T/part.out" || fail "partition did not print the nodes"
grep -qx "HARV_LH_DEFAULT $E" "$T/part.out" || fail "partition did not print the data disk"
echo "partition with a data disk over an old install: ok"

### 3. Refusals: each with its code and message, no image changed.
attach small.img 20G; S=$DEV; SIMG=$IMG
attach mounted.img 1G; M=$DEV; MIMG=$IMG
# Inode tables and journal made now and the mount read-only: nothing (ext4lazyinit, the journal)
# writes to the image in the background while the sums below must stay the same.
mkfs.ext4 -q -F -L OTHER -E lazy_itable_init=0,lazy_journal_init=0 "$M" || fail "mkfs.ext4"
mkdir "$T/mnt" && mount -o ro "$M" "$T/mnt" || fail "mount"
before=$(sums "$DIMG" "$EIMG" "$SIMG" "$MIMG")

# refuse CODE MESSAGE [agent arguments...]: the agent fails with CODE and says MESSAGE.
refuse() {
        local code=$1 msg=$2
        shift 2
        "$AGENT" "$@" > "$T/refuse.out" 2> "$T/refuse.err"
        local rc=$?
        [ $rc = "$code" ] || { cat "$T/refuse.err"; fail "exit $rc, not $code, for: $msg"; }
        grep -q -- "$msg" "$T/refuse.err" || { cat "$T/refuse.err"; fail "no \"$msg\" in the messages"; }
        [ "$(sums "$DIMG" "$EIMG" "$SIMG" "$MIMG")" = "$before" ] || fail "an image changed after: $msg"
        echo "refused ($code): $msg"
}
refuse 2 "harvester.install.automatic=true is not among the kernel arguments" \
        --cmdline "$T/cmdline-manual" --config "$T/config.yaml" partition
config "$S"
refuse 6 "less than Harvester's minimum of 60 GiB" --cmdline "$T/cmdline" --config "$T/config.yaml" partition
config /dev/disk/by-id/ata-NO_SUCH_DISK
refuse 6 "does not exist (waited 2 s" --cmdline "$T/cmdline" --config "$T/config.yaml" partition
grep -q "^harvester-install: error:   $D " "$T/refuse.err" || fail "the missing-disk message does not list $D"
config "${D}p3"
refuse 6 "is partition 3 of $D, not a whole disk" --cmdline "$T/cmdline" --config "$T/config.yaml" partition
config "$D" "$M"
refuse 6 "$M (install.data_disk) is in use: $M is mounted on $T/mnt" --cmdline "$T/cmdline" --config "$T/config.yaml" partition
config "$M"
refuse 6 "is mounted on $T/mnt" --cmdline "$T/cmdline" --config "$T/config.yaml" partition
# The same disk under another name (the configuration check sees only equal strings).
ALIAS=/dev/harvester-test-alias-$$
ln -s "$D" "$ALIAS" || fail "ln -s $D $ALIAS"
config "$D" "$ALIAS"
refuse 6 "are the same disk" --cmdline "$T/cmdline" --config "$T/config.yaml" partition
refuse 6 "are the same disk" --cmdline "$T/cmdline" --config "$T/config.yaml" plan
umount "$T/mnt"

# A disk that appears late (udev is slow on real servers) is waited for.
LATE=/dev/harvester-test-late-$$
config "$LATE"
(sleep 1; ln -s "$S" "$LATE") &
HARVESTER_INSTALL_DISK_WAIT=20 "$AGENT" --cmdline "$T/cmdline" --config "$T/config.yaml" plan > "$T/late.out" 2> "$T/late.err"
rc=$?
wait
rm -f "$LATE"
[ $rc = 6 ] || { cat "$T/late.err"; fail "late disk: exit $rc"; }
grep -q "Waiting up to 20 s for install.device \"$LATE\" to appear" "$T/late.err" || { cat "$T/late.err"; fail "late disk: no wait"; }
grep -q "^harvester-install: error: $S has 20 GiB" "$T/late.err" || { cat "$T/late.err"; fail "late disk: not found after the wait"; }
echo "a late disk is waited for: ok"

# Disks by rule: `plan` with selectors, matched on a fake /sys and /dev tree
# (HARVESTER_INSTALL_FACTS_ROOT) whose /dev nodes lead to the loop devices: the selector picks, the
# disk stage checks the real device it leads to; no match or several: exit 6, every disk listed.
F=$T/facts
fake_disk() { # NAME DEVPATH SECTORS SERIAL /dev-NODE
        local dir=$F/sys/devices/$2/block/$1
        mkdir -p "$dir/queue" "$F/sys/block" "$F/dev/disk/by-id" "$F/dev/disk/by-path" || fail "mkdir $dir"
        echo "$3" > "$dir/size"; echo 0 > "$dir/removable"; echo 0 > "$dir/ro"; echo 1 > "$dir/queue/rotational"
        echo "$4" > "$dir/serial"
        ln -s "../devices/$2/block/$1" "$F/sys/block/$1"
        ln -s "$5" "$F/dev/$1"
        ln -s "../../$1" "$F/dev/disk/by-id/virtio-$4"
}
fake_disk vdb pci0000:00/0000:00:05.0/virtio2 629145600 fake-300g "$D"
fake_disk vdc pci0000:00/0000:00:06.0/virtio3 125829120 fake-60g "$E"
fake_disk vdd pci0000:00/0000:00:07.0/virtio4 125829120 fake-60g-b /dev/null
config "size>=250G" "\"size=60Gi,serial=fake-60g\""
before=$(sums "$DIMG" "$EIMG" "$SIMG" "$MIMG")
HARVESTER_INSTALL_FACTS_ROOT=$F agent plan > "$T/sel.out" 2> "$T/sel.err" || { cat "$T/sel.err"; fail "plan with selectors failed"; }
[ "$(sums "$DIMG" "$EIMG" "$SIMG" "$MIMG")" = "$before" ] || fail "plan with selectors wrote to a disk"
grep -q "^Install disk: $D (install.device \"size>=250G\"), 300 GiB" "$T/sel.out" || { cat "$T/sel.out"; fail "selector plan: install disk"; }
grep -q "^Data disk: $E (install.data_disk \"size=60Gi,serial=fake-60g\"), 60 GiB" "$T/sel.out" || { cat "$T/sel.out"; fail "selector plan: data disk"; }
grep -q "^  \* /dev/vdc size=64424509440 (60 GiB) rotational=true removable=false bus=virtio model=- vendor=- serial=fake-60g wwn=- path=- by-id /dev/disk/by-id/virtio-fake-60g$" "$T/sel.out" ||
        { cat "$T/sel.out"; fail "selector plan: the data disk's candidates"; }
grep -q "^    /dev/vdb size=322122547200 (300 GiB) .* (never chosen: chosen by install.device)$" "$T/sel.out" ||
        { cat "$T/sel.out"; fail "selector plan: the install disk left out"; }
grep -q "^    /dev/vdd size=64424509440 (60 GiB) .*serial=fake-60g-b " "$T/sel.out" || { cat "$T/sel.out"; fail "selector plan: vdd listed"; }
grep -q "install.device \"size>=250G\" chose /dev/vdb size=322122547200" "$T/sel.err" || { cat "$T/sel.err"; fail "selector plan: choice not logged"; }
echo "plan with selectors: ok"
config "size>=250G" "size=60Gi"
HARVESTER_INSTALL_FACTS_ROOT=$F refuse 6 "install.data_disk \"size=60Gi\" matched 2 disks (/dev/vdc, /dev/vdd): exactly one must match" \
        --cmdline "$T/cmdline" --config "$T/config.yaml" plan
grep -q "^harvester-install: error:   match /dev/vdc size=64424509440 " "$T/refuse.err" || fail "several matches: vdc not listed as a match"
grep -q "^harvester-install: error:         /dev/vdb .*(never chosen: chosen by install.device)$" "$T/refuse.err" || fail "several matches: vdb not listed"
config "size>=1T"
HARVESTER_INSTALL_FACTS_ROOT=$F refuse 6 "install.device \"size>=1T\" matched no disk (3 listed above)" \
        --cmdline "$T/cmdline" --config "$T/config.yaml" partition
grep -q "Waiting up to 2 s for a disk matching install.device \"size>=1T\"" "$T/refuse.err" || fail "no match: no wait"
config "size>=1T,colour=red"
refuse 2 "install.device: \"size>=1T,colour=red\" is not a valid disk selector: unknown field \"colour\"" \
        --cmdline "$T/cmdline" --config "$T/config.yaml" partition

### 4. No data disk: partition 6 on the install disk (over the previous install).
config "$D"
agent partition > "$T/part.out" 2> "$T/part.err" || { cat "$T/part.err"; fail "partition (no data disk)"; }
cat > "$T/want" <<EOF
label gpt
sectorsize 512
${D}p1 2048 131072 $EFI efi
${D}p2 133120 102400 $LINUX oem
${D}p3 235520 16777216 $LINUX recovery
${D}p4 17012736 31457280 $LINUX state
${D}p5 48470016 146800640 $LINUX persistent
${D}p6 195270656 433872896 $LINUX data
EOF
table "$D" > "$T/got"
diff -u "$T/want" "$T/got" || fail "sfdisk --json: not the layout without a data disk"
[ "$(signatures "${D}p6")" = "ext4 HARV_LH_DEFAULT" ] || fail "${D}p6: $(signatures "${D}p6")"
[ "$(signatures "${D}p2")" = "ext4 COS_OEM" ] || fail "${D}p2: $(signatures "${D}p2")"
echo "partition without a data disk: ok"
echo "all ok"
