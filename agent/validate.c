/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>

#include "checksum.h"
#include "diskselect.h"
#include "http.h"
#include "log.h"
#include "schema.h"
#include "urltemplate.h"
#include "validate.h"

/* ======================================================================================
 * Syntax checks
 * ====================================================================================== */

bool valid_mac(const char *s) {
        if (!s || strlen(s) != 17)
                return false;
        char sep = s[2];
        if (sep != ':' && sep != '-')
                return false;
        for (size_t i = 0; i < 17; i++) {
                if (i % 3 == 2) {
                        if (s[i] != sep)
                                return false;
                } else if (!isxdigit((unsigned char)s[i]))
                        return false;
        }
        return true;
}

bool valid_ipv4(const char *s) {
        struct in_addr a;
        return s && inet_pton(AF_INET, s, &a) == 1;
}

bool valid_ip(const char *s) {
        struct in6_addr a;
        return s && (valid_ipv4(s) || inet_pton(AF_INET6, s, &a) == 1);
}

bool valid_word(const char *s, const char *extra) {
        if (isempty(s))
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("._-", *p) && !(extra && strchr(extra, *p)))
                        return false;
        return true;
}

bool valid_ifname(const char *s) {
        /* The name becomes a file name (ifcfg-<name>) read by a shell: no '/', ':', spaces or quotes. */
        return valid_word(s, "@") && strlen(s) <= 15 && !streq(s, ".") && !streq(s, "..");
}

bool valid_console_name(const char *s) {
        if (s && strncmp(s, "/dev/", 5) == 0)
                s += 5;
        return valid_word(s, ",");
}

const char *kernel_args_problem(const char *s) {
        bool quoted = false;
        if (strlen(s) > KERNEL_ARGS_MAX)
                return "is longer than 1024 bytes: the kernel command line holds 2048, and the installed "
                       "system's own arguments need the rest";
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p < 0x20 || *p == 0x7f)
                        return "holds a control character (newline, tab ...): write the arguments on one line, "
                               "separated by spaces";
                if (strchr("$;{}|&<>`#\\", *p))
                        return "holds a character GRUB would interpret ($ ; { } | & < > ` # \\): the boot menu would "
                               "not load";
                if (*p == '\'')
                        return "holds a single quote: the kernel command line knows only double quotes "
                               "(param=\"a b\")";
                if (*p == '"')
                        quoted = !quoted;
        }
        if (quoted)
                return "has an unbalanced double quote: GRUB could not parse the boot menu (close every \"...\")";
        return NULL;
}

static bool is_crypt64(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '/')
                        return false;
        return true;
}

/* $<id>$[rounds=N$]<salt 1..max_salt>$<hash of hash_len>, as glibc and libxcrypt write SHA-crypt. */
static bool sha_crypt_wellformed(const char *s, size_t hash_len) {
        const char *p = s + 3;
        if (strncmp(p, "rounds=", 7) == 0) {
                p += 7;
                size_t n = strspn(p, "0123456789");
                uint64_t rounds = 0;
                if (n == 0 || n > 9 || p[0] == '0' || p[n] != '$')
                        return false;
                for (size_t i = 0; i < n; i++)
                        rounds = rounds * 10 + (uint64_t)(p[i] - '0');
                if (rounds < 1000)
                        return false;
                p += n + 1;
        }
        const char *dollar = strchr(p, '$');
        if (!dollar)
                return false;
        size_t salt = (size_t)(dollar - p);
        return salt >= 1 && salt <= 16 && is_crypt64(p, salt) && strlen(dollar + 1) == hash_len &&
               is_crypt64(dollar + 1, hash_len);
}

bool valid_crypt_hash(const char *s) {
        if (!s)
                return false;
        size_t n = strlen(s);
        if (strncmp(s, "$6$", 3) == 0) /* SHA-512 crypt */
                return sha_crypt_wellformed(s, 86);
        if (strncmp(s, "$5$", 3) == 0) /* SHA-256 crypt */
                return sha_crypt_wellformed(s, 43);
        if (strncmp(s, "$y$", 3) == 0) { /* yescrypt: $y$<params>$<salt>$<43> */
                const char *params = s + 3, *salt = strchr(params, '$');
                const char *hash = salt ? strchr(salt + 1, '$') : NULL;
                return salt && hash && salt > params && hash > salt + 1 && is_crypt64(params, (size_t)(salt - params)) &&
                       is_crypt64(salt + 1, (size_t)(hash - salt - 1)) && strlen(hash + 1) == 43 &&
                       is_crypt64(hash + 1, 43);
        }
        if (n == 60 && s[0] == '$' && s[1] == '2' && strchr("aby", s[2]) && s[3] == '$') { /* bcrypt */
                /* $2b$<cost 04..31>$<22 salt><31 hash> */
                if (!isdigit((unsigned char)s[4]) || !isdigit((unsigned char)s[5]) || s[6] != '$')
                        return false;
                int cost = (s[4] - '0') * 10 + (s[5] - '0');
                return cost >= 4 && cost <= 31 && is_crypt64(s + 7, 53);
        }
        return false;
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? of at most max characters; upper allows A-Z too. */
static bool dns_label(const char *s, size_t n, size_t max, bool upper) {
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                bool alnum = isdigit(c) || (c >= 'a' && c <= 'z') || (upper && c >= 'A' && c <= 'Z');
                if (!alnum && !(c == '-' && i > 0 && i + 1 < n))
                        return false;
        }
        return true;
}

