#include "http/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "http/route.h"
#include "metrics/refusals.h"

enum { LINGER_MS = 2000, SWEEP_MS = 200, READ_BUDGET = 64 * 1024 };

/* Every conn that is not yet detached, for deadline sweeps. */
static struct list all_conns;
static size_t n_conns; /* allocated and not yet freed */
static struct timer sweep_timer;
static struct loop *sweep_loop;
static http_parser_settings parser_settings;

static void on_conn_event(struct io *io, uint32_t events);

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static struct conn *conn_of(http_parser *p)
{
    return p->data;
}

static uint32_t off_of(struct conn *c, const char *at)
{
    return (uint32_t)(at - c->buf);
}

/* Spans grow across calls because the head is kept in one contiguous buffer. */
static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->url.len == 0) c->url.off = off_of(c, at);
    c->url.len += (uint32_t)len;
    return 0;
}

/* Header callbacks after the head are trailer fields of a chunked body: they
 * are dropped (RFC 9110 6.5.1 allows it). Recorded, they would pass for
 * request headers, and when read through the scratch buffer their spans would
 * point outside buf. */
static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->is_head_done) return 0;
    struct span *names = c->header_names;
    if (c->nheaders == 0 || c->header_values[c->nheaders - 1].len > 0 ||
        names[c->nheaders - 1].off + names[c->nheaders - 1].len != off_of(c, at)) {
        if (c->nheaders == CONN_MAX_HEADERS) {
            c->is_too_large = true;
            return -1;
        }
        names[c->nheaders].off = off_of(c, at);
        names[c->nheaders].len = 0;
        c->header_values[c->nheaders].off = 0;
        c->header_values[c->nheaders].len = 0;
        c->nheaders++;
    }
    names[c->nheaders - 1].len += (uint32_t)len;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->is_head_done) return 0;
    struct span *v = &c->header_values[c->nheaders - 1];
    if (v->len == 0) v->off = off_of(c, at);
    v->len += (uint32_t)len;
    return 0;
}

static unsigned method_bit(unsigned m)
{
    switch (m) {
    case HTTP_GET:
        return ROUTE_GET;
    case HTTP_HEAD:
        return ROUTE_HEAD;
    case HTTP_POST:
        return ROUTE_POST;
    case HTTP_PUT:
        return ROUTE_PUT;
    case HTTP_SOURCE:
        return ROUTE_SOURCE;
    case HTTP_DELETE:
        return ROUTE_DELETE;
    case HTTP_OPTIONS:
        return ROUTE_OPTIONS;
    default:
        return ROUTE_OTHER;
    }
}

/* Whether span s, without optional whitespace around it, is `word` (case-
 * insensitive). */
static bool span_is(const struct conn *c, struct span s, const char *word)
{
    const char *v = c->buf + s.off;
    size_t len = s.len, wlen = strlen(word);
    while (len && (v[0] == ' ' || v[0] == '\t'))
        v++, len--;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    return len == wlen && strncasecmp(v, word, wlen) == 0;
}

static bool span_is_digits(const struct conn *c, struct span s)
{
    const char *v = c->buf + s.off;
    size_t len = s.len, ndigits = 0;
    while (len && (v[0] == ' ' || v[0] == '\t'))
        v++, len--;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    for (; ndigits < len; ndigits++)
        if (v[ndigits] < '0' || v[ndigits] > '9') return false;
    return ndigits > 0;
}

/* The body's framing must have one meaning (RFC 9112 6.1-6.3): at most one
 * Content-Length, of plain digits; Transfer-Encoding exactly "chunked", once;
 * never both. A smuggler relies on two parsers disagreeing, so anything else
 * is refused rather than interpreted. Works on the fields seen so far, which
 * lets respond_parse_error name the problem when http_parser stopped first. */
