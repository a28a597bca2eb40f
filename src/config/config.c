/* Settings: one static table of typed rows drives everything here.
 *
 *   defaults      each row's default text is parsed like any other value
 *   INI file      libinih calls on_pair() per key; the row named by the key parses the value
 *   flags         --name value / --name=value, the same rows, the same parsing
 *   help          one aligned line per row
 *
 * So adding a setting is one field in struct config and one row below; nothing
 * else needs to know. Names compare with '-' and '_' as the same character.
 *
 * Errors name where the value came from, then the setting, then the value:
 *   tribune.ini:3: unknown setting "foo"
 *   --burst-ms: "abc" is not a number between 0 and 60000
 * Only the first error is reported; the config is changed only when the whole
 * file (or the whole argument list) is good.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum setting_type {
    SETTING_INT,    /* an int in [min, max] */
    SETTING_STRING, /* text of at least `min` bytes that fits the field; one of `choices` if set */
    SETTING_LISTEN, /* text that config_split_listen() accepts */
    SETTING_FILE,   /* --config: read before every other flag; never a key in a file */
};

struct setting {
    const char *name; /* INI key and flag, spelled with '_' */
    enum setting_type type;
    size_t offset;       /* of the field in struct config */
    size_t size;         /* of the field: for strings, the longest value is size - 1 */
    int min, max;        /* ints: bounds; strings: `min` is the shortest length */
    const char *choices; /* strings: "a|b|c" when only these values are allowed */
    const char *arg;     /* placeholder in help: --name ARG */
    const char *def;     /* default, as text */
    const char *help;
};

#define FIELD(f) .offset = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)

