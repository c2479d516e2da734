/* SPDX-License-Identifier: Apache-2.0 */
/* The YAML loader: tree, positions, flags, and every refusal (not YAML, not a mapping, duplicate
 * keys, several documents, anchors, limits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"
#include "yamlload.h"

static int load(const char *text, struct node **ret, struct diags *d) {
        *d = (struct diags){};
        int r = yaml_load(text, strlen(text), "test.yaml", ret, d);
        dump_diags(d);
        return r;
}

static void test_tree_and_positions(void **state) {
        static const char text[] = "scheme_version: 1\n"        /* line 1 */
                                   "os:\n"                      /* line 2 */
                                   "  hostname: node1\n"        /* line 3 */
                                   "  password: \"p@ss\"\n"     /* line 4 */
                                   "  labels:\n"                /* line 5 */
                                   "    topology.kubernetes.io/zone: z1\n"
                                   "  ntp_servers:\n"           /* line 7 */
                                   "    - a\n"
                                   "    - 'b'\n"                /* line 9 */
                                   "install:\n"
                                   "  vip:\n"                   /* line 11: null */
                                   "  tty: ~\n"
                                   "  device: |\n"              /* line 13: block scalar */
                                   "    /dev/sda\n"
                                   "  debug: yes\n";
        struct node *t = NULL;
        struct diags d;
        assert_int_equal(load(text, &t, &d), 0);
        assert_int_equal(d.n, 0);
        assert_int_equal(t->kind, NODE_MAP);
        assert_int_equal(t->origin, ORIGIN_FILE);

        const struct node *n = node_lookup(t, "scheme_version");
        assert_string_equal(n->value, "1");
        assert_int_equal(n->line, 1);
        assert_int_equal(n->column, 17);
        assert_false(n->quoted);

        n = node_lookup(t, "os.hostname");
        assert_string_equal(n->value, "node1");
        assert_int_equal(n->line, 3);
        assert_int_equal(n->column, 13);

        n = node_lookup(t, "os.password");
        assert_string_equal(n->value, "p@ss");
        assert_true(n->quoted);
        assert_int_equal(n->line, 4);

        /* A map's position is its key's. */
        n = node_lookup(t, "os.labels");
        assert_int_equal(n->kind, NODE_MAP);
        assert_int_equal(n->line, 5);
        assert_int_equal(n->column, 3);
        n = node_lookup(t, "os.labels.\"topology.kubernetes.io/zone\"");
        assert_non_null(n);
        assert_string_equal(n->value, "z1");

        n = node_lookup(t, "os.ntp_servers");
        assert_int_equal(n->kind, NODE_LIST);
        assert_int_equal(n->n_items, 2);
        assert_int_equal(n->line, 7);
        n = node_lookup(t, "os.ntp_servers[1]");
        assert_string_equal(n->value, "b");
        assert_true(n->quoted);
        assert_int_equal(n->line, 9);
        assert_int_equal(n->column, 7);

        n = node_lookup(t, "install.vip");
        assert_true(n->null);
        n = node_lookup(t, "install.tty");
        assert_true(n->null);
        n = node_lookup(t, "install.device");
        assert_string_equal(n->value, "/dev/sda\n");
        assert_true(n->quoted);
        n = node_lookup(t, "install.debug");
        assert_string_equal(n->value, "yes");
        assert_false(n->quoted);
        assert_false(n->null);
        node_free(t);
        diags_clear(&d);
}

static void expect_refused(const char *text, const char *needle, unsigned line, unsigned column) {
        struct node *t = NULL;
        struct diags d;
        assert_int_equal(load(text, &t, &d), -EINVAL);
        assert_null(t);
        assert_int_equal(diags_errors(&d), 1);
        assert_non_null(strstr(d.items[0].message, needle));
        _cleanup_free_ char *where = strdup_printf("test.yaml:%u:%u", line, column);
        assert_string_equal(d.items[0].where, where);
        diags_clear(&d);
}

static void test_not_yaml(void **state) {
        /* A parse error: says "not YAML", with the position. */
        expect_refused("install:\n  mode: create\n bad: [\n", "is not YAML", 3, 2);
        expect_refused("a: b: c\n", "is not YAML", 1, 5);
        expect_refused("key: \"unterminated\n", "is not YAML", 2, 1);
        expect_refused("\t- tab\n", "is not YAML", 1, 1);
}

static void test_not_a_mapping(void **state) {
        expect_refused("Service Unavailable\n", "not a YAML mapping", 1, 1);
        expect_refused("- a\n- b\n", "not a YAML mapping", 1, 1);
        expect_refused("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n", "HTML", 1, 1);
        expect_refused("  \n<html>\n", "HTML", 1, 1);
        expect_refused("", "is empty", 1, 1);
        expect_refused("# only a comment\n", "is empty", 1, 1);
        expect_refused("---\n...\n", "is empty", 1, 1);
}

static void test_refusals(void **state) {
        expect_refused("a: 1\n---\nb: 2\n", "more than one YAML document", 2, 1);
        expect_refused("a: &x 1\nb: 2\n", "anchors", 1, 4);
        expect_refused("a: *x\n", "aliases (*x) are not supported", 1, 4);
        expect_refused("? [a, b]\n: 1\n", "mapping key must be a plain string", 1, 3);
        expect_refused("? {a: 1}\n: 1\n", "mapping key must be a plain string", 1, 3);
}

