/* SPDX-License-Identifier: Apache-2.0 */
/* The node's configuration: 90_custom.yaml and harvester.config rendered for create and join,
 * compared with golden files and read back with libyaml key by key; the files on disk and modes. */
#include <crypt.h>
#include <regex.h>

#include "helpers.h"

#include "cloudconfig.h"
#include "log.h"

/* A SHA-512 crypt hash of "p@ssword" with a fixed salt, so that the golden files are stable. */
#define FIXED_HASH "$6$abcdefgh12345678$0123456789"

static const char *const keys[] = { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host", "ssh-rsa AAAAB3Nza... other" };

/* create: static address on a VLAN, two bonded NICs with options, MTU, NTP, DNS, labels, role,
 * sysctls, environment, write_files, persistent state paths, system settings. */
static struct config *config_create_static(void) {
        struct config *c = config_new("create");
        struct mgmt_interface *mi = &c->install.management_interface;
        free(c->token);
        c->token = xstrdup("tok\"en\\with:specials#1");
        free(mi->method);
        mi->method = xstrdup("static");
        mi->ip = xstrdup("192.168.10.21");
        mi->subnet_mask = xstrdup("255.255.255.0");
        mi->gateway = xstrdup("192.168.10.1");
        mi->vlan_id = 100;
        mi->mtu = 9000;
        add_interface(c, "ens6");
        xset(&mi->bond_options, "mode", "active-backup");
        xset(&mi->bond_options, "miimon", "100");
        xset(&mi->bond_options, "primary", "ens5");
        free(c->install.vip_mode);
        c->install.vip_mode = xstrdup("dhcp");
        c->install.vip_hw_addr = xstrdup("52:54:00:ec:0e:0b");
        c->install.tty = xstrdup("ttyS0,115200n8");
        c->install.role = xstrdup("management");
        c->os.password = xstrdup("p@ssword");
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                xpush(&c->os.ssh_authorized_keys, keys[i]);
        xpush(&c->os.ntp_servers, "0.suse.pool.ntp.org");
        xpush(&c->os.ntp_servers, "1.suse.pool.ntp.org");
        xpush(&c->os.dns_nameservers, "1.1.1.1");
        xpush(&c->os.dns_nameservers, "8.8.8.8");
        xpush(&c->os.modules, "kvm");
        xpush(&c->os.modules, "nvme_tcp");
        xset(&c->os.labels, "topology.kubernetes.io/zone", "zone1");
        xset(&c->os.labels, "rack", "r12");
        xset(&c->os.sysctls, "kernel.printk", "4 4 1 7");
        xset(&c->os.sysctls, "vm.swappiness", "10");
        xset(&c->os.environment, "http_proxy", "http://proxy:3128");
        xset(&c->os.environment, "NO_PROXY", "true");
        xpush(&c->os.persistent_state_paths, "/var/lib/third-party");
        add_write_file(c, "/etc/motd", "Welcome to node1.\nSecond line.\n", "0644", "root:root");
        add_write_file(c, "/usr/local/bin/tabbed.sh", "#!/bin/sh\n\techo tab\n", "0755", NULL);
        add_write_file(c, "/etc/no-newline", "no newline at the end", "bad", NULL);
        xset(&c->system_settings, "ntp-servers", "{\"ntpServers\":[\"0.suse.pool.ntp.org\"]}");
        return c;
}

/* join: dhcp, one NIC, no NTP, a password already hashed, worker role. */
static struct config *config_join_dhcp(void) {
        struct config *c = config_new("join");
        c->os.password = xstrdup("$6$presalt$alreadyhashedvalue");
        xpush(&c->os.ssh_authorized_keys, keys[0]);
        c->install.role = xstrdup("worker");
        c->install.data_disk = xstrdup("/dev/sdb");
        return c;
}

static void render(const struct config *c, const char *hash, char **custom, char **hc) {
        int r = cloudconfig_render(c, NULL, hash, custom, hc);
        assert_int_equal(r, 0);
        assert_non_null(*custom);
        assert_non_null(*hc);
}

static yaml_node_t *file_entry(struct ydoc *d, const char *path) {
        yaml_node_t *files = yget(d, NULL, "stages.initramfs.0.files");
        assert_non_null(files);
        return yfind(d, files, "path", path);
}

static const char *file_content(struct ydoc *d, const char *path) {
        yaml_node_t *e = file_entry(d, path);
        if (!e)
                fail_msg("no file %s in the cloud-config", path);
        return ystr(d, e, "content");
}

static long file_perm(struct ydoc *d, const char *path) {
        yaml_node_t *e = file_entry(d, path);
        assert_non_null(e);
        return strtol(ystr(d, e, "permissions"), NULL, 10);
}

static bool has_line(const char *text, const char *pattern) {
        regex_t re;
        assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
        bool m = regexec(&re, text, 0, NULL, 0) == 0;
        regfree(&re);
        return m;
}

static void check_rke2_kubelet_labels(const char *content, const char *want_labels) {
        struct ydoc *d = ydoc_parse(content);
        char want[512];
        snprintf(want, sizeof want, "node-labels=%s", want_labels);
        assert_string_equal(ystr(d, NULL, "kubelet-arg.0"), want);
        assert_int_equal(ylen(d, NULL, "kubelet-arg"), 1);
        ydoc_free(d);
}

static const char *const bootstrap_names[] = {
        "10-harvester.yaml",  "11-monitoring-crd.yaml",     "12-monitoring-dashboard.yaml", "13-monitoring.yaml",
        "14-logging-crd.yaml", "15-logging.yaml", "20-harvester-settings.yaml",  "22-addons.yaml",
};

/* The eight rancherd bootstrap resources of a create node: each 0600, each a "resources" list, the
 * chart versions where v1.1.2's templates put them, the VIP in 13's external URLs. */
static void check_bootstrap_files(struct ydoc *d, const char *monitoring, const char *logging, const char *vip) {
        size_t n = 0;
        for (size_t i = 0; i < ELEMENTSOF(bootstrap_names); i++) {
                _cleanup_free_ char *path = strdup_printf("/etc/rancher/rancherd/config.yaml.d/%s", bootstrap_names[i]);
                const char *content = file_content(d, path);
                assert_non_null(content);
                assert_int_equal(file_perm(d, path), 0600);
                struct ydoc *b = ydoc_parse(content);
                assert_non_null(yget(b, NULL, "resources"));
                ydoc_free(b);
                n++;
        }
        assert_int_equal(n, 8);

        struct {
                const char *file, *chart, *version;
        } charts[] = {
                { "11-monitoring-crd.yaml", "rancher-monitoring-crd", monitoring },
                { "13-monitoring.yaml", "rancher-monitoring", monitoring },
                { "14-logging-crd.yaml", "rancher-logging-crd", logging },
                { "15-logging.yaml", "rancher-logging", logging },
        };
        for (size_t i = 0; i < ELEMENTSOF(charts); i++) {
                _cleanup_free_ char *path = strdup_printf("/etc/rancher/rancherd/config.yaml.d/%s", charts[i].file);
                struct ydoc *b = ydoc_parse(file_content(d, path));
                yaml_node_t *mc = yfind(b, yget(b, NULL, "resources"), "metadata.name", charts[i].chart);
                assert_non_null(mc);
                assert_string_equal(ystr(b, mc, "kind"), "ManagedChart");
                assert_string_equal(ystr(b, mc, "metadata.namespace"), "fleet-local");
                assert_string_equal(ystr(b, mc, "spec.chart"), charts[i].chart);
                assert_string_equal(ystr(b, mc, "spec.version"), charts[i].version);
                assert_string_equal(ystr(b, mc, "spec.repoName"), "harvester-charts");
                ydoc_free(b);
        }

        struct ydoc *b = ydoc_parse(file_content(d, "/etc/rancher/rancherd/config.yaml.d/13-monitoring.yaml"));
        yaml_node_t *mc = yfind(b, yget(b, NULL, "resources"), "metadata.name", "rancher-monitoring");
        char want[512];
        snprintf(want, sizeof want,
                 "https://%s/api/v1/namespaces/cattle-monitoring-system/services/http:rancher-monitoring-alertmanager:9093/proxy/", vip);
        assert_string_equal(ystr(b, mc, "spec.values.alertmanager.alertmanagerSpec.externalUrl"), want);
        snprintf(want, sizeof want,
                 "https://%s/api/v1/namespaces/cattle-monitoring-system/services/http:rancher-monitoring-prometheus:9090/proxy/", vip);
        assert_string_equal(ystr(b, mc, "spec.values.prometheus.prometheusSpec.externalUrl"), want);
        assert_string_equal(ystr(b, mc, "spec.diff.comparePatches.0.operations.0.op"), "remove");
        ydoc_free(b);

        /* 12: the namespace and the two Grafana dashboards, their "{{name}}" legends kept as they are */
        b = ydoc_parse(file_content(d, "/etc/rancher/rancherd/config.yaml.d/12-monitoring-dashboard.yaml"));
        assert_int_equal(ylen(b, NULL, "resources"), 3);
        yaml_node_t *cm = yfind(b, yget(b, NULL, "resources"), "metadata.name", "harvester-vm-dashboard");
        assert_non_null(cm);
        assert_string_equal(ystr(b, cm, "metadata.labels.grafana_dashboard"), "1");
        yaml_node_t *json = ykey(b, yget(b, cm, "data"), "harvester_vm_dashboard.json");
        assert_non_null(json);
        assert_int_equal(json->type, YAML_SCALAR_NODE);
        assert_non_null(strstr((const char *)json->data.scalar.value, "\"legendFormat\": \"{{name}}\""));
        ydoc_free(b);

        /* 15: the EventTailer; 22: both Addons disabled */
        b = ydoc_parse(file_content(d, "/etc/rancher/rancherd/config.yaml.d/15-logging.yaml"));
        assert_non_null(yfind(b, yget(b, NULL, "resources"), "kind", "EventTailer"));
        ydoc_free(b);
        b = ydoc_parse(file_content(d, "/etc/rancher/rancherd/config.yaml.d/22-addons.yaml"));
        yaml_node_t *addons = yget(b, NULL, "resources");
        assert_string_equal(ystr(b, yfind(b, addons, "metadata.name", "vm-import-controller"), "spec.enabled"), "false");
        assert_string_equal(ystr(b, yfind(b, addons, "metadata.name", "pcidevices-controller"), "spec.enabled"), "false");
        ydoc_free(b);
}

static void test_create_static(void **state) {
        struct config *c = config_create_static();
        char *custom = NULL, *hc = NULL;
        render(c, FIXED_HASH, &custom, &hc);
        golden_check("create-90_custom.yaml", custom);
        golden_check("create-harvester.config", hc);

        struct ydoc *d = ydoc_parse(custom);
        assert_string_equal(ystr(d, NULL, "name"), "Harvester Configuration");
        assert_int_equal(ylen(d, NULL, "stages"), 3);

        /* rootfs */
        yaml_node_t *rootfs = yget(d, NULL, "stages.rootfs.0");
        assert_non_null(rootfs);
        assert_string_equal(ystr(d, rootfs, "if"), "[ ! -f \"/run/cos/recovery_mode\" ]");
        assert_string_equal(ystr(d, rootfs, "environment_file"), "/run/cos/cos-layout.env");
        assert_string_equal(ystr(d, rootfs, "environment.VOLUMES"),
                            "LABEL=COS_OEM:/oem LABEL=COS_PERSISTENT:/usr/local LABEL=HARV_LH_DEFAULT:/var/lib/harvester/defaultdisk");
        assert_string_equal(ystr(d, rootfs, "environment.OVERLAY"), "tmpfs:25%");
        assert_string_equal(ystr(d, rootfs, "environment.RW_PATHS"), "/var /etc /srv /boot");
        assert_string_equal(ystr(d, rootfs, "environment.PERSISTENT_STATE_BIND"), "true");
        assert_true(yquoted(d, rootfs, "environment.PERSISTENT_STATE_BIND"));
        const char *psp = ystr(d, rootfs, "environment.PERSISTENT_STATE_PATHS");
        assert_non_null(strstr(psp, "/etc/systemd /etc/rancher /etc/ssh "));
        assert_non_null(strstr(psp, " /var/lib/longhorn /var/lib/third-party"));
        assert_null(strstr(psp, "defaultdisk"));

        /* initramfs: commands */
        yaml_node_t *init = yget(d, NULL, "stages.initramfs.0");
        assert_non_null(init);
        assert_string_equal(ystr(d, init, "commands.0"),
                            "sed -i 's/^NETCONFIG_DNS_STATIC_SERVERS.*/NETCONFIG_DNS_STATIC_SERVERS=\"1.1.1.1 8.8.8.8\"/' "
                            "/etc/sysconfig/network/config");
        assert_string_equal(ystr(d, init, "commands.1"), "modprobe kvm");
        assert_string_equal(ystr(d, init, "commands.2"), "modprobe vhost_net");
        assert_string_equal(ystr(d, init, "commands.3"), "modprobe nvme_tcp");
        assert_int_equal(ylen(d, init, "commands"), 4); /* static: no "rm -f ifroute" */

        /* hostname, sysctl, environment, the user, NTP */
        assert_string_equal(ystr(d, init, "hostname"), "node1");
        assert_string_equal(yscalar(ykey(d, yget(d, init, "sysctl"), "kernel.printk")), "4 4 1 7");
        assert_string_equal(yscalar(ykey(d, yget(d, init, "sysctl"), "vm.swappiness")), "10");
        yaml_node_t *swappiness = ykey(d, yget(d, init, "sysctl"), "vm.swappiness");
        assert_true(swappiness && swappiness->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE);
        assert_string_equal(ystr(d, init, "environment.http_proxy"), "http://proxy:3128");
        assert_string_equal(ystr(d, init, "environment.NO_PROXY"), "true");
        assert_true(yquoted(d, init, "environment.NO_PROXY"));
        assert_string_equal(ystr(d, init, "users.rancher.passwd"), FIXED_HASH);
        assert_string_equal(ystr(d, init, "timesyncd.NTP"), "0.suse.pool.ntp.org 1.suse.pool.ntp.org");
        assert_string_equal(ystr(d, init, "systemctl.enable.0"), "systemd-timesyncd");
        assert_string_equal(ystr(d, init, "systemctl.enable.1"), "systemd-time-wait-sync");

        /* directories */
        yaml_node_t *dirs = yget(d, init, "directories");
        yaml_node_t *e = yfind(d, dirs, "path", "/etc/rancher/rke2/config.yaml.d");
        assert_non_null(e);
        assert_string_equal(ystr(d, e, "permissions"), "384");
        assert_non_null(yfind(d, dirs, "path", "/etc/rancher/rancherd/config.yaml.d"));
        assert_non_null(yfind(d, dirs, "path", "/etc/wicked/scripts"));

        /* rancherd: cluster-init, the token with its special characters intact */
        const char *rancherd = file_content(d, "/etc/rancher/rancherd/config.yaml");
        assert_int_equal(file_perm(d, "/etc/rancher/rancherd/config.yaml"), 0600);
        struct ydoc *rd = ydoc_parse(rancherd);
        assert_string_equal(ystr(rd, NULL, "role"), "cluster-init");
        assert_null(yget(rd, NULL, "server"));
        assert_string_equal(ystr(rd, NULL, "token"), "tok\"en\\with:specials#1");
        assert_string_equal(ystr(rd, NULL, "kubernetesVersion"), "v1.24.11+rke2r1");
        assert_string_equal(ystr(rd, NULL, "rancherVersion"), "v2.6.11");
        assert_string_equal(ystr(rd, NULL, "rancherInstallerImage"), "rancher/system-agent-installer-rancher:v2.6.11");
        assert_string_equal(ystr(rd, NULL, "labels.0"), "harvesterhci.io/managed=true");
        ydoc_free(rd);

        /* the bootstrap manifests: harvester with the VIP */
        const char *boot = file_content(d, "/etc/rancher/rancherd/config.yaml.d/10-harvester.yaml");
        struct ydoc *bd = ydoc_parse(boot);
        yaml_node_t *chart = yfind(bd, yget(bd, NULL, "resources"), "metadata.name", "harvester");
        assert_non_null(chart);
        assert_string_equal(ystr(bd, chart, "kind"), "ManagedChart");
        assert_string_equal(ystr(bd, chart, "spec.version"), "1.1.2");
        assert_string_equal(ystr(bd, chart, "spec.values.service.vip.enabled"), "true");
        assert_string_equal(ystr(bd, chart, "spec.values.service.vip.ip"), "10.0.2.100");
        assert_string_equal(ystr(bd, chart, "spec.values.service.vip.mode"), "dhcp");
        assert_string_equal(ystr(bd, chart, "spec.values.service.vip.hwAddress"), "52:54:00:ec:0e:0b");
        assert_string_equal(ystr(bd, chart, "spec.values.kube-vip.enabled"), "true");
        assert_string_equal(ystr(bd, chart, "spec.values.harvester-network-controller.vipEnabled"), "true");
        assert_string_equal(ystr(bd, chart, "spec.values.longhorn.defaultSettings.defaultDataPath"),
                            "/var/lib/harvester/defaultdisk");
        assert_string_equal(ystr(bd, chart, "spec.values.harvester-node-disk-manager.labelFilter.0"), "COS_*");
        assert_non_null(yfind(bd, yget(bd, NULL, "resources"), "metadata.name", "harvester-crd"));
        ydoc_free(bd);
        struct ydoc *sd = ydoc_parse(file_content(d, "/etc/rancher/rancherd/config.yaml.d/20-harvester-settings.yaml"));
        assert_string_equal(ystr(sd, NULL, "resources.0.metadata.name"), "ntp-servers");
        assert_string_equal(ystr(sd, NULL, "resources.0.value"), "{\"ntpServers\":[\"0.suse.pool.ntp.org\"]}");
        ydoc_free(sd);

        /* rke2 */
        const char *labels = "topology.kubernetes.io/zone=zone1,rack=r12,node-role.harvesterhci.io/management=true";
        check_bootstrap_files(d, "100.1.0+up19.0.3", "100.1.3+up3.17.7", "10.0.2.100");
        const char *server = file_content(d, "/etc/rancher/rke2/config.yaml.d/90-harvester-server.yaml");
        struct ydoc *sv = ydoc_parse(server);
        assert_string_equal(ystr(sv, NULL, "cni"), "multus,canal");
        assert_string_equal(ystr(sv, NULL, "cluster-cidr"), "10.52.0.0/16");
        assert_string_equal(ystr(sv, NULL, "service-cidr"), "10.53.0.0/16");
        assert_string_equal(ystr(sv, NULL, "cluster-dns"), "10.53.0.10");
        assert_string_equal(ystr(sv, NULL, "tls-san.0"), "10.0.2.100");
        assert_string_equal(ystr(sv, NULL, "audit-policy-file"),
                            "/etc/rancher/rke2/config.yaml.d/92-harvester-kube-audit-policy.yaml");
        ydoc_free(sv);
        check_rke2_kubelet_labels(server, labels);
        check_rke2_kubelet_labels(file_content(d, "/etc/rancher/rke2/config.yaml.d/90-harvester-agent.yaml"), labels);
        struct ydoc *ad = ydoc_parse(file_content(d, "/etc/rancher/rke2/config.yaml.d/92-harvester-kube-audit-policy.yaml"));
        assert_string_equal(ystr(ad, NULL, "kind"), "Policy");
        assert_string_equal(ystr(ad, NULL, "rules.0.level"), "Metadata");
        ydoc_free(ad);
        assert_null(file_entry(d, "/etc/rancher/rke2/config.yaml.d/99-harvester-witness.yaml"));

        /* write_files: contents, modes (bad octal -> 0600), owner */
        assert_string_equal(file_content(d, "/etc/motd"), "Welcome to node1.\nSecond line.\n");
        assert_int_equal(file_perm(d, "/etc/motd"), 0644);
        assert_string_equal(ystr(d, file_entry(d, "/etc/motd"), "ownerstring"), "root:root");
        assert_string_equal(file_content(d, "/usr/local/bin/tabbed.sh"), "#!/bin/sh\n\techo tab\n");
        assert_int_equal(file_perm(d, "/usr/local/bin/tabbed.sh"), 0755);
        assert_string_equal(file_content(d, "/etc/no-newline"), "no newline at the end");
        assert_int_equal(file_perm(d, "/etc/no-newline"), 0600);
        /* literal block scalars where YAML allows them (the tab forbids it for tabbed.sh) */
        assert_true(has_line(custom, "^    - path: /etc/motd$"));
        assert_non_null(strstr(custom, "      content: |\n        Welcome to node1.\n        Second line.\n"));
        assert_non_null(strstr(custom, "      content: |-\n        no newline at the end\n"));

        /* the management network: bond of two NICs with sorted options, bridge without address, VLAN
         * with the static address, default route through the VLAN interface */
        assert_string_equal(file_content(d, "/etc/sysconfig/network/ifcfg-mgmt-bo"),
                            "STARTMODE='onboot'\n"
                            "BONDING_MASTER='yes'\n"
                            "BOOTPROTO='none'\n"
                            "POST_UP_SCRIPT=\"wicked:setup_bond.sh\"\n"
                            "BONDING_SLAVE_0='ens5'\n"
                            "BONDING_SLAVE_1='ens6'\n"
                            "BONDING_MODULE_OPTS='miimon=100 mode=active-backup primary=ens5 '\n"
                            "DHCLIENT_SET_DEFAULT_ROUTE='no'\n"
                            "MTU=9000\n");
        for (const char *nic = "ens5"; nic; nic = streq(nic, "ens5") ? "ens6" : NULL) {
                char path[128];
                snprintf(path, sizeof path, "/etc/sysconfig/network/ifcfg-%s", nic);
                assert_string_equal(file_content(d, path), "STARTMODE='hotplug'\nBOOTPROTO='none'\n");
                assert_int_equal(file_perm(d, path), 0600);
        }
        assert_string_equal(file_content(d, "/etc/sysconfig/network/ifcfg-mgmt-br"),
                            "STARTMODE='onboot'\n"
                            "BOOTPROTO='none'\n"
                            "BRIDGE='yes'\n"
                            "BRIDGE_STP='off'\n"
                            "BRIDGE_FORWARDDELAY='0'\n"
                            "BRIDGE_PORTS='mgmt-bo'\n"
                            "PRE_UP_SCRIPT=\"wicked:setup_bridge.sh\"\n"
                            "POST_UP_SCRIPT=\"wicked:setup_bridge.sh\"\n"
                            "DHCLIENT_SET_DEFAULT_ROUTE='no'\n"
                            "MTU=9000\n");
        assert_string_equal(file_content(d, "/etc/sysconfig/network/ifcfg-mgmt-br.100"),
                            "STARTMODE='onboot'\n"
                            "ETHERDEVICE='mgmt-br'\n"
                            "VLAN_PROTOCOL='ieee802-1Q'\n"
                            "VLAN_ID=100\n"
                            "BOOTPROTO='static'\n"
                            "IPADDR=192.168.10.21\n"
                            "NETMASK=255.255.255.0\n"
                            "DHCLIENT_SET_DEFAULT_ROUTE='yes'\n"
                            "MTU=9000\n");
        assert_string_equal(file_content(d, "/etc/sysconfig/network/ifroute-mgmt-br.100"),
                            "default 192.168.10.1 - mgmt-br.100\n");
        assert_null(file_entry(d, "/etc/sysconfig/network/ifroute-mgmt-br"));
        assert_int_equal(file_perm(d, "/etc/wicked/scripts/setup_bond.sh"), 0755);
        assert_int_equal(file_perm(d, "/etc/wicked/scripts/setup_bridge.sh"), 0755);
        assert_non_null(strstr(file_content(d, "/etc/wicked/scripts/setup_bridge.sh"), "vlan_filtering 1"));
        assert_non_null(strstr(file_content(d, "/etc/wicked/scripts/setup_bond.sh"), "ip link set dev mgmt-br address"));

        /* network: SSH keys */
        assert_int_equal(ylen(d, NULL, "stages.network.0.authorized_keys.rancher"), 2);
        assert_string_equal(ystr(d, NULL, "stages.network.0.authorized_keys.rancher.0"), keys[0]);
        assert_string_equal(ystr(d, NULL, "stages.network.0.authorized_keys.rancher.1"), keys[1]);

        /* every secret-holding file 0600 */
        const char *secret_files[] = { "/etc/rancher/rancherd/config.yaml", "/etc/rancher/rancherd/config.yaml.d/10-harvester.yaml",
                                       "/etc/sysconfig/network/ifcfg-mgmt-bo" };
        for (size_t i = 0; i < ELEMENTSOF(secret_files); i++)
                assert_int_equal(file_perm(d, secret_files[i]), 0600);

        /* What the test OS greps. */
        assert_true(has_line(custom, "^    hostname: node1$"));
        assert_true(has_line(custom, "^        role: cluster-init$"));
        ydoc_free(d);

        /* harvester.config */
        struct ydoc *h = ydoc_parse(hc);
        assert_string_equal(ystr(h, NULL, "schemeversion"), "1");
        assert_string_equal(ystr(h, NULL, "serverurl"), "");
        assert_string_equal(ystr(h, NULL, "token"), "tok\"en\\with:specials#1");
        assert_string_equal(ystr(h, NULL, "os.hostname"), "node1");
        assert_string_equal(ystr(h, NULL, "os.sshauthorizedkeys.1"), keys[1]);
        assert_string_equal(ystr(h, NULL, "os.password"), FIXED_HASH);
        assert_string_equal(ystr(h, NULL, "os.ntpservers.0"), "0.suse.pool.ntp.org");
        assert_string_equal(ystr(h, NULL, "os.writefiles.0.path"), "/etc/motd");
        assert_string_equal(ystr(h, NULL, "os.writefiles.0.rawfilepermissions"), "0644");
        assert_string_equal(yscalar(ykey(h, yget(h, NULL, "os.labels"), "topology.kubernetes.io/zone")), "zone1");
        assert_string_equal(ystr(h, NULL, "install.mode"), "create");
        assert_string_equal(ystr(h, NULL, "install.automatic"), "true");
        assert_string_equal(ystr(h, NULL, "install.managementinterface.method"), "static");
        assert_string_equal(ystr(h, NULL, "install.managementinterface.interfaces.1.name"), "ens6");
        assert_string_equal(ystr(h, NULL, "install.managementinterface.ip"), "192.168.10.21");
        assert_string_equal(ystr(h, NULL, "install.managementinterface.gateway"), "192.168.10.1");
        assert_string_equal(ystr(h, NULL, "install.managementinterface.bondoptions.primary"), "ens5");
        assert_string_equal(ystr(h, NULL, "install.managementinterface.vlanid"), "100");
        assert_string_equal(ystr(h, NULL, "install.managementinterface.mtu"), "9000");
        assert_string_equal(ystr(h, NULL, "install.vip"), "10.0.2.100");
        assert_string_equal(ystr(h, NULL, "install.vipmode"), "dhcp");
        assert_string_equal(ystr(h, NULL, "install.viphwaddr"), "52:54:00:ec:0e:0b");
        assert_string_equal(ystr(h, NULL, "install.tty"), "ttyS0,115200n8");
        assert_string_equal(ystr(h, NULL, "install.device"), "/dev/sda");
        assert_string_equal(ystr(h, NULL, "runtimeversion"), "v1.24.11+rke2r1");
        assert_string_equal(ystr(h, NULL, "rancherversion"), "v2.6.11");
        assert_null(strstr(hc, "p@ssword"));
        ydoc_free(h);

        free(custom);
        free(hc);
        config_destroy(c);
}

static void test_join_dhcp(void **state) {
        struct config *c = config_join_dhcp();
        char *custom = NULL, *hc = NULL;
        render(c, c->os.password, &custom, &hc);
        golden_check("join-90_custom.yaml", custom);
        golden_check("join-harvester.config", hc);

        struct ydoc *d = ydoc_parse(custom);
        yaml_node_t *init = yget(d, NULL, "stages.initramfs.0");
        /* no DNS: modules first; dhcp: the stale default route file is removed */
        assert_string_equal(ystr(d, init, "commands.0"), "modprobe kvm");
        assert_string_equal(ystr(d, init, "commands.1"), "modprobe vhost_net");
        assert_string_equal(ystr(d, init, "commands.2"), "rm -f /etc/sysconfig/network/ifroute-mgmt-br");
        assert_int_equal(ylen(d, init, "commands"), 3);
        /* a data disk: HARV_LH_DEFAULT mounted */
        assert_non_null(strstr(ystr(d, NULL, "stages.rootfs.0.environment.VOLUMES"), "LABEL=HARV_LH_DEFAULT:/var/lib/harvester/defaultdisk"));

        struct ydoc *rd = ydoc_parse(file_content(d, "/etc/rancher/rancherd/config.yaml"));
        assert_string_equal(ystr(rd, NULL, "server"), "https://10.0.2.100:443");
        assert_string_equal(ystr(rd, NULL, "role"), "agent");
        assert_string_equal(ystr(rd, NULL, "token"), "token");
        ydoc_free(rd);
        assert_true(has_line(custom, "^        server: https://10.0.2.100:443$"));
        assert_true(has_line(custom, "^        role: agent$"));

        /* join writes no server drop-in and no bootstrap manifests */
        assert_null(file_entry(d, "/etc/rancher/rke2/config.yaml.d/90-harvester-server.yaml"));
        assert_null(file_entry(d, "/etc/rancher/rancherd/config.yaml.d/10-harvester.yaml"));
        for (size_t i = 0; i < ELEMENTSOF(bootstrap_names); i++) {
                _cleanup_free_ char *path = strdup_printf("/etc/rancher/rancherd/config.yaml.d/%s", bootstrap_names[i]);
                assert_null(file_entry(d, path));
        }
        assert_null(strstr(custom, "rancherd/config.yaml.d/"));
        assert_null(yfind(d, yget(d, init, "directories"), "path", "/etc/rancher/rancherd/config.yaml.d"));
        check_rke2_kubelet_labels(file_content(d, "/etc/rancher/rke2/config.yaml.d/90-harvester-agent.yaml"),
                                  "node-role.harvesterhci.io/worker=true");
        assert_non_null(file_entry(d, "/etc/rancher/rke2/config.yaml.d/92-harvester-kube-audit-policy.yaml"));

        /* v1.1's default bond options, a dhcp bridge with the default route, no VLAN, no route file */
        assert_non_null(strstr(file_content(d, "/etc/sysconfig/network/ifcfg-mgmt-bo"),
                               "BONDING_MODULE_OPTS='miimon=100 mode=balance-tlb '\n"));
        assert_null(strstr(file_content(d, "/etc/sysconfig/network/ifcfg-mgmt-bo"), "MTU="));
        const char *br = file_content(d, "/etc/sysconfig/network/ifcfg-mgmt-br");
        assert_non_null(strstr(br, "BOOTPROTO='dhcp'\n"));
        assert_non_null(strstr(br, "DHCLIENT_SET_DEFAULT_ROUTE='yes'\n"));
        assert_null(strstr(br, "IPADDR"));
        assert_null(file_entry(d, "/etc/sysconfig/network/ifroute-mgmt-br"));
        assert_null(yfind(d, yget(d, init, "files"), "path", "/etc/sysconfig/network/ifcfg-mgmt-br.0"));

        /* a hash is kept verbatim; no NTP */
        assert_string_equal(ystr(d, init, "users.rancher.passwd"), "$6$presalt$alreadyhashedvalue");
        assert_null(yget(d, init, "timesyncd"));
        assert_null(yget(d, init, "systemctl"));
        assert_string_equal(ystr(d, NULL, "stages.network.0.authorized_keys.rancher.0"), keys[0]);
        ydoc_free(d);

        struct ydoc *h = ydoc_parse(hc);
        assert_string_equal(ystr(h, NULL, "serverurl"), "https://10.0.2.100:443");
        assert_string_equal(ystr(h, NULL, "install.mode"), "join");
        assert_string_equal(ystr(h, NULL, "install.managementinterface.method"), "dhcp");
        assert_string_equal(ystr(h, NULL, "install.datadisk"), "/dev/sdb");
        assert_string_equal(ystr(h, NULL, "install.role"), "worker");
        assert_string_equal(ystr(h, NULL, "install.tty"), "");
        ydoc_free(h);
        free(custom);
        free(hc);
        config_destroy(c);
}

static void test_password_hash(void **state) {
        char *a = NULL, *b = NULL, *kept = NULL;
        assert_int_equal(cloudconfig_hash_password("p@ssword", &a), 0);
        assert_int_equal(cloudconfig_hash_password("p@ssword", &b), 0);
        assert_int_equal(strncmp(a, "$6$", 3), 0);
        /* "$6$" + 16 salt characters + "$" + 86 hash characters */
        assert_int_equal(strchr(a + 3, '$') - (a + 3), 16);
        assert_int_equal(strlen(a), 3 + 16 + 1 + 86);
        assert_string_not_equal(a, b); /* random salts */
        struct crypt_data *cd = calloc(1, sizeof *cd);
        assert_non_null(cd);
        assert_string_equal(crypt_rn("p@ssword", a, cd, (int)sizeof *cd), a);
        assert_string_not_equal(crypt_rn("p@sswore", a, cd, (int)sizeof *cd), a);
        /* A well-formed hash is kept as it is ... */
        assert_int_equal(cloudconfig_hash_password(a, &kept), 0);
        assert_string_equal(kept, a);
        free(kept);
        /* ... a clear-text password that merely starts with '$' is hashed, and logs in. */
        assert_int_equal(cloudconfig_hash_password("$1$legacy$hash", &kept), 0);
        assert_int_equal(strncmp(kept, "$6$", 3), 0);
        assert_string_equal(crypt_rn("$1$legacy$hash", kept, cd, (int)sizeof *cd), kept);
        free(kept);
        assert_int_equal(cloudconfig_hash_password("$6$MyPassword!", &kept), 0);
        assert_string_not_equal(kept, "$6$MyPassword!");
        assert_string_equal(crypt_rn("$6$MyPassword!", kept, cd, (int)sizeof *cd), kept);
        free(cd);
        free(a);
        free(b);
        free(kept);
}

static void test_write_oem(void **state) {
        struct config *c = config_create_static();
        char *dir = tmpdir_new();
        char path[4096];

        assert_int_equal(cloudconfig_write_oem(c, dir), 0);

        snprintf(path, sizeof path, "%s/90_custom.yaml", dir);
        assert_int_equal(file_mode(path), 0600);
        char *custom = read_text(path);
        snprintf(path, sizeof path, "%s/harvester.config", dir);
        assert_int_equal(file_mode(path), 0600);
        char *hc = read_text(path);
        snprintf(path, sizeof path, "%s/grubenv", dir);
        assert_int_equal(file_mode(path), 0644);
        char *env = NULL;
        size_t env_len = 0;
        assert_int_equal(read_full_file(path, &env, &env_len), 0);
        assert_int_equal(env_len, 1024);
        assert_int_equal(strncmp(env, "# GRUB Environment Block\n####", 29), 0);
        for (size_t i = 25; i < 1024; i++)
                assert_int_equal(env[i], '#');

        /* the password is stored hashed (SHA-512 crypt), never in clear text */
        struct ydoc *d = ydoc_parse(custom);
        const char *hash = ystr(d, NULL, "stages.initramfs.0.users.rancher.passwd");
        assert_int_equal(strncmp(hash, "$6$", 3), 0);
        struct crypt_data *cd = calloc(1, sizeof *cd);
        assert_non_null(cd);
        assert_string_equal(crypt_rn("p@ssword", hash, cd, (int)sizeof *cd), hash);
        free(cd);
        assert_null(strstr(custom, "p@ssword"));
        assert_null(strstr(hc, "p@ssword"));
        struct ydoc *h = ydoc_parse(hc);
        assert_string_equal(ystr(h, NULL, "os.password"), hash);
        ydoc_free(h);
        ydoc_free(d);

        /* no temporary files left */
        snprintf(path, sizeof path, "ls -A %s | wc -l", dir);
        FILE *p = popen(path, "r");
        int n = 0;
        assert_int_equal(fscanf(p, "%d", &n), 1);
        pclose(p);
        assert_int_equal(n, 3);

        free(custom);
        free(hc);
        free(env);
        tmpdir_remove(dir);
        config_destroy(c);
}

static void test_release_versions(void **state) {
        char *root = tmpdir_new();
        char path[4096];
        snprintf(path, sizeof path, "%s/etc", root);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof path, "%s/etc/harvester-release.yaml", root);
        write_text(path, "harvester: v1.1.3\nharvesterChart: 1.1.3\nos: Harvester v1.1.3\nkubernetes: v1.24.13+rke2r1\n"
                         "rancher: v2.6.12\nmonitoringChart: 100.1.1+up19.0.9\nloggingChart: '100.1.4+up3.17.8'\n"
                         "minUpgradableVersion: 'v1.1.2'\n"
                         "nested:\n  a: [1, 2]\n");
        snprintf(path, sizeof path, "%s/etc/os-release", root);
        write_text(path, "NAME=\"SLE Micro\"\nPRETTY_NAME=\"Harvester v1.1.3\"\nGRUB_ENTRY_NAME=\"Harvester v1.1.3 (GRUB)\"\n");

        struct harvester_release rel = {};
        assert_int_equal(harvester_release_read(root, &rel), 0);
        assert_string_equal(rel.harvester, "v1.1.3");
        assert_string_equal(rel.harvester_chart, "1.1.3");
        assert_string_equal(rel.kubernetes, "v1.24.13+rke2r1");
        assert_string_equal(rel.rancher, "v2.6.12");
        assert_string_equal(rel.os_name, "Harvester v1.1.3 (GRUB)");
        assert_string_equal(rel.monitoring_chart, "100.1.1+up19.0.9");
        assert_string_equal(rel.logging_chart, "100.1.4+up3.17.8");
        assert_int_equal(harvester_release_check(&rel), 0);

        struct config *c = config_new("create");
        char *custom = NULL, *hc = NULL;
        assert_int_equal(cloudconfig_render(c, &rel, NULL, &custom, &hc), 0);
        struct ydoc *d = ydoc_parse(custom);
        struct ydoc *rd = ydoc_parse(file_content(d, "/etc/rancher/rancherd/config.yaml"));
        assert_string_equal(ystr(rd, NULL, "kubernetesVersion"), "v1.24.13+rke2r1");
        assert_string_equal(ystr(rd, NULL, "rancherVersion"), "v2.6.12");
        assert_string_equal(ystr(rd, NULL, "rancherInstallerImage"), "rancher/system-agent-installer-rancher:v2.6.12");
        ydoc_free(rd);
        struct ydoc *bd = ydoc_parse(file_content(d, "/etc/rancher/rancherd/config.yaml.d/10-harvester.yaml"));
        yaml_node_t *chart = yfind(bd, yget(bd, NULL, "resources"), "metadata.name", "harvester");
        assert_string_equal(ystr(bd, chart, "spec.version"), "1.1.3");
        ydoc_free(bd);
        check_bootstrap_files(d, "100.1.1+up19.0.9", "100.1.4+up3.17.8", c->install.vip);
        /* no password: no passwd key */
        assert_null(yget(d, NULL, "stages.initramfs.0.users.rancher.passwd"));
        ydoc_free(d);
        free(custom);
        free(hc);

        /* runtime_version and rancher_version of the configuration win */
        c->runtime_version = xstrdup("v1.25.9+rke2r1");
        c->rancher_version = xstrdup("v2.7.5");
        assert_int_equal(cloudconfig_render(c, &rel, NULL, &custom, &hc), 0);
        d = ydoc_parse(custom);
        rd = ydoc_parse(file_content(d, "/etc/rancher/rancherd/config.yaml"));
        assert_string_equal(ystr(rd, NULL, "kubernetesVersion"), "v1.25.9+rke2r1");
        assert_string_equal(ystr(rd, NULL, "rancherVersion"), "v2.7.5");
        ydoc_free(rd);
        ydoc_free(d);
        struct ydoc *h = ydoc_parse(hc);
        assert_string_equal(ystr(h, NULL, "runtimeversion"), "v1.25.9+rke2r1");
        assert_string_equal(ystr(h, NULL, "harvesterchartversion"), "1.1.3");
        assert_string_equal(ystr(h, NULL, "monitoringchartversion"), "100.1.1+up19.0.9");
        assert_string_equal(ystr(h, NULL, "loggingchartversion"), "100.1.4+up3.17.8");
        ydoc_free(h);
        free(custom);
        free(hc);
        config_destroy(c);
        harvester_release_done(&rel);

        /* an image without the files: no error, nothing known */
        snprintf(path, sizeof path, "%s/etc/harvester-release.yaml", root);
        unlink(path);
        snprintf(path, sizeof path, "%s/etc/os-release", root);
        write_text(path, "PRETTY_NAME='Debian'\n");
        assert_int_equal(harvester_release_read(root, &rel), 0);
        assert_null(rel.harvester);
        assert_null(rel.kubernetes);
        assert_string_equal(rel.os_name, "Debian");
        harvester_release_done(&rel);
        /* an image without chart versions: the check fails, and so does rendering a create node
         * (a join node needs none) */
        assert_int_equal(harvester_release_check(&rel), -EINVAL);
        free(rel.monitoring_chart);
        rel.monitoring_chart = xstrdup("100.1.0+up19.0.3");
        assert_int_equal(harvester_release_check(&rel), -EINVAL); /* loggingChart still missing */
        c = config_new("create");
        custom = hc = NULL;
        assert_int_equal(cloudconfig_render(c, &rel, NULL, &custom, &hc), -EINVAL);
        assert_null(custom);
        config_destroy(c);
        c = config_new("join");
        assert_int_equal(cloudconfig_render(c, &rel, NULL, &custom, &hc), 0);
        free(custom);
        free(hc);
        config_destroy(c);
        harvester_release_done(&rel);
        /* a malformed release file is an error */
        snprintf(path, sizeof path, "%s/etc/harvester-release.yaml", root);
        write_text(path, "harvester: [unclosed\n");
        assert_int_equal(harvester_release_read(root, &rel), -EBADMSG);
        tmpdir_remove(root);
}

