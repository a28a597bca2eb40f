#include "media/ingest.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "media/ogg_in.h"
#include "media/program.h"
#include "metrics/refusals.h"

/* Packets buffered between the socket and the program: about 5 s of 20 ms
 * frames at most; reading stops at QUEUE_HIGH (3 s ahead), which leaves TCP
 * flow control to pace a publisher that sends faster than real time. The
 * queue must hold more than one Ogg page of the largest kind encoders write
 * (ffmpeg flushes a page per second), so that a real-time publisher's bytes
 * never wait in the kernel: a client that closes with our response unread
 * resets the connection, and the kernel then discards what we had not read. */
enum { QUEUE_CAP = 256, QUEUE_HIGH = 150, READ_CHUNK = 16384, LINGER_MS = 2000 };

struct queued_packet {
    uint8_t *data;
    size_t len;
    int samples;
};

/* STREAMING: reading. DRAINING: the publisher ended its stream (EOF); the
 * socket is closed and the queued packets still play out, so the last second
 * is not lost. LINGERING: rejected, draining input so the client reads why. */
enum publisher_state { PUB_STREAMING, PUB_DRAINING, PUB_LINGERING, PUB_CLOSED };

struct publisher {
    struct io io;
    struct loop *loop;
    struct program_source src;
    struct program *prog;
    struct ogg_in *in;
    struct publisher_events ev;
    struct queued_packet queue[QUEUE_CAP];
    size_t qhead, qcount;
    uint64_t qsamples; /* audio in the queue */
    uint8_t *current;  /* the packet last handed to the program */
    enum publisher_state state;
    bool is_attached, is_paused, has_eof;
    bool is_expect_continue, is_legacy;
    uint64_t last_data_ms, timeout_ms, bytes;
    struct deferred dfr;
    char peer[64];
};

static void on_publisher_event(struct io *io, uint32_t events);
static void publisher_read(struct publisher *pub);

static void publisher_free(struct deferred *d)
{
    struct publisher *pub = list_entry(d, struct publisher, dfr);
    for (size_t i = 0; i < pub->qcount; i++)
        free(pub->queue[(pub->qhead + i) % QUEUE_CAP].data);
    free(pub->current);
    ogg_in_free(pub->in);
    free(pub);
}

/* The program (or mixer) stops reading the publisher. */
static void detach(struct publisher *pub)
{
    if (!pub->is_attached) return;
    pub->is_attached = false;
    if (pub->ev.on_attach)
        pub->ev.on_attach(pub, NULL, pub->ev.arg);
    else
        program_attach(pub->prog, NULL);
}

int publisher_channels(const struct publisher *pub)
{
    return pub->is_attached ? pub->src.channels : 0;
}

void publisher_close(struct publisher *pub)
{
    if (pub->state == PUB_CLOSED) return;
    bool was_streaming = pub->state == PUB_STREAMING;
    pub->state = PUB_CLOSED;
    if (pub->io.fd >= 0) {
        loop_del(pub->loop, &pub->io);
        close(pub->io.fd);
        pub->io.fd = -1;
    }
    detach(pub);
    if (was_streaming)
        log_info("publisher %s gone after %llu bytes", pub->peer, (unsigned long long)pub->bytes);
    loop_defer(pub->loop, &pub->dfr, publisher_free);
    if (pub->ev.on_gone) pub->ev.on_gone(pub, pub->ev.arg);
}

