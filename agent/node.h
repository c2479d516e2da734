/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A configuration document as a tree, before it is bound to `struct config`: what the YAML file
 * says and what the kernel arguments say both become a tree; the two trees are merged (kernel
 * arguments win), then bound to the typed struct by the schema. Every node remembers where it came
 * from, so that errors can name the file, line and column, or the kernel argument.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum node_kind { NODE_SCALAR, NODE_LIST, NODE_MAP };
enum node_origin { ORIGIN_FILE, ORIGIN_CMDLINE };

struct node {
        enum node_kind kind;
        enum node_origin origin;
        unsigned line, column; /* 1-based, ORIGIN_FILE only */
        bool quoted;           /* scalar written quoted in YAML (a string, never a bool/int/null) */
        bool null;             /* scalar was YAML null (~, null, empty) */
        char *key;             /* set when this node is a map entry */
        char *value;           /* NODE_SCALAR */
        struct node **items;   /* NODE_LIST items, NODE_MAP entries (each has ->key) */
        size_t n_items;
};

struct node *node_new(enum node_kind kind, enum node_origin origin);
void node_free(struct node *n);
static inline void node_freep(struct node **n) { node_free(*n); }
#define _cleanup_node_ __attribute__((cleanup(node_freep)))
struct node *node_copy(const struct node *n);
/* Appends child (ownership taken) to a list or map. 0 or -ENOMEM (child freed). */
int node_append(struct node *parent, struct node *child);
/* Finds a direct map entry by exact key. */
struct node *node_get(const struct node *map, const char *key);
