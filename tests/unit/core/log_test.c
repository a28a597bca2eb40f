/* Unit tests for core/log.c: level names, the threshold, one write per line,
 * log_escape (escaping, truncation, NUL termination, reading only `len`
 * bytes), JSON lines (each parses, escapes quotes, backslashes and control
 * bytes), rate limits (at most N lines, then one summary with the right
 * count) and tallies (one line a second, counts by reason). Each test runs in
 * its own process; rate limits and tallies run on a fake clock. */
#include "core/log.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../harness.h"
#include "core/loop.h"

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

START_TEST(set_format_accepts_text_and_json_only)
{
    ck_assert_int_eq(log_format, LOG_TEXT);
    ck_assert_int_eq(log_set_format("json"), 0);
    ck_assert_int_eq(log_format, LOG_JSON);
    static const char *const bad[] = {"", "JSON", "text ", "jsonl", "plain"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(log_set_format(bad[i]), -EINVAL);
        ck_assert_int_eq(log_format, LOG_JSON);
    }
    ck_assert_int_eq(log_set_format("text"), 0);
    ck_assert_int_eq(log_format, LOG_TEXT);
}
END_TEST

/* Parses `line` (one line, with its newline) as a JSON log line and checks
 * its fields; returns the object (the caller frees it). */
static cJSON *parse_json_line(const char *line, size_t len, const char *level)
{
    ck_assert_uint_gt(len, 0);
    ck_assert_int_eq(line[len - 1], '\n');
    ck_assert_uint_eq(count_char(line, len, '\n'), 1);
    for (size_t i = 0; i + 1 < len; i++)
        ck_assert_msg(line[i] >= 0x20 && line[i] < 0x7f, "byte %zu is 0x%02x", i,
                      (unsigned char)line[i]);
    cJSON *o = cJSON_ParseWithLength(line, len);
    ck_assert_msg(o != NULL, "not JSON: %s", line);
    ck_assert(cJSON_IsObject(o));
    ck_assert_int_eq(cJSON_GetArraySize(o), 4);
    cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
    ck_assert(cJSON_IsString(ts));
    ck_assert_uint_eq(strlen(ts->valuestring), strlen("2026-12-01T22:40:01.123Z"));
    ck_assert_int_eq(ts->valuestring[10], 'T');
    ck_assert_int_eq(ts->valuestring[23], 'Z');
    cJSON *lv = cJSON_GetObjectItemCaseSensitive(o, "level");
    ck_assert(cJSON_IsString(lv));
    ck_assert_str_eq(lv->valuestring, level);
    cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "pid");
    ck_assert(cJSON_IsNumber(pid));
    ck_assert_int_eq(pid->valueint, (int)getpid());
    ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "msg")));
    return o;
}

static const char *json_msg(cJSON *o)
{
    return cJSON_GetObjectItemCaseSensitive(o, "msg")->valuestring;
}

START_TEST(json_line_parses_and_keeps_the_message)
{
    int rd = capture_stderr();
    ck_assert_int_eq(log_set_format("json"), 0);
    char buf[8192];
    /* Quotes, backslashes, every control byte and DEL: the message comes back
     * exactly. */
    char in[64];
    size_t n_in = 0;
    const char *lead = "say \"hi\" \\ C:\\dir\\ {\"x\":1} ";
    memcpy(in, lead, strlen(lead));
    n_in = strlen(lead);
    for (int c = 1; c < 0x20; c++)
        in[n_in++] = (char)c;
    in[n_in++] = 0x7f;
    in[n_in++] = '!';
    in[n_in] = '\0';
    log_warn("%s", in);
    size_t n = drain(rd, buf, sizeof(buf));
    cJSON *o = parse_json_line(buf, n, "warn");
    ck_assert_str_eq(json_msg(o), in);
    cJSON_Delete(o);
    ck_assert_ptr_nonnull(strstr(buf, "\"msg\":\"say \\\"hi\\\" \\\\ C:\\\\dir\\\\ {"));
    ck_assert_ptr_nonnull(strstr(buf, "\\u0001"));
    ck_assert_ptr_nonnull(strstr(buf, "\\n"));

    /* Bytes from 0x80 up stay ASCII on the line, as U+0080..U+00FF. */
    log_error("bin \x80\xff end");
    n = drain(rd, buf, sizeof(buf));
    o = parse_json_line(buf, n, "error");
    ck_assert_str_eq(json_msg(o), "bin \xc2\x80\xc3\xbf end");
    cJSON_Delete(o);

    /* Below the threshold: nothing, as in text. */
    log_debug("hidden");
    ck_assert_uint_eq(drain(rd, buf, sizeof(buf)), 0);
    close(rd);
}
END_TEST

