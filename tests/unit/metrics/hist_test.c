/* Unit tests for metrics/hist.c: bucket choice at and around bounds, the
 * predefined sets, cumulative counts, merge, and bad bucket sets. */
#include "metrics/hist.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "../harness.h"

static const double small_bounds[] = {1, 2, 5};
static const struct hist_buckets small = {small_bounds, 3};

START_TEST(predefined_sets)
{
    ck_assert_uint_eq(hist_join_to_first_audio.n, 8);
    ck_assert_double_eq(hist_join_to_first_audio.bounds[0], 0.05);
    ck_assert_double_eq(hist_join_to_first_audio.bounds[7], 10);
    ck_assert_uint_eq(hist_session_length.n, 8);
    ck_assert_double_eq(hist_session_length.bounds[2], 60);
    ck_assert_double_eq(hist_session_length.bounds[7], 7200);
    struct hist h;
    ck_assert_int_eq(hist_init(&h, &hist_join_to_first_audio), 0);
    ck_assert_int_eq(hist_init(&h, &hist_session_length), 0);
}
END_TEST

START_TEST(observe_picks_bucket)
{
    struct hist h;
    ck_assert_int_eq(hist_init(&h, &small), 0);
    ck_assert_uint_eq(h.count, 0);
    const double values[] = {-3, 0, 1, 1.0000001, 2, 4.9, 5, 5.1, 1e9, INFINITY};
    const size_t expect_bucket[] = {0, 0, 0, 1, 1, 2, 2, 3, 3, 3};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct hist one;
        hist_init(&one, &small);
        hist_observe(&one, values[i]);
        for (size_t k = 0; k <= 3; k++)
            ck_assert_msg(one.counts[k] == (k == expect_bucket[i]), "value %g bucket %zu",
                          values[i], k);
        hist_observe(&h, values[i]);
    }
    ck_assert_uint_eq(h.count, 10);
    ck_assert_uint_eq(h.counts[0], 3);
    ck_assert_uint_eq(h.counts[1], 2);
    ck_assert_uint_eq(h.counts[2], 2);
    ck_assert_uint_eq(h.counts[3], 3);
    ck_assert(isinf(h.sum));
}
END_TEST

START_TEST(sum_and_nan)
{
    struct hist h;
    hist_init(&h, &hist_join_to_first_audio);
    hist_observe(&h, 0.125);
    hist_observe(&h, 0.25);
    hist_observe(&h, NAN);
    hist_observe(&h, 3);
    ck_assert_uint_eq(h.count, 3);
    ck_assert_double_eq(h.sum, 3.375);
    ck_assert_uint_eq(h.counts[2], 2); /* (0.1, 0.25] */
    ck_assert_uint_eq(h.counts[6], 1); /* (2, 5] */
}
END_TEST

START_TEST(cumulative)
{
    struct hist h;
    hist_init(&h, &small);
    hist_observe(&h, 0.5);
    hist_observe(&h, 1.5);
    hist_observe(&h, 1.5);
    hist_observe(&h, 100);
    ck_assert_uint_eq(hist_cumulative(&h, 0), 1);
    ck_assert_uint_eq(hist_cumulative(&h, 1), 3);
    ck_assert_uint_eq(hist_cumulative(&h, 2), 3);
    ck_assert_uint_eq(hist_cumulative(&h, 3), 4);
    ck_assert_uint_eq(hist_cumulative(&h, 99), 4);
}
END_TEST

START_TEST(merge_sums_workers)
{
    struct hist master, w1, w2;
    hist_init(&master, &hist_session_length);
    hist_init(&w1, &hist_session_length);
    hist_init(&w2, &hist_session_length);
    hist_observe(&w1, 5);
    hist_observe(&w1, 61);
    hist_observe(&w2, 61);
    hist_observe(&w2, 10000);
    ck_assert_int_eq(hist_merge(&master, &w1), 0);
    ck_assert_int_eq(hist_merge(&master, &w2), 0);
    ck_assert_uint_eq(master.count, 4);
    ck_assert_double_eq(master.sum, 5 + 61 + 61 + 10000);
    ck_assert_uint_eq(master.counts[1], 1); /* (1, 10] */
    ck_assert_uint_eq(master.counts[3], 2); /* (60, 300] */
    ck_assert_uint_eq(master.counts[8], 1); /* +Inf */
    ck_assert_uint_eq(hist_cumulative(&master, 3), 3);
    /* The workers are untouched. */
    ck_assert_uint_eq(w1.count, 2);
    ck_assert_uint_eq(w2.count, 2);
}
END_TEST

START_TEST(merge_same_values_other_pointer)
{
    static const double copy[] = {1, 2, 5};
    const struct hist_buckets other = {copy, 3};
    struct hist a, b;
    hist_init(&a, &small);
    hist_init(&b, &other);
    hist_observe(&b, 3);
    ck_assert_int_eq(hist_merge(&a, &b), 0);
    ck_assert_uint_eq(a.counts[2], 1);
}
END_TEST

START_TEST(merge_refuses_other_bounds)
{
    static const double shifted[] = {1, 2, 6};
    const struct hist_buckets other = {shifted, 3};
    struct hist a, b, c;
    hist_init(&a, &small);
    hist_init(&b, &other);
    hist_init(&c, &hist_join_to_first_audio);
    hist_observe(&a, 1);
    hist_observe(&b, 1);
    hist_observe(&c, 1);
    ck_assert_int_eq(hist_merge(&a, &b), -EINVAL);
    ck_assert_int_eq(hist_merge(&a, &c), -EINVAL);
    ck_assert_uint_eq(a.count, 1);
    ck_assert_uint_eq(a.counts[0], 1);
    ck_assert_double_eq(a.sum, 1);
}
END_TEST

START_TEST(init_refuses_bad_sets)
{
    static const double unsorted[] = {1, 3, 2};
    static const double dup[] = {1, 1};
    static const double inf[] = {1, INFINITY};
    static const double not_a_number[] = {NAN};
    static const double many[HIST_MAX + 1] = {1,  2,  3,  4,  5,  6,  7,  8, 9,
                                              10, 11, 12, 13, 14, 15, 16, 17};
    const struct hist_buckets bad[] = {
        {unsorted, 3},        {dup, 2},          {inf, 2},  {not_a_number, 1},
        {many, HIST_MAX + 1}, {small_bounds, 0}, {NULL, 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct hist h;
        ck_assert_int_eq(hist_init(&h, &bad[i]), -EINVAL);
        ck_assert_uint_eq(h.n, 0);
        hist_observe(&h, 1); /* lands in the only (+Inf) bucket */
        ck_assert_uint_eq(h.counts[0], 1);
    }
    const struct hist_buckets sixteen = {many, HIST_MAX};
    struct hist h;
    ck_assert_int_eq(hist_init(&h, &sixteen), 0);
    hist_observe(&h, 16);
    hist_observe(&h, 16.5);
    ck_assert_uint_eq(h.counts[15], 1);
    ck_assert_uint_eq(h.counts[16], 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hist");
    TCase *tc = tcase_create("hist");
    tcase_add_test(tc, predefined_sets);
    tcase_add_test(tc, observe_picks_bucket);
    tcase_add_test(tc, sum_and_nan);
    tcase_add_test(tc, cumulative);
    tcase_add_test(tc, merge_sums_workers);
    tcase_add_test(tc, merge_same_values_other_pointer);
    tcase_add_test(tc, merge_refuses_other_bounds);
    tcase_add_test(tc, init_refuses_bad_sets);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
