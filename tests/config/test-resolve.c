/* SPDX-License-Identifier: Apache-2.0 */
/* Interfaces given only by hw_addr get their names from the machine's NICs (a fake
 * /sys/class/net tree here), as run's configuration stage does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"

/* A fake /sys/class/net: one directory per NIC with its address and ifindex. */
static char *fake_net(const char *const *nics) {
        char *dir = strdup_printf("%s/net-XXXXXX", test_tmpdir());
        assert_non_null(dir);
        assert_non_null(mkdtemp(dir));
        for (size_t i = 0; nics[i]; i += 3) {
                _cleanup_free_ char *d = strdup_printf("%s/%s", dir, nics[i]);
                assert_int_equal(mkdir(d, 0755), 0);
                _cleanup_free_ char *a = strdup_printf("%s/address", d), *x = strdup_printf("%s/ifindex", d);
                _cleanup_free_ char *av = strdup_printf("%s\n", nics[i + 1]), *xv = strdup_printf("%s\n", nics[i + 2]);
                assert_int_equal(write_file_atomic(a, av, strlen(av), 0644), 0);
                assert_int_equal(write_file_atomic(x, xv, strlen(xv), 0644), 0);
        }
        return dir;
}

static const char *const nics[] = {
        "lo", "00:00:00:00:00:00", "1",
        "enp0s3", "52:54:00:12:34:56", "2",
        "enp0s4", "52:54:00:ab:cd:ef", "3",
        /* A VLAN child shares its parent's MAC: the lowest ifindex wins, as in v1.1.2. */
        "enp0s4.100", "52:54:00:ab:cd:ef", "7",
        NULL,
};

static struct config *load(const char *interfaces_yaml) {
        _cleanup_free_ char *yaml = strdup_printf(
                "scheme_version: 1\ntoken: Token-123\nos: {hostname: node1, password: Secret-Pass-42}\n"
                "install:\n  mode: create\n  device: /dev/sda\n  vip: 10.0.0.99\n  vip_mode: static\n"
                "  management_interface:\n    interfaces: %s\n",
                interfaces_yaml);
        struct diags d = {};
        struct config *c = NULL;
        assert_int_equal(from_text(NULL, yaml, &d, &c), 0);
        dump_diags(&d);
        assert_int_equal(diags_errors(&d), 0);
        diags_clear(&d);
        return c;
}

static void test_resolved(void **state) {
        _cleanup_free_ char *net = fake_net(nics);
        _cleanup_config_ struct config *c =
                load("[{hwAddr: '52:54:00:AB:CD:EF'}, {hw_addr: 52-54-00-12-34-56}, {name: ens9, hwAddr: '52:54:00:00:00:09'}]");
        assert_true(config_has_mac_only_interfaces(c));
        assert_int_equal(config_resolve_interfaces(c, net), 0);
        const struct mgmt_interface *m = &c->install.management_interface;
        assert_string_equal(m->interfaces[0].name, "enp0s4");
        assert_string_equal(m->interfaces[1].name, "enp0s3");
        assert_string_equal(m->interfaces[2].name, "ens9"); /* a name given is kept, as v1.1.2 */
        assert_false(config_has_mac_only_interfaces(c));
        /* Resolved, it renders. */
        assert_int_equal(dry_run_render(c, false), 0);
}

static void test_no_match(void **state) {
        _cleanup_free_ char *net = fake_net(nics);
        _cleanup_config_ struct config *c = load("[{hwAddr: '52:54:00:99:99:99'}]");
        struct capture cap;
        capture_begin(&cap);
        int r = config_resolve_interfaces(c, net);
        _cleanup_free_ char *err = capture_end(&cap);
        print_message("%s", err);
        assert_int_equal(r, -ENODEV);
        /* The message names the MAC and every NIC present (not lo) with its MAC. */
        assert_non_null(strstr(err, "install.management_interface.interfaces[0]: no network interface has the MAC "
                                    "address 52:54:00:99:99:99; this machine has enp0s3 (52:54:00:12:34:56), enp0s4 "
                                    "(52:54:00:ab:cd:ef), enp0s4.100 (52:54:00:ab:cd:ef)."));
        assert_null(strstr(err, "lo ("));
        assert_null(c->install.management_interface.interfaces[0].name);

        /* No NIC at all. */
        static const char *const none[] = { "lo", "00:00:00:00:00:00", "1", NULL };
        _cleanup_free_ char *empty = fake_net(none);
        capture_begin(&cap);
        assert_int_equal(config_resolve_interfaces(c, empty), -ENODEV);
        free(capture_end(&cap));

        /* An unreadable tree. */
        _cleanup_free_ char *missing = strdup_printf("%s/no-such-dir", net);
        capture_begin(&cap);
        assert_int_equal(config_resolve_interfaces(c, missing), -ENOENT);
        free(capture_end(&cap));
}

static void test_offline_dry_run(void **state) {
        /* The offline `config` command: a stand-in name for the dry run, nothing kept. */
        _cleanup_config_ struct config *c = load("[{hwAddr: '52:54:00:99:99:99'}, ens5]");
        assert_int_equal(dry_run_render(c, true), 0);
        assert_null(c->install.management_interface.interfaces[0].name);
        assert_string_equal(c->install.management_interface.interfaces[1].name, "ens5");
        /* Without stand-ins the renderer refuses an unnamed interface (the assertion behind it). */
        struct capture cap;
        capture_begin(&cap);
        assert_int_equal(dry_run_render(c, false), -EINVAL);
        free(capture_end(&cap));
}

static int teardown(void **state) {
        helpers_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_resolved),
                cmocka_unit_test(test_no_match),
                cmocka_unit_test(test_offline_dry_run),
        };
        return cmocka_run_group_tests(tests, NULL, teardown);
}
