/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The verified, resumable download: libcurl receives, hashpipe.c writes and hashes on a second
 * thread, this file decides what each response means (resume, restart from zero, retry, fail) and
 * tells the operator what happens. iso_fetch() puts it together with the memory check, the tmpfs and
 * the ISO contents check; cmd_fetch() runs the same download alone.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "checksum.h"
#include "cli.h"
#include "download.h"
#include "interrupt.h"
#include "hashpipe.h"
#include "http.h"
#include "iso.h"
#include "log.h"
#include "progress.h"
#include "memory.h"
#include "retry.h"
#include "tmpfs.h"

#define DEFAULT_STALL_TIMEOUT_SEC 30L
#define DEFAULT_DEADLINE_SEC 600
#define RETRY_BASE_USEC UINT64_C(1000000)
#define RETRY_CAP_USEC UINT64_C(30000000)
/* libcurl hands over up to this much per write callback. */
#define RECEIVE_BUFFER_SIZE (128L * 1024)
/* Attempts in a row that end early without a new byte: the server keeps cutting the body short. */
#define MAX_BARREN_ATTEMPTS 3
/* The ISO's tmpfs: the ISO plus this much. */
#define TMPFS_MARGIN_BYTES (UINT64_C(64) << 20)
#define SIZE_UNKNOWN UINT64_MAX

/* One server of the file (download_options.urls), with what it told us. */
struct mirror {
        const char *url;
        char *shown;                    /* userinfo redacted */
        bool http;                      /* http:// or https:// (Range requests possible) */
        char *etag;                     /* its strong validator, from its last response, or NULL */
        char *last_modified;
        bool no_ranges;                 /* it said "Accept-Ranges: none" */
        bool dead;                      /* failed for good (a 404, a lie ...): not tried again */
        int error;                      /* its last failure, a negative errno (0: none yet) */
        char *failure;                  /* its last failure, for the final message: "<shown>: <why>" */
        unsigned barren;                /* attempts in a row that ended early without a new byte */
        uint64_t served;                /* bytes of the file held that came from it */
};

#define ORIGIN_NONE ((size_t)-1)        /* no byte held yet */
#define ORIGIN_MIXED ((size_t)-2)       /* the bytes held came from more than one mirror */

struct download {
        const struct download_options *o;
        const char *what;
        struct mirror *mirrors;
        size_t n_mirrors;
        size_t cur;                     /* the mirror of the current attempt */
        struct mirror *m;               /* &mirrors[cur] */
        const char *shown_url;          /* m->shown */
        size_t origin;                  /* the mirror all bytes held came from, or ORIGIN_* */
        size_t total_from;              /* the mirror that announced total */
        bool mirror_fault;              /* the attempt failed through the mirror's fault (mirror_fault()) */
        const char *tls_switch;         /* o->tls_switch */
        CURL *curl;
        char errbuf[CURL_ERROR_SIZE];
        struct curl_slist *headers;     /* If-Range */

        char *part_path;
        int fd;
        struct hashpipe *pipe;
        enum checksum_algo algo;

        uint64_t total;                 /* SIZE_UNKNOWN until a response says */
        bool size_announced;            /* on_size() called for total */

        /* The current attempt. */
        uint64_t stall_usec;
        uint64_t last_activity_usec;    /* the attempt began, or the last byte arrived */
        bool stalled;
        uint64_t requested_offset;
        bool response_checked;
        int cb_error;                   /* why a callback stopped the transfer (message printed) */

        /* Progress. */
        uint64_t start_usec;
        uint64_t last_print_usec, last_print_bytes;
        double rate;                    /* smoothed bytes per second */
        unsigned resumes, restarts;
};

static void download_done(struct download *d) {
        hashpipe_free(d->pipe);
        if (d->fd >= 0)
                close(d->fd);
        if (d->part_path)
                (void)unlink(d->part_path);
        free(d->part_path);
        if (d->curl)
                curl_easy_cleanup(d->curl);
        if (d->headers)
                curl_slist_free_all(d->headers);
        for (size_t i = 0; i < d->n_mirrors; i++) {
                free(d->mirrors[i].shown);
                free(d->mirrors[i].etag);
                free(d->mirrors[i].last_modified);
                free(d->mirrors[i].failure);
        }
        free(d->mirrors);
}

/*
 * The current mirror failed in a way another attempt on it would not mend (an HTTP error that is not
 * retried, a Content-Range or length that does not fit, more bytes than announced ...): it is not
 * tried again. With one URL that ends the download: the message is the error. With several it is a
 * warning and the next mirror continues; the message is kept for the final error if all fail.
 * Returns -err (or -ENOMEM, then nothing is recorded).
 */
static int mirror_fault(struct download *d, int err, const char *fmt, ...) _printf_(3, 4);
static int mirror_fault(struct download *d, int err, const char *fmt, ...) {
        char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int k = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (k < 0)
                return log_oom();
        err = err < 0 ? -err : err;
        if (d->n_mirrors == 1)
                log_error_errno(err, "%s", msg);
        else
                log_warning("%s (mirror %zu of %zu, not tried again)", msg, d->cur + 1, d->n_mirrors);
        /* Kept without the "<what>: " every message starts with. */
        size_t w = strlen(d->what);
        const char *text = strncmp(msg, d->what, w) == 0 && strncmp(msg + w, ": ", 2) == 0 ? msg + w + 2 : msg;
        char *keep = strdup(text);
        free(msg);
        if (!keep)
                return log_oom();
        free(d->m->failure);
        d->m->failure = keep;
        d->m->error = -err;
        d->m->dead = true;
        d->mirror_fault = true;
        return -err;
}

static uint64_t bytes_held(const struct download *d) {
        return d->pipe ? hashpipe_bytes(d->pipe) : 0;
}

static const char *bytes_text(char *buf, size_t len, uint64_t n) {
        return format_bytes(buf, len, n);
}

