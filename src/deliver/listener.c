/* The listener: a cursor into a feed's ring, and its socket.
 *
 * A listener writes three kinds of pieces, in order:
 *   phase HEAD    the HTTP response head (static bytes of the feed)
 *   phase HEADER  the feed's header chunk (borrowed: the feed outlives us)
 *   phase AUDIO   ring chunks from `next_seq`; `partial` holds a reference to
 *                 a chunk written only up to `offset`
 * All pending pieces go out in one sendmsg() (scatter-gather, no copy), so a
 * caught-up listener costs one system call per chunk.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/log.h"
#include "deliver/chunk.h"
#include "deliver/feed.h"
#include "http/ws.h"

enum { IOV_BATCH = 32, NO_SEQ = 0, LAG_WINDOW_MS = 60000 };

const char feed_ogg_response_head[] = "HTTP/1.1 200 OK\r\n"
                                      "Content-Type: audio/ogg\r\n"
                                      "Cache-Control: no-cache, no-store\r\n"
                                      "Access-Control-Allow-Origin: *\r\n"
                                      "X-Content-Type-Options: nosniff\r\n"
                                      "Connection: close\r\n"
                                      "\r\n";

const char feed_ws_response_head[] = "";

/* A piece is also PHASE_CTRL: a control frame a WebSocket listener owes its
 * client (pong, close), written between two chunks. */
enum listener_phase { PHASE_HEAD, PHASE_HEADER, PHASE_AUDIO, PHASE_DONE, PHASE_CTRL };

/* What a WebSocket listener holds once its client sent a byte (most never
 * do): the frame reader and the control frame it owes. */
struct ws_state {
    struct ws_reader rd;
    uint8_t out[2 + 2 + 123 + 2]; /* a pong or a close frame */
    uint8_t out_len, out_off;
    bool is_closing;    /* `out` is a close frame: no audio after it, then drop */
    bool is_close_owed; /* a close is owed after the pong in `out`: no audio either */
    bool is_close_sent; /* ... it was written */
    bool is_violation;  /* the close answers a protocol violation */
};
enum listener_state { LS_NONE, LS_WAITING, LS_HEARING, LS_LAGGING };

struct listener {
    struct io io;
    struct list node; /* in feed->ready or feed->blocked */
    struct feed *feed;
    struct chunk *partial;     /* reference while a ring chunk is half written */
    uint64_t next_seq;         /* next ring chunk to write after `partial` */
    uint64_t last_progress_ms; /* last time the socket accepted bytes */
    uint64_t last_skip_ms;     /* last skip to live, 0 = never */
    uint64_t last_lag_ms;      /* last time it was found lagging, 0 = never */
    uint32_t offset;           /* bytes of the current piece already written */
    uint8_t phase;             /* enum listener_phase */
    uint8_t bucket;            /* which ready list (feed.h) */
    uint8_t state;             /* enum listener_state */
    bool is_blocked;
    bool is_head_only;
    bool has_cursor; /* next_seq is set (the header existed) */
    bool has_audio;  /* its socket accepted an audio byte */
    /* (uint32_t)loop_now_ms at listener_start, then at the first audio byte
     * (durations are taken modulo 2^32 ms, about 49 days) */
    uint32_t since_ms;
    struct deferred dfr;
    struct ws_state *ws; /* WebSocket feeds: NULL until the client sends a byte */
};

/* The per-listener cost in user space (DESIGN.md: at most 256 bytes). */
_Static_assert(sizeof(struct listener) <= 128, "struct listener grew past 128 bytes");

static void on_listener_event(struct io *io, uint32_t events);
static void listener_flush(struct listener *l);
static void ws_finish(struct listener *l);

static void listener_free(struct deferred *d)
{
    free(list_entry(d, struct listener, dfr));
}

