/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OS onto the partitioned disk (REFERENCE.md section 3, HARVESTER-V1.1.md section 8), in the
 * order of install_system(), the disk bootable only by the last write to COS_GRUB:
 *
 *   COS_STATE/cOS/active.img      ext2, COS_ACTIVE, the image's tree (mke2fs -d); its
 *                                 etc/cos/bootargs.cfg gets the console (harv-install)
 *   COS_STATE/cOS/passive.img     a copy, relabelled COS_PASSIVE
 *   COS_RECOVERY/cOS/recovery.img a copy, relabelled COS_SYSTEM
 *   COS_STATE/grub2/grub.cfg      the image's etc/cos/grub.cfg, patched as a v1.1.2 install does
 *   COS_STATE/grub2/x86_64-efi/   the image's loopback, squash4 and xzio modules
 *   COS_STATE/grub_oem_env        the menu entries' name; COS_STATE/grubmenu: the debug entry
 *   COS_{STATE,RECOVERY}/state.yaml  elemental's install state
 *   COS_PERSISTENT/...            the image bundles (install_preload_images)
 *   COS_OEM/...                   the node's configuration (cloudconfig.c), grubenv
 *   COS_GRUB/EFI/{elemental,BOOT}/ the image's shim, grub.efi, MokManager.efi and a grub.cfg that
 *                                 finds COS_STATE; EFI/BOOT/BOOTX64.EFI last (the commit point)
 *   NVRAM                         Boot#### "elemental-shim", first in BootOrder (bootentry.c)
 *
 * install_system() only mounts and wires the steps together; each step works on directories.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libmount.h>
#include <linux/openat2.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "bootentry.h"
#include "cloudconfig.h"
#include "format.h"
#include "install.h"
#include "iso.h"
#include "preload.h"
#include "report.h"
#include "log.h"
#include "validate.h"


static inline void mnt_free_contextp(struct libmnt_context **c) {
        mnt_free_context(*c);
}
static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}
#define _cleanup_mnt_context_ _cleanup_(mnt_free_contextp)
#define _cleanup_closedir_ _cleanup_(closedirp)

static double seconds_since(uint64_t start) {
        return (double)(now_usec() - start) / 1e6;
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        if (mkdir(p, mode) < 0 && errno != EEXIST)
                                return -errno;
                        *s = '/';
                }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static char *path_join(const char *a, const char *b) {
        return strdup_printf("%s/%s", a, b);
}

/* Writes a file without the temp-file-and-rename dance and without chmod, which vfat refuses.
 * fsynced. 0 or -errno. */
static int write_file_plain(const char *path, const void *data, size_t len, mode_t mode) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        for (size_t off = 0; off < len;) {
                ssize_t k = write(fd, (const char *)data + off, len - off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += (size_t)k;
        }
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Running e2fsprogs */

/* Runs argv with run_command() (format.h: the agent's one way to run a program), its output into
 * the debug log. On failure the line naming the error goes to errbuf. 0, -ENOENT (no such
 * program), -EIO (it failed) or -errno. */
static int run_tool(char *const argv[], char *errbuf, size_t errlen) {
        _cleanup_free_ char *out = NULL;
        errbuf[0] = 0;
        int r = run_command(argv, &out);
        if (r < 0) {
                snprintf(errbuf, errlen, "cannot run %s: %s", argv[0], strerror(-r));
                return r;
        }
        _cleanup_free_ char *copy = strdup(strempty(out));
        char *save = NULL;
        for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                log_debug("%s: %s", argv[0], line);
        if (r == 0)
                return 0;
        const char *why = command_error_line(copy);
        if (why)
                snprintf(errbuf, errlen, "%s", why);
        else if (r > 128)
                snprintf(errbuf, errlen, "%s was killed by signal %d", argv[0], r - 128);
        else
                snprintf(errbuf, errlen, "%s exited with status %d", argv[0], r);
        return -EIO;
}

/* ---------------------------------------------------------------------------------------------- */
/* Mounting */

int install_mount(const char *source, const char *target, const char *fstype, const char *options) {
        int r = mkdir_p(target, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot make the mount point '%s': %s", target, strerror(-r));

        _cleanup_mnt_context_ struct libmnt_context *cxt = mnt_new_context();
        if (!cxt)
                return log_oom();
        if (mnt_context_set_source(cxt, source) < 0 || mnt_context_set_target(cxt, target) < 0 ||
            (fstype && mnt_context_set_fstype(cxt, fstype) < 0) ||
            (options && mnt_context_set_options(cxt, options) < 0))
                return log_oom();
        /* The mount(2) call only: no /sbin/mount.<type> helpers. */
        mnt_context_disable_helpers(cxt, 1);

        int rc = mnt_context_mount(cxt);
        if (rc == 0 && mnt_context_get_status(cxt) == 1) {
                log_debug("Mounted '%s' on '%s' (%s, %s).", source, target, strempty(fstype), strempty(options));
                return 0;
        }
        int err = EIO;
        if (mnt_context_syscall_called(cxt) && mnt_context_get_syscall_errno(cxt) > 0)
                err = mnt_context_get_syscall_errno(cxt);
        else if (rc < 0)
                err = -rc;
        char buf[512] = "";
        mnt_context_get_excode(cxt, rc, buf, sizeof buf);
        return log_error_errno(err, "Cannot mount '%s' (%s) on '%s': %s", source, strempty(fstype), target,
                               buf[0] ? buf : strerror(err));
}

int install_umount(const char *target) {
        _cleanup_mnt_context_ struct libmnt_context *cxt = mnt_new_context();
        if (!cxt)
                return log_oom();
        if (mnt_context_set_target(cxt, target) < 0)
                return log_oom();
        mnt_context_disable_helpers(cxt, 1);
        int rc = mnt_context_umount(cxt);
        if (rc == 0 && mnt_context_get_status(cxt) == 1)
                return 0;
        int err = EIO;
        if (mnt_context_syscall_called(cxt) && mnt_context_get_syscall_errno(cxt) > 0)
                err = mnt_context_get_syscall_errno(cxt);
        else if (rc < 0)
                err = -rc;
        char buf[512] = "";
        mnt_context_get_excode(cxt, rc, buf, sizeof buf);
        return log_error_errno(err, "Cannot unmount '%s': %s", target, buf[0] ? buf : strerror(err));
}

/* What install_system mounted, unmounted in reverse order. */
struct mounts {
        char *targets[8];
        size_t n;
};

static int mounts_add(struct mounts *m, const char *source, const char *target, const char *fstype,
                      const char *options) {
        if (m->n >= ELEMENTSOF(m->targets))
                return log_error_errno(E2BIG, "Too many mounts.");
        char *t = strdup(target);
        if (!t)
                return log_oom();
        int r = install_mount(source, target, fstype, options);
        if (r < 0) {
                free(t);
                return r;
        }
        m->targets[m->n++] = t;
        return 0;
}

/* Unmounts everything, newest first; returns the first error. */
static int mounts_release(struct mounts *m) {
        int ret = 0;
        sync();
        while (m->n > 0) {
                char *t = m->targets[--m->n];
                int r = install_umount(t);
                if (r < 0 && ret == 0)
                        ret = r;
                free(t);
        }
        return ret;
}

/* ---------------------------------------------------------------------------------------------- */
/* Copying inside the kernel */

/* Copies [off, off+len) from in to out at the same offset. */
static int copy_range(int in, int out, off_t off, off_t len, bool *use_sendfile) {
        while (len > 0) {
                size_t chunk = len > (off_t)(1 << 30) ? (size_t)1 << 30 : (size_t)len;
                ssize_t k;
                if (!*use_sendfile) {
                        loff_t ioff = off, ooff = off;
                        k = copy_file_range(in, &ioff, out, &ooff, chunk, 0);
                        if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                                      errno == EBADF)) {
                                /* Another file system, or no support: sendfile works everywhere. */
                                *use_sendfile = true;
                                continue;
                        }
                } else {
                        if (lseek(out, off, SEEK_SET) < 0)
                                return -errno;
                        off_t ioff = off;
                        k = sendfile(out, in, &ioff, chunk);
                }
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -ENODATA; /* the source shrank */
                off += k;
                len -= k;
        }
        return 0;
}