static void sleep_usec(uint64_t usec) {
        struct timespec ts = { .tv_sec = (time_t)(usec / 1000000), .tv_nsec = (long)(usec % 1000000) * 1000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static uint64_t seed_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^ now_usec();
}

/* A response header of the last request (after redirects), or NULL. */
static const char *header_get(CURL *c, const char *name) {
        struct curl_header *h = NULL;
        if (curl_easy_header(c, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h)
                return NULL;
        return h->value;
}

static int replace_str(char **p, const char *v) {
        char *n = NULL;
        if (v && !(n = strdup(v)))
                return -ENOMEM;
        free(*p);
        *p = n;
        return 0;
}

/* "bytes A-B/T" or "bytes * /T" (without the space); T may be "*". */
static int parse_content_range(const char *v, uint64_t *start, uint64_t *total) {
        unsigned long long a, b, t;
        int n = -1;
        while (*v == ' ')
                v++;
        if (strncasecmp(v, "bytes ", 6) != 0)
                return -EINVAL;
        v += 6;
        if (v[0] == '*' && sscanf(v, "*/%llu%n", &t, &n) == 1 && n > 0) {
                *start = SIZE_UNKNOWN;
                *total = t;
                return 0;
        }
        if (sscanf(v, "%llu-%llu/%n", &a, &b, &n) == 2 && n > 0 && b >= a) {
                v += n;
                if (v[0] == '*')
                        *total = SIZE_UNKNOWN;
                else if (sscanf(v, "%llu", &t) == 1 && t > b)
                        *total = t;
                else
                        return -EINVAL;
                *start = a;
                return 0;
        }
        return -EINVAL;
}

static bool is_http(CURL *c) {
        char *scheme = NULL;
        return curl_easy_getinfo(c, CURLINFO_SCHEME, &scheme) == CURLE_OK && scheme &&
               (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0);
}

/* Free room where the file goes, against what is still to come. */
static int check_room(struct download *d, uint64_t total, uint64_t held) {
        if (total == SIZE_UNKNOWN || total <= held)
                return 0;
        _cleanup_free_ char *dir = strdup(d->part_path);
        if (!dir)
                return log_oom();
        char *slash = strrchr(dir, '/');
        if (slash == dir)
                slash[1] = 0;
        else if (slash)
                *slash = 0;
        else
                strcpy(dir, ".");
        struct statvfs sv;
        if (statvfs(dir, &sv) < 0)
                return 0; /* cannot tell: the writes will */
        uint64_t room = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
        if (room >= total - held)
                return 0;
        char a[32], b[32];
        return log_error_errno(ENOSPC, "%s: no room for %s: %s needed in \"%s\", %s free. Make room (or a larger "
                                       "tmpfs) and try again.", d->what, d->shown_url,
                               bytes_text(a, sizeof(a), total - held), dir, bytes_text(b, sizeof(b), room));
}

/* Creates "<dest>.part" and the pipeline (the first byte is about to arrive). */
static int open_part(struct download *d) {
        d->fd = open(d->part_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (d->fd < 0)
                return log_error_errno(errno, "%s: cannot create \"%s\": %s", d->what, d->part_path, strerror(errno));
        int r = hashpipe_new(d->algo, d->fd, 0, 0, &d->pipe);
        if (r < 0)
                return log_error_errno(r, "%s: cannot start the hashing thread: %s", d->what, strerror(-r));
        return 0;
}

/* Starts again from byte 0: the hash, the file, the progress. */
static int restart_from_zero(struct download *d) {
        if (!d->pipe)
                return 0;
        int r = hashpipe_reset(d->pipe);
        if (r < 0)
                return log_error_errno(r, "%s: cannot start \"%s\" again: %s", d->what, d->part_path, strerror(-r));
        d->restarts++;
        d->last_print_bytes = 0;
        for (size_t i = 0; i < d->n_mirrors; i++)
                d->mirrors[i].served = 0;
        d->origin = ORIGIN_NONE;
        return 0;
}

/* Called with the headers of the response that brings the body (before its first byte, or at the end
 * of an empty one): decides resume or restart, learns the size, creates the file. */
static int check_response(struct download *d) {
        char a[32], b[32];
        uint64_t offset = bytes_held(d);
        uint64_t total = SIZE_UNKNOWN;
        int r;

        if (is_http(d->curl)) {
                long status = 0;
                (void)curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &status);
                if (status < 200 || status > 299)
                        return mirror_fault(d, EPROTO, "%s: %s answered HTTP %ld where a file was expected.",
                                            d->what, d->shown_url, status);

                const char *etag = header_get(d->curl, "ETag");
                const char *lm = header_get(d->curl, "Last-Modified");
                const char *ar = header_get(d->curl, "Accept-Ranges");
                /* Validators are compared with what the same mirror said before only: mirrors of one
                 * release may give the same file other ETags and dates (README, "More than one
                 * server"); what proves the file is the checksum at the end. */
                bool changed = (d->m->etag && !streq_ptr(d->m->etag, etag)) ||
                               (!d->m->etag && d->m->last_modified && !streq_ptr(d->m->last_modified, lm));
                if (etag && strncmp(etag, "W/", 2) == 0)
                        etag = NULL; /* weak: If-Range must not use it */

                if (status == 206) {
                        uint64_t start = 0;
                        const char *cr = header_get(d->curl, "Content-Range");
                        if (!cr || parse_content_range(cr, &start, &total) < 0 || start != d->requested_offset ||
                            d->requested_offset != offset)
                                return mirror_fault(d, EPROTO, "%s: %s answered a Range request for bytes %" PRIu64
                                                    "- with \"Content-Range: %s\"; cannot continue the file.",
                                                    d->what, d->shown_url, d->requested_offset, strempty(cr));
                        if (d->total != SIZE_UNKNOWN && total != SIZE_UNKNOWN && total != d->total) {
                                if (d->total_from != d->cur)
                                        return mirror_fault(d, EPROTO, "%s: %s says the file has %" PRIu64 " bytes, %s "
                                                            "said %" PRIu64 ": mirrors must serve the same file.",
                                                            d->what, d->shown_url, total,
                                                            d->mirrors[d->total_from].shown, d->total);
                                return mirror_fault(d, EPROTO, "%s: %s now says the file has %" PRIu64 " bytes, it said "
                                                    "%" PRIu64 " before, although its validator did not change.",
                                                    d->what, d->shown_url, total, d->total);
                        }
                        if (total == SIZE_UNKNOWN)
                                total = d->total;
                        d->resumes++;
                } else {
                        /* A whole body: the first response, or a Range request answered 200. */
                        curl_off_t cl = -1;
                        if (curl_easy_getinfo(d->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0)
                                total = (uint64_t)cl;
                        /* Another mirror's file of another size is another file: the bytes held stay
                         * for the next mirror. */
                        if (d->size_announced && d->total_from != d->cur && total != d->total)
                                return mirror_fault(d, EPROTO, "%s: %s offers a file of %s where %s offered %s: "
                                                    "mirrors must serve the same file.", d->what, d->shown_url,
                                                    total == SIZE_UNKNOWN ? "unknown size" : bytes_text(a, sizeof(a), total),
                                                    d->mirrors[d->total_from].shown,
                                                    d->total == SIZE_UNKNOWN ? "unknown size"
                                                                             : bytes_text(b, sizeof(b), d->total));
                        if (offset > 0) {
                                if (changed)
                                        log_warning("%s: %s changed on the server (ETag/Last-Modified differ); "
                                                    "starting again from byte 0 (%s received are discarded).",
                                                    d->what, d->shown_url, bytes_text(a, sizeof(a), offset));
                                else
                                        log_warning("%s: %s does not answer Range requests; starting again from "
                                                    "byte 0 (%s received are discarded).",
                                                    d->what, d->shown_url, bytes_text(a, sizeof(a), offset));
                                r = restart_from_zero(d);
                                if (r < 0)
                                        return r;
                                offset = 0;
                        }
                }
                if (replace_str(&d->m->etag, etag) < 0 || replace_str(&d->m->last_modified, lm) < 0)
                        return log_oom();
                d->m->no_ranges = ar && strcasecmp(ar, "none") == 0;
        } else {
                /* file:// (no validators, so never resumed: offset is 0). */
                curl_off_t cl = -1;
                if (curl_easy_getinfo(d->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0)
                        total = (uint64_t)cl;
                if (offset > 0) {
                        r = restart_from_zero(d);
                        if (r < 0)
                                return r;
                        offset = 0;
                }
        }

        if (!d->size_announced || total != d->total) {
                if (d->size_announced)
                        log_info("%s: the file now has %s (it had %s).", d->what,
                                 total == SIZE_UNKNOWN ? "an unknown size" : bytes_text(a, sizeof(a), total),
                                 d->total == SIZE_UNKNOWN ? "an unknown size" : bytes_text(b, sizeof(b), d->total));
                d->total = total;
                d->total_from = d->cur;
                d->size_announced = true;
                if (d->o->on_size) {
                        r = d->o->on_size(total, d->o->userdata);
                        if (r < 0)
                                return r;
                }
        }
        r = check_room(d, total, offset);
        if (r < 0)
                return r;
        if (!d->pipe) {
                r = open_part(d);
                if (r < 0)
                        return r;
        }
        if (offset == 0) {
                d->origin = d->cur;
                log_info("%s: receiving %s from %s.", d->what,
                         d->total == SIZE_UNKNOWN ? "a file of unknown size" : bytes_text(a, sizeof(a), d->total),
                         d->shown_url);
        } else {
                if (d->origin != d->cur)
                        d->origin = ORIGIN_MIXED;
                if (d->n_mirrors > 1)
                        log_info("%s: %s continues the file from byte %" PRIu64 ".", d->what, d->shown_url, offset);
                else
                        log_info("%s: the server continues the file from byte %" PRIu64 ".", d->what, offset);
        }
        return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct download *d = userdata;
        size_t n = size * nmemb;
        d->last_activity_usec = now_usec();
        if (!d->response_checked) {
                d->response_checked = true;
                int r = check_response(d);
                if (r < 0) {
                        d->cb_error = r;
                        return CURL_WRITEFUNC_ERROR;
                }
        }
        if (d->total != SIZE_UNKNOWN && bytes_held(d) + n > d->total) {
                char a[32];
                d->cb_error = mirror_fault(d, EPROTO, "%s: %s sends more than the %s it announced.", d->what,
                                           d->shown_url, bytes_text(a, sizeof(a), d->total));
                return CURL_WRITEFUNC_ERROR;
        }
        int r = hashpipe_write(d->pipe, ptr, n);
        if (r < 0) {
                char a[32];
                if (r == -ENOSPC)
                        d->cb_error = log_error_errno(r, "%s: no space left in \"%s\" after %s: the file system (a tmpfs "
                                                         "too small?) is full.", d->what, d->part_path,
                                                      bytes_text(a, sizeof(a), bytes_held(d)));
                else
                        d->cb_error = log_error_errno(r, "%s: cannot write \"%s\": %s", d->what, d->part_path, strerror(-r));
                return CURL_WRITEFUNC_ERROR;
        }
        d->m->served += n;
        return n;
}

static void format_duration(char *buf, size_t len, double sec) {
        if (sec < 0 || sec > 359999)
                snprintf(buf, len, "?");
        else if (sec >= 3600)
                snprintf(buf, len, "%d:%02d:%02d", (int)sec / 3600, (int)sec / 60 % 60, (int)sec % 60);
        else if (sec >= 60)
                snprintf(buf, len, "%d:%02d", (int)sec / 60, (int)sec % 60);
        else
                snprintf(buf, len, "%d s", (int)(sec + 0.5));
}

static int progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        struct download *d = userdata;
        uint64_t now = now_usec();
        if (interrupt_pending())
                return 1; /* a stop of the install (interrupt.h): the transfer ends now */
        /* libcurl's own low-speed check averages over several seconds; this one is exact. */
        if (now - d->last_activity_usec >= d->stall_usec) {
                d->stalled = true;
                return 1;
        }
        if (now - d->last_print_usec < 1000000 || !d->pipe)
                return 0;
        uint64_t held = bytes_held(d);
        double dt = (double)(now - d->last_print_usec) / 1e6;
        double inst = held >= d->last_print_bytes ? (double)(held - d->last_print_bytes) / dt : 0;
        d->rate = d->rate > 0 ? 0.7 * d->rate + 0.3 * inst : inst;
        d->last_print_usec = now;
        d->last_print_bytes = held;

        char h[32], t[32], eta[32];
        bytes_text(h, sizeof(h), held);
        if (d->total != SIZE_UNKNOWN && d->total > 0) {
                format_duration(eta, sizeof(eta), d->rate > 0 ? (double)(d->total - held) / d->rate : -1);
                log_info("%s: %3d%%  %s of %s  %.1f MiB/s  ETA %s", d->what, (int)(held * 100 / d->total), h,
                         bytes_text(t, sizeof(t), d->total), d->rate / 1048576.0, eta);
        } else
                log_info("%s: %s  %.1f MiB/s", d->what, h, d->rate / 1048576.0);
        progress_download(d->what, held, d->total); /* the PROGRESS webhook (progress.h), rate-limited there */
        return 0;
}

enum download_verdict download_classify(int curl_code, long http_status) {
        if (curl_code == CURLE_OK || curl_code == CURLE_HTTP_RETURNED_ERROR) {
                if (http_status == 0 || (http_status >= 200 && http_status <= 299))
                        return curl_code == CURLE_OK ? DOWNLOAD_DONE : DOWNLOAD_FAIL;
                return http_status_retryable(http_status) ? DOWNLOAD_RETRY : DOWNLOAD_FAIL;
        }
        return http_curl_retryable((CURLcode)curl_code) ? DOWNLOAD_RETRY : DOWNLOAD_FAIL;
}

static enum download_verdict classify_attempt(const struct download *d, CURLcode cc, long status) {
        if (cc == CURLE_ABORTED_BY_CALLBACK && d->stalled)
                return DOWNLOAD_RETRY; /* our own stall detection */
        return download_classify(cc, status);
}

/*
 * Sets up the request for the next attempt on the current mirror: a Range from what we hold, or the
 * whole file. The Range is guarded with If-Range when this mirror gave a validator before. A resume
 * needs a mirror that takes Range requests and something that proves the joined file: the checksum
 * expected at the end, or (without one) that every byte held came from this mirror and its validator
 * still holds. Otherwise the download starts again from byte 0.
 */
static int prepare_attempt(struct download *d) {
        uint64_t offset = bytes_held(d);
        char a[32];
        const char *validator = d->m->etag ? d->m->etag : d->m->last_modified;
        const char *why = NULL;

        if (d->headers) {
                curl_slist_free_all(d->headers);
                d->headers = NULL;
        }
        if (offset > 0) {
                if (d->m->no_ranges)
                        why = "the server does not accept Range requests";
                else if (!d->m->http)
                        why = "not an HTTP server";
                else if (!d->o->expected && d->origin != d->cur)
                        why = "the bytes held came from another mirror, and no checksum is set to prove a file "
                              "joined from two servers";
                else if (!d->o->expected && !validator)
                        why = "the server sent neither ETag nor Last-Modified";
        }
        if (why) {
                log_warning("%s: cannot resume %s safely (%s); starting again from byte 0 (%s received are "
                            "discarded).", d->what, d->shown_url, why, bytes_text(a, sizeof(a), offset));
                int r = restart_from_zero(d);
                if (r < 0)
                        return r;
                offset = 0;
        }
        d->requested_offset = offset;
        if (offset > 0) {
                char range[32];
                snprintf(range, sizeof(range), "%" PRIu64 "-", offset);
                if (validator) {
                        _cleanup_free_ char *ifr = strdup_printf("If-Range: %s", validator);
                        if (!ifr)
                                return log_oom();
                        struct curl_slist *l = curl_slist_append(NULL, ifr);
                        if (!l)
                                return log_oom();
                        d->headers = l;
                }
                if (curl_easy_setopt(d->curl, CURLOPT_RANGE, range) != CURLE_OK ||
                    curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, d->headers) != CURLE_OK)
                        return log_error_errno(EIO, "%s: cannot set up the Range request.", d->what);
        } else if (curl_easy_setopt(d->curl, CURLOPT_RANGE, NULL) != CURLE_OK ||
                   curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, NULL) != CURLE_OK)
                return log_error_errno(EIO, "%s: cannot set up the request.", d->what);
        d->response_checked = false;
        d->mirror_fault = false;
        d->stalled = false;
        d->last_activity_usec = now_usec();
        d->cb_error = 0;
        d->errbuf[0] = 0;
        return 0;
}

/* The message for a failed attempt, without trailing new lines. */
static void describe_failure(struct download *d, CURLcode cc, long status, char *buf, size_t len, long stall_sec) {
        if (cc == CURLE_HTTP_RETURNED_ERROR || (cc == CURLE_OK && status >= 300))
                snprintf(buf, len, "HTTP %ld", status);
        else if (d->stalled || (cc == CURLE_OPERATION_TIMEDOUT && strstr(d->errbuf, "too slow")))
                snprintf(buf, len, "stalled: nothing received for %ld s", stall_sec);
        else
                snprintf(buf, len, "%s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(cc));
        size_t k = strlen(buf);
        while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == ' ' || buf[k - 1] == '.'))
                buf[--k] = 0;
}

