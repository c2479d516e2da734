#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# What the module's other scripts do, each run as dracut runs it (POSIX sh: dash, and bash) with
# dracut-lib.sh and dracut-getarg, in a private mount namespace: /proc/cmdline is the kernel
# line under test, /etc a copy, /run an empty tmpfs, and no console for the agent.
#   hook mode  (cmdline hook) rd.neednet=1 added unless given; a finished hook that holds the
#              initqueue until the agent is done; nothing without automatic=true
#   online     (initqueue/online hook, hook mode) runs the real agent once: its failure (exit 2,
#              no configuration) reaches the emergency shell with the exit status; the second
#              run does nothing; nothing without automatic=true; on a UEFI machine (a tmpfs
#              /sys/firmware with efi/efivars) efivarfs is mounted before the agent starts (mount
#              and modprobe recorded by stand-ins), not when already mounted, not on BIOS
#   resolv     (ExecStartPre) /etc/resolv.conf from systemd-networkd's link files: servers once
#              each in order, search domains, an existing file kept, an empty or dangling one
#              replaced, none written without DNS servers
#   emergency  (emergency hook) says why the install never started, only when it did not
#
#   test-hooks.sh MODULE_DIR AGENT      (root; exit 77 to skip, with the reason)

set -u
LIB=/usr/lib/dracut/modules.d/99base/dracut-lib.sh
DEVLIB=/usr/lib/dracut/modules.d/99base/dracut-dev-lib.sh
UTIL=/usr/lib/dracut/dracut-util

if [[ ${1:-} == --inner ]]; then
    # In the namespace: $2 shell, $3 command line, $4 the shell code to run (dracut-lib.sh
    # sourced first, its warn/info/emergency_shell recording what they are given).
    shell=$2 line=$3 code=$4
    echo "$line" > "$T/cmdline"
    mount --bind "$T/cmdline" /proc/cmdline || exit 99
    mount --bind "$T/etc" /etc || exit 99
    mount -t tmpfs tmpfs /run || exit 99
    mount --bind /dev/null /sys/class/tty/console/active || exit 99
    # The agent at the path the online hook runs (the real one, built here).
    mount -t tmpfs tmpfs /usr/sbin || exit 99
    cp "$AGENT" /usr/sbin/harvester-install-agent || exit 99
    mkdir -p /run/systemd/netif/links /run/initramfs
    rm -rf /etc/cmdline.d /etc/resolv.conf
    mkdir /etc/cmdline.d
    PATH="$T/bin:$PATH" code="$code" exec "$shell" -c '
        . "$T/dracut-lib.sh"
        hookdir=$T/hooks
        warn() { echo "WARN: $*"; }
        info() { echo "INFO: $*"; }
        emergency_shell() { echo "EMERGENCY: $*"; }
        unset DRACUT_SYSTEMD
        eval "$code"
    '
fi

MOD=$(realpath "$1")
AGENT=$(realpath "$2")
export AGENT

