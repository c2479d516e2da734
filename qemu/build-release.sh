#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds a small Harvester-shaped test release from Debian packages and the current build:
#
#   qemu/build-release.sh [--real-size] OUTDIR [BUILDDIR]
#
# OUTDIR gets (V = $RELEASE_VERSION, default v1.1.2-test):
#   harvester-V-vmlinuz-amd64          Debian's kernel (linux-image-amd64's current package)
#   harvester-V-initrd-amd64           the installer initrd: dracut, systemd initrd, with the module
#                                      harvester-install (made by harvester-pxe-prepare, below)
#   harvester-V-rootfs-amd64.squashfs  the test OS: busybox, /boot/vmlinuz, /boot/initrd, the boot
#                                      contract (/etc/cos/{grub.cfg,bootargs.cfg}, shim.efi,
#                                      grub.efi, MokManager.efi, GRUB modules; GRUB for i386-pc
#                                      with grub-install, for legacy BIOS)
#   harvester-V-amd64.iso              ISO9660 + Rock Ridge + Joliet: rootfs.squashfs, boot/kernel,
#                                      boot/initrd (the test OS's), EFI/BOOT/BOOTX64.EFI,
#                                      harvester-release.yaml
#   harvester-V-amd64.sha512           `sha512sum` list of the four files above
#   served/                            the served folder: `harvester-pxe-prepare ISO served/` (the
#                                      product command, staged) with its default server; the
#                                      vmlinuz, initrd and rootfs above are its files
#   served-hook/                       the same with --initrd-flavour hook (no systemd in the
#                                      initrd: the scenario hook-mode)
# all world-readable (nginx serves them as www-data).
#
# BUILDDIR (or $HARVESTER_BUILD_DIR; default <source>/build) is a configured meson build dir: the
# agent is compiled there and `meson install --destdir` stages the agent, the dracut module and
# harvester-pxe-prepare; the staged command then makes the served folders from the ISO built here,
# its dracut run using the staged agent (HARVESTER_INSTALL_AGENT) and a private dracut base
# directory (dracutbasedir: the host's modules plus the staged one; nothing is written to the host).
#
# Cached: the release is rebuilt only when an input changed (the staged agent binary, the module
# files, harvester-pxe-prepare, this script, qemu/release/, the Debian package versions, the version string); the inputs
# are recorded in OUTDIR/.release-stamp. Downloaded and extracted packages are kept in
# $RELEASE_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/harvester-test-release). FORCE=1 rebuilds.
#
# Needs (Debian): dracut-core dracut-network systemd busybox-static grub-efi-amd64-bin grub-pc-bin
# squashfs-tools xorriso cpio zstd kmod e2fsprogs dosfstools fdisk ca-certificates ipxe
# isc-dhcp-client iputils-arping (network-legacy, the hook flavour), and apt lists
# (apt-get update) to find the kernel package. The kernel is never installed on the host.

set -euo pipefail

die() {
    echo "build-release: error: $*" >&2
    exit 1
}
say() { echo "build-release: $*" >&2; }

REAL_SIZE=
if [[ ${1:-} == --real-size ]]; then
    REAL_SIZE=1
    shift
