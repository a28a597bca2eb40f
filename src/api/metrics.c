/* GET /metrics: see metrics.h. */
#include "api/metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/node.h"
#include "http/conn.h"
#include "record/recorder.h"
#include "space/space.h"

const char metrics_content_type[] = "text/plain; version=0.0.4; charset=utf-8";

/* Appended to the help of every per-space family. */
#define ACROSS                                                                                     \
    " Summed over the master and the running delivery workers (reported each second);"             \
    " a worker that dies leaves its counters in the sum."

enum field { F_CONNECTED, F_JOINED, F_LEFT, F_SKIPS, F_SKIPPED_S, F_BYTES, F_PEAK, F_LISTENS };

static const struct {
    const char *name;
    enum prom_type type;
    enum field field;
    const char *help;
} simple[] = {
    {"tribune_listeners_connected", PROM_GAUGE, F_CONNECTED,
     "Listener connections open now, in any state (HEAD requests included)." ACROSS},
    {"tribune_listener_joins_total", PROM_COUNTER, F_JOINED, "Listeners admitted." ACROSS},
    {"tribune_listener_leaves_total", PROM_COUNTER, F_LEFT,
     "Listeners gone (closed by the client, dropped, or at shutdown)." ACROSS},
    {"tribune_skips_total", PROM_COUNTER, F_SKIPS,
     "Skips to live by listeners that fell behind the ring." ACROSS},
    {"tribune_skipped_seconds_total", PROM_COUNTER, F_SKIPPED_S,
     "Audio skipped over by skips to live, in seconds." ACROSS},
    {"tribune_bytes_sent_total", PROM_COUNTER, F_BYTES,
     "Bytes written to listener sockets (response heads, headers and audio)." ACROSS},
    {"tribune_peak_hearing", PROM_GAUGE, F_PEAK,
     "Most listeners hearing at once since start, sampled each second."},
    {"tribune_listens_total", PROM_COUNTER, F_LISTENS,
     "Listener sessions that received at least 60 s of audio (first audio byte to close)." ACROSS},
};

static double value(const struct metrics_space *s, const struct metrics_node *node, enum field f)
{
    switch (f) {
    case F_CONNECTED:
        return (double)s->st.listeners;
    case F_JOINED:
        return (double)s->st.joined;
    case F_LEFT:
        return (double)s->st.left;
    case F_SKIPS:
        return (double)s->st.skips;
    case F_SKIPPED_S: {
        /* the WebSocket feed's chunks are FEED_WS_CHUNK_MS long, the Ogg feed's chunk_ms */
        uint64_t ws = s->ws.skipped_chunks, all = s->st.skipped_chunks;
        double ogg =
            (double)(all >= ws ? all - ws : 0) * (node->chunk_ms > 0 ? node->chunk_ms : 100);
        return (ogg + (double)ws * FEED_WS_CHUNK_MS) / 1000.0;
    }
    case F_BYTES:
        return (double)s->st.bytes;
    case F_PEAK:
        return (double)s->peak_hearing;
    case F_LISTENS:
        return (double)s->st.listens;
    }
    return 0;
}

static int render_states(struct prom_buf *b, const struct metrics_space *sp, size_t n)
{
    int err = prom_family_begin(b, "tribune_listeners", PROM_GAUGE,
                                "Listeners by state (DESIGN.md, Accounting): waiting (admitted, no "
                                "audio yet), hearing (caught up, no skip or lag for 10 s), "
                                "lagging." ACROSS);
    for (size_t i = 0; err == 0 && i < n; i++) {
        const char *names[] = {"waiting", "hearing", "lagging"};
        uint64_t v[] = {sp[i].st.waiting, sp[i].st.hearing, sp[i].st.lagging};
        for (int k = 0; err == 0 && k < 3; k++) {
            struct prom_label l[] = {{"space", sp[i].id}, {"state", names[k]}, {NULL, NULL}};
            err = prom_sample(b, NULL, l, (double)v[k]);
        }
    }
    return err;
}

