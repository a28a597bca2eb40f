/* Unit tests for tools/load/meter.c, the load tool's hearing judge: a steady
 * stream passes whatever its page size; a slow stream, a gap and a skip fail;
 * a backlog released at once after a delay is judged as one arrival. */
#include "load/meter.h"

#include <check.h>
#include <stdlib.h>

#include "../../harness.h"

#define MS 1000
#define PAGE_SAMPLES(ms) ((int64_t)(ms)*METER_RATE / 1000)

static const struct meter_cfg cfg = {
    .span_us = METER_SPAN_US, .warmup_us = 2000 * MS, .max_gap_us = 1000 * MS, .min_ratio_pm = 900};

struct feed {
    struct meter m;
    int64_t granule;
    uint32_t seqno;
};

static void feed_init(struct feed *f)
{
    meter_init(&f->m);
    f->granule = 0;
    f->seqno = 0;
}

/* One page of `page_ms` of audio arriving at `t_ms`. */
static void page(struct feed *f, int64_t t_ms, int page_ms)
{
    f->granule += PAGE_SAMPLES(page_ms);
    struct meter_page p = {.granule = f->granule, .serial = 7, .seqno = f->seqno++};
    meter_on_page(&f->m, &cfg, t_ms * MS, &p);
    meter_tick(&f->m, &cfg, t_ms * MS);
}

/* Pages of `page_ms` every `period_ms` (audio produced at the rate
 * page_ms/period_ms) from `from_ms` up to `to_ms`, ticking every 10 ms. */
static void stream(struct feed *f, int64_t from_ms, int64_t to_ms, int page_ms, int period_ms)
{
    for (int64_t t = from_ms; t < to_ms; t += 10) {
        if ((t - from_ms) % period_ms == 0)
            page(f, t, page_ms);
        else
            meter_tick(&f->m, &cfg, t * MS);
    }
}

/* A stream of pages of `page_samples` each, arriving every `period_us` plus a
 * deterministic jitter in [-jitter_us/2, jitter_us/2), for `seconds`, ticking
 * every 100 ms as the load worker does; a seqno jump of 3 pages after
 * `skip_at` pages when nonzero. */
static struct meter jittered(int64_t period_us, uint32_t page_samples, int64_t jitter_us,
                             int seconds, uint32_t skip_at)
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

static const struct {
    const char *name;
    int64_t period_us;
    uint32_t page_samples;
    int64_t jitter_us;
    int seconds;
    uint32_t skip_at;
    bool clean;
    int skips;
} cases[] = {
    {"100 ms pages, steady", 100000, 4800, 0, 20, 0, true, 0},
    {"100 ms pages, +-14 ms jitter", 100000, 4800, 28000, 20, 0, true, 0},
    {"120 ms pages, jitter", 120000, 5760, 20000, 20, 0, true, 0},
    {"20 ms pages, jitter", 20000, 960, 4000, 20, 0, true, 0},
    {"1 s pages (gap just under the limit)", 999000, 47952, 0, 20, 0, true, 0},
    {"100 ms of audio every 125 ms (80 %)", 125000, 4800, 0, 20, 0, false, 0},
    {"100 ms of audio every 105 ms (95 %)", 105000, 4800, 0, 20, 0, true, 0},
    {"one skip of 3 pages: counted, still hearing", 100000, 4800, 0, 20, 60, true, 1},
    {"1.2 s gaps", 1200000, 57600, 0, 20, 0, false, 0},
    {"run shorter than the warm-up: not judged", 100000, 4800, 0, 2, 0, false, 0},
};

START_TEST(jittered_cases)
{
    struct meter m = jittered(cases[_i].period_us, cases[_i].page_samples, cases[_i].jitter_us,
                              cases[_i].seconds, cases[_i].skip_at);
    ck_assert_msg(meter_is_clean(&m) == cases[_i].clean && m.skips == cases[_i].skips,
                  "%s: clean=%d stalled=%d spans=%u worst=%.1f%% skips=%u gap=%ums", cases[_i].name,
                  meter_is_clean(&m), m.has_stalled, m.spans, m.worst_pm / 10.0, m.skips,
                  m.max_gap_ms);
}
END_TEST

