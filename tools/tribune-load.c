/* tribune-load: joins many listeners to a live stream and measures, without
 * asking the server, how many of them actually hear it.
 *
 *   parent: argv, URL (loopback only), fork workers, progress line, report
 *      |  one pipe per worker: struct load_msg every second, a final one with
 *      v  join times at the end
 *   workers x P (load/worker.c): epoll loop, nonblocking connects from many
 *      source addresses, a client_ops per protocol (load/player.c: Ogg/Opus)
 *
 * The run is bounded: joins stop at N, workers stop at the duration, and the
 * parent kills any worker that has not reported a few seconds later.
 * Exit status: 0 when the run completed (whatever the hearing figure), 1 when
 * it could not run or lost a worker, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "load/attack.h"
#include "load/client.h"
#include "load/failover.h"
#include "load/load.h"
#include "load/report.h"
#include "load/retry.h"
#include "load/url.h"
#include "load/worker.h"

#define EXIT_USAGE 2
#define CONNS_PER_PROC 15000 /* default; a process may hold at most 20,000 fds here */
#define CONNS_PER_SRC_ADDR 50
#define FD_RESERVE 32
#define KILL_GRACE_US 5000000
#define PROGRESS_LAG_US 200000 /* print after the workers' once-a-second counts arrive */
#define MAX_FLOOD 1000000

/* Long options without a short form. */
enum {
    OPT_STOP_READING = 256,
    OPT_STOP_AFTER,
    OPT_FLOOD,
    OPT_FLOOD_RATE,
    OPT_FLOOD_START,
    OPT_FLOOD_TRICKLE,
    OPT_FLOOD_MODE,
    OPT_FLOOD_ADDRS,
    OPT_RETRY,
    OPT_LOUD_BYTES,
    OPT_FAILOVER,
    OPT_FAILOVER_IDLE,
};

/* --failover URL[,URL...] as given (may be repeated), parsed after argv. */
static char failover_arg[LOAD_MAX_URLS * 700];

/* One worker process as the parent sees it. */
struct proc {
    pid_t pid;
    int fd; /* read end of its pipe, -1 once at EOF */
    bool has_final;
    uint32_t n_joins;
    uint32_t *joins;
    uint32_t n_loud;
    int64_t *loud; /* --loud-bytes: first loud page per listener, unix us */
    uint32_t n_failover;
    uint32_t *failover; /* --failover: death-to-audio times, us */
    struct load_counts last;
};

static volatile sig_atomic_t is_interrupted;

/* The listener a URL asks for: the WebSocket player when its path (before any
 * query) ends in "/ws", the progressive Ogg player otherwise. */
static const struct client_ops *listener_ops(const struct load_target *t)
{
    size_t n = strcspn(t->path, "?");
    return n >= 3 && memcmp(t->path + n - 3, "/ws", 3) == 0 ? &ws_player_ops : &player_ops;
}

static void on_interrupt(int sig)
{
    (void)sig;
    is_interrupted = 1;
}

