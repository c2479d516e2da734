/* SPDX-License-Identifier: Apache-2.0 */
/* Validation: every rule breaks a valid configuration one at a time and must be reported with its
 * key path and where the value came from; valid variants must pass; server_url normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <crypt.h>

#include "helpers.h"
#include "schema.h"
#include "validate.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* VALID_CREATE without some lines, for rules that need a key to be absent. */
static char *without(const char *line) {
        char *y = strdup(VALID_CREATE);
        assert_non_null(y);
        char *p = strstr(y, line);
        assert_non_null(p);
        memmove(p, p + strlen(line), strlen(p + strlen(line)) + 1);
        return y;
}

struct config_case {
        const char *cmdline;   /* applied over the YAML */
        const char *yaml;      /* NULL: VALID_CREATE */
        const char *path;      /* the problem expected */
        const char *needle;    /* in its message */
        const char *where;     /* NULL: not checked */
};

static const struct config_case rule_cases[] = {
        { "harvester.scheme_version=2", NULL, "scheme_version", "must be 1, got 2", "kernel command line" },
        { "harvester.install.mode=upgrade", NULL, "install.mode", "unknown mode \"upgrade\"", "kernel command line" },
        { "harvester.install.mode=", NULL, "install.mode", "required", "not set" },
        { "harvester.server_url=https://10.0.0.1:443", NULL, "server_url", "must not be set for mode create",
          "kernel command line" },
        { "harvester.install.mode=join", NULL, "server_url", "required for mode join", "not set" },
        { "harvester.install.iso_url=", NULL, "install.iso_url", "required for an automatic install", "not set" },
        { "harvester.install.mode=join harvester.server_url=10.0.0.1 harvester.install.iso_url=", NULL,
          "install.iso_url", "required for an automatic install", NULL },
        { "harvester.token=", NULL, "token", "required", "not set" },
        { "harvester.token=t\xc3\xb6ken", NULL, "token", "holds characters Harvester refuses", "kernel command line" },
        { "harvester.os.password=", NULL, "os.password", "no password and no SSH key", "not set" },
        { "harvester.os.hostname=Node_1", NULL, "os.hostname", "\"Node_1\" is not a valid hostname", NULL },
        { "harvester.os.hostname=-node", NULL, "os.hostname", "not a valid hostname", NULL },
        { "harvester.os.hostname=a.-b", NULL, "os.hostname", "not a valid hostname", NULL },
        { "harvester.os.hostname=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL, "os.hostname",
          "not a valid hostname", NULL },
        { "harvester.install.vip=", NULL, "install.vip", "required for mode create", "not set" },
        { "harvester.install.vip=fd00::1", NULL, "install.vip", "not a valid IPv4 address", "kernel command line" },
        { "harvester.install.vip=10.0.0.256", NULL, "install.vip", "not a valid IPv4 address", NULL },
        { "harvester.install.vip_mode=none", NULL, "install.vip_mode", "unknown vip_mode \"none\"", NULL },
        { "harvester.install.vip_mode=", NULL, "install.vip_mode", "required for mode create", "not set" },
        { "harvester.install.vip_mode=DHCP", NULL, "install.vip_hw_addr", "required for vip_mode dhcp", "not set" },
        { "harvester.install.vip_mode=dhcp harvester.install.vip_hw_addr=52:54:00:zz:00:01", NULL,
          "install.vip_hw_addr", "not a valid MAC address", "kernel command line" },
        { "harvester.install.management_interface.method=static", NULL, "install.management_interface.ip",
          "required for method static", "not set" },
        { "harvester.install.management_interface.method=static", NULL, "install.management_interface.subnet_mask",
          "required for method static", "not set" },
        { "harvester.install.management_interface.method=static", NULL, "install.management_interface.gateway",
          "required for method static", "not set" },
        { "harvester.install.management_interface.method=static", NULL, "os.dns_nameservers",
          "at least one DNS server is required", "not set" },
        { "harvester.install.management_interface.method=static harvester.install.management_interface.ip=10.0.0.300",
          NULL, "install.management_interface.ip", "not a valid IPv4 address", NULL },
        { "harvester.install.management_interface.subnet_mask=255.0.255.0", NULL,
          "install.management_interface.subnet_mask", "not a valid IPv4 netmask", NULL },
        { "harvester.install.management_interface.gateway=gw", NULL, "install.management_interface.gateway",
          "not a valid IPv4 address", NULL },
        { "harvester.install.management_interface.method=manual", NULL, "install.management_interface.method",
          "unknown method \"manual\"", NULL },
        { "harvester.install.management_interface.mtu=100", NULL, "install.management_interface.mtu",
          "must be 0 (unset) or 576 to 9000, got 100", NULL },
        { "harvester.install.management_interface.mtu=9001", NULL, "install.management_interface.mtu",
          "got 9001", NULL },
        { "harvester.install.management_interface.vlan_id=4095", NULL, "install.management_interface.vlan_id",
          "must be 0 to 4094", NULL },
        { "harvester.install.management_interface.vlan_id=-1", NULL, "install.management_interface.vlan_id",
          "got -1", NULL },
        { "harvester.install.management_interface.bond_options.mode=fastest", NULL,
          "install.management_interface.bond_options.mode", "unknown bonding mode \"fastest\"", NULL },
        { "harvester.install.management_interface.bond_options.miimon=often", NULL,
          "install.management_interface.bond_options.miimon", "not a number of milliseconds", NULL },
        { NULL, "interfaces-missing", "install.management_interface.interfaces", "at least one management interface",
          "not set" },
        { NULL,
          "scheme_version: 1\ntoken: t\nos: {password: p}\ninstall:\n  mode: install\n  device: /dev/sda\n"
          "  management_interface:\n    interfaces: [{hw_addr: '52:54:00'}, {}, {name: 'a b'}]\n",
          "install.management_interface.interfaces[0].hw_addr", "not a valid MAC address", "config.yaml:8:28" },
        { NULL,
          "scheme_version: 1\ntoken: t\nos: {password: p}\ninstall:\n  mode: install\n  device: /dev/sda\n"
          "  management_interface:\n    interfaces: [{hw_addr: '52:54:00'}, {}, {name: 'a b'}]\n",
          "install.management_interface.interfaces[1]", "needs a name or a hw_addr", "config.yaml:8:41" },
        { NULL,
          "scheme_version: 1\ntoken: t\nos: {password: p}\ninstall:\n  mode: install\n  device: /dev/sda\n"
          "  management_interface:\n    interfaces: [{hw_addr: '52:54:00'}, {}, {name: 'a b'}]\n",
          "install.management_interface.interfaces[2].name", "not a valid interface name", NULL },
        { "harvester.os.labels.bad_key!=x", NULL, "os.labels.\"bad_key!\"", "not a valid Kubernetes label name",
          "kernel command line" },
        { "harvester.os.labels.ok=\"bad value\"", NULL, "os.labels.ok", "not a valid Kubernetes label value", NULL },
        { "harvester.os.labels.-x.io/zone=a", NULL, "os.labels.\"-x.io/zone\"", "label name", NULL },
        { "harvester.install.device=", NULL, "install.device", "required", "not set" },
        { "harvester.install.device=sda", NULL, "install.device", "\"sda\" is not a /dev/ path", NULL },
        { "harvester.install.device=/dev/", NULL, "install.device", "not a /dev/ path", NULL },
        { "harvester.install.data_disk=/dev/sda", NULL, "install.data_disk", "same disk as install.device",
          "kernel command line" },
        { "harvester.install.data_disk=sdb", NULL, "install.data_disk", "not a /dev/ path", NULL },
        /* Disk selectors (diskselect.c): the syntax is a configuration rule, the match a disk-stage one. */
        { "harvester.install.data_disk=sdb", NULL, "install.data_disk", "nor a disk selector (e.g. size>=100G", NULL },
        { "harvester.install.data_disk=size>=100X", NULL, "install.data_disk",
          "\"size>=100X\" is not a valid disk selector: \"100X\" in \"size>=100X\" is not a size", "kernel command line" },
        { "harvester.install.device=size>=100G,colour=red", NULL, "install.device",
          "not a valid disk selector: unknown field \"colour\" in \"colour=red\"", NULL },
        { "harvester.install.data_disk=bus=sata", NULL, "install.data_disk", "unknown bus \"sata\"", NULL },
        { "harvester.install.data_disk=rotational<true", NULL, "install.data_disk", "\"rotational\" takes = or != only", NULL },
        { "harvester.install.data_disk=size>=1G,,bus=ata", NULL, "install.data_disk", "an empty term", NULL },
        { "harvester.install.data_disk=size>=1G,", NULL, "install.data_disk", "an empty term", NULL },
        { "harvester.install.data_disk=removable=maybe", NULL, "install.data_disk", "\"maybe\" in \"removable=maybe\" is not true or false", NULL },
        { "harvester.install.data_disk=model=", NULL, "install.data_disk", "term \"model=\" has no value", NULL },
        { "harvester.install.data_disk=size~1G", NULL, "install.data_disk", "nor a disk selector", NULL },
        { "harvester.install.data_disk=Size=1G", NULL, "install.data_disk", "term \"Size=1G\" is not field=value", NULL },
        { "harvester.install.device=size>=1G harvester.install.data_disk=size>=1G", NULL, "install.data_disk",
          "same disk as install.device", NULL },
        { NULL, "scheme_version: 1\ntoken: t\nos: {password: p}\ninstall:\n  mode: install\n  device: \"model=A\\tB\"\n",
          "install.device", "a character other than printable ASCII", NULL },
        { "harvester.install.wipe_disks_list=/dev/sdb harvester.install.wipe_disks_list=sdc", NULL,
          "install.wipe_disks_list[1]", "not a /dev/ path", "kernel command line" },
        { "harvester.install.iso_url=ftp://10.0.0.10/h.iso", NULL, "install.iso_url",
          "not an http://, https:// or file:// URL", NULL },
        { "harvester.install.iso_url=http:///h.iso", NULL, "install.iso_url", "not an http", NULL },
        /* Mirrors (a list): each checked, named by its index. */
        { "harvester.install.iso_url=http://a/harvester.iso harvester.install.iso_url=ftp://b/harvester.iso", NULL,
          "install.iso_url[1]", "is not an http://, https:// or file:// URL", "kernel command line" },
        { "harvester.install.iso_url=http://a/harvester.iso harvester.install.iso_url=", NULL, "install.iso_url[1]",
          "is empty", NULL },
        { "harvester.install.iso_url=http://a/harvester.iso harvester.install.iso_url=http://a/harvester.iso", NULL,
          "install.iso_url[1]", "is named twice (also as mirror 0)", NULL },
        { "harvester.install.iso_url=http://a/harvester.iso harvester.install.iso_url=http://b/other.iso", NULL,
          "install.iso_url[1]", "serves \"other.iso\" but the first mirror serves \"harvester.iso\"", NULL },
        { "harvester.install.iso_url=http://a/harvester.iso harvester.install.iso_url=http://b/${nic}/harvester.iso",
          NULL, "install.iso_url[1]", "unknown variable ${nic}", NULL },
        { "harvester.install.iso_checksum=md5:abc", NULL, "install.iso_checksum", "sha512:<128 hex digits>", NULL },
        { "harvester.install.iso_checksum=sha256:" HEX64 "0", NULL, "install.iso_checksum", "sha256:<64", NULL },
        { "harvester.install.iso_checksum_url=smb://h/sums", NULL, "install.iso_checksum_url", "not an http", NULL },
        /* The ISO stage refuses an ISO without a checksum unless install.skipchecks (README, "TLS"). */
        { "harvester.install.iso_checksum_url=", NULL, "install.iso_checksum_url",
          "required (or install.iso_checksum): the ISO cannot be verified without a checksum", "not set" },
        { "harvester.install.mode=join harvester.server_url=10.0.0.1 harvester.install.iso_checksum_url=", NULL,
          "install.iso_checksum_url", "install.skipchecks, which installs an unverified ISO, is only for test rigs",
          "not set" },
        { "harvester.install.config_url=ftp://h/c.yaml", NULL, "install.config_url", "not an http", NULL },
        { "harvester.install.config_url_timeout=0", NULL, "install.config_url_timeout", "at least 1", NULL },
        { "harvester.install.persistent_partition_size=150GB", NULL, "install.persistent_partition_size",
          "not a size in Mi or Gi", NULL },
        { "harvester.install.persistent_partition_size=0Gi", NULL, "install.persistent_partition_size",
          "not a size in Mi or Gi", NULL },
        { "harvester.install.persistent_partition_size=150Ti", NULL, "install.persistent_partition_size",
          "not a size in Mi or Gi", NULL },
        { "harvester.install.role=leader", NULL, "install.role", "unknown role \"leader\"", NULL },
        { "harvester.system_settings.no-such-setting=1", NULL, "system_settings.no-such-setting",
          "not a setting Harvester lets an install set", NULL },
        { "harvester.os.dns_nameservers=dns.example.com", NULL, "os.dns_nameservers[0]", "not an IP address", NULL },
        { "harvester.install.cluster_pod_cidr=10.52.0.0/33", NULL, "install.cluster_pod_cidr", "IPv4 CIDR", NULL },
        { "harvester.install.cluster_service_cidr=10.53.0.0", NULL, "install.cluster_service_cidr", "IPv4 CIDR",
          NULL },
        { "harvester.install.cluster_dns=dns", NULL, "install.cluster_dns", "not an IPv4 address", NULL },
        { "harvester.server_url=https://10.0.0.1:8443 harvester.install.mode=join", NULL, "server_url",
          "must use port 443", "kernel command line" },
        { "harvester.server_url=https://10.0.0.1/v3 harvester.install.mode=join", NULL, "server_url",
          "must not have a path", NULL },
        { "harvester.server_url=http://10.0.0.1 harvester.install.mode=join", NULL, "server_url",
          "must be an https:// URL", NULL },
        { NULL, "webhooks",  "install.webhooks[0].event", "unknown event \"BEGUN\"", "config.yaml:18:14" },
        { NULL, "webhooks",  "install.webhooks[0].method", "unknown HTTP method \"FETCH\"", NULL },
        /* PROGRESS (an extension) is an event (the first hook here passes); a near miss is not. */
        { NULL,
          "scheme_version: 1\ntoken: t\nos: {password: p}\ninstall:\n  mode: install\n  device: /dev/sda\n"
          "  management_interface:\n    interfaces: [ens5]\n"
          "  webhooks: [{event: PROGRESS, url: 'http://h/'}, {event: PROGRES, url: 'http://h/'}]\n",
          "install.webhooks[1].event", "unknown event \"PROGRES\": use STARTED, SUCCEEDED, FAILED or PROGRESS",
          NULL },
        { NULL, "webhooks",  "install.webhooks[1].url", "required", "not set" },
        { NULL, "webhooks",  "install.webhooks[1].event", "required", "not set" },
        { NULL, "webhooks",  "install.webhooks[2].url", "not an http(s):// URL", NULL },
        { NULL, "files",  "os.write_files[0].permissions", "\"0999\" is not an octal file mode", NULL },
        { NULL, "files",  "os.write_files[0].path", "not an absolute path", NULL },
        { NULL, "files",  "os.write_files[0].encoding", "unknown encoding \"rot13\"", NULL },
        { NULL, "files",  "os.write_files[1].path", "required", "not set" },
        /* Rules the renderers enforce (the node's files, grub.cfg), checked before any write. */
        { NULL,
          "scheme_version: 1\ntoken: t\nos: {password: p}\ninstall:\n  mode: install\n  device: /dev/sda\n"
          "  management_interface:\n    interfaces: [{name: 'en$5'}]\n",
          "install.management_interface.interfaces[0].name", "\"en$5\" is not a valid interface name", NULL },
        { "harvester.install.management_interface.interfaces=\"name:en$5\"", NULL,
          "install.management_interface.interfaces", "not a valid interface name (1-15 letters", NULL },
        { "harvester.install.management_interface.bond_options.mode=active-backup "
          "harvester.install.management_interface.bond_options.primary=\"ens5 ens6\"", NULL,
          "install.management_interface.bond_options.primary", "cannot have", "kernel command line" },
        { NULL,
          "scheme_version: 1\ntoken: t\nos: {password: p}\ninstall:\n  mode: install\n  device: /dev/sda\n"
          "  management_interface:\n    interfaces: [ens5]\n    bond_options: {'a b': '1'}\n",
          "install.management_interface.bond_options.\"a b\"", "cannot have", "config.yaml:9:27" },
        { NULL, "many-interfaces", "install.management_interface.interfaces", "9 interfaces given", NULL },
        { NULL, "many-files", "os.write_files", "41 files given", NULL },
        { "harvester.os.ntp_servers=\"pool.ntp.org; reboot\"", NULL, "os.ntp_servers[0]",
          "is not a host name or IP address", "kernel command line" },
        { "harvester.os.ntp_servers=", NULL, "os.ntp_servers[0]", "is not a host name", NULL },
        { "harvester.os.modules=\"kvm_intel nested=1\"", NULL, "os.modules[0]", "not a kernel module name", NULL },
        { "harvester.os.modules=br_netfilter harvester.os.modules=a/b", NULL, "os.modules[1]",
          "\"a/b\" is not a kernel module name", NULL },
        { "harvester.os.persistent_state_paths=var/lib/x", NULL, "os.persistent_state_paths[0]",
          "not an absolute path without spaces", NULL },
        { "harvester.os.persistent_state_paths=\"/var/lib/my data\"", NULL, "os.persistent_state_paths[0]",
          "not an absolute path without spaces", NULL },
        { "harvester.install.tty=\"ttyS0;reboot\"", NULL, "install.tty", "is not a console name",
          "kernel command line" },
        { "console=\"tty S0\"", NULL, "install.tty", "taken from the last console= argument", "default" },
        { NULL, "unbalanced-quote", "os.additional_kernel_arguments", "has an unbalanced double quote",
          "config.yaml:3:48" },
        { "harvester.os.additional_kernel_arguments=\"a=1 b=${x}\"", NULL, "os.additional_kernel_arguments",
          "holds a character GRUB would interpret", NULL },
        { "harvester.os.additional_kernel_arguments=\"a='x y'\"", NULL, "os.additional_kernel_arguments",
          "holds a single quote", NULL },
        { NULL, "long-kernel-args", "os.additional_kernel_arguments", "longer than 1024 bytes", NULL },
        { NULL, "kernel-args-newline", "os.additional_kernel_arguments", "holds a control character", NULL },
        { "harvester.os.after_install_chroot_commands=\"echo hi\"", NULL, "os.after_install_chroot_commands",
          "not supported", "kernel command line" },
        { "harvester.install.addons.rancher_monitoring.enabled=true", NULL, "install.addons", "not supported", NULL },
        { "harvester.install.harvester.storage_class.replica_count=1", NULL, "install.harvester", "not supported",
          NULL },
        { "harvester.os.sysctls.kernel.x=\"a\xff\"", NULL, "os.sysctls.\"kernel.x\"", "not valid UTF-8", NULL },
        { "harvester.os.environment.K\xc3=v", NULL, "os.environment", "key that is not valid UTF-8", NULL },
};

