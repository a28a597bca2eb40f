/* Unit tests for space/space.c: runtime spaces over a real registry (SQLite in a temporary
 * directory), a real event loop, and publishers on real socketpairs. Each test runs in its own
 * process (Check's default). Waits poll a condition from a loop timer, with a deadline. */
#include "space/space.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ogg/ogg.h>
#include <opus/opus.h>

#include "../harness.h"
#include "core/log.h"
#include "core/loop.h"
#include "deliver/chunk.h"
#include "deliver/ring.h"
#include "media/ingest.h"

static char dir[64];
static char db_path[128];
static struct registry *reg;
static struct loop *loop;
static struct config cfg;
static struct spaces spaces;
static char host_key[SPACE_KEY_HEX + 1];

static void setup(void)
{
    log_threshold = LOG_ERROR;
    snprintf(dir, sizeof(dir), "/tmp/space_test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db_path, sizeof(db_path), "%s/tribune.db", dir);
    reg = registry_open(db_path);
    ck_assert_ptr_nonnull(reg);
    struct space_record r;
    ck_assert_int_eq(registry_create(reg, "alpha", "Alpha talk", 0, &r, host_key), 0);
    ck_assert_int_eq(registry_create(reg, "beta", "Beta talk", 1900000000, &r, host_key), 0);
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
    config_defaults(&cfg);
    ck_assert_int_eq(spaces_init(&spaces, loop, reg, &cfg), 0);
}

static void finish(void)
{
    spaces_fini(&spaces);
    loop_run_once(loop); /* deferred frees of closed publishers */
    loop_free(loop);
    loop = NULL;
    registry_close(reg);
    reg = NULL;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_uint_eq(chunks_live(), 0);
}

static enum space_state stored_state(const char *id)
{
    /* A second connection to the database file: what is on disk, not a cached copy. */
    struct registry *other = registry_open(db_path);
    ck_assert_ptr_nonnull(other);
    struct space_record r;
    ck_assert_int_eq(registry_get(other, id, &r), 0);
    registry_close(other);
    return r.state;
}

START_TEST(get_loads_lazily_and_once)
{
    ck_assert_ptr_null(spaces_peek(&spaces, "alpha", 5));
    struct space *s = spaces_get(&spaces, "alpha", 5);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s->rec.id, "alpha");
    ck_assert_str_eq(s->rec.title, "Alpha talk");
    ck_assert_int_eq(s->rec.state, SPACE_SCHEDULED);
    ck_assert_ptr_null(s->publisher);
    ck_assert_ptr_null(s->builtin);
    /* The program runs from the first use (listeners may wait on it), off the air. */
    ck_assert(s->program.is_started);
    ck_assert(!s->program.is_on_air);
    ck_assert(!s->ogg.is_live);
    /* Loaded once: the same object from get and peek, even through a longer buffer. */
    ck_assert_ptr_eq(spaces_get(&spaces, "alpha", 5), s);
    ck_assert_ptr_eq(spaces_peek(&spaces, "alpha", 5), s);
    ck_assert_ptr_eq(spaces_get(&spaces, "alphabet", 5), s);
    /* Another space is another object; peek does not load. */
    ck_assert_ptr_null(spaces_peek(&spaces, "beta", 4));
    struct space *b = spaces_get(&spaces, "beta", 4);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(b, s);
    ck_assert_int_eq(b->rec.starts_at, 1900000000);
    /* A prefix is not a match. */
    ck_assert_ptr_null(spaces_peek(&spaces, "alph", 4));
    finish();
}
END_TEST

START_TEST(unknown_or_invalid_id_is_null)
{
    ck_assert_ptr_null(spaces_get(&spaces, "gamma", 5));
    ck_assert_ptr_null(spaces_get(&spaces, "alph", 4));
    ck_assert_ptr_null(spaces_get(&spaces, "", 0));
    ck_assert_ptr_null(spaces_get(&spaces, "../alpha", 8));
    ck_assert_ptr_null(spaces_get(&spaces, "al pha", 6));
    char longid[40];
    memset(longid, 'a', sizeof(longid));
    ck_assert_ptr_null(spaces_get(&spaces, longid, sizeof(longid)));
    /* Nothing was loaded by the failures. */
    ck_assert_ptr_null(spaces_peek(&spaces, "gamma", 5));
    finish();
}
END_TEST