static void test_install_mode_and_witness(void **state) {
        /* mode install: only the OS, no cluster, no network */
        struct config *c = config_new("join");
        free(c->install.mode);
        c->install.mode = xstrdup("install");
        char *custom = NULL, *hc = NULL;
        assert_int_equal(cloudconfig_render(c, NULL, "$6$x$y", &custom, &hc), 0);
        struct ydoc *d = ydoc_parse(custom);
        assert_null(file_entry(d, "/etc/rancher/rancherd/config.yaml"));
        assert_null(file_entry(d, "/etc/sysconfig/network/ifcfg-mgmt-br"));
        assert_null(yget(d, NULL, "stages.initramfs.0.hostname"));
        assert_int_equal(ylen(d, NULL, "stages.network.0.authorized_keys.rancher"), 0);
        assert_string_equal(ystr(d, NULL, "stages.initramfs.0.commands.0"), "modprobe kvm");
        assert_string_equal(ystr(d, NULL, "stages.initramfs.0.users.rancher.passwd"), "$6$x$y");
        ydoc_free(d);
        free(custom);
        free(hc);
        config_destroy(c);

        /* witness: the etcd taint and the role label */
        c = config_new("join");
        c->install.role = xstrdup("witness");
        assert_int_equal(cloudconfig_render(c, NULL, NULL, &custom, &hc), 0);
        d = ydoc_parse(custom);
        struct ydoc *w = ydoc_parse(file_content(d, "/etc/rancher/rke2/config.yaml.d/99-harvester-witness.yaml"));
        assert_string_equal(ystr(w, NULL, "node-taint.0"), "node-role.kubernetes.io/etcd=true:NoExecute");
        ydoc_free(w);
        check_rke2_kubelet_labels(file_content(d, "/etc/rancher/rke2/config.yaml.d/90-harvester-agent.yaml"),
                                  "node-role.harvesterhci.io/witness=true");
        ydoc_free(d);
        free(custom);
        free(hc);
        config_destroy(c);

        /* force_mbr without a data disk: no data partition to mount, its path persisted instead */
        c = config_new("create");
        c->install.force_mbr = true;
        c->os.hostname[0] = 0; /* and no host name: one is made up, the same in both documents */
        assert_int_equal(cloudconfig_render(c, NULL, NULL, &custom, &hc), 0);
        d = ydoc_parse(custom);
        assert_string_equal(ystr(d, NULL, "stages.rootfs.0.environment.VOLUMES"),
                            "LABEL=COS_OEM:/oem LABEL=COS_PERSISTENT:/usr/local");
        const char *psp = ystr(d, NULL, "stages.rootfs.0.environment.PERSISTENT_STATE_PATHS");
        assert_non_null(strstr(psp, " /var/lib/longhorn /var/lib/harvester/defaultdisk"));
        const char *hostname = ystr(d, NULL, "stages.initramfs.0.hostname");
        assert_true(has_line(hostname, "^harvester-[a-z0-9]{5}$"));
        struct ydoc *h = ydoc_parse(hc);
        assert_string_equal(ystr(h, NULL, "os.hostname"), hostname);
        ydoc_free(h);
        ydoc_free(d);
        free(custom);
        free(hc);
        config_destroy(c);
}

