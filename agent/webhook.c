/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "disk.h"
#include "http.h"
#include "log.h"
#include "retry.h"
#include "template.h"
#include "webhook.h"

#define WEBHOOK_BACKOFF_BASE_USEC UINT64_C(500000)
#define WEBHOOK_BACKOFF_CAP_USEC UINT64_C(2000000)

/* ---- Templates ---- */

int webhook_render(const char *tmpl, const struct webhook_values *v, char **ret, const char **ret_error) {
        static const struct webhook_values none = {};
        if (!v)
                v = &none;
        const struct tmpl_var vars[] = {
                { "Hostname", v->hostname },
                { "MACAddr", v->mac },
                { "IPAddrV4", v->ipv4 },
                { "IPAddrV6", v->ipv6 },
#define DISK_FIELDS(prefix, d)                                                                        \
                { prefix, (d).name }, { prefix "Node", (d).node }, { prefix "ByID", (d).by_id },              \
                { prefix "Model", (d).model }, { prefix "Serial", (d).serial }, { prefix "Size", (d).size }
                DISK_FIELDS("InstallDisk", v->install_disk),
                DISK_FIELDS("DataDisk", v->data_disk),
#undef DISK_FIELDS
                { "Stage", v->ev.stage },
                { "Percent", v->ev.percent },
                { "Report", v->ev.report },
                { "Result", v->ev.result },
                { "Error", v->ev.error },
                { "HarvesterVersion", v->ev.harvester_version },
                { "ISOChecksum", v->ev.iso_checksum },
        };
        const char *err = NULL;
        int r = tmpl_render(tmpl, vars, ELEMENTSOF(vars), 0, ret, &err);
        if (r == -EINVAL && ret_error)
                *ret_error = err;
        return r;
}

/* ---- The management interface ---- */

static int read_line(const char *path, char **ret) {
        _cleanup_free_ char *s = NULL;
        int r = read_full_file(path, &s, NULL);
        if (r < 0)
                return r;
        s[strcspn(s, "\r\n")] = 0;
        *ret = TAKE_PTR(s);
        return 0;
}

static bool iface_exists(const char *sysfs_net, const char *name) {
        if (isempty(name) || strchr(name, '/') || streq(name, ".") || streq(name, ".."))
                return false;
        _cleanup_free_ char *p = strdup_printf("%s/%s", sysfs_net, name);
        return p && access(p, F_OK) == 0;
}

/* The name of the interface whose address is hw_addr. 0, -ENOENT, -ENOMEM. */
static int iface_by_hwaddr(const char *sysfs_net, const char *hw_addr, char **ret) {
        DIR *d = opendir(sysfs_net);
        if (!d)
                return -ENOENT;
        int r = -ENOENT;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *p = strdup_printf("%s/%s/address", sysfs_net, de->d_name);
                _cleanup_free_ char *addr = NULL;
                if (!p) {
                        r = -ENOMEM;
                        break;
                }
                if (read_line(p, &addr) < 0 || strcasecmp(addr, hw_addr) != 0)
                        continue;
                /* Bond slaves and bridges can share a MAC: prefer the lowest name for stability. */
                if (r == 0 && strcmp(de->d_name, *ret) >= 0)
                        continue;
                char *n = strdup(de->d_name);
                if (!n) {
                        r = -ENOMEM;
                        break;
                }
                if (r == 0)
                        free(*ret);
                *ret = n;
                r = 0;
        }
        closedir(d);
        return r;
}

