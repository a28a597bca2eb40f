#include "pkg/hls_pkg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pkg/fmp4.h"

/* The largest Opus packet: 48 frames (120 ms) of at most 1275 bytes each,
 * with its framing (RFC 6716, 3.2.5). */
enum { SAMPLES_PER_MS = 48, MAX_PACKET = 48 * 1275 + 100 };

void hls_pkg_init(struct hls_pkg *p, int part_ms, int segment_ms)
{
    memset(p, 0, sizeof(*p));
    if (part_ms <= 0) part_ms = HLS_PART_MS;
    if (segment_ms <= 0) segment_ms = HLS_SEGMENT_MS;
    int parts = (segment_ms + part_ms / 2) / part_ms;
    if (parts < 1) parts = 1;
    if (parts > HLS_MAX_PARTS) parts = HLS_MAX_PARTS;
    p->part_samples = (uint32_t)part_ms * SAMPLES_PER_MS;
    p->segment_samples = p->part_samples * (uint32_t)parts;
    p->frag_seq = 1;
}

void hls_pkg_fini(struct hls_pkg *p)
{
    for (int i = 0; i < HLS_SLOTS; i++) {
        free(p->seg[i].data);
        p->seg[i].data = NULL;
    }
    free(p->pbuf);
    p->pbuf = NULL;
    free(p->playlist);
    p->playlist = NULL;
}

static struct hls_segment *building(struct hls_pkg *p)
{
    return &p->seg[p->next_msn % HLS_SLOTS];
}

/* Empties the slot of segment `msn` (the oldest one's, gone) for building. */
static void segment_begin(struct hls_pkg *p, uint64_t msn)
{
    struct hls_segment *s = &p->seg[msn % HLS_SLOTS];
    s->msn = msn;
    s->start = p->samples;
    s->duration = 0;
    s->pdt_ms = p->start_wall_ms + (int64_t)(p->samples / SAMPLES_PER_MS);
    s->len = 0;
    s->nparts = 0;
    s->is_complete = false;
}

int hls_pkg_start(struct hls_pkg *p, int channels, uint16_t pre_skip, int64_t wall_ms)
{
    if (p->is_started || channels < 1 || channels > 2) return -EINVAL;
    p->init_len = fmp4_init_emit(p->init, sizeof(p->init), channels, pre_skip);
    if (!p->init_len) return -EINVAL;
    snprintf(p->run, sizeof(p->run), "%" PRIx64, (uint64_t)wall_ms);
    p->start_wall_ms = wall_ms;
    p->target_s = (p->segment_samples + FMP4_TIMESCALE - 1) / FMP4_TIMESCALE;
    p->is_started = true;
    segment_begin(p, 0);
    return 0;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    uint8_t *g = realloc(*buf, c);
    if (!g) return -ENOMEM;
    *buf = g;
    *cap = c;
    return 0;
}

/* The packets buffered become one fragment appended to the segment being
 * built. */
static int flush_part(struct hls_pkg *p)
{
    struct hls_segment *s = building(p);
    if (p->npkts == 0) return 0;
    struct fmp4_sample smp[HLS_PART_PACKETS];
    size_t off = 0;
    for (unsigned i = 0; i < p->npkts; i++) {
        smp[i] = (struct fmp4_sample){p->pbuf + off, p->pkt_len[i], p->pkt_dur[i]};
        off += p->pkt_len[i];
    }
    size_t need = fmp4_fragment_size(p->npkts, p->plen);
    int err = grow(&s->data, &s->cap, s->len + need);
    size_t n =
        err ? 0
            : fmp4_fragment_emit(s->data + s->len, need, p->frag_seq, p->samples, smp, p->npkts);
    if (n) {
        s->parts[s->nparts++] = (struct hls_part){(uint32_t)s->len, (uint32_t)n, p->pend_samples};
        s->len += n;
        s->duration += p->pend_samples;
        p->frag_seq++;
    }
    /* the decode timeline advances even when a part is lost, so the next
     * fragment's time stays true to the wall clock */
    p->samples += p->pend_samples;
    p->npkts = 0;
    p->plen = 0;
    p->pend_samples = 0;
    return n ? 0 : -ENOMEM;
}

