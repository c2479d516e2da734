/* SPDX-License-Identifier: Apache-2.0 */
/* Small HTTP GETs into memory (config_url, checksum lists) with Harvester-grade retries. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

struct http_options {
        const char *what;          /* what is fetched, for messages: "config_url" */
        bool insecure;             /* skip TLS verification (rd.noverifyssl) */
        int64_t deadline_sec;      /* overall deadline for all attempts; 0: one attempt only */
        long connect_timeout_sec;  /* per attempt; 0: 10 s */
        long stall_timeout_sec;    /* abort an attempt with no byte received for this long; 0: 30 s */
        size_t max_body;           /* larger bodies are refused; 0: 16 MiB */
        /* Additions (zero keeps the behaviour above): */
        const char *hint;          /* last sentence of the final error when retries ran out: what
                                    * the operator can do. NULL: "Check that the server is
                                    * reachable from this machine and serves the file." */
        uint64_t retry_base_usec;  /* first backoff ceiling; 0: 1 s */
        uint64_t retry_cap_usec;   /* largest backoff ceiling; 0: 30 s */
};

/*
 * GET url (http, https, file) into a NUL-terminated buffer. Connection errors, timeouts and
 * HTTP 408/429/5xx are retried with exponential backoff and full jitter (1 s start, 30 s cap)
 * until the deadline; each failed attempt prints one line (attempt, reason, next try in N s).
 * Other 4xx fail at once. Proxy variables are honoured. Messages are printed here; returns 0,
 * -ENOENT (404/410), -EACCES (401/403), -EPROTO (other 4xx), -ETIMEDOUT (deadline passed),
 * -EFBIG (body too large), -ENOMEM, or -EIO.
 * Also: -ENOENT for a file:// URL whose file does not exist, -EPROTO for a final 3xx or a URL
 * (or redirect) with a protocol other than http/https/file, -EINVAL for a malformed URL.
 * No attempt runs past the deadline (each attempt's timeout is capped to the time left).
 * Retry-After (seconds) on 429/503 is honoured up to the backoff cap. Redirects: at most 10,
 * to http or https only (a server cannot redirect the agent to a local file).
 */
int http_get(const char *url, const struct http_options *o, char **ret_body, size_t *ret_len);

/* A copy of url safe to print: any "user:password@" is shown as "user:<redacted>@". In a URL
 * libcurl cannot parse, everything between "://" and the last '@' is userinfo, the password all
 * of it after the first ':' ("http://u:pa/ss@host/x.iso" -> "http://u:<redacted>@host/x.iso"),
 * all of it when there is no ':'. */
char *url_redact(const char *url);
/* The password of url's userinfo (the same rule; for a URL libcurl cannot parse, all of its
 * userinfo when it has no ':'), or NULL when there is none. */
char *url_password(const char *url);
/* Registers url's password with the log, as written and percent-decoded. */
void url_register_secret(const char *url);
/* NULL when libcurl's URL parser (curl_url) accepts url, else what is wrong, for a validation
 * message: a URL whose userinfo does not parse asks for percent-encoding. NULL on OOM too. */
char *url_parse_problem(const char *url);

/* ---- Shared libcurl plumbing (also used by download.c and webhook.c) ---- */

/* curl_global_init() once per process, thread-safe (pthread_once). 0 or -EIO. */
int http_global_init(void);

/*
 * A new easy handle with the agent's transfer policy: protocols http, https, file (redirects
 * followed, at most 10, to http/https only), TLS verified against the system CAs unless insecure,
 * proxy variables honoured (libcurl's own environment handling), connect timeout
 * (0: 10 s), stall detection (no byte for stall_timeout_sec, 0: 30 s, fails the transfer with
 * CURLE_OPERATION_TIMEDOUT), no signals, TCP keepalive, a User-Agent. Calls http_global_init().
 * 0, -ENOMEM or -EIO.
 */
int http_easy_new(bool insecure, long connect_timeout_sec, long stall_timeout_sec, CURL **ret);

/* Whether a failed transfer is worth another attempt: connection refused/reset, DNS, timeouts,
 * stalls, partial bodies, TLS handshake failures. */
bool http_curl_retryable(CURLcode code);

/* The errno an HTTP status that is not retried stands for: 0 (2xx), -ENOENT (404, 410),
 * -EACCES (401, 403), -EPROTO (anything else). */
int http_status_to_errno(long status);

static inline void curl_easy_cleanupp(CURL **c) {
        if (*c)
                curl_easy_cleanup(*c);
}
static inline void curl_slist_free_allp(struct curl_slist **l) {
        if (*l)
                curl_slist_free_all(*l);
}
#define _cleanup_curl_ __attribute__((cleanup(curl_easy_cleanupp)))
#define _cleanup_curl_slist_ __attribute__((cleanup(curl_slist_free_allp)))
