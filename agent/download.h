/* SPDX-License-Identifier: Apache-2.0 */
/* The ISO: streamed from install.iso_url into a tmpfs, verified as it arrives, contents checked. */
#pragma once

#include <stdint.h>

#include "config.h"

struct iso_image {
        char *tmpfs_dir; /* mounted tmpfs (mode 0700), NULL when not mounted */
        char *path;      /* the verified ISO inside it */
        uint64_t size;
        char *digest;    /* "sha512:<hex>" actually computed */
};

/* Memory fit, tmpfs, download with verification (iso_checksum or iso_checksum_url), contents check
 * (iso_check_contents). Messages printed here. 0, or -errno (-ENOSPC too little memory/tmpfs,
 * -EBADMSG checksum mismatch, -ENOENT file missing in the ISO or 404, ...). On failure nothing is
 * left behind (partial file removed, tmpfs unmounted). */
int iso_fetch(const struct config *c, struct iso_image *ret);
/* Removes the ISO and unmounts the tmpfs. Safe on a zeroed struct. */
void iso_image_release(struct iso_image *i);

/* ---- Additions: the verified, resumable download under iso_fetch() and the `fetch` command ---- */

#include <stdbool.h>

#include "checksum.h"

/* Environment knobs (tests and odd rigs): HARVESTER_INSTALL_ISO_DIR (where iso_fetch() mounts its
 * tmpfs, default /run/harvester-install/iso), HARVESTER_INSTALL_STALL_TIMEOUT (seconds without a
 * byte before an attempt is dropped and resumed, default 30) and HARVESTER_INSTALL_DOWNLOAD_DEADLINE
 * (seconds of failing attempts in a row before giving up, default 600). */

struct download_options {
        const char *url;                /* the file; or: */
        char *const *urls;              /* several mirrors of the same file, tried in order (NULL: url) */
        const char *dest;               /* written as "<dest>.part", renamed to dest when complete and verified */
        const char *what;               /* for messages: "ISO"; NULL: "download" */
        const struct checksum *expected; /* NULL: not verified (the caller warns); SHA-512 is computed then */
        bool insecure;                  /* skip TLS verification */
        const char *tls_switch;         /* what turns verification off, for messages (http_options) */
        long stall_timeout_sec;         /* no byte for this long: the attempt is dropped and resumed; 0: 30 */
        long connect_timeout_sec;       /* 0: 10 */
        int64_t deadline_sec;           /* failing attempts in a row (without progress) are retried for this
                                         * long; 0: 600. Progress starts a new window. */
        /* Called once the size is known (total in bytes, UINT64_MAX when the server does not say), before
         * "<dest>.part" is created, and again if a restart brings a different size. The directory of
         * dest must exist when it returns. Prints its own message; a negative errno stops the download. */
        int (*on_size)(uint64_t total, void *userdata);
        void *userdata;
};

struct download_result {
        uint64_t size;
        struct checksum digest; /* computed */
        bool verified;          /* digest matched options->expected */
        unsigned attempts;
        unsigned resumes;       /* Range requests that continued a transfer */
        unsigned restarts;      /* transfers started again from byte 0 (file changed, no Range support) */
        size_t mirror;          /* index in options->urls of the mirror that sent the last bytes */
        unsigned switches;      /* times the download went on with another mirror */
};

/*
 * Downloads url (or the mirrors in urls) to dest with libcurl (http, https, file), hashing on a second
 * thread as the bytes arrive (hashpipe.h). A dropped or stalled transfer resumes with "Range: bytes=N-" guarded by
 * If-Range (the strong ETag, else Last-Modified); when the server answers 200 instead (the file
 * changed, or it ignores Range) or offers no validator, the download starts again from byte 0 with
 * the hash reset: never a file spliced from two versions. Connection errors and HTTP 408/429/5xx are
 * retried with backoff (retry.h) within the deadline; other 4xx fail at once. Progress at most once a
 * second (log_info), a final line with size, time and average speed.
 * 0, or a negative errno with the message printed: -EBADMSG checksum mismatch, -EPROTO short body or
 * inconsistent server, -ENOSPC no room (checked against the file system before writing, and on
 * write), -ENOENT 404/410/missing file, -EACCES 401/403, -ETIMEDOUT deadline, -EIO, -ENOMEM. On
 * failure "<dest>.part" is removed and dest is untouched.
 *
 * Mirrors (README, "More than one server"): the first is tried first. When an attempt fails in a way
 * worth retrying (a drop, a stall, a 5xx ...), the next mirror continues at once from the byte held,
 * with "Range: bytes=N-" (If-Range only with that mirror's own validator: mirrors may differ in ETag
 * and date); it must answer 206 with Content-Range starting at N and the same total length, or 200
 * (then the download starts again from byte 0 with the hash reset). After the last mirror the first
 * comes again, after a backoff (retry.h); the deadline window spans all of them. A mirror that fails
 * for good (4xx, TLS, a Content-Range or length that does not fit, more bytes than announced, a
 * short body three times) is warned about and not tried again. Without an expected checksum a file
 * is never joined from two mirrors: a switch starts again from byte 0. When every mirror failed the
 * error names each one's last failure (userinfo redacted); its errno is the first mirror's.
 */
int download_file(const struct download_options *o, struct download_result *ret);

/* The expected checksum for url: from checksum ("sha512:<hex>" / "sha256:<hex>") when set, else from
 * the checksum list at checksum_url (the entry for url's file name), else none (*ret_have = false).
 * what_checksum / what_checksum_url name the settings in messages ("install.iso_checksum").
 * Messages printed here; 0 or -errno (-EINVAL bad value, -ENOENT file not listed, fetch errors). */
int download_resolve_checksum(const char *url, const char *checksum, const char *checksum_url,
                              const char *what_checksum, const char *what_checksum_url, bool insecure,
                              const char *insecure_switch,
                              int64_t deadline_sec, struct checksum *ret, bool *ret_have);

/* How a finished attempt goes on, from the curl result and the HTTP status (0 for file://). */
enum download_verdict {
        DOWNLOAD_DONE,  /* complete */
        DOWNLOAD_RETRY, /* try again after a backoff, resuming where it stopped */
        DOWNLOAD_FAIL,  /* give up at once */
};
enum download_verdict download_classify(int curl_code, long http_status);
