#include "space/space.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "deliver/chunk.h"
#include "media/demo.h"
#include "media/ingest.h"
#include "media/mixer.h"
#include "media/speak.h"
#include "record/recorder.h"
#include "relay/steer.h"

enum { SWEEP_MS = 100 };

static void slot_free(struct speaker *sp);
static void record_start(struct space *s);
static void record_stop(struct space *s);
static void on_air_packet(struct program *p, const uint8_t *data, size_t len, int samples);

static void on_sweep(struct timer *t)
{
    struct spaces *ss = list_entry(t, struct spaces, sweep);
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &ss->all)
    {
        struct space *s = list_entry(pos, struct space, node);
        feed_sweep(&s->ogg);
        feed_sweep(&s->ws);
        feed_sweep(&s->monitor);
        if (ss->sweeps % 10 == 0) beacons_sweep(&s->beacons, loop_now_ms(ss->loop));
        struct feed_stats st;
        space_stats(s, &st);
        if (st.hearing > s->peak_hearing) s->peak_hearing = st.hearing;
        for (int i = 0; i < SPACE_SPEAKERS_MAX; i++) {
            struct speaker *sp = s->speakers[i];
            if (sp && sp->pub) publisher_sweep(sp->pub);
        }
    }
    ss->sweeps++;
    timer_start(ss->loop, t, loop_now_ms(ss->loop) + SWEEP_MS);
}

int spaces_init(struct spaces *ss, struct loop *loop, struct registry *reg,
                const struct config *cfg)
{
    list_init(&ss->all);
    ss->loop = loop;
    ss->reg = reg;
    ss->cfg = cfg;
    ss->fleet = NULL;
    ss->recorder = NULL;
    ss->sweeps = 0;
    ss->on_unknown = NULL;
    ss->new_upstream = NULL;
    ss->free_upstream = NULL;
    ss->arg = NULL;
    timer_init(&ss->sweep, on_sweep);
    timer_start(loop, &ss->sweep, loop_now_ms(loop) + SWEEP_MS);
    return 0;
}

static void close_speakers(struct space *s)
{
    for (int i = 0; i < SPACE_SPEAKERS_MAX; i++) {
        struct speaker *sp = s->speakers[i];
        if (sp && sp->pub) publisher_close(sp->pub); /* on_gone frees the slot */
        sp = s->speakers[i];
        if (sp && sp->ws) speak_close(sp->ws, 1001, "the space has ended");
    }
}

static void space_free(struct space *s)
{
    record_stop(s);
    close_speakers(s);
    for (int i = 0; i < SPACE_SPEAKERS_MAX; i++)
        if (s->speakers[i]) slot_free(s->speakers[i]); /* the built-in speaker */
    program_fini(&s->program);
    mixer_free(s->mixer);
    if (s->upstream) s->owner->free_upstream(s->upstream);
    feed_fini(&s->ogg);
    feed_fini(&s->ws);
    ws_pkg_fini(&s->wspkg);
    hls_pkg_fini(&s->hls);
    beacons_fini(&s->beacons);
    feed_fini(&s->monitor);
    demo_source_free(s->builtin);
    list_remove(&s->node);
    free(s);
}

void spaces_fini(struct spaces *ss)
{
    timer_stop(&ss->sweep);
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &ss->all) space_free(list_entry(pos, struct space, node));
    speak_close_all(); /* the browser speakers' closing handshakes */
}

/* Every chunk the master packages goes to every worker, once. */
static void forward_chunk(struct feed *f, struct chunk *c, int is_header)
{
    struct space *s = f->owner;
    fleet_broadcast_chunk(s->owner->fleet, s->rec.id, f->is_ws ? CHAN_FMT_WS : CHAN_FMT_OGG, c,
                          is_header);
}

/* Adds src's counters (not its gauges) to dst. */
static void add_counters(struct feed_stats *dst, const struct feed_stats *src)
{
    dst->joined += src->joined;
    dst->left += src->left;
    dst->skips += src->skips;
    dst->skipped_chunks += src->skipped_chunks;
    dst->dropped += src->dropped;
    dst->dropped_lagging += src->dropped_lagging;
    dst->dropped_protocol += src->dropped_protocol;
    dst->ws_closes += src->ws_closes;
    dst->bytes += src->bytes;
    dst->listens += src->listens;
    for (int r = 0; r < REFUSE_N; r++)
        dst->refused[r] += src->refused[r];
    feed_hist_add(&dst->join_to_audio, &src->join_to_audio);
    feed_hist_add(&dst->session, &src->session);
}

