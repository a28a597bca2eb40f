/* Per client address admission: a join-rate bucket and a count of connections
 * still in their handshake, per address, in a fixed-size table (DESIGN.md,
 * Guard; issue 5 item 2).
 *
 *   accept --addr_on_connect()--> ADDR_OK (one more handshake counted, a slot handle)
 *                                 ADDR_RATE        the address's join bucket is empty
 *                                 ADDR_HANDSHAKES  too many of its connections are in
 *                                                  their handshake
 *   handshake over, whichever way --addr_on_handshake_done(slot)--> count given back
 *
 * Established listeners hold nothing here: thousands of people behind one
 * carrier-grade NAT address can listen at once; only their joins are paced,
 * and only their unfinished handshakes are capped.
 *
 * Keys. An IPv4 client is keyed by its full address; an IPv4-mapped IPv6
 * address (::ffff:a.b.c.d, what a dual-stack socket reports) is that IPv4
 * client. An IPv6 client is keyed by its /64 prefix: a /64 is the smallest
 * block a subscriber gets and a host picks its low 64 bits freely (privacy
 * addresses), so a full-address key would give one host 2^64 buckets. A key
 * is stored exactly (a kind, 4 or 6, and 64 bits), so two addresses are never
 * confused. Other families (AF_UNIX...) and a NULL address are not limited.
 * An attacker holding a whole IPv6 /48 has 65536 keys: this table paces an
 * address, not a botnet; node-wide admission bounds the total.
 *
 * Layout. 2^slots_log2 slots of 24 bytes, allocated once at init, never
 * again, whatever the number of addresses seen. They form sets of ADDR_WAYS
 * consecutive slots; a keyed hash (random secret seed, so that nobody can aim
 * many addresses at one set) picks an address's set, and the address lives in
 * one slot of that set or nowhere: an 8-way set-associative cache. A lookup
 * scans the 8 slots (three cache lines); nothing moves, nothing is deleted.
 *
 *   slots: [ set 0: w0 w1 .. w7 ][ set 1: w0 .. w7 ] .. [ set 2^slots_log2/8 - 1 ]
 *   slot:  { key: IPv4 address or IPv6 /64 | kind: 0 empty, 4, 6
 *            tat_ns: when its bucket is full again | handshakes: in progress }
 *
 * Bucket. A token bucket stored as one time (GCRA, the "generic cell rate
 * algorithm"): with T = 1/rate and tau = (burst - 1) * T, a join at `now` is
 * allowed when tat - now <= tau, and moves tat to max(tat, now) + T; a refused
 * join changes nothing. This admits exactly what a bucket of `burst` tokens
 * refilled at `rate` per second admits (burst at once, then one per T), with
 * no refill to compute. tat - now is the bucket's deficit: tat <= now is a full
 * bucket. So a slot with tat <= now and no handshake carries no information:
 * it is as good as empty.
 *
 * Eviction. A new address takes a slot of its set, by value:
 *   1. an empty slot, or one that carries nothing (full bucket, no handshake):
 *      nothing is lost;
 *   2. else the slot with no handshake and the fullest bucket (lowest tat): an
 *      idle address loses a partly drained bucket, i.e. is forgiven a few joins
 *      (counted in `evicted`); a hammered address has the emptiest bucket and
 *      is the last to go;
 *   3. never a slot with a handshake in progress, so that a slot handle stays
 *      valid until its addr_on_handshake_done(), and a capped address stays
 *      capped.
 * When all 8 slots of the set have handshakes in progress, the new address is
 * admitted without state: ADDR_OK, slot ADDR_SLOT_NONE, counted in
 * `untracked` (fail open). Why not refuse (fail closed): filling a set takes 8
 * addresses that hash there (the seed is secret) each holding a handshake
 * open; an attacker with enough addresses to fill the table would then lock
 * out every new legitimate address for the price of a few thousand half-open
 * connections, fewer than the node's capacity. Failing open costs only what
 * the table's absence would: that set's newcomers are not paced while it is
 * full, addresses already in the table keep their limits, handshake deadlines
 * empty the set within seconds, and node-wide admission still bounds the
 * total. Existing listeners never pay either way. A rising `untracked` is the
 * sign of such an attack (or of a table too small).
 *
 * Cost: one hash, one scan of 8 slots, no allocation, no system call.
 *
 * Workers. The kernel spreads a port's connections over the workers by a hash
 * of the 4-tuple (SO_REUSEPORT), source port included, so one address's joins
 * reach every worker and each worker's table sees about 1/N of them: the
 * limits are per worker.
 * Thread: not thread-safe; one table per worker, used from its loop only.
 */
#ifndef TRIBUNE_GUARD_ADDR_H
#define TRIBUNE_GUARD_ADDR_H

#include <stdint.h>
#include <sys/socket.h>

enum {
    ADDR_WAYS = 8,            /* slots per set: the probe length */
    ADDR_SLOTS_LOG2_MIN = 3,  /* one set */
    ADDR_SLOTS_LOG2_MAX = 20, /* 1 Mi slots, 24 MiB */
};
#define ADDR_SLOT_NONE UINT32_MAX /* the handle of an admission without state */
#define ADDR_RATE_MIN 0.001       /* joins per second: one per 1000 s */
#define ADDR_RATE_MAX 1e6
#define ADDR_BURST_MAX 1e6

