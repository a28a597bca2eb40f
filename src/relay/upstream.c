/* One space's pull from the origin: a non-blocking WebSocket client of
 * GET /spaces/{id}/ws, whose audio messages (http/ws.h: sequence, granule,
 * one Opus packet) are queued for the space's mixer to pull.
 *
 *   IDLE --timer--> CONNECTING --writable: request--> HEAD --101--> FRAMES
 *     ^                                                  |            |
 *     +------ error, close, silence: backoff ------------+------------+
 *   HEAD answered 404 or 410: the space is gone at the origin; it ends here.
 *
 * The queue holds whole packets (at most RELAY_QUEUE_PACKETS: the oldest go
 * when it is full); a sequence gap of a few packets is queued as empty packets,
 * which the mixer conceals (Opus PLC). Thread: the master's loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <opus/opus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/log.h"
#include "http/ws.h"
#include "media/program.h"
#include "relay/relay.h"

enum { PKT_MAX = 1275, IN_CAP = 16384, GAP_MAX = 10 };
enum up_state { UP_IDLE, UP_CONNECTING, UP_HEAD, UP_FRAMES, UP_GONE };

struct pkt {
    uint16_t len;
    uint16_t samples;
    uint8_t data[PKT_MAX];
};

struct upstream {
    struct program_source src; /* first: the mixer pulls it */
    struct relay *r;
    struct space *s;
    enum up_state state;
    struct io io;        /* fd -1 when IDLE or GONE */
    struct timer timer;  /* IDLE: reconnect; otherwise: the silence watchdog */
    uint64_t last_rx_ms; /* last bytes from the origin */
    unsigned backoff_ms;
    char req[512];
    size_t req_len, req_off;
    uint8_t in[IN_CAP];
    size_t in_len;
    uint32_t last_seq;
    bool has_seq;
    struct pkt q[RELAY_QUEUE_PACKETS];
    unsigned head, count;
    uint64_t queued_samples;
    struct pkt cur; /* the packet handed to the last pull */
};

int upstream_frame_parse(const uint8_t *buf, size_t len, size_t max, unsigned *opcode,
                         size_t *hdr_len, size_t *payload_len)
{
    if (len < 2) return 0;
    if (buf[1] & 0x80) return -1; /* a server never masks */
    uint64_t n = buf[1] & 0x7f;
    size_t h = 2;
    if (n == 126) {
        if (len < 4) return 0;
        n = (uint64_t)buf[2] << 8 | buf[3];
        h = 4;
    } else if (n == 127) {
        if (len < 10) return 0;
        n = 0;
        for (int i = 2; i < 10; i++)
            n = n << 8 | buf[i];
        h = 10;
    }
    if (n > max) return -1;
    *opcode = buf[0] & 0x0f;
    *hdr_len = h;
    *payload_len = (size_t)n;
    return 1;
}

static void push(struct upstream *u, const uint8_t *data, size_t len, int samples)
{
    if (u->count == RELAY_QUEUE_PACKETS) { /* full: the oldest goes */
        u->queued_samples -= u->q[u->head].samples;
        u->head = (u->head + 1) % RELAY_QUEUE_PACKETS;
        u->count--;
    }
    struct pkt *p = &u->q[(u->head + u->count) % RELAY_QUEUE_PACKETS];
    p->len = (uint16_t)len;
    p->samples = (uint16_t)samples;
    if (len) memcpy(p->data, data, len);
    u->count++;
    u->queued_samples += (uint64_t)samples;
}

static int on_pull(struct program_source *src, const uint8_t **data, size_t *len, int *samples)
{
    struct upstream *u = (struct upstream *)src;
    if (u->count == 0) return 0;
    u->cur = u->q[u->head];
    u->head = (u->head + 1) % RELAY_QUEUE_PACKETS;
    u->count--;
    u->queued_samples -= u->cur.samples;
    *data = u->cur.data;
    *len = u->cur.len;
    *samples = u->cur.samples;
    return 1;
}