static uint64_t *state_gauge(struct feed_stats *s, uint8_t st)
{
    switch (st) {
    case LS_WAITING:
        return &s->waiting;
    case LS_HEARING:
        return &s->hearing;
    case LS_LAGGING:
        return &s->lagging;
    default:
        return NULL;
    }
}

/* The one place a listener's state changes: the gauges follow. */
static void set_state(struct listener *l, uint8_t st)
{
    if (l->state == st) return;
    uint64_t *from = state_gauge(&l->feed->stats, l->state);
    uint64_t *to = state_gauge(&l->feed->stats, st);
    if (from) (*from)--;
    if (to) (*to)++;
    l->state = st;
}

static void mark_lagging(struct listener *l, uint64_t now)
{
    l->last_lag_ms = now;
    set_state(l, LS_LAGGING);
}

/* After a write that left the listener caught up with the ring's head. */
static void mark_caught_up(struct listener *l)
{
    if (!l->has_cursor || l->state == LS_NONE) return;
    struct feed *f = l->feed;
    uint64_t now = loop_now_ms(f->loop);
    bool is_recent = (l->last_lag_ms && now - l->last_lag_ms < FEED_HEAR_WINDOW_MS) ||
                     (f->late_at_ms && now - f->late_at_ms < FEED_HEAR_WINDOW_MS);
    if (!l->feed->is_live)
        set_state(l, LS_WAITING); /* the space is not live: what it gets is silence */
    else
        set_state(l, is_recent ? LS_LAGGING : LS_HEARING);
}

/* Copies a histogram's numbers into the feed's stats (joins and closes only,
 * never per write). */
static void observe(struct hist *h, struct feed_hist *out, double seconds)
{
    hist_observe(h, seconds);
    memcpy(out->counts, h->counts, sizeof(out->counts));
    out->sum = h->sum;
    out->count = h->count;
}

static uint32_t ms_since(const struct listener *l)
{
    return (uint32_t)loop_now_ms(l->feed->loop) - l->since_ms;
}

/* The first audio byte of `l` was accepted by its socket. */
static void mark_first_audio(struct listener *l)
{
    struct feed *f = l->feed;
    l->has_audio = true;
    observe(&f->join_hist, &f->stats.join_to_audio, ms_since(l) / 1000.0);
    l->since_ms = (uint32_t)loop_now_ms(f->loop);
}

static void listener_close(struct listener *l)
{
    if (l->io.fd < 0) return;
    struct feed *f = l->feed;
    if (l->has_audio) {
        uint32_t ms = ms_since(l);
        observe(&f->session_hist, &f->stats.session, ms / 1000.0);
        if (ms >= FEED_LISTEN_MS) f->stats.listens++;
    }
    loop_del(f->loop, &l->io);
    if (f->on_close) f->on_close(f, l->io.fd);
    close(l->io.fd);
    l->io.fd = -1;
    list_remove(&l->node);
    chunk_unref(&l->partial);
    if (l->ws) {
        ws_reader_fini(&l->ws->rd);
        free(l->ws);
        l->ws = NULL;
    }
    set_state(l, LS_NONE);
    f->stats.listeners--;
    f->stats.left++;
    loop_defer(f->loop, &l->dfr, listener_free);
}

static void set_blocked(struct listener *l, bool blocked)
{
    if (l->is_blocked == blocked) return;
    l->is_blocked = blocked;
    list_remove(&l->node);
    list_push_back(blocked ? &l->feed->blocked : &l->feed->ready[l->bucket], &l->node);
}

