#include "media/speak.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "core/log.h"
#include "http/ws.h"
#include "media/program.h"
#include "media/speak_msg.h"

/* The packet queue: a ring of fixed slots allocated with the session (no allocation per
 * packet). Reading stops at QUEUE_HIGH (1 s of 20 ms packets); one slot stays free so that
 * the packet last pulled (borrowed by the mixer until its next pull) is never overwritten.
 * A slot of length 0 is a lost packet, concealed by the mixer. */
enum { QUEUE_CAP = 64, QUEUE_HIGH = 50, TICK_MS = 1000 };

struct slot {
    uint16_t len;
    int samples;
    uint8_t data[SPEAK_MAX_PACKET];
};

/* OPEN: audio flows. CLOSING: the speaker has left the mix; the close handshake finishes
 * (at most SPEAK_LINGER_MS). DONE: socket closed, free deferred. */
enum speak_state { SPEAK_OPEN, SPEAK_CLOSING, SPEAK_DONE };

struct speak {
    struct io io;
    struct loop *loop; /* NULL for speak_feed_test() */
    wslay_event_context_ptr ctx;
    struct program_source src;
    struct speak_rx rx;
    struct speak_events ev;
    struct slot *queue;
    size_t qhead, qcount;
    uint64_t qsamples;
    enum speak_state state;
    bool is_attached, is_paused, is_pumping, wants_out;
    bool is_close_pending; /* a close waits for the text messages queued before it */
    uint16_t close_code;
    uint8_t close_reason_len;
    char close_reason[123];
    uint64_t last_msg_ms, timeout_ms, closing_ms;
    uint64_t overflow;  /* packets dropped because the queue was full */
    const uint8_t *mem; /* speak_feed_test(): the client's bytes, instead of the socket */
    size_t mem_len, mem_step;
    struct timer tick;
    struct deferred dfr;
    struct list node;
    char peer[64];
};

/* Every session not yet finished (closing ones included), for speak_close_all(). */
static struct list sessions = {&sessions, &sessions};

static uint64_t now_ms(const struct speak *sp)
{
    return sp->loop ? loop_now_ms(sp->loop) : 0;
}

