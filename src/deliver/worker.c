#include "deliver/worker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config/config.h"
#include "core/log.h"
#include "deliver/channel.h"
#include "deliver/chunk.h"
#include "deliver/feed.h"
#include "deliver/fleet.h"
#include "guard/addr.h"
#include "guard/admit.h"
#include "guard/ticket.h"
#include "http/conn.h"
#include "http/route.h"
#include "http/ws.h"
#include "net/listen.h"
#include "metrics/refusals.h"
#include "relay/steer.h"

enum { SWEEP_MS = 100, CHAN_BATCH = 256, CONFIG_WAIT_MS = 10000, ADDR_TABLE_LOG2 = 14 };

struct wfeed {
    struct list node;
    char id[CHAN_SPACE_MAX];
    bool require_ticket; /* CHAN_SPACE_REQUIRE_TICKET: joins need a valid ticket */
    struct feed feed;    /* progressive Ogg/Opus */
    struct feed ws;      /* WebSocket (GET /spaces/{id}/ws) */
};

struct worker {
    struct loop *loop;
    struct config cfg;
    struct conn_limits limits;
    struct acceptor acceptor;
    struct io chan, sigio;
    struct timer sweep;
    struct list feeds;
    unsigned long listeners; /* over all feeds, as of the last sweep */
    unsigned nworkers;       /* in this node (fleet_size of the same settings) */
    unsigned nbuckets;       /* write coalescing for every feed (worker_buckets) */
    unsigned char *buf;      /* one received channel message */
    struct admit admit;      /* this worker's share of the node's admission limits */
    struct addr_table addrs; /* per client address: join rate, handshakes in flight */
    uint64_t base_fds;       /* descriptors open before any client (loop, channel, port...) */
    bool has_conns;          /* conn_module_init ran (it did not if no settings came) */
    bool has_ticket_key;     /* CHAN_TICKET_KEY came (it does before any space) */
    struct ticket_key ticket_key;
    char steer[STEER_URL_MAX + 1]; /* CHAN_STEER: the edge joins refused for capacity go to */
    /* WebSocket listeners that are edges' upstream connections (X-Tribune-Edge):
     * when one closes, the master forgets that edge's report at once (CHAN_EDGE_GONE)
     * instead of counting its listeners until the report expires */
    struct edge_up {
        int fd;
        char space[CHAN_SPACE_MAX];
        char edge[WORKER_EDGE_ID_MAX + 1];
    } edges[WORKER_EDGES_MAX];
    unsigned nedges;
};

enum { R_OGG, R_WS };

/* Drops socket fd from the edges' table; true when it was there (and *out got it). */
static bool forget_edge_as(struct worker *w, int fd, struct edge_up *out)
{
    for (unsigned i = 0; i < w->nedges; i++) {
        if (w->edges[i].fd != fd) continue;
        if (out) *out = w->edges[i];
        w->edges[i] = w->edges[--w->nedges];
        return true;
    }
    return false;
}

static void forget_edge(struct worker *w, int fd)
{
    forget_edge_as(w, fd, NULL);
}

/* A listener of feed f closes: if it was an edge's upstream, tell the master. */
static void on_listener_close(struct feed *f, int fd)
{
    struct worker *w = f->close_arg;
    struct edge_up e;
    if (!w->nedges || !forget_edge_as(w, fd, &e)) return;
    struct chan_msg m = {.type = CHAN_EDGE_GONE, .len = (uint32_t)strlen(e.edge)};
    memcpy(m.space, e.space, sizeof(m.space));
    chan_send(w->chan.fd, &m, e.edge, -1);
}

/* Remembers listener `fd` of space `id` as edge `edge`'s upstream (a bounded table:
 * beyond it, that edge's report simply expires as before). */
static void remember_edge(struct worker *w, int fd, const char *id, const char *edge, size_t len)
{
    if (w->nedges == WORKER_EDGES_MAX || len == 0 || len > WORKER_EDGE_ID_MAX) return;
    struct edge_up *e = &w->edges[w->nedges++];
    e->fd = fd;
    snprintf(e->space, sizeof(e->space), "%s", id);
    memcpy(e->edge, edge, len);
    e->edge[len] = '\0';
}