int listener_start(struct feed *f, int fd, int is_head_only)
{
    struct listener *l = calloc(1, sizeof(*l));
    if (!l) return -ENOMEM;
    l->io.fd = fd;
    l->feed = f;
    l->is_head_only = is_head_only;
    if (f->response_head_len == 0) l->phase = PHASE_HEADER; /* WebSocket: 101 sent */
    l->last_progress_ms = loop_now_ms(f->loop);
    l->since_ms = (uint32_t)l->last_progress_ms;
    list_init(&l->node);
    deferred_init(&l->dfr);
    if (f->sndbuf > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &f->sndbuf, sizeof(f->sndbuf));
    /* a peer that stops acknowledging (gone, or a zero window it never
     * reopens) is given up by the kernel too, a minute after the stall
     * timeout: the sweep's stall rule comes first for a reader that stopped,
     * and the kernel's zero-window probe clock, which also runs while a slow
     * reader still reads, must not cut it off before the lag rules judge it */
    unsigned user_timeout = (unsigned)f->stall_timeout_ms + 60000;
    if (user_timeout > 0)
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
    int err =
        loop_add(f->loop, &l->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_listener_event);
    if (err < 0) {
        free(l);
        return err;
    }
    l->bucket = (uint8_t)(f->next_bucket++ % FEED_MAX_BUCKETS);
    list_push_back(&f->ready[l->bucket], &l->node);
    f->stats.listeners++;
    f->stats.joined++;
    if (!is_head_only) set_state(l, LS_WAITING);
    listener_flush(l);
    return 0;
}

/* Picks the listener's first audio chunk: a burst of recent audio. */
static void place_cursor(struct listener *l)
{
    if (l->has_cursor) return;
    l->next_seq = ring_burst_start(&l->feed->ring, l->feed->burst_chunks);
    l->has_cursor = true;
}

/* A listener that fell behind the ring's tail skips to the newest chunk, at
 * a chunk boundary (its player sees a jump, never a torn page). One that
 * falls behind again within LAG_WINDOW_MS cannot keep up (its link is slower
 * than the stream): it is dropped rather than served half the audio.
 * Returns false when the listener was closed. */
static bool skip_if_behind(struct listener *l)
{
    struct feed *f = l->feed;
    struct ring *r = &f->ring;
    if (!l->has_cursor || l->partial || l->next_seq >= r->tail) return true;
    uint64_t now = loop_now_ms(f->loop);
    if (l->last_skip_ms && now - l->last_skip_ms < LAG_WINDOW_MS) {
        f->stats.dropped++;
        f->stats.dropped_lagging++;
        listener_close(l);
        return false;
    }
    l->last_skip_ms = now;
    mark_lagging(l, now);
    uint64_t live = r->head ? r->head - 1 : 0;
    f->stats.skips++;
    f->stats.skipped_chunks += live - l->next_seq;
    l->next_seq = live;
    return true;
}

struct piece {
    struct chunk *chunk; /* NULL for the response head */
    enum listener_phase phase;
};

/* Collects what is pending for `l` into iov; returns the count. */
static int gather(struct listener *l, struct iovec *iov, struct piece *pc)
{
    struct feed *f = l->feed;
    int n = 0;
    uint32_t off = l->offset;
    if (l->phase == PHASE_DONE) return 0; /* a HEAD request: nothing after the head */
    if (l->phase == PHASE_HEAD) {
        iov[n] = (struct iovec){(void *)(f->response_head + off), f->response_head_len - off};
        pc[n++] = (struct piece){NULL, PHASE_HEAD};
        off = 0;
        if (l->is_head_only) return n;
    }
    struct ws_state *ws = l->ws;
    bool owes = ws && ws->out_off < ws->out_len;
    if (owes && ws->is_closing && l->phase <= PHASE_HEADER && off == 0) {
        /* nothing of the hello written yet: the close goes first */
        iov[n] = (struct iovec){ws->out + ws->out_off, (size_t)(ws->out_len - ws->out_off)};
        pc[n++] = (struct piece){NULL, PHASE_CTRL};
        return n;
    }
    if (l->phase <= PHASE_HEADER) {
        if (!f->header) return n;
        iov[n] = (struct iovec){f->header->data + off, f->header->len - off};
        pc[n++] = (struct piece){f->header, PHASE_HEADER};
        off = 0;
        place_cursor(l);
    }
    if (l->partial) {
        iov[n] = (struct iovec){l->partial->data + off, l->partial->len - off};
        pc[n++] = (struct piece){l->partial, PHASE_AUDIO};
    }
    if (owes) { /* at a frame boundary: after the header or a whole chunk */
        iov[n] = (struct iovec){ws->out + ws->out_off, (size_t)(ws->out_len - ws->out_off)};
        pc[n++] = (struct piece){NULL, PHASE_CTRL};
        if (ws->is_closing || ws->is_close_owed) return n;
    } else if (ws && (ws->is_closing || ws->is_close_owed)) {
        return n; /* the close was written: no audio after it */
    }
    for (uint64_t s = l->next_seq; n < IOV_BATCH; s++) {
        struct chunk *c = ring_get(&f->ring, s);
        if (!c) break;
        iov[n] = (struct iovec){c->data, c->len};
        pc[n++] = (struct piece){c, PHASE_AUDIO};
    }
    return n;
}

