#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""qemu/check-disk on fake installed disks (suite root; exit 77 without root, loop devices or tools).

Builds two disks the way the agent leaves them, without the agent (the host cannot mount vfat):
  create: a 100 GiB sparse raw disk, partitions 1-6 (v1.1 formula: COS_PERSISTENT 37 GiB);
  join:   an 80 GiB disk, partitions 1-5 (COS_OEM 64 MiB, COS_PERSISTENT the rest) and a 60 GiB
          whole-disk HARV_LH_DEFAULT data disk.
GPT by sfdisk, file systems by mkfs.vfat/mkfs.ext4 on loop partitions added with partx, COS_GRUB
written with mtools, the ext4 ones mounted; 90_custom.yaml and harvester.config are the agent's
golden files (tests/install/golden) with a real password hash; grub2/grub.cfg is the golden menu.
Then check-disk must pass on both (raw, and qcow2 through qemu-img convert) and FAIL, naming the
check, on each broken copy: wrong label, wrong GPT name, missing EFI/BOOT/grub.cfg, 0644
90_custom.yaml, the clear password stored, a secret in console.log, a secret (escaped) in a
world-readable file, an image without /boot/initrd, join without server, a wrong mode, hostname or
server URL, a data disk given for a disk that has partition 6. After every run: no loop device on
the images, no mount, no temporary file left.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

MiB, GiB = 1 << 20, 1 << 30
EFI = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

TESTS = os.environ.get("TESTS_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = os.path.dirname(TESTS)
CHECK = os.path.join(TOP, "qemu", "check-disk")
GOLDEN = os.path.join(TESTS, "install", "golden")

PASSWORD = "Cl3ar-Passw0rd!x"
CREATE_TOKEN = 'tok"en\\with:specials#1'  # the golden create file's token
JOIN_TOKEN = "j0in-Tok3n-secret"
WEBHOOK_SECRET = "hook-Basic-auth-pw9"
SERVER = "https://10.0.2.100:443"

failures = []


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(77)


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode, (r.stderr or r.stdout).strip()[-400:]))
    return r.stdout


def expect(cond, what):
    print(("ok: " if cond else "FAILED: ") + what, flush=True)
    if not cond:
        failures.append(what)


# ------------------------------------------------------------------------------------------------
# Building a disk


def layout(size, data_disk):
    """REFERENCE.md section 3, written out for the two disks of this test (512-byte sectors)."""
    end = (size - 512 - 128 * 128) // MiB * MiB  # the last whole MiB before the backup GPT
    parts = [("efi", EFI, 64 * MiB), ("oem", LINUX, (64 if data_disk else 50) * MiB),
             ("recovery", LINUX, 8 * GiB), ("state", LINUX, 15 * GiB)]
    used = MiB + sum(p[2] for p in parts)
    if data_disk:
        parts.append(("persistent", LINUX, end - used))
    else:
        assert size == 100 * GiB
        parts.append(("persistent", LINUX, 37 * GiB))  # v1.1: 25 + (100 - 60) * 0.3125
        parts.append(("data", LINUX, end - used - 37 * GiB))
    return parts


class Loop:
    """A writable loop device with partitions added by partx; released by close()."""

    def __init__(self, path):
        self.dev = run(["losetup", "-P", "-f", "--show", path]).strip()
        self.mounts = []

    def part(self, n):
        node = "%sp%d" % (self.dev, n)
        if not os.path.exists(node):
            subprocess.run(["partx", "-a", self.dev], capture_output=True)
            for _ in range(50):
                if os.path.exists(node):
                    break
                time.sleep(0.1)
        if not os.path.exists(node):
            raise RuntimeError("no partition node %s after partx -a" % node)
        return node

    def mount(self, node, mp):
        os.makedirs(mp, exist_ok=True)
        run(["mount", "-t", "ext4", node, mp])
        self.mounts.append(mp)
        return mp

    def close(self):
        """Unmounts (an edit is on the image only once its file system is unmounted: a failed
        umount would let check-disk read the unedited image and pass), then detaches. Every step
        is checked; the first failure is raised after the rest were tried."""
        errors = []
        while self.mounts:
            mp = self.mounts.pop()
            r = subprocess.run(["umount", mp], capture_output=True, text=True)
            if r.returncode != 0:
                errors.append(f"umount {mp}: {r.stderr.strip()}")
        r = subprocess.run(["partx", "-d", self.dev], capture_output=True, text=True)
        if r.returncode != 0 and "No such" not in r.stderr:
            errors.append(f"partx -d {self.dev}: {r.stderr.strip()}")
        r = subprocess.run(["losetup", "-d", self.dev], capture_output=True, text=True)
        if r.returncode != 0:
            errors.append(f"losetup -d {self.dev}: {r.stderr.strip()}")
        if errors:
            raise RuntimeError("; ".join(errors))


