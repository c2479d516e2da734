/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wiping, the way util-linux wipefs does it: a libblkid probe with every superblock and partition
 * table magic enabled (bad checksums too), blkid_do_probe() + blkid_do_wipe() until nothing is
 * found, on each partition's area first and then on the whole disk, all through the one O_EXCL
 * file descriptor the disk was opened with. And the holders an old install may have left active
 * (LVM, MD RAID), which are stopped with their own tools.
 */
#include <blkid/blkid.h>
#include <dirent.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "format.h"
#include "log.h"
#include "util.h"
#include "wipe.h"

static inline void blkid_free_probep(blkid_probe *p) { if (*p) blkid_free_probe(*p); }
#define _cleanup_blkid_probe_ _cleanup_(blkid_free_probep)

#define WIPE_MAX_SIGNATURES 256 /* per area: a loop guard, never reached by a real disk */

struct area {
        uint64_t off, size; /* bytes; size 0: to the end of the disk */
        unsigned partno;    /* 0: the whole disk */
};

/* Adds the partitions of one kind of table: "gpt" only (GPT forced: found even behind a DOS MBR,
 * or from the backup header alone), or every other kind. */
static int add_partitions(int fd, bool gpt, struct area **a, size_t *n) {
        static const char *const only_gpt[] = { "gpt", NULL };
        _cleanup_blkid_probe_ blkid_probe pr = blkid_new_probe();
        if (!pr)
                return -ENOMEM;
        errno = 0;
        if (blkid_probe_set_device(pr, fd, 0, 0) < 0)
                return errno > 0 ? -errno : -EIO;
        blkid_probe_enable_superblocks(pr, 0);
        blkid_probe_enable_partitions(pr, 1);
        blkid_probe_set_partitions_flags(pr, BLKID_PARTS_FORCE_GPT);
        if (blkid_probe_filter_partitions_type(pr, gpt ? BLKID_FLTR_ONLYIN : BLKID_FLTR_NOTIN, (char **)only_gpt) < 0)
                return -EIO;
        blkid_partlist ls = blkid_probe_get_partitions(pr);
        int k = ls ? blkid_partlist_numof_partitions(ls) : 0;
        for (int i = 0; i < k; i++) {
                blkid_partition p = blkid_partlist_get_partition(ls, i);
                if (!p)
                        continue;
                blkid_loff_t start = blkid_partition_get_start(p), size = blkid_partition_get_size(p);
                if (start <= 0 || size <= 0)
                        continue;
                struct area ar = { .off = (uint64_t)start * 512, .size = (uint64_t)size * 512,
                                   .partno = (unsigned)blkid_partition_get_partno(p) };
                bool dup = false;
                for (size_t j = 0; j < *n; j++)
                        if ((*a)[j].off == ar.off && (*a)[j].size == ar.size)
                                dup = true;
                if (dup)
                        continue;
                struct area *m = realloc(*a, (*n + 1) * sizeof *m);
                if (!m)
                        return -ENOMEM;
                *a = m;
                m[(*n)++] = ar;
        }
        return 0;
}

/* The partitions of every table libblkid finds on fd: a GPT (also one found from its backup
 * header only, or hidden behind a DOS MBR) and any other kind. */
static int list_partitions(int fd, const char *node, struct area **ret, size_t *ret_n) {
        _cleanup_free_ struct area *a = NULL;
        size_t n = 0;
        int r = add_partitions(fd, true, &a, &n);
        if (r >= 0)
                r = add_partitions(fd, false, &a, &n);
        if (r < 0)
                return r;
        log_debug("%s: %zu partitions in its old tables.", node, n);
        *ret = TAKE_PTR(a);
        *ret_n = n;
        return 0;
}

