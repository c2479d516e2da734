/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by every part of the agent: cleanup attributes, string vectors, parsing. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_ __attribute__((warn_unused_result))
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define STRV_FOREACH(s, l) for (char **s = (l); s && *s; s++)

static inline const char *strempty(const char *s) { return s ? s : ""; }
static inline bool isempty(const char *s) { return !s || !*s; }
static inline bool streq_ptr(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}
#define streq(a, b) (strcmp((a), (b)) == 0)

/* Steal a pointer: returns it and sets the variable to NULL, for handing ownership on. */
#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })

static inline void freep(void *p) { free(*(void **)p); }
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* A strv is a NULL-terminated array of malloc'ed strings; NULL is the empty strv. */
size_t strv_length(char *const *l);
void strv_free(char **l);
static inline void strv_freep(char ***l) { strv_free(*l); }
/* Appends a copy of s; returns 0 or -ENOMEM. */
int strv_push(char ***l, const char *s);
/* Appends s, taking ownership of it (freed on failure). */
int strv_consume(char ***l, char *s);
bool strv_contains(char *const *l, const char *s);
char **strv_copy(char *const *l);
/* Joins with sep; returns a new string or NULL on allocation failure. */
char *strv_join(char *const *l, const char *sep);

/* A string map kept in insertion order (labels, sysctls, bond options ...): items[0..n) in the
 * order the keys were first set, read directly; a hash index (open addressing) makes kvmap_set()
 * and kvmap_get() take constant time on average, so 100,000 labels load in well under a second.
 * Zero-initialised is empty; only kvmap_set() adds. */
struct kv {
        char *key;
        char *value;
};
struct kvmap {
        struct kv *items;
        size_t n;
        size_t cap;      /* room in items */
        size_t *slots;   /* index + 1 into items, 0 for an empty slot; n_slots a power of two */
        size_t n_slots;
};
void kvmap_clear(struct kvmap *m);
/* Sets key to value (replacing an existing value); copies both. */
int kvmap_set(struct kvmap *m, const char *key, const char *value);
const char *kvmap_get(const struct kvmap *m, const char *key);

/* strdup that aborts on allocation failure is NOT used: callers check for NULL and return -ENOMEM. */
char *strdup_printf(const char *fmt, ...) _printf_(1, 2);

/* Parses a decimal integer (optional leading '-'), the whole string, no spaces. 0 or -EINVAL/-ERANGE. */
int parse_int64(const char *s, int64_t *ret);
/* Parses a boolean spelled true/false/yes/no/1/0/on/off (any case). 0 or -EINVAL. */
int parse_bool(const char *s, bool *ret);
/* Parses a size such as "150Gi", "512Mi", "1Ti" or a plain number of bytes. 0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *ret);
/* Formats bytes as "300 GiB" / "64 MiB" / "1.5 GiB" into buf. */
const char *format_bytes(char *buf, size_t len, uint64_t bytes);

/* Reads a whole file into a NUL-terminated buffer. 0 or -errno. */
int read_full_file(const char *path, char **ret, size_t *ret_len);
/* Writes data to path with the given mode, atomically (temp file + rename), fsynced. 0 or -errno. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Decodes one UTF-8 sequence at s into *cp; returns its length, or 0 if it is invalid
 * (overlong, surrogate, past U+10FFFF, truncated). */
size_t utf8_decode(const unsigned char *s, uint32_t *cp);
bool utf8_valid(const char *s);
/* Writes s as a double-quoted string valid both as JSON and as YAML: control and non-printable
 * characters escaped, invalid UTF-8 replaced by U+FFFD. */
void fputs_quoted(FILE *f, const char *s);

/* A copy of s safe to print on a terminal as one line: every control character (C0, DEL, C1),
 * newlines included, is written as an escape ("\r", "\n", "\t", "\x1b", "\u0085") and every
 * byte that is not valid UTF-8 as "\xNN"; the rest is copied. NULL on allocation failure. Every
 * log line goes through it (log.c), so bytes from outside cannot fake a line or move a cursor. */
char *escape_controls(const char *s);

/* Monotonic clock in microseconds. */
uint64_t now_usec(void);
