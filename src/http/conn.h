/* struct conn: one HTTP connection from accept until its request is handled.
 *
 *   accept -> READING (head parsed by http_parser, deadline, size limits)
 *          -> on_request(conn)   the node routes it and either
 *               a) answers: conn_respond() -> WRITING -> LINGERING -> closed
 *               b) takes the socket: conn_detach() -> a listener or publisher
 *                  owns the fd; the conn (and its head buffer) is freed
 *
 * Limits: the request target over `max_url` bytes is 414, a head over
 * `max_head` bytes or over CONN_MAX_HEADERS fields is 431, a malformed request
 * is 400, and a head not complete within the deadline is closed silently (a
 * 408 would be wasted on a slow-loris). Bodies (POST) are collected up to
 * CONN_MAX_BODY bytes (413 above).
 *
 * Strict: so that no proxy in front of us can read a request differently
 * (request smuggling), these are 400 too, though http_parser tolerates some:
 * Content-Length with Transfer-Encoding; more than one Content-Length (even
 * equal) or one that is not plain digits; Transfer-Encoding other than exactly
 * "chunked" (case-insensitive), or more than once; obs-fold (a line starting
 * with a space or tab); a line ending in a bare LF, or a bare CR. The raw head
 * bytes are checked in one pass when the head is complete (check_head).
 * Every refusal here counts refuse(REFUSE_BAD_REQUEST), answers a JSON error
 * naming the problem, and closes.
 *
 * Pipelining is bounded at one request per connection: the parser pauses at
 * the end of the first message and is never resumed. Bytes after it (a
 * pipelined request, or a smuggled one after a refused head) are never parsed
 * nor routed: they are not read at all while the owner answers (is_routed),
 * then drained unparsed while lingering (at most LINGER_MS), after our
 * `Connection: close` response. A handed-off head (conn_start_with) obeys the
 * same rule; conn_detach passes such bytes on to the new owner as raw bytes.
 * Thread: the loop that accepted it. Memory: one allocation for the struct plus
 * one for the head buffer, both released once the request is handled.
 */
#ifndef TRIBUNE_HTTP_CONN_H
#define TRIBUNE_HTTP_CONN_H

#include <http_parser.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/list.h"
#include "core/loop.h"

enum { CONN_MAX_HEADERS = 100, CONN_MAX_BODY = 64 * 1024 };

struct conn;

struct conn_limits {
    size_t max_head;
    size_t max_url;
    uint64_t head_timeout_ms;
    /* Route every request once its head is complete, never reading a body
     * (a worker hands such requests to the master with the raw bytes). */
    bool is_routing_on_head;
    /* Optional: called once per connection when its handshake ends, i.e.
     * just before on_request, or when it is closed without one (deadline,
     * bad request, eviction, client gone). Per-address accounting of
     * handshakes in progress hangs here (guard/addr.h; the slot in `tag`). */
    void (*on_handshake_end)(struct conn *c);
};

struct span {
    uint32_t off, len; /* into conn->buf */
};

struct conn;
typedef void (*conn_request_cb)(struct conn *c);

enum conn_state { CONN_READING, CONN_WRITING, CONN_LINGERING, CONN_CLOSED };

struct conn {
    struct io io;          /* private */
    struct loop *loop;     /* read-only */
    struct deferred dfr;   /* private */
    struct list node;      /* private: in the deadline list */
    enum conn_state state; /* read-only */
    uint64_t deadline_ms;  /* private */
    const struct conn_limits *limits;
    conn_request_cb on_request; /* private */
    void *owner;                /* public: the node's context */
    int tag;                    /* public: the caller's number (e.g. the worker it came from) */
    http_parser parser;         /* private */
    char *buf;                  /* head bytes, then the response */
    size_t cap, len, parsed;    /* private */
    size_t out_off;             /* private: bytes of the response written */
    struct span url, path;      /* read-only after on_request */
    struct span header_names[CONN_MAX_HEADERS], header_values[CONN_MAX_HEADERS];
    unsigned nheaders; /* read-only */
    char *body;        /* read-only: POST body (NUL-terminated) */
    size_t body_len;   /* read-only */
    size_t body_start; /* private: first byte after the head */
    unsigned method;   /* read-only: enum route_method bit */
    bool is_head_done, is_message_done, is_body_pending, is_too_large;
    bool is_routed;           /* private: on_request was called (once, ever) */
    bool is_handshake_ended;  /* private: on_handshake_end was called */
    bool has_expect_continue; /* read-only */
    char peer[64];            /* read-only: "addr:port" for logs */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer_addr; /* read-only: the peer (sa_family 0 if unknown) */
};

/* Initialises the deadline list and its sweep timer for `loop`. */
void conn_module_init(struct loop *loop);
void conn_module_fini(void);

/* Takes over `fd` (a just-accepted non-blocking socket). Returns 0 or a
 * negative errno, in which case the caller closes `fd`. */
int conn_start(struct loop *loop, int fd, const struct conn_limits *limits, conn_request_cb cb,
               void *owner);

/* Like conn_start, for a connection whose first `len` bytes were already
 * read by someone else (a worker's handoff): they are parsed first, and the
 * request may be routed before this returns. */
int conn_start_with(struct loop *loop, int fd, const struct conn_limits *limits, conn_request_cb cb,
                    void *owner, int tag, const void *pre, size_t len);

/* Connections of this process not yet freed (each holds a descriptor until
 * closed or detached). */
size_t conn_count(void);
/* Closes up to `max` connections still reading their request head, oldest
 * first (when descriptors run out, handshakes go before listeners); each is
 * counted as refused (evicted). Returns how many were closed. */
unsigned conn_evict_oldest(unsigned max);

/* Walks the comma-separated elements of a header value (RFC 9110 5.6.1):
 * each call stores the next non-empty element, trimmed of spaces and tabs, in
 * *item and *ilen and returns true; false at the end. *pos starts at 0. Pure. */
bool http_list_next(const char *v, size_t len, size_t *pos, const char **item, size_t *ilen);

/* Finds header `name` (case-insensitive). Returns its value or NULL; *len set. */
const char *conn_header(const struct conn *c, const char *name, size_t *len);
static inline const char *conn_str(const struct conn *c, struct span s)
{
    return c->buf + s.off;
}

/* Sends a complete response and closes after it (lingering to drain input).
 * `extra_headers` is either NULL or CRLF-terminated header lines. The body is
 * copied. */
void conn_respond(struct conn *c, int status, const char *content_type, const char *extra_headers,
                  const void *body, size_t len);
/* A JSON error body {"error": msg}. */
void conn_respond_error(struct conn *c, int status, const char *msg);

/* Gives the socket to a new owner: unregisters it from the loop, copies the
 * bytes already received after the head (at most `cap`) to `rest`, stores
 * their count in *rest_len, and frees the conn later. Returns the fd. */
int conn_detach(struct conn *c, void *rest, size_t cap, size_t *rest_len);

/* Closes without a response. */
void conn_close(struct conn *c);

const char *http_status_text(int status);

#endif
