/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheme_version 1 schema as ONE table (schema.c), and everything driven by it:
 *  - canonicalisation of a document tree (aliases -> snake_case names, unknown-key warnings),
 *  - the merge of the kernel-argument tree over the file tree,
 *  - binding the merged tree to `struct config` (type errors with key path and position),
 *  - turning `struct config` back into a tree for printing (YAML / JSON, secrets redacted),
 *  - freeing the struct's fields and listing its secrets.
 * Also the problem list ("diags") that every part of the configuration engine reports into, and
 * key paths: "install.vip", "os.labels.\"topology.kubernetes.io/zone\"", "install.webhooks[0].url".
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "node.h"
#include <stdarg.h>

#include "util.h"

/* ---- Problems and warnings ---- */

struct diag {
        bool warning;
        char *path;    /* key path; "" for the document as a whole */
        char *message; /* what is wrong; never contains a secret value */
        char *where;   /* "config.yaml:3:5", "kernel command line", "not set", "default"; or NULL */
};

/* Beyond this many entries (a hostile or badly broken file), further ones are only counted. */
#define DIAGS_MAX 200

struct diags {
        struct diag *items;
        size_t n;
        size_t dropped_errors, dropped_warnings; /* not recorded: past DIAGS_MAX */
        bool oom; /* a problem could not be recorded: out of memory */
};

void diags_clear(struct diags *d);
/* Records a problem (warning=false) or a warning. 0 or -ENOMEM (then d->oom is set). */
int diags_add(struct diags *d, bool warning, const char *path, const char *where, const char *fmt, ...)
        _printf_(5, 6);
int diags_addv(struct diags *d, bool warning, const char *path, const char *where, const char *fmt, va_list ap)
        _printf_(5, 0);
/* Counts include the entries dropped past DIAGS_MAX. */
size_t diags_errors(const struct diags *d);
size_t diags_warnings(const struct diags *d);
/* "path: message (where)"; malloc'ed, NULL on OOM. */
char *diag_format(const struct diag *g);
/* Logs every warning (log_warning), then every problem (log_error), one line each. */
void diags_print(const struct diags *d);
/* The first entry (problem if !warning, else warning) for exactly this path, or NULL. */
const struct diag *diags_find(const struct diags *d, const char *path, bool warning);

/* ---- Positions and key paths ---- */

/* "name:line:column" for ORIGIN_FILE, "kernel command line" for ORIGIN_CMDLINE. malloc'ed. */
char *node_where(const struct node *n, const char *source_name);
/* parent + "." + key; a key holding anything but [A-Za-z0-9_-] is written in double quotes.
 * parent NULL or "" gives just the key. malloc'ed, NULL on OOM. */
char *path_join(const char *parent, const char *key);
/* parent + "[i]". */
char *path_index(const char *parent, size_t i);
/* Finds the node a path names in a tree (quoted keys and [N] indexes understood; [0] on a
 * single value that stands for a one-item list is the value itself). NULL if absent. */
struct node *node_lookup(const struct node *root, const char *path);
/* Whether two trees hold the same values (positions, origins and map order ignored). */
bool node_equal(const struct node *a, const struct node *b);

/* ---- The schema ---- */

enum schema_type {
        ST_STRING,  /* char * */
        ST_BOOL,    /* bool */
        ST_INT,     /* int64_t, decimal */
        ST_STRV,    /* char ** (a single scalar becomes a one-item list) */
        ST_KVMAP,   /* struct kvmap (values become strings) */
        ST_HEADERS, /* struct header * + size_t count: a map of string lists */
        ST_LIST,    /* array of structs (elem_size) + size_t count; a single map becomes one item */
        ST_STRUCT,  /* nested struct at offset (0: its fields live in the parent struct) */
        ST_TREE,    /* struct node *, kept as given (addons, chart values) */
        ST_IGNORED, /* a key Harvester knows that this installer does not use: warned, ignored */
};

