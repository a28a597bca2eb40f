/* Logging: one line per event that matters, to stderr.
 *
 * Contract: log_msg() never allocates and never blocks for long (stderr is a
 * pipe or a terminal); client-provided bytes must go through log_escape() first.
 * Thread: any (a single write(2) per line).
 */
#ifndef TRIBUNE_CORE_LOG_H
#define TRIBUNE_CORE_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

/* Parses "error", "warn", "info", "debug"; returns 0 or -EINVAL. */
int log_set_level(const char *name);
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

#endif
