/* Unit tests for media/program.c: a real event loop drives the program's 20 ms tick; the source is
 * a fake (the unit's input) handing out real Opus packets, and what the program packages is read
 * back from the feed's ring with libogg and decoded with libopus. Waiting is always for a
 * condition, polled by a loop timer, with a deadline. */
#include "media/program.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ogg/ogg.h>
#include <opus/opus.h>

#include "../harness.h"
#include "core/log.h"
#include "core/loop.h"
#include "deliver/chunk.h"
#include "deliver/feed.h"
#include "deliver/ring.h"

enum { FRAME = 960, NPKT = 50, MAX_PULLS = 4096 };

static struct loop *loop;
static struct feed feed;
static struct program prog;

/* Real Opus packets, mono and stereo, encoded once per test process. */
static uint8_t pkt[2][NPKT][400];
static int pkt_len[2][NPKT];

static void encode_packets(void)
{
    for (int ch = 1; ch <= 2; ch++) {
        int err;
        OpusEncoder *enc = opus_encoder_create(48000, ch, OPUS_APPLICATION_AUDIO, &err);
        ck_assert_int_eq(err, OPUS_OK);
        opus_int16 pcm[FRAME * 2];
        for (int i = 0; i < NPKT; i++) {
            for (int j = 0; j < FRAME; j++)
                for (int c = 0; c < ch; c++)
                    pcm[j * ch + c] =
                        (opus_int16)(8000 * sin((i * FRAME + j) * 2 * M_PI * 330 / 48000.0));
            pkt_len[ch - 1][i] = opus_encode(enc, pcm, FRAME, pkt[ch - 1][i], 400);
            ck_assert_int_gt(pkt_len[ch - 1][i], 0);
        }
        opus_encoder_destroy(enc);
    }
}

/* The fake source: `avail` packets left (-1: endless), optionally gated shut. */
struct fake {
    struct program_source src;
    int avail;
    bool is_gated;
    int pulls, empty_pulls, drained;
    uint64_t first_empty_ms;
    int order[MAX_PULLS]; /* which packet each successful pull returned */
};

static int fake_pull(struct program_source *s, const uint8_t **data, size_t *len, int *samples)
{
    struct fake *f = (struct fake *)s;
    if (f->is_gated || f->avail == 0) {
        if (!f->empty_pulls++) f->first_empty_ms = loop_now_ms(loop);
        return 0;
    }
    if (f->avail > 0) f->avail--;
    int i = f->pulls % NPKT, ch = f->src.channels - 1;
    ck_assert_int_lt(f->pulls, MAX_PULLS);
    f->order[f->pulls++] = i;
    *data = pkt[ch][i];
    *len = (size_t)pkt_len[ch][i];
    *samples = FRAME;
    return 1;
}

static void fake_drained(struct program_source *s)
{
    ((struct fake *)s)->drained++;
}

static const struct program_source_ops fake_ops = {.pull = fake_pull, .on_drained = fake_drained};

static void fake_init(struct fake *f, int channels, int avail)
{
    memset(f, 0, sizeof(*f));
    f->src.ops = &fake_ops;
    f->src.channels = channels;
    f->avail = avail;
}

static uint64_t elapsed(void)
{
    return loop_now_ms(loop) - prog.start_ms;
}

static void setup(void)
{
    log_threshold = LOG_WARN;
    encode_packets();
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
    ck_assert_int_eq(feed_init(&feed, loop, 1024, 4, "HTTP/1.1 200 OK\r\n\r\n"), 0);
    ck_assert_int_eq(program_init(&prog, loop, &feed, 100), 0);
}

static void finish(void)
{
    program_fini(&prog);
    feed_fini(&feed);
    loop_free(loop);
    loop = NULL;
    ck_assert_uint_eq(chunks_live(), 0);
}

/* The program may not run ahead of the wall clock (by more than the packet that crossed it), nor
 * fall behind by more than a couple of ticks. */
static void assert_paced(void)
{
    uint64_t due = elapsed() * 48;
    ck_assert_uint_le(prog.samples, due + FRAME);
    ck_assert_uint_ge(prog.samples + 100 * 48, due);
}

/* Reads every packet of the header and the ring in order, calling fn on each audio packet with
 * its index. Returns the number of audio packets. */