static void send_text(struct publisher *pub, const char *s)
{
    ssize_t n = send(pub->io.fd, s, strlen(s), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
}

/* Ends a stream found invalid: a 415 (or 400) with the reason, then drain
 * input for a moment so that the client can read it. */
static void publisher_reject(struct publisher *pub, int err)
{
    const char *why = ogg_in_error(pub->in);
    int status = (err == -EPROTONOSUPPORT || err == -EMEDIUMTYPE) ? 415 : 400;
    log_limited(LOG_WARN, 5, "publisher %s rejected: %s", pub->peer, why ? why : strerror(-err));
    refuse(REFUSE_BAD_STREAM);
    if (!ogg_in_is_ready(pub->in)) {
        char resp[512];
        char body[300];
        int bl = snprintf(body, sizeof(body), "%s\n", why ? why : "invalid stream");
        snprintf(resp, sizeof(resp),
                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                 "Connection: close\r\n\r\n%s",
                 status, status == 415 ? "Unsupported Media Type" : "Bad Request", bl, body);
        send_text(pub, resp);
    }
    detach(pub);
    shutdown(pub->io.fd, SHUT_WR);
    pub->state = PUB_LINGERING;
    pub->last_data_ms = loop_now_ms(pub->loop);
    pub->timeout_ms = LINGER_MS;
}

/* Moves validated packets from ogg_in into the queue. 0 or negative errno. */
static int fill_queue(struct publisher *pub)
{
    while (pub->qcount < QUEUE_CAP) {
        struct ogg_in_packet pkt;
        int r = ogg_in_next(pub->in, &pkt);
        if (r <= 0) return r;
        uint8_t *copy = malloc(pkt.len);
        if (!copy) return -ENOMEM;
        memcpy(copy, pkt.data, pkt.len);
        struct queued_packet *q = &pub->queue[(pub->qhead + pub->qcount) % QUEUE_CAP];
        *q = (struct queued_packet){copy, pkt.len, pkt.samples};
        pub->qcount++;
        pub->qsamples += (uint64_t)pkt.samples;
    }
    return 0;
}

static void attach_when_ready(struct publisher *pub)
{
    if (pub->is_attached || !ogg_in_is_ready(pub->in)) return;
    const struct opus_head *h = ogg_in_head(pub->in);
    pub->src.channels = h ? h->channels : 1;
    if (!pub->is_expect_continue && !pub->is_legacy) send_text(pub, "HTTP/1.1 200 OK\r\n\r\n");
    pub->is_attached = true;
    if (pub->ev.on_attach)
        pub->ev.on_attach(pub, &pub->src, pub->ev.arg);
    else
        program_attach(pub->prog, &pub->src);
    log_info("publisher %s streaming (%d channel%s)", pub->peer, pub->src.channels,
             pub->src.channels > 1 ? "s" : "");
}

static int ingest_bytes(struct publisher *pub, const void *buf, size_t len)
{
    pub->bytes += len;
    pub->last_data_ms = loop_now_ms(pub->loop);
    int err = ogg_in_feed(pub->in, buf, len);
    if (err == 0) err = fill_queue(pub);
    if (err < 0) {
        publisher_reject(pub, err);
        return err;
    }
    attach_when_ready(pub);
    return 0;
}

/* The stream ended: play out what is queued, then go. */
static void publisher_eof(struct publisher *pub)
{
    if (!pub->is_attached || pub->qcount == 0) {
        publisher_close(pub);
        return;
    }
    log_info("publisher %s ended after %llu bytes; playing out %zu queued packets", pub->peer,
             (unsigned long long)pub->bytes, pub->qcount);
    pub->state = PUB_DRAINING;
    pub->is_paused = false;
    pub->last_data_ms = loop_now_ms(pub->loop);
    loop_del(pub->loop, &pub->io);
    close(pub->io.fd);
    pub->io.fd = -1;
}

int publisher_is_draining(const struct publisher *pub)
{
    return pub->state == PUB_DRAINING;
}

/* Reads while the queue is short; otherwise leaves the bytes in the socket so
 * that TCP flow control paces the publisher. */
static void publisher_read(struct publisher *pub)
{
    uint8_t buf[READ_CHUNK];
    while (pub->state == PUB_STREAMING && pub->qcount < QUEUE_HIGH) {
        ssize_t n = recv(pub->io.fd, buf, sizeof(buf), 0);
        /* End of stream or a reset: what was validated still plays out. */
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            publisher_eof(pub);
            return;
        }
        if (n < 0) {
            pub->is_paused = false;
            return;
        }
        if (ingest_bytes(pub, buf, (size_t)n) < 0) return;
    }
    pub->is_paused = pub->state == PUB_STREAMING;
}

