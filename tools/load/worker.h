/* A load worker: one process, one epoll loop, a preallocated table of
 * connections. It joins its share of the listeners at its share of the join
 * rate, reads every connection as fast as data comes, reports counts to the
 * parent once a second, and at the end of the run sends its final counts and
 * join times, then returns.
 *
 * Listener i of the run belongs to worker i % procs and binds source address
 * i % src_addrs (127.0.0.1 + k, for IPv4 targets), so that each address stays
 * far below the ~28,000 ephemeral ports one source/destination pair offers.
 *
 * Contract: worker_run() is called in a freshly forked child. It returns 0 when
 * the run ended normally (or early on SIGTERM), or a negative errno if it could
 * not start; the caller _exit()s. `t0_us` is the run's start on load_now_us().
 */
#ifndef TRIBUNE_TOOLS_LOAD_WORKER_H
#define TRIBUNE_TOOLS_LOAD_WORKER_H

#include <stdint.h>

#include "client.h"
#include "load.h"

int worker_run(const struct load_opts *o, const struct load_target *t, const struct client_ops *ops,
               uint32_t worker, int pipe_fd, int64_t t0_us);

#endif
