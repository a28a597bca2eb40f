/* Prometheus text exposition format (version 0.0.4) writer.
 *
 * Metrics are kept as typed numbers (counters, gauges, struct hist) and turned
 * into text only here, when a scrape asks for it. The writer appends to a
 * growable buffer owned by the caller:
 *
 *   struct prom_buf b;
 *   prom_buf_init(&b);
 *   prom_family_begin(&b, "tribune_listeners", PROM_GAUGE, "Listeners by state.");
 *   prom_sample(&b, NULL, (struct prom_label[]){{"state", "hearing"}, {NULL, NULL}}, 12);
 *   prom_sample(&b, NULL, (struct prom_label[]){{"state", "lagging"}, {NULL, NULL}}, 3);
 *   prom_counter(&b, "tribune_joins_total", "Joins admitted.", NULL, 15);
 *   ... write b.data, b.len as the body (Content-Type: text/plain; version=0.0.4) ...
 *   prom_buf_fini(&b);
 *
 * A metric family (one name, one type) is declared once with
 * prom_family_begin(), which writes its HELP and TYPE lines; the samples that
 * follow, one per label set, belong to it until the next family begins. The
 * format requires a family's samples to be contiguous and declared once:
 * declaring a name a second time in the same buffer fails with -EEXIST.
 *
 * Naming is the caller's job: every Tribune metric starts with `tribune_`, is in
 * base units named in the suffix (`_seconds`, `_bytes`), and counters end in
 * `_total` (promtool lints the last one). Names must match
 * [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and must not
 * start with "__" (nor be "le" on histograms); label values and help texts must
 * be UTF-8 and are escaped here (backslash, double quote, newline).
 *
 * Numbers: integral values print as integers without exponent (below 1e21, %g
 * style beyond), other finite values with the fewest digits (15..17) that read
 * back as the same double; NaN, +Inf and -Inf as the format spells them. This
 * assumes the "C" LC_NUMERIC locale (Tribune never calls setlocale).
 *
 * Errors: every call returns 0 or a negative errno (-EINVAL for a bad name,
 * label, value or call order, -EEXIST, -ENOMEM), and a call that fails appends
 * nothing: the buffer holds only whole lines. Not thread-safe.
 */
#ifndef TRIBUNE_METRICS_PROM_H
#define TRIBUNE_METRICS_PROM_H

#include <stddef.h>

#include "metrics/hist.h"

/* The text, always NUL-terminated once anything was written. */
struct prom_buf {
    char *data; /* read-only; owned, freed by prom_buf_fini(); NULL while empty */
    size_t len; /* read-only; bytes of text, not counting the NUL */
    size_t cap; /* private */
    /* private: the current family, as a span of its TYPE line in data */
    size_t family_off;
    size_t family_len;
    int family_type; /* enum prom_type, or -1 before the first family */
    int err;         /* private: the first error of the call in progress */
};

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM };

/* One label; arrays of labels end with a {NULL, NULL} entry. A NULL array means
 * no labels. Both strings are borrowed for the duration of the call. */
struct prom_label {
    const char *name;
    const char *value;
};

void prom_buf_init(struct prom_buf *b);
/* Frees the text; b is empty (as after init) and may be reused. */
void prom_buf_fini(struct prom_buf *b);

/* Writes the HELP and TYPE lines of family `name` and makes it current.
 * -EINVAL: bad name, help not UTF-8, or unknown type; -EEXIST: `name` was
 * already declared in this buffer. */
int prom_family_begin(struct prom_buf *b, const char *name, enum prom_type type, const char *help);

/* Writes one sample of the current counter or gauge family: the family's name
 * followed by `suffix` (NULL or "" for none), `labels`, and `value`.
 * -EINVAL: no current family, a histogram family, bad labels, the resulting
 * name invalid, or a counter value that is negative or NaN. */
int prom_sample(struct prom_buf *b, const char *suffix, const struct prom_label *labels,
                double value);

/* Writes one label set of the current histogram family: name_bucket lines with
 * cumulative counts, one per bound plus le="+Inf", then name_sum and
 * name_count. -EINVAL: the current family is not a histogram, or bad labels. */
int prom_hist_sample(struct prom_buf *b, const struct prom_label *labels, const struct hist *h);

/* One-sample families: prom_family_begin() then one sample. */
int prom_counter(struct prom_buf *b, const char *name, const char *help,
                 const struct prom_label *labels, double value);
int prom_gauge(struct prom_buf *b, const char *name, const char *help,
               const struct prom_label *labels, double value);
int prom_histogram(struct prom_buf *b, const char *name, const char *help,
                   const struct prom_label *labels, const struct hist *h);

/* Writes `v` as the format spells numbers into out (cap >= 32), NUL-terminated;
 * returns the length. Exposed for tests and for JSON renderers. */
size_t prom_format_double(double v, char *out, size_t cap);

#endif
