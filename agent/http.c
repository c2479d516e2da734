/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <pthread.h>
#include <time.h>

#include "agent-config.h"
#include "http.h"
#include "log.h"
#include "retry.h"

#define DEFAULT_CONNECT_TIMEOUT_SEC 10L
#define DEFAULT_STALL_TIMEOUT_SEC 30L
#define DEFAULT_MAX_BODY ((size_t)16 << 20)
#define DEFAULT_RETRY_BASE_USEC UINT64_C(1000000)
#define DEFAULT_RETRY_CAP_USEC UINT64_C(30000000)
#define MAX_REDIRECTS 10L
/* An attempt with less time than this before the deadline is not started. */
#define MIN_ATTEMPT_USEC UINT64_C(100000)

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_result = CURLE_FAILED_INIT;

static void global_init(void) {
        global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int http_global_init(void) {
        if (pthread_once(&global_once, global_init) != 0)
                return -EIO;
        return global_result == CURLE_OK ? 0 : -EIO;
}

/* Whether libcurl's URL parser accepts url as it stands (no scheme guessing, http/https/file and
 * others alike); on failure *ret_code says why. */
static bool curl_parses(const char *url, CURLUcode *ret_code) {
        CURLU *u = curl_url();
        if (!u) {
                *ret_code = CURLUE_OUT_OF_MEMORY;
                return false;
        }
        *ret_code = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
        curl_url_cleanup(u);
        return *ret_code == CURLUE_OK;
}

/*
 * [*start, *end) is the userinfo of url, "user:password", without the '@'. A URL libcurl parses
 * has its userinfo before the last '@' of the authority, which ends at the first '/', '?' or '#'
 * (and when it has one, before the last '@' ahead of the query: the rest of the path may be the
 * rest of a password).
 * A URL it does not parse may hold a password with an unencoded '/', '?' or '#'
 * ("http://u:pa/ss@host/x.iso"): there, everything between "://" and the last '@' of the whole
 * URL is taken for userinfo (*whole set), so that no part of such a password is ever shown.
 */
static bool url_userinfo_span(const char *url, const char **start, const char **end, bool *whole) {
        const char *auth = strstr(url, "://");
        bool has_scheme = auth != NULL;
        auth = auth ? auth + 3 : url;
        CURLUcode code;
        *whole = has_scheme && strchr(auth, '@') && !curl_parses(url, &code);
        size_t alen = *whole ? strlen(auth) : strcspn(auth, "/?#");
        const char *at = memrchr(auth, '@', alen);
        /* A URL with userinfo and another '@' in its path ("http://u:a@b/c@host/x"): the
         * password may be "a@b/c"; hide up to the last '@' before the query. */
        if (at && !*whole)
                at = memrchr(auth, '@', strcspn(auth, "?#"));
        if (!at)
                return false;
        *start = auth;
        *end = at;
        return true;
}

char *url_password(const char *url) {
        const char *s, *e;
        bool whole;
        if (!url || !url_userinfo_span(url, &s, &e, &whole))
                return NULL;
        const char *colon = memchr(s, ':', (size_t)(e - s));
        if (whole && !colon)
                return strndup(s, (size_t)(e - s));
        if (!colon || colon + 1 == e)
                return NULL;
        return strndup(colon + 1, (size_t)(e - colon - 1));
}

char *url_redact(const char *url) {
        const char *s, *e;
        bool whole;
        if (!url)
                return NULL;
        if (!url_userinfo_span(url, &s, &e, &whole))
                return strdup(url);
        const char *colon = memchr(s, ':', (size_t)(e - s));
        if (whole && (!colon || colon + 1 == e))
                return strdup_printf("%.*s<redacted>%s", (int)(s - url), url, e);
        if (!colon || colon + 1 == e)
                return strdup(url);
        return strdup_printf("%.*s:<redacted>%s", (int)(colon - url), url, e);
}

void url_register_secret(const char *url) {
        _cleanup_free_ char *pw = url_password(url);
        if (isempty(pw))
                return;
        log_add_secret(pw);
        /* and as it may appear percent-decoded */
        int n = 0;
        char *d = curl_easy_unescape(NULL, pw, 0, &n);
        if (d) {
                if (n > 0 && memchr(d, 0, (size_t)n) == NULL)
                        log_add_secret(d);
                curl_free(d);
        }
}

char *url_parse_problem(const char *url) {
        CURLUcode code;
        if (isempty(url) || curl_parses(url, &code))
                return NULL;
        const char *auth = strstr(url, "://");
        if (auth && strchr(auth + 3, '@'))
                return strdup_printf("libcurl cannot parse it (%s); a user name or password in a URL must be "
                                     "percent-encoded: '/' as %%2F, '?' as %%3F, '#' as %%23, '@' as %%40, "
                                     "'%%' as %%25 (and ':' in the user name as %%3A)",
                                     curl_url_strerror(code));
        return strdup_printf("libcurl cannot parse it (%s)", curl_url_strerror(code));
}

int http_easy_new(bool insecure, long connect_timeout_sec, long stall_timeout_sec, CURL **ret) {
        int r = http_global_init();
        if (r < 0)
                return r;

        _cleanup_curl_ CURL *c = curl_easy_init();
        if (!c)
                return -ENOMEM;

        if (connect_timeout_sec <= 0)
                connect_timeout_sec = DEFAULT_CONNECT_TIMEOUT_SEC;
        if (stall_timeout_sec <= 0)
                stall_timeout_sec = DEFAULT_STALL_TIMEOUT_SEC;

        if (curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file") != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_MAXREDIRS, MAX_REDIRECTS) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, connect_timeout_sec) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall_timeout_sec) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_USERAGENT, "harvester-install-agent/" AGENT_VERSION) != CURLE_OK)
                return -EIO;

        *ret = TAKE_PTR(c);
        return 0;
}

bool http_curl_retryable(CURLcode code) {
        switch (code) {
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_PARTIAL_FILE:
        case CURLE_GOT_NOTHING:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_AGAIN:
                return true;
        default:
                return false;
        }
}

int http_status_to_errno(long status) {
        if (status >= 200 && status <= 299)
                return 0;
        if (status == 404 || status == 410)
                return -ENOENT;
        if (status == 401 || status == 403)
                return -EACCES;
        return -EPROTO;
}

struct body {
        CURL *curl;
        char *data;
        size_t len, alloc, max;
        bool too_big;
        bool checked_status, discard;
        char status_line[128]; /* the last "HTTP/x 503 Service Unavailable" seen, trimmed */
};

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct body *b = userdata;
        size_t n = size * nmemb;

        if (!b->checked_status) {
                /* Error pages are not kept: only the status matters then. */
                long status = 0;
                (void)curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status);
                b->discard = status >= 300;
                b->checked_status = true;
        }
        if (b->discard)
                return n;
        if (n > b->max - b->len) {
                b->too_big = true;
                return CURL_WRITEFUNC_ERROR;
        }
        if (b->len + n + 1 > b->alloc) {
                size_t a = b->alloc ? b->alloc : 16384;
                while (a < b->len + n + 1)
                        a *= 2;
                char *d = realloc(b->data, a);
                if (!d)
                        return CURL_WRITEFUNC_ERROR;
                b->data = d;
                b->alloc = a;
        }
        memcpy(b->data + b->len, ptr, n);
        b->len += n;
        b->data[b->len] = 0;
        return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nitems, void *userdata) {
        struct body *b = userdata;
        size_t n = size * nitems;
        if (n > 5 && memcmp(ptr, "HTTP/", 5) == 0) {
                size_t k = n;
                while (k > 0 && (ptr[k - 1] == '\r' || ptr[k - 1] == '\n' || ptr[k - 1] == ' '))
                        k--;
                if (k >= sizeof(b->status_line))
                        k = sizeof(b->status_line) - 1;
                memcpy(b->status_line, ptr, k);
                b->status_line[k] = 0;
        }
        return n;
}

