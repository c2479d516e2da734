/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OS onto the partitioned disk (REFERENCE.md section 3, HARVESTER-V1.1.md section 8):
 *
 *   COS_STATE/cOS/active.img      ext2, COS_ACTIVE, the ISO's rootfs.squashfs tree (mke2fs -d)
 *   COS_STATE/cOS/passive.img     a copy, relabelled COS_PASSIVE
 *   COS_RECOVERY/cOS/recovery.img a copy, relabelled COS_SYSTEM
 *   COS_GRUB/EFI/BOOT/            the ISO's UEFI loader and a grub.cfg that finds COS_STATE
 *   COS_STATE/grub2/grub.cfg      the boot menu: active (cos), passive (fallback), recovery
 *   COS_STATE/grub_oem_env        the menu entries' name
 *   COS_OEM/...                   the node's configuration (cloudconfig.c)
 *
 * install_system() only mounts and wires the steps together; each step works on directories.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libmount.h>
#include <spawn.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cloudconfig.h"
#include "install.h"
#include "log.h"
#include "validate.h"

extern char **environ;

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

/* Runs argv (searched in PATH) with stdin from /dev/null and its output read line by line into the
 * debug log. On failure the last line of its output goes to errbuf. 0, -ENOENT (no such program),
 * -EIO (it failed) or -errno. */
