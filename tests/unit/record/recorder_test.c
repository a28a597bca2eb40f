/* Unit tests for record/recorder.c: a real recorder thread writes real files in a mkdtemp
 * directory; packets come from the libopus encoder; everything written is read back with libogg
 * (capture and CRC through ogg_sync, packets through ogg_stream) and decoded with libopus.
 * Waits are polls with a deadline (the condition is what the test asserts, never the sleep). */
#include "record/recorder.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ogg/ogg.h>
#include <opus/opus.h>

#include "../harness.h"
#include "core/clock.h"
#include "core/log.h"

enum { PRE_SKIP = 312, MAX_PKT = 1500, MAX_SEGS = 16 };

static char dir[256];

static void setup(void)
{
    log_threshold = LOG_ERROR;
    snprintf(dir, sizeof(dir), "%s/recorder_test.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- Audio in ---- */

struct enc {
    OpusEncoder *e;
    int channels;
    long t;
};

static void enc_open(struct enc *en, int channels)
{
    int err;
    en->e = opus_encoder_create(48000, channels, OPUS_APPLICATION_AUDIO, &err);
    ck_assert_int_eq(err, OPUS_OK);
    opus_encoder_ctl(en->e, OPUS_SET_BITRATE(48000));
    en->channels = channels;
    en->t = 0;
}

static int enc_packet(struct enc *en, int frame, uint8_t *out)
{
    opus_int16 pcm[2880 * 2];
    for (int i = 0; i < frame; i++, en->t++) {
        double v = 9000 * sin(en->t * 2 * M_PI * 440 / 48000.0);
        for (int c = 0; c < en->channels; c++)
            pcm[i * en->channels + c] = (opus_int16)v;
    }
    int n = opus_encode(en->e, pcm, frame, out, MAX_PKT);
    ck_assert_int_gt(n, 0);
    return n;
}

/* Encodes and records `count` packets of `frame` samples; returns how many were accepted. */
static int feed(struct recording *h, struct enc *en, int count, int frame)
{
    int ok = 0;
    uint8_t pkt[MAX_PKT];
    for (int i = 0; i < count; i++) {
        int n = enc_packet(en, frame, pkt);
        ok += recording_packet(h, pkt, (size_t)n, frame) == 0;
    }
    return ok;
}

static void nap_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static struct recording_info info_of(struct recorder *r, const char *id)
{
    struct recording_info in;
    ck_assert_int_eq(recorder_get_info(r, id, &in), 0);
    return in;
}

/* Polls until the last segment of `id` is in `state` and the recording is no longer open. */
static void wait_last_state(struct recorder *r, const char *id, enum segment_state state)
{
    uint64_t deadline = clock_ms() + 5000;
    struct segment_ref refs[MAX_SEGS];
    for (;;) {
        int n = recorder_get_segments(r, id, refs, MAX_SEGS);
        struct recording_info in = info_of(r, id);
        if (n > 0 && refs[n - 1].state == state && !in.is_open && !in.is_closing) return;
        ck_assert_msg(clock_ms() < deadline, "segment never reached state %d", state);
        nap_ms(1);
    }
}

/* ---- Files out ---- */

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static void spit(const char *path, const void *buf, size_t len, const char *mode)
{
    FILE *f = fopen(path, mode);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

/* What check_file() found in a segment. */
struct stream_facts {
    int pages, packets;
    int64_t last_granule;
    uint64_t last_page_off; /* offset of the last page */
    size_t size;
    int max_page_ms;
};

static void assert_crc(ogg_page *og)
{
    unsigned char stored[4];
    memcpy(stored, og->header + 22, 4);
    ogg_page_checksum_set(og);
    ck_assert_int_eq(memcmp(stored, og->header + 22, 4), 0);
}

/* Checks that `path` is one whole, valid Ogg/Opus stream: every byte in a page with a good
 * CRC, OpusHead then OpusTags on their own pages, granules rising, no page longer than
 * max_ms of audio, EOS on the last page only, every packet decodable by libopus. */
static struct stream_facts check_file(const char *path, int channels, int max_ms)
{
    size_t len;
    unsigned char *buf = slurp(path, &len);
    struct stream_facts f = {.size = len, .last_granule = -1};
    ogg_sync_state oy;
    ogg_sync_init(&oy);
    memcpy(ogg_sync_buffer(&oy, (long)len), buf, len);
    ogg_sync_wrote(&oy, (long)len);
    ogg_stream_state os;
    int err;
    OpusDecoder *dec = opus_decoder_create(48000, channels, &err);
    ck_assert_int_eq(err, OPUS_OK);
    ogg_page og;
    int r;
    bool is_eos = false;
    uint64_t off = 0;
    int64_t prev = 0;
    static float pcm[5760 * 2];
    while ((r = ogg_sync_pageout(&oy, &og)) != 0) {
        ck_assert_msg(r > 0, "%s: a hole or a bad CRC at page %d", path, f.pages);
        ck_assert_msg(!is_eos, "%s: a page after EOS", path);
        assert_crc(&og);
        if (f.pages == 0) ogg_stream_init(&os, ogg_page_serialno(&og));
        ck_assert_int_eq(!!ogg_page_bos(&og), f.pages == 0);
        ck_assert_int_eq(ogg_stream_pagein(&os, &og), 0);
        is_eos = ogg_page_eos(&og);
        f.last_page_off = off;
        off += (uint64_t)(og.header_len + og.body_len);
        int64_t g = ogg_page_granulepos(&og);
        if (f.pages < 2) {
            ck_assert_int_eq(g, 0);
            ck_assert_int_eq(ogg_page_packets(&og), 1);
        } else {
            ck_assert_int_gt(g, prev);
            int ms = (int)((g - (prev ? prev : PRE_SKIP)) / 48);
            if (ms > f.max_page_ms) f.max_page_ms = ms;
            ck_assert_int_le(ms, max_ms);
            prev = g;
            f.last_granule = g;
        }
        ogg_packet op;
        while (ogg_stream_packetout(&os, &op) == 1) {
            if (f.packets == 0) ck_assert_int_eq(memcmp(op.packet, "OpusHead", 8), 0);
            if (f.packets == 1) ck_assert_int_eq(memcmp(op.packet, "OpusTags", 8), 0);
            if (f.packets >= 2) {
                int n = opus_decode_float(dec, op.packet, (opus_int32)op.bytes, pcm, 5760, 0);
                ck_assert_int_gt(n, 0);
            }
            f.packets++;
        }
        f.pages++;
    }
    ck_assert_msg(is_eos, "%s: the last page has no EOS", path);
    ck_assert_uint_eq(off, len); /* nothing after the last page */
    ck_assert_int_ge(f.pages, 3);
    ogg_stream_clear(&os);
    ogg_sync_clear(&oy);
    opus_decoder_destroy(dec);
    free(buf);
    return f;
}

static cJSON *manifest_read(const char *id)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/manifest.json", dir, id);
    size_t len;
    unsigned char *text = slurp(path, &len);
    cJSON *root = cJSON_Parse((char *)text);
    free(text);
    ck_assert_ptr_nonnull(root);
    snprintf(path, sizeof(path), "%s/%s/manifest.json.tmp", dir, id);
    ck_assert_int_ne(access(path, F_OK), 0); /* replaced by rename: no temp file left */
    return root;
}

static cJSON *manifest_seg(cJSON *root, int i)
{
    cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "segments"), i);
    ck_assert_ptr_nonnull(s);
    return s;
}

