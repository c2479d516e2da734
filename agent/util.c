/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

size_t strv_length(char *const *l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

void strv_free(char **l) {
        STRV_FOREACH(s, l)
                free(*s);
        free(l);
}

int strv_consume(char ***l, char *s) {
        if (!s)
                return -ENOMEM;
        size_t n = strv_length(*l);
        char **m = realloc(*l, (n + 2) * sizeof(char *));
        if (!m) {
                free(s);
                return -ENOMEM;
        }
        m[n] = s;
        m[n + 1] = NULL;
        *l = m;
        return 0;
}

int strv_push(char ***l, const char *s) {
        return strv_consume(l, strdup(s));
}

bool strv_contains(char *const *l, const char *s) {
        for (size_t i = 0; l && l[i]; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

char **strv_copy(char *const *l) {
        char **r = calloc(strv_length(l) + 1, sizeof(char *));
        if (!r)
                return NULL;
        for (size_t i = 0; l && l[i]; i++) {
                r[i] = strdup(l[i]);
                if (!r[i]) {
                        strv_free(r);
                        return NULL;
                }
        }
        return r;
}

char *strv_join(char *const *l, const char *sep) {
        size_t len = 1, k = strlen(sep);
        for (size_t i = 0; l && l[i]; i++)
                len += strlen(l[i]) + k;
        char *r = malloc(len), *p = r;
        if (!r)
                return NULL;
        *p = 0;
        for (size_t i = 0; l && l[i]; i++) {
                if (i > 0)
                        p = stpcpy(p, sep);
                p = stpcpy(p, l[i]);
        }
        return r;
}

void kvmap_clear(struct kvmap *m) {
        for (size_t i = 0; i < m->n; i++) {
                free(m->items[i].key);
                free(m->items[i].value);
        }
        free(m->items);
        free(m->slots);
        *m = (struct kvmap){};
}

/* FNV-1a. */
static size_t hash_string(const char *s) {
        uint64_t h = UINT64_C(14695981039346656037);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                h = (h ^ *p) * UINT64_C(1099511628211);
        return (size_t)(h ^ (h >> 32));
}

/* The slot that holds key, or the empty slot where it would go. */
static size_t *kvmap_slot(const struct kvmap *m, const char *key) {
        size_t mask = m->n_slots - 1;
        for (size_t i = hash_string(key) & mask;; i = (i + 1) & mask) {
                size_t *s = &m->slots[i];
                if (*s == 0 || streq(m->items[*s - 1].key, key))
                        return s;
        }
}

/* Keeps the index at most half full. */
static int kvmap_grow_index(struct kvmap *m) {
        if (m->n_slots > 0 && (m->n + 1) * 2 <= m->n_slots)
                return 0;
        size_t n_slots = m->n_slots ? m->n_slots * 2 : 16;
        if (n_slots > SIZE_MAX / sizeof(size_t) / 2)
                return -ENOMEM;
        size_t *slots = calloc(n_slots, sizeof(size_t));
        if (!slots)
                return -ENOMEM;
        free(m->slots);
        m->slots = slots;
        m->n_slots = n_slots;
        for (size_t i = 0; i < m->n; i++)
                *kvmap_slot(m, m->items[i].key) = i + 1;
        return 0;
}

int kvmap_set(struct kvmap *m, const char *key, const char *value) {
        if (kvmap_grow_index(m) < 0)
                return -ENOMEM;
        char *v = strdup(value);
        if (!v)
                return -ENOMEM;
        size_t *slot = kvmap_slot(m, key);
        if (*slot) {
                free(m->items[*slot - 1].value);
                m->items[*slot - 1].value = v;
                return 0;
        }
        if (m->n == m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 8;
                struct kv *items = cap < SIZE_MAX / sizeof(struct kv) ? realloc(m->items, cap * sizeof(struct kv)) : NULL;
                if (!items) {
                        free(v);
                        return -ENOMEM;
                }
                m->items = items;
                m->cap = cap;
        }
        char *k = strdup(key);
        if (!k) {
                free(v);
                return -ENOMEM;
        }
        m->items[m->n++] = (struct kv){ k, v };
        *slot = m->n;
        return 0;
}

const char *kvmap_get(const struct kvmap *m, const char *key) {
        if (m->n_slots == 0)
                return NULL;
        size_t s = *kvmap_slot(m, key);
        return s ? m->items[s - 1].value : NULL;
}

char *strdup_printf(const char *fmt, ...) {
        va_list ap;
        char *r = NULL;
        va_start(ap, fmt);
        if (vasprintf(&r, fmt, ap) < 0)
                r = NULL;
        va_end(ap);
        return r;
}

int parse_int64(const char *s, int64_t *ret) {
        if (isempty(s))
                return -EINVAL;
        const char *p = s;
        if (*p == '-')
                p++;
        if (!*p)
                return -EINVAL;
        for (const char *q = p; *q; q++)
                if (!isdigit((unsigned char)*q))
                        return -EINVAL;
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "true", "yes", "1", "on" };
        static const char *const no[] = { "false", "no", "0", "off" };
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

int parse_size(const char *s, uint64_t *ret) {
        static const struct {
                const char *suffix;
                unsigned shift;
        } units[] = { { "Ki", 10 }, { "Mi", 20 }, { "Gi", 30 }, { "Ti", 40 }, { "", 0 } };
        if (isempty(s) || !isdigit((unsigned char)s[0]))
                return -EINVAL;
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                if (!streq(end, units[i].suffix))
                        continue;
                if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
                        return -ERANGE;
                *ret = (uint64_t)v << units[i].shift;
                return 0;
        }
        return -EINVAL;
}

const char *format_bytes(char *buf, size_t len, uint64_t bytes) {
        static const char *const names[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
        size_t i = 0;
        double v = (double)bytes;
        while (v >= 1024.0 && i + 1 < ELEMENTSOF(names)) {
                v /= 1024.0;
                i++;
        }
        if (i == 0 || v == (double)(uint64_t)v)
                snprintf(buf, len, "%llu %s", (unsigned long long)v, names[i]);
        else
                snprintf(buf, len, "%.1f %s", v, names[i]);
        return buf;
}

int read_full_file(const char *path, char **ret, size_t *ret_len) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        size_t cap = 4096, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (cap - len < 2) {
                        if (cap > (SIZE_MAX >> 2))
                                return -EFBIG;
                        char *n = realloc(buf, cap * 2);
                        if (!n)
                                return -ENOMEM;
                        buf = n;
                        cap *= 2;
                }
                size_t k = fread(buf + len, 1, cap - len - 1, f);
                len += k;
                if (k == 0) {
                        if (ferror(f))
                                return -EIO;
                        break;
                }
        }
        buf[len] = 0;
        if (ret_len)
                *ret_len = len;
        *ret = TAKE_PTR(buf);
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode) {
        _cleanup_free_ char *tmp = strdup_printf("%s.tmpXXXXXX", path);
        if (!tmp)
                return -ENOMEM;
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = 0;
        if (fchmod(fd, mode) < 0)
                r = -errno;
        for (size_t off = 0; r == 0 && off < len;) {
                ssize_t k = write(fd, (const char *)data + off, len - off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                } else
                        off += (size_t)k;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

/* Decodes one UTF-8 sequence at s; returns its length, or 0 if invalid. */
size_t utf8_decode(const unsigned char *s, uint32_t *cp) {
        if (s[0] < 0x80) {
                *cp = s[0];
                return 1;
        }
        size_t len;
        uint32_t c;
        if ((s[0] & 0xe0) == 0xc0) {
                len = 2;
                c = s[0] & 0x1f;
        } else if ((s[0] & 0xf0) == 0xe0) {
                len = 3;
                c = s[0] & 0x0f;
        } else if ((s[0] & 0xf8) == 0xf0) {
                len = 4;
                c = s[0] & 0x07;
        } else
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3f);
        }
        static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                return 0;
        *cp = c;
        return len;
}

/* A double-quoted string, valid both as JSON and as YAML: control and non-printable characters
 * escaped, invalid UTF-8 replaced by U+FFFD. */
void fputs_quoted(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *)s; *p;) {
                uint32_t cp;
                size_t len = utf8_decode(p, &cp);
                if (len == 0) {
                        fputs("\\ufffd", f);
                        p++;
                        continue;
                }
                switch (cp) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                default:
                        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0xfeff ||
                            cp == 0xfffe || cp == 0xffff || cp == 0x2028 || cp == 0x2029)
                                fprintf(f, "\\u%04x", (unsigned)cp);
                        else
                                fwrite(p, 1, len, f);
                }
                p += len;
        }
        fputc('"', f);
}

