/* SPDX-License-Identifier: Apache-2.0 */
/* Expected-checksum parsing: "sha512:<hex>" strings, Harvester's checksum lists, URL file names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "checksum.h"
#include "util.h"

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H128 H64 "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define H128B "ffffffffffffffff0123456789abcdef0123456789abcdef0123456789abcdef" \
              "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static void test_parse(void **state) {
        struct checksum c;
        assert_int_equal(checksum_parse("sha512:" H128, &c), 0);
        assert_int_equal(c.algo, CHECKSUM_SHA512);
        assert_string_equal(c.hex, H128);
        assert_int_equal(checksum_parse("sha256:" H64, &c), 0);
        assert_int_equal(c.algo, CHECKSUM_SHA256);
        assert_string_equal(c.hex, H64);

        /* case and surrounding white space */
        assert_int_equal(checksum_parse("  SHA256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789ABCDEF\n", &c), 0);
        assert_string_equal(c.hex, H64);

        _cleanup_free_ char *s = checksum_format(&c);
        assert_string_equal(s, "sha256:" H64);

        static const char *const bad[] = {
                "",
                "sha512:",
                "sha256:" H128,           /* length of the other algorithm */
                "sha512:" H64,
                "sha512:" H128 "0",       /* one too long */
                "sha1:0123456789abcdef0123456789abcdef01234567",
                "md5:0123456789abcdef0123456789abcdef",
                H128,                     /* no algorithm */
                "sha512 " H128,
                "sha512:" H64 "g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", /* not hex */
                "sha256:" "0123456789abcdef0123456789abcdef 123456789abcdef0123456789abcdef",
        };
        c.algo = CHECKSUM_SHA256;
        strcpy(c.hex, "untouched");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(checksum_parse(bad[i], &c), -EINVAL);
                assert_string_equal(c.hex, "untouched");
        }
        assert_int_equal(checksum_parse(NULL, &c), -EINVAL);
}

static void test_list(void **state) {
        struct checksum c;
        /* What Harvester publishes: sha512sum output for every release file. */
        const char *list =
                H128B "  harvester-v1.1.2-amd64.iso.other\n"
                H128 "  harvester-v1.1.2-amd64.iso\n"
                H128B "  harvester-v1.1.2-vmlinuz-amd64\n";
        assert_int_equal(checksum_list_find(list, "harvester-v1.1.2-amd64.iso", &c), 0);
        assert_int_equal(c.algo, CHECKSUM_SHA512);
        assert_string_equal(c.hex, H128);
        assert_int_equal(checksum_list_find(list, "harvester-v1.1.2-vmlinuz-amd64", &c), 0);
        assert_string_equal(c.hex, H128B);
        assert_int_equal(checksum_list_find(list, "harvester-v1.1.2-amd64", &c), -ENOENT);
        assert_int_equal(checksum_list_find(list, "iso", &c), -ENOENT);

        /* binary mode "*name", CRLF, comments, paths, upper-case hex, sha256 by length */
        const char *mixed =
                "# release checksums\r\n"
                "\r\n"
                "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef *./dist/a.iso\r\n"
                "garbage line\n"
                H128 "\tb.iso\n";
        assert_int_equal(checksum_list_find(mixed, "a.iso", &c), 0);
        assert_int_equal(c.algo, CHECKSUM_SHA256);
        assert_string_equal(c.hex, H64);
        assert_int_equal(checksum_list_find(mixed, "b.iso", &c), 0);
        assert_int_equal(c.algo, CHECKSUM_SHA512);
        /* the wanted name given with a path compares by its last component too */
        assert_int_equal(checksum_list_find(mixed, "/x/a.iso", &c), 0);

        /* BSD style, and a GNU line whose name has " (" in it */
        const char *bsd =
                "SHA512 (c.iso) = " H128 "\n"
                H64 "  d (1).iso\n";
        assert_int_equal(checksum_list_find(bsd, "c.iso", &c), 0);
        assert_string_equal(c.hex, H128);
        assert_int_equal(checksum_list_find(bsd, "d (1).iso", &c), 0);
        assert_string_equal(c.hex, H64);

        /* both algorithms listed: SHA-512 wins; the same entry twice is fine */
        const char *both = H64 "  e.iso\n" H128 "  e.iso\n" H128 "  e.iso\n";
        assert_int_equal(checksum_list_find(both, "e.iso", &c), 0);
        assert_int_equal(c.algo, CHECKSUM_SHA512);

        /* bad input */
        strcpy(c.hex, "untouched");
        assert_int_equal(checksum_list_find(H128 "  f.iso\n" H128B "  f.iso\n", "f.iso", &c), -ENOTUNIQ);
        assert_int_equal(checksum_list_find("0123  g.iso\n", "g.iso", &c), -EINVAL);
        assert_int_equal(checksum_list_find("xyz" H64 "  g.iso\n", "g.iso", &c), -EINVAL);
        assert_int_equal(checksum_list_find(H128 "\n", "g.iso", &c), -ENOENT);      /* no name */
        assert_int_equal(checksum_list_find(H128 "  \n", "g.iso", &c), -ENOENT);
        assert_int_equal(checksum_list_find("", "g.iso", &c), -ENOENT);
        assert_int_equal(checksum_list_find("<html><body>Not Found</body></html>", "g.iso", &c), -ENOENT);
        assert_int_equal(checksum_list_find("SHA512 (g.iso) = xyz\n", "g.iso", &c), -EINVAL);
        assert_int_equal(checksum_list_find("SHA512 (g.iso)\n", "g.iso", &c), -ENOENT);
        assert_string_equal(c.hex, "untouched");
        /* a good line still wins over a malformed one for the same name */
        assert_int_equal(checksum_list_find("0123  h.iso\n" H64 "  h.iso\n", "h.iso", &c), 0);
}

static void test_url_filename(void **state) {
        static const struct {
                const char *url, *name;
        } t[] = {
                { "https://releases.rancher.com/harvester/v1.1.2/harvester-v1.1.2-amd64.iso", "harvester-v1.1.2-amd64.iso" },
                { "http://10.0.2.2:8080/a/b.iso?token=x#frag", "b.iso" },
                { "http://h/a%20b.iso", "a b.iso" },
                { "file:///srv/iso/x.iso", "x.iso" },
                { "http://user:pw@h/y.iso", "y.iso" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_free_ char *n = NULL;
                assert_int_equal(checksum_url_filename(t[i].url, &n), 0);
                assert_string_equal(n, t[i].name);
        }
        char *n = NULL;
        assert_int_equal(checksum_url_filename("http://h/dir/", &n), -EINVAL);
        assert_int_equal(checksum_url_filename("http://h", &n), -EINVAL);
        assert_int_equal(checksum_url_filename("not a url", &n), -EINVAL);
        assert_null(n);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_list),
                cmocka_unit_test(test_url_filename),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
