/* Unit tests for deliver/fleet.c: fleet_size(), and a real fleet of worker
 * processes. The workers are this test binary re-executed: main() runs
 * worker_main() on fd 3 when argv[1] is "__worker", so the fleet's exe is
 * /proc/self/exe. The test plays the master: a loop with SIGCHLD on a
 * signalfd (calling fleet_reap), a master-side feed that on_up syncs into
 * each worker, and socketpair listeners handed to workers to watch them. */
#include "deliver/fleet.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "core/log.h"
#include "deliver/chunk.h"
#include "deliver/feed.h"
#include "deliver/worker.h"
#include "net/listen.h"

enum { HEADER_LEN = 200, NW = 3 };

static struct loop *loop;
static struct config cfg;
static struct fleet fleet;
static bool is_fleet_live;
static struct feed feed; /* the master's feed of space "s1" */
static int reserved = -1;
static uint16_t port;
static struct io sigchld;
static size_t resp_len;

static struct {
    int ups[FLEET_MAX], downs[FLEET_MAX];
    int handoff_fd, handoff_worker;
    char handoff[512];
    size_t handoff_len;
    int stats[FLEET_MAX]; /* STATS messages per worker */
    uint64_t stats_listeners[FLEET_MAX];
} ev;

/* ---- the master's events ------------------------------------------------------------------- */

static void on_up(struct fleet *f, int w, void *arg)
{
    ev.ups[w]++;
    fleet_sync_feed(f, w, "s1", &feed, 0);
}

static void on_down(struct fleet *f, int w, void *arg)
{
    ev.downs[w]++;
}

static void on_handoff(struct fleet *f, int w, int fd, const void *bytes, size_t len, void *arg)
{
    if (ev.handoff_fd >= 0) close(ev.handoff_fd);
    ev.handoff_fd = fd;
    ev.handoff_worker = w;
    ev.handoff_len = len < sizeof(ev.handoff) ? len : sizeof(ev.handoff);
    memcpy(ev.handoff, bytes, ev.handoff_len);
}

static void on_stats(struct fleet *f, int w, const char *space, unsigned fmt,
                     const struct feed_stats *st, void *arg)
{
    ck_assert_str_eq(space, "s1");
    if (fmt != CHAN_FMT_OGG) return; /* the space's WebSocket feed, empty here */
    ev.stats[w]++;
    ev.stats_listeners[w] = st->listeners;
}

static const struct fleet_events events = {
    .on_up = on_up, .on_down = on_down, .on_handoff = on_handoff, .on_stats = on_stats};

static void on_sigchld(struct io *io, uint32_t e)
{
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        ;
    fleet_reap(&fleet);
}

/* ---- audio that names itself --------------------------------------------------------------- */

static size_t len_of(unsigned tag)
{
    return 300 + (tag * 173u) % 700u;
}

static void fill(unsigned char *p, unsigned tag, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(tag * 29u + i * 5u + (i >> 8));
}

static struct chunk *make_chunk(unsigned tag, size_t len)
{
    struct chunk *c = chunk_new(len);
    ck_assert_ptr_nonnull(c);
    fill(c->data, tag, len);
    c->granule = 960u * (tag + 1);
    c->duration = 960;
    chunk_seal(c);
    return c;
}

/* Publishes chunks [from, to) on the master's feed and to every worker. */
static void publish(unsigned from, unsigned to)
{
    for (unsigned t = from; t < to; t++) {
        struct chunk *c = make_chunk(t, len_of(t));
        feed_publish(&feed, c);
        fleet_broadcast_chunk(&fleet, "s1", CHAN_FMT_OGG, c, 0);
    }
}

static void expect_stream(struct sink *s, unsigned from, unsigned to)
{
    size_t n = resp_len + HEADER_LEN;
    for (unsigned t = from; t < to; t++)
        n += len_of(t);
    unsigned char *e = malloc(n), *p = e;
    ck_assert_ptr_nonnull(e);
    memcpy(p, feed_ogg_response_head, resp_len);
    p += resp_len;
    fill(p, 1000, HEADER_LEN);
    p += HEADER_LEN;
    for (unsigned t = from; t < to; t++) {
        fill(p, t, len_of(t));
        p += len_of(t);
    }
    sink_wait_bytes(s, n, 5000);
    ck_assert_uint_eq(s->len, n);
    ck_assert_msg(memcmp(s->buf, e, n) == 0, "the stream differs from head+header+chunks");
    free(e);
}

