/* SPDX-License-Identifier: Apache-2.0 */
/* The configuration file: YAML (libyaml events) into a document tree with positions. */
#pragma once

#include <stddef.h>

#include "node.h"
#include "schema.h"

/* Limits against hostile or broken input. */
#define YAML_MAX_SIZE (16U * 1024U * 1024U)
#define YAML_MAX_DEPTH 64
#define YAML_MAX_NODES 1000000U

/*
 * Parses one YAML document into a tree (ORIGIN_FILE, 1-based line:column on every node, quoted
 * and null flags on scalars). `name` (a path or a redacted URL) is used in messages.
 * Refused, as problems in d, returning -EINVAL: text that is not YAML ("name is not YAML: ...
 * (name:line:col)"), an empty document, a top level that is not a mapping (an HTML error page ...),
 * more than one document, anchors and aliases, keys that are not scalars, input beyond the limits.
 * A key given twice in one mapping is a problem too (naming its path), but loading goes on with the
 * first value and 0 is returned so that every other problem is reported as well.
 * 0, -EINVAL or -ENOMEM.
 */
int yaml_load(const char *data, size_t len, const char *name, struct node **ret, struct diags *d);
