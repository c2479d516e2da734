# SPDX-License-Identifier: Apache-2.0
"""The VM scenarios of the meson suite "qemu" (qemu/meson.build runs `qemu/pxe-lab test NAME`).

A scenario boots one or more lab VMs through the seed's PXE chain and then checks what they
printed on their serial consoles (the agent's "[harvester-install] ..." markers and messages, the
test OS's "[test-os] ..." lines), what nginx served to whom, what dhcpd leased, and whether the
disks were left byte-for-byte unchanged. Each check is listed with ok/FAIL; the serial log of a
failed scenario is kept in qemu/logs/<name>/ and its tail printed.
"""

import re
import shutil
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
RE_NOT_BUILT = re.compile(r"not built yet|not implemented", re.I)


class Node:
    """One VM of a scenario."""

    def __init__(self, name, mode="create", mem="8G", mac=None, data_disk=None, stop=(),
                 boot_disk=False):
        self.name, self.mode, self.mem, self.mac = name, mode, mem, mac
        self.data_disk = data_disk
        self.stop = list(stop)
        self.boot_disk = boot_disk  # after SUCCEEDED + reboot: boot the installed disk (issue 6)


class Scenario:
    def __init__(self, name, title, nodes, checks, way="user", cmdline_extra="",
                 no_automatic=False, config_404=False, config_edit=None, timeout=600, grace=3.0):
        self.name, self.title, self.nodes, self.checks = name, title, nodes, checks
        self.way, self.cmdline_extra = way, cmdline_extra
        self.no_automatic, self.config_404, self.config_edit = no_automatic, config_404, config_edit
        self.timeout, self.grace = timeout, grace


class Ctx:
    """What the checks look at."""

    def __init__(self, lab):
        self.lab = lab
        self.vm = {}        # node name -> harness.VM
        self.outcome = {}   # node name -> (reason, seconds) of the PXE boot
        self.disk_boot = {}  # node name -> (reason, seconds) of the boot from the installed disk

    def console(self, node):
        return self.vm[node].console

    def requests(self, node=None):
        """[(addr, path, status)] that nginx answered, only those from node's addresses when
        the dhcpd way says which addresses are the node's."""
        reqs = self.lab.nginx.requests()
        if node is None or not self.lab.dhcpd:
            return reqs
        mac = self.vm[node].mac
        ips = {ip for ip, m in self.lab.dhcpd.acks() if m == mac}
        return [r for r in reqs if r[0] in ips]


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


def failed_with(node, pattern, what):
    """A FAILED marker, and a console line of the agent matching pattern."""
    rx = re.compile(pattern)

    @check(f"{node}: FAILED, {what}")
    def fn(ctx):
        con = ctx.console(node)
        failed = con.find(h.RE_FAILED)
        if not failed:
            return False, "no FAILED marker"
        hit = next(((t, text) for t, text in con.lines
                    if "harvester-install" in text and rx.search(text)), None)
        if not hit:
            return False, f"no agent line matches /{pattern}/; FAILED: {failed[1].group(1)[:200]}"
        return True, hit[1].strip()[:240]
    return fn


def stopped_before(node, pattern, what):
    return no_line(node, pattern, what)


def create_outcome(node):
    """Issue 3: the agent reaches the first stage not built yet, or completes, and says so."""
    @check(f"{node}: the install SUCCEEDED (and rebooted), or FAILED at a stage not built yet")
    def fn(ctx):
        con = ctx.console(node)
        if con.find(h.RE_SUCCEEDED):
            reason = ctx.outcome[node][0]
            return reason == "exited", ("SUCCEEDED, then the VM rebooted" if reason == "exited"
                                        else f"SUCCEEDED, but no reboot ({reason})")
        failed = con.find(h.RE_FAILED)
        if failed and RE_NOT_BUILT.search(failed[1].group(1)):
            return True, failed[1].string.strip()[:240]
        if failed:
            return False, f"FAILED for another reason: {failed[1].group(1)[:300]}"
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


# --- The scenarios --------------------------------------------------------------------------------

SCENARIOS = {}


def scenario(s):
    SCENARIOS[s.name] = s
    return s


scenario(Scenario(
    "create-8g",
    "create, 8 GiB: PXE via iPXE, config_url fetched and merged with the kernel line, the "
    "memory check passes, the agent completes or stops at the first stage not built yet",
    [Node("node1", "create", "8G")],
    cmdline_extra="harvester.os.hostname=pxe-lab-node1",
    timeout=1500,
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        served("node1", "config-create.yaml"),
        past_config("node1"),
        line("node1", r"^harvester-install: .*\bpxe-lab-node1\b",
             "the kernel line's harvester.os.hostname=pxe-lab-node1 is in the plan (merged)"),
        line("node1", h.MARK + r" STAGE memory", "STAGE memory"),
        line("node1", RE_PAST_MEMORY, "the memory check passed: a later STAGE began"),
        create_outcome("node1"),
    ]))

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
    checks=pxe_chain("node1", "create") + agent_started("node1") + [
        served("node1", "config-create.yaml"),
        line("node1", h.MARK + r" STAGE memory", "STAGE memory"),
        failed_with("node1", r"\b7 GiB installed\b.*\b8 GiB\b",
                    "a message naming 7 GiB installed and 8 GiB required"),
        stopped_before("node1", RE_PAST_MEMORY, "no stage after memory began"),
        disks_unchanged("node1"),
    ]))

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
        failed_with("node1", r"404.*config-create\.yaml|config-create\.yaml.*404",
                    "a message naming the URL and the 404"),
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
        failed_with("node1", r"server_url", "a message naming server_url"),
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


# --- Running one ----------------------------------------------------------------------------------

def run_nodes(lab, ctx, nodes, accel, cpu, timeout, grace, live):
    """Boots the nodes at once (one thread each) and waits for all."""
    errors = []

    def boot(node):
        vm = ctx.vm[node.name]
        try:
            ctx.outcome[node.name] = vm.run(
                accel, cpu, timeout, stop=STOP_ALWAYS + node.stop, grace=grace,
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
        lab = h.Lab(release, tools, way=s.way, cmdline_extra=s.cmdline_extra,
                    no_automatic=s.no_automatic, config_404=s.config_404,
                    config_edit=s.config_edit, name=name)
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
