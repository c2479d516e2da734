#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The driver of bench/install-bench.sh: one lab VM installs the release in RELEASE_DIR (the
real-size one) and the same boot measures the floors first.

How the floors get into the installer environment: the bench's iPXE script loads another
initrd first (a small cpio the bench makes, unpacked by the kernel before the release's initrd; the
release itself is unchanged). It adds
  - a drop-in ExecStartPre= of harvester-install-agent.service: floor.sh runs after the network is
    up and before the agent: `curl -o` of the ISO's URL into a tmpfs (then removed), `dd` of the
    bundles' size and of three times the root file system's size from /dev/zero to the install
    disk at 128 GiB and 192 GiB (regions the install's COS_PERSISTENT may reuse later, zeros: no
    signature the disk check would see), each with conv=fsync;
  - a sampler service: every 2 s MemAvailable, the install disk's sectors written and the
    agent's VmHWM (/proc/<pid>/status), on the console;
  - the host's /usr/bin/curl (its libraries are the agent's, already in the initrd).
Everything is read from the serial console, whose lines carry their arrival time.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / "qemu"))
import harness as h  # noqa: E402
import scenarios  # noqa: E402

CPIO_NAME = "install-bench.cpio"
DISK = "/dev/sda"
GIB = 1 << 30
MIB = 1 << 20

FLOOR_SH = r"""#!/bin/bash
# install-bench floors (bench/install_bench.py): ExecStartPre of the agent, before it.
exec > /dev/console 2>&1
arg() { local a; for a in $(< /proc/cmdline); do [[ $a == "$1="* ]] && { echo "${a#*=}"; return 0; }; done; return 1; }
url=$(arg install-bench.iso_url) || exit 0
disk=$(arg install-bench.disk); iso=$(arg install-bench.iso_bytes)
img=$(arg install-bench.image_bytes); os=$(arg install-bench.os_bytes)
say() { echo "[install-bench] $*"; }
mkdir -p /run/install-bench
mount -t tmpfs -o size=$((iso + (64 << 20))) install-bench /run/install-bench || { say "floor failed: tmpfs"; exit 0; }
t0=$EPOCHREALTIME
if out=$(curl -sS -f --retry 5 --retry-connrefused -o /run/install-bench/iso -w '%{size_download}' "$url"); then
    t1=$EPOCHREALTIME
    say "floor iso-curl bytes=$out t0=$t0 t1=$t1"
else
    say "floor failed: curl $url"
fi
rm -f /run/install-bench/iso
umount /run/install-bench
ddfloor() { # NAME BYTES SEEK_GIB
    local t0 t1 n=$(($2 / (4 << 20)))
    t0=$EPOCHREALTIME
    if dd if=/dev/zero of="$disk" bs=4M count="$n" seek=$(($3 * 256)) conv=fsync status=none; then
        t1=$EPOCHREALTIME
        say "floor $1 bytes=$((n * (4 << 20))) t0=$t0 t1=$t1"
    else
        say "floor failed: dd $1"
    fi
}
ddfloor dd-images "$img" 128
ddfloor dd-os "$os" 192
say "floors done"
"""

SAMPLER_SH = r"""#!/bin/bash
# install-bench sampler (bench/install_bench.py): memory, disk writes, the agent's VmHWM.
exec > /dev/console 2>&1
arg() { local a; for a in $(< /proc/cmdline); do [[ $a == "$1="* ]] && { echo "${a#*=}"; return 0; }; done; return 1; }
disk=$(arg install-bench.disk) || exit 0
dev=${disk##*/}
pid= hwm=0
while :; do
    avail=0
    while read -r k v _; do [[ $k == MemAvailable: ]] && avail=$v; done < /proc/meminfo
    w=0
    [[ -r /sys/block/$dev/stat ]] && read -r _ _ _ _ _ _ w _ < "/sys/block/$dev/stat"
    if [[ -z $pid || ! -d /proc/$pid ]]; then
        pid=
        for p in /proc/[0-9]*; do
            [[ $(< "$p/comm") == harvester-insta* ]] 2> /dev/null && { pid=${p#/proc/}; break; }
        done
    fi
    if [[ -n $pid ]]; then
        while read -r k v _; do [[ $k == VmHWM: ]] && hwm=$v; done < "/proc/$pid/status" 2> /dev/null
    fi
    echo "[install-bench] sample t=$EPOCHREALTIME avail_kib=$avail written_sectors=$w agent_hwm_kib=$hwm"
    sleep 2
done
"""

