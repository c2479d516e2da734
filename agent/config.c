/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The effective configuration: kernel arguments, then the file (--config FILE, or the YAML at
 * install.config_url fetched as the install will), merged with the command line winning, bound to
 * struct config, defaults filled in, normalised and validated. Every problem is reported at once.
 */
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <getopt.h>
#include <inttypes.h>
#include <sys/random.h>

#include "cli.h"
#include "checksum.h"
#include "cmdline.h"
#include "config.h"
#include "dryrun.h"
#include "http.h"
#include "log.h"
#include "schema.h"
#include "urltemplate.h"
#include "validate.h"
#include "yamlload.h"

#define CONFIG_URL_TIMEOUT_DEFAULT 600

static void diags_clearp(struct diags *d) {
        diags_clear(d);
}

void config_free(struct config *c) {
        if (!c)
                return;
        schema_free_fields(c);
        strv_free(c->boot.consoles);
        node_free(c->tree);
        free(c->source_name);
        strv_free(c->where_cache);
        free(c);
}

const char *config_where(const struct config *c, const char *path) {
        const struct node *n = c ? node_lookup(c->tree, path) : NULL;
        if (!n)
                return "default";
        if (n->origin == ORIGIN_CMDLINE)
                return "kernel command line";
        char *w = node_where(n, c->source_name);
        /* The cache belongs to c; config_where() is a lookup, so the cast is the one place that
         * writes through a const config. */
        struct config *mc = (struct config *)c;
        if (!w || strv_consume(&mc->where_cache, w) < 0)
                return "(position unknown: out of memory)";
        return w;
}

static void add_secret(const char *s, void *userdata) {
        log_add_secret(s);
}

void config_register_secrets(const struct config *c) {
        schema_foreach_secret(c, add_secret, NULL);
}

int config_print(const struct config *c, FILE *f, bool json, bool show_secrets) {
        _cleanup_node_ struct node *t = NULL;
        int r = schema_to_tree(c, show_secrets, &t);
        if (r < 0)
                return r;
        return tree_print(t, f, json);
}

/* ---- Defaults and normalisation ---- */

static int lowercase(char *s) {
        for (; s && *s; s++)
                *s = (char)tolower((unsigned char)*s);
        return 0;
}

static void uppercase(char *s) {
        for (; s && *s; s++)
                *s = (char)toupper((unsigned char)*s);
}

static int set_default(char **field, const char *value) {
        if (!isempty(*field))
                return 0;
        char *v = strdup(value);
        if (!v)
                return -ENOMEM;
        free(*field);
        *field = v;
        return 0;
}

