/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers of the install tests: configurations built by hand, YAML read back with libyaml,
 * golden files, temporary directories. Header-only; each test program includes it once. */
#pragma once

#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <yaml.h>
#include <cmocka.h>

#include "config.h"
#include "util.h"

/* ---------------------------------------------------------------------------------------------- */
/* Configurations */

/* dir/name, newly allocated (the test fails when out of memory). */
static inline char *path_in(const char *dir, const char *name) {
        char *p = strdup_printf("%s/%s", dir, name);
        assert_non_null(p);
        return p;
}

/* A shell command that must succeed (the test fails naming it otherwise). */
static inline void sh(const char *fmt, ...) _printf_(1, 2);
static inline void sh(const char *fmt, ...) {
        char cmd[8192];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        if (system(cmd) != 0)
                fail_msg("command failed: %s", cmd);
}

static inline char *xstrdup(const char *s) {
        char *r = s ? strdup(s) : NULL;
        assert_true(!s || r);
        return r;
}

static inline void xpush(char ***l, const char *s) {
        assert_int_equal(strv_push(l, s), 0);
}

static inline void xset(struct kvmap *m, const char *k, const char *v) {
        assert_int_equal(kvmap_set(m, k, v), 0);
}

static inline void add_interface(struct config *c, const char *name) {
        struct mgmt_interface *mi = &c->install.management_interface;
        mi->interfaces = realloc(mi->interfaces, (mi->n_interfaces + 1) * sizeof(struct net_interface));
        assert_non_null(mi->interfaces);
        mi->interfaces[mi->n_interfaces++] = (struct net_interface) { .name = xstrdup(name) };
}

static inline void add_write_file(struct config *c, const char *path, const char *content, const char *perm,
                                  const char *owner) {
        struct os_config *os = &c->os;
        os->write_files = realloc(os->write_files, (os->n_write_files + 1) * sizeof(struct write_file));
        assert_non_null(os->write_files);
        os->write_files[os->n_write_files++] = (struct write_file) {
                .path = xstrdup(path), .content = xstrdup(content), .permissions = xstrdup(perm), .owner = xstrdup(owner),
        };
}

/* A minimal valid configuration of the given mode. */
static inline struct config *config_new(const char *mode) {
        struct config *c = calloc(1, sizeof *c);
        assert_non_null(c);
        c->scheme_version = 1;
        c->token = xstrdup("token");
        c->os.hostname = xstrdup("node1");
        c->install.mode = xstrdup(mode);
        c->install.automatic = true;
        c->install.device = xstrdup("/dev/sda");
        c->install.iso_urls = calloc(2, sizeof(char *));
        assert_non_null(c->install.iso_urls);
        c->install.iso_urls[0] = xstrdup("http://10.0.2.2/harvester.iso");
        c->install.iso_checksum_url = xstrdup("http://10.0.2.2/harvester.sha512");
        c->install.management_interface.method = xstrdup("dhcp");
        add_interface(c, "ens5");
        if (streq(mode, "create")) {
                c->install.vip = xstrdup("10.0.2.100");
                c->install.vip_mode = xstrdup("static");
        } else
                c->server_url = xstrdup("https://10.0.2.100:443");
        return c;
}

