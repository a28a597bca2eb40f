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
 * Any thread; only ws_respond_error and ws_send_head do I/O. */
#ifndef TRIBUNE_HTTP_WS_H
#define TRIBUNE_HTTP_WS_H

#include <stdbool.h>
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

/* Answers a refused handshake (ws_check_handshake's status and text) with a
 * JSON error body and Sec-WebSocket-Version: 13; the conn closes after it. */
void ws_respond_error(struct conn *c, int status, const char *why);

/* Sends the 101 head on a fresh socket `fd` (non-blocking; a fresh socket's
 * buffer always takes it). 0, or -EIO when it did not go out whole. */
int ws_send_head(int fd, const char accept[29]);

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

/* ---- reading client frames (the listen path) ----
 *
 * A listener's client has nothing to say but control frames; what it sends is
 * parsed with wslay's frame layer (wslay_frame_recv) and judged here:
 *
 *   close            -> WS_EV_CLOSE: answer a close frame (its code echoed) and drop
 *   ping             -> WS_EV_PING: answer a pong with the same payload
 *   pong             -> ignored
 *   text, binary     -> ignored, up to WS_LISTEN_MAX_MESSAGE bytes per message
 *   violations       -> WS_EV_VIOLATION with the close code and reason to send
 *
 * The reader allocates wslay's context (about 4 KiB) on its first byte, so
 * a listener that sends nothing costs nothing. Any thread; no I/O. */
enum { WS_LISTEN_MAX_MESSAGE = 4096 };

enum ws_event { WS_EV_NONE, WS_EV_PING, WS_EV_CLOSE, WS_EV_VIOLATION };

struct ws_reader {
    struct wslay_frame_context *fc; /* private */
    const uint8_t *in;              /* private: the bytes being fed */
    size_t in_len, in_off;          /* private */
    uint64_t frame_left;            /* private: payload bytes left in the current frame */
    uint64_t msg_bytes;             /* private: data bytes of the current message */
    uint8_t op;                     /* private: the current frame's opcode */
    bool in_frame;                  /* private: inside a frame's payload */
    bool in_message;                /* private: a fragmented data message is open */
    bool is_done;                   /* read-only: a close or violation was reported */
    uint16_t code;                  /* out: close code to answer (WS_EV_CLOSE/VIOLATION) */
    const char *reason;             /* out: constant text for the close frame */
    uint8_t ctl[125];               /* private: control payload being collected */
    uint8_t ctl_len;                /* out: with WS_EV_PING, the payload in ctl */
};

/* 0, or -ENOMEM (wslay's context could not be allocated). */
int ws_reader_init(struct ws_reader *r);
void ws_reader_fini(struct ws_reader *r);
/* Consumes bytes from data[0..len) until an event: returns it and sets
 * *used to the bytes consumed. After an event call again with the rest (even
 * none: frames may wait in wslay's buffer) until WS_EV_NONE, which means all
 * was consumed. After WS_EV_CLOSE or WS_EV_VIOLATION the reader
 * consumes and ignores everything. */
enum ws_event ws_reader_feed(struct ws_reader *r, const uint8_t *data, size_t len, size_t *used);

/* The listen path's hello (a text frame, complete) for a space into `out`.
 * Returns its length, 0 when it does not fit. */
size_t ws_hello_frame(uint8_t *out, size_t cap, const char *space, int channels);

#endif
