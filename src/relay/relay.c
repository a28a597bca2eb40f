/* The edge relay's node side: looking spaces up at the origin, and reporting
 * this node's listeners to it once a second (relay.h, docs/internals/relay.md). */
#include "relay/relay.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "api/client.h"
#include "core/log.h"

/* ---- spaces: looked up at the origin on first demand ---- */

static enum space_state state_from_name(const char *name)
{
    if (strcmp(name, "ended") == 0) return SPACE_ENDED;
    if (strcmp(name, "live") == 0) return SPACE_LIVE;
    if (strcmp(name, "green") == 0) return SPACE_GREEN;
    return SPACE_SCHEDULED;
}

/* spaces->on_unknown: GET /api/spaces/{id} at the origin (blocking, at most
 * RELAY_LOOKUP_TIMEOUT_S: once per space and edge, see relay.md), then the space
 * goes to the local registry, whose row is this edge's cache. */
static bool is_known_miss(struct relay *r, const char *id, uint64_t now)
{
    for (int i = 0; i < RELAY_MISSES; i++)
        if (r->misses[i].at_ms && now - r->misses[i].at_ms < RELAY_MISS_MS &&
            strcmp(r->misses[i].id, id) == 0)
            return true;
    return false;
}

static void remember_miss(struct relay *r, const char *id, uint64_t now)
{
    unsigned i = r->nmisses++ % RELAY_MISSES;
    snprintf(r->misses[i].id, sizeof(r->misses[i].id), "%s", id);
    r->misses[i].at_ms = now;
}

/* Whether a lookup may block the loop now: not for an id the origin just denied, not
 * while the origin is known down, and at most RELAY_LOOKUPS_PER_S a second. */
static bool may_look_up(struct relay *r, const char *id)
{
    uint64_t now = loop_now_ms(r->loop);
    if (now < r->down_until_ms || is_known_miss(r, id, now)) return false;
    if (now - r->lookup_window_ms >= 1000) {
        r->lookup_window_ms = now;
        r->lookups = 0;
    }
    if (r->lookups >= RELAY_LOOKUPS_PER_S) {
        log_limited(LOG_WARN, 1, "space %s: too many lookups at the origin this second", id);
        return false;
    }
    r->lookups++;
    return true;
}

/* Adds space `id`, as the origin describes it in `o` ({title, state, starts_at}), to the
 * local registry (this edge's cache) and fills *rec. 0, or negative errno. */
static int adopt(struct spaces *ss, const char *id, const cJSON *o, struct space_record *rec)
{
    const cJSON *title = cJSON_GetObjectItemCaseSensitive(o, "title");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(o, "state");
    const cJSON *starts = cJSON_GetObjectItemCaseSensitive(o, "starts_at");
    if (!cJSON_IsString(title) || !cJSON_IsString(state)) return -ENOENT;
    char key[SPACE_KEY_HEX + 1]; /* nobody learns it: publishing goes to the origin */
    int64_t starts_at = cJSON_IsNumber(starts) ? (int64_t)starts->valuedouble : 0;
    int rc = registry_create(ss->reg, id, title->valuestring, starts_at, rec, key);
    if (rc < 0) return rc;
    enum space_state st = state_from_name(state->valuestring);
    if (st != SPACE_SCHEDULED && registry_set_state(ss->reg, id, st) == 0) rec->state = st;
    return 0;
}

static int on_unknown(struct spaces *ss, const char *id, struct space_record *rec)
{
    struct relay *r = ss->arg;
    if (!may_look_up(r, id)) return -ENOENT;
    char path[96], err[256];
    snprintf(path, sizeof(path), "/api/spaces/%s", id);
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    if (client_request(r->cfg->origin, "GET", path, NULL, NULL, 0, RELAY_LOOKUP_TIMEOUT_S, &status,
                       &body, &len, err, sizeof(err)) < 0) {
        log_limited(LOG_WARN, 5, "space %s: the origin cannot be asked: %s", id, err);
        r->down_until_ms = loop_now_ms(r->loop) + RELAY_DOWN_MS;
        return -ENOENT;
    }
    cJSON *o = status == 200 ? cJSON_ParseWithLength(body, len) : NULL;
    free(body);
    if (status == 404) remember_miss(r, id, loop_now_ms(r->loop));
    int rc = adopt(ss, id, o, rec);
    cJSON_Delete(o);
    if (rc == 0)
        log_info("space %s: known at the origin (%s): served here", id,
                 space_state_name(rec->state));
    return rc;
}

static struct program_source *new_upstream(struct spaces *ss, struct space *s)
{
    return upstream_new(ss->arg, s);
}

/* ---- counts upstream ---- */