/* Adds src's gauges and counters to dst. */
static void add_all(struct feed_stats *dst, const struct feed_stats *src)
{
    dst->listeners += src->listeners;
    dst->waiting += src->waiting;
    dst->hearing += src->hearing;
    dst->lagging += src->lagging;
    add_counters(dst, src);
}

void space_stats_ws(const struct space *s, struct feed_stats *out)
{
    *out = s->ws.stats;
    add_counters(out, &s->ws_retired);
    for (int w = 0; w < FLEET_MAX; w++)
        add_all(out, &s->ws_wstats[w]);
}

void space_stats_hls(const struct space *s, struct feed_stats *out)
{
    const struct beacons *b = &s->beacons;
    memset(out, 0, sizeof(*out));
    out->listeners = b->count;
    out->waiting = b->by_state[BEACON_WAITING];
    out->hearing = b->by_state[BEACON_HEARING];
    out->lagging = b->by_state[BEACON_LAGGING];
    out->joined = b->joined;
    out->left = b->left;
}

static bool edge_is_fresh(const struct space *s, const struct space_edge *e)
{
    return e->id[0] && e->at_ms + SPACE_EDGE_EXPIRE_MS > loop_now_ms(s->owner->loop);
}

void space_edge_forget(struct space *s, const char *edge_id, size_t len)
{
    for (int i = 0; i < SPACE_EDGES_MAX; i++) {
        struct space_edge *e = &s->edges[i];
        if (strlen(e->id) == len && len && memcmp(e->id, edge_id, len) == 0) {
            log_info("space %s: edge %s lost its upstream here: its %llu listeners leave the count",
                     s->rec.id, e->id, (unsigned long long)e->connected);
            memset(e, 0, sizeof(*e));
            return;
        }
    }
}

int space_edge_report(struct space *s, const char *edge_id, const struct space_edge *r)
{
    struct space_edge *slot = NULL;
    for (int i = 0; i < SPACE_EDGES_MAX; i++) {
        struct space_edge *e = &s->edges[i];
        if (strcmp(e->id, edge_id) == 0) {
            slot = e;
            break;
        }
        if (!slot && !edge_is_fresh(s, e)) slot = e;
    }
    if (!slot) return -ENOSPC;
    *slot = *r;
    snprintf(slot->id, sizeof(slot->id), "%s", edge_id);
    slot->at_ms = loop_now_ms(s->owner->loop);
    return 0;
}

void space_edge_load(const struct space *s, struct steer_edge *se)
{
    for (int i = 0; i < SPACE_EDGES_MAX; i++) {
        const struct space_edge *e = &s->edges[i];
        if (!edge_is_fresh(s, e) || !steer_matches(se, e->id)) continue;
        se->is_fresh = true;
        se->listeners += e->connected;
        if (e->capacity > se->capacity) se->capacity = e->capacity;
    }
}

void space_edge_totals(const struct space *s, struct space_edge_totals *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < SPACE_EDGES_MAX; i++) {
        const struct space_edge *e = &s->edges[i];
        if (!edge_is_fresh(s, e)) continue;
        out->edges++;
        out->connected += e->connected;
        out->waiting += e->waiting;
        out->hearing += e->hearing;
        out->lagging += e->lagging;
        out->upstreams += e->upstream;
    }
}

/* a -= b, never below zero (a report may lag behind the connection it describes) */
static void sub_clamped(uint64_t *a, uint64_t b)
{
    *a = *a > b ? *a - b : 0;
}

/* The edges' listeners in, their upstream connections (counted among ours: each is
 * a WebSocket listener here, hearing, waiting or lagging) out. */
