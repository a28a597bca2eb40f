/* struct feed: one delivery format of one space: its ring, its header chunk
 * and its listeners. The fan-out hot path lives here and in listener.c.
 *
 *   packager --feed_publish(chunk)--> ring --> for each listener on `ready`:
 *                                               writev(chunks from its cursor)
 *                                        full? -> `blocked` (EPOLLOUT wakes it)
 *
 * - `ready[b]` holds caught-up listeners of write bucket b. Each new chunk is
 *   written to the buckets whose turn it is: with `nbuckets` = 1 every
 *   listener gets every chunk at once; with nbuckets = 5 (a loaded worker)
 *   each listener is written every fifth chunk, all five pending chunks in one
 *   sendmsg. The kernel's cost per send decides capacity, players buffer, so
 *   a loaded node writes less often rather than falling over:
 *
 *     chunk seq:   100   101   102   103   104   105 ...
 *     bucket:       0     1     2     3     4     0  ...   (seq % nbuckets)
 *
 *   Buckets congruent modulo nbuckets are flushed together, so changing
 *   nbuckets never strands a listener.
 * - `blocked` holds listeners whose socket was full; they resume on EPOLLOUT
 *   (edge-triggered, registered once: no epoll_ctl per write) and rejoin
 *   `ready` once caught up. Behind the ring's tail they skip to live.
 * - A listener making no progress for `stall_timeout_ms` is dropped by the
 *   sweep (every 100 ms).
 * Thread: one loop. A feed outlives its listeners (feed_fini closes them).
 */
#ifndef TRIBUNE_DELIVER_FEED_H
#define TRIBUNE_DELIVER_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/list.h"
#include "core/loop.h"
#include "deliver/ring.h"
#include "metrics/hist.h"
#include "metrics/refusals.h"

struct chunk;

/* Listener states (DESIGN.md, "Accounting"), kept as gauges updated on each
 * transition, never by scanning:
 *   waiting  admitted, no audio yet: the space has no program header, or
 *            it is not live (scheduled or green: it hears silence)
 *   hearing  audio written, caught up to within 2 s of live (lag_chunks),
 *            no skip and no lag for the last FEED_HEAR_WINDOW_MS
 *   lagging  skipped to live, or blocked more than 2 s behind, or fed chunks
 *            that arrived more than 2 s late (feed_clock), within the last
 *            FEED_HEAR_WINDOW_MS
 * HEAD requests are counted in `listeners` but in no state. */
enum { FEED_HEAR_WINDOW_MS = 10000, FEED_LAG_MS = 2000 };

enum { FEED_LISTEN_MS = 60000 };

/* The WebSocket feed's chunks are one 20 ms packet each, whatever chunk_ms
 * (the Ogg feed's): a packet then waits for no other in the packager. Measured
 * on the demo (docs/internals/websocket.md): the server-side wait of a packet
 * is 11 ms on average (p95 22 ms) with 20 ms chunks against 55 ms (p95 102 ms)
 * with 100 ms ones, for five times the writes per listener while each chunk is
 * written (under load the write buckets still coalesce, as for Ogg). A joining
 * WebSocket listener's burst is the newest FEED_WS_BURST_MS of audio, not
 * burst_ms: the browser keeps its own small buffer and wants the newest audio. */
enum { FEED_WS_CHUNK_MS = 20, FEED_WS_BURST_MS = 100 };
enum { FEED_WS_BURST_CHUNKS = FEED_WS_BURST_MS / FEED_WS_CHUNK_MS };

/* A histogram's numbers without its bucket set: plain values, so that a
 * worker can send them to the master (the bounds pointer of struct hist means
 * nothing in another process). The bucket set is implied by the field:
 * hist_join_to_first_audio or hist_session_length (metrics/hist.h). */
struct feed_hist {
    uint64_t counts[HIST_MAX + 1]; /* per bucket, as struct hist */
    double sum;
    uint64_t count;
};

/* Counters since start and gauges, of one feed. The same struct travels from
 * each worker to the master (CHAN_STATS, same binary on both ends). */
struct feed_stats {
    uint64_t listeners;                 /* connected now */
    uint64_t waiting, hearing, lagging; /* connected now, by state */
    uint64_t joined;                    /* since start */
    uint64_t left;                      /* since start */
    uint64_t skips;                     /* skip-to-live events */
    uint64_t skipped_chunks;
    uint64_t dropped;           /* removed: stalled (no progress) or lagging */
    uint64_t dropped_lagging;   /* of which: fell behind again soon after a skip */
    uint64_t bytes;             /* audio and headers written */
    uint64_t listens;           /* sessions closed after >= FEED_LISTEN_MS of audio */
    uint64_t dropped_protocol;  /* WebSocket feeds: closed 1002/1009 for a protocol violation
                                   (also counted in `dropped`) */
    uint64_t ws_closes;         /* WebSocket feeds: the client closed (answered, then left) */
    uint64_t refused[REFUSE_N]; /* joins of this space turned away, by reason (the guard's) */
    /* Seconds from listener_start to the first audio byte its socket accepted
     * (hist_join_to_first_audio), and from that byte to the close
     * (hist_session_length, only for listeners that got audio). */
    struct feed_hist join_to_audio, session;
};

/* Adds src's buckets, sum and count to dst (summing workers). */
void feed_hist_add(struct feed_hist *dst, const struct feed_hist *src);
/* Rebuilds a struct hist on bucket set `b` from `src`. 0 or -EINVAL. */
int feed_hist_get(const struct feed_hist *src, const struct hist_buckets *b, struct hist *out);

enum { FEED_MAX_BUCKETS = 16 };

