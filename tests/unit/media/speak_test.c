/* Unit tests for media/speak.c through speak_feed_test(): client bytes (masked frames built
 * here) go through the session's own wslay context and message handler, whole or a few bytes
 * per read; the close code the session sends is the verdict. The socket side is covered end
 * to end by tests/e2e/test_ws_speak.py. */
#include "media/speak.h"

#include <check.h>
#include <string.h>

#include "../harness.h"
#include "http/ws.h"
#include "media/speak_msg.h"

static uint8_t in[1 << 16];
static size_t in_len;

/* Appends a client frame (masked unless `is_unmasked`). */
static void frame(unsigned opcode, bool fin, const uint8_t *p, size_t len, bool is_unmasked)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t *o = in + in_len;
    size_t h = 0;
    o[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    uint8_t m = is_unmasked ? 0 : 0x80;
    if (len < 126) {
        o[h++] = (uint8_t)(m | len);
    } else {
        o[h++] = m | 126;
        o[h++] = (uint8_t)(len >> 8);
        o[h++] = (uint8_t)len;
    }
    if (!is_unmasked) {
        memcpy(o + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        o[h + i] = is_unmasked ? p[i] : p[i] ^ key[i % 4];
    in_len += h + len;
}

static void audio(uint32_t seq, size_t plen)
{
    uint8_t m[WS_AUDIO_HDR + 1400];
    ws_audio_header(m, seq, 0);
    memset(m + WS_AUDIO_HDR, 0, plen);
    m[WS_AUDIO_HDR] = 0xf8;
    frame(WS_OP_BINARY, true, m, WS_AUDIO_HDR + plen, false);
}

static unsigned feed(size_t step, struct speak_rx *rx)
{
    return speak_feed_test(in, in_len, step, rx);
}

static void setup(void)
{
    log_threshold = LOG_ERROR;
    in_len = 0;
}

START_TEST(audio_whole_and_byte_by_byte)
{
    for (uint32_t s = 0; s < 80; s++) /* more than the queue's high mark: reading pauses */
        audio(s, 40);
    audio(85, 40);                           /* 80..84 lost */
    audio(3, 40);                            /* late */
    frame(WS_OP_PING, true, NULL, 0, false); /* answered by wslay */
    size_t steps[] = {1, 3, 7, 65536};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        struct speak_rx rx;
        ck_assert_uint_eq(feed(steps[k], &rx), 0);
        ck_assert_uint_eq(rx.accepted, 81);
        ck_assert_uint_eq(rx.lost, 5);
        ck_assert_uint_eq(rx.dropped, 1);
    }
}
END_TEST

/* A message in two fragments is one message. */
START_TEST(fragmented_message)
{
    uint8_t m[WS_AUDIO_HDR + 3];
    ws_audio_header(m, 9, 0);
    m[WS_AUDIO_HDR] = 0xf8;
    frame(WS_OP_BINARY, false, m, 6, false);
    frame(WS_OP_CONT, true, m + 6, sizeof(m) - 6, false);
    struct speak_rx rx;
    ck_assert_uint_eq(feed(5, &rx), 0);
    ck_assert_uint_eq(rx.accepted, 1);
}
END_TEST

START_TEST(violations_close_with_their_code)
{
    struct {
        const char *what;
        unsigned code;
    } cases[] = {{"text", 1003},     {"too big", 1009},  {"short", 1002},
                 {"unmasked", 1002}, {"not opus", 1003}, {"client close", 1000}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        in_len = 0;
        audio(0, 3);
        switch (k) {
        case 0:
            frame(WS_OP_TEXT, true, (const uint8_t *)"hi", 2, false);
            break;
        case 1:
            audio(1, 1300);
            break;
        case 2:
            frame(WS_OP_BINARY, true, (const uint8_t *)"\x01\0", 2, false);
            break;
        case 3:
            frame(WS_OP_BINARY, true, in, 4, true);
            break;
        case 4: {
            uint8_t m[WS_AUDIO_HDR + 1];
            ws_audio_header(m, 1, 0);
            m[WS_AUDIO_HDR] = 0x03;
            frame(WS_OP_BINARY, true, m, sizeof(m), false);
            break;
        }
        case 5:
            frame(WS_OP_CLOSE, true, (const uint8_t *)"\x03\xe8", 2, false);
            break;
        }
        audio(2, 3); /* ignored: the session is closing */
        struct speak_rx rx;
        unsigned code = feed(4, &rx);
        ck_assert_msg(code == cases[k].code, "%s: close code %u, expected %u", cases[k].what, code,
                      cases[k].code);
        ck_assert_uint_eq(rx.accepted, 1);
    }
}
END_TEST

static Suite *speak_suite(void)
{
    Suite *s = suite_create("speak");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, audio_whole_and_byte_by_byte);
    tcase_add_test(tc, fragmented_message);
    tcase_add_test(tc, violations_close_with_their_code);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(speak_suite());
}
