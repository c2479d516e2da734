# SPDX-License-Identifier: Apache-2.0
"""Quick checks of the lab itself, without a VM (`qemu/pxe-lab selftest`, meson suite "unit"):
the served folder says what the seed says, nginx serves it to anyone (world-readable), the seed's
dhcpd.conf is valid for ISC dhcpd, the disk comparison sees a change, the console cleaner reads
markers through escape sequences. Exit 77 when nginx or qemu-img are missing."""

import os
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import harness as h

FAILS = []


def expect(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        FAILS.append(what)


def fake_release(d):
    v = "v9.9.9-selftest"
    names = [f"harvester-{v}-vmlinuz-amd64", f"harvester-{v}-initrd-amd64",
             f"harvester-{v}-rootfs-amd64.squashfs", f"harvester-{v}-amd64.iso",
             f"harvester-{v}-amd64.sha512"]
    for i, n in enumerate(names):
        (d / n).write_bytes(os.urandom(1000 + i))
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
    for alias, target in ((f"harvester-{v}-vmlinuz", "vmlinuz"), (f"harvester-{v}-initrd", "initrd"),
                          ("rootfs.squashfs", "rootfs")):
        expect((served.dir / alias).read_bytes() == (release.dir / release.files[target]).read_bytes(),
               f"{alias}: the release's {release.files[target]}")


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
            expect(all(r[0] == "127.0.0.1" for r in lab.nginx.requests())
                   and len(lab.nginx.requests()) == len(os.listdir(lab.served.dir)),
                   "the access log names every request")
        finally:
            lab.close()
        expect(not lab.workdir.exists(), "the work dir is removed")

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
    if dhcpd:
        p = subprocess.run([dhcpd, "-t", "-4", "-cf", str(h.SEED_DIR / "dhcpd.conf")],
                           capture_output=True, text=True)
        expect(p.returncode == 0, "dhcpd -t accepts the seed's dhcpd.conf"
               + ("" if p.returncode == 0 else f": {p.stderr.strip()[-300:]}"))
    else:
        print("skip dhcpd -t (isc-dhcp-server missing)")

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
    return 1 if FAILS else 0