static int render_dropped(struct prom_buf *b, const struct metrics_space *sp, size_t n)
{
    int err = prom_family_begin(b, "tribune_dropped_total", PROM_COUNTER,
                                "Listeners dropped by the server: stalled (no progress for the "
                                "stall timeout), lagging (fell behind again within 60 s of a "
                                "skip to live) or protocol (a WebSocket listener's client broke "
                                "RFC 6455: closed 1002 or 1009)." ACROSS);
    for (size_t i = 0; err == 0 && i < n; i++) {
        uint64_t lag = sp[i].st.dropped_lagging, proto = sp[i].st.dropped_protocol;
        uint64_t stalled = sp[i].st.dropped >= lag + proto ? sp[i].st.dropped - lag - proto : 0;
        struct prom_label l1[] = {{"space", sp[i].id}, {"reason", "stalled"}, {NULL, NULL}};
        struct prom_label l2[] = {{"space", sp[i].id}, {"reason", "lagging"}, {NULL, NULL}};
        struct prom_label l3[] = {{"space", sp[i].id}, {"reason", "protocol"}, {NULL, NULL}};
        err = prom_sample(b, NULL, l1, (double)stalled);
        if (err == 0) err = prom_sample(b, NULL, l2, (double)lag);
        if (err == 0) err = prom_sample(b, NULL, l3, (double)proto);
    }
    return err;
}

/* The WebSocket listeners' share (format="ws"), the HLS players' (format="hls",
 * from beacons) and the edges' (format="edge", as they report): already in
 * every total above. */
static int render_ws(struct prom_buf *b, const struct metrics_space *sp, size_t n)
{
    int err = prom_family_begin(b, "tribune_format_listeners", PROM_GAUGE,
                                "Listeners by delivery format and state: format ogg "
                                "(live.opus), ws (GET /spaces/{id}/ws), hls (players counted "
                                "from their beacons) or edge (served by edge relays, as they "
                                "report); they add up to tribune_listeners." ACROSS);
    for (size_t i = 0; err == 0 && i < n; i++) {
        const char *names[] = {"waiting", "hearing", "lagging"};
        const struct feed_stats *t = &sp[i].st, *w = &sp[i].ws, *h = &sp[i].hls;
        const struct space_edge_totals *e = &sp[i].edges;
        uint64_t wv[] = {w->waiting, w->hearing, w->lagging};
        uint64_t hv[] = {h->waiting, h->hearing, h->lagging};
        uint64_t tv[] = {t->waiting, t->hearing, t->lagging};
        uint64_t ev[] = {e->waiting, e->hearing, e->lagging};
        /* the edges' upstream connections are WebSocket listeners here, not in the totals */
        uint64_t from_hearing = wv[1] < e->upstreams ? wv[1] : e->upstreams;
        wv[1] -= from_hearing;
        wv[0] -= wv[0] < e->upstreams - from_hearing ? wv[0] : e->upstreams - from_hearing;
        for (int k = 0; err == 0 && k < 3; k++) {
            struct prom_label lo[] = {
                {"space", sp[i].id}, {"format", "ogg"}, {"state", names[k]}, {NULL, NULL}};
            struct prom_label lw[] = {
                {"space", sp[i].id}, {"format", "ws"}, {"state", names[k]}, {NULL, NULL}};
            struct prom_label lh[] = {
                {"space", sp[i].id}, {"format", "hls"}, {"state", names[k]}, {NULL, NULL}};
            struct prom_label le[] = {
                {"space", sp[i].id}, {"format", "edge"}, {"state", names[k]}, {NULL, NULL}};
            /* ogg: what is left of the total once the other formats are out */
            uint64_t other = wv[k] + hv[k] + ev[k];
            err = prom_sample(b, NULL, lo, (double)(tv[k] >= other ? tv[k] - other : 0));
            if (err == 0) err = prom_sample(b, NULL, lw, (double)wv[k]);
            if (err == 0) err = prom_sample(b, NULL, lh, (double)hv[k]);
            if (err == 0 && e->edges) err = prom_sample(b, NULL, le, (double)ev[k]);
        }
    }
    if (err == 0)
        err = prom_family_begin(b, "tribune_ws_client_closes_total", PROM_COUNTER,
                                "WebSocket listeners whose client sent a close frame (answered "
                                "with a close frame, then the connection ends)." ACROSS);
    for (size_t i = 0; err == 0 && i < n; i++) {
        struct prom_label l[] = {{"space", sp[i].id}, {NULL, NULL}};
        err = prom_sample(b, NULL, l, (double)sp[i].ws.ws_closes);
    }
    return err;
}

