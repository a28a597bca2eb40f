/* Unit tests for api/web.c's pure parts: the embedded table (sorted, every
 * page and module present), web_find (only exact names: no traversal, no
 * prefix or case games), web_content_type and web_etag_matches. */
#include "api/web.h"

#include <check.h>
#include <string.h>

#include "../harness.h"

static const struct web_asset *find(const char *p)
{
    return web_find(p, strlen(p));
}

START_TEST(table)
{
    ck_assert_uint_gt(web_assets_n, 5);
    for (size_t i = 0; i < web_assets_n; i++) {
        const struct web_asset *a = &web_assets[i];
        if (i) ck_assert_int_lt(strcmp(web_assets[i - 1].path, a->path), 0);
        ck_assert_ptr_eq(find(a->path), a);
        ck_assert_uint_eq(strlen(a->etag), 18); /* "16 hex digits" */
        ck_assert(a->etag[0] == '"' && a->etag[17] == '"');
        ck_assert_uint_eq(strlen(a->data), a->len); /* text files, NUL-terminated */
    }
    const char *need[] = {"index.html", "listen.html",     "host.html", "speak.html",
                          "404.html",   "css/tribune.css", "js/api.js", "js/backoff.js"};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        ck_assert_msg(find(need[i]) != NULL, "%s is not embedded", need[i]);
    const struct web_asset *ix = find("index.html");
    ck_assert_ptr_nonnull(strstr(ix->data, "<!--demo-audio-->"));
}
END_TEST

START_TEST(lookup)
{
    const char *bad[] = {"",
                         "/index.html",
                         "../index.html",
                         "js/../index.html",
                         "js",
                         "js/",
                         "index.htm",
                         "index.html/",
                         "INDEX.HTML",
                         "%2e%2e/index.html",
                         "./index.html",
                         "css//tribune.css",
                         "zzz",
                         "a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(find(bad[i]) == NULL, "%s was found", bad[i]);
    ck_assert_ptr_null(web_find("index.html\0", 11)); /* an embedded NUL */
    ck_assert_ptr_null(web_find("index.htmlx", 10 + 1));
    ck_assert_ptr_nonnull(web_find("index.htmlx", 10)); /* the length decides */
}
END_TEST

static const char *type(const char *p)
{
    return web_content_type(p, strlen(p));
}

START_TEST(types)
{
    ck_assert_str_eq(type("index.html"), "text/html; charset=utf-8");
    ck_assert_str_eq(type("css/tribune.css"), "text/css; charset=utf-8");
    ck_assert_str_eq(type("js/api.js"), "text/javascript; charset=utf-8");
    ck_assert_str_eq(type("i.svg"), "image/svg+xml");
    ck_assert_str_eq(type("i.png"), "image/png");
    ck_assert_str_eq(type("x.json"), "application/json");
    ck_assert_str_eq(type("js"), "application/octet-stream");
    ck_assert_str_eq(type("x.jsx"), "application/octet-stream");
    ck_assert_str_eq(type(""), "application/octet-stream");
}
END_TEST

static bool inm(const char *v, const char *etag)
{
    return web_etag_matches(v, strlen(v), etag);
}

START_TEST(etags)
{
    const char *e = "\"0123456789abcdef\"";
    ck_assert(inm("\"0123456789abcdef\"", e));
    ck_assert(inm("W/\"0123456789abcdef\"", e));
    ck_assert(inm("*", e));
    ck_assert(inm(" \"x\" , \"0123456789abcdef\" ", e));
    ck_assert(inm("\"x\",W/\"0123456789abcdef\"", e));
    ck_assert(!inm("", e));
    ck_assert(!inm("\"0123456789abcde\"", e));
    ck_assert(!inm("0123456789abcdef", e));
    ck_assert(!inm("\"0123456789abcdef\"x", e));
    ck_assert(!inm(",,, ,", e));
    ck_assert(!inm("W/", e));
    ck_assert(!inm("**", e));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("web");
    TCase *tc = tcase_create("web");
    tcase_add_test(tc, table);
    tcase_add_test(tc, lookup);
    tcase_add_test(tc, types);
    tcase_add_test(tc, etags);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
