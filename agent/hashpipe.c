/* SPDX-License-Identifier: Apache-2.0 */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "hashpipe.h"
#include "util.h"

/*
 * A ring of n_slots buffers, one producer (the receiving thread, in hashpipe_write()) and one or two
 * consumers, each on its own thread: the hasher (EVP_DigestUpdate) and, when there is a file, the
 * writer (pwrite at the slot's offset). Receiving, hashing and writing then run on whichever cores
 * are free; the receiving thread only copies the bytes curl hands it into a slot.
 *
 * Slots are numbered by sequence: the producer has published `published` of them; consumer c has
 * finished `done[c]`. Slot s lives in slots[s % n_slots] and is free again once every consumer has
 * finished it, so the producer may fill slot `published` while published - min(done) < n_slots.
 * Consumers only read a slot; only the hasher touches ctx, except while every consumer is idle
 * (reset, finish), under the lock.
 */

enum { CONSUMER_HASH, CONSUMER_WRITE, _CONSUMER_MAX };

struct slot {
        unsigned char *buf;
        size_t len;
        uint64_t offset; /* in the file */
};

struct consumer {
        struct hashpipe *pipe;
        int which;
        pthread_t thread;
        bool started;
        pthread_cond_t cond_work; /* producer -> this consumer: a slot was published, or stop */
};

struct hashpipe {
        pthread_mutex_t lock;
        pthread_cond_t cond_free; /* consumers -> producer: a slot was finished */
        struct consumer consumers[_CONSUMER_MAX];
        unsigned n_consumers;

        unsigned n_slots;
        size_t slot_size;
        struct slot *slots;
        uint64_t published;
        uint64_t done[_CONSUMER_MAX];
        bool stop;
        int hash_error;           /* -EIO when EVP failed */
        int write_error;          /* the first pwrite error: -ENOSPC, -EIO, ... */

        /* Producer side only (the receiving thread). */
        size_t fill;              /* bytes in the slot being filled, not yet published */
        int fd;
        uint64_t next_offset;     /* file offset of the slot being filled */
        uint64_t taken;           /* bytes accepted by hashpipe_write */
        int error;                /* sticky */
        bool finished;

        const EVP_MD *md;
        EVP_MD_CTX *ctx;
};

static uint64_t min_done(const struct hashpipe *p) {
        uint64_t m = p->done[0];
        for (unsigned c = 1; c < p->n_consumers; c++)
                if (p->done[c] < m)
                        m = p->done[c];
        return m;
}

static int write_all_at(int fd, const unsigned char *buf, size_t len, uint64_t offset) {
        while (len > 0) {
                ssize_t k = pwrite(fd, buf, len, (off_t)offset);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                buf += k;
                len -= (size_t)k;
                offset += (uint64_t)k;
        }
        return 0;
}

