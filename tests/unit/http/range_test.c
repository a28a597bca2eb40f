/* Unit tests for http/range.c: the Range header against a representation size, table-driven. */
#include "http/range.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "../harness.h"

struct row {
    const char *value;
    uint64_t size;
    int verdict;
    size_t n;
    struct byte_range r[3];
};

static const struct row rows[] = {
    {"bytes=0-499", 1000, RANGE_OK, 1, {{0, 499}}},
    {"bytes=0-0", 1000, RANGE_OK, 1, {{0, 0}}},
    {"bytes=500-", 1000, RANGE_OK, 1, {{500, 999}}},
    {"bytes=-500", 1000, RANGE_OK, 1, {{500, 999}}},
    {"bytes=-5000", 1000, RANGE_OK, 1, {{0, 999}}},      /* suffix longer than the file: all */
    {"bytes=900-5000", 1000, RANGE_OK, 1, {{900, 999}}}, /* end clipped */
    {"bytes=999-999", 1000, RANGE_OK, 1, {{999, 999}}},
    {"bytes=0-0,-1", 1000, RANGE_OK, 2, {{0, 0}, {999, 999}}},
    {"bytes=0-9, 20-29 ,40-", 50, RANGE_OK, 3, {{0, 9}, {20, 29}, {40, 49}}},
    {"bytes=20-29,0-9", 100, RANGE_OK, 2, {{0, 9}, {20, 29}}}, /* sorted */
    {"bytes=0-10,5-20,21-30", 100, RANGE_OK, 1, {{0, 30}}},  /* overlapping and adjacent: merged */
    {"bytes=1000-", 1000, RANGE_UNSATISFIABLE, 0, {{0, 0}}}, /* beyond the end: 416 */
    {"bytes=1000-2000", 1000, RANGE_UNSATISFIABLE, 0, {{0, 0}}},
    {"bytes=-0", 1000, RANGE_UNSATISFIABLE, 0, {{0, 0}}},
    {"bytes=0-", 0, RANGE_UNSATISFIABLE, 0, {{0, 0}}}, /* an empty representation */
    {"bytes=2000-,0-1", 1000, RANGE_OK, 1, {{0, 1}}},  /* the unsatisfiable one left out */
    {"bytes=5-4", 1000, RANGE_NONE, 0, {{0, 0}}},      /* last before first: malformed */
    {"bytes=-", 1000, RANGE_NONE, 0, {{0, 0}}},
    {"bytes=", 1000, RANGE_NONE, 0, {{0, 0}}},
    {"bytes=a-b", 1000, RANGE_NONE, 0, {{0, 0}}},
    {"bytes=0-1;", 1000, RANGE_NONE, 0, {{0, 0}}},
    {"bytes=0-1,", 1000, RANGE_NONE, 0, {{0, 0}}},
    {"items=0-1", 1000, RANGE_NONE, 0, {{0, 0}}},
    {"Bytes=0-1", 1000, RANGE_NONE, 0, {{0, 0}}},
    {"bytes=99999999999999999999-", 1000, RANGE_NONE, 0, {{0, 0}}}, /* 20 digits */
    {"bytes=1-2,3-4,5-6,7-8,9-10,11-12,13-14,15-16,17-18", 100, RANGE_NONE, 0, {{0, 0}}},
};

START_TEST(table)
{
    const struct row *w = &rows[_i];
    struct byte_range out[RANGE_MAX];
    size_t n = 99;
    enum range_verdict v = range_parse(w->value, strlen(w->value), w->size, out, RANGE_MAX, &n);
    ck_assert_msg((int)v == w->verdict, "%s: verdict %d, expected %d", w->value, v, w->verdict);
    ck_assert_msg(n == w->n, "%s: %zu ranges, expected %zu", w->value, n, w->n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(out[i].first == w->r[i].first && out[i].last == w->r[i].last,
                      "%s: range %zu is %llu-%llu", w->value, i, (unsigned long long)out[i].first,
                      (unsigned long long)out[i].last);
        ck_assert(out[i].last < w->size);
    }
}
END_TEST

START_TEST(cap_is_respected)
{
    struct byte_range out[2];
    size_t n = 0;
    const char *v = "bytes=0-1,10-11,20-21";
    ck_assert_int_eq(range_parse(v, strlen(v), 100, out, 2, &n), RANGE_NONE);
    ck_assert_int_eq(range_parse(v, 9, 100, out, 2, &n), RANGE_OK); /* "bytes=0-1" */
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(range_parse(NULL, 0, 100, out, 2, &n), RANGE_NONE);
}
END_TEST

static Suite *range_suite(void)
{
    Suite *s = suite_create("range");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, table, 0, (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, cap_is_respected);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(range_suite());
}
