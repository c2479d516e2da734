/* SPDX-License-Identifier: Apache-2.0 */
/* webhook_send() against the fault-injecting server: what arrives at the server (templated URL
 * and payload, method, headers, basic auth), event filtering, failing hooks logged and survived. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "log-capture.h"
#include "server.h"
#include "util.h"
#include "webhook.h"

static struct test_server srv = { .stdin_fd = -1, .stdout_fd = -1 };
static char *dir, *capture;
static char expect_v6[INET6_ADDRSTRLEN];

static int setup(void **state) {
        if (test_mkdtemp(&dir) < 0)
                return -1;
        capture = strdup_printf("%s/log", dir);
        if (!capture || log_set_capture_file(capture) < 0)
                return -1;

        /* What the IPv6 address of lo is here (none when IPv6 is off). */
        struct ifaddrs *ifa = NULL;
        if (getifaddrs(&ifa) == 0) {
                for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
                        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET6 && streq(i->ifa_name, "lo") && !expect_v6[0])
                                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr,
                                          expect_v6, sizeof(expect_v6));
                freeifaddrs(ifa);
        }
        if (access("/sys/class/net/mgmt-br", F_OK) == 0) {
                fprintf(stderr, "This machine has an interface mgmt-br; the test uses lo as the management interface.\n");
                exit(77);
        }
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

/* A config holding the given webhooks, hostname node1, management interface lo. */
struct fixture {
        struct config c;
        struct net_interface lo;
        char lo_name[3], hostname[6];
};

static void fixture_init(struct fixture *f, struct webhook *hooks, size_t n) {
        *f = (struct fixture) {};
        strcpy(f->lo_name, "lo");
        strcpy(f->hostname, "node1");
        f->lo.name = f->lo_name;
        f->c.os.hostname = f->hostname;
        f->c.install.management_interface.interfaces = &f->lo;
        f->c.install.management_interface.n_interfaces = 1;
        f->c.install.webhooks = hooks;
        f->c.install.n_webhooks = n;
}

static char *hook_url(const char *path) {
        char *u = strdup_printf("http://127.0.0.1:%d%s", srv.port, path);
        assert_non_null(u);
        return u;
}

static void test_started_templated(void **state) {
        _cleanup_free_ char *url = hook_url("/hook/started/{{.Hostname}}?mac={{ .MACAddr }}&ip={{.IPAddrV4}}");
        char *ct[] = { (char[]){ "application/json" }, NULL };
        char *multi[] = { (char[]){ "one" }, (char[]){ "two" }, NULL };
        struct header headers[] = {
                { .key = (char[]){ "Content-Type" }, .values = ct },
                { .key = (char[]){ "X-Install" }, .values = multi },
        };
        struct webhook hooks[] = { {
                .event = (char[]){ "STARTED" },
                .method = (char[]){ "POST" },
                .url = url,
                .payload = (char[]){ "{\"host\": \"{{.Hostname}}\", \"mac\": \"{{.MACAddr}}\", \"v4\": \"{{.IPAddrV4}}\", "
                                     "\"v6\": \"{{.IPAddrV6}}\", \"x\": \"{{.Unknown}}\"}" },
                .headers = headers,
                .n_headers = ELEMENTSOF(headers),
                .basic_auth_user = (char[]){ "hookuser" },
                .basic_auth_password = (char[]){ "hook-Pa55" },
        } };
        struct fixture f;
        fixture_init(&f, hooks, ELEMENTSOF(hooks));
        _cleanup_free_ char *old = log_since_last(capture);
        assert_int_equal(test_server_reset(&srv), 0);

        webhook_send(&f.c, "STARTED");

        _cleanup_strv_free_ char **reqs = NULL;
        assert_int_equal(test_server_request_lines(&srv, "/hook/", &reqs), 0);
        assert_int_equal(strv_length(reqs), 1);
        const char *r = reqs[0];
        assert_non_null(strstr(r, "\"method\": \"POST\""));
        assert_non_null(strstr(r, "\"path\": \"/hook/started/node1?mac=00:00:00:00:00:00&ip=127.0.0.1\""));
        /* base64("hookuser:hook-Pa55") */
        assert_non_null(strstr(r, "\"authorization\": \"Basic aG9va3VzZXI6aG9vay1QYTU1\""));
        assert_non_null(strstr(r, "\"content-type\": \"application/json\""));
        assert_non_null(strstr(r, "\"x-install\": \"one, two\""));
        assert_null(strstr(r, "\"expect\""));
        _cleanup_free_ char *body = strdup_printf(
                "\"body\": \"{\\\"host\\\": \\\"node1\\\", \\\"mac\\\": \\\"00:00:00:00:00:00\\\", \\\"v4\\\": "
                "\\\"127.0.0.1\\\", \\\"v6\\\": \\\"%s\\\", \\\"x\\\": \\\"\\\"}\"", expect_v6);
        assert_non_null(strstr(r, body));

        /* one log line, with event, method, URL and outcome; the password nowhere */
        _cleanup_free_ char *log = log_since_last(capture);
        _cleanup_free_ char *line = strdup_printf(
                "webhook STARTED: POST http://127.0.0.1:%d/hook/started/node1?mac=00:00:00:00:00:00&ip=127.0.0.1: HTTP 200\n",
                srv.port);
        assert_non_null(strstr(log, line));
        assert_null(strstr(log, "hook-Pa55"));
}

