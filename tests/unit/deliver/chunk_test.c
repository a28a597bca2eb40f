/* Unit tests for deliver/chunk.c: one allocation, reference counting, the
 * NULL-ing unref, sealing, and the chunks_live gauge back at zero. */
#include "deliver/chunk.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"

START_TEST(new_chunk_is_unsealed_with_room)
{
    ck_assert_uint_eq(chunks_live(), 0);
    struct chunk *c = chunk_new(4000);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(chunks_live(), 1);
    ck_assert_uint_eq(c->len, 4000);
    ck_assert(!c->is_sealed);
    ck_assert_uint_eq(c->seq, 0);
    ck_assert_uint_eq(c->granule, 0);
    ck_assert_uint_eq(c->duration, 0);
    /* All of data[] is writable (ASan checks the bounds). */
    memset(c->data, 0xab, c->len);
    ck_assert_int_eq(c->data[3999], 0xab);
    chunk_seal(c);
    ck_assert(c->is_sealed);
    ck_assert_int_eq(c->data[0], 0xab);
    chunk_unref(&c);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(chunks_live(), 0);
}
END_TEST

START_TEST(empty_chunk)
{
    struct chunk *c = chunk_new(0);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->len, 0);
    ck_assert_uint_eq(chunks_live(), 1);
    chunk_unref(&c);
    ck_assert_uint_eq(chunks_live(), 0);
}
END_TEST

START_TEST(freed_with_the_last_reference)
{
    struct chunk *c = chunk_new(16);
    memcpy(c->data, "0123456789abcdef", 16);
    chunk_seal(c);
    struct chunk *ring_ref = chunk_ref(c);
    struct chunk *writer_ref = chunk_ref(c);
    ck_assert_ptr_eq(ring_ref, c);
    ck_assert_ptr_eq(writer_ref, c);
    ck_assert_uint_eq(chunks_live(), 1);

    chunk_unref(&c);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(chunks_live(), 1);
    ck_assert_int_eq(memcmp(ring_ref->data, "0123456789abcdef", 16), 0);
    chunk_unref(&ring_ref);
    ck_assert_ptr_null(ring_ref);
    ck_assert_uint_eq(chunks_live(), 1);
    /* Still readable through the last holder. */
    ck_assert_int_eq(memcmp(writer_ref->data, "0123456789abcdef", 16), 0);
    chunk_unref(&writer_ref);
    ck_assert_uint_eq(chunks_live(), 0);
}
END_TEST

START_TEST(unref_null_is_harmless)
{
    struct chunk *c = NULL;
    chunk_unref(&c);
    ck_assert_ptr_null(c);
    c = chunk_new(1);
    chunk_unref(&c);
    chunk_unref(&c); /* the pointer was NULLed: no double free */
    ck_assert_uint_eq(chunks_live(), 0);
}
END_TEST

START_TEST(gauge_counts_many)
{
    enum { N = 1000 };
    struct chunk **cs = malloc(N * sizeof(*cs)), **extra = calloc(N, sizeof(*extra));
    ck_assert(cs && extra);
    for (size_t i = 0; i < N; i++) {
        cs[i] = chunk_new(i);
        ck_assert_ptr_nonnull(cs[i]);
        ck_assert_uint_eq(chunks_live(), i + 1);
    }
    for (size_t i = 0; i < N; i += 2)
        extra[i] = chunk_ref(cs[i]);
    for (size_t i = 0; i < N; i++)
        chunk_unref(&cs[i]);
    ck_assert_uint_eq(chunks_live(), N / 2);
    for (size_t i = 0; i < N; i++)
        chunk_unref(&extra[i]);
    ck_assert_uint_eq(chunks_live(), 0);
    free(cs);
    free(extra);
}
END_TEST

static Suite *chunk_suite(void)
{
    Suite *s = suite_create("chunk");
    TCase *tc = tcase_create("chunk");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, new_chunk_is_unsealed_with_room);
    tcase_add_test(tc, empty_chunk);
    tcase_add_test(tc, freed_with_the_last_reference);
    tcase_add_test(tc, unref_null_is_harmless);
    tcase_add_test(tc, gauge_counts_many);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(chunk_suite());
}