fi
[[ $# -ge 1 && $# -le 2 ]] || {
    sed -n '4,6p' "$0" >&2
    exit 2
}

SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
SCRIPT="$SRCDIR/qemu/build-release.sh"
RELEASE_FILES="$SRCDIR/qemu/release"
OUTDIR=$1
BUILDDIR=${2:-${HARVESTER_BUILD_DIR:-$SRCDIR/build}}
V=${RELEASE_VERSION:-v1.1.2-test}
CACHE=${RELEASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/harvester-test-release}

[[ $V =~ ^v[0-9A-Za-z.+-]+$ ]] || die "RELEASE_VERSION '$V' is not a version like v1.1.2-test"
[[ -f $BUILDDIR/build.ninja ]] || die "'$BUILDDIR' is not a configured meson build directory (meson setup it first)"
for tool in meson dracut dpkg-deb dpkg-query apt-get apt-cache depmod modprobe mksquashfs xorriso \
    grub-mkimage cpio zstd gzip sha512sum sha256sum lsinitrd; do
    command -v "$tool" > /dev/null || die "'$tool' not found (see the package list at the top of $0)"
done
[[ -d /usr/lib/dracut/modules.d/40network ]] || die "dracut's network module is missing: apt-get install dracut-network"
[[ -d /usr/lib/grub/x86_64-efi ]] || die "/usr/lib/grub/x86_64-efi is missing: apt-get install grub-efi-amd64-bin"
[[ -f /usr/lib/grub/i386-pc/boot.img ]] || die "/usr/lib/grub/i386-pc is missing: apt-get install grub-pc-bin"

mkdir -p "$OUTDIR" "$CACHE/debs"
OUTDIR=$(cd "$OUTDIR" && pwd)
BUILDDIR=$(cd "$BUILDDIR" && pwd)
WORK="$OUTDIR/.work"
# One build at a time per OUTDIR (scenarios may start together).
exec 9> "$OUTDIR/.lock"
flock 9
T0=$(date +%s.%N)

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# --- The real-size release (--real-size) --------------------------------------------------------

# OUTDIR/real-size/: the test release grown to the size of a real v1.1 ISO (issue 13, for
# bench/install-bench.sh): its rootfs.squashfs with REAL_SIZE_ROOTFS_MIB (default 1024) MiB of
# incompressible files added (usr/share/real-size/, 64 MiB each), and image bundles holding
# REAL_SIZE_BUNDLE_MIB (default 4096) MiB: each fake "tarball" of the test release keeps its image
# list (what the fake rke2 imports) and a line "#payload" followed by generated bytes (which the fake
# rke2 copies into its containerd store, as a real import writes the images). The bytes are AES-128-CTR
# keystream of a key derived from the file's name (openssl enc of /dev/zero): incompressible,
# reproducible. Kernel and initrd are the test release's (hard links). Cached: remade only when the
# test release, the sizes or this script changed (real-size/.stamp).
real_size_release() {
    local rmib=${REAL_SIZE_ROOTFS_MIB:-1024} bmib=${REAL_SIZE_BUNDLE_MIB:-4096}
    local out="$OUTDIR/real-size" w="$OUTDIR/.work-real-size" stamp f i n t0
    [[ $rmib =~ ^[0-9]+$ && $bmib =~ ^[0-9]+$ && $rmib -ge 64 && $bmib -ge 64 ]] \
        || die "REAL_SIZE_ROOTFS_MIB and REAL_SIZE_BUNDLE_MIB must be whole numbers of MiB, 64 or more"
    for tool in openssl unsquashfs; do
        command -v "$tool" > /dev/null || die "'$tool' not found (--real-size needs openssl and squashfs-tools)"
    done
    stamp="rootfs $rmib MiB, bundles $bmib MiB; $(sha256sum < "$OUTDIR/harvester-$V-amd64.sha512"); $(sha256sum < "$SCRIPT")"
    if [[ -z ${FORCE:-} && -f $out/.stamp && $(< "$out/.stamp") == "$stamp" && -f $out/harvester-$V-amd64.sha512 ]]; then
        say "real-size release in $out is up to date"
        return 0
    fi
    t0=$(date +%s.%N)
    rm -rf "$out" "$w"
    mkdir -p "$w/out"
    # gen NAME MIB: MIB MiB of the keystream of NAME's key on stdout.
    gen() {
        local key
        key=$(printf 'harvester-real-size:%s' "$1" | sha256sum | cut -c1-32)
        head -c "$(($2 << 20))" /dev/zero | openssl enc -aes-128-ctr -nosalt -K "$key" -iv 00000000000000000000000000000000
    }
    say "real-size: rootfs + $rmib MiB (unsquashfs, generate, mksquashfs)"
    unsquashfs -q -n -d "$w/rootfs" "$OUTDIR/harvester-$V-rootfs-amd64.squashfs" > /dev/null || die "unsquashfs failed"
    mkdir -p "$w/rootfs/usr/share/real-size"
    for ((i = 0; i * 64 < rmib; i++)); do
        n=$((rmib - i * 64 < 64 ? rmib - i * 64 : 64))
        gen "rootfs-$i" "$n" > "$w/rootfs/usr/share/real-size/layer-$i.bin" || die "openssl enc failed"
    done
    # -noD: data blocks stored as they are (xz would store these incompressible blocks uncompressed
    # anyway, after minutes of trying); metadata xz-compressed.
    nice mksquashfs "$w/rootfs" "$w/out/harvester-$V-rootfs-amd64.squashfs" -noappend -all-root -comp xz -noD \
        -no-progress -quiet > /dev/null || die "mksquashfs failed"
    rm -rf "$w/rootfs"
    # The bundles: harvester 11/16, longhorn 3/16, rancherd the rest of bmib.
    say "real-size: image bundles of $bmib MiB"
    xorriso -osirrox on -indev "$OUTDIR/harvester-$V-amd64.iso" -extract /bundle "$w/bundle" > "$w/xorriso.log" 2>&1 \
        || { tail -n 20 "$w/xorriso.log" >&2; die "xorriso cannot extract /bundle"; }
    chmod -R u+w "$w/bundle"
    local -A share=([harvester/images/harvester-images-$V.tar.zst]=$((bmib * 11 / 16))
        [harvester/images/longhorn-images-$V.tar.zst]=$((bmib * 3 / 16))
        [rancherd/images/rancherd-bootstrap-images-$V.tar.zst]=$((bmib - bmib * 11 / 16 - bmib * 3 / 16)))
    for f in "${!share[@]}"; do
        [[ -f $w/bundle/$f ]] || die "the test ISO has no /bundle/$f"
        { echo "#payload"; gen "bundle-$(basename "$f")" "${share[$f]}"; } >> "$w/bundle/$f" || die "openssl enc failed"
    done
    chmod -R a+rX "$w/bundle"
    xorriso -indev "$OUTDIR/harvester-$V-amd64.iso" -outdev "$w/out/harvester-$V-amd64.iso" \
        -map "$w/out/harvester-$V-rootfs-amd64.squashfs" /rootfs.squashfs -map "$w/bundle" /bundle \
        -boot_image any keep > "$w/xorriso.log" 2>&1 || { tail -n 20 "$w/xorriso.log" >&2; die "xorriso failed"; }
    rm -rf "$w/bundle"
    for f in "harvester-$V-vmlinuz-amd64" "harvester-$V-initrd-amd64"; do
        ln "$OUTDIR/$f" "$w/out/$f" 2> /dev/null || cp "$OUTDIR/$f" "$w/out/$f"
    done
    chmod 0644 "$w/out/"*
    (cd "$w/out" && sha512sum "harvester-$V-vmlinuz-amd64" "harvester-$V-initrd-amd64" \
        "harvester-$V-rootfs-amd64.squashfs" "harvester-$V-amd64.iso") > "$w/out/harvester-$V-amd64.sha512"
    chmod 0644 "$w/out/harvester-$V-amd64.sha512"
    echo "$stamp" > "$w/out/.stamp"
    mv "$w/out" "$out"
    rm -rf "$w"
    say "built the real-size release in $out ($(elapsed "$t0") s):"
    for f in "$out"/harvester-*; do
        printf 'build-release:   %-44s %6s\n' "$(basename "$f")" "$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$f")")" >&2
    done
}

