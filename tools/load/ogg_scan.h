/* An incremental Ogg page scanner: finds page boundaries in a byte stream.
 *
 *   page = "OggS" | version 0 | type | granule (8, LE) | serial (4, LE) | seqno (4, LE) | crc
 *          | nsegs | lacing[nsegs] | body (sum of lacing values)
 *          '------------- 27-byte header -------------'
 *
 * It keeps no page bytes, only counters and whether the body still starts like
 * "OpusHead" or "OpusTags" (enough to tell the header pages from audio), so one scanner costs 40
 * bytes and pages may cross any read boundary. CRCs are not checked. A wrong capture pattern or
 * version starts a resync: bytes are skipped until the next "OggS", and each such episode counts
 * once in `resyncs`.
 *
 * Packet lengths come from the segment table alone: a packet is a run of
 * lacing values of 255 ended by one below 255 (a packet of exactly 255 bytes is
 * 255, 0). `max_packet` is the longest packet that ends on the page. A packet
 * continued across pages (the last lacing value 255, and the next page flagged
 * continued) is counted whole, on the page where it ends: its length is carried
 * from page to page. The carry is dropped when the next page is not flagged
 * continued (the packet was abandoned) or when sync is lost (its first part may
 * be missing), so a length is never overstated, at worst understated.
 *
 * Contract: pure, no allocation. ogg_scan_feed() consumes bytes up to and
 * including the end of the first page that completes in `buf`, fills `*page`,
 * and returns the count consumed with `*has_page` set; if no page completes it
 * consumes everything and clears `*has_page`. Callers loop until `len` is used.
 */
#ifndef TRIBUNE_TOOLS_LOAD_OGG_SCAN_H
#define TRIBUNE_TOOLS_LOAD_OGG_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ogg_scan {
    int64_t granule;    /* of the page being read */
    uint32_t serial;    /* of the page being read */
    uint32_t seqno;     /* of the page being read */
    uint32_t resyncs;   /* lost-sync episodes since init */
    uint32_t pkt_len;   /* the packet in progress: its bytes so far, carried across pages */
    uint16_t body_len;  /* sum of lacing values read so far (at most 255 x 255) */
    uint16_t body_seen; /* body bytes consumed */
    uint16_t max_pkt;   /* longest packet ended so far on this page, saturating */
    uint8_t stage;      /* private: enum in ogg_scan.c */
    uint8_t pos;        /* private: byte index in the header */
    uint8_t nsegs;
    uint8_t segs_seen;
    uint8_t type;
    bool is_resyncing;
    uint8_t opus_match; /* private: which of "OpusHead", "OpusTags" the body still starts with */
};

struct ogg_page {
    int64_t granule; /* -1: no packet ends on this page */
    uint32_t serial;
    uint32_t seqno;
    uint32_t body_len;
    uint32_t max_packet; /* longest packet ending on this page, bytes, saturating at 65535
                          * (0: none ends here) */
    uint8_t type;        /* header_type flags: 1 continued, 2 BOS, 4 EOS */
    bool is_audio;       /* not OpusHead/OpusTags, and granule != 0 */
};

void ogg_scan_init(struct ogg_scan *s);
size_t ogg_scan_feed(struct ogg_scan *s, const uint8_t *buf, size_t len, struct ogg_page *page,
                     bool *has_page);

#endif
