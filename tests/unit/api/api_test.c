/* Unit tests for api/: api_base64_decode's edge cases, then a whole node (api.c, router.c,
 * node.c) started in a child process on a free loopback port, asked real HTTP questions over
 * real sockets, and stopped with SIGTERM. Waits use poll() with deadlines. */
#include "api/api.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "api/node.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "deliver/chunk.h"

/* ---- api_base64_decode ------------------------------------------------------------------------
 */

static int b64(const char *in, char *out, size_t cap)
{
    return api_base64_decode(in, strlen(in), out, cap);
}

START_TEST(base64_valid)
{
    char out[64];
    ck_assert_int_eq(b64("Zm9v", out, sizeof(out)), 3);
    ck_assert_int_eq(memcmp(out, "foo", 3), 0);
    ck_assert_int_eq(b64("Zm8=", out, sizeof(out)), 2);
    ck_assert_int_eq(memcmp(out, "fo", 2), 0);
    ck_assert_int_eq(b64("Zg==", out, sizeof(out)), 1);
    ck_assert_int_eq(out[0], 'f');
    ck_assert_int_eq(b64("c291cmNlOmtleQ==", out, sizeof(out)), 10);
    ck_assert_int_eq(memcmp(out, "source:key", 10), 0);
    /* Binary bytes, including NUL and 0xff, survive. */
    ck_assert_int_eq(b64("AP8A/w==", out, sizeof(out)), 4);
    ck_assert_int_eq(memcmp(out, "\0\xff\0\xff", 4), 0);
    ck_assert_int_eq(b64("+/+/", out, sizeof(out)), 3);
    ck_assert_int_eq(memcmp(out, "\xfb\xff\xbf", 3), 0);
}
END_TEST

START_TEST(base64_fits_cap)
{
    char out[8];
    ck_assert_int_eq(b64("Zm9vYmFy", out, 6), 6);
    ck_assert_int_eq(memcmp(out, "foobar", 6), 0);
    ck_assert_int_eq(b64("Zm9vYmFy", out, 5), -1);
    ck_assert_int_eq(b64("Zm9vYmFy", out, 0), -1);
}
END_TEST

