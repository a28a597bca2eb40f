/* The node's route table and the handlers that are not JSON API (api.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "api/api.h"
#include "api/events.h"
#include "api/hls.h"
#include "api/metrics.h"
#include "api/node.h"
#include "api/web.h"
#include "core/log.h"
#include "deliver/feed.h"
#include "deliver/worker.h"
#include "guard/ticket.h"
#include "http/route.h"
#include "http/ws.h"
#include "media/ingest.h"
#include "metrics/refusals.h"
#include "record/recorder.h"
#include "record/replay.h"

enum route_id {
    R_INDEX,
    R_WEB,
    R_LISTEN,
    R_LISTEN_WS,
    R_PUBLISH,
    R_SPACES,
    R_SPACE,
    R_EVENTS,
    R_TICKET,
    R_GUARD,
    R_METRICS,
    R_NODE,
    R_EDGES,
    R_SPEAK,
    R_MONITOR,
    R_LIVE,
    R_END,
    R_SPEAKERS,
    R_SPEAKER,
    R_MUTE,
    R_UNMUTE,
    R_REQUESTS,
    R_REQUEST,
    R_APPROVE,
    R_REFUSE,
    R_RECORDING,
    R_RECORDING_INFO,
    R_RECORDINGS,
    R_WS_SPEAK,
    R_HLS,
    R_BEACON
};

static const struct route routes[] = {
    {"/", ROUTE_GET | ROUTE_HEAD, R_INDEX},
    {"/s/{}", ROUTE_GET | ROUTE_HEAD, R_WEB},
    {"/host/{}", ROUTE_GET | ROUTE_HEAD, R_WEB},
    {"/speak/{}", ROUTE_GET | ROUTE_HEAD, R_WEB},
    {"/web/{}", ROUTE_GET | ROUTE_HEAD, R_WEB},
    {"/web/{}/{}", ROUTE_GET | ROUTE_HEAD, R_WEB},
    {"/spaces/{}/live.opus", ROUTE_GET | ROUTE_HEAD, R_LISTEN},
    {"/spaces/{}/ws", ROUTE_GET, R_LISTEN_WS},
    {"/spaces/{}/live.opus", ROUTE_PUT | ROUTE_SOURCE, R_PUBLISH},
    {"/api/spaces", ROUTE_GET | ROUTE_HEAD | ROUTE_POST, R_SPACES},
    {"/api/spaces/{}", ROUTE_GET | ROUTE_HEAD, R_SPACE},
    {"/api/spaces/{}/events", ROUTE_GET, R_EVENTS},
    {"/api/spaces/{}/ticket", ROUTE_GET | ROUTE_HEAD, R_TICKET},
    {"/api/spaces/{}/guard", ROUTE_POST, R_GUARD},
    {"/metrics", ROUTE_GET | ROUTE_HEAD, R_METRICS},
    {"/api/node", ROUTE_GET | ROUTE_HEAD, R_NODE},
    {"/api/edges", ROUTE_POST, R_EDGES},
    {"/spaces/{}/speakers/{}.opus", ROUTE_PUT | ROUTE_SOURCE, R_SPEAK},
    {"/spaces/{}/monitor.opus", ROUTE_GET | ROUTE_HEAD, R_MONITOR},
    {"/api/spaces/{}/live", ROUTE_POST, R_LIVE},
    {"/api/spaces/{}/end", ROUTE_POST, R_END},
    {"/api/spaces/{}/speakers", ROUTE_GET | ROUTE_POST, R_SPEAKERS},
    {"/api/spaces/{}/speakers/{}", ROUTE_DELETE, R_SPEAKER},
    {"/api/spaces/{}/speakers/{}/mute", ROUTE_POST, R_MUTE},
    {"/api/spaces/{}/speakers/{}/unmute", ROUTE_POST, R_UNMUTE},
    {"/api/spaces/{}/requests", ROUTE_GET | ROUTE_POST, R_REQUESTS},
    {"/api/spaces/{}/requests/{}", ROUTE_GET, R_REQUEST},
    {"/api/spaces/{}/requests/{}/approve", ROUTE_POST, R_APPROVE},
    {"/api/spaces/{}/requests/{}/refuse", ROUTE_POST, R_REFUSE},
    {"/spaces/{}/recording.opus", ROUTE_GET | ROUTE_HEAD, R_RECORDING},
    {"/api/spaces/{}/recording", ROUTE_GET | ROUTE_HEAD, R_RECORDING_INFO},
    {"/api/recordings", ROUTE_GET | ROUTE_HEAD, R_RECORDINGS},
    {"/spaces/{}/speak", ROUTE_GET, R_WS_SPEAK},
    {"/spaces/{}/hls/{}", ROUTE_GET | ROUTE_HEAD, R_HLS},
    {"/api/spaces/{}/beacon", ROUTE_POST, R_BEACON},
};

/* An edge relay serves listeners only: speakers and hosts go to the origin,
 * which alone knows the keys (relay/relay.h). True when `c` was answered. */