struct reader {
    ogg_sync_state oy;
    ogg_stream_state os;
    bool has_stream;
    int hdr, n;
    OpusDecoder *dec;
    void (*fn)(int idx, const ogg_packet *op, OpusDecoder *dec);
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
        ck_assert_int_eq(r, 1); /* CRC and framing accepted */
        if (!rd->has_stream) {
            ogg_stream_init(&rd->os, ogg_page_serialno(&og));
            rd->has_stream = true;
        }
        ck_assert_int_eq(ogg_stream_pagein(&rd->os, &og), 0);
        ogg_packet op;
        while ((r = ogg_stream_packetout(&rd->os, &op)) != 0) {
            ck_assert_int_eq(r, 1);
            if (rd->hdr < 2)
                rd->hdr++;
            else
                rd->fn(rd->n++, &op, rd->dec);
        }
    }
}

static int ring_packets(int channels, void (*fn)(int idx, const ogg_packet *op, OpusDecoder *dec))
{
    struct reader rd = {.fn = fn};
    int err;
    ogg_sync_init(&rd.oy);
    rd.dec = opus_decoder_create(48000, channels, &err);
    ck_assert_int_eq(err, OPUS_OK);
    read_chunk(&rd, feed.header);
    for (uint64_t seq = feed.ring.tail; seq < feed.ring.head; seq++)
        read_chunk(&rd, ring_get(&feed.ring, seq));
    ck_assert_int_eq(rd.hdr, 2);
    opus_decoder_destroy(rd.dec);
    if (rd.has_stream) ogg_stream_clear(&rd.os);
    ogg_sync_clear(&rd.oy);
    return rd.n;
}

static struct fake src, src2, fb;

/* The packets in the ring are the source's, in the order pulled. */
static void check_is_src(int idx, const ogg_packet *op, OpusDecoder *dec)
{
    ck_assert_int_lt(idx, src.pulls);
    int i = src.order[idx], ch = src.src.channels - 1;
    ck_assert_int_eq(op->bytes, pkt_len[ch][i]);
    ck_assert_int_eq(memcmp(op->packet, pkt[ch][i], (size_t)op->bytes), 0);
    opus_int16 pcm[5760 * 2];
    ck_assert_int_eq(opus_decode(dec, op->packet, (opus_int32)op->bytes, pcm, 5760, 0), FRAME);
}

static int header_channels(void)
{
    ck_assert_ptr_nonnull(feed.header);
    /* First page: 27-byte header, one lacing value, then the 19-byte OpusHead. */
    ck_assert_uint_ge(feed.header->len, 28 + 19);
    ck_assert_int_eq(memcmp(feed.header->data + 28, "OpusHead", 8), 0);
    return feed.header->data[28 + 9];
}

START_TEST(starts_on_first_attach)
{
    ck_assert(!prog.is_started);
    ck_assert_ptr_null(feed.header);
    fake_init(&src, 2, -1);
    ck_assert_int_eq(program_attach(&prog, &src.src), 0);
    ck_assert(prog.is_started);
    ck_assert_ptr_eq(prog.source, &src.src);
    ck_assert_int_eq(header_channels(), 2);
    struct chunk *h = feed.header;
    /* The channel count is the first source's for the program's whole life. */
    fake_init(&src2, 1, -1);
    ck_assert_int_eq(program_attach(&prog, &src2.src), 0);
    ck_assert_ptr_eq(feed.header, h);
    ck_assert_int_eq(header_channels(), 2);
    finish();
}
END_TEST

static bool one_second(void)
{
    return elapsed() >= 1000;
}

START_TEST(pulls_at_wall_clock_pace)
{
    fake_init(&src, 1, -1);
    ck_assert_int_eq(program_attach(&prog, &src.src), 0);
    ck_assert(run_until_fn(loop, one_second, 5000));
    /* An endless source is read only as fast as time passes. */
    assert_paced();
    ck_assert_uint_eq(prog.samples, (uint64_t)src.pulls * FRAME);
    ck_assert_uint_eq(prog.silence_samples, 0);
    ck_assert_int_eq(src.empty_pulls, 0);
    /* 100 ms per chunk: the ring holds every complete page, each packet the source's. */
    ck_assert_uint_eq(feed.ring.head, prog.samples / 4800);
    int n = ring_packets(1, check_is_src);
    ck_assert_int_eq(n, (int)feed.ring.head * 5);
    finish();
}
END_TEST

static uint64_t wake_at;
static bool is_time(void)
{
    return loop_now_ms(loop) >= wake_at;
}

static bool has_silence(void)
{
    return prog.silence_samples > 0;
}

