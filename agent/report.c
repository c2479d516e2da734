/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>

#include "agent-config.h"
#include "http.h"
#include "log.h"
#include "report.h"

static void stage_clear(struct report_stage *s) {
        free(s->name);
        *s = (struct report_stage) {};
}

static void disk_clear(struct report_disk *d) {
        free(d->role);
        free(d->name);
        free(d->node);
        free(d->by_id);
        free(d->model);
        free(d->serial);
        *d = (struct report_disk) {};
}

void report_done(struct install_report *r) {
        if (!r)
                return;
        free(r->harvester_version);
        free(r->os_name);
        free(r->kubernetes_version);
        free(r->rancher_version);
        free(r->mode);
        free(r->iso_url);
        free(r->iso_checksum);
        free(r->failure);
        for (size_t i = 0; i < r->n_stages; i++)
                stage_clear(&r->stages[i]);
        for (size_t i = 0; i < r->n_disks; i++)
                disk_clear(&r->disks[i]);
        *r = (struct install_report) {};
}

/* *p = a copy of v (NULL stays NULL). 0 or -ENOMEM. */
static int set_str(char **p, const char *v) {
        char *n = NULL;
        if (v && !(n = strdup(v)))
                return -ENOMEM;
        free(*p);
        *p = n;
        return 0;
}

uint64_t report_wall_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void report_stage_end(struct install_report *r, uint64_t mono_usec, uint64_t wall_usec) {
        if (r->n_stages == 0)
                return;
        struct report_stage *s = &r->stages[r->n_stages - 1];
        if (s->end_wall_usec)
                return;
        s->end_usec = mono_usec;
        s->end_wall_usec = wall_usec ? wall_usec : 1;
}

int report_stage_begin(struct install_report *r, const char *name, uint64_t mono_usec, uint64_t wall_usec) {
        report_stage_end(r, mono_usec, wall_usec);
        if (r->n_stages == REPORT_MAX_STAGES)
                return 0;
        char *n = strdup(strempty(name));
        if (!n)
                return -ENOMEM;
        r->stages[r->n_stages++] = (struct report_stage) {
                .name = n, .start_usec = mono_usec, .start_wall_usec = wall_usec,
        };
        return 0;
}

int report_set_config(struct install_report *r, const struct config *c) {
        char *url = NULL;
        /* install.iso_url's first mirror (the configured one when there is one URL) */
        const char *first = c->install.iso_urls ? c->install.iso_urls[0] : NULL;
        if (first && !(url = url_redact(first)))
                return -ENOMEM;
        free(r->iso_url);
        r->iso_url = url;
        return set_str(&r->mode, c->install.mode);
}

int report_set_release(struct install_report *r, const struct harvester_release *rel) {
        if (set_str(&r->harvester_version, rel->harvester) < 0 || set_str(&r->os_name, rel->os_name) < 0 ||
            set_str(&r->kubernetes_version, rel->kubernetes) < 0 || set_str(&r->rancher_version, rel->rancher) < 0)
                return -ENOMEM;
        return 0;
}

int report_set_iso(struct install_report *r, const char *digest, uint64_t size) {
        r->iso_size = size;
        return set_str(&r->iso_checksum, digest);
}

int report_set_disk(struct install_report *r, const char *role, const char *name, const struct disk_identity *id) {
        struct report_disk d = {};
        if (set_str(&d.role, role) < 0 || set_str(&d.name, name) < 0 ||
            (id && (set_str(&d.node, id->node) < 0 || set_str(&d.by_id, id->by_id) < 0 ||
                    set_str(&d.model, id->model) < 0 || set_str(&d.serial, id->serial) < 0))) {
                disk_clear(&d);
                return -ENOMEM;
        }
        d.size = id ? id->size : 0;
        for (size_t i = 0; i < r->n_disks; i++)
                if (streq_ptr(r->disks[i].role, role)) {
                        disk_clear(&r->disks[i]);
                        r->disks[i] = d;
                        return 0;
                }
        if (r->n_disks == ELEMENTSOF(r->disks)) {
                disk_clear(&d);
                return -E2BIG;
        }
        r->disks[r->n_disks++] = d;
        return 0;
}

int report_set_plan_disks(struct install_report *r, const struct config *c, const struct disk_plan *p) {
        const struct {
                const char *role, *name, *node;
        } disks[] = {
                { "install", c->install.device, disk_plan_install_disk(p) },
                { "data", c->install.data_disk, disk_plan_data_disk(p) },
        };
        for (size_t i = 0; i < ELEMENTSOF(disks); i++) {
                if (!disks[i].node)
                        continue;
                struct disk_identity id = {};
                bool found = disk_identify(disks[i].node, &id) >= 0;
                int q = report_set_disk(r, disks[i].role, disks[i].name ? disks[i].name : disks[i].node,
                                        found ? &id : NULL);
                disk_identity_done(&id);
                if (q < 0)
                        return q;
        }
        return 0;
}

int report_set_result(struct install_report *r, bool succeeded, const char *failure) {
        int q = set_str(&r->failure, succeeded ? NULL : failure);
        if (q < 0)
                return q;
        r->finished = true;
        r->succeeded = succeeded;
        return 0;
}