static bool refuse_on_edge(struct conn *c, int route)
{
    const char *why = NULL;
    if (route == R_PUBLISH || route == R_SPEAK || route == R_WS_SPEAK || route == R_MONITOR)
        why = "this is an edge relay: publish to the origin";
    else if (route == R_SPACES && c->method == ROUTE_POST)
        why = "this is an edge relay: create spaces at the origin";
    if (!why) return false;
    conn_respond_error(c, 403, why);
    return true;
}

static void handle_listen(struct node *n, struct conn *c, const struct route_match *m)
{
    struct space *s = spaces_get(&n->spaces, m->captures[0].s, m->captures[0].len);
    if (!s) {
        refuse(REFUSE_NO_SPACE);
        conn_respond_error(c, 404, "no such space");
        return;
    }
    bool is_ws = m->route->id == R_LISTEN_WS;
    char accept[29];
    const char *why = NULL;
    int bad = is_ws ? ws_check_handshake(c, accept, &why) : 0;
    if (bad) {
        refuse(REFUSE_WS_HANDSHAKE);
        ws_respond_error(c, bad, why);
        return;
    }
    if (s->rec.require_ticket) {
        /* a worker that did not know the space yet handed the join over:
         * the same check as in deliver/worker.c */
        const char *t = NULL;
        size_t tlen = 0;
        ticket_from_url(conn_str(c, c->url), c->url.len, &t, &tlen);
        enum ticket_verdict v = ticket_verify(&n->ticket_key, s->rec.id, strlen(s->rec.id), t, tlen,
                                              (int64_t)time(NULL));
        if (v != TICKET_OK) {
            refuse(REFUSE_TICKET);
            conn_respond_error(c, 403, ticket_verdict_text(v));
            return;
        }
    }
    if (s->rec.state == SPACE_ENDED) {
        conn_respond_error(c, 410, "this space has ended");
        return;
    }
    if (n->has_fleet && !fleet_is_up(&n->fleet)) {
        static const char body[] = "{\"error\": \"no delivery worker is running\"}\n";
        refuse(REFUSE_NO_WORKER);
        conn_respond(c, 503, "application/json", "Retry-After: 2\r\n", body, sizeof(body) - 1);
        return;
    }
    char rest[1];
    size_t rest_len;
    int is_head = c->method == ROUTE_HEAD;
    size_t elen = 0;
    const char *edge = is_ws ? conn_header(c, "X-Tribune-Edge", &elen) : NULL;
    char edge_id[WORKER_EDGE_ID_MAX];
    if (!edge || elen > sizeof(edge_id)) elen = 0;
    if (elen) memcpy(edge_id, edge, elen);
    int fd = conn_detach(c, rest, 0, &rest_len);
    if (n->has_fleet) {
        /* a WebSocket listener's 101 is sent by the worker, after its admission; an
         * edge's upstream keeps its id (CHAN_EDGE_GONE when it closes) */
        if (fleet_give_listener(&n->fleet, c->tag, s->rec.id, fd, is_head, is_ws ? accept : NULL,
                                edge_id, elen) < 0)
            log_limited(LOG_WARN, 1, "no worker to serve a listener of %s", s->rec.id);
        close(fd);
        return;
    }
    if (is_ws && ws_send_head(fd, accept) < 0) {
        close(fd);
        return;
    }
    if (listener_start(is_ws ? &s->ws : &s->ogg, fd, is_head) < 0) close(fd);
}

