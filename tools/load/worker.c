/* The load worker's connection driver; see worker.h for the contract.
 *
 * Loop shape (one iteration): start the joins that are due (at most
 * JOIN_BATCH), sweep open connections every TICK_US for the meter, report
 * counts every second, then wait in epoll_wait() until the next of those. Reads
 * go into one scratch buffer per worker; a connection keeps only its struct
 * load_conn. Level-triggered epoll: a connection with more data than one
 * wake-up's cap is simply seen again.
 */
#include "worker.h"

#include "attack.h"
#include "failover.h"
#include "retry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#define SCRATCH_SIZE 65536
#define READS_PER_WAKE 4
#define JOIN_BATCH 512
#define MAX_EVENTS 1024
#define TICK_US 100000
#define REPORT_US 1000000
#define FAILOVER_SAMPLES_MAX (1u << 22) /* death-to-audio times kept per worker */

/* --failover: one listener's list position and outage, beside its load_conn
 * (which has no room left: see client.h). */
struct fo_state {
    int64_t down_us;    /* its stream died then, no audio since; 0: none pending */
    int64_t last_rx_us; /* last read with bytes, or the attempt's start */
    uint16_t outages;   /* times its stream died (saturating) */
    uint16_t moves;     /* attempts on a next URL (saturating) */
    uint8_t pos;        /* position in its URL list (failover_url) */
    bool has_heard;     /* met the bar (a full span) since its last outage ended */
};

struct worker {
    const struct load_opts *o;
    const struct load_target *t; /* o->n_urls targets: the positional URL, then --failover's */
    const struct client_ops *ops;
    struct load_conn *conns; /* n + nf slots: listeners [0, started), then flood */
    struct fo_state *fo;     /* --failover: n slots, one per listener; NULL without */
    uint32_t *fo_us;         /* --failover: death-to-audio times, microseconds */
    uint32_t n_fo_us, cap_fo_us;
    uint8_t *scratch;
    uint32_t id;
    uint32_t n;
    uint32_t started;
    uint32_t nf;                         /* flood connections of this worker (--flood) */
    uint32_t flood_started;              /* slots [n, n + flood_started) are in use */
    double flood_rate;                   /* flood connections per second for this worker */
    int64_t flood_t0_us;                 /* when the flood begins */
    int64_t stop_first_us, stop_last_us; /* --stop-reading: first and last stop */
    int64_t next_retry_us;               /* --retry: earliest pending retry, INT64_MAX: none */
    uint32_t rng;                        /* --retry: jitter */
    int ep;
    int pipe_fd;
    int req_len[LOAD_MAX_URLS];
    int32_t last_connect_errno;
    double rate; /* joins per second for this worker */
    int64_t t0_us, end_us, next_tick_us, next_report_us;
    uint64_t bytes;
    char req[LOAD_MAX_URLS][1024]; /* the request for each target */
};

static volatile sig_atomic_t is_stop_requested;

static void on_sigterm(int sig)
{
    (void)sig;
    is_stop_requested = 1;
}