static uint64_t on_buffered(struct program_source *src)
{
    return ((struct upstream *)src)->queued_samples;
}

static const struct program_source_ops upstream_ops = {
    .pull = on_pull, .on_drained = NULL, .buffered = on_buffered};

static void on_io(struct io *io, uint32_t events);
static void on_timer(struct timer *t);

/* Closes the connection (if any) and retries after a jittered backoff. */
static void retry(struct upstream *u, const char *why)
{
    if (u->io.fd >= 0) {
        loop_del(u->r->loop, &u->io);
        close(u->io.fd);
        u->io.fd = -1;
    }
    if (u->state == UP_GONE) return;
    if (u->state == UP_FRAMES)
        log_warn("space %s: lost the origin (%s); listeners hear silence meanwhile", u->s->rec.id,
                 why);
    else
        log_limited(LOG_WARN, 10, "space %s: cannot pull from the origin (%s)", u->s->rec.id, why);
    u->state = UP_IDLE;
    unsigned wait = u->backoff_ms / 2 + (unsigned)random() % (u->backoff_ms / 2 + 1);
    u->backoff_ms =
        u->backoff_ms * 2 > RELAY_BACKOFF_MAX_MS ? RELAY_BACKOFF_MAX_MS : u->backoff_ms * 2;
    timer_start(u->r->loop, &u->timer, loop_now_ms(u->r->loop) + wait);
}

static void connect_origin(struct upstream *u)
{
    struct relay *r = u->r;
    int fd = socket(r->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        retry(u, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&r->addr, r->addrlen) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        retry(u, strerror(e));
        return;
    }
    u->io.fd = fd;
    u->state = UP_CONNECTING;
    u->in_len = 0;
    u->req_off = 0;
    u->has_seq = false;
    u->last_rx_ms = loop_now_ms(r->loop);
    if (loop_add(r->loop, &u->io, EPOLLIN | EPOLLOUT, on_io) < 0) {
        close(fd);
        u->io.fd = -1;
        retry(u, "epoll");
        return;
    }
    timer_start(r->loop, &u->timer, loop_now_ms(r->loop) + 1000);
}

/* The origin's answer to the handshake: 101 goes on; 404 and 410 mean the space is gone. */
static int read_head(struct upstream *u)
{
    u->in[u->in_len < IN_CAP ? u->in_len : IN_CAP - 1] = '\0';
    char *end = strstr((char *)u->in, "\r\n\r\n");
    if (!end) return u->in_len >= IN_CAP - 1 ? -1 : 0;
    int status = 0;
    if (sscanf((char *)u->in, "HTTP/1.%*d %d", &status) != 1) return -1;
    if (status == 404 || status == 410) {
        log_info("space %s: the origin answers %d: the space ends here", u->s->rec.id, status);
        u->state = UP_GONE;
        return -1;
    }
    if (status != 101) return -1;
    size_t used = (size_t)(end + 4 - (char *)u->in);
    memmove(u->in, u->in + used, u->in_len - used);
    u->in_len -= used;
    u->state = UP_FRAMES;
    u->backoff_ms = RELAY_BACKOFF_MIN_MS;
    log_info("space %s: pulling from the origin", u->s->rec.id);
    return 1;
}

static void on_audio(struct upstream *u, const uint8_t *msg, size_t len)
{
    uint32_t seq;
    uint64_t ts;
    int h = ws_audio_parse(msg, len, &seq, &ts);
    if (h < 0) return;
    const uint8_t *pkt = msg + h;
    size_t plen = len - (size_t)h;
    if (plen == 0 || plen > PKT_MAX) return;
    int samples = opus_packet_get_nb_samples(pkt, (opus_int32)plen, 48000);
    if (samples <= 0) return;
    uint32_t gap = u->has_seq ? seq - u->last_seq - 1 : 0;
    if (gap > 0 && gap <= GAP_MAX)
        for (uint32_t i = 0; i < gap; i++)
            push(u, NULL, 0, samples); /* concealed by the mixer */
    u->last_seq = seq;
    u->has_seq = true;
    push(u, pkt, plen, samples);
}

