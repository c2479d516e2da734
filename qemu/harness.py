# SPDX-License-Identifier: Apache-2.0
"""The headless PXE lab: a served release, nginx, (optionally) ISC dhcpd in a network namespace,
and QEMU/OVMF/iPXE VMs whose serial console is logged, shown and read for marker lines.

Used by qemu/pxe-lab (the command) and qemu/scenarios.py (the meson suite "qemu"). Python 3
standard library only. See qemu/pxe-lab --help.
"""

import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
QEMU_DIR = TOP / "qemu"
SEED_DIR = QEMU_DIR / "seed"
CACHE = Path(os.environ.get("PXE_LAB_CACHE", QEMU_DIR / "cache"))
# The VM slot locks are machine-wide (not per checkout), so that labs run from several clones
# share PXE_LAB_MAX_VMS.
SLOTS = Path(os.environ.get("PXE_LAB_SLOT_DIR", "/run/lock/pxe-lab"))
LOGS = Path(os.environ.get("PXE_LAB_LOGS", QEMU_DIR / "logs"))

# The seed's two hosts (dhcpd.conf): node1 creates the cluster, node2 joins it.
CREATE_MAC = "52:54:00:6b:13:e2"
JOIN_MAC = "52:54:00:69:d5:92"
SEED_MACS = {"create": CREATE_MAC, "join": JOIN_MAC}

# The seed's HTTP server. Inside a lab network namespace the addresses are the seed's own.
SEED_SERVER = "10.100.0.10"
NETNS_CIDR = "10.100.0.10/24"

# The NIC every lab VM has, where it sits, and the name Debian's kernel + udev give it with
# net.ifnames=1 (virtio-net at PCI 00:03.0 on q35's root bus: "enp0s3"). The served configs
# name this interface where the seed says ens5.
NIC_MODEL = "virtio-net-pci"
NIC_ROM = "efi-virtio.rom"
NIC_PCI_SLOT = 3
GUEST_IFACE = "enp0s3"

# What the lab adds to the seed's kernel line: the VM has no screen, its serial port is the
# console the lab logs and shows (last console= is /dev/console; tty1 stays a console too).
LAB_CMDLINE = "console=ttyS0,115200n8"

# Marker lines (agent/log.h) and the test OS's lines (qemu/release/test-os-init). A marker counts
# only at the start of a line: the agent escapes control characters in what it prints, so a
# server's reason phrase such as "Busy\r[harvester-install] SUCCEEDED" stays in the middle of
# its line and is not taken for a result.
MARK = r"^\[harvester-install\]"
RE_STAGE = re.compile(MARK + r" STAGE (\S+)")
RE_FAILED = re.compile(MARK + r" FAILED: (.*)")
RE_SUCCEEDED = re.compile(MARK + r" SUCCEEDED\b")
RE_TEST_OS = re.compile(r"\[test-os\] (.*)")

# How far the PXE chain got: (name, first console line that proves it).
MILESTONES = [
    ("ipxe", r"iPXE \S+ -- Open Source Network Boot Firmware"),
    ("ipxe-dhcp", r"Configuring \(net0 [0-9a-f:]+\)\.*\s*ok"),
    ("ipxe-script", r"\[script\]"),
    ("kernel", r"Linux version \d"),
    ("initrd", r"Run /init as init process|systemd\[1\]: .*initrd|Welcome to .*(Initrd|dracut)"),
    ("network-online", r"Reached target .*[Nn]etwork is [Oo]nline"),
    ("unit", r"Harvester automatic install"),
    ("agent", MARK + r" "),
    ("agent-end", MARK + r" (FAILED:|SUCCEEDED)"),
]

ANSI = re.compile(rb"\x1b\[[0-9;?=]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")
# Escapes that would wipe the operator's terminal when shown live (OVMF clears the screen).
ANSI_CLEAR = re.compile(rb"\x1b\[2J|\x1b\[[0-9;]*H|\x1b\[=[0-9]+h")


class Skip(Exception):
    """The lab cannot run here (exit 77)."""


class LabError(Exception):
    """Setting up the lab failed."""


