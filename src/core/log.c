#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"

enum log_level log_threshold = LOG_INFO;
enum log_format log_format = LOG_TEXT;

/* A message, before the prefix; a text line is cut to LINE_BYTES in all, a
 * JSON line (up to 6 bytes per escaped byte) to JSON_LINE_BYTES. */
enum { MSG_BYTES = 1024, LINE_BYTES = 1024, JSON_LINE_BYTES = 2048, WINDOW_MS = 1000 };

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"text", "json"};

int log_set_level(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            log_threshold = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int log_set_format(const char *name)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
        if (strcmp(name, format_names[i]) == 0) {
            log_format = (enum log_format)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* "2026-12-01T22:40:01.123Z" into ts. */
static void timestamp(char *ts, size_t cap)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
}

/* Appends `in` (len bytes) to out[o..cap) escaped as the inside of a JSON
 * string, stopping before an escape that does not fit; returns the new o. */
static size_t json_escape(char *out, size_t o, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        char esc[6];
        size_t n = 0;
        if (c == '"' || c == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[n++] = '\\';
            esc[n++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c < 0x20 || c >= 0x7f) {
            /* Bytes from 0x80 up are not valid UTF-8 on their own: keep the
             * line ASCII, and the byte recoverable, as U+0080..U+00FF. */
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        } else {
            esc[n++] = (char)c;
        }
        if (o + n > cap) break;
        memcpy(out + o, esc, n);
        o += n;
    }
    return o;
}

/* Writes one line for `msg` (len bytes) in the current format, in one write(2). */
static void write_line(enum log_level level, const char *msg, size_t len)
{
    char ts[64];
    timestamp(ts, sizeof(ts));
    char line[JSON_LINE_BYTES];
    size_t n;
    if (log_format == LOG_JSON) {
        static const char tail[] = "\"}\n";
        int p =
            snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"msg\":\"",
                     ts, level_names[level], (int)getpid());
        n = json_escape(line, (size_t)p, sizeof(line) - (sizeof(tail) - 1), msg, len);
        memcpy(line + n, tail, sizeof(tail) - 1);
        n += sizeof(tail) - 1;
    } else {
        int p = snprintf(line, LINE_BYTES, "%s %-5s [%d] ", ts, level_names[level], (int)getpid());
        n = (size_t)p;
        if (len > LINE_BYTES - 1 - n) len = LINE_BYTES - 1 - n;
        memcpy(line + n, msg, len);
        n += len;
        line[n++] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

/* Formats into msg (size MSG_BYTES); returns the length kept. */
static size_t format_msg(char *msg, const char *fmt, va_list ap)
{
    int m = vsnprintf(msg, MSG_BYTES, fmt, ap);
    if (m < 0) return 0;
    return (size_t)m < MSG_BYTES ? (size_t)m : MSG_BYTES - 1;
}

/* Formats the whole line first so that it reaches stderr in one write(2). */
void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > log_threshold) return;
    char msg[MSG_BYTES];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format_msg(msg, fmt, ap);
    va_end(ap);
    write_line(level, msg, len);
}

char *log_escape(char *out, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (cap) out[o < cap ? o : cap - 1] = '\0';
    return out;
}

/* ---- Rate limits and tallies ----
 * Each keeps its own one-second window, started by its first event. A limit
 * that held lines back, and a tally that counted any, sit on a pending list
 * until their summary is written: by log_flush() once the window has ended,
 * or by the next event at the same site if that comes first. */

static uint64_t real_clock(void)
{
    return clock_ms();
}

static uint64_t (*now_ms)(void) = real_clock;
static struct log_limit *pending_limits;
static struct log_tally *pending_tallies;
static bool is_atexit_set;

void log_set_clock(uint64_t (*fn)(void))
{
    now_ms = fn ? fn : real_clock;
}

static void watch_exit(void)
{
    if (is_atexit_set) return;
    is_atexit_set = true;
    atexit(log_flush_all);
}

static void limit_unlink(struct log_limit *l)
{
    for (struct log_limit **p = &pending_limits; *p; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            break;
        }
    }
    l->next = NULL;
    l->is_pending = false;
}

