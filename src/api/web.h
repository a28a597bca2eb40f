/* The web app (web/ in the repository): pages and their assets, embedded into
 * the binary at build time by scripts/embed_web.py ($(BUILD)/gen/web_assets.c)
 * and answered from memory by the master.
 *
 *   GET|HEAD /              index.html (+ the demo's <audio> when "demo" exists)
 *   GET|HEAD /s/{id}        listen.html      404 page for an unknown space
 *   GET|HEAD /host/{id}     host.html        (the key stays in the page:
 *   GET|HEAD /speak/{id}    speak.html        the server never sees it here)
 *   GET|HEAD /web/{path}    that asset, or 404
 *
 * Only names in the embedded table are ever answered: a URL is compared with
 * the table, never turned into a file name, so "..", "%2e" and friends are
 * simply unknown names. Every answer carries a strong ETag and
 * "Cache-Control: no-cache" (the browser keeps a copy and revalidates it: a
 * 304 costs a few bytes, and a new build is seen at once). Thread: the media
 * loop (the master). */
#ifndef TRIBUNE_API_WEB_H
#define TRIBUNE_API_WEB_H

#include <stdbool.h>
#include <stddef.h>

struct node;
struct conn;
struct route_match;

/* One embedded file. `path` is relative to web/ ("js/api.js"); `etag` is the
 * quoted strong validator ("\"0123456789abcdef\""). */
struct web_asset {
    const char *path;
    const char *data;
    size_t len;
    const char *etag;
};

/* The generated table, sorted by path (strcmp order). */
extern const struct web_asset web_assets[];
extern const size_t web_assets_n;

/* The asset named `path` (len bytes, relative to web/, no leading '/'), or
 * NULL. Pure: a binary search of the table. */
const struct web_asset *web_find(const char *path, size_t len);

/* The Content-Type for a file name by its extension: html, css, js (ES
 * modules), json, svg, png, ico, txt; "application/octet-stream" otherwise. */
const char *web_content_type(const char *path, size_t len);

/* True when an If-None-Match value (`v`, len bytes: "*", or a comma-separated
 * list of entity tags, weak "W/" ones compared weakly as RFC 9110 asks for
 * GET) names `etag`. Pure. */
bool web_etag_matches(const char *v, size_t len, const char *etag);

/* Answers GET or HEAD on one of the routes above; `m` is the router's match
 * (captures[0] the space id or the first path segment under /web/). */
void web_serve(struct node *n, struct conn *c, const struct route_match *m);

/* GET|HEAD /: the index page. */
void web_index(struct node *n, struct conn *c);

#endif
