/* An edge relay (`tribune relay --origin URL`): a normal node whose spaces have
 * no speakers of their own. Each space is pulled once from the origin and
 * re-packaged here, so every format this node serves is built locally from the
 * origin's packets (docs/internals/relay.md).
 *
 *   origin --GET /spaces/{id}/ws (X-Tribune-Edge)--> upstream (one per space)
 *          --program_source--> mixer (pass-through) --> program --> ogg, ws feeds
 *   origin <--POST /api/edges, once a second-- reporter: this node's gauges per space
 *          --answer: each space's state------> the edge's spaces follow it
 *
 * A space unknown here is looked up at the origin (GET /api/spaces/{id}) on its
 * first listener, then kept in the local registry as a cache (with a host key
 * nobody knows: publishing to an edge is refused). The lookup blocks the loop
 * (at most RELAY_LOOKUP_TIMEOUT_S), so it is bounded: RELAY_LOOKUPS_PER_S at
 * most, none for RELAY_DOWN_MS after the origin failed to answer, and an id
 * the origin did not know is answered 404 here for RELAY_MISS_MS. An upstream that fails is
 * retried with jittered backoff; meanwhile the program plays silence, so the
 * edge's listeners stay connected.
 *
 * The answer to each report also lists the spaces live or starting soon at the
 * origin (RELAY_AHEAD_*): the edge loads those it lacks at once, from that list
 * (no lookup), so their upstream is open before their first listener comes.
 *
 * Thread: the master's loop. The origin's address is resolved once, at start.
 */
#ifndef TRIBUNE_RELAY_RELAY_H
#define TRIBUNE_RELAY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "core/loop.h"
#include "relay/steer.h"
#include "space/space.h"

enum {
    RELAY_REPORT_MS = 1000, /* counts go upstream this often */
    RELAY_LOOKUP_TIMEOUT_S = 1,
    RELAY_LOOKUPS_PER_S = 10, /* lookups at the origin at most, per second */
    RELAY_MISSES = 64,        /* ids the origin did not know, remembered... */
    RELAY_MISS_MS = 10000,    /* ...this long */
    RELAY_DOWN_MS = 2000,     /* no lookup this long after the origin could not be asked */
    RELAY_BACKOFF_MIN_MS = 250,
    RELAY_BACKOFF_MAX_MS = 4000,
    RELAY_SILENT_MS = 5000,       /* an upstream that sends nothing this long is reconnected */
    RELAY_QUEUE_PACKETS = 256,    /* per space: about 5 s of 20 ms packets */
    RELAY_ANSWER_MAX = 256 << 10, /* the origin's answer to a report (the spaces' states) */
    RELAY_NODES_MAX = 8           /* failover nodes kept from that answer ("nodes") */
};

/* Loading ahead of the listeners: what the answer to a report lists (api/api.c) */
enum {
    RELAY_AHEAD_S = 120,       /* spaces scheduled to start this soon... */
    RELAY_AHEAD_LATE_S = 3600, /* ...or this late (the host has not begun yet), live, green */
    RELAY_AHEAD_MAX = 16       /* at most this many */
};

struct relay {
    struct loop *loop;                     /* private */
    struct spaces *spaces;                 /* private */
    const struct config *cfg;              /* private */
    struct sockaddr_storage addr;          /* read-only: the origin */
    socklen_t addrlen;                     /* read-only */
    char host[256];                        /* read-only: for Host: */
    char edge_id[SPACE_EDGE_ID_MAX + 1];   /* read-only: this edge's name upstream */
    struct timer report;                   /* private */
    struct io post;                        /* private: the report in flight (fd -1: none) */
    char *post_buf;                        /* private */
    char *post_ans;                        /* private: its answer (RELAY_ANSWER_MAX + 1) */
    size_t post_ans_len;                   /* private */
    size_t post_len, post_off;             /* private */
    uint64_t reports_sent, reports_failed; /* read-only */
    uint64_t lookup_window_ms;             /* private: start of this second's lookups */
    unsigned lookups;                      /* private: lookups in it */
    uint64_t down_until_ms;                /* private: the origin failed to answer */
    struct {
        char id[SPACE_ID_MAX + 1];
        uint64_t at_ms;
    } misses[RELAY_MISSES]; /* private: a ring of ids unknown at the origin */
    unsigned nmisses;       /* private: ring position */
    /* read-only: the origin's failover nodes from its last answer, this edge left out
     * (a listen page's "nodes", api.c); kept when the origin stops answering */
    char nodes[RELAY_NODES_MAX][STEER_URL_MAX + 1];
    unsigned nnodes;
};

/* Resolves cfg->origin and hooks the relay into `ss` (its on_unknown and
 * upstream hooks), and starts the reports. 0 or negative errno (logged). */
int relay_start(struct relay *r, struct loop *loop, struct spaces *ss, const struct config *cfg);
void relay_stop(struct relay *r);

/* ---- upstream.c: one space's pull from the origin ---- */

/* A program source fed by GET /spaces/{id}/ws at the origin; it connects at
 * once and reconnects until freed. NULL on ENOMEM. */
struct program_source *upstream_new(struct relay *r, struct space *s);
void upstream_free(struct program_source *src);
/* True while its connection is open past the handshake. */
bool upstream_is_open(const struct program_source *src);

/* Parses one server-to-client WebSocket frame head (unmasked) at buf: sets its
 * opcode, header length and payload length. Returns 1, 0 when more bytes are
 * needed, -1 when invalid (masked, or longer than `max`). Pure. */
int upstream_frame_parse(const uint8_t *buf, size_t len, size_t max, unsigned *opcode,
                         size_t *hdr_len, size_t *payload_len);

#endif
