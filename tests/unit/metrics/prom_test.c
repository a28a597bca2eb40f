/* Unit tests for metrics/prom.c: exact text for small cases, escaping,
 * histograms, numbers, validation with rollback, and a full exposition checked
 * by the real `promtool check metrics` (Debian package prometheus). */
#include "metrics/prom.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"

#define LABELS(...)                                                                                \
    (const struct prom_label[])                                                                    \
    {                                                                                              \
        __VA_ARGS__,                                                                               \
        {                                                                                          \
            NULL, NULL                                                                             \
        }                                                                                          \
    }

static const double small_bounds[] = {0.05, 1};
static const struct hist_buckets small = {small_bounds, 2};

START_TEST(counter_exact)
{
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(prom_counter(&b, "tribune_joins_total", "Joins admitted.", NULL, 15), 0);
    ck_assert_str_eq(b.data, "# HELP tribune_joins_total Joins admitted.\n"
                             "# TYPE tribune_joins_total counter\n"
                             "tribune_joins_total 15\n");
    ck_assert_uint_eq(b.len, strlen(b.data));
    ck_assert_int_eq(prom_gauge(&b, "tribune_peak_hearing", "Peak.", LABELS({"space", "a"}), 7), 0);
    ck_assert_str_eq(b.data, "# HELP tribune_joins_total Joins admitted.\n"
                             "# TYPE tribune_joins_total counter\n"
                             "tribune_joins_total 15\n"
                             "# HELP tribune_peak_hearing Peak.\n"
                             "# TYPE tribune_peak_hearing gauge\n"
                             "tribune_peak_hearing{space=\"a\"} 7\n");
    prom_buf_fini(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(family_with_several_label_sets)
{
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(prom_family_begin(&b, "tribune_listeners", PROM_GAUGE, "Listeners by state."),
                     0);
    ck_assert_int_eq(prom_sample(&b, NULL, LABELS({"space", "s1"}, {"state", "hearing"}), 12), 0);
    ck_assert_int_eq(prom_sample(&b, "", LABELS({"space", "s1"}, {"state", "lagging"}), 3), 0);
    ck_assert_int_eq(prom_sample(&b, "_max", NULL, 0.5), 0);
    ck_assert_str_eq(b.data, "# HELP tribune_listeners Listeners by state.\n"
                             "# TYPE tribune_listeners gauge\n"
                             "tribune_listeners{space=\"s1\",state=\"hearing\"} 12\n"
                             "tribune_listeners{space=\"s1\",state=\"lagging\"} 3\n"
                             "tribune_listeners_max 0.5\n");
    prom_buf_fini(&b);
}
END_TEST

START_TEST(escaping)
{
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(prom_family_begin(&b, "x", PROM_GAUGE, "a\\b \"q\"\nline2"), 0);
    ck_assert_int_eq(prom_sample(&b, NULL, LABELS({"v", "a\\b\"c\nd"}, {"e", ""}), 1), 0);
    ck_assert_int_eq(prom_sample(&b, NULL, LABELS({"v", "caf\xc3\xa9 \xf0\x9f\x8e\xa7"}), 2), 0);
    ck_assert_str_eq(b.data, "# HELP x a\\\\b \"q\"\\nline2\n"
                             "# TYPE x gauge\n"
                             "x{v=\"a\\\\b\\\"c\\nd\",e=\"\"} 1\n"
                             "x{v=\"caf\xc3\xa9 \xf0\x9f\x8e\xa7\"} 2\n");
    prom_buf_fini(&b);
}
END_TEST

START_TEST(histogram_exact)
{
    struct hist h;
    hist_init(&h, &small);
    hist_observe(&h, 0.03125);
    hist_observe(&h, 0.5);
    hist_observe(&h, 0.75);
    hist_observe(&h, 3);
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(prom_histogram(&b, "tribune_join_seconds", "Join to first audio.",
                                    LABELS({"space", "s1"}), &h),
                     0);
    ck_assert_str_eq(b.data, "# HELP tribune_join_seconds Join to first audio.\n"
                             "# TYPE tribune_join_seconds histogram\n"
                             "tribune_join_seconds_bucket{space=\"s1\",le=\"0.05\"} 1\n"
                             "tribune_join_seconds_bucket{space=\"s1\",le=\"1\"} 3\n"
                             "tribune_join_seconds_bucket{space=\"s1\",le=\"+Inf\"} 4\n"
                             "tribune_join_seconds_sum{space=\"s1\"} 4.28125\n"
                             "tribune_join_seconds_count{space=\"s1\"} 4\n");
    /* A second label set of the same family, no labels, empty histogram. */
    struct hist empty;
    hist_init(&empty, &small);
    size_t before = b.len;
    ck_assert_int_eq(prom_hist_sample(&b, NULL, &empty), 0);
    ck_assert_str_eq(b.data + before, "tribune_join_seconds_bucket{le=\"0.05\"} 0\n"
                                      "tribune_join_seconds_bucket{le=\"1\"} 0\n"
                                      "tribune_join_seconds_bucket{le=\"+Inf\"} 0\n"
                                      "tribune_join_seconds_sum 0\n"
                                      "tribune_join_seconds_count 0\n");
    prom_buf_fini(&b);
}
END_TEST

START_TEST(histogram_merged_cumulative)
{
    struct hist master, w[3];
    hist_init(&master, &hist_session_length);
    for (int i = 0; i < 3; i++) {
        hist_init(&w[i], &hist_session_length);
        hist_observe(&w[i], 30);     /* (10, 60] */
        hist_observe(&w[i], 600);    /* (300, 900] */
        hist_observe(&w[i], 100000); /* +Inf */
        ck_assert_int_eq(hist_merge(&master, &w[i]), 0);
    }
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(
        prom_histogram(&b, "tribune_session_seconds", "Session length.", NULL, &master), 0);
    const char *expect = "tribune_session_seconds_bucket{le=\"1\"} 0\n"
                         "tribune_session_seconds_bucket{le=\"10\"} 0\n"
                         "tribune_session_seconds_bucket{le=\"60\"} 3\n"
                         "tribune_session_seconds_bucket{le=\"300\"} 3\n"
                         "tribune_session_seconds_bucket{le=\"900\"} 6\n"
                         "tribune_session_seconds_bucket{le=\"1800\"} 6\n"
                         "tribune_session_seconds_bucket{le=\"3600\"} 6\n"
                         "tribune_session_seconds_bucket{le=\"7200\"} 6\n"
                         "tribune_session_seconds_bucket{le=\"+Inf\"} 9\n"
                         "tribune_session_seconds_sum 301890\n"
                         "tribune_session_seconds_count 9\n";
    ck_assert_ptr_nonnull(strstr(b.data, expect));
    prom_buf_fini(&b);
}
END_TEST

static const char *fmt(double v)
{
    static char out[64];
    size_t n = prom_format_double(v, out, sizeof(out));
    ck_assert_uint_eq(n, strlen(out));
    return out;
}

START_TEST(numbers)
{
    ck_assert_str_eq(fmt(0), "0");
    ck_assert_str_eq(fmt(15), "15");
    ck_assert_str_eq(fmt(-2), "-2");
    ck_assert_str_eq(fmt(1e15), "1000000000000000");
    ck_assert_str_eq(fmt(9007199254740993.0), "9007199254740992");
    ck_assert_str_eq(fmt(18446744073709549568.0), "18446744073709549568");
    ck_assert_str_eq(fmt(1e21), "1e+21");
    ck_assert_str_eq(fmt(0.1), "0.1");
    ck_assert_str_eq(fmt(0.05), "0.05");
    ck_assert_str_eq(fmt(2.5), "2.5");
    ck_assert_str_eq(fmt(1.0 / 3), "0.3333333333333333");
    ck_assert_str_eq(fmt(0.1 + 0.2), "0.30000000000000004");
    ck_assert_str_eq(fmt(NAN), "NaN");
    ck_assert_str_eq(fmt(INFINITY), "+Inf");
    ck_assert_str_eq(fmt(-INFINITY), "-Inf");
    const double round_trip[] = {1.0 / 3, 2.0 / 3,       1e-7,
                                 123.456, 5e-324,        1.7976931348623157e308,
                                 -0.001,  6.02214076e23, 0.1 + 0.2};
    for (size_t i = 0; i < sizeof(round_trip) / sizeof(round_trip[0]); i++) {
        const char *s = fmt(round_trip[i]);
        ck_assert_msg(strtod(s, NULL) == round_trip[i], "%s does not read back", s);
    }
    char tiny[4];
    ck_assert_uint_eq(prom_format_double(123456, tiny, sizeof(tiny)), 3);
    ck_assert_str_eq(tiny, "123");
}
END_TEST

/* Each call must fail with `rc` and leave the buffer exactly as it was. */
#define ASSERT_REFUSED(b, rc, call)                                                                \
    do {                                                                                           \
        char *copy = strdup((b)->data ? (b)->data : "");                                           \
        size_t len = (b)->len;                                                                     \
        ck_assert_int_eq((call), (rc));                                                            \
        ck_assert_uint_eq((b)->len, len);                                                          \
        ck_assert_str_eq((b)->data ? (b)->data : "", copy);                                        \
        free(copy);                                                                                \
    } while (0)

START_TEST(names_validated)
{
    struct prom_buf b;
    prom_buf_init(&b);
    const char *bad[] = {"", "1abc", "a-b", "a b", "tribune_é", "a{b}", "a\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_REFUSED(&b, -EINVAL, prom_family_begin(&b, bad[i], PROM_GAUGE, "h"));
        ASSERT_REFUSED(&b, -EINVAL, prom_counter(&b, bad[i], "h", NULL, 1));
    }
    ASSERT_REFUSED(&b, -EINVAL, prom_family_begin(&b, NULL, PROM_GAUGE, "h"));
    ASSERT_REFUSED(&b, -EINVAL, prom_family_begin(&b, "ok", PROM_GAUGE, NULL));
    ASSERT_REFUSED(&b, -EINVAL, prom_family_begin(&b, "ok", (enum prom_type)7, "h"));
    ASSERT_REFUSED(&b, -EINVAL, prom_family_begin(&b, "ok", PROM_GAUGE, "bad \xff utf-8"));
    ck_assert_int_eq(prom_family_begin(&b, "_ok:a1", PROM_GAUGE, ""), 0);
    ck_assert_int_eq(prom_family_begin(&b, "tribune:ok_2", PROM_GAUGE, "h"), 0);
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, "-x", NULL, 1));
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, " x", NULL, 1));
    ck_assert_int_eq(prom_sample(&b, "_2x:y", NULL, 1), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "\ntribune:ok_2_2x:y 1\n"));
    prom_buf_fini(&b);
}
END_TEST

