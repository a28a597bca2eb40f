/* Retry schedules; see retry.h. */
#include "retry.h"

#include <errno.h>
#include <string.h>

static const char *const names[RETRY_MODES] = {
    [RETRY_NONE] = "none",
    [RETRY_AFTER] = "after",
    [RETRY_HLS] = "hls",
    [RETRY_JITTER] = "jitter",
};

/* RETRY_BASE_MS x 2^(fails-1), or `cap` if that is more. */
static int64_t doubled_ms(uint32_t fails, int64_t cap)
{
    int64_t ms = RETRY_BASE_MS;

    for (uint32_t i = 1; i < fails && ms < cap; i++)
        ms *= 2;
    return ms < cap ? ms : cap;
}

int64_t retry_delay_ms(uint32_t mode, uint32_t fails, int32_t retry_after_s, uint32_t rnd)
{
    int64_t after_ms = retry_after_s >= 0 ? (int64_t)retry_after_s * 1000 : -1;
    int64_t cap, ms;

    if (fails < 1) fails = 1;
    switch (mode) {
    case RETRY_AFTER:
        return after_ms >= 0 ? after_ms : RETRY_AFTER_DEFAULT_MS;
    case RETRY_HLS:
        return doubled_ms(fails, RETRY_HLS_CAP_MS);
    case RETRY_JITTER:
        cap = doubled_ms(fails, RETRY_JITTER_CAP_MS);
        ms = (int64_t)(((uint64_t)rnd * (uint64_t)(cap + 1)) >> 32);
        return ms > after_ms ? ms : after_ms;
    default:
        return -1;
    }
}

const char *retry_mode_name(uint32_t mode)
{
    return mode < RETRY_MODES ? names[mode] : "?";
}

int retry_mode_parse(const char *s)
{
    for (int m = 0; m < RETRY_MODES; m++)
        if (strcmp(s, names[m]) == 0) return m;
    return -EINVAL;
}

uint32_t retry_rand(uint32_t *state)
{
    uint32_t x = *state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}
