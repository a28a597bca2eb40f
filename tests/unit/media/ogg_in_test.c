/* Unit tests for media/ogg_in: streams are built here with libogg and real Opus packets from
 * the libopus encoder (48 kHz mono, 20 ms frames), then fed whole, byte by byte, or damaged. */
#include "media/ogg_in.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ogg/ogg.h>
#include <opus/opus.h>

#include "../harness.h"

enum {
    FRAME = 960, /* 20 ms at 48 kHz */
    NPKT = 5,
    MAX_PAGES = 64,
};

/* A stream under construction: bytes of the pages so far, and where each page starts. */
struct stream {
    ogg_stream_state os;
    uint8_t *buf;
    size_t len;
    size_t page_at[MAX_PAGES + 1];
    int npages;
    int64_t granule;
    long packetno;
};

/* Real Opus packets, encoded once per test process. */
static uint8_t opus_pkt[NPKT][400];
static int opus_len[NPKT];

static void encode_packets(void)
{
    int err;
    OpusEncoder *enc = opus_encoder_create(48000, 1, OPUS_APPLICATION_AUDIO, &err);
    opus_int16 pcm[FRAME];

    ck_assert_int_eq(err, OPUS_OK);
    for (int i = 0; i < NPKT; i++) {
        for (int j = 0; j < FRAME; j++)
            pcm[j] = (opus_int16)(8000 * sin((i * FRAME + j) * 2 * M_PI * 440 / 48000));
        opus_len[i] = opus_encode(enc, pcm, FRAME, opus_pkt[i], sizeof(opus_pkt[i]));
        ck_assert_int_gt(opus_len[i], 0);
    }
    opus_encoder_destroy(enc);
}

