/* The space registry on SQLite (see registry.h for the contract).
 *
 * One connection, opened by the master, with every statement prepared once at
 * open and kept in `st[]`; each call binds, steps and resets its statement, so
 * no statement stays busy between calls (except inside registry_list, whose
 * callback must therefore not call registry_list again).
 *
 * Schema versions live in PRAGMA user_version: migrations[i] takes the database
 * from version i to i + 1, each in its own transaction together with the new
 * user_version, so a crash leaves the database at a version we know. A
 * database newer than this build is refused rather than guessed at.
 *
 * Keys: 16 random bytes, shown as 32 lowercase hex chars. What a client presents
 * is those hex chars, so the stored hash is SHA-256 over the hex string, and a
 * presented key of any length and content is hashed the same way and compared
 * with CRYPTO_memcmp: the comparison never depends on where the bytes differ.
 * Speaker keys and request tokens (schema 3) are made and checked the same way.
 * The one secret kept in clear is an approved request's pickup_key: the new
 * speaker's key, waiting for the requester to collect it once; pickup sets it
 * to NULL.
 *
 * Calls that read and then write (a speaker added under a cap, a request filed
 * under a cap, a key picked up and cleared) run inside BEGIN IMMEDIATE ...
 * COMMIT, so the check and the write see the same database.
 */
#include "space/registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sqlite3.h>

#include "core/log.h"

enum { KEY_BYTES = SPACE_KEY_HEX / 2, RANDOM_ID_LEN = 10, BUSY_TIMEOUT_MS = 2000 };

enum stmt_id {
    ST_INSERT,
    ST_GET,
    ST_LIST,
    ST_SOON,
    ST_SET_STATE,
    ST_GET_HASH,
    ST_SET_HASH,
    ST_SET_TICKET,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SPACE_EXISTS,
    ST_SPK_INSERT,
    ST_SPK_DELETE,
    ST_SPK_GET,
    ST_SPK_SET_MUTED,
    ST_SPK_LIST,
    ST_SPK_COUNT,
    ST_SPK_HASH,
    ST_REQ_INSERT,
    ST_REQ_PENDING,
    ST_REQ_GET,
    ST_REQ_LIST,
    ST_REQ_HASH,
    ST_REQ_DECIDE,
    ST_REQ_KEY_GET,
    ST_REQ_KEY_CLEAR,
    ST_COUNT
};

/* The SQL below spells REQUEST_PENDING as the literal 0. */
_Static_assert(REQUEST_PENDING == 0, "requests.state 0 must mean pending");
_Static_assert(SPACE_SCHEDULED == 0 && SPACE_GREEN == 1 && SPACE_LIVE == 2,
               "ST_SOON spells the space states as literals");

static const char *const stmt_sql[ST_COUNT] = {
    [ST_INSERT] = "INSERT INTO spaces(id, title, starts_at, created_at, state, host_key_hash) "
                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_GET] = "SELECT id, title, starts_at, created_at, state, require_ticket FROM spaces "
               "WHERE id = ?1",
    [ST_LIST] = "SELECT id, title, starts_at, created_at, state, require_ticket FROM spaces "
                "ORDER BY created_at, rowid",
    /* live or green first, then scheduled to start in [?1, ?2], soonest first (states:
     * enum space_state, checked above) */
    [ST_SOON] =
        "SELECT id, title, starts_at, created_at, state, require_ticket FROM spaces "
        "WHERE state IN (1, 2) OR (state = 0 AND starts_at > 0 AND starts_at BETWEEN ?1 AND ?2) "
        "ORDER BY state <> 2, state <> 1, starts_at, rowid LIMIT ?3",
    [ST_SET_STATE] = "UPDATE spaces SET state = ?2 WHERE id = ?1",
    [ST_GET_HASH] = "SELECT host_key_hash FROM spaces WHERE id = ?1",
    [ST_SET_HASH] = "UPDATE spaces SET host_key_hash = ?2 WHERE id = ?1",
    [ST_SET_TICKET] = "UPDATE spaces SET require_ticket = ?2 WHERE id = ?1",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SPACE_EXISTS] = "SELECT 1 FROM spaces WHERE id = ?1",
    [ST_SPK_INSERT] = "INSERT INTO speakers(space_id, name, key_hash, created_at) "
                      "VALUES(?1, ?2, ?3, ?4)",
    [ST_SPK_DELETE] = "DELETE FROM speakers WHERE space_id = ?1 AND name = ?2",
    [ST_SPK_GET] = "SELECT name, muted, created_at FROM speakers WHERE space_id = ?1 AND name = ?2",
    [ST_SPK_SET_MUTED] = "UPDATE speakers SET muted = ?3 WHERE space_id = ?1 AND name = ?2",
    [ST_SPK_LIST] = "SELECT name, muted, created_at FROM speakers WHERE space_id = ?1 "
                    "ORDER BY created_at, rowid",
    [ST_SPK_COUNT] = "SELECT count(*) FROM speakers WHERE space_id = ?1",
    [ST_SPK_HASH] = "SELECT key_hash FROM speakers WHERE space_id = ?1 AND name = ?2",
    [ST_REQ_INSERT] = "INSERT INTO requests(space_id, name, token_hash, state, created_at) "
                      "VALUES(?1, ?2, ?3, 0, ?4)",
    [ST_REQ_PENDING] = "SELECT count(*) FROM requests WHERE space_id = ?1 AND state = 0",
    [ST_REQ_GET] =
        "SELECT id, name, state, created_at FROM requests WHERE space_id = ?1 AND id = ?2",
    [ST_REQ_LIST] = "SELECT id, name, state, created_at FROM requests WHERE space_id = ?1 "
                    "ORDER BY state <> 0, created_at, id",
    [ST_REQ_HASH] = "SELECT token_hash FROM requests WHERE space_id = ?1 AND id = ?2",
    [ST_REQ_DECIDE] = "UPDATE requests SET state = ?3, pickup_key = ?4 "
                      "WHERE space_id = ?1 AND id = ?2 AND state = 0",
    [ST_REQ_KEY_GET] = "SELECT pickup_key FROM requests WHERE space_id = ?1 AND id = ?2",
    [ST_REQ_KEY_CLEAR] = "UPDATE requests SET pickup_key = NULL WHERE space_id = ?1 AND id = ?2",
};

