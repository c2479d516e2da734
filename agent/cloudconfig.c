/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's configuration on COS_OEM, in the shapes a Harvester v1.1 OS reads
 * (HARVESTER-V1.1.md sections 6 and 7):
 *
 *   90_custom.yaml   the yip cloud-config applied at every boot (stages rootfs, initramfs, network):
 *                    layout, hostname, the rancher user, SSH keys, NTP, DNS, modules, sysctls,
 *                    environment, the rancherd and rke2 configuration files, write_files, and the
 *                    wicked files of the management network (bond mgmt-bo, bridge mgmt-br, VLAN)
 *   harvester.config the effective configuration as Go's yaml.v2 dumps v1.1's HarvesterConfig
 *                    (lowercased field names), read by the OS's harv-update-rke2-server-url
 *   grubenv          an empty GRUB environment block (the grub.cfg saves next_entry there)
 *
 * The outer documents are written with libyaml's emitter, so every string is quoted as YAML needs;
 * file contents are literal block scalars wherever YAML allows one. The contents of the rancherd and
 * rke2 files are small YAML documents themselves, written here with every variable quoted.
 */
#include <crypt.h>
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <yaml.h>

#include "cloudconfig.h"
#include "log.h"
#include "template.h"
#include "validate.h"

#define MGMT_BRIDGE "mgmt-br"
#define MGMT_BOND "mgmt-bo"
#define NETWORK_DIR "/etc/sysconfig/network/"
#define WICKED_SCRIPTS_DIR "/etc/wicked/scripts"
#define RANCHERD_CONFIG "/etc/rancher/rancherd/config.yaml"
#define RANCHERD_BOOTSTRAP_DIR "/etc/rancher/rancherd/config.yaml.d"
#define RKE2_CONFIG_DIR "/etc/rancher/rke2/config.yaml.d"
#define ROLE_LABEL_PREFIX "node-role.harvesterhci.io/"
#define DATA_DISK_PATH "/var/lib/harvester/defaultdisk"

static inline void yaml_parser_deletep(yaml_parser_t **p) {
        if (*p) {
                yaml_parser_delete(*p);
                free(*p);
        }
}
#define _cleanup_yaml_parser_ _cleanup_(yaml_parser_deletep)

/* ---------------------------------------------------------------------------------------------- */
/* Strings */

/* True when a plain scalar with this text would not read back as the same string: empty, null,
 * a YAML 1.1 boolean, or something that may read as a number (yaml.v2 resolves YAML 1.1). */
static bool yaml_plain_ambiguous(const char *s) {
        static const char *const words[] = {
                "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
                "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
                "<<", "=",
        };
        if (isempty(s))
                return true;
        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (streq(s, words[i]))
                        return true;
        return strchr("0123456789+-.", s[0]) != NULL;
}

/* Appends s as a YAML double-quoted scalar. Returns false for invalid UTF-8. */
static bool put_dq(FILE *f, const char *s) {
        if (!utf8_valid(s))
                return false;
        fputs_quoted(f, s);
        return true;
}

/* A string that can stand unquoted in a shell-sourced ifcfg file, a sed expression or a command
 * line: no whitespace, no quotes, no shell or sed metacharacters. */
static bool word_safe(const char *s, const char *extra) {
        return valid_word(s, extra);
}

static bool label_part_valid(const char *s, bool key) {
        return isempty(s) ? !key : word_safe(s, key ? "/" : NULL);
}

/* ---------------------------------------------------------------------------------------------- */
/* Text documents in memory */

struct text {
        FILE *f;
        char *buf;
        size_t len;
        bool bad; /* a value was not valid UTF-8 */
};

static int text_open(struct text *t) {
        *t = (struct text) {};
        t->f = open_memstream(&t->buf, &t->len);
        return t->f ? 0 : -ENOMEM;
}

static void text_done(struct text *t) {
        if (t->f)
                fclose(t->f);
        free(t->buf);
        *t = (struct text) {};
}

/* Closes the stream and hands the text on. */
static int text_finish(struct text *t, char **ret) {
        bool failed = ferror(t->f);
        if (fclose(t->f) != 0)
                failed = true;
        t->f = NULL;
        if (failed) {
                text_done(t);
                return -ENOMEM;
        }
        if (t->bad) {
                text_done(t);
                return -EILSEQ;
        }
        *ret = TAKE_PTR(t->buf);
        text_done(t);
        return 0;
}

static void text_dq(struct text *t, const char *s) {
        if (!put_dq(t->f, s))
                t->bad = true;
}

/* A scalar: plain when that reads back as the same string and is made of harmless characters,
 * else double-quoted. */
static void text_scalar(struct text *t, const char *s) {
        if (!yaml_plain_ambiguous(s) && word_safe(s, "/:+@"))
                fputs(s, t->f);
        else
                text_dq(t, s);
}

/* ---------------------------------------------------------------------------------------------- */
/* YAML documents through libyaml's emitter */

struct emit {
        yaml_emitter_t *e;
        FILE *out;
        bool failed;
        bool bad_text; /* a value was not valid UTF-8 */
};

static int emit_write(void *data, unsigned char *buffer, size_t size) {
        FILE *f = data;
        return fwrite(buffer, 1, size, f) == size;
}

static void emit_event(struct emit *m, yaml_event_t *ev, int init_ok) {
        if (!init_ok) {
                /* Nothing was allocated: the value was refused (invalid UTF-8) or memory ran out. */
                m->failed = true;
                return;
        }
        if (m->failed) {
                yaml_event_delete(ev);
                return;
        }
        /* The emitter frees the event, also when it fails. */
        if (!yaml_emitter_emit(m->e, ev))
                m->failed = true;
}

static void emit_scalar_style(struct emit *m, const char *s, yaml_scalar_style_t style) {
        yaml_event_t ev;
        if (!utf8_valid(s)) {
                m->bad_text = m->failed = true;
                return;
        }
        int ok = yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1, style);
        emit_event(m, &ev, ok);
}

/* A string value: plain where it reads back as the same string, else double-quoted; libyaml itself
 * quotes plain text that YAML's syntax does not allow unquoted. */
static void emit_str(struct emit *m, const char *s) {
        s = strempty(s);
        emit_scalar_style(m, s, yaml_plain_ambiguous(s) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE);
}