static char *case_yaml(const char *name) {
        if (!name)
                return strdup(VALID_CREATE);
        if (streq(name, "interfaces-missing"))
                return without("  management_interface:\n    interfaces:\n      - name: ens5\n");
        if (streq(name, "webhooks"))
                return strdup(VALID_CREATE "  webhooks:\n"
                                           "    - event: BEGUN\n"
                                           "      method: fetch\n"
                                           "      url: http://h/\n"
                                           "    - method: POST\n"
                                           "    - event: FAILED\n"
                                           "      url: ftp://h/x\n");
        if (streq(name, "many-interfaces") || streq(name, "many-files")) {
                bool ifs = streq(name, "many-interfaces");
                const char *anchor = ifs ? "      - name: ens5\n" : "  password: Secret-Pass-42\n";
                char *list = strdup(ifs ? "" : "  write_files:\n");
                for (size_t i = 0; list && i < (ifs ? 8u : 41u); i++) {
                        char *n = ifs ? strdup_printf("%s      - name: ens%zu\n", list, i + 10)
                                      : strdup_printf("%s    - {path: /etc/f%zu, content: x}\n", list, i);
                        free(list);
                        list = n;
                }
                assert_non_null(list);
                const char *at = strstr(VALID_CREATE, anchor) + strlen(anchor);
                char *y = strdup_printf("%.*s%s%s", (int)(at - VALID_CREATE), VALID_CREATE, list, at);
                free(list);
                return y;
        }
#define MINIMAL_INSTALL_WITH(os_extra)                                                                   \
        "scheme_version: 1\ntoken: t\nos: {password: p, " os_extra "}\n"                                   \
        "install: {mode: install, device: /dev/sda, management_interface: {interfaces: [ens5]}}\n"
        if (streq(name, "unbalanced-quote"))
                return strdup(MINIMAL_INSTALL_WITH("additional_kernel_arguments: 'rd.break=\"pre-mount'"));
        if (streq(name, "long-kernel-args") || streq(name, "kernel-args-newline")) {
                if (streq(name, "kernel-args-newline"))
                        return strdup(MINIMAL_INSTALL_WITH("additional_kernel_arguments: \"a=1\\nb=2\""));
                char *y = strdup("scheme_version: 1\ntoken: t\nos: {password: p, additional_kernel_arguments: \"");
                for (size_t i = 0; y && i < 103; i++) {
                        char *n = strdup_printf("%sparam%04zu ", y, i);
                        free(y);
                        y = n;
                }
                char *n = y ? strdup_printf("%s\"}\ninstall: {mode: install, device: /dev/sda, "
                                            "management_interface: {interfaces: [ens5]}}\n", y) : NULL;
                free(y);
                return n;
        }
        if (streq(name, "files"))
                return strdup("scheme_version: 1\ntoken: t\n"
                              "os:\n  hostname: node1\n  password: p\n"
                              "  write_files:\n    - {path: etc/x, permissions: '0999', encoding: rot13}\n"
                              "    - {content: x, permissions: '0644'}\n"
                              "install: {mode: install, device: /dev/sda, management_interface: {interfaces: [ens5]}}\n");
        return strdup(name);
}

