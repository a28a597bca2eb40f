/* Unit tests for deliver/channel.c over real SOCK_SEQPACKET pairs: every
 * message type round trips, payloads up to CHAN_MAX_PAYLOAD, fd passing (the
 * received fd is the same open file), a full channel (-EAGAIN), the peer's
 * close (0), and malformed datagrams sent raw with send() (-EBADMSG, with any
 * attached fd closed rather than leaked). */
#include "deliver/channel.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness.h"
#include "core/log.h"

enum { BUF_CAP = sizeof(struct chan_msg) + CHAN_MAX_PAYLOAD };

static int ch[2] = {-1, -1};
static unsigned char *buf;

static void setup(void)
{
    log_threshold = LOG_ERROR;
    ck_assert_int_eq(chan_pair(ch), 0);
    buf = malloc(BUF_CAP);
    ck_assert_ptr_nonnull(buf);
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++)
        if (ch[i] >= 0) close(ch[i]);
    ch[0] = ch[1] = -1;
    free(buf);
    buf = NULL;
}

static void fill(unsigned char *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(seed * 31u + i * 7u + (i >> 9));
}

/* Receives one message on ch[1], waiting up to 2 s for it; returns
 * chan_recv's result. */
static int recv_one(struct chan_msg *m, const void **payload, int *fd)
{
    struct pollfd p = {.fd = ch[1], .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 2000), 1);
    return chan_recv(ch[1], buf, BUF_CAP, m, payload, fd);
}

/* The lowest free descriptor number (to tell whether one leaked). */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    ck_assert_int_ge(fd, 0);
    close(fd);
    return fd;
}

START_TEST(every_type_round_trips)
{
    static const size_t lens[] = {0, 1, 100, 4096, 65537};
    unsigned char *out = malloc(65537);
    ck_assert_ptr_nonnull(out);
    int n = 0;
    for (int t = CHAN_CONFIG; t <= CHAN_STATS; t++) {
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++, n++) {
            struct chan_msg m, got;
            chan_msg_init(&m, (enum chan_type)t, i % 2 ? "space-1" : NULL, (uint32_t)lens[i]);
            m.flags = (uint16_t)(0xA500 + n);
            m.a = 0x0102030405060708ull * (uint64_t)(n + 1);
            m.b = ~m.a;
            fill(out, lens[i], (unsigned)n);
            ck_assert_int_eq(chan_send(ch[0], &m, out, -1), 0);
            const void *payload = NULL;
            int fd = 7777;
            ck_assert_int_eq(recv_one(&got, &payload, &fd), 1);
            ck_assert_int_eq(fd, -1);
            ck_assert_uint_eq(got.type, t);
            ck_assert_uint_eq(got.flags, m.flags);
            ck_assert_uint_eq(got.len, lens[i]);
            ck_assert_uint_eq(got.a, m.a);
            ck_assert_uint_eq(got.b, m.b);
            ck_assert_str_eq(got.space, i % 2 ? "space-1" : "");
            ck_assert_ptr_nonnull(payload);
            ck_assert_int_eq(memcmp(payload, out, lens[i]), 0);
        }
    }
    /* Nothing else is queued. */
    struct chan_msg m;
    const void *payload;
    int fd;
    ck_assert_int_eq(chan_recv(ch[1], buf, BUF_CAP, &m, &payload, &fd), -EAGAIN);
    ck_assert_int_eq(fd, -1);
    free(out);
}
END_TEST

START_TEST(messages_keep_their_order_and_boundaries)
{
    unsigned char p[64];
    for (unsigned i = 0; i < 40; i++) {
        struct chan_msg m;
        chan_msg_init(&m, CHAN_CHUNK, "s", i + 1);
        m.a = i;
        fill(p, i + 1, i);
        ck_assert_int_eq(chan_send(ch[0], &m, p, -1), 0);
    }
    for (unsigned i = 0; i < 40; i++) {
        struct chan_msg m;
        const void *payload;
        int fd;
        ck_assert_int_eq(recv_one(&m, &payload, &fd), 1);
        ck_assert_uint_eq(m.a, i);
        ck_assert_uint_eq(m.len, i + 1);
        fill(p, i + 1, i);
        ck_assert_int_eq(memcmp(payload, p, i + 1), 0);
    }
}
END_TEST

