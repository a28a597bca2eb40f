#include "media/program.h"

#include <errno.h>
#include <opus.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

enum { SAMPLES_PER_MS = 48, FRAME_SAMPLES = 960 };

static void on_tick(struct timer *t);

int program_init(struct program *p, struct loop *loop, struct feed *feed, int chunk_ms)
{
    memset(p, 0, sizeof(*p));
    p->loop = loop;
    p->is_on_air = true;
    timer_init(&p->tick, on_tick);
    uint32_t serial = (uint32_t)(clock_us() * 2654435761u);
    return ogg_pkg_init(&p->pkg, feed, serial, chunk_ms);
}

void program_fini(struct program *p)
{
    timer_stop(&p->tick);
    ogg_pkg_fini(&p->pkg);
    if (p->has_monitor) ogg_pkg_fini(&p->monitor);
}

void program_stop(struct program *p)
{
    timer_stop(&p->tick);
}

/* Encodes 20 ms of digital silence once, with the program's channel count. */
static int make_silence(struct program *p, int channels)
{
    int err;
    OpusEncoder *enc = opus_encoder_create(48000, channels, OPUS_APPLICATION_AUDIO, &err);
    if (!enc) return -ENOMEM;
    opus_int16 pcm[FRAME_SAMPLES * 2] = {0};
    opus_int32 n = opus_encode(enc, pcm, FRAME_SAMPLES, p->silence, sizeof(p->silence));
    opus_encoder_destroy(enc);
    if (n <= 0) return -EINVAL;
    p->silence_len = (size_t)n;
    return 0;
}

/* Milliseconds since the epoch (the HLS run's program date-time). */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int program_start(struct program *p, int channels)
{
    if (channels < 1 || channels > 2) channels = channels > 2 ? 2 : 1;
    int err = make_silence(p, channels);
    if (err < 0) return err;
    err = ogg_pkg_start(&p->pkg, channels, "Tribune");
    if (err < 0) return err;
    if (p->ws && (err = ws_pkg_start(p->ws, channels)) < 0) return err;
    if (p->hls && (err = hls_pkg_start(p->hls, channels, OGG_PKG_PRE_SKIP, wall_ms())) < 0)
        return err;
    if (p->has_monitor && (err = ogg_pkg_start(&p->monitor, channels, "Tribune monitor")) < 0)
        return err;
    p->channels = channels;
    p->is_started = true;
    p->start_ms = loop_now_ms(p->loop);
    p->samples = 0;
    timer_start(p->loop, &p->tick, p->start_ms + PROGRAM_TICK_MS);
    return 0;
}

static void emit(struct program *p, const uint8_t *data, size_t len, int samples)
{
    p->samples += (uint64_t)samples;
    /* Off the air (scheduled, green) listeners get silence of the same
     * length; the host's monitor gets the program itself. */
    const uint8_t *out = p->is_on_air ? data : p->silence;
    size_t out_len = p->is_on_air ? len : p->silence_len;
    int err = ogg_pkg_packet(&p->pkg, out, out_len, samples);
    if (err == 0 && p->ws)
        err = ws_pkg_packet(p->ws, out, out_len, samples, (uint64_t)p->pkg.granule);
    if (err == 0 && p->has_monitor) err = ogg_pkg_packet(&p->monitor, data, len, samples);
    /* HLS apart: a packet it cannot take (out of memory, or over its size
     * bound) costs HLS players that packet, never the other formats */
    int hls_err = p->hls ? hls_pkg_packet(p->hls, out, out_len, samples) : 0;
    if (p->is_on_air && p->on_air) p->on_air(p, data, len, samples);
    if (err < 0) log_limited(LOG_ERROR, 1, "program: out of memory");
    if (hls_err < 0) log_limited(LOG_WARN, 1, "program: HLS lost a packet: %s", strerror(-hls_err));
}

/* True when the attached source may be read: its jitter buffer filled since
 * it attached or since its last underrun. */
static bool source_is_ready(struct program *p)
{
    struct program_source *s = p->source;
    if (!s || p->is_primed) return s != NULL;
    if (!s->ops->buffered || s->ops->buffered(s) >= (uint64_t)PROGRAM_JITTER_MS * SAMPLES_PER_MS)
        p->is_primed = true;
    return p->is_primed;
}

/* Pulls from the source (or the fallback) until the program reaches `now`. */
static void catch_up(struct program *p, uint64_t now)
{
    uint64_t due = (now - p->start_ms) * SAMPLES_PER_MS;
    while (p->samples < due) {
        bool is_priming = p->source && !source_is_ready(p);
        struct program_source *s = p->source && !is_priming ? p->source : p->fallback;
        const uint8_t *data;
        size_t len;
        int samples;
        if (s && s->ops->pull(s, &data, &len, &samples) > 0) {
            p->starved_since_ms = 0;
            emit(p, data, len, samples);
            continue;
        }
        if (s && s->ops->on_drained) s->ops->on_drained(s);
        if (!p->starved_since_ms) p->starved_since_ms = now;
        /* A late source gets UNDERRUN_MS of grace before silence fills in;
         * then it must fill its jitter buffer again. A priming source gets
         * no grace: silence (or the fallback) plays while it fills. */
        if (s && !is_priming && now - p->starved_since_ms < PROGRAM_UNDERRUN_MS) return;
        if (s && s == p->source) p->is_primed = false;
        p->silence_samples += FRAME_SAMPLES;
        emit(p, p->silence, p->silence_len, FRAME_SAMPLES);
    }
}

static void on_tick(struct timer *t)
{
    struct program *p = list_entry(t, struct program, tick);
    uint64_t now = loop_now_ms(p->loop);
    catch_up(p, now);
    timer_start(p->loop, t, now + PROGRAM_TICK_MS);
}

int program_attach(struct program *p, struct program_source *s)
{
    p->source = s;
    p->starved_since_ms = 0;
    p->is_primed = false;
    if (s && !p->is_started) return program_start(p, s->channels);
    return 0;
}

int program_set_fallback(struct program *p, struct program_source *s)
{
    p->fallback = s;
    if (s && !p->is_started) return program_start(p, s->channels);
    return 0;
}

int program_set_monitor(struct program *p, struct feed *monitor, int chunk_ms)
{
    if (p->has_monitor) return 0;
    uint32_t serial = (uint32_t)(clock_us() * 2246822519u) ^ 0x5bd1e995u;
    int err = ogg_pkg_init(&p->monitor, monitor, serial, chunk_ms);
    if (err < 0) return err;
    p->has_monitor = true;
    if (p->is_started) err = ogg_pkg_start(&p->monitor, p->channels, "Tribune monitor");
    return err;
}

void program_set_on_air(struct program *p, bool is_on_air)
{
    p->is_on_air = is_on_air;
}

uint64_t program_granule(const struct program *p)
{
    return p->pkg.granule > 0 ? (uint64_t)p->pkg.granule : 0;
}
