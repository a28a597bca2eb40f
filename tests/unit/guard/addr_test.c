/* Unit tests for guard/addr.c: the join bucket over simulated time, the
 * handshake cap, keys (IPv4, IPv4-mapped IPv6, IPv6 /64), eviction by value,
 * fail open on a set full of handshakes, stale handles, a million addresses
 * through a fixed table, and the cost of a call (printed, not asserted). */
#include "guard/addr.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "core/clock.h"

#include "../harness.h"

#define SA(ss) ((const struct sockaddr *)&(ss))

static struct sockaddr_storage v4(uint32_t a)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(40000);
    in->sin_addr.s_addr = htonl(a);
    return ss;
}

/* An address from its text, IPv4 or IPv6. */
static struct sockaddr_storage ip(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(40001);
        ck_assert_int_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, text, &in->sin_addr), 1);
    }
    return ss;
}

/* IPv6 address number i: /64 prefix 2001:db8:<i>::/64, interface bits from i. */
static struct sockaddr_storage v6(uint32_t i)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    uint8_t *b = in6->sin6_addr.s6_addr;
    b[0] = 0x20, b[1] = 0x01, b[2] = 0x0d, b[3] = 0xb8;
    b[4] = (uint8_t)(i >> 24), b[5] = (uint8_t)(i >> 16), b[6] = (uint8_t)(i >> 8);
    b[7] = (uint8_t)i;
    b[15] = (uint8_t)(i * 37 + 1);
    return ss;
}

static enum addr_verdict connect_at(struct addr_table *t, const struct sockaddr_storage *a,
                                    uint64_t now_ms, uint32_t *slot)
{
    return addr_on_connect(t, (const struct sockaddr *)a, now_ms, slot);
}

/* A join whose handshake ends at once (the usual case): the bucket pays, the
 * handshake count does not stay up. */
static enum addr_verdict join(struct addr_table *t, const struct sockaddr_storage *a,
                              uint64_t now_ms)
{
    uint32_t slot;
    enum addr_verdict v = connect_at(t, a, now_ms, &slot);
    if (v == ADDR_OK) addr_on_handshake_done(t, slot, (const struct sockaddr *)a);
    return v;
}

static uint32_t handshakes_of(const struct addr_table *t, const struct sockaddr_storage *a)
{
    uint32_t i = addr_lookup(t, SA(*a));
    return i == ADDR_SLOT_NONE ? 0 : t->slots[i].handshakes;
}

START_TEST(bucket_burst_then_rate)
{
    struct addr_table t;
    const struct addr_limits lim = {.conn_rate = 10, .conn_burst = 5};
    ck_assert_int_eq(addr_table_init(&t, 6, &lim), 0);
    struct sockaddr_storage a = ip("192.0.2.1"), b = ip("192.0.2.2");
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(join(&t, &a, 1000), ADDR_OK);
    ck_assert_int_eq(join(&t, &a, 1000), ADDR_RATE);
    ck_assert_int_eq(join(&t, &a, 1099), ADDR_RATE);
    ck_assert_int_eq(join(&t, &a, 1100), ADDR_OK);
    ck_assert_int_eq(join(&t, &a, 1100), ADDR_RATE);
    ck_assert_int_eq(join(&t, &a, 1199), ADDR_RATE);
    ck_assert_int_eq(join(&t, &a, 1200), ADDR_OK);
    /* Another address has its own bucket. */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(join(&t, &b, 1200), ADDR_OK);
    ck_assert_int_eq(join(&t, &b, 1200), ADDR_RATE);
    /* Refused joins cost nothing; a long idle refills to the burst, no more. */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(join(&t, &a, 100000), ADDR_OK);
    ck_assert_int_eq(join(&t, &a, 100000), ADDR_RATE);
    /* Hammered once per ms for 10 s from a full bucket: the burst, then one per
     * 100 ms (at +100, +200 .. +9900). */
    unsigned ok = 0;
    for (uint64_t now = 200000; now < 210000; now++)
        ok += join(&t, &a, now) == ADDR_OK;
    ck_assert_uint_eq(ok, 5 + 99);
    ck_assert_uint_eq(handshakes_of(&t, &a), 0);
    addr_table_fini(&t);
}
END_TEST

/* addr_wait_ms reads the bucket without charging it: the key-attempt limit
 * (5 failures, then one per 12 s) asks it before checking a key. */