/* Signals, parent death, and the fd limit raised to its hard maximum. */
static void setup_process(void)
{
    struct sigaction sa = {.sa_handler = on_sigterm};
    struct rlimit rl;

    sigaction(SIGTERM, &sa, NULL);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int worker_init(struct worker *w, uint32_t id, int pipe_fd, int64_t t0_us)
{
    const struct load_opts *o = w->o;

    w->id = id;
    w->pipe_fd = pipe_fd;
    w->n = o->listeners / o->procs + (id < o->listeners % o->procs ? 1 : 0);
    w->rate = o->joins_per_s / o->procs;
    w->nf = o->attack.flood / o->procs + (id < o->attack.flood % o->procs ? 1 : 0);
    w->flood_rate = o->attack.flood_rate / o->procs;
    w->flood_t0_us = t0_us + (int64_t)o->attack.flood_start_ms * 1000;
    w->t0_us = t0_us;
    w->end_us = t0_us + (int64_t)o->duration_s * 1000000;
    w->next_tick_us = t0_us + TICK_US;
    w->next_report_us = t0_us + REPORT_US;
    w->next_retry_us = INT64_MAX;
    w->rng = (uint32_t)(id + 1) * 2654435761u ^ (uint32_t)t0_us;
    if (w->rng == 0) w->rng = 1;
    for (uint32_t u = 0; u < o->n_urls; u++) {
        w->req_len[u] = w->ops->render_request(&w->t[u], w->req[u], sizeof(w->req[u]));
        if (w->req_len[u] < 0) return w->req_len[u];
    }
    if (o->n_urls > 1) {
        w->fo = calloc(w->n > 0 ? w->n : 1, sizeof(*w->fo));
        if (w->fo == NULL) return -ENOMEM;
    }
    w->conns = calloc(w->n + w->nf > 0 ? w->n + w->nf : 1, sizeof(*w->conns));
    w->scratch = malloc(SCRATCH_SIZE);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (w->conns == NULL || w->scratch == NULL) return -ENOMEM;
    return w->ep < 0 ? -errno : 0;
}

static void worker_fini(struct worker *w)
{
    for (uint32_t i = 0; i < w->started; i++)
        if (w->conns[i].fd >= 0) close(w->conns[i].fd);
    for (uint32_t i = w->n; i < w->n + w->flood_started; i++)
        if (w->conns[i].fd >= 0) close(w->conns[i].fd);
    free(w->conns);
    w->conns = NULL;
    free(w->fo);
    w->fo = NULL;
    free(w->fo_us);
    w->fo_us = NULL;
    free(w->scratch);
    w->scratch = NULL;
    if (w->ep >= 0) close(w->ep);
    w->ep = -1;
}

/* Closes the socket; CLOSE_ABORT closes it with a reset (SO_LINGER 0). */
/* The longest a flood connection lived, connect() to the server's close, in
 * this process (one worker per process). */
static uint32_t flood_life_max_ms;

static void conn_close(struct load_conn *c, int reason, int err)
{
    struct linger rst = {.l_onoff = 1, .l_linger = 0};

    if ((c->flags & CONN_F_FLOOD) && c->fd >= 0 && reason != CLOSE_ABORT &&
        reason != CLOSE_CONNECT && reason != CLOSE_NONE) {
        int64_t life_ms = (load_now_us() - c->start_us) / 1000;
        if (life_ms > (int64_t)flood_life_max_ms) flood_life_max_ms = (uint32_t)life_ms;
    }

    if (c->fd >= 0 && reason == CLOSE_ABORT)
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = CONN_CLOSED;
    c->reason = (uint8_t)reason;
    c->err = err;
}

static void connect_failed(struct worker *w, struct load_conn *c, int err)
{
    w->last_connect_errno = err;
    conn_close(c, CLOSE_CONNECT, err);
}

static bool is_flood_slot(const struct worker *w, uint32_t slot)
{
    return slot >= w->n;
}

static const struct client_ops *ops_of(const struct worker *w, uint32_t slot)
{
    return is_flood_slot(w, slot) ? &flood_ops : w->ops;
}

/* The target number slot `slot` connects to now: a listener's place in its
 * URL list (--failover), the positional URL otherwise. */
static uint32_t url_of(const struct worker *w, uint32_t slot)
{
    if (w->fo == NULL || is_flood_slot(w, slot)) return 0;
    return failover_url(w->conns[slot].index, w->fo[slot].pos, w->o->n_urls);
}

/* Source address of a connection: listener k binds 127.0.0.1 + k % src_addrs,
 * flood connections their own range (attack.h). IPv6 targets use ::1 only. */
static int bind_source(const struct worker *w, int fd, const struct load_conn *c,
                       const struct load_target *t)
{
    struct sockaddr_in src = {.sin_family = AF_INET};
    int one = 1;

    if (t->addr.ss_family != AF_INET) return 0;
    if (c->flags & CONN_F_FLOOD)
        src.sin_addr.s_addr = htonl(attack_flood_source(w->o, c->index));
    else
        src.sin_addr.s_addr = htonl(0x7f000001u + c->index % w->o->src_addrs);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    return bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ? -errno : 0;
}

/* --failover: the stream of listener `slot` died (failover.h): it moves to
 * the next URL of its list, and its outage starts unless one is running. */
static void fail_over(struct worker *w, uint32_t slot, int64_t now_us)
{
    struct fo_state *fo = &w->fo[slot];

    fo->pos = (uint8_t)((fo->pos + 1) % w->o->n_urls);
    if (fo->moves < UINT16_MAX) fo->moves++;
    if (fo->down_us != 0) return;
    fo->down_us = now_us;
    fo->has_heard = false;
    if (fo->outages < UINT16_MAX) fo->outages++;
}

/* --retry: listener `slot` has just closed. Counts its run of 503s and, when
 * the mode and the failure call for it, schedules its next attempt (retry.h);
 * with --failover, a dead stream's next attempt goes to the next URL. */
static void end_outage(struct worker *w, uint32_t slot);

static void listener_closed(struct worker *w, uint32_t slot, int64_t now_us)
{
    struct load_conn *c = &w->conns[slot];
    bool is_503 = c->reason == CLOSE_REFUSED && c->status == 503;
    bool is_death = w->fo != NULL && failover_is_death(c->reason, c->status);
    bool is_failure = is_503 || is_death || c->reason == CLOSE_CONNECT ||
                      c->reason == CLOSE_RESET || c->reason == CLOSE_EOF;
    int32_t after_s = w->ops->retry_after_s != NULL ? w->ops->retry_after_s(c) : -1;
    int64_t delay_ms, at_us;

    if (c->status >= 200 && c->status < 300) { /* that attempt was admitted */
        c->fails = 0;
        c->run_503 = 0;
    }
    if (is_503 && c->run_503 < UINT8_MAX) c->run_503++;
    if (c->run_503 > c->max_503) c->max_503 = c->run_503;
    if (!is_failure) return;
    if (is_death) end_outage(w, slot); /* it may have heard before dying */
    if (is_death) fail_over(w, slot, now_us);
    if (c->fails < UINT8_MAX) c->fails++;
    delay_ms = retry_delay_ms(w->o->attack.retry, c->fails, after_s, retry_rand(&w->rng));
    at_us = now_us + delay_ms * 1000;
    if (delay_ms < 0 || at_us >= w->end_us) return;
    c->flags |= CONN_F_RETRY;
    c->retry_at_ms = (uint32_t)((at_us - w->t0_us) / 1000);
    if (at_us < w->next_retry_us) w->next_retry_us = at_us;
}

/* Opens slot `slot`'s socket: a nonblocking connect, watched for EPOLLOUT. */
static void conn_open(struct worker *w, struct load_conn *c, uint32_t slot)
{
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = slot};
    const struct load_target *t = &w->t[url_of(w, slot)];
    int rc;

    c->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return connect_failed(w, c, errno);
    rc = bind_source(w, c->fd, c, t);
    if (rc == 0 && (c->flags & CONN_F_STOPPER)) rc = attack_tune_stopper(c->fd);
    if (rc == 0 && connect(c->fd, (const struct sockaddr *)&t->addr, t->addr_len) < 0 &&
        errno != EINPROGRESS)
        rc = -errno;
    if (rc == 0 && epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) rc = -errno;
    if (rc < 0) connect_failed(w, c, -rc);
}

