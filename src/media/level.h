/* struct level: "who is talking now", from a speaker's decoded audio.
 *
 *   each 20 ms frame --mean square--> energy[LEVEL_FRAMES] (a ring: the last 300 ms)
 *   level_dbfs = 10 log10(mean of the ring)       (RMS over ~300 ms, dBFS; -120 for silence)
 *   is_talking: on while level_dbfs >= LEVEL_TALKING_DBFS, kept for LEVEL_HOLD_FRAMES
 *               after it falls below (so a pause between words does not flicker)
 *
 * Fixed size, no allocation: one per mixer input, fed once per frame it is read (or with
 * silence when it is not). Pure; any thread; the caller serialises.
 */
#ifndef TRIBUNE_MEDIA_LEVEL_H
#define TRIBUNE_MEDIA_LEVEL_H

#include <stdbool.h>
#include <stddef.h>

enum { LEVEL_FRAMES = 15, LEVEL_HOLD_FRAMES = 15 };
#define LEVEL_TALKING_DBFS (-45.0f)
#define LEVEL_FLOOR_DBFS (-120.0f)

struct level {
    float energy[LEVEL_FRAMES]; /* private: mean squares of the last frames */
    int pos;                    /* private: next slot */
    int hold;                   /* private: frames left before is_talking falls */
    float dbfs;                 /* read-only: RMS over the ring, dBFS */
    bool is_talking;            /* read-only */
};

/* Starts at silence, not talking. */
void level_init(struct level *lv);
/* Adds one frame of `n` samples (interleaved channels count as samples, full scale 1.0);
 * `x` NULL adds a silent frame. Updates dbfs and is_talking. */
void level_add(struct level *lv, const float *x, size_t n);

#endif