static const struct route routes[] = {
    {"/spaces/{}/live.opus", ROUTE_GET | ROUTE_HEAD, R_OGG},
    {"/spaces/{}/ws", ROUTE_GET, R_WS},
};

unsigned worker_buckets(unsigned current, unsigned long listeners, int chunk_ms,
                        int write_interval_ms)
{
    unsigned max =
        chunk_ms > 0 && write_interval_ms > 0 ? (unsigned)(write_interval_ms / chunk_ms) : 1;
    if (max < 1) max = 1;
    if (max > FEED_MAX_BUCKETS) max = FEED_MAX_BUCKETS;
    if (listeners >= WORKER_COALESCE_ABOVE) return max;
    if (listeners < WORKER_COALESCE_BELOW) return 1;
    return current > 1 ? max : 1;
}

static struct wfeed *find_feed(struct worker *w, const char *id, size_t len)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->feeds)
    {
        struct wfeed *wf = list_entry(pos, struct wfeed, node);
        if (strlen(wf->id) == len && memcmp(wf->id, id, len) == 0) return wf;
    }
    return NULL;
}

static struct wfeed *add_feed(struct worker *w, const char *id)
{
    struct wfeed *wf = find_feed(w, id, strlen(id));
    if (wf) return wf;
    wf = calloc(1, sizeof(*wf));
    if (!wf) return NULL;
    const struct config *cfg = &w->cfg;
    size_t chunk_ms = cfg->chunk_ms > 0 ? (size_t)cfg->chunk_ms : 100;
    if (feed_init(&wf->feed, w->loop, (size_t)cfg->ring_ms / chunk_ms,
                  ((size_t)cfg->burst_ms + chunk_ms - 1) / chunk_ms, feed_ogg_response_head) < 0) {
        free(wf);
        return NULL;
    }
    if (feed_init(&wf->ws, w->loop, (size_t)cfg->ring_ms / FEED_WS_CHUNK_MS, FEED_WS_BURST_CHUNKS,
                  feed_ws_response_head) < 0) {
        feed_fini(&wf->feed);
        free(wf);
        return NULL;
    }
    wf->ws.is_ws = true;
    wf->ws.on_close = on_listener_close;
    wf->ws.close_arg = w;
    struct feed *both[2] = {&wf->feed, &wf->ws};
    for (int i = 0; i < 2; i++) {
        both[i]->stall_timeout_ms = (uint64_t)cfg->stall_timeout_ms;
        both[i]->sndbuf = cfg->sndbuf_bytes;
        both[i]->nbuckets = w->nbuckets;
    }
    wf->feed.lag_chunks = (unsigned)(FEED_LAG_MS / chunk_ms);
    wf->ws.lag_chunks = FEED_LAG_MS / FEED_WS_CHUNK_MS;
    snprintf(wf->id, sizeof(wf->id), "%s", id);
    list_push_back(&w->feeds, &wf->node);
    return wf;
}

/* Hands a request this worker does not serve to the master, with every byte
 * read so far; the master parses it again from the start. */
static void hand_off(struct worker *w, struct conn *c)
{
    struct chan_msg m;
    chan_msg_init(&m, CHAN_HANDOFF, NULL, (uint32_t)c->len);
    int err = chan_send(w->chan.fd, &m, c->buf, c->io.fd);
    if (err < 0) {
        log_limited(LOG_WARN, 1, "worker: cannot hand a request to the master: %s", strerror(-err));
        refuse(REFUSE_BUSY);
        conn_respond_error(c, 503, "server busy, retry");
        return;
    }
    conn_close(c);
}

/* One send() of the pre-built 503 with a jittered Retry-After, then FIN;
 * the caller closes `fd`. */
static void send_busy(struct worker *w, int fd)
{
    size_t len;
    const char *resp = admit_response(&w->admit, loop_now_ms(w->loop), &len);
    ssize_t n = send(fd, resp, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
    shutdown(fd, SHUT_WR);
}

/* A join refused for capacity, with a steering target (relay/steer.h): one send()
 * of a 302 to the same space at that edge, built on the stack, then FIN; the caller
 * closes `fd`. */
static void send_steer(struct worker *w, int fd, const struct wfeed *wf, bool is_ws)
{
    char resp[STEER_URL_MAX + CHAN_SPACE_MAX + 160];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 302 Found\r\nLocation: %s/spaces/%s/%s\r\nContent-Length: 0\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     w->steer, wf->id, is_ws ? "ws" : "live.opus");
    if (n > 0 && (size_t)n < sizeof(resp)) {
        ssize_t sent = send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)sent;
    }
    shutdown(fd, SHUT_WR);
}

