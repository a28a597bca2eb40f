/* Unit tests for guard/ticket.c: sign and verify, the expiry boundary, every
 * byte tampered with, another space, malformed input, the query parameter,
 * the constant-time comparison (CRYPTO_memcmp is interposed and counted), the
 * secret's file, and the cost of refusing a bad ticket (printed, not
 * asserted). */
#include "guard/ticket.h"

#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../harness.h"

/* Every CRYPTO_memcmp of the process comes here first (the executable's
 * definition wins over libcrypto's), is counted, and goes on to the real one. */
static unsigned memcmp_calls;
static size_t memcmp_last_len;

int CRYPTO_memcmp(const void *a, const void *b, size_t len)
{
    static int (*real)(const void *, const void *, size_t);
    if (!real)
        real = (int (*)(const void *, const void *, size_t))dlsym(RTLD_NEXT, "CRYPTO_memcmp");
    memcmp_calls++;
    memcmp_last_len = len;
    return real(a, b, len);
}

static const struct ticket_key key = {{1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                       12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                       23, 24, 25, 26, 27, 28, 29, 30, 31, 32}};

enum { NOW = 1764633600 };

static int sign(const char *space, int64_t exp, char *out)
{
    return ticket_sign(&key, space, strlen(space), exp, out, TICKET_MAX + 1);
}

static enum ticket_verdict verify(const char *space, const char *t, int64_t now)
{
    return ticket_verify(&key, space, strlen(space), t, t ? strlen(t) : 0, now);
}

START_TEST(sign_and_verify)
{
    char t[TICKET_MAX + 1];
    int n = sign("demo", NOW + 60, t);
    ck_assert_int_eq(n, (int)strlen(t));
    ck_assert_int_eq(n, 4 + 1 + 10 + 1 + TICKET_MAC_CHARS);
    ck_assert(strncmp(t, "demo.1764633660.", 16) == 0);
    for (const char *p = t; *p; p++) /* URL-safe as it stands */
        ck_assert(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", *p));
    ck_assert_int_eq(verify("demo", t, NOW), TICKET_OK);
    /* deterministic: the same inputs sign the same */
    char u[TICKET_MAX + 1];
    sign("demo", NOW + 60, u);
    ck_assert_str_eq(t, u);
    /* the longest space id fits TICKET_MAX */
    char id[33];
    memset(id, 'x', 32);
    id[32] = 0;
    ck_assert_int_le(sign(id, 999999999999LL, t), TICKET_MAX);
    ck_assert_int_eq(verify(id, t, NOW), TICKET_OK);
    /* another secret does not accept it */
    struct ticket_key other = key;
    other.bytes[31] ^= 1;
    ck_assert_int_eq(ticket_verify(&other, id, 32, t, strlen(t), NOW), TICKET_BAD_MAC);
}
END_TEST

/* The MAC is standard HMAC-SHA256 (an edge script could mint tickets with
 * any HMAC library): checked against OpenSSL's HMAC() on every length. */
START_TEST(mac_is_hmac_sha256)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char id[33];
    for (size_t len = 1; len <= 32; len++) {
        for (size_t i = 0; i < len; i++)
            id[i] = "abcXYZ019_-"[(i * 7 + len) % 11];
        id[len] = 0;
        int64_t exp = 1 + (int64_t)len * 3141592653LL;
        char t[TICKET_MAX + 1];
        int n = sign(id, exp, t);
        ck_assert_int_gt(n, 0);
        size_t head = (size_t)n - TICKET_MAC_CHARS - 1;
        unsigned char mac[32];
        unsigned int mlen = 0;
        ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key.bytes, TICKET_KEY_BYTES,
                                   (const unsigned char *)t, head, mac, &mlen));
        ck_assert_uint_eq(mlen, 32);
        char want[TICKET_MAC_CHARS + 1];
        for (int i = 0, o = 0; i < 32; i += 3) {
            uint32_t v = (uint32_t)mac[i] << 16 | (i + 1 < 32 ? (uint32_t)mac[i + 1] << 8 : 0) |
                         (i + 2 < 32 ? mac[i + 2] : 0);
            for (int j = 0; j < 4 && o < TICKET_MAC_CHARS; j++)
                want[o++] = b64[v >> (18 - 6 * j) & 63];
        }
        want[TICKET_MAC_CHARS] = 0;
        ck_assert_str_eq(t + head + 1, want);
    }
}
END_TEST

START_TEST(sign_rejects_bad_input)
{
    char t[TICKET_MAX + 1];
    ck_assert_int_eq(sign("", NOW, t), -EINVAL);
    ck_assert_int_eq(sign("a.b", NOW, t), -EINVAL);
    ck_assert_int_eq(sign("a/b", NOW, t), -EINVAL);
    ck_assert_int_eq(sign("demo", 0, t), -EINVAL);
    ck_assert_int_eq(sign("demo", -5, t), -EINVAL);
    ck_assert_int_eq(sign("demo", 1000000000000LL, t), -EINVAL);
    char id[34];
    memset(id, 'x', 33);
    id[33] = 0;
    ck_assert_int_eq(sign(id, NOW, t), -EINVAL);
    char small[20];
    ck_assert_int_eq(ticket_sign(&key, "demo", 4, NOW, small, sizeof(small)), -EINVAL);
}
END_TEST

