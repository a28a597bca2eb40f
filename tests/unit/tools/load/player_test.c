/* Unit tests for the WebSocket player of tools/load/player.c (ws_player_ops): the bytes a Tribune
 * node sends on GET /spaces/{id}/ws (a 101 head, a text hello, binary audio messages of
 * src/http/ws.h's format) are fed to the client in every split (whole, byte by byte, cut inside
 * frame headers and audio headers), and the meter must credit exactly the audio sent; a masked
 * frame, a refusal and a close are told apart. The frames come from src/http/ws.c, the server's
 * own writer. */
#include <check.h>
#include <string.h>

#include "../../harness.h"
#include "http/ws.h"
#include "load/client.h"

enum { PKT = 40, MSGS = 150 };

static uint8_t stream[64 * 1024];
static size_t stream_len;

static void put(const void *b, size_t n)
{
    ck_assert_uint_le(stream_len + n, sizeof(stream));
    memcpy(stream + stream_len, b, n);
    stream_len += n;
}

/* The 101 head, the hello and MSGS audio messages of 20 ms from sequence `seq0`. */
static void build(uint32_t seq0, size_t pkt)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n";
    static const char hello[] = "{\"codec\":\"opus\",\"sample_rate\":48000}";
    uint8_t h[10], ah[WS_AUDIO_HDR], body[400];
    stream_len = 0;
    put(head, sizeof(head) - 1);
    put(h, ws_frame_header(h, WS_OP_TEXT, sizeof(hello) - 1));
    put(hello, sizeof(hello) - 1);
    memset(body, 0x55, sizeof(body));
    for (uint32_t i = 0; i < MSGS; i++) {
        put(h, ws_frame_header(h, WS_OP_BINARY, WS_AUDIO_HDR + pkt));
        ws_audio_header(ah, seq0 + i, 312 + (uint64_t)(i + 1) * 960);
        put(ah, sizeof(ah));
        put(body, pkt);
    }
}

static struct load_conn conn;

static void open_conn(void)
{
    static struct load_opts o = {
        .warmup_ms = 200, .max_gap_ms = 1000, .min_pct = 90, .trace_listener = -1};
    player_configure(&o, 0);
    memset(&conn, 0, sizeof(conn));
    conn.state = CONN_READING;
    ws_player_ops.on_open(&conn);
}

/* Feeds the stream in pieces of `step` bytes, 20 ms of wall time per audio message: the clock
 * advances with the bytes. Returns the close reason of the last call. */
static int feed(size_t step)
{
    int64_t now = 1000000;
    size_t per_msg = (stream_len) / MSGS;
    int r = CLOSE_NONE;
    for (size_t off = 0; off < stream_len && r == CLOSE_NONE; off += step) {
        size_t n = stream_len - off < step ? stream_len - off : step;
        uint8_t piece[4096];
        memcpy(piece, stream + off, n);
        now = 1000000 + (int64_t)(off / per_msg) * 20000;
        r = ws_player_ops.on_data(&conn, piece, n, now);
        ws_player_ops.on_tick(&conn, now);
    }
    return r;
}

static struct load_counts counts(void)
{
    struct load_counts k;
    memset(&k, 0, sizeof(k));
    k.worst_pm = 0xffffffff;
    ws_player_ops.tally(&conn, &k, 1000000 + MSGS * 20000);
    return k;
}

START_TEST(every_split_credits_all_audio)
{
    static const size_t steps[] = {1, 2, 3, 7, 13, 14, 53, 512};
    build(1000, PKT);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        open_conn();
        ck_assert_int_eq(feed(steps[i]), CLOSE_NONE);
        ck_assert_uint_eq(conn.status, 101);
        struct load_counts k = counts();
        ck_assert_msg(k.pages == MSGS, "step %zu: %llu messages", steps[i],
                      (unsigned long long)k.pages);
        ck_assert_uint_eq(k.got_audio, 1);
        ck_assert_uint_eq(k.skips, 0);
        /* the first message opens the stream; each later one is credited 960 samples */
        ck_assert_uint_eq(k.audio_samples, (uint64_t)(MSGS - 1) * 960);
        ck_assert_msg(k.hearing == 1,
                      "step %zu: hearing %u waiting %u warming %u stalled %u judged %u worst %u",
                      steps[i], k.hearing, k.waiting, k.warming, k.stalled, k.judged, k.worst_pm);
        ck_assert_int_ge(ws_player_ops.join_us(&conn), 0);
    }
}
END_TEST

