/* Unit tests for tools/load/attack.c's pure parts, the bytes flood
 * connections send and where they come from: junk is 1-4 KB and differs per
 * connection; oversize is a 64 KiB request target or 200 header fields;
 * slow-body is a valid POST head whose Content-Length is the body it
 * trickles; --flood-addrs spreads connections over K addresses from
 * 127.0.1.1; the option checks; and the flood's answers table
 * (report_code_add) stays sorted and bounded. */
#include "load/attack.h"
#include "load/report.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../harness.h"

#define BIG (ATTACK_OVERSIZE_URL + 1024)

static uint8_t buf[BIG];

/* The whole bulk of `r`, filled in pieces of `step` (a partial send resumes
 * at any offset); returns its length. */
static size_t bulk(const struct flood_req *r, size_t step)
{
    size_t off = 0, n;

    while ((n = attack_flood_fill(r, (uint32_t)off, buf + off, step)) > 0)
        off += n;
    ck_assert_uint_eq(off, r->len);
    return off;
}

static struct load_opts opts(uint32_t flood, uint32_t addrs)
{
    struct load_opts o = {.listeners = 10, .duration_s = 10, .src_addrs = 1};

    o.attack.flood = flood;
    o.attack.flood_rate = 100;
    o.attack.flood_addrs = addrs;
    return o;
}

START_TEST(junk_is_one_to_four_kb_and_differs)
{
    struct flood_req a, b;
    uint32_t lens_seen = 0, prev_len = 0;

    for (uint32_t k = 0; k < 500; k++) {
        attack_flood_req(FLOOD_JUNK, false, k, &a);
        ck_assert_uint_ge(a.len, ATTACK_JUNK_MIN);
        ck_assert_uint_le(a.len, ATTACK_JUNK_MAX);
        ck_assert_uint_eq(a.trickle_len, 0);
        if (a.len != prev_len) lens_seen++;
        prev_len = a.len;
    }
    ck_assert_uint_gt(lens_seen, 400);
    attack_flood_req(FLOOD_JUNK, false, 1, &a);
    attack_flood_req(FLOOD_JUNK, false, 2, &b);
    size_t n = bulk(&a, 7);
    uint8_t first[ATTACK_JUNK_MAX];
    memcpy(first, buf, n);
    bulk(&b, 4096);
    ck_assert(memcmp(first, buf, 64) != 0);
    /* the same connection sends the same bytes whatever the pieces */
    bulk(&a, 4096);
    ck_assert(memcmp(first, buf, n) == 0);
    uint32_t hist[256] = {0};
    for (size_t i = 0; i < n; i++)
        hist[buf[i]]++;
    uint32_t distinct = 0;
    for (int i = 0; i < 256; i++)
        distinct += hist[i] > 0;
    ck_assert_uint_gt(distinct, 200);
}
END_TEST

START_TEST(oversize_long_request_line)
{
    struct flood_req r;
    const char *tail = " HTTP/1.1\r\nHost: tribune-load\r\n\r\n";

    attack_flood_req(FLOOD_OVERSIZE, false, 4, &r);
    ck_assert_uint_eq(r.kind, 0);
    size_t n = bulk(&r, 1000);
    ck_assert_uint_eq(n, 5 + ATTACK_OVERSIZE_URL + strlen(tail));
    ck_assert(memcmp(buf, "GET /a", 6) == 0);
    for (size_t i = 5; i < 5 + ATTACK_OVERSIZE_URL; i++)
        ck_assert_uint_eq(buf[i], 'a');
    ck_assert(memcmp(buf + 5 + ATTACK_OVERSIZE_URL, tail, strlen(tail)) == 0);
}
END_TEST

START_TEST(oversize_many_header_fields)
{
    struct flood_req r;
    char want[32];

    attack_flood_req(FLOOD_OVERSIZE, false, 5, &r);
    ck_assert_uint_eq(r.kind, 1);
    size_t n = bulk(&r, 333);
    buf[n] = '\0';
    const char *p = (const char *)buf;
    const char *pre = "GET / HTTP/1.1\r\nHost: tribune-load\r\n";
    ck_assert(strncmp(p, pre, strlen(pre)) == 0);
    p += strlen(pre);
    for (int i = 0; i < ATTACK_OVERSIZE_FIELDS; i++) {
        snprintf(want, sizeof(want), "X-Field-%03d: x\r\n", i);
        ck_assert_msg(strncmp(p, want, strlen(want)) == 0, "field %d: %.16s", i, p);
        p += strlen(want);
    }
    ck_assert_str_eq(p, "\r\n");
    ck_assert_uint_lt(n, 8192); /* under the server's head limit: refused for the count */
}
END_TEST

START_TEST(slow_body_head_then_its_body)
{
    struct flood_req r;
    char want[256];

    attack_flood_req(FLOOD_SLOW_BODY, true, 0, &r);
    size_t n = bulk(&r, 10);
    snprintf(want, sizeof(want),
             "POST /api/spaces HTTP/1.1\r\nHost: tribune-load\r\nContent-Type: "
             "application/json\r\nContent-Length: %d\r\n\r\n",
             ATTACK_SLOW_BODY_LEN);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert(memcmp(buf, want, n) == 0);
    ck_assert_uint_eq(r.trickle_len, ATTACK_SLOW_BODY_LEN);
    ck_assert_int_lt(ATTACK_SLOW_BODY_LEN, 64 * 1024);
    const char *start = "{\"title\": \"";
    for (uint32_t i = 0; i < strlen(start); i++)
        ck_assert_uint_eq(attack_trickle_byte(&r, i), (uint8_t)start[i]);
    ck_assert_uint_eq(attack_trickle_byte(&r, 5000), 'a');
}
END_TEST