static const char *check_framing(const struct conn *c)
{
    unsigned ncl = 0, nte = 0;
    struct span cl = {0, 0}, te = {0, 0};
    for (unsigned i = 0; i < c->nheaders; i++) {
        struct span name = c->header_names[i];
        if (span_is(c, name, "Content-Length")) {
            ncl++;
            cl = c->header_values[i];
        } else if (span_is(c, name, "Transfer-Encoding")) {
            nte++;
            te = c->header_values[i];
        }
    }
    if (ncl && nte) return "both Content-Length and Transfer-Encoding";
    if (ncl > 1) return "more than one Content-Length";
    if (nte > 1) return "more than one Transfer-Encoding";
    if (ncl && !span_is_digits(c, cl)) return "Content-Length is not a number";
    if (nte && !span_is(c, te, "chunked")) return "Transfer-Encoding other than chunked";
    return NULL;
}

/* One pass over the raw head bytes received so far, up to the empty line
 * that ends the head: every line must end in CRLF (no bare LF, no bare CR),
 * and no field line may start with a space or tab (obs-fold, a continuation
 * of the previous field). http_parser tolerates all three when not built
 * strict, and another parser on the path may read them differently. Empty
 * lines before the request line are allowed (RFC 9112 2.2). */
/* The request line [p, p+n) ends in " HTTP/1.1" or " HTTP/1.0": http_parser,
 * not built strict, takes any four bytes after "H" for "HTTP/1.1", so a CRLF
 * CRLF could hide inside a request line and end the head early here; and it
 * takes several spaces where RFC 9112 has one. */
static bool is_request_line_version(const char *p, size_t n)
{
    /* one space before the version (http_parser would take several) */
    return n > 10 && p[n - 10] != ' ' &&
           (memcmp(p + n - 9, " HTTP/1.1", 9) == 0 || memcmp(p + n - 9, " HTTP/1.0", 9) == 0);
}

static const char *check_lines(const char *b, size_t n)
{
    size_t line = 0;     /* where the current line starts */
    unsigned nlines = 0; /* non-empty lines so far */
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\n') return "bare LF line ending (lines end in CRLF)";
        if (b[i] == '\r') {
            if (i + 1 == n) return NULL; /* the LF has not arrived yet */
            if (b[i + 1] != '\n') return "bare CR in the request head";
            if (i == line && nlines) return NULL; /* the empty line: end of head */
            if (i > line && nlines == 0 && !is_request_line_version(b + line, i - line))
                return "the request line must end in HTTP/1.1 or HTTP/1.0";
            if (i > line) nlines++;
            line = i + 2;
            i++;
        } else if (i == line && nlines && (b[i] == ' ' || b[i] == '\t')) {
            return "obs-fold (a header line starting with a space or tab)";
        }
    }
    return NULL;
}

/* Why the head is refused with 400 though http_parser let it through, or
 * NULL. Only the head is in buf[0, len) while it is read (bodies go through a
 * scratch buffer), and check_lines stops at its end. */
static const char *check_head(const struct conn *c)
{
    const char *why = check_lines(c->buf, c->len);
    return why ? why : check_framing(c);
}

/* Return 2 for publishers: the body is a stream without a length, and the
 * parser must stop at the end of the head. 1: no body expected. -1 (an error,
 * answered by respond_parse_error) when check_head refuses the head. */
static int on_headers_complete(http_parser *p)
{
    struct conn *c = conn_of(p);
    if (check_head(c)) return -1;
    c->method = method_bit(p->method);
    c->is_head_done = true;
    size_t len;
    const char *v = conn_header(c, "Expect", &len);
    c->has_expect_continue = v && len == 12 && strncasecmp(v, "100-continue", 12) == 0;
    if (c->method == ROUTE_PUT || c->method == ROUTE_SOURCE) return 2;
    if (c->limits->is_routing_on_head && c->method != ROUTE_GET && c->method != ROUTE_HEAD)
        return 2;
    if (c->method != ROUTE_POST) return 1;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > CONN_MAX_BODY) {
        c->is_too_large = true;
        return 1;
    }
    c->is_body_pending = true;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->body_len + len > CONN_MAX_BODY) {
        c->is_too_large = true;
        return -1;
    }
    char *b = realloc(c->body, c->body_len + len + 1);
    if (!b) return -1;
    memcpy(b + c->body_len, at, len);
    c->body = b;
    c->body_len += len;
    c->body[c->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = conn_of(p);
    c->is_message_done = true;
    c->is_body_pending = false;
    http_parser_pause(p, 1);
    return 0;
}