/* ---- fixture ------------------------------------------------------------------------------- */

static void setup(void)
{
    setup_for_children();
    memset(&ev, 0, sizeof(ev));
    ev.handoff_fd = -1;
    resp_len = strlen(feed_ogg_response_head);
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
    port = reserve_port(&reserved, &cfg);
    /* SIGCHLD is read from a signalfd: blocked before any child exists. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    ck_assert_int_eq(sigprocmask(SIG_BLOCK, &set, NULL), 0);
    sigchld.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    ck_assert_int_ge(sigchld.fd, 0);
    ck_assert_int_eq(loop_add(loop, &sigchld, EPOLLIN, on_sigchld), 0);
    ck_assert_int_eq(feed_init(&feed, loop, 16, 3, feed_ogg_response_head), 0);
    feed_set_header(&feed, make_chunk(1000, HEADER_LEN));
}

static void stop_fleet(void)
{
    if (is_fleet_live) fleet_stop(&fleet);
    is_fleet_live = false;
}

static void teardown(void)
{
    stop_fleet();
    if (ev.handoff_fd >= 0) close(ev.handoff_fd);
    feed_fini(&feed);
    loop_del(loop, &sigchld);
    close(sigchld.fd);
    close(reserved);
    loop_run_once(loop);
    loop_free(loop);
    ck_assert_uint_eq(chunks_live(), 0);
}

static void start_fleet(int n)
{
    ck_assert_int_eq(fleet_start(&fleet, loop, &cfg, "/proc/self/exe", n, &events), 0);
    is_fleet_live = true;
}

/* A socketpair end handed to worker w as a listener; the other end goes to
 * `s`. */
static void give_listener(struct sink *s, int w, int is_head)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(fleet_give_listener(&fleet, w, "s1", sv[0], is_head, NULL, NULL, 0), 0);
    close(sv[0]);
    sink_start(s, loop, sv[1]);
}

/* Proves worker w runs and has handled everything sent so far: a HEAD
 * listener gets the response head and the end of stream. */
static void sync_worker(int w)
{
    struct sink s;
    give_listener(&s, w, 1);
    sink_expect_only(&s, feed_ogg_response_head, resp_len, 5000);
}

static bool is_alive(pid_t pid)
{
    return kill(pid, 0) == 0;
}

/* ---- tests --------------------------------------------------------------------------------- */

static int expected_auto(int max_listeners)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int per = WORKER_MAX_LISTENERS * 4 / 5;
    int n = (max_listeners + per - 1) / per;
    if (cores > n) n = (int)cores;
    if (n < 1) n = 1;
    return n < FLEET_MAX ? n : FLEET_MAX;
}

START_TEST(size_table)
{
    struct config c;
    config_defaults(&c);
    /* Explicit: as asked, capped at FLEET_MAX. */
    c.workers = 1;
    ck_assert_int_eq(fleet_size(&c), 1);
    c.workers = 7;
    ck_assert_int_eq(fleet_size(&c), 7);
    c.workers = FLEET_MAX;
    ck_assert_int_eq(fleet_size(&c), FLEET_MAX);
    c.workers = 1000;
    ck_assert_int_eq(fleet_size(&c), FLEET_MAX);
    /* Auto: enough workers for max_listeners at 4/5 of a worker's limit,
     * and at least one per core. */
    c.workers = 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int per = WORKER_MAX_LISTENERS * 4 / 5;
    c.max_listeners = 0;
    ck_assert_int_eq(fleet_size(&c), cores < FLEET_MAX ? cores : FLEET_MAX);
    c.max_listeners = 1;
    ck_assert_int_eq(fleet_size(&c), expected_auto(1));
    ck_assert_int_ge(fleet_size(&c), cores < FLEET_MAX ? cores : FLEET_MAX);
    int sizes[] = {per, per + 1, 3 * per, 3 * per + 1, 100000, 40 * per, 1000000000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        c.max_listeners = sizes[i];
        ck_assert_msg(fleet_size(&c) == expected_auto(sizes[i]), "%d listeners: %d workers",
                      sizes[i], fleet_size(&c));
    }
    /* Above the per-core floor the listener count decides. */
    c.max_listeners = 30 * per;
    ck_assert_int_eq(fleet_size(&c), cores > 30 ? (cores < FLEET_MAX ? cores : FLEET_MAX) : 30);
    c.max_listeners = 30 * per + 1;
    ck_assert_int_eq(fleet_size(&c), cores > 31 ? (cores < FLEET_MAX ? cores : FLEET_MAX) : 31);
    c.max_listeners = 40 * per;
    ck_assert_int_eq(fleet_size(&c), FLEET_MAX);
}
END_TEST