START_TEST(wait_is_read_only)
{
    struct addr_table t;
    const struct addr_limits lim = {.conn_rate = 5.0 / 60, .conn_burst = 5};
    ck_assert_int_eq(addr_table_init(&t, 6, &lim), 0);
    struct sockaddr_storage a = ip("192.0.2.7"), b = ip("2001:db8:1:2::9"),
                            c = ip("2001:db8:1:2::a");
    ck_assert_uint_eq(addr_wait_ms(&t, SA(a), 1000), 0); /* unknown */
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_eq(addr_wait_ms(&t, SA(a), 1000), 0);
        ck_assert_int_eq(join(&t, &a, 1000), ADDR_OK);
    }
    /* spent: the next is 12 s away, and asking changes nothing */
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(addr_wait_ms(&t, SA(a), 1000), 12000);
    ck_assert_uint_eq(addr_wait_ms(&t, SA(a), 12999), 1);
    ck_assert_uint_eq(addr_wait_ms(&t, SA(a), 13000), 0);
    ck_assert_uint_eq(addr_wait_ms(&t, SA(b), 1000), 0);
    /* an IPv6 /64 is one address */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(join(&t, &b, 1000), ADDR_OK);
    ck_assert_uint_eq(addr_wait_ms(&t, SA(c), 1000), 12000);
    struct addr_table none;
    const struct addr_limits off = {0};
    ck_assert_int_eq(addr_table_init(&none, 6, &off), 0);
    ck_assert_uint_eq(addr_wait_ms(&none, SA(a), 1000), 0);
    addr_table_fini(&t);
}
END_TEST

