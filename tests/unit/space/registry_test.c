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
    ck_assert_str_eq(out, "2");
    peek(db_path, "PRAGMA journal_mode", out, sizeof(out));
    ck_assert_str_eq(out, "wal");
    /* Reopening an up-to-date database migrates nothing and keeps the data. */
    char key[SPACE_KEY_HEX + 1];
    create("demo", "T", key);
    reopen();
    peek(db_path, "PRAGMA user_version", out, sizeof(out));
    ck_assert_str_eq(out, "2");
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

/* A database made by the previous build (schema 1) is migrated to 2 with its
 * spaces kept, none of them requiring tickets. */
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
    ck_assert_str_eq(out, "2");
    struct space_record r;
    ck_assert_int_eq(registry_get(reg, "old", &r), 0);
    ck_assert_str_eq(r.title, "Old space");
    ck_assert_int_eq(r.state, SPACE_LIVE);
    ck_assert(!r.require_ticket);
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
    tcase_add_test(tc, host_key_checks);
    tcase_add_test(tc, host_key_survives_reopen);
    tcase_add_test(tc, only_hash_stored);
    tcase_add_test(tc, state_persists);
    tcase_add_test(tc, rotate_invalidates_old_key);
    tcase_add_test(tc, state_names);
    tcase_add_test(tc, schema_version_and_wal);
    tcase_add_test(tc, require_ticket_persists);
    tcase_add_test(tc, migrates_from_version_1);
    tcase_add_test(tc, open_refuses_garbage);
    tcase_add_test(tc, open_refuses_newer_schema);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(registry_suite());
}