static void body_reset(struct body *b) {
        free(b->data);
        b->data = NULL;
        b->len = b->alloc = 0;
        b->too_big = b->checked_status = b->discard = false;
        b->status_line[0] = 0;
}

/* "HTTP 503 Service Unavailable" from the status line, or "HTTP 503". */
static void describe_status(char *buf, size_t len, long status, const char *status_line) {
        const char *phrase = NULL;
        /* "HTTP/1.1 503 Service Unavailable": skip the version and the code. */
        const char *sp = strchr(status_line, ' ');
        if (sp) {
                sp = strchr(sp + 1, ' ');
                if (sp && sp[1])
                        phrase = sp + 1;
        }
        if (phrase)
                snprintf(buf, len, "HTTP %ld %s", status, phrase);
        else
                snprintf(buf, len, "HTTP %ld", status);
}

static void sleep_usec(uint64_t usec) {
        struct timespec ts = {
                .tv_sec = (time_t)(usec / 1000000),
                .tv_nsec = (long)(usec % 1000000) * 1000,
        };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static uint64_t seed_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^ now_usec();
}

static bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

enum verdict { ATTEMPT_OK, ATTEMPT_RETRY, ATTEMPT_FAIL };

static void body_freep(struct body *b) {
        free(b->data);
}

int http_get(const char *url, const struct http_options *o, char **ret_body, size_t *ret_len) {
        static const struct http_options defaults = {};
        int r;

        if (!o)
                o = &defaults;
        const char *what = o->what ? o->what : "download";
        size_t max_body = o->max_body > 0 ? o->max_body : DEFAULT_MAX_BODY;
        const char *hint = o->hint ? o->hint : "Check that the server is reachable from this machine and serves the file.";

        if (isempty(url))
                return log_error_errno(EINVAL, "%s: no URL given.", what);
        url_register_secret(url);
        _cleanup_free_ char *shown = url_redact(url);
        if (!shown)
                return log_oom();
        _cleanup_free_ char *problem = url_parse_problem(url);
        if (problem)
                return log_error_errno(EINVAL, "%s: %s is not a valid URL: %s.", what, shown, problem);

        _cleanup_curl_ CURL *c = NULL;
        r = http_easy_new(o->insecure, o->connect_timeout_sec, o->stall_timeout_sec, &c);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "%s: cannot set up libcurl to fetch %s.", what, shown);

        char errbuf[CURL_ERROR_SIZE];
        _cleanup_(body_freep) struct body b = { .curl = c, .max = max_body };
        if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &b) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HEADERDATA, &b) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_body) != CURLE_OK)
                return log_error_errno(EIO, "%s: cannot set up libcurl to fetch %s.", what, shown);

        const struct retry_policy policy = {
                .base_usec = o->retry_base_usec > 0 ? o->retry_base_usec : DEFAULT_RETRY_BASE_USEC,
                .cap_usec = o->retry_cap_usec > 0 ? o->retry_cap_usec : DEFAULT_RETRY_CAP_USEC,
                .deadline_usec = o->deadline_sec > 0 ? (uint64_t)o->deadline_sec * UINT64_C(1000000) : 0,
        };
        long connect_ms = (o->connect_timeout_sec > 0 ? o->connect_timeout_sec : DEFAULT_CONNECT_TIMEOUT_SEC) * 1000L;
        struct retry_state rs;
        retry_init(&rs, now_usec(), seed_now());

        for (;;) {
                unsigned attempt = rs.attempt + 1;
                char reason[CURL_ERROR_SIZE + 128];
                enum verdict v;
                int err = 0;
                bool timed_out = false;

                if (policy.deadline_usec > 0) {
                        uint64_t elapsed = now_usec() - rs.start_usec;
                        uint64_t left = elapsed < policy.deadline_usec ? policy.deadline_usec - elapsed : 0;
                        if (left < MIN_ATTEMPT_USEC)
                                left = MIN_ATTEMPT_USEC;
                        long left_ms = (long)(left / 1000);
                        (void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, left_ms);
                        (void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, left_ms < connect_ms ? left_ms : connect_ms);
                }

                body_reset(&b);
                errbuf[0] = 0;
                CURLcode cc = curl_easy_perform(c);
                long status = 0;
                (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);

                if (cc == CURLE_OK) {
                        if (status == 0 || (status >= 200 && status <= 299)) {
                                /* file:// has no status: 0. */
                                if (!b.data) {
                                        b.data = strdup("");
                                        if (!b.data)
                                                return log_oom();
                                }
                                if (ret_len)
                                        *ret_len = b.len;
                                *ret_body = TAKE_PTR(b.data);
                                return 0;
                        }
                        describe_status(reason, sizeof(reason), status, b.status_line);
                        if (http_status_retryable(status))
                                v = ATTEMPT_RETRY;
                        else {
                                v = ATTEMPT_FAIL;
                                err = http_status_to_errno(status);
                        }
                } else if (b.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
                        char sz[32];
                        return log_error_errno(EFBIG, "%s: %s is larger than %s, the most this agent accepts here. "
                                               "Check that the URL points at the right file.",
                                               what, shown, format_bytes(sz, sizeof(sz), max_body));
                } else {
                        snprintf(reason, sizeof(reason), "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
                        size_t k = strlen(reason);
                        while (k > 0 && (reason[k - 1] == '\n' || reason[k - 1] == ' '))
                                reason[--k] = 0;
                        timed_out = cc == CURLE_OPERATION_TIMEDOUT;
                        if (timed_out && startswith(reason, "Operation too slow"))
                                snprintf(reason, sizeof(reason), "stalled: nothing received for %ld s",
                                         o->stall_timeout_sec > 0 ? o->stall_timeout_sec : DEFAULT_STALL_TIMEOUT_SEC);
                        if (http_curl_retryable(cc))
                                v = ATTEMPT_RETRY;
                        else
                                v = ATTEMPT_FAIL;
                        switch (cc) {
                        case CURLE_OUT_OF_MEMORY:
                                return log_oom();
                        case CURLE_FILE_COULDNT_READ_FILE:
                                return log_error_errno(ENOENT, "%s: cannot read %s: %s. Check the path.", what, shown, reason);
                        case CURLE_URL_MALFORMAT:
                                return log_error_errno(EINVAL, "%s: %s is not a valid URL: %s.", what, shown, reason);
                        case CURLE_UNSUPPORTED_PROTOCOL:
                                return log_error_errno(EPROTO, "%s: %s: %s. Only http://, https:// and file:// URLs are "
                                                       "supported (redirects only to http:// and https://).",
                                                       what, shown, reason);
                        case CURLE_TOO_MANY_REDIRECTS:
                                return log_error_errno(EPROTO, "%s: %s: %s. Check the server's redirects.", what, shown, reason);
                        case CURLE_PEER_FAILED_VERIFICATION:
                        case CURLE_SSL_CACERT_BADFILE:
                        case CURLE_SSL_CERTPROBLEM:
                                return log_error_errno(EIO, "%s: the TLS certificate of %s cannot be verified against "
                                                       "the system's CAs: %s. Give the server a trusted certificate, or "
                                                       "(at your own risk) add rd.noverifyssl to the kernel command line.",
                                                       what, shown, reason);
                        default:
                                err = -EIO;
                        }
                }

                if (v == ATTEMPT_FAIL) {
                        switch (err) {
                        case -ENOENT:
                                return log_error_errno(err, "%s: %s answered %s: the file is not there. Check the URL "
                                                       "(host, path and file name) against what the server serves.",
                                                       what, shown, reason);
                        case -EACCES:
                                return log_error_errno(err, "%s: %s answered %s: access refused. Check the server's "
                                                       "access rules or the credentials in the URL.",
                                                       what, shown, reason);
                        case -EPROTO:
                                return log_error_errno(err, "%s: %s answered %s; this is not retried. Check the URL "
                                                       "and the server.", what, shown, reason);
                        default:
                                return log_error_errno(err, "%s: cannot fetch %s: %s.", what, shown, reason);
                        }
                }

                /* A failure worth retrying. */
                uint64_t now = now_usec();
                uint64_t delay = retry_next_delay(&policy, &rs, now);
                if (delay != UINT64_MAX && (status == 429 || status == 503)) {
                        curl_off_t ra = 0;
                        if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0) {
                                uint64_t want = (uint64_t)ra * UINT64_C(1000000);
                                if (want > policy.cap_usec)
                                        want = policy.cap_usec;
                                uint64_t left = policy.deadline_usec - (now - rs.start_usec);
                                if (want > left)
                                        want = left;
                                if (want > delay)
                                        delay = want;
                        }
                }
                uint64_t elapsed = now - rs.start_usec;
                if (delay != UINT64_MAX && elapsed + delay + MIN_ATTEMPT_USEC > policy.deadline_usec)
                        delay = UINT64_MAX;

                if (delay == UINT64_MAX) {
                        if (policy.deadline_usec == 0)
                                return log_error_errno(timed_out ? ETIMEDOUT : EIO,
                                                       "%s: cannot fetch %s: %s. %s", what, shown, reason, hint);
                        log_warning("%s: attempt %u failed: %s (%s); no time left before the deadline",
                                    what, attempt, reason, shown);
                        return log_error_errno(ETIMEDOUT, "%s: giving up on %s after %u attempts in %.0f s "
                                               "(the deadline is %" PRIi64 " s); the last one failed with: %s. %s",
                                               what, shown, attempt, (double)elapsed / 1e6,
                                               o->deadline_sec, reason, hint);
                }
                log_warning("%s: attempt %u failed: %s (%s); next try in %.1f s",
                            what, attempt, reason, shown, (double)delay / 1e6);
                sleep_usec(delay);
        }
}