static void append(struct stream *s, const void *p, size_t n)
{
    s->buf = realloc(s->buf, s->len + n);
    ck_assert_ptr_nonnull(s->buf);
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static void flush_pages(struct stream *s)
{
    ogg_page og;

    while (ogg_stream_flush(&s->os, &og)) {
        ck_assert_int_lt(s->npages, MAX_PAGES);
        s->page_at[s->npages++] = s->len;
        append(s, og.header, (size_t)og.header_len);
        append(s, og.body, (size_t)og.body_len);
    }
    s->page_at[s->npages] = s->len;
}

/* Adds one packet and flushes it onto its own page(s). */
static void put(struct stream *s, const void *p, size_t n, int eos)
{
    ogg_packet op = {
        .packet = (unsigned char *)p,
        .bytes = (long)n,
        .b_o_s = s->packetno == 0,
        .e_o_s = eos,
        .granulepos = s->granule,
        .packetno = s->packetno++,
    };

    ck_assert_int_eq(ogg_stream_packetin(&s->os, &op), 0);
    flush_pages(s);
}

static void begin(struct stream *s, int serial)
{
    ogg_stream_init(&s->os, serial);
    s->granule = 0;
    s->packetno = 0;
}

static void end(struct stream *s)
{
    ogg_stream_clear(&s->os);
}

static void stream_free(struct stream *s)
{
    free(s->buf);
    memset(s, 0, sizeof(*s));
}

static size_t make_head(uint8_t *p, uint8_t version, uint8_t channels, uint8_t family)
{
    memcpy(p, "OpusHead", 8);
    p[8] = version;
    p[9] = channels;
    p[10] = 312 & 0xff, p[11] = 312 >> 8;                         /* pre-skip */
    p[12] = 0x80, p[13] = 0xbb, p[14] = 0, p[15] = 0;             /* 48000 */
    p[16] = (uint8_t)(-256 & 0xff), p[17] = (uint8_t)(-256 >> 8); /* gain -1 dB */
    p[18] = family;
    return 19;
}

static size_t make_tags(uint8_t *p, uint32_t vendor_len)
{
    memcpy(p, "OpusTags", 8);
    memcpy(p + 8, &vendor_len, 4); /* little-endian host assumed, as Check's CI targets are */
    memcpy(p + 12, "test", 4);
    memset(p + 16, 0, 4);
    return 20;
}

static void put_headers(struct stream *s)
{
    uint8_t h[32], t[32];

    put(s, h, make_head(h, 1, 1, 0), 0);
    put(s, t, make_tags(t, 4), 0);
}

/* Headers plus every test packet; the last carries EOS when `eos`. */
static void put_all(struct stream *s, int serial, int eos)
{
    begin(s, serial);
    put_headers(s);
    for (int i = 0; i < NPKT; i++) {
        s->granule += FRAME;
        put(s, opus_pkt[i], (size_t)opus_len[i], eos && i == NPKT - 1);
    }
    end(s);
}

/* Feeds `n` bytes in pieces of `step` and collects packets into a copy; the result of the
 * last ogg_in_next call (0 or an error) is returned, *count counts packets. */
static int run(struct ogg_in *in, const uint8_t *p, size_t n, size_t step, int *count,
               uint32_t *serials)
{
    struct ogg_in_packet pkt;
    int rc = 0;

    *count = 0;
    for (size_t off = 0; off < n; off += step) {
        size_t k = n - off < step ? n - off : step;
        ck_assert_int_eq(ogg_in_feed(in, p + off, k), 0);
        while ((rc = ogg_in_next(in, &pkt)) == 1) {
            int i = *count % NPKT;
            ck_assert_int_eq(pkt.samples, FRAME);
            ck_assert_uint_eq(pkt.len, (size_t)opus_len[i]);
            ck_assert_mem_eq(pkt.data, opus_pkt[i], pkt.len);
            if (serials) serials[*count] = pkt.serial;
            (*count)++;
        }
        if (rc < 0) return rc;
    }
    return rc;
}

/* Runs a whole buffer through a fresh instance; returns the final ogg_in_next result. */
static int run_fresh(const uint8_t *p, size_t n, int *count, char *why, size_t why_len)
{
    struct ogg_in *in = ogg_in_new();
    int rc = run(in, p, n, n, count, NULL);

    if (why) snprintf(why, why_len, "%s", ogg_in_error(in));
    ogg_in_free(in);
    return rc;
}

static void setup(void)
{
    encode_packets();
}

START_TEST(valid_stream)
{
    struct stream s = {0};
    struct ogg_in *in = ogg_in_new();
    const struct opus_head *h;
    uint32_t serials[NPKT];
    int count;

    put_all(&s, 1234, 1);
    ck_assert_ptr_null(ogg_in_head(in));
    ck_assert_int_eq(run(in, s.buf, s.len, s.len, &count, serials), 0);
    ck_assert_int_eq(count, NPKT);
    ck_assert_uint_eq(serials[NPKT - 1], 1234);
    ck_assert(ogg_in_is_ready(in));
    h = ogg_in_head(in);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(h->channels, 1);
    ck_assert_int_eq(h->pre_skip, 312);
    ck_assert_uint_eq(h->input_rate, 48000);
    ck_assert_int_eq(h->output_gain, -256);
    ck_assert_uint_eq(ogg_in_pages(in), (uint64_t)s.npages);
    ck_assert_uint_eq(ogg_in_skipped_bytes(in), 0);
    ck_assert_str_eq(ogg_in_error(in), "");
    ogg_in_free(in);
    stream_free(&s);
}
END_TEST

START_TEST(byte_at_a_time)
{
    struct stream s = {0};
    struct ogg_in *in = ogg_in_new();
    int count;

    put_all(&s, 7, 1);
    ck_assert_int_eq(run(in, s.buf, s.len, 1, &count, NULL), 0);
    ck_assert_int_eq(count, NPKT);
    ck_assert_uint_eq(ogg_in_pages(in), (uint64_t)s.npages);
    ogg_in_free(in);
    stream_free(&s);
}
END_TEST

START_TEST(garbage_between_pages)
{
    static const char junk[] = "junk bytes, no capture pattern here";
    struct stream s = {0}, g = {0};
    struct ogg_in *in = ogg_in_new();
    int count;

    put_all(&s, 7, 0);
    /* Junk at the very end would wait for more bytes (a header is 27), so only between. */
    for (int i = 0; i < s.npages; i++) {
        if (i > 0) append(&g, junk, sizeof(junk) - 1);
        append(&g, s.buf + s.page_at[i], s.page_at[i + 1] - s.page_at[i]);
    }
    ck_assert_int_eq(run(in, g.buf, g.len, 3, &count, NULL), 0);
    ck_assert_int_eq(count, NPKT);
    ck_assert_uint_eq(ogg_in_skipped_bytes(in), (uint64_t)(s.npages - 1) * (sizeof(junk) - 1));
    ogg_in_free(in);
    stream_free(&s);
    stream_free(&g);
}
END_TEST

START_TEST(corrupt_crc_page_skipped)
{
    struct stream s = {0};
    struct ogg_in *in = ogg_in_new();
    struct ogg_in_packet pkt;
    int count = 0, rc;
    size_t page_len;

    put_all(&s, 7, 0);
    /* Pages: OpusHead, OpusTags, then one per audio packet. Damage audio packet 2. */
    page_len = s.page_at[5] - s.page_at[4];
    s.buf[s.page_at[5] - 1] ^= 0x55;
    ck_assert_int_eq(ogg_in_feed(in, s.buf, s.len), 0);
    while ((rc = ogg_in_next(in, &pkt)) == 1) {
        int want = count >= 2 ? count + 1 : count;
        ck_assert_mem_eq(pkt.data, opus_pkt[want], pkt.len);
        count++;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(count, NPKT - 1);
    ck_assert_uint_eq(ogg_in_skipped_bytes(in), page_len);
    ck_assert_uint_eq(ogg_in_pages(in), (uint64_t)s.npages - 1);
    ogg_in_free(in);
    stream_free(&s);
}
END_TEST

START_TEST(not_ogg)
{
    static const uint8_t mp3[] = "ID3\x04\x00\x00\x00\x00\x00\x00 not ogg at all";
    struct ogg_in *in = ogg_in_new();
    struct ogg_in_packet pkt;

    ck_assert_int_eq(ogg_in_feed(in, mp3, 2), 0);
    ck_assert_int_eq(ogg_in_next(in, &pkt), 0); /* 2 bytes do not decide yet */
    ck_assert_int_eq(ogg_in_feed(in, mp3 + 2, sizeof(mp3) - 2), 0);
    ck_assert_int_eq(ogg_in_next(in, &pkt), -EPROTONOSUPPORT);
    ck_assert_ptr_nonnull(strstr(ogg_in_error(in), "not an Ogg stream"));
    ck_assert_int_eq(ogg_in_next(in, &pkt), -EPROTONOSUPPORT); /* sticky */
    ogg_in_free(in);
}
END_TEST

/* A stream whose first packet is `first` fails with -EMEDIUMTYPE naming `name`. */
static void check_foreign(const char *first, size_t len, const char *name)
{
    struct stream s = {0};
    char why[200];
    int count;

    begin(&s, 9);
    put(&s, first, len, 0);
    end(&s);
    ck_assert_int_eq(run_fresh(s.buf, s.len, &count, why, sizeof(why)), -EMEDIUMTYPE);
    ck_assert_msg(strstr(why, name), "error '%s' lacks '%s'", why, name);
    stream_free(&s);
}

START_TEST(foreign_codecs)
{
    check_foreign("\x01vorbis\0\0\0\0\x01\x44\xac\0\0", 16,
                  "Ogg/Vorbis is not supported: publish Ogg/Opus");
    check_foreign("\x7f"
                  "FLAC\x01\x00\x00\x01",
                  9, "FLAC");
    check_foreign("Speex   1.2", 11, "Speex");
    check_foreign("something else", 14, "first packet is not OpusHead");
    check_foreign("", 0, "first packet is not OpusHead");
}
END_TEST

/* A stream with the given header packets fails with `want`. */
static void check_headers(const uint8_t *head, size_t head_len, const uint8_t *tags,
                          size_t tags_len, int want)
{
    struct stream s = {0};
    char why[200];
    int count;

    begin(&s, 9);
    put(&s, head, head_len, 0);
    put(&s, tags, tags_len, 0);
    put(&s, opus_pkt[0], (size_t)opus_len[0], 0);
    end(&s);
    ck_assert_int_eq(run_fresh(s.buf, s.len, &count, why, sizeof(why)), want);
    ck_assert_int_eq(count, 0);
    ck_assert_str_ne(why, "");
    stream_free(&s);
}

START_TEST(bad_opus_head)
{
    uint8_t h[32], t[32];
    size_t tl = make_tags(t, 4);

    check_headers(h, make_head(h, 16, 1, 0), t, tl, -EBADMSG); /* version 1.0 */
    check_headers(h, make_head(h, 1, 0, 0), t, tl, -EBADMSG);  /* no channels */
    check_headers(h, make_head(h, 1, 3, 0), t, tl, -EBADMSG);  /* 3 channels, family 0 */
    check_headers(h, 10, t, tl, -EBADMSG);                     /* short */
}
END_TEST

START_TEST(bad_opus_tags)
{
    uint8_t h[32], t[32];
    size_t hl = make_head(h, 1, 1, 0);

    check_headers(h, hl, t, make_tags(t, 0xffffffffu), -EBADMSG);
    check_headers(h, hl, t, 12, -EBADMSG);
    check_headers(h, hl, h, hl, -EBADMSG); /* OpusHead twice */
}
END_TEST

START_TEST(interleaved_stream)
{
    struct stream a = {0}, b = {0};
    char why[200];
    int count;

    /* A's headers, then B's BOS page before A ended. */
    begin(&a, 1);
    put_headers(&a);
    end(&a);
    begin(&b, 2);
    put_headers(&b);
    end(&b);
    append(&a, b.buf, b.page_at[1]);
    ck_assert_int_eq(run_fresh(a.buf, a.len, &count, why, sizeof(why)), -EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "second logical stream"));
    stream_free(&a);
    stream_free(&b);
}
END_TEST

START_TEST(foreign_serial_page)
{
    struct stream a = {0}, b = {0};
    int count;

    /* A complete stream A, then a non-BOS page of B in the middle of A. */
    put_all(&a, 1, 0);
    put_all(&b, 2, 0);
    append(&a, b.buf + b.page_at[3], b.page_at[4] - b.page_at[3]);
    ck_assert_int_eq(run_fresh(a.buf, a.len, &count, NULL, 0), -EPROTO);
    ck_assert_int_eq(count, NPKT);
    stream_free(&a);
    stream_free(&b);
}
END_TEST

START_TEST(first_page_not_bos)
{
    struct stream s = {0};
    int count;

    put_all(&s, 1, 0);
    ck_assert_int_eq(run_fresh(s.buf + s.page_at[2], s.len - s.page_at[2], &count, NULL, 0),
                     -EPROTO);
    stream_free(&s);
}
END_TEST

START_TEST(chained_stream)
{
    struct stream a = {0}, b = {0};
    struct ogg_in *in = ogg_in_new();
    uint32_t serials[2 * NPKT];
    int count;

    put_all(&a, 1, 1);
    put_all(&b, 2, 1);
    append(&a, b.buf, b.len);
    ck_assert_int_eq(run(in, a.buf, a.len, 5, &count, serials), 0);
    ck_assert_int_eq(count, 2 * NPKT);
    ck_assert_uint_eq(serials[0], 1);
    ck_assert_uint_eq(serials[NPKT - 1], 1);
    ck_assert_uint_eq(serials[NPKT], 2);
    ck_assert_uint_eq(serials[2 * NPKT - 1], 2);
    ck_assert(ogg_in_is_ready(in));
    ogg_in_free(in);
    stream_free(&a);
    stream_free(&b);
}
END_TEST

START_TEST(page_after_eos)
{
    struct stream a = {0}, copy = {0};
    int count;

    put_all(&a, 1, 1);
    append(&copy, a.buf + a.page_at[3], a.page_at[4] - a.page_at[3]);
    append(&a, copy.buf, copy.len);
    ck_assert_int_eq(run_fresh(a.buf, a.len, &count, NULL, 0), -EPROTO);
    ck_assert_int_eq(count, NPKT);
    stream_free(&a);
    stream_free(&copy);
}
END_TEST

/* Headers, one good packet, then `bad`: one packet out, then `want`. */
static void check_audio(const uint8_t *bad, size_t len, int want)
{
    struct stream s = {0};
    char why[200];
    int count;

    begin(&s, 3);
    put_headers(&s);
    put(&s, opus_pkt[0], (size_t)opus_len[0], 0);
    put(&s, bad, len, 0);
    end(&s);
    ck_assert_int_eq(run_fresh(s.buf, s.len, &count, why, sizeof(why)), want);
    ck_assert_int_eq(count, 1);
    ck_assert_str_ne(why, "");
    stream_free(&s);
}

START_TEST(invalid_opus_packet)
{
    static const uint8_t code3_no_frames[] = {0x03, 0x00};
    static const uint8_t code3_too_long[] = {0x03, 13}; /* 13 x 10 ms > 120 ms */
    static const uint8_t code1_odd[] = {0x01, 1, 2, 3}; /* two equal frames of an odd total */

    check_audio(code3_no_frames, sizeof(code3_no_frames), -EBADMSG);
    check_audio(code3_too_long, sizeof(code3_too_long), -EBADMSG);
    check_audio(code1_odd, sizeof(code1_odd), -EBADMSG);
    check_audio(code3_no_frames, 0, -EBADMSG);
}
END_TEST

START_TEST(oversized_packet)
{
    uint8_t *big = calloc(1, 200000);

    big[0] = 0xf8; /* a plausible TOC: the size is refused before parsing */
    check_audio(big, OGG_IN_MAX_PACKET + 1, -EMSGSIZE);
    check_audio(big, 200000, -EMSGSIZE); /* spans pages: refused after the first */
    free(big);
}
END_TEST

START_TEST(buffer_bound)
{
    enum { N = OGG_IN_MAX_BUFFER / 2 + 1 };
    uint8_t *junk = calloc(1, N + 4); /* "OggS", then zeros: a header with a bad CRC */
    struct ogg_in *in = ogg_in_new();
    struct ogg_in_packet pkt;

    memcpy(junk, "OggS", 4);
    /* Drained between feeds, junk never accumulates. */
    ck_assert_int_eq(ogg_in_feed(in, junk, N), 0);
    ck_assert_int_eq(ogg_in_next(in, &pkt), 0);
    ck_assert_uint_eq(ogg_in_skipped_bytes(in), N);
    ck_assert_int_eq(ogg_in_feed(in, junk + 4, N), 0);
    ck_assert_int_eq(ogg_in_next(in, &pkt), 0);
    ck_assert_uint_eq(ogg_in_skipped_bytes(in), 2 * N);
    /* Not drained: the second feed crosses the bound. */
    ck_assert_int_eq(ogg_in_feed(in, junk + 4, N), 0);
    ck_assert_int_eq(ogg_in_feed(in, junk + 4, N), -ENOBUFS);
    ck_assert_int_eq(ogg_in_next(in, &pkt), -ENOBUFS);
    ck_assert_int_eq(ogg_in_feed(in, junk, 1), -ENOBUFS);
    ck_assert_str_ne(ogg_in_error(in), "");
    ogg_in_free(in);
    free(junk);
}
END_TEST

START_TEST(head_parse)
{
    uint8_t h[64];
    struct opus_head out;
    size_t n = make_head(h, 1, 2, 0);

    ck_assert_int_eq(opus_head_parse(h, n, &out), 0);
    ck_assert_int_eq(out.version, 1);
    ck_assert_int_eq(out.channels, 2);
    ck_assert_int_eq(out.pre_skip, 312);
    ck_assert_uint_eq(out.input_rate, 48000);
    ck_assert_int_eq(out.output_gain, -256);
    ck_assert_int_eq(out.mapping_family, 0);
    ck_assert_int_eq(opus_head_parse(h, n - 1, &out), -EINVAL);
    h[8] = 15;
    ck_assert_int_eq(opus_head_parse(h, n, &out), 0);
    h[8] = 0x10;
    ck_assert_int_eq(opus_head_parse(h, n, &out), -EINVAL);
    h[8] = 1, h[0] = 'o';
    ck_assert_int_eq(opus_head_parse(h, n, &out), -EINVAL);
    ck_assert_int_eq(opus_head_parse(h, 0, &out), -EINVAL);
}
END_TEST

START_TEST(head_parse_family1)
{
    /* 5.1 surround: 4 streams, 2 coupled, mapping 0 4 1 2 3 5. */
    static const uint8_t map[] = {4, 2, 0, 4, 1, 2, 3, 5};
    uint8_t h[64];
    struct opus_head out;
    size_t n = make_head(h, 1, 6, 1);

    memcpy(h + n, map, sizeof(map));
    n += sizeof(map);
    ck_assert_int_eq(opus_head_parse(h, n, &out), 0);
    ck_assert_int_eq(out.channels, 6);
    ck_assert_int_eq(out.mapping_family, 1);
    ck_assert_int_eq(opus_head_parse(h, n - 1, &out), -EINVAL); /* truncated table */
    h[n - 1] = 6;                                               /* no stream 6 */
    ck_assert_int_eq(opus_head_parse(h, n, &out), -EINVAL);
    h[n - 1] = 255; /* silence is allowed */
    ck_assert_int_eq(opus_head_parse(h, n, &out), 0);
    h[20] = 5; /* coupled > streams */
    ck_assert_int_eq(opus_head_parse(h, n, &out), -EINVAL);
    h[20] = 2, h[19] = 0;
    ck_assert_int_eq(opus_head_parse(h, n, &out), -EINVAL);
    h[19] = 4, h[9] = 9; /* 9 channels */
    ck_assert_int_eq(opus_head_parse(h, n + 3, &out), -EINVAL);
    h[9] = 6, h[18] = 2; /* unknown family */
    ck_assert_int_eq(opus_head_parse(h, n, &out), -EINVAL);
}
END_TEST

START_TEST(tags_check)
{
    uint8_t t[64];
    size_t n = make_tags(t, 4);
    uint32_t v;

    ck_assert_int_eq(opus_tags_check(t, n), 0);
    ck_assert_int_eq(opus_tags_check(t, n - 1), -EINVAL);
    /* One comment "A=b". */
    v = 1, memcpy(t + 16, &v, 4);
    v = 3, memcpy(t + 20, &v, 4);
    memcpy(t + 24, "A=b", 3);
    ck_assert_int_eq(opus_tags_check(t, 27), 0);
    ck_assert_int_eq(opus_tags_check(t, 26), -EINVAL);
    v = 0xfffffffdu, memcpy(t + 20, &v, 4); /* comment length overflow */
    ck_assert_int_eq(opus_tags_check(t, 27), -EINVAL);
    v = 0xffffffffu, memcpy(t + 16, &v, 4); /* comment count overflow */
    ck_assert_int_eq(opus_tags_check(t, 27), -EINVAL);
    n = make_tags(t, 5); /* vendor runs over the count */
    ck_assert_int_eq(opus_tags_check(t, n), -EINVAL);
    n = make_tags(t, 4);
    t[4] = 't';
    ck_assert_int_eq(opus_tags_check(t, n), -EINVAL);
    ck_assert_int_eq(opus_tags_check(t, 0), -EINVAL);
}
END_TEST

static Suite *ogg_in_suite(void)
{
    Suite *s = suite_create("ogg_in");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, valid_stream);
    tcase_add_test(tc, byte_at_a_time);
    tcase_add_test(tc, garbage_between_pages);
    tcase_add_test(tc, corrupt_crc_page_skipped);
    tcase_add_test(tc, not_ogg);
    tcase_add_test(tc, foreign_codecs);
    tcase_add_test(tc, bad_opus_head);
    tcase_add_test(tc, bad_opus_tags);
    tcase_add_test(tc, interleaved_stream);
    tcase_add_test(tc, foreign_serial_page);
    tcase_add_test(tc, first_page_not_bos);
    tcase_add_test(tc, chained_stream);
    tcase_add_test(tc, page_after_eos);
    tcase_add_test(tc, invalid_opus_packet);
    tcase_add_test(tc, oversized_packet);
    tcase_add_test(tc, buffer_bound);
    tcase_add_test(tc, head_parse);
    tcase_add_test(tc, head_parse_family1);
    tcase_add_test(tc, tags_check);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(ogg_in_suite());
}