static void sweep(struct timer *t)
{
    uint64_t now = loop_now_ms(sweep_loop);
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &all_conns)
    {
        struct conn *c = list_entry(pos, struct conn, node);
        if (c->deadline_ms > now) continue;
        if (c->state == CONN_READING) refuse(REFUSE_TIMEOUT);
        conn_close(c);
    }
    timer_start(sweep_loop, t, now + SWEEP_MS);
}

void conn_module_init(struct loop *loop)
{
    list_init(&all_conns);
    sweep_loop = loop;
    timer_init(&sweep_timer, sweep);
    timer_start(loop, &sweep_timer, loop_now_ms(loop) + SWEEP_MS);
    memset(&parser_settings, 0, sizeof(parser_settings));
    parser_settings.on_url = on_url;
    parser_settings.on_header_field = on_header_field;
    parser_settings.on_header_value = on_header_value;
    parser_settings.on_headers_complete = on_headers_complete;
    parser_settings.on_body = on_body;
    parser_settings.on_message_complete = on_message_complete;
}

void conn_module_fini(void)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &all_conns) conn_close(list_entry(pos, struct conn, node));
    timer_stop(&sweep_timer);
}

static void end_handshake(struct conn *c)
{
    if (c->is_handshake_ended) return;
    c->is_handshake_ended = true;
    if (c->limits->on_handshake_end) c->limits->on_handshake_end(c);
}

static void conn_free(struct deferred *d)
{
    struct conn *c = list_entry(d, struct conn, dfr);
    end_handshake(c);
    free(c->buf);
    free(c->body);
    free(c);
    n_conns--;
}

void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSED) return;
    c->state = CONN_CLOSED;
    loop_del(c->loop, &c->io);
    close(c->io.fd);
    c->io.fd = -1;
    list_remove(&c->node);
    loop_defer(c->loop, &c->dfr, conn_free);
}

static void peer_name(struct conn *c, int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    out[0] = '\0';
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) return;
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
        memcpy(&c->peer_addr, &ss,
               ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    char host[46] = "?";
    unsigned port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, cap, "%s:%u", host, port);
}

static void finish_head(struct conn *c);
static int parse_more(struct conn *c, const char *data, size_t n);

int conn_start(struct loop *loop, int fd, const struct conn_limits *limits, conn_request_cb cb,
               void *owner)
{
    return conn_start_with(loop, fd, limits, cb, owner, -1, NULL, 0);
}

int conn_start_with(struct loop *loop, int fd, const struct conn_limits *limits, conn_request_cb cb,
                    void *owner, int tag, const void *pre, size_t len)
{
    if (len > limits->max_head) return -E2BIG;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) return -ENOMEM;
    c->cap = limits->max_head;
    c->buf = malloc(c->cap + 1);
    if (!c->buf) {
        free(c);
        return -ENOMEM;
    }
    c->io.fd = fd;
    c->loop = loop;
    c->limits = limits;
    c->on_request = cb;
    c->owner = owner;
    c->tag = tag;
    c->deadline_ms = loop_now_ms(loop) + limits->head_timeout_ms;
    deferred_init(&c->dfr);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    int err = loop_add(loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_conn_event);
    if (err < 0) {
        free(c->buf);
        free(c);
        return err;
    }
    peer_name(c, fd, c->peer, sizeof(c->peer));
    list_push_back(&all_conns, &c->node);
    n_conns++;
    if (len) {
        memcpy(c->buf, pre, len);
        c->len = len;
        if (parse_more(c, c->buf, len) > 0) finish_head(c);
    }
    return 0;
}

size_t conn_count(void)
{
    return n_conns;
}

unsigned conn_evict_oldest(unsigned max)
{
    unsigned n = 0;
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &all_conns)
    {
        if (n >= max) break;
        struct conn *c = list_entry(pos, struct conn, node);
        if (c->state != CONN_READING || c->is_head_done) continue;
        refuse(REFUSE_EVICTED);
        conn_close(c);
        n++;
    }
    return n;
}