static double num(cJSON *o, const char *key)
{
    cJSON *v = cJSON_GetObjectItem(o, key);
    ck_assert_msg(cJSON_IsNumber(v), "no number %s", key);
    return v->valuedouble;
}

static const char *str(cJSON *o, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
    ck_assert_ptr_nonnull(s);
    return s;
}

/* Records `ms` of 20 ms packets into space `id` and closes it cleanly. */
static void record_clean(struct recorder *r, const char *id, int ms)
{
    struct enc en;
    enc_open(&en, 1);
    struct recording *h = recording_open(r, id, 1);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(feed(h, &en, ms / 20, 960), ms / 20);
    recording_close(h);
    opus_encoder_destroy(en.e);
    wait_last_state(r, id, SEGMENT_CLOSED);
}

/* ---- Tests ---- */

START_TEST(test_record_valid)
{
    struct recorder_config cfg = {.page_ms = 100};
    struct recorder *r = recorder_start(dir, &cfg);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(recording_open(r, "bad/id", 1));
    ck_assert_ptr_null(recording_open(r, "..", 1));
    struct enc en;
    enc_open(&en, 2);
    struct recording *h = recording_open(r, "space1", 2);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_null(recording_open(r, "space1", 2)); /* already open */
    ck_assert_int_eq(feed(h, &en, 150, 960), 150);      /* 3 s */
    recording_close(h);
    wait_last_state(r, "space1", SEGMENT_CLOSED);

    struct recording_info in = info_of(r, "space1");
    ck_assert(in.exists && !in.is_open && !in.is_failing);
    ck_assert_uint_eq(in.segments, 1);
    ck_assert_uint_eq(in.duration_ms, 3000);
    ck_assert_uint_eq(in.gap_ms, 0);
    struct segment_ref ref;
    ck_assert_int_eq(recorder_get_segments(r, "space1", &ref, 1), 1);
    struct stream_facts f = check_file(ref.path, 2, 100);
    ck_assert_int_eq(f.last_granule - PRE_SKIP, 150 * 960);
    ck_assert_int_eq(f.packets, 2 + 150);
    ck_assert_int_eq(f.max_page_ms, 100);
    ck_assert_uint_eq(ref.bytes, f.size);
    ck_assert_uint_eq(in.bytes, f.size);

    cJSON *m = manifest_read("space1");
    ck_assert_str_eq(str(m, "space"), "space1");
    cJSON *s = manifest_seg(m, 0);
    ck_assert_str_eq(str(s, "state"), "closed");
    ck_assert_str_eq(str(s, "file"), "seg-000001.opus");
    ck_assert_int_eq((int)num(s, "duration_ms"), 3000);
    ck_assert_int_eq((int)num(s, "bytes"), (int)f.size);
    ck_assert_int_eq((int)num(s, "start_ms"), 0);
    ck_assert(num(s, "started_at") > 1.6e12);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(m, "gaps")), 0);
    cJSON_Delete(m);

    /* A second session of the same space: a new segment, after the first in recording time. */
    record_clean(r, "space1", 1000);
    ck_assert_int_eq(recorder_get_segments(r, "space1", &ref, 1), 1);
    m = manifest_read("space1");
    ck_assert_int_eq((int)num(manifest_seg(m, 1), "start_ms"), 3000);
    ck_assert_str_eq(str(manifest_seg(m, 1), "file"), "seg-000002.opus");
    cJSON_Delete(m);
    ck_assert_int_eq(recorder_get_segments(r, "nope", &ref, 1), -ENOENT);
    recorder_stop(r);
    opus_encoder_destroy(en.e);
}
END_TEST

