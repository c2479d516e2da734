/* SPDX-License-Identifier: Apache-2.0 */
/* The PROGRESS webhook event (progress.h): the rate limiter; the events of a run of stages and a
 * real ISO download (download_file(), throttled by the fault server) as the server receives them;
 * a failing and a hanging PROGRESS hook: the download still completes in one attempt, the hook is
 * tried once, logged once, and gets nothing more. Bounds are counts and flags, never durations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "download.h"
#include "log.h"
#include "log-capture.h"
#include "progress.h"
#include "server.h"
#include "util.h"
#include "webhook.h"

#define FILE_SIZE (600 * 1024)
#define HOOK_PASSWORD "prog-hook-Secr3t"

static struct test_server srv = { .stdin_fd = -1, .stdout_fd = -1 };
static char *dir, *capture;

static int setup(void **state) {
        if (test_mkdtemp(&dir) < 0)
                return -1;
        capture = strdup_printf("%s/log", dir);
        if (!capture || log_set_capture_file(capture) < 0)
                return -1;
        /* Bytes that do not compress, for the throttled download. */
        char *data = malloc(FILE_SIZE);
        if (!data)
                return -1;
        uint32_t x = 2463534242u;
        for (size_t i = 0; i < FILE_SIZE; i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                data[i] = (char)x;
        }
        int r = test_write_file(dir, "iso.bin", data, FILE_SIZE);
        free(data);
        if (r < 0)
                return -1;
        return test_server_start(dir, &srv) < 0 ? -1 : 0;
}

static int teardown(void **state) {
        progress_stop();
        test_server_stop(&srv);
        if (dir)
                (void)test_rm_rf(dir);
        free(dir);
        free(capture);
        return 0;
}

/* ---- The limiter ---- */

static void test_limit(void **state) {
        struct progress_limit l = {};
        const uint64_t s = 1000000, total = 1000;
        assert_int_equal(progress_limit_percent(&l, 5, UINT64_MAX, 0), -1);  /* size unknown */
        assert_int_equal(progress_limit_percent(&l, 5, 0, 0), -1);
        assert_int_equal(progress_limit_percent(&l, 99, total, 0), -1);      /* 9.9 %: no step yet */
        assert_int_equal(progress_limit_percent(&l, 150, total, 1 * s), 10); /* the first step at once */
        assert_int_equal(progress_limit_percent(&l, 190, total, 9 * s), -1); /* the same step */
        assert_int_equal(progress_limit_percent(&l, 350, total, 2 * s), -1); /* a new step, too soon */
        assert_int_equal(progress_limit_percent(&l, 350, total, 1 * s + PROGRESS_MIN_INTERVAL_USEC), 30);
        assert_int_equal(progress_limit_percent(&l, 10, total, 100 * s), -1); /* started again from 0 */
        assert_int_equal(progress_limit_percent(&l, 390, total, 101 * s), -1);
        assert_int_equal(progress_limit_percent(&l, 999, total, 102 * s), 90);
        assert_int_equal(progress_limit_percent(&l, 1000, total, 102 * s), 100); /* 100 even too soon */
        assert_int_equal(progress_limit_percent(&l, 1000, total, 200 * s), -1);  /* once */
        assert_int_equal(progress_limit_percent(&l, 2000, total, 300 * s), -1);  /* more than the total */

        /* A download of a million callbacks, one every millisecond and every byte: at most one event
         * per step, rising, the last 100. */
        struct progress_limit m = {};
        int sent = 0, last = 0;
        for (uint64_t i = 0; i <= 1000000; i++) {
                int p = progress_limit_percent(&m, i, 1000000, i * 1000);
                if (p < 0)
                        continue;
                assert_true(p > last && p % PROGRESS_STEP_PERCENT == 0);
                last = p;
                sent++;
        }
        assert_int_equal(last, 100);
        assert_true(sent <= 100 / PROGRESS_STEP_PERCENT);
}