def note(msg):
    print(f"pxe-lab: {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, quiet=False, **kw):
    """subprocess.run with the command named in the error."""
    kw.setdefault("stdout", subprocess.PIPE if quiet else None)
    kw.setdefault("stderr", subprocess.STDOUT if quiet else None)
    p = subprocess.run([str(c) for c in cmd], text=True, **kw)
    if check and p.returncode != 0:
        out = (p.stdout or "").strip()
        raise LabError(f"'{' '.join(str(c) for c in cmd)}' failed (exit {p.returncode})"
                       + (f":\n{out[-3000:]}" if out else ""))
    return p


def which(name):
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


# --- Tools ----------------------------------------------------------------------------------------

OVMF_PAIRS = [
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
    ("/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"),
    ("/usr/share/edk2-ovmf/x64/OVMF_CODE.fd", "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd"),
    ("/usr/share/qemu/ovmf-x86_64-code.bin", "/usr/share/qemu/ovmf-x86_64-vars.bin"),
]
ROM_DIRS = ["/usr/lib/ipxe/qemu", "/usr/share/qemu", "/usr/share/ipxe/qemu", "/usr/share/ipxe",
            "/usr/lib/ipxe"]


class Tools:
    """QEMU, qemu-img, OVMF (code + vars template) and the iPXE NIC ROM, or Skip naming the
    Debian packages to install."""

    def __init__(self):
        missing = []
        self.qemu = which("qemu-system-x86_64")
        self.qemu_img = which("qemu-img")
        self.qemu_io = which("qemu-io")
        if not self.qemu:
            missing.append("qemu-system-x86_64 (qemu-system-x86)")
        if not self.qemu_img or not self.qemu_io:
            missing.append("qemu-img, qemu-io (qemu-utils)")
        code = os.environ.get("OVMF_CODE")
        vars_ = os.environ.get("OVMF_VARS")
        if not (code and vars_):
            code, vars_ = next(((c, v) for c, v in OVMF_PAIRS
                                if os.path.isfile(c) and os.path.isfile(v)), (None, None))
        if not code:
            missing.append("OVMF_CODE/OVMF_VARS (ovmf)")
        self.ovmf_code, self.ovmf_vars = code, vars_
        self.nic_rom = os.environ.get("PXE_LAB_NIC_ROM") or next(
            (os.path.join(d, NIC_ROM) for d in ROM_DIRS if os.path.isfile(os.path.join(d, NIC_ROM))),
            None)
        if not self.nic_rom:
            missing.append(f"{NIC_ROM} (ipxe-qemu)")
        if missing:
            raise Skip("missing: " + ", ".join(missing))

    def accel(self):
        """("tcg"|"kvm", -cpu model). KVM only when a probe proved that it boots OVMF here
        (PXE_LAB_ACCEL=tcg|kvm overrides). The probe's answer is kept per host boot."""
        forced = os.environ.get("PXE_LAB_ACCEL")
        if forced in ("tcg", "kvm"):
            return forced, ("host" if forced == "kvm" else "max")
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return "tcg", "max"
        try:
            boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            boot_id = "unknown"
        CACHE.mkdir(parents=True, exist_ok=True)
        stamp = CACHE / "kvm-probe"
        with locked(CACHE / "kvm-probe.lock"):
            try:
                b, answer = stamp.read_text().split()
                if b == boot_id and answer in ("tcg", "kvm"):
                    return answer, ("host" if answer == "kvm" else "max")
            except (OSError, ValueError):
                pass
            answer = "kvm" if self._kvm_boots_ovmf() else "tcg"
            stamp.write_text(f"{boot_id} {answer}\n")
            note(f"KVM probe: {'KVM boots OVMF, using it' if answer == 'kvm' else 'KVM does not boot OVMF here, using TCG'}")
            return answer, ("host" if answer == "kvm" else "max")

    def _kvm_boots_ovmf(self):
        """Boots OVMF under KVM with nothing to boot: it must reach its boot manager on the
        serial console (BdsDxe) within 30 s and not die."""
        with tempfile.TemporaryDirectory(prefix="pxe-lab-kvm-") as d:
            vars_ = Path(d) / "vars.fd"
            shutil.copyfile(self.ovmf_vars, vars_)
            cmd = [self.qemu, "-machine", "q35,accel=kvm", "-cpu", "host", "-m", "256",
                   "-nodefaults", "-display", "none", "-serial", "stdio", "-net", "none",
                   "-no-reboot",
                   "-drive", f"if=pflash,format=raw,readonly=on,file={self.ovmf_code}",
                   "-drive", f"if=pflash,format=raw,file={vars_}"]
            try:
                p = spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
            except OSError:
                return False
            out = b""
            deadline = time.monotonic() + 30
            try:
                while time.monotonic() < deadline:
                    r, _, _ = select.select([p.stdout], [], [], 0.5)
                    if r:
                        chunk = os.read(p.stdout.fileno(), 65536)
                        if not chunk:
                            break
                        out += chunk
                        if b"BdsDxe" in out:
                            return p.poll() is None
            finally:
                stop_process(p)
            return False


# --- Small helpers --------------------------------------------------------------------------------

@contextlib.contextmanager
def locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def vm_slots(k=1):
    """At most PXE_LAB_MAX_VMS (default 2) lab VMs at once on this machine, whoever starts them
    and from whichever checkout (the locks are in SLOTS):
    takes k slots, all at once. Waiters queue on a lock, so a run needing two slots is not
    starved by runs needing one."""
    n = max(1, int(os.environ.get("PXE_LAB_MAX_VMS", "2")))
    k = min(k, n)
    SLOTS.mkdir(parents=True, exist_ok=True)
    held = []
    with locked(SLOTS / "vm-queue.lock"):
        waited = False
        while True:
            for i in range(n):
                if len(held) == k:
                    break
                f = open(SLOTS / f"vm-slot-{i}.lock", "a")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held.append(f)
                except BlockingIOError:
                    f.close()
            if len(held) == k:
                break
            for f in held:
                fcntl.flock(f, fcntl.LOCK_UN)
                f.close()
            held = []
            if not waited:
                note(f"waiting for {k} of the {n} lab VM slots (PXE_LAB_MAX_VMS) to be free")
                waited = True
            time.sleep(1)
    try:
        yield
    finally:
        for f in held:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()


def spawn(cmd, **kw):
    """Popen for the lab's servers and VMs. They stay in our process group, so that whoever
    stops us (Ctrl-C, meson's timeout: SIGTERM then SIGKILL to the group) stops them too; and
    with util-linux setpriv they get SIGTERM when the thread that started them dies, even by
    SIGKILL. No VM or server outlives the lab."""
    setpriv = which("setpriv")
    if setpriv:
        cmd = [setpriv, "--pdeathsig", "TERM", "--", *cmd]
    return subprocess.Popen([str(c) for c in cmd], **kw)


def stop_process(p, timeout=10):
    """SIGTERM, then SIGKILL, one process we started."""
    if p is None or p.poll() is not None:
        return
    try:
        p.terminate()
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    except ProcessLookupError:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_line(raw):
    return ANSI.sub(b"", raw).replace(b"\r", b"").decode("utf-8", "replace").rstrip()


def parse_size(text):
    m = re.fullmatch(r"(\d+)\s*([KMGT]?)(i?B)?", text.strip(), re.I)
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 8G, 7168M)")
    return int(m.group(1)) * 1024 ** "BKMGT".index((m.group(2) or "B").upper())


def mem_arg(text):
    """'8G' -> '8192M' for -m."""
    return f"{parse_size(text) // (1 << 20)}M"


# --- The project build and the release ------------------------------------------------------------

def sanitized(build_dir):
    try:
        opts = json.loads(run(["meson", "introspect", "--buildoptions", build_dir],
                              quiet=True).stdout)
    except (LabError, ValueError):
        return False
    return any(o["name"] == "b_sanitize" and o["value"] not in ("none", "") for o in opts)


def build_source(build_dir):
    """The source tree a meson build directory was configured for (meson-info.json), or None."""
    try:
        info = json.loads((Path(build_dir) / "meson-info" / "meson-info.json").read_text())
        return Path(info["directories"]["source"]).resolve()
    except (OSError, ValueError, KeyError):
        return None


def ensure_build(build_dir=None):
    """A plain (no sanitizer) meson build of this tree for the initrd's agent: the given one, or
    qemu/cache/build (set up here with -Dtests=false). build-release.sh compiles and stages it."""
    if build_dir:
        build_dir = Path(build_dir).resolve()
        if not (build_dir / "build.ninja").is_file():
            raise LabError(f"{build_dir} is not a configured meson build directory")
        if sanitized(build_dir):
            raise LabError(f"{build_dir} is built with sanitizers; the initrd needs a plain build "
                           f"(omit --build-dir to use qemu/cache/build)")
        return build_dir
    build_dir = CACHE / "build"
    if (build_dir / "build.ninja").is_file() and build_source(build_dir) != TOP.resolve():
        # A cache copied from another checkout: meson would build that checkout's agent.
        note(f"{build_dir} was configured for {build_source(build_dir)}, not {TOP}: set up again")
        shutil.rmtree(build_dir)
    if not (build_dir / "build.ninja").is_file():
        note(f"configuring a plain build of the agent in {build_dir}")
        shutil.rmtree(build_dir, ignore_errors=True)
        run(["meson", "setup", "-Dtests=false", "--buildtype=debugoptimized", build_dir, TOP],
            quiet=True)
    return build_dir


