#include "api/node.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "api/events.h"
#include "core/log.h"
#include "deliver/chunk.h"
#include "metrics/refusals.h"
#include "record/recorder.h"
#include "record/replay.h"

static void on_accept(struct acceptor *a, int fd)
{
    struct node *n = a->owner;
    if (conn_start(n->loop, fd, &n->limits, node_on_request, n) < 0) close(fd);
}

const char *node_worker_exe;

static void on_signal(struct io *io, uint32_t events)
{
    struct node *n = list_entry(io, struct node, sigio);
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            if (n->has_fleet) fleet_reap(&n->fleet);
            continue;
        }
        log_info("signal %u: shutting down", si.ssi_signo);
        loop_stop(n->loop);
        return;
    }
}

/* --- the fleet's events ---------------------------------------------- */

static void send_steer(struct node *n, int w);

/* The secret goes first (right after the settings), before any space: a
 * worker never knows a space that requires tickets without the key. */
static void on_worker_up(struct fleet *f, int w, void *arg)
{
    struct node *n = arg;
    struct chan_msg m;
    chan_msg_init(&m, CHAN_TICKET_KEY, NULL, TICKET_KEY_BYTES);
    fleet_send(f, w, &m, n->ticket_key.bytes, -1);
    if (n->steer_url[0]) send_steer(n, w);
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &n->spaces.all)
    {
        struct space *s = list_entry(pos, struct space, node);
        fleet_sync_feed(f, w, s->rec.id, &s->ogg, space_chan_flags(s));
        fleet_sync_feed(f, w, s->rec.id, &s->ws, space_chan_flags(s));
    }
}

static void on_worker_down(struct fleet *f, int w, void *arg)
{
    struct node *n = arg;
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &n->spaces.all)
    {
        space_retire_worker(list_entry(pos, struct space, node), w);
    }
}

static void on_handoff(struct fleet *f, int w, int fd, const void *bytes, size_t len, void *arg)
{
    struct node *n = arg;
    if (conn_start_with(n->loop, fd, &n->limits, node_on_request, n, w, bytes, len) < 0) close(fd);
}

static void on_worker_stats(struct fleet *f, int w, const char *id, unsigned fmt,
                            const struct feed_stats *st, void *arg)
{
    struct node *n = arg;
    struct space *s = spaces_peek(&n->spaces, id, strlen(id));
    if (s && w >= 0 && w < FLEET_MAX) (fmt == CHAN_FMT_WS ? s->ws_wstats : s->wstats)[w] = *st;
}

static void on_edge_gone(struct fleet *f, int w, const char *id, const char *edge, size_t len,
                         void *arg)
{
    struct node *n = arg;
    struct space *s = spaces_peek(&n->spaces, id, strlen(id));
    if (!s) return;
    space_edge_forget(s, edge, len);
    /* steering and the failover list stop naming it now, not at their next second */
    n->nodes_at_ms = 0;
    if (n->is_steering) timer_start(n->loop, &n->steer, loop_now_ms(n->loop));
}

static int start_fleet(struct node *n)
{
    struct fleet_events ev = {.on_up = on_worker_up,
                              .on_down = on_worker_down,
                              .on_handoff = on_handoff,
                              .on_stats = on_worker_stats,
                              .on_edge_gone = on_edge_gone,
                              .arg = n};
    int err = fleet_start(&n->fleet, n->loop, &n->cfg, node_worker_exe, fleet_size(&n->cfg), &ev);
    n->has_fleet = true; /* even when partly started: fleet_stop cleans up */
    n->spaces.fleet = &n->fleet;
    return err;
}

/* SIGINT and SIGTERM stop the loop through a signalfd; SIGPIPE is ignored
 * (every send uses MSG_NOSIGNAL anyway). */
static int setup_signals(struct node *n)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return -errno;
    n->sigio.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (n->sigio.fd < 0) return -errno;
    return loop_add(n->loop, &n->sigio, EPOLLIN, on_signal);
}

