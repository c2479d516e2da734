/* SPDX-License-Identifier: Apache-2.0 */
/* The schema: aliases, unknown keys, types and their errors (with positions), coercion of kernel
 * arguments, every precedence case of the merge, printing (YAML and JSON, read back), secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cmdline.h"
#include "helpers.h"
#include "validate.h"
#include "yamlload.h"

/* Builds a configuration; the test decides what problems it expects. */
static struct config *build(const char *cmdline, const char *yaml, struct diags *d) {
        struct config *c = NULL;
        *d = (struct diags){};
        assert_int_equal(from_text(cmdline, yaml, d, &c), 0);
        assert_non_null(c);
        dump_diags(d);
        return c;
}

static const struct diag *problem_for(const struct diags *d, const char *path) {
        const struct diag *g = diags_find(d, path, false);
        if (!g)
                print_message("no problem recorded for %s\n", path);
        assert_non_null(g);
        return g;
}

static void test_table_lookup(void **state) {
        const struct schema_field *f = schema_find("install.management_interface.vlan_id");
        assert_non_null(f);
        assert_string_equal(f->name, "vlan_id");
        assert_int_equal(f->type, ST_INT);
        assert_non_null(schema_find("install.webhooks[0].basic_auth.password"));
        assert_true(schema_find("install.webhooks[0].basic_auth.password")->flags & SF_SECRET);
        assert_true(schema_find("token")->flags & SF_SECRET);
        assert_true(schema_find("os.password")->flags & SF_SECRET);
        assert_true(schema_find("install.iso_url")->flags & SF_URL);
        assert_null(schema_find("install.nope"));
        /* Every key REFERENCE.md section 2 lists (and the extensions of the brief) is in the table. */
        static const char *const keys[] = {
                "scheme_version", "server_url", "token", "sans", "system_settings", "runtime_version",
                "rancher_version", "os.hostname", "os.ssh_authorized_keys", "os.password", "os.ntp_servers",
                "os.dns_nameservers", "os.labels", "os.modules", "os.sysctls", "os.environment",
                "os.write_files[0].path", "os.write_files[0].content", "os.write_files[0].encoding",
                "os.write_files[0].owner", "os.write_files[0].permissions", "os.after_install_chroot_commands",
                "os.persistent_state_paths", "os.additional_kernel_arguments", "os.sshd.sftp",
                "os.sshd.disable_password_auth", "install.automatic", "install.mode",
                "install.management_interface.interfaces[0].name",
                "install.management_interface.interfaces[0].hw_addr", "install.management_interface.method",
                "install.management_interface.ip", "install.management_interface.subnet_mask",
                "install.management_interface.gateway", "install.management_interface.bond_options",
                "install.management_interface.mtu", "install.management_interface.vlan_id",
                "install.management_interface.default_route", "install.vip", "install.vip_mode",
                "install.vip_hw_addr", "install.device", "install.data_disk", "install.iso_url",
                "install.iso_checksum", "install.iso_checksum_url", "install.config_url",
                "install.config_url_timeout", "install.tty", "install.force_efi", "install.force_gpt",
                "install.force_mbr", "install.silent", "install.poweroff", "install.no_format", "install.debug",
                "install.skipchecks", "install.role", "install.wipe_all_disks", "install.wipe_disks_list",
                "install.persistent_partition_size", "install.webhooks[0].event", "install.webhooks[0].method",
                "install.webhooks[0].url", "install.webhooks[0].payload", "install.webhooks[0].headers",
                "install.webhooks[0].insecure", "install.webhooks[0].basic_auth.user", "install.addons",
                "install.harvester", "install.cluster_pod_cidr", "install.cluster_service_cidr",
                "install.cluster_dns",
        };
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                if (!schema_find(keys[i]))
                        print_message("missing: %s\n", keys[i]);
                assert_non_null(schema_find(keys[i]));
        }
}

