/* The event loop: epoll for file descriptors, a sorted list for timers, and one
 * safe point per iteration where closed objects are freed.
 *
 * Contract
 * - Single-threaded: every function here is called from the loop's own thread.
 * - `struct io` is embedded in its owner; the loop never frees it.
 * - Callbacks never block. A callback that wants to destroy its owner calls
 *   loop_defer() and the owner's `on_free` runs after the current batch of
 *   events, when no caller up the stack can still hold it (STYLE.md habit 5).
 * - Errors are negative errno values.
 *
 *   epoll_wait --> on_event(io, events) ... --> timers due --> deferred frees
 *   --> log_flush() (summaries of rate-limited lines and tallies, core/log.h)
 */
#ifndef TRIBUNE_CORE_LOOP_H
#define TRIBUNE_CORE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/list.h"

struct loop;
struct io;

typedef void (*io_cb)(struct io *io, uint32_t events);

struct io {
    int fd;         /* public, read-only */
    io_cb on_event; /* private */
};

struct timer {
    uint64_t when_ms; /* read-only: monotonic deadline */
    void (*on_timer)(struct timer *t);
    struct list node; /* private */
};

struct deferred {
    void (*on_free)(struct deferred *d);
    struct list node; /* private */
};

/* Returns a new loop or NULL with errno set. */
struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* Registers `io->fd` for `events` (EPOLLIN, EPOLLOUT, EPOLLET, ...). */
int loop_add(struct loop *loop, struct io *io, uint32_t events, io_cb on_event);
int loop_mod(struct loop *loop, struct io *io, uint32_t events);
/* Unregisters; closing the fd afterwards is the caller's job. */
void loop_del(struct loop *loop, struct io *io);

/* Arms `t` to fire at monotonic time `when_ms` (re-arming moves it). */
void timer_start(struct loop *loop, struct timer *t, uint64_t when_ms);
void timer_stop(struct timer *t);
void timer_init(struct timer *t, void (*on_timer)(struct timer *t));
static inline bool timer_is_active(const struct timer *t)
{
    return !list_is_empty(&t->node);
}

/* Queues `d` for its on_free at the end of this iteration. Idempotent. */
void loop_defer(struct loop *loop, struct deferred *d, void (*on_free)(struct deferred *d));
void deferred_init(struct deferred *d);

/* Runs until loop_stop(); returns 0 or a negative errno from epoll. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);
/* Runs the deferred frees once, without waiting (shutdown); fires no timers. */
void loop_run_once(struct loop *loop);
/* Cached monotonic time of this iteration, in ms. */
uint64_t loop_now_ms(const struct loop *loop);

#endif
