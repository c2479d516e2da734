/* SPDX-License-Identifier: Apache-2.0 */
/* http_get() against the fault-injecting server on 127.0.0.1 (tests/net/fault-server.py). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "http.h"
#include "log.h"
#include "log-capture.h"
#include "server.h"
#include "util.h"

static struct test_server srv = { .stdin_fd = -1, .stdout_fd = -1 };
static char *dir;
static char *capture;
static char big[100 * 1024];

static int setup(void **state) {
        if (test_mkdtemp(&dir) < 0)
                return -1;
        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (char)('a' + (i * 7 + i / 13) % 26);
        if (test_write_file(dir, "hello.txt", "hello, world\n", 13) < 0 ||
            test_write_file(dir, "big.bin", big, sizeof(big)) < 0)
                return -1;
        capture = strdup_printf("%s/log", dir);
        if (!capture || log_set_capture_file(capture) < 0)
                return -1;
        return test_server_start(dir, &srv) < 0 ? -1 : 0;
}

static int teardown(void **state) {
        test_server_stop(&srv);
        if (dir)
                (void)test_rm_rf(dir);
        free(dir);
        free(capture);
        return 0;
}

static int get(const char *url, const struct http_options *o, char **body, size_t *len) {
        _cleanup_free_ char *old = log_since_last(capture);
        return http_get(url, o, body, len);
}

static void test_success(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/ok/hello.txt");
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        struct http_options o = { .what = "config_url", .deadline_sec = 10 };
        assert_int_equal(get(url, &o, &body, &len), 0);
        assert_int_equal(len, 13);
        assert_string_equal(body, "hello, world\n");
        assert_int_equal(test_server_count(&srv, "/ok/hello.txt"), 1);

        /* 100 KiB, binary-safe length, NUL-terminated. */
        _cleanup_free_ char *url2 = test_server_url(&srv, "/ok/big.bin");
        _cleanup_free_ char *body2 = NULL;
        assert_int_equal(get(url2, &o, &body2, &len), 0);
        assert_int_equal(len, sizeof(big));
        assert_memory_equal(body2, big, sizeof(big));
        assert_int_equal(body2[len], 0);

        /* An empty file gives an empty string, not NULL. */
        assert_int_equal(test_write_file(dir, "empty.txt", "", 0), 0);
        _cleanup_free_ char *url3 = test_server_url(&srv, "/ok/empty.txt");
        _cleanup_free_ char *body3 = NULL;
        assert_int_equal(get(url3, &o, &body3, &len), 0);
        assert_int_equal(len, 0);
        assert_string_equal(body3, "");
}

static void test_file_url(void **state) {
        _cleanup_free_ char *url = strdup_printf("file://%s/hello.txt", dir);
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        struct http_options o = { .what = "config_url", .deadline_sec = 10 };
        assert_int_equal(get(url, &o, &body, &len), 0);
        assert_string_equal(body, "hello, world\n");

        _cleanup_free_ char *missing = strdup_printf("file://%s/nope.yaml", dir);
        char *b2 = NULL;
        assert_int_equal(get(missing, &o, &b2, &len), -ENOENT);
        assert_null(b2);
}

/* 404 and other 4xx fail at once: exactly one request, the right errno, one error naming it. */
static void test_4xx_fail_at_once(void **state) {
        static const struct { const char *path; int err; const char *shown; } t[] = {
                { "/404/hello.txt", -ENOENT, "HTTP 404" },
                { "/status/410/x", -ENOENT, "HTTP 410" },
                { "/status/403/x", -EACCES, "HTTP 403" },
                { "/status/401/x", -EACCES, "HTTP 401" },
                { "/status/400/x", -EPROTO, "HTTP 400" },
                { "/status/416/x", -EPROTO, "HTTP 416" },
                { "/ok/not-there.yaml", -ENOENT, "HTTP 404" },
        };
        struct http_options o = { .what = "config_url", .deadline_sec = 60 };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_free_ char *url = test_server_url(&srv, "%s", t[i].path);
                char *body = NULL;
                size_t len = 4711;
                assert_int_equal(get(url, &o, &body, &len), t[i].err);
                assert_null(body);
                assert_int_equal(len, 4711); /* untouched on failure */
                assert_int_equal(test_server_count(&srv, t[i].path), 1);
                _cleanup_free_ char *log = log_since_last(capture);
                assert_non_null(strstr(log, t[i].shown));
                assert_non_null(strstr(log, url));
                assert_null(strstr(log, "attempt"));
        }
}

