/* The hearing meter; see meter.h for the model and the contract. */
#include "meter.h"

#include <string.h>

#define WINDOW_US 1000000

void meter_init(struct meter *m)
{
    memset(m, 0, sizeof(*m));
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

/* Judges the window that ends at m->window_end_us and opens the next one. */
static void close_window(struct meter *m, const struct meter_cfg *cfg, int64_t now_us)
{
    int64_t start = m->window_end_us - WINDOW_US;
    bool is_gap_open = now_us - m->last_page_us > cfg->max_gap_us;

    if (is_past_warmup(m, cfg, start)) {
        if (m->window_bytes < cfg->min_window_bytes)
            stall(m);
        else if (!is_gap_open)
            m->state = METER_HEARING;
    }
    m->window_bytes = 0;
    m->window_end_us += WINDOW_US;
}

void meter_tick(struct meter *m, const struct meter_cfg *cfg, int64_t now_us)
{
    if (m->first_audio_us == 0) return;
    while (now_us >= m->window_end_us)
        close_window(m, cfg, now_us);
    if (now_us - m->last_page_us > cfg->max_gap_us && is_past_warmup(m, cfg, now_us)) stall(m);
}

void meter_on_page(struct meter *m, const struct meter_cfg *cfg, int64_t now_us, uint32_t body_len,
                   bool is_audio)
{
    if (m->first_audio_us == 0) {
        if (!is_audio) return;
        m->first_audio_us = now_us;
        m->last_page_us = now_us;
        m->window_end_us = now_us + WINDOW_US;
        m->state = METER_WARMING;
    }
    meter_tick(m, cfg, now_us);
    if (now_us - m->last_page_us > (int64_t)m->max_gap_ms * 1000)
        m->max_gap_ms = (uint32_t)((now_us - m->last_page_us) / 1000);
    m->last_page_us = now_us;
    if (is_audio) m->window_bytes += body_len;
}

uint32_t meter_max_gap_ms(const struct meter *m, int64_t now_us)
{
    int64_t open_ms = m->first_audio_us != 0 ? (now_us - m->last_page_us) / 1000 : 0;

    return open_ms > m->max_gap_ms ? (uint32_t)open_ms : m->max_gap_ms;
}