START_TEST(state_change_persisted)
{
    struct space *s = spaces_get(&spaces, "alpha", 5);
    ck_assert_ptr_nonnull(s);
    space_set_state(s, SPACE_GREEN);
    ck_assert_int_eq(s->rec.state, SPACE_GREEN);
    ck_assert_int_eq(stored_state("alpha"), SPACE_GREEN);
    space_set_state(s, SPACE_ENDED);
    ck_assert_int_eq(s->rec.state, SPACE_ENDED);
    ck_assert_int_eq(stored_state("alpha"), SPACE_ENDED);
    /* The other space is untouched. */
    ck_assert_int_eq(stored_state("beta"), SPACE_SCHEDULED);
    finish();
}
END_TEST

static struct space *cur;
static bool has_5_chunks(void)
{
    return cur->ogg.ring.head >= 5;
}

START_TEST(builtin_speaker_makes_space_live)
{
    struct space *s = spaces_get(&spaces, "alpha", 5);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(space_add_builtin_speaker(s), 0);
    ck_assert_ptr_nonnull(s->builtin);
    ck_assert_int_eq(s->rec.state, SPACE_LIVE);
    ck_assert_int_eq(stored_state("alpha"), SPACE_LIVE);
    ck_assert(s->program.is_started);
    ck_assert_ptr_nonnull(s->ogg.header);
    /* Idempotent. */
    struct program_source *b = s->builtin;
    ck_assert_int_eq(space_add_builtin_speaker(s), 0);
    ck_assert_ptr_eq(s->builtin, b);
    /* The program runs: chunks of audible Opus arrive in the ring. */
    cur = s;
    ck_assert(run_until_fn(loop, has_5_chunks, 3000));
    ck_assert_uint_eq(s->program.silence_samples, 0);
    ogg_sync_state oy;
    ogg_stream_state os;
    ogg_sync_init(&oy);
    int err, hdr = 0, audio = 0;
    OpusDecoder *dec = opus_decoder_create(48000, 1, &err);
    ck_assert_int_eq(err, OPUS_OK);
    bool has_stream = false;
    double energy = 0;
    for (uint64_t seq = s->ogg.ring.tail - 1; seq != s->ogg.ring.head; seq++) {
        struct chunk *c = seq == s->ogg.ring.tail - 1 ? s->ogg.header : ring_get(&s->ogg.ring, seq);
        ck_assert_ptr_nonnull(c);
        memcpy(ogg_sync_buffer(&oy, c->len), c->data, c->len);
        ogg_sync_wrote(&oy, c->len);
        ogg_page og;
        while (ogg_sync_pageout(&oy, &og) == 1) {
            if (!has_stream) ogg_stream_init(&os, ogg_page_serialno(&og));
            has_stream = true;
            ck_assert_int_eq(ogg_stream_pagein(&os, &og), 0);
            ogg_packet op;
            while (ogg_stream_packetout(&os, &op) == 1) {
                if (hdr < 2) {
                    hdr++;
                    continue;
                }
                opus_int16 pcm[5760];
                int n = opus_decode(dec, op.packet, (opus_int32)op.bytes, pcm, 5760, 0);
                ck_assert_int_eq(n, 960);
                for (int i = 0; i < n; i++)
                    energy += (double)pcm[i] * pcm[i];
                audio += n;
            }
        }
    }
    ck_assert_int_eq(hdr, 2);
    ck_assert_int_ge(audio, 5 * 4800);
    ck_assert_double_gt(sqrt(energy / audio), 500);
    opus_decoder_destroy(dec);
    ogg_stream_clear(&os);
    ogg_sync_clear(&oy);
    finish();
}
END_TEST

static int publisher_pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    return sv[0];
}

static bool has_no_publisher(void)
{
    return cur->publisher == NULL;
}

START_TEST(second_publisher_is_busy)
{
    struct space *s = spaces_get(&spaces, "beta", 4);
    ck_assert_ptr_nonnull(s);
    int a[2], b[2], c[2];
    ck_assert_int_eq(space_publish(s, NULL, publisher_pair(a), NULL, 0, 1, 0, "a"), 0);
    ck_assert_ptr_nonnull(s->publisher);
    /* The host publishing to a space with a start time makes it green (not live), on disk too. */
    ck_assert_int_eq(s->rec.state, SPACE_GREEN);
    ck_assert_int_eq(stored_state("beta"), SPACE_GREEN);
    ck_assert(!s->program.is_on_air);
    struct publisher *first = s->publisher;
    ck_assert_int_eq(space_publish(s, NULL, publisher_pair(b), NULL, 0, 1, 0, "b"), -EBUSY);
    ck_assert_ptr_eq(s->publisher, first);
    close(b[0]); /* refused: the fd stays the caller's */
    close(b[1]);
    /* The first publisher leaves (its client closes before sending audio): the space forgets
     * it, and the next publisher is welcome. */
    close(a[1]);
    cur = s;
    ck_assert(run_until_fn(loop, has_no_publisher, 2000));
    ck_assert_int_eq(space_publish(s, NULL, publisher_pair(c), NULL, 0, 1, 0, "c"), 0);
    ck_assert_ptr_nonnull(s->publisher);
    close(c[1]);
    finish();
}
END_TEST

