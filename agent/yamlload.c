/* SPDX-License-Identifier: Apache-2.0 */
#include <yaml.h>

#include "log.h"
#include "yamlload.h"

static inline void yaml_parser_deletep(yaml_parser_t *p) {
        yaml_parser_delete(p);
}
static inline void yaml_event_deletep(yaml_event_t *e) {
        yaml_event_delete(e);
}
#define _cleanup_yaml_parser_ __attribute__((cleanup(yaml_parser_deletep)))
#define _cleanup_yaml_event_ __attribute__((cleanup(yaml_event_deletep)))

struct frame {
        struct node *node; /* the map or list being filled (owned by its parent, or the root) */
        char *path;
        char *key;         /* a map's pending key */
        unsigned key_line, key_column;
};

struct loader {
        const char *name;
        struct diags *d;
        struct frame stack[YAML_MAX_DEPTH];
        size_t depth;
        size_t n_nodes;
        struct node *root;
        unsigned documents;
};

static void loader_done(struct loader *l) {
        for (size_t i = 0; i < l->depth; i++) {
                free(l->stack[i].path);
                free(l->stack[i].key);
        }
        l->depth = 0;
        node_free(l->root);
        l->root = NULL;
}

/* A problem about the document, at a position. Returns -EINVAL (or -ENOMEM). */
static int fail_at(struct loader *l, const char *path, size_t line, size_t column, const char *fmt, ...)
        _printf_(5, 6);
static int fail_at(struct loader *l, const char *path, size_t line, size_t column, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL, *where = strdup_printf("%s:%zu:%zu", l->name, line, column);
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (!msg || !where || diags_add(l->d, false, path, where, "%s", msg) < 0)
                return -ENOMEM;
        return -EINVAL;
}

static bool is_null_plain(const char *v) {
        return !*v || streq(v, "~") || streq(v, "null") || streq(v, "Null") || streq(v, "NULL");
}

/* At the end of a mapping: every key given twice is a problem; the first value is kept. Sorting
 * keeps this O(n log n) for hostile documents with huge mappings. */
struct keyed {
        struct node *node;
        size_t index;
};

static int keyed_compare(const void *a, const void *b) {
        const struct keyed *x = a, *y = b;
        int c = strcmp(x->node->key, y->node->key);
        return c ? c : (x->index > y->index) - (x->index < y->index);
}

static int check_duplicates(struct loader *l, struct node *map, const char *path) {
        size_t n = map->n_items;
        if (n < 2)
                return 0;
        _cleanup_free_ struct keyed *sorted = malloc(n * sizeof(struct keyed));
        _cleanup_free_ bool *drop = calloc(n, sizeof(bool));
        if (!sorted || !drop)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                sorted[i] = (struct keyed){ map->items[i], i };
        qsort(sorted, n, sizeof(struct keyed), keyed_compare);
        bool any = false;
        for (size_t i = 1, first = 0; i < n; i++) {
                if (!streq(sorted[i].node->key, sorted[first].node->key)) {
                        first = i;
                        continue;
                }
                const struct node *e = sorted[i].node;
                _cleanup_free_ char *kpath = path_join(path, e->key);
                _cleanup_free_ char *where = strdup_printf("%s:%u:%u", l->name, e->line, e->column);
                if (!kpath || !where ||
                    diags_add(l->d, false, kpath, where, "key given twice in one mapping (first at line %u); "
                              "the first value is used", sorted[first].node->line) < 0)
                        return -ENOMEM;
                drop[sorted[i].index] = true;
                any = true;
        }
        if (!any)
                return 0;
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
                if (drop[i])
                        node_free(map->items[i]);
                else
                        map->items[w++] = map->items[i];
        }
        map->n_items = w;
        return 0;
}

/* Attaches v (owned) to the container on top of the stack, or makes it the root. For a map
 * expecting a key, v must be a scalar and becomes the pending key. */
static int attach(struct loader *l, struct node *v, size_t line, size_t column, bool *ret_is_key) {
        *ret_is_key = false;
        if (++l->n_nodes > YAML_MAX_NODES) {
                node_free(v);
                return fail_at(l, "", line, column, "more than %u values in the document; refused", YAML_MAX_NODES);
        }
        if (l->depth == 0) {
                l->root = v;
                return 0;
        }
        struct frame *top = &l->stack[l->depth - 1];
        if (top->node->kind == NODE_LIST)
                return node_append(top->node, v);
        if (!top->key) {
                if (v->kind != NODE_SCALAR) {
                        node_free(v);
                        return fail_at(l, top->path, line, column, "a mapping key must be a plain string");
                }
                top->key = v->value ? TAKE_PTR(v->value) : strdup("");
                top->key_line = v->line;
                top->key_column = v->column;
                node_free(v);
                *ret_is_key = true;
                return top->key ? 0 : -ENOMEM;
        }
        v->key = TAKE_PTR(top->key);
        if (v->kind != NODE_SCALAR) {
                /* A collection's own position is its first entry: point at its key instead. */
                v->line = top->key_line;
                v->column = top->key_column;
        }
        return node_append(top->node, v);
}

static char *child_path(struct loader *l) {
        if (l->depth == 0)
                return strdup("");
        struct frame *top = &l->stack[l->depth - 1];
        if (top->node->kind == NODE_LIST)
                return path_index(top->path, top->node->n_items);
        return path_join(top->path, strempty(top->key));
}

