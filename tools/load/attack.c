/* Attack modes: the rules; see attack.h. The flood client is flood_ops below. */
#include "attack.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "http_resp.h"
#include "report.h"

#define LEN(s) (sizeof(s) - 1)
#define STR2(x) #x
#define STR(x) STR2(x)
#define FLOOD_SRC_LAST 0x7ffffffeu /* 127.255.255.254 */

static const char *const mode_names[FLOOD_MODES] = {
    [FLOOD_HOLD] = "hold",         [FLOOD_RESET] = "reset",         [FLOOD_JUNK] = "junk",
    [FLOOD_OVERSIZE] = "oversize", [FLOOD_SLOW_BODY] = "slow-body",
};

/* hold with a trickle (slowloris): a head whose last field never ends */
static const char trickle_head[] = "GET / HTTP/1.1\r\nHost: tribune-load\r\nX-Flood: ";
/* oversize, even connections: "GET /aaa...a HTTP/1.1" with a 64 KiB target */
static const char line_pre[] = "GET /";
static const char line_post[] = " HTTP/1.1\r\nHost: tribune-load\r\n\r\n";
/* oversize, odd connections: ATTACK_OVERSIZE_FIELDS fields "X-Field-NNN: x" */
static const char fields_pre[] = "GET / HTTP/1.1\r\nHost: tribune-load\r\n";
static const char field_tpl[] = "X-Field-000: x\r\n";
#define FIELD_DIGIT 8 /* where NNN starts in field_tpl */
/* slow-body: the head at once, then the body byte by byte */
static const char slow_head[] = "POST /api/spaces HTTP/1.1\r\nHost: tribune-load\r\n"
                                "Content-Type: application/json\r\n"
                                "Content-Length: " STR(ATTACK_SLOW_BODY_LEN) "\r\n\r\n";
static const char slow_body[] = "{\"title\": \"";

bool attack_is_stopper(const struct load_opts *o, uint32_t index)
{
    uint32_t k = o->attack.stop_reading;

    return k > 0 && index >= o->listeners - k;
}

int attack_tune_stopper(int fd)
{
    int rcvbuf = ATTACK_STOPPER_RCVBUF, maxseg = ATTACK_STOPPER_MAXSEG;

    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0) return -errno;
    if (setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &maxseg, sizeof(maxseg)) < 0) return -errno;
    return 0;
}

bool attack_should_stop(const struct load_opts *o, int64_t first_audio_us, int64_t now_us)
{
    return first_audio_us > 0 && now_us >= first_audio_us + (int64_t)o->attack.stop_after_ms * 1000;
}

/* The listeners use 127.0.0.1 + [0, src_addrs); the flood starts on the next
 * /24 boundary above them (127.0.1.1 for up to 255 listener addresses). */
static uint32_t flood_base(const struct load_opts *o)
{
    return 0x7f000001u + (o->src_addrs + 255) / 256 * 256;
}

uint32_t attack_flood_addrs(const struct load_opts *o)
{
    uint32_t addrs = (o->attack.flood + ATTACK_FLOOD_PER_SRC - 1) / ATTACK_FLOOD_PER_SRC;

    if (o->attack.flood_addrs > 0) return o->attack.flood_addrs;
    return addrs > 0 ? addrs : 1;
}

uint32_t attack_flood_source(const struct load_opts *o, uint32_t k)
{
    return flood_base(o) + k % attack_flood_addrs(o);
}

/* The flood's options against each other (attack_check's second half). */
static int check_flood(const struct load_opts *o)
{
    const struct load_attack *a = &o->attack;
    bool is_trickled = a->flood_mode == FLOOD_HOLD || a->flood_mode == FLOOD_SLOW_BODY;

    if (a->flood == 0 && (a->flood_mode != FLOOD_HOLD || a->flood_addrs > 0)) {
        fprintf(stderr, "tribune-load: --flood-mode and --flood-addrs need --flood\n");
        return -EINVAL;
    }
    if (a->flood_trickle_ms > 0 && !is_trickled) {
        fprintf(stderr, "tribune-load: --flood-trickle goes with --flood-mode hold or slow-body\n");
        return -EINVAL;
    }
    if (a->flood_mode == FLOOD_SLOW_BODY && a->flood_trickle_ms == 0) {
        fprintf(stderr, "tribune-load: --flood-mode slow-body needs --flood-trickle\n");
        return -EINVAL;
    }
    if (a->flood > 0 && flood_base(o) + attack_flood_addrs(o) - 1 > FLOOD_SRC_LAST) {
        fprintf(stderr, "tribune-load: %u flood addresses do not fit in 127.0.0.0/8\n",
                attack_flood_addrs(o));
        return -EINVAL;
    }
    return 0;
}

