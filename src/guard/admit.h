/* Admission of listeners: a join is admitted only while the process has room
 * for it and the join rate allows; otherwise it gets a pre-built 503 with a
 * jittered Retry-After and the connection is closed. Existing listeners come
 * first: nothing here ever touches an admitted listener.
 *
 *   join --> room?  listeners < max_listeners, open fds < fd_limit - reserve,
 *                   listeners < max_by_memory (memory budget / cost of a listener)
 *        --> rate?  token bucket: `rate` joins/s, `burst` at once
 *        --> admit                        else --> 503 + Retry-After: R, close
 *
 *   R is drawn uniformly from 1..W seconds, W sized to the backlog: the
 *   refusals of the last second (an estimate of the clients that will come
 *   back) spread at the join rate, at least 2 s and at most ADMIT_MAX_RETRY_S:
 *     W = clamp(ceil(refused_per_s / rate) + 1, 2, ADMIT_MAX_RETRY_S)
 *   so that a refused crowd comes back spread out, never all at once. Never
 *   429: hls.js and <audio> give up on a 4xx.
 *
 * Each delivery worker holds one struct admit sized to its share of the node
 * (max_listeners, join_rate and join_burst divided by the number of workers:
 * SO_REUSEPORT spreads joins evenly). The responses are built once at init;
 * a refusal costs one send() of a static buffer.
 * Contract: pure; time and the counts of listeners and open descriptors are
 * passed in (ms, one monotonic clock). No allocation. Thread: one loop.
 */
#ifndef TRIBUNE_GUARD_ADMIT_H
#define TRIBUNE_GUARD_ADMIT_H

#include <stddef.h>
#include <stdint.h>

enum { ADMIT_MAX_RETRY_S = 60, ADMIT_RESPONSE_MAX = 320 };

enum admit_verdict {
    ADMIT_OK,
    ADMIT_FULL,   /* listeners at max_listeners */
    ADMIT_FDS,    /* too few descriptors left (the reserve is for others) */
    ADMIT_RATE,   /* over the join rate */
    ADMIT_MEMORY, /* the memory budget's listeners are there */
};

struct admit_limits {
    uint64_t max_listeners; /* 0: no limit */
    double rate;            /* joins per second, 0: no limit */
    double burst;           /* joins at once (bucket size), at least 1 when rate > 0 */
    uint64_t fd_limit;      /* RLIMIT_NOFILE's soft limit, 0: no limit */
    uint64_t fd_reserve;    /* descriptors kept for everything but new listeners */
    uint64_t max_by_memory; /* listeners the memory budget pays for, 0: no limit */
};

struct admit {
    struct admit_limits lim;
    double tokens;
    uint64_t last_ms;      /* last refill */
    uint64_t second_ms;    /* start of the current 1 s refusal window */
    uint64_t refused_now;  /* refusals in the current window */
    uint64_t refused_last; /* refusals in the previous window */
    uint32_t rng;          /* xorshift state for Retry-After */
    uint16_t lens[ADMIT_MAX_RETRY_S + 1];
    char responses[ADMIT_MAX_RETRY_S + 1][ADMIT_RESPONSE_MAX]; /* [s]: Retry-After: s */
};

/* Builds the responses and fills the bucket. `seed` varies Retry-After
 * between processes. */
void admit_init(struct admit *a, const struct admit_limits *lim, uint64_t now_ms, uint32_t seed);
/* Decides one join, given the listeners and descriptors open now. On
 * ADMIT_OK a token is spent; any other verdict counts as a refusal for the
 * backlog estimate. */
enum admit_verdict admit_join(struct admit *a, uint64_t now_ms, uint64_t listeners,
                              uint64_t fds_open);
/* The current Retry-After window W, in seconds. */
unsigned admit_window_s(const struct admit *a, uint64_t now_ms);
/* A pre-built "503 Service Unavailable" with Retry-After drawn from 1..W;
 * *len gets its length. The buffer lives as long as `a`. */
const char *admit_response(struct admit *a, uint64_t now_ms, size_t *len);

#endif
