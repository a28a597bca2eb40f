#include "deliver/chunk.h"

#include <assert.h>
#include <stdlib.h>

static uint64_t live_count;

struct chunk *chunk_new(size_t len)
{
    struct chunk *c = malloc(sizeof(*c) + len);
    if (!c) return NULL;
    c->refs = 1;
    c->len = (uint32_t)len;
    c->seq = 0;
    c->granule = 0;
    c->duration = 0;
    c->is_sealed = false;
    live_count++;
    return c;
}

void chunk_seal(struct chunk *c)
{
    c->is_sealed = true;
}

struct chunk *chunk_ref(struct chunk *c)
{
    assert(c->refs > 0);
    c->refs++;
    return c;
}

void chunk_unref(struct chunk **cp)
{
    struct chunk *c = *cp;
    if (!c) return;
    *cp = NULL;
    assert(c->refs > 0);
    if (--c->refs == 0) {
        live_count--;
        free(c);
    }
}

uint64_t chunks_live(void)
{
    return live_count;
}