/* ---- wslay's I/O ---- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    struct speak *sp = user;
    if (sp->state == SPEAK_OPEN && sp->qcount >= QUEUE_HIGH) {
        sp->is_paused = true; /* TCP paces the speaker until the mixer catches up */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ssize_t n;
    if (sp->mem) {
        n = (ssize_t)(len < sp->mem_step ? len : sp->mem_step);
        n = (size_t)n < sp->mem_len ? n : (ssize_t)sp->mem_len;
        memcpy(buf, sp->mem, (size_t)n);
        sp->mem += n, sp->mem_len -= (size_t)n;
    } else {
        n = recv(sp->io.fd, buf, len, 0);
    }
    if (n > 0) return n;
    bool is_again = (n < 0 && (errno == EAGAIN || errno == EINTR)) || sp->mem;
    wslay_event_set_error(ctx, is_again ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct speak *sp = user;
    if (sp->io.fd < 0) return (ssize_t)len; /* speak_feed_test(): discarded */
    int more = (flags & WSLAY_MSG_MORE) ? MSG_MORE : 0;
    ssize_t n = send(sp->io.fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT | more);
    if (n >= 0) return n;
    bool is_again = errno == EAGAIN || errno == EINTR;
    wslay_event_set_error(ctx, is_again ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

/* ---- leaving ---- */

static void session_free(struct deferred *d)
{
    struct speak *sp = list_entry(d, struct speak, dfr);
    wslay_event_context_free(sp->ctx);
    free(sp->queue);
    free(sp);
}

/* The speaker stops being one: out of the mix, then the owner is told. Idempotent. */
static void leave(struct speak *sp)
{
    if (sp->state != SPEAK_OPEN) return;
    sp->state = SPEAK_CLOSING;
    sp->closing_ms = now_ms(sp);
    if (sp->is_attached) {
        sp->is_attached = false;
        if (sp->ev.on_attach) sp->ev.on_attach(sp, NULL, sp->ev.arg);
    }
    sp->qcount = 0;
    sp->qsamples = 0;
    log_info("speaker %s (WebSocket) gone: %llu packets, %llu lost, %llu dropped, %llu over",
             sp->peer, (unsigned long long)sp->rx.accepted, (unsigned long long)sp->rx.lost,
             (unsigned long long)sp->rx.dropped, (unsigned long long)sp->overflow);
    if (sp->ev.on_gone) sp->ev.on_gone(sp, sp->ev.arg);
}

/* The socket closes and the session is freed at the loop's safe point. */
static void finish(struct speak *sp)
{
    if (sp->state == SPEAK_DONE) return;
    leave(sp);
    sp->state = SPEAK_DONE;
    if (sp->loop) {
        loop_del(sp->loop, &sp->io);
        timer_stop(&sp->tick);
    }
    if (sp->io.fd >= 0) close(sp->io.fd);
    sp->io.fd = -1;
    list_remove(&sp->node);
    if (sp->loop) loop_defer(sp->loop, &sp->dfr, session_free);
}

/* Reads what may be read, writes what is queued, and notices the end. Never waits. */
static void pump(struct speak *sp)
{
    if (sp->is_pumping || sp->state == SPEAK_DONE) return;
    sp->is_pumping = true;
    sp->is_paused = false;
    int err = 0;
    if (wslay_event_want_read(sp->ctx)) err = wslay_event_recv(sp->ctx);
    if (err == 0 && wslay_event_want_write(sp->ctx)) err = wslay_event_send(sp->ctx);
    if (err == 0 && sp->is_close_pending && wslay_event_get_queued_msg_count(sp->ctx) == 0) {
        /* the messages queued before the close are out: now the close itself */
        sp->is_close_pending = false;
        wslay_event_queue_close(sp->ctx, sp->close_code, (const uint8_t *)sp->close_reason,
                                sp->close_reason_len);
        err = wslay_event_send(sp->ctx);
    }
    sp->is_pumping = false;
    if (err < 0) { /* the connection is lost (or wslay is out of memory) */
        finish(sp);
        return;
    }
    if (!wslay_event_want_read(sp->ctx) || wslay_event_get_close_sent(sp->ctx)) leave(sp);
    if (!wslay_event_want_read(sp->ctx) && !wslay_event_want_write(sp->ctx)) {
        finish(sp);
        return;
    }
    bool wants_out = wslay_event_want_write(sp->ctx);
    if (sp->loop && wants_out != sp->wants_out) {
        sp->wants_out = wants_out;
        loop_mod(sp->loop, &sp->io, EPOLLIN | EPOLLRDHUP | EPOLLET | (wants_out ? EPOLLOUT : 0));
    }
}

/* Something was queued: the loop sends it (EPOLL_CTL_MOD reports a writable socket at
 * once). Never pumping from here keeps the owner's callbacks out of its own calls. */
static void want_out(struct speak *sp)
{
    if (!sp->loop || sp->state == SPEAK_DONE || sp->wants_out) return;
    sp->wants_out = true;
    loop_mod(sp->loop, &sp->io, EPOLLIN | EPOLLRDHUP | EPOLLET | EPOLLOUT);
}

/* wslay sends control frames before queued messages, so a close queued at once
 * would overtake a state message queued just before it (the "ended" a page
 * shows): the close waits in the session until the messages are out. */
void speak_close(struct speak *sp, unsigned code, const char *reason)
{
    if (sp->state != SPEAK_OPEN) return;
    size_t rlen = reason ? strnlen(reason, sizeof(sp->close_reason)) : 0;
    if (wslay_event_get_queued_msg_count(sp->ctx) > 0) {
        sp->is_close_pending = true;
        sp->close_code = (uint16_t)code;
        sp->close_reason_len = (uint8_t)rlen;
        if (rlen) memcpy(sp->close_reason, reason, rlen);
    } else {
        wslay_event_queue_close(sp->ctx, (uint16_t)code, (const uint8_t *)reason, rlen);
    }
    leave(sp);
    want_out(sp);
}

/* ---- messages from the speaker ---- */

static int enqueue(struct speak *sp, const uint8_t *data, size_t len, int samples)
{
    if (sp->qcount >= QUEUE_CAP - 1) return -ENOBUFS;
    struct slot *s = &sp->queue[(sp->qhead + sp->qcount) % QUEUE_CAP];
    s->len = (uint16_t)len;
    s->samples = samples;
    if (len) memcpy(s->data, data, len);
    sp->qcount++;
    sp->qsamples += (uint64_t)samples;
    return 0;
}

static void accept_packet(struct speak *sp, const struct speak_packet *p)
{
    for (unsigned i = 0; i < p->lost; i++)
        enqueue(sp, NULL, 0, p->samples);
    /* Full: wslay parses every message of what it read at once (a burst after a stall can
     * be many), so a speaker more than a second ahead loses the newest, counted. */
    if (enqueue(sp, p->data, p->len, p->samples) < 0) {
        sp->overflow++;
        return;
    }
    if (sp->is_attached) return;
    sp->is_attached = true;
    sp->src.channels = p->channels;
    log_info("speaker %s (WebSocket) streaming (%d channel%s)", sp->peer, p->channels,
             p->channels > 1 ? "s" : "");
    if (sp->ev.on_attach) sp->ev.on_attach(sp, &sp->src, sp->ev.arg);
}

/* wslay's on_msg_recv: every complete message (control frames are wslay's to answer). */
static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    struct speak *sp = user;
    if (arg->opcode >= WS_OP_CLOSE || sp->state != SPEAK_OPEN) return;
    sp->last_msg_ms = now_ms(sp);
    struct speak_packet p = {0};
    const char *why = NULL;
    int v = speak_rx_check(&sp->rx, arg->opcode == WS_OP_TEXT, arg->msg, arg->msg_length, &p, &why);
    if (v == SPEAK_ACCEPT) {
        accept_packet(sp, &p);
    } else if (v != SPEAK_DROP) {
        log_limited(LOG_WARN, 5, "speaker %s (WebSocket) closed with %d: %s", sp->peer, v, why);
        speak_close(sp, (unsigned)v, why);
    }
}

/* ---- the mixer's side ---- */

static int pull(struct program_source *s, const uint8_t **data, size_t *len, int *samples)
{
    struct speak *sp = list_entry(s, struct speak, src);
    if (sp->is_paused && sp->state == SPEAK_OPEN && sp->qcount < QUEUE_HIGH) pump(sp);
    if (sp->qcount == 0) return 0;
    struct slot *q = &sp->queue[sp->qhead];
    sp->qhead = (sp->qhead + 1) % QUEUE_CAP;
    sp->qcount--;
    sp->qsamples -= (uint64_t)q->samples;
    *data = q->data;
    *len = q->len;
    *samples = q->samples;
    return 1;
}

static uint64_t buffered(struct program_source *s)
{
    struct speak *sp = list_entry(s, struct speak, src);
    return sp->qsamples;
}

static const struct program_source_ops speak_source_ops = {.pull = pull, .buffered = buffered};

/* ---- server -> speaker ---- */

static void send_json(struct speak *sp, cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    if (text && sp->state == SPEAK_OPEN) {
        struct wslay_event_msg m = {WS_OP_TEXT, (const uint8_t *)text, strlen(text)};
        wslay_event_queue_msg(sp->ctx, &m); /* copied */
        want_out(sp);
    }
    free(text);
    cJSON_Delete(o);
}

void speak_send_state(struct speak *sp, const char *state)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "state");
    cJSON_AddStringToObject(o, "state", state);
    send_json(sp, o);
}

