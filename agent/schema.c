/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>

#include "cmdline.h"
#include "log.h"
#include "http.h"
#include "schema.h"

/* ======================================================================================
 * The table: scheme_version 1 (REFERENCE.md section 2, HARVESTER-V1.1.md section 1).
 * ====================================================================================== */

#define FLD(st, m, n, t, ...) { .name = (n), .type = (t), .offset = offsetof(st, m), __VA_ARGS__ }
#define IGN(n, ...) { .name = (n), .type = ST_IGNORED, __VA_ARGS__ }

static const struct schema_field interface_fields[] = {
        FLD(struct net_interface, name, "name", ST_STRING),
        FLD(struct net_interface, hw_addr, "hw_addr", ST_STRING, .aliases = "hwAddr"),
        {},
};

static const struct schema_field mgmt_fields[] = {
        FLD(struct mgmt_interface, interfaces, "interfaces", ST_LIST, .flags = SF_IFACE,
            .aliases = "interface", .fields = interface_fields, .elem_size = sizeof(struct net_interface),
            .count_offset = offsetof(struct mgmt_interface, n_interfaces)),
        FLD(struct mgmt_interface, method, "method", ST_STRING),
        FLD(struct mgmt_interface, ip, "ip", ST_STRING),
        FLD(struct mgmt_interface, subnet_mask, "subnet_mask", ST_STRING, .aliases = "subnetMask"),
        FLD(struct mgmt_interface, gateway, "gateway", ST_STRING),
        FLD(struct mgmt_interface, bond_options, "bond_options", ST_KVMAP, .aliases = "bondOptions"),
        FLD(struct mgmt_interface, mtu, "mtu", ST_INT),
        FLD(struct mgmt_interface, vlan_id, "vlan_id", ST_INT, .aliases = "vlanId vlanID"),
        FLD(struct mgmt_interface, default_route, "default_route", ST_BOOL, .aliases = "defaultRoute"),
        {},
};

static const struct schema_field write_file_fields[] = {
        FLD(struct write_file, path, "path", ST_STRING),
        FLD(struct write_file, content, "content", ST_STRING),
        FLD(struct write_file, encoding, "encoding", ST_STRING),
        FLD(struct write_file, owner, "owner", ST_STRING),
        FLD(struct write_file, permissions, "permissions", ST_STRING),
        {},
};

/* basic_auth lives flat in struct webhook: a struct at offset 0 whose members are webhook's. */
static const struct schema_field basic_auth_fields[] = {
        FLD(struct webhook, basic_auth_user, "user", ST_STRING),
        FLD(struct webhook, basic_auth_password, "password", ST_STRING, .flags = SF_SECRET),
        {},
};

static const struct schema_field webhook_fields[] = {
        FLD(struct webhook, event, "event", ST_STRING),
        FLD(struct webhook, method, "method", ST_STRING),
        FLD(struct webhook, url, "url", ST_STRING, .flags = SF_URL),
        FLD(struct webhook, payload, "payload", ST_STRING),
        FLD(struct webhook, headers, "headers", ST_HEADERS, .count_offset = offsetof(struct webhook, n_headers)),
        FLD(struct webhook, insecure, "insecure", ST_BOOL),
        { .name = "basic_auth", .type = ST_STRUCT, .offset = 0, .aliases = "basicAuth", .fields = basic_auth_fields },
        {},
};

static const struct schema_field sshd_fields[] = {
        FLD(struct os_config, sshd_sftp, "sftp", ST_BOOL),
        FLD(struct os_config, sshd_disable_password_auth, "disable_password_auth", ST_BOOL,
            .aliases = "disablePasswordAuth"),
        {},
};

static const struct schema_field os_fields[] = {
        FLD(struct os_config, hostname, "hostname", ST_STRING),
        FLD(struct os_config, ssh_authorized_keys, "ssh_authorized_keys", ST_STRV,
            .aliases = "sshAuthorizedKeys ssh_authorized_key sshAuthorizedKey"),
        FLD(struct os_config, password, "password", ST_STRING, .flags = SF_SECRET),
        FLD(struct os_config, ntp_servers, "ntp_servers", ST_STRV, .aliases = "ntpServers ntp_server ntpServer"),
        FLD(struct os_config, dns_nameservers, "dns_nameservers", ST_STRV,
            .aliases = "dnsNameservers dns_nameserver dnsNameserver"),
        FLD(struct os_config, labels, "labels", ST_KVMAP, .aliases = "label"),
        FLD(struct os_config, modules, "modules", ST_STRV, .aliases = "module"),
        FLD(struct os_config, sysctls, "sysctls", ST_KVMAP, .aliases = "sysctl"),
        FLD(struct os_config, environment, "environment", ST_KVMAP, .flags = SF_SECRET_VALUES),
        FLD(struct os_config, write_files, "write_files", ST_LIST, .aliases = "writeFiles write_file writeFile",
            .fields = write_file_fields, .elem_size = sizeof(struct write_file),
            .count_offset = offsetof(struct os_config, n_write_files)),
        FLD(struct os_config, after_install_chroot_commands, "after_install_chroot_commands", ST_STRV,
            .aliases = "afterInstallChrootCommands after_install_chroot_command"),
        FLD(struct os_config, persistent_state_paths, "persistent_state_paths", ST_STRV,
            .aliases = "persistentStatePaths persistent_state_path"),
        FLD(struct os_config, additional_kernel_arguments, "additional_kernel_arguments", ST_STRING,
            .aliases = "additionalKernelArguments"),
        { .name = "sshd", .type = ST_STRUCT, .offset = 0, .fields = sshd_fields },
        IGN("wifi"),
        IGN("external_storage_config", .aliases = "externalStorageConfig"),
        {},
};

