/* Unit tests for media/mixer.c with real Opus: each input is a fake program_source that encodes
 * a sine with libopus as it is pulled (optionally metered: it holds only what a simulated
 * publisher has sent so far, at a chosen pace). The test pulls the mixer's own source directly,
 * one 20 ms program frame per call (no loop, no sleeps: time is the frame count), decodes what
 * comes out and measures it: Goertzel at each input's tone, peaks, sample-to-sample jumps. */
#include "media/mixer.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <opus/opus.h>

#include "../harness.h"
#include "core/log.h"

enum { FRAME = 960, MAXCH = 2, LEVEL_FRAMES_TEST = 15 };

struct fake {
    struct program_source src;
    OpusEncoder *enc;
    double freq, amp, phase;
    int packet_samples; /* 480, 960, 1920 or 2880 */
    bool is_metered;    /* holds only `credit` samples (else endless) */
    double credit;      /* samples the publisher has sent and the mixer not yet pulled */
    double pace;        /* credit added per program frame, in frames (1.01: 1 % fast) */
    bool is_gated;      /* nothing arrives, nothing can be pulled */
    bool is_ended;      /* the stream ended: buffered() says UINT64_MAX */
    bool is_losing;     /* the next pull is a lost packet (length 0), as speak.c queues */
    int pulls;
    uint8_t pkt[1500];
    int len;
};

static int fake_pull(struct program_source *s, const uint8_t **data, size_t *len, int *samples)
{
    struct fake *f = (struct fake *)s;
    int n = f->packet_samples;
    if (f->is_gated || (f->is_metered && f->credit < n)) return 0;
    opus_int16 pcm[2880 * MAXCH];
    for (int i = 0; i < n; i++) {
        opus_int16 v = (opus_int16)lrint(f->amp * sin(f->phase));
        f->phase += 2 * M_PI * f->freq / 48000.0;
        for (int c = 0; c < f->src.channels; c++)
            pcm[i * f->src.channels + c] = v;
    }
    f->len = opus_encode(f->enc, pcm, n, f->pkt, sizeof(f->pkt));
    ck_assert_int_gt(f->len, 0);
    if (f->is_metered) f->credit -= n;
    f->pulls++;
    *data = f->pkt;
    *len = f->is_losing ? 0 : (size_t)f->len;
    f->is_losing = false;
    *samples = n;
    return 1;
}

static uint64_t fake_buffered(struct program_source *s)
{
    struct fake *f = (struct fake *)s;
    if (f->is_ended) return UINT64_MAX;
    if (f->is_gated) return 0;
    return (uint64_t)f->credit / f->packet_samples * f->packet_samples;
}

static const struct program_source_ops endless_ops = {.pull = fake_pull};
static const struct program_source_ops metered_ops = {.pull = fake_pull, .buffered = fake_buffered};

static struct fake fakes[16];
static int nfakes;

static struct fake *fake_new(int channels, double freq, double amp, int packet_samples)
{
    ck_assert_int_lt(nfakes, 16);
    struct fake *f = &fakes[nfakes++];
    memset(f, 0, sizeof(*f));
    int err;
    f->enc = opus_encoder_create(48000, channels, OPUS_APPLICATION_AUDIO, &err);
    ck_assert_int_eq(err, OPUS_OK);
    opus_encoder_ctl(f->enc, OPUS_SET_BITRATE(64000));
    opus_encoder_ctl(f->enc, OPUS_SET_COMPLEXITY(5));
    f->src.ops = &endless_ops;
    f->src.channels = channels;
    f->freq = freq;
    f->amp = amp;
    f->packet_samples = packet_samples;
    f->pace = 1.0;
    return f;
}

static void fake_meter(struct fake *f, double pace, double credit_ms)
{
    f->src.ops = &metered_ops;
    f->is_metered = true;
    f->pace = pace;
    f->credit = credit_ms * 48;
}

/* ---- The program side: one mixer, a decoder, the last frame's PCM ---- */

static struct mixer *mx;
static OpusDecoder *dec;
static int channels;
static opus_int16 out[FRAME * MAXCH];
static opus_int16 last_sample; /* channel 0's last sample of the previous frame */
static int max_jump;           /* largest sample-to-sample step on channel 0 since reset */
static int max_peak;           /* largest |sample| on any channel since reset */
static const uint8_t *out_pkt;
static size_t out_len;

static void start(int program_channels, int jitter_ms)
{
    log_threshold = LOG_WARN;
    nfakes = 0;
    channels = program_channels;
    struct mixer_config cfg = {
        .channels = channels, .bitrate = 64000, .jitter_ms = jitter_ms, .complexity = 5};
    mx = mixer_new(&cfg);
    ck_assert_ptr_nonnull(mx);
    ck_assert_int_eq(mixer_source(mx)->channels, channels);
    int err;
    dec = opus_decoder_create(48000, channels, &err);
    ck_assert_int_eq(err, OPUS_OK);
    last_sample = 0;
    max_jump = max_peak = 0;
}

