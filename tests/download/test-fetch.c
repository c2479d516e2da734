/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The verified, resumable download against the fault-injecting server (tests/net/fault-server.py)
 * on 127.0.0.1: each failure case of issue 4 with its expected outcome, in process
 * (download_file()) and through the `fetch` command (exit codes).
 */
#include <fcntl.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "download.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define FILE_SIZE (4 * 1024 * 1024 + 4321)

static struct test_server srv = { .stdin_fd = -1, .stdout_fd = -1 };
static char *served;  /* the server's directory */
static char *out;     /* where downloads go */
static char *capture; /* the log, for message checks */
static unsigned char *data_a, *data_b;
static struct checksum sum_a, sum_b, sum_a256;

static void digest(const EVP_MD *md, enum checksum_algo algo, const unsigned char *d, size_t len, struct checksum *ret) {
        unsigned char m[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        assert_int_equal(EVP_Digest(d, len, m, &n, md, NULL), 1);
        ret->algo = algo;
        for (unsigned i = 0; i < n; i++)
                snprintf(ret->hex + 2 * i, 3, "%02x", m[i]);
}

static unsigned char *random_data(uint64_t seed) {
        unsigned char *d = malloc(FILE_SIZE);
        if (!d)
                return NULL;
        uint64_t x = seed;
        for (size_t i = 0; i < FILE_SIZE; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                d[i] = (unsigned char)(x >> 32);
        }
        return d;
}

static int setup(void **state) {
        data_a = random_data(0x1234567890abcdefULL);
        data_b = random_data(0xfedcba0987654321ULL);
        if (!data_a || !data_b || test_mkdtemp(&served) < 0 || test_mkdtemp(&out) < 0)
                return -1;
        /* served files must be readable by the server whatever its user */
        if (chmod(served, 0755) < 0)
                return -1;
        if (test_write_file(served, "f.bin", data_a, FILE_SIZE) < 0 ||
            test_write_file(served, "c.bin", data_a, FILE_SIZE) < 0 ||
            test_write_file(served, "c.bin.v2", data_b, FILE_SIZE - 1000) < 0)
                return -1;
        digest(EVP_sha512(), CHECKSUM_SHA512, data_a, FILE_SIZE, &sum_a);
        digest(EVP_sha256(), CHECKSUM_SHA256, data_a, FILE_SIZE, &sum_a256);
        digest(EVP_sha512(), CHECKSUM_SHA512, data_b, FILE_SIZE - 1000, &sum_b);

        /* A release-style checksum list. */
        _cleanup_free_ char *list = strdup_printf("%s  other.iso\n%s  f.bin\n", sum_b.hex, sum_a.hex);
        if (!list || test_write_file(served, "SHA512SUMS", list, strlen(list)) < 0)
                return -1;

        capture = strdup_printf("%s/log", out);
        if (!capture || log_set_capture_file(capture) < 0)
                return -1;
        return test_server_start(served, &srv) < 0 ? -1 : 0;
}

static int teardown(void **state) {
        test_server_stop(&srv);
        test_rm_rf(served);
        test_rm_rf(out);
        free(served);
        free(out);
        free(capture);
        free(data_a);
        free(data_b);
        return 0;
}

static int before_each(void **state) {
        assert_int_equal(test_server_reset(&srv), 0);
        assert_int_equal(truncate(capture, 0), 0);
        return 0;
}

static char *dest_path(const char *name) {
        char *p = strdup_printf("%s/%s", out, name);
        assert_non_null(p);
        return p;
}

static bool exists(const char *path) {
        return access(path, F_OK) == 0;
}

static void assert_file_equals(const char *path, const unsigned char *d, size_t len) {
        char *text = NULL;
        size_t n = 0;
        assert_int_equal(read_full_file(path, &text, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(text, d, len);
        free(text);
}

/* Nothing left behind: neither the file nor its ".part". */
static void assert_no_file(const char *path) {
        _cleanup_free_ char *part = strdup_printf("%s.part", path);
        assert_false(exists(path));
        assert_false(exists(part));
}

static char *log_text(void) {
        char *t = NULL;
        assert_int_equal(read_full_file(capture, &t, NULL), 0);
        return t;
}

static int fetch(const char *path, const struct checksum *expected, const char *dest, long stall,
                 int64_t deadline, struct download_result *res) {
        _cleanup_free_ char *url = test_server_url(&srv, "%s", path);
        assert_non_null(url);
        const struct download_options o = {
                .url = url,
                .dest = dest,
                .what = "test",
                .expected = expected,
                .stall_timeout_sec = stall,
                .deadline_sec = deadline,
        };
        return download_file(&o, res);
}

static void test_ok(void **state) {
        _cleanup_free_ char *dest = dest_path("ok.bin");
        struct download_result res;
        assert_int_equal(fetch("/ok/f.bin", &sum_a, dest, 0, 0, &res), 0);
        assert_true(res.verified);
        assert_true(res.size == FILE_SIZE);
        assert_true(checksum_equal(&res.digest, &sum_a));
        assert_int_equal(res.attempts, 1);
        assert_file_equals(dest, data_a, FILE_SIZE);
        assert_int_equal(test_server_count(&srv, "/ok/f.bin"), 1);
        struct stat st;
        assert_int_equal(stat(dest, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        /* SHA-256 too */
        _cleanup_free_ char *dest2 = dest_path("ok256.bin");
        assert_int_equal(fetch("/ok/f.bin", &sum_a256, dest2, 0, 0, &res), 0);
        assert_int_equal(res.digest.algo, CHECKSUM_SHA256);
        assert_true(checksum_equal(&res.digest, &sum_a256));

        /* without an expected checksum: complete, SHA-512 computed, not verified */
        _cleanup_free_ char *dest3 = dest_path("unverified.bin");
        assert_int_equal(fetch("/ok/f.bin", NULL, dest3, 0, 0, &res), 0);
        assert_false(res.verified);
        assert_true(checksum_equal(&res.digest, &sum_a));
}

/* Progress lines (percent, bytes, MiB/s, ETA) at most once a second, and a final line. */
static void test_progress(void **state) {
        _cleanup_free_ char *dest = dest_path("slow.bin");
        struct download_result res;
        assert_int_equal(fetch("/ok/f.bin?rate=1500000", &sum_a, dest, 0, 0, &res), 0);
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "%  "));
        assert_non_null(strstr(log, " of 4.0 MiB  "));
        assert_non_null(strstr(log, " MiB/s  ETA "));
        assert_non_null(strstr(log, "test: received 4.0 MiB in "));
        assert_non_null(strstr(log, "MiB/s average"));
        assert_non_null(strstr(log, "checksum verified: sha512:"));
}

static void test_drop30(void **state) {
        _cleanup_free_ char *dest = dest_path("drop.bin");
        struct download_result res;
        assert_int_equal(fetch("/drop30/f.bin", &sum_a, dest, 0, 0, &res), 0);
        assert_true(checksum_equal(&res.digest, &sum_a));
        assert_int_equal(res.resumes, 1);
        assert_int_equal(res.restarts, 0);
        assert_file_equals(dest, data_a, FILE_SIZE);

        /* the second request continued from where the first stopped, guarded by If-Range */
        _cleanup_strv_free_ char **lines = NULL;
        assert_int_equal(test_server_request_lines(&srv, "/drop30/f.bin", &lines), 0);
        assert_int_equal(strv_length(lines), 2);
        assert_null(strstr(lines[0], "\"range\""));
        _cleanup_free_ char *range = strdup_printf("\"range\": \"bytes=%d-\"", (int)(FILE_SIZE * 0.3));
        assert_non_null(strstr(lines[1], range));
        assert_non_null(strstr(lines[1], "\"if-range\": \"\\\""));
}

static void test_stall(void **state) {
        _cleanup_free_ char *dest = dest_path("stall.bin");
        struct download_result res;
        /* the server holds the connection for 60 s; the stall timeout is 2 s (on a loaded machine
         * the second transfer could stall too: at least one resume) */
        assert_int_equal(fetch("/stall/f.bin?stall=60", &sum_a, dest, 2, 0, &res), 0);
        assert_true(checksum_equal(&res.digest, &sum_a));
        assert_true(res.resumes >= 1);
        assert_file_equals(dest, data_a, FILE_SIZE);
        _cleanup_strv_free_ char **lines = NULL;
        assert_int_equal(test_server_request_lines(&srv, "/stall/f.bin", &lines), 0);
        assert_true(strv_length(lines) >= 2);
        _cleanup_free_ char *range = strdup_printf("\"range\": \"bytes=%d-\"", FILE_SIZE / 2);
        assert_non_null(strstr(lines[1], range));
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "stalled: nothing received for 2 s"));
}

static void test_503_twice(void **state) {
        _cleanup_free_ char *dest = dest_path("503.bin");
        struct download_result res;
        assert_int_equal(fetch("/fail503x2/f.bin", &sum_a, dest, 0, 30, &res), 0);
        assert_int_equal(res.attempts, 3);
        assert_true(checksum_equal(&res.digest, &sum_a));
        assert_int_equal(test_server_count(&srv, "/fail503x2/f.bin"), 3);
        assert_file_equals(dest, data_a, FILE_SIZE);
}

static void test_404(void **state) {
        _cleanup_free_ char *dest = dest_path("404.bin");
        struct download_result res;
        assert_int_equal(fetch("/404/f.bin", &sum_a, dest, 0, 30, &res), -ENOENT);
        assert_int_equal(test_server_count(&srv, "/404/f.bin"), 1); /* at once, no retry */
        assert_no_file(dest);
        /* other 4xx: at once too */
        assert_int_equal(fetch("/status/403/f.bin", &sum_a, dest, 0, 30, &res), -EACCES);
        assert_int_equal(fetch("/status/400/f.bin", &sum_a, dest, 0, 30, &res), -EPROTO);
        assert_int_equal(test_server_count(&srv, "/status/"), 2);
        assert_no_file(dest);
}

static void test_wrong(void **state) {
        _cleanup_free_ char *dest = dest_path("wrong.bin");
        struct download_result res;
        /* an existing file at dest is not touched by a failed download */
        assert_int_equal(test_write_file(out, "wrong.bin", "old", 3), 0);
        assert_int_equal(fetch("/wrong/f.bin", &sum_a, dest, 0, 0, &res), -EBADMSG);
        assert_file_equals(dest, (const unsigned char *)"old", 3);
        unlink(dest);
        assert_no_file(dest);
        _cleanup_free_ char *log = log_text();
        _cleanup_free_ char *want = strdup_printf("expected sha512:%s, got sha512:", sum_a.hex);
        assert_non_null(strstr(log, want));
        _cleanup_free_ char *bytes = strdup_printf("(%d bytes received)", FILE_SIZE);
        assert_non_null(strstr(log, bytes));
}

/* The file changes between the drop and the resume: If-Range fails, the server sends the whole new
 * version, the download starts again from zero and ends with version B's digest. */
static void test_change(void **state) {
        _cleanup_free_ char *dest = dest_path("change.bin");
        struct download_result res;
        assert_int_equal(fetch("/change/c.bin", &sum_b, dest, 0, 0, &res), 0);
        assert_true(res.verified);
        assert_true(checksum_equal(&res.digest, &sum_b));
        assert_int_equal(res.restarts, 1);
        assert_true(res.size == FILE_SIZE - 1000);
        assert_file_equals(dest, data_b, FILE_SIZE - 1000);
        _cleanup_strv_free_ char **lines = NULL;
        assert_int_equal(test_server_request_lines(&srv, "/change/c.bin", &lines), 0);
        assert_int_equal(strv_length(lines), 2);
        assert_non_null(strstr(lines[1], "\"if-range\""));
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "changed on the server"));

        /* expecting version A: a mismatch (never a file spliced from A and B), nothing left */
        assert_int_equal(unlink(dest), 0);
        assert_int_equal(test_server_reset(&srv), 0);
        assert_int_equal(fetch("/change/c.bin", &sum_a, dest, 0, 0, &res), -EBADMSG);
        assert_no_file(dest);
}