static int render_refused(struct prom_buf *b, const struct metrics_space *sp, size_t n)
{
    int err =
        prom_family_begin(b, "tribune_listener_joins_refused_total", PROM_COUNTER,
                          "Joins of this space turned away by the guard, by reason (full, "
                          "fds, memory, join_rate, ticket; see tribune_requests_refused_total "
                          "for the node's refusals of every kind)." ACROSS);
    static const enum refuse_reason reasons[] = {REFUSE_FULL, REFUSE_FDS, REFUSE_MEMORY,
                                                 REFUSE_JOIN_RATE, REFUSE_TICKET};
    for (size_t i = 0; err == 0 && i < n; i++)
        for (size_t k = 0; err == 0 && k < sizeof(reasons) / sizeof(reasons[0]); k++) {
            struct prom_label l[] = {
                {"space", sp[i].id}, {"reason", refuse_name(reasons[k])}, {NULL, NULL}};
            err = prom_sample(b, NULL, l, (double)sp[i].st.refused[reasons[k]]);
        }
    return err;
}

/* The rooms' families: state, speakers, the mixer's frames and the speakers' jitter buffers.
 * Master-only numbers (the mixer runs there), so no worker sum. */
static int render_rooms(struct prom_buf *b, const struct metrics_space *sp, size_t n)
{
    static const char *const states[] = {"scheduled", "green", "live", "ended"};
    int err = prom_family_begin(b, "tribune_space_state", PROM_GAUGE,
                                "1 for the space's lifecycle state (scheduled, green, live, "
                                "ended), 0 for the others.");
    for (size_t i = 0; err == 0 && i < n; i++)
        for (size_t k = 0; err == 0 && sp[i].state && k < 4; k++) {
            struct prom_label l[] = {{"space", sp[i].id}, {"state", states[k]}, {NULL, NULL}};
            err = prom_sample(b, NULL, l, strcmp(sp[i].state, states[k]) == 0);
        }
    if (err == 0)
        err = prom_family_begin(b, "tribune_speakers_connected", PROM_GAUGE,
                                "Speakers whose stream is connected (the host's own publisher and "
                                "the demo's built-in speaker included).");
    for (size_t i = 0; err == 0 && i < n; i++)
        err = prom_sample(b, NULL, (struct prom_label[]){{"space", sp[i].id}, {NULL, NULL}},
                          sp[i].speakers);
    if (err == 0)
        err = prom_family_begin(b, "tribune_speak_sessions", PROM_GAUGE,
                                "Speakers connected now by transport: ws (a browser's WebSocket, "
                                "GET /spaces/{id}/speak) or http (PUT or SOURCE).");
    for (size_t i = 0; err == 0 && i < n; i++) {
        struct prom_label l1[] = {{"space", sp[i].id}, {"transport", "ws"}, {NULL, NULL}};
        struct prom_label l2[] = {{"space", sp[i].id}, {"transport", "http"}, {NULL, NULL}};
        err = prom_sample(b, NULL, l1, sp[i].speakers_ws);
        if (err == 0) err = prom_sample(b, NULL, l2, sp[i].speakers_http);
    }
    if (err == 0)
        err = prom_family_begin(b, "tribune_program_frames_total", PROM_COUNTER,
                                "20 ms program frames made by the mixer: encoded (mixed), or "
                                "passed through unchanged from a lone speaker.");
    for (size_t i = 0; err == 0 && i < n; i++) {
        struct prom_label l1[] = {{"space", sp[i].id}, {"kind", "encoded"}, {NULL, NULL}};
        struct prom_label l2[] = {{"space", sp[i].id}, {"kind", "passthrough"}, {NULL, NULL}};
        err = prom_sample(b, NULL, l1, (double)sp[i].frames_encoded);
        if (err == 0) err = prom_sample(b, NULL, l2, (double)sp[i].frames_passed);
    }
    if (err == 0)
        err = prom_family_begin(b, "tribune_program_limited_frames_total", PROM_COUNTER,
                                "Program frames whose level the limiter turned down so that the "
                                "mix never clips.");
    for (size_t i = 0; err == 0 && i < n; i++)
        err = prom_sample(b, NULL, (struct prom_label[]){{"space", sp[i].id}, {NULL, NULL}},
                          (double)sp[i].frames_limited);
    if (err == 0)
        err = prom_family_begin(b, "tribune_speaker_underruns_total", PROM_COUNTER,
                                "Times a speaker's jitter buffer ran dry while it was being "
                                "mixed (concealed for up to 60 ms, then silent until refilled).");
    for (size_t i = 0; err == 0 && i < n; i++)
        err = prom_sample(b, NULL, (struct prom_label[]){{"space", sp[i].id}, {NULL, NULL}},
                          (double)sp[i].underruns);
    if (err == 0)
        err = prom_family_begin(b, "tribune_speaker_drift_corrections_total", PROM_COUNTER,
                                "20 ms corrections for clock drift between a speaker and the "
                                "program: drop (the speaker runs fast) or fill (slow).");
    for (size_t i = 0; err == 0 && i < n; i++) {
        struct prom_label l1[] = {{"space", sp[i].id}, {"kind", "drop"}, {NULL, NULL}};
        struct prom_label l2[] = {{"space", sp[i].id}, {"kind", "fill"}, {NULL, NULL}};
        err = prom_sample(b, NULL, l1, (double)sp[i].drift_drops);
        if (err == 0) err = prom_sample(b, NULL, l2, (double)sp[i].drift_fills);
    }
    return err;
}