static void post_close(struct relay *r)
{
    if (r->post.fd >= 0) {
        loop_del(r->loop, &r->post);
        close(r->post.fd);
        r->post.fd = -1;
    }
    free(r->post_buf);
    r->post_buf = NULL;
    free(r->post_ans);
    r->post_ans = NULL;
    r->post_ans_len = 0;
}

/* The answer's "nodes" (the origin's failover list, api.c; absent: none), this edge
 * left out: a listen page here may move to them, and to the origin, when this edge dies. */
static void follow_nodes(struct relay *r, const cJSON *o)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "nodes"), *it;
    if (!o) return; /* not JSON: keep the last list */
    r->nnodes = 0;
    cJSON_ArrayForEach(it, arr)
    {
        if (r->nnodes == RELAY_NODES_MAX) break;
        if (!cJSON_IsString(it) || strlen(it->valuestring) > STEER_URL_MAX) continue;
        struct steer_edge e = {.url = it->valuestring, .url_len = strlen(it->valuestring)};
        if (steer_matches(&e, r->edge_id)) continue;
        snprintf(r->nodes[r->nnodes++], sizeof(r->nodes[0]), "%s", it->valuestring);
    }
}

/* The origin's answer to a report: the reported spaces' states, which this edge's
 * spaces follow (scheduled or green: listeners wait; live: they hear; ended: closed),
 * and its failover nodes. */
static void follow_states(struct relay *r, const char *body, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(body, len);
    follow_nodes(r, o);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "spaces"), *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "state");
        if (!cJSON_IsString(id) || !cJSON_IsString(st)) continue;
        struct space *s = spaces_peek(r->spaces, id->valuestring, strlen(id->valuestring));
        if (!s) continue;
        enum space_state want = state_from_name(st->valuestring);
        if (want == SPACE_LIVE && s->rec.state != SPACE_LIVE) {
            log_info("space %s: live at the origin", s->rec.id);
            space_go_live(s);
        } else if (want == SPACE_ENDED) {
            space_end(s);
        } else if (want == SPACE_GREEN && s->rec.state == SPACE_SCHEDULED) {
            space_set_state(s, SPACE_GREEN);
        }
    }
    cJSON_Delete(o);
}

/* The origin's answer also lists, under "soon", the spaces live or about to start there
 * (api/api.c, at most RELAY_AHEAD_MAX, each {id, title, state, starts_at}): those this
 * edge does not hold are loaded now, from that description (no lookup: the loop does
 * not block), so that their upstream is open and their program runs before the first
 * listener comes and before the start. */
static void load_ahead(struct relay *r, const char *body, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(body, len);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "soon"), *it;
    int n = 0;
    cJSON_ArrayForEach(it, arr)
    {
        if (n++ == RELAY_AHEAD_MAX) break;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsString(id)) continue;
        size_t idlen = strlen(id->valuestring);
        if (!space_id_is_valid(id->valuestring, idlen) ||
            spaces_peek(r->spaces, id->valuestring, idlen))
            continue;
        struct space_record rec;
        if (registry_get(r->spaces->reg, id->valuestring, &rec) < 0 &&
            adopt(r->spaces, id->valuestring, it, &rec) < 0)
            continue;
        if (spaces_get(r->spaces, id->valuestring, idlen))
            log_info("space %s: loaded ahead of its listeners (%s at the origin)", id->valuestring,
                     space_state_name(rec.state));
    }
    cJSON_Delete(o);
}

/* The whole answer has come (the origin closes: Connection: close). */
static void on_answer(struct relay *r)
{
    int status = 0;
    char *body = NULL;
    size_t blen = 0;
    if (client_parse_response(r->post_ans, r->post_ans_len, &status, &body, &blen) < 0 ||
        status != 200) {
        r->reports_failed++;
        log_limited(LOG_WARN, 1, "the origin refuses this edge's counts (%d)", status);
        return;
    }
    r->reports_sent++;
    follow_states(r, body, blen);
    load_ahead(r, body, blen);
}

static void on_post(struct io *io, uint32_t events)
{
    struct relay *r = list_entry(io, struct relay, post);
    if (r->post_off < r->post_len && (events & EPOLLOUT)) {
        ssize_t n = write(io->fd, r->post_buf + r->post_off, r->post_len - r->post_off);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            r->reports_failed++;
            post_close(r);
            return;
        }
        if (n > 0) r->post_off += (size_t)n;
        if (r->post_off == r->post_len) loop_mod(r->loop, io, EPOLLIN);
        return;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    for (int i = 0; i < 8; i++) {
        if (r->post_ans_len == RELAY_ANSWER_MAX) break;
        ssize_t n = read(io->fd, r->post_ans + r->post_ans_len, RELAY_ANSWER_MAX - r->post_ans_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) break;
        r->post_ans_len += (size_t)n;
    }
    if (r->post_ans_len && r->post_off == r->post_len)
        on_answer(r);
    else
        r->reports_failed++;
    post_close(r);
}

