/* Unit tests for space/beacons.c: session ids, deduplication, the state of each session from its
 * beacons, expiry after 30 s of silence, growth and shrinking of the table with 100,000
 * sessions, and the cap. */
#include "space/beacons.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "../harness.h"

static int note(struct beacons *b, const char *s, uint64_t now, bool playing, double buf,
                uint32_t stalls)
{
    return beacons_note(b, s, strlen(s), now, playing, buf, stalls);
}

START_TEST(session_ids)
{
    ck_assert(beacons_session_is_valid("abcdEFGH", 8));
    ck_assert(beacons_session_is_valid("a1_-b2_-c3", 10));
    ck_assert(!beacons_session_is_valid("abcdefg", 7));
    ck_assert(!beacons_session_is_valid("abcd efgh", 9));
    ck_assert(!beacons_session_is_valid("abcd/../h", 9));
    char long_id[80];
    memset(long_id, 'a', sizeof(long_id));
    ck_assert(beacons_session_is_valid(long_id, BEACONS_SESSION_MAX));
    ck_assert(!beacons_session_is_valid(long_id, BEACONS_SESSION_MAX + 1));
}
END_TEST

START_TEST(states_and_dedup)
{
    struct beacons b;
    beacons_init(&b);
    ck_assert_int_eq(note(&b, "session-1", 1000, false, 0, 0), 0);
    ck_assert_uint_eq(b.by_state[BEACON_WAITING], 1);
    ck_assert_int_eq(note(&b, "session-1", 11000, true, 4.5, 0), 0); /* the same player */
    ck_assert_uint_eq(b.count, 1);
    ck_assert_uint_eq(b.joined, 1);
    ck_assert_uint_eq(b.by_state[BEACON_WAITING], 0);
    ck_assert_uint_eq(b.by_state[BEACON_HEARING], 1);
    ck_assert_int_eq(note(&b, "session-1", 21000, true, 3.0, 1), 0); /* stalled since */
    ck_assert_uint_eq(b.by_state[BEACON_LAGGING], 1);
    ck_assert_int_eq(note(&b, "session-1", 31000, true, 3.0, 1), 0); /* recovered */
    ck_assert_uint_eq(b.by_state[BEACON_HEARING], 1);
    ck_assert_int_eq(note(&b, "session-1", 41000, true, 0, 1), 0); /* empty buffer */
    ck_assert_uint_eq(b.by_state[BEACON_LAGGING], 1);
    ck_assert_int_eq(note(&b, "session-2", 41000, true, 2, 7), 0); /* first beacon, old stalls */
    ck_assert_uint_eq(b.by_state[BEACON_HEARING], 1);
    ck_assert_uint_eq(b.count, 2);
    ck_assert_uint_eq(b.beacons, 6);
    /* silent for 30 s: gone */
    beacons_sweep(&b, 41000 + BEACONS_EXPIRE_MS - 1);
    ck_assert_uint_eq(b.count, 2);
    ck_assert_int_eq(note(&b, "session-2", 60000, true, 2, 7), 0);
    beacons_sweep(&b, 41000 + BEACONS_EXPIRE_MS);
    ck_assert_uint_eq(b.count, 1);
    ck_assert_uint_eq(b.left, 1);
    ck_assert_uint_eq(b.by_state[BEACON_LAGGING], 0);
    ck_assert_uint_eq(b.by_state[BEACON_HEARING], 1);
    /* a session that comes back after expiring joins again */
    ck_assert_int_eq(note(&b, "session-1", 80000, true, 2, 1), 0);
    ck_assert_uint_eq(b.joined, 3);
    ck_assert_uint_eq(b.by_state[BEACON_HEARING], 2);
    beacons_fini(&b);
}
END_TEST

START_TEST(many_sessions)
{
    enum { N = 100000 };
    struct beacons b;
    beacons_init(&b);
    char id[32];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < N; i++) {
            snprintf(id, sizeof(id), "player-%08d", i);
            ck_assert_int_eq(
                note(&b, id, 1000 + (uint64_t)round * 10000 + (i < N / 2 ? 0 : 5000), true, 1, 0),
                0);
        }
    ck_assert_uint_eq(b.count, N);
    ck_assert_uint_eq(b.joined, N);
    ck_assert_uint_eq(b.by_state[BEACON_HEARING], N);
    ck_assert_uint_le(b.count * 2, b.cap);
    /* the first half last spoke at 11 s, the second at 16 s */
    beacons_sweep(&b, 11000 + BEACONS_EXPIRE_MS);
    ck_assert_uint_eq(b.count, N / 2);
    /* every survivor is still found after the deletions (no new session) */
    for (int i = N / 2; i < N; i++) {
        snprintf(id, sizeof(id), "player-%08d", i);
        ck_assert_int_eq(note(&b, id, 16000, true, 1, 0), 0);
    }
    ck_assert_uint_eq(b.count, N / 2);
    ck_assert_uint_eq(b.joined, N);
    beacons_sweep(&b, 16000 + BEACONS_EXPIRE_MS);
    ck_assert_uint_eq(b.count, 0);
    ck_assert_uint_eq(b.left, N);
    ck_assert_uint_eq(b.by_state[BEACON_HEARING], 0);
    ck_assert_uint_le(b.cap, 64 * 2);
    beacons_fini(&b);
}
END_TEST

static Suite *beacons_suite(void)
{
    Suite *s = suite_create("beacons");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, session_ids);
    tcase_add_test(tc, states_and_dedup);
    tcase_add_test(tc, many_sessions);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(beacons_suite());
}