static void run_case(const struct config_case *t) {
        _cleanup_free_ char *yaml = case_yaml(t->yaml);
        struct diags d = {};
        struct config *c = NULL;
        print_message("case: %s | %s\n", strempty(t->cmdline), t->yaml ? t->yaml : "VALID_CREATE");
        assert_int_equal(from_text(t->cmdline, yaml, &d, &c), 0);
        dump_diags(&d);
        const struct diag *g = diags_find(&d, t->path, false);
        if (!g)
                print_message("no problem for %s\n", t->path);
        assert_non_null(g);
        if (!strstr(g->message, t->needle))
                print_message("\"%s\" lacks \"%s\"\n", g->message, t->needle);
        assert_non_null(strstr(g->message, t->needle));
        if (t->where)
                assert_string_equal(g->where, t->where);
        config_free(c);
        diags_clear(&d);
}

static void test_each_rule(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(rule_cases); i++)
                run_case(&rule_cases[i]);
}

static void expect_valid(const char *cmdline, const char *yaml, struct config **ret) {
        struct diags d = {};
        struct config *c = NULL;
        print_message("valid: %s\n", strempty(cmdline));
        assert_int_equal(from_text(cmdline, yaml, &d, &c), 0);
        dump_diags(&d);
        assert_int_equal(d.n, 0);
        diags_clear(&d);
        if (ret)
                *ret = c;
        else
                config_free(c);
}