static const struct setting settings[] = {
    {.name = "config",
     .type = SETTING_FILE,
     FIELD(config_file),
     .arg = "FILE",
     .def = "",
     .help = "read settings from this INI file first; flags still win"},
    {.name = "listen",
     .type = SETTING_LISTEN,
     FIELD(listen),
     .arg = "ADDR:PORT",
     .def = "127.0.0.1:8000",
     .help = "address and port to listen on"},
    {.name = "admin_listen",
     .type = SETTING_LISTEN,
     FIELD(admin_listen),
     .arg = "ADDR:PORT",
     .def = "",
     .help = "a second address served by the master alone (API, metrics, events, top): it "
             "answers when the workers' port is saturated; empty = none"},
    {.name = "data",
     .type = SETTING_STRING,
     FIELD(data),
     .min = 1,
     .arg = "DIR",
     .def = "./tribune-data",
     .help = "data directory: space registry and recordings"},
    {.name = "workers",
     .type = SETTING_INT,
     FIELD(workers),
     .min = 0,
     .max = 1024,
     .arg = "N",
     .def = "0",
     .help = "delivery worker processes, 0 = auto"},
    {.name = "burst_ms",
     .type = SETTING_INT,
     FIELD(burst_ms),
     .min = 0,
     .max = 60000,
     .arg = "MS",
     .def = "1500",
     .help = "audio sent at once to a new listener"},
    {.name = "ring_ms",
     .type = SETTING_INT,
     FIELD(ring_ms),
     .min = 1000,
     .max = 600000,
     .arg = "MS",
     .def = "10000",
     .help = "audio kept per space for catching up"},
    {.name = "chunk_ms",
     .type = SETTING_INT,
     FIELD(chunk_ms),
     .min = 20,
     .max = 1000,
     .arg = "MS",
     .def = "100",
     .help = "audio per chunk, one Ogg page"},
    {.name = "write_interval_ms",
     .type = SETTING_INT,
     FIELD(write_interval_ms),
     .min = 20,
     .max = 2000,
     .arg = "MS",
     .def = "500",
     .help = "longest gap between writes to one listener when a worker is loaded "
             "(chunks are coalesced up to this)"},
    {.name = "header_timeout_ms",
     .type = SETTING_INT,
     FIELD(header_timeout_ms),
     .min = 100,
     .max = 600000,
     .arg = "MS",
     .def = "10000",
     .help = "the whole request head must arrive within this time"},
    {.name = "max_header_bytes",
     .type = SETTING_INT,
     FIELD(max_header_bytes),
     .min = 1024,
     .max = 1048576,
     .arg = "BYTES",
     .def = "8192",
     .help = "request line and headers; larger is refused with 431"},
    {.name = "max_url_bytes",
     .type = SETTING_INT,
     FIELD(max_url_bytes),
     .min = 64,
     .max = 65536,
     .arg = "BYTES",
     .def = "2048",
     .help = "request target; longer is refused with 414"},
    {.name = "max_listeners",
     .type = SETTING_INT,
     FIELD(max_listeners),
     .min = 1,
     .max = 10000000,
     .arg = "N",
     .def = "100000",
     .help = "listeners per node"},
    {.name = "join_rate",
     .type = SETTING_INT,
     FIELD(join_rate),
     .min = 1,
     .max = 10000000,
     .arg = "N",
     .def = "10000",
     .help = "listener joins admitted per second per node (503 + Retry-After beyond)"},
    {.name = "join_burst",
     .type = SETTING_INT,
     FIELD(join_burst),
     .min = 1,
     .max = 10000000,
     .arg = "N",
     .def = "20000",
     .help = "listener joins admitted at once per node"},
    {.name = "fd_reserve",
     .type = SETTING_INT,
     FIELD(fd_reserve),
     .min = 0,
     .max = 100000,
     .arg = "N",
     .def = "64",
     .help = "descriptors per process that new listeners may not take"},
    {.name = "memory_budget_mb",
     .type = SETTING_INT,
     FIELD(memory_budget_mb),
     .min = 0,
     .max = 16777216,
     .arg = "MB",
     .def = "0",
     .help = "memory listeners may cost (kernel buffers included), 0 = 3/4 of MemAvailable"},
    {.name = "addr_conn_rate",
     .type = SETTING_INT,
     FIELD(addr_conn_rate),
     .min = 0,
     .max = 1000000,
     .arg = "N",
     .def = "100",
     .help = "new connections per second per client address, 0 = no limit"},
    {.name = "addr_conn_burst",
     .type = SETTING_INT,
     FIELD(addr_conn_burst),
     .min = 0,
     .max = 1000000,
     .arg = "N",
     .def = "500",
     .help = "new connections at once per client address"},
    {.name = "addr_handshakes",
     .type = SETTING_INT,
     FIELD(addr_handshakes),
     .min = 0,
     .max = 1000000,
     .arg = "N",
     .def = "256",
     .help = "connections still sending their request per client address, 0 = no limit"},
    {.name = "ticket_ttl_s",
     .type = SETTING_INT,
     FIELD(ticket_ttl_s),
     .min = 1,
     .max = 86400,
     .arg = "S",
     .def = "60",
     .help = "lifetime of a join ticket (GET /api/spaces/{id}/ticket)"},
    {.name = "sndbuf_bytes",
     .type = SETTING_INT,
     FIELD(sndbuf_bytes),
     .min = 4096,
     .max = 16777216,
     .arg = "BYTES",
     .def = "8192",
     .help = "listener socket send buffer"},
    {.name = "stall_timeout_ms",
     .type = SETTING_INT,
     FIELD(stall_timeout_ms),
     .min = 1000,
     .max = 3600000,
     .arg = "MS",
     .def = "30000",
     .help = "a listener making no progress this long is dropped"},
    {.name = "publisher_timeout_ms",
     .type = SETTING_INT,
     FIELD(publisher_timeout_ms),
     .min = 1000,
     .max = 600000,
     .arg = "MS",
     .def = "10000",
     .help = "a publisher silent this long is dropped"},
    {.name = "program_channels",
     .type = SETTING_INT,
     FIELD(program_channels),
     .min = 1,
     .max = 2,
     .arg = "N",
     .def = "1",
     .help = "channels of every space's program (1 mono, 2 stereo)"},
    {.name = "program_bitrate",
     .type = SETTING_INT,
     FIELD(program_bitrate),
     .min = 16000,
     .max = 256000,
     .arg = "BITS",
     .def = "48000",
     .help = "program bit rate, bits per second"},
    {.name = "jitter_ms",
     .type = SETTING_INT,
     FIELD(jitter_ms),
     .min = 0,
     .max = 2000,
     .arg = "MS",
     .def = "300",
     .help = "per-speaker jitter buffer: audio held before a speaker is mixed"},
    {.name = "max_speakers",
     .type = SETTING_INT,
     FIELD(max_speakers),
     .min = 1,
     .max = 64,
     .arg = "N",
     .def = "13",
     .help = "speakers a host may invite per space"},
    {.name = "max_requests",
     .type = SETTING_INT,
     FIELD(max_requests),
     .min = 1,
     .max = 10000,
     .arg = "N",
     .def = "100",
     .help = "pending requests to speak per space"},
    {.name = "record",
     .type = SETTING_INT,
     FIELD(record),
     .min = 0,
     .max = 1,
     .arg = "N",
     .def = "1",
     .help = "record every live space (Ogg/Opus under DATA/recordings)"},
    {.name = "recording_sync_ms",
     .type = SETTING_INT,
     FIELD(recording_sync_ms),
     .min = 100,
     .max = 60000,
     .arg = "MS",
     .def = "1000",
     .help = "fdatasync a recording this often"},
    {.name = "recording_retention_days",
     .type = SETTING_INT,
     FIELD(recording_retention_days),
     .min = 0,
     .max = 36500,
     .arg = "DAYS",
     .def = "0",
     .help = "delete recordings that ended this long ago, 0 = keep"},
    {.name = "log_level",
     .type = SETTING_STRING,
     FIELD(log_level),
     .min = 1,
     .choices = "error|warn|info|debug",
     .arg = "LEVEL",
     .def = "info",
     .help = "error, warn, info or debug"},
    {.name = "log_format",
     .type = SETTING_STRING,
     FIELD(log_format),
     .min = 1,
     .choices = "text|json",
     .arg = "FORMAT",
     .def = "text",
     .help = "text, or json: one JSON object per line"},
    {.name = "origin",
     .type = SETTING_STRING,
     FIELD(origin),
     .min = 0,
     .arg = "URL",
     .def = "",
     .help = "an edge relay's origin node, http://HOST:PORT (tribune relay); empty = none"},
    {.name = "edge_key",
     .type = SETTING_STRING,
     FIELD(edge_key),
     .min = 0,
     .arg = "KEY",
     .def = "",
     .help = "shared secret of edges' count reports (POST /api/edges); empty = loopback only"},
    {.name = "edges",
     .type = SETTING_STRING,
     FIELD(edges),
     .min = 0,
     .arg = "URLS",
     .def = "",
     .help = "comma-separated base URLs of edges a full node redirects new listeners to (302); "
             "empty = none"},
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/* Writes "who: message" (or just the message if `who` is NULL) to err, if
 * there is one, and returns `rc`. */
__attribute__((format(printf, 5, 6))) static int fail(char *err, size_t errlen, int rc,
                                                      const char *who, const char *fmt, ...)
{
    if (!err || errlen == 0) return rc;
    int n = who ? snprintf(err, errlen, "%s: ", who) : 0;
    if (n < 0 || (size_t)n >= errlen) return rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

/* The row called `name` (the first `len` bytes), '-' matching '_'; NULL if none. */
static const struct setting *find_setting(const char *name, size_t len)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *s = settings[i].name;
        size_t j = 0;
        while (j < len && s[j] && (s[j] == name[j] || (s[j] == '_' && name[j] == '-')))
            j++;
        if (j == len && s[j] == '\0') return &settings[i];
    }
    return NULL;
}