static int on_collection_start(struct loader *l, enum node_kind kind, const yaml_event_t *ev) {
        size_t line = ev->start_mark.line + 1, column = ev->start_mark.column + 1;
        if (l->depth == YAML_MAX_DEPTH)
                return fail_at(l, "", line, column, "nested more than %d levels deep; refused", YAML_MAX_DEPTH);
        if (l->depth > 0 && l->stack[l->depth - 1].node->kind == NODE_MAP && !l->stack[l->depth - 1].key)
                return fail_at(l, l->stack[l->depth - 1].path, line, column, "a mapping key must be a plain string");
        _cleanup_free_ char *path = child_path(l);
        struct node *n = node_new(kind, ORIGIN_FILE);
        if (!n || !path) {
                node_free(n);
                return -ENOMEM;
        }
        n->line = (unsigned)line;
        n->column = (unsigned)column;
        bool is_key;
        int r = attach(l, n, line, column, &is_key);
        if (r < 0)
                return r;
        l->stack[l->depth++] = (struct frame){ .node = n, .path = TAKE_PTR(path) };
        return 0;
}

static int on_collection_end(struct loader *l) {
        struct frame *top = &l->stack[l->depth - 1];
        int r = 0;
        if (top->node->kind == NODE_MAP)
                r = check_duplicates(l, top->node, top->path);
        free(top->path);
        free(top->key);
        l->depth--;
        return r;
}

static int on_scalar(struct loader *l, const yaml_event_t *ev) {
        const char *tag = (const char *)ev->data.scalar.tag;
        struct node *n = node_new(NODE_SCALAR, ORIGIN_FILE);
        if (!n)
                return -ENOMEM;
        n->line = (unsigned)ev->start_mark.line + 1;
        n->column = (unsigned)ev->start_mark.column + 1;
        n->value = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        if (!n->value) {
                node_free(n);
                return -ENOMEM;
        }
        bool str_tag = tag && (streq(tag, YAML_STR_TAG) || streq(tag, "!"));
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || str_tag;
        if ((!n->quoted && is_null_plain(n->value)) || (tag && streq(tag, YAML_NULL_TAG))) {
                n->null = true;
                n->quoted = false;
        }
        if (strlen(n->value) != ev->data.scalar.length) {
                size_t line = n->line, column = n->column;
                _cleanup_free_ char *path = child_path(l);
                node_free(n);
                return fail_at(l, strempty(path), line, column, "holds a NUL character");
        }
        bool is_key;
        return attach(l, n, n->line, n->column, &is_key);
}

/* Text that starts like markup is most likely an error page served instead of the file. */
static bool looks_like_markup(const char *data, size_t len) {
        size_t i = 0;
        if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
                i = 3;
        while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
                i++;
        return i < len && data[i] == '<';
}

int yaml_load(const char *data, size_t len, const char *name, struct node **ret, struct diags *d) {
        struct loader l = { .name = name, .d = d };
        int r = 0;

        if (len > YAML_MAX_SIZE)
                return fail_at(&l, "", 1, 1, "%s is larger than %u MiB; refused", name, YAML_MAX_SIZE >> 20);
        if (looks_like_markup(data, len))
                return fail_at(&l, "", 1, 1, "%s is not YAML: it looks like an HTML or XML page", name);

        _cleanup_yaml_parser_ yaml_parser_t parser = {};
        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);

        for (bool done = false; !done && r >= 0;) {
                _cleanup_yaml_event_ yaml_event_t ev = {};
                if (!yaml_parser_parse(&parser, &ev)) {
                        if (parser.error == YAML_MEMORY_ERROR) {
                                r = -ENOMEM;
                                break;
                        }
                        const yaml_mark_t *m = &parser.problem_mark;
                        r = fail_at(&l, "", m->line + 1, m->column + 1, "%s is not YAML: %s%s%s", name,
                                    parser.problem ? parser.problem : "syntax error",
                                    parser.context ? " " : "", parser.context ? parser.context : "");
                        break;
                }
                size_t line = ev.start_mark.line + 1, column = ev.start_mark.column + 1;
                const yaml_char_t *anchor = NULL;
                switch (ev.type) {
                case YAML_STREAM_START_EVENT:
                case YAML_NO_EVENT:
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        if (++l.documents > 1)
                                r = fail_at(&l, "", line, column,
                                            "%s holds more than one YAML document ('---'); put the whole "
                                            "configuration in one", name);
                        break;
                case YAML_DOCUMENT_END_EVENT:
                        break;
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_ALIAS_EVENT:
                        r = fail_at(&l, "", line, column, "aliases (*%s) are not supported; write the values out",
                                    (const char *)ev.data.alias.anchor);
                        break;
                case YAML_SCALAR_EVENT:
                        anchor = ev.data.scalar.anchor;
                        if (!anchor)
                                r = on_scalar(&l, &ev);
                        break;
                case YAML_SEQUENCE_START_EVENT:
                        anchor = ev.data.sequence_start.anchor;
                        if (!anchor)
                                r = on_collection_start(&l, NODE_LIST, &ev);
                        break;
                case YAML_MAPPING_START_EVENT:
                        anchor = ev.data.mapping_start.anchor;
                        if (!anchor)
                                r = on_collection_start(&l, NODE_MAP, &ev);
                        break;
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT:
                        r = on_collection_end(&l);
                        break;
                }
                if (anchor)
                        r = fail_at(&l, "", line, column, "anchors (&%s) are not supported; write the values out",
                                    (const char *)anchor);
        }

        if (r >= 0) {
                if (!l.root || (l.root->kind == NODE_SCALAR && l.root->null))
                        r = fail_at(&l, "", 1, 1, "%s is empty: it holds no configuration", name);
                else if (l.root->kind != NODE_MAP)
                        r = fail_at(&l, "", l.root->line, l.root->column,
                                    "%s is not a YAML mapping (it holds %s, not keys such as \"install:\")", name,
                                    l.root->kind == NODE_LIST ? "a list" : "a single text value");
        }
        if (r < 0) {
                loader_done(&l);
                return r;
        }
        *ret = TAKE_PTR(l.root);
        return 0;
}