static int open_registry(struct node *n)
{
    if (mkdir(n->cfg.data, 0750) < 0 && errno != EEXIST) {
        log_error("cannot create data directory %s: %s", n->cfg.data, strerror(errno));
        return -errno;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/tribune.db", n->cfg.data);
    n->reg = registry_open(path);
    if (!n->reg) return -EIO;
    snprintf(path, sizeof(path), "%s/ticket.key", n->cfg.data);
    return ticket_key_load(path, &n->ticket_key);
}

static int open_key_fails(struct node *n)
{
    struct addr_limits lim = {.conn_rate = NODE_KEY_FAILS_PER_MIN / 60.0,
                              .conn_burst = NODE_KEY_FAILS_BURST};
    return addr_table_init(&n->key_fails, NODE_KEY_FAILS_LOG2, &lim);
}

bool node_key_is_limited(struct node *n, struct conn *c)
{
    uint64_t wait = addr_wait_ms(&n->key_fails, &c->peer_addr.sa, loop_now_ms(n->loop));
    if (!wait) return false;
    log_limited(LOG_WARN, 5, "key attempt from %s refused: too many failed keys", c->peer);
    refuse(REFUSE_KEY_LIMIT);
    char hdr[64];
    snprintf(hdr, sizeof(hdr), "Retry-After: %llu\r\n", (unsigned long long)(wait + 999) / 1000);
    static const char body[] = "{\"error\": \"too many failed key attempts, retry later\"}\n";
    conn_respond(c, 429, "application/json", hdr, body, sizeof(body) - 1);
    return true;
}

void node_key_failed(struct node *n, struct conn *c)
{
    uint32_t slot;
    const struct sockaddr *sa = &c->peer_addr.sa;
    /* the table counts handshakes too: none is held here */
    if (addr_on_connect(&n->key_fails, sa, loop_now_ms(n->loop), &slot) == ADDR_OK)
        addr_on_handshake_done(&n->key_fails, slot, sa);
}

static int open_listener(struct node *n)
{
    char host[64];
    uint16_t port;
    if (config_split_listen(n->cfg.listen, host, sizeof(host), &port) < 0) {
        log_error("bad listen address %s", n->cfg.listen);
        return -EINVAL;
    }
    if (node_worker_exe) {
        /* Workers listen; the master only holds the port. */
        n->reserve_fd = listen_reserve(host, port);
        if (n->reserve_fd < 0) {
            log_error("cannot listen on %s: %s", n->cfg.listen, strerror(-n->reserve_fd));
            return n->reserve_fd;
        }
        return 0;
    }
    int fd = listen_open(host, port, 4096);
    if (fd < 0) {
        log_error("cannot listen on %s: %s", n->cfg.listen, strerror(-fd));
        return fd;
    }
    return acceptor_start(&n->acceptor, n->loop, fd, on_accept, n);
}

/* The admin address: accepted by the master itself, never by a worker, so
 * the API, /metrics and tribune top answer while the workers' port is
 * saturated (accept queues full, workers busy writing). */
static int open_admin(struct node *n)
{
    if (!n->cfg.admin_listen[0]) return 0;
    char host[64];
    uint16_t port;
    if (config_split_listen(n->cfg.admin_listen, host, sizeof(host), &port) < 0) return -EINVAL;
    int fd = listen_open(host, port, 512);
    if (fd < 0) {
        log_error("cannot listen on %s (admin_listen): %s", n->cfg.admin_listen, strerror(-fd));
        return fd;
    }
    log_info("admin address http://%s (served by the master)", n->cfg.admin_listen);
    return acceptor_start(&n->admin, n->loop, fd, on_accept, n);
}

enum { PRUNE_MS = 3600 * 1000, STEER_MS = 1000 };

static void send_steer(struct node *n, int w)
{
    struct chan_msg m;
    chan_msg_init(&m, CHAN_STEER, NULL, (uint32_t)strlen(n->steer_url));
    if (w < 0)
        fleet_broadcast(&n->fleet, &m, n->steer_url);
    else
        fleet_send(&n->fleet, w, &m, n->steer_url, -1);
}

size_t node_edges(struct node *n, struct steer_edge *e)
{
    size_t ne = steer_parse(n->cfg.edges, e, STEER_EDGES_MAX);
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &n->spaces.all)
    {
        struct space *s = list_entry(pos, struct space, node);
        for (size_t i = 0; i < ne; i++)
            space_edge_load(s, &e[i]);
    }
    return ne;
}

/* Once a second, with `edges` set: the edge that joins refused for capacity go to
 * (relay/steer.h), from the edges' fresh reports over every space; the workers are
 * told only when it changes. */
static void on_steer(struct timer *t)
{
    struct node *n = list_entry(t, struct node, steer);
    timer_start(n->loop, t, loop_now_ms(n->loop) + STEER_MS);
    struct steer_edge e[STEER_EDGES_MAX];
    size_t ne = node_edges(n, e);
    int best = steer_pick(e, ne);
    char url[STEER_URL_MAX + 1] = "";
    if (best >= 0) {
        size_t len = e[best].url_len;
        if (len && e[best].url[len - 1] == '/') len--;
        snprintf(url, sizeof(url), "%.*s", (int)len, e[best].url);
    }
    if (strcmp(url, n->steer_url) == 0) return;
    snprintf(n->steer_url, sizeof(n->steer_url), "%s", url);
    log_info("steering: joins refused for capacity go to %s", url[0] ? url : "none (503)");
    send_steer(n, -1);
}

static void start_steering(struct node *n)
{
    if (!n->has_fleet || !n->cfg.edges[0]) return;
    timer_init(&n->steer, on_steer);
    timer_start(n->loop, &n->steer, loop_now_ms(n->loop) + STEER_MS);
    n->is_steering = true;
}

