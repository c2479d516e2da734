/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel arguments: tokenising, the harvester.* tree, interface short forms, dracut arguments,
 * and reading /proc/cmdline plus cmdline.d as dracut does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cmdline.h"
#include "helpers.h"

static void split_expect(const char *text, const char *const *expected) {
        _cleanup_strv_free_ char **l = NULL;
        assert_int_equal(cmdline_split(text, &l), 0);
        size_t n = 0;
        while (expected[n])
                n++;
        assert_int_equal(strv_length(l), n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(l[i], expected[i]);
}

static void test_split(void **state) {
        split_expect("", (const char *const[]){ NULL });
        split_expect("   \t\n ", (const char *const[]){ NULL });
        split_expect("a b\tc\nd", (const char *const[]){ "a", "b", "c", "d", NULL });
        /* A token quoted whole, and a quoted value with spaces. */
        split_expect("\"harvester.c=d\" k=\"a b\" x",
                     (const char *const[]){ "harvester.c=d", "k=a b", "x", NULL });
        /* Quotes in the middle of a token; an unterminated quote runs to the end. */
        split_expect("a=\"x y\"z \"p q", (const char *const[]){ "a=x yz", "p q", NULL });
        split_expect("\"\"", (const char *const[]){ "", NULL });
}

struct parsed {
        struct node *tree;
        struct boot_args boot;
        struct diags d;
};

static void parse(const char *text, struct parsed *p) {
        *p = (struct parsed){};
        assert_int_equal(cmdline_parse(text, &p->tree, &p->boot, &p->d), 0);
        assert_non_null(p->tree);
        assert_int_equal(p->tree->kind, NODE_MAP);
        dump_diags(&p->d);
}

static void parsed_done(struct parsed *p) {
        node_free(p->tree);
        boot_args_clear(&p->boot);
        diags_clear(&p->d);
}

static const char *value_at(const struct node *tree, const char *path) {
        const struct node *n = node_lookup(tree, path);
        assert_non_null(n);
        assert_int_equal(n->kind, NODE_SCALAR);
        assert_int_equal(n->origin, ORIGIN_CMDLINE);
        return n->value;
}

static void test_keys_and_values(void **state) {
        struct parsed p;
        parse("BOOT_IMAGE=/vmlinuz ip=dhcp harvester.install.mode=create harvester.install.automatic "
              "harvester.os.hostname=\"node 1\" \"harvester.token=a=b\" root=live:http://x/y harvester.install.vip=",
              &p);
        assert_int_equal(p.d.n, 0);
        assert_string_equal(value_at(p.tree, "install.mode"), "create");
        /* A bare key means "true". */
        assert_string_equal(value_at(p.tree, "install.automatic"), "true");
        assert_true(p.boot.automatic);
        assert_string_equal(value_at(p.tree, "os.hostname"), "node 1");
        /* Split at the first '=' only. */
        assert_string_equal(value_at(p.tree, "token"), "a=b");
        assert_string_equal(value_at(p.tree, "install.vip"), "");
        /* Only harvester.* keys make the tree. */
        assert_null(node_get(p.tree, "ip"));
        assert_null(node_get(p.tree, "root"));
        assert_null(node_get(p.tree, "BOOT_IMAGE"));
        assert_int_equal(p.tree->n_items, 3); /* install, os, token */
        parsed_done(&p);
}

static void test_repeated_keys_make_lists(void **state) {
        struct parsed p;
        parse("harvester.os.ssh_authorized_keys=a harvester.os.ssh_authorized_keys=\"b c\" "
              "harvester.os.ssh_authorized_keys=a harvester.os.ntp_servers=one",
              &p);
        assert_int_equal(p.d.n, 0);
        const struct node *k = node_lookup(p.tree, "os.ssh_authorized_keys");
        assert_non_null(k);
        assert_int_equal(k->kind, NODE_LIST);
        assert_int_equal(k->n_items, 3);
        assert_string_equal(k->items[0]->value, "a");
        assert_string_equal(k->items[1]->value, "b c");
        assert_string_equal(k->items[2]->value, "a");
        /* Given once: a scalar (a one-item list once bound). */
        assert_int_equal(node_lookup(p.tree, "os.ntp_servers")->kind, NODE_SCALAR);
        parsed_done(&p);
}

static void test_aliases_are_canonical(void **state) {
        struct parsed p;
        parse("harvester.install.managementInterface.method=static harvester.install.management_interface.ip=10.0.0.2 "
              "harvester.os.sshAuthorizedKeys=k harvester.install.isoUrl=http://x/i.iso "
              "harvester.install.vipHwAddr=aa:bb:cc:dd:ee:ff harvester.install.powerOff harvester.schemeVersion=1",
              &p);
        assert_int_equal(p.d.n, 0);
        /* Both spellings land in the one canonical map. */
        const struct node *m = node_lookup(p.tree, "install.management_interface");
        assert_non_null(m);
        assert_int_equal(m->n_items, 2);
        assert_null(node_lookup(p.tree, "install.managementInterface"));
        assert_string_equal(value_at(p.tree, "install.management_interface.method"), "static");
        assert_string_equal(value_at(p.tree, "os.ssh_authorized_keys"), "k");
        assert_string_equal(value_at(p.tree, "install.iso_url"), "http://x/i.iso");
        assert_string_equal(value_at(p.tree, "install.vip_hw_addr"), "aa:bb:cc:dd:ee:ff");
        assert_string_equal(value_at(p.tree, "install.poweroff"), "true");
        assert_string_equal(value_at(p.tree, "scheme_version"), "1");
        parsed_done(&p);
}

static void test_dotted_map_keys(void **state) {
        struct parsed p;
        parse("harvester.os.labels.topology.kubernetes.io/zone=zone1 harvester.os.labels.rack=r7 "
              "harvester.os.sysctls.net.ipv4.ip_forward=1 "
              "harvester.install.management_interface.bond_options.mode=balance-tlb",
              &p);
        assert_int_equal(p.d.n, 0);
        const struct node *labels = node_lookup(p.tree, "os.labels");
        assert_int_equal(labels->kind, NODE_MAP);
        assert_int_equal(labels->n_items, 2);
        /* Below a map of names, the rest of the key is one key, dots included. */
        assert_string_equal(node_get(labels, "topology.kubernetes.io/zone")->value, "zone1");
        assert_string_equal(value_at(p.tree, "os.labels.\"topology.kubernetes.io/zone\""), "zone1");
        assert_string_equal(node_get(node_lookup(p.tree, "os.sysctls"), "net.ipv4.ip_forward")->value, "1");
        assert_string_equal(value_at(p.tree, "install.management_interface.bond_options.mode"), "balance-tlb");
        parsed_done(&p);
}

static const struct node *interface(const struct node *tree, size_t i) {
        const struct node *l = node_lookup(tree, "install.management_interface.interfaces");
        assert_non_null(l);
        assert_int_equal(l->kind, NODE_LIST);
        assert_true(i < l->n_items);
        assert_int_equal(l->items[i]->kind, NODE_MAP);
        return l->items[i];
}

static void test_interface_forms(void **state) {
        struct parsed p;
        parse("harvester.install.management_interface.interfaces=ens3 "
              "harvester.install.management_interface.interfaces=52:54:00:AB:cd:01 "
              "harvester.install.management_interface.interfaces=name:ens4 "
              "harvester.install.management_interface.interfaces=hwAddr:52:54:00:00:00:02 "
              "harvester.install.management_interface.interfaces=hw_addr:52-54-00-00-00-03 "
              "\"harvester.install.management_interface.interfaces=hwAddr:be:44:8c:b0:5d:f2,ens3\" "
              "harvester.install.managementInterface.interfaces=\"name: ens9 , hwAddr: 52:54:00:00:00:09\"",
              &p);
        assert_int_equal(p.d.n, 0);
        const struct node *l = node_lookup(p.tree, "install.management_interface.interfaces");
        assert_int_equal(l->n_items, 7);
        /* Each occurrence is ONE interface. */
        assert_string_equal(node_get(interface(p.tree, 0), "name")->value, "ens3");
        assert_null(node_get(interface(p.tree, 0), "hw_addr"));
        assert_string_equal(node_get(interface(p.tree, 1), "hw_addr")->value, "52:54:00:ab:cd:01");
        assert_null(node_get(interface(p.tree, 1), "name"));
        assert_string_equal(node_get(interface(p.tree, 2), "name")->value, "ens4");
        assert_string_equal(node_get(interface(p.tree, 3), "hw_addr")->value, "52:54:00:00:00:02");
        assert_string_equal(node_get(interface(p.tree, 4), "hw_addr")->value, "52:54:00:00:00:03");
        assert_string_equal(node_get(interface(p.tree, 5), "hw_addr")->value, "be:44:8c:b0:5d:f2");
        assert_string_equal(node_get(interface(p.tree, 5), "name")->value, "ens3");
        assert_string_equal(node_get(interface(p.tree, 6), "name")->value, "ens9");
        assert_string_equal(node_get(interface(p.tree, 6), "hw_addr")->value, "52:54:00:00:00:09");
        parsed_done(&p);
}

static void test_interface_errors(void **state) {
        static const char *const bad[] = {
                "",                           /* empty value */
                "hwAddr:52:54:00:00:00",      /* five octets */
                "hwAddr:zz:54:00:00:00:01",   /* not hex */
                "52:54:00:00:00:0g",          /* looks like a MAC, is not */
                "name:",                      /* empty name */
                "ens3,ens4",                  /* two interfaces in one argument */
                "hwAddr:52:54:00:00:00:01,52:54:00:00:00:02",
                "foo:bar",                    /* unknown form */
                "averyveryverylongname0",     /* longer than 15 */
                "ens3,",                      /* empty item */
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct node *m = NULL;
                const char *error = NULL;
                assert_int_equal(cmdline_parse_interface(bad[i], ORIGIN_CMDLINE, &m, &error), -EINVAL);
                assert_null(m);
                assert_non_null(error);

                /* On the command line, the problem names the key. */
                _cleanup_free_ char *line = strdup_printf("harvester.install.management_interface.interfaces=\"%s\" "
                                                          "harvester.install.mode=create", bad[i]);
                struct parsed p;
                parse(line, &p);
                assert_int_equal(diags_errors(&p.d), 1);
                assert_string_equal(p.d.items[0].path, "install.management_interface.interfaces");
                assert_string_equal(p.d.items[0].where, "kernel command line");
                assert_non_null(strstr(p.d.items[0].message, error));
                /* The rest of the line is still parsed. */
                assert_string_equal(value_at(p.tree, "install.mode"), "create");
                parsed_done(&p);
        }
        /* A name that cannot be an interface name. */
        struct parsed p;
        parse("harvester.install.management_interface.interfaces=bad/name", &p);
        assert_int_equal(diags_errors(&p.d), 1);
        assert_non_null(strstr(p.d.items[0].message, "not a valid interface name"));
        parsed_done(&p);
}

static void test_boot_args(void **state) {
        struct parsed p;
        parse("console=tty1 console=ttyS0,115200n8 ip=dhcp", &p);
        assert_false(p.boot.noverifyssl);
        assert_int_equal(p.boot.rd_shell, -1);
        assert_false(p.boot.automatic);
        assert_int_equal(strv_length(p.boot.consoles), 2);
        assert_string_equal(p.boot.consoles[0], "tty1");
        assert_string_equal(p.boot.consoles[1], "ttyS0,115200n8");
        parsed_done(&p);

        parse("rd.noverifyssl rd.shell", &p);
        assert_true(p.boot.noverifyssl);
        assert_int_equal(p.boot.rd_shell, 1);
        parsed_done(&p);

        parse("rd.noverifyssl=1 rd.shell=0", &p);
        assert_true(p.boot.noverifyssl);
        assert_int_equal(p.boot.rd_shell, 0);
        parsed_done(&p);

        parse("rd.noverifyssl=0 rd.shell=1", &p);
        assert_false(p.boot.noverifyssl);
        assert_int_equal(p.boot.rd_shell, 1);
        parsed_done(&p);

        /* The last one wins, as with dracut's getarg. */
        parse("rd.noverifyssl=1 rd.noverifyssl=no harvester.install.automatic=true harvester.install.automatic=false",
              &p);
        assert_false(p.boot.noverifyssl);
        assert_false(p.boot.automatic);
        parsed_done(&p);

        parse("harvester.install.automatic=yes", &p);
        assert_true(p.boot.automatic);
        parsed_done(&p);
}

static void test_key_errors(void **state) {
        struct parsed p;
        parse("harvester. harvester.install..mode=x harvester.os.=y harvester.install.mode=create", &p);
        assert_int_equal(diags_errors(&p.d), 3);
        for (size_t i = 0; i < 3; i++)
                assert_non_null(strstr(p.d.items[i].message, "empty part"));
        assert_string_equal(value_at(p.tree, "install.mode"), "create");
        parsed_done(&p);

        /* A key that is both a value and a map. */
        parse("harvester.install.mode=create harvester.install.mode.x=1 harvester.os=1 harvester.os.hostname=h", &p);
        assert_int_equal(diags_errors(&p.d), 2);
        assert_string_equal(p.d.items[0].path, "install.mode");
        assert_string_equal(p.d.items[1].path, "os");
        parsed_done(&p);

        /* Too deep. */
        _cleanup_free_ char *deep = strdup("harvester.install.harvester");
        for (int i = 0; i < CMDLINE_MAX_DEPTH; i++) {
                char *n = strdup_printf("%s.k", deep);
                assert_non_null(n);
                free(deep);
                deep = n;
        }
        parse(deep, &p);
        assert_int_equal(diags_errors(&p.d), 1);
        assert_non_null(strstr(p.d.items[0].message, "more than"));
        parsed_done(&p);
}

static void test_secrets_not_in_messages(void **state) {
        struct parsed p;
        parse("harvester.token=TopSecret-1 harvester.token.x=TopSecret-2 harvester.os.password=TopSecret-3 "
              "harvester.os.password.y=TopSecret-4",
              &p);
        assert_true(diags_errors(&p.d) >= 2);
        for (size_t i = 0; i < p.d.n; i++) {
                _cleanup_free_ char *s = diag_format(&p.d.items[i]);
                assert_null(strstr(s, "TopSecret"));
        }
        parsed_done(&p);
}

static void test_too_long(void **state) {
        size_t n = CMDLINE_MAX_SIZE + 10;
        _cleanup_free_ char *big = malloc(n + 1);
        assert_non_null(big);
        memset(big, 'a', n);
        big[n] = 0;
        struct parsed p;
        parse(big, &p);
        assert_int_equal(diags_errors(&p.d), 1);
        parsed_done(&p);

        _cleanup_free_ char *path = write_tmp("big", big);
        char *text = NULL;
        assert_int_equal(cmdline_read(path, NULL, &text), -E2BIG);
        assert_null(text);
}

static void mkdir_p(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        assert_non_null(p);
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        (void)mkdir(p, 0755);
                        *s = '/';
                }
        (void)mkdir(p, 0755);
}

