/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The disk pipeline's API on loop devices (root): disks_prepare() + disks_write() on a 300 GiB
 * sparse disk and a 60 GiB data disk, rollback (explicit and after a failing mkfs), an active LVM
 * holder stopped, and the refusals, each leaving the images byte-for-byte unchanged.
 * Exit 77 without root or loop devices.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "config.h"
#include "disk.h"
#include "format.h"
#include "layout.h"
#include "partition.h"
#include "sparse-sum.h"
#include "util.h"
#include "webhook.h"
#include "wipe.h"

#define GiB LAYOUT_GiB

static char tmpdir[4096]; /* $TMPDIR (tests/run-all: one per run) or /var/tmp */
static char *loops[8];
static size_t n_loops;
static char *vg_name;

/* Runs a tool, output discarded; its exit status. */
static int run_quiet(const char *const argv[]) {
        char *out = NULL;
        int r = run_command((char *const *)argv, &out);
        free(out);
        return r;
}

/* Runs a tool that must succeed; its first line of output. */
static char *run_out(const char *const argv[]) {
        char *out = NULL;
        int r = run_command((char *const *)argv, &out);
        if (r != 0) {
                fprintf(stderr, "%s failed (%d): %s\n", argv[0], r, out ? out : "");
                free(out);
                return NULL;
        }
        out[strcspn(out, "\n")] = 0;
        return out;
}

static char *image(const char *name, uint64_t size) {
        char *path = strdup_printf("%s/%s", tmpdir, name);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
                abort();
        close(fd);
        return path;
}

/* losetup: returns "/dev/loopN" (recorded for detaching). */
static char *attach(const char *file) {
        char *dev = run_out((const char *[]) { "losetup", "-f", "--show", file, NULL });
        assert_non_null(dev);
        loops[n_loops++] = strdup(dev);
        return dev;
}

static void detach_all(void) {
        if (vg_name) {
                (void)run_quiet((const char *[]) { "vgchange", "-an", vg_name, NULL });
                (void)run_quiet((const char *[]) { "vgremove", "-ff", "-y", vg_name, NULL });
                free(vg_name);
                vg_name = NULL;
        }
        for (size_t i = 0; i < n_loops; i++) {
                (void)run_quiet((const char *[]) { "partx", "-d", loops[i], NULL });
                (void)run_quiet((const char *[]) { "losetup", "-d", loops[i], NULL });
                free(loops[i]);
        }
        n_loops = 0;
}

static uint64_t sum(const char *file) {
        uint64_t h = 0;
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(sparse_sum_fd(fd, &h), 0);
        close(fd);
        return h;
}

static struct config *config_new(const char *device, const char *data_disk) {
        struct config *c = calloc(1, sizeof *c);
        c->install.device = device ? strdup(device) : NULL;
        c->install.data_disk = data_disk ? strdup(data_disk) : NULL;
        return c;
}

static void config_done(struct config *c) {
        free(c->install.device);
        free(c->install.data_disk);
        strv_free(c->install.wipe_disks_list);
        free(c);
}

/* Nothing any libblkid prober recognises on dev. */
static void assert_blank(const char *dev) {
        char *out = NULL;
        int r = run_command((char *const *)(const char *[]) { "wipefs", "--noheadings", dev, NULL }, &out);
        assert_int_equal(r, 0);
        if (!isempty(out))
                fprintf(stderr, "left on %s:\n%s", dev, out);
        assert_true(isempty(out));
        free(out);
}

static bool kernel_has_partitions(const char *dev) {
        struct part_info *k = NULL;
        size_t n = 0;
        assert_int_equal(partition_kernel_list(dev + 5, &k, &n, NULL), 0);
        free(k);
        return n > 0;
}

