/* SPDX-License-Identifier: Apache-2.0 */
/* The install disk's layout, field by field against REFERENCE.md section 3 (pure arithmetic). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "layout.h"
#include "util.h"

#define MiB LAYOUT_MiB
#define GiB LAYOUT_GiB

/* Expected sizes in MiB of partitions 1..n (starts follow from them: the first at 1 MiB). */
static void check_layout(const struct layout *l, bool data_partition, const uint64_t *mib, size_t n) {
        static const char *const names[] = { "efi", "oem", "recovery", "state", "persistent", "data" };
        static const char *const labels[] = { "COS_GRUB", "COS_OEM", "COS_RECOVERY", "COS_STATE", "COS_PERSISTENT", "HARV_LH_DEFAULT" };
        assert_int_equal(l->n_parts, data_partition ? 6 : 5);
        assert_int_equal(n, l->n_parts);
        uint64_t pos = 1 * MiB;
        for (size_t i = 0; i < n; i++) {
                const struct layout_part *p = &l->parts[i];
                assert_int_equal(p->partno, i + 1);
                assert_int_equal(p->id, (enum part_id)i);
                assert_string_equal(p->name, names[i]);
                assert_string_equal(p->label, labels[i]);
                assert_string_equal(p->fstype, i == 0 ? "vfat" : "ext4");
                assert_string_equal(p->type, i == 0 ? GPT_TYPE_EFI_SYSTEM : GPT_TYPE_LINUX_FS);
                assert_false(p->bootable);
                assert_int_equal(p->start, pos);
                assert_int_equal(p->size, mib[i] * MiB);
                assert_int_equal(p->start % MiB, 0);
                assert_int_equal(p->size % MiB, 0);
                assert_ptr_equal(layout_get(l, (enum part_id)i), p);
                pos += p->size;
        }
        /* The last partition ends before the backup GPT, within the last MiB. */
        assert_true(pos <= l->end_usable);
        assert_true(l->end_usable - pos < MiB);
        assert_true(l->first_usable <= 1 * MiB);
        if (!data_partition)
                assert_null(layout_get(l, PART_DATA));
        assert_string_equal(l->table, "gpt");
        assert_true(l->efi);
        assert_null(layout_get(l, PART_BIOS));
}

static struct layout compute_ok(uint64_t disk, uint64_t data_disk, uint64_t ppb, bool skipchecks) {
        struct layout l;
        struct layout_request req = {
                .device = "/dev/test",
                .disk_bytes = disk,
                .data_disk = data_disk ? "/dev/data" : NULL,
                .data_disk_bytes = data_disk,
                .persistent_partition_bytes = ppb,
                .skipchecks = skipchecks,
                .efi = true,
        };
        memset(&l, 0xaa, sizeof l);
        assert_int_equal(layout_compute(&req, &l), 0);
        assert_int_equal(l.disk_bytes, disk);
        assert_int_equal(l.sector_size, 512);
        assert_int_equal(l.has_data_disk, data_disk != 0);
        return l;
}

static int compute_err(uint64_t disk, uint64_t data_disk, uint64_t ppb, bool skipchecks) {
        struct layout l, orig;
        struct layout_request req = {
                .disk_bytes = disk,
                .data_disk = data_disk ? "/dev/data" : NULL,
                .data_disk_bytes = data_disk,
                .persistent_partition_bytes = ppb,
                .skipchecks = skipchecks,
                .efi = true,
        };
        memset(&l, 0x55, sizeof l);
        orig = l;
        int r = layout_compute(&req, &l);
        assert_true(r < 0);
        assert_memory_equal(&l, &orig, sizeof l); /* ret_ untouched on failure */
        return r;
}

static void test_formula(void **state) {
        static const struct { uint64_t d, g; } t[] = {
                { 60, 25 }, { 61, 25 }, { 64, 26 }, { 100, 37 }, { 120, 43 }, { 139, 49 },
                { 140, 50 }, { 180, 50 }, { 199, 50 }, { 200, 60 }, { 250, 60 }, { 300, 70 },
                { 500, 90 }, { 599, 90 }, { 600, 100 }, { 2048, 100 }, { 100000, 100 },
                { 20, 25 }, { 0, 25 },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                assert_int_equal(layout_persistent_gib(t[i].d), t[i].g);
        }
}

/* Sizes in MiB. Partitions 1-4: 64, 50 (64 with a data disk), 8192, 15360. */
static void test_180(void **state) {
        struct layout l = compute_ok(180 * GiB, 0, 0, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 50 * 1024, 109452 }, 6);
        l = compute_ok(180 * GiB, 60 * GiB, 0, false);
        check_layout(&l, false, (uint64_t[]) { 64, 64, 8192, 15360, 160638 }, 5);
        assert_int_equal(l.data_disk_bytes, 60 * GiB);
}

