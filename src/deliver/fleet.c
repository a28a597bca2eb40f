#include "deliver/fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "deliver/chunk.h"
#include "deliver/feed.h"
#include "deliver/worker.h"
#include "deliver/worker.h"

enum { BACKOFF_MIN_MS = 100, BACKOFF_MAX_MS = 5000, STABLE_MS = 10000, STOP_GRACE_MS = 5000 };

struct pending {
    struct list node;
    struct chan_msg m;
    int fd;
    unsigned char payload[];
};

int fleet_size(const struct config *cfg)
{
    if (cfg->workers > 0) return cfg->workers < FLEET_MAX ? cfg->workers : FLEET_MAX;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n = (int)((cfg->max_listeners + WORKER_MAX_LISTENERS * 4 / 5 - 1) /
                  (WORKER_MAX_LISTENERS * 4 / 5));
    if (cores > n) n = (int)cores;
    if (n < 1) n = 1;
    return n < FLEET_MAX ? n : FLEET_MAX;
}

static void drop_pending(struct fleet_worker *fw)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &fw->pending)
    {
        struct pending *p = list_entry(pos, struct pending, node);
        list_remove(&p->node);
        if (p->fd >= 0) close(p->fd);
        free(p);
    }
    fw->pending_bytes = 0;
}

/* The worker's channel is gone (it died, or we stop it): forget it. */
static void worker_down(struct fleet_worker *fw)
{
    struct fleet *f = fw->fleet;
    if (fw->io.fd >= 0) {
        loop_del(f->loop, &fw->io);
        close(fw->io.fd);
        fw->io.fd = -1;
    }
    drop_pending(fw);
    /* counters never go back: a dead worker's refusals stay in the totals */
    for (int r = 0; r < REFUSE_N; r++)
        fw->retired.count[r] += fw->refusals.count[r];
    memset(&fw->refusals, 0, sizeof(fw->refusals));
    if (fw->is_up && f->ev.on_down) f->ev.on_down(f, fw->idx, f->ev.arg);
    fw->is_up = false;
}

static void flush_pending(struct fleet_worker *fw)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &fw->pending)
    {
        struct pending *p = list_entry(pos, struct pending, node);
        int err = chan_send(fw->io.fd, &p->m, p->payload, p->fd);
        if (err == -EAGAIN) return;
        list_remove(&p->node);
        fw->pending_bytes -= p->m.len + sizeof(*p);
        if (p->fd >= 0) close(p->fd);
        free(p);
    }
    loop_mod(fw->fleet->loop, &fw->io, EPOLLIN);
}

static void on_message(struct fleet_worker *fw, const struct chan_msg *m, const void *p, int fd)
{
    struct fleet *f = fw->fleet;
    if (m->type == CHAN_HANDOFF && fd >= 0 && f->ev.on_handoff) {
        f->ev.on_handoff(f, fw->idx, fd, p, m->len, f->ev.arg);
        return;
    }
    if (m->type == CHAN_STATS && !m->space[0] && m->len == sizeof(fw->refusals))
        memcpy(&fw->refusals, p, sizeof(fw->refusals));
    else if (m->type == CHAN_STATS && m->len == sizeof(struct feed_stats) && f->ev.on_stats)
        f->ev.on_stats(f, fw->idx, m->space, m->flags, p, f->ev.arg);
    else if (m->type == CHAN_EDGE_GONE && f->ev.on_edge_gone)
        f->ev.on_edge_gone(f, fw->idx, m->space, p, m->len, f->ev.arg);
    if (fd >= 0) close(fd);
}