START_TEST(bucket_fractions)
{
    struct addr_table t;
    struct sockaddr_storage a = ip("198.51.100.9");
    /* Burst 0: one second's worth of the rate, at least 1. */
    struct addr_limits lim = {.conn_rate = 0.5};
    ck_assert_int_eq(addr_table_init(&t, 3, &lim), 0);
    ck_assert_int_eq(join(&t, &a, 0), ADDR_OK);
    ck_assert_int_eq(join(&t, &a, 0), ADDR_RATE);
    ck_assert_int_eq(join(&t, &a, 1999), ADDR_RATE);
    ck_assert_int_eq(join(&t, &a, 2000), ADDR_OK);
    addr_table_fini(&t);
    /* Rate 3: T = 333.33 ms, below a millisecond's precision. */
    lim.conn_rate = 3;
    ck_assert_int_eq(addr_table_init(&t, 3, &lim), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(join(&t, &a, 5000), ADDR_OK);
    ck_assert_int_eq(join(&t, &a, 5000), ADDR_RATE);
    ck_assert_int_eq(join(&t, &a, 5333), ADDR_RATE);
    ck_assert_int_eq(join(&t, &a, 5334), ADDR_OK);
    ck_assert_int_eq(join(&t, &a, 5666), ADDR_RATE);
    ck_assert_int_eq(join(&t, &a, 5667), ADDR_OK);
    addr_table_fini(&t);
    /* A burst below 1 counts as 1; 2.5 admits 2 at once, the next after T / 2. */
    lim = (struct addr_limits){.conn_rate = 10, .conn_burst = 0.2};
    ck_assert_int_eq(addr_table_init(&t, 3, &lim), 0);
    ck_assert_int_eq(join(&t, &a, 0), ADDR_OK);
    ck_assert_int_eq(join(&t, &a, 0), ADDR_RATE);
    addr_table_fini(&t);
    lim.conn_burst = 2.5;
    ck_assert_int_eq(addr_table_init(&t, 3, &lim), 0);
    ck_assert_int_eq(join(&t, &a, 0), ADDR_OK);
    ck_assert_int_eq(join(&t, &a, 0), ADDR_OK);
    ck_assert_int_eq(join(&t, &a, 0), ADDR_RATE);
    ck_assert_int_eq(join(&t, &a, 49), ADDR_RATE);
    ck_assert_int_eq(join(&t, &a, 50), ADDR_OK);
    addr_table_fini(&t);
}
END_TEST

START_TEST(handshake_cap_and_release)
{
    struct addr_table t;
    struct addr_limits lim = {.max_handshakes = 3};
    ck_assert_int_eq(addr_table_init(&t, 6, &lim), 0);
    struct sockaddr_storage a = ip("203.0.113.5"), b = ip("203.0.113.6");
    uint32_t s[4];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(connect_at(&t, &a, 0, &s[i]), ADDR_OK);
    ck_assert_uint_eq(s[0], s[1]);
    ck_assert_uint_eq(s[0], s[2]);
    ck_assert_uint_eq(t.slots[s[0]].handshakes, 3);
    ck_assert_int_eq(connect_at(&t, &a, 0, &s[3]), ADDR_HANDSHAKES);
    ck_assert_uint_eq(s[3], ADDR_SLOT_NONE);
    ck_assert_int_eq(connect_at(&t, &b, 0, &s[3]), ADDR_OK); /* b is not a */
    addr_on_handshake_done(&t, s[0], SA(a));
    ck_assert_uint_eq(handshakes_of(&t, &a), 2);
    ck_assert_int_eq(connect_at(&t, &a, 0, &s[0]), ADDR_OK);
    uint32_t refused;
    ck_assert_int_eq(connect_at(&t, &a, 0, &refused), ADDR_HANDSHAKES);
    ck_assert_uint_eq(refused, ADDR_SLOT_NONE);
    for (int i = 0; i < 3; i++)
        addr_on_handshake_done(&t, s[i], SA(a));
    ck_assert_uint_eq(handshakes_of(&t, &a), 0);
    ck_assert_uint_eq(handshakes_of(&t, &b), 1);
    /* No rate limit: joins that finish their handshake are never refused. */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(join(&t, &a, 0), ADDR_OK);
    ck_assert_uint_eq(t.stale, 0);
    addr_table_fini(&t);

    /* Both limits: the cap is checked first; a refusal takes no join. */
    lim = (struct addr_limits){.conn_rate = 1, .conn_burst = 2, .max_handshakes = 2};
    ck_assert_int_eq(addr_table_init(&t, 6, &lim), 0);
    ck_assert_int_eq(connect_at(&t, &a, 0, &s[0]), ADDR_OK);
    ck_assert_int_eq(connect_at(&t, &a, 0, &s[1]), ADDR_OK);
    ck_assert_int_eq(connect_at(&t, &a, 0, &s[2]), ADDR_HANDSHAKES);
    addr_on_handshake_done(&t, s[0], SA(a));
    ck_assert_int_eq(connect_at(&t, &a, 0, &s[2]), ADDR_RATE);
    ck_assert_int_eq(connect_at(&t, &a, 999, &s[2]), ADDR_RATE);
    ck_assert_int_eq(connect_at(&t, &a, 1000, &s[2]), ADDR_OK);
    ck_assert_int_eq(connect_at(&t, &a, 5000, &s[3]), ADDR_HANDSHAKES);
    ck_assert_uint_eq(handshakes_of(&t, &a), 2);
    addr_table_fini(&t);
}
END_TEST

START_TEST(unlimited_and_other_families)
{
    struct addr_table t;
    const struct addr_limits none = {0};
    ck_assert_int_eq(addr_table_init(&t, 12, &none), 0);
    ck_assert_ptr_null(t.slots);
    ck_assert_uint_eq(t.nslots, 0);
    struct sockaddr_storage a = ip("192.0.2.1");
    uint32_t slot;
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(connect_at(&t, &a, 0, &slot), ADDR_OK);
        ck_assert_uint_eq(slot, ADDR_SLOT_NONE);
    }
    addr_on_handshake_done(&t, slot, SA(a));
    ck_assert_uint_eq(addr_lookup(&t, SA(a)), ADDR_SLOT_NONE);
    addr_table_fini(&t);

    const struct addr_limits lim = {.conn_rate = 1, .conn_burst = 1, .max_handshakes = 1};
    ck_assert_int_eq(addr_table_init(&t, 3, &lim), 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(addr_on_connect(&t, (struct sockaddr *)&un, 0, &slot), ADDR_OK);
        ck_assert_uint_eq(slot, ADDR_SLOT_NONE);
        ck_assert_int_eq(addr_on_connect(&t, NULL, 0, &slot), ADDR_OK);
        ck_assert_uint_eq(slot, ADDR_SLOT_NONE);
    }
    addr_on_handshake_done(&t, ADDR_SLOT_NONE, (struct sockaddr *)&un);
    for (uint32_t i = 0; i < t.nslots; i++)
        ck_assert_uint_eq(t.slots[i].kind, 0);
    ck_assert_uint_eq(t.untracked, 0);
    ck_assert_uint_eq(t.stale, 0);
    addr_table_fini(&t);
    addr_table_fini(&t); /* twice is safe */
}
END_TEST

