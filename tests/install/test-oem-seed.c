/* SPDX-License-Identifier: Apache-2.0 */
/* The seed's configurations (tests/config/fixtures) loaded by config_load() as the agent loads them,
 * then written to a COS_OEM directory: what a create and a join node get, read back with libyaml. */
#include <crypt.h>

#include "helpers.h"

#include "cloudconfig.h"
#include "log.h"

static struct config *load_seed(const char *cmdline_fixture, const char *yaml_fixture, const char *dir) {
        const char *src = getenv("TESTS_SOURCE_DIR");
        assert_non_null(src);
        char cmdline[4096], yaml[4096], line_path[4096];
        snprintf(cmdline, sizeof cmdline, "%s/config/fixtures/%s", src, cmdline_fixture);
        snprintf(yaml, sizeof yaml, "%s/config/fixtures/%s", src, yaml_fixture);
        /* The kernel line without its first word (the kernel's file name). */
        char *line = NULL;
        assert_int_equal(read_full_file(cmdline, &line, NULL), 0);
        char *args = strchr(line, ' ');
        assert_non_null(args);
        snprintf(line_path, sizeof line_path, "%s/cmdline", dir);
        write_text(line_path, args + 1);
        free(line);

        struct config_source s = { .cmdline_file = line_path, .config_file = yaml };
        struct config *c = NULL;
        assert_int_equal(config_load(&s, &c), 0);
        assert_non_null(c);
        return c;
}

static struct ydoc *read_oem(const char *dir, const char *name, char **ret_text) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        assert_int_equal(file_mode(path), 0600);
        *ret_text = read_text(path);
        return ydoc_parse(*ret_text);
}

static const char *rancherd_content(struct ydoc *d) {
        yaml_node_t *e = yfind(d, yget(d, NULL, "stages.initramfs.0.files"), "path", "/etc/rancher/rancherd/config.yaml");
        assert_non_null(e);
        return ystr(d, e, "content");
}

static void check_password(struct ydoc *d) {
        const char *hash = ystr(d, NULL, "stages.initramfs.0.users.rancher.passwd");
        assert_int_equal(strncmp(hash, "$6$", 3), 0);
        struct crypt_data *cd = calloc(1, sizeof *cd);
        assert_non_null(cd);
        assert_string_equal(crypt_rn("p@ssword", hash, cd, (int)sizeof *cd), hash);
        free(cd);
}

static void test_seed_create(void **state) {
        char *dir = tmpdir_new();
        struct config *c = load_seed("cmdline-create.txt", "config-create.yaml", dir);
        assert_int_equal(cloudconfig_write_oem(c, dir), 0);

        char *text = NULL, *hc_text = NULL;
        struct ydoc *d = read_oem(dir, "90_custom.yaml", &text);
        assert_string_equal(ystr(d, NULL, "stages.initramfs.0.hostname"), "node1");
        check_password(d);
        assert_null(strstr(text, "p@ssword"));
        struct ydoc *rd = ydoc_parse(rancherd_content(d));
        assert_string_equal(ystr(rd, NULL, "role"), "cluster-init");
        assert_string_equal(ystr(rd, NULL, "token"), "token");
        ydoc_free(rd);
        yaml_node_t *bond = yfind(d, yget(d, NULL, "stages.initramfs.0.files"), "path", "/etc/sysconfig/network/ifcfg-mgmt-bo");
        assert_non_null(bond);
        assert_non_null(strstr(ystr(d, bond, "content"), "BONDING_SLAVE_0='ens5'\n"));
        assert_non_null(strstr(ystr(d, bond, "content"), "BONDING_MODULE_OPTS='miimon=100 mode=balance-tlb '\n"));
        assert_string_equal(ystr(d, NULL, "stages.initramfs.0.timesyncd.NTP"), "0.suse.pool.ntp.org 1.suse.pool.ntp.org");
        assert_string_equal(ystr(d, NULL, "stages.network.0.authorized_keys.rancher.0"), "ssh-rsa ...");
        ydoc_free(d);

        struct ydoc *h = read_oem(dir, "harvester.config", &hc_text);
        assert_string_equal(ystr(h, NULL, "install.vip"), "10.100.0.99");
        assert_string_equal(ystr(h, NULL, "install.vipmode"), "static");
        assert_string_equal(ystr(h, NULL, "install.configurl"), "http://10.100.0.10/harvester/config-create.yaml");
        assert_string_equal(ystr(h, NULL, "install.tty"), "tty1"); /* the kernel line's console */
        assert_string_equal(ystr(h, NULL, "install.automatic"), "true");
        ydoc_free(h);
        free(text);
        free(hc_text);
        config_free(c);
        tmpdir_remove(dir);
}

static void test_seed_join(void **state) {
        char *dir = tmpdir_new();
        struct config *c = load_seed("cmdline-join.txt", "config-join.yaml", dir);
        assert_int_equal(cloudconfig_write_oem(c, dir), 0);

        char *text = NULL, *hc_text = NULL;
        struct ydoc *d = read_oem(dir, "90_custom.yaml", &text);
        assert_string_equal(ystr(d, NULL, "stages.initramfs.0.hostname"), "node2");
        check_password(d);
        struct ydoc *rd = ydoc_parse(rancherd_content(d));
        assert_string_equal(ystr(rd, NULL, "role"), "agent");
        assert_string_equal(ystr(rd, NULL, "server"), "https://10.100.0.99:443");
        assert_string_equal(ystr(rd, NULL, "token"), "token");
        ydoc_free(rd);
        assert_non_null(strstr(ystr(d, NULL, "stages.initramfs.0.commands.0"), "NETCONFIG_DNS_STATIC_SERVERS=\"1.1.1.1 8.8.8.8\""));
        ydoc_free(d);

        struct ydoc *h = read_oem(dir, "harvester.config", &hc_text);
        assert_string_equal(ystr(h, NULL, "serverurl"), "https://10.100.0.99:443");
        assert_string_equal(ystr(h, NULL, "install.mode"), "join");
        ydoc_free(h);
        free(text);
        free(hc_text);
        config_free(c);
        tmpdir_remove(dir);
}

int main(void) {
        log_set_max_level(LOG_LEVEL_ERROR);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_seed_create),
                cmocka_unit_test(test_seed_join),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
