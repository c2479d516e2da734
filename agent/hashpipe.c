/* SPDX-License-Identifier: Apache-2.0 */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "hashpipe.h"
#include "util.h"

/*
 * Ring: slots[head] is the one the producer fills (when filled < n); slots[tail] is the oldest
 * filled one, hashed by the hasher. A slot stays counted in `filled` while it is being hashed, so
 * the producer never overwrites data the hasher still reads. Only the hasher touches ctx, except
 * while the ring is empty and the hasher waits (reset, finish), under the lock.
 */
struct hashpipe {
        pthread_mutex_t lock;
        pthread_cond_t cond_filled; /* producer -> hasher: a slot was filled, or stop */
        pthread_cond_t cond_free;   /* hasher -> producer: a slot was freed */
        pthread_t thread;
        bool thread_started;

        unsigned n_slots;
        size_t slot_size;
        unsigned char **slots;
        size_t *lens;
        unsigned head, tail, filled;
        bool stop;
        int hasher_error;           /* -EIO when EVP failed */

        /* Producer side only (the receiving thread). */
        size_t fill;                /* bytes in slots[head] not yet written/handed over */
        int fd;
        uint64_t file_offset;       /* bytes written to the file */
        uint64_t taken;             /* bytes accepted by hashpipe_write */
        int error;                  /* sticky */
        bool finished;

        const EVP_MD *md;
        EVP_MD_CTX *ctx;
};

