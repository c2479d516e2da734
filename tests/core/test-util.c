/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "log.h"
#include "util.h"

static void test_parse_bool(void **state) {
        static const char *const t[] = { "true", "TRUE", "yes", "1", "on", "On" };
        static const char *const f[] = { "false", "no", "0", "off", "OFF" };
        static const char *const bad[] = { "", "tru", "2", "y", "enable", " true" };
        bool b;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                b = false;
                assert_int_equal(parse_bool(t[i], &b), 0);
                assert_true(b);
        }
        for (size_t i = 0; i < ELEMENTSOF(f); i++) {
                b = true;
                assert_int_equal(parse_bool(f[i], &b), 0);
                assert_false(b);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(parse_bool(bad[i], &b), -EINVAL);
}

static void test_parse_int64(void **state) {
        int64_t v;
        assert_int_equal(parse_int64("1500", &v), 0);
        assert_int_equal(v, 1500);
        assert_int_equal(parse_int64("-3", &v), 0);
        assert_int_equal(v, -3);
        assert_int_equal(parse_int64("0x10", &v), -EINVAL);
        assert_int_equal(parse_int64("1e3", &v), -EINVAL);
        assert_int_equal(parse_int64(" 1", &v), -EINVAL);
        assert_int_equal(parse_int64("", &v), -EINVAL);
        assert_int_equal(parse_int64("-", &v), -EINVAL);
        assert_int_equal(parse_int64("99999999999999999999", &v), -ERANGE);
}

static void test_parse_size(void **state) {
        uint64_t v;
        assert_int_equal(parse_size("150Gi", &v), 0);
        assert_true(v == 150ULL << 30);
        assert_int_equal(parse_size("512Mi", &v), 0);
        assert_true(v == 512ULL << 20);
        assert_int_equal(parse_size("4096", &v), 0);
        assert_true(v == 4096);
        assert_int_equal(parse_size("150GB", &v), -EINVAL);
        assert_int_equal(parse_size("Gi", &v), -EINVAL);
        assert_int_equal(parse_size("-1Gi", &v), -EINVAL);
        assert_int_equal(parse_size("99999999999Ti", &v), -ERANGE);
}

static void test_strv(void **state) {
        _cleanup_strv_free_ char **l = NULL;
        assert_int_equal(strv_push(&l, "a"), 0);
        assert_int_equal(strv_push(&l, "b"), 0);
        assert_int_equal(strv_length(l), 2);
        assert_true(strv_contains(l, "b"));
        assert_false(strv_contains(l, "c"));
        _cleanup_free_ char *j = strv_join(l, ", ");
        assert_string_equal(j, "a, b");
}

static void test_kvmap(void **state) {
        struct kvmap m = {};
        assert_int_equal(kvmap_set(&m, "mode", "active-backup"), 0);
        assert_int_equal(kvmap_set(&m, "miimon", "100"), 0);
        assert_int_equal(kvmap_set(&m, "mode", "balance-tlb"), 0);
        assert_int_equal(m.n, 2);
        assert_string_equal(kvmap_get(&m, "mode"), "balance-tlb");
        assert_string_equal(m.items[0].key, "mode");
        assert_null(kvmap_get(&m, "x"));
        kvmap_clear(&m);
}

static void test_redact(void **state) {
        log_add_secret("p@ssword");
        log_add_secret("");
        _cleanup_free_ char *r = log_redact("password p@ssword and again p@ssword.");
        assert_string_equal(r, "password <redacted> and again <redacted>.");
        log_forget_secrets();
        _cleanup_free_ char *s = log_redact("p@ssword");
        assert_string_equal(s, "p@ssword");
}

static void test_format_bytes(void **state) {
        char buf[32];
        assert_string_equal(format_bytes(buf, sizeof buf, 300ULL << 30), "300 GiB");
        assert_string_equal(format_bytes(buf, sizeof buf, 64ULL << 20), "64 MiB");
        assert_string_equal(format_bytes(buf, sizeof buf, 3ULL << 29), "1.5 GiB");
        assert_string_equal(format_bytes(buf, sizeof buf, 17), "17 B");
}

static void test_utf8_and_quoting(void **state) {
        assert_true(utf8_valid("plain ascii"));
        assert_true(utf8_valid("zone \xe5\x8c\x97\xe4\xba\xac")); /* two CJK characters */
        assert_false(utf8_valid("\xc0\xaf"));                         /* overlong '/' */
        assert_false(utf8_valid("\xed\xa0\x80"));                    /* a surrogate */
        assert_false(utf8_valid("\xe5\x8c"));                         /* truncated */

        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        fputs_quoted(f, "a\"b\\c\n\t\x01\xff\xe5\x8c\x97");
        fclose(f);
        assert_string_equal(buf, "\"a\\\"b\\\\c\\n\\t\\u0001\\ufffd\xe5\x8c\x97\"");
        free(buf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_bool), cmocka_unit_test(test_parse_int64),
                cmocka_unit_test(test_parse_size), cmocka_unit_test(test_strv),
                cmocka_unit_test(test_kvmap),      cmocka_unit_test(test_redact),
                cmocka_unit_test(test_format_bytes), cmocka_unit_test(test_utf8_and_quoting),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