char *escape_controls(const char *s) {
        size_t n = strlen(s);
        /* The longest escape, "\u0085", is 6 bytes for a 2-byte sequence; "\x1b" 4 for 1. */
        char *out = malloc(n * 4 + 1), *w = out;
        if (!out)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)s; *p;) {
                uint32_t cp;
                size_t len = utf8_decode(p, &cp);
                if (len == 0) {
                        w += sprintf(w, "\\x%02x", *p);
                        p++;
                        continue;
                }
                if (cp == '\n')
                        w = stpcpy(w, "\\n");
                else if (cp == '\r')
                        w = stpcpy(w, "\\r");
                else if (cp == '\t')
                        w = stpcpy(w, "\\t");
                else if (cp < 0x20 || cp == 0x7f)
                        w += sprintf(w, "\\x%02x", (unsigned)cp);
                else if (cp >= 0x80 && cp <= 0x9f)
                        w += sprintf(w, "\\u%04x", (unsigned)cp);
                else {
                        memcpy(w, p, len);
                        w += len;
                }
                p += len;
        }
        *w = 0;
        return out;
}

bool utf8_valid(const char *s) {
        uint32_t cp;
        for (const unsigned char *p = (const unsigned char *)s; *p;) {
                size_t len = utf8_decode(p, &cp);
                if (len == 0)
                        return false;
                p += len;
        }
        return true;
}

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}