static void usage(FILE *out)
{
    fputs("usage: tribune-load URL [-n LISTENERS] [-r JOINS_PER_S] [-d SECONDS] [-p PROCESSES]\n"
          "                    [--json FILE] [--warmup SECONDS] [--src-addrs N] [--max-gap-ms MS]\n"
          "                    [--min-pct PCT] [--read-interval MS] [--trace I] [--quiet]\n"
          "                    [--loud-bytes N]\n"
          "                    [--failover URL[,URL...] [--failover-idle SECONDS]]\n"
          "                    [--stop-reading K --stop-after S] [--retry MODE]\n"
          "                    [--flood N --flood-rate R [--flood-start S] [--flood-mode MODE]\n"
          "                     [--flood-addrs K] [--flood-trickle MS]]\n"
          "  URL          http://HOST:PORT/PATH, HOST in 127.0.0.0/8, ::1 or localhost; a PATH\n"
          "               ending in /ws listens over WebSocket (/spaces/ID/ws)\n"
          "  -n           listeners to join (default 100)\n"
          "  -r           joins per second, over all processes (default 1000)\n"
          "  -d           run length in seconds, joins included (default 30); make it longer\n"
          "               than N/r + warm-up + a few seconds, or late joiners are not judged\n"
          "  -p           worker processes (default: at most 15,000 listeners each)\n"
          "  --json       write the final report as JSON to FILE\n"
          "  --warmup     seconds after first audio before a listener is judged (default 2)\n"
          "  --src-addrs  source addresses 127.0.0.1 and up (default: one per 50)\n"
          "  --max-gap-ms longest tolerated gap between complete audio pages (default 1000)\n"
          "  --min-pct    audio time each span must carry, % of its length (default 90)\n"
          "  --read-interval  read sockets at most once per MS (default 0: as data comes);\n"
          "               saves load-generator CPU, coarsens gaps and join times by up to 2 x MS;\n"
          "               spans then last at least 8 x MS\n"
          "  --trace I    print every judged span of listener I (0-based) to stderr\n"
          "  --bitrate    accepted and ignored (the rule no longer needs a nominal bitrate)\n"
          "  --quiet      no progress line\n"
          "  --failover URL[,URL...]  more URLs for every listener (at most 7, same\n"
          "               path kind as URL; the option may be repeated): all listeners\n"
          "               join URL; when a listener's stream dies (connect refused or\n"
          "               reset, closed by the server, a 5xx such as 503, or no byte for\n"
          "               --failover-idle) it joins its next URL after --retry's delay\n"
          "               (jitter unless another mode is named: 0-1 s, doubling per\n"
          "               failure in a row, never below a 503's Retry-After). Each\n"
          "               listener's list is URL then the --failover URLs rotated by its\n"
          "               number (listener i tries failover URL i mod K first), so a\n"
          "               dead server's crowd spreads evenly; the list wraps around.\n"
          "               A listener that failed over counts as stalled ever and never\n"
          "               as hearing (its gap was a stall), but as hearing now once it\n"
          "               hears again. Report: failovers (moves to a next URL),\n"
          "               listeners failed over, heard again (a span meeting the bar\n"
          "               since their last outage), hearing now, between streams,\n"
          "               and time from a stream's death to audio again (p50/p99/max)\n"
          "  --failover-idle S  seconds without a byte after which a stream (or an\n"
          "               attempt) counts as dead (default 5; Tribune's edges send\n"
          "               silence while their origin is away, so they never trip it)\n"
          "  --loud-bytes N  time to sound: note, per listener, the wall-clock time\n"
          "               (unix epoch, CLOCK_REALTIME) of its first audio page on which an\n"
          "               Opus packet longer than N bytes ends (default 0: off). Lengths\n"
          "               come from the pages' segment tables; a packet continued across\n"
          "               pages counts whole, on the page where it ends. Opus codes\n"
          "               silence in a few bytes per packet, a tone at 48 kbit/s in about\n"
          "               100: 20 is a good threshold. Report: \"loud\" (listeners that saw\n"
          "               one; first, p50, p99 and last time, unix seconds)\n"
          "\n"
          "Attack modes (loopback only, bounded by -d like everything else):\n"
          "  --stop-reading K  the last K listeners stop reading S seconds after their\n"
          "               first audio (they connect with a 2 KiB receive buffer and a\n"
          "               1000-byte MSS, so the server feels it at once); from then on\n"
          "               they count as stopped=K and as stalled, never as hearing\n"
          "  --stop-after S    seconds (default 10)\n"
          "  --retry MODE  what a listener does when refused with 503, when it cannot\n"
          "               connect, or when its stream ends: none (default: gives up),\n"
          "               after (waits exactly Retry-After seconds, 1 s without one),\n"
          "               hls (hls.js, un-jittered: 1, 2, 4, 8, 8 ... s whatever\n"
          "               Retry-After says), jitter (exponential backoff with full\n"
          "               jitter from 1 s, capped at 30 s, never below Retry-After).\n"
          "               A listener admitted after retrying is judged from that join\n"
          "               (its warm-up starts again). Report: listeners retried,\n"
          "               attempts, waiting to retry, hearing after retrying, and the\n"
          "               longest run of consecutive 503s per listener (max and\n"
          "               how many listeners had 1, 2, 3, >3)\n"
          "  --flood N    N more connections from other source addresses (127.0.1.1 and\n"
          "               up), started on schedule whatever became of the ones before;\n"
          "               what each does is --flood-mode's\n"
          "  --flood-rate R    flood connections per second (required with --flood)\n"
          "  --flood-start S   seconds into the run when the flood begins (default 0)\n"
          "  --flood-mode MODE  hold (default): send nothing, or with --flood-trickle\n"
          "               one byte of an endless request head every MS (slowloris);\n"
          "               held until the server closes it or the run ends.\n"
          "               reset: close at once with a reset (SO_LINGER 0).\n"
          "               junk: 1-4 KB of random bytes, then read until the server\n"
          "               closes. oversize: a 64 KiB request target (even connections)\n"
          "               or 200 header fields (odd). slow-body: a POST /api/spaces head\n"
          "               with Content-Length 60000, then one body byte every\n"
          "               --flood-trickle MS (required)\n"
          "  --flood-addrs K   spread the flood over K source addresses from 127.0.1.1\n"
          "               (default: one per 10,000 connections; 1: a single address)\n"
          "  --flood-trickle MS  one byte every MS (hold and slow-body; default 0)\n"
          "               Report: how each flood connection ended: answered (by\n"
          "               status), bad answer, closed without answer, reset by the\n"
          "               server, reset by us, still waiting; failed to connect\n"
          "\n"
          "Hearing. Each listener is judged on its own, from what it receives, never from\n"
          "what the server reports. Every complete Ogg audio page is credited with the\n"
          "audio time it carries: its granule position's advance over the previous page\n"
          "(48 kHz samples). A page that does not follow its predecessor (page sequence\n"
          "number jump, granule going back or leaping) is a skip: the missing audio is\n"
          "not credited. After the warm-up, time is cut into spans that start and end on\n"
          "a page arrival and last at least 1 s (pages within 5 ms of each other, such\n"
          "as a backlog released at once after a delay, end a span together); a span\n"
          "passes when the audio credited in it is at least --min-pct of its\n"
          "wall-clock length (0.9 s of audio per\n"
          "second by default), so the verdict does not depend on the page period or on\n"
          "the stream's exact bitrate. Any gap longer than --max-gap-ms between complete\n"
          "audio pages after the warm-up fails at once. A listener counts as hearing in\n"
          "the final report when it is still connected, has passed at least one span\n"
          "and never failed one (\"stalled ever\" counts those that failed).\n",
          out);
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) return -EINVAL;
    *out = v;
    return 0;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    double v;

    if (parse_num(s, lo, hi, &v) < 0 || v != floor(v)) return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* A mode's number from its parser, or -EINVAL. */
