/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stray_labels_clear() on loop devices (root): an "install" and a "data" disk labelled
 * HARV_LH_DEFAULT keep their label; a third ext4 labelled HARV_LH_DEFAULT holding a file loses
 * its label and nothing else (every byte outside the superblock unchanged, the superblock changed
 * only in its label, checksum and write stamps, the file read back with debugfs); a fourth labelled otherwise is
 * untouched; a swap area labelled HARV_LH_DEFAULT is an error and stays as it was.
 * Exit 77 without root or loop devices.
 */
#include "helpers.h"

#include "format.h"
#include "stray-label.h"

#define IMG_BYTES (8u << 20) /* one block group of 4 KiB blocks: one superblock, at 1024 */
#define SB_OFF 1024u
#define SB_LABEL 120u    /* s_volume_name[16] */
#define SB_CHECKSUM 1020u /* s_checksum (metadata_csum) */

static char *dir;
static char *loops[8];
static size_t n_loops;

static char *run_out(char **argv) {
        char *out = NULL;
        int r = run_command(argv, &out);
        if (r != 0) {
                print_error("%s failed (%d): %s", argv[0], r, strempty(out));
                free(out);
                fail();
        }
        out[strcspn(out, "\n")] = 0;
        return out;
}

/* An 8 MiB ext4 (or swap) image labelled label, holding dir/content when content. Returns its loop device. */
static char *make_disk(const char *name, const char *fstype, const char *label, bool content) {
        _cleanup_free_ char *img = strdup_printf("%s/%s.img", dir, name);
        _cleanup_free_ char *src = strdup_printf("%s/content", dir);
        int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, IMG_BYTES), 0);
        close(fd);
        if (streq(fstype, "ext4")) {
                char *argv[] = { (char *)"mkfs.ext4", (char *)"-q", (char *)"-F", (char *)"-b", (char *)"4096",
                                 (char *)"-L", (char *)label, (char *)"-d", content ? src : NULL, img, NULL };
                if (!content) {
                        argv[7] = img;
                        argv[8] = NULL;
                }
                free(run_out(argv));
        } else {
                char *argv[] = { (char *)"mkswap", (char *)"-L", (char *)label, img, NULL };
                free(run_out(argv));
        }
        char *argv[] = { (char *)"losetup", (char *)"-f", (char *)"--show", img, NULL };
        char *dev = run_out(argv);
        loops[n_loops++] = dev;
        return dev;
}

