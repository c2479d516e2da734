/* SPDX-License-Identifier: Apache-2.0 */
/* ${mac}, ${mac_hyphen}, ${uuid}, ${serial} and ${hostname} in install.config_url, install.iso_url
 * and install.iso_checksum_url: expanded from a fake node (sysfs, DMI, /proc, networkd leases under
 * a temporary root), unknown or unreadable variables refused naming the variable, and config_load()
 * expanding the URLs only when asked (run), config_url whenever it is fetched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"
#include "urltemplate.h"

/* A fake node root: NULL-terminated pairs of (path under the root, content). */
static char *fake_root(const char *const *files) {
        char *dir = strdup_printf("%s/root-XXXXXX", test_tmpdir());
        assert_non_null(dir);
        assert_non_null(mkdtemp(dir));
        for (size_t i = 0; files[i]; i += 2) {
                _cleanup_free_ char *p = strdup_printf("%s/%s", dir, files[i]);
                assert_non_null(p);
                for (char *s = strchr(p + strlen(dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
                        *s = 0;
                        assert_true(mkdir(p, 0755) == 0 || errno == EEXIST);
                        *s = '/';
                }
                assert_int_equal(write_file_atomic(p, files[i + 1], strlen(files[i + 1]), 0644), 0);
        }
        return dir;
}

/* A node that booted from enp0s4 (the default route), with a second NIC, DMI and a networkd lease. */
static const char *const node[] = {
        "sys/class/net/lo/address", "00:00:00:00:00:00\n", "sys/class/net/lo/ifindex", "1\n",
        "sys/class/net/enp0s3/address", "52:54:00:12:34:56\n", "sys/class/net/enp0s3/ifindex", "2\n",
        "sys/class/net/enp0s4/address", "52:54:00:AB:CD:EF\n", "sys/class/net/enp0s4/ifindex", "3\n",
        "proc/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "enp0s3\t0064A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "enp0s4\t00000000\t010064C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
        "sys/class/dmi/id/product_uuid", "4C4C4544-0031-3510-8052-B4C04F4A3732\n",
        "sys/class/dmi/id/product_serial", "  SN 12/34#5 \n",
        "run/systemd/netif/leases/3", "# This is private data. Do not parse.\nADDRESS=192.100.0.23\nHOSTNAME=rack1-n7\n",
        "proc/sys/kernel/hostname", "localhost\n",
        NULL,
};

static int expand(const char *root, const char *cmdline, const char *tmpl, char **ret, char **ret_problem) {
        struct url_facts f = { .root = root, .cmdline = cmdline };
        *ret = NULL;
        *ret_problem = NULL;
        return url_template_expand(tmpl, &f, ret, ret_problem);
}

static void expect(const char *root, const char *cmdline, const char *tmpl, const char *want) {
        _cleanup_free_ char *out = NULL, *problem = NULL;
        int r = expand(root, cmdline, tmpl, &out, &problem);
        if (problem)
                print_message("problem: %s\n", problem);
        assert_int_equal(r, 0);
        assert_string_equal(out, want);
}

static void expect_problem(const char *root, const char *cmdline, const char *tmpl, const char *needle) {
        _cleanup_free_ char *out = NULL, *problem = NULL;
        assert_int_equal(expand(root, cmdline, tmpl, &out, &problem), -EINVAL);
        assert_null(out);
        assert_non_null(problem);
        print_message("problem: %s\n", problem);
        assert_non_null(strstr(problem, needle));
}

static void test_variables(void **state) {
        _cleanup_free_ char *root = fake_root(node);
        /* No BOOTIF=: the NIC of the default route (enp0s4), lower-case, colons. */
        expect(root, "ip=dhcp", "http://10.0.0.1/c/config-${mac}.yaml", "http://10.0.0.1/c/config-52:54:00:ab:cd:ef.yaml");
        expect(root, NULL, "http://h/${mac_hyphen}/${mac}", "http://h/52-54-00-ab-cd-ef/52:54:00:ab:cd:ef");
        /* BOOTIF= (pxelinux/iPXE form, ARP type 01) wins over the default route; the last one counts. */
        expect(root, "BOOTIF=01-aa-bb-cc-dd-ee-ff ip=dhcp BOOTIF=01-52-54-00-12-34-56", "http://h/${mac}",
               "http://h/52:54:00:12:34:56");
        expect(root, "BOOTIF=52-54-00-12-34-5A", "http://h/${mac}", "http://h/52:54:00:12:34:5a");
        /* SMBIOS: the UUID lower-case; the serial trimmed and percent-encoded. */
        expect(root, NULL, "http://h/${uuid}.yaml", "http://h/4c4c4544-0031-3510-8052-b4c04f4a3732.yaml");
        expect(root, NULL, "http://h/s/${serial}/x?n=${serial}", "http://h/s/SN%2012%2F34%235/x?n=SN%2012%2F34%235");
        /* The host name from the lease of the NIC that booted (ifindex 3), not the kernel's "localhost". */
        expect(root, NULL, "http://h/${hostname}.yaml", "http://h/rack1-n7.yaml");
        /* Text around and between variables is kept as written; a URL without variables is unchanged. */
        expect(root, NULL, "http://u:p@h/${hostname}-${mac_hyphen}.iso", "http://u:p@h/rack1-n7-52-54-00-ab-cd-ef.iso");
        expect(root, NULL, "http://h/plain.yaml?a=$b&c={d}", "http://h/plain.yaml?a=$b&c={d}");
}

static void test_hostname_from_kernel(void **state) {
        /* No lease with HOSTNAME= (another DHCP client): the kernel's host name, when one is set. */
        static const char *const n[] = {
                "sys/class/net/eth0/address", "52:54:00:00:00:01\n", "sys/class/net/eth0/ifindex", "2\n",
                "proc/net/route", "Iface\tDestination\tGateway\tFlags\neth0\t00000000\t0101A8C0\t0003\n",
                "proc/sys/kernel/hostname", "node-from-dhcp\n",
                NULL,
        };
        _cleanup_free_ char *root = fake_root(n);
        expect(root, NULL, "http://h/${hostname}", "http://h/node-from-dhcp");
}

static void test_problems(void **state) {
        _cleanup_free_ char *root = fake_root(node);
        expect_problem(root, NULL, "http://h/${macaddr}", "unknown variable ${macaddr}");
        expect_problem(root, NULL, "http://h/${mac", "\"${mac\" is not a ${name} variable");
        expect_problem(root, NULL, "http://h/${}", "is not a ${name} variable");
        expect_problem(root, "BOOTIF=01-zz-54-00-12-34-56", "http://h/${mac}", "${mac}: the kernel argument BOOTIF=01-zz");

        /* Values that cannot be read name their variable; a value not used is never read. */
        static const char *const bare[] = { "proc/net/route", "Iface\tDestination\tGateway\tFlags\n",
                                            "proc/sys/kernel/hostname", "(none)\n",
                                            "sys/class/dmi/id/product_serial", " \n", NULL };
        _cleanup_free_ char *b = fake_root(bare);
        expect_problem(b, "ip=dhcp", "http://h/${mac}", "${mac}: there is no BOOTIF= kernel argument and no IPv4 default route");
        expect_problem(b, NULL, "http://h/${uuid}", "${uuid}: cannot read the SMBIOS value");
        expect_problem(b, NULL, "http://h/${serial}", "${serial}: the SMBIOS value");
        expect_problem(b, NULL, "http://h/${hostname}", "${hostname}: the DHCP server gave no host name");
        expect(b, "BOOTIF=01-52-54-00-12-34-56", "http://h/${mac}", "http://h/52:54:00:12:34:56");

        assert_true(url_template_used("http://h/${mac}"));
        assert_false(url_template_used("http://h/$mac"));
        _cleanup_free_ char *p = url_template_problem("http://h/${uuid}/${nope}");
        assert_non_null(p);
        assert_non_null(strstr(p, "${nope}"));
        assert_null(url_template_problem("http://h/${uuid}/${serial}/${hostname}/${mac}/${mac_hyphen}"));
}

/* The configuration: validation names an unknown variable; config_load() expands iso_url and
 * iso_checksum_url only with expand_urls (run), config_url whenever it fetches it. */
static const char *yaml_with(const char *iso_url) {
        static char buf[1024];
        snprintf(buf, sizeof(buf),
                 "scheme_version: 1\ntoken: Token-123\nos: {hostname: node1, password: Secret-Pass-42}\n"
                 "install:\n  mode: create\n  device: /dev/sda\n  vip: 10.0.0.99\n  vip_mode: static\n"
                 "  iso_url: \"%s\"\n  iso_checksum_url: \"http://10.0.0.1/${uuid}.sha512\"\n"
                 "  management_interface: {interfaces: [{name: enp0s4}]}\n",
                 iso_url);
        return buf;
}

static void test_validate(void **state) {
        struct diags d = {};
        _cleanup_config_ struct config *c = NULL;
        assert_int_equal(from_text(NULL, yaml_with("http://10.0.0.1/${mac_address}.iso"), &d, &c), 0);
        dump_diags(&d);
        assert_int_equal(problems_at(&d, "install.iso_url"), 1);
        assert_int_equal(diags_errors(&d), 1);
        assert_non_null(strstr(d.items[0].message, "unknown variable ${mac_address}"));
        diags_clear(&d);
}

static int load_node(const char *root, const char *cmdline, const char *yaml, bool expand_urls, struct config **ret,
                     char **ret_err) {
        _cleanup_free_ char *cpath = write_tmp("cmdline", cmdline);
        _cleanup_free_ char *ypath = yaml ? write_tmp("config.yaml", yaml) : NULL;
        struct config_source src = { .cmdline_file = cpath, .config_file = ypath, .expand_urls = expand_urls };
        struct capture cap;
        assert_int_equal(setenv("HARVESTER_INSTALL_FACTS_ROOT", root, 1), 0);
        log_forget_secrets();
        capture_begin(&cap);
        int r = config_load(&src, ret);
        *ret_err = capture_end(&cap);
        print_message("%s", *ret_err);
        unsetenv("HARVESTER_INSTALL_FACTS_ROOT");
        return r;
}

static void test_load(void **state) {
        _cleanup_free_ char *root = fake_root(node);
        const char *cmdline = "ip=dhcp harvester.install.automatic=true";
        const char *yaml = yaml_with("http://u:Pass-Word-9@10.0.0.1/iso/${mac_hyphen}/h.iso");

        /* Offline (config, plan): shown as written. */
        _cleanup_config_ struct config *c1 = NULL;
        _cleanup_free_ char *e1 = NULL;
        assert_int_equal(load_node(root, cmdline, yaml, false, &c1, &e1), 0);
        assert_int_equal(strv_length(c1->install.iso_urls), 1);
        assert_string_equal(c1->install.iso_urls[0], "http://u:Pass-Word-9@10.0.0.1/iso/${mac_hyphen}/h.iso");

        /* On the node (run): expanded, and the URL logged with its password redacted. */
        _cleanup_config_ struct config *c2 = NULL;
        _cleanup_free_ char *e2 = NULL;
        assert_int_equal(load_node(root, cmdline, yaml, true, &c2, &e2), 0);
        assert_int_equal(strv_length(c2->install.iso_urls), 1);
        assert_string_equal(c2->install.iso_urls[0], "http://u:Pass-Word-9@10.0.0.1/iso/52-54-00-ab-cd-ef/h.iso");
        assert_string_equal(c2->install.iso_checksum_url, "http://10.0.0.1/4c4c4544-0031-3510-8052-b4c04f4a3732.sha512");
        assert_non_null(strstr(e2, "install.iso_url expands to http://u:<redacted>@10.0.0.1/iso/52-54-00-ab-cd-ef/h.iso"));
        assert_null(strstr(e2, "Pass-Word-9"));

        /* A value the node lacks: the configuration is invalid, naming the key and the variable. */
        static const char *const nodmi[] = { "proc/net/route", "Iface\tDestination\tGateway\tFlags\n", NULL };
        _cleanup_free_ char *bare = fake_root(nodmi);
        _cleanup_config_ struct config *c3 = NULL;
        _cleanup_free_ char *e3 = NULL;
        assert_int_equal(load_node(bare, cmdline, yaml_with("http://10.0.0.1/h.iso"), true, &c3, &e3), -EINVAL);
        assert_null(c3);
        assert_non_null(strstr(e3, "install.iso_checksum_url: ${uuid}: cannot read the SMBIOS value"));

        /* config_url on the kernel line: expanded before the fetch (file:// here), one file per MAC. */
        _cleanup_free_ char *dir = strdup_printf("%s/rack", test_tmpdir());
        assert_int_equal(mkdir(dir, 0755), 0);
        _cleanup_free_ char *per_mac = strdup_printf("%s/config-52:54:00:ab:cd:ef.yaml", dir);
        assert_int_equal(write_file_atomic(per_mac, yaml, strlen(yaml), 0644), 0);
        _cleanup_free_ char *line = strdup_printf("%s harvester.install.config_url=file://%s/config-${mac}.yaml", cmdline, dir);
        _cleanup_config_ struct config *c4 = NULL;
        _cleanup_free_ char *e4 = NULL;
        assert_int_equal(load_node(root, line, NULL, false, &c4, &e4), 0);
        assert_string_equal(c4->install.device, "/dev/sda");
        assert_string_equal(c4->install.config_url, strstr(line, "file://")); /* shown as written */
        assert_non_null(strstr(e4, "install.config_url expands to file://"));
        assert_non_null(strstr(e4, "/config-52:54:00:ab:cd:ef.yaml on this node."));

        /* An unknown variable in config_url: invalid (exit 2), not a failed fetch. */
        _cleanup_free_ char *bad = strdup_printf("%s harvester.install.config_url=file://%s/config-${MAC}.yaml", cmdline, dir);
        _cleanup_config_ struct config *c5 = NULL;
        _cleanup_free_ char *e5 = NULL;
        assert_int_equal(load_node(root, bad, NULL, false, &c5, &e5), -EINVAL);
        assert_non_null(strstr(e5, "install.config_url: unknown variable ${MAC}"));
}

static int teardown(void **state) {
        helpers_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_variables),
                cmocka_unit_test(test_hostname_from_kernel),
                cmocka_unit_test(test_problems),
                cmocka_unit_test(test_validate),
                cmocka_unit_test(test_load),
        };
        return cmocka_run_group_tests(tests, NULL, teardown);
}
