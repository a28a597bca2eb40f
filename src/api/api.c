#include "api/api.h"

#include <cJSON.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "api/node.h"
#include "core/log.h"
#include "http/route.h"
#include "metrics/refusals.h"

int api_base64_decode(const char *in, size_t len, char *out, size_t cap)
{
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap || len > 4096) return -1;
    /* EVP_DecodeBlock ignores padding and blanks wherever they are: padding
     * is valid only as the last one or two characters. */
    size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    if (memchr(in, '=', len - pad)) return -1;
    int n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
    if (n < 0) return -1;
    return n - (int)pad;
}

/* Access-Control-Allow-Origin: * goes on public reads only, a GET or HEAD that presents no
 * key: a listen page served by another node reads them (failover, docs/internals/web.md).
 * An answer to a request that carries a key (host, speaker, edge) or changes something is
 * never readable by another origin's scripts. */
static bool is_public_read(struct conn *c)
{
    size_t len;
    return (c->method == ROUTE_GET || c->method == ROUTE_HEAD) &&
           !conn_header(c, "Authorization", &len) && !conn_header(c, "X-Tribune-Edge-Key", &len);
}

void api_respond_json(struct conn *c, int status, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) {
        conn_respond_error(c, 500, "out of memory");
        return;
    }
    size_t len = strlen(text);
    text[len] = '\0';
    conn_respond(c, status, "application/json",
                 is_public_read(c) ? "Access-Control-Allow-Origin: *\r\n" : NULL, text, len);
    free(text);
}

/* One failover node, without a trailing '/', unless it is there already or full. */
static void add_node(struct node *n, const char *url, size_t len)
{
    if (len && url[len - 1] == '/') len--;
    if (len == 0 || len > STEER_URL_MAX || n->nnodes == NODE_NODES_MAX) return;
    for (unsigned i = 0; i < n->nnodes; i++)
        if (strlen(n->nodes[i]) == len && memcmp(n->nodes[i], url, len) == 0) return;
    snprintf(n->nodes[n->nnodes++], sizeof(n->nodes[0]), "%.*s", (int)len, url);
}

/* The configured edges with a fresh report and room, least loaded first (steer.h). */
static void add_edges(struct node *n)
{
    struct steer_edge e[STEER_EDGES_MAX];
    size_t ne = node_edges(n, e);
    for (int best; (best = steer_pick(e, ne)) >= 0;) {
        add_node(n, e[best].url, e[best].url_len);
        e[best].is_fresh = false;
    }
}

cJSON *api_nodes_json(struct node *n)
{
    uint64_t now = loop_now_ms(n->loop);
    if (!n->nodes_at_ms || now - n->nodes_at_ms >= 1000) {
        n->nodes_at_ms = now ? now : 1;
        n->nnodes = 0;
        if (n->cfg.edges[0]) add_edges(n);
        for (unsigned i = 0; n->is_relay && i < n->relay.nnodes; i++)
            add_node(n, n->relay.nodes[i], strlen(n->relay.nodes[i]));
        if (n->is_relay) add_node(n, n->cfg.origin, strlen(n->cfg.origin));
    }
    cJSON *arr = cJSON_CreateArray();
    for (unsigned i = 0; arr && i < n->nnodes; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(n->nodes[i]));
    return arr;
}

