#include "media/mixer.h"

#include <errno.h>
#include <math.h>
#include <opus.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "media/level.h"

/* Sizes in samples per channel at 48 kHz.
 *   RAMP    gain and mute changes, and a (re)primed input's fade-in: 5 ms
 *   XFADE   the crossfade of a drift drop: 2.5 ms
 *   FIFO    decoded audio waiting: a 120 ms packet on top of a drop's 40 ms, and slack
 *   SLACK   the drift thresholds around the jitter target: 40 ms
 *   SHRINK_FRAMES, SHRINK_MS   a paced input's target shrinks 10 ms per 10 s without underrun
 *   WINDOW  frames per drift window, PEAK_FRAMES frames per peak meter roll (1 s) */
enum {
    RATE = 48000,
    PER_MS = 48,
    RAMP = 240,
    XFADE = 120,
    FIFO_CAP = 8192,
    SLACK = 40 * PER_MS,
    WINDOW = MIXER_DRIFT_WINDOW_MS / 20,
    PEAK_FRAMES = 50,
    MAX_PACKET = 1500,
    PREROLL = 4,
    SHRINK_FRAMES = 500,
    SHRINK_MS = 10,
};

/* The limiter: the envelope's ceiling, then a soft knee that no sample passes. The ceiling is
 * -2 dBFS, not -1: Opus overshoots what it is given, most at a loud onset from silence. Measured
 * with 13 copies of one full-scale tone starting together (the test's worst case), the decoded
 * peak was 0 dBFS (clipped) with a -1 dBFS ceiling, -0.25 dBFS with -1.4, -1.1 dBFS with -2. */
#define LIMIT_CEILING 0.794f
#define CLIP_CEILING 0.97f
#define RELEASE_SECONDS 0.15

enum drift { DRIFT_NONE, DRIFT_DROP, DRIFT_FILL };

/* One speaker. The FIFO holds decoded audio, oldest first, interleaved at the
 * program's channel count; its end is always where the decoder stands, so PLC
 * appended there continues the stream seamlessly.
 *
 *   source --pull--> packet --decode--> fifo [ len samples ] --take 960--> gain ramp --> sum
 *                                               ^ PLC appended here (dry, or drift fill)
 */
struct mixer_input {
    struct mixer *m;
    struct program_source *src; /* NULL once removed (freed at the end of the pull) */
    OpusDecoder *dec;
    float *fifo;
    int len;            /* samples per channel in fifo */
    float gain;         /* as set (0..4) */
    float applied;      /* gain at the end of the last frame (0 while unprimed) */
    int plc_run;        /* samples concealed in the current dry spell */
    int window;         /* frames in the current drift window */
    bool is_above;      /* whole window above target + SLACK so far */
    bool is_below;      /* whole window below target - SLACK so far */
    enum drift pending; /* correction decided at the end of the last window */
    bool is_finished;   /* its stream ended and played out */
    bool wants_drained; /* a pull came back empty this frame: tell the source after the frame */
    bool is_steady;     /* this frame's gain was constant (no ramp, no fade) */
    bool is_mixed;      /* its part of the frame being pulled is done */
    const uint8_t *pkt; /* the frame's only packet, for pass-through, or NULL */
    size_t pkt_len;
    int pulls; /* packets pulled this frame */
    float peak_cur, peak_prev;
    int peak_frames;
    int jitter_ms, jitter_max_ms; /* the target, and how far underruns may grow it */
    bool is_paced;                /* sent at its capture's pace (mixer_set_jitter): may catch up */
    int jitter_min_ms;            /* a paced input's first target: the target shrinks back to it */
    int clean_frames;             /* whole frames since the last underrun or shrink */
    uint64_t low;                 /* the lowest level in the current drift window */
    int catchup;                  /* drops still to make, one per frame, after this pending one */
    struct level level;
    struct mixer_input_stats st;
};

