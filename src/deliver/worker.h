/* A delivery worker: one process, one loop, serving listeners.
 *
 *   shared port (SO_REUSEPORT) --accept--> conn (head only)
 *        GET/HEAD /spaces/{id}/live.opus, space known --> listener on its feed
 *        anything else --HANDOFF (fd + bytes read)--> master
 *   master --SPACE/HEADER/CHUNK--> feeds (own rings, own chunks)
 *   master --LISTENER (fd)--> a listener the master routed back here
 *   every 100 ms: sweep stalled and lagging listeners, tune write coalescing,
 *                 STATS --> master
 *
 * Workers are started by the master (deliver/fleet.c) as `tribune __worker`
 * with the channel on fd 3; the first message carries the settings. A worker
 * exits when the master goes (channel closed, or SIGTERM through
 * PR_SET_PDEATHSIG) and on SIGINT/SIGTERM, freeing everything.
 * Thread: one loop; nothing is shared with other processes but the port.
 */
#ifndef TRIBUNE_DELIVER_WORKER_H
#define TRIBUNE_DELIVER_WORKER_H

enum {
    WORKER_CHANNEL_FD = 3,
    WORKER_MAX_LISTENERS = 19000,
    WORKER_COALESCE_ABOVE = 4000, /* node listeners: write every write_interval_ms from here */
    WORKER_COALESCE_BELOW = 2000, /* ... and every chunk again below this */
    WORKER_EDGES_MAX = 64,        /* edges' upstream connections a worker tracks */
    WORKER_EDGE_ID_MAX = 64,      /* bytes of an X-Tribune-Edge id (SPACE_EDGE_ID_MAX) */
};

/* Runs a worker on channel `fd` until it is told to stop. Returns the exit
 * status (0 on a clean stop). */
int worker_main(int fd);

/* How many chunks a worker coalesces per write (1 = every chunk), given the
 * current value and the node's listeners (a worker estimates them as its own
 * times the number of workers). Two settings only, with hysteresis: every
 * chunk, or write_interval_ms / chunk_ms chunks (at most FEED_MAX_BUCKETS)
 * from WORKER_COALESCE_ABOVE listeners until the node falls below
 * WORKER_COALESCE_BELOW. Why two: switching from every chunk to every k-th
 * never makes a listener wait longer than k chunks, while stepping between
 * intermediate values would (a listener last written on its old turn waits
 * for its new one), and a player would see a dip. Pure; exported for tests. */
unsigned worker_buckets(unsigned current, unsigned long listeners, int chunk_ms,
                        int write_interval_ms);

#endif
