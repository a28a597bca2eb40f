/* The progressive Ogg/Opus player: sends a GET, reads the response head, then
 * reads the body as fast as it comes, finds Ogg pages and feeds the hearing
 * meter (meter.h: audio time per span, gaps, skips). One struct player per
 * connection, inside load_conn.priv. With --trace I, listener I prints every
 * judged span to stderr.
 *
 * --loud-bytes N: the wall-clock time (CLOCK_REALTIME, read when the page is
 * parsed) of the listener's first audio page on which a packet longer than N
 * bytes ends. Packet lengths come from the segment table (ogg_scan.h: a packet
 * continued across pages counts whole, on the page where it ends). Opus
 * encodes digital silence in a few bytes per packet and a tone in tens to
 * hundreds, so this marks when sound, not just a stream, reached the listener.
 * The time is read when the page is parsed, just after the read() that
 * completed it.
 *
 * The WebSocket player (ws_player_ops, for URLs ending in /ws) is the same
 * listener on Tribune's low-latency path: a WebSocket handshake (101), then
 * server frames; each binary audio message (src/http/ws.h: type, sequence,
 * timestamp, one Opus packet) is one "page" for the meter, its sequence number
 * the page number and its timestamp the granule. Text frames (the hello) are
 * skipped; a close frame ends the connection. Frames are parsed as they come,
 * across any read boundary, keeping no payload bytes.
 */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http_resp.h"
#include "meter.h"
#include "ogg_scan.h"

/* Server frames on the WebSocket path, parsed incrementally. */
struct ws_scan {
    uint32_t left;    /* payload bytes of the current frame still to come */
    uint8_t hdr[10];  /* the frame header being read */
    uint8_t hdr_have; /* its bytes so far */
    uint8_t hdr_need; /* 2, then 4 or 10 once the length byte is known */
    uint8_t opcode;   /* of the current frame */
    uint8_t ah_have;  /* audio header bytes read */
    uint8_t ah[13];   /* the audio message header */
    uint16_t pkt_len; /* Opus bytes of the current audio message, saturating */
};

struct player {
    struct meter meter;
    int64_t loud_unix_us; /* --loud-bytes: first loud page, unix us; 0: none yet */
    struct http_head head;
    uint32_t pages;
    uint32_t audio_bytes;
    bool is_traced; /* this is listener --trace I */
    bool is_ws;     /* the WebSocket player: `u.ws`, else `u.ogg` */
    union {
        struct {
            struct ogg_scan scan;
            struct http_chunked chunked;
        } ogg;
        struct ws_scan ws;
    } u;
};

_Static_assert(sizeof(struct player) <= LOAD_CONN_PRIV, "struct player must fit in priv");

static struct meter_cfg cfg;
static int64_t trace_index = -1;
static int64_t trace_t0_us;
static uint32_t loud_bytes;

void player_configure(const struct load_opts *o, int64_t t0_us)
{
    /* batched reads: spans of at least 8 read intervals keep the boundary error
     * (one page at most) small against the span */
    cfg.span_us = (int64_t)o->read_interval_ms * 8000;
    if (cfg.span_us < METER_SPAN_US) cfg.span_us = METER_SPAN_US;
    cfg.warmup_us = (int64_t)o->warmup_ms * 1000;
    cfg.max_gap_us = (int64_t)o->max_gap_ms * 1000;
    cfg.min_ratio_pm = o->min_pct * 10;
    trace_index = o->trace_listener;
    trace_t0_us = t0_us;
    loud_bytes = o->loud_bytes;
}

static struct player *player_of(struct load_conn *c)
{
    return (struct player *)c->priv;
}

static const struct player *cplayer_of(const struct load_conn *c)
{
    return (const struct player *)c->priv;
}

static int render_request(const struct load_target *t, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tribune-load\r\n"
                     "Icy-MetaData: 0\r\n\r\n",
                     t->path, t->host);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

static void on_open(struct load_conn *c)
{
    struct player *p = player_of(c);

    p->is_traced = (int64_t)c->index == trace_index;
    ogg_scan_init(&p->u.ogg.scan);
    meter_init(&p->meter);
    http_head_init(&p->head);
    http_chunked_init(&p->u.ogg.chunked);
    p->pages = 0;
    p->audio_bytes = 0;
    p->loud_unix_us = 0;
    p->is_ws = false;
}

