/* SPDX-License-Identifier: Apache-2.0 */
/* config_load() end to end: the seed's configurations with the seed's iPXE kernel lines, the
 * operator mistakes, file:// config_url, unreadable and non-YAML files, messages and secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"

static int load_fixtures(const char *cmdline_fixture, const char *extra_args, const char *yaml_fixture,
                         struct config **ret, char **ret_err) {
        _cleanup_free_ char *line = fixture_text(cmdline_fixture);
        _cleanup_free_ char *all = strdup_printf("%s %s", line, strempty(extra_args));
        _cleanup_free_ char *yaml = yaml_fixture ? fixture_text(yaml_fixture) : NULL;
        assert_non_null(all);
        int r = load_capture(all, yaml, ret, ret_err);
        print_message("%s", *ret_err);
        return r;
}

static void test_seed_create(void **state) {
        static const char *const lines[] = { "cmdline-create.txt", "cmdline-create-efi.txt" };
        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                struct config *c = NULL;
                _cleanup_free_ char *err = NULL;
                assert_int_equal(load_fixtures(lines[i], NULL, "config-create.yaml", &c, &err), 0);
                assert_non_null(c);
                assert_string_equal(err, ""); /* not even a warning */
                assert_int_equal(c->scheme_version, 1);
                assert_string_equal(c->token, "token");
                assert_string_equal(c->os.hostname, "node1");
                assert_string_equal(c->os.password, "p@ssword");
                assert_int_equal(strv_length(c->os.ssh_authorized_keys), 1);
                assert_int_equal(strv_length(c->os.ntp_servers), 2);
                assert_string_equal(c->install.mode, "create");
                assert_true(c->install.automatic); /* from the kernel line */
                assert_string_equal(c->install.config_url, "http://10.100.0.10/harvester/config-create.yaml");
                assert_int_equal(c->install.management_interface.n_interfaces, 1);
                assert_string_equal(c->install.management_interface.interfaces[0].name, "ens5");
                assert_true(c->install.management_interface.default_route);
                assert_string_equal(c->install.management_interface.method, "dhcp");
                assert_string_equal(kvmap_get(&c->install.management_interface.bond_options, "mode"), "balance-tlb");
                assert_string_equal(kvmap_get(&c->install.management_interface.bond_options, "miimon"), "100");
                assert_string_equal(c->install.device, "/dev/sda");
                assert_null(c->install.data_disk);
                assert_int_equal(strv_length(c->install.iso_urls), 1);
                assert_string_equal(c->install.iso_urls[0], "http://10.100.0.10/harvester/harvester-<version>-amd64.iso");
                assert_string_equal(c->install.vip, "10.100.0.99");
                assert_string_equal(c->install.vip_mode, "static");
                assert_null(c->server_url);
                /* dracut arguments. */
                assert_true(c->boot.noverifyssl);
                assert_true(c->boot.automatic);
                assert_int_equal(strv_length(c->boot.consoles), 1);
                assert_string_equal(c->boot.consoles[0], "tty1");
                assert_string_equal(c->install.tty, "tty1"); /* default: the last console= */
                /* Where values came from. */
                assert_string_equal(config_where(c, "install.automatic"), "kernel command line");
                const char *w = config_where(c, "install.vip");
                assert_non_null(strstr(w, "/config.yaml:31:8"));
                assert_string_equal(config_where(c, "install.config_url_timeout"), "default");
                config_free(c);
        }
}

static void test_seed_join(void **state) {
        struct config *c = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(load_fixtures("cmdline-join.txt", NULL, "config-join.yaml", &c, &err), 0);
        assert_string_equal(err, "");
        assert_string_equal(c->install.mode, "join");
        assert_string_equal(c->server_url, "https://10.100.0.99:443");
        assert_string_equal(c->os.hostname, "node2");
        assert_int_equal(strv_length(c->os.dns_nameservers), 2);
        assert_string_equal(c->install.config_url, "http://10.100.0.10/harvester/config-join.yaml");
        config_free(c);
}

static void test_join_override(void **state) {
        struct config *c = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(load_fixtures("cmdline-create.txt", "harvester.install.mode=join", "config-create.yaml", &c, &err),
                         -EINVAL);
        assert_null(c);
        assert_non_null(strstr(err, "harvester-install: error: server_url: required for mode join"));
        assert_non_null(strstr(err, "error: The configuration is invalid: server_url: required for mode join"));
}

