/* Fuzz driver for the browser speak path's receive side (media/speak.c, media/speak_msg.c):
 * arbitrary client bytes go through a speak session's own wslay context and message handler
 * (speak_feed_test: an in-memory recv callback instead of the socket), and every packet it
 * queues is pulled as the mixer pulls it.
 *
 * Input: byte 0 chooses the read size (low 5 bits: 1..31 bytes per read, 0: whole reads) and
 * the mode (bit 7). Raw mode: the rest is the client's bytes as they are. Framed mode, so that
 * the fuzzer reaches the message check without having to learn masking: the rest is records
 * [flags: FIN bit 7, opcode low 4 bits][length: 2 bytes BE][payload], each sent as one masked
 * client frame. The rest, in both modes, also goes to speak_rx_check() directly, as a binary
 * and as a text message. Invariants (abort on violation):
 * - speak_rx_check: SPEAK_ACCEPT gives a packet of 1..1275 bytes inside the message, 120..5760
 *   samples, 1 or 2 channels, at most SPEAK_MAX_CONCEAL lost; SPEAK_DROP never on a first
 *   message; anything else is 1002, 1003 or 1009 with a reason of at most 123 bytes;
 * - a session's close code is 0 (none) or a valid one (1000..4999);
 * - the same bytes read whole or in pieces give the same counters (not always the same close:
 *   wslay checks a text frame's UTF-8 as its pieces come, so a broken text frame may be 1007,
 *   a later frame's 1002, or nothing yet when the input ends inside it, by where reads end). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "media/speak.h"
#include "media/speak_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL() fail_at(__LINE__)
__attribute__((noreturn)) static void fail_at(int line)
{
    fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
    abort();
}

enum { MAX_INPUT = 1 << 16 };

static void check_message(const uint8_t *msg, size_t len, bool is_text)
{
    struct speak_rx rx;
    speak_rx_init(&rx);
    struct speak_packet p = {0};
    const char *why = NULL;
    int v = speak_rx_check(&rx, is_text, msg, len, &p, &why);
    if (v == SPEAK_ACCEPT) {
        if (p.len < 1 || p.len > SPEAK_MAX_PACKET || p.data < msg || p.data + p.len > msg + len)
            FAIL();
        if (p.samples < 120 || p.samples > 5760 || p.channels < 1 || p.channels > 2) FAIL();
        if (p.lost > SPEAK_MAX_CONCEAL) FAIL();
    } else if (v == SPEAK_DROP) {
        FAIL(); /* nothing is late before the first packet */
    } else if ((v != 1002 && v != 1003 && v != 1009) || !why || strlen(why) > 123) {
        FAIL();
    }
}

/* Framed mode: records -> masked client frames in `out`. Returns the length. */
static size_t frames(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t n = 0;
    while (len >= 3) {
        size_t plen = (size_t)in[1] << 8 | in[2];
        plen = plen < len - 3 ? plen : len - 3;
        if (n + 8 + plen > cap) break;
        out[n++] = in[0] & 0x8f;
        if (plen < 126) {
            out[n++] = (uint8_t)(0x80 | plen);
        } else {
            out[n++] = 0x80 | 126;
            out[n++] = (uint8_t)(plen >> 8);
            out[n++] = (uint8_t)plen;
        }
        memcpy(out + n, key, 4);
        n += 4;
        for (size_t i = 0; i < plen; i++)
            out[n + i] = in[3 + i] ^ key[i % 4];
        n += plen;
        in += 3 + plen;
        len -= 3 + plen;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[MAX_INPUT * 2];
    log_threshold = LOG_ERROR;
    if (size < 1 || size > MAX_INPUT) return 0;
    size_t step = data[0] & 0x1f;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    check_message(in, len, false);
    check_message(in, len, true);
    if (data[0] & 0x80) {
        len = frames(in, len, buf, sizeof(buf));
        in = buf;
    }
    struct speak_rx a, b;
    unsigned ca = speak_feed_test(in, len, step ? step : MAX_INPUT, &a);
    unsigned cb = speak_feed_test(in, len, step ? MAX_INPUT : 7, &b);
    if ((ca != 0 && (ca < 1000 || ca > 4999)) || (cb != 0 && (cb < 1000 || cb > 4999))) FAIL();
    if (a.accepted != b.accepted || a.lost != b.lost || a.dropped != b.dropped) FAIL();
    return 0;
}
