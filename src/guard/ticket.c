/* Join tickets: see ticket.h for the format and the order of the checks. */
#include "guard/ticket.h"
#include "http/route.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/log.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static bool is_space_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static bool is_space_id(const char *s, size_t len)
{
    if (!s || len == 0 || len > TICKET_SPACE_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if (!is_space_char(s[i])) return false;
    return true;
}

/* 32 bytes as 43 base64url characters (no padding; the last one carries 4
 * bits and 2 zero bits). */
static void encode_mac(const unsigned char mac[32], char out[TICKET_MAC_CHARS])
{
    size_t o = 0;
    for (size_t i = 0; i < 30; i += 3) {
        uint32_t v = (uint32_t)mac[i] << 16 | (uint32_t)mac[i + 1] << 8 | mac[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    uint32_t v = (uint32_t)mac[30] << 16 | (uint32_t)mac[31] << 8;
    out[o++] = b64url[v >> 18 & 63];
    out[o++] = b64url[v >> 12 & 63];
    out[o++] = b64url[v >> 6 & 63];
}

/* SHA-256, fetched once per process: HMAC() would fetch the HMAC and digest
 * implementations on every call, which costs more than the hashing. The
 * pointer stays reachable until exit (processes here are single-threaded). */
static const EVP_MD *sha256(void)
{
    static EVP_MD *md;
    if (!md) md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    return md;
}

/* HMAC-SHA256 (RFC 2104) of `msg` (at most TICKET_MAX bytes) under the
 * 32-byte key: H((K ^ opad) || H((K ^ ipad) || msg)), four compression blocks
 * for a ticket. Checked against OpenSSL's HMAC() in the unit test. */
static bool hmac_sha256(const struct ticket_key *k, const char *msg, size_t len,
                        unsigned char out[32])
{
    enum { BLOCK = 64 };
    unsigned char in[BLOCK + TICKET_MAX], outer[BLOCK + 32];
    const EVP_MD *md = sha256();
    if (!md || len > TICKET_MAX) return false;
    memset(in, 0x36, BLOCK);
    memset(outer, 0x5c, BLOCK);
    for (size_t i = 0; i < TICKET_KEY_BYTES; i++) {
        in[i] ^= k->bytes[i];
        outer[i] ^= k->bytes[i];
    }
    memcpy(in + BLOCK, msg, len);
    bool ok = EVP_Digest(in, BLOCK + len, outer + BLOCK, NULL, md, NULL) == 1 &&
              EVP_Digest(outer, sizeof(outer), out, NULL, md, NULL) == 1;
    OPENSSL_cleanse(in, BLOCK);
    OPENSSL_cleanse(outer, sizeof(outer));
    return ok;
}

/* The MAC of `msg` as text; false if OpenSSL failed. */
static bool mac_text(const struct ticket_key *k, const char *msg, size_t len,
                     char out[TICKET_MAC_CHARS])
{
    unsigned char mac[32];
    if (!hmac_sha256(k, msg, len, mac)) return false;
    encode_mac(mac, out);
    OPENSSL_cleanse(mac, sizeof(mac));
    return true;
}

int ticket_sign(const struct ticket_key *k, const char *space, size_t len, int64_t expires_at,
                char *out, size_t cap)
{
    if (!is_space_id(space, len) || expires_at < 1 || expires_at > 999999999999LL) return -EINVAL;
    char head[TICKET_SPACE_MAX + 1 + TICKET_EXPIRY_DIGITS + 1];
    int hl = snprintf(head, sizeof(head), "%.*s.%lld", (int)len, space, (long long)expires_at);
    if (hl < 0 || (size_t)hl >= sizeof(head)) return -EINVAL;
    size_t total = (size_t)hl + 1 + TICKET_MAC_CHARS;
    if (!out || cap < total + 1) return -EINVAL;
    char mac[TICKET_MAC_CHARS];
    if (!mac_text(k, head, (size_t)hl, mac)) return -EIO;
    memcpy(out, head, (size_t)hl);
    out[hl] = '.';
    memcpy(out + hl + 1, mac, TICKET_MAC_CHARS);
    out[total] = '\0';
    return (int)total;
}

/* Parses "<digits>" strictly: 1 to TICKET_EXPIRY_DIGITS digits, no leading
 * zero. */
static bool parse_expiry(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > TICKET_EXPIRY_DIGITS || s[0] == '0') return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool is_mac_text(const char *s, size_t len)
{
    if (len != TICKET_MAC_CHARS) return false;
    for (size_t i = 0; i < len; i++)
        if (!is_space_char(s[i])) return false; /* the same alphabet: [A-Za-z0-9_-] */
    return true;
}

enum ticket_verdict ticket_verify(const struct ticket_key *k, const char *space, size_t len,
                                  const char *t, size_t tlen, int64_t now)
{
    if (!t || tlen == 0) return TICKET_MISSING;
    if (tlen > TICKET_MAX) return TICKET_MALFORMED;
    const char *dot1 = memchr(t, '.', tlen);
    if (!dot1) return TICKET_MALFORMED;
    size_t slen = (size_t)(dot1 - t);
    const char *e = dot1 + 1;
    const char *dot2 = memchr(e, '.', tlen - slen - 1);
    if (!dot2) return TICKET_MALFORMED;
    size_t elen = (size_t)(dot2 - e), hlen = (size_t)(dot2 - t);
    int64_t expires_at;
    if (!is_space_id(t, slen) || !parse_expiry(e, elen, &expires_at) ||
        !is_mac_text(dot2 + 1, tlen - hlen - 1))
        return TICKET_MALFORMED;
    if (slen != len || memcmp(t, space, len) != 0) return TICKET_WRONG_SPACE;
    char mac[TICKET_MAC_CHARS];
    if (!mac_text(k, t, hlen, mac)) return TICKET_BAD_MAC;
    if (CRYPTO_memcmp(mac, dot2 + 1, TICKET_MAC_CHARS) != 0) return TICKET_BAD_MAC;
    return now < expires_at ? TICKET_OK : TICKET_EXPIRED;
}

bool ticket_from_url(const char *url, size_t len, const char **t, size_t *tlen)
{
    return route_query(url, len, "ticket", t, tlen);
}

const char *ticket_verdict_text(enum ticket_verdict v)
{
    switch (v) {
    case TICKET_OK:
        return "ticket valid";
    case TICKET_MISSING:
        return "this space requires a join ticket: GET /api/spaces/{id}/ticket";
    case TICKET_MALFORMED:
        return "malformed ticket: fetch a new one";
    case TICKET_WRONG_SPACE:
        return "ticket for another space";
    case TICKET_BAD_MAC:
        return "invalid ticket: fetch a new one";
    case TICKET_EXPIRED:
        return "ticket expired: fetch a new one";
    }
    return "invalid ticket";
}

/* ---- the node's secret ---- */

static int read_key(int fd, const char *path, struct ticket_key *k)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
        log_warn("%s is readable by others (mode %03o): chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
    unsigned char buf[TICKET_KEY_BYTES + 1];
    ssize_t n = read(fd, buf, sizeof(buf));
    int err = 0;
    if (n != TICKET_KEY_BYTES) {
        log_error("%s: expected %d bytes: delete it to make a new secret", path, TICKET_KEY_BYTES);
        err = -EINVAL;
    } else {
        memcpy(k->bytes, buf, TICKET_KEY_BYTES);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return err;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? -errno : -EIO;
        p += n, len -= (size_t)n;
    }
    return 0;
}

static int create_key(const char *path, struct ticket_key *k)
{
    char tmp[1024];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) return -ENAMETOOLONG;
    if (RAND_bytes(k->bytes, TICKET_KEY_BYTES) != 1) {
        log_error("ticket key: RAND_bytes failed");
        return -EIO;
    }
    unlink(tmp); /* left by a crash between create and rename */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int err = fd < 0 ? -errno : write_all(fd, k->bytes, TICKET_KEY_BYTES);
    if (err == 0 && fsync(fd) < 0) err = -errno;
    if (fd >= 0 && close(fd) < 0 && err == 0) err = -errno;
    if (err == 0 && rename(tmp, path) < 0) err = -errno;
    if (err < 0) {
        log_error("cannot create %s: %s", path, strerror(-err));
        unlink(tmp);
        return err;
    }
    log_info("created a new ticket secret in %s", path);
    return 0;
}

int ticket_key_load(const char *path, struct ticket_key *k)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return create_key(path, k);
    if (fd < 0) {
        int err = -errno;
        log_error("cannot open %s: %s", path, strerror(-err));
        return err;
    }
    int err = read_key(fd, path, k);
    close(fd);
    return err;
}
