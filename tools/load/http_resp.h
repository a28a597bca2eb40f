/* Incremental HTTP response reading for load clients: the head, then the body
 * either as it comes or through chunked transfer coding.
 *
 * Both parsers keep a few bytes of state and no copy of the input, so they can
 * live in every connection of a 100,000-listener run and accept input split at
 * any byte. They are pure: no allocation, no I/O.
 *
 * http_head_parse() reads "HTTP/1.x NNN ..." (or "ICY NNN ...") and header lines
 * up to the empty line. It returns the bytes consumed when the head completes
 * (then `status`, `is_chunked` and `retry_after` are set), -2 when it consumed
 * everything and needs more, -1 when the head is malformed or longer than
 * HTTP_HEAD_MAX. `retry_after` is a Retry-After given in seconds (digits,
 * optionally surrounded by blanks; at most HTTP_RETRY_AFTER_MAX), or
 * HTTP_RETRY_AFTER_NONE when the header is absent or not in seconds (an
 * HTTP-date is not read).
 *
 * http_chunked_decode() removes chunked framing in place: it moves the payload
 * bytes of `buf` to its front and returns their count, or -1 on malformed
 * framing. After the last (zero-size) chunk, `is_done` is set and the rest of
 * the input is ignored.
 */
#ifndef TRIBUNE_TOOLS_LOAD_HTTP_RESP_H
#define TRIBUNE_TOOLS_LOAD_HTTP_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_HEAD_MAX 16384
#define HTTP_RETRY_AFTER_NONE 0xffff
#define HTTP_RETRY_AFTER_MAX 0xfffe

struct http_head {
    uint16_t status;      /* 0 until the status line is read */
    uint16_t len;         /* head bytes consumed */
    uint16_t retry_after; /* seconds, or HTTP_RETRY_AFTER_NONE */
    uint8_t stage;        /* private */
    uint8_t line_len;     /* private: bytes on the current line, saturating */
    uint8_t name_idx;     /* private: match index into "transfer-encoding:" */
    uint8_t value_idx;    /* private: match index into "chunked" */
    uint8_t ra_idx;       /* private: match index into "retry-after:", then value stage */
    bool is_chunked;
};

struct http_chunked {
    uint32_t left; /* payload bytes left in the current chunk */
    uint8_t stage; /* private */
    uint8_t digits;
    bool is_done;
};

void http_head_init(struct http_head *h);
ssize_t http_head_parse(struct http_head *h, const uint8_t *buf, size_t len);

void http_chunked_init(struct http_chunked *c);
ssize_t http_chunked_decode(struct http_chunked *c, uint8_t *buf, size_t len);

#endif