DROPIN = """[Service]
ExecStartPre=/usr/lib/install-bench/floor.sh
"""

SAMPLER_UNIT = """[Unit]
Description=install-bench sampler
DefaultDependencies=no
ConditionKernelCommandLine=install-bench.disk

[Service]
ExecStart=/usr/lib/install-bench/sampler.sh
"""


def make_cpio(workdir):
    root = Path(workdir) / "install-bench-root"
    files = {
        "usr/lib/install-bench/floor.sh": (FLOOR_SH, 0o755),
        "usr/lib/install-bench/sampler.sh": (SAMPLER_SH, 0o755),
        "etc/systemd/system/harvester-install-agent.service.d/90-install-bench.conf": (DROPIN, 0o644),
        "etc/systemd/system/install-bench-sampler.service": (SAMPLER_UNIT, 0o644),
    }
    for rel, (text, mode) in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(mode)
    wants = root / "etc/systemd/system/initrd.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "install-bench-sampler.service").symlink_to("../install-bench-sampler.service")
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(shutil.which("curl"), root / "usr/bin/curl")
    out = Path(workdir) / CPIO_NAME
    names = subprocess.run(["find", ".", "-mindepth", "1"], cwd=root, check=True,
                           capture_output=True, text=True).stdout
    with open(out, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"], cwd=root, check=True,
                       input=names.encode(), stdout=f)
    out.chmod(0o644)
    return out


def rootfs_bytes(squashfs):
    """The bytes the root file system holds: the sizes of its regular files (unsquashfs -lls)."""
    out = subprocess.run(["unsquashfs", "-lls", "-d", "", str(squashfs)], check=True,
                         capture_output=True, text=True).stdout
    total = 0
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0].startswith("-") and f[2].isdigit():
            total += int(f[2])
    return total


def bundle_bytes(iso):
    """The bytes of the ISO's image bundles (xorriso's listing of /bundle)."""
    out = subprocess.run(["xorriso", "-indev", str(iso), "-find", "/bundle", "-type", "f",
                          "-exec", "lsdl", "--"], check=True, capture_output=True, text=True).stdout
    total = 0
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0].startswith("-") and f[4].isdigit():
            total += int(f[4])
    return total


