/* Unit tests for http/ws.c: the accept key (RFC 6455's example), the
 * handshake check on a hand-built conn, server frame headers at the length
 * boundaries, the close frame, the audio header round trip, the hello, and
 * the client-frame reader (masked frames built here, fed whole and byte by
 * byte): ping, close, ignored data, and each violation's close code. */
#include "http/ws.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "../harness.h"
#include "http/conn.h"
#include "http/route.h"

/* ---- a conn with the given headers (only what conn_header reads) ---- */

static char hbuf[2048];

static void fake_conn(struct conn *c, unsigned method, const char *const (*h)[2], unsigned n)
{
    memset(c, 0, sizeof(*c));
    c->buf = hbuf;
    c->method = method;
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t nl = strlen(h[i][0]), vl = strlen(h[i][1]);
        ck_assert_uint_lt(off + nl + vl, sizeof(hbuf));
        memcpy(hbuf + off, h[i][0], nl);
        c->header_names[i] = (struct span){(uint32_t)off, (uint32_t)nl};
        off += nl;
        memcpy(hbuf + off, h[i][1], vl);
        c->header_values[i] = (struct span){(uint32_t)off, (uint32_t)vl};
        off += vl;
    }
    c->nheaders = n;
}

START_TEST(accept_key_rfc_example)
{
    char out[29];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    ws_accept_key(key, strlen(key), out);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

static const struct {
    unsigned method;
    const char *upgrade, *connection, *version, *key;
    int status;
} hs[] = {
    {ROUTE_GET, "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", 0},
    {ROUTE_GET, "WebSocket", "keep-alive, Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", 0},
    {ROUTE_HEAD, "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", 400},
    {ROUTE_GET, NULL, "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", 426},
    {ROUTE_GET, "h2c", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", 426},
    {ROUTE_GET, "websocket", NULL, "13", "dGhlIHNhbXBsZSBub25jZQ==", 400},
    {ROUTE_GET, "websocket", "close", "13", "dGhlIHNhbXBsZSBub25jZQ==", 400},
    {ROUTE_GET, "websocket", "Upgrade", "8", "dGhlIHNhbXBsZSBub25jZQ==", 426},
    {ROUTE_GET, "websocket", "Upgrade", NULL, "dGhlIHNhbXBsZSBub25jZQ==", 426},
    {ROUTE_GET, "websocket", "Upgrade", "13", NULL, 400},
    {ROUTE_GET, "websocket", "Upgrade", "13", "short", 400},
    {ROUTE_GET, "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ!!", 400},
    {ROUTE_GET, "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQAA", 400}, /* 18 bytes */
};

START_TEST(handshake_cases)
{
    const char *h[4][2];
    unsigned n = 0;
    if (hs[_i].upgrade) h[n][0] = "Upgrade", h[n++][1] = hs[_i].upgrade;
    if (hs[_i].connection) h[n][0] = "Connection", h[n++][1] = hs[_i].connection;
    if (hs[_i].version) h[n][0] = "Sec-WebSocket-Version", h[n++][1] = hs[_i].version;
    if (hs[_i].key) h[n][0] = "Sec-WebSocket-Key", h[n++][1] = hs[_i].key;
    struct conn c;
    fake_conn(&c, hs[_i].method, (const char *const(*)[2])h, n);
    char accept[29] = "";
    const char *why = NULL;
    int st = ws_check_handshake(&c, accept, &why);
    ck_assert_int_eq(st, hs[_i].status);
    if (st == 0) {
        ck_assert_str_eq(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    } else {
        ck_assert_ptr_nonnull(why);
        ck_assert_uint_gt(strlen(why), 10);
    }
}
END_TEST

START_TEST(response_head)
{
    char out[256];
    size_t n = ws_response_head(out, sizeof(out), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ck_assert_uint_eq(n, strlen(out));
    ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 101 Switching Protocols\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    ck_assert_str_eq(out + n - 4, "\r\n\r\n");
    ck_assert_uint_gt(ws_response_head(out, 10, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), 10);
}
END_TEST

START_TEST(frame_header_lengths)
{
    uint8_t h[10];
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_BINARY, 0), 2);
    ck_assert_uint_eq(h[0], 0x82);
    ck_assert_uint_eq(h[1], 0);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_BINARY, 125), 2);
    ck_assert_uint_eq(h[1], 125);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 126), 4);
    ck_assert_uint_eq(h[0], 0x81);
    ck_assert_uint_eq(h[1], 126);
    ck_assert_uint_eq(h[2] << 8 | h[3], 126);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_BINARY, 65535), 4);
    ck_assert_uint_eq(h[1], 126);
    ck_assert_uint_eq(h[2] << 8 | h[3], 65535);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_BINARY, 65536), 10);
    ck_assert_uint_eq(h[1], 127);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | h[2 + i];
    ck_assert_uint_eq(v, 65536);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_BINARY, 1ull << 40), 10);
    ck_assert_uint_eq(h[2 + 2], 1); /* byte 2 of 8 = 2^40 */
}
END_TEST

