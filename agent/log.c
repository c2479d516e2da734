/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
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

/* Called with log_lock held. Longest secrets first would matter only for overlapping secrets;
 * each occurrence of each secret is replaced, left to right. */
static char *redact_locked(const char *s) {
        char *out = strdup(s);
        STRV_FOREACH(sec, secrets) {
                if (!out)
                        return NULL;
                size_t k = strlen(*sec);
                char *hit = strstr(out, *sec);
                if (!hit)
                        continue;
                size_t n = 0;
                for (char *h = hit; h; h = strstr(h + k, *sec))
                        n++;
                size_t len = strlen(out) - n * k + n * strlen("<redacted>") + 1;
                char *r = malloc(len), *w = r;
                if (!r) {
                        free(out);
                        return NULL;
                }
                const char *from = out;
                for (char *h = hit; h; from = h + k, h = strstr(from, *sec)) {
                        memcpy(w, from, (size_t)(h - from));
                        w = stpcpy(w + (h - from), "<redacted>");
                }
                strcpy(w, from);
                free(out);
                out = r;
        }
        return out;
}

char *log_redact(const char *s) {
        pthread_mutex_lock(&log_lock);
        char *r = redact_locked(s);
        pthread_mutex_unlock(&log_lock);
        return r;
}

static void write_all(int fd, const char *buf, size_t len) {
        while (len > 0) {
                ssize_t k = write(fd, buf, len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return;
                buf += k;
                len -= (size_t)k;
        }
}

static void emit(enum log_level level, const char *text) {
        static const char *const prefix[] = {
                [LOG_LEVEL_DEBUG] = "debug: ",
                [LOG_LEVEL_INFO] = "",
                [LOG_LEVEL_WARNING] = "warning: ",
                [LOG_LEVEL_ERROR] = "error: ",
        };
        pthread_mutex_lock(&log_lock);
        _cleanup_free_ char *clean = redact_locked(text);
        _cleanup_free_ char *line = strdup_printf("harvester-install: %s%s\n", prefix[level],
                                                  clean ? clean : "(message lost: out of memory)");
        if (level == LOG_LEVEL_ERROR && clean) {
                free(last_error);
                last_error = strdup(clean);
        }
        if (line) {
                size_t len = strlen(line);
                write_all(STDERR_FILENO, line, len);
                for (size_t i = 0; i < n_consoles; i++)
                        write_all(console_fds[i], line, len);
                if (capture_fd >= 0)
                        write_all(capture_fd, line, len);
        }
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
        if (!line)
                return;
        pthread_mutex_lock(&log_lock);
        _cleanup_free_ char *clean = redact_locked(line);
        _cleanup_free_ char *out = strdup_printf("%s\n", clean ? clean : "[harvester-install] ?");
        if (out) {
                write_all(STDERR_FILENO, out, strlen(out));
                for (size_t i = 0; i < n_consoles; i++)
                        write_all(console_fds[i], out, strlen(out));
                if (capture_fd >= 0)
                        write_all(capture_fd, out, strlen(out));
        }
        pthread_mutex_unlock(&log_lock);
}
