#include "http/ws.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <wslay/wslay.h>

#include "http/conn.h"
#include "http/route.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void ws_accept_key(const char *key, size_t len, char out[29])
{
    unsigned char buf[64 + sizeof(ws_guid)];
    unsigned char digest[SHA_DIGEST_LENGTH];
    if (len > 64) len = 64; /* ws_check_handshake admits 24 characters */
    memcpy(buf, key, len);
    memcpy(buf + len, ws_guid, sizeof(ws_guid) - 1);
    SHA1(buf, len + sizeof(ws_guid) - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH); /* 28 chars + NUL */
}

/* Does the comma-separated header value `v` hold `token` (case-insensitive)? */
static int has_token(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token), pos = 0, il;
    const char *item;
    while (http_list_next(v, len, &pos, &item, &il))
        if (il == tl && strncasecmp(item, token, tl) == 0) return 1;
    return 0;
}

int ws_check_handshake(const struct conn *c, char accept[29], const char **why)
{
    size_t len;
    const char *v;
    if (c->method != ROUTE_GET) {
        *why = "a WebSocket handshake is a GET";
        return 400;
    }
    v = conn_header(c, "Upgrade", &len);
    if (!v || !has_token(v, len, "websocket")) {
        *why = "this path speaks WebSocket: send Upgrade: websocket";
        return 426;
    }
    v = conn_header(c, "Connection", &len);
    if (!v || !has_token(v, len, "upgrade")) {
        *why = "a WebSocket handshake needs Connection: Upgrade";
        return 400;
    }
    v = conn_header(c, "Sec-WebSocket-Version", &len);
    if (!v || len != 2 || memcmp(v, "13", 2) != 0) {
        *why = "unsupported Sec-WebSocket-Version: 13 is required";
        return 426;
    }
    v = conn_header(c, "Sec-WebSocket-Key", &len);
    unsigned char raw[24];
    if (!v || len != 24 || EVP_DecodeBlock(raw, (const unsigned char *)v, 24) != 18 ||
        v[22] != '=' || v[23] != '=') {
        /* 16 bytes encode as 22 characters and "==" (EVP_DecodeBlock counts the padding) */
        *why = "Sec-WebSocket-Key must be base64 of 16 bytes";
        return 400;
    }
    ws_accept_key(v, len, accept);
    return 0;
}

size_t ws_response_head(char *out, size_t cap, const char accept[29])
{
    int n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "Cache-Control: no-cache\r\n"
                     "\r\n",
                     accept);
    return n < 0 ? 0 : (size_t)n;
}

void ws_respond_error(struct conn *c, int status, const char *why)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"error\": \"%s\"}\n", why);
    if (n < 0 || (size_t)n >= sizeof(body)) n = 0;
    conn_respond(c, status, "application/json", "Sec-WebSocket-Version: 13\r\n", body, (size_t)n);
}