START_TEST(close_frame)
{
    uint8_t out[140];
    size_t n = ws_close_frame(out, WS_CLOSE_PROTOCOL, "bad");
    ck_assert_uint_eq(n, 2 + 2 + 3);
    ck_assert_uint_eq(out[0], 0x88);
    ck_assert_uint_eq(out[1], 5);
    ck_assert_uint_eq(out[2] << 8 | out[3], 1002);
    ck_assert_int_eq(memcmp(out + 4, "bad", 3), 0);
    char longr[300];
    memset(longr, 'x', sizeof(longr) - 1);
    longr[sizeof(longr) - 1] = '\0';
    n = ws_close_frame(out, WS_CLOSE_NORMAL, longr);
    ck_assert_uint_eq(n, 2 + 125); /* a control frame's payload stays <= 125 */
    ck_assert_uint_eq(out[1], 125);
    ck_assert_uint_eq(ws_close_frame(out, WS_CLOSE_NORMAL, NULL), 4);
}
END_TEST

START_TEST(audio_header_round_trip)
{
    static const struct {
        uint32_t seq;
        uint64_t ts;
    } v[] = {{0, 0}, {1, 312 + 960}, {0xffffffffu, 0x0123456789abcdefull}, {77, 1ull << 63}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t m[WS_AUDIO_HDR + 3];
        ws_audio_header(m, v[i].seq, v[i].ts);
        ck_assert_uint_eq(m[0], WS_MSG_AUDIO);
        uint32_t s = 1;
        uint64_t t = 1;
        ck_assert_int_eq(ws_audio_parse(m, sizeof(m), &s, &t), WS_AUDIO_HDR);
        ck_assert_uint_eq(s, v[i].seq);
        ck_assert_uint_eq(t, v[i].ts);
        ck_assert_int_eq(ws_audio_parse(m, WS_AUDIO_HDR - 1, &s, &t), -1);
        m[0] = 2;
        ck_assert_int_eq(ws_audio_parse(m, sizeof(m), &s, &t), -1);
    }
    uint8_t m[WS_AUDIO_HDR];
    ws_audio_header(m, 0x01020304u, 0x05060708090a0b0cull);
    static const uint8_t want[WS_AUDIO_HDR] = {1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    ck_assert_int_eq(memcmp(m, want, sizeof(want)), 0); /* big-endian on the wire */
}
END_TEST

START_TEST(hello)
{
    uint8_t out[256];
    size_t n = ws_hello_frame(out, sizeof(out), "abc", 1);
    ck_assert_uint_gt(n, 2);
    ck_assert_uint_eq(out[0], 0x81);
    ck_assert_uint_eq(out[1], n - 2);
    const char *want = "{\"codec\":\"opus\",\"sample_rate\":48000,\"channels\":1,\"frame_ms\":20,"
                       "\"space\":\"abc\"}";
    ck_assert_uint_eq(n - 2, strlen(want));
    ck_assert_int_eq(memcmp(out + 2, want, n - 2), 0);
    ck_assert_uint_eq(ws_hello_frame(out, 20, "abc", 1), 0);
}
END_TEST

/* ---- the reader ---- */

/* A client frame into out: returns its length. */
static size_t cframe(uint8_t *out, int fin, int rsv, unsigned op, const void *p, size_t len,
                     int masked)
{
    size_t h = ws_frame_header(out, op, len);
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 7) << 4 | (op & 0xf));
    if (masked) out[1] |= 0x80;
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (masked) {
        memcpy(out + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[h + i] = ((const uint8_t *)p)[i] ^ (masked ? key[i & 3] : 0);
    return h + len;
}

/* Feeds `in` whole or byte by byte; collects events into ev[] (at most 8). */
static int feed_all(struct ws_reader *r, const uint8_t *in, size_t len, int bytewise,
                    enum ws_event ev[8])
{
    int n = 0;
    size_t off = 0;
    for (int guard = 0; guard < 100000; guard++) {
        size_t step = bytewise ? (off < len ? 1 : 0) : len - off;
        size_t used = 0;
        enum ws_event e = ws_reader_feed(r, in + off, step, &used);
        off += used;
        if (e != WS_EV_NONE && n < 8) ev[n++] = e;
        if (e == WS_EV_NONE && off >= len) break;
    }
    return n;
}

START_TEST(reader_ping_close_data)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct ws_reader r;
        ck_assert_int_eq(ws_reader_init(&r), 0);
        uint8_t in[512];
        size_t n = 0;
        n += cframe(in + n, 1, 0, WS_OP_TEXT, "hello", 5, 1);
        n += cframe(in + n, 0, 0, WS_OP_BINARY, "ab", 2, 1);
        n += cframe(in + n, 1, 0, WS_OP_PONG, "", 0, 1);
        n += cframe(in + n, 1, 0, WS_OP_CONT, "cd", 2, 1);
        n += cframe(in + n, 1, 0, WS_OP_PING, "pi", 2, 1);
        uint8_t cl[2] = {0x03, 0xe8}; /* 1000 */
        n += cframe(in + n, 1, 0, WS_OP_CLOSE, cl, 2, 1);
        n += cframe(in + n, 1, 0, WS_OP_PING, "late", 4, 1); /* after close: ignored */
        enum ws_event ev[8];
        int k = feed_all(&r, in, n, bytewise, ev);
        ck_assert_int_eq(k, 2);
        ck_assert_int_eq(ev[0], WS_EV_PING);
        ck_assert_int_eq(ev[1], WS_EV_CLOSE);
        ck_assert_uint_eq(r.code, 1000);
        ck_assert(r.is_done);
        ws_reader_fini(&r);
    }
}
END_TEST