START_TEST(workers_start_and_serve)
{
    publish(0, 2);
    start_fleet(NW);
    ck_assert_int_eq(fleet.n, NW);
    for (int i = 0; i < NW; i++) {
        ck_assert_int_gt(fleet.w[i].pid, 0);
        ck_assert(fleet.w[i].is_up);
        ck_assert_int_eq(ev.ups[i], 1);
        ck_assert_uint_eq(fleet.w[i].restarts, 0);
        ck_assert(is_alive(fleet.w[i].pid));
        for (int j = 0; j < i; j++)
            ck_assert_int_ne(fleet.w[i].pid, fleet.w[j].pid);
    }
    /* Each worker was synced on_up (space, header, burst) and serves. */
    struct sink s[NW];
    for (int i = 0; i < NW; i++)
        give_listener(&s[i], i, 0);
    for (int i = 0; i < NW; i++)
        expect_stream(&s[i], 0, 2);
    /* Live chunks reach every worker's listeners, in order. */
    publish(2, 6);
    for (int i = 0; i < NW; i++)
        expect_stream(&s[i], 0, 6);
    for (int i = 0; i < NW; i++)
        sink_fini(&s[i]);
    ck_assert_int_eq(ev.downs[0] + ev.downs[1] + ev.downs[2], 0);
}
END_TEST

static bool has_restarted(void *arg)
{
    pid_t old = *(pid_t *)arg;
    struct fleet_worker *fw = &fleet.w[1];
    return fw->restarts == 1 && fw->pid > 0 && fw->pid != old && fw->is_up && ev.ups[1] == 2;
}

START_TEST(killed_worker_is_restarted)
{
    publish(0, 3);
    start_fleet(NW);
    pid_t pids[NW];
    for (int i = 0; i < NW; i++) {
        pids[i] = fleet.w[i].pid;
        sync_worker(i);
    }
    struct sink gone;
    give_listener(&gone, 1, 0);
    expect_stream(&gone, 0, 3);
    ck_assert_int_eq(kill(pids[1], SIGKILL), 0);
    /* Reaped on SIGCHLD, restarted after the first back-off (100 ms). */
    ck_assert_msg(run_until(loop, has_restarted, &pids[1], 5000),
                  "not restarted: pid %d, restarts %llu, ups %d", (int)fleet.w[1].pid,
                  (unsigned long long)fleet.w[1].restarts, ev.ups[1]);
    ck_assert_int_eq(ev.downs[1], 1);
    ck_assert(!is_alive(pids[1]));
    ck_assert(is_alive(fleet.w[1].pid));
    /* Its listener is gone; the others noticed nothing. */
    sink_wait_eof(&gone, 3000);
    sink_fini(&gone);
    for (int i = 0; i < NW; i += 2) {
        ck_assert_int_eq(fleet.w[i].pid, pids[i]);
        ck_assert_uint_eq(fleet.w[i].restarts, 0);
        ck_assert_int_eq(ev.ups[i], 1);
        ck_assert_int_eq(ev.downs[i], 0);
    }
    /* The new worker was synced again and serves new listeners. */
    struct sink s;
    give_listener(&s, 1, 0);
    expect_stream(&s, 0, 3);
    publish(3, 5);
    expect_stream(&s, 0, 5);
    sink_fini(&s);
}
END_TEST

START_TEST(stop_ends_every_worker)
{
    start_fleet(NW);
    pid_t pids[NW];
    for (int i = 0; i < NW; i++) {
        pids[i] = fleet.w[i].pid;
        sync_worker(i);
    }
    uint64_t t0 = clock_ms();
    stop_fleet();
    /* SIGTERM: a clean exit well within the grace period. */
    ck_assert_uint_lt(clock_ms() - t0, 4000);
    for (int i = 0; i < NW; i++) {
        ck_assert_int_eq(fleet.w[i].pid, 0);
        ck_assert(!fleet.w[i].is_up);
        ck_assert_int_eq(kill(pids[i], 0), -1);
        ck_assert_int_eq(errno, ESRCH);
        ck_assert_int_eq(ev.downs[i], 1);
    }
    /* All reaped: no child left. */
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
}
END_TEST

