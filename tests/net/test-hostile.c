/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `hostile` group (issue 10): odd secrets, a lying server, a slow console. Each test fails
 * when the defence it names is taken out.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "schema.h"
#include "server.h"
#include "util.h"

static struct test_server srv = { .stdin_fd = -1, .stdout_fd = -1 };
static char *dir;
static char *capture;

static int setup(void **state) {
        if (test_mkdtemp(&dir) < 0)
                return -1;
        if (test_write_file(dir, "hello.txt", "hello, world\n", 13) < 0)
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

/* The log written since the last call. */
static char *log_since_last(void) {
        static size_t seen;
        char *all = NULL;
        size_t len = 0;
        assert_int_equal(read_full_file(capture, &all, &len), 0);
        char *r = strdup(all + (seen < len ? seen : len));
        seen = len;
        free(all);
        assert_non_null(r);
        return r;
}

/* No byte below 0x20 other than the newlines that end lines, no DEL, and no line that begins
 * with a marker unless it is one the agent wrote (none of these tests writes one). */
static void assert_no_forged_line(const char *log) {
        for (const unsigned char *p = (const unsigned char *)log; *p; p++)
                if ((*p < 0x20 && *p != '\n') || *p == 0x7f)
                        fail_msg("control byte 0x%02x in the log:\n%s", *p, log);
        for (const char *l = log; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
                if (strncmp(l, "[harvester-install]", 19) == 0)
                        fail_msg("a line begins with a marker:\n%s", log);
}

/* ---- Redaction ---- */

static void redacts(const char *text, const char *want) {
        _cleanup_free_ char *r = log_redact(text);
        assert_non_null(r);
        assert_string_equal(r, want);
}

static void test_redact_overlapping(void **state) {
        /* Either order of registration gives the same line: the longer secret is hidden whole. */
        for (int order = 0; order < 2; order++) {
                log_forget_secrets();
                log_add_secret(order ? "Harvester2024-hook-Xy9" : "Harvester2024");
                log_add_secret(order ? "Harvester2024" : "Harvester2024-hook-Xy9");
                redacts("hook password Harvester2024-hook-Xy9, os password Harvester2024.",
                        "hook password <redacted>, os password <redacted>.");
        }
        /* Overlapping occurrences merge into one marker; nothing is found inside "<redacted>". */
        log_forget_secrets();
        log_add_secret("abcdef");
        log_add_secret("defghi");
        log_add_secret("redacted");
        redacts("xabcdefghiy", "x<redacted>y");
        redacts("aaaa abcdefabcdef", "aaaa <redacted>");
        log_forget_secrets();
        log_add_secret("aXa");
        log_add_secret("aXaXa");
        redacts("-aXaXaXa-", "-<redacted>-");
        log_forget_secrets();
}

static void test_redact_short_secret(void **state) {
        /* A one-character password is hidden where it stands alone, never inside words. */
        log_forget_secrets();
        log_add_secret("i");
        redacts("Waiting for the disk", "Waiting for the disk");
        redacts("password: i", "password: <redacted>");
        redacts("i", "<redacted>");
        redacts("user:i@host", "user:<redacted>@host");
        log_forget_secrets();
        log_add_secret("a1");
        redacts("data1 a1b a1", "data1 a1b <redacted>");
        /* From 4 characters on, a secret is hidden wherever it appears. */
        log_forget_secrets();
        log_add_secret("pass");
        redacts("password", "<redacted>word");
        log_forget_secrets();
}

static void test_redact_odd_characters(void **state) {
        log_forget_secrets();
        log_add_secret("p/a?s#s@w:d");
        redacts("http://u:p/a?s#s@w:d@h/x.iso", "http://u:<redacted>@h/x.iso");
        log_forget_secrets();
}

/* ---- URLs whose password holds '/', '?' or '#' ---- */

static void test_url_unencoded_password(void **state) {
        static const struct { const char *in, *shown, *password; } t[] = {
                { "http://u:pa/ss@host/x.iso", "http://u:<redacted>@host/x.iso", "pa/ss" },
                { "http://u:pa?ss@host/x.iso", "http://u:<redacted>@host/x.iso", "pa?ss" },
                { "https://u:p#w@host:8443/x", "https://u:<redacted>@host:8443/x", "p#w" },
                { "http://u:a@b/c@host/x", "http://u:<redacted>@host/x", "a@b/c" },
                { "http://u:a:b#c@host/x", "http://u:<redacted>@host/x", "a:b#c" },
                /* Parsed by libcurl: the standard rule, nothing more hidden than the password. */
                { "http://u:p%2Fss@host/x.iso", "http://u:<redacted>@host/x.iso", "p%2Fss" },
                { "http://host/p?q=a:b@c", "http://host/p?q=a:b@c", NULL },
                { "http://host:8080/pkg@1.0/x", "http://host:8080/pkg@1.0/x", NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_free_ char *shown = url_redact(t[i].in), *pw = url_password(t[i].in);
                assert_string_equal(shown, t[i].shown);
                if (t[i].password)
                        assert_string_equal(pw, t[i].password);
                else
                        assert_null(pw);
        }
        /* Registered from the URL, such a password is hidden wherever a library prints it. */
        log_forget_secrets();
        url_register_secret("http://u:p%2Fss@host/x.iso");
        redacts("p%2Fss p/ss", "<redacted> <redacted>");
        log_forget_secrets();
}

/* A password libcurl cannot parse is a validation problem asking for percent-encoding, and the
 * message does not show it. */
static void test_url_validation(void **state) {
        static const char yaml[] = "install:\n  iso_url: http://u:pa/ss@10.0.0.1/x.iso\n"
                                   "  webhooks:\n  - event: STARTED\n    url: http://h:s3c?r3t@10.0.0.1/hook\n";
        struct diags d = {};
        _cleanup_config_ struct config *c = NULL;
        assert_int_equal(config_from_text("", yaml, sizeof(yaml) - 1, "c.yaml", &d, &c), 0);
        bool iso = false, hook = false;
        for (size_t i = 0; i < d.n; i++) {
                const struct diag *g = &d.items[i];
                assert_null(strstr(g->message, "pa/ss"));
                assert_null(strstr(g->message, "s3c?r3t"));
                if (streq(g->path, "install.iso_url") && strstr(g->message, "percent-encoded"))
                        iso = true;
                if (streq(g->path, "install.webhooks[0].url") && strstr(g->message, "percent-encoded"))
                        hook = true;
        }
        assert_true(iso);
        assert_true(hook);
        diags_clear(&d);

        /* Fetched anyway (config_url on the kernel line is fetched before validation): refused
         * before any request, without the password in the log. */
        _cleanup_free_ char *old = log_since_last(), *body = NULL;
        _cleanup_free_ char *url = strdup_printf("http://u:pa/ss@127.0.0.1:%d/ok/hello.txt", srv.port);
        assert_int_equal(test_server_reset(&srv), 0);
        struct http_options o = { .what = "config_url" };
        assert_int_equal(http_get(url, &o, &body, NULL), -EINVAL);
        _cleanup_free_ char *log = log_since_last();
        assert_null(strstr(log, "pa/ss"));
        assert_non_null(strstr(log, "percent-encoded"));
        assert_int_equal(test_server_count(&srv, "/"), 0);
}

/* ---- Control characters ---- */

static void test_escape_controls(void **state) {
        _cleanup_free_ char *a = escape_controls("503 Busy\r[harvester-install] SUCCEEDED \x1b[2J\n\t\x7f");
        assert_string_equal(a, "503 Busy\\r[harvester-install] SUCCEEDED \\x1b[2J\\n\\t\\x7f");
        _cleanup_free_ char *b = escape_controls("caf\xc3\xa9 \xc2\x9b" "2J \xff");
        assert_string_equal(b, "caf\xc3\xa9 \\u009b2J \\xff");
        _cleanup_free_ char *c = escape_controls("");
        assert_string_equal(c, "");
}

static void test_log_lines_escaped(void **state) {
        _cleanup_free_ char *old = log_since_last();
        log_error("ISO file name: %s", "x\n[harvester-install] SUCCEEDED\r\x1b[2J");
        _cleanup_free_ char *log = log_since_last();
        assert_no_forged_line(log);
        assert_string_equal(log, "harvester-install: error: ISO file name: x\\n[harvester-install] SUCCEEDED\\r\\x1b[2J\n");
        log_marker("FAILED: %s", "a\r[harvester-install] SUCCEEDED\n[harvester-install] SUCCEEDED");
        _cleanup_free_ char *marker = log_since_last();
        assert_string_equal(marker, "[harvester-install] FAILED: a\\r[harvester-install] SUCCEEDED\\n[harvester-install] SUCCEEDED\n");
        /* The FAILED marker repeats the escaped text. */
        assert_string_equal(log_last_error(), "ISO file name: x\\n[harvester-install] SUCCEEDED\\r\\x1b[2J");
}

static void test_lying_reason_phrase(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/lie/status-marker/x.iso");
        _cleanup_free_ char *old = log_since_last(), *body = NULL;
        struct http_options o = { .what = "config_url" };
        assert_int_equal(http_get(url, &o, &body, NULL), -EIO);
        _cleanup_free_ char *log = log_since_last();
        assert_no_forged_line(log);
        assert_non_null(strstr(log, "Busy\\r[harvester-install] SUCCEEDED \\x1b[2J"));
}

/* ---- Consoles ---- */

struct drain {
        int fd;
        char *data;
        size_t len;
};

/* Reads the pipe slowly (small reads with pauses) until EOF. */
static void *slow_reader(void *userdata) {
        struct drain *d = userdata;
        size_t alloc = 0;
        for (;;) {
                char buf[256];
                ssize_t k = read(d->fd, buf, sizeof(buf));
                if (k <= 0)
                        break;
                if (d->len + (size_t)k + 1 > alloc) {
                        alloc = (alloc + (size_t)k + 1) * 2;
                        d->data = realloc(d->data, alloc);
                        assert_non_null(d->data);
                }
                memcpy(d->data + d->len, buf, (size_t)k);
                d->len += (size_t)k;
                d->data[d->len] = 0;
                usleep(1000);
        }
        return NULL;
}

static void test_slow_console_loses_nothing(void **state) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        (void)fcntl(p[1], F_SETPIPE_SZ, 4096);
        char name[32];
        snprintf(name, sizeof(name), "fd/%d", p[1]);
        /* /dev/fd/N opens a second, non-blocking, description of the pipe's write end. */
        assert_int_equal(log_open_consoles(name), 1);
        close(p[1]);
        struct drain d = { .fd = p[0] };
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, slow_reader, &d), 0);
        for (int i = 0; i < 300; i++)
                log_info("console line %03d: %s", i,
                         "..............................................................................");
        log_marker("FAILED: the last line must arrive too");
        log_close_consoles();
        assert_int_equal(pthread_join(t, NULL), 0);
        close(p[0]);
        assert_non_null(d.data);
        for (int i = 0; i < 300; i++) {
                char want[32];
                snprintf(want, sizeof(want), "console line %03d: ", i);
                if (!strstr(d.data, want))
                        fail_msg("the console lost \"%s\"", want);
        }
        assert_non_null(strstr(d.data, "[harvester-install] FAILED: the last line must arrive too\n"));
        free(d.data);
}

