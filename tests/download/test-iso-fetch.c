/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Needs root (mounts tmpfs; exits 77 otherwise): iso_fetch() end to end against the fault server
 * (memory fit, tmpfs mounted 0700 and sized for the ISO, resumed download, verification, contents
 * check, release unmounts), and a tmpfs too small for the file.
 */
#include <fcntl.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/vfs.h>
#include <cmocka.h>
#include <linux/magic.h>

#include "download.h"
#include "hashpipe.h"
#include "log.h"
#include "server.h"
#include "tmpfs.h"
#include "util.h"

static struct test_server srv = { .stdin_fd = -1, .stdout_fd = -1 };
static char *dir;      /* served files and mount points */
static char *served;
static char *iso_dir;  /* HARVESTER_INSTALL_ISO_DIR */
static char *capture;
static char iso_sum[160], partial_sum[160];

static void sum_file(const char *path, char *ret) {
        char *data = NULL;
        size_t len = 0;
        assert_int_equal(read_full_file(path, &data, &len), 0);
        unsigned char m[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        assert_int_equal(EVP_Digest(data, len, m, &n, EVP_sha512(), NULL), 1);
        strcpy(ret, "sha512:");
        for (unsigned i = 0; i < n; i++)
                snprintf(ret + 7 + 2 * i, 3, "%02x", m[i]);
        free(data);
}

static bool is_tmpfs(const char *path) {
        struct statfs sf;
        return statfs(path, &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

static char *log_text(void) {
        char *t = NULL;
        assert_int_equal(read_full_file(capture, &t, NULL), 0);
        assert_int_equal(truncate(capture, 0), 0);
        return t;
}

static int setup(void **state) {
        if (test_mkdtemp(&dir) < 0 || chmod(dir, 0755) < 0)
                return -1;
        served = strdup_printf("%s/srv", dir);
        iso_dir = strdup_printf("%s/run/iso", dir);
        capture = strdup_printf("%s/log", dir);
        if (!served || !iso_dir || !capture || log_set_capture_file(capture) < 0)
                return -1;
        /* A small ISO of Harvester's shape (a few MB, so that the drop and resume matter), and one
         * that lacks files. */
        _cleanup_free_ char *cmd = strdup_printf(
                "set -e; cd '%s'; mkdir -p srv iso/boot iso/EFI/BOOT part; "
                "head -c 6000000 /dev/urandom > iso/rootfs.squashfs; echo k > iso/boot/kernel; "
                "echo i > iso/boot/initrd; echo e > iso/EFI/BOOT/BOOTX64.EFI; "
                "xorriso -as mkisofs -quiet -R -J -o srv/harvester.iso iso; "
                "head -c 3000000 /dev/urandom > part/rootfs.squashfs; "
                "xorriso -as mkisofs -quiet -R -J -o srv/partial.iso part; chmod -R a+rX srv", dir);
        if (!cmd || system(cmd) != 0)
                return -1;
        _cleanup_free_ char *iso = strdup_printf("%s/harvester.iso", served);
        _cleanup_free_ char *part = strdup_printf("%s/partial.iso", served);
        sum_file(iso, iso_sum);
        sum_file(part, partial_sum);
        _cleanup_free_ char *list = strdup_printf("%s  harvester.iso\n", iso_sum + 7);
        if (test_write_file(served, "SHA512SUMS", list, strlen(list)) < 0)
                return -1;
        setenv("HARVESTER_INSTALL_ISO_DIR", iso_dir, 1);
        /* An HTTPS listener too, with a self-signed certificate (the TLS policy's test). */
        if (test_make_self_signed(dir) < 0)
                return -1;
        _cleanup_free_ char *cert = strdup_printf("%s/cert.pem", dir), *key = strdup_printf("%s/key.pem", dir);
        return !cert || !key || test_server_start_tls(served, cert, key, &srv) < 0 ? -1 : 0;
}

static int teardown(void **state) {
        test_server_stop(&srv);
        (void)umount2(iso_dir, MNT_DETACH);
        test_rm_rf(dir);
        free(dir);
        free(served);
        free(iso_dir);
        free(capture);
        return 0;
}

static void test_iso_fetch(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/drop30/harvester.iso");
        struct config c = {};
        c.install.iso_urls = (char *[]){ url, NULL };
        c.install.iso_checksum = iso_sum;

        struct iso_image img = {};
        assert_int_equal(iso_fetch(&c, &img), 0);
        assert_string_equal(img.tmpfs_dir, iso_dir);
        assert_true(is_tmpfs(iso_dir));
        struct stat st;
        assert_int_equal(stat(iso_dir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(stat(img.path, &st), 0);
        assert_true((uint64_t)st.st_size == img.size);
        assert_string_equal(img.digest, iso_sum);
        /* the tmpfs is sized for the ISO plus a margin, not half of memory */
        struct statfs sf;
        assert_int_equal(statfs(iso_dir, &sf), 0);
        assert_true((uint64_t)sf.f_blocks * (uint64_t)sf.f_bsize < img.size + (UINT64_C(128) << 20));
        assert_int_equal(test_server_count(&srv, "/drop30/harvester.iso"), 2);
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "Memory for the ISO: "));
        assert_non_null(strstr(log, "Mounted a tmpfs of "));
        assert_non_null(strstr(log, "ISO: checksum verified: sha512:"));
        assert_non_null(strstr(log, "The ISO holds every file the install needs"));

        iso_image_release(&img);
        assert_false(is_tmpfs(iso_dir));
        assert_false(access(iso_dir, F_OK) == 0);
        assert_null(img.path);
        iso_image_release(&img); /* twice is fine */
}

static void test_iso_fetch_checksum_url(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/ok/harvester.iso");
        _cleanup_free_ char *list = test_server_url(&srv, "/ok/SHA512SUMS");
        struct config c = {};
        c.install.iso_urls = (char *[]){ url, NULL };
        c.install.iso_checksum_url = list;
        struct iso_image img = {};
        assert_int_equal(iso_fetch(&c, &img), 0);
        assert_string_equal(img.digest, iso_sum);
        iso_image_release(&img);
        assert_false(is_tmpfs(iso_dir));

        /* no checksum at all: refused before any request, unless install.skipchecks (a loud
         * warning then, and the install goes on) */
        c.install.iso_checksum_url = NULL;
        _cleanup_free_ char *old = log_text();
        assert_int_equal(test_server_reset(&srv), 0);
        assert_int_equal(iso_fetch(&c, &img), -EINVAL);
        assert_int_equal(test_server_count(&srv, "/"), 0);
        assert_false(is_tmpfs(iso_dir));
        _cleanup_free_ char *refused = log_text();
        assert_non_null(strstr(refused, "error: ISO: neither install.iso_checksum nor install.iso_checksum_url is set"));
        c.install.skipchecks = true;
        assert_int_equal(iso_fetch(&c, &img), 0);
        iso_image_release(&img);
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "warning: ISO: THE ISO WILL NOT BE VERIFIED"));
}

/* Mirrors (README, "More than one server"): the first breaks off after 2 MB; the second continues
 * from there into the same tmpfs (sized once, from the first answer); the checksum list's entry is
 * the first mirror's file name; the digest covers the whole ISO once. */
static void test_iso_fetch_mirrors(void **state) {
        _cleanup_free_ char *m1 = test_server_url(&srv, "/ok/harvester.iso?m=1&drop_after=2000000");
        _cleanup_free_ char *m2 = test_server_url(&srv, "/ok/harvester.iso?m=2");
        _cleanup_free_ char *list = test_server_url(&srv, "/ok/SHA512SUMS");
        struct config c = {};
        c.install.iso_urls = (char *[]){ m1, m2, NULL };
        c.install.iso_checksum_url = list;
        struct iso_image img = {};
        assert_int_equal(iso_fetch(&c, &img), 0);
        assert_string_equal(img.digest, iso_sum);
        assert_int_equal(test_server_count(&srv, "/ok/harvester.iso?m=1"), 1);
        _cleanup_strv_free_ char **lines = NULL;
        assert_int_equal(test_server_request_lines(&srv, "/ok/harvester.iso?m=2", &lines), 0);
        assert_int_equal(strv_length(lines), 1);
        assert_non_null(strstr(lines[0], "\"range\": \"bytes=2000000-\""));
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "ISO: 2 mirrors, tried in order"));
        assert_non_null(strstr(log, "ISO: completed on http://"));
        iso_image_release(&img);
        assert_false(is_tmpfs(iso_dir));
}

