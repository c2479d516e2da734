#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The `config` command as an operator runs it: the seed's CREATE kernel line with the seed's
# config-create.yaml prints the merged configuration as JSON, secrets redacted, exit 0; adding
# harvester.install.mode=join fails with exit 2 naming server_url; usage and file errors.
set -u
: "${AGENT:?AGENT must be set (meson test sets it)}"
: "${TESTS_SOURCE_DIR:?TESTS_SOURCE_DIR must be set (meson test sets it)}"
fx=$TESTS_SOURCE_DIR/config/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# run NAME ARGS...: runs the agent, keeps stdout/stderr in $tmp/NAME.{out,err}, sets $rc
run() {
	local name=$1; shift
	"$AGENT" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
	rc=$?
	echo "== $name: exit $rc"; sed 's/^/   stderr: /' "$tmp/$name.err"
}
expect_rc() { [ "$rc" -eq "$1" ] || fail "$2: exit $rc, expected $1"; }
has() { grep -qF -- "$2" "$1" || fail "$1 lacks: $2"; }
lacks() { ! grep -qF -- "$2" "$1" || fail "$1 contains: $2"; }

# 1. The demo: CREATE kernel line + config-create.yaml, JSON.
run create --cmdline "$fx/cmdline-create.txt" --config "$fx/config-create.yaml" config --json
expect_rc 0 create
python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
assert c["token"] == "<redacted>", c["token"]
assert c["os"]["password"] == "<redacted>"
assert c["os"]["hostname"] == "node1"
assert c["install"]["mode"] == "create"
assert c["install"]["automatic"] is True
assert c["install"]["vip"] == "10.100.0.99"
assert c["install"]["management_interface"]["interfaces"] == [{"name": "ens5", "hw_addr": None}]
assert c["install"]["management_interface"]["bond_options"] == {"mode": "balance-tlb", "miimon": "100"}
assert c["install"]["config_url_timeout"] == 600
assert c["install"]["config_url"] == "http://10.100.0.10/harvester/config-create.yaml"
assert c["server_url"] is None
' "$tmp/create.out" || fail "create: JSON output wrong"
lacks "$tmp/create.out" "p@ssword"
lacks "$tmp/create.err" "p@ssword"
[ -s "$tmp/create.err" ] && fail "create: unexpected stderr"

# 2. The same with harvester.install.mode=join added: exit 2, server_url named.
{ tr -d '\n' <"$fx/cmdline-create.txt"; echo " harvester.install.mode=join"; } >"$tmp/join-line"
run join --cmdline "$tmp/join-line" --config "$fx/config-create.yaml" config --json
expect_rc 2 join
has "$tmp/join.err" "error: server_url: required for mode join"
[ -s "$tmp/join.out" ] && fail "join: printed a configuration"

# 3. YAML by default; --show-secrets is the only way to see secrets.
run yaml --cmdline "$fx/cmdline-create.txt" --config "$fx/config-create.yaml" config
expect_rc 0 yaml
has "$tmp/yaml.out" 'token: "<redacted>"'
has "$tmp/yaml.out" '  hostname: "node1"'
lacks "$tmp/yaml.out" "p@ssword"
run show --cmdline "$fx/cmdline-create.txt" --config "$fx/config-create.yaml" config --json --show-secrets
expect_rc 0 show
has "$tmp/show.out" '"password": "p@ssword"'
has "$tmp/show.out" '"token": "token"'

# 4. The seed's JOIN configuration and the UEFI line validate.
run seedjoin --cmdline "$fx/cmdline-join.txt" --config "$fx/config-join.yaml" config --json
expect_rc 0 seedjoin
has "$tmp/seedjoin.out" '"server_url": "https://10.100.0.99:443"'
run efi --cmdline "$fx/cmdline-create-efi.txt" --config "$fx/config-create.yaml" config
expect_rc 0 efi

