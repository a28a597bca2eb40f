/* Unit tests for api/events.c's pure part: events_format (SSE framing). The
 * streaming itself is covered end to end by tests/e2e/test_events.py. */
#include "api/events.h"

#include <check.h>
#include <string.h>

#include "../harness.h"

static size_t fmt(char *out, size_t cap, uint64_t id, const char *data)
{
    return events_format(out, cap, id, data, strlen(data));
}

START_TEST(one_line)
{
    char out[128];
    size_t n = fmt(out, sizeof(out), 7, "{\"a\":1}");
    ck_assert_str_eq(out, "id: 7\ndata: {\"a\":1}\n\n");
    ck_assert_uint_eq(n, strlen(out));
}
END_TEST

START_TEST(multi_line)
{
    char out[128];
    fmt(out, sizeof(out), 0, "a\nb\r\nc\rd");
    ck_assert_str_eq(out, "id: 0\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
    fmt(out, sizeof(out), 1, "a\n");
    ck_assert_str_eq(out, "id: 1\ndata: a\n\n");
    fmt(out, sizeof(out), 2, "");
    ck_assert_str_eq(out, "id: 2\ndata: \n\n");
}
END_TEST

START_TEST(too_small)
{
    char out[16];
    const char *want = "id: 18446744073709551615\ndata: hello\n\n";
    size_t n = fmt(NULL, 0, UINT64_MAX, "hello");
    ck_assert_uint_eq(n, strlen(want));
    memset(out, 'x', sizeof(out));
    ck_assert_uint_eq(fmt(out, sizeof(out), UINT64_MAX, "hello"), strlen(want));
    ck_assert_uint_eq(strlen(out), sizeof(out) - 1);
    ck_assert_int_eq(memcmp(out, want, sizeof(out) - 1), 0);
    char exact[64];
    ck_assert_uint_eq(fmt(exact, n + 1, UINT64_MAX, "hello"), n);
    ck_assert_str_eq(exact, want);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, one_line);
    tcase_add_test(tc, multi_line);
    tcase_add_test(tc, too_small);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
