#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Benchmark of `harvester-install-agent partition`: a 300 GiB sparse install disk plus a 60 GiB
# sparse data disk on loop devices (root). Prints the wall time of each run and the bytes written
# (the loop devices' "sectors written" counters in /sys/block/loopN/stat, and the growth of the
# sparse files as du counts it). Run 1 is on blank disks; runs 2.. reinstall over the previous
# install (old signatures wiped first). Target: under 10 s.
#
#   sudo bench/partition-bench.sh [AGENT] [RUNS]      AGENT default: build/agent/harvester-install-agent
set -eu

AGENT=${1:-${AGENT:-build/agent/harvester-install-agent}}
RUNS=${2:-3}
[ "$(id -u)" = 0 ] || { echo "partition-bench: needs root (loop devices)" >&2; exit 1; }
[ -x "$AGENT" ] || { echo "partition-bench: no agent at $AGENT" >&2; exit 1; }

T=$(mktemp -d /var/tmp/partition-bench.XXXXXX)
LOOPS=()
cleanup() {
        for l in "${LOOPS[@]}"; do
                partx -d "$l" 2>/dev/null || true
                losetup -d "$l" 2>/dev/null || true
        done
        rm -rf "$T"
}
trap cleanup EXIT

truncate -s 300G "$T/disk.img"
truncate -s 60G "$T/data.img"
D=$(losetup -f --show "$T/disk.img"); LOOPS+=("$D")
E=$(losetup -f --show "$T/data.img"); LOOPS+=("$E")

cat > "$T/config.yaml" <<YAML
scheme_version: 1
token: token-for-bench
os:
  hostname: bench
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
  device: $D
  data_disk: $E
YAML
echo "harvester.install.automatic=true" > "$T/cmdline"

written() { awk '{ print $7 * 512 }' "/sys/block/${1#/dev/}/stat"; }
allocated() { du -B1 "$1" | cut -f1; }

echo "partition-bench: $("$AGENT" --version), install disk $D (300 GiB), data disk $E (60 GiB), $(nproc) cores"
printf '%-4s %10s %18s %18s %16s %16s\n' run "wall (s)" "disk written (B)" "data written (B)" "disk du (B)" "data du (B)"
for run in $(seq 1 "$RUNS"); do
        sync
        wd0=$(written "$D"); we0=$(written "$E")
        t0=$(date +%s.%N)
        "$AGENT" --cmdline "$T/cmdline" --config "$T/config.yaml" partition > "$T/out" 2> "$T/err" ||
                { cat "$T/err" >&2; echo "partition-bench: partition failed" >&2; exit 1; }
        t1=$(date +%s.%N)
        sync
        wd1=$(written "$D"); we1=$(written "$E")
        printf '%-4s %10.2f %18d %18d %16d %16d\n' "$run" "$(awk "BEGIN { print $t1 - $t0 }")" $((wd1 - wd0)) $((we1 - we0)) \
                "$(allocated "$T/disk.img")" "$(allocated "$T/data.img")"
done