struct mixer {
    struct program_source src;
    struct mixer_config cfg;
    OpusEncoder *enc;
    struct mixer_input *inputs[MIXER_MAX_INPUTS];
    int n;
    bool is_pulling;  /* inside the source's pull: removal is deferred */
    bool has_tail;    /* tail holds removed inputs' fade-outs for the next frame */
    float limit_gain; /* the limiter's envelope, 1 when idle */
    float release;    /* per-sample release coefficient */
    float peak_cur, peak_prev;
    int peak_frames;
    struct mixer_stats st;
    float sum[MIXER_FRAME * 2];
    float frame[MIXER_FRAME * 2];
    float tail[MIXER_FRAME * 2];
    float prev[PREROLL][MIXER_FRAME * 2]; /* the last frames passed through, oldest first */
    int passed;                           /* frames passed through since the last encode */
    uint8_t packet[MAX_PACKET];
    uint8_t silence[64]; /* 20 ms of encoded silence, should the encoder ever fail */
    size_t silence_len;
};

static float to_dbfs(float peak)
{
    return peak > 1e-6f ? 20.0f * log10f(peak) : -120.0f;
}

static float peak_of(const float *x, int n)
{
    float p = 0;
    for (int i = 0; i < n; i++)
        p = fabsf(x[i]) > p ? fabsf(x[i]) : p;
    return p;
}

/* Meters: a running max, rolled every second; the reading is the larger of the two. */
static void meter(float *cur, float *prev, int *frames, float peak)
{
    if (peak > *cur) *cur = peak;
    if (++*frames >= PEAK_FRAMES) {
        *prev = *cur;
        *cur = 0;
        *frames = 0;
    }
}

/* ---- The input's FIFO ---- */

static void fifo_consume(struct mixer_input *in, int n)
{
    int ch = in->m->cfg.channels;
    in->len -= n;
    memmove(in->fifo, in->fifo + n * ch, (size_t)in->len * ch * sizeof(float));
}

/* Appends `n` samples of Opus packet loss concealment (n a multiple of 2.5 ms). */
static void fifo_conceal(struct mixer_input *in, int n)
{
    int ch = in->m->cfg.channels;
    int got = opus_decode_float(in->dec, NULL, 0, in->fifo + in->len * ch, n, 0);
    if (got != n) {
        memset(in->fifo + in->len * ch, 0, (size_t)n * ch * sizeof(float));
        got = n;
    }
    in->len += got;
}

/* Pulls and decodes until the FIFO holds `need` samples or the source is empty.
 * Remembers the packet when it alone makes the frame (for pass-through). */
static void fifo_fill(struct mixer_input *in, int need)
{
    int ch = in->m->cfg.channels;
    while (in->len < need && in->src) {
        const uint8_t *data;
        size_t len;
        int samples, before = in->len;
        if (in->src->ops->pull(in->src, &data, &len, &samples) <= 0) {
            in->wants_drained = in->src != NULL;
            return;
        }
        if (len == 0) { /* a lost packet: concealed where it was */
            ++in->pulls;
            in->pkt = NULL;
            if (samples > 0 && samples <= 5760 && samples % 120 == 0 &&
                in->len + samples <= FIFO_CAP)
                fifo_conceal(in, samples);
            continue;
        }
        int got = opus_decode_float(in->dec, data, (opus_int32)len, in->fifo + in->len * ch,
                                    FIFO_CAP - in->len, 0);
        bool is_whole = ++in->pulls == 1 && before == 0 && got == MIXER_FRAME;
        in->pkt = is_whole && len <= MAX_PACKET ? data : NULL;
        in->pkt_len = len;
        if (got < 0) {
            log_limited(LOG_WARN, 1, "mixer: undecodable packet (%s)", opus_strerror(got));
            continue;
        }
        in->len += got;
    }
}

/* ---- Jitter, drift and underruns ---- */

static void window_reset(struct mixer_input *in)
{
    in->window = 0;
    in->is_above = in->is_below = true;
    in->low = UINT64_MAX;
}

static void unprime(struct mixer_input *in)
{
    in->st.is_primed = false;
    in->len = 0;
    in->plc_run = 0;
    in->applied = 0;
    in->pending = DRIFT_NONE;
    in->catchup = 0;
    window_reset(in);
}

/* Feeds the drift window with this frame's buffered level; at the end of a window
 * that stayed above (below) the target by SLACK, one drop (fill) becomes pending.
 * A paced input (a browser speaker: it sends at its microphone's pace, so it is never
 * ahead of time) whose level stayed more than two frames above the target all window
 * holds a backlog from a stall (its sender's CPU, the network), not drift: it catches up
 * by one drop per frame down to one frame above the target, instead of one per window
 * (a 500 ms backlog would otherwise stay as delay for 25 s). */