static void test_aliases(void **state) {
        static const char yaml[] =
                "schemeVersion: 1\n"
                "serverUrl: https://10.0.0.1\n"
                "systemSettings: {log-level: debug}\n"
                "os:\n"
                "  sshAuthorizedKeys: [k1]\n"
                "  ntpServers: [n1]\n"
                "  dnsNameservers: [1.1.1.1]\n"
                "  writeFiles: [{path: /etc/x, permissions: '0600'}]\n"
                "  afterInstallChrootCommands: [c1]\n"
                "  persistentStatePaths: [/p]\n"
                "  additionalKernelArguments: quiet\n"
                "  sshd: {disablePasswordAuth: true}\n"
                "install:\n"
                "  managementInterface:\n"
                "    interfaces: [{hwAddr: 52:54:00:00:00:01}]\n"
                "    subnetMask: 255.255.255.0\n"
                "    bondOptions: {miimon: '200'}\n"
                "    vlanId: 5\n"
                "    defaultRoute: true\n"
                "  isoUrl: http://x/i.iso\n"
                "  vipMode: DHCP\n"
                "  vipHwAddr: 52:54:00:00:00:02\n"
                "  dataDisk: /dev/sdb\n"
                "  forceEfi: true\n"
                "  forceMbr: true\n"
                "  noFormat: true\n"
                "  configUrl: http://x/c.yaml\n"
                "  wipeAllDisks: true\n"
                "  wipeDisksList: [/dev/sdc]\n"
                "  persistentPartitionSize: 150Gi\n"
                "  skipChecks: true\n"
                "  webhooks: [{event: STARTED, url: 'http://h/', basicAuth: {user: u}}]\n"
                "  clusterPodCidr: 10.52.0.0/16\n"
                "  clusterServiceCIDR: 10.53.0.0/16\n"
                "  clusterDns: 10.53.0.10\n"
                "  power_off: true\n";
        struct diags d;
        _cleanup_config_ struct config *c = build(NULL, yaml, &d);
        assert_int_equal(diags_warnings(&d), 0); /* no alias is "unknown" */
        assert_int_equal(c->scheme_version, 1);
        assert_string_equal(c->server_url, "https://10.0.0.1:443");
        assert_string_equal(kvmap_get(&c->system_settings, "log-level"), "debug");
        assert_string_equal(c->os.ssh_authorized_keys[0], "k1");
        assert_string_equal(c->os.ntp_servers[0], "n1");
        assert_string_equal(c->os.dns_nameservers[0], "1.1.1.1");
        assert_int_equal(c->os.n_write_files, 1);
        assert_string_equal(c->os.write_files[0].permissions, "0600");
        assert_string_equal(c->os.after_install_chroot_commands[0], "c1");
        assert_string_equal(c->os.persistent_state_paths[0], "/p");
        assert_string_equal(c->os.additional_kernel_arguments, "quiet");
        assert_true(c->os.sshd_disable_password_auth);
        const struct mgmt_interface *m = &c->install.management_interface;
        assert_int_equal(m->n_interfaces, 1);
        assert_string_equal(m->interfaces[0].hw_addr, "52:54:00:00:00:01");
        assert_string_equal(m->subnet_mask, "255.255.255.0");
        assert_string_equal(kvmap_get(&m->bond_options, "miimon"), "200");
        assert_int_equal(m->vlan_id, 5);
        assert_true(m->default_route);
        assert_int_equal(strv_length(c->install.iso_urls), 1);
        assert_string_equal(c->install.iso_urls[0], "http://x/i.iso");
        assert_string_equal(c->install.vip_mode, "dhcp"); /* lowercased */
        assert_string_equal(c->install.vip_hw_addr, "52:54:00:00:00:02");
        assert_string_equal(c->install.data_disk, "/dev/sdb");
        assert_true(c->install.force_efi);
        assert_true(c->install.force_mbr);
        assert_false(c->install.force_gpt); /* as given: not derived from force_mbr */
        assert_true(c->install.no_format);
        assert_string_equal(c->install.config_url, "http://x/c.yaml");
        assert_true(c->install.wipe_all_disks);
        assert_string_equal(c->install.wipe_disks_list[0], "/dev/sdc");
        assert_string_equal(c->install.persistent_partition_size, "150Gi");
        assert_true(c->install.persistent_partition_bytes == 150ULL << 30);
        assert_true(c->install.skipchecks);
        assert_int_equal(c->install.n_webhooks, 1);
        assert_string_equal(c->install.webhooks[0].basic_auth_user, "u");
        assert_string_equal(c->install.cluster_pod_cidr, "10.52.0.0/16");
        assert_string_equal(c->install.cluster_service_cidr, "10.53.0.0/16");
        assert_string_equal(c->install.cluster_dns, "10.53.0.10");
        assert_true(c->install.poweroff);
        /* The tree keeps canonical names, so positions are found by them. */
        assert_string_equal(config_where(c, "install.vip_mode"), "config.yaml:21:12");
        diags_clear(&d);

        /* powerOff too, and loose spellings (any case, any underscores). */
        config_free(TAKE_PTR(c));
        struct config *c2 = build(NULL, "install: {powerOff: true, ISO_URL: http://x/, Force_GPT: true}\n", &d);
        assert_int_equal(diags_warnings(&d), 0);
        assert_true(c2->install.poweroff);
        assert_int_equal(strv_length(c2->install.iso_urls), 1);
        assert_string_equal(c2->install.iso_urls[0], "http://x/");
        config_free(c2);
        diags_clear(&d);
}

static void test_alias_given_twice(void **state) {
        struct diags d;
        _cleanup_config_ struct config *c = build(NULL, "install:\n  iso_url: http://a/\n  isoUrl: http://b/\n", &d);
        const struct diag *g = problem_for(&d, "install.iso_url");
        assert_non_null(strstr(g->message, "given twice"));
        assert_string_equal(g->where, "config.yaml:3:11");
        assert_int_equal(strv_length(c->install.iso_urls), 1);
        assert_string_equal(c->install.iso_urls[0], "http://a/");
        diags_clear(&d);
}

