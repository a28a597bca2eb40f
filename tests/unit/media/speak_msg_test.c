/* Unit tests for media/speak_msg.c: every verdict of a browser speaker's message, with real
 * Opus TOC bytes (0xf8: CELT fullband 20 ms mono, code 0; 0xfc: the same, stereo). */
#include "media/speak_msg.h"

#include <check.h>
#include <string.h>

#include "../harness.h"
#include "http/ws.h"

static uint8_t msg[2048];

/* An audio message of sequence `seq` carrying `plen` bytes that start with TOC `toc`. */
static size_t audio(uint32_t seq, uint8_t toc, size_t plen)
{
    ws_audio_header(msg, seq, (uint64_t)seq * 960);
    memset(msg + WS_AUDIO_HDR, 0x55, plen);
    if (plen) msg[WS_AUDIO_HDR] = toc;
    return WS_AUDIO_HDR + plen;
}

static int check_msg(struct speak_rx *rx, size_t len, struct speak_packet *p, const char **why)
{
    *p = (struct speak_packet){0};
    *why = NULL;
    return speak_rx_check(rx, false, msg, len, p, why);
}

START_TEST(in_order_packets)
{
    struct speak_rx rx;
    speak_rx_init(&rx);
    struct speak_packet p;
    const char *why;
    for (uint32_t s = 100; s < 110; s++) {
        ck_assert_int_eq(check_msg(&rx, audio(s, 0xf8, 3), &p, &why), SPEAK_ACCEPT);
        ck_assert_uint_eq(p.len, 3);
        ck_assert_ptr_eq(p.data, msg + WS_AUDIO_HDR);
        ck_assert_int_eq(p.samples, 960);
        ck_assert_int_eq(p.channels, 1);
        ck_assert_uint_eq(p.lost, 0);
    }
    ck_assert_uint_eq(rx.accepted, 10);
    ck_assert_uint_eq(rx.lost + rx.dropped, 0);
    ck_assert_int_eq(check_msg(&rx, audio(110, 0xfc, 1275), &p, &why), SPEAK_ACCEPT);
    ck_assert_int_eq(p.channels, 2);
}
END_TEST

/* A gap is loss, concealed up to SPEAK_MAX_CONCEAL packets; late and repeated packets are
 * dropped; the sequence wraps. */
START_TEST(gaps_duplicates_and_wrap)
{
    struct speak_rx rx;
    speak_rx_init(&rx);
    struct speak_packet p;
    const char *why;
    ck_assert_int_eq(check_msg(&rx, audio(1, 0xf8, 3), &p, &why), SPEAK_ACCEPT);
    ck_assert_int_eq(check_msg(&rx, audio(4, 0xf8, 3), &p, &why), SPEAK_ACCEPT);
    ck_assert_uint_eq(p.lost, 2);
    ck_assert_int_eq(check_msg(&rx, audio(4, 0xf8, 3), &p, &why), SPEAK_DROP);
    ck_assert_int_eq(check_msg(&rx, audio(2, 0xf8, 3), &p, &why), SPEAK_DROP);
    ck_assert_int_eq(check_msg(&rx, audio(105, 0xf8, 3), &p, &why), SPEAK_ACCEPT);
    ck_assert_uint_eq(p.lost, SPEAK_MAX_CONCEAL);
    ck_assert_uint_eq(rx.lost, 2 + 100);
    ck_assert_uint_eq(rx.dropped, 2);
    speak_rx_init(&rx);
    ck_assert_int_eq(check_msg(&rx, audio(UINT32_MAX, 0xf8, 3), &p, &why), SPEAK_ACCEPT);
    ck_assert_int_eq(check_msg(&rx, audio(0, 0xf8, 3), &p, &why), SPEAK_ACCEPT);
    ck_assert_uint_eq(p.lost, 0);
    ck_assert_int_eq(check_msg(&rx, audio(UINT32_MAX, 0xf8, 3), &p, &why), SPEAK_DROP);
}
END_TEST

START_TEST(violations_and_their_codes)
{
    struct speak_rx rx;
    speak_rx_init(&rx);
    struct speak_packet p;
    const char *why = NULL;
    ck_assert_int_eq(speak_rx_check(&rx, true, (const uint8_t *)"{}", 2, &p, &why), 1003);
    ck_assert_ptr_nonnull(why);
    ck_assert_int_eq(check_msg(&rx, 0, &p, &why), 1002);                     /* empty */
    ck_assert_int_eq(check_msg(&rx, audio(1, 0xf8, 3) - 4, &p, &why), 1002); /* short header */
    ck_assert_int_eq(check_msg(&rx, audio(1, 0xf8, 0), &p, &why), 1002);     /* no packet */
    ck_assert_int_eq(check_msg(&rx, audio(1, 0xf8, 1276), &p, &why), 1009);
    ck_assert_int_eq(check_msg(&rx, audio(1, 0x03, 1), &p, &why), 1003); /* code 3, no count */
    /* code 3 with 49 frames of 20 ms: 980 ms, beyond Opus' 120 ms */
    size_t n = audio(1, 0xfb, 3);
    msg[WS_AUDIO_HDR + 1] = 49;
    ck_assert_int_eq(check_msg(&rx, n, &p, &why), 1003);
    n = audio(1, 0xf8, 3);
    msg[0] = 7;
    ck_assert_int_eq(check_msg(&rx, n, &p, &why), 1003);
    ck_assert(strlen(why) <= 123);
    ck_assert_uint_eq(rx.accepted + rx.dropped + rx.lost, 0);
}
END_TEST

static Suite *speak_msg_suite(void)
{
    Suite *s = suite_create("speak_msg");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, in_order_packets);
    tcase_add_test(tc, gaps_duplicates_and_wrap);
    tcase_add_test(tc, violations_and_their_codes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(speak_msg_suite());
}
