/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Disks chosen by rule (issue 13): install.device and install.data_disk may hold a selector instead
 * of a /dev path, e.g. "size>=300G,rotational=false,bus=nvme". The parser is pure (used by the
 * configuration's validation); the matcher reads what sysfs and udev say about every whole disk
 * (below a root directory, so that tests run on fake trees) and picks exactly one.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum ds_field { DS_SIZE, DS_ROTATIONAL, DS_REMOVABLE, DS_MODEL, DS_VENDOR, DS_SERIAL, DS_WWN, DS_BUS, DS_PATH, _DS_FIELD_MAX };
enum ds_op { DS_EQ, DS_NE, DS_LT, DS_LE, DS_GT, DS_GE };

struct ds_term {
        enum ds_field field;
        enum ds_op op;
        char *pattern;  /* string fields: an fnmatch glob, compared case-insensitively */
        uint64_t bytes; /* DS_SIZE */
        bool flag;      /* DS_ROTATIONAL, DS_REMOVABLE */
};

struct disk_selector {
        char *text; /* as configured */
        struct ds_term *terms;
        size_t n_terms;
};

/* A value of install.device / install.data_disk is a selector when it does not start with '/'. */
static inline bool disk_selector_is(const char *value) {
        return value && value[0] && value[0] != '/';
}

/* Parses "term,term,...", every term "field OP value". 0, -EINVAL (then *ret_error, when given,
 * says what is wrong, e.g. "unknown field \"colour\" in \"colour=red\"": free it), -ENOMEM.
 * Sizes: a number of bytes, or with Ki/Mi/Gi/Ti (powers of 1024) or K/M/G/T, KB/MB/GB/TB (powers
 * of 1000, as disks are sold). */
int disk_selector_parse(const char *text, struct disk_selector *ret, char **ret_error);
void disk_selector_done(struct disk_selector *s);

/* What a selector can look at, for one whole disk. Unknown strings are NULL, unknown booleans -1:
 * "=" never holds for them, "!=" always does. */
struct disk_facts {
        char *sysname; /* "sda" */
        char *node;    /* "<root>/dev/sda" */
        uint64_t size; /* bytes */
        int rotational;
        int removable;
        bool read_only;
        char *model, *vendor, *serial, *wwn;
        const char *bus; /* ata, scsi, nvme, virtio, usb, mmc; NULL unknown */
        char *by_id;     /* the /dev/disk/by-id name the plan shows, or NULL */
        char **by_path;  /* the names in /dev/disk/by-path (without the directory), sorted */
        const char *excluded; /* why it cannot be chosen (set by disk_select), NULL when it can */
};

/* Every whole disk below root ("" for this machine): /sys/block without loop, ram, zram, sr (CD
 * and ISO drives), fd, dm-, md, nbd, mtdblock devices, sorted by name. 0 or -errno. */
int disk_facts_list(const char *root, struct disk_facts **ret, size_t *ret_n);
void disk_facts_free(struct disk_facts *l, size_t n);

bool disk_selector_match(const struct disk_selector *s, const struct disk_facts *f);

/* One line about a disk with every field a selector can use ("/dev/sda size=... bus=... ..."). */
char *disk_facts_format(const struct disk_facts *f);

/* A disk that cannot be chosen, and why ("the boot medium", "chosen by install.device"). */
struct ds_exclude {
        const char *sysname;
        const char *why;
};

/*
 * Picks the one disk below root that the selector text (configuration key key) matches, leaving
 * out the excluded ones, disks without medium (size 0) and read-only ones. While none matches it
 * looks again until deadline (CLOCK_MONOTONIC usec, 0: look once), as late disks appear.
 * On success *ret_node is the disk's node and, when ret_listing is given, *ret_listing every disk's
 * line ("* " before the chosen one's): the plan prints it; the choice is logged. No match or several
 * matches: every disk is logged, one line each, then one error naming the selector and how many
 * matched; -ENODEV (none) or -ENOTUNIQ (several). -EINVAL a selector that does not parse.
 */
int disk_select(const char *root, const char *key, const char *text, const struct ds_exclude *excl, size_t n_excl,
                uint64_t deadline, char **ret_node, char ***ret_listing);