START_TEST(silent_publisher_dropped_by_sweep)
{
    cfg.publisher_timeout_ms = 200;
    struct space *s = spaces_get(&spaces, "alpha", 5);
    ck_assert_ptr_nonnull(s);
    int a[2];
    uint64_t t0 = loop_now_ms(loop);
    ck_assert_int_eq(space_publish(s, NULL, publisher_pair(a), NULL, 0, 1, 0, "a"), 0);
    ck_assert_ptr_nonnull(s->publisher);
    /* The host publishing to a space without a start time: live at once. */
    ck_assert_int_eq(s->rec.state, SPACE_LIVE);
    ck_assert(s->program.is_on_air);
    ck_assert(s->ogg.is_live);
    cur = s;
    /* The spaces' one-second sweep applies the publisher timeout. */
    ck_assert(run_until_fn(loop, has_no_publisher, 3500));
    ck_assert_uint_ge(loop_now_ms(loop) - t0, 200);
    /* The client sees its connection closed. */
    char buf[64];
    ssize_t n;
    do
        n = recv(a[1], buf, sizeof(buf), MSG_DONTWAIT);
    while (n > 0);
    ck_assert_int_eq(n, 0);
    close(a[1]);
    finish();
}
END_TEST

static bool has_no_speaker_bob(void)
{
    return space_speaker(cur, "bob") == NULL;
}

START_TEST(speakers_mute_remove_and_lifecycle)
{
    struct space *s = spaces_get(&spaces, "beta", 4);
    ck_assert_ptr_nonnull(s);
    char key[SPACE_KEY_HEX + 1];
    ck_assert_int_eq(registry_speaker_add(reg, "beta", "bob", 13, key), 0);
    int a[2], b[2];
    ck_assert_int_eq(space_publish(s, "bob", publisher_pair(a), NULL, 0, 1, 0, "a"), 0);
    struct speaker *sp = space_speaker(s, "bob");
    ck_assert_ptr_nonnull(sp);
    ck_assert_ptr_nonnull(sp->pub);
    ck_assert_ptr_null(s->publisher); /* not the host */
    ck_assert_int_eq(s->rec.state, SPACE_GREEN);
    /* One connection per speaker. */
    ck_assert_int_eq(space_publish(s, "bob", publisher_pair(b), NULL, 0, 1, 0, "b"), -EBUSY);
    close(b[0]);
    close(b[1]);
    /* Mute: kept in the registry and on the connected speaker. */
    ck_assert_int_eq(space_set_muted(s, "bob", true), 0);
    ck_assert(sp->is_muted);
    struct speaker_record r;
    ck_assert_int_eq(registry_speaker_get(reg, "beta", "bob", &r), 0);
    ck_assert(r.is_muted);
    ck_assert_int_eq(space_set_muted(s, "nobody", true), -ENOENT);
    ck_assert_int_eq(space_set_muted(s, "host", true), -ENOENT); /* not connected */
    /* Live: on the air, the feed's listeners hear. */
    ck_assert_int_eq(space_go_live(s), 0);
    ck_assert_int_eq(stored_state("beta"), SPACE_LIVE);
    ck_assert(s->program.is_on_air);
    ck_assert(s->ogg.is_live);
    /* Remove: the key is gone and the connection closed. */
    ck_assert_int_eq(space_remove_speaker(s, "bob"), 0);
    cur = s;
    ck_assert(run_until_fn(loop, has_no_speaker_bob, 2000));
    ck_assert(!registry_check_speaker_key(reg, "beta", "bob", key, strlen(key)));
    char buf[64];
    ssize_t n;
    do
        n = recv(a[1], buf, sizeof(buf), MSG_DONTWAIT);
    while (n > 0);
    ck_assert_int_eq(n, 0);
    close(a[1]);
    ck_assert_int_eq(space_remove_speaker(s, "bob"), -ENOENT);
    ck_assert(space_speaker_was_removed(s, "bob"));
    ck_assert(!space_speaker_was_removed(s, "alice"));
    /* End: every connection closed, nothing more accepted. */
    int c[2];
    ck_assert_int_eq(space_publish(s, NULL, publisher_pair(c), NULL, 0, 1, 0, "c"), 0);
    space_end(s);
    ck_assert_int_eq(stored_state("beta"), SPACE_ENDED);
    ck_assert_ptr_null(s->publisher);
    ck_assert(s->ogg.is_ended);
    ck_assert(!s->program.is_on_air);
    do
        n = recv(c[1], buf, sizeof(buf), MSG_DONTWAIT);
    while (n > 0);
    ck_assert_int_eq(n, 0);
    close(c[1]);
    int d[2];
    ck_assert_int_eq(space_publish(s, NULL, publisher_pair(d), NULL, 0, 1, 0, "d"), -EPIPE);
    close(d[0]);
    close(d[1]);
    ck_assert_int_eq(space_go_live(s), -EPIPE);
    finish();
}
END_TEST

