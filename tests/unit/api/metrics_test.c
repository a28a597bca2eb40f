/* Unit tests for api/metrics.c: metrics_render on known numbers, exact line
 * by line; histograms summed over "workers" (feed_stats as they travel over
 * the channel) and rebuilt on the master; the output accepted by the real
 * `promtool check metrics` (Debian package prometheus). */
#include "api/metrics.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "metrics/hist.h"

/* A worker's feed_stats histogram, filled the way a feed fills it. */
static void observe(struct feed_hist *out, const struct hist_buckets *b, const double *v, size_t n)
{
    struct hist h;
    ck_assert_int_eq(hist_init(&h, b), 0);
    for (size_t i = 0; i < n; i++)
        hist_observe(&h, v[i]);
    memcpy(out->counts, h.counts, sizeof(out->counts));
    out->sum = h.sum;
    out->count = h.count;
}

static void expect_line(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof(want), "\n%s\n", line);
    ck_assert_msg(strstr(text, want) != NULL, "missing line: %s\n--- exposition ---\n%s", line,
                  text);
}

/* Two spaces; "demo" as the master sums it from two workers. */
static void two_spaces(struct metrics_space sp[2])
{
    memset(sp, 0, 2 * sizeof(*sp));
    struct feed_stats w0 = {.listeners = 30,
                            .waiting = 1,
                            .hearing = 25,
                            .lagging = 4,
                            .joined = 40,
                            .left = 10,
                            .skips = 3,
                            .skipped_chunks = 7,
                            .dropped = 5,
                            .dropped_lagging = 2,
                            .bytes = 123456789012ull,
                            .listens = 6};
    struct feed_stats w1 = {
        .listeners = 20, .hearing = 20, .joined = 21, .left = 1, .bytes = 1000, .listens = 1};
    const double j0[] = {0.01, 0.07, 0.3, 12}, j1[] = {0.02, 0.02};
    const double s0[] = {0.5, 61, 90}, s1[] = {7200, 7201};
    observe(&w0.join_to_audio, &hist_join_to_first_audio, j0, 4);
    observe(&w1.join_to_audio, &hist_join_to_first_audio, j1, 2);
    observe(&w0.session, &hist_session_length, s0, 3);
    observe(&w1.session, &hist_session_length, s1, 2);
    /* What space_stats does with each worker's message. */
    sp[0].id = "demo";
    sp[0].st = w0;
    struct feed_stats *t = &sp[0].st;
    t->listeners += w1.listeners, t->hearing += w1.hearing, t->joined += w1.joined;
    t->left += w1.left, t->bytes += w1.bytes, t->listens += w1.listens;
    feed_hist_add(&t->join_to_audio, &w1.join_to_audio);
    feed_hist_add(&t->session, &w1.session);
    sp[0].peak_hearing = 47;
    sp[0].state = "green";
    sp[0].speakers = 3;
    sp[0].frames_encoded = 500, sp[0].frames_passed = 250, sp[0].frames_limited = 7;
    sp[0].underruns = 2, sp[0].drift_drops = 4, sp[0].drift_fills = 1;
    sp[0].has_recording = true, sp[0].is_recording_failing = true;
    sp[0].recording_bytes = 123456, sp[0].recording_seconds = 61.5, sp[0].recording_lost_s = 2.25;
    sp[1].id = "q\"uiet\\";
    sp[1].st.waiting = 2, sp[1].st.listeners = 2, sp[1].st.joined = 2;
}