/* A server without Range support drops the connection: we start again from zero (documented
 * choice), never a corrupt file. */
static void test_norange(void **state) {
        _cleanup_free_ char *dest = dest_path("norange.bin");
        struct download_result res;
        assert_int_equal(fetch("/norange/f.bin", &sum_a, dest, 0, 0, &res), 0);
        assert_true(checksum_equal(&res.digest, &sum_a));
        assert_int_equal(res.restarts, 1);
        assert_int_equal(res.resumes, 0);
        assert_file_equals(dest, data_a, FILE_SIZE);
        assert_int_equal(test_server_count(&srv, "/norange/f.bin"), 2);
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "does not accept Range requests"));
}

static void test_short(void **state) {
        _cleanup_free_ char *dest = dest_path("short.bin");
        struct download_result res;
        assert_int_equal(fetch("/short/f.bin", &sum_a, dest, 0, 30, &res), -EPROTO);
        assert_no_file(dest);
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "short file"));
        assert_non_null(strstr(log, "but sent 4.0 MiB"));
        /* without a checksum too */
        assert_int_equal(fetch("/short/f.bin", NULL, dest, 0, 30, &res), -EPROTO);
        assert_no_file(dest);
}

/* Connection refused: retried until the deadline, then a clear error. */
static void test_unreachable(void **state) {
        _cleanup_free_ char *dest = dest_path("refused.bin");
        struct download_result res;
        const struct download_options o = {
                .url = "http://127.0.0.1:1/f.bin",
                .dest = dest,
                .what = "test",
                .deadline_sec = 2,
        };
        assert_int_equal(download_file(&o, &res), -ETIMEDOUT);
        assert_no_file(dest);
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "giving up on http://127.0.0.1:1/f.bin after"));
}

