/* Fuzz driver for the client-frame reader of the WebSocket listen path
 * (http/ws.c: ws_reader_feed over wslay's frame layer), what a listener's
 * client sends after the 101 head.
 *
 * Input: 1 byte of piece size (0: the rest in one piece; n: pieces of n
 * bytes), then the bytes the client sends. The reader is run twice, on the
 * whole input and in pieces; invariants (abort on violation):
 * - both runs give the same events, in order, with the same codes and ping
 *   payloads (the reader's verdict does not depend on how TCP splits bytes);
 * - `used` never exceeds what was offered; WS_EV_NONE only once all was used;
 * - nothing after WS_EV_CLOSE or WS_EV_VIOLATION, and is_done is set then;
 * - a violation closes with 1002 or 1009 and a reason; a close echoes a code
 *   a peer may send (1000-1003, 1007-1011, 3000-4999);
 * - a ping's payload is at most 125 bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL() fail_at(__LINE__)
__attribute__((noreturn)) static void fail_at(int line)
{
    fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
    abort();
}

enum { MAX_EV = 64 };

struct run {
    int n;
    enum ws_event ev[MAX_EV];
    uint16_t code[MAX_EV];
    uint8_t ctl_len[MAX_EV];
    uint8_t ctl[MAX_EV][125];
};

static void check_event(const struct ws_reader *r, enum ws_event e)
{
    if (e == WS_EV_VIOLATION) {
        if (r->code != 1002 && r->code != 1009) FAIL();
        if (!r->reason || !r->reason[0]) FAIL();
        if (!r->is_done) FAIL();
    } else if (e == WS_EV_CLOSE) {
        unsigned c = r->code;
        if (!((c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999)))
            FAIL();
        if (!r->is_done) FAIL();
    } else if (e == WS_EV_PING) {
        if (r->ctl_len > 125) FAIL();
    } else {
        FAIL();
    }
}

static void record(struct run *out, const struct ws_reader *r, enum ws_event e)
{
    if (out->n >= MAX_EV) return;
    out->ev[out->n] = e;
    out->code[out->n] = e == WS_EV_PING ? 0 : r->code;
    out->ctl_len[out->n] = e == WS_EV_PING ? r->ctl_len : 0;
    if (e == WS_EV_PING) memcpy(out->ctl[out->n], r->ctl, r->ctl_len);
    out->n++;
}

static void run(const uint8_t *in, size_t len, size_t piece, struct run *out)
{
    struct ws_reader r;
    memset(out, 0, sizeof(*out));
    if (ws_reader_init(&r) != 0) FAIL();
    bool done = false;
    size_t off = 0;
    /* each call uses bytes or reports an event that used a frame's bytes */
    for (size_t guard = 0; guard < 4 * len + 4 * 4096 + 16; guard++) {
        size_t offer = len - off;
        if (piece && offer > piece) offer = piece;
        size_t used = 99999999;
        enum ws_event e = ws_reader_feed(&r, in + off, offer, &used);
        if (used > offer) FAIL();
        off += used;
        if (e == WS_EV_NONE) {
            if (used != offer) FAIL();
            if (off >= len) break;
            continue;
        }
        if (done) FAIL(); /* nothing after a close or a violation */
        check_event(&r, e);
        record(out, &r, e);
        if (e != WS_EV_PING) done = true;
    }
    if (off != len) FAIL();
    if (done != r.is_done) FAIL();
    ws_reader_fini(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) return 0;
    size_t piece = data[0];
    static struct run whole, split;
    run(data + 1, size - 1, 0, &whole);
    run(data + 1, size - 1, piece ? piece : 1, &split);
    if (whole.n != split.n) FAIL();
    for (int i = 0; i < whole.n; i++) {
        if (whole.ev[i] != split.ev[i] || whole.code[i] != split.code[i]) FAIL();
        if (whole.ctl_len[i] != split.ctl_len[i]) FAIL();
        if (memcmp(whole.ctl[i], split.ctl[i], whole.ctl_len[i]) != 0) FAIL();
    }
    return 0;
}