/* 503, 503, then 200: three requests, the body of the third, one line per failed attempt. */
static void test_503_twice_then_200(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/fail503x2/hello.txt");
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        struct http_options o = { .what = "config_url", .deadline_sec = 60 };
        assert_int_equal(get(url, &o, &body, &len), 0);
        assert_string_equal(body, "hello, world\n");
        assert_int_equal(test_server_count(&srv, "/fail503x2/hello.txt"), 3);
        _cleanup_free_ char *log = log_since_last(capture);
        _cleanup_free_ char *l1 = strdup_printf("config_url: attempt 1 failed: HTTP 503 Service Unavailable (%s); next try in ", url);
        _cleanup_free_ char *l2 = strdup_printf("config_url: attempt 2 failed: HTTP 503 Service Unavailable (%s); next try in ", url);
        assert_non_null(strstr(log, l1));
        assert_non_null(strstr(log, l2));
        assert_null(strstr(log, "attempt 3"));
}

/* A 5xx that never ends: retried until the deadline, then -ETIMEDOUT and a clear error. */
static void test_500_until_deadline(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/status/500/forever");
        char *body = NULL;
        struct http_options o = { .what = "config_url", .deadline_sec = 3, .hint = "Raise harvester.install.config_url_timeout." };
        assert_int_equal(get(url, &o, &body, NULL), -ETIMEDOUT);
        assert_null(body);
        int n = test_server_count(&srv, "/status/500/forever");
        /* the first retry comes within 1 s, so at least two attempts fit in 3 s */
        assert_true(n >= 2);
        _cleanup_free_ char *log = log_since_last(capture);
        assert_non_null(strstr(log, "config_url: giving up on"));
        assert_non_null(strstr(log, "HTTP 500"));
        assert_non_null(strstr(log, "Raise harvester.install.config_url_timeout."));
        _cleanup_free_ char *last = strdup_printf("attempt %d failed: HTTP 500", n);
        assert_non_null(strstr(log, last));
}

/* A server that accepts and never answers: each attempt ends by stall detection or by the
 * deadline; -ETIMEDOUT; no more attempts than the deadline allows. */
static void test_hang_deadline(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/hang/hello.txt");
        char *body = NULL;
        struct http_options o = { .what = "config_url", .deadline_sec = 3, .stall_timeout_sec = 1 };
        uint64_t t0 = now_usec();
        assert_int_equal(get(url, &o, &body, NULL), -ETIMEDOUT);
        uint64_t took = now_usec() - t0;
        assert_null(body);
        int n = test_server_count(&srv, "/hang/hello.txt");
        /* each attempt lasts at least the 1 s stall window, so at most 3 s / 1 s (+1) of them */
        assert_true(n >= 1);
        assert_true(n <= 4);
        print_message("hang: %d attempts in %.1f s (deadline 3 s)\n", n, (double)took / 1e6);
}

/* First GET stalls at 50% (the server holds the connection 60 s): stall detection ends the
 * attempt, the retry gets the whole body. */
static void test_stall_then_ok(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/stall/big.bin?stall=60");
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        struct http_options o = { .what = "config_url", .deadline_sec = 60, .stall_timeout_sec = 1 };
        assert_int_equal(get(url, &o, &body, &len), 0);
        assert_int_equal(len, sizeof(big));
        assert_memory_equal(body, big, sizeof(big));
        assert_int_equal(test_server_count(&srv, "/stall/big.bin"), 2);
        _cleanup_free_ char *log = log_since_last(capture);
        assert_non_null(strstr(log, "attempt 1 failed: stalled: nothing received for 1 s ("));
}

/* Dropped at 30%: retried, whole body right. A body shorter than its Content-Length is never
 * returned as success. */
static void test_drop_and_short(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/drop30/big.bin");
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        struct http_options o = { .what = "config_url", .deadline_sec = 60 };
        assert_int_equal(get(url, &o, &body, &len), 0);
        assert_int_equal(len, sizeof(big));
        assert_memory_equal(body, big, sizeof(big));
        assert_int_equal(test_server_count(&srv, "/drop30/big.bin"), 2);

        _cleanup_free_ char *url2 = test_server_url(&srv, "/short/big.bin");
        char *b2 = NULL;
        struct http_options o2 = { .what = "config_url", .deadline_sec = 2 };
        assert_int_equal(get(url2, &o2, &b2, &len), -ETIMEDOUT);
        assert_null(b2);
        assert_true(test_server_count(&srv, "/short/big.bin") >= 2);

        /* one attempt only (deadline 0): a partial body is -EIO */
        assert_int_equal(test_server_reset(&srv), 0);
        struct http_options o3 = { .what = "checksum list" };
        assert_int_equal(get(url2, &o3, &b2, &len), -EIO);
        assert_int_equal(test_server_count(&srv, "/short/big.bin"), 1);
}

/* Bodies larger than max_body are refused at once; exactly max_body is fine. */
static void test_max_body(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/ok/big.bin");
        char *body = NULL;
        size_t len = 0;
        struct http_options o = { .what = "config_url", .deadline_sec = 60, .max_body = 10 * 1024 };
        assert_int_equal(test_server_reset(&srv), 0);
        assert_int_equal(get(url, &o, &body, &len), -EFBIG);
        assert_null(body);
        assert_int_equal(test_server_count(&srv, "/ok/big.bin"), 1);
        _cleanup_free_ char *log = log_since_last(capture);
        assert_non_null(strstr(log, "is larger than"));

        /* Without Content-Length help: norange drops the first GET, so use file:// too. */
        _cleanup_free_ char *furl = strdup_printf("file://%s/big.bin", dir);
        assert_int_equal(get(furl, &o, &body, &len), -EFBIG);
        assert_null(body);

        o.max_body = sizeof(big);
        assert_int_equal(get(url, &o, &body, &len), 0);
        assert_int_equal(len, sizeof(big));
        free(body);
}