static void on_chan(struct io *io, uint32_t events)
{
    struct fleet_worker *fw = list_entry(io, struct fleet_worker, io);
    struct fleet *f = fw->fleet;
    if (events & EPOLLOUT) flush_pending(fw);
    for (int i = 0; i < 256 && fw->io.fd >= 0; i++) {
        struct chan_msg m;
        const void *payload;
        int fd;
        int r = chan_recv(io->fd, f->buf, sizeof(struct chan_msg) + CHAN_MAX_PAYLOAD, &m, &payload,
                          &fd);
        if (r == -EAGAIN) return;
        if (r == -EBADMSG) continue;
        if (r <= 0) {
            worker_down(fw); /* reaped and restarted on SIGCHLD */
            return;
        }
        on_message(fw, &m, payload, fd);
    }
}

/* In the child, between fork and exec: channel on fd 3, default signal
 * mask and handlers, and death with the master. Only async-signal-safe calls. */
static void exec_worker(const char *exe, int chan)
{
    if (chan != WORKER_CHANNEL_FD) {
        dup2(chan, WORKER_CHANNEL_FD);
    } else {
        int fl = fcntl(chan, F_GETFD);
        fcntl(chan, F_SETFD, fl & ~FD_CLOEXEC);
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    char *const argv[] = {(char *)"tribune", (char *)"__worker", NULL};
    execv(exe, argv);
    _exit(127);
}

static int spawn(struct fleet_worker *fw)
{
    struct fleet *f = fw->fleet;
    int fds[2];
    int err = chan_pair(fds);
    if (err < 0) return err;
    pid_t master = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        err = -errno;
        close(fds[0]);
        close(fds[1]);
        return err;
    }
    if (pid == 0) {
        close(fds[0]);
        if (getppid() != master) _exit(1);
        exec_worker(f->exe, fds[1]);
    }
    close(fds[1]);
    fw->pid = pid;
    fw->io.fd = fds[0];
    fw->started_ms = loop_now_ms(f->loop);
    list_init(&fw->pending);
    err = loop_add(f->loop, &fw->io, EPOLLIN, on_chan);
    if (err < 0) return err;
    fw->is_up = true;
    struct chan_msg m;
    chan_msg_init(&m, CHAN_CONFIG, NULL, sizeof(struct config));
    fleet_send(f, fw->idx, &m, f->cfg, -1);
    log_debug("worker %d started (pid %d)", fw->idx, (int)pid);
    if (f->ev.on_up) f->ev.on_up(f, fw->idx, f->ev.arg);
    return 0;
}

static void on_restart(struct timer *t)
{
    struct fleet_worker *fw = list_entry(t, struct fleet_worker, restart);
    if (fw->fleet->is_stopping || fw->pid) return;
    int err = spawn(fw);
    if (err < 0) {
        log_error("worker %d: cannot start: %s", fw->idx, strerror(-err));
        worker_down(fw);
        timer_start(fw->fleet->loop, t, loop_now_ms(fw->fleet->loop) + BACKOFF_MAX_MS);
    }
}

int fleet_start(struct fleet *f, struct loop *loop, const struct config *cfg, const char *exe,
                int n, const struct fleet_events *ev)
{
    memset(f, 0, sizeof(*f));
    f->loop = loop;
    f->cfg = cfg;
    f->ev = *ev;
    f->n = n < FLEET_MAX ? n : FLEET_MAX;
    snprintf(f->exe, sizeof(f->exe), "%s", exe);
    f->buf = malloc(sizeof(struct chan_msg) + CHAN_MAX_PAYLOAD);
    if (!f->buf) return -ENOMEM;
    for (int i = 0; i < f->n; i++) {
        struct fleet_worker *fw = &f->w[i];
        fw->fleet = f;
        fw->idx = i;
        fw->io.fd = -1;
        fw->backoff_ms = BACKOFF_MIN_MS;
        list_init(&fw->pending);
        timer_init(&fw->restart, on_restart);
    }
    for (int i = 0; i < f->n; i++) {
        int err = spawn(&f->w[i]);
        if (err < 0) {
            log_error("cannot start worker %d: %s", i, strerror(-err));
            return err;
        }
    }
    log_info("%d delivery workers started", f->n);
    return 0;
}

