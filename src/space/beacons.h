/* struct beacons: the HLS players of one space, as they report themselves.
 *
 * An HLS player behind a cache never talks to the origin's listener code, so
 * it is counted from its beacons (POST /api/spaces/{id}/beacon, every 10 s):
 * a session id chosen by the player, whether it is playing, the seconds it
 * has buffered, and its stall count so far. One entry per session (a second
 * beacon of the same session updates it: deduplicated), forgotten
 * BEACONS_EXPIRE_MS after its last beacon (counted as left).
 *
 * A session's state, from its last beacon (DESIGN.md, Accounting):
 *   not playing                                   -> waiting
 *   playing, buffered > 0, no stall since the one before -> hearing
 *   playing otherwise (stalled, or empty buffer)  -> lagging
 *
 * Table: open addressing with linear probing on a hash of the session text,
 * capacity a power of two, kept at most half full (grown by rehashing).
 * Expiry is a sweep over the slots (O(capacity), once a second) that
 * deletes by backward shift (no tombstones); the table shrinks by rehashing
 * when it is under 1/8 full. Gauges are kept up to date on every change, so reading them costs
 * nothing. Thread: the master loop.
 */
#ifndef TRIBUNE_SPACE_BEACONS_H
#define TRIBUNE_SPACE_BEACONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    BEACONS_EXPIRE_MS = 30000,
    BEACONS_SESSION_MAX = 64, /* characters of a session id */
    BEACONS_MAX = 1 << 20,    /* sessions per space */
};

enum beacon_state { BEACON_WAITING, BEACON_HEARING, BEACON_LAGGING };

struct beacon {
    char session[BEACONS_SESSION_MAX + 1]; /* "" = a free slot */
    uint64_t last_ms;                      /* loop time of its last beacon */
    uint32_t stalls;                       /* as last reported */
    uint8_t state;                         /* enum beacon_state */
};

struct beacons {
    struct beacon *slots; /* private: cap entries, NULL before the first beacon */
    size_t cap;           /* private */
    size_t count;         /* read-only: sessions known now */
    uint64_t by_state[3]; /* read-only: sessions by enum beacon_state */
    uint64_t joined;      /* read-only: sessions seen, since start */
    uint64_t left;        /* read-only: sessions expired, since start */
    uint64_t beacons;     /* read-only: beacons accepted, since start */
};

void beacons_init(struct beacons *b);
void beacons_fini(struct beacons *b);
/* True for a usable session id: 8 to BEACONS_SESSION_MAX characters of
 * [A-Za-z0-9_-]. Pure. */
bool beacons_session_is_valid(const char *s, size_t len);
/* Records a beacon of session `s` (valid, len bytes) at loop time `now_ms`.
 * 0, -ENOSPC (BEACONS_MAX sessions already) or -ENOMEM. */
int beacons_note(struct beacons *b, const char *s, size_t len, uint64_t now_ms, bool is_playing,
                 double buffered_s, uint32_t stalls);
/* Forgets sessions silent for BEACONS_EXPIRE_MS at `now_ms`. */
void beacons_sweep(struct beacons *b, uint64_t now_ms);

#endif