/* The interface of the default route with the lowest metric in proc_net/route, then ipv6_route. */
static int iface_default_route(const char *proc_net, char **ret) {
        _cleanup_free_ char *path4 = strdup_printf("%s/route", proc_net);
        _cleanup_free_ char *path6 = strdup_printf("%s/ipv6_route", proc_net);
        if (!path4 || !path6)
                return -ENOMEM;

        char best[IF_NAMESIZE + 1] = "";
        unsigned long best_metric = 0;

        _cleanup_fclose_ FILE *f = fopen(path4, "re");
        if (f) {
                char line[512];
                while (fgets(line, sizeof(line), f)) {
                        char ifname[64];
                        unsigned long dest, gw, flags, refcnt, use, metric, mask;
                        if (sscanf(line, "%63s %lx %lx %lx %lu %lu %lu %lx", ifname, &dest, &gw, &flags,
                                   &refcnt, &use, &metric, &mask) != 8)
                                continue; /* the header */
                        if (dest != 0 || mask != 0 || !(flags & RTF_UP) || strlen(ifname) > IF_NAMESIZE)
                                continue;
                        if (!best[0] || metric < best_metric) {
                                strcpy(best, ifname);
                                best_metric = metric;
                        }
                }
        }
        if (!best[0]) {
                _cleanup_fclose_ FILE *g = fopen(path6, "re");
                char line[512];
                while (g && fgets(line, sizeof(line), g)) {
                        char dest[40], src[40], hop[40], ifname[64];
                        unsigned dplen, splen;
                        unsigned long metric, refcnt, use, flags;
                        if (sscanf(line, "%39s %x %39s %x %39s %lx %lx %lx %lx %63s", dest, &dplen, src, &splen,
                                   hop, &metric, &refcnt, &use, &flags, ifname) != 10)
                                continue;
                        if (dplen != 0 || strspn(dest, "0") != strlen(dest) || !(flags & RTF_UP) ||
                            (flags & RTF_REJECT) || streq(ifname, "lo") || strlen(ifname) > IF_NAMESIZE)
                                continue;
                        if (!best[0] || metric < best_metric) {
                                strcpy(best, ifname);
                                best_metric = metric;
                        }
                }
        }
        if (!best[0])
                return -ENOENT;
        char *n = strdup(best);
        if (!n)
                return -ENOMEM;
        *ret = n;
        return 0;
}

int webhook_mgmt_interface(const struct mgmt_interface *m, const char *sysfs_net, const char *proc_net, char **ret) {
        if (!sysfs_net)
                sysfs_net = "/sys/class/net";
        if (!proc_net)
                proc_net = "/proc/net";

        const char *pick = NULL;
        if (iface_exists(sysfs_net, "mgmt-br"))
                pick = "mgmt-br";
        for (size_t i = 0; !pick && m && i < m->n_interfaces; i++) {
                const struct net_interface *ni = &m->interfaces[i];
                if (iface_exists(sysfs_net, ni->name))
                        pick = ni->name;
                else if (!isempty(ni->hw_addr)) {
                        int r = iface_by_hwaddr(sysfs_net, ni->hw_addr, ret);
                        if (r != -ENOENT)
                                return r;
                }
        }
        if (!pick)
                return iface_default_route(proc_net, ret);
        char *n = strdup(pick);
        if (!n)
                return -ENOMEM;
        *ret = n;
        return 0;
}

/* A disk as the configuration names it: who it is now (nothing but the name when not found). */
static void collect_disk(const char *name, struct webhook_disk *ret) {
        struct disk_identity id = {};
        if (isempty(name))
                return;
        ret->name = strdup(name);
        if (disk_identify(name, &id) < 0)
                return;
        ret->node = TAKE_PTR(id.node);
        ret->by_id = TAKE_PTR(id.by_id);
        ret->model = TAKE_PTR(id.model);
        ret->serial = TAKE_PTR(id.serial);
        ret->size = strdup_printf("%" PRIu64, id.size);
        disk_identity_done(&id);
}

static void disk_done(struct webhook_disk *d) {
        free((char *)d->name);
        free((char *)d->node);
        free((char *)d->by_id);
        free((char *)d->model);
        free((char *)d->serial);
        free((char *)d->size);
}

void webhook_values_collect(const struct config *c, struct webhook_values *ret) {
        *ret = (struct webhook_values) {};
        if (c && c->os.hostname)
                ret->hostname = strdup(c->os.hostname);
        if (c) {
                collect_disk(c->install.device, &ret->install_disk);
                collect_disk(c->install.data_disk, &ret->data_disk);
        }

        _cleanup_free_ char *ifname = NULL;
        if (webhook_mgmt_interface(c ? &c->install.management_interface : NULL, NULL, NULL, &ifname) < 0) {
                log_debug("webhooks: no management interface found; MAC and addresses are empty.");
                return;
        }
        _cleanup_free_ char *apath = strdup_printf("/sys/class/net/%s/address", ifname);
        char *mac = NULL;
        if (apath && read_line(apath, &mac) >= 0)
                ret->mac = mac;

        struct ifaddrs *ifa = NULL;
        if (getifaddrs(&ifa) < 0)
                return;
        char v6_link[INET6_ADDRSTRLEN] = "";
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
                if (!i->ifa_addr || !i->ifa_name || !streq(i->ifa_name, ifname))
                        continue;
                char a[INET6_ADDRSTRLEN];
                if (i->ifa_addr->sa_family == AF_INET && !ret->ipv4) {
                        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)i->ifa_addr;
                        if (inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a)))
                                ret->ipv4 = strdup(a);
                } else if (i->ifa_addr->sa_family == AF_INET6 && !ret->ipv6) {
                        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)i->ifa_addr;
                        if (!inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a)))
                                continue;
                        if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr)) {
                                if (!v6_link[0])
                                        strcpy(v6_link, a);
                        } else
                                ret->ipv6 = strdup(a);
                }
        }
        freeifaddrs(ifa);
        if (!ret->ipv6 && v6_link[0])
                ret->ipv6 = strdup(v6_link);
        log_debug("webhooks: management interface %s, MAC %s, IPv4 %s, IPv6 %s", ifname, strempty(ret->mac),
                  strempty(ret->ipv4), strempty(ret->ipv6));
}

