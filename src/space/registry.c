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
    ST_SET_STATE,
    ST_GET_HASH,
    ST_SET_HASH,
    ST_SET_TICKET,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_INSERT] = "INSERT INTO spaces(id, title, starts_at, created_at, state, host_key_hash) "
                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_GET] = "SELECT id, title, starts_at, created_at, state, require_ticket FROM spaces "
               "WHERE id = ?1",
    [ST_LIST] = "SELECT id, title, starts_at, created_at, state, require_ticket FROM spaces "
                "ORDER BY created_at, rowid",
    [ST_SET_STATE] = "UPDATE spaces SET state = ?2 WHERE id = ?1",
    [ST_GET_HASH] = "SELECT host_key_hash FROM spaces WHERE id = ?1",
    [ST_SET_HASH] = "UPDATE spaces SET host_key_hash = ?2 WHERE id = ?1",
    [ST_SET_TICKET] = "UPDATE spaces SET require_ticket = ?2 WHERE id = ?1",
};

/* migrations[i] upgrades schema version i to i + 1. Append only. */
static const char *const migrations[] = {
    "CREATE TABLE spaces(id TEXT PRIMARY KEY, title TEXT NOT NULL, starts_at INTEGER, "
    "created_at INTEGER NOT NULL, state INTEGER NOT NULL, host_key_hash BLOB NOT NULL);",
    /* 1 -> 2: join tickets (issue 5 item 5); every existing space admits without. */
    "ALTER TABLE spaces ADD COLUMN require_ticket INTEGER NOT NULL DEFAULT 0;",
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

bool space_id_is_valid(const char *id, size_t len)
{
    if (!id || len == 0 || len > SPACE_ID_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) return false;
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

bool registry_check_host_key(struct registry *reg, const char *id, const char *key, size_t len)
{
    if (!id_is_valid(id)) return false;
    if (!key && len) return false;
    unsigned char given[SHA256_DIGEST_LENGTH];
    hash_key(key, len, given);
    sqlite3_stmt *st = reg->st[ST_GET_HASH];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    bool ok = false;
    if (rc == SQLITE_ROW) {
        const void *stored = sqlite3_column_blob(st, 0);
        ok = stored && sqlite3_column_bytes(st, 0) == SHA256_DIGEST_LENGTH &&
             CRYPTO_memcmp(stored, given, SHA256_DIGEST_LENGTH) == 0;
    } else if (rc != SQLITE_DONE) {
        db_fail(reg, "check host key");
    }
    stmt_done(st);
    return ok;
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