/* Starts connection slot `slot` (anew, for a retry): the driver's fields of
 * an attempt are reset, the client's by on_open, the retry counts kept. */
static void conn_start(struct worker *w, uint32_t slot, int64_t now_us)
{
    struct load_conn *c = &w->conns[slot];

    if (is_flood_slot(w, slot)) {
        c->index = w->id + (slot - w->n) * w->o->procs;
        c->flags = CONN_F_FLOOD;
    } else {
        c->index = w->id + slot * w->o->procs;
        c->flags = attack_is_stopper(w->o, c->index) ? CONN_F_STOPPER : 0;
    }
    c->start_us = now_us;
    c->state = CONN_CONNECTING;
    c->reason = CLOSE_NONE;
    c->err = 0;
    c->req_off = 0;
    c->status = 0;
    ops_of(w, slot)->on_open(c);
    if (w->fo != NULL && !is_flood_slot(w, slot)) w->fo[slot].last_rx_us = now_us;
    conn_open(w, c, slot);
    if (c->state == CONN_CLOSED && !is_flood_slot(w, slot)) listener_closed(w, slot, now_us);
}

/* Writes what is left of the request; switches to reading once it is out. */
static void send_request(struct worker *w, struct load_conn *c, uint32_t slot)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = slot};
    uint32_t u = url_of(w, slot);

    while (c->req_off < w->req_len[u]) {
        ssize_t n =
            send(c->fd, w->req[u] + c->req_off, (size_t)(w->req_len[u] - c->req_off), MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) return;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return conn_close(c, CLOSE_RESET, errno);
        c->req_off += (uint16_t)n;
    }
    c->state = CONN_READING;
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) conn_close(c, CLOSE_RESET, errno);
}

