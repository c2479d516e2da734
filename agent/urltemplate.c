/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ${name} variables of the URLs the agent fetches (urltemplate.h).
 *
 * ${mac} is the NIC that booted: the BOOTIF= kernel argument when present (pxelinux's form
 * "01-52-54-00-12-34-56", which iPXE passes with BOOTIF=01-${netX/mac:hexhyp}), else the NIC that
 * holds the IPv4 default route (/proc/net/route): in the initrd that is the interface whose DHCP
 * lease the install runs over. Written lower-case and colon-separated, as dhcpd's
 * "hardware ethernet" and sysfs write it; ${mac_hyphen} is the same with '-' (file names).
 * ${hostname} is the host name the DHCP server gave that NIC (systemd-networkd's lease file
 * /run/systemd/netif/leases/<ifindex>, HOSTNAME=), else the kernel's host name
 * (/proc/sys/kernel/hostname) when it is set to something other than "localhost" or "(none)".
 */
#include <ctype.h>
#include <dirent.h>

#include "urltemplate.h"
#include "cmdline.h"
#include "util.h"
#include "validate.h"

static const char *const known[] = { "mac", "mac_hyphen", "uuid", "serial", "hostname", NULL };

bool url_template_used(const char *s) {
        return s && strstr(s, "${");
}

/* The next ${name} at or after s: *start at '$', *name_len, or -EINVAL (unterminated/empty). */
static int next_var(const char *s, const char **start, const char **name, size_t *name_len) {
        const char *p = strstr(s, "${");
        if (!p) {
                *start = NULL;
                return 0;
        }
        const char *n = p + 2, *e = strchr(n, '}');
        *start = p;
        *name = n;
        if (!e || e == n) {
                *name_len = e ? 0 : strlen(n);
                return -EINVAL;
        }
        *name_len = (size_t)(e - n);
        return 0;
}

static bool is_known(const char *name, size_t len) {
        for (size_t i = 0; known[i]; i++)
                if (strlen(known[i]) == len && strncmp(known[i], name, len) == 0)
                        return true;
        return false;
}

static char *problem_of(const char *start, const char *name, size_t len, bool malformed) {
        _cleanup_free_ char *shown = escape_controls(start), *n = strndup(name, len);
        if (!shown || !n)
                return NULL;
        if (malformed)
                return strdup_printf("\"%s\" is not a ${name} variable (written as ${mac}, ${uuid}, ...)", shown);
        _cleanup_free_ char *en = escape_controls(n);
        return strdup_printf("unknown variable ${%s}; known: ${mac}, ${mac_hyphen}, ${uuid}, ${serial}, "
                             "${hostname}", en ? en : "?");
}

char *url_template_problem(const char *s) {
        for (const char *p = s; p && *p;) {
                const char *start, *name;
                size_t len;
                int r = next_var(p, &start, &name, &len);
                if (!start)
                        return NULL;
                if (r < 0 || !is_known(name, len))
                        return problem_of(start, name, len, r < 0);
                p = name + len + 1;
        }
        return NULL;
}

static char *path_of(const struct url_facts *f, const char *path) {
        return strdup_printf("%s%s", strempty(f->root), path);
}

/* The first line of root+path, trimmed. 0, -ENOENT/-EACCES/... (errno of the read), -ENOMEM. */
static int read_line(const struct url_facts *f, const char *path, char **ret) {
        _cleanup_free_ char *p = path_of(f, path), *text = NULL;
        if (!p)
                return -ENOMEM;
        int r = read_full_file(p, &text, NULL);
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = 0;
        size_t n = strlen(text);
        while (n > 0 && isspace((unsigned char)text[n - 1]))
                text[--n] = 0;
        size_t lead = strspn(text, " \t");
        memmove(text, text + lead, n - lead + 1);
        *ret = TAKE_PTR(text);
        return 0;
}

static void lower(char *s) {
        for (; *s; s++)
                *s = (char)tolower((unsigned char)*s);
}

