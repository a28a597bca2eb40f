/* The HLS packager: program Opus packets in, fMP4 (CMAF) parts and segments
 * and a live media playlist out, all kept in memory for the master to serve
 * (api/hls.c) to players and HTTP caches.
 *
 *   program --packet--> ogg_pkg, ws_pkg
 *                  +--> hls_pkg: packets --(200 ms)--> part = one moof+mdat fragment
 *                                parts --(2 s)--> segment = its parts' bytes, appended
 *                                segment closed --> playlist text rebuilt (once per segment)
 *
 * Segment slots, a ring indexed by media sequence number (msn % HLS_SLOTS):
 *
 *   msn:  ... [n-12 ... n-7] [n-6 ... n-1]   [n]
 *              kept, served    listed+served  being built (not served)
 *
 * The playlist lists the last HLS_LISTED complete segments; the ones before
 * them stay servable until HLS_KEPT complete segments are newer, so a player
 * or cache holding an older playlist still finds what it lists (RFC 8216
 * 6.2.2). A segment is never changed once complete: its name is
 * seg-<run>-<msn>.m4s, <run> being the program's start time (ms since the
 * epoch, hex), so a restarted server never reuses a name a cache may hold.
 * The init segment is init-<run>.mp4 for the same reason.
 *
 * Timing: sample k of the run plays at wall clock start_wall_ms + k / 48 ms
 * (the program keeps wall-clock pace), which gives each segment's
 * EXT-X-PROGRAM-DATE-TIME. Nothing here reads a clock.
 * Thread: the media loop (the master's). Memory: HLS_SLOTS segment buffers,
 * grown as needed and reused, and the playlist text.
 */
#ifndef TRIBUNE_PKG_HLS_PKG_H
#define TRIBUNE_PKG_HLS_PKG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    HLS_LISTED = 6,        /* complete segments in the playlist */
    HLS_KEPT = 12,         /* complete segments still served */
    HLS_SLOTS = 16,        /* > HLS_KEPT: room for the one being built */
    HLS_PART_MS = 200,     /* audio per part (fragment) */
    HLS_SEGMENT_MS = 2000, /* audio per segment */
    HLS_MAX_PARTS = 32,    /* parts per segment, at most */
    HLS_PART_PACKETS = 64, /* packets per part, at most */
    HLS_RUN_MAX = 20,      /* the run id's text, with its NUL */
};

/* One part: a fragment (moof + mdat) inside its segment's bytes. */
struct hls_part {
    uint32_t off, len; /* into the segment's data */
    uint32_t duration; /* 48 kHz samples */
};

struct hls_segment {
    uint64_t msn;      /* read-only: media sequence number, from 0 per run */
    uint64_t start;    /* read-only: decode time of its first sample (48 kHz, from 0) */
    uint32_t duration; /* read-only: 48 kHz samples */
    int64_t pdt_ms;    /* read-only: wall clock of its first sample, ms since the epoch */
    uint8_t *data;     /* read-only: the parts' fragments, concatenated */
    size_t len, cap;   /* read-only, private */
    struct hls_part parts[HLS_MAX_PARTS]; /* read-only */
    unsigned nparts;                      /* read-only */
    bool is_complete;                     /* read-only: listed and servable */
};

struct hls_pkg {
    struct hls_segment seg[HLS_SLOTS]; /* private: see the diagram */
    uint64_t next_msn;                 /* read-only: the segment being built */
    uint64_t samples;                  /* read-only: samples packaged in this run */
    uint8_t init[1024];                /* read-only: the init segment */
    size_t init_len;                   /* read-only: 0 before the start */
    char run[HLS_RUN_MAX];             /* read-only: this run's id (hex) */
    int64_t start_wall_ms;             /* private */
    uint32_t frag_seq;                 /* private: the next fragment's mfhd number */
    uint32_t part_samples;             /* private: target per part */
    uint32_t segment_samples;          /* private: target per segment */
    unsigned target_s;                 /* read-only: EXT-X-TARGETDURATION */
    /* private: the part being filled: packets' bytes in pbuf */
    uint8_t *pbuf;
    size_t plen, pcap;
    uint32_t pkt_len[HLS_PART_PACKETS], pkt_dur[HLS_PART_PACKETS];
    unsigned npkts;
    uint32_t pend_samples;
    char *playlist;      /* read-only: the current playlist text, NULL before the first segment */
    size_t playlist_len; /* read-only */
    bool is_started;     /* read-only */
    bool is_ended;       /* read-only: the playlist carries EXT-X-ENDLIST */
};

/* Prepares an idle packager (parts of `part_ms`, segments of about
 * `segment_ms`, both rounded to whole parts; <= 0 for the defaults). */
void hls_pkg_init(struct hls_pkg *p, int part_ms, int segment_ms);
void hls_pkg_fini(struct hls_pkg *p);
/* Starts a run: the init segment for `channels` (1 or 2) and `pre_skip`,
 * whose first sample plays at `wall_ms` (ms since the epoch). 0 or -EINVAL. */
int hls_pkg_start(struct hls_pkg *p, int channels, uint16_t pre_skip, int64_t wall_ms);
/* Adds one Opus packet of `samples` (48 kHz). A full part becomes a
 * fragment; a full segment is closed and the playlist rebuilt. 0, -ENOMEM
 * (this packet lost) or -EINVAL (not started, ended, or a bad size). */
int hls_pkg_packet(struct hls_pkg *p, const uint8_t *data, size_t len, int samples);
/* The program ended: what is buffered becomes a last (short) segment and the
 * playlist ends with EXT-X-ENDLIST. Packets are refused from then on. */
void hls_pkg_end(struct hls_pkg *p);
/* The complete, still served segment `msn`, or NULL (not yet, or gone). */
const struct hls_segment *hls_pkg_segment(const struct hls_pkg *p, uint64_t msn);
/* Parses a file name of this run: 1 for "init-<run>.mp4" (and "init.mp4"),
 * 2 for "seg-<run>-<msn>.m4s" with *msn set, 0 for anything else
 * (another run's names included). Pure. */
int hls_pkg_parse_name(const struct hls_pkg *p, const char *name, size_t len, uint64_t *msn);
/* Writes segment `msn`'s file name. Returns its length (snprintf's). */
int hls_pkg_segment_name(const struct hls_pkg *p, uint64_t msn, char *out, size_t cap);

#endif
