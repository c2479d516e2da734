# SPDX-License-Identifier: Apache-2.0
"""The VM scenarios of the meson suite "qemu" (qemu/meson.build runs `qemu/pxe-lab test NAME`).

A scenario boots one or more lab VMs through the seed's PXE chain and then checks what they
printed on their serial consoles (the agent's "[harvester-install] ..." markers and messages, the
test OS's "[test-os] ..." lines), what nginx served to whom, what dhcpd leased, and whether the
disks were left byte-for-byte unchanged. Each check is listed with ok/FAIL; the serial log of a
failed scenario is kept in qemu/logs/<name>/ and its tail printed.
"""

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import harness as h

# Any STAGE marker but the first two: the configuration was fetched, merged and valid.
RE_PAST_CONFIG = h.MARK + r" STAGE (?!start\b|configuration\b)\S+"
# ... and past the memory check.
RE_PAST_MEMORY = h.MARK + r" STAGE (?!start\b|configuration\b|memory\b)\S+"
# The end of a boot that went wrong or stopped: no need to wait for the timeout.
STOP_ALWAYS = [
    h.RE_FAILED.pattern,
    r"Kernel panic - not syncing",
    r"reboot: System halted",
    r"reboot: Power down",
    r"You are in emergency mode|Entering emergency mode",
    r"\[test-os\] done",
]


class Node:
    """One VM of a scenario."""

    def __init__(self, name, mode="create", mem="8G", mac=None, data_disk=None, stop=(),
                 boot_disk=False, flow=None, actions=(), netboot="ipxe", firmware="uefi"):
        self.name, self.mode, self.mem, self.mac = name, mode, mem, mac
        self.netboot = netboot  # harness.VM.netboot: the network boot client that starts
        self.firmware = firmware  # "uefi" (OVMF) or "bios" (SeaBIOS, the non-efi iPXE script)
        self.data_disk = data_disk
        self.stop = list(stop)
        self.actions = list(actions)  # [(console pattern, fn(vm))] during the PXE boot
        self.boot_disk = boot_disk  # after SUCCEEDED + reboot: boot the installed disk (issue 6)
        # flow(ctx, node, vm, accel, cpu, timeout, grace, live): boots the VM its own way
        # (pxe-first, power-loss) instead of "PXE install, then maybe boot the disk".
        self.flow = flow


class Scenario:
    """config_edit(mode, text) rewrites the served config-<mode>.yaml; with listener=True a
    webhook listener runs and config_edit is called as config_edit(mode, text, lab).
    no_rootfs_iso: also serve NO_ROOTFS_ISO, the release ISO without rootfs.squashfs.
    flavour: the served folder's installer initrd, "systemd" or "hook" (Release.served)."""

    def __init__(self, name, title, nodes, checks, way="user", cmdline_extra="",
                 no_automatic=False, config_404=False, config_edit=None, timeout=600, grace=3.0,
                 listener=False, no_rootfs_iso=False, prepare=None, tftp=False,
                 flavour="systemd"):
        self.name, self.title, self.nodes, self.checks = name, title, nodes, checks
        self.prepare = prepare  # prepare(ctx): after the VMs are made, before they boot
        self.way, self.cmdline_extra = way, cmdline_extra
        self.no_automatic, self.config_404, self.config_edit = no_automatic, config_404, config_edit
        self.timeout, self.grace = timeout, grace
        self.listener, self.no_rootfs_iso = listener, no_rootfs_iso
        self.tftp = tftp  # the dhcpd way's TFTP server (harness.Tftp)
        self.flavour = flavour  # the installer initrd: harvester-pxe-prepare's systemd or hook


class Ctx:
    """What the checks look at."""

    def __init__(self, lab):
        self.lab = lab
        self.vm = {}        # node name -> harness.VM
        self.outcome = {}   # node name -> (reason, seconds) of the PXE boot
        self.disk_boot = {}  # node name -> (reason, seconds) of the boot from the installed disk

    def console(self, node):
        return self.vm[node].console

    def requests(self, node=None, full=False):
        """[(addr, path, status)] (+ bytes sent with full=True) that nginx answered; with node,
        only the node's: with user-mode networking every node has URLs of its own
        (/n/<node>/harvester/..., harness.Served.node_dir), returned here as /harvester/...; the
        dhcpd way attributes by the addresses dhcpd leased to the node's MAC."""
        return node_requests(self.lab, self.vm, node, full)

    def hooks(self, node=None):
        """The webhook listener's requests, with node only those to the node's own URLs
        (/hook/n/<node>/..., returned as /hook/...)."""
        return node_hooks(self.lab.listener.requests(), node)


def node_requests(lab, vms, node=None, full=False):
    reqs = lab.nginx.requests_full()
    if node is not None:
        if lab.dhcpd:
            mac = vms[node].mac
            ips = {ip for ip, m in lab.dhcpd.acks() if m == mac}
            reqs = [r for r in reqs if r[0] in ips]
        else:
            prefix = f"/n/{node}/harvester/"
            reqs = [(a, "/harvester/" + p[len(prefix):], st, n) for a, p, st, n in reqs
                    if p.startswith(prefix)]
    return reqs if full else [r[:3] for r in reqs]


def node_hooks(reqs, node=None):
    if node is None:
        return reqs
    prefix = f"/hook/n/{node}/"
    return [dict(r, path="/hook/" + r["path"][len(prefix):]) for r in reqs if r["path"].startswith(prefix)]


# --- Checks: each returns (ok, detail) ------------------------------------------------------------

def check(what):
    def deco(fn):
        fn.what = what
        return fn
    return deco


def served(node, name, status=200):
    @check(f"{node}: nginx answered GET /harvester/{name} with {status}")
    def fn(ctx):
        name_ = name.replace("<version>", ctx.lab.release.version)
        got = [s for _, p, s in ctx.requests(node) if p == f"/harvester/{name_}"]
        return status in got, f"answers: {got or 'never requested'}"
    return fn


def not_requested(node, name):
    @check(f"{node}: /harvester/{name} was never requested")
    def fn(ctx):
        got = [s for _, p, s in ctx.requests(node) if p == f"/harvester/{name}"]
        return not got, f"answers: {got}"
    return fn


def line(node, pattern, what):
    rx = re.compile(pattern)

    @check(f"{node}: {what}")
    def fn(ctx):
        hit = ctx.console(node).find(rx)
        return bool(hit), (f"at {hit[0]:.1f} s: {hit[1].string.strip()[:200]}" if hit
                           else f"no console line matches /{pattern}/")
    return fn


def no_line(node, pattern, what):
    rx = re.compile(pattern)

    @check(f"{node}: {what}")
    def fn(ctx):
        hit = ctx.console(node).find(rx)
        return not hit, (f"at {hit[0]:.1f} s: {hit[1].string.strip()[:200]}" if hit else "")
    return fn


def pxe_chain(node, mode, efi=True, script=None):
    """Firmware -> iPXE (DHCP gave it the -efi script; on BIOS the non-efi one; or `script`) ->
    the seed's kernel and initrd over HTTP -> Debian's kernel -> the dracut initrd."""
    return [
        served(node, script or (f"ipxe-{mode}-efi" if efi else f"ipxe-{mode}")),
        served(node, "harvester-<version>-vmlinuz"),
        served(node, "harvester-<version>-initrd"),
        line(node, r"\[script\]", "iPXE ran the script"),
        line(node, r"Linux version \d", "the kernel booted"),
        line(node, r"Welcome to .*\(Initramfs\)|Run /init as init process", "the initrd started"),
    ]


def agent_started(node, unit=True):
    return [
        line(node, r"Harvester automatic install", "systemd started the agent's unit") if unit else
        line(node, r"harvester-install: network is up, running harvester-install-agent",
             "the initqueue/online hook ran the agent"),
        line(node, h.MARK + r" STAGE configuration", "the agent began: STAGE configuration"),
    ]


def past_config(node):
    return line(node, RE_PAST_CONFIG,
                "the configuration was fetched, merged and valid: a later STAGE began")


def disks_unchanged(node):
    @check(f"{node}: every disk is byte-for-byte unchanged (qemu-img compare)")
    def fn(ctx):
        problems = []
        for disk in ctx.vm[node].disks:
            same, detail = disk.unchanged()
            if not same:
                problems.append(f"{disk.path.name}: {detail}")
        return not problems, "; ".join(problems)
    return fn


def failed_in(node, stage, pattern, what):
    """The agent's FAILED line for `stage`, read at the start of a console line
    ("[harvester-install] FAILED: <stage>: <why> ..."), whose text after the stage matches
    pattern. Any other line holding the words (the plan, a warning, a debug line), another
    stage's failure, or a marker in the middle of a line does not count; every FAILED line at a
    line start must be this one."""
    rx = re.compile(rf"^{h.MARK} FAILED: {re.escape(stage)}: .*?(?:{pattern})")
    any_failed = re.compile(rf"^{h.MARK} FAILED: ")

    @check(f"{node}: FAILED in stage {stage}, {what}")
    def fn(ctx):
        lines = [text for _, text in ctx.console(node).lines if any_failed.search(text)]
        if not lines:
            return False, "no line starts with the FAILED marker"
        bad = [text for text in lines if not rx.search(text)]
        if bad:
            return False, f"a FAILED line that is not /{rx.pattern}/: {bad[0][:300]}"
        return True, lines[0][:240]
    fn.stage, fn.pattern = stage, pattern
    return fn


def stopped_before(node, pattern, what):
    return no_line(node, pattern, what)


def create_outcome(node):
    """The agent completes the install, says so, and reboots by itself."""
    @check(f"{node}: the install SUCCEEDED, then the VM rebooted")
    def fn(ctx):
        con = ctx.console(node)
        if con.find(h.RE_SUCCEEDED):
            reason = ctx.outcome[node][0]
            return reason == "exited", ("SUCCEEDED, then the VM rebooted" if reason == "exited"
                                        else f"SUCCEEDED, but no reboot ({reason})")
        failed = con.find(h.RE_FAILED)
        if failed:
            return False, f"FAILED: {failed[1].group(1)[:300]}"
        return False, f"neither SUCCEEDED nor FAILED ({ctx.outcome[node][0]})"
    return fn


def dhcp_acked(node):
    @check(f"{node}: ISC dhcpd acknowledged its MAC")
    def fn(ctx):
        mac = ctx.vm[node].mac
        acks = [ip for ip, m in ctx.lab.dhcpd.acks() if m == mac]
        return bool(acks), f"{mac} -> {sorted(set(acks))}" if acks else f"no DHCPACK to {mac}"
    return fn


def vm_ended(node, what="the VM came to an end (not the timeout)"):
    @check(f"{node}: {what}")
    def fn(ctx):
        reason, secs = ctx.outcome[node]
        return reason != "timeout", f"{reason} after {secs:.0f} s"
    return fn


# --- Issue 6: the installed disk, webhooks ----------------------------------------------------

# What the lab's configs hold (qemu/seed/config-*.yaml) and what the create scenarios add.
# The seed's token is the word "token", which any binary holds (GRUB's loader does): the lab's
# configs get one that only the install can have put on the disk, so that check-disk's secret
# scan means something.
TOKEN = "e2e-token-Zq7vK2pX9mW4"
PASSWORD = "p@ssword"
SERVER_URL = "https://10.100.0.99:443"
HOOK_USER, HOOK_PASSWORD = "lab", "hook-secret-e2e"
GUEST_IPV4 = "10.0.2.15"  # QEMU user-mode networking's first DHCP address
NO_ROOTFS_ISO = "harvester-no-rootfs-amd64.iso"
WRONG_SHA512 = "sha512:" + "0123456789abcdef" * 8
RE_STAGE_TIME = re.compile(r"^harvester-install:\s+([a-z][a-z-]*)\s+(\d+\.\d) s$")


def lab_token(mode, text, then=None):
    """config_edit: the token line set to TOKEN (both seed configs have "token: token")."""
    text, n = re.subn(r"^token: token\b.*$", f"token: {TOKEN}", text, flags=re.M)
    if n != 1:
        raise h.LabError(f"config-{mode}.yaml: no 'token: token' line to replace")
    return then(mode, text) if then else text


def with_token(then=None):
    return lambda mode, text: lab_token(mode, text, then)


def with_webhooks(events=("STARTED", "SUCCEEDED", "FAILED"), then=None):
    """config_edit(mode, text, lab): install.webhooks to the lab's listener, one per event, POST,
    a JSON payload with every template field, a header and basic auth; then `then` (a plain
    config_edit) if given."""
    def edit(mode, text, lab):
        text = lab_token(mode, text, then)
        hooks = ["  webhooks:"]
        for ev in events:
            hooks += [
                f"  - event: {ev}",
                "    method: POST",
                f"    url: {lab.listener.url(ev)}/{{{{.Hostname}}}}",
                "    payload: '{\"event\": \"" + ev + "\", \"hostname\": \"{{.Hostname}}\", "
                "\"mac\": \"{{.MACAddr}}\", \"ipv4\": \"{{.IPAddrV4}}\", "
                "\"ipv6\": \"{{.IPAddrV6}}\", \"disk\": \"{{.InstallDisk}}\", "
                "\"disk_by_id\": \"{{.InstallDiskByID}}\", \"disk_serial\": \"{{.InstallDiskSerial}}\", "
                "\"disk_size\": \"{{.InstallDiskSize}}\", \"stage\": \"{{.Stage}}\", \"percent\": \"{{.Percent}}\""
                + (", \"report\": {{.Report}}" if ev in ("SUCCEEDED", "FAILED") else "") + "}'",
                "    headers:",
                "      Content-Type:",
                "      - application/json",
                "    basic_auth:",
                f"      user: {HOOK_USER}",
                f"      password: {HOOK_PASSWORD}",
            ]
        return text.rstrip("\n") + "\n" + "\n".join(hooks) + "\n"
    return edit