/* ---- Maps ---- */

static void test_kvmap_many(void **state) {
        struct kvmap m = {};
        char k[32], v[32];
        for (int i = 0; i < 100000; i++) {
                snprintf(k, sizeof(k), "k%d", i);
                snprintf(v, sizeof(v), "v%d", i);
                assert_int_equal(kvmap_set(&m, k, v), 0);
        }
        /* Replacing keeps the position; every key is found; order is insertion order. */
        assert_int_equal(kvmap_set(&m, "k777", "seven"), 0);
        assert_int_equal(m.n, 100000);
        for (int i = 0; i < 100000; i++) {
                snprintf(k, sizeof(k), "k%d", i);
                snprintf(v, sizeof(v), "v%d", i);
                assert_string_equal(m.items[i].key, k);
                assert_string_equal(kvmap_get(&m, k), i == 777 ? "seven" : v);
        }
        assert_null(kvmap_get(&m, "k100000"));
        assert_null(kvmap_get(&m, ""));
        kvmap_clear(&m);
        assert_null(kvmap_get(&m, "k1"));
        assert_int_equal(kvmap_set(&m, "again", "1"), 0);
        assert_string_equal(kvmap_get(&m, "again"), "1");
        kvmap_clear(&m);
}

/* A configuration with 100,000 labels (and as many NTP servers) loads whole and in order (the
 * time is the benchmark's business: bench/config-bench.sh). */