[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (mount namespace)"; exit 77; }
command -v unshare > /dev/null || { echo "SKIP: no unshare"; exit 77; }
[[ -f $LIB && -f $DEVLIB && -x $UTIL ]] || { echo "SKIP: dracut-core is not installed"; exit 77; }
unshare -m true 2> /dev/null || { echo "SKIP: cannot make a mount namespace"; exit 77; }
[[ -x $AGENT ]] || { echo "no agent at $AGENT"; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/test-hooks.XXXXXX")
trap 'rm -rf "$T"' EXIT
export T
mkdir -p "$T/bin" "$T/hooks/initqueue/finished"
# Stand-ins for what the hooks may call that would change the machine: they record their call.
for stub in mount modprobe; do
    printf '#!/bin/sh\necho "%s $*" >> /run/stub-calls\n' "$stub" > "$T/bin/$stub"
    chmod +x "$T/bin/$stub"
done
sed "s#/lib/dracut-dev-lib.sh#$DEVLIB#" "$LIB" > "$T/dracut-lib.sh"
cp -a /etc "$T/etc"
ln -s "$UTIL" "$T/bin/dracut-getarg"
ln -s "$UTIL" "$T/bin/dracut-getargs"

shells=()
for s in dash bash; do command -v "$s" > /dev/null && shells+=("$(command -v "$s")"); done

pass=0 fail=0
# check NAME SHELL CMDLINE CODE EXPECTED: the output of CODE in the namespace is EXPECTED.
check() {
    local name=$1 sh=$2 line=$3 code=$4 want=$5 got
    rm -rf "$T/hooks/initqueue/finished/"*
    got=$(unshare -m --propagation private "$0" --inner "$sh" "$line" "$code" 2>&1)
    if [[ $got == "$want" ]]; then
        pass=$((pass + 1))
    else
        echo "not ok: $(basename "$sh"): $name ('$line'):"
        echo "  expected: $(printf '%q' "$want")"
        echo "  got:      $(printf '%q' "$got")"
        fail=$((fail + 1))
    fi
}

AUTO="ip=dhcp harvester.install.automatic=true"
# The state the hook mode leaves: the rd.neednet file, the finished hook and what it says
# before and after the agent is done.
HOOKMODE_STATE='
    . "$T/mod/harvester-install-hookmode.sh"
    echo "conf: $(cat /etc/cmdline.d/50-harvester-install.conf 2>/dev/null || echo none)"
    f=$hookdir/initqueue/finished/harvester-install.sh
    if [ -f "$f" ]; then
        ( . "$f" ) && echo "finished before: yes" || echo "finished before: no"
        : > /run/harvester-install/done
        ( . "$f" ) && echo "finished after: yes" || echo "finished after: no"
    else
        echo "no finished hook"
    fi
    echo "rd.neednet: $(getargbool 0 rd.neednet && echo 1 || echo 0)"'
ONLINE='
    . "$T/mod/harvester-install-online.sh"; echo "first: rc $?"
    [ -e /run/harvester-install/started ] && echo started
    [ -e /run/harvester-install/done ] && echo done
    . "$T/mod/harvester-install-online.sh"; echo "second: rc $?"'
ONLINE_OUT="INFO: harvester-install: network is up, running harvester-install-agent
EMERGENCY: -n harvester-install harvester-install-agent failed (exit status 2; log: /run/initramfs/harvester-install-agent.log)
first: rc 0
started
done
second: rc 0"
LINKS='
    printf "ADMIN_STATE=configured\nDNS=10.0.0.1 10.0.0.2\nDOMAINS=example.com\n" > /run/systemd/netif/links/2
    printf "DNS=10.0.0.2 1.1.1.1\nDOMAINS=lab.local\nNTP=10.0.0.9\n" > /run/systemd/netif/links/3'
RESOLV_NEW="harvester-install: DNS from the network configuration: 10.0.0.1 10.0.0.2 1.1.1.1 (search example.com lab.local)
nameserver 10.0.0.1
nameserver 10.0.0.2
nameserver 1.1.1.1
search example.com lab.local
regular file"
RESOLV_SHOW='echo "rc $?"; cat /etc/resolv.conf 2>/dev/null || echo "no resolv.conf"'
mkdir -p "$T/mod"
cp "$MOD"/*.sh "$T/mod/"

for sh in "${shells[@]}"; do
    # hook mode
    check "hook mode, automatic" "$sh" "$AUTO" "$HOOKMODE_STATE" \
        "conf: rd.neednet=1
finished before: no
finished after: yes
rd.neednet: 1"
    check "hook mode, rd.neednet=1 given" "$sh" "$AUTO rd.neednet=1" "$HOOKMODE_STATE" \
        "conf: none
finished before: no
finished after: yes
rd.neednet: 1"
    check "hook mode, not automatic" "$sh" "ip=dhcp harvester.install.automatic=false" "$HOOKMODE_STATE" \
        "conf: none
no finished hook
rd.neednet: 0"

    # online: the real agent, without a configuration, fails with exit 2.
    check "online, the agent fails" "$sh" "$AUTO" "$ONLINE" "$ONLINE_OUT"
    check "online, not automatic" "$sh" "ip=dhcp" "$ONLINE" "first: rc 0
second: rc 0"
    # UEFI: a /sys/firmware of our own holding efi/efivars (the real mount is /bin/mount).
    UEFI='/bin/mount -t tmpfs tmpfs /sys/firmware && mkdir -p /sys/firmware/efi/efivars'
    check "online, UEFI: efivarfs mounted before the agent" "$sh" "$AUTO" "$UEFI"'
        . "$T/mod/harvester-install-online.sh" > /dev/null
        cat /run/stub-calls; grep -c "FAILED: configuration:" /run/initramfs/harvester-install-agent.log' \
        "modprobe -q efivarfs
mount -t efivarfs efivarfs /sys/firmware/efi/efivars
1"
    check "online, UEFI, efivarfs already mounted" "$sh" "$AUTO" "$UEFI"'
        /bin/mount -t tmpfs tmpfs /sys/firmware/efi/efivars
        . "$T/mod/harvester-install-online.sh" > /dev/null
        cat /run/stub-calls 2> /dev/null || echo "no calls"' "no calls"
    check "online, BIOS: no efivarfs" "$sh" "$AUTO" '
        /bin/mount -t tmpfs tmpfs /sys/firmware
        . "$T/mod/harvester-install-online.sh" > /dev/null
        cat /run/stub-calls 2> /dev/null || echo "no calls"' "no calls"
    check "online, the agent's log" "$sh" "$AUTO" '
        . "$T/mod/harvester-install-online.sh" > /dev/null
        grep -c "FAILED: configuration:" /run/initramfs/harvester-install-agent.log' "1"

    # resolv (executed, not sourced)
    check "resolv, two links" "$sh" "ip=dhcp" "$LINKS"'
        "$0" "$T/mod/harvester-install-resolv.sh"; cat /etc/resolv.conf
        [ -f /etc/resolv.conf ] && ! [ -L /etc/resolv.conf ] && echo "regular file"' "$RESOLV_NEW"
    check "resolv, a file exists" "$sh" "ip=dhcp" "$LINKS"'
        echo "nameserver 192.0.2.53" > /etc/resolv.conf
        "$0" "$T/mod/harvester-install-resolv.sh"; '"$RESOLV_SHOW" \
        "rc 0
nameserver 192.0.2.53"
    check "resolv, an empty file" "$sh" "ip=dhcp" "$LINKS"'
        : > /etc/resolv.conf
        "$0" "$T/mod/harvester-install-resolv.sh"; cat /etc/resolv.conf
        [ -f /etc/resolv.conf ] && ! [ -L /etc/resolv.conf ] && echo "regular file"' "$RESOLV_NEW"
    check "resolv, a dangling link" "$sh" "ip=dhcp" "$LINKS"'
        ln -s ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
        "$0" "$T/mod/harvester-install-resolv.sh"; cat /etc/resolv.conf
        [ -f /etc/resolv.conf ] && ! [ -L /etc/resolv.conf ] && echo "regular file"' "$RESOLV_NEW"
    check "resolv, no DNS servers" "$sh" "ip=dhcp" '
        printf "DOMAINS=\nNTP=10.0.0.9\n" > /run/systemd/netif/links/2
        "$0" "$T/mod/harvester-install-resolv.sh"; '"$RESOLV_SHOW" \
        "rc 0
no resolv.conf"
    check "resolv, no links" "$sh" "ip=dhcp" '
        "$0" "$T/mod/harvester-install-resolv.sh"; '"$RESOLV_SHOW" \
        "rc 0
no resolv.conf"

    # emergency
    check "emergency, never started" "$sh" "$AUTO" '. "$T/mod/harvester-install-emergency.sh"' \
        "WARN: harvester-install: the install never started: no network interface came up (check the cable, DHCP and ip=)."
    check "emergency, started" "$sh" "$AUTO" '
        mkdir -p /run/harvester-install; : > /run/harvester-install/started
        . "$T/mod/harvester-install-emergency.sh"' ""
    check "emergency, not automatic" "$sh" "ip=dhcp" '. "$T/mod/harvester-install-emergency.sh"' ""
done

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