/* BOOTIF=01-aa-bb-cc-dd-ee-ff (or aa-bb-.. / aa:bb:..) -> "aa:bb:cc:dd:ee:ff". 1 found, 0 none, -EINVAL. */
static int bootif_mac(const char *cmdline, char **ret, char **ret_problem) {
        _cleanup_strv_free_ char **words = NULL;
        const char *v = NULL;
        if (isempty(cmdline))
                return 0;
        /* The last BOOTIF= wins, as for every kernel argument. */
        int r = cmdline_split(cmdline, &words);
        if (r < 0)
                return r;
        STRV_FOREACH(w, words)
                if (strncmp(*w, "BOOTIF=", 7) == 0)
                        v = *w + 7;
        if (!v)
                return 0;
        const char *m = v;
        if (strlen(v) == 20 && strncmp(v, "01-", 3) == 0)
                m = v + 3; /* ARP hardware type 1 (Ethernet) */
        _cleanup_free_ char *mac = strdup(m);
        if (!mac)
                return -ENOMEM;
        for (char *p = mac; *p; p++)
                *p = *p == '-' ? ':' : (char)tolower((unsigned char)*p);
        if (!valid_mac(mac)) {
                _cleanup_free_ char *shown = escape_controls(v);
                *ret_problem = strdup_printf("${mac}: the kernel argument BOOTIF=%s is not an Ethernet address "
                                             "(expected 01-aa-bb-cc-dd-ee-ff)", shown ? shown : "?");
                return *ret_problem ? -EINVAL : -ENOMEM;
        }
        *ret = TAKE_PTR(mac);
        return 1;
}

/* The interface of the IPv4 default route (/proc/net/route), or NULL with *ret_problem. */
static int default_route_nic(const struct url_facts *f, char **ret, char **ret_problem) {
        _cleanup_free_ char *p = path_of(f, "/proc/net/route"), *text = NULL;
        if (!p)
                return -ENOMEM;
        int r = read_full_file(p, &text, NULL);
        if (r < 0) {
                *ret_problem = strdup_printf("${mac}: there is no BOOTIF= kernel argument and %s cannot be read (%s) "
                                             "to find the NIC of the default route", p, strerror(-r));
                return *ret_problem ? -EINVAL : -ENOMEM;
        }
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char ifname[64], dest[16];
                unsigned flags;
                /* Iface Destination Gateway Flags ...; RTF_UP is 0x1. */
                if (sscanf(line, "%63s %15s %*s %x", ifname, dest, &flags) == 3 && streq(dest, "00000000") &&
                    (flags & 1) && valid_ifname(ifname)) {
                        *ret = strdup(ifname);
                        return *ret ? 0 : -ENOMEM;
                }
        }
        *ret_problem = strdup("${mac}: there is no BOOTIF= kernel argument and no IPv4 default route, so the NIC "
                              "that booted is unknown. Pass BOOTIF=01-${netX/mac:hexhyp} from iPXE, or check DHCP");
        return *ret_problem ? -EINVAL : -ENOMEM;
}

static int boot_mac(const struct url_facts *f, char **ret, char **ret_problem) {
        int r = bootif_mac(f->cmdline, ret, ret_problem);
        if (r != 0)
                return r < 0 ? r : 0;
        _cleanup_free_ char *nic = NULL, *mac = NULL, *path = NULL;
        if ((r = default_route_nic(f, &nic, ret_problem)) < 0)
                return r;
        if (!(path = strdup_printf("/sys/class/net/%s/address", nic)))
                return -ENOMEM;
        r = read_line(f, path, &mac);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !valid_mac(mac)) {
                *ret_problem = strdup_printf("${mac}: the address of %s (the NIC of the default route) cannot be "
                                             "read from %s%s", nic, strempty(f->root), path);
                return *ret_problem ? -EINVAL : -ENOMEM;
        }
        lower(mac);
        *ret = TAKE_PTR(mac);
        return 0;
}

/* The ifindex of the NIC with mac, or -1. */
static long ifindex_of_mac(const struct url_facts *f, const char *mac) {
        _cleanup_free_ char *net = path_of(f, "/sys/class/net");
        DIR *d = net ? opendir(net) : NULL;
        long found = -1;
        if (!d)
                return -1;
        for (struct dirent *e; (e = readdir(d));) {
                if (e->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *a = strdup_printf("/sys/class/net/%s/address", e->d_name),
                                    *x = strdup_printf("/sys/class/net/%s/ifindex", e->d_name), *av = NULL, *xv = NULL;
                int64_t idx;
                if (!a || !x || read_line(f, a, &av) < 0 || read_line(f, x, &xv) < 0)
                        continue;
                lower(av);
                if (streq(av, mac) && parse_int64(xv, &idx) == 0 && (found < 0 || idx < found))
                        found = (long)idx;
        }
        closedir(d);
        return found;
}

static int dhcp_hostname(const struct url_facts *f, char **ret, char **ret_problem) {
        _cleanup_free_ char *mac = NULL, *ignored = NULL;
        int r;
        /* The lease of the NIC that booted, when it is known. */
        if (boot_mac(f, &mac, &ignored) == 0) {
                long idx = ifindex_of_mac(f, mac);
                _cleanup_free_ char *lease = idx >= 0 ? strdup_printf("/run/systemd/netif/leases/%ld", idx) : NULL,
                                    *p = lease ? path_of(f, lease) : NULL, *text = NULL;
                if (p && read_full_file(p, &text, NULL) >= 0) {
                        char *save = NULL;
                        for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                                if (strncmp(l, "HOSTNAME=", 9) == 0 && l[9]) {
                                        *ret = strdup(l + 9);
                                        return *ret ? 0 : -ENOMEM;
                                }
                }
        }
        _cleanup_free_ char *h = NULL;
        r = read_line(f, "/proc/sys/kernel/hostname", &h);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || isempty(h) || streq(h, "localhost") || streq(h, "(none)")) {
                *ret_problem = strdup("${hostname}: the DHCP server gave no host name (no HOSTNAME= in the lease of "
                                      "the NIC that booted, and the kernel's host name is not set). Send option 12 "
                                      "(host-name) for this node, or use ${mac}");
                return *ret_problem ? -EINVAL : -ENOMEM;
        }
        *ret = TAKE_PTR(h);
        return 0;
}

