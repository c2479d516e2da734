/* SPDX-License-Identifier: Apache-2.0 */
/* sparse-sum FILE...: prints "<hex>  FILE" per file (see sparse-sum.h). */
#include <inttypes.h>
#include <stdio.h>

#include "sparse-sum.h"

int main(int argc, char **argv) {
        int ret = 0;
        for (int i = 1; i < argc; i++) {
                uint64_t h = 0;
                int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
                int r = fd < 0 ? -errno : sparse_sum_fd(fd, &h);
                if (fd >= 0)
                        close(fd);
                if (r < 0) {
                        fprintf(stderr, "sparse-sum: %s: %s\n", argv[i], strerror(-r));
                        ret = 1;
                        continue;
                }
                printf("%016" PRIx64 "  %s\n", h, argv[i]);
        }
        return ret;
}