static void test_anchor_alias(void **state) {
        struct node *t = NULL;
        struct diags d;
        /* Refused at the anchor, before any alias could multiply anything. */
        assert_int_equal(load("base: &b\n  x: 1\nother: *b\n", &t, &d), -EINVAL);
        assert_non_null(strstr(d.items[0].message, "anchors (&b) are not supported"));
        diags_clear(&d);
}

static void test_duplicate_keys(void **state) {
        struct node *t = NULL;
        struct diags d;
        assert_int_equal(load("install:\n  mode: create\n  device: /dev/sda\n  mode: join\nos: {}\nos: {a: 1}\n", &t, &d),
                         0);
        assert_int_equal(diags_errors(&d), 2);
        const struct diag *g = diags_find(&d, "install.mode", false);
        assert_non_null(g);
        assert_string_equal(g->where, "test.yaml:4:9");
        assert_non_null(strstr(g->message, "given twice"));
        assert_non_null(diags_find(&d, "os", false));
        /* The first value is kept. */
        assert_string_equal(node_lookup(t, "install.mode")->value, "create");
        assert_int_equal(node_lookup(t, "install")->n_items, 2);
        assert_int_equal(node_lookup(t, "os")->n_items, 0);
        node_free(t);
        diags_clear(&d);

        /* A large mapping (sorted check) with duplicates far apart. */
        size_t n = 5000;
        size_t cap = n * 16 + 64, len = 0;
        _cleanup_free_ char *big = malloc(cap);
        assert_non_null(big);
        for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(big + len, cap - len, "k%zu: %zu\n", i % 4000, i);
        assert_int_equal(load(big, &t, &d), 0);
        assert_int_equal(diags_errors(&d), 1000);
        /* Only the first DIAGS_MAX are recorded; the rest are counted. */
        assert_int_equal(d.n, DIAGS_MAX);
        assert_int_equal(d.dropped_errors, 1000 - DIAGS_MAX);
        assert_int_equal(t->n_items, 4000);
        assert_string_equal(node_get(t, "k10")->value, "10");
        node_free(t);
        diags_clear(&d);
}

static void test_limits(void **state) {
        /* Nesting deeper than the limit. */
        size_t depth = YAML_MAX_DEPTH + 5;
        _cleanup_free_ char *deep = malloc(depth * 2 + 16);
        assert_non_null(deep);
        char *w = stpcpy(deep, "a: ");
        for (size_t i = 0; i < depth; i++)
                *w++ = '[';
        for (size_t i = 0; i < depth; i++)
                *w++ = ']';
        strcpy(w, "\n");
        struct node *t = NULL;
        struct diags d;
        assert_int_equal(load(deep, &t, &d), -EINVAL);
        assert_non_null(strstr(d.items[0].message, "nested more than"));
        diags_clear(&d);

        /* Exactly at the limit is fine (the top mapping is one level). */
        w = stpcpy(deep, "a: ");
        for (size_t i = 0; i < YAML_MAX_DEPTH - 1; i++)
                *w++ = '[';
        for (size_t i = 0; i < YAML_MAX_DEPTH - 1; i++)
                *w++ = ']';
        strcpy(w, "\n");
        assert_int_equal(load(deep, &t, &d), 0);
        node_free(t);
        diags_clear(&d);

        /* Larger than the size limit: refused without parsing. */
        d = (struct diags){};
        assert_int_equal(yaml_load("a: 1\n", YAML_MAX_SIZE + 1, "big.yaml", &t, &d), -EINVAL);
        assert_non_null(strstr(d.items[0].message, "larger than"));
        diags_clear(&d);
}

static void test_nul_and_encoding(void **state) {
        static const char text[] = "a: \"x\\0y\"\n";
        struct node *t = NULL;
        struct diags d = {};
        assert_int_equal(yaml_load(text, strlen(text), "t.yaml", &t, &d), -EINVAL);
        assert_non_null(strstr(d.items[0].message, "NUL"));
        diags_clear(&d);

        /* UTF-8 with a BOM, non-ASCII values. */
        static const char utf8[] = "\xef\xbb\xbfhostname: n\xc3\xb6" "de\n";
        d = (struct diags){};
        assert_int_equal(yaml_load(utf8, strlen(utf8), "t.yaml", &t, &d), 0);
        assert_string_equal(node_get(t, "hostname")->value, "n\xc3\xb6" "de");
        node_free(t);
        diags_clear(&d);
}

static void test_seed_files_load(void **state) {
        static const char *const files[] = { "config-create.yaml", "config-join.yaml" };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *text = fixture_text(files[i]);
                struct node *t = NULL;
                struct diags d;
                assert_int_equal(load(text, &t, &d), 0);
                assert_int_equal(d.n, 0);
                assert_string_equal(node_lookup(t, "install.management_interface.interfaces[0].name")->value, "ens5");
                assert_string_equal(node_lookup(t, "install.management_interface.bond_options.miimon")->value, "100");
                assert_string_equal(node_lookup(t, "install.device")->value, "/dev/sda");
                assert_string_equal(node_lookup(t, "os.ssh_authorized_keys[0]")->value, "ssh-rsa ...");
                /* The badge line is gone: management_interface is a mapping. */
                assert_int_equal(node_lookup(t, "install.management_interface")->kind, NODE_MAP);
                node_free(t);
                diags_clear(&d);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tree_and_positions),
                cmocka_unit_test(test_not_yaml),
                cmocka_unit_test(test_not_a_mapping),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_anchor_alias),
                cmocka_unit_test(test_duplicate_keys),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_nul_and_encoding),
                cmocka_unit_test(test_seed_files_load),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