static void finish(void)
{
    mixer_free(mx);
    mx = NULL;
    opus_decoder_destroy(dec);
    for (int i = 0; i < nfakes; i++)
        opus_encoder_destroy(fakes[i].enc);
}

/* One program frame: publishers send (metered fakes gain `pace` frames of credit), the mixer
 * is pulled once, its packet is decoded into `out`. */
static void step(void)
{
    for (int i = 0; i < nfakes; i++)
        if (fakes[i].is_metered && !fakes[i].is_gated && !fakes[i].is_ended)
            fakes[i].credit += fakes[i].pace * FRAME;
    struct program_source *s = mixer_source(mx);
    int samples = 0;
    ck_assert_int_eq(s->ops->pull(s, &out_pkt, &out_len, &samples), 1);
    ck_assert_int_eq(samples, FRAME);
    ck_assert_uint_gt(out_len, 0);
    ck_assert_int_eq(opus_packet_get_nb_samples(out_pkt, (opus_int32)out_len, 48000), FRAME);
    ck_assert_int_eq(opus_decode(dec, out_pkt, (opus_int32)out_len, out, FRAME, 0), FRAME);
    for (int i = 0; i < FRAME; i++) {
        int jump = abs(out[i * channels] - last_sample);
        if (jump > max_jump) max_jump = jump;
        last_sample = out[i * channels];
        for (int c = 0; c < channels; c++)
            if (abs(out[i * channels + c]) > max_peak) max_peak = abs(out[i * channels + c]);
    }
}

static void steps(int n)
{
    for (int i = 0; i < n; i++)
        step();
}

/* Amplitude of `freq` in the last frame (channel 0), in dB relative to full scale. A Hann
 * window keeps another tone 220 Hz away (4.4 bins of 50 Hz) from leaking in above -60 dB. */
static double tone_db(double freq)
{
    double w = 2 * M_PI * freq / 48000.0, coeff = 2 * cos(w), s1 = 0, s2 = 0;
    for (int i = 0; i < FRAME; i++) {
        double hann = 0.5 - 0.5 * cos(2 * M_PI * i / FRAME);
        double s0 = hann * out[i * channels] / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    double power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    double amp = 2 * sqrt(power > 0 ? power : 0) / (FRAME / 2.0);
    return 20 * log10(amp + 1e-9);
}

/* Mean tone level over `n` frames. */
static double mean_tone_db(double freq, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        step();
        sum += pow(10, tone_db(freq) / 10);
    }
    return 10 * log10(sum / n);
}

static struct mixer_input *add(struct fake *f)
{
    struct mixer_input *in = mixer_add(mx, &f->src);
    ck_assert_ptr_nonnull(in);
    return in;
}

/* 8000 of 32767: a tone at about -12.3 dBFS. */
#define AMP 8000.0
#define AMP_DB (20 * log10(AMP / 32768.0))

/* A tone's mean level over 40 frames, played alone (a lone input: passed through). */
static double alone_db(double freq)
{
    start(1, 0);
    add(fake_new(1, freq, AMP, FRAME));
    steps(10);
    double level = mean_tone_db(freq, 40);
    finish();
    return level;
}

START_TEST(two_tones_both_heard)
{
    double alone_a = alone_db(440), alone_b = alone_db(660);
    ck_assert_double_gt(alone_a, AMP_DB - 1);
    ck_assert_double_gt(alone_b, AMP_DB - 1);
    start(1, 0);
    struct mixer_input *in = add(fake_new(1, 440, AMP, FRAME));
    add(fake_new(1, 660, AMP, FRAME));
    steps(10);
    double a = 0, b = 0;
    for (int i = 0; i < 40; i++) {
        step();
        a += pow(10, tone_db(440) / 10);
        b += pow(10, tone_db(660) / 10);
    }
    a = 10 * log10(a / 40);
    b = 10 * log10(b / 40);
    /* Within 6 dB of alone, as asked; in fact within 1 dB: two tones at -12 dBFS sum to at
     * most -6 dBFS, which the limiter leaves alone. */
    ck_assert_msg(fabs(a - alone_a) < 1 && fabs(b - alone_b) < 1,
                  "440: %.1f dB (alone %.1f), 660: %.1f dB (alone %.1f)", a, alone_a, b, alone_b);
    struct mixer_stats st;
    mixer_get_stats(mx, &st);
    ck_assert_int_eq(st.inputs, 2);
    ck_assert_uint_eq(st.frames, 50);
    ck_assert_uint_eq(st.encoded_frames, 50);
    ck_assert_uint_eq(st.passthrough_frames, 0);
    ck_assert_uint_eq(st.limited_frames, 0);
    ck_assert_float_lt(st.peak_dbfs, -5);
    ck_assert_float_gt(st.peak_dbfs, -8);
    struct mixer_input_stats is;
    mixer_input_get_stats(in, &is);
    ck_assert_uint_eq(is.frames, 50);
    ck_assert_float_gt(is.peak_dbfs, AMP_DB - 1); /* -12.3 dBFS */
    ck_assert_float_lt(is.peak_dbfs, AMP_DB + 1);
    ck_assert(is.is_primed && !is.is_muted);
    ck_assert_uint_eq(is.underruns + is.plc_frames + is.drift_drops + is.drift_fills, 0);
    finish();
}
END_TEST

