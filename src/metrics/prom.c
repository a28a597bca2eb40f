/* Prometheus text format writer: see prom.h for the contract.
 *
 * Every public call brackets its writes with call_begin()/call_end(): appends
 * after a failed allocation are skipped (b->err remembers it), and on any error
 * call_end() rolls the buffer and the current family back to where the call
 * started, so the text never holds half a line or half a histogram.
 */
#include "metrics/prom.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"counter", "gauge", "histogram"};

struct saved {
    size_t len, family_off, family_len;
    int family_type;
};

void prom_buf_init(struct prom_buf *b)
{
    memset(b, 0, sizeof(*b));
    b->family_type = -1;
}

void prom_buf_fini(struct prom_buf *b)
{
    free(b->data);
    prom_buf_init(b);
}

static struct saved call_begin(struct prom_buf *b)
{
    b->err = 0;
    return (struct saved){b->len, b->family_off, b->family_len, b->family_type};
}

/* Returns rc, or b->err if an append failed; on failure restores `s`. */
static int call_end(struct prom_buf *b, struct saved s, int rc)
{
    if (rc == 0) rc = b->err;
    if (rc != 0) {
        b->len = s.len;
        b->family_off = s.family_off;
        b->family_len = s.family_len;
        b->family_type = s.family_type;
        if (b->data) b->data[b->len] = '\0';
    }
    b->err = 0;
    return rc;
}

