#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# harvester-pxe-prepare on a small ISO made here with xorriso (harvester-release.yaml,
# rootfs.squashfs holding /lib/modules/<kver>, boot/kernel), dracut replaced by a stand-in that
# records its arguments and environment (HARVESTER_PXE_PREPARE_DRACUT) and ipxe files from a
# folder made here (HARVESTER_PXE_PREPARE_IPXE_DIR):
#   - the output layout, world-readable, nothing left outside DIR (TMPDIR stays empty)
#   - the four iPXE scripts, exactly (server, version, initrd= only in -efi, --kernel-arg)
#   - the configuration skeletons: iso_checksum is sha512sum of the ISO, iso_url the served copy;
#     `harvester-install-agent config` refuses them naming each FILL IN field, and accepts them once
#     those lines are filled
#   - dracut's arguments (the kernel found in the rootfs, its modules extracted, the module list
#     of each flavour, --dracut-arg, the dracutbasedir and HARVESTER_INSTALL_AGENT environment)
#   - the dhcpd snippet: the guide's branches for this server, valid for ISC dhcpd (dhcpd -t)
#   - refusals, each with its exit code and nothing written: a missing ISO, an ISO without
#     rootfs.squashfs, a non-empty DIR without --force, no agent, no dracut module, no ipxe files
#   - --no-initrd runs no dracut
#
#   test-pxe-prepare.sh COMMAND AGENT      (exit 77 to skip, with the reason)

set -u
CMD=$(realpath "$1")
AGENT=$(realpath "$2")

