/* Per client address admission: see addr.h for the layout, the bucket and the
 * eviction rules. */
#include "guard/addr.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/clock.h"

enum { KIND_EMPTY = 0, KIND_V4 = 4, KIND_V6 = 6 };
#define NS_PER_MS 1000000ull
#define NS_PER_S 1e9

struct key {
    uint64_t bits;
    uint32_t kind;
};

static uint64_t load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The key of `sa` (see addr.h, Keys); false for a family that is not limited. */
static bool key_of(const struct sockaddr *sa, struct key *k)
{
    if (!sa) return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        k->bits = load_be((const uint8_t *)&in->sin_addr, 4);
        k->kind = KIND_V4;
        return true;
    }
    if (sa->sa_family != AF_INET6) return false;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    const uint8_t *b = in6->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        k->bits = load_be(b + 12, 4);
        k->kind = KIND_V4;
    } else {
        k->bits = load_be(b, 8);
        k->kind = KIND_V6;
    }
    return true;
}

/* The high and low halves of a 64x64 product folded together (the mixing step
 * of wyhash): cheap, and every output bit depends on every input bit. */
static inline uint64_t mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint32_t set_of(const struct addr_table *t, const struct key *k)
{
    uint64_t h = mum(k->bits ^ t->seed[0], (t->seed[1] ^ k->kind) | 1);
    h = mum(h ^ t->seed[1], 0x9e3779b97f4a7c15ull);
    return (uint32_t)(h >> 32) & t->set_mask;
}

static inline bool holds(const struct addr_slot *s, const struct key *k)
{
    return s->key == k->bits && s->kind == k->kind;
}

/* The slot of k's set that holds k (*is_found true); else the one a newcomer
 * takes: the first empty one or, among those with no handshake, the fullest
 * bucket (lowest tat; an empty slot has tat 0); else ADDR_SLOT_NONE, every
 * slot of the set being in its handshake. */
static uint32_t find_slot(const struct addr_table *t, const struct key *k, bool *is_found)
{
    uint32_t base = set_of(t, k) * ADDR_WAYS;
    uint32_t victim = ADDR_SLOT_NONE;
    uint64_t victim_tat = UINT64_MAX;
    for (uint32_t i = base; i < base + ADDR_WAYS; i++) {
        const struct addr_slot *s = &t->slots[i];
        if (holds(s, k)) {
            *is_found = true;
            return i;
        }
        if (s->handshakes == 0 && s->tat_ns < victim_tat) {
            victim = i;
            victim_tat = s->tat_ns;
        }
    }
    *is_found = false;
    return victim;
}

/* Gives slot `s` to key k with a full bucket and no handshake. */
static void claim(struct addr_table *t, struct addr_slot *s, const struct key *k, uint64_t now_ns)
{
    if (s->kind != KIND_EMPTY && s->tat_ns > now_ns) t->evicted++;
    s->key = k->bits;
    s->kind = k->kind;
    s->tat_ns = 0;
    s->handshakes = 0;
}

/* The handshake cap, then the bucket (GCRA, see addr.h); commits only an
 * admission. */
static enum addr_verdict admit(const struct addr_table *t, struct addr_slot *s, uint64_t now_ns)
{
    if (t->max_handshakes && s->handshakes >= t->max_handshakes) return ADDR_HANDSHAKES;
    if (s->handshakes == UINT32_MAX) return ADDR_HANDSHAKES;
    if (t->interval_ns) {
        uint64_t tat = s->tat_ns > now_ns ? s->tat_ns : now_ns;
        if (tat - now_ns > t->tau_ns) return ADDR_RATE;
        s->tat_ns = tat + t->interval_ns;
    }
    s->handshakes++;
    return ADDR_OK;
}

static bool is_valid_limits(const struct addr_limits *lim)
{
    double r = lim->conn_rate, b = lim->conn_burst;
    if (!(r == 0 || (r >= ADDR_RATE_MIN && r <= ADDR_RATE_MAX))) return false;
    return b >= 0 && b <= ADDR_BURST_MAX; /* false for NaN */
}