/* One line per judged span of the traced listener. */
static void trace_span(const struct player *p, int64_t now_us)
{
    const struct meter *m = &p->meter;

    fprintf(stderr, "trace: listener %u t=%.3fs span %u ms audio %u ms (%.1f %%) %s skips %u\n",
            (unsigned)trace_index, (double)(now_us - trace_t0_us) / 1e6, m->last_span_ms,
            m->last_audio_ms,
            m->last_span_ms > 0 ? 100.0 * m->last_audio_ms / m->last_span_ms : 0.0,
            m->state == METER_HEARING ? "pass" : "FAIL", m->skips);
}

/* One audio page (or WebSocket audio message) of `body_len` bytes whose
 * longest packet is `max_packet` bytes. */
static void on_audio(struct player *p, const struct meter_page *mp, uint32_t body_len,
                     uint32_t max_packet, int64_t now_us)
{
    uint16_t spans = p->meter.spans;

    if (p->meter.first_audio_us != 0) p->audio_bytes += body_len;
    if (loud_bytes > 0 && p->loud_unix_us == 0 && max_packet > loud_bytes)
        p->loud_unix_us = load_unix_us();
    meter_on_page(&p->meter, &cfg, now_us, mp);
    if (p->meter.spans != spans && p->is_traced) trace_span(p, now_us);
}

static void on_audio_page(struct player *p, const struct ogg_page *page, int64_t now_us)
{
    struct meter_page mp = {.granule = page->granule, .serial = page->serial, .seqno = page->seqno};

    on_audio(p, &mp, page->body_len, page->max_packet, now_us);
}

/* Body bytes (already de-chunked): every complete audio page goes to the meter. */
static void on_body(struct player *p, const uint8_t *buf, size_t len, int64_t now_us)
{
    while (len > 0) {
        struct ogg_page page;
        bool has_page;
        size_t n = ogg_scan_feed(&p->u.ogg.scan, buf, len, &page, &has_page);

        buf += n;
        len -= n;
        if (!has_page) continue;
        p->pages++;
        if (page.is_audio) on_audio_page(p, &page, now_us);
    }
}

/* Reads the response head while it is not complete, and moves *buf and *len
 * past it. Returns CLOSE_NONE, or the reason to close (c->reason set too): a
 * malformed head, or a status outside [lo, hi] (a refusal). */
static int read_head(struct load_conn *c, struct player *p, uint8_t **buf, size_t *len, int lo,
                     int hi)
{
    if (c->status != 0) return CLOSE_NONE;
    ssize_t n = http_head_parse(&p->head, *buf, *len);

    if (n == -2) {
        n = (ssize_t)*len; /* all of it is head so far */
    } else if (n < 0) {
        return c->reason = CLOSE_PROTO;
    } else {
        c->status = p->head.status;
        if (c->status < lo || c->status > hi) return c->reason = CLOSE_REFUSED;
    }
    *buf += n;
    *len -= (size_t)n;
    return CLOSE_NONE;
}

static int on_data(struct load_conn *c, uint8_t *buf, size_t len, int64_t now_us)
{
    struct player *p = player_of(c);
    int r = read_head(c, p, &buf, &len, 200, 299);

    if (r != CLOSE_NONE) return r;
    if (p->head.is_chunked && len > 0) {
        ssize_t n = http_chunked_decode(&p->u.ogg.chunked, buf, len);
        if (n < 0) return CLOSE_PROTO;
        len = (size_t)n;
    }
    on_body(p, buf, len, now_us);
    return p->u.ogg.chunked.is_done ? CLOSE_EOF : CLOSE_NONE;
}

static void on_tick(struct load_conn *c, int64_t now_us)
{
    struct player *p = player_of(c);
    bool was_stalled = p->meter.has_stalled;

    meter_tick(&p->meter, &cfg, now_us);
    if (!was_stalled && p->meter.has_stalled && p->is_traced)
        fprintf(stderr, "trace: listener %u t=%.3fs gap over %u ms: FAIL\n", (unsigned)trace_index,
                (double)(now_us - trace_t0_us) / 1e6, (unsigned)(cfg.max_gap_us / 1000));
}

