#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Stand-in of Harvester's /usr/sbin/ctr-check-images.sh in the test release (test equipment), same
# contract: waits until every image of the list $1 is in containerd's k8s.io namespace.
set -eu
log=/var/lib/rancher/preload-test.log
have=$(mktemp)
trap 'rm -f "$have"' EXIT
echo "ctr-check-images.sh $1" >> "$log"
while :; do
    ctr -n k8s.io images ls -q | grep -v '^sha256' > "$have" || true
    missing=0
    while read -r image; do
        [ -z "$image" ] || grep -qxF "$image" "$have" || missing=$((missing + 1))
    done < "$1"
    [ "$missing" -eq 0 ] && break
    sleep 1
done
echo "ctr-check-images.sh $1: all $(grep -c . "$1") images present" >> "$log"