/* Only the hooks of the event are sent; GET by default, without a body; basic auth only with
 * both user and password. */
static void test_events_filtered(void **state) {
        _cleanup_free_ char *u1 = hook_url("/hook/ev/started");
        _cleanup_free_ char *u2 = hook_url("/hook/ev/succeeded/{{.Hostname}}");
        _cleanup_free_ char *u3 = hook_url("/hook/ev/failed");
        _cleanup_free_ char *u4 = hook_url("/hook/ev/succeeded-put");
        struct webhook hooks[] = {
                { .event = (char[]){ "STARTED" }, .url = u1 },
                { .event = (char[]){ "SUCCEEDED" }, .url = u2, .basic_auth_user = (char[]){ "onlyuser" } },
                { .event = (char[]){ "FAILED" }, .method = (char[]){ "POST" }, .url = u3 },
                { .event = (char[]){ "SUCCEEDED" }, .method = (char[]){ "PUT" }, .url = u4, .payload = (char[]){ "done" } },
        };
        struct fixture f;
        fixture_init(&f, hooks, ELEMENTSOF(hooks));
        assert_int_equal(test_server_reset(&srv), 0);

        webhook_send(&f.c, "SUCCEEDED");
        _cleanup_strv_free_ char **reqs = NULL;
        assert_int_equal(test_server_request_lines(&srv, "/hook/ev/", &reqs), 0);
        assert_int_equal(strv_length(reqs), 2);
        assert_non_null(strstr(reqs[0], "\"path\": \"/hook/ev/succeeded/node1\""));
        assert_non_null(strstr(reqs[0], "\"method\": \"GET\""));
        assert_non_null(strstr(reqs[0], "\"body_len\": 0"));
        assert_null(strstr(reqs[0], "\"authorization\""));
        assert_non_null(strstr(reqs[1], "\"path\": \"/hook/ev/succeeded-put\""));
        assert_non_null(strstr(reqs[1], "\"method\": \"PUT\""));
        assert_non_null(strstr(reqs[1], "\"body\": \"done\""));
        assert_null(strstr(reqs[1], "\"content-type\"")); /* no invented Content-Type */

        webhook_send(&f.c, "FAILED");
        assert_int_equal(test_server_count(&srv, "/hook/ev/"), 3);
        assert_int_equal(test_server_count(&srv, "/hook/ev/failed"), 1);
        webhook_send(&f.c, "started"); /* events are case-sensitive */
        webhook_send(&f.c, "STARTED");
        assert_int_equal(test_server_count(&srv, "/hook/ev/started"), 1);
        assert_int_equal(test_server_count(&srv, "/hook/ev/"), 4);
}

