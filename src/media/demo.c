#include "media/demo.h"

#include <math.h>
#include <opus.h>
#include <stdint.h>
#include <stdlib.h>

#include "media/program.h"

enum { FRAME = 960, RATE = 48000, NOTE_SAMPLES = RATE / 2 };

struct demo_source {
    struct program_source src;
    OpusEncoder *enc;
    uint64_t t; /* samples generated */
    double phase;
    uint8_t packet[1500];
};

/* C major, up and down: C4 E4 G4 C5 G4 E4. */
static const double notes[] = {261.63, 329.63, 392.00, 523.25, 392.00, 329.63};

static double envelope(uint64_t pos)
{
    double x = (double)pos / NOTE_SAMPLES;
    double attack = x < 0.05 ? x / 0.05 : 1.0;
    double release = x > 0.8 ? (1.0 - x) / 0.2 : 1.0;
    return attack * release;
}

static void synth(struct demo_source *d, opus_int16 *pcm)
{
    for (int i = 0; i < FRAME; i++, d->t++) {
        uint64_t note = (d->t / NOTE_SAMPLES) % (sizeof(notes) / sizeof(notes[0]));
        d->phase += 2.0 * M_PI * notes[note] / RATE;
        if (d->phase > 2.0 * M_PI) d->phase -= 2.0 * M_PI;
        double v = 0.3 * envelope(d->t % NOTE_SAMPLES) * sin(d->phase);
        pcm[i] = (opus_int16)(v * 32767.0);
    }
}

static int pull(struct program_source *s, const uint8_t **data, size_t *len, int *samples)
{
    struct demo_source *d = (struct demo_source *)s;
    opus_int16 pcm[FRAME];
    synth(d, pcm);
    opus_int32 n = opus_encode(d->enc, pcm, FRAME, d->packet, sizeof(d->packet));
    if (n <= 0) return 0;
    *data = d->packet;
    *len = (size_t)n;
    *samples = FRAME;
    return 1;
}

static const struct program_source_ops demo_ops = {.pull = pull};

struct program_source *demo_source_new(void)
{
    struct demo_source *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    int err;
    d->enc = opus_encoder_create(RATE, 1, OPUS_APPLICATION_AUDIO, &err);
    if (!d->enc) {
        free(d);
        return NULL;
    }
    opus_encoder_ctl(d->enc, OPUS_SET_BITRATE(48000));
    d->src.ops = &demo_ops;
    d->src.channels = 1;
    return &d->src;
}

void demo_source_free(struct program_source *s)
{
    struct demo_source *d = (struct demo_source *)s;
    if (!d) return;
    opus_encoder_destroy(d->enc);
    free(d);
}