static int run_command(char *const argv[], char *errbuf, size_t errlen) {
        int pipefd[2];
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int r;

        errbuf[0] = 0;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        r = posix_spawn_file_actions_init(&fa);
        if (r != 0) {
                close(pipefd[0]);
                close(pipefd[1]);
                return -r;
        }
        r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
        if (r == 0)
                r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(pipefd[1]);
        if (r != 0) {
                close(pipefd[0]);
                snprintf(errbuf, errlen, "cannot run %s: %s", argv[0], strerror(r));
                return -r;
        }

        FILE *f = fdopen(pipefd[0], "re");
        if (f) {
                char *line = NULL;
                size_t cap = 0;
                ssize_t n;
                while ((n = getline(&line, &cap, f)) >= 0) {
                        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                                line[--n] = 0;
                        if (n == 0)
                                continue;
                        log_debug("%s: %s", argv[0], line);
                        snprintf(errbuf, errlen, "%s", line);
                }
                free(line);
                fclose(f);
        } else
                close(pipefd[0]);

        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (!errbuf[0] || WIFSIGNALED(status)) {
                if (WIFEXITED(status))
                        snprintf(errbuf, errlen, "%s exited with status %d", argv[0], WEXITSTATUS(status));
                else
                        snprintf(errbuf, errlen, "%s was killed by signal %d", argv[0], WTERMSIG(status));
        }
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

int install_copy_file(const char *src, const char *dst, mode_t mode) {
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return log_error_errno(errno, "Cannot open '%s': %s", src, strerror(errno));
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
        int r = run_command(argv, err, sizeof err);
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
        int r = run_command(argv, err, sizeof err);
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
/* GRUB */

/* The console of the installed system: install.tty, else the console the installer's kernel wrote
 * to (the last console= argument), as v1.1 takes the first active console. NULL: tty1 only. */
static const char *effective_tty(const struct config *c) {
        const char *tty = c->install.tty;
        if (isempty(tty)) {
                size_t n = strv_length(c->boot.consoles);
                tty = n > 0 ? c->boot.consoles[n - 1] : NULL;
        }
        if (tty && strncmp(tty, "/dev/", 5) == 0)
                tty += 5;
        return isempty(tty) ? NULL : tty;
}

/* config_validate() refuses both first (validate.h); these are the renderer's assertions. */
static bool tty_valid(const char *tty) {
        return valid_console_name(tty);
}

/* Kernel arguments go into a GRUB script line: no newlines, nothing GRUB's shell would expand or
 * treat as syntax, quotes balanced. */
static bool kernel_args_valid(const char *s) {
        return !kernel_args_problem(s);
}

int install_render_grub_cfg(const struct config *c, char **ret) {
        const char *tty = effective_tty(c);
        const char *extra = c->os.additional_kernel_arguments;
        _cleanup_free_ char *console = NULL;
        unsigned serial_unit = 0, serial_speed = 115200;
        bool serial = false;

        if (tty && !tty_valid(tty))
                return log_error_errno(EINVAL, "install.tty \"%s\" is not a console name such as ttyS0,115200n8.", tty);
        if (!isempty(extra) && !kernel_args_valid(extra))
                return log_error_errno(EINVAL, "os.additional_kernel_arguments \"%s\" %s.", extra,
                                       kernel_args_problem(extra));
        if (tty && !streq(tty, "tty1") && !streq(tty, "console")) {
                console = strdup_printf("console=%s console=tty1", tty);
                if (strncmp(tty, "ttyS", 4) == 0 && isdigit((unsigned char)tty[4])) {
                        serial = true;
                        serial_unit = (unsigned)strtoul(tty + 4, NULL, 10);
                        const char *comma = strchr(tty, ',');
                        if (comma && isdigit((unsigned char)comma[1]))
                                serial_speed = (unsigned)strtoul(comma + 1, NULL, 10);
                }
        } else
                console = strdup("console=tty1");
        if (!console)
                return log_oom();

        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return log_oom();

        fputs("# The boot menu of the installed Harvester system, written by harvester-install-agent.\n"
              "# Entries: cos (active.img, the default), fallback (passive.img), recovery (recovery.img).\n"
              "set timeout=5\n"
              "set default=0\n"
              "set fallback=\"1 2\"\n"
              "insmod part_gpt\n"
              "insmod ext2\n"
              "insmod loopback\n",
              f);
        if (serial)
                fprintf(f,
                        "serial --unit=%u --speed=%u\n"
                        "terminal_input serial console\n"
                        "terminal_output serial console\n",
                        serial_unit, serial_speed);
        fputs("\n"
              "# /grub_oem_env (on COS_STATE) names the entries; /grubenv on COS_OEM keeps the choice\n"
              "# (saved_entry, or next_entry for one boot).\n"
              "if [ -f /grub_oem_env ]; then\n"
              "  load_env -f /grub_oem_env\n"
              "fi\n"
              "search --no-floppy --label --set=oem_blk COS_OEM\n"
              "if [ -n \"${oem_blk}\" ]; then\n"
              "  if [ -f \"(${oem_blk})/grubenv\" ]; then\n"
              "    load_env -f \"(${oem_blk})/grubenv\"\n"
              "  fi\n"
              "fi\n"
              "if [ -n \"${next_entry}\" ]; then\n"
              "  set default=\"${next_entry}\"\n"
              "  set next_entry=\n"
              "  if [ -n \"${oem_blk}\" ]; then\n"
              "    save_env -f \"(${oem_blk})/grubenv\" next_entry\n"
              "  fi\n"
              "elif [ -n \"${saved_entry}\" ]; then\n"
              "  set default=\"${saved_entry}\"\n"
              "fi\n"
              "if [ -n \"${default_menu_entry}\" ]; then\n"
              "  set display_name=\"${default_menu_entry}\"\n"
              "else\n"
              "  set display_name=\"Harvester\"\n"
              "fi\n",
              f);

        static const struct {
                const char *id, *title, *fs_label, *img, *label, *extra_var;
        } entries[] = {
                { "cos", "${display_name}", "COS_STATE", "/cOS/active.img", "COS_ACTIVE", "extra_active_cmdline" },
                { "fallback", "${display_name} (fallback)", "COS_STATE", "/cOS/passive.img", "COS_PASSIVE",
                  "extra_passive_cmdline" },
                { "recovery", "${display_name} recovery", "COS_RECOVERY", "/cOS/recovery.img", "COS_SYSTEM",
                  "extra_recovery_cmdline" },
        };
        /* After the fixed arguments: os.additional_kernel_arguments, then the grubenv variables
         * elemental-based systems use to add arguments (empty unless set with grub2-editenv). */
        for (size_t i = 0; i < ELEMENTSOF(entries); i++)
                fprintf(f,
                        "\n"
                        "menuentry \"%s\" --id %s {\n"
                        "  search --no-floppy --label --set=root %s\n"
                        "  loopback loop0 %s\n"
                        "  linux (loop0)/boot/vmlinuz %s root=LABEL=%s cos-img/filename=%s panic=0 net.ifnames=1 "
                        "rd.cos.oemtimeout=120 rd.cos.oemlabel=COS_OEM audit=1 audit_backlog_limit=8192 "
                        "intel_iommu=on amd_iommu=on iommu=pt%s%s ${extra_cmdline} ${%s}\n"
                        "  initrd (loop0)/boot/initrd\n"
                        "}\n",
                        entries[i].title, entries[i].id, entries[i].fs_label, entries[i].img, console,
                        entries[i].label, entries[i].img, isempty(extra) ? "" : " ", strempty(extra),
                        entries[i].extra_var);
        fputs("\n"
              "if [ -f /grubcustom ]; then\n"
              "  source /grubcustom\n"
              "fi\n",
              f);

        bool failed = ferror(f);
        if (fclose(f) != 0 || failed) {
                free(buf);
                return log_oom();
        }
        *ret = buf;
        return 0;
}

/* The loader's grub.cfg: the loader's prefix is its own directory on COS_GRUB. */
static const char grub_stub_cfg[] =
        "# Written by harvester-install-agent: the boot menu is on COS_STATE.\n"
        "search --no-floppy --label --set=root COS_STATE\n"
        "set prefix=($root)/grub2\n"
        "configfile ($root)/grub2/grub.cfg\n";

/* Copies the regular files of src_dir (none when it does not exist) into dst_dir, made if needed,
 * except dot files and the names in skip (compared without case, as on FAT). Adds the bytes copied
 * to *ret_bytes when given. */
static int copy_dir_files(const char *src_dir, const char *dst_dir, const char *const *skip, uint64_t *ret_bytes) {
        _cleanup_closedir_ DIR *d = opendir(src_dir);
        if (!d) {
                if (errno == ENOENT)
                        return 0;
                return log_error_errno(errno, "Cannot read the directory '%s': %s", src_dir, strerror(errno));
        }
        int r = mkdir_p(dst_dir, 0755);
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
                if (!s || !t)
                        return log_oom();
                struct stat st;
                if (stat(s, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                r = install_copy_file(s, t, 0644);
                if (r < 0)
                        return r;
                if (ret_bytes)
                        *ret_bytes += (uint64_t)st.st_size;
        }
        if (errno != 0)
                return log_error_errno(errno, "Cannot read the directory '%s': %s", src_dir, strerror(errno));
        return 0;
}

static int copy_loader_dir(const char *loader_path, const char *boot_dir) {
        _cleanup_free_ char *src_dir = strdup(loader_path);
        if (!src_dir)
                return log_oom();
        char *slash = strrchr(src_dir, '/');
        if (slash)
                *slash = 0;
        else
                strcpy(src_dir, ".");

        /* The loader itself, under the name UEFI firmware boots without an NVRAM entry. */
        _cleanup_free_ char *dst = path_join(boot_dir, "BOOTX64.EFI");
        if (!dst)
                return log_oom();
        int r = install_copy_file(loader_path, dst, 0644);
        if (r < 0)
                return r;

        /* What a shim loads next to itself (grub, MokManager), when the ISO has it. */
        const char *loader_name = strrchr(loader_path, '/');
        loader_name = loader_name ? loader_name + 1 : loader_path;
        return copy_dir_files(src_dir, boot_dir, (const char *const[]){ "grub.cfg", loader_name, "BOOTX64.EFI", NULL },
                              NULL);
}

int install_write_grub(const struct config *c, const char *efi_dir, const char *state_dir, const char *loader_path,
                       const char *entry_name) {
        _cleanup_free_ char *boot_dir = strdup_printf("%s/EFI/BOOT", efi_dir);
        _cleanup_free_ char *grub_dir = path_join(state_dir, "grub2");
        _cleanup_free_ char *stub = NULL, *cfg_path = NULL, *env_path = NULL, *cfg = NULL;
        int r;

        if (!boot_dir || !grub_dir)
                return log_oom();
        r = install_render_grub_cfg(c, &cfg);
        if (r < 0)
                return r;

        r = mkdir_p(boot_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Cannot make '%s': %s", boot_dir, strerror(-r));
        r = copy_loader_dir(loader_path, boot_dir);
        if (r < 0)
                return r;
        stub = path_join(boot_dir, "grub.cfg");
        if (!stub)
                return log_oom();
        r = write_file_plain(stub, grub_stub_cfg, strlen(grub_stub_cfg), 0644);
        if (r < 0)
                return log_error_errno(r, "Cannot write '%s': %s", stub, strerror(-r));

        r = mkdir_p(grub_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Cannot make '%s': %s", grub_dir, strerror(-r));
        cfg_path = path_join(grub_dir, "grub.cfg");
        if (!cfg_path)
                return log_oom();
        r = write_file_atomic(cfg_path, cfg, strlen(cfg), 0644);
        if (r < 0)
                return log_error_errno(r, "Cannot write '%s': %s", cfg_path, strerror(-r));

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
        env_path = path_join(state_dir, "grub_oem_env");
        if (!env_path)
                return log_oom();
        r = write_file_atomic(env_path, env, sizeof env, 0644);
        if (r < 0)
                return log_error_errno(r, "Cannot write '%s': %s", env_path, strerror(-r));
        log_info("Installed the UEFI loader and grub.cfg (console: %s).", effective_tty(c) ?: "tty1");
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Image bundles and the log */

int install_preload_images(const char *iso_dir, const char *persistent_dir) {
        static const struct {
                const char *src, *dst;
        } bundles[] = {
                { "bundle/rancherd/images", ".state/var-lib-rancher.bind/agent/images" },
                { "bundle/harvester/images", ".state/var-lib-rancher.bind/rke2/agent/images" },
        };
        uint64_t start = now_usec(), bytes = 0;
        for (size_t i = 0; i < ELEMENTSOF(bundles); i++) {
                _cleanup_free_ char *s = path_join(iso_dir, bundles[i].src), *t = path_join(persistent_dir, bundles[i].dst);
                if (!s || !t)
                        return log_oom();
                int r = copy_dir_files(s, t, NULL, &bytes);
                if (r < 0)
                        return r;
        }
        if (bytes > 0) {
                char b[32];
                log_info("Copied the ISO's container image bundles (%s) to COS_PERSISTENT in %.1f s.",
                         format_bytes(b, sizeof b, bytes), seconds_since(start));
        } else
                log_info("The ISO has no container image bundles to preload.");
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

static int find_loader(const char *iso_dir, char **ret) {
        static const char *const names[] = { "EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/bootx64.efi", "efi/boot/bootx64.efi" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char *p = path_join(iso_dir, names[i]);
                if (!p)
                        return log_oom();
                if (access(p, R_OK) == 0) {
                        *ret = p;
                        return 0;
                }
                free(p);
        }
        return log_error_errno(ENOENT, "The ISO has no UEFI loader EFI/BOOT/BOOTX64.EFI.");
}

int install_system(const struct config *c, const struct disk_plan *p, const struct iso_image *iso) {
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
        /* Under mnt/: the tmpfs holding the ISO is INSTALL_RUN_DIR/iso (tmpfs.h). */
        const char *iso_dir = INSTALL_MNT_DIR "/iso", *rootfs_dir = INSTALL_MNT_DIR "/rootfs";
        struct mounts mounts = {};
        struct harvester_release rel = {};
        _cleanup_free_ char *squashfs = NULL, *loader = NULL;
        uint64_t start = now_usec(), t;
        int r;

        r = cloudconfig_check(c);
        if (r < 0)
                return r;
        if (!iso || !iso->path)
                return log_error_errno(EINVAL, "No verified ISO to install from.");

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
        r = mounts_add(&mounts, iso->path, iso_dir, "iso9660", "loop,ro");
        if (r < 0)
                goto finish;
        squashfs = path_join(iso_dir, "rootfs.squashfs");
        if (!squashfs) {
                r = log_oom();
                goto finish;
        }
        r = mounts_add(&mounts, squashfs, rootfs_dir, "squashfs", "loop,ro");
        if (r < 0)
                goto finish;
        /* What grub.cfg boots: the kernel and initrd inside the image. */
        static const char *const boot_files[] = { "boot/vmlinuz", "boot/initrd" };
        for (size_t i = 0; i < ELEMENTSOF(boot_files); i++) {
                _cleanup_free_ char *f = path_join(rootfs_dir, boot_files[i]);
                if (!f) {
                        r = log_oom();
                        goto finish;
                }
                if (access(f, R_OK) < 0) {
                        r = log_error_errno(errno, "The ISO's rootfs.squashfs has no /%s (%s): the installed "
                                                   "system could not boot. Use a Harvester ISO.",
                                            boot_files[i], strerror(errno));
                        goto finish;
                }
        }
        r = harvester_release_read(rootfs_dir, &rel);
        if (r < 0)
                goto finish;
        if (rel.harvester)
                log_info("Installing %s (%s).", rel.os_name ?: "Harvester", rel.harvester);

        t = now_usec();
        r = install_make_images(rootfs_dir, INSTALL_MNT_DIR "/state", INSTALL_MNT_DIR "/recovery", INSTALL_IMAGE_MIB);
        if (r < 0)
                goto finish;
        log_info("OS images done in %.1f s.", seconds_since(t));

        r = find_loader(iso_dir, &loader);
        if (r < 0)
                goto finish;
        r = install_write_grub(c, INSTALL_MNT_DIR "/efi", INSTALL_MNT_DIR "/state", loader, rel.os_name);
        if (r < 0)
                goto finish;

        r = install_preload_images(iso_dir, INSTALL_MNT_DIR "/persistent");
        if (r < 0)
                goto finish;

        r = cloudconfig_write_oem_release(c, &rel, INSTALL_MNT_DIR "/oem");
        if (r < 0)
                goto finish;
        r = 0;
finish:
        harvester_release_done(&rel);
        {
                int q = mounts_release(&mounts);
                if (r == 0 && q < 0)
                        r = log_error_errno(q, "The installed file systems could not all be unmounted cleanly.");
        }
        if (r == 0)
                log_info("The OS, the boot loader and the node's configuration are on the disk (%.1f s).",
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
