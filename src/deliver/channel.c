#include "deliver/channel.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum { CHAN_SOCKBUF = 4 * 1024 * 1024 };

int chan_pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
        return -errno;
    int sz = CHAN_SOCKBUF;
    for (int i = 0; i < 2; i++) {
        setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    return 0;
}

void chan_msg_init(struct chan_msg *m, enum chan_type type, const char *space, uint32_t len)
{
    memset(m, 0, sizeof(*m));
    m->type = (uint16_t)type;
    m->len = len;
    if (space) {
        size_t n = strnlen(space, CHAN_SPACE_MAX - 1);
        memcpy(m->space, space, n);
    }
}

int chan_send(int sock, const struct chan_msg *m, const void *payload, int fd)
{
    if (m->len > CHAN_MAX_PAYLOAD) return -EMSGSIZE;
    struct iovec iov[2] = {{(void *)m, sizeof(*m)}, {(void *)payload, m->len}};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = m->len ? 2 : 1};
    if (fd >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    for (;;) {
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) return 0;
        if (errno == EINTR) continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* Takes the fd out of an SCM_RIGHTS control message (closing extras). */
static int take_fd(struct msghdr *mh)
{
    int fd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (fd < 0)
                fd = got;
            else
                close(got);
        }
    }
    return fd;
}

int chan_recv(int sock, void *buf, size_t cap, struct chan_msg *m, const void **payload, int *fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 4)];
    } ctl;
    struct iovec iov = {buf, cap};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    *fd = -1;
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    *fd = take_fd(&mh);
    if (n == 0) return 0;
    if ((size_t)n < sizeof(*m) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) goto bad;
    memcpy(m, buf, sizeof(*m));
    if (m->len != (size_t)n - sizeof(*m) || m->space[CHAN_SPACE_MAX - 1] != '\0') goto bad;
    *payload = (const char *)buf + sizeof(*m);
    return 1;
bad:
    if (*fd >= 0) close(*fd);
    *fd = -1;
    return -EBADMSG;
}
