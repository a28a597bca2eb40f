/* Fixed-bucket histograms for the hot path.
 *
 * A histogram counts observations into at most HIST_MAX buckets chosen in
 * advance (Prometheus style: bucket i holds values v <= bounds[i], and one more
 * bucket holds everything above the last bound, "+Inf"). It lives inside its
 * owner (a space, a worker), never allocates, and costs one binary search over
 * at most 16 doubles per observation. Rendering (cumulative counts, text) is
 * done only when a scrape asks for it: see metrics/prom.h.
 *
 *   bounds:   0.05   0.1   0.25  ...   10
 *   counts: [ <=0.05 | (0.05,0.1] | (0.1,0.25] | ... | (5,10] | >10 ]
 *            counts[0]                                         counts[n]
 *
 * Invariant: count == sum of counts[0..n]; counts are per bucket (not
 * cumulative) so that observe touches one slot and merge is a plain sum.
 *
 * Multi-process nodes: each worker keeps its own histograms; the master sums
 * them with hist_merge(). `bounds` is a pointer and means nothing in another
 * process: a receiver rebuilds a worker's histogram with hist_init() on the
 * same bucket set, then fills counts, sum and count from the message.
 * Not thread-safe: one writer per histogram.
 */
#ifndef TRIBUNE_METRICS_HIST_H
#define TRIBUNE_METRICS_HIST_H

#include <stddef.h>
#include <stdint.h>

enum { HIST_MAX = 16 };

/* A named set of upper bounds, strictly ascending and finite, in base units. */
struct hist_buckets {
    const double *bounds;
    size_t n; /* 1..HIST_MAX */
};

/* Seconds from a listener's request to its first audio byte written:
 * 0.05 0.1 0.25 0.5 1 2 5 10. */
extern const struct hist_buckets hist_join_to_first_audio;
/* Seconds a listener session lasted: 1 10 60 300 900 1800 3600 7200. */
extern const struct hist_buckets hist_session_length;

struct hist {
    const double *bounds;          /* read-only; borrowed from a static bucket set */
    size_t n;                      /* read-only; number of bounds */
    uint64_t counts[HIST_MAX + 1]; /* read-only; counts[n] is the +Inf bucket */
    double sum;                    /* read-only; sum of observed values */
    uint64_t count;                /* read-only; number of observations */
};

/* Zeroes `h` and gives it the bucket set `b`, which is borrowed and must outlive
 * `h` (the predefined sets are static). Returns 0, or -EINVAL when b->n is 0 or
 * above HIST_MAX, or the bounds are not finite and strictly ascending (then `h`
 * is left zeroed with n = 0, and observing into it counts only +Inf). */
int hist_init(struct hist *h, const struct hist_buckets *b);

/* Counts `value` in the first bucket whose bound is >= value (the +Inf bucket
 * when none is) and adds it to sum. NaN is ignored (not counted), so that one
 * bad clock reading cannot poison sum. O(log n), no allocation, cannot fail. */
void hist_observe(struct hist *h, double value);

/* Adds src's counts, sum and count to dst (a master summing its workers).
 * Returns 0, or -EINVAL when the two do not have the same bounds (compared by
 * value); dst is unchanged on error. */
int hist_merge(struct hist *dst, const struct hist *src);

/* Observations <= bounds[i], i.e. the cumulative count Prometheus reports for
 * bucket i; i == n gives the +Inf bucket (equal to count). i > n returns count. */
uint64_t hist_cumulative(const struct hist *h, size_t i);

#endif