static int parse_mode(int mode, uint32_t *out)
{
    if (mode < 0) return mode;
    *out = (uint32_t)mode;
    return 0;
}

static int parse_option(int ch, const char *arg, struct load_opts *o)
{
    double v;

    switch (ch) {
    case 'n':
        return parse_u32(arg, 1, 1000000, &o->listeners);
    case 'r':
        return parse_num(arg, 0.001, 1e7, &o->joins_per_s);
    case 'd':
        return parse_u32(arg, 1, 86400, &o->duration_s);
    case 'p':
        return parse_u32(arg, 1, LOAD_MAX_PROCS, &o->procs);
    case 'j':
        o->json_path = arg;
        return 0;
    case 'b':
        return parse_num(arg, 1, 1e9, &v);
    case 't':
        if (parse_num(arg, 0, 1e7, &v) < 0 || v != floor(v)) return -EINVAL;
        o->trace_listener = (int64_t)v;
        return 0;
    case 'w':
        if (parse_num(arg, 0, 3600, &v) < 0) return -EINVAL;
        o->warmup_ms = (uint32_t)(v * 1000);
        return 0;
    case 's':
        return parse_u32(arg, 1, LOAD_MAX_SRC_ADDRS, &o->src_addrs);
    case 'g':
        return parse_u32(arg, 1, 3600000, &o->max_gap_ms);
    case 'm':
        return parse_u32(arg, 1, 100, &o->min_pct);
    case 'i':
        return parse_u32(arg, 0, 1000, &o->read_interval_ms);
    case 'q':
        o->is_quiet = true;
        return 0;
    case OPT_STOP_READING:
        return parse_u32(arg, 0, 1000000, &o->attack.stop_reading);
    case OPT_STOP_AFTER:
        if (parse_num(arg, 0, 86400, &v) < 0) return -EINVAL;
        o->attack.stop_after_ms = (uint32_t)(v * 1000);
        return 0;
    case OPT_FLOOD:
        return parse_u32(arg, 0, MAX_FLOOD, &o->attack.flood);
    case OPT_FLOOD_RATE:
        return parse_num(arg, 0.001, 1e6, &o->attack.flood_rate);
    case OPT_FLOOD_START:
        if (parse_num(arg, 0, 86400, &v) < 0) return -EINVAL;
        o->attack.flood_start_ms = (uint32_t)(v * 1000);
        return 0;
    case OPT_FLOOD_TRICKLE:
        return parse_u32(arg, 0, 600000, &o->attack.flood_trickle_ms);
    case OPT_FLOOD_ADDRS:
        return parse_u32(arg, 1, LOAD_MAX_SRC_ADDRS, &o->attack.flood_addrs);
    case OPT_FLOOD_MODE:
        return parse_mode(attack_flood_mode_parse(arg), &o->attack.flood_mode);
    case OPT_RETRY:
        return parse_mode(retry_mode_parse(arg), &o->attack.retry);
    case OPT_LOUD_BYTES:
        return parse_u32(arg, 0, 65535, &o->loud_bytes);
    case OPT_FAILOVER:
        if (strlen(failover_arg) + strlen(arg) + 2 > sizeof(failover_arg)) return -EINVAL;
        if (failover_arg[0] != '\0') strcat(failover_arg, ",");
        strcat(failover_arg, arg);
        return 0;
    case OPT_FAILOVER_IDLE:
        if (parse_num(arg, 0.1, 3600, &v) < 0) return -EINVAL;
        o->failover_idle_ms = (uint32_t)(v * 1000);
        return 0;
    default:
        return -EINVAL;
    }
}

