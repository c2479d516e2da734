/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Disks chosen by rule. A selector is one string (it has to fit on the kernel line): terms separated
 * by commas, all of which must hold. A term is "field OP value":
 *   size        =, !=, <, <=, >, >=   a size: bytes, K M G T (KB ...: powers of 1000, as disks are
 *                                     sold) or Ki Mi Gi Ti (powers of 1024)
 *   rotational  =, !=                 true or false (queue/rotational)
 *   removable   =, !=                 true or false
 *   model vendor serial wwn           =, !=  a glob (fnmatch, any case); alternatives with '|'
 *   path                              =, !=  a glob over the disk's /dev/disk/by-path names
 *   bus                               =, !=  ata, scsi, nvme, virtio, usb, mmc ('|' for several)
 * Matching looks at every whole disk sysfs lists (disk_facts_list) and wants exactly one.
 */
#include <ctype.h>
#include <dirent.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <time.h>

#include "disk.h"
#include "diskselect.h"
#include "log.h"
#include "util.h"

static const char *const field_names[_DS_FIELD_MAX] = {
        [DS_SIZE] = "size",     [DS_ROTATIONAL] = "rotational", [DS_REMOVABLE] = "removable",
        [DS_MODEL] = "model",   [DS_VENDOR] = "vendor",         [DS_SERIAL] = "serial",
        [DS_WWN] = "wwn",       [DS_BUS] = "bus",               [DS_PATH] = "path",
};

static const char *const buses[] = { "ata", "scsi", "nvme", "virtio", "usb", "mmc" };

void disk_selector_done(struct disk_selector *s) {
        if (!s)
                return;
        free(s->text);
        for (size_t i = 0; i < s->n_terms; i++)
                free(s->terms[i].pattern);
        free(s->terms);
        *s = (struct disk_selector) {};
}

/* "100G", "1.5" is not; K M G T (and KB ...) are powers of 1000, Ki Mi Gi Ti (and KiB ...) of 1024. */
static int parse_disk_size(const char *s, uint64_t *ret) {
        static const struct {
                const char *suffix;
                uint64_t mult;
        } dec[] = { { "", 1 }, { "B", 1 }, { "K", UINT64_C(1000) }, { "KB", UINT64_C(1000) },
                    { "M", UINT64_C(1000000) }, { "MB", UINT64_C(1000000) }, { "G", UINT64_C(1000000000) },
                    { "GB", UINT64_C(1000000000) }, { "T", UINT64_C(1000000000000) }, { "TB", UINT64_C(1000000000000) } };
        if (isempty(s) || !isdigit((unsigned char)s[0]))
                return -EINVAL;
        size_t n = strlen(s);
        if (n > 3 && streq(s + n - 2, "iB")) { /* "GiB": parse_size knows "Gi" */
                _cleanup_free_ char *t = strndup(s, n - 1);
                return t ? parse_size(t, ret) : -ENOMEM;
        }
        if (n > 2 && s[n - 1] == 'i')
                return parse_size(s, ret);
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        for (size_t i = 0; i < ELEMENTSOF(dec); i++) {
                if (!streq(end, dec[i].suffix))
                        continue;
                if (v > UINT64_MAX / dec[i].mult)
                        return -ERANGE;
                *ret = (uint64_t)v * dec[i].mult;
                return 0;
        }
        return -EINVAL;
}