bool valid_dns1123_subdomain(const char *s) {
        if (isempty(s) || strlen(s) > 253)
                return false;
        for (const char *p = s;;) {
                size_t n = strcspn(p, ".");
                if (!dns_label(p, n, 63, false))
                        return false;
                if (!p[n])
                        return true;
                p += n + 1;
        }
}

/* Kubernetes "qualified name" part: ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63. */
static bool k8s_name(const char *s, size_t n) {
        if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
                        return false;
        return true;
}

bool valid_label_key(const char *s) {
        if (isempty(s))
                return false;
        const char *slash = strchr(s, '/');
        if (!slash)
                return k8s_name(s, strlen(s));
        _cleanup_free_ char *prefix = strndup(s, (size_t)(slash - s));
        return prefix && valid_dns1123_subdomain(prefix) && k8s_name(slash + 1, strlen(slash + 1));
}

bool valid_label_value(const char *s) {
        return !s || !*s || k8s_name(s, strlen(s));
}

bool valid_token(const char *s) {
        if (isempty(s))
                return false;
        /* [a-zA-Z0-9 !"#$%&'()*+,-./:;<=>?@^_`{|}~[\]\\]: every printable ASCII character. */
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p < 0x20 || *p > 0x7e)
                        return false;
        return true;
}

bool valid_octal_mode(const char *s) {
        if (isempty(s) || strlen(s) > 5)
                return false;
        unsigned long v = 0;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '7')
                        return false;
                v = v * 8 + (unsigned long)(*p - '0');
        }
        return v <= 07777;
}

static bool all_hex(const char *s, size_t n) {
        if (strlen(s) != n)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isxdigit((unsigned char)s[i]))
                        return false;
        return true;
}

bool valid_checksum(const char *s) {
        if (!s)
                return false;
        if (strncmp(s, "sha512:", 7) == 0)
                return all_hex(s + 7, 128);
        if (strncmp(s, "sha256:", 7) == 0)
                return all_hex(s + 7, 64);
        return false;
}

bool valid_cidr4(const char *s) {
        if (!s)
                return false;
        const char *slash = strchr(s, '/');
        if (!slash)
                return false;
        _cleanup_free_ char *ip = strndup(s, (size_t)(slash - s));
        int64_t bits;
        return ip && valid_ipv4(ip) && parse_int64(slash + 1, &bits) == 0 && bits >= 0 && bits <= 32 &&
               slash[1] != '-';
}

bool valid_url(const char *s, bool allow_file) {
        if (isempty(s))
                return false;
        for (const char *p = s; *p; p++)
                if (isspace((unsigned char)*p) || (unsigned char)*p < 0x20)
                        return false;
        const char *rest;
        if (strncasecmp(s, "http://", 7) == 0)
                rest = s + 7;
        else if (strncasecmp(s, "https://", 8) == 0)
                rest = s + 8;
        else if (allow_file && strncasecmp(s, "file://", 7) == 0)
                return s[7] == '/' && s[8] != 0; /* file:///absolute/path */
        else
                return false;
        size_t auth = strcspn(rest, "/?#");
        const char *host = rest;
        for (const char *p = rest; p < rest + auth; p++)
                if (*p == '@')
                        host = p + 1;
        return host < rest + auth && *host != ':';
}

int normalize_server_url(const char *in, char **ret, const char **ret_error) {
        const char *rest = in;
        if (isempty(in)) {
                *ret_error = "empty";
                return -EINVAL;
        }
        if (strncasecmp(in, "https://", 8) == 0)
                rest = in + 8;
        else if (strstr(in, "://")) {
                *ret_error = "must be an https:// URL (https://<vip>:443)";
                return -EINVAL;
        }
        size_t auth = strcspn(rest, "/?#");
        const char *after = rest + auth;
        if (*after && !streq(after, "/")) {
                *ret_error = "must not have a path, query or fragment (https://<vip>:443)";
                return -EINVAL;
        }
        const char *host = rest;
        for (const char *p = rest; p < rest + auth; p++)
                if (*p == '@')
                        host = p + 1;
        const char *end = rest + auth, *port = NULL, *host_end;
        if (*host == '[') {
                const char *rb = memchr(host, ']', (size_t)(end - host));
                if (!rb) {
                        *ret_error = "has an unterminated [IPv6] address";
                        return -EINVAL;
                }
                host_end = rb + 1;
                if (host_end < end) {
                        if (*host_end != ':') {
                                *ret_error = "has text after the [IPv6] address";
                                return -EINVAL;
                        }
                        port = host_end + 1;
                }
        } else {
                const char *colon = memchr(host, ':', (size_t)(end - host));
                if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
                        *ret_error = "holds an IPv6 address without brackets; write https://[address]:443";
                        return -EINVAL;
                }
                host_end = colon ? colon : end;
                if (colon)
                        port = colon + 1;
        }
        if (host_end == host || (*host == '[' && host_end - host <= 2)) {
                *ret_error = "has no host";
                return -EINVAL;
        }
        if (port && !(end - port == 3 && strncmp(port, "443", 3) == 0)) {
                *ret_error = "must use port 443 (Harvester serves its cluster API there only)";
                return -EINVAL;
        }
        char *r = strdup_printf("https://%.*s:443", (int)(host_end - rest), rest);
        if (!r)
                return -ENOMEM;
        *ret = r;
        return 0;
}

