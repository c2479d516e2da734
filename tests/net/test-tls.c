/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS policy (README, "TLS"; issue 10 item 4, issue 12 item 4) against the fault server's HTTPS
 * listener with a self-signed certificate made at test time with openssl: the configuration, the
 * ISO (fetch), the checksum list and webhooks fail by default and pass only with the documented
 * switches (rd.noverifyssl for config_url, --insecure for fetch, a webhook's insecure flag); https ->
 * http redirects are refused; install.config_checksum pins the configuration's content.
 * The ISO stage of `run` (iso_fetch) is covered by tests/download/test-iso-fetch.c (root).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "checksum.h"
#include "config.h"
#include "download.h"
#include "http.h"
#include "log.h"
#include "log-capture.h"
#include "server.h"
#include "util.h"
#include "webhook.h"

static struct test_server srv = { .stdin_fd = -1, .stdout_fd = -1 };
static char *dir, *capture, *cert, *key;
static char config_text[] = "scheme_version: 1\ntoken: tls-token-1\nos:\n  hostname: node1\n  password: Pa55word-x\n"
                            "install:\n  mode: create\n  management_interface:\n    interfaces:\n    - name: ens5\n"
                            "  device: /dev/sda\n  iso_url: http://10.0.0.1/h.iso\n  iso_checksum_url: http://10.0.0.1/h.sha512\n"
                            "  vip: 10.0.0.99\n  vip_mode: static\n";
static const char iso_data[] = "not really an ISO, but bytes to fetch\n";

static int setup(void **state) {
        if (test_mkdtemp(&dir) < 0 || test_make_self_signed(dir) < 0)
                return -1;
        cert = strdup_printf("%s/cert.pem", dir);
        key = strdup_printf("%s/key.pem", dir);
        capture = strdup_printf("%s/log", dir);
        if (!cert || !key || !capture || log_set_capture_file(capture) < 0)
                return -1;
        struct checksum c;
        _cleanup_free_ char *sums = NULL;
        if (checksum_compute(CHECKSUM_SHA512, iso_data, strlen(iso_data), &c) < 0 ||
            !(sums = strdup_printf("%s  x.iso\n", c.hex)))
                return -1;
        if (test_write_file(dir, "config.yaml", config_text, strlen(config_text)) < 0 ||
            test_write_file(dir, "x.iso", iso_data, strlen(iso_data)) < 0 ||
            test_write_file(dir, "SHA512SUMS", sums, strlen(sums)) < 0)
                return -1;
        return test_server_start_tls(dir, cert, key, &srv) < 0 ? -1 : 0;
}

static int teardown(void **state) {
        test_server_stop(&srv);
        if (dir)
                (void)test_rm_rf(dir);
        free(dir);
        free(capture);
        free(cert);
        free(key);
        return 0;
}

/* http_get(), as config_url and the checksum list are fetched. */
static void test_http_get_verifies(void **state) {
        _cleanup_free_ char *url = test_server_tls_url(&srv, "/ok/config.yaml"), *old = log_since_last(capture);
        _cleanup_free_ char *body = NULL, *body2 = NULL;
        struct http_options o = { .what = "config_url", .tls_switch = "rd.noverifyssl on the kernel command line" };
        assert_int_equal(http_get(url, &o, &body, NULL), -EIO);
        _cleanup_free_ char *log = log_since_last(capture);
        assert_non_null(strstr(log, "TLS certificate"));
        assert_non_null(strstr(log, "rd.noverifyssl on the kernel command line"));
        /* Without a switch, the message says none exists. */
        struct http_options list = { .what = "install.iso_checksum_url" };
        assert_int_equal(http_get(url, &list, &body, NULL), -EIO);
        _cleanup_free_ char *log2 = log_since_last(capture);
        assert_non_null(strstr(log2, "no switch turns verification off"));
        o.insecure = true;
        assert_int_equal(http_get(url, &o, &body2, NULL), 0);
        assert_string_equal(body2, config_text);
}

static void test_no_https_to_http_redirect(void **state) {
        _cleanup_free_ char *url = test_server_tls_url(&srv, "/lie/to-http?to=http://127.0.0.1:%d/ok/config.yaml", srv.port);
        _cleanup_free_ char *old = log_since_last(capture), *body = NULL;
        struct http_options o = { .what = "config_url", .insecure = true };
        assert_int_equal(test_server_reset(&srv), 0);
        assert_int_equal(http_get(url, &o, &body, NULL), -EPROTO);
        assert_int_equal(test_server_count(&srv, "/ok/"), 0);
        _cleanup_free_ char *log = log_since_last(capture);
        assert_non_null(strstr(log, "from https:// only to https://"));
        /* http -> https is fine. */
        _cleanup_free_ char *up = test_server_url(&srv, "/status/302/x?location=https://127.0.0.1:%d/ok/config.yaml", srv.tls_port);
        assert_int_equal(http_get(up, &o, &body, NULL), 0);
        assert_string_equal(body, config_text);
}

static int load(const char *cmdline, struct config **ret) {
        _cleanup_free_ char *path = strdup_printf("%s/cmdline", dir);
        assert_non_null(path);
        assert_int_equal(write_file_atomic(path, cmdline, strlen(cmdline), 0644), 0);
        struct config_source src = { .cmdline_file = path };
        return config_load(&src, ret);
}

/* config_url: verified unless rd.noverifyssl (with a warning), and pinned by install.config_checksum. */
static void test_config_url(void **state) {
        _cleanup_free_ char *url = test_server_tls_url(&srv, "/ok/config.yaml"), *old = log_since_last(capture);
        _cleanup_free_ char *plain = strdup_printf("harvester.install.config_url=%s", url);
        _cleanup_free_ char *insecure = strdup_printf("rd.noverifyssl harvester.install.config_url=%s", url);
        struct config *c = NULL;
        assert_int_equal(load(plain, &c), -EREMOTEIO);
        assert_null(c);
        assert_int_equal(load(insecure, &c), 0);
        assert_string_equal(c->token, "tls-token-1");
        config_free(c);
        c = NULL;
        _cleanup_free_ char *log = log_since_last(capture);
        assert_non_null(strstr(log, "warning: rd.noverifyssl is on the kernel command line: TLS certificates are NOT verified"));

        struct checksum sum;
        assert_int_equal(checksum_compute(CHECKSUM_SHA256, config_text, strlen(config_text), &sum), 0);
        _cleanup_free_ char *pinned = strdup_printf("%s harvester.install.config_checksum=sha256:%s", insecure, sum.hex);
        assert_int_equal(load(pinned, &c), 0);
        config_free(c);
        c = NULL;
        sum.hex[0] = sum.hex[0] == '0' ? '1' : '0';
        _cleanup_free_ char *wrong = strdup_printf("%s harvester.install.config_checksum=sha256:%s", insecure, sum.hex);
        assert_int_equal(load(wrong, &c), -EREMOTEIO);
        assert_null(c);
        _cleanup_free_ char *log2 = log_since_last(capture);
        assert_non_null(strstr(log2, "not the one install.config_checksum pins"));
}

/* `fetch` (the ISO and the checksum list): verified unless --insecure. */
static int run_fetch(const char *args) {
        const char *agent = getenv("AGENT");
        assert_non_null(agent);
        _cleanup_free_ char *cmd = strdup_printf("'%s' fetch %s >/dev/null 2>>'%s'", agent, args, capture);
        assert_non_null(cmd);
        int st = system(cmd);
        assert_true(WIFEXITED(st));
        return WEXITSTATUS(st);
}

static void test_fetch_iso_and_list(void **state) {
        _cleanup_free_ char *old = log_since_last(capture);
        _cleanup_free_ char *iso = test_server_tls_url(&srv, "/ok/x.iso"), *list = test_server_tls_url(&srv, "/ok/SHA512SUMS");
        _cleanup_free_ char *dest = strdup_printf("%s/out.iso", dir);
        _cleanup_free_ char *a = strdup_printf("'%s' '%s' --checksum-url '%s'", iso, dest, list);
        _cleanup_free_ char *b = strdup_printf("'%s' '%s' --checksum-url '%s' --insecure", iso, dest, list);
        _cleanup_free_ char *plain_list = test_server_url(&srv, "/ok/SHA512SUMS");
        _cleanup_free_ char *c = strdup_printf("'%s' '%s' --checksum-url '%s'", iso, dest, plain_list);
        assert_int_not_equal(run_fetch(a), 0); /* the list fails first */
        assert_int_not_equal(run_fetch(c), 0); /* the ISO itself */
        assert_true(access(dest, F_OK) < 0);
        _cleanup_free_ char *log = log_since_last(capture);
        assert_non_null(strstr(log, "--insecure"));
        assert_int_equal(run_fetch(b), 0);
        _cleanup_free_ char *got = NULL;
        assert_int_equal(read_full_file(dest, &got, NULL), 0);
        assert_string_equal(got, iso_data);
}

/* Webhooks: only their own insecure flag; rd.noverifyssl does not reach them. */
static void test_webhook_insecure_flag(void **state) {
        _cleanup_free_ char *url = test_server_tls_url(&srv, "/hook/tls"), *old = log_since_last(capture);
        struct webhook hooks[] = { {
                .event = (char[]){ "STARTED" },
                .method = (char[]){ "POST" },
                .url = url,
                .payload = (char[]){ "{}" },
        } };
        struct net_interface lo = { .name = (char[]){ "lo" } };
        struct config c = {};
        c.os.hostname = (char[]){ "node1" };
        c.install.management_interface.interfaces = &lo;
        c.install.management_interface.n_interfaces = 1;
        c.install.webhooks = hooks;
        c.install.n_webhooks = 1;
        c.boot.noverifyssl = true;
        assert_int_equal(test_server_reset(&srv), 0);
        webhook_send(&c, "STARTED");
        assert_int_equal(test_server_count(&srv, "/hook/tls"), 0);
        hooks[0].insecure = true;
        webhook_send(&c, "STARTED");
        assert_int_equal(test_server_count(&srv, "/hook/tls"), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_http_get_verifies),
                cmocka_unit_test(test_no_https_to_http_redirect),
                cmocka_unit_test(test_config_url),
                cmocka_unit_test(test_fetch_iso_and_list),
                cmocka_unit_test(test_webhook_insecure_flag),
        };
        return cmocka_run_group_tests_name("hostile-tls", tests, setup, teardown);
}
