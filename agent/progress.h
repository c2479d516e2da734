/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PROGRESS webhook event (install.webhooks with event PROGRESS, optional): one at each stage's
 * start ({{.Stage}}, {{.Percent}} empty) and, in the iso stage, the share of the ISO received
 * ({{.Percent}}), rate-limited by progress_limit_percent(). A PROGRESS hook gets one short attempt
 * (webhook.h); the first failure of a hook is logged once and that hook gets no more PROGRESS
 * events, so a hanging hook server costs the install at most WEBHOOK_PROGRESS_TIMEOUT_SEC once per
 * hook, and never fails it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* Percent events: only on steps of PROGRESS_STEP_PERCENT (10, 20, ... 100, the value sent is the
 * step), at most one per PROGRESS_MIN_INTERVAL_USEC, except 100 which is always sent once: at
 * most 100 / PROGRESS_STEP_PERCENT events per download, whatever its speed. */
#define PROGRESS_STEP_PERCENT 10
#define PROGRESS_MIN_INTERVAL_USEC UINT64_C(3000000)

struct progress_limit {
        int last_percent;       /* the last step sent; 0: none */
        uint64_t last_usec;     /* when it was sent */
};

/* The percent to send now for held of total bytes at now_usec (and records it as sent), or -1 for
 * nothing (total unknown or 0, not a new step, too soon). Never a value below one sent before:
 * a download that starts again from byte 0 sends nothing until it passes its last step. */
int progress_limit_percent(struct progress_limit *l, uint64_t held, uint64_t total, uint64_t now_usec);

/* Starts the PROGRESS events of this install for c (kept, not copied: it must outlive
 * progress_stop()) and sends the event of the stage already running. Nothing happens without a
 * PROGRESS hook in c. */
void progress_start(const struct config *c, const char *stage);
/* A stage begins: its PROGRESS event. */
void progress_stage(const char *stage);
/* The download's progress callback (download.c, about once a second): what is the download's
 * name for messages; only the ISO ("ISO") in the iso stage counts. */
void progress_download(const char *what, uint64_t held, uint64_t total);
/* No more PROGRESS events (before SUCCEEDED or FAILED); frees the state. */
void progress_stop(void);
