/* Logging: one line per event that matters, to stderr.
 *
 * Contract: log_msg() never allocates and never blocks for long (stderr is a
 * pipe or a terminal); client-provided bytes must go through log_escape() first.
 * Thread: any process, one thread per process (the rate limits and tallies
 * below keep state without locks); a single write(2) per line.
 *
 * Two formats (log_set_format):
 *   text  2026-12-01T22:40:01.123Z info  [4242] space abc: idle -> live
 *   json  {"ts":"2026-12-01T22:40:01.123Z","level":"info","pid":4242,"msg":"space abc: idle ->
 * live"} A JSON line is pure ASCII: the message is escaped per JSON (", \, bytes below 0x20 and
 * from 0x7f up as \uXXXX or \n, \t ...), so every line parses.
 *
 * Sites that can fire per connection or per packet do not use log_msg():
 *   log_limited(LOG_WARN, 5, "...", ...)   at most 5 lines a second from this
 *       call site; the lines held back become one line when the second ends:
 *       "<first held back> (N more like this in the last second)".
 *   log_refused("503 server full")         counts a refusal; once a second one
 *       line sums them up by reason:
 *       "refused in the last second: 125 (503 server full: 120, 401 bad key: 3)".
 * The summaries are written by log_flush(), which the event loop calls on every
 * turn (at least once a second), or by the next event at the same site.
 */
#ifndef TRIBUNE_CORE_LOG_H
#define TRIBUNE_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_TEXT, LOG_JSON };

extern enum log_level log_threshold;
extern enum log_format log_format;

/* Parses "error", "warn", "info", "debug"; returns 0 or -EINVAL. */
int log_set_level(const char *name);
/* Parses "text" or "json"; returns 0 or -EINVAL (the format is then unchanged). */
int log_set_format(const char *name);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copies at most `len` bytes of `in` into `out` (size `cap`), escaping anything
 * that is not printable ASCII as \xHH. Always NUL-terminates; returns `out`. */
char *log_escape(char *out, size_t cap, const char *in, size_t len);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_threshold >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__);                           \
    } while (0)

/* ---- Rate limits: at most `max` lines a second from one call site ---- */

enum { LOG_EXAMPLE_BYTES = 200 };

struct log_limit {
    uint64_t window_start_ms;        /* the second being counted started here */
    unsigned count;                  /* lines written in this second */
    unsigned suppressed;             /* lines held back in this second */
    enum log_level level;            /* of the lines held back */
    bool is_pending;                 /* on the list that log_flush() walks */
    struct log_limit *next;          /* on that list */
    char example[LOG_EXAMPLE_BYTES]; /* the first line held back, for the summary */
};

/* Writes the line unless `l` already wrote `max` lines in the current second;
 * counts it otherwise. */
void log_limit_msg(struct log_limit *l, unsigned max, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* One struct log_limit per call site. */
#define log_limited(level, max, ...)                                                               \
    do {                                                                                           \
        static struct log_limit log_limit_site_;                                                   \
        log_limit_msg(&log_limit_site_, (max), (level), __VA_ARGS__);                              \
    } while (0)

/* ---- Tallies: events counted by reason, one line a second ---- */

enum { LOG_TALLY_REASONS = 8, LOG_TALLY_REASON_BYTES = 48 };

struct log_tally {
    const char *what;     /* leads the line: "refused" */
    enum log_level level; /* of the line */
    uint64_t window_start_ms;
    unsigned total;    /* events in this second */
    unsigned nreasons; /* rows of reason/count in use */
    unsigned other;    /* events whose reason found no free row */
    bool is_pending;   /* on the list that log_flush() walks */
    struct log_tally *next;
    unsigned count[LOG_TALLY_REASONS];
    char reason[LOG_TALLY_REASONS][LOG_TALLY_REASON_BYTES];
};

#define LOG_TALLY_INIT(what_, level_)                                                              \
    {                                                                                              \
        .what = (what_), .level = (level_)                                                         \
    }

/* Counts one event for `reason` (our own text, not client bytes; cut to
 * LOG_TALLY_REASON_BYTES - 1). Nothing is counted below the threshold. */
void log_tally_add(struct log_tally *t, const char *reason);

/* Refusals of this process (joins, publishes, hand-offs), level info. */
extern struct log_tally log_refusals;
#define log_refused(reason) log_tally_add(&log_refusals, (reason))

/* Writes the summaries of every rate limit and tally whose second has ended.
 * Cheap when there is none (one test). Called by the event loop. */
void log_flush(void);
/* Writes every pending summary now, ended or not (before exit, and tests). */
void log_flush_all(void);

/* Tests only: the monotonic clock, in ms, that rate limits and tallies use
 * (NULL restores the real one). */
void log_set_clock(uint64_t (*now_ms)(void));

#endif
