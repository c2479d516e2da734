#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# ExecStartPre of harvester-install-agent.service (dracut module "harvester-install"): systemd-networkd
# writes no /etc/resolv.conf and Debian 12 ships systemd-resolved separately, so without this the
# agent could not resolve a host name in config_url, iso_url or a webhook. Writes the DNS servers
# and search domains that networkd learnt (DHCP or ip=) into /etc/resolv.conf, unless something
# (systemd-resolved, NetworkManager, an earlier run) already provides one.

[ -s /etc/resolv.conf ] && exit 0

servers=
domains=
for f in /run/systemd/netif/links/*; do
    [ -f "$f" ] || continue
    servers="$servers $(sed -n 's/^DNS=//p' "$f")"
    domains="$domains $(sed -n 's/^DOMAINS=//p' "$f")"
done

out=
seen=" "
for s in $servers; do
    case "$seen" in *" $s "*) continue ;; esac
    seen="$seen$s "
    out="${out}nameserver $s
"
done
domains=$(echo $domains)
[ -n "$domains" ] && out="${out}search $domains
"
[ -n "$out" ] || exit 0

rm -f /etc/resolv.conf
printf '%s' "$out" > /etc/resolv.conf
echo "harvester-install: DNS from the network configuration: $(echo $seen)${domains:+ (search $domains)}"
