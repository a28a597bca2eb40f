#include "api/events.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/api.h"
#include "api/node.h"
#include "core/list.h"
#include "core/log.h"
#include "http/conn.h"
#include "space/registry.h"

static const char response_head[] = "HTTP/1.1 200 OK\r\n"
                                    "Content-Type: text/event-stream\r\n"
                                    "Cache-Control: no-cache\r\n"
                                    "Access-Control-Allow-Origin: *\r\n"
                                    "X-Accel-Buffering: no\r\n"
                                    "Connection: keep-alive\r\n"
                                    "\r\n"
                                    "retry: 2000\n"
                                    ": tribune space events, one per second\n\n";

struct events {
    struct loop *loop;
    struct node *node;
    struct timer tick;
    struct list clients;
    size_t nclients;
    uint64_t seq; /* the id of the last event built */
};

struct client {
    struct io io;
    struct list node; /* in events.clients */
    struct deferred dfr;
    struct events *ev;
    char id[SPACE_ID_MAX + 1];
    char *pending; /* the unsent tail of the last event (malloc'd) */
    size_t pending_len, pending_off;
    unsigned stalled_s; /* seconds in a row with the tail still unsent */
};

size_t events_format(char *out, size_t cap, uint64_t id, const char *data, size_t len)
{
    size_t n = 0;
#define PUT(s, l)                                                                                  \
    do {                                                                                           \
        if (n + 1 < cap) memcpy(out + n, (s), n + (l) < cap ? (l) : cap - 1 - n);                  \
        n += (l);                                                                                  \
    } while (0)
    char num[32];
    int nl = snprintf(num, sizeof(num), "id: %llu\n", (unsigned long long)id);
    PUT(num, (size_t)nl);
    size_t i = 0;
    do {
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r')
            j++;
        PUT("data: ", 6);
        PUT(data + i, j - i);
        PUT("\n", 1);
        if (j < len && data[j] == '\r' && j + 1 < len && data[j + 1] == '\n') j++;
        i = j + 1;
    } while (i < len);
    PUT("\n", 1);
#undef PUT
    if (cap) out[n < cap ? n : cap - 1] = '\0';
    return n;
}

/* --- clients ----------------------------------------------------------- */

static void client_free(struct deferred *d)
{
    struct client *cl = list_entry(d, struct client, dfr);
    free(cl->pending);
    free(cl);
}

static void client_close(struct client *cl, const char *why)
{
    struct events *ev = cl->ev;
    log_debug("events: client of %s closed: %s", cl->id, why);
    loop_del(ev->loop, &cl->io);
    close(cl->io.fd);
    cl->io.fd = -1;
    list_remove(&cl->node);
    ev->nclients--;
    loop_defer(ev->loop, &cl->dfr, client_free);
}

/* Writes what is pending. 1 when all of it went, 0 when the socket is full,
 * negative errno when the connection failed. */
static int client_flush(struct client *cl)
{
    while (cl->pending_off < cl->pending_len) {
        ssize_t w = send(cl->io.fd, cl->pending + cl->pending_off,
                         cl->pending_len - cl->pending_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return -errno;
        }
        cl->pending_off += (size_t)w;
    }
    free(cl->pending);
    cl->pending = NULL;
    cl->pending_len = cl->pending_off = 0;
    return 1;
}

/* Queues `text` (when nothing is pending) and writes as much as fits.
 * Returns as client_flush; 0 also when the previous event is still unsent. */
static int client_send(struct client *cl, const char *text, size_t len)
{
    if (cl->pending) {
        int rc = client_flush(cl);
        if (rc <= 0) return rc;
        /* The old tail went now: this second's event still waits for the
         * next tick, so that a slow reader gets at most one event a second. */
    }
    cl->pending = malloc(len);
    if (!cl->pending) return -ENOMEM;
    memcpy(cl->pending, text, len);
    cl->pending_len = len;
    cl->pending_off = 0;
    return client_flush(cl);
}

/* Reads and drops whatever the client sends; notices when it goes away. */
static void on_client_event(struct io *io, uint32_t events)
{
    struct client *cl = list_entry(io, struct client, io);
    if (events & EPOLLERR) {
        client_close(cl, "socket error");
        return;
    }
    char buf[1024];
    for (int i = 0; i < 16; i++) {
        ssize_t r = recv(io->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r > 0) continue;
        if (r == 0) {
            client_close(cl, "peer closed");
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        client_close(cl, strerror(errno));
        return;
    }
    if (events & (EPOLLHUP | EPOLLRDHUP)) client_close(cl, "peer hung up");
}

/* --- building events --------------------------------------------------- */

/* The event text for space `id` (malloc'd), or NULL when the space is gone
 * or memory is short. */
static char *build_event(struct events *ev, const char *id, size_t *len)
{
    struct space_record rec;
    if (registry_get(ev->node->reg, id, &rec) < 0) return NULL;
    cJSON *o = api_space_json(ev->node, &rec);
    char *json = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!json) return NULL;
    size_t jl = strlen(json);
    size_t need = events_format(NULL, 0, ev->seq, json, jl);
    char *text = malloc(need + 1);
    if (text) *len = events_format(text, need + 1, ev->seq, json, jl);
    free(json);
    return text;
}