static void add_edges(const struct space *s, struct feed_stats *out)
{
    struct space_edge_totals et;
    space_edge_totals(s, &et);
    if (et.edges == 0) return;
    sub_clamped(&out->listeners, et.upstreams);
    /* hearing first, then waiting, then lagging (a late origin makes them lagging) */
    uint64_t left = et.upstreams;
    uint64_t *by_state[] = {&out->hearing, &out->waiting, &out->lagging};
    for (int i = 0; i < 3 && left; i++) {
        uint64_t take = *by_state[i] < left ? *by_state[i] : left;
        *by_state[i] -= take;
        left -= take;
    }
    out->listeners += et.connected;
    out->waiting += et.waiting;
    out->hearing += et.hearing;
    out->lagging += et.lagging;
}

void space_stats(const struct space *s, struct feed_stats *out)
{
    *out = s->ogg.stats;
    add_counters(out, &s->retired);
    for (int w = 0; w < FLEET_MAX; w++)
        add_all(out, &s->wstats[w]);
    struct feed_stats part;
    space_stats_ws(s, &part);
    add_all(out, &part);
    space_stats_hls(s, &part);
    add_all(out, &part);
    add_edges(s, out);
}

void space_mix_stats(const struct space *s, struct space_mix_stats *out)
{
    *out = s->gone;
    struct mixer_stats ms;
    mixer_get_stats(s->mixer, &ms);
    out->frames_encoded = ms.encoded_frames;
    out->frames_passed = ms.passthrough_frames;
    out->frames_limited = ms.limited_frames;
    for (int i = 0; i < SPACE_SPEAKERS_MAX; i++) {
        const struct speaker *sp = s->speakers[i];
        if (!sp) continue;
        out->speakers++;
        out->speakers_ws += sp->ws != NULL;
        out->speakers_http += sp->pub != NULL;
        if (!sp->in) continue;
        struct mixer_input_stats st;
        mixer_input_get_stats(sp->in, &st);
        out->underruns += st.underruns;
        out->drift_drops += st.drift_drops;
        out->drift_fills += st.drift_fills;
    }
}

void space_retire_worker(struct space *s, int w)
{
    if (w < 0 || w >= FLEET_MAX) return;
    struct feed_stats *st = &s->wstats[w];
    add_counters(&s->retired, st);
    s->retired.left += st->listeners;
    memset(st, 0, sizeof(*st));
    st = &s->ws_wstats[w];
    add_counters(&s->ws_retired, st);
    s->ws_retired.left += st->listeners;
    memset(st, 0, sizeof(*st));
}

/* ---- speaker slots ---- */

static struct speaker *slot_new(struct space *s, const char *name)
{
    for (int i = 0; i < SPACE_SPEAKERS_MAX; i++) {
        if (s->speakers[i]) continue;
        struct speaker *sp = calloc(1, sizeof(*sp));
        if (!sp) return NULL;
        sp->space = s;
        snprintf(sp->name, sizeof(sp->name), "%s", name);
        s->speakers[i] = sp;
        return sp;
    }
    return NULL;
}

/* Keeps a leaving input's counters in the space's totals. */
static void retire_input(struct space *s, struct mixer_input *in)
{
    struct mixer_input_stats st;
    mixer_input_get_stats(in, &st);
    s->gone.underruns += st.underruns;
    s->gone.drift_drops += st.drift_drops;
    s->gone.drift_fills += st.drift_fills;
    mixer_remove(s->mixer, in);
}

/* The demo's built-in speaker steps aside while the host publishes over it
 * (a one-speaker demo: the host is heard alone, the arpeggio comes back
 * when the host stops). */
static void builtin_step_aside(struct space *s, bool is_aside)
{
    struct speaker *b = s->builtin ? space_speaker(s, "demo") : NULL;
    if (b && b->in && !b->is_muted) mixer_set_muted(b->in, is_aside);
}

static void slot_free(struct speaker *sp)
{
    struct space *s = sp->space;
    if (sp->in) retire_input(s, sp->in);
    sp->in = NULL;
    if (strcmp(sp->name, "host") == 0) builtin_step_aside(s, false);
    for (int i = 0; i < SPACE_SPEAKERS_MAX; i++)
        if (s->speakers[i] == sp) s->speakers[i] = NULL;
    free(sp);
}

struct speaker *space_speaker(struct space *s, const char *name)
{
    for (int i = 0; i < SPACE_SPEAKERS_MAX; i++) {
        struct speaker *sp = s->speakers[i];
        if (sp && strcmp(sp->name, name) == 0) return sp;
    }
    return NULL;
}