# --- Inputs --------------------------------------------------------------------------------------

# The current kernel package of linux-image-amd64 and its candidate version.
# (awk reads all of its input: an early exit would fail the pipeline under pipefail.)
KPKG=$(apt-cache depends linux-image-amd64 2> /dev/null | awk '!k && $1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { k = $2 } END { print k }')
[[ -n $KPKG ]] || die "apt-cache knows no linux-image-amd64: run apt-get update"
KVER=${KPKG#linux-image-}
KPKG_VERSION=$(apt-cache policy "$KPKG" | awk '!c && $1 == "Candidate:" { c = $2 } END { print c }')
[[ -n $KPKG_VERSION && $KPKG_VERSION != "(none)" ]] || die "no candidate version of $KPKG: run apt-get update"
BB_VERSION=$(apt-cache policy busybox-static | awk '!c && $1 == "Candidate:" { c = $2 } END { print c }')
[[ -n $BB_VERSION && $BB_VERSION != "(none)" ]] || die "no candidate version of busybox-static: run apt-get update"
# grub-install itself (Debian's grub2-common; downloaded, not installed on the host) for the
# image's GRUB for legacy BIOS (add_bios_grub below).
G2C_VERSION=$(apt-cache policy grub2-common | awk '!c && $1 == "Candidate:" { c = $2 } END { print c }')
[[ -n $G2C_VERSION && $G2C_VERSION != "(none)" ]] || die "no candidate version of grub2-common: run apt-get update"

# Prints the cached .deb of PKG at VERSION, if there is one.
cached_deb() {
    local f
    for f in "$CACHE/debs/$1"_*.deb; do
        [[ -f $f && $(dpkg-deb -f "$f" Version) == "$2" ]] && { echo "$f"; return 0; }
    done
    return 0
}

# Downloads PKG=VERSION into the cache unless it is there; prints the .deb's path.
fetch_deb() {
    local pkg=$1 ver=$2 deb
    deb=$(cached_deb "$pkg" "$ver")
    if [[ -z $deb ]]; then
        say "downloading $pkg $ver"
        (cd "$CACHE/debs" && apt-get download -q "$pkg=$ver" > /dev/null 2>&1) \
            || die "apt-get download $pkg=$ver failed"
        deb=$(cached_deb "$pkg" "$ver")
        [[ -n $deb ]] || die "apt-get download $pkg=$ver left no .deb in $CACHE/debs"
    fi
    echo "$deb"
}

# Extracts a .deb once into the cache; prints the directory.
extract_deb() {
    local deb=$1 dir
    dir="$CACHE/extract/$(basename "$deb" .deb)"
    if [[ ! -e $dir/.done ]]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        dpkg-deb -x "$deb" "$dir"
        : > "$dir/.done"
    fi
    echo "$dir"
}

KDEB=$(fetch_deb "$KPKG" "$KPKG_VERSION")
BBDEB=$(fetch_deb busybox-static "$BB_VERSION")
KROOT=$(extract_deb "$KDEB")
BBROOT=$(extract_deb "$BBDEB")
G2CROOT=$(extract_deb "$(fetch_deb grub2-common "$G2C_VERSION")")
[[ -x $G2CROOT/usr/sbin/grub-install ]] || die "grub2-common $G2C_VERSION holds no /usr/sbin/grub-install"
KMODDIR="$KROOT/lib/modules/$KVER"
VMLINUZ="$KROOT/boot/vmlinuz-$KVER"
BUSYBOX="$BBROOT/bin/busybox"
[[ -f $VMLINUZ && -d $KMODDIR ]] || die "$KDEB does not hold /boot/vmlinuz-$KVER and /lib/modules/$KVER"
[[ -x $BUSYBOX ]] || die "$BBDEB does not hold /bin/busybox"
# The package ships no modules.dep (its postinst runs depmod): make one inside the cache.
if [[ ! -e $KMODDIR/modules.dep.bin ]]; then
    depmod -b "$KROOT" -F "$KROOT/boot/System.map-$KVER" "$KVER" || die "depmod failed for $KVER"
fi

# Stage the current build: compile the agent, install agent and module into a destdir.
STAGE="$WORK/stage"
rm -rf "$STAGE"
mkdir -p "$STAGE"
say "staging $BUILDDIR (meson install --destdir)"
meson compile -C "$BUILDDIR" harvester-install-agent > "$WORK/meson-compile.log" 2>&1 \
    || { tail -n 30 "$WORK/meson-compile.log" >&2; die "building the agent failed (log: $WORK/meson-compile.log)"; }
meson install -C "$BUILDDIR" --no-rebuild --destdir "$STAGE" > "$WORK/meson-install.log" 2>&1 \
    || { tail -n 30 "$WORK/meson-install.log" >&2; die "meson install failed (log: $WORK/meson-install.log)"; }
AGENT=$(find "$STAGE" -type f -name harvester-install-agent -perm -u+x | head -n 1)
MODDIR=$(find "$STAGE" -type d -name '5[0-9]harvester-install' | head -n 1)
[[ -n $AGENT ]] || die "meson install staged no harvester-install-agent"
[[ -n $MODDIR && -f $MODDIR/module-setup.sh ]] \
    || die "meson install staged no dracut module (dracut.pc missing and -Ddracutmodulesdir unset in $BUILDDIR?)"

pkgver() { dpkg-query -W -f='${Version}' "$1" 2> /dev/null || echo none; }
{
    echo "version $V"
    echo "kernel $KPKG $KPKG_VERSION"
    echo "busybox-static $BB_VERSION"
    echo "grub2-common $G2C_VERSION"
    for p in dracut-core dracut-network systemd udev dbus grub-efi-amd64-bin grub-pc-bin grub-common squashfs-tools xorriso \
        e2fsprogs dosfstools fdisk util-linux mount kmod ca-certificates libc6 libcurl4 libssl3 ipxe \
        isc-dhcp-client iputils-arping; do
        echo "$p $(pkgver "$p")"
    done
    (cd "$STAGE" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    sha256sum "$SCRIPT"
    (cd "$SRCDIR" && find qemu/release -type f -print0 | sort -z | xargs -0 sha256sum)
} > "$WORK/stamp.new"

NAMES=("harvester-$V-vmlinuz-amd64" "harvester-$V-initrd-amd64" "harvester-$V-rootfs-amd64.squashfs" "harvester-$V-amd64.iso")
up_to_date=1
for f in "${NAMES[@]}" "harvester-$V-amd64.sha512" served/ipxe-create-efi served-hook/ipxe-create-efi; do
    [[ -f $OUTDIR/$f ]] || up_to_date=
done
if [[ -z ${FORCE:-} && -n $up_to_date && -f $OUTDIR/.release-stamp ]] && cmp -s "$WORK/stamp.new" "$OUTDIR/.release-stamp"; then
    say "release $V in $OUTDIR is up to date ($(elapsed "$T0") s)"
    rm -rf "$WORK"
    [[ -z $REAL_SIZE ]] || real_size_release
    exit 0
fi
rm -f "$OUTDIR/.release-stamp"

# --- The installer initrd (dracut) ---------------------------------------------------------------

# A private dracut base directory: the host's dracut with the staged module added.
BASE="$WORK/dracut"
mkdir -p "$BASE/modules.d" "$WORK/empty" "$WORK/tmp"
for e in /usr/lib/dracut/*; do
    [[ $(basename "$e") == modules.d ]] || ln -s "$e" "$BASE/"
done
for m in /usr/lib/dracut/modules.d/*; do
    [[ $(basename "$m") == *harvester-install ]] || ln -s "$m" "$BASE/modules.d/"
done
ln -s "$MODDIR" "$BASE/modules.d/"
# The test release's own module (qemu/release/dracut/99pxe-lab-lvm): pxe-lab.lvm.vg= activates a
# volume group before the agent starts (the scenario lvm-holder). Not part of the product.
ln -s "$SRCDIR/qemu/release/dracut/99pxe-lab-lvm" "$BASE/modules.d/"

mkdir -p "$WORK/out"

# Checks an installer initrd made by harvester-pxe-prepare: FILE FLAVOUR (systemd or hook).
check_initrd() {
    local initrd=$1 flavour=$2 p missing=
    lsinitrd "$initrd" > "$WORK/lsinitrd-$flavour.txt" 2> /dev/null || die "lsinitrd cannot read $initrd"
    # What the install needs must be in it.
    local need=(usr/sbin/harvester-install-agent etc/ssl/certs/ca-certificates.crt
        usr/lib/dracut/hooks/cmdline/10-parse-harvester-install.sh
        usr/sbin/mkfs.ext4 usr/sbin/mkfs.vfat usr/sbin/sfdisk usr/bin/partx usr/sbin/wipefs
        usr/lib/pxe-lab/lvm-activate.sh usr/sbin/lvm /dm-mod.ko
        /loop.ko /squashfs.ko /isofs.ko /ext4.ko /vfat.ko /efivarfs.ko libefiboot.so libefivar.so /ahci.ko
        /virtio_net.ko /virtio_blk.ko /e1000e.ko)
    if [[ $flavour == systemd ]]; then
        need+=(usr/lib/systemd/system/harvester-install-agent.service
            etc/systemd/system/initrd.target.wants/harvester-install-agent.service
            usr/lib/systemd/systemd-networkd-wait-online usr/lib/systemd/system/pxe-lab-lvm.service)
    else
        need+=(usr/lib/dracut/hooks/cmdline/11-harvester-install-hookmode.sh
            usr/lib/dracut/hooks/initqueue/online/90-harvester-install-online.sh
            usr/lib/dracut/hooks/emergency/50-harvester-install-emergency.sh
            sbin/ifup sbin/dhclient-script usr/sbin/dhclient)
    fi
    for p in "${need[@]}"; do
        grep -q -- "$p" "$WORK/lsinitrd-$flavour.txt" || missing="$missing $p"
    done
    [[ -z $missing ]] || die "the $flavour initrd lacks:$missing (listing: $WORK/lsinitrd-$flavour.txt)"
    # The hook flavour has no systemd at all.
    if [[ $flavour == hook ]] && grep -qE ' usr/lib/systemd/systemd$| usr/lib/systemd/system/harvester-install-agent.service$' "$WORK/lsinitrd-$flavour.txt"; then
        die "the hook initrd holds systemd (listing: $WORK/lsinitrd-$flavour.txt)"
    fi
    # The agent must start from the initrd's own libraries.
    rm -rf "$WORK/unpacked"
    mkdir -p "$WORK/unpacked"
    (cd "$WORK/unpacked" && lsinitrd --unpack "$initrd" > /dev/null 2>&1) || die "cannot unpack $initrd"
    chroot "$WORK/unpacked" /usr/sbin/harvester-install-agent --version > "$WORK/agent-version.txt" 2>&1 \
        || { cat "$WORK/agent-version.txt" >&2; die "the agent does not run inside the $flavour initrd (missing library?)"; }
    rm -rf "$WORK/unpacked"
}

# --- The test OS (rootfs.squashfs) ---------------------------------------------------------------

# The image's GRUB for legacy BIOS, where a Debian system keeps it, as SLE Micro's image carries
# grub2-i386-pc: grub-install (grub2-common), grub-mkimage and grub-probe (grub-common), the i386-pc
# modules, boot.img and grub-bios-setup (grub-pc-bin), and the shared libraries they load. The agent
# runs the image's grub-install in a chroot of the image on a BIOS machine (install.h).
add_bios_grub() {
    local rf=$1 bin lib
    install -D -m 0755 "$G2CROOT/usr/sbin/grub-install" "$rf/usr/sbin/grub-install"
    install -D -m 0755 /usr/bin/grub-mkimage "$rf/usr/bin/grub-mkimage"
    install -D -m 0755 /usr/sbin/grub-probe "$rf/usr/sbin/grub-probe"
    mkdir -p "$rf/usr/lib/grub"
    cp -a /usr/lib/grub/i386-pc "$rf/usr/lib/grub/"
    # The libraries, at the paths the dynamic loader searches (Debian's multiarch directory).
    for bin in "$rf/usr/sbin/grub-install" "$rf/usr/bin/grub-mkimage" "$rf/usr/sbin/grub-probe" \
        "$rf/usr/lib/grub/i386-pc/grub-bios-setup"; do
        ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
    done | sort -u | while read -r lib; do
        install -D -m 0755 "$(readlink -f "$lib")" "$rf$lib"
    done
    [[ -x $rf/lib64/ld-linux-x86-64.so.2 ]] || die "add_bios_grub: the dynamic loader was not copied"
    # It must run in a chroot of the image (as the agent runs it), not only on the host.
    chroot "$rf" /usr/sbin/grub-install --version > /dev/null 2>&1 \
        || die "the image's grub-install does not run in a chroot of the image (missing library?)"
}

# Its initrd: busybox, the disk and ext4 drivers, /init from qemu/release/test-os-init.
TI="$WORK/test-os-initrd"
mkdir -p "$TI"/{bin,sbin,dev,proc,sys,run,tmp,etc/test-os,lib/modules/"$KVER"}
cp "$BUSYBOX" "$TI/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [[ $applet == busybox || -e $TI/bin/$applet ]] || ln -s busybox "$TI/bin/$applet"
done
install -m 0755 "$RELEASE_FILES/test-os-init" "$TI/init"
TEST_OS_MODULES="ahci sd_mod virtio_pci virtio_blk virtio_scsi nvme crc32c_generic ext4"
echo "$TEST_OS_MODULES" > "$TI/etc/test-os/modules"
for m in $TEST_OS_MODULES; do
    modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2> /dev/null | awk '$1 == "insmod" { print $2 }'
done | sort -u | while read -r ko; do
    rel=${ko#"$KMODDIR"/}
    mkdir -p "$TI/lib/modules/$KVER/$(dirname "$rel")"
    cp "$ko" "$TI/lib/modules/$KVER/$rel"
done
cp "$KMODDIR"/modules.{order,builtin,builtin.modinfo} "$TI/lib/modules/$KVER/"
depmod -b "$TI" "$KVER" || die "depmod failed for the test OS initrd"
(cd "$TI" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
    | gzip -9 -n > "$WORK/test-os-initrd.img"

# Its root: busybox, the kernel and that initrd in /boot, the release files.
RF="$WORK/rootfs"
mkdir -p "$RF"/{bin,sbin,boot,dev,proc,sys,run,tmp,etc,oem,usr/local}
cp -a "$TI/bin/." "$RF/bin/"
install -m 0644 "$VMLINUZ" "$RF/boot/vmlinuz"
install -m 0644 "$WORK/test-os-initrd.img" "$RF/boot/initrd"
cat > "$RF/etc/os-release" << EOF
NAME="Harvester test OS"
VERSION="$V"
ID=harvester-test
PRETTY_NAME="Harvester $V (test OS: busybox, Debian kernel $KVER)"
GRUB_ENTRY_NAME="Harvester $V"
EOF
cat > "$RF/etc/harvester-release.yaml" << EOF
harvester: $V
harvesterChart: ${V#v}
os: Harvester $V
kubernetes: v1.24.11+rke2r1
rancher: v2.6.11
monitoringChart: 100.1.0+up19.0.3
loggingChart: 100.1.3+up3.17.7
EOF
echo "harvester-test" > "$RF/etc/hostname"
# The boot contract of a v1.1 image (HARVESTER-V1.1.md section 8), where SLE Micro keeps it: the
# install copies /etc/cos/grub.cfg to COS_STATE and sets the console in active.img's bootargs.cfg;
# the test OS boots only through them (its kernel line comes from bootargs.cfg).
mkdir -p "$RF/etc/cos" "$RF/usr/share/efi/x86_64" "$RF/usr/share/grub2/x86_64-efi"
install -m 0644 "$RELEASE_FILES/cos/grub.cfg" "$RELEASE_FILES/cos/bootargs.cfg" "$RF/etc/cos/"
# The EFI files elemental takes from the image: shim.efi, grub.efi, MokManager.efi, and the three
# GRUB modules it copies to COS_STATE/grub2/x86_64-efi/. Debian's signed shim loads grubx64.efi,
# not SUSE's grub.efi, so the test's shim.efi is a stand-in doing shim's part with Secure Boot off:
# a GRUB image that chain-loads grub.efi from its own directory. grub.efi has no loopback, squash4
# or xzio built in (lzopio and gzio are, for squash4): it boots the installed disk only with the
# modules the install put on COS_STATE.
GRUB_DIR=/usr/lib/grub/x86_64-efi
echo 'chainloader ${cmdpath}/grub.efi
boot' > "$WORK/shim-standin.cfg"
grub-mkimage -O x86_64-efi -p "" -c "$WORK/shim-standin.cfg" -o "$RF/usr/share/efi/x86_64/shim.efi" \
    chain boot fat part_gpt echo || die "grub-mkimage (shim stand-in) failed"
echo 'echo "MokManager stand-in of the test release: nothing to manage."
sleep 5
reboot' > "$WORK/mok-standin.cfg"
grub-mkimage -O x86_64-efi -p "" -c "$WORK/mok-standin.cfg" -o "$RF/usr/share/efi/x86_64/MokManager.efi" \
    echo sleep reboot || die "grub-mkimage (MokManager stand-in) failed"
IMAGE_GRUB_MODULES="part_gpt fat ext2 normal configfile search search_label search_fs_file search_fs_uuid
    echo test true linux loadenv gzio lzopio all_video gfxterm efi_gop serial terminal terminfo sleep
    reboot halt minicmd cat ls regexp"
# shellcheck disable=SC2086
grub-mkimage -O x86_64-efi -p "" -o "$RF/usr/share/efi/x86_64/grub.efi" $IMAGE_GRUB_MODULES \
    || die "grub-mkimage (grub.efi) failed"
for m in loopback squash4 xzio; do
    install -m 0644 "$GRUB_DIR/$m.mod" "$RF/usr/share/grub2/x86_64-efi/$m.mod"
done
add_bios_grub "$RF"
# The image preload's contract (qemu/release/preload/): where v1.1.2's image has wharfie and
# ctr-check-images.sh, fakes that record how the agent runs them; the rke2 "installer image" they
# hand out holds a fake rke2 and ctr.
install -D -m 0755 "$RELEASE_FILES/preload/wharfie" "$RF/usr/bin/wharfie"
install -D -m 0755 "$RELEASE_FILES/preload/ctr-check-images.sh" "$RF/usr/sbin/ctr-check-images.sh"
mkdir -p "$RF/usr/share/preload-test" "$RF/var/lib/rancher"
tar -czf "$RF/usr/share/preload-test/rke2.linux-amd64.tar.gz" --owner=0 --group=0 \
    -C "$RELEASE_FILES/preload/rke2" bin || die "cannot pack the fake rke2"
SQUASH="$WORK/out/${NAMES[2]}"
mksquashfs "$RF" "$SQUASH" -noappend -all-root -comp xz -no-progress -quiet > /dev/null \
    || die "mksquashfs failed"

# --- The ISO -------------------------------------------------------------------------------------

ISOT="$WORK/iso"
mkdir -p "$ISOT/boot" "$ISOT/EFI/BOOT"
cp "$SQUASH" "$ISOT/rootfs.squashfs"
cp "$VMLINUZ" "$ISOT/boot/kernel"
# The live initrd of a real ISO is its OS's; the installer initrd is made from the ISO below.
cp "$WORK/test-os-initrd.img" "$ISOT/boot/initrd"
cp "$RF/etc/harvester-release.yaml" "$ISOT/harvester-release.yaml"
# The image bundles where v1.1.2's ISO has them; each fake "tarball" is the list of the image
# names the fake rke2 "imports", images-lists/ what ctr-check-images.sh waits for.
B="$ISOT/bundle"
mkdir -p "$B/harvester/images" "$B/harvester/images-lists" "$B/rancherd/images"
printf '%s\n' "docker.io/rancher/harvester:$V" "docker.io/rancher/harvester-webhook:$V" \
    > "$B/harvester/images/harvester-images-$V.tar.zst"
printf '%s\n' "docker.io/longhornio/longhorn-manager:v1.3.2" > "$B/harvester/images/longhorn-images-$V.tar.zst"
cp "$B/harvester/images/harvester-images-$V.tar.zst" "$B/harvester/images-lists/harvester-images-$V.txt"
cp "$B/harvester/images/longhorn-images-$V.tar.zst" "$B/harvester/images-lists/longhorn-images-$V.txt"
printf '%s\n' "docker.io/rancher/rancherd:v0.0.1-test" "docker.io/rancher/system-agent-installer-rke2:v1.24.11-rke2r1" \
    > "$B/rancherd/images/rancherd-bootstrap-images-$V.txt"
echo "rancherd bootstrap images (fake)" > "$B/rancherd/images/rancherd-bootstrap-images-$V.tar.zst"
# The UEFI loader, every module built in, prefix /EFI/BOOT: on the installed disk it reads
# /EFI/BOOT/grub.cfg from the ESP it was loaded from (the install writes that grub.cfg).
GRUB_MODULES="part_gpt part_msdos fat ext2 iso9660 squash4 loopback linux normal configfile
    search search_label search_fs_file search_fs_uuid echo test true serial terminal terminfo
    efi_gop efi_uga all_video video gzio xzio cat ls sleep reboot halt loadenv regexp minicmd
    probe chain"
# shellcheck disable=SC2086
grub-mkimage -O x86_64-efi -p /EFI/BOOT -o "$ISOT/EFI/BOOT/BOOTX64.EFI" $GRUB_MODULES \
    || die "grub-mkimage failed"
chmod -R a+rX "$ISOT"
ISO="$WORK/out/${NAMES[3]}"
xorriso -as mkisofs -R -J -V COS_LIVE -o "$ISO" "$ISOT" > "$WORK/xorriso.log" 2>&1 \
    || { tail -n 20 "$WORK/xorriso.log" >&2; die "xorriso failed"; }

# --- The served folders (harvester-pxe-prepare, as operators run it) ---------------------------

# The staged command, the staged agent and module (HARVESTER_INSTALL_AGENT, the private dracut
# base), the kernel package's modules; the dracut arguments keep the build quick and private (no
# host configuration, no microcode) and add the lab's own module. served/ is the systemd flavour
# every scenario uses, served-hook/ the hook flavour of the scenario hook-mode.
PREPARE=$(find "$STAGE" -type f -name harvester-pxe-prepare -perm -u+x | head -n 1)
[[ -n $PREPARE ]] || die "meson install staged no harvester-pxe-prepare"
PREPARE_TIME=
for flavour in systemd hook; do
    served="$WORK/out/served"
    [[ $flavour == hook ]] && served="$WORK/out/served-hook"
    say "harvester-pxe-prepare ($flavour initrd, dracut for $KVER)"
    T1=$(date +%s.%N)
    HARVESTER_INSTALL_AGENT="$AGENT" dracutbasedir="$BASE" nice "$PREPARE" "$ISO" "$served" \
        --kernel-version "$KVER" --kmoddir "$KMODDIR" --initrd-flavour "$flavour" \
        --dracut-arg --conf --dracut-arg /dev/null --dracut-arg --confdir --dracut-arg "$WORK/empty" \
        --dracut-arg --no-early-microcode --dracut-arg --zstd --dracut-arg --add --dracut-arg pxe-lab-lvm \
        > "$WORK/prepare-$flavour.log" 2>&1 \
        || { tail -n 30 "$WORK/prepare-$flavour.log" >&2; die "harvester-pxe-prepare failed (log: $WORK/prepare-$flavour.log)"; }
    PREPARE_TIME="$PREPARE_TIME $flavour $(elapsed "$T1") s"
    check_initrd "$served/${NAMES[1]}" "$flavour"
    cmp -s "$served/${NAMES[0]}" "$VMLINUZ" || die "harvester-pxe-prepare served another kernel than the ISO's"
done
# The release files are the served folder's.
for i in 0 1 2; do
    ln -f "$WORK/out/served/${NAMES[$i]}" "$WORK/out/${NAMES[$i]}"
done

# --- Publish -------------------------------------------------------------------------------------

for f in "${NAMES[@]}"; do chmod 0644 "$WORK/out/$f"; done
(cd "$WORK/out" && sha512sum "${NAMES[@]}") > "$WORK/out/harvester-$V-amd64.sha512"
chmod 0644 "$WORK/out/harvester-$V-amd64.sha512"
for f in "${NAMES[@]}" "harvester-$V-amd64.sha512"; do
    mv -f "$WORK/out/$f" "$OUTDIR/$f"
done
rm -rf "$OUTDIR/served" "$OUTDIR/served-hook" "$OUTDIR/.initrd-stamp"
mv "$WORK/out/served" "$WORK/out/served-hook" "$OUTDIR/"
mv "$WORK/stamp.new" "$OUTDIR/.release-stamp"
rm -rf "$WORK"

say "built release $V in $OUTDIR (kernel $KPKG $KPKG_VERSION):"
for f in "${NAMES[@]}" "harvester-$V-amd64.sha512"; do
    printf 'build-release:   %-44s %6s\n' "$f" "$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$OUTDIR/$f")")" >&2
done
say "harvester-pxe-prepare:${PREPARE_TIME}; whole release $(elapsed "$T0") s"
[[ -z $REAL_SIZE ]] || real_size_release