/* ======================================================================================
 * The rules
 * ====================================================================================== */

struct vctx {
        const struct config *c;
        struct diags *d;
        int r;
};

/* A problem with a value that is set: where it was set comes from the merged tree. */
static void problem(struct vctx *v, const char *path, const char *fmt, ...) _printf_(3, 4);
static void problem(struct vctx *v, const char *path, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = diags_addv(v->d, false, path, config_where(v->c, path), fmt, ap);
        va_end(ap);
        if (r < 0)
                v->r = r;
}

/* A value that is required and missing. */
static void missing(struct vctx *v, const char *path, const char *fmt, ...) _printf_(3, 4);
static void missing(struct vctx *v, const char *path, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = diags_addv(v->d, false, path, "not set", fmt, ap);
        va_end(ap);
        if (r < 0)
                v->r = r;
}

static void warning(struct vctx *v, const char *path, const char *fmt, ...) _printf_(3, 4);
static void warning(struct vctx *v, const char *path, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = diags_addv(v->d, true, path, config_where(v->c, path), fmt, ap);
        va_end(ap);
        if (r < 0)
                v->r = r;
}

static bool in_list(const char *s, const char *const *list, bool ci) {
        for (size_t i = 0; s && list[i]; i++)
                if (ci ? strcasecmp(s, list[i]) == 0 : streq(s, list[i]))
                        return true;
        return false;
}