static void test_unknown_keys_warn(void **state) {
        struct diags d;
        _cleanup_config_ struct config *c =
                build("harvester.install.bogus=1 harvester.os.labels.any.thing=ok",
                      VALID_CREATE "  vip_hwaddress: x\nextra:\n  deep: 1\nos_extra: 2\n", &d);
        const struct diag *g = diags_find(&d, "install.vip_hwaddress", true);
        assert_non_null(g);
        assert_string_equal(g->message, "unknown key, ignored");
        assert_string_equal(g->where, "config.yaml:17:18");
        g = diags_find(&d, "extra", true);
        assert_non_null(g);
        assert_string_equal(g->where, "config.yaml:18:1");
        assert_null(diags_find(&d, "extra.deep", true)); /* one warning for the whole unknown subtree */
        assert_non_null(diags_find(&d, "os_extra", true));
        g = diags_find(&d, "install.bogus", true);
        assert_non_null(g);
        assert_string_equal(g->where, "kernel command line");
        /* Keys below a map of names are never "unknown". */
        assert_null(diags_find(&d, "os.labels.\"any.thing\"", true));
        assert_int_equal(diags_warnings(&d), 4);
        /* Warnings, not errors: the configuration is valid. */
        assert_int_equal(diags_errors(&d), 0);
        diags_clear(&d);

        /* Keys that Harvester knows and this installer does not use: a distinct warning. */
        config_free(TAKE_PTR(c));
        struct config *c2 = build(NULL, VALID_CREATE "  with_net_images: true\nos_unused: 1\nharvester_chart_version: 1.1\n",
                                  &d);
        g = diags_find(&d, "install.with_net_images", true);
        assert_non_null(g);
        assert_non_null(strstr(g->message, "not used by this installer"));
        assert_non_null(diags_find(&d, "harvester_chart_version", true));
        config_free(c2);
        diags_clear(&d);
}

static void test_type_errors_with_positions(void **state) {
        static const char yaml[] = "scheme_version: one\n"          /* 1 */
                                   "token: [a, b]\n"                /* 2 */
                                   "os:\n"                          /* 3 */
                                   "  hostname: {a: 1}\n"           /* 4 */
                                   "  ssh_authorized_keys:\n"       /* 5 */
                                   "    - ok\n"                     /* 6 */
                                   "    - {a: 1}\n"                 /* 7 */
                                   "  labels: [x]\n"                /* 8 */
                                   "  sysctls:\n"                   /* 9 */
                                   "    a: [1]\n"                   /* 10 */
                                   "  write_files: [str]\n"         /* 11 */
                                   "install:\n"                     /* 12 */
                                   "  automatic: maybe\n"           /* 13 */
                                   "  management_interface:\n"      /* 14 */
                                   "    mtu: 0x5dc\n"               /* 15 */
                                   "    vlan_id: 99999999999999999999\n"
                                   "  webhooks:\n"                  /* 17 */
                                   "    - event: STARTED\n"         /* 18 */
                                   "      headers: {a: {b: c}}\n"   /* 19 */
                                   "      insecure: 2\n"            /* 20 */
                                   "  force_efi: [true]\n"          /* 21 */
                                   "  device: /dev/sda\n";
        struct diags d;
        _cleanup_config_ struct config *c = build(NULL, yaml, &d);
        struct {
                const char *path, *where, *needle;
        } expect[] = {
                { "scheme_version", "config.yaml:1:17", "expected a decimal integer, got \"one\"" },
                { "token", "config.yaml:2:1", "expected a string, got a list" },
                { "os.hostname", "config.yaml:4:3", "expected a string, got a mapping" },
                { "os.ssh_authorized_keys[1]", "config.yaml:7:7", "expected a string, got a mapping" },
                { "os.labels", "config.yaml:8:3", "expected a mapping" },
                { "os.sysctls.a", "config.yaml:10:5", "expected a string value, got a list" },
                { "os.write_files[0]", "config.yaml:11:17", "expected a mapping, got a scalar" },
                { "install.automatic", "config.yaml:13:14", "expected true or false" },
                { "install.management_interface.mtu", "config.yaml:15:10", "expected a decimal integer" },
                { "install.management_interface.vlan_id", "config.yaml:16:14", "out of range" },
                { "install.webhooks[0].headers.a", "config.yaml:19:17", "expected a string or a list of strings" },
                { "install.webhooks[0].insecure", "config.yaml:20:17", "expected true or false" },
                { "install.force_efi", "config.yaml:21:3", "expected true or false, got a list" },
        };
        for (size_t i = 0; i < ELEMENTSOF(expect); i++) {
                const struct diag *g = problem_for(&d, expect[i].path);
                assert_string_equal(g->where, expect[i].where);
                if (!strstr(g->message, expect[i].needle))
                        print_message("%s: \"%s\" lacks \"%s\"\n", expect[i].path, g->message, expect[i].needle);
                assert_non_null(strstr(g->message, expect[i].needle));
                /* The formatted line: "path: message (file:line:col)". */
                _cleanup_free_ char *line = diag_format(g);
                _cleanup_free_ char *want = strdup_printf("%s: %s (%s)", g->path, g->message, g->where);
                assert_string_equal(line, want);
        }
        /* The good item of a list with a bad one is kept. */
        assert_string_equal(c->os.ssh_authorized_keys[0], "ok");
        diags_clear(&d);
}

