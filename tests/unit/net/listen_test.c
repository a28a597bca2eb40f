/* Unit tests for net/listen.c: listen_open over real loopback sockets, the
 * acceptor's per-wake-up batch cap, and its pause on EMFILE (the test lowers
 * RLIMIT_NOFILE in its own process). */
#include "net/listen.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../harness.h"
#include "core/clock.h"
#include "core/log.h"

static struct loop *loop;

static void setup(void)
{
    log_threshold = LOG_ERROR;
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
}

static void teardown(void)
{
    loop_run_once(loop);
    loop_free(loop);
    loop = NULL;
}

static uint16_t port_of(int fd, int *family)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
    if (family) *family = ss.ss_family;
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int sockopt(int fd, int level, int name)
{
    int v = -1;
    socklen_t l = sizeof(v);
    ck_assert_int_eq(getsockopt(fd, level, name, &v, &l), 0);
    return v;
}

/* A blocking client connected to 127.0.0.1:port, or -errno. */
static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

START_TEST(open_loopback_any_port)
{
    int fd = listen_open("127.0.0.1", 0, 16);
    ck_assert_int_ge(fd, 0);
    int family;
    uint16_t port = port_of(fd, &family);
    ck_assert_int_eq(family, AF_INET);
    ck_assert_uint_ne(port, 0);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ck_assert_int_eq(sockopt(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    ck_assert_int_ne(sockopt(fd, SOL_SOCKET, SO_REUSEADDR), 0);
    ck_assert_int_ne(sockopt(fd, SOL_SOCKET, SO_REUSEPORT), 0);
    int c = dial(port);
    ck_assert_int_ge(c, 0);
    close(c);
    close(fd);
}
END_TEST

START_TEST(open_same_port_twice_with_reuseport)
{
    int a = listen_open("127.0.0.1", 0, 16);
    ck_assert_int_ge(a, 0);
    uint16_t port = port_of(a, NULL);
    /* A second worker can listen on the same port. */
    int b = listen_open("127.0.0.1", port, 16);
    ck_assert_int_ge(b, 0);
    ck_assert_uint_eq(port_of(b, NULL), port);
    close(a);
    close(b);
}
END_TEST

START_TEST(open_port_in_use_is_negative_errno)
{
    /* A socket without SO_REUSEPORT holds the port. */
    int held = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(held, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(held, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(held, 1), 0);
    uint16_t port = port_of(held, NULL);
    ck_assert_int_eq(listen_open("127.0.0.1", port, 16), -EADDRINUSE);
    close(held);
}
END_TEST

START_TEST(open_bad_host_is_einval)
{
    ck_assert_int_eq(listen_open("localhost", 0, 16), -EINVAL); /* numeric only */
    ck_assert_int_eq(listen_open("not an address", 0, 16), -EINVAL);
    ck_assert_int_eq(listen_open("300.1.1.1", 0, 16), -EINVAL);
}
END_TEST

START_TEST(open_empty_host_is_any_ipv4)
{
    int fd = listen_open("", 0, 16);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    ck_assert_int_eq(sa.sin_family, AF_INET);
    ck_assert_uint_eq(sa.sin_addr.s_addr, htonl(INADDR_ANY));
    close(fd);
    /* "::" is any IPv6, where the host has IPv6 at all. */
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe < 0) return;
    close(probe);
    fd = listen_open("::", 0, 16);
    ck_assert_int_ge(fd, 0);
    int family;
    port_of(fd, &family);
    ck_assert_int_eq(family, AF_INET6);
    close(fd);
}
END_TEST

/* ---- the acceptor -------------------------------------------------------------------------- */

enum { NCLIENTS = 300, MAX_BATCHES = 64 };

static size_t in_batch;
static size_t batches[MAX_BATCHES];
static size_t nbatches;
static size_t total;
static size_t want_total;
static uint64_t first_accept_ms;
static struct deferred batch_end;
static int bad_flags;

/* Runs at the loop's safe point, after each batch of events. */
static void on_batch_end(struct deferred *d)
{
    ck_assert_uint_lt(nbatches, MAX_BATCHES);
    batches[nbatches++] = in_batch;
    in_batch = 0;
    if (total == want_total) loop_stop(loop);
}

static void on_accept(struct acceptor *a, int fd)
{
    ck_assert_ptr_eq(a->owner, &want_total);
    if (!(fcntl(fd, F_GETFL) & O_NONBLOCK) || !(fcntl(fd, F_GETFD) & FD_CLOEXEC)) bad_flags++;
    close(fd);
    if (total++ == 0) first_accept_ms = clock_ms();
    in_batch++;
    loop_defer(loop, &batch_end, on_batch_end);
}

static void on_deadline(struct timer *t)
{
    loop_stop(loop);
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= want) return;
    ck_assert_msg(rl.rlim_max >= want, "RLIMIT_NOFILE hard limit %lu too low",
                  (unsigned long)rl.rlim_max);
    rl.rlim_cur = want;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

START_TEST(accepts_in_capped_batches)
{
    raise_nofile(2 * NCLIENTS + 64);
    int lfd = listen_open("127.0.0.1", 0, 1024);
    ck_assert_int_ge(lfd, 0);
    uint16_t port = port_of(lfd, NULL);
    /* Every connection is queued before the loop first looks. */
    int clients[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        clients[i] = dial(port);
        ck_assert_int_ge(clients[i], 0);
    }
    struct acceptor a;
    deferred_init(&batch_end);
    want_total = NCLIENTS;
    ck_assert_int_eq(acceptor_start(&a, loop, lfd, on_accept, &want_total), 0);
    struct timer deadline;
    timer_init(&deadline, on_deadline);
    timer_start(loop, &deadline, clock_ms() + 5000);
    ck_assert_int_eq(loop_run(loop), 0);
    timer_stop(&deadline);
    ck_assert_uint_eq(total, NCLIENTS);
    ck_assert_uint_eq(a.accepted, NCLIENTS);
    ck_assert_uint_eq(a.paused, 0);
    ck_assert_int_eq(bad_flags, 0);
    /* Full batches of ACCEPT_BATCH, then the rest. */
    ck_assert_uint_eq(nbatches, (NCLIENTS + ACCEPT_BATCH - 1) / ACCEPT_BATCH);
    for (size_t i = 0; i + 1 < nbatches; i++)
        ck_assert_uint_eq(batches[i], ACCEPT_BATCH);
    ck_assert_uint_eq(batches[nbatches - 1], NCLIENTS % ACCEPT_BATCH);
    acceptor_stop(&a);
    ck_assert_int_eq(a.io.fd, -1);
    ck_assert_int_eq(fcntl(lfd, F_GETFD), -1); /* closed */
    ck_assert_int_eq(dial(port), -ECONNREFUSED);
    for (int i = 0; i < NCLIENTS; i++)
        close(clients[i]);
}
END_TEST

enum { NFILL = 4096 };
static int fillers[NFILL];
static int nfillers;

static void free_fds(struct timer *t)
{
    while (nfillers > 0)
        close(fillers[--nfillers]);
}

START_TEST(pauses_on_emfile_then_resumes)
{
    int lfd = listen_open("127.0.0.1", 0, 64);
    ck_assert_int_ge(lfd, 0);
    uint16_t port = port_of(lfd, NULL);
    int clients[3];
    for (int i = 0; i < 3; i++) {
        clients[i] = dial(port);
        ck_assert_int_ge(clients[i], 0);
    }
    struct acceptor a;
    deferred_init(&batch_end);
    want_total = 3;
    ck_assert_int_eq(acceptor_start(&a, loop, lfd, on_accept, &want_total), 0);

    /* Use up every descriptor under a lowered limit. */
    int top = fcntl(0, F_DUPFD, 0);
    ck_assert_int_ge(top, 0);
    close(top);
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = (rlim_t)top + 64;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    for (;;) {
        int fd = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            ck_assert_int_eq(errno, EMFILE);
            break;
        }
        ck_assert_int_lt(nfillers, NFILL);
        fillers[nfillers++] = fd;
    }

    /* Descriptors come back 20 ms in, while accepting is paused. */
    uint64_t t0 = clock_ms();
    struct timer relief, deadline;
    timer_init(&relief, free_fds);
    timer_init(&deadline, on_deadline);
    timer_start(loop, &relief, loop_now_ms(loop) + 20);
    timer_start(loop, &deadline, clock_ms() + 5000);
    ck_assert_int_eq(loop_run(loop), 0);
    timer_stop(&deadline);
    timer_stop(&relief);
    free_fds(NULL);

    ck_assert_uint_eq(total, 3);
    ck_assert_uint_eq(a.accepted, 3);
    /* One pause, not a spin on the ready socket. */
    ck_assert_uint_eq(a.paused, 1);
    ck_assert_uint_ge(first_accept_ms, t0 + ACCEPT_PAUSE_MS);
    acceptor_stop(&a);
    for (int i = 0; i < 3; i++)
        close(clients[i]);
}
END_TEST

static Suite *listen_suite(void)
{
    Suite *s = suite_create("listen");
    TCase *tc = tcase_create("listen");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, open_loopback_any_port);
    tcase_add_test(tc, open_same_port_twice_with_reuseport);
    tcase_add_test(tc, open_port_in_use_is_negative_errno);
    tcase_add_test(tc, open_bad_host_is_einval);
    tcase_add_test(tc, open_empty_host_is_any_ipv4);
    tcase_add_test(tc, accepts_in_capped_batches);
    tcase_add_test(tc, pauses_on_emfile_then_resumes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(listen_suite());
}