static void test_operator_mistakes(void **state) {
        static const struct {
                const char *fixture, *cmdline, *line;
        } cases[] = {
                { "mistake-missing-iso-url.yaml", "cmdline-create.txt",
                  "error: install.iso_url: required for an automatic install (the ISO to install from) (not set)\n" },
                { "mistake-join-without-server-url.yaml", "cmdline-join.txt",
                  "error: server_url: required for mode join: the cluster to join, https://<vip>:443 (not set)\n" },
                { "mistake-create-without-vip.yaml", "cmdline-create.txt",
                  "error: install.vip: required for mode create: the cluster's VIP (not set)\n" },
                { "mistake-no-credentials.yaml", "cmdline-create.txt",
                  "error: os.password: no password and no SSH key: set os.password or at least one "
                  "os.ssh_authorized_keys entry, or nobody can log in (not set)\n" },
                { "mistake-bad-hostname.yaml", "cmdline-create.txt",
                  "error: os.hostname: \"Node_1\" is not a valid hostname" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct config *c = NULL;
                _cleanup_free_ char *err = NULL;
                assert_int_equal(load_fixtures(cases[i].cmdline, NULL, cases[i].fixture, &c, &err), -EINVAL);
                assert_null(c);
                assert_non_null(strstr(err, cases[i].line));
                /* The summary line (what the FAILED marker repeats) names the problem itself. */
                const char *summary = strstr(err, "error: The configuration is invalid: ");
                assert_non_null(summary);
                assert_non_null(strstr(summary, cases[i].line + strlen("error: ")));
        }
        /* The hostname problem points into the file. */
        struct config *c = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(load_fixtures("cmdline-create.txt", NULL, "mistake-bad-hostname.yaml", &c, &err), -EINVAL);
        assert_non_null(strstr(err, "/config.yaml:8:13)\n"));
}

static void test_config_url_file(void **state) {
        _cleanup_free_ char *yaml = fixture_text("config-create.yaml");
        _cleanup_free_ char *path = write_tmp("served.yaml", yaml);
        _cleanup_free_ char *line = strdup_printf("harvester.install.automatic=true harvester.install.config_url=file://%s",
                                                  path);
        struct config *c = NULL;
        char *err = NULL;
        assert_int_equal(load_capture(line, NULL, &c, &err), 0);
        print_message("%s", err);
        assert_non_null(c);
        assert_string_equal(c->os.hostname, "node1");
        assert_string_equal(c->install.mode, "create");
        _cleanup_free_ char *url = strdup_printf("file://%s", path);
        assert_string_equal(c->source_name, url);
        /* Positions name the URL. */
        _cleanup_free_ char *where = strdup_printf("%s:31:8", url);
        assert_string_equal(config_where(c, "install.vip"), where);
        assert_null(strstr(err, "rd.noverifyssl"));
        config_free(TAKE_PTR(c));
        free(err);

        /* rd.noverifyssl: fetched without TLS verification, and said so. */
        _cleanup_free_ char *line1 = strdup_printf("rd.noverifyssl %s", line);
        assert_int_equal(load_capture(line1, NULL, &c, &err), 0);
        assert_true(c->boot.noverifyssl);
        assert_non_null(strstr(err, "warning: rd.noverifyssl is on the kernel command line: TLS certificates are NOT "
                                    "verified"));
        config_free(TAKE_PTR(c));
        free(err);

        /* A file:// URL that does not exist: config_url could not be fetched. */
        _cleanup_free_ char *line2 = strdup_printf("harvester.install.config_url=file://%s/nope.yaml "
                                                   "harvester.install.config_url_timeout=1", test_tmpdir());
        assert_int_equal(load_capture(line2, NULL, &c, &err), -EREMOTEIO);
        print_message("%s", err);
        assert_null(c);
        free(err);

        /* A body that is not YAML: an error that says so. */
        _cleanup_free_ char *html = write_tmp("page.html", "<html><body>It works!</body></html>\n");
        _cleanup_free_ char *line3 = strdup_printf("harvester.install.config_url=file://%s", html);
        assert_int_equal(load_capture(line3, NULL, &c, &err), -EINVAL);
        print_message("%s", err);
        assert_non_null(strstr(err, "is not YAML"));
        free(err);

        /* An invalid timeout stops before fetching. */
        _cleanup_free_ char *line4 = strdup_printf("harvester.install.config_url=file://%s "
                                                   "harvester.install.config_url_timeout=soon", path);
        assert_int_equal(load_capture(line4, NULL, &c, &err), -EINVAL);
        assert_non_null(strstr(err, "install.config_url_timeout: expected a number of seconds"));
        free(err);

        /* --config wins over config_url: nothing is fetched. */
        _cleanup_free_ char *line5 = strdup_printf("harvester.install.config_url=file://%s/nope.yaml", test_tmpdir());
        assert_int_equal(load_capture(line5, yaml, &c, &err), 0);
        assert_string_equal(err, "");
        config_free(c);
        free(err);
}

static void test_files_unusable(void **state) {
        struct config *c = NULL;
        char *err = NULL;
        _cleanup_free_ char *cmd = write_tmp("cmdline", "harvester.install.mode=create");
        _cleanup_free_ char *missing = strdup_printf("%s/missing.yaml", test_tmpdir());
        struct config_source src = { .cmdline_file = cmd, .config_file = missing };
        struct capture cap;
        capture_begin(&cap);
        assert_int_equal(config_load(&src, &c), -ENOENT);
        err = capture_end(&cap);
        assert_non_null(strstr(err, missing));
        free(err);

        src = (struct config_source){ .cmdline_file = missing };
        capture_begin(&cap);
        assert_int_equal(config_load(&src, &c), -ENOENT);
        err = capture_end(&cap);
        assert_non_null(strstr(err, "Cannot read the kernel command line"));
        free(err);

        /* Not YAML, plus a kernel-argument problem: both reported, nothing else. */
        assert_int_equal(load_capture("harvester.install.management_interface.interfaces=hwAddr:xx",
                                      "install:\n  mode: create\n bad", &c, &err), -EINVAL);
        print_message("%s", err);
        assert_non_null(strstr(err, "is not YAML"));
        assert_non_null(strstr(err, "install.management_interface.interfaces"));
        assert_non_null(strstr(err, "The configuration has 2 problems"));
        free(err);
}

static void test_warnings_printed(void **state) {
        struct config *c = NULL;
        char *err = NULL;
        assert_int_equal(load_capture("harvester.install.colour=blue", VALID_CREATE "os_typo: 1\n", &c, &err), 0);
        assert_non_null(strstr(err, "harvester-install: warning: install.colour: unknown key, ignored "
                                    "(kernel command line)\n"));
        assert_non_null(strstr(err, "harvester-install: warning: os_typo: unknown key, ignored ("));
        assert_null(strstr(err, "error"));
        config_free(c);
        free(err);
}

static void test_many_problems_capped(void **state) {
        size_t cap = 64 * 400 + sizeof(VALID_CREATE), len = 0;
        _cleanup_free_ char *yaml = malloc(cap);
        assert_non_null(yaml);
        len = (size_t)snprintf(yaml, cap, "%s", VALID_CREATE);
        for (int i = 0; i < 300; i++)
                len += (size_t)snprintf(yaml + len, cap - len, "unknown_%d: %d\n", i, i);
        struct config *c = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(load_capture(NULL, yaml, &c, &err), 0);
        assert_non_null(strstr(err, "warning: unknown_0: unknown key, ignored"));
        assert_null(strstr(err, "unknown_250:"));
        assert_non_null(strstr(err, "warning: ... and 100 more warning(s), not shown."));
        config_free(c);
}

static void test_secrets_never_in_messages(void **state) {
        /* The password doubles as an (invalid) hostname and webhook user: wherever a message would
         * echo it, it is redacted. */
        static const char yaml[] = "scheme_version: 1\n"
                                   "token: Tok_Secret_1\n"
                                   "os:\n"
                                   "  hostname: Pw_Secret_2\n"
                                   "  password: Pw_Secret_2\n"
                                   "install:\n"
                                   "  mode: create\n"
                                   "  device: Tok_Secret_1\n"
                                   "  iso_url: ftp://user:Url_Secret_3@h/x.iso\n"
                                   "  webhooks:\n"
                                   "    - {event: FAILED, url: 'gopher://u:Hook_Secret_4@h/', basic_auth: {password: B_5}}\n";
        struct config *c = NULL;
        char *err = NULL;
        assert_int_equal(load_capture("harvester.os.labels.x=Pw_Secret_2 harvester.server_url=https://a:Srv_6@h:8443",
                                      yaml, &c, &err),
                         -EINVAL);
        print_message("%s", err);
        static const char *const secrets[] = { "Tok_Secret_1", "Pw_Secret_2", "Url_Secret_3", "Hook_Secret_4",
                                               "Srv_6" };
        for (size_t i = 0; i < ELEMENTSOF(secrets); i++)
                assert_null(strstr(err, secrets[i]));
        assert_non_null(strstr(err, "os.hostname: \"<redacted>\" is not a valid hostname"));
        assert_non_null(strstr(err, "install.iso_url: \"ftp://user:<redacted>@h/x.iso\""));
        assert_non_null(strstr(err, "server_url: \"https://a:<redacted>@h:8443\" must use port 443"));
        free(err);
        log_forget_secrets();
}

static int teardown(void **state) {
        helpers_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_seed_create),
                cmocka_unit_test(test_seed_join),
                cmocka_unit_test(test_join_override),
                cmocka_unit_test(test_operator_mistakes),
                cmocka_unit_test(test_config_url_file),
                cmocka_unit_test(test_files_unusable),
                cmocka_unit_test(test_warnings_printed),
                cmocka_unit_test(test_many_problems_capped),
                cmocka_unit_test(test_secrets_never_in_messages),
        };
        return cmocka_run_group_tests(tests, NULL, teardown);
}
