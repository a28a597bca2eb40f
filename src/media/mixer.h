/* struct mixer: a room's speakers mixed into one program stream (libopus).
 *
 *   speaker source (publisher queue, demo) --pull--> mixer_input
 *        jitter buffer (primed at jitter_ms), PCM FIFO, decoder, gain/mute ramp
 *   every pull of the mixer's own program_source (one per 20 ms program frame):
 *        each input gives 960 samples (decoded, PLC on a short underrun, silence when unprimed)
 *        -> sum (float) -> soft limiter (peak stays below 0 dBFS) -> encode once
 *        (pass-through: a lone, unmuted, unity-gain input whose packets are already
 *         20 ms at the program's channel count goes out as it came, not re-encoded;
 *         the encoder then rests, and is pre-rolled with the frames that went out
 *         when mixing resumes, so that the switch neither clicks nor dips)
 *
 * The mixer is itself a program_source (mixer_source()): media/program.c pulls
 * it at wall-clock pace, so the mixer owns no clock and no timer.
 *
 * Jitter and drift, per input: an input is read only after its source holds
 * jitter_ms of audio (ops->buffered; a source without that op is read at
 * once). A primed input that runs dry is concealed with Opus PLC for up to
 * MIXER_PLC_MS, then fades out and must prime again (a new or re-primed input
 * fades in over 5 ms, so its first frame is always encoded). Clock drift between a
 * publisher and the program is absorbed by dropping (too much buffered for a
 * whole window) or concealing (too little) one 20 ms frame, at most one per
 * MIXER_DRIFT_WINDOW_MS, with short crossfades: delay never grows, no gap.
 * A paced input (mixer_set_jitter) drops a backlog faster: see there.
 *
 * An input's jitter target is the mixer's jitter_ms unless mixer_set_jitter() gives it its
 * own (a WebSocket speaker: a small target that grows by one frame per underrun, up to a
 * ceiling, and shrinks back slowly). A packet of length 0 from a source stands for a lost packet:
 * its samples are concealed (Opus PLC) in place, so a sequence gap costs no timing.
 *
 * Levels ("who is talking"): each input's decoded audio, before gain and mute, feeds a
 * media/level.h meter once per frame (silence while the input is not read).
 *
 * A pull never blocks: sources are queues in memory, pulled without waiting.
 * Thread: the media loop. Errors: NULL or negative errno, logged once here.
 */
#ifndef TRIBUNE_MEDIA_MIXER_H
#define TRIBUNE_MEDIA_MIXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/program.h"

enum { MIXER_FRAME = 960, MIXER_PLC_MS = 60, MIXER_DRIFT_WINDOW_MS = 1000, MIXER_MAX_INPUTS = 64 };

struct mixer;
struct mixer_input;

struct mixer_config {
    int channels;   /* program channels, 1 or 2 */
    int bitrate;    /* program bit rate, bits/s (e.g. 48000) */
    int jitter_ms;  /* per-input jitter buffer target, 0..2000 */
    int complexity; /* Opus encoder complexity 0..10 (-1: the library's default) */
};

struct mixer_input_stats {
    uint64_t frames;      /* 20 ms frames read while primed (audio, PLC or muted) */
    uint64_t underruns;   /* times it ran dry while primed */
    uint64_t plc_frames;  /* frames concealed */
    uint64_t drift_drops; /* frames dropped because too much was buffered */
    uint64_t drift_fills; /* frames concealed because too little was buffered */
    uint32_t buffered_ms; /* audio waiting in its source and FIFO now */
    float peak_dbfs;      /* loudest sample before gain/mute, last 1-2 s, dBFS (-120: none) */
    float level_dbfs;     /* RMS before gain/mute over the last ~300 ms, dBFS (-120: none) */
    uint32_t jitter_ms;   /* its jitter target now */
    bool is_talking;      /* level above -45 dBFS (with a 300 ms hold) and not muted */
    bool is_primed;
    bool is_muted;
};

struct mixer_stats {
    uint64_t frames;             /* program frames produced */
    uint64_t encoded_frames;     /* of which encoded by the mixer */
    uint64_t passthrough_frames; /* of which passed through unchanged */
    uint64_t idle_frames;        /* of which silence encoded once: no input at all */
    uint64_t limited_frames;     /* frames where the limiter reduced gain */
    float peak_dbfs;             /* loudest program sample of the last 1-2 s, before encoding */
    int inputs;                  /* inputs now */
};

/* NULL on a bad config or out of memory. */
struct mixer *mixer_new(const struct mixer_config *cfg);
/* Frees the mixer and its inputs (never touches their sources). */
void mixer_free(struct mixer *m);
/* The mixer as a program source (channels = cfg->channels), to attach to a program. It always
 * yields a frame: encoded silence when no input contributes. Borrowed; lives with the mixer. */
struct program_source *mixer_source(struct mixer *m);

/* Adds an input pulling from `src` (borrowed until mixer_remove). The stream may be mono or
 * stereo, with any Opus frame size. NULL when MIXER_MAX_INPUTS are in use or out of memory.
 * As the program does, the mixer calls src->ops->on_drained after a frame in which src's pull
 * came back empty (after the frame is made, so on_drained may call mixer_remove). */
struct mixer_input *mixer_add(struct mixer *m, struct program_source *src);
/* Removes `in`: what it already contributed fades out within one frame (no click for the others);
 * its source is not touched once this returns. `in` is freed, at once or, when called from a
 * source's callback (pull, buffered, on_drained) during the mixer's pull, when that pull
 * returns; either way the caller must not use `in` again. */
void mixer_remove(struct mixer *m, struct mixer_input *in);
/* Mute or unmute, effective at the next frame with a ramp of a few ms. */
void mixer_set_muted(struct mixer_input *in, bool is_muted);
/* Gives `in` its own jitter target: `ms` at first, one frame more after each underrun, up
 * to `max_ms` (both 0..2000; max_ms >= ms), and 10 ms less per 10 s without an underrun, down
 * to `ms` again. Effective when it next primes. Such an input is
 * taken to be paced by its sender's capture clock (a browser speaker): a backlog of more than
 * two frames above its target for a whole drift window is dropped one frame per frame. */
void mixer_set_jitter(struct mixer_input *in, int ms, int max_ms);
/* Linear gain (0..4), effective at the next frame with a ramp. */
void mixer_set_gain(struct mixer_input *in, float gain);

void mixer_input_get_stats(const struct mixer_input *in, struct mixer_input_stats *out);
void mixer_get_stats(const struct mixer *m, struct mixer_stats *out);

#endif
