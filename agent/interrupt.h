/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SIGTERM, SIGINT and SIGHUP during `run` (a stopped unit, a shutdown, Ctrl-C): never the end of
 * the process. The handler records the signal and passes it on to the child processes of the
 * agent's own process group (a running mkfs or mke2fs ends at once; the step fails); the install
 * checks interrupt_pending() at its loop points and stage boundaries and ends through the normal
 * failure path: rollback, FAILED line, FAILED webhook.
 */
#pragma once

#include <stdbool.h>

/* Installs the handlers (idempotent). */
int interrupt_setup(void);
/* The signal received (SIGTERM, SIGINT, SIGHUP), or 0. */
int interrupt_pending(void);
/* When a signal was received: logs that the install stops here (what: "before formatting /dev/sda2")
 * and returns -EINTR; else 0. */
int interrupt_check(const char *what);
/* The sentence for the FAILED line, NULL when no signal was received. */
const char *interrupt_reason(void);