def write(path, data, mode):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)


def password_hash():
    out = run(["openssl", "passwd", "-6", "-salt", "Zq4dY7uR2mPs9xW1", "-stdin"], input=PASSWORD + "\n")
    return out.strip()


GRUB_STUB = ("search --no-floppy --label --set=root COS_STATE\n"
             "set prefix=($root)/grub2\n"
             "configfile ($root)/grub2/grub.cfg")
# The image's boot files, as the test release carries them (qemu/release/cos/).
RELEASE_COS = os.path.join(os.environ.get("TESTS_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..")),
                           "..", "qemu", "release", "cos")
GRUBMENU = ("menuentry \"${display_name} (debug)\" --id debug {\n"
            "  search --no-floppy --set=root --label COS_STATE\n"
            "  set img=/cOS/active.img\n"
            "  set label=COS_ACTIVE\n"
            "  loopback loop0 /$img\n"
            "  set root=($root)\n"
            "  source (loop0)/etc/cos/bootargs.cfg\n"
            "  linux (loop0)$kernel $kernelcmd ${extra_cmdline} ${extra_passive_cmdline} ${crash_kernel_params}\n"
            "  initrd (loop0)$initramfs\n"
            "}\n")
STATE_YAML = ("# Autogenerated file by elemental client, do not edit\n\n"
              "date: \"2026-11-30T04:00:00Z\"\n"
              "oem:\n    label: COS_OEM\npersistent:\n    label: COS_PERSISTENT\n"
              "recovery:\n    label: COS_RECOVERY\n    recovery:\n        source: dir:///rootfs\n"
              "        label: COS_SYSTEM\n        fs: ext2\n"
              "state:\n    label: COS_STATE\n    active:\n        source: dir:///rootfs\n"
              "        label: COS_ACTIVE\n        fs: ext2\n    passive:\n        source: dir:///rootfs\n"
              "        label: COS_PASSIVE\n        fs: ext2\n")


def make_images(work, state, recovery):
    root = os.path.join(work, "rootfs")
    os.makedirs(os.path.join(root, "boot"), exist_ok=True)
    write(os.path.join(root, "boot", "vmlinuz-6.1"), b"\x7fkernel" * 1000, 0o644)
    if not os.path.lexists(os.path.join(root, "boot", "vmlinuz")):
        os.symlink("vmlinuz-6.1", os.path.join(root, "boot", "vmlinuz"))  # as in a Harvester rootfs
    write(os.path.join(root, "boot", "initrd"), b"initrd" * 1000, 0o644)
    os.makedirs(os.path.join(root, "etc", "cos"), exist_ok=True)
    os.makedirs(os.path.join(root, "usr", "share", "grub2", "x86_64-efi"), exist_ok=True)
    for f in ("grub.cfg", "bootargs.cfg"):
        shutil.copy(os.path.join(RELEASE_COS, f), os.path.join(root, "etc", "cos", f))
    for m in ("loopback", "squash4", "xzio"):
        write(os.path.join(root, "usr", "share", "grub2", "x86_64-efi", m + ".mod"), ("mod " + m) * 100, 0o644)
    os.makedirs(os.path.join(state, "cOS"))
    os.makedirs(os.path.join(recovery, "cOS"))
    active = os.path.join(state, "cOS", "active.img")
    run(["mke2fs", "-q", "-t", "ext2", "-F", "-L", "COS_ACTIVE", "-d", root, active, "3072M"])
    for dst, label in ((os.path.join(state, "cOS", "passive.img"), "COS_PASSIVE"),
                       (os.path.join(recovery, "cOS", "recovery.img"), "COS_SYSTEM")):
        run(["cp", "--sparse=always", active, dst])
        run(["tune2fs", "-L", label, dst])
    # The console goes into active.img's bootargs.cfg only (after the copies), as the install does.
    args = open(os.path.join(root, "etc", "cos", "bootargs.cfg")).read()
    write(os.path.join(work, "bootargs.active"),
          args.replace('console_params="console=tty1"', 'console_params="console=ttyS0,115200n8 console=tty1"'), 0o644)
    run(["debugfs", "-w", "-R", "rm /etc/cos/bootargs.cfg", active])
    run(["debugfs", "-w", "-R", "write %s /etc/cos/bootargs.cfg" % os.path.join(work, "bootargs.active"), active])
    # COS_STATE's boot files from the image.
    os.makedirs(os.path.join(state, "grub2", "x86_64-efi"))
    cfg = os.path.join(state, "grub2", "grub.cfg")
    shutil.copy(os.path.join(root, "etc", "cos", "grub.cfg"), cfg)
    for expr in ("s/search /search --no-floppy /", "s/search.fs_label /search --no-floppy --label /",
                 "s/search.file /search --no-floppy --file /", "s/search.fs_uuid /search --no-floppy --fs-uuid /"):
        run(["sed", "-i", expr, cfg])
    run(["sed", "-i", "-E", r"s/^(\s*search\b)(.*)root$/\1 --set=root\2/", cfg])
    for m in ("loopback", "squash4", "xzio"):
        shutil.copy(os.path.join(root, "usr", "share", "grub2", "x86_64-efi", m + ".mod"),
                    os.path.join(state, "grub2", "x86_64-efi", m + ".mod"))
    write(os.path.join(state, "grubmenu"), GRUBMENU, 0o644)
    for d in (state, recovery):
        write(os.path.join(d, "state.yaml"), STATE_YAML, 0o644)