static struct fleet_worker *by_pid(struct fleet *f, pid_t pid)
{
    for (int i = 0; i < f->n; i++)
        if (f->w[i].pid == pid) return &f->w[i];
    return NULL;
}

static void describe_exit(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, cap, "stopped (status %d)", status);
}

void fleet_reap(struct fleet *f)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct fleet_worker *fw = by_pid(f, pid);
        if (!fw) continue;
        fw->pid = 0;
        worker_down(fw);
        if (f->is_stopping) continue;
        char why[64];
        describe_exit(status, why, sizeof(why));
        uint64_t now = loop_now_ms(f->loop);
        if (now - fw->started_ms > STABLE_MS) fw->backoff_ms = BACKOFF_MIN_MS;
        log_warn("worker %d (pid %d) %s; restarting in %llu ms", fw->idx, (int)pid, why,
                 (unsigned long long)fw->backoff_ms);
        fw->restarts++;
        timer_start(f->loop, &fw->restart, now + fw->backoff_ms);
        fw->backoff_ms = fw->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : fw->backoff_ms * 2;
    }
}

/* Waits for every worker to exit, up to `ms`; returns how many are left. */
static int wait_all(struct fleet *f, int ms)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int left = 0;
        for (int i = 0; i < f->n; i++) {
            if (!f->w[i].pid) continue;
            if (waitpid(f->w[i].pid, NULL, WNOHANG) == f->w[i].pid)
                f->w[i].pid = 0;
            else
                left++;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long el = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (!left || el >= ms) return left;
        struct timespec tick = {0, 5 * 1000 * 1000};
        nanosleep(&tick, NULL); /* shutdown only: the loop no longer runs */
    }
}

void fleet_stop(struct fleet *f)
{
    f->is_stopping = true;
    for (int i = 0; i < f->n; i++) {
        struct fleet_worker *fw = &f->w[i];
        timer_stop(&fw->restart);
        if (fw->pid) kill(fw->pid, SIGTERM);
        worker_down(fw);
    }
    if (wait_all(f, STOP_GRACE_MS)) {
        log_warn("workers did not stop in %d ms: killing them", STOP_GRACE_MS);
        for (int i = 0; i < f->n; i++)
            if (f->w[i].pid) kill(f->w[i].pid, SIGKILL);
        wait_all(f, STOP_GRACE_MS);
    }
    free(f->buf);
    f->buf = NULL;
}

static int queue(struct fleet_worker *fw, const struct chan_msg *m, const void *payload, int fd)
{
    if (fw->pending_bytes > FLEET_MAX_PENDING) {
        log_error("worker %d is not reading its channel: killing it", fw->idx);
        if (fw->pid) kill(fw->pid, SIGKILL);
        worker_down(fw);
        return -EPIPE;
    }
    struct pending *p = malloc(sizeof(*p) + m->len);
    if (!p) return -ENOMEM;
    p->m = *m;
    memcpy(p->payload, payload, m->len);
    p->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (list_is_empty(&fw->pending)) loop_mod(fw->fleet->loop, &fw->io, EPOLLIN | EPOLLOUT);
    list_push_back(&fw->pending, &p->node);
    fw->pending_bytes += m->len + sizeof(*p);
    return 0;
}

int fleet_send(struct fleet *f, int w, const struct chan_msg *m, const void *payload, int fd)
{
    if (w < 0 || w >= f->n) return -EINVAL;
    struct fleet_worker *fw = &f->w[w];
    if (!fw->is_up) return -EPIPE;
    if (!list_is_empty(&fw->pending)) return queue(fw, m, payload, fd);
    int err = chan_send(fw->io.fd, m, payload, fd);
    if (err == -EAGAIN) return queue(fw, m, payload, fd);
    /* A message too large is the sender's problem, not the channel's. */
    if (err < 0 && err != -EMSGSIZE && err != -EINVAL) worker_down(fw);
    return err;
}

