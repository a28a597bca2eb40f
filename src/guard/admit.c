/* Admission of listeners; see admit.h for the model. */
#include "guard/admit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char body[] = "{\"error\": \"server busy, retry later\"}\n";

void admit_init(struct admit *a, const struct admit_limits *lim, uint64_t now_ms, uint32_t seed)
{
    memset(a, 0, sizeof(*a));
    a->lim = *lim;
    if (a->lim.rate > 0 && a->lim.burst < 1) a->lim.burst = 1;
    a->tokens = a->lim.burst;
    a->last_ms = now_ms;
    a->second_ms = now_ms;
    a->rng = seed ? seed : 0x9e3779b9u;
    for (unsigned s = 1; s <= ADMIT_MAX_RETRY_S; s++) {
        int n = snprintf(a->responses[s], ADMIT_RESPONSE_MAX,
                         "HTTP/1.1 503 Service Unavailable\r\n"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %zu\r\n"
                         "Retry-After: %u\r\n"
                         "Cache-Control: no-store\r\n"
                         /* a listen page of another node reads it (failover, web.md) */
                         "Access-Control-Allow-Origin: *\r\n"
                         "Access-Control-Expose-Headers: Retry-After\r\n"
                         "Connection: close\r\n\r\n%s",
                         sizeof(body) - 1, s, body);
        a->lens[s] = (uint16_t)(n > 0 && n < ADMIT_RESPONSE_MAX ? n : 0);
    }
}

/* Moves the 1 s refusal window forward to `now_ms`. */
static void roll(struct admit *a, uint64_t now_ms)
{
    if (now_ms < a->second_ms + 1000) return;
    a->refused_last = now_ms < a->second_ms + 2000 ? a->refused_now : 0;
    a->refused_now = 0;
    a->second_ms = now_ms;
}

static void refill(struct admit *a, uint64_t now_ms)
{
    if (a->lim.rate <= 0 || now_ms <= a->last_ms) return;
    a->tokens += (double)(now_ms - a->last_ms) * a->lim.rate / 1000.0;
    if (a->tokens > a->lim.burst) a->tokens = a->lim.burst;
    a->last_ms = now_ms;
}

static enum admit_verdict refused(struct admit *a, enum admit_verdict v)
{
    a->refused_now++;
    return v;
}

enum admit_verdict admit_join(struct admit *a, uint64_t now_ms, uint64_t listeners,
                              uint64_t fds_open)
{
    roll(a, now_ms);
    if (a->lim.max_listeners && listeners >= a->lim.max_listeners) return refused(a, ADMIT_FULL);
    if (a->lim.max_by_memory && listeners >= a->lim.max_by_memory) return refused(a, ADMIT_MEMORY);
    if (a->lim.fd_limit && fds_open + a->lim.fd_reserve >= a->lim.fd_limit)
        return refused(a, ADMIT_FDS);
    if (a->lim.rate > 0) {
        refill(a, now_ms);
        if (a->tokens < 1) return refused(a, ADMIT_RATE);
        a->tokens -= 1;
    }
    return ADMIT_OK;
}

unsigned admit_window_s(const struct admit *a, uint64_t now_ms)
{
    uint64_t backlog = a->refused_last > a->refused_now ? a->refused_last : a->refused_now;
    if (now_ms >= a->second_ms + 2000) backlog = 0;
    double rate = a->lim.rate > 0 ? a->lim.rate : 1000;
    double w = ceil((double)backlog / rate) + 1;
    if (w < 2) w = 2;
    if (w > ADMIT_MAX_RETRY_S) w = ADMIT_MAX_RETRY_S;
    return (unsigned)w;
}

const char *admit_response(struct admit *a, uint64_t now_ms, size_t *len)
{
    unsigned w = admit_window_s(a, now_ms);
    a->rng ^= a->rng << 13;
    a->rng ^= a->rng >> 17;
    a->rng ^= a->rng << 5;
    unsigned s = 1 + a->rng % w;
    *len = a->lens[s];
    return a->responses[s];
}