bool http_list_next(const char *v, size_t len, size_t *pos, const char **item, size_t *ilen)
{
    size_t i = *pos;
    for (;;) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i >= len) {
            *pos = i;
            return false;
        }
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end > start) {
            *pos = i;
            *item = v + start;
            *ilen = end - start;
            return true;
        }
    }
}

const char *conn_header(const struct conn *c, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    for (unsigned i = 0; i < c->nheaders; i++) {
        if (c->header_names[i].len == nlen &&
            strncasecmp(c->buf + c->header_names[i].off, name, nlen) == 0) {
            *len = c->header_values[i].len;
            return c->buf + c->header_values[i].off;
        }
    }
    *len = 0;
    return NULL;
}

/* Answers a request we could not parse, with the most precise status. */
static void respond_parse_error(struct conn *c)
{
    refuse(REFUSE_BAD_REQUEST);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->is_too_large && c->is_head_done) {
        conn_respond_error(c, 413, "request body too large");
    } else if (c->is_too_large) {
        conn_respond_error(c, 431, "too many header fields");
    } else if (e == HPE_INVALID_METHOD) {
        conn_respond_error(c, 405, "unknown method");
    } else {
        /* Our own checks first: they name the problem more precisely than
         * http_parser (which refuses, e.g., a second Content-Length itself). */
        const char *why = c->is_head_done ? NULL : check_head(c);
        char msg[128];
        snprintf(msg, sizeof(msg), "malformed request: %s", why ? why : http_errno_description(e));
        conn_respond_error(c, 400, msg);
    }
}

/* Runs the parser over new bytes in buf. Returns 1 when the request is ready
 * for routing, 0 to wait for more, -1 when a response was sent. */
static int parse_more(struct conn *c, const char *data, size_t n)
{
    size_t done = http_parser_execute(&c->parser, &parser_settings, data, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->url.len > c->limits->max_url) {
        refuse(REFUSE_BAD_REQUEST);
        conn_respond_error(c, 414, "request target too long");
        return -1;
    }
    if (e != HPE_OK && e != HPE_PAUSED) {
        respond_parse_error(c);
        return -1;
    }
    if (c->is_too_large) {
        respond_parse_error(c);
        return -1;
    }
    if (data >= c->buf && data < c->buf + c->cap) c->parsed += done;
    if (c->is_head_done && !c->is_body_pending) {
        if (!c->body_start) c->body_start = c->parsed;
        return 1;
    }
    return 0;
}

static void finish_head(struct conn *c)
{
    const char *u = c->buf + c->url.off;
    const char *q = memchr(u, '?', c->url.len);
    c->path.off = c->url.off;
    c->path.len = q ? (uint32_t)(q - u) : c->url.len;
    list_remove(&c->node);
    list_init(&c->node);
    c->deadline_ms = UINT64_MAX;
    list_push_back(&all_conns, &c->node);
    c->is_routed = true;
    end_handshake(c);
    c->on_request(c);
}