START_TEST(largest_payload_round_trips)
{
    unsigned char *out = malloc(CHAN_MAX_PAYLOAD);
    ck_assert_ptr_nonnull(out);
    fill(out, CHAN_MAX_PAYLOAD, 3);
    struct chan_msg m, got;
    chan_msg_init(&m, CHAN_HEADER, "big", CHAN_MAX_PAYLOAD);
    /* A datagram must fit the sender's SO_SNDBUF, which the kernel caps at
     * net.core.wmem_max (212992 by default: too small for this). */
    int sndbuf = 0;
    socklen_t sl = sizeof(sndbuf);
    ck_assert_int_eq(getsockopt(ch[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
    int err = chan_send(ch[0], &m, out, -1);
    ck_assert_msg(err == 0, "%d-byte message: %d (SO_SNDBUF is %d; see net.core.wmem_max)",
                  CHAN_MAX_PAYLOAD, err, sndbuf);
    const void *payload;
    int fd;
    ck_assert_int_eq(recv_one(&got, &payload, &fd), 1);
    ck_assert_uint_eq(got.len, CHAN_MAX_PAYLOAD);
    ck_assert_int_eq(memcmp(payload, out, CHAN_MAX_PAYLOAD), 0);
    /* One byte more is refused before anything is sent. */
    chan_msg_init(&m, CHAN_HEADER, "big", CHAN_MAX_PAYLOAD + 1);
    ck_assert_int_eq(chan_send(ch[0], &m, out, -1), -EMSGSIZE);
    ck_assert_int_eq(chan_recv(ch[1], buf, BUF_CAP, &got, &payload, &fd), -EAGAIN);
    free(out);
}
END_TEST

START_TEST(passed_fd_is_the_same_open_file)
{
    int file = memfd_create("chan-test", MFD_CLOEXEC);
    ck_assert_int_ge(file, 0);
    struct chan_msg m, got;
    chan_msg_init(&m, CHAN_HANDOFF, NULL, 5);
    ck_assert_int_eq(chan_send(ch[0], &m, "bytes", file), 0);
    const void *payload;
    int fd = -1;
    ck_assert_int_eq(recv_one(&got, &payload, &fd), 1);
    ck_assert_uint_eq(got.type, CHAN_HANDOFF);
    ck_assert_int_eq(memcmp(payload, "bytes", 5), 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ne(fd, file);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    /* Write through the received one, read through the original: one open
     * file description, so they also share the offset. */
    ck_assert_int_eq(write(fd, "hello", 5), 5);
    ck_assert_int_eq(lseek(file, 0, SEEK_CUR), 5);
    char in[8] = {0};
    ck_assert_int_eq(pread(file, in, sizeof(in), 0), 5);
    ck_assert_str_eq(in, "hello");
    /* The sender still owns its copy: closing it leaves the receiver's. */
    close(file);
    ck_assert_int_eq(write(fd, " world", 6), 6);
    ck_assert_int_eq(pread(fd, in, 7, 4), 7);
    ck_assert_int_eq(memcmp(in, "o world", 7), 0);
    close(fd);
}
END_TEST

START_TEST(passed_socket_carries_data)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct chan_msg m, got;
    chan_msg_init(&m, CHAN_LISTENER, "s1", 0);
    m.a = 1;
    ck_assert_int_eq(chan_send(ch[0], &m, NULL, sv[0]), 0);
    close(sv[0]);
    const void *payload;
    int fd = -1;
    ck_assert_int_eq(recv_one(&got, &payload, &fd), 1);
    ck_assert_uint_eq(got.type, CHAN_LISTENER);
    ck_assert_str_eq(got.space, "s1");
    ck_assert_uint_eq(got.a, 1);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "ping", 4), 4);
    char in[4];
    ck_assert_int_eq(read(sv[1], in, 4), 4);
    ck_assert_int_eq(memcmp(in, "ping", 4), 0);
    ck_assert_int_eq(write(sv[1], "pong", 4), 4);
    ck_assert_int_eq(read(fd, in, 4), 4);
    ck_assert_int_eq(memcmp(in, "pong", 4), 0);
    close(fd);
    ck_assert_int_eq(read(sv[1], in, 4), 0); /* the last copy closed: end of stream */
    close(sv[1]);
}
END_TEST

START_TEST(full_channel_says_eagain)
{
    static unsigned char chunk[16384];
    fill(chunk, sizeof(chunk), 9);
    struct chan_msg m;
    chan_msg_init(&m, CHAN_CHUNK, "s1", sizeof(chunk));
    int sent = 0, err = 0;
    for (; sent < 100000; sent++) {
        m.a = (uint64_t)sent;
        err = chan_send(ch[0], &m, chunk, -1);
        if (err) break;
    }
    ck_assert_int_eq(err, -EAGAIN);
    ck_assert_int_gt(sent, 0);
    /* Still full while nobody reads; an fd-carrying message too. */
    ck_assert_int_eq(chan_send(ch[0], &m, chunk, -1), -EAGAIN);
    chan_msg_init(&m, CHAN_LISTENER, "s1", 0);
    ck_assert_int_eq(chan_send(ch[0], &m, NULL, 0), -EAGAIN);
    /* Reading makes room, and nothing was lost or reordered. */
    struct chan_msg got;
    const void *payload;
    int fd;
    for (int i = 0; i < sent; i++) {
        ck_assert_int_eq(chan_recv(ch[1], buf, BUF_CAP, &got, &payload, &fd), 1);
        ck_assert_uint_eq(got.a, (uint64_t)i);
        ck_assert_int_eq(memcmp(payload, chunk, sizeof(chunk)), 0);
    }
    ck_assert_int_eq(chan_recv(ch[1], buf, BUF_CAP, &got, &payload, &fd), -EAGAIN);
    ck_assert_int_eq(chan_send(ch[0], &m, NULL, -1), 0);
}
END_TEST

START_TEST(peer_close_reads_zero)
{
    struct chan_msg m, got;
    chan_msg_init(&m, CHAN_STATS, "s1", 3);
    ck_assert_int_eq(chan_send(ch[0], &m, "abc", -1), 0);
    close(ch[0]);
    ch[0] = -1;
    const void *payload;
    int fd;
    /* What was sent before the close is still delivered, then 0. */
    ck_assert_int_eq(recv_one(&got, &payload, &fd), 1);
    ck_assert_int_eq(memcmp(payload, "abc", 3), 0);
    ck_assert_int_eq(recv_one(&got, &payload, &fd), 0);
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(chan_recv(ch[1], buf, BUF_CAP, &got, &payload, &fd), 0);
    /* Sending to a closed peer is an error, not a SIGPIPE. */
    ck_assert_int_eq(chan_send(ch[1], &m, "abc", -1), -EPIPE);
}
END_TEST

/* Sends raw bytes (optionally with an fd) bypassing chan_send. */
static void send_raw(const void *p, size_t len, int fd)
{
    struct iovec iov = {(void *)p, len};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
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
    ck_assert_int_eq(sendmsg(ch[0], &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static void expect_bad(void)
{
    struct chan_msg got;
    const void *payload;
    int fd = 1234;
    ck_assert_int_eq(recv_one(&got, &payload, &fd), -EBADMSG);
    ck_assert_int_eq(fd, -1);
}

START_TEST(malformed_datagrams_are_rejected)
{
    int before = lowest_free_fd();
    /* Shorter than a head. */
    ck_assert_int_eq(send(ch[0], "junk", 4, 0), 4);
    expect_bad();
    unsigned char raw[sizeof(struct chan_msg) + 16];
    struct chan_msg m;
    /* A head announcing more payload than came. */
    chan_msg_init(&m, CHAN_CHUNK, "s1", 16);
    memcpy(raw, &m, sizeof(m));
    send_raw(raw, sizeof(m) + 8, -1);
    expect_bad();
    /* ... or less. */
    chan_msg_init(&m, CHAN_CHUNK, "s1", 4);
    memcpy(raw, &m, sizeof(m));
    send_raw(raw, sizeof(m) + 16, -1);
    expect_bad();
    /* A truncated head with an fd attached: rejected, the fd closed. */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    send_raw(raw, sizeof(m) - 1, sv[0]);
    close(sv[0]);
    expect_bad();
    char c;
    ck_assert_int_eq(read(sv[1], &c, 1), 0); /* no copy of sv[0] survives */
    close(sv[1]);
    ck_assert_int_eq(lowest_free_fd(), before);
    /* The channel still works afterwards. */
    chan_msg_init(&m, CHAN_SPACE, "ok", 0);
    ck_assert_int_eq(chan_send(ch[0], &m, NULL, -1), 0);
    struct chan_msg got;
    const void *payload;
    int fd;
    ck_assert_int_eq(recv_one(&got, &payload, &fd), 1);
    ck_assert_str_eq(got.space, "ok");
}
END_TEST

START_TEST(datagram_larger_than_the_buffer_is_rejected)
{
    unsigned char p[256];
    struct chan_msg m, got;
    chan_msg_init(&m, CHAN_CHUNK, "s1", sizeof(p));
    fill(p, sizeof(p), 1);
    ck_assert_int_eq(chan_send(ch[0], &m, p, -1), 0);
    struct pollfd pf = {.fd = ch[1], .events = POLLIN};
    ck_assert_int_eq(poll(&pf, 1, 2000), 1);
    const void *payload;
    int fd;
    /* A receive buffer too small for it: truncated, so malformed. */
    ck_assert_int_eq(chan_recv(ch[1], buf, sizeof(m) + 100, &got, &payload, &fd), -EBADMSG);
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(chan_recv(ch[1], buf, BUF_CAP, &got, &payload, &fd), -EAGAIN);
}
END_TEST

START_TEST(unterminated_space_is_rejected)
{
    struct chan_msg m;
    chan_msg_init(&m, CHAN_SPACE, NULL, 0);
    memset(m.space, 'x', sizeof(m.space));
    send_raw(&m, sizeof(m), -1);
    expect_bad();
    /* chan_msg_init cuts a long id so that it stays terminated. */
    char id[64];
    memset(id, 'y', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    chan_msg_init(&m, CHAN_SPACE, id, 0);
    ck_assert_uint_eq(strlen(m.space), CHAN_SPACE_MAX - 1);
    ck_assert_int_eq(chan_send(ch[0], &m, NULL, -1), 0);
    struct chan_msg got;
    const void *payload;
    int fd;
    ck_assert_int_eq(recv_one(&got, &payload, &fd), 1);
    ck_assert_uint_eq(strlen(got.space), CHAN_SPACE_MAX - 1);
    ck_assert_int_eq(strncmp(got.space, id, CHAN_SPACE_MAX - 1), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("channel");
    TCase *tc = tcase_create("channel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, every_type_round_trips);
    tcase_add_test(tc, messages_keep_their_order_and_boundaries);
    tcase_add_test(tc, largest_payload_round_trips);
    tcase_add_test(tc, passed_fd_is_the_same_open_file);
    tcase_add_test(tc, passed_socket_carries_data);
    tcase_add_test(tc, full_channel_says_eagain);
    tcase_add_test(tc, peer_close_reads_zero);
    tcase_add_test(tc, malformed_datagrams_are_rejected);
    tcase_add_test(tc, datagram_larger_than_the_buffer_is_rejected);
    tcase_add_test(tc, unterminated_space_is_rejected);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