static int new_wipe_probe(int fd, const struct area *ar, blkid_probe *ret) {
        _cleanup_blkid_probe_ blkid_probe pr = blkid_new_probe();
        if (!pr)
                return -ENOMEM;
        errno = 0;
        if (blkid_probe_set_device(pr, fd, (blkid_loff_t)ar->off, (blkid_loff_t)ar->size) < 0)
                return errno > 0 ? -errno : -EIO;
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE |
                                          BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_BADCSUM);
        blkid_probe_enable_partitions(pr, 1);
        blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);
        *ret = TAKE_PTR(pr);
        return 0;
}

static int wipe_area(int fd, const char *node, const struct area *ar, unsigned *count) {
        _cleanup_blkid_probe_ blkid_probe pr = NULL;
        _cleanup_free_ char *where = ar->partno ? strdup_printf("partition %u of %s", ar->partno, node) : strdup(node);
        unsigned n = 0;
        int r;

        if (!where)
                return -ENOMEM;
        r = new_wipe_probe(fd, ar, &pr);
        if (r < 0)
                return log_error_errno(r, "Cannot probe %s for old signatures: %s", where, strerror(-r));

        for (;;) {
                errno = 0;
                r = blkid_do_probe(pr);
                if (r == 1)
                        break;
                if (r < 0)
                        return log_error_errno(errno > 0 ? errno : EIO, "Cannot probe %s for old signatures: %s",
                                               where, strerror(errno > 0 ? errno : EIO));
                const char *type = NULL, *off = NULL, *label = NULL;
                if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) < 0)
                        (void)blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL);
                if (blkid_probe_lookup_value(pr, "SBMAGIC_OFFSET", &off, NULL) < 0)
                        (void)blkid_probe_lookup_value(pr, "PTMAGIC_OFFSET", &off, NULL);
                (void)blkid_probe_lookup_value(pr, "LABEL", &label, NULL);
                _cleanup_free_ char *type_s = strdup(strempty(type)), *off_s = strdup(strempty(off)),
                                    *label_s = label ? strdup(label) : NULL;

                if (++n > WIPE_MAX_SIGNATURES)
                        return log_error_errno(ELOOP, "%s: still finding signatures after wiping %u; giving up.", where, n - 1);
                errno = 0;
                if (blkid_do_wipe(pr, 0) != 0)
                        return log_error_errno(errno > 0 ? errno : EIO, "Cannot wipe the %s signature at offset %s of %s: %s",
                                               strempty(type_s), strempty(off_s), where, strerror(errno > 0 ? errno : EIO));
                log_info("Wiped the old %s signature%s%s%s at offset %s of %s.", strempty(type_s),
                         label_s ? " (label \"" : "", strempty(label_s), label_s ? "\")" : "",
                         strempty(off_s), where);
                if (count)
                        (*count)++;
        }
        return 0;
}

int wipe_signatures(int fd, const char *node, unsigned *count) {
        _cleanup_free_ struct area *parts = NULL;
        size_t n = 0;
        int r;

        r = list_partitions(fd, node, &parts, &n);
        if (r < 0)
                return log_error_errno(r, "Cannot read the old partition table of %s: %s", node, strerror(-r));
        /* Each partition's filesystems and labels before the table that locates them. */
        for (size_t i = 0; i < n; i++) {
                r = wipe_area(fd, node, &parts[i], count);
                if (r < 0)
                        return r;
        }
        r = wipe_area(fd, node, &(struct area) {}, count);
        if (r < 0)
                return r;
        if (fsync(fd) < 0)
                return log_error_errno(errno, "Cannot flush %s after wiping: %s", node, strerror(errno));

        /* Nothing may be left: a second pass must find nothing. */
        _cleanup_blkid_probe_ blkid_probe pr = NULL;
        r = new_wipe_probe(fd, &(struct area) {}, &pr);
        if (r < 0)
                return log_error_errno(r, "Cannot probe %s after wiping: %s", node, strerror(-r));
        blkid_probe_reset_buffers(pr);
        r = blkid_do_probe(pr);
        if (r != 1)
                return log_error_errno(EIO, "%s still shows a signature after wiping; refusing to go on.", node);
        return 0;
}

