/* A delivery worker: one process, one loop, serving listeners.
 *
 *   shared port (SO_REUSEPORT) --accept--> conn (head only)
 *        GET/HEAD /spaces/{id}/live.opus, space known --> listener on its feed
 *        anything else --HANDOFF (fd + bytes read)--> master
 *   master --SPACE/HEADER/CHUNK--> feeds (own rings, own chunks)
 *   master --LISTENER (fd)--> a listener the master routed back here
 *   every second: sweep stalled listeners, tune write coalescing, STATS --> master
 *
 * Workers are started by the master (deliver/fleet.c) as `tribune __worker`
 * with the channel on fd 3; the first message carries the settings. A worker
 * exits when the master goes (channel closed, or SIGTERM through
 * PR_SET_PDEATHSIG) and on SIGINT/SIGTERM, freeing everything.
 * Thread: one loop; nothing is shared with other processes but the port.
 */
#ifndef TRIBUNE_DELIVER_WORKER_H
#define TRIBUNE_DELIVER_WORKER_H

enum { WORKER_CHANNEL_FD = 3, WORKER_MAX_LISTENERS = 19000, WORKER_LISTENERS_PER_BUCKET = 2000 };

/* Runs a worker on channel `fd` until it is told to stop. Returns the exit
 * status (0 on a clean stop). */
int worker_main(int fd);

/* How many chunks a worker coalesces per write (1 = every chunk) when its
 * node holds `listeners`: one more per WORKER_LISTENERS_PER_BUCKET, up to
 * write_interval_ms / chunk_ms. A worker estimates the node's listeners as
 * its own times the number of workers. Pure; exported for tests. */
unsigned worker_buckets(unsigned long listeners, int chunk_ms, int write_interval_ms);

#endif
