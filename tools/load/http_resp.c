/* Incremental HTTP response head and chunked body; see http_resp.h. */
#include "http_resp.h"

#include <ctype.h>
#include <string.h>

enum head_stage { HEAD_PROTO, HEAD_CODE, HEAD_REASON, HEAD_FIELDS, HEAD_DONE };
enum chunk_stage { CH_SIZE, CH_EXT, CH_DATA, CH_DATA_END, CH_DONE };

static const char te_name[] = "transfer-encoding:";
static const char te_chunked[] = "chunked";
static const char ra_name[] = "retry-after:";
#define NO_MATCH 0xff
/* ra_idx after the name: blanks before the value, digits, blanks after them */
#define RA_BEFORE (sizeof(ra_name) - 1)
#define RA_DIGITS (RA_BEFORE + 1)
#define RA_AFTER (RA_BEFORE + 2)

void http_head_init(struct http_head *h)
{
    memset(h, 0, sizeof(*h));
    h->retry_after = HTTP_RETRY_AFTER_NONE;
}

/* The status line: a protocol token, a space, three digits, then a space and a
 * reason (or the end of the line). */
static int status_byte(struct http_head *h, uint8_t b)
{
    if (h->stage == HEAD_PROTO) {
        if (b == ' ') return h->line_len >= 3 ? (h->stage = HEAD_CODE, 0) : -1;
        return (b > ' ' && b < 0x7f && h->line_len < 12) ? 0 : -1;
    }
    if (h->stage == HEAD_CODE && h->status >= 100) {
        h->stage = HEAD_REASON;
        return b == ' ' ? 0 : -1;
    }
    if (h->stage == HEAD_CODE) {
        if (!isdigit(b) || (h->status == 0 && b == '0')) return -1;
        h->status = (uint16_t)(h->status * 10 + (b - '0'));
    }
    return 0;
}

/* Retry-After in seconds: the name, then blanks, digits, blanks; anything
 * else (an HTTP-date) and the value is dropped. Digits accumulate in
 * retry_after itself (a player's state has no byte to spare). */
static void retry_after_byte(struct http_head *h, uint8_t b)
{
    bool is_blank = b == ' ' || b == '\t';
    uint32_t v;

    if (h->ra_idx == NO_MATCH) return;
    if (h->ra_idx < RA_BEFORE) {
        h->ra_idx = tolower(b) == ra_name[h->ra_idx] ? h->ra_idx + 1 : NO_MATCH;
        return;
    }
    if (is_blank) {
        if (h->ra_idx == RA_DIGITS) h->ra_idx = RA_AFTER;
        return;
    }
    if (!isdigit(b) || h->ra_idx == RA_AFTER) {
        h->retry_after = HTTP_RETRY_AFTER_NONE;
        h->ra_idx = NO_MATCH;
        return;
    }
    if (h->ra_idx == RA_BEFORE) h->retry_after = 0;
    h->ra_idx = RA_DIGITS;
    v = h->retry_after * 10u + (uint32_t)(b - '0');
    h->retry_after = v > HTTP_RETRY_AFTER_MAX ? HTTP_RETRY_AFTER_MAX : (uint16_t)v;
}

/* Header fields: Transfer-Encoding and Retry-After, matched as bytes go by. */
static void field_byte(struct http_head *h, uint8_t b)
{
    retry_after_byte(h, b);
    if (h->name_idx == NO_MATCH) return;
    if (h->name_idx < sizeof(te_name) - 1) {
        h->name_idx = tolower(b) == te_name[h->name_idx] ? h->name_idx + 1 : NO_MATCH;
        return;
    }
    if (tolower(b) == te_chunked[h->value_idx]) {
        if (++h->value_idx == sizeof(te_chunked) - 1) h->is_chunked = true;
    } else {
        h->value_idx = tolower(b) == te_chunked[0] ? 1 : 0;
    }
}

/* End of a line: an empty one ends the head. Returns 1 at the end. */
static int line_end(struct http_head *h)
{
    int is_empty = h->line_len == 0;

    if (h->stage < HEAD_CODE || (h->stage == HEAD_CODE && h->status < 100)) return -1;
    if (h->stage == HEAD_FIELDS && is_empty) {
        h->stage = HEAD_DONE;
        return 1;
    }
    h->stage = HEAD_FIELDS;
    h->line_len = 0;
    h->name_idx = 0;
    h->value_idx = 0;
    h->ra_idx = 0;
    return 0;
}

ssize_t http_head_parse(struct http_head *h, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t b = buf[i];
        int rc = 0;

        if (++h->len > HTTP_HEAD_MAX) return -1;
        if (b == '\n') {
            rc = line_end(h);
            if (rc == 1) return (ssize_t)i + 1;
        } else if (b == '\r') {
            continue;
        } else if (h->stage < HEAD_FIELDS) {
            rc = status_byte(h, b);
        } else {
            field_byte(h, b);
        }
        if (rc < 0) return -1;
        if (b != '\n' && h->line_len < 0xff) h->line_len++;
    }
    return -2;
}

void http_chunked_init(struct http_chunked *c)
{
    memset(c, 0, sizeof(*c));
}

static int hex_value(uint8_t b)
{
    if (b >= '0' && b <= '9') return b - '0';
    b = (uint8_t)tolower(b);
    return (b >= 'a' && b <= 'f') ? b - 'a' + 10 : -1;
}

/* One framing byte (size line or the CRLF after a chunk). */
static int framing_byte(struct http_chunked *c, uint8_t b)
{
    int v;

    switch (c->stage) {
    case CH_SIZE:
        v = hex_value(b);
        if (v >= 0 && c->digits < 7) {
            c->left = c->left * 16 + (uint32_t)v;
            c->digits++;
            return 0;
        }
        if (c->digits == 0 || (v >= 0)) return -1;
        c->stage = CH_EXT;
        /* fall through */
    case CH_EXT:
        if (b != '\n') return 0;
        c->stage = c->left > 0 ? CH_DATA : CH_DONE;
        c->is_done = c->left == 0;
        return 0;
    case CH_DATA_END:
        if (b == '\r') return 0;
        if (b != '\n') return -1;
        c->stage = CH_SIZE;
        c->digits = 0;
        return 0;
    default:
        return 0;
    }
}

ssize_t http_chunked_decode(struct http_chunked *c, uint8_t *buf, size_t len)
{
    size_t in = 0, out = 0;

    while (in < len && c->stage != CH_DONE) {
        if (c->stage == CH_DATA) {
            size_t n = len - in < c->left ? len - in : c->left;
            memmove(buf + out, buf + in, n);
            in += n;
            out += n;
            c->left -= (uint32_t)n;
            if (c->left == 0) c->stage = CH_DATA_END;
            continue;
        }
        if (framing_byte(c, buf[in++]) < 0) return -1;
    }
    return (ssize_t)out;
}