static void expect_invalid(struct config *c, int want) {
        char *custom = NULL, *hc = NULL;
        assert_int_equal(cloudconfig_render(c, NULL, NULL, &custom, &hc), want);
        assert_null(custom);
        assert_null(hc);
        config_destroy(c);
}

static void test_invalid(void **state) {
        struct config *c;

        c = config_new("create");
        xset(&c->install.management_interface.bond_options, "mode", "active-backup'; reboot; '");
        expect_invalid(c, -EINVAL);

        c = config_new("create");
        free(c->install.management_interface.interfaces[0].name);
        c->install.management_interface.interfaces[0].name = xstrdup("../../etc/passwd");
        expect_invalid(c, -EINVAL);

        c = config_new("create");
        xpush(&c->os.dns_nameservers, "1.1.1.1/' /etc/shadow; echo '");
        expect_invalid(c, -EINVAL);

        c = config_new("create");
        xpush(&c->os.modules, "kvm; reboot");
        expect_invalid(c, -EINVAL);

        c = config_new("create");
        xset(&c->os.labels, "zone", "a,b=c");
        expect_invalid(c, -EINVAL);

        c = config_new("create");
        c->install.role = xstrdup("boss");
        expect_invalid(c, -EINVAL);

        c = config_new("create");
        free(c->install.vip);
        c->install.vip = NULL;
        expect_invalid(c, -EINVAL);

        c = config_new("join");
        free(c->server_url);
        c->server_url = NULL;
        expect_invalid(c, -EINVAL);

        c = config_new("create");
        free(c->install.management_interface.method);
        c->install.management_interface.method = xstrdup("static"); /* without ip, mask, gateway */
        expect_invalid(c, -EINVAL);

        c = config_new("create");
        free(c->os.hostname);
        c->os.hostname = xstrdup("bad\xff\xfe");
        expect_invalid(c, -EILSEQ);

        c = config_new("create");
        add_write_file(c, "relative/path", "x", "0644", NULL);
        expect_invalid(c, -EINVAL);

        /* keys this installer cannot apply fail before anything is written */
        c = config_new("create");
        xpush(&c->os.after_install_chroot_commands, "echo hi");
        assert_int_equal(cloudconfig_check(c), -EOPNOTSUPP);
        char *dir = tmpdir_new();
        assert_int_equal(cloudconfig_write_oem(c, dir), -EOPNOTSUPP);
        char path[4096];
        snprintf(path, sizeof path, "%s/90_custom.yaml", dir);
        assert_int_equal(access(path, F_OK), -1);
        tmpdir_remove(dir);
        config_destroy(c);
}

static void test_grub_env_block(void **state) {
        char block[GRUB_ENV_BLOCK_SIZE];
        struct kvmap vars = {};
        xset(&vars, "default_menu_entry", "Harvester v1.1.2");
        xset(&vars, "odd", "a\\b\nc");
        assert_int_equal(grub_env_block(&vars, block), 0);
        const char *want = "# GRUB Environment Block\ndefault_menu_entry=Harvester v1.1.2\nodd=a\\\\b\\\nc\n#";
        assert_memory_equal(block, want, strlen(want));
        assert_int_equal(block[GRUB_ENV_BLOCK_SIZE - 1], '#');
        kvmap_clear(&vars);

        char big[1100];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        xset(&vars, "big", big);
        assert_int_equal(grub_env_block(&vars, block), -E2BIG);
        kvmap_clear(&vars);
}

int main(void) {
        log_set_max_level(LOG_LEVEL_ERROR);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_create_static),
                cmocka_unit_test(test_join_dhcp),
                cmocka_unit_test(test_password_hash),
                cmocka_unit_test(test_write_oem),
                cmocka_unit_test(test_release_versions),
                cmocka_unit_test(test_install_mode_and_witness),
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_grub_env_block),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
