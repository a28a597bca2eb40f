/* struct ring: the last chunks of one format of one space, in sequence order.
 *
 *            tail                               head
 *             v                                  v
 *   slots: [ c40 | c41 | c42 | ... | c103 | c104 |  (free) ]   (cap = 2^k)
 *
 * - `head` is the sequence number the next appended chunk gets; the ring holds
 *   sequences [tail, head), at most `cap` of them, each with one reference.
 * - Appending to a full ring drops its reference to the oldest chunk; a
 *   listener midway through that chunk keeps its own reference, so nothing it
 *   is writing can be freed under it.
 * - A listener is a cursor (next sequence, offset) into this ring; a cursor
 *   older than `tail` has fallen behind and must skip to live.
 * Thread: one loop only.
 */
#ifndef TRIBUNE_DELIVER_RING_H
#define TRIBUNE_DELIVER_RING_H

#include <stddef.h>
#include <stdint.h>

struct chunk;

struct ring {
    struct chunk **slots; /* private */
    size_t cap;           /* read-only: a power of two */
    uint64_t head;        /* read-only: next sequence number */
    uint64_t tail;        /* read-only: oldest sequence held */
};

/* Sizes the ring for at least `min_chunks` chunks. 0 or -ENOMEM. */
int ring_init(struct ring *r, size_t min_chunks);
/* Drops every reference the ring holds. */
void ring_fini(struct ring *r);
/* Appends `c`, taking over the caller's reference, and sets c->seq. */
void ring_append(struct ring *r, struct chunk *c);
/* Borrows chunk `seq`, or NULL when it is not held (too old or not yet). */
struct chunk *ring_get(const struct ring *r, uint64_t seq);
/* The sequence a new listener should start from to get about `burst`
 * chunks of recent audio. */
uint64_t ring_burst_start(const struct ring *r, size_t burst);

#endif