START_TEST(renders_exact_values)
{
    struct metrics_space sp[2];
    two_spaces(sp);
    struct metrics_node node = {.workers = 4,
                                .workers_up = 3,
                                .worker_restarts = 2,
                                .chunk_ms = 100,
                                .recorder = 1,
                                .recordings_failing = 1};
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(metrics_render(&b, &node, sp, 2), 0);
    const char *t = b.data;
    expect_line(t, "# TYPE tribune_listeners gauge");
    expect_line(t, "tribune_listeners{space=\"demo\",state=\"waiting\"} 1");
    expect_line(t, "tribune_listeners{space=\"demo\",state=\"hearing\"} 45");
    expect_line(t, "tribune_listeners{space=\"demo\",state=\"lagging\"} 4");
    expect_line(t, "tribune_listeners{space=\"q\\\"uiet\\\\\",state=\"waiting\"} 2");
    expect_line(t, "tribune_listeners_connected{space=\"demo\"} 50");
    expect_line(t, "tribune_listener_joins_total{space=\"demo\"} 61");
    expect_line(t, "tribune_listener_leaves_total{space=\"demo\"} 11");
    expect_line(t, "tribune_skips_total{space=\"demo\"} 3");
    expect_line(t, "tribune_skipped_seconds_total{space=\"demo\"} 0.7");
    expect_line(t, "tribune_dropped_total{space=\"demo\",reason=\"stalled\"} 3");
    expect_line(t, "tribune_dropped_total{space=\"demo\",reason=\"lagging\"} 2");
    expect_line(t, "tribune_bytes_sent_total{space=\"demo\"} 123456790012");
    expect_line(t, "tribune_peak_hearing{space=\"demo\"} 47");
    expect_line(t, "tribune_listens_total{space=\"demo\"} 7");
    /* Both workers' observations, cumulative per bound. */
    expect_line(t, "# TYPE tribune_join_to_first_audio_seconds histogram");
    expect_line(t, "tribune_join_to_first_audio_seconds_bucket{space=\"demo\",le=\"0.05\"} 3");
    expect_line(t, "tribune_join_to_first_audio_seconds_bucket{space=\"demo\",le=\"0.1\"} 4");
    expect_line(t, "tribune_join_to_first_audio_seconds_bucket{space=\"demo\",le=\"0.5\"} 5");
    expect_line(t, "tribune_join_to_first_audio_seconds_bucket{space=\"demo\",le=\"10\"} 5");
    expect_line(t, "tribune_join_to_first_audio_seconds_bucket{space=\"demo\",le=\"+Inf\"} 6");
    expect_line(t, "tribune_join_to_first_audio_seconds_count{space=\"demo\"} 6");
    expect_line(t, "tribune_join_to_first_audio_seconds_sum{space=\"demo\"} 12.42");
    expect_line(t, "tribune_session_seconds_bucket{space=\"demo\",le=\"1\"} 1");
    expect_line(t, "tribune_session_seconds_bucket{space=\"demo\",le=\"60\"} 1");
    expect_line(t, "tribune_session_seconds_bucket{space=\"demo\",le=\"300\"} 3");
    expect_line(t, "tribune_session_seconds_bucket{space=\"demo\",le=\"7200\"} 4");
    expect_line(t, "tribune_session_seconds_bucket{space=\"demo\",le=\"+Inf\"} 5");
    expect_line(t, "tribune_session_seconds_count{space=\"demo\"} 5");
    expect_line(t, "tribune_join_to_first_audio_seconds_count{space=\"q\\\"uiet\\\\\"} 0");
    expect_line(t, "tribune_space_state{space=\"demo\",state=\"green\"} 1");
    expect_line(t, "tribune_space_state{space=\"demo\",state=\"live\"} 0");
    expect_line(t, "tribune_speakers_connected{space=\"demo\"} 3");
    expect_line(t, "tribune_program_frames_total{space=\"demo\",kind=\"encoded\"} 500");
    expect_line(t, "tribune_program_frames_total{space=\"demo\",kind=\"passthrough\"} 250");
    expect_line(t, "tribune_program_limited_frames_total{space=\"demo\"} 7");
    expect_line(t, "tribune_speaker_underruns_total{space=\"demo\"} 2");
    expect_line(t, "tribune_speaker_drift_corrections_total{space=\"demo\",kind=\"drop\"} 4");
    expect_line(t, "tribune_speaker_drift_corrections_total{space=\"demo\",kind=\"fill\"} 1");
    expect_line(t, "tribune_recording_failing{space=\"demo\"} 1");
    expect_line(t, "tribune_recording_bytes{space=\"demo\"} 123456");
    expect_line(t, "tribune_recording_seconds{space=\"demo\"} 61.5");
    expect_line(t, "tribune_recording_lost_seconds{space=\"demo\"} 2.25");
    expect_line(t, "tribune_recordings_failing 1");
    ck_assert_ptr_null(strstr(t, "tribune_recording_bytes{space=\"q"));
    expect_line(t, "tribune_workers{state=\"up\"} 3");
    expect_line(t, "tribune_workers{state=\"down\"} 1");
    expect_line(t, "tribune_worker_restarts_total 2");
    /* Every family declared once, with HELP before TYPE. */
    ck_assert_ptr_eq(strstr(t, "# HELP tribune_listeners "), t);
    char out[4096];
    int rc = promtool_check(t, out, sizeof(out));
    ck_assert_msg(rc == 0, "promtool exit %d: %s\n--- exposition ---\n%s", rc, out, t);
    prom_buf_fini(&b);
}
END_TEST

START_TEST(no_spaces_renders_the_node_only)
{
    struct metrics_node node = {0};
    struct prom_buf b;
    prom_buf_init(&b);
    ck_assert_int_eq(metrics_render(&b, &node, NULL, 0), 0);
    ck_assert_ptr_null(strstr(b.data, "tribune_listeners"));
    expect_line(b.data, "tribune_workers{state=\"up\"} 0");
    expect_line(b.data, "tribune_worker_restarts_total 0");
    char out[4096];
    int rc = promtool_check(b.data, out, sizeof(out));
    ck_assert_msg(rc == 0, "promtool exit %d: %s\n%s", rc, out, b.data);
    prom_buf_fini(&b);
}
END_TEST

START_TEST(histogram_survives_the_channel)
{
    /* A feed_stats copied byte for byte (as CHAN_STATS carries it) rebuilds
     * into the same histogram on the master's bucket set. */
    struct feed_stats st = {0}, copy;
    const double v[] = {0.04, 0.2, 3, 30};
    observe(&st.join_to_audio, &hist_join_to_first_audio, v, 4);
    memcpy(&copy, &st, sizeof(copy));
    struct hist h;
    ck_assert_int_eq(feed_hist_get(&copy.join_to_audio, &hist_join_to_first_audio, &h), 0);
    ck_assert_uint_eq(h.count, 4);
    ck_assert_uint_eq(hist_cumulative(&h, 0), 1);
    ck_assert_uint_eq(hist_cumulative(&h, 2), 2);
    ck_assert_uint_eq(hist_cumulative(&h, 6), 3);
    ck_assert_uint_eq(hist_cumulative(&h, 8), 4);
    ck_assert(h.sum == 0.04 + 0.2 + 3 + 30);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, renders_exact_values);
    tcase_add_test(tc, no_spaces_renders_the_node_only);
    tcase_add_test(tc, histogram_survives_the_channel);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
