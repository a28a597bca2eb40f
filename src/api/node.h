/* struct node: one Tribune server process: its loop, settings, registry,
 * spaces, listening socket, and the HTTP routes that tie them together.
 *
 *   accept -> conn (head) -> router -> api handler      (JSON, answered here)
 *                                   -> listener_start   (fd handed to a feed)
 *                                   -> space_publish    (fd handed to ingest)
 * Thread: one loop (the master). Signals (SIGINT, SIGTERM) arrive through a
 * signalfd and stop the loop; shutdown frees everything.
 */
#ifndef TRIBUNE_API_NODE_H
#define TRIBUNE_API_NODE_H

#include <stdbool.h>

#include "config/config.h"
#include "deliver/fleet.h"
#include "core/loop.h"
#include "guard/addr.h"
#include "guard/ticket.h"
#include "http/conn.h"
#include "net/listen.h"
#include "relay/relay.h"
#include "relay/steer.h"
#include "space/registry.h"
#include "space/space.h"

struct events;

/* At most this many failover nodes in a space's JSON ("nodes", api.c). */
enum { NODE_NODES_MAX = 8 };

struct node {
    struct loop *loop;
    struct config cfg;
    struct registry *reg;
    struct spaces spaces;
    struct acceptor acceptor;
    struct acceptor admin;     /* private: admin_listen, the master's own address */
    struct recorder *recorder; /* private: NULL when record = 0 */
    struct timer prune;        /* private: recordings past their retention, hourly */
    struct conn_limits limits;
    struct io sigio;
    struct fleet fleet;
    bool has_fleet; /* read-only: listeners are served by worker processes */
    int reserve_fd; /* private: holds the port while workers listen on it */
    bool is_demo;
    struct events *events; /* private: SSE clients (events.c), NULL until the first */
    char demo_key[SPACE_KEY_HEX + 1];
    struct ticket_key ticket_key; /* private: the join-ticket secret (<data>/ticket.key) */
    struct addr_table key_fails;  /* private: failed key attempts per client address */
    struct relay relay;           /* private: an edge relay's pull and reports */
    bool is_relay;                /* read-only: cfg.origin is set (relay/relay.h) */
    bool is_steering;             /* read-only: cfg.edges is set and workers serve listeners */
    struct timer steer;           /* private: the steering target, each second (relay/steer.h) */
    char steer_url[STEER_URL_MAX + 1]; /* private: the target the workers have, "" = none */
    /* private: the nodes a listen page may fail over to (api.c, api_nodes_json), rebuilt at
     * most once a second when asked for */
    char nodes[NODE_NODES_MAX][STEER_URL_MAX + 1];
    unsigned nnodes;
    uint64_t nodes_at_ms; /* when they were built, 0: never */
};

/* Failed key attempts, per client address (an IPv4 address or an IPv6 /64):
 * NODE_KEY_FAILS_BURST at once, then one per 60 / NODE_KEY_FAILS_PER_MIN s
 * (a GCRA bucket in guard/addr.h's table, charged only by failures). */
enum { NODE_KEY_FAILS_BURST = 5, NODE_KEY_FAILS_PER_MIN = 5, NODE_KEY_FAILS_LOG2 = 12 };

/* The executable that runs `__worker` (main sets it). When NULL, as in unit
 * tests, a node serves listeners in its own process. */
extern const char *node_worker_exe;

/* Opens the data directory, registry and listening socket. 0 or negative
 * errno (logged). */
int node_open(struct node *n, const struct config *cfg);
/* Creates (if needed) the space "demo" with a built-in speaker. */
int node_setup_demo(struct node *n);
/* Runs until SIGINT/SIGTERM. */
int node_run(struct node *n);
void node_close(struct node *n);

/* Before checking a key presented on `c`: true when c's address has spent
 * its failed attempts, in which case `429 Too Many Requests` with Retry-After
 * has been sent (counted as key_limit) and the key must not be looked at. */
bool node_key_is_limited(struct node *n, struct conn *c);
/* The key presented on `c` was wrong: charges c's address. */
void node_key_failed(struct node *n, struct conn *c);

/* HTTP entry point (router.c). */
void node_on_request(struct conn *c);
/* The configured `edges` (steer_parse) with their load from every space's fresh
 * reports (space_edge_load): e has room for STEER_EDGES_MAX. Returns how many. */
size_t node_edges(struct node *n, struct steer_edge *e);

#endif
