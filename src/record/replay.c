/* Replay of recordings (see replay.h).
 *
 * A response is a list of pieces, built once at the start:
 *
 *   [head text] [part head text] [file span] [part head text] [file span] ... [closing text]
 *
 * where a file span is a range of the concatenated segments. The writer walks
 * the pieces with a cursor (piece, offset); file bytes go through one 64 KiB
 * buffer (pread, then send: the buffer is refilled only when sent whole).
 */
#include "record/replay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "http/range.h"

enum { BUF_BYTES = 64 * 1024, WAKE_BYTES = 256 * 1024, MAX_PIECES = 2 * RANGE_MAX + 2 };

static const char boundary[] = "TRIBUNE-RANGES-5f3a";

struct piece {
    char *text; /* owned, or NULL for a file span */
    size_t text_len;
    uint64_t first, count; /* file span: offset in the concatenation and length */
};

struct replay {
    struct io io;
    struct loop *loop;
    struct timer idle;
    struct deferred dfr;
    struct list node;
    int fds[REPLAY_MAX_FILES];
    uint64_t sizes[REPLAY_MAX_FILES];
    size_t nfiles;
    struct piece pieces[MAX_PIECES];
    size_t npieces, cur;    /* the piece being sent */
    uint64_t off;           /* bytes of it sent */
    uint8_t buf[BUF_BYTES]; /* file bytes read but not yet sent */
    size_t buf_len, buf_sent;
    bool is_closed;
};

static struct list all = {&all, &all};
static unsigned count;

static void on_replay_free(struct deferred *d)
{
    struct replay *r = list_entry(d, struct replay, dfr);
    for (size_t i = 0; i < r->npieces; i++)
        free(r->pieces[i].text);
    free(r);
}

static void replay_close(struct replay *r)
{
    if (r->is_closed) return;
    r->is_closed = true;
    timer_stop(&r->idle);
    if (r->io.fd >= 0) {
        loop_del(r->loop, &r->io);
        close(r->io.fd);
        r->io.fd = -1;
    }
    for (size_t i = 0; i < r->nfiles; i++)
        if (r->fds[i] >= 0) close(r->fds[i]);
    r->nfiles = 0;
    list_remove(&r->node);
    count--;
    loop_defer(r->loop, &r->dfr, on_replay_free);
}

static int add_text(struct replay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int add_text(struct replay *r, const char *fmt, ...)
{
    if (r->npieces == MAX_PIECES) return -E2BIG;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) return -ENOMEM;
    r->pieces[r->npieces++] = (struct piece){.text = s, .text_len = (size_t)n};
    return 0;
}

static void add_span(struct replay *r, uint64_t first, uint64_t count_)
{
    r->pieces[r->npieces++] = (struct piece){.first = first, .count = count_};
}

/* Reads file bytes at `pos` of the concatenation into the buffer: 0, or a
 * negative errno (a segment shorter than it was said to be: -EIO). */
static int fill(struct replay *r, uint64_t pos, uint64_t want)
{
    size_t f = 0;
    while (f < r->nfiles && pos >= r->sizes[f])
        pos -= r->sizes[f++];
    if (f == r->nfiles) return -EIO;
    uint64_t left = r->sizes[f] - pos;
    size_t n = (size_t)(want < left ? want : left);
    if (n > BUF_BYTES) n = BUF_BYTES;
    ssize_t got = pread(r->fds[f], r->buf, n, (off_t)pos);
    if (got <= 0) return got < 0 ? -errno : -EIO;
    r->buf_len = (size_t)got;
    r->buf_sent = 0;
    return 0;
}

