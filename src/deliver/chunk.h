/* struct chunk: the one counted type that carries audio (STYLE.md, "Ownership").
 *
 *   +----------------------------------+----------------------+
 *   | refs | len | seq | granule | ... | bytes[len]           |
 *   +----------------------------------+----------------------+
 *   one allocation; immutable once sealed; shared by every listener of a format
 *
 * Holders: a ring slot (one reference), a listener midway through writing it
 * (one reference), a feed's header slot. Nobody else. The chunk is freed when
 * the last reference goes. Thread: one loop only (counts are not atomic; chunks
 * never cross a process or thread boundary as pointers).
 */
#ifndef TRIBUNE_DELIVER_CHUNK_H
#define TRIBUNE_DELIVER_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chunk {
    uint32_t refs;        /* private */
    uint32_t len;         /* read-only: bytes in data[] */
    uint64_t seq;         /* read-only: position in its ring, set on append */
    uint64_t granule;     /* read-only: program samples at the end of the chunk */
    uint32_t duration;    /* read-only: samples of audio in the chunk (48 kHz) */
    bool is_sealed;       /* read-only */
    unsigned char data[]; /* writable by the creator until sealed */
};

/* Returns a new unsealed chunk with room for `len` bytes and one reference
 * (the caller's), or NULL when out of memory. */
struct chunk *chunk_new(size_t len);
/* Makes the chunk immutable. */
void chunk_seal(struct chunk *c);
/* Takes a reference; returns `c`. */
struct chunk *chunk_ref(struct chunk *c);
/* Drops the reference held through *cp and sets *cp to NULL. NULL is fine. */
void chunk_unref(struct chunk **cp);
/* Chunks currently allocated in this process (a gauge; 0 after shutdown). */
uint64_t chunks_live(void);

#endif