cJSON *api_space_json(struct node *n, const struct space_record *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "title", r->title);
    cJSON_AddStringToObject(o, "state", space_state_name(r->state));
    if (r->starts_at)
        cJSON_AddNumberToObject(o, "starts_at", (double)r->starts_at);
    else
        cJSON_AddNullToObject(o, "starts_at");
    cJSON_AddNumberToObject(o, "created_at", (double)r->created_at);
    char url[128];
    snprintf(url, sizeof(url), "/spaces/%s/live.opus", r->id);
    cJSON_AddStringToObject(o, "listen", url);
    cJSON *nodes = api_nodes_json(n);
    if (nodes) cJSON_AddItemToObject(o, "nodes", nodes);
    struct space *s = spaces_peek(&n->spaces, r->id, strlen(r->id));
    struct feed_stats st = {0};
    if (s) space_stats(s, &st);
    cJSON *l = cJSON_AddObjectToObject(o, "listeners");
    if (l) {
        cJSON_AddNumberToObject(l, "connected", (double)st.listeners);
        cJSON_AddNumberToObject(l, "waiting", (double)st.waiting);
        cJSON_AddNumberToObject(l, "hearing", (double)st.hearing);
        cJSON_AddNumberToObject(l, "lagging", (double)st.lagging);
        cJSON_AddNumberToObject(l, "peak_hearing", s ? (double)s->peak_hearing : 0);
        cJSON_AddNumberToObject(l, "joined", (double)st.joined);
        cJSON_AddNumberToObject(l, "skips", (double)st.skips);
        cJSON_AddNumberToObject(l, "dropped", (double)st.dropped);
        cJSON_AddNumberToObject(l, "bytes", (double)st.bytes);
        struct space_edge_totals et = {0};
        if (s) space_edge_totals(s, &et);
        cJSON *e = cJSON_AddObjectToObject(l, "edges");
        if (e) { /* the edges' share, already in the numbers above */
            cJSON_AddNumberToObject(e, "edges", et.edges);
            cJSON_AddNumberToObject(e, "connected", (double)et.connected);
            cJSON_AddNumberToObject(e, "waiting", (double)et.waiting);
            cJSON_AddNumberToObject(e, "hearing", (double)et.hearing);
            cJSON_AddNumberToObject(e, "lagging", (double)et.lagging);
            cJSON_AddNumberToObject(e, "upstreams", (double)et.upstreams);
        }
        cJSON *rf = cJSON_AddObjectToObject(l, "refused");
        for (int k = 0; rf && k < REFUSE_N; k++)
            if (st.refused[k])
                cJSON_AddNumberToObject(rf, refuse_name((enum refuse_reason)k),
                                        (double)st.refused[k]);
    }
    bool has_speaker = false;
    for (int i = 0; s && i < SPACE_SPEAKERS_MAX; i++)
        has_speaker |= s->speakers[i] != NULL;
    cJSON_AddBoolToObject(o, "has_publisher", has_speaker);
    api_add_speakers(n, o, r, s, false);
    cJSON_AddNumberToObject(o, "max_speakers", n->cfg.max_speakers);
    cJSON *rec = api_recording_json(n, r->id);
    if (rec)
        cJSON_AddItemToObject(o, "recording", rec);
    else
        cJSON_AddNullToObject(o, "recording");
    cJSON_AddNumberToObject(o, "program_granule", s ? (double)program_granule(&s->program) : 0);
    cJSON_AddBoolToObject(o, "require_ticket", r->require_ticket);
    return o;
}

struct list_ctx {
    struct node *n;
    cJSON *arr;
};

static int add_one(const struct space_record *r, void *arg)
{
    struct list_ctx *ctx = arg;
    cJSON *o = api_space_json(ctx->n, r);
    if (o) cJSON_AddItemToArray(ctx->arr, o);
    return 0;
}

static void list_spaces(struct node *n, struct conn *c)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "spaces") : NULL;
    if (!arr) {
        cJSON_Delete(root);
        conn_respond_error(c, 500, "out of memory");
        return;
    }
    struct list_ctx ctx = {n, arr};
    if (registry_list(n->reg, add_one, &ctx) < 0) {
        cJSON_Delete(root);
        conn_respond_error(c, 500, "registry unavailable");
        return;
    }
    api_respond_json(c, 200, root);
}

const char *api_parse_create(cJSON *body, const char **title, int64_t *starts_at)
{
    if (!cJSON_IsObject(body)) return "body must be a JSON object";
    cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "title");
    if (!cJSON_IsString(t) || !t->valuestring[0]) return "title must be a non-empty string";
    if (strlen(t->valuestring) > SPACE_TITLE_MAX) return "title longer than 200 bytes";
    cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "starts_at");
    *starts_at = 0;
    if (s && !cJSON_IsNull(s)) {
        if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 1e11)
            return "starts_at must be unix seconds";
        *starts_at = (int64_t)s->valuedouble;
    }
    *title = t->valuestring;
    return NULL;
}

static void create_space(struct node *n, struct conn *c)
{
    cJSON *body = c->body ? cJSON_ParseWithLength(c->body, c->body_len) : NULL;
    const char *title = NULL;
    int64_t starts_at = 0;
    const char *err = body ? api_parse_create(body, &title, &starts_at) : "body must be JSON";
    if (err) {
        cJSON_Delete(body);
        conn_respond_error(c, 400, err);
        return;
    }
    struct space_record rec;
    char key[SPACE_KEY_HEX + 1];
    int rc = registry_create(n->reg, NULL, title, starts_at, &rec, key);
    cJSON_Delete(body);
    if (rc < 0) {
        conn_respond_error(c, rc == -EINVAL ? 400 : 500, "could not create the space");
        return;
    }
    log_info("space %s created", rec.id);
    cJSON *o = api_space_json(n, &rec);
    if (o) cJSON_AddStringToObject(o, "host_key", key);
    api_respond_json(c, 201, o);
}