static const struct schema_field install_fields[] = {
        FLD(struct install_config, automatic, "automatic", ST_BOOL),
        FLD(struct install_config, mode, "mode", ST_STRING),
        FLD(struct install_config, management_interface, "management_interface", ST_STRUCT,
            .aliases = "managementInterface", .fields = mgmt_fields),
        FLD(struct install_config, vip, "vip", ST_STRING),
        FLD(struct install_config, vip_mode, "vip_mode", ST_STRING, .aliases = "vipMode"),
        FLD(struct install_config, vip_hw_addr, "vip_hw_addr", ST_STRING, .aliases = "vipHwAddr"),
        FLD(struct install_config, device, "device", ST_STRING),
        FLD(struct install_config, data_disk, "data_disk", ST_STRING, .aliases = "dataDisk"),
        FLD(struct install_config, iso_urls, "iso_url", ST_STRV, .flags = SF_URL | SF_CMDLINE_REPLACES,
            .aliases = "isoUrl isoURL"),
        FLD(struct install_config, iso_checksum, "iso_checksum", ST_STRING, .aliases = "isoChecksum"),
        FLD(struct install_config, iso_checksum_url, "iso_checksum_url", ST_STRING, .flags = SF_URL,
            .aliases = "isoChecksumUrl isoChecksumURL"),
        FLD(struct install_config, config_url, "config_url", ST_STRING, .flags = SF_URL,
            .aliases = "configUrl configURL"),
        FLD(struct install_config, config_url_timeout, "config_url_timeout", ST_INT, .aliases = "configUrlTimeout"),
        FLD(struct install_config, config_checksum, "config_checksum", ST_STRING, .aliases = "configChecksum"),
        FLD(struct install_config, tty, "tty", ST_STRING),
        FLD(struct install_config, force_efi, "force_efi", ST_BOOL, .aliases = "forceEfi forceEFI"),
        FLD(struct install_config, force_gpt, "force_gpt", ST_BOOL, .aliases = "forceGpt forceGPT"),
        FLD(struct install_config, force_mbr, "force_mbr", ST_BOOL, .aliases = "forceMbr forceMBR"),
        FLD(struct install_config, silent, "silent", ST_BOOL),
        FLD(struct install_config, poweroff, "poweroff", ST_BOOL, .aliases = "powerOff power_off"),
        FLD(struct install_config, no_format, "no_format", ST_BOOL, .aliases = "noFormat"),
        FLD(struct install_config, debug, "debug", ST_BOOL),
        FLD(struct install_config, skipchecks, "skipchecks", ST_BOOL, .aliases = "skipChecks skip_checks"),
        FLD(struct install_config, role, "role", ST_STRING),
        FLD(struct install_config, wipe_all_disks, "wipe_all_disks", ST_BOOL, .aliases = "wipeAllDisks"),
        FLD(struct install_config, wipe_disks_list, "wipe_disks_list", ST_STRV, .aliases = "wipeDisksList"),
        FLD(struct install_config, persistent_partition_size, "persistent_partition_size", ST_STRING,
            .aliases = "persistentPartitionSize"),
        FLD(struct install_config, webhooks, "webhooks", ST_LIST, .aliases = "webhook", .fields = webhook_fields,
            .elem_size = sizeof(struct webhook), .count_offset = offsetof(struct install_config, n_webhooks)),
        FLD(struct install_config, addons, "addons", ST_TREE),
        FLD(struct install_config, harvester, "harvester", ST_TREE),
        FLD(struct install_config, cluster_pod_cidr, "cluster_pod_cidr", ST_STRING,
            .aliases = "clusterPodCidr clusterPodCIDR"),
        FLD(struct install_config, cluster_service_cidr, "cluster_service_cidr", ST_STRING,
            .aliases = "clusterServiceCidr clusterServiceCIDR"),
        FLD(struct install_config, cluster_dns, "cluster_dns", ST_STRING, .aliases = "clusterDns clusterDNS"),
        IGN("with_net_images", .aliases = "withNetImages"),
        IGN("raw_disk_image_path", .aliases = "rawDiskImagePath"),
        {},
};

static const struct schema_field top_fields[] = {
        FLD(struct config, scheme_version, "scheme_version", ST_INT, .aliases = "schemeVersion"),
        FLD(struct config, server_url, "server_url", ST_STRING, .flags = SF_URL, .aliases = "serverUrl serverURL"),
        FLD(struct config, token, "token", ST_STRING, .flags = SF_SECRET),
        FLD(struct config, sans, "sans", ST_STRV, .aliases = "san"),
        FLD(struct config, system_settings, "system_settings", ST_KVMAP, .flags = SF_SECRET_VALUES,
            .aliases = "systemSettings"),
        FLD(struct config, runtime_version, "runtime_version", ST_STRING, .aliases = "runtimeVersion"),
        FLD(struct config, rancher_version, "rancher_version", ST_STRING, .aliases = "rancherVersion"),
        IGN("harvester_chart_version", .aliases = "harvesterChartVersion"),
        IGN("monitoring_chart_version", .aliases = "monitoringChartVersion"),
        IGN("logging_chart_version", .aliases = "loggingChartVersion"),
        FLD(struct config, os, "os", ST_STRUCT, .fields = os_fields),
        FLD(struct config, install, "install", ST_STRUCT, .fields = install_fields),
        {},
};

static const struct schema_field root_field = { .name = "", .type = ST_STRUCT, .fields = top_fields };

/* A leaf whose value replaces: map values of kvmaps and headers. */
static const struct schema_field leaf_field = { .name = "", .type = ST_STRING };

const struct schema_field *schema_root(void) {
        return &root_field;
}

/* ======================================================================================
 * Problems
 * ====================================================================================== */

void diags_clear(struct diags *d) {
        for (size_t i = 0; i < d->n; i++) {
                free(d->items[i].path);
                free(d->items[i].message);
                free(d->items[i].where);
        }
        free(d->items);
        *d = (struct diags){};
}

int diags_addv(struct diags *d, bool warning, const char *path, const char *where, const char *fmt, va_list ap) {
        struct diag g = { .warning = warning };
        if (d->n >= DIAGS_MAX) {
                if (warning)
                        d->dropped_warnings++;
                else
                        d->dropped_errors++;
                return 0;
        }
        if (vasprintf(&g.message, fmt, ap) < 0)
                g.message = NULL;
        g.path = strdup(strempty(path));
        if (where)
                g.where = strdup(where);
        struct diag *items = NULL;
        if (g.message && g.path && (!where || g.where))
                items = realloc(d->items, (d->n + 1) * sizeof(struct diag));
        if (!items) {
                free(g.message);
                free(g.path);
                free(g.where);
                d->oom = true;
                return -ENOMEM;
        }
        items[d->n++] = g;
        d->items = items;
        return 0;
}

int diags_add(struct diags *d, bool warning, const char *path, const char *where, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = diags_addv(d, warning, path, where, fmt, ap);
        va_end(ap);
        return r;
}

static size_t recorded_errors(const struct diags *d) {
        size_t n = 0;
        for (size_t i = 0; i < d->n; i++)
                n += !d->items[i].warning;
        return n;
}

size_t diags_errors(const struct diags *d) {
        return recorded_errors(d) + d->dropped_errors;
}

size_t diags_warnings(const struct diags *d) {
        return d->n - recorded_errors(d) + d->dropped_warnings;
}

char *diag_format(const struct diag *g) {
        if (isempty(g->path))
                return g->where ? strdup_printf("%s (%s)", g->message, g->where) : strdup(g->message);
        return g->where ? strdup_printf("%s: %s (%s)", g->path, g->message, g->where)
                        : strdup_printf("%s: %s", g->path, g->message);
}

void diags_print(const struct diags *d) {
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < d->n; i++) {
                        const struct diag *g = &d->items[i];
                        if (g->warning != (pass == 0))
                                continue;
                        _cleanup_free_ char *line = diag_format(g);
                        if (!line)
                                log_oom();
                        else if (g->warning)
                                log_warning("%s", line);
                        else
                                log_error("%s", line);
                }
        if (d->dropped_errors > 0)
                log_error("... and %zu more problem(s) and %zu more warning(s), not shown.", d->dropped_errors,
                          d->dropped_warnings);
        else if (d->dropped_warnings > 0)
                log_warning("... and %zu more warning(s), not shown.", d->dropped_warnings);
        if (d->oom)
                log_error("Some problems could not be recorded: out of memory.");
}

const struct diag *diags_find(const struct diags *d, const char *path, bool warning) {
        for (size_t i = 0; i < d->n; i++)
                if (d->items[i].warning == warning && streq(d->items[i].path, path))
                        return &d->items[i];
        return NULL;
}

/* ======================================================================================
 * Positions and paths
 * ====================================================================================== */

char *node_where(const struct node *n, const char *source_name) {
        if (!n)
                return strdup("not set");
        if (n->origin == ORIGIN_CMDLINE)
                return strdup("kernel command line");
        return strdup_printf("%s:%u:%u", source_name ? source_name : "config", n->line, n->column);
}