/* As upstream: "harvester-" and 5 characters of k8s.io/apimachinery's rand.String alphabet. */
static int random_hostname(char **ret) {
        static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
        unsigned char rnd[5];
        char name[sizeof("harvester-") + 5];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
                return log_error_errno(errno ?: EIO, "Cannot generate a hostname: getrandom() failed: %m");
        strcpy(name, "harvester-");
        for (size_t i = 0; i < 5; i++)
                name[10 + i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
        name[15] = 0;
        char *h = strdup(name);
        if (!h)
                return -ENOMEM;
        *ret = h;
        return 0;
}

static int apply_defaults(struct config *c) {
        struct install_config *in = &c->install;
        struct mgmt_interface *m = &in->management_interface;
        int r;

        if ((r = set_default(&m->method, "dhcp")) < 0)
                return r;
        if (m->bond_options.n == 0 && ((r = kvmap_set(&m->bond_options, "mode", "active-backup")) < 0 ||
                                       (r = kvmap_set(&m->bond_options, "miimon", "100")) < 0))
                return r;
        if (!node_lookup(c->tree, "install.config_url_timeout"))
                in->config_url_timeout = CONFIG_URL_TIMEOUT_DEFAULT;
        if ((r = set_default(&in->role, "default")) < 0)
                return r;
        for (size_t i = 0; i < in->n_webhooks; i++)
                if ((r = set_default(&in->webhooks[i].method, "GET")) < 0)
                        return r;
        if (isempty(c->os.hostname)) {
                free(c->os.hostname);
                c->os.hostname = NULL;
                if ((r = random_hostname(&c->os.hostname)) < 0)
                        return r;
        }
        /* Upstream uses the first active console, which is the last console= argument. */
        size_t n = strv_length(c->boot.consoles);
        if (isempty(in->tty) && n > 0 && (r = set_default(&in->tty, c->boot.consoles[n - 1])) < 0)
                return r;
        return 0;
}

static int normalize(struct config *c, struct diags *d) {
        struct install_config *in = &c->install;
        struct mgmt_interface *m = &in->management_interface;

        lowercase(in->vip_mode);
        lowercase(m->method);
        lowercase(in->vip_hw_addr);
        for (size_t i = 0; i < m->n_interfaces; i++)
                lowercase(m->interfaces[i].hw_addr);
        for (size_t i = 0; i < in->n_webhooks; i++) {
                uppercase(in->webhooks[i].event);
                uppercase(in->webhooks[i].method);
        }

        if (!isempty(c->server_url)) {
                char *n = NULL;
                const char *error = NULL;
                int r = normalize_server_url(c->server_url, &n, &error);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        _cleanup_free_ char *shown = url_hide_password(c->server_url);
                        if (diags_add(d, false, "server_url", config_where(c, "server_url"), "\"%s\" %s",
                                      shown ? shown : "?", error) < 0)
                                return -ENOMEM;
                } else {
                        free(c->server_url);
                        c->server_url = n;
                }
        }
        if (in->persistent_partition_size)
                (void)parse_partition_size(in->persistent_partition_size, &in->persistent_partition_bytes);
        return 0;
}

/* ---- Loading ---- */

/* The secrets the command line alone holds, registered before anything can print them. */
static void register_cmdline_secrets(const struct node *ctree) {
        struct diags ignored = {};
        struct config *tmp = calloc(1, sizeof(struct config));
        if (tmp && schema_bind(ctree, tmp, NULL, &ignored) >= 0)
                config_register_secrets(tmp);
        config_free(tmp);
        diags_clear(&ignored);
}

static const char *scalar_of(const struct node *n) {
        return n && n->kind == NODE_SCALAR && !n->null ? n->value : NULL;
}

/* Fetches install.config_url as the install does. 0, -EINVAL (a problem in d), -EREMOTEIO, -ENOMEM. */
static int fetch_config_url(struct config *c, const struct node *ctree, const char *url, struct diags *d,
                            char **ret_body, size_t *ret_len) {
        int64_t timeout = CONFIG_URL_TIMEOUT_DEFAULT;
        const struct node *t = node_lookup(ctree, "install.config_url_timeout");
        if (t) {
                const char *v = scalar_of(t);
                if (!v || parse_int64(v, &timeout) < 0 || timeout < 1) {
                        return diags_add(d, false, "install.config_url_timeout", "kernel command line",
                                         "expected a number of seconds (at least 1); config_url was not fetched")
                                       ?: -EINVAL;
                }
        }
        if (!valid_url(url, true)) {
                _cleanup_free_ char *shown = url_hide_password(url);
                return diags_add(d, false, "install.config_url", "kernel command line",
                                 "\"%s\" is not an http://, https:// or file:// URL", shown ? shown : "?") ?: -EINVAL;
        }
        if (c->boot.noverifyssl)
                log_warning("rd.noverifyssl is on the kernel command line: TLS certificates are NOT verified when "
                            "fetching %s (or wherever it redirects).", c->source_name);
        log_info("Fetching the configuration from %s (giving up after %" PRId64 " s).", c->source_name, timeout);
        struct http_options o = {
                .what = "config_url",
                .insecure = c->boot.noverifyssl,
                .tls_switch = "rd.noverifyssl on the kernel command line",
                .deadline_sec = timeout,
                .hint = "Check install.config_url on the kernel command line and that the server serves the file.",
        };
        /* An optional pin of the content (README, "TLS"): whatever the transport, only this file. */
        const char *pin = scalar_of(node_lookup(ctree, "install.config_checksum"));
        struct checksum want;
        if (pin && checksum_parse(pin, &want) < 0)
                return diags_add(d, false, "install.config_checksum", "kernel command line",
                                 "expected sha256:<64 hex digits> or sha512:<128 hex digits>; config_url was not "
                                 "fetched") ?: -EINVAL;
        int r = http_get(url, &o, ret_body, ret_len);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return -EREMOTEIO; /* http_get() said why */
        if (pin) {
                struct checksum got = {};
                if (checksum_compute(want.algo, *ret_body, ret_len ? *ret_len : strlen(*ret_body), &got) < 0 ||
                    !checksum_equal(&got, &want)) {
                        _cleanup_free_ char *g = checksum_format(&got);
                        free(*ret_body);
                        *ret_body = NULL;
                        log_error("config_url: the configuration fetched from %s has the digest %s, not the one "
                                  "install.config_checksum pins on the kernel command line (%s): it was changed, "
                                  "or the pin is out of date. Nothing was installed.",
                                  c->source_name, g ? g : "?", pin);
                        return -EREMOTEIO;
                }
                log_info("config_url: the configuration matches install.config_checksum.");
        }
        return 0;
}

