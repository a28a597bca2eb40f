/* Unit tests for pkg/hls_pkg.c: packets in -> parts, segments and the playlist's fields (media
 * sequence, target duration, program date-time, durations summing to the audio), the window
 * sliding, segment bytes equal to their fragments concatenated, file names, and a real ffprobe
 * and ffmpeg reading the init segment and segments written to a temporary directory. */
#include "pkg/hls_pkg.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <opus/opus.h>

#include "../harness.h"
#include "pkg/fmp4.h"

enum { FRAME = 960 };

static const int64_t WALL = 1700000000000; /* 2023-11-14T22:13:20.000Z */

/* A fake packet whose bytes say which packet it is. */
static void feed(struct hls_pkg *p, unsigned from, unsigned count)
{
    for (unsigned i = from; i < from + count; i++) {
        uint8_t pkt[8];
        memset(pkt, (int)(i & 0xff), sizeof(pkt));
        pkt[0] = (uint8_t)(i >> 8);
        ck_assert_int_eq(hls_pkg_packet(p, pkt, 3 + i % 5, FRAME), 0);
    }
}

static unsigned count_lines(const char *text, const char *prefix)
{
    unsigned n = 0;
    for (const char *s = text; (s = strstr(s, prefix)); s++)
        n++;
    return n;
}

START_TEST(first_segment)
{
    struct hls_pkg p;
    hls_pkg_init(&p, 0, 0);
    ck_assert_int_eq(hls_pkg_packet(&p, (const uint8_t *)"x", 1, FRAME), -EINVAL);
    ck_assert_int_eq(hls_pkg_start(&p, 1, 312, WALL), 0);
    ck_assert_uint_gt(p.init_len, 0);
    feed(&p, 0, 99);
    ck_assert_ptr_null(p.playlist); /* 1.98 s: nothing complete yet */
    ck_assert_ptr_null(hls_pkg_segment(&p, 0));
    feed(&p, 99, 1);
    ck_assert_ptr_nonnull(p.playlist);
    const char *pl = p.playlist;
    ck_assert_uint_eq(strlen(pl), p.playlist_len);
    ck_assert_ptr_eq(strstr(pl, "#EXTM3U\n"), pl);
    ck_assert_ptr_nonnull(strstr(pl, "#EXT-X-TARGETDURATION:2\n"));
    ck_assert_ptr_nonnull(strstr(pl, "#EXT-X-MEDIA-SEQUENCE:0\n"));
    char want[128];
    snprintf(want, sizeof(want), "#EXT-X-MAP:URI=\"init-%s.mp4\"\n", p.run);
    ck_assert_ptr_nonnull(strstr(pl, want));
    ck_assert_ptr_nonnull(strstr(pl, "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n"));
    snprintf(want, sizeof(want), "#EXTINF:2.000,\nseg-%s-0.m4s\n", p.run);
    ck_assert_ptr_nonnull(strstr(pl, want));
    ck_assert_ptr_null(strstr(pl, "ENDLIST"));

    const struct hls_segment *s = hls_pkg_segment(&p, 0);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->duration, 100 * FRAME);
    ck_assert_uint_eq(s->nparts, 10);
    /* The segment is its parts' fragments, back to back, each a moof+mdat numbered 1, 2, ...
     * with the very bytes fmp4 makes of the same packets. */
    size_t off = 0;
    unsigned pkt = 0;
    for (unsigned i = 0; i < s->nparts; i++) {
        ck_assert_uint_eq(s->parts[i].off, off);
        ck_assert_uint_eq(s->parts[i].duration, 10 * FRAME);
        uint8_t bytes[10][8];
        struct fmp4_sample smp[10];
        size_t payload = 0;
        for (unsigned k = 0; k < 10; k++, pkt++) {
            memset(bytes[k], (int)(pkt & 0xff), 8);
            bytes[k][0] = (uint8_t)(pkt >> 8);
            smp[k] = (struct fmp4_sample){bytes[k], 3 + pkt % 5, FRAME};
            payload += smp[k].len;
        }
        uint8_t frag[1024];
        size_t n = fmp4_fragment_emit(frag, sizeof(frag), i + 1, (uint64_t)i * 10 * FRAME, smp, 10);
        ck_assert_uint_eq(n, fmp4_fragment_size(10, payload));
        ck_assert_uint_eq(s->parts[i].len, n);
        ck_assert_mem_eq(s->data + off, frag, n);
        off += n;
    }
    ck_assert_uint_eq(off, s->len);
    hls_pkg_fini(&p);
}
END_TEST

