/* SPDX-License-Identifier: Apache-2.0 */
/* Reading the ISO with libarchive: the contents check and the extraction of one member, on small
 * images made here with xorriso (Rock Ridge + Joliet, Joliet only, files missing, not an ISO). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "iso.h"
#include "log.h"
#include "util.h"

static char tmp[] = "/tmp/test-iso.XXXXXX";
static char capture[4200];

static void sh(const char *fmt, ...) _printf_(1, 2);
static void sh(const char *fmt, ...) {
        va_list ap;
        char *cmd = NULL;
        va_start(ap, fmt);
        assert_true(vasprintf(&cmd, fmt, ap) >= 0);
        va_end(ap);
        int r = system(cmd);
        if (r != 0)
                fail_msg("command failed (%d): %s", r, cmd);
        free(cmd);
}

static char *path(const char *name) {
        char *p = strdup_printf("%s/%s", tmp, name);
        assert_non_null(p);
        return p;
}

static char *captured(void) {
        char *text = NULL;
        assert_int_equal(read_full_file(capture, &text, NULL), 0);
        assert_int_equal(truncate(capture, 0), 0);
        return text;
}

static char *file_text(const char *p) {
        char *t = NULL;
        assert_int_equal(read_full_file(p, &t, NULL), 0);
        return t;
}

static int setup(void **state) {
        if (!mkdtemp(tmp))
                return -1;
        snprintf(capture, sizeof(capture), "%s/log", tmp);
        if (log_set_capture_file(capture) < 0)
                return -1;
        /* The shape of a Harvester ISO, in small. */
        _cleanup_free_ char *cmd = strdup_printf(
                "set -e; cd '%s'; mkdir -p full/boot full/EFI/BOOT full/bundle; "
                "echo kernel > full/boot/kernel; echo initrd > full/boot/initrd; "
                "head -c 300000 /dev/urandom > full/rootfs.squashfs; echo efi-loader > full/EFI/BOOT/BOOTX64.EFI; "
                "ln full/boot/kernel full/boot/kernel.hardlink; ln -s kernel full/boot/vmlinuz; "
                "echo images > full/bundle/images.txt; "
                "xorriso -as mkisofs -quiet -R -J -V HARVESTER -o full.iso full; "
                "xorriso -as mkisofs -quiet -J -V HARVESTER -o joliet.iso full; "
                "mkdir -p partial/boot; head -c 1000 /dev/urandom > partial/rootfs.squashfs; "
                "xorriso -as mkisofs -quiet -R -J -V HARVESTER -o partial.iso partial; "
                "printf '<html><body>Login required</body></html>\\n' > page.iso; "
                "head -c 1000000 /dev/urandom > random.iso", tmp);
        return cmd && system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state) {
        _cleanup_free_ char *cmd = strdup_printf("rm -rf '%s'", tmp);
        return cmd ? system(cmd) : -1;
}

static void test_check_ok(void **state) {
        _cleanup_free_ char *full = path("full.iso"), *joliet = path("joliet.iso");
        assert_int_equal(iso_check_contents(full), 0);
        assert_int_equal(iso_check_contents(joliet), 0);
        free(captured());
}

static void test_check_missing(void **state) {
        _cleanup_free_ char *partial = path("partial.iso");
        assert_int_equal(iso_check_contents(partial), -ENOENT);
        _cleanup_free_ char *log = captured();
        /* every missing file, in one line */
        assert_non_null(strstr(log, "lacks files the install needs: boot/kernel, boot/initrd."));
        assert_null(strstr(log, "rootfs.squashfs,"));
        assert_int_equal(strchr(log, '\n') - log + 1, (long)strlen(log));
}

static void test_check_not_iso(void **state) {
        _cleanup_free_ char *page = path("page.iso"), *rnd = path("random.iso"), *none = path("none.iso");
        assert_true(iso_check_contents(page) < 0);
        assert_true(iso_check_contents(rnd) < 0);
        assert_int_equal(iso_check_contents(none), -ENOENT);
        _cleanup_free_ char *log = captured();
        assert_non_null(strstr(log, "page.iso"));
}

static void test_extract(void **state) {
        _cleanup_free_ char *full = path("full.iso"), *efi = path("efi.out"), *sq = path("sq.out"),
                            *hl = path("hl.out"), *src_sq = path("full/rootfs.squashfs");
        assert_int_equal(iso_extract_file(full, "EFI/BOOT/BOOTX64.EFI", efi), 0);
        _cleanup_free_ char *t = file_text(efi);
        assert_string_equal(t, "efi-loader\n");
        struct stat st;
        assert_int_equal(stat(efi, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_true(S_ISREG(st.st_mode));

        /* a larger file, byte for byte; names are compared without case (plain ISO9660 is upper case) */
        assert_int_equal(iso_extract_file(full, "./ROOTFS.SQUASHFS", sq), 0);
        sh("cmp -s '%s' '%s'", sq, src_sq);

        /* a hard link: the data lives with the other name */
        assert_int_equal(iso_extract_file(full, "boot/kernel.hardlink", hl), 0);
        _cleanup_free_ char *k = file_text(hl);
        assert_string_equal(k, "kernel\n");

        /* from the Joliet-only image too; overwriting an existing file */
        _cleanup_free_ char *joliet = path("joliet.iso");
        assert_int_equal(iso_extract_file(joliet, "boot/initrd", efi), 0);
        _cleanup_free_ char *i = file_text(efi);
        assert_string_equal(i, "initrd\n");
        free(captured());
}

static void test_extract_refused(void **state) {
        _cleanup_free_ char *full = path("full.iso"), *dest = path("refused.out");
        assert_int_equal(iso_extract_file(full, "boot/missing", dest), -ENOENT);
        assert_int_equal(iso_extract_file(full, "boot", dest), -EISDIR);
        /* a symlink in the image is not followed or recreated */
        assert_int_equal(iso_extract_file(full, "boot/vmlinuz", dest), -EISDIR);
        assert_false(access(dest, F_OK) == 0);

        /* dest itself a symlink: refused (O_NOFOLLOW), the link's target untouched */
        _cleanup_free_ char *target = path("target"), *link = path("link.out");
        sh("echo keep > '%s' && ln -s target '%s'", target, link);
        assert_int_equal(iso_extract_file(full, "boot/kernel", link), -ELOOP);
        _cleanup_free_ char *kept = file_text(target);
        assert_string_equal(kept, "keep\n");

        /* a symlinked directory on the way to dest is fine and stays a symlink */
        _cleanup_free_ char *realdir = path("realdir"), *linkdir = path("linkdir"), *via = path("linkdir/k.out");
        sh("mkdir '%s' && ln -s realdir '%s'", realdir, linkdir);
        assert_int_equal(iso_extract_file(full, "boot/kernel", via), 0);
        struct stat st;
        assert_int_equal(lstat(linkdir, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        _cleanup_free_ char *in_real = path("realdir/k.out");
        _cleanup_free_ char *k = file_text(in_real);
        assert_string_equal(k, "kernel\n");
        free(captured());
}

int main(void) {
        if (system("command -v xorriso >/dev/null 2>&1") != 0) {
                fprintf(stderr, "xorriso is not installed (Debian package xorriso): skipping.\n");
                return 77;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_check_ok),
                cmocka_unit_test(test_check_missing),
                cmocka_unit_test(test_check_not_iso),
                cmocka_unit_test(test_extract),
                cmocka_unit_test(test_extract_refused),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
