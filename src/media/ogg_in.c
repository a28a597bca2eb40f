/* Ogg/Opus ingest demuxer (contract in ogg_in.h).
 *
 * The bytes flow through two libogg stages and one check of our own:
 *
 *   ogg_in_feed --> ogg_sync_state --pageseek--> admit_page --pagein--> ogg_stream_state
 *                   (capture, CRC,   (negative:    (serial, BOS,       (packet reassembly)
 *                    resync)          skipped)      EOS rules)                |
 *                                                                   packetout  v
 *                         ogg_in_next <-- audio <-- take_packet: OpusHead -> OpusTags -> audio
 *
 * Invariants that bound memory:
 *   - the sync buffer holds at most OGG_IN_MAX_BUFFER bytes not yet taken as pages (feed refuses
 *     more; ogg_in_next drains it, skipping garbage as it goes);
 *   - a page is paged in only once every complete packet of the stream was taken out, so what
 *     the stream buffer holds is one partial packet (bounded below) plus one page (<= 65307 bytes);
 *   - a partial packet larger than its phase allows (OGG_IN_MAX_PACKET for audio, HEADER_MAX
 *     for headers, which may carry cover art) fails with -EMSGSIZE before the next page.
 * Errors are sticky: once `err` is set, every call reports it and no bytes are consumed.
 */
#include "media/ogg_in.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ogg/ogg.h>
#include <opus/opus.h>

enum {
    HEADER_MAX = OGG_IN_MAX_BUFFER, /* bytes of OpusHead or OpusTags (tags may hold pictures) */
    OPUS_HEAD_MIN = 19,             /* RFC 7845 5.1, mapping family 0 */
    OPUS_TAGS_MIN = 16,             /* magic, vendor length, comment count */
};

enum phase {
    PHASE_HEAD, /* next packet must be OpusHead */
    PHASE_TAGS, /* next packet must be OpusTags */
    PHASE_AUDIO,
};

struct ogg_in {
    ogg_sync_state sync;
    ogg_stream_state stream;
    uint8_t magic[4]; /* first body bytes, until 4 were seen */
    size_t magic_len; /* 4 once the body was found to start with "OggS" */
    int has_stream;   /* `stream` follows serial `serial` */
    int has_ended;    /* an EOS page of `serial` was paged in */
    int has_head;     /* `head` holds a validated OpusHead */
    int is_ready;     /* the first OpusHead and OpusTags were validated */
    enum phase phase;
    uint32_t serial;
    struct opus_head head;
    uint64_t skipped;
    uint64_t pages;
    int err; /* sticky negative errno, 0 while usable */
    char error[160];
};

