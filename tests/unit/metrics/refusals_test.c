/* Unit tests for metrics/refusals.c: counting and the label names. */
#include "metrics/refusals.h"

#include <check.h>
#include <ctype.h>
#include <string.h>

#include "../harness.h"

START_TEST(counts_by_reason)
{
    log_threshold = LOG_ERROR;
    memset(&refusals, 0, sizeof(refusals));
    refuse(REFUSE_FULL);
    refuse(REFUSE_FULL);
    refuse(REFUSE_BAD_KEY);
    refuse((enum refuse_reason)REFUSE_N); /* out of range: ignored */
    refuse((enum refuse_reason) - 1);
    ck_assert_uint_eq(refusals.count[REFUSE_FULL], 2);
    ck_assert_uint_eq(refusals.count[REFUSE_BAD_KEY], 1);
    uint64_t total = 0;
    for (int r = 0; r < REFUSE_N; r++)
        total += refusals.count[r];
    ck_assert_uint_eq(total, 3);
}
END_TEST

START_TEST(names_are_distinct_label_values)
{
    for (int r = 0; r < REFUSE_N; r++) {
        const char *a = refuse_name((enum refuse_reason)r);
        ck_assert_ptr_nonnull(a);
        ck_assert_uint_gt(strlen(a), 0);
        for (const char *p = a; *p; p++)
            ck_assert_msg(islower((unsigned char)*p) || *p == '_', "%s: not [a-z_]", a);
        for (int q = 0; q < r; q++)
            ck_assert_str_ne(a, refuse_name((enum refuse_reason)q));
    }
    ck_assert_str_eq(refuse_name((enum refuse_reason)REFUSE_N), "other");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("refusals");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, counts_by_reason);
    tcase_add_test(tc, names_are_distinct_label_values);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