START_TEST(mute_and_unmute)
{
    start(1, 0);
    add(fake_new(1, 440, AMP, FRAME));
    struct mixer_input *b = add(fake_new(1, 660, AMP, FRAME));
    steps(10);
    double before = mean_tone_db(660, 10);
    mixer_set_muted(b, true);
    /* The first frame ramps down over 5 ms, and the encoder's 6.5 ms delay carries that into
     * the second decoded frame; from the third on, the tone is gone (asked: within 5). */
    steps(2);
    for (int i = 0; i < 23; i++) {
        step();
        ck_assert_msg(tone_db(660) < before - 30, "muted 660 Hz at %.1f dB (was %.1f)",
                      tone_db(660), before);
        ck_assert_double_gt(tone_db(440), before - 6); /* the other one plays on */
    }
    struct mixer_input_stats st;
    mixer_input_get_stats(b, &st);
    ck_assert(st.is_muted);
    ck_assert_uint_eq(st.frames, 45); /* a muted input still counts (and keeps decoding) */
    mixer_set_muted(b, false);
    steps(2);
    for (int i = 0; i < 10; i++) {
        step();
        ck_assert_double_gt(tone_db(660), before - 6);
    }
    finish();
}
END_TEST

/* 13 speakers at full scale: 13 different tones into mono, then 13 copies of one tone in phase
 * into stereo (the coherent worst case: a sum 22 dB over full scale). */
START_TEST(thirteen_at_full_scale_never_clip)
{
    for (int k = 0; k < 2; k++) {
        start(k ? 2 : 1, 0);
        for (int i = 0; i < 13; i++)
            add(fake_new(1, k ? 440 : 300 + 70 * i, 32767, FRAME));
        steps(150);
        struct mixer_stats st;
        mixer_get_stats(mx, &st);
        /* Measured: 27602 and 28889 (-1.5 and -1.1 dBFS) with the limiter's -2 dBFS ceiling. */
        ck_assert_msg(max_peak < 32767, "decoded peak %d", max_peak);
        ck_assert_uint_eq(st.limited_frames, 150);
        ck_assert_float_lt(st.peak_dbfs, -1.5);
        ck_assert_int_eq(st.inputs, 13);
        /* Every input is still heard. */
        for (int i = 0; i < 13; i++)
            ck_assert_double_gt(tone_db(k ? 440 : 300 + 70 * i), k ? -3 : -40);
        finish();
    }
}
END_TEST

START_TEST(lone_input_passes_through)
{
    start(1, 0);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    add(f);
    step(); /* a new input fades in over its first 5 ms: encoded */
    for (int i = 0; i < 50; i++) {
        step();
        ck_assert_uint_eq(out_len, (size_t)f->len);
        ck_assert_int_eq(memcmp(out_pkt, f->pkt, out_len), 0);
    }
    struct mixer_stats st;
    mixer_get_stats(mx, &st);
    ck_assert_uint_eq(st.passthrough_frames, 50);
    ck_assert_uint_eq(st.encoded_frames, 1);
    finish();
}
END_TEST

START_TEST(gain_change_leaves_passthrough)
{
    start(1, 0);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    struct mixer_input *in = add(f);
    steps(10);
    double unity = mean_tone_db(440, 10);
    mixer_set_gain(in, 0.5f);
    steps(3);
    double half = mean_tone_db(440, 10);
    ck_assert_msg(fabs(half - (unity - 6)) < 1.5, "unity %.1f, half %.1f", unity, half);
    mixer_set_gain(in, 1.0f);
    steps(3);
    struct mixer_stats st;
    mixer_get_stats(mx, &st);
    /* The fade-in, the ramp down, 12 at half gain, the ramp up. */
    ck_assert_uint_eq(st.encoded_frames, 15);
    step();
    ck_assert_uint_eq(out_len, (size_t)f->len);
    ck_assert_int_eq(memcmp(out_pkt, f->pkt, out_len), 0);
    finish();
}
END_TEST

/* Pass-through to mixing and back: a second speaker joins a lone one, then leaves. The lone
 * speaker's tone never breaks, and the switches do not click. */
