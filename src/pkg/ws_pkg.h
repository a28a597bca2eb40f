/* The WebSocket packager: program Opus packets in, WebSocket chunks out.
 *
 * Each chunk is the concatenation of complete, unmasked server binary frames,
 * one per Opus packet (http/ws.h: frame header, 13-byte audio header, the
 * packet), so any listener can start at any chunk and every listener of the
 * space shares the same bytes. The packets are the Ogg stream's (same bytes),
 * the timestamp is the Ogg granule at the end of the packet, the sequence
 * counts packets from 0. The header chunk is the hello text frame.
 *
 *   program --packet--> ogg_pkg --> ogg feed
 *                  +--> ws_pkg  --> ws feed (chunks of FEED_WS_CHUNK_MS: one packet)
 * Thread: the media loop.
 */
#ifndef TRIBUNE_PKG_WS_PKG_H
#define TRIBUNE_PKG_WS_PKG_H

#include <stddef.h>
#include <stdint.h>

struct feed;

struct ws_pkg {
    struct feed *feed;      /* private: where chunks go */
    uint8_t *buf;           /* private: frames of the chunk being filled */
    size_t len, cap;        /* private */
    uint32_t seq;           /* read-only: sequence of the next packet */
    uint32_t samples;       /* private: samples in the chunk being filled */
    uint32_t chunk_samples; /* private: target samples per chunk */
    char space[40];         /* private: for the hello */
    int is_started;         /* read-only */
};

int ws_pkg_init(struct ws_pkg *p, struct feed *feed, const char *space, int chunk_ms);
void ws_pkg_fini(struct ws_pkg *p);
/* Emits the header chunk (the hello) for a program of `channels`. */
int ws_pkg_start(struct ws_pkg *p, int channels);
/* Adds one Opus packet of `samples` ending at program granule `granule`;
 * publishes a chunk each time it holds chunk_ms of audio. 0 or -ENOMEM. */
int ws_pkg_packet(struct ws_pkg *p, const uint8_t *data, size_t len, int samples, uint64_t granule);

#endif