/* An edge relay's space: its program's one input is the pull from the origin (the
 * mixer passes its packets through; silence while the origin is away). Its state
 * follows the origin's (relay/relay.c). */
static void attach_upstream(struct space *s)
{
    struct spaces *ss = s->owner;
    s->upstream = ss->new_upstream(ss, s);
    if (s->upstream) s->upstream_in = mixer_add(s->mixer, s->upstream);
    if (!s->upstream_in) log_error("space %s: cannot pull from the origin", s->rec.id);
}

static struct space *space_new(struct spaces *ss, const struct space_record *rec)
{
    const struct config *cfg = ss->cfg;
    struct space *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->owner = ss;
    s->rec = *rec;
    size_t chunk_ms = cfg->chunk_ms > 0 ? (size_t)cfg->chunk_ms : 100;
    size_t ring = (size_t)cfg->ring_ms / chunk_ms;
    size_t burst = ((size_t)cfg->burst_ms + chunk_ms - 1) / chunk_ms;
    struct mixer_config mc = {.channels = cfg->program_channels == 2 ? 2 : 1,
                              .bitrate = cfg->program_bitrate > 0 ? cfg->program_bitrate : 48000,
                              .jitter_ms = cfg->jitter_ms,
                              .complexity = -1};
    if (feed_init(&s->ogg, ss->loop, ring, burst, feed_ogg_response_head) < 0) {
        free(s);
        return NULL;
    }
    if (feed_init(&s->ws, ss->loop, (size_t)cfg->ring_ms / FEED_WS_CHUNK_MS, FEED_WS_BURST_CHUNKS,
                  feed_ws_response_head) < 0) {
        feed_fini(&s->ogg);
        free(s);
        return NULL;
    }
    s->ws.is_ws = true;
    ws_pkg_init(&s->wspkg, &s->ws, rec->id, FEED_WS_CHUNK_MS);
    hls_pkg_init(&s->hls, HLS_PART_MS, HLS_SEGMENT_MS);
    beacons_init(&s->beacons);
    if (feed_init(&s->monitor, ss->loop, ring, burst, feed_ogg_response_head) < 0 ||
        program_init(&s->program, ss->loop, &s->ogg, (int)chunk_ms) < 0 ||
        program_set_monitor(&s->program, &s->monitor, (int)chunk_ms) < 0 ||
        !(s->mixer = mixer_new(&mc))) {
        program_fini(&s->program);
        feed_fini(&s->monitor);
        feed_fini(&s->ogg);
        feed_fini(&s->ws);
        ws_pkg_fini(&s->wspkg);
        free(s);
        return NULL;
    }
    bool is_live = rec->state == SPACE_LIVE;
    /* An edge's program is always on the air: its origin sends silence until the space is live
     * there, so the edge's listeners hear the start as soon as the origin's packets come; the
     * state (hence the counts) follows up to a second per level later (relay/relay.c). */
    program_set_on_air(&s->program, is_live || ss->new_upstream != NULL);
    s->program.ws = &s->wspkg; /* before the program starts (program_attach) */
    s->program.hls = &s->hls;
    feed_set_live(&s->ogg, is_live);
    feed_set_live(&s->ws, is_live);
    feed_set_live(&s->monitor, true);
    if (rec->state == SPACE_ENDED) {
        s->ogg.is_ended = s->monitor.is_ended = s->ws.is_ended = true;
    } else if (program_attach(&s->program, mixer_source(s->mixer)) < 0) {
        log_error("space %s: the program cannot start", rec->id);
    }
    s->program.on_air = on_air_packet;
    s->program.owner = s;
    if (ss->new_upstream && rec->state != SPACE_ENDED) attach_upstream(s);
    if (is_live) record_start(s); /* a restart during a live space: a new segment */
    s->ogg.stall_timeout_ms = (uint64_t)cfg->stall_timeout_ms;
    s->ogg.sndbuf = cfg->sndbuf_bytes;
    s->ogg.lag_chunks = (unsigned)(FEED_LAG_MS / chunk_ms);
    s->ws.stall_timeout_ms = s->ogg.stall_timeout_ms;
    s->ws.sndbuf = s->ogg.sndbuf;
    s->ws.lag_chunks = FEED_LAG_MS / FEED_WS_CHUNK_MS;
    list_push_back(&ss->all, &s->node);
    if (ss->fleet) {
        s->ogg.on_chunk = s->ws.on_chunk = forward_chunk;
        s->ogg.owner = s->ws.owner = s;
        for (int w = 0; w < ss->fleet->n; w++) {
            fleet_sync_feed(ss->fleet, w, s->rec.id, &s->ogg, space_chan_flags(s));
            fleet_sync_feed(ss->fleet, w, s->rec.id, &s->ws, space_chan_flags(s));
        }
    }
    return s;
}