START_TEST(reader_ping_payload)
{
    struct ws_reader r;
    ck_assert_int_eq(ws_reader_init(&r), 0);
    uint8_t in[200], p[125];
    for (int i = 0; i < 125; i++)
        p[i] = (uint8_t)i;
    size_t n = cframe(in, 1, 0, WS_OP_PING, p, 125, 1);
    size_t used = 0;
    ck_assert_int_eq(ws_reader_feed(&r, in, n, &used), WS_EV_PING);
    ck_assert_uint_eq(r.ctl_len, 125);
    ck_assert_int_eq(memcmp(r.ctl, p, 125), 0);
    ck_assert_int_eq(ws_reader_feed(&r, in + used, n - used, &used), WS_EV_NONE);
    ws_reader_fini(&r);
}
END_TEST

static const struct {
    const char *what;
    int fin, rsv;
    unsigned op;
    size_t len;
    int masked;
    uint16_t code;
} bad[] = {
    {"unmasked", 1, 0, WS_OP_TEXT, 3, 0, WS_CLOSE_PROTOCOL},
    {"rsv1", 1, 4, WS_OP_BINARY, 3, 1, WS_CLOSE_PROTOCOL},
    {"rsv3", 1, 1, WS_OP_TEXT, 3, 1, WS_CLOSE_PROTOCOL},
    {"opcode 3", 1, 0, 0x3, 3, 1, WS_CLOSE_PROTOCOL},
    {"opcode 0xB", 1, 0, 0xB, 3, 1, WS_CLOSE_PROTOCOL},
    {"ping 126", 1, 0, WS_OP_PING, 126, 1, WS_CLOSE_PROTOCOL},
    {"fragmented ping", 0, 0, WS_OP_PING, 3, 1, WS_CLOSE_PROTOCOL},
    {"continuation first", 1, 0, WS_OP_CONT, 3, 1, WS_CLOSE_PROTOCOL},
    {"too big", 1, 0, WS_OP_BINARY, WS_LISTEN_MAX_MESSAGE + 1, 1, WS_CLOSE_TOO_BIG},
    {"close 1 byte", 1, 0, WS_OP_CLOSE, 1, 1, WS_CLOSE_PROTOCOL},
};