/* Recordings past their retention go, at start and each hour. */
static void on_prune(struct timer *t)
{
    struct node *n = list_entry(t, struct node, prune);
    int removed = recorder_prune(n->recorder, (int64_t)n->cfg.recording_retention_days * 86400);
    if (removed > 0) log_info("recordings: %d past their retention removed", removed);
    timer_start(n->loop, t, loop_now_ms(n->loop) + PRUNE_MS);
}

/* The recorder (its own thread), after recovering what a crash left. */
static int open_recorder(struct node *n)
{
    if (!n->cfg.record) return 0;
    char path[512];
    snprintf(path, sizeof(path), "%s/recordings", n->cfg.data);
    struct recorder_config rc = {.sync_ms = n->cfg.recording_sync_ms, .page_ms = 100};
    n->recorder = recorder_start(path, &rc);
    if (!n->recorder) return -EIO;
    n->spaces.recorder = n->recorder;
    timer_init(&n->prune, on_prune);
    if (n->cfg.recording_retention_days > 0) timer_start(n->loop, &n->prune, loop_now_ms(n->loop));
    return 0;
}

int node_open(struct node *n, const struct config *cfg)
{
    memset(n, 0, sizeof(*n));
    n->cfg = *cfg;
    n->sigio.fd = -1;
    n->acceptor.io.fd = -1;
    n->admin.io.fd = -1;
    n->reserve_fd = -1;
    n->limits.max_head = (size_t)cfg->max_header_bytes;
    n->limits.max_url = (size_t)cfg->max_url_bytes;
    n->limits.head_timeout_ms = (uint64_t)cfg->header_timeout_ms;
    n->loop = loop_new();
    if (!n->loop) return -ENOMEM;
    conn_module_init(n->loop);
    int err = open_registry(n);
    if (err == 0) err = open_key_fails(n);
    if (err == 0) err = spaces_init(&n->spaces, n->loop, n->reg, &n->cfg);
    if (err == 0 && cfg->origin[0]) {
        err = relay_start(&n->relay, n->loop, &n->spaces, &n->cfg);
        n->is_relay = err == 0;
    }
    if (err == 0) err = open_recorder(n);
    if (err == 0) err = open_listener(n);
    if (err == 0) err = open_admin(n);
    if (err == 0) err = setup_signals(n);
    if (err == 0 && node_worker_exe) err = start_fleet(n);
    if (err == 0) start_steering(n);
    return err;
}

int node_setup_demo(struct node *n)
{
    struct space_record rec;
    int err = registry_get(n->reg, "demo", &rec);
    if (err == -ENOENT)
        err = registry_create(n->reg, "demo", "Tribune demo", 0, &rec, n->demo_key);
    else if (err == 0)
        err = registry_rotate_host_key(n->reg, "demo", n->demo_key);
    /* a demo someone ended with last run's key starts again */
    if (err == 0 && rec.state == SPACE_ENDED) err = registry_set_state(n->reg, "demo", SPACE_LIVE);
    if (err < 0) return err;
    struct space *s = spaces_get(&n->spaces, "demo", 4);
    if (!s) return -ENOMEM;
    n->is_demo = true;
    return space_add_builtin_speaker(s);
}

int node_run(struct node *n)
{
    log_info("listening on http://%s", n->cfg.listen);
    return loop_run(n->loop);
}

void node_close(struct node *n)
{
    if (n->is_steering) timer_stop(&n->steer);
    if (n->acceptor.io.fd >= 0) acceptor_stop(&n->acceptor);
    if (n->admin.io.fd >= 0) acceptor_stop(&n->admin);
    events_close(n);
    if (n->has_fleet) fleet_stop(&n->fleet);
    n->spaces.fleet = NULL;
    if (n->reserve_fd >= 0) close(n->reserve_fd);
    if (n->sigio.fd >= 0) {
        loop_del(n->loop, &n->sigio);
        close(n->sigio.fd);
    }
    if (n->is_relay) relay_stop(&n->relay);
    if (n->reg) spaces_fini(&n->spaces); /* closes the recordings of live spaces */
    replay_close_all();
    if (n->recorder) {
        timer_stop(&n->prune);
        recorder_stop(n->recorder);
        n->recorder = NULL;
    }
    conn_module_fini();
    /* Run the deferred frees queued by the closes above. */
    if (n->loop) {
        loop_stop(n->loop);
        loop_run_once(n->loop);
    }
    registry_close(n->reg);
    addr_table_fini(&n->key_fails);
    OPENSSL_cleanse(&n->ticket_key, sizeof(n->ticket_key));
    loop_free(n->loop);
    if (chunks_live() != 0)
        log_error("shutdown: %llu chunks still referenced", (unsigned long long)chunks_live());
}
