/* Attack modes: the rules; see attack.h. The flood client is flood_ops below. */
#include "attack.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"

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
uint32_t attack_flood_source(const struct load_opts *o, uint32_t k)
{
    uint32_t base = 0x7f000001u + (o->src_addrs + 255) / 256 * 256;
    uint32_t addrs = (o->attack.flood + ATTACK_FLOOD_PER_SRC - 1) / ATTACK_FLOOD_PER_SRC;

    return base + k % (addrs > 0 ? addrs : 1);
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
    return 0;
}

/* ---- the flood client ----------------------------------------------------
 * Connects and then, idle, sends nothing; with a trickle, one byte of a
 * request head every trickle interval: a request line, then a header value
 * that never ends. It reads whatever the server sends (a refusal, if any)
 * and stays until the server closes the connection. */

struct flood {
    int64_t next_byte_us; /* trickle: when the next byte is due, 0 before connect */
    uint32_t sent;        /* trickle bytes sent */
    bool is_answered;     /* the server sent bytes */
};

_Static_assert(sizeof(struct flood) <= LOAD_CONN_PRIV, "struct flood must fit in priv");

static const char trickle_head[] = "GET / HTTP/1.1\r\nHost: tribune-load\r\nX-Flood: ";
static int64_t trickle_us; /* 0: idle */

void flood_configure(const struct load_opts *o)
{
    trickle_us = (int64_t)o->attack.flood_trickle_ms * 1000;
}

static int flood_render(const struct load_target *t, char *buf, size_t cap)
{
    (void)t;
    if (cap > 0) buf[0] = '\0';
    return 0; /* the flood never sends a whole request */
}

static void flood_open(struct load_conn *c)
{
    struct flood *f = (struct flood *)c->priv;

    *f = (struct flood){0};
}

static int flood_data(struct load_conn *c, uint8_t *buf, size_t len, int64_t now_us)
{
    struct flood *f = (struct flood *)c->priv;

    (void)buf, (void)now_us;
    if (len > 0) f->is_answered = true;
    return CLOSE_NONE;
}

/* Slowloris: one byte per trickle interval, on the connection's own clock. */
static void flood_tick(struct load_conn *c, int64_t now_us)
{
    struct flood *f = (struct flood *)c->priv;
    char byte;

    if (trickle_us == 0 || c->fd < 0) return;
    if (f->next_byte_us == 0) f->next_byte_us = now_us;
    if (now_us < f->next_byte_us) return;
    f->next_byte_us = now_us + trickle_us;
    byte = f->sent < sizeof(trickle_head) - 1 ? trickle_head[f->sent] : 'a';
    if (send(c->fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) f->sent++;
}

static void flood_tally(const struct load_conn *c, struct load_counts *k, int64_t now_us)
{
    const struct flood *f = (const struct flood *)c->priv;

    (void)now_us;
    k->flood_started++;
    if (f->is_answered) k->flood_answered++;
    switch (c->state) {
    case CONN_CONNECTING:
    case CONN_SENDING:
        k->flood_connecting++;
        break;
    case CONN_READING:
        k->flood_open++;
        break;
    case CONN_CLOSED:
        if (c->reason == CLOSE_CONNECT)
            k->flood_failed_connect++;
        else
            k->flood_closed_by_server++;
        break;
    default:
        break;
    }
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
};