/* Extracts the password of "Authorization: Basic base64(user:password)". */
static int basic_password(struct conn *c, char *out, size_t cap, size_t *len)
{
    size_t vlen;
    const char *v = conn_header(c, "Authorization", &vlen);
    if (!v || vlen < 6 || strncasecmp(v, "Basic ", 6) != 0) return -ENOENT;
    v += 6, vlen -= 6;
    while (vlen && *v == ' ')
        v++, vlen--;
    char decoded[256];
    int dl = api_base64_decode(v, vlen, decoded, sizeof(decoded));
    if (dl < 0) return -EINVAL;
    const char *colon = memchr(decoded, ':', (size_t)dl);
    if (!colon) return -EINVAL;
    size_t plen = (size_t)dl - (size_t)(colon + 1 - decoded);
    if (plen >= cap) return -EINVAL;
    memcpy(out, colon + 1, plen);
    out[plen] = '\0';
    *len = plen;
    return 0;
}

/* PUT or SOURCE on /spaces/{id}/live.opus (the host's key; `name` NULL) or
 * /spaces/{id}/speakers/{name}.opus (that speaker's key). */
static void handle_publish(struct node *n, struct conn *c, const struct route_match *m,
                           bool is_speaker)
{
    static const char challenge[] = "WWW-Authenticate: Basic realm=\"Tribune\"\r\n";
    struct space *s = spaces_get(&n->spaces, m->captures[0].s, m->captures[0].len);
    if (!s) {
        refuse(REFUSE_NO_SPACE);
        conn_respond_error(c, 404, "no such space");
        return;
    }
    char name[SPEAKER_NAME_MAX + 1] = "";
    if (is_speaker) {
        const struct route_capture *nc = &m->captures[1];
        struct speaker_record sr;
        bool is_known = speaker_name_is_valid(nc->s, nc->len);
        if (is_known) {
            memcpy(name, nc->s, nc->len);
            name[nc->len] = '\0';
            is_known = registry_speaker_get(n->reg, s->rec.id, name, &sr) == 0;
        }
        if (!is_known && space_speaker_was_removed(s, name)) {
            refuse(REFUSE_BAD_KEY);
            static const char body[] = "{\"error\": \"this speaker was removed by the host: "
                                       "its key no longer works\"}\n";
            conn_respond(c, 401, "application/json", challenge, body, sizeof(body) - 1);
            return;
        }
        if (!is_known) {
            refuse(REFUSE_NO_SPACE);
            conn_respond_error(c, 404, "no such speaker in this space: the host invites speakers");
            return;
        }
    }
    if (node_key_is_limited(n, c)) return;
    char key[128];
    size_t klen = 0;
    bool ok = basic_password(c, key, sizeof(key), &klen) == 0 &&
              (is_speaker ? registry_check_speaker_key(n->reg, s->rec.id, name, key, klen)
                          : registry_check_host_key(n->reg, s->rec.id, key, klen));
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok) {
        node_key_failed(n, c);
        log_limited(LOG_WARN, 5, "publish to %s from %s: bad or missing key", s->rec.id, c->peer);
        static const char body[] = "{\"error\": \"missing or wrong key\"}\n";
        refuse(REFUSE_BAD_KEY);
        conn_respond(c, 401, "application/json", challenge, body, sizeof(body) - 1);
        return;
    }
    if (s->rec.state == SPACE_ENDED) {
        conn_respond_error(c, 409, "this space has ended");
        return;
    }
    struct speaker *sp = space_speaker(s, is_speaker ? name : "host");
    if (sp && (sp->ws || (sp->pub && !publisher_is_draining(sp->pub)))) {
        refuse(REFUSE_HAS_SOURCE);
        conn_respond_error(c, 409,
                           is_speaker ? "this speaker is already connected"
                                      : "space already has a publisher");
        return;
    }
    char peer[64];
    snprintf(peer, sizeof(peer), "%s", c->peer);
    int expect = c->has_expect_continue, legacy = c->method == ROUTE_SOURCE;
    char rest[8192];
    size_t rest_len;
    int fd = conn_detach(c, rest, sizeof(rest), &rest_len);
    if (space_publish(s, is_speaker ? name : NULL, fd, rest, rest_len, expect, legacy, peer) < 0) {
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";
        ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        close(fd);
    }
}