/* Admission (guard/admit.h): true to take the listener on `fd`; otherwise
 * the pre-built 503 with a jittered Retry-After has been sent on `fd`
 * (whose request head was read in full), or a 302 to an edge when the node is
 * full and steers (relay/steer.h), and the caller closes it. */
static bool admit_listener(struct worker *w, int fd, struct wfeed *wf, bool is_ws)
{
    uint64_t now = loop_now_ms(w->loop);
    uint64_t fds = w->base_fds + w->listeners + conn_count();
    const struct admit_limits *lim = &w->admit.lim;
    if (lim->fd_limit && fds + lim->fd_reserve >= lim->fd_limit) {
        /* handshakes go before listeners: the oldest requests still
         * arriving make room for a listener that has arrived */
        uint64_t need = fds + lim->fd_reserve + 1 - lim->fd_limit;
        fds -= conn_evict_oldest(need < 256 ? (unsigned)need : 256);
    }
    enum admit_verdict v = admit_join(&w->admit, now, w->listeners, fds);
    if (v == ADMIT_OK) return true;
    enum refuse_reason why = v == ADMIT_FULL     ? REFUSE_FULL
                             : v == ADMIT_FDS    ? REFUSE_FDS
                             : v == ADMIT_MEMORY ? REFUSE_MEMORY
                                                 : REFUSE_JOIN_RATE;
    refuse(why);
    if (wf) wf->feed.stats.refused[why]++;
    if (wf && w->steer[0] && v != ADMIT_RATE)
        send_steer(w, fd, wf, is_ws);
    else
        send_busy(w, fd);
    return false;
}

/* A space that requires join tickets (guard/ticket.h): true when the request
 * carries a valid `ticket` query parameter; otherwise a 403 has been sent
 * (never a 429 nor a 503: a player with a stale ticket should fetch a new
 * one, not wait) and counted. A missing ticket costs a scan of the target;
 * a bad one, at most one HMAC. */
static bool has_valid_ticket(struct worker *w, struct conn *c, struct wfeed *wf)
{
    const char *t = NULL;
    size_t tlen = 0;
    ticket_from_url(conn_str(c, c->url), c->url.len, &t, &tlen);
    enum ticket_verdict v =
        ticket_verify(&w->ticket_key, wf->id, strlen(wf->id), t, tlen, (int64_t)time(NULL));
    if (v == TICKET_OK) return true;
    refuse(REFUSE_TICKET);
    wf->feed.stats.refused[REFUSE_TICKET]++;
    conn_respond_error(c, 403, ticket_verdict_text(v));
    return false;
}

static void on_request(struct conn *c)
{
    struct worker *w = c->owner;
    struct route_match m;
    route_find(routes, sizeof(routes) / sizeof(routes[0]), c->method, conn_str(c, c->path),
               c->path.len, &m);
    struct wfeed *wf = NULL;
    if (m.route && m.is_method_allowed) wf = find_feed(w, m.captures[0].s, m.captures[0].len);
    bool is_ws = m.route && m.route->id == R_WS;
    char accept[29];
    const char *why = NULL;
    int bad = 0;
    if (wf && is_ws && (bad = ws_check_handshake(c, accept, &why)) != 0) {
        refuse(REFUSE_WS_HANDSHAKE);
        ws_respond_error(c, bad, why);
        return;
    }
    /* without the secret (never, in practice: it comes before any space) the
     * master judges the ticket */
    if (!wf || (wf->require_ticket && !w->has_ticket_key)) {
        hand_off(w, c);
        return;
    }
    if (wf->require_ticket && !has_valid_ticket(w, c, wf)) return;
    if (wf->feed.is_ended) {
        conn_respond_error(c, 410, "this space has ended");
        return;
    }
    int is_head = c->method == ROUTE_HEAD;
    size_t elen = 0;
    const char *edge = is_ws ? conn_header(c, "X-Tribune-Edge", &elen) : NULL;
    char edge_id[WORKER_EDGE_ID_MAX + 1];
    if (!edge || elen > WORKER_EDGE_ID_MAX) elen = 0;
    if (elen) memcpy(edge_id, edge, elen);
    size_t none;
    int fd = conn_detach(c, NULL, 0, &none);
    if (!admit_listener(w, fd, wf, is_ws)) {
        close(fd);
        return;
    }
    if (is_ws && ws_send_head(fd, accept) < 0) {
        close(fd);
        return;
    }
    /* remembered first: a listener closed during its start is forgotten by on_close */
    if (elen) remember_edge(w, fd, wf->id, edge_id, elen);
    if (listener_start(is_ws ? &wf->ws : &wf->feed, fd, is_head) < 0) {
        forget_edge(w, fd);
        close(fd);
        return;
    }
    w->listeners++;
}