def gib(n):
    return f"{n / GIB:.2f} GiB"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: install_bench.py RELEASE_DIR")
    release = h.Release(sys.argv[1])
    tools = h.Tools()
    accel, cpu = tools.accel()
    mem = os.environ.get("BENCH_MEM", "8G")
    timeout = int(os.environ.get("BENCH_TIMEOUT", "5400"))
    iso_path = release.dir / release.files["iso"]
    iso_size = iso_path.stat().st_size
    root_b = rootfs_bytes(release.dir / release.files["rootfs"])
    img_b = bundle_bytes(iso_path)
    os_b = 3 * root_b
    h.note(f"release {release.dir}: ISO {gib(iso_size)}, root file system {gib(root_b)}, "
           f"image bundles {gib(img_b)}; VM {mem}, {accel}")

    extra = (f"initrd={CPIO_NAME} install-bench.disk={DISK} install-bench.iso_bytes={iso_size} "
             f"install-bench.image_bytes={img_b} install-bench.os_bytes={os_b}")
    lab = None
    try:
        lab = h.Lab(release, tools, cmdline_extra=extra, config_edit=scenarios.with_token(),
                    name="install-bench")
        cpio = make_cpio(lab.workdir)
        h.place(cpio, lab.served.dir / CPIO_NAME)
        # The floor's URL is the agent's (the served config's iso_url), as node1 sees it.
        iso_url = lab.served.url(release.files["iso"])
        for name in lab.served.SCRIPTS:
            p = lab.served.dir / name
            # The cpio first: the kernel finds no archive after the release's zstd-compressed one.
            text = p.read_text().replace(" install-bench.disk=", f" install-bench.iso_url={iso_url} install-bench.disk=")
            text = re.sub(r"^(kernel \S+) (.*) initrd=" + re.escape(CPIO_NAME) + " ", rf"\1 initrd={CPIO_NAME} \2 ",
                          text, count=1, flags=re.M)
            text = re.sub(r"^(initrd \S+)$", rf"initrd {CPIO_NAME}\n\1", text, count=1, flags=re.M)
            h.write_public(p, text)
        vm = lab.new_vm("node1", "create", mem=mem)
        t0 = time.monotonic()
        load0 = os.getloadavg()
        with h.vm_slots(1):
            h.note("booting node1 (PXE, floors, install)")
            reason, secs = vm.run(accel, cpu, timeout, stop=[h.RE_SUCCEEDED.pattern, *scenarios.STOP_ALWAYS],
                                  grace=3.0, prefix="node1| " if os.environ.get("BENCH_LIVE") else None)
        wall = time.monotonic() - t0
        report(vm.console, reason, wall, iso_size, root_b, img_b, mem, accel)
        print(f"host: {os.cpu_count()} cores, load average {load0[0]:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end (1 min)")
        logs = lab.save_logs(h.LOGS / "install-bench")
        h.note(f"logs in {logs}")
    finally:
        if lab:
            lab.close()