static int fail_status(struct download *d, long status) {
        int e = http_status_to_errno(status);
        switch (e) {
        case -ENOENT:
                return mirror_fault(d, e, "%s: %s answered HTTP %ld: the file is not there. Check the URL (host, path "
                                          "and file name).", d->what, d->shown_url, status);
        case -EACCES:
                return mirror_fault(d, e, "%s: %s answered HTTP %ld: access refused. Check the server's access rules "
                                          "or the credentials in the URL.", d->what, d->shown_url, status);
        default:
                return mirror_fault(d, EPROTO, "%s: %s answered HTTP %ld; this is not retried. Check the URL and "
                                               "the server.", d->what, d->shown_url, status);
        }
}

static int fail_curl(struct download *d, CURLcode cc, const char *reason) {
        switch (cc) {
        case CURLE_OUT_OF_MEMORY:
                return log_oom();
        case CURLE_FILE_COULDNT_READ_FILE:
                return mirror_fault(d, ENOENT, "%s: cannot read %s: %s. Check the path.", d->what, d->shown_url, reason);
        case CURLE_URL_MALFORMAT:
                return mirror_fault(d, EINVAL, "%s: %s is not a valid URL: %s.", d->what, d->shown_url, reason);
        case CURLE_UNSUPPORTED_PROTOCOL:
                return mirror_fault(d, EPROTO, "%s: %s: %s. Only http://, https:// and file:// URLs are supported "
                                               "(redirects only to http:// and https://, and from https:// only to "
                                               "https://).", d->what, d->shown_url, reason);
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
                return mirror_fault(d, EIO, "%s: the TLS certificate of %s cannot be verified against the system's CAs: "
                                            "%s. %s", d->what, d->shown_url, reason, http_tls_advice(d->tls_switch));
        default:
                return mirror_fault(d, EIO, "%s: cannot fetch %s: %s.", d->what, d->shown_url, reason);
        }
}

