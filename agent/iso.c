/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ISO read with libarchive: no loop device, no iso9660 driver needed (the host kernel of our test
 * machines has none). Rock Ridge names are used when present, then Joliet, then plain ISO9660 names
 * (upper case, ";1" stripped by libarchive), so names are compared without regard to case.
 */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "install.h"
#include "firmware.h"
#include "iso.h"
#include "log.h"
#include "preload.h"

static inline void archive_read_freep(struct archive **a) {
        if (*a)
                archive_read_free(*a);
}
#define _cleanup_archive_read_ __attribute__((cleanup(archive_read_freep)))

static const char *const required_files[] = {
        "rootfs.squashfs",
        "boot/kernel",
        "boot/initrd",
};

/* "./boot/kernel", "/boot/kernel" -> "boot/kernel" */
static const char *strip_dot_slash(const char *p) {
        for (;;) {
                if (p[0] == '.' && p[1] == '/')
                        p += 2;
                else if (p[0] == '/')
                        p++;
                else
                        return p;
        }
}

static int archive_neg_errno(struct archive *a) {
        int e = archive_errno(a);
        return e > 0 ? -e : -EIO;
}

static int iso_open(const char *iso_path, struct archive **ret) {
        _cleanup_archive_read_ struct archive *a = archive_read_new();
        if (!a)
                return log_oom();
        /* Rock Ridge and Joliet are read by the iso9660 reader without options. */
        if (archive_read_support_format_iso9660(a) != ARCHIVE_OK)
                return log_error_errno(EIO, "libarchive cannot read ISO9660: %s", archive_error_string(a));
        if (archive_read_open_filename(a, iso_path, 64 * 1024) != ARCHIVE_OK) {
                int r = archive_neg_errno(a);
                struct stat st;
                if (stat(iso_path, &st) < 0)
                        return log_error_errno(errno, "Cannot open the ISO \"%s\": %s", iso_path, strerror(errno));
                if (r == -EINVAL || r == -EIO || r == -EILSEQ)
                        return log_error_errno(EINVAL, "\"%s\" is not an ISO9660 image (%s). Does install.iso_url "
                                                       "point at the ISO, and not at an error or login page?",
                                               iso_path, strempty(archive_error_string(a)));
                return log_error_errno(r, "Cannot open the ISO \"%s\": %s", iso_path,
                                       strempty(archive_error_string(a)));
        }
        *ret = TAKE_PTR(a);
        return 0;
}

/* A member counts when it is a regular file, or a hard link (ISO9660 images share the data of
 * identical files, and libarchive reports the later ones as hard links to the first). */
static bool entry_is_file(struct archive_entry *e) {
        return archive_entry_filetype(e) == AE_IFREG || archive_entry_hardlink(e);
}

int iso_check_contents(const char *iso_path) {
        _cleanup_archive_read_ struct archive *a = NULL;
        bool found[ELEMENTSOF(required_files)] = {};
        int r = iso_open(iso_path, &a);
        if (r < 0)
                return r;

        struct archive_entry *e;
        for (;;) {
                r = archive_read_next_header(a, &e);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN) {
                        int k = archive_neg_errno(a);
                        return log_error_errno(k, "Cannot read the ISO \"%s\": %s. It is not a valid ISO9660 "
                                                  "image (a wrong URL, or an HTML error page?).",
                                               iso_path, strempty(archive_error_string(a)));
                }
                const char *name = archive_entry_pathname(e);
                if (!name || !entry_is_file(e))
                        continue;
                name = strip_dot_slash(name);
                for (size_t i = 0; i < ELEMENTSOF(required_files); i++)
                        if (strcasecmp(name, required_files[i]) == 0)
                                found[i] = true;
        }

        _cleanup_free_ char *missing = NULL;
        size_t n_missing = 0;
        for (size_t i = 0; i < ELEMENTSOF(required_files); i++) {
                if (found[i])
                        continue;
                char *m = strdup_printf("%s%s%s", strempty(missing), missing ? ", " : "", required_files[i]);
                if (!m)
                        return log_oom();
                free(missing);
                missing = m;
                n_missing++;
        }
        if (n_missing > 0)
                return log_error_errno(ENOENT, "The ISO \"%s\" lacks %s the install needs: %s. Is install.iso_url "
                                               "a Harvester ISO of the same version as the kernel and initrd?",
                                       iso_path, n_missing == 1 ? "a file" : "files", missing);
        log_info("The ISO holds every file the install needs (%zu checked).", ELEMENTSOF(required_files));
        return 0;
}

/* Looks for member; sets *ret_link to a copy of the hard link target when the entry is one. The
 * archive is then positioned at the member's data. 0, -ENOENT, -EISDIR (not a file) or -errno. */
