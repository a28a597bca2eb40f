/* Unit tests for pkg/ogg_pkg.c: the packager feeds a real feed (its ring and header slot), and
 * everything it produces is read back with libogg (capture, CRC, packet reassembly) and decoded
 * with libopus. Packets come from the libopus encoder at 48 kHz. */
#include "pkg/ogg_pkg.h"

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

enum { SERIAL = 0x5eed1234, PRE_SKIP = 312, MAX_PKT = 1500, MAX_PAGES = 256 };

static struct loop *loop;
static struct feed feed;
static struct ogg_pkg pkg;

static void setup(void)
{
    log_threshold = LOG_WARN;
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
    ck_assert_int_eq(feed_init(&feed, loop, 256, 4, "HTTP/1.1 200 OK\r\n\r\n"), 0);
}

/* Tears everything down and checks that no chunk outlived its holders. */
static void finish(void)
{
    ogg_pkg_fini(&pkg);
    feed_fini(&feed);
    loop_free(loop);
    loop = NULL;
    ck_assert_uint_eq(chunks_live(), 0);
}

/* An encoder producing packets of `frame` samples (480, 960, 1920, 2880) of a sine. */
struct enc {
    OpusEncoder *e;
    int channels;
    long t;
};

static void enc_open(struct enc *en, int channels, int bitrate)
{
    int err;
    en->e = opus_encoder_create(48000, channels, OPUS_APPLICATION_AUDIO, &err);
    ck_assert_int_eq(err, OPUS_OK);
    opus_encoder_ctl(en->e, OPUS_SET_BITRATE(bitrate));
    en->channels = channels;
    en->t = 0;
}

static int enc_packet(struct enc *en, int frame, uint8_t *out)
{
    opus_int16 pcm[2880 * 2];
    for (int i = 0; i < frame; i++, en->t++) {
        double v = 9000 * sin(en->t * 2 * M_PI * 440 / 48000.0);
        for (int c = 0; c < en->channels; c++)
            pcm[i * en->channels + c] = (opus_int16)v;
    }
    int n = opus_encode(en->e, pcm, frame, out, MAX_PKT);
    ck_assert_int_gt(n, 0);
    return n;
}

/* Pages captured from a byte string with ogg_sync (which verifies each CRC). */
struct pages {
    ogg_sync_state oy;
    ogg_page pg[MAX_PAGES];
    unsigned char *copy[MAX_PAGES];
    int n;
    int bad; /* ogg_sync_pageout returned -1: a hole, e.g. a CRC mismatch */
};

static void pages_parse(struct pages *ps, const unsigned char *buf, size_t len)
{
    memset(ps, 0, sizeof(*ps));
    ogg_sync_init(&ps->oy);
    char *dst = ogg_sync_buffer(&ps->oy, (long)len);
    ck_assert_ptr_nonnull(dst);
    memcpy(dst, buf, len);
    ogg_sync_wrote(&ps->oy, (long)len);
    ogg_page og;
    int r;
    while ((r = ogg_sync_pageout(&ps->oy, &og)) != 0) {
        if (r < 0) {
            ps->bad++;
            continue;
        }
        ck_assert_int_lt(ps->n, MAX_PAGES);
        /* Keep a private copy: ogg_sync may move its buffer later. */
        size_t pl = (size_t)(og.header_len + og.body_len);
        ps->copy[ps->n] = malloc(pl);
        ck_assert_ptr_nonnull(ps->copy[ps->n]);
        memcpy(ps->copy[ps->n], og.header, (size_t)og.header_len);
        memcpy(ps->copy[ps->n] + og.header_len, og.body, (size_t)og.body_len);
        ps->pg[ps->n] = (ogg_page){ps->copy[ps->n], og.header_len, ps->copy[ps->n] + og.header_len,
                                   og.body_len};
        ps->n++;
    }
}

/* Bytes given to ogg_sync that no page accounted for (a partial or garbled page). */
static size_t pages_leftover(struct pages *ps)
{
    return (size_t)(ps->oy.fill - ps->oy.returned);
}

static void pages_free(struct pages *ps)
{
    for (int i = 0; i < ps->n; i++)
        free(ps->copy[i]);
    ogg_sync_clear(&ps->oy);
}

