/* Join tickets (DESIGN.md, Guard; issue 5 item 5): short-lived, HMAC-signed
 * permissions to join one space, for spaces whose host requires them.
 *
 *   GET /api/spaces/{id}/ticket --ticket_sign()--> "demo.1764633600.<43 chars>"
 *   GET /spaces/{id}/live.opus?ticket=T --ticket_from_url(), ticket_verify()--> OK or 403
 *
 * Format: `<space id>.<expires_at>.<mac>`, all of it URL-safe as it stands
 * (no percent-encoding needed):
 *   - space id: [A-Za-z0-9_-]{1,32} (never holds a '.');
 *   - expires_at: unix seconds, decimal, 1 to 12 digits, no leading zero;
 *   - mac: HMAC-SHA256 under the node's secret over the bytes before the
 *     second '.', i.e. "<space id>.<expires_at>", in base64url without
 *     padding (43 characters).
 * The signed text is the ticket's own prefix, and its two fields cannot run
 * into each other ('.' is in neither), so two different (space, expiry) pairs
 * never sign the same bytes.
 *
 * Verification: the shape first (cheap: a join with garbage costs a scan of
 * at most TICKET_MAX bytes), then the space (a ticket for another space is
 * refused before any hashing), then the MAC, recomputed and compared as text
 * with CRYPTO_memcmp (time independent of where it differs), and only then
 * the expiry, so that TICKET_EXPIRED always names a genuine ticket. A ticket
 * is valid while now < expires_at.
 *
 * The secret: TICKET_KEY_BYTES random bytes kept in `<data>/ticket.key` (mode
 * 0600), made at the first start (ticket_key_load). The master reads it and
 * sends it to each worker over its channel (CHAN_TICKET_KEY); it is never
 * logged. Deleting the file invalidates every ticket at the next start.
 *
 * Thread: any; everything but ticket_key_load is pure (no allocation in
 * ticket_from_url, one HMAC in sign and verify). Errors: negative errno.
 */
#ifndef TRIBUNE_GUARD_TICKET_H
#define TRIBUNE_GUARD_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    TICKET_KEY_BYTES = 32,
    TICKET_MAC_CHARS = 43,     /* base64url of 32 bytes, unpadded */
    TICKET_EXPIRY_DIGITS = 12, /* up to year 33658 */
    TICKET_SPACE_MAX = 32,     /* SPACE_ID_MAX */
    TICKET_MAX = TICKET_SPACE_MAX + 1 + TICKET_EXPIRY_DIGITS + 1 + TICKET_MAC_CHARS,
};

struct ticket_key {
    unsigned char bytes[TICKET_KEY_BYTES];
};

enum ticket_verdict {
    TICKET_OK,
    TICKET_MISSING,     /* no ticket given */
    TICKET_MALFORMED,   /* not <space>.<expires_at>.<43 base64url chars> */
    TICKET_WRONG_SPACE, /* well formed, for another space */
    TICKET_BAD_MAC,     /* not signed by this node's secret (tampered, or an old secret) */
    TICKET_EXPIRED,     /* genuine, and expired */
};

/* Writes the ticket for space `space` (len bytes, a valid space id) expiring
 * at `expires_at` (unix seconds, 1 to 10^12 - 1) to `out` with a NUL. Returns
 * its length (at most TICKET_MAX), or -EINVAL for a bad space, expiry, or a
 * `cap` below the length + 1, or -EIO if the HMAC failed. */
int ticket_sign(const struct ticket_key *k, const char *space, size_t len, int64_t expires_at,
                char *out, size_t cap);

/* Checks ticket `t` (tlen bytes, any content; NULL or 0 is TICKET_MISSING)
 * for a join to `space` (len bytes) at `now` (unix seconds). */
enum ticket_verdict ticket_verify(const struct ticket_key *k, const char *space, size_t len,
                                  const char *t, size_t tlen, int64_t now);

/* Finds the value of the query parameter `ticket` in a request target
 * (`/path?a=1&ticket=T&b=2`): true and *t, *tlen (inside url, not decoded)
 * if present (the first one wins), false if not. Pure. */
bool ticket_from_url(const char *url, size_t len, const char **t, size_t *tlen);

/* Why a verdict refuses, for the 403's body ("ticket expired"...). */
const char *ticket_verdict_text(enum ticket_verdict v);

/* Reads the node's secret from `path` (exactly TICKET_KEY_BYTES bytes), or
 * when the file does not exist creates it (random bytes, mode 0600, written
 * to a temporary file and renamed, so that a crash never leaves half a key).
 * 0, or a negative errno (logged; the file is never printed). */
int ticket_key_load(const char *path, struct ticket_key *k);

#endif