static int render_recordings(struct prom_buf *b, const struct metrics_space *sp, size_t n)
{
    static const struct {
        const char *name;
        enum prom_type type;
        const char *help;
    } fam[] = {
        {"tribune_recording_failing", PROM_GAUGE,
         "1 while the space's recording cannot be written (disk full, write error): the alarm; "
         "live audio goes on, recorded audio is lost until it resumes in a new segment."},
        {"tribune_recording_bytes", PROM_GAUGE, "Bytes of the space's recording on disk."},
        {"tribune_recording_seconds", PROM_GAUGE, "Audio in the space's recording, in seconds."},
        {"tribune_recording_lost_seconds", PROM_GAUGE,
         "Audio the space's recording lost to faults (write errors, a full queue), in seconds: the "
         "gaps of its manifest."},
    };
    int err = 0;
    for (size_t f = 0; err == 0 && f < sizeof(fam) / sizeof(fam[0]); f++) {
        err = prom_family_begin(b, fam[f].name, fam[f].type, fam[f].help);
        for (size_t i = 0; err == 0 && i < n; i++) {
            if (!sp[i].has_recording) continue;
            double v = f == 0   ? sp[i].is_recording_failing
                       : f == 1 ? (double)sp[i].recording_bytes
                       : f == 2 ? sp[i].recording_seconds
                                : sp[i].recording_lost_s;
            err = prom_sample(b, NULL, (struct prom_label[]){{"space", sp[i].id}, {NULL, NULL}}, v);
        }
    }
    return err;
}

