/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <dirent.h>

#include "cmdline.h"
#include "log.h"
#include "validate.h"

#define PREFIX "harvester."

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int cmdline_split(const char *text, char ***ret) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        size_t n = 0, cap = 1;
        const char *p = text;
        for (;;) {
                while (is_blank(*p))
                        p++;
                if (!*p)
                        break;
                /* First pass: the length of the argument without its quotes. */
                size_t len = 0;
                bool quoted = false;
                const char *q;
                for (q = p; *q && (quoted || !is_blank(*q)); q++) {
                        if (*q == '"')
                                quoted = !quoted;
                        else
                                len++;
                }
                char *arg = malloc(len + 1), *w = arg;
                if (!arg)
                        return -ENOMEM;
                for (; p < q; p++)
                        if (*p != '"')
                                *w++ = *p;
                *w = 0;
                if (n + 2 > cap) {
                        size_t ncap = cap * 2 + 2;
                        char **m = realloc(l, ncap * sizeof(char *));
                        if (!m) {
                                free(arg);
                                return -ENOMEM;
                        }
                        l = m;
                        cap = ncap;
                }
                l[n++] = arg;
                l[n] = NULL;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* dracut's getargbool: a bare flag is on; 0, no, off (and false) turn it off. */
static bool dracut_bool(const char *value) {
        bool b;
        if (!value)
                return true;
        if (parse_bool(value, &b) == 0)
                return b;
        return true;
}

static bool has_prefix_ci(const char *s, const char *prefix, const char **rest) {
        size_t n = strlen(prefix);
        if (strncasecmp(s, prefix, n) != 0)
                return false;
        *rest = s + n;
        return true;
}

static char *mac_normalize(const char *mac) {
        char *r = strdup(mac);
        for (char *p = r; r && *p; p++)
                *p = *p == '-' ? ':' : (char)tolower((unsigned char)*p);
        return r;
}

int cmdline_parse_interface(const char *value, enum node_origin origin, struct node **ret,
                            const char **ret_error) {
        _cleanup_free_ char *v = malloc(strlen(value) + 1);
        _cleanup_free_ char *name = NULL, *mac = NULL;
        if (!v)
                return -ENOMEM;
        char *w = v;
        for (const char *p = value; *p; p++)
                if (!is_blank(*p))
                        *w++ = *p;
        *w = 0;
        if (!*v) {
                *ret_error = "empty value: give an interface name, a MAC address, name:NAME or hwAddr:MAC";
                return -EINVAL;
        }
        char *save = NULL;
        for (char *part = v;; part = NULL) {
                /* strtok_r would skip empty items; a "," at either end or ",," is a mistake. */
                char *s = part ? part : save;
                if (!s)
                        break;
                char *comma = strchr(s, ',');
                if (comma) {
                        *comma = 0;
                        save = comma + 1;
                } else
                        save = NULL;
                const char *rest;
                if (!*s) {
                        *ret_error = "empty item in the comma list";
                        return -EINVAL;
                }
                bool is_name;
                if (has_prefix_ci(s, "name:", &rest))
                        is_name = true;
                else if (has_prefix_ci(s, "hwAddr:", &rest) || has_prefix_ci(s, "hw_addr:", &rest)) {
                        is_name = false;
                        if (!valid_mac(rest)) {
                                *ret_error = "not a valid MAC address (expected six hex pairs, aa:bb:cc:dd:ee:ff)";
                                return -EINVAL;
                        }
                } else if (valid_mac(s)) {
                        is_name = false;
                        rest = s;
                } else if (strchr(s, ':')) {
                        *ret_error = "neither a MAC address nor name:NAME or hwAddr:MAC "
                                     "(a MAC address is six hex pairs, aa:bb:cc:dd:ee:ff)";
                        return -EINVAL;
                } else {
                        is_name = true;
                        rest = s;
                }
                if (is_name) {
                        if (!valid_ifname(rest)) {
                                *ret_error = "not a valid interface name (1-15 letters, digits, '.', '_', '-', '@')";
                                return -EINVAL;
                        }
                        if (name) {
                                *ret_error = "names two interfaces; give one interface per argument "
                                             "(repeat the argument for each interface)";
                                return -EINVAL;
                        }
                        if (!(name = strdup(rest)))
                                return -ENOMEM;
                } else {
                        if (mac) {
                                *ret_error = "gives two MAC addresses; give one interface per argument "
                                             "(repeat the argument for each interface)";
                                return -EINVAL;
                        }
                        if (!(mac = mac_normalize(rest)))
                                return -ENOMEM;
                }
        }

        _cleanup_node_ struct node *m = node_new(NODE_MAP, origin);
        if (!m)
                return -ENOMEM;
        const char *keys[] = { "name", "hw_addr" };
        char *vals[] = { name, mac };
        for (size_t i = 0; i < 2; i++) {
                if (!vals[i])
                        continue;
                struct node *s = node_new(NODE_SCALAR, origin);
                if (!s)
                        return -ENOMEM;
                s->key = strdup(keys[i]);
                s->value = strdup(vals[i]);
                if (!s->key || !s->value) {
                        node_free(s);
                        return -ENOMEM;
                }
                if (node_append(m, s) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(m);
        return 0;
}

static struct node *new_child(struct node *parent, enum node_kind kind, const char *key) {
        struct node *c = node_new(kind, ORIGIN_CMDLINE);
        if (!c)
                return NULL;
        if (!(c->key = strdup(key))) {
                node_free(c);
                return NULL;
        }
        if (node_append(parent, c) < 0)
                return NULL;
        return c;
}

static struct node *new_scalar(const char *value) {
        struct node *s = node_new(NODE_SCALAR, ORIGIN_CMDLINE);
        if (s && !(s->value = strdup(value))) {
                node_free(s);
                return NULL;
        }
        return s;
}

/* Adds one harvester.* argument (key without the prefix) to the tree. */
static int add_harvester(struct node *root, const char *key, const char *value, struct diags *d) {
        _cleanup_free_ char *copy = strdup(key);
        _cleanup_free_ char *path = strdup("");
        if (!copy || !path)
                return -ENOMEM;

        /* The key, split on '.'. */
        char *comps[CMDLINE_MAX_DEPTH];
        size_t n = 0;
        for (char *p = copy;;) {
                if (n == CMDLINE_MAX_DEPTH)
                        return diags_add(d, false, "", "kernel command line",
                                         "kernel argument \"" PREFIX "%.100s\": the key has more than %d parts", key,
                                         CMDLINE_MAX_DEPTH);
                comps[n++] = p;
                char *dot = strchr(p, '.');
                if (!dot)
                        break;
                *dot = 0;
                p = dot + 1;
        }
        for (size_t i = 0; i < n; i++)
                if (!*comps[i])
                        return diags_add(d, false, "", "kernel command line",
                                         "kernel argument \"" PREFIX "%.200s\": the key has an empty part", key);

        const struct schema_field *field = schema_root();
        struct node *cur = root;
        for (size_t i = 0; i < n; i++) {
                const char *name = comps[i];
                bool last = i + 1 == n;
                if (field && (field->type == ST_KVMAP || field->type == ST_HEADERS)) {
                        /* Below a map of names (os.labels, sysctls ...), the rest is ONE key. */
                        for (size_t j = i + 1; j < n; j++)
                                comps[j][-1] = '.';
                        name = comps[i];
                        last = true;
                        field = NULL;
                } else if (field && (field->type == ST_STRUCT || field->type == ST_LIST)) {
                        field = schema_child(field, name);
                        if (field)
                                name = field->name;
                } else
                        field = NULL;

                char *np = path_join(path, name);
                if (!np)
                        return -ENOMEM;
                free(path);
                path = np;

                struct node *child = node_get(cur, name);
                if (!last) {
                        if (!child)
                                child = new_child(cur, NODE_MAP, name);
                        if (!child)
                                return -ENOMEM;
                        if (child->kind != NODE_MAP)
                                return diags_add(d, false, path, "kernel command line",
                                                 "given both as a value and as a map (\"" PREFIX "%.200s\")", key);
                        cur = child;
                        continue;
                }

                if (field && (field->flags & SF_IFACE)) {
                        struct node *m = NULL;
                        const char *error = NULL;
                        int r = cmdline_parse_interface(value, ORIGIN_CMDLINE, &m, &error);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                return diags_add(d, false, path, "kernel command line",
                                                 "kernel argument \"" PREFIX "%.200s=%.200s\": %s", key, value, error);
                        if (!child && !(child = new_child(cur, NODE_LIST, name))) {
                                node_free(m);
                                return -ENOMEM;
                        }
                        if (child->kind != NODE_LIST) {
                                node_free(m);
                                return diags_add(d, false, path, "kernel command line",
                                                 "given both as a list of interfaces and as a map");
                        }
                        return node_append(child, m);
                }

                struct node *s = new_scalar(value);
                if (!s)
                        return -ENOMEM;
                if (!child) {
                        s->key = strdup(name);
                        if (!s->key) {
                                node_free(s);
                                return -ENOMEM;
                        }
                        return node_append(cur, s);
                }
                if (child->kind == NODE_MAP) {
                        node_free(s);
                        return diags_add(d, false, path, "kernel command line",
                                         "given both as a value and as a map (\"" PREFIX "%.200s\")", key);
                }
                if (child->kind == NODE_SCALAR) {
                        /* Repeated: the scalar becomes a list of the values, in order. */
                        struct node *first = node_new(NODE_SCALAR, ORIGIN_CMDLINE);
                        if (!first) {
                                node_free(s);
                                return -ENOMEM;
                        }
                        first->value = TAKE_PTR(child->value);
                        child->kind = NODE_LIST;
                        if (node_append(child, first) < 0) {
                                node_free(s);
                                return -ENOMEM;
                        }
                }
                return node_append(child, s);
        }
        return 0;
}

void boot_args_clear(struct boot_args *b) {
        strv_free(b->consoles);
        *b = (struct boot_args){ .rd_shell = -1 };
}

int cmdline_parse(const char *text, struct node **ret_tree, struct boot_args *ret_boot, struct diags *d) {
        _cleanup_node_ struct node *root = node_new(NODE_MAP, ORIGIN_CMDLINE);
        _cleanup_strv_free_ char **args = NULL;
        struct boot_args boot = { .rd_shell = -1 };
        int r;

        if (!root)
                return -ENOMEM;
        if (strlen(text) > CMDLINE_MAX_SIZE) {
                r = diags_add(d, false, "", "kernel command line",
                              "the kernel command line is longer than %u bytes; refused", CMDLINE_MAX_SIZE);
                if (r < 0)
                        return r;
                *ret_tree = TAKE_PTR(root);
                *ret_boot = boot;
                return 0;
        }
        if ((r = cmdline_split(text, &args)) < 0)
                return r;

        STRV_FOREACH(a, args) {
                char *eq = strchr(*a, '=');
                const char *value = eq ? eq + 1 : NULL;
                if (eq)
                        *eq = 0;
                const char *key = *a;
                if (streq(key, "rd.noverifyssl"))
                        boot.noverifyssl = dracut_bool(value);
                else if (streq(key, "rd.shell"))
                        boot.rd_shell = dracut_bool(value);
                else if (streq(key, "console")) {
                        if (value && *value && (r = strv_push(&boot.consoles, value)) < 0)
                                break;
                } else if (strncmp(key, PREFIX, strlen(PREFIX)) == 0) {
                        if ((r = add_harvester(root, key + strlen(PREFIX), value ? value : "true", d)) < 0)
                                break;
                }
                r = 0;
        }
        if (r < 0) {
                strv_free(boot.consoles);
                return r;
        }

        /* harvester.install.automatic as the command line alone says it (last one wins). */
        const struct node *a = node_get(node_get(root, "install"), "automatic");
        if (a && a->kind == NODE_LIST && a->n_items > 0)
                a = a->items[a->n_items - 1];
        bool b;
        if (a && a->kind == NODE_SCALAR && parse_bool(a->value, &b) == 0)
                boot.automatic = b;

        *ret_tree = TAKE_PTR(root);
        *ret_boot = boot;
        return 0;
}

/* Appends a file's lines to *buf (joined with spaces, '#' lines skipped), as dracut's getcmdline. */
static int append_lines(char **buf, size_t *len, const char *text) {
        for (const char *p = text; *p;) {
                size_t n = strcspn(p, "\n");
                const char *s = p;
                while (s < p + n && is_blank(*s))
                        s++;
                if (s < p + n && *s != '#') {
                        if (*len + n + 2 > CMDLINE_MAX_SIZE + 1)
                                return -E2BIG;
                        char *m = realloc(*buf, *len + n + 2);
                        if (!m)
                                return -ENOMEM;
                        *buf = m;
                        if (*len > 0)
                                m[(*len)++] = ' ';
                        memcpy(m + *len, p, n);
                        *len += n;
                        m[*len] = 0;
                }
                p += n;
                if (*p == '\n')
                        p++;
        }
        return 0;
}

static int append_file(char **buf, size_t *len, const char *path, bool missing_ok) {
        _cleanup_free_ char *text = NULL;
        size_t n;
        int r = read_full_file(path, &text, &n);
        if (r == -ENOENT && missing_ok)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Cannot read the kernel command line from \"%s\": %s", path, strerror(-r));
        if (n > CMDLINE_MAX_SIZE || memchr(text, 0, n)) {
                r = n > CMDLINE_MAX_SIZE ? -E2BIG : -EINVAL;
                return log_error_errno(r, "Cannot use \"%s\" as kernel command line: %s.", path,
                                       r == -E2BIG ? "larger than 256 KiB" : "it holds NUL bytes");
        }
        r = append_lines(buf, len, text);
        if (r == -E2BIG)
                return log_error_errno(r, "The kernel command line (with \"%s\") is larger than 256 KiB; refused.",
                                       path);
        return r;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int append_dir(char **buf, size_t *len, const char *dir) {
        _cleanup_strv_free_ char **names = NULL;
        DIR *dp = opendir(dir);
        if (!dp)
                return 0; /* absent: nothing to add, as in dracut */
        int r = 0;
        struct dirent *de;
        while ((de = readdir(dp))) {
                size_t n = strlen(de->d_name);
                if (n > 5 && streq(de->d_name + n - 5, ".conf") && (r = strv_push(&names, de->d_name)) < 0)
                        break;
        }
        closedir(dp);
        if (r < 0)
                return r;
        if (names)
                qsort(names, strv_length(names), sizeof(char *), cmp_str);
        STRV_FOREACH(name, names) {
                _cleanup_free_ char *path = strdup_printf("%s/%s", dir, *name);
                if (!path)
                        return -ENOMEM;
                if ((r = append_file(buf, len, path, true)) < 0)
                        return r;
        }
        return 0;
}

int cmdline_read(const char *file, const char *root, char **ret) {
        _cleanup_free_ char *buf = strdup("");
        size_t len = 0;
        int r;
        if (!buf)
                return -ENOMEM;
        if (file) {
                if ((r = append_file(&buf, &len, file, false)) < 0)
                        return r;
                *ret = TAKE_PTR(buf);
                return 0;
        }
        if (isempty(root) || streq(root, "/"))
                root = "";
        static const char *const dirs[] = { "/etc/cmdline.d", "/run/initramfs/cmdline.d" };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *dir = strdup_printf("%s%s", root, dirs[i]);
                if (!dir)
                        return -ENOMEM;
                if ((r = append_dir(&buf, &len, dir)) < 0)
                        return r;
        }
        static const char *const files[] = { "/etc/cmdline", "/proc/cmdline" };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *path = strdup_printf("%s%s", root, files[i]);
                if (!path)
                        return -ENOMEM;
                if ((r = append_file(&buf, &len, path, true)) < 0)
                        return r;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}