struct space *spaces_peek(struct spaces *ss, const char *id, size_t len)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &ss->all)
    {
        struct space *s = list_entry(pos, struct space, node);
        if (strlen(s->rec.id) == len && memcmp(s->rec.id, id, len) == 0) return s;
    }
    return NULL;
}

struct space *spaces_get(struct spaces *ss, const char *id, size_t len)
{
    if (!space_id_is_valid(id, len)) return NULL;
    struct space *found = spaces_peek(ss, id, len);
    if (found) return found;
    char key[SPACE_ID_MAX + 1];
    memcpy(key, id, len);
    key[len] = '\0';
    struct space_record rec;
    if (registry_get(ss->reg, key, &rec) < 0 &&
        (!ss->on_unknown || ss->on_unknown(ss, key, &rec) < 0))
        return NULL;
    return space_new(ss, &rec);
}

int space_add_builtin_speaker(struct space *s)
{
    if (s->builtin) return 0;
    if (s->rec.state == SPACE_ENDED) return -EPIPE;
    s->builtin = demo_source_new();
    struct speaker *sp = s->builtin ? slot_new(s, "demo") : NULL;
    if (sp) sp->in = mixer_add(s->mixer, s->builtin);
    if (!sp || !sp->in) {
        if (sp) slot_free(sp);
        demo_source_free(s->builtin);
        s->builtin = NULL;
        return -ENOMEM;
    }
    return space_go_live(s);
}

void space_set_state(struct space *s, enum space_state st)
{
    if (s->rec.state == st) return;
    if (registry_set_state(s->owner->reg, s->rec.id, st) == 0) {
        log_info("space %s: %s -> %s", s->rec.id, space_state_name(s->rec.state),
                 space_state_name(st));
        s->rec.state = st;
        for (int i = 0; i < SPACE_SPEAKERS_MAX; i++)
            if (s->speakers[i] && s->speakers[i]->ws)
                speak_send_state(s->speakers[i]->ws, space_state_name(st));
    }
}

/* The program's packets on the air go to the recorder (copied, never waits). */
static void on_air_packet(struct program *p, const uint8_t *data, size_t len, int samples)
{
    struct space *s = p->owner;
    if (s->recording) recording_packet(s->recording, data, len, samples);
}

/* Live: a recording starts (or, after a restart, goes on in a new segment). */
static void record_start(struct space *s)
{
    if (s->recording || !s->owner->recorder) return;
    s->recording = recording_open(s->owner->recorder, s->rec.id, s->program.channels);
    if (!s->recording) log_warn("space %s: cannot record", s->rec.id);
}

static void record_stop(struct space *s)
{
    if (!s->recording) return;
    recording_close(s->recording);
    s->recording = NULL;
}

uint64_t space_chan_flags(const struct space *s)
{
    return (s->rec.require_ticket ? CHAN_SPACE_REQUIRE_TICKET : 0) |
           (s->rec.state == SPACE_LIVE ? CHAN_SPACE_LIVE : 0) |
           (s->rec.state == SPACE_ENDED ? CHAN_SPACE_ENDED : 0);
}

/* Tells every worker the space's flags (live, ended, tickets). */
static void announce(struct space *s)
{
    if (s->owner->fleet) fleet_broadcast_space(s->owner->fleet, s->rec.id, space_chan_flags(s));
}

int space_go_live(struct space *s)
{
    if (s->rec.state == SPACE_ENDED) return -EPIPE;
    if (s->rec.state == SPACE_LIVE) return 0;
    space_set_state(s, SPACE_LIVE);
    record_start(s);
    program_set_on_air(&s->program, true);
    feed_set_live(&s->ogg, true);
    feed_set_live(&s->ws, true);
    announce(s);
    return 0;
}