static void drift_track(struct mixer_input *in, uint64_t level)
{
    uint64_t target = (uint64_t)in->jitter_ms * PER_MS;
    in->is_above &= level > target + SLACK;
    in->is_below &= level + SLACK < target;
    in->low = level < in->low ? level : in->low;
    if (++in->window < WINDOW) return;
    if (in->is_above) {
        in->pending = DRIFT_DROP;
        uint64_t surplus = (in->low - target) / MIXER_FRAME;
        if (in->is_paced && surplus > 2) in->catchup = (int)surplus - 2;
    } else if (in->is_below)
        in->pending = DRIFT_FILL;
    window_reset(in);
}

/* Samples the source holds (UINT64_MAX: its stream ended; 0 without the op). Decides
 * priming. Returns false when the input is not to be read this frame. An input removed
 * (now or earlier in this pull) is ready when primed: its frame is a fade-out. */
static bool input_ready(struct mixer_input *in, uint64_t *held, bool *is_ended)
{
    struct program_source *s = in->src;
    *held = 0;
    *is_ended = false;
    if (s && s->ops->buffered) {
        *held = s->ops->buffered(s);
        *is_ended = *held == UINT64_MAX;
    }
    if (!in->src) return in->st.is_primed;
    if (!*is_ended) in->is_finished = false;
    uint64_t level = (*is_ended ? 0 : *held) + (uint64_t)in->len;
    in->st.buffered_ms = (uint32_t)(level / PER_MS);
    if (in->is_finished) return false;
    if (!in->st.is_primed) {
        uint64_t target = (uint64_t)in->jitter_ms * PER_MS;
        if (s->ops->buffered && !*is_ended && *held < target) return false;
        if (!s->ops->buffered) { /* read at once: primed by the first packet */
            fifo_fill(in, MIXER_FRAME);
            if (in->len == 0 || !in->src) return false;
        }
        in->st.is_primed = true;
        window_reset(in);
    }
    if (s->ops->buffered && !*is_ended)
        drift_track(in, level);
    else
        window_reset(in);
    return true;
}

/* Drops 20 ms: the frame crossfades from the FIFO's head into the audio 960 samples on. */
static void take_dropping(struct mixer_input *in, float *out)
{
    int ch = in->m->cfg.channels;
    const float *a = in->fifo, *b = in->fifo + MIXER_FRAME * ch;
    for (int i = 0; i < MIXER_FRAME; i++) {
        float w = i < XFADE ? (float)(i + 1) / (XFADE + 1) : 1.0f;
        for (int c = 0; c < ch; c++)
            out[i * ch + c] = a[i * ch + c] * (1 - w) + b[i * ch + c] * w;
    }
    fifo_consume(in, 2 * MIXER_FRAME);
    in->pending = in->catchup > 0 ? DRIFT_DROP : DRIFT_NONE;
    in->catchup -= in->catchup > 0;
    in->st.drift_drops++;
}

/* A paced input's target, grown by underruns, shrinks back by SHRINK_MS every SHRINK_FRAMES
 * whole frames without an underrun (10 ms per 10 s: slowly, so that a jittery sender does not
 * oscillate), down to its first target; the drift control then drains the surplus. */
static void shrink_target(struct mixer_input *in)
{
    if (!in->is_paced || ++in->clean_frames < SHRINK_FRAMES) return;
    in->clean_frames = 0;
    in->jitter_ms = in->jitter_ms - SHRINK_MS > in->jitter_min_ms ? in->jitter_ms - SHRINK_MS
                                                                  : in->jitter_min_ms;
}

/* Gets this frame's 960 decoded samples into `out`. Returns the fade-out flag: the
 * input ran dry for good (its PLC budget spent, or its stream ended) or was removed. */
