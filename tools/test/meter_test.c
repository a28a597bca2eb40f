/* Unit test of the hearing meter (tools/load/meter.c), standalone:
 *
 *   cc -std=gnu11 -Wall -Wextra -Werror -Itools/load -o /tmp/meter_test \
 *      tools/test/meter_test.c tools/load/meter.c && /tmp/meter_test
 *
 * Each case feeds page arrivals (time, granule, sequence number) on a
 * simulated clock, ticking every 100 ms as the worker does, and checks the
 * verdict. Exit status 0 when every case passes.
 */
#include <stdio.h>
#include <stdlib.h>

#include "meter.h"

static const struct meter_cfg cfg = {
    .span_us = METER_SPAN_US, .warmup_us = 2000000, .max_gap_us = 1000000, .min_ratio_pm = 900};
static int failures;

/* A stream of pages of `page_samples` each, arriving every `period_us` plus a
 * deterministic jitter in [0, jitter_us), for `seconds`; a seqno jump of
 * `skip_at` pages when nonzero. Returns the meter. */
static struct meter feed(int64_t period_us, uint32_t page_samples, int64_t jitter_us, int seconds,
                         uint32_t skip_at)
{
    struct meter m;
    int64_t t = 1000000, end = t + (int64_t)seconds * 1000000, next_tick = t;
    struct meter_page p = {.granule = 312, .serial = 7, .seqno = 2};
    uint32_t i = 0, lcg = 12345;

    meter_init(&m);
    while (t < end) {
        for (; next_tick <= t; next_tick += 100000)
            meter_tick(&m, &cfg, next_tick);
        meter_on_page(&m, &cfg, t, &p);
        p.granule += page_samples;
        p.seqno++;
        if (skip_at != 0 && ++i == skip_at) {
            p.seqno += 3;
            p.granule += 3 * page_samples;
        }
        lcg = lcg * 1103515245u + 12345u;
        t += period_us + (jitter_us > 0 ? (int64_t)(lcg >> 8) % jitter_us - jitter_us / 2 : 0);
    }
    return m;
}

static void expect(const char *name, const struct meter *m, bool want_clean, int want_skips)
{
    bool ok = meter_is_clean(m) == want_clean && (want_skips < 0 || m->skips == want_skips);

    printf("%s %-44s clean=%d stalled=%d spans=%u worst=%.1f%% skips=%u gap=%ums\n",
           ok ? "ok  " : "FAIL", name, meter_is_clean(m), m->has_stalled, m->spans,
           m->worst_pm / 10.0, m->skips, m->max_gap_ms);
    if (!ok) failures++;
}

int main(void)
{
    struct meter m;

    m = feed(100000, 4800, 0, 20, 0);
    expect("100 ms pages, steady", &m, true, 0);
    m = feed(100000, 4800, 28000, 20, 0);
    expect("100 ms pages, +-14 ms jitter", &m, true, 0);
    m = feed(120000, 5760, 20000, 20, 0);
    expect("120 ms pages, jitter", &m, true, 0);
    m = feed(20000, 960, 4000, 20, 0);
    expect("20 ms pages, jitter", &m, true, 0);
    m = feed(999000, 47952, 0, 20, 0);
    expect("1 s pages (gap just under the limit)", &m, true, 0);
    m = feed(125000, 4800, 0, 20, 0);
    expect("100 ms of audio every 125 ms (80 %)", &m, false, 0);
    m = feed(105000, 4800, 0, 20, 0);
    expect("100 ms of audio every 105 ms (95 %)", &m, true, 0);
    m = feed(100000, 4800, 0, 20, 60);
    expect("one skip of 3 pages: counted, still hearing", &m, true, 1);
    m = feed(1200000, 57600, 0, 20, 0);
    expect("1.2 s gaps", &m, false, 0);
    m = feed(100000, 4800, 0, 2, 0);
    expect("run shorter than the warm-up: not judged", &m, false, 0);
    m = feed(100000, 4800, 0, 20, 0);
    meter_stop(&m); /* --stop-reading: stalled from the stop on, for good */
    meter_tick(&m, &cfg, 21000000);
    if (m.state != METER_STALLED) failures++;
    expect("hearing, then stopped reading: stalled", &m, false, 0);
    return failures == 0 ? 0 : 1;
}
