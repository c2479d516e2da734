/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hash pipeline: the receiving thread hands each chunk to hashpipe_write(), which copies it into
 * a bounded ring of buffers; a full buffer goes to two threads at once: one hashes it (OpenSSL EVP),
 * one writes it to the file (pwrite at its offset). Hashing and writing thus run on other cores than
 * the receiving, overlapped with it. When they fall behind, hashpipe_write() waits for a free buffer
 * (back-pressure), so memory stays bounded at n_slots * slot_size whatever the file size. The file
 * is never read back.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "checksum.h"

struct hashpipe;

#define HASHPIPE_SLOT_SIZE_DEFAULT (256 * 1024)
#define HASHPIPE_SLOTS_DEFAULT 4

/* fd: where the data goes (written at offset 0 on, with pwrite; the caller keeps ownership), or -1
 * to hash only. slot_size/n_slots 0: the defaults above (n_slots at least 2). Starts the hashing
 * thread. 0, -ENOMEM, or -errno from pthread_create. */
int hashpipe_new(enum checksum_algo algo, int fd, size_t slot_size, unsigned n_slots,
                 struct hashpipe **ret);
/* Stops the hashing thread and frees everything. NULL is fine. */
void hashpipe_free(struct hashpipe *p);
static inline void hashpipe_freep(struct hashpipe **p) { hashpipe_free(*p); }
#define _cleanup_hashpipe_ __attribute__((cleanup(hashpipe_freep)))

/* Takes len bytes: they will be written to the file and hashed, in order. Returns 0, or the first
 * error that happened so far (-ENOSPC, -EIO, ... from writing; -EIO from the hasher; writes happen
 * behind, so an error shows at a later call or at hashpipe_finish()); after an error every call
 * returns it. */
int hashpipe_write(struct hashpipe *p, const void *data, size_t len);
/* Bytes taken by hashpipe_write() since the start or the last reset: where a resume continues. */
uint64_t hashpipe_bytes(const struct hashpipe *p);
/* Discards everything: waits for the hasher, truncates the file to 0, restarts the hash. 0 or -errno
 * (an earlier write error stays sticky). */
int hashpipe_reset(struct hashpipe *p);
/* Writes what is buffered, waits for the hasher, and returns the digest as lowercase hex (the
 * pipeline is finished: only hashpipe_free() may follow). 0 or -errno. */
int hashpipe_finish(struct hashpipe *p, struct checksum *ret);
