/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The partition code on sparse image files (no root): write the layout's GPT into a regular file,
 * read it back with libfdisk directly (not with our reader) and compare start, size, name and type
 * of every entry; check the protective MBR and both GPT headers on disk.
 */
#include <dirent.h>
#include <fcntl.h>
#include <libfdisk/libfdisk.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "layout.h"
#include "partition.h"
#include "util.h"

#define MiB LAYOUT_MiB
#define GiB LAYOUT_GiB

static char tmpdir[] = "/var/tmp/test-partition-image.XXXXXX";

static int make_image(uint64_t size, char **ret_path) {
        static unsigned counter;
        char *path = strdup_printf("%s/disk%u.img", tmpdir, counter++);
        assert_non_null(path);
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        *ret_path = path;
        return fd;
}

static void read_at(int fd, uint64_t off, void *buf, size_t len) {
        assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
}

/* Reads the table with libfdisk itself and compares with the layout. */
static void check_with_libfdisk(const char *path, const struct layout *l) {
        struct fdisk_context *cxt = fdisk_new_context();
        struct fdisk_table *tb = NULL;
        assert_non_null(cxt);
        assert_int_equal(fdisk_assign_device(cxt, path, 1), 0);
        bool msdos = streq(l->table, "dos");
        assert_true(fdisk_has_label(cxt));
        assert_true(msdos ? fdisk_is_label(cxt, DOS) : fdisk_is_label(cxt, GPT));
        assert_int_equal(fdisk_get_sector_size(cxt), 512);
        assert_int_equal(fdisk_get_partitions(cxt, &tb), 0);
        assert_int_equal(fdisk_table_get_nents(tb), l->n_parts);
        for (size_t i = 0; i < l->n_parts; i++) {
                const struct layout_part *p = &l->parts[i];
                struct fdisk_partition *pa = fdisk_table_get_partition(tb, i);
                assert_non_null(pa);
                assert_int_equal(fdisk_partition_get_partno(pa), p->partno - 1);
                assert_int_equal((uint64_t)fdisk_partition_get_start(pa) * 512, p->start);
                assert_int_equal((uint64_t)fdisk_partition_get_size(pa) * 512, p->size);
                if (msdos) {
                        assert_int_equal(fdisk_parttype_get_code(fdisk_partition_get_type(pa)), 0x83);
                        assert_int_equal(fdisk_partition_is_bootable(pa), p->id == PART_STATE);
                } else {
                        assert_string_equal(fdisk_partition_get_name(pa), p->name);
                        assert_string_equal(fdisk_parttype_get_string(fdisk_partition_get_type(pa)), p->type);
                }
        }
        /* Nothing beyond the layout, no overlaps, and libfdisk finds the table consistent. */
        assert_int_equal(fdisk_verify_disklabel(cxt), 0);
        fdisk_unref_table(tb);
        fdisk_unref_context(cxt);
}

static void check_headers(int fd, uint64_t size) {
        unsigned char mbr[512], hdr[512];
        read_at(fd, 0, mbr, sizeof mbr);
        assert_int_equal(mbr[510], 0x55);
        assert_int_equal(mbr[511], 0xaa);
        assert_int_equal(mbr[446 + 4], 0xee); /* protective MBR */
        read_at(fd, 512, hdr, sizeof hdr);
        assert_memory_equal(hdr, "EFI PART", 8);
        read_at(fd, size / 512 * 512 - 512, hdr, sizeof hdr);
        assert_memory_equal(hdr, "EFI PART", 8); /* the backup header in the last sector */
}