static void test_valid_variants(void **state) {
        expect_valid(NULL, VALID_CREATE, NULL);
        expect_valid("harvester.install.mode=join harvester.server_url=10.0.0.1", VALID_CREATE, NULL);
        /* mode install needs no token. */
        expect_valid("harvester.install.mode=install harvester.token= harvester.install.iso_url=", VALID_CREATE, NULL);
        /* An SSH key alone is enough. */
        expect_valid("harvester.os.password= harvester.os.ssh_authorized_keys=\"ssh-ed25519 AAAA\"", VALID_CREATE, NULL);
        /* Not automatic: no iso_url needed. */
        expect_valid("harvester.install.automatic=false harvester.install.iso_url=", VALID_CREATE, NULL);
        expect_valid("harvester.install.vip_mode=DHCP harvester.install.vip_hw_addr=52:54:00:EC:0E:0B", VALID_CREATE,
                     NULL);
        expect_valid("harvester.install.management_interface.method=static "
                     "harvester.install.management_interface.ip=10.0.0.5 "
                     "harvester.install.management_interface.subnet_mask=255.255.255.0 "
                     "harvester.install.management_interface.gateway=10.0.0.1 harvester.os.dns_nameservers=10.0.0.1 "
                     "harvester.os.dns_nameservers=fd00::53 harvester.install.management_interface.mtu=9000 "
                     "harvester.install.management_interface.vlan_id=4094",
                     VALID_CREATE, NULL);
        expect_valid("harvester.install.management_interface.mtu=576 harvester.install.management_interface.vlan_id=1",
                     VALID_CREATE, NULL);
        expect_valid("harvester.os.labels.topology.kubernetes.io/zone=zone-1 harvester.os.labels.rack=\"\" "
                     "harvester.os.labels.a_b.c=V1",
                     VALID_CREATE, NULL);
        expect_valid("harvester.install.data_disk=/dev/sdb harvester.install.device=/dev/disk/by-id/wwn-0x5000",
                     VALID_CREATE, NULL);
        /* Selectors: every field and operator (the disks are matched in the disk stage). */
        expect_valid("harvester.install.device=size>=100G,size<=2T,rotational=false,bus=nvme|ata "
                     "harvester.install.data_disk=size>1Ti,size<3TB,removable=false,model=SAMSUNG*,vendor!=ATA,"
                     "serial=S4*,wwn=*5000c500*,path=pci-0000:00:1f.2-*,size!=0",
                     VALID_CREATE, NULL);
        expect_valid(NULL, VALID_CREATE "  data_disk: \"model=Samsung SSD 8?0*,size=500107862016\"\n", NULL);
        expect_valid("harvester.install.iso_url=file:///srv/harvester.iso "
                     "harvester.install.iso_checksum=sha256:" HEX64 " "
                     "harvester.install.iso_checksum_url=https://h/sha512sum",
                     VALID_CREATE, NULL);
        expect_valid("harvester.install.iso_checksum=sha512:" HEX64 HEX64, VALID_CREATE, NULL);
        /* A checksum by either key, or install.skipchecks (test rigs), or no automatic install. */
        expect_valid("harvester.install.iso_checksum_url= harvester.install.iso_checksum=sha256:" HEX64, VALID_CREATE,
                     NULL);
        expect_valid("harvester.install.iso_checksum_url= harvester.install.skipchecks=true", VALID_CREATE, NULL);
        expect_valid("harvester.install.iso_checksum_url= harvester.install.automatic=false", VALID_CREATE, NULL);
        expect_valid("harvester.install.persistent_partition_size=150Gi harvester.install.role=witness "
                     "harvester.system_settings.ntp-servers=x harvester.install.cluster_pod_cidr=10.52.0.0/16 "
                     "harvester.install.cluster_dns=10.53.0.10",
                     VALID_CREATE, NULL);
        expect_valid(NULL,
                     VALID_CREATE "  webhooks:\n    - {event: started, url: 'http://h/{{.Hostname}}'}\n"
                                  "    - {event: FAILED, method: put, url: 'https://h/'}\n",
                     NULL);

        /* An empty hostname gets upstream's generated one. */
        struct config *c = NULL;
        expect_valid("harvester.os.hostname=", VALID_CREATE, &c);
        assert_int_equal(strlen(c->os.hostname), 15);
        assert_memory_equal(c->os.hostname, "harvester-", 10);
        for (size_t i = 10; i < 15; i++)
                assert_non_null(strchr("bcdfghjklmnpqrstvwxz2456789", c->os.hostname[i]));
        assert_true(valid_dns1123_subdomain(c->os.hostname));
        config_free(c);
}

