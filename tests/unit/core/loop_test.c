/* Unit tests for core/loop.c: io registration over real socketpairs and epoll,
 * timer order, stop and re-arm, deferred frees at the safe point, loop_stop,
 * and the cached monotonic clock. Each test runs in its own process. */
#include "core/loop.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../harness.h"
#include "core/clock.h"

static struct loop *loop;

static void setup(void)
{
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
}

static void teardown(void)
{
    loop_free(loop);
    loop = NULL;
}

static void make_pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

/* A safety net: stops a loop that a broken test would otherwise never stop. */
static bool is_guard_fired;
static void on_guard(struct timer *t)
{
    is_guard_fired = true;
    loop_stop(loop);
}

static void run_guarded(uint64_t ms)
{
    struct timer guard;
    timer_init(&guard, on_guard);
    is_guard_fired = false;
    timer_start(loop, &guard, clock_ms() + ms);
    ck_assert_int_eq(loop_run(loop), 0);
    timer_stop(&guard);
}

/* ---- io ------------------------------------------------------------------------------------ */

struct probe {
    struct io io;
    int calls;
    uint32_t events;
    bool stops;
};

static void on_probe(struct io *io, uint32_t events)
{
    struct probe *p = list_entry(io, struct probe, io);
    p->calls++;
    p->events |= events;
    char buf[64];
    while (recv(io->fd, buf, sizeof(buf), 0) > 0) {
    }
    if (p->stops) loop_stop(loop);
}

