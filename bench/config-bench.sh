#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# config-bench.sh: how long `harvester-install-agent config` takes to load, bind, validate and print
# a configuration with many labels (issue 10: map inserts were quadratic, 60,000 labels took 44 s).
# Not a test: it prints numbers. For each N in COUNTS a YAML file with N os.labels (with MIXED=1
# also N os.sysctls and N os.ntp_servers entries, so a second map and a list grow too) is generated, then
# `config --config FILE` runs ROUNDS times; the median wall time and the peak RSS are printed.
# Target: 100,000 labels in under 1 s on an optimised build.
#
# Usage: bench/config-bench.sh [AGENT]
# Environment: COUNTS (default "10000 50000 100000"), ROUNDS (default 3), MIXED (default 0),
#              AGENT (default build/agent/harvester-install-agent; use an optimised build, not ASan).
# Debian packages: python3, time.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
AGENT=${1:-${AGENT:-$here/build/agent/harvester-install-agent}}
COUNTS=${COUNTS:-"10000 50000 100000"}
ROUNDS=${ROUNDS:-3}
MIXED=${MIXED:-0}

die() { echo "config-bench: $*" >&2; exit 1; }
[ -x "$AGENT" ] || die "no agent binary at $AGENT (build it, or pass its path)"
command -v python3 >/dev/null || die "python3 is missing"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian: time)"
if ldd "$AGENT" | grep -q libasan; then
        echo "config-bench: warning: $AGENT is built with AddressSanitizer; times mean little" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for n in $COUNTS; do
        python3 - "$n" "$MIXED" >"$tmp/c.yaml" <<'PY'
import sys
n = int(sys.argv[1])
m = n if sys.argv[2] == "1" else 0
print("scheme_version: 1\ntoken: bench-token-123\nos:\n  hostname: bench\n  password: bench-password\n  labels:")
for i in range(n):
    print(f"    bench.example.com/label-{i}: value-{i}")
if m:
    print("  sysctls:")
    for i in range(m):
        print(f"    net.bench.key{i}: \"{i}\"")
    print("  ntp_servers:")
    for i in range(m):
        print(f"  - ntp{i}.example.com")
print("install:\n  mode: create\n  automatic: true\n  device: /dev/sda\n"
      "  vip: 10.0.0.100\n  vip_mode: static\n  management_interface:\n    interfaces:\n    - name: ens3\n"
      "  iso_url: http://10.0.0.1/harvester.iso\n  iso_checksum: sha512:" + "ab" * 64)
PY
        times=()
        rss=0
        for _ in $(seq "$ROUNDS"); do
                out=$(/usr/bin/time -f "%e %M" "$AGENT" --config "$tmp/c.yaml" config 2>&1 >"$tmp/out") || true
                t=$(tail -1 <<<"$out")
                times+=("${t% *}")
                rss=${t#* }
                grep -q "label-$((n - 1))\": \"value-$((n - 1))\"" "$tmp/out" || die "the output lacks the last label (N=$n): $(tail -3 <<<"$out")"
        done
        median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p")
        extra=""; [ "$MIXED" = 1 ] && extra=" (+ $n sysctls, $n ntp servers)"
        printf 'config-bench: %7d labels%s: median %s s over %d rounds, peak RSS %d MiB\n' \
                "$n" "$extra" "$median" "$ROUNDS" $((rss / 1024))
done
