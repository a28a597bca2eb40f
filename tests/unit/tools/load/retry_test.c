/* Unit tests for tools/load/retry.c, the schedules of tribune-load --retry:
 * none never retries; after waits exactly Retry-After (1 s without one); hls
 * is 1, 2, 4, 8, 8, 8 s whatever Retry-After says; jitter stays within
 * [Retry-After, min(30 s, 1 s x 2^(n-1))] and spreads over that range. */
#include "load/retry.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "../../harness.h"

START_TEST(none_never_retries)
{
    for (uint32_t n = 1; n < 10; n++)
        ck_assert_int_eq(retry_delay_ms(RETRY_NONE, n, 5, 12345), -1);
}
END_TEST

START_TEST(after_honours_retry_after_exactly)
{
    ck_assert_int_eq(retry_delay_ms(RETRY_AFTER, 1, 2, 0), 2000);
    ck_assert_int_eq(retry_delay_ms(RETRY_AFTER, 7, 2, 0xffffffffu), 2000);
    ck_assert_int_eq(retry_delay_ms(RETRY_AFTER, 3, 0, 99), 0);
    ck_assert_int_eq(retry_delay_ms(RETRY_AFTER, 1, 60, 99), 60000);
    ck_assert_int_eq(retry_delay_ms(RETRY_AFTER, 1, -1, 99), RETRY_AFTER_DEFAULT_MS);
    ck_assert_int_eq(retry_delay_ms(RETRY_AFTER, 9, -1, 99), RETRY_AFTER_DEFAULT_MS);
}
END_TEST

START_TEST(hls_doubles_to_eight_seconds_and_ignores_retry_after)
{
    static const int64_t want[] = {1000, 2000, 4000, 8000, 8000, 8000, 8000};

    for (uint32_t n = 1; n <= 7; n++) {
        ck_assert_int_eq(retry_delay_ms(RETRY_HLS, n, -1, 0), want[n - 1]);
        ck_assert_int_eq(retry_delay_ms(RETRY_HLS, n, 30, 0xdeadbeefu), want[n - 1]);
    }
    ck_assert_int_eq(retry_delay_ms(RETRY_HLS, 255, 2, 1), 8000);
    ck_assert_int_eq(retry_delay_ms(RETRY_HLS, 0, -1, 1), 1000); /* 0 taken as 1 */
}
END_TEST

START_TEST(jitter_stays_in_its_window)
{
    static const int64_t cap[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
    uint32_t state = 1;

    for (uint32_t n = 1; n <= 7; n++) {
        ck_assert_int_eq(retry_delay_ms(RETRY_JITTER, n, -1, 0), 0);
        ck_assert_int_eq(retry_delay_ms(RETRY_JITTER, n, -1, 0xffffffffu), cap[n - 1]);
        for (int i = 0; i < 1000; i++) {
            int64_t ms = retry_delay_ms(RETRY_JITTER, n, -1, retry_rand(&state));
            ck_assert_int_ge(ms, 0);
            ck_assert_int_le(ms, cap[n - 1]);
        }
    }
    ck_assert_int_eq(retry_delay_ms(RETRY_JITTER, 200, -1, 0xffffffffu), RETRY_JITTER_CAP_MS);
}
END_TEST

/* Retry-After is a floor, even above the cap. */
START_TEST(jitter_never_below_retry_after)
{
    uint32_t state = 7;

    for (int i = 0; i < 1000; i++) {
        int64_t ms = retry_delay_ms(RETRY_JITTER, 2, 3, retry_rand(&state));
        ck_assert_int_eq(ms, 3000); /* the window [0, 2 s] is all below 3 s */
        ms = retry_delay_ms(RETRY_JITTER, 4, 3, retry_rand(&state));
        ck_assert_int_ge(ms, 3000);
        ck_assert_int_le(ms, 8000);
    }
    ck_assert_int_eq(retry_delay_ms(RETRY_JITTER, 9, 45, 0xffffffffu), 45000);
}
END_TEST

/* Full jitter spreads: each tenth of the window gets a fair share. */
START_TEST(jitter_spreads_over_the_window)
{
    uint32_t bins[10] = {0}, state = 12345;

    for (int i = 0; i < 10000; i++) {
        int64_t ms = retry_delay_ms(RETRY_JITTER, 4, -1, retry_rand(&state));
        bins[ms * 10 / 8001]++;
    }
    for (int b = 0; b < 10; b++) {
        ck_assert_uint_ge(bins[b], 800);
        ck_assert_uint_le(bins[b], 1200);
    }
}
END_TEST

START_TEST(modes_parse_and_name)
{
    for (uint32_t m = 0; m < RETRY_MODES; m++)
        ck_assert_int_eq(retry_mode_parse(retry_mode_name(m)), (int)m);
    ck_assert_int_eq(retry_mode_parse("after"), RETRY_AFTER);
    ck_assert_int_eq(retry_mode_parse("hls"), RETRY_HLS);
    ck_assert_int_eq(retry_mode_parse("Jitter"), -EINVAL);
    ck_assert_int_eq(retry_mode_parse(""), -EINVAL);
    ck_assert_str_eq(retry_mode_name(99), "?");
}
END_TEST

START_TEST(rand_never_sticks)
{
    uint32_t state = 1, prev = 1;

    for (int i = 0; i < 100000; i++) {
        uint32_t r = retry_rand(&state);
        ck_assert_uint_ne(r, 0);
        ck_assert_uint_ne(r, prev);
        prev = r;
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, none_never_retries);
    tcase_add_test(tc, after_honours_retry_after_exactly);
    tcase_add_test(tc, hls_doubles_to_eight_seconds_and_ignores_retry_after);
    tcase_add_test(tc, jitter_stays_in_its_window);
    tcase_add_test(tc, jitter_never_below_retry_after);
    tcase_add_test(tc, jitter_spreads_over_the_window);
    tcase_add_test(tc, modes_parse_and_name);
    tcase_add_test(tc, rand_never_sticks);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