static int render_hist(struct prom_buf *b, const char *name, const char *help,
                       const struct metrics_space *sp, size_t n, int is_session)
{
    int err = prom_family_begin(b, name, PROM_HISTOGRAM, help);
    for (size_t i = 0; err == 0 && i < n; i++) {
        struct hist h;
        err = is_session ? feed_hist_get(&sp[i].st.session, &hist_session_length, &h)
                         : feed_hist_get(&sp[i].st.join_to_audio, &hist_join_to_first_audio, &h);
        struct prom_label l[] = {{"space", sp[i].id}, {NULL, NULL}};
        if (err == 0) err = prom_hist_sample(b, l, &h);
    }
    return err;
}

/* The HLS files the master answered (every space): requests by kind (any
 * status: 200, 304, 404 gone, 503 not ready) and body bytes sent. */
static int render_hls(struct prom_buf *b, const struct hls_stats *h)
{
    int err = prom_family_begin(b, "tribune_hls_requests_total", PROM_COUNTER,
                                "HLS requests answered by the master, by kind (playlist, init, "
                                "segment), whatever the status; a cache in front absorbs the "
                                "players' requests.");
    for (int k = 0; err == 0 && k < HLS_KIND_N; k++)
        err = prom_sample(
            b, NULL,
            (struct prom_label[]){{"kind", api_hls_kind_name((enum hls_kind)k)}, {NULL, NULL}},
            (double)h->requests[k]);
    if (err == 0)
        err = prom_family_begin(b, "tribune_hls_bytes_total", PROM_COUNTER,
                                "Body bytes of the HLS files the master sent, by kind.");
    for (int k = 0; err == 0 && k < HLS_KIND_N; k++)
        err = prom_sample(
            b, NULL,
            (struct prom_label[]){{"kind", api_hls_kind_name((enum hls_kind)k)}, {NULL, NULL}},
            (double)h->bytes[k]);
    return err;
}

int metrics_render(struct prom_buf *b, const struct metrics_node *node,
                   const struct metrics_space *sp, size_t n)
{
    int err = 0;
    if (n > 0) {
        err = render_states(b, sp, n);
        for (size_t f = 0; err == 0 && f < sizeof(simple) / sizeof(simple[0]); f++) {
            err = prom_family_begin(b, simple[f].name, simple[f].type, simple[f].help);
            for (size_t i = 0; err == 0 && i < n; i++) {
                struct prom_label l[] = {{"space", sp[i].id}, {NULL, NULL}};
                err = prom_sample(b, NULL, l, value(&sp[i], node, simple[f].field));
            }
        }
        if (err == 0) err = render_dropped(b, sp, n);
        if (err == 0) err = render_ws(b, sp, n);
        if (err == 0) err = render_refused(b, sp, n);
        if (err == 0) err = render_rooms(b, sp, n);
        if (err == 0) err = render_recordings(b, sp, n);
        if (err == 0)
            err = render_hist(b, "tribune_join_to_first_audio_seconds",
                              "Seconds from a listener's admission to the first audio byte its "
                              "socket accepted." ACROSS,
                              sp, n, 0);
        if (err == 0)
            err = render_hist(b, "tribune_session_seconds",
                              "Seconds from a listener's first audio byte to its close (listeners "
                              "that got audio)." ACROSS,
                              sp, n, 1);
    }
    if (err == 0)
        err = prom_family_begin(b, "tribune_workers", PROM_GAUGE,
                                "Delivery worker processes by state (0 and 0: a single-process "
                                "node).");
    if (err == 0)
        err = prom_sample(b, NULL, (struct prom_label[]){{"state", "up"}, {NULL, NULL}},
                          node->workers_up);
    if (err == 0)
        err = prom_sample(b, NULL, (struct prom_label[]){{"state", "down"}, {NULL, NULL}},
                          node->workers >= node->workers_up ? node->workers - node->workers_up : 0);
    if (err == 0)
        err = prom_family_begin(b, "tribune_requests_refused_total", PROM_COUNTER,
                                "Requests turned away, by reason (503 full, busy or no worker; 404 "
                                "no such space; 401 bad key; 409 has a publisher; 415 bad stream; "
                                "4xx bad request; header timeout), over the master and the "
                                "running workers.");
    for (int r = 0; err == 0 && r < REFUSE_N; r++)
        err = prom_sample(
            b, NULL,
            (struct prom_label[]){{"reason", refuse_name((enum refuse_reason)r)}, {NULL, NULL}},
            (double)node->refusals.count[r]);
    if (err == 0 && node->recorder)
        err = prom_gauge(b, "tribune_recordings_failing",
                         "Recordings that cannot be written now (the node's recording alarm).",
                         NULL, node->recordings_failing);
    if (err == 0) err = render_hls(b, &node->hls);
    if (err == 0)
        err = prom_counter(b, "tribune_worker_restarts_total",
                           "Delivery workers restarted after dying.", NULL,
                           (double)node->worker_restarts);
    return err;
}