void speak_send_muted(struct speak *sp, bool is_muted)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "muted");
    cJSON_AddBoolToObject(o, "muted", is_muted);
    send_json(sp, o);
}

static void send_hello(struct speak *sp, const struct speak_hello *h)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "hello");
    cJSON_AddStringToObject(o, "space", h->space);
    cJSON_AddStringToObject(o, "name", h->name);
    cJSON_AddStringToObject(o, "state", h->state);
    cJSON_AddBoolToObject(o, "muted", h->is_muted);
    send_json(sp, o);
}

/* ---- lifecycle ---- */

static void on_event(struct io *io, uint32_t events)
{
    pump(list_entry(io, struct speak, io));
}

/* Once a second: a speaker silent for its timeout is closed (a dead tab), a close
 * handshake that lingers past SPEAK_LINGER_MS is cut. */
static void on_tick(struct timer *t)
{
    struct speak *sp = list_entry(t, struct speak, tick);
    uint64_t now = now_ms(sp);
    if (sp->is_paused) sp->last_msg_ms = now;
    if (sp->state == SPEAK_OPEN && now - sp->last_msg_ms > sp->timeout_ms) {
        log_warn("speaker %s (WebSocket) timed out", sp->peer);
        speak_close(sp, WS_CLOSE_GOING_AWAY, "no audio for too long: timed out");
    }
    if (sp->state == SPEAK_CLOSING && now - sp->closing_ms > SPEAK_LINGER_MS) finish(sp);
    if (sp->state != SPEAK_DONE) timer_start(sp->loop, &sp->tick, now + TICK_MS);
}