static int parse_term(const char *term, struct ds_term *t, char **ret_error) {
        size_t flen = 0;
        while (term[flen] >= 'a' && term[flen] <= 'z')
                flen++;
        const char *o = term + flen;
        enum ds_op op;
        size_t olen = 2;
        if (strncmp(o, ">=", 2) == 0)
                op = DS_GE;
        else if (strncmp(o, "<=", 2) == 0)
                op = DS_LE;
        else if (strncmp(o, "!=", 2) == 0)
                op = DS_NE;
        else {
                olen = 1;
                if (*o == '=')
                        op = DS_EQ;
                else if (*o == '<')
                        op = DS_LT;
                else if (*o == '>')
                        op = DS_GT;
                else {
                        *ret_error = strdup_printf("term \"%s\" is not field=value (or field OP value with OP one of != < <= > >=)", term);
                        return -EINVAL;
                }
        }
        int field = -1;
        for (int i = 0; i < _DS_FIELD_MAX; i++)
                if (strlen(field_names[i]) == flen && strncmp(term, field_names[i], flen) == 0)
                        field = i;
        if (field < 0) {
                *ret_error = strdup_printf("unknown field \"%.*s\" in \"%s\": use size, rotational, removable, model, vendor, serial, wwn, bus or path",
                                           (int)flen, term, term);
                return -EINVAL;
        }
        const char *val = o + olen;
        if (isempty(val)) {
                *ret_error = strdup_printf("term \"%s\" has no value", term);
                return -EINVAL;
        }
        if (field != DS_SIZE && op != DS_EQ && op != DS_NE) {
                *ret_error = strdup_printf("\"%s\" takes = or != only (in \"%s\")", field_names[field], term);
                return -EINVAL;
        }
        t->field = (enum ds_field)field;
        t->op = op;
        switch (t->field) {
        case DS_SIZE: {
                int r = parse_disk_size(val, &t->bytes);
                if (r < 0) {
                        *ret_error = strdup_printf("\"%s\" in \"%s\" is not a size: a whole number of bytes, or with K, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024)",
                                                   val, term);
                        return -EINVAL;
                }
                return 0;
        }
        case DS_ROTATIONAL:
        case DS_REMOVABLE:
                if (parse_bool(val, &t->flag) < 0) {
                        *ret_error = strdup_printf("\"%s\" in \"%s\" is not true or false", val, term);
                        return -EINVAL;
                }
                return 0;
        case DS_BUS: {
                /* Every alternative a bus we can tell. */
                const char *p = val;
                for (;;) {
                        size_t n = strcspn(p, "|");
                        bool known = false;
                        for (size_t i = 0; i < ELEMENTSOF(buses); i++)
                                known = known || (strlen(buses[i]) == n && strncasecmp(p, buses[i], n) == 0);
                        if (!known) {
                                *ret_error = strdup_printf("unknown bus \"%.*s\" in \"%s\": use ata, scsi, nvme, virtio, usb or mmc (several with |)",
                                                           (int)n, p, term);
                                return -EINVAL;
                        }
                        if (!p[n])
                                break;
                        p += n + 1;
                }
                break;
        }
        default:
                break;
        }
        t->pattern = strdup(val);
        return t->pattern ? 0 : -ENOMEM;
}

int disk_selector_parse(const char *text, struct disk_selector *ret, char **ret_error) {
        _cleanup_(disk_selector_done) struct disk_selector s = {};
        _cleanup_free_ char *error = NULL, *copy = NULL;
        int r = -EINVAL;

        if (isempty(text))
                error = strdup("it is empty");
        else if (text[0] == '/')
                error = strdup("a selector does not start with /");
        else {
                for (const char *c = text; *c; c++)
                        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
                                error = strdup("it holds a character other than printable ASCII");
                                goto fail;
                        }
                copy = strdup(text);
                s.text = strdup(text);
                if (!copy || !s.text)
                        return -ENOMEM;
                for (char *p = copy; p;) {
                        char *comma = strchr(p, ',');
                        if (comma)
                                *comma = 0;
                        if (!*p) {
                                error = strdup("an empty term (two commas, or a comma at the start or end)");
                                goto fail;
                        }
                        struct ds_term *m = realloc(s.terms, (s.n_terms + 1) * sizeof *m);
                        if (!m)
                                return -ENOMEM;
                        s.terms = m;
                        s.terms[s.n_terms] = (struct ds_term) {};
                        r = parse_term(p, &s.terms[s.n_terms], &error);
                        if (r < 0)
                                goto fail;
                        s.n_terms++;
                        p = comma ? comma + 1 : NULL;
                }
                *ret = s;
                s = (struct disk_selector) {};
                return 0;
        }
fail:
        if (r == -ENOMEM || !error)
                return -ENOMEM; /* the message itself could not be allocated */
        if (ret_error)
                *ret_error = TAKE_PTR(error);
        return -EINVAL;
}

/* value matches one of pattern's '|' alternatives (fnmatch, any case); never when unknown. */
static bool glob_any(const char *pattern, const char *value) {
        if (!value)
                return false;
        _cleanup_free_ char *copy = strdup(pattern);
        if (!copy)
                return false;
        char *save = NULL;
        for (char *alt = strtok_r(copy, "|", &save); alt; alt = strtok_r(NULL, "|", &save))
                if (fnmatch(alt, value, FNM_CASEFOLD) == 0)
                        return true;
        return false;
}

