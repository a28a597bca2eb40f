/* GET /metrics: the node's listener accounting in Prometheus text format
 * (version 0.0.4), rendered with metrics/prom.h on each scrape.
 *
 *   spaces (master feed + each running worker's last CHAN_STATS, space_stats)
 *     + fleet (workers up, restarts) --> metrics_render --> text/plain body
 *
 * Every series is per space (label `space`); the node's totals are the sum
 * over spaces (sum without (space) in PromQL), so no number appears twice.
 * Workers report once a second, so worker counts are up to 1 s old; a worker
 * that dies takes its counts out of the sums (they drop, which Prometheus
 * treats as a counter reset). Thread: the master loop.
 */
#ifndef TRIBUNE_API_METRICS_H
#define TRIBUNE_API_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "api/hls.h"
#include "deliver/feed.h"
#include "metrics/prom.h"
#include "metrics/refusals.h"
#include "space/space.h"

struct node;
struct conn;

/* One space's numbers, collected before rendering. */
struct metrics_space {
    const char *id;                 /* borrowed */
    struct feed_stats st;           /* summed over the master and the workers */
    struct feed_stats ws;           /* of which WebSocket listeners (space_stats_ws) */
    struct feed_stats hls;          /* of which HLS players, from their beacons (space_stats_hls) */
    struct space_edge_totals edges; /* of which served by edge relays (in st, not in ws) */
    uint64_t peak_hearing;
    const char *state;         /* "scheduled", "green", "live", "ended" (NULL: not shown) */
    unsigned speakers;         /* connected now */
    unsigned speakers_ws;      /* of which browser WebSocket sessions (GET .../speak) */
    unsigned speakers_http;    /* of which PUT/SOURCE publishers */
    uint64_t frames_encoded;   /* program frames the mixer encoded */
    uint64_t frames_passed;    /* program frames passed through from a lone speaker */
    uint64_t frames_limited;   /* frames the limiter turned down */
    uint64_t underruns;        /* speakers' jitter buffers ran dry (all speakers, ever) */
    uint64_t drift_drops;      /* 20 ms dropped: a speaker ahead of the program clock */
    uint64_t drift_fills;      /* 20 ms concealed: a speaker behind it */
    bool has_recording;        /* the fields below mean something */
    bool is_recording_failing; /* the alarm: its recording cannot be written */
    uint64_t recording_bytes;  /* on disk */
    double recording_seconds;  /* audio recorded */
    double recording_lost_s;   /* audio lost to write errors and a full queue */
};

/* The node's own numbers. */
struct metrics_node {
    unsigned workers;         /* worker processes configured (0: single process) */
    unsigned workers_up;      /* running now */
    uint64_t worker_restarts; /* since start, over all workers */
    int chunk_ms;             /* audio per chunk (turns skipped chunks into seconds) */
    struct refusals refusals; /* the master's and every running worker's */
    int recorder;             /* 1 recording on, 0 off */
    unsigned recordings_failing;
    struct hls_stats hls; /* HLS files answered by the master (api/hls.h) */
};

/* The content type of the body. */
extern const char metrics_content_type[];

/* Appends every family to `b`. 0 or a negative errno from prom.h. */
int metrics_render(struct prom_buf *b, const struct metrics_node *node,
                   const struct metrics_space *spaces, size_t n);

/* GET and HEAD /metrics. */
void api_metrics(struct node *n, struct conn *c);

#endif