static void test_cmdline_coercion(void **state) {
        static const char *const yes[] = { "true", "yes", "1", "on", "TRUE", "On" };
        static const char *const no[] = { "false", "no", "0", "off", "False" };
        for (size_t i = 0; i < ELEMENTSOF(yes) + ELEMENTSOF(no); i++) {
                bool want = i < ELEMENTSOF(yes);
                const char *v = want ? yes[i] : no[i - ELEMENTSOF(yes)];
                _cleanup_free_ char *line = strdup_printf("harvester.install.silent=%s harvester.install.debug=%s", v, v);
                struct diags d;
                _cleanup_config_ struct config *c = build(line, NULL, &d);
                assert_int_equal(problems_at(&d, "install.silent"), 0);
                assert_true(c->install.silent == want);
                assert_true(c->install.debug == want);
                diags_clear(&d);
        }
        struct diags d;
        _cleanup_config_ struct config *c =
                build("harvester.install.silent=maybe harvester.install.management_interface.mtu=0x5dc "
                      "harvester.install.management_interface.vlan_id=1e3 harvester.scheme_version=01 "
                      "harvester.install.config_url_timeout=30 harvester.install.management_interface.mtu=1500 "
                      "harvester.install.management_interface.vlan_id=\" 5\" harvester.os.ntp_servers=n1",
                      NULL, &d);
        const struct diag *g = problem_for(&d, "install.silent");
        assert_string_equal(g->where, "kernel command line");
        assert_non_null(strstr(g->message, "\"maybe\""));
        g = problem_for(&d, "install.management_interface.vlan_id");
        assert_non_null(strstr(g->message, "expected a decimal integer"));
        /* Repeated scalar key: the last one wins, with a warning. */
        assert_int_equal(c->install.management_interface.mtu, 1500);
        assert_non_null(diags_find(&d, "install.management_interface.mtu", true));
        assert_int_equal(c->scheme_version, 1); /* "01" is decimal */
        assert_int_equal(c->install.config_url_timeout, 30);
        /* A single value where a list is expected: a one-item list. */
        assert_int_equal(strv_length(c->os.ntp_servers), 1);
        assert_string_equal(c->os.ntp_servers[0], "n1");
        diags_clear(&d);
}

static void test_single_value_lists(void **state) {
        struct diags d;
        _cleanup_config_ struct config *c =
                build(NULL,
                      "os:\n  ssh_authorized_keys: ssh-ed25519 AAAA\n  dns_nameservers: 1.1.1.1\n"
                      "install:\n  webhooks: {event: FAILED, url: 'http://h/'}\n"
                      "  management_interface: {interfaces: {name: ens5}}\n",
                      &d);
        assert_int_equal(strv_length(c->os.ssh_authorized_keys), 1);
        assert_string_equal(c->os.ssh_authorized_keys[0], "ssh-ed25519 AAAA");
        assert_int_equal(strv_length(c->os.dns_nameservers), 1);
        assert_int_equal(c->install.n_webhooks, 1);
        assert_string_equal(c->install.webhooks[0].event, "FAILED");
        assert_int_equal(c->install.management_interface.n_interfaces, 1);
        assert_string_equal(c->install.management_interface.interfaces[0].name, "ens5");
        diags_clear(&d);

        /* Interface short forms in the file too. */
        config_free(TAKE_PTR(c));
        struct config *c2 = build(NULL, "install:\n  management_interface:\n    interfaces: [ens3, 'hwAddr:52:54:00:00:00:01,ens4', 'bad:x']\n", &d);
        const struct mgmt_interface *m = &c2->install.management_interface;
        assert_int_equal(m->n_interfaces, 2);
        assert_string_equal(m->interfaces[0].name, "ens3");
        assert_string_equal(m->interfaces[1].name, "ens4");
        assert_string_equal(m->interfaces[1].hw_addr, "52:54:00:00:00:01");
        const struct diag *g = problem_for(&d, "install.management_interface.interfaces[2]");
        assert_string_equal(g->where, "config.yaml:3:57");
        config_free(c2);
        diags_clear(&d);
}

static void test_dotted_labels(void **state) {
        struct diags d;
        _cleanup_config_ struct config *c =
                build("harvester.os.labels.topology.kubernetes.io/region=r1",
                      VALID_CREATE "os:\n  labels:\n    topology.kubernetes.io/zone: zone1\n    \"a.b\": c\n", &d);
        /* os appears twice in this text: that is a duplicate key (first kept). */
        assert_non_null(problem_for(&d, "os"));
        diags_clear(&d);
        config_free(TAKE_PTR(c));

        c = build("harvester.os.labels.topology.kubernetes.io/region=r1",
                  "os:\n  password: x\n  labels:\n    topology.kubernetes.io/zone: zone1\n    \"a.b\": c\n    n: 5\n",
                  &d);
        assert_string_equal(kvmap_get(&c->os.labels, "topology.kubernetes.io/zone"), "zone1");
        assert_string_equal(kvmap_get(&c->os.labels, "topology.kubernetes.io/region"), "r1");
        assert_string_equal(kvmap_get(&c->os.labels, "a.b"), "c");
        assert_string_equal(kvmap_get(&c->os.labels, "n"), "5"); /* map values become strings */
        assert_string_equal(config_where(c, "os.labels.\"topology.kubernetes.io/zone\""), "config.yaml:4:34");
        assert_string_equal(config_where(c, "os.labels.\"topology.kubernetes.io/region\""), "kernel command line");
        diags_clear(&d);
}

/* ---- Precedence ---- */

static void test_merge_scalars(void **state) {
        struct diags d;
        _cleanup_config_ struct config *c =
                build("harvester.install.mode=join harvester.install.device=/dev/vda harvester.install.automatic=false",
                      VALID_CREATE, &d);
        assert_string_equal(c->install.mode, "join");
        assert_string_equal(c->install.device, "/dev/vda");
        assert_false(c->install.automatic);
        assert_string_equal(config_where(c, "install.mode"), "kernel command line");
        assert_string_equal(config_where(c, "install.vip"), "config.yaml:15:8");
        assert_string_equal(c->install.vip, "10.0.0.99"); /* untouched file value */
        diags_clear(&d);
}