/* The labels an installed v1.1 disk carries: its five partitions and the data disk, plus the
 * labels of the images inside them (should one be found bare). Never another COS_ label: COS_LIVE
 * is a Harvester USB stick or CD left in the server, not an old install. */
static bool is_install_label(const char *label) {
        static const char *const labels[] = { "COS_GRUB", "COS_OEM", "COS_RECOVERY", "COS_STATE", "COS_PERSISTENT",
                                               "HARV_LH_DEFAULT", "COS_ACTIVE", "COS_PASSIVE", "COS_SYSTEM" };
        for (size_t i = 0; label && i < ELEMENTSOF(labels); i++)
                if (streq(label, labels[i]))
                        return true;
        return false;
}

static int area_label(int fd, const struct area *ar, char **ret) {
        _cleanup_blkid_probe_ blkid_probe pr = blkid_new_probe();
        const char *label = NULL;
        if (!pr)
                return -ENOMEM;
        errno = 0;
        if (blkid_probe_set_device(pr, fd, (blkid_loff_t)ar->off, (blkid_loff_t)ar->size) < 0)
                return errno > 0 ? -errno : -EIO;
        blkid_probe_enable_partitions(pr, 0);
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_LABEL | BLKID_SUBLKS_TYPE);
        if (blkid_do_safeprobe(pr) != 0)
                return 0;
        if (blkid_probe_lookup_value(pr, "LABEL", &label, NULL) < 0 || !is_install_label(label))
                return 0;
        *ret = strdup(label);
        return *ret ? 1 : -ENOMEM;
}

int wipe_find_old_install(int fd, const char *node, char **ret_label) {
        _cleanup_free_ struct area *parts = NULL;
        size_t n = 0;
        int r = list_partitions(fd, node, &parts, &n);
        if (r < 0)
                return r;
        r = area_label(fd, &(struct area) {}, ret_label);
        for (size_t i = 0; r == 0 && i < n; i++)
                r = area_label(fd, &parts[i], ret_label);
        return r;
}

void holders_free(struct holder *h, size_t n) {
        for (size_t i = 0; h && i < n; i++) {
                free(h[i].name);
                free(h[i].what);
                free(h[i].vg);
        }
        free(h);
}

/* LVM mangles "vg-name/lv" to the dm name "vg--name-lv": the VG ends at the first single '-'. */
static char *vg_from_dm_name(const char *dm) {
        char *vg = malloc(strlen(dm) + 1), *o = vg;
        if (!vg)
                return NULL;
        for (const char *p = dm; *p; p++) {
                if (*p == '-') {
                        if (p[1] == '-') {
                                *o++ = '-';
                                p++;
                                continue;
                        }
                        break;
                }
                *o++ = *p;
        }
        *o = 0;
        return vg;
}

static char *read_line(const char *path) {
        char *s = NULL;
        if (read_full_file(path, &s, NULL) < 0)
                return NULL;
        s[strcspn(s, "\n")] = 0;
        return s;
}

static int describe_holder(const char *name, struct holder *h) {
        _cleanup_free_ char *uuid_p = strdup_printf("/sys/block/%s/dm/uuid", name);
        _cleanup_free_ char *name_p = strdup_printf("/sys/block/%s/dm/name", name);
        _cleanup_free_ char *md_p = strdup_printf("/sys/block/%s/md", name);
        if (!uuid_p || !name_p || !md_p)
                return -ENOMEM;
        *h = (struct holder) { .name = strdup(name) };
        if (!h->name)
                return -ENOMEM;
        _cleanup_free_ char *uuid = read_line(uuid_p), *dmname = read_line(name_p);
        struct stat st;
        if (uuid && strncmp(uuid, "LVM-", 4) == 0 && dmname) {
                h->lvm = true;
                h->vg = vg_from_dm_name(dmname);
                if (!h->vg)
                        return -ENOMEM;
                h->what = strdup_printf("LVM logical volume /dev/mapper/%s of volume group \"%s\"", dmname, h->vg);
                h->stoppable = command_exists("lvm") || command_exists("vgchange");
        } else if (stat(md_p, &st) == 0) {
                h->md = true;
                h->what = strdup_printf("MD RAID array /dev/%s", name);
                h->stoppable = command_exists("mdadm");
        } else if (uuid || dmname)
                h->what = strdup_printf("device-mapper device %s (%s)", dmname ? dmname : name, uuid ? uuid : "no uuid");
        else
                h->what = strdup_printf("/dev/%s", name);
        return h->what ? 0 : -ENOMEM;
}

