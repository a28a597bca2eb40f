/* Rooms over HTTP: the host's actions (go live, end, invite, remove, mute,
 * decide requests), requests to speak from anyone, and the speakers' view.
 *
 * Every host action checks the host key first (api_is_host: 401, or 429 for
 * an address that failed too often), then validates, then changes the
 * registry and the running space, so a refused call changes nothing. Keys are
 * answered once (invite, approve, the requester's pickup) and never logged.
 * Thread: the media loop.
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api/api.h"
#include "api/node.h"
#include "core/log.h"
#include "http/conn.h"
#include "http/route.h"
#include "media/mixer.h"
#include "record/recorder.h"
#include "space/space.h"

enum { RID_MAX_DIGITS = 18 };

static bool is_ended(struct conn *c, const struct space *s)
{
    if (s->rec.state != SPACE_ENDED) return false;
    conn_respond_error(c, 409, "this space has ended");
    return true;
}

/* The "name" of a JSON body {"name": N}, copied to out: 0, or answers 400. */
static int body_name(struct conn *c, char out[SPEAKER_NAME_MAX + 1])
{
    cJSON *body = c->body ? cJSON_ParseWithLength(c->body, c->body_len) : NULL;
    cJSON *nm = cJSON_GetObjectItemCaseSensitive(body, "name");
    int err = -EINVAL;
    if (cJSON_IsObject(body) && cJSON_IsString(nm) &&
        speaker_name_is_valid(nm->valuestring, strlen(nm->valuestring)) &&
        strcmp(nm->valuestring, "host") != 0 && strcmp(nm->valuestring, "demo") != 0) {
        snprintf(out, SPEAKER_NAME_MAX + 1, "%s", nm->valuestring);
        err = 0;
    }
    cJSON_Delete(body);
    if (err < 0)
        conn_respond_error(c, 400,
                           "body must be {\"name\": N}, N of 1 to 32 characters from A-Z a-z 0-9 _ "
                           "- (not \"host\" or \"demo\")");
    return err;
}

/* A path segment as a speaker name: 0, or answers 404. */
static int path_name(struct conn *c, const char *name, size_t len, char out[SPEAKER_NAME_MAX + 1])
{
    if (!speaker_name_is_valid(name, len)) {
        conn_respond_error(c, 404, "no such speaker");
        return -ENOENT;
    }
    memcpy(out, name, len);
    out[len] = '\0';
    return 0;
}

static int path_rid(struct conn *c, const char *rid, size_t len, int64_t *out)
{
    int64_t v = 0;
    for (size_t i = 0; i < len && len <= RID_MAX_DIGITS; i++) {
        if (rid[i] < '0' || rid[i] > '9') break;
        v = v * 10 + (rid[i] - '0');
        if (i + 1 == len && v > 0) {
            *out = v;
            return 0;
        }
    }
    conn_respond_error(c, 404, "no such request");
    return -ENOENT;
}

/* ---- the speakers' view ---- */

struct speakers_ctx {
    cJSON *arr;
    struct space *s;
    bool is_detailed;
};

static void add_figures(cJSON *o, const struct speaker *sp)
{
    struct mixer_input_stats st = {0};
    if (sp && sp->in) mixer_input_get_stats(sp->in, &st);
    cJSON_AddNumberToObject(o, "buffered_ms", st.buffered_ms);
    cJSON_AddNumberToObject(o, "underruns", (double)st.underruns);
    cJSON_AddNumberToObject(o, "drift_drops", (double)st.drift_drops);
    cJSON_AddNumberToObject(o, "drift_fills", (double)st.drift_fills);
    cJSON_AddNumberToObject(o, "peak_dbfs", sp && sp->in ? st.peak_dbfs : -120.0);
    cJSON_AddNumberToObject(o, "jitter_ms", st.jitter_ms);
}

/* "Who is talking now": the mixer's short-term level of the speaker's own audio (RMS over
 * ~300 ms, dBFS, -120 when silent or not mixed) and whether it is talking (above -45 dBFS,
 * with a hold; never while muted), and how it is connected. */
static void add_level(cJSON *o, const struct speaker *sp)
{
    struct mixer_input_stats st = {.level_dbfs = -120.0f};
    if (sp && sp->in) mixer_input_get_stats(sp->in, &st);
    cJSON_AddNumberToObject(o, "level_dbfs", (double)roundf(st.level_dbfs * 10.0f) / 10.0);
    cJSON_AddBoolToObject(o, "talking", st.is_talking);
    const char *t = !sp ? NULL : sp->ws ? "ws" : sp->pub ? "http" : "builtin";
    if (t) cJSON_AddStringToObject(o, "transport", t);
}

