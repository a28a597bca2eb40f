/* Settings: one typed table, read from an INI file (libinih) and from flags.
 *
 * Every setting has a name (the flag is --name, the INI key is `name` in the
 * [tribune] section, or in a section named by the part before the first '_'
 * is NOT used: keep one flat [tribune] section), a type, a default and a line
 * of help. Precedence: defaults < config file < flags.
 *
 * Thread: main thread, at start-up only. Errors: 0 or negative errno, with a
 * message written to `err` (size `errlen`) that names the setting and the value.
 */
#ifndef TRIBUNE_CONFIG_CONFIG_H
#define TRIBUNE_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config {
    char listen[64];          /* ADDR:PORT, default 127.0.0.1:8000 */
    char admin_listen[64];    /* ADDR:PORT served by the master alone, default "" (none) */
    char data[256];           /* data directory, default ./tribune-data */
    int workers;              /* delivery worker processes, default 0 = auto */
    int burst_ms;             /* audio sent at once to a new listener, default 1500 */
    int ring_ms;              /* audio kept per space for catching up, default 10000 */
    int chunk_ms;             /* audio per chunk (Ogg page), default 100 */
    int write_interval_ms;    /* coalesce writes up to this when loaded, default 500 */
    int header_timeout_ms;    /* whole request head must arrive within, default 10000 */
    int max_header_bytes;     /* request line + headers, default 8192 (431 above) */
    int max_url_bytes;        /* request target, default 2048 (414 above) */
    int max_listeners;        /* per node, default 100000 */
    int join_rate;            /* listener joins admitted per second per node, default 10000 */
    int join_burst;           /* joins admitted at once per node, default 20000 */
    int fd_reserve;           /* descriptors per process kept from new listeners, default 64 */
    int memory_budget_mb;     /* memory listeners may cost, 0 = 3/4 of MemAvailable at start */
    int addr_conn_rate;       /* new connections per second per client address, default 100 */
    int addr_conn_burst;      /* new connections at once per client address, default 500 */
    int addr_handshakes;      /* connections in their handshake per client address, default 256 */
    int ticket_ttl_s;         /* lifetime of a join ticket, default 60 */
    int sndbuf_bytes;         /* listener socket send buffer, default 8192 */
    int stall_timeout_ms;     /* a listener making no progress is dropped, default 30000 */
    int publisher_timeout_ms; /* a silent publisher is dropped, default 10000 */
    int program_channels;     /* channels of each space's program, default 1 */
    int program_bitrate;      /* program bit rate, default 48000 */
    int jitter_ms;            /* per-speaker jitter buffer, default 300 */
    int max_speakers;         /* speakers a host may invite per space, default 13 */
    int max_requests;         /* pending requests to speak per space, default 100 */
    int record;               /* record live spaces, default 1 */
    int recording_sync_ms;    /* fdatasync cadence of recordings, default 1000 */
    int recording_retention_days; /* delete recordings ended this long ago, 0 = keep */
    char log_level[16];           /* error|warn|info|debug, default info */
    char log_format[8];           /* text|json, default text */
    char origin[256];             /* an edge relay's origin, http://HOST:PORT; "" = not a relay */
    char edge_key[128];           /* shared secret of edge count reports, "" = loopback only */
    char edges[1024];      /* base URLs of edges a full node steers joins to (302), "" = none */
    char config_file[256]; /* where settings came from, if any */
};

/* Fills `c` with the defaults. */
void config_defaults(struct config *c);

/* Loads an INI file into `c`. Unknown keys and bad values are errors. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* Sets one setting by name ("burst_ms", or with dashes "burst-ms") from text. */
int config_set(struct config *c, const char *name, const char *value, char *err, size_t errlen);

/* Parses argv[first..argc) as --name value or --name=value flags, applying a
 * --config FILE first wherever it appears. Returns 0, or -EINVAL for an unknown
 * flag or bad value. "--help" is not handled here. */
int config_parse_args(struct config *c, int argc, char **argv, int first, char *err, size_t errlen);

/* Prints every setting with its default and help, one per line. */
void config_print_help(FILE *out);

/* Splits "ADDR:PORT" (or "[v6]:PORT") into a sockaddr-ready host and port. */
int config_split_listen(const char *listen, char *host, size_t hostlen, uint16_t *port);

#endif