void fleet_broadcast(struct fleet *f, const struct chan_msg *m, const void *payload)
{
    for (int i = 0; i < f->n; i++)
        if (f->w[i].is_up) fleet_send(f, i, m, payload, -1);
}

static void chunk_msg(struct chan_msg *m, const char *id, const struct chunk *c, int is_header)
{
    chan_msg_init(m, is_header ? CHAN_HEADER : CHAN_CHUNK, id, c->len);
    m->a = c->granule;
    m->b = c->duration;
}

void fleet_broadcast_chunk(struct fleet *f, const char *id, unsigned fmt, const struct chunk *c,
                           int is_header)
{
    struct chan_msg m;
    chunk_msg(&m, id, c, is_header);
    m.flags = (uint16_t)fmt;
    fleet_broadcast(f, &m, c->data);
}

void fleet_sync_feed(struct fleet *f, int w, const char *id, const struct feed *feed,
                     uint64_t flags)
{
    struct chan_msg m;
    chan_msg_init(&m, CHAN_SPACE, id, 0);
    m.a = flags;
    fleet_send(f, w, &m, NULL, -1);
    if (!feed->header) return;
    uint16_t fmt = feed->is_ws ? CHAN_FMT_WS : CHAN_FMT_OGG;
    chunk_msg(&m, id, feed->header, 1);
    m.flags = fmt;
    fleet_send(f, w, &m, feed->header->data, -1);
    for (uint64_t s = ring_burst_start(&feed->ring, feed->burst_chunks); s < feed->ring.head; s++) {
        const struct chunk *c = ring_get(&feed->ring, s);
        if (!c) continue;
        chunk_msg(&m, id, c, 0);
        m.flags = fmt;
        fleet_send(f, w, &m, c->data, -1);
    }
}

void fleet_broadcast_space(struct fleet *f, const char *id, uint64_t flags)
{
    struct chan_msg m;
    chan_msg_init(&m, CHAN_SPACE, id, 0);
    m.a = flags;
    fleet_broadcast(f, &m, NULL);
}

void fleet_totals(const struct fleet *f, unsigned *up, uint64_t *restarts, struct refusals *refused)
{
    for (int w = 0; w < f->n; w++) {
        *up += f->w[w].is_up;
        *restarts += f->w[w].restarts;
        for (int r = 0; r < REFUSE_N; r++)
            refused->count[r] += f->w[w].refusals.count[r] + f->w[w].retired.count[r];
    }
}

bool fleet_is_up(const struct fleet *f)
{
    for (int i = 0; i < f->n; i++)
        if (f->w[i].is_up) return true;
    return false;
}

int fleet_give_listener(struct fleet *f, int w, const char *id, int fd, int is_head,
                        const char *ws_accept, const char *edge, size_t edge_len)
{
    if (w < 0 || w >= f->n || !f->w[w].is_up) {
        w = -1;
        for (int i = 0; i < f->n && w < 0; i++)
            if (f->w[i].is_up) w = i;
        if (w < 0) return -EAGAIN;
    }
    struct chan_msg m;
    char payload[28 + WORKER_EDGE_ID_MAX];
    size_t alen = ws_accept ? strlen(ws_accept) : 0;
    if (alen > 28) return -EINVAL;
    if (alen) memcpy(payload, ws_accept, alen);
    if (alen == 28 && edge && edge_len && edge_len <= WORKER_EDGE_ID_MAX) {
        memcpy(payload + alen, edge, edge_len); /* an edge's upstream: after the accept value */
        alen += edge_len;
    }
    chan_msg_init(&m, CHAN_LISTENER, id, (uint32_t)alen);
    m.a = is_head ? 1 : 0;
    m.flags = ws_accept ? CHAN_FMT_WS : CHAN_FMT_OGG;
    return fleet_send(f, w, &m, payload, fd);
}