int attack_check(const struct load_opts *o)
{
    const struct load_attack *a = &o->attack;

    if (a->stop_reading > o->listeners) {
        fprintf(stderr, "tribune-load: --stop-reading %u exceeds the %u listeners\n",
                a->stop_reading, o->listeners);
        return -EINVAL;
    }
    if (a->flood > 0 && a->flood_rate <= 0) {
        fprintf(stderr, "tribune-load: --flood needs --flood-rate\n");
        return -EINVAL;
    }
    if (a->flood > 0 && a->flood_start_ms >= o->duration_s * 1000u) {
        fprintf(stderr, "tribune-load: --flood-start is not before the end of the run\n");
        return -EINVAL;
    }
    return check_flood(o);
}

const char *attack_flood_mode_name(uint32_t mode)
{
    return mode < FLOOD_MODES ? mode_names[mode] : "?";
}

int attack_flood_mode_parse(const char *s)
{
    for (int m = 0; m < FLOOD_MODES; m++)
        if (strcmp(s, mode_names[m]) == 0) return m;
    return -EINVAL;
}

/* ---- what flood connections send -----------------------------------------
 * Bytes are computed from their offset, so nothing per connection is stored
 * but a seed and counts, and a partial send() simply resumes. */

static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

void attack_flood_req(uint32_t mode, bool is_trickle, uint32_t k, struct flood_req *r)
{
    *r = (struct flood_req){.mode = (uint8_t)mode, .seed = mix32(k + 1), .kind = k % 2};
    switch (mode) {
    case FLOOD_HOLD:
        r->trickle_len = is_trickle ? ATTACK_ENDLESS : 0;
        break;
    case FLOOD_JUNK:
        r->len = ATTACK_JUNK_MIN + mix32(r->seed) % (ATTACK_JUNK_MAX - ATTACK_JUNK_MIN + 1);
        break;
    case FLOOD_OVERSIZE:
        r->len = r->kind == 0 ? LEN(line_pre) + ATTACK_OVERSIZE_URL + LEN(line_post)
                              : LEN(fields_pre) + ATTACK_OVERSIZE_FIELDS * LEN(field_tpl) + 2;
        break;
    case FLOOD_SLOW_BODY:
        r->len = LEN(slow_head);
        r->trickle_len = ATTACK_SLOW_BODY_LEN;
        break;
    default: /* FLOOD_RESET: nothing */
        break;
    }
}

static uint8_t line_byte(uint32_t off)
{
    if (off < LEN(line_pre)) return (uint8_t)line_pre[off];
    off -= LEN(line_pre);
    return off < ATTACK_OVERSIZE_URL ? 'a' : (uint8_t)line_post[off - ATTACK_OVERSIZE_URL];
}

static uint8_t fields_byte(uint32_t off)
{
    uint32_t i, pos;

    if (off < LEN(fields_pre)) return (uint8_t)fields_pre[off];
    off -= LEN(fields_pre);
    i = off / LEN(field_tpl);
    pos = off % LEN(field_tpl);
    if (i >= ATTACK_OVERSIZE_FIELDS) return pos == 0 ? '\r' : '\n';
    if (pos == FIELD_DIGIT) return (uint8_t)('0' + i / 100 % 10);
    if (pos == FIELD_DIGIT + 1) return (uint8_t)('0' + i / 10 % 10);
    if (pos == FIELD_DIGIT + 2) return (uint8_t)('0' + i % 10);
    return (uint8_t)field_tpl[pos];
}

static uint8_t bulk_byte(const struct flood_req *r, uint32_t off)
{
    switch (r->mode) {
    case FLOOD_JUNK:
        return (uint8_t)mix32(r->seed + off * 0x9e3779b9u);
    case FLOOD_OVERSIZE:
        return r->kind == 0 ? line_byte(off) : fields_byte(off);
    case FLOOD_SLOW_BODY:
        return (uint8_t)slow_head[off];
    default:
        return 0;
    }
}

size_t attack_flood_fill(const struct flood_req *r, uint32_t off, uint8_t *buf, size_t cap)
{
    size_t n = off < r->len ? r->len - off : 0;

    if (n > cap) n = cap;
    for (size_t i = 0; i < n; i++)
        buf[i] = bulk_byte(r, off + (uint32_t)i);
    return n;
}

uint8_t attack_trickle_byte(const struct flood_req *r, uint32_t i)
{
    if (r->mode == FLOOD_SLOW_BODY) return i < LEN(slow_body) ? (uint8_t)slow_body[i] : 'a';
    return i < LEN(trickle_head) ? (uint8_t)trickle_head[i] : 'a';
}

/* ---- the flood client ----------------------------------------------------
 * Connects, sends its request's bulk as fast as the socket takes it, then
 * trickles the rest one byte per trickle interval; reads whatever the server
 * sends and parses it as a response head; stays until the server closes the
 * connection or the run ends. In reset mode it asks the driver to reset the
 * connection as soon as it is up. */

struct flood {
    struct flood_req req;
    struct http_head head; /* the server's answer */
    int64_t next_byte_us;  /* trickle: when the next byte is due, 0 before the first */
    uint32_t sent;         /* bulk bytes sent */
    uint32_t trickled;     /* trickle bytes sent */
    bool is_answered;      /* the server sent bytes */
    bool is_bad_answer;    /* ... that are not a response head */
};

