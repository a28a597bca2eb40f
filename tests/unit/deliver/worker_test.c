/* Unit tests for deliver/worker.c: the worker_buckets() table, and a real
 * worker process. Each worker test forks a child running worker_main() on one
 * end of a chan_pair, with a loopback port the test holds (listen_reserve);
 * the test plays the master on the other end and connects real TCP clients.
 *
 * The worker has no acknowledgement, so the test synchronises with a HEAD
 * listener sent over the channel: once its socket has the response head and
 * the end of stream, every message sent before it has been handled (the
 * channel is ordered) and the port is open (it is opened before the loop
 * runs). The child's exit status is worker_main's, or 3 when chunks are still
 * live at its end: each test ends by closing the channel and wanting 0. */
#include "deliver/worker.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "config/config.h"
#include "core/log.h"
#include "deliver/channel.h"
#include "deliver/chunk.h"
#include "deliver/feed.h"
#include "net/listen.h"

enum { BUF_CAP = sizeof(struct chan_msg) + CHAN_MAX_PAYLOAD, HEADER_LEN = 240 };

static struct loop *loop;
static struct config cfg;
static int chan = -1;     /* the master's end */
static int reserved = -1; /* holds the port */
static uint16_t port;
static pid_t child = -1;
static unsigned char *buf;
static size_t resp_len;

/* ---- the worker process -------------------------------------------------------------------- */

static void setup(void)
{
    setup_for_children();
    resp_len = strlen(feed_ogg_response_head);
    port = reserve_port(&reserved, &cfg);
    int fds[2];
    ck_assert_int_eq(chan_pair(fds), 0);
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(fds[0]);
        int rc = worker_main(fds[1]);
        exit(rc != 0 ? rc : chunks_live() != 0 ? 3 : 0);
    }
    close(fds[1]);
    chan = fds[0];
    buf = malloc(BUF_CAP);
    ck_assert_ptr_nonnull(buf);
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
}

static void teardown(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    if (chan >= 0) close(chan);
    chan = -1;
    close(reserved);
    loop_run_once(loop);
    loop_free(loop);
    free(buf);
}

/* Waits up to `ms` for the worker to exit; returns its status, or -1. */
static int wait_exit(int ms)
{
    int pfd = (int)syscall(SYS_pidfd_open, child, 0);
    ck_assert_int_ge(pfd, 0);
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    int ready = poll(&p, 1, ms);
    close(pfd);
    if (ready != 1) return -1;
    int st = 0;
    ck_assert_int_eq(waitpid(child, &st, 0), child);
    child = -1;
    return st;
}

/* Closes the master's end: the worker must stop, cleanly, with no chunk
 * left. */
static void stop_worker(void)
{
    close(chan);
    chan = -1;
    int st = wait_exit(5000);
    ck_assert_msg(st != -1, "the worker did not exit when its channel closed");
    ck_assert_msg(WIFEXITED(st), "the worker died of signal %d", WTERMSIG(st));
    ck_assert_msg(WEXITSTATUS(st) == 0, "the worker exited with %d (3: chunks left)",
                  WEXITSTATUS(st));
}

/* ---- the master's side of the channel ------------------------------------------------------ */

static void send_msg(enum chan_type type, const char *space, const void *p, size_t len, uint64_t a,
                     uint64_t b, int fd)
{
    struct chan_msg m;
    chan_msg_init(&m, type, space, (uint32_t)len);
    m.a = a;
    m.b = b;
    ck_assert_int_eq(chan_send(chan, &m, p, fd), 0);
}

static void send_config(void)
{
    send_msg(CHAN_CONFIG, NULL, &cfg, sizeof(cfg), 0, 0, -1);
}

/* Receives the next message of `type` within `ms`, skipping others (their
 * fds closed). Returns 1 with *m, *payload (in buf) and *fd set, or 0. */
static int recv_type(enum chan_type type, int ms, struct chan_msg *m, const void **payload, int *fd)
{
    uint64_t deadline = clock_ms() + (uint64_t)ms;
    for (;;) {
        int r = chan_recv(chan, buf, BUF_CAP, m, payload, fd);
        if (r == 1 && m->type == type) return 1;
        if (r == 1 && *fd >= 0) close(*fd);
        ck_assert_msg(r == 1 || r == -EAGAIN, "channel: %d", r);
        uint64_t now = clock_ms();
        if (now >= deadline) return 0;
        if (r == -EAGAIN) {
            struct pollfd p = {.fd = chan, .events = POLLIN};
            poll(&p, 1, (int)(deadline - now));
        }
    }
}

