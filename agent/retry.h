/* SPDX-License-Identifier: Apache-2.0 */
/* Exponential backoff with full jitter, bounded by an overall deadline. Pure: clock and
 * randomness are passed in, so that tests can drive it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct retry_policy {
        uint64_t base_usec;     /* first delay ceiling: 1 s */
        uint64_t cap_usec;      /* largest delay ceiling: 30 s */
        uint64_t deadline_usec; /* overall budget from start; 0: no retries */
};

struct retry_state {
        unsigned attempt;    /* attempts made so far */
        uint64_t start_usec; /* when the first attempt began */
        uint64_t rng;        /* xorshift state; any non-zero seed */
};

void retry_init(struct retry_state *s, uint64_t now_usec, uint64_t seed);
/* Called after a failed attempt: returns the delay before the next one, drawn uniformly from
 * [0, min(cap, base * 2^(attempt-1))], or UINT64_MAX when the next attempt would start past the
 * deadline. Increments s->attempt. (attempt is the count after the increment, so the first call
 * draws from [0, base].) The window is also narrowed to the time left before the deadline, so a
 * returned delay never makes the next attempt start past it; UINT64_MAX once now_usec is at or
 * past start + deadline, and always when deadline_usec is 0. */
uint64_t retry_next_delay(const struct retry_policy *p, struct retry_state *s, uint64_t now_usec);
/* True for statuses worth retrying: 408, 429 and 5xx. */
bool http_status_retryable(long status);
