/* Fuzz driver for http/conn.c: the request head parser and its strict checks, through the public
 * API, on a real loop, without the network.
 *
 * Each input is one connection. Its first byte chooses how the connection is driven, the rest is
 * what the client sends:
 *   bits 0-1  what on_request does: 0 conn_respond 200, 1 conn_respond_error 404 with the path
 *             as the message, 2 conn_detach (the driver closes the fd), 3 nothing (left routed)
 *   bit  2    limits.is_routing_on_head (a worker's conns)
 *   bit  3    the client keeps its side open (else it half-closes after sending)
 *   bits 4-7  k: the first k/15 of the bytes are handed to conn_start_with as already read (a
 *             worker's hand-off); the rest arrive through the socket
 * The server end is one end of an AF_UNIX socketpair, the client the other. The loop is stepped
 * until the client reads end of stream (or a few idle steps); then conn_module_fini() closes
 * whatever is left, the deferred frees run, and the server fd must be closed.
 *
 * Invariants (abort on violation):
 * - on_request is called at most once, with the conn READING and routed;
 * - the head buffer holds exactly the bytes the client sent, in order;
 * - url, path and every header span lie inside the head; the path is the url up to its '?';
 * - a routed head ends in CRLF CRLF, has no bare LF or CR and no obs-fold, and not both
 *   Content-Length and Transfer-Encoding, nor two of either (the strict rules of conn.h);
 * - a body only for POST, NUL-terminated, at most CONN_MAX_BODY, of its Content-Length;
 * - conn_start_with refuses only a pre-read part over max_head (-E2BIG);
 * - the client receives either nothing or exactly one response: "HTTP/1.1 " and a 3-digit
 *   status (ours when routed, a 4xx when not), a Content-Length matching the body (none for
 *   HEAD), and a JSON error body that parses;
 * - every fd and conn is released (ASan reports leaked conns).
 * Captures of the router's patterns (a copy of api/router.c's table) lie inside the path, and
 * an Authorization: Basic value goes through api_base64_decode.
 *
 * Bugs this driver found, both fixed, their reproducers kept in the corpus:
 *   A  trailer fields recorded as header spans (trailer-* inputs);
 *   B  http_parser (Debian's 2.9.4, not built strict) accepts any four bytes after the 'H' of the
 *      version, so "GET / H\r\n\r\n1.1\r\nX: a\n..." was HTTP/1.1 with headers after a CRLF CRLF
 *      that ended the head for check_lines(): the request line must now end in HTTP/1.x
 *      (known-b-* inputs, now refused with 400). */
#include "http/conn.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/api.h"
#include "core/log.h"
#include "http/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: says which line, then aborts (libFuzzer keeps the input as a crash). */
#define FAIL() fail_at(__LINE__)
__attribute__((noreturn)) static void fail_at(int line)
{
    fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
    abort();
}

enum { MAX_INPUT = 64 * 1024, MAX_STEPS = 16, RESPONSE_CAP = 16 * 1024 };
enum action { RESPOND_OK, RESPOND_ERROR, DETACH, NOTHING };

static const struct route routes[] = {
    {"/", ROUTE_GET | ROUTE_HEAD, 0},
    {"/spaces/{}/live.opus", ROUTE_GET | ROUTE_HEAD, 1},
    {"/spaces/{}/live.opus", ROUTE_PUT | ROUTE_SOURCE, 2},
    {"/api/spaces", ROUTE_GET | ROUTE_HEAD | ROUTE_POST, 3},
    {"/api/spaces/{}", ROUTE_GET | ROUTE_HEAD, 4},
    {"/api/spaces/{}/events", ROUTE_GET, 5},
    {"/metrics", ROUTE_GET | ROUTE_HEAD, 6},
    {"/api/node", ROUTE_GET | ROUTE_HEAD, 7},
};

/* One input's state. */
static struct loop *loop;
static struct timer stop_timer;
static struct conn_limits limits;
static enum action action;
static const uint8_t *stream; /* what the client sends */
static size_t stream_len;
static int calls;
static unsigned routed_method;
static int srv_fd, detached_fd;

static void on_stop(struct timer *t)
{
    loop_stop(loop);
}

/* One loop iteration: epoll without waiting, then the stop timer, then the deferred frees. */
static void step(void)
{
    timer_start(loop, &stop_timer, loop_now_ms(loop));
    if (loop_run(loop) < 0) FAIL();
}

static int check_span(const struct conn *c, struct span s, size_t end)
{
    return (size_t)s.off + s.len <= end;
}