static void seed_hash(struct addr_table *t)
{
    if (getrandom(t->seed, sizeof(t->seed), GRND_NONBLOCK) == (ssize_t)sizeof(t->seed)) return;
    /* No entropy yet (early boot): unpredictable enough to spread addresses. */
    t->seed[0] = mum(clock_us() ^ 0x243f6a8885a308d3ull, (uint64_t)(uintptr_t)t | 1);
    t->seed[1] = mum(t->seed[0] ^ 0x13198a2e03707344ull, (uint64_t)getpid() << 1 | 1);
}

int addr_table_init(struct addr_table *t, unsigned slots_log2, const struct addr_limits *lim)
{
    memset(t, 0, sizeof(*t));
    if (slots_log2 < ADDR_SLOTS_LOG2_MIN || slots_log2 > ADDR_SLOTS_LOG2_MAX) return -EINVAL;
    if (!lim || !is_valid_limits(lim)) return -EINVAL;
    if (lim->conn_rate == 0 && lim->max_handshakes == 0) return 0;
    if (lim->conn_rate > 0) {
        double burst = lim->conn_burst > 0 ? lim->conn_burst : lim->conn_rate;
        if (burst < 1) burst = 1;
        t->interval_ns = (uint64_t)llround(NS_PER_S / lim->conn_rate);
        /* From the rounded T, so that `burst` joins at one instant always fit. */
        t->tau_ns = (uint64_t)llround((burst - 1) * (double)t->interval_ns);
    }
    t->max_handshakes = lim->max_handshakes;
    uint32_t n = 1u << slots_log2;
    /* n * 24 bytes is a multiple of 64 for n >= 8: sets start on cache lines. */
    struct addr_slot *slots = aligned_alloc(64, n * sizeof(*slots));
    if (!slots) {
        memset(t, 0, sizeof(*t));
        return -ENOMEM;
    }
    memset(slots, 0, n * sizeof(*slots));
    t->slots = slots;
    t->nslots = n;
    t->set_mask = n / ADDR_WAYS - 1;
    seed_hash(t);
    return 0;
}

void addr_table_fini(struct addr_table *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

enum addr_verdict addr_on_connect(struct addr_table *t, const struct sockaddr *sa, uint64_t now_ms,
                                  uint32_t *slot_out)
{
    *slot_out = ADDR_SLOT_NONE;
    struct key k;
    if (!t->slots || !key_of(sa, &k)) return ADDR_OK;
    uint64_t now_ns = now_ms * NS_PER_MS;
    bool is_found;
    uint32_t i = find_slot(t, &k, &is_found);
    if (i == ADDR_SLOT_NONE) {
        t->untracked++;
        return ADDR_OK;
    }
    struct addr_slot *s = &t->slots[i];
    if (!is_found) claim(t, s, &k, now_ns);
    enum addr_verdict v = admit(t, s, now_ns);
    if (v == ADDR_OK) *slot_out = i;
    return v;
}

void addr_on_handshake_done(struct addr_table *t, uint32_t slot, const struct sockaddr *sa)
{
    struct key k;
    if (slot == ADDR_SLOT_NONE) return;
    if (slot >= t->nslots || !key_of(sa, &k)) {
        t->stale++;
        return;
    }
    struct addr_slot *s = &t->slots[slot];
    if (!holds(s, &k) || s->handshakes == 0) {
        t->stale++;
        return;
    }
    s->handshakes--;
}

uint64_t addr_wait_ms(const struct addr_table *t, const struct sockaddr *sa, uint64_t now_ms)
{
    uint32_t i = addr_lookup(t, sa);
    if (i == ADDR_SLOT_NONE || !t->interval_ns) return 0;
    uint64_t now_ns = now_ms * NS_PER_MS, tat = t->slots[i].tat_ns;
    if (tat <= now_ns || tat - now_ns <= t->tau_ns) return 0;
    return (tat - now_ns - t->tau_ns + NS_PER_MS - 1) / NS_PER_MS;
}

uint32_t addr_lookup(const struct addr_table *t, const struct sockaddr *sa)
{
    struct key k;
    if (!t->slots || !key_of(sa, &k)) return ADDR_SLOT_NONE;
    uint32_t base = set_of(t, &k) * ADDR_WAYS;
    for (uint32_t i = base; i < base + ADDR_WAYS; i++) {
        if (holds(&t->slots[i], &k)) return i;
    }
    return ADDR_SLOT_NONE;
}
