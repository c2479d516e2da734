#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# fetch-bench.sh: how fast `harvester-install-agent fetch` downloads and verifies, against what the
# machine can do. Not a test: it prints numbers (issue 4, "Performance").
#
# A private nginx on 127.0.0.1 (its own config and prefix in a temporary directory) serves a file of
# SIZE from a tmpfs; downloads go into another tmpfs. In each round, alternating:
#   fetch  harvester-install-agent fetch URL DEST --checksum sha512:HEX   (download + SHA-512, one pass)
#   (a)    curl -o DEST URL                          (receiving alone, no verification)
#   (b)    openssl dgst -sha512 DEST                 (hashing alone: the file already in tmpfs)
#   (c)    curl -o DEST URL && sha512sum DEST        (what a shell script does)
# Reported: the median wall time of each, fetch / max(a, b) (target <= 1.10: verification fully
# overlapped with receiving) and fetch / c (target <= 0.50); then the peak RSS of fetch
# (/usr/bin/time) for RSS_SIZES (target <= 16 MiB, the same for every size). Each round also shows the
# CPU seconds used (fetch needs about (a) + (b) of CPU, spread over cores: the ratios hold only when a
# second core is free; the CPU time everything else used meanwhile, nginx included, is printed with
# each round) and the best round is repeated at the end.
#
# Usage: bench/fetch-bench.sh [AGENT]     (needs root: it mounts two tmpfs; ~ 2 x the largest size of RAM)
# Environment: SIZE_MIB (default 2048), ROUNDS (default 5), RSS_SIZES_MIB (default "1024 4096"),
#              AGENT (default build/agent/harvester-install-agent; use an optimised build, not ASan).
# Debian packages: nginx-light (or nginx), curl, openssl, coreutils, time, python3 (to pick a port).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
AGENT=${1:-${AGENT:-$here/build/agent/harvester-install-agent}}
SIZE_MIB=${SIZE_MIB:-2048}
ROUNDS=${ROUNDS:-5}
RSS_SIZES_MIB=${RSS_SIZES_MIB:-"1024 4096"}