/* No descriptor left for accept(): the oldest connections still in their
 * handshake go first (a slow-loris holds those); listeners are never
 * touched. */
static unsigned on_exhausted(struct acceptor *a)
{
    return conn_evict_oldest(16);
}

/* The pre-built 503 on a connection refused before its request was read:
 * what already arrived is read first, so that closing does not reset the
 * connection before the client reads the answer. */
static void refuse_at_accept(struct worker *w, int fd, enum refuse_reason why)
{
    char scratch[2048];
    refuse(why);
    ssize_t n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
    (void)n;
    send_busy(w, fd);
    close(fd);
}

static void on_accept(struct acceptor *a, int fd)
{
    struct worker *w = a->owner;
    uint32_t slot = ADDR_SLOT_NONE;
    const struct sockaddr *sa = a->peer_len > 0 ? (const struct sockaddr *)&a->peer : NULL;
    enum addr_verdict v = addr_on_connect(&w->addrs, sa, loop_now_ms(w->loop), &slot);
    if (v != ADDR_OK) {
        refuse_at_accept(w, fd, v == ADDR_RATE ? REFUSE_ADDR_RATE : REFUSE_ADDR_HANDSHAKES);
        return;
    }
    if (conn_start_with(w->loop, fd, &w->limits, on_request, w, (int)slot, NULL, 0) < 0) {
        addr_on_handshake_done(&w->addrs, slot, sa);
        close(fd);
    }
}

/* A connection's handshake is over (routed, refused, timed out, evicted or
 * gone): its address gets the handshake back. */
static void on_handshake_end(struct conn *c)
{
    struct worker *w = c->owner;
    uint32_t slot = (uint32_t)c->tag;
    if (slot != ADDR_SLOT_NONE) addr_on_handshake_done(&w->addrs, slot, &c->peer_addr.sa);
}

static struct chunk *chunk_from(const void *data, size_t len, uint64_t granule, uint64_t dur)
{
    struct chunk *c = chunk_new(len);
    if (!c) return NULL;
    memcpy(c->data, data, len);
    c->granule = granule;
    c->duration = (uint32_t)dur;
    chunk_seal(c);
    return c;
}