/* ---- Against the server ---- */

struct fixture {
        struct config c;
        struct webhook hooks[3];
        char *urls[3];
};

static char ev_progress[] = "PROGRESS", method_post[] = "POST",
            payload[] = "{\"stage\": \"{{.Stage}}\", \"percent\": \"{{.Percent}}\"}", node1[] = "node1";

static void fixture_init(struct fixture *f, const char *const paths[], size_t n) {
        *f = (struct fixture) {};
        assert_true(n <= ELEMENTSOF(f->hooks));
        for (size_t i = 0; i < n; i++) {
                f->urls[i] = strdup_printf("http://hook:" HOOK_PASSWORD "@127.0.0.1:%d%s", srv.port, paths[i]);
                assert_non_null(f->urls[i]);
                f->hooks[i] = (struct webhook) {
                        .event = ev_progress,
                        .method = method_post,
                        .url = f->urls[i],
                        .payload = payload,
                };
        }
        f->c.os.hostname = node1;
        f->c.install.webhooks = f->hooks;
        f->c.install.n_webhooks = n;
}

static void fixture_done(struct fixture *f) {
        progress_stop();
        for (size_t i = 0; i < ELEMENTSOF(f->urls); i++)
                free(f->urls[i]);
}

/* The stages of an install with the ISO downloaded in the iso stage, as run.c drives them. */
static void run_stages(struct fixture *f, struct download_result *res) {
        _cleanup_free_ char *url = test_server_url(&srv, "/ok/iso.bin?rate=%d", FILE_SIZE / 3);
        _cleanup_free_ char *dest = strdup_printf("%s/iso.out", dir);
        assert_non_null(url);
        assert_non_null(dest);
        (void)unlink(dest);

        progress_stage("configuration");     /* before the configuration is known: nothing sent */
        progress_start(&f->c, "configuration");
        progress_stage("memory");
        progress_stage("iso");
        const struct download_options o = { .url = url, .dest = dest, .what = "ISO", .stall_timeout_sec = 20 };
        assert_int_equal(download_file(&o, res), 0);
        progress_download("ISO", res->size, res->size);
        progress_stage("disk-check");
        progress_download("ISO", res->size, res->size); /* not in the iso stage: nothing */
        progress_stop();
        progress_stage("install"); /* stopped: nothing */
}

/* The events one hook path received, as "stage/percent" strings. */
static char **events(const char *prefix) {
        _cleanup_strv_free_ char **lines = NULL;
        char **ev = NULL;
        assert_int_equal(test_server_request_lines(&srv, prefix, &lines), 0);
        STRV_FOREACH(l, lines) {
                const char *b = strstr(*l, "\"body\": \"");
                assert_non_null(b);
                char stage[32] = "", percent[8] = "";
                int n = sscanf(b, "\"body\": \"{\\\"stage\\\": \\\"%31[a-z-]\\\", \\\"percent\\\": \\\"%7[0-9]", stage, percent);
                assert_true(n >= 1);
                _cleanup_free_ char *e = strdup_printf("%s/%s", stage, percent);
                assert_non_null(e);
                assert_int_equal(strv_push(&ev, e), 0);
        }
        return ev;
}

