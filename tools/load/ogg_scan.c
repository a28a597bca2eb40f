/* Incremental Ogg page scanner; see ogg_scan.h for the contract. */
#include "ogg_scan.h"

#include <string.h>

enum ogg_stage { STAGE_CAPTURE, STAGE_HEADER, STAGE_SEGS, STAGE_BODY };

#define OGG_HEADER_LEN 27
#define MAGIC_LEN 8

/* opus_match bits: the body so far matches the start of ... */
enum { MATCH_HEAD = 1, MATCH_TAGS = 2 };

void ogg_scan_init(struct ogg_scan *s)
{
    memset(s, 0, sizeof(*s));
}

/* Lost sync: count the episode once, then hunt for the next "OggS". */
static void lose_sync(struct ogg_scan *s, uint8_t b)
{
    if (!s->is_resyncing) s->resyncs++;
    s->is_resyncing = true;
    s->pkt_len = 0; /* the carried packet's first part may be what was lost */
    s->stage = STAGE_CAPTURE;
    s->pos = b == 'O' ? 1 : 0;
}

static void start_header(struct ogg_scan *s)
{
    s->stage = STAGE_HEADER;
    s->granule = 0;
    s->serial = 0;
    s->seqno = 0;
    s->body_len = 0;
    s->body_seen = 0;
    s->segs_seen = 0;
    s->max_pkt = 0;
    s->opus_match = MATCH_HEAD | MATCH_TAGS;
}

/* One byte of capture pattern or fixed header. */
static void header_byte(struct ogg_scan *s, uint8_t b)
{
    static const char capture[4] = {'O', 'g', 'g', 'S'};

    if (s->stage == STAGE_CAPTURE) {
        if (b != (uint8_t)capture[s->pos]) return lose_sync(s, b);
        if (++s->pos == 4) start_header(s);
        return;
    }
    if (s->pos == 4 && b != 0) return lose_sync(s, b);
    if (s->pos == 5) s->type = b;
    if (s->pos == 5 && !(b & 1)) s->pkt_len = 0; /* not continued: a carried packet was abandoned */
    if (s->pos >= 6 && s->pos < 14) s->granule |= (int64_t)((uint64_t)b << (8 * (s->pos - 6)));
    if (s->pos >= 14 && s->pos < 18) s->serial |= (uint32_t)b << (8 * (s->pos - 14));
    if (s->pos >= 18 && s->pos < 22) s->seqno |= (uint32_t)b << (8 * (s->pos - 18));
    if (s->pos == 26) s->nsegs = b;
    if (++s->pos == OGG_HEADER_LEN) s->stage = s->nsegs > 0 ? STAGE_SEGS : STAGE_BODY;
}

/* One segment table entry: the body grows, and a value below 255 ends a
 * packet (whose earlier part may have come on previous pages). */
static void lacing_value(struct ogg_scan *s, uint8_t b)
{
    s->body_len += b;
    if (s->pkt_len <= UINT32_MAX - 255) s->pkt_len += b; /* saturates: endless continuation */
    if (b < 255) {
        uint16_t n = s->pkt_len > UINT16_MAX ? UINT16_MAX : (uint16_t)s->pkt_len;
        if (n > s->max_pkt) s->max_pkt = n;
        s->pkt_len = 0;
    }
    if (++s->segs_seen == s->nsegs) s->stage = STAGE_BODY;
}

static void finish_page(struct ogg_scan *s, struct ogg_page *page)
{
    bool is_header = s->body_len >= MAGIC_LEN && s->opus_match != 0;

    page->granule = s->granule;
    page->serial = s->serial;
    page->seqno = s->seqno;
    page->body_len = s->body_len;
    page->max_packet = s->max_pkt;
    page->type = s->type;
    page->is_audio = !is_header && s->granule != 0;
    s->stage = STAGE_CAPTURE;
    s->pos = 0;
    s->is_resyncing = false;
}

/* Consumes body bytes in bulk; returns how many. */
static size_t body_bytes(struct ogg_scan *s, const uint8_t *buf, size_t len)
{
    size_t n = s->body_len - s->body_seen;

    if (n > len) n = len;
    for (size_t i = 0; i < n && s->body_seen + i < MAGIC_LEN && s->opus_match != 0; i++) {
        if (buf[i] != (uint8_t) "OpusHead"[s->body_seen + i]) s->opus_match &= ~MATCH_HEAD;
        if (buf[i] != (uint8_t) "OpusTags"[s->body_seen + i]) s->opus_match &= ~MATCH_TAGS;
    }
    s->body_seen += (uint16_t)n;
    return n;
}

size_t ogg_scan_feed(struct ogg_scan *s, const uint8_t *buf, size_t len, struct ogg_page *page,
                     bool *has_page)
{
    size_t i = 0;

    *has_page = false;
    while (i < len || (s->stage == STAGE_BODY && s->body_seen == s->body_len)) {
        if (s->stage == STAGE_BODY) {
            i += body_bytes(s, buf + i, len - i);
            if (s->body_seen < s->body_len) break;
            finish_page(s, page);
            *has_page = true;
            return i;
        }
        if (s->stage == STAGE_SEGS) {
            lacing_value(s, buf[i++]);
            continue;
        }
        header_byte(s, buf[i++]);
    }
    return i;
}
