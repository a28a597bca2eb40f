/* Unit tests for tools/load/http_resp.c's response head parser, the parts
 * tribune-load's retry and flood modes read: the status, and Retry-After in
 * seconds (absent, an HTTP-date or garbage: none), whatever the split of the
 * input. */
#include "load/http_resp.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../harness.h"

/* Parses `s` fed in pieces of `step` bytes; returns the head and checks that
 * it completed exactly at the end of the empty line. */
static struct http_head parse(const char *s, size_t step)
{
    struct http_head h;
    size_t len = strlen(s), off = 0;
    ssize_t n = -2;

    http_head_init(&h);
    while (off < len && n == -2) {
        size_t part = len - off < step ? len - off : step;
        n = http_head_parse(&h, (const uint8_t *)s + off, part);
        if (n >= 0) off += (size_t)n;
        if (n == -2) off += part;
    }
    ck_assert_int_ge(n, 0);
    ck_assert_uint_eq(off, len);
    return h;
}

static const char refusal[] = "HTTP/1.1 503 Service Unavailable\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: 38\r\n"
                              "Retry-After: 17\r\n"
                              "Connection: close\r\n\r\n";

START_TEST(retry_after_in_seconds)
{
    for (size_t step = 1; step <= sizeof(refusal); step++) {
        struct http_head h = parse(refusal, step);
        ck_assert_uint_eq(h.status, 503);
        ck_assert_uint_eq(h.retry_after, 17);
    }
}
END_TEST

START_TEST(retry_after_variants)
{
    static const struct {
        const char *field;
        uint16_t want;
    } cases[] = {
        {"retry-after:5", 5},
        {"RETRY-AFTER:  0  ", 0},
        {"Retry-After:\t120", 120},
        {"Retry-After: 99999999", HTTP_RETRY_AFTER_MAX},
        {"Retry-After: Wed, 21 Oct 2015 07:28:00 GMT", HTTP_RETRY_AFTER_NONE},
        {"Retry-After: 5 s", HTTP_RETRY_AFTER_NONE},
        {"Retry-After: -1", HTTP_RETRY_AFTER_NONE},
        {"Retry-After:", HTTP_RETRY_AFTER_NONE},
        {"X-Retry-After: 5", HTTP_RETRY_AFTER_NONE},
        {"Retry-Afterwards: 5", HTTP_RETRY_AFTER_NONE},
        {"Cache-Control: no-store", HTTP_RETRY_AFTER_NONE},
    };
    char head[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(head, sizeof(head), "HTTP/1.1 503 Busy\r\n%s\r\nConnection: close\r\n\r\n",
                 cases[i].field);
        struct http_head h = parse(head, 3);
        ck_assert_msg(h.retry_after == cases[i].want, "%s: got %u, want %u", cases[i].field,
                      h.retry_after, cases[i].want);
    }
}
END_TEST

/* The field is read whatever its place, and the chunked flag still works. */
START_TEST(retry_after_last_and_chunked)
{
    struct http_head h = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                               "Retry-After: 3\r\n\r\n",
                               2);
    ck_assert_uint_eq(h.status, 200);
    ck_assert(h.is_chunked);
    ck_assert_uint_eq(h.retry_after, 3);
    h = parse("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 64);
    ck_assert_uint_eq(h.status, 400);
    ck_assert(!h.is_chunked);
    ck_assert_uint_eq(h.retry_after, HTTP_RETRY_AFTER_NONE);
}
END_TEST

START_TEST(garbage_is_not_a_head)
{
    struct http_head h;
    const uint8_t junk[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, '\r', '\n'};

    http_head_init(&h);
    ck_assert_int_eq(http_head_parse(&h, junk, sizeof(junk)), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_resp");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, retry_after_in_seconds);
    tcase_add_test(tc, retry_after_variants);
    tcase_add_test(tc, retry_after_last_and_chunked);
    tcase_add_test(tc, garbage_is_not_a_head);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
