/* SPDX-License-Identifier: Apache-2.0 */
/* The UEFI boot entry's parts without EFI variables: the EFI_LOAD_OPTION "elemental-shim" for
 * HD(...)/File(\EFI\elemental\shim.efi), read back by libefiboot; BootOrder with the new entry
 * first and stale ones dropped; the free entry number. The VM scenarios prove the rest. */
#include <efivar/efiboot.h>
#include <efivar/efivar.h>

#include "helpers.h"

#include "bootentry.h"

/* HD(1,GPT,<guid>,0x800,0x20000)/File(\EFI\elemental\shim.efi), as libefiboot builds it for the
 * first partition (1 MiB, 64 MiB) of a GPT disk. */
static size_t make_dp(uint8_t *buf, size_t size) {
        uint8_t sig[16];
        for (int i = 0; i < 16; i++)
                sig[i] = (uint8_t)(0x10 + i);
        ssize_t a = efidp_make_hd(buf, (ssize_t)size, 1, 2048, 131072, sig, EFIDP_HD_FORMAT_GPT, EFIDP_HD_SIGNATURE_GUID);
        assert_true(a > 0);
        ssize_t b = efidp_make_file(buf + a, (ssize_t)size - a, (char *)BOOT_ENTRY_LOADER);
        assert_true(b > 0);
        ssize_t c = efidp_make_end_entire(buf + a + b, (ssize_t)size - a - b);
        assert_true(c > 0);
        return (size_t)(a + b + c);
}

static void test_load_option(void **state) {
        uint8_t dp[512];
        size_t dp_len = make_dp(dp, sizeof dp);
        uint8_t *opt = NULL;
        size_t len = 0;
        assert_int_equal(boot_entry_load_option(dp, dp_len, BOOT_ENTRY_NAME, &opt, &len), 0);

        /* attributes: LOAD_OPTION_ACTIVE; then the path length, the UCS-2 description, the path */
        assert_int_equal(opt[0], 1);
        assert_int_equal(opt[1] | opt[2] | opt[3], 0);
        assert_int_equal(opt[4] | opt[5] << 8, dp_len);
        assert_int_equal(len, 6 + 2 * (strlen(BOOT_ENTRY_NAME) + 1) + dp_len);
        assert_memory_equal(opt + len - dp_len, dp, dp_len);

        efi_load_option *lo = (efi_load_option *)opt;
        assert_int_equal(efi_loadopt_attrs(lo), 1);
        assert_string_equal((const char *)efi_loadopt_desc(lo, (ssize_t)len), BOOT_ENTRY_NAME);
        char text[512];
        efidp path = efi_loadopt_path(lo, (ssize_t)len);
        assert_non_null(path);
        assert_true(efidp_format_device_path(text, sizeof text, path, efi_loadopt_pathlen(lo, (ssize_t)len)) > 0);
        assert_string_equal(text, "HD(1,GPT,13121110-1514-1716-1819-1a1b1c1d1e1f,0x800,0x20000)/File(\\EFI\\elemental\\shim.efi)");

        char desc[64];
        assert_int_equal(boot_entry_option_desc(opt, len, desc, sizeof desc), 0);
        assert_string_equal(desc, BOOT_ENTRY_NAME);
        /* a truncated option has no description */
        assert_int_equal(boot_entry_option_desc(opt, 12, desc, sizeof desc), -EINVAL);
        free(opt);
}

static void test_boot_order(void **state) {
        uint16_t out[8];
        /* network first, an old elemental-shim (3) in the middle: the new entry (5) first */
        const uint16_t order[] = { 1, 3, 0, 2 }, stale[] = { 3 };
        size_t n = boot_order_prepend(order, 4, 5, stale, 1, out);
        assert_int_equal(n, 4);
        const uint16_t want[] = { 5, 1, 0, 2 };
        assert_memory_equal(out, want, sizeof want);
        /* the new number already listed: once */
        const uint16_t order2[] = { 1, 3 };
        n = boot_order_prepend(order2, 2, 3, NULL, 0, out);
        assert_int_equal(n, 2);
        assert_int_equal(out[0], 3);
        assert_int_equal(out[1], 1);
        /* no BootOrder yet */
        n = boot_order_prepend(NULL, 0, 7, NULL, 0, out);
        assert_int_equal(n, 1);
        assert_int_equal(out[0], 7);
}

static void test_free_number(void **state) {
        const uint16_t used[] = { 0, 1, 2, 4 };
        assert_int_equal(boot_entry_free_number(used, 4), 3);
        assert_int_equal(boot_entry_free_number(NULL, 0), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_load_option),
                cmocka_unit_test(test_boot_order),
                cmocka_unit_test(test_free_number),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
