#include "metrics/refusals.h"

#include "core/log.h"

struct refusals refusals;

static const char *const names[REFUSE_N] = {
    [REFUSE_FULL] = "full",
    [REFUSE_BUSY] = "busy",
    [REFUSE_NO_WORKER] = "no_worker",
    [REFUSE_NO_SPACE] = "no_space",
    [REFUSE_BAD_KEY] = "bad_key",
    [REFUSE_HAS_SOURCE] = "has_source",
    [REFUSE_BAD_STREAM] = "bad_stream",
    [REFUSE_BAD_REQUEST] = "bad_request",
    [REFUSE_TIMEOUT] = "timeout",
    [REFUSE_FDS] = "fds",
    [REFUSE_MEMORY] = "memory",
    [REFUSE_JOIN_RATE] = "join_rate",
    [REFUSE_EVICTED] = "evicted",
    [REFUSE_ADDR_RATE] = "addr_rate",
    [REFUSE_ADDR_HANDSHAKES] = "addr_handshakes",
    [REFUSE_TICKET] = "ticket",
    [REFUSE_KEY_LIMIT] = "key_limit",
    [REFUSE_WS_HANDSHAKE] = "ws_handshake",
};

/* The log tally's reasons keep the status code for people reading logs. */
static const char *const log_names[REFUSE_N] = {
    [REFUSE_FULL] = "503 server full",
    [REFUSE_BUSY] = "503 server busy",
    [REFUSE_NO_WORKER] = "503 no worker",
    [REFUSE_NO_SPACE] = "404 no such space",
    [REFUSE_BAD_KEY] = "401 bad key",
    [REFUSE_HAS_SOURCE] = "409 has a publisher",
    [REFUSE_BAD_STREAM] = "415 bad stream",
    [REFUSE_BAD_REQUEST] = "4xx bad request",
    [REFUSE_TIMEOUT] = "header timeout",
    [REFUSE_FDS] = "503 descriptor reserve",
    [REFUSE_MEMORY] = "503 memory budget",
    [REFUSE_JOIN_RATE] = "503 join rate",
    [REFUSE_EVICTED] = "evicted for a descriptor",
    [REFUSE_ADDR_RATE] = "503 address rate",
    [REFUSE_ADDR_HANDSHAKES] = "503 address handshakes",
    [REFUSE_TICKET] = "403 no valid ticket",
    [REFUSE_KEY_LIMIT] = "429 key attempts",
    [REFUSE_WS_HANDSHAKE] = "400/426 bad WebSocket handshake",
};

void refuse(enum refuse_reason r)
{
    if ((unsigned)r >= REFUSE_N) return;
    refusals.count[r]++;
    log_refused(log_names[r]);
}

const char *refuse_name(enum refuse_reason r)
{
    return (unsigned)r < REFUSE_N ? names[r] : "other";
}