/* A 416 to our Range request. The one good case: we already hold the whole file. */
static int handle_416(struct download *d, bool *ret_complete) {
        char a[32], b[32];
        uint64_t start = 0, total = SIZE_UNKNOWN, held = bytes_held(d);
        const char *cr = header_get(d->curl, "Content-Range");
        if (cr && parse_content_range(cr, &start, &total) == 0 && total == held && held == d->total) {
                *ret_complete = true;
                return 0;
        }
        if (d->total != SIZE_UNKNOWN && total != SIZE_UNKNOWN && total < d->total)
                return mirror_fault(d, EPROTO, "%s: short file: %s announced %s but sent %s, and now says the file has "
                                               "%" PRIu64 " bytes. The server or a proxy cuts the file short.", d->what,
                                    d->shown_url, bytes_text(a, sizeof(a), d->total), bytes_text(b, sizeof(b), held),
                                    total);
        return mirror_fault(d, EPROTO, "%s: %s refused to continue the file from byte %" PRIu64 " (HTTP 416, "
                                       "Content-Range \"%s\").", d->what, d->shown_url, held, strempty(cr));
}

static int env_long(const char *name, long def) {
        const char *v = getenv(name);
        int64_t x;
        if (!v || parse_int64(v, &x) < 0 || x <= 0 || x > INT32_MAX)
                return (int)def;
        return (int)x;
}

/* The next mirror to try after the current one, wrapping around; n_mirrors when every one is dead. */
static size_t next_mirror(const struct download *d) {
        for (size_t k = 1; k <= d->n_mirrors; k++) {
                size_t i = (d->cur + k) % d->n_mirrors;
                if (!d->mirrors[i].dead)
                        return i;
        }
        return d->n_mirrors;
}

static int use_mirror(struct download *d, size_t i) {
        bool changed = d->m && d->cur != i;
        d->cur = i;
        d->m = &d->mirrors[i];
        d->shown_url = d->m->shown;
        if (changed && http_set_url(d->curl, d->m->url) < 0)
                return log_error_errno(EIO, "%s: cannot set up libcurl for %s.", d->what, d->shown_url);
        return 0;
}

/* Every mirror's last failure, one after the other: "[1] <url>: <why> [2] ...". */
static char *mirror_failures(const struct download *d) {
        _cleanup_free_ char *all = strdup("");
        for (size_t i = 0; all && i < d->n_mirrors; i++) {
                const struct mirror *m = &d->mirrors[i];
                char *n = strdup_printf("%s%s[%zu] %s", all, i > 0 ? " " : "", i + 1,
                                        m->failure ? m->failure : "not tried");
                free(all);
                all = n;
        }
        return TAKE_PTR(all);
}

/* The errno of the final error when every mirror failed for good: the first mirror's. */
static int all_mirrors_failed(struct download *d) {
        _cleanup_free_ char *all = mirror_failures(d);
        if (!all)
                return log_oom();
        int e = d->mirrors[0].error < 0 ? d->mirrors[0].error : -EIO;
        return log_error_errno(-e, "%s: every mirror failed: %s", d->what, all);
}

/* The final error when the deadline passed with no progress on any mirror. */
static int mirrors_timed_out(const struct download *d, unsigned attempts, int64_t deadline_sec) {
        _cleanup_free_ char *all = mirror_failures(d);
        return log_error_errno(ETIMEDOUT, "%s: giving up after %u attempts: %" PRIi64 " s without progress on any "
                                          "mirror. Each mirror's last failure: %s. Check that the servers are "
                                          "reachable from this machine and serve the file.",
                               d->what, attempts, deadline_sec, strempty(all));
}