static void tally_open(const struct player *p, struct load_counts *k)
{
    switch (p->meter.state) {
    case METER_WAITING:
        k->waiting++;
        break;
    case METER_WARMING:
        k->warming++;
        break;
    case METER_HEARING:
        k->hearing++;
        if (meter_is_clean(&p->meter)) k->hearing_clean++;
        break;
    default:
        k->stalled++;
    }
}

/* The meter's figures that are not states: spans, skips, audio credited. */
static void tally_meter(const struct meter *m, struct load_counts *k)
{
    if (m->first_audio_us != 0) k->got_audio++;
    if (m->has_stalled) k->ever_stalled++;
    if (m->skips > 0) k->ever_skipped++;
    k->skips += m->skips;
    k->audio_samples += m->samples;
    if (m->spans == 0) return;
    k->judged++;
    if (m->worst_pm < cfg.min_ratio_pm) k->spans_low++;
    if (m->worst_pm < k->worst_pm) k->worst_pm = m->worst_pm;
}

static void tally(const struct load_conn *c, struct load_counts *k, int64_t now_us)
{
    const struct player *p = cplayer_of(c);
    uint32_t gap = meter_max_gap_ms(&p->meter, now_us);

    if (c->state == CONN_CLOSED || (c->flags & CONN_F_STOPPED)) gap = p->meter.max_gap_ms;
    if (c->state == CONN_READING && c->status != 0) tally_open(p, k);
    tally_meter(&p->meter, k);
    if (gap > k->max_gap_ms) k->max_gap_ms = gap;
    k->pages += p->pages;
    k->audio_bytes += p->audio_bytes;
    if (!p->is_ws) k->resyncs += p->u.ogg.scan.resyncs;
}

static int64_t join_us(const struct load_conn *c)
{
    const struct player *p = cplayer_of(c);

    return p->meter.first_audio_us != 0 ? p->meter.first_audio_us - c->start_us : -1;
}

static int64_t loud_unix_us(const struct load_conn *c)
{
    const struct player *p = cplayer_of(c);

    return p->loud_unix_us != 0 ? p->loud_unix_us : -1;
}

/* --stop-reading: from now on this listener is stalled, not hearing. */
static void on_stop(struct load_conn *c, int64_t now_us)
{
    struct player *p = player_of(c);

    meter_stop(&p->meter);
    if (p->is_traced)
        fprintf(stderr, "trace: listener %u t=%.3fs stopped reading: FAIL\n", (unsigned)trace_index,
                (double)(now_us - trace_t0_us) / 1e6);
}

/* --retry: the refusal's Retry-After, when its head was read. */
static int32_t retry_after_s(const struct load_conn *c)
{
    const struct player *p = cplayer_of(c);

    if (c->status == 0 || p->head.retry_after == HTTP_RETRY_AFTER_NONE) return -1;
    return p->head.retry_after;
}

const struct client_ops player_ops = {
    .name = "ogg",
    .render_request = render_request,
    .on_open = on_open,
    .on_data = on_data,
    .on_tick = on_tick,
    .tally = tally,
    .join_us = join_us,
    .on_stop = on_stop,
    .retry_after_s = retry_after_s,
    .loud_unix_us = loud_unix_us,
};

/* ---- the WebSocket player ------------------------------------------------------------------- */

enum { WS_OP_TEXT = 1, WS_OP_BINARY = 2, WS_OP_CLOSE = 8, WS_AUDIO = 1, WS_AUDIO_HDR = 13 };

