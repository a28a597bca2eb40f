/* Unit tests for src/config/config.c: defaults, INI files, flags, help, listen. */
#include "config/config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"

/* Every setting, as the help and the docs must name it. */
static const char *const names[] = {
    "config",
    "listen",
    "admin_listen",
    "data",
    "workers",
    "burst_ms",
    "ring_ms",
    "chunk_ms",
    "write_interval_ms",
    "header_timeout_ms",
    "max_header_bytes",
    "max_url_bytes",
    "max_listeners",
    "join_rate",
    "join_burst",
    "fd_reserve",
    "memory_budget_mb",
    "addr_conn_rate",
    "addr_conn_burst",
    "addr_handshakes",
    "ticket_ttl_s",
    "sndbuf_bytes",
    "stall_timeout_ms",
    "publisher_timeout_ms",
    "program_channels",
    "program_bitrate",
    "jitter_ms",
    "max_speakers",
    "max_requests",
    "record",
    "recording_sync_ms",
    "recording_retention_days",
    "log_level",
    "log_format",
    "origin",
    "edge_key",
    "edges",
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

static char err[512];

/* Writes `text` to a new temporary file; its path goes to `path` (size 64). */
static void write_tmp(char *path, const char *text)
{
    strcpy(path, "/tmp/tribune-config-test-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Loads `text` as a file into defaults; returns the result, path in `path`. */
static int load_text(struct config *c, char *path, const char *text)
{
    config_defaults(c);
    write_tmp(path, text);
    err[0] = '\0';
    int rc = config_load_file(c, path, err, sizeof(err));
    unlink(path);
    return rc;
}

/* Parses a NULL-terminated argument list (after "tribune serve") into defaults. */
static int parse(struct config *c, const char **args)
{
    const char *argv[32] = {"tribune", "serve"};
    int argc = 2;
    while (*args && argc < 31)
        argv[argc++] = *args++;
    config_defaults(c);
    err[0] = '\0';
    return config_parse_args(c, argc, (char **)argv, 2, err, sizeof(err));
}

#define ck_assert_err_has(s) ck_assert_msg(strstr(err, s), "error \"%s\" lacks \"%s\"", err, s)

/* ---- defaults ---- */

START_TEST(test_defaults)
{
    struct config c;
    memset(&c, 0x5a, sizeof(c));
    config_defaults(&c);
    ck_assert_str_eq(c.listen, "127.0.0.1:8000");
    ck_assert_str_eq(c.data, "./tribune-data");
    ck_assert_int_eq(c.workers, 0);
    ck_assert_int_eq(c.burst_ms, 1500);
    ck_assert_int_eq(c.ring_ms, 10000);
    ck_assert_int_eq(c.chunk_ms, 100);
    ck_assert_int_eq(c.header_timeout_ms, 10000);
    ck_assert_int_eq(c.max_header_bytes, 8192);
    ck_assert_int_eq(c.max_url_bytes, 2048);
    ck_assert_int_eq(c.max_listeners, 100000);
    ck_assert_int_eq(c.sndbuf_bytes, 8192);
    ck_assert_int_eq(c.stall_timeout_ms, 30000);
    ck_assert_int_eq(c.publisher_timeout_ms, 10000);
    ck_assert_str_eq(c.log_level, "info");
    ck_assert_str_eq(c.log_format, "text");
    ck_assert_str_eq(c.config_file, "");
}
END_TEST

/* ---- files ---- */

START_TEST(test_file_loads)
{
    struct config c;
    char path[64];
    int rc = load_text(&c, path,
                       "; comment\n"
                       "# another\n"
                       "\n"
                       "[tribune]\n"
                       "listen = 0.0.0.0:9000\n"
                       "  burst_ms=2500   ; inline comment, indented key\n"
                       "data = /var/lib/tribune\n"
                       "log-level = debug\n"
                       "max_listeners = 500\n");
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_str_eq(c.listen, "0.0.0.0:9000");
    ck_assert_int_eq(c.burst_ms, 2500);
    ck_assert_str_eq(c.data, "/var/lib/tribune");
    ck_assert_str_eq(c.log_level, "debug");
    ck_assert_int_eq(c.max_listeners, 500);
    ck_assert_int_eq(c.ring_ms, 10000); /* untouched keep their defaults */
    ck_assert_str_eq(c.config_file, path);
}
END_TEST

START_TEST(test_file_without_section)
{
    struct config c;
    char path[64];
    int rc = load_text(&c, path, "workers = 4\nchunk_ms = 200\n[tribune]\nring_ms = 20000\n");
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_int_eq(c.workers, 4);
    ck_assert_int_eq(c.chunk_ms, 200);
    ck_assert_int_eq(c.ring_ms, 20000);
}
END_TEST

START_TEST(test_file_last_wins)
{
    struct config c;
    char path[64];
    ck_assert_int_eq(load_text(&c, path, "workers = 2\nworkers = 3\n"), 0);
    ck_assert_int_eq(c.workers, 3);
}
END_TEST

START_TEST(test_file_unknown_key)
{
    struct config c;
    char path[64], want[128];
    ck_assert_int_eq(load_text(&c, path, "[tribune]\nworkers = 2\nfoo = 1\n"), -EINVAL);
    snprintf(want, sizeof(want), "%s:3: unknown setting \"foo\"", path);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_file_bad_line)
{
    struct config c;
    char path[64], want[128];
    ck_assert_int_eq(load_text(&c, path, "[tribune]\nthis line means nothing\n"), -EINVAL);
    snprintf(want, sizeof(want), "%s:2: ", path);
    ck_assert_err_has(want);
    ck_assert_int_eq(load_text(&c, path, "[tribune\nworkers = 1\n"), -EINVAL);
    snprintf(want, sizeof(want), "%s:1: ", path);
    ck_assert_err_has(want);
}
END_TEST

START_TEST(test_file_first_error_wins)
{
    struct config c;
    char path[64], want[128];
    /* a syntax error (found by inih) before a bad key (found by us), and after */
    ck_assert_int_eq(load_text(&c, path, "workers = 1\nnonsense\nfoo = 2\n"), -EINVAL);
    snprintf(want, sizeof(want), "%s:2: ", path);
    ck_assert_err_has(want);
    ck_assert_int_eq(load_text(&c, path, "foo = 2\nnonsense\n"), -EINVAL);
    snprintf(want, sizeof(want), "%s:1: unknown setting \"foo\"", path);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_file_unknown_section)
{
    struct config c;
    char path[64], want[128];
    ck_assert_int_eq(load_text(&c, path, "[tribune]\nworkers = 1\n[http]\nburst_ms = 5\n"),
                     -EINVAL);
    snprintf(want, sizeof(want), "%s:3: unknown section [http]", path);
    ck_assert_err_has(want);
    /* even an empty one: it is probably a typo */
    ck_assert_int_eq(load_text(&c, path, "[tribun]\n"), -EINVAL);
    ck_assert_err_has("unknown section [tribun]");
}
END_TEST

START_TEST(test_file_bad_values)
{
    struct config c;
    char path[64], want[160];
    ck_assert_int_eq(load_text(&c, path, "\nburst_ms = abc\n"), -EINVAL);
    snprintf(want, sizeof(want), "%s:2: burst_ms: \"abc\" is not a number between 0 and 60000",
             path);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(load_text(&c, path, "burst_ms = 1500 # not a comment here\n"), -EINVAL);
    ck_assert_int_eq(load_text(&c, path, "workers =\n"), -EINVAL);
    ck_assert_int_eq(load_text(&c, path, "config = other.ini\n"), -EINVAL);
    ck_assert_err_has("only be given as a flag");
}
END_TEST

START_TEST(test_file_error_changes_nothing)
{
    struct config c, before;
    char path[64];
    ck_assert_int_eq(load_text(&c, path, "workers = 7\nlisten = :1\nfoo = 1\n"), -EINVAL);
    config_defaults(&before);
    ck_assert_mem_eq(&c, &before, sizeof(c));
}
END_TEST

START_TEST(test_file_long_line)
{
    struct config c;
    char path[64], text[600], want[128];
    /* a value that fits the field but not inih's line buffer is refused, not cut */
    snprintf(text, sizeof(text), "workers = 1\ndata = /%0250d\nworkers = 2\n", 0);
    ck_assert_int_eq(load_text(&c, path, text), -EINVAL);
    snprintf(want, sizeof(want), "%s:2: line too long", path);
    ck_assert_err_has(want);
    /* 199 bytes is the longest line, with or without a final newline */
    snprintf(text, sizeof(text), "data = /%0191d\n", 0);
    ck_assert_int_eq(strlen(text), 200);
    ck_assert_msg(load_text(&c, path, text) == 0, "%s", err);
    text[199] = '\0';
    ck_assert_msg(load_text(&c, path, text) == 0, "%s", err);
    ck_assert_int_eq(strlen(c.data), 192);
}
END_TEST

START_TEST(test_file_missing)
{
    struct config c;
    config_defaults(&c);
    int rc = config_load_file(&c, "/nonexistent/tribune.ini", err, sizeof(err));
    ck_assert_int_eq(rc, -ENOENT);
    ck_assert_str_eq(err, "/nonexistent/tribune.ini: No such file or directory");
    ck_assert_int_lt(config_load_file(&c, "/tmp", err, sizeof(err)), 0);
    ck_assert_str_eq(c.config_file, "");
}
END_TEST

/* ---- config_set ---- */

START_TEST(test_set)
{
    struct config c;
    config_defaults(&c);
    ck_assert_int_eq(config_set(&c, "burst_ms", "0", err, sizeof(err)), 0);
    ck_assert_int_eq(c.burst_ms, 0);
    ck_assert_int_eq(config_set(&c, "header-timeout-ms", "250", err, sizeof(err)), 0);
    ck_assert_int_eq(c.header_timeout_ms, 250);
    ck_assert_int_eq(config_set(&c, "nope", "1", err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "unknown setting \"nope\"");
    ck_assert_int_eq(config_set(&c, "burst", "1", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(config_set(&c, "burst_ms_", "1", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(config_set(&c, "burst_ms", "1", NULL, 0), 0); /* no buffer is fine */
    ck_assert_int_eq(config_set(&c, "burst_ms", "x", NULL, 0), -EINVAL);
}
END_TEST

START_TEST(test_set_ints)
{
    static const char *const bad[] = {
        "abc", "", " 5", "5 ", "1.5", "0x10", "-1", "60001", "99999999999999999999", "1e3", "+"};
    struct config c;
    config_defaults(&c);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(config_set(&c, "burst_ms", bad[i], err, sizeof(err)) == -EINVAL, "%s",
                      bad[i]);
        ck_assert_int_eq(c.burst_ms, 1500);
    }
    ck_assert_int_eq(config_set(&c, "burst_ms", "60000", err, sizeof(err)), 0);
    ck_assert_int_eq(c.burst_ms, 60000);
    ck_assert_int_eq(config_set(&c, "burst_ms", "+7", err, sizeof(err)), 0);
    ck_assert_int_eq(c.burst_ms, 7);
    ck_assert_int_eq(config_set(&c, "max_listeners", "0", err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "max_listeners: \"0\" is not a number between 1 and 10000000");
}
END_TEST

START_TEST(test_set_strings)
{
    struct config c;
    char big[300];
    config_defaults(&c);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[255] = '\0'; /* 255 bytes fits data[256] */
    ck_assert_int_eq(config_set(&c, "data", big, err, sizeof(err)), 0);
    ck_assert_str_eq(c.data, big);
    big[255] = 'a'; /* 299 bytes does not */
    ck_assert_int_eq(config_set(&c, "data", big, err, sizeof(err)), -EINVAL);
    ck_assert_err_has("data: \"aaaa");
    ck_assert_err_has("is too long (at most 255 bytes)");
    ck_assert_int_eq(strlen(c.data), 255);
    ck_assert_int_eq(config_set(&c, "data", "", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(config_set(&c, "log_level", "warn", err, sizeof(err)), 0);
    ck_assert_str_eq(c.log_level, "warn");
    ck_assert_int_eq(config_set(&c, "log_level", "verbose", err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "log_level: \"verbose\" is not one of error|warn|info|debug");
    ck_assert_int_eq(config_set(&c, "log_level", "war", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(config_set(&c, "log_level", "warning", err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(c.log_level, "warn");
    ck_assert_int_eq(config_set(&c, "log-format", "json", err, sizeof(err)), 0);
    ck_assert_str_eq(c.log_format, "json");
    ck_assert_int_eq(config_set(&c, "log_format", "JSON", err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "log_format: \"JSON\" is not one of text|json");
    ck_assert_str_eq(c.log_format, "json");
}
END_TEST

START_TEST(test_set_listen)
{
    struct config c;
    char big[80];
    config_defaults(&c);
    ck_assert_int_eq(config_set(&c, "listen", "[::]:8443", err, sizeof(err)), 0);
    ck_assert_str_eq(c.listen, "[::]:8443");
    ck_assert_int_eq(config_set(&c, "admin_listen", "127.0.0.1:8001", err, sizeof(err)), 0);
    ck_assert_str_eq(c.admin_listen, "127.0.0.1:8001");
    ck_assert_int_eq(config_set(&c, "admin_listen", "", err, sizeof(err)), 0); /* off */
    ck_assert_str_eq(c.admin_listen, "");
    ck_assert_int_eq(config_set(&c, "admin_listen", "8001", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(config_set(&c, "listen", "", err, sizeof(err)), -EINVAL); /* not optional */
    ck_assert_int_eq(config_set(&c, "listen", "8000", err, sizeof(err)), -EINVAL);
    ck_assert_err_has("listen: \"8000\" is not ADDR:PORT");
    ck_assert_int_eq(config_set(&c, "listen", "localhost:0", err, sizeof(err)), -EINVAL);
    snprintf(big, sizeof(big), "%070d:80", 1);
    ck_assert_int_eq(config_set(&c, "listen", big, err, sizeof(err)), -EINVAL);
    ck_assert_err_has("too long (at most 63 bytes)");
    ck_assert_str_eq(c.listen, "[::]:8443");
}
END_TEST

/* ---- flags ---- */

START_TEST(test_flags_both_forms)
{
    struct config c;
    const char *args[] = {"--listen", "0.0.0.0:80", "--workers=3", "--data=/srv/t", NULL};
    ck_assert_msg(parse(&c, args) == 0, "%s", err);
    ck_assert_str_eq(c.listen, "0.0.0.0:80");
    ck_assert_int_eq(c.workers, 3);
    ck_assert_str_eq(c.data, "/srv/t");
    ck_assert_str_eq(c.config_file, "");
}
END_TEST

START_TEST(test_flags_dashes)
{
    struct config c;
    const char *args[] = {"--burst-ms",        "1500", "--ring_ms", "20000", "--max-url_bytes=4096",
                          "--log-level=error", NULL};
    ck_assert_msg(parse(&c, args) == 0, "%s", err);
    ck_assert_int_eq(c.burst_ms, 1500);
    ck_assert_int_eq(c.ring_ms, 20000);
    ck_assert_int_eq(c.max_url_bytes, 4096);
    ck_assert_str_eq(c.log_level, "error");
}
END_TEST

START_TEST(test_flags_value_with_equals)
{
    struct config c;
    const char *args[] = {"--data=/a=b", "--data2", "x", NULL};
    ck_assert_int_eq(parse(&c, args), -EINVAL);
    ck_assert_str_eq(err, "unknown flag \"--data2\"");
    const char *ok[] = {"--data=/a=b", NULL};
    ck_assert_int_eq(parse(&c, ok), 0);
    ck_assert_str_eq(c.data, "/a=b");
}
END_TEST

START_TEST(test_flags_last_wins)
{
    struct config c;
    const char *args[] = {"--workers", "1", "--workers=2", NULL};
    ck_assert_int_eq(parse(&c, args), 0);
    ck_assert_int_eq(c.workers, 2);
}
END_TEST

START_TEST(test_flags_bad_value)
{
    struct config c;
    const char *args[] = {"--workers", "2", "--burst_ms", "abc", NULL};
    ck_assert_int_eq(parse(&c, args), -EINVAL);
    ck_assert_str_eq(err, "--burst_ms: \"abc\" is not a number between 0 and 60000");
    ck_assert_int_eq(c.workers, 0); /* nothing applied */
    const char *dashed[] = {"--burst-ms=70000", NULL};
    ck_assert_int_eq(parse(&c, dashed), -EINVAL);
    ck_assert_str_eq(err, "--burst-ms: \"70000\" is not a number between 0 and 60000");
    const char *neg[] = {"--workers", "-1", NULL};
    ck_assert_int_eq(parse(&c, neg), -EINVAL);
    ck_assert_err_has("--workers: \"-1\"");
}
END_TEST

START_TEST(test_flags_missing_value)
{
    struct config c;
    const char *at_end[] = {"--workers", "2", "--burst_ms", NULL};
    ck_assert_int_eq(parse(&c, at_end), -EINVAL);
    ck_assert_str_eq(err, "--burst_ms: missing value");
    const char *before_flag[] = {"--data", "--workers", "2", NULL};
    ck_assert_int_eq(parse(&c, before_flag), -EINVAL);
    ck_assert_str_eq(err, "--data: missing value");
    const char *config_at_end[] = {"--config", NULL};
    ck_assert_int_eq(parse(&c, config_at_end), -EINVAL);
    ck_assert_str_eq(err, "--config: missing value");
    const char *empty[] = {"--workers=", NULL};
    ck_assert_int_eq(parse(&c, empty), -EINVAL);
}
END_TEST

START_TEST(test_flags_unknown)
{
    struct config c;
    const char *unknown[] = {"--frobnicate", "1", NULL};
    ck_assert_int_eq(parse(&c, unknown), -EINVAL);
    ck_assert_str_eq(err, "unknown flag \"--frobnicate\"");
    const char *positional[] = {"--workers", "1", "extra", NULL};
    ck_assert_int_eq(parse(&c, positional), -EINVAL);
    ck_assert_str_eq(err, "unexpected argument \"extra\"");
    const char *single_dash[] = {"-workers", "1", NULL};
    ck_assert_int_eq(parse(&c, single_dash), -EINVAL);
    const char *help[] = {"--help", NULL};
    ck_assert_int_eq(parse(&c, help), -EINVAL);
    const char *bare[] = {"--", NULL};
    ck_assert_int_eq(parse(&c, bare), -EINVAL);
    const char *config_file[] = {"--config_file", "x", NULL};
    ck_assert_int_eq(parse(&c, config_file), -EINVAL);
}
END_TEST

START_TEST(test_flags_first_and_empty)
{
    struct config c;
    const char *none[] = {NULL};
    ck_assert_int_eq(parse(&c, none), 0);
    struct config d;
    config_defaults(&d);
    ck_assert_mem_eq(&c, &d, sizeof(c));
    /* argv before `first` is not read */
    char *argv[] = {"tribune", "--bogus", "--workers", "5"};
    ck_assert_int_eq(config_parse_args(&c, 4, argv, 2, err, sizeof(err)), 0);
    ck_assert_int_eq(c.workers, 5);
}
END_TEST

/* defaults < file < flags, with --config read first wherever it is */
START_TEST(test_precedence)
{
    char path[64];
    write_tmp(path, "[tribune]\nburst_ms = 2000\nring_ms = 30000\nworkers = 6\n");
    const char *orders[][8] = {
        {"--config", path, "--burst_ms", "3000", NULL},
        {"--burst-ms", "3000", "--config", path, NULL},
        {"--burst-ms=3000", "--config=", NULL},
    };
    char eq[80];
    snprintf(eq, sizeof(eq), "--config=%s", path);
    orders[2][1] = eq;
    for (size_t i = 0; i < 3; i++) {
        struct config c;
        ck_assert_msg(parse(&c, orders[i]) == 0, "order %zu: %s", i, err);
        ck_assert_int_eq(c.burst_ms, 3000); /* flag over file */
        ck_assert_int_eq(c.ring_ms, 30000); /* file over default */
        ck_assert_int_eq(c.workers, 6);     /* file over default */
        ck_assert_int_eq(c.chunk_ms, 100);  /* default */
        ck_assert_str_eq(c.config_file, path);
    }
    unlink(path);
}
END_TEST

START_TEST(test_config_flag_errors)
{
    char path[64], want[128];
    struct config c;
    write_tmp(path, "burst_ms = 2000\nfoo = 1\n");
    const char *bad_file[] = {"--workers", "4", "--config", path, NULL};
    ck_assert_int_eq(parse(&c, bad_file), -EINVAL);
    snprintf(want, sizeof(want), "%s:2: unknown setting \"foo\"", path);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(c.burst_ms, 1500);
    ck_assert_int_eq(c.workers, 0);
    unlink(path);
    const char *missing[] = {"--config", "/nonexistent.ini", NULL};
    ck_assert_int_eq(parse(&c, missing), -ENOENT);
    write_tmp(path, "workers = 1\n");
    const char *twice[] = {"--config", path, "--config", path, NULL};
    ck_assert_int_eq(parse(&c, twice), -EINVAL);
    ck_assert_err_has("more than once");
    unlink(path);
}
END_TEST

START_TEST(test_set_config_loads_file)
{
    char path[64];
    struct config c;
    write_tmp(path, "workers = 9\n");
    config_defaults(&c);
    ck_assert_int_eq(config_set(&c, "config", path, err, sizeof(err)), 0);
    ck_assert_int_eq(c.workers, 9);
    ck_assert_str_eq(c.config_file, path);
    unlink(path);
}
END_TEST

/* ---- help ---- */

static char *help_text(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    config_print_help(f);
    fclose(f);
    return text;
}

START_TEST(test_help_every_setting)
{
    char *text = help_text();
    char flag[64];
    for (size_t i = 0; i < N_NAMES; i++) {
        snprintf(flag, sizeof(flag), "  --%s ", names[i]);
        ck_assert_msg(strstr(text, flag), "help lacks %s:\n%s", flag, text);
    }
    ck_assert_ptr_nonnull(strstr(text, "  --listen ADDR:PORT "));
    ck_assert_ptr_nonnull(strstr(text, "(default 127.0.0.1:8000)\n"));
    ck_assert_ptr_nonnull(strstr(text, "(default ./tribune-data)\n"));
    ck_assert_ptr_nonnull(strstr(text, "(default 1500)\n"));
    free(text);
}
END_TEST

/* One line per setting, all aligned, each with a default that config_set accepts. */
START_TEST(test_help_lines)
{
    char *text = help_text();
    size_t lines = 0;
    long column = -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        char name[64], arg[32];
        ck_assert_msg(sscanf(line, "  --%63s %31s", name, arg) == 2, "%s", line);
        const char *help = line + 4 + strlen(name) + 1 + strlen(arg);
        help += strspn(help, " ");
        ck_assert_msg(column < 0 || help - line == column, "misaligned: %s", line);
        column = help - line;
        const char *def = strstr(line, "(default ");
        ck_assert_msg(def && line[strlen(line) - 1] == ')', "no default: %s", line);
        char value[128];
        snprintf(value, sizeof(value), "%.*s", (int)(strlen(def) - 10), def + 9);
        struct config c;
        config_defaults(&c);
        if (strcmp(name, "config") == 0 || strcmp(name, "admin_listen") == 0 ||
            strcmp(name, "origin") == 0 || strcmp(name, "edge_key") == 0 ||
            strcmp(name, "edges") == 0)
            ck_assert_str_eq(value, "none"); /* empty: shown as none */
        else
            ck_assert_msg(config_set(&c, name, value, err, sizeof(err)) == 0, "%s", err);
    }
    ck_assert_int_eq(lines, N_NAMES);
    free(text);
}
END_TEST

/* ---- docs: they live beside the code and must not drift from it ---- */

/* Opens docs/<name> from the project root, or from up to four levels below it. */
static FILE *open_doc(const char *name, char *path, size_t pathlen)
{
    const char *up = "../../../../";
    for (int level = 0; level <= 4; level++) {
        snprintf(path, pathlen, "%.*sdocs/%s", level * 3, up, name);
        FILE *f = fopen(path, "r");
        if (f) return f;
    }
    ck_abort_msg("docs/%s not found: run the test from the project root", name);
    return NULL;
}

/* The whole of docs/<name>, NUL-terminated; the caller frees it. */
static char *read_doc(const char *name)
{
    char path[128];
    FILE *f = open_doc(name, path, sizeof(path));
    size_t cap = 1 << 16;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    size_t n = fread(text, 1, cap - 1, f);
    ck_assert_msg(feof(f), "docs/%s is too big for this test", name);
    text[n] = '\0';
    fclose(f);
    return text;
}

START_TEST(test_docs_name_every_setting)
{
    char *md = read_doc("config.md");
    char want[64];
    for (size_t i = 0; i < N_NAMES; i++) {
        snprintf(want, sizeof(want), "| `%s` | `--%s ", names[i], names[i]);
        ck_assert_msg(strstr(md, want), "docs/config.md lacks a row for %s", names[i]);
    }
    char *ini = read_doc("tribune.example.ini");
    for (size_t i = 1; i < N_NAMES; i++) { /* all but "config" */
        snprintf(want, sizeof(want), "\n%s = ", names[i]);
        ck_assert_msg(strstr(ini, want), "example lacks %s", names[i]);
    }
    ck_assert_msg(strstr(md, ini), "docs/config.md does not quote the example file as it is");
    free(md);
    free(ini);
}
END_TEST

START_TEST(test_example_ini_is_the_defaults)
{
    char path[128];
    fclose(open_doc("tribune.example.ini", path, sizeof(path)));
    struct config c, d;
    config_defaults(&c);
    config_defaults(&d);
    ck_assert_msg(config_load_file(&c, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.config_file, path);
    memset(c.config_file, 0, sizeof(c.config_file));
    ck_assert_mem_eq(&c, &d, sizeof(c));
}
END_TEST

/* ---- config_split_listen ---- */

START_TEST(test_split_listen_good)
{
    static const struct {
        const char *in, *host;
        uint16_t port;
    } cases[] = {
        {"127.0.0.1:8000", "127.0.0.1", 8000},
        {"0.0.0.0:80", "0.0.0.0", 80},
        {"[::1]:8000", "::1", 8000},
        {":8000", "0.0.0.0", 8000},
        {"[::]:1", "::", 1},
        {"localhost:65535", "localhost", 65535},
        {"[fe80::1%eth0]:8000", "fe80::1%eth0", 8000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char host[64] = "";
        uint16_t port = 0;
        ck_assert_msg(config_split_listen(cases[i].in, host, sizeof(host), &port) == 0, "%s",
                      cases[i].in);
        ck_assert_str_eq(host, cases[i].host);
        ck_assert_uint_eq(port, cases[i].port);
    }
}
END_TEST

START_TEST(test_split_listen_bad)
{
    static const char *const bad[] = {
        "127.0.0.1",   "127.0.0.1:",  "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:99999999",
        "1.2.3.4:abc", "1.2.3.4:80x", "1.2.3.4:-80", "1.2.3.4: 80",     "::1:8000",
        "[::1]8000",   "[::1]",       "[]:80",       "[::1:80",         "",
        ":",           "a b:80",      "host]:80",    "1.2.3.4:+80",     "[::1]:",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char host[64] = "unchanged";
        uint16_t port = 7;
        ck_assert_msg(config_split_listen(bad[i], host, sizeof(host), &port) < 0, "accepted %s",
                      bad[i]);
        ck_assert_str_eq(host, "unchanged");
        ck_assert_uint_eq(port, 7);
    }
}
END_TEST

START_TEST(test_split_listen_small_buffer)
{
    char host[4];
    uint16_t port;
    ck_assert_int_eq(config_split_listen("127.0.0.1:80", host, sizeof(host), &port), -ENAMETOOLONG);
    ck_assert_int_eq(config_split_listen("]:80", host, sizeof(host), &port), -EINVAL);
    ck_assert_int_eq(config_split_listen("abc:80", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "abc");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *t = tcase_create("config");
    tcase_add_test(t, test_defaults);
    tcase_add_test(t, test_file_loads);
    tcase_add_test(t, test_file_without_section);
    tcase_add_test(t, test_file_last_wins);
    tcase_add_test(t, test_file_unknown_key);
    tcase_add_test(t, test_file_bad_line);
    tcase_add_test(t, test_file_first_error_wins);
    tcase_add_test(t, test_file_unknown_section);
    tcase_add_test(t, test_file_bad_values);
    tcase_add_test(t, test_file_error_changes_nothing);
    tcase_add_test(t, test_file_long_line);
    tcase_add_test(t, test_file_missing);
    tcase_add_test(t, test_set);
    tcase_add_test(t, test_set_ints);
    tcase_add_test(t, test_set_strings);
    tcase_add_test(t, test_set_listen);
    tcase_add_test(t, test_flags_both_forms);
    tcase_add_test(t, test_flags_dashes);
    tcase_add_test(t, test_flags_value_with_equals);
    tcase_add_test(t, test_flags_last_wins);
    tcase_add_test(t, test_flags_bad_value);
    tcase_add_test(t, test_flags_missing_value);
    tcase_add_test(t, test_flags_unknown);
    tcase_add_test(t, test_flags_first_and_empty);
    tcase_add_test(t, test_precedence);
    tcase_add_test(t, test_config_flag_errors);
    tcase_add_test(t, test_set_config_loads_file);
    tcase_add_test(t, test_help_every_setting);
    tcase_add_test(t, test_help_lines);
    tcase_add_test(t, test_docs_name_every_setting);
    tcase_add_test(t, test_example_ini_is_the_defaults);
    tcase_add_test(t, test_split_listen_good);
    tcase_add_test(t, test_split_listen_bad);
    tcase_add_test(t, test_split_listen_small_buffer);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return run_suite(config_suite());
}
