/* SPDX-License-Identifier: Apache-2.0 */
/* Memory preflight math, from fixture /proc/meminfo and /sys/devices/system/memory trees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "memory.h"
#include "util.h"

#define GiB (UINT64_C(1) << 30)
#define MiB (UINT64_C(1) << 20)

static char fixtures[4096];
static char capture[4096];

static const char *fixture(const char *name) {
        static char buf[4096 + 64];
        snprintf(buf, sizeof(buf), "%s/%s", fixtures, name);
        return buf;
}

/* What the log printed since the last call. */
static char *captured(void) {
        char *text = NULL;
        assert_int_equal(read_full_file(capture, &text, NULL), 0);
        assert_int_equal(truncate(capture, 0), 0);
        return text;
}

static int setup(void **state) {
        const char *src = getenv("TESTS_SOURCE_DIR");
        snprintf(fixtures, sizeof(fixtures), "%s/download/fixtures", src ? src : "tests");
        snprintf(capture, sizeof(capture), "/tmp/test-memory-log.XXXXXX");
        int fd = mkstemp(capture);
        if (fd < 0)
                return -1;
        close(fd);
        return log_set_capture_file(capture);
}

static int teardown(void **state) {
        unlink(capture);
        return 0;
}

static void test_vm_8g(void **state) {
        struct memory_info m;
        assert_int_equal(memory_read(fixture("vm-8g"), &m), 0);
        assert_true(m.from_blocks);
        assert_int_equal(m.n_blocks, 64);
        assert_true(m.installed_bytes == 8 * GiB);
        assert_true(m.memtotal_bytes == UINT64_C(8148044) * 1024);
        assert_true(m.available_bytes == UINT64_C(7712340) * 1024);

        struct config c = {};
        assert_int_equal(memory_check(&c, fixture("vm-8g")), 0);
        _cleanup_free_ char *log = captured();
        assert_non_null(strstr(log, "8 GiB installed"));
        assert_non_null(strstr(log, "MemTotal 7.8 GiB"));
        assert_non_null(strstr(log, "8 GiB needed"));
}

static void test_vm_7g(void **state) {
        struct memory_info m;
        assert_int_equal(memory_read(fixture("vm-7g"), &m), 0);
        assert_true(m.from_blocks);
        assert_true(m.installed_bytes == 7 * GiB);

        struct config c = {};
        assert_int_equal(memory_check(&c, fixture("vm-7g")), -ENOMEM);
        _cleanup_free_ char *log = captured();
        assert_non_null(strstr(log, "error: Not enough memory: 7 GiB installed"));
        assert_non_null(strstr(log, "at least 8 GiB needed"));

        /* skipchecks: a warning, and the install goes on */
        c.install.skipchecks = true;
        assert_int_equal(memory_check(&c, fixture("vm-7g")), 0);
        _cleanup_free_ char *log2 = captured();
        assert_non_null(strstr(log2, "warning: Memory: 7 GiB installed"));
        assert_non_null(strstr(log2, "skipchecks"));
}

static void test_no_blocks(void **state) {
        struct memory_info m;
        assert_int_equal(memory_read(fixture("vm-8g-noblocks"), &m), 0);
        assert_false(m.from_blocks);
        assert_true(m.installed_bytes == 8 * GiB);
        assert_int_equal(memory_check(NULL, fixture("vm-8g-noblocks")), 0);

        assert_int_equal(memory_read(fixture("vm-7g-noblocks"), &m), 0);
        assert_false(m.from_blocks);
        assert_true(m.installed_bytes == 7 * GiB);
        assert_int_equal(memory_check(NULL, fixture("vm-7g-noblocks")), -ENOMEM);
        free(captured());
}

static void test_offline_blocks(void **state) {
        struct memory_info m;
        assert_int_equal(memory_read(fixture("vm-8g-offline"), &m), 0);
        assert_true(m.from_blocks);
        assert_int_equal(m.n_blocks, 56);
        assert_true(m.installed_bytes == 7 * GiB);
        assert_int_equal(memory_check(NULL, fixture("vm-8g-offline")), -ENOMEM);
        free(captured());
}

