#include "pkg/ws_pkg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/chunk.h"
#include "deliver/feed.h"
#include "http/ws.h"

enum { SAMPLE_RATE = 48000 };

int ws_pkg_init(struct ws_pkg *p, struct feed *feed, const char *space, int chunk_ms)
{
    memset(p, 0, sizeof(*p));
    p->feed = feed;
    p->chunk_samples = (uint32_t)(chunk_ms > 0 ? chunk_ms : 20) * (SAMPLE_RATE / 1000);
    snprintf(p->space, sizeof(p->space), "%s", space);
    return 0;
}

void ws_pkg_fini(struct ws_pkg *p)
{
    free(p->buf);
    p->buf = NULL;
}

int ws_pkg_start(struct ws_pkg *p, int channels)
{
    uint8_t hello[256];
    size_t n = ws_hello_frame(hello, sizeof(hello), p->space, channels);
    struct chunk *h = n ? chunk_new(n) : NULL;
    if (!h) return -ENOMEM;
    memcpy(h->data, hello, n);
    chunk_seal(h);
    p->is_started = 1;
    feed_set_header(p->feed, h);
    return 0;
}

int ws_pkg_packet(struct ws_pkg *p, const uint8_t *data, size_t len, int samples, uint64_t granule)
{
    size_t need = p->len + 10 + WS_AUDIO_HDR + len;
    if (need > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *grown = realloc(p->buf, cap);
        if (!grown) return -ENOMEM;
        p->buf = grown;
        p->cap = cap;
    }
    p->len += ws_frame_header(p->buf + p->len, WS_OP_BINARY, WS_AUDIO_HDR + len);
    ws_audio_header(p->buf + p->len, p->seq++, granule);
    p->len += WS_AUDIO_HDR;
    memcpy(p->buf + p->len, data, len);
    p->len += len;
    p->samples += (uint32_t)samples;
    if (p->samples < p->chunk_samples) return 0;
    struct chunk *c = chunk_new(p->len);
    uint32_t dur = p->samples;
    size_t clen = p->len;
    p->len = 0;
    p->samples = 0;
    if (!c) return -ENOMEM;
    memcpy(c->data, p->buf, clen);
    c->granule = granule;
    c->duration = dur;
    chunk_seal(c);
    feed_publish(p->feed, c);
    return 0;
}
