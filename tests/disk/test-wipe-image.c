/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wiping and old-install detection on sparse image files (no root): libblkid works on a regular
 * file as on a disk. An image with our GPT and filesystems made inside its partitions (mkfs with
 * an offset) is recognised as an old install (wipe_all_disks), then wiped: afterwards no prober
 * finds anything, the partitions' filesystems included. Exit 77 without mkfs.ext4/mkfs.vfat.
 */
#include <blkid/blkid.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "format.h"
#include "layout.h"
#include "partition.h"
#include "util.h"
#include "wipe.h"

#define MiB LAYOUT_MiB
#define GiB LAYOUT_GiB

static char tmpdir[] = "/var/tmp/test-wipe-image.XXXXXX";

static char *make_image(const char *name, uint64_t size) {
        char *path = strdup_printf("%s/%s", tmpdir, name);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        close(fd);
        return path;
}

static void run_ok(const char *const argv[]) {
        char *out = NULL;
        int r = run_command((char *const *)argv, &out);
        if (r != 0)
                fprintf(stderr, "%s: %d\n%s", argv[0], r, strempty(out));
        assert_int_equal(r, 0);
        free(out);
}

/* How many signatures a wipefs-like probe finds on the whole file. */
static int count_signatures(const char *path) {
        blkid_probe pr = blkid_new_probe_from_filename(path);
        int n = 0;
        assert_non_null(pr);
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM);
        blkid_probe_enable_partitions(pr, 1);
        blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);
        while (blkid_do_probe(pr) == 0)
                n++;
        blkid_free_probe(pr);
        return n;
}

/* The label of a filesystem at offset, or NULL. */
static char *label_at(const char *path, uint64_t off) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        blkid_probe pr = blkid_new_probe();
        const char *l = NULL;
        char *ret = NULL;
        assert_true(fd >= 0);
        assert_int_equal(blkid_probe_set_device(pr, fd, (blkid_loff_t)off, 0), 0);
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_LABEL);
        if (blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "LABEL", &l, NULL) == 0)
                ret = strdup(l);
        blkid_free_probe(pr);
        close(fd);
        return ret;
}

static void test_old_install_found_and_wiped(void **state) {
        struct layout l;
        struct layout_request req = { .disk_bytes = 100 * GiB };
        assert_int_equal(layout_compute(&req, &l), 0);
        char *path = make_image("old.img", 100 * GiB);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(partition_write_table(fd, path, &l), 0);

        /* COS_GRUB in partition 1, COS_STATE in partition 4 (64 MiB filesystems are enough). */
        char *sect = strdup_printf("--offset=%" PRIu64, l.parts[0].start / 512);
        run_ok((const char *[]) { "mkfs.vfat", "-F", "32", "-n", "COS_GRUB", sect, path, "65536", NULL });
        char *ext = strdup_printf("offset=%" PRIu64 ",lazy_itable_init=1,lazy_journal_init=1,nodiscard", l.parts[3].start);
        run_ok((const char *[]) { "mkfs.ext4", "-q", "-F", "-L", "COS_STATE", "-E", ext, path, "64M", NULL });
        char *s1 = label_at(path, l.parts[0].start), *s4 = label_at(path, l.parts[3].start);
        assert_string_equal(s1, "COS_GRUB");
        assert_string_equal(s4, "COS_STATE");
        free(s1);
        free(s4);

        char *label = NULL;
        assert_int_equal(wipe_find_old_install(fd, path, &label), 1);
        assert_string_equal(label, "COS_GRUB");
        free(label);
        assert_true(count_signatures(path) >= 1); /* the GPT (the rest shows once it is wiped) */

        unsigned count = 0;
        assert_int_equal(wipe_signatures(fd, path, &count), 0);
        /* vfat (3 magics), ext4, primary GPT, backup GPT, PMBR */
        assert_true(count >= 7);
        assert_int_equal(count_signatures(path), 0);
        assert_null(label_at(path, l.parts[0].start));
        assert_null(label_at(path, l.parts[3].start));
        assert_int_equal(wipe_find_old_install(fd, path, &label), 0);
        struct part_info *parts = NULL;
        size_t n;
        assert_int_equal(partition_read_table(fd, path, NULL, &parts, &n), -ENOMEDIUM);
        /* Nothing left for a second wipe. */
        count = 0;
        assert_int_equal(wipe_signatures(fd, path, &count), 0);
        assert_int_equal(count, 0);

        close(fd);
        unlink(path);
        free(path);
        free(sect);
        free(ext);
}

static void test_whole_disk_labels(void **state) {
        char *path = make_image("data.img", 2 * GiB);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        char *label = NULL;
        assert_true(fd >= 0);
        /* Blank: no old install. */
        assert_int_equal(wipe_find_old_install(fd, path, &label), 0);
        /* Another system's filesystem: not an old install of ours. */
        run_ok((const char *[]) { "mkfs.ext4", "-q", "-F", "-L", "OTHER", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", path, NULL });
        assert_int_equal(wipe_find_old_install(fd, path, &label), 0);
        /* A Harvester USB stick (COS_LIVE) or any other COS_ label: left alone. */
        run_ok((const char *[]) { "mkfs.ext4", "-q", "-F", "-L", "COS_LIVE", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", path, NULL });
        assert_int_equal(wipe_find_old_install(fd, path, &label), 0);
        run_ok((const char *[]) { "mkfs.vfat", "-n", "COS_LIVE", path, NULL });
        assert_int_equal(wipe_find_old_install(fd, path, &label), 0);
        run_ok((const char *[]) { "mkfs.ext4", "-q", "-F", "-L", "COS_OTHER", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", path, NULL });
        assert_int_equal(wipe_find_old_install(fd, path, &label), 0);
        /* An old data disk. */
        run_ok((const char *[]) { "mkfs.ext4", "-q", "-F", "-L", "HARV_LH_DEFAULT", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", path, NULL });
        assert_int_equal(wipe_find_old_install(fd, path, &label), 1);
        assert_string_equal(label, "HARV_LH_DEFAULT");
        free(label);
        assert_int_equal(wipe_signatures(fd, path, NULL), 0);
        assert_int_equal(count_signatures(path), 0);
        close(fd);
        unlink(path);
        free(path);
}

static int setup(void **state) {
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
        char *out = NULL;
        (void)run_command((char *const *)(const char *[]) { "rm", "-rf", "--one-file-system", tmpdir, NULL }, &out);
        free(out);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_old_install_found_and_wiped),
                cmocka_unit_test(test_whole_disk_labels),
        };
        if (!command_exists("mkfs.ext4") || !command_exists("mkfs.vfat")) {
                fprintf(stderr, "mkfs.ext4 or mkfs.vfat missing (e2fsprogs, dosfstools): skipped\n");
                return 77;
        }
        return cmocka_run_group_tests(tests, setup, teardown);
}