/* Reads the head into buf; then (POST) the body through a scratch buffer. */
static void read_request(struct conn *c)
{
    char scratch[4096];
    for (size_t budget = READ_BUDGET; budget > 0;) {
        bool in_head = !c->is_head_done;
        if (in_head && c->len == c->cap) {
            refuse(REFUSE_BAD_REQUEST);
            conn_respond_error(c, c->url.len && !c->nheaders ? 414 : 431, "request head too large");
            return;
        }
        char *dst = in_head ? c->buf + c->len : scratch;
        size_t room = in_head ? c->cap - c->len : sizeof(scratch);
        ssize_t n = recv(c->io.fd, dst, room, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(c);
            return;
        }
        if (n < 0) return;
        budget = (size_t)n > budget ? 0 : budget - (size_t)n;
        if (in_head) c->len += (size_t)n;
        int r = parse_more(c, dst, (size_t)n);
        if (r < 0) return;
        if (r > 0) {
            /* One access line per request: here, where the head came from the
             * socket, not again in the master for a worker's hand-off. */
            if (log_threshold >= LOG_DEBUG) {
                char path[256];
                log_escape(path, sizeof(path), c->buf + c->url.off, c->url.len);
                path[strcspn(path, "?")] = '\0'; /* no keys in the log */
                log_debug("access: %s %s from %s", http_method_str(c->parser.method), path,
                          c->peer);
            }
            finish_head(c);
            return;
        }
    }
    /* Budget spent, bytes may still be queued: edge-triggered epoll would not
     * report them again, so re-arm (a MOD reports a ready socket anew). */
    loop_mod(c->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
}

static void write_response(struct conn *c)
{
    while (c->out_off < c->len) {
        ssize_t n = send(c->io.fd, c->buf + c->out_off, c->len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n < 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    /* Lingering close: stop sending, drain what the client still sends, so
     * that our response is not destroyed by a reset. */
    shutdown(c->io.fd, SHUT_WR);
    c->state = CONN_LINGERING;
    c->deadline_ms = loop_now_ms(c->loop) + LINGER_MS;
}

static void drain_input(struct conn *c)
{
    char scratch[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(c->io.fd, scratch, sizeof(scratch), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(c);
            return;
        }
        if (n < 0) return;
    }
}

static void on_conn_event(struct io *io, uint32_t events)
{
    struct conn *c = list_entry(io, struct conn, io);
    /* Once routed, a conn still READING (its owner answers later) reads no
     * more: bytes after the request, a pipelined one included, wait in the
     * socket and are drained unparsed while lingering. */
    if (c->state == CONN_READING && !c->is_routed &&
        (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        read_request(c);
    if (c->state == CONN_WRITING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) write_response(c);
    if (c->state == CONN_LINGERING && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        drain_input(c);
}

void conn_respond(struct conn *c, int status, const char *content_type, const char *extra_headers,
                  const void *body, size_t len)
{
    if (c->state != CONN_READING) return;
    char head[1024], clen[48] = "";
    /* a 304 has no body and names no length (RFC 9110 8.6); the caller may
     * choose its own Cache-Control (web pages revalidate), else no-store */
    if (status != 304) snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", len);
    bool has_cache = extra_headers && strstr(extra_headers, "Cache-Control:");
    int n = snprintf(
        head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%sConnection: close\r\n%s\r\n",
        status, http_status_text(status), content_type ? content_type : "text/plain", clen,
        has_cache ? "" : "Cache-Control: no-store\r\n", extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= sizeof(head)) n = 0;
    bool is_head = c->method == ROUTE_HEAD || status == 304;
    size_t total = (size_t)n + (is_head ? 0 : len);
    char *out = malloc(total + 1);
    if (!out) {
        conn_close(c);
        return;
    }
    memcpy(out, head, (size_t)n);
    if (!is_head && len) memcpy(out + n, body, len);
    free(c->buf);
    c->buf = out;
    c->len = total;
    c->cap = total;
    c->out_off = 0;
    c->nheaders = 0;
    c->state = CONN_WRITING;
    c->deadline_ms = loop_now_ms(c->loop) + c->limits->head_timeout_ms;
    write_response(c);
}

void conn_respond_error(struct conn *c, int status, const char *msg)
{
    char body[512];
    char esc[256];
    size_t o = 0;
    for (const char *p = msg; *p && o + 2 < sizeof(esc); p++) {
        if (*p == '"' || *p == '\\') esc[o++] = '\\';
        esc[o++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    }
    esc[o] = '\0';
    int n = snprintf(body, sizeof(body), "{\"error\": \"%s\"}\n", esc);
    conn_respond(c, status, "application/json", NULL, body, (size_t)n);
}

int conn_detach(struct conn *c, void *rest, size_t cap, size_t *rest_len)
{
    size_t have = c->len > c->body_start ? c->len - c->body_start : 0;
    if (have > cap) have = cap;
    if (have) memcpy(rest, c->buf + c->body_start, have);
    *rest_len = have;
    int fd = c->io.fd;
    loop_del(c->loop, &c->io);
    c->io.fd = -1;
    c->state = CONN_CLOSED;
    list_remove(&c->node);
    loop_defer(c->loop, &c->dfr, conn_free);
    return fd;
}
