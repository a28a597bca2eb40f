/* Fixed-bucket histograms: see hist.h for the layout and invariants. */
#include "metrics/hist.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static const double join_bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10};
static const double session_bounds[] = {1, 10, 60, 300, 900, 1800, 3600, 7200};

const struct hist_buckets hist_join_to_first_audio = {join_bounds,
                                                      sizeof(join_bounds) / sizeof(join_bounds[0])};
const struct hist_buckets hist_session_length = {session_bounds, sizeof(session_bounds) /
                                                                     sizeof(session_bounds[0])};

static int is_valid_buckets(const struct hist_buckets *b)
{
    if (!b || !b->bounds || b->n == 0 || b->n > HIST_MAX) return 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!isfinite(b->bounds[i])) return 0;
        if (i > 0 && !(b->bounds[i - 1] < b->bounds[i])) return 0;
    }
    return 1;
}

int hist_init(struct hist *h, const struct hist_buckets *b)
{
    memset(h, 0, sizeof(*h));
    if (!is_valid_buckets(b)) return -EINVAL;
    h->bounds = b->bounds;
    h->n = b->n;
    return 0;
}

void hist_observe(struct hist *h, double value)
{
    if (isnan(value)) return;
    /* Binary search for the first bound >= value; lo == n means +Inf. */
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (value <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    h->counts[lo]++;
    h->sum += value;
    h->count++;
}

int hist_merge(struct hist *dst, const struct hist *src)
{
    if (dst->n != src->n || dst->n > HIST_MAX) return -EINVAL;
    for (size_t i = 0; dst->bounds != src->bounds && i < dst->n; i++) {
        if (dst->bounds[i] != src->bounds[i]) return -EINVAL;
    }
    for (size_t i = 0; i <= dst->n; i++)
        dst->counts[i] += src->counts[i];
    dst->sum += src->sum;
    dst->count += src->count;
    return 0;
}

uint64_t hist_cumulative(const struct hist *h, size_t i)
{
    if (i >= h->n) return h->count;
    uint64_t c = 0;
    for (size_t k = 0; k <= i; k++)
        c += h->counts[k];
    return c;
}
