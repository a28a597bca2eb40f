/* Unit tests for deliver/listener.c through feed.h's public functions: real
 * listeners on socketpairs (and TCP for a reset), read by a sink on the same
 * loop (tests/unit/harness.h). Every chunk's bytes name it (a tag and a
 * pattern), so the stream a reader gets can be checked chunk by chunk.
 * chunks_live() is zero at the end of every test. */
#include "deliver/feed.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "core/log.h"
#include "deliver/chunk.h"

static const char RESP[] = "HTTP/1.1 200 OK\r\nContent-Type: audio/ogg\r\n\r\n";
enum { RESP_LEN = sizeof(RESP) - 1, HEADER_LEN = 300, CHUNK_HEAD = 8 };

static struct loop *loop;
static struct feed feed;
static bool is_feed_live;

/* ---- chunks that name themselves ----------------------------------------------------------- */

static size_t len_of(uint32_t tag)
{
    return 600 + (tag * 97u) % 1400u;
}

static void fill(unsigned char *p, uint32_t tag, size_t len)
{
    memcpy(p, "CHNK", 4);
    memcpy(p + 4, &tag, 4);
    for (size_t i = CHUNK_HEAD; i < len; i++)
        p[i] = (unsigned char)(tag * 131u + i * 7u + (i >> 7));
}

static struct chunk *make_chunk(uint32_t tag)
{
    struct chunk *c = chunk_new(len_of(tag));
    ck_assert_ptr_nonnull(c);
    fill(c->data, tag, c->len);
    chunk_seal(c);
    return c;
}

static void fill_header(unsigned char *p)
{
    memcpy(p, "HDR!", 4);
    for (size_t i = 4; i < HEADER_LEN; i++)
        p[i] = (unsigned char)(i * 3u + 1u);
}

static struct chunk *make_header(void)
{
    struct chunk *c = chunk_new(HEADER_LEN);
    ck_assert_ptr_nonnull(c);
    fill_header(c->data);
    chunk_seal(c);
    return c;
}

static void publish(uint32_t from, uint32_t to)
{
    for (uint32_t t = from; t < to; t++)
        feed_publish(&feed, make_chunk(t));
}

/* Checks that `p` holds the response head then the header; returns the
 * offset of the audio. */
static size_t check_prefix(const unsigned char *p, size_t len)
{
    ck_assert_uint_ge(len, RESP_LEN + HEADER_LEN);
    ck_assert_int_eq(memcmp(p, RESP, RESP_LEN), 0);
    unsigned char hdr[HEADER_LEN];
    fill_header(hdr);
    ck_assert_int_eq(memcmp(p + RESP_LEN, hdr, HEADER_LEN), 0);
    return RESP_LEN + HEADER_LEN;
}

/* Splits audio bytes into whole chunks, checking every byte; fails on
 * anything that is not a chunk boundary. Returns the count; *rest gets the
 * bytes of an incomplete last chunk. */
static size_t parse_chunks(const unsigned char *p, size_t len, uint32_t *tags, size_t max,
                           size_t *rest)
{
    size_t n = 0, o = 0;
    unsigned char *want = malloc(2048);
    while (len - o >= CHUNK_HEAD) {
        ck_assert_msg(memcmp(p + o, "CHNK", 4) == 0, "no chunk boundary at audio byte %zu", o);
        uint32_t tag;
        memcpy(&tag, p + o + 4, 4);
        size_t cl = len_of(tag);
        if (len - o < cl) break;
        fill(want, tag, cl);
        ck_assert_msg(memcmp(p + o, want, cl) == 0, "chunk %u corrupted", tag);
        ck_assert_uint_lt(n, max);
        tags[n++] = tag;
        o += cl;
    }
    free(want);
    *rest = len - o;
    return n;
}

/* ---- fixture ------------------------------------------------------------------------------- */

static void setup(void)
{
    log_threshold = LOG_ERROR;
    signal(SIGPIPE, SIG_DFL); /* a stray SIGPIPE kills the test */
    ck_assert_uint_eq(chunks_live(), 0);
    loop = loop_new();
    ck_assert_ptr_nonnull(loop);
    ck_assert_int_eq(feed_init(&feed, loop, 16, 3, RESP), 0);
    is_feed_live = true;
}

/* Ends a test: closes the feed, runs the frees, and wants no chunk left. */
static void finish(void)
{
    if (is_feed_live) feed_fini(&feed);
    is_feed_live = false;
    loop_run_once(loop);
    ck_assert_uint_eq(chunks_live(), 0);
}

static void teardown(void)
{
    finish();
    loop_free(loop);
}

/* A listener on a socketpair; the reading end goes to `s`. */
static void join(struct sink *s, int is_head_only)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    sink_start(s, loop, sv[1]);
    ck_assert_int_eq(listener_start(&feed, sv[0], is_head_only), 0);
}

