/* Unit tests for tools/load/ogg_scan.c, the load tool's Ogg page finder: page
 * fields, header pages told from audio, and the packet lengths read from the
 * segment table (--loud-bytes): single packets, a packet of 255 bytes and
 * longer ones (lacing values of 255), a packet continued across pages, a
 * continuation abandoned, and pages cut at every byte boundary. */
#include "load/ogg_scan.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../harness.h"

#define PAGE_MAX (27 + 255 + 255 * 255)

struct built {
    uint8_t bytes[PAGE_MAX];
    size_t len;
};

/* A page of `type` whose segment table is `lacing` (n values) and whose body
 * is that many bytes of 'x' (or `body` when not NULL). The CRC is left 0: the
 * scanner does not check it. */
static void page_build(struct built *b, uint8_t type, int64_t granule, uint32_t seqno,
                       const uint8_t *lacing, size_t n, const char *body)
{
    size_t body_len = 0;
    uint8_t *p = b->bytes;

    for (size_t i = 0; i < n; i++)
        body_len += lacing[i];
    memcpy(p, "OggS", 4);
    p[4] = 0;
    p[5] = type;
    for (int i = 0; i < 8; i++)
        p[6 + i] = (uint8_t)((uint64_t)granule >> (8 * i));
    for (int i = 0; i < 4; i++)
        p[14 + i] = (uint8_t)(0x1234u >> (8 * i)), p[18 + i] = (uint8_t)(seqno >> (8 * i));
    memset(p + 22, 0, 4);
    p[26] = (uint8_t)n;
    memcpy(p + 27, lacing, n);
    memset(p + 27 + n, 'x', body_len);
    if (body != NULL) memcpy(p + 27 + n, body, strlen(body) < body_len ? strlen(body) : body_len);
    b->len = 27 + n + body_len;
}

/* Feeds `b` in one call; asserts exactly one page came out of it. */
static struct ogg_page feed_one(struct ogg_scan *s, const struct built *b)
{
    struct ogg_page page;
    bool has_page;
    size_t n = ogg_scan_feed(s, b->bytes, b->len, &page, &has_page);

    ck_assert(has_page);
    ck_assert_uint_eq(n, b->len);
    return page;
}

static struct built page_a, page_b;

START_TEST(single_packets_longest_wins)
{
    static const uint8_t lacing[] = {3, 120, 7, 0, 254};
    struct ogg_scan s;
    struct ogg_page p;

    ogg_scan_init(&s);
    page_build(&page_a, 0, 48000, 5, lacing, sizeof(lacing), NULL);
    p = feed_one(&s, &page_a);
    ck_assert_uint_eq(p.max_packet, 254);
    ck_assert_uint_eq(p.body_len, 3 + 120 + 7 + 254);
    ck_assert_int_eq(p.granule, 48000);
    ck_assert_uint_eq(p.seqno, 5);
    ck_assert_uint_eq(p.serial, 0x1234);
    ck_assert(p.is_audio);

    /* silence: a few bytes per 20 ms packet */
    static const uint8_t quiet[] = {3, 3, 3, 3, 3};
    page_build(&page_b, 0, 48000 + 4800, 6, quiet, sizeof(quiet), NULL);
    p = feed_one(&s, &page_b);
    ck_assert_uint_eq(p.max_packet, 3);
}
END_TEST

START_TEST(lacing_255_joins_segments)
{
    /* 255, 0: one packet of exactly 255 bytes; 255, 255, 10: one of 520 */
    static const uint8_t exact[] = {255, 0, 4};
    static const uint8_t long_pkt[] = {255, 255, 10, 2};
    struct ogg_scan s;

    ogg_scan_init(&s);
    page_build(&page_a, 0, 960, 2, exact, sizeof(exact), NULL);
    ck_assert_uint_eq(feed_one(&s, &page_a).max_packet, 255);
    page_build(&page_b, 0, 1920, 3, long_pkt, sizeof(long_pkt), NULL);
    ck_assert_uint_eq(feed_one(&s, &page_b).max_packet, 520);
}
END_TEST

START_TEST(continued_packet_counts_whole_where_it_ends)
{
    /* page 1: a 5-byte packet, then 510 bytes of a packet that goes on;
     * page 2 (continued): its last 40 bytes, then a 6-byte packet */
    static const uint8_t first[] = {5, 255, 255};
    static const uint8_t second[] = {40, 6};
    struct ogg_scan s;
    struct ogg_page p;

    ogg_scan_init(&s);
    page_build(&page_a, 0, 960, 2, first, sizeof(first), NULL);
    p = feed_one(&s, &page_a);
    ck_assert_uint_eq(p.max_packet, 5); /* the long one does not end here */
    ck_assert_int_eq(p.granule, 960);
    page_build(&page_b, 1, 1920, 3, second, sizeof(second), NULL);
    p = feed_one(&s, &page_b);
    ck_assert_uint_eq(p.max_packet, 550);
    ck_assert_uint_eq(p.type & 1, 1);
}
END_TEST