static int ws_render_request(const struct load_target *t, char *buf, size_t cap)
{
    /* One key for every connection: the server only proves it read it. */
    int n = snprintf(buf, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tribune-load\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     t->path, t->host);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

static void ws_on_open(struct load_conn *c)
{
    struct player *p = player_of(c);

    on_open(c);
    memset(&p->u.ws, 0, sizeof(p->u.ws));
    p->u.ws.hdr_need = 2;
    p->is_ws = true;
}

static uint64_t be_uint(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | b[i];
    return v;
}

/* The frame in `ws` is complete: an audio message goes to the meter. */
static void ws_frame_done(struct player *p, int64_t now_us)
{
    struct ws_scan *ws = &p->u.ws;

    if (ws->opcode == WS_OP_BINARY && ws->ah_have == WS_AUDIO_HDR && ws->ah[0] == WS_AUDIO) {
        struct meter_page mp = {
            .granule = (int64_t)be_uint(ws->ah + 5, 8),
            .serial = 1,
            .seqno = (uint32_t)be_uint(ws->ah + 1, 4),
        };
        p->pages++;
        on_audio(p, &mp, ws->pkt_len + WS_AUDIO_HDR, ws->pkt_len, now_us);
    }
    ws->hdr_have = 0;
    ws->hdr_need = 2;
    ws->ah_have = 0;
    ws->pkt_len = 0;
}

/* Reads frame header bytes; returns the count used, or -1 on a frame a
 * server must not send (masked, or a length over 2^32). */
static ssize_t ws_header(struct ws_scan *ws, const uint8_t *buf, size_t len)
{
    size_t used = 0;
    while (used < len && ws->hdr_have < ws->hdr_need) {
        ws->hdr[ws->hdr_have++] = buf[used++];
        if (ws->hdr_have != 2) continue;
        if (ws->hdr[1] & 0x80) return -1; /* server frames are never masked */
        uint8_t l7 = ws->hdr[1] & 0x7f;
        ws->hdr_need = l7 == 126 ? 4 : l7 == 127 ? 10 : 2;
    }
    if (ws->hdr_have < ws->hdr_need) return (ssize_t)used;
    uint8_t l7 = ws->hdr[1] & 0x7f;
    uint64_t left = l7 < 126 ? l7 : be_uint(ws->hdr + 2, l7 == 126 ? 2 : 8);
    if (left > UINT32_MAX) return -1;
    ws->left = (uint32_t)left;
    ws->opcode = ws->hdr[0] & 0x0f;
    return (ssize_t)used;
}

/* Frame bytes after the head: returns CLOSE_NONE, or why to close. */
static int ws_body(struct player *p, const uint8_t *buf, size_t len, int64_t now_us)
{
    struct ws_scan *ws = &p->u.ws;

    while (len > 0 || (ws->hdr_have == ws->hdr_need && ws->left == 0)) {
        if (ws->hdr_have < ws->hdr_need) {
            ssize_t n = ws_header(ws, buf, len);
            if (n < 0) return CLOSE_PROTO;
            buf += n;
            len -= (size_t)n;
            if (ws->hdr_have < ws->hdr_need) return CLOSE_NONE;
            if (ws->opcode == WS_OP_CLOSE) return CLOSE_EOF;
        }
        size_t take = len < ws->left ? len : (size_t)ws->left;
        if (ws->opcode == WS_OP_BINARY) {
            size_t h = 0;
            while (h < take && ws->ah_have < WS_AUDIO_HDR)
                ws->ah[ws->ah_have++] = buf[h++];
            uint32_t pk = (uint32_t)ws->pkt_len + (uint32_t)(take - h);
            ws->pkt_len = pk > 0xffff ? 0xffff : (uint16_t)pk;
        }
        buf += take;
        len -= take;
        ws->left -= take;
        if (ws->left == 0) ws_frame_done(p, now_us);
    }
    return CLOSE_NONE;
}

static int ws_on_data(struct load_conn *c, uint8_t *buf, size_t len, int64_t now_us)
{
    struct player *p = player_of(c);
    int r = read_head(c, p, &buf, &len, 101, 101);

    return r != CLOSE_NONE ? r : ws_body(p, buf, len, now_us);
}

const struct client_ops ws_player_ops = {
    .name = "ws",
    .render_request = ws_render_request,
    .on_open = ws_on_open,
    .on_data = ws_on_data,
    .on_tick = on_tick,
    .tally = tally,
    .join_us = join_us,
    .on_stop = on_stop,
    .retry_after_s = retry_after_s,
    .loud_unix_us = loud_unix_us,
};
