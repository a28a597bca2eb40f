/* Unit tests for media/ingest.c: a publisher on one end of a Unix socketpair, the test on the
 * other, a real event loop and a real program and feed behind it. Streams are built with libogg
 * from real libopus packets; what the program packages is read back from the feed's ring. Every
 * wait is for a condition, polled by a loop timer, with a deadline. */
#include "media/ingest.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ogg/ogg.h>
#include <opus/opus.h>

#include "../harness.h"
#include "core/log.h"
#include "core/loop.h"
#include "deliver/chunk.h"
#include "deliver/feed.h"
#include "deliver/ring.h"
#include "media/program.h"

enum { FRAME = 960, NPKT = 100 };

static struct loop *loop;
static struct feed feed;
static struct program prog;
static struct publisher *pub;
static int sv[2]; /* sv[0]: the publisher's (taken over), sv[1]: the test's */

/* What the on_gone callback saw. */
static int gone_calls;
static uint64_t gone_ms, gone_samples, gone_silence;
static struct program_source *gone_source;

static uint8_t pkt[NPKT][400];
static int pkt_len[NPKT];

static void encode_packets(void)
{
    int err;
    OpusEncoder *enc = opus_encoder_create(48000, 1, OPUS_APPLICATION_AUDIO, &err);
    ck_assert_int_eq(err, OPUS_OK);
    opus_int16 pcm[FRAME];
    for (int i = 0; i < NPKT; i++) {
        for (int j = 0; j < FRAME; j++)
            pcm[j] = (opus_int16)(8000 * sin((i * FRAME + j) * 2 * M_PI * 523 / 48000.0));
        pkt_len[i] = opus_encode(enc, pcm, FRAME, pkt[i], sizeof(pkt[i]));
        ck_assert_int_gt(pkt_len[i], 0);
    }
    opus_encoder_destroy(enc);
}

/* ---- building streams ------------------------------------------------------------------------ */

struct ostream {
    ogg_stream_state os;
    uint8_t buf[256 * 1024];
    size_t len;
    long packetno;
    int64_t granule;
};

static struct ostream ost;

static void os_flush(void)
{
    ogg_page og;
    while (ogg_stream_flush(&ost.os, &og)) {
        ck_assert_uint_le(ost.len + (size_t)(og.header_len + og.body_len), sizeof(ost.buf));
        memcpy(ost.buf + ost.len, og.header, (size_t)og.header_len);
        memcpy(ost.buf + ost.len + og.header_len, og.body, (size_t)og.body_len);
        ost.len += (size_t)(og.header_len + og.body_len);
    }
}

static void os_put(const void *p, size_t n, int samples)
{
    ost.granule += samples;
    ogg_packet op = {.packet = (unsigned char *)p,
                     .bytes = (long)n,
                     .b_o_s = ost.packetno == 0,
                     .granulepos = ost.granule,
                     .packetno = ost.packetno++};
    ck_assert_int_eq(ogg_stream_packetin(&ost.os, &op), 0);
}