static void test_checksum_url(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/ok/f.bin");
        _cleanup_free_ char *list = test_server_url(&srv, "/ok/SHA512SUMS");
        _cleanup_free_ char *missing = test_server_url(&srv, "/ok/g.bin");
        _cleanup_free_ char *gone = test_server_url(&srv, "/404/SHA512SUMS");
        struct checksum c;
        bool have = true;
        assert_int_equal(download_resolve_checksum(url, NULL, NULL, "k", "ku", false, NULL, 5, &c, &have), 0);
        assert_false(have);
        assert_int_equal(download_resolve_checksum(url, NULL, list, "k", "ku", false, NULL, 5, &c, &have), 0);
        assert_true(have);
        assert_true(checksum_equal(&c, &sum_a));
        assert_int_equal(download_resolve_checksum(missing, NULL, list, "k", "ku", false, NULL, 5, &c, &have), -ENOENT);
        assert_int_equal(download_resolve_checksum(url, NULL, gone, "k", "ku", false, NULL, 5, &c, &have), -ENOENT);
        /* the literal checksum wins over the list */
        _cleanup_free_ char *lit = strdup_printf("sha512:%s", sum_b.hex);
        assert_int_equal(download_resolve_checksum(url, lit, list, "k", "ku", false, NULL, 5, &c, &have), 0);
        assert_true(checksum_equal(&c, &sum_b));
        assert_int_equal(download_resolve_checksum(url, "sha512:abc", NULL, "k", "ku", false, NULL, 5, &c, &have), -EINVAL);
}

