/* Fuzz driver for media/ogg_in and its RFC 7845 parsers.
 *
 * The input is demuxed twice, once fed whole and once in small pieces of varying sizes with
 * the packets drained after each piece; both runs must deliver the same packets, end with the
 * same result and count the same pages. Every delivered packet must satisfy the contract
 * (size bound, 120..5760 samples agreeing with libopus), and its bytes are read in full so the
 * sanitizers catch a borrowed pointer that outlived its buffer.
 *
 * Random mutations nearly always break a page CRC, which would keep the fuzzer at the door of
 * ogg_sync; so a copy of the input with every page's CRC recomputed is demuxed too. */
#include "media/ogg_in.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ogg/ogg.h>
#include <opus/opus.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    uint64_t hash; /* FNV-1a over every packet's length, samples, serial and bytes */
    int packets;
    int rc;
    uint64_t pages;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void check_packet(const struct ogg_in_packet *pkt, struct outcome *o)
{
    if (pkt->len == 0 || pkt->len > OGG_IN_MAX_PACKET) abort();
    if (pkt->samples < 120 || pkt->samples > 5760) abort();
    if (opus_packet_get_nb_samples(pkt->data, (opus_int32)pkt->len, 48000) != pkt->samples) abort();
    o->hash = fnv(o->hash, &pkt->len, sizeof(pkt->len));
    o->hash = fnv(o->hash, &pkt->samples, sizeof(pkt->samples));
    o->hash = fnv(o->hash, &pkt->serial, sizeof(pkt->serial));
    o->hash = fnv(o->hash, pkt->data, pkt->len);
    o->packets++;
}

/* Feeds one piece and drains; returns nonzero once the stream failed. */
static int feed_piece(struct ogg_in *in, const uint8_t *p, size_t n, struct outcome *o)
{
    struct ogg_in_packet pkt;

    if (ogg_in_feed(in, p, n) < 0) {
        o->rc = ogg_in_next(in, &pkt);
        return 1;
    }
    while ((o->rc = ogg_in_next(in, &pkt)) == 1) {
        check_packet(&pkt, o);
        if (ogg_in_head(in) == NULL || !ogg_in_is_ready(in)) abort();
    }
    if (o->rc < 0 && ogg_in_error(in)[0] == '\0') abort();
    return o->rc < 0;
}

/* piece == 0 feeds everything at once; otherwise pieces of 1..piece bytes. */
static void demux(const uint8_t *data, size_t size, size_t piece, struct outcome *o)
{
    struct ogg_in *in = ogg_in_new();
    uint32_t seed = (uint32_t)size * 2654435761u;
    size_t off = 0, n;

    if (!in) abort();
    memset(o, 0, sizeof(*o));
    o->hash = 0xcbf29ce484222325ull;
    do {
        n = size - off;
        if (piece) {
            seed = seed * 1103515245u + 12345u;
            n = n < 1 + (seed >> 16) % piece ? n : 1 + (seed >> 16) % piece;
        }
        if (feed_piece(in, data + off, n, o)) break;
        off += n;
    } while (off < size);
    o->pages = ogg_in_pages(in);
    ogg_in_free(in);
}

/* Length of the complete page at p (capture pattern, header, lacing, body), or 0. */
static size_t page_len(const uint8_t *p, size_t n)
{
    size_t len;

    if (n < 27 || memcmp(p, "OggS", 4) != 0 || n < 27 + (size_t)p[26]) return 0;
    len = 27 + (size_t)p[26];
    for (int i = 0; i < p[26]; i++)
        len += p[27 + i];
    return len <= n ? len : 0;
}

/* Rewrites the CRC of every complete page found in p with libogg's own checksum. */
static void fix_crcs(uint8_t *p, size_t n)
{
    size_t off = 0, len;
    ogg_page og;

    while (off < n) {
        len = page_len(p + off, n - off);
        if (len == 0) {
            off++;
            continue;
        }
        og.header = p + off;
        og.header_len = 27 + p[off + 26];
        og.body = p + off + og.header_len;
        og.body_len = (long)len - og.header_len;
        ogg_page_checksum_set(&og);
        off += len;
    }
}

/* Demuxes whole and in pieces, and insists both agree. */
static void demux_both(const uint8_t *data, size_t size)
{
    struct outcome whole, split;

    demux(data, size, 0, &whole);
    demux(data, size, 97, &split);
    if (whole.hash != split.hash || whole.packets != split.packets || whole.rc != split.rc ||
        whole.pages != split.pages)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct opus_head head;
    uint8_t *copy;

    opus_head_parse(data, size, &head);
    opus_tags_check(data, size);
    if (size > OGG_IN_MAX_BUFFER) return 0;
    demux_both(data, size);
    copy = malloc(size ? size : 1);
    if (!copy) abort();
    memcpy(copy, data, size);
    fix_crcs(copy, size);
    if (memcmp(copy, data, size) != 0) demux_both(copy, size);
    free(copy);
    return 0;
}
