/* The demo speaker: a program source that synthesises a gentle, recognisable
 * signal (a slow arpeggio of sine tones with soft attack and release) and
 * encodes it with libopus, 20 ms at a time, on demand. Nothing is fetched or
 * read from disk. Thread: the media loop.
 */
#ifndef TRIBUNE_MEDIA_DEMO_H
#define TRIBUNE_MEDIA_DEMO_H

struct program_source;

/* Returns a new demo source (mono, 48 kbit/s) or NULL. */
struct program_source *demo_source_new(void);
void demo_source_free(struct program_source *s);

#endif