static void test_events_in_order(void **state) {
        static const char *const paths[] = { "/hook/progress/{{.Stage}}" };
        struct fixture f;
        fixture_init(&f, paths, ELEMENTSOF(paths));
        assert_int_equal(test_server_reset(&srv), 0);
        _cleanup_free_ char *old = log_since_last(capture);

        struct download_result res = {};
        run_stages(&f, &res);
        assert_int_equal(res.size, FILE_SIZE);

        _cleanup_strv_free_ char **ev = events("/hook/progress/");
        _cleanup_free_ char *all = strv_join(ev, " ");
        fprintf(stderr, "events: %s\n", all);
        size_t n = strv_length(ev);
        /* configuration, memory, iso, the ISO's percents, disk-check */
        assert_true(n >= 5);
        assert_string_equal(ev[0], "configuration/");
        assert_string_equal(ev[1], "memory/");
        assert_string_equal(ev[2], "iso/");
        assert_string_equal(ev[n - 1], "disk-check/");
        assert_string_equal(ev[n - 2], "iso/100");
        /* The download lasts three seconds (the server's throttle): at least one percent before 100,
         * every one a step above the last. */
        assert_true(n - 4 >= 2);
        assert_true(n - 4 <= 100 / PROGRESS_STEP_PERCENT);
        int last = 0;
        for (size_t i = 3; i < n - 1; i++) {
                int p = atoi(strchr(ev[i], '/') + 1);
                assert_true(strncmp(ev[i], "iso/", 4) == 0);
                assert_true(p > last && p % PROGRESS_STEP_PERCENT == 0);
                last = p;
        }
        /* Each request went to the stage's URL. */
        assert_int_equal(test_server_count(&srv, "/hook/progress/iso"), (int)n - 3);
        _cleanup_free_ char *log = log_since_last(capture);
        assert_null(strstr(log, HOOK_PASSWORD));
        assert_null(strstr(log, "no more PROGRESS events"));
        fixture_done(&f);
}

/* Counts how often needle is in haystack. */
static size_t count(const char *haystack, const char *needle) {
        size_t n = 0;
        for (const char *p = haystack; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

static void test_failing_and_hanging_hooks(void **state) {
        /* 0: answers 200 to the stage events, but a percent makes its path "/<percent>hook/...": an
         *    unknown mode, 400, at the first percent of the download;
         * 1: never answers (the server holds the connection);
         * 2: a good hook, which must get everything. */
        static const char *const paths[] = { "/{{.Percent}}hook/fails", "/hang/hook", "/hook/good/{{.Stage}}" };
        struct fixture f;
        fixture_init(&f, paths, ELEMENTSOF(paths));
        assert_int_equal(test_server_reset(&srv), 0);
        _cleanup_free_ char *old = log_since_last(capture);

        struct download_result res = {};
        run_stages(&f, &res);
        /* The download completed in one attempt: the hooks did not make it stall. */
        assert_int_equal(res.size, FILE_SIZE);
        assert_int_equal(res.attempts, 1);

        /* The hanging hook was tried once, the failing one until its first failure. */
        assert_int_equal(test_server_count(&srv, "/hang/hook"), 1);
        assert_int_equal(test_server_count(&srv, "/hook/fails"), 3); /* configuration, memory, iso */
        /* The good hook got every event, in order. */
        _cleanup_strv_free_ char **ev = events("/hook/good/");
        size_t n = strv_length(ev);
        assert_true(n >= 6);
        assert_string_equal(ev[0], "configuration/");
        assert_string_equal(ev[n - 2], "iso/100");
        assert_string_equal(ev[n - 1], "disk-check/");
        /* The failing hook's one percent request ("/<percent>hook/fails"): every request but the
         * download's and the hooks' counted above. */
        assert_int_equal(test_server_count(&srv, "/ok/"), 1);
        assert_int_equal(test_server_count(&srv, "/") - 1 - 1 - 3 - (int)n, 1);

        /* One warning for each bad hook, saying the install goes on, without the password. */
        _cleanup_free_ char *log = log_since_last(capture);
        fprintf(stderr, "%s", log);
        assert_int_equal(count(log, "webhook PROGRESS"), 2);
        assert_int_equal(count(log, "no more PROGRESS events go to it; the install goes on"), 2);
        assert_int_equal(count(log, "/hang/hook failed"), 1);
        assert_null(strstr(log, HOOK_PASSWORD));
        fixture_done(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_limit),
                cmocka_unit_test(test_events_in_order),
                cmocka_unit_test(test_failing_and_hanging_hooks),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