static bool key_is_plain(const char *key) {
        if (!*key)
                return false;
        for (const char *p = key; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
                        return false;
        return true;
}

char *path_join(const char *parent, const char *key) {
        const char *sep = isempty(parent) ? "" : ".";
        parent = strempty(parent);
        if (key_is_plain(key))
                return strdup_printf("%s%s%s", parent, sep, key);
        /* Quoted: "..." with \" and \\ escaped. */
        size_t len = strlen(parent) + 1 + 2 * strlen(key) + 3;
        char *r = malloc(len), *w = r;
        if (!r)
                return NULL;
        w = stpcpy(stpcpy(w, parent), sep);
        *w++ = '"';
        for (const char *p = key; *p; p++) {
                if (*p == '"' || *p == '\\')
                        *w++ = '\\';
                *w++ = *p;
        }
        *w++ = '"';
        *w = 0;
        return r;
}

char *path_index(const char *parent, size_t i) {
        return strdup_printf("%s[%zu]", strempty(parent), i);
}

/* Reads one path segment into a malloc'ed key; *p advanced past it. NULL on syntax error/OOM. */
static char *path_segment(const char **p) {
        const char *s = *p;
        if (*s == '"') {
                char *k = malloc(strlen(s) + 1), *w = k;
                if (!k)
                        return NULL;
                for (s++; *s && *s != '"'; s++) {
                        if (*s == '\\' && s[1])
                                s++;
                        *w++ = *s;
                }
                if (*s != '"') {
                        free(k);
                        return NULL;
                }
                *w = 0;
                *p = s + 1;
                return k;
        }
        size_t n = strcspn(s, ".[");
        *p = s + n;
        return strndup(s, n);
}

struct node *node_lookup(const struct node *root, const char *path) {
        const struct node *n = root;
        const char *p = path;
        if (!root || !path)
                return NULL;
        while (*p) {
                _cleanup_free_ char *key = path_segment(&p);
                if (!key)
                        return NULL;
                if (*key) {
                        n = node_get(n, key);
                        if (!n)
                                return NULL;
                }
                while (*p == '[') {
                        char *end;
                        errno = 0;
                        unsigned long i = strtoul(p + 1, &end, 10);
                        if (errno || *end != ']' || end == p + 1)
                                return NULL;
                        p = end + 1;
                        if (n->kind == NODE_LIST) {
                                if (i >= n->n_items)
                                        return NULL;
                                n = n->items[i];
                        } else if (i != 0)
                                return NULL;
                }
                if (*p == '.')
                        p++;
                else if (*p)
                        return NULL;
        }
        return (struct node *)n;
}

bool node_equal(const struct node *a, const struct node *b) {
        if (a == b)
                return true;
        if (!a || !b || a->kind != b->kind || a->n_items != b->n_items)
                return false;
        switch (a->kind) {
        case NODE_SCALAR:
                if (a->null || b->null)
                        return a->null == b->null;
                return streq_ptr(a->value, b->value);
        case NODE_LIST:
                for (size_t i = 0; i < a->n_items; i++)
                        if (!node_equal(a->items[i], b->items[i]))
                                return false;
                return true;
        case NODE_MAP:
                for (size_t i = 0; i < a->n_items; i++)
                        if (!node_equal(a->items[i], node_get(b, a->items[i]->key)))
                                return false;
                return true;
        }
        return false;
}

/* ======================================================================================
 * Key lookup
 * ====================================================================================== */

/* Equal ignoring case and underscores ("sshAuthorizedKeys" ~ "ssh_authorized_keys"). */
static bool loose_equal(const char *a, size_t alen, const char *b, size_t blen) {
        size_t i = 0, j = 0;
        for (;;) {
                while (i < alen && a[i] == '_')
                        i++;
                while (j < blen && b[j] == '_')
                        j++;
                if (i == alen || j == blen)
                        return i == alen && j == blen;
                if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[j]))
                        return false;
                i++;
                j++;
        }
}

static bool field_matches(const struct schema_field *f, const char *key, bool loose) {
        size_t klen = strlen(key);
        if (loose ? loose_equal(key, klen, f->name, strlen(f->name)) : streq(key, f->name))
                return true;
        for (const char *a = f->aliases; a && *a;) {
                size_t n = strcspn(a, " ");
                if (loose ? loose_equal(key, klen, a, n) : (n == klen && strncmp(a, key, n) == 0))
                        return true;
                a += n;
                a += strspn(a, " ");
        }
        return false;
}

const struct schema_field *schema_child(const struct schema_field *parent, const char *key) {
        if (!parent || !key || (parent->type != ST_STRUCT && parent->type != ST_LIST) || !parent->fields)
                return NULL;
        /* Exact spellings first, so that a loose match can never shadow an exact one. */
        for (int loose = 0; loose < 2; loose++)
                for (const struct schema_field *f = parent->fields; f->name; f++)
                        if (field_matches(f, key, loose))
                                return f;
        return NULL;
}

const struct schema_field *schema_find(const char *path) {
        const struct schema_field *f = &root_field;
        const char *p = path;
        while (f && *p) {
                _cleanup_free_ char *key = path_segment(&p);
                if (!key)
                        return NULL;
                f = schema_child(f, key);
                while (*p == '[') {
                        p = strchr(p, ']');
                        if (!p)
                                return NULL;
                        p++;
                }
                if (*p == '.')
                        p++;
        }
        return f == &root_field ? NULL : f;
}

/* ======================================================================================
 * Canonicalisation
 * ====================================================================================== */

static const char *kind_name(const struct node *n) {
        if (n->kind == NODE_MAP)
                return "a mapping";
        if (n->kind == NODE_LIST)
                return "a list";
        return n->null ? "null" : "a scalar";
}

/* Turns n into a list whose one item is what n was (key stays on n). 0 or -ENOMEM. */
static int wrap_in_list(struct node *n) {
        struct node *item = node_new(n->kind, n->origin);
        if (!item)
                return -ENOMEM;
        item->line = n->line;
        item->column = n->column;
        item->quoted = n->quoted;
        item->null = n->null;
        item->value = TAKE_PTR(n->value);
        item->items = TAKE_PTR(n->items);
        item->n_items = n->n_items;
        n->n_items = 0;
        n->kind = NODE_LIST;
        n->quoted = n->null = false;
        int r = node_append(n, item);
        return r;
}

static void remove_item(struct node *parent, size_t i) {
        node_free(parent->items[i]);
        memmove(parent->items + i, parent->items + i + 1, (parent->n_items - i - 1) * sizeof(struct node *));
        parent->n_items--;
}

struct canon_ctx {
        const char *source;
        struct diags *d;
};

static int canon_map(struct canon_ctx *x, const struct schema_field *parent, struct node *map, const char *path);

static int add_diag_at(struct canon_ctx *x, bool warning, const char *path, const struct node *n, const char *fmt,
                       ...) _printf_(5, 6);
static int add_diag_at(struct canon_ctx *x, bool warning, const char *path, const struct node *n, const char *fmt,
                       ...) {
        _cleanup_free_ char *where = node_where(n, x->source);
        if (!where) {
                x->d->oom = true;
                return -ENOMEM;
        }
        va_list ap;
        va_start(ap, fmt);
        int r = diags_addv(x->d, warning, path, where, fmt, ap);
        va_end(ap);
        return r;
}