/* Writes the summary of `l`'s window and forgets it. */
static void limit_summary(struct log_limit *l)
{
    if (l->suppressed)
        log_msg(l->level, "%s (%u more like this in the last second)", l->example, l->suppressed);
    l->count = l->suppressed = 0;
    if (l->is_pending) limit_unlink(l);
}

void log_limit_msg(struct log_limit *l, unsigned max, enum log_level level, const char *fmt, ...)
{
    if (level > log_threshold) return;
    uint64_t now = now_ms();
    if ((l->count == 0 && l->suppressed == 0) || now - l->window_start_ms >= WINDOW_MS) {
        limit_summary(l);
        l->window_start_ms = now;
    }
    va_list ap;
    va_start(ap, fmt);
    if (l->count < max) {
        l->count++;
        char msg[MSG_BYTES];
        size_t len = format_msg(msg, fmt, ap);
        write_line(level, msg, len);
    } else if (l->suppressed++ == 0) {
        vsnprintf(l->example, sizeof(l->example), fmt, ap);
        l->level = level;
        l->is_pending = true;
        l->next = pending_limits;
        pending_limits = l;
        watch_exit();
    }
    va_end(ap);
}

struct log_tally log_refusals = LOG_TALLY_INIT("refused", LOG_INFO);

static void tally_unlink(struct log_tally *t)
{
    for (struct log_tally **p = &pending_tallies; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    t->next = NULL;
    t->is_pending = false;
}

/* Appends to buf[*o..cap) what snprintf would, cut at cap; keeps *o <= cap - 1. */
__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t cap, size_t *o,
                                                         const char *fmt, ...)
{
    if (*o >= cap - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *o, cap - *o, fmt, ap);
    va_end(ap);
    if (n > 0) *o = (size_t)n < cap - *o ? *o + (size_t)n : cap - 1;
}

/* Writes the summary of `t`'s window and forgets it. */
static void tally_summary(struct log_tally *t)
{
    if (t->total) {
        char msg[MSG_BYTES];
        size_t o = 0;
        append(msg, sizeof(msg), &o, "%s in the last second: %u (", t->what, t->total);
        for (unsigned i = 0; i < t->nreasons; i++)
            append(msg, sizeof(msg), &o, "%s%s: %u", i ? ", " : "", t->reason[i], t->count[i]);
        if (t->other) append(msg, sizeof(msg), &o, ", other: %u", t->other);
        append(msg, sizeof(msg), &o, ")");
        log_msg(t->level, "%s", msg);
    }
    t->total = t->nreasons = t->other = 0;
    if (t->is_pending) tally_unlink(t);
}

void log_tally_add(struct log_tally *t, const char *reason)
{
    if (t->level > log_threshold) return;
    uint64_t now = now_ms();
    if (t->total && now - t->window_start_ms >= WINDOW_MS) tally_summary(t);
    if (t->total == 0) {
        t->window_start_ms = now;
        t->is_pending = true;
        t->next = pending_tallies;
        pending_tallies = t;
        watch_exit();
    }
    t->total++;
    for (unsigned i = 0; i < t->nreasons; i++) {
        if (strncmp(t->reason[i], reason, LOG_TALLY_REASON_BYTES - 1) == 0) {
            t->count[i]++;
            return;
        }
    }
    if (t->nreasons == LOG_TALLY_REASONS) {
        t->other++;
        return;
    }
    unsigned i = t->nreasons++;
    snprintf(t->reason[i], sizeof(t->reason[i]), "%s", reason);
    t->count[i] = 1;
}

/* Writes the summaries whose window ended by `now` (all of them if is_all). */
static void flush(bool is_all)
{
    uint64_t now = now_ms();
    for (struct log_limit *l = pending_limits, *next; l; l = next) {
        next = l->next;
        if (is_all || now - l->window_start_ms >= WINDOW_MS) limit_summary(l);
    }
    for (struct log_tally *t = pending_tallies, *next; t; t = next) {
        next = t->next;
        if (is_all || now - t->window_start_ms >= WINDOW_MS) tally_summary(t);
    }
}

void log_flush(void)
{
    if (pending_limits || pending_tallies) flush(false);
}

void log_flush_all(void)
{
    if (pending_limits || pending_tallies) flush(true);
}