def webhook(node, event, hostname):
    """The listener got `event` once, POSTed to .../<event>/<hostname> with basic auth and the
    templated payload: hostname, the VM's MAC, its IPv4, an IPv6 field."""
    @check(f"{node}: webhook {event} received with the templated hostname, the VM's MAC and "
           f"IPv4 {GUEST_IPV4}")
    def fn(ctx):
        mac = ctx.vm[node].mac
        reqs = [r for r in ctx.hooks(node) if r["path"].startswith(f"/hook/{event}/")]
        if not reqs:
            got = [f"{r['method']} {r['path']}" for r in ctx.lab.listener.requests()]
            return False, f"no {event} request; the listener got: {got or 'nothing'}"
        mine = []
        for r in reqs:
            try:
                body = json.loads(r["body"])
            except ValueError:
                return False, f"payload is not JSON: {r['body'][:200]!r}"
            if body.get("mac", "").lower() == mac:
                mine.append((r, body))
        if len(mine) != 1:
            return False, f"{len(mine)} {event} requests with MAC {mac} (want 1): {[r['body'] for r in reqs]}"
        r, body = mine[0]
        auth = "Basic " + base64.b64encode(f"{HOOK_USER}:{HOOK_PASSWORD}".encode()).decode()
        want = {"event": event, "hostname": hostname, "mac": mac, "ipv4": GUEST_IPV4}
        problems = [f"{k}={body.get(k)!r} (want {v!r})" for k, v in want.items() if body.get(k) != v]
        if "ipv6" not in body:
            problems.append("no ipv6 field")
        if r["method"] != "POST":
            problems.append(f"method {r['method']}")
        if r["path"] != f"/hook/{event}/{hostname}":
            problems.append(f"path {r['path']} (want /hook/{event}/{hostname})")
        if r["headers"].get("authorization") != auth:
            problems.append("no or wrong basic auth")
        if r["headers"].get("content-type") != "application/json":
            problems.append(f"content-type {r['headers'].get('content-type')!r}")
        return not problems, "; ".join(problems) or r["body"]
    return fn


AGENT_STAGES = ["configuration", "memory", "iso", "disk-check", "disk-write", "install"]


def progress_events(node):
    """The PROGRESS hook (issue 13 item 6): one event per stage start, in the agent's order, the
    ISO's percents rising in steps of 10 up to 100 inside the iso stage, all before SUCCEEDED."""
    @check(f"{node}: PROGRESS webhooks: each stage's start in order ({', '.join(AGENT_STAGES)}), the ISO's "
           "percents rising to 100 in the iso stage, before SUCCEEDED")
    def fn(ctx):
        reqs = ctx.hooks(node)
        seq = []
        for i, r in enumerate(reqs):
            if not r["path"].startswith("/hook/PROGRESS/"):
                continue
            try:
                body = json.loads(r["body"])
            except ValueError:
                return False, f"payload is not JSON: {r['body'][:200]!r}"
            seq.append((i, body.get("stage"), body.get("percent")))
        shown = " ".join(f"{st}/{p}" if p else st for _, st, p in seq)
        stages = [st for _, st, p in seq if not p]
        if stages != AGENT_STAGES:
            return False, f"stage events {stages} (want {AGENT_STAGES}); all: {shown or 'none'}"
        start_iso = next(k for k, (_, st, p) in enumerate(seq) if st == "iso" and not p)
        start_next = next(k for k, (_, st, p) in enumerate(seq) if st == "disk-check" and not p)
        percents = [p for _, st, p in seq if p]
        inside = [p for _, st, p in seq[start_iso + 1:start_next]]
        if not percents or percents != inside or any(st != "iso" for _, st, p in seq if p):
            return False, f"percent events outside the iso stage: {shown}"
        try:
            values = [int(p) for p in percents]
        except ValueError:
            return False, f"a percent that is not a number: {shown}"
        if values[-1] != 100 or any(b <= a for a, b in zip(values, values[1:])) or any(v % 10 for v in values):
            return False, f"percents {values}: not rising steps of 10 ending at 100"
        succeeded = [i for i, r in enumerate(reqs) if r["path"].startswith("/hook/SUCCEEDED/")]
        if not succeeded or seq[-1][0] > succeeded[0]:
            return False, f"a PROGRESS event after SUCCEEDED (or no SUCCEEDED): {shown}"
        return True, shown
    return fn


def report_webhook(node, event, mode):
    """The SUCCEEDED/FAILED payload's {{.Report}}: the install report as JSON, whose install disk is
    the VM's first disk (serial, by-id), with every stage timed and the ISO's checksum."""
    serial, by_id = h.disk_serial(node, 0), h.disk_by_id(node, 0)

    @check(f"{node}: webhook {event} carries the install report (result, {len(AGENT_STAGES)} stages timed, "
           f"ISO sha512, install disk serial {serial})")
    def fn(ctx):
        reqs = [r for r in ctx.hooks(node) if r["path"].startswith(f"/hook/{event}/")]
        if len(reqs) != 1:
            return False, f"{len(reqs)} {event} requests of {node}"
        try:
            rep = json.loads(reqs[0]["body"]).get("report")
        except ValueError:
            return False, f"payload is not JSON: {reqs[0]['body'][:300]!r}"
        if not isinstance(rep, dict):
            return False, f"no report object: {reqs[0]['body'][:300]!r}"
        want_result = "succeeded" if event == "SUCCEEDED" else "failed"
        problems = []
        if rep.get("result") != want_result or rep.get("mode") != mode:
            problems.append(f"result {rep.get('result')!r}, mode {rep.get('mode')!r}")
        stages = rep.get("stages") or []
        if [s.get("name") for s in stages] != AGENT_STAGES or any(s.get("seconds") is None for s in stages):
            problems.append(f"stages {stages}")
        if not re.fullmatch(r"sha512:[0-9a-f]{128}", str((rep.get("iso") or {}).get("checksum"))):
            problems.append(f"iso {rep.get('iso')}")
        disk = next((d for d in rep.get("disks") or [] if d.get("role") == "install"), {})
        if disk.get("serial") != serial or disk.get("by_id") != by_id:
            problems.append(f"install disk {disk}")
        if HOOK_PASSWORD in reqs[0]["body"] or TOKEN in reqs[0]["body"]:
            problems.append("a secret in the payload")
        return not problems, "; ".join(problems) or json.dumps(rep)[:400]
    return fn


def webhook_disk(node, event, size):
    """The webhook's template data named the install disk: its by-id name and serial number (the
    harness gives every disk one) and its size in bytes."""
    serial, by_id = h.disk_serial(node, 0), h.disk_by_id(node, 0)

    @check(f"{node}: webhook {event} names the install disk ({by_id}, serial {serial}, {size} bytes)")
    def fn(ctx):
        reqs = [r for r in ctx.hooks(node) if r["path"].startswith(f"/hook/{event}/")]
        if len(reqs) != 1:
            return False, f"{len(reqs)} {event} requests of {node}"
        try:
            body = json.loads(reqs[0]["body"])
        except ValueError:
            return False, f"payload is not JSON: {reqs[0]['body'][:200]!r}"
        want = {"disk_by_id": by_id, "disk_serial": serial, "disk_size": str(size)}
        problems = [f"{k}={body.get(k)!r} (want {v!r})" for k, v in want.items() if body.get(k) != v]
        return not problems, "; ".join(problems) or reqs[0]["body"]
    return fn


