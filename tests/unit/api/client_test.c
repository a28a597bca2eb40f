/* Unit tests for api/client.c's pure parts: URL splitting and response
 * parsing; and one request against a closed port (a clear error). */
#include "api/client.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"

START_TEST(split_ok)
{
    char h[64], p[16];
    ck_assert_int_eq(client_split_url("http://127.0.0.1:8000", h, sizeof(h), p, sizeof(p)), 0);
    ck_assert_str_eq(h, "127.0.0.1");
    ck_assert_str_eq(p, "8000");
    ck_assert_int_eq(client_split_url("http://example.org/x/y", h, sizeof(h), p, sizeof(p)), 0);
    ck_assert_str_eq(h, "example.org");
    ck_assert_str_eq(p, "80");
    ck_assert_int_eq(client_split_url("localhost:9", h, sizeof(h), p, sizeof(p)), 0);
    ck_assert_str_eq(h, "localhost");
    ck_assert_str_eq(p, "9");
    ck_assert_int_eq(client_split_url("http://[::1]:8000/", h, sizeof(h), p, sizeof(p)), 0);
    ck_assert_str_eq(h, "::1");
    ck_assert_str_eq(p, "8000");
}
END_TEST

START_TEST(split_bad)
{
    char h[64], p[16];
    const char *bad[] = {
        "",           "http://",        "https://x:1",   "ftp://x",     "http://x:",
        "http://x:0", "http://x:65536", "http://x:12ab", "http://[::1", "http://[::1]x",
        "http://:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(client_split_url(bad[i], h, sizeof(h), p, sizeof(p)) == -EINVAL, "%s",
                      bad[i]);
}
END_TEST

START_TEST(parse)
{
    char r1[] =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}junk";
    int st;
    char *b;
    size_t bl;
    ck_assert_int_eq(client_parse_response(r1, strlen(r1), &st, &b, &bl), 0);
    ck_assert_int_eq(st, 200);
    ck_assert_uint_eq(bl, 2);
    ck_assert_int_eq(memcmp(b, "{}", 2), 0);
    char r2[] = "HTTP/1.0 404 Not Found\r\n\r\nnope";
    ck_assert_int_eq(client_parse_response(r2, strlen(r2), &st, &b, &bl), 0);
    ck_assert_int_eq(st, 404);
    ck_assert_uint_eq(bl, 4);
    char r3[] = "SSH-2.0-OpenSSH\r\n\r\n";
    ck_assert_int_eq(client_parse_response(r3, strlen(r3), &st, &b, &bl), -EPROTO);
    char r4[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n";
    ck_assert_int_eq(client_parse_response(r4, strlen(r4), &st, &b, &bl), -EPROTO);
}
END_TEST

START_TEST(refused)
{
    /* A bound socket that does not listen: connecting to it is refused. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    int port = ntohs(a.sin_port);
    char url[64], err[256] = "";
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    int st = 0;
    char *body = (char *)1;
    size_t bl = 1;
    int rc = client_request(url, "GET", "/", NULL, NULL, 0, 2, &st, &body, &bl, err, sizeof(err));
    ck_assert_int_lt(rc, 0);
    ck_assert_ptr_null(body);
    ck_assert_msg(strstr(err, "cannot connect") != NULL, "%s", err);
    rc = client_request("ftp://x", "GET", "/", NULL, NULL, 0, 2, &st, &body, &bl, err, sizeof(err));
    ck_assert_int_eq(rc, -EINVAL);
    ck_assert_msg(strstr(err, "bad server URL") != NULL, "%s", err);
    close(fd);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("client");
    tcase_add_test(tc, split_ok);
    tcase_add_test(tc, split_bad);
    tcase_add_test(tc, parse);
    tcase_add_test(tc, refused);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
