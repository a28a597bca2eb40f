/* The master's fleet of delivery workers (deliver/worker.c).
 *
 *   master loop                                  worker processes
 *   feed_publish --on_chunk--> fleet_broadcast --chan--> w0  w1  ... wN-1
 *   conn (handed off) <--on_handoff------------------chan--  (fd + bytes)
 *   space stats       <--on_stats--------------------chan--  (each second)
 *
 * - Each worker is `exe __worker` (a fresh process image, so nothing of the
 *   master's state, SQLite handle or loop leaks into it), with its channel on
 *   fd 3, its settings as the first message, and PR_SET_PDEATHSIG so that it
 *   cannot outlive the master.
 * - A message that does not fit a worker's channel waits in that worker's
 *   `pending` queue (a copy), sent on EPOLLOUT; a worker whose queue grows
 *   past FLEET_MAX_PENDING is stuck and is killed (and restarted).
 * - A worker that dies is reaped (fleet_reap, on SIGCHLD) and restarted after
 *   a back-off; its listeners are gone and reconnect; nobody else notices.
 * Thread: the master loop.
 */
#ifndef TRIBUNE_DELIVER_FLEET_H
#define TRIBUNE_DELIVER_FLEET_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"
#include "core/list.h"
#include "core/loop.h"
#include "deliver/channel.h"
#include "metrics/refusals.h"

struct fleet;
struct feed;
struct chunk;
struct feed_stats;

enum { FLEET_MAX = 32, FLEET_MAX_PENDING = 32 << 20 };

struct fleet_events {
    /* A worker (re)started: send it what it must know (fleet_sync_feed). */
    void (*on_up)(struct fleet *f, int w, void *arg);
    /* A worker died: its listeners are gone. */
    void (*on_down)(struct fleet *f, int w, void *arg);
    /* A request the worker does not serve: `fd` (the callee owns it) and the
     * bytes read so far. */
    void (*on_handoff)(struct fleet *f, int w, int fd, const void *bytes, size_t len, void *arg);
    /* Counters of one space's feed in worker w. */
    void (*on_stats)(struct fleet *f, int w, const char *space, unsigned fmt,
                     const struct feed_stats *st, void *arg);
    /* Edge `edge` (len bytes, not NUL-terminated) lost its upstream connection to
     * space `space` in worker w (CHAN_EDGE_GONE). */
    void (*on_edge_gone)(struct fleet *f, int w, const char *space, const char *edge, size_t len,
                         void *arg);
    void *arg;
};

struct fleet_worker {
    struct io io;             /* private: the channel */
    struct fleet *fleet;      /* private */
    int idx;                  /* read-only */
    pid_t pid;                /* read-only: 0 when not running */
    bool is_up;               /* read-only */
    struct list pending;      /* private */
    size_t pending_bytes;     /* private */
    uint64_t started_ms;      /* read-only */
    uint64_t restarts;        /* read-only */
    uint64_t backoff_ms;      /* private */
    struct timer restart;     /* private */
    struct refusals refusals; /* read-only: the worker's, as of its last report */
    struct refusals retired;  /* read-only: refusals of this slot's earlier processes */
};

struct fleet {
    struct loop *loop;        /* private */
    const struct config *cfg; /* private */
    struct fleet_events ev;   /* private */
    char exe[PATH_MAX];       /* private */
    int n;                    /* read-only */
    bool is_stopping;         /* read-only */
    unsigned char *buf;       /* private */
    struct fleet_worker w[FLEET_MAX];
};

/* The number of workers for these settings: cfg->workers, or when 0 enough
 * for max_listeners (WORKER_MAX_LISTENERS-based) and at least one per core. */
int fleet_size(const struct config *cfg);

/* Starts n workers running `exe`. 0 or negative errno. */
int fleet_start(struct fleet *f, struct loop *loop, const struct config *cfg, const char *exe,
                int n, const struct fleet_events *ev);
/* Stops every worker (SIGTERM, then SIGKILL after a grace period) and waits
 * for them. */
void fleet_stop(struct fleet *f);
/* Reaps exited workers and schedules their restart. Call on SIGCHLD. */
void fleet_reap(struct fleet *f);

/* Sends a message to worker w (or queues it). The fd, if any, is duplicated:
 * the caller keeps its own. 0 or negative errno. */
int fleet_send(struct fleet *f, int w, const struct chan_msg *m, const void *payload, int fd);
/* Sends a message to every running worker. */
void fleet_broadcast(struct fleet *f, const struct chan_msg *m, const void *payload);
/* Tells every worker about a chunk of space `id`'s feed `fmt` (CHAN_FMT_*;
 * is_header: the format header). */
void fleet_broadcast_chunk(struct fleet *f, const char *id, unsigned fmt, const struct chunk *c,
                           int is_header);
/* The fleet's node-wide numbers: workers running, restarts since start, and
 * every running worker's last-reported refusals added into *refused. */
void fleet_totals(const struct fleet *f, unsigned *up, uint64_t *restarts,
                  struct refusals *refused);
/* True when at least one worker runs. */
bool fleet_is_up(const struct fleet *f);
/* Sends worker w a space: SPACE (with its CHAN_SPACE_* flags), the header of
 * `feed` and its last `burst` chunks (feed->is_ws: as CHAN_FMT_WS). */
void fleet_sync_feed(struct fleet *f, int w, const char *id, const struct feed *feed,
                     uint64_t flags);
/* Tells every worker that space `id`'s CHAN_SPACE_* flags changed. */
void fleet_broadcast_space(struct fleet *f, const char *id, uint64_t flags);
/* Hands listener `fd` of space `id` to worker w (or the first running one
 * when w is not running). With `ws_accept` (28 characters) it is a
 * WebSocket listener whose handshake was checked: the worker admits it, then
 * sends the 101 head with that accept value; `edge` (edge_len bytes, or NULL) is
 * the X-Tribune-Edge id of an edge's upstream connection (CHAN_EDGE_GONE when it
 * closes). The caller closes its fd afterwards. 0 or negative errno (-EAGAIN: no
 * worker is running). */
int fleet_give_listener(struct fleet *f, int w, const char *id, int fd, int is_head,
                        const char *ws_accept, const char *edge, size_t edge_len);

#endif