START_TEST(steady_streams_pass)
{
    static const int pages_ms[] = {20, 100, 200, 500};
    for (size_t i = 0; i < sizeof(pages_ms) / sizeof(pages_ms[0]); i++) {
        struct feed f;
        feed_init(&f);
        stream(&f, 1, 12001, pages_ms[i], pages_ms[i]);
        ck_assert_msg(meter_is_clean(&f.m), "page %d ms: not clean (worst %u)", pages_ms[i],
                      f.m.worst_pm);
        ck_assert_uint_ge(f.m.spans, 8);
        ck_assert_uint_ge(f.m.worst_pm, 990);
        ck_assert_uint_eq(f.m.skips, 0);
    }
}
END_TEST

START_TEST(slow_stream_fails)
{
    struct feed f;
    feed_init(&f);
    stream(&f, 1, 3001, 100, 100);
    stream(&f, 3001, 8001, 80, 100); /* 80 % of real time */
    ck_assert(!meter_is_clean(&f.m));
    ck_assert_uint_lt(f.m.worst_pm, 850);
}
END_TEST

START_TEST(gap_fails)
{
    struct feed f;
    feed_init(&f);
    stream(&f, 1, 4001, 100, 100);
    stream(&f, 5201, 8001, 100, 100); /* 1.2 s without a page */
    ck_assert(!meter_is_clean(&f.m));
    ck_assert_uint_ge(meter_max_gap_ms(&f.m, 8001 * MS), 1200);
}
END_TEST

START_TEST(skip_is_counted_and_not_credited)
{
    struct feed f;
    feed_init(&f);
    stream(&f, 1, 4001, 100, 100);
    f.seqno += 5; /* five pages never arrived */
    f.granule += PAGE_SAMPLES(500);
    stream(&f, 4001, 8001, 100, 100);
    ck_assert_uint_eq(f.m.skips, 1);
    ck_assert(meter_is_clean(&f.m)); /* audio kept coming at the real rate */
}
END_TEST

/* A delay of 300 ms after which the backlog arrives at once (read in one
 * batch, pages a few microseconds apart): the span that ends with the backlog
 * holds all of it, so the listener still hears. A span cut at the first page
 * of the backlog would have scored about 1.0 s / 1.3 s = 77 %. */
START_TEST(backlog_after_delay_is_one_arrival)
{
    struct feed f;
    feed_init(&f);
    int64_t t = 1;
    for (; t < 3001; t += 20)
        page(&f, t, 20);
    /* spans now close near t = 4000, 5000, ...; stall delivery across 4000 */
    for (; t < 3981; t += 20)
        page(&f, t, 20);
    int64_t resume = t + 300;
    for (int64_t at = t; at <= resume; at += 20) {
        f.granule += PAGE_SAMPLES(20);
        struct meter_page p = {.granule = f.granule, .serial = 7, .seqno = f.seqno++};
        meter_on_page(&f.m, &cfg, resume * MS + (at - t), &p); /* 1 us apart */
    }
    for (t = resume + 20; t < 8001; t += 20)
        page(&f, t, 20);
    ck_assert_msg(meter_is_clean(&f.m), "worst span %u per mille", f.m.worst_pm);
    ck_assert_uint_le(f.m.max_gap_ms, 320);
    ck_assert_uint_ge(f.m.max_gap_ms, 300);
}
END_TEST

/* The same delay without the catch-up (the audio in it is lost for good and
 * the stream goes on from live): the span fails. */
START_TEST(delay_without_catch_up_fails)
{
    struct feed f;
    feed_init(&f);
    int64_t t = 1;
    for (; t < 3981; t += 20)
        page(&f, t, 20);
    t += 300;
    for (; t < 8001; t += 20)
        page(&f, t, 20);
    ck_assert(!meter_is_clean(&f.m));
}
END_TEST

START_TEST(stop_stalls_for_good)
{
    struct feed f;
    feed_init(&f);
    stream(&f, 1, 4001, 100, 100);
    ck_assert(meter_is_clean(&f.m));
    meter_stop(&f.m);
    ck_assert(!meter_is_clean(&f.m));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("meter");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, jittered_cases, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, steady_streams_pass);
    tcase_add_test(tc, slow_stream_fails);
    tcase_add_test(tc, gap_fails);
    tcase_add_test(tc, skip_is_counted_and_not_credited);
    tcase_add_test(tc, backlog_after_delay_is_one_arrival);
    tcase_add_test(tc, delay_without_catch_up_fails);
    tcase_add_test(tc, stop_stalls_for_good);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
