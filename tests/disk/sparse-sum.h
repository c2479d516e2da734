/* SPDX-License-Identifier: Apache-2.0 */
/* A checksum of a sparse image that reads only its data extents (SEEK_DATA/SEEK_HOLE): the
 * extent map and the bytes in it. Any write to the image changes it, even zeros into a hole.
 * Reading 300 GiB of holes through sha256sum takes minutes; this takes milliseconds. */
#pragma once

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static inline uint64_t sparse_sum_mix(uint64_t h, const void *p, size_t n) {
        const unsigned char *b = p;
        for (size_t i = 0; i < n; i++) {
                h ^= b[i];
                h *= UINT64_C(0x100000001b3); /* FNV-1a 64 */
        }
        return h;
}

/* 0 and *ret, or -errno. */
static inline int sparse_sum_fd(int fd, uint64_t *ret) {
        static unsigned char buf[1 << 20];
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        off_t end = lseek(fd, 0, SEEK_END), pos = 0;
        if (end < 0)
                return -errno;
        h = sparse_sum_mix(h, &end, sizeof end);
        while (pos < end) {
                off_t d = lseek(fd, pos, SEEK_DATA);
                if (d < 0) {
                        if (errno == ENXIO)
                                break;
                        return -errno;
                }
                off_t hole = lseek(fd, d, SEEK_HOLE);
                if (hole < 0)
                        return -errno;
                h = sparse_sum_mix(h, &d, sizeof d);
                h = sparse_sum_mix(h, &hole, sizeof hole);
                for (off_t o = d; o < hole;) {
                        size_t want = (size_t)(hole - o) < sizeof buf ? (size_t)(hole - o) : sizeof buf;
                        ssize_t k = pread(fd, buf, want, o);
                        if (k < 0)
                                return -errno;
                        if (k == 0)
                                break;
                        h = sparse_sum_mix(h, buf, (size_t)k);
                        o += k;
                }
                pos = hole;
        }
        *ret = h;
        return 0;
}