/* Consumes the whole frames in `in`. 0, or -1 to reconnect. */
static int read_frames(struct upstream *u)
{
    size_t off = 0;
    for (;;) {
        unsigned op;
        size_t h, n;
        int rc = upstream_frame_parse(u->in + off, u->in_len - off, IN_CAP - 16, &op, &h, &n);
        if (rc < 0) return -1;
        if (rc == 0 || u->in_len - off < h + n) break;
        if (op == 0x8) return -1; /* close: the origin is going away */
        if (op == 0x2) on_audio(u, u->in + off + h, n);
        off += h + n;
    }
    memmove(u->in, u->in + off, u->in_len - off);
    u->in_len -= off;
    return 0;
}

static void on_readable(struct upstream *u)
{
    for (int i = 0; i < 16; i++) { /* capped per wake-up */
        ssize_t n = read(u->io.fd, u->in + u->in_len, IN_CAP - 1 - u->in_len);
        if (n == 0) {
            retry(u, "closed by the origin");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            retry(u, strerror(errno));
            return;
        }
        u->in_len += (size_t)n;
        u->last_rx_ms = loop_now_ms(u->r->loop);
        if (u->state == UP_HEAD) {
            int rc = read_head(u);
            if (rc < 0) {
                retry(u, "refused by the origin");
                if (u->state == UP_GONE) space_end(u->s);
                return;
            }
            if (rc == 0) continue;
        }
        if (u->state == UP_FRAMES && read_frames(u) < 0) {
            retry(u, "closed by the origin");
            return;
        }
    }
}

static void on_writable(struct upstream *u)
{
    while (u->req_off < u->req_len) {
        ssize_t n = write(u->io.fd, u->req + u->req_off, u->req_len - u->req_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            retry(u, strerror(errno));
            return;
        }
        u->req_off += (size_t)n;
    }
    u->state = UP_HEAD;
    loop_mod(u->r->loop, &u->io, EPOLLIN);
}

static void on_io(struct io *io, uint32_t events)
{
    struct upstream *u = list_entry(io, struct upstream, io);
    if (u->state == UP_CONNECTING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            retry(u, strerror(err));
            return;
        }
        on_writable(u);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(u);
}

static void on_timer(struct timer *t)
{
    struct upstream *u = list_entry(t, struct upstream, timer);
    uint64_t now = loop_now_ms(u->r->loop);
    if (u->state == UP_IDLE) {
        connect_origin(u);
        return;
    }
    if (u->state == UP_GONE) return;
    if (now - u->last_rx_ms > RELAY_SILENT_MS) {
        retry(u, "silent");
        return;
    }
    timer_start(u->r->loop, t, now + 1000);
}

struct program_source *upstream_new(struct relay *r, struct space *s)
{
    struct upstream *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    u->src.ops = &upstream_ops;
    u->src.channels = r->cfg->program_channels == 2 ? 2 : 1;
    u->r = r;
    u->s = s;
    u->io.fd = -1;
    u->backoff_ms = RELAY_BACKOFF_MIN_MS;
    timer_init(&u->timer, on_timer);
    int n = snprintf(u->req, sizeof(u->req),
                     "GET /spaces/%s/ws HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dHJpYnVuZSBlZGdlIDEyMw==\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "User-Agent: tribune-relay\r\n"
                     "X-Tribune-Edge: %s\r\n\r\n",
                     s->rec.id, r->host, r->edge_id);
    u->req_len = n > 0 && (size_t)n < sizeof(u->req) ? (size_t)n : 0;
    u->state = UP_IDLE;
    connect_origin(u);
    return &u->src;
}

void upstream_free(struct program_source *src)
{
    if (!src) return;
    struct upstream *u = (struct upstream *)src;
    u->state = UP_GONE;
    retry(u, "stopping");
    timer_stop(&u->timer);
    free(u);
}

bool upstream_is_open(const struct program_source *src)
{
    return src && ((const struct upstream *)src)->state == UP_FRAMES;
}
