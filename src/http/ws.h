/* WebSocket (RFC 6455) pieces shared by the listen path (GET /spaces/{id}/ws,
 * deliver/) and the browser speak path (GET /spaces/{id}/speak, media/).
 *
 * Frames a client sends are parsed with wslay; this module holds what wslay
 * does not: the opening handshake and the header of the unmasked frames a
 * server writes, so that one WebSocket chunk (pkg/) can be shared by every
 * listener of a space, like the Ogg chunks.
 *
 * Tribune's audio message, one Opus packet per binary message, both ways:
 *
 *   offset  size  field
 *   0       1     type: WS_MSG_AUDIO (1)
 *   1       4     sequence, uint32 big-endian: +1 per packet (a gap = loss)
 *   5       8     timestamp, uint64 big-endian: 48 kHz samples of the program
 *                 (the Ogg granule at the end of this packet) or, from a
 *                 browser speaker, of its encoder
 *   13      n     one Opus packet (20 ms, 48 kHz)
 *
 * The server's first message on the listen path is text, JSON:
 *   {"codec":"opus","sample_rate":48000,"channels":1,"frame_ms":20,"space":"ID"}
 * Pure functions, no allocation; any thread. */
#ifndef TRIBUNE_HTTP_WS_H
#define TRIBUNE_HTTP_WS_H

#include <stddef.h>
#include <stdint.h>

struct conn;

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum { WS_MSG_AUDIO = 1, WS_AUDIO_HDR = 13 };

/* Close codes (RFC 6455 7.4.1) Tribune sends. */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_TRY_AGAIN = 1013,
};

/* "Sec-WebSocket-Accept" for a "Sec-WebSocket-Key": base64(SHA-1(key +
 * GUID)), 28 characters and a NUL into `out`. */
void ws_accept_key(const char *key, size_t len, char out[29]);

/* Checks that `c` is a valid WebSocket opening handshake (GET, Upgrade:
 * websocket, Connection: upgrade, Sec-WebSocket-Version: 13, a key that is
 * base64 of 16 bytes). On success returns 0 and writes the accept value to
 * `accept`; otherwise returns the HTTP status to answer (400 or 426) and
 * points *why at a constant text for the error body. */
int ws_check_handshake(const struct conn *c, char accept[29], const char **why);

/* Writes the complete "101 Switching Protocols" response head for `accept`
 * into `out` (NUL-terminated). Returns its length, or the length needed if
 * `cap` is too small (like snprintf). */
size_t ws_response_head(char *out, size_t cap, const char accept[29]);

/* Writes the header of an unmasked, final server frame of `opcode` carrying
 * `len` payload bytes into `out` (at most 10 bytes). Returns its length. */
size_t ws_frame_header(uint8_t out[10], unsigned opcode, uint64_t len);

/* Writes a close frame (code and reason, reason cut to 123 bytes) into `out`
 * (at least 129 bytes). Returns its length. */
size_t ws_close_frame(uint8_t *out, unsigned code, const char *reason);

/* Writes the 13-byte audio message header (without the frame header). */
void ws_audio_header(uint8_t out[WS_AUDIO_HDR], uint32_t seq, uint64_t timestamp);

/* Parses an audio message's header. Returns the Opus payload's offset
 * (WS_AUDIO_HDR) or -1 if `msg` is not an audio message. */
int ws_audio_parse(const uint8_t *msg, size_t len, uint32_t *seq, uint64_t *timestamp);

#endif