static bool input_take(struct mixer_input *in, float *out, bool is_ended)
{
    int ch = in->m->cfg.channels;
    if (!in->src) is_ended = true; /* removed: what it holds, then PLC, faded out */
    if (in->pending == DRIFT_FILL && !is_ended) {
        fifo_conceal(in, MIXER_FRAME);
        in->pending = DRIFT_NONE;
        in->st.drift_fills++;
    }
    bool is_dropping = in->pending == DRIFT_DROP && !is_ended;
    fifo_fill(in, is_dropping ? 2 * MIXER_FRAME + XFADE : MIXER_FRAME);
    bool is_gone = !in->src; /* removed from within pull() */
    if (is_dropping && !is_gone && in->len >= 2 * MIXER_FRAME + XFADE) {
        in->pkt = NULL;
        take_dropping(in, out);
        in->plc_run = 0;
        return false;
    }
    bool is_fading = false;
    if (in->len < MIXER_FRAME) {
        int missing = MIXER_FRAME - in->len;
        if (!is_ended && in->plc_run == 0) {
            in->st.underruns++;
            in->clean_frames = 0;
            in->jitter_ms =
                in->jitter_ms + 20 < in->jitter_max_ms ? in->jitter_ms + 20 : in->jitter_max_ms;
        }
        in->plc_run += missing;
        is_fading = is_ended || in->plc_run > MIXER_PLC_MS * PER_MS;
        if (!is_ended) in->st.plc_frames++;
        fifo_conceal(in, missing);
        in->pkt = NULL;
    } else {
        in->plc_run = 0;
        shrink_target(in);
    }
    memcpy(out, in->fifo, (size_t)MIXER_FRAME * ch * sizeof(float));
    fifo_consume(in, MIXER_FRAME);
    return is_fading || is_gone;
}

/* Applies the gain ramp (and a fade-out to silence when `is_fading`) in place. */
static void apply_gain(struct mixer_input *in, float *x, bool is_fading)
{
    int ch = in->m->cfg.channels;
    float from = in->applied, to = in->st.is_muted ? 0.0f : in->gain;
    for (int i = 0; i < MIXER_FRAME; i++) {
        float g = i < RAMP ? from + (to - from) * (float)(i + 1) / RAMP : to;
        if (is_fading) g *= 1.0f - (float)(i + 1) / MIXER_FRAME;
        for (int c = 0; c < ch; c++)
            x[i * ch + c] *= g;
    }
    in->is_steady = from == to && !is_fading;
    in->applied = is_fading ? 0.0f : to;
}

/* One input's frame, added into m->sum. Returns true when it was read. A source's callback
 * may remove the input (in->src becomes NULL) at any point: the frame then fades it out. */
static bool input_frame(struct mixer *m, struct mixer_input *in)
{
    uint64_t held;
    bool is_ended;
    in->pkt = NULL;
    in->pulls = 0;
    in->is_steady = false;
    int n = MIXER_FRAME * m->cfg.channels;
    if (!input_ready(in, &held, &is_ended)) {
        level_add(&in->level, NULL, 0);
        return false;
    }
    bool is_fading = input_take(in, m->frame, is_ended);
    meter(&in->peak_cur, &in->peak_prev, &in->peak_frames, peak_of(m->frame, n));
    level_add(&in->level, m->frame, (size_t)n);
    in->st.frames++;
    bool is_silent = in->applied == 0 && !is_fading && (in->st.is_muted || in->gain == 0);
    if (!is_silent) {
        apply_gain(in, m->frame, is_fading);
        for (int i = 0; i < n; i++)
            m->sum[i] += m->frame[i];
    }
    if (is_fading) {
        unprime(in);
        in->is_finished = is_ended;
    }
    return true;
}

/* ---- Program side: limiter, encoder, pass-through ---- */

/* Soft knee above the limiter's ceiling: nothing reaches CLIP_CEILING. */
static float soft_clip(float x)
{
    float a = fabsf(x);
    if (!(a <= 1e9f)) return 0.0f; /* NaN or absurd: silence */
    if (a <= LIMIT_CEILING) return x;
    float span = CLIP_CEILING - LIMIT_CEILING;
    float y = LIMIT_CEILING + span * tanhf((a - LIMIT_CEILING) / span);
    return x < 0 ? -y : y;
}

/* Instant attack, slow release, towards LIMIT_CEILING. Returns true when it reduced gain. */
static bool limit(struct mixer *m, float *x)
{
    int ch = m->cfg.channels;
    float g = m->limit_gain, lowest = 1.0f;
    for (int i = 0; i < MIXER_FRAME; i++) {
        float p = fabsf(x[i * ch]);
        if (ch == 2 && fabsf(x[i * ch + 1]) > p) p = fabsf(x[i * ch + 1]);
        if (p * g > LIMIT_CEILING) g = LIMIT_CEILING / p;
        if (g < lowest) lowest = g;
        for (int c = 0; c < ch; c++)
            x[i * ch + c] = soft_clip(x[i * ch + c] * g);
        g += (1.0f - g) * m->release;
    }
    m->limit_gain = g > 0.99999f ? 1.0f : g;
    return lowest < 0.9999f;
}