/* 60 ms packets and 200 ms pages: no page ever holds more than 200 ms. */
START_TEST(test_page_limit)
{
    struct recorder_config cfg = {.page_ms = 200};
    struct recorder *r = recorder_start(dir, &cfg);
    struct enc en;
    enc_open(&en, 1);
    struct recording *h = recording_open(r, "long", 1);
    ck_assert_int_eq(feed(h, &en, 50, 2880), 50);
    recording_close(h);
    wait_last_state(r, "long", SEGMENT_CLOSED);
    struct segment_ref ref;
    ck_assert_int_eq(recorder_get_segments(r, "long", &ref, 1), 1);
    struct stream_facts f = check_file(ref.path, 1, 200);
    ck_assert_int_eq(f.max_page_ms, 180);
    ck_assert_int_eq(f.last_granule - PRE_SKIP, 50 * 2880);
    recorder_stop(r);
    opus_encoder_destroy(en.e);
}
END_TEST

/* Sets segment i's state in the manifest to `state` (what a crash would have left). */
static void manifest_set_state(const char *id, int i, const char *state)
{
    cJSON *m = manifest_read(id);
    cJSON_ReplaceItemInObject(manifest_seg(m, i), "state", cJSON_CreateString(state));
    char *text = cJSON_Print(m);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/manifest.json", dir, id);
    spit(path, text, strlen(text), "wb");
    free(text);
    cJSON_Delete(m);
}