/* Parses a whole decimal int (optional sign, no spaces, no junk) within [lo, hi]. */
static bool parse_int(const char *s, int lo, int hi, int *out)
{
    const char *digits = (*s == '-' || *s == '+') ? s + 1 : s;
    if (!isdigit((unsigned char)*digits)) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

/* True if `value` is one of the '|'-separated `choices`. */
static bool is_choice(const char *choices, const char *value)
{
    size_t len = strlen(value);
    for (const char *p = choices; p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, value, n) == 0) return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

/* Checks a string value against the row's rules; the row's field is not touched. */
static int check_string(const struct setting *s, const char *value, const char *who, char *err,
                        size_t errlen)
{
    size_t len = strlen(value);
    if (len >= s->size)
        return fail(err, errlen, -EINVAL, who, "\"%.24s...\" is too long (at most %zu bytes)",
                    value, s->size - 1);
    if (len < (size_t)s->min) return fail(err, errlen, -EINVAL, who, "must not be empty");
    if (s->choices && !is_choice(s->choices, value))
        return fail(err, errlen, -EINVAL, who, "\"%s\" is not one of %s", value, s->choices);
    char host[256];
    uint16_t port;
    bool is_off = s->type == SETTING_LISTEN && len == 0 && s->def[0] == '\0'; /* optional */
    if (s->type == SETTING_LISTEN && !is_off &&
        config_split_listen(value, host, sizeof(host), &port) < 0)
        return fail(err, errlen, -EINVAL, who,
                    "\"%s\" is not ADDR:PORT (like 127.0.0.1:8000, [::1]:8000 or :8000)", value);
    return 0;
}

/* Parses `value` for row `s` and stores it in `c`; on error `c` is unchanged and
 * the message starts with `who` (the flag, or file:line: key, or the name). */
static int set_row(struct config *c, const struct setting *s, const char *value, const char *who,
                   char *err, size_t errlen)
{
    char *field = (char *)c + s->offset;
    if (s->type == SETTING_INT) {
        int v;
        if (!parse_int(value, s->min, s->max, &v))
            return fail(err, errlen, -EINVAL, who, "\"%s\" is not a number between %d and %d",
                        value, s->min, s->max);
        memcpy(field, &v, sizeof(v));
        return 0;
    }
    int rc = check_string(s, value, who, err, errlen);
    if (rc == 0) memcpy(field, value, strlen(value) + 1);
    return rc;
}

void config_defaults(struct config *c)
{
    char err[256];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (s->type == SETTING_FILE) continue; /* "" = no file */
        if (set_row(c, s, s->def, s->name, err, sizeof(err)) < 0) {
            fprintf(stderr, "config: bad default in the settings table: %s\n", err);
            abort();
        }
    }
}

