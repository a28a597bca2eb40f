#include "pkg/fmp4.h"

#include <string.h>

/* A bounded big-endian writer. Boxes are opened with box_open (size patched
 * by box_close); a write past `cap` sets `is_full` and writes nothing more, so
 * the emitters check once at the end. */
struct bw {
    uint8_t *p;
    size_t len, cap;
    int is_full;
};

static void put(struct bw *w, const void *src, size_t n)
{
    if (w->is_full || n > w->cap - w->len) {
        w->is_full = 1;
        return;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void u8(struct bw *w, uint8_t v)
{
    put(w, &v, 1);
}

static void u16(struct bw *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 2);
}

static void u32(struct bw *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 4);
}

static void u64(struct bw *w, uint64_t v)
{
    u32(w, (uint32_t)(v >> 32));
    u32(w, (uint32_t)v);
}

static void zeros(struct bw *w, size_t n)
{
    static const uint8_t z[32];
    while (n > 0) {
        size_t k = n < sizeof(z) ? n : sizeof(z);
        put(w, z, k);
        n -= k;
    }
}

/* Opens a box of `type`; returns its offset for box_close. */
static size_t box_open(struct bw *w, const char type[4])
{
    size_t at = w->len;
    u32(w, 0);
    put(w, type, 4);
    return at;
}

/* A "full box": version and 24-bit flags after the type. */
static size_t fullbox_open(struct bw *w, const char type[4], uint8_t version, uint32_t flags)
{
    size_t at = box_open(w, type);
    u32(w, (uint32_t)version << 24 | (flags & 0xffffff));
    return at;
}

static void box_close(struct bw *w, size_t at)
{
    if (w->is_full) return;
    uint32_t size = (uint32_t)(w->len - at);
    w->p[at] = (uint8_t)(size >> 24);
    w->p[at + 1] = (uint8_t)(size >> 16);
    w->p[at + 2] = (uint8_t)(size >> 8);
    w->p[at + 3] = (uint8_t)size;
}

/* The unity matrix of mvhd and tkhd. */
static void matrix(struct bw *w)
{
    static const uint32_t m[9] = {0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000};
    for (int i = 0; i < 9; i++)
        u32(w, m[i]);
}

static void emit_mvhd(struct bw *w)
{
    size_t b = fullbox_open(w, "mvhd", 0, 0);
    u32(w, 0); /* creation time */
    u32(w, 0); /* modification time */
    u32(w, FMP4_TIMESCALE);
    u32(w, 0);          /* duration: unknown (live) */
    u32(w, 0x00010000); /* rate 1.0 */
    u16(w, 0x0100);     /* volume 1.0 */
    zeros(w, 10);       /* reserved */
    matrix(w);
    zeros(w, 24); /* pre_defined */
    u32(w, FMP4_TRACK_ID + 1);
    box_close(w, b);
}

static void emit_tkhd(struct bw *w)
{
    size_t b = fullbox_open(w, "tkhd", 0, 0x3); /* enabled, in movie */
    u32(w, 0);
    u32(w, 0);
    u32(w, FMP4_TRACK_ID);
    u32(w, 0); /* reserved */
    u32(w, 0); /* duration */
    zeros(w, 8);
    u16(w, 0);      /* layer */
    u16(w, 0);      /* alternate group */
    u16(w, 0x0100); /* volume: audio */
    u16(w, 0);
    matrix(w);
    u32(w, 0); /* width */
    u32(w, 0); /* height */
    box_close(w, b);
}

static void emit_mdhd(struct bw *w)
{
    size_t b = fullbox_open(w, "mdhd", 0, 0);
    u32(w, 0);
    u32(w, 0);
    u32(w, FMP4_TIMESCALE);
    u32(w, 0);
    u16(w, 0x55c4); /* language "und", packed ISO-639-2/T */
    u16(w, 0);
    box_close(w, b);
}

static void emit_hdlr(struct bw *w)
{
    static const char name[] = "SoundHandler";
    size_t b = fullbox_open(w, "hdlr", 0, 0);
    u32(w, 0);
    put(w, "soun", 4);
    zeros(w, 12);
    put(w, name, sizeof(name)); /* with its NUL */
    box_close(w, b);
}

/* The Opus sample entry: an AudioSampleEntry whose child dOps is OpusHead's
 * content, big-endian, without the magic (and version 0, not 1). */
static void emit_opus_entry(struct bw *w, int channels, uint16_t pre_skip)
{
    size_t b = box_open(w, "Opus");
    zeros(w, 6);
    u16(w, 1); /* data_reference_index */
    zeros(w, 8);
    u16(w, (uint16_t)channels);
    u16(w, 16); /* samplesize */
    u16(w, 0);
    u16(w, 0);
    u32(w, (uint32_t)FMP4_TIMESCALE << 16);
    size_t d = box_open(w, "dOps");
    u8(w, 0); /* version */
    u8(w, (uint8_t)channels);
    u16(w, pre_skip);
    u32(w, FMP4_TIMESCALE); /* input sample rate */
    u16(w, 0);              /* output gain */
    u8(w, 0);               /* channel mapping family 0: mono or stereo */
    box_close(w, d);
    box_close(w, b);
}