/* A scalar key repeated on the kernel command line: like dracut's getarg, the last one wins. */
static int keep_last(struct canon_ctx *x, struct node *e, const char *path) {
        if (e->kind != NODE_LIST || e->origin != ORIGIN_CMDLINE || e->n_items == 0)
                return 0;
        for (size_t i = 0; i < e->n_items; i++)
                if (e->items[i]->kind != NODE_SCALAR)
                        return 0;
        int r = add_diag_at(x, true, path, e, "given %zu times on the kernel command line; the last one is used",
                            e->n_items);
        if (r < 0)
                return r;
        struct node *last = e->items[e->n_items - 1];
        e->value = TAKE_PTR(last->value);
        e->quoted = last->quoted;
        e->null = last->null;
        for (size_t i = 0; i < e->n_items; i++)
                node_free(e->items[i]);
        free(e->items);
        e->items = NULL;
        e->n_items = 0;
        e->kind = NODE_SCALAR;
        return 0;
}

static int canon_value(struct canon_ctx *x, const struct schema_field *f, struct node *e, const char *path) {
        int r;
        if (e->kind == NODE_SCALAR && e->null)
                return 0;
        switch (f->type) {
        case ST_STRING:
        case ST_BOOL:
        case ST_INT:
                return keep_last(x, e, path);
        case ST_STRV:
                if (e->kind != NODE_LIST)
                        return wrap_in_list(e);
                return 0;
        case ST_LIST:
                if (e->kind == NODE_MAP || (e->kind == NODE_SCALAR && (f->flags & SF_IFACE)))
                        if ((r = wrap_in_list(e)) < 0)
                                return r;
                if (e->kind != NODE_LIST)
                        return 0;
                for (size_t i = 0; i < e->n_items; i++) {
                        struct node *item = e->items[i];
                        _cleanup_free_ char *ipath = path_index(path, i);
                        if (!ipath)
                                return -ENOMEM;
                        if (item->kind == NODE_SCALAR && !item->null && (f->flags & SF_IFACE)) {
                                const char *error = NULL;
                                struct node *m = NULL;
                                r = cmdline_parse_interface(item->value, item->origin, &m, &error);
                                if (r == -ENOMEM)
                                        return r;
                                if (r < 0) {
                                        r = add_diag_at(x, false, ipath, item, "%s", error);
                                        if (r < 0)
                                                return r;
                                        /* Reported: drop it, so binding does not report it again. */
                                        remove_item(e, i--);
                                        continue;
                                }
                                m->line = item->line;
                                m->column = item->column;
                                node_free(item);
                                e->items[i] = item = m;
                        }
                        if (item->kind == NODE_MAP && (r = canon_map(x, f, item, ipath)) < 0)
                                return r;
                }
                return 0;
        case ST_STRUCT:
                if (e->kind == NODE_MAP)
                        return canon_map(x, f, e, path);
                return 0;
        case ST_KVMAP:
        case ST_HEADERS:
        case ST_TREE:
        case ST_IGNORED:
                return 0;
        }
        return 0;
}

static int canon_map(struct canon_ctx *x, const struct schema_field *parent, struct node *map, const char *path) {
        int r;
        for (size_t i = 0; i < map->n_items;) {
                struct node *e = map->items[i];
                const struct schema_field *f = schema_child(parent, e->key);
                _cleanup_free_ char *cpath = path_join(path, f ? f->name : e->key);
                if (!cpath)
                        return -ENOMEM;
                if (!f) {
                        r = add_diag_at(x, true, cpath, e, "unknown key, ignored");
                        if (r < 0)
                                return r;
                        i++;
                        continue;
                }
                if (!streq(e->key, f->name)) {
                        /* Two spellings of one key in the same map: a mistake, say which. */
                        struct node *first = node_get(map, f->name);
                        if (first) {
                                _cleanup_free_ char *w = node_where(first, x->source);
                                if (!w)
                                        return -ENOMEM;
                                r = add_diag_at(x, false, cpath, e, "given twice, as \"%s\" and as \"%s\" (%s)",
                                                e->key, f->name, w);
                                if (r < 0)
                                        return r;
                                remove_item(map, i);
                                continue;
                        }
                        char *k = strdup(f->name);
                        if (!k)
                                return -ENOMEM;
                        free(e->key);
                        e->key = k;
                }
                if (f->type == ST_IGNORED) {
                        r = add_diag_at(x, true, cpath, e, "not used by this installer, ignored");
                        if (r < 0)
                                return r;
                        i++;
                        continue;
                }
                if ((r = canon_value(x, f, e, cpath)) < 0)
                        return r;
                i++;
        }
        return 0;
}

int schema_canonicalize(struct node *root, const char *source_name, struct diags *d) {
        struct canon_ctx x = { .source = source_name, .d = d };
        if (!root || root->kind != NODE_MAP)
                return 0;
        return canon_map(&x, &root_field, root, "");
}

/* ======================================================================================
 * Merge
 * ====================================================================================== */

static struct node *merge_node(const struct schema_field *f, struct node *hi, struct node *lo, int *r);

/* Moves every entry of hi into lo, merging entries both have. child_of(key) gives the field of a
 * key: for a struct its member, for kvmaps the replacing leaf, for opaque trees NULL. */
static struct node *merge_maps(const struct schema_field *f, struct node *hi, struct node *lo, int *r) {
        for (size_t i = 0; i < hi->n_items; i++) {
                struct node *h = TAKE_PTR(hi->items[i]);
                const struct schema_field *cf;
                if (!f)
                        cf = NULL; /* opaque: recursive generic merge */
                else if (f->type == ST_KVMAP || f->type == ST_HEADERS)
                        cf = &leaf_field;
                else
                        cf = schema_child(f, h->key);
                size_t j;
                for (j = 0; j < lo->n_items; j++)
                        if (streq(lo->items[j]->key, h->key))
                                break;
                if (j < lo->n_items) {
                        lo->items[j] = merge_node(cf, h, lo->items[j], r);
                        if (*r < 0) /* lo->items[j] is whatever survived; the tree stays consistent */
                                break;
                } else if ((*r = node_append(lo, h)) < 0)
                        break;
        }
        node_free(hi); /* its items were all taken (or NULL) */
        return lo;
}

static int to_list(struct node *n) {
        if (n->kind == NODE_LIST)
                return 0;
        if (n->kind == NODE_SCALAR && n->null) {
                n->kind = NODE_LIST;
                n->null = false;
                free(n->value);
                n->value = NULL;
                return 0;
        }
        return wrap_in_list(n);
}

static struct node *merge_lists(struct node *hi, struct node *lo, int *r) {
        if ((*r = to_list(hi)) < 0 || (*r = to_list(lo)) < 0) {
                node_free(lo);
                return hi;
        }
        size_t n_hi = hi->n_items;
        for (size_t i = 0; i < lo->n_items; i++) {
                struct node *item = TAKE_PTR(lo->items[i]);
                bool dup = false;
                for (size_t j = 0; j < n_hi && !dup; j++)
                        dup = node_equal(hi->items[j], item);
                if (dup)
                        node_free(item);
                else if ((*r = node_append(hi, item)) < 0)
                        break;
        }
        node_free(lo);
        return hi;
}