static void write_and_check(uint64_t size, uint64_t data_disk, uint64_t ppb) {
        struct layout l;
        struct layout_request req = {
                .disk_bytes = size,
                .data_disk = data_disk ? "/dev/data" : NULL,
                .data_disk_bytes = data_disk,
                .persistent_partition_bytes = ppb,
                .efi = true,
        };
        _cleanup_free_ char *path = NULL;
        assert_int_equal(layout_compute(&req, &l), 0);
        int fd = make_image(size, &path);
        assert_int_equal(partition_write_table(fd, path, &l), 0);
        check_with_libfdisk(path, &l);
        check_headers(fd, size);
        assert_int_equal(partition_verify(fd, path, &l), 0);

        /* Our reader agrees. */
        struct part_info *parts = NULL;
        char *label = NULL;
        size_t n = 0;
        assert_int_equal(partition_read_table(fd, path, &label, &parts, &n), 0);
        assert_string_equal(label, "gpt");
        assert_int_equal(n, l.n_parts);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(parts[i].partno, i + 1);
                assert_int_equal(parts[i].start, l.parts[i].start);
                assert_int_equal(parts[i].size, l.parts[i].size);
        }
        free(parts);
        free(label);

        /* The image stays sparse: a table is a few KiB at each end. */
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_true((uint64_t)st.st_blocks * 512 < 4 * MiB);
        close(fd);
        assert_int_equal(unlink(path), 0);
}

static void test_300(void **state) {
        write_and_check(300 * GiB, 0, 0);
        write_and_check(300 * GiB, 60 * GiB, 0);
        write_and_check(300 * GiB, 0, 150 * GiB);
}

static void test_sizes(void **state) {
        write_and_check(180 * GiB, 0, 0);
        write_and_check(250 * GiB, 0, 0);
        write_and_check(2048 * GiB, 0, 0);
        write_and_check(2048 * GiB, 100 * GiB, 0);
        write_and_check(60 * GiB, 0, 0);
        write_and_check(139 * GiB + 12345, 0, 0); /* not a whole MiB */
}

/* An existing MBR table is replaced; the wrong layout for a disk is refused. */
static void test_replace_and_mismatch(void **state) {
        struct layout l;
        struct layout_request req = { .disk_bytes = 100 * GiB, .efi = true };
        _cleanup_free_ char *path = NULL;
        assert_int_equal(layout_compute(&req, &l), 0);
        int fd = make_image(100 * GiB, &path);

        struct fdisk_context *cxt = fdisk_new_context();
        assert_int_equal(fdisk_assign_device(cxt, path, 0), 0);
        assert_int_equal(fdisk_create_disklabel(cxt, "dos"), 0);
        struct fdisk_partition *pa = fdisk_new_partition();
        fdisk_partition_set_partno(pa, 0);
        fdisk_partition_set_start(pa, 2048);
        fdisk_partition_set_size(pa, 1 << 20);
        assert_int_equal(fdisk_add_partition(cxt, pa, NULL), 0);
        fdisk_unref_partition(pa);
        assert_int_equal(fdisk_write_disklabel(cxt), 0);
        fdisk_unref_context(cxt);

        char *label = NULL;
        struct part_info *parts = NULL;
        size_t n;
        assert_int_equal(partition_read_table(fd, path, &label, &parts, &n), 0);
        assert_string_equal(label, "dos");
        assert_int_equal(n, 1);
        free(label);
        free(parts);
        assert_true(partition_verify(fd, path, &l) < 0);

        assert_int_equal(partition_write_table(fd, path, &l), 0);
        check_with_libfdisk(path, &l);
        check_headers(fd, 100 * GiB);

        /* A layout computed for another size is refused, and nothing is written. */
        struct layout other;
        req.disk_bytes = 200 * GiB;
        assert_int_equal(layout_compute(&req, &other), 0);
        assert_int_equal(partition_write_table(fd, path, &other), -EINVAL);
        check_with_libfdisk(path, &l);
        close(fd);
        unlink(path);
        free(path);

        /* No table at all. */
        fd = make_image(1 * GiB, &path);
        assert_int_equal(partition_read_table(fd, path, NULL, &parts, &n), -ENOMEDIUM);
        close(fd);
        unlink(path);
}

/* An old install's GRUB boot code in the first sector: the new table must not keep it. */
static void plant_boot_code(int fd) {
        unsigned char code[440];
        memset(code, 0xeb, sizeof code);
        assert_int_equal(pwrite(fd, code, sizeof code, 0), (ssize_t)sizeof code);
}