static int find_member(struct archive *a, const char *member, struct archive_entry **ret, char **ret_link) {
        struct archive_entry *e;
        for (;;) {
                int r = archive_read_next_header(a, &e);
                if (r == ARCHIVE_EOF)
                        return -ENOENT;
                if (r < ARCHIVE_WARN)
                        return archive_neg_errno(a);
                const char *name = archive_entry_pathname(e);
                if (!name || strcasecmp(strip_dot_slash(name), strip_dot_slash(member)) != 0)
                        continue;
                if (!entry_is_file(e))
                        return -EISDIR;
                if (archive_entry_hardlink(e)) {
                        char *l = strdup(archive_entry_hardlink(e));
                        if (!l)
                                return -ENOMEM;
                        *ret_link = l;
                } else
                        *ret_link = NULL;
                *ret = e;
                return 0;
        }
}

int iso_extract_file(const char *iso_path, const char *member, const char *dest) {
        _cleanup_archive_read_ struct archive *a = NULL;
        _cleanup_free_ char *link = NULL;
        struct archive_entry *e;

        int r = iso_open(iso_path, &a);
        if (r < 0)
                return r;
        r = find_member(a, member, &e, &link);
        if (r == 0 && link) {
                /* The data lives with the first name; it comes earlier in the image: start again. */
                archive_read_free(TAKE_PTR(a));
                r = iso_open(iso_path, &a);
                if (r < 0)
                        return r;
                _cleanup_free_ char *again = NULL;
                r = find_member(a, link, &e, &again);
                if (r == 0 && again)
                        r = -ELOOP;
        }
        if (r < 0)
                return log_error_errno(r, "Cannot find \"%s\" in the ISO \"%s\": %s", member, iso_path,
                                       r == -ENOENT ? "no such file" : r == -EISDIR ? "not a regular file" : strerror(-r));

        /* Only the member's data is taken from the image, never a path, mode, owner or link: dest is
         * the caller's path, created here as a plain 0644 file (O_NOFOLLOW: not through a symlink).
         * archive_write_disk() is not used on purpose: its path checks concern paths taken from an
         * archive, and with ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_UNLINK it replaces a
         * symlinked directory on the way to dest with an empty real one (seen with libarchive 3.6.2),
         * which must never happen to a target like /lib or a mounted ESP. */
        _cleanup_close_ int fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create \"%s\": %s", dest, strerror(errno));
        if (fchmod(fd, 0644) < 0)
                return log_error_errno(errno, "Cannot set the mode of \"%s\": %s", dest, strerror(errno));
        uint64_t end = 0;
        for (;;) {
                const void *buf;
                size_t len;
                la_int64_t off;
                r = archive_read_data_block(a, &buf, &len, &off);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN || off < 0) {
                        int k = archive_neg_errno(a);
                        (void)unlink(dest);
                        return log_error_errno(k, "Cannot read \"%s\" from the ISO \"%s\": %s", member, iso_path,
                                               strempty(archive_error_string(a)));
                }
                for (size_t done = 0; done < len;) {
                        ssize_t k = pwrite(fd, (const char *)buf + done, len - done, (off_t)off + (off_t)done);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0) {
                                int err = k < 0 ? errno : EIO;
                                (void)unlink(dest);
                                return log_error_errno(err, "Cannot write \"%s\": %s", dest, strerror(err));
                        }
                        done += (size_t)k;
                }
                if ((uint64_t)off + len > end)
                        end = (uint64_t)off + len;
        }
        /* A sparse tail leaves no data block: the size comes from the entry. */
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : (int64_t)end;
        if ((size > 0 && (uint64_t)size > end && ftruncate(fd, size) < 0) || close(fd) < 0) {
                int err = errno;
                fd = -1;
                (void)unlink(dest);
                return log_error_errno(err, "Cannot write \"%s\": %s", dest, strerror(err));
        }
        fd = -1;
        log_debug("Extracted \"%s\" from the ISO to \"%s\".", member, dest);
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* The mounted OS image */

static int append_missing(char **list, size_t *n, const char *what) {
        char *m = strdup_printf("%s%s%s", strempty(*list), *list ? ", " : "", what);
        if (!m)
                return -ENOMEM;
        free(*list);
        *list = m;
        (*n)++;
        return 0;
}

/* A regular file (through symlinks that stay inside root) that can be read. */
static bool image_file_ok(const char *root, const char *rel) {
        _cleanup_free_ char *p = strdup_printf("%s/%s", root, rel), *real = NULL, *real_root = NULL;
        if (!p)
                return false;
        real = realpath(p, NULL);
        real_root = realpath(root, NULL);
        if (!real || !real_root)
                return false;
        size_t k = strlen(real_root);
        if (strncmp(real, real_root, k) != 0 || (real[k] != '/' && real[k] != 0))
                return false; /* a link out of the image */
        struct stat st;
        return stat(real, &st) == 0 && S_ISREG(st.st_mode) && access(real, R_OK) == 0;
}

