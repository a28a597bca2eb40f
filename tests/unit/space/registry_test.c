/* Unit tests for space/registry.c. Each test runs in its own process (Check's
 * default) with its own temporary directory holding the database. */
#include "space/registry.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <sqlite3.h>

#include "../harness.h"
#include "core/log.h"

static char dir[64];
static char db_path[128];
static struct registry *reg;

static void setup(void)
{
    log_threshold = LOG_WARN;
    snprintf(dir, sizeof(dir), "/tmp/registry_test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db_path, sizeof(db_path), "%s/tribune.db", dir);
    reg = registry_open(db_path);
    ck_assert_ptr_nonnull(reg);
}

static void teardown(void)
{
    registry_close(reg);
    reg = NULL;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void reopen(void)
{
    registry_close(reg);
    reg = registry_open(db_path);
    ck_assert_ptr_nonnull(reg);
}

/* Creates a space with a chosen id and returns its key in `key`. */
static void create(const char *id, const char *title, char key[SPACE_KEY_HEX + 1])
{
    struct space_record r;
    ck_assert_int_eq(registry_create(reg, id, title, 0, &r, key), 0);
}

static bool is_lower_alnum(const char *s)
{
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9'))) return false;
    }
    return true;
}

static bool is_lower_hex(const char *s)
{
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'f') || (*s >= '0' && *s <= '9'))) return false;
    }
    return true;
}

START_TEST(create_random_id)
{
    struct space_record r, got;
    char key[SPACE_KEY_HEX + 1];
    ck_assert_int_eq(registry_create(reg, NULL, "Morning show", 1700000000, &r, key), 0);
    ck_assert_uint_eq(strlen(r.id), 10);
    ck_assert(is_lower_alnum(r.id));
    ck_assert_uint_eq(strlen(key), SPACE_KEY_HEX);
    ck_assert(is_lower_hex(key));
    ck_assert_str_eq(r.title, "Morning show");
    ck_assert_int_eq(r.starts_at, 1700000000);
    ck_assert_int_gt(r.created_at, 0);
    ck_assert_int_eq(r.state, SPACE_SCHEDULED);

    ck_assert_int_eq(registry_get(reg, r.id, &got), 0);
    ck_assert_str_eq(got.id, r.id);
    ck_assert_str_eq(got.title, r.title);
    ck_assert_int_eq(got.starts_at, r.starts_at);
    ck_assert_int_eq(got.created_at, r.created_at);
    ck_assert_int_eq(got.state, r.state);

    struct space_record r2;
    char key2[SPACE_KEY_HEX + 1];
    ck_assert_int_eq(registry_create(reg, NULL, "Another", 0, &r2, key2), 0);
    ck_assert_str_ne(r.id, r2.id);
    ck_assert_str_ne(key, key2);
}
END_TEST

START_TEST(create_chosen_id)
{
    struct space_record r, got;
    char key[SPACE_KEY_HEX + 1];
    ck_assert_int_eq(registry_create(reg, "demo", "Demo", 0, &r, key), 0);
    ck_assert_str_eq(r.id, "demo");
    ck_assert_int_eq(registry_get(reg, "demo", &got), 0);
    ck_assert_str_eq(got.title, "Demo");
    ck_assert_int_eq(got.starts_at, 0);

    char max_id[SPACE_ID_MAX + 1];
    memset(max_id, 'a', SPACE_ID_MAX);
    max_id[SPACE_ID_MAX] = '\0';
    ck_assert_int_eq(registry_create(reg, max_id, "Long id", 0, &r, key), 0);
    ck_assert_int_eq(registry_create(reg, "A-z_09", "Mixed", 0, &r, key), 0);
    ck_assert_int_eq(registry_get(reg, "A-z_09", &got), 0);
}
END_TEST

START_TEST(create_duplicate_id)
{
    char key[SPACE_KEY_HEX + 1], key2[SPACE_KEY_HEX + 1];
    struct space_record r;
    create("demo", "First", key);
    ck_assert_int_eq(registry_create(reg, "demo", "Second", 0, &r, key2), -EEXIST);
    ck_assert_int_eq(registry_get(reg, "demo", &r), 0);
    ck_assert_str_eq(r.title, "First");
    ck_assert(registry_check_host_key(reg, "demo", key, strlen(key)));
}
END_TEST