static void add_speaker(struct speakers_ctx *x, const char *name, bool is_muted)
{
    struct speaker *sp = x->s ? space_speaker(x->s, name) : NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddBoolToObject(o, "connected", sp != NULL);
    cJSON_AddBoolToObject(o, "muted", sp ? sp->is_muted : is_muted);
    add_level(o, sp);
    if (x->is_detailed) add_figures(o, sp);
    cJSON_AddItemToArray(x->arr, o);
}

static int add_invited(const struct speaker_record *r, void *arg)
{
    add_speaker(arg, r->name, r->is_muted);
    return 0;
}

void api_add_speakers(struct node *n, cJSON *o, const struct space_record *r, struct space *s,
                      bool is_detailed)
{
    struct speakers_ctx x = {cJSON_AddArrayToObject(o, "speakers"), s, is_detailed};
    if (!x.arr) return;
    if (s && space_speaker(s, "host")) add_speaker(&x, "host", false);
    if (s && space_speaker(s, "demo")) add_speaker(&x, "demo", false);
    registry_speaker_list(n->reg, r->id, add_invited, &x);
}

/* ---- lifecycle ---- */

static cJSON *state_json(struct space *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "state", space_state_name(s->rec.state));
    cJSON_AddNumberToObject(o, "program_granule", (double)program_granule(&s->program));
    return o;
}

void api_live(struct node *n, struct conn *c, const char *id, size_t len)
{
    struct space *s = api_host_space(n, c, id, len);
    if (!s || is_ended(c, s)) return;
    space_go_live(s);
    api_respond_json(c, 200, state_json(s));
}

void api_end(struct node *n, struct conn *c, const char *id, size_t len)
{
    struct space *s = api_host_space(n, c, id, len);
    if (!s) return;
    space_end(s);
    api_respond_json(c, 200, state_json(s));
}

/* ---- speakers ---- */

/* Invites `name` and answers {name, key} (201), or the refusal. */
static void invite(struct node *n, struct conn *c, struct space *s, const char *name, int status)
{
    char key[SPACE_KEY_HEX + 1];
    int err = registry_speaker_add(n->reg, s->rec.id, name, n->cfg.max_speakers, key);
    if (err == -EEXIST) {
        conn_respond_error(c, 409, "this space already has a speaker of that name");
        return;
    }
    if (err == -ENOSPC) {
        char msg[96];
        snprintf(msg, sizeof(msg), "this space has %d speakers, the most allowed (max_speakers)",
                 n->cfg.max_speakers);
        conn_respond_error(c, 409, msg);
        return;
    }
    if (err < 0) {
        conn_respond_error(c, err == -EINVAL ? 400 : 500,
                           err == -EINVAL ? "bad speaker name" : "registry unavailable");
        return;
    }
    log_info("space %s: speaker %s invited", s->rec.id, name);
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "key", key);
        char url[128];
        snprintf(url, sizeof(url), "/spaces/%s/speakers/%s.opus", s->rec.id, name);
        cJSON_AddStringToObject(o, "publish", url);
    }
    OPENSSL_cleanse(key, sizeof(key));
    api_respond_json(c, status, o);
}

void api_speakers(struct node *n, struct conn *c, const char *id, size_t len)
{
    struct space *s = api_host_space(n, c, id, len);
    if (!s) return;
    if (c->method != ROUTE_POST) {
        cJSON *o = cJSON_CreateObject();
        if (o) api_add_speakers(n, o, &s->rec, s, true);
        api_respond_json(c, 200, o);
        return;
    }
    char name[SPEAKER_NAME_MAX + 1];
    if (is_ended(c, s) || body_name(c, name) < 0) return;
    invite(n, c, s, name, 201);
}

/* A speaker action's failure: 404 for a name the space does not have. */
static void speaker_error(struct conn *c, int err)
{
    conn_respond_error(c, err == -ENOENT ? 404 : 500,
                       err == -ENOENT ? "no such speaker" : "registry unavailable");
}

void api_speaker_remove(struct node *n, struct conn *c, const char *id, size_t len,
                        const char *name, size_t name_len)
{
    struct space *s = api_host_space(n, c, id, len);
    char nm[SPEAKER_NAME_MAX + 1];
    if (!s || path_name(c, name, name_len, nm) < 0) return;
    int err = space_remove_speaker(s, nm);
    if (err < 0) {
        speaker_error(c, err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "name", nm);
        cJSON_AddBoolToObject(o, "removed", true);
    }
    api_respond_json(c, 200, o);
}