static int dmi_value(const struct url_facts *f, const char *var, const char *file, char **ret, char **ret_problem) {
        _cleanup_free_ char *path = strdup_printf("/sys/class/dmi/id/%s", file), *v = NULL;
        if (!path)
                return -ENOMEM;
        int r = read_line(f, path, &v);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || isempty(v)) {
                *ret_problem = r < 0 ? strdup_printf("${%s}: cannot read the SMBIOS value %s%s: %s", var,
                                                     strempty(f->root), path, strerror(-r))
                                     : strdup_printf("${%s}: the SMBIOS value %s%s is empty on this machine", var,
                                                     strempty(f->root), path);
                return *ret_problem ? -EINVAL : -ENOMEM;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

static int value_of(const char *name, const struct url_facts *f, char **ret, char **ret_problem) {
        int r;
        if (streq(name, "mac") || streq(name, "mac_hyphen")) {
                if ((r = boot_mac(f, ret, ret_problem)) < 0)
                        return r;
                if (streq(name, "mac_hyphen"))
                        for (char *p = *ret; *p; p++)
                                if (*p == ':')
                                        *p = '-';
                return 0;
        }
        if (streq(name, "uuid")) {
                if ((r = dmi_value(f, "uuid", "product_uuid", ret, ret_problem)) < 0)
                        return r;
                lower(*ret);
                return 0;
        }
        if (streq(name, "serial"))
                return dmi_value(f, "serial", "product_serial", ret, ret_problem);
        if (streq(name, "hostname"))
                return dhcp_hostname(f, ret, ret_problem);
        return -EINVAL; /* checked by the caller */
}

static int append_encoded(char **buf, size_t *len, const char *v) {
        for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
                char enc[4];
                if (isalnum(*p) || strchr("-._~:", *p)) {
                        enc[0] = (char)*p;
                        enc[1] = 0;
                } else
                        snprintf(enc, sizeof(enc), "%%%02X", *p);
                size_t n = strlen(enc);
                char *nb = realloc(*buf, *len + n + 1);
                if (!nb)
                        return -ENOMEM;
                memcpy(nb + *len, enc, n + 1);
                *buf = nb;
                *len += n;
        }
        return 0;
}

static int append_raw(char **buf, size_t *len, const char *s, size_t n) {
        char *nb = realloc(*buf, *len + n + 1);
        if (!nb)
                return -ENOMEM;
        memcpy(nb + *len, s, n);
        nb[*len + n] = 0;
        *buf = nb;
        *len += n;
        return 0;
}

int url_template_expand(const char *tmpl, const struct url_facts *f, char **ret, char **ret_problem) {
        _cleanup_free_ char *out = strdup("");
        size_t len = 0;
        int r;
        *ret_problem = NULL;
        if (!out)
                return -ENOMEM;
        for (const char *p = tmpl;;) {
                const char *start, *name;
                size_t nlen;
                r = next_var(p, &start, &name, &nlen);
                if (!start) {
                        if ((r = append_raw(&out, &len, p, strlen(p))) < 0)
                                return r;
                        break;
                }
                if (r < 0 || !is_known(name, nlen)) {
                        *ret_problem = problem_of(start, name, nlen, r < 0);
                        return *ret_problem ? -EINVAL : -ENOMEM;
                }
                _cleanup_free_ char *n = strndup(name, nlen), *v = NULL;
                if (!n)
                        return -ENOMEM;
                if ((r = value_of(n, f, &v, ret_problem)) < 0)
                        return r;
                if ((r = append_raw(&out, &len, p, (size_t)(start - p))) < 0 ||
                    (r = append_encoded(&out, &len, v)) < 0)
                        return r;
                p = name + nlen + 1;
        }
        *ret = TAKE_PTR(out);
        return 0;
}
