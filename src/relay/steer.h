/* Steering: which edge a node over capacity sends a new listener to (302).
 *
 *   join --> admission: room? --no, for capacity (max_listeners, fds, memory)-->
 *            steer target set? --yes--> 302 Found, Location: <edge>/spaces/{id}/live.opus (or /ws)
 *                              --no---> 503 + Retry-After (guard/admit.h)
 *
 * The master picks the target once a second from the setting `edges` (comma-separated
 * base URLs) and the edges' count reports (POST /api/edges, space.h): among the edges
 * with a fresh report and room left (listeners < capacity, when they report one), the
 * one with the fewest listeners; it sends the choice to its workers (CHAN_STEER), which
 * answer with it without allocating. An edge is matched to its reports by the
 * HOST:PORT it listens on (the part of its id after the '-', relay.c), so a URL must
 * name the edge's `listen` address.
 * Contract: pure, no allocation. Thread: any.
 */
#ifndef TRIBUNE_RELAY_STEER_H
#define TRIBUNE_RELAY_STEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { STEER_EDGES_MAX = 32, STEER_URL_MAX = 255 };

struct steer_edge {
    const char *url; /* borrowed: a base URL, not NUL-terminated */
    size_t url_len;
    bool is_fresh;      /* some report of it is younger than SPACE_EDGE_EXPIRE_MS */
    uint64_t listeners; /* connected, summed over its reports */
    uint64_t capacity;  /* its max_listeners as reported, 0: unknown (room assumed) */
};

/* The index of the edge to steer to, or -1 when none is fresh with room. Ties go to
 * the first in the list. */
int steer_pick(const struct steer_edge *e, size_t n);
/* Splits the comma-separated list `csv` into at most `max` URLs (spaces around commas
 * skipped, empty and over-long items dropped). Returns how many were filled in. */
size_t steer_parse(const char *csv, struct steer_edge *out, size_t max);
/* Whether `edge_id` (an edge's report id, "xxxxxxxx-HOST:PORT") names the edge at
 * `url` ("http://HOST:PORT", an optional trailing '/'). */
bool steer_matches(const struct steer_edge *e, const char *edge_id);

#endif
