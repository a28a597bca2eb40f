/* Unit tests for core/log.c: level names, the threshold, one write per line,
 * and log_escape (escaping, truncation, NUL termination, reading only `len`
 * bytes). Each test runs in its own process. */
#include "core/log.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../harness.h"

START_TEST(set_level_accepts_the_four_names)
{
    static const struct {
        const char *name;
        enum log_level level;
    } ok[] = {{"error", LOG_ERROR}, {"warn", LOG_WARN}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        log_threshold = ok[i].level == LOG_ERROR ? LOG_DEBUG : LOG_ERROR;
        ck_assert_int_eq(log_set_level(ok[i].name), 0);
        ck_assert_int_eq(log_threshold, ok[i].level);
    }
}
END_TEST

START_TEST(set_level_rejects_others_and_keeps_the_threshold)
{
    static const char *const bad[] = {"",      "verbose", "warning", "err", "info ",
                                      " info", "debugx",  "0",       "3"};
    ck_assert_int_eq(log_set_level("warn"), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(log_set_level(bad[i]), -EINVAL);
        ck_assert_int_eq(log_threshold, LOG_WARN);
    }
}
END_TEST

/* Points stderr at a non-blocking pipe; returns its read end. */
static int capture_stderr(void)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
    ck_assert_int_ge(dup2(p[1], STDERR_FILENO), 0);
    close(p[1]);
    return p[0];
}

/* Reads what is in the pipe now (log_msg writes synchronously). */
static size_t drain(int fd, char *buf, size_t cap)
{
    ssize_t n = read(fd, buf, cap - 1);
    if (n < 0) {
        ck_assert_int_eq(errno, EAGAIN);
        n = 0;
    }
    buf[n] = '\0';
    return (size_t)n;
}

static size_t count_char(const char *s, size_t len, char c)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += s[i] == c;
    return n;
}

START_TEST(msg_is_one_line_and_respects_the_threshold)
{
    int rd = capture_stderr();
    char buf[8192];
    ck_assert_int_eq(log_set_level("info"), 0);
    log_info("hello %d", 42);
    size_t n = drain(rd, buf, sizeof(buf));
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_eq(count_char(buf, n, '\n'), 1);
    ck_assert_int_eq(buf[n - 1], '\n');
    ck_assert_ptr_nonnull(strstr(buf, "info"));
    ck_assert_ptr_nonnull(strstr(buf, "hello 42\n"));

    log_debug("hidden %d", 1);
    log_msg(LOG_DEBUG, "hidden too");
    ck_assert_uint_eq(drain(rd, buf, sizeof(buf)), 0);
    log_warn("shown");
    n = drain(rd, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "warn"));
    ck_assert_ptr_nonnull(strstr(buf, "shown\n"));

    ck_assert_int_eq(log_set_level("error"), 0);
    log_warn("hidden");
    log_info("hidden");
    ck_assert_uint_eq(drain(rd, buf, sizeof(buf)), 0);
    log_error("bad %s", "thing");
    n = drain(rd, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "bad thing\n"));

    ck_assert_int_eq(log_set_level("debug"), 0);
    log_debug("now %s", "visible");
    n = drain(rd, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "now visible\n"));
    close(rd);
}
END_TEST

START_TEST(long_msg_is_cut_to_one_line)
{
    int rd = capture_stderr();
    char *big = malloc(5001);
    ck_assert_ptr_nonnull(big);
    memset(big, 'z', 5000);
    big[5000] = '\0';
    log_error("%s", big);
    char buf[8192];
    size_t n = drain(rd, buf, sizeof(buf));
    ck_assert_uint_gt(n, 512);
    ck_assert_uint_le(n, 1024);
    ck_assert_uint_eq(count_char(buf, n, '\n'), 1);
    ck_assert_int_eq(buf[n - 1], '\n');
    ck_assert_int_eq(buf[n - 2], 'z');
    free(big);
    close(rd);
}
END_TEST