void space_end(struct space *s)
{
    if (s->rec.state == SPACE_ENDED) return;
    space_set_state(s, SPACE_ENDED);
    close_speakers(s);
    program_set_on_air(&s->program, false);
    program_stop(&s->program);
    hls_pkg_end(&s->hls); /* the playlist ends (EXT-X-ENDLIST) */
    record_stop(s);
    feed_end(&s->ogg);
    feed_end(&s->ws);
    feed_end(&s->monitor);
    announce(s);
}

int space_set_muted(struct space *s, const char *name, bool is_muted)
{
    struct speaker *sp = space_speaker(s, name);
    bool is_invited = strcmp(name, "host") != 0 && strcmp(name, "demo") != 0;
    if (is_invited) {
        int err = registry_speaker_set_muted(s->owner->reg, s->rec.id, name, is_muted);
        if (err < 0) return err;
    } else if (!sp) {
        return -ENOENT;
    }
    if (sp) {
        if (sp->ws && sp->is_muted != is_muted) speak_send_muted(sp->ws, is_muted);
        sp->is_muted = is_muted;
        if (sp->in) mixer_set_muted(sp->in, is_muted);
    }
    log_info("space %s: speaker %s %s", s->rec.id, name, is_muted ? "muted" : "unmuted");
    return 0;
}

bool space_speaker_was_removed(const struct space *s, const char *name)
{
    for (unsigned i = 0; i < SPACE_SPEAKERS_MAX && i < s->nremoved; i++)
        if (strcmp(s->removed[i], name) == 0) return true;
    return false;
}

int space_remove_speaker(struct space *s, const char *name)
{
    int err = registry_speaker_remove(s->owner->reg, s->rec.id, name);
    if (err < 0) return err;
    snprintf(s->removed[s->nremoved++ % SPACE_SPEAKERS_MAX], SPEAKER_NAME_MAX + 1, "%s", name);
    struct speaker *sp = space_speaker(s, name);
    if (sp && sp->pub)
        publisher_close(sp->pub); /* frees sp */
    else if (sp && sp->ws)
        speak_close(sp->ws, 1008, "removed by the host"); /* frees sp */
    log_info("space %s: speaker %s removed", s->rec.id, name);
    return 0;
}

int space_set_require_ticket(struct space *s, bool require)
{
    if (s->rec.require_ticket == require) return 0;
    int err = registry_set_require_ticket(s->owner->reg, s->rec.id, require);
    if (err < 0) return err;
    s->rec.require_ticket = require;
    log_info("space %s: join tickets %s", s->rec.id, require ? "required" : "not required");
    announce(s);
    return 0;
}

static void on_publisher_gone(struct publisher *pub, void *arg)
{
    struct speaker *sp = arg;
    struct space *s = sp->space;
    if (s->publisher == pub) s->publisher = NULL;
    sp->pub = NULL;
    slot_free(sp);
}

/* The publisher's stream became readable (src) or stopped being (NULL). */
static void on_publisher_attach(struct publisher *pub, struct program_source *src, void *arg)
{
    struct speaker *sp = arg;
    struct space *s = sp->space;
    if (sp->in) retire_input(s, sp->in);
    sp->in = NULL;
    if (!src) {
        if (strcmp(sp->name, "host") == 0) builtin_step_aside(s, false);
        return;
    }
    sp->in = mixer_add(s->mixer, src);
    if (!sp->in) {
        log_limited(LOG_WARN, 1, "space %s: the mixer has no room for speaker %s", s->rec.id,
                    sp->name);
        return;
    }
    mixer_set_muted(sp->in, sp->is_muted);
    if (strcmp(sp->name, "host") == 0) builtin_step_aside(s, true);
}

