/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "log.h"

#define MAX_CONSOLES 8

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level max_level = LOG_LEVEL_INFO;
static int console_fds[MAX_CONSOLES];
static size_t n_consoles;
static int capture_fd = -1;
static char *capture_path;
static char **secrets;
static char *last_error;

void log_set_max_level(enum log_level level) {
        max_level = level;
}

static void add_console(const char *name) {
        if (n_consoles >= MAX_CONSOLES || isempty(name))
                return;
        /* "ttyS0,115200n8" -> "ttyS0" */
        char dev[64];
        snprintf(dev, sizeof(dev), "/dev/%.*s", (int)strcspn(name, ","), name);
        int fd = open(dev, O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return;
        console_fds[n_consoles++] = fd;
}

int log_open_consoles(const char *tty_names) {
        _cleanup_free_ char *buf = NULL;
        if (!tty_names) {
                if (read_full_file("/sys/class/tty/console/active", &buf, NULL) < 0)
                        return 0;
                tty_names = buf;
        }
        _cleanup_free_ char *copy = strdup(tty_names);
        if (!copy)
                return 0;
        pthread_mutex_lock(&log_lock);
        char *save = NULL;
        for (char *t = strtok_r(copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
                add_console(t);
        int n = (int)n_consoles;
        pthread_mutex_unlock(&log_lock);
        return n;
}

void log_close_consoles(void) {
        pthread_mutex_lock(&log_lock);
        for (size_t i = 0; i < n_consoles; i++)
                close(console_fds[i]);
        n_consoles = 0;
        pthread_mutex_unlock(&log_lock);
}

int log_set_capture_file(const char *path) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        char *p = strdup(path);
        if (!p) {
                close(fd);
                return -ENOMEM;
        }
        pthread_mutex_lock(&log_lock);
        if (capture_fd >= 0)
                close(capture_fd);
        free(capture_path);
        capture_fd = fd;
        capture_path = p;
        pthread_mutex_unlock(&log_lock);
        return 0;
}

const char *log_last_error(void) {
        return last_error;
}

const char *log_capture_file(void) {
        return capture_path;
}

void log_add_secret(const char *secret) {
        if (isempty(secret))
                return;
        pthread_mutex_lock(&log_lock);
        if (!strv_contains(secrets, secret))
                (void)strv_push(&secrets, secret);
        pthread_mutex_unlock(&log_lock);
}

void log_forget_secrets(void) {
        pthread_mutex_lock(&log_lock);
        strv_free(secrets);
        secrets = NULL;
        pthread_mutex_unlock(&log_lock);
}

/* Whether s[i] is a letter, digit or '_' (a character a short secret's word is made of). */
static bool is_word_char(unsigned char ch) {
        return isalnum(ch) || ch == '_' || ch >= 0x80;
}

/*
 * Called with log_lock held. Every registered secret is searched in the original text (overlapping
 * occurrences included) and the bytes it covers are marked; each run of marked bytes becomes one
 * "<redacted>". The result does not depend on the order the secrets were registered in: a secret
 * that contains another (Harvester2024 in Harvester2024-hook-Xy9) is hidden whole, overlapping
 * secrets merge into one marker, and nothing is ever matched inside a "<redacted>" put there
 * earlier. Secrets shorter than LOG_SECRET_MIN_WORD characters are hidden only where they stand
 * as a whole word (not preceded or followed by a letter, digit or '_'): a one-character password
 * would otherwise garble every line.
 */
static char *redact_locked(const char *s) {
        size_t n = strlen(s);
        _cleanup_free_ bool *mark = NULL;
        bool any = false;
        STRV_FOREACH(sec, secrets) {
                size_t k = strlen(*sec);
                for (const char *h = strstr(s, *sec); h; h = strstr(h + 1, *sec)) {
                        size_t at = (size_t)(h - s);
                        if (k < LOG_SECRET_MIN_WORD &&
                            ((at > 0 && is_word_char((unsigned char)s[at - 1])) ||
                             is_word_char((unsigned char)s[at + k])))
                                continue;
                        if (!mark) {
                                mark = calloc(n + 1, sizeof(bool));
                                if (!mark)
                                        return NULL;
                        }
                        memset(mark + at, 1, k * sizeof(bool));
                        any = true;
                }
        }
        if (!any)
                return strdup(s);
        size_t runs = 0;
        for (size_t i = 0; i < n; i++)
                if (mark[i] && (i == 0 || !mark[i - 1]))
                        runs++;
        char *out = malloc(n + runs * strlen("<redacted>") + 1), *w = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (!mark[i])
                        *w++ = s[i];
                else if (i == 0 || !mark[i - 1])
                        w = stpcpy(w, "<redacted>");
        }
        *w = 0;
        return out;
}

char *log_redact(const char *s) {
        pthread_mutex_lock(&log_lock);
        char *r = redact_locked(s);
        pthread_mutex_unlock(&log_lock);
        return r;
}

/* Writes the whole buffer. A console is non-blocking (a stuck one must not hang the install
 * forever), so EAGAIN waits for it to drain, for at most LOG_CONSOLE_LINE_TIMEOUT_MSEC per line:
 * a slow serial console gets every line, the FAILED line included. */
static void write_all(int fd, const char *buf, size_t len) {
        uint64_t deadline = now_usec() + (uint64_t)LOG_CONSOLE_LINE_TIMEOUT_MSEC * 1000;
        while (len > 0) {
                ssize_t k = write(fd, buf, len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                        uint64_t now = now_usec();
                        if (now >= deadline)
                                return;
                        struct pollfd p = { .fd = fd, .events = POLLOUT };
                        uint64_t left_ms = (deadline - now + 999) / 1000;
                        if (poll(&p, 1, (int)left_ms) < 0 && errno != EINTR)
                                return;
                        continue;
                }
                if (k <= 0)
                        return;
                buf += k;
                len -= (size_t)k;
        }
}

/* Called with log_lock held: one line (text without its newline) to every output, with the
 * secrets hidden and every control character escaped, so that nothing that came from outside
 * (a server's reason phrase, a header, an ISO's file name) can start a line of its own, move the
 * cursor or fake a marker. */
static void write_line_locked(const char *text) {
        _cleanup_free_ char *clean = redact_locked(text);
        _cleanup_free_ char *escaped = clean ? escape_controls(clean) : NULL;
        _cleanup_free_ char *line = strdup_printf("%s\n", escaped ? escaped : "harvester-install: (message lost: out of memory)");
        if (!line)
                return;
        size_t len = strlen(line);
        write_all(STDERR_FILENO, line, len);
        for (size_t i = 0; i < n_consoles; i++)
                write_all(console_fds[i], line, len);
        if (capture_fd >= 0)
                write_all(capture_fd, line, len);
}

static void emit(enum log_level level, const char *text) {
        static const char *const prefix[] = {
                [LOG_LEVEL_DEBUG] = "debug: ",
                [LOG_LEVEL_INFO] = "",
                [LOG_LEVEL_WARNING] = "warning: ",
                [LOG_LEVEL_ERROR] = "error: ",
        };
        pthread_mutex_lock(&log_lock);
        if (level == LOG_LEVEL_ERROR) {
                /* The FAILED marker repeats the message alone, without the prefix. */
                _cleanup_free_ char *clean = redact_locked(text);
                free(last_error);
                last_error = clean ? escape_controls(clean) : NULL;
        }
        _cleanup_free_ char *line = strdup_printf("harvester-install: %s%s", prefix[level], text);
        write_line_locked(line ? line : "harvester-install: (message lost: out of memory)");
        pthread_mutex_unlock(&log_lock);
}

int log_internalv(enum log_level level, int error, const char *fmt, va_list ap) {
        int saved = errno;
        if (error < 0)
                error = -error;
        if (level >= max_level) {
                _cleanup_free_ char *text = NULL;
                if (vasprintf(&text, fmt, ap) < 0)
                        text = NULL;
                emit(level, text ? text : fmt);
        }
        errno = saved;
        return -error;
}

int log_internal(enum log_level level, int error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = log_internalv(level, error, fmt, ap);
        va_end(ap);
        return r;
}

void log_marker(const char *fmt, ...) {
        va_list ap;
        _cleanup_free_ char *text = NULL;
        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        _cleanup_free_ char *line = strdup_printf("[harvester-install] %s", text ? text : fmt);
        pthread_mutex_lock(&log_lock);
        write_line_locked(line ? line : "[harvester-install] ?");
        pthread_mutex_unlock(&log_lock);
}