/* Recomputes a page's CRC and compares it with the one stored. */
static void assert_crc(ogg_page *og)
{
    unsigned char stored[4];
    memcpy(stored, og->header + 22, 4);
    ogg_page_checksum_set(og);
    ck_assert_int_eq(memcmp(stored, og->header + 22, 4), 0);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Checks the header chunk: two pages, OpusHead then OpusTags, per RFC 7845. */
static void check_header(int channels, const char *vendor)
{
    struct chunk *h = feed.header;
    ck_assert_ptr_nonnull(h);
    ck_assert(h->is_sealed);
    struct pages ps;
    pages_parse(&ps, h->data, h->len);
    ck_assert_int_eq(ps.bad, 0);
    ck_assert_int_eq(ps.n, 2);
    ck_assert_uint_eq(pages_leftover(&ps), 0);

    ogg_stream_state os;
    ogg_stream_init(&os, SERIAL);
    for (int i = 0; i < 2; i++) {
        ogg_page *og = &ps.pg[i];
        assert_crc(og);
        ck_assert_int_eq(ogg_page_serialno(og), SERIAL);
        ck_assert_int_eq(ogg_page_pageno(og), i);
        ck_assert_int_eq(!!ogg_page_bos(og), i == 0);
        ck_assert_int_eq(!!ogg_page_eos(og), 0);
        ck_assert_int_eq(!!ogg_page_continued(og), 0);
        /* Header pages have granule position 0 (RFC 7845 section 3). */
        ck_assert_int_eq(ogg_page_granulepos(og), 0);
        /* Each header packet ends on its own page: one packet completes here. */
        ck_assert_int_eq(ogg_page_packets(og), 1);
        ck_assert_int_eq(ogg_stream_pagein(&os, og), 0);
        ogg_packet op;
        ck_assert_int_eq(ogg_stream_packetout(&os, &op), 1);
        ck_assert_int_eq(ogg_stream_packetout(&os, &op), 0);
    }
    ogg_stream_clear(&os);

    /* Re-read the packets for their content. */
    ogg_stream_init(&os, SERIAL);
    ogg_packet op;
    ck_assert_int_eq(ogg_stream_pagein(&os, &ps.pg[0]), 0);
    ck_assert_int_eq(ogg_stream_packetout(&os, &op), 1);
    ck_assert(op.b_o_s != 0);
    ck_assert_int_eq(op.bytes, 19);
    const unsigned char *p = op.packet;
    ck_assert_int_eq(memcmp(p, "OpusHead", 8), 0);
    ck_assert_int_eq(p[8], 1); /* version */
    ck_assert_int_eq(p[9], channels);
    ck_assert_int_eq(p[10] | p[11] << 8, PRE_SKIP);
    ck_assert_uint_eq(le32(p + 12), 48000);
    ck_assert_int_eq(p[16] | p[17] << 8, 0); /* output gain */
    ck_assert_int_eq(p[18], 0);              /* mapping family 0 */
    /* The same bytes must satisfy libopus' view of a header: a decoder opens with them. */
    int err;
    OpusDecoder *dec = opus_decoder_create(le32(p + 12), p[9], &err);
    ck_assert_int_eq(err, OPUS_OK);
    opus_decoder_destroy(dec);

    ck_assert_int_eq(ogg_stream_pagein(&os, &ps.pg[1]), 0);
    ck_assert_int_eq(ogg_stream_packetout(&os, &op), 1);
    p = op.packet;
    size_t vlen = strlen(vendor);
    ck_assert_int_eq(op.bytes, (long)(8 + 4 + vlen + 4));
    ck_assert_int_eq(memcmp(p, "OpusTags", 8), 0);
    ck_assert_uint_eq(le32(p + 8), vlen);
    ck_assert_int_eq(memcmp(p + 12, vendor, vlen), 0);
    ck_assert_uint_eq(le32(p + 12 + vlen), 0); /* user comment count */
    ogg_stream_clear(&os);
    pages_free(&ps);
}

START_TEST(header_mono)
{
    ck_assert_int_eq(ogg_pkg_init(&pkg, &feed, SERIAL, 100), 0);
    ck_assert_int_eq(pkg.is_started, 0);
    ck_assert_int_eq(ogg_pkg_start(&pkg, 1, "Tribune test"), 0);
    ck_assert_int_eq(pkg.is_started, 1);
    check_header(1, "Tribune test");
    /* The granule position counts the pre-skip from the start (RFC 7845 section 4.2). */
    ck_assert_int_eq(pkg.granule, PRE_SKIP);
    /* No audio was given: the ring is empty. */
    ck_assert_uint_eq(feed.ring.head, 0);
    finish();
}
END_TEST

START_TEST(header_stereo)
{
    ck_assert_int_eq(ogg_pkg_init(&pkg, &feed, SERIAL, 100), 0);
    ck_assert_int_eq(ogg_pkg_start(&pkg, 2, "x"), 0);
    check_header(2, "x");
    finish();
}
END_TEST

START_TEST(opus_head_bytes)
{
    uint8_t h[19];
    ck_assert_uint_eq(opus_head_emit(h, 2, 0x1234), 19);
    ck_assert_int_eq(memcmp(h, "OpusHead", 8), 0);
    ck_assert_int_eq(h[8], 1);
    ck_assert_int_eq(h[9], 2);
    ck_assert_int_eq(h[10], 0x34);
    ck_assert_int_eq(h[11], 0x12);
    ck_assert_uint_eq(le32(h + 12), 48000);
    ck_assert_int_eq(h[16] | h[17] | h[18], 0);
    finish();
}
END_TEST

/* Packages `npkt` packets of `frames[i % nframes]` samples, then checks that the ring holds whole
 * pages (one page per chunk), valid CRCs, one serial, increasing page numbers, granule positions
 * that grow by exactly the samples given, about chunk_ms per page, and the packets unchanged and
 * decodable. */
static void package_and_check(int chunk_ms, int channels, int bitrate, const int *frames,
                              int nframes, int npkt)
{
    ck_assert_int_eq(ogg_pkg_init(&pkg, &feed, SERIAL, chunk_ms), 0);
    ck_assert_int_eq(ogg_pkg_start(&pkg, channels, "Tribune"), 0);
    struct enc en;
    enc_open(&en, channels, bitrate);
    static uint8_t sent[1024][MAX_PKT];
    static int sent_len[1024], sent_samples[1024];
    ck_assert_int_le(npkt, 1024);
    int64_t total = 0;
    for (int i = 0; i < npkt; i++) {
        sent_samples[i] = frames[i % nframes];
        sent_len[i] = enc_packet(&en, sent_samples[i], sent[i]);
        ck_assert_int_eq(ogg_pkg_packet(&pkg, sent[i], (size_t)sent_len[i], sent_samples[i]), 0);
        total += sent_samples[i];
        ck_assert_int_eq(pkg.granule, PRE_SKIP + total);
    }
    opus_encoder_destroy(en.e);

    const int64_t chunk_samples = chunk_ms * 48;
    int max_frame = 0;
    for (int i = 0; i < nframes; i++)
        if (frames[i] > max_frame) max_frame = frames[i];
    ck_assert_uint_gt(feed.ring.head, 0);
    ck_assert_uint_eq(feed.ring.tail, 0);

    ogg_stream_state os;
    ogg_stream_init(&os, SERIAL);
    struct pages hp;
    pages_parse(&hp, feed.header->data, feed.header->len);
    for (int i = 0; i < hp.n; i++) {
        ck_assert_int_eq(ogg_stream_pagein(&os, &hp.pg[i]), 0);
        ogg_packet op;
        while (ogg_stream_packetout(&os, &op) == 1) {
        }
    }
    pages_free(&hp);

    int err;
    OpusDecoder *dec = opus_decoder_create(48000, channels, &err);
    ck_assert_int_eq(err, OPUS_OK);
    static opus_int16 pcm[5760 * 2];
    int got = 0;
    long pageno = 2;
    int64_t prev_granule = PRE_SKIP;
    for (uint64_t seq = feed.ring.tail; seq < feed.ring.head; seq++) {
        struct chunk *c = ring_get(&feed.ring, seq);
        ck_assert_ptr_nonnull(c);
        ck_assert(c->is_sealed);
        struct pages ps;
        pages_parse(&ps, c->data, c->len);
        ck_assert_int_eq(ps.bad, 0);
        ck_assert_int_ge(ps.n, 1);
        ck_assert_uint_eq(pages_leftover(&ps), 0); /* whole pages, nothing else */
        int64_t chunk_start = got;
        for (int i = 0; i < ps.n; i++) {
            ogg_page *og = &ps.pg[i];
            assert_crc(og);
            ck_assert_int_eq(ogg_page_serialno(og), SERIAL);
            ck_assert_int_eq(ogg_page_pageno(og), pageno++);
            ck_assert_int_eq(!!ogg_page_bos(og), 0);
            ck_assert_int_eq(ogg_stream_pagein(&os, og), 0);
            ogg_packet op;
            int r;
            while ((r = ogg_stream_packetout(&os, &op)) != 0) {
                ck_assert_int_eq(r, 1); /* no hole in the stream */
                ck_assert_int_lt(got, npkt);
                ck_assert_int_eq(op.bytes, sent_len[got]);
                ck_assert_int_eq(memcmp(op.packet, sent[got], (size_t)op.bytes), 0);
                int n = opus_decode(dec, op.packet, (opus_int32)op.bytes, pcm, 5760, 0);
                ck_assert_int_eq(n, sent_samples[got]);
                got++;
            }
        }
        /* The last page's granule position is the end of the chunk's audio. */
        int64_t granule = ogg_page_granulepos(&ps.pg[ps.n - 1]);
        int64_t in_chunk = 0;
        for (int64_t k = chunk_start; k < got; k++)
            in_chunk += sent_samples[k];
        ck_assert_int_eq(granule - prev_granule, in_chunk);
        ck_assert_int_gt(granule, prev_granule);
        ck_assert_uint_eq(c->granule, (uint64_t)granule);
        ck_assert_uint_eq(c->duration, (uint32_t)in_chunk);
        /* About chunk_ms: at least the target, less than the target plus one packet. */
        ck_assert_int_ge(in_chunk, chunk_samples);
        ck_assert_int_lt(in_chunk, chunk_samples + max_frame);
        prev_granule = granule;
        pages_free(&ps);
    }
    /* Every packet that completed a chunk is in the ring; the rest waits for the next page. */
    int64_t pending = total - (prev_granule - PRE_SKIP);
    ck_assert_int_ge(pending, 0);
    ck_assert_int_lt(pending, chunk_samples);
    int64_t pending_pkts = npkt - got;
    int64_t s = 0;
    for (int k = got; k < npkt; k++)
        s += sent_samples[k];
    ck_assert_int_eq(s, pending);
    ck_assert_int_ge(pending_pkts, 0);
    opus_decoder_destroy(dec);
    ogg_stream_clear(&os);
    finish();
}

START_TEST(audio_pages_20ms)
{
    static const int frames[] = {960};
    /* 50 packets of 20 ms at 100 ms per chunk: exactly ten chunks. */
    package_and_check(100, 1, 48000, frames, 1, 50);
    ck_assert_uint_eq(chunks_live(), 0);
}
END_TEST

START_TEST(audio_pages_count)
{
    static const int frames[] = {960};
    ck_assert_int_eq(ogg_pkg_init(&pkg, &feed, SERIAL, 100), 0);
    ck_assert_int_eq(ogg_pkg_start(&pkg, 1, "Tribune"), 0);
    struct enc en;
    enc_open(&en, 1, 48000);
    uint8_t b[MAX_PKT];
    for (int i = 0; i < 52; i++) {
        int n = enc_packet(&en, frames[0], b);
        ck_assert_int_eq(ogg_pkg_packet(&pkg, b, (size_t)n, 960), 0);
        /* A chunk appears exactly when a page holds 100 ms (5 packets). */
        ck_assert_uint_eq(feed.ring.head, (uint64_t)(i + 1) / 5);
    }
    opus_encoder_destroy(en.e);
    ck_assert_uint_eq(feed.ring.head, 10);
    struct chunk *c = ring_get(&feed.ring, 9);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->granule, PRE_SKIP + 50 * 960);
    ck_assert_uint_eq(c->duration, 4800);
    finish();
}
END_TEST