static int silent_seen;
static void check_silent_tail(int idx, const ogg_packet *op, OpusDecoder *dec)
{
    opus_int16 pcm[5760];
    int n = opus_decode(dec, op->packet, (opus_int32)op->bytes, pcm, 5760, 0);
    ck_assert_int_eq(n, FRAME);
    if (idx < 10) {
        /* The source's packets first, unchanged. */
        ck_assert_int_eq(op->bytes, pkt_len[0][idx]);
        ck_assert_int_eq(memcmp(op->packet, pkt[0][idx], (size_t)op->bytes), 0);
        return;
    }
    /* Then silence: decodes to (nearly) nothing. Skip the decoder's first frame of transition. */
    if (idx < 12) return;
    int peak = 0;
    for (int i = 0; i < n; i++)
        peak = abs(pcm[i]) > peak ? abs(pcm[i]) : peak;
    ck_assert_int_lt(peak, 64);
    silent_seen++;
}

START_TEST(underrun_grace_then_silence)
{
    fake_init(&src, 1, 10); /* 200 ms of audio, then nothing */
    ck_assert_int_eq(program_attach(&prog, &src.src), 0);
    ck_assert(run_until_fn(loop, has_silence, 5000));
    uint64_t now = loop_now_ms(loop);
    ck_assert_int_gt(src.empty_pulls, 0);
    /* No silence within the grace period after the source ran dry... */
    ck_assert_uint_ge(now - src.first_empty_ms, PROGRAM_UNDERRUN_MS);
    ck_assert_uint_le(now - src.first_empty_ms, PROGRAM_UNDERRUN_MS + 150);
    /* ...during which the program waited instead of padding. */
    ck_assert_uint_eq(prog.samples - prog.silence_samples, 10 * FRAME);
    ck_assert_int_eq(src.pulls, 10);
    ck_assert_int_gt(src.drained, 0);
    /* Once silence fills in, the program is back at the wall clock. */
    assert_paced();
    /* And stays there while the source is still empty. */
    wake_at = now + 500;
    ck_assert(run_until_fn(loop, is_time, 2000));
    assert_paced();
    ck_assert_uint_eq(prog.samples - prog.silence_samples, 10 * FRAME);
    ck_assert_uint_eq(prog.silence_samples % FRAME, 0);
    silent_seen = 0;
    int n = ring_packets(1, check_silent_tail);
    ck_assert_int_ge(n, 25);
    ck_assert_int_gt(silent_seen, 10);
    finish();
}
END_TEST

static struct timer gate_timer;
static int gate_step;
static void on_gate(struct timer *t)
{
    /* At 300 ms the source goes quiet for 200 ms (under the grace), then resumes. */
    if (gate_step++ == 0) {
        src.is_gated = true;
        timer_start(loop, t, loop_now_ms(loop) + 200);
    } else {
        src.is_gated = false;
    }
}

START_TEST(late_source_within_grace_gets_no_silence)
{
    fake_init(&src, 1, -1);
    ck_assert_int_eq(program_attach(&prog, &src.src), 0);
    timer_init(&gate_timer, on_gate);
    timer_start(loop, &gate_timer, loop_now_ms(loop) + 300);
    ck_assert(run_until_fn(loop, one_second, 5000));
    ck_assert_int_eq(gate_step, 2);
    ck_assert_int_gt(src.empty_pulls, 0);
    ck_assert_int_gt(src.drained, 0);
    ck_assert_uint_eq(prog.silence_samples, 0);
    /* The late packets were pulled in a burst: the program caught up with the clock. */
    assert_paced();
    ck_assert_uint_eq(prog.samples, (uint64_t)src.pulls * FRAME);
    timer_stop(&gate_timer);
    finish();
}
END_TEST

static bool src_pulled_10(void)
{
    return src.pulls >= 10;
}
static bool fb_pulled_10(void)
{
    return fb.pulls >= 10;
}
static bool fb_pulled_more(void)
{
    return fb.pulls >= 20;
}

