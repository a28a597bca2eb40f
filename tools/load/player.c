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
 */
#include "client.h"

#include <errno.h>
#include <stdio.h>

#include "http_resp.h"
#include "meter.h"
#include "ogg_scan.h"

struct player {
    struct ogg_scan scan;
    struct meter meter;
    struct http_head head;
    struct http_chunked chunked;
    uint32_t pages;
    uint32_t audio_bytes;
    uint32_t index;       /* listener number, for --trace */
    int64_t loud_unix_us; /* --loud-bytes: first loud page, unix us; 0: none yet */
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

    p->index = c->index;
    ogg_scan_init(&p->scan);
    meter_init(&p->meter);
    http_head_init(&p->head);
    http_chunked_init(&p->chunked);
    p->pages = 0;
    p->audio_bytes = 0;
    p->loud_unix_us = 0;
}

/* One line per judged span of the traced listener. */
static void trace_span(const struct player *p, int64_t now_us)
{
    const struct meter *m = &p->meter;

    fprintf(stderr, "trace: listener %u t=%.3fs span %u ms audio %u ms (%.1f %%) %s skips %u\n",
            p->index, (double)(now_us - trace_t0_us) / 1e6, m->last_span_ms, m->last_audio_ms,
            m->last_span_ms > 0 ? 100.0 * m->last_audio_ms / m->last_span_ms : 0.0,
            m->state == METER_HEARING ? "pass" : "FAIL", m->skips);
}

static void on_audio_page(struct player *p, const struct ogg_page *page, int64_t now_us)
{
    struct meter_page mp = {.granule = page->granule, .serial = page->serial, .seqno = page->seqno};
    uint16_t spans = p->meter.spans;

    if (p->meter.first_audio_us != 0) p->audio_bytes += page->body_len;
    if (loud_bytes > 0 && p->loud_unix_us == 0 && page->max_packet > loud_bytes)
        p->loud_unix_us = load_unix_us();
    meter_on_page(&p->meter, &cfg, now_us, &mp);
    if (p->meter.spans != spans && p->index == trace_index) trace_span(p, now_us);
}

/* Body bytes (already de-chunked): every complete audio page goes to the meter. */
static void on_body(struct player *p, const uint8_t *buf, size_t len, int64_t now_us)
{
    while (len > 0) {
        struct ogg_page page;
        bool has_page;
        size_t n = ogg_scan_feed(&p->scan, buf, len, &page, &has_page);

        buf += n;
        len -= n;
        if (!has_page) continue;
        p->pages++;
        if (page.is_audio) on_audio_page(p, &page, now_us);
    }
}

/* Reads the head; returns the bytes it used, or -1 with c->reason set. */
static ssize_t read_head(struct load_conn *c, struct player *p, const uint8_t *buf, size_t len)
{
    ssize_t n = http_head_parse(&p->head, buf, len);

    if (n == -2) return (ssize_t)len;
    if (n < 0) {
        c->reason = CLOSE_PROTO;
        return -1;
    }
    c->status = p->head.status;
    if (c->status < 200 || c->status > 299) {
        c->reason = CLOSE_REFUSED;
        return -1;
    }
    return n;
}

static int on_data(struct load_conn *c, uint8_t *buf, size_t len, int64_t now_us)
{
    struct player *p = player_of(c);

    if (c->status == 0) {
        ssize_t n = read_head(c, p, buf, len);
        if (n < 0) return c->reason;
        buf += n;
        len -= (size_t)n;
    }
    if (p->head.is_chunked && len > 0) {
        ssize_t n = http_chunked_decode(&p->chunked, buf, len);
        if (n < 0) return CLOSE_PROTO;
        len = (size_t)n;
    }
    on_body(p, buf, len, now_us);
    return p->chunked.is_done ? CLOSE_EOF : CLOSE_NONE;
}

static void on_tick(struct load_conn *c, int64_t now_us)
{
    struct player *p = player_of(c);
    bool was_stalled = p->meter.has_stalled;

    meter_tick(&p->meter, &cfg, now_us);
    if (!was_stalled && p->meter.has_stalled && p->index == trace_index)
        fprintf(stderr, "trace: listener %u t=%.3fs gap over %u ms: FAIL\n", p->index,
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
    k->resyncs += p->scan.resyncs;
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
    if (p->index == trace_index)
        fprintf(stderr, "trace: listener %u t=%.3fs stopped reading: FAIL\n", p->index,
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
