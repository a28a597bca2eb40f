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
#include "http/conn.h"
#include "net/listen.h"
#include "space/registry.h"
#include "space/space.h"

struct events;

struct node {
    struct loop *loop;
    struct config cfg;
    struct registry *reg;
    struct spaces spaces;
    struct acceptor acceptor;
    struct conn_limits limits;
    struct io sigio;
    struct fleet fleet;
    bool has_fleet; /* read-only: listeners are served by worker processes */
    int reserve_fd; /* private: holds the port while workers listen on it */
    bool is_demo;
    struct events *events; /* private: SSE clients (events.c), NULL until the first */
    char demo_key[SPACE_KEY_HEX + 1];
};

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

/* HTTP entry point (router.c). */
void node_on_request(struct conn *c);

#endif