/* A client that writes its own bytes (flood_ops); once it is done, the
 * connection is only read (for the server's answer or close). */
static void write_own(struct worker *w, struct load_conn *c, uint32_t slot, int64_t now_us)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = slot};
    bool is_done = false;
    int reason = ops_of(w, slot)->on_writable(c, now_us, &is_done);

    if (reason != CLOSE_NONE) return conn_close(c, reason, 0);
    if (!is_done) return;
    c->state = CONN_READING;
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) conn_close(c, CLOSE_RESET, errno);
}

static void on_writable(struct worker *w, struct load_conn *c, uint32_t slot, int64_t now_us)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (c->state == CONN_CONNECTING) {
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err != 0) return connect_failed(w, c, err);
        c->state = CONN_SENDING;
    }
    if (ops_of(w, slot)->on_writable != NULL) return write_own(w, c, slot, now_us);
    send_request(w, c, slot);
}

static void on_readable(struct worker *w, uint32_t slot, const struct client_ops *ops,
                        int64_t now_us)
{
    struct load_conn *c = &w->conns[slot];

    for (int i = 0; i < READS_PER_WAKE; i++) {
        ssize_t n = read(c->fd, w->scratch, SCRATCH_SIZE);
        int reason;

        if (n == 0) return conn_close(c, CLOSE_EOF, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n < 0) return conn_close(c, CLOSE_RESET, errno);
        w->bytes += (uint64_t)n;
        if (w->fo != NULL && !is_flood_slot(w, slot)) w->fo[slot].last_rx_us = now_us;
        reason = ops->on_data(c, w->scratch, (size_t)n, now_us);
        if (reason != CLOSE_NONE) return conn_close(c, reason, 0);
        if (n < SCRATCH_SIZE) return;
    }
}

static void on_event(struct worker *w, const struct epoll_event *ev, int64_t now_us)
{
    uint32_t slot = ev->data.u32;
    struct load_conn *c = &w->conns[slot];

    if (is_flood_slot(w, slot) ? slot >= w->n + w->flood_started : slot >= w->started) return;
    if (c->state == CONN_CLOSED || (c->flags & CONN_F_STOPPED)) return;
    if (c->state == CONN_READING)
        on_readable(w, slot, ops_of(w, slot), now_us);
    else
        on_writable(w, c, slot, now_us);
    if (c->state == CONN_CLOSED && !is_flood_slot(w, slot)) listener_closed(w, slot, now_us);
}