/* Merges hi (command line) over lo (file); both owned; returns the survivor. On OOM *r < 0. */
static struct node *merge_node(const struct schema_field *f, struct node *hi, struct node *lo, int *r) {
        if (!hi)
                return lo;
        if (!lo)
                return hi;
        enum schema_type t = f ? f->type : ST_TREE;
        switch (t) {
        case ST_STRUCT:
        case ST_KVMAP:
        case ST_HEADERS:
        case ST_TREE:
                if (hi->kind == NODE_MAP && lo->kind == NODE_MAP)
                        return merge_maps(t == ST_TREE ? NULL : f, hi, lo, r);
                break;
        case ST_STRV:
                if (f->flags & SF_CMDLINE_REPLACES)
                        break;
                return merge_lists(hi, lo, r);
        case ST_LIST:
                return merge_lists(hi, lo, r);
        default:
                break;
        }
        node_free(lo);
        return hi;
}

int schema_merge(struct node *cmdline, struct node *file, struct node **ret) {
        int r = 0;
        struct node *m = merge_node(&root_field, cmdline, file, &r);
        if (r < 0) {
                node_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

/* ======================================================================================
 * Binding
 * ====================================================================================== */

struct bind_ctx {
        const char *source;
        struct diags *d;
};

static int bind_error(struct bind_ctx *x, const char *path, const struct node *n, const char *fmt, ...)
        _printf_(4, 5);
static int bind_error(struct bind_ctx *x, const char *path, const struct node *n, const char *fmt, ...) {
        _cleanup_free_ char *where = node_where(n, x->source);
        if (!where) {
                x->d->oom = true;
                return -ENOMEM;
        }
        va_list ap;
        va_start(ap, fmt);
        int r = diags_addv(x->d, false, path, where, fmt, ap);
        va_end(ap);
        return r;
}

/* A short, printable rendering of a scalar for messages (never used for secret fields). */
static char *shown(const char *v) {
        size_t n = strlen(v);
        bool cut = n > 60;
        char *r = strdup_printf("\"%.*s%s\"", cut ? 57 : (int)n, v, cut ? "..." : "");
        if (r)
                for (char *p = r; *p; p++)
                        if ((unsigned char)*p < 0x20 || *p == 0x7f)
                                *p = '?';
        return r;
}

static int bind_scalar_text(struct bind_ctx *x, const struct schema_field *f, const struct node *n,
                            const char *path, const char *expected, const char **ret) {
        if (n->kind != NODE_SCALAR)
                return bind_error(x, path, n, "expected %s, got %s", expected, kind_name(n));
        *ret = n->null ? NULL : n->value;
        return 0;
}

static int bind_struct(struct bind_ctx *x, const struct schema_field *parent, const struct node *map, char *base,
                       const char *path);

static int bind_value(struct bind_ctx *x, const struct schema_field *f, const struct node *n, char *base,
                      const char *path) {
        void *p = base + f->offset;
        const char *v = NULL;
        int r;

        switch (f->type) {
        case ST_STRING: {
                if ((r = bind_scalar_text(x, f, n, path, "a string", &v)) < 0 || !v)
                        return r;
                char *s = strdup(v);
                if (!s)
                        return -ENOMEM;
                free(*(char **)p);
                *(char **)p = s;
                return 0;
        }
        case ST_BOOL: {
                if ((r = bind_scalar_text(x, f, n, path, "true or false", &v)) < 0 || !v)
                        return r;
                bool b;
                if (parse_bool(v, &b) < 0) {
                        _cleanup_free_ char *s = shown(v);
                        return bind_error(x, path, n, "expected true or false (or yes/no, on/off, 1/0), got %s",
                                          s ? s : "?");
                }
                *(bool *)p = b;
                return 0;
        }
        case ST_INT: {
                if ((r = bind_scalar_text(x, f, n, path, "a decimal integer", &v)) < 0 || !v)
                        return r;
                int64_t i;
                r = parse_int64(v, &i);
                if (r < 0) {
                        _cleanup_free_ char *s = shown(v);
                        return bind_error(x, path, n, r == -ERANGE ? "%s is out of range" :
                                          "expected a decimal integer, got %s", s ? s : "?");
                }
                *(int64_t *)p = i;
                return 0;
        }
        case ST_STRV: {
                if (n->kind == NODE_SCALAR && n->null)
                        return 0;
                if (n->kind != NODE_LIST)
                        return bind_error(x, path, n, "expected a list of strings, got %s", kind_name(n));
                char ***l = p;
                /* Room for every item at once: strv_push() one by one would be quadratic. */
                size_t have = strv_length(*l);
                if (n->n_items > SIZE_MAX / sizeof(char *) - have - 1)
                        return -ENOMEM;
                char **grown = realloc(*l, (have + n->n_items + 1) * sizeof(char *));
                if (!grown)
                        return -ENOMEM;
                grown[have] = NULL;
                *l = grown;
                for (size_t i = 0; i < n->n_items; i++) {
                        const struct node *item = n->items[i];
                        if (item->kind != NODE_SCALAR || item->null) {
                                _cleanup_free_ char *ipath = path_index(path, i);
                                if (!ipath)
                                        return -ENOMEM;
                                if ((r = bind_error(x, ipath, item, "expected a string, got %s", kind_name(item))) < 0)
                                        return r;
                                continue;
                        }
                        if (!(grown[have] = strdup(item->value)))
                                return -ENOMEM;
                        grown[++have] = NULL;
                }
                return 0;
        }
        case ST_KVMAP: {
                if (n->kind == NODE_SCALAR && n->null)
                        return 0;
                if (n->kind != NODE_MAP)
                        return bind_error(x, path, n, "expected a mapping of names to values, got %s", kind_name(n));
                for (size_t i = 0; i < n->n_items; i++) {
                        const struct node *e = n->items[i];
                        if (e->kind != NODE_SCALAR) {
                                _cleanup_free_ char *kpath = path_join(path, e->key);
                                if (!kpath)
                                        return -ENOMEM;
                                if ((r = bind_error(x, kpath, e, "expected a string value, got %s", kind_name(e))) < 0)
                                        return r;
                                continue;
                        }
                        if ((r = kvmap_set(p, e->key, e->null ? "" : e->value)) < 0)
                                return r;
                }
                return 0;
        }
        case ST_HEADERS: {
                if (n->kind == NODE_SCALAR && n->null)
                        return 0;
                if (n->kind != NODE_MAP)
                        return bind_error(x, path, n, "expected a mapping of header names to lists of values, got %s",
                                          kind_name(n));
                struct header **hs = p;
                size_t *count = (size_t *)(base + f->count_offset);
                for (size_t i = 0; i < n->n_items; i++) {
                        const struct node *e = n->items[i];
                        _cleanup_free_ char *kpath = path_join(path, e->key);
                        _cleanup_strv_free_ char **values = NULL;
                        if (!kpath)
                                return -ENOMEM;
                        bool bad = false;
                        if (e->kind == NODE_SCALAR) {
                                if (!e->null && (r = strv_push(&values, e->value)) < 0)
                                        return r;
                        } else if (e->kind == NODE_LIST) {
                                for (size_t j = 0; j < e->n_items && !bad; j++) {
                                        if (e->items[j]->kind != NODE_SCALAR || e->items[j]->null)
                                                bad = true;
                                        else if ((r = strv_push(&values, e->items[j]->value)) < 0)
                                                return r;
                                }
                        } else
                                bad = true;
                        if (bad) {
                                if ((r = bind_error(x, kpath, e, "expected a string or a list of strings")) < 0)
                                        return r;
                                continue;
                        }
                        char *k = strdup(e->key);
                        struct header *a = k ? realloc(*hs, (*count + 1) * sizeof(struct header)) : NULL;
                        if (!a) {
                                free(k);
                                return -ENOMEM;
                        }
                        a[(*count)++] = (struct header){ .key = k, .values = TAKE_PTR(values) };
                        *hs = a;
                }
                return 0;
        }
        case ST_LIST: {
                if (n->kind == NODE_SCALAR && n->null)
                        return 0;
                if (n->kind != NODE_LIST)
                        return bind_error(x, path, n, "expected a list of mappings, got %s", kind_name(n));
                char **arr = p;
                size_t *count = (size_t *)(base + f->count_offset);
                for (size_t i = 0; i < n->n_items; i++) {
                        const struct node *item = n->items[i];
                        _cleanup_free_ char *ipath = path_index(path, i);
                        if (!ipath)
                                return -ENOMEM;
                        if (item->kind != NODE_MAP) {
                                if (item->kind == NODE_SCALAR && item->null)
                                        continue;
                                if ((r = bind_error(x, ipath, item, "expected a mapping, got %s", kind_name(item))) < 0)
                                        return r;
                                continue;
                        }
                        char *a = realloc(*arr, (*count + 1) * f->elem_size);
                        if (!a)
                                return -ENOMEM;
                        *arr = a;
                        char *elem = a + *count * f->elem_size;
                        memset(elem, 0, f->elem_size);
                        (*count)++;
                        if ((r = bind_struct(x, f, item, elem, ipath)) < 0)
                                return r;
                }
                return 0;
        }
        case ST_STRUCT:
                if (n->kind == NODE_SCALAR && n->null)
                        return 0;
                if (n->kind != NODE_MAP)
                        return bind_error(x, path, n, "expected a mapping, got %s", kind_name(n));
                return bind_struct(x, f, n, base + f->offset, path);
        case ST_TREE: {
                if (n->kind == NODE_SCALAR && n->null)
                        return 0;
                struct node *c = node_copy(n);
                if (!c)
                        return -ENOMEM;
                free(c->key);
                c->key = NULL;
                node_free(*(struct node **)p);
                *(struct node **)p = c;
                return 0;
        }
        case ST_IGNORED:
                return 0;
        }
        return 0;
}

static int bind_struct(struct bind_ctx *x, const struct schema_field *parent, const struct node *map, char *base,
                       const char *path) {
        for (size_t i = 0; i < map->n_items; i++) {
                const struct node *e = map->items[i];
                const struct schema_field *f = schema_child(parent, e->key);
                if (!f || !streq(f->name, e->key)) /* unknown: warned when canonicalised */
                        continue;
                _cleanup_free_ char *cpath = path_join(path, f->name);
                if (!cpath)
                        return -ENOMEM;
                int r = bind_value(x, f, e, base, cpath);
                if (r < 0)
                        return r;
        }
        return 0;
}

int schema_bind(const struct node *root, struct config *c, const char *source_name, struct diags *d) {
        struct bind_ctx x = { .source = source_name, .d = d };
        if (!root || (root->kind == NODE_SCALAR && root->null))
                return 0;
        if (root->kind != NODE_MAP)
                return bind_error(&x, "", root, "the configuration is not a mapping");
        return bind_struct(&x, &root_field, root, (char *)c, "");
}

/* ======================================================================================
 * Freeing
 * ====================================================================================== */

static void free_fields(const struct schema_field *fields, char *base) {
        for (const struct schema_field *f = fields; f->name; f++) {
                void *p = base + f->offset;
                switch (f->type) {
                case ST_STRING:
                        free(*(char **)p);
                        *(char **)p = NULL;
                        break;
                case ST_STRV:
                        strv_free(*(char ***)p);
                        *(char ***)p = NULL;
                        break;
                case ST_KVMAP:
                        kvmap_clear(p);
                        break;
                case ST_HEADERS: {
                        struct header *h = *(struct header **)p;
                        size_t *count = (size_t *)(base + f->count_offset);
                        for (size_t i = 0; i < *count; i++) {
                                free(h[i].key);
                                strv_free(h[i].values);
                        }
                        free(h);
                        *(struct header **)p = NULL;
                        *count = 0;
                        break;
                }
                case ST_LIST: {
                        char *arr = *(char **)p;
                        size_t *count = (size_t *)(base + f->count_offset);
                        for (size_t i = 0; i < *count; i++)
                                free_fields(f->fields, arr + i * f->elem_size);
                        free(arr);
                        *(char **)p = NULL;
                        *count = 0;
                        break;
                }
                case ST_STRUCT:
                        free_fields(f->fields, base + f->offset);
                        break;
                case ST_TREE:
                        node_free(*(struct node **)p);
                        *(struct node **)p = NULL;
                        break;
                case ST_BOOL:
                case ST_INT:
                case ST_IGNORED:
                        break;
                }
        }
}

void schema_free_fields(struct config *c) {
        free_fields(top_fields, (char *)c);
}

/* ======================================================================================
 * URLs
 * ====================================================================================== */

bool schema_name_is_secret(const char *name) {
        static const char *const words[] = { "password", "passwd", "token", "secret", "credential" };
        if (!name)
                return false;
        if (strcasecmp(name, "authorization") == 0 || strcasecmp(name, "auth") == 0 ||
            strcasecmp(name, "proxy-authorization") == 0)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (strcasestr(name, words[i]))
                        return true;
        return false;
}

static bool url_char(char ch) {
        return ch && !isspace((unsigned char)ch) && !strchr("\"'`,;<>{}[]()|\\", ch);
}

int schema_value_secrets(const char *name, const char *value, char ***l) {
        int r;
        if (isempty(value))
                return 0;
        if (schema_name_is_secret(name))
                return strv_push(l, value);
        /* URLs with a password anywhere in the value: "http://u:p@proxy:3128", "a=http://..." */
        for (const char *m = strstr(value, "://"); m; m = strstr(m + 3, "://")) {
                const char *b = m;
                while (b > value && (isalnum((unsigned char)b[-1]) || strchr("+.-", b[-1])))
                        b--;
                const char *e = m + 3;
                while (url_char(*e))
                        e++;
                _cleanup_free_ char *url = strndup(b, (size_t)(e - b));
                if (!url)
                        return -ENOMEM;
                _cleanup_free_ char *pw = url_password(url);
                if (pw && (r = strv_push(l, pw)) < 0)
                        return r;
        }
        /* JSON inside a setting (containerd-registry: {"Configs": {"r": {"Auth": {"Password": "p"}}}}):
         * every string whose key looks secret. */
        for (const char *q = strchr(value, '"'); q; q = strchr(q + 1, '"')) {
                const char *ke = strchr(q + 1, '"');
                if (!ke)
                        break;
                _cleanup_free_ char *key = strndup(q + 1, (size_t)(ke - q - 1));
                if (!key)
                        return -ENOMEM;
                const char *v = ke + 1;
                while (isspace((unsigned char)*v))
                        v++;
                if (*v != ':' || !schema_name_is_secret(key)) {
                        q = ke; /* the next string starts after this one */
                        continue;
                }
                v++;
                while (isspace((unsigned char)*v))
                        v++;
                if (*v != '"') { /* "Auth": {...}: the strings inside are looked at in turn */
                        q = ke;
                        continue;
                }
                const char *ve = v + 1;
                while (*ve && *ve != '"')
                        ve += ve[0] == '\\' && ve[1] ? 2 : 1;
                if (ve > v + 1) {
                        _cleanup_free_ char *sec = strndup(v + 1, (size_t)(ve - v - 1));
                        if (!sec || (r = strv_push(l, sec)) < 0)
                                return -ENOMEM;
                }
                if (!*ve)
                        break;
                q = ve;
        }
        return 0;
}

char *url_userinfo_password(const char *url) {
        return url_password(url);
}

char *url_hide_password(const char *url) {
        return url_redact(url);
}

/* ======================================================================================
 * Struct -> tree, for printing
 * ====================================================================================== */

static struct node *scalar_node(const char *value, bool quoted) {
        struct node *n = node_new(NODE_SCALAR, ORIGIN_FILE);
        if (!n)
                return NULL;
        if (!value) {
                n->null = true;
                return n;
        }
        n->quoted = quoted;
        n->value = strdup(value);
        if (!n->value) {
                node_free(n);
                return NULL;
        }
        return n;
}

static int add_entry(struct node *map, const char *key, struct node *v) {
        if (!v)
                return -ENOMEM;
        v->key = strdup(key);
        if (!v->key) {
                node_free(v);
                return -ENOMEM;
        }
        return node_append(map, v);
}

static struct node *strv_node(char *const *l) {
        struct node *n = node_new(NODE_LIST, ORIGIN_FILE);
        for (size_t i = 0; n && l && l[i]; i++)
                if (node_append(n, scalar_node(l[i], true)) < 0) {
                        node_free(n);
                        return NULL;
                }
        return n;
}

static int fields_to_tree(const struct schema_field *fields, const char *base, bool show, struct node *map);

static struct node *field_to_node(const struct schema_field *f, const char *base, bool show) {
        const void *p = base + f->offset;
        switch (f->type) {
        case ST_STRING: {
                const char *v = *(char *const *)p;
                if (v && !show && (f->flags & SF_SECRET))
                        return scalar_node("<redacted>", true);
                if (v && !show && (f->flags & SF_URL)) {
                        _cleanup_free_ char *h = url_hide_password(v);
                        return h ? scalar_node(h, true) : NULL;
                }
                return scalar_node(v, true);
        }
        case ST_BOOL:
                return scalar_node(*(const bool *)p ? "true" : "false", false);
        case ST_INT: {
                char buf[32];
                snprintf(buf, sizeof(buf), "%" PRId64, *(const int64_t *)p);
                return scalar_node(buf, false);
        }
        case ST_STRV:
                /* install.iso_url: one URL is shown as the string Harvester's key is. */
                if ((f->flags & SF_CMDLINE_REPLACES) && strv_length(*(char **const *)p) == 1) {
                        const char *v = (*(char **const *)p)[0];
                        _cleanup_free_ char *h = show ? strdup(v) : url_hide_password(v);
                        return h ? scalar_node(h, true) : NULL;
                }
                if (!show && (f->flags & SF_URL)) {
                        _cleanup_strv_free_ char **h = NULL;
                        STRV_FOREACH(u, *(char **const *)p) {
                                char *x = url_hide_password(*u);
                                if (!x || strv_consume(&h, x) < 0)
                                        return NULL;
                        }
                        return strv_node(h);
                }
                return strv_node(*(char **const *)p);
        case ST_KVMAP: {
                const struct kvmap *m = p;
                struct node *n = node_new(NODE_MAP, ORIGIN_FILE);
                for (size_t i = 0; n && i < m->n; i++) {
                        _cleanup_strv_free_ char **secrets = NULL;
                        _cleanup_free_ char *shown = NULL;
                        const char *v = m->items[i].value;
                        if (!show && (f->flags & SF_SECRET_VALUES)) {
                                if (schema_value_secrets(m->items[i].key, v, &secrets) < 0 ||
                                    !(shown = log_redact_with(v, secrets))) {
                                        node_free(n);
                                        return NULL;
                                }
                                v = shown;
                        }
                        if (add_entry(n, m->items[i].key, scalar_node(v, true)) < 0) {
                                node_free(n);
                                return NULL;
                        }
                }
                return n;
        }
        case ST_HEADERS: {
                const struct header *h = *(struct header *const *)p;
                size_t count = *(const size_t *)(base + f->count_offset);
                struct node *n = node_new(NODE_MAP, ORIGIN_FILE);
                for (size_t i = 0; n && i < count; i++) {
                        struct node *values = strv_node(h[i].values);
                        /* Authorization, X-Auth-Token ...: each value shown as "<redacted>". */
                        for (size_t j = 0; values && !show && schema_name_is_secret(h[i].key) && j < values->n_items; j++) {
                                char *red = strdup("<redacted>");
                                if (!red) {
                                        node_free(values);
                                        values = NULL;
                                        break;
                                }
                                free(values->items[j]->value);
                                values->items[j]->value = red;
                        }
                        if (add_entry(n, h[i].key, values) < 0) {
                                node_free(n);
                                return NULL;
                        }
                }
                return n;
        }
        case ST_LIST: {
                const char *arr = *(char *const *)p;
                size_t count = *(const size_t *)(base + f->count_offset);
                struct node *n = node_new(NODE_LIST, ORIGIN_FILE);
                for (size_t i = 0; n && i < count; i++) {
                        struct node *m = node_new(NODE_MAP, ORIGIN_FILE);
                        if (!m || fields_to_tree(f->fields, arr + i * f->elem_size, show, m) < 0 ||
                            node_append(n, TAKE_PTR(m)) < 0) {
                                node_free(m);
                                node_free(n);
                                return NULL;
                        }
                }
                return n;
        }
        case ST_STRUCT: {
                struct node *n = node_new(NODE_MAP, ORIGIN_FILE);
                if (n && fields_to_tree(f->fields, base + f->offset, show, n) < 0) {
                        node_free(n);
                        return NULL;
                }
                return n;
        }
        case ST_TREE: {
                const struct node *t = *(struct node *const *)p;
                return t ? node_copy(t) : scalar_node(NULL, false);
        }
        case ST_IGNORED:
                break;
        }
        return NULL;
}

static int fields_to_tree(const struct schema_field *fields, const char *base, bool show, struct node *map) {
        for (const struct schema_field *f = fields; f->name; f++) {
                if (f->type == ST_IGNORED)
                        continue;
                struct node *v = field_to_node(f, base, show);
                if (v) {
                        free(v->key);
                        v->key = NULL;
                }
                int r = add_entry(map, f->name, v);
                if (r < 0)
                        return r;
        }
        return 0;
}

int schema_to_tree(const struct config *c, bool show_secrets, struct node **ret) {
        _cleanup_node_ struct node *n = node_new(NODE_MAP, ORIGIN_FILE);
        if (!n)
                return -ENOMEM;
        int r = fields_to_tree(top_fields, (const char *)c, show_secrets, n);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(n);
        return 0;
}

/* ======================================================================================
 * Printing a tree: YAML or JSON
 * ====================================================================================== */

/* A plain scalar that means the same in JSON and YAML: null, true, false, a number. */
static bool plain_is_literal(const char *v) {
        if (streq(v, "true") || streq(v, "false") || streq(v, "null"))
                return true;
        /* JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
        const char *p = v;
        if (*p == '-')
                p++;
        if (*p == '0')
                p++;
        else if (*p >= '1' && *p <= '9')
                while (isdigit((unsigned char)*p))
                        p++;
        else
                return false;
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                        return false;
                while (isdigit((unsigned char)*p))
                        p++;
        }
        if (*p == 'e' || *p == 'E') {
                p++;
                if (*p == '+' || *p == '-')
                        p++;
                if (!isdigit((unsigned char)*p))
                        return false;
                while (isdigit((unsigned char)*p))
                        p++;
        }
        return *p == 0;
}

static void print_scalar(FILE *f, const struct node *n) {
        if (n->null || !n->value)
                fputs("null", f);
        else if (!n->quoted && plain_is_literal(n->value))
                fputs(n->value, f);
        else
                fputs_quoted(f, n->value);
}

static bool yaml_key_plain(const char *k) {
        static const char *const reserved[] = { "null", "true", "false", "yes", "no", "on", "off", "y", "n", "~" };
        if (!*k || !(isalpha((unsigned char)*k) || *k == '_'))
                return false;
        for (const char *p = k; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
                        return false;
        for (size_t i = 0; i < ELEMENTSOF(reserved); i++)
                if (strcasecmp(k, reserved[i]) == 0)
                        return false;
        return true;
}

static void print_json(FILE *f, const struct node *n, int indent) {
        if (n->kind == NODE_SCALAR) {
                print_scalar(f, n);
                return;
        }
        bool map = n->kind == NODE_MAP;
        if (n->n_items == 0) {
                fputs(map ? "{}" : "[]", f);
                return;
        }
        fputs(map ? "{\n" : "[\n", f);
        for (size_t i = 0; i < n->n_items; i++) {
                fprintf(f, "%*s", indent + 2, "");
                if (map) {
                        fputs_quoted(f, strempty(n->items[i]->key));
                        fputs(": ", f);
                }
                print_json(f, n->items[i], indent + 2);
                fputs(i + 1 < n->n_items ? ",\n" : "\n", f);
        }
        fprintf(f, "%*s%c", indent, "", map ? '}' : ']');
}

static bool is_inline(const struct node *n) {
        return n->kind == NODE_SCALAR || n->n_items == 0;
}

static void print_yaml_inline(FILE *f, const struct node *n) {
        if (n->kind == NODE_SCALAR)
                print_scalar(f, n);
        else
                fputs(n->kind == NODE_MAP ? "{}" : "[]", f);
}

static void print_yaml_key(FILE *f, const char *k) {
        if (yaml_key_plain(k))
                fputs(k, f);
        else
                fputs_quoted(f, k);
}

static void print_yaml(FILE *f, const struct node *n, int indent, bool first_inline);

/* Prints the entries of a map (first_inline: the first entry goes on the current line, after "- "). */
static void print_yaml_map(FILE *f, const struct node *n, int indent, bool first_inline) {
        for (size_t i = 0; i < n->n_items; i++) {
                const struct node *e = n->items[i];
                if (!(i == 0 && first_inline))
                        fprintf(f, "%*s", indent, "");
                print_yaml_key(f, strempty(e->key));
                if (is_inline(e)) {
                        fputs(": ", f);
                        print_yaml_inline(f, e);
                        fputc('\n', f);
                } else {
                        fputs(":\n", f);
                        print_yaml(f, e, indent + 2, false);
                }
        }
}

static void print_yaml(FILE *f, const struct node *n, int indent, bool first_inline) {
        if (is_inline(n)) {
                if (!first_inline)
                        fprintf(f, "%*s", indent, "");
                print_yaml_inline(f, n);
                fputc('\n', f);
                return;
        }
        if (n->kind == NODE_MAP) {
                print_yaml_map(f, n, indent, first_inline);
                return;
        }
        for (size_t i = 0; i < n->n_items; i++) {
                const struct node *item = n->items[i];
                if (!(i == 0 && first_inline))
                        fprintf(f, "%*s", indent, "");
                fputs("- ", f);
                print_yaml(f, item, indent + 2, true);
        }
}

int tree_print(const struct node *n, FILE *f, bool json) {
        if (json) {
                print_json(f, n, 0);
                fputc('\n', f);
        } else if (n->kind == NODE_MAP && n->n_items > 0)
                print_yaml_map(f, n, 0, false);
        else
                print_yaml(f, n, 0, false);
        if (fflush(f) != 0 || ferror(f))
                return -errno ?: -EIO;
        return 0;
}

/* ======================================================================================
 * Secrets
 * ====================================================================================== */

static void foreach_secret(const struct schema_field *fields, const char *base,
                           void (*fn)(const char *secret, void *userdata), void *userdata) {
        for (const struct schema_field *f = fields; f->name; f++) {
                const void *p = base + f->offset;
                if (f->type == ST_STRING) {
                        const char *v = *(char *const *)p;
                        if (!v)
                                continue;
                        if (f->flags & SF_SECRET)
                                fn(v, userdata);
                        if (f->flags & SF_URL) {
                                _cleanup_free_ char *pw = url_userinfo_password(v);
                                if (pw)
                                        fn(pw, userdata);
                        }
                } else if (f->type == ST_STRV && (f->flags & SF_URL)) {
                        STRV_FOREACH(u, *(char **const *)p) {
                                _cleanup_free_ char *pw = url_userinfo_password(*u);
                                if (pw)
                                        fn(pw, userdata);
                        }
                } else if (f->type == ST_KVMAP && (f->flags & SF_SECRET_VALUES)) {
                        const struct kvmap *m = p;
                        for (size_t i = 0; i < m->n; i++) {
                                _cleanup_strv_free_ char **secrets = NULL;
                                /* On allocation failure the secrets found so far are registered. */
                                (void)schema_value_secrets(m->items[i].key, m->items[i].value, &secrets);
                                STRV_FOREACH(sec, secrets)
                                        fn(*sec, userdata);
                        }
                } else if (f->type == ST_HEADERS) {
                        const struct header *h = *(struct header *const *)p;
                        size_t count = *(const size_t *)(base + f->count_offset);
                        for (size_t i = 0; i < count; i++) {
                                if (!schema_name_is_secret(h[i].key))
                                        continue;
                                STRV_FOREACH(v, h[i].values) {
                                        fn(*v, userdata);
                                        /* "Bearer abc", "Basic dXNlcjpwdw==": the credential alone too */
                                        const char *sp = strchr(*v, ' ');
                                        if (sp && sp[1])
                                                fn(sp + 1, userdata);
                                }
                        }
                } else if (f->type == ST_STRUCT)
                        foreach_secret(f->fields, base + f->offset, fn, userdata);
                else if (f->type == ST_LIST) {
                        const char *arr = *(char *const *)p;
                        size_t count = *(const size_t *)(base + f->count_offset);
                        for (size_t i = 0; i < count; i++)
                                foreach_secret(f->fields, arr + i * f->elem_size, fn, userdata);
                }
        }
}

void schema_foreach_secret(const struct config *c, void (*fn)(const char *secret, void *userdata),
                           void *userdata) {
        foreach_secret(top_fields, (const char *)c, fn, userdata);
}