/* migrations[i] upgrades schema version i to i + 1. Append only. */
static const char *const migrations[] = {
    "CREATE TABLE spaces(id TEXT PRIMARY KEY, title TEXT NOT NULL, starts_at INTEGER, "
    "created_at INTEGER NOT NULL, state INTEGER NOT NULL, host_key_hash BLOB NOT NULL);",
    /* 1 -> 2: join tickets (issue 5 item 5); every existing space admits without. */
    "ALTER TABLE spaces ADD COLUMN require_ticket INTEGER NOT NULL DEFAULT 0;",
    /* 2 -> 3: speakers and requests to speak (issue 6). A request's state is
     * enum request_state; pickup_key is the approved speaker's key in clear
     * until the requester collects it (then NULL). */
    "CREATE TABLE speakers(space_id TEXT NOT NULL, name TEXT NOT NULL, key_hash BLOB NOT NULL, "
    "muted INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, PRIMARY KEY(space_id, name));"
    "CREATE TABLE requests(id INTEGER PRIMARY KEY AUTOINCREMENT, space_id TEXT NOT NULL, "
    "name TEXT NOT NULL, token_hash BLOB NOT NULL, state INTEGER NOT NULL, "
    "created_at INTEGER NOT NULL, pickup_key TEXT);"
    "CREATE INDEX requests_by_space_state ON requests(space_id, state);",
};
enum { SCHEMA_VERSION = sizeof(migrations) / sizeof(migrations[0]) };

struct registry {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
};

/* Logs a database failure once and turns it into -EIO. */
static int db_fail(struct registry *reg, const char *what)
{
    log_error("registry: %s: %s", what, sqlite3_errmsg(reg->db));
    return -EIO;
}

/* Resets a statement for its next use, dropping references to bound buffers. */
static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* ---- opening, schema and statements ---- */

static int exec_sql(struct registry *reg, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(reg->db, sql, NULL, NULL, &err) == SQLITE_OK) return 0;
    log_error("registry: %s: %s", sql, err ? err : "unknown error");
    sqlite3_free(err);
    return -EIO;
}

/* Reads a single-integer pragma; -EIO on failure. */
static int pragma_int(struct registry *reg, const char *sql, int *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(reg->db, sql, -1, &st, NULL) != SQLITE_OK) return db_fail(reg, sql);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(reg, sql);
}

/* WAL lets readers (a future `tribune top`, sqlite3 by hand) run beside the
 * master. Some filesystems refuse it; that is worth a warning, not a failure. */
static int set_wal(struct registry *reg)
{
    sqlite3_stmt *st = NULL;
    const char *sql = "PRAGMA journal_mode=WAL";
    if (sqlite3_prepare_v2(reg->db, sql, -1, &st, NULL) != SQLITE_OK) return db_fail(reg, sql);
    int rc = sqlite3_step(st);
    const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (mode && strcmp(mode, "wal") != 0) log_warn("registry: journal mode is %s, not wal", mode);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(reg, sql);
}