def report_json(mode):
    """The install report as the agent writes it before the commit point (agent/report.c)."""
    stages = [{"name": n, "start": "2026-01-01T00:00:%02d.000Z" % i, "end": "2026-01-01T00:00:%02d.500Z" % i,
               "seconds": 0.5} for i, n in enumerate(["configuration", "memory", "iso", "disk-check", "disk-write"])]
    stages.append({"name": "install", "start": "2026-01-01T00:00:06.000Z", "end": None, "seconds": None})
    return json.dumps({
        "agent_version": "0.1", "harvester_version": "v1.1.2", "os_name": "Harvester v1.1.2",
        "kubernetes_version": "v1.24.11+rke2r1", "rancher_version": "v2.6.11", "mode": mode,
        "result": "succeeded", "failure": None,
        "iso": {"url": "http://10.0.2.2/harvester.iso", "checksum": "sha512:" + "ab" * 64, "size": 66060288},
        "stages": stages,
        "disks": [{"role": "install", "name": "/dev/sda", "node": "/dev/sda",
                   "by_id": "/dev/disk/by-id/ata-QEMU_HARDDISK_disk0", "model": "QEMU HARDDISK",
                   "serial": "disk0", "size": 322122547200}]}, separators=(",", ":")) + "\n"


def build(work, name, mode, hostname, data_disk):
    """Makes work/<name>.raw (and work/<name>-sdb.raw); returns their paths."""
    size = 100 * GiB if not data_disk else 80 * GiB
    img = os.path.join(work, name + ".raw")
    with open(img, "wb") as f:
        f.truncate(size)
    script = "label: gpt\nunit: sectors\nsector-size: 512\n"
    pos = MiB
    for pname, guid, psize in layout(size, data_disk):
        script += "start=%d, size=%d, type=%s, name=%s\n" % (pos // 512, psize // 512, guid, pname)
        pos += psize
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", img], input=script)

    sdb = None
    if data_disk:
        sdb = os.path.join(work, name + "-sdb.raw")
        with open(sdb, "wb") as f:
            f.truncate(60 * GiB)
        run(["mkfs.ext4", "-q", "-F", "-L", "HARV_LH_DEFAULT", "-E",
             "lazy_itable_init=1,lazy_journal_init=1,nodiscard", sdb])

    golden = "join" if mode == "join" else "create"
    custom = open(os.path.join(GOLDEN, golden + "-90_custom.yaml")).read()
    hc = open(os.path.join(GOLDEN, golden + "-harvester.config")).read()
    h = password_hash()
    custom = re.sub(r"(?m)^(\s+passwd: ).*$", lambda m: m.group(1) + h, custom)
    hc = re.sub(r"(?m)^(  password: ).*$", lambda m: m.group(1) + h, hc)
    custom = re.sub(r"(?m)^(\s+hostname: ).*$", lambda m: m.group(1) + hostname, custom)
    hc = re.sub(r"(?m)^(  hostname: ).*$", lambda m: m.group(1) + hostname, hc)
    if mode == "join":
        custom = custom.replace('token: "token"', 'token: "%s"' % JOIN_TOKEN)
        hc = hc.replace("token: token", "token: " + JOIN_TOKEN)
    assert h in custom and h in hc and ("hostname: " + hostname) in custom

    loop = Loop(img)
    try:
        layout_parts = layout(size, data_disk)
        labels = ["COS_GRUB", "COS_OEM", "COS_RECOVERY", "COS_STATE", "COS_PERSISTENT", "HARV_LH_DEFAULT"]
        for n in range(1, len(layout_parts) + 1):
            node = loop.part(n)
            if n == 1:
                run(["mkfs.vfat", "-F", "32", "-n", "COS_GRUB", node])
            else:
                run(["mkfs.ext4", "-q", "-F", "-L", labels[n - 1], "-E",
                     "lazy_itable_init=1,lazy_journal_init=1,nodiscard", node])
        # COS_GRUB with mtools: the host kernel has no vfat.
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        shim = b"MZ\x90\x00" + bytes(60) + b"PE\x00\x00" + bytes(8000)
        write(os.path.join(work, "BOOTX64.EFI"), shim, 0o644)
        write(os.path.join(work, "shim.efi"), shim, 0o644)
        write(os.path.join(work, "grub.efi"), b"MZ-grub" + bytes(100), 0o644)
        write(os.path.join(work, "MokManager.efi"), b"MZ-mok" + bytes(100), 0o644)
        write(os.path.join(work, "grub.cfg"), GRUB_STUB, 0o644)
        efi = loop.part(1)
        run(["mmd", "-i", efi, "::/EFI", "::/EFI/BOOT", "::/EFI/elemental"], env=env)
        for f in ("shim.efi", "grub.efi", "MokManager.efi", "grub.cfg", "BOOTX64.EFI"):
            for sub in ("EFI/BOOT", "EFI/elemental"):
                if f == "BOOTX64.EFI" and sub == "EFI/elemental":
                    continue
                run(["mcopy", "-i", efi, os.path.join(work, f), "::/%s/" % sub], env=env)

        mnt = os.path.join(work, "mnt-" + name)
        state = loop.mount(loop.part(4), os.path.join(mnt, "state"))
        recovery = loop.mount(loop.part(3), os.path.join(mnt, "recovery"))
        oem = loop.mount(loop.part(2), os.path.join(mnt, "oem"))
        make_images(work, state, recovery)
        write(os.path.join(state, "grub_oem_env"),
              ("# GRUB Environment Block\ndefault_menu_entry=Harvester\n").ljust(1024, "#"), 0o644)

        write(os.path.join(oem, "90_custom.yaml"), custom, 0o600)
        write(os.path.join(oem, "harvester.config"), hc, 0o600)
        write(os.path.join(oem, "grubenv"), "# GRUB Environment Block\n".ljust(1024, "#"), 0o644)
        os.makedirs(os.path.join(oem, "install"), 0o700)
        write(os.path.join(oem, "install", "console.log"),
              "harvester-install-agent: configuration from http://10.0.2.2/config.yaml\n"
              "harvester-install-agent: token: <redacted>, os.password: <redacted>\n"
              "harvester-install-agent: Made active.img (COS_ACTIVE) in 2.1 s.\n"
              "harvester-install-agent: Install finished.\n", 0o600)
        write(os.path.join(oem, "install", "report.json"), report_json(mode), 0o600)
        persistent = loop.mount(loop.part(5), os.path.join(mnt, "persistent"))
        os.makedirs(os.path.join(persistent, ".state"), 0o755)
    finally:
        loop.close()
    return img, sdb


# ------------------------------------------------------------------------------------------------
# Breaking a copy


def copy(src, dst):
    run(["cp", "--sparse=always", src, dst])
    return dst


def edit_fs(img, partno, fn):
    """Mounts partition partno of img read-write and calls fn(mountpoint, node)."""
    loop = Loop(img)
    try:
        node = loop.part(partno)
        if fn.__code__.co_argcount == 1:
            fn(node)
        else:
            mp = loop.mount(node, tempfile.mkdtemp(prefix="edit.", dir=os.path.dirname(img)))
            fn(mp, node)
    finally:
        loop.close()


def edit_grub(img, fn):
    loop = Loop(img)
    try:
        fn(loop.part(1), dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    finally:
        loop.close()


def sub_file(path, old, new):
    s = open(path).read()
    assert old in s, (path, old)
    mode = os.stat(path).st_mode
    write(path, s.replace(old, new), mode & 0o7777)


# ------------------------------------------------------------------------------------------------
# Running check-disk


def leftovers(work, images):
    """Loop devices over our images, mounts below work, entries of check-disk's TMPDIR."""
    out = []
    for img in images:
        r = subprocess.run(["losetup", "-j", img], capture_output=True, text=True)
        if r.stdout.strip():
            out.append(r.stdout.strip())
    with open("/proc/self/mounts") as f:
        out += [ln.split()[1] for ln in f if ln.split()[1].startswith(work)]
    out += os.listdir(os.path.join(work, "tmp"))
    return out


def check_disk(work, name, args, images):
    env = dict(os.environ, TMPDIR=os.path.join(work, "tmp"))
    r = subprocess.run([CHECK] + args, capture_output=True, text=True, env=env)
    # A loop device still open when it is detached is freed by the kernel at its last close,
    # asynchronously: what is left is read again for up to 10 s before it counts.
    left = leftovers(work, images)
    for _ in range(100):
        if not left:
            break
        time.sleep(0.1)
        left = leftovers(work, images)
    expect(not left, "%s: nothing left behind%s" % (name, "" if not left else ": " + ", ".join(left)))
    return r


def expect_pass(work, name, args, images):
    r = check_disk(work, name, args, images)
    fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL")]
    expect(r.returncode == 0 and not fails and "ok: " in r.stdout,
           "%s: check-disk passes (exit %d)%s" % (name, r.returncode, "".join("\n    " + f for f in fails)
                                                  + ("\n" + r.stderr if r.returncode not in (0, 1) else "")))
    return r


def expect_fail(work, name, args, images, pattern):
    r = check_disk(work, name, args, images)
    fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL: ")]
    hit = [ln for ln in fails if re.search(pattern, ln)]
    expect(r.returncode == 1 and hit, "%s: check-disk fails (exit %d) with %r%s" % (
        name, r.returncode, pattern, "" if hit else ": got " + repr(fails[:6]) + r.stderr[-300:]))
    secrets = [PASSWORD, CREATE_TOKEN, JOIN_TOKEN, WEBHOOK_SECRET]
    expect(not any(s in r.stdout + r.stderr for s in secrets), "%s: check-disk's output holds no secret" % name)
    return r


def main():
    if os.geteuid() != 0:
        skip("needs root")
    tools = ["losetup", "partx", "sfdisk", "blkid", "mount", "mkfs.vfat", "mkfs.ext4", "mke2fs", "tune2fs",
             "mmd", "mcopy", "mdel", "debugfs", "dumpe2fs", "qemu-img", "openssl"]
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        skip("missing tools: " + " ".join(missing))
    if not os.path.exists("/dev/loop-control"):
        skip("no loop devices")

    work = tempfile.mkdtemp(prefix="test-check-disk.", dir=os.environ.get("TMPDIR") or "/var/tmp")
    try:
        os.makedirs(os.path.join(work, "tmp"))
        try:
            t = time.monotonic()
            c_img, _ = build(work, "create", "create", "node1", False)
            j_img, j_sdb = build(work, "join", "join", "node-join-2", True)
            print("built the two fake disks in %.1f s (%d MiB allocated)" % (
                time.monotonic() - t, sum(os.stat(p).st_blocks * 512 for p in (c_img, j_img, j_sdb)) >> 20))
        except RuntimeError as e:
            if "losetup" in str(e) and "failed to set up loop device" in str(e):
                skip("no free loop device: %s" % e)
            raise

        create = ["--mode", "create", "--hostname", "node1", "--secret", CREATE_TOKEN, "--secret", WEBHOOK_SECRET,
                  "--password-clear", PASSWORD]
        join = ["--mode", "join", "--hostname", "node-join-2", "--server-url", "https://10.0.2.100",
                "--secret", JOIN_TOKEN, "--password-clear", PASSWORD]

        # The good disks.
        r = expect_pass(work, "create (raw)", ["--disk", c_img] + create, [c_img])
        for must in ("ok: sda5: 37 GiB at ", "ok: sda6: ", "ok: sda1: type EFI System", "ok: sda1: vfat COS_GRUB",
                     "ok: COS_OEM: 90_custom.yaml password hash matches --password-clear",
                     "ok: COS_STATE: cOS/active.img", "ok: COS_RECOVERY: cOS/recovery.img",
                     "ok: COS_OEM: 90_custom.yaml rancherd config: role: cluster-init",
                     "ok: COS_OEM: 90_custom.yaml has the eight rancherd bootstrap files of v1.1.2, 0600 root",
                     "ok: COS_OEM: rancherd bootstrap: monitoring 100.1.0+up19.0.3, logging 100.1.3+up3.17.7",
                     "ok: no secret in a file others can read"):
            expect(must in r.stdout, "create: the output has %r" % must)
        qcow = os.path.join(work, "create.qcow2")
        run(["qemu-img", "convert", "-O", "qcow2", c_img, qcow])
        expect_pass(work, "create (qcow2)", ["--disk", qcow] + create, [qcow])
        r = expect_pass(work, "join with a data disk", ["--disk", j_img, "--data-disk", j_sdb] + join, [j_img, j_sdb])
        for must in ("ok: sdb: whole-disk ext4 HARV_LH_DEFAULT", "ok: sdb: no partition table",
                     "ok: sda: no partition 6 with a data disk", "ok: sda2: 64 MiB at 65 MiB",
                     "ok: COS_OEM: 90_custom.yaml rancherd config: server: https://10.0.2.100:443, role: agent",
                     "ok: COS_OEM: 90_custom.yaml has no rancherd bootstrap files (join)"):
            expect(must in r.stdout, "join: the output has %r" % must)
        # --token: the configured token is the one on the disk, in rancherd's config and in
        # harvester.config; --device: harvester.config names the install disk.
        r = expect_pass(work, "create --token --device", ["--disk", c_img, "--token", CREATE_TOKEN,
                                                          "--device", "/dev/sda"] + create, [c_img])
        for must in ("ok: COS_OEM: 90_custom.yaml rancherd config: role: cluster-init, the --token token",
                     "ok: COS_OEM: harvester.config says mode create, hostname node1, the --token token, device /dev/sda"):
            expect(must in r.stdout, "create --token: the output has %r" % must)
        r = expect_fail(work, "another token", ["--disk", c_img, "--token", "wrong-Token-98765"] + create, [c_img],
                        r"rancherd config.*the token is not the --token value")
        expect(re.search(r"FAIL: COS_OEM: harvester.config says .*token is not the --token value", r.stdout)
               is not None, "another token: harvester.config's token is reported too")
        expect(CREATE_TOKEN not in r.stdout and "wrong-Token-98765" not in r.stdout,
               "another token: no token value in the output")
        expect_fail(work, "another device", ["--disk", c_img, "--device", "/dev/vdb"] + create, [c_img],
                    r"harvester.config says .*install.device is '/dev/sda'")
        expect_pass(work, "join --token", ["--disk", j_img, "--data-disk", j_sdb, "--token", JOIN_TOKEN] + join,
                    [j_img, j_sdb])
        r = check_disk(work, "create --json", ["--disk", c_img, "--json"] + create, [c_img])
        expect(r.returncode == 0 and '"result": "pass"' in r.stdout, "create --json: result pass")

        # Arguments that do not match the disk.
        expect_fail(work, "create disk checked as join", ["--disk", c_img, "--mode", "join", "--hostname", "node1",
                                                          "--server-url", SERVER], [c_img],
                    r"rancherd config: server.*role is 'cluster-init'")
        expect_fail(work, "another hostname", ["--disk", c_img] + create[:2] + ["--hostname", "node9"] + create[4:],
                    [c_img], r"90_custom.yaml hostname node9")
        expect_fail(work, "another server URL", ["--disk", j_img, "--data-disk", j_sdb] +
                    [a if a != "https://10.0.2.100" else "https://10.0.2.200" for a in join], [j_img, j_sdb],
                    r"server is 'https://10.0.2.100:443'")
        expect_fail(work, "another clear password", ["--disk", c_img] + create[:-1] + ["Other-Passw0rd"], [c_img],
                    r"password hash matches --password-clear")
        expect_fail(work, "partition 6 although a data disk is given", ["--disk", c_img, "--data-disk", j_sdb]
                    + create, [c_img, j_sdb], r"sda: no partition 6 with a data disk")
        expect_fail(work, "a data disk missed", ["--disk", j_img] + join, [j_img], r"sda: partitions 1,2,3,4,5,6")

        # Broken copies of the create disk.
        b = os.path.join(work, "broken.raw")

        copy(c_img, b)
        edit_fs(b, 2, lambda node: run(["tune2fs", "-L", "COS_0EM", node]))
        expect_fail(work, "wrong label", ["--disk", b] + create, [b], r"sda2: ext4 COS_OEM: blkid finds ext4 COS_0EM")

        copy(c_img, b)
        run(["sfdisk", "-q", "--part-label", b, "1", "esp"])
        expect_fail(work, "wrong GPT name", ["--disk", b] + create, [b], r"sda1: GPT name efi: it is 'esp'")

        copy(c_img, b)
        edit_grub(b, lambda node, env: run(["mdel", "-i", node, "::/EFI/BOOT/grub.cfg"], env=env))
        expect_fail(work, "missing EFI/BOOT/grub.cfg", ["--disk", b] + create, [b], r"COS_GRUB: EFI/BOOT/grub.cfg")

        copy(c_img, b)
        edit_fs(b, 2, lambda mp, node: os.chmod(os.path.join(mp, "90_custom.yaml"), 0o644))
        r = expect_fail(work, "90_custom.yaml 0644", ["--disk", b] + create, [b],
                        r"COS_OEM: 90_custom.yaml: mode 0600.*mode 0644")
        expect(re.search(r"FAIL: no secret in a file others can read.*COS_OEM:90_custom.yaml \(mode 0644\) holds "
                         r"--secret #1", r.stdout) is not None, "90_custom.yaml 0644: the token is reported leaked")

        copy(c_img, b)
        edit_fs(b, 2, lambda mp, node: sub_file(os.path.join(mp, "90_custom.yaml"),
                                                "- path: /etc/rancher/rancherd/config.yaml\n      permissions: 384",
                                                "- path: /etc/rancher/rancherd/config.yaml\n      permissions: 420"))
        expect_fail(work, "rancherd config written 0644 at boot", ["--disk", b] + create, [b],
                    r"writes files holding a secret 0600.*/etc/rancher/rancherd/config.yaml \(permissions 420")

        # Broken disks: another token in harvester.config only, then in rancherd's config only.
        copy(c_img, b)
        edit_fs(b, 2, lambda mp, node: sub_file(os.path.join(mp, "harvester.config"),
                                                'token: tok"en\\with:specials#1', "token: other-Token-4321"))
        r = expect_fail(work, "harvester.config with another token", ["--disk", b, "--token", CREATE_TOKEN] + create,
                        [b], r"harvester.config says .*token is not the --token value")
        expect("ok: COS_OEM: 90_custom.yaml rancherd config: role: cluster-init, the --token token" in r.stdout,
               "harvester.config with another token: rancherd's config still passes")
        copy(c_img, b)
        edit_fs(b, 2, lambda mp, node: sub_file(os.path.join(mp, "90_custom.yaml"),
                                                'token: "tok\\"en\\\\with:specials#1"', 'token: "other-Token-4321"'))
        expect_fail(work, "rancherd config with another token", ["--disk", b, "--token", CREATE_TOKEN] + create,
                    [b], r"rancherd config.*the token is not the --token value")

        copy(c_img, b)
        edit_fs(b, 2, lambda mp, node: sub_file(os.path.join(mp, "90_custom.yaml"),
                                                "- path: /etc/rancher/rancherd/config.yaml.d/11-monitoring-crd.yaml",
                                                "- path: /etc/rancher/rancherd/config.yaml.d/11-monitoring-crd.yml"))
        expect_fail(work, "a bootstrap file missing", ["--disk", b] + create, [b],
                    r"eight rancherd bootstrap files of v1.1.2.*files: 10-harvester.yaml 11-monitoring-crd.yml")

        copy(c_img, b)
        edit_fs(b, 2, lambda mp, node: sub_file(os.path.join(mp, "90_custom.yaml"), password_hash(), PASSWORD))
        r = expect_fail(work, "clear password stored", ["--disk", b] + create, [b],
                        r"90_custom.yaml does not hold the clear password")
        expect("FAIL: COS_OEM: 90_custom.yaml rancher password stored as a SHA-512 crypt hash" in r.stdout,
               "clear password stored: the hash check fails too")

        copy(c_img, b)
        edit_fs(b, 2, lambda mp, node: sub_file(os.path.join(mp, "install", "console.log"), "Install finished.",
                                                "webhook auth " + WEBHOOK_SECRET))
        expect_fail(work, "secret in console.log", ["--disk", b] + create, [b],
                    r"install/console.log holds no secret.*--secret #2")

        copy(c_img, b)
        edit_fs(b, 2, lambda mp, node: sub_file(os.path.join(mp, "install", "report.json"), '"disk-write"',
                                                '"disk-write-x"'))
        expect_fail(work, "report.json without the disk-write stage", ["--disk", b] + create, [b],
                    r"install/report.json: result succeeded.*stages \['configuration', 'memory', 'iso', 'disk-check', "
                    r"'disk-write-x', 'install'\]")

        copy(c_img, b)
        edit_fs(b, 2, lambda mp, node: sub_file(os.path.join(mp, "install", "report.json"), '"disk0"',
                                                '"' + WEBHOOK_SECRET + '"'))
        expect_fail(work, "secret in report.json", ["--disk", b] + create, [b],
                    r"install/report.json holds no secret.*--secret #2")

        copy(c_img, b)
        edit_fs(b, 5, lambda mp, node: write(os.path.join(mp, "leak.json"),
                                             '{"token": "tok\\"en\\\\with:specials#1"}\n', 0o644))
        expect_fail(work, "JSON-escaped secret in a world-readable file", ["--disk", b] + create, [b],
                    r"COS_PERSISTENT:leak.json \(mode 0644\) holds --secret #1")

        copy(c_img, b)
        edit_fs(b, 4, lambda mp, node: run(["debugfs", "-w", "-R", "rm /boot/initrd",
                                            os.path.join(mp, "cOS", "passive.img")]))
        expect_fail(work, "passive.img without /boot/initrd", ["--disk", b] + create, [b],
                    r"COS_STATE: cOS/passive.img.*no /boot/initrd")

        copy(c_img, b)
        edit_fs(b, 4, lambda mp, node: sub_file(os.path.join(mp, "grub2", "grub.cfg"), "--id recovery", "--id rescue"))
        expect_fail(work, "grub.cfg without a recovery entry", ["--disk", b] + create, [b],
                    r"grub2/grub.cfg entries cos, fallback, recovery: entries: cos, fallback, rescue")
        copy(c_img, b)
        edit_fs(b, 4, lambda mp, node: os.unlink(os.path.join(mp, "grub2", "x86_64-efi", "squash4.mod")))
        expect_fail(work, "no squash4.mod on COS_STATE", ["--disk", b] + create, [b],
                    r"COS_STATE: grub2/x86_64-efi/.*no squash4.mod")
        copy(c_img, b)
        edit_fs(b, 3, lambda mp, node: os.unlink(os.path.join(mp, "state.yaml")))
        expect_fail(work, "no state.yaml on COS_RECOVERY", ["--disk", b] + create, [b], r"COS_RECOVERY: state.yaml")
        copy(c_img, b)
        edit_grub(b, lambda node, env: run(["mdel", "-i", node, "::/EFI/elemental/shim.efi"], env=env))
        expect_fail(work, "no EFI/elemental/shim.efi", ["--disk", b] + create, [b],
                    r"COS_GRUB: shim.efi.*no EFI/elemental/shim.efi")

        # Broken copies of the join disk.
        copy(j_img, b)
        edit_fs(b, 2, lambda mp, node: sub_file(os.path.join(mp, "90_custom.yaml"),
                                                "        server: https://10.0.2.100:443\n", ""))
        expect_fail(work, "join without server", ["--disk", b, "--data-disk", j_sdb] + join, [b, j_sdb],
                    r"rancherd config: server: .*no server")
        os.unlink(b)
        bs = os.path.join(work, "broken-sdb.raw")
        copy(j_sdb, bs)
        run(["sfdisk", "-q", "--wipe", "never", bs], input="label: gpt\nstart=2048, size=2048\n")
        expect_fail(work, "data disk with a partition table", ["--disk", j_img, "--data-disk", bs] + join,
                    [j_img, bs], r"sdb: no partition table")
        os.unlink(bs)

        # 77 without the tools it needs; 2 on a usage error.
        r = subprocess.run([CHECK, "--disk", c_img] + create, capture_output=True, text=True,
                           env=dict(os.environ, PATH="/nonexistent"))
        expect(r.returncode == 77, "no tools in PATH: exit 77 (got %d)" % r.returncode)
        r = subprocess.run([CHECK, "--disk", c_img, "--mode", "create"], capture_output=True, text=True)
        expect(r.returncode == 2, "no --hostname: exit 2 (got %d)" % r.returncode)
    finally:
        for line in open("/proc/self/mounts").read().splitlines():
            if line.split()[1].startswith(work):
                subprocess.run(["umount", "-l", line.split()[1]])
        for img in (os.path.join(work, f) for f in os.listdir(work)):
            r = subprocess.run(["losetup", "-j", img], capture_output=True, text=True)
            for ln in r.stdout.splitlines():
                dev = ln.split(":")[0]
                subprocess.run(["partx", "-d", dev], capture_output=True)
                subprocess.run(["losetup", "-d", dev], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    if failures:
        print("%d expectation(s) failed" % len(failures))
        return 1
    print("all expectations met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
