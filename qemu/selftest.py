# SPDX-License-Identifier: Apache-2.0
"""Quick checks of the lab itself, without a VM (`qemu/pxe-lab selftest`, meson suite "unit"):
the served folder says what the seed says, nginx serves it to anyone (world-readable), the seed's
dhcpd.conf is valid for ISC dhcpd, the disk comparison sees a change, the console cleaner reads
markers through escape sequences. Exit 77 when nginx or qemu-img are missing."""

import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import harness as h
import scenarios as S
from types import SimpleNamespace

FAILS = []


def expect(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        FAILS.append(what)


def fake_release(d):
    """A release folder as build-release.sh makes it, small: an ISO of the release's shape
    (xorriso), its served/ folder made by harvester-pxe-prepare (the source tree's copy) with
    --no-initrd and a stand-in initrd put where dracut's would be (this checks the lab, not
    dracut), the release files hard links to the served ones, as build-release.sh does."""
    v = "v9.9.9-selftest"
    tree = d / "iso-tree"
    (tree / "boot").mkdir(parents=True)
    (d / "root" / "etc").mkdir(parents=True)
    (d / "root" / "etc" / "data").write_bytes(os.urandom(3000))
    subprocess.run(["mksquashfs", d / "root", tree / "rootfs.squashfs", "-quiet", "-no-progress"],
                   check=True, stdout=subprocess.DEVNULL)
    (tree / "boot" / "kernel").write_bytes(os.urandom(1000))
    (tree / "harvester-release.yaml").write_text(f"harvester: {v}\n")
    iso = d / f"harvester-{v}-amd64.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-R", "-J", "-o", iso, tree], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    served = d / "served"
    subprocess.run(["bash", h.TOP / "pxe-prepare" / "harvester-pxe-prepare.in", iso, served,
                    "--no-initrd"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    names = {"vmlinuz": f"harvester-{v}-vmlinuz-amd64", "initrd": f"harvester-{v}-initrd-amd64",
             "rootfs": f"harvester-{v}-rootfs-amd64.squashfs"}
    (served / names["initrd"]).write_bytes(os.urandom(1002))
    for n in names.values():
        os.link(served / n, d / n)
    (d / f"harvester-{v}-amd64.sha512").write_bytes(os.urandom(1004))
    for n in [*names.values(), iso.name, f"harvester-{v}-amd64.sha512"]:
        os.chmod(d / n, 0o600)  # the lab must make what it serves world-readable
    return h.Release(d)


def check_served(served, release, port):
    v = release.version
    for mode in ("create", "join"):
        for name in (f"ipxe-{mode}", f"ipxe-{mode}-efi"):
            seed = (h.SEED_DIR / name).read_text().splitlines()
            got = (served.dir / name).read_text().splitlines()
            expect(len(seed) == len(got) and seed[0] == "#!ipxe" == got[0],
                   f"{name}: the seed's lines, in order")
            seed_k = next(l for l in seed if l.startswith("kernel ")).split()
            got_k = next(l for l in got if l.startswith("kernel ")).split()
            extra = got_k[len(seed_k):]
            expect(extra == h.LAB_CMDLINE.split(),
                   f"{name}: only {h.LAB_CMDLINE} added to the kernel line (got {extra})")
            changed = [(a, b) for a, b in zip(seed_k, got_k) if a != b]
            ok = all(a.replace("10.100.0.10", f"10.0.2.2:{port}").replace("<version>", v) == b
                     for a, b in changed)
            expect(ok and len(changed) >= 3,
                   f"{name}: only the server, port and version changed in the seed's arguments")
            if name.endswith("-efi"):
                expect(f"initrd=harvester-{v}-initrd" in got_k, f"{name}: initrd= on the kernel line")
        served_text = (served.dir / f"config-{mode}.yaml").read_text()
        sums = f"  iso_checksum_url: http://10.0.2.2:{port}/harvester/harvester-{v}-amd64.sha512"
        expect(f"-amd64.iso\n{sums}\n" in served_text,
               f"config-{mode}.yaml: iso_checksum_url (the release's SHA-512 list) follows iso_url")
        text = served_text.replace(f"{sums}\n", "", 1)
        seed = (h.SEED_DIR / f"config-{mode}.yaml").read_text()
        diff = [(a, b) for a, b in zip(seed.splitlines(), text.splitlines()) if a != b]
        expect(len(seed.splitlines()) == len(text.splitlines()) and len(diff) == 2
               and f"iso_url: http://10.0.2.2:{port}/harvester/harvester-{v}-amd64.iso" in text
               and f"- name: {h.GUEST_IFACE}" in text and "device: /dev/sda" in text,
               f"config-{mode}.yaml: the seed's, iso_url and the interface ({h.GUEST_IFACE}) changed, "
               "iso_checksum_url added")
    for name in h.IPXE_BINARIES:
        expect((served.dir / name).read_bytes() == (h.IPXE_DIR / name).read_bytes(),
               f"{name}: Debian's {h.IPXE_DIR}/{name}, in the served folder (HTTP and TFTP root)")
    for alias, target in ((f"harvester-{v}-vmlinuz", "vmlinuz"), (f"harvester-{v}-initrd", "initrd"),
                          ("rootfs.squashfs", "rootfs")):
        expect((served.dir / alias).read_bytes() == (release.dir / release.files[target]).read_bytes(),
               f"{alias}: the release's {release.files[target]}")


# --- The scenarios' verdicts against near misses ---------------------------------------------------

M = "[harvester-install]"
URL = "http://10.0.2.2:40404/n/node1/harvester"  # a port holding 404, as a lab's may
ISO = f"{URL}/harvester-v9.9.9-amd64.iso"
PLAN_ISO = f"harvester-install: ISO: {ISO}, verified with install.iso_checksum."
TAIL = " Nothing was written to any disk. Fix the cause and PXE-boot the machine again; it will not reboot by itself."
# Per failure scenario: its own FAILED line as the agent writes it (the messages of agent/*.c),
# and near misses that must not pass: the plan or a log line alone, another stage's failure with
# the same words, the marker in the middle of a line, another failure of the same stage.
VERDICTS = {
    "memory-7g": (
        f"{M} FAILED: memory: Not enough memory: 7 GiB installed (from the kernel's memory blocks; MemTotal "
        "6.8 GiB), at least 8 GiB needed (the ISO is held in memory during the install)." + TAIL,
        ["harvester-install: warning: Memory: 7 GiB installed (...), less than the 8 GiB Harvester needs",
         f"{M} FAILED: iso: Not enough memory: 7 GiB installed, at least 8 GiB needed" + TAIL,
         f"{M} FAILED: memory: cannot read /sys/devices/system/memory" + TAIL]),
    "config-404": (
        f"{M} FAILED: configuration: config_url: {URL}/config-create.yaml answered HTTP 404 Not Found: the "
        "file is not there. Check the URL (host, path and file name) against what the server serves." + TAIL,
        [f"harvester-install: Fetching the configuration from {URL}/config-create.yaml (giving up after 60 s).",
         f"{M} FAILED: configuration: config_url: {URL}/config-create.yaml answered HTTP 500" + TAIL,
         f"{M} FAILED: configuration: config_url: cannot fetch {URL}/config-create.yaml: Failed to connect to "
         "10.0.2.2 port 40404" + TAIL,
         f"{M} FAILED: iso: ISO: {URL}/config-create.yaml answered HTTP 404 Not Found." + TAIL]),
    "config-invalid": (
        f"{M} FAILED: configuration: The configuration is invalid: server_url: required for mode join: the "
        "cluster to join, https://<vip>:443 (not set)" + TAIL,
        ["harvester-install: warning: harvester.install.server_url is an unknown key: ignored",
         f"{M} FAILED: disk-check: server_url is wrong" + TAIL]),
    "iso-checksum-mismatch": (
        f"{M} FAILED: iso: ISO: checksum mismatch for {ISO}: expected {S.WRONG_SHA512}, got sha512:{'ab' * 64} "
        "(1048576 bytes received). The file was removed." + TAIL,
        [PLAN_ISO,
         f"harvester-install: ISO: checksum verified: sha512:{'ab' * 64}",
         f"{M} FAILED: disk-write: ISO: checksum mismatch for {ISO}: expected {S.WRONG_SHA512}, got sha512:{'ab' * 64}",
         f"{M} FAILED: iso: ISO: {ISO} answered HTTP 404: the file is not there." + TAIL,
         f"{M} FAILED: iso: ISO: the checksum list at {URL}/x.sha512 has no entry for \"x.iso\"" + TAIL]),
    "iso-no-rootfs": (
        f"{M} FAILED: iso: The ISO \"/run/harvester-install/iso/harvester.iso\" lacks a file the install needs: "
        "rootfs.squashfs. Is install.iso_url a Harvester ISO of the same version as the kernel and initrd?" + TAIL,
        [f"harvester-install: kernel line: root=live:{URL}/rootfs.squashfs",
         f"{M} FAILED: install: Cannot mount rootfs.squashfs" + TAIL,
         f"{M} FAILED: iso: ISO: cannot fetch {URL}/rootfs.squashfs: HTTP 404" + TAIL]),
    "device-missing": (
        f"{M} FAILED: disk-check: install.device \"/dev/sdz\" does not exist (waited 60 s for it to appear). "
        "Name one of the disks above." + TAIL,
        ["harvester-install: Install plan: mode create, hostname node1, install disk /dev/sdz.",
         f"{M} FAILED: configuration: install.device \"/dev/sdz\" does not exist" + TAIL]),
}


def fake_ctx(consoles, nginx=(), hooks=(), dhcpd=None):
    """A scenario context without VMs: consoles {node: [lines]}, nginx [(addr, path, status,
    bytes)], the listener's requests."""
    lab = SimpleNamespace(
        nginx=SimpleNamespace(requests_full=lambda: list(nginx)),
        listener=SimpleNamespace(requests=lambda: list(hooks)), dhcpd=dhcpd,
        release=SimpleNamespace(version="v9.9.9"))
    ctx = S.Ctx(lab)
    for i, (node, lines) in enumerate(consoles.items()):
        con = h.Console()
        con.lines = [(float(k), t) for k, t in enumerate(lines)]
        ctx.vm[node] = SimpleNamespace(console=con, mac=f"52:54:00:00:00:0{i}", disks=[])
    return ctx


def check_verdicts():
    for name, (good, misses) in VERDICTS.items():
        checks = [c for c in S.SCENARIOS[name].checks if hasattr(c, "stage")]
        expect(len(checks) == 1, f"{name}: one FAILED-line verdict ({len(checks)})")
        if not checks:
            continue
        c = checks[0]
        ok, detail = c(fake_ctx({"node1": ["harvester-install: STAGE configuration", good]}))
        expect(ok, f"{name}: its own FAILED line passes ({detail})")
        for miss in misses + [f"[   12.3] x: {good}"]:
            ok, _ = c(fake_ctx({"node1": ["harvester-install: STAGE configuration", miss]}))
            expect(not ok, f"{name}: rejects a near miss: {miss[:90]}")
        ok, _ = c(fake_ctx({"node1": [good, misses[-1]]}))
        expect(not ok, f"{name}: rejects its line followed by another FAILED line")

    # Requests are the node's own: node3's checks are not met by node2's requests.
    v = "v9.9.9"
    want = [S.served("node3", "config-join.yaml"), S.served("node3", "harvester-<version>-vmlinuz"),
            S.not_requested("node2", "config-create.yaml")]
    node2_only = [("127.0.0.1", "/n/node2/harvester/config-join.yaml", 200, 900),
                  ("127.0.0.1", f"/n/node2/harvester/harvester-{v}-vmlinuz", 200, 9000),
                  ("127.0.0.1", "/harvester/config-join.yaml", 200, 900)]
    both = node2_only + [("127.0.0.1", "/n/node3/harvester/config-join.yaml", 200, 900),
                         ("127.0.0.1", f"/n/node3/harvester/harvester-{v}-vmlinuz", 200, 9000)]
    consoles = {"node2": [], "node3": []}
    for c in want[:2]:
        expect(not c(fake_ctx(consoles, node2_only))[0], f"'{c.what}' is not met by node2's requests")
        expect(c(fake_ctx(consoles, both))[0], f"'{c.what}' is met by node3's own request")
    c = S.not_requested("node2", "config-create.yaml")
    expect(not c(fake_ctx(consoles, [("127.0.0.1", "/n/node2/harvester/config-create.yaml", 200, 9)]))[0]
           and c(fake_ctx(consoles, [("127.0.0.1", "/n/node3/harvester/config-create.yaml", 200, 9)]))[0],
           "not_requested sees only the node's own requests")
    dh = SimpleNamespace(acks=lambda: [("10.100.0.50", "52:54:00:00:00:00"), ("10.100.0.51", "52:54:00:00:00:01")])
    c = S.served("node3", "config-join.yaml")
    expect(not c(fake_ctx(consoles, [("10.100.0.50", "/harvester/config-join.yaml", 200, 9)], dhcpd=dh))[0]
           and c(fake_ctx(consoles, [("10.100.0.51", "/harvester/config-join.yaml", 200, 9)], dhcpd=dh))[0],
           "the dhcpd way: a request counts for the node whose MAC got the address")
    c = S.served_whole("node1", "harvester-<version>-amd64.iso")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / f"harvester-{v}-amd64.iso").write_bytes(b"x" * 1000)
        for sent, want in ((10, False), (1000, True)):
            ctx = fake_ctx({"node1": []}, [("127.0.0.1", f"/n/node1/harvester/harvester-{v}-amd64.iso", 200, sent)])
            ctx.lab.served = SimpleNamespace(dir=Path(d))
            expect(c(ctx)[0] == want, f"the whole ISO: {sent} of 1000 bytes sent {'passes' if want else 'fails'}")
    # Webhooks: node1's FAILED check is not met by a FAILED webhook to node2's URL.
    body = '{"event": "FAILED", "hostname": "node1", "mac": "52:54:00:00:00:00", "ipv4": "10.0.2.15", "ipv6": ""}'
    import base64
    auth = "Basic " + base64.b64encode(f"{S.HOOK_USER}:{S.HOOK_PASSWORD}".encode()).decode()
    hook = {"method": "POST", "headers": {"authorization": auth, "content-type": "application/json"}, "body": body}
    c = S.webhook("node1", "FAILED", "node1")
    expect(not c(fake_ctx({"node1": [], "node2": []}, hooks=[dict(hook, path="/hook/n/node2/FAILED/node1")]))[0],
           "a FAILED webhook to node2's URL does not count for node1")
    ok, detail = c(fake_ctx({"node1": [], "node2": []}, hooks=[dict(hook, path="/hook/n/node1/FAILED/node1")]))
    expect(ok, f"a FAILED webhook to node1's URL counts for node1 ({detail})")


def load_pxe_lab():
    """qemu/pxe-lab (no .py) as a module."""
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("pxe_lab", str(h.QEMU_DIR / "pxe-lab"))
    spec = importlib.util.spec_from_loader("pxe_lab", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def check_rack(release, tools):
    """three-nodes' rack: one script without config_url, a cpio whose cmdline.d line holds the
    literal ${mac}, config-<mac>.yaml per node (own hostname, own URLs), nothing else; the check
    wants the node's own config and the agent's expansion line."""
    lab = h.Lab(release, tools, name="selftest", config_edit=S.with_token())
    try:
        ctx = S.Ctx(lab)
        for node, mode, mac, _ in S.RACK:
            ctx.vm[node] = lab.new_vm(node, mode, mac)
        S.rack_prepare(ctx)
        for node, mode, mac, hostname in S.RACK:
            d = lab.served.root / "n" / node / "harvester"
            script = (d / S.RACK_SCRIPT).read_text()
            kernel = next(l for l in script.splitlines() if l.startswith("kernel "))
            urls = re.findall(r"http://\S+", script)
            expect("config_url" not in kernel and re.match(rf"kernel \S+ initrd={S.RACK_CPIO} initrd=", kernel)
                   and "BOOTIF=01-${netX/mac:hexhyp}" in kernel and f"\ninitrd {S.RACK_CPIO}\ninitrd " in script
                   and urls and all(f"/n/{node}/harvester/" in u for u in urls),
                   f"rack: {node}'s script loads the cpio first, passes BOOTIF, has no config_url, names its own URLs")
            listing = subprocess.run(["cpio", "-i", "--to-stdout", S.RACK_CONF], cwd=d, input=(d / S.RACK_CPIO).read_bytes(),
                                     capture_output=True).stdout.decode()
            expect(listing == f"harvester.install.config_url=http://{lab.served.server}/n/{node}/harvester/config-${{mac}}.yaml\n",
                   f"rack: {node}'s cpio holds the config_url with ${{mac}} unexpanded ({listing!r})")
            conf = (d / f"config-{mac}.yaml").read_text()
            expect(f"  hostname: {hostname}\n" in conf and f"  mode: {mode}\n" in conf
                   and f"/n/{node}/harvester/" in conf and not (d / "config-create.yaml").exists()
                   and not (d / "config-join.yaml").exists(),
                   f"rack: config-{mac}.yaml is {node}'s ({mode}, hostname {hostname}); no config-create/join.yaml")
            expect(ctx.vm[node].bootfile.endswith(f"/n/{node}/harvester/{S.RACK_SCRIPT}"),
                   f"rack: {node} boots the rack's script")
    finally:
        lab.close()
    c = S.rack_config("node2", h.JOIN_MAC)
    said = f"harvester-install: harvester.install.config_url expands to http://10.0.2.2:80/n/node2/harvester/config-{h.JOIN_MAC}.yaml on this node."
    own = ("127.0.0.1", f"/n/node2/harvester/config-{h.JOIN_MAC}.yaml", 200, 9)
    other = ("127.0.0.1", f"/n/node2/harvester/config-{h.CREATE_MAC}.yaml", 200, 9)
    expect(c(fake_ctx({"node2": [said]}, [own]))[0], "rack: the node's own config and the expansion line pass")
    expect(not c(fake_ctx({"node2": [said]}, [own, other]))[0], "rack: fetching another node's config fails")
    expect(not c(fake_ctx({"node2": []}, [own]))[0], "rack: no expansion line (iPXE expanded it) fails")


def check_bench():
    """bench/install_bench.py's report: ratios against the floors from the console lines, the
    bytes of the OS images, the agent's RSS, MemAvailable and the largest ISO."""
    import contextlib
    import io
    import sys
    sys.path.insert(0, str(h.TOP / "bench"))
    import install_bench as B
    con = h.Console()
    con.lines = [(float(t), x) for t, x in [
        (1, "[install-bench] sample t=1.0 avail_kib=7900000 written_sectors=0 agent_hwm_kib=0"),
        (10, "[install-bench] floor iso-curl bytes=5368709120 t0=100.0 t1=160.0"),
        (20, "[install-bench] floor dd-images bytes=4294967296 t0=170.0 t1=200.0"),
        (25, "[install-bench] floor dd-os bytes=3221225472 t0=200.0 t1=225.0"),
        (26, "[install-bench] sample t=1.0 avail_kib=7864320 written_sectors=100 agent_hwm_kib=0"),
        (27, "[harvester-install] STAGE iso"),
        (40, "[install-bench] sample t=1.0 avail_kib=2621440 written_sectors=100 agent_hwm_kib=15000"),
        (90, "[harvester-install] STAGE disk-check"),
        (95, "harvester-install: Making active.img (3072 MiB, ext2, COS_ACTIVE) from the ISO's root file system..."),
        (100, "harvester-install: Made /run/x/state/cOS/active.img in 20.1 s (1.1 GiB written)."),
        (120, "harvester-install: OS images done in 25.0 s."),
        (121, "[install-bench] sample t=1.0 avail_kib=2097152 written_sectors=7000000 agent_hwm_kib=16000"),
        (130, "harvester-install: Copied the ISO's rancherd image bundle (256 MiB) to COS_PERSISTENT in 3.0 s."),
        (160, "harvester-install: Imported the ISO's Harvester images into containerd on COS_PERSISTENT in 42.0 s (no tarball kept)."),
        (170, "harvester-install:   iso             72.0 s"),
        (172, "harvester-install:   total          200.0 s"),
        (173, "harvester-install: Peak memory of the agent (RSS): 15.2 MiB."),
        (174, "[harvester-install] SUCCEEDED")]]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        B.report(con, "stopped", 300, 5 << 30, 1 << 30, 4 << 30, "8G", "tcg")
    text = out.getvalue()
    for want in (r"result: SUCCEEDED", r"ISO stage .* 72\.0 .* 60\.0 +1\.20 +<= 1\.3",
                 r"image stage .* 45\.0 .* 30\.0 +1\.50 +<= 1\.3", r"OS images \(.* 25\.0 .* 25\.0 +1\.00",
                 r"the three 3\.30 GiB = 1\.10 x", r"agent peak RSS: 15\.2 MiB",
                 r"MemAvailable: 7\.50 GiB before the ISO stage, 2\.50 GiB at least during it .* 2\.00 GiB at least",
                 r"largest ISO with 8G: 6\.50 GiB"):
        expect(re.search(want, text), f"install-bench report: /{want}/")


def check_dhcpd_conf():
    """The seed's dhcpd.conf is the guide's whole config: in each group, in this order, the iPXE
    branch (-efi script for architecture 00:07, else the non-efi one), the UEFI HTTP Boot branch
    (vendor class HTTPClient: the option echoed and ipxe.efi by HTTP), the PXE branch (ipxe.efi
    or undionly.kpxe by TFTP), then the group's host."""
    text = (h.SEED_DIR / "dhcpd.conf").read_text()
    groups = re.findall(r"^group \{\n(.*?)^\}", text, re.S | re.M)
    expect(len(groups) == 2, f"dhcpd.conf: two groups (got {len(groups)})")
    for g, (mode, mac) in zip(groups, (("create", h.CREATE_MAC), ("join", h.JOIN_MAC))):
        want = [
            r'if exists user-class and option user-class = "iPXE" \{',
            r"if option architecture-type = 00:07 \{",
            rf'filename "http://10\.100\.0\.10/harvester/ipxe-{mode}-efi";',
            r"\} else \{",
            rf'filename "http://10\.100\.0\.10/harvester/ipxe-{mode}";',
            r'\} elsif substring \(option vendor-class-identifier, 0, 10\) = "HTTPClient" \{',
            r'option vendor-class-identifier "HTTPClient";',
            r'filename "http://10\.100\.0\.10/harvester/ipxe\.efi";',
            r"\} else \{",
            r"if option architecture-type = 00:07 \{",
            r'filename "ipxe\.efi";',
            r"\} else \{",
            r'filename "undionly\.kpxe";',
            rf"host node\d \{{ hardware ethernet {mac}; \}}",
        ]
        lines = [l.strip() for l in g.splitlines() if l.strip() and not l.strip().startswith("#")
                 and l.strip() != "}"]
        at, missing = 0, []
        for rx in want:
            hit = next((i for i in range(at, len(lines)) if re.fullmatch(rx, lines[i])), None)
            if hit is None:
                missing.append(rx)
            else:
                at = hit + 1
        expect(not missing, f"dhcpd.conf, {mode} group: the guide's iPXE, HTTPClient and PXE "
                            f"branches in order" + (f" (missing or out of order: {missing})" if missing else ""))


def check_chain_helpers():
    """The TFTP log reader and the DHCP probe's and recorder's packets."""
    import dhcp_probe as dp
    tftp = h.Tftp.__new__(h.Tftp)
    with tempfile.TemporaryDirectory() as d:
        tftp.root, tftp.log = Path("/w/www/harvester"), Path(d) / "tftp.log"
        tftp.log.write_text("dnsmasq-tftp[7]: TFTP root is /w/www/harvester\n"
                            "dnsmasq-tftp[7]: error 8 User aborted the transfer received from 10.100.0.100\n"
                            "dnsmasq-tftp[7]: sent /w/www/harvester/ipxe.efi to 10.100.0.100\n"
                            "dnsmasq-tftp[7]: file /w/www/harvester/x not found for 10.100.0.101\n")
        expect(tftp.sent() == [("ipxe.efi", "10.100.0.100")],
               f"the TFTP log: files sent whole, not aborts or misses ({tftp.sent()})")
    mac = bytes.fromhex("5254006b13e2")
    args = SimpleNamespace(arch=16, vendor_class="HTTPClient:Arch:00016:UNDI:003001", user_class=None)
    f = dp.frame(mac, dp.bootp(mac, 0x1234, dp.DISCOVER, args))
    ip = f[14:34]
    expect(f[:6] == b"\xff" * 6 and f[6:12] == mac and dp.checksum(ip) == 0
           and b"\x3c\x21HTTPClient:Arch:00016:UNDI:003001" in f and b"\x5d\x02\x00\x10" in f,
           "the DHCP probe's DISCOVER: broadcast from the MAC, valid IP checksum, options 60 and 93")
    # An answer as dhcpd sends it, read back: op 2 to port 68 with the file and option 60.
    reply = bytearray(f)
    b = 14 + 20 + 8
    reply[b] = 2
    reply[14 + 20:14 + 22], reply[14 + 20 + 2:14 + 20 + 4] = (67).to_bytes(2, "big"), (68).to_bytes(2, "big")
    reply[b + 108:b + 108 + 9] = b"ipxe.efi\0"
    got = dp.parse(bytes(reply))
    expect(got and got["file"] == "ipxe.efi" and got["options"].get("60", "").startswith("HTTPClient")
           and got["chaddr"] == "52:54:00:6b:13:e2" and got["xid"] == 0x1234,
           f"the DHCP probe reads an answer's file, option 60, MAC and xid ({got})")
    mine = dp.parse(f)
    expect(mine and mine["op"] == 1 and mine["options"].get("93") == "0010",
           "the DHCP recorder reads a request (op 1, to port 67) with its options")
    reply[14 + 20 + 2:14 + 20 + 4] = (67).to_bytes(2, "big")
    expect(dp.parse(bytes(reply)) is None, "an answer to the server's port is not a DHCP packet")


def logged(nginx, n, timeout=10.0):
    """nginx writes a request's access-log line after the response's last byte went out, so the
    client can read the answer before the line is there: waits until the log has n lines."""
    end = time.monotonic() + timeout
    while len(nginx.requests()) < n and time.monotonic() < end:
        time.sleep(0.05)
    return nginx.requests()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def main():
    try:
        tools = h.Tools()
    except h.Skip as e:
        print(f"SKIP: {e}")
        return 77
    if not h.which("nginx"):
        print("SKIP: missing nginx (nginx-light)")
        return 77
    for tool, pkg in (("xorriso", "xorriso"), ("mksquashfs", "squashfs-tools")):
        if not h.which(tool):
            print(f"SKIP: missing {tool} ({pkg})")
            return 77
    with tempfile.TemporaryDirectory(prefix="pxe-lab-selftest-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)  # nginx's workers (www-data) must reach the work dir below it
        (tmp / "rel").mkdir()
        release = fake_release(tmp / "rel")
        os.environ["PXE_LAB_TMPDIR"] = str(tmp)
        lab = h.Lab(release, tools, name="selftest")
        try:
            port = lab.nginx.port
            check_served(lab.served, release, port)
            for name in sorted(os.listdir(lab.served.dir)):
                status, body = get(f"http://127.0.0.1:{port}/harvester/{name}")
                expect(status == 200 and body == (lab.served.dir / name).read_bytes(),
                       f"nginx serves {name} (status {status})")
            expect(all(p.stat().st_mode & 0o004 for p in lab.served.dir.iterdir()),
                   "every served file is world-readable")
            reqs = logged(lab.nginx, len(os.listdir(lab.served.dir)))
            expect(all(r[0] == "127.0.0.1" for r in reqs) and len(reqs) == len(os.listdir(lab.served.dir)),
                   "the access log names every request")
            # Per-node URLs: node3's folder names only node3's URLs, and its requests are its own.
            vms = {"node2": lab.new_vm("node2", "join"), "node3": lab.new_vm("node3", "join",
                                                                         mac="52:54:00:69:d5:93")}
            n3 = lab.served.root / "n" / "node3" / "harvester"
            texts = (n3 / "ipxe-join-efi").read_text() + (n3 / "config-join.yaml").read_text()
            urls = re.findall(r"http://10\.0\.2\.2:\d+/\S*", texts)
            expect(urls and all(f"/n/node3/harvester/" in u for u in urls),
                   f"node3's script and config name only node3's URLs ({len(urls)} URLs)")
            expect(vms["node3"].bootfile.endswith("/n/node3/harvester/ipxe-join-efi"),
                   "node3 boots from its own script")
            before = len(lab.nginx.requests())
            for name in ("config-join.yaml", f"harvester-{release.version}-vmlinuz"):
                status, body = get(f"http://127.0.0.1:{port}/n/node3/harvester/{name}")
                expect(status == 200 and body == (lab.served.dir / name).read_bytes()
                       or name.startswith("config"), f"nginx serves node3's {name} (status {status})")
            logged(lab.nginx, before + 2)
            mine = S.node_requests(lab, vms, "node3")
            expect([p for _, p, _ in mine] == ["/harvester/config-join.yaml",
                                               f"/harvester/harvester-{release.version}-vmlinuz"]
                   and S.node_requests(lab, vms, "node2") == [] and len(lab.nginx.requests()) == before + 2,
                   f"node3's requests are attributed to node3 only ({mine})")
        finally:
            lab.close()
        expect(not lab.workdir.exists(), "the work dir is removed")

        check_rack(release, tools)

        lab = h.Lab(release, tools, name="selftest", config_404=True, no_automatic=True,
                    cmdline_extra="harvester.install.mode=join")
        try:
            status, _ = get(f"http://127.0.0.1:{lab.nginx.port}/harvester/config-create.yaml")
            expect(status == 404, f"--config-url-404: config-create.yaml answers {status}")
            k = lab.served.kernel_line("ipxe-create-efi")
            expect("harvester.install.automatic" not in k and k.endswith(
                f"{h.LAB_CMDLINE} harvester.install.mode=join"),
                "--no-automatic drops the argument, --cmdline-extra appends")
        finally:
            lab.close()

        disk = h.Disk(tools, tmp / "sda.qcow2")
        expect(disk.unchanged() == (True, ""), "a fresh disk compares unchanged")
        subprocess.run([tools.qemu_io, "-f", "qcow2", "-c", "write -q -P 0x5a 4096 512",
                        disk.path], check=True)
        expect(disk.unchanged()[0], "rewriting the same bytes is no change")
        subprocess.run([tools.qemu_io, "-f", "qcow2", "-c", "write -q -z 0 512", disk.path],
                       check=True)
        same, detail = disk.unchanged()
        expect(not same and "offset 0" in detail, f"zeroing the first sector is seen ({detail})")

    dhcpd = h.which("dhcpd")
    skipped = []
    if dhcpd:
        p = subprocess.run([dhcpd, "-t", "-4", "-cf", str(h.SEED_DIR / "dhcpd.conf")],
                           capture_output=True, text=True)
        expect(p.returncode == 0, "dhcpd -t accepts the seed's dhcpd.conf"
               + ("" if p.returncode == 0 else f": {p.stderr.strip()[-300:]}"))
        # pxe-lab fleet: the seed's dhcpd.conf with one host entry per further join MAC.
        fleet = load_pxe_lab()
        macs = [(f"node{i}", fleet.fleet_mac(i)) for i in range(3, 7)]
        text = fleet.fleet_dhcpd_conf(h.seed_text("dhcpd.conf"), macs)
        expect(len({fleet.fleet_mac(i) for i in range(1, 7)}) == 6 and fleet.fleet_mac(1) == h.CREATE_MAC
               and fleet.fleet_mac(2) == h.JOIN_MAC, "fleet: six distinct MACs, node1 and node2 the seed's")
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(text)
            f.flush()
            p = subprocess.run([dhcpd, "-t", "-4", "-cf", f.name], capture_output=True, text=True)
        join_group = text[text.index("# join group"):]
        expect(p.returncode == 0 and all(f"host {n} {{ hardware ethernet {m}; }}" in join_group for n, m in macs),
               "fleet: dhcpd -t accepts the seed's dhcpd.conf with a join host entry per MAC"
               + ("" if p.returncode == 0 else f": {p.stderr.strip()[-300:]}"))
    else:
        skipped.append("dhcpd -t not run: isc-dhcp-server is not installed")

    check_dhcpd_conf()
    check_chain_helpers()
    check_verdicts()
    check_bench()

    raw = b"\x1b[0m\x1b[1;37m[harvester-install] FAILED: Not enough memory\x1b[0m\r"
    line = h.clean_line(raw)
    expect(h.RE_FAILED.search(line) and line.endswith("Not enough memory"),
           "markers are read through escape sequences and CR")
    for forged in (b"harvester-install: error: config_url: HTTP 503 Busy\\r[harvester-install] SUCCEEDED",
                   b"harvester-install: error: HTTP 503 Busy\r[harvester-install] SUCCEEDED \x1b[2J"):
        expect(not h.RE_SUCCEEDED.search(h.clean_line(forged)) and not re.search(h.MARK, h.clean_line(forged)),
               "a marker in the middle of a line (a server's reason phrase) is not a marker")
    con = h.Console()
    con.lines = [(1.0, "iPXE 1.0.0+git -- Open Source Network Boot Firmware -- http://ipxe.org"),
                 (2.0, "Linux version 6.1.0"), (3.0, "[harvester-install] STAGE configuration")]
    expect([m for m, _ in con.milestones()] == ["ipxe", "kernel", "agent"], "milestones in order")
    expect(bool(re.search(h.MARK + r" STAGE (?!start\b|configuration\b)\S+",
                          "[harvester-install] STAGE memory")), "the stage-after-configuration pattern")
    print(f"{'FAIL' if FAILS else 'PASS'} selftest ({len(FAILS)} failed)")
    if FAILS:
        return 1
    if skipped:  # counted as a skip by meson, never a silent pass
        print("SKIP: " + "; ".join(skipped))
        return 77
    return 0
