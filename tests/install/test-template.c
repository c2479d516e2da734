/* SPDX-License-Identifier: Apache-2.0 */
/* The template engine (agent/template.c) with the actions the bootstrap templates use: yaml
 * quoting, printf, if/else, range over a map, strict fields, and its errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "template.h"

static struct kvmap settings;

static const struct tmpl_var vars[] = {
        { "Vip", "10.0.0.9" },
        { "Empty", "" },
        { "Evil", "a\"b\\c\nd: e" },
        { "Settings", NULL, &settings },
        { "None", NULL },
};

static char *render(const char *tmpl, int want) {
        char *out = NULL;
        const char *err = NULL;
        int r = tmpl_render(tmpl, vars, ELEMENTSOF(vars), TMPL_STRICT | TMPL_ACTIONS, &out, &err);
        assert_int_equal(r, want);
        if (want < 0) {
                assert_null(out);
                assert_non_null(err);
        }
        return out;
}

static void check(const char *tmpl, const char *want) {
        char *out = render(tmpl, 0);
        assert_string_equal(out, want);
        free(out);
}

static void test_actions(void **state) {
        check("ip: {{ .Vip }}", "ip: 10.0.0.9");
        check("ip: {{ .Vip | yaml }}", "ip: \"10.0.0.9\"");
        /* a value with quotes, a backslash and a line break stays one YAML scalar */
        check("x: {{ .Evil | yaml }}", "x: \"a\\\"b\\\\c\\nd: e\"");
        check("{{ .Vip | printf \"https://%s/p\" | yaml }}", "\"https://10.0.0.9/p\"");
        check("{{ printf \"%s-%s%%\" .Vip \"k\" }}", "10.0.0.9-k%");
        check("a{{ if .Vip }}yes{{ else }}no{{ end }}b", "ayesb");
        check("a{{ if .Empty }}yes{{ else }}no{{ end }}b", "anob");
        check("a{{ if .None }}yes{{ end }}b", "ab");
        check("l:\n{{- if .Vip }}\n  v\n{{- end }}\nz", "l:\n  v\nz");
        check("{{ if .Settings }}some{{ else }}none{{ end }}", "none");
        check("{{ range $k, $v := .Settings }}[{{ $k }}]{{ else }}empty{{ end }}", "empty");
        assert_int_equal(kvmap_set(&settings, "b", "2\""), 0);
        assert_int_equal(kvmap_set(&settings, "a", "1"), 0);
        check("{{ range $k, $v := .Settings }}{{ $k | yaml }}={{ $v | yaml }};{{ end }}", "\"a\"=\"1\";\"b\"=\"2\\\"\";");
        check("{{ if .Settings }}some{{ else }}none{{ end }}", "some");
        check("x{{/* comment\n over lines */ -}}\n  y", "xy");
        kvmap_clear(&settings);
}

static void test_errors(void **state) {
        static const char *const bad[] = {
                "{{ .NoSuchField }}",                 /* strict */
                "{{ if .Vip }}x",                     /* no end */
                "x{{ end }}",                         /* end without if */
                "{{ else }}",                         /* else outside if */
                "{{ if .Vip }}{{ else }}{{ else }}{{ end }}",
                "{{ .Vip | shout }}",                 /* unknown function */
                "{{ printf \"%d\" .Vip }}",           /* only %s */
                "{{ printf \"%s %s\" .Vip }}",        /* too few arguments */
                "{{ .Settings }}",                    /* a map printed */
                "{{ .Settings | yaml }}",
                "{{ range .Vip }}{{ end }}",          /* range syntax */
                "{{ range $k, $v := .Vip }}{{ end }}", /* not a map */
                "{{ $undeclared }}",
                "{{ .Vip .Vip }}",
                "{{ \"unterminated }}",
                "{{ .Vip",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                print_message("%s\n", bad[i]);
                render(bad[i], -EINVAL);
        }
        /* invalid UTF-8 cannot be quoted */
        const struct tmpl_var v[] = { { "X", "\xff" } };
        char *out = NULL;
        assert_int_equal(tmpl_render("{{ .X | yaml }}", v, 1, TMPL_ACTIONS, &out, NULL), -EINVAL);
        assert_null(out);
        /* without TMPL_STRICT an unknown field is empty; without TMPL_ACTIONS only fields */
        assert_int_equal(tmpl_render("[{{ .Nope }}]", vars, ELEMENTSOF(vars), TMPL_ACTIONS, &out, NULL), 0);
        assert_string_equal(out, "[]");
        free(out);
        out = NULL;
        assert_int_equal(tmpl_render("{{ .Vip | yaml }}", vars, ELEMENTSOF(vars), 0, &out, NULL), -EINVAL);
        assert_int_equal(tmpl_render("{{ if .Vip }}{{ end }}", vars, ELEMENTSOF(vars), 0, &out, NULL), -EINVAL);
        assert_null(out);
}

static void test_builtin(void **state) {
        static const char *const names[] = {
                "rancherd-10-harvester.yaml",  "rancherd-11-monitoring-crd.yaml", "rancherd-12-monitoring-dashboard.yaml",
                "rancherd-13-monitoring.yaml", "rancherd-14-logging-crd.yaml",    "rancherd-15-logging.yaml",
                "rancherd-20-harvester-settings.yaml", "rancherd-22-addons.yaml",
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                const char *t = tmpl_builtin(names[i]);
                assert_non_null(t);
                assert_true(strncmp(t, "{{/*", 4) == 0 || strncmp(t, "resources:", 10) == 0);
        }
        assert_null(tmpl_builtin("rancherd-99-nothing.yaml"));
        assert_null(tmpl_builtin("../template.c"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_actions),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_builtin),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