/* Moves the cursor past `written` bytes of the gathered pieces. Returns
 * whether any audio byte was among them. */
static bool advance(struct listener *l, const struct iovec *iov, const struct piece *pc, int n,
                    size_t written)
{
    bool has_audio = false;
    for (int i = 0; i < n; i++) {
        if (pc[i].phase == PHASE_CTRL) { /* its own offset: l->offset is the audio's */
            struct ws_state *ws = l->ws;
            if (written < iov[i].iov_len) {
                ws->out_off = (uint8_t)(ws->out_off + written);
                return has_audio;
            }
            written -= iov[i].iov_len;
            ws->out_off = ws->out_len = 0;
            if (ws->is_closing) {
                ws->is_close_sent = true;
            } else if (ws->is_close_owed) { /* the pong went out: now the close */
                ws->out_len = (uint8_t)ws_close_frame(ws->out, ws->rd.code, ws->rd.reason);
                ws->is_closing = true;
                ws->is_close_owed = false;
                return has_audio; /* gather again: the close is the next piece */
            }
            continue;
        }
        if (written > 0 && pc[i].phase == PHASE_AUDIO) has_audio = true;
        if (written < iov[i].iov_len) {
            if (written == 0) return has_audio;
            if (pc[i].phase == PHASE_AUDIO && l->partial != pc[i].chunk) {
                l->partial = chunk_ref(pc[i].chunk);
                l->next_seq = pc[i].chunk->seq + 1;
                l->offset = 0;
            }
            l->phase = pc[i].phase;
            l->offset += (uint32_t)written;
            return has_audio;
        }
        written -= iov[i].iov_len;
        l->offset = 0;
        if (pc[i].phase == PHASE_HEAD) {
            l->phase = l->is_head_only ? PHASE_DONE : PHASE_HEADER;
        } else if (pc[i].phase == PHASE_HEADER) {
            l->phase = PHASE_AUDIO;
        } else {
            /* Read the sequence first: our partial reference may be the
             * chunk's last (the ring may have dropped it meanwhile). */
            l->next_seq = pc[i].chunk->seq + 1;
            if (l->partial == pc[i].chunk) chunk_unref(&l->partial);
            l->phase = PHASE_AUDIO;
        }
    }
    return has_audio;
}

/* Writes everything pending, as far as the socket takes it. */
static void listener_flush(struct listener *l)
{
    struct iovec iov[IOV_BATCH + 2];
    struct piece pc[IOV_BATCH + 2];
    for (;;) {
        if (!skip_if_behind(l)) return;
        int n = gather(l, iov, pc);
        if (n == 0) break;
        size_t want = 0;
        for (int i = 0; i < n; i++)
            want += iov[i].iov_len;
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(l->io.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            set_blocked(l, true);
            return;
        }
        if (w < 0) {
            listener_close(l);
            return;
        }
        l->feed->stats.bytes += (uint64_t)w;
        l->last_progress_ms = loop_now_ms(l->feed->loop);
        if (advance(l, iov, pc, n, (size_t)w) && !l->has_audio) mark_first_audio(l);
        if (l->ws && l->ws->is_close_sent) {
            ws_finish(l);
            return;
        }
        if ((size_t)w < want) {
            set_blocked(l, true);
            return;
        }
    }
    if (l->phase == PHASE_DONE) {
        listener_close(l);
        return;
    }
    set_blocked(l, false);
    mark_caught_up(l);
}