/* A query parameter copied NUL-terminated into `out`: its length, 0 when absent or empty,
 * -1 when too long. */
static int query_copy(struct conn *c, const char *name, char *out, size_t cap)
{
    const char *v = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (!route_query(conn_str(c, c->url), c->url.len, name, &v, &len) || !v) return 0;
    if (len >= cap) return -1;
    memcpy(out, v, len);
    out[len] = '\0';
    return (int)len;
}

/* The speaker `name` of space `s` exists (0), or the answer was sent (-1): 401 for a name
 * the host removed, 404 for one never invited. As for PUT .../speakers/{name}.opus. */
static int speak_check_name(struct node *n, struct conn *c, struct space *s, const char *name)
{
    struct speaker_record sr;
    bool is_known = speaker_name_is_valid(name, strlen(name)) &&
                    registry_speaker_get(n->reg, s->rec.id, name, &sr) == 0;
    if (is_known) return 0;
    if (space_speaker_was_removed(s, name)) {
        refuse(REFUSE_BAD_KEY);
        conn_respond_error(c, 401, "this speaker was removed by the host: its key no longer works");
    } else {
        refuse(REFUSE_NO_SPACE);
        conn_respond_error(c, 404, "no such speaker in this space: the host invites speakers");
    }
    return -1;
}

/* The key of ?key=KEY checked in constant time against speaker `name`'s (or the host's,
 * `name` empty). 0, or the 401 was sent (-1). */
static int speak_check_key(struct node *n, struct conn *c, struct space *s, const char *name)
{
    if (node_key_is_limited(n, c)) return -1;
    char key[128];
    int klen = query_copy(c, "key", key, sizeof(key));
    bool ok = klen > 0 &&
              (name[0] ? registry_check_speaker_key(n->reg, s->rec.id, name, key, (size_t)klen)
                       : registry_check_host_key(n->reg, s->rec.id, key, (size_t)klen));
    OPENSSL_cleanse(key, sizeof(key));
    if (ok) return 0;
    node_key_failed(n, c);
    log_limited(LOG_WARN, 5, "speak to %s from %s: bad or missing key", s->rec.id, c->peer);
    refuse(REFUSE_BAD_KEY);
    conn_respond_error(c, 401, "missing or wrong key");
    return -1;
}

/* GET /spaces/{id}/speak?key=KEY[&name=NAME]: a browser speaker's WebSocket (media/speak.h).
 * Browsers cannot set Authorization on a WebSocket, so the key is in the query; the host's
 * key without a name speaks as the host (as PUT live.opus does). Every refusal is JSON,
 * before the upgrade, with the PUT paths' codes. */
