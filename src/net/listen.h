/* Listening sockets and the accept loop.
 *
 * A listener socket is non-blocking, SO_REUSEADDR and SO_REUSEPORT (so that
 * several worker processes can share a port later). Each readiness event
 * accepts at most ACCEPT_BATCH connections (work per wake-up is capped). On
 * EMFILE/ENFILE the owner's on_exhausted may free descriptors (handshakes go
 * before listeners); otherwise, and on ENOBUFS/ENOMEM, accepting pauses for
 * ACCEPT_PAUSE_MS instead of spinning. Thread: one loop.
 */
#ifndef TRIBUNE_NET_LISTEN_H
#define TRIBUNE_NET_LISTEN_H

#include <stdint.h>
#include <sys/socket.h>

#include "core/loop.h"

enum { ACCEPT_BATCH = 128, ACCEPT_PAUSE_MS = 100 };

struct acceptor {
    struct io io;                                  /* private */
    struct loop *loop;                             /* private */
    struct timer pause;                            /* private */
    void (*on_accept)(struct acceptor *a, int fd); /* takes ownership of fd */
    /* public, optional (NULL after acceptor_start): called when accept()
     * finds no descriptor left; returns how many it freed (e.g. by closing
     * connections still in their handshake), and accepting goes on if any,
     * else pauses for ACCEPT_PAUSE_MS. */
    unsigned (*on_exhausted)(struct acceptor *a);
    void *owner;               /* public */
    uint64_t accepted, paused; /* read-only counters */
    /* read-only, during on_accept: the new connection's peer */
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

/* Opens a listening TCP socket on host:port (host "" or "0.0.0.0" = any
 * IPv4, "::" = any IPv6). Returns the fd or a negative errno. */
int listen_open(const char *host, uint16_t port, int backlog);
/* Binds host:port with SO_REUSEPORT without listening: the port is held
 * (another program cannot take it, a conflict is found at once) while worker
 * processes open their own listening sockets on it. Returns the fd or a
 * negative errno. */
int listen_reserve(const char *host, uint16_t port);
/* Starts accepting on `fd` (taken over). 0 or negative errno. */
int acceptor_start(struct acceptor *a, struct loop *loop, int fd,
                   void (*on_accept)(struct acceptor *a, int fd), void *owner);
void acceptor_stop(struct acceptor *a);

#endif