static bool reserve(struct prom_buf *b, size_t n)
{
    if (b->err) return false;
    if (b->cap - b->len > n) /* room for n bytes and the NUL */
        return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len <= n) {
        if (cap > SIZE_MAX / 2) {
            b->err = -ENOMEM;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->err = -ENOMEM;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

static void put(struct prom_buf *b, const char *s, size_t n)
{
    if (!reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(struct prom_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Appends s with \ and newline escaped, and " too when `is_label`. */
static void put_escaped(struct prom_buf *b, const char *s, bool is_label)
{
    for (const char *run = s;; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && is_label)
            esc = "\\\"";
        else if (*s != '\0')
            continue;
        put(b, run, (size_t)(s - run));
        if (!esc) return;
        puts_(b, esc);
        run = s + 1;
    }
}

static void put_double(struct prom_buf *b, double v)
{
    char num[64];
    put(b, num, prom_format_double(v, num, sizeof(num)));
}

static void put_u64(struct prom_buf *b, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRIu64, v);
    put(b, num, (size_t)n);
}

size_t prom_format_double(double v, char *out, size_t cap)
{
    int n;
    if (isnan(v))
        n = snprintf(out, cap, "NaN");
    else if (isinf(v))
        n = snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e21)
        n = snprintf(out, cap, "%.0f", v);
    else
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(out, cap, "%.*g", prec, v);
            if (strtod(out, NULL) == v) break;
        }
    if (n < 0) n = 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* --- validation ------------------------------------------------------- */

static bool is_name_char(char c, bool is_first, bool allow_colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
    if (c == ':') return allow_colon;
    return !is_first && c >= '0' && c <= '9';
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metric names, without ':' for label names;
 * `is_tail` checks a suffix (any length, digits allowed first). */
static bool is_valid_name(const char *s, bool allow_colon, bool is_tail)
{
    if (!s || (!is_tail && *s == '\0')) return false;
    for (size_t i = 0; s[i]; i++) {
        if (!is_name_char(s[i], i == 0 && !is_tail, allow_colon)) return false;
    }
    return true;
}

/* Length of the UTF-8 sequence starting at p (0 if invalid): RFC 3629, no
 * overlongs, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n = c < 0x80                 ? 1
               : c >= 0xc2 && c <= 0xdf ? 2
               : (c & 0xf0) == 0xe0     ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (n <= 1) return n;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
    }
    return n;
}

static bool is_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_len(p);
        if (n == 0) return false;
        p += n;
    }
    return true;
}

static bool is_valid_labels(const struct prom_label *labels, bool is_hist)
{
    for (size_t i = 0; labels && labels[i].name; i++) {
        const char *name = labels[i].name;
        if (!is_valid_name(name, false, false) || strncmp(name, "__", 2) == 0) return false;
        if (is_hist && strcmp(name, "le") == 0) return false;
        if (!labels[i].value || !is_utf8(labels[i].value)) return false;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(labels[k].name, name) == 0) return false;
        }
    }
    return true;
}

/* Whether "# TYPE <name> " already begins a line of the buffer. The HELP line
 * always comes first, so a TYPE line never starts at offset 0. */
static bool is_declared(const struct prom_buf *b, const char *name)
{
    static const char tag[] = "\n# TYPE ";
    size_t nlen = strlen(name), tlen = sizeof(tag) - 1;
    const char *p = b->data, *end = b->data + b->len;
    while (p && (p = memmem(p, (size_t)(end - p), tag, tlen)) != NULL) {
        p += tlen;
        if ((size_t)(end - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == ' ') return true;
    }
    return false;
}

/* --- families and samples -------------------------------------------- */

static int family_begin(struct prom_buf *b, const char *name, enum prom_type type, const char *help)
{
    if ((unsigned)type > PROM_HISTOGRAM || !is_valid_name(name, true, false) || !help ||
        !is_utf8(help))
        return -EINVAL;
    if (is_declared(b, name)) return -EEXIST;
    puts_(b, "# HELP ");
    puts_(b, name);
    puts_(b, " ");
    put_escaped(b, help, false);
    puts_(b, "\n# TYPE ");
    b->family_off = b->len;
    b->family_len = strlen(name);
    puts_(b, name);
    puts_(b, " ");
    puts_(b, type_names[type]);
    puts_(b, "\n");
    b->family_type = (int)type;
    return 0;
}

/* Appends the current family's name (copied from its TYPE line, located by
 * offset because reserve() may move b->data), then `suffix`. */
static void put_family_name(struct prom_buf *b, const char *suffix)
{
    if (!reserve(b, b->family_len)) return;
    memmove(b->data + b->len, b->data + b->family_off, b->family_len);
    b->len += b->family_len;
    b->data[b->len] = '\0';
    if (suffix) puts_(b, suffix);
}

/* Appends {a="x",b="y"} with an optional extra label last; nothing at all when
 * there are no labels. */
static void put_labels(struct prom_buf *b, const struct prom_label *labels, const char *extra_name,
                       const char *extra_value)
{
    bool is_first = true;
    for (size_t i = 0; labels && labels[i].name; i++) {
        puts_(b, is_first ? "{" : ",");
        is_first = false;
        puts_(b, labels[i].name);
        puts_(b, "=\"");
        put_escaped(b, labels[i].value, true);
        puts_(b, "\"");
    }
    if (extra_name) {
        puts_(b, is_first ? "{" : ",");
        is_first = false;
        puts_(b, extra_name);
        puts_(b, "=\"");
        puts_(b, extra_value);
        puts_(b, "\"");
    }
    if (!is_first) puts_(b, "}");
}

static int sample(struct prom_buf *b, const char *suffix, const struct prom_label *labels,
                  double value)
{
    if (b->family_type != PROM_COUNTER && b->family_type != PROM_GAUGE) return -EINVAL;
    if ((suffix && !is_valid_name(suffix, true, true)) || !is_valid_labels(labels, false))
        return -EINVAL;
    if (b->family_type == PROM_COUNTER && (isnan(value) || value < 0)) return -EINVAL;
    put_family_name(b, suffix);
    put_labels(b, labels, NULL, NULL);
    puts_(b, " ");
    put_double(b, value);
    puts_(b, "\n");
    return 0;
}

static int hist_sample(struct prom_buf *b, const struct prom_label *labels, const struct hist *h)
{
    if (b->family_type != PROM_HISTOGRAM || !is_valid_labels(labels, true) || h->n > HIST_MAX)
        return -EINVAL;
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->n; i++) {
        char le[64] = "+Inf";
        if (i < h->n) prom_format_double(h->bounds[i], le, sizeof(le));
        cum += h->counts[i];
        put_family_name(b, "_bucket");
        put_labels(b, labels, "le", le);
        puts_(b, " ");
        put_u64(b, cum);
        puts_(b, "\n");
    }
    put_family_name(b, "_sum");
    put_labels(b, labels, NULL, NULL);
    puts_(b, " ");
    put_double(b, h->sum);
    puts_(b, "\n");
    put_family_name(b, "_count");
    put_labels(b, labels, NULL, NULL);
    puts_(b, " ");
    put_u64(b, h->count);
    puts_(b, "\n");
    return 0;
}

int prom_family_begin(struct prom_buf *b, const char *name, enum prom_type type, const char *help)
{
    struct saved s = call_begin(b);
    return call_end(b, s, family_begin(b, name, type, help));
}

int prom_sample(struct prom_buf *b, const char *suffix, const struct prom_label *labels,
                double value)
{
    struct saved s = call_begin(b);
    return call_end(b, s, sample(b, suffix, labels, value));
}

int prom_hist_sample(struct prom_buf *b, const struct prom_label *labels, const struct hist *h)
{
    struct saved s = call_begin(b);
    return call_end(b, s, hist_sample(b, labels, h));
}

int prom_counter(struct prom_buf *b, const char *name, const char *help,
                 const struct prom_label *labels, double value)
{
    struct saved s = call_begin(b);
    int rc = family_begin(b, name, PROM_COUNTER, help);
    if (rc == 0) rc = sample(b, NULL, labels, value);
    return call_end(b, s, rc);
}

int prom_gauge(struct prom_buf *b, const char *name, const char *help,
               const struct prom_label *labels, double value)
{
    struct saved s = call_begin(b);
    int rc = family_begin(b, name, PROM_GAUGE, help);
    if (rc == 0) rc = sample(b, NULL, labels, value);
    return call_end(b, s, rc);
}

int prom_histogram(struct prom_buf *b, const char *name, const char *help,
                   const struct prom_label *labels, const struct hist *h)
{
    struct saved s = call_begin(b);
    int rc = family_begin(b, name, PROM_HISTOGRAM, help);
    if (rc == 0) rc = hist_sample(b, labels, h);
    return call_end(b, s, rc);
}
