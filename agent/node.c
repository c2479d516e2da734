/* SPDX-License-Identifier: Apache-2.0 */
#include "node.h"
#include "util.h"

struct node *node_new(enum node_kind kind, enum node_origin origin) {
        struct node *n = calloc(1, sizeof(struct node));
        if (!n)
                return NULL;
        n->kind = kind;
        n->origin = origin;
        return n;
}

/* Iterative over the items so that a long list does not cost stack; depth is bounded by the
 * loaders (yamlload.c, cmdline.c), so recursion into children is fine. */
void node_free(struct node *n) {
        if (!n)
                return;
        for (size_t i = 0; i < n->n_items; i++)
                node_free(n->items[i]);
        free(n->items);
        free(n->key);
        free(n->value);
        free(n);
}

/* Capacity grows by doubling: a node of n items (n > 0) has room for max(4, next power of two). */
static bool needs_growth(size_t n) {
        return n == 0 || (n >= 4 && (n & (n - 1)) == 0);
}

int node_append(struct node *parent, struct node *child) {
        if (!parent || !child || parent->kind == NODE_SCALAR) {
                node_free(child);
                return -EINVAL;
        }
        size_t n = parent->n_items;
        if (needs_growth(n)) {
                size_t cap = n == 0 ? 4 : n * 2;
                if (cap > SIZE_MAX / sizeof(struct node *)) {
                        node_free(child);
                        return -ENOMEM;
                }
                struct node **items = realloc(parent->items, cap * sizeof(struct node *));
                if (!items) {
                        node_free(child);
                        return -ENOMEM;
                }
                parent->items = items;
        }
        parent->items[parent->n_items++] = child;
        return 0;
}

struct node *node_copy(const struct node *n) {
        if (!n)
                return NULL;
        _cleanup_node_ struct node *c = node_new(n->kind, n->origin);
        if (!c)
                return NULL;
        c->line = n->line;
        c->column = n->column;
        c->quoted = n->quoted;
        c->null = n->null;
        if (n->key && !(c->key = strdup(n->key)))
                return NULL;
        if (n->value && !(c->value = strdup(n->value)))
                return NULL;
        for (size_t i = 0; i < n->n_items; i++) {
                struct node *item = node_copy(n->items[i]);
                if (!item || node_append(c, item) < 0)
                        return NULL;
        }
        return TAKE_PTR(c);
}

struct node *node_get(const struct node *map, const char *key) {
        if (!map || map->kind != NODE_MAP || !key)
                return NULL;
        for (size_t i = 0; i < map->n_items; i++)
                if (map->items[i]->key && streq(map->items[i]->key, key))
                        return map->items[i];
        return NULL;
}
