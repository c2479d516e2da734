/* SPDX-License-Identifier: Apache-2.0 */
/* For the net tests that read the agent's captured log (log_set_capture_file()): include after
 * <cmocka.h>. */
#pragma once

#include "util.h"

/* What the log at capture gained since the last call (in this test program): the lines one step
 * of a test printed. Never NULL (the test fails instead). */
static inline char *log_since_last(const char *capture) {
        static size_t seen;
        char *all = NULL;
        size_t len = 0;
        assert_int_equal(read_full_file(capture, &all, &len), 0);
        char *r = strdup(all + (seen < len ? seen : len));
        seen = len;
        free(all);
        assert_non_null(r);
        return r;
}
