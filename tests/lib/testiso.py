# SPDX-License-Identifier: Apache-2.0
"""The small installer ISO the root tests run the agent against (tests/run/test-run-root.py,
tests/disk/test-sigterm-root.py): what the ISO stage checks, in an ISO9660 image made by xorriso."""
import hashlib
import os
import shutil
import subprocess


def run(cmd):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def add_image_files(root, shim_bytes=b"MZ shim\n" * 100):
    """What the iso stage checks inside rootfs.squashfs (os_image_check): the kernel and initrd,
    the release file, the image's GRUB files (qemu/release/cos/), the EFI binaries and modules."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "qemu", "release", "cos")
    files = {
        "boot/vmlinuz": b"kernel\n" * 100, "boot/initrd": b"initrd\n" * 100,
        "etc/harvester-release.yaml": b"harvester: v1.1.2-test\nos: Harvester v1.1.2-test\n"
                                      b"monitoringChart: 100.1.0+up19.0.3\nloggingChart: 100.1.3+up3.17.7\n",
        "etc/cos/grub.cfg": open(os.path.join(src, "grub.cfg"), "rb").read(),
        "etc/cos/bootargs.cfg": open(os.path.join(src, "bootargs.cfg"), "rb").read(),
        "usr/share/efi/x86_64/shim.efi": shim_bytes, "usr/share/efi/x86_64/grub.efi": b"MZ grub\n" * 100,
        "usr/share/efi/x86_64/MokManager.efi": b"MZ mok\n" * 100,
    }
    for m in ("loopback", "squash4", "xzio"):
        files["usr/share/grub2/x86_64-efi/%s.mod" % m] = m.encode() * 100
    for rel, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)


def make_iso(work, name, rootfs_garbage=False, big_shim=False):
    """An ISO9660 image holding what the ISO stage checks for: rootfs.squashfs (a real squashfs of
    a small tree, or garbage), boot/kernel, boot/initrd, EFI/BOOT/BOOTX64.EFI."""
    tree = os.path.join(work, name + ".d")
    for d in ("boot", "EFI/BOOT", "rootfs/etc"):
        os.makedirs(os.path.join(tree, d), exist_ok=True)
    with open(os.path.join(tree, "rootfs", "etc", "os-release"), "w") as f:
        f.write("NAME=test\n")
    # big_shim: a 70 MiB shim.efi (zeros: a small squashfs) that cannot fit on the 64 MiB COS_GRUB.
    add_image_files(os.path.join(tree, "rootfs"), b"MZ" + bytes(70 << 20) if big_shim else b"MZ shim\n" * 100)
    sq = os.path.join(tree, "rootfs.squashfs")
    if rootfs_garbage:
        with open(sq, "wb") as f:
            f.write(b"not a squashfs\n" * 4096)
    else:
        run(["mksquashfs", os.path.join(tree, "rootfs"), sq, "-noappend", "-quiet", "-no-progress"])
    shutil.rmtree(os.path.join(tree, "rootfs"))
    for p, data in (("boot/kernel", b"kernel\n"), ("boot/initrd", b"initrd\n"), ("EFI/BOOT/BOOTX64.EFI", b"MZ\n")):
        with open(os.path.join(tree, p), "wb") as f:
            f.write(data * 1000)
    iso = os.path.join(work, name + ".iso")
    run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "HARVESTER", "-o", iso, tree])
    os.chmod(iso, 0o644)
    return iso


def sha512(path):
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha512:" + h.hexdigest()
