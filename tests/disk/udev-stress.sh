#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The disk-write stage against a real udevd (not a CI test: this host runs none, see
# TEST-MACHINE.md). As root: a 100 GiB loop device with partition scanning on (losetup -P), a
# private systemd-udevd that watches only that device (OPTIONS+="watch": on every close after a
# write it takes the disk's lock if it can and re-reads the partition table, as on a real
# installer), `udevadm trigger --action=change` in a loop alongside, and the agent's `partition`
# command ROUNDS times. Prints each failing round's error and the count.
#
#   tests/disk/udev-stress.sh [ROUNDS] [AGENT]     (default 50, build-ci/agent/harvester-install-agent)
#
# Safety: udevd runs in a mount namespace of its own with a private /run and with every rules
# directory hidden but one holding the rule for this loop device alone, so the host's other
# devices get no rule (no symlinks, no watches, no re-reads); it is ended by its pid.
set -eu
udevd=/lib/systemd/systemd-udevd
if [ "${1:-}" != "--inside" ]; then
  rounds=${1:-50}
  agent=$(realpath "${2:-build-ci/agent/harvester-install-agent}")
  [ "$(id -u)" -eq 0 ] || { echo "needs root"; exit 77; }
  [ -x "$udevd" ] || { echo "no $udevd (Debian: udev)"; exit 77; }
  work=$(mktemp -d /var/tmp/udev-stress.XXXXXX)
  truncate -s 100G "$work/disk.img"
  dev=$(losetup -f --show -P "$work/disk.img")
  inner=
  trap '[ -n "$inner" ] && kill "$inner" 2>/dev/null; wait; partx -d "$dev" 2>/dev/null || true; losetup -d "$dev" || true; rm -rf --one-file-system "$work"' EXIT
  trap 'exit 130' INT TERM
  echo "udev-stress: $rounds rounds of \`partition\` on $dev (losetup -P) with $("$udevd" --version) watching it"
  unshare -m -- "$0" --inside "$rounds" "$agent" "$dev" "$work" &
  inner=$!
  rc=0
  wait "$inner" || rc=$?
  inner=
  exit "$rc"
fi

shift
rounds=$1 agent=$2 dev=$3 work=$4
name=${dev#/dev/}
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/udev/rules.d "$work/empty"
for d in /etc/udev/rules.d /usr/lib/udev/rules.d /usr/local/lib/udev/rules.d; do
  [ -d "$d" ] && mount --bind "$work/empty" "$d"
done
cat > /run/udev/rules.d/60-stress.rules <<RULES
SUBSYSTEM=="block", KERNEL=="$name|${name}p*", IMPORT{builtin}="blkid", OPTIONS+="watch"
RULES
"$udevd" --children-max=4 >"$work/udevd.log" 2>&1 &
udevd_pid=$!
trigger_pid=
cleanup() {
  set +e
  kill "$udevd_pid" 2>/dev/null
  [ -n "$trigger_pid" ] && kill "$trigger_pid" 2>/dev/null
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 50); do [ -S /run/udev/control ] && break; sleep 0.1; done
[ -S /run/udev/control ] || { echo "udevd did not start:"; cat "$work/udevd.log"; exit 1; }

( while :; do udevadm trigger --action=change "/sys/block/$name" 2>/dev/null
               for p in /sys/block/"$name"/"$name"p*; do [ -e "$p" ] && udevadm trigger --action=change "$p" 2>/dev/null; done
               sleep 0.05; done ) &
trigger_pid=$!

printf 'harvester.install.automatic=true\n' > "$work/cmdline"
cat > "$work/config.yaml" <<CONFIG
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
  device: $dev
CONFIG
fail=0 t0=$(date +%s)
for i in $(seq "$rounds"); do
  rc=0
  "$agent" --cmdline "$work/cmdline" --config "$work/config.yaml" partition > "$work/out" 2> "$work/err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    fail=$((fail + 1))
    echo "round $i FAILED (exit $rc): $(grep -m 3 -E 'error|FAILED' "$work/err" | tr '\n' ' ')"
  fi
done
events=$(udevadm info --export-db 2>/dev/null | grep -c "^P: .*/$name" || true)
echo "udev-stress: $rounds rounds, $fail failed, $(( $(date +%s) - t0 )) s; udevd knew $events entries for $name"
[ "$fail" -eq 0 ]