START_TEST(test_recover_torn_tail)
{
    struct recorder *r = recorder_start(dir, NULL);
    record_clean(r, "torn", 2000);
    struct segment_ref ref;
    ck_assert_int_eq(recorder_get_segments(r, "torn", &ref, 1), 1);
    recorder_stop(r);

    /* Cut the last (EOS) page off, then append half of it and garbage: a torn write. */
    struct stream_facts f = check_file(ref.path, 1, 200);
    size_t len;
    unsigned char *buf = slurp(ref.path, &len);
    ck_assert_int_eq(truncate(ref.path, (off_t)f.last_page_off), 0);
    size_t half = (len - f.last_page_off) / 2;
    spit(ref.path, buf + f.last_page_off, half, "ab");
    spit(ref.path, "garbage!OggSjunk", 16, "ab");
    free(buf);
    manifest_set_state("torn", 0, "open");

    r = recorder_start(dir, NULL);
    ck_assert_ptr_nonnull(r);
    struct segment_ref after;
    ck_assert_int_eq(recorder_get_segments(r, "torn", &after, 1), 1);
    ck_assert_int_eq(after.state, SEGMENT_RECOVERED);
    ck_assert_uint_eq(after.bytes, f.last_page_off);
    struct stream_facts g = check_file(after.path, 1, 200); /* EOS, CRC, whole pages */
    ck_assert_uint_eq(g.size, f.last_page_off);
    ck_assert_int_eq(g.pages, f.pages - 1);
    struct recording_info in = info_of(r, "torn");
    ck_assert_uint_eq(in.duration_ms, (uint64_t)(g.last_granule - PRE_SKIP) / 48);
    ck_assert_uint_lt(in.duration_ms, 2000);
    ck_assert_uint_ge(in.duration_ms, 1800);
    cJSON *m = manifest_read("torn");
    ck_assert_str_eq(str(manifest_seg(m, 0), "state"), "recovered");
    ck_assert_int_eq((int)num(manifest_seg(m, 0), "bytes"), (int)g.size);
    cJSON_Delete(m);

    /* A later session continues in a new segment after the recovered one. */
    record_clean(r, "torn", 400);
    ck_assert_uint_eq(info_of(r, "torn").segments, 2);
    recorder_stop(r);
}
END_TEST

/* A missing or corrupt manifest is rebuilt from the segment files. */
START_TEST(test_manifest_rebuild)
{
    struct recorder *r = recorder_start(dir, NULL);
    record_clean(r, "rebuilt", 1000);
    recorder_stop(r);
    char path[512];
    snprintf(path, sizeof(path), "%s/rebuilt/manifest.json", dir);
    spit(path, "{\"segments\": [", 14, "wb");
    snprintf(path, sizeof(path), "%s/not a space", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);

    r = recorder_start(dir, NULL);
    struct recording_info in = info_of(r, "rebuilt");
    ck_assert(in.exists);
    ck_assert_uint_eq(in.segments, 1);
    ck_assert_uint_eq(in.duration_ms, 1000);
    ck_assert(!info_of(r, "not a space").exists);
    cJSON *m = manifest_read("rebuilt");
    ck_assert_str_eq(str(manifest_seg(m, 0), "state"), "closed");
    cJSON_Delete(m);
    recorder_stop(r);
}
END_TEST