int download_file(const struct download_options *o, struct download_result *ret) {
        char a[32], b[32];
        int r;
        _cleanup_(download_done) struct download d = {
                .o = o,
                .what = o->what ? o->what : "download",
                .tls_switch = o->tls_switch,
                .fd = -1,
                .total = SIZE_UNKNOWN,
                .origin = ORIGIN_NONE,
                .algo = o->expected ? o->expected->algo : CHECKSUM_SHA512,
        };

        size_t n = o->urls ? strv_length(o->urls) : 1;
        if (n == 0 || isempty(o->dest))
                return log_error_errno(EINVAL, "%s: no URL or destination given.", d.what);
        d.mirrors = calloc(n, sizeof(struct mirror));
        d.part_path = strdup_printf("%s.part", o->dest);
        if (!d.mirrors || !d.part_path)
                return log_oom();
        d.n_mirrors = n;
        for (size_t i = 0; i < n; i++) {
                struct mirror *m = &d.mirrors[i];
                m->url = o->urls ? o->urls[i] : o->url;
                if (isempty(m->url))
                        return log_error_errno(EINVAL, "%s: no URL or destination given.", d.what);
                url_register_secret(m->url);
                if (!(m->shown = url_redact(m->url)))
                        return log_oom();
                m->http = strncasecmp(m->url, "http://", 7) == 0 || strncasecmp(m->url, "https://", 8) == 0;
        }
        r = use_mirror(&d, 0);
        if (r < 0)
                return r;
        if (n > 1)
                log_info("%s: %zu mirrors, tried in order; a transfer that breaks off continues on the next one.",
                         d.what, n);

        long stall_sec = o->stall_timeout_sec > 0 ? o->stall_timeout_sec
                                                  : env_long("HARVESTER_INSTALL_STALL_TIMEOUT", DEFAULT_STALL_TIMEOUT_SEC);
        int64_t deadline_sec = o->deadline_sec > 0 ? o->deadline_sec
                                                   : env_long("HARVESTER_INSTALL_DOWNLOAD_DEADLINE", DEFAULT_DEADLINE_SEC);
        d.stall_usec = (uint64_t)stall_sec * UINT64_C(1000000);
        /* libcurl's low-speed check stays as a backstop, a little later than ours. */
        r = http_easy_new(o->insecure, o->connect_timeout_sec, stall_sec + 5, &d.curl);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "%s: cannot set up libcurl.", d.what);
        if (http_set_url(d.curl, d.m->url) < 0 ||
            curl_easy_setopt(d.curl, CURLOPT_ERRORBUFFER, d.errbuf) != CURLE_OK ||
            curl_easy_setopt(d.curl, CURLOPT_FAILONERROR, 1L) != CURLE_OK ||
            curl_easy_setopt(d.curl, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER_SIZE) != CURLE_OK ||
            curl_easy_setopt(d.curl, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
            curl_easy_setopt(d.curl, CURLOPT_WRITEDATA, &d) != CURLE_OK ||
            curl_easy_setopt(d.curl, CURLOPT_XFERINFOFUNCTION, progress_cb) != CURLE_OK ||
            curl_easy_setopt(d.curl, CURLOPT_XFERINFODATA, &d) != CURLE_OK ||
            curl_easy_setopt(d.curl, CURLOPT_NOPROGRESS, 0L) != CURLE_OK)
                return log_error_errno(EIO, "%s: cannot set up libcurl.", d.what);

        const struct retry_policy policy = {
                .base_usec = RETRY_BASE_USEC,
                .cap_usec = RETRY_CAP_USEC,
                .deadline_usec = (uint64_t)deadline_sec * UINT64_C(1000000),
        };
        struct retry_state rs;
        d.start_usec = d.last_print_usec = now_usec();
        retry_init(&rs, d.start_usec, seed_now());
        unsigned attempts = 0, switches = 0;

        for (;;) {
                r = prepare_attempt(&d);
                if (r < 0)
                        return r;
                uint64_t before = bytes_held(&d);
                unsigned restarts_before = d.restarts;
                attempts++;

                CURLcode cc = curl_easy_perform(d.curl);
                long status = 0;
                (void)curl_easy_getinfo(d.curl, CURLINFO_RESPONSE_CODE, &status);

                if (d.cb_error < 0 && !d.mirror_fault)
                        return d.cb_error; /* message printed where it happened */

                char reason[CURL_ERROR_SIZE + 64];
                reason[0] = 0;
                bool complete = false;
                if (!d.mirror_fault) {
                        r = 0;
                        if (cc == CURLE_OK && download_classify(cc, d.m->http ? status : 0) == DOWNLOAD_DONE) {
                                if (!d.response_checked) { /* an empty body */
                                        d.response_checked = true;
                                        r = check_response(&d);
                                }
                                complete = r >= 0;
                        } else if (cc == CURLE_HTTP_RETURNED_ERROR && status == 416 && d.requested_offset > 0)
                                r = handle_416(&d, &complete);
                        if (r < 0 && !d.mirror_fault)
                                return r;
                        if (complete) {
                                uint64_t held = bytes_held(&d);
                                if (d.total == SIZE_UNKNOWN || held == d.total)
                                        break;
                                complete = false;
                                r = mirror_fault(&d, EPROTO, "%s: short file: %s announced %s but the transfer "
                                                             "ended after %s.", d.what, d.shown_url,
                                                 bytes_text(a, sizeof(a), d.total), bytes_text(b, sizeof(b), held));
                                if (!d.mirror_fault)
                                        return r;
                        }
                }
                if (!d.mirror_fault) {
                        describe_failure(&d, cc, status, reason, sizeof(reason), stall_sec);
                        if (classify_attempt(&d, cc, status) != DOWNLOAD_RETRY) {
                                if (cc == CURLE_HTTP_RETURNED_ERROR || cc == CURLE_OK)
                                        r = fail_status(&d, status);
                                else
                                        r = fail_curl(&d, cc, reason);
                                if (!d.mirror_fault)
                                        return r;
                        }
                }

                /* Worth another attempt (on this mirror or the next). Progress opens a new deadline window. */
                uint64_t held = bytes_held(&d);
                bool progress = held > before || d.restarts != restarts_before;
                if (progress) {
                        retry_init(&rs, now_usec(), seed_now());
                        d.m->barren = 0;
                } else if (!d.mirror_fault && cc == CURLE_PARTIAL_FILE && ++d.m->barren >= MAX_BARREN_ATTEMPTS) {
                        r = mirror_fault(&d, EPROTO, "%s: short file: %s announced %s but ends after %s, %u times "
                                                     "in a row.", d.what, d.shown_url,
                                         d.total == SIZE_UNKNOWN ? "more" : bytes_text(a, sizeof(a), d.total),
                                         bytes_text(b, sizeof(b), held), d.m->barren);
                        if (!d.mirror_fault)
                                return r;
                }
                if (d.mirror_fault) {
                        if (d.n_mirrors == 1)
                                return d.m->error; /* the message was the error */
                } else {
                        _cleanup_free_ char *f = strdup_printf("%s: %s", d.shown_url, reason);
                        if (!f)
                                return log_oom();
                        free(d.m->failure);
                        d.m->failure = TAKE_PTR(f);
                        d.m->error = -EIO;
                }

                size_t next = next_mirror(&d);
                if (next == d.n_mirrors)
                        return all_mirrors_failed(&d);
                if (next > d.cur && !d.mirror_fault) {
                        /* Another server: at once, without a backoff. */
                        log_warning("%s: %s failed after %s%s%s: %s; continuing on %s (mirror %zu of %zu).",
                                    d.what, d.shown_url, bytes_text(a, sizeof(a), held),
                                    d.total != SIZE_UNKNOWN ? " of " : "",
                                    d.total != SIZE_UNKNOWN ? bytes_text(b, sizeof(b), d.total) : "", reason,
                                    d.mirrors[next].shown, next + 1, d.n_mirrors);
                } else if (next > d.cur)
                        log_info("%s: continuing on %s (mirror %zu of %zu) with %s held.", d.what,
                                 d.mirrors[next].shown, next + 1, d.n_mirrors, bytes_text(a, sizeof(a), held));
                if (next > d.cur) {
                        if (now_usec() - rs.start_usec >= policy.deadline_usec)
                                return mirrors_timed_out(&d, attempts, deadline_sec);
                        switches++;
                        r = use_mirror(&d, next);
                        if (r < 0)
                                return r;
                        continue;
                }

                /* Back to the first live mirror (or the only one): after a backoff. */
                uint64_t now = now_usec();
                uint64_t delay = retry_next_delay(&policy, &rs, now);
                if (delay != UINT64_MAX && (status == 429 || status == 503)) {
                        curl_off_t ra = 0;
                        if (curl_easy_getinfo(d.curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0) {
                                uint64_t want = (uint64_t)ra * UINT64_C(1000000);
                                uint64_t left = policy.deadline_usec - (now - rs.start_usec);
                                if (want > policy.cap_usec)
                                        want = policy.cap_usec;
                                if (want > left)
                                        want = left;
                                if (want > delay)
                                        delay = want;
                        }
                }
                if (delay == UINT64_MAX) {
                        if (d.n_mirrors == 1)
                                return log_error_errno(ETIMEDOUT, "%s: giving up on %s after %u attempts: %" PRIi64
                                                                  " s without progress; the last attempt failed with: "
                                                                  "%s. Check that the server is reachable from this "
                                                                  "machine and serves the file.",
                                                       d.what, d.shown_url, attempts, deadline_sec, reason);
                        return mirrors_timed_out(&d, attempts, deadline_sec);
                }
                if (d.n_mirrors > 1)
                        log_warning("%s: %s%s%s; trying again from %s (mirror %zu of %zu) in %.1f s, with %s held "
                                    "(attempt %u).", d.what, d.mirror_fault ? "" : d.shown_url,
                                    d.mirror_fault ? "" : " failed: ", d.mirror_fault ? "every other mirror failed" : reason,
                                    d.mirrors[next].shown, next + 1, d.n_mirrors, (double)delay / 1e6,
                                    bytes_text(a, sizeof(a), held), attempts + 1);
                else if (held > 0)
                        log_warning("%s: transfer interrupted after %s%s%s: %s; resuming in %.1f s (attempt %u).",
                                    d.what, bytes_text(a, sizeof(a), held),
                                    d.total != SIZE_UNKNOWN ? " of " : "",
                                    d.total != SIZE_UNKNOWN ? bytes_text(b, sizeof(b), d.total) : "", reason,
                                    (double)delay / 1e6, attempts + 1);
                else
                        log_warning("%s: attempt %u failed: %s (%s); next try in %.1f s.", d.what, attempts, reason,
                                    d.shown_url, (double)delay / 1e6);
                sleep_usec(delay);
                if (next != d.cur)
                        switches++;
                r = use_mirror(&d, next);
                if (r < 0)
                        return r;
        }

        /* Complete: the digest. */
        struct checksum got;
        r = hashpipe_finish(d.pipe, &got);
        if (r < 0)
                return log_error_errno(r, r == -ENOSPC ? "%s: no space left in \"%s\": the file system is full."
                                                       : "%s: cannot write or hash \"%s\": %s",
                                       d.what, d.part_path, strerror(-r));
        uint64_t size = bytes_held(&d);
        double secs = (double)(now_usec() - d.start_usec) / 1e6;
        if (secs <= 0)
                secs = 1e-6;
        log_info("%s: received %s in %.1f s (%.1f MiB/s average)%s.", d.what, bytes_text(a, sizeof(a), size), secs,
                 (double)size / secs / 1048576.0,
                 d.resumes + d.restarts > 0 ? ", after interruptions" : "");

        if (o->expected && !checksum_equal(o->expected, &got)) {
                _cleanup_free_ char *want = checksum_format(o->expected);
                _cleanup_free_ char *have = checksum_format(&got);
                if (d.n_mirrors == 1)
                        return log_error_errno(EBADMSG, "%s: checksum mismatch for %s: expected %s, got %s (%" PRIu64
                                                        " bytes received). The file was removed. Check the checksum "
                                                        "setting and the file on the server.", d.what, d.shown_url,
                                               strempty(want), strempty(have), size);
                /* Which servers the bytes came from: one of them serves another file. */
                _cleanup_free_ char *from = strdup("");
                for (size_t i = 0; from && i < d.n_mirrors; i++)
                        if (d.mirrors[i].served > 0) {
                                char *x = strdup_printf("%s%s%s (%s)", from, *from ? ", " : "", d.mirrors[i].shown,
                                                        bytes_text(a, sizeof(a), d.mirrors[i].served));
                                free(from);
                                from = x;
                        }
                return log_error_errno(EBADMSG, "%s: checksum mismatch: expected %s, got %s (%" PRIu64 " bytes received "
                                                "from %s). The file was removed. Check the checksum setting and that "
                                                "every mirror serves the same file.", d.what, strempty(want),
                                       strempty(have), size, strempty(from));
        }
        if (o->expected) {
                _cleanup_free_ char *have = checksum_format(&got);
                log_info("%s: checksum verified: %s", d.what, strempty(have));
        }

        if (close(d.fd) < 0) {
                d.fd = -1;
                return log_error_errno(errno, "%s: cannot write \"%s\": %s", d.what, d.part_path, strerror(errno));
        }
        d.fd = -1;
        if (rename(d.part_path, o->dest) < 0)
                return log_error_errno(errno, "%s: cannot rename \"%s\" to \"%s\": %s", d.what, d.part_path, o->dest,
                                       strerror(errno));
        free(d.part_path);
        d.part_path = NULL;

        *ret = (struct download_result) {
                .size = size,
                .digest = got,
                .verified = o->expected != NULL,
                .attempts = attempts,
                .resumes = d.resumes,
                .restarts = d.restarts,
                .mirror = d.cur,
                .switches = switches,
        };
        if (d.n_mirrors > 1)
                log_info("%s: completed on %s (mirror %zu of %zu)%s.", d.what, d.shown_url, d.cur + 1, d.n_mirrors,
                         switches > 0 ? ", after switching mirrors" : "");
        return 0;
}

int download_resolve_checksum(const char *url, const char *checksum, const char *checksum_url,
                              const char *what_checksum, const char *what_checksum_url, bool insecure,
                              const char *insecure_switch, int64_t deadline_sec, struct checksum *ret,
                              bool *ret_have) {
        struct checksum c;
        int r;

        if (!isempty(checksum)) {
                if (checksum_parse(checksum, &c) < 0)
                        return log_error_errno(EINVAL, "%s: \"%s\" is not a checksum: expected sha512:<128 hex digits> "
                                                       "or sha256:<64 hex digits>.", what_checksum, checksum);
                *ret = c;
                *ret_have = true;
                return 0;
        }
        if (isempty(checksum_url)) {
                *ret_have = false;
                return 0;
        }

        _cleanup_free_ char *name = NULL, *shown = url_redact(checksum_url), *body = NULL;
        if (!shown)
                return log_oom();
        r = checksum_url_filename(url, &name);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                _cleanup_free_ char *shown_url = url_redact(url);
                return log_error_errno(r, "%s: cannot tell the file name of %s to look it up in the checksum list.",
                                       what_checksum_url, strempty(shown_url));
        }
        const struct http_options ho = {
                .what = what_checksum_url,
                .insecure = insecure,
                .tls_switch = insecure_switch,
                .deadline_sec = deadline_sec,
                .max_body = 1024 * 1024,
        };
        r = http_get(checksum_url, &ho, &body, NULL);
        if (r < 0)
                return r; /* message printed */
        r = checksum_list_find(body, name, &c);
        switch (r) {
        case 0:
                break;
        case -ENOENT:
                return log_error_errno(r, "%s: the checksum list at %s has no entry for \"%s\" (lines \"<hex>  <name>\" "
                                          "expected). Check that the list belongs to the same release.",
                                       what_checksum_url, shown, name);
        case -ENOTUNIQ:
                return log_error_errno(EINVAL, "%s: the checksum list at %s gives \"%s\" two different digests.",
                                       what_checksum_url, shown, name);
        default:
                return log_error_errno(EINVAL, "%s: the checksum list at %s has a malformed digest for \"%s\" (128 hex "
                                               "digits for SHA-512, 64 for SHA-256).", what_checksum_url, shown, name);
        }
        _cleanup_free_ char *text = checksum_format(&c);
        log_info("%s: expecting %s for \"%s\".", what_checksum_url, strempty(text), name);
        *ret = c;
        *ret_have = true;
        return 0;
}