/* The close frame was written: the connection ends (input drained first so
 * that closing does not reset it before the client reads the close). */
static void ws_finish(struct listener *l)
{
    struct feed *f = l->feed;
    if (l->ws->is_violation) {
        f->stats.dropped++;
        f->stats.dropped_protocol++;
    } else {
        f->stats.ws_closes++;
    }
    shutdown(l->io.fd, SHUT_WR);
    char scratch[512];
    for (int i = 0; i < 8 && recv(l->io.fd, scratch, sizeof(scratch), MSG_DONTWAIT) > 0; i++)
        ;
    listener_close(l);
}

/* Queues the control frame owed for reader event `ev`. */
static void ws_answer(struct listener *l, enum ws_event ev)
{
    struct ws_state *ws = l->ws;
    if (ws->out_off > 0 && ev == WS_EV_PING) return; /* a pong is half written: enough */
    if (ws->out_off > 0) { /* close owed mid-pong: the pong first (advance builds the close) */
        ws->is_close_owed = true;
        ws->is_violation = ev == WS_EV_VIOLATION;
        return;
    }
    if (ev == WS_EV_PING) {
        size_t h = ws_frame_header(ws->out, WS_OP_PONG, ws->rd.ctl_len);
        memcpy(ws->out + h, ws->rd.ctl, ws->rd.ctl_len);
        ws->out_len = (uint8_t)(h + ws->rd.ctl_len);
        return;
    }
    ws->out_len = (uint8_t)ws_close_frame(ws->out, ws->rd.code, ws->rd.reason);
    ws->is_closing = true;
    ws->is_violation = ev == WS_EV_VIOLATION;
}

/* A WebSocket listener's client sent bytes: read them as frames. Returns
 * false when the listener was closed. */
static bool ws_read(struct listener *l)
{
    uint8_t scratch[2048];
    bool owes = false;
    for (int i = 0; i < 8; i++) {
        ssize_t n = recv(l->io.fd, scratch, sizeof(scratch), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            listener_close(l);
            return false;
        }
        if (n < 0) break;
        if (!l->ws) {
            l->ws = calloc(1, sizeof(*l->ws));
            if (!l->ws || ws_reader_init(&l->ws->rd) < 0) {
                listener_close(l);
                return false;
            }
        }
        const uint8_t *p = scratch;
        size_t left = (size_t)n;
        /* every event consumes a frame's bytes: bounded by the read */
        for (size_t k = 0; k <= (size_t)n + 4096 && !l->ws->rd.is_done; k++) {
            size_t used = 0;
            enum ws_event ev = ws_reader_feed(&l->ws->rd, p, left, &used);
            p += used;
            left -= used;
            if (ev == WS_EV_NONE) break;
            ws_answer(l, ev);
            owes = true;
        }
    }
    if (owes) listener_flush(l);
    return true;
}

/* Ogg listeners send nothing after their request: input is drained and
 * dropped; WebSocket listeners' input is read as frames (ws_read). End of
 * stream or an error closes. */
static void on_listener_event(struct io *io, uint32_t events)
{
    struct listener *l = list_entry(io, struct listener, io);
    if (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        listener_close(l);
        return;
    }
    if ((events & EPOLLIN) && l->feed->is_ws) {
        if (!ws_read(l) || l->io.fd < 0) return;
    } else if (events & EPOLLIN) {
        char scratch[512];
        for (int i = 0; i < 8; i++) {
            ssize_t n = recv(l->io.fd, scratch, sizeof(scratch), 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                listener_close(l);
                return;
            }
            if (n < 0) break;
        }
    }
    if ((events & EPOLLOUT) && l->is_blocked) listener_flush(l);
}