static void emit_stbl(struct bw *w, int channels, uint16_t pre_skip)
{
    size_t stbl = box_open(w, "stbl");
    size_t stsd = fullbox_open(w, "stsd", 0, 0);
    u32(w, 1);
    emit_opus_entry(w, channels, pre_skip);
    box_close(w, stsd);
    /* Empty tables: the samples live in the fragments. */
    static const char *const empty[] = {"stts", "stsc", "stco"};
    for (int i = 0; i < 3; i++) {
        size_t t = fullbox_open(w, empty[i], 0, 0);
        u32(w, 0);
        box_close(w, t);
    }
    size_t stsz = fullbox_open(w, "stsz", 0, 0);
    u32(w, 0); /* sample size: per sample */
    u32(w, 0); /* count */
    box_close(w, stsz);
    box_close(w, stbl);
}

static void emit_minf(struct bw *w, int channels, uint16_t pre_skip)
{
    size_t minf = box_open(w, "minf");
    size_t smhd = fullbox_open(w, "smhd", 0, 0);
    u16(w, 0); /* balance */
    u16(w, 0);
    box_close(w, smhd);
    size_t dinf = box_open(w, "dinf");
    size_t dref = fullbox_open(w, "dref", 0, 0);
    u32(w, 1);
    size_t url = fullbox_open(w, "url ", 0, 1); /* flag 1: media in this file */
    box_close(w, url);
    box_close(w, dref);
    box_close(w, dinf);
    emit_stbl(w, channels, pre_skip);
    box_close(w, minf);
}

size_t fmp4_init_emit(uint8_t *out, size_t cap, int channels, uint16_t pre_skip)
{
    struct bw w = {out, 0, cap, 0};
    size_t ftyp = box_open(&w, "ftyp");
    put(&w, "iso6", 4);
    u32(&w, 0);
    put(&w, "iso6cmfcdashmp41", 16); /* compatible brands */
    box_close(&w, ftyp);

    size_t moov = box_open(&w, "moov");
    emit_mvhd(&w);
    size_t trak = box_open(&w, "trak");
    emit_tkhd(&w);
    size_t mdia = box_open(&w, "mdia");
    emit_mdhd(&w);
    emit_hdlr(&w);
    emit_minf(&w, channels, pre_skip);
    box_close(&w, mdia);
    box_close(&w, trak);
    size_t mvex = box_open(&w, "mvex");
    size_t trex = fullbox_open(&w, "trex", 0, 0);
    u32(&w, FMP4_TRACK_ID);
    u32(&w, 1);   /* sample description index */
    u32(&w, 960); /* default duration: 20 ms */
    u32(&w, 0);   /* default size */
    u32(&w, 0);   /* default flags: sync samples */
    box_close(&w, trex);
    box_close(&w, mvex);
    box_close(&w, moov);
    return w.is_full ? 0 : w.len;
}

/* moof: 8; mfhd: 16; traf: 8; tfhd (track id, flags): 16; tfdt v1: 20;
 * trun header: 20, then per sample duration and size: 8. mdat: 8. */
size_t fmp4_fragment_size(size_t n, size_t payload)
{
    return 8 + 16 + 8 + 16 + 20 + 20 + 8 * n + 8 + payload;
}

size_t fmp4_fragment_emit(uint8_t *out, size_t cap, uint32_t sequence, uint64_t base_time,
                          const struct fmp4_sample *samples, size_t n)
{
    struct bw w = {out, 0, cap, 0};
    size_t moof = box_open(&w, "moof");
    size_t mfhd = fullbox_open(&w, "mfhd", 0, 0);
    u32(&w, sequence);
    box_close(&w, mfhd);
    size_t traf = box_open(&w, "traf");
    size_t tfhd = fullbox_open(&w, "tfhd", 0, 0x020000); /* default-base-is-moof */
    u32(&w, FMP4_TRACK_ID);
    box_close(&w, tfhd);
    size_t tfdt = fullbox_open(&w, "tfdt", 1, 0);
    u64(&w, base_time);
    box_close(&w, tfdt);
    /* trun flags: data offset, sample duration, sample size present */
    size_t trun = fullbox_open(&w, "trun", 0, 0x000001 | 0x000100 | 0x000200);
    u32(&w, (uint32_t)n);
    size_t data_offset_at = w.len;
    u32(&w, 0); /* patched below: from the moof's first byte to the mdat payload */
    size_t payload = 0;
    for (size_t i = 0; i < n; i++) {
        u32(&w, samples[i].duration);
        u32(&w, samples[i].len);
        payload += samples[i].len;
    }
    box_close(&w, trun);
    box_close(&w, traf);
    box_close(&w, moof);
    size_t mdat = box_open(&w, "mdat");
    for (size_t i = 0; i < n; i++)
        put(&w, samples[i].data, samples[i].len);
    box_close(&w, mdat);
    if (w.is_full) return 0;
    uint32_t off = (uint32_t)(mdat + 8 - moof);
    out[data_offset_at] = (uint8_t)(off >> 24);
    out[data_offset_at + 1] = (uint8_t)(off >> 16);
    out[data_offset_at + 2] = (uint8_t)(off >> 8);
    out[data_offset_at + 3] = (uint8_t)off;
    (void)payload;
    return w.len;
}