def no_partition_table(node):
    """Read from the host: no GPT header (primary or backup) and no protective MBR on the install
    disk."""
    @check(f"{node}: no partition table left on the install disk (read from the host)")
    def fn(ctx):
        disk = ctx.vm[node].disks[0]
        size = h.parse_size(disk.size)
        with tempfile.TemporaryDirectory() as d:
            head, tail = os.path.join(d, "head"), os.path.join(d, "tail")
            for out, skip in ((head, 0), (tail, size // 512 - 1)):
                h.run([ctx.lab.tools.qemu_img, "dd", "-f", "qcow2", "-O", "raw", "bs=512", "count=2" if not skip else "count=1",
                       f"skip={skip}", f"if={disk.path}", f"of={out}"], quiet=True)
            with open(head, "rb") as f:
                mbr, lba1 = f.read(512), f.read(512)
            with open(tail, "rb") as f:
                last = f.read(512)
        problems = []
        if lba1[:8] == b"EFI PART":
            problems.append("a primary GPT header")
        if last[:8] == b"EFI PART":
            problems.append("a backup GPT header")
        if mbr[510:512] == b"\x55\xaa" and mbr[450] == 0xEE:
            problems.append("a protective MBR")
        return not problems, ", ".join(problems) or "none: primary, backup GPT and MBR gone"
    return fn


def no_webhook(node, event):
    @check(f"{node}: no {event} webhook")
    def fn(ctx):
        got = [r["path"] for r in ctx.hooks(node) if r["path"].startswith(f"/hook/{event}/")]
        return not got, f"got {got}"
    return fn


def test_os(node, hostname, role, server=None):
    """The installed disk booted (no network) into the test OS, which read COS_OEM."""
    @check(f"{node}: the installed disk booted; the test OS says hostname={hostname} role={role}"
           + (f" server={server}" if server else ""))
    def fn(ctx):
        if node not in ctx.disk_boot:
            return False, "the installed disk was not booted (no SUCCEEDED + reboot)"
        con = ctx.vm[node].disk_console
        said = {m.group(1).split("=", 1)[0]: m.group(1).split("=", 1)[-1]
                for _, m in con.all(h.RE_TEST_OS) if "=" in m.group(1)}
        lines = "; ".join(m.group(1) for _, m in con.all(h.RE_TEST_OS))
        problems = []
        if not con.find(r"\[test-os\] done"):
            problems.append(f"no '[test-os] done' ({ctx.disk_boot[node][0]})")
        if con.find(r"\[test-os\] error"):
            problems.append("the test OS reported an error")
        want = {"hostname": hostname, "role": role}
        if server:
            want["server"] = server
        problems += [f"{k}={said.get(k)!r}" for k, v in want.items() if said.get(k) != v]
        return not problems, "; ".join(problems) + (" -- " if problems else "") + lines[:600]
    return fn


# The rancherd bootstrap resources v1.1.2 writes on a create node (pkg/config/cos.go
# genBootstrapResources); a join node gets none.
BOOTSTRAP_FILES = ("10-harvester.yaml 11-monitoring-crd.yaml 12-monitoring-dashboard.yaml "
                   "13-monitoring.yaml 14-logging-crd.yaml 15-logging.yaml "
                   "20-harvester-settings.yaml 22-addons.yaml")


def bootstrap_files(node, mode):
    """The test OS of the installed disk lists the rancherd bootstrap files of 90_custom.yaml:
    all eight for create, none for join."""
    want = BOOTSTRAP_FILES if mode == "create" else "none"
    @check(f"{node}: the installed node's rancherd bootstrap files are " +
           ("all eight of v1.1.2" if mode == "create" else "none (join)"))
    def fn(ctx):
        if node not in ctx.disk_boot:
            return False, "the installed disk was not booted (no SUCCEEDED + reboot)"
        got = [m.group(1)[len("bootstrap="):] for _, m in ctx.vm[node].disk_console.all(h.RE_TEST_OS)
               if m.group(1).startswith("bootstrap=")]
        if len(got) != 1:
            return False, f"{len(got)} '[test-os] bootstrap=' lines: {got}"
        return got[0] == want, f"bootstrap={got[0]}"
    return fn


def preloaded(node):
    """The image preload ran in the chroot as v1.1.2's does (the agent's log) and, as the installed
    disk's test OS reads COS_PERSISTENT, the test release's three images are in (fake) containerd
    and no tarball is left where rke2 imports from."""
    @check(f"{node}: the ISO's images were imported into containerd at install time, no tarball kept")
    def fn(ctx):
        con = ctx.console(node)
        problems = []
        for rx, what in ((r"Image preload: chroot \S+ wharfie --images-dir /var/lib/rancher/agent/images/ "
                          r"docker\.io/rancher/system-agent-installer-rke2:v1\.24\.11-rke2r1 /usr/local/preload\.",
                          "wharfie"),
                         (r"Image preload: chroot \S+ /usr/local/preload\.\S+/rke2/bin/rke2 server", "rke2 server"),
                         (r"Image preload: every image of 2 lists is in containerd", "both lists checked"),
                         (r"Imported the ISO's Harvester images into containerd .*\(no tarball kept\)", "done")):
            if not con.find(rx):
                problems.append(f"no '{what}' line")
        if node not in ctx.disk_boot:
            problems.append("the installed disk was not booted")
        else:
            got = [m.group(1) for _, m in ctx.vm[node].disk_console.all(h.RE_TEST_OS)
                   if m.group(1).startswith("preload=")]
            want = "preload=3 images imported, 0 files in rke2/agent/images"
            if got != [want]:
                problems.append(f"the test OS says {got}, not [{want!r}]")
        return not problems, "; ".join(problems)
    return fn


def check_disk(node, mode, hostname, server_url=None, data_disk=False, secrets=(TOKEN,),
               password=PASSWORD, device="/dev/sda", firmware="uefi", force_mbr=False):
    """qemu/check-disk on the VM's disk images (after the VM stopped)."""
    layout = (" --force-mbr" if force_mbr else "") + (" --firmware bios" if firmware == "bios" else "")
    @check(f"{node}: qemu/check-disk --mode {mode} --hostname {hostname} --token (the lab's)"
           + (" --data-disk" if data_disk else "") + layout + " passes")
    def fn(ctx):
        disks = ctx.vm[node].disks
        # The token and the install disk the configs give: compared with what is on the disk.
        cmd = [str(h.QEMU_DIR / "check-disk"), "--disk", str(disks[0].path), "--mode", mode,
               "--hostname", hostname, "--token", TOKEN, "--device", device]
        if data_disk:
            cmd += ["--data-disk", str(disks[1].path)]
        cmd += ["--firmware", firmware] + (["--force-mbr"] if force_mbr else [])
        if server_url:
            cmd += ["--server-url", server_url]
        for sec in secrets:
            cmd += ["--secret", sec]
        if password:
            cmd += ["--password-clear", password]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = p.stdout.strip().splitlines()
        ok_lines = [l for l in out if l.startswith("ok")]
        bad = [l for l in out if not l.startswith("ok")]
        if p.returncode == 0:
            return True, f"{len(ok_lines)} checks ok"
        return False, f"exit {p.returncode}: " + " | ".join(bad[-15:])
    return fn


def image_boot(node, console="console=ttyS0,115200n8 console=tty1", efi=True):
    """issue 9: the installed disk booted through the image's own GRUB files: the kernel line is
    bootargs.cfg's (the test release ends it with harvester.test.bootargs=image) with the console
    the install set in active.img; the agent made the UEFI boot entry, first in BootOrder."""
    @check(f"{node}: the disk booted through the image's grub.cfg and active.img's bootargs.cfg "
           f"({console})" + ("; boot entry elemental-shim first in BootOrder" if efi else " (legacy BIOS: no boot entry)"))
    def fn(ctx):
        con = ctx.vm[node].disk_console if node in ctx.disk_boot else None
        cmdline = [m.group(1) for _, m in con.all(h.RE_TEST_OS) if m.group(1).startswith("cmdline=")] if con else []
        problems = []
        want = (f"{console} root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img panic=0 net.ifnames=1 "
                "rd.cos.oemtimeout=120 rd.cos.oemlabel=COS_OEM audit=1 audit_backlog_limit=8192 "
                "intel_iommu=on amd_iommu=on iommu=pt harvester.test.bootargs=image")
        if not cmdline or want not in cmdline[-1]:
            problems.append(f"test OS {cmdline[-1] if cmdline else 'printed no cmdline'} (want {want!r})")
        if efi and not ctx.console(node).find(r'UEFI boot entry Boot[0-9A-F]{4} "elemental-shim" -> \\EFI\\elemental\\shim\.efi'
                                              r'.*first in BootOrder'):
            problems.append("no 'UEFI boot entry ... elemental-shim ... first in BootOrder' line from the agent")
        return not problems, "; ".join(problems)
    return fn


def succeeded(node):
    return line(node, h.RE_SUCCEEDED.pattern, "the install SUCCEEDED")


def rebooted(node):
    @check(f"{node}: SUCCEEDED, then the VM rebooted by itself")
    def fn(ctx):
        reason = ctx.outcome[node][0]
        return bool(ctx.console(node).find(h.RE_SUCCEEDED)) and reason == "exited", reason
    return fn


def installed(node, mode, hostname, role, server=None, boot=True, data_disk=False, hooks=False,
              device="/dev/sda", unit=True, firmware="uefi", force_mbr=False, script=None):
    """The whole install of one node: PXE chain, SUCCEEDED, reboot, (test OS), check-disk.
    unit=False: the agent ran from the initqueue hook (the hook initrd), not from its unit."""
    checks = pxe_chain(node, mode, efi=firmware == "uefi", script=script) + agent_started(node, unit) + [
        served(node, "harvester-<version>-amd64.iso"),
        served(node, "harvester-<version>-amd64.sha512"),
        line(node, r"ISO: +[0-9]+%  .* of .*MiB/s +ETA|ISO: received .* MiB/s average",
             "download progress on the serial console"),
        line(node, r"ISO: checksum verified: sha512:[0-9a-f]{128}", "the ISO verified against the release's SHA-512 list"),
        served_whole(node, "harvester-<version>-amd64.iso"),
        succeeded(node), rebooted(node)]
    if boot:
        checks.append(test_os(node, hostname, role, server))
    checks.append(check_disk(node, mode, hostname, server, data_disk,
                             secrets=(TOKEN, HOOK_PASSWORD) if hooks else (TOKEN,), device=device,
                             firmware=firmware, force_mbr=force_mbr))
    if hooks:
        checks += [webhook(node, "STARTED", hostname), webhook(node, "SUCCEEDED", hostname),
                   no_webhook(node, "FAILED")]
    return checks


def failure(node, stage, pattern, what, hostname="node1"):
    """A failed install: its FAILED line (stage and message), no SUCCEEDED, and what the servers
    and the disks say: the FAILED webhook reached the listener, no SUCCEEDED one, the disks are
    byte-for-byte unchanged."""
    return [failed_in(node, stage, pattern, what),
            no_line(node, h.RE_SUCCEEDED.pattern, "no SUCCEEDED"),
            webhook(node, "FAILED", hostname),
            no_webhook(node, "SUCCEEDED"),
            disks_unchanged(node)]


def served_whole(node, name, what="the whole file"):
    """nginx sent the node the whole file (its size in bytes), answering 200."""
    @check(f"{node}: nginx sent /harvester/{name} whole (200, every byte)")
    def fn(ctx):
        name_ = name.replace("<version>", ctx.lab.release.version)
        size = (ctx.lab.served.dir / name_).stat().st_size
        got = [(st, n) for _, p, st, n in ctx.requests(node, full=True) if p == f"/harvester/{name_}"]
        return (200, size) in got, f"{size} bytes; answers (status, bytes): {got or 'never requested'}"
    return fn


# --- The scenarios --------------------------------------------------------------------------------

SCENARIOS = {}


def scenario(s):
    SCENARIOS[s.name] = s
    return s


scenario(Scenario(
    "create-8g",
    "create, 8 GiB, one 300 GiB disk: PXE via iPXE, config_url fetched and merged with the kernel "
    "line, the memory check passes, the install SUCCEEDS and reboots, the installed disk boots "
    "into the test OS (hostname, cluster-init), qemu/check-disk passes on the disk image, and "
    "the STARTED and SUCCEEDED webhooks arrive with the templated values; a PROGRESS hook gets "
    "each stage's start in order and the ISO's rising percents; SUCCEEDED carries the install report, "
    "and check-disk reads COS_OEM/install/report.json",
    [Node("node1", "create", "8G", boot_disk=True)],
    cmdline_extra="harvester.os.hostname=pxe-lab-node1",
    listener=True, config_edit=with_webhooks(events=("STARTED", "SUCCEEDED", "FAILED", "PROGRESS")),
    timeout=1500,
    checks=[
        served("node1", "config-create.yaml"),
        past_config("node1"),
        line("node1", r"^harvester-install: .*\bpxe-lab-node1\b",
             "the kernel line's harvester.os.hostname=pxe-lab-node1 is in the plan (merged)"),
        line("node1", h.MARK + r" STAGE memory", "STAGE memory"),
        line("node1", RE_PAST_MEMORY, "the memory check passed: a later STAGE began"),
    ] + installed("node1", "create", "pxe-lab-node1", "cluster-init", hooks=True)
    + [progress_events("node1"), report_webhook("node1", "SUCCEEDED", "create")]
    + [bootstrap_files("node1", "create"), preloaded("node1"), image_boot("node1")]))

scenario(Scenario(
    "hook-mode",
    "create with the installer initrd made without systemd (harvester-pxe-prepare --initrd-flavour "
    "hook: dracut's network-legacy, no systemd-initrd): the agent runs from the initqueue/online "
    "hook once DHCP is up, the install SUCCEEDS and reboots (reboot(2), no systemd), the UEFI boot "
    "entry is made (efivarfs mounted by the hook), the installed disk boots into the test OS and "
    "qemu/check-disk passes",
    [Node("node1", "create", "8G", boot_disk=True)],
    cmdline_extra="harvester.os.hostname=pxe-lab-hook",
    flavour="hook", config_edit=with_token(),
    timeout=1500,
    checks=[
        no_line("node1", r"systemd\[1\]: |Harvester automatic install",
                "no systemd and no agent unit in the initrd"),
        line("node1", r"dhcp: BOUND setting up", "network-legacy's dhclient brought the NIC up"),
        no_line("node1", r"No UEFI variables", "the agent saw the UEFI variables (efivarfs mounted before it started)"),
    ] + installed("node1", "create", "pxe-lab-hook", "cluster-init", unit=False) + [image_boot("node1")]))

scenario(Scenario(
    "dhcpd-create-join",
    "ISC dhcpd with the seed's dhcpd.conf in a network namespace: the create MAC gets "
    "ipxe-create-efi, the join MAC ipxe-join-efi; both fetch their config and pass it",
    [Node("node1", "create", "8G", stop=[RE_PAST_CONFIG]),
     Node("node2", "join", "8G", stop=[RE_PAST_CONFIG])],
    way="dhcpd", grace=1.0,
    checks=[dhcp_acked("node1"), dhcp_acked("node2")]
    + pxe_chain("node1", "create") + pxe_chain("node2", "join") + [
        not_requested("node1", "ipxe-create"),  # architecture-type 00:07 chose -efi
        not_requested("node2", "ipxe-join"),
        not_requested("node1", "ipxe-join-efi"),
        not_requested("node2", "ipxe-create-efi"),
    ] + agent_started("node1") + agent_started("node2") + [
        served("node1", "config-create.yaml"),
        served("node2", "config-join.yaml"),
        past_config("node1"),
        past_config("node2"),
    ]))

# --- The guide's other boot paths (issue 11 item 2): the firmware's own PXE by TFTP, UEFI HTTP
# Boot, legacy BIOS PXE. dhcpd.conf is the guide's whole config (qemu/seed/dhcpd.conf).

# What a firmware's DHCP client says: option 93 (architecture) and option 60 (vendor class), as
# EDK2's PXE (UefiPxeBcDxe), EDK2's HTTP Boot (HttpBootDxe) and a BIOS PXE ROM send them.
PXE_BIOS = (0, "PXEClient:Arch:00000:UNDI:002001")
PXE_UEFI = (7, "PXEClient:Arch:00007:UNDI:003000")
HTTP_UEFI = (16, "HTTPClient:Arch:00016:UNDI:003001")


def dhcp_answers(probes):
    """prepare(ctx): before any VM boots, asks the lab's dhcpd as each firmware would (qemu/
    dhcp_probe.py on a veth port of the namespace's bridge): probes {key: (mac, arch, vendor
    class, user class)}; the answers land in ctx.dhcp[key] = (exit code, {offer, ack})."""
    def prepare(ctx):
        import dhcp_probe
        ctx.dhcp = {key: dhcp_probe.ask(ctx.lab.netns, *args) for key, args in probes.items()}
    return prepare


def dhcp_answer(key, what, filename, vendor_class=None):
    """dhcpd's OFFER and ACK to probe `key` name `filename` (the bootp file field); with
    vendor_class, both carry option 60 with that text, without, no option 60 at all."""
    @check(f"dhcpd answered {what} with filename {filename!r}"
           + (f" and option vendor-class-identifier {vendor_class!r}" if vendor_class
              else " and no vendor-class-identifier"))
    def fn(ctx):
        rc, got = ctx.dhcp[key]
        if not isinstance(got, dict) or not got.get("offer") or not got.get("ack"):
            return False, f"no OFFER/ACK (exit {rc}): {got}"
        problems = []
        for kind in ("offer", "ack"):
            r = got[kind]
            if r["file"] != filename:
                problems.append(f"{kind} file {r['file']!r}")
            if r["options"].get("60") != vendor_class:
                problems.append(f"{kind} option 60 {r['options'].get('60')!r}")
        return not problems, "; ".join(problems) or f"{got['ack']['yiaddr']}: {filename}"
    return fn


def tftp_sent(node, name):
    """The TFTP server's log: it sent `name` whole to an address dhcpd leased to the node."""
    @check(f"{node}: the TFTP server sent {name} to the node (its log, the node's leased address)")
    def fn(ctx):
        ips = {ip for ip, m in ctx.lab.dhcpd.acks() if m == ctx.vm[node].mac}
        sent = ctx.lab.tftp.sent()
        return any(f == name and ip in ips for f, ip in sent), f"sent {sent}; node's addresses {sorted(ips)}"
    return fn


def dhcp_chain(node, steps, mac=None):
    """From the DHCP packets recorded on the bridge (harness.Dhcpd.packets()): for the node's
    MAC, in this order, a request from each client (steps [(what, arch, vendor class prefix or
    None for any, user class or None for none, filename[, option 60])]) that dhcpd ACKed with the step's filename (and
    option 60 when given): the answers the guide's dhcpd.conf gave each stage of the chain."""
    @check(f"{node}: dhcpd's answers on the wire, in order: "
           + " -> ".join(f"{s[0]} -> {s[4]!r}" for s in steps))
    def fn(ctx):
        pkts = ctx.lab.dhcpd.packets(mac or ctx.vm[node].mac)
        asked = {p["xid"]: p for p in pkts if p["op"] == 1}
        at, seen = 0, []
        for what, arch, vendor, user, filename, *opt60 in steps:
            def fits(i, p):
                q = asked.get(p["xid"], {}).get("options", {})
                return (i >= at and p["op"] == 2 and p["type"] == 5 and p["file"] == filename
                        and q.get("93") == f"{arch:04x}"
                        and (not vendor or q.get("60", "").startswith(vendor))
                        and q.get("77") == user
                        and (not opt60 or p["options"].get("60") == opt60[0]))
            hit = next((i for i, p in enumerate(pkts) if fits(i, p)), None)
            if hit is None:
                ans = [(p["file"], p["options"].get("60")) for p in pkts if p["op"] == 2]
                return False, f"no ACK {filename!r} to {what} after packet {at}; seen {seen}; answers {ans}"
            seen.append(f"{what}: packet {hit}")
            at = hit + 1
        return True, "; ".join(seen)
    return fn


def in_order(node, steps):
    """steps [(pattern, what)]: each one's first console line comes after the previous one's."""
    @check(f"{node}: the console shows, in this order: " + " -> ".join(w for _, w in steps))
    def fn(ctx):
        at, seen = 0.0, []
        for rx, what in steps:
            hit = ctx.console(node).find(rx, after=at)
            if not hit:
                return False, f"no '{what}' (/{rx}/) after {at:.1f} s; seen: {seen}"
            at = hit[0]
            seen.append(f"{what} {at:.1f} s")
        return True, ", ".join(seen)
    return fn


def tftp_fetch_matches(name):
    """A TFTP client in the namespace (curl tftp://) gets `name` byte for byte as Debian's ipxe
    package has it."""
    @check(f"a TFTP fetch of {name} from {h.SEED_SERVER} is byte for byte Debian's {h.IPXE_DIR}/{name}")
    def fn(ctx):
        out = ctx.lab.workdir / f"tftp-fetched-{name}"
        p = subprocess.run(ctx.lab.netns.prefix() + ["curl", "-sS", "-o", str(out),
                                                     f"tftp://{h.SEED_SERVER}/{name}"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            return False, f"curl exit {p.returncode}: {p.stderr.strip()}"
        want = (h.IPXE_DIR / name).read_bytes()
        got = out.read_bytes()
        sent = [f for f, _ in ctx.lab.tftp.sent()]
        return got == want and name in sent, f"{len(got)} bytes (Debian's: {len(want)}); TFTP log sent {sent}"
    return fn


def http_fetch_is(name, what):
    @check(f"nginx serves /harvester/{name} ({what})")
    def fn(ctx):
        p = subprocess.run(ctx.lab.netns.prefix() + ["curl", "-sS", "-f",
                                                     f"http://{h.SEED_SERVER}/harvester/{name}"],
                           capture_output=True)
        want = (ctx.lab.served.dir / name).read_bytes()
        return p.returncode == 0 and p.stdout == want, f"curl exit {p.returncode}, {len(p.stdout)} bytes"
    return fn


def nic_rom_empty(node):
    """The VM's NIC had no option ROM (QEMU's command line: romfile= empty), so the firmware's
    own network stack started the chain, not iPXE from the NIC."""
    @check(f"{node}: the NIC had no option ROM (romfile= empty on QEMU's command line)")
    def fn(ctx):
        cmd = ctx.vm[node].qemu_log.read_text(errors="replace").splitlines()[0]
        nic = next((a for a in cmd.split() if a.startswith(h.NIC_MODEL + ",")), "")
        return bool(nic) and ",romfile=," in nic + ",", nic
    return fn


RE_OVMF_PXE = r">>Start PXE over IPv4"
RE_IPXE_BANNER = r"iPXE \S+ -- Open Source Network Boot Firmware|^iPXE \d"

scenario(Scenario(
    "uefi-tftp-ipxe",
    "OVMF's own PXE client (the NIC's iPXE ROM slot empty; OVMF drives the virtio NIC) gets "
    "ipxe.efi from the guide's PXE branch by TFTP (dnsmasq, TFTP only, in dhcpd's namespace), "
    "Debian's ipxe.efi asks DHCP again as iPXE and gets ipxe-create-efi; install, reboot, disk "
    "boot, check-disk. The chain is read from dhcpd's answers recorded on the bridge (PXEClient "
    "arch 7 -> ipxe.efi, then user class iPXE -> ipxe-create-efi), the TFTP server's log "
    "(ipxe.efi sent to the node), nginx's log and the console, in order",
    [Node("node1", "create", "8G", boot_disk=True, netboot="pxe")],
    way="dhcpd", tftp=True, config_edit=with_token(), timeout=1500,
    checks=[
        in_order("node1", [(RE_OVMF_PXE, "OVMF's PXE"),
                           (r"NBP filename is ipxe\.efi", "NBP ipxe.efi (the PXE branch)"),
                           (r"NBP file downloaded successfully", "downloaded by TFTP"),
                           (r'BdsDxe: starting Boot[0-9A-F]{4} "UEFI PXEv4', "started"),
                           (RE_IPXE_BANNER, "iPXE"),
                           (r"Filename: http://10\.100\.0\.10/harvester/ipxe-create-efi",
                            "iPXE's DHCP answer: ipxe-create-efi"),
                           (r"ipxe-create-efi : \d+ bytes \[script\]", "the script")]),
        nic_rom_empty("node1"),
        tftp_sent("node1", "ipxe.efi"),
        dhcp_chain("node1", [("OVMF's PXE", 7, "PXEClient:Arch:00007", None, "ipxe.efi"),
                             ("iPXE", 7, None, "iPXE",
                              "http://10.100.0.10/harvester/ipxe-create-efi")]),
        not_requested("node1", "ipxe.efi"),  # by HTTP: it came by TFTP
    ] + installed("node1", "create", "node1", "cluster-init")))

scenario(Scenario(
    "uefi-http-boot",
    "OVMF's HTTP Boot (HttpBootDxe; its PXE boot options switched off with fw_cfg "
    "opt/org.tianocore/IPv4PXESupport=no and IPv6PXESupport=no, so that \"UEFI HTTPv4\" is "
    "first): DHCP with vendor class HTTPClient, the guide's HTTPClient branch answers "
    "http://10.100.0.10/harvester/ipxe.efi and vendor-class-identifier \"HTTPClient\", OVMF "
    "fetches ipxe.efi from nginx, iPXE gets ipxe-create-efi; install, reboot, disk boot, "
    "check-disk. No TFTP server runs. A DHCP client in the namespace first checks the answer's "
    "filename and option 60",
    [Node("node1", "create", "8G", boot_disk=True, netboot="http")],
    way="dhcpd", config_edit=with_token(), timeout=1500,
    prepare=dhcp_answers({"http": (h.CREATE_MAC, *HTTP_UEFI, None)}),
    checks=[
        dhcp_answer("http", "UEFI HTTP Boot (arch 16, HTTPClient) from the create MAC",
                    "http://10.100.0.10/harvester/ipxe.efi", "HTTPClient"),
        in_order("node1", [(r">>Start HTTP Boot over IPv4", "OVMF's HTTP Boot"),
                           (r"URI: http://10\.100\.0\.10/harvester/ipxe\.efi", "URI from the HTTPClient branch"),
                           (r'BdsDxe: starting Boot[0-9A-F]{4} "UEFI HTTPv4', "started"),
                           (RE_IPXE_BANNER, "iPXE"),
                           (r"Filename: http://10\.100\.0\.10/harvester/ipxe-create-efi",
                            "iPXE's DHCP answer: ipxe-create-efi"),
                           (r"ipxe-create-efi : \d+ bytes \[script\]", "the script")]),
        no_line("node1", RE_OVMF_PXE, "OVMF did not try PXE"),
        served_whole("node1", "ipxe.efi"),
        dhcp_chain("node1", [("OVMF's HTTP Boot", 16, "HTTPClient", None,
                              "http://10.100.0.10/harvester/ipxe.efi", "HTTPClient"),
                             ("iPXE", 7, None, "iPXE",
                              "http://10.100.0.10/harvester/ipxe-create-efi")]),
    ] + installed("node1", "create", "node1", "cluster-init")))

scenario(Scenario(
    "bios-undionly",
    "legacy BIOS PXE, without a VM: QEMU's BIOS (SeaBIOS) has no PXE client of its own and runs "
    "the NIC's ROM, which in QEMU is always iPXE (ipxe-qemu), so no QEMU machine sends a BIOS "
    "PXE request that is not iPXE's. A DHCP client in dhcpd's namespace sends what a BIOS PXE ROM "
    "sends (arch 00:00, PXEClient, no user class iPXE): the guide's PXE branch answers "
    "undionly.kpxe for both MACs; a TFTP fetch of undionly.kpxe is byte for byte Debian's; "
    "undionly.kpxe (iPXE) asking again (user class iPXE, arch 00:00) gets the non-efi scripts, "
    "which nginx serves",
    [], way="dhcpd", tftp=True,
    prepare=dhcp_answers({"bios-create": (h.CREATE_MAC, *PXE_BIOS, None),
                          "bios-join": (h.JOIN_MAC, *PXE_BIOS, None),
                          "ipxe-create": (h.CREATE_MAC, 0, None, "iPXE"),
                          "ipxe-join": (h.JOIN_MAC, 0, None, "iPXE"),
                          "uefi-pxe": (h.CREATE_MAC, *PXE_UEFI, None)}),
    checks=[
        dhcp_answer("bios-create", "a BIOS PXE ROM from the create MAC", "undionly.kpxe"),
        dhcp_answer("bios-join", "a BIOS PXE ROM from the join MAC", "undionly.kpxe"),
        tftp_fetch_matches("undionly.kpxe"),
        dhcp_answer("ipxe-create", "undionly.kpxe's iPXE (BIOS) from the create MAC",
                    "http://10.100.0.10/harvester/ipxe-create"),
        dhcp_answer("ipxe-join", "undionly.kpxe's iPXE (BIOS) from the join MAC",
                    "http://10.100.0.10/harvester/ipxe-join"),
        http_fetch_is("ipxe-create", "the non-efi create script"),
        http_fetch_is("ipxe-join", "the non-efi join script"),
        dhcp_answer("uefi-pxe", "a UEFI PXE client (arch 00:07) from the create MAC", "ipxe.efi"),
        # The recorder on the bridge (what the VM scenarios read) saw the same, in order.
        dhcp_chain("create MAC", [("BIOS PXE", 0, "PXEClient:Arch:00000", None, "undionly.kpxe"),
                                  ("iPXE (BIOS)", 0, None, "iPXE", "http://10.100.0.10/harvester/ipxe-create"),
                                  ("UEFI PXE", 7, "PXEClient:Arch:00007", None, "ipxe.efi")],
                   mac=h.CREATE_MAC),
    ]))

scenario(Scenario(
    "memory-7g",
    "7 GiB: the memory check fails naming installed and required memory; disks unchanged",
    [Node("node1", "create", "7G")],
    listener=True, config_edit=with_webhooks(),
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        served("node1", "config-create.yaml"),
        line("node1", h.MARK + r" STAGE memory", "STAGE memory"),
        stopped_before("node1", RE_PAST_MEMORY, "no stage after memory began"),
        not_requested("node1", "harvester-<version>-amd64.iso"),
    ] + failure("node1", "memory", r"\b7 GiB installed\b.*\b8 GiB\b",
                "a message naming 7 GiB installed and 8 GiB required")))

scenario(Scenario(
    "memory-7g-skipchecks",
    "7 GiB with harvester.install.skipchecks=true: the memory check is a warning, the install "
    "goes on",
    [Node("node1", "create", "7G", stop=[RE_PAST_MEMORY])],
    cmdline_extra="harvester.install.skipchecks=true", grace=1.0,
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        line("node1", r"harvester-install: warning: .*\b7 GiB installed\b.*\b8 GiB\b",
             "a warning naming 7 GiB installed and 8 GiB required"),
        line("node1", RE_PAST_MEMORY, "the install went on: a stage after memory began"),
        no_line("node1", h.RE_FAILED.pattern, "no FAILED marker"),
    ]))

scenario(Scenario(
    "config-404",
    "config_url answers 404: FAILED with that message, disks unchanged",
    [Node("node1", "create", "8G")],
    config_404=True,
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        served("node1", "config-create.yaml", 404),
        failed_in("node1", "configuration",
                  r"config_url: http://\S+/config-create\.yaml answered HTTP 404\b",
                  "config_url's fetch naming the URL and HTTP 404"),
        not_requested("node1", "harvester-<version>-amd64.iso"),
        stopped_before("node1", RE_PAST_CONFIG, "no stage after configuration began"),
        disks_unchanged("node1"),
    ]))

scenario(Scenario(
    "config-invalid",
    "harvester.install.mode=join over config-create.yaml (no server_url): FAILED naming "
    "server_url, disks unchanged",
    [Node("node1", "create", "8G")],
    cmdline_extra="harvester.install.mode=join",
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        served("node1", "config-create.yaml"),
        failed_in("node1", "configuration", r"\bserver_url\b", "a message naming server_url"),
        not_requested("node1", "harvester-<version>-amd64.iso"),
        stopped_before("node1", RE_PAST_CONFIG, "no stage after configuration began"),
        disks_unchanged("node1"),
    ]))