int ws_send_head(int fd, const char accept[29])
{
    char head[256];
    size_t len = ws_response_head(head, sizeof(head), accept);
    if (len == 0 || len >= sizeof(head)) return -EIO;
    ssize_t n;
    do {
        n = send(fd, head, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? 0 : -EIO;
}

size_t ws_frame_header(uint8_t out[10], unsigned opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t ws_close_frame(uint8_t *out, unsigned code, const char *reason)
{
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123) rl = 123;
    size_t h = ws_frame_header(out, WS_OP_CLOSE, 2 + rl);
    out[h] = (uint8_t)(code >> 8);
    out[h + 1] = (uint8_t)code;
    if (rl) memcpy(out + h + 2, reason, rl);
    return h + 2 + rl;
}

void ws_audio_header(uint8_t out[WS_AUDIO_HDR], uint32_t seq, uint64_t timestamp)
{
    out[0] = WS_MSG_AUDIO;
    for (int i = 0; i < 4; i++)
        out[1 + i] = (uint8_t)(seq >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        out[5 + i] = (uint8_t)(timestamp >> (56 - 8 * i));
}

int ws_audio_parse(const uint8_t *msg, size_t len, uint32_t *seq, uint64_t *timestamp)
{
    if (len < WS_AUDIO_HDR || msg[0] != WS_MSG_AUDIO) return -1;
    uint32_t s = 0;
    uint64_t t = 0;
    for (int i = 0; i < 4; i++)
        s = s << 8 | msg[1 + i];
    for (int i = 0; i < 8; i++)
        t = t << 8 | msg[5 + i];
    *seq = s;
    *timestamp = t;
    return WS_AUDIO_HDR;
}

/* ---- the client-frame reader ---- */

static ssize_t reader_recv(uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    struct ws_reader *r = user;
    size_t n = r->in_len - r->in_off;
    if (n > len) n = len;
    if (n == 0) return 0; /* wslay answers WSLAY_ERR_WANT_READ */
    memcpy(buf, r->in + r->in_off, n);
    r->in_off += n;
    return (ssize_t)n;
}

static ssize_t reader_send(const uint8_t *d, size_t l, int f, void *u)
{
    (void)d, (void)l, (void)f, (void)u;
    return -1; /* the reader never sends */
}

static int reader_genmask(uint8_t *b, size_t l, void *u)
{
    (void)b, (void)l, (void)u;
    return -1;
}

int ws_reader_init(struct ws_reader *r)
{
    memset(r, 0, sizeof(*r));
    static const struct wslay_frame_callbacks cb = {reader_send, reader_recv, reader_genmask};
    if (wslay_frame_context_init(&r->fc, &cb, r) != 0) return -ENOMEM;
    return 0;
}

void ws_reader_fini(struct ws_reader *r)
{
    if (r->fc) wslay_frame_context_free(r->fc);
    r->fc = NULL;
}

static enum ws_event violation(struct ws_reader *r, uint16_t code, const char *reason)
{
    r->is_done = true;
    r->code = code;
    r->reason = reason;
    return WS_EV_VIOLATION;
}

/* The first piece of a frame: its header, judged once. */
static enum ws_event frame_start(struct ws_reader *r, const struct wslay_frame_iocb *io)
{
    if (!io->mask) return violation(r, WS_CLOSE_PROTOCOL, "client frames must be masked");
    if (io->rsv) return violation(r, WS_CLOSE_PROTOCOL, "reserved bits set");
    switch (io->opcode) {
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        r->ctl_len = 0; /* wslay refuses control frames over 125 bytes or fragmented */
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (r->in_message)
            return violation(r, WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
        r->in_message = !io->fin;
        r->msg_bytes = 0;
        break;
    case WS_OP_CONT:
        if (!r->in_message)
            return violation(r, WS_CLOSE_PROTOCOL, "continuation without a message");
        if (io->fin) r->in_message = false;
        break;
    default:
        return violation(r, WS_CLOSE_PROTOCOL, "unknown opcode");
    }
    if (!(io->opcode & 0x8)) {
        r->msg_bytes += io->payload_length;
        if (r->msg_bytes > WS_LISTEN_MAX_MESSAGE)
            return violation(r, WS_CLOSE_TOO_BIG, "message too big for a listener");
    }
    r->op = io->opcode;
    r->frame_left = io->payload_length;
    r->in_frame = true;
    return WS_EV_NONE;
}

/* A complete control frame. */
static enum ws_event control_end(struct ws_reader *r)
{
    if (r->op == WS_OP_PING) return WS_EV_PING;
    if (r->op != WS_OP_CLOSE) return WS_EV_NONE;
    r->is_done = true;
    r->reason = "";
    if (r->ctl_len == 0) {
        r->code = WS_CLOSE_NORMAL;
        return WS_EV_CLOSE;
    }
    unsigned code = (unsigned)r->ctl[0] << 8 | r->ctl[1];
    /* RFC 6455 7.4: codes a peer may send */
    bool ok = r->ctl_len >= 2 && ((code >= 1000 && code <= 1003) ||
                                  (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999));
    if (!ok) return violation(r, WS_CLOSE_PROTOCOL, "invalid close frame");
    r->code = (uint16_t)code;
    return WS_EV_CLOSE;
}

enum ws_event ws_reader_feed(struct ws_reader *r, const uint8_t *data, size_t len, size_t *used)
{
    if (r->is_done || !r->fc) {
        *used = len;
        return WS_EV_NONE;
    }
    r->in = data;
    r->in_len = len;
    r->in_off = 0;
    enum ws_event ev = WS_EV_NONE;
    /* each round takes at least one byte of the input or of wslay's 4 KiB buffer */
    for (size_t round = 0; round <= 2 * (len + 4096) + 2 && ev == WS_EV_NONE; round++) {
        struct wslay_frame_iocb io;
        memset(&io, 0, sizeof(io));
        ssize_t n = wslay_frame_recv(r->fc, &io);
        if (n == WSLAY_ERR_WANT_READ) break;
        if (n < 0) {
            ev = violation(r, WS_CLOSE_PROTOCOL, "malformed frame");
            break;
        }
        if (!r->in_frame && (ev = frame_start(r, &io)) != WS_EV_NONE) break;
        if (r->op & 0x8 && io.data_length) {
            memcpy(r->ctl + r->ctl_len, io.data, io.data_length); /* <= 125 in all */
            r->ctl_len = (uint8_t)(r->ctl_len + io.data_length);
        }
        r->frame_left -= io.data_length;
        if (r->frame_left == 0) {
            r->in_frame = false;
            if (r->op & 0x8) ev = control_end(r);
        }
    }
    /* wslay copied what it took into its own buffer: all of it is used,
     * unless an event stopped us with input left in ours */
    *used = r->in_off;
    r->in = NULL;
    return ev;
}

size_t ws_hello_frame(uint8_t *out, size_t cap, const char *space, int channels)
{
    char json[160];
    int n = snprintf(json, sizeof(json),
                     "{\"codec\":\"opus\",\"sample_rate\":48000,\"channels\":%d,"
                     "\"frame_ms\":20,\"space\":\"%s\"}",
                     channels, space);
    if (n < 0 || (size_t)n >= sizeof(json) || cap < (size_t)n + 2) return 0;
    size_t h = ws_frame_header(out, WS_OP_TEXT, (uint64_t)n);
    memcpy(out + h, json, (size_t)n);
    return h + (size_t)n;
}