START_TEST(init_validates)
{
    struct addr_table t;
    const struct addr_limits ok = {.conn_rate = 10, .conn_burst = 20, .max_handshakes = 4};
    ck_assert_int_eq(addr_table_init(&t, 2, &ok), -EINVAL);
    ck_assert_int_eq(addr_table_init(&t, 21, &ok), -EINVAL);
    ck_assert_int_eq(addr_table_init(&t, 12, NULL), -EINVAL);
    const struct addr_limits bad[] = {
        {.conn_rate = -1},
        {.conn_rate = NAN},
        {.conn_rate = INFINITY},
        {.conn_rate = 0.0001},
        {.conn_rate = 2e6},
        {.conn_rate = 1, .conn_burst = -1},
        {.conn_rate = 1, .conn_burst = NAN},
        {.conn_rate = 1, .conn_burst = 2e6},
        {.max_handshakes = 1, .conn_burst = INFINITY},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(addr_table_init(&t, 12, &bad[i]) == -EINVAL, "limits %zu accepted", i);
        ck_assert_ptr_null(t.slots);
        addr_table_fini(&t);
    }
    ck_assert_int_eq(addr_table_init(&t, 3, &ok), 0);
    ck_assert_uint_eq(t.nslots, 8);
    ck_assert_uint_eq((uintptr_t)t.slots % 64, 0);
    addr_table_fini(&t);
    ck_assert_ptr_null(t.slots);
    ck_assert_int_eq(addr_table_init(&t, 20, &ok), 0);
    ck_assert_uint_eq(t.nslots, 1u << 20);
    addr_table_fini(&t);
    const struct addr_limits edges = {.conn_rate = ADDR_RATE_MIN, .conn_burst = ADDR_BURST_MAX};
    ck_assert_int_eq(addr_table_init(&t, 3, &edges), 0);
    struct sockaddr_storage a = ip("192.0.2.1");
    ck_assert_int_eq(join(&t, &a, UINT64_C(1) << 40), ADDR_OK);
    addr_table_fini(&t);
}
END_TEST