void api_speaker_mute(struct node *n, struct conn *c, const char *id, size_t len, const char *name,
                      size_t name_len, bool is_muted)
{
    struct space *s = api_host_space(n, c, id, len);
    char nm[SPEAKER_NAME_MAX + 1];
    if (!s || path_name(c, name, name_len, nm) < 0 || is_ended(c, s)) return;
    int err = space_set_muted(s, nm, is_muted);
    if (err < 0) {
        speaker_error(c, err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "name", nm);
        cJSON_AddBoolToObject(o, "muted", is_muted);
        cJSON_AddNumberToObject(o, "program_granule", (double)program_granule(&s->program));
    }
    api_respond_json(c, 200, o);
}

/* ---- requests to speak ---- */

static const char *request_state_name(enum request_state st)
{
    return st == REQUEST_APPROVED ? "approved" : st == REQUEST_REFUSED ? "refused" : "pending";
}

static cJSON *request_json(const struct request_record *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddStringToObject(o, "state", request_state_name(r->state));
    cJSON_AddNumberToObject(o, "created_at", (double)r->created_at);
    return o;
}

static int add_request(const struct request_record *r, void *arg)
{
    cJSON *o = request_json(r);
    if (o) cJSON_AddItemToArray(arg, o);
    return 0;
}

static void file_request(struct node *n, struct conn *c, struct space *s)
{
    char name[SPEAKER_NAME_MAX + 1], token[SPACE_KEY_HEX + 1];
    if (is_ended(c, s) || body_name(c, name) < 0) return;
    int64_t rid = 0;
    int err = registry_request_add(n->reg, s->rec.id, name, n->cfg.max_requests, &rid, token);
    if (err == -ENOSPC) {
        static const char body[] = "{\"error\": \"too many requests to speak are waiting\"}\n";
        conn_respond(c, 429, "application/json", "Retry-After: 30\r\n", body, sizeof(body) - 1);
        return;
    }
    if (err < 0) {
        conn_respond_error(c, 500, "registry unavailable");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddNumberToObject(o, "id", (double)rid);
        cJSON_AddStringToObject(o, "token", token);
        cJSON_AddStringToObject(o, "state", "pending");
    }
    OPENSSL_cleanse(token, sizeof(token));
    api_respond_json(c, 201, o);
}

void api_requests(struct node *n, struct conn *c, const char *id, size_t len)
{
    if (c->method == ROUTE_POST) {
        struct space *s = spaces_get(&n->spaces, id, len);
        if (!s)
            conn_respond_error(c, 404, "no such space");
        else
            file_request(n, c, s);
        return;
    }
    struct space *s = api_host_space(n, c, id, len);
    if (!s) return;
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = o ? cJSON_AddArrayToObject(o, "requests") : NULL;
    if (arr) registry_request_list(n->reg, s->rec.id, add_request, arr);
    api_respond_json(c, 200, o);
}

void api_request(struct node *n, struct conn *c, const char *id, size_t len, const char *rid,
                 size_t rid_len)
{
    struct space *s = spaces_get(&n->spaces, id, len);
    int64_t r = 0;
    if (!s) {
        conn_respond_error(c, 404, "no such space");
        return;
    }
    if (path_rid(c, rid, rid_len, &r) < 0 || node_key_is_limited(n, c)) return;
    char token[128];
    size_t tlen = 0;
    struct request_record rec;
    bool ok = api_request_key(c, token, sizeof(token), &tlen) == 0 &&
              registry_check_request_token(n->reg, s->rec.id, r, token, tlen) &&
              registry_request_get(n->reg, s->rec.id, r, &rec) == 0;
    OPENSSL_cleanse(token, sizeof(token));
    if (!ok) {
        node_key_failed(n, c);
        static const char body[] = "{\"error\": \"missing or wrong request token\"}\n";
        conn_respond(c, 401, "application/json", "WWW-Authenticate: Bearer realm=\"Tribune\"\r\n",
                     body, sizeof(body) - 1);
        return;
    }
    cJSON *o = request_json(&rec);
    char key[SPACE_KEY_HEX + 1];
    if (o && rec.state == REQUEST_APPROVED &&
        registry_request_pickup(n->reg, s->rec.id, r, key) == 0) {
        cJSON_AddStringToObject(o, "key", key);
        char url[128];
        snprintf(url, sizeof(url), "/spaces/%s/speakers/%s.opus", s->rec.id, rec.name);
        cJSON_AddStringToObject(o, "publish", url);
        OPENSSL_cleanse(key, sizeof(key));
    }
    api_respond_json(c, 200, o);
}

