/* Unit tests for relay/steer.c: the choice of the edge a full node steers a join to,
 * the `edges` list, and matching an edge's URL to its report id. */
#include "relay/steer.h"

#include <check.h>
#include <string.h>

#include "../harness.h"

START_TEST(picks_fresh_least_loaded_with_room)
{
    struct steer_edge e[4] = {
        {.is_fresh = true, .listeners = 500},
        {.is_fresh = false, .listeners = 0},                 /* stale: never */
        {.is_fresh = true, .listeners = 10, .capacity = 10}, /* full: never */
        {.is_fresh = true, .listeners = 200, .capacity = 1000},
    };
    ck_assert_int_eq(steer_pick(e, 4), 3);
    e[3].listeners = 500; /* a tie goes to the first */
    ck_assert_int_eq(steer_pick(e, 4), 0);
    e[0].is_fresh = false;
    e[3].listeners = 1000;
    ck_assert_int_eq(steer_pick(e, 4), -1);
    ck_assert_int_eq(steer_pick(e, 0), -1);
    e[2].capacity = 0; /* unknown capacity: room assumed */
    ck_assert_int_eq(steer_pick(e, 4), 2);
}
END_TEST

START_TEST(parses_the_list)
{
    struct steer_edge e[3];
    ck_assert_uint_eq(steer_parse("", e, 3), 0);
    ck_assert_uint_eq(steer_parse(" , ,", e, 3), 0);
    size_t n = steer_parse("http://a:1, http://b:2 ,,http://c:3,http://d:4", e, 3);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(e[0].url_len, 10);
    ck_assert(memcmp(e[0].url, "http://a:1", 10) == 0);
    ck_assert(memcmp(e[1].url, "http://b:2", e[1].url_len) == 0 && e[1].url_len == 10);
    ck_assert(memcmp(e[2].url, "http://c:3", e[2].url_len) == 0 && e[2].url_len == 10);
    char big[STEER_URL_MAX + 20];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_uint_eq(steer_parse(big, e, 3), 0); /* over-long: dropped */
}
END_TEST

START_TEST(matches_report_ids)
{
    struct steer_edge e[2];
    ck_assert_uint_eq(steer_parse("http://127.0.0.1:8001/,10.0.0.2:8000", e, 2), 2);
    ck_assert(steer_matches(&e[0], "0a1b2c3d-127.0.0.1:8001"));
    ck_assert(!steer_matches(&e[0], "0a1b2c3d-127.0.0.1:800"));
    ck_assert(!steer_matches(&e[0], "0a1b2c3d-127.0.0.1:80011"));
    ck_assert(!steer_matches(&e[0], "no dash"));
    ck_assert(steer_matches(&e[1], "ffffffff-10.0.0.2:8000"));
}
END_TEST

static Suite *steer_suite(void)
{
    Suite *s = suite_create("steer");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, picks_fresh_least_loaded_with_room);
    tcase_add_test(tc, parses_the_list);
    tcase_add_test(tc, matches_report_ids);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(steer_suite());
}