START_TEST(labels_validated)
{
    struct hist h;
    hist_init(&h, &small);
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(prom_family_begin(&b, "g", PROM_GAUGE, "h"), 0);
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, NULL, LABELS({"__name", "x"}), 1));
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, NULL, LABELS({"a:b", "x"}), 1));
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, NULL, LABELS({"1a", "x"}), 1));
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, NULL, LABELS({"", "x"}), 1));
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, NULL, LABELS({"a", NULL}), 1));
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, NULL, LABELS({"a", "x"}, {"a", "y"}), 1));
    const char *bad_utf8[] = {"\xff",      "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                              "ok\xe2\x82"};
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++)
        ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, NULL, LABELS({"a", bad_utf8[i]}), 1));
    ck_assert_int_eq(prom_sample(&b, NULL, LABELS({"le", "x"}, {"_a1", "y"}), 1), 0);
    ck_assert_int_eq(prom_family_begin(&b, "hh", PROM_HISTOGRAM, "h"), 0);
    ASSERT_REFUSED(&b, -EINVAL, prom_hist_sample(&b, LABELS({"le", "1"}), &h));
    ASSERT_REFUSED(&b, -EINVAL,
                   prom_histogram(&b, "h2_seconds", "h", LABELS({"a", "1"}, {"le", "1"}), &h));
    prom_buf_fini(&b);
}
END_TEST