static void test_defaults(void **state) {
        struct config *c = NULL;
        expect_valid(NULL, VALID_CREATE "  webhooks: [{event: SUCCEEDED, url: 'http://h/'}]\n", &c);
        const struct mgmt_interface *m = &c->install.management_interface;
        assert_string_equal(m->method, "dhcp");
        assert_int_equal(m->bond_options.n, 2);
        assert_string_equal(kvmap_get(&m->bond_options, "mode"), "active-backup");
        assert_string_equal(kvmap_get(&m->bond_options, "miimon"), "100");
        assert_int_equal(c->install.config_url_timeout, 600);
        assert_string_equal(c->install.role, "default");
        assert_string_equal(c->install.webhooks[0].method, "GET");
        assert_false(c->install.force_gpt);
        assert_null(c->install.tty); /* no console= */
        assert_string_equal(config_where(c, "install.role"), "default");
        config_free(c);

        /* tty: the last console= (the kernel's preferred console), unless given. */
        expect_valid("console=tty1 console=ttyS1,115200n8", VALID_CREATE, &c);
        assert_string_equal(c->install.tty, "ttyS1,115200n8");
        config_free(c);
        expect_valid("console=tty1 harvester.install.tty=ttyS0", VALID_CREATE, &c);
        assert_string_equal(c->install.tty, "ttyS0");
        config_free(c);

        /* Given bond options are kept as they are (no defaults mixed in). */
        expect_valid("harvester.install.management_interface.bond_options.mode=balance-tlb", VALID_CREATE, &c);
        assert_int_equal(c->install.management_interface.bond_options.n, 1);
        config_free(c);
}