static int pull(struct program_source *s, const uint8_t **data, size_t *len, int *samples)
{
    struct publisher *pub = list_entry(s, struct publisher, src);
    free(pub->current);
    pub->current = NULL;
    if (pub->qcount < QUEUE_HIGH && pub->state == PUB_DRAINING) fill_queue(pub);
    if (pub->qcount < QUEUE_HIGH && pub->state == PUB_STREAMING) {
        if (fill_queue(pub) < 0) return 0;
        if (pub->is_paused) publisher_read(pub);
    }
    if (pub->qcount == 0) return 0;
    struct queued_packet *q = &pub->queue[pub->qhead];
    pub->qhead = (pub->qhead + 1) % QUEUE_CAP;
    pub->qcount--;
    pub->qsamples -= (uint64_t)q->samples;
    pub->current = q->data;
    *data = q->data;
    *len = q->len;
    *samples = q->samples;
    return 1;
}

/* The program found the queue empty: a drained publisher is done. */
static void on_drained(struct program_source *s)
{
    struct publisher *pub = list_entry(s, struct publisher, src);
    if (pub->state == PUB_DRAINING) publisher_close(pub);
}

static uint64_t buffered(struct program_source *s)
{
    struct publisher *pub = list_entry(s, struct publisher, src);
    if (pub->state == PUB_DRAINING) return UINT64_MAX; /* no more is coming: play it out */
    if (pub->state == PUB_STREAMING && pub->qcount < QUEUE_HIGH) fill_queue(pub);
    return pub->qsamples;
}

static const struct program_source_ops publisher_source_ops = {
    .pull = pull, .on_drained = on_drained, .buffered = buffered};

static void drain_lingering(struct publisher *pub)
{
    uint8_t buf[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(pub->io.fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            publisher_close(pub);
            return;
        }
        if (n < 0) return;
    }
}

static void on_publisher_event(struct io *io, uint32_t events)
{
    struct publisher *pub = list_entry(io, struct publisher, io);
    if (pub->state == PUB_LINGERING) {
        drain_lingering(pub);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) publisher_read(pub);
}

struct publisher *publisher_start(struct loop *loop, int fd, struct program *prog, const void *rest,
                                  size_t rest_len, int is_expect_continue, int is_legacy_source,
                                  uint64_t timeout_ms, const struct publisher_events *ev,
                                  const char *peer)
{
    struct publisher *pub = calloc(1, sizeof(*pub));
    if (pub) pub->in = ogg_in_new();
    if (!pub || !pub->in) {
        free(pub);
        close(fd);
        return NULL;
    }
    pub->io.fd = fd;
    pub->loop = loop;
    pub->prog = prog;
    pub->src.ops = &publisher_source_ops;
    pub->ev = *ev;
    pub->timeout_ms = timeout_ms;
    pub->is_expect_continue = is_expect_continue;
    pub->is_legacy = is_legacy_source;
    pub->last_data_ms = loop_now_ms(loop);
    deferred_init(&pub->dfr);
    snprintf(pub->peer, sizeof(pub->peer), "%s", peer);
    if (loop_add(loop, &pub->io, EPOLLIN | EPOLLRDHUP | EPOLLET, on_publisher_event) < 0) {
        publisher_free(&pub->dfr);
        close(fd);
        return NULL;
    }
    if (is_expect_continue)
        send_text(pub, "HTTP/1.1 100 Continue\r\n\r\n");
    else if (is_legacy_source)
        send_text(pub, "HTTP/1.0 200 OK\r\n\r\n");
    log_info("publisher %s connected", pub->peer);
    /* Bytes still in the socket are read from the loop: registering an
     * already-readable socket reports it at once, and no callback runs before
     * the caller has stored the publisher. */
    if (rest_len) ingest_bytes(pub, rest, rest_len);
    return pub;
}

void publisher_sweep(struct publisher *pub)
{
    if (pub->state == PUB_CLOSED) return;
    uint64_t now = loop_now_ms(pub->loop);
    /* A publisher we stopped reading (it is ahead of real time) is healthy. */
    if (pub->is_paused) pub->last_data_ms = now;
    if (now - pub->last_data_ms <= pub->timeout_ms) return;
    if (pub->state == PUB_STREAMING) log_warn("publisher %s timed out", pub->peer);
    publisher_close(pub);
}