/* TLS (README, "TLS"): the ISO's server is verified unless rd.noverifyssl and an inline
 * install.iso_checksum pins the content; the checksum list is always verified. */
static void test_iso_fetch_tls(void **state) {
        _cleanup_free_ char *url = test_server_tls_url(&srv, "/ok/harvester.iso");
        _cleanup_free_ char *list = test_server_tls_url(&srv, "/ok/SHA512SUMS");
        _cleanup_free_ char *plain_list = test_server_url(&srv, "/ok/SHA512SUMS");
        struct iso_image img = {};
        struct config c = {};
        c.install.iso_urls = (char *[]){ url, NULL };
        _cleanup_free_ char *old = log_text();

        /* by default: refused, nothing mounted */
        c.install.iso_checksum = iso_sum;
        assert_int_equal(iso_fetch(&c, &img), -EIO);
        assert_false(is_tmpfs(iso_dir));
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "TLS certificate"));

        /* rd.noverifyssl with a checksum list (over https or http): still verified */
        c.boot.noverifyssl = true;
        c.install.iso_checksum = NULL;
        c.install.iso_checksum_url = list;
        assert_int_equal(iso_fetch(&c, &img), -EIO); /* the list */
        c.install.iso_checksum_url = plain_list;
        assert_int_equal(iso_fetch(&c, &img), -EIO); /* the ISO */
        assert_false(is_tmpfs(iso_dir));
        _cleanup_free_ char *log2 = log_text();
        assert_non_null(strstr(log2, "rd.noverifyssl does not cover the ISO without install.iso_checksum"));

        /* rd.noverifyssl and install.iso_checksum: fetched, with a warning, and verified */
        c.install.iso_checksum_url = NULL;
        c.install.iso_checksum = iso_sum;
        assert_int_equal(iso_fetch(&c, &img), 0);
        assert_string_equal(img.digest, iso_sum);
        iso_image_release(&img);
        _cleanup_free_ char *log3 = log_text();
        assert_non_null(strstr(log3, "warning: ISO: rd.noverifyssl is on the kernel command line"));

        /* never from https to http */
        _cleanup_free_ char *down = test_server_tls_url(&srv, "/lie/to-http?to=http://127.0.0.1:%d/ok/harvester.iso",
                                                        srv.port);
        c.install.iso_urls = (char *[]){ down, NULL };
        assert_int_equal(iso_fetch(&c, &img), -EPROTO);
        assert_false(is_tmpfs(iso_dir));
}

