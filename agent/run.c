/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "log.h"

/* Being written: fails loudly until the real command lands. */
int cmd_run(const struct global_opts *g, int argc, char **argv) {
        log_error("The \"run\" command is not built yet in this version.");
        return EXIT_NOT_BUILT;
}
