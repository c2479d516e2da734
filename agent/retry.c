/* SPDX-License-Identifier: Apache-2.0 */
#include "retry.h"

/* xorshift64* (Vigna): small, fast, good enough for jitter; never returns the state 0. */
static uint64_t rng_next(uint64_t *state) {
        uint64_t x = *state ? *state : UINT64_C(0x9E3779B97F4A7C15);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * UINT64_C(0x2545F4914F6CDD1D);
}

void retry_init(struct retry_state *s, uint64_t now_usec, uint64_t seed) {
        *s = (struct retry_state) {
                .attempt = 0,
                .start_usec = now_usec,
                .rng = seed ? seed : UINT64_C(0x9E3779B97F4A7C15),
        };
}

/* min(cap, base * 2^(attempt-1)) without overflow; attempt >= 1. */
static uint64_t ceiling_for(const struct retry_policy *p, unsigned attempt) {
        uint64_t c = p->base_usec;
        for (unsigned i = 1; i < attempt && c < p->cap_usec; i++)
                c = c > UINT64_MAX / 2 ? UINT64_MAX : c * 2;
        return c < p->cap_usec ? c : p->cap_usec;
}

/* Uniform in [0, max] (inclusive), without modulo bias worth speaking of for 64-bit draws. */
static uint64_t draw(uint64_t *rng, uint64_t max) {
        if (max == 0)
                return 0;
        if (max == UINT64_MAX)
                return rng_next(rng);
        uint64_t range = max + 1, limit = UINT64_MAX - UINT64_MAX % range;
        uint64_t x;
        do
                x = rng_next(rng);
        while (x >= limit);
        return x % range;
}

uint64_t retry_next_delay(const struct retry_policy *p, struct retry_state *s, uint64_t now_usec) {
        s->attempt++;
        if (p->deadline_usec == 0)
                return UINT64_MAX;

        uint64_t elapsed = now_usec > s->start_usec ? now_usec - s->start_usec : 0;
        if (elapsed >= p->deadline_usec)
                return UINT64_MAX;
        uint64_t left = p->deadline_usec - elapsed;

        /* Full jitter: uniform over [0, ceiling]. The window is narrowed to the time left, so
         * that the next attempt never starts past the deadline and no budget is thrown away. */
        uint64_t ceiling = ceiling_for(p, s->attempt);
        if (ceiling > left)
                ceiling = left;
        return draw(&s->rng, ceiling);
}

bool http_status_retryable(long status) {
        return status == 408 || status == 429 || (status >= 500 && status <= 599);
}