enum {
        SF_SECRET = 1 << 0, /* never printed or logged */
        SF_URL = 1 << 1,    /* a URL: the password of any userinfo is a secret */
        SF_SECRET_VALUES = 1 << 2, /* a map (os.environment, system_settings): a value whose name looks
                                    * secret (schema_name_is_secret()), URL passwords and JSON
                                    * "password"/"auth"/"token"... strings inside values are secrets */
        SF_IFACE = 1 << 2,  /* list items may use the interface short forms (cmdline_parse_interface) */
        SF_CMDLINE_REPLACES = 1 << 3, /* ST_STRV: a list given on the kernel command line replaces the
                                       * file's list instead of being put in front of it (install.iso_url:
                                       * the mirrors of one release are named together) */
};

struct schema_field {
        const char *name;    /* canonical snake_case key */
        enum schema_type type;
        size_t offset;       /* of the member in the enclosing struct */
        unsigned flags;
        const char *aliases; /* space-separated other spellings (camelCase, singular ...) */
        const struct schema_field *fields; /* ST_STRUCT, ST_LIST: the members; NULL-name terminated */
        size_t elem_size;    /* ST_LIST */
        size_t count_offset; /* ST_LIST, ST_HEADERS: the size_t count in the enclosing struct */
};

/* The document root: an ST_STRUCT over struct config. */
const struct schema_field *schema_root(void);
/* The member of a struct (or list element) that key names: its canonical name, an alias, or any
 * spelling equal to one of those ignoring case and '_' (Harvester's loose key lookup). */
const struct schema_field *schema_child(const struct schema_field *parent, const char *key);
/* The field a canonical path names ("install.management_interface.mtu"; indexes allowed). */
const struct schema_field *schema_find(const char *path);

/*
 * Prepares one source's tree in place: renames aliased keys to their canonical names, warns about
 * unknown keys (their path and position) and about ignored ones, reports a key given twice under
 * two spellings, turns a single value into a one-item list where a list is expected, expands
 * interface short forms, and for a scalar key repeated on the kernel command line keeps the last
 * value (with a warning). Problems go to d. 0 or -ENOMEM.
 */
int schema_canonicalize(struct node *root, const char *source_name, struct diags *d);

/*
 * Merges the kernel-argument tree over the file tree (both canonicalised; ownership of both taken;
 * either may be NULL): scalars from the command line win; lists are concatenated, command-line
 * entries first, dropping file entries equal to a command-line entry; maps merge key by key, the
 * command line winning. 0 (*ret set, possibly NULL when both were NULL) or -ENOMEM.
 */
int schema_merge(struct node *cmdline, struct node *file, struct node **ret);

/* Binds a canonicalised tree to c's schema fields. Type errors go to d (key path and position).
 * 0 or -ENOMEM. */
int schema_bind(const struct node *root, struct config *c, const char *source_name, struct diags *d);

/* Frees every field the schema describes and zeroes it. */
void schema_free_fields(struct config *c);

/* The configuration as a tree: every schema key present (unset ones null/empty), snake_case;
 * secrets as "<redacted>" and URL passwords as "user:<redacted>@" unless show_secrets. */
int schema_to_tree(const struct config *c, bool show_secrets, struct node **ret);
/* Prints a tree as YAML (block style, strings double-quoted) or as JSON. 0 or -errno. */
int tree_print(const struct node *n, FILE *f, bool json);

/* Whether a header, variable or setting of this name holds a credential: Authorization, Auth,
 * or a name containing password, passwd, token, secret or credential (any case). */
bool schema_name_is_secret(const char *name);
/* Appends to *l the secrets inside one value of an SF_SECRET_VALUES map. 0 or -ENOMEM. */
int schema_value_secrets(const char *name, const char *value, char ***l);

/* Calls fn for every secret value held by c (SF_SECRET fields, URL passwords, secret webhook
 * headers, secrets inside os.environment and system_settings values). */
void schema_foreach_secret(const struct config *c, void (*fn)(const char *secret, void *userdata),
                           void *userdata);

/* ---- URLs ---- */

/* The password of a URL's userinfo ("https://u:p@h/" -> "p"), malloc'ed; NULL when none (or OOM). */
char *url_userinfo_password(const char *url);
/* A copy with the userinfo password replaced by "<redacted>" (other URLs copied). NULL on OOM. */
char *url_hide_password(const char *url);