/* A port nobody listens on: retried until the deadline; one attempt only: -EIO. */
static void test_connection_refused(void **state) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        struct sockaddr_in a = { .sin_family = AF_INET };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        socklen_t sl = sizeof(a);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
        close(fd); /* bound, never listened, closed: connections are refused */
        _cleanup_free_ char *url = strdup_printf("http://127.0.0.1:%d/ok/hello.txt", ntohs(a.sin_port));

        char *body = NULL;
        struct http_options o = { .what = "config_url", .deadline_sec = 2 };
        assert_int_equal(get(url, &o, &body, NULL), -ETIMEDOUT);
        _cleanup_free_ char *log = log_since_last(capture);
        assert_non_null(strstr(log, "attempt 1 failed: "));
        assert_non_null(strstr(log, "giving up on"));

        struct http_options o1 = { .what = "config_url" };
        assert_int_equal(get(url, &o1, &body, NULL), -EIO);
        assert_null(body);
}

/* Redirects are followed to http(s), never to file://. */
static void test_redirects(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/status/302/r1?location=/ok/hello.txt");
        _cleanup_free_ char *body = NULL;
        struct http_options o = { .what = "config_url", .deadline_sec = 10 };
        assert_int_equal(get(url, &o, &body, NULL), 0);
        assert_string_equal(body, "hello, world\n");

        _cleanup_free_ char *evil = test_server_url(&srv, "/status/302/r2?location=file:///etc/passwd");
        char *b2 = NULL;
        assert_int_equal(get(evil, &o, &b2, NULL), -EPROTO);
        assert_null(b2);

        char *b3 = NULL;
        assert_int_equal(get("ftp://127.0.0.1/x", &o, &b3, NULL), -EPROTO);
        assert_int_equal(get("http://[::1/x", &o, &b3, NULL), -EINVAL);
        assert_null(b3);
}

/* The password of URL userinfo never reaches the log; the user name does. */
static void test_userinfo_not_logged(void **state) {
        _cleanup_free_ char *url = strdup_printf("http://operator:s3cr3t-pw@127.0.0.1:%d/404/c.yaml", srv.port);
        char *body = NULL;
        struct http_options o = { .what = "config_url", .deadline_sec = 10 };
        assert_int_equal(get(url, &o, &body, NULL), -ENOENT);
        _cleanup_free_ char *log = log_since_last(capture);
        assert_null(strstr(log, "s3cr3t-pw"));
        assert_non_null(strstr(log, "http://operator:<redacted>@127.0.0.1:"));
        /* ... yet the credentials were sent */
        _cleanup_free_ char *json = NULL;
        assert_int_equal(test_server_requests(&srv, "/404/c.yaml", &json), 0);
        assert_non_null(strstr(json, "\"authorization\": \"Basic b3BlcmF0b3I6czNjcjN0LXB3\""));
}

static void test_url_redact(void **state) {
        static const struct { const char *in, *out; } t[] = {
                { "http://user:pw@host/x", "http://user:<redacted>@host/x" },
                { "https://u:p%40ss@h:8443/a?b=c@d", "https://u:<redacted>@h:8443/a?b=c@d" },
                { "http://a:b:c@h", "http://a:<redacted>@h" },
                { "http://u:p@x@h/", "http://u:<redacted>@h/" },
                { "http://user@host/x", "http://user@host/x" },
                { "http://host/p?q=a:b@c", "http://host/p?q=a:b@c" },
                { "http://host/#a:b@c", "http://host/#a:b@c" },
                { "file:///etc/x", "file:///etc/x" },
                { "u:p@host", "u:<redacted>@host" },
                { "", "" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_free_ char *r = url_redact(t[i].in);
                assert_non_null(r);
                assert_string_equal(r, t[i].out);
        }
        assert_null(url_redact(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_url_redact),
                cmocka_unit_test(test_success),
                cmocka_unit_test(test_file_url),
                cmocka_unit_test(test_4xx_fail_at_once),
                cmocka_unit_test(test_503_twice_then_200),
                cmocka_unit_test(test_500_until_deadline),
                cmocka_unit_test(test_hang_deadline),
                cmocka_unit_test(test_stall_then_ok),
                cmocka_unit_test(test_drop_and_short),
                cmocka_unit_test(test_max_body),
                cmocka_unit_test(test_connection_refused),
                cmocka_unit_test(test_redirects),
                cmocka_unit_test(test_userinfo_not_logged),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
