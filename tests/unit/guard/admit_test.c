/* Unit tests for guard/admit.c: room (listeners, descriptors), the join-rate
 * bucket over simulated time, the pre-built 503s and a Retry-After window
 * that grows with the backlog. */
#include "guard/admit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"

static unsigned retry_after(const char *resp, size_t len)
{
    char buf[ADMIT_RESPONSE_MAX + 1];
    memcpy(buf, resp, len);
    buf[len] = 0;
    const char *p = strstr(buf, "\r\nRetry-After: ");
    ck_assert_ptr_nonnull(p);
    return (unsigned)atoi(p + 15);
}

START_TEST(room_for_listeners_and_fds)
{
    struct admit a;
    struct admit_limits lim = {.max_listeners = 10, .fd_limit = 100, .fd_reserve = 20};
    admit_init(&a, &lim, 1000, 1);
    ck_assert_int_eq(admit_join(&a, 1000, 9, 10), ADMIT_OK);
    ck_assert_int_eq(admit_join(&a, 1000, 10, 10), ADMIT_FULL);
    ck_assert_int_eq(admit_join(&a, 1000, 0, 79), ADMIT_OK);
    ck_assert_int_eq(admit_join(&a, 1000, 0, 80), ADMIT_FDS);
    struct admit_limits mem = {.max_listeners = 100, .max_by_memory = 40};
    admit_init(&a, &mem, 0, 1);
    ck_assert_int_eq(admit_join(&a, 0, 39, 0), ADMIT_OK);
    ck_assert_int_eq(admit_join(&a, 0, 40, 0), ADMIT_MEMORY);
    struct admit_limits none = {0};
    admit_init(&a, &none, 0, 1);
    for (int i = 0; i < 100000; i++)
        ck_assert_int_eq(admit_join(&a, (uint64_t)i, (uint64_t)i, (uint64_t)i), ADMIT_OK);
}
END_TEST

START_TEST(rate_bucket)
{
    struct admit a;
    struct admit_limits lim = {.rate = 100, .burst = 50};
    admit_init(&a, &lim, 5000, 1);
    int ok = 0;
    for (int i = 0; i < 200; i++)
        ok += admit_join(&a, 5000, 0, 0) == ADMIT_OK;
    ck_assert_int_eq(ok, 50); /* the burst */
    ok = 0;
    for (uint64_t t = 5001; t <= 7000; t++) /* 2 s at one attempt per ms */
        ok += admit_join(&a, t, 0, 0) == ADMIT_OK;
    ck_assert_int_ge(ok, 199);
    ck_assert_int_le(ok, 201); /* the rate: 100/s */
    /* idle for a minute: the bucket holds no more than the burst */
    ok = 0;
    for (int i = 0; i < 200; i++)
        ok += admit_join(&a, 67000, 0, 0) == ADMIT_OK;
    ck_assert_int_eq(ok, 50);
}
END_TEST

START_TEST(responses_are_valid_503s)
{
    struct admit a;
    struct admit_limits lim = {.rate = 10, .burst = 1};
    admit_init(&a, &lim, 0, 7);
    for (int i = 0; i < 1000; i++) {
        size_t len;
        const char *r = admit_response(&a, 0, &len);
        ck_assert_uint_gt(len, 0);
        ck_assert_uint_lt(len, ADMIT_RESPONSE_MAX);
        ck_assert(strncmp(r, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
        ck_assert_ptr_nonnull(strstr(r, "\r\nConnection: close\r\n"));
        ck_assert_ptr_nonnull(strstr(r, "\r\nAccess-Control-Expose-Headers: Retry-After\r\n"));
        const char *body = strstr(r, "\r\n\r\n");
        ck_assert_ptr_nonnull(body);
        char cl[32];
        snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", len - (size_t)(body + 4 - r));
        ck_assert_ptr_nonnull(strstr(r, cl));
        unsigned s = retry_after(r, len);
        ck_assert_uint_ge(s, 1);
        ck_assert_uint_le(s, 2); /* no backlog: the smallest window */
    }
}
END_TEST

/* 10,000 refusals in a second at 100 joins/s: the next window spreads them
 * over about 100 s, capped at ADMIT_MAX_RETRY_S, and Retry-After covers it
 * roughly uniformly; the window shrinks again once refusals stop. */
START_TEST(window_follows_backlog)
{
    struct admit a;
    struct admit_limits lim = {.rate = 100, .burst = 100};
    admit_init(&a, &lim, 0, 3);
    ck_assert_uint_eq(admit_window_s(&a, 0), 2);
    for (int i = 0; i < 1100; i++)
        admit_join(&a, 10, 0, 0);
    ck_assert_uint_eq(admit_window_s(&a, 10), 11); /* 1,000 refused / 100 per s + 1 */
    for (int i = 0; i < 10000; i++)
        admit_join(&a, 500, 0, 0);
    ck_assert_uint_eq(admit_window_s(&a, 500), ADMIT_MAX_RETRY_S);
    unsigned hist[ADMIT_MAX_RETRY_S + 1] = {0};
    for (int i = 0; i < 60000; i++) {
        size_t len;
        const char *r = admit_response(&a, 500, &len);
        hist[retry_after(r, len)]++;
    }
    for (unsigned s = 1; s <= ADMIT_MAX_RETRY_S; s++) {
        ck_assert_msg(hist[s] > 700 && hist[s] < 1300, "Retry-After %u drawn %u times", s, hist[s]);
    }
    /* the next second still remembers the backlog; two quiet seconds later it is gone */
    ck_assert_uint_eq(admit_window_s(&a, 1500), ADMIT_MAX_RETRY_S);
    admit_join(&a, 1500, 0, 0);
    ck_assert_uint_eq(admit_window_s(&a, 3600), 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admit");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, room_for_listeners_and_fds);
    tcase_add_test(tc, rate_bucket);
    tcase_add_test(tc, responses_are_valid_503s);
    tcase_add_test(tc, window_follows_backlog);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
