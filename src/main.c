/* tribune: the command line (a contract, see DESIGN.md "Command line").
 *
 *   tribune serve [--config FILE] [--listen ADDR:PORT] [--data DIR] [flags]
 *   tribune demo  [--listen ADDR:PORT] [flags]
 *   tribune space create --title T [--starts-at UNIX] [--server URL]
 *   tribune top [URL] [--once]
 *   tribune relay --origin URL [--listen ADDR:PORT] [--data DIR] [flags]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api/client.h"
#include "api/node.h"
#include "api/top.h"
#include "config/config.h"
#include "core/log.h"
#include "deliver/worker.h"

static void usage(FILE *out)
{
    fputs("Tribune: a live-audio server for a few speakers and millions of listeners.\n"
          "\n"
          "Usage:\n"
          "  tribune serve [--config FILE] [--listen ADDR:PORT] [--data DIR] [SETTINGS]\n"
          "      Run the server. Settings come from defaults, then the INI file, then flags.\n"
          "      `tribune serve --help` lists every setting with its default.\n"
          "  tribune demo [--listen ADDR:PORT] [--data DIR] [SETTINGS]\n"
          "      Run the server with a ready space \"demo\" whose speaker is built in;\n"
          "      open the printed URL in a browser or a player to hear it.\n"
          "  tribune space create --title TITLE [--starts-at UNIX_TIME] [--server URL]\n"
          "      Create a space on a running server (default http://127.0.0.1:8000);\n"
          "      prints its id and host key (the key is shown once: keep it).\n"
          "  tribune top [URL] [--once]\n"
          "      A live view of a running node (default http://127.0.0.1:8000): spaces,\n"
          "      hearing, lagging, joins/s, refused/s, CPU, workers, refreshed every second.\n"
          "  tribune relay --origin http://HOST:PORT [--listen ADDR:PORT] [--data DIR] [SETTINGS]\n"
          "      Run an edge relay: it pulls each space from the origin once, on its first\n"
          "      listener or ahead of a scheduled start, serves its own listeners in every\n"
          "      format, and reports their counts upstream.\n"
          "  tribune --help | --version\n"
          "\n"
          "Publish (Icecast source protocol, works with ffmpeg, OBS, butt, liquidsoap):\n"
          "  ffmpeg -re -i talk.wav -c:a libopus -b:a 48k -f ogg \\\n"
          "      icecast://source:HOST_KEY@127.0.0.1:8000/spaces/ID/live.opus\n"
          "Listen (any player, or a browser):\n"
          "  ffplay http://127.0.0.1:8000/spaces/ID/live.opus\n",
          out);
}

enum run_mode { RUN_SERVE, RUN_DEMO, RUN_RELAY };

static int run_server(int argc, char **argv, enum run_mode mode)
{
    struct config cfg;
    char err[256];
    bool demo = mode == RUN_DEMO;
    config_defaults(&cfg);
    if (mode == RUN_RELAY) cfg.record = 0; /* the origin records; an edge may with --record 1 */
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("Usage: tribune %s [--config FILE] [--NAME VALUE]...\n\n"
                   "Every setting can be given as a flag (--name VALUE or --name=VALUE) or as\n"
                   "`name = value` in the [tribune] section of an INI file named by --config.\n"
                   "Flags win over the file, the file wins over the defaults.\n\n",
                   argv[1]);
            config_print_help(stdout);
            return 0;
        }
    }
    if (config_parse_args(&cfg, argc, argv, 2, err, sizeof(err)) < 0) {
        fprintf(stderr, "tribune %s: %s\n(try `tribune %s --help`)\n", argv[1], err, argv[1]);
        return 2;
    }
    if (mode == RUN_RELAY && !cfg.origin[0]) {
        fprintf(stderr, "tribune relay: --origin http://HOST:PORT is required\n");
        return 2;
    }
    if (log_set_level(cfg.log_level) < 0) {
        fprintf(stderr, "tribune: bad log_level %s\n", cfg.log_level);
        return 2;
    }
    log_set_format(cfg.log_format); /* checked by config: text|json */
    struct node n;
    int rc = node_open(&n, &cfg);
    if (rc == 0 && demo) rc = node_setup_demo(&n);
    if (rc == 0 && demo) {
        fprintf(stderr,
                "\n"
                "  Tribune demo is live.\n"
                "  Open in a browser:   http://%s/\n"
                "  Host console:        http://%s/host/demo?key=%s\n"
                "  Or in any player:    ffplay http://%s/spaces/demo/live.opus\n"
                "  Publish over it:     ffmpeg -re -i FILE -c:a libopus -b:a 48k -f ogg \\\n"
                "                         icecast://source:%s@%s/spaces/demo/live.opus\n"
                "  Stop with Ctrl-C.\n\n",
                cfg.listen, cfg.listen, n.demo_key, cfg.listen, n.demo_key, cfg.listen);
    }
    if (rc == 0) rc = node_run(&n);
    node_close(&n);
    return rc == 0 ? 0 : 1;
}

