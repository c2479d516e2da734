/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the configuration tests (include after <cmocka.h>). */
#pragma once

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "schema.h"
#include "util.h"
#include "dryrun.h"

static char *helpers_dir;

static inline int helpers_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

/* A private temporary directory for this test program, removed by helpers_cleanup(). */
static inline const char *test_tmpdir(void) {
        if (!helpers_dir) {
                const char *base = getenv("TMPDIR");
                helpers_dir = strdup_printf("%s/hia-config-XXXXXX", isempty(base) ? "/tmp" : base);
                assert_non_null(helpers_dir);
                assert_non_null(mkdtemp(helpers_dir));
        }
        return helpers_dir;
}

static inline void helpers_cleanup(void) {
        if (helpers_dir)
                (void)nftw(helpers_dir, helpers_rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(helpers_dir);
        helpers_dir = NULL;
}

/* Writes content to <tmpdir>/name; returns the malloc'ed path. */
static inline char *write_tmp(const char *name, const char *content) {
        char *path = strdup_printf("%s/%s", test_tmpdir(), name);
        assert_non_null(path);
        assert_int_equal(write_file_atomic(path, content, strlen(content), 0644), 0);
        return path;
}

static inline char *fixture_path(const char *name) {
        const char *src = getenv("TESTS_SOURCE_DIR");
        assert_non_null(src);
        char *p = strdup_printf("%s/config/fixtures/%s", src, name);
        assert_non_null(p);
        return p;
}

static inline char *fixture_text(const char *name) {
        _cleanup_free_ char *p = fixture_path(name);
        char *text = NULL;
        assert_int_equal(read_full_file(p, &text, NULL), 0);
        return text;
}

/* stderr captured into a file while a function runs. */
struct capture {
        int saved;
        char *path;
};

static inline void capture_begin(struct capture *c) {
        c->path = strdup_printf("%s/stderr.XXXXXX", test_tmpdir());
        assert_non_null(c->path);
        int fd = mkstemp(c->path);
        assert_true(fd >= 0);
        fflush(stderr);
        c->saved = dup(STDERR_FILENO);
        assert_true(c->saved >= 0);
        assert_true(dup2(fd, STDERR_FILENO) >= 0);
        close(fd);
}

static inline char *capture_end(struct capture *c) {
        fflush(stderr);
        assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
        close(c->saved);
        char *text = NULL;
        assert_int_equal(read_full_file(c->path, &text, NULL), 0);
        unlink(c->path);
        free(c->path);
        c->path = NULL;
        return text;
}

/* config_load() over a kernel command line and a YAML text (NULL: no --config), stderr captured. */
static inline int load_capture(const char *cmdline, const char *yaml, struct config **ret, char **ret_err) {
        _cleanup_free_ char *cpath = write_tmp("cmdline", strempty(cmdline));
        _cleanup_free_ char *ypath = yaml ? write_tmp("config.yaml", yaml) : NULL;
        struct config_source src = { .cmdline_file = cpath, .config_file = ypath };
        struct capture cap;
        log_forget_secrets(); /* each configuration registers its own; keep tests independent */
        capture_begin(&cap);
        int r = config_load(&src, ret);
        char *err = capture_end(&cap);
        if (ret_err)
                *ret_err = err;
        else
                free(err);
        return r;
}

/* config_from_text() with the YAML named "config.yaml". */
static inline int from_text(const char *cmdline, const char *yaml, struct diags *d, struct config **ret) {
        log_forget_secrets(); /* each configuration registers its own; keep tests independent */
        return config_from_text(cmdline, yaml, yaml ? strlen(yaml) : 0, yaml ? "config.yaml" : NULL, d, ret);
}

/* Prints the diags (for the test log) and returns how many problems name path. */
static inline size_t problems_at(const struct diags *d, const char *path) {
        size_t n = 0;
        for (size_t i = 0; i < d->n; i++)
                if (!d->items[i].warning && streq(d->items[i].path, path))
                        n++;
        return n;
}

static inline void dump_diags(const struct diags *d) {
        for (size_t i = 0; i < d->n; i++) {
                _cleanup_free_ char *s = diag_format(&d->items[i]);
                print_message("  %s %s\n", d->items[i].warning ? "warning:" : "problem:", s ? s : "?");
        }
}

/* A configuration that passes validation (create, static VIP, DHCP), to break one rule at a time. */
#define VALID_CREATE                                                                                     \
        "scheme_version: 1\n"                                                                            \
        "token: Token-123\n"                                                                             \
        "os:\n"                                                                                          \
        "  hostname: node1\n"                                                                            \
        "  password: Secret-Pass-42\n"                                                                   \
        "install:\n"                                                                                     \
        "  mode: create\n"                                                                               \
        "  automatic: true\n"                                                                            \
        "  management_interface:\n"                                                                      \
        "    interfaces:\n"                                                                              \
        "      - name: ens5\n"                                                                           \
        "  device: /dev/sda\n"                                                                           \
        "  iso_url: http://10.0.0.10/harvester.iso\n"                                                    \
        "  iso_checksum_url: http://10.0.0.10/harvester.sha512\n"                                       \
        "  vip: 10.0.0.99\n"                                                                             \
        "  vip_mode: static\n"
