/* Range header parsing (see range.h). A flat scanner over the value: one spec
 * at a time, "first-last", "first-" or "-suffix", separated by commas with
 * optional blanks; anything else makes the whole header unusable (RANGE_NONE),
 * as RFC 9110 lets a server ignore a Range it cannot parse. */
#include "http/range.h"

#include <stdbool.h>
#include <string.h>

enum { MAX_DIGITS = 19 }; /* fits in uint64_t */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Reads 1..MAX_DIGITS digits at v[*i]; false when there are none or too many. */
static bool read_number(const char *v, size_t len, size_t *i, uint64_t *out)
{
    size_t start = *i;
    uint64_t x = 0;
    while (*i < len && v[*i] >= '0' && v[*i] <= '9') {
        if (*i - start == MAX_DIGITS) return false;
        x = x * 10 + (uint64_t)(v[*i] - '0');
        (*i)++;
    }
    *out = x;
    return *i > start;
}

/* One spec at v[*i] (blanks around it skipped). Returns 1 with a satisfiable
 * range in *r, 0 for a well-formed spec outside the size, -1 when malformed. */
static int read_spec(const char *v, size_t len, size_t *i, uint64_t size, struct byte_range *r)
{
    while (*i < len && is_blank(v[*i]))
        (*i)++;
    uint64_t a = 0, b = 0;
    bool has_first = read_number(v, len, i, &a);
    if (*i >= len || v[*i] != '-') return -1;
    (*i)++;
    bool has_last = read_number(v, len, i, &b);
    while (*i < len && is_blank(v[*i]))
        (*i)++;
    if (!has_first && !has_last) return -1;
    if (!has_first) { /* suffix: the last b bytes */
        if (b == 0 || size == 0) return 0;
        r->first = b >= size ? 0 : size - b;
        r->last = size - 1;
        return 1;
    }
    if (has_last && b < a) return -1;
    if (a >= size) return 0;
    r->first = a;
    r->last = has_last && b < size ? b : size - 1;
    return 1;
}

/* Sorts by first (insertion sort: at most RANGE_MAX) and merges overlapping or
 * adjacent ranges. Returns the new count. */
static size_t merge(struct byte_range *r, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && r[j].first < r[j - 1].first; j--) {
            struct byte_range t = r[j];
            r[j] = r[j - 1];
            r[j - 1] = t;
        }
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        if (r[i].first <= r[k].last + 1) {
            if (r[i].last > r[k].last) r[k].last = r[i].last;
        } else {
            r[++k] = r[i];
        }
    }
    return n ? k + 1 : 0;
}

enum range_verdict range_parse(const char *v, size_t len, uint64_t size, struct byte_range *out,
                               size_t cap, size_t *n)
{
    static const char unit[] = "bytes=";
    *n = 0;
    if (cap > RANGE_MAX) cap = RANGE_MAX;
    if (!v || len < sizeof(unit) - 1 || memcmp(v, unit, sizeof(unit) - 1) != 0) return RANGE_NONE;
    size_t i = sizeof(unit) - 1, specs = 0;
    for (;;) {
        struct byte_range r;
        int got = read_spec(v, len, &i, size, &r);
        if (got < 0 || ++specs > RANGE_MAX || (got > 0 && *n == cap)) break;
        if (got > 0) out[(*n)++] = r;
        if (i == len) {
            if (*n == 0) return RANGE_UNSATISFIABLE;
            if (*n > 1) *n = merge(out, *n);
            return RANGE_OK;
        }
        if (v[i] != ',') break;
        i++;
    }
    *n = 0; /* malformed, or more than the caller can take: the whole representation */
    return RANGE_NONE;
}
