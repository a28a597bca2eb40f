/* tribune-load's attack modes: listeners that misbehave, and connections that
 * are not listeners. Each mode is a few options (struct load_attack), a rule
 * here, and a hook in the driver (worker.c); new modes are added the same way.
 *
 *   --stop-reading K --stop-after S
 *       The last K listeners of the run (the highest indices: the last to
 *       join) stop reading S seconds after their first audio page. Their
 *       sockets get a small receive buffer and segment size before connect()
 *       (attack_tune_stopper), so that the server's send buffer fills within a
 *       second or two of the stop instead of after megabytes; on loopback the
 *       64 KiB MSS would otherwise turn a small window into long stalls. From
 *       the stop on they count as `stopped` and as stalled (never hearing).
 *
 *   --flood N --flood-rate R [--flood-start S] [--flood-trickle MS]
 *       N extra connections, R per second from S seconds into the run, from
 *       source addresses other than the listeners' (attack_flood_source:
 *       127.0.1.1 and up when the listeners fit below it). They connect and
 *       send nothing (idle), or with --flood-trickle one byte of a request head
 *       that never ends every MS (slowloris). Each is held until the server
 *       closes it or the run ends; flood_ops counts what the server did.
 *
 * Contract: pure functions of the options, plus attack_tune_stopper() which
 * sets socket options on a fresh socket. Loopback only (url.h) and bounded by
 * the run's duration like every connection of the tool.
 */
#ifndef TRIBUNE_TOOLS_LOAD_ATTACK_H
#define TRIBUNE_TOOLS_LOAD_ATTACK_H

#include <stdbool.h>
#include <stdint.h>

#include "load.h"

#define ATTACK_STOPPER_RCVBUF 2048 /* SO_RCVBUF of a listener that will stop reading */
#define ATTACK_STOPPER_MAXSEG 1000 /* TCP_MAXSEG, likewise */
#define ATTACK_FLOOD_PER_SRC 10000 /* flood connections per source address */

/* True when listener `index` (0-based, over the run) will stop reading. */
bool attack_is_stopper(const struct load_opts *o, uint32_t index);
/* Small receive buffer and segment size; call before connect(). */
int attack_tune_stopper(int fd);
/* Whether a stopper whose first audio came at `first_audio_us` stops now. */
bool attack_should_stop(const struct load_opts *o, int64_t first_audio_us, int64_t now_us);
/* IPv4 source address (host order) of flood connection `k`. */
uint32_t attack_flood_source(const struct load_opts *o, uint32_t k);
/* Checks the attack options against the rest; returns 0 or -EINVAL with a
 * message on stderr. */
int attack_check(const struct load_opts *o);

#endif
