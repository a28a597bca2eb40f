/* Ogg/Opus ingest demuxer: bytes from a publisher in, validated Opus packets out.
 *
 * Built on libogg (ogg_sync_state for capture/CRC/resync, ogg_stream_state for
 * packet reassembly) and libopus (opus_packet_parse to check every audio packet).
 * Nothing reaches a listener unless it passed these checks:
 *   - the stream starts with "OggS" (otherwise -EPROTONOSUPPORT: not Ogg);
 *   - page CRCs are correct (bad pages and garbage between pages are skipped and
 *     counted in `skipped_bytes`, never delivered);
 *   - exactly one logical stream at a time: a page of another serial while the
 *     current stream has not ended is -EPROTO; a new BOS after EOS (a chained
 *     stream, as ices/liquidsoap send on metadata changes) starts a new stream;
 *   - the first packet of each stream is a valid OpusHead (RFC 7845 5.1: magic,
 *     version major 0, 1..2 channels with mapping family 0 or up to 8 with
 *     family 1, 48 kHz-compatible), the second a valid OpusTags (5.2, lengths
 *     in bounds); a stream that starts with Vorbis/FLAC/Speex/... headers is
 *     -EMEDIUMTYPE with `error` naming what it found; a malformed OpusHead or
 *     OpusTags is -EBADMSG;
 *   - every audio packet parses with opus_packet_parse and lasts 2.5..120 ms
 *     (-EBADMSG otherwise), and is at most OGG_IN_MAX_PACKET bytes (-EMSGSIZE
 *     otherwise; a packet still growing past that across pages is -EMSGSIZE
 *     too, before it is buffered further).
 * Memory: bounded; at most OGG_IN_MAX_BUFFER bytes are buffered without a page.
 * Thread: any, one instance per publisher. No I/O.
 */
#ifndef TRIBUNE_MEDIA_OGG_IN_H
#define TRIBUNE_MEDIA_OGG_IN_H

#include <stddef.h>
#include <stdint.h>

enum {
    OGG_IN_MAX_PACKET = 8192,       /* bytes of one Opus packet */
    OGG_IN_MAX_BUFFER = 256 * 1024, /* buffered bytes without a complete page */
};

struct opus_head {
    uint8_t version;
    uint8_t channels;
    uint16_t pre_skip;
    uint32_t input_rate;
    int16_t output_gain;
    uint8_t mapping_family;
};

struct ogg_in_packet {
    const uint8_t *data; /* borrowed: valid until the next ogg_in_* call */
    size_t len;
    int samples;     /* duration at 48 kHz (120..5760) */
    uint32_t serial; /* logical stream it came from */
};

struct ogg_in; /* opaque */

struct ogg_in *ogg_in_new(void);
void ogg_in_free(struct ogg_in *in);

/* Appends `len` bytes received from the publisher. Returns 0, or -ENOBUFS if
 * more than OGG_IN_MAX_BUFFER bytes are pending without a complete page, or
 * -ENOMEM. Bytes stay pending until ogg_in_next takes them, so call
 * ogg_in_next until it returns 0 between feeds. Once the stream has failed
 * for another reason, bytes are discarded and 0 is returned. */
int ogg_in_feed(struct ogg_in *in, const void *buf, size_t len);

/* Takes the next audio packet. Returns 1 with *out filled, 0 when more bytes are
 * needed, or a negative errno (see above) after which the stream is unusable;
 * ogg_in_error() then says why in words fit for an HTTP error body. Header
 * packets are consumed and validated here, never returned. */
int ogg_in_next(struct ogg_in *in, struct ogg_in_packet *out);

/* The OpusHead of the current stream; NULL before one was seen. */
const struct opus_head *ogg_in_head(const struct ogg_in *in);
const char *ogg_in_error(const struct ogg_in *in); /* "" while no error */
/* True once the first OpusHead and OpusTags were validated. */
int ogg_in_is_ready(const struct ogg_in *in);
uint64_t ogg_in_skipped_bytes(const struct ogg_in *in);
uint64_t ogg_in_pages(const struct ogg_in *in);

/* Pure RFC 7845 parsers, also used by tests and fuzzers. 0 or -EINVAL. */
int opus_head_parse(const uint8_t *p, size_t len, struct opus_head *out);
int opus_tags_check(const uint8_t *p, size_t len);

#endif