class Release:
    """The test release in qemu/cache/release, built (cached) by qemu/build-release.sh."""

    def __init__(self, directory):
        self.dir = Path(directory)
        isos = sorted(self.dir.glob("harvester-*-amd64.iso"))
        if len(isos) != 1:
            raise LabError(f"{self.dir} holds {len(isos)} harvester-*-amd64.iso, expected one")
        self.version = isos[0].name[len("harvester-"):-len("-amd64.iso")]
        v = self.version
        self.files = {
            "vmlinuz": f"harvester-{v}-vmlinuz-amd64",
            "initrd": f"harvester-{v}-initrd-amd64",
            "rootfs": f"harvester-{v}-rootfs-amd64.squashfs",
            "iso": f"harvester-{v}-amd64.iso",
            "sha512": f"harvester-{v}-amd64.sha512",
        }
        for name in self.files.values():
            if not (self.dir / name).is_file():
                raise LabError(f"the release in {self.dir} lacks {name}")

    def served(self, flavour="systemd"):
        """The folder harvester-pxe-prepare made from the release's ISO (build-release.sh):
        served/ (the systemd initrd), served-hook/ (--initrd-flavour hook)."""
        d = self.dir / ("served" if flavour == "systemd" else f"served-{flavour}")
        if not (d / "ipxe-create-efi").is_file():
            raise LabError(f"the release in {self.dir} has no {d.name}/ made by harvester-pxe-prepare "
                           f"(rebuild it: qemu/pxe-lab release)")
        return d