/* A hook answering 500 is retried (3 tries in all) and logged; 404 is not retried; a refused
 * connection is logged; an invalid template is logged; the hooks after them are still sent and
 * the caller goes on. */
static void test_failures_logged_not_fatal(void **state) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        struct sockaddr_in a = { .sin_family = AF_INET };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        socklen_t sl = sizeof(a);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
        close(fd);
        _cleanup_free_ char *refused = strdup_printf("http://127.0.0.1:%d/hook/nobody", ntohs(a.sin_port));

        _cleanup_free_ char *u500 = hook_url("/hook/status/500/f");
        _cleanup_free_ char *u404 = hook_url("/hook/status/404/f");
        _cleanup_free_ char *ubad = hook_url("/hook/bad/{{if .Hostname}}x{{end}}");
        _cleanup_free_ char *uok = hook_url("/hook/after");
        struct webhook hooks[] = {
                { .event = (char[]){ "FAILED" }, .method = (char[]){ "POST" }, .url = u500, .payload = (char[]){ "p" } },
                { .event = (char[]){ "FAILED" }, .url = refused },
                { .event = (char[]){ "FAILED" }, .url = u404 },
                { .event = (char[]){ "FAILED" }, .url = ubad },
                { .event = (char[]){ "FAILED" }, .url = uok },
        };
        struct fixture f;
        fixture_init(&f, hooks, ELEMENTSOF(hooks));
        assert_int_equal(test_server_reset(&srv), 0);
        _cleanup_free_ char *old = log_since_last(capture);

        webhook_send(&f.c, "FAILED");

        assert_int_equal(test_server_count(&srv, "/hook/status/500/f"), 3);
        assert_int_equal(test_server_count(&srv, "/hook/status/404/f"), 1);
        assert_int_equal(test_server_count(&srv, "/hook/bad"), 0);
        assert_int_equal(test_server_count(&srv, "/hook/after"), 1);

        _cleanup_free_ char *log = log_since_last(capture);
        _cleanup_free_ char *l500 = strdup_printf("webhook FAILED: POST %s failed: HTTP 500 (3 attempts); the install goes on.", u500);
        _cleanup_free_ char *l404 = strdup_printf("webhook FAILED: GET %s failed: HTTP 404 (1 attempt); the install goes on.", u404);
        _cleanup_free_ char *lref = strdup_printf("webhook FAILED: GET %s failed: ", refused);
        assert_non_null(strstr(log, l500));
        assert_non_null(strstr(log, l404));
        assert_non_null(strstr(log, lref));
        assert_non_null(strstr(log, "(3 attempts); the install goes on."));
        assert_non_null(strstr(log, "webhook FAILED: GET: the url template"));
        assert_non_null(strstr(log, "/hook/after: HTTP 200"));
        /* one line per webhook */
        size_t lines = 0;
        for (const char *p = log; (p = strstr(p, "webhook FAILED")); p++)
                lines++;
        assert_int_equal(lines, ELEMENTSOF(hooks));
}

/* Userinfo in a webhook URL is sent but never logged. */
static void test_url_userinfo_redacted(void **state) {
        _cleanup_free_ char *u = strdup_printf("http://who:Very-Secret@127.0.0.1:%d/hook/ui", srv.port);
        struct webhook hooks[] = { { .event = (char[]){ "STARTED" }, .url = u } };
        struct fixture f;
        fixture_init(&f, hooks, 1);
        _cleanup_free_ char *old = log_since_last(capture);
        webhook_send(&f.c, "STARTED");
        _cleanup_free_ char *log = log_since_last(capture);
        assert_null(strstr(log, "Very-Secret"));
        assert_non_null(strstr(log, "http://who:<redacted>@127.0.0.1:"));
        assert_int_equal(test_server_count(&srv, "/hook/ui"), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_started_templated),
                cmocka_unit_test(test_events_filtered),
                cmocka_unit_test(test_failures_logged_not_fatal),
                cmocka_unit_test(test_url_userinfo_redacted),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