static bool term_holds(const struct ds_term *t, const struct disk_facts *f) {
        bool eq = false;
        switch (t->field) {
        case DS_SIZE:
                switch (t->op) {
                case DS_EQ: return f->size == t->bytes;
                case DS_NE: return f->size != t->bytes;
                case DS_LT: return f->size < t->bytes;
                case DS_LE: return f->size <= t->bytes;
                case DS_GT: return f->size > t->bytes;
                case DS_GE: return f->size >= t->bytes;
                }
                return false;
        case DS_ROTATIONAL:
        case DS_REMOVABLE: {
                int v = t->field == DS_ROTATIONAL ? f->rotational : f->removable;
                eq = v >= 0 && (v > 0) == t->flag; /* unknown: never equal */
                break;
        }
        case DS_MODEL: eq = glob_any(t->pattern, f->model); break;
        case DS_VENDOR: eq = glob_any(t->pattern, f->vendor); break;
        case DS_SERIAL: eq = glob_any(t->pattern, f->serial); break;
        case DS_WWN: eq = glob_any(t->pattern, f->wwn); break;
        case DS_BUS: eq = glob_any(t->pattern, f->bus); break;
        case DS_PATH:
                STRV_FOREACH(p, f->by_path)
                        eq = eq || glob_any(t->pattern, *p);
                break;
        default:
                return false;
        }
        return t->op == DS_NE ? !eq : eq;
}

bool disk_selector_match(const struct disk_selector *s, const struct disk_facts *f) {
        if (!s || s->n_terms == 0)
                return false;
        for (size_t i = 0; i < s->n_terms; i++)
                if (!term_holds(&s->terms[i], f))
                        return false;
        return true;
}

/* Whether component c of a sysfs path is prefix followed by digits only ("ata1", "host0"). */
static bool component_is(const char *c, size_t n, const char *prefix) {
        size_t p = strlen(prefix);
        if (n <= p || strncmp(c, prefix, p) != 0)
                return false;
        for (size_t i = p; i < n; i++)
                if (!isdigit((unsigned char)c[i]))
                        return false;
        return true;
}

/* The bus udev would name (ID_BUS), from where the disk sits in /sys/devices. */
static const char *bus_of(const char *root, const char *sysname) {
        _cleanup_free_ char *link = strdup_printf("%s/sys/block/%s", root, sysname);
        _cleanup_free_ char *real = link ? realpath(link, NULL) : NULL;
        if (strncmp(sysname, "nvme", 4) == 0)
                return "nvme";
        if (strncmp(sysname, "mmcblk", 6) == 0)
                return "mmc";
        if (!real)
                return NULL;
        bool usb = false, ata = false, scsi = false, virtio = false, nvme = false;
        for (const char *c = real; *c;) {
                c += strspn(c, "/");
                size_t n = strcspn(c, "/");
                usb = usb || component_is(c, n, "usb");
                ata = ata || component_is(c, n, "ata");
                scsi = scsi || component_is(c, n, "host");
                virtio = virtio || component_is(c, n, "virtio");
                nvme = nvme || (n == 4 && strncmp(c, "nvme", 4) == 0);
                c += n;
        }
        /* The outermost transport wins: USB storage and libata both sit on a SCSI host. */
        return nvme ? "nvme" : usb ? "usb" : ata ? "ata" : scsi ? "scsi" : virtio ? "virtio" : NULL;
}

static bool not_a_disk(const char *name) {
        static const char *const skip[] = { "loop", "ram", "zram", "sr", "fd", "dm-", "md", "nbd", "mtdblock" };
        if (name[0] == '.')
                return true;
        for (size_t i = 0; i < ELEMENTSOF(skip); i++)
                if (strncmp(name, skip[i], strlen(skip[i])) == 0)
                        return true;
        return false;
}

static int tristate(const char *root, const char *sysname, const char *attr) {
        _cleanup_free_ char *s = disk_sysfs_attr(root, sysname, attr);
        return !s ? -1 : streq(s, "1") ? 1 : streq(s, "0") ? 0 : -1;
}

