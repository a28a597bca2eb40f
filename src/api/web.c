/* The web app's pages and assets, answered from the table that
 * scripts/embed_web.py generates from web/ (see web.h). */
#include "api/web.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/node.h"
#include "http/conn.h"
#include "http/route.h"
#include "space/registry.h"

/* The index page holds this marker where the demo's player goes. */
static const char demo_marker[] = "<!--demo-audio-->";
static const char demo_audio[] =
    "<section id=\"demo\" aria-labelledby=\"demo-h\"><h2 id=\"demo-h\">Demo space</h2>\n"
    "<audio id=\"demo-audio\" controls preload=\"none\" src=\"/spaces/demo/live.opus\"></audio>\n"
    "<p><a href=\"/s/demo\">Open the demo's listen page</a></p></section>";

/* Pages are not framed by others, and run and style nothing from elsewhere. media-src blob: lets
 * the HLS mode attach its MediaSource (hls.js: <audio src="blob:...">). Media and connections
 * may go to other nodes (http:, https:, ws:, wss:): the listen page fails over to the nodes
 * its space's JSON lists ("nodes", docs/internals/web.md, Failover), which change at run time. */
static const char page_headers[] =
    "Content-Security-Policy: default-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: http: https:; connect-src 'self' http: https: ws: wss:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'\r\n"
    "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n";

const struct web_asset *web_find(const char *path, size_t len)
{
    size_t lo = 0, hi = web_assets_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *p = web_assets[mid].path;
        size_t plen = strlen(p);
        int cmp = memcmp(path, p, len < plen ? len : plen);
        if (cmp == 0) cmp = len < plen ? -1 : len > plen ? 1 : 0;
        if (cmp == 0) return &web_assets[mid];
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static bool has_suffix(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

const char *web_content_type(const char *path, size_t len)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".webmanifest", "application/manifest+json"},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (has_suffix(path, len, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}

/* One entity tag of an If-None-Match list against ours, weakly (a "W/"
 * prefix on either side is ignored). */
static bool tag_equals(const char *t, size_t tlen, const char *etag)
{
    if (tlen >= 2 && t[0] == 'W' && t[1] == '/') t += 2, tlen -= 2;
    if (strncmp(etag, "W/", 2) == 0) etag += 2;
    return tlen == strlen(etag) && memcmp(t, etag, tlen) == 0;
}

bool web_etag_matches(const char *v, size_t len, const char *etag)
{
    size_t pos = 0, il;
    const char *item;
    while (http_list_next(v, len, &pos, &item, &il)) {
        if (il == 1 && item[0] == '*') return true;
        if (tag_equals(item, il, etag)) return true;
    }
    return false;
}

/* Answers `body` with our validators; 304 when the client holds this
 * version already. `etag` is the quoted entity tag. */
static void respond(struct conn *c, int status, const char *type, const char *etag,
                    const char *body, size_t len)
{
    char hdr[768];
    bool is_page = strncmp(type, "text/html", 9) == 0;
    snprintf(hdr, sizeof(hdr), "ETag: %s\r\nCache-Control: no-cache\r\n%s", etag,
             is_page ? page_headers : "");
    size_t vlen = 0;
    const char *inm = conn_header(c, "If-None-Match", &vlen);
    if (status == 200 && inm && web_etag_matches(inm, vlen, etag)) {
        conn_respond(c, 304, type, hdr, NULL, 0);
        return;
    }
    conn_respond(c, status, type, hdr, body, len);
}

static void respond_asset(struct conn *c, int status, const struct web_asset *a)
{
    respond(c, status, web_content_type(a->path, strlen(a->path)), a->etag, a->data, a->len);
}

/* 404 for a page or an asset: the embedded 404.html, or a plain text. */
static void not_found(struct conn *c)
{
    const struct web_asset *a = web_find("404.html", 8);
    if (a)
        conn_respond(c, 404, "text/html; charset=utf-8", page_headers, a->data, a->len);
    else
        conn_respond(c, 404, "text/plain", NULL, "not found\n", 10);
}

/* True when the space exists (loaded, or in the registry; an edge asks its origin). */
static bool space_exists(struct node *n, const char *id, size_t len)
{
    if (!space_id_is_valid(id, len)) return false;
    if (spaces_peek(&n->spaces, id, len)) return true;
    if (n->is_relay) return spaces_get(&n->spaces, id, len) != NULL;
    char key[SPACE_ID_MAX + 1];
    struct space_record rec;
    memcpy(key, id, len);
    key[len] = '\0';
    return registry_get(n->reg, key, &rec) == 0;
}

void web_index(struct node *n, struct conn *c)
{
    const struct web_asset *a = web_find("index.html", 10);
    if (!a) {
        not_found(c);
        return;
    }
    const char *mark = strstr(a->data, demo_marker);
    if (!mark || (!n->is_demo && !spaces_peek(&n->spaces, "demo", 4))) {
        respond_asset(c, 200, a);
        return;
    }
    /* the demo's variant: the marker replaced, its own validator */
    size_t head = (size_t)(mark - a->data), ml = sizeof(demo_marker) - 1;
    size_t dl = sizeof(demo_audio) - 1, len = a->len - ml + dl;
    char *page = malloc(len), etag[48];
    if (!page) {
        conn_respond_error(c, 500, "out of memory");
        return;
    }
    memcpy(page, a->data, head);
    memcpy(page + head, demo_audio, dl);
    memcpy(page + head + dl, mark + ml, a->len - head - ml);
    snprintf(etag, sizeof(etag), "\"%.*s-demo\"", (int)strlen(a->etag) - 2, a->etag + 1);
    respond(c, 200, "text/html; charset=utf-8", etag, page, len);
    free(page);
}

void web_serve(struct node *n, struct conn *c, const struct route_match *m)
{
    static const struct {
        const char *prefix, *page;
    } pages[] = {{"/s/", "listen.html"}, {"/host/", "host.html"}, {"/speak/", "speak.html"}};
    const char *path = conn_str(c, c->path);
    size_t len = c->path.len;
    if (len > 5 && memcmp(path, "/web/", 5) == 0) {
        const struct web_asset *a = web_find(path + 5, len - 5);
        if (a)
            respond_asset(c, 200, a);
        else
            not_found(c);
        return;
    }
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        if (strncmp(path, pages[i].prefix, strlen(pages[i].prefix)) != 0) continue;
        const struct web_asset *a = web_find(pages[i].page, strlen(pages[i].page));
        if (!a || !space_exists(n, m->captures[0].s, m->captures[0].len))
            not_found(c);
        else
            respond_asset(c, 200, a);
        return;
    }
    not_found(c);
}