START_TEST(hold_and_reset_send_no_bulk)
{
    struct flood_req r;
    const char *head = "GET / HTTP/1.1\r\nHost: tribune-load\r\nX-Flood: ";

    attack_flood_req(FLOOD_HOLD, false, 3, &r);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_uint_eq(r.trickle_len, 0);
    attack_flood_req(FLOOD_HOLD, true, 3, &r);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_uint_eq(r.trickle_len, ATTACK_ENDLESS);
    for (uint32_t i = 0; i < strlen(head); i++)
        ck_assert_uint_eq(attack_trickle_byte(&r, i), (uint8_t)head[i]);
    attack_flood_req(FLOOD_RESET, false, 3, &r);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_uint_eq(r.trickle_len, 0);
    ck_assert_uint_eq(attack_flood_fill(&r, 0, buf, sizeof(buf)), 0);
}
END_TEST

START_TEST(flood_addrs_spread_from_127_0_1_1)
{
    struct load_opts o = opts(1000, 1);

    for (uint32_t k = 0; k < 1000; k++)
        ck_assert_uint_eq(attack_flood_source(&o, k), 0x7f000101u);
    o = opts(1000, 3000);
    ck_assert_uint_eq(attack_flood_addrs(&o), 3000);
    for (uint32_t k = 0; k < 1000; k++)
        ck_assert_uint_eq(attack_flood_source(&o, k), 0x7f000101u + k);
    o = opts(25000, 0); /* default: one per 10,000 */
    ck_assert_uint_eq(attack_flood_addrs(&o), 3);
    ck_assert_uint_eq(attack_flood_source(&o, 4), 0x7f000102u);
    o.src_addrs = 300; /* listeners up to 127.0.1.44: the flood starts at 127.0.2.1 */
    ck_assert_uint_eq(attack_flood_source(&o, 0), 0x7f000201u);
}
END_TEST

START_TEST(checks)
{
    struct load_opts o = opts(100, 0);

    ck_assert_int_eq(attack_check(&o), 0);
    o.attack.flood_mode = FLOOD_SLOW_BODY;
    ck_assert_int_lt(attack_check(&o), 0); /* needs a trickle */
    o.attack.flood_trickle_ms = 500;
    ck_assert_int_eq(attack_check(&o), 0);
    o.attack.flood_mode = FLOOD_JUNK;
    ck_assert_int_lt(attack_check(&o), 0); /* a trickle means nothing to junk */
    o.attack.flood_trickle_ms = 0;
    ck_assert_int_eq(attack_check(&o), 0);
    o.attack.flood = 0;
    ck_assert_int_lt(attack_check(&o), 0); /* a mode without a flood */
    o = opts(0, 5);
    ck_assert_int_lt(attack_check(&o), 0);
    o = opts(100, LOAD_MAX_SRC_ADDRS);
    ck_assert_int_eq(attack_check(&o), 0);
    o.src_addrs = LOAD_MAX_SRC_ADDRS * 255u; /* no room left in 127/8 */
    ck_assert_int_lt(attack_check(&o), 0);
}
END_TEST

START_TEST(modes_parse_and_name)
{
    for (uint32_t m = 0; m < FLOOD_MODES; m++)
        ck_assert_int_eq(attack_flood_mode_parse(attack_flood_mode_name(m)), (int)m);
    ck_assert_int_eq(attack_flood_mode_parse("slow-body"), FLOOD_SLOW_BODY);
    ck_assert_int_lt(attack_flood_mode_parse("slowbody"), 0);
}
END_TEST

START_TEST(answers_table_sorted_and_bounded)
{
    struct load_counts k = {0}, sum = {0};

    report_code_add(&k, 431, 2);
    report_code_add(&k, 414, 3);
    report_code_add(&k, 431, 1);
    report_code_add(&k, 400, 5);
    ck_assert_uint_eq(k.flood_status[0].code, 400);
    ck_assert_uint_eq(k.flood_status[0].n, 5);
    ck_assert_uint_eq(k.flood_status[1].code, 414);
    ck_assert_uint_eq(k.flood_status[2].code, 431);
    ck_assert_uint_eq(k.flood_status[2].n, 3);
    ck_assert_uint_eq(k.flood_status[3].code, 0);
    for (uint16_t c = 500; c < 500 + LOAD_FLOOD_CODES; c++)
        report_code_add(&k, c, 1);
    ck_assert_uint_eq(k.flood_status[LOAD_FLOOD_CODES - 1].code, 500 + LOAD_FLOOD_CODES - 4);
    ck_assert_uint_eq(k.flood_status_other, 3);
    report_code_add(&k, 414, 1); /* a code already there still counts */
    ck_assert_uint_eq(k.flood_status[1].n, 4);
    report_code_add(&sum, 414, 10);
    report_add(&sum, &k);
    ck_assert_uint_eq(sum.flood_status[0].code, 400);
    ck_assert_uint_eq(sum.flood_status[1].n, 14);
    ck_assert_uint_eq(sum.flood_status_other, 3); /* all of k's codes fit in sum */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("attack");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, junk_is_one_to_four_kb_and_differs);
    tcase_add_test(tc, oversize_long_request_line);
    tcase_add_test(tc, oversize_many_header_fields);
    tcase_add_test(tc, slow_body_head_then_its_body);
    tcase_add_test(tc, hold_and_reset_send_no_bulk);
    tcase_add_test(tc, flood_addrs_spread_from_127_0_1_1);
    tcase_add_test(tc, checks);
    tcase_add_test(tc, modes_parse_and_name);
    tcase_add_test(tc, answers_table_sorted_and_bounded);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