/* ---- The ISO in a tmpfs ---- */

struct iso_room {
        const char *dir;
        struct memory_info mem;
        bool mounted;
        uint64_t mounted_size;
};

static int iso_on_size(uint64_t total, void *userdata) {
        struct iso_room *x = userdata;
        char a[32], b[32];
        uint64_t size;
        int r;

        if (total != SIZE_UNKNOWN) {
                r = memory_check_iso_fits(&x->mem, total);
                if (r < 0)
                        return r;
                size = total + TMPFS_MARGIN_BYTES;
        } else {
                if (x->mem.available_bytes <= MEMORY_INSTALLER_RESERVE_BYTES + TMPFS_MARGIN_BYTES)
                        return log_error_errno(ENOSPC, "ISO: the server does not tell the ISO's size, and only %s of "
                                                       "memory is available (%s stays for the installer).",
                                               bytes_text(a, sizeof(a), x->mem.available_bytes),
                                               bytes_text(b, sizeof(b), MEMORY_INSTALLER_RESERVE_BYTES));
                size = x->mem.available_bytes - MEMORY_INSTALLER_RESERVE_BYTES;
                log_warning("ISO: the server does not tell the ISO's size; the tmpfs may take %s (all available "
                            "memory but %s for the installer).", bytes_text(a, sizeof(a), size),
                            bytes_text(b, sizeof(b), MEMORY_INSTALLER_RESERVE_BYTES));
        }
        if (x->mounted) {
                if (size <= x->mounted_size)
                        return 0;
                return log_error_errno(ENOSPC, "ISO: the file grew to %s during the download; its tmpfs holds %s. "
                                               "Start the install again.", bytes_text(a, sizeof(a), total),
                                       bytes_text(b, sizeof(b), x->mounted_size));
        }
        r = tmpfs_mount(x->dir, size);
        if (r < 0)
                return r;
        x->mounted = true;
        x->mounted_size = size;
        return 0;
}