START_TEST(base64_invalid)
{
    char out[64];
    static const char *bad[] = {
        "",         /* nothing */
        "Zm9",      /* not a multiple of 4 */
        "Zm9vY",    /* same */
        "Zm9*",     /* not in the alphabet */
        "Zm9v\n",   /* a newline is not standard base64 here */
        "Zm-_",     /* the URL-safe alphabet is not the standard one */
        "Zg=A",     /* padding before data */
        "Z===",     /* too much padding */
        "Zg==Zg==", /* padding in the middle */
        "Zg==    ", /* trailing blanks after padding */
        "====",     /* padding only */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(b64(bad[i], out, sizeof(out)) == -1, "\"%s\" accepted", bad[i]);
    /* Length zero with a non-empty buffer, too. */
    ck_assert_int_eq(api_base64_decode("Zm9v", 0, out, sizeof(out)), -1);
}
END_TEST

/* ---- a node in a child process ----------------------------------------------------------------
 */

static pid_t node_pid = -1;
static uint16_t port;
static char data_dir[64];
static char demo_key[SPACE_KEY_HEX + 1];

/* A port the kernel just had free on 127.0.0.1. */
static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* The child: open a node with the demo, report readiness (and the demo key) on `ready`, run
 * until SIGTERM, and exit 0 only if shutdown left no chunk behind. */
static void node_child(int ready)
{
    log_threshold = LOG_ERROR;
    struct config cfg;
    config_defaults(&cfg);
    snprintf(cfg.listen, sizeof(cfg.listen), "127.0.0.1:%u", port);
    snprintf(cfg.data, sizeof(cfg.data), "%s/data", data_dir);
    static struct node n;
    int rc = node_open(&n, &cfg);
    if (rc == 0) rc = node_setup_demo(&n);
    if (rc < 0) {
        (void)!write(ready, "E", 1);
        _exit(2);
    }
    char msg[1 + SPACE_KEY_HEX];
    msg[0] = 'R';
    memcpy(msg + 1, n.demo_key, SPACE_KEY_HEX);
    (void)!write(ready, msg, sizeof(msg));
    close(ready);
    rc = node_run(&n);
    node_close(&n);
    _exit(rc == 0 && chunks_live() == 0 ? 0 : 3);
}

static void node_setup(void)
{
    snprintf(data_dir, sizeof(data_dir), "/tmp/api_test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data_dir));
    signal(SIGPIPE, SIG_IGN);
    /* A port found free may be taken before the node binds it: try a few. */
    for (int attempt = 0; attempt < 5; attempt++) {
        port = free_port();
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        node_pid = fork();
        ck_assert_int_ge(node_pid, 0);
        if (node_pid == 0) {
            close(p[0]);
            node_child(p[1]);
        }
        close(p[1]);
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
        char msg[1 + SPACE_KEY_HEX];
        ssize_t n = read(p[0], msg, sizeof(msg));
        close(p[0]);
        if (n == (ssize_t)sizeof(msg) && msg[0] == 'R') {
            memcpy(demo_key, msg + 1, SPACE_KEY_HEX);
            demo_key[SPACE_KEY_HEX] = '\0';
            return;
        }
        int st;
        waitpid(node_pid, &st, 0);
        node_pid = -1;
    }
    ck_abort_msg("no node could start");
}

/* Stops the node with SIGTERM and checks it shut down cleanly. */
static void node_stop(void)
{
    ck_assert_int_gt(node_pid, 0);
    ck_assert_int_eq(kill(node_pid, SIGTERM), 0);
    /* Wait for the exit on a pidfd, with a deadline. */
    int pfd = (int)syscall(SYS_pidfd_open, node_pid, 0);
    ck_assert_int_ge(pfd, 0);
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    int ready = poll(&p, 1, 10000);
    close(pfd);
    int st = 0;
    if (ready != 1) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, &st, 0);
        node_pid = -1;
        ck_abort_msg("node did not stop on SIGTERM");
    }
    ck_assert_int_eq(waitpid(node_pid, &st, 0), node_pid);
    node_pid = -1;
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void node_teardown(void)
{
    if (node_pid > 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
    }
}

static int connect_node(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

struct reply {
    int status;
    char head[4096];
    char body[65536];
    size_t body_len;
};

/* Reads from fd until `enough` says the reply is complete, EOF, or the deadline. */
static size_t read_some(int fd, char *buf, size_t cap, size_t have, int timeout_ms,
                        bool (*enough)(const char *buf, size_t len))
{
    uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;
    while (have < cap && !enough(buf, have)) {
        uint64_t now = clock_ms();
        if (now >= deadline) break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0) break;
        ssize_t n = recv(fd, buf + have, cap - have, 0);
        if (n <= 0) break;
        have += (size_t)n;
    }
    return have;
}

static bool is_complete_reply(const char *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return false;
    const char *cl = memmem(buf, (size_t)(end - buf), "Content-Length: ", 16);
    if (!cl) return false;
    size_t want = (size_t)(end + 4 - buf) + (size_t)atol(cl + 16);
    return len >= want;
}

static bool is_head_done(const char *buf, size_t len)
{
    return memmem(buf, len, "\r\n\r\n", 4) != NULL;
}

/* Sends a request and reads one complete reply (head and Content-Length body). */
static void http(const char *req, size_t req_len, struct reply *r)
{
    int fd = connect_node();
    ck_assert_int_eq(send(fd, req, req_len, MSG_NOSIGNAL), (ssize_t)req_len);
    static char buf[sizeof(r->head) + sizeof(r->body)];
    size_t len = read_some(fd, buf, sizeof(buf), 0, 5000, is_complete_reply);
    close(fd);
    ck_assert_msg(is_complete_reply(buf, len), "incomplete reply: %.*s", (int)len, buf);
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    size_t hl = (size_t)(end - buf);
    ck_assert_uint_lt(hl, sizeof(r->head));
    memcpy(r->head, buf, hl);
    r->head[hl] = '\0';
    r->body_len = len - hl - 4;
    ck_assert_uint_lt(r->body_len, sizeof(r->body));
    memcpy(r->body, end + 4, r->body_len);
    r->body[r->body_len] = '\0';
    ck_assert_int_eq(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
}

static void get(const char *path, struct reply *r)
{
    char req[512];
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    http(req, (size_t)n, r);
}

static void post(const char *path, const char *body, struct reply *r)
{
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, strlen(body), body);
    http(req, (size_t)n, r);
}

static cJSON *json_of(const struct reply *r)
{
    ck_assert_ptr_nonnull(strstr(r->head, "Content-Type: application/json"));
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    ck_assert_msg(j != NULL, "not JSON: %s", r->body);
    return j;
}

static const char *str_of(cJSON *o, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string", name);
    return v->valuestring;
}

START_TEST(node_spaces_json)
{
    struct reply r;
    get("/api/spaces", &r);
    ck_assert_int_eq(r.status, 200);
    cJSON *j = json_of(&r);
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "spaces");
    ck_assert(cJSON_IsArray(arr));
    ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
    cJSON *demo = cJSON_GetArrayItem(arr, 0);
    ck_assert_str_eq(str_of(demo, "id"), "demo");
    ck_assert_str_eq(str_of(demo, "state"), "live");
    ck_assert_str_eq(str_of(demo, "listen"), "/spaces/demo/live.opus");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(demo, "has_publisher")));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(demo, "host_key"));
    /* no edges, not an edge: no failover nodes (api_nodes_json) */
    cJSON *nodes = cJSON_GetObjectItemCaseSensitive(demo, "nodes");
    ck_assert(cJSON_IsArray(nodes));
    ck_assert_int_eq(cJSON_GetArraySize(nodes), 0);
    cJSON_Delete(j);

    /* Create: 201 with the key, shown once. */
    post("/api/spaces", "{\"title\": \"Hello \\u00e9\", \"starts_at\": 1900000000}", &r);
    ck_assert_int_eq(r.status, 201);
    j = json_of(&r);
    char id[SPACE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", str_of(j, "id"));
    ck_assert(space_id_is_valid(id, strlen(id)));
    const char *key = str_of(j, "host_key");
    ck_assert_uint_eq(strlen(key), SPACE_KEY_HEX);
    ck_assert_uint_eq(strspn(key, "0123456789abcdef"), SPACE_KEY_HEX);
    ck_assert_str_eq(str_of(j, "title"), "Hello \xc3\xa9");
    ck_assert_str_eq(str_of(j, "state"), "scheduled");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(j, "starts_at")->valuedouble, 1900000000);
    cJSON_Delete(j);

    /* Read back: same record, no key. */
    char path[128];
    snprintf(path, sizeof(path), "/api/spaces/%s", id);
    get(path, &r);
    ck_assert_int_eq(r.status, 200);
    j = json_of(&r);
    ck_assert_str_eq(str_of(j, "id"), id);
    ck_assert_str_eq(str_of(j, "title"), "Hello \xc3\xa9");
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "host_key"));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "has_publisher")));
    cJSON_Delete(j);

    /* The list now has both, oldest first. */
    get("/api/spaces", &r);
    j = json_of(&r);
    arr = cJSON_GetObjectItemCaseSensitive(j, "spaces");
    ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
    ck_assert_str_eq(str_of(cJSON_GetArrayItem(arr, 1), "id"), id);
    cJSON_Delete(j);
    node_stop();
}
END_TEST

