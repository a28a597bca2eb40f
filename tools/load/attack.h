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
 *   --flood N --flood-rate R [--flood-start S] [--flood-mode M] [--flood-addrs K]
 *           [--flood-trickle MS]
 *       N extra connections, R per second from S seconds into the run, from
 *       source addresses other than the listeners' (attack_flood_source:
 *       127.0.1.1 and up when the listeners fit below it; K of them, or one
 *       per ATTACK_FLOOD_PER_SRC connections). Each starts on schedule
 *       whatever became of the ones before. Once connected, by mode M:
 *         hold       nothing, or with --flood-trickle one byte of a request
 *                    head that never ends every MS (slowloris); held until
 *                    the server closes it or the run ends
 *         reset      closed at once with a reset (SO_LINGER 0): connect-and-reset
 *         junk       1-4 KB of random bytes (ATTACK_JUNK_MIN..MAX, different
 *                    for each connection), then read until the server closes
 *         oversize   a request line of ATTACK_OVERSIZE_URL bytes (even
 *                    connections) or ATTACK_OVERSIZE_FIELDS header fields (odd)
 *         slow-body  a valid "POST /api/spaces" head with Content-Length
 *                    ATTACK_SLOW_BODY_LEN, then one body byte every MS
 *       flood_ops parses whatever the server answers and counts each
 *       connection by how it ended: answered (by status), bad answer, closed
 *       without an answer, reset by the server, reset by us, still waiting.
 *
 * The bytes each connection sends are a pure function of the mode and its
 * flood index (struct flood_req, attack_flood_fill, attack_trickle_byte), so
 * that a unit test can read them and a run can be repeated.
 *
 * Contract: pure functions of the options, plus attack_tune_stopper() which
 * sets socket options on a fresh socket. Loopback only (url.h) and bounded by
 * the run's duration like every connection of the tool.
 */
#ifndef TRIBUNE_TOOLS_LOAD_ATTACK_H
#define TRIBUNE_TOOLS_LOAD_ATTACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "load.h"

#define ATTACK_STOPPER_RCVBUF 2048 /* SO_RCVBUF of a listener that will stop reading */
#define ATTACK_STOPPER_MAXSEG 1000 /* TCP_MAXSEG, likewise */
#define ATTACK_FLOOD_PER_SRC 10000 /* flood connections per source address, by default */
#define ATTACK_JUNK_MIN 1024
#define ATTACK_JUNK_MAX 4096
#define ATTACK_OVERSIZE_URL 65536  /* the long request target */
#define ATTACK_OVERSIZE_FIELDS 200 /* the many header fields */
/* Under the server's 64 KiB cap on request bodies (a larger Content-Length
 * is refused with 413 at once): the body is read, slowly, until a deadline. */
#define ATTACK_SLOW_BODY_LEN 60000
#define ATTACK_ENDLESS UINT32_MAX

/* What one flood connection sends: `len` bytes at once after connecting
 * (attack_flood_fill), then `trickle_len` bytes one per trickle interval
 * (attack_trickle_byte; ATTACK_ENDLESS: never ends). */
struct flood_req {
    uint32_t len;
    uint32_t trickle_len;
    uint32_t seed; /* junk: this connection's bytes */
    uint8_t mode;  /* enum load_flood_mode */
    uint8_t kind;  /* oversize: 0 a long request line, 1 many header fields */
};

/* True when listener `index` (0-based, over the run) will stop reading. */
bool attack_is_stopper(const struct load_opts *o, uint32_t index);
/* Small receive buffer and segment size; call before connect(). */
int attack_tune_stopper(int fd);
/* Whether a stopper whose first audio came at `first_audio_us` stops now. */
bool attack_should_stop(const struct load_opts *o, int64_t first_audio_us, int64_t now_us);
/* IPv4 source address (host order) of flood connection `k`. */
uint32_t attack_flood_source(const struct load_opts *o, uint32_t k);
/* How many source addresses the flood uses (--flood-addrs or the default). */
uint32_t attack_flood_addrs(const struct load_opts *o);
/* The request of flood connection `k` in `mode`; `is_trickle` when
 * --flood-trickle is set (hold: the slowloris head). */
void attack_flood_req(uint32_t mode, bool is_trickle, uint32_t k, struct flood_req *r);
/* Bytes [off, off + n) of r's bulk into `buf`; returns n (at most `cap`, 0 at
 * the end). */
size_t attack_flood_fill(const struct flood_req *r, uint32_t off, uint8_t *buf, size_t cap);
/* Trickled byte `i` of r. */
uint8_t attack_trickle_byte(const struct flood_req *r, uint32_t i);
/* The mode's name on the command line ("hold", "reset", ...), and back
 * (-EINVAL when unknown). */
const char *attack_flood_mode_name(uint32_t mode);
int attack_flood_mode_parse(const char *s);
/* Checks the attack options against the rest; returns 0 or -EINVAL with a
 * message on stderr. */
int attack_check(const struct load_opts *o);

#endif
