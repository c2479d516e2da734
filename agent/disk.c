/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Disks: one pipeline over one plan (systemd-repart's shape). disks_prepare() finds every disk the
 * configuration names, checks each (whole disk, writable, not the installer's own medium, not
 * mounted, not swap, not held; then opened O_EXCL) and computes the layout: nothing is written.
 * disks_write() wipes, partitions and formats; if anything fails after its first write it wipes
 * what it wrote, so that the machine never boots a half-installed disk.
 *
 * About O_EXCL: the kernel refuses an exclusive open of a partition while its whole disk is held
 * exclusively, and mkfs and mount both open partitions exclusively. So the plan holds every disk
 * O_EXCL from the checks until the new table is written and the kernel knows the partitions; the
 * install and data disks are then released for mkfs (and for the later stages' mounts), while
 * disks that are only wiped stay held until the plan is freed.
 *
 * About udev (systemd's docs/BLOCK_DEVICE_LOCKING.md): when a program closes a disk it had open
 * for writing, udev's "watch" rule re-reads the partition table, and the kernel drops and re-adds
 * every partition node, under mkfs's feet ("mkfs.vfat: unable to open /dev/sda1"). udev leaves
 * alone a whole disk on which someone holds a BSD flock. So before the first write every disk of
 * the plan is locked through a second descriptor (read-only, not O_EXCL, so that closing the O_EXCL
 * one for mkfs keeps the lock), and the lock is held until the plan is freed: through the wipe,
 * the table, every mkfs, the install stage's mounts and a rollback's table change.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libmount/libmount.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "disk.h"
#include "diskselect.h"
#include "format.h"
#include "interrupt.h"
#include "layout.h"
#include "log.h"
#include "partition.h"
#include "util.h"
#include "stray-label.h"
#include "wipe.h"

#define DISK_WAIT_DEFAULT_USEC (UINT64_C(60) * 1000000)
#define PART_WAIT_MIN_USEC (UINT64_C(10) * 1000000)

static uint64_t wait_override_usec;

void disks_set_wait_timeout(uint64_t usec) {
        wait_override_usec = usec;
}

static uint64_t wait_timeout(void) {
        if (wait_override_usec)
                return wait_override_usec;
        const char *e = getenv("HARVESTER_INSTALL_DISK_WAIT");
        int64_t v;
        if (e && parse_int64(e, &v) >= 0 && v >= 0)
                return (uint64_t)v * 1000000;
        return DISK_WAIT_DEFAULT_USEC;
}

struct disk {
        char *key;          /* the configuration key that named it, for messages */
        char *config_name;  /* as configured */
        char *reason;       /* why it is wiped (wipe-only disks) */
        char *node;         /* "/dev/sda" */
        char *sysname;      /* "sda" */
        dev_t devnum;
        uint64_t size;
        uint32_t sector_size;
        struct disk_identity id; /* by-id name, model, serial, WWN (printed, and compared) */
        int fd;             /* O_EXCL while held, else -1 */
        int lock_fd;        /* read-only, not O_EXCL, holding flock(LOCK_EX) from the first write on */
        bool written;       /* something was written to it */
        struct holder *holders;
        size_t n_holders;
        char **listing;     /* chosen by a selector: every disk's line, "* " before this one */
        char *select_name;  /* chosen by a selector: its name among the disks the selector saw */
};

struct disk_plan {
        bool dry_run;
        struct disk install;
        struct disk data;
        bool has_data;
        struct disk *wipe;
        size_t n_wipe;
        struct layout layout;
        char *nodes[_PART_MAX];
};

static void disk_done(struct disk *d) {
        free(d->key);
        free(d->config_name);
        free(d->reason);
        free(d->node);
        free(d->sysname);
        disk_identity_done(&d->id);
        if (d->fd >= 0)
                close(d->fd);
        if (d->lock_fd >= 0)
                close(d->lock_fd); /* udev may look at the disk again */
        holders_free(d->holders, d->n_holders);
        strv_free(d->listing);
        free(d->select_name);
        *d = (struct disk) { .fd = -1, .lock_fd = -1 };
}

void disk_plan_free(struct disk_plan *p) {
        if (!p)
                return;
        disk_done(&p->install);
        disk_done(&p->data);
        for (size_t i = 0; i < p->n_wipe; i++)
                disk_done(&p->wipe[i]);
        free(p->wipe);
        for (size_t i = 0; i < _PART_MAX; i++)
                free(p->nodes[i]);
        free(p);
}

/* <root>/sys/block/<name>/<attr>, first line, trailing blanks removed; NULL when absent. */
char *disk_sysfs_attr(const char *root, const char *name, const char *attr) {
        _cleanup_free_ char *path = strdup_printf("%s/sys/block/%s/%s", root, name, attr);
        char *s = NULL;
        if (!path || read_full_file(path, &s, NULL) < 0)
                return NULL;
        s[strcspn(s, "\n")] = 0;
        /* trim trailing blanks (SCSI models are space-padded) */
        for (size_t n = strlen(s); n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'); n--)
                s[n - 1] = 0;
        return s;
}

static char *sysfs_read(const char *name, const char *attr) {
        return disk_sysfs_attr("", name, attr);
}

static uint64_t sysfs_size(const char *sysname) {
        _cleanup_free_ char *s = sysfs_read(sysname, "size");
        int64_t v;
        return s && parse_int64(s, &v) >= 0 && v > 0 ? (uint64_t)v * 512 : 0;
}

/* The whole-disk sysfs name for a block device number, and whether it is a partition. */
static int sysfs_name_of(dev_t dev, char **ret_name, char **ret_parent, unsigned *ret_partno) {
        char link[64];
        snprintf(link, sizeof link, "/sys/dev/block/%u:%u", major(dev), minor(dev));
        _cleanup_free_ char *real = realpath(link, NULL);
        if (!real)
                return -errno;
        _cleanup_free_ char *pf = strdup_printf("%s/partition", real);
        _cleanup_free_ char *pn = NULL;
        if (!pf)
                return -ENOMEM;
        char *slash = strrchr(real, '/');
        char *name = strdup(slash + 1);
        if (!name)
                return -ENOMEM;
        if (read_full_file(pf, &pn, NULL) >= 0) {
                *slash = 0;
                char *parent = strdup(strrchr(real, '/') + 1);
                if (!parent) {
                        free(name);
                        return -ENOMEM;
                }
                *ret_parent = parent;
                *ret_partno = (unsigned)strtoul(pn, NULL, 10);
        } else {
                *ret_parent = NULL;
                *ret_partno = 0;
        }
        *ret_name = name;
        return 0;
}

/* Whole disk holding device dev (itself when a whole disk), or NULL. */
static char *whole_disk_of(dev_t dev) {
        char *name = NULL, *parent = NULL;
        unsigned partno;
        if (major(dev) == 0 || sysfs_name_of(dev, &name, &parent, &partno) < 0)
                return NULL;
        if (parent) {
                free(name);
                return parent;
        }
        return name;
}

/* The disks the installer itself runs from: those holding /, a dracut live medium, and the files
 * behind loop devices serving them. */
static int installer_media(char ***ret) {
        static const char *const paths[] = { "/", "/run/initramfs/live", "/run/initramfs/isoscan",
                                             "/run/rootfsbase", "/run/initramfs/livedev" };
        _cleanup_strv_free_ char **l = NULL;
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                struct stat st;
                if (stat(paths[i], &st) < 0)
                        continue;
                dev_t dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
                _cleanup_free_ char *w = whole_disk_of(dev);
                if (!w)
                        continue;
                /* A loop device: the disk holding its backing file too. */
                _cleanup_free_ char *bf = sysfs_read(w, "loop/backing_file");
                struct stat bst;
                if (bf && stat(bf, &bst) == 0) {
                        _cleanup_free_ char *bw = whole_disk_of(bst.st_dev);
                        if (bw && !strv_contains(l, bw) && strv_push(&l, bw) < 0)
                                return -ENOMEM;
                }
                if (!strv_contains(l, w) && strv_push(&l, w) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* The names in <root>/dev/disk/<dir> that udev made for the disk, sorted. */
int disk_udev_links(const char *root, const char *dir, const char *sysname, char ***ret) {
        _cleanup_free_ char *path = strdup_printf("%s/dev/disk/%s", root, dir);
        _cleanup_free_ char *real_root = isempty(root) ? strdup("") : realpath(root, NULL);
        _cleanup_strv_free_ char **l = NULL;
        if (!path || !real_root)
                return -ENOMEM;
        _cleanup_free_ char *node = strdup_printf("%s/dev/%s", real_root, sysname);
        if (!node)
                return -ENOMEM;
        /* The node itself may be a link (a fake tree's, leading to a real device). */
        _cleanup_free_ char *want = realpath(node, NULL) ?: TAKE_PTR(node);
        DIR *d = opendir(path);
        if (!d) {
                *ret = NULL;
                return 0;
        }
        struct dirent *de;
        int r = 0;
        while (r >= 0 && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *p = strdup_printf("%s/%s", path, de->d_name);
                _cleanup_free_ char *t = p ? realpath(p, NULL) : NULL;
                if (!p)
                        r = -ENOMEM;
                else if (t && streq(t, want))
                        r = strv_push(&l, de->d_name);
        }
        closedir(d);
        if (r < 0)
                return r;
        for (size_t i = 1; l && l[i]; i++) /* sorted: insertion sort, a disk has few names */
                for (size_t j = i; j > 0 && strcmp(l[j - 1], l[j]) > 0; j--) {
                        char *x = l[j];
                        l[j] = l[j - 1];
                        l[j - 1] = x;
                }
        *ret = TAKE_PTR(l);
        return 0;
}

/* How well a by-id name tells a person which disk it is: the transport's name with model and
 * serial (ata-, nvme-, scsi-, usb-, virtio-) first, then WWN-style names, then the names of what
 * the disk holds (an LVM physical volume, an MD member), which change with its contents. */
static int by_id_rank(const char *name) {
        static const char *const content[] = { "lvm-pv-uuid-", "md-uuid-", "md-name-", "dm-" };
        for (size_t i = 0; i < ELEMENTSOF(content); i++)
                if (strncmp(name, content[i], strlen(content[i])) == 0)
                        return 2;
        return strncmp(name, "wwn-", 4) == 0 || strncmp(name, "nvme-eui.", 9) == 0 ? 1 : 0;
}

/* The /dev/disk/by-id name of a disk, if udev made one: the best ranked, then the first sorted. */
char *disk_udev_by_id(const char *root, const char *sysname) {
        _cleanup_strv_free_ char **l = NULL;
        if (disk_udev_links(root, "by-id", sysname, &l) < 0 || !l)
                return NULL;
        const char *best = l[0];
        STRV_FOREACH(n, l)
                if (by_id_rank(*n) < by_id_rank(best))
                        best = *n;
        return strdup_printf("/dev/disk/by-id/%s", best);
}

static char *by_id_name(const char *sysname) {
        return disk_udev_by_id("", sysname);
}

/* The serial number the device reports: NVMe and virtio have an attribute, SCSI and ATA (libata)
 * disks have it in VPD page 0x80 (4-byte header, then the serial, space-padded). */
char *disk_sysfs_serial(const char *root, const char *sysname) {
        char *s = disk_sysfs_attr(root, sysname, "device/serial");
        if (isempty(s)) {
                free(s);
                s = disk_sysfs_attr(root, sysname, "serial");
        }
        for (char *c = s; c && *c; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                        *s = 0; /* not printable ASCII: not a serial we can show or compare */
        if (!isempty(s))
                return s;
        free(s);
        _cleanup_free_ char *path = strdup_printf("%s/sys/block/%s/device/vpd_pg80", root, sysname);
        _cleanup_free_ char *raw = NULL;
        size_t n = 0;
        if (!path || read_full_file(path, &raw, &n) < 0 || n < 4)
                return NULL;
        size_t len = ((size_t)(unsigned char)raw[2] << 8) | (unsigned char)raw[3];
        if (len > n - 4)
                len = n - 4;
        const char *b = raw + 4;
        while (len > 0 && (*b == ' ' || *b == 0)) {
                b++;
                len--;
        }
        while (len > 0 && (b[len - 1] == ' ' || b[len - 1] == 0))
                len--;
        for (size_t i = 0; i < len; i++)
                if (b[i] < 0x20 || b[i] > 0x7e)
                        return NULL; /* not printable ASCII: not a serial we can show or compare */
        return len > 0 ? strndup(b, len) : NULL;
}

static char *sysfs_serial(const char *sysname) {
        return disk_sysfs_serial("", sysname);
}

/* What sysfs and udev say about a whole disk; what is unknown stays NULL (printed "-", never
 * compared). */
static void identity_fill(const char *sysname, struct disk_identity *id) {
        id->by_id = by_id_name(sysname);
        id->model = sysfs_read(sysname, "device/model");
        /* The device's own bytes reach consoles and webhooks: printable ASCII only. */
        for (char *c = id->model; c && *c; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                        *c = '?';
        id->serial = sysfs_serial(sysname);
        id->wwid = sysfs_read(sysname, "wwid");
        if (isempty(id->wwid)) {
                free(id->wwid);
                id->wwid = sysfs_read(sysname, "device/wwid");
        }
        _cleanup_free_ char *bf = sysfs_read(sysname, "loop/backing_file");
        struct stat st;
        if (bf && stat(bf, &st) == 0)
                id->backing = strdup_printf("%u:%u:%ju", major(st.st_dev), minor(st.st_dev), (uintmax_t)st.st_ino);
}

void disk_identity_done(struct disk_identity *id) {
        free(id->node);
        free(id->by_id);
        free(id->model);
        free(id->serial);
        free(id->wwid);
        free(id->backing);
        *id = (struct disk_identity) {};
}

/* Two names of one disk: one WWN, or one serial number (two paths to one LUN). */
static const char *identity_shared(const struct disk_identity *a, const struct disk_identity *b) {
        if (!isempty(a->wwid) && !isempty(b->wwid) && streq(a->wwid, b->wwid))
                return "WWN";
        if (!isempty(a->serial) && !isempty(b->serial) && streq(a->serial, b->serial))
                return "serial number";
        if (!isempty(a->backing) && !isempty(b->backing) && streq(a->backing, b->backing))
                return "backing file";
        return NULL;
}

static bool listable(const char *name) {
        static const char *const skip[] = { "ram", "zram", "fd", "sr", "mtdblock" };
        for (size_t i = 0; i < ELEMENTSOF(skip); i++)
                if (strncmp(name, skip[i], strlen(skip[i])) == 0)
                        return false;
        return true;
}

/* Logs the disks this machine has, for the operator to pick the right name. */
static void log_available_disks(void) {
        DIR *d = opendir("/sys/block");
        struct dirent *de;
        unsigned n = 0;
        if (!d) {
                log_error("Cannot list the disks in /sys/block: %s", strerror(errno));
                return;
        }
        log_error("The disks this machine has:");
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' || !listable(de->d_name))
                        continue;
                uint64_t size = sysfs_size(de->d_name);
                if (size == 0)
                        continue;
                char b[32];
                _cleanup_free_ char *model = sysfs_read(de->d_name, "device/model");
                _cleanup_free_ char *serial = sysfs_serial(de->d_name);
                _cleanup_free_ char *byid = by_id_name(de->d_name);
                log_error("  /dev/%-10s %10s  model %s  serial %s  %s", de->d_name, format_bytes(b, sizeof b, size),
                          isempty(model) ? "-" : model, isempty(serial) ? "-" : serial, byid ? byid : "(no /dev/disk/by-id name)");
                n++;
        }
        closedir(d);
        if (n == 0)
                log_error("  none: is the storage controller's driver in the initrd?");
}

/* Waits until name exists as a block device; fills *st. */
static int wait_for_block_device(const char *key, const char *name, uint64_t deadline, struct stat *st) {
        bool said = false;
        for (;;) {
                if (stat(name, st) == 0) {
                        if (!S_ISBLK(st->st_mode))
                                return log_error_errno(ENOTBLK, "%s \"%s\" is not a block device.", key, name);
                        return 0;
                }
                if (errno != ENOENT && errno != ENOTDIR)
                        return log_error_errno(errno, "Cannot look up %s \"%s\": %s", key, name, strerror(errno));
                uint64_t now = now_usec();
                if (now >= deadline) {
                        /* The list first: the last error is the one the FAILED line and webhook carry. */
                        log_available_disks();
                        log_error("%s \"%s\" does not exist (waited %" PRIu64 " s for it to appear). Name one of the disks above.",
                                  key, name, wait_timeout() / 1000000);
                        return -ENODEV;
                }
                if (!said) {
                        log_info("Waiting up to %" PRIu64 " s for %s \"%s\" to appear.", (deadline - now + 999999) / 1000000, key, name);
                        said = true;
                }
                struct timespec ts = { 0, 250 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

/* Finds the named disk and fills d's identity; checks it is a whole, writable disk. */
static int disk_resolve(struct disk *d, const char *key, const char *name, uint64_t deadline) {
        _cleanup_free_ char *path = NULL, *sysname = NULL, *parent = NULL, *node = NULL;
        struct stat st;
        unsigned partno;
        int r;

        d->fd = d->lock_fd = -1;
        if (isempty(name))
                return log_error_errno(EINVAL, "%s is empty.", key);
        path = name[0] == '/' ? strdup(name) : strdup_printf("/dev/%s", name);
        if (!path)
                return log_oom();
        r = wait_for_block_device(key, path, deadline, &st);
        if (r < 0)
                return r;
        r = sysfs_name_of(st.st_rdev, &sysname, &parent, &partno);
        if (r < 0)
                return log_error_errno(r, "%s \"%s\" (%u:%u) is not in /sys/dev/block: %s", key, name,
                                       major(st.st_rdev), minor(st.st_rdev), strerror(-r));
        if (parent)
                return log_error_errno(EINVAL, "%s \"%s\" is partition %u of /dev/%s, not a whole disk. Name the disk (/dev/%s): the installer partitions it.",
                                       key, name, partno, parent, parent);
        node = strdup_printf("/dev/%s", sysname);
        if (!node)
                return log_oom();
        struct stat nst;
        if (stat(node, &nst) < 0 || !S_ISBLK(nst.st_mode) || nst.st_rdev != st.st_rdev) {
                /* No /dev/<name> for it (unusual): keep the path that led to it. */
                free(node);
                node = realpath(path, NULL);
                if (!node)
                        return log_error_errno(errno, "Cannot resolve %s: %s", path, strerror(errno));
        }
        _cleanup_free_ char *ro = sysfs_read(sysname, "ro");
        if (ro && streq(ro, "1"))
                return log_error_errno(EROFS, "%s \"%s\" (%s) is read-only.", key, name, node);
        uint64_t size = sysfs_size(sysname);
        if (size == 0)
                return log_error_errno(ENOMEDIUM, "%s \"%s\" (%s) has no medium (size 0).", key, name, node);
        _cleanup_free_ char *lbs = sysfs_read(sysname, "queue/logical_block_size");
        int64_t ss = 512;
        if (lbs && (parse_int64(lbs, &ss) < 0 || ss < 512))
                ss = 512;

        d->key = strdup(key);
        d->config_name = strdup(name);
        if (!d->key || !d->config_name)
                return log_oom();
        identity_fill(sysname, &d->id);
        d->node = TAKE_PTR(node);
        d->sysname = TAKE_PTR(sysname);
        d->devnum = st.st_rdev;
        d->size = size;
        d->sector_size = (uint32_t)ss;
        return 0;
}

int disk_identify(const char *name, struct disk_identity *ret) {
        _cleanup_free_ char *path = NULL, *sysname = NULL, *parent = NULL;
        struct disk_identity id = {};
        struct stat st;
        unsigned partno;

        if (isempty(name))
                return -EINVAL;
        path = name[0] == '/' ? strdup(name) : strdup_printf("/dev/%s", name);
        if (!path)
                return -ENOMEM;
        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISBLK(st.st_mode))
                return -ENOTBLK;
        int r = sysfs_name_of(st.st_rdev, &sysname, &parent, &partno);
        if (r < 0)
                return r;
        id.node = strdup_printf("/dev/%s", parent ? parent : sysname);
        if (!id.node)
                return -ENOMEM;
        identity_fill(parent ? parent : sysname, &id);
        id.size = sysfs_size(parent ? parent : sysname);
        *ret = id;
        return 0;
}

/* The device numbers of the disk and of its partitions. */
static int disk_devnums(const struct disk *d, dev_t **ret, size_t *ret_n) {
        _cleanup_free_ struct part_info *parts = NULL;
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0;
        int r = partition_kernel_list(d->sysname, &parts, &n, &names);
        if (r < 0)
                return r;
        dev_t *l = calloc(n + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        size_t k = 0;
        l[k++] = d->devnum;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = strdup_printf("/sys/block/%s/%s/dev", d->sysname, names[i]);
                _cleanup_free_ char *s = NULL;
                unsigned ma, mi;
                if (!path) {
                        free(l);
                        return -ENOMEM;
                }
                if (read_full_file(path, &s, NULL) >= 0 && sscanf(s, "%u:%u", &ma, &mi) == 2)
                        l[k++] = makedev(ma, mi);
        }
        *ret = l;
        *ret_n = k;
        return 0;
}

static bool devnum_in(const dev_t *l, size_t n, dev_t d) {
        for (size_t i = 0; i < n; i++)
                if (l[i] == d)
                        return true;
        return false;
}

static char *devnum_name(dev_t dev) {
        char *name = NULL, *parent = NULL;
        unsigned partno;
        if (sysfs_name_of(dev, &name, &parent, &partno) < 0)
                return strdup_printf("%u:%u", major(dev), minor(dev));
        free(parent);
        char *r = strdup_printf("/dev/%s", name);
        free(name);
        return r;
}

static inline void mnt_free_tablep(struct libmnt_table **t) { if (*t) mnt_unref_table(*t); }
static inline void mnt_free_iterp(struct libmnt_iter **i) { if (*i) mnt_free_iter(*i); }

/* Not mounted (the disk or any partition), not swap. */
static int disk_check_unused(const struct disk *d) {
        _cleanup_free_ dev_t *devs = NULL;
        _cleanup_(mnt_free_tablep) struct libmnt_table *tb = NULL;
        _cleanup_(mnt_free_iterp) struct libmnt_iter *it = NULL;
        size_t n;
        int r, ret = 0;

        r = disk_devnums(d, &devs, &n);
        if (r < 0)
                return log_error_errno(r, "Cannot list the partitions of %s: %s", d->node, strerror(-r));

        tb = mnt_new_table();
        it = mnt_new_iter(MNT_ITER_FORWARD);
        if (!tb || !it)
                return log_oom();
        r = mnt_table_parse_file(tb, "/proc/self/mountinfo");
        if (r < 0)
                return log_error_errno(r, "Cannot read /proc/self/mountinfo: %s", strerror(-r));
        struct libmnt_fs *fs;
        while (mnt_table_next_fs(tb, it, &fs) == 0) {
                dev_t dev = mnt_fs_get_devno(fs);
                const char *src = mnt_fs_get_srcpath(fs);
                struct stat st;
                bool hit = devnum_in(devs, n, dev);
                if (!hit && src && src[0] == '/' && stat(src, &st) == 0 && S_ISBLK(st.st_mode) && devnum_in(devs, n, st.st_rdev)) {
                        hit = true;
                        dev = st.st_rdev;
                }
                if (!hit)
                        continue;
                _cleanup_free_ char *what = devnum_name(dev);
                ret = log_error_errno(EBUSY, "%s (%s) is in use: %s is mounted on %s. Unmount it, or choose another disk.",
                                      d->node, d->key, what ? what : d->node, strempty(mnt_fs_get_target(fs)));
                break;
        }

        _cleanup_fclose_ FILE *f = fopen("/proc/swaps", "re");
        char line[4096];
        while (ret == 0 && f && fgets(line, sizeof line, f)) {
                char *sp = strpbrk(line, " \t");
                struct stat st;
                if (line[0] != '/' || !sp)
                        continue;
                *sp = 0;
                if (stat(line, &st) == 0 && S_ISBLK(st.st_mode) && devnum_in(devs, n, st.st_rdev))
                        ret = log_error_errno(EBUSY, "%s (%s) is in use: %s is active swap. Run swapoff, or choose another disk.",
                                              d->node, d->key, line);
        }
        return ret;
}

static int disk_check_holders(struct disk *d, bool dry_run) {
        int r = holders_list(d->sysname, &d->holders, &d->n_holders);
        if (r < 0)
                return log_error_errno(r, "Cannot list what holds %s: %s", d->node, strerror(-r));
        for (size_t i = 0; i < d->n_holders; i++) {
                const struct holder *h = &d->holders[i];
                if (h->stoppable) {
                        log_info("%s (%s) is held by the %s; %s.", d->node, d->key, h->what,
                                 dry_run ? "`partition` and `run` would stop it" : "it will be stopped before wiping");
                        continue;
                }
                if (h->lvm || h->md)
                        return log_error_errno(EBUSY, "%s (%s) is held by the %s, and %s is not installed to stop it. Remove it, or choose another disk.",
                                               d->node, d->key, h->what, h->lvm ? "lvm" : "mdadm");
                return log_error_errno(EBUSY, "%s (%s) is held by %s. Release it, or choose another disk.", d->node, d->key, h->what);
        }
        return 0;
}

static int disk_open_excl(struct disk *d, bool readonly) {
        int fd = open(d->node, (readonly ? O_RDONLY : O_RDWR) | O_EXCL | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
                int e = errno;
                if (e == EBUSY)
                        return log_error_errno(e, "%s (%s) is in use: the kernel refuses exclusive access (mounted, swap, held by another device, or open in another program).",
                                               d->node, d->key);
                return log_error_errno(e, "Cannot open %s (%s): %s", d->node, d->key, strerror(e));
        }
        /* The name may have been re-pointed since the checks (a disk unplugged and another taking its
         * name, a udev symlink changed): what is open must be the device that was checked. */
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int e = errno;
                close(fd);
                return log_error_errno(e, "Cannot check %s (%s): %s", d->node, d->key, strerror(e));
        }
        if (!S_ISBLK(st.st_mode) || st.st_rdev != d->devnum) {
                close(fd);
                return log_error_errno(ENXIO, "%s (%s) is no longer the device that was checked (%u:%u, now %u:%u): the disks changed meanwhile. PXE-boot again.",
                                       d->node, d->key, major(d->devnum), minor(d->devnum), major(st.st_rdev), minor(st.st_rdev));
        }
        /* O_NONBLOCK only for the open (a tray without medium must not block). */
        (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        uint64_t size = 0;
        int ss = 0;
        if (ioctl(fd, BLKGETSIZE64, &size) < 0 || ioctl(fd, BLKSSZGET, &ss) < 0) {
                int e = errno;
                close(fd);
                return log_error_errno(e, "Cannot read the size of %s: %s", d->node, strerror(e));
        }
        if (size != d->size || (uint32_t)ss != d->sector_size) {
                close(fd);
                return log_error_errno(EIO, "%s changed size while it was checked (%" PRIu64 " bytes, then %" PRIu64 ").",
                                       d->node, d->size, size);
        }
        d->fd = fd;
        return 0;
}

static bool plan_has_devnum(const struct disk_plan *p, dev_t dev) {
        if (p->install.node && p->install.devnum == dev)
                return true;
        if (p->has_data && p->data.devnum == dev)
                return true;
        for (size_t i = 0; i < p->n_wipe; i++)
                if (p->wipe[i].devnum == dev)
                        return true;
        return false;
}

/* Every disk of the plan: the install disk, the data disk, the wipe-only disks. */
static size_t plan_n_disks(const struct disk_plan *p) {
        return 1 + (p->has_data ? 1 : 0) + p->n_wipe;
}

static struct disk *plan_disk(struct disk_plan *p, size_t i) {
        if (i == 0)
                return &p->install;
        if (p->has_data && i == 1)
                return &p->data;
        return &p->wipe[i - 1 - (p->has_data ? 1 : 0)];
}

static int plan_add_wipe(struct disk_plan *p, struct disk *d) {
        struct disk *m = realloc(p->wipe, (p->n_wipe + 1) * sizeof *m);
        if (!m)
                return log_oom();
        p->wipe = m;
        p->wipe[p->n_wipe++] = *d;
        *d = (struct disk) { .fd = -1, .lock_fd = -1 };
        return 0;
}

/* wipe_all_disks: every other disk that carries an old install's label. */
static int find_old_installs(struct disk_plan *p, char *const *media) {
        DIR *dir = opendir("/sys/block");
        struct dirent *de;
        int r = 0;
        if (!dir)
                return log_error_errno(errno, "Cannot list /sys/block: %s", strerror(errno));
        while (r >= 0 && (de = readdir(dir))) {
                static const char *const skip[] = { "loop", "ram", "zram", "fd", "sr", "dm-", "md", "nbd", "mtdblock" };
                bool skipped = de->d_name[0] == '.';
                for (size_t i = 0; !skipped && i < ELEMENTSOF(skip); i++)
                        skipped = strncmp(de->d_name, skip[i], strlen(skip[i])) == 0;
                if (skipped || sysfs_size(de->d_name) == 0)
                        continue;
                _cleanup_free_ char *node = strdup_printf("/dev/%s", de->d_name);
                if (!node)
                        return log_oom();
                struct stat st;
                if (stat(node, &st) < 0 || !S_ISBLK(st.st_mode) || plan_has_devnum(p, st.st_rdev))
                        continue;
                _cleanup_close_ int fd = open(node, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
                if (fd < 0)
                        continue;
                _cleanup_free_ char *label = NULL;
                if (wipe_find_old_install(fd, node, &label) <= 0)
                        continue;
                if (strv_contains(media, de->d_name)) {
                        log_info("%s carries the label %s but the installer runs from it: not wiped.", node, label);
                        continue;
                }
                struct disk d = { .fd = -1, .lock_fd = -1 };
                r = disk_resolve(&d, "install.wipe_all_disks", node, 0);
                if (r >= 0) {
                        d.reason = strdup_printf("an old install's label %s (install.wipe_all_disks)", label);
                        r = d.reason ? plan_add_wipe(p, &d) : log_oom();
                }
                disk_done(&d);
        }
        closedir(dir);
        return r;
}

static int check_disk(struct disk *d, char *const *media, bool dry_run) {
        if (strv_contains(media, d->sysname))
                return log_error_errno(EBUSY, "%s (%s) is the medium the installer runs from; refusing to write to it.", d->node, d->key);
        int r = disk_check_unused(d);
        if (r < 0)
                return r;
        return disk_check_holders(d, dry_run);
}

/* value is a /dev path, or a selector (diskselect.c) that picks one disk, never the medium the
 * installer runs from nor the install disk (resolved first). The checks that follow are the same. */
static int disk_find(struct disk_plan *p, struct disk *d, const char *key, const char *value, char *const *media,
                     uint64_t deadline) {
        if (!disk_selector_is(value))
                return disk_resolve(d, key, value, deadline);
        size_t n_media = strv_length(media), n = 0;
        _cleanup_free_ struct ds_exclude *excl = calloc(n_media + 1, sizeof *excl);
        if (!excl)
                return log_oom();
        for (size_t i = 0; i < n_media; i++)
                excl[n++] = (struct ds_exclude) { media[i], "the medium the installer runs from" };
        if (d != &p->install && p->install.sysname) /* the same names but under HARVESTER_INSTALL_FACTS_ROOT */
                excl[n++] = (struct ds_exclude) { p->install.select_name ?: p->install.sysname, "chosen by install.device" };
        /* HARVESTER_INSTALL_FACTS_ROOT: tests point it at a fake /sys and /dev tree. */
        const char *root = getenv("HARVESTER_INSTALL_FACTS_ROOT") ?: "";
        _cleanup_free_ char *node = NULL;
        _cleanup_strv_free_ char **listing = NULL;
        int r = disk_select(root, key, value, excl, n, deadline, &node, &listing);
        if (r < 0)
                return r;
        r = disk_resolve(d, key, node, deadline);
        if (r < 0)
                return r;
        free(d->config_name);
        d->config_name = strdup(value);
        d->select_name = strdup(strrchr(node, '/') + 1);
        if (!d->config_name || !d->select_name)
                return log_oom();
        d->listing = TAKE_PTR(listing);
        return 0;
}

int disks_prepare_flags(const struct config *c, unsigned flags, struct disk_plan **ret) {
        _cleanup_strv_free_ char **media = NULL;
        struct disk_plan *p = NULL;
        bool dry_run = flags & DISK_PREPARE_DRY_RUN;
        uint64_t deadline = now_usec() + wait_timeout();
        int r, first = 0;

        if (isempty(c->install.device))
                return log_error_errno(EINVAL, "install.device is not set: the installer needs to know which disk to install to.");
        p = calloc(1, sizeof *p);
        if (!p)
                return log_oom();
        p->dry_run = dry_run;
        p->install.fd = p->data.fd = -1;
        p->install.lock_fd = p->data.lock_fd = -1;

        r = installer_media(&media);
        if (r < 0)
                goto fail;

        /* Find every disk. */
        r = disk_find(p, &p->install, "install.device", c->install.device, media, deadline);
        if (r < 0)
                goto fail;
        if (!isempty(c->install.data_disk)) {
                r = disk_find(p, &p->data, "install.data_disk", c->install.data_disk, media, deadline);
                if (r < 0)
                        goto fail;
                p->has_data = true;
                if (p->data.devnum == p->install.devnum) {
                        r = log_error_errno(EINVAL, "install.device \"%s\" and install.data_disk \"%s\" are the same disk (%s). The data disk must be another disk, or leave install.data_disk unset.",
                                            c->install.device, c->install.data_disk, p->install.node);
                        goto fail;
                }
                const char *shared = identity_shared(&p->install.id, &p->data.id);
                if (shared) {
                        r = log_error_errno(EINVAL, "install.device \"%s\" (%s) and install.data_disk \"%s\" (%s) have the same %s (%s): two paths to one disk (multipath?). The data disk must be another disk, or leave install.data_disk unset.",
                                            c->install.device, p->install.node, c->install.data_disk, p->data.node, shared,
                                            streq(shared, "WWN") ? p->install.id.wwid : streq(shared, "serial number") ? p->install.id.serial : "loop devices");
                        goto fail;
                }
        }
        STRV_FOREACH(w, c->install.wipe_disks_list) {
                struct disk d = { .fd = -1, .lock_fd = -1 };
                r = disk_resolve(&d, "install.wipe_disks_list", *w, deadline);
                if (r >= 0 && plan_has_devnum(p, d.devnum))
                        log_debug("%s (%s) is wiped anyway.", d.node, *w);
                else if (r >= 0) {
                        d.reason = strdup("install.wipe_disks_list");
                        r = d.reason ? plan_add_wipe(p, &d) : log_oom();
                }
                disk_done(&d);
                if (r < 0)
                        goto fail;
        }
        if (c->install.wipe_all_disks) {
                r = find_old_installs(p, media);
                if (r < 0)
                        goto fail;
        }

        /* Check every disk, reporting every problem. */
        r = check_disk(&p->install, media, dry_run);
        if (r < 0 && first == 0)
                first = r;
        if (p->has_data) {
                r = check_disk(&p->data, media, dry_run);
                if (r < 0 && first == 0)
                        first = r;
        }
        for (size_t i = 0; i < p->n_wipe; i++) {
                r = check_disk(&p->wipe[i], media, dry_run);
                if (r < 0 && first == 0)
                        first = r;
        }

        struct layout_request req = {
                .device = p->install.node,
                .disk_bytes = p->install.size,
                .sector_size = p->install.sector_size,
                .data_disk = p->has_data ? p->data.node : NULL,
                .data_disk_bytes = p->data.size,
                .persistent_partition_bytes = c->install.persistent_partition_bytes,
                .skipchecks = c->install.skipchecks,
        };
        r = layout_compute(&req, &p->layout);
        if (r < 0 && first == 0)
                first = r;
        if (first < 0) {
                r = first;
                goto fail;
        }

        /* Everything checked: stop old holders (not in a dry run), then hold every disk. */
        for (size_t i = 0; i < plan_n_disks(p); i++) {
                struct disk *d = plan_disk(p, i);
                if (d->n_holders > 0 && dry_run)
                        continue; /* its exclusive open would fail until the holders are stopped */
                for (size_t j = 0; j < d->n_holders; j++) {
                        r = holder_stop(&d->holders[j], d->node);
                        if (r < 0)
                                goto fail;
                }
                r = disk_open_excl(d, dry_run);
                if (r < 0)
                        goto fail;
        }

        *ret = p;
        return 0;
fail:
        disk_plan_free(p);
        return r;
}

int disks_prepare(const struct config *c, struct disk_plan **ret) {
        return disks_prepare_flags(c, 0, ret);
}

const char *disk_plan_install_disk(const struct disk_plan *p) {
        return p->install.node;
}

const char *disk_plan_data_disk(const struct disk_plan *p) {
        return p->has_data ? p->data.node : NULL;
}

static int name_disk(const struct disk *d, char **value) {
        if (!d->listing)
                return 0; /* named by a path: kept as given */
        char *n = strdup(d->id.by_id ? d->id.by_id : d->node);
        if (!n)
                return log_oom();
        free(*value);
        *value = n;
        return 0;
}

int disk_plan_name_disks(const struct disk_plan *p, struct config *c) {
        int r = name_disk(&p->install, &c->install.device);
        if (r >= 0 && p->has_data)
                r = name_disk(&p->data, &c->install.data_disk);
        return r;
}

const char *disk_plan_node(const struct disk_plan *p, enum part_id id) {
        if ((int)id < 0 || id >= _PART_MAX)
                return NULL;
        return p->nodes[id];
}

static void print_identity(const struct disk *d) {
        printf("  by-id %s, model %s, serial %s\n", d->id.by_id ? d->id.by_id : "- (no /dev/disk/by-id name)",
               isempty(d->id.model) ? "-" : d->id.model, isempty(d->id.serial) ? "-" : d->id.serial);
        if (d->listing) {
                printf("  chosen by the selector %s \"%s\" (*) among the disks:\n", d->key, d->config_name);
                STRV_FOREACH(l, d->listing)
                        printf("  %s\n", *l);
        }
}

void disk_plan_print(const struct disk_plan *p) {
        const struct layout *l = &p->layout;
        char b[32], b2[32];

        printf("Install disk: %s (install.device \"%s\"), %s (%" PRIu64 " bytes), logical sectors of %u bytes\n",
               p->install.node, p->install.config_name, format_bytes(b, sizeof b, p->install.size), p->install.size,
               p->install.sector_size);
        print_identity(&p->install);
        printf("  every old signature is wiped; a new GPT is written:\n");
        printf("  %-2s %-11s %-16s %-5s %15s %15s  %s\n", "#", "GPT name", "label", "fs", "start (bytes)", "size (bytes)", "size");
        for (size_t i = 0; i < l->n_parts; i++) {
                const struct layout_part *q = &l->parts[i];
                printf("  %-2u %-11s %-16s %-5s %15" PRIu64 " %15" PRIu64 "  %s%s\n", q->partno, q->name, q->label, q->fstype,
                       q->start, q->size, format_bytes(b, sizeof b, q->size),
                       q->id == PART_EFI ? " (EFI System)" :
                       q->id == PART_PERSISTENT && l->persistent_shrunk ? " (shrunk to fit: install.skipchecks)" : "");
        }
        if (p->has_data) {
                printf("Data disk: %s (install.data_disk \"%s\"), %s (%" PRIu64 " bytes)\n",
                       p->data.node, p->data.config_name, format_bytes(b2, sizeof b2, p->data.size), p->data.size);
                print_identity(&p->data);
                printf("  every old signature is wiped; one whole-disk ext4 labelled HARV_LH_DEFAULT, no partition table\n");
        } else
                printf("Data disk: none (HARV_LH_DEFAULT is partition 6 of the install disk)\n");
        for (size_t i = 0; i < p->n_wipe; i++)
                printf("Wiped, not partitioned: %s, %s (%" PRIu64 " bytes): %s\n", p->wipe[i].node,
                       format_bytes(b, sizeof b, p->wipe[i].size), p->wipe[i].size, p->wipe[i].reason);
        const struct disk *all[] = { &p->install, p->has_data ? &p->data : NULL };
        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                for (size_t j = 0; all[i] && j < all[i]->n_holders; j++)
                        printf("Stopped first: the %s holding %s\n", all[i]->holders[j].what, all[i]->node);
        for (size_t i = 0; i < p->n_wipe; i++)
                for (size_t j = 0; j < p->wipe[i].n_holders; j++)
                        printf("Stopped first: the %s holding %s\n", p->wipe[i].holders[j].what, p->wipe[i].node);
}

/* Takes flock(LOCK_EX) on the whole disk through d->lock_fd (kept until the plan is freed). udev
 * holds the lock for moments while it probes; waits for it, not forever. */
static int disk_lock(struct disk *d) {
        if (d->lock_fd >= 0)
                return 0;
        int fd = open(d->node, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return log_error_errno(errno, "Cannot open %s to lock it: %s", d->node, strerror(errno));
        uint64_t deadline = now_usec() + wait_timeout();
        while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int e = errno;
                if (e == EINTR)
                        continue;
                if (e != EWOULDBLOCK || now_usec() >= deadline) {
                        close(fd);
                        return log_error_errno(e, "Cannot lock %s (flock): %s", d->node,
                                               e == EWOULDBLOCK ? "another program keeps it locked" : strerror(e));
                }
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        d->lock_fd = fd;
        return 0;
}

/* Wipes a disk that was written to, and makes the kernel forget its partitions. */
static int disk_unwrite(struct disk *d) {
        _cleanup_close_ int own = -1;
        int fd = d->fd;
        if (fd < 0) {
                own = open(d->node, O_RDWR | O_CLOEXEC);
                if (own < 0)
                        return log_error_errno(errno, "Cannot open %s: %s", d->node, strerror(errno));
                fd = own;
        }
        int r = disk_lock(d);
        if (r < 0)
                log_warning("Wiping %s without the lock that keeps udev off.", d->node);
        r = wipe_signatures(fd, d->node, NULL);
        if (r < 0)
                return r;
        /* The table is gone from the disk; the kernel's stale view only matters until reboot. */
        if (partition_kernel_sync(fd, d->node, d->sysname, NULL, PART_WAIT_MIN_USEC, NULL) < 0)
                log_warning("The kernel still lists old partitions of %s until the next boot.", d->node);
        return 0;
}

static int rollback(struct disk_plan *p) {
        int ret = 0;
        struct disk *all[] = { &p->install, p->has_data ? &p->data : NULL };
        for (size_t i = 0; i < ELEMENTSOF(all); i++) {
                if (!all[i] || !all[i]->written)
                        continue;
                int r = disk_unwrite(all[i]);
                if (r < 0) {
                        log_error("Could not remove what was written to %s: it may hold a half-installed system. Wipe it (wipefs -a %s) before booting from it.",
                                  all[i]->node, all[i]->node);
                        if (ret == 0)
                                ret = r;
                } else
                        log_warning("Removed the partition table and filesystems written to %s, so that it cannot boot a half-installed system.",
                                  all[i]->node);
        }
        for (size_t i = 0; i < _PART_MAX; i++) {
                free(p->nodes[i]);
                p->nodes[i] = NULL;
        }
        return ret;
}

int disks_rollback(struct disk_plan *p) {
        return rollback(p);
}

int disks_write(struct disk_plan *p) {
        uint64_t timeout = wait_timeout() < PART_WAIT_MIN_USEC ? PART_WAIT_MIN_USEC : wait_timeout();
        unsigned count = 0;
        char b[32];
        int r;

        if (p->dry_run)
                return log_error_errno(EINVAL, "Internal error: a dry-run disk plan cannot be written.");

        /* Old HARV_LH_DEFAULT labels elsewhere: only the label goes (stray-label.c). */
        const char *keep[] = { p->install.node, p->has_data ? p->data.node : NULL };
        r = stray_labels_clear(keep, p->has_data ? 2 : 1, NULL, NULL);
        if (r < 0)
                return r;

        /* Lock every disk (udev and others keep off while it is rewritten), then wipe it. */
        for (size_t i = 0; i < plan_n_disks(p); i++) {
                struct disk *d = plan_disk(p, i);
                if (d->fd < 0) {
                        r = log_error_errno(EBADF, "Internal error: %s is not held.", d->node);
                        goto fail;
                }
                r = disk_lock(d);
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < plan_n_disks(p); i++) {
                struct disk *d = plan_disk(p, i);
                log_info("Wiping every old signature on %s (%s).", d->node, d->reason ? d->reason : d->key);
                d->written = true;
                r = wipe_signatures(d->fd, d->node, &count);
                if (r < 0)
                        goto fail;
                r = partition_kernel_sync(d->fd, d->node, d->sysname, NULL, timeout, NULL);
                if (r < 0)
                        goto fail;
        }
        log_info("Wiped %u old signatures.", count);
        r = interrupt_check("before writing the partition table");
        if (r < 0)
                goto fail;

        /* The new table, read back, and the kernel told. */
        log_info("Writing the GPT on %s: %zu partitions.", p->install.node, p->layout.n_parts);
        r = partition_write_table(p->install.fd, p->install.node, &p->layout);
        if (r < 0)
                goto fail;
        r = partition_verify(p->install.fd, p->install.node, &p->layout);
        if (r < 0)
                goto fail;
        char *nodes[_PART_MAX] = {};
        r = partition_kernel_sync(p->install.fd, p->install.node, p->install.sysname, &p->layout, timeout, nodes);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < p->layout.n_parts; i++)
                p->nodes[p->layout.parts[i].id] = nodes[i];
        if (p->has_data) {
                p->nodes[PART_DATA] = strdup(p->data.node);
                if (!p->nodes[PART_DATA]) {
                        r = log_oom();
                        goto fail;
                }
        }

        /* mkfs opens partitions exclusively: release the install and data disks (the lock stays). */
        close(p->install.fd);
        p->install.fd = -1;
        if (p->has_data) {
                close(p->data.fd);
                p->data.fd = -1;
        }
        for (size_t i = 0; i < p->layout.n_parts; i++) {
                const struct layout_part *q = &p->layout.parts[i];
                r = interrupt_check("before formatting the partitions");
                if (r < 0)
                        goto fail;
                log_info("Formatting %s (%s, %s) as %s \"%s\".", p->nodes[q->id], q->name,
                         format_bytes(b, sizeof b, q->size), q->fstype, q->label);
                r = format_device(p->nodes[q->id], q->fstype, q->label);
                if (r < 0)
                        goto fail;
        }
        if (p->has_data) {
                r = interrupt_check("before formatting the data disk");
                if (r < 0)
                        goto fail;
                log_info("Formatting the data disk %s (%s) as ext4 \"HARV_LH_DEFAULT\".", p->data.node,
                         format_bytes(b, sizeof b, p->data.size));
                r = format_device(p->data.node, "ext4", "HARV_LH_DEFAULT");
                if (r < 0)
                        goto fail;
        }
        return 0;

fail:
        (void)rollback(p);
        return r;
}