START_TEST(node_errors)
{
    struct reply r;
    get("/api/spaces/nope", &r);
    ck_assert_int_eq(r.status, 404);
    cJSON_Delete(json_of(&r));
    get("/api/spaces/bad%20id", &r);
    ck_assert_int_eq(r.status, 404);
    get("/no/such/page", &r);
    ck_assert_int_eq(r.status, 404);
    static const char *bodies[] = {
        "not json",          "[1,2]",          "{}",
        "{\"title\": \"\"}", "{\"title\": 5}", "{\"title\": \"x\", \"starts_at\": -1}"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        post("/api/spaces", bodies[i], &r);
        ck_assert_msg(r.status == 400, "%s: %d", bodies[i], r.status);
        cJSON *j = json_of(&r);
        ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "error")));
        cJSON_Delete(j);
    }
    /* Nothing was created by the refused requests. */
    get("/api/spaces", &r);
    cJSON *j = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "spaces")), 1);
    cJSON_Delete(j);
    static const char del[] = "DELETE /api/spaces HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    http(del, sizeof(del) - 1, &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_ptr_nonnull(strstr(r.head, "\r\nAllow: "));
    ck_assert_ptr_nonnull(strstr(r.head, "POST"));
    node_stop();
}
END_TEST

/* "Authorization: Basic base64(user:password)" */
static void basic(const char *user, const char *password, char *out, size_t cap)
{
    char plain[128];
    int n = snprintf(plain, sizeof(plain), "%s:%s", user, password);
    unsigned char enc[256];
    EVP_EncodeBlock(enc, (const unsigned char *)plain, n);
    snprintf(out, cap, "%s", (const char *)enc);
}