void api_spaces(struct node *n, struct conn *c)
{
    if (c->method == ROUTE_POST)
        create_space(n, c);
    else
        list_spaces(n, c);
}

int api_find_space(struct node *n, struct conn *c, const char *id, size_t len,
                   struct space_record *rec)
{
    char key[SPACE_ID_MAX + 1];
    if (space_id_is_valid(id, len)) {
        memcpy(key, id, len);
        key[len] = '\0';
        if (registry_get(n->reg, key, rec) == 0) return 0;
    }
    conn_respond_error(c, 404, "no such space");
    return -ENOENT;
}

void api_space(struct node *n, struct conn *c, const char *id, size_t len)
{
    struct space_record rec;
    /* an edge asked about a space loads it (from its origin): an edge below it is
     * about to pull it from here */
    struct space *s = n->is_relay ? spaces_get(&n->spaces, id, len) : NULL;
    if (s)
        api_respond_json(c, 200, api_space_json(n, &s->rec));
    else if (api_find_space(n, c, id, len, &rec) == 0)
        api_respond_json(c, 200, api_space_json(n, &rec));
}

void api_ticket(struct node *n, struct conn *c, const char *id, size_t len)
{
    struct space *s = spaces_get(&n->spaces, id, len);
    if (!s) {
        conn_respond_error(c, 404, "no such space");
        return;
    }
    int64_t expires_at = (int64_t)time(NULL) + n->cfg.ticket_ttl_s;
    char t[TICKET_MAX + 1], body[TICKET_MAX + 64];
    int tl = ticket_sign(&n->ticket_key, s->rec.id, strlen(s->rec.id), expires_at, t, sizeof(t));
    if (tl < 0) {
        conn_respond_error(c, 500, "could not sign a ticket");
        return;
    }
    /* the ticket is [A-Za-z0-9._-] only: no JSON escaping needed */
    int bl = snprintf(body, sizeof(body), "{\"ticket\":\"%s\",\"expires_at\":%lld}\n", t,
                      (long long)expires_at);
    conn_respond(c, 200, "application/json",
                 "Cache-Control: no-store\r\nAccess-Control-Allow-Origin: *\r\n", body, (size_t)bl);
}

int api_request_key(struct conn *c, char *out, size_t cap, size_t *len)
{
    size_t vlen;
    const char *v = conn_header(c, "Authorization", &vlen);
    if (!v) return -ENOENT;
    size_t skip = vlen >= 7 && strncasecmp(v, "Bearer ", 7) == 0  ? 7
                  : vlen >= 6 && strncasecmp(v, "Basic ", 6) == 0 ? 6
                                                                  : 0;
    if (!skip) return -EINVAL;
    const char *p = v + skip;
    size_t plen = vlen - skip;
    while (plen && *p == ' ')
        p++, plen--;
    while (plen && p[plen - 1] == ' ')
        plen--;
    if (skip == 6) {
        char decoded[256];
        int dl = api_base64_decode(p, plen, decoded, sizeof(decoded));
        const char *colon = dl < 0 ? NULL : memchr(decoded, ':', (size_t)dl);
        if (!colon) return -EINVAL;
        p = colon + 1;
        plen = (size_t)dl - (size_t)(colon + 1 - decoded);
        if (plen >= cap) return -EINVAL;
        memcpy(out, p, plen);
        OPENSSL_cleanse(decoded, sizeof(decoded));
    } else {
        if (plen >= cap) return -EINVAL;
        memcpy(out, p, plen);
    }
    out[plen] = '\0';
    *len = plen;
    return 0;
}

/* The host key check of a host action: true when `c` carries space `id`'s
 * host key; otherwise the refusal (429 for an address over its failed
 * attempts, 401 for a missing or wrong key) has been sent. */