static char *read_dev(const char *dev) {
        _cleanup_(closep) int fd = open(dev, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        char *b = malloc(IMG_BYTES);
        assert_non_null(b);
        assert_int_equal(pread(fd, b, IMG_BYTES, 0), (ssize_t)IMG_BYTES);
        return b;
}

static char *label_of(const char *dev) {
        char *argv[] = { (char *)"blkid", (char *)"-p", (char *)"-o", (char *)"value", (char *)"-s", (char *)"LABEL", (char *)dev, NULL };
        char *out = NULL;
        int r = run_command(argv, &out);
        assert_true(r == 0 || r == 2); /* 2: no LABEL */
        out[strcspn(out, "\n")] = 0;
        return out;
}

static void test_clear(void **state) {
        _cleanup_free_ char *src = strdup_printf("%s/content", dir);
        assert_int_equal(mkdir(src, 0755), 0);
        _cleanup_free_ char *file = strdup_printf("%s/keep.txt", src);
        write_text(file, "data of an old Harvester node's default disk\n");

        char *install = make_disk("install", "ext4", STRAY_LABEL, false);
        char *data = make_disk("data", "ext4", STRAY_LABEL, false);
        char *stray = make_disk("stray", "ext4", STRAY_LABEL, true);
        char *other = make_disk("other", "ext4", "OTHERDATA", true);
        char *only[] = { install, data, stray, other, NULL };
        _cleanup_free_ char *before = read_dev(stray), *other_before = read_dev(other);
        _cleanup_free_ char *install_before = read_dev(install);

        const char *keep[] = { install, data };
        unsigned n = 99;
        assert_int_equal(stray_labels_clear(keep, 2, only, &n), 0);
        assert_int_equal(n, 1);

        _cleanup_free_ char *l1 = label_of(install), *l2 = label_of(data), *l3 = label_of(stray), *l4 = label_of(other);
        assert_string_equal(l1, STRAY_LABEL);
        assert_string_equal(l2, STRAY_LABEL);
        assert_string_equal(l3, "");
        assert_string_equal(l4, "OTHERDATA");

        /* the stray disk: only the label and the superblock checksum changed */
        _cleanup_free_ char *after = read_dev(stray);
        size_t changed = 0;
        for (size_t i = 0; i < IMG_BYTES; i++) {
                if (before[i] == after[i])
                        continue;
                changed++;
                bool in_label = i >= SB_OFF + SB_LABEL && i < SB_OFF + SB_LABEL + 16;
                bool in_csum = i >= SB_OFF + SB_CHECKSUM && i < SB_OFF + SB_CHECKSUM + 4;
                /* what any write of the superblock updates: s_wtime, s_kbytes_written, s_wtime_hi */
                bool in_stamp = (i >= SB_OFF + 48 && i < SB_OFF + 52) || (i >= SB_OFF + 376 && i < SB_OFF + 384) ||
                                i == SB_OFF + 628;
                if (!in_label && !in_csum && !in_stamp)
                        fail_msg("byte %zu of the stray disk changed (outside its label, checksum and write stamps)", i);
        }
        assert_true(changed > 0);
        for (size_t i = 0; i < 16; i++)
                assert_int_equal(after[SB_OFF + SB_LABEL + i], 0);
        _cleanup_free_ char *other_after = read_dev(other), *install_after = read_dev(install);
        assert_memory_equal(other_before, other_after, IMG_BYTES);
        assert_memory_equal(install_before, install_after, IMG_BYTES);

        /* the file is still there, byte for byte */
        char *argv[] = { (char *)"debugfs", (char *)"-R", (char *)"cat /keep.txt", stray, NULL };
        _cleanup_free_ char *out = NULL;
        assert_int_equal(run_command(argv, &out), 0);
        assert_non_null(strstr(out, "data of an old Harvester node's default disk\n"));

        /* nothing left to do: a second run clears nothing */
        assert_int_equal(stray_labels_clear(keep, 2, only, &n), 0);
        assert_int_equal(n, 0);
}

static void test_not_ext(void **state) {
        char *install = make_disk("install2", "ext4", "COS_OEM", false);
        char *fat = make_disk("swap", "swap", STRAY_LABEL, false);
        char *only[] = { install, fat, NULL };
        _cleanup_free_ char *before = read_dev(fat);
        const char *keep[] = { install };
        assert_int_equal(stray_labels_clear(keep, 1, only, NULL), -EMEDIUMTYPE);
        _cleanup_free_ char *after = read_dev(fat);
        assert_memory_equal(before, after, IMG_BYTES);
}

static int setup(void **state) {
        dir = tmpdir_new();
        return 0;
}

static int teardown(void **state) {
        for (size_t i = 0; i < n_loops; i++) {
                char *argv[] = { (char *)"losetup", (char *)"-d", loops[i], NULL };
                (void)run_command(argv, NULL);
                free(loops[i]);
        }
        n_loops = 0;
        tmpdir_remove(dir);
        return 0;
}

int main(void) {
        if (geteuid() != 0)
                return fprintf(stderr, "SKIP: not root\n"), 77;
        if (access("/dev/loop-control", F_OK) < 0 || !command_exists("losetup"))
                return fprintf(stderr, "SKIP: no loop devices\n"), 77;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_clear),
                cmocka_unit_test(test_not_ext),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