/* Failures leave nothing behind: no file, no mount. */
static void test_iso_fetch_failures(void **state) {
        struct iso_image img = {};
        struct config c = {};

        _cleanup_free_ char *wrong = test_server_url(&srv, "/wrong/harvester.iso");
        c.install.iso_urls = (char *[]){ wrong, NULL };
        c.install.iso_checksum = iso_sum;
        assert_int_equal(iso_fetch(&c, &img), -EBADMSG);
        assert_false(is_tmpfs(iso_dir));
        assert_false(access(iso_dir, F_OK) == 0);

        _cleanup_free_ char *partial = test_server_url(&srv, "/ok/partial.iso");
        c.install.iso_urls = (char *[]){ partial, NULL };
        c.install.iso_checksum = partial_sum;
        assert_int_equal(iso_fetch(&c, &img), -ENOENT);
        assert_false(is_tmpfs(iso_dir));
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "lacks files the install needs: boot/kernel, boot/initrd."));

        _cleanup_free_ char *nf = test_server_url(&srv, "/404/harvester.iso");
        c.install.iso_urls = (char *[]){ nf, NULL };
        assert_int_equal(iso_fetch(&c, &img), -ENOENT);
        assert_false(is_tmpfs(iso_dir));

        c.install.iso_urls = NULL;
        assert_int_equal(iso_fetch(&c, &img), -EINVAL);
        assert_null(img.path);
}

/* A tmpfs too small for the file: a clear ENOSPC before the download writes, no file left; and a
 * write that runs out of room is ENOSPC too. */
static void test_tmpfs_too_small(void **state) {
        _cleanup_free_ char *small = strdup_printf("%s/small", dir);
        assert_int_equal(tmpfs_mount(small, 1024 * 1024), 0);
        assert_true(is_tmpfs(small));

        _cleanup_free_ char *url = test_server_url(&srv, "/ok/harvester.iso");
        _cleanup_free_ char *dest = strdup_printf("%s/harvester.iso", small);
        _cleanup_free_ char *part = strdup_printf("%s.part", dest);
        const struct download_options o = { .url = url, .dest = dest, .what = "ISO" };
        struct download_result res;
        assert_int_equal(download_file(&o, &res), -ENOSPC);
        assert_false(access(dest, F_OK) == 0);
        assert_false(access(part, F_OK) == 0);
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "error: ISO: no room for "));

        /* the writes themselves */
        _cleanup_close_ int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        _cleanup_hashpipe_ struct hashpipe *p = NULL;
        assert_int_equal(hashpipe_new(CHECKSUM_SHA512, fd, 64 * 1024, 2, &p), 0);
        static char block[64 * 1024];
        int r = 0;
        for (int i = 0; i < 64 && r == 0; i++)
                r = hashpipe_write(p, block, sizeof(block));
        assert_int_equal(r, -ENOSPC);
        hashpipe_free(TAKE_PTR(p));
        close(fd);
        fd = -1;
        unlink(part);

        assert_int_equal(tmpfs_umount(small), 0);
        assert_false(is_tmpfs(small));
        assert_false(access(small, F_OK) == 0);
}

int main(void) {
        if (geteuid() != 0) {
                fprintf(stderr, "Needs root (mounts tmpfs): skipping.\n");
                return 77;
        }
        if (system("command -v xorriso >/dev/null 2>&1") != 0) {
                fprintf(stderr, "xorriso is not installed (Debian package xorriso): skipping.\n");
                return 77;
        }
        /* Probe: can this process mount at all (containers without CAP_SYS_ADMIN)? */
        char probe[] = "/tmp/test-iso-fetch-probe.XXXXXX";
        if (!mkdtemp(probe))
                return 1;
        if (mount("probe", probe, "tmpfs", 0, "size=64k") < 0) {
                fprintf(stderr, "Cannot mount a tmpfs here (%s): skipping.\n", strerror(errno));
                rmdir(probe);
                return 77;
        }
        umount(probe);
        rmdir(probe);

        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_iso_fetch),
                cmocka_unit_test(test_iso_fetch_checksum_url),
                cmocka_unit_test(test_iso_fetch_mirrors),
                cmocka_unit_test(test_iso_fetch_tls),
                cmocka_unit_test(test_iso_fetch_failures),
                cmocka_unit_test(test_tmpfs_too_small),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