START_TEST(window_slides)
{
    struct hls_pkg p;
    hls_pkg_init(&p, 0, 0);
    ck_assert_int_eq(hls_pkg_start(&p, 2, 312, WALL), 0);
    feed(&p, 0, 20 * 100 + 37); /* 20 segments and 0.74 s */
    ck_assert_uint_eq(p.next_msn, 20);
    ck_assert_ptr_nonnull(strstr(p.playlist, "#EXT-X-MEDIA-SEQUENCE:14\n"));
    ck_assert_uint_eq(count_lines(p.playlist, "#EXTINF:2.000,"), HLS_LISTED);
    ck_assert_uint_eq(count_lines(p.playlist, "#EXT-X-PROGRAM-DATE-TIME:"), HLS_LISTED);
    /* segment 14 starts 28 s after the start; segment 19 38 s */
    ck_assert_ptr_nonnull(strstr(p.playlist, "DATE-TIME:2023-11-14T22:13:48.000Z\n"));
    ck_assert_ptr_nonnull(strstr(p.playlist, "DATE-TIME:2023-11-14T22:13:58.000Z\n"));
    char name[64];
    hls_pkg_segment_name(&p, 13, name, sizeof(name));
    ck_assert_ptr_null(strstr(p.playlist, name));
    hls_pkg_segment_name(&p, 19, name, sizeof(name));
    ck_assert_ptr_nonnull(strstr(p.playlist, name));
    /* served: the 12 newest complete segments, not the one being built */
    ck_assert_ptr_null(hls_pkg_segment(&p, 7));
    for (uint64_t m = 8; m < 20; m++) {
        const struct hls_segment *s = hls_pkg_segment(&p, m);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(s->msn, m);
        ck_assert_uint_eq(s->start, m * 100 * FRAME);
        ck_assert_int_eq(s->pdt_ms, WALL + (int64_t)m * 2000);
    }
    ck_assert_ptr_null(hls_pkg_segment(&p, 20));
    ck_assert_ptr_null(hls_pkg_segment(&p, UINT64_MAX));
    /* the end: the 0.74 s buffered becomes a short last segment (its last 0.14 s a short
     * part), then EXT-X-ENDLIST; nothing more is taken */
    hls_pkg_end(&p);
    ck_assert_uint_eq(p.next_msn, 21);
    ck_assert_ptr_nonnull(strstr(p.playlist, "#EXTINF:0.740,\n"));
    ck_assert_ptr_nonnull(strstr(p.playlist, "#EXT-X-ENDLIST\n"));
    ck_assert_ptr_nonnull(strstr(p.playlist, "#EXT-X-MEDIA-SEQUENCE:15\n"));
    const struct hls_segment *last = hls_pkg_segment(&p, 20);
    ck_assert_ptr_nonnull(last);
    ck_assert_uint_eq(last->nparts, 4);
    ck_assert_uint_eq(last->parts[3].duration, 7 * FRAME);
    /* every sample is in exactly one segment: the durations sum to the audio */
    uint64_t sum = 0;
    for (uint64_t m = 9; m <= 20; m++)
        sum += hls_pkg_segment(&p, m)->duration;
    ck_assert_uint_eq(sum + 9 * 100 * FRAME, (uint64_t)(20 * 100 + 37) * FRAME);
    ck_assert_uint_eq(p.samples, (uint64_t)(20 * 100 + 37) * FRAME);
    ck_assert_int_eq(hls_pkg_packet(&p, (const uint8_t *)"x", 1, FRAME), -EINVAL);
    hls_pkg_fini(&p);
}
END_TEST