static size_t audio_len(uint32_t from, uint32_t to)
{
    size_t n = 0;
    for (uint32_t t = from; t < to; t++)
        n += len_of(t);
    return n;
}

/* Waits until `s` has the prefix plus whole chunks [from, to), then checks
 * that they are exactly those chunks. */
static void expect_chunks(struct sink *s, size_t audio_off, uint32_t from, uint32_t to)
{
    sink_wait_bytes(s, audio_off + audio_len(from, to), 2000);
    uint32_t tags[256];
    size_t rest;
    size_t n = parse_chunks(s->buf + audio_off, s->len - audio_off, tags, 256, &rest);
    ck_assert_uint_eq(rest, 0);
    ck_assert_uint_eq(n, to - from);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(tags[i], from + i);
}

/* ---- tests --------------------------------------------------------------------------------- */

START_TEST(join_gets_head_header_burst_then_live)
{
    feed_set_header(&feed, make_header());
    publish(0, 6);
    struct sink a, b;
    join(&a, 0);
    join(&b, 0);
    ck_assert_uint_eq(feed.stats.listeners, 2);
    ck_assert_uint_eq(feed.stats.joined, 2);
    /* Burst of 3: chunks 3, 4, 5. */
    sink_wait_bytes(&a, RESP_LEN + HEADER_LEN + audio_len(3, 6), 2000);
    size_t off = check_prefix(a.buf, a.len);
    expect_chunks(&a, off, 3, 6);
    /* Live: each published chunk arrives whole and byte-identical, to both. */
    for (uint32_t t = 6; t < 12; t++) {
        publish(t, t + 1);
        expect_chunks(&a, off, 3, t + 1);
    }
    expect_chunks(&b, check_prefix(b.buf, b.len), 3, 12);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert_int_eq(memcmp(a.buf, b.buf, a.len), 0);
    ck_assert_uint_eq(feed.stats.bytes, a.len + b.len);
    ck_assert_uint_eq(feed.stats.skips, 0);
    /* feed_fini closes them: each reader sees the end of the stream. */
    feed_fini(&feed);
    is_feed_live = false;
    ck_assert_uint_eq(feed.stats.listeners, 0);
    ck_assert_uint_eq(feed.stats.left, 2);
    sink_wait_eof(&a, 2000);
    sink_wait_eof(&b, 2000);
    ck_assert_uint_eq(a.len, b.len); /* nothing after the last chunk */
    sink_fini(&a);
    sink_fini(&b);
    finish();
}
END_TEST

START_TEST(join_before_header_waits_for_it)
{
    struct sink a;
    join(&a, 0);
    /* listener_start writes at once: the head is already in the socket. */
    sink_wait_bytes(&a, RESP_LEN, 2000);
    ck_assert_uint_eq(a.len, RESP_LEN);
    ck_assert_int_eq(memcmp(a.buf, RESP, RESP_LEN), 0);
    /* Audio without a header goes nowhere. */
    publish(0, 5);
    ck_assert_uint_eq(feed.stats.bytes, RESP_LEN);
    feed_set_header(&feed, make_header());
    /* The header, then a burst from the ring as it is now: 2, 3, 4. */
    sink_wait_bytes(&a, RESP_LEN + HEADER_LEN, 2000);
    expect_chunks(&a, check_prefix(a.buf, a.len), 2, 5);
    publish(5, 7);
    expect_chunks(&a, RESP_LEN + HEADER_LEN, 2, 7);
    sink_fini(&a);
    finish();
}
END_TEST

START_TEST(join_on_an_empty_ring_starts_live)
{
    feed_set_header(&feed, make_header());
    struct sink a;
    join(&a, 0);
    sink_wait_bytes(&a, RESP_LEN + HEADER_LEN, 2000);
    size_t off = check_prefix(a.buf, a.len);
    ck_assert_uint_eq(a.len, off);
    publish(0, 4);
    expect_chunks(&a, off, 0, 4);
    sink_fini(&a);
    finish();
}
END_TEST

START_TEST(head_only_gets_the_response_head)
{
    feed_set_header(&feed, make_header());
    publish(0, 6);
    struct sink a;
    join(&a, 1);
    run_until(loop, sink_at_eof, &a, 2000);
    ck_assert_msg(a.len == RESP_LEN, "a HEAD listener got %zu bytes after the head",
                  a.len - RESP_LEN);
    ck_assert(a.is_eof);
    ck_assert_uint_eq(a.len, RESP_LEN);
    ck_assert_int_eq(memcmp(a.buf, RESP, RESP_LEN), 0);
    ck_assert_uint_eq(feed.stats.listeners, 0);
    ck_assert_uint_eq(feed.stats.left, 1);
    sink_fini(&a);
    finish();
}
END_TEST