static struct speak *session_new(struct loop *loop, int fd, const struct speak_events *ev,
                                 const char *peer)
{
    static const struct wslay_event_callbacks cb = {
        .recv_callback = on_recv, .send_callback = on_send, .on_msg_recv_callback = on_msg};
    struct speak *sp = calloc(1, sizeof(*sp));
    if (sp) sp->queue = malloc(QUEUE_CAP * sizeof(struct slot));
    if (!sp || !sp->queue || wslay_event_context_server_init(&sp->ctx, &cb, sp) != 0) {
        if (sp) free(sp->queue);
        free(sp);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(sp->ctx, WS_AUDIO_HDR + SPEAK_MAX_PACKET);
    sp->io.fd = fd;
    sp->loop = loop;
    sp->src.ops = &speak_source_ops;
    sp->src.channels = 1;
    if (ev) sp->ev = *ev;
    speak_rx_init(&sp->rx);
    timer_init(&sp->tick, on_tick);
    deferred_init(&sp->dfr);
    snprintf(sp->peer, sizeof(sp->peer), "%s", peer);
    list_push_back(&sessions, &sp->node);
    return sp;
}

struct speak *speak_start(struct loop *loop, int fd, const char accept[29],
                          const struct speak_hello *hello, uint64_t timeout_ms,
                          const struct speak_events *ev, const char *peer)
{
    char head[256];
    size_t hl = ws_response_head(head, sizeof(head), accept);
    struct speak *sp = hl < sizeof(head) ? session_new(loop, fd, ev, peer) : NULL;
    if (!sp) {
        log_error("speaker %s (WebSocket): out of memory", peer);
        close(fd);
        return NULL;
    }
    sp->timeout_ms = timeout_ms;
    sp->last_msg_ms = now_ms(sp);
    ssize_t n = send(fd, head, hl, MSG_NOSIGNAL | MSG_DONTWAIT);
    sp->wants_out = true; /* the hello goes out from the loop */
    uint32_t events = EPOLLIN | EPOLLRDHUP | EPOLLET | EPOLLOUT;
    if (n != (ssize_t)hl || loop_add(loop, &sp->io, events, on_event) < 0) {
        sp->ev = (struct speak_events){0};
        sp->loop = NULL;
        finish(sp);
        session_free(&sp->dfr);
        return NULL;
    }
    timer_start(loop, &sp->tick, now_ms(sp) + TICK_MS);
    log_info("speaker %s (WebSocket) connected", sp->peer);
    send_hello(sp, hello);
    return sp;
}

/* Freed here rather than deferred: the loop may not run again. */
void speak_close_all(void)
{
    while (!list_is_empty(&sessions)) {
        struct speak *sp = list_entry(sessions.next, struct speak, node);
        if (sp->loop) {
            loop_del(sp->loop, &sp->io);
            timer_stop(&sp->tick);
            sp->loop = NULL;
        }
        finish(sp);
        session_free(&sp->dfr);
    }
}

static void on_test_attach(struct speak *sp, struct program_source *src, void *arg) {}

unsigned speak_feed_test(const uint8_t *data, size_t len, size_t step, struct speak_rx *rx)
{
    static const struct speak_events ev = {.on_attach = on_test_attach};
    struct speak *sp = session_new(NULL, -1, &ev, "test");
    if (!sp) return 0;
    sp->mem = data;
    sp->mem_len = len;
    sp->mem_step = step ? step : 1;
    sp->timeout_ms = UINT64_MAX;
    for (size_t i = 0; i <= len + 2 && sp->state != SPEAK_DONE; i++) {
        bool is_last = sp->mem_len == 0;
        pump(sp);
        const uint8_t *p;
        size_t plen;
        int samples;
        while (pull(&sp->src, &p, &plen, &samples) == 1)
            if (plen > SPEAK_MAX_PACKET || samples <= 0) abort();
        if (is_last) break;
    }
    unsigned code =
        wslay_event_get_close_sent(sp->ctx) ? wslay_event_get_status_code_sent(sp->ctx) : 0;
    if (rx) *rx = sp->rx;
    finish(sp);
    session_free(&sp->dfr);
    return code;
}