START_TEST(long_json_line_is_cut_and_still_parses)
{
    int rd = capture_stderr();
    ck_assert_int_eq(log_set_format("json"), 0);
    char buf[8192];
    /* Quotes escape to two bytes and control bytes to six: the cut must fall
     * between escapes. */
    static const char *const fill[] = {"\"", "\x01", "z"};
    for (size_t f = 0; f < 3; f++) {
        for (size_t len = 990; len <= 1030; len += 7) {
            char *big = malloc(len + 1);
            ck_assert_ptr_nonnull(big);
            for (size_t i = 0; i < len; i++)
                big[i] = i % 3 == 0 ? fill[f][0] : 'a';
            big[len] = '\0';
            log_info("%s", big);
            size_t n = drain(rd, buf, sizeof(buf));
            ck_assert_uint_le(n, 2048);
            cJSON *o = parse_json_line(buf, n, "info");
            const char *msg = json_msg(o);
            ck_assert_uint_gt(strlen(msg), 300);
            ck_assert(strncmp(msg, big, strlen(msg)) == 0);
            cJSON_Delete(o);
            free(big);
        }
    }
    close(rd);
}
END_TEST

static uint64_t fake_now = 50000;
static uint64_t fake_clock(void)
{
    return fake_now;
}

/* Counts lines in buf that contain `s`. */
static size_t count_lines_with(const char *buf, const char *s)
{
    size_t n = 0;
    for (const char *p = buf; (p = strstr(p, s)); p += strlen(s))
        n++;
    return n;
}

START_TEST(limit_writes_at_most_max_then_one_summary)
{
    int rd = capture_stderr();
    log_set_clock(fake_clock);
    char buf[16384];
    static struct log_limit l;
    for (int i = 0; i < 10; i++)
        log_limit_msg(&l, 3, LOG_WARN, "boom %d", i);
    size_t n = drain(rd, buf, sizeof(buf));
    ck_assert_uint_eq(count_char(buf, n, '\n'), 3);
    ck_assert_ptr_nonnull(strstr(buf, "boom 0\n"));
    ck_assert_ptr_nonnull(strstr(buf, "boom 2\n"));
    ck_assert_ptr_null(strstr(buf, "boom 3"));

    /* Not before the second has ended. */
    log_flush();
    fake_now += 999;
    log_limit_msg(&l, 3, LOG_WARN, "boom %d", 10);
    log_flush();
    ck_assert_uint_eq(drain(rd, buf, sizeof(buf)), 0);

    /* Then one line: the first line held back, and how many were. */
    fake_now += 1;
    log_flush();
    n = drain(rd, buf, sizeof(buf));
    ck_assert_uint_eq(count_char(buf, n, '\n'), 1);
    ck_assert_ptr_nonnull(strstr(buf, "warn"));
    ck_assert_ptr_nonnull(strstr(buf, "boom 3 (8 more like this in the last second)\n"));
    log_flush();
    ck_assert_uint_eq(drain(rd, buf, sizeof(buf)), 0);

    /* A new second: lines again, at most 3. */
    for (int i = 0; i < 5; i++)
        log_limit_msg(&l, 3, LOG_WARN, "again %d", i);
    n = drain(rd, buf, sizeof(buf));
    ck_assert_uint_eq(count_char(buf, n, '\n'), 3);

    /* The next event after the second ended writes the summary first if the
     * loop did not. */
    fake_now += 1500;
    log_limit_msg(&l, 3, LOG_WARN, "late %d", 1);
    n = drain(rd, buf, sizeof(buf));
    ck_assert_uint_eq(count_char(buf, n, '\n'), 2);
    char *sum = strstr(buf, "again 3 (2 more like this in the last second)\n");
    char *late = strstr(buf, "late 1\n");
    ck_assert(sum && late && sum < late);

    /* Below the threshold nothing is written or counted. */
    fake_now += 1000;
    ck_assert_int_eq(log_set_level("error"), 0);
    for (int i = 0; i < 10; i++)
        log_limit_msg(&l, 1, LOG_WARN, "quiet %d", i);
    fake_now += 1000;
    log_flush();
    ck_assert_uint_eq(drain(rd, buf, sizeof(buf)), 0);
    close(rd);
}
END_TEST

START_TEST(limited_macro_limits_each_site)
{
    int rd = capture_stderr();
    log_set_clock(fake_clock);
    char buf[16384];
    for (int i = 0; i < 20; i++) {
        log_limited(LOG_WARN, 2, "site a %d", i);
        log_limited(LOG_ERROR, 5, "site b %d", i);
    }
    size_t n = drain(rd, buf, sizeof(buf));
    ck_assert_uint_eq(count_char(buf, n, '\n'), 7);
    ck_assert_uint_eq(count_lines_with(buf, "site a"), 2);
    ck_assert_uint_eq(count_lines_with(buf, "site b"), 5);
    fake_now += 1000;
    log_flush();
    n = drain(rd, buf, sizeof(buf));
    ck_assert_uint_eq(count_char(buf, n, '\n'), 2);
    ck_assert_ptr_nonnull(strstr(buf, "site a 2 (18 more like this in the last second)\n"));
    ck_assert_ptr_nonnull(strstr(buf, "site b 5 (15 more like this in the last second)\n"));
    close(rd);
}
END_TEST