/* The device's own bytes reach consoles and webhooks: printable ASCII only, empty is unknown. */
static char *printable(char *s) {
        if (isempty(s)) {
                free(s);
                return NULL;
        }
        for (char *c = s; *c; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                        *c = '?';
        return s;
}

static void facts_done(struct disk_facts *f) {
        free(f->sysname);
        free(f->node);
        free(f->model);
        free(f->vendor);
        free(f->serial);
        free(f->wwn);
        free(f->by_id);
        strv_free(f->by_path);
        *f = (struct disk_facts) {};
}

void disk_facts_free(struct disk_facts *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                facts_done(&l[i]);
        free(l);
}

static int facts_fill(const char *root, const char *name, struct disk_facts *f) {
        f->sysname = strdup(name);
        f->node = strdup_printf("%s/dev/%s", root, name);
        if (!f->sysname || !f->node)
                return -ENOMEM;
        _cleanup_free_ char *size = disk_sysfs_attr(root, name, "size");
        int64_t v;
        f->size = size && parse_int64(size, &v) >= 0 && v > 0 ? (uint64_t)v * 512 : 0;
        f->rotational = tristate(root, name, "queue/rotational");
        f->removable = tristate(root, name, "removable");
        f->read_only = tristate(root, name, "ro") == 1;
        f->model = printable(disk_sysfs_attr(root, name, "device/model"));
        f->vendor = printable(disk_sysfs_attr(root, name, "device/vendor"));
        f->serial = printable(disk_sysfs_serial(root, name));
        f->wwn = printable(disk_sysfs_attr(root, name, "wwid"));
        if (!f->wwn)
                f->wwn = printable(disk_sysfs_attr(root, name, "device/wwid"));
        f->bus = bus_of(root, name);
        f->by_id = disk_udev_by_id(root, name);
        return disk_udev_links(root, "by-path", name, &f->by_path);
}

int disk_facts_list(const char *root, struct disk_facts **ret, size_t *ret_n) {
        _cleanup_free_ char *dir = strdup_printf("%s/sys/block", root);
        struct disk_facts *l = NULL;
        size_t n = 0;
        int r = 0;
        if (!dir)
                return -ENOMEM;
        DIR *d = opendir(dir);
        if (!d)
                return -errno;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (not_a_disk(de->d_name))
                        continue;
                struct disk_facts *m = realloc(l, (n + 1) * sizeof *m);
                if (!m) {
                        r = -ENOMEM;
                        break;
                }
                l = m;
                l[n] = (struct disk_facts) {};
                r = facts_fill(root, de->d_name, &l[n++]);
                if (r < 0)
                        break;
        }
        closedir(d);
        if (r < 0) {
                disk_facts_free(l, n);
                return r;
        }
        for (size_t i = 1; i < n; i++) /* by name: stable listings */
                for (size_t j = i; j > 0 && strcmp(l[j - 1].sysname, l[j].sysname) > 0; j--) {
                        struct disk_facts x = l[j];
                        l[j] = l[j - 1];
                        l[j - 1] = x;
                }
        *ret = l;
        *ret_n = n;
        return 0;
}

/* field=value, quoted when the value holds a blank, "-" when unknown. */
static int put(FILE *f, const char *field, const char *value) {
        if (isempty(value))
                return fprintf(f, " %s=-", field);
        if (strpbrk(value, " \t"))
                return fprintf(f, " %s=\"%s\"", field, value);
        return fprintf(f, " %s=%s", field, value);
}

