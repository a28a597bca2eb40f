/* Runtime spaces: the in-memory side of a space (its program, its feeds, its
 * publisher), created on first use from the registry's record.
 *
 *   struct spaces --list--> struct space { record, program -> ogg_pkg -> feed, publisher }
 *
 * Thread: the media loop. A space object lives until shutdown (spaces are few;
 * an idle space costs one ring and one timer).
 */
#ifndef TRIBUNE_SPACE_SPACE_H
#define TRIBUNE_SPACE_SPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "deliver/fleet.h"
#include "core/list.h"
#include "core/loop.h"
#include "deliver/feed.h"
#include "media/program.h"
#include "space/registry.h"

struct publisher;

struct space {
    struct list node;                    /* private */
    struct spaces *owner;                /* private */
    struct space_record rec;             /* read-only copy of the registry row */
    struct feed ogg;                     /* progressive Ogg/Opus listeners */
    struct program program;              /* the program clock and source */
    struct publisher *publisher;         /* the connected publisher, or NULL */
    struct program_source *builtin;      /* the demo speaker, or NULL */
    struct feed_stats wstats[FLEET_MAX]; /* read-only: the ogg feed in each worker */
    struct feed_stats retired;           /* read-only: counters of workers that died */
    uint64_t peak_hearing;               /* read-only: most hearing at once (1 s sweeps) */
};

struct spaces {
    struct list all;          /* private */
    struct loop *loop;        /* private */
    struct registry *reg;     /* private */
    const struct config *cfg; /* private */
    struct timer sweep;       /* private */
    struct fleet *fleet;      /* public: the workers to forward chunks to, or NULL */
};

int spaces_init(struct spaces *ss, struct loop *loop, struct registry *reg,
                const struct config *cfg);
/* Closes every listener and publisher and frees every space. */
void spaces_fini(struct spaces *ss);
/* Returns the runtime space `id` (loading it from the registry on first use),
 * or NULL when no such space exists. */
struct space *spaces_get(struct spaces *ss, const char *id, size_t len);
/* Returns the runtime space `id` only if it is already loaded. */
struct space *spaces_peek(struct spaces *ss, const char *id, size_t len);
/* Gives the space a built-in speaker (the demo). 0 or negative errno. */
int space_add_builtin_speaker(struct space *s);
/* Hands `fd` (an authenticated PUT/SOURCE request) to a new publisher.
 * Returns 0, or -EBUSY when a publisher is already connected (409). */
int space_publish(struct space *s, int fd, const void *rest, size_t rest_len, int expect_continue,
                  int is_legacy, const char *peer);
/* The space's listener counters, summed over the master, every running
 * worker (workers report every 100 ms) and the workers that died: counters
 * never go back, gauges count only live connections. */
void space_stats(const struct space *s, struct feed_stats *out);
/* Worker `w` died: its counters move to `retired` (its listeners are gone:
 * they count as left) and its gauges drop to zero. */
void space_retire_worker(struct space *s, int w);
/* Marks the space live in the registry (and the record). */
void space_set_state(struct space *s, enum space_state st);
/* Sets whether joins need a ticket: in the registry, the record and every
 * worker (CHAN_SPACE). 0 or negative errno (nothing changed). */
int space_set_require_ticket(struct space *s, bool require);
/* The space's CHAN_SPACE_* flags for the workers. */
uint64_t space_chan_flags(const struct space *s);

#endif