scenario(Scenario(
    "no-automatic",
    "without harvester.install.automatic=true the agent does not run and dracut handles the "
    "boot as usual",
    [Node("node1", "create", "8G", stop=[r"Refusing to continue"])],
    no_automatic=True,
    checks=pxe_chain("node1", "create") + [
        no_line("node1", r"Harvester automatic install", "the agent's unit never started"),
        no_line("node1", h.MARK, "no [harvester-install] line at all"),
        not_requested("node1", "config-create.yaml"),
        line("node1", r"Don't know how to handle 'root=live:|\[test-os\] booted",
             "dracut handled root=live: itself (the module left it alone)"),
        vm_ended("node1"),
        disks_unchanged("node1"),
    ]))


def set_key(key, value):
    """config_edit: sets install.<key> (a line "  key: ..." or "  # key: ..." replaced, else
    appended to install:, the last section of both seed configs)."""
    def edit(mode, text):
        rx = re.compile(rf"^  (# )?{key}:.*$", re.M)
        if rx.search(text):
            return rx.sub(f"  {key}: {value}", text, count=1)
        return text.rstrip("\n") + f"\n  {key}: {value}\n"
    return edit


scenario(Scenario(
    "create-data-disk",
    "create with two disks named by /dev/disk/by-id (the kernel names them sda and sdb in probe "
    "order): install.device the first, install.data_disk the second; the plan shows each disk's "
    "by-id name, model and serial; the data disk is one whole-disk HARV_LH_DEFAULT file system, "
    "the install disk has no partition 6 (qemu/check-disk --data-disk)",
    [Node("node1", "create", "8G", data_disk="300G")],
    config_edit=with_token(lambda mode, text: set_key("data_disk", h.disk_by_id("node1", 1))(
        mode, set_key("device", h.disk_by_id("node1", 0))(mode, text))),
    timeout=1500,
    checks=[line("node1", r"^Install disk: /dev/sd[a-z] \(install\.device \"" + re.escape(h.disk_by_id("node1", 0)) + r"\"\)",
                 "the plan names the install disk by the by-id name given"),
            line("node1", r"^  by-id " + re.escape(h.disk_by_id("node1", 0)) + r", model QEMU HARDDISK, serial node1-sda$",
                 "the plan shows the install disk's by-id name, model and serial"),
            line("node1", r"^Data disk: /dev/sd[a-z] \(install\.data_disk \"" + re.escape(h.disk_by_id("node1", 1)) + r"\"\)",
                 "the plan names the data disk by the by-id name given"),
            line("node1", r"^  by-id " + re.escape(h.disk_by_id("node1", 1)) + r", model QEMU HARDDISK, serial node1-sdb$",
                 "the plan shows the data disk's by-id name, model and serial"),
            line("node1", r"Formatting the data disk /dev/sd[a-z] .*HARV_LH_DEFAULT",
                 "the agent formatted the data disk as HARV_LH_DEFAULT"),
            no_line("node1", r"Formatting /dev/sd[a-z]6", "no partition 6 on the install disk")]
    + installed("node1", "create", "node1", "cluster-init", boot=False, data_disk=True,
                device=h.disk_by_id("node1", 0))))