int space_publish(struct space *s, const char *name, int fd, const void *rest, size_t rest_len,
                  int expect_continue, int is_legacy, const char *peer)
{
    if (s->rec.state == SPACE_ENDED) return -EPIPE;
    const char *nm = name ? name : "host";
    struct speaker *sp = space_speaker(s, nm);
    if (sp && sp->pub && publisher_is_draining(sp->pub)) {
        publisher_close(sp->pub); /* frees the slot */
        sp = NULL;
    }
    if (sp) return -EBUSY;
    if (!(sp = slot_new(s, nm))) return -ENOSPC;
    struct speaker_record r;
    if (name && registry_speaker_get(s->owner->reg, s->rec.id, name, &r) == 0)
        sp->is_muted = r.is_muted;
    struct publisher_events ev = {
        .on_gone = on_publisher_gone, .on_attach = on_publisher_attach, .arg = sp};
    sp->pub = publisher_start(s->owner->loop, fd, &s->program, rest, rest_len, expect_continue,
                              is_legacy, (uint64_t)s->owner->cfg->publisher_timeout_ms, &ev, peer);
    if (!sp->pub) {
        slot_free(sp); /* publisher_start closed fd */
        return 0;
    }
    if (!name) s->publisher = sp->pub;
    log_info("space %s: speaker %s connected from %s", s->rec.id, nm, peer);
    if (!name && s->rec.starts_at == 0) return space_go_live(s);
    if (s->rec.state == SPACE_SCHEDULED) {
        space_set_state(s, SPACE_GREEN);
        announce(s);
    }
    return 0;
}

/* ---- browser speakers (WebSocket) ---- */

static void on_speak_gone(struct speak *ws, void *arg)
{
    struct speaker *sp = arg;
    sp->ws = NULL;
    slot_free(sp);
}

/* The same as a publisher's, with the WebSocket speaker's own jitter target (speak.h):
 * its packets come one per 20 ms over TCP, so a small buffer, grown by underruns. */
static void on_speak_attach(struct speak *ws, struct program_source *src, void *arg)
{
    struct speaker *sp = arg;
    on_publisher_attach(NULL, src, sp);
    int cfg_ms = sp->space->owner->cfg->jitter_ms;
    int max_ms = cfg_ms < SPEAK_JITTER_MAX_MS ? cfg_ms : SPEAK_JITTER_MAX_MS;
    if (sp->in)
        mixer_set_jitter(sp->in, SPEAK_JITTER_MS < max_ms ? SPEAK_JITTER_MS : max_ms, max_ms);
}

/* The speaker slot `nm` for a new connection: a drained publisher gives way. NULL with
 * *err set when it is taken or none is left. */
static struct speaker *slot_claim(struct space *s, const char *nm, int *err)
{
    struct speaker *sp = space_speaker(s, nm);
    if (sp && sp->pub && publisher_is_draining(sp->pub)) {
        publisher_close(sp->pub); /* frees the slot */
        sp = NULL;
    }
    *err = sp ? -EBUSY : -ENOSPC;
    return sp ? NULL : slot_new(s, nm);
}

/* A speaker connected: scheduled turns green; the host in a space without a start time
 * goes live at once. */
static int speaker_connected(struct space *s, const char *name)
{
    if (!name && s->rec.starts_at == 0) return space_go_live(s);
    if (s->rec.state == SPACE_SCHEDULED) {
        space_set_state(s, SPACE_GREEN);
        announce(s);
    }
    return 0;
}

int space_speak(struct space *s, const char *name, int fd, const char accept[29], const char *peer)
{
    if (s->rec.state == SPACE_ENDED) return -EPIPE;
    const char *nm = name ? name : "host";
    int err;
    struct speaker *sp = slot_claim(s, nm, &err);
    if (!sp) return err;
    struct speaker_record r;
    if (name && registry_speaker_get(s->owner->reg, s->rec.id, name, &r) == 0)
        sp->is_muted = r.is_muted;
    struct speak_events ev = {.on_gone = on_speak_gone, .on_attach = on_speak_attach, .arg = sp};
    struct speak_hello hello = {s->rec.id, nm, space_state_name(s->rec.state), sp->is_muted};
    sp->ws = speak_start(s->owner->loop, fd, accept, &hello,
                         (uint64_t)s->owner->cfg->publisher_timeout_ms, &ev, peer);
    if (!sp->ws) {
        slot_free(sp); /* speak_start closed fd */
        return 0;
    }
    log_info("space %s: speaker %s connected from %s (WebSocket)", s->rec.id, nm, peer);
    return speaker_connected(s, name);
}