static void on_message(struct worker *w, const struct chan_msg *m, const void *p, int fd)
{
    struct wfeed *wf = m->space[0] ? find_feed(w, m->space, strlen(m->space)) : NULL;
    struct chunk *c;
    switch (m->type) {
    case CHAN_SPACE:
        if (!(wf = add_feed(w, m->space))) break;
        wf->require_ticket = m->a & CHAN_SPACE_REQUIRE_TICKET;
        feed_set_live(&wf->feed, (m->a & CHAN_SPACE_LIVE) != 0);
        feed_set_live(&wf->ws, (m->a & CHAN_SPACE_LIVE) != 0);
        if ((m->a & CHAN_SPACE_ENDED) && !wf->feed.is_ended) feed_end(&wf->feed);
        if ((m->a & CHAN_SPACE_ENDED) && !wf->ws.is_ended) feed_end(&wf->ws);
        break;
    case CHAN_TICKET_KEY:
        if (m->len != TICKET_KEY_BYTES) break;
        memcpy(w->ticket_key.bytes, p, TICKET_KEY_BYTES);
        w->has_ticket_key = true;
        break;
    case CHAN_STEER:
        snprintf(w->steer, sizeof(w->steer), "%.*s",
                 (int)(m->len < STEER_URL_MAX ? m->len : STEER_URL_MAX), (const char *)p);
        break;
    case CHAN_HEADER:
        if (!wf && !(wf = add_feed(w, m->space))) break;
        if ((c = chunk_from(p, m->len, 0, 0)))
            feed_set_header(m->flags == CHAN_FMT_WS ? &wf->ws : &wf->feed, c);
        break;
    case CHAN_CHUNK:
        if (!wf) break;
        if ((c = chunk_from(p, m->len, m->a, m->b))) /* written after the batch: on_chan */
            feed_append(m->flags == CHAN_FMT_WS ? &wf->ws : &wf->feed, c);
        break;
    case CHAN_LISTENER:
        if (fd >= 0 && !admit_listener(w, fd, wf, m->flags == CHAN_FMT_WS)) break;
        if (m->flags == CHAN_FMT_WS) { /* the master checked the handshake; the 101 is ours */
            char accept[29];
            if (fd < 0 || !wf || m->len < 28 || m->len > 28 + WORKER_EDGE_ID_MAX) break;
            memcpy(accept, p, 28);
            accept[28] = '\0';
            if (ws_send_head(fd, accept) < 0) break;
            /* an edge's upstream: its id follows the accept value */
            if (m->len > 28) remember_edge(w, fd, wf->id, (const char *)p + 28, m->len - 28);
        }
        if (fd >= 0 && wf &&
            listener_start(m->flags == CHAN_FMT_WS ? &wf->ws : &wf->feed, fd, m->a != 0) == 0) {
            w->listeners++;
            fd = -1;
        } else if (fd >= 0) {
            forget_edge(w, fd);
        }
        break;
    default:
        break;
    }
    if (fd >= 0) close(fd);
}

/* Reads up to CHAN_BATCH messages; chunks are only appended to their rings. */
static void drain_chan(struct worker *w, struct io *io)
{
    for (int i = 0; i < CHAN_BATCH; i++) {
        struct chan_msg m;
        const void *payload;
        int fd;
        int r = chan_recv(io->fd, w->buf, sizeof(struct chan_msg) + CHAN_MAX_PAYLOAD, &m, &payload,
                          &fd);
        if (r == -EAGAIN) return;
        if (r == -EBADMSG) continue;
        if (r <= 0) {
            log_info("worker %d: master gone, stopping", (int)getpid());
            loop_stop(w->loop);
            return;
        }
        on_message(w, &m, payload, fd);
    }
}

/* The master's messages. The chunks of one batch are written together, once
 * per listener (feed_flush_pending): a worker that fell behind (CPU taken by
 * others, a burst from the master) catches up in one pass over its listeners
 * instead of one pass per chunk, so that accepting and answering wait for one
 * pass at most. Measured with 3 edges x 2,000 listeners on the shared 2-core
 * box, origin killed: worst API answer of an edge 15.3 and 15.8 s before (2 of
 * 3 runs), see docs/internals/relay.md. */
static void on_chan(struct io *io, uint32_t events)
{
    struct worker *w = list_entry(io, struct worker, chan);
    struct list *pos, *tmp;

    drain_chan(w, io);
    list_for_each_safe(pos, tmp, &w->feeds)
    {
        struct wfeed *wf = list_entry(pos, struct wfeed, node);
        feed_flush_pending(&wf->feed);
        feed_flush_pending(&wf->ws);
    }
}

static void send_stats(struct worker *w, struct wfeed *wf)
{
    struct chan_msg m;
    chan_msg_init(&m, CHAN_STATS, wf->id, sizeof(struct feed_stats));
    chan_send(w->chan.fd, &m, &wf->feed.stats, -1);
    m.flags = CHAN_FMT_WS;
    chan_send(w->chan.fd, &m, &wf->ws.stats, -1);
}

