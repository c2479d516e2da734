/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table (GPT, or msdos with install.force_mbr), written the unattended libfdisk way (util-linux
 * libfdisk/samples/mkpart.c, sfdisk.c): new context, assign the device read-write, create a "gpt" or
 * "dos" label, one partition per layout entry with explicit start, size, type and (GPT) name, the
 * msdos boot flag, write. Then the kernel is told: BLKRRPART, or when it
 * cannot parse the table (kernels without CONFIG_EFI_PARTITION, or a busy disk) one BLKPG ioctl per
 * partition, as partx and systemd-repart do.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libfdisk/libfdisk.h>
#include <linux/blkpg.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "log.h"
#include "partition.h"
#include "util.h"

static inline void fdisk_unref_contextp(struct fdisk_context **c) { if (*c) fdisk_unref_context(*c); }
static inline void fdisk_unref_partitionp(struct fdisk_partition **p) { if (*p) fdisk_unref_partition(*p); }
static inline void fdisk_unref_parttypep(struct fdisk_parttype **t) { if (*t) fdisk_unref_parttype(*t); }
static inline void fdisk_unref_tablep(struct fdisk_table **t) { if (*t) fdisk_unref_table(*t); }
#define _cleanup_fdisk_context_ _cleanup_(fdisk_unref_contextp)
#define _cleanup_fdisk_partition_ _cleanup_(fdisk_unref_partitionp)
#define _cleanup_fdisk_parttype_ _cleanup_(fdisk_unref_parttypep)
#define _cleanup_fdisk_table_ _cleanup_(fdisk_unref_tablep)

/* libfdisk returns -errno mostly, but not always: map anything else to -EIO. */
static int fdisk_err(int r) {
        return r < 0 ? r : -EIO;
}

/* A context on fd; libfdisk does not close an fd it was given (fdisk_assign_device_by_fd). */
static int context_new(int fd, const char *path, bool readonly, struct fdisk_context **ret) {
        _cleanup_fdisk_context_ struct fdisk_context *cxt = fdisk_new_context();
        if (!cxt)
                return -ENOMEM;
        int r = fdisk_assign_device_by_fd(cxt, fd, path, readonly);
        if (r < 0)
                return r;
        fdisk_disable_dialogs(cxt, 1);
        *ret = TAKE_PTR(cxt);
        return 0;
}

