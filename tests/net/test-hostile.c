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
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "config.h"
#include "format.h"
#include "http.h"
#include "install.h"
#include "log.h"
#include "schema.h"
#include "log-capture.h"
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
        _cleanup_free_ char *old = log_since_last(capture), *body = NULL;
        _cleanup_free_ char *url = strdup_printf("http://u:pa/ss@127.0.0.1:%d/ok/hello.txt", srv.port);
        assert_int_equal(test_server_reset(&srv), 0);
        struct http_options o = { .what = "config_url" };
        assert_int_equal(http_get(url, &o, &body, NULL), -EINVAL);
        _cleanup_free_ char *log = log_since_last(capture);
        assert_null(strstr(log, "pa/ss"));
        assert_non_null(strstr(log, "percent-encoded"));
        assert_int_equal(test_server_count(&srv, "/"), 0);
}

/* ---- The secret set: webhook headers, proxies, registry passwords ---- */

static void test_secret_set_widened(void **state) {
        static const char yaml[] =
                "system_settings:\n"
                "  containerd-registry: '{\"Mirrors\": {}, \"Configs\": {\"r.example.com\": {\"Auth\": "
                "{\"Username\": \"reg-user\", \"Password\": \"reg-pass-9\"}}}}'\n"
                "  http-proxy: '{\"httpProxy\": \"http://hu:hp-pass-7@proxy:3128\", \"noProxy\": \"localhost\"}'\n"
                "  ui-source: auto\n"
                "os:\n"
                "  environment:\n"
                "    http_proxy: http://pu:proxy-pass-1@proxy.example.com:3128\n"
                "    MY_API_TOKEN: tok-env-5\n"
                "    LANG: C.UTF-8\n"
                "install:\n"
                "  webhooks:\n"
                "  - event: STARTED\n"
                "    url: http://10.0.0.1/hook\n"
                "    headers:\n"
                "      Authorization: [\"Bearer bearer-tok-3\"]\n"
                "      X-Hook-Secret: hook-secret-4\n"
                "      Content-Type: application/json\n";
        static const char *const secrets[] = { "reg-pass-9", "hp-pass-7", "proxy-pass-1", "tok-env-5",
                                                "bearer-tok-3", "hook-secret-4" };
        struct diags d = {};
        _cleanup_config_ struct config *c = NULL;
        assert_int_equal(config_from_text("", yaml, sizeof(yaml) - 1, "c.yaml", &d, &c), 0);
        diags_clear(&d);

        /* `config` output: hidden, the rest kept. */
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        assert_non_null(f);
        assert_int_equal(config_print(c, f, false, false), 0);
        fclose(f);
        for (size_t i = 0; i < ELEMENTSOF(secrets); i++)
                if (strstr(out, secrets[i]))
                        fail_msg("config output shows %s:\n%s", secrets[i], out);
        assert_non_null(strstr(out, "reg-user"));
        assert_non_null(strstr(out, "application/json"));
        assert_non_null(strstr(out, "C.UTF-8"));
        assert_non_null(strstr(out, "http://pu:<redacted>@proxy.example.com:3128"));
        free(out);

        /* --show-secrets shows them. */
        out = NULL;
        f = open_memstream(&out, &len);
        assert_int_equal(config_print(c, f, true, true), 0);
        fclose(f);
        for (size_t i = 0; i < ELEMENTSOF(secrets); i++)
                assert_non_null(strstr(out, secrets[i]));
        free(out);

        /* Logs: every one registered. */
        log_forget_secrets();
        config_register_secrets(c);
        _cleanup_free_ char *r = log_redact("reg-pass-9 hp-pass-7 proxy-pass-1 tok-env-5 Bearer bearer-tok-3 hook-secret-4 ok");
        assert_string_equal(r, "<redacted> <redacted> <redacted> <redacted> <redacted> <redacted> ok");
        log_forget_secrets();
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
        _cleanup_free_ char *old = log_since_last(capture);
        log_error("ISO file name: %s", "x\n[harvester-install] SUCCEEDED\r\x1b[2J");
        _cleanup_free_ char *log = log_since_last(capture);
        assert_no_forged_line(log);
        assert_string_equal(log, "harvester-install: error: ISO file name: x\\n[harvester-install] SUCCEEDED\\r\\x1b[2J\n");
        log_marker("FAILED: %s", "a\r[harvester-install] SUCCEEDED\n[harvester-install] SUCCEEDED");
        _cleanup_free_ char *marker = log_since_last(capture);
        assert_string_equal(marker, "[harvester-install] FAILED: a\\r[harvester-install] SUCCEEDED\\n[harvester-install] SUCCEEDED\n");
        /* The FAILED marker repeats the escaped text. */
        assert_string_equal(log_last_error(), "ISO file name: x\\n[harvester-install] SUCCEEDED\\r\\x1b[2J");
}

