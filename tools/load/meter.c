/* The hearing meter; see meter.h for the model and the contract. */
#include "meter.h"

#include <string.h>

#define MAX_PAGE_SAMPLES (5 * METER_RATE) /* a longer advance is a leap, not a page */
#define NO_WORST 0xffff

void meter_init(struct meter *m)
{
    memset(m, 0, sizeof(*m));
    m->worst_pm = NO_WORST;
}

static void stall(struct meter *m)
{
    m->state = METER_STALLED;
    m->has_stalled = true;
}

static bool is_past_warmup(const struct meter *m, const struct meter_cfg *cfg, int64_t t_us)
{
    return m->first_audio_us != 0 && t_us >= m->first_audio_us + cfg->warmup_us;
}

static uint16_t sat16(uint64_t v)
{
    return v > 0xfffe ? 0xfffe : (uint16_t)v;
}

/* The audio this page brings, in samples; counts a skip when it does not
 * follow the previous page. */
static uint32_t credit(struct meter *m, const struct meter_page *p)
{
    bool is_next = p->serial == m->serial && p->seqno == m->seqno + 1;
    int64_t adv = p->granule - m->last_granule;

    m->serial = p->serial;
    m->seqno = p->seqno;
    if (is_next && p->granule == -1) return 0; /* counted with the next page */
    if (p->granule != -1) m->last_granule = p->granule;
    if (is_next && adv > 0 && adv <= MAX_PAGE_SAMPLES) {
        m->last_samples = (uint32_t)adv;
        return (uint32_t)adv;
    }
    if (m->skips < 0xffff) m->skips++;
    return m->last_samples;
}

/* Closes the span at a page arrival `now_us` and judges it. */
static void close_span(struct meter *m, const struct meter_cfg *cfg, int64_t now_us)
{
    int64_t span_us = now_us - m->span_start_us;
    uint64_t ratio_pm = (uint64_t)m->span_samples * 1000000000u / ((uint64_t)span_us * METER_RATE);

    if (ratio_pm < m->worst_pm) m->worst_pm = sat16(ratio_pm);
    if (m->spans < 0xffff) m->spans++;
    m->last_span_ms = sat16((uint64_t)span_us / 1000);
    m->last_audio_ms = sat16((uint64_t)m->span_samples * 1000 / METER_RATE);
    if (ratio_pm < cfg->min_ratio_pm)
        stall(m);
    else
        m->state = METER_HEARING;
    m->span_start_us = now_us;
    m->span_samples = 0;
    m->span_due = false;
}

/* A span that became due closes once no page has arrived for METER_BATCH_US:
 * at the last page of the batch, so that a backlog delivered at once (after a
 * delay in the server, the network or this process) is judged in one span. */
static void close_due_span(struct meter *m, const struct meter_cfg *cfg, int64_t now_us)
{
    if (m->span_due && now_us - m->last_page_us > METER_BATCH_US)
        close_span(m, cfg, m->last_page_us);
}

void meter_stop(struct meter *m)
{
    stall(m);
}

void meter_tick(struct meter *m, const struct meter_cfg *cfg, int64_t now_us)
{
    if (m->first_audio_us == 0) return;
    close_due_span(m, cfg, now_us);
    if (now_us - m->last_page_us > cfg->max_gap_us && is_past_warmup(m, cfg, now_us)) stall(m);
}

static void first_page(struct meter *m, int64_t now_us, const struct meter_page *p)
{
    m->first_audio_us = now_us;
    m->last_page_us = now_us;
    m->last_granule = p->granule;
    m->serial = p->serial;
    m->seqno = p->seqno;
    m->state = METER_WARMING;
}

void meter_on_page(struct meter *m, const struct meter_cfg *cfg, int64_t now_us,
                   const struct meter_page *p)
{
    uint32_t samples;

    if (m->first_audio_us == 0) return first_page(m, now_us, p);
    meter_tick(m, cfg, now_us);
    if (now_us - m->last_page_us > (int64_t)m->max_gap_ms * 1000)
        m->max_gap_ms = (uint32_t)((now_us - m->last_page_us) / 1000);
    m->last_page_us = now_us;
    samples = credit(m, p);
    m->samples += samples;
    if (m->span_start_us == 0) {
        if (is_past_warmup(m, cfg, now_us)) m->span_start_us = now_us;
        return;
    }
    m->span_samples += samples;
    if (now_us - m->span_start_us >= cfg->span_us) m->span_due = true;
}

uint32_t meter_max_gap_ms(const struct meter *m, int64_t now_us)
{
    int64_t open_ms = m->first_audio_us != 0 ? (now_us - m->last_page_us) / 1000 : 0;

    return open_ms > m->max_gap_ms ? (uint32_t)open_ms : m->max_gap_ms;
}

bool meter_is_clean(const struct meter *m)
{
    return m->state == METER_HEARING && !m->has_stalled;
}