static void test_250(void **state) {
        struct layout l = compute_ok(250 * GiB, 0, 0, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 60 * 1024, 170892 }, 6);
        l = compute_ok(250 * GiB, 100 * GiB, 0, false);
        check_layout(&l, false, (uint64_t[]) { 64, 64, 8192, 15360, 256000 - 1 - 23681 }, 5);
}

static void test_300(void **state) {
        struct layout l = compute_ok(300 * GiB, 0, 0, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 70 * 1024, 211852 }, 6);
        assert_int_equal(l.parts[5].start, (1 + 64 + 50 + 8192 + 15360 + 71680) * MiB);
        assert_false(l.persistent_shrunk);
        l = compute_ok(300 * GiB, 60 * GiB, 0, false);
        check_layout(&l, false, (uint64_t[]) { 64, 64, 8192, 15360, 283518 }, 5);
}

static void test_2t(void **state) {
        struct layout l = compute_ok(2048 * GiB, 0, 0, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 100 * 1024, 1971084 }, 6);
        l = compute_ok(2048 * GiB, 2048 * GiB, 0, false);
        check_layout(&l, false, (uint64_t[]) { 64, 64, 8192, 15360, 2073470 }, 5);
}

static void test_small_floor_disks(void **state) {
        struct layout l = compute_ok(60 * GiB, 0, 0, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 25 * 1024, 12172 }, 6);
        l = compute_ok(100 * GiB, 0, 0, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 37 * 1024, 40844 }, 6);
        l = compute_ok(139 * GiB, 0, 0, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 49 * 1024, 68492 }, 6);
        /* 60 GiB minus one byte is 59 whole GiB: below the floor. */
        assert_int_equal(compute_err(60 * GiB - 1, 0, 0, false), -ENOSPC);
        /* Data disk floor. */
        assert_int_equal(compute_err(300 * GiB, 59 * GiB, 0, false), -ENOSPC);
        l = compute_ok(300 * GiB, 59 * GiB, 0, true);
        check_layout(&l, false, (uint64_t[]) { 64, 64, 8192, 15360, 283518 }, 5);
        assert_int_equal(compute_err(300 * GiB, 512 * MiB, 0, true), -ENOSPC);
}

static void test_persistent_size(void **state) {
        struct layout l = compute_ok(300 * GiB, 0, 150 * GiB, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 150 * 1024, 129932 }, 6);
        /* Not a whole MiB: rounded up. */
        l = compute_ok(300 * GiB, 0, 150 * GiB + 1, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 150 * 1024 + 1, 129931 }, 6);
        /* Ignored with a data disk: the rest. */
        l = compute_ok(300 * GiB, 60 * GiB, 150 * GiB, false);
        check_layout(&l, false, (uint64_t[]) { 64, 64, 8192, 15360, 283518 }, 5);
        /* Does not fit: an error, or shrunk with skipchecks, leaving HARV_LH_DEFAULT 1 GiB. */
        assert_int_equal(compute_err(300 * GiB, 0, 290 * GiB, false), -ENOSPC);
        l = compute_ok(300 * GiB, 0, 290 * GiB, true);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 282508, 1024 }, 6);
        assert_true(l.persistent_shrunk);
        /* Exactly the most that fits. */
        l = compute_ok(300 * GiB, 0, 282508 * MiB, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 282508, 1024 }, 6);
        assert_false(l.persistent_shrunk);
        assert_int_equal(compute_err(300 * GiB, 0, 282509 * MiB, false), -ENOSPC);
        /* Too small to be a COS_PERSISTENT. */
        assert_int_equal(compute_err(300 * GiB, 0, 100 * MiB, false), -EINVAL);
}