static void test_server_url_normalised(void **state) {
        static const struct {
                const char *in, *out;
        } ok[] = {
                { "10.0.0.1", "https://10.0.0.1:443" },
                { "https://10.0.0.1", "https://10.0.0.1:443" },
                { "https://10.0.0.1:443", "https://10.0.0.1:443" },
                { "https://10.0.0.1:443/", "https://10.0.0.1:443" },
                { "HTTPS://vip.example.com", "https://vip.example.com:443" },
                { "[fd00::1]", "https://[fd00::1]:443" },
                { "https://[fd00::1]:443", "https://[fd00::1]:443" },
                { "https://u:p@10.0.0.1", "https://u:p@10.0.0.1:443" },
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                char *n = NULL;
                const char *error = NULL;
                assert_int_equal(normalize_server_url(ok[i].in, &n, &error), 0);
                assert_string_equal(n, ok[i].out);
                free(n);
        }
        static const char *const bad[] = { "https://10.0.0.1:8443", "10.0.0.1:80", "https://10.0.0.1/v3",
                                           "https://10.0.0.1?x=1", "http://10.0.0.1", "ftp://h", "https://",
                                           "https://:443", "fd00::1", "https://[fd00::1", "https://[]:443", "",
                                           "https://10.0.0.1:", "https://10.0.0.1:4430" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *n = NULL;
                const char *error = NULL;
                if (normalize_server_url(bad[i], &n, &error) != -EINVAL)
                        print_message("accepted: %s -> %s\n", bad[i], strempty(n));
                assert_null(n);
                assert_non_null(error);
        }

        /* In the pipeline: the effective server_url is the normalised one. */
        struct config *c = NULL;
        expect_valid("harvester.install.mode=join harvester.server_url=10.100.0.99", VALID_CREATE, &c);
        assert_string_equal(c->server_url, "https://10.100.0.99:443");
        config_free(c);
}