static bool has_tag(void *arg)
{
    struct sink *s = arg;
    size_t off = RESP_LEN + HEADER_LEN;
    if (s->len < off) return false;
    uint32_t tags[512];
    size_t rest;
    size_t n = parse_chunks(s->buf + off, s->len - off, tags, 512, &rest);
    return n > 0 && tags[n - 1] == s->want;
}

START_TEST(slow_reader_skips_to_live_at_a_chunk_boundary)
{
    feed.sndbuf = 4096;
    feed.burst_chunks = 2;
    feed_set_header(&feed, make_header());
    publish(0, 4);
    struct sink a;
    join(&a, 0);
    sink_pause(&a);
    /* 100 chunks while it does not read: far more than its socket and the
     * 16-chunk ring hold together. */
    publish(4, 104);
    ck_assert_uint_lt(feed.stats.bytes, RESP_LEN + HEADER_LEN + audio_len(2, 104));
    ck_assert_uint_eq(feed.ring.tail, 104 - feed.ring.cap);
    sink_resume(&a);
    a.want = 103;
    ck_assert(run_until(loop, has_tag, &a, 3000));
    size_t off = check_prefix(a.buf, a.len);
    uint32_t tags[256];
    size_t rest;
    size_t n = parse_chunks(a.buf + off, a.len - off, tags, 256, &rest);
    ck_assert_uint_eq(rest, 0);
    /* Whole chunks, in order, from the burst; then a jump to live. */
    ck_assert_uint_eq(tags[0], 2);
    uint64_t gaps = 0;
    for (size_t i = 1; i < n; i++) {
        ck_assert_uint_gt(tags[i], tags[i - 1]);
        gaps += tags[i] - tags[i - 1] - 1;
    }
    ck_assert_uint_ge(feed.stats.skips, 1);
    ck_assert_uint_gt(gaps, 0);
    ck_assert_uint_eq(gaps, feed.stats.skipped_chunks);
    ck_assert_uint_eq(tags[n - 1], 103);
    ck_assert_uint_eq(feed.stats.bytes, a.len);
    /* Caught up again: live chunks flow. */
    size_t before = a.len;
    publish(104, 107);
    sink_wait_bytes(&a, before + audio_len(104, 107), 2000);
    n = parse_chunks(a.buf + off, a.len - off, tags, 256, &rest);
    ck_assert_uint_eq(rest, 0);
    ck_assert_uint_eq(tags[n - 3], 104);
    ck_assert_uint_eq(tags[n - 1], 106);
    ck_assert_uint_eq(feed.stats.listeners, 1);
    sink_fini(&a);
    finish();
}
END_TEST

START_TEST(sweep_drops_a_stalled_listener)
{
    feed.sndbuf = 4096;
    feed.stall_timeout_ms = 50;
    feed_set_header(&feed, make_header());
    struct sink stalled, idle;
    join(&stalled, 0);
    sink_pause(&stalled);
    publish(0, 60);
    ck_assert_uint_lt(feed.stats.bytes, RESP_LEN + HEADER_LEN + audio_len(0, 60));
    /* A caught-up listener with nothing to write is not stalled. */
    join(&idle, 0);
    expect_chunks(&idle, RESP_LEN + HEADER_LEN, 57, 60);
    feed_sweep(&feed);
    ck_assert_uint_eq(feed.stats.dropped, 0); /* not yet */
    run_for(loop, feed.stall_timeout_ms + 20);
    feed_sweep(&feed);
    ck_assert_uint_eq(feed.stats.dropped, 1);
    ck_assert_uint_eq(feed.stats.listeners, 1);
    ck_assert_uint_eq(feed.stats.left, 1);
    /* The dropped reader gets what was buffered, then the end. */
    sink_resume(&stalled);
    sink_wait_eof(&stalled, 2000);
    ck_assert_int_eq(stalled.err, 0);
    check_prefix(stalled.buf, stalled.len);
    /* The idle one still gets live audio. */
    publish(60, 62);
    expect_chunks(&idle, RESP_LEN + HEADER_LEN, 57, 62);
    sink_fini(&stalled);
    sink_fini(&idle);
    finish();
}
END_TEST

static bool no_listeners(void *arg)
{
    return feed.stats.listeners == 0;
}