START_TEST(create_invalid_id)
{
    static const char *const bad[] = {
        "", "a b", "a/b", "a.b", "caf\xc3\xa9", "../x", "x\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    };
    struct space_record r;
    char key[SPACE_KEY_HEX + 1];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(registry_create(reg, bad[i], "T", 0, &r, key), -EINVAL);
    ck_assert(!space_id_is_valid("ab", 0));
    ck_assert(!space_id_is_valid("a\0b", 3));
    ck_assert(space_id_is_valid("abc", 2));
    ck_assert(space_id_is_valid("demo", 4));
    ck_assert(!space_id_is_valid(NULL, 0));
}
END_TEST

START_TEST(create_invalid_title)
{
    struct space_record r;
    char key[SPACE_KEY_HEX + 1];
    char title[SPACE_TITLE_MAX + 2];
    ck_assert_int_eq(registry_create(reg, "a", "", 0, &r, key), -EINVAL);
    ck_assert_int_eq(registry_create(reg, "a", NULL, 0, &r, key), -EINVAL);
    memset(title, 't', SPACE_TITLE_MAX + 1);
    title[SPACE_TITLE_MAX + 1] = '\0';
    ck_assert_int_eq(registry_create(reg, "a", title, 0, &r, key), -EINVAL);
    title[SPACE_TITLE_MAX] = '\0';
    ck_assert_int_eq(registry_create(reg, "a", title, 0, &r, key), 0);
    ck_assert_int_eq(registry_get(reg, "a", &r), 0);
    ck_assert_str_eq(r.title, title);
}
END_TEST

START_TEST(get_unknown)
{
    struct space_record r;
    ck_assert_int_eq(registry_get(reg, "nope", &r), -ENOENT);
    ck_assert_int_eq(registry_get(reg, "bad id", &r), -ENOENT);
    ck_assert_int_eq(registry_set_state(reg, "nope", SPACE_LIVE), -ENOENT);
    char key[SPACE_KEY_HEX + 1];
    ck_assert_int_eq(registry_rotate_host_key(reg, "nope", key), -ENOENT);
    ck_assert(!registry_check_host_key(reg, "nope", "x", 1));
}
END_TEST

struct collected {
    char ids[8][SPACE_ID_MAX + 1];
    int n;
    int stop_after;
};

static int collect(const struct space_record *r, void *arg)
{
    struct collected *c = arg;
    snprintf(c->ids[c->n], sizeof(c->ids[c->n]), "%s", r->id);
    c->n++;
    return c->n == c->stop_after;
}

START_TEST(list_order)
{
    static const char *const ids[] = {"zeta", "alpha", "mid", "beta"};
    char key[SPACE_KEY_HEX + 1];
    for (int i = 0; i < 4; i++)
        create(ids[i], "T", key);
    reopen();
    struct collected c = {.stop_after = -1};
    ck_assert_int_eq(registry_list(reg, collect, &c), 0);
    ck_assert_int_eq(c.n, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(c.ids[i], ids[i]);

    struct collected early = {.stop_after = 2};
    ck_assert_int_eq(registry_list(reg, collect, &early), 0);
    ck_assert_int_eq(early.n, 2);
    ck_assert_str_eq(early.ids[1], "alpha");
    /* The statement was reset: a second full listing starts again. */
    struct collected again = {.stop_after = -1};
    ck_assert_int_eq(registry_list(reg, collect, &again), 0);
    ck_assert_int_eq(again.n, 4);
}
END_TEST

/* What an edge loads ahead (registry_list_soon): live, then green, then scheduled in the
 * window soonest first; not ended, not scheduled outside it, not without a start time. */
START_TEST(list_soon)
{
    char key[SPACE_KEY_HEX + 1];
    struct space_record r;
    static const struct {
        const char *id;
        int64_t starts_at;
        enum space_state st;
    } rows[] = {{"later", 1300, SPACE_SCHEDULED}, {"nostart", 0, SPACE_SCHEDULED},
                {"soon2", 1100, SPACE_SCHEDULED}, {"ended", 1000, SPACE_ENDED},
                {"live", 0, SPACE_LIVE},          {"green", 0, SPACE_GREEN},
                {"late", 900, SPACE_SCHEDULED},   {"soon1", 1050, SPACE_SCHEDULED}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ck_assert_int_eq(registry_create(reg, rows[i].id, "T", rows[i].starts_at, &r, key), 0);
        if (rows[i].st != SPACE_SCHEDULED)
            ck_assert_int_eq(registry_set_state(reg, rows[i].id, rows[i].st), 0);
    }
    struct collected c = {.stop_after = -1};
    ck_assert_int_eq(registry_list_soon(reg, 950, 1200, 8, collect, &c), 0);
    ck_assert_int_eq(c.n, 4);
    ck_assert_str_eq(c.ids[0], "live");
    ck_assert_str_eq(c.ids[1], "green");
    ck_assert_str_eq(c.ids[2], "soon1");
    ck_assert_str_eq(c.ids[3], "soon2");
    struct collected capped = {.stop_after = -1};
    ck_assert_int_eq(registry_list_soon(reg, 0, 2000, 3, collect, &capped), 0);
    ck_assert_int_eq(capped.n, 3);
    ck_assert_str_eq(capped.ids[2], "late");
}
END_TEST

START_TEST(list_empty)
{
    struct collected c = {.stop_after = -1};
    ck_assert_int_eq(registry_list(reg, collect, &c), 0);
    ck_assert_int_eq(c.n, 0);
}
END_TEST

START_TEST(host_key_checks)
{
    char key[SPACE_KEY_HEX + 1], other[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    create("other", "T", other);
    ck_assert(registry_check_host_key(reg, "demo", key, SPACE_KEY_HEX));
    ck_assert(registry_check_host_key(reg, "other", other, SPACE_KEY_HEX));
    ck_assert(!registry_check_host_key(reg, "demo", other, SPACE_KEY_HEX));
    ck_assert(!registry_check_host_key(reg, "other", key, SPACE_KEY_HEX));
    ck_assert(!registry_check_host_key(reg, "demo", key, SPACE_KEY_HEX - 1));
    ck_assert(!registry_check_host_key(reg, "demo", key, 1));
    ck_assert(!registry_check_host_key(reg, "demo", "", 0));
    ck_assert(!registry_check_host_key(reg, "demo", NULL, 0));

    char buf[SPACE_KEY_HEX + 2];
    memcpy(buf, key, SPACE_KEY_HEX + 1); /* the key, its NUL, then one more byte */
    buf[SPACE_KEY_HEX + 1] = 'a';
    ck_assert(!registry_check_host_key(reg, "demo", buf, SPACE_KEY_HEX + 1));
    ck_assert(!registry_check_host_key(reg, "demo", buf, SPACE_KEY_HEX + 2));
    memcpy(buf, key, SPACE_KEY_HEX);
    buf[5] = '\0'; /* a NUL inside a key of the right length */
    ck_assert(!registry_check_host_key(reg, "demo", buf, SPACE_KEY_HEX));
    memcpy(buf, key, SPACE_KEY_HEX);
    buf[SPACE_KEY_HEX] = '0'; /* the key and one more character */
    ck_assert(!registry_check_host_key(reg, "demo", buf, SPACE_KEY_HEX + 1));
    memcpy(buf, key, SPACE_KEY_HEX);
    buf[SPACE_KEY_HEX - 1] ^= 1; /* the last character differs */
    ck_assert(!registry_check_host_key(reg, "demo", buf, SPACE_KEY_HEX));
    ck_assert(!registry_check_host_key(reg, "nope", key, SPACE_KEY_HEX));
    ck_assert(registry_check_host_key(reg, "demo", key, SPACE_KEY_HEX));
}
END_TEST

START_TEST(host_key_survives_reopen)
{
    char key[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    reopen();
    ck_assert(registry_check_host_key(reg, "demo", key, SPACE_KEY_HEX));
}
END_TEST

/* Reads a whole file into a malloc'd buffer. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    ck_assert_int_gt(size, 0);
    rewind(f);
    char *buf = malloc((size_t)size);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return buf;
}

START_TEST(only_hash_stored)
{
    char key[SPACE_KEY_HEX + 1];
    create("demo", "A title to find", key);
    registry_close(reg); /* the last close checkpoints the WAL into the main file */
    reg = NULL;
    ck_assert_int_ne(access(db_path, F_OK), -1);
    size_t len;
    char *bytes = read_file(db_path, &len);
    unsigned char hash[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, SPACE_KEY_HEX, hash);
    /* Sanity: the file really holds the row, and its hash. */
    ck_assert_ptr_nonnull(memmem(bytes, len, "A title to find", 15));
    ck_assert_ptr_nonnull(memmem(bytes, len, hash, sizeof(hash)));
    ck_assert_ptr_null(memmem(bytes, len, key, SPACE_KEY_HEX));
    ck_assert_ptr_null(memmem(bytes, len, key, SPACE_KEY_HEX / 2));
    free(bytes);
    reg = registry_open(db_path);
    ck_assert_ptr_nonnull(reg);
}
END_TEST

START_TEST(state_persists)
{
    char key[SPACE_KEY_HEX + 1];
    struct space_record r;
    create("demo", "T", key);
    create("other", "T", key);
    ck_assert_int_eq(registry_set_state(reg, "demo", SPACE_GREEN), 0);
    ck_assert_int_eq(registry_get(reg, "demo", &r), 0);
    ck_assert_int_eq(r.state, SPACE_GREEN);
    ck_assert_int_eq(registry_set_state(reg, "demo", SPACE_LIVE), 0);
    reopen();
    ck_assert_int_eq(registry_get(reg, "demo", &r), 0);
    ck_assert_int_eq(r.state, SPACE_LIVE);
    ck_assert_int_eq(registry_get(reg, "other", &r), 0);
    ck_assert_int_eq(r.state, SPACE_SCHEDULED);
    ck_assert_int_eq(registry_set_state(reg, "demo", SPACE_ENDED), 0);
    ck_assert_int_eq(registry_set_state(reg, "demo", SPACE_ENDED), 0);
    reopen();
    ck_assert_int_eq(registry_get(reg, "demo", &r), 0);
    ck_assert_int_eq(r.state, SPACE_ENDED);
    ck_assert_int_eq(registry_set_state(reg, "demo", (enum space_state)7), -EINVAL);
    ck_assert_int_eq(registry_set_state(reg, "demo", (enum space_state) - 1), -EINVAL);
}
END_TEST

START_TEST(rotate_invalidates_old_key)
{
    char key[SPACE_KEY_HEX + 1], fresh[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    ck_assert_int_eq(registry_rotate_host_key(reg, "demo", fresh), 0);
    ck_assert_uint_eq(strlen(fresh), SPACE_KEY_HEX);
    ck_assert(is_lower_hex(fresh));
    ck_assert_str_ne(key, fresh);
    ck_assert(!registry_check_host_key(reg, "demo", key, SPACE_KEY_HEX));
    ck_assert(registry_check_host_key(reg, "demo", fresh, SPACE_KEY_HEX));
    reopen();
    ck_assert(!registry_check_host_key(reg, "demo", key, SPACE_KEY_HEX));
    ck_assert(registry_check_host_key(reg, "demo", fresh, SPACE_KEY_HEX));
}
END_TEST

START_TEST(state_names)
{
    ck_assert_str_eq(space_state_name(SPACE_SCHEDULED), "scheduled");
    ck_assert_str_eq(space_state_name(SPACE_GREEN), "green");
    ck_assert_str_eq(space_state_name(SPACE_LIVE), "live");
    ck_assert_str_eq(space_state_name(SPACE_ENDED), "ended");
    ck_assert_str_eq(space_state_name((enum space_state)42), "unknown");
}
END_TEST

/* Runs one statement on the database file directly and returns its first
 * column as text (or "" when it returns no row). */
static void peek(const char *path, const char *sql, char *out, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int rc = sqlite3_step(st);
    ck_assert(rc == SQLITE_ROW || rc == SQLITE_DONE);
    snprintf(out, cap, "%s", rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : "");
    sqlite3_finalize(st);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

START_TEST(schema_version_and_wal)
{
    char out[64];
    peek(db_path, "PRAGMA user_version", out, sizeof(out));
    ck_assert_str_eq(out, "3");
    peek(db_path, "PRAGMA journal_mode", out, sizeof(out));
    ck_assert_str_eq(out, "wal");
    /* Reopening an up-to-date database migrates nothing and keeps the data. */
    char key[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    reopen();
    peek(db_path, "PRAGMA user_version", out, sizeof(out));
    ck_assert_str_eq(out, "3");
    ck_assert(registry_check_host_key(reg, "demo", key, SPACE_KEY_HEX));
}
END_TEST

START_TEST(require_ticket_persists)
{
    char key[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    struct space_record r;
    ck_assert_int_eq(registry_get(reg, "demo", &r), 0);
    ck_assert(!r.require_ticket); /* off by default */
    ck_assert_int_eq(registry_set_require_ticket(reg, "demo", true), 0);
    reopen();
    ck_assert_int_eq(registry_get(reg, "demo", &r), 0);
    ck_assert(r.require_ticket);
    ck_assert_int_eq(registry_set_require_ticket(reg, "demo", false), 0);
    ck_assert_int_eq(registry_get(reg, "demo", &r), 0);
    ck_assert(!r.require_ticket);
    ck_assert_int_eq(registry_set_require_ticket(reg, "nope", true), -ENOENT);
    ck_assert_int_eq(registry_set_require_ticket(reg, "bad id!", true), -ENOENT);
}
END_TEST

/* A database made by the previous build (schema 1) is migrated through 2 to 3
 * with its spaces kept, none of them requiring tickets. */
START_TEST(migrates_from_version_1)
{
    registry_close(reg);
    reg = NULL;
    unlink(db_path);
    char out[64];
    peek(db_path,
         "CREATE TABLE spaces(id TEXT PRIMARY KEY, title TEXT NOT NULL, starts_at INTEGER, "
         "created_at INTEGER NOT NULL, state INTEGER NOT NULL, host_key_hash BLOB NOT NULL)",
         out, sizeof(out));
    peek(db_path, "INSERT INTO spaces VALUES('old', 'Old space', 0, 1700000000, 2, zeroblob(32))",
         out, sizeof(out));
    peek(db_path, "PRAGMA user_version = 1", out, sizeof(out));
    reg = registry_open(db_path);
    ck_assert_ptr_nonnull(reg);
    peek(db_path, "PRAGMA user_version", out, sizeof(out));
    ck_assert_str_eq(out, "3");
    struct space_record r;
    ck_assert_int_eq(registry_get(reg, "old", &r), 0);
    ck_assert_str_eq(r.title, "Old space");
    ck_assert_int_eq(r.state, SPACE_LIVE);
    ck_assert(!r.require_ticket);
    char skey[SPACE_KEY_HEX + 1];
    ck_assert_int_eq(registry_speaker_add(reg, "old", "alice", 5, skey), 0);
    ck_assert(registry_check_speaker_key(reg, "old", "alice", skey, SPACE_KEY_HEX));
}
END_TEST

/* ---- speakers (issue 6) ---- */

/* Adds speaker `name` to space `id` under a generous cap and returns its key in `key`. */
static void add_speaker(const char *id, const char *name, char key[SPACE_KEY_HEX + 1])
{
    ck_assert_int_eq(registry_speaker_add(reg, id, name, 100, key), 0);
    ck_assert_uint_eq(strlen(key), SPACE_KEY_HEX);
    ck_assert(is_lower_hex(key));
}

START_TEST(speaker_names)
{
    ck_assert(speaker_name_is_valid("alice", 5));
    ck_assert(speaker_name_is_valid("A-z_09", 6));
    ck_assert(speaker_name_is_valid("host", 4)); /* a valid segment; reserved only when adding */
    ck_assert(speaker_name_is_valid("abc", 2));
    char name[SPEAKER_NAME_MAX + 2];
    memset(name, 'n', sizeof(name));
    ck_assert(speaker_name_is_valid(name, SPEAKER_NAME_MAX));
    ck_assert(!speaker_name_is_valid(name, SPEAKER_NAME_MAX + 1));
    ck_assert(!speaker_name_is_valid("", 0));
    ck_assert(!speaker_name_is_valid("ab", 0));
    ck_assert(!speaker_name_is_valid(NULL, 0));
    ck_assert(!speaker_name_is_valid("a\0b", 3));
    ck_assert(!speaker_name_is_valid("a b", 3));
    ck_assert(!speaker_name_is_valid("a/b", 3));
    ck_assert(!speaker_name_is_valid("a.b", 3));
    ck_assert(!speaker_name_is_valid("caf\xc3\xa9", 5));
}
END_TEST

START_TEST(speaker_add_get)
{
    char key[SPACE_KEY_HEX + 1], skey[SPACE_KEY_HEX + 1], skey2[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    ck_assert_int_eq(registry_speaker_count(reg, "demo"), 0);
    add_speaker("demo", "alice", skey);
    add_speaker("demo", "bob", skey2);
    ck_assert_str_ne(skey, skey2);
    ck_assert_str_ne(skey, key);
    ck_assert_int_eq(registry_speaker_count(reg, "demo"), 2);

    struct speaker_record s;
    ck_assert_int_eq(registry_speaker_get(reg, "demo", "alice", &s), 0);
    ck_assert_str_eq(s.name, "alice");
    ck_assert(!s.is_muted);
    ck_assert_int_gt(s.created_at, 0);
    ck_assert_int_eq(registry_speaker_get(reg, "demo", "carol", &s), -ENOENT);
    ck_assert_int_eq(registry_speaker_get(reg, "nope", "alice", &s), -ENOENT);
    ck_assert_int_eq(registry_speaker_get(reg, "demo", "bad name", &s), -ENOENT);
    ck_assert(registry_check_speaker_key(reg, "demo", "alice", skey, SPACE_KEY_HEX));
    ck_assert(registry_check_speaker_key(reg, "demo", "bob", skey2, SPACE_KEY_HEX));
    /* The host key is still the host's, and only the host's. */
    ck_assert(registry_check_host_key(reg, "demo", key, SPACE_KEY_HEX));
    ck_assert(!registry_check_host_key(reg, "demo", skey, SPACE_KEY_HEX));
    ck_assert(!registry_check_speaker_key(reg, "demo", "alice", key, SPACE_KEY_HEX));
}
END_TEST

START_TEST(speaker_add_errors)
{
    char key[SPACE_KEY_HEX + 1], skey[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    ck_assert_int_eq(registry_speaker_add(reg, "nope", "alice", 5, skey), -ENOENT);
    ck_assert_int_eq(registry_speaker_add(reg, "bad id", "alice", 5, skey), -ENOENT);
    ck_assert_int_eq(registry_speaker_add(reg, NULL, "alice", 5, skey), -ENOENT);
    static const char *const bad[] = {
        "", "a b", "a/b", "caf\xc3\xa9", "x\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "host",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(registry_speaker_add(reg, "demo", bad[i], 5, skey), -EINVAL);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", NULL, 5, skey), -EINVAL);
    ck_assert_int_eq(registry_speaker_count(reg, "demo"), 0);
    /* "Host" and "hostess" are ordinary names; only the exact segment is reserved. */
    add_speaker("demo", "Host", skey);
    add_speaker("demo", "hostess", skey);

    char max_name[SPEAKER_NAME_MAX + 1];
    memset(max_name, 'm', SPEAKER_NAME_MAX);
    max_name[SPEAKER_NAME_MAX] = '\0';
    add_speaker("demo", max_name, skey);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", max_name, 100, skey), -EEXIST);
    ck_assert_int_eq(registry_speaker_count(reg, "demo"), 3);
}
END_TEST

START_TEST(speaker_add_cap)
{
    char key[SPACE_KEY_HEX + 1], skey[SPACE_KEY_HEX + 1], first[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    create("other", "T", key);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", "a", 0, skey), -ENOSPC);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", "a", -1, skey), -ENOSPC);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", "a", 3, first), 0);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", "b", 3, skey), 0);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", "c", 3, skey), 0);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", "d", 3, skey), -ENOSPC);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", "d", 2, skey), -ENOSPC);
    /* A duplicate is reported as such even when the space is full. */
    ck_assert_int_eq(registry_speaker_add(reg, "demo", "a", 3, skey), -EEXIST);
    ck_assert(registry_check_speaker_key(reg, "demo", "a", first, SPACE_KEY_HEX));
    ck_assert_int_eq(registry_speaker_count(reg, "demo"), 3);
    /* The cap is per space. */
    ck_assert_int_eq(registry_speaker_add(reg, "other", "d", 3, skey), 0);
    ck_assert_int_eq(registry_speaker_count(reg, "other"), 1);
    /* A removal frees a seat; the refusals above left no transaction open. */
    ck_assert_int_eq(registry_speaker_remove(reg, "demo", "b"), 0);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", "d", 3, skey), 0);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", "e", 3, skey), -ENOSPC);
    reopen();
    ck_assert_int_eq(registry_speaker_count(reg, "demo"), 3);
    ck_assert_int_eq(registry_speaker_add(reg, "demo", "e", 4, skey), 0);
}
END_TEST

START_TEST(speaker_key_checks)
{
    char key[SPACE_KEY_HEX + 1], a[SPACE_KEY_HEX + 1], b[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    create("other", "T", key);
    add_speaker("demo", "alice", a);
    add_speaker("other", "alice", b);
    ck_assert_str_ne(a, b);
    ck_assert(registry_check_speaker_key(reg, "demo", "alice", a, SPACE_KEY_HEX));
    ck_assert(registry_check_speaker_key(reg, "other", "alice", b, SPACE_KEY_HEX));
    /* Another space's speaker of the same name. */
    ck_assert(!registry_check_speaker_key(reg, "demo", "alice", b, SPACE_KEY_HEX));
    ck_assert(!registry_check_speaker_key(reg, "other", "alice", a, SPACE_KEY_HEX));
    /* Unknown names and spaces, and names that cannot be. */
    ck_assert(!registry_check_speaker_key(reg, "demo", "bob", a, SPACE_KEY_HEX));
    ck_assert(!registry_check_speaker_key(reg, "nope", "alice", a, SPACE_KEY_HEX));
    ck_assert(!registry_check_speaker_key(reg, "demo", "host", key, SPACE_KEY_HEX));
    ck_assert(!registry_check_speaker_key(reg, "demo", "", a, SPACE_KEY_HEX));
    ck_assert(!registry_check_speaker_key(reg, "demo", NULL, a, SPACE_KEY_HEX));
    ck_assert(!registry_check_speaker_key(reg, NULL, "alice", a, SPACE_KEY_HEX));
    /* Empty, missing, short, long and altered keys. */
    ck_assert(!registry_check_speaker_key(reg, "demo", "alice", "", 0));
    ck_assert(!registry_check_speaker_key(reg, "demo", "alice", NULL, 0));
    ck_assert(!registry_check_speaker_key(reg, "demo", "alice", NULL, 5));
    ck_assert(!registry_check_speaker_key(reg, "demo", "alice", a, SPACE_KEY_HEX - 1));
    ck_assert(!registry_check_speaker_key(reg, "demo", "alice", a, SPACE_KEY_HEX + 1));
    char buf[SPACE_KEY_HEX + 1];
    memcpy(buf, a, sizeof(buf));
    buf[0] ^= 1;
    ck_assert(!registry_check_speaker_key(reg, "demo", "alice", buf, SPACE_KEY_HEX));
    ck_assert(registry_check_speaker_key(reg, "demo", "alice", a, SPACE_KEY_HEX));
}
END_TEST

START_TEST(speaker_remove_readd)
{
    char key[SPACE_KEY_HEX + 1], old[SPACE_KEY_HEX + 1], fresh[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    add_speaker("demo", "alice", old);
    ck_assert_int_eq(registry_speaker_remove(reg, "demo", "alice"), 0);
    ck_assert(!registry_check_speaker_key(reg, "demo", "alice", old, SPACE_KEY_HEX));
    struct speaker_record s;
    ck_assert_int_eq(registry_speaker_get(reg, "demo", "alice", &s), -ENOENT);
    ck_assert_int_eq(registry_speaker_remove(reg, "demo", "alice"), -ENOENT);
    ck_assert_int_eq(registry_speaker_remove(reg, "nope", "alice"), -ENOENT);
    ck_assert_int_eq(registry_speaker_remove(reg, "demo", "bad name"), -ENOENT);
    ck_assert_int_eq(registry_speaker_count(reg, "demo"), 0);

    add_speaker("demo", "alice", fresh);
    ck_assert_str_ne(old, fresh);
    ck_assert(!registry_check_speaker_key(reg, "demo", "alice", old, SPACE_KEY_HEX));
    ck_assert(registry_check_speaker_key(reg, "demo", "alice", fresh, SPACE_KEY_HEX));
    reopen();
    ck_assert(!registry_check_speaker_key(reg, "demo", "alice", old, SPACE_KEY_HEX));
    ck_assert(registry_check_speaker_key(reg, "demo", "alice", fresh, SPACE_KEY_HEX));
}
END_TEST

START_TEST(speaker_mute)
{
    char key[SPACE_KEY_HEX + 1], skey[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    add_speaker("demo", "alice", skey);
    add_speaker("demo", "bob", skey);
    struct speaker_record s;
    ck_assert_int_eq(registry_speaker_set_muted(reg, "demo", "alice", true), 0);
    ck_assert_int_eq(registry_speaker_get(reg, "demo", "alice", &s), 0);
    ck_assert(s.is_muted);
    ck_assert_int_eq(registry_speaker_get(reg, "demo", "bob", &s), 0);
    ck_assert(!s.is_muted);
    ck_assert_int_eq(registry_speaker_set_muted(reg, "demo", "alice", true), 0); /* idempotent */
    reopen();
    ck_assert_int_eq(registry_speaker_get(reg, "demo", "alice", &s), 0);
    ck_assert(s.is_muted);
    ck_assert_int_eq(registry_speaker_set_muted(reg, "demo", "alice", false), 0);
    ck_assert_int_eq(registry_speaker_get(reg, "demo", "alice", &s), 0);
    ck_assert(!s.is_muted);
    ck_assert_int_eq(registry_speaker_set_muted(reg, "demo", "carol", true), -ENOENT);
    ck_assert_int_eq(registry_speaker_set_muted(reg, "nope", "alice", true), -ENOENT);
    ck_assert_int_eq(registry_speaker_set_muted(reg, "demo", "host", true), -ENOENT);
}
END_TEST

struct speakers_seen {
    char names[8][SPEAKER_NAME_MAX + 1];
    bool muted[8];
    int n;
    int stop_after;
};

static int collect_speaker(const struct speaker_record *r, void *arg)
{
    struct speakers_seen *c = arg;
    snprintf(c->names[c->n], sizeof(c->names[c->n]), "%s", r->name);
    c->muted[c->n] = r->is_muted;
    c->n++;
    return c->n == c->stop_after;
}

START_TEST(speaker_list_order)
{
    static const char *const names[] = {"zed", "amy", "mo", "bo"};
    char key[SPACE_KEY_HEX + 1], skey[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    create("other", "T", key);
    for (int i = 0; i < 4; i++)
        add_speaker("demo", names[i], skey);
    add_speaker("other", "zz", skey);
    ck_assert_int_eq(registry_speaker_set_muted(reg, "demo", "mo", true), 0);
    reopen();
    struct speakers_seen c = {.stop_after = -1};
    ck_assert_int_eq(registry_speaker_list(reg, "demo", collect_speaker, &c), 0);
    ck_assert_int_eq(c.n, 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(c.names[i], names[i]);
        ck_assert(c.muted[i] == (i == 2));
    }
    struct speakers_seen early = {.stop_after = 2};
    ck_assert_int_eq(registry_speaker_list(reg, "demo", collect_speaker, &early), 0);
    ck_assert_int_eq(early.n, 2);
    ck_assert_str_eq(early.names[1], "amy");
    struct speakers_seen again = {.stop_after = -1};
    ck_assert_int_eq(registry_speaker_list(reg, "demo", collect_speaker, &again), 0);
    ck_assert_int_eq(again.n, 4);
    /* A speaker removed and added again goes to the end. */
    ck_assert_int_eq(registry_speaker_remove(reg, "demo", "zed"), 0);
    add_speaker("demo", "zed", skey);
    struct speakers_seen moved = {.stop_after = -1};
    ck_assert_int_eq(registry_speaker_list(reg, "demo", collect_speaker, &moved), 0);
    ck_assert_int_eq(moved.n, 4);
    ck_assert_str_eq(moved.names[0], "amy");
    ck_assert_str_eq(moved.names[3], "zed");

    struct speakers_seen none = {.stop_after = -1};
    create("empty", "T", key);
    ck_assert_int_eq(registry_speaker_list(reg, "empty", collect_speaker, &none), 0);
    ck_assert_int_eq(none.n, 0);
    ck_assert_int_eq(registry_speaker_list(reg, "nope", collect_speaker, &none), -ENOENT);
    ck_assert_int_eq(registry_speaker_list(reg, "bad id", collect_speaker, &none), -ENOENT);
    ck_assert_int_eq(none.n, 0);
    ck_assert_int_eq(registry_speaker_count(reg, "nope"), 0);
    ck_assert_int_eq(registry_speaker_count(reg, "bad id"), 0);
    ck_assert_int_eq(registry_speaker_count(reg, "other"), 1);
}
END_TEST

START_TEST(speakers_persist)
{
    char key[SPACE_KEY_HEX + 1], a[SPACE_KEY_HEX + 1], b[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    add_speaker("demo", "alice", a);
    add_speaker("demo", "bob", b);
    ck_assert_int_eq(registry_speaker_set_muted(reg, "demo", "bob", true), 0);
    struct speaker_record before, after;
    ck_assert_int_eq(registry_speaker_get(reg, "demo", "bob", &before), 0);
    reopen();
    ck_assert_int_eq(registry_speaker_count(reg, "demo"), 2);
    ck_assert(registry_check_speaker_key(reg, "demo", "alice", a, SPACE_KEY_HEX));
    ck_assert(registry_check_speaker_key(reg, "demo", "bob", b, SPACE_KEY_HEX));
    ck_assert(!registry_check_speaker_key(reg, "demo", "bob", a, SPACE_KEY_HEX));
    ck_assert_int_eq(registry_speaker_get(reg, "demo", "bob", &after), 0);
    ck_assert_str_eq(after.name, "bob");
    ck_assert(after.is_muted);
    ck_assert_int_eq(after.created_at, before.created_at);
    ck_assert(registry_check_host_key(reg, "demo", key, SPACE_KEY_HEX));
}
END_TEST

/* ---- requests to speak ---- */

static int64_t add_request(const char *id, const char *name, char token[SPACE_KEY_HEX + 1])
{
    int64_t rid = 0;
    ck_assert_int_eq(registry_request_add(reg, id, name, 100, &rid, token), 0);
    ck_assert_int_gt(rid, 0);
    ck_assert_uint_eq(strlen(token), SPACE_KEY_HEX);
    ck_assert(is_lower_hex(token));
    return rid;
}

START_TEST(request_add_get)
{
    char key[SPACE_KEY_HEX + 1], t1[SPACE_KEY_HEX + 1], t2[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    create("other", "T", key);
    int64_t r1 = add_request("demo", "alice", t1);
    int64_t r2 = add_request("demo", "alice", t2); /* the same name twice is allowed */
    ck_assert_int_ne(r1, r2);
    ck_assert_str_ne(t1, t2);
    struct request_record q;
    ck_assert_int_eq(registry_request_get(reg, "demo", r1, &q), 0);
    ck_assert_int_eq(q.id, r1);
    ck_assert_str_eq(q.name, "alice");
    ck_assert_int_eq(q.state, REQUEST_PENDING);
    ck_assert_int_gt(q.created_at, 0);
    /* A request is found only under its own space. */
    ck_assert_int_eq(registry_request_get(reg, "other", r1, &q), -ENOENT);
    ck_assert_int_eq(registry_request_get(reg, "nope", r1, &q), -ENOENT);
    ck_assert_int_eq(registry_request_get(reg, "demo", r2 + 100, &q), -ENOENT);
    ck_assert_int_eq(registry_request_get(reg, "demo", 0, &q), -ENOENT);
    ck_assert_int_eq(registry_request_get(reg, "demo", -1, &q), -ENOENT);
    /* Filing a request makes no speaker. */
    ck_assert_int_eq(registry_speaker_count(reg, "demo"), 0);
}
END_TEST

START_TEST(request_token_checks)
{
    char key[SPACE_KEY_HEX + 1], t1[SPACE_KEY_HEX + 1], t2[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    create("other", "T", key);
    int64_t r1 = add_request("demo", "alice", t1);
    int64_t r2 = add_request("other", "bob", t2);
    ck_assert(registry_check_request_token(reg, "demo", r1, t1, SPACE_KEY_HEX));
    ck_assert(registry_check_request_token(reg, "other", r2, t2, SPACE_KEY_HEX));
    ck_assert(!registry_check_request_token(reg, "demo", r1, t2, SPACE_KEY_HEX));
    ck_assert(!registry_check_request_token(reg, "other", r1, t1, SPACE_KEY_HEX));
    ck_assert(!registry_check_request_token(reg, "demo", r2, t2, SPACE_KEY_HEX));
    ck_assert(!registry_check_request_token(reg, "nope", r1, t1, SPACE_KEY_HEX));
    ck_assert(!registry_check_request_token(reg, "demo", 0, t1, SPACE_KEY_HEX));
    ck_assert(!registry_check_request_token(reg, "demo", r2 + 100, t1, SPACE_KEY_HEX));
    ck_assert(!registry_check_request_token(reg, "demo", r1, "", 0));
    ck_assert(!registry_check_request_token(reg, "demo", r1, NULL, 0));
    ck_assert(!registry_check_request_token(reg, "demo", r1, t1, SPACE_KEY_HEX - 1));
    ck_assert(!registry_check_request_token(reg, "demo", r1, key, SPACE_KEY_HEX));
    char buf[SPACE_KEY_HEX + 1];
    memcpy(buf, t1, sizeof(buf));
    buf[SPACE_KEY_HEX - 1] ^= 1;
    ck_assert(!registry_check_request_token(reg, "demo", r1, buf, SPACE_KEY_HEX));
    /* A token is not a speaker key, nor a host key. */
    ck_assert(!registry_check_host_key(reg, "demo", t1, SPACE_KEY_HEX));
    reopen();
    ck_assert(registry_check_request_token(reg, "demo", r1, t1, SPACE_KEY_HEX));
}
END_TEST

START_TEST(request_add_errors)
{
    char key[SPACE_KEY_HEX + 1], token[SPACE_KEY_HEX + 1];
    int64_t rid = 0;
    create("demo", "T", key);
    ck_assert_int_eq(registry_request_add(reg, "nope", "alice", 5, &rid, token), -ENOENT);
    ck_assert_int_eq(registry_request_add(reg, "bad id", "alice", 5, &rid, token), -ENOENT);
    static const char *const bad[] = {"", "a b", "a/b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                      "host"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(registry_request_add(reg, "demo", bad[i], 5, &rid, token), -EINVAL);
    ck_assert_int_eq(registry_request_add(reg, "demo", NULL, 5, &rid, token), -EINVAL);
    ck_assert_int_eq(rid, 0); /* untouched by failures */
    ck_assert_int_eq(registry_request_add(reg, "demo", "alice", 0, &rid, token), -ENOSPC);
}
END_TEST

START_TEST(request_pending_cap)
{
    char key[SPACE_KEY_HEX + 1], token[SPACE_KEY_HEX + 1];
    int64_t rid, r[3];
    create("demo", "T", key);
    create("other", "T", key);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(registry_request_add(reg, "demo", "a", 3, &r[i], token), 0);
    ck_assert_int_eq(registry_request_add(reg, "demo", "b", 3, &rid, token), -ENOSPC);
    ck_assert_int_eq(registry_request_add(reg, "other", "b", 3, &rid, token), 0); /* per space */
    /* Decided requests no longer count against the cap. */
    ck_assert_int_eq(registry_request_decide(reg, "demo", r[0], false, NULL), 0);
    ck_assert_int_eq(registry_request_add(reg, "demo", "b", 3, &rid, token), 0);
    ck_assert_int_gt(rid, r[2]);
    ck_assert_int_eq(registry_request_add(reg, "demo", "c", 3, &rid, token), -ENOSPC);
    reopen();
    ck_assert_int_eq(registry_request_add(reg, "demo", "c", 3, &rid, token), -ENOSPC);
    ck_assert_int_eq(registry_request_add(reg, "demo", "c", 4, &rid, token), 0);
}
END_TEST

START_TEST(request_decide)
{
    char key[SPACE_KEY_HEX + 1], token[SPACE_KEY_HEX + 1], skey[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    create("other", "T", key);
    int64_t yes = add_request("demo", "alice", token);
    int64_t no = add_request("demo", "bob", token);
    add_speaker("demo", "alice", skey);

    static const char *const bad_keys[] = {
        NULL,
        "",
        "abc",
        "0123456789abcdef0123456789ABCDEF",
        "0123456789abcdef0123456789abcdeg",
        "0123456789abcdef0123456789abcdef0",
    };
    for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
        ck_assert_int_eq(registry_request_decide(reg, "demo", yes, true, bad_keys[i]), -EINVAL);
    ck_assert_int_eq(registry_request_decide(reg, "other", yes, true, skey), -ENOENT);
    ck_assert_int_eq(registry_request_decide(reg, "nope", yes, true, skey), -ENOENT);
    ck_assert_int_eq(registry_request_decide(reg, "demo", no + 100, true, skey), -ENOENT);
    ck_assert_int_eq(registry_request_decide(reg, "demo", 0, false, NULL), -ENOENT);
    struct request_record q;
    ck_assert_int_eq(registry_request_get(reg, "demo", yes, &q), 0);
    ck_assert_int_eq(q.state, REQUEST_PENDING);

    ck_assert_int_eq(registry_request_decide(reg, "demo", yes, true, skey), 0);
    ck_assert_int_eq(registry_request_decide(reg, "demo", no, false, NULL), 0);
    ck_assert_int_eq(registry_request_get(reg, "demo", yes, &q), 0);
    ck_assert_int_eq(q.state, REQUEST_APPROVED);
    ck_assert_int_eq(registry_request_get(reg, "demo", no, &q), 0);
    ck_assert_int_eq(q.state, REQUEST_REFUSED);
    /* A decision is final. */
    ck_assert_int_eq(registry_request_decide(reg, "demo", yes, false, NULL), -EALREADY);
    ck_assert_int_eq(registry_request_decide(reg, "demo", yes, true, skey), -EALREADY);
    ck_assert_int_eq(registry_request_decide(reg, "demo", no, true, skey), -EALREADY);
    reopen();
    ck_assert_int_eq(registry_request_decide(reg, "demo", no, false, NULL), -EALREADY);
    ck_assert_int_eq(registry_request_get(reg, "demo", yes, &q), 0);
    ck_assert_int_eq(q.state, REQUEST_APPROVED);
    ck_assert_int_eq(registry_request_get(reg, "demo", no, &q), 0);
    ck_assert_int_eq(q.state, REQUEST_REFUSED);
}
END_TEST

START_TEST(request_pickup_once)
{
    char key[SPACE_KEY_HEX + 1], token[SPACE_KEY_HEX + 1], skey[SPACE_KEY_HEX + 1];
    char got[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    create("other", "T", key);
    int64_t yes = add_request("demo", "alice", token);
    int64_t no = add_request("demo", "bob", token);
    int64_t wait = add_request("demo", "carol", token);
    ck_assert_int_eq(registry_request_pickup(reg, "demo", yes, got), -ENOENT); /* pending */
    add_speaker("demo", "alice", skey);
    ck_assert_int_eq(registry_request_decide(reg, "demo", yes, true, skey), 0);
    ck_assert_int_eq(registry_request_decide(reg, "demo", no, false, NULL), 0);
    reopen(); /* the key waits across a restart */
    ck_assert_int_eq(registry_request_pickup(reg, "other", yes, got), -ENOENT);
    ck_assert_int_eq(registry_request_pickup(reg, "nope", yes, got), -ENOENT);
    ck_assert_int_eq(registry_request_pickup(reg, "demo", yes, got), 0);
    ck_assert_str_eq(got, skey);
    ck_assert(registry_check_speaker_key(reg, "demo", "alice", got, SPACE_KEY_HEX));
    ck_assert_int_eq(registry_request_pickup(reg, "demo", yes, got), -ENOENT);
    ck_assert_int_eq(registry_request_pickup(reg, "demo", no, got), -ENOENT);       /* refused */
    ck_assert_int_eq(registry_request_pickup(reg, "demo", wait, got), -ENOENT);     /* pending */
    ck_assert_int_eq(registry_request_pickup(reg, "demo", wait + 9, got), -ENOENT); /* unknown */
    reopen();
    ck_assert_int_eq(registry_request_pickup(reg, "demo", yes, got), -ENOENT);
    struct request_record q;
    ck_assert_int_eq(registry_request_get(reg, "demo", yes, &q), 0);
    ck_assert_int_eq(q.state, REQUEST_APPROVED); /* picking up keeps the outcome */
    /* The transactions above left none open: writes still work. */
    ck_assert_int_eq(registry_request_decide(reg, "demo", wait, false, NULL), 0);
}
END_TEST

/* After pickup, the speaker key is nowhere in the database file; before it,
 * only in the request's pickup_key, as documented. */
START_TEST(request_pickup_clears_key)
{
    char key[SPACE_KEY_HEX + 1], token[SPACE_KEY_HEX + 1], skey[SPACE_KEY_HEX + 1];
    char got[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    int64_t rid = add_request("demo", "alice", token);
    add_speaker("demo", "alice", skey);
    ck_assert_int_eq(registry_request_decide(reg, "demo", rid, true, skey), 0);
    char out[64], sql[160];
    snprintf(sql, sizeof(sql), "SELECT pickup_key FROM requests WHERE id = %lld", (long long)rid);
    peek(db_path, sql, out, sizeof(out));
    ck_assert_str_eq(out, skey);
    ck_assert_int_eq(registry_request_pickup(reg, "demo", rid, got), 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM requests WHERE pickup_key IS NOT NULL");
    peek(db_path, sql, out, sizeof(out));
    ck_assert_str_eq(out, "0");
}
END_TEST

struct requests_seen {
    int64_t ids[8];
    enum request_state states[8];
    int n;
    int stop_after;
};

static int collect_request(const struct request_record *r, void *arg)
{
    struct requests_seen *c = arg;
    c->ids[c->n] = r->id;
    c->states[c->n] = r->state;
    c->n++;
    return c->n == c->stop_after;
}

START_TEST(request_list_order)
{
    char key[SPACE_KEY_HEX + 1], token[SPACE_KEY_HEX + 1], skey[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    create("other", "T", key);
    int64_t r[5];
    for (int i = 0; i < 5; i++)
        r[i] = add_request("demo", "alice", token);
    add_request("other", "bob", token);
    add_speaker("demo", "alice", skey);
    ck_assert_int_eq(registry_request_decide(reg, "demo", r[3], true, skey), 0);
    ck_assert_int_eq(registry_request_decide(reg, "demo", r[0], false, NULL), 0);
    /* Make r[4] the oldest by its time, though the last filed: order is by time. */
    char out[64], sql[160];
    snprintf(sql, sizeof(sql), "UPDATE requests SET created_at = created_at - 60 WHERE id = %lld",
             (long long)r[4]);
    peek(db_path, sql, out, sizeof(out));
    reopen();
    /* Pending (r4 oldest, then r1, r2), then decided (r0, r3), oldest first. */
    const int64_t want[] = {r[4], r[1], r[2], r[0], r[3]};
    const enum request_state want_state[] = {REQUEST_PENDING, REQUEST_PENDING, REQUEST_PENDING,
                                             REQUEST_REFUSED, REQUEST_APPROVED};
    struct requests_seen c = {.stop_after = -1};
    ck_assert_int_eq(registry_request_list(reg, "demo", collect_request, &c), 0);
    ck_assert_int_eq(c.n, 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(c.ids[i], want[i]);
        ck_assert_int_eq(c.states[i], want_state[i]);
    }
    struct requests_seen early = {.stop_after = 2};
    ck_assert_int_eq(registry_request_list(reg, "demo", collect_request, &early), 0);
    ck_assert_int_eq(early.n, 2);
    ck_assert_int_eq(early.ids[1], r[1]);
    /* Deciding the oldest pending one moves it among the decided, by its own time. */
    ck_assert_int_eq(registry_request_decide(reg, "demo", r[4], false, NULL), 0);
    struct requests_seen moved = {.stop_after = -1};
    ck_assert_int_eq(registry_request_list(reg, "demo", collect_request, &moved), 0);
    ck_assert_int_eq(moved.n, 5);
    ck_assert_int_eq(moved.ids[0], r[1]);
    ck_assert_int_eq(moved.ids[2], r[4]);
    ck_assert_int_eq(moved.ids[3], r[0]);

    struct requests_seen none = {.stop_after = -1};
    create("empty", "T", key);
    ck_assert_int_eq(registry_request_list(reg, "empty", collect_request, &none), 0);
    ck_assert_int_eq(registry_request_list(reg, "nope", collect_request, &none), -ENOENT);
    ck_assert_int_eq(none.n, 0);
}
END_TEST

/* Speaker keys and request tokens, like host keys, are stored only as hashes. */
START_TEST(speaker_keys_only_hashed)
{
    char key[SPACE_KEY_HEX + 1], skey[SPACE_KEY_HEX + 1], token[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    add_speaker("demo", "alice", skey);
    add_request("demo", "bob", token);
    registry_close(reg);
    reg = NULL;
    size_t len;
    char *bytes = read_file(db_path, &len);
    unsigned char hash[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)skey, SPACE_KEY_HEX, hash);
    ck_assert_ptr_nonnull(memmem(bytes, len, hash, sizeof(hash)));
    SHA256((const unsigned char *)token, SPACE_KEY_HEX, hash);
    ck_assert_ptr_nonnull(memmem(bytes, len, hash, sizeof(hash)));
    ck_assert_ptr_null(memmem(bytes, len, skey, SPACE_KEY_HEX / 2));
    ck_assert_ptr_null(memmem(bytes, len, token, SPACE_KEY_HEX / 2));
    free(bytes);
    reg = registry_open(db_path);
    ck_assert_ptr_nonnull(reg);
}
END_TEST

/* A database made by the previous build (schema 2, built here with that
 * build's two migrations) gains the speakers and requests tables, keeps its
 * spaces and their keys, and the new calls work on it. */
START_TEST(migrates_from_version_2)
{
    registry_close(reg);
    reg = NULL;
    unlink(db_path);
    char out[64];
    peek(db_path,
         "CREATE TABLE spaces(id TEXT PRIMARY KEY, title TEXT NOT NULL, starts_at INTEGER, "
         "created_at INTEGER NOT NULL, state INTEGER NOT NULL, host_key_hash BLOB NOT NULL)",
         out, sizeof(out));
    peek(db_path, "ALTER TABLE spaces ADD COLUMN require_ticket INTEGER NOT NULL DEFAULT 0", out,
         sizeof(out));
    /* Host key "00..01" (32 hex chars): its hash, as the old build stored it. */
    static const char old_key[] = "00000000000000000000000000000001";
    unsigned char hash[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)old_key, SPACE_KEY_HEX, hash);
    char sql[256], hex[2 * SHA256_DIGEST_LENGTH + 1];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    snprintf(sql, sizeof(sql),
             "INSERT INTO spaces VALUES('old', 'Old space', 0, 1700000000, 2, x'%s', 1)", hex);
    peek(db_path, sql, out, sizeof(out));
    peek(db_path, "INSERT INTO spaces VALUES('old2', 'Second', 5, 1700000001, 0, zeroblob(32), 0)",
         out, sizeof(out));
    peek(db_path, "PRAGMA user_version = 2", out, sizeof(out));

    reg = registry_open(db_path);
    ck_assert_ptr_nonnull(reg);
    peek(db_path, "PRAGMA user_version", out, sizeof(out));
    ck_assert_str_eq(out, "3");
    peek(db_path, "SELECT count(*) FROM sqlite_master WHERE name = 'requests_by_space_state'", out,
         sizeof(out));
    ck_assert_str_eq(out, "1");
    struct space_record r;
    ck_assert_int_eq(registry_get(reg, "old", &r), 0);
    ck_assert_str_eq(r.title, "Old space");
    ck_assert_int_eq(r.state, SPACE_LIVE);
    ck_assert_int_eq(r.created_at, 1700000000);
    ck_assert(r.require_ticket);
    ck_assert_int_eq(registry_get(reg, "old2", &r), 0);
    ck_assert_int_eq(r.starts_at, 5);
    ck_assert(!r.require_ticket);
    ck_assert(registry_check_host_key(reg, "old", old_key, SPACE_KEY_HEX));

    char skey[SPACE_KEY_HEX + 1], token[SPACE_KEY_HEX + 1], got[SPACE_KEY_HEX + 1];
    ck_assert_int_eq(registry_speaker_count(reg, "old"), 0);
    add_speaker("old", "alice", skey);
    ck_assert(registry_check_speaker_key(reg, "old", "alice", skey, SPACE_KEY_HEX));
    int64_t rid = add_request("old", "bob", token);
    add_speaker("old", "bob", skey);
    ck_assert_int_eq(registry_request_decide(reg, "old", rid, true, skey), 0);
    reopen();
    peek(db_path, "PRAGMA user_version", out, sizeof(out));
    ck_assert_str_eq(out, "3");
    ck_assert_int_eq(registry_speaker_count(reg, "old"), 2);
    ck_assert_int_eq(registry_request_pickup(reg, "old", rid, got), 0);
    ck_assert_str_eq(got, skey);
    ck_assert(registry_check_host_key(reg, "old", old_key, SPACE_KEY_HEX));
}
END_TEST

/* The failures below are expected and logged: keep them off the test output. */
static void silence_stderr(void)
{
    FILE *null = fopen("/dev/null", "w");
    ck_assert_ptr_nonnull(null);
    ck_assert_int_ge(dup2(fileno(null), STDERR_FILENO), 0);
    fclose(null);
}

START_TEST(open_refuses_garbage)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/garbage.db", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 512; i++)
        fputs("not a database ", f);
    fclose(f);
    silence_stderr();
    ck_assert_ptr_null(registry_open(path));
    snprintf(path, sizeof(path), "%s/no/such/dir/x.db", dir);
    ck_assert_ptr_null(registry_open(path));
}
END_TEST

START_TEST(open_refuses_newer_schema)
{
    registry_close(reg);
    reg = NULL;
    char out[64];
    peek(db_path, "PRAGMA user_version = 99", out, sizeof(out));
    silence_stderr();
    ck_assert_ptr_null(registry_open(db_path));
    peek(db_path, "PRAGMA user_version", out, sizeof(out));
    ck_assert_str_eq(out, "99");
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, create_random_id);
    tcase_add_test(tc, create_chosen_id);
    tcase_add_test(tc, create_duplicate_id);
    tcase_add_test(tc, create_invalid_id);
    tcase_add_test(tc, create_invalid_title);
    tcase_add_test(tc, get_unknown);
    tcase_add_test(tc, list_order);
    tcase_add_test(tc, list_empty);
    tcase_add_test(tc, list_soon);
    tcase_add_test(tc, host_key_checks);
    tcase_add_test(tc, host_key_survives_reopen);
    tcase_add_test(tc, only_hash_stored);
    tcase_add_test(tc, state_persists);
    tcase_add_test(tc, rotate_invalidates_old_key);
    tcase_add_test(tc, state_names);
    tcase_add_test(tc, schema_version_and_wal);
    tcase_add_test(tc, require_ticket_persists);
    tcase_add_test(tc, migrates_from_version_1);
    tcase_add_test(tc, speaker_names);
    tcase_add_test(tc, speaker_add_get);
    tcase_add_test(tc, speaker_add_errors);
    tcase_add_test(tc, speaker_add_cap);
    tcase_add_test(tc, speaker_key_checks);
    tcase_add_test(tc, speaker_remove_readd);
    tcase_add_test(tc, speaker_mute);
    tcase_add_test(tc, speaker_list_order);
    tcase_add_test(tc, speakers_persist);
    tcase_add_test(tc, request_add_get);
    tcase_add_test(tc, request_token_checks);
    tcase_add_test(tc, request_add_errors);
    tcase_add_test(tc, request_pending_cap);
    tcase_add_test(tc, request_decide);
    tcase_add_test(tc, request_pickup_once);
    tcase_add_test(tc, request_pickup_clears_key);
    tcase_add_test(tc, request_list_order);
    tcase_add_test(tc, speaker_keys_only_hashed);
    tcase_add_test(tc, migrates_from_version_2);
    tcase_add_test(tc, open_refuses_garbage);
    tcase_add_test(tc, open_refuses_newer_schema);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(registry_suite());
}