/* Whether span s, trimmed of blanks, is `word` (case-insensitive). */
static int span_is(const struct conn *c, struct span s, const char *word)
{
    const char *v = c->buf + s.off;
    size_t len = s.len, wlen = strlen(word);

    while (len && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    return len == wlen && strncasecmp(v, word, len) == 0;
}

/* The end of the head (after its CRLF CRLF), found independently of conn.c; 0 if none. */
static size_t head_end(const char *b, size_t n)
{
    size_t i = 0;

    while (i + 1 < n && b[i] == '\r' && b[i + 1] == '\n')
        i += 2;
    for (; i + 3 < n; i++)
        if (memcmp(b + i, "\r\n\r\n", 4) == 0) return i + 4;
    return 0;
}

/* The strict line rules over the head: CRLF only, no line after the first starting blank. */
static void check_lines(const char *b, size_t end)
{
    unsigned nlines = 0; /* non-empty lines so far */

    for (size_t i = 0; i < end; i++) {
        if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r')) FAIL();
        if (b[i] == '\r' && (i + 1 == end || b[i + 1] != '\n')) FAIL();
    }
    for (size_t line = 0; line < end;) {
        const char *lf = memchr(b + line, '\n', end - line);
        size_t next = (size_t)(lf - b) + 1;
        if (next - line > 2) { /* more than its CRLF */
            if (nlines && (b[line] == ' ' || b[line] == '\t')) FAIL();
            nlines++;
        }
        line = next;
    }
}

static void check_headers(const struct conn *c, size_t end)
{
    unsigned ncl = 0, nte = 0;
    size_t len;
    const char *v;

    if (c->nheaders > CONN_MAX_HEADERS) FAIL();
    for (unsigned i = 0; i < c->nheaders; i++) {
        if (!check_span(c, c->header_names[i], end) || !check_span(c, c->header_values[i], end))
            FAIL();
        ncl += span_is(c, c->header_names[i], "Content-Length");
        nte += span_is(c, c->header_names[i], "Transfer-Encoding");
    }
    if ((ncl && nte) || ncl > 1 || nte > 1) FAIL();
    v = conn_header(c, "hOsT", &len);
    if (v && (v < c->buf || v + len > c->buf + end)) FAIL();
    if (!v && len != 0) FAIL();
}

static void check_url(const struct conn *c, size_t end)
{
    const char *u = c->buf + c->url.off;

    if (!check_span(c, c->url, end) || c->url.len > limits.max_url) FAIL();
    if (c->path.off != c->url.off || c->path.len > c->url.len) FAIL();
    if (memchr(u, '?', c->path.len)) FAIL();
    if (c->path.len < c->url.len && u[c->path.len] != '?') FAIL();
}

static void check_body(const struct conn *c)
{
    size_t len;
    const char *cl = conn_header(c, "Content-Length", &len);
    char digits[32];

    if (!c->body) {
        if (c->body_len) FAIL();
        return;
    }
    if (c->method != ROUTE_POST || limits.is_routing_on_head) FAIL();
    if (c->body_len > CONN_MAX_BODY || c->body[c->body_len] != '\0') FAIL();
    if (cl && len < sizeof(digits)) {
        memcpy(digits, cl, len);
        digits[len] = '\0';
        if (strtoull(digits, NULL, 10) != c->body_len) FAIL();
    }
}

/* The router's patterns: every capture is a non-empty span of the path. */
static void check_route(const struct conn *c)
{
    const char *p = conn_str(c, c->path);
    struct route_match m;

    if (route_find(routes, sizeof(routes) / sizeof(routes[0]), c->method, p, c->path.len, &m) != 0)
        FAIL();
    if (m.ncaptures > ROUTE_MAX_CAPTURES) FAIL();
    for (size_t i = 0; i < m.ncaptures; i++)
        if (m.captures[i].s < p || m.captures[i].s + m.captures[i].len > p + c->path.len ||
            m.captures[i].len == 0)
            FAIL();
}

static void check_auth(const struct conn *c)
{
    size_t len;
    const char *v = conn_header(c, "Authorization", &len);
    char out[64];

    if (!v || len < 6 || strncasecmp(v, "Basic ", 6) != 0) return;
    if (api_base64_decode(v + 6, len - 6, out, sizeof(out)) > (int)sizeof(out)) FAIL();
}

/* Bug B: whether the request line's version is spelled out (or absent, HTTP/0.9). */
static int has_literal_version(const struct conn *c)
{
    size_t at = (size_t)c->url.off + c->url.len, left = c->len - at;
    const char *p = c->buf + at;

    return (left >= 6 && memcmp(p, " HTTP/", 6) == 0) ||
           (left >= 5 && memcmp(p, " ICE/", 5) == 0) || (left >= 2 && memcmp(p, "\r\n", 2) == 0);
}

static void check_request(const struct conn *c)
{
    size_t end;

    if (c->state != CONN_READING || !c->is_routed || !c->is_head_done) FAIL();
    if (c->len > stream_len || c->len > c->cap || memcmp(c->buf, stream, c->len) != 0) FAIL();
    end = head_end(c->buf, c->len);
    if (end == 0) FAIL();
    check_lines(c->buf, end);
    check_url(c, end);
    if (!has_literal_version(c)) FAIL(); /* B */
    check_headers(c, end);
    if (__builtin_popcount(c->method) != 1 || c->method > ROUTE_OTHER) FAIL();
    check_body(c);
    check_route(c);
    check_auth(c);
}

static void on_request(struct conn *c)
{
    char msg[300], rest[128];
    size_t rest_len = 0;

    if (++calls != 1) FAIL();
    check_request(c);
    routed_method = c->method;
    switch (action) {
    case RESPOND_OK:
        conn_respond(c, 200, "text/plain", "X-Fuzz: 1\r\n", "hello", 5);
        break;
    case RESPOND_ERROR:
        snprintf(msg, sizeof(msg), "%.*s", (int)(c->path.len < 299 ? c->path.len : 299),
                 conn_str(c, c->path));
        conn_respond_error(c, 404, msg);
        break;
    case DETACH:
        detached_fd = conn_detach(c, rest, sizeof(rest), &rest_len);
        if (detached_fd != srv_fd || rest_len > sizeof(rest)) FAIL();
        close(detached_fd);
        break;
    case NOTHING:
        break;
    }
}

/* Reads what the client got; returns 1 at end of stream. A reset counts as the end: the server
 * closes with unread bytes after a detach (the driver closes the fd) or an unanswered request. */
static int drain_client(int fd, char *buf, size_t *len)
{
    for (;;) {
        ssize_t n = recv(fd, buf + *len, RESPONSE_CAP - *len, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return 1;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            FAIL();
        }
        *len += (size_t)n;
        if (*len == RESPONSE_CAP) FAIL(); /* no response of ours is this long */
    }
}

/* The body of an error response is {"error": "..."}. */
static void check_error_body(const char *body, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(body, len);

    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "error"))) FAIL();
    cJSON_Delete(j);
}