static void test_merge_lists(void **state) {
        struct diags d;
        _cleanup_config_ struct config *c =
                build("harvester.os.ssh_authorized_keys=k-cmd harvester.os.ssh_authorized_keys=k-both "
                      "harvester.os.ntp_servers=n-cmd "
                      "harvester.install.management_interface.interfaces=ens5 "
                      "harvester.install.management_interface.interfaces=ens9",
                      "os:\n  ssh_authorized_keys: [k-file1, k-both, k-file2, k-file1]\n  ntp_servers: n-file\n"
                      "install:\n  management_interface:\n    interfaces: [{name: ens5}, {name: ens6}]\n",
                      &d);
        char **k = c->os.ssh_authorized_keys;
        /* Command-line entries first, then file entries; a file entry equal to a command-line entry
         * is dropped; the file's own repeats are the file's business and kept. */
        assert_int_equal(strv_length(k), 5);
        assert_string_equal(k[0], "k-cmd");
        assert_string_equal(k[1], "k-both");
        assert_string_equal(k[2], "k-file1");
        assert_string_equal(k[3], "k-file2");
        assert_string_equal(k[4], "k-file1");
        assert_int_equal(strv_length(c->os.ntp_servers), 2);
        assert_string_equal(c->os.ntp_servers[0], "n-cmd");
        assert_string_equal(c->os.ntp_servers[1], "n-file");
        /* Lists of maps: the same interface given in both is there once. */
        const struct mgmt_interface *m = &c->install.management_interface;
        assert_int_equal(m->n_interfaces, 3);
        assert_string_equal(m->interfaces[0].name, "ens5");
        assert_string_equal(m->interfaces[1].name, "ens9");
        assert_string_equal(m->interfaces[2].name, "ens6");
        assert_string_equal(config_where(c, "install.management_interface.interfaces[0]"), "kernel command line");
        assert_string_equal(config_where(c, "install.management_interface.interfaces[2].name"), "config.yaml:6:39");
        diags_clear(&d);
}

static char *print_to_string(const struct config *c, bool json, bool show);

/* install.iso_url: a string, or a list of mirrors (YAML list, or the kernel argument repeated), in
 * order; a kernel-line list replaces the file's (the mirrors of one release are named together). */
static void test_iso_url_mirrors(void **state) {
        struct diags d;
        _cleanup_config_ struct config *c =
                build(NULL, "install:\n  iso_url:\n    - http://a/h.iso\n    - https://u:pw@b/h.iso\n", &d);
        assert_int_equal(diags_warnings(&d), 0);
        assert_int_equal(strv_length(c->install.iso_urls), 2);
        assert_string_equal(c->install.iso_urls[0], "http://a/h.iso");
        assert_string_equal(c->install.iso_urls[1], "https://u:pw@b/h.iso");
        assert_string_equal(config_where(c, "install.iso_url[1]"), "config.yaml:4:7");
        diags_clear(&d);

        /* Repeated on the kernel line: a list in the order given, not "the last one wins". */
        _cleanup_config_ struct config *k =
                build("harvester.install.iso_url=http://m1/h.iso harvester.install.iso_url=http://m2/h.iso "
                      "harvester.install.iso_url=http://m3/h.iso",
                      "install:\n  iso_url: [http://file1/h.iso, http://m2/h.iso]\n", &d);
        assert_int_equal(diags_warnings(&d), 0);
        assert_int_equal(strv_length(k->install.iso_urls), 3);
        assert_string_equal(k->install.iso_urls[0], "http://m1/h.iso");
        assert_string_equal(k->install.iso_urls[1], "http://m2/h.iso");
        assert_string_equal(k->install.iso_urls[2], "http://m3/h.iso");
        assert_string_equal(config_where(k, "install.iso_url[2]"), "kernel command line");
        diags_clear(&d);

        /* One kernel argument over a file list: that one URL. */
        _cleanup_config_ struct config *o =
                build("harvester.install.iso_url=http://cmd/h.iso", "install:\n  iso_url: [http://f1/h.iso, http://f2/h.iso]\n",
                      &d);
        assert_int_equal(strv_length(o->install.iso_urls), 1);
        assert_string_equal(o->install.iso_urls[0], "http://cmd/h.iso");
        diags_clear(&d);

        /* Printed: one URL as the string Harvester's key is, several as a list, passwords hidden. */
        _cleanup_free_ char *one = print_to_string(o, false, false), *two = print_to_string(c, false, false);
        assert_non_null(strstr(one, "iso_url: \"http://cmd/h.iso\""));
        assert_non_null(strstr(two, "http://a/h.iso"));
        assert_non_null(strstr(two, "https://u:"));
        assert_null(strstr(two, ":pw@"));
}