/* A child records and dies abruptly (no close, no stop); recovery keeps all but the tail. */
START_TEST(test_crash_recovery)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct recorder *r = recorder_start(dir, NULL);
        struct enc en;
        enc_open(&en, 1);
        struct recording *h = recording_open(r, "crash", 1);
        if (!r || !h || feed(h, &en, 150, 960) != 150) _exit(2);
        uint64_t deadline = clock_ms() + 5000;
        while (info_of(r, "crash").duration_ms < 3000 - 100 - 20 && clock_ms() < deadline)
            nap_ms(1);
        _exit(info_of(r, "crash").duration_ms >= 2880 ? 0 : 3); /* mid-stream, no close */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    struct recorder *r = recorder_start(dir, NULL);
    struct segment_ref ref;
    ck_assert_int_eq(recorder_get_segments(r, "crash", &ref, 1), 1);
    ck_assert_int_eq(ref.state, SEGMENT_RECOVERED);
    struct stream_facts f = check_file(ref.path, 1, 100);
    ck_assert_int_ge(f.last_granule - PRE_SKIP, (3000 - 120) * 48);
    ck_assert_uint_ge(info_of(r, "crash").duration_ms, 2880);
    ck_assert(!info_of(r, "crash").is_open);
    recorder_stop(r);
}
END_TEST

static bool is_failing(struct recorder *r, const char *id)
{
    return info_of(r, id).is_failing;
}

/* Feeds 20 ms packets (1 ms apart) until failing == want or the deadline; returns packets fed. */
static int feed_until(struct recorder *r, struct recording *h, struct enc *en, bool want,
                      uint64_t within_ms)
{
    uint64_t deadline = clock_ms() + within_ms;
    int n = 0;
    while (is_failing(r, "disk") != want) {
        ck_assert_msg(clock_ms() < deadline, "failing never became %d", want);
        feed(h, en, 1, 960);
        n++;
        nap_ms(1);
    }
    return n;
}

START_TEST(test_disk_full)
{
    struct recorder_config cfg = {.retry_ms = 100, .sync_ms = 100};
    struct recorder *r = recorder_start(dir, &cfg);
    struct enc en;
    enc_open(&en, 1);
    struct recording *h = recording_open(r, "disk", 1);
    int fed = feed(h, &en, 50, 960);
    uint64_t deadline = clock_ms() + 5000;
    while (info_of(r, "disk").duration_ms < 900) { /* some audio is on disk first */
        ck_assert(clock_ms() < deadline);
        nap_ms(1);
    }
    recorder_inject_fault(r, ENOSPC, 0);
    fed += feed_until(r, h, &en, true, 1000); /* the alarm, within 1 s */
    ck_assert_uint_eq(recorder_failing(r), 1);
    struct recording_info in = info_of(r, "disk");
    ck_assert_int_eq(in.last_error, ENOSPC);
    uint64_t written = in.duration_ms;
    fed += feed(h, &en, 50, 960); /* dropped */
    nap_ms(150);                  /* a retry passes while the disk is still full */
    ck_assert(is_failing(r, "disk"));
    ck_assert_uint_eq(info_of(r, "disk").duration_ms, written);
    recorder_inject_fault(r, 0, 0);
    fed += feed_until(r, h, &en, false, 2000);
    ck_assert_uint_eq(recorder_failing(r), 0);
    fed += feed(h, &en, 50, 960);
    recording_close(h);
    wait_last_state(r, "disk", SEGMENT_CLOSED);

    in = info_of(r, "disk");
    ck_assert_uint_eq(in.segments, 2);
    struct segment_ref refs[2];
    ck_assert_int_eq(recorder_get_segments(r, "disk", refs, 2), 2);
    ck_assert_int_eq(refs[0].state, SEGMENT_FAILED);
    struct stream_facts f0 = check_file(refs[0].path, 1, 100);
    struct stream_facts f1 = check_file(refs[1].path, 1, 100);
    ck_assert_uint_eq(refs[0].bytes, f0.size);
    ck_assert_uint_eq(refs[1].bytes, f1.size);

    cJSON *m = manifest_read("disk");
    ck_assert_str_eq(str(manifest_seg(m, 0), "state"), "failed");
    ck_assert_str_eq(str(manifest_seg(m, 1), "state"), "closed");
    cJSON *gaps = cJSON_GetObjectItem(m, "gaps");
    ck_assert_int_eq(cJSON_GetArraySize(gaps), 1);
    cJSON *g = cJSON_GetArrayItem(gaps, 0);
    ck_assert_str_eq(str(g, "reason"), "disk full");
    double d0 = num(manifest_seg(m, 0), "duration_ms"), gap = num(g, "duration_ms");
    ck_assert_int_eq((int)num(g, "at_ms"), (int)d0);
    ck_assert(gap >= 1000 && gap <= fed * 20);
    ck_assert_int_eq((int)num(manifest_seg(m, 1), "start_ms"), (int)(d0 + gap));
    /* Written + lost = fed, to the ms. */
    ck_assert_int_eq((int)(d0 + gap + num(manifest_seg(m, 1), "duration_ms")), fed * 20);
    ck_assert_uint_eq(in.gap_ms, (uint64_t)gap);
    cJSON_Delete(m);
    recorder_stop(r);
    opus_encoder_destroy(en.e);
}
END_TEST

