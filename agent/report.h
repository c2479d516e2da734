/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The install report: what a fleet tool reads after an install, as one JSON object. Built by the
 * `run` pipeline as its stages go (run.c); written to COS_OEM/install/report.json (0600) just
 * before the commit point (install.c), and the text of {{.Report}} in the SUCCEEDED and FAILED
 * webhooks. Every string in it passes through the log's secret redaction, the ISO URL through
 * url_redact() first.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "cloudconfig.h"
#include "config.h"
#include "disk.h"

#define REPORT_MAX_STAGES 12
/* Where on COS_OEM (relative to its mount point). */
#define REPORT_OEM_PATH "install/report.json"

struct report_stage {
        char *name;
        uint64_t start_wall_usec, end_wall_usec; /* CLOCK_REALTIME; end 0 while the stage runs */
        uint64_t start_usec, end_usec;           /* monotonic, for the duration */
};

struct report_disk {
        char *role;      /* "install" | "data" */
        char *name;      /* as the configuration names it */
        char *node, *by_id, *model, *serial; /* NULL when unknown */
        uint64_t size;   /* bytes; 0 when unknown */
};

struct install_report {
        char *harvester_version, *os_name, *kubernetes_version, *rancher_version; /* the image's release file */
        char *mode;
        char *iso_url;      /* credentials redacted */
        char *iso_checksum; /* "sha512:<hex>" as computed */
        uint64_t iso_size;
        struct report_stage stages[REPORT_MAX_STAGES];
        size_t n_stages;
        struct report_disk disks[2];
        size_t n_disks;
        bool finished, succeeded; /* result: "running" until report_set_result() */
        char *failure;            /* the FAILED line (without the marker) */
};

void report_done(struct install_report *r);

/* A stage begins (the previous one, when still open, ends at the same time) / ends. Times are
 * given (now_usec() and the wall clock in µs since the epoch) so that tests choose them. More
 * than REPORT_MAX_STAGES stages: the extra ones are not recorded. 0 or -ENOMEM. */
int report_stage_begin(struct install_report *r, const char *name, uint64_t mono_usec, uint64_t wall_usec);
void report_stage_end(struct install_report *r, uint64_t mono_usec, uint64_t wall_usec);
/* The wall clock in µs since the epoch. */
uint64_t report_wall_usec(void);

/* Mode and ISO URL (redacted) from the configuration. 0 or -ENOMEM. */
int report_set_config(struct install_report *r, const struct config *c);
/* The versions the image's release file declares. 0 or -ENOMEM. */
int report_set_release(struct install_report *r, const struct harvester_release *rel);
/* The verified ISO. 0 or -ENOMEM. */
int report_set_iso(struct install_report *r, const char *digest, uint64_t size);
/* A disk of the install ("install" or "data") as configured (name) and as found (id; NULL: only
 * the name is known). A role given twice replaces the first. 0 or -ENOMEM. */
int report_set_disk(struct install_report *r, const char *role, const char *name, const struct disk_identity *id);
/* Both disks of the plan (install, and data when there is one), identified now. 0 or -ENOMEM. */
int report_set_plan_disks(struct install_report *r, const struct config *c, const struct disk_plan *p);
/* The result; failure is the FAILED line (NULL on success). 0 or -ENOMEM. */
int report_set_result(struct install_report *r, bool succeeded, const char *failure);

/* The report as a JSON object (UTF-8, one line, strings redacted and escaped: util.h's
 * fputs_quoted). A stage still running has "end" and "seconds" null. 0 or -ENOMEM. */
int report_json(const struct install_report *r, char **ret);

/* The report of this process's install (run.c sets it; NULL: none). */
void report_set_current(struct install_report *r);
struct install_report *report_current(void);
/* Writes the current report to oem_dir/REPORT_OEM_PATH (0600, the directory 0700, atomically),
 * with the result "succeeded": it is called just before the commit point, and a failure after it
 * removes the partition table, so a disk that boots holds a report that is true. Without a
 * current report (a test calling install_system() directly) nothing is written. 0 or -errno
 * (logged). */
int report_write_oem(const char *oem_dir);