START_TEST(expiry_boundary)
{
    char t[TICKET_MAX + 1];
    sign("demo", NOW + 60, t);
    ck_assert_int_eq(verify("demo", t, NOW + 59), TICKET_OK);
    ck_assert_int_eq(verify("demo", t, NOW + 60), TICKET_EXPIRED);
    ck_assert_int_eq(verify("demo", t, NOW + 61), TICKET_EXPIRED);
    ck_assert_int_eq(verify("demo", t, 0), TICKET_OK);
}
END_TEST

/* Changing any byte to any other value refuses the ticket: the MAC covers
 * the space and expiry, and the MAC's own characters are compared in full. */
START_TEST(tampering_any_byte_fails)
{
    char t[TICKET_MAX + 1];
    int n = sign("room-7", NOW + 60, t);
    for (int i = 0; i < n; i++) {
        for (int v = 1; v < 256; v++) {
            if (v == (unsigned char)t[i]) continue;
            char u[TICKET_MAX + 1];
            memcpy(u, t, (size_t)n + 1);
            u[i] = (char)v;
            enum ticket_verdict r = ticket_verify(&key, "room-7", 6, u, (size_t)n, NOW);
            ck_assert_msg(r != TICKET_OK, "byte %d set to %d still verifies", i, v);
        }
    }
    /* a longer future expiry with the old MAC */
    char u[TICKET_MAX + 1];
    snprintf(u, sizeof(u), "room-7.%d%s", NOW + 600, t + 6 + 1 + 10);
    ck_assert_int_eq(verify("room-7", u, NOW + 100), TICKET_BAD_MAC);
    /* truncated or extended */
    for (int len = 0; len < n; len++)
        ck_assert_int_ne(ticket_verify(&key, "room-7", 6, t, (size_t)len, NOW), TICKET_OK);
    char longer[TICKET_MAX + 2];
    snprintf(longer, sizeof(longer), "%sA", t);
    ck_assert_int_eq(verify("room-7", longer, NOW), TICKET_MALFORMED);
}
END_TEST

START_TEST(wrong_space)
{
    char t[TICKET_MAX + 1];
    sign("alpha", NOW + 60, t);
    ck_assert_int_eq(verify("beta", t, NOW), TICKET_WRONG_SPACE);
    ck_assert_int_eq(verify("alph", t, NOW), TICKET_WRONG_SPACE);
    ck_assert_int_eq(verify("alphaa", t, NOW), TICKET_WRONG_SPACE);
    ck_assert_int_eq(verify("Alpha", t, NOW), TICKET_WRONG_SPACE);
    /* the space part rewritten to the target's: the MAC no longer matches */
    char u[TICKET_MAX + 1];
    snprintf(u, sizeof(u), "gamma%s", t + 5);
    ck_assert_int_eq(verify("gamma", u, NOW), TICKET_BAD_MAC);
}
END_TEST