/* A password in the URL appears in no message. */
static void test_secret(void **state) {
        _cleanup_free_ char *dest = dest_path("secret.bin");
        _cleanup_free_ char *url = strdup_printf("http://user:s3cr%%65t-pw@127.0.0.1:%d/404/f.bin", srv.port);
        struct download_result res;
        const struct download_options o = { .url = url, .dest = dest, .what = "test" };
        assert_int_equal(download_file(&o, &res), -ENOENT);
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "/404/f.bin answered HTTP 404"));
        assert_null(strstr(log, "s3cr"));
        assert_null(strstr(log, "t-pw"));
        log_forget_secrets();
}

/* ---- Mirrors (issue 13 item 5): several URLs of one file, tried in order ---- */

#define DROP_AT 1000000
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

static int fetch_mirrors(const char *const *paths, const struct checksum *expected, const char *dest,
                         int64_t deadline, struct download_result *res) {
        char *urls[8] = {};
        size_t n = 0;
        for (; paths[n]; n++) {
                assert_true(n < ELEMENTSOF(urls) - 1);
                urls[n] = strncmp(paths[n], "http", 4) == 0 ? strdup(paths[n]) : test_server_url(&srv, "%s", paths[n]);
                assert_non_null(urls[n]);
        }
        const struct download_options o = {
                .urls = urls,
                .dest = dest,
                .what = "test",
                .expected = expected,
                .deadline_sec = deadline,
        };
        int r = download_file(&o, res);
        for (size_t i = 0; i < n; i++)
                free(urls[i]);
        return r;
}

/* The only request made to path (its JSON line). */
static char *only_request(const char *path) {
        _cleanup_strv_free_ char **lines = NULL;
        assert_int_equal(test_server_request_lines(&srv, path, &lines), 0);
        assert_int_equal(strv_length(lines), 1);
        return strdup(lines[0]);
}

/* The first mirror breaks off after DROP_AT bytes; the second continues from that byte with a Range
 * request (no If-Range: mirrors may differ in ETag), and the hash covers the file once. */
