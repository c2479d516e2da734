/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The contract between validation and the renderers, as a property: a configuration in which
 * config_validate() reports no problem always renders (dry_run_render(): 90_custom.yaml with the
 * bootstrap files, harvester.config, the password, grub.cfg). Configurations are drawn at random
 * (fixed seed) from kernel arguments that are valid, borderline or broken, over three bases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"
#include "validate.h"

static const char *const fragments[] = {
        "harvester.install.management_interface.bond_options.mode=802.3ad",
        "harvester.install.management_interface.bond_options.xmit_hash_policy=layer3+4",
        "harvester.install.management_interface.bond_options.arp_ip_target=10.0.0.1,10.0.0.2",
        "harvester.install.management_interface.bond_options.primary=\"ens5 ens6\"",
        "harvester.install.management_interface.bond_options.miimon=",
        "harvester.install.management_interface.vlan_id=100",
        "harvester.install.management_interface.vlan_id=1",
        "harvester.install.management_interface.method=static harvester.install.management_interface.ip=10.0.0.5 "
        "harvester.install.management_interface.subnet_mask=255.255.255.0 "
        "harvester.install.management_interface.gateway=10.0.0.1 harvester.os.dns_nameservers=10.0.0.1",
        "harvester.os.dns_nameservers=fd00::53",
        "harvester.install.management_interface.mtu=1500",
        "harvester.install.management_interface.interfaces=ens6",
        "harvester.install.management_interface.interfaces=hwAddr:52:54:00:12:34:56",
        "harvester.install.management_interface.interfaces=\"name:eth0,hwAddr:52:54:00:12:34:57\"",
        "harvester.os.ntp_servers=0.suse.pool.ntp.org harvester.os.ntp_servers=fd00::123",
        "harvester.os.ntp_servers=\"pool.ntp.org; reboot\"",
        "harvester.os.modules=br_netfilter",
        "harvester.os.modules=\"kvm_intel nested=1\"",
        "harvester.os.persistent_state_paths=/var/lib/extra",
        "harvester.os.persistent_state_paths=\"/var/lib/a b\"",
        "harvester.os.additional_kernel_arguments=\"nomodeset quiet rd.debug\"",
        "harvester.os.additional_kernel_arguments=\"a=${b}\"",
        "harvester.install.tty=ttyS1,115200n8",
        "console=ttyS0,115200n8",
        "console=hvc0 console=tty1",
        "harvester.install.tty=\"tty S0\"",
        "harvester.install.role=witness",
        "harvester.install.role=worker",
        "harvester.install.role=management",
        "harvester.os.labels.topology.kubernetes.io/zone=z1 harvester.os.labels.rack=\"\"",
        "harvester.os.labels.bad!=x",
        "harvester.os.sysctls.net.ipv4.ip_forward=1",
        "harvester.os.sysctls.kernel.x=\"a\xff\"",
        "harvester.os.environment.HTTP_PROXY=http://proxy:3128",
        "harvester.os.environment.NOTE=\"a: b # c\"",
        "harvester.os.sshd.sftp=true",
        "harvester.os.sshd.disable_password_auth=true",
        "harvester.os.password=$6$notahash",
        "harvester.os.password=$6$ab$bwzg0uH3m6jCKPH5rOXAI0IuY14gjaOYNUZ4BdVthFrV8eKlvlQeoMIeLjQXnxyM7PyG5pFqjFDaH5ZKvTTBf/",
        "harvester.os.password= harvester.os.ssh_authorized_keys=\"ssh-ed25519 AAAA user@host\"",
        "harvester.install.mode=join harvester.server_url=10.0.0.1",
        "harvester.install.mode=install harvester.token=",
        "harvester.install.data_disk=/dev/sdb",
        "harvester.install.force_mbr=true",
        "harvester.system_settings.log-level=debug",
        "harvester.install.vip_mode=dhcp harvester.install.vip_hw_addr=52:54:00:00:00:01",
        "harvester.sans=a.example.com harvester.sans=10.0.0.2",
        "harvester.install.cluster_pod_cidr=10.52.0.0/16 harvester.install.cluster_dns=10.53.0.10",
        "harvester.os.hostname=",
        "harvester.token=\"tok en!#'\"",
        "harvester.runtime_version=v1.24.11+rke2r1 harvester.rancher_version=v2.6.11",
        "harvester.install.persistent_partition_size=150Gi",
        "harvester.os.after_install_chroot_commands=true",
};

/* The most the node's configuration holds: every file the agent adds (create, witness, sftp, no
 * password login, VLAN, static), CONFIG_MAX_WRITE_FILES files and CONFIG_MAX_INTERFACES interfaces. */