# 5. Every operator mistake: exit 2, one problem named.
for m in missing-iso-url:install.iso_url create-without-vip:install.vip no-credentials:os.password \
	bad-hostname:os.hostname join-without-server-url:server_url; do
	f=${m%%:*} key=${m#*:}
	line=cmdline-create.txt; [ "$f" = join-without-server-url ] && line=cmdline-join.txt
	run "$f" --cmdline "$fx/$line" --config "$fx/mistake-$f.yaml" config
	expect_rc 2 "$f"
	has "$tmp/$f.err" "error: $key: "
	has "$tmp/$f.err" "The configuration is invalid: $key: "
done

# 6. Usage and files.
run extra --cmdline "$fx/cmdline-create.txt" --config "$fx/config-create.yaml" config surplus
expect_rc 2 extra
run badopt --cmdline "$fx/cmdline-create.txt" config --yaml
expect_rc 2 badopt
run nofile --cmdline "$fx/cmdline-create.txt" --config "$tmp/none.yaml" config
expect_rc 2 nofile
has "$tmp/nofile.err" "$tmp/none.yaml"
run help config --help
expect_rc 0 help
has "$tmp/help.out" "--show-secrets"

# 7. config_url as file:// (no --config): fetched exactly as the install will.
cp "$fx/config-create.yaml" "$tmp/served.yaml"
echo "harvester.install.automatic=true harvester.install.config_url=file://$tmp/served.yaml" >"$tmp/url-line"
run url --cmdline "$tmp/url-line" config --json
expect_rc 0 url
has "$tmp/url.out" '"hostname": "node1"'
echo "harvester.install.config_url=file://$tmp/absent.yaml harvester.install.config_url_timeout=1" >"$tmp/url-line2"
run url404 --cmdline "$tmp/url-line2" config
expect_rc 3 url404

# 8. An interface given only by hw_addr: valid offline, with a note that the node resolves it; the
#    dry run renders it with a stand-in name.
sed 's/      - name: ens5/      - hwAddr: "52:54:00:12:34:56"/' "$fx/config-create.yaml" >"$tmp/mac.yaml"
grep -q 'hwAddr: "52:54:00:12:34:56"' "$tmp/mac.yaml" || fail "mac: fixture not rewritten"
run mac --cmdline "$fx/cmdline-create.txt" --config "$tmp/mac.yaml" config --json
expect_rc 0 mac
has "$tmp/mac.err" "an interface given only by hw_addr is resolved to its name on the node"
has "$tmp/mac.out" '"hw_addr": "52:54:00:12:34:56"'

# 9. Kernel arguments GRUB cannot parse: exit 2 before anything else, the key named.
sed 's/^  password: p@ssword.*/&\n  additional_kernel_arguments: '"'"'rd.break="pre-mount'"'"'/' "$fx/config-create.yaml" >"$tmp/kargs.yaml"
grep -q 'additional_kernel_arguments' "$tmp/kargs.yaml" || fail "kargs: fixture not rewritten"
run kargs --cmdline "$fx/cmdline-create.txt" --config "$tmp/kargs.yaml" config
expect_rc 2 kargs
has "$tmp/kargs.err" "error: os.additional_kernel_arguments:"
has "$tmp/kargs.err" "has an unbalanced double quote"
[ -s "$tmp/kargs.out" ] && fail "kargs: printed a configuration"

# 10. URL variables: the offline config command shows iso_url as written and says the node expands
# it; an unknown variable is exit 2 naming the key and the variable.
sed 's#^  iso_url: .*#  iso_url: "http://10.100.0.10/harvester/${serial}/harvester.iso"#' "$fx/config-create.yaml" >"$tmp/urlvar.yaml"
grep -q 'serial' "$tmp/urlvar.yaml" || fail "urlvar: fixture not rewritten"
run urlvar --cmdline "$fx/cmdline-create.txt" --config "$tmp/urlvar.yaml" config
expect_rc 0 urlvar
has "$tmp/urlvar.out" 'iso_url: "http://10.100.0.10/harvester/${serial}/harvester.iso"'
has "$tmp/urlvar.err" "the node expands them from what it is when the install starts"
sed 's#\${serial}#${serial_number}#' "$tmp/urlvar.yaml" >"$tmp/urlbad.yaml"
run urlbad --cmdline "$fx/cmdline-create.txt" --config "$tmp/urlbad.yaml" config
expect_rc 2 urlbad
has "$tmp/urlbad.err" 'error: install.iso_url: "http://10.100.0.10/harvester/${serial_number}/harvester.iso": unknown variable ${serial_number}'
[ -s "$tmp/urlbad.out" ] && fail "urlbad: printed a configuration"

if [ "$failures" -gt 0 ]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all checks passed"
