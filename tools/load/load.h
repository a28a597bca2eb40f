/* tribune-load: the types shared by the parent process and its workers.
 *
 * The parent parses the command line into a struct load_opts and a struct
 * load_target, forks the workers, and reads struct load_msg records from one
 * pipe per worker. Everything here is plain data: it crosses fork() and pipes.
 * Thread: each process is single-threaded.
 */
#ifndef TRIBUNE_TOOLS_LOAD_H
#define TRIBUNE_TOOLS_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>

#define LOAD_MAX_PROCS 256
#define LOAD_MAX_SRC_ADDRS 65536
#define LOAD_STATUS_MIN 100
#define LOAD_STATUS_MAX 599
#define LOAD_WORST_NONE UINT32_MAX
#define LOAD_MAX_URLS 8     /* the positional URL and up to 7 --failover URLs */
#define LOAD_FLOOD_CODES 12 /* distinct status codes the flood's answers are counted by */

/* --flood-mode: what each flood connection does once connected (attack.h). */
enum load_flood_mode {
    FLOOD_HOLD,      /* nothing (or, with --flood-trickle, a slowloris head), held */
    FLOOD_RESET,     /* close at once with a reset (SO_LINGER 0) */
    FLOOD_JUNK,      /* 1-4 KB of random bytes, then read until the server closes */
    FLOOD_OVERSIZE,  /* a 64 KB request line, or 200 header fields */
    FLOOD_SLOW_BODY, /* a POST head, then one body byte per --flood-trickle */
    FLOOD_MODES
};

/* --retry: what a listener does when refused with 503, when it cannot connect
 * or when its stream ends (retry.h). */
enum load_retry_mode {
    RETRY_NONE,   /* gives up */
    RETRY_AFTER,  /* waits Retry-After seconds exactly */
    RETRY_HLS,    /* hls.js: 1, 2, 4, 8, 8 ... s, whatever Retry-After says */
    RETRY_JITTER, /* exponential backoff with full jitter, at least Retry-After */
    RETRY_MODES
};

/* Where the listeners go. Loopback only: url_parse() refuses anything else. */
struct load_target {
    struct sockaddr_storage addr; /* resolved loopback address and port */
    socklen_t addr_len;
    char host[96]; /* Host header value, as written in the URL (with port) */
    char path[512];
    char url[640];
};

/* Attack modes (load/attack.h): listeners that misbehave, and connections
 * that are not listeners at all. All zero: a plain run. */
struct load_attack {
    uint32_t stop_reading;     /* --stop-reading K: the last K listeners stop reading */
    uint32_t stop_after_ms;    /* --stop-after S: that long after their first audio */
    uint32_t flood;            /* --flood N: extra connections that never make a request */
    double flood_rate;         /* --flood-rate R: flood connections per second */
    uint32_t flood_start_ms;   /* --flood-start S: when the flood begins, from the run's start */
    uint32_t flood_trickle_ms; /* --flood-trickle MS: 0 idle, else one header byte per MS */
    uint32_t flood_mode;       /* --flood-mode: enum load_flood_mode */
    uint32_t flood_addrs;      /* --flood-addrs K: source addresses of the flood, 0: default */
    uint32_t retry;            /* --retry: enum load_retry_mode, for listeners */
};

/* The run, as the user asked for it (defaults filled in by the parent). */
struct load_opts {
    uint32_t listeners;        /* -n */
    double joins_per_s;        /* -r */
    uint32_t duration_s;       /* -d: the whole run, joins included */
    uint32_t procs;            /* -p */
    uint32_t src_addrs;        /* --src-addrs */
    uint32_t warmup_ms;        /* --warmup */
    uint32_t max_gap_ms;       /* largest tolerated gap between complete audio pages */
    uint32_t min_pct;          /* audio time per wall time each span must carry, % */
    int64_t trace_listener;    /* --trace: listener index whose spans are printed, or -1 */
    uint32_t read_interval_ms; /* 0: read as data comes; else at most one pass per interval */
    uint32_t loud_bytes;       /* --loud-bytes: 0 off; else note each listener's first audio page
                                * with an Opus packet longer than this (player.c) */
    uint32_t n_urls;           /* targets: the positional URL, then --failover's (failover.h) */
    uint32_t failover_idle_ms; /* --failover-idle: a stream silent this long has died */
    const char *json_path;
    bool is_quiet;
    struct load_attack attack;
};

/* How many flood connections were answered with one status code. */
struct load_code_count {
    uint16_t code; /* 0: slot unused */
    uint32_t n;
};

/* Counts of one worker (or, summed, of the run) at one instant. A listener is
 * in exactly one of: connecting, waiting (response head not done or no audio
 * yet), warming, hearing, stalled, or closed (failed_* or refused). */