/* A value shown in a message: printable, shortened, URL passwords hidden. */
static char *show(const char *s) {
        if (!s)
                return strdup("(empty)");
        _cleanup_free_ char *h = url_hide_password(s);
        if (!h)
                return NULL;
        size_t n = strlen(h);
        char *r = strdup_printf("\"%.*s%s\"", n > 80 ? 77 : (int)n, h, n > 80 ? "..." : "");
        for (char *p = r; r && *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        return r;
}


static bool is_dev_path(const char *s) {
        return s && strncmp(s, "/dev/", 5) == 0 && s[5] && !strstr(s, "/../") && s[strlen(s) - 1] != '/';
}

int parse_partition_size(const char *s, uint64_t *ret) {
        size_t n = s ? strlen(s) : 0;
        uint64_t v;
        if (n < 3 || !(streq(s + n - 2, "Mi") || streq(s + n - 2, "Gi")))
                return -EINVAL;
        int r = parse_size(s, &v);
        if (r < 0)
                return r;
        if (v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

static const char *const modes[] = { "create", "join", "install", NULL };
static const char *const methods[] = { "dhcp", "static", NULL };
static const char *const roles[] = { "default", "management", "worker", "witness", NULL };
static const char *const events[] = { "STARTED", "SUCCEEDED", "FAILED", "PROGRESS", NULL };
static const char *const http_methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL };
static const char *const bond_modes[] = { "balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad",
                                          "balance-tlb", "balance-alb", "0", "1", "2", "3", "4", "5", "6", NULL };
static const char *const encodings[] = { "", "b64", "base64", "gz", "gzip", "gz+base64", "gzip+base64", "gz+b64",
                                         "gzip+b64", NULL };
/* Harvester's GetSystemSettingsAllowList (v1.1 and the names later versions added). */
static const char *const system_settings_allowed[] = {
        "additional-ca", "api-ui-version", "cluster-registration-url", "server-version", "ui-index", "ui-path",
        "ui-source", "ui-plugin-index", "volume-snapshot-class", "backup-target", "upgradable-versions",
        "upgrade-checker-enabled", "upgrade-checker-url", "release-download-url", "log-level", "ssl-certificates",
        "ssl-parameters", "support-bundle-image", "support-bundle-namespaces", "support-bundle-timeout",
        "support-bundle-expiration", "support-bundle-node-collection-timeout", "default-storage-class",
        "http-proxy", "vm-force-reset-policy", "overcommit-config", "vip-pools", "auto-disk-provision-paths",
        "csi-driver-config", "containerd-registry", "storage-network", "default-vm-termination-grace-period-seconds",
        "ntp-servers", NULL
};

static bool valid_netmask(const char *s) {
        struct in_addr a;
        if (!s || inet_pton(AF_INET, s, &a) != 1)
                return false;
        uint32_t m = ntohl(a.s_addr);
        return m != 0 && ((~m + 1) & ~m) == 0; /* contiguous ones then zeros */
}

static void check_ipv4(struct vctx *v, const char *path, const char *value, const char *what, bool required,
                       const char *why) {
        if (isempty(value)) {
                if (required)
                        missing(v, path, "required %s", why);
                return;
        }
        _cleanup_free_ char *sv = show(value);
        if (!valid_ipv4(value))
                problem(v, path, "%s is not a valid IPv4 %s", sv, what);
}

static void check_network(struct vctx *v) {
        const struct mgmt_interface *m = &v->c->install.management_interface;
        const char *base = "install.management_interface";
        if (m->n_interfaces == 0)
                missing(v, "install.management_interface.interfaces",
                        "at least one management interface is required (a name such as ens5, or hw_addr)");
        else if (m->n_interfaces > CONFIG_MAX_INTERFACES)
                problem(v, "install.management_interface.interfaces",
                        "%zu interfaces given; the management bond takes at most %d", m->n_interfaces,
                        CONFIG_MAX_INTERFACES);
        for (size_t i = 0; i < m->n_interfaces; i++) {
                const struct net_interface *ifc = &m->interfaces[i];
                _cleanup_free_ char *p = strdup_printf("%s.interfaces[%zu]", base, i);
                _cleanup_free_ char *pn = strdup_printf("%s.interfaces[%zu].name", base, i);
                _cleanup_free_ char *ph = strdup_printf("%s.interfaces[%zu].hw_addr", base, i);
                if (!p || !pn || !ph) {
                        v->r = -ENOMEM;
                        return;
                }
                if (isempty(ifc->name) && isempty(ifc->hw_addr))
                        problem(v, p, "an interface needs a name or a hw_addr");
                if (!isempty(ifc->name) && !valid_ifname(ifc->name)) {
                        _cleanup_free_ char *sv = show(ifc->name);
                        problem(v, pn, "%s is not a valid interface name (1-15 letters, digits, '.', '_', '-', '@')",
                                sv);
                }
                if (!isempty(ifc->hw_addr) && !valid_mac(ifc->hw_addr)) {
                        _cleanup_free_ char *sv = show(ifc->hw_addr);
                        problem(v, ph, "%s is not a valid MAC address (aa:bb:cc:dd:ee:ff)", sv);
                }
        }
        if (!in_list(m->method, methods, false)) {
                _cleanup_free_ char *sv = show(m->method);
                problem(v, "install.management_interface.method", "unknown method %s: use dhcp or static",
                        sv);
        } else if (streq(m->method, "static")) {
                check_ipv4(v, "install.management_interface.ip", m->ip, "address", true, "for method static");
                if (isempty(m->subnet_mask))
                        missing(v, "install.management_interface.subnet_mask", "required for method static");
                else if (!valid_netmask(m->subnet_mask)) {
                        _cleanup_free_ char *sv = show(m->subnet_mask);
                        problem(v, "install.management_interface.subnet_mask",
                                "%s is not a valid IPv4 netmask (e.g. 255.255.255.0)", sv);
                }
                check_ipv4(v, "install.management_interface.gateway", m->gateway, "address", true,
                           "for method static");
                if (strv_length(v->c->os.dns_nameservers) == 0)
                        missing(v, "os.dns_nameservers", "at least one DNS server is required for method static");
        } else {
                /* dhcp: unused, but a given value must still make sense. */
                check_ipv4(v, "install.management_interface.ip", m->ip, "address", false, NULL);
                check_ipv4(v, "install.management_interface.gateway", m->gateway, "address", false, NULL);
                if (!isempty(m->subnet_mask) && !valid_netmask(m->subnet_mask)) {
                        _cleanup_free_ char *sv = show(m->subnet_mask);
                        problem(v, "install.management_interface.subnet_mask",
                                "%s is not a valid IPv4 netmask (e.g. 255.255.255.0)", sv);
                }
        }
        if (m->mtu != 0 && (m->mtu < 576 || m->mtu > 9000))
                problem(v, "install.management_interface.mtu", "must be 0 (unset) or 576 to 9000, got %" PRId64,
                        m->mtu);
        if (m->vlan_id < 0 || m->vlan_id > 4094)
                problem(v, "install.management_interface.vlan_id",
                        "must be 0 to 4094 (0 and 1 mean untagged), got %" PRId64, m->vlan_id);
        const char *bm = kvmap_get(&m->bond_options, "mode");
        if (bm && !in_list(bm, bond_modes, false)) {
                _cleanup_free_ char *sv = show(bm);
                problem(v, "install.management_interface.bond_options.mode",
                        "unknown bonding mode %s: use balance-rr, active-backup, balance-xor, broadcast, 802.3ad, "
                        "balance-tlb or balance-alb", sv);
        }
        for (size_t i = 0; i < m->bond_options.n; i++) {
                const struct kv *o = &m->bond_options.items[i];
                if (valid_word(o->key, NULL) && valid_word(o->value, ",:/+"))
                        continue;
                _cleanup_free_ char *p = path_join("install.management_interface.bond_options", o->key);
                _cleanup_free_ char *sk = show(o->key), *sv = show(o->value);
                if (!p) {
                        v->r = -ENOMEM;
                        return;
                }
                problem(v, p, "%s: %s holds characters a bonding option cannot have (letters, digits and ._- in "
                              "names; also ,:/+ in values; not empty)", sk, sv);
        }
        const char *mii = kvmap_get(&m->bond_options, "miimon");
        int64_t x;
        if (mii && (parse_int64(mii, &x) < 0 || x < 0)) {
                _cleanup_free_ char *sv = show(mii);
                problem(v, "install.management_interface.bond_options.miimon",
                        "%s is not a number of milliseconds", sv);
        }
}

/* The URLs the node expands ${mac}, ${uuid}, ... in (urltemplate.h): only known variables. */
static void check_url_vars(struct vctx *v, const char *path, const char *url) {
        _cleanup_free_ char *var = url_template_problem(url);
        if (var) {
                _cleanup_free_ char *sv = show(url);
                problem(v, path, "%s: %s", sv, var);
        }
}

static void check_url(struct vctx *v, const char *path, const char *url, bool allow_file) {
        if (isempty(url))
                return;
        _cleanup_free_ char *sv = show(url);
        if (!valid_url(url, allow_file)) {
                problem(v, path, "%s is not an %s URL", sv, allow_file ? "http://, https:// or file://" : "http(s)://");
                return;
        }

        /* What libcurl will fetch: a password with an unencoded '/', '?' or '#' does not parse. */
        _cleanup_free_ char *why = url_parse_problem(url);
        if (why)
                problem(v, path, "%s is not a valid URL: %s", sv, why);
}

/* install.iso_url is set: one URL that is not empty ("harvester.install.iso_url=" unsets it), or a
 * list. */
static bool iso_url_set(const struct install_config *in) {
        size_t n = strv_length(in->iso_urls);
        return n > 1 || (n == 1 && !isempty(in->iso_urls[0]));
}

/* install.iso_url: one URL or a list of mirrors of the same file (download.h). Syntax only: each is a
 * URL the download can fetch, no mirror twice, and with iso_checksum_url every mirror's file name is
 * the one the checksum list is searched for. */
static void check_iso_urls(struct vctx *v) {
        const struct install_config *in = &v->c->install;
        size_t n = strv_length(in->iso_urls);
        _cleanup_free_ char *first_name = NULL;
        if (!iso_url_set(in))
                return;
        if (n > ISO_MIRRORS_MAX)
                problem(v, "install.iso_url", "names %zu mirrors; at most %d are tried", n, ISO_MIRRORS_MAX);
        for (size_t i = 0; i < n && v->r >= 0; i++) {
                const char *url = in->iso_urls[i];
                _cleanup_free_ char *p = n > 1 ? strdup_printf("install.iso_url[%zu]", i) : strdup("install.iso_url");
                if (!p) {
                        v->r = -ENOMEM;
                        return;
                }
                if (isempty(url)) {
                        problem(v, p, "is empty: every mirror is a URL");
                        continue;
                }
                check_url(v, p, url, true);
                check_url_vars(v, p, url);
                for (size_t j = 0; j < i; j++)
                        if (streq_ptr(in->iso_urls[j], url)) {
                                _cleanup_free_ char *sv = show(url);
                                problem(v, p, "%s is named twice (also as mirror %zu)", sv, j);
                                break;
                        }
                if (isempty(in->iso_checksum_url) || !isempty(in->iso_checksum))
                        continue;
                /* The checksum list's entry is looked up by the first mirror's file name. */
                _cleanup_free_ char *name = NULL;
                if (checksum_url_filename(url, &name) == -ENOMEM) {
                        v->r = -ENOMEM;
                        return;
                }
                if (i == 0)
                        first_name = TAKE_PTR(name);
                else if (first_name && name && !streq(first_name, name)) {
                        _cleanup_free_ char *sv = show(url);
                        problem(v, p, "%s serves \"%s\" but the first mirror serves \"%s\": mirrors serve one "
                                "file, whose entry install.iso_checksum_url looks up by that name", sv, name,
                                first_name);
                }
        }
}

static void check_webhooks(struct vctx *v) {
        const struct install_config *in = &v->c->install;
        for (size_t i = 0; i < in->n_webhooks; i++) {
                const struct webhook *w = &in->webhooks[i];
                _cleanup_free_ char *pe = strdup_printf("install.webhooks[%zu].event", i);
                _cleanup_free_ char *pm = strdup_printf("install.webhooks[%zu].method", i);
                _cleanup_free_ char *pu = strdup_printf("install.webhooks[%zu].url", i);
                if (!pe || !pm || !pu) {
                        v->r = -ENOMEM;
                        return;
                }
                if (isempty(w->event))
                        missing(v, pe, "required: STARTED, SUCCEEDED, FAILED or PROGRESS");
                else if (!in_list(w->event, events, false)) {
                        _cleanup_free_ char *sv = show(w->event);
                        problem(v, pe, "unknown event %s: use STARTED, SUCCEEDED, FAILED or PROGRESS", sv);
                }
                if (!in_list(w->method, http_methods, false)) {
                        _cleanup_free_ char *sv = show(w->method);
                        problem(v, pm, "unknown HTTP method %s: use GET, POST, PUT, PATCH, DELETE or HEAD",
                                sv);
                }
                if (isempty(w->url))
                        missing(v, pu, "required: the URL to call");
                else
                        check_url(v, pu, w->url, false);
        }
}

static void check_files(struct vctx *v) {
        const struct os_config *os = &v->c->os;
        if (os->n_write_files > CONFIG_MAX_WRITE_FILES)
                problem(v, "os.write_files", "%zu files given; the node's configuration holds at most %d",
                        os->n_write_files, CONFIG_MAX_WRITE_FILES);
        for (size_t i = 0; i < os->n_write_files; i++) {
                const struct write_file *w = &os->write_files[i];
                _cleanup_free_ char *pp = strdup_printf("os.write_files[%zu].path", i);
                _cleanup_free_ char *pm = strdup_printf("os.write_files[%zu].permissions", i);
                _cleanup_free_ char *pe = strdup_printf("os.write_files[%zu].encoding", i);
                if (!pp || !pm || !pe) {
                        v->r = -ENOMEM;
                        return;
                }
                if (isempty(w->path))
                        missing(v, pp, "required: the absolute path of the file");
                else if (w->path[0] != '/') {
                        _cleanup_free_ char *sv = show(w->path);
                        problem(v, pp, "%s is not an absolute path", sv);
                }
                if (!isempty(w->permissions) && !valid_octal_mode(w->permissions)) {
                        _cleanup_free_ char *sv = show(w->permissions);
                        problem(v, pm, "%s is not an octal file mode such as \"0644\"", sv);
                }
                if (w->encoding && !in_list(w->encoding, encodings, false)) {
                        _cleanup_free_ char *sv = show(w->encoding);
                        problem(v, pe, "unknown encoding %s: use b64, gz or gz+b64 (or leave it out)",
                                sv);
                }
        }
}

/* A disk: a /dev path, or a selector (diskselect.h; only its syntax here, the disks are matched in
 * the disk stage). false when it is neither. */
static bool check_disk_name(struct vctx *v, const char *key, const char *value, const char *example) {
        _cleanup_free_ char *sv = show(value);
        if (disk_selector_is(value)) {
                _cleanup_(disk_selector_done) struct disk_selector sel = {};
                _cleanup_free_ char *error = NULL;
                int r = disk_selector_parse(value, &sel, &error);
                if (r == -ENOMEM)
                        v->r = r;
                else if (r < 0 && !strpbrk(value, "=<>"))
                        problem(v, key, "%s is not a /dev/ path (e.g. %s or /dev/disk/by-id/...) nor a disk selector (e.g. size>=100G,rotational=false)",
                                sv, example);
                else if (r < 0)
                        problem(v, key, "%s is not a valid disk selector: %s", sv, strempty(error));
                return r >= 0;
        }
        if (!is_dev_path(value)) {
                problem(v, key, "%s is not a /dev/ path (e.g. %s or /dev/disk/by-id/...) nor a disk selector (e.g. size>=100G,rotational=false)",
                        sv, example);
                return false;
        }
        return true;
}

static void check_disks(struct vctx *v) {
        const struct install_config *in = &v->c->install;
        if (isempty(in->device))
                missing(v, "install.device", "required: the disk to install to, e.g. /dev/sda");
        else
                (void)check_disk_name(v, "install.device", in->device, "/dev/sda");
        if (!isempty(in->data_disk)) {
                if (check_disk_name(v, "install.data_disk", in->data_disk, "/dev/sdb") && streq_ptr(in->data_disk, in->device))
                        problem(v, "install.data_disk",
                                "is the same disk as install.device; give another disk for VM data, or leave it out");
        }
        for (size_t i = 0; in->wipe_disks_list && in->wipe_disks_list[i]; i++)
                if (!is_dev_path(in->wipe_disks_list[i])) {
                        _cleanup_free_ char *p = strdup_printf("install.wipe_disks_list[%zu]", i);
                        _cleanup_free_ char *sv = show(in->wipe_disks_list[i]);
                        if (!p) {
                                v->r = -ENOMEM;
                                return;
                        }
                        problem(v, p, "%s is not a /dev/ path", sv);
                }
        if (in->persistent_partition_size) {
                uint64_t b;
                if (parse_partition_size(in->persistent_partition_size, &b) < 0) {
                        _cleanup_free_ char *sv = show(in->persistent_partition_size);
                        problem(v, "install.persistent_partition_size",
                                "%s is not a size in Mi or Gi (e.g. 150Gi)", sv);
                }
        }
}

/* A list of strings, each checked by ok(s) (false: the problem "<value> <what>"). */
static void check_each(struct vctx *v, const char *path, char *const *list, bool (*ok)(const char *),
                       const char *what) {
        for (size_t i = 0; list && list[i]; i++) {
                if (ok(list[i]))
                        continue;
                _cleanup_free_ char *p = strdup_printf("%s[%zu]", path, i);
                _cleanup_free_ char *sv = show(list[i]);
                if (!p) {
                        v->r = -ENOMEM;
                        return;
                }
                problem(v, p, "%s %s", sv, what);
        }
}

static bool ntp_server_ok(const char *s) {
        return valid_word(s, ":");
}

static bool module_ok(const char *s) {
        return valid_word(s, NULL);
}

static bool state_path_ok(const char *s) {
        if (!s || s[0] != '/')
                return false;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (isspace(*p) || *p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

/* Every key and value of the merged document is UTF-8: the node's YAML files cannot hold anything
 * else (the kernel command line is the one source of other bytes). */
static void check_utf8(struct vctx *v, const struct node *n, const char *path) {
        if (!n)
                return;
        if (n->key && !utf8_valid(n->key)) {
                problem(v, strempty(path), "holds a key that is not valid UTF-8 text");
                return;
        }
        if (n->kind == NODE_SCALAR) {
                if (n->value && !utf8_valid(n->value))
                        problem(v, strempty(path), "is not valid UTF-8 text (check the kernel command line's encoding)");
                return;
        }
        for (size_t i = 0; i < n->n_items; i++) {
                const struct node *c = n->items[i];
                _cleanup_free_ char *p = n->kind == NODE_LIST ? strdup_printf("%s[%zu]", strempty(path), i)
                                         : c->key && utf8_valid(c->key) ? path_join(path, c->key)
                                                                         : strdup(strempty(path));
                if (!p) {
                        v->r = -ENOMEM;
                        return;
                }
                check_utf8(v, c, p);
        }
}

/* What this installer accepts in the schema but cannot carry out. */
static void check_unsupported(struct vctx *v) {
        if (v->c->os.after_install_chroot_commands)
                problem(v, "os.after_install_chroot_commands",
                        "not supported: this installer runs no commands inside the installed system; remove the "
                        "key, or run them from os.write_files and a systemd unit");
        if (v->c->install.addons)
                problem(v, "install.addons",
                        "not supported: this installer deploys Harvester v1.1's bootstrap manifests only; remove the "
                        "key and enable the addons after the cluster is up");
        if (v->c->install.harvester)
                problem(v, "install.harvester",
                        "not supported (chart values): this installer deploys Harvester v1.1's bootstrap manifests "
                        "only; remove the key and change the settings after the cluster is up");
}

/* The installed system's boot: its console and extra kernel arguments go into grub.cfg. */
static void check_boot(struct vctx *v) {
        const struct config *c = v->c;
        const char *tty = c->install.tty;
        if (!isempty(tty) && !valid_console_name(tty)) {
                _cleanup_free_ char *sv = show(tty);
                problem(v, "install.tty", "%s is not a console name such as ttyS0,115200n8%s", sv,
                        node_lookup(c->tree, "install.tty") ? "" : " (taken from the last console= argument)");
        }
        const char *args = c->os.additional_kernel_arguments;
        const char *why = args ? kernel_args_problem(args) : NULL;
        if (why) {
                _cleanup_free_ char *sv = show(args);
                problem(v, "os.additional_kernel_arguments", "%s %s", sv, why);
        }
}

int config_validate(const struct config *c, struct diags *d) {
        struct vctx v = { .c = c, .d = d };
        const struct install_config *in = &c->install;
        const struct os_config *os = &c->os;

        if (c->scheme_version != 1) {
                if (!node_lookup(c->tree, "scheme_version"))
                        missing(&v, "scheme_version", "required: set scheme_version: 1");
                else
                        problem(&v, "scheme_version", "must be 1, got %" PRId64, c->scheme_version);
        }

        bool create = streq_ptr(in->mode, "create"), join = streq_ptr(in->mode, "join");
        if (isempty(in->mode))
                missing(&v, "install.mode", "required: create, join or install");
        else if (!in_list(in->mode, modes, false)) {
                _cleanup_free_ char *sv = show(in->mode);
                problem(&v, "install.mode", "unknown mode %s: use create, join or install", sv);
        }
        if (create && !isempty(c->server_url))
                problem(&v, "server_url",
                        "must not be set for mode create (a create install starts a new cluster; "
                        "server_url is for join)");
        if (join && isempty(c->server_url))
                missing(&v, "server_url", "required for mode join: the cluster to join, https://<vip>:443");
        if (in->automatic && (create || join) && !iso_url_set(in))
                missing(&v, "install.iso_url", "required for an automatic install (the ISO to install from)");

        if (isempty(c->token)) {
                if (!streq_ptr(in->mode, "install"))
                        missing(&v, "token", "required: the cluster token shared by every node");
        } else if (!valid_token(c->token))
                problem(&v, "token",
                        "holds characters Harvester refuses: use letters, digits, spaces and "
                        "!\"#$%%&'()*+,-./:;<=>?@[\\]^_`{|}~");
        if (isempty(os->password) && strv_length(os->ssh_authorized_keys) == 0)
                missing(&v, "os.password", "no password and no SSH key: set os.password or at least one "
                                           "os.ssh_authorized_keys entry, or nobody can log in");
        for (size_t i = 0; os->ssh_authorized_keys && os->ssh_authorized_keys[i]; i++)
                if (isempty(os->ssh_authorized_keys[i])) {
                        _cleanup_free_ char *p = strdup_printf("os.ssh_authorized_keys[%zu]", i);
                        if (p)
                                problem(&v, p, "is empty");
                }

        if (!valid_dns1123_subdomain(os->hostname)) {
                _cleanup_free_ char *sv = show(os->hostname);
                problem(&v, "os.hostname",
                        "%s is not a valid hostname: lowercase letters, digits, '-' and '.', each part starting and "
                        "ending with a letter or digit, at most 63 characters a part (RFC 1123)",
                        sv ? sv : "\"\"");
        }
        for (size_t i = 0; os->dns_nameservers && os->dns_nameservers[i]; i++)
                if (!valid_ip(os->dns_nameservers[i])) {
                        _cleanup_free_ char *p = strdup_printf("os.dns_nameservers[%zu]", i);
                        _cleanup_free_ char *sv = show(os->dns_nameservers[i]);
                        if (p)
                                problem(&v, p, "%s is not an IP address", sv);
                }
        for (size_t i = 0; i < os->labels.n; i++) {
                const struct kv *l = &os->labels.items[i];
                _cleanup_free_ char *p = path_join("os.labels", l->key);
                if (!p)
                        return -ENOMEM;
                _cleanup_free_ char *sk = show(l->key), *sv = show(l->value);
                if (!valid_label_key(l->key))
                        problem(&v, p, "%s is not a valid Kubernetes label name ([prefix/]name, name at most 63 "
                                       "characters: letters, digits, '-', '_', '.')", sk);
                if (!valid_label_value(l->value))
                        problem(&v, p, "%s is not a valid Kubernetes label value (at most 63 characters: letters, "
                                       "digits, '-', '_', '.', starting and ending with a letter or digit)",
                                sv);
        }
        check_files(&v);
        check_each(&v, "os.ntp_servers", os->ntp_servers, ntp_server_ok,
                   "is not a host name or IP address (letters, digits, '.', '-', '_', ':')");
        check_each(&v, "os.modules", os->modules, module_ok,
                   "is not a kernel module name (letters, digits, '_', '-', '.')");
        check_each(&v, "os.persistent_state_paths", os->persistent_state_paths, state_path_ok,
                   "is not an absolute path without spaces");
        if (!isempty(os->password) && os->password[0] == '$' && !valid_crypt_hash(os->password))
                warning(&v, "os.password",
                        "starts with '$' but is not a well-formed $6$, $5$, $y$ or $2b$ crypt hash: it is taken "
                        "as clear text and stored hashed");
        check_unsupported(&v);
        check_boot(&v);
        check_utf8(&v, c->tree, NULL);

        check_network(&v);
        if (create) {
                check_ipv4(&v, "install.vip", in->vip, "address", true, "for mode create: the cluster's VIP");
                if (isempty(in->vip_mode))
                        missing(&v, "install.vip_mode", "required for mode create: static or dhcp");
                else if (!in_list(in->vip_mode, methods, false)) {
                        _cleanup_free_ char *sv = show(in->vip_mode);
                        problem(&v, "install.vip_mode", "unknown vip_mode %s: use static or dhcp", sv);
                }
                if (streq_ptr(in->vip_mode, "dhcp") && isempty(in->vip_hw_addr))
                        missing(&v, "install.vip_hw_addr",
                                "required for vip_mode dhcp: the MAC address the VIP's DHCP lease is bound to");
                for (size_t i = 0; i < c->system_settings.n; i++)
                        if (!in_list(c->system_settings.items[i].key, system_settings_allowed, false)) {
                                _cleanup_free_ char *p = path_join("system_settings", c->system_settings.items[i].key);
                                if (p)
                                        problem(&v, p, "not a setting Harvester lets an install set");
                        }
        } else if (c->system_settings.n > 0 && join)
                warning(&v, "system_settings", "only used by mode create; ignored for mode join");
        if (!isempty(in->vip_hw_addr) && !valid_mac(in->vip_hw_addr)) {
                _cleanup_free_ char *sv = show(in->vip_hw_addr);
                problem(&v, "install.vip_hw_addr", "%s is not a valid MAC address (aa:bb:cc:dd:ee:ff)",
                        sv);
        }

        check_disks(&v);
        check_iso_urls(&v);
        if (in->iso_checksum && !valid_checksum(in->iso_checksum))
                problem(&v, "install.iso_checksum", "must be sha512:<128 hex digits> or sha256:<64 hex digits>");
        check_url(&v, "install.iso_checksum_url", in->iso_checksum_url, true);
        /* The ISO stage (download.c, iso_fetch) refuses an ISO it cannot verify (README, "TLS"): say so
         * here, so that a configuration `config` calls valid is one the install can carry out. */
        if (in->automatic && iso_url_set(in) && isempty(in->iso_checksum) && isempty(in->iso_checksum_url) &&
            !in->skipchecks)
                missing(&v, "install.iso_checksum_url",
                        "required (or install.iso_checksum): the ISO cannot be verified without a checksum; "
                        "install.skipchecks, which installs an unverified ISO, is only for test rigs");
        check_url(&v, "install.config_url", in->config_url, true);
        check_url_vars(&v, "install.iso_checksum_url", in->iso_checksum_url);
        check_url_vars(&v, "install.config_url", in->config_url);
        if (in->config_url_timeout < 1)
                problem(&v, "install.config_url_timeout", "must be at least 1 (seconds), got %" PRId64,
                        in->config_url_timeout);
        if (!in_list(in->role, roles, false)) {
                _cleanup_free_ char *sv = show(in->role);
                problem(&v, "install.role", "unknown role %s: use default, management, worker or witness",
                        sv);
        }
        check_webhooks(&v);
        if (in->cluster_pod_cidr && !valid_cidr4(in->cluster_pod_cidr))
                problem(&v, "install.cluster_pod_cidr", "is not an IPv4 CIDR such as 10.52.0.0/16");
        if (in->cluster_service_cidr && !valid_cidr4(in->cluster_service_cidr))
                problem(&v, "install.cluster_service_cidr", "is not an IPv4 CIDR such as 10.53.0.0/16");
        if (in->cluster_dns && !valid_ipv4(in->cluster_dns))
                problem(&v, "install.cluster_dns", "is not an IPv4 address");
        if (d->oom)
                return -ENOMEM;
        return v.r;
}