START_TEST(ipv6_keyed_by_64)
{
    struct addr_table t;
    const struct addr_limits lim = {.max_handshakes = 2};
    ck_assert_int_eq(addr_table_init(&t, 8, &lim), 0);
    struct sockaddr_storage a = ip("2001:db8:1:2::1"), b = ip("2001:db8:1:2:ffff:eeee:dddd:cccc"),
                            c = ip("2001:db8:1:2::99"), other = ip("2001:db8:1:3::1");
    uint32_t sa, sb, sc, so;
    ck_assert_int_eq(connect_at(&t, &a, 0, &sa), ADDR_OK);
    ck_assert_int_eq(connect_at(&t, &b, 0, &sb), ADDR_OK);
    ck_assert_uint_eq(sa, sb);
    ck_assert_int_eq(connect_at(&t, &c, 0, &sc), ADDR_HANDSHAKES);
    ck_assert_int_eq(connect_at(&t, &other, 0, &so), ADDR_OK);
    ck_assert_uint_ne(so, sa);
    ck_assert_uint_eq(addr_lookup(&t, SA(c)), sa);
    /* Any address of the /64 gives its handshake back. */
    addr_on_handshake_done(&t, sa, SA(c));
    ck_assert_uint_eq(t.slots[sa].handshakes, 1);
    ck_assert_int_eq(connect_at(&t, &c, 0, &sc), ADDR_OK);
    /* ::1 (prefix ::/64) and 0.0.0.1, :: and 0.0.0.0 are four keys. */
    struct sockaddr_storage k[4] = {ip("::1"), ip("0.0.0.1"), ip("::"), ip("0.0.0.0")};
    uint32_t s[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(connect_at(&t, &k[i], 0, &s[i]), ADDR_OK);
    ck_assert_uint_eq(addr_lookup(&t, SA(k[0])), addr_lookup(&t, SA(k[2])));
    ck_assert_uint_eq(t.slots[s[0]].handshakes, 2);
    ck_assert_uint_ne(s[1], s[0]);
    ck_assert_uint_ne(s[3], s[0]);
    ck_assert_uint_ne(s[3], s[1]);
    ck_assert_uint_eq(t.slots[s[1]].handshakes, 1);
    ck_assert_uint_eq(t.slots[s[3]].handshakes, 1);
    addr_table_fini(&t);
}
END_TEST

START_TEST(v4_mapped_is_v4)
{
    struct addr_table t;
    const struct addr_limits lim = {.max_handshakes = 1};
    ck_assert_int_eq(addr_table_init(&t, 8, &lim), 0);
    struct sockaddr_storage a = ip("192.0.2.1"), mapped = ip("::ffff:192.0.2.1"),
                            mapped2 = ip("::ffff:192.0.2.2"), a2 = ip("192.0.2.2");
    uint32_t s, s2;
    ck_assert_int_eq(connect_at(&t, &a, 0, &s), ADDR_OK);
    ck_assert_int_eq(connect_at(&t, &mapped, 0, &s2), ADDR_HANDSHAKES);
    ck_assert_uint_eq(addr_lookup(&t, SA(mapped)), s);
    addr_on_handshake_done(&t, s, SA(mapped));
    ck_assert_uint_eq(t.slots[s].handshakes, 0);
    ck_assert_int_eq(connect_at(&t, &mapped, 0, &s2), ADDR_OK);
    ck_assert_uint_eq(s2, s);
    ck_assert_int_eq(connect_at(&t, &a, 0, &s2), ADDR_HANDSHAKES);
    /* The full IPv4 address is the key: the neighbour is someone else. */
    ck_assert_int_eq(connect_at(&t, &mapped2, 0, &s2), ADDR_OK);
    ck_assert_uint_ne(s2, s);
    ck_assert_int_eq(connect_at(&t, &a2, 0, &s2), ADDR_HANDSHAKES);
    ck_assert_uint_eq(t.stale, 0);
    addr_table_fini(&t);
}
END_TEST

/* One set (8 slots): which slot a newcomer takes does not depend on the hash. */
START_TEST(eviction_by_value)
{
    struct addr_table t;
    const struct addr_limits lim = {.conn_rate = 1, .conn_burst = 4, .max_handshakes = 2};
    ck_assert_int_eq(addr_table_init(&t, 3, &lim), 0);
    struct sockaddr_storage a[8], n[6];
    uint32_t s;
    for (int i = 0; i < 8; i++)
        a[i] = v4(0x0a000001 + i);
    for (int i = 0; i < 6; i++)
        n[i] = v4(0x0a010001 + i);
    /* t=0: a0..a3 stay in their handshake (busy); a4..a7 join and finish. An
     * empty table fills in slot order. */
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(i < 4 ? connect_at(&t, &a[i], 0, &s) : join(&t, &a[i], 0), ADDR_OK);
        ck_assert_uint_eq(addr_lookup(&t, SA(a[i])), i);
    }
    /* t=5000: a7's bucket is full again (carries nothing); a6, a4 and a5 have
     * spent 1, 2 and 3 joins. */
    ck_assert_int_eq(join(&t, &a[6], 5000), ADDR_OK);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(join(&t, &a[4], 5000), ADDR_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(join(&t, &a[5], 5000), ADDR_OK);
    /* Newcomers stay in their handshake: they take, in order, the full bucket,
     * then the fullest; never a busy slot. */
    const uint32_t expect[4] = {7, 6, 4, 5};
    const uint64_t evicted[4] = {0, 1, 2, 3};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(connect_at(&t, &n[i], 5000, &s), ADDR_OK);
        ck_assert_uint_eq(s, expect[i]);
        ck_assert_uint_eq(addr_lookup(&t, SA(a[expect[i]])), ADDR_SLOT_NONE);
        ck_assert_uint_eq(t.evicted, evicted[i]);
    }
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(handshakes_of(&t, &a[i]), 1);
    /* All 8 in their handshake: a newcomer is admitted without state (fail
     * open), as often as it comes, and nothing in the table changes. */
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(connect_at(&t, &n[4], 5000, &s), ADDR_OK);
        ck_assert_uint_eq(s, ADDR_SLOT_NONE);
        addr_on_handshake_done(&t, s, SA(n[4]));
    }
    ck_assert_uint_eq(t.untracked, 10);
    ck_assert_uint_eq(t.stale, 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(handshakes_of(&t, &a[i]), 1);
        ck_assert_uint_eq(handshakes_of(&t, &n[i]), 1);
    }
    /* Tracked addresses keep their limits meanwhile: a0 has 1 of 2 handshakes. */
    ck_assert_int_eq(connect_at(&t, &a[0], 5000, &s), ADDR_OK);
    ck_assert_int_eq(connect_at(&t, &a[0], 5000, &s), ADDR_HANDSHAKES);
    /* a1 finishes (its bucket long full): the next newcomer takes its slot,
     * and loses nothing. */
    addr_on_handshake_done(&t, 1, SA(a[1]));
    ck_assert_int_eq(connect_at(&t, &n[5], 5000, &s), ADDR_OK);
    ck_assert_uint_eq(s, 1);
    ck_assert_uint_eq(t.evicted, 3);
    addr_table_fini(&t);
}
END_TEST