static int apply_migration(struct registry *reg, int from)
{
    char bump[64];
    snprintf(bump, sizeof(bump), "PRAGMA user_version = %d;", from + 1);
    if (exec_sql(reg, "BEGIN IMMEDIATE;") < 0) return -EIO;
    if (exec_sql(reg, migrations[from]) < 0 || exec_sql(reg, bump) < 0) {
        exec_sql(reg, "ROLLBACK;");
        return -EIO;
    }
    if (exec_sql(reg, "COMMIT;") < 0) return -EIO;
    log_info("registry: schema migrated to version %d", from + 1);
    return 0;
}

static int migrate(struct registry *reg)
{
    int version = 0;
    if (pragma_int(reg, "PRAGMA user_version", &version) < 0) return -EIO;
    if (version < 0 || version > SCHEMA_VERSION) {
        log_error("registry: schema version %d is not one this build knows (up to %d)", version,
                  SCHEMA_VERSION);
        return -EIO;
    }
    for (int v = version; v < SCHEMA_VERSION; v++) {
        if (apply_migration(reg, v) < 0) return -EIO;
    }
    return 0;
}

static int prepare_all(struct registry *reg)
{
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(reg->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &reg->st[i],
                               NULL) != SQLITE_OK)
            return db_fail(reg, stmt_sql[i]);
    }
    return 0;
}

static int configure(struct registry *reg)
{
    if (sqlite3_extended_result_codes(reg->db, 1) != SQLITE_OK ||
        sqlite3_busy_timeout(reg->db, BUSY_TIMEOUT_MS) != SQLITE_OK)
        return db_fail(reg, "configure");
    if (set_wal(reg) < 0) return -EIO;
    if (exec_sql(reg, "PRAGMA synchronous=NORMAL;") < 0) return -EIO;
    if (migrate(reg) < 0) return -EIO;
    return prepare_all(reg);
}

struct registry *registry_open(const char *path)
{
    struct registry *reg = calloc(1, sizeof(*reg));
    if (!reg) {
        log_error("registry: out of memory");
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &reg->db, flags, NULL) != SQLITE_OK) {
        log_error("registry: cannot open %s: %s", path,
                  reg->db ? sqlite3_errmsg(reg->db) : "out of memory");
        registry_close(reg);
        return NULL;
    }
    if (configure(reg) < 0) {
        log_error("registry: cannot use %s", path);
        registry_close(reg);
        return NULL;
    }
    return reg;
}

void registry_close(struct registry *reg)
{
    if (!reg) return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(reg->st[i]);
    if (sqlite3_close(reg->db) != SQLITE_OK)
        log_error("registry: close: %s", sqlite3_errmsg(reg->db));
    free(reg);
}

/* ---- ids and keys ---- */

/* True if s[0..len) matches [A-Za-z0-9_-]{1,max}: safe as a URL path segment. */
static bool segment_is_valid(const char *s, size_t len, size_t max)
{
    if (!s || len == 0 || len > max) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

bool space_id_is_valid(const char *id, size_t len)
{
    return segment_is_valid(id, len, SPACE_ID_MAX);
}

bool speaker_name_is_valid(const char *name, size_t len)
{
    return segment_is_valid(name, len, SPEAKER_NAME_MAX);
}

/* The same test for a NUL-terminated name, reading at most SPEAKER_NAME_MAX + 1 bytes. */
static bool name_is_valid(const char *name)
{
    return name && speaker_name_is_valid(name, strnlen(name, SPEAKER_NAME_MAX + 1));
}

/* A name a speaker may take: valid, and not "host", which names the host's own
 * publisher in URLs (.../publish/host) and so can belong to no speaker. */
static bool name_is_available(const char *name)
{
    return name_is_valid(name) && strcmp(name, "host") != 0;
}

/* True if `key` is exactly SPACE_KEY_HEX lowercase hex characters and a NUL. */
static bool key_is_well_formed(const char *key)
{
    if (!key || strnlen(key, SPACE_KEY_HEX + 1) != SPACE_KEY_HEX) return false;
    for (size_t i = 0; i < SPACE_KEY_HEX; i++) {
        if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f'))) return false;
    }
    return true;
}

/* The same test for a NUL-terminated id, reading at most SPACE_ID_MAX + 1 bytes. */
static bool id_is_valid(const char *id)
{
    return id && space_id_is_valid(id, strnlen(id, SPACE_ID_MAX + 1));
}

static int random_bytes(unsigned char *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) == 1) return 0;
    log_error("registry: RAND_bytes failed");
    return -EIO;
}

/* A random [a-z0-9]{10} id. Bytes >= 252 are dropped so that every character is
 * equally likely (252 = 7 * 36). */