static int add_holders_of(const char *dir, struct holder **list, size_t *n) {
        _cleanup_free_ char *hd = strdup_printf("%s/holders", dir);
        if (!hd)
                return -ENOMEM;
        DIR *d = opendir(hd);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        struct dirent *de;
        int r = 0;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                bool dup = false;
                for (size_t i = 0; i < *n; i++)
                        if (streq((*list)[i].name, de->d_name))
                                dup = true;
                if (dup)
                        continue;
                struct holder *m = realloc(*list, (*n + 1) * sizeof **list);
                if (!m) {
                        r = -ENOMEM;
                        break;
                }
                *list = m;
                r = describe_holder(de->d_name, &m[*n]);
                (*n)++;
                if (r < 0)
                        break;
        }
        closedir(d);
        return r;
}

int holders_list(const char *sysname, struct holder **ret, size_t *ret_n) {
        _cleanup_free_ char *dir = strdup_printf("/sys/block/%s", sysname);
        struct holder *list = NULL;
        size_t n = 0;
        int r;
        if (!dir)
                return -ENOMEM;
        r = add_holders_of(dir, &list, &n);
        DIR *d = r >= 0 ? opendir(dir) : NULL;
        if (r >= 0 && !d)
                r = -errno;
        struct dirent *de;
        while (d && r >= 0 && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *sub = strdup_printf("%s/%s", dir, de->d_name);
                _cleanup_free_ char *pf = strdup_printf("%s/%s/partition", dir, de->d_name);
                if (!sub || !pf) {
                        r = -ENOMEM;
                        break;
                }
                if (access(pf, F_OK) < 0)
                        continue;
                r = add_holders_of(sub, &list, &n);
        }
        if (d)
                closedir(d);
        if (r < 0) {
                holders_free(list, n);
                return r;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int holder_stop(const struct holder *h, const char *disk) {
        _cleanup_free_ char *out = NULL, *mddev = NULL;
        char *argv[6] = {};
        if (h->lvm) {
                size_t i = 0;
                if (command_exists("lvm"))
                        argv[i++] = (char *)"lvm";
                argv[i++] = (char *)"vgchange";
                argv[i++] = (char *)"-an";
                argv[i++] = h->vg;
        } else if (h->md) {
                mddev = strdup_printf("/dev/%s", h->name);
                if (!mddev)
                        return log_oom();
                argv[0] = (char *)"mdadm";
                argv[1] = (char *)"--stop";
                argv[2] = mddev;
        } else
                return log_error_errno(EBUSY, "%s is held by %s; the installer does not stop that. Remove it first.", disk, h->what);

        log_info("%s is held by the %s of an old install; stopping it (%s %s).", disk, h->what, argv[0], argv[1]);
        int r = run_command(argv, &out);
        if (r != 0) {
                if (r > 0) {
                        log_error("%s failed (exit status %d):", argv[0], r);
                        char *save = NULL;
                        for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                                log_error("  %s", line);
                }
                return log_error_errno(r > 0 ? EBUSY : -r, "Cannot stop the %s that holds %s; %s is refused. Stop it by hand, or choose another disk.",
                                       h->what, disk, disk);
        }
        return 0;
}