START_TEST(stale_handle)
{
    struct addr_table t;
    const struct addr_limits lim = {.conn_rate = 1, .conn_burst = 4, .max_handshakes = 2};
    ck_assert_int_eq(addr_table_init(&t, 3, &lim), 0);
    struct sockaddr_storage a = ip("192.0.2.10"), n = ip("2001:db8:77::1"), b[7];
    uint32_t sa, sn, s;
    ck_assert_int_eq(connect_at(&t, &a, 0, &sa), ADDR_OK);
    addr_on_handshake_done(&t, sa, SA(a));
    for (int i = 0; i < 7; i++) {
        b[i] = v4(0xc6336401 + i);
        ck_assert_int_eq(connect_at(&t, &b[i], 0, &s), ADDR_OK);
    }
    /* Only a's slot has no handshake: n takes it. */
    ck_assert_int_eq(connect_at(&t, &n, 10, &sn), ADDR_OK);
    ck_assert_uint_eq(sn, sa);
    ck_assert_uint_eq(addr_lookup(&t, SA(a)), ADDR_SLOT_NONE);
    /* a's old handle (a caller's double call) does not touch n's count. */
    addr_on_handshake_done(&t, sa, SA(a));
    ck_assert_uint_eq(t.slots[sn].handshakes, 1);
    ck_assert_uint_eq(t.stale, 1);
    addr_on_handshake_done(&t, sn, SA(n));
    ck_assert_uint_eq(t.slots[sn].handshakes, 0);
    addr_on_handshake_done(&t, sn, SA(n)); /* never below zero */
    ck_assert_uint_eq(t.slots[sn].handshakes, 0);
    ck_assert_uint_eq(t.stale, 2);
    addr_on_handshake_done(&t, ADDR_SLOT_NONE, SA(a)); /* ignored, not stale */
    addr_on_handshake_done(&t, 12345, SA(a));          /* out of range */
    addr_on_handshake_done(&t, 0, NULL);
    ck_assert_uint_eq(t.stale, 4);
    for (int i = 0; i < 7; i++)
        ck_assert_uint_eq(handshakes_of(&t, &b[i]), 1);
    ck_assert_uint_eq(t.slots[sn].handshakes, 0);
    addr_table_fini(&t);
}
END_TEST

/* A million addresses (half IPv4, half IPv6 /64s) join through 4096 slots over
 * 10 s of simulated time, while one address is hammered (its joins finish) and
 * another keeps its handshakes open: memory stays as it was, and both keep
 * their limits exactly. */
