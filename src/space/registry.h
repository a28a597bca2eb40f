/* The space registry: the only module that talks to SQLite.
 *
 * Spaces (id, title, optional start time, state, creation time, SHA-256 of the
 * host key, whether joins need a ticket) live in `<data>/tribune.db` and
 * survive restarts. Keys are random 128-bit values shown once as 32 lowercase
 * hex characters; only their SHA-256 is stored, and verification compares
 * hashes in constant time (CRYPTO_memcmp).
 *
 * Thread: the master's loop only. Calls are synchronous SQLite calls on a small
 * local database (WAL mode, synchronous=NORMAL): fast enough for the control
 * plane; never called per listener or per chunk.
 * Errors: 0 or a negative errno; -ENOENT for an unknown id, -EEXIST for a
 * duplicate id, -EIO for a database failure (logged once here).
 */
#ifndef TRIBUNE_SPACE_REGISTRY_H
#define TRIBUNE_SPACE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { SPACE_ID_MAX = 32, SPACE_TITLE_MAX = 200, SPACE_KEY_HEX = 32 };

enum space_state { SPACE_SCHEDULED, SPACE_GREEN, SPACE_LIVE, SPACE_ENDED };

struct space_record {
    char id[SPACE_ID_MAX + 1];
    char title[SPACE_TITLE_MAX + 1];
    int64_t starts_at;  /* unix seconds, 0 when not scheduled */
    int64_t created_at; /* unix seconds */
    enum space_state state;
    bool require_ticket; /* joins need a valid join ticket (guard/ticket.h); default false */
};

struct registry;

/* Opens (creating if needed) the database file at `path`. NULL on failure,
 * with the reason logged. */
struct registry *registry_open(const char *path);
void registry_close(struct registry *reg);

/* Creates a space. `id` may be NULL (a random 10-character id [a-z0-9] is
 * chosen) or a caller-chosen id matching [A-Za-z0-9_-]{1,32} (the demo uses
 * "demo"). Writes the new record to *out and the host key, shown once, as
 * SPACE_KEY_HEX hex chars + NUL to key_out. */
int registry_create(struct registry *reg, const char *id, const char *title, int64_t starts_at,
                    struct space_record *out, char key_out[SPACE_KEY_HEX + 1]);

int registry_get(struct registry *reg, const char *id, struct space_record *out);

/* Calls `fn` for each space, oldest first; stops early if fn returns non-zero. */
int registry_list(struct registry *reg, int (*fn)(const struct space_record *r, void *arg),
                  void *arg);

/* Calls `fn` for at most `max` spaces that are live, green, or scheduled to start between
 * unix seconds `from` and `to` (inclusive): live first, then green, then scheduled soonest
 * first (what an edge relay loads ahead of its listeners, relay/relay.h). Stops early if
 * fn returns non-zero; fn must not call registry_list or registry_list_soon. */
int registry_list_soon(struct registry *reg, int64_t from, int64_t to, int max,
                       int (*fn)(const struct space_record *r, void *arg), void *arg);

int registry_set_state(struct registry *reg, const char *id, enum space_state state);

/* Sets whether joins to space `id` need a join ticket. */
int registry_set_require_ticket(struct registry *reg, const char *id, bool require);

/* True if `key` (any length, any bytes) is the host key of space `id`. Runs in
 * time independent of where the key differs. */
bool registry_check_host_key(struct registry *reg, const char *id, const char *key, size_t len);

/* Replaces the host key of space `id` with a fresh one (used by the demo, whose
 * key is printed at every start). */
int registry_rotate_host_key(struct registry *reg, const char *id, char key_out[SPACE_KEY_HEX + 1]);

/* ---- speakers (issue 6): invited by the host, each with its own key ----
 * A speaker's name matches [A-Za-z0-9_-]{1,32} (it is a URL path segment); "host" is reserved
 * for the host's own publisher: speaker_name_is_valid accepts it (as a URL segment it is
 * valid), but registry_speaker_add and registry_request_add refuse it with -EINVAL. Keys are
 * shown once and stored as SHA-256, as host keys. An id that is not valid is treated as an
 * unknown space (-ENOENT, or false), and so is a name, except when adding (-EINVAL). */
enum { SPEAKER_NAME_MAX = 32 };

struct speaker_record {
    char name[SPEAKER_NAME_MAX + 1];
    bool is_muted;
    int64_t created_at; /* unix seconds */
};