int partition_write_table(int fd, const char *path, const struct layout *l) {
        _cleanup_fdisk_context_ struct fdisk_context *cxt = NULL;
        char b1[32], b2[32];
        int r;

        r = context_new(fd, path, false, &cxt);
        if (r < 0)
                return log_error_errno(r, "libfdisk cannot open %s: %s", path, strerror(-r));

        unsigned long ss = fdisk_get_sector_size(cxt);
        uint64_t bytes = (uint64_t)fdisk_get_nsectors(cxt) * ss;
        if (ss != l->sector_size || bytes != l->disk_bytes / ss * ss)
                return log_error_errno(EINVAL, "%s has %s in sectors of %lu bytes, but the layout was computed for %s in sectors of %u bytes.",
                                       path, format_bytes(b1, sizeof b1, bytes), ss,
                                       format_bytes(b2, sizeof b2, l->disk_bytes), l->sector_size);

        bool msdos = streq(l->table, LAYOUT_TABLE_MSDOS);
        const char *what = msdos ? "msdos partition table" : "GPT";
        /* The new first sector has no boot code: an old install's GRUB boot.img must not survive
         * (libfdisk keeps it by default). On BIOS the disk boots only once the install wrote its own. */
        if (fdisk_enable_bootbits_protection(cxt, 0) < 0)
                return log_oom();
        r = fdisk_create_disklabel(cxt, l->table);
        if (r < 0)
                return log_error_errno(fdisk_err(r), "Cannot create a %s on %s: %s", what, path, strerror(-fdisk_err(r)));
        struct fdisk_label *lb = fdisk_get_label(cxt, NULL);
        if (!lb)
                return log_error_errno(EIO, "libfdisk has no label for %s after creating a %s.", path, what);

        for (size_t i = 0; i < l->n_parts; i++) {
                const struct layout_part *p = &l->parts[i];
                _cleanup_fdisk_partition_ struct fdisk_partition *pa = fdisk_new_partition();
                _cleanup_fdisk_parttype_ struct fdisk_parttype *t = NULL;
                if (!pa)
                        return log_oom();
                t = fdisk_label_parse_parttype(lb, p->type); /* a GUID, or an msdos code in hex */
                if (!t)
                        return log_error_errno(EINVAL, "libfdisk does not know the partition type %s.", p->type);
                if (fdisk_partition_set_partno(pa, p->partno - 1) < 0 ||
                    fdisk_partition_set_start(pa, p->start / ss) < 0 ||
                    fdisk_partition_set_size(pa, p->size / ss) < 0 ||
                    fdisk_partition_size_explicit(pa, 1) < 0 ||
                    (!msdos && fdisk_partition_set_name(pa, p->name) < 0) ||
                    fdisk_partition_set_type(pa, t) < 0)
                        return log_oom();
                r = fdisk_add_partition(cxt, pa, NULL);
                if (r < 0)
                        return log_error_errno(fdisk_err(r), "Cannot add partition %u (%s, %s at %" PRIu64 " MiB) to the table for %s: %s",
                                               p->partno, p->name, format_bytes(b1, sizeof b1, p->size), p->start >> 20,
                                               path, strerror(-fdisk_err(r)));
                if (p->bootable) {
                        r = fdisk_toggle_partition_flag(cxt, p->partno - 1, DOS_FLAG_ACTIVE);
                        if (r < 0)
                                return log_error_errno(fdisk_err(r), "Cannot set the boot flag of partition %u on %s: %s",
                                                       p->partno, path, strerror(-fdisk_err(r)));
                }
        }

        r = fdisk_write_disklabel(cxt);
        if (r < 0)
                return log_error_errno(fdisk_err(r), "Cannot write the %s to %s: %s", what, path, strerror(-fdisk_err(r)));
        if (fsync(fd) < 0)
                return log_error_errno(errno, "Cannot flush the %s to %s: %s", what, path, strerror(errno));
        log_debug("Wrote a %s with %zu partitions to %s.", what, l->n_parts, path);
        return 0;
}

int partition_read_table(int fd, const char *path, char **ret_label, struct part_info **ret, size_t *ret_n) {
        _cleanup_fdisk_context_ struct fdisk_context *cxt = NULL;
        _cleanup_fdisk_table_ struct fdisk_table *tb = NULL;
        _cleanup_free_ struct part_info *parts = NULL;
        int r;

        r = context_new(fd, path, true, &cxt);
        if (r < 0)
                return r;
        if (!fdisk_has_label(cxt))
                return -ENOMEDIUM;
        struct fdisk_label *lb = fdisk_get_label(cxt, NULL);
        r = fdisk_get_partitions(cxt, &tb);
        if (r < 0)
                return fdisk_err(r);
        size_t n = fdisk_table_get_nents(tb);
        parts = calloc(n ? n : 1, sizeof *parts);
        if (!parts)
                return -ENOMEM;
        unsigned long ss = fdisk_get_sector_size(cxt);
        for (size_t i = 0; i < n; i++) {
                struct fdisk_partition *pa = fdisk_table_get_partition(tb, i);
                struct fdisk_parttype *t = fdisk_partition_get_type(pa);
                const char *name = fdisk_partition_get_name(pa);
                parts[i].partno = (unsigned)fdisk_partition_get_partno(pa) + 1;
                parts[i].start = (uint64_t)fdisk_partition_get_start(pa) * ss;
                parts[i].size = (uint64_t)fdisk_partition_get_size(pa) * ss;
                snprintf(parts[i].name, sizeof parts[i].name, "%s", strempty(name));
                if (t && fdisk_parttype_get_string(t))
                        snprintf(parts[i].type, sizeof parts[i].type, "%s", fdisk_parttype_get_string(t));
                else if (t) /* msdos: a code, no string */
                        snprintf(parts[i].type, sizeof parts[i].type, "%x", fdisk_parttype_get_code(t));
                parts[i].bootable = fdisk_partition_is_bootable(pa) == 1;
        }
        if (ret_label) {
                char *s = strdup(lb ? fdisk_label_get_name(lb) : "");
                if (!s)
                        return -ENOMEM;
                *ret_label = s;
        }
        *ret = TAKE_PTR(parts);
        *ret_n = n;
        return 0;
}

