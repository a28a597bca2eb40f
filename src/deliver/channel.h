/* The channel between the master and one worker: a Unix SOCK_SEQPACKET
 * socketpair carrying whole messages, some with a file descriptor attached.
 *
 *   master --CONFIG, TICKET_KEY, then SPACE, HEADER, CHUNK (every chunk once
 *            per worker), LISTENER+fd------------------------------------->  worker
 *   master <--HANDOFF+fd (a request that is not for listening), STATS, EDGE_GONE--- worker
 *
 * A message is a fixed head (struct chan_msg) then `len` payload bytes. The
 * same framing will carry an edge relay's upstream later. Chunks never cross
 * as pointers: the worker builds its own chunk from the payload (STYLE.md).
 * Thread: the loop that owns the socket. Errors: negative errno; -EAGAIN when
 * the socket is full (the caller queues and waits for EPOLLOUT).
 */
#ifndef TRIBUNE_DELIVER_CHANNEL_H
#define TRIBUNE_DELIVER_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

enum chan_type {
    CHAN_CONFIG = 1, /* m->w: payload is struct config (same binary, same layout) */
    CHAN_SPACE,      /* m->w: a space exists (create its feed) or changed; a = CHAN_SPACE_* flags */
    CHAN_HEADER,     /* m->w: the space's format header (Ogg header pages) */
    CHAN_CHUNK,      /* m->w: one chunk; a = granule, b = duration in samples */
    CHAN_LISTENER,   /* m->w: fd is a listener of `space`; a = 1 for HEAD; flags CHAN_FMT_WS:
                        a WebSocket listener, payload its Sec-WebSocket-Accept value (the
                        worker sends the 101 head once it admits it) */
    CHAN_HANDOFF,    /* w->m: fd with the bytes already read (payload) */
    CHAN_STATS,      /* w->m: payload is struct feed_stats for `space` */
    CHAN_TICKET_KEY, /* m->w: payload is the node's join-ticket secret (guard/ticket.h),
                        sent right after CONFIG, before any SPACE; never logged */
    CHAN_STEER,      /* m->w: payload is the base URL of the edge to steer joins refused for
                        capacity to (relay/steer.h), empty: none (503 as usual) */
    CHAN_EDGE_GONE,  /* w->m: the upstream connection of edge `payload` (its X-Tribune-Edge id)
                        for `space` closed: that edge's report no longer counts */
};

/* Flags of a CHAN_SPACE message (its `a`). */
enum {
    CHAN_SPACE_REQUIRE_TICKET = 1,
    CHAN_SPACE_LIVE = 2,  /* the space is on the air: its listeners hear (else they wait) */
    CHAN_SPACE_ENDED = 4, /* the space ended: close its listeners, answer joins 410 */
};

/* A chan_msg's `flags`: which feed of the space a HEADER, CHUNK, LISTENER or
 * STATS message is about (0: the Ogg feed). */
enum { CHAN_FMT_OGG = 0, CHAN_FMT_WS = 1 };

enum { CHAN_SPACE_MAX = 33, CHAN_MAX_PAYLOAD = (1 << 20) + (64 << 10) };

struct chan_msg {
    uint16_t type;
    uint16_t flags;
    uint32_t len; /* payload bytes after this head */
    uint64_t a, b;
    char space[CHAN_SPACE_MAX]; /* NUL-terminated space id, or empty */
};

/* Creates a SOCK_SEQPACKET pair with large buffers. 0 or negative errno. */
int chan_pair(int fds[2]);
/* Sends one message (non-blocking) with an optional fd (-1 for none; the fd
 * is duplicated into the peer, the caller still owns and closes its copy).
 * 0, -EAGAIN when full, or another negative errno. */
int chan_send(int sock, const struct chan_msg *m, const void *payload, int fd);
/* Receives one message into `buf` (cap >= sizeof(struct chan_msg) +
 * CHAN_MAX_PAYLOAD). Sets *m (the head, copied), *payload (inside buf) and
 * *fd (-1 or a new fd the caller owns). Returns 1, 0 at end of stream,
 * -EAGAIN when empty, -EBADMSG for a malformed message, or -errno. */
int chan_recv(int sock, void *buf, size_t cap, struct chan_msg *m, const void **payload, int *fd);
/* Fills a message head. `space` may be NULL. */
void chan_msg_init(struct chan_msg *m, enum chan_type type, const char *space, uint32_t len);

#endif