/* ---- JSON ---- */

/* "key": then the value: a string redacted and escaped, or null. */
static void put_key(FILE *f, const char *key, bool *first) {
        if (!*first)
                fputc(',', f);
        *first = false;
        fputs_quoted(f, key);
        fputc(':', f);
}

static void put_str(FILE *f, const char *key, const char *value, bool *first) {
        put_key(f, key, first);
        if (!value) {
                fputs("null", f);
                return;
        }
        _cleanup_free_ char *red = log_redact(value);
        /* Out of memory: a null beats an unredacted value. */
        if (red)
                fputs_quoted(f, red);
        else
                fputs("null", f);
}

static void put_u64(FILE *f, const char *key, uint64_t v, bool *first) {
        put_key(f, key, first);
        fprintf(f, "%" PRIu64, v);
}

/* RFC 3339 UTC with milliseconds, or null for 0. */
static void put_time(FILE *f, const char *key, uint64_t wall_usec, bool *first) {
        put_key(f, key, first);
        if (wall_usec == 0) {
                fputs("null", f);
                return;
        }
        time_t t = (time_t)(wall_usec / 1000000);
        struct tm tm;
        char buf[32];
        if (!gmtime_r(&t, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
                fputs("null", f);
                return;
        }
        fprintf(f, "\"%s.%03uZ\"", buf, (unsigned)(wall_usec % 1000000 / 1000));
}

int report_json(const struct install_report *r, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        bool first = true;

        fputc('{', f);
        put_str(f, "agent_version", AGENT_VERSION, &first);
        put_str(f, "harvester_version", r->harvester_version, &first);
        put_str(f, "os_name", r->os_name, &first);
        put_str(f, "kubernetes_version", r->kubernetes_version, &first);
        put_str(f, "rancher_version", r->rancher_version, &first);
        put_str(f, "mode", r->mode, &first);
        put_str(f, "result", !r->finished ? "running" : r->succeeded ? "succeeded" : "failed", &first);
        put_str(f, "failure", r->failure, &first);

        put_key(f, "iso", &first);
        bool ifirst = true;
        fputc('{', f);
        put_str(f, "url", r->iso_url, &ifirst);
        put_str(f, "checksum", r->iso_checksum, &ifirst);
        put_u64(f, "size", r->iso_size, &ifirst);
        fputc('}', f);

        put_key(f, "stages", &first);
        fputc('[', f);
        for (size_t i = 0; i < r->n_stages; i++) {
                const struct report_stage *s = &r->stages[i];
                bool sfirst = true;
                fputs(i ? ",{" : "{", f);
                put_str(f, "name", s->name, &sfirst);
                put_time(f, "start", s->start_wall_usec, &sfirst);
                put_time(f, "end", s->end_wall_usec, &sfirst);
                put_key(f, "seconds", &sfirst);
                if (s->end_wall_usec && s->end_usec >= s->start_usec)
                        fprintf(f, "%.3f", (double)(s->end_usec - s->start_usec) / 1e6);
                else
                        fputs("null", f);
                fputc('}', f);
        }
        fputc(']', f);

        put_key(f, "disks", &first);
        fputc('[', f);
        for (size_t i = 0; i < r->n_disks; i++) {
                const struct report_disk *d = &r->disks[i];
                bool dfirst = true;
                fputs(i ? ",{" : "{", f);
                put_str(f, "role", d->role, &dfirst);
                put_str(f, "name", d->name, &dfirst);
                put_str(f, "node", d->node, &dfirst);
                put_str(f, "by_id", d->by_id, &dfirst);
                put_str(f, "model", d->model, &dfirst);
                put_str(f, "serial", d->serial, &dfirst);
                put_u64(f, "size", d->size, &dfirst);
                fputc('}', f);
        }
        fputs("]}", f);

        bool failed = ferror(f);
        if (fclose(f) != 0 || failed)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* ---- The install's report ---- */

static struct install_report *current;

void report_set_current(struct install_report *r) {
        current = r;
}

struct install_report *report_current(void) {
        return current;
}

int report_write_oem(const char *oem_dir) {
        if (!current)
                return 0;
        /* A shallow copy with the result this file can only ever be read with (see report.h). */
        struct install_report committed = *current;
        committed.finished = true;
        committed.succeeded = true;
        committed.failure = NULL;
        _cleanup_free_ char *json = NULL, *dir = strdup_printf("%s/install", oem_dir),
                            *path = strdup_printf("%s/%s", oem_dir, REPORT_OEM_PATH);
        if (!dir || !path || report_json(&committed, &json) < 0)
                return log_oom();
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot make '%s': %s", dir, strerror(errno));
        size_t n = strlen(json);
        json[n] = '\n'; /* the memstream's NUL becomes the file's last newline */
        int r = write_file_atomic(path, json, n + 1, 0600);
        if (r < 0)
                return log_error_errno(r, "Cannot write the install report '%s': %s", path, strerror(-r));
        log_info("The install report is in COS_OEM/%s.", REPORT_OEM_PATH);
        return 0;
}