/* The disk is full from the first byte: recording_open still works, the recording fails at
 * once, and a later retry starts the first segment. */
START_TEST(test_disk_full_at_open)
{
    struct recorder_config cfg = {.retry_ms = 50};
    struct recorder *r = recorder_start(dir, &cfg);
    recorder_inject_fault(r, ENOSPC, 0);
    struct enc en;
    enc_open(&en, 1);
    struct recording *h = recording_open(r, "disk", 1);
    ck_assert_ptr_nonnull(h);
    feed_until(r, h, &en, true, 1000);
    recorder_inject_fault(r, 0, 0);
    feed_until(r, h, &en, false, 2000);
    feed(h, &en, 20, 960);
    recording_close(h);
    wait_last_state(r, "disk", SEGMENT_CLOSED);
    struct segment_ref ref;
    ck_assert_int_eq(recorder_get_segments(r, "disk", &ref, 1), 1);
    check_file(ref.path, 1, 100);
    ck_assert_uint_gt(info_of(r, "disk").gap_ms, 0);
    recorder_stop(r);
    opus_encoder_destroy(en.e);
}
END_TEST

START_TEST(test_fsync_suspect)
{
    struct recorder_config cfg = {.sync_ms = 20};
    struct recorder *r = recorder_start(dir, &cfg);
    recorder_inject_fault(r, 0, EIO);
    struct enc en;
    enc_open(&en, 1);
    struct recording *h = recording_open(r, "sync", 1);
    uint64_t deadline = clock_ms() + 2000;
    while (info_of(r, "sync").suspect == 0) {
        ck_assert(clock_ms() < deadline);
        feed(h, &en, 1, 960);
        nap_ms(1);
    }
    ck_assert(!info_of(r, "sync").is_failing); /* suspect, not failing: audio still written */
    feed(h, &en, 20, 960);
    recording_close(h);
    wait_last_state(r, "sync", SEGMENT_SUSPECT);
    ck_assert(!info_of(r, "sync").is_open);
    struct segment_ref ref;
    ck_assert_int_eq(recorder_get_segments(r, "sync", &ref, 1), 1);
    check_file(ref.path, 1, 100);
    cJSON *m = manifest_read("sync");
    ck_assert_str_eq(str(manifest_seg(m, 0), "state"), "suspect");
    cJSON_Delete(m);
    recorder_stop(r);
    opus_encoder_destroy(en.e);
}
END_TEST

