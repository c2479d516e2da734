/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config_url end to end: `$AGENT --cmdline FILE config --json` with
 * harvester.install.config_url pointing at the fault server.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "cli.h"
#include "server.h"
#include "util.h"

extern char **environ;

static struct test_server srv = { .stdin_fd = -1, .stdout_fd = -1 };
static char *dir;
static const char *agent;

/* Runs $AGENT --cmdline <dir>/cmdline config --json with the given kernel arguments; returns
 * the exit code, stdout and stderr. */
static int run_config(const char *kernel_args, char **ret_out, char **ret_err) {
        _cleanup_free_ char *cmdline = strdup_printf("%s/cmdline", dir);
        _cleanup_free_ char *out = strdup_printf("%s/stdout", dir);
        _cleanup_free_ char *err = strdup_printf("%s/stderr", dir);
        assert_non_null(cmdline);
        assert_non_null(out);
        assert_non_null(err);
        _cleanup_free_ char *line = strdup_printf("%s\n", kernel_args);
        assert_int_equal(test_write_file(dir, "cmdline", line, strlen(line)), 0);

        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        char *argv[] = { (char *)agent, (char *)"--cmdline", cmdline, (char *)"config", (char *)"--json", NULL };
        pid_t pid;
        assert_int_equal(posix_spawn(&pid, agent, &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        int status;
        while (waitpid(pid, &status, 0) < 0)
                assert_int_equal(errno, EINTR);
        assert_true(WIFEXITED(status));

        assert_int_equal(read_full_file(out, ret_out, NULL), 0);
        assert_int_equal(read_full_file(err, ret_err, NULL), 0);
        print_message("exit %d; stderr:\n%s", WEXITSTATUS(status), *ret_err);
        return WEXITSTATUS(status);
}

static char *args_for(const char *path, const char *extra) {
        char *a = strdup_printf("ip=dhcp net.ifnames=1 rd.cos.disable rd.noverifyssl console=tty1 "
                                "root=live:http://10.100.0.10/harvester/rootfs.squashfs "
                                "harvester.install.automatic=true "
                                "harvester.install.config_url=http://127.0.0.1:%d%s%s%s",
                                srv.port, path, extra ? " " : "", strempty(extra));
        assert_non_null(a);
        return a;
}

static int setup(void **state) {
        agent = getenv("AGENT");
        const char *src = getenv("TESTS_SOURCE_DIR");
        if (isempty(agent) || isempty(src)) {
                fprintf(stderr, "AGENT and TESTS_SOURCE_DIR must be set (meson test sets them).\n");
                return -1;
        }
        if (test_mkdtemp(&dir) < 0)
                return -1;
        _cleanup_free_ char *fixture = strdup_printf("%s/net/data/config-create.yaml", src);
        _cleanup_free_ char *yaml = NULL;
        size_t len = 0;
        if (!fixture || read_full_file(fixture, &yaml, &len) < 0 ||
            test_write_file(dir, "config-create.yaml", yaml, len) < 0)
                return -1;
        if (test_server_start(dir, &srv) < 0)
                return -1;

        return 0;
}

static int teardown(void **state) {
        test_server_stop(&srv);
        if (dir)
                (void)test_rm_rf(dir);
        free(dir);
        return 0;
}

static bool contains_ci(const char *hay, const char *needle) {
        return strcasestr(hay, needle) != NULL;
}

/* The seed's CREATE line with the config served: the merged configuration, secrets redacted. */
static void test_ok(void **state) {
        _cleanup_free_ char *args = args_for("/ok/config-create.yaml", NULL);
        _cleanup_free_ char *out = NULL, *err = NULL;
        assert_int_equal(test_server_reset(&srv), 0);
        assert_int_equal(run_config(args, &out, &err), 0);
        assert_non_null(strstr(out, "\"node1\""));
        assert_non_null(strstr(out, "\"10.100.0.99\""));
        assert_non_null(strstr(out, "\"create\""));
        assert_non_null(strstr(out, "harvester-v1.1.2-amd64.iso"));
        assert_null(strstr(out, "token-Net-Test-7f3a"));
        assert_null(strstr(out, "p@ssword-Net-Test"));
        assert_null(strstr(err, "token-Net-Test-7f3a"));
        assert_null(strstr(err, "p@ssword-Net-Test"));
        assert_int_equal(test_server_count(&srv, "/ok/config-create.yaml"), 1);
}

/* 503 twice then 200: retried, succeeds, three requests. */
static void test_retried(void **state) {
        _cleanup_free_ char *args = args_for("/fail503x2/config-create.yaml", NULL);
        _cleanup_free_ char *out = NULL, *err = NULL;
        assert_int_equal(test_server_reset(&srv), 0);
        assert_int_equal(run_config(args, &out, &err), 0);
        assert_non_null(strstr(out, "\"node1\""));
        assert_int_equal(test_server_count(&srv, "/fail503x2/config-create.yaml"), 3);
        assert_non_null(strstr(err, "attempt 1 failed"));
}

/* 404: fails at once (one request), exit 3, the message names the status and the URL. */
static void test_404(void **state) {
        _cleanup_free_ char *args = args_for("/404/config-create.yaml", NULL);
        _cleanup_free_ char *out = NULL, *err = NULL;
        assert_int_equal(test_server_reset(&srv), 0);
        assert_int_equal(run_config(args, &out, &err), EXIT_CONFIG_URL);
        assert_non_null(strstr(err, "404"));
        _cleanup_free_ char *url = strdup_printf("http://127.0.0.1:%d/404/config-create.yaml", srv.port);
        assert_non_null(strstr(err, url));
        assert_int_equal(test_server_count(&srv, "/404/"), 1);
}

/* A body that is not YAML configuration (an HTML page with 200) is an error that says so. */
static void test_not_yaml(void **state) {
        _cleanup_free_ char *args = args_for("/text/config-create.yaml", NULL);
        _cleanup_free_ char *out = NULL, *err = NULL;
        int r = run_config(args, &out, &err);
        assert_true(r == EXIT_INVALID || r == EXIT_CONFIG_URL);
        assert_true(contains_ci(err, "yaml"));
        assert_null(strstr(out, "\"create\""));
}

/* A server that never answers: the deadline from config_url_timeout ends it, exit 3. */
static void test_hang_deadline(void **state) {
        _cleanup_free_ char *args = args_for("/hang/config-create.yaml", "harvester.install.config_url_timeout=3");
        _cleanup_free_ char *out = NULL, *err = NULL;
        assert_int_equal(test_server_reset(&srv), 0);
        assert_int_equal(run_config(args, &out, &err), EXIT_CONFIG_URL);
        assert_non_null(strstr(err, "giving up"));
        int n = test_server_count(&srv, "/hang/");
        assert_true(n >= 1);
        assert_true(n <= 4);
}

/* mode=join on the command line over a create file: validated as a join, exit 2 naming server_url. */
static void test_join_override(void **state) {
        _cleanup_free_ char *args = args_for("/ok/config-create.yaml", "harvester.install.mode=join");
        _cleanup_free_ char *out = NULL, *err = NULL;
        assert_int_equal(run_config(args, &out, &err), EXIT_INVALID);
        assert_non_null(strstr(err, "server_url"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ok),
                cmocka_unit_test(test_retried),
                cmocka_unit_test(test_404),
                cmocka_unit_test(test_not_yaml),
                cmocka_unit_test(test_hang_deadline),
                cmocka_unit_test(test_join_override),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