static inline void config_destroy(struct config *c) {
        if (!c)
                return;
        free(c->server_url);
        free(c->token);
        strv_free(c->sans);
        kvmap_clear(&c->system_settings);
        free(c->runtime_version);
        free(c->rancher_version);

        struct os_config *os = &c->os;
        free(os->hostname);
        strv_free(os->ssh_authorized_keys);
        free(os->password);
        strv_free(os->ntp_servers);
        strv_free(os->dns_nameservers);
        kvmap_clear(&os->labels);
        strv_free(os->modules);
        kvmap_clear(&os->sysctls);
        kvmap_clear(&os->environment);
        for (size_t i = 0; i < os->n_write_files; i++) {
                free(os->write_files[i].path);
                free(os->write_files[i].content);
                free(os->write_files[i].encoding);
                free(os->write_files[i].owner);
                free(os->write_files[i].permissions);
        }
        free(os->write_files);
        strv_free(os->after_install_chroot_commands);
        strv_free(os->persistent_state_paths);
        free(os->additional_kernel_arguments);

        struct install_config *in = &c->install;
        struct mgmt_interface *mi = &in->management_interface;
        for (size_t i = 0; i < mi->n_interfaces; i++) {
                free(mi->interfaces[i].name);
                free(mi->interfaces[i].hw_addr);
        }
        free(mi->interfaces);
        free(mi->method);
        free(mi->ip);
        free(mi->subnet_mask);
        free(mi->gateway);
        kvmap_clear(&mi->bond_options);
        free(in->mode);
        free(in->vip);
        free(in->vip_mode);
        free(in->vip_hw_addr);
        free(in->device);
        free(in->data_disk);
        strv_free(in->iso_urls);
        free(in->iso_checksum);
        free(in->iso_checksum_url);
        free(in->config_url);
        free(in->tty);
        free(in->role);
        strv_free(in->wipe_disks_list);
        free(in->persistent_partition_size);
        free(in->cluster_pod_cidr);
        free(in->cluster_service_cidr);
        free(in->cluster_dns);
        strv_free(c->boot.consoles);
        free(c->source_name);
        free(c);
}

/* ---------------------------------------------------------------------------------------------- */
/* YAML read back */

struct ydoc {
        yaml_document_t doc;
        bool loaded;
};

/* Parses text (one document) with libyaml; fails the test when it is not valid YAML. */
static inline struct ydoc *ydoc_parse(const char *text) {
        struct ydoc *d = calloc(1, sizeof *d);
        yaml_parser_t p;
        assert_non_null(d);
        assert_true(yaml_parser_initialize(&p));
        yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
        int ok = yaml_parser_load(&p, &d->doc);
        if (!ok)
                fail_msg("not valid YAML: %s at line %zu:\n%s", p.problem, p.problem_mark.line + 1, text);
        yaml_parser_delete(&p);
        d->loaded = true;
        assert_non_null(yaml_document_get_root_node(&d->doc));
        return d;
}

static inline void ydoc_free(struct ydoc *d) {
        if (d && d->loaded)
                yaml_document_delete(&d->doc);
        free(d);
}

static inline yaml_node_t *ynode(struct ydoc *d, int id) {
        return id ? yaml_document_get_node(&d->doc, id) : NULL;
}

/* Follows a path like "stages.initramfs.0.files" (numbers index sequences); NULL when absent. */
static inline yaml_node_t *yget(struct ydoc *d, yaml_node_t *n, const char *path) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", path);
        char *save = NULL;
        if (!n)
                n = yaml_document_get_root_node(&d->doc);
        for (char *tok = strtok_r(buf, ".", &save); tok && n; tok = strtok_r(NULL, ".", &save)) {
                if (n->type == YAML_SEQUENCE_NODE) {
                        char *end;
                        long i = strtol(tok, &end, 10);
                        long len = n->data.sequence.items.top - n->data.sequence.items.start;
                        if (*end || i < 0 || i >= len)
                                return NULL;
                        n = ynode(d, n->data.sequence.items.start[i]);
                } else if (n->type == YAML_MAPPING_NODE) {
                        yaml_node_t *found = NULL;
                        for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
                                yaml_node_t *k = ynode(d, pr->key);
                                if (k && k->type == YAML_SCALAR_NODE && streq((char *)k->data.scalar.value, tok)) {
                                        found = ynode(d, pr->value);
                                        break;
                                }
                        }
                        n = found;
                } else
                        return NULL;
        }
        return n;
}

/* The value of a mapping entry by exact key (keys with dots, such as sysctl names). */
static inline yaml_node_t *ykey(struct ydoc *d, yaml_node_t *map, const char *key) {
        if (!map || map->type != YAML_MAPPING_NODE)
                return NULL;
        for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top; pr++) {
                yaml_node_t *k = ynode(d, pr->key);
                if (k && k->type == YAML_SCALAR_NODE && streq((char *)k->data.scalar.value, key))
                        return ynode(d, pr->value);
        }
        return NULL;
}