static int random_id(char out[RANDOM_ID_LEN + 1])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char buf[32];
    size_t n = 0;
    while (n < RANDOM_ID_LEN) {
        if (random_bytes(buf, sizeof(buf)) < 0) return -EIO;
        for (size_t i = 0; i < sizeof(buf) && n < RANDOM_ID_LEN; i++) {
            if (buf[i] < 252) out[n++] = alphabet[buf[i] % 36];
        }
    }
    out[n] = '\0';
    return 0;
}

static void hash_key(const char *key, size_t len, unsigned char out[SHA256_DIGEST_LENGTH])
{
    static const unsigned char empty = 0;
    SHA256(key ? (const unsigned char *)key : &empty, len, out);
}

/* A fresh key as hex (shown once) and its hash (stored). */
static int new_key(char hex[SPACE_KEY_HEX + 1], unsigned char hash[SHA256_DIGEST_LENGTH])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char raw[KEY_BYTES];
    if (random_bytes(raw, sizeof(raw)) < 0) return -EIO;
    for (size_t i = 0; i < KEY_BYTES; i++) {
        hex[2 * i] = digits[raw[i] >> 4];
        hex[2 * i + 1] = digits[raw[i] & 15];
    }
    hex[SPACE_KEY_HEX] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    hash_key(hex, SPACE_KEY_HEX, hash);
    return 0;
}

/* ---- rows ---- */

/* Copies a text column into a fixed buffer; a value longer than the buffer
 * (only possible if the file was edited by hand) is cut. */
static void copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    size_t len = s ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (len >= cap) len = cap - 1;
    if (len) memcpy(dst, s, len);
    dst[len] = '\0';
}

/* Fills *out from a row of (id, title, starts_at, created_at, state,
 * require_ticket). */
static int read_record(sqlite3_stmt *st, struct space_record *out)
{
    int state = sqlite3_column_int(st, 4);
    if (state < SPACE_SCHEDULED || state > SPACE_ENDED) {
        log_error("registry: space has unknown state %d", state);
        return -EIO;
    }
    memset(out, 0, sizeof(*out));
    copy_text(out->id, sizeof(out->id), st, 0);
    copy_text(out->title, sizeof(out->title), st, 1);
    out->starts_at = sqlite3_column_int64(st, 2);
    out->created_at = sqlite3_column_int64(st, 3);
    out->state = (enum space_state)state;
    out->require_ticket = sqlite3_column_int(st, 5) != 0;
    return 0;
}

static bool title_is_valid(const char *title)
{
    if (!title) return false;
    size_t len = strnlen(title, SPACE_TITLE_MAX + 1);
    return len > 0 && len <= SPACE_TITLE_MAX;
}

/* ---- operations ---- */

/* Inserts one row; -EEXIST if the id is taken. */
static int insert_space(struct registry *reg, const struct space_record *r,
                        const unsigned char hash[SHA256_DIGEST_LENGTH])
{
    sqlite3_stmt *st = reg->st[ST_INSERT];
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->title, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, r->starts_at);
    sqlite3_bind_int64(st, 4, r->created_at);
    sqlite3_bind_int(st, 5, (int)r->state);
    sqlite3_bind_blob(st, 6, hash, SHA256_DIGEST_LENGTH, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        err = -EEXIST;
    else if (rc != SQLITE_DONE)
        err = db_fail(reg, "insert");
    stmt_done(st);
    return err;
}

/* Picks an id (the caller's, or a random one, retried on the rare collision)
 * and inserts the row. */
static int insert_with_id(struct registry *reg, const char *id, struct space_record *r,
                          const unsigned char hash[SHA256_DIGEST_LENGTH])
{
    if (id) {
        memcpy(r->id, id, strlen(id) + 1);
        return insert_space(reg, r, hash);
    }
    int err = -EEXIST;
    for (int tries = 0; tries < 8 && err == -EEXIST; tries++) {
        if (random_id(r->id) < 0) return -EIO;
        err = insert_space(reg, r, hash);
    }
    return err;
}

int registry_create(struct registry *reg, const char *id, const char *title, int64_t starts_at,
                    struct space_record *out, char key_out[SPACE_KEY_HEX + 1])
{
    if (id && !id_is_valid(id)) return -EINVAL;
    if (!title_is_valid(title)) return -EINVAL;
    struct space_record r = {
        .starts_at = starts_at, .created_at = (int64_t)time(NULL), .state = SPACE_SCHEDULED};
    memcpy(r.title, title, strlen(title) + 1);
    char key[SPACE_KEY_HEX + 1];
    unsigned char hash[SHA256_DIGEST_LENGTH];
    int err = new_key(key, hash);
    if (err == 0) err = insert_with_id(reg, id, &r, hash);
    if (err == 0) {
        *out = r;
        memcpy(key_out, key, sizeof(key));
    }
    OPENSSL_cleanse(key, sizeof(key));
    return err;
}

