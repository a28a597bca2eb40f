#include "deliver/ring.h"

#include <errno.h>
#include <stdlib.h>

#include "deliver/chunk.h"

int ring_init(struct ring *r, size_t min_chunks)
{
    size_t cap = 8;
    while (cap < min_chunks)
        cap <<= 1;
    r->slots = calloc(cap, sizeof(*r->slots));
    if (!r->slots) return -ENOMEM;
    r->cap = cap;
    r->head = r->tail = 0;
    return 0;
}

void ring_fini(struct ring *r)
{
    if (!r->slots) return;
    for (uint64_t s = r->tail; s < r->head; s++)
        chunk_unref(&r->slots[s & (r->cap - 1)]);
    free(r->slots);
    r->slots = NULL;
    r->head = r->tail = 0;
}

void ring_append(struct ring *r, struct chunk *c)
{
    if (r->head - r->tail == r->cap) {
        chunk_unref(&r->slots[r->tail & (r->cap - 1)]);
        r->tail++;
    }
    c->seq = r->head;
    r->slots[r->head & (r->cap - 1)] = c;
    r->head++;
}

struct chunk *ring_get(const struct ring *r, uint64_t seq)
{
    if (seq < r->tail || seq >= r->head) return NULL;
    return r->slots[seq & (r->cap - 1)];
}

uint64_t ring_burst_start(const struct ring *r, size_t burst)
{
    uint64_t held = r->head - r->tail;
    return r->head - (burst < held ? burst : held);
}