/* Starts the joins due by `now_us`; returns true if more are already due. */
static bool join_due(struct worker *w, int64_t now_us)
{
    double elapsed = (double)(now_us - w->t0_us) / 1e6;
    double due = elapsed * w->rate + 1.0;
    uint32_t target = due >= w->n ? w->n : (uint32_t)due;
    uint32_t batch = 0;

    while (w->started < target && batch++ < JOIN_BATCH)
        conn_start(w, w->started++, now_us);
    return w->started < target;
}

/* The same for the flood (--flood), from its own start time. */
static bool flood_due(struct worker *w, int64_t now_us)
{
    double due = (double)(now_us - w->flood_t0_us) / 1e6 * w->flood_rate + 1.0;
    uint32_t target = now_us < w->flood_t0_us ? 0 : due >= w->nf ? w->nf : (uint32_t)due;
    uint32_t batch = 0;

    while (w->flood_started < target && batch++ < JOIN_BATCH)
        conn_start(w, w->n + w->flood_started++, now_us);
    return w->flood_started < target;
}

/* --retry: starts the listeners whose retry is due (at most JOIN_BATCH);
 * returns true if more are already due. */
static bool retry_due(struct worker *w, int64_t now_us)
{
    int64_t next = INT64_MAX;
    uint32_t batch = 0;

    if (now_us < w->next_retry_us) return false;
    w->next_retry_us = INT64_MAX; /* lowered again by retries failing at once */
    for (uint32_t i = 0; i < w->started; i++) {
        struct load_conn *c = &w->conns[i];
        int64_t at_us = w->t0_us + (int64_t)c->retry_at_ms * 1000;

        if (!(c->flags & CONN_F_RETRY)) continue;
        if (at_us <= now_us && batch < JOIN_BATCH) {
            batch++;
            if (c->retries < UINT16_MAX) c->retries++;
            conn_start(w, i, now_us);
            continue;
        }
        if (at_us < next) next = at_us;
    }
    if (next < w->next_retry_us) w->next_retry_us = next;
    return w->next_retry_us <= now_us;
}

/* The driver's part of the counts: connection states and close reasons. */
static void tally_conn(const struct load_conn *c, struct load_counts *k)
{
    if (c->state == CONN_CONNECTING || c->state == CONN_SENDING) k->connecting++;
    if (c->state == CONN_SENDING || c->state == CONN_READING) k->connected++;
    if (c->state == CONN_READING && c->status != 0) k->streaming++;
    if (c->state == CONN_READING && c->status == 0) k->waiting++;
    if (c->state != CONN_CLOSED) return;
    if (c->reason == CLOSE_CONNECT) k->failed_connect++;
    if (c->reason == CLOSE_RESET) k->failed_reset++;
    if (c->reason == CLOSE_EOF) k->failed_eof++;
    if (c->reason == CLOSE_PROTO) k->failed_proto++;
    if (c->reason == CLOSE_IDLE) k->failed_idle++;
    if (c->reason != CLOSE_REFUSED) return;
    k->refused++;
    if (c->status >= LOAD_STATUS_MIN && c->status <= LOAD_STATUS_MAX)
        k->status[c->status - LOAD_STATUS_MIN]++;
}

/* --retry: the listener's retries and runs of 503s; `is_hearing` when the
 * client counted it in hearing_clean. */
static void tally_retry(const struct load_conn *c, struct load_counts *k, bool is_hearing)
{
    k->retries += c->retries;
    if (c->retries > 0) k->retried++;
    if (c->retries > 0 && is_hearing) k->retried_hearing++;
    if (c->flags & CONN_F_RETRY) k->retry_pending++;
    if (c->max_503 > k->max_503) k->max_503 = c->max_503;
    if (c->max_503 > 0) k->hist_503[c->max_503 > 3 ? 3 : c->max_503 - 1]++;
}

/* --failover: listener `fo` failed over. The client counted it from its
 * current attempt (k's figures before that were `before`): its gap was a
 * stall, so it is never counted hearing since warm-up (hearing_clean), always
 * stalled ever; hearing now, if it hears again. */
