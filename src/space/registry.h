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

int registry_set_state(struct registry *reg, const char *id, enum space_state state);

/* Sets whether joins to space `id` need a join ticket. */
int registry_set_require_ticket(struct registry *reg, const char *id, bool require);

/* True if `key` (any length, any bytes) is the host key of space `id`. Runs in
 * time independent of where the key differs. */
bool registry_check_host_key(struct registry *reg, const char *id, const char *key, size_t len);

/* Replaces the host key of space `id` with a fresh one (used by the demo, whose
 * key is printed at every start). */
int registry_rotate_host_key(struct registry *reg, const char *id, char key_out[SPACE_KEY_HEX + 1]);

const char *space_state_name(enum space_state s);
/* True if `id` matches [A-Za-z0-9_-]{1,SPACE_ID_MAX}. */
bool space_id_is_valid(const char *id, size_t len);

#endif