START_TEST(call_order_and_values)
{
    struct hist h;
    hist_init(&h, &small);
    struct prom_buf b;
    prom_buf_init(&b);
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, NULL, NULL, 1));
    ASSERT_REFUSED(&b, -EINVAL, prom_hist_sample(&b, NULL, &h));
    ck_assert_int_eq(prom_family_begin(&b, "c_total", PROM_COUNTER, "h"), 0);
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, NULL, NULL, -1));
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, NULL, NULL, NAN));
    ASSERT_REFUSED(&b, -EINVAL, prom_hist_sample(&b, NULL, &h));
    ck_assert_int_eq(prom_sample(&b, NULL, NULL, 0), 0);
    ck_assert_int_eq(prom_family_begin(&b, "g", PROM_GAUGE, "h"), 0);
    ck_assert_int_eq(prom_sample(&b, NULL, NULL, -1), 0);
    ck_assert_int_eq(prom_sample(&b, NULL, NULL, NAN), 0);
    ck_assert_int_eq(prom_family_begin(&b, "hh", PROM_HISTOGRAM, "h"), 0);
    ASSERT_REFUSED(&b, -EINVAL, prom_sample(&b, NULL, NULL, 1));
    ck_assert_int_eq(prom_hist_sample(&b, NULL, &h), 0);
    prom_buf_fini(&b);
}
END_TEST