int registry_get(struct registry *reg, const char *id, struct space_record *out)
{
    if (!id_is_valid(id)) return -ENOENT;
    sqlite3_stmt *st = reg->st[ST_GET];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int err;
    if (rc == SQLITE_ROW)
        err = read_record(st, out);
    else if (rc == SQLITE_DONE)
        err = -ENOENT;
    else
        err = db_fail(reg, "get");
    stmt_done(st);
    return err;
}

int registry_list(struct registry *reg, int (*fn)(const struct space_record *r, void *arg),
                  void *arg)
{
    sqlite3_stmt *st = reg->st[ST_LIST];
    int rc, err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct space_record r;
        if ((err = read_record(st, &r)) < 0 || fn(&r, arg) != 0) break;
    }
    if (err == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE) err = db_fail(reg, "list");
    stmt_done(st);
    return err;
}

int registry_list_soon(struct registry *reg, int64_t from, int64_t to, int max,
                       int (*fn)(const struct space_record *r, void *arg), void *arg)
{
    sqlite3_stmt *st = reg->st[ST_SOON];
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, to);
    sqlite3_bind_int(st, 3, max);
    int rc, err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct space_record r;
        if ((err = read_record(st, &r)) < 0 || fn(&r, arg) != 0) break;
    }
    if (err == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE) err = db_fail(reg, "list soon");
    stmt_done(st);
    return err;
}

/* Runs an UPDATE whose ?1 is the id and ?2 already bound; -ENOENT if no row. */
static int update_by_id(struct registry *reg, sqlite3_stmt *st, const char *id, const char *what)
{
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int err = 0;
    if (rc != SQLITE_DONE)
        err = db_fail(reg, what);
    else if (sqlite3_changes(reg->db) == 0)
        err = -ENOENT;
    stmt_done(st);
    return err;
}

int registry_set_state(struct registry *reg, const char *id, enum space_state state)
{
    if ((int)state < SPACE_SCHEDULED || state > SPACE_ENDED) return -EINVAL;
    if (!id_is_valid(id)) return -ENOENT;
    sqlite3_stmt *st = reg->st[ST_SET_STATE];
    sqlite3_bind_int(st, 2, (int)state);
    return update_by_id(reg, st, id, "set state");
}

int registry_set_require_ticket(struct registry *reg, const char *id, bool require)
{
    if (!id_is_valid(id)) return -ENOENT;
    sqlite3_stmt *st = reg->st[ST_SET_TICKET];
    sqlite3_bind_int(st, 2, require ? 1 : 0);
    return update_by_id(reg, st, id, "set require_ticket");
}

/* Steps `st` (its parameters bound by the caller) and compares the stored hash
 * in its first column with `given` in constant time; false when there is no
 * row. Resets `st`. */
static bool stored_hash_matches(struct registry *reg, sqlite3_stmt *st,
                                const unsigned char given[SHA256_DIGEST_LENGTH], const char *what)
{
    int rc = sqlite3_step(st);
    bool ok = false;
    if (rc == SQLITE_ROW) {
        const void *stored = sqlite3_column_blob(st, 0);
        ok = stored && sqlite3_column_bytes(st, 0) == SHA256_DIGEST_LENGTH &&
             CRYPTO_memcmp(stored, given, SHA256_DIGEST_LENGTH) == 0;
    } else if (rc != SQLITE_DONE) {
        db_fail(reg, what);
    }
    stmt_done(st);
    return ok;
}

bool registry_check_host_key(struct registry *reg, const char *id, const char *key, size_t len)
{
    if (!id_is_valid(id)) return false;
    if (!key && len) return false;
    unsigned char given[SHA256_DIGEST_LENGTH];
    hash_key(key, len, given);
    sqlite3_stmt *st = reg->st[ST_GET_HASH];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    return stored_hash_matches(reg, st, given, "check host key");
}

