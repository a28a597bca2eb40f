/* The hearing meter: decides, from Ogg page arrivals alone, whether one
 * listener hears the stream. Independent of anything the server reports.
 *
 * What counts is audio time, not bytes: each audio page is credited with the
 * audio it carries, the advance of its granule position over the previous
 * page's (Opus granules count 48 kHz samples whatever the sampling rate). A
 * page that does not follow its predecessor (page sequence number jumped, or
 * the granule went backwards or leapt ahead) is a skip: the audio in between
 * was never received, so it is not credited; the page itself is credited with
 * the last contiguous page's duration, and the skip is counted.
 *
 *   connect     first audio page        warm-up over
 *      |--join_us--|-------- warm-up --------|p ... span 1 ... p|p ... span 2 ...
 *                                            ^                  ^
 *                            spans start and end on a page arrival, >= 1 s long
 *
 * After the warm-up, time is cut into spans. A span opens at a page arrival
 * and closes at the first page arriving at least 1 s later, together with the
 * pages that arrive with it (each within METER_BATCH_US of the one before: a
 * backlog released at once after a delay is one arrival, not the end of one
 * span and the start of the next); it holds the audio of the pages after its
 * opening page up to and including its closing page. It
 * passes when that audio time is at least `min_ratio_pm` per mille of the span's
 * wall-clock length (default 900: 0.9 s of audio per second). Because both ends
 * sit on page arrivals, the page period (100 ms chunks, 20 ms pages, 1 s pages)
 * does not bias the figure: a steady stream scores ~1.0 whatever its page size,
 * and a window boundary can no longer cut a page off. Independently, a gap
 * longer than `max_gap_us` between complete audio pages (or since the last one)
 * after the warm-up fails at once. States:
 *
 *   WAITING --first audio--> WARMING --span passes--> HEARING <--> STALLED
 *                                    '--span fails or gap--> STALLED
 *
 * A listener is "clean" while it has never stalled: the final report counts as
 * hearing those that are clean and have passed at least one span.
 *
 * Contract: pure (time is passed in, in microseconds on one clock); no
 * allocation. meter_tick() must be called often (every 100 ms or so) so that
 * long gaps are noticed without any data arriving.
 */
#ifndef TRIBUNE_TOOLS_LOAD_METER_H
#define TRIBUNE_TOOLS_LOAD_METER_H

#include <stdbool.h>
#include <stdint.h>

#define METER_SPAN_US 1000000 /* the shortest span, when pages are read as they come */
#define METER_RATE 48000      /* Opus granule positions count 48 kHz samples */
#define METER_BATCH_US 5000   /* pages closer than this arrived together */

enum meter_state { METER_WAITING, METER_WARMING, METER_HEARING, METER_STALLED };

struct meter_cfg {
    int64_t span_us; /* shortest span: METER_SPAN_US, longer when reads are batched */
    int64_t warmup_us;
    int64_t max_gap_us;
    uint32_t min_ratio_pm; /* audio time per wall time a span needs, per mille */
};

/* One audio page as the meter needs it (see ogg_scan.h). */
struct meter_page {
    int64_t granule; /* -1: no packet ends on this page */
    uint32_t serial;
    uint32_t seqno;
};

struct meter {
    int64_t first_audio_us; /* 0 until the first audio page */
    int64_t last_page_us;
    int64_t span_start_us;  /* 0 until the warm-up is over */
    int64_t last_granule;   /* of the last page that had one */
    uint32_t span_samples;  /* audio credited since span_start_us */
    uint32_t last_samples;  /* duration of the last contiguous page */
    uint32_t serial;        /* logical stream of the last page */
    uint32_t seqno;         /* page sequence number of the last page */
    uint64_t samples;       /* audio credited since the first page */
    uint32_t max_gap_ms;    /* largest gap between complete audio pages so far */
    uint16_t skips;         /* discontinuities, saturating */
    uint16_t worst_pm;      /* lowest span ratio so far, per mille (0xffff: none) */
    uint16_t spans;         /* spans judged, saturating */
    uint16_t last_span_ms;  /* the last judged span: wall time */
    uint16_t last_audio_ms; /* and audio time credited in it */
    uint8_t state;          /* enum meter_state */
    bool has_stalled;
    bool span_due; /* the span is long enough: closes after this batch */
};

void meter_init(struct meter *m);
/* A complete audio page arrived at `now_us`. */
void meter_on_page(struct meter *m, const struct meter_cfg *cfg, int64_t now_us,
                   const struct meter_page *p);
/* The listener stopped reading (an attack mode): STALLED from now on, for
 * good; no more pages or ticks are expected. */
void meter_stop(struct meter *m);
/* Notices a gap still open at `now_us`. */
void meter_tick(struct meter *m, const struct meter_cfg *cfg, int64_t now_us);
/* The largest gap, counting the one still open at `now_us`. */
uint32_t meter_max_gap_ms(const struct meter *m, int64_t now_us);
/* True when the final report counts this listener as hearing. */
bool meter_is_clean(const struct meter *m);

#endif