enum { CACHE_SLOTS = 32 };

struct cached {
    char id[SPACE_ID_MAX + 1];
    char *text; /* NULL: the space is gone */
    size_t len;
};

static void on_tick(struct timer *t)
{
    struct events *ev = list_entry(t, struct events, tick);
    ev->seq++;
    /* One build per space per second, however many clients watch it. */
    struct cached cache[CACHE_SLOTS];
    size_t ncache = 0;
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &ev->clients)
    {
        struct client *cl = list_entry(pos, struct client, node);
        struct cached *c = NULL, one = {{0}, NULL, 0};
        for (size_t i = 0; i < ncache && !c; i++)
            if (strcmp(cache[i].id, cl->id) == 0) c = &cache[i];
        if (!c) {
            c = ncache < CACHE_SLOTS ? &cache[ncache++] : &one;
            snprintf(c->id, sizeof(c->id), "%s", cl->id);
            c->text = build_event(ev, cl->id, &c->len);
        }
        int rc = c->text ? client_send(cl, c->text, c->len) : -ENOENT;
        if (c == &one) free(one.text);
        if (rc < 0) {
            client_close(cl, rc == -ENOENT ? "space gone" : strerror(-rc));
        } else if (rc == 0) {
            if (++cl->stalled_s >= EVENTS_STALL_S) client_close(cl, "not reading");
        } else {
            cl->stalled_s = 0;
        }
    }
    for (size_t i = 0; i < ncache; i++)
        free(cache[i].text);
    if (!list_is_empty(&ev->clients)) {
        uint64_t next = t->when_ms + EVENTS_PERIOD_MS, now = loop_now_ms(ev->loop);
        timer_start(ev->loop, &ev->tick, next > now ? next : now + EVENTS_PERIOD_MS);
    }
}

static struct events *events_get(struct node *n)
{
    if (n->events) return n->events;
    struct events *ev = calloc(1, sizeof(*ev));
    if (!ev) return NULL;
    ev->loop = n->loop;
    ev->node = n;
    list_init(&ev->clients);
    timer_init(&ev->tick, on_tick);
    n->events = ev;
    return ev;
}

void events_start(struct node *n, struct conn *c, const char *id, size_t len)
{
    struct space_record rec;
    if (api_find_space(n, c, id, len, &rec) < 0) return;
    struct events *ev = events_get(n);
    if (!ev || ev->nclients >= EVENTS_MAX_CLIENTS) {
        static const char body[] = "{\"error\": \"too many event streams\"}\n";
        conn_respond(c, 503, "application/json", "Retry-After: 5\r\n", body, sizeof(body) - 1);
        return;
    }
    struct client *cl = calloc(1, sizeof(*cl));
    size_t elen = 0;
    char *first = build_event(ev, rec.id, &elen);
    size_t hlen = sizeof(response_head) - 1;
    char *text = first ? malloc(hlen + elen) : NULL;
    if (!cl || !text) {
        free(cl);
        free(first);
        free(text);
        conn_respond_error(c, 500, "out of memory");
        return;
    }
    memcpy(text, response_head, hlen);
    memcpy(text + hlen, first, elen);
    free(first);
    char rest[1];
    size_t rest_len;
    int fd = conn_detach(c, rest, 0, &rest_len);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    cl->io.fd = fd;
    cl->ev = ev;
    snprintf(cl->id, sizeof(cl->id), "%s", rec.id);
    deferred_init(&cl->dfr);
    cl->pending = text;
    cl->pending_len = hlen + elen;
    if (loop_add(ev->loop, &cl->io, EPOLLIN | EPOLLRDHUP, on_client_event) < 0) {
        close(fd);
        free(text);
        free(cl);
        return;
    }
    list_push_back(&ev->clients, &cl->node);
    ev->nclients++;
    if (client_flush(cl) < 0) {
        client_close(cl, "write failed");
        return;
    }
    if (!timer_is_active(&ev->tick))
        timer_start(ev->loop, &ev->tick, loop_now_ms(ev->loop) + EVENTS_PERIOD_MS);
}

size_t events_clients(const struct node *n)
{
    return n->events ? n->events->nclients : 0;
}

void events_close(struct node *n)
{
    struct events *ev = n->events;
    if (!ev) return;
    timer_stop(&ev->tick);
    while (!list_is_empty(&ev->clients)) {
        struct client *cl = list_entry(ev->clients.next, struct client, node);
        loop_del(ev->loop, &cl->io);
        close(cl->io.fd);
        list_remove(&cl->node);
        free(cl->pending);
        free(cl);
    }
    free(ev);
    n->events = NULL;
}