int registry_rotate_host_key(struct registry *reg, const char *id, char key_out[SPACE_KEY_HEX + 1])
{
    if (!id_is_valid(id)) return -ENOENT;
    char key[SPACE_KEY_HEX + 1];
    unsigned char hash[SHA256_DIGEST_LENGTH];
    int err = new_key(key, hash);
    if (err == 0) {
        sqlite3_stmt *st = reg->st[ST_SET_HASH];
        sqlite3_bind_blob(st, 2, hash, SHA256_DIGEST_LENGTH, SQLITE_STATIC);
        err = update_by_id(reg, st, id, "rotate host key");
    }
    if (err == 0) memcpy(key_out, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    return err;
}

/* ---- transactions and small queries ---- */

/* Steps a statement that returns no row (BEGIN, COMMIT, ROLLBACK). */
static int step_done(struct registry *reg, enum stmt_id id, const char *what)
{
    sqlite3_stmt *st = reg->st[id];
    int err = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(reg, what);
    stmt_done(st);
    return err;
}

/* Runs fn(reg, arg) between BEGIN IMMEDIATE and COMMIT, rolling back when fn
 * fails or the commit does. Returns fn's error, or -EIO. */
static int in_transaction(struct registry *reg, int (*fn)(struct registry *reg, void *arg),
                          void *arg)
{
    if (step_done(reg, ST_BEGIN, "begin") < 0) return -EIO;
    int err = fn(reg, arg);
    if (err == 0) err = step_done(reg, ST_COMMIT, "commit");
    if (err < 0 && !sqlite3_get_autocommit(reg->db)) step_done(reg, ST_ROLLBACK, "rollback");
    return err;
}

/* Steps a bound statement: 0 when it returns a row, -ENOENT when none, -EIO on
 * failure. Resets it. */
static int step_exists(struct registry *reg, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int err = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : db_fail(reg, what);
    stmt_done(st);
    return err;
}

/* 0 if space `id` exists (the caller has checked id_is_valid), else -ENOENT or -EIO. */
static int space_exists(struct registry *reg, const char *id)
{
    sqlite3_stmt *st = reg->st[ST_SPACE_EXISTS];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    return step_exists(reg, st, "space exists");
}

/* Steps a bound `SELECT count(*)`: the count, or -EIO. Resets it. */
static int step_count(struct registry *reg, sqlite3_stmt *st, const char *what)
{
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : db_fail(reg, what);
    stmt_done(st);
    return n;
}

/* Steps a bound UPDATE or DELETE: 0, -ENOENT when it changed no row, or -EIO. */
static int step_change(struct registry *reg, sqlite3_stmt *st, const char *what)
{
    int err = 0;
    if (sqlite3_step(st) != SQLITE_DONE)
        err = db_fail(reg, what);
    else if (sqlite3_changes(reg->db) == 0)
        err = -ENOENT;
    stmt_done(st);
    return err;
}

/* Binds (space id, speaker name) as ?1 and ?2. */
static sqlite3_stmt *bind_speaker(struct registry *reg, enum stmt_id id, const char *space,
                                  const char *name)
{
    sqlite3_stmt *st = reg->st[id];
    sqlite3_bind_text(st, 1, space, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    return st;
}

/* Binds (space id, request id) as ?1 and ?2. */
static sqlite3_stmt *bind_request(struct registry *reg, enum stmt_id id, const char *space,
                                  int64_t rid)
{
    sqlite3_stmt *st = reg->st[id];
    sqlite3_bind_text(st, 1, space, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, rid);
    return st;
}

/* ---- speakers ---- */

/* Fills *out from a row of (name, muted, created_at). */
static void read_speaker(sqlite3_stmt *st, struct speaker_record *out)
{
    memset(out, 0, sizeof(*out));
    copy_text(out->name, sizeof(out->name), st, 0);
    out->is_muted = sqlite3_column_int(st, 1) != 0;
    out->created_at = sqlite3_column_int64(st, 2);
}

struct speaker_add {
    const char *id, *name;
    int max;
    const unsigned char *hash;
};

/* The body of registry_speaker_add's transaction: existence, duplicate, cap, insert. */
static int speaker_add_tx(struct registry *reg, void *arg)
{
    const struct speaker_add *a = arg;
    int err = space_exists(reg, a->id);
    if (err < 0) return err;
    err = step_exists(reg, bind_speaker(reg, ST_SPK_HASH, a->id, a->name), "speaker exists");
    if (err != -ENOENT) return err == 0 ? -EEXIST : err;
    sqlite3_stmt *st = reg->st[ST_SPK_COUNT];
    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    int n = step_count(reg, st, "count speakers");
    if (n < 0) return n;
    if (n >= a->max) return -ENOSPC;
    st = bind_speaker(reg, ST_SPK_INSERT, a->id, a->name);
    sqlite3_bind_blob(st, 3, a->hash, SHA256_DIGEST_LENGTH, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)time(NULL));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        err = 0;
    else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) /* not expected: checked above, same transaction */
        err = -EEXIST;
    else
        err = db_fail(reg, "insert speaker");
    stmt_done(st);
    return err;
}

