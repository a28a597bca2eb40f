/* Refusals by reason: one counter table per process, cheap enough for any
 * path that turns a client away.
 *
 *   refuse(REFUSE_FULL)  -> refusals[REFUSE_FULL]++  and  log_refused("503 server full")
 *
 * Workers send their table to the master with each sweep's stats (an empty
 * space id in CHAN_STATS); the master adds every worker's table to its own
 * for GET /metrics (tribune_requests_refused_total{reason}). A dead worker's
 * refusals stay in the sum (fleet.c keeps them). Thread: the process's one
 * loop.
 */
#ifndef TRIBUNE_METRICS_REFUSALS_H
#define TRIBUNE_METRICS_REFUSALS_H

#include <stdint.h>

enum refuse_reason {
    REFUSE_FULL,            /* 503: a worker holds its share of max_listeners */
    REFUSE_BUSY,            /* 503: the master's channel was full for a hand-off */
    REFUSE_NO_WORKER,       /* 503: no delivery worker runs */
    REFUSE_NO_SPACE,        /* 404: listen or publish to a space that does not exist */
    REFUSE_BAD_KEY,         /* 401: publish without the right key */
    REFUSE_HAS_SOURCE,      /* 409: a second publisher */
    REFUSE_BAD_STREAM,      /* 415/400: a published stream that is not valid Ogg/Opus */
    REFUSE_BAD_REQUEST,     /* 400, 405, 413, 414, 431: a request we could not serve */
    REFUSE_TIMEOUT,         /* a request head that did not arrive in time */
    REFUSE_FDS,             /* 503: a join would eat into the descriptor reserve */
    REFUSE_MEMORY,          /* 503: the memory budget's listeners are there */
    REFUSE_JOIN_RATE,       /* 503: over the node's join rate */
    REFUSE_EVICTED,         /* a request head still incomplete, closed to free a descriptor */
    REFUSE_ADDR_RATE,       /* 503 at accept: the client address's connection rate */
    REFUSE_ADDR_HANDSHAKES, /* 503 at accept: too many of the address's requests in flight */
    REFUSE_TICKET,          /* 403: a join without a valid ticket to a space that requires one */
    REFUSE_KEY_LIMIT,       /* 429: an address with too many failed key attempts */
    REFUSE_WS_HANDSHAKE,    /* 400/426: GET /spaces/{id}/ws without a valid WebSocket handshake */
    REFUSE_N
};

struct refusals {
    uint64_t count[REFUSE_N];
};

/* This process's table (read-only outside refusals.c). */
extern struct refusals refusals;

/* Counts one refusal and tallies it for the once-a-second log line. */
void refuse(enum refuse_reason r);
/* The label value of reason r ("full", "bad_key", ...). */
const char *refuse_name(enum refuse_reason r);

#endif
