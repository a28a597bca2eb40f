#include "api/top.h"

#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "api/client.h"

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int by_hearing(const void *a, const void *b)
{
    const struct top_space *x = a, *y = b;
    if (x->hearing != y->hearing) return x->hearing < y->hearing ? 1 : -1;
    return strcmp(x->id, y->id);
}

int top_parse(const char *json, size_t len, double t, struct top_snap *out)
{
    memset(out, 0, sizeof(*out));
    out->t = t;
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *arr = root ? cJSON_GetObjectItemCaseSensitive(root, "spaces") : NULL;
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(root);
        return -EPROTO;
    }
    int n = cJSON_GetArraySize(arr);
    out->spaces = calloc(n > 0 ? (size_t)n : 1, sizeof(*out->spaces));
    if (!out->spaces) {
        cJSON_Delete(root);
        return -ENOMEM;
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "listeners");
        if (!cJSON_IsString(id)) continue;
        struct top_space *s = &out->spaces[out->n++];
        snprintf(s->id, sizeof(s->id), "%s", id->valuestring);
        snprintf(s->state, sizeof(s->state), "%s", cJSON_IsString(st) ? st->valuestring : "?");
        s->connected = num(l, "connected");
        s->hearing = num(l, "hearing");
        s->lagging = num(l, "lagging");
        s->waiting = num(l, "waiting");
        s->peak = num(l, "peak_hearing");
        s->joined = num(l, "joined");
        s->skips = num(l, "skips");
        out->connected += s->connected;
        out->hearing += s->hearing;
        out->lagging += s->lagging;
        out->waiting += s->waiting;
        out->joined += s->joined;
        out->skips += s->skips;
    }
    cJSON_Delete(root);
    qsort(out->spaces, out->n, sizeof(*out->spaces), by_hearing);
    return 0;
}

int top_parse_node(const char *json, size_t len, struct top_snap *out)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root) ||
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(root, "cpu_seconds"))) {
        cJSON_Delete(root);
        return -EPROTO;
    }
    out->workers = num(root, "workers");
    out->workers_up = num(root, "workers_up");
    out->cpu_seconds = num(root, "cpu_seconds");
    out->refused_total = num(root, "refused_total");
    out->has_node = true;
    cJSON_Delete(root);
    return 0;
}

void top_snap_free(struct top_snap *s)
{
    free(s->spaces);
    memset(s, 0, sizeof(*s));
}

/* "12.3" per second from two totals, or "-" without a previous frame (or
 * when a total went down: the server restarted). */
static const char *rate(char *buf, size_t cap, const struct top_snap *prev,
                        const struct top_snap *cur, double a, double b)
{
    double dt = prev ? cur->t - prev->t : 0;
    if (!prev || dt <= 0 || b < a)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.1f", (b - a) / dt);
    return buf;
}

/* "up/total", or "-" without node numbers. */
static const char *workers(char *buf, size_t cap, const struct top_snap *cur)
{
    if (cur->has_node)
        snprintf(buf, cap, "%.0f/%.0f", cur->workers_up, cur->workers);
    else
        snprintf(buf, cap, "-");
    return buf;
}