int registry_speaker_add(struct registry *reg, const char *id, const char *name, int max,
                         char key_out[SPACE_KEY_HEX + 1])
{
    if (!id_is_valid(id)) return -ENOENT;
    if (!name_is_available(name)) return -EINVAL;
    char key[SPACE_KEY_HEX + 1];
    unsigned char hash[SHA256_DIGEST_LENGTH];
    int err = new_key(key, hash);
    struct speaker_add a = {.id = id, .name = name, .max = max, .hash = hash};
    if (err == 0) err = in_transaction(reg, speaker_add_tx, &a);
    if (err == 0) memcpy(key_out, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    return err;
}

int registry_speaker_remove(struct registry *reg, const char *id, const char *name)
{
    if (!id_is_valid(id) || !name_is_valid(name)) return -ENOENT;
    return step_change(reg, bind_speaker(reg, ST_SPK_DELETE, id, name), "remove speaker");
}

int registry_speaker_get(struct registry *reg, const char *id, const char *name,
                         struct speaker_record *out)
{
    if (!id_is_valid(id) || !name_is_valid(name)) return -ENOENT;
    sqlite3_stmt *st = bind_speaker(reg, ST_SPK_GET, id, name);
    int rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_ROW)
        read_speaker(st, out);
    else
        err = rc == SQLITE_DONE ? -ENOENT : db_fail(reg, "get speaker");
    stmt_done(st);
    return err;
}

int registry_speaker_set_muted(struct registry *reg, const char *id, const char *name, bool muted)
{
    if (!id_is_valid(id) || !name_is_valid(name)) return -ENOENT;
    sqlite3_stmt *st = bind_speaker(reg, ST_SPK_SET_MUTED, id, name);
    sqlite3_bind_int(st, 3, muted ? 1 : 0);
    return step_change(reg, st, "set muted");
}

int registry_speaker_list(struct registry *reg, const char *id,
                          int (*fn)(const struct speaker_record *r, void *arg), void *arg)
{
    if (!id_is_valid(id)) return -ENOENT;
    int err = space_exists(reg, id);
    if (err < 0) return err;
    sqlite3_stmt *st = reg->st[ST_SPK_LIST];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct speaker_record r;
        read_speaker(st, &r);
        if (fn(&r, arg) != 0) break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) err = db_fail(reg, "list speakers");
    stmt_done(st);
    return err;
}

int registry_speaker_count(struct registry *reg, const char *id)
{
    if (!id_is_valid(id)) return 0;
    sqlite3_stmt *st = reg->st[ST_SPK_COUNT];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    return step_count(reg, st, "count speakers");
}

bool registry_check_speaker_key(struct registry *reg, const char *id, const char *name,
                                const char *key, size_t len)
{
    if (!id_is_valid(id) || !name_is_valid(name)) return false;
    if (!key && len) return false;
    unsigned char given[SHA256_DIGEST_LENGTH];
    hash_key(key, len, given);
    sqlite3_stmt *st = bind_speaker(reg, ST_SPK_HASH, id, name);
    return stored_hash_matches(reg, st, given, "check speaker key");
}

/* ---- requests to speak ---- */

/* Fills *out from a row of (id, name, state, created_at). */
static int read_request(sqlite3_stmt *st, struct request_record *out)
{
    int state = sqlite3_column_int(st, 2);
    if (state < REQUEST_PENDING || state > REQUEST_REFUSED) {
        log_error("registry: request has unknown state %d", state);
        return -EIO;
    }
    memset(out, 0, sizeof(*out));
    out->id = sqlite3_column_int64(st, 0);
    copy_text(out->name, sizeof(out->name), st, 1);
    out->state = (enum request_state)state;
    out->created_at = sqlite3_column_int64(st, 3);
    return 0;
}

struct request_add {
    const char *id, *name;
    int max_pending;
    const unsigned char *hash;
    int64_t rid;
};

/* The body of registry_request_add's transaction: existence, cap, insert. */
static int request_add_tx(struct registry *reg, void *arg)
{
    struct request_add *a = arg;
    int err = space_exists(reg, a->id);
    if (err < 0) return err;
    sqlite3_stmt *st = reg->st[ST_REQ_PENDING];
    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    int n = step_count(reg, st, "count pending requests");
    if (n < 0) return n;
    if (n >= a->max_pending) return -ENOSPC;
    st = bind_speaker(reg, ST_REQ_INSERT, a->id, a->name);
    sqlite3_bind_blob(st, 3, a->hash, SHA256_DIGEST_LENGTH, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)time(NULL));
    err = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(reg, "insert request");
    if (err == 0) a->rid = sqlite3_last_insert_rowid(reg->db);
    stmt_done(st);
    return err;
}

int registry_request_add(struct registry *reg, const char *id, const char *name, int max_pending,
                         int64_t *rid_out, char token_out[SPACE_KEY_HEX + 1])
{
    if (!id_is_valid(id)) return -ENOENT;
    if (!name_is_available(name)) return -EINVAL;
    char token[SPACE_KEY_HEX + 1];
    unsigned char hash[SHA256_DIGEST_LENGTH];
    int err = new_key(token, hash);
    struct request_add a = {.id = id, .name = name, .max_pending = max_pending, .hash = hash};
    if (err == 0) err = in_transaction(reg, request_add_tx, &a);
    if (err == 0) {
        *rid_out = a.rid;
        memcpy(token_out, token, sizeof(token));
    }
    OPENSSL_cleanse(token, sizeof(token));
    return err;
}

