/* Unit tests for relay/upstream.c: the server-frame parser, and one space's pull from a fake
 * origin on a real loopback socket (handshake marked as an edge's, audio messages queued for the
 * mixer, a sequence gap concealed, the origin's close answered by a reconnection). */
#include "relay/relay.h"

#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <opus/opus.h>

#include "../harness.h"
#include "http/ws.h"
#include "media/program.h"

START_TEST(frame_parse_lengths)
{
    unsigned op;
    size_t h, n;
    uint8_t b[10] = {0x82, 5};
    ck_assert_int_eq(upstream_frame_parse(b, 1, 100, &op, &h, &n), 0);
    ck_assert_int_eq(upstream_frame_parse(b, 2, 100, &op, &h, &n), 1);
    ck_assert_uint_eq(op, 2);
    ck_assert_uint_eq(h, 2);
    ck_assert_uint_eq(n, 5);
    uint8_t m[4] = {0x81, 126, 0x01, 0x00}; /* 256 bytes, 16-bit length */
    ck_assert_int_eq(upstream_frame_parse(m, 3, 1000, &op, &h, &n), 0);
    ck_assert_int_eq(upstream_frame_parse(m, 4, 1000, &op, &h, &n), 1);
    ck_assert_uint_eq(h, 4);
    ck_assert_uint_eq(n, 256);
    ck_assert_int_eq(upstream_frame_parse(m, 4, 255, &op, &h, &n), -1); /* over max */
    uint8_t l[10] = {0x82, 127, 0, 0, 0, 0, 0, 0, 0x10, 0};
    ck_assert_int_eq(upstream_frame_parse(l, 9, 1 << 20, &op, &h, &n), 0);
    ck_assert_int_eq(upstream_frame_parse(l, 10, 1 << 20, &op, &h, &n), 1);
    ck_assert_uint_eq(h, 10);
    ck_assert_uint_eq(n, 4096);
    uint8_t masked[2] = {0x82, 0x85}; /* a server never masks */
    ck_assert_int_eq(upstream_frame_parse(masked, 2, 100, &op, &h, &n), -1);
}
END_TEST

static struct loop *loop;
static int lfd = -1, ofd = -1;

/* accepts the edge's connection on the fake origin's socket, once it comes */
static bool accepted(void *arg)
{
    (void)arg;
    if (ofd < 0) ofd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    return ofd >= 0;
}

static bool queued(void *arg)
{
    struct program_source *src = arg;
    return src->ops->buffered(src) >= 4 * 960;
}

static bool is_closed(void *arg)
{
    return !upstream_is_open(arg);
}

/* one silent 20 ms mono Opus packet */
static size_t opus_packet(uint8_t *out, size_t cap)
{
    int err;
    OpusEncoder *e = opus_encoder_create(48000, 1, OPUS_APPLICATION_AUDIO, &err);
    ck_assert_int_eq(err, OPUS_OK);
    int16_t pcm[960] = {0};
    opus_int32 n = opus_encode(e, pcm, 960, out, (opus_int32)cap);
    opus_encoder_destroy(e);
    ck_assert_int_gt(n, 0);
    return (size_t)n;
}

static void send_audio(int fd, uint32_t seq, const uint8_t *pkt, size_t len)
{
    uint8_t buf[512];
    size_t h = ws_frame_header(buf, WS_OP_BINARY, WS_AUDIO_HDR + len);
    ws_audio_header(buf + h, seq, (uint64_t)(seq + 1) * 960);
    memcpy(buf + h + WS_AUDIO_HDR, pkt, len);
    ck_assert_int_eq(write(fd, buf, h + WS_AUDIO_HDR + len), (ssize_t)(h + WS_AUDIO_HDR + len));
}

START_TEST(pulls_and_reconnects)
{
    log_threshold = LOG_ERROR;
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
    lfd = listen_open("127.0.0.1", 0, 16);
    ck_assert_int_ge(lfd, 0);
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    struct config cfg;
    config_defaults(&cfg);
    struct relay r = {.loop = loop, .cfg = &cfg};
    struct sockaddr_in *a = (struct sockaddr_in *)&r.addr;
    socklen_t al = sizeof(*a);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)a, &al), 0);
    r.addrlen = al;
    snprintf(r.host, sizeof(r.host), "127.0.0.1");
    snprintf(r.edge_id, sizeof(r.edge_id), "edge-1");
    struct space *s = calloc(1, sizeof(*s));
    snprintf(s->rec.id, sizeof(s->rec.id), "room");

    struct program_source *src = upstream_new(&r, s);
    ck_assert_ptr_nonnull(src);
    ck_assert(run_until(loop, accepted, NULL, 2000));
    char req[1024] = "";
    size_t got = 0;
    for (int i = 0; i < 2000 && !strstr(req, "\r\n\r\n"); i++) { /* the request, whole */
        ssize_t n = read(ofd, req + got, sizeof(req) - 1 - got);
        if (n > 0) got += (size_t)n;
        req[got] = '\0';
        if (!strstr(req, "\r\n\r\n")) run_for(loop, 1);
    }
    ck_assert_msg(strncmp(req, "GET /spaces/room/ws HTTP/1.1\r\n", 30) == 0, "%s", req);
    ck_assert_ptr_nonnull(strstr(req, "X-Tribune-Edge: edge-1\r\n"));
    ck_assert_ptr_nonnull(strstr(req, "Upgrade: websocket\r\n"));
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\n\r\n\x81\x02hi";
    ck_assert_int_eq(write(ofd, head, sizeof(head) - 1), (ssize_t)sizeof(head) - 1);
    uint8_t pkt[256];
    size_t plen = opus_packet(pkt, sizeof(pkt));
    send_audio(ofd, 7, pkt, plen);
    send_audio(ofd, 8, pkt, plen);
    send_audio(ofd, 10, pkt, plen); /* 9 was lost: queued as an empty packet */
    ck_assert(run_until(loop, queued, src, 2000));
    ck_assert(upstream_is_open(src));
    size_t lens[4];
    for (int i = 0; i < 4; i++) {
        const uint8_t *d;
        int samples;
        ck_assert_int_eq(src->ops->pull(src, &d, &lens[i], &samples), 1);
        ck_assert_int_eq(samples, 960);
    }
    ck_assert_uint_eq(lens[0], plen);
    ck_assert_uint_eq(lens[1], plen);
    ck_assert_uint_eq(lens[2], 0);
    ck_assert_uint_eq(lens[3], plen);
    ck_assert_uint_eq(src->ops->buffered(src), 0);

    close(ofd); /* the origin goes away: the edge reconnects by itself */
    ofd = -1;
    ck_assert(run_until(loop, is_closed, src, 2000));
    ck_assert(run_until(loop, accepted, NULL, 3000));
    upstream_free(src);
    free(s);
    close(ofd);
    close(lfd);
    loop_run_once(loop);
    loop_free(loop);
}
END_TEST

static Suite *upstream_suite(void)
{
    Suite *s = suite_create("upstream");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, frame_parse_lengths);
    tcase_add_test(tc, pulls_and_reconnects);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(upstream_suite());
}