/* Records the first error with its explanation and returns it. */
static int fail(struct ogg_in *in, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct ogg_in *in, int err, const char *fmt, ...)
{
    va_list ap;

    if (in->err) return in->err;
    va_start(ap, fmt);
    vsnprintf(in->error, sizeof(in->error), fmt, ap);
    va_end(ap);
    in->err = err;
    return err;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- RFC 7845 header parsers ---- */

/* Checks the channel mapping table of family 1 (RFC 7845 5.1.1.2): stream count N >= 1,
 * coupled count M <= N, and every entry below N + M or 255 (silence). */
static const char *check_mapping(const uint8_t *p, size_t len, unsigned channels)
{
    unsigned streams, coupled;

    if (len < OPUS_HEAD_MIN + 2 + (size_t)channels) return "channel mapping table is truncated";
    streams = p[19];
    coupled = p[20];
    if (streams == 0 || coupled > streams || streams + coupled > 255)
        return "stream counts are invalid";
    for (unsigned i = 0; i < channels; i++)
        if (p[21 + i] != 255 && p[21 + i] >= streams + coupled)
            return "channel mapping names a stream that does not exist";
    return NULL;
}

/* The parser behind opus_head_parse: NULL when valid, otherwise what is wrong. The input rate is
 * informational only (Opus always decodes at 48 kHz), so any value is accepted. */
static const char *parse_head(const uint8_t *p, size_t len, struct opus_head *out)
{
    struct opus_head h;

    if (len < OPUS_HEAD_MIN || memcmp(p, "OpusHead", 8) != 0)
        return "too short or missing its magic";
    h.version = p[8];
    h.channels = p[9];
    h.pre_skip = le16(p + 10);
    h.input_rate = le32(p + 12);
    h.output_gain = (int16_t)le16(p + 16);
    h.mapping_family = p[18];
    if (h.version > 15) return "its major version is not 0";
    if (h.channels == 0) return "declares 0 channels";
    if (h.mapping_family == 0 && h.channels > 2)
        return "declares more than 2 channels with mapping family 0";
    if (h.mapping_family == 1 && h.channels > 8)
        return "declares more than 8 channels with mapping family 1";
    if (h.mapping_family > 1) return "uses an unsupported channel mapping family";
    if (h.mapping_family == 1) {
        const char *why = check_mapping(p, len, h.channels);
        if (why) return why;
    }
    *out = h;
    return NULL;
}

int opus_head_parse(const uint8_t *p, size_t len, struct opus_head *out)
{
    return parse_head(p, len, out) ? -EINVAL : 0;
}

/* Reads a 32-bit length at *pos and steps over it and the bytes it counts; NULL when they fit. */
static const char *skip_counted(const uint8_t *p, size_t len, size_t *pos)
{
    uint32_t n;

    if (len - *pos < 4) return "a length field is truncated";
    n = le32(p + *pos);
    *pos += 4;
    if (n > len - *pos) return "a length runs past the end of the packet";
    *pos += n;
    return NULL;
}

/* RFC 7845 5.2: magic, vendor string, comment count, comments. Trailing bytes are allowed. */
static const char *check_tags(const uint8_t *p, size_t len)
{
    size_t pos = 8;
    uint32_t count;
    const char *why;

    if (len < OPUS_TAGS_MIN || memcmp(p, "OpusTags", 8) != 0)
        return "too short or missing its magic";
    why = skip_counted(p, len, &pos);
    if (why) return why;
    if (len - pos < 4) return "the comment count is truncated";
    count = le32(p + pos);
    pos += 4;
    /* Each comment takes at least 4 bytes, so the loop is bounded by `len`. */
    for (uint32_t i = 0; i < count; i++) {
        why = skip_counted(p, len, &pos);
        if (why) return why;
    }
    return NULL;
}

int opus_tags_check(const uint8_t *p, size_t len)
{
    return check_tags(p, len) ? -EINVAL : 0;
}

/* ---- packets ---- */

/* Names the codec of a first packet that is not OpusHead, or NULL when it is unknown. */
static const char *codec_name(const uint8_t *p, size_t len)
{
    static const struct {
        const char *magic;
        size_t len;
        const char *name;
    } codecs[] = {
        {"\x01vorbis", 7, "Ogg/Vorbis"},
        {"\x7f"
         "FLAC",
         5, "Ogg/FLAC"},
        {"Speex   ", 8, "Ogg/Speex"},
        {"\x80theora", 7, "Ogg/Theora"},
        {"fishead", 8, "Ogg Skeleton"},
        {"OpusTags", 8, "OpusTags before OpusHead"},
    };

    for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
        if (len >= codecs[i].len && memcmp(p, codecs[i].magic, codecs[i].len) == 0)
            return codecs[i].name;
    return NULL;
}

static int take_head(struct ogg_in *in, const ogg_packet *op)
{
    const char *why;
    const char *codec;
    size_t len = (size_t)op->bytes;

    if (len < 8 || memcmp(op->packet, "OpusHead", 8) != 0) {
        codec = codec_name(op->packet, len);
        if (codec) return fail(in, -EMEDIUMTYPE, "%s is not supported: publish Ogg/Opus", codec);
        return fail(in, -EMEDIUMTYPE, "first packet is not OpusHead: publish Ogg/Opus");
    }
    why = parse_head(op->packet, len, &in->head);
    if (why) return fail(in, -EBADMSG, "invalid OpusHead: %s", why);
    in->has_head = 1;
    in->phase = PHASE_TAGS;
    return 0;
}

static int take_tags(struct ogg_in *in, const ogg_packet *op)
{
    const char *why = check_tags(op->packet, (size_t)op->bytes);

    if (why) return fail(in, -EBADMSG, "invalid OpusTags (second packet): %s", why);
    in->is_ready = 1;
    in->phase = PHASE_AUDIO;
    return 0;
}

/* Validates one audio packet with libopus and fills *out; 1, or a negative errno. */
static int take_audio(struct ogg_in *in, const ogg_packet *op, struct ogg_in_packet *out)
{
    const unsigned char *frames[48];
    opus_int16 sizes[48];
    unsigned char toc;
    int samples;

    if (op->bytes > OGG_IN_MAX_PACKET)
        return fail(in, -EMSGSIZE, "an Opus packet of %ld bytes exceeds the limit of %d", op->bytes,
                    OGG_IN_MAX_PACKET);
    /* For mapping family 1 this checks the first stream of the multistream packet. */
    if (opus_packet_parse(op->packet, (opus_int32)op->bytes, &toc, frames, sizes, NULL) < 0)
        return fail(in, -EBADMSG, "Ogg packet %lld is not a valid Opus packet (%ld bytes)",
                    (long long)op->packetno, op->bytes);
    samples = opus_packet_get_nb_samples(op->packet, (opus_int32)op->bytes, 48000);
    if (samples < 120 || samples > 5760)
        return fail(in, -EBADMSG, "an Opus packet lasts %d samples, outside 2.5..120 ms", samples);
    out->data = op->packet;
    out->len = (size_t)op->bytes;
    out->samples = samples;
    out->serial = in->serial;
    return 1;
}

/* Header packets are consumed (0); an audio packet is returned (1); or a negative errno. */
static int take_packet(struct ogg_in *in, const ogg_packet *op, struct ogg_in_packet *out)
{
    switch (in->phase) {
    case PHASE_HEAD:
        return take_head(in, op);
    case PHASE_TAGS:
        return take_tags(in, op);
    default:
        return take_audio(in, op, out);
    }
}

/* A packet still being reassembled must stay within what its phase allows, or the stream
 * buffer would grow page after page. Called when no complete packet is left. */
static int check_partial(struct ogg_in *in)
{
    long partial = in->stream.body_fill - in->stream.body_returned;
    long limit = in->phase == PHASE_AUDIO ? OGG_IN_MAX_PACKET : HEADER_MAX;

    if (partial > limit)
        return fail(in, -EMSGSIZE, "a packet spans pages beyond the limit of %ld bytes", limit);
    return 0;
}

/* Takes packets out of the stream until one is audio; 0 when the stream needs another page. */
static int next_packet(struct ogg_in *in, struct ogg_in_packet *out)
{
    ogg_packet op;
    int rc;

    for (;;) {
        rc = ogg_stream_packetout(&in->stream, &op);
        if (rc == 0) return check_partial(in);
        if (rc < 0) continue; /* a hole left by a skipped page; libogg dropped the broken packet */
        rc = take_packet(in, &op, out);
        if (rc != 0) return rc;
    }
}

/* ---- pages ---- */

/* A BOS page when no stream is running, or after the running one ended (a chained stream). */
static void start_stream(struct ogg_in *in, uint32_t serial)
{
    ogg_stream_reset_serialno(&in->stream, (int)serial);
    in->serial = serial;
    in->has_stream = 1;
    in->has_ended = 0;
    in->phase = PHASE_HEAD;
}

/* Applies the one-logical-stream-at-a-time rule to a page before libogg sees it. */
static int admit_page(struct ogg_in *in, ogg_page *og)
{
    uint32_t serial = (uint32_t)ogg_page_serialno(og);
    int is_bos = ogg_page_bos(og);

    if (in->has_stream && !in->has_ended && serial == in->serial && !is_bos) return 0;
    if (is_bos && (!in->has_stream || in->has_ended)) {
        start_stream(in, serial);
        return 0;
    }
    if (!in->has_stream)
        return fail(in, -EPROTO, "the stream does not begin with a beginning-of-stream page");
    if (in->has_ended)
        return fail(in, -EPROTO,
                    "a page of serial %08x follows the end of the stream without "
                    "starting a new one",
                    serial);
    if (serial != in->serial)
        return fail(in, -EPROTO,
                    "a second logical stream (serial %08x) is interleaved: "
                    "multiplexed Ogg is not supported",
                    serial);
    return fail(in, -EPROTO, "a beginning-of-stream page appears in the middle of the stream");
}

/* Moves the next page with a good CRC into the stream; 1, 0 when more bytes are needed, or a
 * negative errno. Bytes skipped while looking for it are counted. */
static int next_page(struct ogg_in *in)
{
    ogg_page og;
    long n;

    while ((n = ogg_sync_pageseek(&in->sync, &og)) < 0)
        in->skipped += (uint64_t)-n;
    if (n == 0) return 0;
    if (admit_page(in, &og) < 0) return in->err;
    if (ogg_stream_pagein(&in->stream, &og) != 0)
        return fail(in, -EPROTO, "unsupported Ogg page version %d", ogg_page_version(&og));
    in->pages++;
    if (ogg_page_eos(&og)) in->has_ended = 1;
    return 1;
}

/* ---- public ---- */

struct ogg_in *ogg_in_new(void)
{
    struct ogg_in *in = calloc(1, sizeof(*in));

    if (!in) return NULL;
    ogg_sync_init(&in->sync);
    if (ogg_stream_init(&in->stream, 0) != 0) {
        ogg_sync_clear(&in->sync);
        free(in);
        return NULL;
    }
    return in;
}

void ogg_in_free(struct ogg_in *in)
{
    if (!in) return;
    ogg_stream_clear(&in->stream);
    ogg_sync_clear(&in->sync);
    free(in);
}

/* Names what a body that is not Ogg looks like, to make the error actionable. */
static const char *body_kind(const uint8_t *m)
{
    if (memcmp(m, "ID3", 3) == 0 || (m[0] == 0xff && (m[1] & 0xe0) == 0xe0))
        return " (it looks like MP3 or AAC)";
    if (memcmp(m, "\x1a\x45\xdf\xa3", 4) == 0) return " (it looks like WebM/Matroska)";
    if (memcmp(m, "fLaC", 4) == 0) return " (it looks like raw FLAC)";
    if (memcmp(m, "RIFF", 4) == 0) return " (it looks like WAV)";
    return "";
}

/* Collects the first 4 bytes of the body and checks they are "OggS". */
static void check_magic(struct ogg_in *in, const uint8_t *p, size_t len)
{
    size_t n = sizeof(in->magic) - in->magic_len;

    if (n == 0) return;
    if (n > len) n = len;
    memcpy(in->magic + in->magic_len, p, n);
    in->magic_len += n;
    if (in->magic_len == sizeof(in->magic) && memcmp(in->magic, "OggS", 4) != 0)
        fail(in, -EPROTONOSUPPORT, "body is not an Ogg stream%s: publish Ogg/Opus",
             body_kind(in->magic));
}

int ogg_in_feed(struct ogg_in *in, const void *buf, size_t len)
{
    size_t pending = (size_t)(in->sync.fill - in->sync.returned);
    char *dst;

    /* Errors of feed's own are repeated; the others are reported by ogg_in_next. */
    if (in->err) return in->err == -ENOBUFS || in->err == -ENOMEM ? in->err : 0;
    if (len == 0) return 0;
    if (len > OGG_IN_MAX_BUFFER - pending)
        return fail(in, -ENOBUFS, "more than %d bytes arrived without a complete Ogg page",
                    OGG_IN_MAX_BUFFER);
    check_magic(in, buf, len);
    if (in->err) return 0;
    dst = ogg_sync_buffer(&in->sync, (long)len);
    if (!dst) return fail(in, -ENOMEM, "out of memory");
    memcpy(dst, buf, len);
    ogg_sync_wrote(&in->sync, (long)len);
    return 0;
}

int ogg_in_next(struct ogg_in *in, struct ogg_in_packet *out)
{
    int rc;

    if (in->err) return in->err;
    if (in->magic_len < sizeof(in->magic)) return 0;
    for (;;) {
        rc = next_packet(in, out);
        if (rc != 0) return rc;
        rc = next_page(in);
        if (rc <= 0) return rc;
    }
}

const struct opus_head *ogg_in_head(const struct ogg_in *in)
{
    return in->has_head ? &in->head : NULL;
}

const char *ogg_in_error(const struct ogg_in *in)
{
    return in->err ? in->error : "";
}

int ogg_in_is_ready(const struct ogg_in *in)
{
    return in->is_ready;
}

uint64_t ogg_in_skipped_bytes(const struct ogg_in *in)
{
    return in->skipped;
}

uint64_t ogg_in_pages(const struct ogg_in *in)
{
    return in->pages;
}