/* The frame's packet when it may go out unchanged: a lone, primed, unmuted, unity-gain
 * input (no ramp) whose frame is exactly one 20 ms packet at the program's channels. */
static const uint8_t *passthrough_packet(struct mixer *m, size_t *len)
{
    if (m->n != 1 || m->has_tail) return NULL;
    struct mixer_input *in = m->inputs[0];
    if (!in->pkt || !in->src || !in->is_steady || in->st.is_muted || in->gain != 1.0f) return NULL;
    if (opus_packet_get_nb_channels(in->pkt) != m->cfg.channels) return NULL;
    *len = in->pkt_len;
    return in->pkt;
}

static int encode(struct mixer *m, const float *pcm)
{
    int n = opus_encode_float(m->enc, pcm, MIXER_FRAME, m->packet, sizeof(m->packet));
    if (n < 0) log_limited(LOG_ERROR, 1, "mixer: encode failed (%s)", opus_strerror(n));
    return n;
}

/* During pass-through the encoder rests (the CPU saving), so when mixing resumes it has not
 * heard the program: it would replay stale audio from its lookahead, and its analysis and
 * inter-frame energy prediction would describe another stream than the one listeners'
 * decoders hold. Re-encoding the last PREROLL frames that went out (packets discarded)
 * brings it up to date, and the first real frame is coded without inter-frame prediction.
 * Measured on a 440 Hz tone at -12 dBFS (mixer_test): with no pre-roll, a step of 12000 at
 * the switch; with one frame and prediction on, a 4.5 dB dip for about 100 ms when a second
 * speaker joins; with four frames and the first one intra-coded, neither (no dip, steps as
 * small as an encoder that never rests, which would cost an encode per passed frame). */
static int encode_frame(struct mixer *m)
{
    if (!m->passed) return encode(m, m->sum);
    int have = m->passed < PREROLL ? m->passed : PREROLL;
    for (int i = PREROLL - have; i < PREROLL; i++)
        encode(m, m->prev[i]);
    m->passed = 0;
    opus_encoder_ctl(m->enc, OPUS_SET_PREDICTION_DISABLED(1));
    int n = encode(m, m->sum);
    opus_encoder_ctl(m->enc, OPUS_SET_PREDICTION_DISABLED(0));
    return n;
}

/* Keeps the frame that went out unchanged, for encode_frame()'s pre-roll. */
static void remember_passed(struct mixer *m)
{
    memmove(m->prev[0], m->prev[1], sizeof(m->prev) - sizeof(m->prev[0]));
    memcpy(m->prev[PREROLL - 1], m->sum, (size_t)MIXER_FRAME * m->cfg.channels * sizeof(float));
    m->passed++;
}

static void free_input(struct mixer_input *in)
{
    opus_decoder_destroy(in->dec);
    free(in->fifo);
    free(in);
}

static void unlink_input(struct mixer *m, struct mixer_input *in)
{
    for (int i = 0; i < m->n; i++)
        if (m->inputs[i] == in) {
            memmove(&m->inputs[i], &m->inputs[i + 1], (size_t)(m->n - i - 1) * sizeof(in));
            m->n--;
            return;
        }
}

/* End of a pull: frees inputs removed during it, then tells sources found empty (which
 * may remove inputs: the scan restarts after each call, flags make it finish). */
static void after_pull(struct mixer *m)
{
    for (int i = m->n - 1; i >= 0; i--)
        if (!m->inputs[i]->src) {
            struct mixer_input *in = m->inputs[i];
            unlink_input(m, in);
            free_input(in);
        }
    for (int i = 0; i < m->n; i++) {
        struct mixer_input *in = m->inputs[i];
        if (!in->wants_drained) continue;
        in->wants_drained = false;
        if (in->src->ops->on_drained) {
            in->src->ops->on_drained(in->src);
            i = -1;
        }
    }
}

