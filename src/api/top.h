/* `tribune top [URL] [--once]`: a terminal view of a running node, refreshed
 * every second from GET /api/spaces and GET /api/node.
 *
 *   fetch (client.c) -> top_parse, top_parse_node (JSON -> snapshot) -> top_render (text)
 *
 * Rates (joins/s, skips/s, refused/s, cpu %) come from the difference of two
 * successive snapshots' totals; the first frame shows "-". Thread: the caller's; blocks.
 */
#ifndef TRIBUNE_API_TOP_H
#define TRIBUNE_API_TOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct top_space {
    char id[33];
    char state[16];
    double connected, hearing, lagging, waiting, peak, joined, skips;
};

struct top_snap {
    double t; /* monotonic seconds when fetched */
    size_t n;
    struct top_space *spaces;                                   /* malloc'd */
    double hearing, lagging, waiting, connected, joined, skips; /* sums */
    bool has_node; /* the fields below were read from GET /api/node */
    double workers, workers_up, cpu_seconds, refused_total;
};

/* Parses the body of GET /api/spaces into `out` (sorted by hearing, most
 * first). 0 or -EPROTO (not the expected JSON) or -ENOMEM. Pure. */
int top_parse(const char *json, size_t len, double t, struct top_snap *out);
/* Parses the body of GET /api/node into the node fields of `out` (sets
 * has_node). 0 or -EPROTO. Pure. */
int top_parse_node(const char *json, size_t len, struct top_snap *out);
void top_snap_free(struct top_snap *s);
/* Writes one frame; `prev` may be NULL (rates shown as "-"), and at most
 * `max_rows` spaces are listed (0: all). Pure. */
void top_render(FILE *out, const char *url, const struct top_snap *prev, const struct top_snap *cur,
                size_t max_rows);

/* The command: argv[0] is "top". Returns the exit status. */
int top_main(int argc, char **argv);

#endif