START_TEST(fallback_used_when_no_source)
{
    fake_init(&fb, 1, -1);
    fake_init(&src, 1, -1);
    ck_assert_int_eq(program_set_fallback(&prog, &fb.src), 0);
    /* The fallback alone starts the program. */
    ck_assert(prog.is_started);
    ck_assert_ptr_null(prog.source);
    ck_assert_ptr_eq(prog.fallback, &fb.src);
    ck_assert(run_until_fn(loop, fb_pulled_10, 3000));
    assert_paced();
    /* A source takes over: the fallback is not read while it is attached. */
    ck_assert_int_eq(program_attach(&prog, &src.src), 0);
    int fb_before = fb.pulls;
    ck_assert(run_until_fn(loop, src_pulled_10, 3000));
    ck_assert_int_eq(fb.pulls, fb_before);
    /* Detached: back to the fallback, with no silence at any point. */
    ck_assert_int_eq(program_attach(&prog, NULL), 0);
    int src_before = src.pulls;
    fb.pulls = 0;
    ck_assert(run_until_fn(loop, fb_pulled_more, 3000));
    ck_assert_int_eq(src.pulls, src_before);
    ck_assert_uint_eq(prog.silence_samples, 0);
    assert_paced();
    ck_assert_uint_eq(chunks_live(), feed.ring.head - feed.ring.tail + 1);
    finish();
}
END_TEST

static uint64_t detached_at;
static bool has_200ms_silence(void)
{
    return prog.silence_samples >= 10 * FRAME;
}

START_TEST(no_source_no_fallback_fills_silence)
{
    fake_init(&src, 1, -1);
    ck_assert_int_eq(program_attach(&prog, &src.src), 0);
    ck_assert(run_until_fn(loop, src_pulled_10, 3000));
    ck_assert_int_eq(program_attach(&prog, NULL), 0);
    ck_assert_ptr_null(prog.source);
    detached_at = loop_now_ms(loop);
    int before = src.pulls;
    ck_assert(run_until_fn(loop, has_200ms_silence, 3000));
    /* Nobody is late when nobody is attached: silence keeps the stream going at once. */
    ck_assert_uint_lt(loop_now_ms(loop) - detached_at, PROGRAM_UNDERRUN_MS);
    ck_assert_int_eq(src.pulls, before);
    assert_paced();
    finish();
}
END_TEST

/* A source that says how much it holds: the program waits for its jitter buffer. */
static uint64_t held_samples;
static uint64_t fake_buffered(struct program_source *s)
{
    return held_samples;
}
static const struct program_source_ops buffered_ops = {
    .pull = fake_pull, .on_drained = fake_drained, .buffered = fake_buffered};

static bool quarter_second(void)
{
    return elapsed() >= 300;
}
/* Waits measured from `mark` (set just before), not from the program's start: on a loaded
 * machine the steps before may already have taken a second. */
static uint64_t mark;
static bool mark_plus_second(void)
{
    return elapsed() >= mark + 1000;
}
static bool mark_plus_300(void)
{
    return elapsed() >= mark + 300;
}
static bool src_pulled_5(void)
{
    return src.pulls >= 5;
}

START_TEST(jitter_buffer_fills_before_reading)
{
    fake_init(&src, 1, -1);
    src.src.ops = &buffered_ops;
    held_samples = (uint64_t)(PROGRAM_JITTER_MS - 100) * 48;
    ck_assert_int_eq(program_attach(&prog, &src.src), 0);
    ck_assert(run_until_fn(loop, quarter_second, 5000));
    /* Under the jitter buffer: the source is not read, silence keeps the clock. */
    ck_assert_int_eq(src.pulls, 0);
    ck_assert_uint_gt(prog.silence_samples, 0);
    ck_assert(!prog.is_primed);
    held_samples = (uint64_t)PROGRAM_JITTER_MS * 48;
    ck_assert(run_until_fn(loop, src_pulled_5, 2000));
    ck_assert(prog.is_primed);
    /* An underrun past the grace empties it: it must fill again. */
    src.is_gated = true;
    uint64_t silence = prog.silence_samples;
    held_samples = 0;
    mark = elapsed();
    ck_assert(run_until_fn(loop, mark_plus_second, 5000));
    ck_assert_uint_gt(prog.silence_samples, silence);
    ck_assert(!prog.is_primed);
    int pulls = src.pulls;
    src.is_gated = false;
    mark = elapsed();
    ck_assert(run_until_fn(loop, mark_plus_300, 5000));
    ck_assert_int_eq(src.pulls, pulls); /* data, but not enough of it: still filling */
    finish();
}
END_TEST

static Suite *program_suite(void)
{
    Suite *s = suite_create("program");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, starts_on_first_attach);
    tcase_add_test(tc, pulls_at_wall_clock_pace);
    tcase_add_test(tc, underrun_grace_then_silence);
    tcase_add_test(tc, late_source_within_grace_gets_no_silence);
    tcase_add_test(tc, fallback_used_when_no_source);
    tcase_add_test(tc, no_source_no_fallback_fills_silence);
    tcase_add_test(tc, jitter_buffer_fills_before_reading);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(program_suite());
}