int os_image_check(const char *iso_dir, const char *rootfs_dir) {
        static const char *const rootfs_files[] = {
                "boot/vmlinuz", "boot/initrd", "etc/harvester-release.yaml", IMAGE_GRUB_CFG, IMAGE_BOOTARGS_CFG,
        };
        static const char *const bundle_dirs[] = { "bundle/rancherd/images", "bundle/harvester/images" };
        _cleanup_free_ char *missing = NULL;
        size_t n_missing = 0, n_checked = 0;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(rootfs_files); i++, n_checked++)
                if (!image_file_ok(rootfs_dir, rootfs_files[i]) &&
                    append_missing(&missing, &n_missing, rootfs_files[i]) < 0)
                        return log_oom();
        for (size_t i = 0; install_efi_files[i]; i++, n_checked++) {
                _cleanup_free_ char *rel = strdup_printf("%s/%s", IMAGE_EFI_DIR, install_efi_files[i]);
                if (!rel)
                        return log_oom();
                if (!image_file_ok(rootfs_dir, rel) && append_missing(&missing, &n_missing, rel) < 0)
                        return log_oom();
        }
        for (size_t i = 0; install_grub_modules[i]; i++, n_checked++) {
                _cleanup_free_ char *rel = strdup_printf("%s/%s", IMAGE_GRUB_MODULE_DIR, install_grub_modules[i]);
                if (!rel)
                        return log_oom();
                if (!image_file_ok(rootfs_dir, rel) && append_missing(&missing, &n_missing, rel) < 0)
                        return log_oom();
        }
        /* A legacy BIOS machine boots through the image's GRUB for i386-pc (install.h). */
        if (!firmware_is_efi()) {
                _cleanup_free_ char *bios_missing = NULL;
                n_checked++;
                if (!install_bios_grub_find(rootfs_dir, &bios_missing)) {
                        _cleanup_free_ char *what = strdup_printf("%s (GRUB for legacy BIOS)", strempty(bios_missing));
                        if (!what || append_missing(&missing, &n_missing, what) < 0)
                                return log_oom();
                }
        }
        if (n_missing > 0)
                return log_error_errno(ENOENT, "The ISO's rootfs.squashfs lacks %s the install needs: /%s%s. Use a "
                                               "Harvester ISO.",
                                       n_missing == 1 ? "a file" : "files", missing,
                                       n_missing > 1 ? " (each path inside the image)" : "");

        /* bootargs.cfg must hold the line the console goes into. */
        _cleanup_free_ char *bootargs = strdup_printf("%s/%s", rootfs_dir, IMAGE_BOOTARGS_CFG), *text = NULL;
        size_t len;
        if (!bootargs)
                return log_oom();
        r = read_full_file(bootargs, &text, &len);
        if (r < 0)
                return log_error_errno(r, "Cannot read the image's /%s: %s", IMAGE_BOOTARGS_CFG, strerror(-r));
        if (!strstr(text, IMAGE_CONSOLE_PARAMS))
                return log_error_errno(ENOENT, "The image's /%s has no line %s (the console of the installed system "
                                               "goes there). Use a Harvester ISO.",
                                       IMAGE_BOOTARGS_CFG, IMAGE_CONSOLE_PARAMS);

        /* The image bundles are optional; where the ISO has them they must be directories (no
         * iso_dir: the ISO was not mounted, and has none). */
        for (size_t i = 0; iso_dir && i < ELEMENTSOF(bundle_dirs); i++) {
                _cleanup_free_ char *d = strdup_printf("%s/%s", iso_dir, bundle_dirs[i]);
                struct stat st;
                if (!d)
                        return log_oom();
                if (lstat(d, &st) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return log_error_errno(errno, "Cannot read the ISO's %s: %s", bundle_dirs[i], strerror(errno));
                }
                n_checked++;
                if (!S_ISDIR(st.st_mode) || access(d, R_OK | X_OK) < 0)
                        return log_error_errno(ENOTDIR, "The ISO's %s is not a readable directory.", bundle_dirs[i]);
        }
        log_info("The OS image holds every file the install reads (%zu checked).", n_checked);
        return 0;
}

