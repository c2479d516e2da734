/* SPDX-License-Identifier: Apache-2.0 */
/* install.webhooks: STARTED, SUCCEEDED, FAILED, PROGRESS. A failing webhook is logged, never fatal. */
#pragma once

#include <stdbool.h>

#include "config.h"

/* STARTED, SUCCEEDED, FAILED: WEBHOOK_TIMEOUT_SEC per attempt, WEBHOOK_TRIES attempts.
 * PROGRESS (progress.h): one attempt of at most WEBHOOK_PROGRESS_TIMEOUT_SEC, connection included. */
#define WEBHOOK_TIMEOUT_SEC 10L
#define WEBHOOK_TRIES 3u
#define WEBHOOK_PROGRESS_TIMEOUT_SEC 3L

/* Sends every webhook of c for event ("STARTED" | "SUCCEEDED" | "FAILED"), URL and payload
 * templated with {{.Hostname}} {{.MACAddr}} {{.IPAddrV4}} {{.IPAddrV6}} of the management
 * interface and the disks' identity (struct webhook_values). Short timeout, bounded retries. Never fails the caller. */
void webhook_send(const struct config *c, const char *event);

/* What an event adds to the template data (borrowed; NULL renders empty). */
struct webhook_event_data {
        const char *stage;             /* {{.Stage}}: the stage starting (PROGRESS), failed (FAILED) or last (SUCCEEDED) */
        const char *percent;           /* {{.Percent}}: PROGRESS in the iso stage, "10" ... "100" */
        const char *report;            /* {{.Report}}: the install report's JSON (report.h) */
        const char *result;            /* {{.Result}}: "succeeded" | "failed" */
        const char *error;             /* {{.Error}}: the FAILED line */
        const char *harvester_version; /* {{.HarvesterVersion}}: the image's release file */
        const char *iso_checksum;      /* {{.ISOChecksum}}: "sha512:<hex>" as computed */
};

/* webhook_send() with the event's data (d may be NULL). disabled (PROGRESS; NULL for the others):
 * one flag per install.webhooks entry; a hook whose flag is set is skipped, and a hook that fails
 * (template, connection, timeout, HTTP >= 400) gets its flag set after one warning. */
void webhook_send_event(const struct config *c, const char *event, const struct webhook_event_data *d, bool *disabled);

/* ---- Parts of webhook_send(), exposed for validation and tests ---- */

/* The values a URL or payload template sees. NULL renders as empty. */
struct webhook_values {
        const char *hostname; /* {{.Hostname}} */
        const char *mac;      /* {{.MACAddr}} */
        const char *ipv4;     /* {{.IPAddrV4}} */
        const char *ipv6;     /* {{.IPAddrV6}} */
        /* The disks as the configuration names them, resolved now (empty when not found):
         * {{.InstallDisk}} the name given, {{.InstallDiskNode}} /dev/sdX, {{.InstallDiskByID}},
         * {{.InstallDiskModel}}, {{.InstallDiskSerial}}, {{.InstallDiskSize}} (bytes); the same
         * with DataDisk for install.data_disk. */
        struct webhook_disk {
                const char *name, *node, *by_id, *model, *serial, *size;
        } install_disk, data_disk;
        struct webhook_event_data ev; /* borrowed: webhook_values_collect() leaves it empty */
};

/*
 * Renders, with the agent's template engine (template.c, fields only), the Go text/template subset
 * Harvester's webhooks use: actions {{.Field}} with optional
 * spaces inside the braces, trim markers ("{{- " and " -}}") and comments (a C-style comment
 * right inside the braces, as in Go).
 * Fields other than those above render empty (Go's missingkey=zero on a string map). Any
 * other action ({{if}}, pipelines, a bare {{.}}) or a "{{" without "}}" is -EINVAL, with
 * *ret_error (if given) set to a static description. 0, -EINVAL or -ENOMEM.
 */
int webhook_render(const char *tmpl, const struct webhook_values *v, char **ret, const char **ret_error);

/*
 * The management interface's name, as webhooks see it: "mgmt-br" when it exists, else the first
 * of install.management_interface.interfaces that exists (matched by name, or by hw_addr against
 * each interface's address, case-insensitively), else the interface of the IPv4 default route
 * (else the IPv6 one). sysfs_net: a /sys/class/net-like directory (NULL: the real one); proc_net:
 * a /proc/net-like directory holding route and ipv6_route (NULL: the real one).
 * 0, -ENOENT (none found) or -ENOMEM.
 */
int webhook_mgmt_interface(const struct mgmt_interface *m, const char *sysfs_net, const char *proc_net, char **ret);

/* The values of the live system for c: hostname from os.hostname, MAC from sysfs, first IPv4 and
 * first global (else link-local) IPv6 address of the management interface (getifaddrs), the
 * install and data disks' identity (disk_identify()). Fields
 * that cannot be found are NULL. Free with webhook_values_done(). */
void webhook_values_collect(const struct config *c, struct webhook_values *ret);
void webhook_values_done(struct webhook_values *v);