static int publish_status(const char *auth)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "PUT /spaces/demo/live.opus HTTP/1.1\r\nHost: t\r\n%s%s%s"
                     "Content-Type: audio/ogg\r\nExpect: 100-continue\r\n\r\n",
                     auth ? "Authorization: Basic " : "", auth ? auth : "", auth ? "\r\n" : "");
    int fd = connect_node();
    ck_assert_int_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    char buf[2048];
    size_t len = read_some(fd, buf, sizeof(buf) - 1, 0, 5000, is_head_done);
    buf[len] = '\0';
    close(fd);
    int status = 0;
    ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", &status), 1);
    if (status == 401) ck_assert_ptr_nonnull(strstr(buf, "WWW-Authenticate: Basic"));
    return status;
}

START_TEST(node_publish_auth)
{
    char auth[256];
    ck_assert_int_eq(publish_status(NULL), 401);
    basic("source", "0123456789abcdef0123456789abcdef", auth, sizeof(auth));
    ck_assert_int_eq(publish_status(auth), 401);
    ck_assert_int_eq(publish_status("not base64!"), 401);
    /* The right key, under a user name whose encoding needs padding ("==" at the end). */
    basic("s", demo_key, auth, sizeof(auth));
    ck_assert_uint_eq(strlen(auth) % 4, 0);
    ck_assert_ptr_nonnull(strstr(auth, "=="));
    ck_assert_int_eq(publish_status(auth), 100);
    /* And the usual "source" user (no padding). */
    basic("source", demo_key, auth, sizeof(auth));
    ck_assert_int_eq(publish_status(auth), 100);
    node_stop();
}
END_TEST

static bool has_ogg_pages(const char *buf, size_t len)
{
    /* The head, then OpusHead, OpusTags and at least two audio pages. */
    int pages = 0;
    for (const char *p = buf; (p = memmem(p, len - (size_t)(p - buf), "OggS", 4)); p += 4)
        pages++;
    return pages >= 4;
}

START_TEST(node_listen_demo)
{
    static const char req[] = "GET /spaces/demo/live.opus HTTP/1.1\r\nHost: t\r\n\r\n";
    int fd = connect_node();
    ck_assert_int_eq(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
    static char buf[65536];
    size_t len = read_some(fd, buf, sizeof(buf), 0, 5000, has_ogg_pages);
    close(fd);
    ck_assert(has_ogg_pages(buf, len));
    ck_assert_int_eq(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17), 0);
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    ck_assert_ptr_nonnull(end);
    ck_assert_ptr_nonnull(memmem(buf, (size_t)(end - buf), "Content-Type: audio/ogg", 23));
    /* The body starts with the OpusHead page. */
    ck_assert_int_eq(memcmp(end + 4, "OggS", 4), 0);
    ck_assert_int_eq(memcmp(end + 4 + 28, "OpusHead", 8), 0);
    node_stop();
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("base64");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, base64_valid);
    tcase_add_test(tc, base64_fits_cap);
    tcase_add_test(tc, base64_invalid);
    suite_add_tcase(s, tc);
    tc = tcase_create("node");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, node_setup, node_teardown);
    tcase_add_test(tc, node_spaces_json);
    tcase_add_test(tc, node_errors);
    tcase_add_test(tc, node_publish_auth);
    tcase_add_test(tc, node_listen_demo);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(api_suite());
}