START_TEST(odd_packets)
{
    /* 60 ms packets: parts of 240 ms (the first packet over 200 ms closes a part), segments
     * closed at the first part boundary past 2 s; the target duration covers the longest. */
    struct hls_pkg p;
    hls_pkg_init(&p, 0, 0);
    ck_assert_int_eq(hls_pkg_start(&p, 1, 312, WALL), 0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(hls_pkg_packet(&p, (const uint8_t *)"abc", 3, 3 * FRAME), 0);
    const struct hls_segment *s = hls_pkg_segment(&p, 0);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->duration, 9 * 4 * 3 * FRAME); /* 9 parts of 240 ms: 2.16 s */
    ck_assert_ptr_nonnull(strstr(p.playlist, "#EXTINF:2.160,\n"));
    ck_assert_ptr_nonnull(strstr(p.playlist, "#EXT-X-TARGETDURATION:3\n"));
    ck_assert_int_eq(hls_pkg_packet(&p, (const uint8_t *)"abc", 0, FRAME), -EINVAL);
    ck_assert_int_eq(hls_pkg_packet(&p, (const uint8_t *)"abc", 3, 0), -EINVAL);
    hls_pkg_fini(&p);
}
END_TEST

START_TEST(names)
{
    struct hls_pkg p;
    hls_pkg_init(&p, 0, 0);
    uint64_t msn = 0;
    ck_assert_int_eq(hls_pkg_parse_name(&p, "init.mp4", 8, &msn), 0); /* not started */
    ck_assert_int_eq(hls_pkg_start(&p, 1, 312, WALL), 0);
    ck_assert_str_eq(p.run, "18bcfe56800");
    struct {
        const char *name;
        int kind;
        uint64_t msn;
    } cases[] = {
        {"init.mp4", 1, 0},
        {"init-18bcfe56800.mp4", 1, 0},
        {"seg-18bcfe56800-0.m4s", 2, 0},
        {"seg-18bcfe56800-123.m4s", 2, 123},
        {"seg-18bcfe56800-18446744073709551615.m4s", 0, 0}, /* 20 digits */
        {"seg-18bcfe56800-1234567890123456789.m4s", 2, 1234567890123456789ull},
        {"seg-18bcfe56800-01.m4s", 0, 0},
        {"seg-18bcfe56800-.m4s", 0, 0},
        {"seg-18bcfe56800-1x.m4s", 0, 0},
        {"seg-18bcfe56801-1.m4s", 0, 0}, /* another run */
        {"seg-18bcfe56800-1.mp4", 0, 0},
        {"init-18bcfe56801.mp4", 0, 0},
        {"..", 0, 0},
        {"..%2f..%2fetc%2fpasswd", 0, 0},
        {"seg-18bcfe56800-1.m4s%00", 0, 0},
        {"live.m3u8", 0, 0},
        {"", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msn = 77;
        int k = hls_pkg_parse_name(&p, cases[i].name, strlen(cases[i].name), &msn);
        ck_assert_msg(k == cases[i].kind, "%s: %d", cases[i].name, k);
        if (k == 2) ck_assert_uint_eq(msn, cases[i].msn);
    }
    char name[64];
    int n = hls_pkg_segment_name(&p, 42, name, sizeof(name));
    ck_assert_int_eq(hls_pkg_parse_name(&p, name, (size_t)n, &msn), 2);
    ck_assert_uint_eq(msn, 42);
    hls_pkg_fini(&p);
}
END_TEST

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Goertzel power of `fr` Hz over x[from, to). */
static double tone_power(const int16_t *x, size_t from, size_t to, double fr)
{
    double c = 2 * cos(2 * M_PI * fr / 48000), s1 = 0, s2 = 0;
    for (size_t i = from; i < to; i++) {
        double s0 = x[i] + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    return s1 * s1 + s2 * s2 - c * s1 * s2;
}

START_TEST(ffmpeg_plays_it)
{
    enum { SECONDS = 6 };
    char dir[] = "/tmp/hls_pkg_test.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    int err;
    OpusEncoder *enc = opus_encoder_create(48000, 1, OPUS_APPLICATION_AUDIO, &err);
    ck_assert_int_eq(err, OPUS_OK);
    struct hls_pkg p;
    hls_pkg_init(&p, 0, 0);
    ck_assert_int_eq(hls_pkg_start(&p, 1, 312, WALL), 0);
    long t = 0;
    for (int f = 0; f < SECONDS * 50; f++) {
        opus_int16 pcm[FRAME];
        uint8_t pkt[1500];
        for (int i = 0; i < FRAME; i++, t++)
            pcm[i] = (opus_int16)(9000 * sin(t * 2 * M_PI * 440 / 48000.0));
        int len = opus_encode(enc, pcm, FRAME, pkt, sizeof(pkt));
        ck_assert_int_gt(len, 0);
        ck_assert_int_eq(hls_pkg_packet(&p, pkt, (size_t)len, FRAME), 0);
    }
    opus_encoder_destroy(enc);
    hls_pkg_end(&p);
    ck_assert_uint_eq(p.next_msn, SECONDS / 2);
    char name[64];
    snprintf(name, sizeof(name), "init-%s.mp4", p.run);
    write_file(dir, name, p.init, p.init_len);
    for (uint64_t m = 0; m < p.next_msn; m++) {
        const struct hls_segment *s = hls_pkg_segment(&p, m);
        hls_pkg_segment_name(&p, m, name, sizeof(name));
        write_file(dir, name, s->data, s->len);
    }
    write_file(dir, "live.m3u8", p.playlist, p.playlist_len);
    hls_pkg_fini(&p);

    char cmd[512];
    size_t len;
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -show_entries stream=codec_name,sample_rate,channels "
             "-of default=nw=1 %s/live.m3u8",
             dir);
    char *probe = run_capture(cmd, &len);
    ck_assert_msg(strstr(probe, "codec_name=opus") && strstr(probe, "sample_rate=48000") &&
                      strstr(probe, "channels=1"),
                  "ffprobe: %s", probe);
    free(probe);
    snprintf(cmd, sizeof(cmd), "ffmpeg -v error -i %s/live.m3u8 -f s16le -ac 1 -ar 48000 -", dir);
    char *pcm = run_capture(cmd, &len);
    size_t samples = len / 2;
    ck_assert_msg(samples + 2 * FRAME >= SECONDS * 48000u && samples <= SECONDS * 48000u + FRAME,
                  "decoded %zu samples", samples);
    const int16_t *x = (const int16_t *)pcm;
    /* the tone in every second, segment boundaries included */
    for (size_t sec = 0; sec + 1 < SECONDS; sec++) {
        size_t from = sec * 48000 + 12000, to = from + 48000;
        double p440 = tone_power(x, from, to, 440), p1000 = tone_power(x, from, to, 1000);
        ck_assert_msg(p440 > 1000 * p1000, "second %zu: 440 Hz %.3g vs 1 kHz %.3g", sec, p440,
                      p1000);
    }
    free(pcm);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *hls_pkg_suite(void)
{
    Suite *s = suite_create("hls_pkg");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, first_segment);
    tcase_add_test(tc, window_slides);
    tcase_add_test(tc, odd_packets);
    tcase_add_test(tc, names);
    tcase_add_test(tc, ffmpeg_plays_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(hls_pkg_suite());
}