static void check_written(struct disk_plan *p, const char *disk, const char *data) {
        static const char *const labels[] = { "COS_GRUB", "COS_OEM", "COS_RECOVERY", "COS_STATE", "COS_PERSISTENT" };
        for (int i = PART_EFI; i <= PART_PERSISTENT; i++) {
                char *want = strdup_printf("%sp%d", disk, i + 1);
                assert_string_equal(disk_plan_node(p, (enum part_id)i), want);
                assert_int_equal(format_verify(want, i == PART_EFI ? "vfat" : "ext4", labels[i]), 0);
                free(want);
        }
        if (data) {
                assert_string_equal(disk_plan_node(p, PART_DATA), data);
                assert_int_equal(format_verify(data, "ext4", "HARV_LH_DEFAULT"), 0);
        } else {
                char *want = strdup_printf("%sp6", disk);
                assert_string_equal(disk_plan_node(p, PART_DATA), want);
                assert_int_equal(format_verify(want, "ext4", "HARV_LH_DEFAULT"), 0);
                free(want);
        }
        int fd = open(disk, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        struct part_info *parts = NULL;
        char *label = NULL;
        size_t n;
        assert_int_equal(partition_read_table(fd, disk, &label, &parts, &n), 0);
        assert_string_equal(label, "gpt");
        assert_int_equal(n, data ? 5 : 6);
        free(parts);
        free(label);
        close(fd);
}

static void test_write_and_rollback(void **state) {
        char *f1 = image("disk.img", 300 * GiB), *f2 = image("data.img", 60 * GiB);
        char *d1 = attach(f1), *d2 = attach(f2);
        struct config *c = config_new(d1, d2);
        struct disk_plan *p = NULL;

        assert_int_equal(disks_prepare(c, &p), 0);
        assert_string_equal(disk_plan_install_disk(p), d1);
        assert_string_equal(disk_plan_data_disk(p), d2);
        assert_null(disk_plan_node(p, PART_EFI)); /* nothing before the write */
        /* Held exclusively from the checks on. */
        assert_true(open(d1, O_RDONLY | O_EXCL | O_CLOEXEC) < 0 && errno == EBUSY);
        disk_plan_print(p);
        assert_int_equal(disks_write(p), 0);
        check_written(p, d1, d2);

        /* A later stage failed: everything written goes. */
        assert_int_equal(disks_rollback(p), 0);
        assert_null(disk_plan_node(p, PART_EFI));
        disk_plan_free(p);
        assert_blank(d1);
        assert_blank(d2);
        assert_false(kernel_has_partitions(d1));

        /* Without a data disk: partition 6 on the install disk. */
        free(c->install.data_disk);
        c->install.data_disk = NULL;
        assert_int_equal(disks_prepare(c, &p), 0);
        assert_int_equal(disks_write(p), 0);
        check_written(p, d1, NULL);
        disk_plan_free(p);
        /* Released: nothing holds the disk any more. */
        int fd = open(d1, O_RDONLY | O_EXCL | O_CLOEXEC);
        assert_true(fd >= 0);
        close(fd);

        config_done(c);
        detach_all();
        unlink(f1);
        unlink(f2);
        free(f1);
        free(f2);
        free(d1);
        free(d2);
}

/* A loop device with partition scanning on (losetup -P): BLKRRPART succeeds; on a kernel without a
 * GPT parser it finds nothing, and the kernel must be told by BLKPG at once (not after the wait
 * for partition nodes ran out). Every disk stays locked (flock, for udev) until the plan is freed,
 * mkfs works meanwhile. */
static void test_partscan_and_lock(void **state) {
        char *f1 = image("scan.img", 100 * GiB);
        char *d1 = run_out((const char *[]) { "losetup", "-f", "--show", "-P", f1, NULL });
        assert_non_null(d1);
        loops[n_loops++] = strdup(d1);
        struct config *c = config_new(d1, NULL);
        struct disk_plan *p = NULL;

        assert_int_equal(disks_prepare(c, &p), 0);
        assert_int_equal(disks_write(p), 0);
        check_written(p, d1, NULL);
        int fd = open(d1, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_true(flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK); /* udev would skip it */
        assert_int_equal(disks_rollback(p), 0); /* under the lock too */
        assert_false(kernel_has_partitions(d1));
        disk_plan_free(p);
        assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0); /* released with the plan */
        close(fd);
        assert_blank(d1);

        config_done(c);
        detach_all();
        unlink(f1);
        free(f1);
        free(d1);
}

/* mkfs.ext4 fails after the GPT and COS_GRUB were written: the disk ends blank. */
static void test_failure_rolls_back(void **state) {
        char *f1 = image("disk.img", 100 * GiB);
        char *d1 = attach(f1);
        char *bin = strdup_printf("%s/bin", tmpdir), *fake = strdup_printf("%s/mkfs.ext4", bin);
        assert_int_equal(mkdir(bin, 0755), 0);
        static const char script[] = "#!/bin/sh\necho 'fake mkfs.ext4: no space left' >&2\nexit 1\n";
        assert_int_equal(write_file_atomic(fake, script, strlen(script), 0755), 0);
        /* Tools are looked up in the agent's fixed search path (format.h); the test knob puts the
         * fake first. */
        char *newpath = strdup_printf("%s:%s", bin, command_search_path());
        struct config *c = config_new(d1, NULL);
        struct disk_plan *p = NULL;

        assert_int_equal(disks_prepare(c, &p), 0);
        setenv("HARVESTER_INSTALL_TOOL_PATH", newpath, 1);
        assert_true(disks_write(p) < 0);
        unsetenv("HARVESTER_INSTALL_TOOL_PATH");
        assert_null(disk_plan_node(p, PART_EFI));
        disk_plan_free(p);
        assert_blank(d1);
        assert_false(kernel_has_partitions(d1));

        config_done(c);
        detach_all();
        unlink(fake);
        rmdir(bin);
        unlink(f1);
        free(f1);
        free(d1);
        free(bin);
        free(fake);
        free(newpath);
}

/* A case that cannot run here says why; the program then exits 77, so that meson counts the
 * program as skipped (tests/run-all fails a CI run with a skip) instead of a silent pass. */
static unsigned n_skipped;
static void skipped(const char *why) {
        fprintf(stderr, "SKIP: %s\n", why);
        n_skipped++;
}

/* An old install's LVM physical volume and volume group (no logical volume, so no holder) on a
 * disk of the wipe list: wiped blank. The holder case (an ACTIVE volume group on the install disk,
 * stopped by the agent with vgchange -an before the wipe) needs device-mapper, which the test
 * machine's kernel lacks: the VM scenario lvm-holder (qemu/scenarios.py) runs it under Debian's
 * kernel instead. */
static void test_lvm(void **state) {
        if (!command_exists("lvm")) {
                skipped("lvm2 is not installed: LVM not tested");
                return;
        }
        char *f1 = image("disk.img", 100 * GiB), *f3 = image("old.img", 2 * GiB);
        char *d1 = attach(f1), *d3 = attach(f3);
        char *out = NULL;
        vg_name = strdup_printf("harvtest%d", (int)getpid());
        assert_non_null(out = run_out((const char *[]) { "pvcreate", "-ff", "-y", d3, NULL }));
        free(out);
        /* No metadata backup: the host's /etc/lvm/backup and archive would keep a file per run. */
        assert_non_null(out = run_out((const char *[]) { "vgcreate", "--config", "backup { backup=0 archive=0 }",
                                                          vg_name, d3, NULL }));
        free(out);
        struct holder *h = NULL;
        size_t n = 0;

        struct config *c = config_new(d1, NULL);
        strv_push(&c->install.wipe_disks_list, d3);
        struct disk_plan *p = NULL;
        assert_int_equal(disks_prepare(c, &p), 0);
        assert_int_equal(disks_write(p), 0);
        disk_plan_free(p);
        assert_blank(d3);
        assert_int_equal(holders_list(d3 + 5, &h, &n), 0);
        assert_int_equal(n, 0);
        free(h);

        config_done(c);
        detach_all();
        unlink(f1);
        unlink(f3);
        free(f1);
        free(f3);
        free(d1);
        free(d3);
}

static void expect_refused(struct config *c, int err, const char *const *files) {
        uint64_t before[4] = {}, after[4] = {};
        struct disk_plan *p = (struct disk_plan *)0x1;
        for (size_t i = 0; files[i]; i++)
                before[i] = sum(files[i]);
        assert_int_equal(disks_prepare(c, &p), err);
        assert_ptr_equal(p, (struct disk_plan *)0x1); /* ret untouched */
        for (size_t i = 0; files[i]; i++) {
                after[i] = sum(files[i]);
                assert_true(before[i] == after[i]);
        }
}

static void test_refusals(void **state) {
        char *f1 = image("disk.img", 300 * GiB), *f2 = image("small.img", 20 * GiB), *f4 = image("mnt.img", 1 * GiB);
        char *d1 = attach(f1), *d2 = attach(f2), *d4 = attach(f4);
        struct config *c;

        /* An old table on the disk, so that a write would show. */
        {
                struct config *w = config_new(d1, NULL);
                struct disk_plan *p = NULL;
                assert_int_equal(disks_prepare(w, &p), 0);
                assert_int_equal(disks_write(p), 0);
                disk_plan_free(p);
                config_done(w);
        }

        disks_set_wait_timeout(1000000);
        c = config_new("/dev/disk/by-id/no-such-disk", NULL);
        expect_refused(c, -ENODEV, (const char *[]) { f1, NULL });
        config_done(c);

        char *part = strdup_printf("%sp3", d1);
        c = config_new(part, NULL);
        expect_refused(c, -EINVAL, (const char *[]) { f1, NULL });
        config_done(c);
        free(part);

        c = config_new(d1, d1);
        expect_refused(c, -EINVAL, (const char *[]) { f1, NULL });
        config_done(c);

        /* Two names of one disk: a by-id-like symlink, and a second device node. */
        char *byid = strdup_printf("%s/by-id", tmpdir), *link = strdup_printf("%s/by-id/ata-FAKE_disk0", tmpdir);
        char *node2 = strdup_printf("%s/second-node", tmpdir);
        struct stat st;
        assert_int_equal(mkdir(byid, 0755), 0);
        assert_int_equal(symlink(d1, link), 0);
        assert_int_equal(stat(d1, &st), 0);
        assert_int_equal(mknod(node2, S_IFBLK | 0600, st.st_rdev), 0);
        c = config_new(link, d1);
        expect_refused(c, -EINVAL, (const char *[]) { f1, NULL });
        config_done(c);
        c = config_new(d1, node2);
        expect_refused(c, -EINVAL, (const char *[]) { f1, NULL });
        config_done(c);
        c = config_new(link, node2);
        expect_refused(c, -EINVAL, (const char *[]) { f1, NULL });
        config_done(c);
        /* Two paths to one disk with distinct device numbers (as multipath's): two loop devices
         * on one file. */
        char *d1b = attach(f1);
        c = config_new(d1, d1b);
        expect_refused(c, -EINVAL, (const char *[]) { f1, NULL });
        config_done(c);
        free(d1b);
        unlink(node2);
        unlink(link);
        rmdir(byid);
        free(node2);
        free(link);
        free(byid);

        c = config_new(d2, NULL);
        expect_refused(c, -ENOSPC, (const char *[]) { f2, NULL });
        config_done(c);

        c = config_new(d1, d2); /* a data disk below 60 GiB */
        expect_refused(c, -ENOSPC, (const char *[]) { f1, f2, NULL });
        config_done(c);

        /* Mounted. */
        assert_int_equal(format_device(d4, "ext4", "OLD"), 0);
        char *mnt = strdup_printf("%s/mnt", tmpdir);
        assert_int_equal(mkdir(mnt, 0755), 0);
        assert_int_equal(mount(d4, mnt, "ext4", 0, NULL), 0);
        c = config_new(d1, d4);
        expect_refused(c, -EBUSY, (const char *[]) { f1, NULL });
        config_done(c);
        c = config_new(d1, NULL);
        strv_push(&c->install.wipe_disks_list, d4);
        expect_refused(c, -EBUSY, (const char *[]) { f1, NULL });
        config_done(c);
        assert_int_equal(umount(mnt), 0);
        rmdir(mnt);
        free(mnt);
        disks_set_wait_timeout(0);

        detach_all();
        unlink(f1);
        unlink(f2);
        unlink(f4);
        free(f1);
        free(f2);
        free(f4);
        free(d1);
        free(d2);
        free(d4);
}

/* Who a disk is, for the plan and the webhooks: found through any of its names. */
static void test_identity(void **state) {
        char *f1 = image("disk.img", 300 * GiB);
        char *d1 = attach(f1);
        char *link = strdup_printf("%s/a-name", tmpdir);
        assert_int_equal(symlink(d1, link), 0);

        struct disk_identity id = {};
        assert_int_equal(disk_identify(link, &id), 0);
        assert_string_equal(id.node, d1);
        assert_true(id.size == 300 * GiB);
        disk_identity_done(&id);
        assert_int_equal(disk_identify("/dev/disk/by-id/no-such-disk", &id), -ENOENT);
        assert_int_equal(disk_identify("/dev/null", &id), -ENOTBLK);

        /* The webhooks' template data. */
        struct config *c = config_new(link, "/dev/disk/by-id/no-such-disk");
        struct webhook_values v;
        webhook_values_collect(c, &v);
        assert_string_equal(v.install_disk.name, link);
        assert_string_equal(v.install_disk.node, d1);
        assert_string_equal(v.install_disk.size, "322122547200");
        assert_string_equal(v.data_disk.name, "/dev/disk/by-id/no-such-disk");
        assert_null(v.data_disk.node); /* not found: the name only */
        char *out = NULL;
        assert_int_equal(webhook_render("{{.InstallDisk}} {{.InstallDiskNode}} {{.InstallDiskSize}}", &v, &out, NULL), 0);
        char *want = strdup_printf("%s %s 322122547200", link, d1);
        assert_string_equal(out, want);
        free(want);
        free(out);
        webhook_values_done(&v);
        config_done(c);

        unlink(link);
        free(link);
        detach_all();
        unlink(f1);
        free(f1);
        free(d1);
}

/* The disk holding / (the installer's own medium in the initrd: its live medium) is refused
 * before anything opens it. */
static void test_installer_medium(void **state) {
        struct stat st;
        char link[64], *real, *dev = NULL;
        assert_int_equal(stat("/", &st), 0);
        snprintf(link, sizeof link, "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
        real = realpath(link, NULL);
        if (!real) {
                skipped("/ is not on a block device here: installer medium not tested");
                return;
        }
        char *pf = strdup_printf("%s/partition", real);
        if (access(pf, F_OK) == 0)
                *strrchr(real, '/') = 0; /* the whole disk */
        dev = strdup_printf("/dev/%s", strrchr(real, '/') + 1);
        struct config *c = config_new(dev, NULL);
        struct disk_plan *p = NULL;
        assert_int_equal(disks_prepare(c, &p), -EBUSY);
        assert_null(p);
        assert_int_equal(disks_prepare_flags(c, DISK_PREPARE_DRY_RUN, &p), -EBUSY);
        assert_null(p);
        config_done(c);
        free(pf);
        free(real);
        free(dev);
}

static int setup(void **state) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/test-disk-root.XXXXXX", base && *base ? base : "/var/tmp");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
        detach_all();
        (void)run_quiet((const char *[]) { "rm", "-rf", "--one-file-system", tmpdir, NULL });
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_write_and_rollback),
                cmocka_unit_test(test_partscan_and_lock),
                cmocka_unit_test(test_failure_rolls_back),
                cmocka_unit_test(test_lvm),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_identity),
                cmocka_unit_test(test_installer_medium),
        };
        if (geteuid() != 0) {
                fprintf(stderr, "not root: skipped\n");
                return 77;
        }
        if (access("/dev/loop-control", F_OK) < 0 || !command_exists("losetup")) {
                fprintf(stderr, "no loop devices: skipped\n");
                return 77;
        }
        int r = cmocka_run_group_tests(tests, setup, teardown);
        if (r == 0 && n_skipped > 0) {
                fprintf(stderr, "SKIP: %u case(s) could not run here (see above)\n", n_skipped);
                return 77;
        }
        return r;
}