static void mix(struct mixer *m)
{
    int n = MIXER_FRAME * m->cfg.channels;
    if (m->has_tail) {
        memcpy(m->sum, m->tail, (size_t)n * sizeof(float));
        m->has_tail = false;
    } else {
        memset(m->sum, 0, (size_t)n * sizeof(float));
    }
    for (int i = 0; i < m->n; i++)
        m->inputs[i]->is_mixed = false;
    /* Inputs removed earlier in this pull (by a source's callback) still fade out here; one
     * removed after its turn leaves its fade-out in the tail. */
    for (int i = 0; i < m->n; i++) {
        input_frame(m, m->inputs[i]);
        m->inputs[i]->is_mixed = true;
    }
}

static int mixer_pull(struct program_source *s, const uint8_t **data, size_t *len, int *samples)
{
    struct mixer *m = (struct mixer *)s;
    int n = MIXER_FRAME * m->cfg.channels;
    if (m->n == 0 && !m->has_tail) {
        /* Nobody to mix (a space waiting for its speakers): the silence encoded once, so an
         * idle space costs no encoder time. */
        meter(&m->peak_cur, &m->peak_prev, &m->peak_frames, 0.0f);
        m->st.frames++;
        m->st.idle_frames++;
        *data = m->silence;
        *len = m->silence_len;
        *samples = MIXER_FRAME;
        return 1;
    }
    m->is_pulling = true;
    mix(m);
    const uint8_t *pass = passthrough_packet(m, len);
    if (pass) {
        m->limit_gain += (1.0f - m->limit_gain) * (1.0f - powf(1.0f - m->release, MIXER_FRAME));
        remember_passed(m);
        m->st.passthrough_frames++;
        *data = pass;
    } else {
        if (limit(m, m->sum)) m->st.limited_frames++;
        int bytes = encode_frame(m);
        m->st.encoded_frames++;
        *data = bytes > 0 ? m->packet : m->silence; /* the stream goes on regardless */
        *len = bytes > 0 ? (size_t)bytes : m->silence_len;
    }
    meter(&m->peak_cur, &m->peak_prev, &m->peak_frames, peak_of(m->sum, n));
    m->st.frames++;
    *samples = MIXER_FRAME;
    m->is_pulling = false;
    after_pull(m);
    return 1;
}

static const struct program_source_ops mixer_ops = {.pull = mixer_pull};

/* ---- Public API ---- */

static bool config_is_valid(const struct mixer_config *cfg)
{
    return cfg && (cfg->channels == 1 || cfg->channels == 2) && cfg->bitrate >= 6000 &&
           cfg->bitrate <= 510000 && cfg->jitter_ms >= 0 && cfg->jitter_ms <= 2000 &&
           cfg->complexity >= -1 && cfg->complexity <= 10;
}

/* Encodes 20 ms of silence once, with an encoder of its own (the mixer's keeps no trace). */
static int make_silence(struct mixer *m, int channels)
{
    int err;
    OpusEncoder *enc = opus_encoder_create(RATE, channels, OPUS_APPLICATION_AUDIO, &err);
    if (!enc) return -ENOMEM;
    float pcm[MIXER_FRAME * 2] = {0};
    int n = opus_encode_float(enc, pcm, MIXER_FRAME, m->silence, sizeof(m->silence));
    opus_encoder_destroy(enc);
    if (n <= 0) return -EINVAL;
    m->silence_len = (size_t)n;
    return 0;
}

struct mixer *mixer_new(const struct mixer_config *cfg)
{
    if (!config_is_valid(cfg)) {
        log_error("mixer: invalid configuration");
        return NULL;
    }
    struct mixer *m = calloc(1, sizeof(*m));
    if (!m) goto oom;
    int err;
    m->enc = opus_encoder_create(RATE, cfg->channels, OPUS_APPLICATION_AUDIO, &err);
    if (!m->enc || make_silence(m, cfg->channels) < 0) goto oom;
    opus_encoder_ctl(m->enc, OPUS_SET_BITRATE(cfg->bitrate));
    if (cfg->complexity >= 0) opus_encoder_ctl(m->enc, OPUS_SET_COMPLEXITY(cfg->complexity));
    m->cfg = *cfg;
    m->src.ops = &mixer_ops;
    m->src.channels = cfg->channels;
    m->limit_gain = 1.0f;
    m->release = (float)(1.0 - exp(-1.0 / (RELEASE_SECONDS * RATE)));
    m->peak_cur = m->peak_prev = 0;
    return m;
oom:
    log_error("mixer: out of memory");
    if (m) opus_encoder_destroy(m->enc);
    free(m);
    return NULL;
}