static void os_begin(int channels)
{
    ogg_stream_init(&ost.os, 4242);
    ost.len = 0;
    ost.packetno = 0;
    ost.granule = 0;
    uint8_t head[19] = {'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, (uint8_t)channels, 0x38, 1};
    head[12] = 0x80, head[13] = 0xbb; /* 48000 */
    os_put(head, sizeof(head), 0);
    os_flush();
    static const uint8_t tags[] = "OpusTags\4\0\0\0test\0\0\0\0";
    os_put(tags, sizeof(tags) - 1, 0);
    os_flush();
    ost.granule = 312;
}

/* Packets [from, to), five per page. */
static void os_audio(int from, int to)
{
    for (int i = from; i < to; i++) {
        os_put(pkt[i % NPKT], (size_t)pkt_len[i % NPKT], FRAME);
        if ((i + 1) % 5 == 0) os_flush();
    }
    os_flush();
}

static void os_end(void)
{
    ogg_stream_clear(&ost.os);
}

/* ---- the loop, the peer's reading, and the publisher ----------------------------------------- */

/* Bytes the publisher sent us, and whether it closed its side. */
static char resp[4096];
static size_t resp_len;
static bool has_peer_eof;

static void peer_read(void)
{
    while (!has_peer_eof && resp_len < sizeof(resp) - 1) {
        ssize_t n = recv(sv[1], resp + resp_len, sizeof(resp) - 1 - resp_len, MSG_DONTWAIT);
        if (n > 0) {
            resp_len += (size_t)n;
            resp[resp_len] = '\0';
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            has_peer_eof = true;
        } else {
            return;
        }
    }
}

static bool peer_eof(void)
{
    peer_read();
    return has_peer_eof;
}

static bool is_gone(void)
{
    return gone_calls > 0;
}

static void on_gone(struct publisher *p, void *arg)
{
    ck_assert_ptr_eq(p, pub);
    ck_assert_ptr_eq(arg, &prog);
    gone_calls++;
    gone_ms = loop_now_ms(loop);
    gone_samples = prog.samples;
    gone_silence = prog.silence_samples;
    gone_source = prog.source;
    pub = NULL;
}

static const struct publisher_events events = {.on_gone = on_gone, .arg = &prog};

static void setup(void)
{
    log_threshold = LOG_ERROR; /* rejections below are expected and logged as warnings */
    encode_packets();
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
    ck_assert_int_eq(feed_init(&feed, loop, 1024, 4, "HTTP/1.1 200 OK\r\n\r\n"), 0);
    ck_assert_int_eq(program_init(&prog, loop, &feed, 100), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* The server's sockets are non-blocking (accepted with SOCK_NONBLOCK). */
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    int big = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    resp_len = 0;
    resp[0] = '\0';
    has_peer_eof = false;
    gone_calls = 0;
    pub = NULL;
}

static void start(int expect, int legacy, const void *rest, size_t rest_len, uint64_t timeout_ms)
{
    pub = publisher_start(loop, sv[0], &prog, rest, rest_len, expect, legacy, timeout_ms, &events,
                          "test-peer");
    ck_assert_ptr_nonnull(pub);
}

static void peer_write(const void *buf, size_t len)
{
    ck_assert_int_eq(send(sv[1], buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void finish(void)
{
    if (pub) publisher_close(pub);
    ck_assert_ptr_null(pub); /* on_gone ran */
    loop_run_once(loop);     /* the publisher's deferred free */
    if (sv[1] >= 0) close(sv[1]);
    program_fini(&prog);
    feed_fini(&feed);
    loop_free(loop);
    loop = NULL;
    ck_assert_uint_eq(chunks_live(), 0);
}

/* Reads the header and the ring back with libogg and checks that the audio packets are the
 * first `n` packets sent, in order, each decodable. Returns how many audio packets there were. */
struct reader {
    ogg_sync_state oy;
    ogg_stream_state os;
    bool has_stream;
    int hdr, got, n;
    OpusDecoder *dec;
};

static void read_chunk(struct reader *rd, const struct chunk *c)
{
    ck_assert_ptr_nonnull(c);
    char *dst = ogg_sync_buffer(&rd->oy, c->len);
    memcpy(dst, c->data, c->len);
    ogg_sync_wrote(&rd->oy, c->len);
    ogg_page og;
    int r;
    while ((r = ogg_sync_pageout(&rd->oy, &og)) != 0) {
        ck_assert_int_eq(r, 1);
        if (!rd->has_stream) ogg_stream_init(&rd->os, ogg_page_serialno(&og));
        rd->has_stream = true;
        ck_assert_int_eq(ogg_stream_pagein(&rd->os, &og), 0);
        ogg_packet op;
        while ((r = ogg_stream_packetout(&rd->os, &op)) != 0) {
            ck_assert_int_eq(r, 1);
            if (rd->hdr < 2) {
                rd->hdr++;
                continue;
            }
            /* Silence leads while the program fills its jitter buffer
             * (PROGRAM_JITTER_MS); the publisher's packets follow, whole. */
            if (rd->got == 0 && op.bytes < 8) continue;
            int i = rd->got++;
            if (i >= rd->n) continue;
            ck_assert_int_eq(op.bytes, pkt_len[i % NPKT]);
            ck_assert_int_eq(memcmp(op.packet, pkt[i % NPKT], (size_t)op.bytes), 0);
            opus_int16 pcm[5760];
            ck_assert_int_eq(opus_decode(rd->dec, op.packet, (opus_int32)op.bytes, pcm, 5760, 0),
                             FRAME);
        }
    }
}

static int ring_check(int n)
{
    struct reader rd = {.n = n};
    int err;
    ogg_sync_init(&rd.oy);
    rd.dec = opus_decoder_create(48000, 1, &err);
    ck_assert_int_eq(err, OPUS_OK);
    read_chunk(&rd, feed.header);
    for (uint64_t seq = feed.ring.tail; seq < feed.ring.head; seq++)
        read_chunk(&rd, ring_get(&feed.ring, seq));
    ck_assert_int_eq(rd.hdr, 2);
    opus_decoder_destroy(rd.dec);
    if (rd.has_stream) ogg_stream_clear(&rd.os);
    ogg_sync_clear(&rd.oy);
    return rd.got;
}

/* ---- valid streams ----------------------------------------------------------------------------
 */

static bool has_25_packets(void)
{
    return prog.samples >= 25 * FRAME && feed.ring.head >= 5;
}

START_TEST(valid_stream_reaches_program)
{
    start(1, 0, NULL, 0, 10000);
    /* Expect: 100-continue is answered at once. */
    peer_read();
    ck_assert_str_eq(resp, "HTTP/1.1 100 Continue\r\n\r\n");
    ck_assert(!prog.is_started);
    os_begin(1);
    os_audio(0, 25);
    peer_write(ost.buf, ost.len);
    os_end();
    ck_assert(run_until_fn(loop, has_25_packets, 3000));
    ck_assert_ptr_nonnull(prog.source);
    ck_assert_uint_eq(prog.silence_samples, 0);
    ck_assert_int_ge(ring_check(25), 25);
    /* No second response after the 100 Continue. */
    peer_read();
    ck_assert_str_eq(resp, "HTTP/1.1 100 Continue\r\n\r\n");
    ck_assert_int_eq(publisher_is_draining(pub), 0);
    /* Closing: on_gone once, after detaching from the program; the peer sees EOF. */
    publisher_close(pub);
    ck_assert_int_eq(gone_calls, 1);
    ck_assert_ptr_null(gone_source);
    ck_assert_ptr_null(prog.source);
    ck_assert(run_until_fn(loop, peer_eof, 2000));
    finish();
}
END_TEST

static bool has_response(void)
{
    peer_read();
    return strstr(resp, "\r\n\r\n") != NULL;
}

START_TEST(plain_put_answers_200_when_stream_valid_and_uses_rest)
{
    os_begin(1);
    os_audio(0, 25);
    /* The head's read already took the first 40 bytes of the body (part of the first page). */
    start(0, 0, ost.buf, 40, 10000);
    peer_read();
    ck_assert_uint_eq(resp_len, 0); /* nothing until the stream is known valid */
    ck_assert(!prog.is_started);
    peer_write(ost.buf + 40, ost.len - 40);
    os_end();
    ck_assert(run_until_fn(loop, has_response, 2000));
    ck_assert_str_eq(resp, "HTTP/1.1 200 OK\r\n\r\n");
    ck_assert(run_until_fn(loop, has_25_packets, 3000));
    ck_assert_int_ge(ring_check(25), 25);
    finish();
}
END_TEST

START_TEST(legacy_source_answered_at_once)
{
    start(0, 1, NULL, 0, 10000);
    peer_read();
    ck_assert_str_eq(resp, "HTTP/1.0 200 OK\r\n\r\n");
    os_begin(1);
    os_audio(0, 25);
    peer_write(ost.buf, ost.len);
    os_end();
    ck_assert(run_until_fn(loop, has_25_packets, 3000));
    ck_assert_int_ge(ring_check(25), 25);
    peer_read();
    ck_assert_str_eq(resp, "HTTP/1.0 200 OK\r\n\r\n");
    finish();
}
END_TEST

/* ---- rejected streams -------------------------------------------------------------------------
 */

/* Waits for a complete error response and returns its status; the body goes to *body. */
static int read_error(const char **body)
{
    ck_assert(run_until_fn(loop, peer_eof, 3000)); /* the publisher shuts its side after the text */
    /* An interim 100 Continue may come first; the final response follows it. */
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    const char *r = resp;
    if (strncmp(r, cont, sizeof(cont) - 1) == 0) r += sizeof(cont) - 1;
    ck_assert_ptr_nonnull(strstr(r, "\r\n\r\n"));
    int status = 0;
    ck_assert_int_eq(sscanf(r, "HTTP/1.1 %d", &status), 1);
    ck_assert_ptr_nonnull(strstr(r, "Content-Type: text/plain\r\n"));
    const char *cl = strstr(r, "Content-Length: ");
    ck_assert_ptr_nonnull(cl);
    *body = strstr(r, "\r\n\r\n") + 4;
    ck_assert_int_eq(atoi(cl + 16), (int)strlen(*body));
    ck_assert_int_gt((int)strlen(*body), 1);
    /* Nothing reached the program. */
    ck_assert(!prog.is_started);
    ck_assert_ptr_null(prog.source);
    ck_assert_uint_eq(feed.ring.head, 0);
    return status;
}

/* After the error text the publisher lingers until the client closes. */
static void close_peer_and_expect_gone(void)
{
    ck_assert_int_eq(gone_calls, 0);
    close(sv[1]);
    sv[1] = -1;
    ck_assert(run_until_fn(loop, is_gone, 3000));
    ck_assert_int_eq(gone_calls, 1);
}

START_TEST(garbage_is_415)
{
    start(1, 0, NULL, 0, 10000);
    static const char id3[] = "ID3\3\0\0\0\0\0\0 this is an mp3 file, not an Ogg stream at all....";
    peer_write(id3, sizeof(id3) - 1);
    const char *body;
    int status = read_error(&body);
    ck_assert_int_eq(status, 415);
    ck_assert_ptr_nonnull(strstr(resp, "HTTP/1.1 415 Unsupported Media Type\r\n"));
    ck_assert_ptr_nonnull(strstr(body, "Ogg"));
    close_peer_and_expect_gone();
    finish();
}
END_TEST

START_TEST(vorbis_is_415_and_named)
{
    start(0, 0, NULL, 0, 10000);
    ogg_stream_init(&ost.os, 7);
    ost.len = 0, ost.packetno = 0, ost.granule = 0;
    uint8_t vorbis[30] = {1, 'v', 'o', 'r', 'b', 'i', 's', 0, 0, 0, 0, 2, 0x44, 0xac, 0, 0};
    os_put(vorbis, sizeof(vorbis), 0);
    os_flush();
    os_end();
    peer_write(ost.buf, ost.len);
    const char *body;
    ck_assert_int_eq(read_error(&body), 415);
    ck_assert_ptr_nonnull(strstr(body, "Vorbis"));
    close_peer_and_expect_gone();
    finish();
}
END_TEST

START_TEST(bad_opus_head_is_400)
{
    start(0, 0, NULL, 0, 10000);
    ogg_stream_init(&ost.os, 7);
    ost.len = 0, ost.packetno = 0, ost.granule = 0;
    uint8_t head[19] = {'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 0 /* channels */, 0x38, 1};
    head[12] = 0x80, head[13] = 0xbb;
    os_put(head, sizeof(head), 0);
    os_flush();
    os_end();
    peer_write(ost.buf, ost.len);
    const char *body;
    ck_assert_int_eq(read_error(&body), 400);
    ck_assert_ptr_nonnull(strstr(resp, "HTTP/1.1 400 Bad Request\r\n"));
    ck_assert_ptr_nonnull(strstr(body, "OpusHead"));
    close_peer_and_expect_gone();
    finish();
}
END_TEST

static bool is_detached_after_start(void)
{
    return prog.is_started && prog.source == NULL;
}

START_TEST(invalid_audio_after_start_just_closes)
{
    start(0, 0, NULL, 0, 10000);
    os_begin(1);
    os_audio(0, 10);
    peer_write(ost.buf, ost.len);
    ck_assert(run_until_fn(loop, has_response, 2000));
    ck_assert_str_eq(resp, "HTTP/1.1 200 OK\r\n\r\n");
    /* Then a packet that is not Opus (a TOC with code 3 and no frame count byte). */
    ost.len = 0;
    static const uint8_t bad[] = {0x03};
    os_put(bad, sizeof(bad), FRAME);
    os_flush();
    os_end();
    peer_write(ost.buf, ost.len);
    ck_assert(run_until_fn(loop, is_detached_after_start, 2000));
    /* No error text once audio flowed: the client just sees the end. */
    ck_assert(run_until_fn(loop, peer_eof, 2000));
    ck_assert_str_eq(resp, "HTTP/1.1 200 OK\r\n\r\n");
    close_peer_and_expect_gone();
    finish();
}
END_TEST

/* ---- end of stream and timeouts ------------------------------------------------------------- */

static bool is_draining_or_gone(void)
{
    return gone_calls || publisher_is_draining(pub);
}

START_TEST(eof_plays_out_queue_then_gone)
{
    start(1, 0, NULL, 0, 10000);
    os_begin(1);
    os_audio(0, 50); /* one second */
    peer_write(ost.buf, ost.len);
    os_end();
    ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
    ck_assert(run_until_fn(loop, is_draining_or_gone, 2000));
    /* The stream ended, but the last second still plays. */
    ck_assert_int_eq(gone_calls, 0);
    ck_assert_int_eq(publisher_is_draining(pub), 1);
    ck_assert_uint_lt(prog.samples, 50 * FRAME);
    ck_assert(run_until_fn(loop, is_gone, 4000));
    ck_assert_int_eq(gone_calls, 1);
    ck_assert_uint_ge(gone_samples, 50 * FRAME);
    ck_assert_uint_eq(gone_silence, 0);
    ck_assert_ptr_null(gone_source);
    ck_assert_ptr_null(prog.source);
    ck_assert_int_eq(ring_check(50), 50);
    ck_assert(run_until_fn(loop, peer_eof, 1000));
    finish();
}
END_TEST

static struct timer sweep_timer;
static void on_sweep(struct timer *t)
{
    if (!pub) return;
    publisher_sweep(pub);
    timer_start(loop, t, loop_now_ms(loop) + 50);
}

/* A paced writer: one page of one packet every 20 ms, `writes_left` times. */
static struct timer write_timer;
static int writes_left, written;
static uint64_t last_write_ms;
static void on_write(struct timer *t)
{
    if (writes_left-- <= 0) return;
    ost.len = 0;
    os_audio(written, written + 1);
    written++;
    peer_write(ost.buf, ost.len);
    last_write_ms = loop_now_ms(loop);
    timer_start(loop, t, last_write_ms + 20);
}

START_TEST(silent_publisher_times_out)
{
    start(0, 0, NULL, 0, 300);
    timer_init(&sweep_timer, on_sweep);
    timer_start(loop, &sweep_timer, loop_now_ms(loop) + 50);
    os_begin(1);
    os_audio(0, 5);
    written = 5;
    peer_write(ost.buf, ost.len);
    last_write_ms = loop_now_ms(loop);
    ck_assert(run_until_fn(loop, is_gone, 3000));
    ck_assert_uint_ge(gone_ms - last_write_ms, 300);
    ck_assert_uint_le(gone_ms - last_write_ms, 300 + 250);
    ck_assert(run_until_fn(loop, peer_eof, 1000));
    os_end();
    timer_stop(&sweep_timer);
    finish();
}
END_TEST

START_TEST(paced_publisher_survives_sweep)
{
    start(0, 0, NULL, 0, 200);
    timer_init(&sweep_timer, on_sweep);
    timer_start(loop, &sweep_timer, loop_now_ms(loop) + 50);
    os_begin(1);
    peer_write(ost.buf, ost.len);
    written = 0;
    writes_left = 40; /* 800 ms of real-time audio */
    timer_init(&write_timer, on_write);
    timer_start(loop, &write_timer, loop_now_ms(loop) + 20);
    ck_assert(run_until_fn(loop, is_gone, 4000));
    ck_assert_int_eq(written, 40); /* alive for as long as it wrote */
    ck_assert_uint_ge(gone_ms - last_write_ms, 200);
    ck_assert_uint_le(gone_ms - last_write_ms, 200 + 250);
    ck_assert_ptr_null(prog.source);
    /* The program began reading once its jitter buffer held PROGRAM_JITTER_MS
     * (25 packets); what it read before the timeout reached the ring whole. */
    ck_assert_int_ge(ring_check(10), 10);
    os_end();
    timer_stop(&sweep_timer);
    timer_stop(&write_timer);
    finish();
}
END_TEST

static Suite *ingest_suite(void)
{
    Suite *s = suite_create("ingest");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, valid_stream_reaches_program);
    tcase_add_test(tc, plain_put_answers_200_when_stream_valid_and_uses_rest);
    tcase_add_test(tc, legacy_source_answered_at_once);
    tcase_add_test(tc, garbage_is_415);
    tcase_add_test(tc, vorbis_is_415_and_named);
    tcase_add_test(tc, bad_opus_head_is_400);
    tcase_add_test(tc, invalid_audio_after_start_just_closes);
    tcase_add_test(tc, eof_plays_out_queue_then_gone);
    tcase_add_test(tc, silent_publisher_times_out);
    tcase_add_test(tc, paced_publisher_survives_sweep);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(ingest_suite());
}