static void on_sweep(struct timer *t)
{
    struct worker *w = list_entry(t, struct worker, sweep);
    unsigned long total = 0;
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->feeds)
    {
        struct wfeed *wf = list_entry(pos, struct wfeed, node);
        feed_sweep(&wf->feed);
        feed_sweep(&wf->ws);
        total += wf->feed.stats.listeners + wf->ws.stats.listeners;
    }
    w->listeners = total;
    /* SO_REUSEPORT spreads joins evenly: this worker's share times the
     * number of workers estimates the node's load, which decides how much
     * the kernel's cost per send matters. */
    unsigned nb =
        worker_buckets(w->nbuckets, total * w->nworkers, w->cfg.chunk_ms, w->cfg.write_interval_ms);
    w->nbuckets = nb;
    list_for_each_safe(pos, tmp, &w->feeds)
    {
        struct wfeed *wf = list_entry(pos, struct wfeed, node);
        wf->feed.nbuckets = nb;
        wf->ws.nbuckets = nb;
        send_stats(w, wf);
    }
    /* The node-wide numbers: an empty space id. */
    struct chan_msg m;
    chan_msg_init(&m, CHAN_STATS, NULL, sizeof(refusals));
    chan_send(w->chan.fd, &m, &refusals, -1);
    timer_start(w->loop, t, loop_now_ms(w->loop) + SWEEP_MS);
}

static void on_signal(struct io *io, uint32_t events)
{
    struct worker *w = list_entry(io, struct worker, sigio);
    struct signalfd_siginfo si;
    if (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) loop_stop(w->loop);
}

/* The settings arrive first, before the worker does anything else. */
static int read_config(struct worker *w)
{
    struct pollfd p = {.fd = w->chan.fd, .events = POLLIN};
    if (poll(&p, 1, CONFIG_WAIT_MS) != 1) return -ETIMEDOUT;
    struct chan_msg m;
    const void *payload;
    int fd;
    int r = chan_recv(w->chan.fd, w->buf, sizeof(struct chan_msg) + CHAN_MAX_PAYLOAD, &m, &payload,
                      &fd);
    if (fd >= 0) close(fd);
    if (r != 1 || m.type != CHAN_CONFIG || m.len != sizeof(struct config)) return -EPROTO;
    memcpy(&w->cfg, payload, sizeof(w->cfg));
    return 0;
}

static int setup_signals(struct worker *w)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return -errno;
    w->sigio.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (w->sigio.fd < 0) return -errno;
    return loop_add(w->loop, &w->sigio, EPOLLIN, on_signal);
}

static int open_port(struct worker *w)
{
    char host[64];
    uint16_t port;
    if (config_split_listen(w->cfg.listen, host, sizeof(host), &port) < 0) return -EINVAL;
    int fd = listen_open(host, port, 4096);
    if (fd < 0) {
        log_error("worker: cannot listen on %s: %s", w->cfg.listen, strerror(-fd));
        return fd;
    }
    int err = acceptor_start(&w->acceptor, w->loop, fd, on_accept, w);
    w->acceptor.on_exhausted = on_exhausted;
    return err;
}

/* What one listener may cost, kernel included: its send buffer full (the
 * kernel doubles SO_SNDBUF), plus the socket, its epoll item and our state. */
static uint64_t listener_cost_bytes(const struct config *cfg)
{
    return 2 * (uint64_t)cfg->sndbuf_bytes + 4096;
}

/* memory_budget_mb, or 3/4 of MemAvailable when 0 (read once, at start). */
static uint64_t memory_budget_bytes(const struct config *cfg)
{
    if (cfg->memory_budget_mb > 0) return (uint64_t)cfg->memory_budget_mb << 20;
    FILE *f = fopen("/proc/meminfo", "r");
    unsigned long long kb = 0;
    char line[128];
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    return (uint64_t)kb * 1024 / 4 * 3;
}

/* This worker's share of the node's limits: SO_REUSEPORT spreads joins
 * evenly over the workers. */