/* ---- audio that names itself --------------------------------------------------------------- */

static size_t len_of(unsigned tag)
{
    return 400 + (tag * 211u) % 900u;
}

static void fill(unsigned char *p, unsigned tag, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(tag * 131u + i * 7u + (i >> 8));
}

static void send_header(const char *space)
{
    unsigned char h[HEADER_LEN];
    fill(h, 999, sizeof(h));
    memcpy(h, "OggS", 4);
    send_msg(CHAN_HEADER, space, h, sizeof(h), 0, 0, -1);
}

static void send_chunks(const char *space, unsigned from, unsigned to)
{
    unsigned char p[2048];
    for (unsigned t = from; t < to; t++) {
        fill(p, t, len_of(t));
        send_msg(CHAN_CHUNK, space, p, len_of(t), 960u * (t + 1), 960, -1);
    }
}

/* What a listener that joined with chunks [from, to) in its burst and live
 * gets: the response head, the header, the chunks. */
static unsigned char *expected(unsigned from, unsigned to, size_t *len)
{
    size_t n = resp_len + HEADER_LEN;
    for (unsigned t = from; t < to; t++)
        n += len_of(t);
    unsigned char *e = malloc(n), *p = e;
    ck_assert_ptr_nonnull(e);
    memcpy(p, feed_ogg_response_head, resp_len);
    p += resp_len;
    fill(p, 999, HEADER_LEN);
    memcpy(p, "OggS", 4);
    p += HEADER_LEN;
    for (unsigned t = from; t < to; t++) {
        fill(p, t, len_of(t));
        p += len_of(t);
    }
    *len = n;
    return e;
}

static void expect_stream(struct sink *s, unsigned from, unsigned to)
{
    size_t n;
    unsigned char *e = expected(from, to, &n);
    sink_wait_bytes(s, n, 3000);
    ck_assert_uint_eq(s->len, n);
    ck_assert_msg(memcmp(s->buf, e, n) == 0, "the stream differs from head+header+chunks");
    free(e);
}

/* ---- clients ------------------------------------------------------------------------------- */

/* Makes a socketpair end a listener of `space` through the channel; the
 * other end goes to `s`. */
static void give_listener(struct sink *s, const char *space, int is_head)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    send_msg(CHAN_LISTENER, space, NULL, 0, is_head ? 1 : 0, 0, sv[0]);
    close(sv[0]);
    sink_start(s, loop, sv[1]);
}

/* The barrier: a HEAD listener of `space` gets the response head and the end
 * of stream once the worker has handled everything sent before. */