static int cmd_space(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[2], "create") != 0) {
        fprintf(stderr, "Usage: tribune space create --title TITLE [--starts-at UNIX_TIME] "
                        "[--server URL]\n");
        return 2;
    }
    const char *title = NULL, *server = "http://127.0.0.1:8000";
    double starts_at = 0;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            printf("Usage: tribune space create --title TITLE [--starts-at UNIX_TIME] "
                   "[--server URL]\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "tribune space create: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--title") == 0)
            title = v;
        else if (strcmp(a, "--server") == 0)
            server = v;
        else if (strcmp(a, "--starts-at") == 0 || strcmp(a, "--starts_at") == 0) {
            char *end;
            starts_at = strtod(v, &end);
            if (*end != '\0' || starts_at < 0) {
                fprintf(stderr, "tribune space create: bad --starts-at %s\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "tribune space create: unknown flag %s\n", a);
            return 2;
        }
        i++;
    }
    if (!title) {
        fprintf(stderr, "tribune space create: --title is required\n");
        return 2;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "title", title);
    if (starts_at > 0) cJSON_AddNumberToObject(req, "starts_at", starts_at);
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!body) return 1;
    int status = 0;
    char *resp = NULL, err[256];
    size_t resp_len = 0;
    int rc = client_request(server, "POST", "/api/spaces", "application/json", body, strlen(body),
                            10, &status, &resp, &resp_len, err, sizeof(err));
    free(body);
    if (rc < 0) {
        fprintf(stderr, "tribune space create: %s\n", err);
        return 1;
    }
    cJSON *obj = cJSON_Parse(resp);
    free(resp);
    if (status != 201 || !obj) {
        const cJSON *e = obj ? cJSON_GetObjectItemCaseSensitive(obj, "error") : NULL;
        fprintf(stderr, "tribune space create: server answered %d%s%s\n", status,
                cJSON_IsString(e) ? ": " : "", cJSON_IsString(e) ? e->valuestring : "");
        cJSON_Delete(obj);
        return 1;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(obj, "host_key");
    if (!cJSON_IsString(id) || !cJSON_IsString(key)) {
        fprintf(stderr, "tribune space create: the answer lacks id or host_key\n");
        cJSON_Delete(obj);
        return 1;
    }
    char host[256], port[16];
    client_split_url(server, host, sizeof(host), port, sizeof(port));
    printf("id: %s\nhost_key: %s\n", id->valuestring, key->valuestring);
    printf("listen: http://%s:%s/spaces/%s/live.opus\n", host, port, id->valuestring);
    printf("publish: icecast://source:%s@%s:%s/spaces/%s/live.opus\n", key->valuestring, host, port,
           id->valuestring);
    printf("(the host key is shown once: keep it)\n");
    cJSON_Delete(obj);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("tribune 0.1\n");
        return 0;
    }
    if (strcmp(argv[1], "__worker") == 0) return worker_main(WORKER_CHANNEL_FD);
    static char exe[4096];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (el > 0) {
        exe[el] = '\0';
        node_worker_exe = exe;
    }
    if (strcmp(argv[1], "serve") == 0) return run_server(argc, argv, RUN_SERVE);
    if (strcmp(argv[1], "demo") == 0) return run_server(argc, argv, RUN_DEMO);
    if (strcmp(argv[1], "relay") == 0) return run_server(argc, argv, RUN_RELAY);
    if (strcmp(argv[1], "space") == 0) return cmd_space(argc, argv);
    if (strcmp(argv[1], "top") == 0) return top_main(argc - 1, argv + 1);
    fprintf(stderr, "tribune: unknown command %s\n\n", argv[1]);
    usage(stderr);
    return 2;
}
