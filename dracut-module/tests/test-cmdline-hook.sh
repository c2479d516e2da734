#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The module's cmdline hook, sourced as dracut-cmdline sources it (dracut-lib.sh, dracut-getarg,
# POSIX sh), against kernel command lines bind-mounted over /proc/cmdline in a private mount
# namespace: with harvester.install.automatic=true it claims root=live:... (root=harvester-install,
# rootok=1); otherwise it changes nothing.
#
#   test-cmdline-hook.sh HOOK [HOOKMODE_HOOK]      (root; exit 77 to skip)

set -u
LIB=/usr/lib/dracut/modules.d/99base/dracut-lib.sh
DEVLIB=/usr/lib/dracut/modules.d/99base/dracut-dev-lib.sh
UTIL=/usr/lib/dracut/dracut-util

if [[ ${1:-} == --inner ]]; then
    # In the namespace: $2 shell, $3 hook, $4 command line. /etc is a copy (cmdline.d is written
    # by the hook mode hook), /proc/cmdline the line under test.
    shell=$2 hook=$3 line=$4
    echo "$line" > "$T/cmdline"
    mount --bind "$T/cmdline" /proc/cmdline || exit 99
    mount --bind "$T/etc" /etc || exit 99
    mount -t tmpfs tmpfs /run || exit 99
    PATH="$T/bin:$PATH" hook="$hook" exec "$shell" -c '
        . "$T/dracut-lib.sh"
        hookdir=$T/hooks
        root=$(getarg root=)
        unset rootok
        . "$hook"
        echo "root=$root rootok=${rootok:-}"
    '
fi

HOOK=$(realpath "$1")
HOOKMODE=${2:+$(realpath "$2")}

[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (mount namespace)"; exit 77; }
command -v unshare > /dev/null || { echo "SKIP: no unshare"; exit 77; }
[[ -f $LIB && -f $DEVLIB && -x $UTIL ]] || { echo "SKIP: dracut-core is not installed"; exit 77; }
unshare -m true 2> /dev/null || { echo "SKIP: cannot make a mount namespace"; exit 77; }

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export T
mkdir -p "$T/bin" "$T/hooks/initqueue/finished"
# dracut-lib.sh as it is in the initrd, where dracut-dev-lib.sh lives in /lib.
sed "s#/lib/dracut-dev-lib.sh#$DEVLIB#" "$LIB" > "$T/dracut-lib.sh"
cp -a /etc "$T/etc"
rm -rf "$T/etc/cmdline" "$T/etc/cmdline.d"
mkdir "$T/etc/cmdline.d"
ln -s "$UTIL" "$T/bin/dracut-getarg"
ln -s "$UTIL" "$T/bin/dracut-getargs"

shells=()
for s in dash bash; do command -v "$s" > /dev/null && shells+=("$(command -v "$s")"); done

pass=0 fail=0
check() { # shell cmdline expected
    local got
    got=$(unshare -m --propagation private "$0" --inner "$1" "$HOOK" "$2" 2>&1)
    if [[ $got == "$3" ]]; then
        pass=$((pass + 1))
    else
        echo "not ok: $(basename "$1"): '$2': expected '$3', got '$got'"
        fail=$((fail + 1))
    fi
}

LIVE=root=live:http://10.0.2.2:8080/harvester/rootfs.squashfs
for sh in "${shells[@]}"; do
    check "$sh" "ip=dhcp $LIVE harvester.install.automatic=true" "root=harvester-install rootok=1"
    check "$sh" "harvester.install.automatic=true ip=dhcp" "root=harvester-install rootok=1"
    check "$sh" "ip=dhcp $LIVE" "root=live:http://10.0.2.2:8080/harvester/rootfs.squashfs rootok="
    check "$sh" "ip=dhcp $LIVE harvester.install.automatic=false" "root=live:http://10.0.2.2:8080/harvester/rootfs.squashfs rootok="
    check "$sh" "$LIVE harvester.install.automatic=yes" "root=live:http://10.0.2.2:8080/harvester/rootfs.squashfs rootok="
    check "$sh" "root=LABEL=COS_ACTIVE harvester.install.automatic=true" "root=LABEL=COS_ACTIVE rootok="
    check "$sh" "root=/dev/sda3 rd.neednet=1" "root=/dev/sda3 rootok="
done

# Hook mode: rd.neednet=1 added and a finished hook waiting for the agent, only when automatic.
if [[ -n $HOOKMODE ]]; then
    for sh in "${shells[@]}"; do
        for line in "ip=dhcp harvester.install.automatic=true" "ip=dhcp"; do
            rm -rf "$T/hooks/initqueue/finished/"* "$T/etc/cmdline.d/"*
            unshare -m --propagation private "$0" --inner "$sh" "$HOOKMODE" "$line" > /dev/null 2>&1
            want=yes
            [[ $line == *automatic=true* ]] || want=no
            got=no
            [[ -f $T/hooks/initqueue/finished/harvester-install.sh && -f $T/etc/cmdline.d/50-harvester-install.conf ]] && got=yes
            if [[ $got == "$want" ]]; then
                pass=$((pass + 1))
            else
                echo "not ok: $(basename "$sh"): hook mode '$line': finished hook and rd.neednet written: $got, expected $want"
                fail=$((fail + 1))
            fi
        done
    done
fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
