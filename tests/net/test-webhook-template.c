/* SPDX-License-Identifier: Apache-2.0 */
/* Webhook templates (the Go text/template subset) and the choice of the management interface,
 * against fixture /sys/class/net and /proc/net trees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "server.h"
#include "util.h"
#include "webhook.h"

static const struct webhook_values vals = {
        .hostname = "node1", .mac = "52:54:00:12:34:56", .ipv4 = "10.0.0.5", .ipv6 = "fd00::5",
        .install_disk = { "/dev/disk/by-id/ata-QEMU_HARDDISK_disk0", "/dev/sda", "/dev/disk/by-id/ata-QEMU_HARDDISK_disk0",
                          "QEMU HARDDISK", "disk0", "322122547200" },
        .data_disk = { "sdb", "/dev/sdb", NULL, "QEMU HARDDISK", "data0", "64424509440" },
};

static void check(const char *tmpl, const char *want) {
        _cleanup_free_ char *out = NULL;
        const char *err = NULL;
        assert_int_equal(webhook_render(tmpl, &vals, &out, &err), 0);
        assert_string_equal(out, want);
}

static void test_render(void **state) {
        check("", "");
        check("plain text, no action", "plain text, no action");
        check("http://h/x/{{.Hostname}}", "http://h/x/node1");
        check("{{ .Hostname }}-{{.MACAddr}}-{{  .IPAddrV4\t}}-{{.IPAddrV6}}", "node1-52:54:00:12:34:56-10.0.0.5-fd00::5");
        check("{\"host\": \"{{.Hostname}}\", \"x\": \"{{.NoSuchField}}\"}", "{\"host\": \"node1\", \"x\": \"\"}");
        check("a  {{- .Hostname -}}  \n b", "anode1b");
        check("a {{- .Hostname}} b", "anode1 b");
        check("a {{.Hostname -}} b", "a node1b");
        check("x{{/* a comment */}}y", "xy");
        check("{{.Hostname}}{{.Hostname}}", "node1node1");
        check("{ not an action } }}", "{ not an action } }}");
        check("{{.hostname}}", ""); /* field names are case-sensitive: unknown, so empty */
        /* The disks' identity. */
        check("{{.InstallDisk}}|{{.InstallDiskNode}}|{{.InstallDiskByID}}|{{.InstallDiskModel}}|{{.InstallDiskSerial}}|{{.InstallDiskSize}}",
              "/dev/disk/by-id/ata-QEMU_HARDDISK_disk0|/dev/sda|/dev/disk/by-id/ata-QEMU_HARDDISK_disk0|QEMU HARDDISK|disk0|322122547200");
        check("{{.DataDisk}}|{{.DataDiskNode}}|{{.DataDiskByID}}|{{.DataDiskModel}}|{{.DataDiskSerial}}|{{.DataDiskSize}}",
              "sdb|/dev/sdb||QEMU HARDDISK|data0|64424509440");

        /* NULL values and a NULL template render empty */
        _cleanup_free_ char *out = NULL;
        struct webhook_values empty = {};
        assert_int_equal(webhook_render("[{{.Hostname}}|{{.IPAddrV6}}]", &empty, &out, NULL), 0);
        assert_string_equal(out, "[|]");
        _cleanup_free_ char *out2 = NULL;
        assert_int_equal(webhook_render(NULL, &vals, &out2, NULL), 0);
        assert_string_equal(out2, "");
}

/* The event data: {{.Stage}} and {{.Percent}} (PROGRESS), {{.Report}} and the result's fields
 * (SUCCEEDED, FAILED); empty for the events that do not have them. */
static void test_render_event(void **state) {
        struct webhook_values v = vals;
        _cleanup_free_ char *out = NULL, *none = NULL;
        const char *tmpl = "{\"stage\": \"{{.Stage}}\", \"percent\": \"{{.Percent}}\", \"host\": \"{{.Hostname}}\", "
                           "\"report\": {{.Report}}, \"r\": \"{{.Result}}\", \"e\": \"{{.Error}}\", "
                           "\"v\": \"{{.HarvesterVersion}}\", \"c\": \"{{.ISOChecksum}}\"}";
        v.ev = (struct webhook_event_data) {
                .stage = "iso", .percent = "40", .report = "{\"result\":\"failed\"}", .result = "failed",
                .error = "iso: checksum mismatch", .harvester_version = "v1.1.2", .iso_checksum = "sha512:ab",
        };
        assert_int_equal(webhook_render(tmpl, &v, &out, NULL), 0);
        assert_string_equal(out, "{\"stage\": \"iso\", \"percent\": \"40\", \"host\": \"node1\", "
                                 "\"report\": {\"result\":\"failed\"}, \"r\": \"failed\", "
                                 "\"e\": \"iso: checksum mismatch\", \"v\": \"v1.1.2\", \"c\": \"sha512:ab\"}");
        assert_int_equal(webhook_render("[{{.Stage}}|{{.Percent}}|{{.Report}}]", &vals, &none, NULL), 0);
        assert_string_equal(none, "[||]");
}