static void test_skipchecks_small(void **state) {
        /* 20 GiB cannot hold partitions 1-4 (23.1 GiB): an error even with skipchecks. */
        assert_int_equal(compute_err(20 * GiB, 0, 0, true), -ENOSPC);
        assert_int_equal(compute_err(20 * GiB, 0, 0, false), -ENOSPC);
        assert_int_equal(compute_err(20 * GiB, 60 * GiB, 0, true), -ENOSPC);
        /* 40 GiB: below the floor; with skipchecks COS_PERSISTENT (25 GiB asked) shrinks to fit. */
        assert_int_equal(compute_err(40 * GiB, 0, 0, false), -ENOSPC);
        struct layout l = compute_ok(40 * GiB, 0, 0, true);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 16268, 1024 }, 6);
        assert_true(l.persistent_shrunk);
        /* With a data disk the rest of a 30 GiB disk is COS_PERSISTENT. */
        l = compute_ok(30 * GiB, 30 * GiB, 0, true);
        check_layout(&l, false, (uint64_t[]) { 64, 64, 8192, 15360, 30719 - 23681 }, 5);
        /* The smallest disk that fits with skipchecks: partitions 1-4, 1 GiB + 1 GiB, GPT backup. */
        uint64_t min = (23667 + 2048) * MiB + 16384 + 512;
        l = compute_ok(min, 0, 0, true);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 1024, 1024 }, 6);
        assert_int_equal(compute_err(min - 1, 0, 0, true), -ENOSPC);
}

static void test_sector_4k(void **state) {
        struct layout l;
        struct layout_request req = { .disk_bytes = 300 * GiB, .sector_size = 4096, .efi = true };
        assert_int_equal(layout_compute(&req, &l), 0);
        assert_int_equal(l.sector_size, 4096);
        assert_int_equal(l.first_usable, 6 * 4096);
        assert_int_equal(l.end_usable, 300 * GiB - 5 * 4096);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 70 * 1024, 211852 }, 6);
        req.sector_size = 1000;
        assert_int_equal(layout_compute(&req, &l), -EINVAL);
        /* A size that is not a whole MiB: the rest ends at the last whole MiB before the backup GPT. */
        l = compute_ok(300 * GiB + 123457, 0, 0, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 70 * 1024, 211853 }, 6);
        l = compute_ok(300 * GiB + 16896 - 1, 0, 0, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 70 * 1024, 211852 }, 6);
        l = compute_ok(300 * GiB + 16896, 0, 0, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 70 * 1024, 211853 }, 6);
        l = compute_ok(300 * GiB + 2 * MiB, 0, 0, false);
        check_layout(&l, true, (uint64_t[]) { 64, 50, 8192, 15360, 70 * 1024, 211854 }, 6);
}

/* ---- Legacy BIOS: GPT with the bios_grub partition first; msdos with force_mbr ---- */

/* Computes req; checks r, and on failure that *ret is untouched. */
static int compute_req(const struct layout_request *req, struct layout *ret) {
        struct layout orig;
        memset(ret, 0x55, sizeof *ret);
        orig = *ret;
        int r = layout_compute(req, ret);
        if (r < 0)
                assert_memory_equal(ret, &orig, sizeof orig);
        return r;
}

/* Partitions of l against ids and sizes in MiB, contiguous from 1 MiB, numbered from 1. */
static void check_parts(const struct layout *l, const enum part_id *ids, const uint64_t *mib, size_t n) {
        static const char *const names[_PART_MAX] = { "efi", "oem", "recovery", "state", "persistent", "data", "bios" };
        static const char *const labels[_PART_MAX] = { "COS_GRUB", "COS_OEM", "COS_RECOVERY", "COS_STATE", "COS_PERSISTENT",
                                                       "HARV_LH_DEFAULT", NULL };
        bool msdos = streq(l->table, "dos");
        assert_int_equal(l->n_parts, n);
        uint64_t pos = 1 * MiB;
        for (size_t i = 0; i < n; i++) {
                const struct layout_part *p = &l->parts[i];
                assert_int_equal(p->partno, i + 1);
                assert_int_equal(p->id, ids[i]);
                assert_string_equal(p->name, names[ids[i]]);
                if (ids[i] == PART_BIOS) {
                        assert_null(p->label);
                        assert_null(p->fstype); /* never formatted */
                        assert_string_equal(p->type, GPT_TYPE_BIOS_BOOT);
                } else {
                        assert_string_equal(p->label, labels[ids[i]]);
                        assert_string_equal(p->fstype, "ext4");
                        assert_string_equal(p->type, msdos ? "83" : GPT_TYPE_LINUX_FS);
                }
                /* v1.1: the boot flag on COS_STATE, on msdos only */
                assert_int_equal(p->bootable, msdos && ids[i] == PART_STATE);
                assert_int_equal(p->start, pos);
                assert_int_equal(p->size, mib[i] * MiB);
                assert_ptr_equal(layout_get(l, ids[i]), p);
                pos += p->size;
        }
        assert_true(pos <= l->end_usable);
        assert_true(l->end_usable - pos < MiB);
        assert_null(layout_get(l, PART_EFI));
}

