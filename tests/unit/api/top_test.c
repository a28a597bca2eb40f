/* Unit tests for api/top.c's pure parts: top_parse (GET /api/spaces JSON ->
 * snapshot, sorted by hearing), top_parse_node (GET /api/node JSON) and
 * top_render (the frame, rates from two snapshots). */
#include "api/top.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"

static const char two[] =
    "{\"spaces\":[{\"id\":\"a\",\"state\":\"green\",\"listeners\":{\"connected\":3,\"waiting\":3,"
    "\"hearing\":0,\"lagging\":0,\"peak_hearing\":0,\"joined\":3,\"skips\":0}},"
    "{\"id\":\"demo\",\"state\":\"live\",\"listeners\":{\"connected\":7,\"waiting\":0,"
    "\"hearing\":5,\"lagging\":2,\"peak_hearing\":9,\"joined\":10,\"skips\":4}}]}";

static const char two_later[] =
    "{\"spaces\":[{\"id\":\"a\",\"state\":\"live\",\"listeners\":{\"connected\":3,\"waiting\":0,"
    "\"hearing\":3,\"lagging\":0,\"peak_hearing\":3,\"joined\":3,\"skips\":0}},"
    "{\"id\":\"demo\",\"state\":\"live\",\"listeners\":{\"connected\":7,\"waiting\":0,"
    "\"hearing\":7,\"lagging\":0,\"peak_hearing\":9,\"joined\":14,\"skips\":6}}]}";

START_TEST(parse)
{
    struct top_snap s;
    ck_assert_int_eq(top_parse(two, strlen(two), 1.0, &s), 0);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_str_eq(s.spaces[0].id, "demo"); /* most hearing first */
    ck_assert_str_eq(s.spaces[0].state, "live");
    ck_assert(s.spaces[0].peak == 9 && s.spaces[0].lagging == 2 && s.spaces[0].connected == 7);
    ck_assert(s.hearing == 5 && s.lagging == 2 && s.waiting == 3 && s.connected == 10);
    ck_assert(s.joined == 13 && s.skips == 4);
    top_snap_free(&s);
    ck_assert_int_eq(top_parse("[]", 2, 0, &s), -EPROTO);
    ck_assert_int_eq(top_parse("{\"spaces\":", 10, 0, &s), -EPROTO);
    ck_assert_int_eq(top_parse("{\"spaces\":[]}", 13, 0, &s), 0);
    ck_assert_uint_eq(s.n, 0);
    top_snap_free(&s);
}
END_TEST

static char *render(const struct top_snap *prev, const struct top_snap *cur, size_t rows)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    top_render(f, "http://x:1", prev, cur, rows);
    fclose(f);
    return buf;
}

START_TEST(frame)
{
    struct top_snap a, b;
    ck_assert_int_eq(top_parse(two, strlen(two), 10.0, &a), 0);
    ck_assert_int_eq(top_parse(two_later, strlen(two_later), 12.0, &b), 0);
    char *f1 = render(NULL, &a, 0);
    ck_assert_msg(strstr(f1, "node: 2 spaces  hearing 5  lagging 2  waiting 3  connected 10  "
                             "joins/s -  skips/s -") != NULL,
                  "%s", f1);
    ck_assert_msg(strstr(f1, "\ndemo ") != NULL && strstr(f1, "\na ") != NULL, "%s", f1);
    ck_assert_ptr_null(strstr(f1, "\033"));
    free(f1);
    char *f2 = render(&a, &b, 0);
    ck_assert_msg(strstr(f2, "joins/s 2.0  skips/s 1.0") != NULL, "%s", f2);
    free(f2);
    char *f3 = render(&b, &a, 1); /* totals went down (a restart): no rate; one row */
    ck_assert_msg(strstr(f3, "joins/s -  skips/s -") != NULL, "%s", f3);
    ck_assert_msg(strstr(f3, "... and 1 more spaces") != NULL, "%s", f3);
    free(f3);
    top_snap_free(&a);
    top_snap_free(&b);
}
END_TEST

START_TEST(node)
{
    struct top_snap a, b;
    ck_assert_int_eq(top_parse(two, strlen(two), 10.0, &a), 0);
    ck_assert_int_eq(top_parse(two, strlen(two), 12.0, &b), 0);
    char *f0 = render(NULL, &a, 0); /* no node numbers (an older server) */
    ck_assert_msg(strstr(f0, "refused/s -  cpu % -  workers -\n") != NULL, "%s", f0);
    free(f0);
    ck_assert_int_eq(top_parse_node("[]", 2, &a), -EPROTO);
    ck_assert_int_eq(top_parse_node("{\"workers\":2}", 13, &a), -EPROTO);
    static const char n1[] = "{\"workers\":4,\"workers_up\":3,\"cpu_seconds\":1.5,"
                             "\"refused_total\":10}";
    static const char n2[] = "{\"workers\":4,\"workers_up\":4,\"cpu_seconds\":2.5,"
                             "\"refused_total\":16}";
    ck_assert_int_eq(top_parse_node(n1, strlen(n1), &a), 0);
    ck_assert_int_eq(top_parse_node(n2, strlen(n2), &b), 0);
    char *f1 = render(NULL, &a, 0);
    ck_assert_msg(strstr(f1, "refused/s -  cpu % -  workers 3/4\n") != NULL, "%s", f1);
    free(f1);
    char *f2 = render(&a, &b, 0); /* 2 s: 6 refusals, 1 CPU second */
    ck_assert_msg(strstr(f2, "refused/s 3.0  cpu % 50.0  workers 4/4\n") != NULL, "%s", f2);
    free(f2);
    top_snap_free(&a);
    top_snap_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("top");
    TCase *tc = tcase_create("top");
    tcase_add_test(tc, parse);
    tcase_add_test(tc, frame);
    tcase_add_test(tc, node);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
