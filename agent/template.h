/* SPDX-License-Identifier: Apache-2.0 */
/* The Go text/template subset the agent renders: webhook URLs and payloads (the user's templates,
 * fields only) and the node's rancherd bootstrap resources (agent/templates/, built in). */
#pragma once

#include "util.h"

/* A value a template sees as {{ .Name }}: a string (NULL renders empty), or a map that
 * {{ range $k, $v := .Name }} walks in key order (as Go ranges a map). */
struct tmpl_var {
        const char *name;
        const char *str;
        const struct kvmap *map;
};

enum {
        /* An unknown field is an error (else it renders empty, Go's missingkey=zero). */
        TMPL_STRICT = 1 << 0,
        /* Beyond {{ .Field }}: if/else/end, range over a map, $variables, string constants and the
         * pipeline functions `yaml` (a YAML double-quoted scalar) and `printf` (%s and %% only). */
        TMPL_ACTIONS = 1 << 1,
};

/*
 * Renders tmpl with the n vars. Always understood: text, {{ .Field }} with spaces inside the braces,
 * the trim markers "{{- " and " -}}", comments ({{/ * ... * /}} without the spaces). Anything else
 * without TMPL_ACTIONS, an unknown field with TMPL_STRICT, an unclosed "{{", an if/range without
 * its end or a value that is not valid UTF-8 for `yaml` is -EINVAL, with *ret_error (if given) a
 * static description. 0, -EINVAL or -ENOMEM; *ret untouched on failure.
 */
int tmpl_render(const char *tmpl, const struct tmpl_var *vars, size_t n, unsigned flags, char **ret,
                const char **ret_error);

/* A template built into the binary from agent/templates/ (name without directory, e.g.
 * "rancherd-13-monitoring.yaml"), or NULL. */
const char *tmpl_builtin(const char *name);