SELECT_DATA = "size>=300G,size<1T"


def add_disk(node, size):
    """prepare: one more disk (patterned, so disks_unchanged-style checks mean something)."""
    def prepare(ctx):
        vm = ctx.vm[node]
        vm.disks.append(h.Disk(vm.tools, vm.workdir / f"{node}-sd{'abcdef'[len(vm.disks)]}.qcow2", size))
    return prepare


def disk_unchanged(node, i):
    @check(f"{node}: disk {i} (serial {h.disk_serial(node, i)}) is byte-for-byte unchanged (qemu-img compare)")
    def fn(ctx):
        disks = ctx.vm[node].disks
        if len(disks) <= i:
            return False, f"the VM has {len(disks)} disks"
        return disks[i].unchanged()
    return fn


scenario(Scenario(
    "select-data-disk",
    "create with three disks: install.device by its by-id name (300 GiB), install.data_disk the "
    f"selector {SELECT_DATA!r}: the install disk matches it too but is never chosen again, the "
    "200 GiB disk does not match, so the 400 GiB disk becomes the data disk (logged with every "
    "field, the plan lists every disk); check-disk --data-disk on it, the 200 GiB disk unchanged",
    [Node("node1", "create", "8G", data_disk="400G")],
    config_edit=with_token(lambda mode, text: set_key("data_disk", f'"{SELECT_DATA}"')(
        mode, set_key("device", h.disk_by_id("node1", 0))(mode, text))),
    prepare=add_disk("node1", "200G"),
    timeout=1500,
    checks=[line("node1", r'install\.data_disk "' + re.escape(SELECT_DATA) + r'" chose /dev/sd[a-z] size=429496729600 '
                 r'\(400 GiB\) .*serial=node1-sdb .*by-id ' + re.escape(h.disk_by_id("node1", 1)),
                 "the agent logged the disk the selector chose: the 400 GiB one, serial node1-sdb"),
            line("node1", r'^Data disk: /dev/sd[a-z] \(install\.data_disk "' + re.escape(SELECT_DATA) + r'"\), 400 GiB',
                 "the plan names the data disk and the selector"),
            line("node1", r"^  by-id " + re.escape(h.disk_by_id("node1", 1)) + r", model QEMU HARDDISK, serial node1-sdb$",
                 "the plan shows the chosen disk's by-id name"),
            line("node1", r"^  \* /dev/sd[a-z] size=429496729600 .*serial=node1-sdb ",
                 "the plan's listing marks the 400 GiB disk chosen"),
            line("node1", r"^    /dev/sd[a-z] size=322122547200 .*serial=node1-sda .*\(never chosen: chosen by install\.device\)$",
                 "the plan's listing shows the install disk left out"),
            line("node1", r"^    /dev/sd[a-z] size=214748364800 .*serial=node1-sdc ",
                 "the plan's listing shows the 200 GiB disk, not chosen"),
            line("node1", r"Formatting the data disk /dev/sd[a-z] \(400 GiB\)",
                 "the agent formatted the 400 GiB disk as HARV_LH_DEFAULT"),
            disk_unchanged("node1", 2)]
    + installed("node1", "create", "node1", "cluster-init", boot=False, data_disk=True,
                device=h.disk_by_id("node1", 0))))


def bios_boot(node, table):
    """Legacy BIOS: the plan's layout, GRUB for i386-pc installed from the image as the commit
    point, no UEFI loader and no NVRAM entry."""
    gpt = table == "gpt"
    return [
        served(node, "ipxe-create"), not_requested(node, "ipxe-create-efi"),
        line(node, r"a new " + ("GPT" if gpt else r"msdos partition table") + r" is written \(the machine booted by legacy BIOS",
             f"the plan: a new {'GPT' if gpt else 'msdos table'} for a legacy BIOS machine"),
        line(node, r"^  1 +bios +- +- .*BIOS boot" if gpt else r"^  3 +state +COS_STATE .*boot flag",
             "the plan: partition 1 bios_grub (1 MiB, not formatted)" if gpt else "the plan: the boot flag on COS_STATE (3)"),
        line(node, r"Installing GRUB for legacy BIOS: chroot <image> /usr/sbin/grub-install --target=i386-pc "
             r"--boot-directory=<COS_STATE> /dev/sda", "the image's grub-install ran in a chroot for /dev/sda"),
        line(node, r"GRUB for legacy BIOS on /dev/sda: .*the boot code written last: the disk is bootable",
             "GRUB's core image and boot code written and checked"),
        no_line(node, r"COS_GRUB|EFI/BOOT|UEFI boot entry", "no COS_GRUB, UEFI loader or NVRAM entry"),
        image_boot(node, efi=False),
    ]


scenario(Scenario(
    "bios-create",
    "create on a legacy BIOS machine (SeaBIOS, the NIC's iPXE ROM, the non-efi ipxe-create): GPT with "
    "the 1 MiB bios_grub partition first, GRUB for i386-pc installed from the image (grub-install in a "
    "chroot), the install SUCCEEDS and reboots, SeaBIOS boots the disk through GRUB into the test OS, "
    "qemu/check-disk --firmware bios passes",
    [Node("node1", "create", "8G", boot_disk=True, firmware="bios")],
    config_edit=with_token(),
    timeout=1500,
    checks=bios_boot("node1", "gpt")
    + installed("node1", "create", "node1", "cluster-init", firmware="bios")))

scenario(Scenario(
    "force-mbr",
    "install.force_mbr on a legacy BIOS machine: an msdos table (oem, recovery, state with the boot "
    "flag, persistent: no partition 6), /var/lib/harvester/defaultdisk among the persistent paths and "
    "not in VOLUMES, GRUB for i386-pc, the disk boots into the test OS, qemu/check-disk --force-mbr passes",
    [Node("node1", "create", "8G", boot_disk=True, firmware="bios")],
    config_edit=with_token(set_key("force_mbr", "true")),
    timeout=1500,
    checks=bios_boot("node1", "dos")
    + [line("node1", r"Writing the msdos partition table on /dev/sda: 4 partitions", "an msdos table, 4 partitions"),
       no_line("node1", r"Formatting /dev/sda[56]", "no partition 5 or 6 formatted"),
       line("node1", r"^Data disk: none, and no HARV_LH_DEFAULT partition \(install\.force_mbr\)",
            "the plan: no HARV_LH_DEFAULT partition")]
    + installed("node1", "create", "node1", "cluster-init", firmware="bios", force_mbr=True)))


def ctrl_alt_delete(vm):
    """A real stop of the unit: the key press makes systemd start ctrl-alt-del.target (reboot),
    which conflicts with harvester-install-agent.service: systemd sends the agent SIGTERM."""
    vm.hmp("sendkey ctrl-alt-delete")


scenario(Scenario(
    "sigterm",
    "Ctrl-Alt-Delete (sent through QEMU's monitor) once the install stage began: systemd stops "
    "the unit, the agent gets SIGTERM, removes the partition table it wrote, prints FAILED "
    "(stopped by SIGTERM) and sends the FAILED webhook; the disk, read from the host, has no "
    "partition table; the STARTED webhook named the install disk",
    [Node("node1", "create", "8G", actions=[(h.MARK + r" STAGE install", ctrl_alt_delete)])],
    listener=True, config_edit=with_webhooks(), grace=20,
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        line("node1", h.MARK + r" STAGE install", "the install stage began"),
        failed_in("node1", "install", r"stopped by SIGTERM.*partition table written to the install disk was removed",
                  "the agent was stopped by SIGTERM and removed the partition table"),
        no_line("node1", h.RE_SUCCEEDED.pattern, "no SUCCEEDED"),
        webhook("node1", "FAILED", "node1"),
        no_webhook("node1", "SUCCEEDED"),
        webhook_disk("node1", "STARTED", 300 << 30),
        no_partition_table("node1"),
        vm_ended("node1", "the VM came to an end (the reboot systemd began, not the timeout)")]))

scenario(Scenario(
    "join",
    "join (config-join.yaml): server_url and token in the rancherd configuration; the installed "
    "disk boots and its test OS says role=agent and the server",
    [Node("node2", "join", "8G", boot_disk=True)],
    config_edit=with_token(), timeout=1500,
    checks=[served("node2", "config-join.yaml")]
    + installed("node2", "join", "node2", "agent", SERVER_URL)
    + [bootstrap_files("node2", "join"), image_boot("node2")]))

scenario(Scenario(
    "join-cmdline",
    "harvester.install.mode=join and harvester.server_url=... on the kernel line over "
    "config-create.yaml: installs as a join node (server_url is a top-level key of Harvester's "
    "configuration, so its kernel argument is harvester.server_url; harvester.install.server_url "
    "is an unknown key that the agent warns about and ignores)",
    [Node("node1", "create", "8G")],
    cmdline_extra=f"harvester.install.mode=join harvester.server_url={SERVER_URL}",
    config_edit=with_token(), timeout=1500,
    checks=[served("node1", "config-create.yaml"), not_requested("node1", "config-join.yaml")]
    + installed("node1", "create", "node1", "agent", SERVER_URL, boot=False)
    [:-1] + [check_disk("node1", "join", "node1", SERVER_URL)]))

scenario(Scenario(
    "iso-checksum-mismatch",
    "install.iso_checksum a wrong sha512: FAILED naming the mismatch, FAILED webhook, disks "
    "unchanged",
    [Node("node1", "create", "8G")],
    listener=True, config_edit=with_webhooks(then=set_key("iso_checksum", WRONG_SHA512)),
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        served_whole("node1", "harvester-<version>-amd64.iso"),
        no_line("node1", h.MARK + r" STAGE disk-write", "no STAGE disk-write"),
    ] + failure("node1", "iso", r"\bchecksum mismatch for http://\S+/harvester-[^/\s]+-amd64\.iso: "
                rf"expected {WRONG_SHA512}, got sha512:[0-9a-f]{{128}}",
                "the ISO's checksum mismatch: the configured digest and the one received")))