static void test_lying_reason_phrase(void **state) {
        _cleanup_free_ char *url = test_server_url(&srv, "/lie/status-marker/x.iso");
        _cleanup_free_ char *old = log_since_last(capture), *body = NULL;
        struct http_options o = { .what = "config_url" };
        assert_int_equal(http_get(url, &o, &body, NULL), -EIO);
        _cleanup_free_ char *log = log_since_last(capture);
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

/* ---- Children ---- */

/* A child sees no inherited descriptor, a two-variable environment and the fixed PATH; a tool is
 * found in the fixed search path only (not the agent's $PATH), and what is found is what runs. */
static void test_children(void **state) {
        _cleanup_free_ char *bin = strdup_printf("%s/bin", dir), *tool = strdup_printf("%s/bin/hostile-tool", dir);
        assert_int_equal(mkdir(bin, 0755), 0);
        static const char script[] = "#!/bin/sh\necho ARGS \"$@\"\nenv\nls /proc/self/fd\n";
        assert_int_equal(write_file_atomic(tool, script, strlen(script), 0755), 0);

        /* an inherited descriptor (no O_CLOEXEC) and an environment with a secret in it */
        int fd = open("/dev/null", O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(dup2(fd, 57), 57);
        close(fd);
        setenv("HOSTILE_SECRET", "leaked-secret-1", 1);
        _cleanup_free_ char *oldpath = strdup(getenv("PATH"));
        _cleanup_free_ char *newpath = strdup_printf("%s:%s", bin, oldpath);
        setenv("PATH", newpath, 1);

        /* $PATH is not where tools are looked up */
        assert_false(command_exists("hostile-tool"));
        char *argv[] = { (char *)"hostile-tool", (char *)"a b", NULL };
        assert_int_equal(run_command(argv, NULL), -ENOENT);
        assert_true(command_exists("sh"));

        /* the test knob is */
        _cleanup_free_ char *knob = strdup_printf("%s:%s", bin, COMMAND_PATH);
        setenv("HARVESTER_INSTALL_TOOL_PATH", knob, 1);
        assert_true(command_exists("hostile-tool"));
        _cleanup_free_ char *out = NULL;
        assert_int_equal(run_command(argv, &out), 0);
        unsetenv("HARVESTER_INSTALL_TOOL_PATH");
        setenv("PATH", oldpath, 1);
        unsetenv("HOSTILE_SECRET");
        close(57);

        assert_non_null(strstr(out, "ARGS a b\n"));
        assert_null(strstr(out, "leaked-secret-1"));
        _cleanup_free_ char *want_path = strdup_printf("\nPATH=%s\n", knob);
        assert_non_null(strstr(out, want_path));
        assert_non_null(strstr(out, "\nLC_ALL=C\n"));
        /* env prints PATH, LC_ALL and what the shell adds itself (PWD, SHLVL, _): no more */
        size_t vars = 0;
        for (const char *l = strchr(out, '\n') + 1; l && *l && strchr(l, '='); l = strchr(l, '\n'), l = l ? l + 1 : NULL)
                if (strncmp(l, "PWD=", 4) != 0 && strncmp(l, "SHLVL=", 6) != 0 && strncmp(l, "_=", 2) != 0 &&
                    strncmp(l, "OLDPWD=", 7) != 0)
                        vars++;
        assert_int_equal(vars, 2);
        /* ls's own descriptors only: 0 1 2 and the directory it reads (3) */
        assert_null(strstr(out, "\n57\n"));
        const char *fds = strstr(out, "\n0\n1\n2\n");
        assert_non_null(fds);
        assert_true(strlen(fds) <= strlen("\n0\n1\n2\n3\n"));
}

/* A console that takes nothing (a pipe nobody reads) costs one full timeout, then at most
 * LOG_CONSOLE_STALLED_MSEC per line: 60 lines finish in about 10 + 2.5 s here. Without the stalled
 * state each line would wait 10 s (about 4 minutes): the suite's timeout (180 s) fails the test. */
static void test_dead_console(void **state) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        (void)fcntl(p[1], F_SETPIPE_SZ, 4096);
        char name[32];
        snprintf(name, sizeof(name), "fd/%d", p[1]);
        assert_int_equal(log_open_consoles(name), 1);
        close(p[1]);
        for (int i = 0; i < 60; i++)
                log_info("dead console line %03d: %s", i,
                         "..............................................................................");
        log_close_consoles();
        /* What it took arrived in order, from the first line on. */
        char buf[8192];
        ssize_t n = read(p[0], buf, sizeof(buf) - 1);
        close(p[0]);
        assert_true(n > 0);
        buf[n] = 0;
        assert_non_null(strstr(buf, "dead console line 000: "));
        assert_non_null(strstr(buf, "dead console line 030: "));
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

static char *path_join_test(const char *a, const char *b) {
        return strdup_printf("%s/%s", a, b);
}

/* ---- A crafted ISO: symbolic links that leave it ---- */

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "check failed at line %d: %s\n", __LINE__, #cond); return 1; } } while (0)

static int sh(const char *fmt, ...) _printf_(1, 2);
static int sh(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *cmd = NULL;
        int n = vasprintf(&cmd, fmt, ap);
        va_end(ap);
        return n < 0 ? -1 : system(cmd);
}

static bool file_is(const char *path, const char *want) {
        _cleanup_free_ char *got = NULL;
        return read_full_file(path, &got, NULL) == 0 && streq(got, want);
}

/* In a child with its own mount namespace: tmp/iso is a tmpfs (the ISO's own file system, as
 * when it is loop-mounted), tmp/secret.key a file outside it, as a key of the initrd. */
static int crafted_iso_child(const char *tmp, bool mounted) {
        _cleanup_free_ char *iso = path_join_test(tmp, "iso"), *dst = path_join_test(tmp, "persist");
        _cleanup_free_ char *key = path_join_test(tmp, "secret.key"), *state = path_join_test(tmp, "state");
        _cleanup_free_ char *root = path_join_test(tmp, "root");
        CHECK(iso && dst && key && state && root);
        CHECK(mkdir(iso, 0755) == 0);
        if (mounted)
                CHECK(mount("iso", iso, "tmpfs", 0, "size=4m") == 0);
        CHECK(test_write_file(tmp, "secret.key", "KEY", 3) == 0);
        /* bundle/rancherd/images is what install_preload_images() copies (the Harvester bundle is
         * bind-mounted, not copied: there is none here). */
        CHECK(sh("cd '%s' && mkdir -p bundle/rancherd/images other && "
                 "printf AAAA > bundle/rancherd/images/a.tar && printf HHHH > other/h.tar && "
                 "ln -s a.tar bundle/rancherd/images/in.tar && "
                 "ln -s ../../../other/h.tar bundle/rancherd/images/sib.tar", iso) == 0);
        const char *out = "/.state/var-lib-rancher.bind/agent/images";
        /* Links inside the ISO are copied as the files they name. */
        if (mounted) {
                CHECK(install_preload_images(iso, state, dst, root) == 0);
                _cleanup_free_ char *a = strdup_printf("%s%s/a.tar", dst, out), *in = strdup_printf("%s%s/in.tar", dst, out),
                                    *sib = strdup_printf("%s%s/sib.tar", dst, out);
                CHECK(file_is(a, "AAAA") && file_is(in, "AAAA") && file_is(sib, "HHHH"));
        }
        CHECK(sh("rm -f '%s/bundle/rancherd/images/sib.tar'", iso) == 0);

        /* An absolute link to the key, a relative one climbing out: refused, the key not copied. */
        for (int i = 0; i < 2; i++) {
                _cleanup_free_ char *target = strdup_printf("%s%s", i ? "../../../../../../../../../../.." : "", key);
                CHECK(target);
                CHECK(sh("rm -rf '%s' && ln -s '%s' '%s/bundle/rancherd/images/z.tar'", dst, target, iso) == 0);
                CHECK(install_preload_images(iso, state, dst, root) < 0);
                _cleanup_free_ char *z = strdup_printf("%s%s/z.tar", dst, out);
                CHECK(access(z, F_OK) < 0);
                CHECK(sh("grep -rqs KEY '%s'", dst) != 0);
                CHECK(sh("rm -f '%s/bundle/rancherd/images/z.tar'", iso) == 0);
        }

        /* A bundle directory that is a link out of the ISO. */
        CHECK(sh("mkdir -p '%s/outside' && cp '%s' '%s/outside/' && rm -rf '%s/bundle/rancherd/images' && "
                 "ln -s '%s/outside' '%s/bundle/rancherd/images'", tmp, key, tmp, iso, tmp, iso) == 0);
        CHECK(sh("rm -rf '%s'", dst) == 0);
        CHECK(install_preload_images(iso, state, dst, root) < 0);
        CHECK(sh("grep -rqs KEY '%s'", dst) != 0);

        /* The loader itself (install_copy_file) as a link to the key. */
        _cleanup_free_ char *loader = strdup_printf("%s/bootx64.efi", iso), *copy = strdup_printf("%s/loader", tmp);
        CHECK(symlink(key, loader) == 0);
        CHECK(install_copy_file(loader, copy, 0644) < 0);
        CHECK(access(copy, F_OK) < 0);
        if (mounted)
                (void)umount2(iso, MNT_DETACH);
        return 0;
}

static void test_crafted_iso_links(void **state) {
        for (int mounted = 0; mounted < 2; mounted++) {
                _cleanup_free_ char *tmp = NULL;
                assert_int_equal(test_mkdtemp(&tmp), 0);
                pid_t pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        if (mounted) {
                                /* root: a mount namespace; otherwise a user namespace with one. */
                                if (unshare(CLONE_NEWNS) < 0 && unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
                                        fprintf(stderr, "cannot make a mount namespace: %m\n");
                                        _exit(2);
                                }
                                if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
                                        fprintf(stderr, "cannot make / private: %m\n");
                                        _exit(2);
                                }
                        }
                        _exit(crafted_iso_child(tmp, mounted));
                }
                int status = 0;
                assert_int_equal(waitpid(pid, &status, 0), pid);
                (void)test_rm_rf(tmp);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        fail_msg("the crafted-ISO checks failed (%s): status 0x%x", mounted ? "mounted" : "plain tree", status);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_redact_overlapping),
                cmocka_unit_test(test_redact_short_secret),
                cmocka_unit_test(test_redact_odd_characters),
                cmocka_unit_test(test_url_unencoded_password),
                cmocka_unit_test(test_url_validation),
                cmocka_unit_test(test_secret_set_widened),
                cmocka_unit_test(test_escape_controls),
                cmocka_unit_test(test_log_lines_escaped),
                cmocka_unit_test(test_lying_reason_phrase),
                cmocka_unit_test(test_slow_console_loses_nothing),
                cmocka_unit_test(test_crafted_iso_links),
                cmocka_unit_test(test_dead_console),
                cmocka_unit_test(test_children),
                cmocka_unit_test(test_kvmap_many),
                cmocka_unit_test(test_config_100k_labels),
        };
        return cmocka_run_group_tests_name("hostile", tests, setup, teardown);
}
