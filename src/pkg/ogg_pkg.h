/* The Ogg packager: program Opus packets in, Ogg pages out as chunks.
 *
 * The program has its own Ogg logical stream (its own serial, page sequence
 * and granule positions), whoever publishes: a publisher reconnecting, or a
 * different speaker, never changes what a listener's player sees, so players
 * keep playing across publisher changes. Pages are built by libogg; each chunk
 * is one page holding about `chunk_ms` of audio. The header chunk holds the
 * OpusHead page and the OpusTags page (RFC 7845), sent first to every listener.
 * Thread: the media loop.
 */
#ifndef TRIBUNE_PKG_OGG_PKG_H
#define TRIBUNE_PKG_OGG_PKG_H

#include <ogg/ogg.h>
#include <stddef.h>
#include <stdint.h>

struct feed;

/* The pre-skip every program stream announces in its OpusHead (samples). */
enum { OGG_PKG_PRE_SKIP = 312 };

struct ogg_pkg {
    ogg_stream_state os;    /* private */
    struct feed *feed;      /* private: where chunks go */
    int64_t granule;        /* read-only: samples packaged so far (incl. pre-skip) */
    int64_t packetno;       /* private */
    uint32_t page_samples;  /* private: samples in the page being filled */
    uint32_t chunk_samples; /* private: target samples per chunk */
    int is_started;         /* read-only */
};

/* Prepares a packager that will feed `feed`. 0 or negative errno. */
int ogg_pkg_init(struct ogg_pkg *p, struct feed *feed, uint32_t serial, int chunk_ms);
void ogg_pkg_fini(struct ogg_pkg *p);
/* Emits the header chunk for a program of `channels` (1 or 2). */
int ogg_pkg_start(struct ogg_pkg *p, int channels, const char *vendor);
/* Adds one Opus packet of `samples` (48 kHz); publishes a chunk to the feed
 * each time a page holds chunk_ms of audio. 0 or negative errno. */
int ogg_pkg_packet(struct ogg_pkg *p, const uint8_t *data, size_t len, int samples);

/* Builds an OpusHead packet (19 bytes) into out. Returns its length. */
size_t opus_head_emit(uint8_t out[19], int channels, uint16_t pre_skip);

#endif