char *disk_facts_format(const struct disk_facts *d) {
        char *buf = NULL, b[32];
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        fprintf(f, "/dev/%s size=%" PRIu64 " (%s)", d->sysname, d->size, format_bytes(b, sizeof b, d->size));
        put(f, "rotational", d->rotational < 0 ? NULL : d->rotational ? "true" : "false");
        put(f, "removable", d->removable < 0 ? NULL : d->removable ? "true" : "false");
        put(f, "bus", d->bus);
        put(f, "model", d->model);
        put(f, "vendor", d->vendor);
        put(f, "serial", d->serial);
        put(f, "wwn", d->wwn);
        _cleanup_free_ char *paths = strv_join(d->by_path, "|");
        put(f, "path", paths);
        fprintf(f, " by-id %s", d->by_id ? d->by_id : "-");
        if (d->excluded)
                fprintf(f, " (never chosen: %s)", d->excluded);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static const char *exclusion(const struct disk_facts *f, const struct ds_exclude *excl, size_t n_excl) {
        for (size_t i = 0; i < n_excl; i++)
                if (excl[i].sysname && streq(excl[i].sysname, f->sysname))
                        return excl[i].why;
        if (f->size == 0)
                return "no medium (size 0)";
        if (f->read_only)
                return "read-only";
        return NULL;
}

int disk_select(const char *root, const char *key, const char *text, const struct ds_exclude *excl, size_t n_excl,
                uint64_t deadline, char **ret_node, char ***ret_listing) {
        _cleanup_(disk_selector_done) struct disk_selector sel = {};
        _cleanup_free_ char *error = NULL;
        struct disk_facts *l = NULL;
        size_t n = 0, n_match = 0, pick = 0;
        bool said = false;
        int r;

        r = disk_selector_parse(text, &sel, &error);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(EINVAL, "%s \"%s\" is not a disk selector: %s.", key, text, strempty(error));
        for (;;) {
                r = disk_facts_list(root, &l, &n);
                if (r < 0)
                        return log_error_errno(r, "Cannot list the disks in %s/sys/block: %s", root, strerror(-r));
                n_match = 0;
                for (size_t i = 0; i < n; i++) {
                        l[i].excluded = exclusion(&l[i], excl, n_excl);
                        if (!l[i].excluded && disk_selector_match(&sel, &l[i]) && n_match++ == 0)
                                pick = i;
                }
                uint64_t now = now_usec();
                if (n_match > 0 || now >= deadline)
                        break;
                if (!said) {
                        log_info("Waiting up to %" PRIu64 " s for a disk matching %s \"%s\".", (deadline - now + 999999) / 1000000,
                                 key, text);
                        said = true;
                }
                disk_facts_free(l, n);
                l = NULL;
                n = 0;
                struct timespec ts = { 0, 250 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }

        if (n_match != 1) {
                _cleanup_strv_free_ char **matched = NULL;
                /* The list first: the last error is the one the FAILED line and webhook carry. */
                log_error("The disks this machine has (\"match\": %s \"%s\" holds for it):", key, text);
                for (size_t i = 0; i < n; i++) {
                        bool m = !l[i].excluded && disk_selector_match(&sel, &l[i]);
                        _cleanup_free_ char *line = disk_facts_format(&l[i]);
                        _cleanup_free_ char *name = strdup_printf("/dev/%s", l[i].sysname);
                        if (!line || !name || (m && strv_push(&matched, name) < 0)) {
                                disk_facts_free(l, n);
                                return log_oom();
                        }
                        log_error("  %-5s %s", m ? "match" : "", line);
                }
                if (n == 0)
                        log_error("  none: is the storage controller's driver in the initrd?");
                disk_facts_free(l, n);
                if (n_match == 0)
                        return log_error_errno(ENODEV, "%s \"%s\" matched no disk (%zu listed above): exactly one must match. Change the selector, or name the disk by its /dev/disk/by-id path.",
                                               key, text, n);
                _cleanup_free_ char *names = strv_join(matched, ", ");
                return log_error_errno(ENOTUNIQ, "%s \"%s\" matched %zu disks (%s): exactly one must match. Add a term that tells them apart (serial=..., path=...), or name the disk by its /dev/disk/by-id path.",
                                       key, text, n_match, strempty(names));
        }

        _cleanup_strv_free_ char **listing = NULL;
        for (size_t i = 0; ret_listing && i < n; i++) {
                _cleanup_free_ char *line = disk_facts_format(&l[i]);
                if (!line || strv_consume(&listing, strdup_printf("%s %s", i == pick ? "*" : " ", line)) < 0) {
                        disk_facts_free(l, n);
                        return log_oom();
                }
        }
        _cleanup_free_ char *chosen = disk_facts_format(&l[pick]);
        log_info("%s \"%s\" chose %s", key, text, chosen ? chosen : l[pick].node);
        char *node = TAKE_PTR(l[pick].node);
        disk_facts_free(l, n);
        *ret_node = node;
        if (ret_listing)
                *ret_listing = TAKE_PTR(listing);
        return 0;
}
