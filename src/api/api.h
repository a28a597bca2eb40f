/* JSON API and web handlers. Each answers the request (conn_respond*) before
 * returning. Thread: the media loop. */
#ifndef TRIBUNE_API_API_H
#define TRIBUNE_API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct node;
struct conn;
struct cJSON;
struct space_record;
struct space;

/* GET /api/spaces (list) and POST /api/spaces (create). */
void api_spaces(struct node *n, struct conn *c);
/* Looks up space `id` (len bytes) in the registry into *rec: 0, or answers
 * 404 on `c` and returns -ENOENT. */
int api_find_space(struct node *n, struct conn *c, const char *id, size_t len,
                   struct space_record *rec);
/* GET /api/spaces/{id}. */
void api_space(struct node *n, struct conn *c, const char *id, size_t len);

/* GET /api/spaces/{id}/ticket: a join ticket valid for ticket_ttl_s, to
 * anyone ({"ticket", "expires_at"}). No registry access once the space is
 * loaded: one HMAC and a small JSON text. */
void api_ticket(struct node *n, struct conn *c, const char *id, size_t len);

/* POST /api/spaces/{id}/guard {"require_ticket": bool}: a host action
 * (Authorization: Bearer <host key>, or Basic with the key as password);
 * failed keys are limited per address (node_key_is_limited). Answers the
 * space's public view. */
void api_guard(struct node *n, struct conn *c, const char *id, size_t len);

/* The key presented on `c`: the token of "Authorization: Bearer <key>" or
 * the password of "Authorization: Basic base64(user:key)", copied to `out`
 * (cap bytes with the NUL). 0, -ENOENT when there is none, -EINVAL when
 * malformed or too long. */
int api_request_key(struct conn *c, char *out, size_t cap, size_t *len);

/* GET /api/node: workers, restarts, CPU seconds (master + running workers),
 * refusals by reason (master + workers' last reports), uptime. */
void api_node(struct node *n, struct conn *c);
/* POST /api/edges: an edge relay's gauges per space, once a second (relay/relay.h).
 * Accepted with the X-Tribune-Edge-Key header equal to edge_key, or, when no
 * edge_key is set, from loopback only (403 otherwise). 204, or 400. */
void api_edges(struct node *n, struct conn *c);

/* The public view of a space (what GET /api/spaces/{id} answers): never
 * holds a key. NULL when out of memory; the caller deletes it. */
struct cJSON *api_space_json(struct node *n, const struct space_record *r);

/* The nodes a listen page may fail over to (docs/internals/relay.md, Failover): with
 * `edges` set, its fresh edges with room, least loaded first; at an edge, then the
 * list its origin gave in the answer to its last report (this edge left out), then
 * the origin. At most NODE_NODES_MAX base URLs, rebuilt at most once a second.
 * A new JSON array (the caller owns it), NULL when out of memory. */
struct cJSON *api_nodes_json(struct node *n);

/* Validates the parsed body of POST /api/spaces: an object whose "title" is a
 * string of 1 to SPACE_TITLE_MAX bytes and whose "starts_at", if present and
 * not null, is a number of unix seconds in [0, 1e11]. Returns NULL and sets
 * *title (borrowed from `body`) and *starts_at (0 when absent), or returns an
 * error text for a 400. Pure; fuzzed by tests/fuzz/json_body_fuzz.c. */
const char *api_parse_create(struct cJSON *body, const char **title, int64_t *starts_at);

/* Answers `obj` (deleted here) as JSON with `status`. */
void api_respond_json(struct conn *c, int status, struct cJSON *obj);
/* The host key check of a host action: true when `c` carries space `id`'s
 * host key; otherwise the refusal (429 for an address over its failed
 * attempts, 401 for a missing or wrong key) has been sent. */
bool api_is_host(struct node *n, struct conn *c, const char *id);
/* Loads space `id` for a host action and checks the host key: the space, or
 * NULL with the answer sent (404, 401, 429). */
struct space *api_host_space(struct node *n, struct conn *c, const char *id, size_t len);

/* ---- rooms (api/rooms.c): lifecycle, speakers, requests to speak ---- */
/* Adds "speakers": [{name, connected, muted, ...}] to `o`: the invited ones
 * from the registry, plus "host" and "demo" when connected. `is_detailed`
 * adds each connected speaker's mixer figures (a host's view). */
void api_add_speakers(struct node *n, struct cJSON *o, const struct space_record *r,
                      struct space *s, bool is_detailed);
/* POST /api/spaces/{id}/live and /end (host). */
void api_live(struct node *n, struct conn *c, const char *id, size_t len);
void api_end(struct node *n, struct conn *c, const char *id, size_t len);
/* GET (host: the list with mixer figures) and POST {name} (host: invite,
 * answers the key once) /api/spaces/{id}/speakers. */
void api_speakers(struct node *n, struct conn *c, const char *id, size_t len);
/* DELETE /api/spaces/{id}/speakers/{name} (host). */
void api_speaker_remove(struct node *n, struct conn *c, const char *id, size_t len,
                        const char *name, size_t name_len);
/* POST /api/spaces/{id}/speakers/{name}/mute or /unmute (host). */
void api_speaker_mute(struct node *n, struct conn *c, const char *id, size_t len, const char *name,
                      size_t name_len, bool is_muted);
/* GET (host: the queue) and POST {name} (anyone: file a request) on
 * /api/spaces/{id}/requests. */
void api_requests(struct node *n, struct conn *c, const char *id, size_t len);
/* GET /api/spaces/{id}/requests/{rid} (the requester, Bearer <token>): the
 * outcome, with the speaker key once after approval. */
void api_request(struct node *n, struct conn *c, const char *id, size_t len, const char *rid,
                 size_t rid_len);
/* POST /api/spaces/{id}/requests/{rid}/approve or /refuse (host). */
void api_request_decide(struct node *n, struct conn *c, const char *id, size_t len, const char *rid,
                        size_t rid_len, bool approve);

/* GET /api/spaces/{id}/recording: the recording's size, duration, segments,
 * gaps and alarm; GET /api/recordings: every space's that has one. */
void api_recording(struct node *n, struct conn *c, const char *id, size_t len);
void api_recordings(struct node *n, struct conn *c);
/* The recording of space `id` as JSON, or NULL when there is none. */
struct cJSON *api_recording_json(struct node *n, const char *id);

/* Decodes standard base64 (OpenSSL's decoder). Returns the decoded length or
 * -1 when the input is invalid or does not fit `cap`. */
int api_base64_decode(const char *in, size_t len, char *out, size_t cap);

#endif