static inline const char *yscalar(yaml_node_t *n) {
        if (!n || n->type != YAML_SCALAR_NODE)
                fail_msg("not a scalar");
        return (const char *)n->data.scalar.value;
}

/* The string at path; fails the test when it is absent or not a scalar. */
static inline const char *ystr(struct ydoc *d, yaml_node_t *n, const char *path) {
        yaml_node_t *v = yget(d, n, path);
        if (!v || v->type != YAML_SCALAR_NODE)
                fail_msg("no scalar at '%s'", path);
        return (const char *)v->data.scalar.value;
}

/* The scalar's style: quoted scalars are strings for every YAML reader. */
static inline bool yquoted(struct ydoc *d, yaml_node_t *n, const char *path) {
        yaml_node_t *v = yget(d, n, path);
        assert_non_null(v);
        return v->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
               v->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
}

static inline long ylen(struct ydoc *d, yaml_node_t *n, const char *path) {
        yaml_node_t *v = yget(d, n, path);
        if (!v)
                return -1;
        if (v->type == YAML_SEQUENCE_NODE)
                return v->data.sequence.items.top - v->data.sequence.items.start;
        if (v->type == YAML_MAPPING_NODE)
                return v->data.mapping.pairs.top - v->data.mapping.pairs.start;
        return -1;
}

/* The entry of a sequence of mappings whose `key` is `value`. */
static inline yaml_node_t *yfind(struct ydoc *d, yaml_node_t *seq, const char *key, const char *value) {
        if (!seq || seq->type != YAML_SEQUENCE_NODE)
                return NULL;
        for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
                yaml_node_t *e = ynode(d, *it);
                yaml_node_t *v = yget(d, e, key);
                if (v && v->type == YAML_SCALAR_NODE && streq((char *)v->data.scalar.value, value))
                        return e;
        }
        return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* Files */

static inline char *tmpdir_new(void) {
        const char *base = getenv("TMPDIR"); /* tests/run-all: one per run */
        char tmpl[4096];
        snprintf(tmpl, sizeof tmpl, "%s/test-install-XXXXXX", base && *base ? base : "/tmp");
        assert_non_null(mkdtemp(tmpl));
        return xstrdup(tmpl);
}

static inline int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static inline void tmpdir_remove(char *dir) {
        if (dir)
                nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
}

static inline char *read_text(const char *path) {
        char *s = NULL;
        int r = read_full_file(path, &s, NULL);
        if (r < 0)
                fail_msg("cannot read '%s': %s", path, strerror(-r));
        return s;
}

static inline void write_text(const char *path, const char *text) {
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

static inline mode_t file_mode(const char *path) {
        struct stat st;
        if (stat(path, &st) < 0)
                fail_msg("cannot stat '%s': %s", path, strerror(errno));
        return st.st_mode & 07777;
}

/* Compares text with tests/install/golden/<name>. With UPDATE_GOLDEN=1 exactly (no other value)
 * a file that differs is rewritten, and the test still fails: a rewrite is never a pass. */
static inline void golden_check(const char *name, const char *text) {
        const char *src = getenv("TESTS_SOURCE_DIR");
        assert_non_null(src);
        char path[4096];
        snprintf(path, sizeof path, "%s/install/golden/%s", src, name);
        bool update = streq_ptr(getenv("UPDATE_GOLDEN"), "1");
        char *want = access(path, F_OK) == 0 || !update ? read_text(path) : strdup("");
        if (!streq(want, text)) {
                if (update) {
                        write_text(path, text);
                        free(want);
                        fail_msg("%s differed from the golden file: rewritten (UPDATE_GOLDEN=1); review the diff, run again without UPDATE_GOLDEN",
                                 name);
                }
                /* Print the first differing line for the log. */
                size_t i = 0, line = 1;
                while (want[i] && want[i] == text[i]) {
                        if (want[i] == '\n')
                                line++;
                        i++;
                }
                fail_msg("%s differs from the golden file at line %zu (UPDATE_GOLDEN=1 rewrites it):\n%s", name, line,
                         text);
        }
        free(want);
}