int partition_verify(int fd, const char *path, const struct layout *l) {
        _cleanup_free_ struct part_info *parts = NULL;
        _cleanup_free_ char *label = NULL;
        size_t n;
        int r = partition_read_table(fd, path, &label, &parts, &n);
        if (r < 0)
                return log_error_errno(r, "Cannot read back the partition table of %s: %s", path, strerror(-r));
        bool msdos = streq(l->table, LAYOUT_TABLE_MSDOS);
        if (!streq(label, l->table) || n != l->n_parts)
                return log_error_errno(EIO, "Read back from %s: a \"%s\" table with %zu partitions, not the \"%s\" table with %zu written.",
                                       path, label, n, l->table, l->n_parts);
        for (size_t i = 0; i < n; i++) {
                const struct layout_part *p = &l->parts[i];
                const char *type = parts[i].type;
                if (parts[i].partno != p->partno || parts[i].start != p->start || parts[i].size != p->size ||
                    !streq(parts[i].name, msdos ? "" : p->name) || strcasecmp(type, p->type) != 0 ||
                    parts[i].bootable != p->bootable)
                        return log_error_errno(EIO, "Read back from %s: partition %u is \"%s\" %s%s at %" PRIu64 "+%" PRIu64 ", not \"%s\" %s%s at %" PRIu64 "+%" PRIu64 ".",
                                               path, parts[i].partno, parts[i].name, parts[i].type, parts[i].bootable ? " (boot)" : "",
                                               parts[i].start, parts[i].size,
                                               p->name, p->type, p->bootable ? " (boot)" : "", p->start, p->size);
        }
        return 0;
}

static int read_sysfs_u64(const char *path, uint64_t *ret) {
        _cleanup_free_ char *s = NULL;
        int r = read_full_file(path, &s, NULL);
        if (r < 0)
                return r;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || end == s || (*end != '\n' && *end != 0))
                return -EINVAL;
        *ret = v;
        return 0;
}

int partition_kernel_list(const char *sysname, struct part_info **ret, size_t *ret_n, char ***ret_names) {
        _cleanup_free_ char *dir = strdup_printf("/sys/block/%s", sysname);
        _cleanup_free_ struct part_info *parts = NULL;
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0;
        if (!dir)
                return -ENOMEM;
        DIR *d = opendir(dir);
        if (!d)
                return -errno;
        struct dirent *de;
        int r = 0;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *pp = strdup_printf("%s/%s/partition", dir, de->d_name);
                _cleanup_free_ char *sp = strdup_printf("%s/%s/start", dir, de->d_name);
                _cleanup_free_ char *zp = strdup_printf("%s/%s/size", dir, de->d_name);
                uint64_t no, start, size;
                if (!pp || !sp || !zp) {
                        r = -ENOMEM;
                        break;
                }
                if (read_sysfs_u64(pp, &no) < 0)
                        continue; /* not a partition */
                if (read_sysfs_u64(sp, &start) < 0 || read_sysfs_u64(zp, &size) < 0)
                        continue; /* went away meanwhile */
                struct part_info *m = realloc(parts, (n + 1) * sizeof *parts);
                if (!m) {
                        r = -ENOMEM;
                        break;
                }
                parts = m;
                parts[n] = (struct part_info) { .partno = (unsigned)no, .start = start * 512, .size = size * 512 };
                r = strv_push(&names, de->d_name);
                if (r < 0)
                        break;
                n++;
        }
        closedir(d);
        if (r < 0)
                return r;
        /* In partition-number order, names alongside. */
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && parts[j - 1].partno > parts[j].partno; j--) {
                        struct part_info t = parts[j];
                        parts[j] = parts[j - 1];
                        parts[j - 1] = t;
                        char *s = names[j];
                        names[j] = names[j - 1];
                        names[j - 1] = s;
                }
        *ret = TAKE_PTR(parts);
        *ret_n = n;
        if (ret_names)
                *ret_names = TAKE_PTR(names);
        return 0;
}

