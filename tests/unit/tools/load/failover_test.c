/* Unit tests for tools/load/failover.c, the pure parts of tribune-load
 * --failover: every listener starts on the positional URL, its next URLs are
 * the --failover ones rotated by its number (so a dead server's crowd spreads
 * evenly) and its list wraps around; which endings count as a dead stream. */
#include "load/failover.h"

#include <check.h>

#include "../../harness.h"
#include "load/client.h"

START_TEST(one_url_is_always_the_first)
{
    for (uint32_t i = 0; i < 50; i++)
        for (uint32_t pos = 0; pos < 5; pos++)
            ck_assert_uint_eq(failover_url(i, pos, 1), 0);
}
END_TEST

/* Three URLs: u0, f1, f2. Listener 0: u0 f1 f2 u0 ..., listener 1: u0 f2 f1 u0 ... */
START_TEST(lists_start_on_the_first_and_rotate)
{
    static const uint32_t want0[] = {0, 1, 2, 0, 1, 2};
    static const uint32_t want1[] = {0, 2, 1, 0, 2, 1};

    for (uint32_t pos = 0; pos < 6; pos++) {
        ck_assert_uint_eq(failover_url(0, pos, 3), want0[pos]);
        ck_assert_uint_eq(failover_url(1, pos, 3), want1[pos]);
        ck_assert_uint_eq(failover_url(2, pos, 3), want0[pos]);
    }
}
END_TEST

/* Each list visits every URL once per round, the first at position 0 only. */
START_TEST(each_list_is_a_permutation)
{
    for (uint32_t n = 1; n <= LOAD_MAX_URLS; n++) {
        for (uint32_t i = 0; i < 100; i++) {
            uint32_t seen = 0;
            for (uint32_t pos = 0; pos < n; pos++) {
                uint32_t u = failover_url(i, pos, n);
                ck_assert_uint_lt(u, n);
                ck_assert_uint_eq(u == 0, pos == 0);
                seen |= 1u << u;
            }
            ck_assert_uint_eq(seen, (1u << n) - 1);
        }
    }
}
END_TEST

/* 2,000 listeners of a dead first URL with 4 failover URLs: 500 go to each. */
START_TEST(a_crowd_spreads_evenly)
{
    uint32_t got[LOAD_MAX_URLS] = {0};

    for (uint32_t i = 0; i < 2000; i++)
        got[failover_url(i, 1, 5)]++;
    ck_assert_uint_eq(got[0], 0);
    for (uint32_t u = 1; u < 5; u++)
        ck_assert_uint_eq(got[u], 500);
}
END_TEST

START_TEST(deaths_and_final_endings)
{
    ck_assert(failover_is_death(CLOSE_CONNECT, 0));
    ck_assert(failover_is_death(CLOSE_RESET, 0));
    ck_assert(failover_is_death(CLOSE_RESET, 200));
    ck_assert(failover_is_death(CLOSE_EOF, 200));
    ck_assert(failover_is_death(CLOSE_EOF, 0));
    ck_assert(failover_is_death(CLOSE_IDLE, 0));
    ck_assert(failover_is_death(CLOSE_IDLE, 200));
    ck_assert(failover_is_death(CLOSE_REFUSED, 503));
    ck_assert(failover_is_death(CLOSE_REFUSED, 500));
    ck_assert(failover_is_death(CLOSE_REFUSED, 599));
    ck_assert(!failover_is_death(CLOSE_REFUSED, 404));
    ck_assert(!failover_is_death(CLOSE_REFUSED, 403));
    ck_assert(!failover_is_death(CLOSE_REFUSED, 302));
    ck_assert(!failover_is_death(CLOSE_PROTO, 200));
    ck_assert(!failover_is_death(CLOSE_ABORT, 0));
    ck_assert(!failover_is_death(CLOSE_NONE, 200));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("failover");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, one_url_is_always_the_first);
    tcase_add_test(tc, lists_start_on_the_first_and_rotate);
    tcase_add_test(tc, each_list_is_a_permutation);
    tcase_add_test(tc, a_crowd_spreads_evenly);
    tcase_add_test(tc, deaths_and_final_endings);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