def report(con, reason, wall, iso_size, root_b, img_b, mem, accel):
    def find(rx):
        hit = con.find(rx)
        return hit[1] if hit else None

    def floor(name):
        m = find(rf"\[install-bench\] floor {name} bytes=(\d+) t0=([\d.]+) t1=([\d.]+)")
        return (int(m.group(1)), float(m.group(3)) - float(m.group(2))) if m else (None, None)

    stages = {m.group(1): float(m.group(2)) for _, m in con.all(scenarios.RE_STAGE_TIME)}
    ok = con.find(h.RE_SUCCEEDED)
    failed = con.find(h.RE_FAILED)
    print(f"\nresult: {'SUCCEEDED' if ok else 'FAILED: ' + failed[1].group(1) if failed else reason} "
          f"(VM {mem}, {accel}, wall {wall:.0f} s)")
    for f in ("iso-curl", "dd-images", "dd-os"):
        if floor(f)[0] is None:
            print(f"floor {f}: not measured ({find(r'install-bench. floor failed: .*').group(0) if find(r'install-bench. floor failed') else 'no line'})")

    rows = []
    iso_fb, iso_ft = floor("iso-curl")
    if "iso" in stages and iso_ft:
        rows.append(("ISO stage (download, SHA-512, mount, checks)", stages["iso"], "curl -o into tmpfs", iso_ft, 1.3))
    os_m = find(r"OS images done in ([\d.]+) s")
    os_fb, os_ft = floor("dd-os")
    if os_m and os_ft:
        rows.append(("OS images (active, passive, recovery)", float(os_m.group(1)), f"dd {gib(os_fb)}", os_ft, None))
    copy_m = find(r"Copied the ISO's rancherd image bundle \(.*\) to COS_PERSISTENT in ([\d.]+) s")
    imp_m = find(r"Imported the ISO's Harvester images into containerd on COS_PERSISTENT in ([\d.]+) s")
    img_fb, img_ft = floor("dd-images")
    if imp_m and img_ft:
        img_t = float(imp_m.group(1)) + (float(copy_m.group(1)) if copy_m else 0.0)
        rows.append(("image stage (rancherd copy + preload import)", img_t, f"dd {gib(img_fb)}", img_ft, 1.3))
    print(f"\n{'stage':48} {'agent s':>8}  {'floor':22} {'floor s':>8} {'ratio':>6} {'target':>7}")
    for name, t, fname, ft, target in rows:
        print(f"{name:48} {t:8.1f}  {fname:22} {ft:8.1f} {t / ft:6.2f} {'<= ' + str(target) if target else '':>7}")
    print("agent stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
    if iso_ft:
        print(f"ISO download floor: {iso_fb / MIB / iso_ft:.0f} MiB/s; agent ISO stage "
              f"{iso_size / MIB / stages['iso']:.0f} MiB/s" if "iso" in stages else "")

    # Bytes of the three OS images: active.img's allocated size (the agent's log) x 3 (passive and
    # recovery are sparse copies of it), and the disk's sectors written during the step.
    act = find(r"Made \S+/active\.img in [\d.]+ s \(([\d.]+) (B|KiB|MiB|GiB) written\)")
    unit = {"B": 1, "KiB": 1 << 10, "MiB": MIB, "GiB": GIB}
    samples = [(t, int(m.group(1)), int(m.group(2)), int(m.group(3))) for t, m in
               con.all(r"\[install-bench\] sample t=[\d.]+ avail_kib=(\d+) written_sectors=(\d+) agent_hwm_kib=(\d+)")]
    if act:
        a = float(act.group(1)) * unit[act.group(2)]
        print(f"OS images: active.img takes {gib(a)}; the three {gib(3 * a)} = {3 * a / (3 * root_b):.2f} x "
              f"3 x the root file system's {gib(root_b)} (target <= 1.1)")
    mk = con.find(r"Making active\.img")
    done = con.find(r"OS images done in")
    if mk and done and samples:
        before = [s for s in samples if s[0] <= mk[0]]
        after = [s for s in samples if s[0] >= done[0]]
        if before and after:
            w = (after[0][2] - before[-1][2]) * 512
            print(f"OS images: the disk's sectors written from 'Making active.img' to 'OS images done' "
                  f"(+- one 2 s sample): {gib(w)} = {w / (3 * root_b):.2f} x 3 x the root file system")

    rss = find(r"Peak memory of the agent \(RSS\): (.*)\.$")
    hwm = max((s[3] for s in samples), default=0)
    print(f"agent peak RSS: {rss.group(1) if rss else '?'} (getrusage); VmHWM last sampled "
          f"{hwm / 1024:.1f} MiB (target <= 32 MiB)")
    st_iso = con.find(h.MARK + r" STAGE iso")
    st_next = con.find(h.MARK + r" STAGE disk-check")
    if st_iso and samples:
        pre = [s for s in samples if s[0] <= st_iso[0]]
        during = [s for s in samples if s[0] >= st_iso[0] and (not st_next or s[0] <= st_next[0])]
        rest = [s for s in samples if s[0] >= st_iso[0]]
        if pre and during and rest:
            avail0 = pre[-1][1] * 1024
            min_iso = min(s[1] for s in during) * 1024
            min_all = min(s[1] for s in rest) * 1024
            print(f"MemAvailable: {gib(avail0)} before the ISO stage, {gib(min_iso)} at least during it "
                  f"(the ISO's {gib(iso_size)} in tmpfs), {gib(min_all)} at least until the end")
            by_check = avail0 - (1 << 30)
            by_use = iso_size + min_all - (256 << 20)
            print(f"largest ISO with {mem}: {gib(min(by_check, by_use))} = min(the agent's own check: "
                  f"MemAvailable before the ISO {gib(avail0)} - its 1 GiB reserve = {gib(by_check)}; measured: "
                  f"this ISO {gib(iso_size)} + the least MemAvailable {gib(min_all)} - 256 MiB headroom = "
                  f"{gib(by_use)})")
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except h.Skip as e:
        h.note(f"skipped: {e}")
        sys.exit(77)
    except h.LabError as e:
        h.note(f"error: {e}")
        sys.exit(1)