static void test_mirror_resume(void **state) {
        _cleanup_free_ char *dest = dest_path("mirror.bin");
        struct download_result res;
        const char *paths[] = { "/ok/f.bin?m=1&drop_after=" STRINGIFY(DROP_AT), "/ok/f.bin?m=2", NULL };
        assert_int_equal(fetch_mirrors(paths, &sum_a, dest, 0, &res), 0);
        assert_true(res.verified);
        assert_true(checksum_equal(&res.digest, &sum_a));
        assert_file_equals(dest, data_a, FILE_SIZE);
        assert_int_equal(res.mirror, 1);
        assert_int_equal(res.switches, 1);
        assert_int_equal(res.resumes, 1);
        assert_int_equal(res.restarts, 0);
        assert_int_equal(test_server_count(&srv, "/ok/f.bin?m=1"), 1);
        _cleanup_free_ char *second = only_request("/ok/f.bin?m=2");
        assert_non_null(strstr(second, "\"range\": \"bytes=" STRINGIFY(DROP_AT) "-\""));
        assert_null(strstr(second, "if-range"));
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "continuing on http://"));
        assert_non_null(strstr(log, "continues the file from byte " STRINGIFY(DROP_AT)));

        /* Back to the first mirror when the second breaks off too: each continues where the other
         * stopped (the first: 1 MB a request, the second: 1.5 MB). */
        assert_int_equal(unlink(dest), 0);
        assert_int_equal(test_server_reset(&srv), 0);
        const char *both[] = { "/ok/f.bin?m=1&drop_after=1000000", "/ok/f.bin?m=2&drop_after=1500000", NULL };
        assert_int_equal(fetch_mirrors(both, &sum_a, dest, 0, &res), 0);
        assert_true(checksum_equal(&res.digest, &sum_a));
        assert_file_equals(dest, data_a, FILE_SIZE);
        assert_int_equal(res.restarts, 0);
        _cleanup_strv_free_ char **l1 = NULL;
        assert_int_equal(test_server_request_lines(&srv, "/ok/f.bin?m=1", &l1), 0);
        assert_int_equal(strv_length(l1), 2);
        assert_non_null(strstr(l1[1], "\"range\": \"bytes=2500000-\""));
        assert_non_null(strstr(l1[1], "\"if-range\"")); /* its own validator, from its first answer */
}

/* Without a checksum nothing would prove a file joined from two servers: the second mirror starts
 * again from byte 0. */
static void test_mirror_unverified(void **state) {
        _cleanup_free_ char *dest = dest_path("mirror-unverified.bin");
        struct download_result res;
        const char *paths[] = { "/ok/f.bin?m=1&drop_after=" STRINGIFY(DROP_AT), "/ok/f.bin?m=2", NULL };
        assert_int_equal(fetch_mirrors(paths, NULL, dest, 0, &res), 0);
        assert_false(res.verified);
        assert_true(checksum_equal(&res.digest, &sum_a));
        assert_file_equals(dest, data_a, FILE_SIZE);
        assert_int_equal(res.restarts, 1);
        assert_int_equal(res.resumes, 0);
        _cleanup_free_ char *second = only_request("/ok/f.bin?m=2");
        assert_null(strstr(second, "\"range\""));
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "no checksum is set to prove a file joined from two servers"));
}

/* A mirror that ignores Range answers 200 with the whole file: the download starts again from byte 0
 * with the hash reset (the digest covers each byte once), and completes there. */
static void test_mirror_ignores_range(void **state) {
        _cleanup_free_ char *dest = dest_path("mirror-200.bin");
        struct download_result res;
        const char *paths[] = { "/ok/f.bin?m=1&drop_after=" STRINGIFY(DROP_AT), "/ignorerange/f.bin", NULL };
        assert_int_equal(fetch_mirrors(paths, &sum_a, dest, 0, &res), 0);
        assert_true(checksum_equal(&res.digest, &sum_a));
        assert_file_equals(dest, data_a, FILE_SIZE);
        assert_true(res.size == FILE_SIZE);
        assert_int_equal(res.restarts, 1);
        assert_int_equal(res.resumes, 0);
        _cleanup_free_ char *second = only_request("/ignorerange/f.bin");
        assert_non_null(strstr(second, "\"range\": \"bytes=" STRINGIFY(DROP_AT) "-\""));
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "does not answer Range requests; starting again from byte 0"));
}

/* Mirrors that lie (a Content-Range that starts elsewhere, another total length, more bytes than
 * announced): a clear error naming the mirror, and the next one continues from the byte held. */