int registry_request_get(struct registry *reg, const char *id, int64_t rid,
                         struct request_record *out)
{
    if (!id_is_valid(id) || rid <= 0) return -ENOENT;
    sqlite3_stmt *st = bind_request(reg, ST_REQ_GET, id, rid);
    int rc = sqlite3_step(st);
    int err;
    if (rc == SQLITE_ROW)
        err = read_request(st, out);
    else
        err = rc == SQLITE_DONE ? -ENOENT : db_fail(reg, "get request");
    stmt_done(st);
    return err;
}

int registry_request_list(struct registry *reg, const char *id,
                          int (*fn)(const struct request_record *r, void *arg), void *arg)
{
    if (!id_is_valid(id)) return -ENOENT;
    int err = space_exists(reg, id);
    if (err < 0) return err;
    sqlite3_stmt *st = reg->st[ST_REQ_LIST];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct request_record r;
        if ((err = read_request(st, &r)) < 0 || fn(&r, arg) != 0) break;
    }
    if (err == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE) err = db_fail(reg, "list requests");
    stmt_done(st);
    return err;
}

bool registry_check_request_token(struct registry *reg, const char *id, int64_t rid,
                                  const char *token, size_t len)
{
    if (!id_is_valid(id) || rid <= 0) return false;
    if (!token && len) return false;
    unsigned char given[SHA256_DIGEST_LENGTH];
    hash_key(token, len, given);
    sqlite3_stmt *st = bind_request(reg, ST_REQ_HASH, id, rid);
    return stored_hash_matches(reg, st, given, "check request token");
}

int registry_request_decide(struct registry *reg, const char *id, int64_t rid, bool approve,
                            const char *speaker_key)
{
    if (!id_is_valid(id) || rid <= 0) return -ENOENT;
    if (approve && !key_is_well_formed(speaker_key)) return -EINVAL;
    sqlite3_stmt *st = bind_request(reg, ST_REQ_DECIDE, id, rid);
    sqlite3_bind_int(st, 3, approve ? REQUEST_APPROVED : REQUEST_REFUSED);
    if (approve)
        sqlite3_bind_text(st, 4, speaker_key, SPACE_KEY_HEX, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    int err = step_change(reg, st, "decide request");
    if (err != -ENOENT) return err;
    /* Nothing changed: either no such request, or it was no longer pending. */
    err = step_exists(reg, bind_request(reg, ST_REQ_GET, id, rid), "get request");
    return err == 0 ? -EALREADY : err;
}

struct request_pickup {
    const char *id;
    int64_t rid;
    char key[SPACE_KEY_HEX + 1];
};

/* The body of registry_request_pickup's transaction: read the key, then clear it. */
static int request_pickup_tx(struct registry *reg, void *arg)
{
    struct request_pickup *p = arg;
    sqlite3_stmt *st = bind_request(reg, ST_REQ_KEY_GET, p->id, p->rid);
    int rc = sqlite3_step(st);
    int err = -ENOENT;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        err = sqlite3_column_bytes(st, 0) == SPACE_KEY_HEX ? 0 : -EIO;
        if (err == 0) copy_text(p->key, sizeof(p->key), st, 0);
        if (err < 0)
            log_error("registry: request %lld has a malformed pickup key", (long long)p->rid);
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        err = db_fail(reg, "get pickup key");
    }
    stmt_done(st);
    if (err < 0) return err;
    return step_change(reg, bind_request(reg, ST_REQ_KEY_CLEAR, p->id, p->rid), "clear pickup key");
}

int registry_request_pickup(struct registry *reg, const char *id, int64_t rid,
                            char key_out[SPACE_KEY_HEX + 1])
{
    if (!id_is_valid(id) || rid <= 0) return -ENOENT;
    struct request_pickup p = {.id = id, .rid = rid};
    int err = in_transaction(reg, request_pickup_tx, &p);
    if (err == 0) memcpy(key_out, p.key, sizeof(p.key));
    OPENSSL_cleanse(p.key, sizeof(p.key));
    return err;
}

const char *space_state_name(enum space_state s)
{
    switch (s) {
    case SPACE_SCHEDULED:
        return "scheduled";
    case SPACE_GREEN:
        return "green";
    case SPACE_LIVE:
        return "live";
    case SPACE_ENDED:
        return "ended";
    }
    return "unknown";
}