/* Where the node's facts for URL variables are read: the machine itself. A test points
 * HARVESTER_INSTALL_FACTS_ROOT at a fake tree (sys/class/dmi/id, sys/class/net, proc/net/route). */
static struct url_facts node_facts(const char *cmdline) {
        return (struct url_facts){ .root = getenv("HARVESTER_INSTALL_FACTS_ROOT") ?: "", .cmdline = cmdline };
}

/* Expands the ${...} variables of *url (the value of path, set at where) in place, logging the
 * result. 0, -EINVAL (the problem is in d), -ENOMEM. */
static int expand_url(char **url, const char *path, const char *where, const char *cmdline, struct diags *d) {
        if (!url_template_used(*url))
                return 0;
        struct url_facts f = node_facts(cmdline);
        _cleanup_free_ char *out = NULL, *problem = NULL;
        int r = url_template_expand(*url, &f, &out, &problem);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return diags_add(d, false, path, where, "%s", problem) ?: -EINVAL;
        _cleanup_free_ char *shown = url_redact(out);
        log_info("%s expands to %s on this node.", path, shown ? shown : "(out of memory)");
        free(*url);
        *url = TAKE_PTR(out);
        return 0;
}

/* Every mirror of install.iso_url, each expanded as one URL. */
static int expand_iso_urls(struct config *c, const char *cmdline, struct diags *d) {
        size_t n = strv_length(c->install.iso_urls);
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *p = n > 1 ? strdup_printf("install.iso_url[%zu]", i) : strdup("install.iso_url");
                if (!p)
                        return -ENOMEM;
                int r = expand_url(&c->install.iso_urls[i], p, config_where(c, p), cmdline, d);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The kernel arguments: parsed, canonicalised, their secrets registered. */
static int load_cmdline(const char *text, struct config *c, struct diags *d, struct node **ret) {
        _cleanup_node_ struct node *ctree = NULL;
        int r;
        if ((r = cmdline_parse(text, &ctree, &c->boot, d)) < 0)
                return r;
        if ((r = schema_canonicalize(ctree, NULL, d)) < 0)
                return r;
        register_cmdline_secrets(ctree);
        *ret = TAKE_PTR(ctree);
        return 0;
}

/* Everything after the file was obtained: parse it, merge, bind, defaults, normalise, validate.
 * ctree is taken. -EINVAL when the file is unusable (its problem is in d). */
static int load_rest(struct config *c, struct node *ctree_in, const char *body, size_t len, struct diags *d) {
        _cleanup_node_ struct node *ctree = ctree_in, *ftree = NULL;
        int r;
        if (body) {
                r = yaml_load(body, len, c->source_name ?: "config", &ftree, d);
                if (r < 0)
                        return r; /* the file is unusable: its problem (and the command line's) are reported */
                if ((r = schema_canonicalize(ftree, c->source_name, d)) < 0)
                        return r;
        }
        r = schema_merge(TAKE_PTR(ctree), TAKE_PTR(ftree), &c->tree);
        if (r < 0)
                return r;
        if (!c->tree && !(c->tree = node_new(NODE_MAP, ORIGIN_CMDLINE)))
                return -ENOMEM;
        if ((r = schema_bind(c->tree, c, c->source_name, d)) < 0)
                return r;
        config_register_secrets(c);
        if ((r = apply_defaults(c)) < 0 || (r = normalize(c, d)) < 0 || (r = config_validate(c, d)) < 0)
                return r;
        return d->oom ? -ENOMEM : 0;
}

static struct config *config_new(void) {
        struct config *c = calloc(1, sizeof(struct config));
        if (c)
                c->boot.rd_shell = -1;
        return c;
}

int config_from_text(const char *cmdline, const char *yaml, size_t yaml_len, const char *source_name,
                     struct diags *d, struct config **ret) {
        _cleanup_config_ struct config *c = config_new();
        struct node *ctree = NULL;
        int r;
        if (!c)
                return -ENOMEM;
        if (source_name && !(c->source_name = strdup(source_name)))
                return -ENOMEM;
        if ((r = load_cmdline(strempty(cmdline), c, d, &ctree)) < 0)
                return r;
        if ((r = load_rest(c, ctree, yaml, yaml_len, d)) < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

static int load(const struct config_source *src, struct config *c, struct diags *d) {
        _cleanup_free_ char *text = NULL, *body = NULL;
        _cleanup_node_ struct node *ctree = NULL;
        size_t len = 0;
        int r;

        if ((r = cmdline_read(src->cmdline_file, NULL, &text)) < 0)
                return r; /* logged */
        if ((r = load_cmdline(text, c, d, &ctree)) < 0)
                return r;

        _cleanup_free_ char *url = NULL;
        const char *u = scalar_of(node_lookup(ctree, "install.config_url"));
        if (u && !(url = strdup(u)))
                return -ENOMEM;
        if (src->config_file) {
                if (!(c->source_name = strdup(src->config_file)))
                        return -ENOMEM;
                r = read_full_file(src->config_file, &body, &len);
                if (r < 0)
                        return log_error_errno(r, "Cannot read the configuration file \"%s\": %s", src->config_file,
                                               strerror(-r));
        } else if (url) {
                if ((r = expand_url(&url, "install.config_url", "kernel command line", text, d)) < 0)
                        return r;
                if (!(c->source_name = url_hide_password(url)))
                        return -ENOMEM;
                if ((r = fetch_config_url(c, ctree, url, d, &body, &len)) < 0)
                        return r;
        }
        if ((r = load_rest(c, TAKE_PTR(ctree), body, len, d)) < 0)
                return r;
        if (src->expand_urls && diags_errors(d) == 0 &&
            ((r = expand_iso_urls(c, text, d)) < 0 ||
             (r = expand_url(&c->install.iso_checksum_url, "install.iso_checksum_url",
                             config_where(c, "install.iso_checksum_url"), text, d)) < 0))
                return r;
        return 0;
}

int config_load(const struct config_source *src, struct config **ret) {
        _cleanup_(diags_clearp) struct diags d = {};
        _cleanup_config_ struct config *c = config_new();
        if (!c)
                return log_oom();

        int r = load(src, c, &d);
        diags_print(&d);
        if (r == -ENOMEM)
                return log_oom();
        if (r == -EINVAL || (r >= 0 && diags_errors(&d) > 0)) {
                size_t n = diags_errors(&d);
                /* The summary names the first problem: it is what the FAILED line repeats. */
                _cleanup_free_ char *first = NULL;
                for (size_t i = 0; i < d.n && !first; i++)
                        if (!d.items[i].warning)
                                first = diag_format(&d.items[i]);
                if (n > 1)
                        return log_error_errno(EINVAL, "The configuration has %zu problems (all listed above), the first: %s",
                                               n, first ? first : "see above");
                return log_error_errno(EINVAL, "The configuration is invalid: %s", first ? first : "see above");
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* ---- Interfaces given by MAC address ---- */

/* The MAC of net_dir/<name>/address in the form sysfs writes (lowercase, ':'), or NULL. */
static char *nic_address(const char *net_dir, const char *name) {
        _cleanup_free_ char *path = strdup_printf("%s/%s/address", net_dir, name), *text = NULL;
        if (!path || read_full_file(path, &text, NULL) < 0)
                return NULL;
        text[strcspn(text, "\n")] = 0;
        if (!valid_mac(text) || streq(text, "00:00:00:00:00:00"))
                return NULL; /* lo, tunnels: no Ethernet address */
        lowercase(text);
        return TAKE_PTR(text);
}

static long nic_ifindex(const char *net_dir, const char *name) {
        _cleanup_free_ char *path = strdup_printf("%s/%s/ifindex", net_dir, name), *text = NULL;
        int64_t v;
        if (!path || read_full_file(path, &text, NULL) < 0)
                return LONG_MAX;
        text[strcspn(text, "\n")] = 0;
        return parse_int64(text, &v) == 0 && v >= 0 ? (long)v : LONG_MAX;
}

static int skip_dots(const struct dirent *e) {
        return e->d_name[0] != '.';
}

int config_resolve_interfaces(struct config *c, const char *net_dir) {
        struct mgmt_interface *m = &c->install.management_interface;
        struct dirent **names = NULL;
        int n = -1, r = 0;

        for (size_t i = 0; i < m->n_interfaces && r >= 0; i++) {
                struct net_interface *ifc = &m->interfaces[i];
                if (!isempty(ifc->name) || isempty(ifc->hw_addr))
                        continue;
                if (n < 0) {
                        n = scandir(net_dir, &names, skip_dots, alphasort);
                        if (n < 0) {
                                r = log_error_errno(errno, "Cannot list the network interfaces in %s to find "
                                                           "install.management_interface.interfaces[%zu].hw_addr %s: %s",
                                                    net_dir, i, ifc->hw_addr, strerror(errno));
                                break;
                        }
                }
                _cleanup_free_ char *want = strdup(ifc->hw_addr);
                if (!want) {
                        r = log_oom();
                        break;
                }
                for (char *p = want; *p; p++)
                        *p = *p == '-' ? ':' : (char)tolower((unsigned char)*p);
                /* As v1.1.2 (net.Interfaces() in index order): the lowest ifindex with that MAC. */
                const char *found = NULL;
                long found_index = LONG_MAX;
                _cleanup_strv_free_ char **present = NULL;
                for (int k = 0; k < n && r >= 0; k++) {
                        _cleanup_free_ char *mac = nic_address(net_dir, names[k]->d_name);
                        if (!mac)
                                continue;
                        long idx = nic_ifindex(net_dir, names[k]->d_name);
                        if (streq(mac, want) && (!found || idx < found_index)) {
                                found = names[k]->d_name;
                                found_index = idx;
                        }
                        r = strv_consume(&present, strdup_printf("%s (%s)", names[k]->d_name, mac));
                }
                if (r < 0) {
                        r = log_oom();
                        break;
                }
                if (!found) {
                        _cleanup_free_ char *list = present ? strv_join(present, ", ") : strdup("none");
                        r = log_error_errno(ENODEV,
                                            "install.management_interface.interfaces[%zu]: no network interface has "
                                            "the MAC address %s; this machine has %s. Fix hw_addr, or give the "
                                            "interface by name.",
                                            i, ifc->hw_addr, list ? list : "(out of memory)");
                        break;
                }
                if (!valid_ifname(found)) {
                        r = log_error_errno(EINVAL,
                                            "install.management_interface.interfaces[%zu]: the interface with MAC %s "
                                            "is named \"%s\", which the node's network files cannot hold.",
                                            i, ifc->hw_addr, found);
                        break;
                }
                if (!(ifc->name = strdup(found))) {
                        r = log_oom();
                        break;
                }
                log_info("install.management_interface.interfaces[%zu]: MAC %s is %s.", i, ifc->hw_addr, found);
        }
        for (int k = 0; k < n; k++)
                free(names[k]);
        free(names);
        return r;
}

bool config_has_mac_only_interfaces(const struct config *c) {
        const struct mgmt_interface *m = &c->install.management_interface;
        for (size_t i = 0; i < m->n_interfaces; i++)
                if (isempty(m->interfaces[i].name) && !isempty(m->interfaces[i].hw_addr))
                        return true;
        return false;
}

/* ---- The `config` command ---- */

int cmd_config(const struct global_opts *g, int argc, char **argv) {
        enum { OPT_JSON = 0x100, OPT_SHOW_SECRETS };
        static const struct option options[] = {
                { "json", no_argument, NULL, OPT_JSON },
                { "show-secrets", no_argument, NULL, OPT_SHOW_SECRETS },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool json = false, show_secrets = false;
        int c;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case OPT_JSON:
                        json = true;
                        break;
                case OPT_SHOW_SECRETS:
                        show_secrets = true;
                        break;
                case 'h':
                        printf("Usage: harvester-install-agent [--cmdline FILE] [--config FILE] config [--json] "
                               "[--show-secrets]\n\n"
                               "Prints the effective configuration (kernel arguments over the config_url file or\n"
                               "--config FILE), validated and rendered in memory as the install would write it,\n"
                               "with defaults filled in: YAML, or JSON with --json. Interfaces given only by\n"
                               "hw_addr are resolved to names on the node.\n"
                               "Secrets are shown as \"<redacted>\" unless --show-secrets. Exits 0, or 2 after\n"
                               "listing every problem, or 3 when config_url cannot be fetched.\n");
                        return EXIT_OK;
                default:
                        return EXIT_INVALID;
                }
        if (optind < argc) {
                log_error("The config command takes no arguments (got \"%s\"); see --help.", argv[optind]);
                return EXIT_INVALID;
        }

        struct config_source src = { .cmdline_file = g->cmdline_file, .config_file = g->config_file };
        _cleanup_config_ struct config *cfg = NULL;
        int r = config_load(&src, &cfg);
        if (r == -EINVAL)
                return EXIT_INVALID;
        if (r == -EREMOTEIO)
                return EXIT_CONFIG_URL;
        if (r == -ENOMEM)
                return EXIT_INTERNAL;
        if (r < 0) /* a file named on our command line could not be read: usage */
                return g->cmdline_file || g->config_file ? EXIT_INVALID : EXIT_INTERNAL;

        /* Everything the install writes from the configuration, rendered in memory. */
        r = dry_run_render(cfg, true);
        if (r == -ENOMEM)
                return EXIT_INTERNAL;
        if (r < 0)
                return EXIT_INVALID;
        bool templated = url_template_used(cfg->install.iso_checksum_url);
        STRV_FOREACH(u, cfg->install.iso_urls)
                templated = templated || url_template_used(*u);
        if (templated)
                log_info("install.iso_url, install.iso_checksum_url: ${mac}, ${uuid}, ${serial} and ${hostname} are "
                         "shown as written; the node expands them from what it is when the install starts.");
        if (config_has_mac_only_interfaces(cfg))
                log_info("install.management_interface.interfaces: an interface given only by hw_addr is resolved "
                         "to its name on the node, from the NICs it has, when the install starts.");

        r = config_print(cfg, stdout, json, show_secrets);
        if (r < 0) {
                log_error_errno(r, "Cannot print the configuration: %s", strerror(-r));
                return EXIT_INTERNAL;
        }
        return EXIT_OK;
}