/* Nothing, or exactly one response with a consistent Content-Length. */
static void check_response(char *r, size_t len)
{
    const char *end, *cl;
    size_t head, body;
    int status;

    if (len == 0) {
        if (calls && (action == RESPOND_OK || action == RESPOND_ERROR)) FAIL();
        return;
    }
    r[len] = '\0';
    if (len < 13 || memcmp(r, "HTTP/1.1 ", 9) != 0) FAIL();
    if (r[9] < '1' || r[9] > '5' || r[10] < '0' || r[10] > '9' || r[11] < '0' || r[11] > '9' ||
        r[12] != ' ')
        FAIL();
    status = (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
    if (!calls && (status < 400 || status > 499)) FAIL();
    if (calls && status != (action == RESPOND_OK ? 200 : 404)) FAIL();
    end = strstr(r, "\r\n\r\n");
    cl = strstr(r, "\r\nContent-Length: ");
    if (!end || !cl || cl > end) FAIL();
    head = (size_t)(end + 4 - r);
    body = len - head;
    if (calls && routed_method == ROUTE_HEAD) {
        if (body != 0) FAIL();
        return;
    }
    /* Unrouted, a HEAD request refused after its head (414) gets no body either. */
    if (body != strtoul(cl + 18, NULL, 10) && !(body == 0 && !calls)) FAIL();
    if (body && status >= 400) check_error_body(end + 4, body);
}

static void setup_once(void)
{
    if (loop) return;
    log_threshold = LOG_ERROR;
    loop = loop_new();
    if (!loop) FAIL();
    timer_init(&stop_timer, on_stop);
    limits = (struct conn_limits){.max_head = 2048, .max_url = 512, .head_timeout_ms = 5000};
}

/* Sends the rest of the stream from `off`; returns the new offset. */
static size_t send_some(int fd, size_t off)
{
    while (off < stream_len) {
        ssize_t n = send(fd, stream + off, stream_len - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += (size_t)n;
    }
    return off;
}

static void run_conn(int cli, size_t pre, int is_half_closing, char *resp, size_t *resp_len)
{
    size_t sent = send_some(cli, pre);
    int rc, is_eof = 0;

    if (sent == stream_len && is_half_closing) shutdown(cli, SHUT_WR);
    rc = conn_start_with(loop, srv_fd, &limits, on_request, NULL, 7, stream, pre);
    if (rc < 0) {
        if (rc != -E2BIG || pre <= limits.max_head) FAIL();
        close(srv_fd);
        return;
    }
    for (int i = 0; i < MAX_STEPS && !is_eof; i++) {
        step();
        if (sent < stream_len) {
            sent = send_some(cli, sent);
            if (sent == stream_len && is_half_closing) shutdown(cli, SHUT_WR);
        }
        is_eof = drain_client(cli, resp, resp_len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char resp[RESPONSE_CAP + 1];
    size_t resp_len = 0, pre;
    int sv[2];

    if (size < 1 || size > MAX_INPUT) return 0;
    setup_once();
    action = (enum action)(data[0] & 3);
    limits.is_routing_on_head = data[0] & 4;
    stream = data + 1;
    stream_len = size - 1;
    pre = stream_len * (data[0] >> 4) / 15;
    calls = 0;
    routed_method = 0;
    detached_fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) FAIL();
    srv_fd = sv[0];
    conn_module_init(loop);
    run_conn(sv[1], pre, !(data[0] & 8), resp, &resp_len);
    conn_module_fini();
    loop_run_once(loop);
    if (fcntl(srv_fd, F_GETFD) != -1 || errno != EBADF) FAIL(); /* the server end is closed */
    drain_client(sv[1], resp, &resp_len);
    close(sv[1]);
    check_response(resp, resp_len);
    return 0;
}