START_TEST(switching_to_mixing_and_back)
{
    start(1, 0);
    add(fake_new(1, 440, AMP, FRAME));
    steps(20);
    max_jump = 0;
    steps(20);
    int steady = max_jump;
    struct mixer_input *b = add(fake_new(1, 660, AMP, FRAME));
    for (int i = 0; i < 30; i++) {
        step();
        ck_assert_double_gt(tone_db(440), AMP_DB - 3); /* no dip when mixing resumes */
    }
    ck_assert_double_gt(tone_db(660), AMP_DB - 3);
    mixer_remove(mx, b);
    for (int i = 0; i < 30; i++) {
        step();
        ck_assert_double_gt(tone_db(440), AMP_DB - 3);
    }
    struct mixer_stats st;
    mixer_get_stats(mx, &st);
    ck_assert_uint_ge(st.passthrough_frames, 20 + 28);
    ck_assert_uint_le(st.encoded_frames, 1 + 30 + 2);
    /* 440 + 660 Hz at 8000 step by up to 1150 per sample; a switch that replayed or skipped
     * the encoder's 6.5 ms lookahead unfaded would step by up to 16000. */
    ck_assert_msg(max_jump < 1600, "jump %d (lone speaker's steps: %d)", max_jump, steady);
    finish();
}
END_TEST

START_TEST(stereo_into_mono_is_encoded)
{
    start(1, 0);
    add(fake_new(2, 440, AMP, FRAME));
    steps(10);
    double level = mean_tone_db(440, 20);
    ck_assert_double_gt(level, AMP_DB - 3);
    struct mixer_stats st;
    mixer_get_stats(mx, &st);
    ck_assert_uint_eq(st.passthrough_frames, 0);
    ck_assert_uint_eq(st.encoded_frames, 30);
    finish();
}
END_TEST

START_TEST(packet_sizes_10_40_60_ms)
{
    int sizes[] = {480, 1920, 2880};
    for (int k = 0; k < 3; k++) {
        start(2, 0);
        add(fake_new(1, 440, AMP, sizes[k]));
        steps(10);
        for (int i = 0; i < 30; i++) {
            step();
            ck_assert_double_gt(tone_db(440), AMP_DB - 3);
        }
        struct mixer_stats st;
        mixer_get_stats(mx, &st);
        ck_assert_uint_eq(st.passthrough_frames, 0);
        /* Read as needed: at most one packet ahead of the 40 frames played. */
        ck_assert_int_ge(fakes[0].pulls * sizes[k], 40 * FRAME);
        ck_assert_int_lt(fakes[0].pulls * sizes[k], 40 * FRAME + sizes[k]);
        finish();
    }
}
END_TEST

/* A publisher at `pace` times real time for two simulated minutes: the delay stays bounded
 * and, after priming, every frame holds the tone. */
static void run_drift(double pace, struct mixer_input_stats *st)
{
    const int jitter = 100;
    start(1, jitter);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    fake_meter(f, pace, 0);
    struct mixer_input *in = add(f);
    steps(jitter / 20 + 5);
    max_jump = 0;
    uint32_t most = 0, least = UINT32_MAX;
    for (int i = 0; i < 6000; i++) {
        step();
        ck_assert_msg(tone_db(440) > AMP_DB - 10, "frame %d: tone at %.1f dB", i, tone_db(440));
        mixer_input_get_stats(in, st);
        ck_assert(st->is_primed);
        most = st->buffered_ms > most ? st->buffered_ms : most;
        least = st->buffered_ms < least ? st->buffered_ms : least;
    }
    ck_assert_msg(most < jitter + 100 && least + 100 > jitter, "buffered %u..%u ms", least, most);
    /* A drop crossfades over 2.5 ms between two phases of the tone, a fill continues it with
     * PLC: the steps stay near the tone's own (8000 * 2 pi 440 / 48000 = 460, plus codec noise),
     * far from an unfaded splice (up to twice the amplitude). */
    ck_assert_int_lt(max_jump, 1200);
    ck_assert_uint_eq(st->underruns, 0);
    finish();
}

START_TEST(drift_fast_publisher_drops)
{
    struct mixer_input_stats st;
    run_drift(1.01, &st);
    ck_assert_uint_gt(st.drift_drops, 0);
    ck_assert_uint_eq(st.drift_fills, 0);
    /* At most one per window. */
    ck_assert_uint_le(st.drift_drops, 6000 / (MIXER_DRIFT_WINDOW_MS / 20));
}
END_TEST

START_TEST(drift_slow_publisher_fills)
{
    struct mixer_input_stats st;
    run_drift(0.99, &st);
    ck_assert_uint_gt(st.drift_fills, 0);
    ck_assert_uint_eq(st.drift_drops, 0);
}
END_TEST

START_TEST(removal_fades_without_click)
{
    start(1, 0);
    add(fake_new(1, 440, AMP, FRAME));
    struct mixer_input *b = add(fake_new(1, 660, AMP, FRAME));
    steps(20);
    max_jump = 0;
    steps(10);
    int steady_jump = max_jump;
    mixer_remove(mx, b);
    max_jump = 0;
    for (int i = 0; i < 40; i++) {
        step();
        ck_assert_double_gt(tone_db(440), AMP_DB - 6);
    }
    ck_assert_double_lt(tone_db(660), AMP_DB - 30);
    /* Two sines of amplitude A move at most A * 2 pi f / 48000 per sample: 460 + 690 for
     * 440 + 660 Hz at 8000, and the codec adds a little. Cutting 660 Hz off mid-wave would
     * step by up to 8000; the fade keeps every step within the steady mix's bound. */
    ck_assert_msg(max_jump < 1600 && max_jump <= steady_jump + 200, "jump %d (steady %d)", max_jump,
                  steady_jump);
    struct mixer_stats st;
    mixer_get_stats(mx, &st);
    ck_assert_int_eq(st.inputs, 1);
    finish();
}
END_TEST