def ensure_release(build_dir=None, quiet=False):
    """Builds the project (plain) and the release when an input changed; returns (Release,
    seconds). One builder at a time on this machine. PXE_LAB_RELEASE=DIR uses DIR as it is."""
    t0 = time.monotonic()
    if os.environ.get("PXE_LAB_RELEASE"):
        return Release(os.environ["PXE_LAB_RELEASE"]), 0.0  # a release built elsewhere, as is
    out = CACHE / "release"
    with locked(CACHE / "release.lock"):
        bdir = ensure_build(build_dir)
        p = run([QEMU_DIR / "build-release.sh", out, bdir], check=False, quiet=quiet,
                stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise LabError(f"qemu/build-release.sh failed (exit {p.returncode})"
                           + (f":\n{p.stdout[-3000:]}" if quiet and p.stdout else ""))
    return Release(out), time.monotonic() - t0


def ensure_iso_without_rootfs(release):
    """The release ISO without /rootfs.squashfs (xorriso), for the failure scenario; built once
    per release ISO and cached in qemu/cache/iso-no-rootfs/."""
    iso = release.dir / release.files["iso"]
    st = iso.stat()
    out_dir = CACHE / "iso-no-rootfs"
    out = out_dir / f"{st.st_size}-{st.st_mtime_ns}-no-rootfs.iso"
    with locked(CACHE / "iso-no-rootfs.lock"):
        if out.is_file():
            return out
        xorriso = which("xorriso")
        if not xorriso:
            raise Skip("missing: xorriso (xorriso)")
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        tmp = out_dir / "tmp.iso"
        run([xorriso, "-indev", iso, "-outdev", tmp, "-rm", "/rootfs.squashfs", "--",
             "-boot_image", "any", "keep"], quiet=True)
        listing = run([xorriso, "-indev", tmp, "-ls", "/"], quiet=True).stdout
        if "rootfs.squashfs" in listing or "boot" not in listing:
            raise LabError(f"{tmp} is not the release ISO without /rootfs.squashfs:\n{listing}")
        os.chmod(tmp, 0o644)
        tmp.rename(out)
        return out


# --- The served folder ----------------------------------------------------------------------------

def seed_text(name):
    return (SEED_DIR / name).read_text()


class Served:
    """/harvester/ laid out like the seed's /usr/share/nginx/html/harvester/: what the product
    command harvester-pxe-prepare made from the release's ISO (Release.served: the ISO, rootfs,
    kernel, installer initrd and the names the seed's iPXE scripts use, the four iPXE scripts,
    ipxe.efi, undionly.kpxe, the dhcpd example), its text files with the server changed (the
    command wrote them for the seed's), LAB_CMDLINE and the run's extra arguments on the kernel
    lines; the release's SHA-512 list; config-create.yaml and config-join.yaml as an operator
    fills the command's skeletons: the seed's, with the interface changed and iso_checksum_url
    added. flavour "hook": the initrd without systemd (served-hook/)."""

    SCRIPTS = ("ipxe-create", "ipxe-create-efi", "ipxe-join", "ipxe-join-efi")
    TEXTS = SCRIPTS + ("dhcpd.conf.example",)

    def __init__(self, workdir, release, server, iface=GUEST_IFACE, cmdline_extra="",
                 no_automatic=False, config_404=False, config_edit=None, flavour="systemd"):
        self.root = Path(workdir) / "www"
        self.dir = self.root / "harvester"
        self.server = server
        self.base = f"http://{server}/harvester"
        self.release = release
        self.dir.mkdir(parents=True)
        for d in (workdir, self.root, self.dir):
            os.chmod(d, 0o755)
        v = release.version
        prepared = release.served(flavour)
        skeletons = {}
        for f in sorted(prepared.iterdir()):
            if f.is_symlink():
                os.symlink(os.readlink(f), self.dir / f.name)
            elif f.name in self.TEXTS:
                write_public(self.dir / f.name, self.subst(f.read_text()))
            elif f.name.startswith("config-"):
                skeletons[f.name] = f.read_text()
            else:
                place(f, self.dir / f.name)
        place(release.dir / release.files["sha512"], self.dir / release.files["sha512"])

        for mode in ("create", "join"):
            text = self.subst(seed_text(f"config-{mode}.yaml")).replace(
                "- name: ens5", f"- name: {iface}")
            # The operator's copy names the ISO the command's skeleton names.
            skeleton = self.subst(skeletons.get(f"config-{mode}.yaml", ""))
            iso_url = f"  iso_url: {self.base}/harvester-{v}-amd64.iso\n"
            if iso_url not in skeleton or iso_url not in text:
                raise LabError(f"config-{mode}.yaml: harvester-pxe-prepare's skeleton and the seed do not "
                               f"both name {iso_url.strip()}")
            # Beyond the seed: the release's SHA-512 list, so that the ISO is verified as it
            # arrives (install.iso_checksum_url, an extension of ours).
            iso_line = f"  iso_url: {self.base}/harvester-{v}-amd64.iso"
            if iso_line not in text:
                raise LabError(f"config-{mode}.yaml: no line {iso_line!r} to add iso_checksum_url to")
            text = text.replace(iso_line, f"{iso_line}\n  iso_checksum_url: {self.url(release.files['sha512'])}")
            if config_edit:
                text = config_edit(mode, text)
            if config_404:
                continue  # config_url answers 404
            write_public(self.dir / f"config-{mode}.yaml", text)

        extra = " ".join(x for x in (LAB_CMDLINE, cmdline_extra.strip()) if x)
        for name in self.SCRIPTS:
            # harvester-pxe-prepare's script (copied above, server substituted), not the seed's.
            lines = (self.dir / name).read_text().splitlines()
            for i, line in enumerate(lines):
                if line.startswith("kernel "):
                    if no_automatic:
                        line = line.replace(" harvester.install.automatic=true", "")
                    lines[i] = f"{line} {extra}"
            write_public(self.dir / name, "\n".join(lines) + "\n")

    def node_dir(self, node, listener=None):
        """Per-node URLs: /n/<node>/harvester/ holds the same files, its iPXE scripts and configs
        with every URL of this folder (and the webhook listener's, when given) rewritten to the
        node's own prefix, so that whatever a node requests names the node (request attribution
        in nginx's log without trusting what the guest says). Returns the node's base URL."""
        d = self.root / "n" / node / "harvester"
        d.mkdir(parents=True)
        for x in (self.root / "n", d.parent, d):
            os.chmod(x, 0o755)
        base = f"http://{self.server}/n/{node}/harvester"
        texts = set(self.SCRIPTS) | {"config-create.yaml", "config-join.yaml"}
        for f in sorted(self.dir.iterdir()):
            if f.is_symlink():
                os.symlink(os.readlink(f), d / f.name)
            elif f.name in texts:
                text = f.read_text().replace(f"{self.base}/", f"{base}/")
                if listener:
                    text = text.replace(listener.url(), listener.url(f"n/{node}/"))
                write_public(d / f.name, text)
            else:
                place(f, d / f.name)
        return base

    def subst(self, text):
        return (text.replace(f"http://{SEED_SERVER}/", f"http://{self.server}/")
                .replace("<version>", self.release.version))

    def url(self, name):
        return f"{self.base}/{name}"

    def kernel_line(self, script):
        return next(l for l in (self.dir / script).read_text().splitlines() if l.startswith("kernel "))


# The guide's network boot programs, from Debian's package ipxe: dhcpd.conf names them for the
# firmware's own PXE client (TFTP, "ipxe.efi" for UEFI, "undionly.kpxe" for BIOS) and for UEFI
# HTTP Boot (http://.../harvester/ipxe.efi). harvester-pxe-prepare puts them in the served folder;
# the checks compare them with Debian's files here.
IPXE_DIR = Path(os.environ.get("PXE_LAB_IPXE_DIR", "/usr/lib/ipxe"))
IPXE_BINARIES = ("ipxe.efi", "undionly.kpxe")


def place(src, dst):
    """Hard link when possible (same file system), else copy; world-readable either way."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    if os.stat(dst).st_mode & 0o444 != 0o444:
        os.chmod(dst, 0o644)


def write_public(path, text):
    Path(path).write_text(text)
    os.chmod(path, 0o644)


# --- nginx ----------------------------------------------------------------------------------------

class Nginx:
    """A private nginx: its own prefix and config in the work dir, listening on host:port only
    (inside netns when given), serving `root`, with a parseable access log."""

    def __init__(self, workdir, root, host="127.0.0.1", port=None, netns=None):
        self.prefix = Path(workdir) / "nginx"
        self.root = Path(root)
        self.host, self.port, self.netns = host, port, netns
        self.proc = None
        self.access_log = self.prefix / "access.log"
        self.error_log = self.prefix / "error.log"

    def _conf(self, port):
        p = self.prefix
        return f"""daemon off;
master_process on;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log info;
events {{ worker_connections 256; }}
http {{
    types {{ text/plain yaml txt sha512; application/octet-stream iso squashfs; }}
    default_type application/octet-stream;
    log_format lab '$remote_addr "$request" $status $body_bytes_sent';
    access_log {p}/access.log lab;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    sendfile on;
    server {{
        listen {self.host}:{port};
        root {self.root};
        location / {{ autoindex on; }}
    }}
}}
"""

    def start(self):
        nginx = which("nginx")
        if not nginx:
            raise Skip("missing: nginx (nginx-light)")
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        for attempt in range(8):
            port = self.port or free_port()
            conf = self.prefix / "nginx.conf"
            conf.write_text(self._conf(port))
            cmd = [nginx, "-p", f"{self.prefix}/", "-c", str(conf), "-e", str(self.error_log)]
            if self.netns:
                cmd = self.netns.prefix() + cmd
            err = open(self.prefix / "stderr.log", "ab")
            self.proc = spawn(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            err.close()
            if self._ready(port):
                self.port = port
                return self
            stop_process(self.proc)
            self.proc = None
            if self.port:  # a fixed port: no second chance
                break
        raise LabError(f"nginx did not start (see {self.error_log}):\n{tail_file(self.error_log, 10)}")

    def _ready(self, port):
        deadline = time.monotonic() + 10
        pidfile = self.prefix / "nginx.pid"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if pidfile.exists():
                if self.netns:
                    return True  # bound (nginx writes its pid after listening) in the namespace
                try:
                    with socket.create_connection((self.host, port), timeout=1):
                        return True
                except OSError:
                    pass
            time.sleep(0.1)
        return False

    def stop(self):
        stop_process(self.proc)
        self.proc = None

    def requests(self):
        """[(client address, path, status)] in order (see requests_full)."""
        return [(a, p, st) for a, p, st, _ in self.requests_full()]

    def requests_full(self):
        """[(client address, path, status, bytes sent)] in order."""
        out = []
        try:
            text = self.access_log.read_text(errors="replace")
        except OSError:
            return out
        for line in text.splitlines():
            m = re.match(r'(\S+) "(\S+) (\S+)[^"]*" (\d+) (\d+)', line)
            if m:
                out.append((m.group(1), m.group(3), int(m.group(4)), int(m.group(5))))
        return out


def tail_file(path, n=40):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"({path}: not there)"
    return "\n".join(lines[-n:])


# --- A network namespace with ISC dhcpd ----------------------------------------------------------

class Netns:
    """A network namespace of our own: a bridge with the seed's server address (10.100.0.10/24)
    and one tap per VM. Nothing in it reaches the host's network."""

    count = 0

    def __init__(self):
        if os.geteuid() != 0:
            raise Skip("the dhcpd way needs root (ip netns, tap devices)")
        if not which("ip"):
            raise Skip("missing: ip (iproute2)")
        Netns.count += 1
        self.name = f"pxelab-{os.getpid()}-{Netns.count}"
        self.taps = []
        remove_stale_netns()
        run(["ip", "netns", "add", self.name], quiet=True)
        try:
            self.ip("link", "set", "lo", "up")
            self.ip("link", "add", "br0", "type", "bridge", "forward_delay", "0")
            self.ip("addr", "add", NETNS_CIDR, "dev", "br0")
            self.ip("link", "set", "br0", "up")
        except LabError:
            self.delete()
            raise

    def ip(self, *args):
        return run(["ip", "-n", self.name, *args], quiet=True)

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def add_tap(self):
        tap = f"tap{len(self.taps)}"
        self.ip("tuntap", "add", "dev", tap, "mode", "tap")
        self.ip("link", "set", tap, "master", "br0")
        self.ip("link", "set", tap, "up")
        self.taps.append(tap)
        return tap

    def delete(self):
        run(["ip", "netns", "del", self.name], check=False, quiet=True)


def remove_stale_netns():
    """Namespaces (and dhcpd files) left by a lab process that died without cleaning up."""
    p = run(["ip", "netns", "list"], check=False, quiet=True)
    for line in (p.stdout or "").splitlines():
        m = re.match(r"(pxelab-(\d+)-\d+)\b", line)
        if m and not os.path.exists(f"/proc/{m.group(2)}"):
            run(["ip", "netns", "del", m.group(1)], check=False, quiet=True)
    for f in list(Path("/etc/dhcp/pxe-lab").glob("pxelab-*.conf")) + \
            list(Path("/var/lib/dhcp").glob("dhcpd.leases.pxelab-*")):
        m = re.search(r"pxelab-(\d+)-", f.name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            with contextlib.suppress(OSError):
                f.unlink()


def remove_stale_workdirs(base):
    """Work dirs of lab processes that died (SIGKILL) without cleaning up, unless kept."""
    for d in Path(base).glob("pxe-lab-*"):
        m = re.match(r"pxe-lab-.*-(\d+)-[^-]+$", d.name)
        if m and d.is_dir() and not (d / "KEEP").exists() \
                and not os.path.exists(f"/proc/{m.group(1)}"):
            shutil.rmtree(d, ignore_errors=True)


class Dhcpd:
    """ISC dhcpd with the seed's dhcpd.conf, on the namespace's bridge. Its files live where
    Debian's AppArmor profile for /usr/sbin/dhcpd lets it read and write them (/etc/dhcp/,
    /var/lib/dhcp/dhcpd.leases*), named after the namespace, and are removed afterwards."""

    def __init__(self, netns, workdir, conf_text):
        self.dhcpd = which("dhcpd")
        if not self.dhcpd:
            raise Skip("missing: dhcpd (isc-dhcp-server)")
        self.netns = netns
        self.conf = Path("/etc/dhcp/pxe-lab") / f"{netns.name}.conf"
        self.leases = Path("/var/lib/dhcp") / f"dhcpd.leases.{netns.name}"
        self.log = Path(workdir) / "dhcpd.log"
        # Every DHCP packet on the bridge, both ways (qemu/dhcp_probe.py --record): what each
        # client asked with (architecture, vendor and user class) and what dhcpd answered.
        self.packet_log = Path(workdir) / "dhcp-packets.jsonl"
        self.conf_text = conf_text
        self.proc = self.recorder = None

    def start(self):
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.conf_text)
        self.leases.parent.mkdir(parents=True, exist_ok=True)
        self.leases.write_text("")
        with open(self.packet_log, "ab") as out:
            self.recorder = spawn(self.netns.prefix() + [sys.executable, "-u", QEMU_DIR / "dhcp_probe.py",
                                                         "--record", "--iface", "br0"],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        log = open(self.log, "ab")
        self.proc = spawn(
            self.netns.prefix() + [self.dhcpd, "-4", "-f", "-d", "-cf", str(self.conf),
                                   "-lf", str(self.leases), "--no-pid", "br0"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None or self.recorder.poll() is not None:
                break
            if "Sending on" in self.log.read_text(errors="replace") \
                    and '"recording"' in self.packet_log.read_text(errors="replace"):
                return self
            time.sleep(0.1)
        self.stop()
        raise LabError(f"dhcpd or its packet recorder did not start:\n{tail_file(self.log, 20)}\n"
                       f"{tail_file(self.packet_log, 5)}")

    def stop(self):
        stop_process(self.proc)
        stop_process(self.recorder)
        self.proc = self.recorder = None
        for f in (self.conf, self.leases, Path(f"{self.leases}~")):
            with contextlib.suppress(OSError):
                f.unlink()
        with contextlib.suppress(OSError):
            self.conf.parent.rmdir()

    def packets(self, mac=None):
        """The recorded DHCP packets (dicts of dhcp_probe.parse: op 1 a client's, op 2 an
        answer), in order; with mac, only those about that client."""
        out = []
        text = self.packet_log.read_text(errors="replace") if self.packet_log.exists() else ""
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return [p for p in out if isinstance(p, dict) and p.get("op") in (1, 2)
                and (mac is None or p.get("chaddr") == mac)]

    def acks(self):
        """[(ip, mac)] of every DHCPACK it sent."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return re.findall(r"DHCPACK on (\S+) to ([0-9a-f:]{17})", text)


class Tftp:
    """A TFTP server for the firmware's own PXE client (the guide's "TFTP server"): dnsmasq from
    Debian's dnsmasq-base used for TFTP only (--port=0: no DNS; no DHCP range: no DHCP), in the
    foreground in the lab's network namespace (10.100.0.10:69), serving the served harvester
    folder read-only. No config file, pid file or host service: it lives and dies with the lab."""

    def __init__(self, netns, workdir, root):
        self.dnsmasq = which("dnsmasq")
        if not self.dnsmasq:
            raise Skip("missing: dnsmasq (dnsmasq-base)")
        self.netns, self.root = netns, Path(root)
        self.log = Path(workdir) / "tftp.log"
        self.proc = None

    def start(self):
        log = open(self.log, "ab")
        self.proc = spawn(
            self.netns.prefix() + [self.dnsmasq, "--keep-in-foreground", "--log-facility=-",
                                   "--conf-file=/dev/null", "--pid-file", "--port=0",
                                   "--enable-tftp", f"--tftp-root={self.root}",
                                   "--user=nobody", "--group=nogroup",
                                   f"--listen-address={SEED_SERVER}", "--bind-interfaces"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if re.search(r"TFTP root is ", self.log.read_text(errors="replace")):
                return self
            time.sleep(0.1)
        self.stop()
        raise LabError(f"the TFTP server (dnsmasq) did not start:\n{tail_file(self.log, 20)}")

    def stop(self):
        stop_process(self.proc)
        self.proc = None

    def sent(self):
        """[(file name relative to the root, client address)] of every file it sent whole."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        root = f"{self.root}/"
        return [(f[len(root):] if f.startswith(root) else f, ip)
                for f, ip in re.findall(r"dnsmasq-tftp\[\d+\]: sent (\S+) to (\S+)", text)]


# --- Disks ----------------------------------------------------------------------------------------

class Disk:
    """A sparse qcow2. With a pattern: 1 MiB of 0x5a at the start and of 0xa5 at the end (where
    GPTs live), copied aside, so that "unchanged" means something: qemu-img compare against the
    copy, which reads only what is allocated (fast on a 300 GiB image)."""

    def __init__(self, tools, path, size="300G", pattern=True):
        self.tools, self.path, self.size = tools, Path(path), size
        self.pristine = self.path.with_suffix(".pristine.qcow2") if pattern else None
        run([tools.qemu_img, "create", "-q", "-f", "qcow2", self.path, size], quiet=True)
        if pattern:
            end = parse_size(size) - (1 << 20)
            run([tools.qemu_io, "-f", "qcow2", "-c", "write -q -P 0x5a 0 1M",
                 "-c", f"write -q -P 0xa5 {end} 1M", self.path], quiet=True)
            shutil.copyfile(self.path, self.pristine)

    def unchanged(self):
        """(True, '') or (False, what differs)."""
        p = run([self.tools.qemu_img, "compare", "-q", "-f", "qcow2", "-F", "qcow2",
                 self.pristine, self.path], check=False, quiet=True)
        if p.returncode == 0:
            return True, ""
        p = run([self.tools.qemu_img, "compare", "-f", "qcow2", "-F", "qcow2",
                 self.pristine, self.path], check=False, quiet=True)
        return False, (p.stdout or "").strip()


# --- The VM ---------------------------------------------------------------------------------------

def disk_serial(vm_name, i):
    """The serial number of a VM's disk i (ATA: at most 20 characters)."""
    return f"{vm_name}-sd{'abcdef'[i]}"[-20:]


def disk_by_id(vm_name, i):
    """The name the guest's udev gives disk i, whatever order the kernel finds the disks in
    (several disks on one AHCI controller come up as sda or sdb by probe order)."""
    return f"/dev/disk/by-id/ata-QEMU_HARDDISK_{disk_serial(vm_name, i)}"


class Console:
    """The cleaned lines of a serial console, with the time each arrived (s since start)."""

    def __init__(self):
        self.lines = []

    def find(self, pattern, after=0.0):
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        for t, text in self.lines:
            if t >= after:
                m = rx.search(text)
                if m:
                    return t, m
        return None

    def all(self, pattern):
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        return [(t, m) for t, text in self.lines for m in [rx.search(text)] if m]

    def milestones(self):
        """[(name, seconds)] of the chain steps seen."""
        out = []
        for name, rx in MILESTONES:
            hit = self.find(rx)
            if hit:
                out.append((name, hit[0]))
        return out

    def tail(self, n=60):
        return "\n".join(text for _, text in self.lines[-n:])


class VM:
    """One lab VM: q35, OVMF (its own VARS copy), TCG unless KVM proved to work, the iPXE NIC
    ROM on a virtio NIC, /dev/sda (and sdb) on AHCI, -nographic, serial console logged to a
    file, optionally shown live, and read for patterns."""

    def __init__(self, tools, workdir, name, mem="8G", cpus=1, mac=CREATE_MAC, bootfile=None,
                 tap=None, netns=None, disks=(), pxe=True, net=True, firmware="uefi"):
        self.tools = tools
        # "uefi": OVMF; "bios": QEMU's SeaBIOS (no pflash), whose iPXE NIC ROM boots the non-efi
        # scripts, and which boots the installed disk through its MBR (GRUB for i386-pc).
        self.firmware = firmware
        self.workdir = Path(workdir)
        self.name = name
        self.mem, self.cpus, self.mac = mem, cpus, mac
        self.bootfile, self.tap, self.netns = bootfile, tap, netns
        self.disks = list(disks)
        self.pxe, self.net = pxe, net
        # False: no bootindex at all (no fw_cfg boot order): OVMF then follows the BootOrder in
        # its NVRAM (self.vars), as a server's firmware does (pxe-first).
        self.bootindex = True
        # A QEMU monitor socket, for kill() (power-loss); None: no monitor.
        self.monitor = None
        # Which network boot client starts the chain: "ipxe" the NIC's iPXE ROM; "pxe" OVMF's
        # own PXE client (the NIC's ROM slot empty: OVMF drives the virtio NIC itself); "http"
        # OVMF's HTTP Boot, its PXE boot options switched off (fw_cfg) so that it comes first.
        self.netboot = "ipxe"
        self.vars = self.workdir / f"{name}-OVMF_VARS.fd"
        if firmware == "uefi" and not self.vars.exists():
            shutil.copyfile(tools.ovmf_vars, self.vars)
        self.serial_log = self.workdir / f"{name}-serial.log"
        self.qemu_log = self.workdir / f"{name}-qemu.log"
        self.console = Console()

    def hmp(self, command):
        """Sends one command to the running VM's human monitor (self.monitor); returns what it
        answered."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as so:
            so.settimeout(5)
            so.connect(str(self.monitor))
            so.sendall(command.encode() + b"\n")
            out = b""
            with contextlib.suppress(socket.timeout, OSError):
                # Until the monitor echoed the command and prompted again (it ran): closing
                # earlier can drop the command unread.
                while True:
                    chunk = so.recv(4096)
                    if not chunk:
                        break
                    out += chunk
                    echoed = out.split(command.encode(), 1)
                    if len(echoed) == 2 and b"(qemu)" in echoed[1]:
                        break
        return out.decode("utf-8", "replace")

    def command(self, accel, cpu, no_reboot=True):
        t = self.tools
        if self.firmware == "bios" and accel == "kvm":
            accel, cpu = "tcg", "max"  # KVM with SeaBIOS hangs here (TEST-MACHINE.md)
        cmd = [t.qemu, "-name", f"pxe-lab-{self.name}",
               "-machine", f"q35,accel={accel}", "-cpu", cpu, "-smp", str(self.cpus),
               "-m", mem_arg(self.mem), "-nographic"]
        if self.firmware == "uefi":
            cmd += ["-drive", f"if=pflash,format=raw,readonly=on,file={t.ovmf_code}",
                    "-drive", f"if=pflash,format=raw,file={self.vars}"]
        if no_reboot:
            cmd.append("-no-reboot")
        if self.monitor:
            cmd += ["-monitor", f"unix:{self.monitor},server=on,wait=off"]
        if self.net:
            if self.tap:
                cmd += ["-netdev", f"tap,id=net0,ifname={self.tap},script=no,downscript=no"]
            else:
                user = "user,id=net0"
                if self.bootfile:
                    user += f",bootfile={self.bootfile}"
                cmd += ["-netdev", user]
            nic = f"{NIC_MODEL},netdev=net0,mac={self.mac},addr={NIC_PCI_SLOT:#x}"
            # "ipxe": the NIC's iPXE ROM. SeaBIOS runs QEMU's default iPXE ROM of the NIC; given
            # explicitly (romfile=, the same efi-virtio.rom), QEMU 7.2's SeaBIOS lists no network
            # boot entry at all (measured). "pxe"/"http": the ROM slot empty (OVMF's own client).
            if self.netboot != "ipxe":
                rom = ",romfile="
            else:
                rom = f",romfile={t.nic_rom}" if self.firmware == "uefi" else ""
            nic += (rom + (",bootindex=1" if self.bootindex else "")) if self.pxe else ",romfile="
            cmd += ["-device", nic]
            if self.pxe and self.netboot == "http":
                cmd += ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no",
                        "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no"]
        else:
            cmd += ["-net", "none"]
        if self.disks:
            cmd += ["-device", "ahci,id=ahci"]
            for i, disk in enumerate(self.disks):
                dev = "sd" + "abcdef"[i]
                cmd += ["-drive", f"if=none,id={dev},file={disk.path},format=qcow2,discard=unmap",
                        "-device", f"ide-hd,drive={dev},bus=ahci.{i},serial={disk_serial(self.name, i)}"
                        + (f",bootindex={2 if self.pxe else 1}" if i == 0 and self.bootindex else "")]
        return cmd

    def boot_disk(self, accel, cpu, timeout, stop=(), grace=3.0, live=False, prefix=None,
                  interactive=False):
        """Boots the installed disk: same firmware variables and disks, no network boot (no NIC
        at all). Its console is self.disk_console."""
        self.pxe = self.net = False
        self.disk_console = Console()
        return self.run(accel, cpu, timeout, stop=list(stop) + [r"\[test-os\] done"], grace=grace,
                        live=live, prefix=prefix, interactive=interactive,
                        console=self.disk_console, label="boot from the installed disk")

    def kill(self):
        """Power loss: the monitor's `quit` (QEMU ends at once; the guest gets no shutdown)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(self.monitor))
            sock.sendall(b"quit\n")
            try:
                while sock.recv(4096):
                    pass
            except OSError:
                pass

    def run(self, accel, cpu, timeout, stop=(), grace=3.0, live=False, interactive=False,
            no_reboot=True, label=None, prefix=None, console=None, kill_on=None, actions=()):
        """Boots and reads the console until QEMU exits, a `stop` pattern matched (+ grace s),
        or the timeout. live: the raw console on stdout; prefix: cleaned lines on stdout, each
        after prefix (several VMs at once). kill_on: a pattern at whose first line the VM is
        killed at once (kill(); needs self.monitor); actions: [(pattern, fn)], fn(vm) called
        once, when the first line matching pattern arrives (fn may use hmp()). Returns
        (reason, seconds): reason is "exited", "stopped", "killed" or "timeout"."""
        pending = [(re.compile(p), fn) for p, fn in actions]
        if pending and not self.monitor:
            self.monitor = self.workdir / f"{self.name}-monitor.sock"
        console = console if console is not None else self.console
        kill_rx = re.compile(kill_on) if kill_on else None
        killed = False
        cmd = self.command(accel, cpu, no_reboot)
        if self.netns:
            cmd = self.netns.prefix() + cmd
        stops = [re.compile(s) for s in stop]
        log = open(self.serial_log, "ab")
        err = open(self.qemu_log, "ab")
        err.write((" ".join(cmd) + "\n").encode())
        err.flush()
        if label:
            log.write(f"==== {label}\n".encode())
        t0 = time.monotonic()
        proc = spawn(cmd, stdin=None if interactive else subprocess.DEVNULL,
                     stdout=subprocess.PIPE, stderr=err)
        reason, stop_at, buf = None, None, b""
        fd = proc.stdout.fileno()
        try:
            while True:
                now = time.monotonic()
                if stop_at is not None and now >= stop_at:
                    reason = "stopped"
                    break
                if now - t0 >= timeout:
                    reason = "timeout"
                    break
                r, _, _ = select.select([fd], [], [], 0.25)
                if not r:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    reason = "exited"
                    break
                log.write(chunk)
                log.flush()
                if live:
                    sys.stdout.buffer.write(ANSI_CLEAR.sub(b"", chunk))
                    sys.stdout.flush()
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for raw in complete:
                    text = clean_line(raw)
                    console.lines.append((now - t0, text))
                    if prefix is not None and text.strip():
                        print(f"{prefix}{text}", flush=True)
                    for a in [a for a in pending if a[0].search(text)]:
                        pending.remove(a)
                        a[1](self)
                    if kill_rx and not killed and kill_rx.search(text):
                        self.kill()
                        killed = True
                    if stop_at is None and not interactive and any(s.search(text) for s in stops):
                        stop_at = now + grace
        finally:
            if buf:
                console.lines.append((time.monotonic() - t0, clean_line(buf)))
            stop_process(proc)
            if interactive:
                subprocess.run(["stty", "sane"], stderr=subprocess.DEVNULL, check=False)
            log.close()
            err.close()
        return ("killed" if killed and reason == "exited" else reason), time.monotonic() - t0


# --- A lab: one run of the served release with one or more VMs ------------------------------------

class Lab:
    """Everything one lab run needs, torn down by close(): a work dir, the served folder, nginx,
    and for the dhcpd way a network namespace with ISC dhcpd."""

    def __init__(self, release, tools, way="user", cmdline_extra="", no_automatic=False,
                 config_404=False, config_edit=None, keep=False, name="lab", listener=False,
                 extra_files=None, tftp=False, flavour="systemd"):
        self.release, self.tools, self.way, self.keep = release, tools, way, keep
        # A recording webhook listener on 127.0.0.1 (the guests' 10.0.2.2), started before the
        # served folder is written, so that config_edit(mode, text, lab) can name its port.
        self.listener = WebhookListener().start() if listener else None
        if listener and way != "user":
            raise LabError("the webhook listener is reachable only with user-mode networking")
        if tftp and way != "dhcpd":
            raise LabError("the TFTP server runs in the dhcpd way's network namespace only")
        base = Path(os.environ.get("PXE_LAB_TMPDIR", "/var/tmp")).resolve()
        for d in [base, *base.parents]:
            if not os.stat(d).st_mode & 0o001:
                raise LabError(f"{d} is not searchable by others: nginx's workers (www-data) "
                               f"could not read the served folder below it; set PXE_LAB_TMPDIR")
        remove_stale_workdirs(base)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"pxe-lab-{name}-{os.getpid()}-", dir=base))
        os.chmod(self.workdir, 0o755)
        if keep:
            (self.workdir / "KEEP").write_text("qemu/pxe-lab --keep: remove this directory by hand\n")
        self.netns = self.dhcpd = self.nginx = self.tftp = None
        self.vms = []
        if config_edit and listener:
            edit = config_edit
            config_edit = lambda mode, text: edit(mode, text, self)  # noqa: E731
        try:
            if way == "dhcpd":
                self.netns = Netns()
                server = SEED_SERVER
                self.served = Served(self.workdir, release, server, cmdline_extra=cmdline_extra,
                                     no_automatic=no_automatic, config_404=config_404,
                                     config_edit=config_edit, flavour=flavour)
                self.nginx = Nginx(self.workdir, self.served.root, host=SEED_SERVER, port=80,
                                   netns=self.netns).start()
                self.dhcpd = Dhcpd(self.netns, self.workdir, seed_text("dhcpd.conf")).start()
                if tftp:
                    self.tftp = Tftp(self.netns, self.workdir, self.served.dir).start()
            else:
                # The URLs hold the port: choose it, write the folder, start; on a lost race for
                # the port, again with another one.
                for attempt in range(5):
                    port = free_port()
                    self.served = Served(self.workdir, release, f"10.0.2.2:{port}",
                                         cmdline_extra=cmdline_extra, no_automatic=no_automatic,
                                         config_404=config_404, config_edit=config_edit,
                                         flavour=flavour)
                    self.nginx = Nginx(self.workdir, self.served.root, port=port)
                    try:
                        self.nginx.start()
                        break
                    except LabError:
                        if attempt == 4:
                            raise
                        self.nginx = None
                        shutil.rmtree(self.served.root)
            for served_name, src in (extra_files or {}).items():
                place(src, self.served.dir / served_name)
        except BaseException:
            self.close()
            raise

    def new_vm(self, name, mode="create", mac=None, mem="8G", cpus=1, data_disk=None,
               disk_size="300G", pattern=True, netboot="ipxe", firmware="uefi"):
        """firmware "bios": SeaBIOS, and DHCP hands iPXE the non-efi script ipxe-<mode>."""
        disks = [Disk(self.tools, self.workdir / f"{name}-sda.qcow2", disk_size, pattern)]
        if data_disk:
            disks.append(Disk(self.tools, self.workdir / f"{name}-sdb.qcow2", data_disk, pattern))
        mac = mac or SEED_MACS[mode]
        if self.way == "dhcpd":
            vm = VM(self.tools, self.workdir, name, mem, cpus, mac, tap=self.netns.add_tap(),
                    netns=self.netns, disks=disks, firmware=firmware)
        else:
            # Each VM boots from, and so fetches everything below, /n/<name>/harvester/.
            base = self.served.node_dir(name, self.listener)
            script = f"ipxe-{mode}-efi" if firmware == "uefi" else f"ipxe-{mode}"
            vm = VM(self.tools, self.workdir, name, mem, cpus, mac,
                    bootfile=f"{base}/{script}", disks=disks, firmware=firmware)
        vm.netboot = netboot
        self.vms.append(vm)
        return vm

    def save_logs(self, dest):
        """Copies every log of this run into dest (a fresh directory)."""
        dest = Path(dest)
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for vm in self.vms:
            for f in (vm.serial_log, vm.qemu_log):
                if f.exists():
                    shutil.copyfile(f, dest / f.name)
        for f in (self.nginx.access_log if self.nginx else None,
                  self.nginx.error_log if self.nginx else None,
                  self.dhcpd.log if self.dhcpd else None,
                  self.dhcpd.packet_log if self.dhcpd else None,
                  self.tftp.log if self.tftp else None):
            if f and f.exists():
                shutil.copyfile(f, dest / ("nginx-" + f.name if "nginx" in str(f.parent) else f.name))
        if self.listener:
            (dest / "webhooks.json").write_text(json.dumps(self.listener.requests(), indent=1))
        for name in Served.SCRIPTS + ("config-create.yaml", "config-join.yaml"):
            f = self.served.dir / name
            if f.exists():
                shutil.copyfile(f, dest / f"served-{name}")
        return dest

    def close(self):
        if self.listener:
            self.listener.stop()
        if self.nginx:
            self.nginx.stop()
        if self.dhcpd:
            self.dhcpd.stop()
        if self.tftp:
            self.tftp.stop()
        if self.netns:
            self.netns.delete()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


# --- Webhook listener -----------------------------------------------------------------------------

class WebhookListener:
    """Records every request (any method) to 127.0.0.1:<port>/hook/... and answers 200: the test
    listener of the agent's install.webhooks. The guests reach it as 10.0.2.2:<port>."""

    def __init__(self):
        self._log = []
        self._lock = threading.Lock()
        self.server = self.thread = None
        self.port = None

    def start(self):
        import http.server
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def handle_one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n > 0 else b""
                with listener._lock:
                    listener._log.append({
                        "time": time.time(), "client": self.client_address[0],
                        "method": self.command, "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode("utf-8", "replace")})
                code = 200 if self.path.startswith("/hook/") else 404
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_one

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def url(self, path=""):
        """The URL the guests use."""
        return f"http://10.0.2.2:{self.port}/hook/{path}"

    def requests(self):
        with self._lock:
            return list(self._log)

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def install_sigterm_handler():
    """meson's test timeout and `kill` send SIGTERM: unwind (finally: blocks clean up)."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