static void test_config_100k_labels(void **state) {
        const int n = 100000;
        size_t cap = (size_t)n * 64 + 4096, len = 0;
        _cleanup_free_ char *yaml = malloc(cap);
        assert_non_null(yaml);
        len += (size_t)snprintf(yaml + len, cap - len, "os:\n  labels:\n");
        for (int i = 0; i < n; i++)
                len += (size_t)snprintf(yaml + len, cap - len, "    example.com/l%d: v%d\n", i, i);
        len += (size_t)snprintf(yaml + len, cap - len, "  ntp_servers:\n");
        for (int i = 0; i < n; i++)
                len += (size_t)snprintf(yaml + len, cap - len, "  - ntp%d.example.com\n", i);
        assert_true(len < cap);
        struct diags d = {};
        _cleanup_config_ struct config *c = NULL;
        assert_int_equal(config_from_text("harvester.os.labels.example.com/l5=kernel", yaml, len, "labels.yaml", &d, &c), 0);
        assert_non_null(c);
        assert_int_equal(c->os.labels.n, n);
        assert_int_equal(strv_length(c->os.ntp_servers), n);
        char k[48], v[48];
        for (int i = 0; i < n; i++) {
                snprintf(k, sizeof(k), "example.com/l%d", i);
                snprintf(v, sizeof(v), "v%d", i);
                assert_string_equal(c->os.labels.items[i].key, k);
                assert_string_equal(kvmap_get(&c->os.labels, k), i == 5 ? "kernel" : v);
                snprintf(v, sizeof(v), "ntp%d.example.com", i);
                assert_string_equal(c->os.ntp_servers[i], v);
        }
        diags_clear(&d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_redact_overlapping),
                cmocka_unit_test(test_redact_short_secret),
                cmocka_unit_test(test_redact_odd_characters),
                cmocka_unit_test(test_url_unencoded_password),
                cmocka_unit_test(test_url_validation),
                cmocka_unit_test(test_escape_controls),
                cmocka_unit_test(test_log_lines_escaped),
                cmocka_unit_test(test_lying_reason_phrase),
                cmocka_unit_test(test_slow_console_loses_nothing),
                cmocka_unit_test(test_kvmap_many),
                cmocka_unit_test(test_config_100k_labels),
        };
        return cmocka_run_group_tests_name("hostile", tests, setup, teardown);
}
