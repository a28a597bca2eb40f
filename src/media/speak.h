/* The browser speaker: one WebSocket session of GET /spaces/{id}/speak, from the 101
 * onwards, on the master's media loop (wslay's event API: masking, fragments, control
 * frames and the close handshake are its job).
 *
 *   socket --wslay_event_recv--> message --speak_rx_check (speak_msg.h)--> packet queue
 *     --pull by the mixer, at real-time pace (a small jitter target: speak.c)--> mixer input
 *   space events --speak_send_state/_muted (JSON text messages)--> wslay --> socket
 *
 * Server -> speaker text messages (JSON):
 *   {"type":"hello","space":ID,"name":NAME,"state":STATE,"muted":BOOL}   once, after the 101
 *   {"type":"state","state":STATE}     when the space's state changes
 *   {"type":"muted","muted":BOOL}      when the host mutes or unmutes this speaker
 * The session ends with a close frame: a violation's code (speak_msg.h), 1008 "removed by
 * the host", 1001 when the space ends or the speaker sent nothing for its timeout.
 *
 * Reading stops while about a second of audio waits (TCP then paces a speaker that sends
 * faster than real time); packets of a burst beyond that (what wslay had already read) are
 * dropped. The speaker leaves the mix (on_attach NULL, then on_gone) as soon
 * as the session stops carrying audio: the close handshake then finishes on its own, for
 * at most SPEAK_LINGER_MS, and the session frees itself.
 * Thread: the media loop. Errors: NULL or nothing; logged here.
 */
#ifndef TRIBUNE_MEDIA_SPEAK_H
#define TRIBUNE_MEDIA_SPEAK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

struct speak;
struct program_source;

enum {
    SPEAK_LINGER_MS = 2000,
    SPEAK_JITTER_MS = 80,      /* a WebSocket speaker's first jitter target */
    SPEAK_JITTER_MAX_MS = 300, /* what underruns may grow it to */
};

struct speak_events {
    /* The session stopped carrying audio (closed by either side, or timed out); it must not
     * be used by the owner any more. Called once, after on_attach(NULL). */
    void (*on_gone)(struct speak *sp, void *arg);
    /* The first valid packet came (`src` to mix), or the audio stopped (`src` NULL). */
    void (*on_attach)(struct speak *sp, struct program_source *src, void *arg);
    void *arg;
};

struct speak_hello {
    const char *space, *name, *state;
    bool is_muted;
};

/* Takes `fd` (a checked WebSocket handshake with the speaker's key), writes the 101 with
 * `accept` and the hello message. `timeout_ms`: a speaker that sends nothing for that long
 * is closed. Returns the session, or NULL (fd closed). */
struct speak *speak_start(struct loop *loop, int fd, const char accept[29],
                          const struct speak_hello *hello, uint64_t timeout_ms,
                          const struct speak_events *ev, const char *peer);
void speak_send_state(struct speak *sp, const char *state);
void speak_send_muted(struct speak *sp, bool is_muted);
/* Starts the close handshake with `code` and `reason` (<= 123 bytes); on_gone is called
 * before this returns. */
void speak_close(struct speak *sp, unsigned code, const char *reason);
/* Ends every session at once, closing handshakes included (shutdown). */
void speak_close_all(void);

/* Test and fuzz entry (no socket, no loop): feeds `len` client bytes, at most `step` per
 * read, into a session through the same wslay context and message handler; every packet
 * queued is pulled as the mixer would pull it. Returns the close code the session sent (0:
 * none; the input ran out first) and, if `rx` is not NULL, its counters. */
struct speak_rx;
unsigned speak_feed_test(const uint8_t *data, size_t len, size_t step, struct speak_rx *rx);

#endif