int feed_init(struct feed *f, struct loop *loop, size_t ring_chunks, size_t burst_chunks,
              const char *response_head)
{
    memset(f, 0, sizeof(*f));
    int err = ring_init(&f->ring, ring_chunks);
    if (err < 0) return err;
    for (int b = 0; b < FEED_MAX_BUCKETS; b++)
        list_init(&f->ready[b]);
    list_init(&f->blocked);
    f->nbuckets = 1;
    f->loop = loop;
    f->burst_chunks = burst_chunks;
    f->response_head = response_head;
    f->response_head_len = strlen(response_head);
    f->stall_timeout_ms = 30000;
    f->lag_chunks = 20;
    f->is_live = true;
    hist_init(&f->join_hist, &hist_join_to_first_audio);
    hist_init(&f->session_hist, &hist_session_length);
    return 0;
}

void feed_hist_add(struct feed_hist *dst, const struct feed_hist *src)
{
    for (size_t i = 0; i <= HIST_MAX; i++)
        dst->counts[i] += src->counts[i];
    dst->sum += src->sum;
    dst->count += src->count;
}

int feed_hist_get(const struct feed_hist *src, const struct hist_buckets *b, struct hist *out)
{
    struct hist h;
    int err = hist_init(out, b);
    if (err == 0) err = hist_init(&h, b);
    if (err < 0) return err;
    memcpy(h.counts, src->counts, sizeof(h.counts));
    h.sum = src->sum;
    h.count = src->count;
    return hist_merge(out, &h);
}

static void close_all(struct list *head)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, head) listener_close(list_entry(pos, struct listener, node));
}

void feed_fini(struct feed *f)
{
    for (int b = 0; b < FEED_MAX_BUCKETS; b++)
        close_all(&f->ready[b]);
    close_all(&f->blocked);
    ring_fini(&f->ring);
    chunk_unref(&f->header);
}

/* Hearing listeners of list `head` wait again (their space left the air). */
static void demote_all(struct list *head)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, head)
    {
        struct listener *l = list_entry(pos, struct listener, node);
        if (l->state == LS_HEARING) set_state(l, LS_WAITING);
    }
}

void feed_set_live(struct feed *f, bool is_live)
{
    if (f->is_live == is_live) return;
    f->is_live = is_live;
    if (is_live) return; /* each listener is promoted by its next write */
    for (int b = 0; b < FEED_MAX_BUCKETS; b++)
        demote_all(&f->ready[b]);
    demote_all(&f->blocked);
}

void feed_end(struct feed *f)
{
    f->is_ended = true;
    for (int b = 0; b < FEED_MAX_BUCKETS; b++)
        close_all(&f->ready[b]);
    close_all(&f->blocked);
}

/* Writes to the listeners of bucket b. A listener that blocks moves to
 * `blocked`; one that catches up comes back to the end of its list, so the
 * walk stops at the element that was last when it began. */
static void flush_bucket(struct feed *f, unsigned b)
{
    struct list *head = &f->ready[b];
    if (list_is_empty(head)) return;
    struct list *last = head->prev;
    struct list *pos = head->next;
    for (;;) {
        struct list *next = pos->next;
        bool is_last = pos == last;
        listener_flush(list_entry(pos, struct listener, node));
        if (is_last || next == head) break;
        pos = next;
    }
}

static void flush_all(struct feed *f)
{
    for (unsigned b = 0; b < FEED_MAX_BUCKETS; b++)
        flush_bucket(f, b);
}

void feed_set_header(struct feed *f, struct chunk *header)
{
    chunk_unref(&f->header);
    f->header = header;
    if (f->on_chunk) f->on_chunk(f, header, 1);
    flush_all(f);
}