/* File contents: a literal block scalar ("|") wherever YAML allows one, else double-quoted. */
static void emit_literal(struct emit *m, const char *s) {
        s = strempty(s);
        emit_scalar_style(m, s, *s ? YAML_LITERAL_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

static void emit_int(struct emit *m, long long v) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", v);
        emit_scalar_style(m, buf, YAML_PLAIN_SCALAR_STYLE);
}

static void emit_bool(struct emit *m, bool v) {
        emit_scalar_style(m, v ? "true" : "false", YAML_PLAIN_SCALAR_STYLE);
}

static void emit_map_start(struct emit *m, bool flow) {
        yaml_event_t ev;
        int ok = yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                     flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
        emit_event(m, &ev, ok);
}

static void emit_map_end(struct emit *m) {
        yaml_event_t ev;
        int ok = yaml_mapping_end_event_initialize(&ev);
        emit_event(m, &ev, ok);
}

static void emit_seq_start(struct emit *m, bool flow) {
        yaml_event_t ev;
        int ok = yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                      flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
        emit_event(m, &ev, ok);
}

static void emit_seq_end(struct emit *m) {
        yaml_event_t ev;
        int ok = yaml_sequence_end_event_initialize(&ev);
        emit_event(m, &ev, ok);
}

static void emit_key(struct emit *m, const char *k) {
        emit_str(m, k);
}

static void emit_kv(struct emit *m, const char *k, const char *v) {
        emit_key(m, k);
        emit_str(m, v);
}

static void emit_kv_int(struct emit *m, const char *k, long long v) {
        emit_key(m, k);
        emit_int(m, v);
}

static void emit_kv_bool(struct emit *m, const char *k, bool v) {
        emit_key(m, k);
        emit_bool(m, v);
}

static void emit_strv(struct emit *m, char *const *l) {
        bool empty = !l || !*l;
        emit_seq_start(m, empty);
        for (char *const *s = l; s && *s; s++)
                emit_str(m, *s);
        emit_seq_end(m);
}

static void emit_kvmap(struct emit *m, const struct kvmap *map) {
        emit_map_start(m, map->n == 0);
        for (size_t i = 0; i < map->n; i++)
                emit_kv(m, map->items[i].key, map->items[i].value);
        emit_map_end(m);
}

static int emit_begin(struct emit *m, FILE *out) {
        *m = (struct emit) { .out = out };
        m->e = calloc(1, sizeof(yaml_emitter_t));
        if (!m->e)
                return -ENOMEM;
        if (!yaml_emitter_initialize(m->e)) {
                free(m->e);
                m->e = NULL;
                return -ENOMEM;
        }
        yaml_emitter_set_output(m->e, emit_write, out);
        yaml_emitter_set_unicode(m->e, 1);
        yaml_emitter_set_width(m->e, -1);
        yaml_emitter_set_indent(m->e, 2);

        yaml_event_t ev;
        emit_event(m, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
        emit_event(m, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
        return 0;
}

/* Ends the document and the stream, flushes, frees the emitter. */
static int emit_end(struct emit *m) {
        yaml_event_t ev;
        emit_event(m, &ev, yaml_document_end_event_initialize(&ev, 1));
        emit_event(m, &ev, yaml_stream_end_event_initialize(&ev));
        if (!m->failed && !yaml_emitter_flush(m->e))
                m->failed = true;
        bool emitter_error = m->e->error != YAML_NO_ERROR;
        yaml_emitter_delete(m->e);
        free(m->e);
        m->e = NULL;
        if (m->bad_text)
                return -EILSEQ;
        if (m->failed)
                return emitter_error ? -EINVAL : -ENOMEM;
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* What goes into the documents */

struct yip_file {
        char *path;
        char *content;
        unsigned mode;
        const char *encoding;    /* write_files only */
        const char *owner_string; /* write_files only */
};

struct model {
        const struct config *c;
        const char *hostname;
        const char *password_hash;
        const char *mode; /* create | join | install */
        const char *kubernetes, *rancher, *harvester_chart, *monitoring_chart, *logging_chart;
        const char *tty;
        char *node_labels;           /* "k=v,k=v", NULL when no labels */
        char *mgmt_name;             /* mgmt-br or mgmt-br.<vid> */
        bool vlan;
        bool data_partition;
        struct yip_file files[70]; /* CONFIG_MAX_WRITE_FILES write_files and ours (test-dryrun.c checks the fit) */
        size_t n_files;
        char **commands;
        char **directories;
        unsigned directory_modes[8];
};

static void model_done(struct model *m) {
        for (size_t i = 0; i < m->n_files; i++) {
                free(m->files[i].path);
                free(m->files[i].content);
        }
        free(m->node_labels);
        free(m->mgmt_name);
        strv_free(m->commands);
        strv_free(m->directories);
        *m = (struct model) {};
}

/* Takes ownership of path and content (both freed on failure). */
static int model_add_file_owned(struct model *m, char *path, char *content, unsigned mode) {
        if (!path || !content) {
                free(path);
                free(content);
                return -ENOMEM;
        }
        if (m->n_files >= ELEMENTSOF(m->files)) {
                free(path);
                free(content);
                return log_error_errno(E2BIG, "Too many files for the node's cloud-config (at most %zu).",
                                       ELEMENTSOF(m->files));
        }
        m->files[m->n_files++] = (struct yip_file) { .path = path, .content = content, .mode = mode };
        return 0;
}

static int model_add_file(struct model *m, const char *path, char *content, unsigned mode) {
        return model_add_file_owned(m, strdup(path), content, mode);
}

static int model_add_dir(struct model *m, const char *path, unsigned mode) {
        size_t n = strv_length(m->directories);
        if (n >= ELEMENTSOF(m->directory_modes))
                return -E2BIG;
        int r = strv_push(&m->directories, path);
        if (r < 0)
                return r;
        m->directory_modes[n] = mode;
        return 0;
}

static bool mode_is(const struct model *m, const char *mode) {
        return streq(m->mode, mode);
}

static int cmp_kv_key(const void *a, const void *b) {
        return strcmp(((const struct kv *)a)->key, ((const struct kv *)b)->key);
}

/* --- rancherd and rke2 ------------------------------------------------------------------------ */

static int render_rancherd_config(const struct model *m, char **ret) {
        const struct config *c = m->c;
        struct text t;
        int r = text_open(&t);
        if (r < 0)
                return r;
        if (mode_is(m, "join")) {
                fputs("server: ", t.f);
                text_scalar(&t, c->server_url);
                fputs("\nrole: agent\n", t.f);
        } else
                fputs("role: cluster-init\n", t.f);
        fputs("token: ", t.f);
        text_dq(&t, strempty(c->token));
        fputs("\nkubernetesVersion: ", t.f);
        text_scalar(&t, m->kubernetes);
        fputs("\nrancherVersion: ", t.f);
        text_scalar(&t, m->rancher);
        fputs("\nrancherInstallerImage: ", t.f);
        _cleanup_free_ char *image = strdup_printf("rancher/system-agent-installer-rancher:%s", m->rancher);
        if (!image) {
                text_done(&t);
                return -ENOMEM;
        }
        text_scalar(&t, image);
        fputs("\nlabels:\n- harvesterhci.io/managed=true\n", t.f);
        return text_finish(&t, ret);
}

static void put_kubelet_args(const struct model *m, struct text *t) {
        if (!m->node_labels)
                return;
        _cleanup_free_ char *arg = strdup_printf("node-labels=%s", m->node_labels);
        if (!arg) {
                t->bad = true;
                return;
        }
        fputs("kubelet-arg:\n- ", t->f);
        text_dq(t, arg);
        fputc('\n', t->f);
}

static int render_rke2_server(const struct model *m, char **ret) {
        const struct config *c = m->c;
        struct text t;
        int r = text_open(&t);
        if (r < 0)
                return r;
        fputs("cni: multus,canal\ncluster-cidr: ", t.f);
        text_scalar(&t, c->install.cluster_pod_cidr ?: "10.52.0.0/16");
        fputs("\nservice-cidr: ", t.f);
        text_scalar(&t, c->install.cluster_service_cidr ?: "10.53.0.0/16");
        fputs("\ncluster-dns: ", t.f);
        text_scalar(&t, c->install.cluster_dns ?: "10.53.0.10");
        fputs("\ntls-san:\n", t.f);
        if (!isempty(c->install.vip)) {
                fputs("  - ", t.f);
                text_scalar(&t, c->install.vip);
                fputc('\n', t.f);
        }
        STRV_FOREACH(san, c->sans) {
                fputs("  - ", t.f);
                text_scalar(&t, *san);
                fputc('\n', t.f);
        }
        put_kubelet_args(m, &t);
        fputs("audit-policy-file: " RKE2_CONFIG_DIR "/92-harvester-kube-audit-policy.yaml\n", t.f);
        return text_finish(&t, ret);
}

static int render_rke2_agent(const struct model *m, char **ret) {
        struct text t;
        int r = text_open(&t);
        if (r < 0)
                return r;
        put_kubelet_args(m, &t);
        return text_finish(&t, ret);
}

static int render_rke2_witness(char **ret) {
        char *s = strdup("node-taint:\n- \"node-role.kubernetes.io/etcd=true:NoExecute\"\n");
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int render_audit_policy(char **ret) {
        /* Metadata-level audit of create/delete/patch requests, as Harvester v1.1 configures it. */
        char *s = strdup("apiVersion: audit.k8s.io/v1\n"
                         "kind: Policy\n"
                         "omitStages:\n"
                         "  - \"ResponseStarted\"\n"
                         "  - \"ResponseComplete\"\n"
                         "rules:\n"
                         "  - level: Metadata\n"
                         "    verbs: [\"create\", \"delete\", \"patch\"]\n"
                         "    omitStages:\n"
                         "      - \"ResponseStarted\"\n"
                         "      - \"ResponseComplete\"\n");
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* The rancherd bootstrap resources of a create node (RANCHERD_BOOTSTRAP_DIR), rendered from the
 * templates of agent/templates/ as v1.1.2's genBootstrapResources does; 12 is copied as it is (its
 * Grafana dashboards hold "{{...}}" of their own), as v1.1.2 does. */
static const struct {
        const char *name;
        bool rendered;
} bootstrap_files[] = {
        { "10-harvester.yaml", true },        { "11-monitoring-crd.yaml", true },
        { "12-monitoring-dashboard.yaml", false }, { "13-monitoring.yaml", true },
        { "14-logging-crd.yaml", true },      { "15-logging.yaml", true },
        { "20-harvester-settings.yaml", true }, { "22-addons.yaml", true },
};

static int render_bootstrap(const struct model *m, const char *name, bool rendered, char **ret) {
        const struct config *c = m->c;
        _cleanup_free_ char *tname = strdup_printf("rancherd-%s", name);
        if (!tname)
                return -ENOMEM;
        const char *tmpl = tmpl_builtin(tname);
        if (!tmpl)
                return log_error_errno(ENOENT, "The agent was built without its template '%s'.", tname);
        if (!rendered) {
                *ret = strdup(tmpl);
                return *ret ? 0 : -ENOMEM;
        }
        const struct tmpl_var vars[] = {
                { "HarvesterChartVersion", m->harvester_chart },
                { "MonitoringChartVersion", m->monitoring_chart },
                { "LoggingChartVersion", m->logging_chart },
                { "Vip", c->install.vip },
                { "VipMode", strempty(c->install.vip_mode) },
                { "VipHwAddr", strempty(c->install.vip_hw_addr) },
                { "SystemSettings", NULL, &c->system_settings },
        };
        const char *err = NULL;
        int r = tmpl_render(tmpl, vars, ELEMENTSOF(vars), TMPL_STRICT | TMPL_ACTIONS, ret, &err);
        if (r == -EINVAL)
                return log_error_errno(EINVAL, "Cannot render '%s' for %s: %s.", tname, name, err);
        return r;
}

/* --- the management network (wicked) ---------------------------------------------------------- */

static int render_ifcfg_bond(const struct model *m, char **ret) {
        const struct mgmt_interface *mi = &m->c->install.management_interface;
        struct text t;
        int r = text_open(&t);
        if (r < 0)
                return r;
        fputs("STARTMODE='onboot'\n"
              "BONDING_MASTER='yes'\n"
              "BOOTPROTO='none'\n"
              "POST_UP_SCRIPT=\"wicked:setup_bond.sh\"\n",
              t.f);
        for (size_t i = 0; i < mi->n_interfaces; i++)
                fprintf(t.f, "BONDING_SLAVE_%zu='%s'\n", i, mi->interfaces[i].name);

        /* Options sorted by name, each followed by a space, as v1.1 writes them; v1.1's defaults
         * when none are given. */
        size_t n = mi->bond_options.n;
        struct kv defaults[] = { { (char *)"miimon", (char *)"100" }, { (char *)"mode", (char *)"balance-tlb" } };
        _cleanup_free_ struct kv *opts = NULL;
        if (n == 0) {
                n = ELEMENTSOF(defaults);
                opts = malloc(sizeof defaults);
                if (opts)
                        memcpy(opts, defaults, sizeof defaults);
        } else {
                opts = malloc(n * sizeof(struct kv));
                if (opts)
                        memcpy(opts, mi->bond_options.items, n * sizeof(struct kv));
        }
        if (!opts) {
                text_done(&t);
                return -ENOMEM;
        }
        qsort(opts, n, sizeof(struct kv), cmp_kv_key);
        fputs("BONDING_MODULE_OPTS='", t.f);
        for (size_t i = 0; i < n; i++)
                fprintf(t.f, "%s=%s ", opts[i].key, opts[i].value);
        fputs("'\n"
              "DHCLIENT_SET_DEFAULT_ROUTE='no'\n",
              t.f);
        if (mi->mtu > 0)
                fprintf(t.f, "MTU=%" PRIi64 "\n", mi->mtu);
        return text_finish(&t, ret);
}

static int render_ifcfg_slave(char **ret) {
        char *s = strdup("STARTMODE='hotplug'\nBOOTPROTO='none'\n");
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static bool method_static(const struct mgmt_interface *mi) {
        return streq_ptr(mi->method, "static");
}

static int render_ifcfg_bridge(const struct model *m, char **ret) {
        const struct mgmt_interface *mi = &m->c->install.management_interface;
        struct text t;
        int r = text_open(&t);
        if (r < 0)
                return r;
        fprintf(t.f,
                "STARTMODE='onboot'\n"
                "BOOTPROTO='%s'\n"
                "BRIDGE='yes'\n"
                "BRIDGE_STP='off'\n"
                "BRIDGE_FORWARDDELAY='0'\n"
                "BRIDGE_PORTS='" MGMT_BOND "'\n"
                "PRE_UP_SCRIPT=\"wicked:setup_bridge.sh\"\n"
                "POST_UP_SCRIPT=\"wicked:setup_bridge.sh\"\n",
                m->vlan ? "none" : mi->method);
        if (!m->vlan && method_static(mi))
                fprintf(t.f, "IPADDR=%s\nNETMASK=%s\n", mi->ip, mi->subnet_mask);
        fprintf(t.f, "DHCLIENT_SET_DEFAULT_ROUTE='%s'\n", m->vlan ? "no" : "yes");
        if (mi->mtu > 0)
                fprintf(t.f, "MTU=%" PRIi64 "\n", mi->mtu);
        return text_finish(&t, ret);
}

static int render_ifcfg_vlan(const struct model *m, char **ret) {
        const struct mgmt_interface *mi = &m->c->install.management_interface;
        struct text t;
        int r = text_open(&t);
        if (r < 0)
                return r;
        fprintf(t.f,
                "STARTMODE='onboot'\n"
                "ETHERDEVICE='" MGMT_BRIDGE "'\n"
                "VLAN_PROTOCOL='ieee802-1Q'\n"
                "VLAN_ID=%" PRIi64 "\n"
                "BOOTPROTO='%s'\n",
                mi->vlan_id, mi->method);
        if (method_static(mi))
                fprintf(t.f, "IPADDR=%s\nNETMASK=%s\n", mi->ip, mi->subnet_mask);
        fputs("DHCLIENT_SET_DEFAULT_ROUTE='yes'\n", t.f);
        if (mi->mtu > 0)
                fprintf(t.f, "MTU=%" PRIi64 "\n", mi->mtu);
        return text_finish(&t, ret);
}

static int render_ifroute(const struct model *m, char **ret) {
        const struct mgmt_interface *mi = &m->c->install.management_interface;
        char *s = strdup_printf("default %s - %s\n", mi->gateway, m->mgmt_name);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* wicked runs these with the action and the interface name as arguments. */
static int render_setup_bond(char **ret) {
        char *s = strdup("#!/bin/sh\n"
                         "# wicked post-up script of " MGMT_BOND " (written by the Harvester installer)\n"
                         "action=\"$1\"\n"
                         "iface=\"$2\"\n"
                         "\n"
                         "if [ \"$action\" = post-up ]; then\n"
                         "    # The bridge takes the bond's MAC address, so DHCP leases stay the same.\n"
                         "    ip link set dev " MGMT_BRIDGE " address \"$(cat /sys/class/net/\"$iface\"/address)\"\n"
                         "    # Every VLAN passes the bond; untagged traffic keeps PVID 1.\n"
                         "    bridge vlan add vid 2-4094 dev \"$iface\"\n"
                         "fi\n");
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int render_setup_bridge(char **ret) {
        char *s = strdup("#!/bin/sh\n"
                         "# wicked pre-up and post-up script of " MGMT_BRIDGE " (written by the Harvester installer)\n"
                         "action=\"$1\"\n"
                         "iface=\"$2\"\n"
                         "\n"
                         "case \"$action\" in\n"
                         "pre-up)\n"
                         "    # A VLAN-aware bridge.\n"
                         "    ip link set dev \"$iface\" type bridge vlan_filtering 1\n"
                         "    ;;\n"
                         "post-up)\n"
                         "    # Every VLAN passes the bridge and its port; untagged traffic keeps PVID 1.\n"
                         "    bridge vlan add vid 2-4094 dev \"$iface\" self\n"
                         "    bridge vlan add vid 2-4094 dev " MGMT_BOND "\n"
                         "    ;;\n"
                         "esac\n");
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* --- checks of values that end up in shell-read files ----------------------------------------- */

static int check_network(const struct config *c) {
        const struct mgmt_interface *mi = &c->install.management_interface;

        if (mi->n_interfaces == 0)
                return log_error_errno(EINVAL, "install.management_interface.interfaces is empty: the "
                                               "management network needs at least one interface.");
        for (size_t i = 0; i < mi->n_interfaces; i++) {
                const char *name = mi->interfaces[i].name;
                if (!word_safe(name, ":@") || strlen(name) > 15)
                        return log_error_errno(EINVAL,
                                               "install.management_interface.interfaces[%zu]: the interface "
                                               "name \"%s\" is not a valid network interface name%s.",
                                               i, strempty(name),
                                               isempty(name) ? " (only a MAC address was given and it was not resolved)" : "");
        }
        if (!streq_ptr(mi->method, "dhcp") && !streq_ptr(mi->method, "static"))
                return log_error_errno(EINVAL, "install.management_interface.method \"%s\" is not dhcp or static.",
                                       strempty(mi->method));
        if (method_static(mi)) {
                const char *keys[] = { "ip", "subnet_mask", "gateway" };
                const char *vals[] = { mi->ip, mi->subnet_mask, mi->gateway };
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if (!word_safe(vals[i], ":/"))
                                return log_error_errno(EINVAL,
                                                       "install.management_interface.%s \"%s\" is not an address "
                                                       "(required for the static method).",
                                                       keys[i], strempty(vals[i]));
        }
        for (size_t i = 0; i < mi->bond_options.n; i++)
                if (!word_safe(mi->bond_options.items[i].key, NULL) ||
                    !word_safe(mi->bond_options.items[i].value, ",:/+"))
                        return log_error_errno(EINVAL,
                                               "install.management_interface.bond_options: \"%s=%s\" holds "
                                               "characters a bonding option cannot have.",
                                               mi->bond_options.items[i].key, strempty(mi->bond_options.items[i].value));
        if (mi->vlan_id < 0 || mi->vlan_id > 4094)
                return log_error_errno(EINVAL, "install.management_interface.vlan_id %" PRIi64 " is not in 0..4094.",
                                       mi->vlan_id);
        if (mi->mtu < 0 || mi->mtu > 65535)
                return log_error_errno(EINVAL, "install.management_interface.mtu %" PRIi64 " is out of range.", mi->mtu);
        STRV_FOREACH(s, c->os.dns_nameservers)
                if (!word_safe(*s, ":%"))
                        return log_error_errno(EINVAL, "os.dns_nameservers: \"%s\" is not an IP address.", *s);
        STRV_FOREACH(s, c->os.ntp_servers)
                if (!word_safe(*s, ":"))
                        return log_error_errno(EINVAL, "os.ntp_servers: \"%s\" is not a host name or IP address.", *s);
        STRV_FOREACH(s, c->os.modules)
                if (!word_safe(*s, NULL))
                        return log_error_errno(EINVAL, "os.modules: \"%s\" is not a kernel module name.", *s);
        return 0;
}

/* --- the model -------------------------------------------------------------------------------- */

static int build_node_labels(struct model *m) {
        const struct config *c = m->c;
        const struct kvmap *labels = &c->os.labels;
        _cleanup_strv_free_ char **parts = NULL;
        int r;

        for (size_t i = 0; i < labels->n; i++) {
                if (!label_part_valid(labels->items[i].key, true) ||
                    !label_part_valid(labels->items[i].value, false))
                        return log_error_errno(EINVAL, "os.labels: \"%s: %s\" is not a valid Kubernetes label.",
                                               labels->items[i].key, strempty(labels->items[i].value));
                r = strv_consume(&parts, strdup_printf("%s=%s", labels->items[i].key, strempty(labels->items[i].value)));
                if (r < 0)
                        return r;
        }
        const char *role = c->install.role;
        if (!isempty(role) && !streq(role, "default")) {
                if (!streq(role, "management") && !streq(role, "worker") && !streq(role, "witness"))
                        return log_error_errno(EINVAL, "install.role \"%s\" is not default, management, worker or witness.",
                                               role);
                r = strv_consume(&parts, strdup_printf(ROLE_LABEL_PREFIX "%s=true", role));
                if (r < 0)
                        return r;
        }
        if (parts) {
                m->node_labels = strv_join(parts, ",");
                if (!m->node_labels)
                        return -ENOMEM;
        }
        return 0;
}

static int add_rendered_owned(struct model *m, char *path, int (*render)(const struct model *, char **),
                              unsigned mode) {
        char *content = NULL;
        int r = render(m, &content);
        if (r < 0) {
                free(path);
                return r;
        }
        return model_add_file_owned(m, path, content, mode);
}

static int add_rendered(struct model *m, const char *path, int (*render)(const struct model *, char **), unsigned mode) {
        return add_rendered_owned(m, strdup(path), render, mode);
}

static int add_static(struct model *m, const char *path, int (*render)(char **), unsigned mode) {
        char *content = NULL;
        int r = render(&content);
        if (r < 0)
                return r;
        return model_add_file(m, path, content, mode);
}

static int build_cluster_files(struct model *m) {
        int r;

        r = model_add_dir(m, RKE2_CONFIG_DIR, 0600);
        if (r < 0)
                return r;
        r = add_rendered(m, RANCHERD_CONFIG, render_rancherd_config, 0600);
        if (r < 0)
                return r;
        if (mode_is(m, "create")) {
                r = model_add_dir(m, RANCHERD_BOOTSTRAP_DIR, 0600);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < ELEMENTSOF(bootstrap_files); i++) {
                        char *content = NULL;
                        r = render_bootstrap(m, bootstrap_files[i].name, bootstrap_files[i].rendered, &content);
                        if (r < 0)
                                return r;
                        r = model_add_file_owned(m, strdup_printf(RANCHERD_BOOTSTRAP_DIR "/%s", bootstrap_files[i].name),
                                                 content, 0600);
                        if (r < 0)
                                return r;
                }
                r = add_rendered(m, RKE2_CONFIG_DIR "/90-harvester-server.yaml", render_rke2_server, 0600);
                if (r < 0)
                        return r;
        }
        r = add_static(m, RKE2_CONFIG_DIR "/92-harvester-kube-audit-policy.yaml", render_audit_policy, 0600);
        if (r < 0)
                return r;
        r = add_rendered(m, RKE2_CONFIG_DIR "/90-harvester-agent.yaml", render_rke2_agent, 0600);
        if (r < 0)
                return r;
        if (streq_ptr(m->c->install.role, "witness")) {
                r = add_static(m, RKE2_CONFIG_DIR "/99-harvester-witness.yaml", render_rke2_witness, 0600);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int build_write_files(struct model *m) {
        const struct os_config *os = &m->c->os;
        for (size_t i = 0; i < os->n_write_files; i++) {
                const struct write_file *w = &os->write_files[i];
                unsigned mode = 0600;
                if (isempty(w->path) || w->path[0] != '/')
                        return log_error_errno(EINVAL, "os.write_files[%zu].path \"%s\" is not an absolute path.",
                                               i, strempty(w->path));
                if (!isempty(w->permissions)) {
                        char *end = NULL;
                        errno = 0;
                        unsigned long v = strtoul(w->permissions, &end, 8);
                        if (errno || !end || *end || v > 07777)
                                log_warning("os.write_files[%zu].permissions \"%s\" is not an octal mode; %s gets 0600.",
                                            i, w->permissions, w->path);
                        else
                                mode = (unsigned)v;
                }
                char *content = strdup(strempty(w->content));
                if (!content)
                        return -ENOMEM;
                int r = model_add_file(m, w->path, content, mode);
                if (r < 0)
                        return r;
                m->files[m->n_files - 1].encoding = w->encoding;
                m->files[m->n_files - 1].owner_string = w->owner;
        }
        return 0;
}

static int build_network_files(struct model *m) {
        const struct mgmt_interface *mi = &m->c->install.management_interface;
        int r;

        r = model_add_dir(m, WICKED_SCRIPTS_DIR, 0755);
        if (r < 0)
                return r;
        r = add_static(m, WICKED_SCRIPTS_DIR "/setup_bond.sh", render_setup_bond, 0755);
        if (r < 0)
                return r;
        r = add_rendered(m, NETWORK_DIR "ifcfg-" MGMT_BOND, render_ifcfg_bond, 0600);
        if (r < 0)
                return r;
        for (size_t i = 0; i < mi->n_interfaces; i++) {
                char *content = NULL;
                r = render_ifcfg_slave(&content);
                if (r < 0)
                        return r;
                r = model_add_file_owned(m, strdup_printf(NETWORK_DIR "ifcfg-%s", mi->interfaces[i].name),
                                         content, 0600);
                if (r < 0)
                        return r;
        }
        r = add_static(m, WICKED_SCRIPTS_DIR "/setup_bridge.sh", render_setup_bridge, 0755);
        if (r < 0)
                return r;
        r = add_rendered(m, NETWORK_DIR "ifcfg-" MGMT_BRIDGE, render_ifcfg_bridge, 0600);
        if (r < 0)
                return r;
        if (m->vlan) {
                r = add_rendered_owned(m, strdup_printf(NETWORK_DIR "ifcfg-%s", m->mgmt_name),
                                       render_ifcfg_vlan, 0600);
                if (r < 0)
                        return r;
        }
        if (method_static(mi)) {
                r = add_rendered_owned(m, strdup_printf(NETWORK_DIR "ifroute-%s", m->mgmt_name),
                                       render_ifroute, 0600);
                if (r < 0)
                        return r;
        } else {
                r = strv_consume(&m->commands, strdup_printf("rm -f " NETWORK_DIR "ifroute-%s", m->mgmt_name));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int build_commands(struct model *m) {
        const struct os_config *os = &m->c->os;
        int r;

        if (os->dns_nameservers && !mode_is(m, "install")) {
                _cleanup_free_ char *servers = strv_join(os->dns_nameservers, " ");
                if (!servers)
                        return -ENOMEM;
                r = strv_consume(&m->commands,
                                 strdup_printf("sed -i 's/^NETCONFIG_DNS_STATIC_SERVERS.*/NETCONFIG_DNS_STATIC_SERVERS=\"%s\"/' "
                                               NETWORK_DIR "config",
                                               servers));
                if (r < 0)
                        return r;
        }
        /* kvm and vhost_net first, always (v1.1's base configuration), then os.modules. */
        _cleanup_strv_free_ char **modules = NULL;
        r = strv_push(&modules, "kvm");
        if (r >= 0)
                r = strv_push(&modules, "vhost_net");
        if (r < 0)
                return r;
        STRV_FOREACH(mod, os->modules)
                if (!strv_contains(modules, *mod)) {
                        r = strv_push(&modules, *mod);
                        if (r < 0)
                                return r;
                }
        STRV_FOREACH(mod, modules) {
                r = strv_consume(&m->commands, strdup_printf("modprobe %s", *mod));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int model_build(struct model *m) {
        const struct config *c = m->c;
        const struct mgmt_interface *mi = &c->install.management_interface;
        int r;

        m->vlan = mi->vlan_id >= 2 && mi->vlan_id <= 4094;
        m->mgmt_name = m->vlan ? strdup_printf(MGMT_BRIDGE ".%" PRIi64, mi->vlan_id) : strdup(MGMT_BRIDGE);
        if (!m->mgmt_name)
                return -ENOMEM;
        /* v1.1: the data partition is missing only with force_mbr and no data disk. */
        m->data_partition = !(c->install.force_mbr && isempty(c->install.data_disk));

        r = build_node_labels(m);
        if (r < 0)
                return r;
        if (!mode_is(m, "install")) {
                r = check_network(c);
                if (r < 0)
                        return r;
                r = build_cluster_files(m);
                if (r < 0)
                        return r;
        } else {
                STRV_FOREACH(s, c->os.modules)
                        if (!word_safe(*s, NULL))
                                return log_error_errno(EINVAL, "os.modules: \"%s\" is not a kernel module name.", *s);
        }
        r = build_write_files(m);
        if (r < 0)
                return r;
        if (c->os.sshd_sftp) {
                char *s = strdup("Subsystem sftp /usr/lib/ssh/sftp-server\n");
                if (!s)
                        return -ENOMEM;
                r = model_add_file(m, "/etc/ssh/sshd_config.d/sftp.conf", s, 0644);
                if (r < 0)
                        return r;
        }
        if (c->os.sshd_disable_password_auth) {
                char *s = strdup("PasswordAuthentication no\nKbdInteractiveAuthentication no\n");
                if (!s)
                        return -ENOMEM;
                r = model_add_file(m, "/etc/ssh/sshd_config.d/50-harvester-no-password.conf", s, 0644);
                if (r < 0)
                        return r;
        }
        r = build_commands(m);
        if (r < 0)
                return r;
        if (!mode_is(m, "install")) {
                r = build_network_files(m);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* 90_custom.yaml */

static void emit_rootfs_stage(struct emit *e, const struct model *m, const char *state_paths) {
        emit_seq_start(e, false);
        emit_map_start(e, false);
        emit_kv(e, "if", "[ ! -f \"/run/cos/recovery_mode\" ]");
        emit_kv(e, "name", "Rootfs layout overwrite");
        emit_kv(e, "environment_file", "/run/cos/cos-layout.env");
        emit_key(e, "environment");
        emit_map_start(e, false);
        emit_kv(e, "VOLUMES",
                m->data_partition ? "LABEL=COS_OEM:/oem LABEL=COS_PERSISTENT:/usr/local "
                                    "LABEL=HARV_LH_DEFAULT:" DATA_DISK_PATH
                                  : "LABEL=COS_OEM:/oem LABEL=COS_PERSISTENT:/usr/local");
        emit_kv(e, "OVERLAY", "tmpfs:25%");
        emit_kv(e, "RW_PATHS", "/var /etc /srv /boot");
        emit_kv(e, "PERSISTENT_STATE_PATHS", state_paths);
        emit_kv(e, "PERSISTENT_STATE_BIND", "true");
        emit_map_end(e);
        emit_map_end(e);
        emit_seq_end(e);
}

static void emit_files(struct emit *e, const struct model *m) {
        emit_seq_start(e, m->n_files == 0);
        for (size_t i = 0; i < m->n_files; i++) {
                const struct yip_file *f = &m->files[i];
                emit_map_start(e, false);
                emit_kv(e, "path", f->path);
                emit_kv_int(e, "permissions", f->mode); /* decimal, as yip reads it */
                emit_kv_int(e, "owner", 0);
                emit_kv_int(e, "group", 0);
                emit_key(e, "content");
                emit_literal(e, f->content);
                if (!isempty(f->encoding))
                        emit_kv(e, "encoding", f->encoding);
                if (!isempty(f->owner_string))
                        emit_kv(e, "ownerstring", f->owner_string);
                emit_map_end(e);
        }
        emit_seq_end(e);
}

static void emit_initramfs_stage(struct emit *e, const struct model *m) {
        const struct os_config *os = &m->c->os;
        bool cluster = !mode_is(m, "install");

        emit_seq_start(e, false);
        emit_map_start(e, false);
        emit_key(e, "commands");
        emit_strv(e, m->commands);
        emit_key(e, "files");
        emit_files(e, m);
        emit_key(e, "directories");
        emit_seq_start(e, !m->directories);
        size_t i = 0;
        STRV_FOREACH(d, m->directories) {
                emit_map_start(e, false);
                emit_kv(e, "path", *d);
                emit_kv_int(e, "permissions", m->directory_modes[i++]);
                emit_kv_int(e, "owner", 0);
                emit_kv_int(e, "group", 0);
                emit_map_end(e);
        }
        emit_seq_end(e);
        if (cluster)
                emit_kv(e, "hostname", m->hostname);
        emit_key(e, "sysctl");
        emit_kvmap(e, &os->sysctls);
        emit_key(e, "environment");
        emit_kvmap(e, &os->environment);
        emit_key(e, "users");
        emit_map_start(e, false);
        emit_key(e, "rancher");
        emit_map_start(e, !m->password_hash);
        if (m->password_hash)
                emit_kv(e, "passwd", m->password_hash);
        emit_map_end(e);
        emit_map_end(e);
        if (cluster && os->ntp_servers) {
                _cleanup_free_ char *ntp = strv_join(os->ntp_servers, " ");
                emit_key(e, "timesyncd");
                emit_map_start(e, false);
                emit_kv(e, "NTP", ntp ? ntp : "");
                if (!ntp)
                        e->failed = true;
                emit_map_end(e);
                emit_key(e, "systemctl");
                emit_map_start(e, false);
                emit_key(e, "enable");
                char *units[] = { (char *)"systemd-timesyncd", (char *)"systemd-time-wait-sync", NULL };
                emit_strv(e, units);
                emit_map_end(e);
        }
        emit_map_end(e);
        emit_seq_end(e);
}

static void emit_network_stage(struct emit *e, const struct model *m) {
        emit_seq_start(e, false);
        emit_map_start(e, false);
        emit_key(e, "authorized_keys");
        emit_map_start(e, false);
        emit_key(e, "rancher");
        emit_strv(e, mode_is(m, "install") ? NULL : m->c->os.ssh_authorized_keys);
        emit_map_end(e);
        emit_map_end(e);
        emit_seq_end(e);
}

static int render_custom(const struct model *m, char **ret) {
        static const char *const v11_state_paths[] = {
                "/etc/systemd", "/etc/rancher", "/etc/ssh", "/etc/iscsi", "/etc/cni", "/etc/pki/trust/anchors",
                "/home", "/opt", "/root", "/usr/libexec", "/var/log", "/var/lib/rancher", "/var/lib/kubelet",
                "/var/lib/wicked", "/var/lib/cni", "/var/crash", "/var/lib/longhorn",
        };
        _cleanup_strv_free_ char **paths = NULL;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(v11_state_paths); i++) {
                r = strv_push(&paths, v11_state_paths[i]);
                if (r < 0)
                        return r;
        }
        STRV_FOREACH(p, m->c->os.persistent_state_paths) {
                if ((*p)[0] != '/' || strpbrk(*p, " \t\n"))
                        return log_error_errno(EINVAL, "os.persistent_state_paths: \"%s\" is not an absolute path "
                                                       "without spaces.", *p);
                if (!strv_contains(paths, *p)) {
                        r = strv_push(&paths, *p);
                        if (r < 0)
                                return r;
                }
        }
        if (!m->data_partition) {
                r = strv_push(&paths, DATA_DISK_PATH);
                if (r < 0)
                        return r;
        }
        _cleanup_free_ char *state_paths = strv_join(paths, " ");
        if (!state_paths)
                return -ENOMEM;

        struct text t;
        r = text_open(&t);
        if (r < 0)
                return r;
        struct emit e;
        r = emit_begin(&e, t.f);
        if (r < 0) {
                text_done(&t);
                return r;
        }
        emit_map_start(&e, false);
        emit_kv(&e, "name", "Harvester Configuration");
        emit_key(&e, "stages");
        emit_map_start(&e, false);
        emit_key(&e, "rootfs");
        emit_rootfs_stage(&e, m, state_paths);
        emit_key(&e, "initramfs");
        emit_initramfs_stage(&e, m);
        emit_key(&e, "network");
        emit_network_stage(&e, m);
        emit_map_end(&e);
        emit_map_end(&e);
        r = emit_end(&e);
        if (r < 0) {
                text_done(&t);
                return r;
        }
        return text_finish(&t, ret);
}

/* ---------------------------------------------------------------------------------------------- */
/* harvester.config: v1.1's HarvesterConfig as yaml.v2 dumps it (field names lowercased, every
 * field present, zero values included), with the keys of later versions after v1.1's. */

static void emit_webhooks(struct emit *e, const struct install_config *in) {
        emit_seq_start(e, in->n_webhooks == 0);
        for (size_t i = 0; i < in->n_webhooks; i++) {
                const struct webhook *w = &in->webhooks[i];
                emit_map_start(e, false);
                emit_kv(e, "event", w->event);
                emit_kv(e, "method", w->method);
                emit_key(e, "headers");
                emit_map_start(e, w->n_headers == 0);
                for (size_t j = 0; j < w->n_headers; j++) {
                        emit_key(e, w->headers[j].key);
                        emit_strv(e, w->headers[j].values);
                }
                emit_map_end(e);
                emit_kv(e, "url", w->url);
                emit_kv(e, "payload", w->payload);
                emit_kv_bool(e, "insecure", w->insecure);
                emit_key(e, "basicauth");
                emit_map_start(e, false);
                emit_kv(e, "user", w->basic_auth_user);
                emit_kv(e, "password", w->basic_auth_password);
                emit_map_end(e);
                emit_map_end(e);
        }
        emit_seq_end(e);
}

static int render_harvester_config(const struct model *m, char **ret) {
        const struct config *c = m->c;
        const struct os_config *os = &c->os;
        const struct install_config *in = &c->install;
        const struct mgmt_interface *mi = &in->management_interface;
        struct text t;
        int r = text_open(&t);
        if (r < 0)
                return r;
        struct emit e;
        r = emit_begin(&e, t.f);
        if (r < 0) {
                text_done(&t);
                return r;
        }

        emit_map_start(&e, false);
        emit_kv_int(&e, "schemeversion", c->scheme_version);
        emit_kv(&e, "serverurl", c->server_url);
        emit_kv(&e, "token", c->token);

        emit_key(&e, "os");
        emit_map_start(&e, false);
        emit_key(&e, "sshauthorizedkeys");
        emit_strv(&e, os->ssh_authorized_keys);
        emit_key(&e, "writefiles");
        emit_seq_start(&e, os->n_write_files == 0);
        for (size_t i = 0; i < os->n_write_files; i++) {
                const struct write_file *w = &os->write_files[i];
                emit_map_start(&e, false);
                emit_kv(&e, "encoding", w->encoding);
                emit_key(&e, "content");
                emit_literal(&e, w->content);
                emit_kv(&e, "owner", w->owner);
                emit_kv(&e, "path", w->path);
                emit_kv(&e, "rawfilepermissions", w->permissions);
                emit_map_end(&e);
        }
        emit_seq_end(&e);
        emit_kv(&e, "hostname", m->hostname);
        emit_key(&e, "modules");
        emit_strv(&e, os->modules);
        emit_key(&e, "sysctls");
        emit_kvmap(&e, &os->sysctls);
        emit_key(&e, "ntpservers");
        emit_strv(&e, os->ntp_servers);
        emit_key(&e, "dnsnameservers");
        emit_strv(&e, os->dns_nameservers);
        emit_key(&e, "wifi");
        emit_strv(&e, NULL);
        /* The password as stored on the node: its hash, never the clear text. */
        emit_kv(&e, "password", m->password_hash);
        emit_key(&e, "environment");
        emit_kvmap(&e, &os->environment);
        emit_key(&e, "labels");
        emit_kvmap(&e, &os->labels);
        /* Keys of later versions. */
        emit_key(&e, "afterinstallchrootcommands");
        emit_strv(&e, os->after_install_chroot_commands);
        emit_key(&e, "persistentstatepaths");
        emit_strv(&e, os->persistent_state_paths);
        emit_kv(&e, "additionalkernelarguments", os->additional_kernel_arguments);
        emit_key(&e, "sshd");
        emit_map_start(&e, false);
        emit_kv_bool(&e, "sftp", os->sshd_sftp);
        emit_map_end(&e);
        emit_map_end(&e);

        emit_key(&e, "install");
        emit_map_start(&e, false);
        emit_kv_bool(&e, "automatic", in->automatic);
        emit_kv(&e, "mode", m->mode);
        emit_key(&e, "managementinterface");
        emit_map_start(&e, false);
        emit_key(&e, "interfaces");
        emit_seq_start(&e, mi->n_interfaces == 0);
        for (size_t i = 0; i < mi->n_interfaces; i++) {
                emit_map_start(&e, false);
                emit_kv(&e, "name", mi->interfaces[i].name);
                emit_kv(&e, "hwaddr", mi->interfaces[i].hw_addr);
                emit_map_end(&e);
        }
        emit_seq_end(&e);
        emit_kv(&e, "method", mi->method);
        emit_kv(&e, "ip", mi->ip);
        emit_kv(&e, "subnetmask", mi->subnet_mask);
        emit_kv(&e, "gateway", mi->gateway);
        emit_kv_bool(&e, "defaultroute", mi->default_route);
        emit_key(&e, "bondoptions");
        emit_kvmap(&e, &mi->bond_options);
        emit_kv_int(&e, "mtu", mi->mtu);
        emit_kv_int(&e, "vlanid", mi->vlan_id);
        emit_map_end(&e);
        emit_kv(&e, "vip", in->vip);
        emit_kv(&e, "viphwaddr", in->vip_hw_addr);
        emit_kv(&e, "vipmode", in->vip_mode);
        emit_kv_bool(&e, "forceefi", in->force_efi);
        emit_kv(&e, "device", in->device);
        emit_kv(&e, "configurl", in->config_url);
        emit_kv_bool(&e, "silent", in->silent);
        /* Harvester's key is one URL: the first mirror (README, "More than one server"). */
        emit_kv(&e, "isourl", in->iso_urls ? in->iso_urls[0] : NULL);
        emit_kv_bool(&e, "poweroff", in->poweroff);
        emit_kv_bool(&e, "noformat", in->no_format);
        emit_kv_bool(&e, "debug", in->debug);
        emit_kv(&e, "tty", m->tty);
        emit_kv_bool(&e, "forcegpt", in->force_gpt);
        emit_kv_bool(&e, "forcembr", in->force_mbr);
        emit_kv(&e, "datadisk", in->data_disk);
        emit_key(&e, "webhooks");
        emit_webhooks(&e, in);
        /* Keys of later versions. */
        emit_kv(&e, "role", in->role);
        emit_kv_bool(&e, "skipchecks", in->skipchecks);
        emit_kv(&e, "persistentpartitionsize", in->persistent_partition_size);
        emit_kv_bool(&e, "wipealldisks", in->wipe_all_disks);
        emit_key(&e, "wipediskslist");
        emit_strv(&e, in->wipe_disks_list);
        emit_kv(&e, "clusterpodcidr", in->cluster_pod_cidr);
        emit_kv(&e, "clusterservicecidr", in->cluster_service_cidr);
        emit_kv(&e, "clusterdns", in->cluster_dns);
        emit_kv(&e, "isochecksum", in->iso_checksum);
        emit_kv(&e, "isochecksumurl", in->iso_checksum_url);
        emit_map_end(&e);

        emit_kv(&e, "runtimeversion", m->kubernetes);
        emit_kv(&e, "rancherversion", m->rancher);
        emit_kv(&e, "harvesterchartversion", m->harvester_chart);
        emit_kv(&e, "monitoringchartversion", strempty(m->monitoring_chart));
        emit_key(&e, "systemsettings");
        emit_kvmap(&e, &c->system_settings);
        emit_kv(&e, "loggingchartversion", strempty(m->logging_chart));
        emit_key(&e, "sans");
        emit_strv(&e, c->sans);
        emit_map_end(&e);

        r = emit_end(&e);
        if (r < 0) {
                text_done(&t);
                return r;
        }
        return text_finish(&t, ret);
}

/* ---------------------------------------------------------------------------------------------- */

/* The chart versions the bootstrap resources of a create node need (see harvester_release_check). */
static int chart_versions_check(const char *monitoring, const char *logging) {
        const char *missing[2];
        size_t n = 0;
        if (isempty(monitoring))
                missing[n++] = "monitoringChart";
        if (isempty(logging))
                missing[n++] = "loggingChart";
        if (n == 0)
                return 0;
        return log_error_errno(EINVAL,
                               "The image's /etc/harvester-release.yaml has no %s%s%s: the node's rancherd "
                               "bootstrap resources need the chart versions. Use a Harvester v1.1 ISO.",
                               missing[0], n > 1 ? " and no " : "", n > 1 ? missing[1] : "");
}

static const char *first_nonempty(const char *a, const char *b, const char *c) {
        return !isempty(a) ? a : !isempty(b) ? b : c;
}

/* The console of the installed system: install.tty, else the console the kernel writes to (the
 * last console= argument), as v1.1 takes the first active console. */
static const char *effective_tty(const struct config *c) {
        const char *tty = c->install.tty;
        if (isempty(tty)) {
                size_t n = strv_length(c->boot.consoles);
                tty = n > 0 ? c->boot.consoles[n - 1] : NULL;
        }
        if (tty && strncmp(tty, "/dev/", 5) == 0)
                tty += 5;
        return isempty(tty) ? NULL : tty;
}

int cloudconfig_render(const struct config *c, const struct harvester_release *rel, const char *password_hash,
                       char **ret_custom, char **ret_harvester_config) {
        _cleanup_free_ char *custom = NULL, *hc = NULL, *hostname = NULL;
        static const struct harvester_release v112 = {};
        bool logged = false;
        int r;

        if (!rel)
                rel = &v112; /* with the CLOUDCONFIG_DEFAULT_* values */
        if (!isempty(c->os.hostname))
                hostname = strdup(c->os.hostname);
        else {
                /* v1.1 names an unnamed node harvester-<5 random characters>. */
                static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
                unsigned char rnd[5];
                if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
                        return log_error_errno(errno ?: EIO, "Cannot get random bytes for a host name: %s",
                                               strerror(errno ?: EIO));
                hostname = strdup("harvester-xxxxx");
                if (hostname)
                        for (size_t i = 0; i < sizeof rnd; i++)
                                hostname[10 + i] = alphabet[rnd[i] % (sizeof alphabet - 1)];
                if (hostname)
                        log_info("os.hostname is not set: the node is named \"%s\".", hostname);
        }
        if (!hostname)
                return log_oom();

        struct model m = {
                .c = c,
                .hostname = hostname,
                .password_hash = password_hash,
                .mode = isempty(c->install.mode) ? (isempty(c->server_url) ? "create" : "join") : c->install.mode,
                .kubernetes = first_nonempty(c->runtime_version, rel->kubernetes, CLOUDCONFIG_DEFAULT_KUBERNETES),
                .rancher = first_nonempty(c->rancher_version, rel->rancher, CLOUDCONFIG_DEFAULT_RANCHER),
                .harvester_chart = first_nonempty(rel->harvester_chart, NULL, CLOUDCONFIG_DEFAULT_HARVESTER_CHART),
                .monitoring_chart = rel == &v112 ? CLOUDCONFIG_DEFAULT_MONITORING_CHART : rel->monitoring_chart,
                .logging_chart = rel == &v112 ? CLOUDCONFIG_DEFAULT_LOGGING_CHART : rel->logging_chart,
                .tty = effective_tty(c),
        };

        if (!streq(m.mode, "create") && !streq(m.mode, "join") && !streq(m.mode, "install")) {
                r = log_error_errno(EINVAL, "install.mode \"%s\" is not create, join or install.", m.mode);
                logged = true;
                goto finish;
        }
        if (streq(m.mode, "join") && isempty(c->server_url)) {
                r = log_error_errno(EINVAL, "install.mode is join but server_url is not set.");
                logged = true;
                goto finish;
        }
        if (streq(m.mode, "create") && isempty(c->install.vip)) {
                r = log_error_errno(EINVAL, "install.mode is create but install.vip is not set.");
                logged = true;
                goto finish;
        }
        if (streq(m.mode, "create") && chart_versions_check(m.monitoring_chart, m.logging_chart) < 0) {
                r = -EINVAL;
                logged = true;
                goto finish;
        }

        r = model_build(&m);
        if (r < 0) {
                logged = r != -ENOMEM;
                goto finish;
        }
        r = render_custom(&m, &custom);
        if (r < 0)
                goto finish;
        r = render_harvester_config(&m, &hc);
        if (r < 0)
                goto finish;
        *ret_custom = TAKE_PTR(custom);
        *ret_harvester_config = TAKE_PTR(hc);
        r = 0;
finish:
        if (logged)
                ;
        else if (r == -ENOMEM)
                log_oom();
        else if (r == -EILSEQ)
                log_error("The configuration holds text that is not valid UTF-8; the node's configuration "
                          "cannot be written.");
        else if (r < 0)
                log_error("The node's configuration could not be written as YAML (libyaml refused it).");
        model_done(&m);
        return r;
}

/* ---------------------------------------------------------------------------------------------- */

int cloudconfig_hash_password(const char *password, char **ret) {
        static const char alphabet[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        unsigned char rnd[16];
        char setting[3 + sizeof rnd + 1] = "$6$";

        if (!password)
                return -EINVAL;
        /* Kept only when it is a well-formed hash of a method the OS supports: a clear-text password
         * that merely starts with '$' is hashed like any other. */
        if (valid_crypt_hash(password)) {
                char *s = strdup(password);
                if (!s)
                        return -ENOMEM;
                *ret = s;
                return 0;
        }
        for (size_t got = 0; got < sizeof rnd;) {
                ssize_t k = getrandom(rnd + got, sizeof rnd - got, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t)k;
        }
        /* 64 characters: every byte maps to one without bias. */
        for (size_t i = 0; i < sizeof rnd; i++)
                setting[3 + i] = alphabet[rnd[i] & 63];
        setting[3 + sizeof rnd] = 0;

        struct crypt_data *cd = calloc(1, sizeof(struct crypt_data));
        if (!cd)
                return -ENOMEM;
        /* crypt_rn, not crypt_r: sanitizers intercept crypt_r with glibc's old struct layout. */
        errno = 0;
        const char *h = crypt_rn(password, setting, cd, (int)sizeof(struct crypt_data));
        int r = 0;
        char *s = NULL;
        if (!h || h[0] != '$' || strncmp(h, "$6$", 3) != 0)
                r = errno > 0 ? -errno : -EINVAL;
        else if (!(s = strdup(h)))
                r = -ENOMEM;
        explicit_bzero(cd, sizeof(struct crypt_data));
        free(cd);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

int grub_env_block(const struct kvmap *vars, char ret[static GRUB_ENV_BLOCK_SIZE]) {
        static const char header[] = "# GRUB Environment Block\n";
        char buf[GRUB_ENV_BLOCK_SIZE];
        size_t n = sizeof header - 1;

        memcpy(buf, header, n);
        for (size_t i = 0; vars && i < vars->n; i++) {
                const char *parts[] = { vars->items[i].key, "=", strempty(vars->items[i].value), "\n" };
                for (size_t j = 0; j < ELEMENTSOF(parts); j++)
                        for (const char *p = parts[j]; *p; p++) {
                                /* GRUB escapes backslash and newline inside values. */
                                bool esc = j == 2 && (*p == '\\' || *p == '\n');
                                if (n + 1 + esc > sizeof buf)
                                        return -E2BIG;
                                if (esc)
                                        buf[n++] = '\\';
                                buf[n++] = *p;
                        }
        }
        memset(buf + n, '#', sizeof buf - n);
        memcpy(ret, buf, sizeof buf);
        return 0;
}

int cloudconfig_check(const struct config *c) {
        if (c->os.after_install_chroot_commands)
                return log_error_errno(EOPNOTSUPP,
                                       "os.after_install_chroot_commands is set, but this installer runs no "
                                       "commands inside the installed system. Remove the key, or run them from "
                                       "os.write_files and a systemd unit.");
        if (c->install.addons)
                return log_error_errno(EOPNOTSUPP,
                                       "install.addons is set, but this installer deploys Harvester v1.1's "
                                       "bootstrap manifests only. Remove the key and enable the addons after the "
                                       "cluster is up.");
        if (c->install.harvester)
                return log_error_errno(EOPNOTSUPP,
                                       "install.harvester (chart values) is set, but this installer deploys "
                                       "Harvester v1.1's bootstrap manifests only. Remove the key and change the "
                                       "settings after the cluster is up.");
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */

static int write_in_dir(const char *dir, const char *name, const void *data, size_t len, mode_t mode) {
        _cleanup_free_ char *path = strdup_printf("%s/%s", dir, name);
        if (!path)
                return log_oom();
        int r = write_file_atomic(path, data, len, mode);
        if (r < 0)
                return log_error_errno(r, "Cannot write '%s': %s", path, strerror(-r));
        return 0;
}

int cloudconfig_write_oem_release(const struct config *c, const struct harvester_release *rel, const char *oem_dir) {
        _cleanup_free_ char *hash = NULL, *custom = NULL, *hc = NULL;
        int r;

        r = cloudconfig_check(c);
        if (r < 0)
                return r;
        if (!isempty(c->os.password)) {
                r = cloudconfig_hash_password(c->os.password, &hash);
                if (r < 0)
                        return log_error_errno(r, "Cannot hash os.password with SHA-512 crypt: %s", strerror(-r));
        }
        r = cloudconfig_render(c, rel, hash, &custom, &hc);
        if (r < 0)
                return r;

        /* Both hold the token and the password hash. */
        r = write_in_dir(oem_dir, "90_custom.yaml", custom, strlen(custom), 0600);
        if (r < 0)
                return r;
        r = write_in_dir(oem_dir, "harvester.config", hc, strlen(hc), 0600);
        if (r < 0)
                return r;
        char env[GRUB_ENV_BLOCK_SIZE];
        r = grub_env_block(NULL, env);
        if (r < 0)
                return log_error_errno(r, "Cannot make an empty GRUB environment block: %s", strerror(-r));
        r = write_in_dir(oem_dir, "grubenv", env, sizeof env, 0644);
        if (r < 0)
                return r;
        log_info("Wrote the node's configuration to COS_OEM: 90_custom.yaml, harvester.config, grubenv.");
        return 0;
}

int cloudconfig_write_oem(const struct config *c, const char *oem_dir) {
        return cloudconfig_write_oem_release(c, NULL, oem_dir);
}

/* ---------------------------------------------------------------------------------------------- */
/* The image's release files */

void harvester_release_done(struct harvester_release *r) {
        free(r->harvester);
        free(r->harvester_chart);
        free(r->kubernetes);
        free(r->rancher);
        free(r->monitoring_chart);
        free(r->logging_chart);
        free(r->os_name);
        *r = (struct harvester_release) {};
}

/* Top-level "key: scalar" pairs of a YAML mapping; other entries are skipped. */
static int parse_release_yaml(const char *path, const char *text, size_t len, struct harvester_release *rel) {
        _cleanup_yaml_parser_ yaml_parser_t *p = calloc(1, sizeof(yaml_parser_t));
        if (!p)
                return -ENOMEM;
        if (!yaml_parser_initialize(p)) {
                free(p);
                p = NULL;
                return -ENOMEM;
        }
        yaml_parser_set_input_string(p, (const unsigned char *)text, len);

        int depth = 0;
        bool in_value = false;
        char *key = NULL;
        for (;;) {
                yaml_event_t ev;
                if (!yaml_parser_parse(p, &ev)) {
                        free(key);
                        return log_error_errno(EBADMSG, "Cannot parse '%s': %s at line %zu.", path,
                                               strempty(p->problem), p->problem_mark.line + 1);
                }
                yaml_event_type_t type = ev.type;
                if (type == YAML_MAPPING_START_EVENT || type == YAML_SEQUENCE_START_EVENT) {
                        if (depth == 1) /* a value that is not a scalar */
                                in_value = true;
                        depth++;
                } else if (type == YAML_MAPPING_END_EVENT || type == YAML_SEQUENCE_END_EVENT) {
                        depth--;
                        if (depth == 1 && in_value) {
                                in_value = false;
                                free(key);
                                key = NULL;
                        }
                } else if (type == YAML_SCALAR_EVENT && depth == 1) {
                        const char *v = (const char *)ev.data.scalar.value;
                        if (!key) {
                                key = strdup(v);
                                if (!key) {
                                        yaml_event_delete(&ev);
                                        return -ENOMEM;
                                }
                        } else {
                                char **slot = streq(key, "harvester")        ? &rel->harvester
                                              : streq(key, "harvesterChart") ? &rel->harvester_chart
                                              : streq(key, "kubernetes")     ? &rel->kubernetes
                                              : streq(key, "rancher")        ? &rel->rancher
                                              : streq(key, "monitoringChart") ? &rel->monitoring_chart
                                              : streq(key, "loggingChart")   ? &rel->logging_chart
                                                                             : NULL;
                                if (slot && *v) {
                                        free(*slot);
                                        *slot = strdup(v);
                                        if (!*slot) {
                                                free(key);
                                                yaml_event_delete(&ev);
                                                return -ENOMEM;
                                        }
                                }
                                free(key);
                                key = NULL;
                        }
                }
                yaml_event_delete(&ev);
                if (type == YAML_STREAM_END_EVENT)
                        break;
        }
        free(key);
        return 0;
}

int harvester_release_check(const struct harvester_release *r) {
        return chart_versions_check(r->monitoring_chart, r->logging_chart);
}

static char *os_release_value(const char *text, const char *key) {
        size_t kl = strlen(key);
        for (const char *line = text; line && *line;) {
                const char *end = strchrnul(line, '\n');
                if ((size_t)(end - line) > kl && strncmp(line, key, kl) == 0 && line[kl] == '=') {
                        const char *v = line + kl + 1;
                        size_t vl = (size_t)(end - v);
                        if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
                                v++;
                                vl -= 2;
                        }
                        return strndup(v, vl);
                }
                line = *end ? end + 1 : NULL;
        }
        return NULL;
}

int harvester_release_read(const char *rootfs_dir, struct harvester_release *ret) {
        struct harvester_release rel = {};
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t len = 0;
        int r;

        path = strdup_printf("%s/etc/harvester-release.yaml", rootfs_dir);
        if (!path)
                return log_oom();
        r = read_full_file(path, &text, &len);
        if (r < 0 && r != -ENOENT)
                return log_error_errno(r, "Cannot read '%s': %s", path, strerror(-r));
        if (r >= 0) {
                r = parse_release_yaml(path, text, len, &rel);
                if (r < 0) {
                        harvester_release_done(&rel);
                        return r == -ENOMEM ? log_oom() : r;
                }
        }

        free(path);
        free(text);
        text = NULL;
        path = strdup_printf("%s/etc/os-release", rootfs_dir);
        if (!path) {
                harvester_release_done(&rel);
                return log_oom();
        }
        r = read_full_file(path, &text, &len);
        if (r < 0 && r != -ENOENT) {
                harvester_release_done(&rel);
                return log_error_errno(r, "Cannot read '%s': %s", path, strerror(-r));
        }
        if (r >= 0) {
                rel.os_name = os_release_value(text, "GRUB_ENTRY_NAME");
                if (!rel.os_name)
                        rel.os_name = os_release_value(text, "PRETTY_NAME");
        }
        *ret = rel;
        return 0;
}