/* "2026-12-02T06:10:05.123Z" */
static void format_pdt(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/* Rebuilds the playlist text from the complete segments (at most
 * HLS_LISTED of them). Keeps the old text when memory runs out. */
static void render_playlist(struct hls_pkg *p)
{
    uint64_t first = p->next_msn > HLS_LISTED ? p->next_msn - HLS_LISTED : 0;
    size_t cap = 512 + (size_t)HLS_LISTED * 160;
    char *out = malloc(cap);
    if (!out) return;
    int n = snprintf(out, cap,
                     "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%u\n"
                     "#EXT-X-MEDIA-SEQUENCE:%" PRIu64 "\n#EXT-X-INDEPENDENT-SEGMENTS\n"
                     "#EXT-X-MAP:URI=\"init-%s.mp4\"\n",
                     p->target_s, first, p->run);
    for (uint64_t msn = first; msn < p->next_msn && n > 0 && (size_t)n < cap; msn++) {
        const struct hls_segment *s = &p->seg[msn % HLS_SLOTS];
        char pdt[32];
        format_pdt(s->pdt_ms, pdt);
        uint32_t ms = (s->duration + SAMPLES_PER_MS / 2) / SAMPLES_PER_MS;
        n += snprintf(out + n, cap - (size_t)n,
                      "#EXT-X-PROGRAM-DATE-TIME:%s\n#EXTINF:%u.%03u,\nseg-%s-%" PRIu64 ".m4s\n",
                      pdt, ms / 1000, ms % 1000, p->run, msn);
    }
    if (p->is_ended && n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "#EXT-X-ENDLIST\n");
    if (n <= 0 || (size_t)n >= cap) {
        free(out);
        return;
    }
    free(p->playlist);
    p->playlist = out;
    p->playlist_len = (size_t)n;
}

/* The segment being built is complete: listed, served, and a new one begins. */
static void close_segment(struct hls_pkg *p)
{
    struct hls_segment *s = building(p);
    if (s->nparts == 0) return;
    s->is_complete = true;
    unsigned secs = (s->duration + FMP4_TIMESCALE - 1) / FMP4_TIMESCALE;
    if (secs > p->target_s) p->target_s = secs; /* never lowered within a run */
    p->next_msn++;
    segment_begin(p, p->next_msn);
    render_playlist(p);
}

int hls_pkg_packet(struct hls_pkg *p, const uint8_t *data, size_t len, int samples)
{
    if (!p->is_started || p->is_ended || samples <= 0 || len == 0 || len > MAX_PACKET)
        return -EINVAL;
    if (grow(&p->pbuf, &p->pcap, p->plen + len) < 0) return -ENOMEM;
    memcpy(p->pbuf + p->plen, data, len);
    p->plen += len;
    p->pkt_len[p->npkts] = (uint32_t)len;
    p->pkt_dur[p->npkts++] = (uint32_t)samples;
    p->pend_samples += (uint32_t)samples;
    if (p->pend_samples < p->part_samples && p->npkts < HLS_PART_PACKETS) return 0;
    int err = flush_part(p);
    struct hls_segment *s = building(p);
    if (s->duration >= p->segment_samples || s->nparts == HLS_MAX_PARTS) close_segment(p);
    return err;
}

void hls_pkg_end(struct hls_pkg *p)
{
    if (!p->is_started || p->is_ended) return;
    flush_part(p);
    p->is_ended = true;
    close_segment(p);
    render_playlist(p); /* again if close_segment had nothing: the ENDLIST */
}

const struct hls_segment *hls_pkg_segment(const struct hls_pkg *p, uint64_t msn)
{
    if (msn >= p->next_msn || p->next_msn - msn > HLS_KEPT) return NULL;
    const struct hls_segment *s = &p->seg[msn % HLS_SLOTS];
    return s->is_complete && s->msn == msn ? s : NULL;
}

int hls_pkg_segment_name(const struct hls_pkg *p, uint64_t msn, char *out, size_t cap)
{
    return snprintf(out, cap, "seg-%s-%" PRIu64 ".m4s", p->run, msn);
}

/* `name` starts with `prefix` followed by this run's id: the rest, or NULL. */
static const char *after_run(const struct hls_pkg *p, const char *name, size_t len,
                             const char *prefix, size_t *rest)
{
    size_t pl = strlen(prefix), rl = strlen(p->run);
    if (!p->is_started || len < pl + rl || memcmp(name, prefix, pl) != 0 ||
        memcmp(name + pl, p->run, rl) != 0)
        return NULL;
    *rest = len - pl - rl;
    return name + pl + rl;
}

int hls_pkg_parse_name(const struct hls_pkg *p, const char *name, size_t len, uint64_t *msn)
{
    size_t rl;
    const char *r;
    if (p->is_started && len == 8 && memcmp(name, "init.mp4", 8) == 0) return 1;
    if ((r = after_run(p, name, len, "init-", &rl)) && rl == 4 && memcmp(r, ".mp4", 4) == 0)
        return 1;
    if (!(r = after_run(p, name, len, "seg-", &rl)) || rl < 6 || r[0] != '-' ||
        memcmp(r + rl - 4, ".m4s", 4) != 0)
        return 0;
    size_t digits = rl - 5;
    if (digits > 19 || (digits > 1 && r[1] == '0')) return 0;
    uint64_t v = 0;
    for (size_t i = 1; i <= digits; i++) {
        if (r[i] < '0' || r[i] > '9') return 0;
        v = v * 10 + (uint64_t)(r[i] - '0');
    }
    *msn = v;
    return 2;
}
