/* Fuzz driver for the JSON bodies Tribune parses: the body of POST /api/spaces (cJSON, then
 * api_parse_create, exactly as the handler does) and, on the client side, the bodies of
 * GET /api/spaces and GET /api/node that `tribune top` reads (top_parse, top_parse_node), then
 * rendered by top_render.
 *
 * Invariants (abort on violation):
 * - api_parse_create accepts only an object whose "title" is that object's string, 1 to
 *   SPACE_TITLE_MAX bytes, and gives starts_at in [0, 1e11] (0 when absent or null); else it
 *   returns a non-empty error text;
 * - an accepted body printed by cJSON and parsed again is accepted again with the same title
 *   and starts_at;
 * - top_parse succeeds only for an object with a "spaces" array, at most one space per element,
 *   ids and states NUL-terminated in their fields, sorted by hearing (most first);
 *   top_parse_node sets has_node exactly when it succeeds. */
#include <cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/top.h"
#include "space/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: says which line, then aborts (libFuzzer keeps the input as a crash). */
#define FAIL() fail_at(__LINE__)
__attribute__((noreturn)) static void fail_at(int line)
{
    fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
    abort();
}

static cJSON *member(cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

/* An accepted body: the values api_parse_create gave must be the body's own. */
static void check_accepted(cJSON *body, const char *title, int64_t starts_at)
{
    cJSON *t = member(body, "title"), *s = member(body, "starts_at");
    size_t len;

    if (!cJSON_IsObject(body) || !cJSON_IsString(t) || title != t->valuestring) FAIL();
    len = strlen(title);
    if (len == 0 || len > SPACE_TITLE_MAX) FAIL();
    if (starts_at < 0 || starts_at > 100000000000LL) FAIL();
    if ((!s || cJSON_IsNull(s)) && starts_at != 0) FAIL();
    if (s && !cJSON_IsNull(s) && (!cJSON_IsNumber(s) || starts_at != (int64_t)s->valuedouble))
        FAIL();
}

/* Printed and parsed again, an accepted body is accepted with the same values. */
static void check_round_trip(cJSON *body, const char *title, int64_t starts_at)
{
    char *text = cJSON_PrintUnformatted(body);
    cJSON *again;
    const char *title2 = NULL;
    int64_t starts_at2 = -1;

    if (!text) return; /* out of memory */
    again = cJSON_Parse(text);
    free(text);
    if (!again) FAIL();
    if (api_parse_create(again, &title2, &starts_at2) != NULL) FAIL();
    if (strcmp(title, title2) != 0 || starts_at != starts_at2) FAIL();
    cJSON_Delete(again);
}

static void fuzz_create(const char *json, size_t len)
{
    cJSON *body = cJSON_ParseWithLength(json, len);
    const char *title = NULL, *err;
    int64_t starts_at = -1;

    if (!body) return; /* the handler answers "body must be JSON" */
    err = api_parse_create(body, &title, &starts_at);
    if (err) {
        if (!err[0]) FAIL();
    } else {
        check_accepted(body, title, starts_at);
        check_round_trip(body, title, starts_at);
    }
    cJSON_Delete(body);
}

static void check_snap(const struct top_snap *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (!memchr(s->spaces[i].id, '\0', sizeof(s->spaces[i].id))) FAIL();
        if (!memchr(s->spaces[i].state, '\0', sizeof(s->spaces[i].state))) FAIL();
        if (i + 1 < s->n && s->spaces[i].hearing < s->spaces[i + 1].hearing) FAIL();
    }
}

static void fuzz_top(const char *json, size_t len, FILE *sink)
{
    struct top_snap prev, cur;
    cJSON *root = cJSON_ParseWithLength(json, len);
    cJSON *arr = member(root, "spaces");
    int rc = top_parse(json, len, 1.0, &cur);

    if (rc == 0) {
        if (!cJSON_IsArray(arr) || cur.n > (size_t)cJSON_GetArraySize(arr)) FAIL();
        check_snap(&cur);
    } else if (rc != -EPROTO && rc != -ENOMEM) {
        FAIL();
    }
    rc = top_parse_node(json, len, &cur);
    if ((rc == 0) != cur.has_node || (rc != 0 && rc != -EPROTO)) FAIL();
    if (cur.spaces) {
        prev = cur;
        prev.t = 0.5;
        prev.spaces = NULL;
        prev.n = 0;
        top_render(sink, "http://fuzz", &prev, &cur, 3);
    }
    top_snap_free(&cur);
    cJSON_Delete(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;

    if (!sink) sink = fopen("/dev/null", "w");
    if (!sink) FAIL();
    fuzz_create((const char *)data, size);
    fuzz_top((const char *)data, size, sink);
    return 0;
}
