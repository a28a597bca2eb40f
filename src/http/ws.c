#include "http/ws.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(v + start, token, tl) == 0) return 1;
    }
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
