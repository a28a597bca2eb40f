#include "space/space.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "deliver/chunk.h"
#include "media/demo.h"
#include "media/ingest.h"

enum { SWEEP_MS = 100 };

static void on_sweep(struct timer *t)
{
    struct spaces *ss = list_entry(t, struct spaces, sweep);
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &ss->all)
    {
        struct space *s = list_entry(pos, struct space, node);
        feed_sweep(&s->ogg);
        struct feed_stats st;
        space_stats(s, &st);
        if (st.hearing > s->peak_hearing) s->peak_hearing = st.hearing;
        if (s->publisher) publisher_sweep(s->publisher);
    }
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
    timer_init(&ss->sweep, on_sweep);
    timer_start(loop, &ss->sweep, loop_now_ms(loop) + SWEEP_MS);
    return 0;
}

static void space_free(struct space *s)
{
    if (s->publisher) publisher_close(s->publisher);
    program_fini(&s->program);
    feed_fini(&s->ogg);
    demo_source_free(s->builtin);
    list_remove(&s->node);
    free(s);
}

void spaces_fini(struct spaces *ss)
{
    timer_stop(&ss->sweep);
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &ss->all) space_free(list_entry(pos, struct space, node));
}

/* Every chunk the master packages goes to every worker, once. */
static void forward_chunk(struct feed *f, struct chunk *c, int is_header)
{
    struct space *s = f->owner;
    fleet_broadcast_chunk(s->owner->fleet, s->rec.id, c, is_header);
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
    dst->bytes += src->bytes;
    dst->listens += src->listens;
    for (int r = 0; r < REFUSE_N; r++)
        dst->refused[r] += src->refused[r];
    feed_hist_add(&dst->join_to_audio, &src->join_to_audio);
    feed_hist_add(&dst->session, &src->session);
}

void space_stats(const struct space *s, struct feed_stats *out)
{
    *out = s->ogg.stats;
    add_counters(out, &s->retired);
    for (int w = 0; w < FLEET_MAX; w++) {
        const struct feed_stats *st = &s->wstats[w];
        out->listeners += st->listeners;
        out->waiting += st->waiting;
        out->hearing += st->hearing;
        out->lagging += st->lagging;
        add_counters(out, st);
    }
}

void space_retire_worker(struct space *s, int w)
{
    if (w < 0 || w >= FLEET_MAX) return;
    struct feed_stats *st = &s->wstats[w];
    add_counters(&s->retired, st);
    s->retired.left += st->listeners;
    memset(st, 0, sizeof(*st));
}

static struct space *space_new(struct spaces *ss, const struct space_record *rec)
{
    const struct config *cfg = ss->cfg;
    struct space *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->owner = ss;
    s->rec = *rec;
    size_t chunk_ms = cfg->chunk_ms > 0 ? (size_t)cfg->chunk_ms : 100;
    if (feed_init(&s->ogg, ss->loop, (size_t)cfg->ring_ms / chunk_ms,
                  ((size_t)cfg->burst_ms + chunk_ms - 1) / chunk_ms, feed_ogg_response_head) < 0 ||
        program_init(&s->program, ss->loop, &s->ogg, (int)chunk_ms) < 0) {
        free(s);
        return NULL;
    }
    s->ogg.stall_timeout_ms = (uint64_t)cfg->stall_timeout_ms;
    s->ogg.sndbuf = cfg->sndbuf_bytes;
    s->ogg.lag_chunks = (unsigned)(FEED_LAG_MS / chunk_ms);
    list_push_back(&ss->all, &s->node);
    if (ss->fleet) {
        s->ogg.on_chunk = forward_chunk;
        s->ogg.owner = s;
        for (int w = 0; w < ss->fleet->n; w++)
            fleet_sync_feed(ss->fleet, w, s->rec.id, &s->ogg, space_chan_flags(s));
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
    if (registry_get(ss->reg, key, &rec) < 0) return NULL;
    return space_new(ss, &rec);
}

int space_add_builtin_speaker(struct space *s)
{
    if (s->builtin) return 0;
    s->builtin = demo_source_new();
    if (!s->builtin) return -ENOMEM;
    space_set_state(s, SPACE_LIVE);
    return program_set_fallback(&s->program, s->builtin);
}

void space_set_state(struct space *s, enum space_state st)
{
    if (s->rec.state == st) return;
    if (registry_set_state(s->owner->reg, s->rec.id, st) == 0) {
        log_info("space %s: %s -> %s", s->rec.id, space_state_name(s->rec.state),
                 space_state_name(st));
        s->rec.state = st;
    }
}

uint64_t space_chan_flags(const struct space *s)
{
    return s->rec.require_ticket ? CHAN_SPACE_REQUIRE_TICKET : 0;
}

int space_set_require_ticket(struct space *s, bool require)
{
    if (s->rec.require_ticket == require) return 0;
    int err = registry_set_require_ticket(s->owner->reg, s->rec.id, require);
    if (err < 0) return err;
    s->rec.require_ticket = require;
    log_info("space %s: join tickets %s", s->rec.id, require ? "required" : "not required");
    if (s->owner->fleet) fleet_broadcast_space(s->owner->fleet, s->rec.id, space_chan_flags(s));
    return 0;
}

static void on_publisher_gone(struct publisher *pub, void *arg)
{
    struct space *s = arg;
    if (s->publisher == pub) s->publisher = NULL;
}

int space_publish(struct space *s, int fd, const void *rest, size_t rest_len, int expect_continue,
                  int is_legacy, const char *peer)
{
    if (s->publisher && publisher_is_draining(s->publisher)) publisher_close(s->publisher);
    if (s->publisher) return -EBUSY;
    struct publisher_events ev = {.on_gone = on_publisher_gone, .arg = s};
    s->publisher =
        publisher_start(s->owner->loop, fd, &s->program, rest, rest_len, expect_continue, is_legacy,
                        (uint64_t)s->owner->cfg->publisher_timeout_ms, &ev, peer);
    if (s->publisher && s->rec.state != SPACE_LIVE) space_set_state(s, SPACE_LIVE);
    return 0;
}