void webhook_values_done(struct webhook_values *v) {
        free((char *)v->hostname);
        free((char *)v->mac);
        free((char *)v->ipv4);
        free((char *)v->ipv6);
        disk_done(&v->install_disk);
        disk_done(&v->data_disk);
        *v = (struct webhook_values) {};
}

/* ---- Delivery ---- */

static void sleep_usec(uint64_t usec) {
        struct timespec ts = { .tv_sec = (time_t)(usec / 1000000), .tv_nsec = (long)(usec % 1000000) * 1000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
        return size * nmemb;
}

static bool has_header(const struct webhook *w, const char *name) {
        for (size_t i = 0; i < w->n_headers; i++)
                if (w->headers[i].key && strcasecmp(w->headers[i].key, name) == 0)
                        return true;
        return false;
}

/* Sends one webhook; returns true when delivered (a final status below 400). reason gets the
 * outcome ("HTTP 200", "HTTP 500", a curl error), *attempts how many tries were made. */
static bool deliver(const struct webhook *w, const char *method, const char *url, const char *payload,
                    long timeout_sec, unsigned tries, char *reason, size_t reason_len, unsigned *attempts) {
        _cleanup_curl_ CURL *c = NULL;
        _cleanup_curl_slist_ struct curl_slist *hdrs = NULL;
        char errbuf[CURL_ERROR_SIZE];
        int r;

        *attempts = 0;
        r = http_easy_new(w->insecure, WEBHOOK_TIMEOUT_SEC, WEBHOOK_TIMEOUT_SEC, &c);
        if (r < 0) {
                snprintf(reason, reason_len, "cannot set up libcurl: %s", strerror(-r));
                return false;
        }

        for (size_t i = 0; i < w->n_headers; i++) {
                const struct header *h = &w->headers[i];
                if (isempty(h->key) || strpbrk(h->key, ":\r\n \t"))
                        continue;
                STRV_FOREACH(val, h->values) {
                        if (strpbrk(*val, "\r\n"))
                                continue; /* never let a value inject headers */
                        _cleanup_free_ char *line = isempty(*val) ? strdup_printf("%s;", h->key)
                                                                  : strdup_printf("%s: %s", h->key, *val);
                        struct curl_slist *n = line ? curl_slist_append(hdrs, line) : NULL;
                        if (!n) {
                                snprintf(reason, reason_len, "out of memory");
                                return false;
                        }
                        hdrs = n;
                }
        }

        bool body = !isempty(payload) || streq(method, "POST") || streq(method, "PUT") || streq(method, "PATCH");
        const char *extra[] = { "Expect:", body && !has_header(w, "Content-Type") ? "Content-Type:" : NULL };
        for (size_t i = 0; i < ELEMENTSOF(extra); i++) {
                if (!extra[i])
                        continue;
                struct curl_slist *n = curl_slist_append(hdrs, extra[i]);
                if (!n) {
                        snprintf(reason, reason_len, "out of memory");
                        return false;
                }
                hdrs = n;
        }

        bool ok = http_set_url(c, url) == 0 &&
                  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_cb) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_sec) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) == CURLE_OK &&
                  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
        if (ok && streq(method, "HEAD"))
                ok = curl_easy_setopt(c, CURLOPT_NOBODY, 1L) == CURLE_OK;
        else if (ok && body) {
                ok = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(strempty(payload))) == CURLE_OK &&
                     curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, strempty(payload)) == CURLE_OK;
                if (ok && !streq(method, "POST"))
                        ok = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
        } else if (ok && !streq(method, "GET"))
                ok = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
        if (ok && !isempty(w->basic_auth_user) && !isempty(w->basic_auth_password)) {
                log_add_secret(w->basic_auth_password);
                ok = curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) == CURLE_OK &&
                     curl_easy_setopt(c, CURLOPT_USERNAME, w->basic_auth_user) == CURLE_OK &&
                     curl_easy_setopt(c, CURLOPT_PASSWORD, w->basic_auth_password) == CURLE_OK;
        }
        if (!ok) {
                snprintf(reason, reason_len, "cannot set up libcurl");
                return false;
        }

        const struct retry_policy policy = {
                .base_usec = WEBHOOK_BACKOFF_BASE_USEC,
                .cap_usec = WEBHOOK_BACKOFF_CAP_USEC,
                .deadline_usec = tries * ((uint64_t)timeout_sec * UINT64_C(1000000) + WEBHOOK_BACKOFF_CAP_USEC),
        };
        struct retry_state rs;
        retry_init(&rs, now_usec(), now_usec() ^ ((uint64_t)getpid() << 32));
        for (;;) {
                errbuf[0] = 0;
                CURLcode cc = curl_easy_perform(c);
                (*attempts)++;
                long status = 0;
                bool retry;
                if (cc == CURLE_OK) {
                        (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
                        snprintf(reason, reason_len, "HTTP %ld", status);
                        if (status < 400)
                                return true;
                        retry = http_status_retryable(status);
                } else {
                        snprintf(reason, reason_len, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
                        reason[strcspn(reason, "\n")] = 0;
                        retry = http_curl_retryable(cc);
                }
                if (!retry || *attempts >= tries)
                        return false;
                uint64_t d = retry_next_delay(&policy, &rs, now_usec());
                if (d == UINT64_MAX)
                        return false;
                log_debug("webhook: attempt %u failed: %s; next try in %.1f s", *attempts, reason, (double)d / 1e6);
                sleep_usec(d);
        }
}

void webhook_send(const struct config *c, const char *event) {
        webhook_send_event(c, event, NULL, NULL);
}

void webhook_send_event(const struct config *c, const char *event, const struct webhook_event_data *d, bool *disabled) {
        if (!c || isempty(event))
                return;

        bool any = false;
        for (size_t i = 0; i < c->install.n_webhooks; i++)
                if (streq_ptr(c->install.webhooks[i].event, event) && !(disabled && disabled[i]))
                        any = true;
        if (!any)
                return;

        /* A PROGRESS hook must not hold the install up: one short attempt, then no more. */
        bool progress = disabled != NULL;
        const char *after = progress ? "no more PROGRESS events go to it; the install goes on" : "the install goes on";
        struct webhook_values v;
        webhook_values_collect(c, &v);
        if (d)
                v.ev = *d;

        for (size_t i = 0; i < c->install.n_webhooks; i++) {
                const struct webhook *w = &c->install.webhooks[i];
                if (!streq_ptr(w->event, event) || (disabled && disabled[i]))
                        continue;
                const char *method = isempty(w->method) ? "GET" : w->method;
                if (!isempty(w->basic_auth_password))
                        log_add_secret(w->basic_auth_password);

                _cleanup_free_ char *url = NULL, *payload = NULL;
                const char *err = NULL;
                int r = webhook_render(w->url, &v, &url, &err);
                if (r == -ENOMEM) {
                        log_oom();
                        continue;
                }
                if (r < 0) {
                        log_warning("webhook %s: %s: the url template '%s' is invalid (%s); not sent, %s.",
                                    event, method, strempty(w->url), err, after);
                        if (disabled)
                                disabled[i] = true;
                        continue;
                }
                _cleanup_free_ char *shown = url_redact(url);
                if (!shown) {
                        log_oom();
                        continue;
                }
                r = webhook_render(w->payload, &v, &payload, &err);
                if (r == -ENOMEM) {
                        log_oom();
                        continue;
                }
                if (r < 0) {
                        log_warning("webhook %s: %s %s: the payload template is invalid (%s); not sent, %s.",
                                    event, method, shown, err, after);
                        if (disabled)
                                disabled[i] = true;
                        continue;
                }

                char reason[CURL_ERROR_SIZE + 64];
                unsigned attempts = 0;
                if (deliver(w, method, url, payload, progress ? WEBHOOK_PROGRESS_TIMEOUT_SEC : WEBHOOK_TIMEOUT_SEC,
                            progress ? 1 : WEBHOOK_TRIES, reason, sizeof(reason), &attempts)) {
                        if (progress)
                                log_debug("webhook %s (%s%s%s): %s %s: %s", event, strempty(v.ev.stage),
                                          v.ev.percent ? " " : "", v.ev.percent ? v.ev.percent : "", method, shown, reason);
                        else
                                log_info("webhook %s: %s %s: %s", event, method, shown, reason);
                } else {
                        log_warning("webhook %s: %s %s failed: %s (%u %s); %s.", event, method, shown, reason, attempts,
                                    attempts == 1 ? "attempt" : "attempts", after);
                        if (disabled)
                                disabled[i] = true;
                }
        }

        webhook_values_done(&v);
}
