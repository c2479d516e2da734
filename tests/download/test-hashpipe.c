/* SPDX-License-Identifier: Apache-2.0 */
/* The hash pipeline against OpenSSL's one-shot digest of the same data, fed in odd chunk sizes. */
#include <fcntl.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "hashpipe.h"
#include "util.h"

#define DATA_SIZE (5 * 1024 * 1024 + 12345)

static unsigned char *data;

static int setup(void **state) {
        data = malloc(DATA_SIZE);
        if (!data)
                return -1;
        uint64_t x = 88172645463325252ULL;
        for (size_t i = 0; i < DATA_SIZE; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data[i] = (unsigned char)(x >> 24);
        }
        return 0;
}

static int teardown(void **state) {
        free(data);
        return 0;
}

static void one_shot(enum checksum_algo algo, const unsigned char *d, size_t len, char hex[static CHECKSUM_HEX_MAX + 1]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        assert_int_equal(EVP_Digest(d, len, md, &n, algo == CHECKSUM_SHA256 ? EVP_sha256() : EVP_sha512(), NULL), 1);
        for (unsigned i = 0; i < n; i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static int tmpfile_fd(void) {
        int fd = memfd_create("hashpipe-test", MFD_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

static void assert_file_is(int fd, const unsigned char *d, size_t len) {
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal((size_t)st.st_size, len);
        unsigned char *back = malloc(len + 1);
        assert_non_null(back);
        size_t off = 0;
        while (off < len) {
                ssize_t k = pread(fd, back + off, len - off, (off_t)off);
                assert_true(k > 0);
                off += (size_t)k;
        }
        assert_memory_equal(back, d, len);
        free(back);
}

/* Feeds data with chunk sizes cycling through sizes[], with the given ring geometry. */
static void run_case(enum checksum_algo algo, size_t slot_size, unsigned n_slots,
                     const size_t *sizes, size_t n_sizes, size_t total) {
        char want[CHECKSUM_HEX_MAX + 1] = "";
        one_shot(algo, data, total, want);

        _cleanup_close_ int fd = tmpfile_fd();
        _cleanup_hashpipe_ struct hashpipe *p = NULL;
        assert_int_equal(hashpipe_new(algo, fd, slot_size, n_slots, &p), 0);
        size_t off = 0;
        for (size_t i = 0; off < total; i++) {
                size_t k = sizes[i % n_sizes];
                if (k > total - off)
                        k = total - off;
                assert_int_equal(hashpipe_write(p, data + off, k), 0);
                off += k;
                assert_true(hashpipe_bytes(p) == off);
        }
        struct checksum c;
        assert_int_equal(hashpipe_finish(p, &c), 0);
        assert_int_equal(c.algo, algo);
        assert_string_equal(c.hex, want);
        assert_file_is(fd, data, total);
}

static void test_odd_chunks(void **state) {
        static const size_t sizes[] = { 1, 7, 4093, 65537, 16384, 3, 262145, 1000003, 2 };
        static const size_t big[] = { 3 * 1024 * 1024 + 1 };
        static const size_t exact[] = { 4096 };

        run_case(CHECKSUM_SHA512, 0, 0, sizes, ELEMENTSOF(sizes), DATA_SIZE);
        run_case(CHECKSUM_SHA256, 0, 0, sizes, ELEMENTSOF(sizes), DATA_SIZE);
        /* tiny ring: the producer waits for the hasher all the time (back-pressure) */
        run_case(CHECKSUM_SHA512, 4096, 2, sizes, ELEMENTSOF(sizes), DATA_SIZE);
        /* chunks larger than a slot, and an odd slot size */
        run_case(CHECKSUM_SHA512, 65521, 3, big, ELEMENTSOF(big), DATA_SIZE);
        /* chunks that fill slots exactly */
        run_case(CHECKSUM_SHA256, 4096 * 4, 2, exact, 1, 4096 * 40);
        /* nothing at all, and a single byte */
        run_case(CHECKSUM_SHA512, 0, 0, sizes, ELEMENTSOF(sizes), 0);
        run_case(CHECKSUM_SHA256, 0, 0, sizes, ELEMENTSOF(sizes), 1);
}

/* A resume keeps the hash state: two runs of writes with a pause in between give the digest of the
 * whole; a reset (the file changed on the server) starts from zero, file truncated. */
static void test_reset(void **state) {
        char want[CHECKSUM_HEX_MAX + 1] = "";
        size_t b_off = 1000, b_len = 3 * 1024 * 1024;
        one_shot(CHECKSUM_SHA512, data + b_off, b_len, want);

        _cleanup_close_ int fd = tmpfile_fd();
        _cleanup_hashpipe_ struct hashpipe *p = NULL;
        assert_int_equal(hashpipe_new(CHECKSUM_SHA512, fd, 8192, 3, &p), 0);
        assert_int_equal(hashpipe_write(p, data, 100000), 0);
        assert_int_equal(hashpipe_write(p, data + 100000, 333), 0);
        assert_true(hashpipe_bytes(p) == 100333);
        assert_int_equal(hashpipe_reset(p), 0);
        assert_true(hashpipe_bytes(p) == 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(st.st_size, 0);

        assert_int_equal(hashpipe_write(p, data + b_off, 5), 0);
        assert_int_equal(hashpipe_write(p, data + b_off + 5, b_len - 5), 0);
        struct checksum c;
        assert_int_equal(hashpipe_finish(p, &c), 0);
        assert_string_equal(c.hex, want);
        assert_file_is(fd, data + b_off, b_len);
        /* finished: no more writes */
        assert_int_equal(hashpipe_write(p, data, 1), -EINVAL);
}

/* Hash only (fd -1). */
static void test_no_file(void **state) {
        char want[CHECKSUM_HEX_MAX + 1] = "";
        one_shot(CHECKSUM_SHA256, data, 777777, want);
        _cleanup_hashpipe_ struct hashpipe *p = NULL;
        assert_int_equal(hashpipe_new(CHECKSUM_SHA256, -1, 1000, 2, &p), 0);
        assert_int_equal(hashpipe_write(p, data, 777777), 0);
        struct checksum c;
        assert_int_equal(hashpipe_finish(p, &c), 0);
        assert_string_equal(c.hex, want);
}

/* A write error (here: a read-only descriptor) is reported (writes happen behind, so at a later
 * call or at the end), and stays. */
static void test_write_error(void **state) {
        _cleanup_close_ int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        _cleanup_hashpipe_ struct hashpipe *p = NULL;
        assert_int_equal(hashpipe_new(CHECKSUM_SHA512, fd, 4096, 2, &p), 0);
        int r = 0;
        for (int i = 0; i < 100 && r == 0; i++)
                r = hashpipe_write(p, data, 8192);
        assert_int_equal(r, -EBADF);
        assert_int_equal(hashpipe_write(p, data, 1), -EBADF);
        struct checksum c;
        assert_int_equal(hashpipe_finish(p, &c), -EBADF);

        /* an error at the final flush is reported by finish */
        _cleanup_hashpipe_ struct hashpipe *q = NULL;
        assert_int_equal(hashpipe_new(CHECKSUM_SHA512, fd, 4096, 2, &q), 0);
        assert_int_equal(hashpipe_write(q, data, 10), 0);
        assert_int_equal(hashpipe_finish(q, &c), -EBADF);
}

/* Freeing a pipeline in the middle of a transfer (an error path) does not hang or leak. */
static void test_free_midway(void **state) {
        _cleanup_close_ int fd = tmpfile_fd();
        struct hashpipe *p = NULL;
        assert_int_equal(hashpipe_new(CHECKSUM_SHA512, fd, 4096, 2, &p), 0);
        assert_int_equal(hashpipe_write(p, data, 3 * 4096 + 5), 0);
        hashpipe_free(p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_odd_chunks),
                cmocka_unit_test(test_reset),
                cmocka_unit_test(test_no_file),
                cmocka_unit_test(test_write_error),
                cmocka_unit_test(test_free_midway),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