/* Limits per address, per worker. 0 means unlimited for conn_rate and
 * max_handshakes. */
struct addr_limits {
    double conn_rate;        /* joins per second, 0 or in [ADDR_RATE_MIN, ADDR_RATE_MAX] */
    double conn_burst;       /* joins at once, in [0, ADDR_BURST_MAX]; 0 means one second's
                                worth of conn_rate; below 1 counts as 1 */
    unsigned max_handshakes; /* connections in their handshake at once */
};

enum addr_verdict {
    ADDR_OK,         /* admitted; its handshake is counted until addr_on_handshake_done() */
    ADDR_RATE,       /* refused: the address's join bucket is empty */
    ADDR_HANDSHAKES, /* refused: the address has max_handshakes connections in handshake */
};

struct addr_slot {
    uint64_t key;        /* IPv4 address (host order) or IPv6 /64 prefix (big-endian value) */
    uint64_t tat_ns;     /* when the bucket is full again; 0 in a new slot */
    uint32_t kind;       /* 0: empty, 4: IPv4, 6: IPv6 */
    uint32_t handshakes; /* connections admitted and not yet done */
};

struct addr_table {
    struct addr_slot *slots; /* read-only; nslots of them, NULL when nothing is limited */
    uint32_t nslots;         /* read-only; 0 when nothing is limited */
    uint32_t set_mask;       /* private; number of sets - 1 */
    uint64_t seed[2];        /* private; the hash's secret */
    uint64_t interval_ns;    /* private; T = 1/rate, 0 when the rate is unlimited */
    uint64_t tau_ns;         /* private; (burst - 1) * T */
    uint32_t max_handshakes; /* private; 0 when unlimited */
    /* Read-only counters. */
    uint64_t evicted;   /* slots taken from an address whose bucket was not full */
    uint64_t untracked; /* admissions without state: the address's set was all in handshake */
    uint64_t stale;     /* addr_on_handshake_done() with a handle that did not match */
};

/* Sets up `t` with 2^slots_log2 slots (ADDR_SLOTS_LOG2_MIN..MAX) and the
 * limits `lim` (copied), drawing a fresh hash seed. The slots are allocated
 * here, once; when both conn_rate and max_handshakes are 0 nothing is limited
 * and nothing is allocated. Returns 0, -EINVAL for a size or limit out of its
 * range (or NaN), -ENOMEM; on error `t` is zeroed (fini is still safe). */
int addr_table_init(struct addr_table *t, unsigned slots_log2, const struct addr_limits *lim);

/* Frees the slots and zeroes `t`. Safe on a zeroed or failed table. */
void addr_table_fini(struct addr_table *t);

/* A connection from `sa` was accepted at `now_ms` (monotonic milliseconds,
 * any origin; should it go backwards, buckets look emptier, never fuller, and
 * nothing breaks). Checks the handshake cap, then the join bucket, and on ADDR_OK
 * takes a join from the bucket and counts one handshake for the address.
 * *slot_out receives the handle to give back to addr_on_handshake_done(), or
 * ADDR_SLOT_NONE (which that function ignores) when the admission holds no
 * state: nothing limited, another family, or the address's set full of
 * handshakes (fail open, see above). On a refusal nothing changes and
 * *slot_out is ADDR_SLOT_NONE. Never allocates, cannot fail otherwise. */
enum addr_verdict addr_on_connect(struct addr_table *t, const struct sockaddr *sa, uint64_t now_ms,
                                  uint32_t *slot_out);

/* The connection admitted with handle `slot` for `sa` left its handshake,
 * whichever way: it became a listener, was handed over to the master, was
 * refused, cut at its deadline, or closed. Call it exactly once per ADDR_OK,
 * with the same `sa`. Gives one handshake back to the address. A handle that
 * no longer holds `sa`'s key, or whose count is already 0 (a caller's double
 * call), changes nothing and is counted in `stale`: the count never
 * underflows and another address's count is never touched. ADDR_SLOT_NONE is
 * ignored. */
void addr_on_handshake_done(struct addr_table *t, uint32_t slot, const struct sockaddr *sa);

/* How long, in milliseconds from `now_ms`, until `sa`'s bucket admits one
 * more connection: 0 when it would now (or the address is not in the table,
 * or nothing is limited). Read-only: changes nothing, so that a caller can ask
 * before deciding whether to charge (addr_on_connect), e.g. to refuse further
 * attempts of an address that spent its budget of failed keys. */
uint64_t addr_wait_ms(const struct addr_table *t, const struct sockaddr *sa, uint64_t now_ms);

/* The slot holding `sa`'s key, or ADDR_SLOT_NONE when it holds none (or is
 * not limited). Read-only: for tests and diagnostics (t->slots[i]). */
uint32_t addr_lookup(const struct addr_table *t, const struct sockaddr *sa);

#endif
