/* Unit tests for record/replay.c: real files in a temporary directory, a real loop, the client
 * end of a socketpair reading everything; the loop runs until the server side closes (a
 * condition with a deadline). */
#include "record/replay.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../harness.h"
#include "core/log.h"

static char dir[64];
static char path[3][128];
static uint8_t content[3][300000];
static const size_t sizes[3] = {1000, 250000, 4096};
static struct loop *loop;
static char *got;
static size_t got_len;

static void setup(void)
{
    log_threshold = LOG_ERROR;
    snprintf(dir, sizeof(dir), "/tmp/replay_test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    for (int f = 0; f < 3; f++) {
        snprintf(path[f], sizeof(path[f]), "%s/seg-%d.opus", dir, f);
        for (size_t i = 0; i < sizes[f]; i++)
            content[f][i] = (uint8_t)(i * 7 + f * 13 + i / 251);
        FILE *fp = fopen(path[f], "wb");
        ck_assert_ptr_nonnull(fp);
        /* a few bytes more than served: the replay serves what it is told (whole pages) */
        ck_assert_uint_eq(fwrite(content[f], 1, sizes[f], fp), sizes[f]);
        fputs("TAIL", fp);
        fclose(fp);
    }
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
}

static void teardown(void)
{
    replay_close_all();
    loop_run_once(loop);
    loop_free(loop);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(got);
    got = NULL;
}

/* The concatenation the replay serves. */
static uint8_t whole[300000 + 1000 + 4096];
static size_t whole_len(void)
{
    size_t n = 0;
    for (int f = 0; f < 3; f++) {
        memcpy(whole + n, content[f], sizes[f]);
        n += sizes[f];
    }
    return n;
}

static int client;
static size_t client_cap;
static bool is_eof;

/* Reads what the client end has (the condition polled by run_until_fn): true at EOF. */
static bool read_some(void)
{
    for (;;) {
        ssize_t n = recv(client, got + got_len, client_cap - got_len - 1, MSG_DONTWAIT);
        if (n == 0) return is_eof = true;
        if (n < 0) return false;
        got_len += (size_t)n;
    }
}

/* Runs a replay of the three files with `range` and reads the whole response. */
static void run(bool is_head, const char *range, int nfiles)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    struct replay_file files[3];
    for (int f = 0; f < nfiles; f++)
        files[f] = (struct replay_file){path[f], sizes[f]};
    replay_start(loop, sv[0], files, (size_t)nfiles, is_head, range, range ? strlen(range) : 0);
    size_t cap = 1 << 20;
    got = realloc(got, cap);
    got_len = 0;
    client = sv[1];
    client_cap = cap;
    is_eof = false;
    ck_assert(run_until_fn(loop, read_some, 10000));
    loop_run_once(loop); /* the deferred free of the finished replay */
    got[got_len] = '\0';
    close(sv[1]);
    ck_assert_uint_eq(replay_count(), 0);
}

static const char *body(void)
{
    const char *b = strstr(got, "\r\n\r\n");
    ck_assert_ptr_nonnull(b);
    return b + 4;
}

START_TEST(whole_and_head)
{
    size_t total = whole_len();
    run(false, NULL, 3);
    ck_assert_msg(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.80s", got);
    char want[64];
    snprintf(want, sizeof(want), "Content-Length: %zu\r\n", total);
    ck_assert_ptr_nonnull(strstr(got, want));
    ck_assert_ptr_nonnull(strstr(got, "Accept-Ranges: bytes\r\n"));
    const char *b = body();
    ck_assert_uint_eq(got_len - (size_t)(b - got), total);
    ck_assert(memcmp(b, whole, total) == 0);
    run(true, NULL, 3);
    ck_assert_ptr_nonnull(strstr(got, want));
    ck_assert_str_eq(body(), "");
}
END_TEST

START_TEST(one_range_across_files)
{
    size_t total = whole_len();
    run(false, "bytes=900-1099", 3); /* the end of file 0 and the start of file 1 */
    ck_assert_msg(strncmp(got, "HTTP/1.1 206 Partial Content\r\n", 30) == 0, "%.80s", got);
    char want[64];
    snprintf(want, sizeof(want), "Content-Range: bytes 900-1099/%zu\r\n", total);
    ck_assert_ptr_nonnull(strstr(got, want));
    ck_assert_ptr_nonnull(strstr(got, "Content-Length: 200\r\n"));
    const char *b = body();
    ck_assert_uint_eq(got_len - (size_t)(b - got), 200);
    ck_assert(memcmp(b, whole + 900, 200) == 0);
    run(false, "bytes=-10", 3); /* suffix: the last 10 bytes, not the file's extra tail */
    b = body();
    ck_assert_uint_eq(got_len - (size_t)(b - got), 10);
    ck_assert(memcmp(b, whole + total - 10, 10) == 0);
}
END_TEST

START_TEST(several_ranges_multipart)
{
    size_t total = whole_len();
    run(false, "bytes=0-9,2000-2009", 3);
    ck_assert_ptr_nonnull(strstr(got, "HTTP/1.1 206 Partial Content\r\n"));
    ck_assert_ptr_nonnull(strstr(got, "Content-Type: multipart/byteranges; boundary="));
    const char *b = body();
    /* Content-Length matches the body */
    const char *cl = strstr(got, "Content-Length: ");
    ck_assert_ptr_nonnull(cl);
    ck_assert_uint_eq(strtoull(cl + 16, NULL, 10), got_len - (size_t)(b - got));
    char want[64];
    snprintf(want, sizeof(want), "Content-Range: bytes 2000-2009/%zu\r\n\r\n", total);
    const char *p2 = memmem(b, got_len - (size_t)(b - got), want, strlen(want));
    ck_assert_ptr_nonnull(p2);
    ck_assert(memcmp(p2 + strlen(want), whole + 2000, 10) == 0);
    snprintf(want, sizeof(want), "Content-Range: bytes 0-9/%zu\r\n\r\n", total);
    const char *p1 = memmem(b, got_len - (size_t)(b - got), want, strlen(want));
    ck_assert_ptr_nonnull(p1);
    ck_assert(memcmp(p1 + strlen(want), whole, 10) == 0);
    ck_assert(p1 < p2);
    ck_assert(got_len > 4 && memcmp(got + got_len - 4, "--\r\n", 4) == 0);
}
END_TEST

START_TEST(unsatisfiable_and_missing_file)
{
    size_t total = whole_len();
    run(false, "bytes=999999-", 3);
    ck_assert_msg(strncmp(got, "HTTP/1.1 416 ", 13) == 0, "%.80s", got);
    char want[64];
    snprintf(want, sizeof(want), "Content-Range: bytes */%zu\r\n", total);
    ck_assert_ptr_nonnull(strstr(got, want));
    unlink(path[2]);
    run(false, NULL, 3);
    ck_assert_msg(strncmp(got, "HTTP/1.1 500 ", 13) == 0, "%.80s", got);
    run(false, "bytes=5-", 0); /* an empty recording: nothing satisfiable */
    ck_assert_msg(strncmp(got, "HTTP/1.1 416 ", 13) == 0, "%.80s", got);
    run(false, NULL, 0);
    ck_assert_ptr_nonnull(strstr(got, "Content-Length: 0\r\n"));
}
END_TEST

static Suite *replay_suite(void)
{
    Suite *s = suite_create("replay");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, whole_and_head);
    tcase_add_test(tc, one_range_across_files);
    tcase_add_test(tc, several_ranges_multipart);
    tcase_add_test(tc, unsatisfiable_and_missing_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(replay_suite());
}