static void test_every_problem_at_once(void **state) {
        static const char yaml[] = "scheme_version: 2\n"
                                   "os:\n"
                                   "  hostname: Bad_Host\n"
                                   "install:\n"
                                   "  mode: create\n"
                                   "  automatic: true\n"
                                   "  device: sda\n"
                                   "  vip: 10.0.0.999\n"
                                   "  management_interface:\n"
                                   "    mtu: 10\n";
        struct config *c = NULL;
        char *err = NULL;
        assert_int_equal(load_capture("harvester.install.role=boss", yaml, &c, &err), -EINVAL);
        assert_null(c);
        print_message("%s", err);
        /* One line per problem, each "harvester-install: error: path: message (where)". */
        static const char *const expect[] = {
                "error: scheme_version: must be 1, got 2 (",
                "error: token: required: the cluster token shared by every node (not set)\n",
                "error: os.password: no password and no SSH key",
                "error: os.hostname: \"Bad_Host\" is not a valid hostname",
                "error: install.management_interface.interfaces: at least one management interface is required",
                "error: install.management_interface.mtu: must be 0 (unset) or 576 to 9000, got 10 (",
                "error: install.vip: \"10.0.0.999\" is not a valid IPv4 address (",
                "error: install.vip_mode: required for mode create: static or dhcp (not set)\n",
                "error: install.device: \"sda\" is not a /dev/ path",
                "error: install.iso_url: required for an automatic install",
                "error: install.role: unknown role \"boss\": use default, management, worker or witness "
                "(kernel command line)\n",
                "error: The configuration has 11 problems (all listed above), the first: ",
        };
        for (size_t i = 0; i < ELEMENTSOF(expect); i++) {
                if (!strstr(err, expect[i]))
                        print_message("missing: %s\n", expect[i]);
                assert_non_null(strstr(err, expect[i]));
        }
        /* file:line:col for values from the file. */
        assert_non_null(strstr(err, "got 10 (" ));
        assert_non_null(strstr(err, "/config.yaml:10:10)\n"));
        /* Exactly one line per problem (plus the summary), each with the prefix. */
        size_t n = 0;
        for (const char *p = err; (p = strstr(p, "harvester-install: error: ")); p++)
                n++;
        assert_int_equal(n, 12);
        free(err);
}

static void test_crypt_hash(void **state) {
        /* What libxcrypt writes for each method is kept as a hash ... */
        static const char *const prefixes[] = { "$6$", "$5$", "$y$", "$2b$" };
        struct crypt_data *cd = calloc(1, sizeof *cd);
        assert_non_null(cd);
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++) {
                char setting[CRYPT_GENSALT_OUTPUT_SIZE];
                assert_non_null(crypt_gensalt_rn(prefixes[i], 0, NULL, 0, setting, sizeof setting));
                const char *h = crypt_rn("Secret-Pass-42", setting, cd, (int)sizeof *cd);
                assert_non_null(h);
                print_message("%s\n", h);
                assert_true(valid_crypt_hash(h));
        }
        char setting[CRYPT_GENSALT_OUTPUT_SIZE];
        assert_non_null(crypt_gensalt_rn("$6$", 20000, NULL, 0, setting, sizeof setting));
        const char *h = crypt_rn("x", setting, cd, (int)sizeof *cd);
        assert_non_null(strstr(h, "rounds=20000$"));
        assert_true(valid_crypt_hash(h));
        /* ... a short salt too. */
        assert_true(valid_crypt_hash(crypt_rn("x", "$6$ab$", cd, (int)sizeof *cd)));
        free(cd);

        /* Anything else is clear text. */
        static const char *const clear[] = {
                "$ecret", "$6$", "$6$salt", "$6$salt$short", "$1$legacy$hash", "$6$MyPassword!",
                "$6$saltsaltsaltsaltX$" HEX64 "0123456789abcdef012345", /* 17 salt characters */
                "$6$salt$" HEX64 "0123456789abcdef01234",               /* 85 hash characters */
                "$6$salt$" HEX64 "0123456789abcdef01234!",              /* not crypt's base64 */
                "$6$rounds=999$salt$" HEX64 "0123456789abcdef012345",  /* below 1000 rounds */
                "$6$rounds=0100000$s$x",
                "$5$salt$tooshort", "$2b$03$abcdefghijklmnopqrstuvabcdefghijklmnopqrstuvwxyz01234",
                "$2b$10$abcdefghijklmnopqrstuv", "$y$j9T$$", "$y$j9T$salt$short", "$9$x$y", "",
                "plain",
        };
        for (size_t i = 0; i < ELEMENTSOF(clear); i++) {
                if (valid_crypt_hash(clear[i]))
                        print_message("taken as a hash: %s\n", clear[i]);
                assert_false(valid_crypt_hash(clear[i]));
        }
        assert_false(valid_crypt_hash(NULL));

        /* A clear-text password starting with '$' is a warning, never a problem. */
        struct diags d = {};
        struct config *c = NULL;
        assert_int_equal(from_text("harvester.os.password=$ecret-Pass", VALID_CREATE, &d, &c), 0);
        dump_diags(&d);
        assert_int_equal(diags_errors(&d), 0);
        const struct diag *w = diags_find(&d, "os.password", true);
        assert_non_null(w);
        assert_non_null(strstr(w->message, "taken as clear text"));
        assert_null(strstr(w->message, "ecret")); /* the secret is not in the message */
        config_free(c);
        diags_clear(&d);
}