static cJSON *report_json(struct relay *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "edge", r->edge_id);
    cJSON *arr = cJSON_AddArrayToObject(o, "spaces");
    struct list *pos;
    struct list *tmp;
    list_for_each_safe(pos, tmp, &r->spaces->all)
    {
        struct space *s = list_entry(pos, struct space, node);
        struct feed_stats st;
        space_stats(s, &st);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", s->rec.id);
        cJSON_AddNumberToObject(e, "connected", (double)st.listeners);
        cJSON_AddNumberToObject(e, "waiting", (double)st.waiting);
        cJSON_AddNumberToObject(e, "hearing", (double)st.hearing);
        cJSON_AddNumberToObject(e, "lagging", (double)st.lagging);
        cJSON_AddNumberToObject(e, "upstream", upstream_is_open(s->upstream) ? 1 : 0);
        cJSON_AddNumberToObject(e, "capacity", (double)r->cfg->max_listeners);
        cJSON_AddItemToArray(arr, e);
    }
    return o;
}

/* Once a second: this node's gauges per space, to the origin (POST /api/edges). A
 * report still in flight a second later is dropped: the origin is slow or gone. */
static void on_report(struct timer *t)
{
    struct relay *r = list_entry(t, struct relay, report);
    timer_start(r->loop, t, loop_now_ms(r->loop) + RELAY_REPORT_MS);
    if (r->post.fd >= 0) r->reports_failed++;
    post_close(r); /* even with no space: the answer lists the spaces to load ahead */
    cJSON *o = report_json(r);
    char *body = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!body) return;
    size_t blen = strlen(body), cap = blen + 512 + sizeof(r->cfg->edge_key);
    r->post_buf = malloc(cap);
    r->post_ans = malloc(RELAY_ANSWER_MAX + 1);
    if (!r->post_buf || !r->post_ans) {
        post_close(r);
        free(body);
        return;
    }
    int n = snprintf(r->post_buf, cap,
                     "POST /api/edges HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n%s",
                     r->host, blen, r->cfg->edge_key[0] ? "X-Tribune-Edge-Key: " : "",
                     r->cfg->edge_key, r->cfg->edge_key[0] ? "\r\n" : "", body);
    free(body);
    if (n < 0 || (size_t)n >= cap) {
        post_close(r);
        return;
    }
    r->post_len = (size_t)n;
    r->post_off = 0;
    int fd = socket(r->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        (connect(fd, (const struct sockaddr *)&r->addr, r->addrlen) < 0 && errno != EINPROGRESS)) {
        if (fd >= 0) close(fd);
        r->reports_failed++;
        post_close(r);
        return;
    }
    r->post.fd = fd;
    if (loop_add(r->loop, &r->post, EPOLLOUT | EPOLLIN, on_post) < 0) {
        close(fd);
        r->post.fd = -1;
        post_close(r);
    }
}

int relay_start(struct relay *r, struct loop *loop, struct spaces *ss, const struct config *cfg)
{
    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->spaces = ss;
    r->cfg = cfg;
    r->post.fd = -1;
    char port[16];
    if (strncmp(cfg->origin, "http://", 7) != 0 ||
        client_split_url(cfg->origin, r->host, sizeof(r->host), port, sizeof(port)) < 0) {
        log_error("origin %s: not an http://HOST:PORT URL", cfg->origin);
        return -EINVAL;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gai = getaddrinfo(r->host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        log_error("origin %s: %s", cfg->origin, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    memcpy(&r->addr, ai->ai_addr, ai->ai_addrlen);
    r->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    unsigned char rnd[4] = {0};
    int ufd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (ufd >= 0) {
        if (read(ufd, rnd, sizeof(rnd)) < 0) memset(rnd, 0, sizeof(rnd));
        close(ufd);
    }
    srandom((unsigned)time(NULL) ^ (unsigned)getpid() ^ rnd[0]);
    snprintf(r->edge_id, sizeof(r->edge_id), "%02x%02x%02x%02x-%.40s", rnd[0], rnd[1], rnd[2],
             rnd[3], cfg->listen);
    ss->on_unknown = on_unknown;
    ss->new_upstream = new_upstream;
    ss->free_upstream = upstream_free;
    ss->arg = r;
    timer_init(&r->report, on_report);
    timer_start(loop, &r->report, loop_now_ms(loop) + RELAY_REPORT_MS);
    log_info("edge relay %s: origin %s", r->edge_id, cfg->origin);
    return 0;
}

void relay_stop(struct relay *r)
{
    timer_stop(&r->report);
    post_close(r);
}