void top_render(FILE *out, const char *url, const struct top_snap *prev, const struct top_snap *cur,
                size_t max_rows)
{
    /* Node rates need node numbers in both frames. */
    const struct top_snap *node_prev = prev && prev->has_node && cur->has_node ? prev : NULL;
    char jr[32], sr[32], rr[32], cr[32], wk[48], when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%H:%M:%S UTC", &tm);
    fprintf(out, "tribune top  %s  %s\n", url, when);
    fprintf(out,
            "node: %zu spaces  hearing %.0f  lagging %.0f  waiting %.0f  connected %.0f  "
            "joins/s %s  skips/s %s  refused/s %s  cpu %% %s  workers %s\n\n",
            cur->n, cur->hearing, cur->lagging, cur->waiting, cur->connected,
            rate(jr, sizeof(jr), prev, cur, prev ? prev->joined : 0, cur->joined),
            rate(sr, sizeof(sr), prev, cur, prev ? prev->skips : 0, cur->skips),
            rate(rr, sizeof(rr), node_prev, cur, node_prev ? node_prev->refused_total : 0,
                 cur->refused_total),
            rate(cr, sizeof(cr), node_prev, cur, node_prev ? node_prev->cpu_seconds * 100 : 0,
                 cur->cpu_seconds * 100),
            workers(wk, sizeof(wk), cur));
    fprintf(out, "%-32s %-9s %9s %9s %9s %9s %9s\n", "SPACE", "STATE", "CONNECTED", "HEARING",
            "LAGGING", "WAITING", "PEAK");
    size_t rows = max_rows && cur->n > max_rows ? max_rows : cur->n;
    for (size_t i = 0; i < rows; i++) {
        const struct top_space *s = &cur->spaces[i];
        fprintf(out, "%-32s %-9s %9.0f %9.0f %9.0f %9.0f %9.0f\n", s->id, s->state, s->connected,
                s->hearing, s->lagging, s->waiting, s->peak);
    }
    if (rows < cur->n) fprintf(out, "... and %zu more spaces\n", cur->n - rows);
    if (cur->n == 0) fprintf(out, "(no spaces)\n");
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One GET /api/spaces into `snap`. 0 or negative errno (message in err). */
static int fetch(const char *url, struct top_snap *snap, char *err, size_t errcap)
{
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    int rc = client_request(url, "GET", "/api/spaces", NULL, NULL, 0, 5, &status, &body, &len, err,
                            errcap);
    if (rc < 0) return rc;
    if (status != 200) {
        snprintf(err, errcap, "GET %s/api/spaces answered %d", url, status);
        free(body);
        return -EPROTO;
    }
    rc = top_parse(body, len, mono_s(), snap);
    free(body);
    if (rc < 0) {
        snprintf(err, errcap, "GET %s/api/spaces: not the expected JSON", url);
        return rc;
    }
    /* Node numbers are optional (a server without GET /api/node shows "-"). */
    char nerr[256];
    body = NULL;
    if (client_request(url, "GET", "/api/node", NULL, NULL, 0, 5, &status, &body, &len, nerr,
                       sizeof(nerr)) == 0 &&
        status == 200)
        top_parse_node(body, len, snap);
    free(body);
    return 0;
}

static void usage(FILE *out)
{
    fputs("Usage: tribune top [URL] [--once]\n"
          "  A live view of a running node (default http://127.0.0.1:8000), refreshed every\n"
          "  second: spaces, hearing, lagging, waiting, joins/s, skips/s, refused/s,\n"
          "  cpu % (master and workers), workers up/total. Ctrl-C to quit.\n"
          "  --once   print one frame and exit\n",
          out);
}

int top_main(int argc, char **argv)
{
    const char *url = "http://127.0.0.1:8000";
    bool once = false, have_url = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--once") == 0) {
            once = true;
        } else if (argv[i][0] == '-' || have_url) {
            fprintf(stderr, "tribune top: unexpected argument %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            url = argv[i];
            have_url = true;
        }
    }
    char host[256], port[16];
    if (client_split_url(url, host, sizeof(host), port, sizeof(port)) < 0) {
        fprintf(stderr, "tribune top: bad URL %s (expected http://HOST:PORT)\n", url);
        return 1;
    }
    /* Strip a trailing slash so that url + "/api/spaces" reads well. */
    char base[512];
    snprintf(base, sizeof(base), "%s", url);
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        base[--bl] = '\0';
    char err[512];
    struct top_snap prev = {0}, cur = {0};
    if (fetch(base, &cur, err, sizeof(err)) < 0) {
        fprintf(stderr, "tribune top: %s\n", err);
        return 1;
    }
    bool tty = isatty(STDOUT_FILENO);
    bool has_prev = false;
    double next = cur.t;
    for (;;) {
        size_t rows = 0;
        if (tty) {
            struct winsize ws;
            if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 6) rows = ws.ws_row - 6u;
            fputs("\033[H\033[2J", stdout);
        }
        top_render(stdout, base, has_prev ? &prev : NULL, &cur, rows);
        fflush(stdout);
        if (once) break;
        struct top_snap snap;
        bool lost = false;
        for (;;) {
            next += 1.0;
            double wait = next - mono_s();
            if (wait < 0) next = mono_s(), wait = 0;
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
            if (fetch(base, &snap, err, sizeof(err)) == 0) break;
            if (tty) fputs("\033[H\033[2J", stdout);
            printf("tribune top  %s\n%s (retrying every second; Ctrl-C to quit)\n", base, err);
            fflush(stdout);
            lost = true;
        }
        top_snap_free(&prev);
        prev = cur;
        has_prev = !lost;
        cur = snap;
    }
    top_snap_free(&prev);
    top_snap_free(&cur);
    return 0;
}