START_TEST(audio_pages_mixed_durations)
{
    /* 10, 20, 40 and 60 ms packets: granules advance by what was given, not by a constant. */
    static const int frames[] = {480, 960, 1920, 2880, 960};
    package_and_check(100, 1, 64000, frames, 5, 200);
}
END_TEST

START_TEST(audio_pages_stereo_long_chunks)
{
    static const int frames[] = {960};
    package_and_check(250, 2, 96000, frames, 1, 300);
}
END_TEST

START_TEST(audio_pages_large_packets)
{
    /* Big packets at a long chunk: more than 255 lacing values, so more than one page per
     * chunk. Whatever the split, the chunk must hold whole valid pages in order. */
    static const int frames[] = {960};
    package_and_check(1000, 2, 510000, frames, 1, 120);
}
END_TEST

START_TEST(chunk_ms_small)
{
    /* 20 ms chunks: one packet per page. */
    static const int frames[] = {960};
    package_and_check(20, 1, 48000, frames, 1, 30);
}
END_TEST

static Suite *ogg_pkg_suite(void)
{
    Suite *s = suite_create("ogg_pkg");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, header_mono);
    tcase_add_test(tc, header_stereo);
    tcase_add_test(tc, opus_head_bytes);
    tcase_add_test(tc, audio_pages_20ms);
    tcase_add_test(tc, audio_pages_count);
    tcase_add_test(tc, audio_pages_mixed_durations);
    tcase_add_test(tc, audio_pages_stereo_long_chunks);
    tcase_add_test(tc, audio_pages_large_packets);
    tcase_add_test(tc, chunk_ms_small);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(ogg_pkg_suite());
}