static void assert_no_boot_code(int fd) {
        unsigned char mbr[512], zero[440] = {};
        read_at(fd, 0, mbr, sizeof mbr);
        assert_memory_equal(mbr, zero, sizeof zero);
        assert_int_equal(mbr[510], 0x55);
        assert_int_equal(mbr[511], 0xaa);
}

/* Legacy BIOS: GPT with the 1 MiB bios_grub partition first (its type is what GRUB embeds into). */
static void test_bios_gpt(void **state) {
        struct layout l;
        struct layout_request req = { .disk_bytes = 300 * GiB };
        _cleanup_free_ char *path = NULL;
        assert_int_equal(layout_compute(&req, &l), 0);
        int fd = make_image(300 * GiB, &path);
        plant_boot_code(fd);
        assert_int_equal(partition_write_table(fd, path, &l), 0);
        check_with_libfdisk(path, &l);
        check_headers(fd, 300 * GiB);
        assert_no_boot_code(fd);
        assert_int_equal(partition_verify(fd, path, &l), 0);
        struct part_info *parts = NULL;
        size_t n = 0;
        assert_int_equal(partition_read_table(fd, path, NULL, &parts, &n), 0);
        assert_int_equal(n, 6);
        assert_string_equal(parts[0].name, "bios");
        assert_string_equal(parts[0].type, GPT_TYPE_BIOS_BOOT);
        assert_int_equal(parts[0].start, 1 * MiB);
        assert_int_equal(parts[0].size, 1 * MiB);
        free(parts);
        /* A UEFI layout read back against it differs. */
        struct layout efi;
        req.efi = true;
        assert_int_equal(layout_compute(&req, &efi), 0);
        assert_true(partition_verify(fd, path, &efi) < 0);
        close(fd);
        unlink(path);
}

/* force_mbr: an msdos table, four primaries of type 83, the boot flag on COS_STATE (3), no backup. */
static void test_msdos(void **state) {
        static const uint64_t sizes[] = { 300 * GiB, UINT64_C(2199023255040) };
        for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                struct layout l;
                struct layout_request req = { .disk_bytes = sizes[k], .force_mbr = true };
                _cleanup_free_ char *path = NULL;
                assert_int_equal(layout_compute(&req, &l), 0);
                int fd = make_image(sizes[k], &path);
                plant_boot_code(fd);
                assert_int_equal(partition_write_table(fd, path, &l), 0);
                check_with_libfdisk(path, &l);
                assert_no_boot_code(fd);
                unsigned char mbr[512];
                read_at(fd, 0, mbr, sizeof mbr);
                for (int i = 0; i < 4; i++) {
                        assert_int_equal(mbr[446 + 16 * i + 4], 0x83);
                        assert_int_equal(mbr[446 + 16 * i], i == 2 ? 0x80 : 0x00); /* active: state */
                }
                assert_int_equal(partition_verify(fd, path, &l), 0);
                char *label = NULL;
                struct part_info *parts = NULL;
                size_t n = 0;
                assert_int_equal(partition_read_table(fd, path, &label, &parts, &n), 0);
                assert_string_equal(label, "dos");
                assert_int_equal(n, 4);
                assert_true(parts[2].bootable);
                assert_false(parts[3].bootable);
                assert_string_equal(parts[3].type, "83");
                /* the last partition ends inside what 32-bit sector numbers reach */
                assert_true((parts[3].start + parts[3].size) / 512 - 1 <= UINT32_MAX);
                free(label);
                free(parts);
                close(fd);
                unlink(path);
        }
}

static int setup(void **state) {
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
        /* Also what a failed test left behind. */
        DIR *d = opendir(tmpdir);
        struct dirent *de;
        if (!d)
                return -1;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        (void)unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
        return rmdir(tmpdir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_300),
                cmocka_unit_test(test_sizes),
                cmocka_unit_test(test_replace_and_mismatch),
                cmocka_unit_test(test_bios_gpt),
                cmocka_unit_test(test_msdos),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