START_TEST(family_declared_once)
{
    struct hist h;
    hist_init(&h, &small);
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(prom_family_begin(&b, "a", PROM_GAUGE, "h"), 0);
    ck_assert_int_eq(prom_family_begin(&b, "ab", PROM_GAUGE, "h"), 0);
    ck_assert_int_eq(prom_gauge(&b, "b", "mentions a as # TYPE a gauge", NULL, 1), 0);
    ASSERT_REFUSED(&b, -EEXIST, prom_family_begin(&b, "a", PROM_GAUGE, "h"));
    ASSERT_REFUSED(&b, -EEXIST, prom_family_begin(&b, "ab", PROM_COUNTER, "h"));
    ASSERT_REFUSED(&b, -EEXIST, prom_counter(&b, "b", "h", NULL, 1));
    ASSERT_REFUSED(&b, -EEXIST, prom_histogram(&b, "a", "h", NULL, &h));
    ck_assert_int_eq(prom_family_begin(&b, "abc", PROM_GAUGE, "h"), 0);
    prom_buf_fini(&b);
    /* After fini the buffer is empty and names may be declared again. */
    ck_assert_int_eq(prom_family_begin(&b, "a", PROM_GAUGE, "h"), 0);
    prom_buf_fini(&b);
}
END_TEST

START_TEST(failed_call_keeps_current_family)
{
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(prom_family_begin(&b, "g", PROM_GAUGE, "h"), 0);
    ck_assert_int_eq(prom_sample(&b, NULL, NULL, 1), 0);
    /* The family line of `c_total` would be valid; its sample is not. */
    ASSERT_REFUSED(&b, -EINVAL, prom_counter(&b, "c_total", "h", NULL, -5));
    ck_assert_int_eq(prom_sample(&b, NULL, LABELS({"x", "y"}), 2), 0);
    ck_assert_str_eq(b.data, "# HELP g h\n# TYPE g gauge\ng 1\ng{x=\"y\"} 2\n");
    /* And c_total was not declared, so it still can be. */
    ck_assert_int_eq(prom_counter(&b, "c_total", "h", NULL, 5), 0);
    prom_buf_fini(&b);
}
END_TEST

START_TEST(grows_past_initial_capacity)
{
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(prom_family_begin(&b, "tribune_space_listeners", PROM_GAUGE, "h"), 0);
    for (int i = 0; i < 5000; i++) {
        char id[16];
        snprintf(id, sizeof(id), "s%d", i);
        ck_assert_int_eq(prom_sample(&b, NULL, LABELS({"space", id}), i), 0);
    }
    ck_assert_uint_gt(b.len, 100000);
    ck_assert_uint_eq(b.len, strlen(b.data));
    ck_assert_ptr_nonnull(strstr(b.data, "\ntribune_space_listeners{space=\"s4999\"} 4999\n"));
    prom_buf_fini(&b);
}
END_TEST