static void *consumer_main(void *userdata) {
        struct consumer *cs = userdata;
        struct hashpipe *p = cs->pipe;
        int c = cs->which;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (p->done[c] == p->published && !p->stop)
                        pthread_cond_wait(&cs->cond_work, &p->lock);
                if (p->done[c] == p->published)
                        break; /* stop, and nothing left */
                const struct slot *s = &p->slots[p->done[c] % p->n_slots];
                bool skip = c == CONSUMER_HASH ? p->hash_error < 0 : p->write_error < 0;
                pthread_mutex_unlock(&p->lock);

                int r = 0;
                if (!skip) {
                        if (c == CONSUMER_HASH)
                                r = EVP_DigestUpdate(p->ctx, s->buf, s->len) ? 0 : -EIO;
                        else
                                r = write_all_at(p->fd, s->buf, s->len, s->offset);
                }

                pthread_mutex_lock(&p->lock);
                if (r < 0) {
                        if (c == CONSUMER_HASH && p->hash_error == 0)
                                p->hash_error = r;
                        else if (c == CONSUMER_WRITE && p->write_error == 0)
                                p->write_error = r;
                }
                p->done[c]++;
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
        pthread_cond_init(&p->cond_free, NULL);
        p->n_consumers = fd >= 0 ? 2 : 1;
        for (unsigned c = 0; c < _CONSUMER_MAX; c++) {
                p->consumers[c] = (struct consumer) { .pipe = p, .which = (int)c };
                pthread_cond_init(&p->consumers[c].cond_work, NULL);
        }
        p->n_slots = n_slots;
        p->slot_size = slot_size;
        p->fd = fd;
        p->md = algo == CHECKSUM_SHA256 ? EVP_sha256() : EVP_sha512();
        p->ctx = EVP_MD_CTX_new();
        p->slots = calloc(n_slots, sizeof(struct slot));
        int r = p->ctx && p->slots ? 0 : -ENOMEM;
        for (unsigned i = 0; r == 0 && i < n_slots; i++)
                if (!(p->slots[i].buf = malloc(slot_size)))
                        r = -ENOMEM;
        if (r == 0 && !EVP_DigestInit_ex(p->ctx, p->md, NULL))
                r = -EIO;
        for (unsigned c = 0; r == 0 && c < p->n_consumers; c++) {
                r = -pthread_create(&p->consumers[c].thread, NULL, consumer_main, &p->consumers[c]);
                p->consumers[c].started = r == 0;
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
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        for (unsigned c = 0; c < _CONSUMER_MAX; c++)
                pthread_cond_signal(&p->consumers[c].cond_work);
        pthread_mutex_unlock(&p->lock);
        for (unsigned c = 0; c < _CONSUMER_MAX; c++)
                if (p->consumers[c].started)
                        pthread_join(p->consumers[c].thread, NULL);
        for (unsigned i = 0; p->slots && i < p->n_slots; i++)
                free(p->slots[i].buf);
        free(p->slots);
        EVP_MD_CTX_free(p->ctx);
        for (unsigned c = 0; c < _CONSUMER_MAX; c++)
                pthread_cond_destroy(&p->consumers[c].cond_work);
        pthread_cond_destroy(&p->cond_free);
        pthread_mutex_destroy(&p->lock);
        free(p);
}

/* The first error of the consumers; called with the lock held. */
static int consumer_error_locked(const struct hashpipe *p) {
        return p->write_error < 0 ? p->write_error : p->hash_error;
}

/* Publishes the slot being filled to the consumers, and waits until the next one is free. */
static int hand_over(struct hashpipe *p) {
        pthread_mutex_lock(&p->lock);
        if (p->fill > 0) {
                struct slot *s = &p->slots[p->published % p->n_slots];
                s->len = p->fill;
                s->offset = p->next_offset;
                p->next_offset += p->fill;
                p->fill = 0;
                p->published++;
                for (unsigned c = 0; c < p->n_consumers; c++)
                        pthread_cond_signal(&p->consumers[c].cond_work);
        }
        while (p->published - min_done(p) >= p->n_slots)
                pthread_cond_wait(&p->cond_free, &p->lock);
        int r = consumer_error_locked(p);
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
                /* The slot being filled is free: hand_over() waited for it. */
                unsigned char *buf = p->slots[p->published % p->n_slots].buf;
                size_t k = p->slot_size - p->fill;
                if (k > len)
                        k = len;
                memcpy(buf + p->fill, d, k);
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

/* Waits until every consumer has finished every published slot; returns with the lock held. */
static void drain_locked(struct hashpipe *p) {
        pthread_mutex_lock(&p->lock);
        while (min_done(p) < p->published)
                pthread_cond_wait(&p->cond_free, &p->lock);
}

int hashpipe_reset(struct hashpipe *p) {
        if (p->error < 0)
                return p->error;
        if (p->finished)
                return -EINVAL;
        p->fill = 0;
        drain_locked(p);
        int r = consumer_error_locked(p);
        if (r == 0 && !EVP_DigestInit_ex(p->ctx, p->md, NULL))
                r = p->hash_error = -EIO;
        pthread_mutex_unlock(&p->lock);
        if (r == 0 && p->fd >= 0 && ftruncate(p->fd, 0) < 0)
                r = -errno;
        if (r < 0)
                return p->error = r;
        p->next_offset = 0;
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
        r = consumer_error_locked(p);
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
