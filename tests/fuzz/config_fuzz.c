/* Fuzz driver for config/config.c: the INI loader, the flag parser and the listen address.
 *
 * An input is an INI file, optionally followed by a NUL byte and a command line (without a NUL,
 * the whole input serves as both). It is used three ways:
 *   - the file: written to a memfd, loaded with config_load_file("/proc/self/fd/N");
 *   - the command line: split at newlines into argv for config_parse_args (a --config flag, in
 *     either form, is pointed at the same memfd, so no input opens another file; a newline at
 *     the very end makes no empty last argument);
 *   - the whole input, as text for config_split_listen.
 * Invariants (abort on violation):
 * - a failed load or parse leaves the config exactly as it was and writes an error message;
 * - a successful one leaves every number within its documented range (docs/config.md), every
 *   text field NUL-terminated in its field, log_level and log_format among their choices, data
 *   non-empty, listen accepted by config_split_listen, and config_file naming the file loaded;
 * - config_split_listen succeeds only with a host that fits, has no brackets or blanks, and a
 *   port from 1 to 65535. */
#include "config/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: says which line, then aborts (libFuzzer keeps the input as a crash). */
#define FAIL() fail_at(__LINE__)
__attribute__((noreturn)) static void fail_at(int line)
{
    fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
    abort();
}

enum { MAX_INPUT = 64 * 1024, MAX_ARGS = 64 };

/* The ranges of docs/config.md. */
static const struct range {
    size_t offset;
    int min, max;
} ranges[] = {
    {offsetof(struct config, workers), 0, 1024},
    {offsetof(struct config, burst_ms), 0, 60000},
    {offsetof(struct config, ring_ms), 1000, 600000},
    {offsetof(struct config, chunk_ms), 20, 1000},
    {offsetof(struct config, write_interval_ms), 20, 2000},
    {offsetof(struct config, header_timeout_ms), 100, 600000},
    {offsetof(struct config, max_header_bytes), 1024, 1048576},
    {offsetof(struct config, max_url_bytes), 64, 65536},
    {offsetof(struct config, max_listeners), 1, 10000000},
    {offsetof(struct config, join_rate), 1, 10000000},
    {offsetof(struct config, join_burst), 1, 10000000},
    {offsetof(struct config, fd_reserve), 0, 100000},
    {offsetof(struct config, memory_budget_mb), 0, 16777216},
    {offsetof(struct config, addr_conn_rate), 0, 1000000},
    {offsetof(struct config, addr_conn_burst), 0, 1000000},
    {offsetof(struct config, addr_handshakes), 0, 1000000},
    {offsetof(struct config, ticket_ttl_s), 1, 86400},
    {offsetof(struct config, sndbuf_bytes), 4096, 16777216},
    {offsetof(struct config, stall_timeout_ms), 1000, 3600000},
    {offsetof(struct config, publisher_timeout_ms), 1000, 600000},
    {offsetof(struct config, program_channels), 1, 2},
    {offsetof(struct config, program_bitrate), 16000, 256000},
    {offsetof(struct config, jitter_ms), 0, 2000},
    {offsetof(struct config, max_speakers), 1, 64},
    {offsetof(struct config, max_requests), 1, 10000},
    {offsetof(struct config, record), 0, 1},
    {offsetof(struct config, recording_sync_ms), 100, 60000},
    {offsetof(struct config, recording_retention_days), 0, 36500},
};

static int memfd = -1;
static char path[64];

static void check_text(const char *field, size_t size)
{
    if (!memchr(field, '\0', size)) FAIL();
}

static void check_good(const struct config *c)
{
    char host[256];
    uint16_t port;

    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        int v;
        memcpy(&v, (const char *)c + ranges[i].offset, sizeof(v));
        if (v < ranges[i].min || v > ranges[i].max) FAIL();
    }
    check_text(c->listen, sizeof(c->listen));
    check_text(c->data, sizeof(c->data));
    check_text(c->log_level, sizeof(c->log_level));
    check_text(c->log_format, sizeof(c->log_format));
    check_text(c->config_file, sizeof(c->config_file));
    check_text(c->origin, sizeof(c->origin));
    check_text(c->edge_key, sizeof(c->edge_key));
    check_text(c->edges, sizeof(c->edges));
    if (config_split_listen(c->listen, host, sizeof(host), &port) != 0) FAIL();
    if (c->data[0] == '\0') FAIL();
    if (strcmp(c->log_level, "error") && strcmp(c->log_level, "warn") &&
        strcmp(c->log_level, "info") && strcmp(c->log_level, "debug"))
        FAIL();
    if (strcmp(c->log_format, "text") && strcmp(c->log_format, "json")) FAIL();
    if (c->config_file[0] && strcmp(c->config_file, path) != 0) FAIL();
}

/* The outcome of a load or parse: all good, or nothing changed and an error said. */
static void check_outcome(int rc, const struct config *before, const struct config *after,
                          const char *err)
{
    if (rc == 0) {
        check_good(after);
        return;
    }
    if (rc >= 0 || memcmp(before, after, sizeof(*after)) != 0 || err[0] == '\0') FAIL();
}

static void fuzz_file(const uint8_t *data, size_t size)
{
    struct config c, before;
    char err[256] = "";
    int rc;

    if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t)size) FAIL();
    config_defaults(&c);
    check_good(&c);
    before = c;
    rc = config_load_file(&c, path, err, sizeof(err));
    check_outcome(rc, &before, &c, err);
    if (rc == 0 && strcmp(c.config_file, path) != 0) FAIL();
}

/* Whether argument `a` is the --config flag (which config.c would open). */
static int is_config_flag(const char *a)
{
    return strncmp(a, "--config", 8) == 0 && (a[8] == '\0' || a[8] == '=');
}

static void fuzz_args(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *argv[MAX_ARGS + 1], flag[80], err[256] = "";
    struct config c, before;
    int argc = 0, rc;

    if (!text) FAIL();
    memcpy(text, data, size);
    text[size] = '\0';
    snprintf(flag, sizeof(flag), "--config=%s", path);
    for (char *p = size ? text : NULL; p && argc < MAX_ARGS;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        argv[argc++] = is_config_flag(p) ? flag : p;
        p = nl && nl[1] ? nl + 1 : NULL;
    }
    argv[argc] = NULL;
    config_defaults(&c);
    before = c;
    rc = config_parse_args(&c, argc, argv, 0, err, sizeof(err));
    check_outcome(rc, &before, &c, err);
    free(text);
}

static void fuzz_listen(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), host[64];
    uint16_t port = 0;

    if (!text) FAIL();
    memcpy(text, data, size);
    text[size] = '\0';
    if (config_split_listen(text, host, sizeof(host), &port) == 0) {
        if (port == 0 || !memchr(host, '\0', sizeof(host))) FAIL();
        if (strpbrk(host, "[] ")) FAIL();
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return 0;
    if (memfd < 0) {
        memfd = memfd_create("config_fuzz.ini", MFD_CLOEXEC);
        if (memfd < 0) FAIL();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
    }
    const uint8_t *nul = memchr(data, '\0', size);
    size_t file_len = nul ? (size_t)(nul - data) : size;
    fuzz_file(data, file_len);
    if (nul)
        fuzz_args(nul + 1, size - file_len - 1);
    else
        fuzz_args(data, size);
    fuzz_listen(data, size);
    return 0;
}