void mixer_free(struct mixer *m)
{
    if (!m) return;
    for (int i = 0; i < m->n; i++)
        free_input(m->inputs[i]);
    opus_encoder_destroy(m->enc);
    free(m);
}

struct program_source *mixer_source(struct mixer *m)
{
    return &m->src;
}

struct mixer_input *mixer_add(struct mixer *m, struct program_source *src)
{
    if (m->n >= MIXER_MAX_INPUTS) {
        log_warn("mixer: %d inputs already", MIXER_MAX_INPUTS);
        return NULL;
    }
    struct mixer_input *in = calloc(1, sizeof(*in));
    int err = 0;
    if (in) in->fifo = malloc((size_t)FIFO_CAP * m->cfg.channels * sizeof(float));
    if (in && in->fifo) in->dec = opus_decoder_create(RATE, m->cfg.channels, &err);
    if (!in || !in->fifo || !in->dec) {
        log_error("mixer: out of memory");
        if (in) free(in->fifo);
        free(in);
        return NULL;
    }
    in->m = m;
    in->src = src;
    in->gain = 1.0f;
    in->st.peak_dbfs = -120.0f;
    in->jitter_ms = in->jitter_max_ms = m->cfg.jitter_ms;
    level_init(&in->level);
    window_reset(in);
    m->inputs[m->n++] = in;
    return in;
}

/* The removed input's next frame (what its FIFO holds, then PLC), faded to silence over
 * the frame and added to the tail that the next program frame starts from. */
static void add_tail(struct mixer *m, struct mixer_input *in)
{
    if (!in->st.is_primed || (in->applied == 0 && (in->st.is_muted || in->gain == 0))) return;
    int n = MIXER_FRAME * m->cfg.channels;
    if (in->len < MIXER_FRAME) fifo_conceal(in, MIXER_FRAME - in->len);
    memcpy(m->frame, in->fifo, (size_t)n * sizeof(float));
    apply_gain(in, m->frame, true);
    if (!m->has_tail) memset(m->tail, 0, (size_t)n * sizeof(float));
    for (int i = 0; i < n; i++)
        m->tail[i] += m->frame[i];
    m->has_tail = true;
}

/* Removal from inside a source's callback during the mixer's pull is deferred: the input
 * is freed by after_pull(). If its part of the frame is not done yet, that part is its
 * fade-out (input_take); if it is, the tail carries the fade into the next frame. */
void mixer_remove(struct mixer *m, struct mixer_input *in)
{
    if (!in || !in->src) return;
    if (!m->is_pulling || in->is_mixed) add_tail(m, in);
    in->src = NULL;
    if (m->is_pulling) return;
    unlink_input(m, in);
    free_input(in);
}

void mixer_set_muted(struct mixer_input *in, bool is_muted)
{
    in->st.is_muted = is_muted;
}

void mixer_set_jitter(struct mixer_input *in, int ms, int max_ms)
{
    ms = ms < 0 ? 0 : ms > 2000 ? 2000 : ms;
    max_ms = max_ms < ms ? ms : max_ms > 2000 ? 2000 : max_ms;
    in->jitter_ms = in->jitter_min_ms = ms;
    in->jitter_max_ms = max_ms;
    in->is_paced = true;
    in->clean_frames = 0;
}

void mixer_set_gain(struct mixer_input *in, float gain)
{
    if (!(gain >= 0.0f)) gain = 0.0f;
    in->gain = gain > 4.0f ? 4.0f : gain;
}

void mixer_input_get_stats(const struct mixer_input *in, struct mixer_input_stats *out)
{
    *out = in->st;
    float p = in->peak_cur > in->peak_prev ? in->peak_cur : in->peak_prev;
    out->peak_dbfs = to_dbfs(p);
    out->level_dbfs = in->level.dbfs;
    out->is_talking = in->level.is_talking && !in->st.is_muted;
    out->jitter_ms = (uint32_t)in->jitter_ms;
}

void mixer_get_stats(const struct mixer *m, struct mixer_stats *out)
{
    *out = m->st;
    float p = m->peak_cur > m->peak_prev ? m->peak_cur : m->peak_prev;
    out->peak_dbfs = to_dbfs(p);
    out->inputs = 0;
    for (int i = 0; i < m->n; i++)
        out->inputs += m->inputs[i]->src != NULL;
}
