/* HLS files of a space: see hls.h. */
#include "api/hls.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "api/node.h"
#include "api/web.h"
#include "http/conn.h"
#include "http/route.h"
#include "metrics/refusals.h"
#include "space/beacons.h"
#include "space/space.h"

static struct hls_stats stats;

static const char playlist_type[] = "application/vnd.apple.mpegurl";
static const char media_type[] = "audio/mp4";
static const char immutable[] = "Cache-Control: public, max-age=31536000, immutable\r\n";

void api_hls_stats(struct hls_stats *out)
{
    *out = stats;
}

const char *api_hls_kind_name(enum hls_kind k)
{
    static const char *const names[HLS_KIND_N] = {"playlist", "init", "segment"};
    return k < HLS_KIND_N ? names[k] : "?";
}

/* 200 with `body` and its validators, or 304 when the client (a cache
 * revalidating) holds this ETag already. `cache` is a Cache-Control line. */
static void respond(struct conn *c, enum hls_kind k, const char *type, const char *cache,
                    const char *etag, const void *body, size_t len)
{
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "%sETag: %s\r\nAccess-Control-Allow-Origin: *\r\n", cache, etag);
    size_t vlen = 0;
    const char *inm = conn_header(c, "If-None-Match", &vlen);
    stats.requests[k]++;
    if (inm && web_etag_matches(inm, vlen, etag)) {
        conn_respond(c, 304, type, hdr, NULL, 0);
        return;
    }
    if (c->method != ROUTE_HEAD) stats.bytes[k] += len;
    conn_respond(c, 200, type, hdr, body, len);
}

/* The playlist: never a 404 once the space exists, so a player keeps trying. */
static void serve_playlist(struct conn *c, const struct space *s)
{
    const struct hls_pkg *p = &s->hls;
    if (!p->playlist && (s->rec.state == SPACE_ENDED || p->is_ended)) {
        stats.requests[HLS_KIND_PLAYLIST]++;
        conn_respond_error(c, 410, "this space has ended");
        return;
    }
    if (!p->playlist) {
        static const char body[] = "{\"error\": \"the first segment is not ready yet\"}\n";
        stats.requests[HLS_KIND_PLAYLIST]++;
        conn_respond(c, 503, "application/json", "Retry-After: 1\r\n", body, sizeof(body) - 1);
        return;
    }
    char etag[64];
    snprintf(etag, sizeof(etag), "\"%s-%" PRIu64 "%s\"", p->run, p->next_msn,
             p->is_ended ? "-end" : "");
    respond(c, HLS_KIND_PLAYLIST, playlist_type,
            p->is_ended ? "Cache-Control: public, max-age=60\r\n"
                        : "Cache-Control: public, max-age=1\r\n",
            etag, p->playlist, p->playlist_len);
}

void api_hls(struct node *n, struct conn *c, const char *id, size_t idlen, const char *name,
             size_t len)
{
    struct space *s = spaces_get(&n->spaces, id, idlen);
    if (!s) {
        refuse(REFUSE_NO_SPACE);
        conn_respond_error(c, 404, "no such space");
        return;
    }
    if (len == 9 && memcmp(name, "live.m3u8", 9) == 0) {
        serve_playlist(c, s);
        return;
    }
    const struct hls_pkg *p = &s->hls;
    uint64_t msn = 0;
    int kind = hls_pkg_parse_name(p, name, len, &msn);
    char etag[64];
    if (kind == 1) {
        bool is_named = len != 8; /* init-<run>.mp4, not init.mp4 */
        snprintf(etag, sizeof(etag), "\"%s-init\"", p->run);
        respond(c, HLS_KIND_INIT, media_type, is_named ? immutable : "Cache-Control: no-cache\r\n",
                etag, p->init, p->init_len);
        return;
    }
    const struct hls_segment *seg = kind == 2 ? hls_pkg_segment(p, msn) : NULL;
    if (!seg) {
        if (kind == 2) stats.requests[HLS_KIND_SEGMENT]++;
        conn_respond_error(
            c, 404, kind == 2 ? "this segment is gone (or not ready yet)" : "no such HLS file");
        return;
    }
    snprintf(etag, sizeof(etag), "\"%s-%" PRIu64 "\"", p->run, msn);
    respond(c, HLS_KIND_SEGMENT, media_type, immutable, etag, seg->data, seg->len);
}

/* The beacon's fields, checked: 0, or -EINVAL with *why set. */
static int parse_beacon(const cJSON *j, const char **session, bool *is_playing, double *buffered,
                        uint32_t *stalls, const char **why)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "session");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "playing");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "buffered_s");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stalls");
    *why = "session must be 8 to 64 characters of A-Z a-z 0-9 _ -";
    if (!cJSON_IsString(s) || !beacons_session_is_valid(s->valuestring, strlen(s->valuestring)))
        return -EINVAL;
    *why = "playing must be true or false";
    if (!cJSON_IsBool(p)) return -EINVAL;
    *why = "buffered_s must be a number from 0 to 3600";
    if (b && (!cJSON_IsNumber(b) || !(b->valuedouble >= 0 && b->valuedouble <= 3600)))
        return -EINVAL;
    *why = "stalls must be a whole number from 0";
    if (st && (!cJSON_IsNumber(st) || !(st->valuedouble >= 0 && st->valuedouble <= 4e9) ||
               st->valuedouble != (double)(uint32_t)st->valuedouble))
        return -EINVAL;
    *session = s->valuestring;
    *is_playing = cJSON_IsTrue(p);
    *buffered = b ? b->valuedouble : 0;
    *stalls = st ? (uint32_t)st->valuedouble : 0;
    return 0;
}

void api_beacon(struct node *n, struct conn *c, const char *id, size_t idlen)
{
    struct space *s = spaces_get(&n->spaces, id, idlen);
    if (!s) {
        conn_respond_error(c, 404, "no such space");
        return;
    }
    if (s->rec.state == SPACE_ENDED) {
        conn_respond_error(c, 410, "this space has ended");
        return;
    }
    cJSON *j = c->body ? cJSON_ParseWithLength(c->body, c->body_len) : NULL;
    const char *session = NULL, *why = "the body must be a JSON object";
    bool is_playing = false;
    double buffered = 0;
    uint32_t stalls = 0;
    int err = cJSON_IsObject(j) ? parse_beacon(j, &session, &is_playing, &buffered, &stalls, &why)
                                : -EINVAL;
    if (err == 0)
        err = beacons_note(&s->beacons, session, strlen(session), loop_now_ms(n->loop), is_playing,
                           buffered, stalls);
    cJSON_Delete(j);
    if (err == -EINVAL) {
        conn_respond_error(c, 400, why);
    } else if (err < 0) {
        static const char body[] = "{\"error\": \"too many HLS sessions in this space\"}\n";
        conn_respond(c, 503, "application/json", "Retry-After: 10\r\n", body, sizeof(body) - 1);
    } else {
        static const char body[] = "{\"interval_s\": 10, \"expires_s\": 30}\n";
        conn_respond(c, 200, "application/json", "Access-Control-Allow-Origin: *\r\n", body,
                     sizeof(body) - 1);
    }
}
