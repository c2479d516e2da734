/* SPDX-License-Identifier: Apache-2.0 */
/* Small HTTP GETs into memory (config_url, checksum lists) with Harvester-grade retries. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_options {
        const char *what;          /* what is fetched, for messages: "config_url" */
        bool insecure;             /* skip TLS verification (rd.noverifyssl) */
        int64_t deadline_sec;      /* overall deadline for all attempts; 0: one attempt only */
        long connect_timeout_sec;  /* per attempt; 0: 10 s */
        long stall_timeout_sec;    /* abort an attempt with no byte received for this long; 0: 30 s */
        size_t max_body;           /* larger bodies are refused; 0: 16 MiB */
};

/*
 * GET url (http, https, file) into a NUL-terminated buffer. Connection errors, timeouts and
 * HTTP 408/429/5xx are retried with exponential backoff and full jitter (1 s start, 30 s cap)
 * until the deadline; each failed attempt prints one line (attempt, reason, next try in N s).
 * Other 4xx fail at once. Proxy variables are honoured. Messages are printed here; returns 0,
 * -ENOENT (404/410), -EACCES (401/403), -EPROTO (other 4xx), -ETIMEDOUT (deadline passed),
 * -EFBIG (body too large), -ENOMEM, or -EIO.
 */
int http_get(const char *url, const struct http_options *o, char **ret_body, size_t *ret_len);

/* A copy of url safe to print: any "user:password@" is shown as "user:<redacted>@". */
char *url_redact(const char *url);
