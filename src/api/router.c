/* The node's route table and the handlers that are not JSON API (api.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/events.h"
#include "api/metrics.h"
#include "api/node.h"
#include "core/log.h"
#include "deliver/feed.h"
#include "guard/ticket.h"
#include "http/route.h"
#include "media/ingest.h"
#include "metrics/refusals.h"

enum route_id {
    R_INDEX,
    R_LISTEN,
    R_PUBLISH,
    R_SPACES,
    R_SPACE,
    R_EVENTS,
    R_TICKET,
    R_GUARD,
    R_METRICS,
    R_NODE
};

static const struct route routes[] = {
    {"/", ROUTE_GET | ROUTE_HEAD, R_INDEX},
    {"/spaces/{}/live.opus", ROUTE_GET | ROUTE_HEAD, R_LISTEN},
    {"/spaces/{}/live.opus", ROUTE_PUT | ROUTE_SOURCE, R_PUBLISH},
    {"/api/spaces", ROUTE_GET | ROUTE_HEAD | ROUTE_POST, R_SPACES},
    {"/api/spaces/{}", ROUTE_GET | ROUTE_HEAD, R_SPACE},
    {"/api/spaces/{}/events", ROUTE_GET, R_EVENTS},
    {"/api/spaces/{}/ticket", ROUTE_GET | ROUTE_HEAD, R_TICKET},
    {"/api/spaces/{}/guard", ROUTE_POST, R_GUARD},
    {"/metrics", ROUTE_GET | ROUTE_HEAD, R_METRICS},
    {"/api/node", ROUTE_GET | ROUTE_HEAD, R_NODE},
};

static void handle_listen(struct node *n, struct conn *c, const struct route_match *m)
{
    struct space *s = spaces_get(&n->spaces, m->captures[0].s, m->captures[0].len);
    if (!s) {
        refuse(REFUSE_NO_SPACE);
        conn_respond_error(c, 404, "no such space");
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
    if (n->has_fleet && !fleet_is_up(&n->fleet)) {
        static const char body[] = "{\"error\": \"no delivery worker is running\"}\n";
        refuse(REFUSE_NO_WORKER);
        conn_respond(c, 503, "application/json", "Retry-After: 2\r\n", body, sizeof(body) - 1);
        return;
    }
    char rest[1];
    size_t rest_len;
    int is_head = c->method == ROUTE_HEAD;
    int fd = conn_detach(c, rest, 0, &rest_len);
    if (n->has_fleet) {
        if (fleet_give_listener(&n->fleet, c->tag, s->rec.id, fd, is_head) < 0)
            log_limited(LOG_WARN, 1, "no worker to serve a listener of %s", s->rec.id);
        close(fd);
        return;
    }
    if (listener_start(&s->ogg, fd, is_head) < 0) close(fd);
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

static void handle_publish(struct node *n, struct conn *c, const struct route_match *m)
{
    static const char challenge[] = "WWW-Authenticate: Basic realm=\"Tribune\"\r\n";
    struct space *s = spaces_get(&n->spaces, m->captures[0].s, m->captures[0].len);
    if (!s) {
        refuse(REFUSE_NO_SPACE);
        conn_respond_error(c, 404, "no such space");
        return;
    }
    if (node_key_is_limited(n, c)) return;
    char key[128];
    size_t klen = 0;
    if (basic_password(c, key, sizeof(key), &klen) < 0 ||
        !registry_check_host_key(n->reg, s->rec.id, key, klen)) {
        node_key_failed(n, c);
        log_limited(LOG_WARN, 5, "publish to %s from %s: bad or missing key", s->rec.id, c->peer);
        static const char body[] = "{\"error\": \"missing or wrong key\"}\n";
        refuse(REFUSE_BAD_KEY);
        conn_respond(c, 401, "application/json", challenge, body, sizeof(body) - 1);
        return;
    }
    if (s->publisher && !publisher_is_draining(s->publisher)) {
        refuse(REFUSE_HAS_SOURCE);
        conn_respond_error(c, 409, "space already has a publisher");
        return;
    }
    char peer[64];
    snprintf(peer, sizeof(peer), "%s", c->peer);
    int expect = c->has_expect_continue, legacy = c->method == ROUTE_SOURCE;
    char rest[8192];
    size_t rest_len;
    int fd = conn_detach(c, rest, sizeof(rest), &rest_len);
    space_publish(s, fd, rest, rest_len, expect, legacy, peer);
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
    switch (m.route->id) {
    case R_INDEX:
        api_index(n, c);
        break;
    case R_LISTEN:
        handle_listen(n, c, &m);
        break;
    case R_PUBLISH:
        handle_publish(n, c, &m);
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
    }
}