/* Copies the open regular file in (src names it in messages) to dst. */
static int copy_fd_to(int in, const char *src, const char *dst, mode_t mode);

int install_copy_file(const char *src, const char *dst, mode_t mode) {
        /* O_NOFOLLOW: a file of the ISO (the loader) that is a symbolic link is not followed to
         * whatever it names (a key of the initrd, say). */
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (in < 0 && errno == ELOOP)
                return log_error_errno(ELOOP, "'%s' is a symbolic link; only regular files are copied from the ISO. "
                                       "Check the ISO.", src);
        if (in < 0)
                return log_error_errno(errno, "Cannot open '%s': %s", src, strerror(errno));
        return copy_fd_to(in, src, dst, mode);
}

static int copy_fd_to(int in, const char *src, const char *dst, mode_t mode) {
        struct stat st;
        if (fstat(in, &st) < 0)
                return log_error_errno(errno, "Cannot stat '%s': %s", src, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return log_error_errno(EINVAL, "'%s' is not a regular file.", src);
        _cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (out < 0)
                return log_error_errno(errno, "Cannot create '%s': %s", dst, strerror(errno));
        int r = 0;
        if (ftruncate(out, st.st_size) < 0) {
                r = -errno;
                goto fail;
        }

        bool use_sendfile = false;
        for (off_t off = 0; off < st.st_size;) {
                off_t data = lseek(in, off, SEEK_DATA);
                if (data < 0) {
                        if (errno == ENXIO) /* only a hole is left */
                                break;
                        if (errno == EINVAL || errno == EOPNOTSUPP) {
                                /* No hole support: the whole rest is data. */
                                data = off;
                        } else {
                                r = -errno;
                                goto fail;
                        }
                }
                off_t hole = lseek(in, data, SEEK_HOLE);
                if (hole < 0)
                        hole = st.st_size;
                if (hole > st.st_size)
                        hole = st.st_size;
                r = copy_range(in, out, data, hole - data, &use_sendfile);
                if (r < 0)
                        goto fail;
                off = hole;
        }
        if (fsync(out) < 0) {
                r = -errno;
                goto fail;
        }
        return 0;
fail:
        unlink(dst);
        return log_error_errno(r, "Cannot copy '%s' to '%s': %s", src, dst, strerror(-r));
}

/* ---------------------------------------------------------------------------------------------- */
/* OS images */

static int make_ext2_image(const char *src_dir, const char *img, const char *label, uint64_t image_mib) {
        char size[32], err[512];
        snprintf(size, sizeof size, "%" PRIu64 "M", image_mib);
        (void)unlink(img);
        {
                /* mke2fs makes the file itself in newer versions; create it sparse at its size anyway. */
                _cleanup_close_ int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (fd < 0)
                        return log_error_errno(errno, "Cannot create '%s': %s", img, strerror(errno));
                if (ftruncate(fd, (off_t)(image_mib << 20)) < 0) {
                        int e = errno;
                        unlink(img);
                        return log_error_errno(e, "Cannot size '%s' to %s: %s", img, size, strerror(e));
                }
        }
        char *argv[] = { (char *)"mke2fs", (char *)"-q", (char *)"-t", (char *)"ext2", (char *)"-F",
                         (char *)"-L", (char *)label, (char *)"-d", (char *)src_dir, (char *)img, size, NULL };
        int r = run_tool(argv, err, sizeof err);
        if (r < 0) {
                unlink(img);
                return log_error_errno(r, "Cannot make the %s image '%s' from '%s' with mke2fs: %s", label, img,
                                       src_dir, err);
        }
        return 0;
}

static int relabel_image(const char *img, const char *label) {
        char err[512];
        char *argv[] = { (char *)"tune2fs", (char *)"-L", (char *)label, (char *)img, NULL };
        int r = run_tool(argv, err, sizeof err);
        if (r < 0)
                return log_error_errno(r, "Cannot label '%s' %s with tune2fs: %s", img, label, err);
        return 0;
}

static int copy_image(const char *src, const char *dst, const char *label) {
        uint64_t start = now_usec();
        int r = install_copy_file(src, dst, 0644);
        if (r < 0)
                return r;
        r = relabel_image(dst, label);
        if (r < 0) {
                unlink(dst);
                return r;
        }
        log_info("Made %s (%s) in %.1f s.", dst, label, seconds_since(start));
        return 0;
}

int install_make_images(const char *src_dir, const char *state_dir, const char *recovery_dir, uint64_t image_mib) {
        _cleanup_free_ char *state_cos = path_join(state_dir, "cOS"), *recovery_cos = path_join(recovery_dir, "cOS");
        _cleanup_free_ char *active = NULL, *passive = NULL, *recovery = NULL;
        int r;

        if (!state_cos || !recovery_cos)
                return log_oom();
        active = path_join(state_cos, "active.img");
        passive = path_join(state_cos, "passive.img");
        recovery = path_join(recovery_cos, "recovery.img");
        if (!active || !passive || !recovery)
                return log_oom();
        const char *dirs[] = { state_cos, recovery_cos };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                r = mkdir_p(dirs[i], 0755);
                if (r < 0)
                        return log_error_errno(r, "Cannot make '%s': %s", dirs[i], strerror(-r));
        }

        uint64_t start = now_usec();
        log_info("Making active.img (%" PRIu64 " MiB, ext2, COS_ACTIVE) from the ISO's root file system...", image_mib);
        r = make_ext2_image(src_dir, active, "COS_ACTIVE", image_mib);
        if (r < 0)
                return r;
        struct stat st;
        if (stat(active, &st) == 0) {
                char used[32];
                log_info("Made %s in %.1f s (%s written).", active, seconds_since(start),
                         format_bytes(used, sizeof used, (uint64_t)st.st_blocks * 512));
        }

        r = copy_image(active, passive, "COS_PASSIVE");
        if (r < 0)
                return r;
        return copy_image(active, recovery, "COS_SYSTEM");
}