void api_request_decide(struct node *n, struct conn *c, const char *id, size_t len, const char *rid,
                        size_t rid_len, bool approve)
{
    struct space *s = api_host_space(n, c, id, len);
    int64_t r = 0;
    struct request_record rec;
    if (!s || path_rid(c, rid, rid_len, &r) < 0 || is_ended(c, s)) return;
    if (registry_request_get(n->reg, s->rec.id, r, &rec) < 0) {
        conn_respond_error(c, 404, "no such request");
        return;
    }
    if (rec.state != REQUEST_PENDING) {
        conn_respond_error(c, 409, "this request was already decided");
        return;
    }
    if (!approve) {
        registry_request_decide(n->reg, s->rec.id, r, false, NULL);
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddNumberToObject(o, "id", (double)r);
            cJSON_AddStringToObject(o, "state", "refused");
        }
        api_respond_json(c, 200, o);
        return;
    }
    char key[SPACE_KEY_HEX + 1];
    int err = registry_speaker_add(n->reg, s->rec.id, rec.name, n->cfg.max_speakers, key);
    if (err < 0) {
        conn_respond_error(c, err == -EEXIST || err == -ENOSPC ? 409 : 500,
                           err == -EEXIST   ? "this space already has a speaker of that name"
                           : err == -ENOSPC ? "this space has the most speakers allowed"
                                            : "registry unavailable");
        return;
    }
    registry_request_decide(n->reg, s->rec.id, r, true, key);
    log_info("space %s: request %lld to speak approved: speaker %s", s->rec.id, (long long)r,
             rec.name);
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddNumberToObject(o, "id", (double)r);
        cJSON_AddStringToObject(o, "name", rec.name);
        cJSON_AddStringToObject(o, "key", key);
        cJSON_AddStringToObject(o, "state", "approved");
    }
    OPENSSL_cleanse(key, sizeof(key));
    api_respond_json(c, 200, o);
}

/* ---- recordings ---- */

cJSON *api_recording_json(struct node *n, const char *id)
{
    struct recording_info ri;
    if (!n->recorder || recorder_get_info(n->recorder, id, &ri) < 0 || !ri.exists) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "space", id);
    char url[128];
    snprintf(url, sizeof(url), "/spaces/%s/recording.opus", id);
    cJSON_AddStringToObject(o, "url", url);
    cJSON_AddBoolToObject(o, "recording", ri.is_open || ri.is_closing); /* until final */
    cJSON_AddBoolToObject(o, "failing", ri.is_failing);
    cJSON_AddNumberToObject(o, "bytes", (double)ri.bytes);
    cJSON_AddNumberToObject(o, "duration_s", (double)ri.duration_ms / 1000.0);
    cJSON_AddNumberToObject(o, "gap_s", (double)ri.gap_ms / 1000.0);
    cJSON_AddNumberToObject(o, "segments", ri.segments);
    cJSON_AddNumberToObject(o, "suspect_segments", ri.suspect);
    cJSON_AddNumberToObject(o, "started_at", (double)ri.started_at);
    if (ri.last_error) cJSON_AddStringToObject(o, "last_error", strerror(ri.last_error));
    return o;
}

void api_recording(struct node *n, struct conn *c, const char *id, size_t len)
{
    struct space_record rec;
    if (api_find_space(n, c, id, len, &rec) < 0) return;
    cJSON *o = api_recording_json(n, rec.id);
    if (!o) {
        conn_respond_error(c, 404, "this space has no recording (yet)");
        return;
    }
    api_respond_json(c, 200, o);
}

struct recordings_ctx {
    struct node *n;
    cJSON *arr;
};

static int add_recording(const struct space_record *r, void *arg)
{
    struct recordings_ctx *x = arg;
    cJSON *o = api_recording_json(x->n, r->id);
    if (o) {
        cJSON_AddStringToObject(o, "title", r->title);
        cJSON_AddStringToObject(o, "state", space_state_name(r->state));
        cJSON_AddItemToArray(x->arr, o);
    }
    return 0;
}

void api_recordings(struct node *n, struct conn *c)
{
    cJSON *o = cJSON_CreateObject();
    struct recordings_ctx x = {n, o ? cJSON_AddArrayToObject(o, "recordings") : NULL};
    if (x.arr) registry_list(n->reg, add_recording, &x);
    api_respond_json(c, 200, o);
}