static void tally_failover(const struct fo_state *fo, struct load_counts *k,
                           const struct load_counts *before)
{
    k->failed_over++;
    k->failovers += fo->moves;
    if (k->hearing_clean > before->hearing_clean) k->hearing_clean--;
    if (k->ever_stalled == before->ever_stalled) k->ever_stalled++;
    if (k->hearing > before->hearing) k->failover_hearing++;
    if (fo->has_heard) k->failover_heard++;
    if (fo->down_us != 0) k->failover_down++;
}

static void tally_all(const struct worker *w, struct load_counts *k, int64_t now_us)
{
    memset(k, 0, sizeof(*k));
    k->worst_pm = LOAD_WORST_NONE;
    k->joined = w->started;
    k->bytes = w->bytes;
    k->last_connect_errno = w->last_connect_errno;
    k->stop_first_us = w->stop_first_us;
    k->stop_last_us = w->stop_last_us;
    k->flood_life_max_ms = flood_life_max_ms;
    for (uint32_t i = 0; i < w->started; i++) {
        const struct load_conn *c = &w->conns[i];
        struct load_counts before = {.hearing_clean = k->hearing_clean,
                                     .ever_stalled = k->ever_stalled,
                                     .hearing = k->hearing};
        tally_conn(c, k);
        w->ops->tally(c, k, now_us);
        if (w->fo != NULL && w->fo[i].outages > 0) tally_failover(&w->fo[i], k, &before);
        tally_retry(c, k, k->hearing_clean > before.hearing_clean);
        if (!(c->flags & CONN_F_STOPPED)) continue;
        k->stopped_ever++;
        if (c->state == CONN_READING) k->stopped++;
    }
    for (uint32_t i = w->n; i < w->n + w->flood_started; i++)
        flood_ops.tally(&w->conns[i], k, now_us);
}

static int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_counts(const struct worker *w, uint32_t kind, uint32_t n_joins, uint32_t n_loud,
                       int64_t now_us)
{
    struct load_msg msg = {.kind = kind,
                           .worker = w->id,
                           .n_joins = n_joins,
                           .n_loud = n_loud,
                           .n_failover = kind == LOAD_MSG_FINAL ? w->n_fo_us : 0};

    tally_all(w, &msg.counts, now_us);
    return write_full(w->pipe_fd, &msg, sizeof(msg));
}

/* The --loud-bytes times of the listeners that saw a loud page, into `loud`
 * (room for w->started); returns how many. */
static uint32_t gather_loud(const struct worker *w, int64_t *loud)
{
    uint32_t n = 0;

    if (w->ops->loud_unix_us == NULL) return 0;
    for (uint32_t i = 0; i < w->started; i++) {
        int64_t us = w->ops->loud_unix_us(&w->conns[i]);
        if (us >= 0) loud[n++] = us;
    }
    return n;
}

/* The final record, then the join times of the listeners that got audio,
 * then the times of their first loud pages (--loud-bytes). */
