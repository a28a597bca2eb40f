/* The split between the connection driver (worker.c) and the protocol a
 * simulated client speaks (player.c today; WebSocket, HLS and attack modes
 * later).
 *
 * The driver owns sockets, timing and accounting of connection failures. A
 * client_ops owns what goes over the wire once TCP is up and what the bytes
 * mean. Each connection is one struct load_conn in a table preallocated per
 * worker; its protocol state lives in `priv`, which the ops cast to their own
 * struct (at most LOAD_CONN_PRIV bytes, checked at compile time by each
 * client). Nothing is allocated per connection.
 *
 *   struct load_conn (<= 200 bytes)
 *   +-------------------------------+--------------------------------+
 *   | fd, index, times, state, ...  | priv: e.g. struct player       |
 *   | (driver)                      | (head parser, Ogg scan, meter) |
 *   +-------------------------------+--------------------------------+
 */
#ifndef TRIBUNE_TOOLS_LOAD_CLIENT_H
#define TRIBUNE_TOOLS_LOAD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "load.h"

#define LOAD_CONN_PRIV 160

enum conn_state {
    CONN_IDLE,       /* slot not used yet */
    CONN_CONNECTING, /* nonblocking connect() in flight */
    CONN_SENDING,    /* request partly written */
    CONN_READING,    /* request written, reading */
    CONN_CLOSED,     /* see close_reason */
};

/* Why a connection ended; CLOSE_NONE while it is open. */
enum close_reason {
    CLOSE_NONE,
    CLOSE_CONNECT, /* socket(), bind() or connect() failed */
    CLOSE_RESET,   /* read or write error after connecting */
    CLOSE_EOF,     /* the server closed the connection */
    CLOSE_PROTO,   /* the client could not make sense of the bytes */
    CLOSE_REFUSED, /* the server answered with a refusal (status in `status`) */
    CLOSE_ABORT,   /* the client reset it itself (SO_LINGER 0: --flood-mode reset) */
    CLOSE_IDLE,    /* nothing arrived for --failover-idle (failover.h) */
};

/* Per-connection marks set by the driver for the attack modes (attack.h). */
enum conn_flag {
    CONN_F_STOPPER = 1, /* will stop reading (--stop-reading) */
    CONN_F_STOPPED = 2, /* has stopped reading: its socket is no longer watched */
    CONN_F_FLOOD = 4,   /* a flood connection (flood_ops), not a listener */
    CONN_F_RETRY = 8,   /* closed; starts again at retry_at_ms (--retry) */
};

struct load_conn {
    int64_t start_us; /* connect() started */
    int fd;           /* -1 when closed */
    uint32_t index;   /* listener number across the whole run */
    int32_t err;      /* errno of a failure, 0 otherwise */
    uint16_t req_off; /* request bytes written */
    uint16_t status;  /* response status, set by the client */
    uint8_t state;    /* enum conn_state */
    uint8_t reason;   /* enum close_reason */
    uint8_t flags;    /* enum conn_flag */
    /* --retry (the driver's; they outlive each attempt, priv does not) */
    uint8_t run_503;      /* consecutive 503s now, saturating */
    uint32_t retry_at_ms; /* CONN_F_RETRY: when to start again, ms from the run's start */
    uint8_t fails;        /* consecutive failed attempts (the backoff's exponent) */
    uint8_t max_503;      /* longest run of 503s so far */
    uint16_t retries;     /* attempts after the first, saturating */
    _Alignas(8) unsigned char priv[LOAD_CONN_PRIV];
};

_Static_assert(sizeof(struct load_conn) <= 200, "per-connection state must stay small");

/* What one kind of client does. All hooks are called from the worker's loop. */
struct client_ops {
    const char *name;
    /* Renders the request every connection sends (the same for all); returns
     * its length, or -ENOSPC if `cap` is too small. */
    int (*render_request)(const struct load_target *t, char *buf, size_t cap);
    /* Resets `c->priv` for a new connection. */
    void (*on_open)(struct load_conn *c);
    /* Bytes arrived at `now_us`; `buf` is the worker's scratch and may be
     * modified. Returns CLOSE_NONE to continue, or the reason to close. */
    int (*on_data)(struct load_conn *c, uint8_t *buf, size_t len, int64_t now_us);
    /* Called every ~100 ms for open connections, with or without data. */
    void (*on_tick)(struct load_conn *c, int64_t now_us);
    /* Adds this connection's protocol state to `k` (the driver counts the
     * connection states and close reasons itself). */
    void (*tally)(const struct load_conn *c, struct load_counts *k, int64_t now_us);
    /* Join-to-first-audio in microseconds, or -1 if no audio arrived. */
    int64_t (*join_us)(const struct load_conn *c);
    /* The driver stopped reading this connection for good (an attack mode);
     * it must count as not hearing from `now_us` on. May be NULL. */
    void (*on_stop)(struct load_conn *c, int64_t now_us);
    /* May be NULL. The connection writes bytes of its own (each flood
     * connection sends different ones) instead of the shared request: called
     * when the socket is writable, it writes until EAGAIN or the end, and sets
     * *is_done when nothing more is to be written (the driver then reads).
     * Returns CLOSE_NONE, or the reason to close (CLOSE_ABORT: with a reset). */
    int (*on_writable)(struct load_conn *c, int64_t now_us, bool *is_done);
    /* May be NULL. The Retry-After of the last response, in seconds, or -1. */
    int32_t (*retry_after_s)(const struct load_conn *c);
    /* May be NULL. --loud-bytes: when the first loud page arrived, unix epoch
     * microseconds, or -1 if none did (or the option is off). */
    int64_t (*loud_unix_us)(const struct load_conn *c);
};

/* Flood connections (attack.h): connect, then whatever --flood-mode says. */
extern const struct client_ops flood_ops;
/* Its configuration (--flood-mode, --flood-trickle), set once before the
 * workers fork. */
void flood_configure(const struct load_opts *o);

/* The progressive Ogg/Opus player (GET /spaces/{id}/live.opus). */
extern const struct client_ops player_ops;
/* Its configuration, set once before the workers fork; `t0_us` is the run's
 * start (for --trace times). */
void player_configure(const struct load_opts *o, int64_t t0_us);
/* The same listener on the WebSocket path (GET /spaces/{id}/ws): the URL's
 * path ends in "/ws". Configured by player_configure too. */
extern const struct client_ops ws_player_ops;

#endif