START_TEST(stop_right_after_start)
{
    /* Workers still starting (maybe not yet exec'd, or before their signal
     * set-up) are stopped all the same, and nothing else is hit. */
    for (int round = 0; round < 5; round++) {
        start_fleet(NW);
        pid_t pids[NW];
        for (int i = 0; i < NW; i++)
            pids[i] = fleet.w[i].pid;
        stop_fleet();
        for (int i = 0; i < NW; i++) {
            ck_assert_int_eq(fleet.w[i].pid, 0);
            ck_assert_int_eq(kill(pids[i], 0), -1);
        }
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
        ck_assert_int_eq(ev.ups[0], round + 1);
    }
}
END_TEST

static bool has_handoff(void *arg)
{
    return ev.handoff_fd >= 0;
}

START_TEST(handoff_reaches_the_master)
{
    start_fleet(2);
    for (int i = 0; i < 2; i++)
        sync_worker(i); /* both listen on the port now */
    int cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(cli, (struct sockaddr *)&a, sizeof(a)), 0);
    const char req[] = "GET /api/spaces HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(cli, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
    ck_assert(run_until(loop, has_handoff, NULL, 3000));
    ck_assert_uint_eq(ev.handoff_len, sizeof(req) - 1);
    ck_assert_int_eq(memcmp(ev.handoff, req, sizeof(req) - 1), 0);
    ck_assert_int_eq(send(ev.handoff_fd, "HTTP/1.1 204 No Content\r\n\r\n", 27, MSG_NOSIGNAL), 27);
    close(ev.handoff_fd);
    ev.handoff_fd = -1;
    struct sink s;
    sink_start(&s, loop, cli);
    sink_wait_eof(&s, 3000);
    ck_assert_uint_eq(s.len, 27);
    sink_fini(&s);
}
END_TEST

static bool has_stats(void *arg)
{
    for (int i = 0; i < 2; i++)
        if (ev.stats_listeners[i] != 1) return false;
    return true;
}

START_TEST(stats_reach_the_master)
{
    publish(0, 1);
    start_fleet(2);
    struct sink s[2];
    for (int i = 0; i < 2; i++)
        give_listener(&s[i], i, 0);
    for (int i = 0; i < 2; i++)
        expect_stream(&s[i], 0, 1);
    /* One STATS per space and worker each second. */
    ck_assert(run_until(loop, has_stats, NULL, 3000));
    ck_assert_int_ge(ev.stats[0], 1);
    ck_assert_int_ge(ev.stats[1], 1);
    for (int i = 0; i < 2; i++)
        sink_fini(&s[i]);
}
END_TEST

START_TEST(listener_for_a_missing_worker_goes_elsewhere)
{
    start_fleet(2);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    /* Out of range: the first running worker takes it. */
    ck_assert_int_eq(fleet_give_listener(&fleet, 17, "s1", sv[0], 1, NULL, NULL, 0), 0);
    close(sv[0]);
    struct sink s;
    sink_start(&s, loop, sv[1]);
    sink_wait_eof(&s, 5000);
    ck_assert_uint_eq(s.len, resp_len);
    sink_fini(&s);
    struct chan_msg m;
    chan_msg_init(&m, CHAN_SPACE, "x", 0);
    ck_assert_int_eq(fleet_send(&fleet, 2, &m, NULL, -1), -EINVAL);
    ck_assert_int_eq(fleet_send(&fleet, -1, &m, NULL, -1), -EINVAL);
    /* With nobody running there is nobody to take it. */
    stop_fleet();
    ck_assert_int_eq(fleet_give_listener(&fleet, 0, "s1", 0, 0, NULL, NULL, 0), -EAGAIN);
}
END_TEST

int main(int argc, char **argv)
{
    /* Re-executed by the fleet as a worker. */
    if (argc > 1 && strcmp(argv[1], "__worker") == 0) {
        int rc = worker_main(WORKER_CHANNEL_FD);
        return rc != 0 ? rc : chunks_live() != 0 ? 3 : 0;
    }
    Suite *s = suite_create("fleet");
    TCase *pure = tcase_create("size");
    tcase_add_test(pure, size_table);
    suite_add_tcase(s, pure);
    TCase *tc = tcase_create("fleet");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, workers_start_and_serve);
    tcase_add_test(tc, killed_worker_is_restarted);
    tcase_add_test(tc, stop_ends_every_worker);
    tcase_add_test(tc, stop_right_after_start);
    tcase_add_test(tc, handoff_reaches_the_master);
    tcase_add_test(tc, stats_reach_the_master);
    tcase_add_test(tc, listener_for_a_missing_worker_goes_elsewhere);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