static void *hasher_main(void *userdata) {
        struct hashpipe *p = userdata;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (p->filled == 0 && !p->stop)
                        pthread_cond_wait(&p->cond_filled, &p->lock);
                if (p->filled == 0 && p->stop)
                        break;
                unsigned i = p->tail;
                pthread_mutex_unlock(&p->lock);

                int ok = p->hasher_error == 0 ? EVP_DigestUpdate(p->ctx, p->slots[i], p->lens[i]) : 1;

                pthread_mutex_lock(&p->lock);
                if (!ok && p->hasher_error == 0)
                        p->hasher_error = -EIO;
                p->tail = (p->tail + 1) % p->n_slots;
                p->filled--;
                pthread_cond_signal(&p->cond_free);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int hashpipe_new(enum checksum_algo algo, int fd, size_t slot_size, unsigned n_slots,
                 struct hashpipe **ret) {
        if (slot_size == 0)
                slot_size = HASHPIPE_SLOT_SIZE_DEFAULT;
        if (n_slots == 0)
                n_slots = HASHPIPE_SLOTS_DEFAULT;
        if (n_slots < 2)
                n_slots = 2;

        struct hashpipe *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond_filled, NULL);
        pthread_cond_init(&p->cond_free, NULL);
        p->n_slots = n_slots;
        p->slot_size = slot_size;
        p->fd = fd;
        p->md = algo == CHECKSUM_SHA256 ? EVP_sha256() : EVP_sha512();
        p->ctx = EVP_MD_CTX_new();
        p->slots = calloc(n_slots, sizeof(unsigned char *));
        p->lens = calloc(n_slots, sizeof(size_t));
        int r = p->ctx && p->slots && p->lens ? 0 : -ENOMEM;
        for (unsigned i = 0; r == 0 && i < n_slots; i++)
                if (!(p->slots[i] = malloc(slot_size)))
                        r = -ENOMEM;
        if (r == 0 && !EVP_DigestInit_ex(p->ctx, p->md, NULL))
                r = -EIO;
        if (r == 0) {
                r = -pthread_create(&p->thread, NULL, hasher_main, p);
                p->thread_started = r == 0;
        }
        if (r < 0) {
                hashpipe_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

void hashpipe_free(struct hashpipe *p) {
        if (!p)
                return;
        if (p->thread_started) {
                pthread_mutex_lock(&p->lock);
                p->stop = true;
                pthread_cond_signal(&p->cond_filled);
                pthread_mutex_unlock(&p->lock);
                pthread_join(p->thread, NULL);
        }
        for (unsigned i = 0; p->slots && i < p->n_slots; i++)
                free(p->slots[i]);
        free(p->slots);
        free(p->lens);
        EVP_MD_CTX_free(p->ctx);
        pthread_cond_destroy(&p->cond_filled);
        pthread_cond_destroy(&p->cond_free);
        pthread_mutex_destroy(&p->lock);
        free(p);
}

static int write_out(struct hashpipe *p, const unsigned char *buf, size_t len) {
        while (len > 0) {
                ssize_t k = pwrite(p->fd, buf, len, (off_t)p->file_offset);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                buf += k;
                len -= (size_t)k;
                p->file_offset += (uint64_t)k;
        }
        return 0;
}

/* Writes the slot being filled to the file and hands it to the hasher; waits for the next free
 * slot. */
static int hand_over(struct hashpipe *p) {
        if (p->fill == 0)
                return 0;
        unsigned i = p->head;
        if (p->fd >= 0) {
                int r = write_out(p, p->slots[i], p->fill);
                if (r < 0)
                        return r;
        }
        pthread_mutex_lock(&p->lock);
        p->lens[i] = p->fill;
        p->head = (p->head + 1) % p->n_slots;
        p->filled++;
        p->fill = 0;
        pthread_cond_signal(&p->cond_filled);
        while (p->filled == p->n_slots)
                pthread_cond_wait(&p->cond_free, &p->lock);
        int r = p->hasher_error;
        pthread_mutex_unlock(&p->lock);
        return r;
}

int hashpipe_write(struct hashpipe *p, const void *data, size_t len) {
        if (p->error < 0)
                return p->error;
        if (p->finished)
                return p->error = -EINVAL;
        const unsigned char *d = data;
        while (len > 0) {
                size_t k = p->slot_size - p->fill;
                if (k > len)
                        k = len;
                memcpy(p->slots[p->head] + p->fill, d, k);
                p->fill += k;
                p->taken += k;
                d += k;
                len -= k;
                if (p->fill == p->slot_size) {
                        int r = hand_over(p);
                        if (r < 0)
                                return p->error = r;
                }
        }
        return 0;
}

uint64_t hashpipe_bytes(const struct hashpipe *p) {
        return p->taken;
}

/* Waits until the hasher has taken every filled slot; returns with the lock held. */
static void drain_locked(struct hashpipe *p) {
        pthread_mutex_lock(&p->lock);
        while (p->filled > 0)
                pthread_cond_wait(&p->cond_free, &p->lock);
}

int hashpipe_reset(struct hashpipe *p) {
        if (p->error < 0)
                return p->error;
        if (p->finished)
                return -EINVAL;
        p->fill = 0;
        drain_locked(p);
        int r = p->hasher_error;
        if (r == 0 && !EVP_DigestInit_ex(p->ctx, p->md, NULL))
                r = p->hasher_error = -EIO;
        pthread_mutex_unlock(&p->lock);
        if (r == 0 && p->fd >= 0 && ftruncate(p->fd, 0) < 0)
                r = -errno;
        if (r < 0)
                return p->error = r;
        p->file_offset = 0;
        p->taken = 0;
        return 0;
}

int hashpipe_finish(struct hashpipe *p, struct checksum *ret) {
        if (p->error < 0)
                return p->error;
        if (p->finished)
                return -EINVAL;
        int r = hand_over(p);
        if (r < 0)
                return p->error = r;
        p->finished = true;

        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;
        drain_locked(p);
        r = p->hasher_error;
        if (r == 0 && !EVP_DigestFinal_ex(p->ctx, md, &md_len))
                r = -EIO;
        pthread_mutex_unlock(&p->lock);
        if (r < 0)
                return p->error = r;

        struct checksum c = { .algo = EVP_MD_get_size(p->md) == 32 ? CHECKSUM_SHA256 : CHECKSUM_SHA512 };
        if (md_len * 2 != checksum_algo_hex_len(c.algo))
                return p->error = -EIO;
        for (unsigned i = 0; i < md_len; i++)
                snprintf(c.hex + 2 * i, 3, "%02x", md[i]);
        *ret = c;
        return 0;
}