static void put_file(const char *path, const char *text) {
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

static void test_read_like_dracut(void **state) {
        const char *dir = test_tmpdir();
        _cleanup_free_ char *root = strdup_printf("%s/root", dir);
        _cleanup_free_ char *etcd = strdup_printf("%s/etc/cmdline.d", root);
        _cleanup_free_ char *rund = strdup_printf("%s/run/initramfs/cmdline.d", root);
        _cleanup_free_ char *proc = strdup_printf("%s/proc", root);
        mkdir_p(etcd);
        mkdir_p(rund);
        mkdir_p(proc);
        char *text = NULL;

        /* Nothing there: an empty command line, not an error. */
        assert_int_equal(cmdline_read(NULL, root, &text), 0);
        assert_string_equal(text, "");
        free(text);

        _cleanup_free_ char *f1 = strdup_printf("%s/20-b.conf", etcd);
        _cleanup_free_ char *f2 = strdup_printf("%s/10-a.conf", etcd);
        _cleanup_free_ char *f3 = strdup_printf("%s/ignored.txt", etcd);
        _cleanup_free_ char *f4 = strdup_printf("%s/30-run.conf", rund);
        _cleanup_free_ char *f5 = strdup_printf("%s/cmdline", proc);
        put_file(f1, "harvester.install.mode=join\n");
        put_file(f2, "# a comment\nharvester.os.hostname=a\n  rd.shell\n");
        put_file(f3, "harvester.never=1");
        put_file(f4, "harvester.install.device=/dev/vda");
        put_file(f5, "BOOT_IMAGE=x harvester.install.mode=create\n");

        assert_int_equal(cmdline_read(NULL, root, &text), 0);
        /* Sorted cmdline.d files first, then /run/initramfs/cmdline.d, /proc/cmdline last. */
        assert_string_equal(text, "harvester.os.hostname=a   rd.shell harvester.install.mode=join "
                                  "harvester.install.device=/dev/vda BOOT_IMAGE=x harvester.install.mode=create");
        struct parsed p;
        parse(text, &p);
        free(text);
        assert_null(node_get(p.tree, "never"));
        /* /proc/cmdline comes last, so for a single-valued key it wins (with a warning) once canonicalised. */
        assert_int_equal(schema_canonicalize(p.tree, NULL, &p.d), 0);
        assert_string_equal(value_at(p.tree, "install.mode"), "create");
        assert_non_null(diags_find(&p.d, "install.mode", true));
        assert_int_equal(p.boot.rd_shell, 1);
        parsed_done(&p);

        /* --cmdline FILE reads only FILE. */
        assert_int_equal(cmdline_read(f4, root, &text), 0);
        assert_string_equal(text, "harvester.install.device=/dev/vda");
        free(text);
        _cleanup_free_ char *missing = strdup_printf("%s/nope", dir);
        struct capture cap;
        capture_begin(&cap);
        int r = cmdline_read(missing, NULL, &text);
        _cleanup_free_ char *err = capture_end(&cap);
        assert_int_equal(r, -ENOENT);
        assert_non_null(strstr(err, missing));
}

static void test_seed_lines(void **state) {
        static const char *const files[] = { "cmdline-create.txt", "cmdline-create-efi.txt", "cmdline-join.txt" };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *path = fixture_path(files[i]);
                char *text = NULL;
                assert_int_equal(cmdline_read(path, NULL, &text), 0);
                struct parsed p;
                parse(text, &p);
                free(text);
                assert_int_equal(p.d.n, 0);
                assert_true(p.boot.noverifyssl);
                assert_true(p.boot.automatic);
                assert_int_equal(strv_length(p.boot.consoles), 1);
                assert_string_equal(p.boot.consoles[0], "tty1");
                assert_string_equal(value_at(p.tree, "install.automatic"), "true");
                assert_non_null(strstr(value_at(p.tree, "install.config_url"), i == 2 ? "config-join.yaml"
                                                                                         : "config-create.yaml"));
                assert_int_equal(p.tree->n_items, 1); /* only install.* */
                parsed_done(&p);
        }
}

static int teardown(void **state) {
        helpers_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_split),
                cmocka_unit_test(test_keys_and_values),
                cmocka_unit_test(test_repeated_keys_make_lists),
                cmocka_unit_test(test_aliases_are_canonical),
                cmocka_unit_test(test_dotted_map_keys),
                cmocka_unit_test(test_interface_forms),
                cmocka_unit_test(test_interface_errors),
                cmocka_unit_test(test_boot_args),
                cmocka_unit_test(test_key_errors),
                cmocka_unit_test(test_secrets_not_in_messages),
                cmocka_unit_test(test_too_long),
                cmocka_unit_test(test_read_like_dracut),
                cmocka_unit_test(test_seed_lines),
        };
        return cmocka_run_group_tests(tests, NULL, teardown);
}