static void test_rounding(void **state) {
        assert_true(memory_installed_from_memtotal(0) == 0);
        assert_true(memory_installed_from_memtotal(1) == GiB);
        assert_true(memory_installed_from_memtotal(7 * GiB) == 7 * GiB);
        assert_true(memory_installed_from_memtotal(7 * GiB + 1) == 8 * GiB);
        assert_true(memory_installed_from_memtotal(7 * GiB + 700 * MiB) == 8 * GiB);
        assert_true(memory_installed_from_memtotal(8 * GiB) == 8 * GiB);
        assert_true(memory_installed_from_memtotal(UINT64_MAX) == UINT64_MAX);
}

static void write_tree_file(const char *root, const char *rel, const char *text) {
        _cleanup_free_ char *path = strdup_printf("%s/%s", root, rel);
        _cleanup_free_ char *dir = strdup(path);
        assert_non_null(path);
        assert_non_null(dir);
        for (char *s = dir + strlen(root) + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        (void)mkdir(dir, 0755);
                        *s = '/';
                }
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

/* Trees made on the fly: an old kernel without MemAvailable, blocks that cannot be the whole
 * memory, an unreadable meminfo. */
static void test_odd_trees(void **state) {
        char root[] = "/tmp/test-memory-tree.XXXXXX";
        assert_non_null(mkdtemp(root));
        struct memory_info m;

        write_tree_file(root, "proc/meminfo", "MemTotal:        8000000 kB\nMemFree:         6000000 kB\n");
        assert_int_equal(memory_read(root, &m), 0);
        assert_true(m.available_bytes == UINT64_C(6000000) * 1024);
        assert_true(m.installed_bytes == 8 * GiB);

        /* two 128 MiB blocks only: less than MemTotal, so they are not the whole story */
        write_tree_file(root, "sys/devices/system/memory/block_size_bytes", "8000000\n");
        write_tree_file(root, "sys/devices/system/memory/memory0/state", "online\n");
        write_tree_file(root, "sys/devices/system/memory/memory1/state", "online\n");
        assert_int_equal(memory_read(root, &m), 0);
        assert_false(m.from_blocks);
        assert_true(m.installed_bytes == 8 * GiB);

        write_tree_file(root, "sys/devices/system/memory/block_size_bytes", "zz\n");
        assert_int_equal(memory_read(root, &m), -EINVAL);

        write_tree_file(root, "proc/meminfo", "MemFree:         6000000 kB\n");
        m.installed_bytes = 42;
        assert_int_equal(memory_read(root, &m), -EINVAL);
        assert_true(m.installed_bytes == 42);
        write_tree_file(root, "proc/meminfo", "MemTotal: lots\nMemFree: 1 kB\n");
        assert_int_equal(memory_read(root, &m), -EINVAL);

        _cleanup_free_ char *cmd = strdup_printf("rm -rf '%s'", root);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(memory_read(root, &m), -ENOENT);
        assert_int_equal(memory_check(NULL, root), -ENOENT);
        free(captured());
}

static void test_iso_fits(void **state) {
        struct memory_info m = { .installed_bytes = 8 * GiB, .memtotal_bytes = 7 * GiB + 800 * MiB,
                                 .available_bytes = 7 * GiB + 512 * MiB };
        assert_int_equal(memory_check_iso_fits(&m, 5 * GiB), 0);
        /* exactly ISO + 1 GiB available fits; one byte more does not */
        assert_int_equal(memory_check_iso_fits(&m, 6 * GiB + 512 * MiB), 0);
        free(captured());
        assert_int_equal(memory_check_iso_fits(&m, 6 * GiB + 512 * MiB + 1), -ENOSPC);
        assert_int_equal(memory_check_iso_fits(&m, UINT64_MAX), -ENOSPC);
        free(captured());

        /* the message names the memory found, needed and the ISO size */
        m.available_bytes = 5 * GiB;
        assert_int_equal(memory_check_iso_fits(&m, 4 * GiB + 512 * MiB), -ENOSPC);
        _cleanup_free_ char *log = captured();
        assert_non_null(strstr(log, "5.5 GiB needed"));
        assert_non_null(strstr(log, "ISO 4.5 GiB"));
        assert_non_null(strstr(log, "5 GiB available of 8 GiB installed"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vm_8g),
                cmocka_unit_test(test_vm_7g),
                cmocka_unit_test(test_no_blocks),
                cmocka_unit_test(test_offline_blocks),
                cmocka_unit_test(test_rounding),
                cmocka_unit_test(test_odd_trees),
                cmocka_unit_test(test_iso_fits),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