static int blkpg(int fd, int op, unsigned partno, uint64_t start, uint64_t size) {
        struct blkpg_partition p = {
                .start = (long long)start,
                .length = (long long)size,
                .pno = (int)partno,
        };
        struct blkpg_ioctl_arg a = {
                .op = op,
                .datalen = sizeof p,
                .data = &p,
        };
        return ioctl(fd, BLKPG, &a) < 0 ? -errno : 0;
}

static const struct layout_part *layout_find_partno(const struct layout *l, unsigned partno) {
        for (size_t i = 0; l && i < l->n_parts; i++)
                if (l->parts[i].partno == partno)
                        return &l->parts[i];
        return NULL;
}

/* Does the kernel see exactly l's partitions? */
static bool kernel_matches(const struct part_info *k, size_t nk, const struct layout *l) {
        size_t want = l ? l->n_parts : 0;
        if (nk != want)
                return false;
        for (size_t i = 0; i < nk; i++) {
                const struct layout_part *p = layout_find_partno(l, k[i].partno);
                if (!p || p->start != k[i].start || p->size != k[i].size)
                        return false;
        }
        return true;
}

static int node_ready(const char *sysname, const char *pname, char **ret_node) {
        _cleanup_free_ char *devfile = strdup_printf("/sys/block/%s/%s/dev", sysname, pname);
        _cleanup_free_ char *node = strdup_printf("/dev/%s", pname);
        _cleanup_free_ char *s = NULL;
        unsigned ma, mi;
        struct stat st;
        if (!devfile || !node)
                return -ENOMEM;
        int r = read_full_file(devfile, &s, NULL);
        if (r < 0)
                return r;
        if (sscanf(s, "%u:%u", &ma, &mi) != 2)
                return -EINVAL;
        if (stat(node, &st) < 0)
                return -errno;
        if (!S_ISBLK(st.st_mode) || st.st_rdev != makedev(ma, mi))
                return -ESTALE;
        *ret_node = TAKE_PTR(node);
        return 0;
}

/* devtmpfs creates partition nodes itself; only where /dev lacks one (no devtmpfs) make it. */
static int node_create(const char *sysname, const char *pname) {
        _cleanup_free_ char *devfile = strdup_printf("/sys/block/%s/%s/dev", sysname, pname);
        _cleanup_free_ char *node = strdup_printf("/dev/%s", pname);
        _cleanup_free_ char *s = NULL;
        unsigned ma, mi;
        if (!devfile || !node)
                return -ENOMEM;
        int r = read_full_file(devfile, &s, NULL);
        if (r < 0)
                return r;
        if (sscanf(s, "%u:%u", &ma, &mi) != 2)
                return -EINVAL;
        (void)unlink(node);
        if (mknod(node, S_IFBLK | 0600, makedev(ma, mi)) < 0)
                return -errno;
        log_warning("%s did not appear in /dev (no devtmpfs?); created it (%u:%u).", node, ma, mi);
        return 0;
}

/* The kernel has partitions k (named knames); l is what it must have: stale ones deleted, missing
 * ones added, one BLKPG ioctl each. */
static int kernel_sync_blkpg(int fd, const char *node, const struct layout *l, const struct part_info *k, size_t nk,
                             char *const *knames) {
        int r;
        for (size_t i = 0; i < nk; i++) {
                const struct layout_part *p = layout_find_partno(l, k[i].partno);
                if (p && p->start == k[i].start && p->size == k[i].size)
                        continue;
                r = blkpg(fd, BLKPG_DEL_PARTITION, k[i].partno, 0, 0);
                if (r < 0)
                        return log_error_errno(r, "Cannot remove the stale partition /dev/%s from the kernel's view of %s: %s%s",
                                               knames[i], node, strerror(-r),
                                               r == -EBUSY ? " (it is in use: mounted, swap or held by another device)" : "");
                log_debug("Removed stale partition /dev/%s from the kernel's view.", knames[i]);
        }
        for (size_t i = 0; l && i < l->n_parts; i++) {
                const struct layout_part *p = &l->parts[i];
                bool have = false;
                for (size_t j = 0; j < nk; j++)
                        if (k[j].partno == p->partno && k[j].start == p->start && k[j].size == p->size)
                                have = true;
                if (have)
                        continue;
                r = blkpg(fd, BLKPG_ADD_PARTITION, p->partno, p->start, p->size);
                if (r < 0)
                        return log_error_errno(r, "Cannot tell the kernel about partition %u of %s (BLKPG): %s",
                                               p->partno, node, strerror(-r));
        }
        return 0;
}