int config_set(struct config *c, const char *name, const char *value, char *err, size_t errlen)
{
    const struct setting *s = find_setting(name, strlen(name));
    if (!s) return fail(err, errlen, -EINVAL, NULL, "unknown setting \"%s\"", name);
    if (s->type == SETTING_FILE) return config_load_file(c, value, err, errlen);
    return set_row(c, s, value, name, err, errlen);
}

/* ---- INI files ----
 * libinih does the syntax; we feed it lines through read_line() so that we know
 * the line number of each key (this libinih does not pass it to the handler),
 * can refuse lines longer than its buffer (it would split them into two lines),
 * and can strip leading blanks (else an indented key becomes a continuation of
 * the previous value).
 */
struct ini_file {
    FILE *f;
    const char *path;
    struct config *c; /* a copy, given back only if the whole file is good */
    int line;         /* of the line being parsed */
    int error_line;   /* of the first error we reported, 0 if none */
    int read_errno;   /* from a failed read, 0 if none */
    char *err;
    size_t errlen;
};

/* Records the first error only: "path:line: message". Returns 0 (inih's "error"). */
__attribute__((format(printf, 2, 3))) static int file_fail(struct ini_file *in, const char *fmt,
                                                           ...)
{
    if (in->error_line) return 0;
    in->error_line = in->line;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (in->err && in->errlen) snprintf(in->err, in->errlen, "%s:%d: %s", in->path, in->line, msg);
    return 0;
}

static bool is_our_section(const char *section)
{
    return section[0] == '\0' || strcmp(section, "tribune") == 0;
}