/* How far behind live a feed's chunks arrive, on this process's clock: a
 * chunk's granule says when its audio was due; its arrival minus that, less
 * the smallest such difference seen (the feed's normal delay: packaging and
 * the channel), is how late it is. A master or worker whose loop fell behind
 * (CPU taken, a backlog drained) delivers every listener's audio that late, so
 * its listeners are not hearing by the definition ("no more than 2 s behind
 * live") even though each keeps up with the ring. A shift that lasts a whole
 * FEED_HEAR_WINDOW_MS (a program whose granules restarted elsewhere) becomes
 * the new normal; a granule going backwards starts over. */
struct feed_clock {
    int64_t base_ms;       /* smallest arrival - due seen (the normal delay) */
    int64_t win_min_ms;    /* smallest in the current window */
    uint64_t win_start_ms; /* start of the current window */
    uint64_t last_granule;
    bool is_set;
};

/* Notes a chunk whose audio ends at `granule` (48 kHz samples) arriving at
 * `now_ms`; returns how many ms behind the feed's normal delay it is. Pure. */
uint64_t feed_clock_observe(struct feed_clock *k, uint64_t now_ms, uint64_t granule);

struct feed {
    struct ring ring;     /* read-only outside deliver/ */
    struct chunk *header; /* read-only: format header (Ogg: OpusHead+OpusTags pages) */
    struct list ready[FEED_MAX_BUCKETS], blocked; /* private */
    unsigned nbuckets;    /* public: write every nbuckets-th chunk (1..FEED_MAX_BUCKETS) */
    unsigned lag_chunks;  /* public: FEED_LAG_MS in chunks (set from chunk_ms; default 20) */
    unsigned next_bucket; /* private: round-robin for joins */
    unsigned pending;     /* private: chunks appended, not written yet (feed_append) */
    uint64_t pending_seq; /* private: the first of them */
    /* public: called for the header and every chunk published (the master
     * forwards them to its workers); the chunk is borrowed. */
    void (*on_chunk)(struct feed *f, struct chunk *c, int is_header);
    void *owner; /* public: for on_chunk */
    /* public: called with a listener's socket just before it is closed, or NULL */
    void (*on_close)(struct feed *f, int fd);
    void *close_arg;           /* public: for on_close */
    struct loop *loop;         /* private */
    const char *response_head; /* private: the HTTP response head, static */
    size_t response_head_len;
    size_t burst_chunks; /* chunks of recent audio sent on join */
    uint64_t stall_timeout_ms;
    int sndbuf;              /* SO_SNDBUF for listener sockets, 0 = leave */
    bool is_ws;              /* public: a WebSocket feed (listeners' client frames are read,
                                ping/close answered, violations closed: http/ws.h) */
    struct feed_clock clock; /* private: lateness of arriving chunks */
    uint64_t late_at_ms; /* read-only: when a chunk last arrived over FEED_LAG_MS late, 0 = never */
    bool is_live;        /* read-only (feed_set_live): the space is on the air; default true */
    bool is_ended;       /* read-only (feed_end): the space ended, joins are refused */
    struct feed_stats stats;             /* read-only */
    struct hist join_hist, session_hist; /* private: mirrored into stats */
};

/* The response head of progressive Ogg/Opus listeners. */
extern const char feed_ogg_response_head[];
/* A WebSocket feed's response head: empty, the caller sent the 101 head (its
 * accept value is per connection) before listener_start. */
extern const char feed_ws_response_head[];

int feed_init(struct feed *f, struct loop *loop, size_t ring_chunks, size_t burst_chunks,
              const char *response_head);
/* Closes every listener and drops every chunk reference. */
void feed_fini(struct feed *f);
/* Sets the header chunk (takes the caller's reference) and starts listeners
 * that were waiting for it. A feed's header is set once. */
void feed_set_header(struct feed *f, struct chunk *header);
/* Appends `c` to the ring (takes the caller's reference) and writes it to
 * every ready listener whose bucket's turn it is. */
void feed_publish(struct feed *f, struct chunk *c);
/* feed_publish in two steps, for a run of chunks that arrived together (a
 * worker's channel backlog): feed_append() appends (takes the reference)
 * without writing, feed_flush_pending() then writes the run to the buckets
 * whose turn it is, once each. A worker that fell K chunks behind so makes one
 * sendmsg per listener instead of K (each carrying all K chunks), and its loop
 * gets back to accepting and answering within one pass over its listeners.
 * Call feed_flush_pending() before the loop waits again. */
void feed_append(struct feed *f, struct chunk *c);
void feed_flush_pending(struct feed *f);
/* Drops listeners stalled for longer than stall_timeout_ms and marks blocked
 * listeners more than lag_chunks behind (counting their socket send queue)
 * lagging. Call every 100 ms or so (the workers do): the sweep's period adds
 * to the time the audience count takes to see a reader that stopped. */
void feed_sweep(struct feed *f);

/* The space went on or off the air. Off: hearing listeners count as waiting
 * at once (one walk over the listeners: a state change, not the hot path).
 * On: each listener counts as hearing after its next write that leaves it
 * caught up (within one write interval). */
void feed_set_live(struct feed *f, bool is_live);
/* The space ended: every listener is closed; the feed stays (counters). */
void feed_end(struct feed *f);

/* Makes `fd` (a socket whose request was routed here) a listener of `f`:
 * the response head, then the header, a burst, then live chunks. With
 * `is_head_only` (HEAD requests) only the response head is sent. Returns 0 or
 * a negative errno (the caller then closes fd). */
int listener_start(struct feed *f, int fd, int is_head_only);

#endif