static void test_kernel_args(void **state) {
        static const char *const ok[] = { "", "nomodeset", "a=1 b=\"x y\" c", "\"quoted whole\"",
                                          "console=ttyS1,115200n8 rd.debug", "x=\xc3\xa9" };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++)
                assert_null(kernel_args_problem(ok[i]));
        static const char *const bad[] = { "a=\"b", "a=\"b\" c=\"", "a='b'", "a=$x", "a;b", "a{b}", "a|b",
                                           "a&b", "a<b", "a>b", "a`b`", "a#b", "a\\b", "a\tb", "a\nb", "a\x7f" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                if (!kernel_args_problem(bad[i]))
                        print_message("accepted: %s\n", bad[i]);
                assert_non_null(kernel_args_problem(bad[i]));
        }
        assert_true(valid_console_name("ttyS0,115200n8"));
        assert_true(valid_console_name("/dev/ttyS1"));
        assert_true(valid_console_name("hvc0"));
        assert_false(valid_console_name("tty S0"));
        assert_false(valid_console_name("ttyS0;x"));
        assert_false(valid_console_name(""));
        assert_true(valid_word("a.b_c-1", NULL));
        assert_false(valid_word("a:b", NULL));
        assert_true(valid_word("a:b", ":"));
        assert_false(valid_word("", ":"));
        assert_false(valid_ifname("en$5"));
        assert_false(valid_ifname("en 5"));
        assert_true(valid_ifname("bond0.100"));
}

static void test_helpers(void **state) {
        assert_true(valid_mac("52:54:00:ab:CD:ef"));
        assert_true(valid_mac("52-54-00-ab-cd-ef"));
        assert_false(valid_mac("52:54:00:ab:cd"));
        assert_false(valid_mac("52:54-00:ab:cd:ef"));
        assert_false(valid_mac("5254.00ab.cdef"));
        assert_false(valid_mac(NULL));
        assert_true(valid_ipv4("10.0.0.1"));
        assert_false(valid_ipv4("10.0.0.01"));
        assert_false(valid_ipv4("10.0.0"));
        assert_false(valid_ipv4(" 10.0.0.1"));
        assert_true(valid_ip("fd00::1"));
        assert_false(valid_ip("fd00::g"));
        assert_true(valid_ifname("ens5"));
        assert_true(valid_ifname("enp0s31f6.100"));
        assert_false(valid_ifname("a/b"));
        assert_false(valid_ifname("1234567890123456"));
        assert_false(valid_ifname(".."));
        assert_true(valid_dns1123_subdomain("node-1.example.com"));
        assert_false(valid_dns1123_subdomain("Node1"));
        assert_false(valid_dns1123_subdomain("node1."));
        assert_false(valid_dns1123_subdomain(""));
        assert_true(valid_label_key("topology.kubernetes.io/zone"));
        assert_true(valid_label_key("app_Name-1.x"));
        assert_false(valid_label_key("/zone"));
        assert_false(valid_label_key("Example.com/zone"));
        assert_false(valid_label_key("a/b/c"));
        assert_true(valid_label_value(""));
        assert_true(valid_label_value("zone-1"));
        assert_false(valid_label_value("zone-"));
        assert_true(valid_token("abc 123 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"));
        assert_false(valid_token("t\xc3\xb6ken"));
        assert_false(valid_token("tab\there"));
        assert_true(valid_octal_mode("0644"));
        assert_true(valid_octal_mode("755"));
        assert_true(valid_octal_mode("01777"));
        assert_false(valid_octal_mode("0999"));
        assert_false(valid_octal_mode("17777"));
        assert_false(valid_octal_mode("rw-r--r--"));
        assert_true(valid_checksum("sha512:" HEX64 HEX64));
        assert_true(valid_checksum("sha256:" HEX64));
        assert_false(valid_checksum("sha256:" HEX64 HEX64));
        assert_false(valid_checksum("SHA256:" HEX64));
        assert_true(valid_cidr4("10.52.0.0/16"));
        assert_false(valid_cidr4("10.52.0.0/-1"));
        assert_true(valid_url("http://h/x", false));
        assert_true(valid_url("https://u:p@h:8443/x", false));
        assert_false(valid_url("file:///x", false));
        assert_true(valid_url("file:///x", true));
        assert_false(valid_url("file://x", true));
        assert_false(valid_url("http://", false));
        assert_false(valid_url("http://h/a b", false));
        uint64_t b;
        assert_int_equal(parse_partition_size("512Mi", &b), 0);
        assert_true(b == 512ULL << 20);
        assert_int_equal(parse_partition_size("150Gi", &b), 0);
        assert_true(b == 150ULL << 30);
        assert_int_equal(parse_partition_size("150", &b), -EINVAL);
        assert_int_equal(parse_partition_size("1Ki", &b), -EINVAL);
        assert_int_equal(parse_partition_size("Gi", &b), -EINVAL);
}

static int teardown(void **state) {
        helpers_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_each_rule),
                cmocka_unit_test(test_valid_variants),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_server_url_normalised),
                cmocka_unit_test(test_every_problem_at_once),
                cmocka_unit_test(test_helpers),
                cmocka_unit_test(test_crypt_hash),
                cmocka_unit_test(test_kernel_args),
        };
        return cmocka_run_group_tests(tests, NULL, teardown);
}