START_TEST(reader_violations)
{
    static uint8_t in[WS_LISTEN_MAX_MESSAGE + 64], p[WS_LISTEN_MAX_MESSAGE + 1];
    memset(p, 'x', sizeof(p));
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct ws_reader r;
        ck_assert_int_eq(ws_reader_init(&r), 0);
        size_t n = cframe(in, bad[_i].fin, bad[_i].rsv, bad[_i].op, p, bad[_i].len, bad[_i].masked);
        enum ws_event ev[8];
        int k = feed_all(&r, in, n, bytewise, ev);
        ck_assert_msg(k == 1 && ev[0] == WS_EV_VIOLATION, "%s: %d events", bad[_i].what, k);
        ck_assert_uint_eq(r.code, bad[_i].code);
        ck_assert_ptr_nonnull(r.reason);
        ws_reader_fini(&r);
    }
}
END_TEST

START_TEST(reader_fragmented_too_big)
{
    /* fragments under the limit each, over it together */
    static uint8_t in[3 * 2100], p[2000];
    memset(p, 'y', sizeof(p));
    size_t n = cframe(in, 0, 0, WS_OP_TEXT, p, 2000, 1);
    n += cframe(in + n, 0, 0, WS_OP_CONT, p, 2000, 1);
    n += cframe(in + n, 1, 0, WS_OP_CONT, p, 2000, 1);
    struct ws_reader r;
    ck_assert_int_eq(ws_reader_init(&r), 0);
    enum ws_event ev[8];
    ck_assert_int_eq(feed_all(&r, in, n, 0, ev), 1);
    ck_assert_int_eq(ev[0], WS_EV_VIOLATION);
    ck_assert_uint_eq(r.code, WS_CLOSE_TOO_BIG);
    ws_reader_fini(&r);
}
END_TEST

START_TEST(reader_garbage)
{
    struct ws_reader r;
    ck_assert_int_eq(ws_reader_init(&r), 0);
    const char *g = "GET / HTTP/1.1\r\n\r\n";
    enum ws_event ev[8];
    ck_assert_int_eq(feed_all(&r, (const uint8_t *)g, strlen(g), 0, ev), 1);
    ck_assert_int_eq(ev[0], WS_EV_VIOLATION);
    ck_assert_uint_eq(r.code, WS_CLOSE_PROTOCOL);
    ws_reader_fini(&r);
}
END_TEST

static Suite *ws_suite(void)
{
    Suite *s = suite_create("ws");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, accept_key_rfc_example);
    tcase_add_loop_test(tc, handshake_cases, 0, (int)(sizeof(hs) / sizeof(hs[0])));
    tcase_add_test(tc, response_head);
    tcase_add_test(tc, frame_header_lengths);
    tcase_add_test(tc, close_frame);
    tcase_add_test(tc, audio_header_round_trip);
    tcase_add_test(tc, hello);
    tcase_add_test(tc, reader_ping_close_data);
    tcase_add_test(tc, reader_ping_payload);
    tcase_add_loop_test(tc, reader_violations, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, reader_fragmented_too_big);
    tcase_add_test(tc, reader_garbage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(ws_suite());
}