/* A "[name]" line naming another section is an error even if it holds no keys. */
static void check_section_line(struct ini_file *in, const char *line)
{
    if (line[0] != '[') return;
    const char *end = strchr(line, ']');
    if (!end) return; /* inih reports the syntax error */
    char name[64];
    snprintf(name, sizeof(name), "%.*s", (int)(end - line - 1), line + 1);
    if (strcmp(name, "tribune") != 0)
        file_fail(in, "unknown section [%s] (settings go in [tribune])", name);
}

/* Skips the rest of an over-long line; true if there was more than a newline. */
static bool skip_rest_of_line(FILE *f)
{
    int ch = getc(f);
    if (ch == EOF || ch == '\n') return false;
    while (ch != EOF && ch != '\n')
        ch = getc(f);
    return true;
}

/* inih's fgets-like reader: one whole line, leading blanks removed. */
static char *read_line(char *buf, int size, void *stream)
{
    struct ini_file *in = stream;
    if (!fgets(buf, size, in->f)) {
        if (ferror(in->f)) in->read_errno = errno ? errno : EIO;
        return NULL;
    }
    in->line++;
    size_t len = strlen(buf);
    if (len == (size_t)size - 1 && buf[len - 1] != '\n' && skip_rest_of_line(in->f)) {
        file_fail(in, "line too long (at most %d bytes)", size - 1);
        buf[0] = '\0';
        return buf;
    }
    size_t blanks = strspn(buf, " \t");
    memmove(buf, buf + blanks, len - blanks + 1);
    check_section_line(in, buf);
    return buf;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    struct ini_file *in = user;
    if (!is_our_section(section))
        return file_fail(in, "unknown section [%s] (settings go in [tribune])", section);
    const struct setting *s = find_setting(name, strlen(name));
    if (!s) return file_fail(in, "unknown setting \"%s\"", name);
    if (s->type == SETTING_FILE) return file_fail(in, "\"%s\" can only be given as a flag", name);
    char msg[512];
    if (set_row(in->c, s, value, name, msg, sizeof(msg)) < 0) return file_fail(in, "%s", msg);
    return 1;
}

/* Turns what ini_parse_stream() and the reader saw into one result. */
static int file_result(struct ini_file *in, int parsed)
{
    if (in->read_errno)
        return fail(in->err, in->errlen, -in->read_errno, in->path, "%s", strerror(in->read_errno));
    if (parsed < 0) return fail(in->err, in->errlen, -ENOMEM, in->path, "out of memory");
    if (parsed > 0 && (!in->error_line || parsed < in->error_line)) {
        /* inih found a syntax error before our first error: report it instead */
        in->line = parsed;
        in->error_line = 0;
        file_fail(in, "expected name = value or [tribune]");
    }
    return in->error_line ? -EINVAL : 0;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    struct config copy = *c;
    struct ini_file in = {.path = path, .c = &copy, .err = err, .errlen = errlen};
    if (strlen(path) >= sizeof(copy.config_file))
        return fail(err, errlen, -ENAMETOOLONG, "config file", "path too long (at most %zu bytes)",
                    sizeof(copy.config_file) - 1);
    in.f = fopen(path, "r");
    if (!in.f) {
        int e = errno;
        return fail(err, errlen, -e, path, "%s", strerror(e));
    }
    int parsed = ini_parse_stream(read_line, &in, on_pair, &in);
    fclose(in.f);
    int rc = file_result(&in, parsed);
    if (rc < 0) return rc;
    strcpy(copy.config_file, path);
    *c = copy;
    return 0;
}

/* ---- Flags ---- */

struct flag {
    const char *arg;   /* the argument as given, "--burst-ms=1500" */
    const char *name;  /* after "--" */
    size_t len;        /* of the name */
    const char *value; /* after '=', or the next argument */
};

