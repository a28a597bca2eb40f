/* GET and HEAD /spaces/{id}/hls/{name}: a space's HLS files, answered by the
 * master from its packager's memory (pkg/hls_pkg.h). Workers hand these
 * requests over like API requests: the master serves each file about once
 * per cache in front of it, so its cost does not grow with the audience.
 *
 *   live.m3u8             200 the live playlist (Cache-Control: max-age=1);
 *                         503 + Retry-After until the first segment is complete;
 *                         after the end, the last window with EXT-X-ENDLIST;
 *                         410 for a space that ended before this run
 *   init-<run>.mp4        200 immutable (a year), the name this run lists
 *   init.mp4              200 the current init segment, revalidated (no-cache)
 *   seg-<run>-<msn>.m4s   200 immutable while kept (hls_pkg.h), else 404
 *   anything else         404 (names are parsed, never turned into paths)
 *
 * Every 200 carries an ETag (If-None-Match gives 304) and
 * Access-Control-Allow-Origin: *. The query string is ignored: a
 * cache-busting parameter gets the same prebuilt bytes, and nothing is
 * rendered per request. Thread: the master loop.
 */
#ifndef TRIBUNE_API_HLS_H
#define TRIBUNE_API_HLS_H

#include <stddef.h>
#include <stdint.h>

struct node;
struct conn;

enum hls_kind { HLS_KIND_PLAYLIST, HLS_KIND_INIT, HLS_KIND_SEGMENT, HLS_KIND_N };

/* Requests answered and body bytes sent, by kind (the master's, since start). */
struct hls_stats {
    uint64_t requests[HLS_KIND_N];
    uint64_t bytes[HLS_KIND_N];
};

/* Answers `name` (len bytes) of space `id` (idlen bytes) on `c`. */
void api_hls(struct node *n, struct conn *c, const char *id, size_t idlen, const char *name,
             size_t len);
/* POST /api/spaces/{id}/beacon {"session": S, "playing": B, "buffered_s": N,
 * "stalls": N}: an HLS player says it plays (space/beacons.h), every 10 s.
 * 200 {"interval_s", "expires_s"}; 400 for a bad body, 404, 410 once ended,
 * 503 when the space holds BEACONS_MAX sessions. No key: a beacon only
 * counts, and a session that stops beaconing is forgotten in 30 s. */
void api_beacon(struct node *n, struct conn *c, const char *id, size_t idlen);
/* This process's counters. */
void api_hls_stats(struct hls_stats *out);
/* "playlist", "init", "segment". */
const char *api_hls_kind_name(enum hls_kind k);

#endif