int partition_kernel_sync(int fd, const char *node, const char *sysname, const struct layout *l,
                          uint64_t timeout_usec, char *ret_nodes[_PART_MAX]) {
        _cleanup_free_ struct part_info *k = NULL;
        _cleanup_strv_free_ char **knames = NULL;
        size_t nk = 0;
        int r;

        (void)fsync(fd);
        int rr = ioctl(fd, BLKRRPART) < 0 ? -errno : 0;
        r = partition_kernel_list(sysname, &k, &nk, &knames);
        if (r < 0)
                return log_error_errno(r, "Cannot list the partitions the kernel has for %s: %s", node, strerror(-r));
        /* Success does not mean the kernel sees the table: without a parser for it (a kernel without
         * CONFIG_EFI_PARTITION, or a loop device with partition scanning on such a kernel) it
         * re-reads and finds nothing. So compare at once, and tell it by BLKPG when it differs. */
        if (rr == 0 && kernel_matches(k, nk, l))
                log_debug("The kernel re-read the partition table of %s.", node);
        else {
                if (rr < 0)
                        log_debug("Re-reading the partition table of %s failed (%s); telling the kernel partition by partition (BLKPG).",
                                  node, strerror(-rr));
                else
                        log_debug("The kernel re-read the partition table of %s but sees %zu partitions, not the %zu written; telling it partition by partition (BLKPG).",
                                  node, nk, l ? l->n_parts : 0);
                r = kernel_sync_blkpg(fd, node, l, k, nk, knames);
                if (r < 0)
                        return r;
        }

        /* Wait for the kernel's view to match, and for every node in /dev. */
        uint64_t deadline = now_usec() + timeout_usec;
        bool created = false;
        for (;;) {
                free(k);
                k = NULL;
                strv_free(knames);
                knames = NULL;
                r = partition_kernel_list(sysname, &k, &nk, &knames);
                if (r < 0)
                        return log_error_errno(r, "Cannot list the partitions the kernel has for %s: %s", node, strerror(-r));
                bool ok = kernel_matches(k, nk, l);
                char *nodes[_PART_MAX] = {};
                for (size_t i = 0; ok && i < nk; i++) {
                        const struct layout_part *p = layout_find_partno(l, k[i].partno);
                        size_t idx = (size_t)(p - l->parts);
                        r = node_ready(sysname, knames[i], &nodes[idx]);
                        if (r == -ENOMEM)
                                return log_oom();
                        if (r < 0)
                                ok = false;
                }
                if (ok) {
                        for (size_t i = 0; i < _PART_MAX; i++)
                                if (ret_nodes)
                                        ret_nodes[i] = nodes[i];
                                else
                                        free(nodes[i]);
                        return 0;
                }
                for (size_t i = 0; i < _PART_MAX; i++)
                        free(nodes[i]);

                uint64_t now = now_usec();
                if (!created && kernel_matches(k, nk, l) && now + timeout_usec / 2 >= deadline) {
                        /* Half the time gone, the kernel has the partitions, /dev does not. */
                        for (size_t i = 0; i < nk; i++) {
                                char *tmp = NULL;
                                if (node_ready(sysname, knames[i], &tmp) < 0) {
                                        r = node_create(sysname, knames[i]);
                                        if (r < 0)
                                                return log_error_errno(r, "Cannot create /dev/%s: %s", knames[i], strerror(-r));
                                }
                                free(tmp);
                        }
                        created = true;
                        continue;
                }
                if (now >= deadline) {
                        _cleanup_free_ char *have = strv_join(knames, " ");
                        return log_error_errno(ETIMEDOUT, "The kernel's partitions of %s did not match the table written within %" PRIu64 " s (it has: %s).",
                                               node, timeout_usec / 1000000, isempty(have) ? "none" : have);
                }
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}