START_TEST(short_dry_spell_is_concealed)
{
    start(1, 0);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    fake_meter(f, 1.0, 0);
    struct mixer_input *in = add(f);
    steps(20);
    f->is_gated = true; /* 40 ms with nothing (under MIXER_PLC_MS), then it all arrives */
    for (int i = 0; i < 2; i++) {
        step();
        ck_assert_double_gt(tone_db(440), AMP_DB - 10);
    }
    f->is_gated = false;
    f->credit += 2 * FRAME;
    for (int i = 0; i < 20; i++) {
        step();
        ck_assert_double_gt(tone_db(440), AMP_DB - 10);
    }
    struct mixer_input_stats st;
    mixer_input_get_stats(in, &st);
    ck_assert_uint_eq(st.underruns, 1);
    ck_assert_uint_eq(st.plc_frames, 2);
    ck_assert(st.is_primed);
    finish();
}
END_TEST

START_TEST(long_dry_spell_fades_and_primes_again)
{
    start(1, 60);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    fake_meter(f, 1.0, 60);
    struct mixer_input *in = add(f);
    steps(20);
    f->is_gated = true;
    f->credit = 0;
    steps(10);
    struct mixer_input_stats st;
    mixer_input_get_stats(in, &st);
    ck_assert(!st.is_primed);
    ck_assert_uint_eq(st.underruns, 1);
    ck_assert_uint_eq(st.plc_frames, MIXER_PLC_MS / 20 + 1); /* PLC, then one faded frame */
    ck_assert_double_lt(tone_db(440), AMP_DB - 40);
    f->is_gated = false; /* priming again: 60 ms */
    steps(2);
    ck_assert_int_eq(mixer_source(mx) != NULL, 1);
    mixer_input_get_stats(in, &st);
    ck_assert(!st.is_primed);
    steps(5);
    mixer_input_get_stats(in, &st);
    ck_assert(st.is_primed);
    steps(3);
    ck_assert_double_gt(tone_db(440), AMP_DB - 6);
    finish();
}
END_TEST

/* A source without ops->buffered is read at once: after a long dry spell (PLC, then a fade) it
 * is primed again by its first packet, with no jitter wait. */
START_TEST(source_without_buffered_op)
{
    start(1, 200);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    struct mixer_input *in = add(f);
    step();
    ck_assert_int_eq(f->pulls, 1); /* no jitter wait */
    steps(10);
    ck_assert_double_gt(tone_db(440), AMP_DB - 3);
    f->is_gated = true;
    steps(10);
    struct mixer_input_stats st;
    mixer_input_get_stats(in, &st);
    ck_assert(!st.is_primed);
    ck_assert_uint_eq(st.underruns, 1);
    ck_assert_uint_eq(st.plc_frames, MIXER_PLC_MS / 20 + 1);
    ck_assert_double_lt(tone_db(440), AMP_DB - 40);
    f->is_gated = false;
    steps(2);
    mixer_input_get_stats(in, &st);
    ck_assert(st.is_primed);
    ck_assert_double_gt(tone_db(440), AMP_DB - 3);
    finish();
}
END_TEST

START_TEST(priming_waits_for_jitter)
{
    start(1, 200);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    fake_meter(f, 1.0, 0);
    struct mixer_input *in = add(f);
    struct mixer_input_stats st;
    /* Nine frames in, the source holds 180 ms: not read, the program is silent. */
    for (int i = 0; i < 9; i++) {
        step();
        ck_assert_int_eq(f->pulls, 0);
        ck_assert_double_lt(tone_db(440), -60);
        ck_assert_int_lt(max_peak, 64);
    }
    mixer_input_get_stats(in, &st);
    ck_assert(!st.is_primed);
    ck_assert_uint_eq(st.buffered_ms, 180);
    step(); /* 200 ms: primed and read */
    ck_assert_int_eq(f->pulls, 1);
    mixer_input_get_stats(in, &st);
    ck_assert(st.is_primed);
    steps(3);
    for (int i = 0; i < 20; i++) {
        step();
        ck_assert_double_gt(tone_db(440), AMP_DB - 6);
        mixer_input_get_stats(in, &st);
        ck_assert_uint_ge(st.buffered_ms, 180);
    }
    struct mixer_stats ms;
    mixer_get_stats(mx, &ms);
    ck_assert_uint_eq(ms.frames, 33); /* a frame every pull, silent or not */
    finish();
}
END_TEST

/* A WebSocket speaker's own target (speak.c): primed at 80 ms, not at the mixer's 300, and
 * one frame more after each underrun, up to its ceiling. */