die() { echo "fetch-bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (mounts tmpfs)"
[ -x "$AGENT" ] || die "no agent binary at $AGENT (build it, or pass its path)"
for t in nginx curl openssl sha512sum /usr/bin/time python3; do
        command -v "$t" >/dev/null || die "$t is missing (Debian: nginx-light curl openssl coreutils time python3)"
done
if ldd "$AGENT" | grep -q libasan; then
        echo "fetch-bench: warning: $AGENT is built with AddressSanitizer; times and RSS mean little" >&2
fi

max_mib=$SIZE_MIB
for s in $RSS_SIZES_MIB; do [ "$s" -gt "$max_mib" ] && max_mib=$s; done
avail_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
[ "$avail_mib" -gt $((2 * max_mib + 1024)) ] || die "needs $((2 * max_mib + 1024)) MiB available, has $avail_mib"

tmp=$(mktemp -d /tmp/fetch-bench.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/srv" "$tmp/dst" "$tmp/nginx/logs"
nginx_pid=
cleanup() {
        [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
        sleep 0.2
        umount "$tmp/srv" 2>/dev/null || true
        umount "$tmp/dst" 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

mount -t tmpfs -o "size=$((max_mib + 64))m,mode=755" bench-src "$tmp/srv"
mount -t tmpfs -o "size=$((max_mib + 64))m,mode=700" bench-dst "$tmp/dst"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 64; }
http {
        access_log off;
        sendfile on;
        tcp_nopush on;
        default_type application/octet-stream;
        client_body_temp_path $tmp/nginx/body;
        proxy_temp_path $tmp/nginx/proxy;
        fastcgi_temp_path $tmp/nginx/fastcgi;
        uwsgi_temp_path $tmp/nginx/uwsgi;
        scgi_temp_path $tmp/nginx/scgi;
        server {
                listen 127.0.0.1:$port;
                root $tmp/srv;
        }
}
EOF
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/logs/error.log" &
nginx_pid=$!
for _ in $(seq 50); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break || sleep 0.1
done

make_file() { # name MiB
        head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$tmp/srv/$1"
        chmod 644 "$tmp/srv/$1"
        sha512sum "$tmp/srv/$1" | cut -d' ' -f1
}

# Runs a command under /usr/bin/time; prints "<wall seconds> <max RSS KiB> <CPU seconds (user + sys)>
# <CPU seconds used meanwhile by everything else: nginx, interrupts, other processes>".
timed() {
        local before after
        before=$(head -1 /proc/stat)
        /usr/bin/time -f '%e %M %U %S' -o "$tmp/time" "$@" >/dev/null 2>"$tmp/stderr" ||
                { cat "$tmp/stderr" >&2; die "failed: $*"; }
        after=$(head -1 /proc/stat)
        awk -v b="$before" -v a="$after" -v hz="$(getconf CLK_TCK)" '{
                split(b, x); split(a, y); busy = 0
                for (i = 2; i <= 9; i++) if (i != 5 && i != 6) busy += y[i] - x[i]
                printf "%s %s %.2f %.2f\n", $1, $2, $3 + $4, busy / hz - ($3 + $4)
        }' "$tmp/time"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "fetch-bench: $SIZE_MIB MiB from nginx on 127.0.0.1:$port, $ROUNDS rounds, $(nproc) cores, $(uname -r)"
echo "fetch-bench: agent $AGENT"
hex=$(make_file big.bin "$SIZE_MIB")
url="http://127.0.0.1:$port/big.bin"
dst="$tmp/dst/big.bin"

: >"$tmp/fetch.t"; : >"$tmp/a.t"; : >"$tmp/b.t"; : >"$tmp/c.t"; : >"$tmp/rounds.t"
for round in $(seq "$ROUNDS"); do
        rm -f "$dst"
        read -r t_fetch rss cpu_fetch other_fetch <<<"$(timed "$AGENT" fetch "$url" "$dst" --checksum "sha512:$hex")"
        rm -f "$dst"
        read -r t_a _ cpu_a _ <<<"$(timed curl -sS -o "$dst" "$url")"
        read -r t_b _ cpu_b _ <<<"$(timed openssl dgst -sha512 "$dst")"
        rm -f "$dst"
        read -r t_c _ _ _ <<<"$(timed sh -c 'curl -sS -o "$1" "$2" && sha512sum "$1"' sh "$dst" "$url")"
        rm -f "$dst"
        echo "$t_fetch" >>"$tmp/fetch.t"; echo "$t_a" >>"$tmp/a.t"; echo "$t_b" >>"$tmp/b.t"; echo "$t_c" >>"$tmp/c.t"
        echo "$t_fetch $t_a $t_b $t_c" >>"$tmp/rounds.t"
        printf 'round %d: fetch %5.2f s  (a) curl %5.2f s  (b) openssl %5.2f s  (c) curl+sha512sum %5.2f s | CPU s: fetch %.2f (others meanwhile %.2f), a %.2f, b %.2f | fetch RSS %d KiB\n' \
                "$round" "$t_fetch" "$t_a" "$t_b" "$t_c" "$cpu_fetch" "$other_fetch" "$cpu_a" "$cpu_b" "$rss"
done
m_fetch=$(median <"$tmp/fetch.t"); m_a=$(median <"$tmp/a.t"); m_b=$(median <"$tmp/b.t"); m_c=$(median <"$tmp/c.t")
awk -v f="$m_fetch" -v a="$m_a" -v b="$m_b" -v c="$m_c" -v mib="$SIZE_MIB" 'BEGIN {
        m = a > b ? a : b
        printf "median: fetch %.2f s (%.0f MiB/s), (a) %.2f s, (b) %.2f s, (c) %.2f s\n", f, mib / f, a, b, c
        printf "fetch / max(a, b) = %.3f (target <= 1.10: %s)\n", f / m, f / m <= 1.10 ? "met" : "MISSED"
        printf "fetch / c         = %.3f (target <= 0.50: %s)\n", f / c, f / c <= 0.50 ? "met" : "MISSED"
}'
# On a shared machine the medians move with the load; the best round is what the code can do.
sort -g "$tmp/rounds.t" | head -1 | awk '{ m = $2 > $3 ? $2 : $3
        printf "best fetch round: fetch %.2f s, (a) %.2f s, (b) %.2f s, (c) %.2f s: fetch / max(a, b) = %.3f, fetch / c = %.3f\n",
                $1, $2, $3, $4, $1 / m, $1 / $4 }'
rm -f "$tmp/srv/big.bin"

for s in $RSS_SIZES_MIB; do
        hex=$(make_file rss.bin "$s")
        rm -f "$tmp/dst/rss.bin"
        read -r t rss _ _ <<<"$(timed "$AGENT" fetch "http://127.0.0.1:$port/rss.bin" "$tmp/dst/rss.bin" --checksum "sha512:$hex")"
        awk -v s="$s" -v rss="$rss" -v t="$t" 'BEGIN {
                printf "peak RSS of fetch, %d MiB file: %d KiB (%.1f MiB; target <= 16 MiB: %s), %.2f s\n",
                        s, rss, rss / 1024, rss <= 16384 ? "met" : "MISSED", t
        }'
        rm -f "$tmp/dst/rss.bin" "$tmp/srv/rss.bin"
done
