#include "net/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

/* A non-blocking TCP socket bound to host:port, with SO_REUSEPORT. */
static int open_bound(const char *host, uint16_t port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    const char *h = (host && *host) ? host : "0.0.0.0";
    int rc = getaddrinfo(h, portstr, &hints, &res);
    if (rc != 0) return -EINVAL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        freeaddrinfo(res);
        return rc;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        rc = -errno;
        close(fd);
        freeaddrinfo(res);
        return rc;
    }
    freeaddrinfo(res);
    return fd;
}

int listen_open(const char *host, uint16_t port, int backlog)
{
    int fd = open_bound(host, port);
    if (fd < 0) return fd;
    if (listen(fd, backlog) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int listen_reserve(const char *host, uint16_t port)
{
    return open_bound(host, port);
}

static void on_listen_event(struct io *io, uint32_t events);

static void resume(struct timer *t)
{
    struct acceptor *a = list_entry(t, struct acceptor, pause);
    loop_mod(a->loop, &a->io, EPOLLIN);
}

static void on_listen_event(struct io *io, uint32_t events)
{
    struct acceptor *a = list_entry(io, struct acceptor, io);
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        a->peer_len = sizeof(a->peer);
        int fd = accept4(a->io.fd, (struct sockaddr *)&a->peer, &a->peer_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            a->accepted++;
            a->on_accept(a, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if ((errno == EMFILE || errno == ENFILE) && a->on_exhausted && a->on_exhausted(a) > 0)
            continue; /* room made (handshakes evicted before listeners): go on */
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Out of descriptors: stop polling the socket for a moment rather
             * than spin on a level-triggered event we cannot serve. */
            a->paused++;
            log_limited(LOG_WARN, 1, "accept: %s; pausing accepts for %d ms", strerror(errno),
                        ACCEPT_PAUSE_MS);
            loop_mod(a->loop, &a->io, 0);
            timer_start(a->loop, &a->pause, loop_now_ms(a->loop) + ACCEPT_PAUSE_MS);
        }
        return;
    }
}

int acceptor_start(struct acceptor *a, struct loop *loop, int fd,
                   void (*on_accept)(struct acceptor *a, int fd), void *owner)
{
    a->io.fd = fd;
    a->loop = loop;
    a->on_accept = on_accept;
    a->on_exhausted = NULL;
    a->owner = owner;
    a->accepted = a->paused = 0;
    timer_init(&a->pause, resume);
    return loop_add(loop, &a->io, EPOLLIN, on_listen_event);
}

void acceptor_stop(struct acceptor *a)
{
    timer_stop(&a->pause);
    loop_del(a->loop, &a->io);
    close(a->io.fd);
    a->io.fd = -1;
}