scenario(Scenario(
    "iso-no-rootfs",
    "the served ISO lacks rootfs.squashfs: FAILED naming it, FAILED webhook, disks unchanged",
    [Node("node1", "create", "8G")],
    listener=True, no_rootfs_iso=True,
    # The release's SHA-512 list has no entry for this ISO: the lab's iso_checksum_url goes, and
    # install.skipchecks lets an ISO without any checksum through (refused otherwise), so the
    # download passes (unverified, with its warning) and the contents check must catch it.
    config_edit=with_webhooks(then=lambda mode, text: set_key("skipchecks", "true")(mode, re.sub(
        r"harvester-[^/\s]*-amd64\.iso", NO_ROOTFS_ISO,
        re.sub(r"(?m)^  iso_checksum_url: .*\n", "", text)))),
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        served("node1", NO_ROOTFS_ISO),
        no_line("node1", h.MARK + r" STAGE disk-write", "no STAGE disk-write"),
    ] + failure("node1", "iso", r'The ISO "[^"]+" lacks .*\brootfs\.squashfs\b',
                "the ISO's contents check naming rootfs.squashfs")))

scenario(Scenario(
    "device-missing",
    "install.device=/dev/sdz (no such disk): after the disk wait, FAILED naming /dev/sdz and "
    "listing the disks that exist; FAILED webhook; disks unchanged",
    [Node("node1", "create", "8G")],
    listener=True, config_edit=with_webhooks(then=set_key("device", "/dev/sdz")),
    timeout=900,
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        no_line("node1", h.MARK + r" STAGE disk-write", "no STAGE disk-write"),
        line("node1", r"^harvester-install: .*/dev/sda\s+300 GiB",
             "the disks that exist are listed (/dev/sda, 300 GiB)"),
    ] + failure("node1", "disk-check", r'install\.device "/dev/sdz" does not exist',
                "a message naming install.device /dev/sdz as missing")))

def failed_configuration(node, text, what):
    """The agent's own FAILED line, anchored at its start: the configuration stage, with text."""
    return line(node, r"^" + h.MARK + r" FAILED: configuration: .*" + text, what)


def mac_only(mac):
    """config_edit: the management interface given only as hwAddr (the README's form)."""
    def edit(mode, text):
        text, n = re.subn(rf"^(\s*)- name: {h.GUEST_IFACE}$", rf'\1- hwAddr: "{mac}"', text, flags=re.M)
        if n != 1:
            raise h.LabError(f"config-{mode}.yaml: no '- name: {h.GUEST_IFACE}' line to replace")
        return text
    return edit


NO_SUCH_MAC = "52:54:00:00:00:99"

scenario(Scenario(
    "mac-only-interface",
    "install.management_interface.interfaces given only as hwAddr: node1 (create, its NIC's MAC, "
    "upper case) resolves it to enp0s3 in the configuration stage and installs; node2 (join, a MAC "
    "no NIC has) fails in the configuration stage naming the MAC and the NICs present, its disk "
    "byte-for-byte unchanged",
    [Node("node1", "create", "8G"), Node("node2", "join", "8G")],
    config_edit=with_token(lambda mode, text: mac_only(
        h.CREATE_MAC.upper() if mode == "create" else NO_SUCH_MAC)(mode, text)),
    timeout=1500,
    # The agent names the MAC as it normalised it (lower case).
    checks=[line("node1", r"^harvester-install: install\.management_interface\.interfaces\[0\]: MAC "
                 + re.escape(h.CREATE_MAC) + r" is " + h.GUEST_IFACE + r"\.$",
                 f"the MAC-only interface was resolved to {h.GUEST_IFACE}")]
    + installed("node1", "create", "node1", "cluster-init", boot=False)
    + pxe_chain("node2", "join") + agent_started("node2") + [
        served("node2", "config-join.yaml"),
        failed_configuration("node2", re.escape(
            f"install.management_interface.interfaces[0]: no network interface has the MAC address "
            f"{NO_SUCH_MAC}; this machine has {h.GUEST_IFACE} ({h.JOIN_MAC})"),
            "FAILED: configuration: names the MAC and the NIC present with its MAC"),
        stopped_before("node2", RE_PAST_CONFIG, "no stage after configuration began"),
        no_line("node2", h.RE_SUCCEEDED.pattern, "no SUCCEEDED"),
        disks_unchanged("node2"),
    ]))


def kernel_args(value):
    """config_edit: os.additional_kernel_arguments set (after the os: password line)."""
    def edit(mode, text):
        text, n = re.subn(r"^(  password: .*)$", lambda m: m.group(1) + "\n  additional_kernel_arguments: " + value,
                          text, count=1, flags=re.M)
        if n != 1:
            raise h.LabError(f"config-{mode}.yaml: no '  password:' line under os:")
        return text
    return edit


scenario(Scenario(
    "bad-kernel-args",
    "os.additional_kernel_arguments with an unbalanced double quote (GRUB could not parse the "
    "boot menu): FAILED in the configuration stage naming the key, disks byte-for-byte unchanged",
    [Node("node1", "create", "8G")],
    config_edit=with_token(kernel_args("'nomodeset rd.break=\"pre-mount'")),
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        served("node1", "config-create.yaml"),
        failed_configuration("node1", re.escape('os.additional_kernel_arguments: "nomodeset rd.break=\"pre-mount" '
                                                "has an unbalanced double quote"),
                             "FAILED: configuration: names os.additional_kernel_arguments and the unbalanced quote"),
        stopped_before("node1", RE_PAST_CONFIG, "no stage after configuration began"),
        no_line("node1", h.RE_SUCCEEDED.pattern, "no SUCCEEDED"),
        disks_unchanged("node1"),
    ]))

# --- One boot entry and one config URL for a rack (issue 13 item 4) --------------------------------

# iPXE expands ${...} in its scripts itself (no escape), so the agent's ${mac} reaches the kernel
# command line through a file iPXE loads without reading: a first initrd, a cpio holding
# /etc/cmdline.d/90-harvester-rack.conf with the config_url line (dracut and the agent read
# /etc/cmdline.d/*.conf as kernel arguments). The rack's one script loads it and passes
# BOOTIF=01-${netX/mac:hexhyp} (iPXE's own expansion: the NIC that booted); the agent expands
# config-${mac}.yaml from BOOTIF and fetches the node's own file.
RACK_SCRIPT = "ipxe-rack-efi"
RACK_CPIO = "rack-cmdline.cpio"
RACK_CONF = "etc/cmdline.d/90-harvester-rack.conf"
RACK = [("node1", "create", h.CREATE_MAC, "node1"), ("node2", "join", h.JOIN_MAC, "node2"),
        ("node3", "join", "52:54:00:69:d5:93", "node3")]


def write_cpio(path, files):
    """A newc cpio of files {relative path: text} (directories made), owned by root."""
    with tempfile.TemporaryDirectory(prefix="pxe-lab-cpio-") as d:
        for rel, text in files.items():
            (Path(d) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(d) / rel).write_text(text)
        names = subprocess.run(["find", ".", "-mindepth", "1"], cwd=d, check=True, capture_output=True,
                               text=True).stdout
        with open(path, "wb") as f:
            subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"], cwd=d, check=True,
                           input=names.encode(), stdout=f)
    os.chmod(path, 0o644)


def rack_prepare(ctx):
    """The rack's folder: one iPXE script, its cmdline cpio and config-<mac>.yaml per node, no
    config-create/join.yaml; each node boots the one script. The per-node copies under
    /n/<node>/harvester/ (request attribution) differ only in that URL prefix."""
    served = ctx.lab.served
    create = (served.dir / "config-create.yaml").read_text()
    join = (served.dir / "config-join.yaml").read_text()
    configs = {}
    for node, mode, mac, hostname in RACK:
        text = create if mode == "create" else join
        text, n = re.subn(r"^  hostname: \S+.*$", f"  hostname: {hostname}", text, flags=re.M)
        if n != 1:
            raise h.LabError(f"config-{mode}.yaml: no '  hostname:' line")
        configs[f"config-{mac}.yaml"] = text
    kernel = served.kernel_line("ipxe-create-efi")
    kernel, n = re.subn(r" harvester\.install\.config_url=\S+", "", kernel)
    # The cpio goes first: the kernel finds no archive after a zstd-compressed one (dracut's).
    kernel, k = re.subn(r"^(kernel \S+) ", rf"\1 initrd={RACK_CPIO} ", kernel)
    if n != 1 or k != 1:
        raise h.LabError(f"no config_url on the kernel line {kernel!r}")
    script = "\n".join(["#!ipxe", f"{kernel} BOOTIF=01-${{netX/mac:hexhyp}}", f"initrd {RACK_CPIO}",
                        next(l for l in (served.dir / "ipxe-create-efi").read_text().splitlines()
                             if l.startswith("initrd ")), "boot"]) + "\n"
    dirs = [(served.dir, served.base)] + [
        (served.root / "n" / node / "harvester", f"http://{served.server}/n/{node}/harvester")
        for node, _, _, _ in RACK]
    for d, base in dirs:
        def own(text):
            return text.replace(f"{served.base}/", f"{base}/")
        for name in ("config-create.yaml", "config-join.yaml"):
            (d / name).unlink(missing_ok=True)
        for name, text in configs.items():
            h.write_public(d / name, own(text))
        h.write_public(d / RACK_SCRIPT, own(script))
        write_cpio(d / RACK_CPIO, {RACK_CONF: f"harvester.install.config_url={base}/config-${{mac}}.yaml\n"})
    for node, _, _, _ in RACK:
        ctx.vm[node].bootfile = f"http://{served.server}/n/{node}/harvester/{RACK_SCRIPT}"


def rack_config(node, mac):
    @check(f"{node}: the agent expanded the rack's config-${{mac}}.yaml to config-{mac}.yaml, fetched it "
           "and no other node's")
    def fn(ctx):
        problems = []
        if not ctx.console(node).find(r"config_url expands to http://\S+/config-" + re.escape(mac)
                                      + r"\.yaml on this node\.$"):
            problems.append("no 'config_url expands to .../config-" + mac + ".yaml on this node.'")
        got = [p for _, p, _ in ctx.requests(node) if re.match(r"/harvester/config-", p)]
        if got != [f"/harvester/config-{mac}.yaml"]:
            problems.append(f"config requests: {got}")
        return not problems, "; ".join(problems)
    return fn


scenario(Scenario(
    "three-nodes",
    "three nodes at once from one nginx, one iPXE script for the rack whose config_url (in a "
    "cmdline.d cpio it loads) holds ${mac}: each node's agent expands it and fetches its own "
    "config-<mac>.yaml; node1 creates, node2 and node3 join; each installs, reboots and boots its "
    "installed disk (three VMs at once on the VM slots)",
    [Node(node, mode, "8G", mac=mac, boot_disk=True) for node, mode, mac, _ in RACK],
    config_edit=with_token(), prepare=rack_prepare, timeout=2400,
    checks=[c for node, mode, mac, hostname in RACK
            for c in [rack_config(node, mac)] + installed(
                node, mode, hostname, "cluster-init" if mode == "create" else "agent",
                None if mode == "create" else SERVER_URL, script=RACK_SCRIPT)]))


# --- URL variables (issue 13 item 4) -------------------------------------------------------------

# iPXE expands ${...} in every script line until none is left (no escape), so a ${mac} on the
# kernel line would be iPXE's. The agent's own expansion is proved through the served config file
# instead: its iso_url holds ${mac_hyphen} and its iso_checksum_url ${uuid} (QEMU's -uuid, the
# SMBIOS product UUID), both served only under the expanded names.
URL_UUID = "4c4c4544-0031-3510-8052-b4c04f4a3732"


def url_vars(mode, text):
    text, n = re.subn(r"^(  iso_url: )(\S+)/(harvester-[^/\s]+-amd64\.iso)$",
                      lambda m: f'{m.group(1)}"{m.group(2)}/by-mac/${{mac_hyphen}}/{m.group(3)}"', text, flags=re.M)
    text, k = re.subn(r"^(  iso_checksum_url: )(\S+)/([^/\s]+)$",
                      lambda m: f'{m.group(1)}"{m.group(2)}/by-uuid/${{uuid}}/{m.group(3)}"', text, flags=re.M)
    if n != 1 or k != 1:
        raise h.LabError(f"config-{mode}.yaml: no iso_url/iso_checksum_url line to template")
    return text


def url_vars_prepare(node, mac):
    """prepare: the node's SMBIOS UUID is URL_UUID; /harvester/by-mac/<mac-with-hyphens>/ and
    /harvester/by-uuid/<uuid>/ are the release folder (symlinks), nothing else is."""
    def prepare(ctx):
        vm = ctx.vm[node]
        command = vm.command

        def with_uuid(*args, **kw):
            return command(*args, **kw) + ["-uuid", URL_UUID]
        vm.command = with_uuid
        for d in (ctx.lab.served.dir, ctx.lab.served.root / "n" / node / "harvester"):
            for sub, name in (("by-mac", mac.replace(":", "-")), ("by-uuid", URL_UUID)):
                (d / sub).mkdir(mode=0o755, exist_ok=True)
                (d / sub).chmod(0o755)
                (d / sub / name).symlink_to("..")
    return prepare


def nothing_unexpanded(node):
    @check(f"{node}: no request named a variable unexpanded")
    def fn(ctx):
        bad = [p for _, p, _ in ctx.requests(node) if "$" in p or "%24" in p or "%7B" in p.upper()]
        return not bad, f"requests: {bad}"
    return fn