START_TEST(test_queue_full)
{
    struct recorder_config cfg = {.queue_bytes = 2000};
    struct recorder *r = recorder_start(dir, &cfg);
    struct enc en;
    enc_open(&en, 1);
    uint8_t pkt[50][MAX_PKT];
    int len[50];
    for (int i = 0; i < 50; i++)
        len[i] = enc_packet(&en, 960, pkt[i]);
    struct recording *h = recording_open(r, "queue", 1);
    int dropped = 0;
    uint64_t t0 = clock_us();
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < 50; i++) {
            int rc = recording_packet(h, pkt[i], (size_t)len[i], 960);
            ck_assert(rc == 0 || rc == -ENOBUFS);
            dropped += rc == -ENOBUFS;
        }
    ck_assert_uint_lt(clock_us() - t0, 200000); /* 200 packets, nothing waited for the disk */
    ck_assert_int_gt(dropped, 0);
    ck_assert_uint_eq(info_of(r, "queue").gap_ms, (uint64_t)dropped * 20);
    recording_close(h);
    wait_last_state(r, "queue", SEGMENT_CLOSED);
    struct recording_info in = info_of(r, "queue");
    ck_assert_uint_eq(in.duration_ms + in.gap_ms, 200 * 20);
    cJSON *m = manifest_read("queue");
    cJSON *g;
    int sum = 0;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(m, "gaps"))
    {
        ck_assert_str_eq(str(g, "reason"), "queue full");
        sum += (int)num(g, "duration_ms");
    }
    ck_assert_int_eq(sum, dropped * 20);
    cJSON_Delete(m);
    struct segment_ref ref;
    ck_assert_int_eq(recorder_get_segments(r, "queue", &ref, 1), 1);
    check_file(ref.path, 1, 100);
    recorder_stop(r);
    opus_encoder_destroy(en.e);
}
END_TEST

START_TEST(test_prune)
{
    struct recorder *r = recorder_start(dir, NULL);
    record_clean(r, "old", 200);
    struct enc en;
    enc_open(&en, 1);
    struct recording *h = recording_open(r, "live", 1);
    feed(h, &en, 10, 960);
    ck_assert_int_eq(recorder_prune(r, 3600), 0); /* nothing is an hour old */
    /* A negative age puts the cutoff in the future: every closed recording is old. */
    ck_assert_int_eq(recorder_prune(r, -60), 1);
    ck_assert(!info_of(r, "old").exists);
    ck_assert(info_of(r, "live").exists); /* open: kept */
    char path[512];
    snprintf(path, sizeof(path), "%s/old", dir);
    uint64_t deadline = clock_ms() + 5000;
    while (access(path, F_OK) == 0) {
        ck_assert(clock_ms() < deadline);
        nap_ms(1);
    }
    /* The same id starts afresh. */
    record_clean(r, "old", 200);
    ck_assert_uint_eq(info_of(r, "old").segments, 1);
    recording_close(h);
    recorder_stop(r);
    opus_encoder_destroy(en.e);
}
END_TEST

/* recorder_stop closes what is still open: the file ends with EOS, state closed. */
START_TEST(test_stop_closes)
{
    struct recorder *r = recorder_start(dir, NULL);
    struct enc en;
    enc_open(&en, 1);
    struct recording *h = recording_open(r, "stop", 1);
    feed(h, &en, 25, 960);
    recorder_stop(r);
    r = recorder_start(dir, NULL);
    struct segment_ref ref;
    ck_assert_int_eq(recorder_get_segments(r, "stop", &ref, 1), 1);
    ck_assert_int_eq(ref.state, SEGMENT_CLOSED);
    struct stream_facts f = check_file(ref.path, 1, 100);
    ck_assert_int_eq(f.last_granule - PRE_SKIP, 25 * 960);
    /* A recording closed before any audio leaves no segment behind. */
    h = recording_open(r, "empty", 1);
    recording_close(h);
    recorder_stop(r);
    r = recorder_start(dir, NULL);
    ck_assert_uint_eq(info_of(r, "empty").segments, 0);
    recorder_stop(r);
    opus_encoder_destroy(en.e);
}
END_TEST

static Suite *recorder_suite(void)
{
    Suite *s = suite_create("recorder");
    TCase *tc = tcase_create("recorder");
    tcase_set_timeout(tc, 20);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_record_valid);
    tcase_add_test(tc, test_page_limit);
    tcase_add_test(tc, test_recover_torn_tail);
    tcase_add_test(tc, test_manifest_rebuild);
    tcase_add_test(tc, test_crash_recovery);
    tcase_add_test(tc, test_disk_full);
    tcase_add_test(tc, test_disk_full_at_open);
    tcase_add_test(tc, test_fsync_suspect);
    tcase_add_test(tc, test_queue_full);
    tcase_add_test(tc, test_prune);
    tcase_add_test(tc, test_stop_closes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(recorder_suite());
}