bool iso9660_available(void) {
        _cleanup_free_ char *fs = NULL;
        size_t len;
        if (read_full_file("/proc/filesystems", &fs, &len) == 0)
                for (char *line = strtok(fs, "\n"); line; line = strtok(NULL, "\n")) {
                        char *name = strrchr(line, '\t');
                        if (streq(name ? name + 1 : line, "iso9660"))
                                return true;
                }
        struct utsname u;
        if (uname(&u) < 0)
                return false;
        static const char *const exts[] = { ".ko", ".ko.xz", ".ko.zst", ".ko.gz" };
        for (size_t i = 0; i < ELEMENTSOF(exts); i++) {
                _cleanup_free_ char *ko = strdup_printf("/lib/modules/%s/kernel/fs/isofs/isofs%s", u.release, exts[i]);
                if (ko && access(ko, F_OK) == 0)
                        return true;
        }
        return false;
}

int iso_has_prefix(const char *iso_path, const char *prefix) {
        _cleanup_archive_read_ struct archive *a = NULL;
        struct archive_entry *e;
        int r = iso_open(iso_path, &a);
        if (r < 0)
                return r;
        size_t k = strlen(prefix);
        for (;;) {
                r = archive_read_next_header(a, &e);
                if (r == ARCHIVE_EOF)
                        return 0;
                if (r < ARCHIVE_WARN)
                        return log_error_errno(archive_neg_errno(a), "Cannot read the ISO \"%s\": %s", iso_path,
                                               strempty(archive_error_string(a)));
                const char *name = archive_entry_pathname(e);
                if (name && strncasecmp(strip_dot_slash(name), prefix, k) == 0)
                        return 1;
        }
}

void os_image_close(struct os_image *img) {
        if (img->rootfs_dir) {
                (void)install_umount(img->rootfs_dir);
                free(img->rootfs_dir);
                img->rootfs_dir = NULL;
        }
        if (img->iso_dir) {
                (void)install_umount(img->iso_dir);
                free(img->iso_dir);
                img->iso_dir = NULL;
        }
        if (img->extracted) {
                (void)unlink(img->extracted);
                free(img->extracted);
                img->extracted = NULL;
        }
        harvester_release_done(&img->release);
}

int os_image_open(const char *iso_path, const char *mnt_dir, struct os_image *ret) {
        struct os_image img = {};
        _cleanup_free_ char *iso_dir = strdup_printf("%s/iso", mnt_dir), *rootfs_dir = strdup_printf("%s/rootfs", mnt_dir);
        _cleanup_free_ char *squashfs = NULL;
        int r;

        if (!iso_dir || !rootfs_dir)
                return log_oom();
        if (iso9660_available()) {
                r = install_mount(iso_path, iso_dir, "iso9660", "loop,ro");
                if (r < 0)
                        return r;
                img.iso_dir = TAKE_PTR(iso_dir);
                squashfs = strdup_printf("%s/rootfs.squashfs", img.iso_dir);
        } else {
                /* Only on kernels without isofs (the installer initrd carries it): the image's root
                 * is all the install needs from the ISO when it has no bundles. */
                r = iso_has_prefix(iso_path, "bundle/");
                if (r < 0)
                        return r;
                if (r > 0)
                        return log_error_errno(ENODEV, "This kernel cannot mount iso9660, and the ISO's image "
                                                       "bundles (bundle/) are read from the mounted ISO. Boot an "
                                                       "installer initrd that carries the isofs module.");
                _cleanup_free_ char *dir = strdup(iso_path);
                if (!dir)
                        return log_oom();
                char *slash = strrchr(dir, '/');
                squashfs = strdup_printf("%s/rootfs.squashfs", slash ? (*slash = 0, dir) : ".");
                if (!squashfs)
                        return log_oom();
                log_info("This kernel cannot mount iso9660: extracting rootfs.squashfs from the ISO to mount it.");
                r = iso_extract_file(iso_path, "rootfs.squashfs", squashfs);
                if (r < 0)
                        return r;
                img.extracted = strdup(squashfs);
                if (!img.extracted) {
                        (void)unlink(squashfs);
                        return log_oom();
                }
        }
        if (!squashfs) {
                r = log_oom();
                goto fail;
        }
        r = install_mount(squashfs, rootfs_dir, "squashfs", "loop,ro");
        if (r < 0)
                goto fail;
        img.rootfs_dir = TAKE_PTR(rootfs_dir);
        r = os_image_check(img.iso_dir, img.rootfs_dir);
        if (r < 0)
                goto fail;
        r = harvester_release_read(img.rootfs_dir, &img.release);
        if (r < 0)
                goto fail;
        r = harvester_release_check(&img.release);
        if (r < 0)
                goto fail;
        if (img.iso_dir) { /* else: the ISO has no bundle/ (checked above) */
                r = preload_check(img.iso_dir, img.rootfs_dir);
                if (r < 0)
                        goto fail;
        }
        *ret = img;
        return 0;
fail:
        os_image_close(&img);
        return r;
}