scenario(Scenario(
    "url-template",
    "one config for every node, its iso_url holding ${mac_hyphen} and its iso_checksum_url ${uuid}: "
    "the agent expands them in the initrd from the booting NIC and SMBIOS, logs the expanded URLs, "
    "and fetches and verifies the ISO from the only paths that exist, the expanded ones",
    [Node("node1", "create", "8G", stop=[h.MARK + r" STAGE disk-check"])],
    config_edit=with_token(url_vars), prepare=url_vars_prepare("node1", h.CREATE_MAC), grace=1.0,
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        served("node1", "config-create.yaml"),
        line("node1", r"^harvester-install: install\.iso_url expands to http://\S+/by-mac/"
             + h.CREATE_MAC.replace(":", "-") + r"/harvester-\S+-amd64\.iso on this node\.$",
             "the agent logged iso_url with ${mac_hyphen} expanded to the NIC's MAC"),
        line("node1", r"^harvester-install: install\.iso_checksum_url expands to http://\S+/by-uuid/"
             + URL_UUID + r"/\S+ on this node\.$",
             "the agent logged iso_checksum_url with ${uuid} expanded to the SMBIOS UUID"),
        served_whole("node1", f"by-mac/{h.CREATE_MAC.replace(':', '-')}/harvester-<version>-amd64.iso"),
        line("node1", h.MARK + r" STAGE disk-check", "the ISO stage passed (fetched and verified)"),
        nothing_unexpanded("node1"),
        no_line("node1", h.RE_FAILED.pattern, "no FAILED marker"),
    ]))



# --- ISO mirrors (issue 13 item 5) ---------------------------------------------------------------

# install.iso_url as a YAML list: a first mirror that answers 404 (same file name, another folder,
# as validation requires with iso_checksum_url), then the release's. The resume from a mid-way drop
# is proved outside a VM (tests/download/test-fetch.c, test_mirror_*, against fault-server.py);
# this proves the list reaches the download in the real initrd.
def iso_mirrors(mode, text):
    text, n = re.subn(r"^(  iso_url: )(\S+)/(harvester-[^/\s]+-amd64\.iso)$",
                      lambda m: f"  iso_url:\n    - {m.group(2)}/gone/{m.group(3)}\n    - {m.group(2)}/{m.group(3)}",
                      text, flags=re.M)
    if n != 1:
        raise h.LabError(f"config-{mode}.yaml: no iso_url line to turn into mirrors")
    return text


scenario(Scenario(
    "iso-mirrors",
    "install.iso_url lists two mirrors: the first answers 404 and is named in a warning and left "
    "out, the second serves the ISO whole; verified, the install goes on to the disk check",
    [Node("node1", "create", "8G", stop=[h.MARK + r" STAGE disk-check"])],
    config_edit=with_token(iso_mirrors), grace=1.0,
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        served("node1", "config-create.yaml"),
        line("node1", r"harvester-install: ISO: 2 mirrors, tried in order",
             "the agent has both mirrors, in order"),
        served("node1", "gone/harvester-<version>-amd64.iso", 404),
        line("node1", r"warning: ISO: http://\S+/gone/harvester-\S+-amd64\.iso answered HTTP 404: .*"
             r"\(mirror 1 of 2, not tried again\)", "the first mirror's 404 is named and it is left out"),
        served_whole("node1", "harvester-<version>-amd64.iso"),
        line("node1", r"harvester-install: ISO: checksum verified: sha512:", "the ISO is verified"),
        line("node1", r"harvester-install: ISO: completed on http://\S+/harvester-\S+-amd64\.iso \(mirror 2 of 2\)",
             "the ISO came from the second mirror"),
        line("node1", h.MARK + r" STAGE disk-check", "the ISO stage passed"),
        no_line("node1", h.RE_FAILED.pattern, "no FAILED marker"),
    ]))

# --- pxe-first and power-loss (issue 9 item 3, issue 14 item 4) -----------------------------------

RE_PXE_TRY = r"Start PXE over IPv4|>>Start PXE|iPXE initialising|iPXE \d"
RE_DISK_GAVE_UP = r"BdsDxe: failed to load Boot[0-9A-F]{4} \"UEFI QEMU HARDDISK"


def pxe_first_flow(ctx, node, vm, accel, cpu, timeout, grace, live):
    """PXE install (QEMU's boot order: network first, written into the VM's own NVRAM by OVMF),
    then power on again with the network and the PXE server still there but no fw_cfg boot
    order: the firmware follows its NVRAM's BootOrder, which the install must have changed."""
    out = vm.run(accel, cpu, timeout, stop=STOP_ALWAYS, grace=grace, live=live)
    ctx.outcome[node] = out
    if not (ctx.console(node).find(h.RE_SUCCEEDED) and out[0] == "exited"):
        return
    ctx.requests_at_reboot = len(ctx.requests(node))
    vm.bootindex = False
    vm.disk_console = h.Console()
    ctx.disk_boot[node] = vm.run(
        accel, cpu, min(timeout, 600), stop=[r"\[test-os\] done", RE_PXE_TRY, h.MARK + r" STAGE"],
        grace=grace, live=live, console=vm.disk_console,
        label="power on again: PXE server and network still there, no fw_cfg boot order")


def boots_own_disk_first(node):
    @check(f"{node}: the next power-on boots Boot#### \"elemental-shim\" (the install's entry, before the "
           "network that BootOrder listed first), not PXE: the install does not run twice")
    def fn(ctx):
        if node not in ctx.disk_boot:
            return False, "no second power-on (no SUCCEEDED + reboot)"
        con = ctx.vm[node].disk_console
        problems = []
        before = ctx.console(node).find(r"BootOrder before: (Boot[0-9A-F]{4} \"[^\"]*\")")
        if not before or "PXE" not in before[1].group(1):
            problems.append("the agent's 'BootOrder before:' does not list the network first: "
                            + (before[1].group(1) if before else "no such line"))
        if not con.find(r'BdsDxe: (loading|starting) Boot[0-9A-F]{4} "elemental-shim"'):
            problems.append("the firmware did not start \"elemental-shim\"")
        hit = con.find(RE_PXE_TRY) or con.find(h.MARK)
        if hit:
            problems.append(f"it booted the network / the installer again: {hit[1].string.strip()[:120]}")
        more = ctx.requests(node)[getattr(ctx, "requests_at_reboot", 0):]
        if more:
            problems.append(f"nginx served {[p for _, p, _ in more]} after the reboot")
        return not problems, "; ".join(problems)
    return fn


scenario(Scenario(
    "pxe-first",
    "the VM keeps its UEFI variables and its BootOrder lists the network first; the PXE server "
    "keeps serving the automatic install: after the install the next power-on boots the disk "
    "through the new elemental-shim entry, and the install does not run twice",
    [Node("node1", "create", "8G", boot_disk=True, flow=pxe_first_flow)],
    config_edit=with_token(), timeout=1500,
    checks=installed("node1", "create", "node1", "cluster-init") + [image_boot("node1"),
                                                                      boots_own_disk_first("node1")]))


# Where power-loss kills the VM (QEMU monitor `quit`): the first line matching each pattern.
POWER_LOSS_KILLS = [
    ("after disk-write (STAGE install: table and empty file systems)", h.MARK + r" STAGE install"),
    ("in the middle of the image copy (mke2fs -d writing active.img)", r"Making active\.img"),
    ("after COS_OEM is complete and synced, before the loader (the last moment before the commit)",
     r"COS_OEM are complete and synced"),
]


def power_loss_flow(ctx, node, vm, accel, cpu, timeout, grace, live):
    """For each kill point: PXE install, killed there; then the disk alone (no network) must
    not boot; finally a PXE install to the end, and the disk boots."""
    vm.monitor = vm.workdir / f"{node}-monitor.sock"
    ctx.kills = []
    for what, pattern in POWER_LOSS_KILLS:
        con = h.Console()
        vm.pxe = vm.net = True
        out = vm.run(accel, cpu, timeout, stop=STOP_ALWAYS, grace=grace, live=live, console=con,
                     kill_on=pattern, label=f"PXE install, killed {what}")
        killed_at = con.find(pattern)
        vm.pxe = vm.net = False
        disk = h.Console()
        boot = vm.run(accel, cpu, 240, stop=[r"\[test-os\] done", r"Shell> ", RE_DISK_GAVE_UP], grace=5.0,
                      live=live, console=disk, label=f"boot the disk alone after the kill {what}")
        ctx.kills.append({"what": what, "outcome": out, "killed_at": killed_at, "install": con,
                          "disk_boot": boot, "disk": disk})
    vm.pxe = vm.net = True
    ctx.outcome[node] = vm.run(accel, cpu, timeout, stop=STOP_ALWAYS, grace=grace, live=live,
                               label="PXE install to the end")
    if ctx.console(node).find(h.RE_SUCCEEDED) and ctx.outcome[node][0] == "exited":
        ctx.disk_boot[node] = vm.boot_disk(accel, cpu, timeout, live=live)


def kills_left_no_bootable_disk(node):
    @check(f"{node}: each kill ({len(POWER_LOSS_KILLS)} points) left a disk the firmware does not boot "
           "(no test OS, no GRUB; it falls through)")
    def fn(ctx):
        kills = getattr(ctx, "kills", [])
        if len(kills) != len(POWER_LOSS_KILLS):
            return False, f"{len(kills)} kill points ran"
        problems, seen = [], []
        for k in kills:
            if k["outcome"][0] != "killed" or not k["killed_at"]:
                problems.append(f"{k['what']}: not killed there ({k['outcome'][0]})")
                continue
            d = k["disk"]
            booted = d.find(r"\[test-os\]") or d.find(r"GNU GRUB|grub>|Linux version \d")
            gave_up = d.find(RE_DISK_GAVE_UP)
            if booted:
                problems.append(f"{k['what']}: the disk booted: {booted[1].string.strip()[:100]}")
            elif not gave_up:
                problems.append(f"{k['what']}: the firmware did not report giving up on the disk "
                                f"({k['disk_boot'][0]})")
            seen.append(f"{k['what']}: killed at {k['killed_at'][0]:.0f} s, disk boot: "
                        + (gave_up[1].string.strip()[:80] if gave_up else "?"))
        return not problems, "; ".join(problems) or " | ".join(seen)
    return fn


scenario(Scenario(
    "power-loss",
    "the VM killed (QEMU monitor quit, no shutdown) after STAGE install, in the middle of the "
    "image copy and just before the loader is written; after each kill the disk alone does not "
    "boot (the firmware falls through), and the next PXE boot installs over it; the last install "
    "succeeds and the disk boots",
    [Node("node1", "create", "8G", boot_disk=True, flow=power_loss_flow)],
    config_edit=with_token(), timeout=1500,
    checks=[kills_left_no_bootable_disk("node1")]
    + installed("node1", "create", "node1", "cluster-init") + [image_boot("node1")]))


# An old Harvester data disk left in the server: a small ext4 labelled HARV_LH_DEFAULT with a file,
# made on the host (mkfs.ext4 -d, 4 KiB blocks, one block group: one superblock at 1024).
STRAY_FILE = "old-node-data.txt"
STRAY_TEXT = "volumes of an old Harvester node: keep me\n"
STRAY_SB_LABEL = (1024 + 120, 1024 + 136)     # s_volume_name
STRAY_SB_CHECKSUM = (1024 + 1020, 1024 + 1024)  # s_checksum (metadata_csum)
# what any write of the superblock updates: s_wtime, s_kbytes_written, s_wtime_hi
STRAY_SB_STAMPS = ((1024 + 48, 1024 + 52), (1024 + 376, 1024 + 384), (1024 + 628, 1024 + 629))


def stray_serial(node, i):
    """Disk i's serial (the kernel names three AHCI disks in probe order, so the disks are named by
    /dev/disk/by-id, as the disk engineer's harness does for every VM)."""
    return f"{node}-sd{'abc'[i]}"


def stray_by_id(node, i):
    return f"/dev/disk/by-id/ata-QEMU_HARDDISK_{stray_serial(node, i)}"


def add_stray_disk(node):
    """prepare: node's third disk is the old data disk; a raw copy of it is kept. Every disk gets
    a serial (unless the harness gave it one)."""
    def prepare(ctx):
        vm = ctx.vm[node]
        command = vm.command

        def with_serials(*args, **kw):
            cmd = command(*args, **kw)
            for i, a in enumerate(cmd):
                m = re.fullmatch(r"ide-hd,drive=sd([a-f]),bus=ahci\.(\d+)(.*)", a)
                if m and ",serial=" not in a:
                    cmd[i] = a + f",serial={stray_serial(node, int(m.group(2)))}"
            return cmd
        vm.command = with_serials
        work = vm.workdir
        src = work / f"{node}-stray-src"
        src.mkdir(exist_ok=True)
        (src / STRAY_FILE).write_text(STRAY_TEXT)
        raw = work / f"{node}-sdc.before.raw"
        with open(raw, "wb") as f:
            f.truncate(64 << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "HARV_LH_DEFAULT", "-d", str(src), str(raw)],
                       check=True)
        disk = h.Disk(vm.tools, work / f"{node}-sdc.qcow2", "64M", pattern=False)
        subprocess.run([vm.tools.qemu_img, "convert", "-f", "raw", "-O", "qcow2", str(raw), str(disk.path)],
                       check=True)
        vm.disks.append(disk)
    return prepare