uint64_t feed_clock_observe(struct feed_clock *k, uint64_t now_ms, uint64_t granule)
{
    int64_t off = (int64_t)now_ms - (int64_t)(granule / 48);
    if (!k->is_set || granule < k->last_granule) {
        *k = (struct feed_clock){.base_ms = off,
                                 .win_min_ms = off,
                                 .win_start_ms = now_ms,
                                 .last_granule = granule,
                                 .is_set = true};
        return 0;
    }
    k->last_granule = granule;
    if (off < k->base_ms) k->base_ms = off;
    if (off < k->win_min_ms) k->win_min_ms = off;
    if (now_ms - k->win_start_ms >= FEED_HEAR_WINDOW_MS) {
        if (k->win_min_ms > k->base_ms + FEED_LAG_MS) k->base_ms = k->win_min_ms;
        k->win_min_ms = off;
        k->win_start_ms = now_ms;
    }
    return off > k->base_ms ? (uint64_t)(off - k->base_ms) : 0;
}

void feed_append(struct feed *f, struct chunk *c)
{
    if (c->granule) {
        uint64_t now = loop_now_ms(f->loop);
        uint64_t late = feed_clock_observe(&f->clock, now, c->granule);
        if (late > FEED_LAG_MS) {
            f->late_at_ms = now;
            log_limited(LOG_WARN, 5,
                        "audio reaches this process %llu ms behind live: its listeners count as "
                        "lagging (CPU starved?)",
                        (unsigned long long)late);
        }
    }
    ring_append(&f->ring, c); /* numbers the chunk */
    if (f->pending++ == 0) f->pending_seq = c->seq;
    if (f->on_chunk) f->on_chunk(f, c, 0);
}

/* Each bucket whose turn one of the pending chunks is gets one pass. */
void feed_flush_pending(struct feed *f)
{
    unsigned nb = f->nbuckets, n = f->pending;
    f->pending = 0;
    if (n == 0) return;
    if (nb <= 1 || n >= nb) {
        flush_all(f);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        for (unsigned b = (unsigned)((f->pending_seq + i) % nb); b < FEED_MAX_BUCKETS; b += nb)
            flush_bucket(f, b);
}

void feed_publish(struct feed *f, struct chunk *c)
{
    feed_append(f, c);
    feed_flush_pending(f);
}

/* `bytes` of the stream in thousandths of a chunk, at the newest chunk's size. */
static uint64_t bytes_in_millichunks(const struct feed *f, int bytes)
{
    const struct chunk *c = f->ring.head > 0 ? ring_get(&f->ring, f->ring.head - 1) : NULL;
    if (bytes <= 0 || c == NULL || c->len == 0) return 0;
    return (uint64_t)bytes * 1000 / c->len;
}

void feed_sweep(struct feed *f)
{
    uint64_t now = loop_now_ms(f->loop);
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &f->blocked)
    {
        struct listener *l = list_entry(pos, struct listener, node);
        if (now - l->last_progress_ms > f->stall_timeout_ms) {
            f->stats.dropped++;
            listener_close(l);
            continue;
        }
        /* Blocked listeners are the only ones that can fall behind unseen.
         * Behind = the chunks its socket has not accepted, plus the audio
         * still in the socket's send queue (written but not acknowledged by
         * the peer: SIOCOUTQ), since a reader that stopped leaves both to
         * grow. One ioctl per blocked listener per sweep. */
        if (!l->has_cursor) continue;
        uint64_t cursor = l->partial ? l->partial->seq : l->next_seq;
        uint64_t behind = f->ring.head > cursor ? (f->ring.head - cursor) * 1000 : 0;
        int queued = 0;
        if (behind <= f->lag_chunks * 1000 && ioctl(l->io.fd, SIOCOUTQ, &queued) == 0)
            behind += bytes_in_millichunks(f, queued);
        if (behind > f->lag_chunks * 1000) mark_lagging(l, now);
    }
}