/* Most connections one worker may hold: its fd hard limit, less a reserve. */
static uint32_t conns_per_proc_max(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max == RLIM_INFINITY) return 1000000;
    return rl.rlim_max > FD_RESERVE ? (uint32_t)(rl.rlim_max - FD_RESERVE) : 1;
}

/* Fills in the defaults that depend on N, and checks the fd budget. */
static int finish_opts(struct load_opts *o)
{
    uint32_t cap = conns_per_proc_max();
    uint32_t per = cap < CONNS_PER_PROC ? cap : CONNS_PER_PROC;
    /* reset connections give their descriptor back at once */
    uint32_t held = o->attack.flood_mode == FLOOD_RESET ? 0 : o->attack.flood;

    if (o->procs == 0) o->procs = (o->listeners + per - 1) / per;
    if (o->procs > o->listeners) o->procs = o->listeners;
    if (o->src_addrs == 0)
        o->src_addrs = (o->listeners + CONNS_PER_SRC_ADDR - 1) / CONNS_PER_SRC_ADDR;
    if ((o->listeners + held + o->procs - 1) / o->procs > cap) {
        fprintf(
            stderr,
            "tribune-load: %u listeners and %u held flood connections over %u processes exceeds %u "
            "fds per process\n",
            o->listeners, held, o->procs, cap);
        return -EINVAL;
    }
    if (o->procs > LOAD_MAX_PROCS) {
        fprintf(stderr, "tribune-load: would need %u processes (max %d)\n", o->procs,
                LOAD_MAX_PROCS);
        return -EINVAL;
    }
    return attack_check(o);
}

/* --failover's URLs into t[1...]: loopback, and the same kind of listener as
 * t[0]'s. With them, --retry none becomes jitter (failover.h). */
