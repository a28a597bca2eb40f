#include "pkg/ogg_pkg.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/chunk.h"
#include "deliver/feed.h"

enum { PRE_SKIP = OGG_PKG_PRE_SKIP, SAMPLE_RATE = 48000 };

size_t opus_head_emit(uint8_t out[19], int channels, uint16_t pre_skip)
{
    memcpy(out, "OpusHead", 8);
    out[8] = 1;
    out[9] = (uint8_t)channels;
    out[10] = (uint8_t)(pre_skip & 0xff);
    out[11] = (uint8_t)(pre_skip >> 8);
    uint32_t rate = SAMPLE_RATE;
    for (int i = 0; i < 4; i++)
        out[12 + i] = (uint8_t)(rate >> (8 * i));
    out[16] = out[17] = 0; /* output gain */
    out[18] = 0;           /* mapping family 0: mono or stereo */
    return 19;
}

int ogg_pkg_init(struct ogg_pkg *p, struct feed *feed, uint32_t serial, int chunk_ms)
{
    memset(p, 0, sizeof(*p));
    if (ogg_stream_init(&p->os, (int)serial) != 0) return -ENOMEM;
    p->feed = feed;
    p->chunk_samples = (uint32_t)(chunk_ms * (SAMPLE_RATE / 1000));
    return 0;
}

void ogg_pkg_fini(struct ogg_pkg *p)
{
    ogg_stream_clear(&p->os);
}

/* Flushes every pending page of the stream into one new chunk. Returns the
 * chunk (one reference, sealed) or NULL when nothing was pending. A chunk may
 * hold several pages (libogg ends a page near 4 KiB), however many it takes:
 * a page left behind would land in the next chunk and break its granule. */
static struct chunk *flush_pages(struct ogg_pkg *p)
{
    unsigned char *bytes = NULL;
    size_t total = 0;
    bool is_ok = true;
    ogg_page og;
    while (ogg_stream_flush(&p->os, &og) != 0) {
        /* libogg reuses its buffers on the next call: copy each page now. */
        size_t len = (size_t)(og.header_len + og.body_len);
        unsigned char *grown = is_ok ? realloc(bytes, total + len) : NULL;
        if (!grown) {
            is_ok = false; /* keep draining the stream, drop the chunk */
            continue;
        }
        bytes = grown;
        memcpy(bytes + total, og.header, (size_t)og.header_len);
        memcpy(bytes + total + og.header_len, og.body, (size_t)og.body_len);
        total += len;
    }
    struct chunk *c = is_ok && total ? chunk_new(total) : NULL;
    if (c) {
        memcpy(c->data, bytes, total);
        c->granule = (uint64_t)p->granule;
        c->duration = p->page_samples;
        chunk_seal(c);
    }
    free(bytes);
    return c;
}

static int packet_in(struct ogg_pkg *p, const uint8_t *data, size_t len, int bos)
{
    ogg_packet op = {.packet = (unsigned char *)data,
                     .bytes = (long)len,
                     .b_o_s = bos,
                     .e_o_s = 0,
                     .granulepos = p->granule,
                     .packetno = p->packetno++};
    return ogg_stream_packetin(&p->os, &op) == 0 ? 0 : -ENOMEM;
}

int ogg_pkg_start(struct ogg_pkg *p, int channels, const char *vendor)
{
    uint8_t head[19];
    opus_head_emit(head, channels, PRE_SKIP);
    size_t vlen = strlen(vendor);
    uint8_t tags[128];
    if (vlen > sizeof(tags) - 16) vlen = sizeof(tags) - 16;
    memcpy(tags, "OpusTags", 8);
    for (int i = 0; i < 4; i++)
        tags[8 + i] = (uint8_t)(vlen >> (8 * i));
    memcpy(tags + 12, vendor, vlen);
    memset(tags + 12 + vlen, 0, 4); /* no user comments */
    p->granule = 0;
    if (packet_in(p, head, sizeof(head), 1) < 0) return -ENOMEM;
    /* OpusHead alone on the first page (RFC 7845 section 3). */
    struct chunk *first = flush_pages(p);
    if (packet_in(p, tags, 16 + vlen, 0) < 0) {
        chunk_unref(&first);
        return -ENOMEM;
    }
    struct chunk *second = flush_pages(p);
    if (!first || !second) {
        chunk_unref(&first);
        chunk_unref(&second);
        return -ENOMEM;
    }
    struct chunk *h = chunk_new(first->len + second->len);
    if (h) {
        memcpy(h->data, first->data, first->len);
        memcpy(h->data + first->len, second->data, second->len);
        chunk_seal(h);
    }
    chunk_unref(&first);
    chunk_unref(&second);
    if (!h) return -ENOMEM;
    p->granule = PRE_SKIP;
    p->is_started = 1;
    feed_set_header(p->feed, h);
    return 0;
}

int ogg_pkg_packet(struct ogg_pkg *p, const uint8_t *data, size_t len, int samples)
{
    p->granule += samples;
    p->page_samples += (uint32_t)samples;
    if (packet_in(p, data, len, 0) < 0) return -ENOMEM;
    if (p->page_samples < p->chunk_samples) return 0;
    struct chunk *c = flush_pages(p);
    p->page_samples = 0;
    if (!c) return -ENOMEM;
    feed_publish(p->feed, c);
    return 0;
}