void api_metrics(struct node *n, struct conn *c)
{
    size_t count = 0;
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &n->spaces.all) count++;
    struct metrics_space *sp = count ? calloc(count, sizeof(*sp)) : NULL;
    if (count && !sp) {
        conn_respond_error(c, 500, "out of memory");
        return;
    }
    size_t i = 0;
    list_for_each_safe(pos, tmp, &n->spaces.all)
    {
        struct space *s = list_entry(pos, struct space, node);
        if (i == count) break;
        sp[i].id = s->rec.id;
        space_stats(s, &sp[i].st);
        space_stats_ws(s, &sp[i].ws);
        space_stats_hls(s, &sp[i].hls);
        space_edge_totals(s, &sp[i].edges);
        sp[i].peak_hearing = s->peak_hearing;
        sp[i].state = space_state_name(s->rec.state);
        struct space_mix_stats mx;
        space_mix_stats(s, &mx);
        sp[i].speakers = mx.speakers;
        sp[i].speakers_ws = mx.speakers_ws;
        sp[i].speakers_http = mx.speakers_http;
        sp[i].frames_encoded = mx.frames_encoded;
        sp[i].frames_passed = mx.frames_passed;
        sp[i].frames_limited = mx.frames_limited;
        sp[i].underruns = mx.underruns;
        sp[i].drift_drops = mx.drift_drops;
        sp[i].drift_fills = mx.drift_fills;
        struct recording_info ri;
        if (n->recorder && recorder_get_info(n->recorder, s->rec.id, &ri) == 0 && ri.exists) {
            sp[i].has_recording = true;
            sp[i].is_recording_failing = ri.is_failing;
            sp[i].recording_bytes = ri.bytes;
            sp[i].recording_seconds = (double)ri.duration_ms / 1000.0;
            sp[i].recording_lost_s = (double)ri.gap_ms / 1000.0;
        }
        i++;
    }
    struct metrics_node node = {.chunk_ms = n->cfg.chunk_ms, .refusals = refusals};
    api_hls_stats(&node.hls);
    if (n->recorder) {
        node.recorder = 1;
        node.recordings_failing = recorder_failing(n->recorder);
    }
    if (n->has_fleet) {
        node.workers = (unsigned)n->fleet.n;
        fleet_totals(&n->fleet, &node.workers_up, &node.worker_restarts, &node.refusals);
    }
    struct prom_buf b;
    prom_buf_init(&b);
    int err = metrics_render(&b, &node, sp, i);
    free(sp);
    if (err < 0)
        conn_respond_error(c, 500, "cannot render metrics");
    else
        conn_respond(c, 200, metrics_content_type, NULL, b.data ? b.data : "", b.len);
    prom_buf_fini(&b);
}
