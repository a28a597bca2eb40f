/* The hearing meter: decides, from page arrival times alone, whether one
 * listener hears the stream. Independent of anything the server reports.
 *
 *   connect       first audio page                 warm-up over
 *      |-- join_us --|--- window 0 ---|-- ... --|-- checked window --|-- ...
 *                     <------------- warm-up -------------->
 *
 * Windows are 1 s long and start at the listener's first complete audio page.
 * A window is checked once it lies wholly after the warm-up: it passes when the
 * audio pages completed inside it carry at least `min_window_bytes` of body. A
 * gap longer than `max_gap_us` between complete pages (or since the last one)
 * after the warm-up fails at once. States:
 *
 *   WAITING --first audio--> WARMING --window passes--> HEARING <--> STALLED
 *                                    '--window fails or gap--> STALLED
 *
 * A listener is "clean" while it has never stalled: that is what the final
 * report counts as hearing.
 *
 * Contract: pure (time is passed in, in microseconds on one clock); no
 * allocation. meter_tick() must be called often (every 100 ms or so) so that
 * windows with no pages and long gaps are noticed without any data arriving.
 */
#ifndef TRIBUNE_TOOLS_LOAD_METER_H
#define TRIBUNE_TOOLS_LOAD_METER_H

#include <stdbool.h>
#include <stdint.h>

enum meter_state { METER_WAITING, METER_WARMING, METER_HEARING, METER_STALLED };

struct meter_cfg {
    int64_t warmup_us;
    int64_t max_gap_us;
    uint32_t min_window_bytes;
};

struct meter {
    int64_t first_audio_us; /* 0 until the first audio page */
    int64_t last_page_us;
    int64_t window_end_us;
    uint32_t window_bytes;
    uint32_t max_gap_ms; /* largest gap between complete pages so far */
    uint8_t state;       /* enum meter_state */
    bool has_stalled;
};

void meter_init(struct meter *m);
/* A complete page of `body_len` bytes arrived at `now_us`. */
void meter_on_page(struct meter *m, const struct meter_cfg *cfg, int64_t now_us, uint32_t body_len,
                   bool is_audio);
/* Closes the windows that ended by `now_us` and notices a gap still open. */
void meter_tick(struct meter *m, const struct meter_cfg *cfg, int64_t now_us);
/* The largest gap, counting the one still open at `now_us`. */
uint32_t meter_max_gap_ms(const struct meter *m, int64_t now_us);

#endif