static void sync_worker(const char *space)
{
    struct sink s;
    give_listener(&s, space, 1);
    sink_expect_only(&s, feed_ogg_response_head, resp_len, 5000);
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* A TCP client that sent `req`; its replies go to `s`. Returns its fd. */
static int request(struct sink *s, const char *req)
{
    int fd = dial();
    ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    sink_start(s, loop, fd);
    return fd;
}

static void start_space(unsigned chunks)
{
    send_config();
    send_msg(CHAN_SPACE, "s1", NULL, 0, 0, 0, -1);
    send_header("s1");
    send_chunks("s1", 0, chunks);
    sync_worker("s1");
}

/* ---- tests --------------------------------------------------------------------------------- */

START_TEST(buckets_table)
{
    /* 100 ms chunks, 500 ms write interval: every chunk, or every fifth. */
    ck_assert_uint_eq(worker_buckets(1, 0, 100, 500), 1);
    ck_assert_uint_eq(worker_buckets(1, 3999, 100, 500), 1);
    ck_assert_uint_eq(worker_buckets(1, 4000, 100, 500), 5);
    ck_assert_uint_eq(worker_buckets(1, 1000000, 100, 500), 5);
    /* Hysteresis: between the two thresholds the current setting stays. */
    ck_assert_uint_eq(worker_buckets(5, 3999, 100, 500), 5);
    ck_assert_uint_eq(worker_buckets(5, 2000, 100, 500), 5);
    ck_assert_uint_eq(worker_buckets(5, 1999, 100, 500), 1);
    ck_assert_uint_eq(worker_buckets(1, 2500, 100, 500), 1);
    /* Only two values ever: a ramp up and down never steps through others. */
    unsigned cur = 1;
    for (long n = 0; n < 400000; n += 700) {
        unsigned long l = (unsigned long)(n < 200000 ? n : 400000 - n);
        cur = worker_buckets(cur, l, 100, 500);
        ck_assert(cur == 1 || cur == 5);
    }
    /* Capped by FEED_MAX_BUCKETS even when the interval allows more. */
    ck_assert_uint_eq(worker_buckets(1, 20000, 20, 1000), FEED_MAX_BUCKETS);
    /* An interval shorter than a chunk, or odd settings: every chunk. */
    ck_assert_uint_eq(worker_buckets(1, 50000, 100, 50), 1);
    ck_assert_uint_eq(worker_buckets(1, 50000, 100, 0), 1);
    ck_assert_uint_eq(worker_buckets(1, 50000, 0, 500), 1);
    ck_assert_uint_eq(worker_buckets(1, 50000, -5, 500), 1);
    ck_assert_uint_eq(worker_buckets(1, 50000, 100, 199), 1);
    ck_assert_uint_eq(worker_buckets(1, 50000, 100, 200), 2);
}
END_TEST

START_TEST(tcp_listener_gets_head_header_and_chunks)
{
    start_space(3);
    struct sink s;
    request(&s, "GET /spaces/s1/live.opus HTTP/1.1\r\nHost: x\r\n\r\n");
    /* Burst: the 3 chunks so far (well within burst_ms). */
    expect_stream(&s, 0, 3);
    /* Live: the next chunks, in order, whole. */
    send_chunks("s1", 3, 6);
    expect_stream(&s, 0, 6);
    stop_worker();
    /* The worker closed its listener on the way out. */
    sink_wait_eof(&s, 3000);
    ck_assert_int_eq(s.err, 0);
    sink_fini(&s);
}
END_TEST

START_TEST(head_request_gets_the_response_head_only)
{
    start_space(2);
    struct sink s;
    request(&s, "HEAD /spaces/s1/live.opus HTTP/1.1\r\nHost: x\r\n\r\n");
    sink_wait_eof(&s, 3000);
    ck_assert_uint_eq(s.len, resp_len);
    ck_assert_int_eq(memcmp(s.buf, feed_ogg_response_head, resp_len), 0);
    sink_fini(&s);
    stop_worker();
}
END_TEST

/* The request arrives at the master as HANDOFF: the fd of the client's
 * connection and every byte read. */
static void expect_handoff(const char *req)
{
    struct sink s;
    int cli = request(&s, req);
    struct chan_msg m;
    const void *payload;
    int fd = -1;
    ck_assert_msg(recv_type(CHAN_HANDOFF, 3000, &m, &payload, &fd), "no handoff for %s", req);
    ck_assert_int_ge(fd, 0);
    /* At least the head (a body may still be on its way), nothing else. */
    size_t head = (size_t)(strstr(req, "\r\n\r\n") + 4 - req);
    ck_assert_uint_ge(m.len, head);
    ck_assert_uint_le(m.len, strlen(req));
    ck_assert_int_eq(memcmp(payload, req, m.len), 0);
    /* The fd is the server side of the client's connection. */
    struct sockaddr_in mine, peer;
    socklen_t l1 = sizeof(mine), l2 = sizeof(peer);
    ck_assert_int_eq(getsockname(cli, (struct sockaddr *)&mine, &l1), 0);
    ck_assert_int_eq(getpeername(fd, (struct sockaddr *)&peer, &l2), 0);
    ck_assert_uint_eq(mine.sin_port, peer.sin_port);
    ck_assert_int_eq(send(fd, "HTTP/1.1 204 No Content\r\n\r\n", 27, MSG_NOSIGNAL), 27);
    close(fd);
    sink_wait_eof(&s, 3000);
    ck_assert_uint_eq(s.len, 27);
    ck_assert_int_eq(memcmp(s.buf, "HTTP/1.1 204", 12), 0);
    sink_fini(&s);
}

START_TEST(other_requests_are_handed_to_the_master)
{
    start_space(1);
    expect_handoff("GET /api/spaces HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_handoff("GET /spaces/other/live.opus HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_handoff("PUT /spaces/s1/live.opus HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    expect_handoff("POST /api/spaces HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    stop_worker();
}
END_TEST

START_TEST(stats_arrive_each_second)
{
    start_space(2);
    struct sink s;
    request(&s, "GET /spaces/s1/live.opus HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_stream(&s, 0, 2);
    /* The sweep runs every second: a STATS for s1 with our listener within
     * about two (earlier ones may predate it). */
    uint64_t deadline = clock_ms() + 2500;
    struct feed_stats st = {0};
    bool is_seen = false;
    while (!is_seen && clock_ms() < deadline) {
        struct chan_msg m;
        const void *payload;
        int fd;
        if (!recv_type(CHAN_STATS, (int)(deadline - clock_ms()), &m, &payload, &fd)) break;
        ck_assert_int_eq(fd, -1);
        ck_assert_str_eq(m.space, "s1");
        ck_assert_uint_eq(m.len, sizeof(st));
        memcpy(&st, payload, sizeof(st));
        is_seen = st.listeners == 1;
    }
    ck_assert_msg(is_seen, "no STATS with one listener (last: %llu)",
                  (unsigned long long)st.listeners);
    ck_assert_uint_ge(st.joined, 2); /* the HEAD barrier and ours */
    ck_assert_uint_eq(st.joined - st.left, 1);
    ck_assert_uint_ge(st.bytes, s.len);
    sink_fini(&s);
    stop_worker();
}
END_TEST

START_TEST(listener_from_the_master_is_served)
{
    start_space(4);
    struct sink s;
    give_listener(&s, "s1", 0);
    expect_stream(&s, 0, 4);
    send_chunks("s1", 4, 7);
    expect_stream(&s, 0, 7);
    /* A listener of a space the worker does not know is closed. */
    struct sink lost;
    give_listener(&lost, "nowhere", 0);
    sink_wait_eof(&lost, 3000);
    ck_assert_uint_eq(lost.len, 0);
    sink_fini(&lost);
    sink_fini(&s);
    stop_worker();
}
END_TEST

START_TEST(second_space_and_junk_on_the_channel)
{
    start_space(1);
    /* Malformed datagrams are skipped; what follows is handled. */
    ck_assert_int_eq(send(chan, "junk", 4, MSG_NOSIGNAL), 4);
    send_msg(CHAN_CHUNK, "unknown", "xyz", 3, 0, 0, -1); /* no such feed: dropped */
    send_header("s2");                                   /* a header alone creates its feed */
    send_chunks("s2", 10, 12);
    struct sink s;
    give_listener(&s, "s2", 0);
    expect_stream(&s, 10, 12);
    sink_fini(&s);
    stop_worker();
}
END_TEST

START_TEST(closing_the_channel_stops_the_worker)
{
    start_space(2);
    struct sink a, b;
    request(&a, "GET /spaces/s1/live.opus HTTP/1.1\r\nHost: x\r\n\r\n");
    give_listener(&b, "s1", 0);
    expect_stream(&a, 0, 2);
    expect_stream(&b, 0, 2);
    stop_worker();
    sink_wait_eof(&a, 3000);
    sink_wait_eof(&b, 3000);
    /* Nobody listens on the port any more. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), -1);
    ck_assert_int_eq(errno, ECONNREFUSED);
    close(fd);
    sink_fini(&a);
    sink_fini(&b);
}
END_TEST

START_TEST(sigterm_stops_the_worker)
{
    start_space(1);
    ck_assert_int_eq(kill(child, SIGTERM), 0);
    int st = wait_exit(5000);
    ck_assert_int_ne(st, -1);
    ck_assert_msg(WIFEXITED(st), "the worker died of signal %d", WTERMSIG(st));
    ck_assert_int_eq(WEXITSTATUS(st), 0);
}
END_TEST

START_TEST(no_config_no_worker)
{
    /* Anything but CHAN_CONFIG first: the worker refuses to run. */
    send_msg(CHAN_SPACE, "s1", NULL, 0, 0, 0, -1);
    int st = wait_exit(5000);
    ck_assert_int_ne(st, -1);
    ck_assert_msg(WIFEXITED(st), "the worker died of signal %d", WTERMSIG(st));
    ck_assert_int_eq(WEXITSTATUS(st), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker");
    TCase *pure = tcase_create("buckets");
    tcase_add_test(pure, buckets_table);
    suite_add_tcase(s, pure);
    TCase *tc = tcase_create("process");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, tcp_listener_gets_head_header_and_chunks);
    tcase_add_test(tc, head_request_gets_the_response_head_only);
    tcase_add_test(tc, other_requests_are_handed_to_the_master);
    tcase_add_test(tc, stats_arrive_each_second);
    tcase_add_test(tc, listener_from_the_master_is_served);
    tcase_add_test(tc, second_space_and_junk_on_the_channel);
    tcase_add_test(tc, closing_the_channel_stops_the_worker);
    tcase_add_test(tc, sigterm_stops_the_worker);
    tcase_add_test(tc, no_config_no_worker);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