static void test_render_invalid(void **state) {
        static const char *const bad[] = {
                "{{.Hostname", "x {{", "{{if .Hostname}}y{{end}}", "{{.}}", "{{ Hostname }}",
                "{{.Hostname | printf \"%s\"}}", "{{.Host.Name}}", "{{}}", "{{-.Hostname}}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *out = NULL;
                const char *err = NULL;
                assert_int_equal(webhook_render(bad[i], &vals, &out, &err), -EINVAL);
                assert_null(out);
                assert_non_null(err);
        }
}

static char *root;

static void mkiface(const char *name, const char *addr) {
        _cleanup_free_ char *d = strdup_printf("%s/net/%s", root, name);
        assert_int_equal(mkdir(d, 0755), 0);
        _cleanup_free_ char *line = strdup_printf("%s\n", addr);
        assert_int_equal(test_write_file(d, "address", line, strlen(line)), 0);
}

static int setup(void **state) {
        if (test_mkdtemp(&root) < 0)
                return -1;
        _cleanup_free_ char *net = strdup_printf("%s/net", root);
        _cleanup_free_ char *proc = strdup_printf("%s/proc", root);
        if (mkdir(net, 0755) < 0 || mkdir(proc, 0755) < 0)
                return -1;
        return 0;
}

static int teardown(void **state) {
        (void)test_rm_rf(root);
        free(root);
        return 0;
}

static char *pick(const struct mgmt_interface *m) {
        _cleanup_free_ char *net = strdup_printf("%s/net", root);
        _cleanup_free_ char *proc = strdup_printf("%s/proc", root);
        char *r = NULL;
        int k = webhook_mgmt_interface(m, net, proc, &r);
        if (k == -ENOENT)
                return NULL;
        assert_int_equal(k, 0);
        return r;
}

static void test_mgmt_interface(void **state) {
        _cleanup_free_ char *proc = strdup_printf("%s/proc", root);
        struct net_interface ifs[] = {
                { .name = (char[]){ "ens9" } },
                { .hw_addr = (char[]){ "52:54:00:AA:BB:CC" } },
                { .name = (char[]){ "ens3" } },
        };
        struct mgmt_interface m = { .interfaces = ifs, .n_interfaces = ELEMENTSOF(ifs) };

        /* nothing at all */
        assert_null(pick(&m));

        /* the default route: lowest metric, up, 0.0.0.0/0 */
        static const char route[] =
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
                "eth9\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
                "eth2\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n"
                "eth1\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                "eth0\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_int_equal(test_write_file(proc, "route", route, strlen(route)), 0);
        _cleanup_free_ char *r1 = pick(&m);
        assert_string_equal(r1, "eth1");

        /* without an IPv4 default route: the IPv6 one (not lo, not reject) */
        static const char route_nodefault[] =
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
                "eth9\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_int_equal(test_write_file(proc, "route", route_nodefault, strlen(route_nodefault)), 0);
        static const char route6[] =
                "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
                "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth6\n";
        assert_int_equal(test_write_file(proc, "ipv6_route", route6, strlen(route6)), 0);
        _cleanup_free_ char *r6 = pick(&m);
        assert_string_equal(r6, "eth6");

        /* an interface found by hw_addr (case-insensitive) wins over the default route */
        mkiface("ens7", "52:54:00:aa:bb:cc");
        mkiface("ens4", "52:54:00:00:00:04");
        _cleanup_free_ char *r2 = pick(&m);
        assert_string_equal(r2, "ens7");

        /* by name, in the order given: ens9 comes first */
        mkiface("ens3", "52:54:00:00:00:03");
        mkiface("ens9", "52:54:00:00:00:09");
        _cleanup_free_ char *r3 = pick(&m);
        assert_string_equal(r3, "ens9");

        /* mgmt-br wins when it exists */
        mkiface("mgmt-br", "52:54:00:00:00:09");
        _cleanup_free_ char *r4 = pick(&m);
        assert_string_equal(r4, "mgmt-br");

        /* no configured interfaces: mgmt-br still */
        _cleanup_free_ char *r5 = pick(NULL);
        assert_string_equal(r5, "mgmt-br");

        /* a name that tries to leave the directory is not an interface */
        _cleanup_free_ char *mb = strdup_printf("%s/net/mgmt-br", root);
        assert_int_equal(test_rm_rf(mb), 0);
        struct net_interface evil[] = { { .name = (char[]){ ".." } } };
        struct mgmt_interface me = { .interfaces = evil, .n_interfaces = 1 };
        _cleanup_free_ char *r7 = pick(&me);
        assert_string_equal(r7, "eth6");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_render),
                cmocka_unit_test(test_render_event),
                cmocka_unit_test(test_render_invalid),
                cmocka_unit_test(test_mgmt_interface),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