static int admit_setup(struct worker *w)
{
    const struct config *cfg = &w->cfg;
    unsigned n = w->nworkers ? w->nworkers : 1;
    struct rlimit rl;
    struct admit_limits lim = {
        .max_listeners = ((uint64_t)cfg->max_listeners + n - 1) / n,
        .rate = (double)cfg->join_rate / n,
        .burst = (double)cfg->join_burst / n,
        .fd_limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                        ? (uint64_t)rl.rlim_cur
                        : 0,
        .fd_reserve = (uint64_t)cfg->fd_reserve,
        .max_by_memory = memory_budget_bytes(cfg) / n / listener_cost_bytes(cfg),
    };
    if (lim.max_listeners > WORKER_MAX_LISTENERS) lim.max_listeners = WORKER_MAX_LISTENERS;
    /* stdio, the loop's epoll, the channel, the signalfd, the port, the
     * timerfd: counted once here rather than by reading /proc */
    w->base_fds = 8;
    admit_init(&w->admit, &lim, loop_now_ms(w->loop), (uint32_t)getpid() * 2654435761u);
    /* per address: the kernel spreads one address's connections over the
     * workers by the 4-tuple hash, so each worker takes its share */
    struct addr_limits al = {
        .conn_rate = (double)cfg->addr_conn_rate / n,
        .conn_burst = (double)cfg->addr_conn_burst / n,
        .max_handshakes = cfg->addr_handshakes ? ((unsigned)cfg->addr_handshakes + n - 1) / n : 0,
    };
    if (al.conn_rate > 0 && al.conn_rate < 0.001) al.conn_rate = 0.001;
    return addr_table_init(&w->addrs, ADDR_TABLE_LOG2, &al);
}

static int worker_open(struct worker *w, int fd)
{
    w->chan.fd = fd;
    w->sigio.fd = -1;
    w->acceptor.io.fd = -1;
    list_init(&w->feeds);
    timer_init(&w->sweep, on_sweep);
    w->buf = malloc(sizeof(struct chan_msg) + CHAN_MAX_PAYLOAD);
    w->loop = loop_new();
    if (!w->buf || !w->loop) return -ENOMEM;
    int err = read_config(w);
    if (err < 0) {
        log_error("worker: no settings from the master: %s", strerror(-err));
        return err;
    }
    log_set_level(w->cfg.log_level);
    log_set_format(w->cfg.log_format);
    w->nworkers = (unsigned)fleet_size(&w->cfg);
    w->nbuckets = 1;
    err = admit_setup(w);
    if (err < 0) {
        log_error("worker: cannot set up admission: %s", strerror(-err));
        return err;
    }
    w->limits.max_head = (size_t)w->cfg.max_header_bytes;
    w->limits.max_url = (size_t)w->cfg.max_url_bytes;
    w->limits.head_timeout_ms = (uint64_t)w->cfg.header_timeout_ms;
    w->limits.is_routing_on_head = true;
    w->limits.on_handshake_end = on_handshake_end;
    conn_module_init(w->loop);
    w->has_conns = true;
    err = setup_signals(w);
    if (err == 0) err = loop_add(w->loop, &w->chan, EPOLLIN, on_chan);
    if (err == 0) err = open_port(w);
    timer_start(w->loop, &w->sweep, loop_now_ms(w->loop) + SWEEP_MS);
    return err;
}

static void worker_close(struct worker *w)
{
    if (w->acceptor.io.fd >= 0) acceptor_stop(&w->acceptor);
    timer_stop(&w->sweep);
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->feeds)
    {
        struct wfeed *wf = list_entry(pos, struct wfeed, node);
        feed_fini(&wf->feed);
        feed_fini(&wf->ws);
        list_remove(&wf->node);
        free(wf);
    }
    if (w->has_conns) conn_module_fini();
    if (w->loop) {
        loop_stop(w->loop);
        loop_run_once(w->loop);
        loop_free(w->loop);
    }
    addr_table_fini(&w->addrs); /* after the loop: freed conns give their handshakes back */
    if (w->sigio.fd >= 0) close(w->sigio.fd);
    close(w->chan.fd);
    OPENSSL_cleanse(&w->ticket_key, sizeof(w->ticket_key));
    if (w->buf) OPENSSL_cleanse(w->buf, sizeof(struct chan_msg) + CHAN_MAX_PAYLOAD);
    free(w->buf);
    if (chunks_live() != 0)
        log_error("worker: %llu chunks still referenced", (unsigned long long)chunks_live());
}

int worker_main(int fd)
{
    struct worker w;
    memset(&w, 0, sizeof(w));
    int err = worker_open(&w, fd);
    if (err == 0) {
        log_debug("worker %d: serving %s", (int)getpid(), w.cfg.listen);
        err = loop_run(w.loop);
    }
    worker_close(&w);
    return err == 0 ? 0 : 1;
}
