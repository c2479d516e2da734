/* SPDX-License-Identifier: Apache-2.0 */
/* Turning a verified ISO and a partitioned disk into an installed, bootable node. */
#pragma once

#include "cloudconfig.h"
#include "config.h"
#include "disk.h"
#include "download.h"

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct os_image;

/* Writes the OS from the mounted image (iso.h, os_image_open) onto the partitioned disk, in an
 * order with one commit point (issue 14): OS images and COS_STATE's boot files, COS_PERSISTENT,
 * COS_OEM (the node's configuration), all synced; only then the boot loader: on UEFI the loader
 * on COS_GRUB, its EFI/BOOT/BOOTX64.EFI renamed into place last, then the NVRAM boot entry; on
 * legacy BIOS the image's GRUB for i386-pc (install_write_bios_loader), whose boot code in the
 * first sector is written last. A power cut before the commit leaves a disk the firmware does not
 * boot. Messages printed here. 0 or -errno. */
int install_system(const struct config *c, const struct disk_plan *p, const struct os_image *img);
/* Copies the install log (already redacted) to COS_OEM/install/console.log (0600). */
int install_save_log(const struct disk_plan *p, const char *log_path);

/*
 * The steps of install_system, each over directories, so that they can be tested without real
 * partitions. Each prints its own error message.
 */

/* Where install_system mounts things. */
#define INSTALL_RUN_DIR "/run/harvester-install"
#define INSTALL_MNT_DIR INSTALL_RUN_DIR "/mnt"
/* The size of active.img, passive.img and recovery.img (v1.1: 3072 MiB). */
#define INSTALL_IMAGE_MIB UINT64_C(3072)

/* Mounts source on target (created 0700 when missing) with libmount; options such as "ro" or
 * "loop,ro" (libmount sets up the loop device, freed again on unmount). 0 or -errno. */
int install_mount(const char *source, const char *target, const char *fstype, const char *options);
/* Unmounts target (and frees its loop device). 0 or -errno. */
int install_umount(const char *target);

/* Copies src to dst (created with mode, or truncated) inside the kernel: copy_file_range, else
 * sendfile between file systems; only the data extents of a sparse src (SEEK_DATA/SEEK_HOLE), dst
 * keeps the holes. fsyncs dst. 0 or -errno (message printed). */
int install_copy_file(const char *src, const char *dst, mode_t mode);

/* Makes state_dir/cOS/active.img: an ext2 file system of image_mib MiB labelled COS_ACTIVE holding
 * the tree src_dir (mke2fs -d, no copy through this process), then state_dir/cOS/passive.img
 * (a copy, relabelled COS_PASSIVE) and recovery_dir/cOS/recovery.img (a copy, relabelled
 * COS_SYSTEM). 0 or -errno. */
int install_make_images(const char *src_dir, const char *state_dir, const char *recovery_dir, uint64_t image_mib);

/* What the install reads from the OS image (paths inside rootfs.squashfs), as elemental b918db38
 * and harv-install v1.1.2 take them from a SUSE-based image. os_image_check() checks each one. */
#define IMAGE_GRUB_CFG "etc/cos/grub.cfg"
#define IMAGE_BOOTARGS_CFG "etc/cos/bootargs.cfg"
#define IMAGE_EFI_DIR "usr/share/efi/x86_64"
#define IMAGE_GRUB_MODULE_DIR "usr/share/grub2/x86_64-efi"
/* In IMAGE_EFI_DIR: shim (the loader the firmware starts), grub.efi (what shim loads from its own
 * directory), MokManager.efi. NULL-terminated. */
extern const char *const install_efi_files[];
/* In IMAGE_GRUB_MODULE_DIR, copied to COS_STATE/grub2/x86_64-efi/ (the image's grub.cfg insmods
 * them): loopback.mod, squash4.mod, xzio.mod. NULL-terminated. */
extern const char *const install_grub_modules[];
/* The line of bootargs.cfg whose console harv-install changes. */
#define IMAGE_CONSOLE_PARAMS "console_params=\"console=tty1\""

/* The console the installed system gets besides tty1: install.tty, else the console the
 * installer's kernel wrote to (the last console=), without "/dev/"; NULL for none, tty1 or console.
 * -EINVAL (message printed) for a name that is not a console name such as ttyS0,115200n8. */
int install_console(const struct config *c, const char **ret);
/* The image's grub.cfg with the edits a v1.1.2 install makes: elemental's console (each
 * "console=tty1" gets " console=<tty>" when tty is not NULL), then harv-install's `search`
 * patches (--no-floppy; "search ... root" -> "search --set=root ..."). 0 or -ENOMEM. */
int install_patch_grub_cfg(const char *image_cfg, const char *tty, char **ret);
/* bootargs.cfg with console_params="console=<tty> console=tty1" (harv-install's sed; tty NULL:
 * unchanged). 0, -ENOMEM, or -ENOENT when the text has no console_params="console=tty1". */
int install_patch_bootargs(const char *bootargs, const char *tty, char **ret);
/* COS_STATE's boot files from the image in rootfs_dir: grub2/grub.cfg (patched as above),
 * grub2/x86_64-efi/{loopback,squash4,xzio}.mod, grub_oem_env (default_menu_entry=entry_name, NULL:
 * "Harvester") and grubmenu (the `debug` entry with ${crash_kernel_params}). 0 or -errno. */