/* Reads the flag at argv[*i] and its value, and moves *i past both. */
static int next_flag(int argc, char **argv, int *i, struct flag *f, char *err, size_t errlen)
{
    f->arg = argv[(*i)++];
    if (strncmp(f->arg, "--", 2) != 0 || f->arg[2] == '\0')
        return fail(err, errlen, -EINVAL, NULL, "unexpected argument \"%s\"", f->arg);
    f->name = f->arg + 2;
    const char *eq = strchr(f->name, '=');
    if (eq) {
        f->len = (size_t)(eq - f->name);
        f->value = eq + 1;
        return 0;
    }
    f->len = strlen(f->name);
    if (*i >= argc || strncmp(argv[*i], "--", 2) == 0)
        return fail(err, errlen, -EINVAL, f->arg, "missing value");
    f->value = argv[(*i)++];
    return 0;
}

/* First pass: find --config (at most once) and load it. */
static int load_config_flag(struct config *c, int argc, char **argv, int first, char *err,
                            size_t errlen)
{
    bool seen = false;
    for (int i = first; i < argc;) {
        struct flag f;
        int rc = next_flag(argc, argv, &i, &f, err, errlen);
        if (rc < 0) return rc;
        const struct setting *s = find_setting(f.name, f.len);
        if (!s || s->type != SETTING_FILE) continue;
        if (seen) return fail(err, errlen, -EINVAL, "--config", "given more than once");
        seen = true;
        rc = config_load_file(c, f.value, err, errlen);
        if (rc < 0) return rc;
    }
    return 0;
}

static int apply_flag(struct config *c, const struct flag *f, char *err, size_t errlen)
{
    char who[128];
    snprintf(who, sizeof(who), "--%.*s", (int)f->len, f->name);
    const struct setting *s = find_setting(f->name, f->len);
    if (!s) return fail(err, errlen, -EINVAL, NULL, "unknown flag \"%s\"", who);
    if (s->type == SETTING_FILE) return 0; /* done in the first pass */
    return set_row(c, s, f->value, who, err, errlen);
}

int config_parse_args(struct config *c, int argc, char **argv, int first, char *err, size_t errlen)
{
    struct config copy = *c;
    int rc = load_config_flag(&copy, argc, argv, first, err, errlen);
    for (int i = first; rc == 0 && i < argc;) {
        struct flag f;
        rc = next_flag(argc, argv, &i, &f, err, errlen);
        if (rc == 0) rc = apply_flag(&copy, &f, err, errlen);
    }
    if (rc == 0) *c = copy;
    return rc;
}

/* ---- Help ---- */

void config_print_help(FILE *out)
{
    char flag[N_SETTINGS][64];
    int width = 0;
    for (size_t i = 0; i < N_SETTINGS; i++) {
        int n = snprintf(flag[i], sizeof(flag[i]), "--%s %s", settings[i].name, settings[i].arg);
        if (n > width) width = n;
    }
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        fprintf(out, "  %-*s  %s (default %s)\n", width, flag[i], s->help,
                s->def[0] ? s->def : "none");
    }
}

/* ---- Listen address ---- */

/* Parses a port: 1 to 65535, digits only. */
static bool parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    if (!*s) return false;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s)) return false;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535) return false;
    }
    if (v == 0) return false;
    *port = (uint16_t)v;
    return true;
}

int config_split_listen(const char *listen, char *host, size_t hostlen, uint16_t *port)
{
    const char *h = listen, *colon;
    size_t n;
    if (listen[0] == '[') { /* [v6]:PORT */
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':') return -EINVAL;
        h = listen + 1;
        n = (size_t)(close - h);
        colon = close + 1;
        if (n == 0) return -EINVAL;
    } else { /* ADDR:PORT or :PORT; a bare v6 address needs brackets */
        colon = strchr(listen, ':');
        if (!colon || strchr(colon + 1, ':')) return -EINVAL;
        n = (size_t)(colon - h);
        if (n == 0) {
            h = "0.0.0.0";
            n = strlen(h);
        }
    }
    if (memchr(h, '[', n) || memchr(h, ']', n) || memchr(h, ' ', n)) return -EINVAL;
    uint16_t p;
    if (!parse_port(colon + 1, &p)) return -EINVAL;
    if (n >= hostlen) return -ENAMETOOLONG;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = p;
    return 0;
}