/* Sends what it can of the current piece. 1: piece done; 0: socket full; <0: error. */
static int send_piece(struct replay *r, size_t *budget)
{
    struct piece *p = &r->pieces[r->cur];
    for (;;) {
        if (p->text) {
            if (r->off == p->text_len) return 1;
            ssize_t n =
                send(r->io.fd, p->text + r->off, p->text_len - r->off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -errno;
            r->off += (uint64_t)n;
            continue;
        }
        if (r->buf_sent == r->buf_len) {
            if (r->off == p->count) return 1;
            if (*budget == 0) return 0;
            int err = fill(r, p->first + r->off, p->count - r->off);
            if (err < 0) return err;
        }
        ssize_t n = send(r->io.fd, r->buf + r->buf_sent, r->buf_len - r->buf_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        r->buf_sent += (size_t)n;
        r->off += (uint64_t)n;
        *budget = *budget > (size_t)n ? *budget - (size_t)n : 0;
    }
}

static void pump(struct replay *r)
{
    size_t budget = WAKE_BYTES;
    while (r->cur < r->npieces) {
        int st = send_piece(r, &budget);
        if (st < 0) {
            log_limited(LOG_INFO, 5, "replay: %s", strerror(-st));
            replay_close(r);
            return;
        }
        if (st == 0) break;
        r->cur++;
        r->off = 0;
    }
    if (r->cur == r->npieces) {
        shutdown(r->io.fd, SHUT_WR);
        replay_close(r);
        return;
    }
    timer_start(r->loop, &r->idle, loop_now_ms(r->loop) + REPLAY_IDLE_MS);
    /* Out of budget with the socket still writable: EPOLLOUT (edge) will not
     * fire again by itself, so come back on the next iteration. */
    if (budget == 0) loop_mod(r->loop, &r->io, EPOLLOUT | EPOLLRDHUP | EPOLLET);
}

static void on_event(struct io *io, uint32_t events)
{
    struct replay *r = list_entry(io, struct replay, io);
    if (events & (EPOLLERR | EPOLLHUP)) {
        replay_close(r);
        return;
    }
    pump(r);
}

static void on_idle(struct timer *t)
{
    struct replay *r = list_entry(t, struct replay, idle);
    replay_close(r);
}

/* The pieces of the response, from the Range verdict. */
static int plan(struct replay *r, uint64_t total, bool is_head, const char *range, size_t range_len)
{
    static const char common[] = "Content-Type: %s\r\nAccept-Ranges: bytes\r\n"
                                 "Access-Control-Allow-Origin: *\r\nCache-Control: no-cache\r\n"
                                 "Connection: close\r\n";
    struct byte_range rg[RANGE_MAX];
    size_t n = 0;
    enum range_verdict v =
        range ? range_parse(range, range_len, total, rg, RANGE_MAX, &n) : RANGE_NONE;
    unsigned long long t = (unsigned long long)total;
    int err;
    if (v == RANGE_UNSATISFIABLE) {
        static const char body[] = "{\"error\": \"range not satisfiable\"}\n";
        err = add_text(r,
                       "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */%llu\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s",
                       t, sizeof(body) - 1, is_head ? "" : body);
        return err;
    }
    if (v == RANGE_NONE) {
        err = add_text(r, "HTTP/1.1 200 OK\r\n");
        if (err == 0) err = add_text(r, common, "audio/ogg");
        if (err == 0) err = add_text(r, "Content-Length: %llu\r\n\r\n", t);
        if (err == 0 && !is_head && total) add_span(r, 0, total);
        return err;
    }
    if (n == 1) {
        unsigned long long a = (unsigned long long)rg[0].first, b = (unsigned long long)rg[0].last;
        err = add_text(r, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %llu-%llu/%llu\r\n",
                       a, b, t);
        if (err == 0) err = add_text(r, common, "audio/ogg");
        if (err == 0) err = add_text(r, "Content-Length: %llu\r\n\r\n", b - a + 1);
        if (err == 0 && !is_head) add_span(r, rg[0].first, rg[0].last - rg[0].first + 1);
        return err;
    }
    /* Several ranges: multipart/byteranges. The part heads are built first, so
     * that the Content-Length is known. */
    char heads[RANGE_MAX][160];
    uint64_t body = 0;
    for (size_t i = 0; i < n; i++) {
        int hl =
            snprintf(heads[i], sizeof(heads[i]),
                     "\r\n--%s\r\nContent-Type: audio/ogg\r\nContent-Range: bytes "
                     "%llu-%llu/%llu\r\n\r\n",
                     boundary, (unsigned long long)rg[i].first, (unsigned long long)rg[i].last, t);
        body += (uint64_t)hl + rg[i].last - rg[i].first + 1;
    }
    char tail[64];
    int tl = snprintf(tail, sizeof(tail), "\r\n--%s--\r\n", boundary);
    body += (uint64_t)tl;
    err = add_text(r, "HTTP/1.1 206 Partial Content\r\n");
    if (err == 0) {
        char ct[96];
        snprintf(ct, sizeof(ct), "multipart/byteranges; boundary=%s", boundary);
        err = add_text(r, common, ct);
    }
    if (err == 0) err = add_text(r, "Content-Length: %llu\r\n\r\n", (unsigned long long)body);
    for (size_t i = 0; err == 0 && !is_head && i < n; i++) {
        err = add_text(r, "%s", heads[i]);
        if (err == 0) add_span(r, rg[i].first, rg[i].last - rg[i].first + 1);
    }
    if (err == 0 && !is_head) err = add_text(r, "%s", tail);
    return err;
}

int replay_start(struct loop *loop, int fd, const struct replay_file *files, size_t n, bool is_head,
                 const char *range, size_t range_len)
{
    struct replay *r = calloc(1, sizeof(*r));
    if (!r || n > REPLAY_MAX_FILES) {
        free(r);
        close(fd);
        return -ENOMEM;
    }
    r->loop = loop;
    r->io.fd = fd;
    timer_init(&r->idle, on_idle);
    deferred_init(&r->dfr);
    list_push_back(&all, &r->node);
    count++;
    uint64_t total = 0;
    int err = 0;
    for (size_t i = 0; i < n; i++) {
        int f = open(files[i].path, O_RDONLY | O_CLOEXEC);
        if (f < 0) {
            err = -errno;
            log_warn("replay: cannot open %s: %s", files[i].path, strerror(errno));
            break;
        }
        r->fds[r->nfiles] = f;
        r->sizes[r->nfiles++] = files[i].bytes;
        total += files[i].bytes;
    }
    if (err == 0) err = plan(r, total, is_head, range, range_len);
    if (err == 0) err = loop_add(loop, &r->io, EPOLLOUT | EPOLLRDHUP | EPOLLET, on_event);
    if (err < 0) {
        static const char body[] = "{\"error\": \"recording unavailable\"}\n";
        char resp[256];
        int rl = snprintf(resp, sizeof(resp),
                          "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                          sizeof(body) - 1, body);
        ssize_t w = send(fd, resp, (size_t)rl, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        r->io.fd = -1;
        close(fd);
        replay_close(r);
        return err;
    }
    pump(r);
    return 0;
}

unsigned replay_count(void)
{
    return count;
}

void replay_close_all(void)
{
    while (!list_is_empty(&all))
        replay_close(list_entry(all.next, struct replay, node));
}