for t in xorriso mksquashfs unsquashfs sha512sum; do
    command -v "$t" > /dev/null || { echo "SKIP: $t is not installed (xorriso, squashfs-tools)"; exit 77; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/test-pxe-prepare.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { # condition-result description
    if [[ $1 -eq 0 ]]; then pass=$((pass + 1)); else echo "not ok: $2"; fail=$((fail + 1)); fi
}
expect() { # description command...
    local what=$1
    shift
    "$@"
    ok $? "$what"
}
same() { # description got want
    if [[ $2 == "$3" ]]; then
        pass=$((pass + 1))
    else
        echo "not ok: $1"
        echo "  expected: $(printf '%q' "$3")"
        echo "  got:      $(printf '%q' "$2")"
        fail=$((fail + 1))
    fi
}

V=v1.1.2-ptest
KVER=6.1.0-99-ptest
SERVER=http://192.0.2.10:8080/pxe/harvester

# The ISO.
mkdir -p "$T/rootfs/lib/modules/$KVER/kernel" "$T/rootfs/etc" "$T/isotree/boot"
echo "module" > "$T/rootfs/lib/modules/$KVER/kernel/loop.ko"
echo "test rootfs" > "$T/rootfs/etc/os-release"
mksquashfs "$T/rootfs" "$T/isotree/rootfs.squashfs" -noappend -quiet -no-progress > /dev/null || exit 99
echo "kernel image" > "$T/isotree/boot/kernel"
echo "live initrd" > "$T/isotree/boot/initrd"
printf 'harvester: %s\nos: Harvester %s\n' "$V" "$V" > "$T/isotree/harvester-release.yaml"
xorriso -as mkisofs -R -J -V COS_LIVE -o "$T/my-download.iso" "$T/isotree" > /dev/null 2>&1 || exit 99
rm "$T/isotree/rootfs.squashfs"
xorriso -as mkisofs -R -J -V COS_LIVE -o "$T/harvester-v9-amd64.iso" "$T/isotree" > /dev/null 2>&1 || exit 99
ISO_SHA=$(sha512sum < "$T/my-download.iso" | cut -d' ' -f1)

# The stand-ins: dracut, its base directory with the module, the ipxe files.
mkdir -p "$T/bin" "$T/dracutbase/modules.d/50harvester-install" "$T/ipxe" "$T/tmp" "$T/nomodule/modules.d"
: > "$T/dracutbase/modules.d/50harvester-install/module-setup.sh"
echo "ipxe efi" > "$T/ipxe/ipxe.efi"
echo "undionly" > "$T/ipxe/undionly.kpxe"
cat > "$T/bin/fake-dracut" << 'EOF'
#!/bin/bash
printf '%s\n' "$@" > "$FAKE_DRACUT_LOG"
echo "dracutbasedir=${dracutbasedir:-}" >> "$FAKE_DRACUT_LOG"
echo "agent=${HARVESTER_INSTALL_AGENT:-}" >> "$FAKE_DRACUT_LOG"
kmoddir=
while [[ $# -gt 1 ]]; do [[ $1 == --kmoddir ]] && kmoddir=$2; shift; done
echo "loop.ko: $(cat "$kmoddir/kernel/loop.ko" 2> /dev/null)" >> "$FAKE_DRACUT_LOG"
echo "dracut: *** Including module: harvester-install ***"
echo "initrd for the test" > "$1"
EOF
chmod +x "$T/bin/fake-dracut"
export FAKE_DRACUT_LOG="$T/dracut.args"
export HARVESTER_PXE_PREPARE_DRACUT="$T/bin/fake-dracut"
export HARVESTER_PXE_PREPARE_IPXE_DIR="$T/ipxe"
export dracutbasedir="$T/dracutbase"
export HARVESTER_INSTALL_AGENT="$AGENT"
export TMPDIR="$T/tmp"

run() { # DIR, args...: runs the command; OUT its stderr, RC its exit code
    OUT=$("$CMD" "$T/my-download.iso" "$@" 2>&1)
    RC=$?
}

# --- A whole run ----------------------------------------------------------------------------------
D="$T/www/harvester"
run "$D" --server "$SERVER/" --dracut-arg --add --dracut-arg "lvm extra" --kernel-arg console=ttyS0,115200n8
same "exit 0 (output: $OUT)" "$RC" 0
want_files="config-create.yaml
config-join.yaml
dhcpd.conf.example
harvester-$V-amd64.iso
harvester-$V-initrd
harvester-$V-initrd-amd64
harvester-$V-rootfs-amd64.squashfs
harvester-$V-vmlinuz
harvester-$V-vmlinuz-amd64
ipxe-create
ipxe-create-efi
ipxe-join
ipxe-join-efi
ipxe.efi
rootfs.squashfs
undionly.kpxe"
same "the layout of DIR" "$(ls -A "$D")" "$want_files"
same "nothing outside DIR (TMPDIR empty)" "$(ls -A "$T/tmp")" ""
expect "the ISO copied" cmp -s "$T/my-download.iso" "$D/harvester-$V-amd64.iso"
expect "the kernel is the ISO's boot/kernel" cmp -s "$T/isotree/boot/kernel" "$D/harvester-$V-vmlinuz-amd64"
expect "rootfs.squashfs is the ISO's" \
    bash -c "unsquashfs -cat '$D/rootfs.squashfs' etc/os-release | grep -qx 'test rootfs'"
same "the initrd is dracut's" "$(cat "$D/harvester-$V-initrd")" "initrd for the test"
expect "ipxe.efi from the ipxe folder" cmp -s "$T/ipxe/ipxe.efi" "$D/ipxe.efi"
expect "undionly.kpxe from the ipxe folder" cmp -s "$T/ipxe/undionly.kpxe" "$D/undionly.kpxe"
same "everything world-readable" "$(find "$D" -type f ! -perm -0444)" ""

for mode in create join; do
    for efi in "" -efi; do
        i=
        [[ -n $efi ]] && i=" initrd=harvester-$V-initrd"
        same "ipxe-$mode$efi" "$(cat "$D/ipxe-$mode$efi")" "#!ipxe
kernel harvester-$V-vmlinuz$i ip=dhcp net.ifnames=1 rd.cos.disable rd.noverifyssl console=tty1 root=live:$SERVER/rootfs.squashfs harvester.install.automatic=true harvester.install.config_url=$SERVER/config-$mode.yaml console=ttyS0,115200n8
initrd harvester-$V-initrd
boot"
    done
done

same "dracut's arguments and environment" "$(sed "s#$T#T#g" "$T/dracut.args")" "--no-hostonly
--no-hostonly-cmdline
--kver
$KVER
--kmoddir
T/www/harvester/.prepare-tmp/kroot/lib/modules/$KVER
--tmpdir
T/www/harvester/.prepare-tmp/dracut-tmp
--modules
systemd-initrd dracut-systemd systemd-networkd harvester-install
--add
lvm extra
--force
T/www/harvester/.prepare-tmp/harvester-$V-initrd-amd64
dracutbasedir=T/dracutbase
agent=$AGENT
loop.ko: module"

# The skeletons.
echo "ip=dhcp harvester.install.automatic=true" > "$T/cmdline"
for mode in create join; do
    c="$D/config-$mode.yaml"
    same "config-$mode.yaml: iso_checksum is the ISO's SHA-512" \
        "$(sed -n 's/^  iso_checksum: //p' "$c")" "sha512:$ISO_SHA"
    same "config-$mode.yaml: iso_url is the served copy" \
        "$(sed -n 's/^  iso_url: //p' "$c")" "$SERVER/harvester-$V-amd64.iso"
    msg=$("$AGENT" --cmdline "$T/cmdline" --config "$c" config 2>&1 > /dev/null)
    same "config-$mode.yaml: refused as written (exit 2)" "$?" 2
    want="token install.device os.password install.management_interface.interfaces"
    [[ $mode == create ]] && want="$want install.vip" || want="$want server_url"
    for key in $want; do
        grep -q "error: $key" <<< "$msg"
        ok $? "config-$mode.yaml: the refusal names $key: $msg"
    done
    # Filled in as an operator does, line by line (the marked lines only), it is accepted.
    sed -e 's/^token: "".*/token: my-cluster-token/' \
        -e 's/^server_url: "".*/server_url: https:\/\/10.100.0.99:443/' \
        -e 's/^  hostname: "".*/  hostname: node1/' \
        -e 's/^  password: "".*/  password: s3cret-pw/' \
        -e 's/^    - name: "".*/    - name: ens5/' \
        -e 's/^  device: "".*/  device: \/dev\/sda/' \
        -e 's/^  vip: "".*/  vip: 10.100.0.99/' "$c" > "$T/filled.yaml"
    same "config-$mode.yaml: six FILL IN lines filled" \
        "$(diff "$c" "$T/filled.yaml" | grep '^>' | grep -vc 'FILL IN')" 6
    out=$("$AGENT" --cmdline "$T/cmdline" --config "$T/filled.yaml" config 2>&1)
    same "config-$mode.yaml: accepted once filled ($out)" "$?" 0
done

# The dhcpd snippet.
S="$D/dhcpd.conf.example"
for mode in create join; do
    grep -qF "filename \"$SERVER/ipxe-$mode-efi\";" "$S" && grep -qF "filename \"$SERVER/ipxe-$mode\";" "$S"
    ok $? "dhcpd snippet: the iPXE branch of the $mode group names this server's scripts"
done
same "dhcpd snippet: the HTTPClient branch twice" "$(grep -c "filename \"$SERVER/ipxe.efi\";" "$S")" 2
same "dhcpd snippet: the PXE branches (TFTP names)" \
    "$(grep -c -e 'filename "ipxe.efi";' -e 'filename "undionly.kpxe";' "$S")" 4
if command -v dhcpd > /dev/null; then
    { cat "$S"; echo "subnet 10.100.0.0 netmask 255.255.255.0 { range 10.100.0.100 10.100.0.253; }"; } > "$T/dhcpd.conf"
    dhcpd -t -cf "$T/dhcpd.conf" > "$T/dhcpd.out" 2>&1
    ok $? "dhcpd snippet: dhcpd -t accepts it: $(tail -n 3 "$T/dhcpd.out")"
else
    echo "note: dhcpd is not installed, the snippet's syntax is not checked"
fi

# --- The hook flavour, a named kernel, the ISO's file name for the version ------------------------
cp "$T/my-download.iso" "$T/harvester-v7.7.7-amd64.iso"
xorriso -dev "$T/harvester-v7.7.7-amd64.iso" -rm /harvester-release.yaml -- > /dev/null 2>&1 || exit 99
OUT=$("$CMD" "$T/harvester-v7.7.7-amd64.iso" "$T/hook" --initrd-flavour hook --kernel-version 5.0.0-named --kmoddir "$T/rootfs/lib/modules/$KVER" 2>&1)
same "hook flavour: exit 0 ($OUT)" "$?" 0
expect "hook flavour: the version from the ISO's file name" test -f "$T/hook/harvester-v7.7.7-initrd-amd64"
same "hook flavour: dracut's module list, systemd omitted" \
    "$(sed -n -e '/^--kver$/{n;p}' -e '/^--kmoddir$/{n;p}' -e '/^--modules$/{n;p}' -e '/^--omit$/{n;p}' "$T/dracut.args" | sed "s#$T#T#")" \
    "5.0.0-named
T/rootfs/lib/modules/$KVER
network-legacy harvester-install
systemd systemd-initrd dracut-systemd systemd-networkd network-manager"

# --- Refusals -------------------------------------------------------------------------------------
refused() { # description, code, message fragment, DIR that must stay as it was, command args...
    local what=$1 code=$2 frag=$3 dir=$4 before
    shift 4
    before=$(ls -lAR "$dir" 2> /dev/null)
    OUT=$("$@" 2>&1)
    RC=$?
    same "$what: exit $code ($OUT)" "$RC" "$code"
    grep -qF -- "$frag" <<< "$OUT"
    ok $? "$what: says '$frag' (got: $OUT)"
    same "$what: nothing written" "$(ls -lAR "$dir" 2> /dev/null)" "$before"
}
refused "a missing ISO" 2 "the ISO '$T/none.iso' does not exist" "$T/new1" "$CMD" "$T/none.iso" "$T/new1"
refused "an ISO without rootfs.squashfs" 2 "has no /rootfs.squashfs: not a Harvester ISO?" "$T/new2" \
    "$CMD" "$T/harvester-v9-amd64.iso" "$T/new2/x"
refused "a non-empty DIR" 2 "'$D' is not empty" "$D" "$CMD" "$T/my-download.iso" "$D"
refused "no such flavour" 2 "--initrd-flavour 'busybox'" "$T/new3" "$CMD" "$T/my-download.iso" "$T/new3" --initrd-flavour busybox
refused "no agent" 3 "the agent '$T/no-agent' is not installed" "$T/new4" \
    env HARVESTER_INSTALL_AGENT="$T/no-agent" "$CMD" "$T/my-download.iso" "$T/new4"
refused "no dracut module" 3 "module harvester-install is not in $T/nomodule/modules.d" "$T/new5" \
    env dracutbasedir="$T/nomodule" "$CMD" "$T/my-download.iso" "$T/new5"
refused "no ipxe files" 3 "$T/tmp/ipxe.efi is missing: apt-get install ipxe" "$T/new6" \
    env HARVESTER_PXE_PREPARE_IPXE_DIR="$T/tmp" "$CMD" "$T/my-download.iso" "$T/new6"
refused "no dracut" 3 "'$T/no-dracut' is not installed" "$T/new7" \
    env HARVESTER_PXE_PREPARE_DRACUT="$T/no-dracut" "$CMD" "$T/my-download.iso" "$T/new7"
refused "a kernel with no modules" 3 "no modules for kernel 0.0.0-none" "$T/new8" \
    "$CMD" "$T/my-download.iso" "$T/new8" --kernel-version 0.0.0-none
refused "a bad server" 2 "--server 'ftp://x' is not an http://" "$T/new9" "$CMD" "$T/my-download.iso" "$T/new9" --server ftp://x

# --force replaces the command's files and keeps the others.
echo "mine" > "$D/index.html"
echo "old" > "$D/ipxe-create"
run "$D" --force --server "$SERVER"
same "--force: exit 0" "$RC" 0
same "--force: the operator's file kept" "$(cat "$D/index.html")" "mine"
expect "--force: ipxe-create rewritten" grep -q "^kernel harvester-$V-vmlinuz ip=dhcp" "$D/ipxe-create"

# --no-initrd: no dracut run, no initrd.
rm -f "$T/dracut.args"
run "$T/noinitrd" --no-initrd
same "--no-initrd: exit 0 ($OUT)" "$RC" 0
expect "--no-initrd: dracut not run" test ! -e "$T/dracut.args"
expect "--no-initrd: no initrd" test ! -e "$T/noinitrd/harvester-$V-initrd-amd64"
expect "--no-initrd: the scripts written" test -f "$T/noinitrd/ipxe-join-efi"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