static void test_bios_gpt(void **state) {
        struct layout l;
        struct layout_request req = { .device = "/dev/test", .disk_bytes = 300 * GiB };
        assert_int_equal(compute_req(&req, &l), 0);
        assert_string_equal(l.table, "gpt");
        assert_false(l.efi);
        /* 1 MiB bios_grub instead of the 64 MiB COS_GRUB: partition 6 gets the 63 MiB */
        check_parts(&l, (enum part_id[]) { PART_BIOS, PART_OEM, PART_RECOVERY, PART_STATE, PART_PERSISTENT, PART_DATA },
                    (uint64_t[]) { 1, 50, 8192, 15360, 70 * 1024, 211852 + 63 }, 6);
        assert_int_equal(l.end_usable, 300 * GiB - 16896); /* the backup GPT */
        req.data_disk = "/dev/data";
        req.data_disk_bytes = 100 * GiB;
        assert_int_equal(compute_req(&req, &l), 0);
        check_parts(&l, (enum part_id[]) { PART_BIOS, PART_OEM, PART_RECOVERY, PART_STATE, PART_PERSISTENT },
                    (uint64_t[]) { 1, 64, 8192, 15360, 307199 - 1 - 1 - 64 - 8192 - 15360 }, 5);
        /* force_efi on a BIOS machine: refused, nothing computed */
        req.force_efi = true;
        assert_int_equal(compute_req(&req, &l), -EINVAL);
        req.efi = true;
        assert_int_equal(compute_req(&req, &l), 0);
        assert_non_null(layout_get(&l, PART_EFI));
}

static void test_msdos(void **state) {
        struct layout l;
        struct layout_request req = { .device = "/dev/test", .disk_bytes = 300 * GiB, .force_mbr = true };
        assert_int_equal(compute_req(&req, &l), 0);
        assert_string_equal(l.table, "dos");
        assert_false(l.efi);
        assert_int_equal(l.first_usable, 512);
        assert_int_equal(l.end_usable, 300 * GiB); /* no backup table */
        /* four primaries, no partition 6: COS_PERSISTENT takes the rest */
        check_parts(&l, (enum part_id[]) { PART_OEM, PART_RECOVERY, PART_STATE, PART_PERSISTENT },
                    (uint64_t[]) { 64, 8192, 15360, 307200 - 1 - 64 - 8192 - 15360 }, 4);
        assert_null(layout_get(&l, PART_DATA));
        assert_null(layout_get(&l, PART_BIOS));
        /* persistent_partition_size has nothing to leave room for: ignored */
        req.persistent_partition_bytes = 150 * GiB;
        assert_int_equal(compute_req(&req, &l), 0);
        assert_int_equal(layout_get(&l, PART_PERSISTENT)->size, (307200 - 1 - 64 - 8192 - 15360) * MiB);
        req.persistent_partition_bytes = 0;
        /* with a data disk: the same four */
        req.data_disk = "/dev/data";
        req.data_disk_bytes = 100 * GiB;
        assert_int_equal(compute_req(&req, &l), 0);
        assert_int_equal(l.n_parts, 4);
        assert_true(l.has_data_disk);
        req.data_disk = NULL;
        req.data_disk_bytes = 0;

        /* 2 TiB is the msdos limit (v1.1.2): 2,199,023,255,040 bytes fit, one byte more is refused */
        req.disk_bytes = UINT64_C(2199023255040);
        assert_int_equal(compute_req(&req, &l), 0);
        uint64_t last = l.parts[3].start + l.parts[3].size;
        assert_true(last <= req.disk_bytes && (last - 1) / 512 <= UINT32_MAX);
        req.disk_bytes++;
        assert_int_equal(compute_req(&req, &l), -E2BIG);
        req.disk_bytes = 4096 * GiB;
        assert_int_equal(compute_req(&req, &l), -E2BIG);

        /* force_mbr needs BIOS: refused on UEFI, before any size question */
        req.disk_bytes = 300 * GiB;
        req.efi = true;
        assert_int_equal(compute_req(&req, &l), -EINVAL);
        /* force_mbr with force_efi on BIOS: force_efi is refused */
        req.efi = false;
        req.force_efi = true;
        assert_int_equal(compute_req(&req, &l), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_formula),
                cmocka_unit_test(test_180),
                cmocka_unit_test(test_250),
                cmocka_unit_test(test_300),
                cmocka_unit_test(test_2t),
                cmocka_unit_test(test_small_floor_disks),
                cmocka_unit_test(test_persistent_size),
                cmocka_unit_test(test_skipchecks_small),
                cmocka_unit_test(test_sector_4k),
                cmocka_unit_test(test_bios_gpt),
                cmocka_unit_test(test_msdos),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
