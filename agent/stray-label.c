/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every block device of /sys/class/block is probed with libblkid (superblocks only, read-only);
 * a file system labelled HARV_LH_DEFAULT outside the disks to keep loses its label through
 * tune2fs -L "", which rewrites the superblock's volume name and nothing else. The probe is
 * repeated afterwards: tune2fs may first replay the journal and leave the label (v1.1.2 runs it
 * twice for that reason), so it is run a second time when the label is still there.
 */
#include <blkid/blkid.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "format.h"
#include "log.h"
#include "stray-label.h"

static inline void blkid_free_probep(blkid_probe *p) { if (*p) blkid_free_probe(*p); }
static inline void closedirp(DIR **d) { if (*d) closedir(*d); }

/* The file system type and label of node (both malloc'ed, NULL when none). 0, or -errno when the
 * device cannot be opened or probed (no medium, an empty loop device ...). */
static int probe_label(const char *node, char **ret_type, char **ret_label) {
        _cleanup_(closep) int fd = open(node, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        _cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();
        if (!pr)
                return -ENOMEM;
        errno = 0;
        if (blkid_probe_set_device(pr, fd, 0, 0) < 0)
                return errno > 0 ? -errno : -EIO;
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_LABEL | BLKID_SUBLKS_TYPE);
        blkid_probe_enable_partitions(pr, 0);
        int r = blkid_do_safeprobe(pr);
        *ret_type = *ret_label = NULL;
        if (r != 0) /* 1: nothing, -2: ambiguous, -1: error */
                return r < 0 && r != -2 ? -EIO : 0;
        const char *type = NULL, *label = NULL;
        (void)blkid_probe_lookup_value(pr, "TYPE", &type, NULL);
        (void)blkid_probe_lookup_value(pr, "LABEL", &label, NULL);
        *ret_type = type ? strdup(type) : NULL;
        *ret_label = label ? strdup(label) : NULL;
        if ((type && !*ret_type) || (label && !*ret_label)) {
                free(*ret_type);
                free(*ret_label);
                *ret_type = *ret_label = NULL;
                return -ENOMEM;
        }
        return 0;
}

static bool is_ext(const char *type) {
        return streq_ptr(type, "ext2") || streq_ptr(type, "ext3") || streq_ptr(type, "ext4");
}

static int clear_one(const char *node, const char *type) {
        char *argv[] = { (char *)"tune2fs", (char *)"-L", (char *)"", (char *)node, NULL };
        for (int attempt = 1; attempt <= 2; attempt++) {
                _cleanup_free_ char *out = NULL;
                int r = run_command(argv, &out);
                if (r == -ENOENT)
                        return log_error_errno(r, "tune2fs is not installed: the label %s of %s cannot be cleared "
                                                  "(e2fsprogs provides it).", STRAY_LABEL, node);
                if (r < 0)
                        return log_error_errno(r, "Cannot run tune2fs for %s: %s", node, strerror(-r));
                if (r != 0)
                        log_warning("tune2fs -L \"\" %s exited with status %d: %s", node, r, strempty(out));
                _cleanup_free_ char *t = NULL, *label = NULL;
                r = probe_label(node, &t, &label);
                if (r < 0)
                        return log_error_errno(r, "Cannot read %s back after clearing its label: %s", node, strerror(-r));
                if (!streq_ptr(label, STRAY_LABEL))
                        return 0;
        }
        return log_error_errno(EIO, "The %s file system on %s keeps its label %s after tune2fs -L \"\" (twice). "
                                    "Clear it by hand or remove that disk, then install again.",
                               type, node, STRAY_LABEL);
}

static bool virtual_device(const char *name) {
        return strncmp(name, "loop", 4) == 0 || strncmp(name, "ram", 3) == 0 || strncmp(name, "zram", 4) == 0;
}

int stray_labels_clear(const char *const *keep_disks, size_t n_keep, char *const *only, unsigned *ret_cleared) {
        dev_t keep[8];
        unsigned cleared = 0;
        int r;

        if (n_keep > ELEMENTSOF(keep))
                return log_error_errno(E2BIG, "Internal error: too many disks to keep.");
        for (size_t i = 0; i < n_keep; i++) {
                struct stat st;
                if (stat(keep_disks[i], &st) < 0 || !S_ISBLK(st.st_mode))
                        return log_error_errno(errno ?: ENOTBLK, "Cannot stat the disk %s: %s", keep_disks[i],
                                               strerror(errno ?: ENOTBLK));
                keep[i] = st.st_rdev;
        }

        _cleanup_(closedirp) DIR *dir = opendir("/sys/class/block");
        if (!dir)
                return log_error_errno(errno, "Cannot list /sys/class/block: %s", strerror(errno));
        for (struct dirent *de; (de = readdir(dir));) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *node = strdup_printf("/dev/%s", de->d_name);
                if (!node)
                        return log_oom();
                if (only ? !strv_contains(only, node) : virtual_device(de->d_name))
                        continue;
                struct stat st;
                if (stat(node, &st) < 0 || !S_ISBLK(st.st_mode))
                        continue; /* no device node (yet): nothing to probe */
                dev_t whole = 0;
                if (blkid_devno_to_wholedisk(st.st_rdev, NULL, 0, &whole) < 0)
                        whole = st.st_rdev;
                bool kept = false;
                for (size_t i = 0; i < n_keep; i++)
                        kept = kept || keep[i] == st.st_rdev || keep[i] == whole;
                if (kept)
                        continue;

                _cleanup_free_ char *type = NULL, *label = NULL;
                if (probe_label(node, &type, &label) < 0 || !streq_ptr(label, STRAY_LABEL))
                        continue;
                if (!is_ext(type))
                        return log_error_errno(EMEDIUMTYPE,
                                               "%s holds a %s file system labelled %s: the installed node would mount it "
                                               "as its default disk. Relabel or wipe it (or remove the disk), then "
                                               "install again.",
                                               node, strempty(type), STRAY_LABEL);
                log_info("Clearing the label %s of the %s file system on %s (not the install or data disk; "
                         "only the label changes, no data).", STRAY_LABEL, type, node);
                r = clear_one(node, type);
                if (r < 0)
                        return r;
                cleared++;
        }
        if (ret_cleared)
                *ret_cleared = cleared;
        return 0;
}