int iso_fetch(const struct config *c, struct iso_image *ret) {
        char *const *urls = c->install.iso_urls;
        const char *url = urls ? urls[0] : NULL; /* the checksum list's entry is looked up by its name */
        struct checksum expected;
        bool have = false;
        bool https = false;
        int r;

        for (size_t i = 0; urls && urls[i]; i++)
                https = https || strncasecmp(urls[i], "https://", 8) == 0;
        if (isempty(url))
                return log_error_errno(EINVAL, "install.iso_url is not set: there is no ISO to install from.");
        struct iso_room room = { .dir = getenv("HARVESTER_INSTALL_ISO_DIR") };
        if (isempty(room.dir))
                room.dir = TMPFS_ISO_DIR;
        r = memory_read(NULL, &room.mem);
        if (r < 0)
                return log_error_errno(r, "Cannot read the memory size from /proc/meminfo: %s", strerror(-r));

        int64_t deadline = env_long("HARVESTER_INSTALL_DOWNLOAD_DEADLINE", DEFAULT_DEADLINE_SEC);
        /* TLS (README, "TLS"): the checksum list is always verified (rd.noverifyssl would let whoever
         * sits in the path choose the ISO's digest); the ISO only when its digest is not pinned by
         * install.iso_checksum, so rd.noverifyssl covers it only then. */
        if (isempty(c->install.iso_checksum) && isempty(c->install.iso_checksum_url)) {
                if (!c->install.skipchecks)
                        return log_error_errno(EINVAL, "ISO: neither install.iso_checksum nor install.iso_checksum_url "
                                                       "is set, so the ISO cannot be verified. Set install.iso_checksum_url "
                                                       "to the release's SHA-512 list (or install.iso_checksum), or set "
                                                       "install.skipchecks on a test rig to install an unverified ISO.");
                log_warning("ISO: THE ISO WILL NOT BE VERIFIED: neither install.iso_checksum nor "
                            "install.iso_checksum_url is set; going on because install.skipchecks is set.");
        }
        r = download_resolve_checksum(url, c->install.iso_checksum, c->install.iso_checksum_url,
                                      "install.iso_checksum", "install.iso_checksum_url", false, NULL,
                                      deadline, &expected, &have);
        if (r < 0)
                return r;
        bool iso_insecure = c->boot.noverifyssl && !isempty(c->install.iso_checksum);
        if (iso_insecure && https)
                log_warning("ISO: rd.noverifyssl is on the kernel command line: the TLS certificate of the ISO's "
                            "server is NOT verified; the ISO's content is checked against install.iso_checksum.");
        else if (c->boot.noverifyssl && https)
                log_info("ISO: rd.noverifyssl does not cover the ISO without install.iso_checksum: its server's "
                         "certificate is verified.");

        _cleanup_free_ char *path = strdup_printf("%s/harvester.iso", room.dir);
        _cleanup_free_ char *dir = strdup(room.dir);
        if (!path || !dir)
                return log_oom();
        const struct download_options o = {
                .urls = urls,
                .dest = path,
                .what = "ISO",
                .expected = have ? &expected : NULL,
                .insecure = iso_insecure,
                .tls_switch = "rd.noverifyssl on the kernel command line together with install.iso_checksum",
                .deadline_sec = deadline,
                .on_size = iso_on_size,
                .userdata = &room,
        };
        struct download_result res;
        r = download_file(&o, &res);
        if (r == 0) {
                r = iso_check_contents(path);
                if (r < 0)
                        (void)unlink(path);
        }
        _cleanup_free_ char *digest = r == 0 ? checksum_format(&res.digest) : NULL;
        if (r == 0 && !digest)
                r = log_oom();
        if (r < 0) {
                if (room.mounted)
                        (void)tmpfs_umount(room.dir);
                return r;
        }
        *ret = (struct iso_image) {
                .tmpfs_dir = TAKE_PTR(dir),
                .path = TAKE_PTR(path),
                .size = res.size,
                .digest = TAKE_PTR(digest),
        };
        return 0;
}