def stray_label_logged(node):
    """One 'Clearing the label' line, naming neither the install nor the data disk of the plan."""
    @check(f"{node}: the agent logged clearing one HARV_LH_DEFAULT label, on neither the install nor the data disk")
    def fn(ctx):
        con = ctx.console(node)
        inst = con.find(r"^Install disk: (/dev/sd[a-z]) \(install\.device")
        data = con.find(r"^Data disk: (/dev/sd[a-z]) \(install\.data_disk")
        cleared = [m.group(1) for _, m in con.all(
            r"Clearing the label HARV_LH_DEFAULT of the ext4 file system on (/dev/sd[a-z])\b")]
        if not inst or not data:
            return False, "the plan's Install disk / Data disk lines are missing"
        ok = len(cleared) == 1 and cleared[0] not in (inst[1].group(1), data[1].group(1))
        return ok, f"cleared {cleared}; install {inst[1].group(1)}, data {data[1].group(1)}"
    return fn


def stray_disk_relabelled(node):
    """From the host, after the VM ended: sdc has no label any more, its file reads back, and every
    byte other than the superblock's label, checksum and write stamps is what it was."""
    @check(f"{node}: sdc (an old HARV_LH_DEFAULT) lost its label and nothing else")
    def fn(ctx):
        vm = ctx.vm[node]
        before = vm.workdir / f"{node}-sdc.before.raw"
        after = vm.workdir / f"{node}-sdc.after.raw"
        if len(vm.disks) < 3:
            return False, "the VM had no third disk"
        subprocess.run([vm.tools.qemu_img, "convert", "-f", "qcow2", "-O", "raw", str(vm.disks[2].path), str(after)],
                       check=True)
        problems = []
        label = subprocess.run(["blkid", "-p", "-o", "value", "-s", "LABEL", str(after)],
                               stdout=subprocess.PIPE, text=True).stdout.strip()
        if label:
            problems.append(f"its label is {label!r}")
        cat = subprocess.run(["debugfs", "-R", f"cat /{STRAY_FILE}", str(after)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        if cat != STRAY_TEXT:
            problems.append(f"/{STRAY_FILE} reads {cat[:80]!r}")
        a, b = before.read_bytes(), after.read_bytes()
        if len(a) != len(b):
            problems.append(f"size {len(b)}, was {len(a)}")
        else:
            changed = [i for blk in range(0, len(a), 4096) if a[blk:blk + 4096] != b[blk:blk + 4096]
                       for i in range(blk, min(blk + 4096, len(a))) if a[i] != b[i]]
            allowed = (STRAY_SB_LABEL, STRAY_SB_CHECKSUM) + STRAY_SB_STAMPS
            outside = [i for i in changed if not any(lo <= i < hi for lo, hi in allowed)]
            if outside:
                problems.append(f"{len(outside)} bytes changed outside the label, first at {outside[0]}")
            if not changed:
                problems.append("not a byte changed")
        return not problems, "; ".join(problems) or "label cleared, the file and every other byte unchanged"
    return fn


scenario(Scenario(
    "stray-label",
    "create with an install disk, a data disk and a third disk left from an old node (an ext4 "
    "labelled HARV_LH_DEFAULT holding a file), all named by /dev/disk/by-id: the agent clears the "
    "third disk's label (logged) and nothing else, as v1.1.2's clear_disk_label; the data disk "
    "becomes the new HARV_LH_DEFAULT; checked from the host",
    [Node("node1", "create", "8G", data_disk="300G")],
    config_edit=with_token(lambda mode, text: set_key("data_disk", stray_by_id("node1", 1))(
        mode, set_key("device", stray_by_id("node1", 0))(mode, text))),
    prepare=add_stray_disk("node1"),
    timeout=1500,
    checks=[stray_label_logged("node1")]
    + installed("node1", "create", "node1", "cluster-init", boot=False, data_disk=True,
                device=stray_by_id("node1", 0))
    + [stray_disk_relabelled("node1")]))


# The old install's LVM on the install disk (lvm-holder): made from the host, where the kernel has
# no device-mapper (pvcreate/vgcreate need none; lvcreate only with --driverloaded n).
LVM_VG, LVM_LV = "oldvg", "oldlv"
# The test release's initrd (qemu/release/dracut/99pxe-lab-lvm) activates it before the agent starts.
RE_LVM_ACTIVATED = r"^\[pxe-lab\] activated the LVM volume group " + LVM_VG + r"$"


def add_lvm_install_disk(node):
    """prepare: node's install disk (sda, 300 GiB) becomes an LVM physical volume of the volume
    group LVM_VG with one logical volume LVM_LV, written on a loop device over a sparse raw image
    (nothing of it kept on the host: --devices names only that loop device, no metadata backup),
    then converted to the VM's qcow2."""
    def prepare(ctx):
        vm = ctx.vm[node]
        disk = vm.disks[0]
        raw = vm.workdir / f"{node}-sda.lvm.raw"
        with open(raw, "wb") as f:
            f.truncate(h.parse_size(disk.size))
        loop = subprocess.run(["losetup", "--find", "--show", str(raw)], check=True,
                              stdout=subprocess.PIPE, text=True).stdout.strip()
        try:
            opts = ["--devices", loop, "--config", "backup { backup=0 archive=0 }"]
            for cmd in (["pvcreate"] + opts + [loop],
                        ["vgcreate"] + opts + [LVM_VG, loop],
                        ["lvcreate"] + opts + ["--driverloaded", "n", "--activate", "n", "--zero", "n",
                                               "-n", LVM_LV, "-L", "1G", LVM_VG]):
                subprocess.run(["lvm"] + cmd, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        finally:
            subprocess.run(["losetup", "-d", loop], check=True)
        subprocess.run([vm.tools.qemu_img, "convert", "-f", "raw", "-O", "qcow2", str(raw), str(disk.path)],
                       check=True)
        raw.unlink()
    return prepare


def lvm_holder_stopped(node):
    """The agent found the active VG holding the install disk and stopped it with vgchange -an
    (agent/wipe.c holder_stop): its line, anchored, naming the install disk of the plan."""
    rx = (r"^harvester-install: (/dev/sd[a-z]) is held by the LVM logical volume /dev/mapper/" + LVM_VG + "-" + LVM_LV
          + r" of volume group \"" + LVM_VG + r"\" of an old install; stopping it \(lvm vgchange\)\.$")

    @check(f"{node}: the agent stopped the active volume group {LVM_VG} holding the install disk (lvm vgchange)")
    def fn(ctx):
        con = ctx.console(node)
        inst = con.find(r"^Install disk: (/dev/sd[a-z]) \(install\.device")
        hit = con.find(rx)
        if not inst:
            return False, "the plan's Install disk line is missing"
        if not hit:
            return False, f"no console line matches /{rx}/"
        return hit[1].group(1) == inst[1].group(1), f"at {hit[0]:.1f} s: {hit[1].string.strip()[:200]}"
    return fn


def no_lvm_label(node):
    """From the host: the LVM label (LABELONE, in one of the first four sectors) is gone from the
    install disk, and blkid sees no LVM2_member there."""
    @check(f"{node}: no LVM physical volume label left on the install disk")
    def fn(ctx):
        vm = ctx.vm[node]
        head = vm.workdir / f"{node}-sda.head.raw"
        subprocess.run([vm.tools.qemu_img, "dd", "-f", "qcow2", "-O", "raw", "bs=512", "count=2048",
                        f"if={vm.disks[0].path}", f"of={head}"], check=True)
        data = head.read_bytes()
        kind = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", str(head)],
                              stdout=subprocess.PIPE, text=True).stdout.strip()
        labels = [i // 512 for i in range(0, 2048, 512) if data[i:i + 8] == b"LABELONE"]
        ok = not labels and kind != "LVM2_member"
        return ok, f"LABELONE in sectors {labels}, blkid type {kind!r}"
    return fn


scenario(Scenario(
    "lvm-holder",
    "create on an install disk that an old install left as an LVM physical volume, its volume group "
    "active in the installer (pxe-lab.lvm.vg= makes the test initrd activate it before the agent "
    "starts): the agent reports the holder, stops it (vgchange -an) before the wipe, installs, "
    "and the disk has no LVM label left, passes check-disk and boots",
    [Node("node1", "create", "8G", boot_disk=True)],
    cmdline_extra=f"pxe-lab.lvm.vg={LVM_VG}",
    config_edit=with_token(), prepare=add_lvm_install_disk("node1"),
    timeout=1500,
    checks=[line("node1", RE_LVM_ACTIVATED, f"the test initrd activated the volume group {LVM_VG}"),
            lvm_holder_stopped("node1")]
    + installed("node1", "create", "node1", "cluster-init")
    + [no_lvm_label("node1"), image_boot("node1")]))


# --- Running one ----------------------------------------------------------------------------------

def run_nodes(lab, ctx, nodes, accel, cpu, timeout, grace, live):
    """Boots the nodes at once (one thread each) and waits for all."""
    errors = []

    def boot(node):
        vm = ctx.vm[node.name]
        try:
            if node.flow:
                node.flow(ctx, node.name, vm, accel, cpu, timeout, grace, live and len(nodes) == 1)
                return
            ctx.outcome[node.name] = vm.run(
                accel, cpu, timeout, stop=STOP_ALWAYS + node.stop, grace=grace, actions=node.actions,
                live=live and len(nodes) == 1, prefix=(f"{node.name}| " if live and len(nodes) > 1 else None))
            if node.boot_disk and ctx.console(node.name).find(h.RE_SUCCEEDED) \
                    and ctx.outcome[node.name][0] == "exited":
                ctx.disk_boot[node.name] = vm.boot_disk(accel, cpu, timeout, live=live and len(nodes) == 1)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=boot, args=(n,), daemon=True) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def run_scenario(name, build_dir=None, verbose=False):
    """Returns the exit code: 0 pass, 1 fail, 77 skip."""
    s = SCENARIOS[name]
    t_start = time.monotonic()
    try:
        tools = h.Tools()
    except h.Skip as e:
        print(f"SKIP {name}: {e}")
        return 77
    release, t_release = h.ensure_release(build_dir, quiet=True)
    accel, cpu = tools.accel()
    print(f"scenario {name}: {s.title}")
    print(f"  release {release.version} ready in {t_release:.1f} s; accel {accel}")
    try:
        extra = {}
        if s.no_rootfs_iso:
            extra[NO_ROOTFS_ISO] = h.ensure_iso_without_rootfs(release)
        lab = h.Lab(release, tools, way=s.way, cmdline_extra=s.cmdline_extra,
                    no_automatic=s.no_automatic, config_404=s.config_404,
                    config_edit=s.config_edit, name=name, listener=s.listener,
                    extra_files=extra, tftp=s.tftp, flavour=s.flavour)
    except h.Skip as e:
        print(f"SKIP {name}: {e}")
        return 77
    ctx = Ctx(lab)
    failed = True
    try:
        for node in s.nodes:
            ctx.vm[node.name] = lab.new_vm(node.name, node.mode, node.mac, node.mem,
                                           data_disk=node.data_disk, netboot=node.netboot,
                                           firmware=node.firmware)
        if s.prepare:
            s.prepare(ctx)
        t_vm = 0.0
        if s.nodes:
            efi_suffix = "-efi" if s.nodes[0].firmware == "uefi" else ""
            print(f"  kernel line: {lab.served.kernel_line(f'ipxe-{s.nodes[0].mode}{efi_suffix}')}")
        with h.vm_slots(len(s.nodes)) if s.nodes else contextlib.nullcontext():
            t_vm = time.monotonic()
            run_nodes(lab, ctx, s.nodes, accel, cpu, s.timeout, s.grace, verbose)
            t_vm = time.monotonic() - t_vm
        results = []
        for c in s.checks:
            try:
                ok, detail = c(ctx)
            except Exception as e:  # noqa: BLE001 - a check that cannot run fails
                ok, detail = False, f"check error: {e!r}"
            results.append((ok, c.what, detail))
        failed = not all(ok for ok, _, _ in results)
        for ok, what, detail in results:
            print(f"  {'ok  ' if ok else 'FAIL'} {what}" + (f"\n         {detail}" if detail and (not ok or verbose) else ""))
        for node in s.nodes:
            reason, secs = ctx.outcome.get(node.name, ("not run", 0))
            steps = ", ".join(f"{m} {t:.1f}" for m, t in ctx.console(node.name).milestones())
            print(f"  {node.name}: {reason} after {secs:.1f} s; console milestones (s): {steps}")
            failed_line = ctx.console(node.name).find(h.RE_FAILED)
            if failed_line:
                print(f"  {node.name}: FAILED: {failed_line[1].group(1)[:300]}")
            stages = [m.groups() for _, m in ctx.console(node.name).all(RE_STAGE_TIME)]
            if stages:
                print(f"  {node.name}: agent stage times (s): "
                      + ", ".join(f"{n} {t}" for n, t in stages))
            if node.name in ctx.disk_boot:
                r2, s2 = ctx.disk_boot[node.name]
                print(f"  {node.name}: boot from the installed disk: {r2} after {s2:.1f} s")
        print(f"  wall time: {time.monotonic() - t_start:.1f} s (VMs {t_vm:.1f} s)")
        print(f"{'FAIL' if failed else 'PASS'} {name}")
    finally:
        logdir = h.LOGS / name
        if failed:
            dest = lab.save_logs(logdir)
            for node in s.nodes:
                print(f"--- {node.name}: last lines of the serial console (all of it: {dest}/{node.name}-serial.log)")
                print(ctx.console(node.name).tail(60))
        else:
            shutil.rmtree(logdir, ignore_errors=True)
        lab.close()
    return 1 if failed else 0