START_TEST(promtool_accepts_exposition)
{
    struct hist join[2], session;
    hist_init(&join[0], &hist_join_to_first_audio);
    hist_init(&join[1], &hist_join_to_first_audio);
    hist_init(&session, &hist_session_length);
    for (int i = 0; i < 50; i++) {
        hist_observe(&join[i % 2], 0.01 * i);
        hist_observe(&session, 37.5 * i);
    }
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(prom_family_begin(&b, "tribune_listeners", PROM_GAUGE,
                                       "Listeners by space and state (see DESIGN.md)."),
                     0);
    const char *states[] = {"joining", "waiting", "hearing", "lagging"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(
            prom_sample(&b, NULL, LABELS({"space", "s1"}, {"state", states[i]}), i * 10), 0);
        ck_assert_int_eq(
            prom_sample(&b, NULL, LABELS({"space", "we\"ird\\ name\nhere é"}, {"state", states[i]}),
                        i),
            0);
    }
    ck_assert_int_eq(prom_family_begin(&b, "tribune_joins_refused_total", PROM_COUNTER,
                                       "Joins refused, by reason.\nSecond line \\ with backslash."),
                     0);
    ck_assert_int_eq(prom_sample(&b, NULL, LABELS({"reason", "full"}), 3), 0);
    ck_assert_int_eq(prom_sample(&b, NULL, LABELS({"reason", "rate"}), 1e15), 0);
    ck_assert_int_eq(prom_counter(&b, "tribune_delivered_bytes_total", "Bytes delivered.", NULL,
                                  18446744073709549568.0),
                     0);
    ck_assert_int_eq(prom_gauge(&b, "tribune_skip_ratio", "A float gauge.", NULL, 1.0 / 3), 0);
    ck_assert_int_eq(prom_family_begin(&b, "tribune_join_to_first_audio_seconds", PROM_HISTOGRAM,
                                       "Seconds from join to first audio byte."),
                     0);
    ck_assert_int_eq(prom_hist_sample(&b, LABELS({"space", "s1"}), &join[0]), 0);
    ck_assert_int_eq(prom_hist_sample(&b, LABELS({"space", "s2"}), &join[1]), 0);
    ck_assert_int_eq(prom_histogram(&b, "tribune_session_length_seconds",
                                    "Seconds a listener session lasted.", NULL, &session),
                     0);
    char out[4096];
    int rc = promtool_check(b.data, out, sizeof(out));
    ck_assert_msg(rc == 0, "promtool exit %d: %s\n--- exposition ---\n%s", rc, out, b.data);
    ck_assert_msg(out[0] == '\0', "promtool reported: %s", out);
    prom_buf_fini(&b);
}
END_TEST

/* The check above would be vacuous if promtool accepted anything. */
START_TEST(promtool_rejects_problems)
{
    char out[4096];
    ck_assert_int_ne(promtool_check("# HELP x A.\n# TYPE x counter\nx 1\n", out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "_total"));
    ck_assert_int_ne(promtool_check("# TYPE x gauge\nx{a=\"b} 1\n", out, sizeof(out)), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("prom");
    TCase *tc = tcase_create("prom");
    tcase_add_test(tc, counter_exact);
    tcase_add_test(tc, family_with_several_label_sets);
    tcase_add_test(tc, escaping);
    tcase_add_test(tc, histogram_exact);
    tcase_add_test(tc, histogram_merged_cumulative);
    tcase_add_test(tc, numbers);
    tcase_add_test(tc, names_validated);
    tcase_add_test(tc, labels_validated);
    tcase_add_test(tc, call_order_and_values);
    tcase_add_test(tc, family_declared_once);
    tcase_add_test(tc, failed_call_keeps_current_family);
    tcase_add_test(tc, grows_past_initial_capacity);
    tcase_add_test(tc, promtool_accepts_exposition);
    tcase_add_test(tc, promtool_rejects_problems);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