/* The escape of one byte, as log_escape must write it. */
static size_t escape_len(unsigned char c)
{
    return (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : 4;
}

START_TEST(escape_keeps_printable_ascii)
{
    const char *in = "GET /spaces/abc/live.opus?x=1&y=%20 HTTP/1.1 ~!@#$^*()[]{}|;:'\",<>";
    char out[256];
    ck_assert_ptr_eq(log_escape(out, sizeof(out), in, strlen(in)), out);
    ck_assert_str_eq(out, in);
    ck_assert_str_eq(log_escape(out, sizeof(out), "", 0), "");
}
END_TEST

START_TEST(escape_hex_escapes_the_rest)
{
    static const char in[] = "a\r\n\t\0\x1b\x7f\x80\xff z";
    char out[256];
    log_escape(out, sizeof(out), in, sizeof(in) - 1);
    ck_assert_msg(strcasecmp(out, "a\\x0d\\x0a\\x09\\x00\\x1b\\x7f\\x80\\xff z") == 0, "got %s",
                  out);
    /* Every byte from 0 to 255: printable ones stay, the others take 4. */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    char big[4 * 256 + 8];
    log_escape(big, sizeof(big), all, sizeof(all));
    size_t want = 0;
    for (int i = 0; i < 256; i++)
        want += escape_len((unsigned char)i);
    ck_assert_uint_eq(strlen(big), want);
    for (const char *p = big; *p; p++)
        ck_assert(*p >= 0x20 && *p < 0x7f);
}
END_TEST

START_TEST(escape_is_unambiguous_for_backslashes)
{
    /* A client must not be able to forge an escape: the four characters
     * "\x0a" and a real newline must not log the same. */
    char a[64], b[64];
    log_escape(a, sizeof(a), "\\x0a", 4);
    log_escape(b, sizeof(b), "\n", 1);
    ck_assert_str_ne(a, b);
    ck_assert_str_ne(a, "\\x0a");
}
END_TEST

START_TEST(escape_reads_only_len_bytes)
{
    /* Exactly `len` bytes, no terminator: ASan flags any read past them. */
    char *in = malloc(6);
    ck_assert_ptr_nonnull(in);
    memcpy(in, "abc\0de", 6);
    char out[64];
    ck_assert_str_eq(log_escape(out, sizeof(out), in, 6), "abc\\x00de");
    ck_assert_str_eq(log_escape(out, sizeof(out), in, 3), "abc");
    ck_assert_str_eq(log_escape(out, sizeof(out), in, 0), "");
    free(in);
}
END_TEST

START_TEST(escape_truncates_inside_cap_and_terminates)
{
    static const char in[] = "ab\x01"
                             "cd\xff\\e\n"
                             "fghij";
    size_t len = sizeof(in) - 1;
    char full[256];
    log_escape(full, sizeof(full), in, len);
    size_t full_len = strlen(full);
    /* Where each whole escaped byte ends in `full`. */
    bool is_boundary[256] = {true};
    for (size_t i = 0, o = 0; i < len; i++) {
        o += escape_len((unsigned char)in[i]);
        is_boundary[o] = true;
    }
    for (size_t cap = 0; cap <= full_len + 8; cap++) {
        char out[300];
        memset(out, 0x5a, sizeof(out));
        ck_assert_ptr_eq(log_escape(out, cap, in, len), out);
        for (size_t i = cap; i < sizeof(out); i++)
            ck_assert_msg(out[i] == 0x5a, "cap %zu: byte %zu written", cap, i);
        if (cap == 0) continue;
        size_t n = strnlen(out, cap);
        ck_assert_msg(n < cap, "cap %zu: not terminated", cap);
        ck_assert_msg(memcmp(out, full, n) == 0, "cap %zu: not a prefix", cap);
        ck_assert_msg(is_boundary[n], "cap %zu: cut inside an escape (%zu)", cap, n);
    }
    /* With room to spare the output is whole. */
    char out[300];
    log_escape(out, full_len + 8, in, len);
    ck_assert_str_eq(out, full);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, set_level_accepts_the_four_names);
    tcase_add_test(tc, set_level_rejects_others_and_keeps_the_threshold);
    tcase_add_test(tc, msg_is_one_line_and_respects_the_threshold);
    tcase_add_test(tc, long_msg_is_cut_to_one_line);
    tcase_add_test(tc, escape_keeps_printable_ascii);
    tcase_add_test(tc, escape_hex_escapes_the_rest);
    tcase_add_test(tc, escape_is_unambiguous_for_backslashes);
    tcase_add_test(tc, escape_reads_only_len_bytes);
    tcase_add_test(tc, escape_truncates_inside_cap_and_terminates);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(log_suite());
}