static void test_mirror_lies(void **state) {
        static const struct {
                const char *mode, *needle;
        } cases[] = {
                { "badrange", "/badrange/f.bin answered a Range request for bytes " STRINGIFY(DROP_AT)
                              "- with \"Content-Range: bytes 1000001-" },
                { "badtotal", "/badtotal/f.bin says the file has 4199625 bytes, http://" },
                { "extra", "/extra/f.bin sends more than the 4.0 MiB it announced" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                print_message("lying mirror: %s\n", cases[i].mode);
                assert_int_equal(test_server_reset(&srv), 0);
                assert_int_equal(truncate(capture, 0), 0);
                _cleanup_free_ char *dest = dest_path("mirror-lie.bin");
                _cleanup_free_ char *liar = strdup_printf("/%s/f.bin", cases[i].mode);
                struct download_result res;
                const char *paths[] = { "/ok/f.bin?m=1&drop_after=" STRINGIFY(DROP_AT), liar, "/ok/f.bin?m=3", NULL };
                assert_int_equal(fetch_mirrors(paths, &sum_a, dest, 0, &res), 0);
                assert_true(checksum_equal(&res.digest, &sum_a));
                assert_file_equals(dest, data_a, FILE_SIZE);
                assert_int_equal(res.mirror, 2);
                assert_int_equal(test_server_count(&srv, liar), 1); /* not tried again */
                _cleanup_free_ char *log = log_text();
                if (!strstr(log, cases[i].needle))
                        print_message("log lacks \"%s\":\n%s\n", cases[i].needle, log);
                assert_non_null(strstr(log, cases[i].needle));
                assert_non_null(strstr(log, "(mirror 2 of 3, not tried again)"));
                /* the third continues from what was held: the drop point, or more when the liar
                 * sent good bytes before its lie showed */
                _cleanup_free_ char *third = only_request("/ok/f.bin?m=3");
                assert_non_null(strstr(third, "\"range\": \"bytes="));
                assert_int_equal(unlink(dest), 0);
        }
}

/* Every mirror fails: one error naming each mirror's failure, passwords redacted, nothing left. */
static void test_mirrors_all_fail(void **state) {
        _cleanup_free_ char *dest = dest_path("mirrors-fail.bin");
        _cleanup_free_ char *secret = strdup_printf("http://user:Mirr0r-pw@127.0.0.1:%d/status/403/f.bin", srv.port);
        struct download_result res;
        /* the third announces more than it sends, then refuses the rest (416): a short file */
        const char *paths[] = { "/404/f.bin", secret, "/short/f.bin", NULL };
        int r = fetch_mirrors(paths, &sum_a, dest, 30, &res);
        assert_int_equal(r, -ENOENT); /* the first mirror's */
        assert_no_file(dest);
        _cleanup_free_ char *log = log_text();
        assert_non_null(strstr(log, "error: test: every mirror failed: [1] http://127.0.0.1:"));
        assert_non_null(strstr(log, "/404/f.bin answered HTTP 404: the file is not there."));
        assert_non_null(strstr(log, "[2] http://user:<redacted>@127.0.0.1:"));
        assert_non_null(strstr(log, "/status/403/f.bin answered HTTP 403: access refused."));
        assert_non_null(strstr(log, "[3] short file: http://127.0.0.1:"));
        assert_null(strstr(log, "Mirr0r-pw"));
        log_forget_secrets();

        /* Mirrors that only fail in ways worth retrying: retried in turn until the deadline, then the
         * error names each one's last failure. */
        assert_int_equal(truncate(capture, 0), 0);
        const char *down[] = { "http://127.0.0.1:1/f.bin", "/status/503/f.bin", NULL };
        assert_int_equal(fetch_mirrors(down, &sum_a, dest, 2, &res), -ETIMEDOUT);
        assert_no_file(dest);
        _cleanup_free_ char *log2 = log_text();
        assert_non_null(strstr(log2, "s without progress on any mirror. Each mirror's last failure: "
                                     "[1] http://127.0.0.1:1/f.bin: "));
        assert_non_null(strstr(log2, "/status/503/f.bin: HTTP 503"));
}

/* The `fetch` command: exit codes and what is left on disk. */
static int run_agent(const char *const *args) {
        const char *agent = getenv("AGENT");
        assert_non_null(agent);
        char *argv[16] = { (char *)agent, (char *)"fetch" };
        size_t n = 2;
        for (size_t i = 0; args[i]; i++)
                argv[n++] = (char *)args[i];
        argv[n] = NULL;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open("/dev/null", O_WRONLY);
                dup2(fd, STDOUT_FILENO);
                execv(agent, argv);
                _exit(127);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static void test_cli(void **state) {
        _cleanup_free_ char *ok = test_server_url(&srv, "/drop30/f.bin");
        _cleanup_free_ char *wrong = test_server_url(&srv, "/wrong/f.bin");
        _cleanup_free_ char *nf = test_server_url(&srv, "/404/f.bin");
        _cleanup_free_ char *list = test_server_url(&srv, "/ok/SHA512SUMS");
        _cleanup_free_ char *sum = strdup_printf("sha512:%s", sum_a.hex);
        _cleanup_free_ char *dest = dest_path("cli.bin");

        assert_int_equal(run_agent((const char *[]) { ok, dest, "--checksum", sum, NULL }), 0);
        assert_file_equals(dest, data_a, FILE_SIZE);
        unlink(dest);
        /* a directory as DEST keeps the file name; the checksum from the list */
        assert_int_equal(run_agent((const char *[]) { ok, out, "--checksum-url", list, NULL }), 0);
        _cleanup_free_ char *in_dir = dest_path("f.bin");
        assert_file_equals(in_dir, data_a, FILE_SIZE);
        unlink(in_dir);
        /* no checksum: complete is success (with a warning) */
        assert_int_equal(run_agent((const char *[]) { ok, dest, NULL }), 0);
        unlink(dest);

        assert_int_equal(run_agent((const char *[]) { wrong, dest, "--checksum", sum, NULL }), 5);
        assert_no_file(dest);
        assert_int_equal(run_agent((const char *[]) { nf, dest, "--checksum", sum, NULL }), 5);
        assert_no_file(dest);

        /* --mirror: the first URL breaks off, the mirror continues from the byte held */
        _cleanup_free_ char *m1 = test_server_url(&srv, "/ok/f.bin?cli=1&drop_after=1000000");
        _cleanup_free_ char *m2 = test_server_url(&srv, "/ok/f.bin?cli=2");
        assert_int_equal(run_agent((const char *[]) { m1, dest, "--mirror", m2, "--checksum", sum, NULL }), 0);
        assert_file_equals(dest, data_a, FILE_SIZE);
        unlink(dest);
        _cleanup_strv_free_ char **lines = NULL;
        assert_int_equal(test_server_request_lines(&srv, "/ok/f.bin?cli=2", &lines), 0);
        assert_int_equal(strv_length(lines), 1);
        assert_non_null(strstr(lines[0], "\"range\": \"bytes=1000000-\""));

        assert_int_equal(run_agent((const char *[]) { ok, NULL }), 2);
        assert_int_equal(run_agent((const char *[]) { ok, dest, "--checksum", "md5:abc", NULL }), 2);
        assert_int_equal(run_agent((const char *[]) { ok, dest, "--stall-timeout", "x", NULL }), 2);
        assert_int_equal(run_agent((const char *[]) { ok, dest, "--bogus", NULL }), 2);
        assert_no_file(dest);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_ok, before_each),
                cmocka_unit_test_setup(test_progress, before_each),
                cmocka_unit_test_setup(test_drop30, before_each),
                cmocka_unit_test_setup(test_stall, before_each),
                cmocka_unit_test_setup(test_503_twice, before_each),
                cmocka_unit_test_setup(test_404, before_each),
                cmocka_unit_test_setup(test_wrong, before_each),
                cmocka_unit_test_setup(test_change, before_each),
                cmocka_unit_test_setup(test_norange, before_each),
                cmocka_unit_test_setup(test_short, before_each),
                cmocka_unit_test_setup(test_unreachable, before_each),
                cmocka_unit_test_setup(test_checksum_url, before_each),
                cmocka_unit_test_setup(test_secret, before_each),
                cmocka_unit_test_setup(test_cli, before_each),
                cmocka_unit_test_setup(test_mirror_resume, before_each),
                cmocka_unit_test_setup(test_mirror_unverified, before_each),
                cmocka_unit_test_setup(test_mirror_ignores_range, before_each),
                cmocka_unit_test_setup(test_mirror_lies, before_each),
                cmocka_unit_test_setup(test_mirrors_all_fail, before_each),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