START_TEST(continuation_abandoned_or_lost_is_not_carried)
{
    static const uint8_t open_end[] = {255, 255};
    static const uint8_t small[] = {9};
    struct ogg_scan s;

    /* the next page is not flagged continued: the unfinished packet is dropped */
    ogg_scan_init(&s);
    page_build(&page_a, 0, -1, 2, open_end, sizeof(open_end), NULL);
    ck_assert_uint_eq(feed_one(&s, &page_a).max_packet, 0);
    page_build(&page_b, 0, 960, 3, small, sizeof(small), NULL);
    ck_assert_uint_eq(feed_one(&s, &page_b).max_packet, 9);

    /* sync lost in between: the continued page counts only its own part */
    ogg_scan_init(&s);
    ck_assert_uint_eq(feed_one(&s, &page_a).max_packet, 0);
    struct ogg_page p;
    bool has_page;
    ck_assert_uint_eq(ogg_scan_feed(&s, (const uint8_t *)"junk", 4, &p, &has_page), 4);
    ck_assert(!has_page);
    page_build(&page_b, 1, 960, 4, small, sizeof(small), NULL);
    ck_assert_uint_eq(feed_one(&s, &page_b).max_packet, 9);
    ck_assert_uint_eq(s.resyncs, 1);
}
END_TEST

START_TEST(header_pages_are_not_audio)
{
    static const uint8_t head[] = {19};
    static const uint8_t tags[] = {60};
    static const uint8_t almost[] = {30};
    struct ogg_scan s;

    ogg_scan_init(&s);
    page_build(&page_a, 2, 0, 0, head, sizeof(head), "OpusHead");
    ck_assert(!feed_one(&s, &page_a).is_audio);
    page_build(&page_a, 0, 0, 1, tags, sizeof(tags), "OpusTags");
    ck_assert(!feed_one(&s, &page_a).is_audio);
    /* a body that starts like a header and then differs is audio */
    page_build(&page_a, 0, 960, 2, almost, sizeof(almost), "OpusTagz");
    ck_assert(feed_one(&s, &page_a).is_audio);
    page_build(&page_a, 0, 1920, 3, almost, sizeof(almost), "OpusHe");
    ck_assert(feed_one(&s, &page_a).is_audio);
}
END_TEST

START_TEST(pages_cut_anywhere_give_the_same_lengths)
{
    static const uint8_t first[] = {7, 255, 255, 255};
    static const uint8_t second[] = {255, 1, 30};
    uint8_t stream[2 * PAGE_MAX];
    size_t len;

    page_build(&page_a, 0, 960, 2, first, sizeof(first), NULL);
    page_build(&page_b, 1, 1920, 3, second, sizeof(second), NULL);
    memcpy(stream, page_a.bytes, page_a.len);
    memcpy(stream + page_a.len, page_b.bytes, page_b.len);
    len = page_a.len + page_b.len;
    for (size_t cut = 1; cut < len; cut++) {
        struct ogg_scan s;
        uint32_t got[2] = {0, 0};
        size_t pages = 0;
        const uint8_t *parts[2] = {stream, stream + cut};
        size_t lens[2] = {cut, len - cut};

        ogg_scan_init(&s);
        for (int k = 0; k < 2; k++) {
            const uint8_t *b = parts[k];
            size_t n = lens[k];
            while (n > 0) {
                struct ogg_page p;
                bool has_page;
                size_t used = ogg_scan_feed(&s, b, n, &p, &has_page);
                b += used;
                n -= used;
                if (has_page) got[pages++] = p.max_packet;
            }
        }
        ck_assert_uint_eq(pages, 2);
        ck_assert_uint_eq(got[0], 7);
        ck_assert_uint_eq(got[1], 3 * 255 + 255 + 1); /* continued: 1021 */
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ogg_scan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, single_packets_longest_wins);
    tcase_add_test(tc, lacing_255_joins_segments);
    tcase_add_test(tc, continued_packet_counts_whole_where_it_ends);
    tcase_add_test(tc, continuation_abandoned_or_lost_is_not_carried);
    tcase_add_test(tc, header_pages_are_not_audio);
    tcase_add_test(tc, pages_cut_anywhere_give_the_same_lengths);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
