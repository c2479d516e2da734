# SPDX-License-Identifier: Apache-2.0
"""The VM scenarios of the meson suite "qemu" (qemu/meson.build runs `qemu/pxe-lab test NAME`).

A scenario boots one or more lab VMs through the seed's PXE chain and then checks what they
printed on their serial consoles (the agent's "[harvester-install] ..." markers and messages, the
test OS's "[test-os] ..." lines), what nginx served to whom, what dhcpd leased, and whether the
disks were left byte-for-byte unchanged. Each check is listed with ok/FAIL; the serial log of a
failed scenario is kept in qemu/logs/<name>/ and its tail printed.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

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
                 boot_disk=False, actions=()):
        self.name, self.mode, self.mem, self.mac = name, mode, mem, mac
        self.data_disk = data_disk
        self.stop = list(stop)
        self.actions = list(actions)  # [(console pattern, fn(vm))] during the PXE boot
        self.boot_disk = boot_disk  # after SUCCEEDED + reboot: boot the installed disk (issue 6)


class Scenario:
    """config_edit(mode, text) rewrites the served config-<mode>.yaml; with listener=True a
    webhook listener runs and config_edit is called as config_edit(mode, text, lab).
    no_rootfs_iso: also serve NO_ROOTFS_ISO, the release ISO without rootfs.squashfs."""

    def __init__(self, name, title, nodes, checks, way="user", cmdline_extra="",
                 no_automatic=False, config_404=False, config_edit=None, timeout=600, grace=3.0,
                 listener=False, no_rootfs_iso=False):
        self.name, self.title, self.nodes, self.checks = name, title, nodes, checks
        self.way, self.cmdline_extra = way, cmdline_extra
        self.no_automatic, self.config_404, self.config_edit = no_automatic, config_404, config_edit
        self.timeout, self.grace = timeout, grace
        self.listener, self.no_rootfs_iso = listener, no_rootfs_iso


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


def pxe_chain(node, mode):
    """Firmware -> iPXE (DHCP gave it the -efi script) -> the seed's kernel and initrd over
    HTTP -> Debian's kernel -> the dracut initrd."""
    return [
        served(node, f"ipxe-{mode}-efi"),
        served(node, "harvester-<version>-vmlinuz"),
        served(node, "harvester-<version>-initrd"),
        line(node, r"\[script\]", "iPXE ran the script"),
        line(node, r"Linux version \d", "the kernel booted"),
        line(node, r"Welcome to .*\(Initramfs\)|Run /init as init process", "the initrd started"),
    ]


def agent_started(node):
    return [
        line(node, r"Harvester automatic install", "systemd started the agent's unit"),
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
                "\"disk_size\": \"{{.InstallDiskSize}}\"}'",
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


def check_disk(node, mode, hostname, server_url=None, data_disk=False, secrets=(TOKEN,),
               password=PASSWORD, device="/dev/sda"):
    """qemu/check-disk on the VM's disk images (after the VM stopped)."""
    @check(f"{node}: qemu/check-disk --mode {mode} --hostname {hostname} --token (the lab's)"
           + (" --data-disk" if data_disk else "") + " passes")
    def fn(ctx):
        disks = ctx.vm[node].disks
        # The token and the install disk the configs give: compared with what is on the disk.
        cmd = [str(h.QEMU_DIR / "check-disk"), "--disk", str(disks[0].path), "--mode", mode,
               "--hostname", hostname, "--token", TOKEN, "--device", device]
        if data_disk:
            cmd += ["--data-disk", str(disks[1].path)]
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


def succeeded(node):
    return line(node, h.RE_SUCCEEDED.pattern, "the install SUCCEEDED")


def rebooted(node):
    @check(f"{node}: SUCCEEDED, then the VM rebooted by itself")
    def fn(ctx):
        reason = ctx.outcome[node][0]
        return bool(ctx.console(node).find(h.RE_SUCCEEDED)) and reason == "exited", reason
    return fn


def installed(node, mode, hostname, role, server=None, boot=True, data_disk=False, hooks=False,
              device="/dev/sda"):
    """The whole install of one node: PXE chain, SUCCEEDED, reboot, (test OS), check-disk."""
    checks = pxe_chain(node, mode) + agent_started(node) + [
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
                             secrets=(TOKEN, HOOK_PASSWORD) if hooks else (TOKEN,), device=device))
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
    "the STARTED and SUCCEEDED webhooks arrive with the templated values",
    [Node("node1", "create", "8G", boot_disk=True)],
    cmdline_extra="harvester.os.hostname=pxe-lab-node1",
    listener=True, config_edit=with_webhooks(),
    timeout=1500,
    checks=[
        served("node1", "config-create.yaml"),
        past_config("node1"),
        line("node1", r"^harvester-install: .*\bpxe-lab-node1\b",
             "the kernel line's harvester.os.hostname=pxe-lab-node1 is in the plan (merged)"),
        line("node1", h.MARK + r" STAGE memory", "STAGE memory"),
        line("node1", RE_PAST_MEMORY, "the memory check passed: a later STAGE began"),
    ] + installed("node1", "create", "pxe-lab-node1", "cluster-init", hooks=True)))

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
                  r"config_url: cannot fetch http://\S+/config-create\.yaml: HTTP 404\b",
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
    + installed("node2", "join", "node2", "agent", SERVER_URL)))

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
    # The release's SHA-512 list has no entry for this ISO: the lab's iso_checksum_url goes, so
    # the download passes (unverified, with its warning) and the contents check must catch it.
    config_edit=with_webhooks(then=lambda mode, text: re.sub(
        r"harvester-[^/\s]*-amd64\.iso", NO_ROOTFS_ISO,
        re.sub(r"(?m)^  iso_checksum_url: .*\n", "", text))),
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

scenario(Scenario(
    "three-nodes",
    "three nodes at once from one nginx: node1 creates, node2 and node3 join; each installs, "
    "reboots and boots its installed disk (three VMs at once on the two VM slots)",
    [Node("node1", "create", "8G", boot_disk=True),
     Node("node2", "join", "8G", boot_disk=True),
     Node("node3", "join", "8G", mac="52:54:00:69:d5:93", boot_disk=True)],
    config_edit=with_token(), timeout=2400,
    checks=installed("node1", "create", "node1", "cluster-init")
    + installed("node2", "join", "node2", "agent", SERVER_URL)
    + installed("node3", "join", "node2", "agent", SERVER_URL)))


# --- Running one ----------------------------------------------------------------------------------

def run_nodes(lab, ctx, nodes, accel, cpu, timeout, grace, live):
    """Boots the nodes at once (one thread each) and waits for all."""
    errors = []

    def boot(node):
        vm = ctx.vm[node.name]
        try:
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
                    extra_files=extra)
    except h.Skip as e:
        print(f"SKIP {name}: {e}")
        return 77
    ctx = Ctx(lab)
    failed = True
    try:
        for node in s.nodes:
            ctx.vm[node.name] = lab.new_vm(node.name, node.mode, node.mac, node.mem,
                                           data_disk=node.data_disk)
        print(f"  kernel line: {lab.served.kernel_line(f'ipxe-{s.nodes[0].mode}-efi')}")
        with h.vm_slots(len(s.nodes)):
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
