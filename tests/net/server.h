/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper: runs tests/net/fault-server.py (see the top of that file for its URL interface)
 * on 127.0.0.1 and talks to its /__requests log. Linked into the net and download tests through
 * the static library `test_server_lib` (dependency `test_server_dep`, tests/net/meson.build).
 * The server exits when the test process dies (it watches its stdin).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util.h"

struct test_server {
        pid_t pid;
        int port;
        int tls_port;  /* the HTTPS listener's, test_server_start_tls() only; else 0 */
        int stdin_fd;  /* our end of the server's stdin: closing it stops the server */
        int stdout_fd;
};

/* Starts the server on dir (python3 found at build time; $FAULT_SERVER_PYTHON and
 * $FAULT_SERVER_SCRIPT override). Waits up to 30 s for its port. 0 or -errno; on failure the
 * reason is printed on stderr. */
int test_server_start(const char *dir, struct test_server *ret);
/* The same with an HTTPS listener too, with the PEM certificate and key given. */
int test_server_start_tls(const char *dir, const char *cert, const char *key, struct test_server *ret);
/* "https://127.0.0.1:TLS_PORT" followed by the formatted path. NULL on OOM. */
char *test_server_tls_url(const struct test_server *s, const char *path_fmt, ...) _printf_(2, 3);
/* Makes a self-signed certificate for 127.0.0.1 (CN and IP SAN) with openssl into dir/cert.pem and
 * dir/key.pem. 0 or -errno (openssl's output on stderr). */
int test_make_self_signed(const char *dir);

/* Stops it and reaps it. Safe to call twice. */
void test_server_stop(struct test_server *s);

/* "http://127.0.0.1:PORT" followed by the formatted path (which starts with '/'). NULL on OOM. */
char *test_server_url(const struct test_server *s, const char *path_fmt, ...) _printf_(2, 3);

/* Body of GET /__requests?prefix=PREFIX (prefix may be NULL): a JSON array, one request object
 * per line. 0 or -errno. */
int test_server_requests(const struct test_server *s, const char *prefix, char **ret_json);
/* The request lines of that log (each one JSON object, without the trailing comma), oldest first.
 * 0 or -errno; *ret is NULL when there are none. */
int test_server_request_lines(const struct test_server *s, const char *prefix, char ***ret);
/* How many requests were recorded with a path starting with prefix, or -errno. */
int test_server_count(const struct test_server *s, const char *prefix);
/* Clears the log and the per-(mode, file) counters. 0 or -errno. */
int test_server_reset(const struct test_server *s);

/* Small file-system helpers for tests. */
/* A new directory /tmp/hia-test-XXXXXX (or under $TMPDIR). 0 or -errno. */
int test_mkdtemp(char **ret);
/* Removes dir and everything below it (no symlinks followed). 0 or -errno. */
int test_rm_rf(const char *dir);
/* Writes data to dir/name (mode 0644). 0 or -errno. */
int test_write_file(const char *dir, const char *name, const void *data, size_t len);