static void test_merge_maps(void **state) {
        struct diags d;
        _cleanup_config_ struct config *c =
                build("harvester.os.labels.zone=cmd harvester.os.labels.rack=r1 "
                      "harvester.install.management_interface.bond_options.miimon=200 "
                      "harvester.install.management_interface.method=STATIC "
                      "harvester.install.harvester.storage.class=fast",
                      "os:\n  labels: {zone: file, row: a}\n"
                      "install:\n  management_interface:\n    method: dhcp\n    mtu: 1500\n"
                      "    bond_options: {mode: balance-tlb, miimon: 100}\n"
                      "  harvester:\n    storage: {class: slow, size: 10}\n    other: 1\n",
                      &d);
        assert_int_equal(c->os.labels.n, 3);
        assert_string_equal(kvmap_get(&c->os.labels, "zone"), "cmd");
        assert_string_equal(kvmap_get(&c->os.labels, "row"), "a");
        assert_string_equal(kvmap_get(&c->os.labels, "rack"), "r1");
        const struct mgmt_interface *m = &c->install.management_interface;
        assert_string_equal(kvmap_get(&m->bond_options, "mode"), "balance-tlb");
        assert_string_equal(kvmap_get(&m->bond_options, "miimon"), "200");
        /* Nested structs merge member by member. */
        assert_string_equal(m->method, "static"); /* lowercased */
        assert_int_equal(m->mtu, 1500);
        /* Opaque trees (chart values) merge key by key too. */
        const struct node *h = c->install.harvester;
        assert_non_null(h);
        assert_string_equal(node_lookup(h, "storage.class")->value, "fast");
        assert_string_equal(node_lookup(h, "storage.size")->value, "10");
        assert_string_equal(node_lookup(h, "other")->value, "1");
        diags_clear(&d);
}

static void test_merge_mode_override(void **state) {
        _cleanup_free_ char *create = fixture_text("config-create.yaml");
        _cleanup_free_ char *line = fixture_text("cmdline-create.txt");
        _cleanup_free_ char *join = strdup_printf("%s harvester.install.mode=join", line);
        struct diags d;
        _cleanup_config_ struct config *c = build(join, create, &d);
        assert_string_equal(c->install.mode, "join");
        /* Validated as a join: server_url is required. */
        const struct diag *g = problem_for(&d, "server_url");
        assert_non_null(strstr(g->message, "required for mode join"));
        assert_int_equal(diags_errors(&d), 1);
        diags_clear(&d);
}

static void test_merge_direct(void **state) {
        /* schema_merge() alone: NULL sides, a command-line map over a file scalar. */
        struct node *m = NULL;
        assert_int_equal(schema_merge(NULL, NULL, &m), 0);
        assert_null(m);

        struct node *ct = NULL, *ft = NULL;
        struct boot_args b;
        struct diags d = {};
        assert_int_equal(cmdline_parse("harvester.install.mode=join", &ct, &b, &d), 0);
        boot_args_clear(&b);
        assert_int_equal(schema_merge(ct, NULL, &m), 0);
        assert_string_equal(node_lookup(m, "install.mode")->value, "join");
        node_free(m);

        assert_int_equal(cmdline_parse("harvester.os.labels.a=1", &ct, &b, &d), 0);
        boot_args_clear(&b);
        assert_int_equal(yaml_load("os: 5\n", 6, "f.yaml", &ft, &d), 0);
        assert_int_equal(schema_merge(ct, ft, &m), 0);
        /* Kinds differ: the command line wins, whole. */
        assert_int_equal(node_lookup(m, "os")->kind, NODE_MAP);
        assert_string_equal(node_lookup(m, "os.labels.a")->value, "1");
        node_free(m);
        assert_int_equal(d.n, 0);
}

/* ---- Printing ---- */

static char *print_to_string(const struct config *c, bool json, bool show) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        assert_int_equal(config_print(c, f, json, show), 0);
        fclose(f);
        return buf;
}

#define FULL_YAML                                                                                        \
        VALID_CREATE                                                                                     \
        "  iso_checksum_url: https://user:UrlPass-9@h/sum\n"                                             \
        "  config_url: http://cfg:CfgPass-8@h/c.yaml\n"                                                  \
        "  webhooks:\n"                                                                                  \
        "    - event: started\n"                                                                         \
        "      method: post\n"                                                                           \
        "      url: https://hook:HookUrlPass-7@h/{{.Hostname}}\n"                                        \
        "      payload: '{\"n\": \"{{.Hostname}}\"}'\n"                                                  \
        "      headers: {Content-Type: application/json, X-Multi: [a, b]}\n"                             \
        "      basic_auth: {user: u, password: HookPass-6}\n"                                            \
        "  addons:\n"                                                                                    \
        "    rancher_monitoring: {enabled: true, values_content: \"a: 1\\n\"}\n"                         \
        "  persistent_partition_size: 150Gi\n"                                                           \
        "  management_interface:\n"                                                                      \
        "    interfaces: [{name: ens5}]\n"

/* FULL_YAML gives management_interface and iso_checksum_url twice: drop the first of each
 * (VALID_CREATE's). */
static char *full_yaml(void) {
        static const char *const firsts[] = { "  management_interface:\n    interfaces:\n      - name: ens5\n",
                                              "  iso_checksum_url: http://10.0.0.10/harvester.sha512\n" };
        char *yaml = strdup(FULL_YAML);
        assert_non_null(yaml);
        for (size_t i = 0; i < ELEMENTSOF(firsts); i++) {
                char *first = strstr(yaml, firsts[i]);
                assert_non_null(first);
                size_t k = strlen(firsts[i]);
                memmove(first, first + k, strlen(first + k) + 1);
        }
        return yaml;
}