START_TEST(peer_closing_mid_write_costs_no_sigpipe)
{
    /* Over TCP: closing with unread data resets the connection. */
    int srv, cli;
    tcp_pair(&srv, &cli);
    int small = 4096;
    ck_assert_int_eq(setsockopt(cli, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    feed.sndbuf = 4096;
    feed_set_header(&feed, make_header());
    publish(0, 4);
    ck_assert_int_eq(listener_start(&feed, srv, 0), 0);
    publish(4, 80); /* the listener blocks midway */
    ck_assert_uint_lt(feed.stats.bytes, RESP_LEN + HEADER_LEN + audio_len(1, 80));
    close(cli);
    /* Writing on goes to a reset socket; the listener closes itself. */
    publish(80, 82);
    ck_assert(run_until(loop, no_listeners, NULL, 3000));
    publish(82, 90);
    ck_assert_uint_eq(feed.stats.left, 1);
    ck_assert_int_eq(fcntl(srv, F_GETFD), -1);
    finish();
}
END_TEST

START_TEST(peer_gone_before_publish_costs_no_sigpipe)
{
    feed_set_header(&feed, make_header());
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ck_assert_int_eq(listener_start(&feed, sv[0], 0), 0);
    close(sv[1]);
    /* Caught up, so the publish writes at once, to a closed peer (EPIPE). */
    publish(0, 3);
    ck_assert_uint_eq(feed.stats.listeners, 0);
    ck_assert_uint_eq(feed.stats.left, 1);
    publish(3, 20);
    finish();
}
END_TEST

START_TEST(listener_reading_input_closes_on_eof)
{
    feed_set_header(&feed, make_header());
    struct sink a;
    join(&a, 0);
    /* A listener may send bytes (they are dropped); a half-close ends it. */
    ck_assert_int_eq(send(a.io.fd, "junk", 4, 0), 4);
    shutdown(a.io.fd, SHUT_WR);
    ck_assert(run_until(loop, no_listeners, NULL, 2000));
    sink_wait_eof(&a, 2000);
    ck_assert_uint_eq(feed.stats.left, 1);
    sink_fini(&a);
    finish();
}
END_TEST

/* ---- write coalescing buckets -------------------------------------------------------------- */

enum { NB_LISTENERS = 8 };

/* Joins NB_LISTENERS caught-up listeners on an empty ring: listener i is in
 * write bucket i (joins are dealt round-robin). */
static void join_buckets(struct sink *s)
{
    feed_set_header(&feed, make_header());
    for (int i = 0; i < NB_LISTENERS; i++) {
        join(&s[i], 0);
        sink_wait_bytes(&s[i], RESP_LEN + HEADER_LEN, 2000);
        check_prefix(s[i].buf, s[i].len);
    }
}

/* Publishes chunk `seq` (tagged seq) with feed.nbuckets as set, and checks
 * that exactly the listeners whose bucket is congruent to seq modulo
 * nbuckets were written: those now hold every chunk up to seq, in order;
 * the others hold what they held. `last[i]` is listener i's last chunk + 1. */
static void publish_to_buckets(struct sink *s, uint32_t seq, uint32_t *last)
{
    unsigned nb = feed.nbuckets;
    publish(seq, seq + 1);
    for (int i = 0; i < NB_LISTENERS; i++) {
        /* feed_publish writes synchronously: whatever it wrote is readable. */
        sink_drain(&s[i]);
        ck_assert(!s[i].is_eof);
        if ((unsigned)i % nb == seq % nb) last[i] = seq + 1;
        uint32_t tags[64];
        size_t rest;
        size_t off = RESP_LEN + HEADER_LEN;
        size_t n = parse_chunks(s[i].buf + off, s[i].len - off, tags, 64, &rest);
        ck_assert_uint_eq(rest, 0);
        ck_assert_msg(n == last[i], "nbuckets %u, chunk %u: listener %d has %zu chunks, not %u", nb,
                      seq, i, n, last[i]);
        for (size_t k = 0; k < n; k++)
            ck_assert_uint_eq(tags[k], k);
    }
}

START_TEST(buckets_write_each_listener_every_nth_chunk)
{
    struct sink s[NB_LISTENERS];
    uint32_t last[NB_LISTENERS] = {0};
    feed.nbuckets = 4;
    join_buckets(s);
    /* Chunk k goes to listeners k % 4 and k % 4 + 4 only, with every chunk
     * they missed since their last write. */
    for (uint32_t seq = 0; seq < 4; seq++)
        publish_to_buckets(s, seq, last);
    ck_assert_uint_eq(last[0], 1);
    ck_assert_uint_eq(last[3], 4);
    ck_assert_uint_eq(last[7], 4);
    /* Four chunks later every listener has been written once more and has
     * all of the first four chunks (and more), in order. */
    for (uint32_t seq = 4; seq < 8; seq++)
        publish_to_buckets(s, seq, last);
    for (int i = 0; i < NB_LISTENERS; i++)
        ck_assert_uint_eq(last[i], 5 + (uint32_t)i % 4);
    ck_assert_uint_eq(feed.stats.skips, 0);
    ck_assert_uint_eq(feed.stats.listeners, NB_LISTENERS);
    for (int i = 0; i < NB_LISTENERS; i++)
        sink_fini(&s[i]);
    finish();
}
END_TEST

START_TEST(changing_nbuckets_strands_nobody)
{
    struct sink s[NB_LISTENERS];
    uint32_t last[NB_LISTENERS] = {0};
    feed.nbuckets = 4;
    join_buckets(s);
    uint32_t seq = 0;
    for (; seq < 6; seq++)
        publish_to_buckets(s, seq, last);
    /* Every new count reaches every listener within that many chunks. */
    static const unsigned counts[] = {2, 1, 3, 8, 4, 2};
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        feed.nbuckets = counts[c];
        for (unsigned k = 0; k < counts[c]; k++, seq++)
            publish_to_buckets(s, seq, last);
        for (int i = 0; i < NB_LISTENERS; i++)
            ck_assert_msg(last[i] + counts[c] > seq,
                          "listener %d stranded at chunk %u after nbuckets became %u", i, last[i],
                          counts[c]);
    }
    /* Back to one bucket: everyone gets everything at once. */
    feed.nbuckets = 1;
    publish_to_buckets(s, seq, last);
    for (int i = 0; i < NB_LISTENERS; i++)
        ck_assert_uint_eq(last[i], seq + 1);
    ck_assert_uint_eq(feed.stats.skips, 0);
    for (int i = 0; i < NB_LISTENERS; i++)
        sink_fini(&s[i]);
    finish();
}
END_TEST

/* Chunks held by listener i's sink so far (all of them in order, none cut). */
static size_t chunks_held(struct sink *s)
{
    uint32_t tags[64];
    size_t rest, off = RESP_LEN + HEADER_LEN;

    sink_drain(s);
    size_t n = parse_chunks(s->buf + off, s->len - off, tags, 64, &rest);
    ck_assert_uint_eq(rest, 0);
    for (size_t k = 0; k < n; k++)
        ck_assert_uint_eq(tags[k], k);
    return n;
}

/* feed_append writes nothing; feed_flush_pending then writes the whole run
 * to the buckets whose turn one of its chunks is, and only to those. */
START_TEST(a_run_of_appended_chunks_is_written_once)
{
    struct sink s[NB_LISTENERS];
    feed.nbuckets = 4;
    join_buckets(s);
    feed_append(&feed, make_chunk(0));
    feed_append(&feed, make_chunk(1));
    for (int i = 0; i < NB_LISTENERS; i++)
        ck_assert_uint_eq(chunks_held(&s[i]), 0);
    feed_flush_pending(&feed); /* chunks 0 and 1: buckets 0 and 1 */
    for (int i = 0; i < NB_LISTENERS; i++)
        ck_assert_uint_eq(chunks_held(&s[i]), i % 4 < 2 ? 2 : 0);
    feed_flush_pending(&feed); /* nothing pending: nothing written */
    for (int i = 0; i < NB_LISTENERS; i++)
        ck_assert_uint_eq(chunks_held(&s[i]), i % 4 < 2 ? 2 : 0);
    for (uint32_t t = 2; t < 6; t++) /* a run as long as nbuckets reaches everyone */
        feed_append(&feed, make_chunk(t));
    feed_flush_pending(&feed);
    for (int i = 0; i < NB_LISTENERS; i++)
        ck_assert_uint_eq(chunks_held(&s[i]), 6);
    ck_assert_uint_eq(feed.stats.skips, 0);
    for (int i = 0; i < NB_LISTENERS; i++)
        sink_fini(&s[i]);
    finish();
}
END_TEST

/* Listener states (feed.h): waiting before the header, hearing once audio
 * is written and caught up, lagging when blocked far behind or skipped, and
 * back to hearing only after FEED_HEAR_WINDOW_MS without lag; the gauges
 * always add up to the connected listeners (HEAD requests in no state). */
static void expect_states(uint64_t waiting, uint64_t hearing, uint64_t lagging)
{
    ck_assert_uint_eq(feed.stats.waiting, waiting);
    ck_assert_uint_eq(feed.stats.hearing, hearing);
    ck_assert_uint_eq(feed.stats.lagging, lagging);
}

START_TEST(states_follow_the_listener)
{
    feed.sndbuf = 4096;
    feed.lag_chunks = 4;
    struct sink a, b;
    join(&a, 0);
    join(&b, 0);
    expect_states(2, 0, 0);
    feed_set_header(&feed, make_header());
    publish(0, 2);
    expect_states(0, 2, 0);
    /* b stops reading: once its socket is full and it is more than lag_chunks
     * behind, the sweep finds it lagging; a keeps hearing. */
    sink_pause(&b);
    for (uint32_t t = 2; t < 40; t++) {
        publish(t, t + 1);
        a.want = t;
        ck_assert(run_until(loop, has_tag, &a, 2000));
    }
    feed_sweep(&feed);
    expect_states(0, 1, 1);
    /* It reads again and is skipped to live: still lagging (a skip counts for
     * FEED_HEAR_WINDOW_MS), although caught up. */
    sink_resume(&b);
    b.want = 40;
    publish(40, 41);
    ck_assert(run_until(loop, has_tag, &b, 3000));
    ck_assert_uint_ge(feed.stats.skips, 1);
    expect_states(0, 1, 1);
    /* A HEAD request is in no state (and is gone once its head is written);
     * closing sockets empties the gauges. */
    struct sink h;
    join(&h, 1);
    expect_states(0, 1, 1);
    ck_assert_uint_eq(feed.stats.listeners, 2);
    sink_fini(&a);
    sink_fini(&b);
    sink_fini(&h);
    ck_assert(run_until(loop, no_listeners, NULL, 2000));
    expect_states(0, 0, 0);
    finish();
}
END_TEST

/* feed_clock: lateness is arrival minus due, over the feed's normal delay;
 * a shift lasting a whole window becomes the normal; granules going
 * backwards start over. */
START_TEST(feed_clock_measures_lateness)
{
    struct feed_clock k = {0};
    ck_assert_uint_eq(feed_clock_observe(&k, 1000, 48000), 0);        /* due 1000 ms: base 0 */
    ck_assert_uint_eq(feed_clock_observe(&k, 1100, 48000 + 4800), 0); /* on time */
    ck_assert_uint_eq(feed_clock_observe(&k, 1150, 48000 + 9600), 0); /* early: still 0 */
    /* a stall: audio due at 1300 ms arrives at 4300 */
    ck_assert_uint_eq(feed_clock_observe(&k, 4300, 48000 + 14400),
                      3050); /* over the early base -50 */
    ck_assert_uint_eq(feed_clock_observe(&k, 4310, 48000 + 19200), 2960); /* catching up */
    /* still 3 s late for a whole window (more than FEED_LAG_MS): the new normal */
    uint64_t g = 48000 + 19200, t = 4310;
    for (int i = 0; i < 250; i++) { /* two windows: the first held the early base */
        g += 4800;
        t += 100;
        feed_clock_observe(&k, t, g);
    }
    ck_assert_uint_eq(feed_clock_observe(&k, t + 100, g + 4800), 0);
    /* granules restart: no lateness from the jump */
    ck_assert_uint_eq(feed_clock_observe(&k, t + 200, 4800), 0);
    ck_assert_uint_eq(feed_clock_observe(&k, t + 300, 9600), 0);
}
END_TEST

/* A feed whose chunks arrived more than FEED_LAG_MS late (its process fell
 * behind) counts its caught-up listeners lagging, not hearing, for
 * FEED_HEAR_WINDOW_MS. */
START_TEST(late_chunks_make_listeners_lagging)
{
    struct sink a;
    join(&a, 0);
    feed_set_header(&feed, make_header());
    publish(0, 2);
    expect_states(0, 1, 0);
    feed.late_at_ms = loop_now_ms(loop); /* what feed_append sets for a late chunk */
    a.want = 2;
    publish(2, 3);
    ck_assert(run_until(loop, has_tag, &a, 2000));
    expect_states(0, 0, 1);
    sink_fini(&a);
    ck_assert(run_until(loop, no_listeners, NULL, 2000));
    finish();
}
END_TEST

START_TEST(histograms_count_first_audio_and_sessions)
{
    struct sink a, h;
    join(&a, 0);
    feed_set_header(&feed, make_header());
    sink_wait_bytes(&a, RESP_LEN + HEADER_LEN, 2000);
    /* The header is not audio: no first audio yet. */
    ck_assert_uint_eq(feed.stats.join_to_audio.count, 0);
    publish(0, 1);
    expect_chunks(&a, RESP_LEN + HEADER_LEN, 0, 1);
    ck_assert_uint_eq(feed.stats.join_to_audio.count, 1);
    /* Observed once per listener, not per write. */
    publish(1, 3);
    expect_chunks(&a, RESP_LEN + HEADER_LEN, 0, 3);
    ck_assert_uint_eq(feed.stats.join_to_audio.count, 1);
    /* A HEAD request never gets audio: in neither histogram. */
    join(&h, 1);
    ck_assert_uint_eq(feed.stats.session.count, 0);
    feed_fini(&feed);
    is_feed_live = false;
    ck_assert_uint_eq(feed.stats.join_to_audio.count, 1);
    ck_assert_uint_eq(feed.stats.session.count, 1);
    ck_assert_uint_eq(feed.stats.listens, 0); /* far less than 60 s */
    /* The numbers are the feed's struct hist, bucket for bucket. */
    struct hist j, s;
    ck_assert_int_eq(feed_hist_get(&feed.stats.join_to_audio, &hist_join_to_first_audio, &j), 0);
    ck_assert_int_eq(feed_hist_get(&feed.stats.session, &hist_session_length, &s), 0);
    ck_assert_uint_eq(hist_cumulative(&j, 0), 1); /* well under 50 ms on a socketpair */
    ck_assert_uint_eq(hist_cumulative(&s, 0), 1); /* under 1 s */
    ck_assert_int_eq(memcmp(j.counts, feed.join_hist.counts, sizeof(j.counts)), 0);
    sink_fini(&a);
    sink_fini(&h);
    finish();
}
END_TEST

/* ---- WebSocket feeds (feed.is_ws): client frames -------------------------------------------- */

/* Re-creates the fixture's feed as a WebSocket feed (empty response head,
 * burst of one chunk) with a small send buffer, so that a paused reader
 * leaves the listener blocked in the middle of a chunk. */
static void make_ws_feed(void)
{
    feed_fini(&feed);
    ck_assert_int_eq(feed_init(&feed, loop, 16, 1, feed_ws_response_head), 0);
    feed.is_ws = true;
    feed.sndbuf = 4096;
    feed_set_header(&feed, make_header());
}

/* Writes one client frame (masked unless told) to `fd`. */
static void client_send(int fd, unsigned op, const void *p, size_t len, bool masked)
{
    unsigned char f[200];
    ck_assert_uint_lt(len, 126);
    static const unsigned char key[4] = {1, 2, 3, 4};
    size_t n = 0;
    f[n++] = (unsigned char)(0x80 | op);
    f[n++] = (unsigned char)((masked ? 0x80 : 0) | len);
    if (masked) memcpy(f + n, key, 4), n += 4;
    for (size_t i = 0; i < len; i++)
        f[n++] = ((const unsigned char *)p)[i] ^ (masked ? key[i & 3] : 0);
    ck_assert_int_eq(send(fd, f, n, MSG_NOSIGNAL), (ssize_t)n);
}

struct ws_seen {
    uint32_t tags[64];
    size_t nchunks;
    int pongs, closes;
    size_t pong_at, close_at; /* chunks before it */
    unsigned char pong[125];
    size_t pong_len;
    unsigned close_code;
    bool is_close_last;
};

/* Splits what a WebSocket listener got after the header into whole chunks and
 * server control frames (pong 0x8A, close 0x88); fails on a cut chunk or
 * frame, or a chunk's byte out of place. */
static void parse_ws(const unsigned char *p, size_t len, struct ws_seen *w)
{
    memset(w, 0, sizeof(*w));
    unsigned char *want = malloc(2048);
    size_t o = 0;
    while (o < len) {
        w->is_close_last = false;
        if (p[o] == 0x8A || p[o] == 0x88) {
            ck_assert_uint_ge(len - o, 2);
            size_t pl = p[o + 1];
            ck_assert_uint_le(pl, 125);
            ck_assert_uint_ge(len - o, 2 + pl);
            if (p[o] == 0x8A) {
                w->pongs++;
                w->pong_at = w->nchunks;
                w->pong_len = pl;
                memcpy(w->pong, p + o + 2, pl);
            } else {
                ck_assert_uint_ge(pl, 2);
                w->closes++;
                w->close_at = w->nchunks;
                w->close_code = (unsigned)p[o + 2] << 8 | p[o + 3];
                w->is_close_last = true;
            }
            o += 2 + pl;
            continue;
        }
        ck_assert_msg(len - o >= CHUNK_HEAD && memcmp(p + o, "CHNK", 4) == 0,
                      "neither a chunk nor a control frame at audio byte %zu", o);
        uint32_t tag;
        memcpy(&tag, p + o + 4, 4);
        size_t cl = len_of(tag);
        ck_assert_uint_ge(len - o, cl);
        fill(want, tag, cl);
        ck_assert_msg(memcmp(p + o, want, cl) == 0, "chunk %u corrupted", tag);
        ck_assert_uint_lt(w->nchunks, 64);
        w->tags[w->nchunks++] = tag;
        o += cl;
    }
    free(want);
}

static bool ws_has_blocked(void *arg)
{
    return !list_is_empty(&feed.blocked);
}

START_TEST(ws_control_frames_wait_for_a_chunk_boundary)
{
    make_ws_feed();
    struct sink a;
    join(&a, 0);
    sink_wait_bytes(&a, HEADER_LEN, 2000); /* no response head: the caller sent the 101 */
    unsigned char hdr[HEADER_LEN];
    fill_header(hdr);
    ck_assert_int_eq(memcmp(a.buf, hdr, HEADER_LEN), 0);
    /* the reader stops: the listener blocks, most likely in the middle of a chunk */
    sink_pause(&a);
    publish(0, 12);
    ck_assert(run_until(loop, ws_has_blocked, NULL, 2000));
    /* a ping now: its pong must wait for the end of the chunk being written */
    client_send(a.io.fd, 0x9, "abc", 3, true);
    run_for(loop, 30);
    sink_resume(&a);
    publish(12, 14);
    sink_wait_bytes(&a, HEADER_LEN + audio_len(0, 14) + 5, 3000);
    struct ws_seen w;
    parse_ws(a.buf + HEADER_LEN, a.len - HEADER_LEN, &w);
    ck_assert_uint_eq(w.nchunks, 14);
    for (size_t i = 0; i < w.nchunks; i++)
        ck_assert_uint_eq(w.tags[i], i);
    ck_assert_int_eq(w.pongs, 1);
    ck_assert_uint_eq(w.pong_len, 3);
    ck_assert_int_eq(memcmp(w.pong, "abc", 3), 0);
    ck_assert_uint_gt(w.pong_at, 0); /* after the chunk it was in the middle of */
    /* the client closes: a close frame echoing 1001, then the end, no audio after it */
    unsigned char code[2] = {0x03, 0xe9};
    client_send(a.io.fd, 0x8, code, 2, true);
    sink_wait_eof(&a, 2000);
    publish(14, 16);
    parse_ws(a.buf + HEADER_LEN, a.len - HEADER_LEN, &w);
    ck_assert_int_eq(w.closes, 1);
    ck_assert_uint_eq(w.close_code, 1001);
    ck_assert(w.is_close_last);
    ck_assert_uint_eq(feed.stats.ws_closes, 1);
    ck_assert_uint_eq(feed.stats.dropped, 0);
    ck_assert_uint_eq(feed.stats.listeners, 0);
    sink_fini(&a);
    finish();
}
END_TEST

START_TEST(ws_violation_closes_only_that_listener)
{
    make_ws_feed();
    struct sink a, b;
    join(&a, 0);
    join(&b, 0);
    publish(0, 2);
    /* joined on an empty ring: both start at chunk 0 */
    sink_wait_bytes(&a, HEADER_LEN + audio_len(0, 2), 2000);
    sink_wait_bytes(&b, HEADER_LEN + audio_len(0, 2), 2000);
    /* a client frame without a mask: close 1002 and drop */
    client_send(a.io.fd, 0x1, "hi", 2, false);
    sink_wait_eof(&a, 2000);
    struct ws_seen w;
    parse_ws(a.buf + HEADER_LEN, a.len - HEADER_LEN, &w);
    ck_assert_int_eq(w.closes, 1);
    ck_assert_uint_eq(w.close_code, 1002);
    ck_assert(w.is_close_last);
    ck_assert_uint_eq(feed.stats.dropped_protocol, 1);
    ck_assert_uint_eq(feed.stats.dropped, 1);
    ck_assert_uint_eq(feed.stats.listeners, 1);
    /* the other listener goes on, every chunk whole and in order */
    publish(2, 6);
    sink_wait_bytes(&b, HEADER_LEN + audio_len(0, 6), 2000);
    parse_ws(b.buf + HEADER_LEN, b.len - HEADER_LEN, &w);
    ck_assert_uint_eq(w.nchunks, 6);
    ck_assert_int_eq(w.closes + w.pongs, 0);
    for (size_t i = 0; i < w.nchunks; i++)
        ck_assert_uint_eq(w.tags[i], i);
    sink_fini(&a);
    sink_fini(&b);
    finish();
}
END_TEST

static Suite *listener_suite(void)
{
    Suite *s = suite_create("listener");
    TCase *tc = tcase_create("listener");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, join_gets_head_header_burst_then_live);
    tcase_add_test(tc, join_before_header_waits_for_it);
    tcase_add_test(tc, join_on_an_empty_ring_starts_live);
    tcase_add_test(tc, head_only_gets_the_response_head);
    tcase_add_test(tc, slow_reader_skips_to_live_at_a_chunk_boundary);
    tcase_add_test(tc, sweep_drops_a_stalled_listener);
    tcase_add_test(tc, peer_closing_mid_write_costs_no_sigpipe);
    tcase_add_test(tc, peer_gone_before_publish_costs_no_sigpipe);
    tcase_add_test(tc, listener_reading_input_closes_on_eof);
    tcase_add_test(tc, buckets_write_each_listener_every_nth_chunk);
    tcase_add_test(tc, changing_nbuckets_strands_nobody);
    tcase_add_test(tc, a_run_of_appended_chunks_is_written_once);
    tcase_add_test(tc, states_follow_the_listener);
    tcase_add_test(tc, histograms_count_first_audio_and_sessions);
    tcase_add_test(tc, feed_clock_measures_lateness);
    tcase_add_test(tc, late_chunks_make_listeners_lagging);
    tcase_add_test(tc, ws_control_frames_wait_for_a_chunk_boundary);
    tcase_add_test(tc, ws_violation_closes_only_that_listener);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(listener_suite());
}