_Static_assert(sizeof(struct flood) <= LOAD_CONN_PRIV, "struct flood must fit in priv");

static uint32_t flood_mode;
static int64_t trickle_us; /* 0: no trickle */

void flood_configure(const struct load_opts *o)
{
    flood_mode = o->attack.flood_mode;
    trickle_us = (int64_t)o->attack.flood_trickle_ms * 1000;
}

static int flood_render(const struct load_target *t, char *buf, size_t cap)
{
    (void)t;
    if (cap > 0) buf[0] = '\0';
    return 0; /* each flood connection writes its own bytes (flood_writable) */
}

static void flood_open(struct load_conn *c)
{
    struct flood *f = (struct flood *)c->priv;

    *f = (struct flood){0};
    attack_flood_req(flood_mode, trickle_us > 0, c->index, &f->req);
    http_head_init(&f->head);
}

/* The bulk, until EAGAIN or its end. A send error ends the sending, not the
 * connection: the server may have answered before closing, and reading
 * tells. */
static int flood_writable(struct load_conn *c, int64_t now_us, bool *is_done)
{
    static uint8_t buf[16384];
    struct flood *f = (struct flood *)c->priv;

    (void)now_us;
    if (f->req.mode == FLOOD_RESET) return CLOSE_ABORT;
    while (f->sent < f->req.len) {
        size_t n = attack_flood_fill(&f->req, f->sent, buf, sizeof(buf));
        ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return CLOSE_NONE;
        if (w < 0) break;
        f->sent += (uint32_t)w;
    }
    *is_done = true;
    return CLOSE_NONE;
}

/* The answer's head gives the status; the rest is read and ignored. */
static int flood_data(struct load_conn *c, uint8_t *buf, size_t len, int64_t now_us)
{
    struct flood *f = (struct flood *)c->priv;
    ssize_t n;

    (void)now_us;
    if (len > 0) f->is_answered = true;
    if (c->status != 0 || f->is_bad_answer) return CLOSE_NONE;
    n = http_head_parse(&f->head, buf, len);
    if (n == -1) f->is_bad_answer = true;
    if (n >= 0) c->status = f->head.status;
    return CLOSE_NONE;
}

/* The trickle: one byte per interval, on the connection's own clock. */
static void flood_tick(struct load_conn *c, int64_t now_us)
{
    struct flood *f = (struct flood *)c->priv;
    uint8_t byte;

    if (trickle_us == 0 || c->fd < 0 || f->trickled >= f->req.trickle_len) return;
    if (f->next_byte_us == 0) f->next_byte_us = now_us;
    if (now_us < f->next_byte_us) return;
    f->next_byte_us = now_us + trickle_us;
    byte = attack_trickle_byte(&f->req, f->trickled);
    if (send(c->fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) f->trickled++;
}

/* The connection's state, as the flood has always been counted. */
static void tally_state(const struct load_conn *c, struct load_counts *k)
{
    switch (c->state) {
    case CONN_CONNECTING:
        k->flood_connecting++;
        break;
    case CONN_SENDING:
    case CONN_READING:
        k->flood_open++;
        break;
    case CONN_CLOSED:
        if (c->reason == CLOSE_CONNECT)
            k->flood_failed_connect++;
        else if (c->reason != CLOSE_ABORT)
            k->flood_closed_by_server++;
        break;
    default:
        break;
    }
}

/* What the server did with it: exactly one outcome per connection (the
 * connecting and the failed to connect are counted by tally_state). */
static void tally_outcome(const struct load_conn *c, const struct flood *f, struct load_counts *k)
{
    bool is_closed = c->state == CONN_CLOSED;

    if (c->state == CONN_CONNECTING || (is_closed && c->reason == CLOSE_CONNECT)) return;
    if (c->status != 0)
        report_code_add(k, c->status, 1);
    else if (f->is_bad_answer || (f->is_answered && is_closed))
        k->flood_bad_answer++;
    else if (!is_closed)
        k->flood_waiting++;
    else if (c->reason == CLOSE_ABORT)
        k->flood_reset_sent++;
    else if (c->reason == CLOSE_RESET)
        k->flood_reset_by_server++;
    else
        k->flood_silent++;
}

static void flood_tally(const struct load_conn *c, struct load_counts *k, int64_t now_us)
{
    const struct flood *f = (const struct flood *)c->priv;

    (void)now_us;
    k->flood_started++;
    if (f->is_answered) k->flood_answered++;
    tally_state(c, k);
    tally_outcome(c, f, k);
}

static int64_t flood_join_us(const struct load_conn *c)
{
    (void)c;
    return -1;
}

const struct client_ops flood_ops = {
    .name = "flood",
    .render_request = flood_render,
    .on_open = flood_open,
    .on_data = flood_data,
    .on_tick = flood_tick,
    .tally = flood_tally,
    .join_us = flood_join_us,
    .on_writable = flood_writable,
};