static int parse_failover(struct load_opts *o, struct load_target *t)
{
    char err[256];
    char *save = NULL;

    for (char *u = strtok_r(failover_arg, ",", &save); u != NULL; u = strtok_r(NULL, ",", &save)) {
        if (o->n_urls == LOAD_MAX_URLS) {
            fprintf(stderr, "tribune-load: at most %d --failover URLs\n", LOAD_MAX_URLS - 1);
            return -EINVAL;
        }
        if (url_parse(u, &t[o->n_urls], err, sizeof(err)) < 0) {
            fprintf(stderr, "tribune-load: --failover: %s\n", err);
            return -EINVAL;
        }
        if (listener_ops(&t[o->n_urls]) != listener_ops(&t[0])) {
            fprintf(stderr, "tribune-load: --failover %s: not the same kind of stream as %s\n",
                    t[o->n_urls].url, t[0].url);
            return -EINVAL;
        }
        o->n_urls++;
    }
    if (o->n_urls > 1 && o->attack.retry == RETRY_NONE) o->attack.retry = RETRY_JITTER;
    return 0;
}

static int parse_args(int argc, char **argv, struct load_opts *o, struct load_target *t)
{
    static const struct option longs[] = {
        {"json", required_argument, NULL, 'j'},
        {"trace", required_argument, NULL, 't'},
        {"bitrate", required_argument, NULL, 'b'},
        {"warmup", required_argument, NULL, 'w'},
        {"src-addrs", required_argument, NULL, 's'},
        {"max-gap-ms", required_argument, NULL, 'g'},
        {"min-pct", required_argument, NULL, 'm'},
        {"read-interval", required_argument, NULL, 'i'},
        {"quiet", no_argument, NULL, 'q'},
        {"stop-reading", required_argument, NULL, OPT_STOP_READING},
        {"stop-after", required_argument, NULL, OPT_STOP_AFTER},
        {"flood", required_argument, NULL, OPT_FLOOD},
        {"flood-rate", required_argument, NULL, OPT_FLOOD_RATE},
        {"flood-start", required_argument, NULL, OPT_FLOOD_START},
        {"flood-trickle", required_argument, NULL, OPT_FLOOD_TRICKLE},
        {"flood-mode", required_argument, NULL, OPT_FLOOD_MODE},
        {"flood-addrs", required_argument, NULL, OPT_FLOOD_ADDRS},
        {"retry", required_argument, NULL, OPT_RETRY},
        {"loud-bytes", required_argument, NULL, OPT_LOUD_BYTES},
        {"failover", required_argument, NULL, OPT_FAILOVER},
        {"failover-idle", required_argument, NULL, OPT_FAILOVER_IDLE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    char err[256];
    int ch;

    *o = (struct load_opts){.listeners = 100,
                            .joins_per_s = 1000,
                            .duration_s = 30,
                            .trace_listener = -1,
                            .warmup_ms = 2000,
                            .max_gap_ms = 1000,
                            .min_pct = 90,
                            .n_urls = 1,
                            .failover_idle_ms = FAILOVER_IDLE_MS,
                            .attack = {.stop_after_ms = 10000}};
    while ((ch = getopt_long(argc, argv, "n:r:d:p:qh", longs, NULL)) != -1) {
        if (ch == 'h') return usage(stdout), 1;
        if (ch == '?' || parse_option(ch, optarg, o) < 0) {
            if (ch != '?') fprintf(stderr, "tribune-load: bad value '%s'\n", optarg);
            return usage(stderr), -EINVAL;
        }
    }
    if (optind != argc - 1) return usage(stderr), -EINVAL;
    if (url_parse(argv[optind], t, err, sizeof(err)) < 0) {
        fprintf(stderr, "tribune-load: %s\n", err);
        return -EINVAL;
    }
    if (parse_failover(o, t) < 0) return -EINVAL;
    return finish_opts(o);
}

/* Forks worker `w`; in the child, runs it and exits. */
static int spawn(struct proc *procs, uint32_t w, const struct load_opts *o,
                 const struct load_target *t, int64_t t0_us)
{
    int fds[2];

    if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
    fflush(NULL);
    procs[w].pid = fork();
    if (procs[w].pid < 0) return -errno;
    if (procs[w].pid == 0) {
        close(fds[0]);
        for (uint32_t i = 0; i < w; i++)
            close(procs[i].fd);
        _exit(worker_run(o, t, listener_ops(t), w, fds[1], t0_us) == 0 ? 0 : 1);
    }
    close(fds[1]);
    procs[w].fd = fds[0];
    return 0;
}

/* Reads exactly `len` bytes, waiting at most ~2 s for each part. */
static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (poll(&pfd, 1, 2000) == 0) return -ETIMEDOUT;
        n = read(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n == 0 ? -EPIPE : -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One record from worker `p`; a final one brings its join times and its
 * first-loud-page times along. */
static void read_record(struct proc *p)
{
    struct load_msg msg;

    if (read_full(p->fd, &msg, sizeof(msg)) < 0) goto eof;
    p->last = msg.counts;
    if (msg.kind != LOAD_MSG_FINAL) return;
    p->joins = calloc(msg.n_joins > 0 ? msg.n_joins : 1, sizeof(*p->joins));
    if (p->joins == NULL || read_full(p->fd, p->joins, msg.n_joins * sizeof(*p->joins)) < 0)
        goto eof;
    p->n_joins = msg.n_joins;
    p->loud = calloc(msg.n_loud > 0 ? msg.n_loud : 1, sizeof(*p->loud));
    if (p->loud == NULL || read_full(p->fd, p->loud, (size_t)msg.n_loud * sizeof(*p->loud)) < 0)
        goto eof;
    p->n_loud = msg.n_loud;
    p->failover = calloc(msg.n_failover > 0 ? msg.n_failover : 1, sizeof(*p->failover));
    if (p->failover == NULL ||
        read_full(p->fd, p->failover, (size_t)msg.n_failover * sizeof(*p->failover)) < 0)
        goto eof;
    p->n_failover = msg.n_failover;
    p->has_final = true;
eof:
    close(p->fd);
    p->fd = -1;
}

static void sum_counts(const struct proc *procs, uint32_t n, struct load_counts *k)
{
    memset(k, 0, sizeof(*k));
    k->worst_pm = LOAD_WORST_NONE;
    for (uint32_t i = 0; i < n; i++)
        report_add(k, &procs[i].last);
}

static bool is_any_open(const struct proc *procs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (procs[i].fd >= 0) return true;
    return false;
}

static void signal_all(const struct proc *procs, uint32_t n, int sig)
{
    for (uint32_t i = 0; i < n; i++)
        if (procs[i].pid > 0 && (sig == SIGTERM || !procs[i].has_final)) kill(procs[i].pid, sig);
}

/* Waits for every worker's pipe to deliver its final record (or close). */
static void poll_workers(struct proc *procs, uint32_t n, int timeout_ms)
{
    struct pollfd pfds[LOAD_MAX_PROCS];

    for (uint32_t i = 0; i < n; i++)
        pfds[i] = (struct pollfd){.fd = procs[i].fd, .events = POLLIN};
    if (poll(pfds, n, timeout_ms) <= 0) return;
    for (uint32_t i = 0; i < n; i++)
        if (pfds[i].revents != 0 && procs[i].fd >= 0) read_record(&procs[i]);
}

/* The parent's loop: progress each second until every worker has reported. */
static void collect(struct proc *procs, uint32_t n, const struct load_opts *o, int64_t t0_us)
{
    int64_t deadline = t0_us + (int64_t)o->duration_s * 1000000 + KILL_GRACE_US;
    int64_t next_progress = t0_us + 1000000 + PROGRESS_LAG_US;
    bool has_term = false;

    while (is_any_open(procs, n)) {
        int64_t now = load_now_us();
        int64_t next = next_progress < deadline ? next_progress : deadline;
        struct load_counts k;

        if (now >= deadline) break;
        if (is_interrupted && !has_term) {
            signal_all(procs, n, SIGTERM);
            has_term = true;
            if (now + 3000000 < deadline) deadline = now + 3000000;
        }
        poll_workers(procs, n, next > now ? (int)((next - now + 999) / 1000) : 0);
        now = load_now_us();
        if (now < next_progress) continue;
        next_progress += 1000000;
        if (o->is_quiet || now > t0_us + (int64_t)o->duration_s * 1000000 + PROGRESS_LAG_US)
            continue;
        sum_counts(procs, n, &k);
        report_progress(stderr, o, (double)((now - t0_us + 500000) / 1000000), &k);
    }
}

/* Kills workers that did not report, reaps all; returns how many were lost. */
static uint32_t reap(struct proc *procs, uint32_t n)
{
    uint32_t lost = 0;

    signal_all(procs, n, SIGKILL);
    for (uint32_t i = 0; i < n; i++) {
        if (procs[i].pid > 0) waitpid(procs[i].pid, NULL, 0);
        if (procs[i].fd >= 0) close(procs[i].fd);
        procs[i].fd = -1;
        if (!procs[i].has_final) lost++;
    }
    return lost;
}

/* Gathers every worker's first-loud-page times into one array (taken by the
 * caller). */
static int64_t *gather_loud(struct proc *procs, uint32_t n, size_t *count)
{
    size_t total = 0, at = 0;
    int64_t *all;

    for (uint32_t i = 0; i < n; i++)
        total += procs[i].n_loud;
    all = malloc((total > 0 ? total : 1) * sizeof(*all));
    if (all == NULL) total = 0;
    for (uint32_t i = 0; i < n && all != NULL; i++) {
        memcpy(all + at, procs[i].loud, procs[i].n_loud * sizeof(*all));
        at += procs[i].n_loud;
    }
    for (uint32_t i = 0; i < n; i++) {
        free(procs[i].loud);
        procs[i].loud = NULL;
    }
    *count = total;
    return all;
}

/* Gathers every worker's join times (or, with `is_failover`, its
 * death-to-audio times) into one array (taken by the caller). */
static uint32_t *gather_times(struct proc *procs, uint32_t n, bool is_failover, size_t *count)
{
    size_t total = 0, at = 0;
    uint32_t *all;

    for (uint32_t i = 0; i < n; i++)
        total += is_failover ? procs[i].n_failover : procs[i].n_joins;
    all = malloc((total > 0 ? total : 1) * sizeof(*all));
    if (all == NULL) total = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t **v = is_failover ? &procs[i].failover : &procs[i].joins;
        uint32_t k = is_failover ? procs[i].n_failover : procs[i].n_joins;
        if (all != NULL) memcpy(all + at, *v, k * sizeof(*all));
        at += k;
        free(*v);
        *v = NULL;
    }
    *count = total;
    return all;
}

static int run(const struct load_opts *o, const struct load_target *t)
{
    struct proc procs[LOAD_MAX_PROCS] = {0};
    struct report_run r = {.o = o, .t = t};
    struct load_counts k;
    int64_t t0_us = load_now_us();
    uint32_t n = 0, *joins;
    size_t n_joins;
    int rc = 0;

    player_configure(o, t0_us);
    flood_configure(o);
    for (; n < o->procs && rc == 0; n++)
        rc = spawn(procs, n, o, t, t0_us);
    if (rc < 0) {
        fprintf(stderr, "tribune-load: cannot start workers: %s\n", strerror(-rc));
        is_interrupted = 1;
    }
    collect(procs, n, o, t0_us);
    r.duration_s = (double)(load_now_us() - t0_us) / 1e6;
    r.workers_lost = reap(procs, n);
    sum_counts(procs, n, &k);
    joins = gather_times(procs, n, false, &n_joins);
    r.failover_us = gather_times(procs, n, true, &r.n_failover);
    r.loud_us = gather_loud(procs, n, &r.n_loud);
    if (report_final(stdout, &r, &k, joins, n_joins) < 0) {
        fprintf(stderr, "tribune-load: cannot write %s: %s\n", o->json_path, strerror(errno));
        rc = -EIO;
    }
    free(joins);
    free(r.failover_us);
    free(r.loud_us);
    return rc == 0 && r.workers_lost == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_interrupt};
    struct load_opts o;
    static struct load_target t[LOAD_MAX_URLS];
    int rc = parse_args(argc, argv, &o, t);

    if (rc != 0) return rc > 0 ? 0 : EXIT_USAGE;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return run(&o, t);
}
