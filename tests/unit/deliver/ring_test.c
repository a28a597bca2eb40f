/* Unit tests for deliver/ring.c: sizing, sequence numbers, wraparound,
 * ring_get bounds, ring_burst_start, and eviction dropping only the ring's
 * reference. chunks_live() is zero at the end of every test. */
#include "deliver/ring.h"

#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "deliver/chunk.h"

/* A sealed chunk whose 8 bytes name it. */
static struct chunk *tagged(uint64_t tag)
{
    struct chunk *c = chunk_new(sizeof(tag));
    ck_assert_ptr_nonnull(c);
    memcpy(c->data, &tag, sizeof(tag));
    chunk_seal(c);
    return c;
}

static uint64_t tag_of(const struct chunk *c)
{
    uint64_t t;
    memcpy(&t, c->data, sizeof(t));
    return t;
}

static bool is_pow2(size_t n)
{
    return n && (n & (n - 1)) == 0;
}

START_TEST(init_sizes_to_a_power_of_two)
{
    static const size_t asks[] = {0, 1, 5, 8, 9, 64, 100, 1000, 1024, 1025};
    for (size_t i = 0; i < sizeof(asks) / sizeof(asks[0]); i++) {
        struct ring r;
        ck_assert_int_eq(ring_init(&r, asks[i]), 0);
        ck_assert_msg(is_pow2(r.cap), "cap %zu for %zu", r.cap, asks[i]);
        ck_assert_uint_ge(r.cap, asks[i]);
        if (asks[i] > 1) ck_assert_uint_lt(r.cap, 2 * asks[i] + 8);
        ck_assert_uint_eq(r.head, 0);
        ck_assert_uint_eq(r.tail, 0);
        ck_assert_ptr_null(ring_get(&r, 0));
        ring_fini(&r);
    }
}
END_TEST

START_TEST(append_numbers_and_holds)
{
    struct ring r;
    ck_assert_int_eq(ring_init(&r, 16), 0);
    for (uint64_t i = 0; i < 10; i++) {
        struct chunk *c = tagged(i);
        ring_append(&r, c);
        ck_assert_uint_eq(c->seq, i);
        ck_assert_uint_eq(r.head, i + 1);
    }
    ck_assert_uint_eq(r.tail, 0);
    ck_assert_uint_eq(chunks_live(), 10);
    for (uint64_t s = 0; s < 10; s++) {
        struct chunk *c = ring_get(&r, s);
        ck_assert_ptr_nonnull(c);
        ck_assert_uint_eq(c->seq, s);
        ck_assert_uint_eq(tag_of(c), s);
    }
    ck_assert_ptr_null(ring_get(&r, 10)); /* not yet */
    ck_assert_ptr_null(ring_get(&r, UINT64_MAX));
    ring_fini(&r);
    ck_assert_uint_eq(chunks_live(), 0);
}
END_TEST

START_TEST(wraparound_keeps_the_newest_cap)
{
    struct ring r;
    ck_assert_int_eq(ring_init(&r, 8), 0);
    size_t cap = r.cap;
    uint64_t n = 5 * cap + 3;
    for (uint64_t i = 0; i < n; i++) {
        ring_append(&r, tagged(i));
        uint64_t held = i + 1 < cap ? i + 1 : cap;
        ck_assert_uint_eq(r.head, i + 1);
        ck_assert_uint_eq(r.head - r.tail, held);
        ck_assert_uint_eq(chunks_live(), held);
        /* Exactly [tail, head) is reachable, each slot holding its own seq. */
        if (r.tail) ck_assert_ptr_null(ring_get(&r, r.tail - 1));
        for (uint64_t s = r.tail; s < r.head; s++) {
            struct chunk *c = ring_get(&r, s);
            ck_assert_ptr_nonnull(c);
            ck_assert_uint_eq(c->seq, s);
            ck_assert_uint_eq(tag_of(c), s);
        }
        ck_assert_ptr_null(ring_get(&r, r.head));
    }
    ck_assert_uint_eq(r.tail, n - cap);
    ck_assert_ptr_null(ring_get(&r, 0));
    ring_fini(&r);
    ck_assert_uint_eq(chunks_live(), 0);
    ck_assert_uint_eq(r.head, 0);
    ck_assert_ptr_null(ring_get(&r, 0));
    ring_fini(&r); /* twice is harmless */
}
END_TEST

START_TEST(eviction_drops_only_the_rings_reference)
{
    struct ring r;
    ck_assert_int_eq(ring_init(&r, 8), 0);
    size_t cap = r.cap;
    /* A listener midway through chunk 0 holds its own reference. */
    struct chunk *first = tagged(0);
    ring_append(&r, first);
    struct chunk *held = chunk_ref(first);
    for (uint64_t i = 1; i < cap; i++)
        ring_append(&r, tagged(i));
    ck_assert_uint_eq(chunks_live(), cap);
    ring_append(&r, tagged(cap)); /* evicts 0 */
    ck_assert_uint_eq(r.tail, 1);
    ck_assert_ptr_null(ring_get(&r, 0));
    ck_assert_uint_eq(chunks_live(), cap + 1); /* 0 lives on through `held` */
    ck_assert_uint_eq(tag_of(held), 0);
    ck_assert_uint_eq(held->seq, 0);
    chunk_unref(&held);
    ck_assert_uint_eq(chunks_live(), cap);
    /* Without another holder, eviction frees. */
    ring_append(&r, tagged(cap + 1));
    ck_assert_uint_eq(chunks_live(), cap);
    ring_fini(&r);
    ck_assert_uint_eq(chunks_live(), 0);
}
END_TEST

START_TEST(burst_start)
{
    struct ring r;
    ck_assert_int_eq(ring_init(&r, 8), 0);
    size_t cap = r.cap;
    /* Empty: the next chunk. */
    ck_assert_uint_eq(ring_burst_start(&r, 0), 0);
    ck_assert_uint_eq(ring_burst_start(&r, 4), 0);
    for (uint64_t i = 0; i < 3; i++)
        ring_append(&r, tagged(i));
    ck_assert_uint_eq(ring_burst_start(&r, 0), 3);
    ck_assert_uint_eq(ring_burst_start(&r, 2), 1);
    ck_assert_uint_eq(ring_burst_start(&r, 3), 0);
    ck_assert_uint_eq(ring_burst_start(&r, 100), 0); /* no more than is held */
    for (uint64_t i = 3; i < 3 * cap; i++)
        ring_append(&r, tagged(i));
    ck_assert_uint_eq(ring_burst_start(&r, 1), 3 * cap - 1);
    ck_assert_uint_eq(ring_burst_start(&r, cap), r.tail);
    ck_assert_uint_eq(ring_burst_start(&r, cap + 5), r.tail);
    /* Whatever it returns is held (or is the head). */
    for (size_t b = 0; b <= cap + 2; b++) {
        uint64_t s = ring_burst_start(&r, b);
        ck_assert_uint_ge(s, r.tail);
        ck_assert_uint_le(s, r.head);
        if (s < r.head) ck_assert_ptr_nonnull(ring_get(&r, s));
    }
    ring_fini(&r);
    ck_assert_uint_eq(chunks_live(), 0);
}
END_TEST

static Suite *ring_suite(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("ring");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, init_sizes_to_a_power_of_two);
    tcase_add_test(tc, append_numbers_and_holds);
    tcase_add_test(tc, wraparound_keeps_the_newest_cap);
    tcase_add_test(tc, eviction_drops_only_the_rings_reference);
    tcase_add_test(tc, burst_start);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(ring_suite());
}