bool api_is_host(struct node *n, struct conn *c, const char *id)
{
    if (node_key_is_limited(n, c)) return false;
    char key[128];
    size_t klen = 0;
    bool ok = api_request_key(c, key, sizeof(key), &klen) == 0 &&
              registry_check_host_key(n->reg, id, key, klen);
    OPENSSL_cleanse(key, sizeof(key));
    if (ok) return true;
    node_key_failed(n, c);
    log_limited(LOG_WARN, 5, "host action on %s from %s: bad or missing key", id, c->peer);
    refuse(REFUSE_BAD_KEY);
    static const char body[] = "{\"error\": \"missing or wrong host key\"}\n";
    conn_respond(c, 401, "application/json", "WWW-Authenticate: Bearer realm=\"Tribune\"\r\n", body,
                 sizeof(body) - 1);
    return false;
}

struct space *api_host_space(struct node *n, struct conn *c, const char *id, size_t len)
{
    struct space *s = spaces_get(&n->spaces, id, len);
    if (!s) {
        conn_respond_error(c, 404, "no such space");
        return NULL;
    }
    return api_is_host(n, c, s->rec.id) ? s : NULL;
}

void api_guard(struct node *n, struct conn *c, const char *id, size_t len)
{
    struct space *s = api_host_space(n, c, id, len);
    if (!s) return;
    cJSON *body = c->body ? cJSON_ParseWithLength(c->body, c->body_len) : NULL;
    cJSON *rt = cJSON_GetObjectItemCaseSensitive(body, "require_ticket");
    if (!cJSON_IsObject(body) || !cJSON_IsBool(rt)) {
        cJSON_Delete(body);
        conn_respond_error(c, 400, "body must be {\"require_ticket\": true|false}");
        return;
    }
    int err = space_set_require_ticket(s, cJSON_IsTrue(rt));
    cJSON_Delete(body);
    if (err < 0) {
        conn_respond_error(c, 500, "registry unavailable");
        return;
    }
    api_respond_json(c, 200, api_space_json(n, &s->rec));
}

/* Fields 14 (utime), 15 (stime) and 22 (starttime) of /proc/<pid>/stat, in
 * clock ticks. 0 or -1 (no such process, or not readable). */
static int proc_stat(pid_t pid, unsigned long long *cpu, unsigned long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: skip to the last ')'. */
    char *p = strrchr(buf, ')');
    unsigned long long utime, stime, starttime;
    if (!p || sscanf(p + 2,
                     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                     "%*d %llu",
                     &utime, &stime, &starttime) != 3)
        return -1;
    *cpu = utime + stime;
    if (start) *start = starttime;
    return 0;
}

void api_node(struct node *n, struct conn *c)
{
    double tck = (double)sysconf(_SC_CLK_TCK);
    if (tck <= 0) tck = 100;
    unsigned long long cpu = 0, start = 0, t;
    proc_stat(getpid(), &cpu, &start);
    struct refusals sum = refusals;
    unsigned workers = 0, up = 0;
    uint64_t restarts = 0;
    if (n->has_fleet) {
        workers = (unsigned)n->fleet.n;
        fleet_totals(&n->fleet, &up, &restarts, &sum);
        for (int w = 0; w < n->fleet.n; w++)
            if (n->fleet.w[w].pid > 0 && proc_stat(n->fleet.w[w].pid, &t, NULL) == 0) cpu += t;
    }
    double uptime = 0;
    FILE *f = fopen("/proc/uptime", "re");
    if (f) {
        if (fscanf(f, "%lf", &uptime) != 1) uptime = 0;
        fclose(f);
    }
    uptime = start && uptime > (double)start / tck ? uptime - (double)start / tck : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON *ref = o ? cJSON_CreateObject() : NULL;
    if (!ref) {
        cJSON_Delete(o);
        conn_respond_error(c, 500, "out of memory");
        return;
    }
    cJSON_AddNumberToObject(o, "workers", workers);
    cJSON_AddNumberToObject(o, "workers_up", up);
    cJSON_AddNumberToObject(o, "worker_restarts", (double)restarts);
    cJSON_AddNumberToObject(o, "cpu_seconds", (double)cpu / tck);
    uint64_t total = 0;
    for (int r = 0; r < REFUSE_N; r++) {
        cJSON_AddNumberToObject(ref, refuse_name((enum refuse_reason)r), (double)sum.count[r]);
        total += sum.count[r];
    }
    cJSON_AddItemToObject(o, "refused", ref);
    cJSON_AddNumberToObject(o, "refused_total", (double)total);
    cJSON_AddNumberToObject(o, "uptime_seconds", (double)(long long)(uptime * 10) / 10);
    api_respond_json(c, 200, o);
}

