/* Unit tests for http/route.c: matching, captures, 404 and 405. */
#include "http/route.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"

enum { R_INDEX, R_LISTEN, R_PUBLISH, R_SPACES, R_SPACE };

static const struct route table[] = {
    {"/", ROUTE_GET | ROUTE_HEAD, R_INDEX},
    {"/spaces/{}/live.opus", ROUTE_GET | ROUTE_HEAD, R_LISTEN},
    {"/spaces/{}/live.opus", ROUTE_PUT | ROUTE_SOURCE, R_PUBLISH},
    {"/api/spaces", ROUTE_GET | ROUTE_HEAD | ROUTE_POST, R_SPACES},
    {"/api/spaces/{}", ROUTE_GET | ROUTE_HEAD, R_SPACE},
    {"/spaces/{}/speakers/{}.opus", ROUTE_PUT, 9},
};
enum { N = sizeof(table) / sizeof(table[0]) };

static struct route_match find(unsigned method, const char *path)
{
    struct route_match m;
    ck_assert_int_eq(route_find(table, N, method, path, strlen(path), &m), 0);
    return m;
}

START_TEST(root_and_literals)
{
    struct route_match m = find(ROUTE_GET, "/");
    ck_assert_ptr_nonnull(m.route);
    ck_assert_int_eq(m.route->id, R_INDEX);
    ck_assert_int_eq(m.is_method_allowed, 1);
    m = find(ROUTE_POST, "/api/spaces");
    ck_assert_int_eq(m.route->id, R_SPACES);
    ck_assert_int_eq(m.is_method_allowed, 1);
}
END_TEST

START_TEST(captures)
{
    struct route_match m = find(ROUTE_GET, "/spaces/abc123/live.opus");
    ck_assert_int_eq(m.route->id, R_LISTEN);
    ck_assert_uint_eq(m.ncaptures, 1);
    ck_assert_uint_eq(m.captures[0].len, 6);
    ck_assert_int_eq(memcmp(m.captures[0].s, "abc123", 6), 0);
    m = find(ROUTE_PUT, "/spaces/s1/speakers/alice.opus");
    ck_assert_int_eq(m.route->id, 9);
    ck_assert_uint_eq(m.ncaptures, 2);
    ck_assert_uint_eq(m.captures[1].len, 5);
    ck_assert_int_eq(memcmp(m.captures[1].s, "alice", 5), 0);
}
END_TEST

START_TEST(same_path_two_routes_by_method)
{
    struct route_match m = find(ROUTE_SOURCE, "/spaces/x/live.opus");
    ck_assert_int_eq(m.route->id, R_PUBLISH);
    ck_assert_int_eq(m.is_method_allowed, 1);
    m = find(ROUTE_HEAD, "/spaces/x/live.opus");
    ck_assert_int_eq(m.route->id, R_LISTEN);
}
END_TEST

START_TEST(not_found)
{
    const char *paths[] = {"/nope",
                           "/api",
                           "/api/spaces/",
                           "/api/spaces/a/b",
                           "//",
                           "/spaces//live.opus",
                           "/spaces/x/live.mp3",
                           "/spaces/.opus",
                           "/spaces/x/speakers/.opus",
                           "",
                           "api/spaces"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct route_match m = find(ROUTE_GET, paths[i]);
        ck_assert_msg(m.route == NULL, "%s matched", paths[i]);
    }
}
END_TEST

START_TEST(method_not_allowed)
{
    struct route_match m = find(ROUTE_DELETE, "/api/spaces");
    ck_assert_ptr_nonnull(m.route);
    ck_assert_int_eq(m.is_method_allowed, 0);
    ck_assert_uint_eq(m.allowed, ROUTE_GET | ROUTE_HEAD | ROUTE_POST);
    m = find(ROUTE_PUT, "/api/spaces");
    ck_assert_int_eq(m.is_method_allowed, 0);
    m = find(ROUTE_POST, "/spaces/x/live.opus");
    ck_assert_int_eq(m.is_method_allowed, 0);
    ck_assert_uint_eq(m.allowed, ROUTE_GET | ROUTE_HEAD | ROUTE_PUT | ROUTE_SOURCE);
    m = find(ROUTE_OTHER, "/");
    ck_assert_int_eq(m.is_method_allowed, 0);
}
END_TEST

START_TEST(allow_header)
{
    char buf[64];
    ck_assert_str_eq(route_allow_header(ROUTE_GET | ROUTE_HEAD | ROUTE_POST, buf, sizeof(buf)),
                     "GET, HEAD, POST");
    ck_assert_str_eq(route_allow_header(ROUTE_PUT | ROUTE_SOURCE, buf, sizeof(buf)), "PUT, SOURCE");
    char small[8];
    route_allow_header(ROUTE_GET | ROUTE_HEAD | ROUTE_POST, small, sizeof(small));
    ck_assert_uint_lt(strlen(small), sizeof(small));
}
END_TEST

START_TEST(query_parameters)
{
    const char *v;
    size_t n;
    const char *u = "/spaces/x/monitor.opus?a=1&key=abc&keyx=2&key=second#key=frag";
    ck_assert(route_query(u, strlen(u), "key", &v, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert(memcmp(v, "abc", 3) == 0); /* the first one */
    ck_assert(route_query(u, strlen(u), "a", &v, &n) && n == 1 && *v == '1');
    ck_assert(!route_query(u, strlen(u), "ke", &v, &n)); /* a prefix is not a name */
    ck_assert(!route_query(u, strlen(u), "frag", &v, &n));
    const char *f = "/p?x=1#key=2";
    ck_assert(!route_query(f, strlen(f), "key", &v, &n)); /* the fragment is not the query */
    const char *e = "/p?key=";
    ck_assert(route_query(e, strlen(e), "key", &v, &n) && n == 0);
    ck_assert(!route_query("/p", 2, "key", &v, &n));
    const char *cut = "/p?key=abc";
    ck_assert(!route_query(cut, 6, "key", &v, &n)); /* only `len` bytes are read */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("route");
    tcase_add_test(tc, root_and_literals);
    tcase_add_test(tc, captures);
    tcase_add_test(tc, same_path_two_routes_by_method);
    tcase_add_test(tc, not_found);
    tcase_add_test(tc, method_not_allowed);
    tcase_add_test(tc, allow_header);
    tcase_add_test(tc, query_parameters);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