static void handle_speak(struct node *n, struct conn *c, const struct route_match *m)
{
    struct space *s = spaces_get(&n->spaces, m->captures[0].s, m->captures[0].len);
    if (!s) {
        refuse(REFUSE_NO_SPACE);
        conn_respond_error(c, 404, "no such space");
        return;
    }
    char accept[29];
    const char *why = NULL;
    int status = ws_check_handshake(c, accept, &why);
    if (status) {
        conn_respond_error(c, status, why);
        return;
    }
    char name[SPEAKER_NAME_MAX + 1];
    int nlen = query_copy(c, "name", name, sizeof(name));
    if (nlen < 0 || (nlen > 0 && speak_check_name(n, c, s, name) < 0)) {
        if (nlen < 0) conn_respond_error(c, 404, "no such speaker in this space");
        return;
    }
    if (speak_check_key(n, c, s, name) < 0) return;
    if (s->rec.state == SPACE_ENDED) {
        conn_respond_error(c, 409, "this space has ended");
        return;
    }
    struct speaker *sp = space_speaker(s, nlen > 0 ? name : "host");
    if (sp && (sp->ws || (sp->pub && !publisher_is_draining(sp->pub)))) {
        refuse(REFUSE_HAS_SOURCE);
        conn_respond_error(c, 409,
                           nlen > 0 ? "this speaker is already connected"
                                    : "space already has a publisher");
        return;
    }
    char peer[64], rest[1];
    size_t rest_len;
    snprintf(peer, sizeof(peer), "%s", c->peer);
    int fd = conn_detach(c, rest, 0, &rest_len);
    if (space_speak(s, nlen > 0 ? name : NULL, fd, accept, peer) < 0) {
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";
        ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        close(fd);
    }
}

/* GET or HEAD /spaces/{id}/recording.opus: the space's recording so far (all
 * its segments, a chained Ogg stream), with Range. The files are found by the
 * space's id, validated and looked up in the registry, never from the URL's
 * text: nothing else on disk can be reached from here. */
static void handle_recording(struct node *n, struct conn *c, const struct route_match *m)
{
    struct space_record rec;
    if (api_find_space(n, c, m->captures[0].s, m->captures[0].len, &rec) < 0) return;
    static struct segment_ref refs[RECORDER_MAX_SEGMENTS];
    int count = n->recorder
                    ? recorder_get_segments(n->recorder, rec.id, refs, RECORDER_MAX_SEGMENTS)
                    : -ENOENT;
    if (count <= 0) {
        conn_respond_error(c, 404,
                           n->recorder ? "this space has no recording (yet)"
                                       : "recording is off on this node (record = 0)");
        return;
    }
    struct replay_file files[RECORDER_MAX_SEGMENTS];
    for (int i = 0; i < count; i++)
        files[i] = (struct replay_file){refs[i].path, refs[i].bytes};
    size_t rlen = 0;
    const char *range = conn_header(c, "Range", &rlen);
    char rbuf[256];
    if (range && rlen < sizeof(rbuf)) {
        memcpy(rbuf, range, rlen);
        range = rbuf;
    } else {
        range = NULL, rlen = 0;
    }
    bool is_head = c->method == ROUTE_HEAD;
    char rest[1];
    size_t rest_len;
    int fd = conn_detach(c, rest, 0, &rest_len);
    replay_start(n->loop, fd, files, (size_t)count, is_head, range, rlen);
}

/* GET /spaces/{id}/monitor.opus?key=<host key> (or Bearer): the program mix
 * in any state, for the host in the green room. Served by the master. */
static void handle_monitor(struct node *n, struct conn *c, const struct route_match *m)
{
    struct space *s = spaces_get(&n->spaces, m->captures[0].s, m->captures[0].len);
    if (!s) {
        conn_respond_error(c, 404, "no such space");
        return;
    }
    if (node_key_is_limited(n, c)) return;
    char key[128];
    size_t klen = 0;
    const char *kv = NULL;
    route_query(conn_str(c, c->url), c->url.len, "key", &kv, &klen);
    bool ok;
    if (kv && klen > 0 && klen < sizeof(key)) {
        memcpy(key, kv, klen);
        key[klen] = '\0';
        ok = true;
    } else {
        ok = api_request_key(c, key, sizeof(key), &klen) == 0;
    }
    ok = ok && registry_check_host_key(n->reg, s->rec.id, key, klen);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok) {
        node_key_failed(n, c);
        static const char body[] = "{\"error\": \"the monitor needs the host key\"}\n";
        conn_respond(c, 401, "application/json", "", body, sizeof(body) - 1);
        return;
    }
    if (s->rec.state == SPACE_ENDED) {
        conn_respond_error(c, 410, "this space has ended");
        return;
    }
    char rest[1];
    size_t rest_len;
    int is_head = c->method == ROUTE_HEAD;
    int fd = conn_detach(c, rest, 0, &rest_len);
    if (listener_start(&s->monitor, fd, is_head) < 0) close(fd);
}