START_TEST(own_jitter_target_grows_on_underrun)
{
    start(1, 300);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    fake_meter(f, 1.0, 0);
    struct mixer_input *in = add(f);
    mixer_set_jitter(in, 80, 120);
    steps(3);
    ck_assert_int_eq(f->pulls, 0);
    step();
    ck_assert_int_eq(f->pulls, 1);
    struct mixer_input_stats st;
    mixer_input_get_stats(in, &st);
    ck_assert(st.is_primed);
    ck_assert_uint_eq(st.jitter_ms, 80);
    for (int k = 0; k < 3; k++) { /* three underruns: 100, 120, then the ceiling holds */
        steps(10);
        f->is_gated = true;
        f->credit = 0;
        step();
        f->is_gated = false;
        f->credit += 3 * FRAME;
    }
    mixer_input_get_stats(in, &st);
    ck_assert_uint_eq(st.underruns, 3);
    ck_assert_uint_eq(st.jitter_ms, 120);
    finish();
}
END_TEST

/* The same target shrinks back by 10 ms per 10 s without an underrun, to its first value. */
START_TEST(own_jitter_target_shrinks_back)
{
    start(1, 300);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    fake_meter(f, 1.0, 0);
    struct mixer_input *in = add(f);
    mixer_set_jitter(in, 80, 300);
    steps(10);
    f->is_gated = true; /* one underrun: 100 */
    f->credit = 0;
    step();
    f->is_gated = false;
    f->credit += 3 * FRAME;
    struct mixer_input_stats st;
    mixer_input_get_stats(in, &st);
    ck_assert_uint_eq(st.underruns, 1);
    ck_assert_uint_eq(st.jitter_ms, 100);
    steps(490); /* under 10 s: unchanged */
    mixer_input_get_stats(in, &st);
    ck_assert_uint_eq(st.jitter_ms, 100);
    steps(20);
    mixer_input_get_stats(in, &st);
    ck_assert_uint_eq(st.jitter_ms, 90);
    steps(1500); /* floor: 80 */
    mixer_input_get_stats(in, &st);
    ck_assert_uint_eq(st.jitter_ms, 80);
    ck_assert_uint_eq(st.underruns, 1);
    finish();
}
END_TEST

/* A backlog (500 ms arriving at once after a stall of its sender): a paced input (its own
 * target, a browser speaker) drops it one frame per frame within about two windows, the tone
 * in every frame; an input on the mixer's target (a publisher, which may drift) drops one
 * frame per window, so the backlog is still there. */
static uint32_t backlog_after(bool is_paced, int frames, int *drops)
{
    start(1, 80);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    fake_meter(f, 1.0, 0);
    struct mixer_input *in = add(f);
    if (is_paced) mixer_set_jitter(in, 80, 300);
    steps(30);
    f->credit += 500 * 48;
    for (int i = 0; i < frames; i++) {
        step();
        ck_assert_msg(tone_db(440) > AMP_DB - 10, "frame %d: tone at %.1f dB", i, tone_db(440));
    }
    struct mixer_input_stats st;
    mixer_input_get_stats(in, &st);
    ck_assert_uint_eq(st.underruns, 0);
    *drops = (int)st.drift_drops;
    finish();
    return st.buffered_ms;
}

START_TEST(paced_input_catches_up_a_backlog)
{
    int drops;
    uint32_t ms = backlog_after(true, 3 * (MIXER_DRIFT_WINDOW_MS / 20), &drops);
    ck_assert_msg(ms <= 80 + 60, "paced: %u ms buffered after 3 windows (%d drops)", ms, drops);
    ck_assert_int_ge(drops, 20);
    ms = backlog_after(false, 3 * (MIXER_DRIFT_WINDOW_MS / 20), &drops);
    ck_assert_msg(ms >= 80 + 400, "unpaced: %u ms buffered after 3 windows (%d drops)", ms, drops);
    ck_assert_int_le(drops, 3);
}
END_TEST

/* A packet of length 0 is a lost one: concealed in place (no underrun, no gap in the tone). */
START_TEST(lost_packet_is_concealed)
{
    start(1, 0);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    fake_meter(f, 1.0, 0);
    struct mixer_input *in = add(f);
    steps(10);
    for (int k = 0; k < 5; k++) {
        f->is_losing = true;
        for (int i = 0; i < 4; i++) {
            step();
            ck_assert_double_gt(tone_db(440), AMP_DB - 10);
        }
    }
    struct mixer_input_stats st;
    mixer_input_get_stats(in, &st);
    ck_assert_uint_eq(st.underruns, 0);
    ck_assert(st.is_primed);
    finish();
}
END_TEST

/* Who is talking: the level follows the input's own audio (before mute), talking does not
 * survive a mute, and both fall once the input is silent. */