START_TEST(malformed)
{
    static const char *const bad[] = {
        ".",
        "..",
        "demo",
        "demo.",
        "demo.1764633660",
        "demo.1764633660.",
        "demo..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ".1764633660.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "demo.01764633660.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "demo.-1764633660.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "demo.1764633660x.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "demo.1234567890123.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "demo.1764633660.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "demo.1764633660.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "demo.1764633660.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "demo.1764633660.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
        "demo.1764633660.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/",
        "demo.1764633660.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.A",
        "de%6Do.1764633660.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(verify("demo", bad[i], NOW) == TICKET_MALFORMED, "%s", bad[i]);
    ck_assert_int_eq(verify("demo", NULL, NOW), TICKET_MISSING);
    ck_assert_int_eq(verify("demo", "", NOW), TICKET_MISSING);
    /* a NUL inside */
    char t[TICKET_MAX + 1];
    int n = sign("demo", NOW + 60, t);
    t[2] = '\0';
    ck_assert_int_eq(ticket_verify(&key, "demo", 4, t, (size_t)n, NOW), TICKET_MALFORMED);
    /* huge input is refused on its length alone */
    static char big[1 << 16];
    memset(big, 'a', sizeof(big));
    ck_assert_int_eq(ticket_verify(&key, "demo", 4, big, sizeof(big), NOW), TICKET_MALFORMED);
}
END_TEST

START_TEST(constant_time_compare_used)
{
    char t[TICKET_MAX + 1];
    int n = sign("demo", NOW + 60, t);
    memcmp_calls = 0;
    ck_assert_int_eq(verify("demo", t, NOW), TICKET_OK);
    ck_assert_uint_eq(memcmp_calls, 1);
    ck_assert_uint_eq(memcmp_last_len, TICKET_MAC_CHARS);
    t[n - 1] = t[n - 1] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(verify("demo", t, NOW), TICKET_BAD_MAC);
    ck_assert_uint_eq(memcmp_calls, 2);
    t[n - TICKET_MAC_CHARS] = t[n - TICKET_MAC_CHARS] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(verify("demo", t, NOW), TICKET_BAD_MAC);
    ck_assert_uint_eq(memcmp_calls, 3);
}
END_TEST

START_TEST(query_parameter)
{
    const char *t;
    size_t len;
#define FIND(url) ticket_from_url(url, strlen(url), &t, &len)
    ck_assert(!FIND("/spaces/demo/live.opus"));
    ck_assert(!FIND("/spaces/demo/live.opus?"));
    ck_assert(!FIND("/spaces/demo/live.opus?tickets=1"));
    ck_assert(!FIND("/spaces/demo/live.opus?xticket=1"));
    ck_assert(!FIND("/spaces/demo/live.opus?a=1#ticket=2"));
    ck_assert(FIND("/spaces/demo/live.opus?ticket=abc"));
    ck_assert(len == 3 && memcmp(t, "abc", 3) == 0);
    ck_assert(FIND("/s?a=1&ticket=xyz&b=2"));
    ck_assert(len == 3 && memcmp(t, "xyz", 3) == 0);
    ck_assert(FIND("/s?ticket=&ticket=x"));
    ck_assert_uint_eq(len, 0);
    ck_assert(FIND("/s?b&&ticket=q#frag"));
    ck_assert(len == 1 && t[0] == 'q');
#undef FIND
}
END_TEST

START_TEST(key_file)
{
    char dir[] = "/tmp/tribune-ticket-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/ticket.key", dir);
    struct ticket_key a, b;
    ck_assert_int_eq(ticket_key_load(path, &a), 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_size, TICKET_KEY_BYTES);
    ck_assert_int_eq(ticket_key_load(path, &b), 0); /* read back, not remade */
    ck_assert(memcmp(a.bytes, b.bytes, TICKET_KEY_BYTES) == 0);
    static const unsigned char zero[TICKET_KEY_BYTES];
    ck_assert(memcmp(a.bytes, zero, TICKET_KEY_BYTES) != 0);
    /* a file of the wrong size is refused, not used */
    FILE *f = fopen(path, "w");
    fputs("short", f);
    fclose(f);
    ck_assert_int_eq(ticket_key_load(path, &b), -EINVAL);
    unlink(path);
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/no/such/dir/ticket.key", dir);
    ck_assert_int_lt(ticket_key_load(missing, &b), 0);
    rmdir(dir);
}
END_TEST

static double ns_per(enum ticket_verdict want, const char *t, int rounds)
{
    struct timespec a, b;
    size_t len = t ? strlen(t) : 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int wrong = 0; /* no ck_assert in the loop: Check's bookkeeping costs more than a verify */
    for (int i = 0; i < rounds; i++)
        wrong += ticket_verify(&key, "demo", 4, t, len, NOW) != want;
    clock_gettime(CLOCK_MONOTONIC, &b);
    ck_assert_int_eq(wrong, 0);
    return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / rounds;
}

/* What a refusal costs the worker (printed for docs, not asserted). */
START_TEST(cost_of_refusal)
{
    char t[TICKET_MAX + 1];
    int n = sign("demo", NOW + 60, t);
    double missing = ns_per(TICKET_MISSING, NULL, 200000);
    double garbage = ns_per(TICKET_MALFORMED, "demo.xyz.not-a-ticket", 200000);
    char other[TICKET_MAX + 1];
    ticket_sign(&key, "other", 5, NOW + 60, other, sizeof(other));
    double wrong = ns_per(TICKET_WRONG_SPACE, other, 200000);
    char last = t[n - 1];
    t[n - 1] = last == 'A' ? 'B' : 'A';
    double forged = ns_per(TICKET_BAD_MAC, t, 20000);
    t[n - 1] = last;
    double good = ns_per(TICKET_OK, t, 20000);
    printf("ticket_verify: missing %.0f ns, malformed %.0f ns, wrong space %.0f ns, "
           "forged MAC %.0f ns, valid %.0f ns\n",
           missing, garbage, wrong, forged, good);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ticket");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sign_and_verify);
    tcase_add_test(tc, mac_is_hmac_sha256);
    tcase_add_test(tc, sign_rejects_bad_input);
    tcase_add_test(tc, expiry_boundary);
    tcase_add_test(tc, tampering_any_byte_fails);
    tcase_add_test(tc, wrong_space);
    tcase_add_test(tc, malformed);
    tcase_add_test(tc, constant_time_compare_used);
    tcase_add_test(tc, query_parameter);
    tcase_add_test(tc, key_file);
    tcase_add_test(tc, cost_of_refusal);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
