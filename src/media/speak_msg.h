/* The browser speak path's message check (GET /spaces/{id}/speak): one WebSocket message
 * from a speaker in, a verdict out. Pure: no I/O, no allocation; unit-tested and fuzzed.
 *
 * A speaker sends binary audio messages (http/ws.h: type 1, sequence u32 BE, timestamp
 * u64 BE, one Opus packet of 1..1275 bytes, 2.5..120 ms at 48 kHz, mono or stereo).
 *
 *   verdict          when                                              answer
 *   SPEAK_ACCEPT     the next packet (a forward gap of the sequence:   into the mixer; the gap
 *                    `lost` packets missing, concealed by Opus PLC)    concealed (up to 5)
 *   SPEAK_DROP       a duplicate or late packet (sequence behind)      ignored, counted
 *   >= 1000          a close code, with *why:
 *                    1003 a text message, an unknown message type, a packet that is not Opus
 *                    1002 a binary message shorter than the header, or with no packet
 *                    1009 a packet longer than 1275 bytes
 * Control frames (close, ping, pong) are wslay's; they are not messages here.
 */
#ifndef TRIBUNE_MEDIA_SPEAK_MSG_H
#define TRIBUNE_MEDIA_SPEAK_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    SPEAK_ACCEPT = 1,
    SPEAK_DROP = 0,
    SPEAK_MAX_PACKET = 1275, /* RFC 6716 3.2.1: the largest Opus frame */
    SPEAK_MAX_CONCEAL = 5,   /* lost packets concealed per gap; a longer gap just plays on */
};

/* One speaker's receive state. Counters are read-only for the caller. */
struct speak_rx {
    bool has_seq;      /* private */
    uint32_t next_seq; /* private: the sequence number expected next */
    uint64_t accepted; /* packets accepted */
    uint64_t lost;     /* packets missing from gaps of the sequence */
    uint64_t dropped;  /* duplicates and late packets */
};

struct speak_packet {
    const uint8_t *data; /* borrowed from the message */
    size_t len;
    int samples;   /* at 48 kHz */
    int channels;  /* 1 or 2 */
    unsigned lost; /* packets to conceal before this one (0..SPEAK_MAX_CONCEAL) */
};

void speak_rx_init(struct speak_rx *rx);
/* Checks message `msg` (`is_text`: a text message). Returns SPEAK_ACCEPT with *out filled,
 * SPEAK_DROP, or a WebSocket close code with *why pointing at a constant reason (<= 123
 * bytes). The state moves only on SPEAK_ACCEPT and SPEAK_DROP. */
int speak_rx_check(struct speak_rx *rx, bool is_text, const uint8_t *msg, size_t len,
                   struct speak_packet *out, const char **why);

#endif
