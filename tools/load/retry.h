/* tribune-load --retry: when a listener tries again after a failed attempt
 * (refused with 503, could not connect, or its stream ended). Used to
 * replay a retry storm: a crowd refused at once, or dropped by a server
 * restart, coming back.
 *
 *   mode     delay before the next attempt after n consecutive failures (n >= 1)
 *   none     never tries again (the default)
 *   after    Retry-After seconds exactly; RETRY_AFTER_DEFAULT_MS when the
 *            failure carried none (connect refused, stream closed)
 *   hls      hls.js's un-jittered schedule, whatever Retry-After says:
 *            1, 2, 4, 8, 8, 8 ... s (RETRY_BASE_MS doubling, capped at RETRY_HLS_CAP_MS)
 *   jitter   exponential backoff with full jitter: uniform in
 *            [0, min(RETRY_JITTER_CAP_MS, RETRY_BASE_MS x 2^(n-1))], but never
 *            below Retry-After when the server gave one
 *
 * The failure count n starts again at 0 when an attempt is admitted (2xx);
 * the driver (worker.c) keeps it per listener, with the consecutive 503s.
 * Each attempt starts the client afresh: a listener admitted after retrying
 * is judged by the hearing meter, and its join time measured, from that
 * attempt (its warm-up starts again). A retry that would fall after the end
 * of the run is not scheduled.
 *
 * Contract: pure; the randomness is passed in (retry_rand() is a xorshift32
 * the caller seeds). No allocation.
 */
#ifndef TRIBUNE_TOOLS_LOAD_RETRY_H
#define TRIBUNE_TOOLS_LOAD_RETRY_H

#include <stdint.h>

#include "load.h"

#define RETRY_BASE_MS 1000
#define RETRY_HLS_CAP_MS 8000
#define RETRY_JITTER_CAP_MS 30000
#define RETRY_AFTER_DEFAULT_MS 1000

/* Milliseconds to wait before trying again after `fails` (>= 1) consecutive
 * failures, given the last response's Retry-After (seconds, -1 for none) and
 * a random `rnd`; -1 when the mode never tries again. */
int64_t retry_delay_ms(uint32_t mode, uint32_t fails, int32_t retry_after_s, uint32_t rnd);
/* The mode's name on the command line ("none", "after", "hls", "jitter"). */
const char *retry_mode_name(uint32_t mode);
/* The mode named `s`, or -EINVAL. */
int retry_mode_parse(const char *s);
/* The next number of a xorshift32 sequence; *state must not be 0. */
uint32_t retry_rand(uint32_t *state);

#endif
