/* Unit tests for pkg/fmp4.c: the box layout is walked and checked field by field, and a file made
 * of the init segment and fragments of real libopus packets (a 440 Hz sine) is read by the real
 * ffprobe and ffmpeg: codec, rate, channels, duration, and the decoded tone. */
#include "pkg/fmp4.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <opus/opus.h>

#include "../harness.h"

enum { MAX_PKT = 1500, FRAMES = 250, PER_FRAGMENT = 100 };

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Finds box `path` ("moov/trak/mdia/...") in [p, p+len): its payload and length. Containers
 * listed in `containers` are entered after their header (8 bytes); stsd after 16 (full box and
 * entry count) and the Opus entry after 36 (AudioSampleEntry's fields). */
static const uint8_t *find_box(const uint8_t *p, size_t len, const char *path, size_t *out_len)
{
    char name[5] = {0};
    memcpy(name, path, 4);
    size_t off = 0;
    while (off + 8 <= len) {
        uint32_t size = be32(p + off);
        ck_assert_uint_ge(size, 8);
        ck_assert_uint_le(off + size, len);
        if (memcmp(p + off + 4, name, 4) == 0) {
            if (path[4] == '\0') {
                *out_len = size - 8;
                return p + off + 8;
            }
            size_t skip = 8;
            if (!memcmp(name, "stsd", 4) || !memcmp(name, "dref", 4)) skip = 16;
            if (!memcmp(name, "Opus", 4)) skip = 36;
            return find_box(p + off + skip, size - skip, path + 5, out_len);
        }
        off += size;
    }
    return NULL;
}

START_TEST(init_layout)
{
    uint8_t buf[1024];
    size_t n = fmp4_init_emit(buf, sizeof(buf), 2, 312);
    ck_assert_uint_gt(n, 0);
    ck_assert_mem_eq(buf + 4, "ftypiso6", 8);
    size_t len;
    const uint8_t *d = find_box(buf, n, "moov/trak/mdia/minf/stbl/stsd/Opus/dOps", &len);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(len, 11);
    ck_assert_uint_eq(d[0], 0);               /* version */
    ck_assert_uint_eq(d[1], 2);               /* channels */
    ck_assert_uint_eq(d[2] << 8 | d[3], 312); /* pre-skip, big-endian */
    ck_assert_uint_eq(be32(d + 4), 48000);    /* input rate */
    ck_assert_uint_eq(d[10], 0);              /* mapping family */
    const uint8_t *m = find_box(buf, n, "moov/trak/mdia/mdhd", &len);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(be32(m + 12), FMP4_TIMESCALE);
    const uint8_t *h = find_box(buf, n, "moov/trak/mdia/hdlr", &len);
    ck_assert_mem_eq(h + 8, "soun", 4);
    ck_assert_ptr_nonnull(find_box(buf, n, "moov/mvex/trex", &len));
    /* Too small a buffer: nothing claimed written. */
    ck_assert_uint_eq(fmp4_init_emit(buf, n - 1, 2, 312), 0);
    ck_assert_uint_eq(fmp4_init_emit(buf, n, 2, 312), n);
}
END_TEST

START_TEST(fragment_layout)
{
    static const uint8_t a[3] = {1, 2, 3}, b[5] = {4, 5, 6, 7, 8};
    struct fmp4_sample s[2] = {{a, 3, 960}, {b, 5, 960}};
    uint8_t buf[256];
    size_t n = fmp4_fragment_emit(buf, sizeof(buf), 7, 123456789012ull, s, 2);
    ck_assert_uint_eq(n, fmp4_fragment_size(2, 8));
    size_t len;
    const uint8_t *mf = find_box(buf, n, "moof/mfhd", &len);
    ck_assert_uint_eq(be32(mf + 4), 7);
    const uint8_t *dt = find_box(buf, n, "moof/traf/tfdt", &len);
    ck_assert_uint_eq(dt[0], 1);
    ck_assert_uint_eq((uint64_t)be32(dt + 4) << 32 | be32(dt + 8), 123456789012ull);
    const uint8_t *tr = find_box(buf, n, "moof/traf/trun", &len);
    ck_assert_uint_eq(be32(tr + 4), 2);
    uint32_t data_off = be32(tr + 8);
    ck_assert_uint_eq(be32(tr + 12), 960);
    ck_assert_uint_eq(be32(tr + 16), 3);
    ck_assert_uint_eq(be32(tr + 24), 5);
    /* the data offset (from the moof's first byte) lands on the first sample's bytes */
    ck_assert_mem_eq(buf + data_off, a, 3);
    ck_assert_mem_eq(buf + data_off + 3, b, 5);
    const uint8_t *md = find_box(buf, n, "mdat", &len);
    ck_assert_uint_eq(len, 8);
    ck_assert_ptr_eq(md, buf + data_off);
    ck_assert_uint_eq(fmp4_fragment_emit(buf, n - 1, 7, 0, s, 2), 0);
}
END_TEST

START_TEST(ffmpeg_reads_it)
{
    char path[] = "/tmp/fmp4_test.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "wb");
    int err;
    OpusEncoder *enc = opus_encoder_create(48000, 1, OPUS_APPLICATION_AUDIO, &err);
    ck_assert_int_eq(err, OPUS_OK);
    opus_int32 pre_skip;
    opus_encoder_ctl(enc, OPUS_GET_LOOKAHEAD(&pre_skip));
    uint8_t buf[8192];
    size_t n = fmp4_init_emit(buf, sizeof(buf), 1, (uint16_t)pre_skip);
    ck_assert_uint_eq(fwrite(buf, 1, n, f), n);

    static uint8_t pkts[PER_FRAGMENT][MAX_PKT];
    struct fmp4_sample s[PER_FRAGMENT];
    uint8_t *frag = malloc(fmp4_fragment_size(PER_FRAGMENT, PER_FRAGMENT * MAX_PKT));
    long t = 0;
    uint64_t base = 0;
    uint32_t seq = 1;
    for (int done = 0; done < FRAMES;) {
        int k = 0;
        for (; k < PER_FRAGMENT && done < FRAMES; k++, done++) {
            opus_int16 pcm[960];
            for (int i = 0; i < 960; i++, t++)
                pcm[i] = (opus_int16)(9000 * sin(t * 2 * M_PI * 440 / 48000.0));
            int len = opus_encode(enc, pcm, 960, pkts[k], MAX_PKT);
            ck_assert_int_gt(len, 0);
            s[k] = (struct fmp4_sample){pkts[k], (uint32_t)len, 960};
        }
        size_t fl =
            fmp4_fragment_emit(frag, fmp4_fragment_size(PER_FRAGMENT, PER_FRAGMENT * MAX_PKT),
                               seq++, base, s, (size_t)k);
        ck_assert_uint_gt(fl, 0);
        ck_assert_uint_eq(fwrite(frag, 1, fl, f), fl);
        base += (uint64_t)k * 960;
    }
    free(frag);
    opus_encoder_destroy(enc);
    ck_assert_int_eq(fclose(f), 0);

    char cmd[512];
    size_t len;
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -show_entries stream=codec_name,sample_rate,channels "
             "-of default=nw=1 %s",
             path);
    char *probe = run_capture(cmd, &len);
    ck_assert_msg(strstr(probe, "codec_name=opus") && strstr(probe, "sample_rate=48000") &&
                      strstr(probe, "channels=1"),
                  "ffprobe: %s", probe);
    free(probe);

    snprintf(cmd, sizeof(cmd), "ffmpeg -v error -i %s -f s16le -ac 1 -ar 48000 -", path);
    char *pcm = run_capture(cmd, &len);
    size_t samples = len / 2;
    /* 5 s of packets, less the pre-skip ffmpeg trims (at most one frame either way) */
    ck_assert_msg(samples + 960 >= (size_t)FRAMES * 960 - (size_t)pre_skip &&
                      samples <= (size_t)FRAMES * 960 + 960,
                  "decoded %zu samples", samples);
    /* The tone: Goertzel at 440 Hz against 1,000 Hz over one second in the middle. */
    const int16_t *x = (const int16_t *)pcm;
    double p440 = 0, p1000 = 0;
    for (int pass = 0; pass < 2; pass++) {
        double fr = pass ? 1000 : 440, c = 2 * cos(2 * M_PI * fr / 48000), s1 = 0, s2 = 0;
        for (size_t i = 96000; i < 144000 && i < samples; i++) {
            double s0 = x[i] + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        double pw = s1 * s1 + s2 * s2 - c * s1 * s2;
        *(pass ? &p1000 : &p440) = pw;
    }
    ck_assert_msg(p440 > 1000 * p1000, "440 Hz power %.3g vs 1 kHz %.3g", p440, p1000);
    free(pcm);
    unlink(path);
}
END_TEST

static Suite *fmp4_suite(void)
{
    Suite *s = suite_create("fmp4");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, init_layout);
    tcase_add_test(tc, fragment_layout);
    tcase_add_test(tc, ffmpeg_reads_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(fmp4_suite());
}