void node_on_request(struct conn *c)
{
    struct node *n = c->owner;
    struct route_match m;
    route_find(routes, sizeof(routes) / sizeof(routes[0]), c->method, conn_str(c, c->path),
               c->path.len, &m);
    if (!m.route) {
        conn_respond_error(c, 404, "not found");
        return;
    }
    if (!m.is_method_allowed) {
        char allow[128], hdr[160];
        snprintf(hdr, sizeof(hdr), "Allow: %s\r\n",
                 route_allow_header(m.allowed, allow, sizeof(allow)));
        static const char body[] = "{\"error\": \"method not allowed\"}\n";
        conn_respond(c, 405, "application/json", hdr, body, sizeof(body) - 1);
        return;
    }
    if (n->is_relay && refuse_on_edge(c, m.route->id)) return;
    switch (m.route->id) {
    case R_INDEX:
        web_index(n, c);
        break;
    case R_WEB:
        web_serve(n, c, &m);
        break;
    case R_LISTEN:
    case R_LISTEN_WS:
        handle_listen(n, c, &m);
        break;
    case R_PUBLISH:
        handle_publish(n, c, &m, false);
        break;
    case R_SPEAK:
        handle_publish(n, c, &m, true);
        break;
    case R_MONITOR:
        handle_monitor(n, c, &m);
        break;
    case R_WS_SPEAK:
        handle_speak(n, c, &m);
        break;
    case R_HLS:
        api_hls(n, c, m.captures[0].s, m.captures[0].len, m.captures[1].s, m.captures[1].len);
        break;
    case R_BEACON:
        api_beacon(n, c, m.captures[0].s, m.captures[0].len);
        break;
    case R_LIVE:
        api_live(n, c, m.captures[0].s, m.captures[0].len);
        break;
    case R_END:
        api_end(n, c, m.captures[0].s, m.captures[0].len);
        break;
    case R_SPEAKERS:
        api_speakers(n, c, m.captures[0].s, m.captures[0].len);
        break;
    case R_SPEAKER:
        api_speaker_remove(n, c, m.captures[0].s, m.captures[0].len, m.captures[1].s,
                           m.captures[1].len);
        break;
    case R_MUTE:
    case R_UNMUTE:
        api_speaker_mute(n, c, m.captures[0].s, m.captures[0].len, m.captures[1].s,
                         m.captures[1].len, m.route->id == R_MUTE);
        break;
    case R_REQUESTS:
        api_requests(n, c, m.captures[0].s, m.captures[0].len);
        break;
    case R_REQUEST:
        api_request(n, c, m.captures[0].s, m.captures[0].len, m.captures[1].s, m.captures[1].len);
        break;
    case R_RECORDING:
        handle_recording(n, c, &m);
        break;
    case R_RECORDING_INFO:
        api_recording(n, c, m.captures[0].s, m.captures[0].len);
        break;
    case R_RECORDINGS:
        api_recordings(n, c);
        break;
    case R_APPROVE:
    case R_REFUSE:
        api_request_decide(n, c, m.captures[0].s, m.captures[0].len, m.captures[1].s,
                           m.captures[1].len, m.route->id == R_APPROVE);
        break;
    case R_SPACES:
        api_spaces(n, c);
        break;
    case R_SPACE:
        api_space(n, c, m.captures[0].s, m.captures[0].len);
        break;
    case R_EVENTS:
        events_start(n, c, m.captures[0].s, m.captures[0].len);
        break;
    case R_TICKET:
        api_ticket(n, c, m.captures[0].s, m.captures[0].len);
        break;
    case R_GUARD:
        api_guard(n, c, m.captures[0].s, m.captures[0].len);
        break;
    case R_METRICS:
        api_metrics(n, c);
        break;
    case R_NODE:
        api_node(n, c);
        break;
    case R_EDGES:
        api_edges(n, c);
        break;
    }
}
