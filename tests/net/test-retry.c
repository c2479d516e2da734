/* SPDX-License-Identifier: Apache-2.0 */
/* The retry policy: full jitter within [0, min(cap, base * 2^(n-1))], bounded by a deadline.
 * Driven with a fake clock and fixed seeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "retry.h"
#include "util.h"

#define SEC UINT64_C(1000000)

static const struct retry_policy harvester = { .base_usec = 1 * SEC, .cap_usec = 30 * SEC, .deadline_usec = 600 * SEC };

static uint64_t ceiling(unsigned attempt) {
        uint64_t c = harvester.base_usec << (attempt - 1 < 20 ? attempt - 1 : 20);
        return c < harvester.cap_usec ? c : harvester.cap_usec;
}

/* For each attempt number, over many seeds: every delay is within [0, ceiling], and the draws
 * cover the window (some in its lowest quarter, some in its highest quarter): full jitter. */
static void test_delays_in_range(void **state) {
        for (unsigned attempt = 1; attempt <= 8; attempt++) {
                uint64_t lo = UINT64_MAX, hi = 0;
                for (uint64_t seed = 1; seed <= 2000; seed++) {
                        struct retry_state s;
                        retry_init(&s, 0, seed * 7919);
                        uint64_t d = 0;
                        for (unsigned i = 1; i <= attempt; i++)
                                d = retry_next_delay(&harvester, &s, 0);
                        assert_int_equal(s.attempt, attempt);
                        assert_true(d <= ceiling(attempt));
                        if (d < lo)
                                lo = d;
                        if (d > hi)
                                hi = d;
                }
                assert_true(lo < ceiling(attempt) / 4);
                assert_true(hi > ceiling(attempt) / 4 * 3);
        }
}

/* Far into the sequence the window stops growing at the cap, and does not overflow. */
static void test_cap(void **state) {
        uint64_t hi = 0;
        for (uint64_t seed = 1; seed <= 500; seed++) {
                struct retry_state s;
                retry_init(&s, 0, seed);
                for (unsigned i = 1; i <= 200; i++) {
                        uint64_t d = retry_next_delay(&harvester, &s, 0);
                        assert_true(d <= 30 * SEC);
                        if (i > 10 && d > hi)
                                hi = d;
                }
        }
        assert_true(hi > 25 * SEC);

        /* A base larger than the cap is the cap. */
        struct retry_policy p = { .base_usec = UINT64_MAX / 3, .cap_usec = 5 * SEC, .deadline_usec = UINT64_MAX / 2 };
        struct retry_state s;
        retry_init(&s, 0, 42);
        for (unsigned i = 1; i <= 100; i++)
                assert_true(retry_next_delay(&p, &s, 0) <= 5 * SEC);
}

/* With a fake clock: every attempt starts before the deadline; once the deadline is reached
 * the policy says stop; the number of attempts is what the budget allows. */
static void test_deadline(void **state) {
        for (uint64_t seed = 1; seed <= 300; seed++) {
                const uint64_t start = 1000 * SEC;
                struct retry_policy p = { .base_usec = 1 * SEC, .cap_usec = 30 * SEC, .deadline_usec = 60 * SEC };
                struct retry_state s;
                retry_init(&s, start, seed);
                uint64_t now = start;
                unsigned attempts = 0;
                for (;;) {
                        assert_true(now - start <= p.deadline_usec); /* an attempt starts in time */
                        attempts++;
                        now += 2 * SEC; /* the attempt takes 2 s and fails */
                        uint64_t d = retry_next_delay(&p, &s, now);
                        assert_int_equal(s.attempt, attempts);
                        if (d == UINT64_MAX)
                                break;
                        assert_true(now - start + d <= p.deadline_usec);
                        now += d;
                }
                /* Each attempt takes 2 s: at most 31 fit in 60 s (the last may start at 60 s);
                 * the delays average at most half their window, so several always fit. */
                assert_true(attempts >= 4);
                assert_true(attempts <= 31);
                assert_true(now - start >= p.deadline_usec - 2 * SEC);
        }

        /* At or past the deadline: stop. Just before it: a delay no longer than what is left. */
        struct retry_policy p = { .base_usec = 1 * SEC, .cap_usec = 30 * SEC, .deadline_usec = 10 * SEC };
        struct retry_state s;
        retry_init(&s, 0, 9);
        assert_true(retry_next_delay(&p, &s, 10 * SEC) == UINT64_MAX);
        assert_true(retry_next_delay(&p, &s, 11 * SEC) == UINT64_MAX);
        for (uint64_t seed = 1; seed <= 200; seed++) {
                retry_init(&s, 0, seed);
                s.attempt = 10; /* window 30 s, but only 0.5 s left */
                uint64_t d = retry_next_delay(&p, &s, 9 * SEC + SEC / 2);
                assert_true(d <= SEC / 2);
        }
}

/* deadline 0 means one attempt only. */
static void test_no_retries(void **state) {
        struct retry_policy p = { .base_usec = 1 * SEC, .cap_usec = 30 * SEC, .deadline_usec = 0 };
        struct retry_state s;
        retry_init(&s, 5, 1);
        assert_int_equal(s.attempt, 0);
        assert_true(retry_next_delay(&p, &s, 5) == UINT64_MAX);
        assert_int_equal(s.attempt, 1);
}

/* Same seed, same delays; another seed, other delays; seed 0 still works. */
static void test_seeded(void **state) {
        struct retry_state a, b, c, z;
        retry_init(&a, 0, 12345);
        retry_init(&b, 0, 12345);
        retry_init(&c, 0, 54321);
        retry_init(&z, 0, 0);
        assert_int_not_equal(z.rng, 0);
        bool differ = false;
        uint64_t zsum = 0;
        for (unsigned i = 0; i < 10; i++) {
                uint64_t da = retry_next_delay(&harvester, &a, 0);
                uint64_t db = retry_next_delay(&harvester, &b, 0);
                uint64_t dc = retry_next_delay(&harvester, &c, 0);
                zsum += retry_next_delay(&harvester, &z, 0);
                assert_true(da == db);
                if (da != dc)
                        differ = true;
        }
        assert_true(differ);
        assert_true(zsum > 0);
}

static void test_status_retryable(void **state) {
        static const long yes[] = { 408, 429, 500, 502, 503, 504, 599 };
        static const long no[] = { 200, 206, 301, 400, 401, 403, 404, 410, 416, 600, 0 };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                assert_true(http_status_retryable(yes[i]));
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                assert_false(http_status_retryable(no[i]));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_delays_in_range),
                cmocka_unit_test(test_cap),
                cmocka_unit_test(test_deadline),
                cmocka_unit_test(test_no_retries),
                cmocka_unit_test(test_seeded),
                cmocka_unit_test(test_status_retryable),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
