#include "core/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

/* Events handled per epoll_wait call: bounds the work per wake-up. */
enum { LOOP_BATCH = 256 };

struct loop {
    int epfd;
    bool is_running;
    uint64_t now_ms;
    struct list timers;   /* sorted by when_ms, earliest first */
    struct list deferred; /* objects to free at the safe point */
};

struct loop *loop_new(void)
{
    struct loop *loop = calloc(1, sizeof(*loop));
    if (!loop) return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        free(loop);
        return NULL;
    }
    list_init(&loop->timers);
    list_init(&loop->deferred);
    loop->now_ms = clock_ms();
    return loop;
}

void loop_free(struct loop *loop)
{
    if (!loop) return;
    close(loop->epfd);
    free(loop);
}

int loop_add(struct loop *loop, struct io *io, uint32_t events, io_cb on_event)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    io->on_event = on_event;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0) return -errno;
    return 0;
}

int loop_mod(struct loop *loop, struct io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0) return -errno;
    return 0;
}

void loop_del(struct loop *loop, struct io *io)
{
    if (io->fd >= 0) epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

void timer_init(struct timer *t, void (*on_timer)(struct timer *t))
{
    t->when_ms = 0;
    t->on_timer = on_timer;
    list_init(&t->node);
}

/* Timers are few (periodic ticks, one sweep per deadline class), so a sorted
 * list is simpler than a heap and just as fast. */
void timer_start(struct loop *loop, struct timer *t, uint64_t when_ms)
{
    list_remove(&t->node);
    t->when_ms = when_ms;
    struct list *pos = loop->timers.next;
    while (pos != &loop->timers && list_entry(pos, struct timer, node)->when_ms <= when_ms)
        pos = pos->next;
    list_insert_before(pos, &t->node);
}

void timer_stop(struct timer *t)
{
    list_remove(&t->node);
}

void deferred_init(struct deferred *d)
{
    d->on_free = NULL;
    list_init(&d->node);
}

void loop_defer(struct loop *loop, struct deferred *d, void (*on_free)(struct deferred *d))
{
    if (!list_is_empty(&d->node)) return;
    d->on_free = on_free;
    list_push_back(&loop->deferred, &d->node);
}

static int next_timeout(struct loop *loop)
{
    if (!list_is_empty(&loop->deferred)) return 0;
    if (list_is_empty(&loop->timers)) return 1000;
    uint64_t when = list_entry(loop->timers.next, struct timer, node)->when_ms;
    uint64_t now = clock_ms();
    return when <= now ? 0 : (int)(when - now > 1000 ? 1000 : when - now);
}

static void run_timers(struct loop *loop)
{
    /* Fire only the timers due now; one re-armed for "now" waits a turn. The
     * due ones move to a local list first: a callback may stop or re-arm any
     * of them (which unlinks it from there). */
    uint64_t now = loop->now_ms;
    struct list due;
    list_init(&due);
    while (!list_is_empty(&loop->timers)) {
        struct timer *t = list_entry(loop->timers.next, struct timer, node);
        if (t->when_ms > now) break;
        list_remove(&t->node);
        list_push_back(&due, &t->node);
    }
    while (!list_is_empty(&due)) {
        struct timer *t = list_entry(due.next, struct timer, node);
        list_remove(&t->node);
        t->on_timer(t);
    }
}

static void run_deferred(struct loop *loop)
{
    while (!list_is_empty(&loop->deferred)) {
        struct deferred *d = list_entry(loop->deferred.next, struct deferred, node);
        list_remove(&d->node);
        d->on_free(d);
    }
}

int loop_run(struct loop *loop)
{
    struct epoll_event evs[LOOP_BATCH];
    loop->is_running = true;
    while (loop->is_running) {
        int n = epoll_wait(loop->epfd, evs, LOOP_BATCH, next_timeout(loop));
        if (n < 0 && errno != EINTR) return -errno;
        loop->now_ms = clock_ms();
        for (int i = 0; i < n; i++) {
            struct io *io = evs[i].data.ptr;
            /* An io closed earlier in this batch has fd -1 and is freed later. */
            if (io->fd >= 0) io->on_event(io, evs[i].events);
        }
        run_deferred(loop);
        run_timers(loop);
        run_deferred(loop);
        log_flush(); /* rate-limit and tally summaries whose second ended */
    }
    return 0;
}

void loop_run_once(struct loop *loop)
{
    run_deferred(loop);
}

void loop_stop(struct loop *loop)
{
    loop->is_running = false;
}

uint64_t loop_now_ms(const struct loop *loop)
{
    return loop->now_ms;
}