static char *max_yaml(void) {
        char *y = strdup("scheme_version: 1\ntoken: Token-123\nos:\n  hostname: node1\n  password: Secret-Pass-42\n"
                         "  sshd: {sftp: true, disable_password_auth: true}\n  dns_nameservers: [10.0.0.1]\n"
                         "  ntp_servers: [0.suse.pool.ntp.org]\n  modules: [br_netfilter]\n  write_files:\n");
        for (size_t i = 0; y && i < CONFIG_MAX_WRITE_FILES; i++) {
                char *n = strdup_printf("%s    - {path: /etc/f%zu, content: \"x\\n\", permissions: '0644', "
                                        "encoding: '', owner: 'root:root'}\n", y, i);
                free(y);
                y = n;
        }
        char *n = y ? strdup_printf("%sinstall:\n  mode: create\n  automatic: true\n  role: witness\n"
                                    "  device: /dev/sda\n  iso_url: http://10.0.0.10/h.iso\n"
                                    "  iso_checksum_url: http://10.0.0.10/h.sha512\n  vip: 10.0.0.99\n"
                                    "  vip_mode: static\n  management_interface:\n    method: static\n"
                                    "    ip: 10.0.0.5\n    subnet_mask: 255.255.255.0\n    gateway: 10.0.0.1\n"
                                    "    vlan_id: 2\n    interfaces:\n", y) : NULL;
        free(y);
        y = n;
        for (size_t i = 0; y && i < CONFIG_MAX_INTERFACES; i++) {
                n = strdup_printf("%s      - name: ens%zu\n", y, i);
                free(y);
                y = n;
        }
        n = y ? strdup_printf("%s  webhooks: [{event: STARTED, url: 'http://h/{{.Hostname}}'}]\n", y) : NULL;
        free(y);
        assert_non_null(n);
        return n;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void) { /* xorshift64: the same configurations every run */
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

/* One configuration: 0 when it had problems, 1 when it was valid and rendered; fails the test when
 * it was valid and did not render. */
static int check_one(const char *cmdline, const char *yaml) {
        struct diags d = {};
        struct config *c = NULL;
        int rendered = 0;
        if (from_text(cmdline, yaml, &d, &c) == 0 && diags_errors(&d) == 0) {
                int r = dry_run_render(c, true);
                if (r < 0) {
                        print_message("valid but not rendered (%s): %s\n", strerror(-r), cmdline);
                        dump_diags(&d);
                }
                assert_int_equal(r, 0);
                rendered = 1;
        }
        if (!cmdline && !rendered)
                dump_diags(&d);
        config_free(c);
        diags_clear(&d);
        return rendered;
}

static void test_valid_always_renders(void **state) {
        _cleanup_free_ char *max = max_yaml();
        const char *bases[] = { VALID_CREATE, max,
                                "scheme_version: 1\nos: {password: p}\n"
                                "install: {mode: install, device: /dev/sda, management_interface: {interfaces: [ens5]}}\n" };
        size_t valid = 0, total = 0;

        for (size_t b = 0; b < ELEMENTSOF(bases); b++)
                assert_int_equal(check_one(NULL, bases[b]), 1);
        for (size_t round = 0; round < 300; round++) {
                _cleanup_free_ char *line = strdup("");
                size_t k = 1 + next() % 5;
                for (size_t j = 0; j < k; j++) {
                        char *n = strdup_printf("%s %s", line, fragments[next() % ELEMENTSOF(fragments)]);
                        free(line);
                        line = n;
                        assert_non_null(line);
                }
                valid += (size_t)check_one(line, bases[next() % ELEMENTSOF(bases)]);
                total++;
        }
        print_message("%zu of %zu configurations valid, each rendered\n", valid, total);
        /* Not vacuous: both kinds were drawn. */
        assert_true(valid >= total / 5);
        assert_true(valid <= total - total / 5);
}

/* The limits of validation are the renderer's: past them (16 files more) it refuses. */
static void test_limits_are_the_renderers(void **state) {
        _cleanup_free_ char *max = max_yaml();
        struct diags d = {};
        struct config *c = NULL;
        assert_int_equal(from_text(NULL, max, &d, &c), 0);
        assert_int_equal(diags_errors(&d), 0);
        diags_clear(&d);
        struct os_config *os = &c->os;
        struct write_file *w = realloc(os->write_files, (os->n_write_files + 16) * sizeof *w);
        assert_non_null(w);
        os->write_files = w;
        for (size_t i = 0; i < 16; i++)
                w[os->n_write_files++] = (struct write_file){ .path = strdup_printf("/etc/extra%zu", i),
                                                              .content = strdup("x") };
        struct capture cap;
        capture_begin(&cap);
        int r = dry_run_render(c, false);
        _cleanup_free_ char *err = capture_end(&cap);
        print_message("%s", err);
        assert_int_equal(r, -E2BIG);
        config_free(c);
}

static int teardown(void **state) {
        helpers_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_always_renders),
                cmocka_unit_test(test_limits_are_the_renderers),
        };
        return cmocka_run_group_tests(tests, NULL, teardown);
}