static int send_final(const struct worker *w, int64_t now_us)
{
    size_t cap = w->started > 0 ? w->started : 1;
    uint32_t *joins = malloc(sizeof(*joins) * cap);
    int64_t *loud = malloc(sizeof(*loud) * cap);
    uint32_t n = 0, n_loud;
    int rc;

    if (joins == NULL || loud == NULL) {
        free(joins);
        free(loud);
        return send_counts(w, LOAD_MSG_FINAL, 0, 0, now_us);
    }
    for (uint32_t i = 0; i < w->started; i++) {
        int64_t us = w->ops->join_us(&w->conns[i]);
        if (us >= 0) joins[n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    }
    n_loud = gather_loud(w, loud);
    rc = send_counts(w, LOAD_MSG_FINAL, n, n_loud, now_us);
    if (rc == 0) rc = write_full(w->pipe_fd, joins, sizeof(*joins) * n);
    if (rc == 0) rc = write_full(w->pipe_fd, loud, sizeof(*loud) * n_loud);
    if (rc == 0 && w->n_fo_us > 0)
        rc = write_full(w->pipe_fd, w->fo_us, sizeof(*w->fo_us) * w->n_fo_us);
    free(joins);
    free(loud);
    return rc;
}

/* --stop-reading: the socket is no longer watched (nor read, ever again);
 * the client counts the listener as not hearing from now on. */
static void stop_reading(struct worker *w, struct load_conn *c, int64_t now_us)
{
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    c->flags |= CONN_F_STOPPED;
    if (w->ops->on_stop != NULL) w->ops->on_stop(c, now_us);
    if (w->stop_first_us == 0) w->stop_first_us = now_us - w->t0_us;
    w->stop_last_us = now_us - w->t0_us;
}

/* --failover: keeps one death-to-audio time (dropped beyond the cap). */
static void note_failover(struct worker *w, int64_t us)
{
    if (w->n_fo_us == w->cap_fo_us) {
        uint32_t cap = w->cap_fo_us > 0 ? w->cap_fo_us * 2 : 1024;
        uint32_t *p = cap <= FAILOVER_SAMPLES_MAX ? realloc(w->fo_us, cap * sizeof(*p)) : NULL;
        if (p == NULL) return;
        w->fo_us = p;
        w->cap_fo_us = cap;
    }
    w->fo_us[w->n_fo_us++] = us > UINT32_MAX ? UINT32_MAX : us < 0 ? 0 : (uint32_t)us;
}

/* --failover: listener `slot`'s outage ends at the first audio of its
 * current attempt. */
static void end_outage(struct worker *w, uint32_t slot)
{
    struct load_conn *c = &w->conns[slot];
    struct fo_state *fo = &w->fo[slot];
    int64_t audio_us = c->state != CONN_IDLE ? w->ops->join_us(c) : -1;

    /* an attempt started before the death is the one that died */
    if (fo->down_us == 0 || c->start_us < fo->down_us || audio_us < 0) return;
    note_failover(w, c->start_us + audio_us - fo->down_us);
    fo->down_us = 0;
}

/* --failover: whether listener `slot`'s client counts it hearing now. */
static bool is_hearing(const struct worker *w, uint32_t slot, int64_t now_us)
{
    struct load_counts k = {.worst_pm = LOAD_WORST_NONE};

    w->ops->tally(&w->conns[slot], &k, now_us);
    return k.hearing > 0;
}

/* --failover: ends the outage of listener `slot` at its first audio, notes
 * when it hears again (a full span meeting the bar: the meter's verdict); a
 * stream silent for --failover-idle (or an attempt that got nothing for that
 * long) has died. */
static void watch_failover(struct worker *w, uint32_t slot, int64_t now_us)
{
    struct load_conn *c = &w->conns[slot];
    struct fo_state *fo = &w->fo[slot];

    end_outage(w, slot);
    if (fo->outages > 0 && fo->down_us == 0 && !fo->has_heard && c->state == CONN_READING)
        fo->has_heard = is_hearing(w, slot, now_us);
    if (c->state == CONN_CLOSED || c->state == CONN_IDLE || (c->flags & CONN_F_STOPPED)) return;
    if (now_us - fo->last_rx_us < (int64_t)w->o->failover_idle_ms * 1000) return;
    conn_close(c, CLOSE_IDLE, ETIMEDOUT);
    listener_closed(w, slot, now_us);
}

static void tick_all(struct worker *w, int64_t now_us)
{
    for (uint32_t i = 0; i < w->started; i++) {
        struct load_conn *c = &w->conns[i];
        if (w->fo != NULL) watch_failover(w, i, now_us);
        if (c->state != CONN_READING || c->status == 0 || (c->flags & CONN_F_STOPPED)) continue;
        if ((c->flags & CONN_F_STOPPER) && w->ops->join_us(c) >= 0 &&
            attack_should_stop(w->o, c->start_us + w->ops->join_us(c), now_us)) {
            stop_reading(w, c, now_us);
            continue;
        }
        w->ops->on_tick(c, now_us);
    }
    for (uint32_t i = w->n; i < w->n + w->flood_started; i++)
        if (w->conns[i].state == CONN_READING) flood_ops.on_tick(&w->conns[i], now_us);
}

/* Timers due at `now_us`; returns the epoll_wait() timeout in ms. */
static int run_timers(struct worker *w, int64_t now_us, bool is_join_behind)
{
    int64_t next = w->end_us;

    if (now_us >= w->next_tick_us) {
        tick_all(w, now_us);
        w->next_tick_us += TICK_US * ((now_us - w->next_tick_us) / TICK_US + 1);
    }
    if (now_us >= w->next_report_us) {
        send_counts(w, LOAD_MSG_TICK, 0, 0, now_us);
        w->next_report_us += REPORT_US * ((now_us - w->next_report_us) / REPORT_US + 1);
    }
    if (w->next_tick_us < next) next = w->next_tick_us;
    if (w->next_report_us < next) next = w->next_report_us;
    if (w->started < w->n) {
        int64_t join_at = w->t0_us + (int64_t)(w->started / w->rate * 1e6);
        if (join_at < next) next = join_at;
    }
    if (w->flood_started < w->nf) {
        int64_t join_at = w->flood_t0_us + (int64_t)(w->flood_started / w->flood_rate * 1e6);
        if (join_at < next) next = join_at;
    }
    if (w->next_retry_us < next) next = w->next_retry_us;
    if (is_join_behind || next <= now_us) return 0;
    return (int)((next - now_us + 999) / 1000);
}

/* With --read-interval, sleeps out the rest of the interval since the last
 * pass (or until the next timer), so that each pass drains several server
 * writes per read. Returns the time after the sleep. */
static int64_t pace_reads(const struct worker *w, int64_t last_pass_us, int64_t now_us)
{
    int64_t wake = last_pass_us + (int64_t)w->o->read_interval_ms * 1000;
    struct timespec ts;

    if (w->next_tick_us < wake) wake = w->next_tick_us;
    if (w->next_report_us < wake) wake = w->next_report_us;
    if (w->o->read_interval_ms == 0 || wake <= now_us || is_stop_requested) return now_us;
    ts.tv_sec = (time_t)(wake / 1000000);
    ts.tv_nsec = (long)(wake % 1000000) * 1000;
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    return load_now_us();
}

static void run_loop(struct worker *w)
{
    struct epoll_event events[MAX_EVENTS];
    int64_t now_us = load_now_us(), last_pass_us = 0;

    while (!is_stop_requested && now_us < w->end_us) {
        bool is_join_behind = join_due(w, now_us);
        if (flood_due(w, now_us)) is_join_behind = true;
        if (retry_due(w, now_us)) is_join_behind = true;
        int timeout = run_timers(w, now_us, is_join_behind);
        int n = epoll_wait(w->ep, events, MAX_EVENTS, timeout);

        now_us = load_now_us();
        for (int i = 0; i < n; i++) {
            if ((i & 127) == 127) now_us = load_now_us();
            on_event(w, &events[i], now_us);
        }
        now_us = load_now_us();
        if (n > 0 && n < MAX_EVENTS) {
            now_us = pace_reads(w, last_pass_us, now_us);
            last_pass_us = now_us;
        }
    }
}

int worker_run(const struct load_opts *o, const struct load_target *t, const struct client_ops *ops,
               uint32_t worker, int pipe_fd, int64_t t0_us)
{
    struct worker w = {.o = o, .t = t, .ops = ops, .ep = -1};
    int rc;

    setup_process();
    rc = worker_init(&w, worker, pipe_fd, t0_us);
    if (rc == 0) {
        run_loop(&w);
        tick_all(&w, load_now_us());
        rc = send_final(&w, load_now_us());
    }
    worker_fini(&w);
    return rc;
}