START_TEST(level_and_talking)
{
    start(1, 0);
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    fake_meter(f, 1.0, 0);
    struct mixer_input *in = add(f);
    struct mixer_input_stats st;
    mixer_input_get_stats(in, &st);
    ck_assert(!st.is_talking);
    ck_assert_double_eq(st.level_dbfs, -120.0);
    steps(20);
    mixer_input_get_stats(in, &st);
    ck_assert(st.is_talking);
    ck_assert_double_gt(st.level_dbfs, AMP_DB - 3 - 2); /* a sine's RMS is 3 dB under its peak */
    ck_assert_double_lt(st.level_dbfs, AMP_DB - 3 + 2);
    mixer_set_muted(in, true);
    step();
    mixer_input_get_stats(in, &st);
    ck_assert(!st.is_talking);
    ck_assert_double_gt(st.level_dbfs, AMP_DB - 6);
    mixer_set_muted(in, false);
    f->amp = 0;
    steps(LEVEL_FRAMES_TEST + 20);
    mixer_input_get_stats(in, &st);
    ck_assert(!st.is_talking);
    ck_assert_double_lt(st.level_dbfs, -60);
    finish();
}
END_TEST

START_TEST(ended_stream_plays_out_then_fades)
{
    start(1, 200);
    add(fake_new(1, 660, AMP, FRAME));
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    fake_meter(f, 1.0, 0);
    struct mixer_input *in = add(f);
    steps(30);
    f->is_ended = true; /* 200 ms left: played out without waiting, then a fade */
    max_jump = 0;
    for (int i = 0; i < 9; i++) {
        step();
        ck_assert_double_gt(tone_db(440), AMP_DB - 6);
    }
    steps(4);
    ck_assert_double_lt(tone_db(440), AMP_DB - 30);
    ck_assert_double_gt(tone_db(660), AMP_DB - 6);
    ck_assert_int_lt(max_jump, 1600);
    struct mixer_input_stats st;
    mixer_input_get_stats(in, &st);
    ck_assert(!st.is_primed);
    ck_assert_uint_eq(st.underruns, 0);
    int pulls = f->pulls;
    steps(5);
    ck_assert_int_eq(f->pulls, pulls);
    finish();
}
END_TEST

/* Sources that call back into the mixer: a publisher that ends calls its owner from on_drained
 * (publisher_close -> on_gone), and a protocol error can close it from inside pull or
 * buffered. The mixer must not touch the source again, nor freed memory (ASan checks). */
static struct mixer_input *victim;
static struct program_source *remover;
static int remove_in; /* 1: pull, 2: buffered, 3: on_drained */
static int drained, pulls_at_removal;
static struct fake *victim_fake;

static void remove_victim(struct program_source *s, int where)
{
    if (s != remover || remove_in != where || !victim) return;
    mixer_remove(mx, victim);
    victim = NULL;
    pulls_at_removal = victim_fake->pulls;
}

static int reentrant_pull(struct program_source *s, const uint8_t **data, size_t *len, int *samples)
{
    int r = fake_pull(s, data, len, samples);
    remove_victim(s, 1);
    return r;
}

static uint64_t reentrant_buffered(struct program_source *s)
{
    remove_victim(s, 2);
    return fake_buffered(s);
}

static void reentrant_drained(struct program_source *s)
{
    drained++;
    remove_victim(s, 3);
}

static const struct program_source_ops reentrant_ops = {
    .pull = reentrant_pull, .buffered = reentrant_buffered, .on_drained = reentrant_drained};

static struct fake *reentrant_fake(double freq)
{
    struct fake *f = fake_new(1, freq, AMP, FRAME);
    fake_meter(f, 1.0, 0);
    f->src.ops = &reentrant_ops;
    return f;
}

/* `who`: 0 the victim removes itself, 1 an input mixed before it, 2 one mixed after it. */
static void remove_from_callback(int where, int who)
{
    start(1, 0);
    add(fake_new(1, 660, AMP, FRAME));
    struct fake *before = who == 1 ? reentrant_fake(880) : NULL;
    if (before) add(before);
    victim_fake = reentrant_fake(440);
    victim = add(victim_fake);
    struct fake *after = who == 2 ? reentrant_fake(880) : NULL;
    if (after) add(after);
    remover = NULL;
    steps(10);
    drained = 0;
    remove_in = where;
    struct fake *rf = who == 0 ? victim_fake : who == 1 ? before : after;
    remover = &rf->src;
    if (where == 3) rf->is_ended = true; /* plays out, runs dry, on_drained */
    max_jump = 0;
    for (int i = 0; i < 15; i++) {
        step();
        ck_assert_double_gt(tone_db(660), AMP_DB - 6);
    }
    ck_assert_ptr_null(victim);
    ck_assert_double_lt(tone_db(440), AMP_DB - 30);
    ck_assert_int_eq(victim_fake->pulls, pulls_at_removal); /* never read once removed */
    /* Three tones of 8000 and the other one's own fade: within the steady mix's bound. */
    ck_assert_msg(max_jump < 2400, "removed in %d by %d: jump %d", where, who, max_jump);
    struct mixer_stats st;
    mixer_get_stats(mx, &st);
    ck_assert_int_eq(st.inputs, who == 0 ? 1 : 2);
    if (where == 3) ck_assert_int_eq(drained, 1);
    finish();
}

