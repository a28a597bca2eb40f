/* Helpers for unit tests that drive a real loop over real sockets.
 *
 * - run_until(): runs the loop until a condition holds, checked every
 *   millisecond, or until a deadline passes (never a bare sleep).
 * - struct sink: reads one socket into a growing buffer from inside the loop,
 *   and can be paused (a reader that stops reading) and resumed.
 * - tcp_pair(): a connected TCP pair over 127.0.0.1 (server end non-blocking).
 * - setup_for_children(), reserve_port(): fixture steps of the tests that fork
 *   workers.
 * - run_suite(): main()'s tail, runs a suite and gives the exit status.
 * - run_capture(): a real tool's standard output (ffprobe, ffmpeg).
 * Header-only (static inline) so that each test stays one file.
 */
#ifndef TRIBUNE_TESTS_UNIT_HARNESS_H
#define TRIBUNE_TESTS_UNIT_HARNESS_H

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "deliver/chunk.h"
#include "net/listen.h"

struct until {
    struct timer tick;
    struct loop *loop;
    bool (*cond)(void *arg);
    void *arg;
    uint64_t deadline_ms;
    bool is_met;
};

static inline void until_tick(struct timer *t)
{
    struct until *u = list_entry(t, struct until, tick);
    if (u->cond(u->arg)) {
        u->is_met = true;
        loop_stop(u->loop);
    } else if (clock_ms() >= u->deadline_ms) {
        loop_stop(u->loop);
    } else {
        timer_start(u->loop, t, loop_now_ms(u->loop) + 1);
    }
}

/* Runs `loop` until cond(arg) holds or `timeout_ms` passes; returns cond's
 * final verdict. */
static inline bool run_until(struct loop *loop, bool (*cond)(void *arg), void *arg,
                             uint64_t timeout_ms)
{
    if (cond(arg)) return true;
    struct until u = {
        .loop = loop, .cond = cond, .arg = arg, .deadline_ms = clock_ms() + timeout_ms};
    timer_init(&u.tick, until_tick);
    timer_start(loop, &u.tick, loop_now_ms(loop) + 1);
    ck_assert_int_eq(loop_run(loop), 0);
    timer_stop(&u.tick);
    return u.is_met || cond(arg);
}

struct until_fn {
    bool (*cond)(void);
};
static inline bool until_fn_call(void *arg)
{
    return ((struct until_fn *)arg)->cond();
}
/* run_until() for a condition that takes no argument (it reads the test's
 * file-scope state). */
static inline bool run_until_fn(struct loop *loop, bool (*cond)(void), uint64_t timeout_ms)
{
    struct until_fn u = {cond};
    return run_until(loop, until_fn_call, &u, timeout_ms);
}

struct loop_wait {
    struct loop *loop;
    uint64_t until_ms;
};
static inline bool loop_time_passed(void *arg)
{
    struct loop_wait *w = arg;
    return loop_now_ms(w->loop) >= w->until_ms;
}
/* Runs `loop` for `ms` milliseconds of loop time: for letting a deadline
 * pass (the thing under test), never for waiting on an event. */
static inline void run_for(struct loop *loop, uint64_t ms)
{
    struct loop_wait w = {loop, clock_ms() + ms};
    ck_assert(run_until(loop, loop_time_passed, &w, ms + 5000));
}

struct sink {
    struct io io;
    struct loop *loop;
    unsigned char *buf;
    size_t len, cap;
    size_t want;    /* for sink_has_want */
    bool is_eof;    /* end of stream or an error was read */
    bool is_polled; /* registered for EPOLLIN */
    int err;        /* errno of a failed recv, or 0 */
};

static inline void sink_drain(struct sink *s)
{
    while (!s->is_eof) {
        if (s->cap - s->len < 65536) {
            s->cap = s->cap ? s->cap * 2 : 131072;
            s->buf = realloc(s->buf, s->cap);
            ck_assert_ptr_nonnull(s->buf);
        }
        ssize_t n = recv(s->io.fd, s->buf + s->len, s->cap - s->len, MSG_DONTWAIT);
        if (n > 0) {
            s->len += (size_t)n;
        } else if (n == 0) {
            s->is_eof = true;
        } else if (errno != EINTR) {
            if (errno != EAGAIN) s->err = errno, s->is_eof = true;
            return;
        }
    }
    /* Level-triggered: stop polling a finished stream. */
    if (s->is_polled) loop_mod(s->loop, &s->io, 0);
}

static inline void sink_on_event(struct io *io, uint32_t events)
{
    sink_drain(list_entry(io, struct sink, io));
}

/* Starts reading `fd` (taken over: sink_fini closes it). */
static inline void sink_start(struct sink *s, struct loop *loop, int fd)
{
    memset(s, 0, sizeof(*s));
    s->io.fd = fd;
    s->loop = loop;
    ck_assert_int_eq(loop_add(loop, &s->io, EPOLLIN, sink_on_event), 0);
    s->is_polled = true;
}