struct load_counts {
    uint32_t joined;     /* connection attempts started */
    uint32_t connecting; /* TCP handshake or request not finished */
    uint32_t connected;  /* TCP connection open now */
    uint32_t streaming;  /* open and answered 2xx */
    uint32_t waiting;    /* open, no complete audio page yet */
    uint32_t got_audio;  /* ever received a complete audio page */
    uint32_t warming;    /* open, audio flowing, still in warm-up */
    uint32_t hearing;    /* open and meeting the bar now */
    uint32_t stalled;    /* open, past warm-up, not meeting the bar now */
    uint32_t ever_stalled;
    uint32_t hearing_clean; /* open, judged, and every span since warm-up met the bar */
    uint32_t ever_skipped;  /* listeners that saw at least one discontinuity */
    uint32_t skips;         /* discontinuities, all listeners */
    uint32_t spans_low;     /* listeners whose worst span was under the bar */
    uint32_t worst_pm;      /* lowest span ratio of any listener, per mille, or LOAD_WORST_NONE */
    uint32_t judged;        /* listeners with at least one span judged */
    uint32_t failed_connect;
    uint32_t failed_reset;
    uint32_t failed_eof;   /* the server closed a stream that had been answered */
    uint32_t failed_proto; /* malformed response or not Ogg */
    uint32_t refused;      /* answered with a non-2xx status */
    uint32_t max_gap_ms;   /* largest gap between complete pages, any listener */
    int32_t last_connect_errno;
    uint64_t bytes;         /* every byte read */
    uint64_t audio_bytes;   /* body bytes of complete audio pages after each first */
    uint64_t audio_samples; /* audio credited by the meters, 48 kHz samples */
    uint64_t pages;
    uint64_t resyncs;                                       /* Ogg capture pattern lost */
    uint32_t status[LOAD_STATUS_MAX - LOAD_STATUS_MIN + 1]; /* refusals by status code */
    /* --stop-reading: listeners that stopped reading (counted in `stalled` too) */
    uint32_t stopped;      /* open and stopped now */
    uint32_t stopped_ever; /* stopped at some point (open or not) */
    int64_t stop_first_us; /* first and last stop, from the run's start; 0: none */
    int64_t stop_last_us;
    /* --flood: connections that are not listeners (never in the counts above) */
    uint32_t flood_started;          /* connection attempts started */
    uint32_t flood_connecting;       /* TCP handshake in flight */
    uint32_t flood_open;             /* connected and still open */
    uint32_t flood_closed_by_server; /* closed (FIN or RST) by the server after connecting */
    uint32_t flood_failed_connect;   /* could not connect */
    uint32_t flood_answered;         /* the server sent bytes (a refusal) before closing */
    /* --flood: how each flood connection ended (or stands), one of these each:
     * flood_connecting, an answer counted in flood_status (or flood_status_other),
     * flood_bad_answer, flood_waiting, flood_failed_connect, flood_reset_sent,
     * flood_reset_by_server, flood_silent */
    struct load_code_count flood_status[LOAD_FLOOD_CODES]; /* answered: by status, sorted */
    uint32_t flood_status_other;    /* answered with a code that did not fit the table */
    uint32_t flood_bad_answer;      /* sent bytes that are not a complete response head */
    uint32_t flood_waiting;         /* connected, no answer yet */
    uint32_t flood_reset_sent;      /* --flood-mode reset: we closed it with a reset */
    uint32_t flood_reset_by_server; /* reset by the server without an answer */
    uint32_t flood_silent;          /* closed by the server without an answer */
    /* --retry: listeners that tried again (counted in the figures above as
     * their current attempt stands) */
    uint32_t retries;           /* attempts after each listener's first */
    uint32_t retried;           /* listeners that tried again at least once */
    uint32_t retry_pending;     /* closed now, to try again before the run ends */
    uint32_t retried_hearing;   /* retried, and counted in hearing_clean */
    uint32_t max_503;           /* most consecutive 503s of any listener */
    uint32_t flood_life_max_ms; /* longest a flood connection lived before the server closed it */
    uint32_t hist_503[4];       /* listeners whose longest run of 503s was 1, 2, 3, > 3 */
    /* --failover (failover.h): listeners whose stream died and who moved to
     * their next URL. A listener that failed over counts as "stalled ever"
     * and never in hearing_clean (its gap was a stall); once it hears again
     * it counts in `hearing` (hearing now) and in failover_hearing. */
    uint32_t failed_idle;      /* closed after --failover-idle without a byte */
    uint32_t failovers;        /* attempts on a next URL, all listeners */
    uint32_t failed_over;      /* listeners whose stream died at least once */
    uint32_t failover_heard;   /* of those, met the bar again since their last outage */
    uint32_t failover_hearing; /* of those, hearing now */
    uint32_t failover_down;    /* of those, without audio now (between streams) */
};

enum load_msg_kind { LOAD_MSG_TICK = 1, LOAD_MSG_FINAL = 2 };

/* One record on a worker's pipe. A FINAL record is followed by n_joins
 * uint32_t join-to-first-audio times in microseconds, then n_loud int64_t
 * first-loud-page times (--loud-bytes: unix epoch microseconds, CLOCK_REALTIME,
 * one per listener that saw one), then n_failover uint32_t times from a
 * stream's death to audio again (--failover, microseconds). A record is smaller than PIPE_BUF, so
 * it is written atomically. */
struct load_msg {
    uint32_t kind;
    uint32_t worker;
    uint32_t n_joins;
    uint32_t n_loud;
    uint32_t n_failover;
    struct load_counts counts;
};

_Static_assert(sizeof(struct load_msg) <= 4096, "a load_msg must fit in PIPE_BUF");

/* Microseconds on CLOCK_MONOTONIC, shared by all processes of a run. */
static inline int64_t load_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Microseconds since the unix epoch (CLOCK_REALTIME): for times other tools
 * compare with their own clocks (--loud-bytes). */
static inline int64_t load_unix_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