static void check_secrets_hidden(const char *out) {
        static const char *const secrets[] = { "Token-123", "Secret-Pass-42", "UrlPass-9", "CfgPass-8",
                                               "HookUrlPass-7", "HookPass-6" };
        for (size_t i = 0; i < ELEMENTSOF(secrets); i++) {
                if (strstr(out, secrets[i]))
                        print_message("secret %s printed\n", secrets[i]);
                assert_null(strstr(out, secrets[i]));
        }
}

static void test_print_yaml_roundtrip(void **state) {
        struct diags d;
        _cleanup_free_ char *yaml = full_yaml();
        _cleanup_config_ struct config *c = build("harvester.os.labels.topology.kubernetes.io/zone=z1", yaml, &d);
        /* The keys this installer refuses (validate.c) are still bound and printed. */
        assert_int_equal(diags_errors(&d), problems_at(&d, "install.addons") +
                                                   problems_at(&d, "os.after_install_chroot_commands"));
        diags_clear(&d);

        _cleanup_free_ char *out = print_to_string(c, false, false);
        print_message("%s", out);
        check_secrets_hidden(out);
        assert_non_null(strstr(out, "token: \"<redacted>\"\n"));
        assert_non_null(strstr(out, "  password: \"<redacted>\"\n"));
        assert_non_null(strstr(out, "https://user:<redacted>@h/sum"));
        assert_non_null(strstr(out, "  hostname: \"node1\"\n"));
        assert_non_null(strstr(out, "    \"topology.kubernetes.io/zone\": \"z1\"\n"));
        /* Defaults are filled in. */
        assert_non_null(strstr(out, "  config_url_timeout: 600\n"));
        assert_non_null(strstr(out, "      mode: \"active-backup\"\n"));
        assert_non_null(strstr(out, "  role: \"default\"\n"));

        /* The printed YAML reads back to the same configuration. */
        struct node *t = NULL;
        assert_int_equal(yaml_load(out, strlen(out), "printed.yaml", &t, &d), 0);
        assert_int_equal(schema_canonicalize(t, "printed.yaml", &d), 0);
        struct config back = {};
        assert_int_equal(schema_bind(t, &back, "printed.yaml", &d), 0);
        dump_diags(&d);
        assert_int_equal(d.n, 0);
        assert_string_equal(back.os.hostname, "node1");
        assert_string_equal(back.token, "<redacted>");
        assert_string_equal(kvmap_get(&back.os.labels, "topology.kubernetes.io/zone"), "z1");
        assert_int_equal(back.install.n_webhooks, 1);
        assert_string_equal(back.install.webhooks[0].event, "STARTED");
        assert_string_equal(back.install.webhooks[0].method, "POST");
        assert_string_equal(back.install.webhooks[0].payload, "{\"n\": \"{{.Hostname}}\"}");
        assert_int_equal(back.install.webhooks[0].n_headers, 2);
        assert_string_equal(back.install.webhooks[0].headers[1].values[1], "b");
        assert_true(node_equal(back.install.addons, c->install.addons));
        assert_int_equal(back.install.config_url_timeout, 600);
        assert_true(back.install.automatic);
        assert_int_equal(back.scheme_version, 1);
        schema_free_fields(&back);
        node_free(t);
        diags_clear(&d);

        /* --show-secrets prints them. */
        _cleanup_free_ char *shown = print_to_string(c, false, true);
        assert_non_null(strstr(shown, "Token-123"));
        assert_non_null(strstr(shown, "Secret-Pass-42"));
        assert_non_null(strstr(shown, "HookPass-6"));
        assert_non_null(strstr(shown, "UrlPass-9"));
}

static void test_print_json_parse_back(void **state) {
        struct diags d;
        _cleanup_config_ struct config *c = build(NULL, VALID_CREATE "  webhooks: [{event: FAILED, url: 'http://h/', payload: \"ttyS0\\t\\u00e9\\u0001\"}]\n", &d);
        assert_int_equal(diags_errors(&d), 0);
        diags_clear(&d);
        _cleanup_free_ char *out = print_to_string(c, true, false);
        print_message("%s", out);
        check_secrets_hidden(out);
        assert_true(out[0] == '{');
        assert_non_null(strstr(out, "\"token\": \"<redacted>\""));
        assert_non_null(strstr(out, "\"automatic\": true"));
        assert_non_null(strstr(out, "\"mtu\": 0"));
        assert_non_null(strstr(out, "\"server_url\": null"));
        assert_non_null(strstr(out, "\"sans\": []"));
        assert_non_null(strstr(out, "\"labels\": {}"));
        /* Control characters escaped, UTF-8 kept. */
        assert_non_null(strstr(out, "\"payload\": \"ttyS0\\t\xc3\xa9\\u0001\""));
        /* JSON is YAML: parse it back with the loader and compare. */
        struct node *t = NULL;
        assert_int_equal(yaml_load(out, strlen(out), "printed.json", &t, &d), 0);
        assert_int_equal(d.n, 0);
        assert_string_equal(node_lookup(t, "os.hostname")->value, "node1");
        assert_true(node_lookup(t, "os.hostname")->quoted);
        assert_string_equal(node_lookup(t, "install.management_interface.interfaces[0].name")->value, "ens5");
        assert_string_equal(node_lookup(t, "install.management_interface.bond_options.miimon")->value, "100");
        assert_string_equal(node_lookup(t, "install.config_url_timeout")->value, "600");
        assert_false(node_lookup(t, "install.config_url_timeout")->quoted);
        assert_true(node_lookup(t, "install.data_disk")->null);
        assert_string_equal(node_lookup(t, "install.webhooks[0].payload")->value, "ttyS0\t\xc3\xa9\x01");
        /* Every top-level key of the schema is printed. */
        for (const struct schema_field *f = schema_root()->fields; f->name; f++)
                if (f->type != ST_IGNORED)
                        assert_non_null(node_get(t, f->name));
        node_free(t);
}

