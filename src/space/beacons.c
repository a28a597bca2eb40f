#include "space/beacons.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void beacons_init(struct beacons *b)
{
    memset(b, 0, sizeof(*b));
}

void beacons_fini(struct beacons *b)
{
    free(b->slots);
    b->slots = NULL;
    b->cap = 0;
}

bool beacons_session_is_valid(const char *s, size_t len)
{
    if (len < 8 || len > BEACONS_SESSION_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

/* FNV-1a, 64 bits. */
static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* The slot holding `s`, or the free slot where it would go. */
static struct beacon *probe(struct beacon *slots, size_t cap, const char *s, size_t len)
{
    size_t i = (size_t)hash(s, len) & (cap - 1);
    for (;;) {
        struct beacon *e = &slots[i];
        if (!e->session[0] || (strlen(e->session) == len && memcmp(e->session, s, len) == 0))
            return e;
        i = (i + 1) & (cap - 1);
    }
}

/* Moves every entry into a fresh table of `cap` slots. */
static int rehash(struct beacons *b, size_t cap)
{
    struct beacon *slots = calloc(cap, sizeof(*slots));
    if (!slots) return -ENOMEM;
    for (size_t i = 0; i < b->cap; i++) {
        struct beacon *e = &b->slots[i];
        if (!e->session[0]) continue;
        *probe(slots, cap, e->session, strlen(e->session)) = *e;
    }
    free(b->slots);
    b->slots = slots;
    b->cap = cap;
    return 0;
}

static enum beacon_state state_of(bool is_playing, double buffered_s, bool has_stalled)
{
    if (!is_playing) return BEACON_WAITING;
    return buffered_s > 0 && !has_stalled ? BEACON_HEARING : BEACON_LAGGING;
}

int beacons_note(struct beacons *b, const char *s, size_t len, uint64_t now_ms, bool is_playing,
                 double buffered_s, uint32_t stalls)
{
    if (len > BEACONS_SESSION_MAX) return -EINVAL;
    if ((b->count + 1) * 2 > b->cap) {
        int err = rehash(b, b->cap ? b->cap * 2 : 64);
        if (err < 0) return err;
    }
    struct beacon *e = probe(b->slots, b->cap, s, len);
    bool is_new = !e->session[0];
    if (is_new && b->count >= BEACONS_MAX) return -ENOSPC;
    if (is_new) {
        memcpy(e->session, s, len);
        e->session[len] = '\0';
        b->count++;
        b->joined++;
    } else {
        b->by_state[e->state]--;
    }
    e->state = (uint8_t)state_of(is_playing, buffered_s, !is_new && stalls > e->stalls);
    e->stalls = stalls;
    e->last_ms = now_ms;
    b->by_state[e->state]++;
    b->beacons++;
    return 0;
}

/* Empties slot `i` and moves later entries of its probe run back into the
 * hole (backward-shift deletion: no tombstones, lookups stay correct). */
static void remove_at(struct beacons *b, size_t i)
{
    size_t mask = b->cap - 1, hole = i;
    for (size_t j = (i + 1) & mask; b->slots[j].session[0]; j = (j + 1) & mask) {
        struct beacon *e = &b->slots[j];
        size_t home = (size_t)hash(e->session, strlen(e->session)) & mask;
        /* e may fill the hole if its home is not in (hole, j], cyclically */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        b->slots[hole] = *e;
        hole = j;
    }
    b->slots[hole].session[0] = '\0';
}

void beacons_sweep(struct beacons *b, uint64_t now_ms)
{
    if (!b->cap || now_ms < BEACONS_EXPIRE_MS) return;
    for (size_t i = 0; i < b->cap;) {
        struct beacon *e = &b->slots[i];
        if (!e->session[0] || now_ms - e->last_ms < BEACONS_EXPIRE_MS) {
            i++;
            continue;
        }
        b->by_state[e->state]--;
        b->count--;
        b->left++;
        remove_at(b, i); /* slot i may now hold a later entry: look again */
    }
    size_t cap = b->cap;
    while (cap > 64 && b->count * 8 < cap)
        cap /= 2;                      /* shrink after a crowd left */
    if (cap != b->cap) rehash(b, cap); /* out of memory: the larger table stays */
}