/* ---------------------------------------------------------------------------------------------- */
/* GRUB: the image's own configuration (HARVESTER-V1.1.md section 8) */

const char *const install_efi_files[] = { "shim.efi", "grub.efi", "MokManager.efi", NULL };
const char *const install_grub_modules[] = { "loopback.mod", "squash4.mod", "xzio.mod", NULL };

/* config_validate() refuses both first (validate.h); these are the renderer's assertions. */
static bool tty_valid(const char *tty) {
        return valid_console_name(tty);
}

/* Kernel arguments go into a GRUB variable that the menu entries expand: no newlines, nothing
 * GRUB's shell would expand or treat as syntax, quotes balanced. */
static bool kernel_args_valid(const char *s) {
        return !kernel_args_problem(s);
}

int install_console(const struct config *c, const char **ret) {
        const char *tty = c->install.tty;
        if (isempty(tty)) {
                size_t n = strv_length(c->boot.consoles);
                tty = n > 0 ? c->boot.consoles[n - 1] : NULL;
        }
        if (tty && strncmp(tty, "/dev/", 5) == 0)
                tty += 5;
        if (tty && !isempty(tty) && !tty_valid(tty))
                return log_error_errno(EINVAL, "install.tty \"%s\" is not a console name such as ttyS0,115200n8.", tty);
        *ret = isempty(tty) || streq(tty, "tty1") || streq(tty, "console") ? NULL : tty;
        return 0;
}

/* Appends s[0..n) to the memstream. */
static void put_n(FILE *f, const char *s, size_t n) {
        if (n > 0)
                fwrite(s, 1, n, f);
}

/* Replaces every `from` in text by `to`. */
static char *replace_all(const char *text, const char *from, const char *to) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        size_t k = strlen(from);
        for (const char *p = text, *q; *p; p = q + k) {
                q = strstr(p, from);
                if (!q) {
                        fputs(p, f);
                        break;
                }
                put_n(f, p, (size_t)(q - p));
                fputs(to, f);
        }
        bool failed = ferror(f);
        if (fclose(f) != 0 || failed) {
                free(buf);
                return NULL;
        }
        return buf;
}

static bool word_char(char ch) {
        return isalnum((unsigned char)ch) || ch == '_';
}

/* One line through harv-install's five `sed -i` expressions (each replaces the first match). */
static void patch_search_line(FILE *f, const char *line, size_t n) {
        static const struct {
                const char *from, *to;
        } subst[] = {
                { "search ", "search --no-floppy " },
                { "search.fs_label ", "search --no-floppy --label " },
                { "search.file ", "search --no-floppy --file " },
                { "search.fs_uuid ", "search --no-floppy --fs-uuid " },
        };
        _cleanup_free_ char *cur = strndup(line, n);
        if (!cur) {
                fputs("\n", f); /* the memstream's error is what the caller sees */
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(subst); i++) {
                char *at = strstr(cur, subst[i].from);
                if (!at)
                        continue;
                char *next = strdup_printf("%.*s%s%s", (int)(at - cur), cur, subst[i].to, at + strlen(subst[i].from));
                if (!next)
                        return;
                free(cur);
                cur = next;
        }
        /* sed -E 's/^(\s*search\b)(.*)root$/\1 --set=root\2/' */
        const char *p = cur;
        while (*p == ' ' || *p == '\t')
                p++;
        size_t len = strlen(cur), head = (size_t)(p - cur) + 6;
        if (strncmp(p, "search", 6) == 0 && !word_char(p[6]) && len >= head + 4 && streq(cur + len - 4, "root")) {
                put_n(f, cur, head);
                fputs(" --set=root", f);
                put_n(f, cur + head, len - 4 - head);
        } else
                fputs(cur, f);
}