static void test_url_passwords(void **state) {
        _cleanup_free_ char *p = url_userinfo_password("https://u:p%40ss@host:8443/x?y=@z");
        assert_string_equal(p, "p%40ss");
        _cleanup_free_ char *h = url_hide_password("https://u:p%40ss@host:8443/x?y=@z");
        assert_string_equal(h, "https://u:<redacted>@host:8443/x?y=@z");
        assert_null(url_userinfo_password("https://u@host/"));
        assert_null(url_userinfo_password("https://host/a@b"));
        assert_null(url_userinfo_password("not a url"));
        _cleanup_free_ char *h2 = url_hide_password("http://host/x");
        assert_string_equal(h2, "http://host/x");
}

static void collect(const char *s, void *userdata) {
        assert_int_equal(strv_push(userdata, s), 0);
}

static void test_secrets_listed_and_registered(void **state) {
        struct diags d;
        _cleanup_free_ char *yaml = full_yaml();
        _cleanup_config_ struct config *c = build("harvester.server_url=https://a:SrvPass-5@10.0.0.1", yaml, &d);
        diags_clear(&d);
        _cleanup_strv_free_ char **l = NULL;
        schema_foreach_secret(c, collect, &l);
        static const char *const want[] = { "SrvPass-5", "Token-123", "Secret-Pass-42", "UrlPass-9", "CfgPass-8",
                                            "HookUrlPass-7", "HookPass-6" };
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                if (!strv_contains(l, want[i]))
                        print_message("not listed: %s\n", want[i]);
                assert_true(strv_contains(l, want[i]));
        }
        assert_int_equal(strv_length(l), ELEMENTSOF(want));
        /* Registered: the log redacts every one of them. */
        log_forget_secrets();
        config_register_secrets(c);
        _cleanup_free_ char *r = log_redact("Token-123 HookPass-6 https://hook:HookUrlPass-7@h/ SrvPass-5");
        assert_string_equal(r, "<redacted> <redacted> https://hook:<redacted>@h/ <redacted>");
        log_forget_secrets();
}

static void test_paths(void **state) {
        _cleanup_free_ char *a = path_join("os.labels", "topology.kubernetes.io/zone");
        assert_string_equal(a, "os.labels.\"topology.kubernetes.io/zone\"");
        _cleanup_free_ char *b = path_join("", "install");
        assert_string_equal(b, "install");
        _cleanup_free_ char *q = path_join("x", "a\"b\\c");
        assert_string_equal(q, "x.\"a\\\"b\\\\c\"");
        _cleanup_free_ char *i = path_index("install.webhooks", 3);
        assert_string_equal(i, "install.webhooks[3]");

        struct node *t = NULL;
        struct diags d = {};
        static const char y[] = "x:\n  \"a\\\"b\\\\c\": 1\n  l: [p, {q: r}]\n  s: one\n";
        assert_int_equal(yaml_load(y, strlen(y), "p.yaml", &t, &d), 0);
        assert_string_equal(node_lookup(t, q)->value, "1");
        assert_string_equal(node_lookup(t, "x.l[1].q")->value, "r");
        assert_string_equal(node_lookup(t, "x.s[0]")->value, "one"); /* a single value is item 0 */
        assert_null(node_lookup(t, "x.s[1]"));
        assert_null(node_lookup(t, "x.l[2]"));
        assert_null(node_lookup(t, "x.l[x]"));
        assert_null(node_lookup(t, "x.\"unterminated"));
        assert_null(node_lookup(t, "nope"));
        node_free(t);
}

static int teardown(void **state) {
        helpers_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table_lookup),
                cmocka_unit_test(test_aliases),
                cmocka_unit_test(test_alias_given_twice),
                cmocka_unit_test(test_unknown_keys_warn),
                cmocka_unit_test(test_type_errors_with_positions),
                cmocka_unit_test(test_cmdline_coercion),
                cmocka_unit_test(test_single_value_lists),
                cmocka_unit_test(test_dotted_labels),
                cmocka_unit_test(test_merge_scalars),
                cmocka_unit_test(test_merge_lists),
                cmocka_unit_test(test_iso_url_mirrors),
                cmocka_unit_test(test_merge_maps),
                cmocka_unit_test(test_merge_mode_override),
                cmocka_unit_test(test_merge_direct),
                cmocka_unit_test(test_print_yaml_roundtrip),
                cmocka_unit_test(test_print_json_parse_back),
                cmocka_unit_test(test_url_passwords),
                cmocka_unit_test(test_secrets_listed_and_registered),
                cmocka_unit_test(test_paths),
        };
        return cmocka_run_group_tests(tests, NULL, teardown);
}