START_TEST(million_addresses)
{
    struct addr_table t;
    const struct addr_limits lim = {.conn_rate = 10, .conn_burst = 5, .max_handshakes = 4};
    ck_assert_int_eq(addr_table_init(&t, 12, &lim), 0);
    const struct addr_slot *slots = t.slots;
    struct sockaddr_storage hot = ip("198.51.100.7"), held = ip("2001:db8:dead:beef::1");
    unsigned hot_ok = 0, held_ok = 0, churn_refused = 0, churn_untracked = 0;
    struct mallinfo2 before = mallinfo2();
    for (uint32_t i = 0; i < 1000000; i++) {
        uint64_t now = 1000 + i / 100;
        struct sockaddr_storage a = i & 1 ? v6(i) : v4(0x0b000000 + i);
        uint32_t s;
        enum addr_verdict v = connect_at(&t, &a, now, &s);
        churn_refused += v != ADDR_OK;
        churn_untracked += v == ADDR_OK && s == ADDR_SLOT_NONE;
        addr_on_handshake_done(&t, s, SA(a));
        if (i % 1000 == 0) {
            hot_ok += join(&t, &hot, now) == ADDR_OK;
            held_ok += connect_at(&t, &held, now, &s) == ADDR_OK;
        }
    }
    struct mallinfo2 after = mallinfo2();
    ck_assert_uint_eq(after.uordblks, before.uordblks);
    ck_assert_ptr_eq(t.slots, slots);
    ck_assert_uint_eq(t.nslots, 4096);
    ck_assert_uint_eq(churn_refused, 0);
    ck_assert_uint_eq(churn_untracked, 0);
    ck_assert_uint_eq(t.untracked, 0);
    ck_assert_uint_eq(t.stale, 0);
    /* Tried every 10 ms from t=1000 to 10990: 5 at once, then one per 100 ms. */
    ck_assert_uint_eq(hot_ok, 5 + 99);
    ck_assert_uint_eq(held_ok, 4);
    ck_assert_uint_eq(handshakes_of(&t, &held), 4);
    ck_assert_uint_ne(addr_lookup(&t, SA(hot)), ADDR_SLOT_NONE);
    unsigned used = 0;
    for (uint32_t i = 0; i < t.nslots; i++)
        used += t.slots[i].kind != 0;
    printf("addr: 1M addresses through 4096 slots: %u used, %llu lossy evictions\n", used,
           (unsigned long long)t.evicted);
    addr_table_fini(&t);
}
END_TEST

/* Returns ns per call of 10M addr_on_connect calls on a fresh table (each
 * admission given back at once), from 2^distinct_log2 IPv4 addresses drawn at
 * random, 1000 calls per simulated ms. */
static double cost_of(unsigned slots_log2, unsigned distinct_log2, unsigned *ok)
{
    struct addr_table t;
    const struct addr_limits lim = {.conn_rate = 10, .conn_burst = 5, .max_handshakes = 4};
    ck_assert_int_eq(addr_table_init(&t, slots_log2, &lim), 0);
    struct sockaddr_storage a = v4(0);
    struct sockaddr_in *in = (struct sockaddr_in *)&a;
    const uint32_t mask = (1u << distinct_log2) - 1;
    uint32_t x = 12345;
    *ok = 0;
    uint64_t start = clock_us();
    for (uint32_t i = 0; i < 10000000; i++) {
        x = x * 1664525u + 1013904223u;
        in->sin_addr.s_addr = htonl(0x0a000000 + ((x >> 8) & mask));
        uint32_t s;
        if (addr_on_connect(&t, SA(a), i / 1000, &s) == ADDR_OK) {
            (*ok)++;
            addr_on_handshake_done(&t, s, SA(a));
        }
    }
    double ns = (double)(clock_us() - start) * 1000 / 1e7;
    addr_table_fini(&t);
    return ns;
}

START_TEST(cost_per_call)
{
    unsigned ok;
    double ns = cost_of(14, 20, &ok);
    ck_assert_uint_gt(ok, 0);
    printf("addr: %.1f ns per addr_on_connect (+ done): 10M calls, 1M addresses through 16384 "
           "slots (mostly misses, evicting): %u admitted\n",
           ns, ok);
    ns = cost_of(14, 10, &ok);
    ck_assert_uint_gt(ok, 0);
    printf("addr: %.1f ns per addr_on_connect (+ done): 10M calls, 1024 addresses through 16384 "
           "slots (hits, mostly refused by rate): %u admitted\n",
           ns, ok);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("addr");
    tcase_add_test(tc, bucket_burst_then_rate);
    tcase_add_test(tc, bucket_fractions);
    tcase_add_test(tc, wait_is_read_only);
    tcase_add_test(tc, handshake_cap_and_release);
    tcase_add_test(tc, unlimited_and_other_families);
    tcase_add_test(tc, init_validates);
    tcase_add_test(tc, ipv6_keyed_by_64);
    tcase_add_test(tc, v4_mapped_is_v4);
    tcase_add_test(tc, eviction_by_value);
    tcase_add_test(tc, stale_handle);
    suite_add_tcase(s, tc);
    TCase *heavy = tcase_create("heavy");
    tcase_set_timeout(heavy, 120);
    tcase_add_test(heavy, million_addresses);
    tcase_add_test(heavy, cost_per_call);
    suite_add_tcase(s, heavy);
    return run_suite(s);
}
