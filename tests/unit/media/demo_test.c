/* Unit tests for media/demo.c: the demo source's packets are parsed and decoded with libopus, and
 * the decoded signal is measured: 20 ms mono frames, audible, not clipped, and the arpeggio's
 * first notes at their pitch. */
#include "media/demo.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <opus/opus.h>

#include "../harness.h"
#include "media/program.h"

enum { FRAME = 960, SECONDS = 3, NFRAMES = SECONDS * 50 };

static opus_int16 pcm[NFRAMES * FRAME];

/* Pulls NFRAMES packets, checks each, and decodes them all into pcm[]. */
static void pull_and_decode(struct program_source *s)
{
    int err;
    OpusDecoder *dec = opus_decoder_create(48000, 1, &err);
    ck_assert_int_eq(err, OPUS_OK);
    uint8_t prev[1500];
    size_t prev_len = 0;
    int same = 0;
    for (int i = 0; i < NFRAMES; i++) {
        const uint8_t *data = NULL;
        size_t len = 0;
        int samples = 0;
        ck_assert_int_eq(s->ops->pull(s, &data, &len, &samples), 1);
        ck_assert_ptr_nonnull(data);
        ck_assert_uint_gt(len, 0);
        ck_assert_uint_le(len, 1275); /* one Opus frame's maximum */
        ck_assert_int_eq(samples, FRAME);
        ck_assert_int_eq(opus_packet_get_nb_samples(data, (opus_int32)len, 48000), FRAME);
        ck_assert_int_eq(opus_packet_get_nb_channels(data), 1);
        ck_assert_int_eq(opus_packet_get_nb_frames(data, (opus_int32)len), 1);
        same += len == prev_len && memcmp(prev, data, len) == 0;
        memcpy(prev, data, len);
        prev_len = len;
        ck_assert_int_eq(opus_decode(dec, data, (opus_int32)len, pcm + i * FRAME, FRAME, 0), FRAME);
    }
    ck_assert_int_lt(same, NFRAMES / 10); /* a signal, not a repeated packet */
    opus_decoder_destroy(dec);
}

static double rms(int from, int to)
{
    double sum = 0;
    for (int i = from; i < to; i++)
        sum += (double)pcm[i] * pcm[i];
    return sqrt(sum / (to - from));
}

/* Pitch from upward zero crossings over [from, to) samples. */
static double pitch(int from, int to)
{
    int crossings = 0;
    for (int i = from + 1; i < to; i++)
        crossings += pcm[i - 1] < 0 && pcm[i] >= 0;
    return crossings * 48000.0 / (to - from);
}

START_TEST(source_shape)
{
    struct program_source *s = demo_source_new();
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(s->ops);
    ck_assert_ptr_nonnull(s->ops->pull);
    ck_assert_int_eq(s->channels, 1);
    demo_source_free(s);
    demo_source_free(NULL);
}
END_TEST

START_TEST(frames_decode_and_are_not_silent)
{
    struct program_source *s = demo_source_new();
    ck_assert_ptr_nonnull(s);
    pull_and_decode(s);
    demo_source_free(s);
    /* Audible over every half second (each note), and never near full scale. */
    for (int note = 0; note < SECONDS * 2; note++) {
        double r = rms(note * 24000, (note + 1) * 24000);
        ck_assert_msg(r > 1000, "note %d rms %.0f", note, r);
    }
    int peak = 0;
    for (int i = 0; i < NFRAMES * FRAME; i++)
        peak = abs(pcm[i]) > peak ? abs(pcm[i]) : peak;
    ck_assert_int_gt(peak, 5000);
    ck_assert_int_lt(peak, 16000);
}
END_TEST

START_TEST(arpeggio_pitches)
{
    struct program_source *s = demo_source_new();
    ck_assert_ptr_nonnull(s);
    pull_and_decode(s);
    demo_source_free(s);
    /* C4 E4 G4 C5: each note lasts half a second; measure its steady middle. */
    static const double notes[] = {261.63, 329.63, 392.00, 523.25};
    for (int k = 0; k < 4; k++) {
        double f = pitch(k * 24000 + 4000, k * 24000 + 18000);
        ck_assert_msg(fabs(f - notes[k]) < 8, "note %d: %.1f Hz, want %.1f", k, f, notes[k]);
    }
}
END_TEST

START_TEST(independent_sources)
{
    /* Two demo sources are independent: each starts the arpeggio from its beginning. */
    struct program_source *a = demo_source_new(), *b = demo_source_new();
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    const uint8_t *da, *db;
    size_t la, lb;
    int sa, sb;
    ck_assert_int_eq(a->ops->pull(a, &da, &la, &sa), 1);
    uint8_t copy[1500];
    memcpy(copy, da, la);
    ck_assert_int_eq(b->ops->pull(b, &db, &lb, &sb), 1);
    ck_assert_uint_eq(la, lb);
    ck_assert_int_eq(memcmp(copy, db, lb), 0);
    demo_source_free(a);
    demo_source_free(b);
}
END_TEST

static Suite *demo_suite(void)
{
    Suite *s = suite_create("demo");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, source_shape);
    tcase_add_test(tc, frames_decode_and_are_not_silent);
    tcase_add_test(tc, arpeggio_pitches);
    tcase_add_test(tc, independent_sources);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(demo_suite());
}