START_TEST(limit_summary_in_json)
{
    int rd = capture_stderr();
    log_set_clock(fake_clock);
    ck_assert_int_eq(log_set_format("json"), 0);
    char buf[16384];
    static struct log_limit l;
    for (int i = 0; i < 4; i++)
        log_limit_msg(&l, 1, LOG_ERROR, "bad \"%d\"", i);
    ck_assert_uint_eq(count_char(buf, drain(rd, buf, sizeof(buf)), '\n'), 1);
    fake_now += 1000;
    log_flush();
    size_t n = drain(rd, buf, sizeof(buf));
    cJSON *o = parse_json_line(buf, n, "error");
    ck_assert_str_eq(json_msg(o), "bad \"1\" (3 more like this in the last second)");
    cJSON_Delete(o);
    close(rd);
}
END_TEST

START_TEST(tally_writes_one_line_a_second_by_reason)
{
    int rd = capture_stderr();
    log_set_clock(fake_clock);
    char buf[16384];
    static struct log_tally t = LOG_TALLY_INIT("refused", LOG_INFO);
    for (int i = 0; i < 120; i++)
        log_tally_add(&t, "503 server full");
    for (int i = 0; i < 3; i++)
        log_tally_add(&t, "401 bad key");
    log_tally_add(&t, "503 server busy");
    ck_assert_uint_eq(drain(rd, buf, sizeof(buf)), 0);
    fake_now += 999;
    log_flush();
    ck_assert_uint_eq(drain(rd, buf, sizeof(buf)), 0);
    fake_now += 1;
    log_flush();
    size_t n = drain(rd, buf, sizeof(buf));
    ck_assert_uint_eq(count_char(buf, n, '\n'), 1);
    ck_assert_ptr_nonnull(strstr(buf, " info  ["));
    ck_assert_ptr_nonnull(strstr(buf, "] refused in the last second: 124 (503 server full: 120, "
                                      "401 bad key: 3, 503 server busy: 1)\n"));
    log_flush();
    fake_now += 5000;
    log_flush();
    ck_assert_uint_eq(drain(rd, buf, sizeof(buf)), 0);

    /* More reasons than rows: the rest count as "other". A new second is
     * summed up by the next event if the loop did not. */
    char reason[32];
    for (int i = 0; i < LOG_TALLY_REASONS + 3; i++) {
        snprintf(reason, sizeof(reason), "reason %d", i);
        log_tally_add(&t, reason);
        log_tally_add(&t, reason);
    }
    fake_now += 2000;
    log_tally_add(&t, "next");
    n = drain(rd, buf, sizeof(buf));
    ck_assert_uint_eq(count_char(buf, n, '\n'), 1);
    ck_assert_ptr_nonnull(strstr(buf, "refused in the last second: 22 (reason 0: 2, "));
    ck_assert_ptr_nonnull(strstr(buf, ", reason 7: 2, other: 6)\n"));
    ck_assert_ptr_null(strstr(buf, "reason 8"));
    /* log_flush_all does not wait for the second to end. */
    log_flush_all();
    n = drain(rd, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "refused in the last second: 1 (next: 1)\n"));

    /* The process-wide refusal tally. */
    log_refused("503 server full");
    log_refused("503 server full");
    fake_now += 1000;
    log_flush();
    n = drain(rd, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "refused in the last second: 2 (503 server full: 2)\n"));

    /* Below the threshold nothing is counted. */
    ck_assert_int_eq(log_set_level("warn"), 0);
    log_refused("503 server full");
    fake_now += 1000;
    log_flush_all();
    ck_assert_uint_eq(drain(rd, buf, sizeof(buf)), 0);
    close(rd);
}
END_TEST

static struct loop *test_loop;
static void stop_loop(struct timer *t)
{
    (void)t;
    loop_stop(test_loop);
}

START_TEST(loop_writes_summaries_when_the_second_ends)
{
    int rd = capture_stderr();
    log_set_clock(fake_clock);
    char buf[4096];
    for (int i = 0; i < 3; i++)
        log_refused("503 server full");
    fake_now += 1000;
    /* One turn of a real loop: a timer due now stops it. */
    struct loop *loop = test_loop = loop_new();
    ck_assert_ptr_nonnull(loop);
    struct timer t;
    timer_init(&t, stop_loop);
    timer_start(loop, &t, loop_now_ms(loop));
    ck_assert_int_eq(loop_run(loop), 0);
    loop_free(loop);
    size_t n = drain(rd, buf, sizeof(buf));
    ck_assert_uint_eq(count_char(buf, n, '\n'), 1);
    ck_assert_ptr_nonnull(strstr(buf, "refused in the last second: 3 (503 server full: 3)\n"));
    close(rd);
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
    tcase_add_test(tc, set_format_accepts_text_and_json_only);
    tcase_add_test(tc, json_line_parses_and_keeps_the_message);
    tcase_add_test(tc, long_json_line_is_cut_and_still_parses);
    tcase_add_test(tc, limit_writes_at_most_max_then_one_summary);
    tcase_add_test(tc, limited_macro_limits_each_site);
    tcase_add_test(tc, limit_summary_in_json);
    tcase_add_test(tc, tally_writes_one_line_a_second_by_reason);
    tcase_add_test(tc, loop_writes_summaries_when_the_second_ends);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(log_suite());
}
