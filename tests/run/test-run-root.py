#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`harvester-install-agent run --no-reboot` outside the VMs (suite root): the whole `run` command
as root on loop devices, with a local ISO (file://) built here and a webhook listener on
127.0.0.1. One case per exit code 4-8, each a real failure (no fake tool):

  4 preflight   the ISO's server announces 2 TiB: it cannot fit in memory
  5 iso         install.iso_checksum is not the ISO's digest
  6 disk        install.device is a 20 GiB disk (the minimum is 60 GiB)
  7 disk-write  the install disk's image lies on a 12 MiB tmpfs (the file systems' metadata
                need 21 MiB): the loop device's writes fail, mkfs.ext4 says "Input/output error
                while writing out and closing file system" and fails; on a 1 MiB tmpfs mkfs.vfat
                fails first (its error on stderr, then its version banner on stdout)
  5 iso         also: the ISO's rootfs.squashfs is garbage: it does not mount (iso stage)
  8 install     the install stage cannot write COS_GRUB: on this test machine it cannot mount it
                (vfat: the host kernel has none, TEST-MACHINE.md); where vfat exists, the image's
                70 MiB shim.efi does not fit on the 64 MiB partition

Each case checks the exit code, the one "[harvester-install] FAILED: <stage>: ..." line (its
stage and the real error: never a tool's version banner), that the FAILED webhook arrived and no
SUCCEEDED one, and, for 7 and 8, that no partition table is left on the install disk; the FAILED
payload's install report and the PROGRESS events up to the failing stage. The agent
runs in a private mount namespace with its own /run (what it mounts is gone with it, and other
runs on the machine are not disturbed) and no console (/sys/class/tty/console/active hidden).
A successful install cannot run on this host (no vfat), so exit 0 is left to the VM scenarios.

Exit 77 (with the reason) without root, loop devices, unshare or the tools listed in REQUIRED.
"""

import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from testiso import make_iso, sha512  # noqa: E402

AGENT = os.environ.get("AGENT")
REQUIRED = ["losetup", "partx", "sfdisk", "wipefs", "mkfs.ext4", "mkfs.vfat", "mksquashfs", "xorriso", "unshare"]
GiB = 1 << 30
TOKEN = "run-test-token-Hq4u"
FAILS = []


def expect(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        FAILS.append(what)


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(77)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


class Listener:
    """Webhooks (any path below /hook/) recorded; /huge.iso announces 2 TiB and sends 64 KiB."""

    def __init__(self):
        self.log = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
                listener.log.append((self.command, self.path, body))
                self.send_response(200 if self.path.startswith("/hook/") else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST

            def do_GET(self):
                listener.log.append((self.command, self.path, ""))
                if self.path == "/huge.iso":
                    self.send_response(200)
                    self.send_header("Content-Length", str(2 << 40))
                    self.end_headers()
                    if self.command == "GET":
                        try:
                            self.wfile.write(b"\0" * 65536)
                        except OSError:
                            pass
                    return  # then the connection closes
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hooks(self, event):
        return [r for r in self.log if r[1] == f"/hook/{event}"]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Resources:
    """Loop devices and mounts of this test, released in reverse order whatever happens."""

    def __init__(self):
        self.loops, self.mounts = [], []

    def attach(self, img):
        dev = run(["losetup", "-f", "--show", img]).stdout.strip()
        self.loops.append(dev)
        return dev

    def mount_tmpfs(self, path, size):
        os.makedirs(path, exist_ok=True)
        run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path])
        self.mounts.append(path)

    def release(self):
        for dev in reversed(self.loops):
            subprocess.run(["partx", "-d", dev], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["losetup", "-d", dev], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for m in reversed(self.mounts):
            subprocess.run(["umount", m], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.loops, self.mounts = [], []


def config(work, listener, device, iso_url, checksum):
    text = f"""scheme_version: 1
token: {TOKEN}
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
  iso_url: {iso_url}
  iso_checksum: {checksum}
  device: {device}
  webhooks:
"""
    for ev in ("STARTED", "SUCCEEDED", "FAILED"):
        text += (f"    - event: {ev}\n      method: POST\n      url: http://127.0.0.1:{listener.port}/hook/{ev}\n"
                 f"      payload: '{{\"event\": \"{ev}\", \"hostname\": \"{{{{.Hostname}}}}\""
                 + (", \"report\": {{.Report}}" if ev != "STARTED" else "") + "}'\n")
    text += (f"    - event: PROGRESS\n      method: POST\n      url: http://127.0.0.1:{listener.port}/hook/PROGRESS\n"
             "      payload: '{\"stage\": \"{{.Stage}}\", \"percent\": \"{{.Percent}}\"}'\n")
    path = os.path.join(work, "config.yaml")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def run_agent(work, cfg):
    """The agent in a mount namespace of its own: a private /run, no console to write to."""
    cmdline = os.path.join(work, "cmdline")
    with open(cmdline, "w") as f:
        f.write("harvester.install.automatic=true ip=dhcp\n")
    script = ('set -e; mount --make-rprivate /; mount -t tmpfs -o mode=0755 tmpfs /run; '
              'mount --bind /dev/null /sys/class/tty/console/active; exec "$@"')
    env = dict(os.environ, HARVESTER_INSTALL_DISK_WAIT="2")
    return subprocess.run(["unshare", "-m", "--", "sh", "-c", script, "sh", AGENT, "--cmdline", cmdline,
                           "--config", cfg, "run", "--no-reboot"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=600)


RE_FAILED = re.compile(r"^\[harvester-install\] FAILED: (\S+): (.*)$", re.M)
BANNER = re.compile(r"\b(mkfs\.fat|mke2fs|mkfs\.ext4) [0-9.]+ \(")


def case(work, res, listener, code, stage, what, pattern, device, iso_url, checksum, table_gone=False):
    listener.log.clear()
    cfg = config(work, listener, device, iso_url, checksum)
    p = run_agent(work, cfg)
    out = p.stdout + p.stderr
    name = f"exit {code} ({stage}: {what})"
    expect(p.returncode == code, f"{name}: exit code {p.returncode}")
    failed = RE_FAILED.findall(out)
    expect(len(failed) == 1, f"{name}: one FAILED line ({len(failed)})")
    if failed:
        got_stage, why = failed[0]
        print(f"     FAILED: {got_stage}: {why[:300]}")
        expect(got_stage == stage, f"{name}: the FAILED line names stage {stage} (got {got_stage})")
        expect(re.search(pattern, why) is not None, f"{name}: the FAILED line says /{pattern}/")
        expect(not BANNER.search(why), f"{name}: the FAILED line is not a tool's version banner")
        expect(TOKEN not in out, f"{name}: the token is in no message")
    if p.returncode != code or not failed:
        print(out[-4000:])
    expect(len(listener.hooks("FAILED")) == 1 and not listener.hooks("SUCCEEDED"),
           f"{name}: the FAILED webhook arrived (and no SUCCEEDED): {[r[1] for r in listener.log]}")
    check_report(name, listener, stage, failed[0][1] if failed else None, written=table_gone)
    check_progress(name, listener, stage)
    if stage == "install" and failed and "shim.efi" in failed[0][1]:  # COS_GRUB mounted (vfat): failed at the commit
        expect("The install report is in COS_OEM/install/report.json." in out,
               f"{name}: the install report was written to COS_OEM before the commit point")
    if table_gone:
        pt = subprocess.run(["wipefs", "--noheadings", "-O", "TYPE", device], stdout=subprocess.PIPE, text=True)
        types = pt.stdout.split()
        expect(not any(t in ("gpt", "PMBR", "dos") for t in types),
               f"{name}: no partition table left on {device} (wipefs: {types or 'nothing'})")
        parts = [d for d in os.listdir("/sys/block/" + os.path.basename(device))
                 if d.startswith(os.path.basename(device) + "p")]
        expect(not parts, f"{name}: the kernel knows no partition of {device} ({parts})")
    return p


def check_report(name, listener, stage, why, written):
    """The FAILED webhook's {{.Report}} (README, "Webhook events and the install report"): result
    failed with the FAILED line, the stages up to the failing one timed, the disks once checked."""
    hooks = listener.hooks("FAILED")
    if len(hooks) != 1:
        return
    try:
        rep = json.loads(hooks[0][2])["report"]
    except (ValueError, KeyError, TypeError) as e:
        expect(False, f"{name}: the FAILED payload carries the report as JSON ({e}): {hooks[0][2][:300]!r}")
        return
    stages = [s.get("name") for s in rep.get("stages", [])]
    want = ["configuration", "memory", "iso", "disk-check", "disk-write", "install"]
    expect(rep.get("result") == "failed" and why is not None and rep.get("failure") == f"{stage}: {why}",
           f"{name}: the report says failed with the FAILED line ({rep.get('result')!r}, {rep.get('failure')!r})")
    expect(stages == want[:want.index(stage) + 1] and all(s.get("seconds") is not None for s in rep["stages"]),
           f"{name}: the report's stages end with {stage}, each timed ({rep.get('stages')})")
    expect(rep.get("mode") == "create" and TOKEN not in hooks[0][2],
           f"{name}: the report has the mode and no token")
    if written:
        disk = next((d for d in rep.get("disks", []) if d.get("role") == "install"), {})
        expect(disk.get("size", 0) > 0 and disk.get("node"), f"{name}: the report names the install disk ({disk})")


def check_progress(name, listener, stage):
    """The PROGRESS hook: each stage's start up to the failing one, in order; in the iso stage the
    ISO's percents rising to 100 once it is verified; nothing after FAILED."""
    want = ["configuration", "memory", "iso", "disk-check", "disk-write", "install"]
    events, last = [], -1
    for i, r in enumerate(listener.log):
        if r[1] == "/hook/PROGRESS":
            events.append(json.loads(r[2]))
            last = i
    starts = [e["stage"] for e in events if not e["percent"]]
    percents = [int(e["percent"]) for e in events if e["percent"]]
    failed_at = next((i for i, r in enumerate(listener.log) if r[1] == "/hook/FAILED"), -1)
    expect(starts == want[:want.index(stage) + 1] and 0 <= last < failed_at,
           f"{name}: PROGRESS at each stage's start up to {stage}, all before FAILED ({starts})")
    past_iso = want.index(stage) > want.index("iso")  # (an iso-stage failure may come after 100)
    expect(percents == sorted(set(percents)) and (percents[-1:] == [100] or not past_iso),
           f"{name}: the ISO's percents rise{' to 100' if past_iso else ''} ({percents})")


def on_signal(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through main's finally: loops and mounts released


def main():
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    if os.geteuid() != 0:
        skip("needs root (loop devices, mount namespaces)")
    if not AGENT or not os.access(AGENT, os.X_OK):
        print("AGENT must name the built harvester-install-agent")
        return 1
    missing = [t for t in REQUIRED if not shutil.which(t)]
    if missing:
        skip("missing tools: " + " ".join(missing) + " (Debian: util-linux fdisk e2fsprogs dosfstools "
             "squashfs-tools xorriso)")
    if not os.path.exists("/dev/loop-control"):
        skip("no loop devices")
    if subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        skip("cannot make a mount namespace")

    base = os.environ.get("TMPDIR") or "/var/tmp"
    work = tempfile.mkdtemp(prefix="test-run-root.", dir=base)
    res = Resources()
    listener = Listener()
    try:
        iso = make_iso(work, "good")
        iso_url = "file://" + iso
        good = sha512(iso)

        # 4: the server announces a 2 TiB ISO: it cannot be held in memory.
        big = os.path.join(work, "big.img")
        with open(big, "wb") as f:
            f.truncate(300 * GiB)
        dev = res.attach(big)
        case(work, res, listener, 4, "iso", "ISO larger than memory", r"(?i)memory|tmpfs|does not fit|room",
             dev, f"http://127.0.0.1:{listener.port}/huge.iso", good)

        # 5: the digest is not the ISO's.
        case(work, res, listener, 5, "iso", "checksum mismatch",
             r"checksum mismatch for file://\S+good\.iso: expected sha512:(0123456789abcdef){8}, got " + good,
             dev, iso_url, "sha512:" + "0123456789abcdef" * 8)

        # 6: a 20 GiB install disk.
        small = os.path.join(work, "small.img")
        with open(small, "wb") as f:
            f.truncate(20 * GiB)
        sdev = res.attach(small)
        case(work, res, listener, 6, "disk-check", "disk too small", r"less than Harvester's minimum of 60 GiB",
             sdev, iso_url, good)

        # 7: the image of the install disk lies on a 12 MiB tmpfs: the GPT and the small file
        # systems fit, the big ones' metadata does not, and mkfs.ext4 fails for real.
        res.mount_tmpfs(os.path.join(work, "full"), "12m")
        cramped = os.path.join(work, "full", "disk.img")
        with open(cramped, "wb") as f:
            f.truncate(300 * GiB)
        cdev = res.attach(cramped)
        case(work, res, listener, 7, "disk-write", "mkfs.ext4 runs out of room",
             r"mkfs\.ext4 failed for " + re.escape(cdev) + r"p\d \(exit status \d+\): (mkfs\.ext4|mke2fs): "
             r"[^:]*(Input/output error|No space left)", cdev, iso_url, good,
             table_gone=True)

        # 7 again, on a 1 MiB tmpfs: mkfs.vfat (COS_GRUB, the first) fails. It prints its error
        # on stderr, then its banner "mkfs.fat 4.2 (...)" on stdout at exit: the FAILED line must
        # carry the error, not the banner (it once said "FAILED: disk-write:   mkfs.fat 4.2 ...").
        res.mount_tmpfs(os.path.join(work, "tiny"), "1m")
        tiny = os.path.join(work, "tiny", "disk.img")
        with open(tiny, "wb") as f:
            f.truncate(300 * GiB)
        tdev = res.attach(tiny)
        case(work, res, listener, 7, "disk-write", "mkfs.vfat runs out of room",
             r"mkfs\.vfat failed for " + re.escape(tdev) + r"p1 \(exit status \d+\): mkfs\.(vfat|fat): .*"
             r"(Input/output error|No space left)", tdev, iso_url, good, table_gone=True)

        # 5 again: a rootfs.squashfs that does not mount fails in the iso stage, before any write.
        isog = make_iso(work, "garbage-rootfs", rootfs_garbage=True)
        case(work, res, listener, 5, "iso", "rootfs.squashfs does not mount", r"Cannot mount .*rootfs",
             dev, "file://" + isog, sha512(isog))

        # 8: the install stage fails after the disk was written (see the docstring).
        iso8 = make_iso(work, "big-shim", big_shim=True)
        case(work, res, listener, 8, "install", "the install stage cannot write COS_GRUB",
             r"Cannot mount .*COS_GRUB|Cannot mount '/dev/\S+p1'|Cannot copy .*shim\.efi.*No space left",
             dev, "file://" + iso8, sha512(iso8), table_gone=True)
    finally:
        listener.stop()
        res.release()
        subprocess.run(["rm", "-rf", "--one-file-system", work])
    print(f"{'FAIL' if FAILS else 'PASS'} run outside the VMs ({len(FAILS)} failed)")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