/* Edge relays' reports (POST /api/edges): their listeners count here, their upstream
 * connections (listeners of this node) do not, and a report expires after 3 s. */
START_TEST(edge_reports_count_forget_and_expire)
{
    struct space *s = spaces_get(&spaces, "alpha", 5);
    ck_assert_ptr_nonnull(s);
    struct space_edge r = {.connected = 10, .waiting = 2, .hearing = 8, .upstream = 1};
    ck_assert_int_eq(space_edge_report(s, "e1", &r), 0);
    r = (struct space_edge){.connected = 5, .hearing = 5};
    ck_assert_int_eq(space_edge_report(s, "e2", &r), 0);
    r = (struct space_edge){.connected = 6, .hearing = 6};
    ck_assert_int_eq(space_edge_report(s, "e2", &r), 0); /* replaces e2's */
    struct space_edge_totals et;
    space_edge_totals(s, &et);
    ck_assert_uint_eq(et.edges, 2);
    ck_assert_uint_eq(et.connected, 16);
    ck_assert_uint_eq(et.hearing, 14);
    ck_assert_uint_eq(et.upstreams, 1);
    struct feed_stats st;
    space_stats(s, &st); /* no listener of its own here: the upstream's share clamps at 0 */
    ck_assert_uint_eq(st.listeners, 16);
    ck_assert_uint_eq(st.hearing, 14);
    ck_assert_uint_eq(st.waiting, 2);
    /* e2 lost its upstream here (CHAN_EDGE_GONE): its report leaves at once; a
     * prefix of an id or an unknown id forgets nothing */
    space_edge_forget(s, "e", 1);
    space_edge_forget(s, "e3", 2);
    space_edge_totals(s, &et);
    ck_assert_uint_eq(et.edges, 2);
    space_edge_forget(s, "e2", 2);
    space_edge_totals(s, &et);
    ck_assert_uint_eq(et.edges, 1);
    ck_assert_uint_eq(et.connected, 10);
    ck_assert_uint_eq(et.hearing, 8);
    r = (struct space_edge){.connected = 6, .hearing = 6};
    ck_assert_int_eq(space_edge_report(s, "e2", &r), 0); /* its next report counts again */
    space_edge_totals(s, &et);
    ck_assert_uint_eq(et.edges, 2);
    run_for(loop, SPACE_EDGE_EXPIRE_MS + 100);
    space_edge_totals(s, &et);
    ck_assert_uint_eq(et.edges, 0);
    space_stats(s, &st);
    ck_assert_uint_eq(st.listeners, 0);
}
END_TEST

static Suite *space_suite(void)
{
    Suite *s = suite_create("space");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, get_loads_lazily_and_once);
    tcase_add_test(tc, unknown_or_invalid_id_is_null);
    tcase_add_test(tc, state_change_persisted);
    tcase_add_test(tc, builtin_speaker_makes_space_live);
    tcase_add_test(tc, second_publisher_is_busy);
    tcase_add_test(tc, silent_publisher_dropped_by_sweep);
    tcase_add_test(tc, speakers_mute_remove_and_lifecycle);
    tcase_add_test(tc, edge_reports_count_forget_and_expire);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(space_suite());
}