int install_write_state_boot(const char *rootfs_dir, const char *state_dir, const char *tty,
                             const char *entry_name);
/* elemental's state.yaml (b918db38's InstallState as yaml.v3 writes it) with the install time
 * `when` and the images' source ("dir://<tree>"). 0 or -ENOMEM. */
int install_render_state_yaml(const char *source_dir, time_t when, char **ret);
/* Writes it to state_dir/state.yaml and recovery_dir/state.yaml. 0 or -errno. */
int install_write_state_yaml(const char *source_dir, const char *state_dir, const char *recovery_dir);
/* The GRUB environment block COS_OEM/grubenv gets (below), in memory: also the configuration
 * stage's dry run. 0 or -EINVAL (kernel arguments GRUB would interpret, or too long). */
int install_render_grubenv(const struct config *c, char ret[static GRUB_ENV_BLOCK_SIZE]);
/* COS_OEM/grubenv with os.additional_kernel_arguments as extra_cmdline (the grubenv variable the
 * image's grub.cfg appends to every entry's kernel line); an empty block without them. 0 or -errno. */
int install_write_grubenv(const struct config *c, const char *oem_dir);
/* The commit point: the image's shim, grub.efi and MokManager.efi into efi_dir/EFI/elemental/
 * (the boot entry's target) and efi_dir/EFI/BOOT/, a grub.cfg in both that finds COS_STATE and
 * loads its grub2/grub.cfg; each file written under a temporary name, fsynced and renamed, the
 * directory fsynced; EFI/elemental/shim.efi and then EFI/BOOT/BOOTX64.EFI (the removable-media
 * path the firmware boots without an entry) last. 0 or -errno. */
int install_write_loader(const char *rootfs_dir, const char *efi_dir);

/* GRUB for i386-pc in the image (paths inside rootfs.squashfs), as v1.1 runs it on a legacy BIOS
 * machine: `grub2-install --target=i386-pc --boot-directory=<COS_STATE> <disk>`. SLE Micro names
 * its GRUB grub2 (grub2-install, /usr/share/grub2/i386-pc, the directory grub2/ on COS_STATE);
 * Debian (the test release, package grub-pc-bin) names it grub (grub-install, /usr/lib/grub/i386-pc,
 * the directory grub/). The first whose tool and module files are all in the image is used. */
struct install_bios_grub {
        const char *tool;       /* "usr/sbin/grub2-install" */
        const char *module_dir; /* "usr/share/grub2/i386-pc" */
        const char *dir_name;   /* "grub2": what the tool makes in --boot-directory */
};
/* The known GRUBs, terminated by { NULL }. */
extern const struct install_bios_grub install_bios_grubs[];
/* In module_dir: what the tool needs to make the core image of an ext4 COS_STATE on GPT or msdos,
 * and the modules the image's grub.cfg insmods. NULL-terminated. */
extern const char *const install_bios_grub_files[];
/* The image's GRUB for i386-pc under rootfs_dir, or NULL when it has none complete. When NULL and
 * ret_missing is not NULL: *ret_missing (malloc'ed) lists what is missing, ", "-separated. */
const struct install_bios_grub *install_bios_grub_find(const char *rootfs_dir, char **ret_missing);
/* For an image GRUB whose directory is not grub2 (Debian's grub/): the grub.cfg its core image
 * reads, which loads COS_STATE's grub2/grub.cfg (the image's menu, the same as on UEFI). */
extern const char install_bios_stub_cfg[];
/* The commit point on legacy BIOS: the image's GRUB installed to `disk` with COS_STATE (mounted at
 * state_dir) as its boot directory, run in a chroot of the read-only image rootfs_dir with /dev,
 * /proc, /sys, a tmpfs on /tmp and COS_STATE bound in (the tool comes from the image, as its i386-pc
 * modules). Before it, a stub grub.cfg where needed (install_bios_stub_cfg); the tool writes the
 * modules and the core image, then the boot code into the disk's first sector, last. Afterwards
 * the core image and the boot code are checked. 0 or -errno (message printed). */
int install_write_bios_loader(const char *rootfs_dir, const char *state_dir, const char *disk);

/* The ISO's image bundles, as v1.1.2 preloads them (root: an empty directory where the new system
 * is assembled for the import): bundle/rancherd/images/ copied to
 * COS_PERSISTENT's agent/images/ (rancherd imports it at the first boot); bundle/harvester/images/,
 * when present, imported into containerd by a temporary rke2 in a chroot of the new system
 * (state_dir/cOS/active.img with persistent_dir on /usr/local; preload.c) and not kept: afterwards
 * COS_PERSISTENT's rke2/agent/images/ must be empty. 0 or -errno (logged). */
int install_preload_images(const char *iso_dir, const char *state_dir, const char *persistent_dir,
                           const char *root);

/* Copies log_path, redacted once more, to oem_dir/install/console.log (0600). 0 or -errno. */
int install_copy_log(const char *log_path, const char *oem_dir);