START_TEST(io_readable_dispatches_to_its_io)
{
    int sv[2];
    make_pair(sv);
    struct probe p = {.io.fd = sv[0], .stops = true};
    ck_assert_int_eq(loop_add(loop, &p.io, EPOLLIN, on_probe), 0);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    run_guarded(2000);
    ck_assert(!is_guard_fired);
    ck_assert_int_eq(p.calls, 1);
    ck_assert(p.events & EPOLLIN);
    ck_assert(!(p.events & EPOLLOUT));
    loop_del(loop, &p.io);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(io_add_and_mod_errors)
{
    int sv[2];
    make_pair(sv);
    struct probe p = {.io.fd = sv[0]};
    ck_assert_int_eq(loop_mod(loop, &p.io, EPOLLIN), -ENOENT);
    ck_assert_int_eq(loop_add(loop, &p.io, EPOLLIN, on_probe), 0);
    ck_assert_int_eq(loop_add(loop, &p.io, EPOLLIN, on_probe), -EEXIST);
    struct probe bad = {.io.fd = 1000};
    ck_assert_int_eq(loop_add(loop, &bad.io, EPOLLIN, on_probe), -EBADF);
    int file = open("/dev/null", O_RDONLY);
    ck_assert_int_ge(file, 0);
    /* /dev/null cannot be polled with epoll. */
    struct probe reg = {.io.fd = file};
    ck_assert_int_eq(loop_add(loop, &reg.io, EPOLLIN, on_probe), -EPERM);
    close(file);
    loop_del(loop, &p.io);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(io_mod_changes_the_events)
{
    int sv[2];
    make_pair(sv);
    /* Nothing to read: EPOLLIN alone never fires; switching to EPOLLOUT does. */
    struct probe p = {.io.fd = sv[0], .stops = true};
    ck_assert_int_eq(loop_add(loop, &p.io, EPOLLIN, on_probe), 0);
    ck_assert_int_eq(loop_mod(loop, &p.io, EPOLLOUT), 0);
    run_guarded(2000);
    ck_assert(!is_guard_fired);
    ck_assert_int_eq(p.calls, 1);
    ck_assert(p.events & EPOLLOUT);
    ck_assert(!(p.events & EPOLLIN));
    loop_del(loop, &p.io);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(io_del_stops_events)
{
    int a[2], b[2];
    make_pair(a);
    make_pair(b);
    struct probe pa = {.io.fd = a[0]}, pb = {.io.fd = b[0], .stops = true};
    ck_assert_int_eq(loop_add(loop, &pa.io, EPOLLIN, on_probe), 0);
    ck_assert_int_eq(loop_add(loop, &pb.io, EPOLLIN, on_probe), 0);
    loop_del(loop, &pa.io);
    /* Both are readable before the wait: one epoll_wait would report both,
     * so b's event proves a's was not delivered. */
    ck_assert_int_eq(write(a[1], "x", 1), 1);
    ck_assert_int_eq(write(b[1], "x", 1), 1);
    run_guarded(2000);
    ck_assert(!is_guard_fired);
    ck_assert_int_eq(pb.calls, 1);
    ck_assert_int_eq(pa.calls, 0);
    /* Re-adding after a del works. */
    pb.stops = false;
    pa.stops = true;
    ck_assert_int_eq(loop_add(loop, &pa.io, EPOLLIN, on_probe), 0);
    run_guarded(2000);
    ck_assert_int_eq(pa.calls, 1);
    loop_del(loop, &pa.io);
    loop_del(loop, &pb.io);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}
END_TEST

/* ---- timers -------------------------------------------------------------------------------- */

struct stamp {
    struct timer t;
    int id;
    int fired;
    uint64_t clock_at, now_at;
    bool stops;
};

static int order[16];
static int norder;

static void on_stamp(struct timer *t)
{
    struct stamp *s = list_entry(t, struct stamp, t);
    s->fired++;
    s->clock_at = clock_ms();
    s->now_at = loop_now_ms(loop);
    ck_assert_int_lt(norder, 16);
    order[norder++] = s->id;
    if (s->stops) loop_stop(loop);
}

START_TEST(timers_fire_in_deadline_order)
{
    uint64_t now = loop_now_ms(loop);
    static const uint64_t delays[] = {40, 10, 30, 0, 20};
    static const int expect[] = {3, 1, 4, 2, 0};
    struct stamp s[5];
    for (int i = 0; i < 5; i++) {
        s[i] = (struct stamp){.id = i, .stops = delays[i] == 40};
        timer_init(&s[i].t, on_stamp);
        ck_assert(!timer_is_active(&s[i].t));
        timer_start(loop, &s[i].t, now + delays[i]);
        ck_assert(timer_is_active(&s[i].t));
    }
    norder = 0;
    run_guarded(5000);
    ck_assert(!is_guard_fired);
    ck_assert_int_eq(norder, 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(order[i], expect[i]);
        ck_assert_int_eq(s[i].fired, 1);
        ck_assert(!timer_is_active(&s[i].t));
        /* Never early, by the real clock or by the loop's. */
        ck_assert_uint_ge(s[i].clock_at, s[i].t.when_ms);
        ck_assert_uint_ge(s[i].now_at, s[i].t.when_ms);
    }
}
END_TEST

START_TEST(timer_stop_and_rearm)
{
    uint64_t now = loop_now_ms(loop);
    struct stamp stopped = {.id = 0}, moved = {.id = 1}, last = {.id = 2, .stops = true};
    timer_init(&stopped.t, on_stamp);
    timer_init(&moved.t, on_stamp);
    timer_init(&last.t, on_stamp);
    timer_start(loop, &stopped.t, now + 5);
    timer_start(loop, &moved.t, now + 5);
    timer_start(loop, &last.t, now + 60);
    timer_stop(&stopped.t);
    ck_assert(!timer_is_active(&stopped.t));
    timer_stop(&stopped.t); /* harmless twice */
    /* Re-arming moves the timer: it fires once, at the later time. */
    timer_start(loop, &moved.t, now + 40);
    ck_assert_uint_eq(moved.t.when_ms, now + 40);
    norder = 0;
    run_guarded(5000);
    ck_assert(!is_guard_fired);
    ck_assert_int_eq(stopped.fired, 0);
    ck_assert_int_eq(moved.fired, 1);
    ck_assert_uint_ge(moved.clock_at, now + 40);
    ck_assert_int_eq(last.fired, 1);
    ck_assert_int_eq(norder, 2);
    ck_assert_int_eq(order[0], 1);
    ck_assert_int_eq(order[1], 2);
}
END_TEST

struct periodic {
    struct timer t;
    int left;
    uint64_t stamps[64];
    int n;
};

static void on_periodic(struct timer *t)
{
    struct periodic *p = list_entry(t, struct periodic, t);
    p->stamps[p->n++] = loop_now_ms(loop);
    if (--p->left == 0) {
        loop_stop(loop);
        return;
    }
    timer_start(loop, t, loop_now_ms(loop) + 3);
}

START_TEST(timer_rearms_itself_and_now_is_monotonic)
{
    uint64_t before = clock_ms();
    struct periodic p = {.left = 30};
    timer_init(&p.t, on_periodic);
    timer_start(loop, &p.t, loop_now_ms(loop) + 3);
    run_guarded(5000);
    ck_assert(!is_guard_fired);
    ck_assert_int_eq(p.n, 30);
    ck_assert_uint_ge(p.stamps[0], before);
    for (int i = 1; i < p.n; i++)
        ck_assert_uint_ge(p.stamps[i], p.stamps[i - 1] + 3);
    ck_assert_uint_le(p.stamps[p.n - 1], clock_ms());
    ck_assert_uint_le(loop_now_ms(loop), clock_ms());
    ck_assert_uint_ge(loop_now_ms(loop), p.stamps[p.n - 1]);
}
END_TEST

START_TEST(now_starts_at_the_clock)
{
    uint64_t before = clock_ms();
    struct loop *l = loop_new();
    ck_assert_ptr_nonnull(l);
    uint64_t now = loop_now_ms(l);
    ck_assert_uint_ge(now, before);
    ck_assert_uint_le(now, clock_ms());
    loop_free(l);
}
END_TEST

/* A timer re-armed for "now" from its own callback must not starve io: it
 * waits a turn. (Were it fired again at once, the loop would never return to
 * epoll, and the test would hit its timeout.) */
static int spins;
static int spin_write_fd;
static void on_spin(struct timer *t)
{
    if (++spins == 3) ck_assert_int_eq(write(spin_write_fd, "x", 1), 1);
    timer_start(loop, t, loop_now_ms(loop));
}

START_TEST(timer_due_now_does_not_starve_io)
{
    int sv[2];
    make_pair(sv);
    struct probe p = {.io.fd = sv[0], .stops = true};
    struct timer spin;
    timer_init(&spin, on_spin);
    timer_start(loop, &spin, loop_now_ms(loop));
    spin_write_fd = sv[1];
    spins = 0;
    /* The io becomes ready only once the spinner has run a few times. */
    ck_assert_int_eq(loop_add(loop, &p.io, EPOLLIN, on_probe), 0);
    run_guarded(5000);
    ck_assert(!is_guard_fired);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_ge(spins, 3);
    timer_stop(&spin);
    loop_del(loop, &p.io);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* ---- deferred frees ------------------------------------------------------------------------ */

/* An object that closes itself (and a sibling) from an event callback. */
struct owner {
    struct io io;
    struct deferred dfr;
    struct owner *sibling;
    int id;
};

static int n_freed;
static int freed_ids[4];
static int n_events;

static void owner_free(struct deferred *d)
{
    struct owner *o = list_entry(d, struct owner, dfr);
    freed_ids[n_freed++] = o->id;
    free(o);
    if (n_freed == 2) loop_stop(loop);
}

static void owner_close(struct owner *o)
{
    loop_del(loop, &o->io);
    close(o->io.fd);
    o->io.fd = -1;
    loop_defer(loop, &o->dfr, owner_free);
    loop_defer(loop, &o->dfr, owner_free); /* idempotent */
}

static void on_owner(struct io *io, uint32_t events)
{
    struct owner *o = list_entry(io, struct owner, io);
    n_events++;
    owner_close(o);
    owner_close(o->sibling);
    /* Both are still allocated while a caller up the stack may hold them. */
    ck_assert_int_eq(n_freed, 0);
    ck_assert_int_eq(o->id + o->sibling->id, 3);
}

START_TEST(defer_frees_after_the_batch)
{
    int a[2], b[2];
    make_pair(a);
    make_pair(b);
    struct owner *oa = calloc(1, sizeof(*oa)), *ob = calloc(1, sizeof(*ob));
    ck_assert(oa && ob);
    *oa = (struct owner){.io.fd = a[0], .sibling = ob, .id = 1};
    *ob = (struct owner){.io.fd = b[0], .sibling = oa, .id = 2};
    deferred_init(&oa->dfr);
    deferred_init(&ob->dfr);
    ck_assert_int_eq(loop_add(loop, &oa->io, EPOLLIN, on_owner), 0);
    ck_assert_int_eq(loop_add(loop, &ob->io, EPOLLIN, on_owner), 0);
    /* Both readable before the first wait: both events are in one batch. */
    ck_assert_int_eq(write(a[1], "x", 1), 1);
    ck_assert_int_eq(write(b[1], "x", 1), 1);
    n_events = n_freed = 0;
    run_guarded(2000);
    ck_assert(!is_guard_fired);
    /* The second event of the batch belonged to an io closed by the first. */
    ck_assert_int_eq(n_events, 1);
    ck_assert_int_eq(n_freed, 2);
    ck_assert_int_eq(freed_ids[0] + freed_ids[1], 3);
    close(a[1]);
    close(b[1]);
}
END_TEST

struct timed_owner {
    struct timer t;
    struct deferred dfr;
    bool is_freed;
};

static struct timed_owner towner;
static bool was_freed_when_second_fired;

static void towner_free(struct deferred *d)
{
    list_entry(d, struct timed_owner, dfr)->is_freed = true;
}

static void on_first(struct timer *t)
{
    loop_defer(loop, &towner.dfr, towner_free);
}

static void on_second(struct timer *t)
{
    was_freed_when_second_fired = towner.is_freed;
}

static void on_third(struct timer *t)
{
    loop_stop(loop);
}

START_TEST(defer_from_timer_runs_after_due_timers)
{
    uint64_t when = loop_now_ms(loop) + 5;
    struct timer second, third;
    timer_init(&towner.t, on_first);
    timer_init(&second, on_second);
    timer_init(&third, on_third);
    deferred_init(&towner.dfr);
    timer_start(loop, &towner.t, when);
    timer_start(loop, &second, when);
    timer_start(loop, &third, when + 10);
    was_freed_when_second_fired = true;
    run_guarded(2000);
    ck_assert(!is_guard_fired);
    ck_assert(!was_freed_when_second_fired);
    ck_assert(towner.is_freed);
}
END_TEST

static int plain_frees;
static void count_free(struct deferred *d)
{
    plain_frees++;
}

START_TEST(run_once_runs_deferred_frees)
{
    struct deferred d1, d2;
    deferred_init(&d1);
    deferred_init(&d2);
    plain_frees = 0;
    loop_defer(loop, &d1, count_free);
    loop_defer(loop, &d2, count_free);
    loop_defer(loop, &d1, count_free);
    ck_assert_int_eq(plain_frees, 0);
    loop_run_once(loop);
    ck_assert_int_eq(plain_frees, 2);
    loop_run_once(loop);
    ck_assert_int_eq(plain_frees, 2);
    /* A freed deferred can be queued again (its node was unlinked). */
    loop_defer(loop, &d1, count_free);
    loop_run_once(loop);
    ck_assert_int_eq(plain_frees, 3);
}
END_TEST

/* ---- stop ---------------------------------------------------------------------------------- */

START_TEST(stop_returns_and_loop_runs_again)
{
    int sv[2];
    make_pair(sv);
    struct probe p = {.io.fd = sv[0], .stops = true};
    struct stamp later = {.id = 7};
    timer_init(&later.t, on_stamp);
    timer_start(loop, &later.t, loop_now_ms(loop) + 200);
    ck_assert_int_eq(loop_add(loop, &p.io, EPOLLIN, on_probe), 0);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    norder = 0;
    run_guarded(5000);
    ck_assert(!is_guard_fired);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(later.fired, 0); /* loop_stop returned before it was due */
    /* The same loop runs again and keeps its timers. */
    later.stops = true;
    run_guarded(5000);
    ck_assert(!is_guard_fired);
    ck_assert_int_eq(later.fired, 1);
    ck_assert_int_eq(p.calls, 1);
    loop_del(loop, &p.io);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = tcase_create("loop");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, io_readable_dispatches_to_its_io);
    tcase_add_test(tc, io_add_and_mod_errors);
    tcase_add_test(tc, io_mod_changes_the_events);
    tcase_add_test(tc, io_del_stops_events);
    tcase_add_test(tc, timers_fire_in_deadline_order);
    tcase_add_test(tc, timer_stop_and_rearm);
    tcase_add_test(tc, timer_rearms_itself_and_now_is_monotonic);
    tcase_add_test(tc, now_starts_at_the_clock);
    tcase_add_test(tc, timer_due_now_does_not_starve_io);
    tcase_add_test(tc, defer_frees_after_the_batch);
    tcase_add_test(tc, defer_from_timer_runs_after_due_timers);
    tcase_add_test(tc, run_once_runs_deferred_frees);
    tcase_add_test(tc, stop_returns_and_loop_runs_again);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(loop_suite());
}
