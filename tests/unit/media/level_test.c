/* Unit tests for media/level.c: the level of known signals, talking with its hold. */
#include "media/level.h"

#include <check.h>
#include <math.h>

#include "../harness.h"

enum { FRAME = 960 };

static float tone[FRAME];

static void make_tone(float amp)
{
    for (int i = 0; i < FRAME; i++)
        tone[i] = amp * sinf(2.0f * (float)M_PI * 440.0f * (float)i / 48000.0f);
}

START_TEST(silence_is_the_floor)
{
    struct level lv;
    level_init(&lv);
    ck_assert_float_eq(lv.dbfs, LEVEL_FLOOR_DBFS);
    for (int i = 0; i < 40; i++)
        level_add(&lv, NULL, 0);
    ck_assert_float_eq(lv.dbfs, LEVEL_FLOOR_DBFS);
    ck_assert(!lv.is_talking);
}
END_TEST

/* A sine of amplitude 0.5 has an RMS of 0.5/sqrt(2): -9.03 dBFS once it fills the window. */
START_TEST(sine_level)
{
    struct level lv;
    level_init(&lv);
    make_tone(0.5f);
    level_add(&lv, tone, FRAME);
    ck_assert(lv.is_talking); /* one loud frame of 15: -9 - 11.8 dB, well above -45 */
    ck_assert_float_lt(fabsf(lv.dbfs - (-9.03f - 11.76f)), 0.1f);
    for (int i = 0; i < LEVEL_FRAMES; i++)
        level_add(&lv, tone, FRAME);
    ck_assert_float_lt(fabsf(lv.dbfs + 9.03f), 0.05f);
}
END_TEST

/* After the voice stops: the level falls as silence fills the window, talking holds
 * LEVEL_HOLD_FRAMES more frames, then falls. */
START_TEST(talking_holds_then_falls)
{
    struct level lv;
    level_init(&lv);
    make_tone(0.5f);
    for (int i = 0; i < 30; i++)
        level_add(&lv, tone, FRAME);
    int frames = 0;
    while (lv.is_talking && frames < 100) {
        level_add(&lv, NULL, 0);
        frames++;
    }
    ck_assert_int_eq(frames, LEVEL_FRAMES + LEVEL_HOLD_FRAMES); /* 600 ms */
    ck_assert_float_eq(lv.dbfs, LEVEL_FLOOR_DBFS);
}
END_TEST

/* A pause shorter than the window does not flicker. */
START_TEST(short_pause_keeps_talking)
{
    struct level lv;
    level_init(&lv);
    make_tone(0.1f);
    for (int i = 0; i < 30; i++)
        level_add(&lv, tone, FRAME);
    for (int k = 0; k < 5; k++) {
        for (int i = 0; i < 10; i++) {
            level_add(&lv, NULL, 0);
            ck_assert(lv.is_talking);
        }
        level_add(&lv, tone, FRAME);
    }
}
END_TEST

/* Room noise at -60 dBFS is not talking; NaN counts as silence. */
START_TEST(quiet_and_nan_are_not_talking)
{
    struct level lv;
    level_init(&lv);
    make_tone(0.0014f); /* RMS about -60 dBFS */
    for (int i = 0; i < 40; i++) {
        level_add(&lv, tone, FRAME);
        ck_assert(!lv.is_talking);
    }
    ck_assert_float_lt(fabsf(lv.dbfs + 60.1f), 0.5f);
    tone[3] = NAN;
    for (int i = 0; i < 40; i++)
        level_add(&lv, tone, FRAME);
    ck_assert_float_eq(lv.dbfs, LEVEL_FLOOR_DBFS);
    ck_assert(!lv.is_talking);
}
END_TEST

static Suite *level_suite(void)
{
    Suite *s = suite_create("level");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, silence_is_the_floor);
    tcase_add_test(tc, sine_level);
    tcase_add_test(tc, talking_holds_then_falls);
    tcase_add_test(tc, short_pause_keeps_talking);
    tcase_add_test(tc, quiet_and_nan_are_not_talking);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(level_suite());
}