/* Stops reading: the peer's writes fill the socket buffers. */
static inline void sink_pause(struct sink *s)
{
    ck_assert_int_eq(loop_mod(s->loop, &s->io, 0), 0);
    s->is_polled = false;
}

static inline void sink_resume(struct sink *s)
{
    ck_assert_int_eq(loop_mod(s->loop, &s->io, EPOLLIN), 0);
    s->is_polled = true;
}

static inline void sink_fini(struct sink *s)
{
    if (s->io.fd >= 0) {
        loop_del(s->loop, &s->io);
        close(s->io.fd);
        s->io.fd = -1;
    }
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}

static inline bool sink_has_want(void *arg)
{
    struct sink *s = arg;
    return s->len >= s->want || s->is_eof;
}

static inline bool sink_at_eof(void *arg)
{
    return ((struct sink *)arg)->is_eof;
}

/* Waits until the sink holds at least `want` bytes; asserts it got there. */
static inline void sink_wait_bytes(struct sink *s, size_t want, uint64_t timeout_ms)
{
    s->want = want;
    run_until(s->loop, sink_has_want, s, timeout_ms);
    ck_assert_msg(s->len >= want, "sink has %zu bytes, wanted %zu (eof %d, err %d)", s->len, want,
                  s->is_eof, s->err);
}

static inline void sink_wait_eof(struct sink *s, uint64_t timeout_ms)
{
    ck_assert_msg(run_until(s->loop, sink_at_eof, s, timeout_ms), "no end of stream");
}

/* Waits for the end of stream; asserts the sink got exactly `n` bytes equal
 * to `want`, then finishes it. */
static inline void sink_expect_only(struct sink *s, const void *want, size_t n, uint64_t timeout_ms)
{
    sink_wait_eof(s, timeout_ms);
    ck_assert_uint_eq(s->len, n);
    ck_assert_int_eq(memcmp(s->buf, want, n), 0);
    sink_fini(s);
}

/* A connected TCP pair on 127.0.0.1: *srv (accepted, non-blocking) and *cli
 * (blocking). */
static inline void tcp_pair(int *srv, int *cli)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(l, 4), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &al), 0);
    *cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(*cli, 0);
    ck_assert_int_eq(connect(*cli, (struct sockaddr *)&a, sizeof(a)), 0);
    *srv = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ck_assert_int_ge(*srv, 0);
    close(l);
}

/* The fixture's first steps in a test that forks workers: quiet logs, no
 * SIGPIPE, and no chunk alive yet. */
static inline void setup_for_children(void)
{
    log_threshold = LOG_ERROR;
    signal(SIGPIPE, SIG_IGN);
    /* Check's runner handles SIGTERM and SIGINT by killing the test's process
     * group, and a child inherits that handler until it execs (or the worker
     * blocks them): a SIGTERM in that window would kill this test. The real
     * master leaves them at their default; so does this one. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    ck_assert_uint_eq(chunks_live(), 0);
}

/* Reserves a port on 127.0.0.1 (*reserved holds it) and sets `cfg` to the
 * defaults, listening there, logging errors only. Returns the port. */
static inline uint16_t reserve_port(int *reserved, struct config *cfg)
{
    *reserved = listen_reserve("127.0.0.1", 0);
    ck_assert_int_ge(*reserved, 0);
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    ck_assert_int_eq(getsockname(*reserved, (struct sockaddr *)&a, &al), 0);
    uint16_t port = ntohs(a.sin_port);
    config_defaults(cfg);
    snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:%u", port);
    snprintf(cfg->log_level, sizeof(cfg->log_level), "error");
    return port;
}

/* main()'s tail: runs every test of `s`; the process's exit status. */
static inline int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Runs `promtool check metrics` on `text`; returns its exit status and puts
 * what it printed into out. Fails the test when promtool is missing. */
static inline int promtool_check(const char *text, char *out, size_t cap)
{
    ck_assert_msg(system("command -v promtool >/dev/null 2>&1") == 0,
                  "promtool not found: install the Debian package prometheus "
                  "(apt-get install --no-install-recommends prometheus; `make test` runs "
                  "scripts/deps.sh, which does)");
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[512], cmd[600];
    snprintf(path, sizeof(path), "%s/promtool_check.XXXXXX", dir);
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    unlink(path);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Runs the shell command `cmd` (a real tool: ffprobe, ffmpeg), fails the test
 * unless it exits 0, and returns its whole standard output (malloc'd,
 * NUL-terminated) with its length in *len. */
static inline char *run_capture(const char *cmd, size_t *len)
{
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    for (;;) {
        if (cap - n < 4096) out = realloc(out, cap *= 2);
        size_t r = fread(out + n, 1, cap - n - 1, f);
        if (r == 0) break;
        n += r;
    }
    ck_assert_int_eq(pclose(f), 0);
    out[n] = '\0';
    *len = n;
    return out;
}

#endif