/* Invites speaker `name` into space `id`: writes its key (shown once) to key_out. -EEXIST when
 * the space already has a speaker of that name, -ENOSPC when it has `max` speakers (or more;
 * max <= 0 refuses all), -EINVAL for a bad name or "host", -ENOENT for an unknown space. A bad
 * name is refused before the space is looked up, and a duplicate is reported before a full
 * space; the checks and the insert run in one transaction. A removed speaker added again gets
 * a new key. */
int registry_speaker_add(struct registry *reg, const char *id, const char *name, int max,
                         char key_out[SPACE_KEY_HEX + 1]);
/* Removes the speaker (its key stops working at once). -ENOENT when there is none. */
int registry_speaker_remove(struct registry *reg, const char *id, const char *name);
int registry_speaker_get(struct registry *reg, const char *id, const char *name,
                         struct speaker_record *out);
int registry_speaker_set_muted(struct registry *reg, const char *id, const char *name, bool muted);
/* Calls `fn` for each speaker of space `id`, oldest first; stops early if fn returns non-zero.
 * fn must not call registry_speaker_list. -ENOENT for an unknown space. */
int registry_speaker_list(struct registry *reg, const char *id,
                          int (*fn)(const struct speaker_record *r, void *arg), void *arg);
/* Number of speakers of space `id` (0 for an unknown space), or -EIO. */
int registry_speaker_count(struct registry *reg, const char *id);
/* True if `key` (any length, any bytes) is the key of speaker `name` of space `id`. Constant
 * time in where the key differs; false for an unknown space or name. */
bool registry_check_speaker_key(struct registry *reg, const char *id, const char *name,
                                const char *key, size_t len);

/* ---- requests to speak: filed by any listener, decided by the host ---- */
enum request_state { REQUEST_PENDING, REQUEST_APPROVED, REQUEST_REFUSED };

struct request_record {
    int64_t id; /* unique in the database, > 0 */
    char name[SPEAKER_NAME_MAX + 1];
    enum request_state state;
    int64_t created_at; /* unix seconds */
};

/* Files a request to speak as `name`. Writes its id and a token (shown once; the requester
 * presents it to read the outcome) as SPACE_KEY_HEX hex + NUL. -ENOSPC when the space already
 * has `max_pending` pending requests (count and insert in one transaction), -EINVAL for a bad
 * name or "host" (no speaker could take it), -ENOENT for an unknown space. The name need not
 * be free: the host's approval is what adds the speaker (and may then meet -EEXIST). */
int registry_request_add(struct registry *reg, const char *id, const char *name, int max_pending,
                         int64_t *rid_out, char token_out[SPACE_KEY_HEX + 1]);
/* -ENOENT when space `id` has no request `rid` (a request is only found under its own space). */
int registry_request_get(struct registry *reg, const char *id, int64_t rid,
                         struct request_record *out);
/* Calls `fn` for each request of space `id`: pending first, then decided; oldest first within.
 * fn must not call registry_request_list. -ENOENT for an unknown space. */
int registry_request_list(struct registry *reg, const char *id,
                          int (*fn)(const struct request_record *r, void *arg), void *arg);
/* True if `token` (any length, any bytes) is request rid's token in space `id` (constant time
 * in where it differs, as host keys); false for an unknown space or request. */
bool registry_check_request_token(struct registry *reg, const char *id, int64_t rid,
                                  const char *token, size_t len);
/* Decides a pending request. On approval `speaker_key` (the new speaker's key, 32 hex chars)
 * is kept for the requester to pick up once; refusal passes NULL. -EALREADY when not pending,
 * -ENOENT for an unknown request, -EINVAL when approving without a key of exactly
 * SPACE_KEY_HEX lowercase hex chars (a refusal ignores speaker_key). The key waits in the
 * database in clear until picked up: the only secret stored so. */
int registry_request_decide(struct registry *reg, const char *id, int64_t rid, bool approve,
                            const char *speaker_key);
/* Hands out the speaker key stored by an approval, once, as SPACE_KEY_HEX hex + NUL: later
 * calls get -ENOENT, as do pending, refused and unknown requests. Read and clear are one
 * transaction. The caller checks the request's token first. */
int registry_request_pickup(struct registry *reg, const char *id, int64_t rid,
                            char key_out[SPACE_KEY_HEX + 1]);

/* True if `name` matches [A-Za-z0-9_-]{1,SPEAKER_NAME_MAX}; true for "host" (see above). */
bool speaker_name_is_valid(const char *name, size_t len);

const char *space_state_name(enum space_state s);
/* True if `id` matches [A-Za-z0-9_-]{1,SPACE_ID_MAX}. */
bool space_id_is_valid(const char *id, size_t len);

#endif
