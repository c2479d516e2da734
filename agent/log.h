/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging. Every message is one line, prefixed "harvester-install: ", written to stderr and, once
 * log_open_consoles() ran (the `run` command), to every active console as well. Registered secrets
 * are replaced by "<redacted>" in every line before it goes anywhere, the capture file included.
 *
 * Convention: functions return negative errno values; the place that knows what the user was doing
 * logs one message and returns the error in one statement:
 *         return log_error_errno(r, "Cannot read '%s': %s", path, strerror(-r));
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>

#include "util.h"

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARNING, LOG_LEVEL_ERROR };

void log_set_max_level(enum log_level level);
/* Writes to every console listed in <sysroot>/sys/class/tty/console/active (or the given
 * space-separated list of tty names, e.g. from console= arguments). Returns how many opened. */
int log_open_consoles(const char *tty_names);
void log_close_consoles(void);
/* Also appends every line (redacted) to this file, created 0600. 0 or -errno. */
int log_set_capture_file(const char *path);
const char *log_capture_file(void);

/* Secrets shorter than this are hidden only where they stand as a whole word (README, "Secrets"). */
#define LOG_SECRET_MIN_WORD 4
/* A console that does not take a line within this time loses that line (the others still get it). */
#define LOG_CONSOLE_LINE_TIMEOUT_MSEC 10000

/* Registers a secret to scrub from all output (copied; empty strings and NULL are ignored). */
void log_add_secret(const char *secret);
void log_forget_secrets(void);
/* Returns a malloc'ed copy of s with every registered secret replaced by "<redacted>": all secrets
 * at once on the original text, overlapping ones merged into one marker; secrets shorter than
 * LOG_SECRET_MIN_WORD only as whole words. Control characters are kept (log lines escape them). */
char *log_redact(const char *s);

/* Returns -abs(error) when error != 0, else 0, so that callers can `return log_...(r, ...)`. */
int log_internal(enum log_level level, int error, const char *fmt, ...) _printf_(3, 4);
int log_internalv(enum log_level level, int error, const char *fmt, va_list ap) _printf_(3, 0);

#define log_debug(...) log_internal(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_internal(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_LEVEL_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_LEVEL_ERROR, (e), __VA_ARGS__)
#define log_oom() log_internal(LOG_LEVEL_ERROR, ENOMEM, "Out of memory.")

/* The text of the last error logged (redacted), or NULL: the FAILED marker repeats it. */
const char *log_last_error(void);

/*
 * Marker lines for the QEMU harness and for operators grepping a serial log:
 *   "[harvester-install] STAGE <name>"            a stage begins
 *   "[harvester-install] FAILED: <one line>"       the install stopped
 *   "[harvester-install] SUCCEEDED"                the install completed
 * Written at info level whatever the max level is.
 */
void log_marker(const char *fmt, ...) _printf_(1, 2);
