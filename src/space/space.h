/* Runtime spaces: the in-memory side of a space (its program, its feeds, its
 * speakers), created on first use from the registry's record.
 *
 *   struct spaces --list--> struct space { record, speakers[], mixer, program,
 *                                          ogg feed (listeners), monitor feed (host) }
 *   speaker publisher --mixer_input--> mixer --program (20 ms)--> on the air? ogg feed : silence
 *                                                              \--> monitor feed, always
 *
 * Lifecycle (DESIGN.md): scheduled -> green (a speaker connected; the host
 * hears the mix on the monitor, listeners wait hearing silence) -> live (the
 * host's call, or the host publishing on live.opus in a space without a start
 * time) -> ended (every connection closed, joins answered 410). The program
 * runs from the moment a space is loaded, so listeners can join early and
 * going live costs no join storm.
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
#include "space/beacons.h"
#include "space/registry.h"

struct publisher;
struct speak;
struct recorder;
struct recording;
struct mixer;
struct mixer_input;

/* A connected speaker: the host's own publisher ("host"), an invited speaker,
 * or the demo's built-in one ("demo"). */
struct speaker {
    struct space *space;             /* read-only */
    char name[SPEAKER_NAME_MAX + 1]; /* read-only */
    struct publisher *pub;           /* read-only: its PUT/SOURCE stream, or NULL */
    struct speak *ws;                /* read-only: its browser WebSocket session, or NULL */
    struct mixer_input *in;          /* read-only: while its stream is being mixed */
    bool is_muted;                   /* read-only */
};

enum { SPACE_SPEAKERS_MAX = 64 };

/* One edge relay's last report for this space (POST /api/edges): its listeners' gauges,
 * its children's included, and whether its own upstream connection to this node is
 * open (that connection is one of this node's listeners and must not count: each
 * listener of the tree is counted once, at the edge that serves it). A report older
 * than SPACE_EDGE_EXPIRE_MS no longer counts (the edge died or lost us). */
enum { SPACE_EDGES_MAX = 64, SPACE_EDGE_ID_MAX = 64, SPACE_EDGE_EXPIRE_MS = 2500 };

struct space_edge {
    char id[SPACE_EDGE_ID_MAX + 1]; /* "" = free slot */
    uint64_t at_ms;                 /* loop time of the report */
    uint64_t connected, waiting, hearing, lagging;
    uint64_t upstream; /* 1 when its upstream connection to this node is open */
    uint64_t capacity; /* its max_listeners, 0: not reported (steering, relay/steer.h) */
};

/* The edges' share of a space's listener gauges (space_edge_totals). */
struct space_edge_totals {
    unsigned edges; /* edges whose report is fresh */
    uint64_t connected, waiting, hearing, lagging;
    uint64_t upstreams; /* of this node's own listeners, those that are edges */
};

/* The mixer's figures of a space: frames since the space was loaded, and the
 * speakers' jitter-buffer counters over every speaker it ever had. */
struct space_mix_stats {
    unsigned speakers;      /* connected now */
    unsigned speakers_ws;   /* of which from a browser (WebSocket, GET /spaces/{id}/speak) */
    unsigned speakers_http; /* of which PUT/SOURCE publishers (the demo's built-in is neither) */
    uint64_t frames_encoded, frames_passed, frames_limited;
    uint64_t underruns, drift_drops, drift_fills;
};

struct space {
    struct list node;                             /* private */
    struct spaces *owner;                         /* private */
    struct space_record rec;                      /* read-only copy of the registry row */
    struct feed ogg;                              /* progressive Ogg/Opus listeners */
    struct program program;                       /* the program clock and source */
    struct feed monitor;                          /* the host's monitor: the mix in any state */
    struct feed ws;                               /* WebSocket listeners (GET /spaces/{id}/ws) */
    struct ws_pkg wspkg;                          /* private: the program into `ws` */
    struct hls_pkg hls;                           /* read-only: the program as HLS */
    struct beacons beacons;                       /* HLS players, from their beacons */
    struct recording *recording;                  /* read-only: while live and recorded */
    struct mixer *mixer;                          /* private */
    struct speaker *speakers[SPACE_SPEAKERS_MAX]; /* read-only: connected, NULL = free slot */
    struct publisher *publisher;                  /* read-only: the host's publisher, or NULL */
    struct program_source *builtin;               /* the demo speaker, or NULL */
    struct feed_stats wstats[FLEET_MAX];          /* read-only: the ogg feed in each worker */
    struct feed_stats retired;                    /* read-only: counters of workers that died */
    struct feed_stats ws_wstats[FLEET_MAX];       /* read-only: the ws feed in each worker */
    struct feed_stats ws_retired;                 /* read-only: ws counters of dead workers */
    uint64_t peak_hearing;                        /* read-only: most hearing at once (1 s sweeps) */
    struct space_mix_stats gone;                  /* private: counters of speakers that left */
    char removed[SPACE_SPEAKERS_MAX][SPEAKER_NAME_MAX + 1]; /* private: names removed since load */
    unsigned nremoved;                                      /* private: ring position */
    struct space_edge edges[SPACE_EDGES_MAX];               /* private: edges' reports */
    struct program_source *upstream; /* private: an edge's source (relay/upstream.h), or NULL */
    struct mixer_input *upstream_in; /* private: its mixer input */
};

