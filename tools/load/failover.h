/* tribune-load --failover: a listener with several URLs (an edge and its
 * siblings) moves to another one when its stream dies, as a player with a
 * list of mirrors does.
 *
 * Every listener starts on the first URL (the positional one), as without
 * --failover. Its list goes on with the --failover URLs, rotated by the
 * listener's number, so that the crowd of a dead edge spreads evenly over
 * the others instead of all landing on the next one:
 *
 *   URLs u0 (positional), f1, f2 (--failover f1,f2)
 *   listener 0: u0 -> f1 -> f2 -> u0 ...     listener 1: u0 -> f2 -> f1 -> u0 ...
 *
 * A stream dies when: connect() fails (refused, unreachable), the connection
 * is reset or closed by the server (before or after the response head), the
 * response is a 5xx (503 included), or nothing arrives for --failover-idle
 * (the driver's idle cut, CLOSE_IDLE). The listener then tries its next URL
 * after the --retry mode's delay (jitter unless another mode is named:
 * exponential backoff with full jitter from 1 s, never below a 503's
 * Retry-After; see retry.h). A 4xx, or bytes that are not a stream, end the
 * listener as without --failover.
 *
 * Contract: pure functions, no allocation.
 */
#ifndef TRIBUNE_TOOLS_LOAD_FAILOVER_H
#define TRIBUNE_TOOLS_LOAD_FAILOVER_H

#include <stdbool.h>
#include <stdint.h>

#define FAILOVER_IDLE_MS 5000 /* default --failover-idle */

/* The URL (0: positional, 1..n_urls-1: --failover in order) at position
 * `pos` (0 = start; taken modulo n_urls) of listener `index`'s list. */
uint32_t failover_url(uint32_t index, uint32_t pos, uint32_t n_urls);

/* Whether an attempt that ended with close reason `reason` (client.h) and
 * response status `status` (0: none read) makes the listener fail over. */
bool failover_is_death(int reason, uint32_t status);

#endif