/* Sources that call back into the mixer: a publisher that ends calls its owner from on_drained
 * (publisher_close -> on_gone), and a protocol error can close it from inside pull or
 * buffered. The mixer must not touch a removed source again, nor freed memory (ASan checks),
 * and the removed input still fades out. */
START_TEST(removal_from_source_callbacks)
{
    for (int where = 1; where <= 3; where++)
        for (int who = 0; who <= 2; who++)
            remove_from_callback(where, who);
}
END_TEST

/* A mixer with no input at all (a space waiting for its speakers) hands out the silence it
 * encoded once: no encoder time per frame. The first input after that is mixed as usual. */
START_TEST(idle_mixer_costs_no_encode)
{
    struct mixer_config cfg = {.channels = 1, .bitrate = 48000, .jitter_ms = 0, .complexity = -1};
    struct mixer *m = mixer_new(&cfg);
    ck_assert_ptr_nonnull(m);
    struct program_source *src = mixer_source(m);
    const uint8_t *data, *first = NULL;
    size_t len;
    int samples;
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(src->ops->pull(src, &data, &len, &samples), 1);
        ck_assert_int_eq(samples, FRAME);
        ck_assert_uint_gt(len, 0);
        ck_assert_uint_lt(len, 16);
        if (!first) first = data;
        ck_assert_ptr_eq(data, first); /* the same packet every time */
    }
    struct mixer_stats st;
    mixer_get_stats(m, &st);
    ck_assert_uint_eq(st.frames, 100);
    ck_assert_uint_eq(st.idle_frames, 100);
    ck_assert_uint_eq(st.encoded_frames, 0);
    nfakes = 0;
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    struct mixer_input *in = mixer_add(m, &f->src);
    ck_assert_ptr_nonnull(in);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(src->ops->pull(src, &data, &len, &samples), 1);
    mixer_get_stats(m, &st);
    ck_assert_uint_eq(st.idle_frames, 100);
    ck_assert_uint_eq(st.encoded_frames + st.passthrough_frames, 10);
    mixer_remove(m, in);
    mixer_free(m);
    opus_encoder_destroy(f->enc);
}
END_TEST

START_TEST(bad_config_and_limits)
{
    struct mixer_config cfg = {.channels = 3, .bitrate = 64000, .jitter_ms = 0, .complexity = -1};
    ck_assert_ptr_null(mixer_new(&cfg));
    cfg.channels = 2;
    cfg.jitter_ms = 2001;
    ck_assert_ptr_null(mixer_new(&cfg));
    cfg.jitter_ms = 100;
    struct mixer *m = mixer_new(&cfg);
    ck_assert_ptr_nonnull(m);
    nfakes = 0;
    struct fake *f = fake_new(1, 440, AMP, FRAME);
    struct mixer_input *ins[MIXER_MAX_INPUTS];
    for (int i = 0; i < MIXER_MAX_INPUTS; i++)
        ins[i] = mixer_add(m, &f->src);
    for (int i = 0; i < MIXER_MAX_INPUTS; i++)
        ck_assert_ptr_nonnull(ins[i]);
    ck_assert_ptr_null(mixer_add(m, &f->src));
    mixer_remove(m, ins[3]);
    struct mixer_stats st;
    mixer_get_stats(m, &st);
    ck_assert_int_eq(st.inputs, MIXER_MAX_INPUTS - 1);
    mixer_free(m);
    opus_encoder_destroy(f->enc);
}
END_TEST

static Suite *mixer_suite(void)
{
    Suite *s = suite_create("mixer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, two_tones_both_heard);
    tcase_add_test(tc, mute_and_unmute);
    tcase_add_test(tc, thirteen_at_full_scale_never_clip);
    tcase_add_test(tc, lone_input_passes_through);
    tcase_add_test(tc, gain_change_leaves_passthrough);
    tcase_add_test(tc, switching_to_mixing_and_back);
    tcase_add_test(tc, stereo_into_mono_is_encoded);
    tcase_add_test(tc, packet_sizes_10_40_60_ms);
    tcase_add_test(tc, drift_fast_publisher_drops);
    tcase_add_test(tc, drift_slow_publisher_fills);
    tcase_add_test(tc, paced_input_catches_up_a_backlog);
    tcase_add_test(tc, own_jitter_target_shrinks_back);
    tcase_add_test(tc, removal_fades_without_click);
    tcase_add_test(tc, short_dry_spell_is_concealed);
    tcase_add_test(tc, long_dry_spell_fades_and_primes_again);
    tcase_add_test(tc, source_without_buffered_op);
    tcase_add_test(tc, priming_waits_for_jitter);
    tcase_add_test(tc, ended_stream_plays_out_then_fades);
    tcase_add_test(tc, removal_from_source_callbacks);
    tcase_add_test(tc, bad_config_and_limits);
    tcase_add_test(tc, idle_mixer_costs_no_encode);
    tcase_add_test(tc, own_jitter_target_grows_on_underrun);
    tcase_add_test(tc, lost_packet_is_concealed);
    tcase_add_test(tc, level_and_talking);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(mixer_suite());
}
