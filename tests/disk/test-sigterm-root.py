#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Signals during `harvester-install-agent run --no-reboot` (suite root): the agent, on a loop device
with a local ISO (file://, or a stalling server on 127.0.0.1), is stopped mid-install and must end
through the normal failure path: exit code of the stage, one "[harvester-install] FAILED: <stage>:
stopped by SIG..." line, the FAILED webhook (and no SUCCEEDED), no partition table left.

  SIGTERM in disk-write: the agent is frozen (SIGSTOP) right after it printed "Formatting ...p2",
          SIGTERM is queued, then SIGCONT: the signal lands while partitions are being formatted.
  SIGHUP in iso:         the ISO's server sends 64 KiB and stalls; the signal ends the download.

The STARTED webhook's payload carries the install disk's identity ({{.InstallDiskNode}},
{{.InstallDiskSize}}). The agent runs in a mount namespace with its own /run and no console, in a
session of its own (as under systemd). Exit 77 without root, loop devices or the tools.
"""

import http.server
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
REQUIRED = ["losetup", "wipefs", "mkfs.ext4", "mkfs.vfat", "mksquashfs", "xorriso", "unshare"]
GiB = 1 << 30
FAILS = []


def expect(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        FAILS.append(what)


def run(cmd):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Server:
    """Webhooks (/hook/<EVENT>) recorded; /slow.iso announces 100 MiB, sends 64 KiB, stalls."""

    def __init__(self):
        self.log = []
        self.stalled = threading.Event()
        self.release = threading.Event()
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
                srv.log.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                if self.path != "/slow.iso":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(100 << 20))
                self.end_headers()
                try:
                    self.wfile.write(b"\0" * 65536)
                    self.wfile.flush()
                except OSError:
                    return
                srv.stalled.set()
                srv.release.wait(120)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def hooks(self, event):
        return [b for p, b in self.log if p == "/hook/" + event]

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def write_config(work, srv, device, iso_url, checksum):
    text = f"""scheme_version: 1
token: sigterm-test-token-Zq8
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
        text += (f"    - event: {ev}\n      method: POST\n      url: http://127.0.0.1:{srv.port}/hook/{ev}\n"
                 f"      payload: '{{{{.InstallDisk}}}} {{{{.InstallDiskNode}}}} {{{{.InstallDiskSize}}}}'\n")
    path = os.path.join(work, "config.yaml")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def start_agent(work, cfg):
    cmdline = os.path.join(work, "cmdline")
    with open(cmdline, "w") as f:
        f.write("harvester.install.automatic=true ip=dhcp\n")
    script = ('set -e; mount --make-rprivate /; mount -t tmpfs -o mode=0755 tmpfs /run; '
              'mount --bind /dev/null /sys/class/tty/console/active; exec "$@"')
    env = dict(os.environ, HARVESTER_INSTALL_DISK_WAIT="2")
    # A session of its own, as systemd starts it: the agent leads its process group.
    return subprocess.Popen(["unshare", "-m", "--", "sh", "-c", script, "sh", AGENT, "--cmdline", cmdline,
                             "--config", cfg, "run", "--no-reboot"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)


def finish(p, out_lines):
    """Reads the rest of the output; the agent gets 180 s to end (it must not hang)."""
    t = threading.Thread(target=lambda: out_lines.extend(p.stdout), daemon=True)
    t.start()
    try:
        p.wait(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        expect(False, "the agent ended within 180 s of the signal")
    t.join(10)
    return "".join(out_lines)


def check(name, p, out, srv, device, code, stage, sig):
    failed = re.findall(r"^\[harvester-install\] FAILED: (\S+): (.*)$", out, re.M)
    expect(p.returncode == code, f"{name}: exit code {p.returncode} (want {code})")
    expect(len(failed) == 1, f"{name}: one FAILED line ({len(failed)})")
    if failed:
        print("     FAILED: %s: %s" % (failed[0][0], failed[0][1][:300]))
        expect(failed[0][0] == stage, f"{name}: the FAILED line names stage {stage}")
        expect(f"stopped by {sig}" in failed[0][1], f"{name}: the FAILED line says stopped by {sig}")
    if p.returncode != code or len(failed) != 1:
        print(out[-4000:])
    expect(len(srv.hooks("FAILED")) == 1 and not srv.hooks("SUCCEEDED"),
           f"{name}: the FAILED webhook arrived, no SUCCEEDED ({[x[0] for x in srv.log]})")
    started = srv.hooks("STARTED")
    with open(os.path.join("/sys/block", os.path.basename(device), "size")) as f:
        want = f"{device} {device} {int(f.read()) * 512}"
    expect(started == [want], f"{name}: the STARTED payload carries the disk's identity ({started} == [{want!r}])")
    types = subprocess.run(["wipefs", "--noheadings", "-O", "TYPE", device], stdout=subprocess.PIPE, text=True).stdout.split()
    expect(not types, f"{name}: nothing left on {device} (wipefs: {types or 'nothing'})")
    parts = [d for d in os.listdir("/sys/block/" + os.path.basename(device)) if d.startswith(os.path.basename(device) + "p")]
    expect(not parts, f"{name}: the kernel knows no partition of {device} ({parts})")


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (loop devices, mount namespaces)")
        return 77
    if not AGENT or not os.access(AGENT, os.X_OK):
        print("AGENT must name the built harvester-install-agent")
        return 1
    missing = [t for t in REQUIRED if not shutil.which(t)]
    if missing or not os.path.exists("/dev/loop-control") or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        print("SKIP: missing " + (" ".join(missing) or "loop devices or mount namespaces"))
        return 77

    work = tempfile.mkdtemp(prefix="test-sigterm-root.", dir=os.environ.get("TMPDIR") or "/var/tmp")
    srv = Server()
    dev = None
    try:
        iso = make_iso(work, "test")
        digest = sha512(iso)
        img = os.path.join(work, "disk.img")
        with open(img, "wb") as f:
            f.truncate(100 * GiB)
        dev = run(["losetup", "-f", "--show", img]).stdout.strip()

        # SIGTERM while the partitions are formatted.
        cfg = write_config(work, srv, dev, "file://" + iso, digest)
        p = start_agent(work, cfg)
        lines, sent = [], False
        for line in p.stdout:
            lines.append(line)
            if re.match(r"^harvester-install: Formatting %sp2 " % re.escape(dev), line):
                os.kill(p.pid, signal.SIGSTOP)
                os.kill(p.pid, signal.SIGTERM)
                os.kill(p.pid, signal.SIGCONT)
                sent = True
                break
        expect(sent, "SIGTERM in disk-write: the agent reached the formatting of partition 2")
        out = finish(p, lines)
        check("SIGTERM in disk-write", p, out, srv, dev, 7, "disk-write", "SIGTERM")

        # SIGHUP while the ISO is downloaded (the server stalls after 64 KiB).
        srv.log.clear()
        cfg = write_config(work, srv, dev, f"http://127.0.0.1:{srv.port}/slow.iso", digest)
        p = start_agent(work, cfg)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True)
        reader.start()
        got = srv.stalled.wait(120)
        expect(got, "SIGHUP in iso: the download began")
        os.kill(p.pid, signal.SIGHUP)
        try:
            p.wait(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            expect(False, "SIGHUP in iso: the agent ended within 180 s of the signal")
        reader.join(10)
        srv.release.set()
        check("SIGHUP in iso", p, "".join(lines), srv, dev, 5, "iso", "SIGHUP")
    finally:
        srv.stop()
        if dev:
            subprocess.run(["partx", "-d", dev], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["losetup", "-d", dev], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", "--one-file-system", work])
    print(f"{'FAIL' if FAILS else 'PASS'} signals during run ({len(FAILS)} failed)")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