struct spaces {
    struct list all;           /* private */
    struct loop *loop;         /* private */
    struct registry *reg;      /* private */
    const struct config *cfg;  /* private */
    struct timer sweep;        /* private */
    unsigned sweeps;           /* private: sweeps done (beacons expire every 10th) */
    struct fleet *fleet;       /* public: the workers to forward chunks to, or NULL */
    struct recorder *recorder; /* public: records live spaces, or NULL (record = 0) */
    /* public, optional (an edge relay, relay/relay.h): asked for a space the registry
     * lacks; fills *rec (0) once it has added it to the registry, or returns -ENOENT */
    int (*on_unknown)(struct spaces *ss, const char *id, struct space_record *rec);
    /* public, optional: a space's upstream source (an edge's pull from its origin), called
     * once per space loaded; returns a source the space frees with `free_upstream`, or NULL */
    struct program_source *(*new_upstream)(struct spaces *ss, struct space *s);
    void (*free_upstream)(struct program_source *src);
    void *arg; /* public: for the hooks */
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
/* Hands `fd` (an authenticated PUT/SOURCE request) to a new publisher: the
 * host's own (`name` NULL) or speaker `name`'s. Returns 0 (fd taken), or
 * (fd untouched) -EBUSY when that speaker is already connected (409),
 * -ENOSPC when no slot is left, -EPIPE when the space ended. A space
 * scheduled turns green; the host publishing to a space without a start
 * time goes live at once (a one-speaker space needs nothing else). */
int space_publish(struct space *s, const char *name, int fd, const void *rest, size_t rest_len,
                  int expect_continue, int is_legacy, const char *peer);
/* Hands `fd` (an authenticated, checked WebSocket handshake on GET
 * /spaces/{id}/speak) to a new browser speaker session (media/speak.h): the
 * host (`name` NULL) or speaker `name`. The same results and state changes
 * as space_publish. */
int space_speak(struct space *s, const char *name, int fd, const char accept[29], const char *peer);
/* The connected speaker `name` ("host" for the host's publisher), or NULL. */
struct speaker *space_speaker(struct space *s, const char *name);
/* Mutes or unmutes speaker `name` (invited: kept in the registry; "host"
 * and "demo": until they disconnect), from the next program frame. 0,
 * -ENOENT (no such speaker) or -EIO. */
int space_set_muted(struct space *s, const char *name, bool is_muted);
/* Removes invited speaker `name`: its key stops working and its connection
 * closes now. 0 or -ENOENT. */
int space_remove_speaker(struct space *s, const char *name);
/* True if the host removed speaker `name` since the space was loaded (its
 * key then answers 401 "removed", not 404). */
bool space_speaker_was_removed(const struct space *s, const char *name);
/* scheduled/green -> live: listeners get the program from the next frame.
 * 0, or -EPIPE when the space ended. */
int space_go_live(struct space *s);
/* -> ended: every publisher and listener (here and in the workers) closed;
 * the program stops. */
void space_end(struct space *s);
/* The space's listener counters, summed over the master, every running
 * worker (workers report every 100 ms) and the workers that died: counters
 * never go back, gauges count only live connections. On a node that feeds
 * edge relays, the gauges are the whole tree's: plus the edges' fresh reports,
 * minus the edges' own upstream connections. */
void space_stats(const struct space *s, struct feed_stats *out);
/* Records edge `edge_id`'s report (connected, waiting, hearing, lagging, upstream in
 * `r`, id ignored). 0, or -ENOSPC when SPACE_EDGES_MAX live edges report already. */
int space_edge_report(struct space *s, const char *edge_id, const struct space_edge *r);
/* Edge `edge_id` (len bytes) lost its upstream connection to this node: its report
 * stops counting now, not when it expires (its listeners are failing over, and would
 * otherwise be counted twice meanwhile). Its next report counts again. */
void space_edge_forget(struct space *s, const char *edge_id, size_t len);
/* Adds the fresh reports of the edges that steer edge `e` names (relay/steer.h) to its
 * load: listeners += their connected, capacity = the largest reported, is_fresh set. */
struct steer_edge;
void space_edge_load(const struct space *s, struct steer_edge *e);
/* Sums the fresh edge reports (space_stats already includes them). */
void space_edge_totals(const struct space *s, struct space_edge_totals *out);
/* The same, of the WebSocket listeners only (they are included in
 * space_stats: the totals count every listener whatever its format). */
void space_stats_ws(const struct space *s, struct feed_stats *out);
/* The same, of the HLS players (counted from their beacons, space/beacons.h:
 * sessions as listeners, their states, joins and expiries as leaves; no
 * bytes). Included in space_stats too. */
void space_stats_hls(const struct space *s, struct feed_stats *out);
void space_mix_stats(const struct space *s, struct space_mix_stats *out);
/* Worker `w` died: its counters move to `retired` (its listeners are gone:
 * they count as left) and its gauges drop to zero. */
void space_retire_worker(struct space *s, int w);
/* Sets the state in the registry and the record (no other effect: use
 * space_go_live and space_end for transitions with consequences). */
void space_set_state(struct space *s, enum space_state st);
/* Sets whether joins need a ticket: in the registry, the record and every
 * worker (CHAN_SPACE). 0 or negative errno (nothing changed). */
int space_set_require_ticket(struct space *s, bool require);
/* The space's CHAN_SPACE_* flags for the workers. */
uint64_t space_chan_flags(const struct space *s);

#endif