/* ---- POST /api/edges (relay/relay.h) ---- */

static bool is_loopback(const struct conn *c)
{
    if (c->peer_addr.sa.sa_family == AF_INET)
        return (ntohl(c->peer_addr.in.sin_addr.s_addr) >> 24) == 127;
    if (c->peer_addr.sa.sa_family == AF_INET6) {
        const struct in6_addr *a = &c->peer_addr.in6.sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

static bool edge_is_allowed(struct node *n, struct conn *c)
{
    if (!n->cfg.edge_key[0]) return is_loopback(c);
    size_t len, klen = strlen(n->cfg.edge_key);
    const char *v = conn_header(c, "X-Tribune-Edge-Key", &len);
    return v && len == klen && CRYPTO_memcmp(v, n->cfg.edge_key, klen) == 0;
}

static uint64_t gauge(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 1e12
               ? (uint64_t)v->valuedouble
               : 0;
}

/* registry_list_soon's callback: one space an edge loads ahead of its listeners. */
static int add_soon(const struct space_record *r, void *arg)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return 1;
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "title", r->title);
    cJSON_AddStringToObject(o, "state", space_state_name(r->state));
    cJSON_AddNumberToObject(o, "starts_at", (double)r->starts_at);
    cJSON_AddItemToArray(arg, o);
    return 0;
}

void api_edges(struct node *n, struct conn *c)
{
    if (!edge_is_allowed(n, c)) {
        conn_respond_error(c, 403,
                           n->cfg.edge_key[0] ? "wrong or missing X-Tribune-Edge-Key"
                                              : "edge reports come from loopback only "
                                                "unless edge_key is set");
        return;
    }
    cJSON *body = c->body ? cJSON_ParseWithLength(c->body, c->body_len) : NULL;
    const cJSON *edge = cJSON_GetObjectItemCaseSensitive(body, "edge");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(body, "spaces");
    if (!cJSON_IsString(edge) || !edge->valuestring[0] ||
        strlen(edge->valuestring) > SPACE_EDGE_ID_MAX || !cJSON_IsArray(arr)) {
        cJSON_Delete(body);
        conn_respond_error(c, 400, "expected {\"edge\": ID, \"spaces\": [...]}");
        return;
    }
    cJSON *ans = cJSON_CreateObject();
    cJSON *states = ans ? cJSON_AddArrayToObject(ans, "spaces") : NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsString(id)) continue;
        struct space *s = spaces_get(&n->spaces, id->valuestring, strlen(id->valuestring));
        if (!s) continue;
        struct space_edge r = {.connected = gauge(it, "connected"),
                               .waiting = gauge(it, "waiting"),
                               .hearing = gauge(it, "hearing"),
                               .lagging = gauge(it, "lagging"),
                               .upstream = gauge(it, "upstream") ? 1 : 0,
                               .capacity = gauge(it, "capacity")};
        if (space_edge_report(s, edge->valuestring, &r) < 0)
            log_limited(LOG_WARN, 1, "space %s: too many edges report", s->rec.id);
        cJSON *st = states ? cJSON_CreateObject() : NULL;
        if (st) { /* the edge follows the space's state (relay/relay.c) */
            cJSON_AddStringToObject(st, "id", s->rec.id);
            cJSON_AddStringToObject(st, "state", space_state_name(s->rec.state));
            cJSON_AddItemToArray(states, st);
        }
    }
    cJSON *soon = ans ? cJSON_AddArrayToObject(ans, "soon") : NULL;
    int64_t now = (int64_t)time(NULL);
    if (soon) /* what the edge loads ahead of its listeners (relay/relay.c) */
        registry_list_soon(n->reg, now - RELAY_AHEAD_LATE_S, now + RELAY_AHEAD_S, RELAY_AHEAD_MAX,
                           add_soon, soon);
    cJSON_Delete(body);
    /* the edge's failover list (relay.c); none: the field is left out */
    cJSON *nodes = ans ? api_nodes_json(n) : NULL;
    if (cJSON_GetArraySize(nodes) > 0)
        cJSON_AddItemToObject(ans, "nodes", nodes);
    else
        cJSON_Delete(nodes);
    if (ans)
        api_respond_json(c, 200, ans);
    else
        conn_respond_error(c, 500, "out of memory");
}