START_TEST(long_messages_use_16_bit_lengths)
{
    build(7, 300); /* 313-byte payloads: the 126 length form */
    open_conn();
    ck_assert_int_eq(feed(5), CLOSE_NONE);
    struct load_counts k = counts();
    ck_assert_uint_eq(k.pages, MSGS);
    ck_assert_uint_eq(k.skips, 0);
}
END_TEST

START_TEST(a_sequence_gap_is_a_skip)
{
    build(1, PKT);
    /* rewrite message 50's sequence number (and timestamp) as if 10 messages were lost */
    size_t head_end = (size_t)(strstr((char *)stream, "\r\n\r\n") - (char *)stream) + 4;
    size_t hello = 2 + 36, msg = 2 + WS_AUDIO_HDR + PKT;
    for (uint32_t i = 50; i < MSGS; i++) {
        uint8_t *ah = stream + head_end + hello + i * msg + 2;
        ws_audio_header(ah, 1 + i + 10, 312 + (uint64_t)(i + 11) * 960);
    }
    open_conn();
    ck_assert_int_eq(feed(64), CLOSE_NONE);
    struct load_counts k = counts();
    ck_assert_uint_eq(k.pages, MSGS);
    ck_assert_uint_eq(k.skips, 1);
    ck_assert_uint_eq(k.ever_skipped, 1);
}
END_TEST

START_TEST(close_refusal_and_masked_frames)
{
    uint8_t buf[256];
    /* a 503 before the upgrade is a refusal, with its Retry-After */
    static const char refused[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                                  "Content-Length: 0\r\n\r\n";
    open_conn();
    memcpy(buf, refused, sizeof(refused) - 1);
    ck_assert_int_eq(ws_player_ops.on_data(&conn, buf, sizeof(refused) - 1, 1), CLOSE_REFUSED);
    ck_assert_int_eq(ws_player_ops.retry_after_s(&conn), 7);
    /* a 200 is not an upgrade */
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    open_conn();
    memcpy(buf, ok, sizeof(ok) - 1);
    ck_assert_int_eq(ws_player_ops.on_data(&conn, buf, sizeof(ok) - 1, 1), CLOSE_REFUSED);
    /* a close frame ends it */
    build(1, PKT);
    open_conn();
    size_t head_end = (size_t)(strstr((char *)stream, "\r\n\r\n") - (char *)stream) + 4;
    size_t n = ws_close_frame(stream + head_end, WS_CLOSE_GOING_AWAY, "bye");
    memcpy(buf, stream, head_end + n);
    ck_assert_int_eq(ws_player_ops.on_data(&conn, buf, head_end + n, 1), CLOSE_EOF);
    /* a masked frame from a server is a protocol error */
    open_conn();
    memcpy(buf, stream, head_end);
    buf[head_end] = 0x82;
    buf[head_end + 1] = 0x80 | 5;
    ck_assert_int_eq(ws_player_ops.on_data(&conn, buf, head_end + 2, 1), CLOSE_PROTO);
}
END_TEST

static Suite *player_suite(void)
{
    Suite *s = suite_create("player");
    TCase *tc = tcase_create("ws");
    tcase_add_test(tc, every_split_credits_all_audio);
    tcase_add_test(tc, long_messages_use_16_bit_lengths);
    tcase_add_test(tc, a_sequence_gap_is_a_skip);
    tcase_add_test(tc, close_refusal_and_masked_frames);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(player_suite());
}