int install_patch_grub_cfg(const char *image_cfg, const char *tty, char **ret) {
        _cleanup_free_ char *consoled = NULL;
        if (tty) {
                /* elemental: "console=tty1" -> "console=tty1 console=<tty>" */
                _cleanup_free_ char *to = strdup_printf("console=tty1 console=%s", tty);
                if (!to)
                        return -ENOMEM;
                consoled = replace_all(image_cfg, "console=tty1", to);
        } else
                consoled = strdup(image_cfg);
        if (!consoled)
                return -ENOMEM;

        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        for (const char *p = consoled; *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                patch_search_line(f, p, n);
                if (!nl)
                        break;
                fputc('\n', f);
                p = nl + 1;
        }
        bool failed = ferror(f);
        if (fclose(f) != 0 || failed) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

int install_patch_bootargs(const char *bootargs, const char *tty, char **ret) {
        if (!strstr(bootargs, IMAGE_CONSOLE_PARAMS))
                return -ENOENT;
        char *out;
        if (tty) {
                _cleanup_free_ char *to = strdup_printf("console_params=\"console=%s console=tty1\"", tty);
                if (!to)
                        return -ENOMEM;
                out = replace_all(bootargs, IMAGE_CONSOLE_PARAMS, to);
        } else
                out = strdup(bootargs);
        if (!out)
                return -ENOMEM;
        *ret = out;
        return 0;
}

/* harv-install's add_debug_grub_entry, verbatim: the image's kernel line plus crash_kernel_params
 * (bootargs.cfg's default: harv-install recomputes it with kdumptool, which the installer initrd
 * does not have). */
static const char grubmenu_debug[] =
        "menuentry \"${display_name} (debug)\" --id debug {\n"
        "  search --no-floppy --set=root --label COS_STATE\n"
        "  set img=/cOS/active.img\n"
        "  set label=COS_ACTIVE\n"
        "  loopback loop0 /$img\n"
        "  set root=($root)\n"
        "  source (loop0)/etc/cos/bootargs.cfg\n"
        "  linux (loop0)$kernel $kernelcmd ${extra_cmdline} ${extra_passive_cmdline} ${crash_kernel_params}\n"
        "  initrd (loop0)$initramfs\n"
        "}\n";

int install_write_state_boot(const char *rootfs_dir, const char *state_dir, const char *tty, const char *entry_name) {
        _cleanup_free_ char *src = path_join(rootfs_dir, IMAGE_GRUB_CFG), *text = NULL, *cfg = NULL;
        _cleanup_free_ char *grub_dir = path_join(state_dir, "grub2"), *mod_dir = NULL, *cfg_path = NULL;
        _cleanup_free_ char *env_path = path_join(state_dir, "grub_oem_env"), *menu_path = path_join(state_dir, "grubmenu");
        size_t len;
        int r;

        if (!src || !grub_dir || !env_path || !menu_path)
                return log_oom();
        r = read_full_file(src, &text, &len);
        if (r < 0)
                return log_error_errno(r, "Cannot read the image's /%s: %s", IMAGE_GRUB_CFG, strerror(-r));
        r = install_patch_grub_cfg(text, tty, &cfg);
        if (r < 0)
                return log_oom();

        mod_dir = path_join(grub_dir, "x86_64-efi");
        cfg_path = path_join(grub_dir, "grub.cfg");
        if (!mod_dir || !cfg_path)
                return log_oom();
        r = mkdir_p(mod_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Cannot make '%s': %s", mod_dir, strerror(-r));
        r = write_file_atomic(cfg_path, cfg, strlen(cfg), 0644);
        if (r < 0)
                return log_error_errno(r, "Cannot write '%s': %s", cfg_path, strerror(-r));
        for (size_t i = 0; install_grub_modules[i]; i++) {
                _cleanup_free_ char *s = strdup_printf("%s/%s/%s", rootfs_dir, IMAGE_GRUB_MODULE_DIR, install_grub_modules[i]);
                _cleanup_free_ char *t = path_join(mod_dir, install_grub_modules[i]);
                if (!s || !t)
                        return log_oom();
                r = install_copy_file(s, t, 0644);
                if (r < 0)
                        return r;
        }

        struct kvmap vars = {};
        char env[GRUB_ENV_BLOCK_SIZE];
        r = kvmap_set(&vars, "default_menu_entry", isempty(entry_name) ? "Harvester" : entry_name);
        if (r < 0)
                return log_oom();
        r = grub_env_block(&vars, env);
        kvmap_clear(&vars);
        if (r < 0)
                return log_error_errno(r, "The menu entry name \"%s\" does not fit in a GRUB environment block.",
                                       entry_name);
        r = write_file_atomic(env_path, env, sizeof env, 0644);
        if (r < 0)
                return log_error_errno(r, "Cannot write '%s': %s", env_path, strerror(-r));
        r = write_file_atomic(menu_path, grubmenu_debug, strlen(grubmenu_debug), 0644);
        if (r < 0)
                return log_error_errno(r, "Cannot write '%s': %s", menu_path, strerror(-r));
        log_info("COS_STATE: the image's grub.cfg, its modules %s, %s, %s, grub_oem_env and the debug entry.",
                 install_grub_modules[0], install_grub_modules[1], install_grub_modules[2]);
        return 0;
}

int install_render_grubenv(const struct config *c, char ret[static GRUB_ENV_BLOCK_SIZE]) {
        const char *extra = c->os.additional_kernel_arguments;
        struct kvmap vars = {};
        int r;

        if (!isempty(extra) && !kernel_args_valid(extra))
                return log_error_errno(EINVAL, "os.additional_kernel_arguments \"%s\" %s.", extra,
                                       kernel_args_problem(extra));
        if (!isempty(extra) && kvmap_set(&vars, "extra_cmdline", extra) < 0)
                return log_oom();
        r = grub_env_block(&vars, ret);
        kvmap_clear(&vars);
        if (r < 0)
                return log_error_errno(r, "os.additional_kernel_arguments does not fit in a GRUB environment block (1 KiB).");
        return 0;
}

int install_write_grubenv(const struct config *c, const char *oem_dir) {
        _cleanup_free_ char *path = path_join(oem_dir, "grubenv");
        char env[GRUB_ENV_BLOCK_SIZE];
        int r;

        if (!path)
                return log_oom();
        r = install_render_grubenv(c, env);
        if (r < 0)
                return r;
        r = write_file_atomic(path, env, sizeof env, 0644);
        if (r < 0)
                return log_error_errno(r, "Cannot write '%s': %s", path, strerror(-r));
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* state.yaml */

int install_render_state_yaml(const char *source_dir, time_t when, char **ret) {
        struct tm tm;
        char date[32];
        if (!gmtime_r(&when, &tm) || strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return -EINVAL;
        /* yaml.v3: struct fields first, then the inline maps' keys sorted; four-space indent; a
         * string that reads as a timestamp is double-quoted. */
        char *s = strdup_printf("# Autogenerated file by elemental client, do not edit\n"
                                "\n"
                                "date: \"%s\"\n"
                                "oem:\n"
                                "    label: COS_OEM\n"
                                "persistent:\n"
                                "    label: COS_PERSISTENT\n"
                                "recovery:\n"
                                "    label: COS_RECOVERY\n"
                                "    recovery:\n"
                                "        source: dir://%s\n"
                                "        label: COS_SYSTEM\n"
                                "        fs: ext2\n"
                                "state:\n"
                                "    label: COS_STATE\n"
                                "    active:\n"
                                "        source: dir://%s\n"
                                "        label: COS_ACTIVE\n"
                                "        fs: ext2\n"
                                "    passive:\n"
                                "        source: dir://%s\n"
                                "        label: COS_PASSIVE\n"
                                "        fs: ext2\n",
                                date, source_dir, source_dir, source_dir);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int install_write_state_yaml(const char *source_dir, const char *state_dir, const char *recovery_dir) {
        _cleanup_free_ char *text = NULL;
        int r = install_render_state_yaml(source_dir, time(NULL), &text);
        if (r < 0)
                return log_oom();
        const char *dirs[] = { state_dir, recovery_dir };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *p = path_join(dirs[i], "state.yaml");
                if (!p)
                        return log_oom();
                r = write_file_atomic(p, text, strlen(text), 0644);
                if (r < 0)
                        return log_error_errno(r, "Cannot write '%s': %s", p, strerror(-r));
        }
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* The loader on COS_GRUB: the commit point */

/* The loader's grub.cfg (elemental's text): the boot menu is COS_STATE's grub2/grub.cfg. */
static const char grub_stub_cfg[] = "search --no-floppy --label --set=root COS_STATE\n"
                                    "set prefix=($root)/grub2\n"
                                    "configfile ($root)/grub2/grub.cfg";

static int fsync_dir(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

/* dst from src (a file) or data: written as dst.new (vfat: no modes, no links), fsynced, renamed,
 * the directory fsynced. */
static int commit_file(const char *dir, const char *name, const char *src, const char *data) {
        _cleanup_free_ char *tmp = strdup_printf("%s/%s.new", dir, name), *dst = path_join(dir, name);
        int r;
        if (!tmp || !dst)
                return log_oom();
        if (src)
                r = install_copy_file(src, tmp, 0644); /* fsyncs; message printed */
        else {
                r = write_file_plain(tmp, data, strlen(data), 0644);
                if (r < 0)
                        log_error_errno(r, "Cannot write '%s': %s", tmp, strerror(-r));
        }
        if (r < 0) {
                (void)unlink(tmp);
                return r;
        }
        if (rename(tmp, dst) < 0) {
                r = -errno;
                (void)unlink(tmp);
                return log_error_errno(r, "Cannot rename '%s' to '%s': %s", tmp, dst, strerror(-r));
        }
        r = fsync_dir(dir);
        if (r < 0)
                return log_error_errno(r, "Cannot sync the directory '%s': %s", dir, strerror(-r));
        return 0;
}

int install_write_loader(const char *rootfs_dir, const char *efi_dir) {
        _cleanup_free_ char *boot_dir = path_join(efi_dir, "EFI/BOOT"), *elemental_dir = path_join(efi_dir, "EFI/elemental");
        _cleanup_free_ char *shim = NULL;
        int r;

        if (!boot_dir || !elemental_dir)
                return log_oom();
        const char *dirs[] = { elemental_dir, boot_dir };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                r = mkdir_p(dirs[i], 0755);
                if (r < 0)
                        return log_error_errno(r, "Cannot make '%s': %s", dirs[i], strerror(-r));
        }
        /* Everything but the two files the firmware starts: shim's neighbours and the stubs. */
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                for (size_t k = 0; install_efi_files[k]; k++) {
                        if (i == 0 && k == 0)
                                continue; /* EFI/elemental/shim.efi: the entry's target, below */
                        _cleanup_free_ char *s = strdup_printf("%s/%s/%s", rootfs_dir, IMAGE_EFI_DIR, install_efi_files[k]);
                        if (!s)
                                return log_oom();
                        r = commit_file(dirs[i], install_efi_files[k], s, NULL);
                        if (r < 0)
                                return r;
                }
                r = commit_file(dirs[i], "grub.cfg", NULL, grub_stub_cfg);
                if (r < 0)
                        return r;
        }
        shim = strdup_printf("%s/%s/%s", rootfs_dir, IMAGE_EFI_DIR, install_efi_files[0]);
        if (!shim)
                return log_oom();
        r = commit_file(elemental_dir, install_efi_files[0], shim, NULL);
        if (r < 0)
                return r;
        /* The commit: from here on the firmware boots the disk. */
        r = commit_file(boot_dir, "BOOTX64.EFI", shim, NULL);
        if (r < 0)
                return r;
        log_info("COS_GRUB: the image's shim, grub.efi and MokManager.efi in EFI/elemental/ and EFI/BOOT/; "
                 "EFI/BOOT/BOOTX64.EFI written last: the disk is bootable.");
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Image bundles and the log */

/*
 * Opens the directory src_dir without following a symbolic link anywhere on its path (ELOOP then),
 * and returns in *ret_root the deepest mount point crossed on the way below "/" (the ISO's root:
 * it is mounted), or src_dir itself when there is none, and in *ret_rel src_dir relative to it.
 */
static int open_dir_nofollow(const char *src_dir, int *ret_dir, int *ret_root, char **ret_rel) {
        if (src_dir[0] != '/')
                return -EINVAL;
        _cleanup_close_ int cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int root = -1;
        if (cur < 0)
                return -errno;
        struct stat st;
        if (fstat(cur, &st) < 0)
                return -errno;
        dev_t dev = st.st_dev;
        const char *rel = NULL;
        for (const char *p = src_dir; *p;) {
                p += strspn(p, "/");
                size_t k = strcspn(p, "/");
                if (k == 0)
                        break;
                _cleanup_free_ char *name = strndup(p, k);
                if (!name)
                        return -ENOMEM;
                if (streq(name, ".."))
                        return -EINVAL;
                if (fstatat(cur, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                if (S_ISLNK(st.st_mode))
                        return -ELOOP;
                int fd = openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                close(cur);
                cur = fd;
                if (fstat(cur, &st) < 0)
                        return -errno;
                p += k;
                if (st.st_dev != dev) {
                        /* A mount point: the directories below are the mounted file system's. */
                        if (root >= 0)
                                close(root);
                        root = fcntl(cur, F_DUPFD_CLOEXEC, 3);
                        if (root < 0)
                                return -errno;
                        dev = st.st_dev;
                        rel = p;
                }
        }
        _cleanup_free_ char *r = strdup(rel ? rel + strspn(rel, "/") : "");
        if (!r)
                return -ENOMEM;
        _cleanup_close_ int dir = openat(cur, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
                return -errno;
        if (root < 0 && (root = fcntl(dir, F_DUPFD_CLOEXEC, 3)) < 0)
                return -errno;
        *ret_dir = dir;
        *ret_root = root;
        dir = root = -1;
        *ret_rel = TAKE_PTR(r);
        return 0;
}

/*
 * Copies the regular files of src_dir (none when it does not exist) into dst_dir, made if needed,
 * except dot files and the names in skip (compared without case, as on FAT). Adds the bytes copied
 * to *ret_bytes when given. src_dir is inside the mounted ISO, which is not trusted: no symbolic
 * link on the way to src_dir is followed, and an entry that is a link is followed only while it
 * stays inside the ISO's file system (openat2 RESOLVE_BENEATH from the ISO's root, no mount
 * crossed): a link to an initrd file (a key) or out through ".." fails the copy.
 */
static int copy_dir_files(const char *src_dir, const char *dst_dir, const char *const *skip, uint64_t *ret_bytes) {
        _cleanup_close_ int dfd = -1, root = -1;
        _cleanup_free_ char *rel = NULL;
        int r = open_dir_nofollow(src_dir, &dfd, &root, &rel);
        if (r == -ENOENT)
                return 0;
        if (r == -ELOOP)
                return log_error_errno(r, "The ISO's directory '%s' is reached through a symbolic link; refusing "
                                       "to copy from it. Check the ISO.", src_dir);
        if (r < 0)
                return log_error_errno(r, "Cannot read the directory '%s': %s", src_dir, strerror(-r));
        _cleanup_closedir_ DIR *d = fdopendir(dfd);
        if (!d)
                return log_error_errno(errno, "Cannot read the directory '%s': %s", src_dir, strerror(errno));
        dfd = -1; /* owned by d */
        r = mkdir_p(dst_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Cannot make '%s': %s", dst_dir, strerror(-r));
        struct dirent *de;
        while ((errno = 0, de = readdir(d))) {
                bool skipped = de->d_name[0] == '.';
                for (size_t k = 0; skip && skip[k] && !skipped; k++)
                        skipped = strcasecmp(de->d_name, skip[k]) == 0;
                if (skipped)
                        continue;
                _cleanup_free_ char *s = path_join(src_dir, de->d_name), *t = path_join(dst_dir, de->d_name);
                _cleanup_free_ char *below = isempty(rel) ? strdup(de->d_name) : path_join(rel, de->d_name);
                if (!s || !t || !below)
                        return log_oom();
                struct open_how how = {
                        .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                        .resolve = RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS,
                };
                _cleanup_close_ int in = (int)syscall(SYS_openat2, root, below, &how, sizeof(how));
                if (in < 0 && (errno == EXDEV || errno == ELOOP))
                        return log_error_errno(EXDEV, "The ISO's '%s' is a symbolic link that leads out of the ISO; "
                                               "refusing to copy it. Check the ISO.", s);
                if (in < 0)
                        return log_error_errno(errno, "Cannot open '%s': %s", s, strerror(errno));
                struct stat st;
                if (fstat(in, &st) < 0)
                        return log_error_errno(errno, "Cannot stat '%s': %s", s, strerror(errno));
                if (!S_ISREG(st.st_mode))
                        continue;
                r = copy_fd_to(in, s, t, 0644);
                if (r < 0)
                        return r;
                if (ret_bytes)
                        *ret_bytes += (uint64_t)st.st_size;
        }
        if (errno != 0)
                return log_error_errno(errno, "Cannot read the directory '%s': %s", src_dir, strerror(errno));
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Image bundles and the log */

int install_preload_images(const char *iso_dir, const char *state_dir, const char *persistent_dir,
                           const char *root) {
        uint64_t start = now_usec(), bytes = 0;
        char b[32];
        int r;

        /* The rancherd bundle is copied, as v1.1.2 does: rancherd imports it at the first boot. */
        _cleanup_free_ char *s = path_join(iso_dir, PRELOAD_RANCHERD_BUNDLE);
        _cleanup_free_ char *state_bind = path_join(persistent_dir, ".state/var-lib-rancher.bind");
        _cleanup_free_ char *t = state_bind ? path_join(state_bind, "agent/images") : NULL;
        if (!s || !t)
                return log_oom();
        r = copy_dir_files(s, t, NULL, &bytes);
        if (r < 0)
                return r;
        if (bytes > 0)
                log_info("Copied the ISO's rancherd image bundle (%s) to COS_PERSISTENT in %.1f s.",
                         format_bytes(b, sizeof b, bytes), seconds_since(start));

        /* The Harvester bundle is imported into containerd from the ISO and not kept (preload.c). */
        r = preload_wanted(iso_dir);
        if (r <= 0) {
                if (r == 0)
                        log_info("The ISO has no Harvester image bundle to preload.");
                return r;
        }
        _cleanup_free_ char *img = path_join(state_dir, "cOS/active.img"), *usr_local = path_join(root, "usr/local"),
                            *rancher = path_join(root, "var/lib/rancher"), *images = path_join(root, PRELOAD_IMAGES_DIR + 1),
                            *lists = path_join(root, PRELOAD_LISTS_DIR + 1), *dev = path_join(root, "dev"),
                            *proc = path_join(root, "proc"), *bundle = path_join(iso_dir, PRELOAD_BUNDLE),
                            *bundle_lists = path_join(iso_dir, PRELOAD_LISTS),
                            *kept = path_join(state_bind, "rke2/agent/images");
        if (!img || !usr_local || !rancher || !images || !lists || !dev || !proc || !bundle || !bundle_lists || !kept)
                return log_oom();
        r = mkdir_p(kept, 0755);
        if (r < 0)
                return log_error_errno(r, "Cannot make '%s': %s", kept, strerror(-r));

        struct mounts m = {};
        start = now_usec();
        /* Each one private: under systemd every mount is shared, and a bind below a bind of
         * COS_PERSISTENT would otherwise show up (and be unmounted) at each of its peers. */
        if ((r = mounts_add(&m, img, root, "ext2", "loop,private")) < 0 ||
            (r = mounts_add(&m, persistent_dir, usr_local, NULL, "bind,private")) < 0 ||
            (r = mounts_add(&m, state_bind, rancher, NULL, "bind,private")) < 0 ||
            (r = mounts_add(&m, bundle, images, NULL, "bind,private")) < 0 ||
            (r = mounts_add(&m, bundle_lists, lists, NULL, "bind,private")) < 0 ||
            (r = mounts_add(&m, "/dev", dev, NULL, "bind,private")) < 0 ||
            (r = mounts_add(&m, "/proc", proc, NULL, "bind,private")) < 0)
                goto finish;
        r = preload_import(root, (const char *const[]) { root, usr_local, rancher, images, lists, dev, proc, NULL },
                           PRELOAD_TIMEOUT_USEC);
finish:;
        int q = mounts_release(&m);
        if (r == 0 && q < 0)
                r = q;
        if (r < 0)
                return r;
        /* What the bundle was bound over is COS_PERSISTENT's own directory: it must hold no tarball. */
        _cleanup_(strv_freep) char **left = NULL;
        _cleanup_(closedirp) DIR *d = opendir(kept);
        if (!d)
                return log_error_errno(errno, "Cannot read '%s': %s", kept, strerror(errno));
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] != '.' && strv_push(&left, de->d_name) < 0)
                        return log_oom();
        if (left)
                return log_error_errno(EEXIST, "After the image preload, COS_PERSISTENT's rke2/agent/images holds %s: "
                                               "rke2 would import it again at every start.", left[0]);
        log_info("Imported the ISO's Harvester images into containerd on COS_PERSISTENT in %.1f s (no tarball kept).",
                 seconds_since(start));
        return 0;
}

int install_copy_log(const char *log_path, const char *oem_dir) {
        _cleanup_free_ char *dir = path_join(oem_dir, "install"), *dst = NULL, *text = NULL, *redacted = NULL;
        size_t len = 0;
        int r;

        if (!dir)
                return log_oom();
        r = read_full_file(log_path, &text, &len);
        if (r < 0)
                return log_error_errno(r, "Cannot read the install log '%s': %s", log_path, strerror(-r));
        redacted = log_redact(text);
        if (!redacted)
                return log_oom();
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot make '%s': %s", dir, strerror(-r));
        dst = path_join(dir, "console.log");
        if (!dst)
                return log_oom();
        r = write_file_atomic(dst, redacted, strlen(redacted), 0600);
        if (r < 0)
                return log_error_errno(r, "Cannot write '%s': %s", dst, strerror(-r));
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */

/* harv-install's console edit, made inside active.img only (passive and recovery were copied
 * before it, as upstream): the image loop-mounted read-write at mnt, bootargs.cfg rewritten. */
static int set_image_console(const char *active_img, const char *mnt, const char *tty) {
        _cleanup_free_ char *path = path_join(mnt, IMAGE_BOOTARGS_CFG), *text = NULL, *patched = NULL;
        size_t len;
        int r, q;

        if (!path)
                return log_oom();
        r = install_mount(active_img, mnt, "ext2", "loop");
        if (r < 0)
                return r;
        r = read_full_file(path, &text, &len);
        if (r < 0)
                log_error_errno(r, "Cannot read /%s in active.img: %s", IMAGE_BOOTARGS_CFG, strerror(-r));
        else {
                r = install_patch_bootargs(text, tty, &patched);
                if (r == -ENOENT)
                        log_error_errno(ENOENT, "The image's /%s has no %s line to set the console in.",
                                        IMAGE_BOOTARGS_CFG, IMAGE_CONSOLE_PARAMS);
                else if (r < 0)
                        log_oom();
                else {
                        r = write_file_atomic(path, patched, strlen(patched), 0644);
                        if (r < 0)
                                log_error_errno(r, "Cannot write /%s in active.img: %s", IMAGE_BOOTARGS_CFG, strerror(-r));
                }
        }
        sync();
        q = install_umount(mnt);
        if (r == 0 && q < 0)
                r = q;
        if (r == 0)
                log_info("active.img: /%s sets console=%s console=tty1.", IMAGE_BOOTARGS_CFG, tty);
        return r;
}

/* A console harv-install would add: the device must exist here (it checks /dev/<tty without
 * ",options">). */
static const char *console_present(const char *tty) {
        if (!tty)
                return NULL;
        _cleanup_free_ char *dev = strdup_printf("/dev/%.*s", (int)strcspn(tty, ","), tty);
        if (!dev || access(dev, F_OK) < 0) {
                log_warning("install.tty %s: %s does not exist here; the installed system keeps console=tty1 only.",
                            tty, dev ? dev : "the device");
                return NULL;
        }
        return tty;
}

static int sync_mount(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || syncfs(fd) < 0)
                return log_error_errno(errno, "Cannot sync '%s': %s", dir, strerror(errno));
        return 0;
}

int install_system(const struct config *c, const struct disk_plan *p, const struct os_image *img) {
        static const struct {
                enum part_id id;
                const char *label, *dir, *fstype;
        } parts[] = {
                { PART_STATE, "COS_STATE", INSTALL_MNT_DIR "/state", "ext4" },
                { PART_RECOVERY, "COS_RECOVERY", INSTALL_MNT_DIR "/recovery", "ext4" },
                { PART_OEM, "COS_OEM", INSTALL_MNT_DIR "/oem", "ext4" },
                { PART_PERSISTENT, "COS_PERSISTENT", INSTALL_MNT_DIR "/persistent", "ext4" },
                { PART_EFI, "COS_GRUB", INSTALL_MNT_DIR "/efi", "vfat" },
        };
        const char *state = INSTALL_MNT_DIR "/state", *recovery = INSTALL_MNT_DIR "/recovery",
                   *oem = INSTALL_MNT_DIR "/oem", *persistent = INSTALL_MNT_DIR "/persistent",
                   *efi = INSTALL_MNT_DIR "/efi";
        struct mounts mounts = {};
        const char *tty = NULL;
        uint64_t start = now_usec(), t;
        int r;

        r = cloudconfig_check(c);
        if (r < 0)
                return r;
        r = install_console(c, &tty);
        if (r < 0)
                return r;
        tty = console_present(tty);
        if (!img || !img->rootfs_dir)
                return log_error_errno(EINVAL, "No mounted OS image to install from.");
        if (img->release.harvester)
                log_info("Installing %s (%s).", img->release.os_name ?: "Harvester", img->release.harvester);

        for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
                const char *node = disk_plan_node(p, parts[i].id);
                if (!node) {
                        r = log_error_errno(ENODEV, "The disk layout has no %s partition.", parts[i].label);
                        goto finish;
                }
                r = mounts_add(&mounts, node, parts[i].dir, parts[i].fstype, NULL);
                if (r < 0)
                        goto finish;
        }

        /* 1. COS_STATE and COS_RECOVERY: the images, the image's boot files, state.yaml. */
        t = now_usec();
        r = install_make_images(img->rootfs_dir, state, recovery, INSTALL_IMAGE_MIB);
        if (r < 0)
                goto finish;
        if (tty) {
                _cleanup_free_ char *active = path_join(state, "cOS/active.img");
                if (!active) {
                        r = log_oom();
                        goto finish;
                }
                r = set_image_console(active, INSTALL_MNT_DIR "/active", tty);
                if (r < 0)
                        goto finish;
        }
        log_info("OS images done in %.1f s.", seconds_since(t));
        r = install_write_state_boot(img->rootfs_dir, state, tty, img->release.os_name);
        if (r < 0)
                goto finish;
        r = install_write_state_yaml(img->rootfs_dir, state, recovery);
        if (r < 0)
                goto finish;

        /* 2. COS_PERSISTENT: the image bundles. */
        if (img->iso_dir) { /* not mounted: os_image_open found no bundle/ in the ISO */
                r = install_preload_images(img->iso_dir, state, persistent, INSTALL_MNT_DIR "/target");
                if (r < 0)
                        goto finish;
        }

        /* 3. COS_OEM: the node's configuration, complete. */
        r = cloudconfig_write_oem_release(c, &img->release, oem);
        if (r < 0)
                goto finish;
        r = install_write_grubenv(c, oem);
        if (r < 0)
                goto finish;
        r = report_write_oem(oem); /* install/report.json: on the disk before it can boot (report.h) */
        if (r < 0)
                goto finish;

        /* Everything the system boots into is on the disk before the disk can boot. */
        {
                const char *synced[] = { state, recovery, persistent, oem };
                for (size_t i = 0; i < ELEMENTSOF(synced); i++) {
                        r = sync_mount(synced[i]);
                        if (r < 0)
                                goto finish;
                }
        }
        log_info("COS_STATE, COS_RECOVERY, COS_PERSISTENT and COS_OEM are complete and synced.");

        /* 4. The commit point: the loader on COS_GRUB, BOOTX64.EFI last. */
        r = install_write_loader(img->rootfs_dir, efi);
        if (r < 0)
                goto finish;

        /* 5. The NVRAM entry (a warning without EFI variables). */
        r = boot_entry_install(disk_plan_install_disk(p), BOOT_ENTRY_PARTITION, BOOT_ENTRY_LOADER, BOOT_ENTRY_NAME);
        if (r < 0)
                goto finish;
        r = 0;
finish:
        {
                int q = mounts_release(&mounts);
                if (r == 0 && q < 0)
                        r = log_error_errno(q, "The installed file systems could not all be unmounted cleanly.");
        }
        if (r == 0)
                log_info("The OS, the node's configuration and the boot loader are on the disk (%.1f s).",
                         seconds_since(start));
        return r;
}

int install_save_log(const struct disk_plan *p, const char *log_path) {
        const char *oem_dir = INSTALL_MNT_DIR "/oem";
        const char *node = disk_plan_node(p, PART_OEM);
        if (!node)
                return log_error_errno(ENODEV, "The disk layout has no COS_OEM partition for the install log.");
        int r = install_mount(node, oem_dir, "ext4", NULL);
        if (r < 0)
                return r;
        r = install_copy_log(log_path, oem_dir);
        sync();
        int q = install_umount(oem_dir);
        return r < 0 ? r : q;
}