void iso_image_release(struct iso_image *i) {
        if (!i)
                return;
        if (i->path)
                (void)unlink(i->path);
        if (i->tmpfs_dir)
                (void)tmpfs_umount(i->tmpfs_dir);
        free(i->tmpfs_dir);
        free(i->path);
        free(i->digest);
        *i = (struct iso_image) {};
}

/* ---- harvester-install-agent fetch ---- */

static void fetch_usage(FILE *f) {
        fprintf(f,
                "Usage: harvester-install-agent fetch URL DEST [OPTIONS]\n"
                "\n"
                "Downloads URL to DEST (a file, or a directory to put it in) exactly as the install downloads\n"
                "the ISO: hashed as it arrives, resumed after a drop or stall, retried on server errors.\n"
                "Progress goes to stderr; the computed digest (\"sha512:<hex>\") to stdout.\n"
                "\n"
                "Options:\n"
                "  --checksum sha512:HEX|sha256:HEX   the digest the file must have\n"
                "  --checksum-url URL    a checksum list (\"<hex>  <name>\" lines) with an entry for the file\n"
                "  --mirror URL          another server of the same file, tried after URL (repeatable): a\n"
                "                        transfer that breaks off continues there from the byte held\n"
                "  --insecure            do not verify TLS certificates\n"
                "  --stall-timeout SEC   resume when nothing arrived for SEC seconds (default 30)\n"
                "  --deadline SEC        give up after SEC seconds of failing attempts in a row (default 600)\n"
                "  -h, --help            show this help\n"
                "\n"
                "Exit status: 0 the file is complete (and verified, when a checksum was given); without a\n"
                "checksum a warning says it is unverified. 5 the download or the verification failed (no\n"
                "partial file is left). 2 invalid usage.\n");
}

int cmd_fetch(const struct global_opts *g, int argc, char **argv) {
        enum { OPT_CHECKSUM = 0x100, OPT_CHECKSUM_URL, OPT_INSECURE, OPT_STALL, OPT_DEADLINE, OPT_MIRROR };
        static const struct option options[] = {
                { "checksum", required_argument, NULL, OPT_CHECKSUM },
                { "checksum-url", required_argument, NULL, OPT_CHECKSUM_URL },
                { "insecure", no_argument, NULL, OPT_INSECURE },
                { "stall-timeout", required_argument, NULL, OPT_STALL },
                { "deadline", required_argument, NULL, OPT_DEADLINE },
                { "mirror", required_argument, NULL, OPT_MIRROR },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *checksum = NULL, *checksum_url = NULL;
        _cleanup_strv_free_ char **mirrors = NULL;
        bool insecure = false;
        int64_t stall = 0, deadline = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case OPT_CHECKSUM:
                        checksum = optarg;
                        break;
                case OPT_CHECKSUM_URL:
                        checksum_url = optarg;
                        break;
                case OPT_INSECURE:
                        insecure = true;
                        break;
                case OPT_MIRROR:
                        if (strv_push(&mirrors, optarg) < 0)
                                return EXIT_INTERNAL;
                        break;
                case OPT_STALL:
                case OPT_DEADLINE:
                        if (parse_int64(optarg, c == OPT_STALL ? &stall : &deadline) < 0 ||
                            (c == OPT_STALL ? stall : deadline) <= 0 || (c == OPT_STALL ? stall : deadline) > INT32_MAX) {
                                log_error("fetch: %s takes a number of seconds, not \"%s\".",
                                          c == OPT_STALL ? "--stall-timeout" : "--deadline", optarg);
                                return EXIT_INVALID;
                        }
                        break;
                case 'h':
                        fetch_usage(stdout);
                        return EXIT_OK;
                default:
                        fetch_usage(stderr);
                        return EXIT_INVALID;
                }
        if (argc - optind != 2) {
                fetch_usage(stderr);
                return EXIT_INVALID;
        }
        const char *url = argv[optind], *dest = argv[optind + 1];
        if (checksum && checksum_url) {
                log_error("fetch: give --checksum or --checksum-url, not both.");
                return EXIT_INVALID;
        }
        _cleanup_strv_free_ char **urls = NULL;
        if (mirrors) {
                if (strv_push(&urls, url) < 0)
                        return EXIT_INTERNAL;
                STRV_FOREACH(m, mirrors)
                        if (strv_push(&urls, *m) < 0)
                                return EXIT_INTERNAL;
                if (strv_length(urls) > ISO_MIRRORS_MAX) {
                        log_error("fetch: at most %d URLs (URL and --mirror).", ISO_MIRRORS_MAX);
                        return EXIT_INVALID;
                }
        }

        struct checksum expected;
        bool have = false;
        r = download_resolve_checksum(url, checksum, checksum_url, "--checksum", "--checksum-url", insecure, "--insecure",
                                      deadline > 0 ? deadline : env_long("HARVESTER_INSTALL_DOWNLOAD_DEADLINE",
                                                                         DEFAULT_DEADLINE_SEC),
                                      &expected, &have);
        if (r == -ENOMEM)
                return EXIT_INTERNAL;
        if (r < 0)
                return checksum && r == -EINVAL ? EXIT_INVALID : EXIT_ISO;
        if (!have)
                log_warning("fetch: the file will NOT be verified: no --checksum or --checksum-url given.");

        /* A directory as DEST: the file keeps its name. */
        _cleanup_free_ char *target = NULL;
        struct stat st;
        if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
                _cleanup_free_ char *name = NULL;
                r = checksum_url_filename(url, &name);
                if (r < 0) {
                        log_error("fetch: \"%s\" is a directory and the URL has no file name to give the file.", dest);
                        return EXIT_INVALID;
                }
                target = strdup_printf("%s/%s", dest, name);
                if (!target)
                        return EXIT_INTERNAL;
                dest = target;
        }

        const struct download_options o = {
                .url = url,
                .urls = urls,
                .dest = dest,
                .what = "fetch",
                .expected = have ? &expected : NULL,
                .insecure = insecure,
                .tls_switch = "--insecure",
                .stall_timeout_sec = (long)stall,
                .deadline_sec = deadline,
        };
        struct download_result res;
        r = download_file(&o, &res);
        if (r == -ENOMEM)
                return EXIT_INTERNAL;
        if (r < 0)
                return EXIT_ISO;
        _cleanup_free_ char *digest = checksum_format(&res.digest);
        if (!digest)
                return EXIT_INTERNAL;
        printf("%s  %s\n", digest, dest);
        fflush(stdout);
        return EXIT_OK;
}
