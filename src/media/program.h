/* struct program: a space's program clock and its current source.
 *
 * Every 20 ms the program pulls packets from its source until the program's
 * sample count reaches wall-clock time, and hands them to the Ogg packager.
 * Pulling (rather than pushing on arrival) paces publishers that send faster
 * than real time: a source that has nothing due simply is not read, and TCP
 * flow control slows the publisher down. When the source has nothing for
 * longer than UNDERRUN_MS (a publisher gone, or late) the program fills with
 * silence, so listeners stay connected and hear a continuous stream.
 *
 * Jitter buffer: a source that can say how much it holds (ops->buffered) is
 * read only once it holds PROGRAM_JITTER_MS of audio, and again after each
 * underrun; until then the fallback (or silence) plays. A publisher whose
 * packets arrive late by up to that much (an encoder starved of CPU, a
 * congested uplink) then costs listeners nothing: the program's output keeps
 * wall-clock pace, one jitter buffer behind the publisher.
 *
 *   source (publisher queue, demo generator) --pull--> program --> ogg_pkg --> feed
 *                                                                 (+ ws_pkg, hls_pkg)
 *
 * The program starts (emits its header) when its first source attaches; its
 * channel count is that source's (1 or 2) for the program's whole life.
 * Thread: the media loop.
 */
#ifndef TRIBUNE_MEDIA_PROGRAM_H
#define TRIBUNE_MEDIA_PROGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "pkg/hls_pkg.h"
#include "pkg/ogg_pkg.h"
#include "pkg/ws_pkg.h"

struct program_source;

struct program_source_ops {
    /* Returns 1 with a packet in *data, *len and *samples (borrowed until the next
     * call), 0 when nothing is available now. */
    int (*pull)(struct program_source *s, const uint8_t **data, size_t *len, int *samples);
    /* Called when the program wants more data than is buffered (optional). */
    void (*on_drained)(struct program_source *s);
    /* Samples (48 kHz) ready to pull now (optional: without it the source is
     * read at once). UINT64_MAX when the source will get no more (play out). */
    uint64_t (*buffered)(struct program_source *s);
};

struct program_source {
    const struct program_source_ops *ops;
    int channels;
};

enum { PROGRAM_TICK_MS = 20, PROGRAM_UNDERRUN_MS = 400, PROGRAM_JITTER_MS = 500 };

struct program {
    struct loop *loop;               /* private */
    struct ogg_pkg pkg;              /* private */
    struct timer tick;               /* private */
    struct program_source *source;   /* read-only: current source or NULL */
    struct program_source *fallback; /* read-only: used when no source (demo) */
    uint64_t start_ms;               /* read-only */
    uint64_t samples;                /* read-only: program samples emitted */
    uint64_t silence_samples;        /* read-only: silence inserted */
    uint64_t starved_since_ms;       /* private */
    uint8_t silence[64];             /* private: one 20 ms silent packet */
    size_t silence_len;              /* private */
    bool is_started;                 /* read-only */
    bool is_primed;                  /* read-only: the source's jitter buffer has filled */
    bool is_on_air;                  /* read-only: listeners get the source (else silence) */
    bool has_monitor;                /* read-only */
    int channels;                    /* read-only: once started */
    struct ogg_pkg monitor;          /* private: the host's monitor, always the source */
    /* public, optional: every packet that goes on the air (the recorder) */
    void (*on_air)(struct program *p, const uint8_t *data, size_t len, int samples);
    void *owner; /* public: for on_air */
    /* public, optional (set before the program starts): the WebSocket
     * packager, fed the same packets as the Ogg one, stamped with its granule */
    struct ws_pkg *ws;
    /* public, optional (set before the program starts): the HLS packager, fed
     * the same packets; its run starts with the program, at wall-clock now */
    struct hls_pkg *hls;
};

int program_init(struct program *p, struct loop *loop, struct feed *feed, int chunk_ms);
void program_fini(struct program *p);
/* Makes `s` the source (NULL detaches). Starts the program on first use. */
int program_attach(struct program *p, struct program_source *s);
/* A fallback source used whenever no source is attached (the demo speaker). */
int program_set_fallback(struct program *p, struct program_source *s);
/* Also packages the program into `monitor` (the host's green-room stream),
 * whatever is on the air. 0 or negative errno. */
int program_set_monitor(struct program *p, struct feed *monitor, int chunk_ms);
/* On the air (default), listeners get the source; off the air (a space
 * scheduled or green), silence of the same length, from the next frame. */
void program_set_on_air(struct program *p, bool is_on_air);
/* The Ogg granule position of the last packet emitted (0 before any):
 * the numbering of the granules in the listeners' pages. */
uint64_t program_granule(const struct program *p);
/* Stops the clock (a space that ended). */
void program_stop(struct program *p);

#endif
